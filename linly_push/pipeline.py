"""script -> TTS -> avatar -> clock -> sink: a job, its backends, and the run that wires them.

TTS turns the program into segments in its own thread (``segments``, run by ``producers.Ahead``);
the avatar draws in another (``producers.Drawer``); the on-air clock (``clock.Clock``) places the
segments, asks for the frames and hands ticks to the ffmpeg sink, through ``broadcast.Broadcast``:
in real time for live output, as fast as possible for a file. Data flows one way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import warnings
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import audio as audio_io
from . import loudness, urls
from .backends import registry
from .backends.base import Avatar, TTSBackend, as_backend_error
from .broadcast import Broadcast, Outlet, Summary, policy_for
from .captions import Captioner
from .clock import Clock
from .errors import Interrupted, LinlyPushError, LinlyPushWarning, UsageError
from .events import Listener, Started, Waiting, WarningEvent, ignore
from .ffmpeg import FFmpegSink, check_encoder, find_ffmpeg
from .media import AudioFormat, Kind, Segment, VideoFormat, silence
from .presets import BackendChoice, ChoiceKey, Preset
from .producers import Ahead, Drawer
from .program import AudioFile, Cast, Input, Rest, casts, repeat, voices
from .script import Pause, Sentence, detect_lang

if TYPE_CHECKING:
    from .control import Controller

__all__ = ["AudioFile", "Input", "Job", "Outlet", "Summary", "run", "segments"]

@dataclass
class Job:
    preset: Preset
    inputs: Iterable[Input]  # a list, or a stream (a script piped in while on air)
    outputs: list[str]  # the file for render; the URLs for live (secrets already expanded)
    live: bool
    record: str | None = None  # live: also keep a recording here
    redactor: urls.Redactor | None = None  # how to show the outputs, and scrub text of their secrets
    loop: bool = False  # play the inputs (a list) over and over
    duration: float | None = None  # end after this many seconds of media
    start_at: datetime | None = None  # live: go on air then (minus warmup)
    warmup: float | None = None  # seconds of idle before the first segment, instead of speech.lead_in
    title: str = ""  # a rundown's
    controller: Controller | None = None  # live: what drives the show while on air (``control``)
    whip_token: str | None = None  # live: the bearer token for WHIP endpoints (a secret: see ``scrub``)

    @property
    def video(self) -> VideoFormat:
        v = self.preset.video
        return VideoFormat(v.width, v.height, v.fps)

    @property
    def audio(self) -> AudioFormat:
        a = self.preset.audio
        return AudioFormat(a.sample_rate, a.channels)

    @property
    def known(self) -> bool:
        """Whether the whole program is known up front (not a script still arriving on stdin)."""
        return isinstance(self.inputs, (list, tuple))

    @property
    def sentences(self) -> int | None:
        """How many sentences the script has; None while it is still arriving, or looping."""
        if self.loop or not self.known:
            return None
        return sum(isinstance(i, Sentence) for i in self.inputs)

    @property
    def speaks(self) -> bool:
        return not self.known or any(isinstance(i, Sentence) for i in self.inputs)

    @property
    def lead_in(self) -> float:
        return self.preset.speech.lead_in if self.warmup is None else self.warmup

    def items(self) -> Iterator[Input]:
        if self.loop:
            if not self.known:
                raise UsageError("a looped show repeats a finished script; it cannot repeat one still arriving")
            return repeat(self.inputs)  # type: ignore[arg-type]
        return iter(self.inputs)

    def casts(self) -> list[Cast]:
        return casts(self.inputs) if self.known else []

    def recording(self, number: int) -> str | None:
        """The ``number``-th recording file: after a reconnect, recording goes on in a new file."""
        if not self.record:
            return None
        path = Path(self.record)
        return str(path if number == 1 else path.with_name(f"{path.stem}-{number}{path.suffix}"))

    def destinations(self, recording: int) -> list[str]:
        """ffmpeg's outputs, recording (if at all) into the ``recording``-th file."""
        record = self.recording(recording)
        return [*self.outputs, record] if record else self.outputs

    @property
    def scrub(self) -> urls.Redactor:
        return self.redactor or urls.Redactor(urls.Target.plain(o) for o in self.outputs)

    def masked(self) -> str:
        return " | ".join(self.scrub.show(o) for o in self.outputs)


def make_tts(choice: BackendChoice) -> TTSBackend:
    cls = registry.get("tts", choice.backend)
    opts = registry.options(cls, choice.options)
    return _construct(cls, opts)  # type: ignore[return-value]


