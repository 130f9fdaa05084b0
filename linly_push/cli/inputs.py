"""Reading what the user gave (--script, --audio) into pipeline inputs, before anything starts."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from .. import audio as audio_io
from ..errors import InputError, UsageError
from ..pipeline import AudioFile, Input
from ..presets import AudioSettings
from ..script import Sentence, parse, stream


def read_script(source: str) -> str:
    """The script's text: a UTF-8 file, or standard input for '-'."""
    if source == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("--script - reads the script from standard input, but nothing is piped in")
        data = sys.stdin.buffer.read()
        where = "standard input"
    else:
        path = Path(source)
        if not path.exists():
            raise InputError(f"script not found: {path}")
        if path.is_dir():
            raise InputError(f"script path is a folder, not a file: {path}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read script {path}: {exc.strerror}") from None
        where = str(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"script {where} is not UTF-8 (bad byte at position {exc.start}); save it as UTF-8 and try again"
        ) from None
    if not text.strip():
        raise InputError(f"script {where} is empty")
    return text


def stdin_lines() -> Iterator[str]:
    """Standard input as it arrives, line by line, checked as UTF-8."""
    for number, raw in enumerate(sys.stdin.buffer, 1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise InputError(f"line {number} of standard input is not UTF-8; the broadcast was ended there") from None
        yield line


def gather(
    script: str | None,
    audio: list[Path],
    max_chars: int,
    streaming: bool = False,
    audio_settings: AudioSettings | None = None,
) -> Iterable[Input]:
    """The inputs, checked up front; with ``streaming``, a script on standard input is read as it
    arrives (live), so the broadcast can start before the script is finished. Given the preset's
    ``audio_settings`` with loudness on, recordings are measured here too, before anything goes
    on air (seconds for an hour of audio)."""
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
        infos = [audio_io.probe(p) for p in audio]  # every file checked before the long part
        if audio_settings is not None:
            minutes = sum(i.duration for i in infos) / 60
            if minutes > 1 and audio_settings.loudness != "off":
                print(f"linly-push: measuring loudness ({minutes:.0f} min of audio; --set audio.loudness=off skips it) ...",
                      file=sys.stderr, flush=True)
            infos = [audio_io.measured(i, audio_settings) for i in infos]
        return [AudioFile(i) for i in infos]
    raise UsageError("nothing to say: give --script FILE (or - for standard input) or --audio FILE")
