"""WHIP latency and CPU: how long a line written to `live --script -` takes to be heard at a
WebRTC (WHIP) receiver (goal: under 0.4 s), against the same through RTMP, and what pushing
over WHIP costs in CPU per on-air second against pushing over RTMP.

    python benchmarks/whip_latency.py [--trials 5] [--spacing 5] [--idle 3] [--seconds 30]
                                      [--preset live] [--avatar cartoon] [--skip-cpu] [--skip-latency]

Latency (as ``live_latency.py``, whose player and event reader it reuses): `linly-push live
--script - --json` goes on air with stdin an empty pipe, at 640x360 by default; once the received
audio has been silent for ``--idle`` seconds, one line at a time is written and timed from the
write to its first sound (RMS above -45 dBFS in some 10 ms; the idle is digital silence) at the
receiver. WebRTC: the push goes to ``tests/whip_endpoint.py``'s aiortc endpoint on 127.0.0.1
(ffmpeg 9's whip muxer, Opus), each audio frame stamped both when its RTP packet came off the
socket ("wire") and when aiortc handed it over decoded ("decoded": after its jitter buffer, which
holds audio 4 packets = 80 ms, and its decoder thread). RTMP: nginx-rtmp on 127.0.0.1 played
back by ``live_latency.Player`` (ffmpeg, -fflags nobuffer, decoded to PCM). The `sentence` event
(sent when the sentence's first frame goes to ffmpeg) splits each total into linly-push's part
and the encoder + transport + receiver's. The transports run one after the other, not at once.
WebRTC's connection set-up (aiortc's DTLS handshake takes 1 s) is done before the first line.

CPU (as ``live_cpu.py``, whose ``run_measured`` it reuses): `linly-push live` pushing the same
fixed script of about ``--seconds`` of speech, over WHIP and over RTMP, same preset and avatar;
CPU seconds of linly-push and every child it waited for (its ffmpeg), per on-air second, with a
/proc split by process. A third run pushes RTMP with the WHIP ffmpeg (the imageio-ffmpeg wheel's
9.0, through LINLY_PUSH_FFMPEG), to tell the binary's share from the protocol's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
from live_cpu import run_measured
from live_latency import LINES, SOUND, Events, Player, _s, _tail, stop
from render_speed import script_for
from rtmp_server import RtmpServer, unavailable

from linly_push import presets
from linly_push.errors import LinlyPushError
from linly_push.ffmpeg import find_ffmpeg
from linly_push.ffmpeg.binary import ENV_VAR

GOAL = 0.4  # seconds from write to first sound over WebRTC


# ---------------------------------------------------------------------------------------------
# Receivers: each answers "quiet for s seconds?" and "when was the first sound after a write?"


class WhipListener:
    """A WHIP endpoint session's audio, judged as ``Player`` judges its own: a decoded frame has
    sound when one of its 10 ms has an RMS above ``SOUND``. Each frame keeps two stamps on
    ``time.monotonic()``: its RTP packet off the socket (wire) and its hand-over after decoding."""

    def __init__(self, session) -> None:
        self.session = session
        self.frames: list[tuple[float, float, int, bool]] = []  # (wire, decoded, samples, has sound)
        self._taken = 0

    def _take(self, timeout: float) -> None:
        """Take in the frames that arrived since the last call, first waiting up to ``timeout``
        for one when none has."""
        s = self.session
        if min(len(s.audio), len(s.audio_wire)) == self._taken and not s.ended.is_set() and timeout > 0:
            try:  # Session.wait's condition: until a little more audio than now has arrived
                s.wait(video_frames=0, audio_seconds=s.audio_seconds + 1e-6, timeout=timeout)
            except TimeoutError:
                pass
        n = min(len(s.audio), len(s.audio_wire))
        chunk = max(1, s.audio_rate // 100)
        for i in range(self._taken, n):
            decoded, _, mono = s.audio[i]
            usable = len(mono) // chunk * chunk
            pcm = mono[:usable].reshape(-1, chunk) if usable else mono.reshape(1, -1)
            loud = bool((np.sqrt((pcm * pcm).mean(axis=1)) > SOUND).any()) if len(mono) else False
            self.frames.append((s.audio_wire[i], decoded, len(mono), loud))
        self._taken = n

    def wait_quiet(self, seconds: float, timeout: float) -> bool:
        """Until the last ``seconds`` of audio received were silent."""
        need = seconds * self.session.audio_rate
        deadline = time.monotonic() + timeout
        while True:
            got = 0
            for _, _, samples, loud in reversed(self.frames):
                if loud:
                    break
                got += samples
                if got >= need:
                    return True
            left = deadline - time.monotonic()
            if left <= 0 or self.session.ended.is_set():
                return False
            self._take(min(left, 0.2))

    def heard(self, wall: float, mono: float, timeout: float) -> dict[str, float] | None:
        """Seconds from a write at ``mono`` to the first frame with sound whose packet arrived
        after it, by its wire and its decoded stamp."""
        deadline = mono + timeout
        start = max(0, len(self.frames) - 100)
        while True:
            for i in range(start, len(self.frames)):
                wire, decoded, _, loud = self.frames[i]
                if loud and wire > mono:
                    return {"wire": wire - mono, "decoded": decoded - mono}
            start = len(self.frames)
            left = deadline - time.monotonic()
            if left <= 0 or self.session.ended.is_set():
                return None
            self._take(min(left, 0.2))

    def errors(self) -> list[str]:
        """Reader failures, and an end other than the pusher's DELETE."""
        return [what for _, what in self.session.events
                if "failed" in what or (what.startswith("ended") and what != "ended: DELETE")]


