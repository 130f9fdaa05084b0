"""What a broadcast plays, in order: the items a script, recordings or a rundown turn into.

A script gives sentences and paragraph pauses (``script.Sentence``, ``script.Pause``);
recordings give ``AudioFile``s; a rundown adds ``Rest`` (a set number of seconds of idle
avatar and silence) and ``Cast`` (which TTS and avatar play what follows).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from . import audio as audio_io
from .presets import BackendChoice
from .script import Pause, Sentence


@dataclass(frozen=True)
class AudioFile:
    """A recorded file to play, already probed."""

    info: audio_io.AudioInfo


@dataclass(frozen=True)
class Rest:
    """Idle avatar and silence for a set time."""

    seconds: float


@dataclass(frozen=True)
class Cast:
    """The TTS and avatar for what follows, until the next Cast."""

    tts: BackendChoice
    avatar: BackendChoice


Input = Sentence | Pause | AudioFile | Rest | Cast


def choice_key(choice: BackendChoice) -> str:
    """One string per distinct backend and options: backends are shared between equal choices."""
    return json.dumps(choice.model_dump(), sort_keys=True, default=str)


def casts(items: Iterable[Input]) -> list[Cast]:
    """The distinct casts in a program, in order of first use."""
    seen: dict[tuple[str, str], Cast] = {}
    for item in items:
        if isinstance(item, Cast):
            seen.setdefault((choice_key(item.tts), choice_key(item.avatar)), item)
    return list(seen.values())


def voices(items: Iterable[Input], default: BackendChoice) -> list[BackendChoice]:
    """The TTS choices that speak at least one sentence of a finished program."""
    found: dict[str, BackendChoice] = {}
    current = default
    for item in items:
        if isinstance(item, Cast):
            current = item.tts
        elif isinstance(item, Sentence):
            found.setdefault(choice_key(current), current)
    return list(found.values())


def repeat(items: Sequence[Input]) -> Iterator[Input]:
    """The program over and over (``--loop``), with a paragraph pause between rounds."""
    while True:
        yield from items
        yield Pause("paragraph")
