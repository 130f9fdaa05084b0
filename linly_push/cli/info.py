"""`presets list|show` and `backends`: what is available here."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Annotated, Optional

import tomli_w
import typer
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.syntax import Syntax
from rich.table import Table

from .. import presets as presets_mod
from .. import urls
from ..backends import registry
from ..errors import LinlyPushError
from ..ffmpeg import find_ffmpeg

def _output(draw: Callable[[Console], None]) -> None:
    """``draw`` on standard output. Piped into a file or grep, each row stays one line (a wide
    console) without the blanks that pad it to the width of its table."""
    console = Console()
    if console.is_terminal:
        draw(console)
        return
    wide = Console(width=1000)
    with wide.capture() as captured:
        draw(wide)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def presets_list() -> None:
    """The built-in presets, with their picture and rate."""
    table = Table("name", "video", "bitrate", "audio", "url", "description", box=None)
    for name in presets_mod.available():
        p = presets_mod.load(name)
        v, a = p.video, p.audio
        rate = v.bitrate + (" cbr" if v.cbr else f" (max {v.maxrate})" if v.maxrate else "")
        table.add_row(name, f"{v.width}x{v.height}@{v.fps}", rate, f"{a.sample_rate} Hz {a.bitrate}", urls.mask(p.live.url) if p.live.url else "-", p.description)
    _output(lambda console: console.print(table))


def presets_show(
    name: Annotated[str, typer.Argument(metavar="NAME|FILE", help="A built-in preset or a .toml file.")],
    sets: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="See the preset with overrides applied.")] = None,
) -> None:
    """Every setting of a preset, defaults filled in, as TOML (a start for your own preset file)."""
    p = presets_mod.load(name, [presets_mod.parse_assignment(s) for s in sets or []])
    data = p.model_dump(exclude_none=True)
    if data["live"].get("url"):
        data["live"]["url"] = urls.mask(data["live"]["url"])  # the key part is never printed
    for table in ("tts", "avatar"):
        data[table] = {"backend": getattr(p, table).backend, **getattr(p, table).options}
    toml = Syntax(tomli_w.dumps(data), "toml", theme="ansi_dark", background_color="default")
    _output(lambda console: console.print(toml))


_TITLES = {"tts": "TTS backends (--tts NAME)", "avatar": "Avatar backends (--avatar NAME)"}


def backends() -> None:
    """The TTS and avatar backends installed, whether each can start here, and the ffmpeg in use.

    Each backend is imported and tried, which takes a moment. The ffmpeg that pushes WebRTC
    (WHIP) is named too.
    """
    found = {kind: [registry.checked(b) for _, b in sorted(registry.discover(kind).items())] for kind in _TITLES}
    every = [b for listed in found.values() for b in listed]
    widths = (max((len(b.name) for b in every), default=0), max((len(_state(b)[0]) for b in every), default=0))
    ffmpeg = _ffmpegs()

    def draw(console: Console) -> None:
        for kind, listed in found.items():
            console.print(f"[bold]{_TITLES[kind]}[/]")
            console.print(Padding(_table(listed, widths), (0, 0, 1, 2)))
        for line, path in ffmpeg:
            console.print(line)
            for piece in _path_lines(path, console.width - 2) if path else []:
                console.print(f"  {escape(piece)}", overflow="fold")

    _output(draw)


def _state(b: registry.BackendInfo) -> tuple[str, str, str | None]:
    """Ready or not, its colour, and the note beneath: why not and what to install, or what a
    ready backend runs without."""
    if not b.ready:
        return "not ready", "red", b.status
    if b.notes:
        return "ready", "yellow", b.status.removeprefix("ready ")
    return "ready", "green", None


def _table(listed: list[registry.BackendInfo], widths: tuple[int, int]) -> Table:
    """One row per backend: its name, ready or not, and what it is (and who made it, unless
    linly-push did), then a row with the note, if any. ``widths`` line the columns up across tables."""
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True, min_width=widths[0])
    table.add_column(no_wrap=True, min_width=widths[1])
    table.add_column(overflow="fold")  # wrapped between words; a longer word is folded, never cut
    for b in listed:
        state, colour, note = _state(b)
        about = escape(b.cls.description) if b.cls is not None else ""
        if b.origin != "linly-push":
            about += f" [dim](from {escape(b.origin)})[/]"
        table.add_row(escape(b.name), f"[{colour}]{state}[/]", about)
        if note is not None:
            table.add_row("", "", f"[{colour}]{escape(note)}[/]")
    return table


def _path_lines(path: str, width: int) -> list[str]:
    """``path`` on lines of at most ``width`` characters, each but the last ending in "/": a path
    too long for the terminal is broken between folder names, never inside one."""
    lines = [""]
    for part in re.findall(r"[^/]*/|[^/]+$", path):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return lines


def _ffmpegs() -> list[tuple[str, str | None]]:
    """Lines about the ffmpeg in use and the one that pushes WebRTC, each with its path."""
    try:
        ff = find_ffmpeg()
    except LinlyPushError as exc:
        return [(f"[red]ffmpeg: {escape(str(exc))}[/]", None)]
    found = [(f"ffmpeg {escape(ff.version)} [dim](from {escape(ff.source)})[/]:", ff.path)]
    try:
        wf = ff if ff.whip else find_ffmpeg(whip=True)
    except LinlyPushError as exc:
        return [*found, (f"[yellow]WebRTC (WHIP): {escape(str(exc))}[/]", None)]
    return [*found, (f"WebRTC (WHIP): ffmpeg {escape(wf.version)} [dim](from {escape(wf.source)})[/]:", wf.path)]
