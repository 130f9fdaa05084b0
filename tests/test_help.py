"""What the terminal shows: help texts whole (Typer renders them as Rich markup, where a
bracketed word like ``[[segment]]`` is a tag and vanishes unless it is escaped), and the
``backends`` listing readable at 80 columns, in a real pseudo-terminal, as people see it."""

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

import imageio_ffmpeg
import pytest
import typer
from cli_run import linly, text
from rich.cells import cell_len

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


def _at_80_columns(path: tuple[str, ...]) -> list[str]:
    r = linly(*path, "--help", env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"}, timeout=60)
    assert r.returncode == 0, text(r)
    return r.stdout.decode().splitlines()


def _examples(command: Any) -> list[str]:
    """The lines of a help text's examples (its ``\\b`` block: printed as written, not rewrapped)."""
    help = command.help or ""
    return [line.strip() for line in help.partition("\b\n")[2].split("\n\n")[0].splitlines() if line.strip()]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "linly-push" for p, _ in COMMANDS])
def test_help_at_80_columns_shows_flags_bare_and_examples_whole(path: tuple[str, ...], command: Any) -> None:
    lines = _at_80_columns(path)
    assert all(cell_len(line) <= 80 for line in lines), "\n".join(lines)
    # A flag takes no value: nothing after it reads as if it did ("--json <bool>").
    assert not [line for line in lines if "<bool>" in line], "\n".join(lines)
    flags = [p for p in command.get_params(typer.Context(command)) if getattr(p, "is_flag", False)]
    for flag in flags:
        assert any(re.search(rf"{re.escape(flag.opts[0])}(?!-)\b", line) for line in lines), flag.opts
    # Each example stays one line, to copy whole.
    shown = {line.strip(" │") for line in lines}
    for example in _examples(command):
        assert example in shown, f"{example!r} is wrapped at 80 columns:\n" + "\n".join(lines)


def test_the_list_of_commands_gives_each_one_line_where_there_is_room() -> None:
    # Typer keeps the line breaks of a command's first paragraph there, however wide the terminal.
    r = linly("--help", env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"}, timeout=60)
    lines = r.stdout.decode().splitlines()
    start = next(i for i, line in enumerate(lines) if "Commands" in line)
    rows = [line.strip("│ ") for line in itertools.takewhile(lambda line: not line.startswith("╰"), lines[start + 1 :])]
    assert [row.split()[0] for row in rows] == ["render", "live", "probe", "backends", "presets"], "\n".join(lines)


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


HEADINGS = {"TTS backends (--tts NAME)": "tts", "Avatar backends (--avatar NAME)": "avatar"}


@pytest.mark.parametrize("columns", [80, 120, None], ids=["80 columns", "120 columns", "a pipe"])
def test_backends_reads_well_at_80_columns_and_piped(columns: int | None, tmp_path: Path) -> None:
    # An ffmpeg at a path longer than the terminal is wide.
    folder = tmp_path / "a-folder-with-a-name-long-enough-to-need-two-lines" / "bin"
    folder.mkdir(parents=True)
    ffmpeg = folder / "ffmpeg"
    ffmpeg.symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    env = {"PYTHONPATH": PLUGINS, "LINLY_PUSH_FFMPEG": str(ffmpeg)}
    args = [sys.executable, "-m", "linly_push", "backends"]
    if columns is None:
        r = subprocess.run(args, capture_output=True, text=True, timeout=60, env={**os.environ, **env})
        assert r.returncode == 0, r.stderr
        shown = r.stdout
        assert [line for line in shown.splitlines() if line != line.rstrip()] == [], "rows padded with blanks"
    else:
        shown = _in_terminal(args, columns, {**env, "COLUMNS": str(columns)})
        assert max(cell_len(line.rstrip()) for line in shown.splitlines()) <= columns, shown
    lines = shown.splitlines()
    # Under each kind's heading, a row starting with the backend's name; the lines it wraps onto,
    # and its note, start further in.
    rows, kind = {}, None
    for line in lines:
        kind = HEADINGS.get(line, kind if line.startswith("  ") else None)
        if kind and line.startswith("  ") and not line.startswith("   "):
            rows[line.split()[0]] = kind
    assert rows == _names(), shown
    assert len([line for line in lines if line in HEADINGS]) == 2, shown  # each heading once
    # Ready or not, and why, with the whole install hint; who made a backend, unless linly-push did.
    words = " ".join(shown.split())
    assert "espeak ready espeak-ng (offline" in words and "(from linly-push)" not in words
    assert ("uninstalled not ready a TTS whose engine [a package] is not installed (from linly-test-plugins) "
            "engine-package is not installed (pip install 'linly-test-plugins[uninstalled]')") in words
    # The ffmpeg in use and the one that pushes WebRTC, each with its path: broken, if at all,
    # after a "/", and whole again when the lines are joined.
    for label in ("ffmpeg ", "WebRTC (WHIP): ffmpeg "):
        at = next(i for i, line in enumerate(lines) if line.startswith(label))
        at = next(i for i in range(at, len(lines)) if lines[i].endswith("(from LINLY_PUSH_FFMPEG):"))  # it may wrap
        pieces = list(itertools.takewhile(lambda line: line.startswith("  "), lines[at + 1 :]))
        path = "".join(piece.strip() for piece in pieces)
        assert path == str(ffmpeg), shown
        assert all(piece.rstrip().endswith("/") for piece in pieces[:-1]), shown
        assert len(pieces) == (1 if columns is None or columns > len(str(ffmpeg)) + 2 else 2), shown
