"""Rundowns: a show as an ordered list of ``[[segment]]`` tables in a TOML file.

Each segment is one of ``script`` (text), ``script_file``, ``audio`` (a recording) or ``pause``
(seconds of idle avatar and silence), with optional ``tts``, ``avatar`` and ``voice`` overrides
for that segment only. Paths (script_file, audio, and files named in a backend table) are
relative to the rundown file; ``confine`` refuses those that lead out of its folder, and backend
options only an operator may set (``backends.base.TRUSTED``). Everything is read and checked here,
before anything goes on air.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import audio as audio_io
from .backends import registry
from .backends.base import trusted
from .errors import InputError, UsageError
from .presets import MAX_DEPTH, BackendChoice, Preset, describe, too_deep
from .program import AudioFile, Cast, Input, Rest, Show
from .script import MAX_SCRIPT_BYTES, Sentence, over_limit, parse, read_bounded, read_text

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


def load(path: str | Path, preset: Preset, confine: bool = False) -> Show:
    """The show a rundown file describes, every file in it read (scripts) or probed (audio) and
    every backend choice checked.

    With ``confine``, a path that leads out of the rundown's folder (``..``, an absolute path, a
    symlink pointing elsewhere) is a UsageError, raised before that file is opened: for rundowns
    written by someone else.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"rundown not found: {path}" if not path.exists() else f"rundown is not a file: {path}")
    try:
        with path.open("rb") as file:
            data = tomllib.loads(read_bounded(file, f"rundown {path}").decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"rundown {path} is not UTF-8; save it as UTF-8 and try again") from None
    except OSError as exc:
        raise InputError(f"cannot read rundown {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"invalid rundown {path}: {exc}") from None
    except RecursionError:  # the parser recurses once per level
        raise UsageError(f"invalid rundown {path}: tables or arrays nested more than {MAX_DEPTH} deep") from None
    if deep := too_deep(data):
        raise UsageError(f"rundown {path}: {deep} is nested more than {MAX_DEPTH} deep (tables and arrays)")
    try:
        rundown = _Rundown.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"rundown {path}: {_where(exc)}") from None

    base = path.parent
    root = Path(os.path.realpath(base)) if confine else None
    program: list[Input] = []
    text_bytes = 0  # of every script so far: the show as a whole is bounded, not only each file
    for number, seg in enumerate(rundown.segment, 1):
        where = f"rundown {path}, segment {number}"
        program.append(_cast(seg, preset, base, where, root))
        if seg.pause is not None:
            program.append(Rest(seg.pause))
        elif seg.audio is not None:
            program.append(AudioFile(audio_io.probe(_path(base, "audio", seg.audio, where, root))))
        else:
            if seg.script is not None:
                text = seg.script
            else:
                text = read_text(_path(base, "script_file", seg.script_file, where, root))
            text_bytes += len(text.encode("utf-8"))
            if text_bytes > MAX_SCRIPT_BYTES:
                raise InputError(over_limit(f"rundown {path}, with its scripts up to segment {number},"))
            items = parse(text, preset.speech.max_sentence_chars)
            if not any(isinstance(i, Sentence) for i in items):
                raise InputError(f"{where} has nothing to say")
            program.extend(items)
    return Show(program, rundown.title)


def _path(base: Path, key: str, value: str | None, where: str, root: Path | None) -> Path:
    """A segment's ``key`` (script_file, audio) as a path from the rundown's folder."""
    path = base / str(value)
    if root is not None:
        _confined(path, root, where, f"{key} {value!r}")
    return path


def _confined(path: Path, root: Path, where: str, what: str) -> None:
    """Refuse ``path`` unless it is inside ``root`` once symlinks and ``..`` are resolved."""
    # realpath, not Path.resolve: a symlink loop is then refused or "not found", not a RuntimeError.
    if not Path(os.path.realpath(path)).is_relative_to(root):
        raise UsageError(f"{where}: {what} is outside the rundown's folder {root}, and its paths are confined to it")


def _cast(seg: _Segment, preset: Preset, base: Path, where: str, root: Path | None) -> Cast:
    tts = _choice("tts", seg.tts, preset.tts, base, where, root)
    if seg.voice is not None:
        tts = BackendChoice(**{**tts.model_dump(), "voice": seg.voice})
    cast = Cast(tts, _choice("avatar", seg.avatar, preset.avatar, base, where, root))
    speaks = seg.script is not None or seg.script_file is not None  # else its TTS never runs
    for kind, choice in (("tts", cast.tts), ("avatar", cast.avatar))[0 if speaks else 1 :]:
        try:
            registry.options(registry.get(kind, choice.backend), choice.options)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
    return cast


def _choice(
    kind: str, value: str | dict[str, Any] | None, default: BackendChoice, base: Path, where: str, root: Path | None
) -> BackendChoice:
    """A segment's backend: the preset's when not given; the preset's options when only the
    same backend's name is given; a table replaces them. A relative path in a table that names
    a file beside the rundown (a photo, a clip, a voice) is taken from there."""
    if value is None or value == default.backend:
        return default
    if isinstance(value, str):
        return BackendChoice(backend=value)
    if root is not None:
        _vetted(kind, value, where)
    return BackendChoice(**{k: v if k == "backend" else _beside(v, base, where, f"{kind}.{k}", root)
                            for k, v in value.items()})


def _vetted(kind: str, table: dict[str, Any], where: str) -> None:
    """Confined, a segment's backend table may not set the options only an operator may (one
    that runs a program, or says where the text and a key are sent)."""
    try:
        cls = registry.get(kind, table["backend"])  # type: ignore[arg-type]
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    for key in table:
        if key != "backend" and trusted(cls.Options, key):
            raise UsageError(
                f"{where}: {kind}.{key} of {cls.name} cannot come from a confined rundown (it runs a"
                " program or says where text is sent); set it in the preset or with --set"
            )


def _beside(value: Any, base: Path, where: str, name: str, root: Path | None) -> Any:
    if not isinstance(value, str) or not value:
        return value
    beside = not Path(value).is_absolute() and (base / value).exists()
    path = base / value if beside else Path(value)
    # Confined, every string that is a path is checked: an absolute one, existing or not, and a
    # relative one that names a file (beside the rundown, or else from the working folder).
    if root is not None and (path.is_absolute() or path.exists()):
        _confined(path, root, where, f"{name} {value!r}")
    return str(path) if beside else value


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