class RtmpListener:
    """``live_latency.Player`` behind the same questions (its stamps are ``time.time()``)."""

    def __init__(self, player: Player) -> None:
        self.player = player

    def wait_quiet(self, seconds: float, timeout: float) -> bool:
        return self.player.wait_quiet(seconds, timeout)

    def heard(self, wall: float, mono: float, timeout: float) -> dict[str, float] | None:
        at = self.player.first_sound_after(wall, timeout)
        return None if at is None else {"decoded": at - wall}

    def errors(self) -> list[str]:
        return self.player.errors[-3:]


# ---------------------------------------------------------------------------------------------


@dataclass
class Trial:
    number: int
    line: str
    event: float | None  # write -> sentence event, s
    heard: dict[str, float] | None  # write -> first sound, s, by stamp ("wire", "decoded")


@dataclass
class Run:
    transport: str
    trials: list[Trial] = field(default_factory=list)
    code: int | None = None
    finished: bool = False
    drops: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: str = ""


def _linly(url: str, args, stderr) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "linly_push", "live", "--script", "-", "--url", url, "--json",
         "--preset", args.preset, "--avatar", args.avatar,
         "--set", f"video.width={args.width}", "--set", f"video.height={args.height}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1,
    )


def _trials(run: Run, linly: subprocess.Popen, events: Events, listener, args, console: Console) -> None:
    """Idle, then one line at a time, timed; then EOF and the end of the broadcast."""
    if not listener.wait_quiet(args.idle, timeout=30):
        run.failed = f"no {args.idle:g} s of silence heard within 30 s of going on air"
        return
    assert linly.stdin is not None
    for number in range(1, args.trials + 1):
        line = LINES[(number - 1) % len(LINES)]
        seen = len(events.items)
        wall, mono = time.time(), time.monotonic()
        linly.stdin.write(line + "\n")
        linly.stdin.flush()
        heard = listener.heard(wall, mono, timeout=15)
        event = events.wait("sentence", timeout=1 if heard else 0, after=seen, text=line)
        run.trials.append(Trial(number, line, event["_received"] - wall if event else None, heard))
        if heard is None:
            console.print(f"[red]{run.transport} trial {number}: no sound within 15 s[/red] {listener.errors()}")
            break
        # --spacing from this write to the next (a fixed pause, not a wait on anything), then
        # make sure this line's sound is over
        time.sleep(max(0.0, args.spacing - (time.monotonic() - mono)))
        listener.wait_quiet(0.5, timeout=10)
    linly.stdin.close()  # EOF: the broadcast ends
    run.finished = events.wait("finished", timeout=30) is not None
    try:
        run.code = linly.wait(30)
    except subprocess.TimeoutExpired:
        run.code = None


