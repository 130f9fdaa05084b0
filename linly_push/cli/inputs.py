"""Reading what the user gave (--script, --audio) into pipeline inputs, before anything starts."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from .. import audio as audio_io
from ..errors import InputError, UsageError
from ..program import AudioFile, Input, audio_minutes
from ..presets import AudioSettings
from ..script import Sentence, decode, parse, read_bounded, read_text, stream

MAX_LINE_BYTES = 1024 * 1024
"""The longest line of a script streamed on standard input (``live --script -``), newline not
counted: some 19 hours of speech, and what bounds the memory a stream without newlines (/dev/zero)
can take while it is read."""
_READ_BYTES = 65536  # one pipe's worth at a time


def read_script(source: str) -> str:
    """The script's text: a UTF-8 file, or standard input for '-'."""
    if source != "-":
        return read_text(source)
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("--script - reads the script from standard input, but nothing is piped in")
    return decode(read_bounded(sys.stdin.buffer, "the script on standard input"), "standard input")


def stdin_lines(fd: int = 0) -> Iterator[str]:
    """Standard input (or the pipe ``fd``) as it arrives, line by line, checked as UTF-8.

    Read with os.read, not through sys.stdin: the thread reading is still waiting for a line when
    the broadcast ends, and one waiting inside Python's buffered reader holds that reader's lock,
    which aborts the interpreter at exit ("could not acquire lock for <_io.BufferedReader>").
    """
    number = 1  # of the line being read
    line = bytearray()
    while chunk := os.read(fd, _READ_BYTES):
        *ends, rest = chunk.split(b"\n")
        for end in ends:  # each completes a line
            line += end
            _check_length(line, number)
            yield _decoded(line + b"\n", number)
            number += 1
            line = bytearray()
        line += rest
        _check_length(line, number)
    if line:
        yield _decoded(line, number)


def _check_length(line: bytearray, number: int) -> None:
    if len(line) > MAX_LINE_BYTES:
        raise InputError(f"line {number} of standard input is over {MAX_LINE_BYTES // 2**20} MiB (a line is a paragraph: "
                         "break it up); the broadcast was ended there")


def _decoded(raw: bytearray, number: int) -> str:
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError:
        raise InputError(f"line {number} of standard input is not UTF-8; the broadcast was ended there") from None


def gather(script: str | None, audio: list[Path], max_chars: int, streaming: bool = False) -> Iterable[Input]:
    """The inputs, checked up front; with ``streaming``, a script on standard input is read as it
    arrives (live), so the broadcast can start before the script is finished."""
    if script is not None and audio:
        raise UsageError("give either --script or --audio, not both")
    if script == "-" and streaming:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("--script - reads the script from standard input, but nothing is piped in")
        return stream(stdin_lines(), max_chars=max_chars)
    if script is not None:
        items: list[Input] = list(parse(read_script(script), max_chars=max_chars))
        if not any(isinstance(i, Sentence) for i in items):
            raise InputError(f"script {'from standard input' if script == '-' else script} has nothing to say")
        return items
    if audio:
        return [AudioFile(audio_io.probe(p)) for p in audio]
    raise UsageError("nothing to say: give --script FILE (or - for standard input) or --audio FILE")


def announce_measuring(program: Iterable[Input], settings: AudioSettings) -> None:
    """Say so before the recordings are measured for loudness when it takes a while (about 45 s
    an hour), so a quiet start is not taken for a hang."""
    minutes = audio_minutes(program) if settings.loudness != "off" else 0
    if minutes > 1:
        print(f"linly-push: measuring loudness ({minutes:.0f} min of audio; --set audio.loudness=off skips it) ...",
              file=sys.stderr, flush=True)
