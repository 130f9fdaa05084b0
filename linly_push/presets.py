"""Presets: the scene settings in presets/*.toml, a user's own TOML file, and overrides.

Layering, lowest first: the preset file, then ``--set key=value`` pairs, then explicit flags
(the CLI turns those into the same dotted keys). Unknown keys and bad values are UsageErrors.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Inside an installed wheel, or presets/ at the top of a source checkout (an editable install).
_HERE = Path(__file__).resolve().parent
PRESET_DIR = next((d for d in (_HERE / "builtin_presets", _HERE.parent / "presets") if d.is_dir()), _HERE / "builtin_presets")
DEFAULT_PRESET = "live"
X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
)
_RATE = re.compile(r"^\d+(\.\d+)?[kKM]?$")
MAX_PRESET_BYTES = 1024 * 1024
"""The largest preset file read: a preset is a few dozen lines, and a bound keeps a wrong path
(``--preset /dev/zero``, a video) from filling the memory."""
MAX_DEPTH = 32
"""How deep tables and arrays may nest in a preset, the top-level table not counted: a preset
needs three levels. Deeper ones would run past Python's recursion limit in the TOML parser, the
validation and the TOML writer: a traceback instead of an error."""


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VideoSettings(_Table):
    width: int = Field(960, ge=16, le=7680)
    height: int = Field(540, ge=16, le=4320)
    fps: int = Field(25, ge=1, le=120)
    bitrate: str = "2M"  # target, ffmpeg notation (2M, 1500k)
    maxrate: str | None = "2M"  # VBV ceiling; None for unconstrained
    bufsize: str | None = "2M"  # VBV buffer
    cbr: bool = True  # pad to a constant rate (x264 nal-hrd=cbr), as many platforms ask
    x264_preset: str = "ultrafast"
    tune: str | None = "zerolatency"
    gop_seconds: float = Field(2.0, gt=0, le=10)  # keyframe interval

    @field_validator("width", "height")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError("must be even (yuv420p)")
        return v

    @field_validator("bitrate", "maxrate", "bufsize")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        if v is not None and not _RATE.match(str(v)):
            raise ValueError(f"{v!r} is not a bit rate like 2M or 1500k")
        return v

    @field_validator("x264_preset")
    @classmethod
    def _preset(cls, v: str) -> str:
        if v not in X264_PRESETS:
            raise ValueError(f"must be one of {', '.join(X264_PRESETS)}")
        return v

    @property
    def gop(self) -> int:
        return max(1, round(self.gop_seconds * self.fps))


class AudioSettings(_Table):
    sample_rate: int = 44100
    channels: int = Field(2, ge=1, le=2)
    bitrate: str = "128k"
    # ffmpeg's AAC search: "fast" costs a third of "twoloop" on speech, which matters on 2 cores.
    aac_coder: Literal["fast", "twoloop"] = "fast"
    # Speech and recordings are brought to this integrated loudness (EBU R128 / ITU-R BS.1770),
    # so every voice and file plays at one level; "off" keeps levels as they are.
    loudness: float | Literal["off"] = -16.0  # LUFS
    true_peak: float = Field(-1.0, ge=-9, le=0)  # dBTP ceiling after normalisation

    @field_validator("sample_rate")
    @classmethod
    def _aac_rate(cls, v: int) -> int:
        allowed = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
        if v not in allowed:
            raise ValueError(f"must be one of {', '.join(map(str, allowed))}")
        return v

    @field_validator("bitrate")
    @classmethod
    def _rate(cls, v: str) -> str:
        if not _RATE.match(v):
            raise ValueError(f"{v!r} is not a bit rate like 128k")
        return v

    @field_validator("loudness", mode="before")
    @classmethod
    def _loudness(cls, v: Any) -> float | str:
        if v == "off":
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not -40 <= v <= -5:
            raise ValueError(f"expected a target in LUFS from -40 to -5 (e.g. -16), or off; got {v!r}")
        return float(v)


class SpeechSettings(_Table):
    lead_in: float = Field(0.5, ge=0, le=30)  # silence (idle avatar) before the first sentence
    sentence_pause: float = Field(0.3, ge=0, le=30)
    paragraph_pause: float = Field(0.9, ge=0, le=30)  # at a blank line in the script
    tail: float = Field(0.5, ge=0, le=30)  # silence after the last sentence
    max_sentence_chars: int = Field(160, ge=10, le=2000)  # longer sentences are cut at commas/spaces


class LiveSettings(_Table):
    url: str = ""  # rtmp://, rtmps://, srt:// or a WHIP endpoint's http(s)://; ${VAR} is expanded from the environment
    buffer: float = Field(3.0, ge=0.5, le=60)  # seconds TTS and the avatar may run ahead


class WhipSettings(_Table):
    """[whip]: what a push to a WebRTC endpoint (``--url http(s)://...``, WHIP) changes.

    WebRTC carries H.264 in the constrained baseline profile without B-frames, and Opus at
    48 kHz; the picture keeps [video]'s size, rate and bit rate.
    """

    gop_seconds: float = Field(1.0, gt=0, le=10)  # a viewer who joins waits for a keyframe
    opus_bitrate: str = "96k"
    token_env: str = ""  # the environment variable holding the endpoint's bearer token, if it needs one

    @field_validator("opus_bitrate")
    @classmethod
    def _rate(cls, v: str) -> str:
        if not _RATE.match(v):
            raise ValueError(f"{v!r} is not a bit rate like 96k")
        return v

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if v and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError(f"{v!r} is not the name of an environment variable (e.g. WHIP_TOKEN)")
        return v


class ReconnectSettings(_Table):
    """How `live` gets back on air after the server drops or stalls."""

    first_delay: float = Field(1.0, ge=0, le=600)  # seconds before the first retry
    max_delay: float = Field(30.0, gt=0, le=3600)  # the backoff doubles up to this
    give_up_after: float = Field(180.0, ge=0, le=86400)  # seconds without a working connection
    # The same, until a first connection got on air (at most give_up_after): a server that never
    # answered is more likely a wrong URL or a server not started than an outage.
    first_give_up_after: float = Field(30.0, ge=0, le=86400)
    healthy_after: float = Field(10.0, gt=0, le=3600)  # on air this long resets the backoff


class CaptionSettings(_Table):
    """[captions]: text burned into the picture, and a WebVTT file beside a rendered file."""

    burn: Literal["off", "sentence", "words"] = "off"  # words: each word appears as it is spoken
    vtt: bool = True  # render: write FILE.vtt beside the video
    font: str | None = None  # a .ttf/.otf/.ttc file; default: a bundled font that covers Chinese
    size: float = Field(0.055, ge=0.02, le=0.2)  # text height, as a fraction of the frame height


class BackendChoice(BaseModel):
    """[tts] or [avatar]: ``backend`` picks one; the other keys are that backend's options."""

    model_config = ConfigDict(extra="allow")
    backend: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def key(self) -> ChoiceKey:
        """The same for equal choices (backend and options): a job starts one backend per key."""
        return ChoiceKey(self.backend, _frozen(self.options))


@dataclass(frozen=True)
class ChoiceKey:
    """A backend choice as a dictionary key (see ``BackendChoice.key``)."""

    backend: str
    options: tuple[tuple[str, Any], ...]


def _frozen(value: Any) -> Any:
    """``value`` with its dicts and lists made into sorted tuples: hashable, order-blind for dicts."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


class Preset(_Table):
    name: str = ""
    description: str = ""
    video: VideoSettings = VideoSettings()
    audio: AudioSettings = AudioSettings()
    speech: SpeechSettings = SpeechSettings()
    live: LiveSettings = LiveSettings()
    whip: WhipSettings = WhipSettings()
    reconnect: ReconnectSettings = ReconnectSettings()
    captions: CaptionSettings = CaptionSettings()
    tts: BackendChoice = BackendChoice(backend="espeak")
    avatar: BackendChoice = BackendChoice(backend="cartoon")

    @model_validator(mode="after")
    def _vbv(self) -> Preset:
        v = self.video
        if v.maxrate and not v.bufsize:
            raise ValueError("video.bufsize is needed with video.maxrate")
        if v.cbr and v.maxrate != v.bitrate:
            # x264 silently falls back to VBR otherwise.
            raise ValueError("video.cbr needs video.maxrate equal to video.bitrate (or set video.cbr=false)")
        return self


def available() -> dict[str, Path]:
    """Built-in presets by name."""
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.toml"))}


def parse_value(text: str) -> Any:
    """A --set value: TOML when it parses as a TOML value (30, 2.5, true, "x", [1, 2]), else text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+", key):
        raise UsageError(f"--set takes section.key=value (e.g. video.fps=30), not {item!r}")
    try:
        return key, parse_value(value.strip())
    except RecursionError:  # the parser recurses once per level: far deeper than MAX_DEPTH
        raise UsageError(f"--set {key}: the value is nested more than {MAX_DEPTH} deep (tables and arrays)") from None


def apply(data: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` in nested ``data``."""
    *parents, leaf = key.split(".")
    node = data
    for p in parents:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise UsageError(f"--set {key}: {p} is not a table")
        node = child
    node[leaf] = value


def read(source: str) -> tuple[str, dict[str, Any]]:
    """A preset's name and raw table, from a built-in name or a path to a TOML file."""
    builtin = available()
    if source in builtin:
        path, name = builtin[source], source
    else:
        path = Path(source).expanduser()
        if path.suffix != ".toml" and not path.exists():
            choices = ", ".join(builtin)
            raise UsageError(f"unknown preset {source!r}; choose one of {choices}, or give a path to a .toml file")
        name = path.stem
    try:
        data = tomllib.loads(_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"invalid preset {path}: {exc}") from None
    except RecursionError:  # the parser recurses once per level: far deeper than MAX_DEPTH
        raise UsageError(f"invalid preset {path}: tables or arrays nested more than {MAX_DEPTH} deep") from None
    return name, data


def _text(path: Path) -> str:
    """A preset file's text; UsageError unless it is a file of UTF-8 within MAX_PRESET_BYTES."""
    try:
        # Non-blocking: opening a FIFO would wait for a writer. It is refused below.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise UsageError(f"preset file not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read preset {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a device (/dev/zero), a FIFO
            raise UsageError(f"preset {path} is not a file: give a .toml file")
        with open(fd, "rb", closefd=False) as file:
            data = file.read(MAX_PRESET_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read preset {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_PRESET_BYTES:
        raise UsageError(f"preset {path} is over {MAX_PRESET_BYTES // 2**20} MiB; a preset is a few dozen lines of TOML")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"cannot read preset {path}: not UTF-8 (bad byte at position {exc.start})") from None


def too_deep(data: dict[str, Any]) -> str | None:
    """Where ``data`` nests tables and arrays more than MAX_DEPTH deep (its first two keys), or
    None. Walked without recursion, so any depth is measured."""
    stack: list[tuple[Any, tuple[str, ...], int]] = [(data, (), 0)]
    while stack:
        value, keys, depth = stack.pop()
        if isinstance(value, (dict, list)) and depth > MAX_DEPTH:
            return ".".join(keys[:2])
        if isinstance(value, dict):
            stack.extend((v, (*keys, str(k)), depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, keys, depth + 1) for v in value)
    return None


def load(source: str = DEFAULT_PRESET, overrides: list[tuple[str, Any]] = ()) -> Preset:
    """Load a preset and apply ``overrides`` (dotted key, value) in order."""
    name, data = read(source)
    data.setdefault("name", name)
    for key, value in overrides:
        apply(data, key, value)
    deep = too_deep(data)
    if deep is not None:
        raise UsageError(f"preset {name!r}: {deep} is nested more than {MAX_DEPTH} deep (tables and arrays)")
    try:
        return Preset.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise UsageError(f"preset {name!r}: unknown setting {where}") from None
        if not where:  # a rule across settings
            raise UsageError(f"preset {name!r}: {describe(err)}") from None
        raise UsageError(f"preset {name!r}: bad value for {where}: {describe(err)}") from None


_EXPECTED = {
    "int_parsing": "a whole number", "int_type": "a whole number", "int_from_float": "a whole number",
    "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false",
    "bool_type": "true or false", "string_type": "text", "model_type": "a table of settings",
    "dict_type": "a table of settings", "model_attributes_type": "a table of settings",
}


def describe(err: Any) -> str:
    """One pydantic error in a user's words, with the value they gave."""
    expected = _EXPECTED.get(err["type"])
    if expected:
        return f"expected {expected}, got {err.get('input')!r}"
    return str(err["msg"]).removeprefix("Value error, ")