def make_avatar(choice: BackendChoice, video: VideoFormat) -> Avatar:
    cls = registry.get("avatar", choice.backend)
    opts = registry.options(cls, choice.options)
    return _construct(cls, video, opts)  # type: ignore[return-value]


def _construct(cls: type, *args: object) -> object:
    with as_backend_error(cls, "could not start"):  # type: ignore[arg-type]
        return cls(*args)


@dataclass
class Backends:
    """Every TTS and avatar a job uses, by choice key (``BackendChoice.key``), started before
    anything goes on air so a bad choice fails at once; equal choices share one backend. A show
    driven while on air may ask for more (``tts_for``, ``avatar_for``)."""

    tts: dict[ChoiceKey, TTSBackend]
    avatars: dict[ChoiceKey, Avatar]
    default_avatar: ChoiceKey
    held: contextlib.ExitStack
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, job: Job, held: contextlib.ExitStack) -> Backends:
        """Start them; ``held`` closes them once the threads using them have stopped."""
        preset = job.preset
        found = cls({}, {}, preset.avatar.key, held)
        for choice in (voices(job.inputs, preset.tts) if job.known else [preset.tts]) if job.speaks else []:
            found.tts_for(choice)
        for choice in [preset.avatar, *(c.avatar for c in job.casts())]:
            found.avatar_for(choice, job.video)
        return found

    def tts_for(self, choice: BackendChoice) -> ChoiceKey:
        """The key of ``choice``'s TTS, started now if it was not yet."""
        with self.lock:
            if choice.key not in self.tts:
                self.tts[choice.key] = backend = make_tts(choice)
                self.held.callback(backend.close)
        return choice.key

    def avatar_for(self, choice: BackendChoice, video: VideoFormat) -> ChoiceKey:
        """The key of ``choice``'s avatar, started now if it was not yet (before any segment
        names it, so the drawer always finds it)."""
        with self.lock:
            if choice.key not in self.avatars:
                self.avatars[choice.key] = avatar = make_avatar(choice, video)
                self.held.callback(avatar.close)
        return choice.key


PAUSE_CHUNK = 1.0  # seconds: long pauses go out in pieces, so an hour of idle never sits in memory


def segments(job: Job, backends: Backends) -> Iterator[Segment]:
    """Everything the stream will say, in order, pauses included. ``job.inputs`` may be a
    stream (a script piped in while on air): nothing here looks ahead."""
    fmt, sp = job.audio, job.preset.speech
    target = loudness.Target.from_settings(job.preset.audio)
    leveller = loudness.Leveller(target) if target else None
    voice: BackendChoice | LinlyPushError = job.preset.tts
    # The avatar key segments carry once a rundown names one; the lead-in already shows the
    # first segment's avatar.
    first = next((i for i in job.inputs if isinstance(i, Cast)), None) if job.known else None
    look = first.avatar.key if first else None

    def pause(seconds: float, tag: Hashable | None = None) -> Iterator[Segment]:
        left = round(seconds * fmt.sample_rate)
        while left > 0:
            n = min(left, round(PAUSE_CHUNK * fmt.sample_rate))
            left -= n
            yield Segment(silence(n, fmt), Kind.PAUSE, avatar=look, tag=tag)

    yield from pause(job.lead_in)
    number = 0
    previous: Input | None = None
    for item in job.items():
        if isinstance(item, Cast):
            voice = item.tts  # started when a sentence needs it: a rundown's pause has a TTS it never uses
            try:
                look = backends.avatar_for(item.avatar, job.video)
            except LinlyPushError as exc:
                if job.controller is None:
                    raise
                voice = exc  # a request asked for an avatar that cannot start: its sentences say so
            continue
        if isinstance(item, Pause):
            yield from pause(sp.paragraph_pause)
        elif isinstance(item, Rest):
            yield from pause(item.seconds)
        elif isinstance(item, Sentence):
            number += 1
            if isinstance(previous, Sentence):
                yield from pause(sp.sentence_pause, item.tag)  # the pause belongs to what follows
            lang = item.lang or detect_lang(item.text)
            started = time.monotonic()
            try:
                if isinstance(voice, LinlyPushError):
                    raise voice
                key = backends.tts_for(voice)
                tts = backends.tts[key]
                with as_backend_error(tts, f"failed on sentence {number}"):
                    speech = tts.synthesize(item.text, lang)
            except LinlyPushError as exc:
                # What a control request asked for fails alone; the show goes on.
                if job.controller is None or item.tag is None:
                    raise
                job.controller.failed(item.tag, exc)
                continue
            if job.controller is not None:
                job.controller.synthesized(item.tag, time.monotonic() - started)
            # Each voice, and each language of a voice, keeps its own level for short sentences.
            seg = audio_io.speech_segment(speech, fmt, item.text, number, leveller, voice=f"{key}/{lang}")
            seg.avatar, seg.tag = look, item.tag
            yield seg
        else:
            for seg in audio_io.file_segments(item.info, fmt, target):
                seg.avatar, seg.tag = look, item.tag
                yield seg
        previous = item
    yield from pause(sp.tail)


