"""Live latency: how long a line written to `live --script -` takes to go on air (goal: its first
sound reaches the server in under 1 s).

    python benchmarks/live_latency.py [--trials 5] [--spacing 5] [--idle 3]

Starts its own nginx-rtmp on 127.0.0.1, `linly-push live --script -` pushing to it with stdin a
pipe, and a player decoding the stream's audio as it arrives. Once the stream has been idle
(silent) for a while, writes one line at a time and times write -> first sound at the player.
That includes the player's own delay (reading and decoding RTMP); the `sentence` event (sent
when the sentence's first frame goes to ffmpeg) splits the total into linly-push's part (write
-> event) and encoder + server + player (event -> sound), which bounds the player's delay.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from rtmp_server import RtmpServer, unavailable  # noqa: E402

from linly_push.ffmpeg import find_ffmpeg  # noqa: E402

RATE = 16000  # the player's audio: mono s16 at this rate
CHUNK = 160  # samples the player's audio is judged by (10 ms)
SOUND = 10 ** (-45 / 20)  # RMS above -45 dBFS is sound; the stream's idle silence is digital zero
LINES = [
    "Breaking news from the test bench.",
    "Markets closed higher today.",
    "The weather will be sunny tomorrow.",
    "Here is another line, just arrived.",
    "And one more, to be sure.",
    "Time for a short break.",
    "We are back on air.",
    "That is all for now.",
]


class Player:
    """ffmpeg playing an RTMP URL, its audio decoded as it comes: the arrival time of each 10 ms
    chunk and whether it holds sound."""

    def __init__(self, url: str, low_latency: bool = True) -> None:
        flags = ["-fflags", "nobuffer", "-flags", "low_delay", "-probesize", "32", "-analyzeduration", "0"] if low_latency else []
        argv = [find_ffmpeg().path, "-nostdin", "-hide_banner", "-loglevel", "error", "-rw_timeout", "5000000",
                *flags, "-i", url, "-map", "0:a:0", "-ac", "1", "-ar", str(RATE), "-f", "s16le",
                "-flush_packets", "1", "pipe:1"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.chunks: list[tuple[float, bool]] = []  # (time.time() on arrival, has sound)
        self.errors: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        pending = b""
        while block := self.proc.stdout.read1(65536):
            now = time.time()
            pending += block
            usable = len(pending) // (2 * CHUNK) * 2 * CHUNK
            if not usable:
                continue
            pcm = np.frombuffer(pending[:usable], np.int16).astype(np.float32).reshape(-1, CHUNK) / 32768.0
            pending = pending[usable:]
            loud = np.sqrt((pcm * pcm).mean(axis=1)) > SOUND
            with self._cond:
                self.chunks += [(now, bool(x)) for x in loud]
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.errors.append(line.decode(errors="replace").strip())

    def wait_quiet(self, seconds: float, timeout: float) -> bool:
        """Until the last ``seconds`` of audio received were silent."""
        need = round(seconds * RATE / CHUNK)
        deadline = time.time() + timeout
        with self._cond:
            while time.time() < deadline and self.proc.poll() is None:
                tail = self.chunks[-need:]
                if len(tail) == need and not any(loud for _, loud in tail):
                    return True
                self._cond.wait(0.1)
        return False

    def first_sound_after(self, since: float, timeout: float) -> float | None:
        """Arrival time of the first chunk with sound that arrived after ``since``."""
        deadline = since + timeout
        start = 0
        with self._cond:
            while True:
                for i in range(start, len(self.chunks)):
                    at, loud = self.chunks[i]
                    if at > since and loud:
                        return at
                start = len(self.chunks)
                if time.time() > deadline or self.proc.poll() is not None:
                    return None
                self._cond.wait(0.05)

    def stop(self) -> None:
        # A player blocked on RTMP ignores the first SIGTERM: kill it after a moment.
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Events:
    """linly-push's --json events, as they arrive."""

    def __init__(self, stream) -> None:
        self.items: list[dict] = []
        self._cond = threading.Condition()
        self._stream = stream
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._stream:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            event["_received"] = time.time()
            with self._cond:
                self.items.append(event)
                self._cond.notify_all()

    def wait(self, kind: str, timeout: float, after: int = 0, **fields) -> dict | None:
        deadline = time.time() + timeout
        with self._cond:
            while True:
                for e in self.items[after:]:
                    if e["event"] == kind and all(e.get(k) == v for k, v in fields.items()):
                        return e
                if time.time() > deadline:
                    return None
                self._cond.wait(0.05)


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--spacing", type=float, default=5.0, help="seconds from one line's sound to the next line")
    ap.add_argument("--idle", type=float, default=3.0, help="seconds of silence on air before the first line")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--no-low-latency-player", action="store_true", help="play without -fflags nobuffer etc.")
    args = ap.parse_args()
    if reason := unavailable():
        sys.exit(f"cannot benchmark: {reason}")

    console = Console(width=160)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = RtmpServer(Path(tmp) / "rtmp")
        server.start()
        linly = player = None
        log = open(Path(tmp) / "linly.err", "w+b")
        try:
            url = server.url(key="bench")
            linly = subprocess.Popen(
                [sys.executable, "-m", "linly_push", "live", "--script", "-", "--url", url, "--json",
                 "--set", f"video.width={args.width}", "--set", f"video.height={args.height}"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1,
            )
            events = Events(linly.stdout)
            try:
                server.wait_for("publish", key="bench", timeout=15)
            except TimeoutError:  # perhaps it goes on air with the first line: give it one
                console.print("[yellow]not on air after 15 s with stdin empty; writing a first line[/yellow]")
                assert linly.stdin is not None
                linly.stdin.write("Warming up.\n")
                linly.stdin.flush()
                try:
                    server.wait_for("publish", key="bench", timeout=15)
                except TimeoutError:
                    sys.exit("linly-push did not go on air with stdin open: does `live --script -` "
                             "broadcast while waiting for lines yet?\n" + _tail(log))
            player = Player(url, low_latency=not args.no_low_latency_player)
            if not player.wait_quiet(args.idle, timeout=30):
                sys.exit(f"the player heard no {args.idle} s of silence within 30 s: {player.errors[-3:]}\n{_tail(log)}")
            for trial in range(args.trials):
                line = LINES[trial % len(LINES)]
                seen = len(events.items)
                assert linly.stdin is not None
                written = time.time()
                linly.stdin.write(line + "\n")
                linly.stdin.flush()
                heard = player.first_sound_after(written, timeout=15)
                event = events.wait("sentence", timeout=1 if heard else 0, after=seen, text=line)
                rows.append((trial + 1, line, written, event, heard))
                if heard is None:
                    console.print(f"[red]trial {trial + 1}: no sound within 15 s[/red] {player.errors[-3:]}")
                    break
                time.sleep(max(0.0, args.spacing - (time.time() - written)))
                player.wait_quiet(0.5, timeout=10)
            linly.stdin.close()  # EOF: the broadcast ends
            finished = events.wait("finished", timeout=30)
            try:
                code = linly.wait(30)
            except subprocess.TimeoutExpired:
                code = None
        finally:
            if player is not None:
                player.stop()
            if linly is not None:
                stop(linly)
            server.stop()
        reconnects = [e for e in events.items if e["event"] in ("dropped", "reconnected")]

    table = Table(title=f"live latency: line on stdin -> first sound at a player of the server "
                        f"({args.width}x{args.height}, ffmpeg {find_ffmpeg().version})")
    for col in ("trial", "line", "write -> sentence event s", "event -> sound at player s", "write -> sound s", "goal < 1 s"):
        table.add_column(col, justify="right")
    totals, parts, players = [], [], []
    for trial, line, written, event, heard in rows:
        total = heard - written if heard else None
        ours = event["_received"] - written if event else None
        theirs = heard - event["_received"] if (event and heard) else None
        totals += [total] if total is not None else []
        parts += [ours] if ours is not None else []
        players += [theirs] if theirs is not None else []
        table.add_row(str(trial), line, _s(ours), _s(theirs), _s(total), "—" if total is None else "yes" if total < 1 else "NO")
    if totals:
        med = statistics.median(totals)
        table.add_row("median", "", _s(statistics.median(parts) if parts else None),
                      _s(statistics.median(players) if players else None), _s(med), "yes" if med < 1 else "NO", style="bold")
    console.print(table)
    console.print(f"linly-push exit code {code}; finished event: {'yes' if finished else 'no'}; "
                  f"drops/reconnects: {len(reconnects)}; player errors: {player.errors[-3:] if player else []}")
    console.print("'event -> sound' is linly-push's ffmpeg (encode, mux) + nginx + the player's read and decode, "
                  "plus the ≤ 50 ms of silence a sentence starts with: an upper bound on the player's own delay.")


def _s(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def _tail(log) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")[-2000:]


if __name__ == "__main__":
    main()
