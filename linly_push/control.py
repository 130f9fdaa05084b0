"""Driving a live show while it is on air: a queue of things to say, interrupts, pause and resume.

A ``Controller`` is the show's program (``Show.controlled``): it hands the TTS one sentence at a
time from its queue, and waits (the stream idling) when the queue is empty or paused. Requests
come from any thread (the control server's): ``say`` and ``play`` queue an item (``queue``, or
``next`` before the others, or ``now``: interrupting); ``interrupt`` stops speaking at the next
frame and clears the queue; ``pause`` stops at the next frame too, and ``resume`` says the cut
sentence again and goes on.

Stopping is exact: every sentence handed to the TTS carries a tag (the item and a generation);
an interrupt moves the generation on and asks the clock to drop everything not yet on air
(``Clock.splice``), and the clock admits (``admit``) no segment of an older generation that the
TTS was still making — so an interrupt that lands before the speech started stops it too.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from .events import Event, InterruptedEvent, Queued, Spoken, WarningEvent
from .media import Kind, Segment
from .presets import BackendChoice, Preset
from .program import AudioFile, Cast, Input
from .script import Sentence, parse

if TYPE_CHECKING:
    from .clock import Clock


class Mode(str, Enum):
    QUEUE = "queue"  # after everything queued
    NEXT = "next"  # before everything queued, after what is being said
    NOW = "now"  # interrupt what is being said, and say this at once


@dataclass(frozen=True)
class Tag:
    """What a sentence or recording handed to the TTS belongs to."""

    item: str
    generation: int
    part: int  # the sentence's number within the item, from 0


@dataclass
class Item:
    """One request: text (cut into sentences) or a recording, with the cast it is said with."""

    id: str
    kind: str  # "say" or "audio"
    parts: list[Input]  # Sentences, or one AudioFile
    text: str | None = None
    cast: Cast | None = None  # its own TTS, voice or avatar; None: the show's
    queued_at: float = field(default_factory=time.monotonic)
    state: str = "queued"  # queued, speaking, spoken, interrupted, cancelled
    next_part: int = 0  # the next part to hand to the TTS
    on_air_part: int | None = None  # the part on air now (or last)
    first_sound: float | None = None  # monotonic time its first part went on air
    finishing: bool = False  # its last part is on air

    @property
    def last_part(self) -> int:
        """The last part that makes a sound (a script's may end with a pause)."""
        return max((i for i, p in enumerate(self.parts) if isinstance(p, (Sentence, AudioFile))), default=len(self.parts) - 1)

    def describe(self) -> dict[str, object]:
        return {
            "id": self.id, "kind": self.kind, "text": self.text, "state": self.state,
            "parts": len(self.parts), "done": self.done,
        }

    @property
    def done(self) -> int:
        """Parts that have gone on air to their end: those before the one on air now."""
        if self.state == "spoken":
            return len(self.parts)
        return self.on_air_part or 0


class QueueFull(Exception):
    """The queue holds ``Controller.max_queue`` items already."""


class Controller:
    """The program of a show driven while on air (see the module). Thread-safe."""

    def __init__(self, preset: Preset, *, max_queue: int = 100) -> None:
        self.preset = preset
        self.max_queue = max_queue
        self._lock = threading.Condition()
        self._queue: deque[Item] = deque()
        self._current: Item | None = None  # being handed to the TTS, or on air
        self._generation = 0
        self._paused = False
        self._closed = False
        self._stopped = False
        self._ids = itertools.count(1)
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._clock: Clock | None = None
        self._default = Cast(preset.tts, preset.avatar)
        self._cast: Cast = self._default  # the cast the TTS was last told
        # For the metrics: seconds from a request to its first sound, and TTS seconds per
        # sentence, as they come (the latest only, should nobody read them).
        self.first_sound: deque[float] = deque(maxlen=1000)
        self.tts_seconds: deque[float] = deque(maxlen=1000)

    # -- requests (any thread) --------------------------------------------------------------

    def say(self, text: str, mode: Mode = Mode.QUEUE, cast: Cast | None = None) -> Item:
        sentences = [i for i in parse(text, self.preset.speech.max_sentence_chars) if isinstance(i, Sentence)]
        if not sentences:
            raise ValueError("the text has nothing to say")
        return self._add(Item(self._id(), "say", list(sentences), text=text, cast=cast), Mode(mode))

    def play(self, recording: AudioFile, mode: Mode = Mode.QUEUE, cast: Cast | None = None) -> Item:
        return self._add(Item(self._id(), "audio", [recording], cast=cast), Mode(mode))

    def program_item(self, program: list[Input], text: str | None = None) -> Item:
        """Queue a whole program (a script, recordings, a rundown) as one item."""
        return self._add(Item(self._id(), "say", list(program), text=text), Mode.QUEUE)

    def interrupt(self) -> list[Item]:
        """Stop speaking at the next frame and clear the queue; the items stopped."""
        with self._lock:
            stopped = self._stop_current("interrupted")
            stopped += list(self._queue)
            for item in self._queue:
                item.state = "cancelled"
            self._queue.clear()
            self._lock.notify_all()
        for item in stopped:
            self._events.put(InterruptedEvent(id=item.id, state=item.state))
        return stopped

    def pause(self) -> None:
        """Stop speaking at the next frame; the cut sentence is said again on ``resume``."""
        with self._lock:
            if self._paused:
                return
            self._paused = True
            current = self._current
            if current is not None and current.state == "speaking":
                self._generation += 1
                current.next_part = current.on_air_part or 0
                current.state = "queued"
                current.finishing = False
                self._queue.appendleft(current)
                self._current = None
                self._splice()

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            self._lock.notify_all()

    def cancel(self, item_id: str) -> bool:
        """Take a queued item out of the queue (or stop it, if it is being said)."""
        with self._lock:
            if self._current is not None and self._current.id == item_id:
                stopped = self._stop_current("cancelled")
            else:
                stopped = [i for i in self._queue if i.id == item_id]
                for item in stopped:
                    self._queue.remove(item)
                    item.state = "cancelled"
            self._lock.notify_all()
        for item in stopped:
            self._events.put(InterruptedEvent(id=item.id, state=item.state))
        return bool(stopped)

    def queued(self) -> list[dict[str, object]]:
        with self._lock:
            items = ([self._current] if self._current is not None else []) + list(self._queue)
            return [i.describe() for i in items]

    @property
    def depth(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def full(self) -> bool:
        """Whether a request now would be refused (``QueueFull``)."""
        return self.depth >= self.max_queue

    @property
    def speaking(self) -> bool:
        with self._lock:
            return self._current is not None and self._current.state == "speaking"

    @property
    def paused(self) -> bool:
        return self._paused

    def close(self) -> None:
        """No more requests: the program ends once the queue is done."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def stop(self) -> None:
        """The show is ending: the program ends at once, whatever is queued (the TTS thread
        waiting in it for a request would otherwise hold the end up)."""
        with self._lock:
            self._stopped = True
            self._lock.notify_all()

    # -- the show's side --------------------------------------------------------------------

    def attach(self, clock: Clock) -> None:
        self._clock = clock

    @property
    def draw_seconds(self) -> deque[float]:
        """The latest frames' drawing times (empty before the show starts)."""
        return self._clock.drawer.draw_seconds if self._clock is not None else deque()

    def program(self) -> Iterator[Input]:
        """The show's items, one sentence at a time, as requests come; blocks while there are
        none (the stream idles meanwhile). Runs in the TTS thread."""
        while True:
            with self._lock:
                while not (self._closed or self._stopped) and (self._paused or not self._next_ready()):
                    self._lock.wait(0.5)
                if self._stopped or not self._next_ready():
                    return  # stopped, or closed and nothing is left
                item = self._current if self._current is not None and self._current.next_part < len(self._current.parts) else self._take()
                part = item.parts[item.next_part]
                tag = Tag(item.id, self._generation, item.next_part)
                item.next_part += 1
                item.state = "speaking"
                cast = item.cast or self._default
            if isinstance(part, Cast):
                self._cast = part
            elif cast != self._cast:
                self._cast = cast
                yield cast
            yield _tagged(part, tag)

    def admit(self, seg: Segment) -> bool:
        """Whether a segment from the TTS is still wanted (not made for an interrupted request)."""
        tag = seg.tag
        return not isinstance(tag, Tag) or tag.generation == self._generation

    def started(self, seg: Segment) -> None:
        """A segment went on air (the broadcast says so at the frame it starts): the current
        request's, or the first after its last, which means all of it is out."""
        tag = seg.tag
        ours = isinstance(tag, Tag) and tag.generation == self._generation
        with self._lock:
            item = self._current
            if item is None:
                return
            if ours and tag.item == item.id:
                item.on_air_part = tag.part
                if item.first_sound is None:
                    item.first_sound = time.monotonic()
                    self.first_sound.append(item.first_sound - item.queued_at)
                # The pause before a sentence carries its tag too: only the sound itself counts.
                item.finishing = tag.part == item.last_part and seg.kind != Kind.PAUSE
            elif item.finishing:
                item.state = "spoken"
                self._current = None
                self._lock.notify_all()
                self._events.put(Spoken(id=item.id))

    def failed(self, tag: Hashable | None, error: Exception) -> None:
        """The TTS could not say a request's sentence (a voice that does not exist): the request
        ends there, said so, and the show goes on."""
        if not isinstance(tag, Tag):
            return
        with self._lock:
            item = self._current
            if item is None or item.id != tag.item:
                return
            item.state = "failed"
            self._current = None
            self._generation += 1
            self._lock.notify_all()
        self._events.put(WarningEvent(message=f"request {item.id} failed: {error}"))
        self._events.put(InterruptedEvent(id=item.id, state="failed"))

    def synthesized(self, tag: Hashable | None, seconds: float) -> None:
        if isinstance(tag, Tag):
            self.tts_seconds.append(seconds)

    def events(self) -> list[Event]:
        """The events since the last call: ``queued``, ``spoken``, ``interrupted``."""
        found = []
        while True:
            try:
                found.append(self._events.get_nowait())
            except queue.Empty:
                return found

    # -- inside -----------------------------------------------------------------------------

    def _id(self) -> str:
        return f"q{next(self._ids)}"

    def _add(self, item: Item, mode: Mode) -> Item:
        with self._lock:
            if len(self._queue) >= self.max_queue:
                raise QueueFull(f"the queue holds {self.max_queue} items already")
            stopped: list[Item] = []
            if mode == Mode.NOW:
                stopped = self._stop_current("interrupted")
            if mode == Mode.QUEUE:
                self._queue.append(item)
            else:
                self._queue.appendleft(item)
            position = self._queue.index(item)
            self._lock.notify_all()
        for old in stopped:
            self._events.put(InterruptedEvent(id=old.id, state=old.state))
        self._events.put(Queued(id=item.id, request=item.kind, mode=mode.value, position=position, text=item.text))
        return item

    def _take(self) -> Item:
        self._current = self._queue.popleft()
        return self._current

    def _next_ready(self) -> bool:
        current = self._current
        if current is not None and current.next_part < len(current.parts):
            return True
        return bool(self._queue) and (current is None or current.state != "speaking")

    def _stop_current(self, state: str) -> list[Item]:
        """Under the lock: stop what is being said at the next frame."""
        current, self._current = self._current, None
        self._generation += 1
        self._splice()
        if current is None or current.state == "spoken":
            return []
        current.state = state
        return [current]

    def _splice(self) -> None:
        if self._clock is not None:
            self._clock.splice([])


def _tagged(part: Input, tag: Tag) -> Input:
    if isinstance(part, Sentence):
        return Sentence(part.text, part.lang, tag)
    if isinstance(part, AudioFile):
        return AudioFile(part.info, tag)
    return part


def cast_for(preset: Preset, tts: str | None, voice: str | None, avatar: str | None) -> Cast | None:
    """The cast a request asks for (a TTS or avatar backend by name, a voice), checked; None for
    the show's own."""
    if tts is None and voice is None and avatar is None:
        return None
    from .backends import registry  # here: checking needs the registry, a request does not always

    t = preset.tts if tts is None or tts == preset.tts.backend else BackendChoice(backend=tts)
    if voice is not None:
        t = BackendChoice(**{**t.model_dump(), "voice": voice})
    a = preset.avatar if avatar is None or avatar == preset.avatar.backend else BackendChoice(backend=avatar)
    for kind, choice in (("tts", t), ("avatar", a)):
        registry.options(registry.get(kind, choice.backend), choice.options)  # UsageError when bad
    if t != preset.tts:
        from .pipeline import make_tts  # a TTS starts quickly: started once here, an unknown voice is refused now

        make_tts(t).close()
    return Cast(t, a)
