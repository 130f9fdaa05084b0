"""The Typer application: a thin layer over the library. The only place that prints, and the
only place errors become exit codes."""

from __future__ import annotations

import sys
import traceback
from typing import Any

import typer
from typer._click.exceptions import ClickException, UsageError as ClickUsageError
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.exceptions import Abort

from .. import __version__
from ..errors import EXIT_CODES, Interrupted, LinlyPushError
from ..events import Error
from ..limits import raise_open_files
from . import info, probe, run
from .signals import Signals

_EPILOG = "Exit codes: " + "; ".join(f"{code} {what}" for code, what in EXIT_CODES.items())


def _bare_flags(params: list[Any]) -> list[Any]:
    # Typer's help writes a type after every option, "--json <bool>" too, as if a flag took a
    # value; an empty metavar leaves a flag bare.
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


class _Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _bare_flags(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _bare_flags(super().get_params(ctx))


app = typer.Typer(
    name="linly-push",
    cls=_Group,
    help="Scripted talking-avatar broadcasts: a script or recordings in, a lip-synced avatar out — "
    "live over RTMP/SRT, or rendered to a file.",
    epilog=_EPILOG,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
app.command(cls=_Command, epilog=_EPILOG)(run.render)
app.command(cls=_Command, epilog=_EPILOG)(run.live)
app.command(cls=_Command, epilog=_EPILOG)(probe.probe)
presets = typer.Typer(cls=_Group, help="List and inspect presets (scene settings).", no_args_is_help=True)
presets.command("list", cls=_Command)(info.presets_list)
presets.command("show", cls=_Command)(info.presets_show)
app.add_typer(presets, name="presets")
app.command(cls=_Command)(info.backends)


def _version(value: bool) -> None:
    if value:
        print(f"linly-push {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="On failure, show the traceback too."),
) -> None:
    # --debug is read in main(), which handles errors outside the command's context.
    del version, debug


def main(argv: list[str] | None = None) -> None:
    # Control API clients, pipes to each ffmpeg and recordings all hold descriptors: a soft
    # limit of 1,024 (many shells' and services') is no reason to run out while the hard one allows more.
    raise_open_files()
    args = sys.argv[1:] if argv is None else argv
    # Read here, not from the parsed options: errors are handled outside the command's context.
    debug, as_json = "--debug" in args, "--json" in args
    command = typer.main.get_command(app)
    try:
        with Signals():
            code = command.main(args=args, prog_name="linly-push", standalone_mode=False)
    except ClickUsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "linly-push"
        _fail(f"{exc.format_message()} (see '{where} --help')", 2, debug, as_json)
    except ClickException as exc:
        _fail(exc.format_message(), exc.exit_code, debug, as_json)
    except Interrupted as exc:
        _fail(str(exc), exc.exit_code, debug, as_json, label=exc.label)
    except LinlyPushError as exc:
        _fail(str(exc), exc.exit_code, debug, as_json)
    except (KeyboardInterrupt, Abort):
        _fail("stopped before anything was written", Interrupted.exit_code, debug, as_json, label="interrupted")
    except BrokenPipeError:
        sys.exit(1)
    if code == Interrupted.exit_code:  # Typer turns a Ctrl-C outside the pipeline into this code
        _fail("stopped before anything was written", code, debug, as_json, label="interrupted")
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int, debug: bool, as_json: bool, label: str = "error") -> None:
    if debug:
        traceback.print_exc()
    line = " ".join(message.split())  # one line, always
    if as_json:
        print(Error(code=code, message=line).to_json(), flush=True)
    print(f"linly-push: {label}: {line}", file=sys.stderr)
    sys.exit(code)
