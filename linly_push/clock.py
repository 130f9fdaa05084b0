"""The on-air clock: what goes out, and when.

Producers run ahead in their own threads (``producers``): TTS turns the program into segments,
the ``Drawer`` draws the frames it is asked for. The clock, in the consumer's thread, places the
segments on the stream's timeline, asks for each frame once its audio is placed, and hands out
ticks (a frame and the audio that plays under it) — live, in real time from the audio clock
(``Pacer``); to a file, as fast as ffmpeg takes them. It alone decides:

- idle filler: live, when the program has nothing ready, a frame of silence at a time, kept
  ``low_water`` ahead of what is on air, so new speech goes out soon after it arrives;
- repeats: live, a frame not drawn by one frame after its time is shown as the one before
  (audio is never cut or stretched), and the drawer skips drawing it;
- history: what was placed in the last ``history`` seconds, to resume after a reconnect;
- splices: ``splice`` drops everything not yet handed out and plays other segments from the
  next frame on, the timestamps continuous.

Frame numbers and sample counts are this connection's: a reconnect (``restart``) starts both
again at 0, as the new ffmpeg does.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .media import AudioFormat, Kind, Segment, VideoFormat, silence
from .producers import END, WAIT, Ahead, Drawer, Drawn, Frame, Request
from .reconnect import resume_point
from .timeline import FrameContext, Placed, Tick, Timeline, frame_start, frames_after

LOOK_BACK = 2.0  # seconds of placed audio a frame's context shows before it


class Pacer:
    """Releases ticks in real time from the audio clock, like ``ffmpeg -re``: frame n goes out
    no earlier than ``n / fps`` seconds after the first."""

    def __init__(
        self,
        fps: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.fps = fps
        self._clock = clock
        self._sleep = sleep
        self._t0: float | None = None

    def due(self, n: int) -> float:
        """When frame ``n`` is due (the clock's seconds); the first frame asked about is due now."""
        if self._t0 is None:
            self._t0 = self._clock() - n / self.fps
        return self._t0 + n / self.fps

    def wait(self, n: int) -> float:
        """Block until frame ``n`` is due; returns how late it is (seconds, 0 if on time)."""
        due, now = self.due(n), self._clock()
        if due > now:
            self._sleep(due - now)
            return 0.0
        return now - due

    @property
    def started(self) -> bool:
        return self._t0 is not None


@dataclass(frozen=True)
class _Splice:
    segments: tuple[Segment, ...]


class Clock:
    """Places ``source``'s segments and hands out ticks drawn by ``drawer`` (see the module).

    ``live``: paced, idling and repeating; else every frame is drawn and handed out as soon as
    it is. ``ahead``: seconds placed and asked for ahead of what is handed out. ``admit``: asked
    of each segment taken from the source; one it refuses is dropped (withdrawn by the program).
    """

    def __init__(
        self,
        video: VideoFormat,
        audio: AudioFormat,
        source: Ahead[Segment],
        drawer: Drawer,
        *,
        live: bool,
        ahead: float,
        low_water: float = 0.3,
        history: float = 30.0,
        pacer: Callable[[int], Pacer] = Pacer,
        admit: Callable[[Segment], bool] | None = None,
    ) -> None:
        self.video, self.audio = video, audio
        self.source, self.drawer, self.live = source, drawer, live
        self._make_pacer = pacer
        self._admit = admit  # what the program still wants (a control request withdrawn: not)
        self._ahead = max(1, round(ahead * video.fps))
        self._low = max(1, round(low_water * video.fps))
        self._history = history
        self._look_back = round(LOOK_BACK * audio.sample_rate)
        self._commands: queue.SimpleQueue[_Splice] = queue.SimpleQueue()
        self.repeated = 0  # frames shown again, over the whole broadcast
        self.ended = False  # everything is placed: the source had no more, and nothing is to replay
        self._exhausted = False  # the source had no more
        self._replay: deque[Segment] = deque()  # placed before anything more from the source
        self._reset()

    def _reset(self) -> None:
        """A fresh timeline from frame 0 (a new connection)."""
        self.timeline = Timeline(self.audio, keep_seconds=max(self._history, LOOK_BACK))
        self.aired = 0  # frames handed out on this connection
        self._requested = 0  # frames asked of the drawer
        self._epoch = getattr(self, "_epoch", 0) + 1
        self._ready: dict[int, Frame | None] = {}
        self._last: Frame | None = None
        self._starts: deque[Placed] = deque()  # placed, not yet announced in a tick
        self._idled = 0  # samples of idle filler since the program last gave something
        self.pacer = self._make_pacer(self.video.fps) if self.live else None
        self.drawer.drop_requests()

    # -- what others ask ----------------------------------------------------------------------

    def splice(self, segments: Sequence[Segment]) -> None:
        """Drop everything placed and not yet handed out, and play ``segments`` from the next
        frame boundary on, then the source again. Safe from any thread."""
        self._commands.put(_Splice(tuple(segments)))

    def restart(self, cut: int) -> list[Segment]:
        """After a lost connection: start again at frame 0, first with what was placed from
        sample ``cut`` on (speech from the start of its sentence, a recording from its last
        pause; see ``reconnect.resume_point``). Returns what will be sent again."""
        placed = list(self.timeline.placed)
        replay = resume_point(placed, cut, self.audio.sample_rate) + list(self._replay)
        self._reset()
        self._replay = deque(replay)
        self.ended = False
        return replay

    @property
    def placed_frames(self) -> int:
        return frames_after(self.timeline.samples, self.video.fps, self.audio.sample_rate)

    @property
    def buffered(self) -> float:
        """Seconds of media ready ahead of air: frames drawn (their audio placed, as the drawer is
        asked only for those) from the next one to go out, without a gap."""
        n = self.aired
        while n in self._ready:
            n += 1
        return (n - self.aired) / self.video.fps

    # -- the loop -----------------------------------------------------------------------------

    def ticks(self) -> Iterator[Tick]:
        """This connection's ticks, from frame ``aired`` on, until the source ends."""
        fps, rate = self.video.fps, self.audio.sample_rate
        while True:
            self._apply_commands()
            self._place()
            self._ask()
            self._collect()
            n = self.aired
            if n >= self.placed_frames:
                if self.ended:
                    return
                continue  # render waiting on TTS (``_place`` blocked); live always has idle
            frame = self._frame(n)
            a, b = frame_start(n, fps, rate), frame_start(n + 1, fps, rate)
            starts = []
            while self._starts and self._starts[0].start < b:
                starts.append(self._starts.popleft())
            tick = Tick(n, frame, self.timeline.pcm(a, b), starts)
            self.aired = n + 1
            self.timeline.trim(b)
            yield tick

    def _apply_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            at = frame_start(self.aired, self.video.fps, self.audio.sample_rate)
            self.timeline.truncate(at)
            while self._starts and self._starts[-1].start >= at:
                self._starts.pop()
            self._epoch += 1
            self.drawer.drop_requests()
            self._ready.clear()
            self._requested = self.aired
            self._replay = deque(command.segments)
            self._idled = 0
            self.ended = False

    def _place(self) -> None:
        """Place segments until ``ahead`` frames past what is on air are covered: replayed ones
        first, then the source's. Live never waits for the source (idle filler instead); a
        render waits when nothing is left to hand out."""
        target = self.aired + self._ahead
        while not self.ended and self.placed_frames < target:
            if self._replay:
                self._add(self._replay.popleft())
                continue
            if self._exhausted:
                self._finish()
                return
            starving = self.placed_frames - self.aired < self._low
            block = not self.live and self.placed_frames <= self.aired
            item = self.source.get(timeout=None if block else 0)
            if item is END:
                self._exhausted = True
                self._finish()
                return
            if item is WAIT:
                if self.live and starving:
                    self._idle()
                    continue
                return
            if self._admit is None or self._admit(item):  # type: ignore[arg-type]
                if self.live:
                    self._cut_idle()
                self._program(item)  # type: ignore[arg-type]

    def _program(self, seg: Segment) -> None:
        if seg.kind == Kind.PAUSE and self._idled:
            # Idle silence already stood in for (part of) this pause, which may come in pieces:
            # new speech does not wait twice.
            cut = min(self._idled, len(seg))
            self._idled -= cut
            seg = Segment(seg.audio[cut:], Kind.PAUSE, avatar=seg.avatar)
        elif seg.kind != Kind.PAUSE:
            self._idled = 0
        self._add(seg)

    def _cut_idle(self) -> None:
        """Live: what the program gives goes on air at the next frame boundary, not after the idle
        filler placed ahead of it (up to ``low_water``). The frame about to go out stays if drawn."""
        first = self.aired + 1 if self.aired in self._ready else self.aired
        at = frame_start(first, self.video.fps, self.audio.sample_rate)
        ahead = [p for p in self.timeline.placed if p.end > at]
        if not ahead or any(p.segment.kind != Kind.IDLE for p in ahead):
            return
        self._idled = max(0, self._idled - (self.timeline.samples - at))
        self.timeline.truncate(at)
        while self._starts and self._starts[-1].start >= at:
            self._starts.pop()
        self._epoch += 1  # what the drawer is drawing from ``first`` on is idle: not wanted
        self.drawer.drop_requests()
        for n in [k for k in self._ready if k >= first]:
            del self._ready[n]
        self._requested = first

    def _idle(self) -> None:
        """Silence up to the next frame boundary: the shortest filler that keeps the clock going."""
        fps, rate = self.video.fps, self.audio.sample_rate
        samples = frame_start(self.placed_frames + 1, fps, rate) - self.timeline.samples
        self._idled += samples
        self._add(Segment(silence(samples, self.audio), Kind.IDLE))

    def _finish(self) -> None:
        """Pad with silence to the next frame boundary so audio and video end together."""
        fps, rate = self.video.fps, self.audio.sample_rate
        short = frame_start(self.placed_frames + 1, fps, rate) - self.timeline.samples
        if self.timeline.samples > frame_start(self.placed_frames, fps, rate) and short > 0:
            self._add(Segment(silence(short, self.audio), Kind.PAUSE))
        self.ended = True

    def _add(self, seg: Segment) -> None:
        if len(seg):
            self._starts.append(self.timeline.append(seg))

    def _ask(self) -> None:
        """Ask the drawer for each frame whose audio is placed, up to ``ahead``."""
        fps, rate = self.video.fps, self.audio.sample_rate
        last = min(self.placed_frames, self.aired + self._ahead)
        for n in range(self._requested, last):
            a, b = frame_start(n, fps, rate), frame_start(n + 1, fps, rate)
            view = self.timeline.view(a - self._look_back, b + self._look_back)
            placed = view.segment_at(frame_start(n, fps, rate))
            # Live, a frame not drawn by one frame after its time is not drawn at all.
            deadline = self.pacer.due(n) + 1 / fps if self.pacer is not None and self.pacer.started else None
            avatar = placed.segment.avatar if placed is not None else None
            self.drawer.request(Request(self._epoch, FrameContext(n, self.video, view), avatar, deadline))
        self._requested = max(self._requested, last)

    def _frame(self, n: int) -> Frame:
        """Frame ``n`` as drawn; live, the one before when it is not drawn in time."""
        pacer = self.pacer
        latest = pacer.due(n) + 1 / self.video.fps if pacer is not None else None
        while n not in self._ready:
            # The first frame of a connection is always drawn: there is nothing to repeat.
            if latest is None or self._last is None:
                self._receive(None)
                continue
            left = latest - time.monotonic()
            if left <= 0 or not self._receive(left):
                break
        frame = self._ready.pop(n, None)
        for old in [k for k in self._ready if k < n]:
            del self._ready[old]
        if frame is None:
            frame = self._last
            self.repeated += 1
        self._last = frame
        if pacer is not None:
            pacer.wait(n)
        assert frame is not None
        return frame

    def _collect(self) -> None:
        """Take every frame the drawer has finished, without waiting: frames drawn ahead are
        ready (and counted in ``buffered``) before their turn, not only once it comes."""
        while self._receive(0):
            pass

    def _receive(self, timeout: float | None) -> bool:
        """Take one drawn frame from the drawer; False if none came within ``timeout``."""
        try:
            drawn: Drawn = self.drawer.results.get(timeout=timeout)
        except queue.Empty:
            return False
        if drawn.error is not None:
            raise drawn.error
        if drawn.epoch == self._epoch and drawn.index >= self.aired:
            self._ready[drawn.index] = drawn.frame
        return True
