"""`presets list|show` and `backends`: what is available here."""

from __future__ import annotations

from typing import Annotated, Optional

import tomli_w
import typer
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from .. import presets as presets_mod
from .. import urls
from ..backends import registry
from ..errors import LinlyPushError
from ..ffmpeg import find_ffmpeg

def _console() -> Console:
    # Piped into a file or grep, tables keep one row per line (a status can be long) instead of
    # wrapping at 80 columns.
    console = Console()
    return console if console.is_terminal else Console(width=1000)


presets_app = typer.Typer(help="List and inspect presets (scene settings).", no_args_is_help=True)


@presets_app.command("list")
def presets_list() -> None:
    """The built-in presets, with their picture and rate."""
    table = Table("name", "video", "bitrate", "audio", "url", "description", box=None)
    for name in presets_mod.available():
        p = presets_mod.load(name)
        v, a = p.video, p.audio
        rate = v.bitrate + (" cbr" if v.cbr else f" (max {v.maxrate})" if v.maxrate else "")
        table.add_row(name, f"{v.width}x{v.height}@{v.fps}", rate, f"{a.sample_rate} Hz {a.bitrate}", urls.mask(p.live.url) if p.live.url else "-", p.description)
    _console().print(table)


@presets_app.command("show")
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
    _console().print(Syntax(tomli_w.dumps(data), "toml", theme="ansi_dark", background_color="default"))


def backends() -> None:
    """The TTS and avatar backends installed, whether each can start here (each is imported and
    tried, which takes a moment), the ffmpeg in use, and the one that pushes WebRTC (WHIP)."""
    # Names and kinds stay whole; in a narrow terminal the status (install hints) and the
    # description share what is left and wrap.
    table = Table(box=None)
    table.add_column("kind", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("status", overflow="fold")  # a long word is folded, never cut off
    table.add_column("description", overflow="fold")
    table.add_column("from", no_wrap=True)
    for kind in ("tts", "avatar"):
        for name, found in sorted(registry.discover(kind).items()):
            info = registry.checked(found)
            colour = "green" if info.ready and not info.notes else "yellow"
            status = f"[{colour}]{escape(info.status)}[/]"
            desc = info.cls.description if info.cls is not None else ""
            table.add_row(kind, escape(name), status, escape(desc), escape(info.origin))
    console = _console()
    console.print(table)
    try:
        ff = find_ffmpeg()
        console.print(f"\nffmpeg {ff.version}: {escape(ff.path)} [dim](from {ff.source})[/]")
    except LinlyPushError as exc:
        console.print(f"\n[red]ffmpeg: {escape(str(exc))}[/]")
        return
    try:
        wf = ff if ff.whip else find_ffmpeg(whip=True)
        console.print(f"WebRTC (WHIP): ffmpeg {wf.version}: {escape(wf.path)} [dim](from {wf.source})[/]")
    except LinlyPushError as exc:
        console.print(f"[yellow]WebRTC (WHIP): {escape(str(exc))}[/]")
