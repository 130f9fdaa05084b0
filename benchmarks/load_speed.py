"""Loading speed: how long a long rundown and the largest scripts take to read and check before
anything goes on air (both once took minutes to hours: issue 9), so it stays tracked.

    python benchmarks/load_speed.py [--segments 1000 --segments 10000]

Rundowns mix script, script_file, pause and audio segments with per-segment backends; the
scripts are MAX_SCRIPT_BYTES (16 MiB) of text in shapes that used to be slow to parse.
Prints two tables.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from rich.console import Console
from rich.table import Table

from linly_push import presets
from linly_push.rundown import load
from linly_push.script import MAX_SCRIPT_BYTES, Sentence, parse

SEGMENTS = (
    "[[segment]]\nscript = 'Part {n}. It goes on.'\nvoice = 'en-gb'\navatar = 'testcard'\n",
    "[[segment]]\npause = 1\n",
    "[[segment]]\nscript_file = 'part.txt'\ntts = {{ backend = 'espeak', rate = 150 }}\n",
    "[[segment]]\naudio = 'jingle.wav'\navatar = 'cartoon'\n",
)
SCRIPTS = {  # repeated up to MAX_SCRIPT_BYTES
    "English prose": "This is a sentence, with a comma. ",
    "Chinese, commas only": "这是一个句子，",
    "Chinese, ASCII full stops": "中文.很好.",
    "one word a line": "word\n",
    "no spaces or stops": "a",
}


def rundown_row(folder: Path, segments: int) -> list[str]:
    (folder / "part.txt").write_text("A script file. Read for each segment that names it.", encoding="utf-8")
    sf.write(folder / "jingle.wav", np.zeros(2205), 22050)
    path = folder / f"show-{segments}.toml"
    path.write_text("".join(SEGMENTS[n % len(SEGMENTS)].format(n=n) for n in range(segments)), encoding="utf-8")
    preset = presets.load("local-test")
    start = time.perf_counter()
    show = load(path, preset, lambda p: p.read_text(encoding="utf-8"))
    seconds = time.perf_counter() - start
    return [f"{segments:,}", f"{len(show.program):,}", f"{seconds:.2f}", f"{seconds / segments * 1e6:.0f}"]


def script_row(name: str, unit: str) -> list[str]:
    text = unit * (MAX_SCRIPT_BYTES // len(unit.encode("utf-8")))
    start = time.perf_counter()
    items = parse(text)
    seconds = time.perf_counter() - start
    return [name, f"{len(text.encode('utf-8')) / 2**20:.0f}", f"{sum(isinstance(i, Sentence) for i in items):,}", f"{seconds:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, action="append", help="rundown lengths (default 1000 and 10000)")
    args = parser.parse_args()
    console = Console()
    table = Table(title="rundown loading (read, parsed, every backend choice checked)")
    for column in ("segments", "program items", "seconds", "µs a segment"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for segments in args.segments or [1000, 10000]:
            table.add_row(*rundown_row(Path(tmp), segments))
    console.print(table)
    table = Table(title="parsing the largest script (MAX_SCRIPT_BYTES)")
    table.add_column("shape")
    for column in ("MiB", "sentences", "seconds"):
        table.add_column(column, justify="right")
    for name, unit in SCRIPTS.items():
        table.add_row(*script_row(name, unit))
    console.print(table)


if __name__ == "__main__":
    main()
