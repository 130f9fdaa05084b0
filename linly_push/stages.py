"""The pipeline's running parts: stages that work ahead in threads, and the drawer that turns
segments into ticks on the audio clock — idling when live has nothing to say, and repeating
frames rather than falling behind real time."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from .backends.base import Avatar
from .clock import FrameContext, Pacer, Placed, Tick, Ticker, frame_start
from .errors import BackendError, LinlyPushError
from .media import AudioFormat, Segment, VideoFormat, silence

T = TypeVar("T")
WAIT = object()  # Ahead.get: nothing yet
END = object()  # Ahead.get: nothing more


class Ahead(Generic[T]):
    """Runs an iterator in its own thread, ahead of its consumer, into a bounded queue.
    An exception in the thread is re-raised in the consumer."""

    def __init__(self, make: Callable[[], Iterable[T]], size: int, name: str) -> None:
        self._make = make
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, size))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._ended = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._make():
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer
            self._error = exc
        self._put(END)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, timeout: float | None = None) -> object:
        """The next item; WAIT if none came within ``timeout``; END after the last."""
        if self._ended:
            return END
        try:
            item = self._queue.get(timeout=timeout) if timeout != 0 else self._queue.get_nowait()
        except queue.Empty:
            return WAIT
        if item is END:
            self._ended = True
            if self._error is not None:
                raise self._error
        return item

    def __iter__(self) -> Iterator[T]:
        while (item := self.get()) is not END:
            yield item  # type: ignore[misc]

    def depth(self) -> int:
        return self._queue.qsize()

    def stop(self, wait: float = 1.0) -> None:
        # The thread notices within 0.1 s unless it is inside a backend call or blocked reading
        # standard input; it is a daemon, so it never holds the process up.
        self._stop.set()
        self._thread.join(timeout=wait)


@dataclass
class Counters:
    """Shared between the drawer and the consumer (plain ints: the GIL makes these writes atomic)."""

    sent: int = 0  # frames handed to ffmpeg on this connection
    repeated: int = 0  # frames shown again because drawing fell behind real time


class Drawer:
    """One connection's clock: places segments on a fresh timeline and draws their frames.

    Live, it never lets output starve: when TTS has nothing ready and less than ``low_water``
    frames are drawn ahead, it adds one frame of idle silence; when a frame is already late
    when its turn to be drawn comes, it shows the previous frame again instead of drawing.
    """

    def __init__(
        self,
        video: VideoFormat,
        audio: AudioFormat,
        avatar: Avatar,
        spoken: Ahead[Segment],
        replay: list[Segment],
        pacer: Pacer | None,
        counters: Counters,
        low_water: float = 0.3,
        history: float = 30.0,
        avatars: Mapping[str, Avatar] | None = None,
        overlay: Callable[[bytes | np.ndarray, FrameContext], bytes | np.ndarray] | None = None,
    ) -> None:
        self.video, self.audio = video, audio
        self.avatar, self.spoken, self.pacer, self.counters = avatar, spoken, pacer, counters
        # A rundown's other avatars, by the key its segments carry; unkeyed segments (idle
        # filler) keep whichever avatar is on screen.
        self.avatars = dict(avatars or {})
        self.overlay = overlay  # burned-in captions
        self.replay = deque(replay)  # what a lost connection left to send again, not yet placed
        self.ticker = Ticker(video, audio, self._draw)
        self.fed: list[Placed] = []  # what this clock has placed, recent first-to-last, for resuming
        self._low = max(1, round(low_water * video.fps))
        self._history = round(history * audio.sample_rate)
        self._last: bytes | np.ndarray | None = None
        self._idled = 0  # samples of idle filler since the last segment from TTS

    @property
    def live(self) -> bool:
        return self.pacer is not None

    def ticks(self) -> Iterator[Tick]:
        while self.replay:
            yield from self._feed(self.replay.popleft())
        while True:
            ahead = self.ticker.frames - self.counters.sent
            starving = self.live and ahead < self._low
            item = self.spoken.get(timeout=0 if starving else (0.02 if self.live else None))
            if item is END:
                break
            if item is WAIT:
                if starving:
                    idle = self._idle()
                    self._idled += len(idle)
                    yield from self._feed(idle)
                continue
            seg: Segment = item  # type: ignore[assignment]
            if seg.kind == "pause" and self._idled:
                # Idle silence already stands in for (part of) this pause, which may come in
                # pieces: don't make new speech wait twice.
                cut = min(self._idled, len(seg))
                seg = Segment(seg.audio[cut:], "pause", avatar=seg.avatar)
                self._idled -= cut
            elif seg.kind != "pause":
                self._idled = 0
            if len(seg):
                yield from self._feed(seg)
        yield from self.ticker.finish()

    def _idle(self) -> Segment:
        """Silence up to the next frame boundary: the shortest filler that keeps the clock going."""
        n = self.ticker.frames + 1
        samples = frame_start(n, self.video.fps, self.audio.sample_rate) - self.ticker.samples
        return Segment(silence(samples, self.audio), "idle")

    def _feed(self, seg: Segment) -> Iterator[Tick]:
        if not self.live:  # only a live connection is ever resumed
            yield from self.ticker.feed(seg)
            return
        self.fed.append(Placed(self.ticker.samples, seg, np.empty(0, np.float32)))
        horizon = frame_start(self.counters.sent, self.video.fps, self.audio.sample_rate) - self._history
        while len(self.fed) > 1 and self.fed[0].end < horizon:
            del self.fed[0]
        yield from self.ticker.feed(seg)

    def _draw(self, ctx: FrameContext) -> bytes | np.ndarray:
        if self.pacer is not None and self._last is not None and self.pacer.lateness(ctx.index) > 1 / self.video.fps:
            self.counters.repeated += 1
            return self._last
        placed = ctx.placed
        if placed is not None and placed.segment.avatar is not None:
            self.avatar = self.avatars.get(placed.segment.avatar, self.avatar)
        try:
            frame = self.avatar.draw(ctx)
        except LinlyPushError:
            raise
        except Exception as exc:
            raise BackendError(f"{self.avatar.name}: failed on frame {ctx.index}: {exc}") from exc
        size = frame.nbytes if isinstance(frame, np.ndarray) else len(frame)
        if size != self.video.frame_bytes:
            v = self.video
            raise BackendError(f"{self.avatar.name}: frame {ctx.index} has {size} bytes; {v.width}x{v.height} yuv420p needs {v.frame_bytes}")
        if self.overlay is not None:
            frame = self.overlay(frame, ctx)
        self._last = frame
        return frame