def latency_whip(args, tmp: Path, console: Console) -> Run:
    from whip_endpoint import WhipEndpoint

    run = Run("WebRTC (WHIP)")
    linly = None
    events = None
    with WhipEndpoint() as whip, open(tmp / "linly-whip.err", "w+b") as log:
        try:
            started = time.monotonic()
            linly = _linly(whip.url, args, log)
            events = Events(linly.stdout)
            try:
                session = whip.wait_session(timeout=30)
                session.wait(video_frames=1, audio_seconds=0.1, timeout=30)
            except TimeoutError as exc:
                run.failed = f"not on air over WHIP with stdin empty: {exc}\n{_tail(log)}"
                return run
            stamps = {what: at for at, what in reversed(session.events)}
            offer, connected, first = stamps.get("offer"), stamps.get("connection connected"), stamps.get("first audio frame")
            if offer and connected and first:
                run.notes.append(f"WHIP set-up: linly-push start -> POST {offer - started:.2f} s, POST -> DTLS "
                                 f"connected {connected - offer:.2f} s, -> first audio {first - offer:.2f} s "
                                 f"(done before the first line; {session.audio_codec} "
                                 f"{session.audio_rate} Hz, {session.video_codec})")
            listener = WhipListener(session)
            _trials(run, linly, events, listener, args, console)
            run.errors = listener.errors()
        finally:
            if linly is not None:
                stop(linly)
        if run.failed:
            run.failed += "\n" + _tail(log)
    run.drops = sum(e["event"] in ("dropped", "reconnected") for e in events.items) if events else 0
    return run


def latency_rtmp(args, tmp: Path, console: Console) -> Run:
    run = Run("RTMP")
    server = RtmpServer(tmp / "rtmp")
    server.start()
    log = (tmp / "linly-rtmp.err").open("w+b")
    linly = player = events = None
    try:
        url = server.url(key="bench")
        linly = _linly(url, args, log)
        events = Events(linly.stdout)
        try:
            server.wait_for("publish", key="bench", timeout=30)
        except TimeoutError as exc:
            run.failed = f"not on air over RTMP with stdin empty: {exc}\n{_tail(log)}"
            return run
        player = Player(url)
        _trials(run, linly, events, RtmpListener(player), args, console)
        run.errors = player.errors[-3:]
        if run.failed:
            run.failed += f" {player.errors[-3:]}\n{_tail(log)}"
    finally:
        if player is not None:
            player.stop()
        if linly is not None:
            stop(linly)
        server.stop()
        log.close()
    run.drops = sum(e["event"] in ("dropped", "reconnected") for e in events.items) if events else 0
    return run