def run(job: Job, on_event: Listener = ignore, stop: threading.Event | None = None) -> Summary:
    """Broadcast or render ``job``; returns what was sent. Raises LinlyPushError subclasses.

    Setting ``stop`` ends the run cleanly (EOF to ffmpeg, trailer written) with Interrupted.
    """
    stop = stop or threading.Event()
    if loudness.Target.from_settings(job.preset.audio) is not None:
        loudness.preload()
    binary = find_ffmpeg(whip=any(urls.kind(o) == "whip" for o in job.outputs))
    check_encoder(binary.path, job.preset.video, job.preset.audio, job.destinations(1), job.preset.whip)  # before anything starts
    with contextlib.ExitStack() as held:  # backends are closed only after the threads using them stop
        with warnings.catch_warnings(record=True) as caught:  # a backend on a fallback says so
            warnings.simplefilter("always", LinlyPushWarning)
            backends = Backends.start(job, held)
        for w in caught:
            if issubclass(w.category, LinlyPushWarning):
                on_event(WarningEvent(message=str(w.message)))
        if job.start_at is not None:
            _wait_until(job, on_event, stop)
            # Going on air late (a timer that fired late, slow loading) shortens the warmup, so
            # the show itself still starts on time.
            job = dataclasses.replace(job, warmup=min(job.warmup or 0.0, max(0.0, job.start_at.timestamp() - time.time())))
        video, fmt, preset = job.video, job.audio, job.preset
        captions = preset.captions
        overlay = Captioner(video, captions) if captions.burn != "off" else None
        drawer = Drawer(video, backends.avatars, backends.default_avatar, overlay)
        held.callback(drawer.close)  # before the backends it draws with
        spoken: Ahead[Segment] = Ahead(lambda: segments(job, backends), 2, "tts")
        held.callback(spoken.stop)
        if job.controller is not None:
            held.callback(job.controller.stop)  # first: the TTS thread may be waiting in it for a request
        policy = policy_for(job)
        admit = job.controller.admit if job.controller is not None else None
        clock = Clock(
            video, fmt, spoken, drawer, live=policy.live, ahead=policy.ahead(job), history=policy.history(job), admit=admit,
        )
        if job.controller is not None:
            job.controller.attach(clock)

        def sink(outputs: list[str]) -> FFmpegSink:
            return FFmpegSink(
                preset.video, preset.audio, outputs, ffmpeg=binary.path, redactor=job.scrub, whip=preset.whip, token=job.whip_token,
                stall_seconds=policy.read_stall,
            )

        started = Started(
            output=job.masked(), live=job.live, preset=preset.name, title=job.title or None,
            video=f"{video.width}x{video.height}@{video.fps}", audio=f"{fmt.sample_rate}Hz/{fmt.channels}ch",
            tts=preset.tts.backend if backends.tts else None, avatar=preset.avatar.backend,
            sentences=job.sentences, ffmpeg=binary.version, record=urls.mask(job.record) if job.record else None,
        )
        return Broadcast(job, policy, clock, sink, on_event, stop).run(started)


def _wait_until(job: Job, on_event: Listener, stop: threading.Event) -> None:
    """Sleep until the job's start time less its warmup, on the wall clock (which NTP may step,
    so it is read again every second)."""
    assert job.start_at is not None
    on_air = job.start_at.timestamp() - (job.warmup or 0.0)
    on_event(Waiting(
        start=job.start_at.isoformat(timespec="seconds"), warmup=job.warmup or 0.0,
        seconds=round(max(0.0, on_air - time.time()), 3),
    ))
    while (left := on_air - time.time()) > 0:
        if stop.wait(min(left, 1.0)):
            raise Interrupted("stopped while waiting to go on air; nothing was sent")
