"""The stream's timeline: the audio-master frame schedule, and the audio placed on it.

Audio leads: after ``s`` samples at rate ``r`` the stream holds exactly ``floor(s * fps / r)``
frames, computed from the cumulative sample count so rounding never accumulates. Frame ``n``
has PTS ``n / fps`` and is drawn once the audio has reached the end of its interval, so
whatever an avatar looks at around a frame's instant is already known when it draws.

The schedule functions are pure integer arithmetic; ``Timeline`` holds what is placed (recent
audio for the avatars to look at, and what is still to go out); a ``FrameContext`` is what an
avatar sees of it for one frame: a snapshot, so it can be drawn in another thread while more is
placed. ``Ticker`` draws segments into ticks in the caller's thread (tests, benchmarks).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .media import AudioFormat, Mark, Segment, VideoFormat, silence


def frames_after(samples: int, fps: int, rate: int) -> int:
    """How many frames the stream has once ``samples`` samples of audio have been produced."""
    return samples * fps // rate


def frame_start(n: int, fps: int, rate: int) -> int:
    """The first sample at or after frame ``n``'s instant: ceil(n * rate / fps). Frame n is
    emitted once the audio reaches frame_start(n + 1)."""
    return -(-n * rate // fps)


def nearest_frame(sample: int, fps: int, rate: int) -> int:
    """The frame whose instant n/fps is nearest to ``sample`` (ties go to the later frame)."""
    return (2 * sample * fps + rate) // (2 * rate)


def frame_window(n: int, fps: int, rate: int) -> tuple[int, int]:
    """The samples nearer to frame ``n``'s instant than to any other frame's: [start, end)."""
    return -(-(2 * n - 1) * rate // (2 * fps)), -(-(2 * n + 1) * rate // (2 * fps))


@dataclass(frozen=True)
class Placed:
    """A segment placed on the stream: its first sample in stream samples."""

    start: int
    segment: Segment
    mono: np.ndarray = field(repr=False)  # float32 mono copy, for looking at loudness

    @property
    def end(self) -> int:
        return self.start + len(self.segment)

    def head(self, samples: int) -> Placed:
        """Its first ``samples`` samples only (what went out before a splice)."""
        return Placed(self.start, self.segment.head(samples), self.mono[:samples])


def _start(p: Placed) -> int:
    return p.start


class _Placements:
    """Queries over placed segments, in order and end to end: what avatars look at."""

    format: AudioFormat

    def _span(self, start: int, end: int) -> Sequence[Placed]:
        """The segments that overlap [start, end)."""
        items, first = self._items, self._first
        lo = max(first, bisect.bisect_right(items, start, first, key=_start) - 1)
        hi = bisect.bisect_left(items, end, lo, key=_start)
        return [p for p in items[lo:hi] if p.end > start]

    def audio(self, start: int, end: int) -> np.ndarray:
        """Mono float32 samples [start, end) of the stream; zeros where nothing is (or kept)."""
        out = np.zeros(max(0, end - start), dtype=np.float32)
        for p in self._span(start, end):
            lo, hi = max(start, p.start), min(end, p.end)
            out[lo - start : hi - start] = p.mono[lo - p.start : hi - p.start]
        return out

    def segment_at(self, sample: int) -> Placed | None:
        found = self._span(sample, sample + 1)
        return found[0] if found else None

    def marks(self, which: str, start: int, end: int) -> list[tuple[Mark, Placed]]:
        """Phoneme or word marks (``which`` is "phonemes" or "words") overlapping [start, end),
        moved to stream samples, each with the segment it belongs to."""
        found = []
        for p in self._span(start, end):
            for m in getattr(p.segment, which):
                if p.start + m.end > start and p.start + m.start < end:
                    found.append((Mark(m.label, p.start + m.start, p.start + m.end), p))
        return found

    @property
    def placed(self) -> Sequence[Placed]:
        """Every segment kept, in order."""
        return self._items[self._first :]


@dataclass(frozen=True)
class View(_Placements):
    """An unchanging snapshot of part of a timeline: safe to read in another thread."""

    format: AudioFormat
    _items: tuple[Placed, ...]
    _first: int = 0


class Timeline(_Placements):
    """The stream, segment after segment on the audio clock.

    Keeps segments until ``trim`` says they are far enough behind, so avatars can look back
    (onsets, loudness) and a lost connection can be resumed; ``truncate`` takes back what was
    placed after a point (a splice).
    """

    def __init__(self, audio: AudioFormat, keep_seconds: float = 2.0) -> None:
        self.format = audio
        self.samples = 0
        self.keep = int(keep_seconds * audio.sample_rate)
        self._items: list[Placed] = []
        self._first = 0  # items before this one are forgotten (dropped from the list in batches)

    def append(self, segment: Segment) -> Placed:
        mono = segment.audio.astype(np.float32).mean(axis=1) / 32768.0
        placed = Placed(self.samples, segment, mono)
        self._items.append(placed)
        self.samples += len(segment)
        return placed

    def trim(self, drawn_up_to: int) -> None:
        """Forget segments that end more than the look-back before ``drawn_up_to``."""
        items = self._items
        while self._first < len(items) - 1 and items[self._first].end < drawn_up_to - self.keep:
            self._first += 1
        if self._first >= 16:  # forgotten segments hold their audio until dropped from the list
            del items[: self._first]
            self._first = 0

    def truncate(self, sample: int) -> list[Placed]:
        """Take back everything placed from ``sample`` on (a segment that runs across it keeps
        its head); what was taken back, as placed."""
        gone: list[Placed] = []
        items = self._items
        while len(items) > self._first and items[-1].end > sample:
            last = items.pop()
            gone.insert(0, last)
            if last.start < sample:
                items.append(last.head(sample - last.start))
        self.samples = min(self.samples, sample)
        return gone

    def view(self, start: int, end: int) -> View:
        """A snapshot of the segments that overlap [start, end)."""
        return View(self.format, tuple(self._span(start, end)))

    def pcm(self, start: int, end: int) -> np.ndarray:
        """The stream's int16 audio [start, end), (n, channels); silence where nothing is."""
        parts, at = [], start
        for p in self._span(start, end):
            lo, hi = max(at, p.start), min(end, p.end)
            if lo > at:
                parts.append(silence(lo - at, self.format))
            parts.append(p.segment.audio[lo - p.start : hi - p.start])
            at = hi
        if at < end:
            parts.append(silence(end - at, self.format))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