def latency_tables(runs: list[Run], args, console: Console) -> None:
    whip_ff, rtmp_ff = find_ffmpeg(whip=True), find_ffmpeg()
    by = {r.transport: r for r in runs}
    w, r = by.get("WebRTC (WHIP)"), by.get("RTMP")

    detail = Table(title="per line: seconds from the write on stdin to the sentence event, and to the first sound "
                         "on the wire / decoded at the receiver")
    detail.add_column("trial", justify="right")
    detail.add_column("line")
    cols: list[tuple[Run, str]] = []
    if w:
        cols += [(w, "event"), (w, "wire"), (w, "decoded")]
    if r:
        cols += [(r, "event"), (r, "decoded")]
    for run, what in cols:
        detail.add_column(f"{'WHIP' if run is w else 'RTMP'} {what} s", justify="right")
    for i in range(max(len(x.trials) for x in runs)):
        line = next(x.trials[i].line for x in runs if i < len(x.trials))
        cells = []
        for run, what in cols:
            t = run.trials[i] if i < len(run.trials) else None
            value = None if t is None else t.event if what == "event" else (t.heard or {}).get(what)
            cells.append(_s(value))
        detail.add_row(str(i + 1), line, *cells)
    console.print(detail)

    table = Table(title=f"live latency: line on stdin -> first sound at a receiver, WebRTC against RTMP "
                        f"({args.width}x{args.height}, preset {args.preset}, avatar {args.avatar}, {os.cpu_count()} CPUs; "
                        f"WHIP: ffmpeg {whip_ff.version}, RTMP: ffmpeg {rtmp_ff.version})")
    for col in ("transport", "sound at", "lines", "median s", "min s", "max s",
                "write -> event s", "event -> sound s", f"goal < {GOAL} s"):
        table.add_column(col, justify="right")
    rows = []
    if w:
        rows += [(w, "decoded", "decoded: aiortc recv()"), (w, "wire", "wire: RTP packet in")]
    if r:
        rows += [(r, "decoded", "decoded: ffmpeg player")]
    for run, what, where in rows:
        totals = [t.heard[what] for t in run.trials if t.heard and what in t.heard]
        parts = [t.event for t in run.trials if t.event is not None]
        rest = [t.heard[what] - t.event for t in run.trials if t.heard and t.event is not None and what in t.heard]
        med = statistics.median(totals) if totals else None
        table.add_row(run.transport if what != "wire" else "", where, f"{len(totals)}/{args.trials}",
                      _s(med), _s(min(totals) if totals else None), _s(max(totals) if totals else None),
                      _s(statistics.median(parts) if parts else None), _s(statistics.median(rest) if rest else None),
                      "—" if med is None else "yes" if med < GOAL else "NO",
                      style="bold" if what == "decoded" else None)
    console.print(table)
    for run in runs:
        console.print(f"{run.transport}: linly-push exit code {run.code}; finished event: "
                      f"{'yes' if run.finished else 'no'}; drops/reconnects: {run.drops}; receiver errors: {run.errors}")
        for note in run.notes:
            console.print(f"  {note}")
        if run.failed:
            console.print(f"[red]{run.transport} failed: {run.failed}[/red]")
    console.print(
        "Sound at: 'decoded' is when a receiver has the sound as PCM and can play it, and the goal is judged on it: "
        "for WebRTC, when aiortc's track.recv() handed the decoded Opus frame over (Session.audio), after its jitter "
        "buffer (4 packets, 80 ms) and decoder thread; for RTMP, when the low-latency ffmpeg player's PCM came out "
        "(no jitter buffer). 'wire' is when the frame's RTP packet came off the socket (Session.audio_wire): the "
        "network arrival, a floor that a browser's adaptive jitter buffer (NetEq) adds its own tens of ms to. "
        "'event -> sound' is linly-push's ffmpeg (encode, mux) + transport + receiver, plus the ≤ 50 ms of silence a "
        "sentence starts with; both columns are medians. The machine may be shared with other work: figures can "
        "be noisy.")


# ---------------------------------------------------------------------------------------------


