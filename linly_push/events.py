"""What a run reports as it goes: one frozen dataclass per kind of event.

The library hands events to a listener (``Listener``); the CLI shows them (Rich) or prints them
as JSON lines (``--json``), each the event's fields plus ``event`` (its kind) and ``time``.
docs/contract.md documents every kind and field, and tests/test_contract.py holds the two
together: add fields, never rename or remove one.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from time import time as _now
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    """The base of every event: ``kind`` names it in JSON, ``time`` is when it happened (Unix
    seconds)."""

    kind: ClassVar[str]
    time: float = field(default_factory=_now, kw_only=True)

    def data(self) -> dict[str, Any]:
        """Its own fields, as JSON has them."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "time"}

    def to_json(self) -> str:
        return json.dumps({"event": self.kind, "time": round(self.time, 3), **self.data()}, ensure_ascii=False)


@dataclass(frozen=True)
class Waiting(Event):
    """``live --at``: loaded and checked, waiting to go on air."""

    kind: ClassVar[str] = "waiting"
    start: str  # ISO 8601 with the offset
    warmup: float
    seconds: float


@dataclass(frozen=True)
class WarningEvent(Event):
    """Something runs, but not as asked (a backend on a fallback)."""

    kind: ClassVar[str] = "warning"
    message: str


@dataclass(frozen=True)
class Started(Event):
    kind: ClassVar[str] = "started"
    output: str
    live: bool
    preset: str
    title: str | None
    video: str
    audio: str
    tts: str | None
    avatar: str
    sentences: int | None
    ffmpeg: str
    record: str | None


@dataclass(frozen=True)
class Sentence(Event):
    kind: ClassVar[str] = "sentence"
    index: int | None
    total: int | None
    text: str | None
    at: float  # media seconds from the start of the output


@dataclass(frozen=True)
class Progress(Event):
    """``render``, four times a second."""

    kind: ClassVar[str] = "progress"
    frames: int
    seconds: float
    sentences: int
    total: int | None
    fps: float
    wall: float
    speed: float | None


@dataclass(frozen=True)
class Status(Progress):
    """``live``, once a second: ``Progress`` and more."""

    kind: ClassVar[str] = "status"
    sentence: int | None
    text: str | None
    bitrate_kbps: float | None
    buffer: float
    repeated: int
    reconnects: int


@dataclass(frozen=True)
class Dropped(Event):
    kind: ClassVar[str] = "dropped"
    reason: str
    attempt: int
    on_air: float
    connected: bool
    retry_in: float
    resume_sentence: int | None


@dataclass(frozen=True)
class Reconnected(Event):
    kind: ClassVar[str] = "reconnected"
    attempt: int
    reconnects: int
    record: str | None


@dataclass(frozen=True)
class Destination(Event):
    kind: ClassVar[str] = "destination"
    destination: str
    role: str
    state: str
    reason: str | None
    at: float  # media seconds on air


@dataclass(frozen=True)
class Control(Event):
    """``live --control``: the control API is listening (before anything else is printed)."""

    kind: ClassVar[str] = "control"
    url: str
    token_file: str | None  # where the token made at start is; None: it came from the environment
    page_file: str | None  # a page that opens the operator page with that token; None likewise


@dataclass(frozen=True)
class Queued(Event):
    """``live --control``: a request was queued."""

    kind: ClassVar[str] = "queued"
    id: str
    request: str  # "say" or "audio"
    mode: str  # "queue", "next" or "now"
    position: int  # in the queue, from 0
    text: str | None


@dataclass(frozen=True)
class Spoken(Event):
    """``live --control``: all of a request went on air."""

    kind: ClassVar[str] = "spoken"
    id: str


@dataclass(frozen=True)
class InterruptedEvent(Event):
    """``live --control``: a request was stopped (or taken out of the queue) before it was done."""

    kind: ClassVar[str] = "interrupted"
    id: str
    state: str  # "interrupted" (it was being said, or queued when the queue was cleared) or "cancelled"


@dataclass(frozen=True)
class Finished(Event):
    kind: ClassVar[str] = "finished"
    output: str
    frames: int
    seconds: float
    sentences: int
    wall: float
    speed: float
    reconnects: int
    repeated: int
    vtt: str | None
    destinations: list[dict[str, Any]]


@dataclass(frozen=True)
class Error(Event):
    """The run failed or was stopped: always the last event."""

    kind: ClassVar[str] = "error"
    code: int
    message: str


KINDS: dict[str, type[Event]] = {
    cls.kind: cls for cls in (
        Waiting, WarningEvent, Started, Sentence, Progress, Status, Dropped, Reconnected, Destination, Control, Queued, Spoken,
        InterruptedEvent, Finished, Error,
    )
}

Listener = Callable[[Event], None]


def ignore(_: Event) -> None:
    """A listener for callers that want no reports."""
