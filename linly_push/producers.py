"""The producers: each works ahead of the on-air clock in its own thread, into a queue.

``Ahead`` runs the program's segments (TTS) into a bounded queue; the ``Drawer`` draws the
frames the clock asks for, each request carrying everything the avatar may look at, so nothing
here reads the clock's state. What the clock decides (placing, pacing, idling, repeating,
splicing) is in ``clock.py``.
"""

from __future__ import annotations

import contextlib
import queue
from collections import deque
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from .backends.base import Avatar, as_backend_error
from .errors import BackendError
from .media import VideoFormat
from .timeline import FrameContext

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


Frame = bytes | np.ndarray


@dataclass(frozen=True)
class Request:
    """Draw frame ``ctx.index``, with the avatar ``avatar`` names (None: the one on screen), unless
    it is past ``deadline`` (monotonic seconds) by then. ``epoch`` comes back with the frame, so
    the clock knows frames it asked for before a splice."""

    epoch: int
    ctx: FrameContext
    avatar: Hashable | None = None
    deadline: float | None = None


@dataclass(frozen=True)
class Drawn:
    epoch: int
    index: int
    frame: Frame | None  # None: past its deadline, not drawn
    error: BaseException | None = None


Overlay = Callable[[Frame, FrameContext], Frame]


class Drawer:
    """Draws requested frames in order in its own thread: one avatar call at a time, as the
    avatar contract promises; captions burned in after. A failure comes back as a ``Drawn``
    with an error (a BackendError), and the thread stops."""

    def __init__(
        self, video: VideoFormat, avatars: Mapping[Hashable, Avatar], on_screen: Hashable, overlay: Overlay | None = None
    ) -> None:
        self.video = video
        self.avatars = avatars  # the job's: one started while on air (a control request) shows up here
        self.on_screen = on_screen  # the avatar drawing now: unkeyed frames (idle filler) keep it
        self.overlay = overlay
        self._requests: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        self.draw_seconds: deque[float] = deque(maxlen=2000)  # the latest frames' drawing times, for metrics
        self.results: queue.SimpleQueue[Drawn] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="draw", daemon=True)
        self._thread.start()

    def request(self, request: Request) -> None:
        self._requests.put(request)

    def drop_requests(self) -> None:
        """Forget what was asked and not yet taken up (a frame being drawn still comes back)."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._requests.get_nowait()

    def close(self, wait: float = 10.0) -> None:
        self.drop_requests()
        self._requests.put(None)
        self._thread.join(wait)

    def _run(self) -> None:
        while (req := self._requests.get()) is not None:
            index = req.ctx.index
            if req.deadline is not None and time.monotonic() > req.deadline:
                self.results.put(Drawn(req.epoch, index, None))
                continue
            started = time.monotonic()
            try:
                frame = self._draw(req)
            except BaseException as exc:  # handed to the clock, which raises it
                self.results.put(Drawn(req.epoch, index, None, exc))
                return
            self.draw_seconds.append(time.monotonic() - started)
            self.results.put(Drawn(req.epoch, index, frame))

    def _draw(self, req: Request) -> Frame:
        if req.avatar is not None and req.avatar in self.avatars:
            self.on_screen = req.avatar
        avatar = self.avatars[self.on_screen]
        ctx = req.ctx
        with as_backend_error(avatar, f"failed on frame {ctx.index}"):
            frame = avatar.draw(ctx)
        size = frame.nbytes if isinstance(frame, np.ndarray) else len(frame)
        if size != self.video.frame_bytes:
            v = self.video
            raise BackendError(f"{avatar.name}: frame {ctx.index} has {size} bytes; {v.width}x{v.height} yuv420p needs {v.frame_bytes}")
        return self.overlay(frame, ctx) if self.overlay is not None else frame