def cpu_part(args, tmp: Path, console: Console) -> None:
    from whip_endpoint import WhipEndpoint

    preset = presets.load(args.preset)
    script = tmp / "cpu.txt"
    script.write_text(script_for(args.seconds), encoding="utf-8")
    wheel = find_ffmpeg(whip=True)

    def measure(url: str, ffmpeg: str | None = None) -> dict:
        events: list[dict] = []
        saved = os.environ.get(ENV_VAR)
        if ffmpeg is not None:
            os.environ[ENV_VAR] = ffmpeg
        try:
            cpu, wall, parts, _ = run_measured(
                [sys.executable, "-m", "linly_push", "live", "--script", str(script), "--url", url,
                 "--preset", args.preset, "--avatar", args.avatar, "--json"], events)
        finally:
            if ffmpeg is not None:
                if saved is None:
                    os.environ.pop(ENV_VAR, None)
                else:
                    os.environ[ENV_VAR] = saved
        finished = next((e for e in events if e["event"] == "finished"), None)
        started = next((e for e in events if e["event"] == "started"), {})
        return {"cpu": cpu, "wall": wall, "parts": parts, "on_air": finished["seconds"] if finished else wall,
                "drops": sum(e["event"] == "dropped" for e in events), "ffmpeg": started.get("ffmpeg", "?"),
                "repeated": finished.get("repeated", 0) if finished else None}

    results: list[tuple[str, dict, str]] = []
    server = RtmpServer(tmp / "rtmp-cpu")
    server.start()
    try:
        results.append(("RTMP", measure(server.url(key="cpu")), "AAC"))
        with WhipEndpoint() as whip:
            whip_result = measure(whip.url)
            sessions = list(whip.sessions)
        received = sum(s.audio_seconds for s in sessions)
        heard = f"{received:.1f} s of audio arrived in {len(sessions)} session(s)"
        results.append(("WebRTC (WHIP)", whip_result, "Opus"))
        if not args.skip_wheel_rtmp:
            results.append(("RTMP, with the WHIP ffmpeg", measure(server.url(key="cpu-wheel"), wheel.path), "AAC"))
    finally:
        server.stop()

    v = preset.video
    table = Table(title=f"live CPU per on-air second over WHIP and RTMP, preset {args.preset} "
                        f"({v.width}x{v.height}@{v.fps}), avatar {args.avatar}, {os.cpu_count()} CPUs")
    for col in ("push", "ffmpeg", "audio", "on air s", "wall s", "CPU s", "CPU s / on-air s", "× RTMP", "repeated frames"):
        table.add_column(col, justify="right")
    base = results[0][1]["cpu"] / results[0][1]["on_air"]
    for name, res, audio in results:
        rate = res["cpu"] / res["on_air"]
        table.add_row(name, res["ffmpeg"].split("-")[0], audio, f"{res['on_air']:.1f}", f"{res['wall']:.1f}",
                      f"{res['cpu']:.2f}", f"{rate:.3f}", f"{rate / base:.2f}", str(res["repeated"]), style="bold")
        for proc, seconds in sorted(res["parts"].items(), key=lambda kv: -kv[1]):
            table.add_row(f"of which {proc} (sampled)", "", "", "", "", f"{seconds:.2f}", f"{seconds / res['on_air']:.3f}",
                          "", "")
    console.print(table)
    console.print(f"WHIP receiver: {heard}.")
    console.print(
        "CPU: linly-push and the ffmpeg it waited for (getrusage of children around each run); the receivers "
        "(nginx, and the aiortc endpoint decoding in this process) are not counted, but share the CPUs. WHIP "
        "differs from RTMP in more than the protocol: Opus at 48 kHz (resampled) for AAC, H.264 constrained "
        "baseline without B-frames and a shorter GOP, and ffmpeg 9 (the imageio-ffmpeg wheel) for the system's; "
        "the 'with the WHIP ffmpeg' row pushes RTMP with that binary. The machine may be shared: figures can be noisy.")


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--spacing", type=float, default=5.0, help="seconds from one line's write to the next")
    ap.add_argument("--idle", type=float, default=3.0, help="seconds of silence on air before the first line")
    ap.add_argument("--width", type=int, default=640, help="video width for the latency part")
    ap.add_argument("--height", type=int, default=360, help="video height for the latency part")
    ap.add_argument("--seconds", type=float, default=30.0, help="about this much speech for the CPU part")
    ap.add_argument("--preset", default="live")
    ap.add_argument("--avatar", default="cartoon")
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-wheel-rtmp", action="store_true", help="CPU part: no RTMP run with the WHIP ffmpeg")
    args = ap.parse_args()
    if reason := unavailable():
        sys.exit(f"cannot benchmark: {reason}")
    try:
        import whip_endpoint  # noqa: F401  (aiortc)
    except ImportError as exc:
        sys.exit(f"cannot benchmark: the WHIP endpoint needs aiortc and aiohttp ({exc})")
    try:
        find_ffmpeg(whip=True)
    except LinlyPushError as exc:  # no ffmpeg here can push WebRTC
        sys.exit(f"cannot benchmark: {exc}")

    console = Console(width=160)
    with tempfile.TemporaryDirectory(prefix="whip-bench-") as name:
        tmp = Path(name)
        if not args.skip_latency:
            runs = [latency_whip(args, tmp, console), latency_rtmp(args, tmp, console)]
            latency_tables(runs, args, console)
        if not args.skip_cpu:
            cpu_part(args, tmp, console)


if __name__ == "__main__":
    main()
