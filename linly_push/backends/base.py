"""The two backend contracts: a TTS turns a sentence into Speech, an Avatar draws frames.

A backend is a class with a ``name``, a one-line ``description``, a nested pydantic ``Options``
model that forbids unknown keys (so a typo in ``--set tts.voce=...`` fails loudly) and, for
optional backends, the pip extra that makes it ready. Heavy imports belong inside the backend's
methods, so finding a backend never needs them; ``check`` is where a backend may import them, for
``linly-push backends``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, ClassVar

import numpy as np
from PIL import ImageColor
from pydantic import AfterValidator, BaseModel, ConfigDict

from ..errors import BackendError, LinlyPushError
from ..media import Speech, VideoFormat
from ..timeline import FrameContext


class BackendOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _colour(value: str) -> str:
    try:
        ImageColor.getrgb(value)
    except ValueError:
        raise ValueError(f"not a colour: {value!r} (use #rrggbb or a colour name)") from None
    return value


Colour = Annotated[str, AfterValidator(_colour)]  # an option naming a colour, as Pillow reads them

# ``Field(json_schema_extra=TRUSTED)``: an option that runs a program or says where text (or a
# key) is sent. Only the operator sets it (preset, --set); a rundown under --confine may not.
TRUSTED = {"trusted": True}


def trusted(options: type[BackendOptions], key: str) -> bool:
    """Whether option ``key`` of ``options`` is marked TRUSTED."""
    field = options.model_fields.get(key)
    extra = field.json_schema_extra if field is not None else None
    return isinstance(extra, dict) and extra.get("trusted") is True


def reason(exc: BaseException) -> str:
    """An exception in one short line, for messages: its type and the last line of its text."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[-1][:200] if lines else '?'}"


@contextmanager
def as_backend_error(backend: Backend | type[Backend], doing: str) -> Iterator[None]:
    """Around a call into a backend: a LinlyPushError it raises goes on as it is (the backend
    already said what is wrong), any other exception becomes a BackendError naming the backend
    and what it was doing, ``"espeak: failed on sentence 3: <the exception>"``."""
    try:
        yield
    except LinlyPushError:
        raise
    except Exception as exc:  # a backend's own failure, of whatever type its libraries raise
        raise BackendError(f"{backend.name}: {doing}: {exc}") from exc


class Backend(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    extra: ClassVar[str | None] = None  # pip extra that installs what it needs
    Options: ClassVar[type[BackendOptions]] = BackendOptions

    @classmethod
    def missing(cls) -> str | None:
        """What keeps this backend from running here (e.g. a missing package), or None if ready.

        Asked on every lookup of the backend, so it must be cheap: look for packages
        (``importlib.util.find_spec``), never import them.
        """
        return None

    @classmethod
    def check(cls) -> str | None:
        """Deeper than ``missing``, and asked only when that found nothing: import what the
        backend needs, and start it where that is quick, to catch an install that is present but
        broken. Only ``linly-push backends`` asks. Return what keeps the backend from running,
        or None; warn with a LinlyPushWarning about a limit it runs with (``backends`` shows it
        as a note on a ready backend).
        """
        return None

    def close(self) -> None:
        """Release what the backend holds (libraries, processes)."""


class TTSBackend(Backend):
    """Speaks one sentence at a time."""

    def __init__(self, options: BackendOptions) -> None:
        self.options = options

    @abstractmethod
    def synthesize(self, text: str, lang: str) -> Speech:
        """Speak ``text``; ``lang`` is the script's guess ("en", "zh"), which the options may override.

        Return mono float PCM at the backend's own rate, with phoneme and word marks when the
        engine can give them (avatars fall back to loudness without them). Raise BackendError.
        """


class Avatar(Backend):
    """Draws the presenter, one frame at a time, from what the clock shows it."""

    def __init__(self, video: VideoFormat, options: BackendOptions) -> None:
        self.video = video
        self.options = options

    @abstractmethod
    def draw(self, ctx: FrameContext) -> bytes | np.ndarray:
        """Frame ``ctx.index`` as yuv420p, ``video.frame_bytes`` long (see ``linly_push.video``).

        Called once per frame in order; may return the same cached buffer for identical frames,
        but must not modify a buffer it has returned before.
        """
