"""Rundowns: a show as an ordered list of ``[[segment]]`` tables in a TOML file.

Each segment is one of ``script`` (text), ``script_file``, ``audio`` (a recording) or ``pause``
(seconds of idle avatar and silence), with optional ``tts``, ``avatar`` and ``voice`` overrides
for that segment only. Paths (script_file, audio, and files named in a backend table) are
relative to the rundown file. Everything is read and checked here, before anything goes on air.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import audio as audio_io
from .backends import registry
from .errors import InputError, UsageError
from .presets import BackendChoice, Preset, describe
from .program import AudioFile, Cast, Input, Rest
from .script import Sentence, parse

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_KINDS = ("script", "script_file", "audio", "pause")


class _Segment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    script: str | None = None
    script_file: str | None = None
    audio: str | None = None
    pause: float | None = Field(None, gt=0, le=86400, strict=True)
    tts: str | dict[str, Any] | None = None  # a backend name, or a table with backend and options
    avatar: str | dict[str, Any] | None = None
    voice: str | None = None  # shorthand for the TTS option "voice"

    @model_validator(mode="after")
    def _one_kind(self) -> _Segment:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            got = " and ".join(given) if given else "none"
            raise ValueError(f"needs exactly one of {', '.join(_KINDS)} (got {got})")
        return self

    @field_validator("tts", "avatar")
    @classmethod
    def _backend(cls, v: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if isinstance(v, dict) and not isinstance(v.get("backend"), str):
            raise ValueError("a table here needs a backend name, e.g. { backend = \"piper\", speed = 1.1 }")
        return v


class _Rundown(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = ""  # shown when the show starts
    segment: list[_Segment] = Field(min_length=1)


@dataclass(frozen=True)
class Show:
    title: str
    program: list[Input]


def load(path: str | Path, preset: Preset, read_script: Callable[[Path], str]) -> Show:
    """The show a rundown file describes, every file in it read (scripts) or probed (audio) and
    every backend choice checked.

    ``read_script`` reads and checks one script file (the CLI's, so errors read the same).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"rundown not found: {path}" if not path.exists() else f"rundown is not a file: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"rundown {path} is not UTF-8; save it as UTF-8 and try again") from None
    except OSError as exc:
        raise InputError(f"cannot read rundown {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"invalid rundown {path}: {exc}") from None
    try:
        rundown = _Rundown.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"rundown {path}: {_where(exc)}") from None

    base = path.parent
    program: list[Input] = []
    for number, seg in enumerate(rundown.segment, 1):
        where = f"rundown {path}, segment {number}"
        program.append(_cast(seg, preset, base, where))
        if seg.pause is not None:
            program.append(Rest(seg.pause))
        elif seg.audio is not None:
            program.append(AudioFile(audio_io.probe(base / seg.audio)))
        else:
            text = seg.script if seg.script is not None else read_script(base / str(seg.script_file))
            items = parse(text, preset.speech.max_sentence_chars)
            if not any(isinstance(i, Sentence) for i in items):
                raise InputError(f"{where} has nothing to say")
            program.extend(items)
    return Show(rundown.title, program)


def _cast(seg: _Segment, preset: Preset, base: Path, where: str) -> Cast:
    tts = _choice(seg.tts, preset.tts, base)
    if seg.voice is not None:
        tts = BackendChoice(**{**tts.model_dump(), "voice": seg.voice})
    cast = Cast(tts, _choice(seg.avatar, preset.avatar, base))
    speaks = seg.script is not None or seg.script_file is not None  # else its TTS never runs
    for kind, choice in (("tts", cast.tts), ("avatar", cast.avatar))[0 if speaks else 1 :]:
        try:
            registry.options(registry.get(kind, choice.backend), choice.options)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
    return cast


def _choice(value: str | dict[str, Any] | None, default: BackendChoice, base: Path) -> BackendChoice:
    """A segment's backend: the preset's when not given; the preset's options when only the
    same backend's name is given; a table replaces them. A relative path in a table that names
    a file beside the rundown (a photo, a clip, a voice) is taken from there."""
    if value is None or value == default.backend:
        return default
    if isinstance(value, str):
        return BackendChoice(backend=value)
    return BackendChoice(**{k: _beside(v, base) for k, v in value.items()})


def _beside(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value and not Path(value).is_absolute() and (base / value).exists():
        return str(base / value)
    return value


def _where(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    if len(loc) >= 2 and loc[0] == "segment" and loc[1].isdigit():
        place = f"segment {int(loc[1]) + 1}" + (f", {'.'.join(loc[2:])}" if len(loc) > 2 else "")
    else:
        place = ".".join(loc) or "the file"
    if err["type"] == "extra_forbidden":
        if loc and loc[0] == "segment":
            return f"{place}: unknown key (a segment takes {', '.join(_Segment.model_fields)})"
        return f"unknown key {place!r} (a rundown has title and [[segment]] tables)"
    if err["type"] == "missing" and loc == ["segment"]:
        return "no [[segment]] tables"
    return f"{place}: {describe(err)}"
