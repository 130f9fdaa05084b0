"""Render speed: linly-push against ffmpeg alone encoding the same length of test pattern with
the same settings (goal: at most 1.25x its time), and x realtime.

    python benchmarks/render_speed.py [--seconds 60] [--preset live] [--avatar cartoon --avatar testcard]

Prints a table. Wall times include process start-up, as a user sees them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from linly_push import presets
from linly_push.ffmpeg import build_argv, find_ffmpeg

LINES = [
    "Good evening, and welcome to the broadcast.",
    "Tonight we look at the weather, the markets, and a story about a very clever dog.",
    "The quick brown fox jumps over the lazy dog, again and again.",
    "Prices rose by three point five percent in October, the fastest rise this year.",
    "Stay with us after the break!",
]


def script_for(seconds: float) -> str:
    # espeak at its default rate speaks about 2.2 of these lines' words per second; overshoot, then trim.
    words_needed = int(seconds * 2.6) + 10
    out, words = [], 0
    while words < words_needed:
        line = LINES[len(out) % len(LINES)]
        out.append(line)
        words += len(line.split())
    return " ".join(out)


def baseline_argv(preset: presets.Preset, seconds: float, output: str, tone: bool = True) -> list[str]:
    """build_argv's encoder settings, with lavfi test sources instead of our two pipes: a test
    pattern and a 440 Hz tone, or silence (the cheapest audio to encode, the strictest baseline)."""
    argv = build_argv(find_ffmpeg().path, preset.video, preset.audio, output, video_fd=3, audio_fd=4)
    v, a = preset.video, preset.audio
    sources = [
        "-f", "lavfi", "-i", f"testsrc2=size={v.width}x{v.height}:rate={v.fps}:duration={seconds}",
        "-f", "lavfi", "-i",
        f"sine=frequency=440:sample_rate={a.sample_rate}:duration={seconds}" if tone
        else f"anullsrc=sample_rate={a.sample_rate}:channel_layout=stereo,atrim=duration={seconds}",
    ]
    first_input = argv.index("-f")
    return [*argv[:first_input], *sources, *argv[argv.index("-map"):]]


def timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def media_seconds(path: Path) -> float:
    out = subprocess.run(
        [find_ffmpeg().path, "-i", str(path)], capture_output=True, text=True
    ).stderr
    h, m, s = out.split("Duration: ")[1].split(",")[0].split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--preset", action="append")
    ap.add_argument("--avatar", action="append")
    args = ap.parse_args()
    table = Table(title=f"render speed, ~{args.seconds:.0f} s of speech ({find_ffmpeg().source} ffmpeg {find_ffmpeg().version})")
    for col in ("preset", "avatar", "media s", "linly-push s", "ffmpeg alone s", "ratio", "goal ≤ 1.25",
                "ffmpeg, silent audio s", "ratio to it", "× realtime"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bench.txt"
        script.write_text(script_for(args.seconds), encoding="utf-8")
        for name in args.preset or ["live", "hd"]:
            preset = presets.load(name)
            for avatar in args.avatar or ["cartoon", "testcard"]:
                out = Path(tmp) / f"{name}-{avatar}.mp4"
                ours = timed([sys.executable, "-m", "linly_push", "render", "--script", str(script), "-o", str(out),
                              "--preset", name, "--avatar", avatar, "--json"])
                length = media_seconds(out)
                alone = timed(baseline_argv(preset, length, str(Path(tmp) / "baseline.mp4")))
                quiet = timed(baseline_argv(preset, length, str(Path(tmp) / "baseline.mp4"), tone=False))
                ratio = ours / alone
                table.add_row(name, avatar, f"{length:.1f}", f"{ours:.2f}", f"{alone:.2f}", f"{ratio:.2f}",
                              "yes" if ratio <= 1.25 else "NO", f"{quiet:.2f}", f"{ours / quiet:.2f}", f"{length / ours:.1f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
