"""What a broadcast plays, in order: a ``Show``, and the items a script, recordings or a
rundown turn into.

A script gives sentences and paragraph pauses (``script.Sentence``, ``script.Pause``);
recordings give ``AudioFile``s; a rundown adds ``Rest`` (a set number of seconds of idle
avatar and silence) and ``Cast`` (which TTS and avatar play what follows).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from pathlib import Path
from typing import TYPE_CHECKING

from . import audio as audio_io
from .errors import InputError, UsageError
from .presets import AudioSettings, BackendChoice, ChoiceKey, Preset
from .script import Pause, Sentence, parse, read_text, stream

if TYPE_CHECKING:
    from .control import Controller


@dataclass(frozen=True)
class AudioFile:
    """A recorded file to play, already probed."""

    info: audio_io.AudioInfo
    tag: Hashable | None = field(default=None, compare=False)  # who asked for it (a control request)


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


def casts(items: Iterable[Input]) -> list[Cast]:
    """The distinct casts in a program, in order of first use."""
    seen: dict[tuple[ChoiceKey, ChoiceKey], Cast] = {}
    for item in items:
        if isinstance(item, Cast):
            seen.setdefault((item.tts.key, item.avatar.key), item)
    return list(seen.values())


def voices(items: Iterable[Input], default: BackendChoice) -> list[BackendChoice]:
    """The TTS choices that speak at least one sentence of a finished program."""
    found: dict[ChoiceKey, BackendChoice] = {}
    current = default
    for item in items:
        if isinstance(item, Cast):
            current = item.tts
        elif isinstance(item, Sentence):
            found.setdefault(current.key, current)
    return list(found.values())


def repeat(items: Sequence[Input]) -> Iterator[Input]:
    """The program over and over (``--loop``), with a paragraph pause between rounds."""
    while True:
        yield from items
        yield Pause("paragraph")


def audio_minutes(program: Iterable[Input]) -> float:
    """Minutes of recordings in a finished program (0 for one still arriving)."""
    if not isinstance(program, list):
        return 0.0
    return sum(i.info.duration for i in program if isinstance(i, AudioFile)) / 60


def measured(program: Iterable[Input], settings: AudioSettings) -> Iterable[Input]:
    """The program with its recordings measured for loudness normalisation, when the preset asks
    for it: before anything goes on air, not when they come up (about 45 s an hour)."""
    if not isinstance(program, list) or settings.loudness == "off":
        return program
    return [AudioFile(audio_io.measured(i.info, settings)) if isinstance(i, AudioFile) else i for i in program]


@dataclass(frozen=True)
class Show:
    """What to broadcast: its program (items in order), and a title (a rundown's).

    ``program`` is a list, or for a live show an iterable that yields items as they arrive (a
    script read line by line while on air). Make one with the constructors below; each reads and
    checks everything up front, so a bad file fails before anything goes on air.
    """

    program: Iterable[Input]
    title: str = ""
    controller: Controller | None = None  # what drives it while on air

    @classmethod
    def text(cls, text: str, preset: Preset | None = None) -> Show:
        """A script: sentences end at . ! ? … 。！？；, a blank line is a paragraph pause."""
        items: list[Input] = list(parse(text, max_chars=_max_chars(preset)))
        if not any(isinstance(i, Sentence) for i in items):
            raise InputError("the script has nothing to say")
        return cls(items)

    @classmethod
    def file(cls, path: str | Path, preset: Preset | None = None) -> Show:
        """A UTF-8 script file."""
        try:
            return cls.text(read_text(path), preset)
        except InputError as exc:
            if str(exc) == "the script has nothing to say":
                raise InputError(f"script {path} has nothing to say") from None
            raise

    @classmethod
    def lines(cls, lines: Iterable[str], preset: Preset | None = None) -> Show:
        """A script arriving line by line while on air (``live`` only); nothing waits for its end."""
        return cls(stream(lines, max_chars=_max_chars(preset)))

    @classmethod
    def audio(cls, *paths: str | Path) -> Show:
        """Recordings (wav, flac, ogg; any rate and layout), played in order."""
        if not paths:
            raise UsageError("no recordings given")
        return cls([AudioFile(audio_io.probe(p)) for p in paths])

    @classmethod
    def rundown(cls, path: str | Path, preset: Preset | None = None, confine: bool = False) -> Show:
        """A rundown file (see ``rundown``): ``confine`` for one written by someone else."""
        from . import rundown  # it builds on this module's items

        return rundown.load(path, preset or Preset(), confine=confine)

    @classmethod
    def controlled(cls, controller: Controller, first: Show | None = None) -> Show:
        """A live show driven while on air (``control.Controller``), ``first`` queued in it to
        begin with; it idles whenever there is nothing to say, and runs until stopped."""
        if first is not None:
            controller.program_item(list(first.program))
        return cls(controller.program(), first.title if first else "", controller)

    @property
    def known(self) -> bool:
        """Whether every item is known now (not a script still arriving)."""
        return isinstance(self.program, (list, tuple))


def _max_chars(preset: Preset | None) -> int:
    return (preset or Preset()).speech.max_sentence_chars
