"""The command line. The entry point imports the application lazily, so a Ctrl-C while Python
is still loading it ends with the usual one-line message, not a traceback."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    try:
        from .app import main as run
    except KeyboardInterrupt:
        print("linly-push: interrupted: stopped before anything was written", file=sys.stderr)
        sys.exit(130)
    run(argv)
