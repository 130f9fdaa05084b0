"""The Typer application: a thin layer over the library. The only place that prints, and the
only place errors become exit codes."""

from __future__ import annotations

import sys
import traceback

import typer
from typer._click.exceptions import ClickException, UsageError as ClickUsageError
from typer.exceptions import Abort

from .. import __version__
from ..errors import EXIT_CODES, Interrupted, LinlyPushError
from ..events import Error
from . import info, probe, run
from .signals import Signals

_EPILOG = "Exit codes: " + "; ".join(f"{code} {what}" for code, what in EXIT_CODES.items())

app = typer.Typer(
    name="linly-push",
    help="Scripted talking-avatar broadcasts: a script or recordings in, a lip-synced avatar out — "
    "live over RTMP/SRT, or rendered to a file.",
    epilog=_EPILOG,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
app.command(epilog=_EPILOG)(run.render)
app.command(epilog=_EPILOG)(run.live)
app.command(epilog=_EPILOG)(probe.probe)
app.add_typer(info.presets_app, name="presets")
app.command()(info.backends)


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
