"""script -> TTS -> avatar -> clock -> sink.

Three stages run ahead of each other through bounded queues: TTS turns sentences into segments,
the drawer places them on the audio clock and has the avatar draw each frame, and the consumer
hands ticks (one frame and the audio that plays under it) to ffmpeg — paced in real time for
live output, as fast as possible for a file.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from . import audio as audio_io
from . import urls
from .backends import registry
from .backends.base import Avatar, TTSBackend
from .clock import FrameContext, Pacer, Tick, Ticker
from .errors import BackendError, Interrupted, LinlyPushError
from .events import Event, Listener, ignore
from .ffmpeg import FFmpegSink, find_ffmpeg
from .media import AudioFormat, Segment, VideoFormat, silence
from .presets import Preset
from .script import Pause, Sentence, detect_lang

T = TypeVar("T")


@dataclass(frozen=True)
class AudioFile:
    """A recorded file to play, already probed."""

    info: audio_io.AudioInfo


Input = Sentence | Pause | AudioFile


@dataclass
class Summary:
    output: str  # masked
    frames: int
    seconds: float  # media time
    sentences: int
    wall: float

    @property
    def speed(self) -> float:
        return self.seconds / self.wall if self.wall > 0 else 0.0


@dataclass
class Job:
    preset: Preset
    inputs: list[Input]
    output: str  # a file path, or an rtmp(s):// / srt:// URL with secrets already expanded
    live: bool
    secrets: list[str] = field(default_factory=list)  # strings never to show (stream keys, URLs)

    @property
    def video(self) -> VideoFormat:
        v = self.preset.video
        return VideoFormat(v.width, v.height, v.fps)

    @property
    def audio(self) -> AudioFormat:
        a = self.preset.audio
        return AudioFormat(a.sample_rate, a.channels)

    @property
    def sentences(self) -> int:
        return sum(isinstance(i, Sentence) for i in self.inputs)


def make_tts(preset: Preset) -> TTSBackend:
    cls = registry.get("tts", preset.tts.backend)
    opts = registry.options(cls, preset.tts.options)
    return _construct(cls, opts)  # type: ignore[return-value]


def make_avatar(preset: Preset, video: VideoFormat) -> Avatar:
    cls = registry.get("avatar", preset.avatar.backend)
    opts = registry.options(cls, preset.avatar.options)
    return _construct(cls, video, opts)  # type: ignore[return-value]


def _construct(cls: type, *args: object) -> object:
    try:
        return cls(*args)
    except LinlyPushError:
        raise
    except Exception as exc:  # a third-party backend's own failure
        raise BackendError(f"{cls.name}: could not start: {exc}") from exc


def segments(job: Job, tts: TTSBackend | None) -> Iterator[Segment]:
    """Everything the stream will say, in order, pauses included."""
    fmt, sp = job.audio, job.preset.speech

    def pause(seconds: float) -> Segment:
        return Segment(silence(round(seconds * fmt.sample_rate), fmt), "pause")

    yield pause(sp.lead_in)
    number = 0
    for i, item in enumerate(job.inputs):
        if isinstance(item, Pause):
            yield pause(sp.paragraph_pause)
        elif isinstance(item, Sentence):
            assert tts is not None
            number += 1
            try:
                speech = tts.synthesize(item.text, item.lang or detect_lang(item.text))
            except LinlyPushError:
                raise
            except Exception as exc:
                raise BackendError(f"{tts.name}: failed on sentence {number}: {exc}") from exc
            yield audio_io.speech_segment(speech, fmt, item.text, number)
            following = job.inputs[i + 1] if i + 1 < len(job.inputs) else None
            if isinstance(following, Sentence):
                yield pause(sp.sentence_pause)
        else:
            yield from audio_io.file_segments(item.info, fmt)
    yield pause(sp.tail)


class _Ahead(Generic[T]):
    """Runs an iterator in its own thread, ahead of its consumer, into a bounded queue.
    An exception in the thread is re-raised in the consumer."""

    _END = object()

    def __init__(self, make: Callable[[], Iterable[T]], size: int, name: str) -> None:
        self._make = make
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, size))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._make():
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer
            self._error = exc
        self._put(self._END)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is self._END:
                if self._error is not None:
                    raise self._error
                return
            yield item  # type: ignore[misc]

    def depth(self) -> int:
        return self._queue.qsize()

    def stop(self) -> None:
        # The thread notices within 0.1 s unless it is inside a backend call; wait for that to end
        # (bounded, in case a plugin hangs) before the backend is closed under it.
        self._stop.set()
        self._thread.join(timeout=10.0)


def run(job: Job, on_event: Listener = ignore, stop: threading.Event | None = None) -> Summary:
    """Broadcast or render ``job``; returns what was sent. Raises LinlyPushError subclasses."""
    with contextlib.ExitStack() as held:  # backends are closed only after the threads using them stop
        tts = make_tts(job.preset) if job.sentences else None
        if tts is not None:
            held.callback(tts.close)
        avatar = make_avatar(job.preset, job.video)
        held.callback(avatar.close)
        binary = find_ffmpeg()
        sink = FFmpegSink(job.preset.video, job.preset.audio, job.output, ffmpeg=binary.path, secrets=job.secrets)
        return _stream(job, tts, avatar, sink, binary.version, on_event, stop)


def _stream(
    job: Job, tts: TTSBackend | None, avatar: Avatar, sink: FFmpegSink, ffmpeg_version: str,
    on_event: Listener, stop: threading.Event | None,
) -> Summary:
    video, fmt, preset = job.video, job.audio, job.preset
    masked = urls.mask(job.output)
    ticker = Ticker(video, fmt, _checked(avatar, video))

    def ticks() -> Iterator[Tick]:
        # TTS runs ahead of drawing by a couple of segments, drawing ahead of output by the buffer.
        spoken = _Ahead(lambda: segments(job, tts), 2, "tts")
        try:
            for seg in spoken:
                yield from ticker.feed(seg)
            yield from ticker.finish()
        finally:
            spoken.stop()

    ahead_frames = round(preset.live.buffer * video.fps) if job.live else 2 * video.fps
    on_event(Event("started", {
        "output": masked, "live": job.live, "preset": preset.name,
        "video": f"{video.width}x{video.height}@{video.fps}", "audio": f"{fmt.sample_rate}Hz/{fmt.channels}ch",
        "tts": preset.tts.backend if tts else None, "avatar": preset.avatar.backend,
        "sentences": job.sentences, "ffmpeg": ffmpeg_version,
    }))
    t0 = time.monotonic()
    pacer = Pacer(video.fps) if job.live else None
    frames = sentences = 0
    next_report = 0.0
    last = (t0, 0)  # (time, frames) at the previous report, for the frame rate
    drawn = None
    sink.start()
    try:
        drawn = _Ahead(ticks, ahead_frames, "draw")
        for tick in drawn:
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            if pacer is not None:
                pacer.wait(tick.index)
            sink.write(tick.frame, tick.audio)
            frames = tick.index + 1
            for placed in tick.starts:
                seg = placed.segment
                if seg.kind == "speech":
                    sentences += 1
                    on_event(Event("sentence", {
                        "index": seg.sentence, "total": job.sentences, "text": seg.text,
                        "at": round(placed.start / fmt.sample_rate, 3),
                    }))
            now = time.monotonic()
            if now >= next_report:
                next_report = now + (1.0 if job.live else 0.25)
                fps = (frames - last[1]) / (now - last[0]) if now > last[0] else 0.0
                last = (now, frames)
                on_event(_progress(job, frames, sentences, now - t0, fps, drawn.depth(), sink))
        sink.close()
    except KeyboardInterrupt:
        _stop(drawn)
        sink.close()  # EOF lets ffmpeg write the trailer: what was sent stays playable
        raise Interrupted("stopped; what was sent so far was closed cleanly") from None
    except BaseException:
        _stop(drawn)
        sink.abort()
        raise
    summary = Summary(masked, frames, frames / video.fps, sentences, time.monotonic() - t0)
    on_event(Event("finished", {
        "output": masked, "frames": summary.frames, "seconds": round(summary.seconds, 3),
        "sentences": summary.sentences, "wall": round(summary.wall, 3), "speed": round(summary.speed, 2),
    }))
    return summary


def _checked(avatar: Avatar, video: VideoFormat) -> Callable[[FrameContext], object]:
    """The avatar's draw, with its failures and wrong-sized frames reported as backend errors."""

    def draw(ctx: FrameContext) -> object:
        try:
            frame = avatar.draw(ctx)
        except LinlyPushError:
            raise
        except Exception as exc:
            raise BackendError(f"{avatar.name}: failed on frame {ctx.index}: {exc}") from exc
        size = frame.nbytes if isinstance(frame, np.ndarray) else len(frame)
        if size != video.frame_bytes:
            raise BackendError(
                f"{avatar.name}: frame {ctx.index} has {size} bytes; "
                f"{video.width}x{video.height} yuv420p needs {video.frame_bytes}"
            )
        return frame

    return draw


def _stop(drawn: _Ahead | None) -> None:
    if drawn is not None:
        drawn.stop()


def _progress(job: Job, frames: int, sentences: int, wall: float, fps_now: float, depth: int, sink: FFmpegSink) -> Event:
    fps = job.video.fps
    media = frames / fps
    p = sink.progress
    data = {
        "frames": frames, "seconds": round(media, 3), "sentences": sentences, "total": job.sentences,
        "fps": round(fps_now, 2), "wall": round(wall, 3), "speed": round(media / wall, 2) if wall > 0 else None,
        "bitrate_kbps": p.bitrate_kbps if p else None, "buffer": round(depth / fps, 2),
    }
    return Event("status" if job.live else "progress", data)
