"""Memory soak: memory stays flat over a 1-hour broadcast, simulated by rendering an hour of speech
to a file at full speed (the same pipeline, unpaced).

    python benchmarks/memory_soak.py [--minutes 60] [--preset live] [--avatar cartoon]

Samples the resident memory (RSS, from /proc) of the linly-push process and of its ffmpeg every
--every seconds, and prints it against media time, with the growth from the 10 % mark (when
everything is warmed up) to the end. An hour takes about 8 minutes at 960x540.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from live_cpu import children_of  # noqa: E402
from render_speed import LINES  # noqa: E402

GOAL_MB = 20.0  # growth from the 10 % mark to the end that still counts as flat


def script_for(seconds: float) -> str:
    """About ``seconds`` of speech: the benchmark lines, numbered so no two sentences are the
    same text, in paragraphs of five (espeak speaks ~2.3 of these words a second, pauses included)."""
    out, words, n = [], 0, 0
    while words < seconds * 2.32:
        line = LINES[n % len(LINES)]
        text = f"Part {n + 1}. {line}"
        out.append(text + ("\n\n" if n % 5 == 4 else " "))
        words += len(text.split())
        n += 1
    return "".join(out)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--preset", default="live")
    ap.add_argument("--avatar", default="cartoon")
    ap.add_argument("--every", type=float, default=2.0, help="seconds between samples")
    args = ap.parse_args()
    total = args.minutes * 60
    media = [0.0]  # latest media time from the progress events
    finished: list[dict] = []

    def read_events(stream) -> None:
        for line in stream:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e["event"] == "progress":
                media[0] = e["seconds"]
            elif e["event"] == "finished":
                finished.append(e)

    samples: list[tuple[float, float, float, float | None]] = []  # (wall, media s, linly MB, ffmpeg MB)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "soak.txt"
        script.write_text(script_for(total), encoding="utf-8")
        out = Path(tmp) / "soak.mkv"
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "linly_push", "render", "--script", str(script), "-o", str(out),
             "--preset", args.preset, "--avatar", args.avatar, "--json"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        err: list[str] = []
        threading.Thread(target=read_events, args=(proc.stdout,), daemon=True).start()
        threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()
        while proc.poll() is None:
            ours = rss_mb(proc.pid)
            ffmpeg = [m for c in children_of(proc.pid) if (m := rss_mb(c)) is not None]
            if ours is not None:
                samples.append((time.monotonic() - t0, media[0], ours, sum(ffmpeg) if ffmpeg else None))
            time.sleep(args.every)
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            sys.exit(f"linly-push exited {proc.returncode}: {''.join(err)[-2000:]}")
        size = out.stat().st_size / 1e6
    length = finished[0]["seconds"] if finished else media[0]

    table = Table(title=f"memory over a simulated {length / 60:.1f}-minute broadcast "
                        f"(render to .mkv, preset {args.preset}, avatar {args.avatar}; {wall:.0f} s wall, "
                        f"{length / wall:.1f}× realtime, {size:.0f} MB file)")
    for col in ("media", "wall s", "linly-push RSS MB", "ffmpeg RSS MB", "total MB"):
        table.add_column(col, justify="right")
    running = [s for s in samples if s[3] is not None and 0 < s[1] < length]  # both processes up, media flowing
    marks = [length * k / 10 for k in range(1, 11)]
    shown = []
    for mark in marks:
        before = [s for s in running if s[1] <= mark]
        if before and before[-1] not in shown:
            shown.append(before[-1])
    for w, m, ours, ff in shown:
        table.add_row(f"{int(m // 60)}:{m % 60:04.1f}", f"{w:.0f}", f"{ours:.1f}", f"{ff:.1f}", f"{ours + ff:.1f}")
    console = Console(width=160)
    console.print(table)
    if len(shown) >= 2:
        at10 = next((s for s in running if s[1] >= marks[0]), shown[0])
        end = running[-1]
        growth = [end[2] - at10[2], end[3] - at10[3]]
        peak = max(s[2] + s[3] for s in running)
        verdict = "flat" if growth[0] + growth[1] <= GOAL_MB else "GROWING"
        console.print(f"growth from the 10 % mark ({at10[1] / 60:.1f} min) to the end ({end[1] / 60:.1f} min): "
                      f"linly-push {growth[0]:+.1f} MB, ffmpeg {growth[1]:+.1f} MB, total {sum(growth):+.1f} MB "
                      f"({verdict}; goal ≤ {GOAL_MB:.0f} MB); peak total {peak:.1f} MB; {len(samples)} samples")
    else:
        console.print(f"too few samples ({len(samples)}) to judge: run longer (--minutes)")


if __name__ == "__main__":
    main()
