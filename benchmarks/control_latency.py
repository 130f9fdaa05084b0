"""Control latency: how fast the control API acts on air, heard by a player of the server.

    python benchmarks/control_latency.py [--trials 5]

Starts its own nginx-rtmp on 127.0.0.1, `linly-push live --control` pushing to it and idling,
and a player decoding the stream's audio as it arrives (benchmarks/live_latency.py's). Then,
per trial, from an idle stream:

- say: `POST /say` -> the first sound at the player (goal under 1 s);
- interrupt: while that is being said, `POST /interrupt` -> the start of silence at the player
  that lasts (goal under 0.5 s, 0.3 s hoped for);
- say now: while a long request is being said, `POST /say` with mode now -> the new text's first
  sound, the end of the old one's (goal under 1 s).

Both include the player's own delay (reading and decoding RTMP; see live_latency.py).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
from live_latency import CHUNK, RATE, Events, Player, stop  # noqa: E402
from rtmp_server import RtmpServer, free_port, unavailable  # noqa: E402

from linly_push.ffmpeg import find_ffmpeg  # noqa: E402

LONG = "This is a long request, said slowly and at length, so that there is plenty of time to cut it short."
QUIET = 0.25  # seconds of silence that count as "stopped" (longer than the gaps between words)
TOKEN = secrets.token_urlsafe(16)  # the benchmark's own control token


def post(port: int, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def silence_after(player: Player, since: float, timeout: float) -> float | None:
    """Arrival time of the first chunk after ``since`` that starts QUIET seconds of silence."""
    need = round(QUIET * RATE / CHUNK)
    deadline = since + timeout
    with player._cond:
        while time.time() < deadline:
            chunks = player.chunks
            first = next((i for i, (at, _) in enumerate(chunks) if at > since), None)
            if first is not None:
                run = 0
                for i in range(first, len(chunks)):
                    run = run + 1 if not chunks[i][1] else 0
                    if run >= need:
                        return chunks[i - need + 1][0]
            player._cond.wait(0.05)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    if reason := unavailable():
        sys.exit(f"cannot benchmark: {reason}")
    console = Console(width=160)
    rows: list[tuple[int, float | None, float | None, float | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = RtmpServer(Path(tmp) / "rtmp")
        server.start()
        port = free_port()
        url = server.url(key="bench")
        log = open(Path(tmp) / "linly.err", "w+b")
        linly = subprocess.Popen(
            [sys.executable, "-m", "linly_push", "live", "--control", str(port), "--url", url, "--json",
             "--set", "video.width=640", "--set", "video.height=360"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1,
            env={**os.environ, "LINLY_PUSH_CONTROL_TOKEN": TOKEN},
        )
        events = Events(linly.stdout)
        player = None
        try:
            server.wait_for("publish", key="bench", timeout=30)
            player = Player(url)
            if not player.wait_quiet(2.0, timeout=30):
                sys.exit(f"the player heard no silence: {player.errors[-3:]}")
            for trial in range(1, args.trials + 1):
                sent = time.time()
                post(port, "/say", {"text": LONG})
                heard = player.first_sound_after(sent, timeout=10)
                say = heard - sent if heard else None
                time.sleep(1.0)  # well into it
                cut = time.time()
                post(port, "/interrupt")
                quiet = silence_after(player, cut, timeout=10)
                interrupt = quiet - cut if quiet else None
                player.wait_quiet(1.0, timeout=10)
                post(port, "/say", {"text": LONG})
                player.first_sound_after(time.time(), timeout=10)
                time.sleep(1.0)
                now = time.time()
                post(port, "/say", {"text": f"Breaking news number {trial}.", "mode": "now"})
                seen = len(events.items)
                event = events.wait("sentence", timeout=10, after=seen, text=f"Breaking news number {trial}.")
                # The new text's first sound: after the cut (silence), the next sound.
                gap = silence_after(player, now, timeout=10)
                new = player.first_sound_after(gap, timeout=10) if gap else None
                say_now = new - now if (new and event) else None
                rows.append((trial, say, interrupt, say_now))
                player.wait_quiet(1.0, timeout=15)
        finally:
            if player is not None:
                player.stop()
            stop(linly)
            server.stop()

    table = Table(title=f"control latency, heard at a player of the server (640x360, ffmpeg {find_ffmpeg().version})")
    for col in ("trial", "/say -> first sound s (goal < 1)", "/interrupt -> silence s (goal < 0.5)", "say now -> new sound s (goal < 1)"):
        table.add_column(col, justify="right")
    for trial, *values in rows:
        table.add_row(str(trial), *(_s(v) for v in values))
    medians = [statistics.median([v for v in col if v is not None]) if any(v is not None for v in col) else None
               for col in zip(*[r[1:] for r in rows])] if rows else []
    if medians:
        table.add_row("median", *(_s(m) for m in medians), style="bold")
    console.print(table)
    console.print("Each includes the player's own delay (reading and decoding RTMP, about 50 ms here; see "
                  f"live_latency.py); silence means {QUIET:g} s without sound above -45 dBFS.")


def _s(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    main()
