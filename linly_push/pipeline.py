"""script -> TTS -> avatar -> clock -> sink.

Three stages run ahead of each other through bounded queues: TTS turns sentences into segments,
the drawer places them on the audio clock and has the avatar draw each frame, and the consumer
hands ticks (one frame and the audio that plays under it) to ffmpeg — paced in real time for
live output, as fast as possible for a file. Live, a lost connection is retried with backoff
and the broadcast resumes at the start of the sentence that was cut.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from . import audio as audio_io
from . import loudness, urls
from .backends import registry
from .backends.base import Avatar, TTSBackend
from .captions import Captioner, Cue, cue_for, webvtt
from .clock import Pacer, Placed, Tick
from .errors import BackendError, Interrupted, LinlyPushError, LinlyPushWarning, OutputError, UsageError
from .events import Event, Listener, ignore
from .ffmpeg import Change, FFmpegSink, check_encoder, find_ffmpeg
from .media import AudioFormat, Segment, VideoFormat, silence
from .presets import BackendChoice, Preset
from .program import AudioFile, Cast, Input, Rest, casts, choice_key, repeat, voices
from .reconnect import Backoff, resume_point
from .script import Pause, Sentence, detect_lang
from .stages import Ahead, Counters, Drawer

__all__ = ["AudioFile", "Input", "Job", "Summary", "run", "segments"]

@dataclass
class Outlet:
    """One destination of a live show (a URL, or one recording file), for the end report."""

    shown: str  # masked
    role: str  # "live" or "record"
    state: str = "up"  # "up", "down" (a fan-out URL being retried) or "failed" (a recording, for good)
    complete: bool = True  # got everything that went on air while it was open
    reason: str | None = None  # why not (masked)
    down_at: float | None = None  # media seconds when it last went down or failed

    def to_dict(self) -> dict[str, object]:
        return {"destination": self.shown, "role": self.role, "complete": self.complete, "reason": self.reason}


@dataclass
class Summary:
    output: str  # masked
    frames: int  # sent, over all connections
    seconds: float  # media time on air (or in the file)
    sentences: int
    wall: float
    reconnects: int = 0
    repeated: int = 0
    destinations: list[Outlet] = field(default_factory=list)  # live: each URL and recording

    @property
    def speed(self) -> float:
        return self.seconds / self.wall if self.wall > 0 else 0.0

    @property
    def incomplete(self) -> list[Outlet]:
        """The destinations that did not get the whole show."""
        return [d for d in self.destinations if not d.complete]


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
                raise UsageError("--loop repeats a finished script; it cannot repeat standard input")
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
    try:
        return cls(*args)
    except LinlyPushError:
        raise
    except Exception as exc:  # a third-party backend's own failure
        raise BackendError(f"{cls.name}: could not start: {exc}") from exc


@dataclass
class Backends:
    """Every TTS and avatar a job uses, by choice key (``program.choice_key``), started before
    anything goes on air so a bad choice fails at once; equal choices share one backend."""

    tts: dict[str, TTSBackend]
    avatars: dict[str, Avatar]
    default_tts: str
    default_avatar: str

    @classmethod
    def start(cls, job: Job, held: contextlib.ExitStack) -> Backends:
        """Start them; ``held`` closes them once the threads using them have stopped."""
        preset = job.preset
        tts: dict[str, TTSBackend] = {}
        avatars: dict[str, Avatar] = {}
        for choice in (voices(job.inputs, preset.tts) if job.known else [preset.tts]) if job.speaks else []:
            if choice_key(choice) not in tts:
                tts[choice_key(choice)] = backend = make_tts(choice)
                held.callback(backend.close)
        for choice in [preset.avatar, *(c.avatar for c in job.casts())]:
            if choice_key(choice) not in avatars:
                avatars[choice_key(choice)] = avatar = make_avatar(choice, job.video)
                held.callback(avatar.close)
        return cls(tts, avatars, choice_key(preset.tts), choice_key(preset.avatar))

    @property
    def avatar(self) -> Avatar:
        return self.avatars[self.default_avatar]


PAUSE_CHUNK = 1.0  # seconds: long pauses go out in pieces, so an hour of idle never sits in memory


def segments(job: Job, backends: Backends) -> Iterator[Segment]:
    """Everything the stream will say, in order, pauses included. ``job.inputs`` may be a
    stream (a script piped in while on air): nothing here looks ahead."""
    fmt, sp = job.audio, job.preset.speech
    target = loudness.Target.from_settings(job.preset.audio)
    leveller = loudness.Leveller(target) if target else None
    voice = backends.default_tts
    # The avatar key segments carry once a rundown names one; the lead-in already shows the
    # first segment's avatar.
    first = next((i for i in job.inputs if isinstance(i, Cast)), None) if job.known else None
    look = choice_key(first.avatar) if first else None

    def pause(seconds: float) -> Iterator[Segment]:
        left = round(seconds * fmt.sample_rate)
        while left > 0:
            n = min(left, round(PAUSE_CHUNK * fmt.sample_rate))
            left -= n
            yield Segment(silence(n, fmt), "pause", avatar=look)

    yield from pause(job.lead_in)
    number = 0
    previous: Input | None = None
    for item in job.items():
        if isinstance(item, Cast):
            voice, look = choice_key(item.tts), choice_key(item.avatar)
            continue
        if isinstance(item, Pause):
            yield from pause(sp.paragraph_pause)
        elif isinstance(item, Rest):
            yield from pause(item.seconds)
        elif isinstance(item, Sentence):
            number += 1
            if isinstance(previous, Sentence):
                yield from pause(sp.sentence_pause)
            tts = backends.tts[voice]
            lang = item.lang or detect_lang(item.text)
            try:
                speech = tts.synthesize(item.text, lang)
            except LinlyPushError:
                raise
            except Exception as exc:
                raise BackendError(f"{tts.name}: failed on sentence {number}: {exc}") from exc
            # Each voice, and each language of a voice, keeps its own level for short sentences.
            seg = audio_io.speech_segment(speech, fmt, item.text, number, leveller, voice=f"{voice}/{lang}")
            seg.avatar = look
            yield seg
        else:
            for seg in audio_io.file_segments(item.info, fmt, target):
                seg.avatar = look
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
    binary = find_ffmpeg()
    check_encoder(binary.path, job.preset.video, job.preset.audio)  # before anything starts
    with contextlib.ExitStack() as held:  # backends are closed only after the threads using them stop
        with warnings.catch_warnings(record=True) as caught:  # a backend on a fallback says so
            warnings.simplefilter("always", LinlyPushWarning)
            backends = Backends.start(job, held)
        for w in caught:
            if issubclass(w.category, LinlyPushWarning):
                on_event(Event("warning", {"message": str(w.message)}))
        if job.start_at is not None:
            _wait_until(job, on_event, stop)
            # Going on air late (a timer that fired late, slow loading) shortens the warmup, so
            # the show itself still starts on time.
            job = dataclasses.replace(job, warmup=min(job.warmup or 0.0, max(0.0, job.start_at.timestamp() - time.time())))
        return _Broadcast(job, backends, binary.path, on_event, stop).run(binary.version)


def _wait_until(job: Job, on_event: Listener, stop: threading.Event) -> None:
    """Sleep until the job's start time less its warmup, on the wall clock (which NTP may step,
    so it is read again every second)."""
    assert job.start_at is not None
    on_air = job.start_at.timestamp() - (job.warmup or 0.0)
    on_event(Event("waiting", {
        "start": job.start_at.isoformat(timespec="seconds"), "warmup": job.warmup or 0.0,
        "seconds": round(max(0.0, on_air - time.time()), 3),
    }))
    while (left := on_air - time.time()) > 0:
        if stop.wait(min(left, 1.0)):
            raise Interrupted("stopped while waiting to go on air; nothing was sent")


STALL_SECONDS = 10.0  # live: no progress from ffmpeg this long counts as a lost connection
RESUME_MARGIN = 1.0  # seconds before ffmpeg's last reported output time that may not have arrived


class _Stopped(Exception):
    """The stop event was set."""


class _GaveUp(OutputError):
    """No destination has worked for ``reconnect.give_up_after``: not retried."""


class _Broadcast:
    """One run: connections one after another (live reconnects), their events and the totals."""

    def __init__(self, job: Job, backends: Backends, ffmpeg: str, on_event: Listener, stop: threading.Event) -> None:
        self.job, self.backends, self.ffmpeg, self.emit, self.stop = job, backends, ffmpeg, on_event, stop
        self.video, self.fmt = job.video, job.audio
        self.scrub = job.scrub
        self.frames = 0  # sent over all connections (live: those that got on air)
        self.said: set[int] = set()  # sentence numbers that went on air (a repeat counts once)
        self.sentence: tuple[int | None, str | None] = (None, None)  # on air now
        self.reconnects = 0
        self.repeated = 0
        self.recordings = 0  # recording files that got media (the next one is FILE-{n + 1})
        # Live: each URL, then each recording file, as they are opened.
        self.outlets: dict[str, Outlet] = {o: Outlet(self.scrub.show(o), "live") for o in job.outputs} if job.live else {}
        self.all_down_since: float | None = None  # fan-out: when the last URL still up went down
        self.limit = round(job.duration * job.video.fps) if job.duration else float("inf")  # frames
        self.on_screen = backends.avatar  # a rundown's avatar stays on screen across a reconnect
        captions = job.preset.captions
        self.captioner = Captioner(self.video, captions) if captions.burn != "off" else None
        self.cues: list[Cue] | None = [] if captions.vtt and not job.live else None
        self.t0 = time.monotonic()

    def run(self, ffmpeg_version: str) -> Summary:
        job, video, fmt = self.job, self.video, self.fmt
        self.emit(Event("started", {
            "output": job.masked(), "live": job.live, "preset": job.preset.name, "title": job.title or None,
            "video": f"{video.width}x{video.height}@{video.fps}", "audio": f"{fmt.sample_rate}Hz/{fmt.channels}ch",
            "tts": job.preset.tts.backend if self.backends.tts else None, "avatar": job.preset.avatar.backend,
            "sentences": job.sentences, "ffmpeg": ffmpeg_version,
            "record": urls.mask(job.record) if job.record else None,
        }))
        spoken: Ahead[Segment] = Ahead(lambda: segments(job, self.backends), 2, "tts")
        backoff = Backoff(job.preset.reconnect)
        replay: list[Segment] = []
        attempt = 0
        try:
            while True:
                attempt += 1
                lost = self._connection(attempt, spoken, replay)
                if lost is None:
                    break
                error, drawer, on_air, connected, out_time = lost
                delay = backoff.failed(time.monotonic(), on_air, connected)
                if delay is None:
                    raise OutputError(
                        f"gave up after {job.preset.reconnect.give_up_after:g} s without a working connection: {error}"
                    )
                cut = max(0, round((out_time - RESUME_MARGIN) * fmt.sample_rate))
                # What was placed after the cut, then what an earlier replay had not placed yet.
                replay = resume_point(drawer.fed, cut, fmt.sample_rate) + list(drawer.replay)
                resume = next((s.sentence for s in replay if s.kind == "speech"), None)
                self.emit(Event("dropped", {
                    "reason": str(error), "attempt": attempt, "on_air": round(on_air, 3), "connected": connected,
                    "retry_in": round(delay, 3), "resume_sentence": resume,
                }))
                if self.stop.wait(delay):
                    raise Interrupted("stopped while reconnecting")
        except Interrupted:
            self._write_vtt()  # what was rendered keeps its captions, even when stopped
            raise
        finally:
            spoken.stop()
        vtt = self._write_vtt()
        summary = Summary(
            job.masked(), self.frames, self.frames / video.fps, len(self.said), time.monotonic() - self.t0,
            self.reconnects, self.repeated, list(self.outlets.values()),
        )
        self.emit(Event("finished", {
            "output": summary.output, "frames": summary.frames, "seconds": round(summary.seconds, 3),
            "sentences": summary.sentences, "wall": round(summary.wall, 3), "speed": round(summary.speed, 2),
            "reconnects": summary.reconnects, "repeated": summary.repeated, "vtt": vtt,
            "destinations": [d.to_dict() for d in summary.destinations],
        }))
        return summary

    def _write_vtt(self) -> str | None:
        """Render: the sentences as WebVTT cues in FILE.vtt beside the video; its path."""
        if self.cues is None or not self.cues:
            return None
        end = self.frames / self.video.fps
        cues = [Cue(c.start, min(c.end, end), c.text) for c in self.cues if c.start < end]
        path = Path(self.job.outputs[0]).with_suffix(".vtt")
        try:
            path.write_text(webvtt(cues), encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write captions {path}: {exc.strerror}") from None
        return str(path)

    def _connection(
        self, attempt: int, spoken: Ahead[Segment], replay: list[Segment]
    ) -> tuple[OutputError, Drawer, float, bool, float] | None:
        """Stream until the end (None) or until the connection is lost (what is needed to resume)."""
        job, video, preset = self.job, self.video, self.job.preset
        counters = Counters()
        pacer = Pacer(video.fps) if job.live else None
        drawer = Drawer(
            video, self.fmt, self.on_screen, spoken, replay, pacer, counters,
            avatars=self.backends.avatars, overlay=self.captioner,
        )
        record = job.recording(self.recordings + 1) if job.live else None
        if record is not None:
            self.outlets[record] = Outlet(record, "record")
        sink = FFmpegSink(
            preset.video, preset.audio, job.destinations(self.recordings + 1), ffmpeg=self.ffmpeg, redactor=self.scrub,
        )
        base = self.frames  # frames on air before this connection
        ahead = round(preset.live.buffer * video.fps) if job.live else 2 * video.fps
        connected = False
        unannounced: list[Placed] = []  # segments started on this connection
        drawn: Ahead[Tick] | None = None
        started = time.monotonic()
        next_report, last = started, (started, base)
        sink.start()
        try:
            drawn = Ahead(drawer.ticks, ahead, "draw")
            for tick in drawn:
                if self.stop.is_set():
                    raise _Stopped
                if pacer is not None:
                    pacer.wait(tick.index)
                sink.write(tick.frame, tick.audio)
                counters.sent = tick.index + 1
                if not connected and sink.connected:
                    connected = True
                    if record is not None:
                        self.recordings += 1
                    if attempt > 1:
                        self.reconnects += 1
                        self.emit(Event("reconnected", {
                            "attempt": attempt, "reconnects": self.reconnects,
                            "record": urls.mask(record) if record else None,
                        }))
                # Live, only what a server took counts as on air: an attempt that never connects
                # adds no frames, and sends (and announces) its sentences again on the next one.
                if connected or not job.live:
                    self.frames = base + counters.sent
                unannounced.extend(tick.starts)
                if connected or not job.live:
                    self._announce(unannounced, base)
                    unannounced.clear()
                for change in sink.changes():
                    self._changed(change)
                now = time.monotonic()
                if now >= next_report:
                    next_report = now + (1.0 if job.live else 0.25)
                    fps = (self.frames - last[1]) / (now - last[0]) if now > last[0] else 0.0
                    last = (now, self.frames)
                    self.emit(self._status(fps, drawn.depth(), sink, counters))
                    if job.live and now - max(sink.last_progress, started) > STALL_SECONDS:
                        raise OutputError(f"no progress for {STALL_SECONDS:g} s: the server stopped taking the stream")
                    self._give_up_when_all_down(now)
                if self.frames >= self.limit:
                    _halt(drawn)  # --duration reached: end here, as if the script had ended
                    break
            sink.close()
            for change in sink.changes():  # what ffmpeg said while closing (a recording's trailer)
                self._changed(change)
            self._announce(unannounced, base)  # ffmpeg took all of it
            self.repeated += counters.repeated
            return None
        except _GaveUp:
            _halt(drawn)
            sink.abort()
            raise
        except OutputError as exc:
            _halt(drawn)
            sink.abort()
            self.repeated += counters.repeated
            if not job.live:
                raise
            for change in sink.changes():
                self._changed(change)
            if not (connected or sink.connected):
                self._discard(record)
            out_time = sink.progress.out_time if sink.progress else 0.0
            self.on_screen = drawer.avatar
            got_on_air = connected or sink.connected
            return exc, drawer, counters.sent / video.fps if got_on_air else 0.0, got_on_air, out_time
        except (_Stopped, KeyboardInterrupt):
            _halt(drawn)
            with contextlib.suppress(OutputError):
                sink.close()  # EOF lets ffmpeg write the trailer: what was sent stays playable
            raise Interrupted("stopped; what was sent so far was closed cleanly") from None
        except BaseException:
            _halt(drawn)
            sink.abort()
            raise

    def _discard(self, record: str | None) -> None:
        """A recording of an attempt that never got on air holds no media: remove it, and record
        the next attempt under the same name."""
        if record is None:
            return
        self.outlets.pop(record, None)
        with contextlib.suppress(OSError):
            Path(record).unlink()

    def _changed(self, change: Change) -> None:
        """A destination of the fan-out went down or came back, or a recording failed."""
        outlet = self.outlets.get(change.output)
        if outlet is None:
            return
        at = self.frames / self.video.fps
        outlet.state = change.state
        if change.state != "up":
            outlet.complete = False
            outlet.reason, outlet.down_at = change.reason, at
        self.emit(Event("destination", {
            "destination": outlet.shown, "role": outlet.role, "state": change.state, "reason": change.reason,
            "at": round(at, 3),
        }))

    def _give_up_when_all_down(self, now: float) -> None:
        """A fan-out's URLs reconnect each by itself; when all have been down for the give-up
        time, the broadcast ends as a single URL's would."""
        live = [o for o in self.outlets.values() if o.role == "live"]
        if len(live) < 2 or any(o.state == "up" for o in live):
            self.all_down_since = None
            return
        if self.all_down_since is None:
            self.all_down_since = now
        give_up = self.job.preset.reconnect.give_up_after
        if now - self.all_down_since >= give_up:
            reasons = "; ".join(f"{o.shown}: {o.reason}" for o in live)
            raise _GaveUp(f"gave up after {give_up:g} s with every destination down: {reasons}")

    def _announce(self, starts: list[Placed], base: int) -> None:
        for placed in starts:
            seg = placed.segment
            if seg.kind != "speech":
                continue
            self.said.add(seg.sentence or 0)
            self.sentence = (seg.sentence, seg.text)
            if self.cues is not None:
                self.cues.append(cue_for(seg, placed.start, self.fmt.sample_rate))
            self.emit(Event("sentence", {
                "index": seg.sentence, "total": self.job.sentences, "text": seg.text,
                "at": round(base / self.video.fps + placed.start / self.fmt.sample_rate, 3),
            }))

    def _status(self, fps_now: float, depth: int, sink: FFmpegSink, counters: Counters) -> Event:
        job, fps = self.job, self.video.fps
        media = self.frames / fps
        wall = time.monotonic() - self.t0
        data = {
            "frames": self.frames, "seconds": round(media, 3), "sentences": len(self.said), "total": job.sentences,
            "fps": round(fps_now, 2), "wall": round(wall, 3), "speed": round(media / wall, 2) if wall > 0 else None,
        }
        if job.live:
            data.update({
                "sentence": self.sentence[0], "text": self.sentence[1],
                "bitrate_kbps": sink.bitrate_kbps, "buffer": round(depth / fps, 2),
                "repeated": self.repeated + counters.repeated, "reconnects": self.reconnects,
            })
        return Event("status" if job.live else "progress", data)


def _halt(drawn: Ahead | None) -> None:
    # Wait for the drawer to stop for good: a segment it took from TTS after we look at what it
    # placed would be lost on a reconnect.
    if drawn is not None:
        drawn.stop(wait=10.0)
