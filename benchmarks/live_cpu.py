"""Live CPU: CPU seconds per on-air second for `linly-push live` (its process and its ffmpeg)
against ffmpeg alone pushing the same length of test pattern with the same settings in real time
(goal: at most 1.3x), and, stricter, against ffmpeg pushing a flat colour and silence.

    python benchmarks/live_cpu.py [--seconds 60] [--preset live] [--avatar cartoon] [--set KEY=VALUE ...]

The portrait avatar, unless --set avatar.image= says otherwise, animates scikit-image's astronaut.

Both push to their own nginx-rtmp on 127.0.0.1. CPU time is what the kernel charged to the
process and every child it waited for (getrusage of our children, taken around each run); a
/proc sample every 0.5 s splits linly-push's share into its Python process and its ffmpeg.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
from render_speed import baseline_argv, script_for  # noqa: E402
from rtmp_server import RtmpServer, unavailable  # noqa: E402

from linly_push import presets  # noqa: E402
from linly_push.ffmpeg import find_ffmpeg  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float | None:
    """User + system CPU seconds of one process so far (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def describe(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def run_measured(argv: list[str], events: list[dict] | None = None) -> tuple[float, float, dict[str, float], int]:
    """Run argv to the end: (CPU seconds of it and its waited-for children, wall seconds,
    last sampled CPU seconds by process name, exit code). With ``events``, each JSON line it
    prints (``--json``) is appended to it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()
    if events is not None:

        def collect() -> None:
            for line in proc.stdout:
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line))

        threading.Thread(target=collect, daemon=True).start()
    else:
        threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
    sampled: dict[int, tuple[str, float]] = {}
    while proc.poll() is None:
        for pid in [proc.pid, *children_of(proc.pid)]:
            cpu = cpu_of(pid)
            if cpu is not None:
                sampled[pid] = (sampled.get(pid, (describe(pid), 0.0))[0], cpu)
        time.sleep(0.5)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"{argv[0]} ... exited {proc.returncode}: {''.join(err)[-2000:]}")
    by_name: dict[str, float] = {}
    for name, seconds in sampled.values():
        by_name[name] = by_name.get(name, 0.0) + seconds
    return cpu, wall, by_name, proc.returncode


def paced(argv: list[str]) -> list[str]:
    """argv with each lavfi input read in real time (-re), as a live source would be."""
    out: list[str] = []
    for i, a in enumerate(argv):
        if a == "-f" and argv[i + 1 : i + 2] == ["lavfi"]:
            out.append("-re")
        out.append(a)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="about this much speech")
    ap.add_argument("--preset", default="live")
    ap.add_argument("--avatar", default="cartoon")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to linly-push live")
    args = ap.parse_args()
    if reason := unavailable():
        sys.exit(f"cannot benchmark: {reason}")
    preset = presets.load(args.preset)
    binary = find_ffmpeg()
    events: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = RtmpServer(Path(tmp) / "rtmp")
        server.start()
        try:
            script = Path(tmp) / "bench.txt"
            script.write_text(script_for(args.seconds), encoding="utf-8")
            sets = [a for kv in args.set for a in ("--set", kv)]
            if args.avatar == "portrait" and not any(kv.startswith("avatar.image=") for kv in args.set):
                import skimage.data
                from PIL import Image

                Image.fromarray(skimage.data.astronaut()).save(Path(tmp) / "astronaut.png")
                sets += ["--set", f"avatar.image={Path(tmp) / 'astronaut.png'}"]
            ours_cpu, ours_wall, parts, _ = run_measured(
                [sys.executable, "-m", "linly_push", "live", "--script", str(script), "--url", server.url(key="ours"),
                 "--preset", args.preset, "--avatar", args.avatar, *sets, "--json"], events)
            finished = next((e for e in events if e["event"] == "finished"), None)
            on_air = finished["seconds"] if finished else ours_wall
            repeated = max((e.get("repeated") or 0 for e in events if e["event"] == "status"), default=0)
            drops = sum(e["event"] == "dropped" for e in events)

            alone_cpu, alone_wall, _, _ = run_measured(paced(baseline_argv(preset, on_air, server.url(key="alone"))))
            # stricter: the cheapest picture and sound to make and encode (a flat colour, silence)
            flat = [f"color=c=0x3a5f7f:size={preset.video.width}x{preset.video.height}:rate={preset.video.fps}:duration={on_air}"
                    if a.startswith("testsrc2=") else a
                    for a in baseline_argv(preset, on_air, server.url(key="flat"), tone=False)]
            flat_cpu, flat_wall, _, _ = run_measured(paced(flat))
        finally:
            server.stop()

    v = preset.video
    table = Table(title=f"live CPU per on-air second, preset {args.preset} ({v.width}x{v.height}@{v.fps}, "
                        f"{os.cpu_count()} CPUs, {binary.source} ffmpeg {binary.version})")
    for col in ("what", "on air s", "wall s", "CPU s", "CPU s / on-air s", "ratio", "goal ≤ 1.3"):
        table.add_column(col, justify="right")
    ours_rate, alone_rate = ours_cpu / on_air, alone_cpu / on_air
    ratio = ours_rate / alone_rate
    table.add_row(f"linly-push live ({args.avatar})", f"{on_air:.1f}", f"{ours_wall:.1f}", f"{ours_cpu:.2f}",
                  f"{ours_rate:.3f}", f"{ratio:.2f}", "yes" if ratio <= 1.3 else "NO")
    for name, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
        table.add_row(f"  of which {name} (sampled)", "", "", f"{seconds:.2f}", f"{seconds / on_air:.3f}", "", "")
    table.add_row("ffmpeg alone, testsrc2 + sine, -re", f"{on_air:.1f}", f"{alone_wall:.1f}", f"{alone_cpu:.2f}",
                  f"{alone_rate:.3f}", "1.00", "")
    flat_rate = flat_cpu / on_air
    table.add_row("stricter: ffmpeg alone, flat colour + silence, -re", f"{on_air:.1f}", f"{flat_wall:.1f}",
                  f"{flat_cpu:.2f}", f"{flat_rate:.3f}", f"ours {ours_rate / flat_rate:.2f}×", "")
    Console(width=160).print(table)
    Console(width=160).print(f"linly-push: {drops} drops, at most {repeated} repeated frames reported; "
                             f"sampled processes: {', '.join(parts) or 'none'}")


if __name__ == "__main__":
    main()
