"""What the terminal shows: help texts whole (Typer renders them as Rich markup, where a
bracketed word like ``[[segment]]`` is a tag and vanishes unless it is escaped), and the
``backends`` table readable at 80 columns, in a real pseudo-terminal, as people see it."""

from __future__ import annotations

import fcntl
import itertools
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from cli_run import linly, text

from linly_push.cli.app import app

PLUGINS = str(Path(__file__).parent / "plugins")  # adds backends that are not ready, with long hints

_BRACKETED = re.compile(r"\[[^\n]*?\]+")  # "[[segment]]", "[a package]": what markup would eat
_ESCAPE = re.compile(r"\\(?=\[)")  # Rich markup's escape of a bracket meant to be shown
_FRAME = re.compile(r"[│╭╮╰╯─]")  # the panels' borders, between the words of a wrapped text


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command under ``command`` (a click command, as Typer builds it), with its path."""
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():  # a group's subcommands
        found += _commands(sub, (*path, name))
    return found


def _written(command: Any) -> list[str]:
    """Every help text of one command as its author means it to read: its own, its epilog, its
    options', with markup escapes taken out."""
    texts = [command.help or "", command.epilog or ""]
    texts += [getattr(p, "help", None) or "" for p in command.params]
    return [_ESCAPE.sub("", t) for t in texts]


def _shown(path: tuple[str, ...]) -> str:
    r = linly(*path, "--help", env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"}, timeout=60)
    assert r.returncode == 0, text(r)
    return " ".join(_FRAME.sub(" ", r.stdout.decode()).split())


COMMANDS = _commands(typer.main.get_command(app))


@pytest.mark.parametrize("path", [("render",), ("live",)], ids=" ".join)
def test_rundown_help_shows_its_segment_tables(path: tuple[str, ...]) -> None:
    assert "A show in TOML: [[segment]] tables of script" in _shown(path)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "linly-push" for p, _ in COMMANDS])
def test_no_help_text_loses_bracketed_text(path: tuple[str, ...], command: Any) -> None:
    shown = _shown(path)
    for written in _written(command):
        for bracketed in _BRACKETED.findall(" ".join(written.split())):
            assert bracketed in shown, f"{bracketed!r} of {' '.join(path) or 'linly-push'} --help is lost"


def _in_terminal(args: list[str], columns: int, env: dict[str, str]) -> str:
    """What ``args`` writes to a pseudo-terminal ``columns`` wide, escape codes taken out."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            env={**environ, "TERM": "xterm-256color", **env})  # fmt: skip
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 1)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the program is gone and so is its end of the terminal
                    break
                if not chunk:
                    break
                out += chunk
        assert proc.wait(timeout=10) == 0, out.decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", out.decode()).replace("\r\n", "\n")


def _names() -> dict[str, str]:
    """Every backend linly-push finds with the test plugins, by name: its kind."""
    code = "from linly_push.backends import registry\n" \
           "for kind in registry.GROUPS:\n    for name in registry.discover(kind): print(kind, name)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": PLUGINS}, check=True)  # fmt: skip
    return {name: kind for kind, name in (line.split() for line in r.stdout.splitlines())}


@pytest.mark.parametrize("columns", [80, 120, None], ids=["80 columns", "120 columns", "a pipe"])
def test_backends_table_keeps_names_whole(columns: int | None) -> None:
    args = [sys.executable, "-m", "linly_push", "backends"]
    if columns is None:
        r = subprocess.run(args, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": PLUGINS})
        assert r.returncode == 0, r.stderr
        shown = r.stdout
    else:
        shown = _in_terminal(args, columns, {"PYTHONPATH": PLUGINS, "COLUMNS": str(columns)})
    lines = shown.splitlines()
    if columns is not None:
        assert max(len(line.rstrip()) for line in lines) <= columns, shown
    # A row starts with its kind and name; the lines a row wraps onto start with blanks.
    rows = {line.split()[1]: line.split()[0] for line in lines if line.split()[:1] in (["tts"], ["avatar"])}
    assert rows == _names(), shown
    # The status column, read down the wrapped lines of a row, holds the whole install hint.
    header = next(line for line in lines if line.split()[:2] == ["kind", "name"])
    start, end = header.index("status"), header.index("description")
    first = next(i for i, line in enumerate(lines) if line.split()[:2] == ["tts", "uninstalled"])
    block = [lines[first], *itertools.takewhile(lambda line: not line[:start].strip(), lines[first + 1 :])]
    status = "".join(line[start:end] for line in block).replace(" ", "")
    assert "engine-packageisnotinstalled(pipinstall'linly-test-plugins[uninstalled]')" in status, shown