@dataclass(frozen=True)
class FrameContext:
    """What an avatar may look at to draw frame ``index``: its instant, and the audio around it."""

    index: int
    video: VideoFormat
    timeline: Timeline | View

    @property
    def rate(self) -> int:
        return self.timeline.format.sample_rate

    @property
    def time(self) -> float:
        """The frame's presentation time in seconds."""
        return self.index / self.video.fps

    @property
    def position(self) -> int:
        """The first sample at or after the frame's instant."""
        return frame_start(self.index, self.video.fps, self.rate)

    def window(self) -> tuple[int, int]:
        """The samples this frame stands for on screen: half a frame either side of its instant."""
        return frame_window(self.index, self.video.fps, self.rate)

    def audio(self, start: int | None = None, end: int | None = None) -> np.ndarray:
        """Mono float32 stream audio [start, end), the frame's window by default."""
        lo, hi = self.window()
        return self.timeline.audio(lo if start is None else start, hi if end is None else end)

    def phonemes(self, start: int | None = None, end: int | None = None) -> list[tuple[Mark, Placed]]:
        lo, hi = self.window()
        return self.timeline.marks("phonemes", lo if start is None else start, hi if end is None else end)

    def words(self, start: int | None = None, end: int | None = None) -> list[tuple[Mark, Placed]]:
        lo, hi = self.window()
        return self.timeline.marks("words", lo if start is None else start, hi if end is None else end)

    @property
    def placed(self) -> Placed | None:
        """The segment playing at the frame's instant."""
        return self.timeline.segment_at(self.position)

    @property
    def text(self) -> str | None:
        p = self.placed
        return p.segment.text if p else None


@dataclass
class Tick:
    """One frame of video and the audio that plays during it: samples [frame_start(n), frame_start(n+1))."""

    index: int
    frame: bytes | bytearray | memoryview | np.ndarray
    audio: np.ndarray  # int16, (k, channels)
    starts: list[Placed] = field(default_factory=list)  # segments whose first sample is in this tick


class Ticker:
    """Turns segments into ticks: places them on the timeline and has the avatar draw each frame
    as soon as the audio has covered it."""

    def __init__(self, video: VideoFormat, audio: AudioFormat, draw: Callable[[FrameContext], object]) -> None:
        self.video = video
        self.audio_format = audio
        self.timeline = Timeline(audio)
        self.frames = 0  # frames emitted so far
        self._draw = draw
        self._pending: list[np.ndarray] = []  # audio not yet handed out in a tick
        self._pending_starts: list[Placed] = []

    @property
    def samples(self) -> int:
        return self.timeline.samples

    def feed(self, segment: Segment) -> Iterator[Tick]:
        if len(segment) == 0:
            return
        placed = self.timeline.append(segment)
        self._pending.append(segment.audio)
        self._pending_starts.append(placed)
        yield from self._emit()

    def finish(self) -> Iterator[Tick]:
        """Pad with silence to the next frame boundary so audio and video end together."""
        fps, rate = self.video.fps, self.audio_format.sample_rate
        short = frame_start(self.frames + 1, fps, rate) - self.samples
        if self.samples > frame_start(self.frames, fps, rate) and short > 0:
            yield from self.feed(Segment(silence(short, self.audio_format), "pause"))

    def _emit(self) -> Iterator[Tick]:
        fps, rate = self.video.fps, self.audio_format.sample_rate
        due = frames_after(self.samples, fps, rate)
        if due == self.frames:
            return
        buf = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        base = frame_start(self.frames, fps, rate)  # stream sample of buf[0]
        for n in range(self.frames, due):
            a, b = frame_start(n, fps, rate), frame_start(n + 1, fps, rate)
            starts = [p for p in self._pending_starts if a <= p.start < b]
            frame = self._draw(FrameContext(n, self.video, self.timeline))
            yield Tick(n, frame, buf[a - base : b - base], starts)
        self.frames = due
        self.timeline.trim(frame_start(due, fps, rate))
        cut = frame_start(due, fps, rate) - base
        self._pending = [buf[cut:]] if cut < len(buf) else []
        self._pending_starts = [p for p in self._pending_starts if p.start >= frame_start(due, fps, rate)]
