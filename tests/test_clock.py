"""The audio-master clock: exact frame arithmetic over long runs, the Ticker, the Pacer."""

from __future__ import annotations

from fractions import Fraction
from math import ceil, floor

import numpy as np
import pytest

from linly_push.clock import Pacer
from linly_push.timeline import (
    FrameContext,
    Ticker,
    frame_start,
    frame_window,
    frames_after,
    nearest_frame,
)
from linly_push.media import AudioFormat, Segment, VideoFormat

RATES = (44100, 48000)
FPS = (15, 25, 30, 24)  # 24 fps at 44.1 kHz: 1837.5 samples a frame, where rounding shows
TEN_HOURS = 10 * 3600

combos = pytest.mark.parametrize(("fps", "rate"), [(f, r) for f in FPS for r in RATES])


@combos
def test_frames_after_is_exact_over_ten_hours_of_random_chunks(fps: int, rate: int) -> None:
    rng = np.random.default_rng(fps * rate)
    total = TEN_HOURS * rate + int(rng.integers(rate))
    # Chunks as TTS and file blocks come, from one sample to a few seconds. A running remainder
    # (Bresenham) is an independent exact count of the frames each chunk brings.
    done = frames = remainder = 0
    while done < total:
        chunk = min(total - done, int(rng.integers(1, 3 * rate)))
        brought = frames_after(done + chunk, fps, rate) - frames_after(done, fps, rate)
        expected, remainder = divmod(remainder + chunk * fps, rate)
        assert brought == expected, f"after {done + chunk} samples"
        done += chunk
        frames += brought
    assert frames == frames_after(total, fps, rate) == floor(Fraction(total * fps, rate))
    assert frames_after(TEN_HOURS * rate, fps, rate) == TEN_HOURS * fps


@combos
def test_frame_start_is_the_first_sample_with_n_frames(fps: int, rate: int) -> None:
    rng = np.random.default_rng(fps + rate)
    last = TEN_HOURS * fps
    for n in [1, 2, fps - 1, fps, fps + 1, last, *rng.integers(1, last, 200).tolist()]:
        s = frame_start(n, fps, rate)
        assert s == ceil(Fraction(n * rate, fps))
        assert frames_after(s, fps, rate) == n
        assert frames_after(s - 1, fps, rate) == n - 1
    assert frame_start(0, fps, rate) == 0
    for s in rng.integers(0, TEN_HOURS * rate, 200).tolist():
        n = frames_after(s, fps, rate)
        assert frame_start(n, fps, rate) <= s < frame_start(n + 1, fps, rate)


@combos
def test_nearest_frame_rounds_exactly_with_ties_to_the_later_frame(fps: int, rate: int) -> None:
    rng = np.random.default_rng(fps * 7 + rate)
    for s in [0, 1, *rng.integers(0, TEN_HOURS * rate, 300).tolist()]:
        assert nearest_frame(s, fps, rate) == floor(Fraction(s * fps, rate) + Fraction(1, 2))
    half = Fraction(rate, 2 * fps)
    if half.denominator == 1:  # a sample exactly halfway between frames 0 and 1
        assert nearest_frame(int(half), fps, rate) == 1
        assert nearest_frame(int(half) - 1, fps, rate) == 0


@combos
def test_frame_window_holds_exactly_the_samples_nearest_to_its_frame(fps: int, rate: int) -> None:
    last = TEN_HOURS * fps
    for n in [*range(3 * fps), *range(last - fps, last)]:
        lo, hi = frame_window(n, fps, rate)
        assert hi == frame_window(n + 1, fps, rate)[0]  # contiguous, no sample in two windows
        assert lo <= frame_start(n, fps, rate) < hi  # the frame's own instant is in it
        around = np.arange(lo - 2, hi + 2, dtype=np.int64)
        inside = (around >= lo) & (around < hi)
        assert np.array_equal(nearest_frame(around, fps, rate) == n, inside)


def _segments(rng: np.random.Generator, rate: int, channels: int, count: int) -> list[Segment]:
    """Random int16 audio in segments from empty to a few frames to a few seconds long."""
    lengths = [0, 1, 7, rate // 25, rate + 1] + rng.integers(0, 2 * rate, count).tolist()
    rng.shuffle(lengths)
    return [Segment(rng.integers(-30000, 30000, (n, channels), dtype=np.int16), "speech") for n in lengths]


@pytest.mark.parametrize(("fps", "rate", "channels"), [(25, 44100, 2), (30, 48000, 1), (15, 44100, 1), (24, 44100, 2)])
def test_ticker_hands_out_all_audio_frame_by_frame(fps: int, rate: int, channels: int) -> None:
    rng = np.random.default_rng(fps + channels)
    video, audio = VideoFormat(16, 16, fps), AudioFormat(rate, channels)
    drawn: list[int] = []

    def draw(ctx: FrameContext) -> int:
        assert ctx.timeline.samples >= ctx.window()[1], "drawn before its audio was known"
        drawn.append(ctx.index)
        return ctx.index

    ticker = Ticker(video, audio, draw)
    segments = _segments(rng, rate, channels, 12)
    ticks = [t for s in segments for t in ticker.feed(s)]
    ticks += list(ticker.finish())

    assert [t.index for t in ticks] == drawn == list(range(len(ticks)))
    assert [t.frame for t in ticks] == drawn
    for t in ticks:
        assert len(t.audio) == frame_start(t.index + 1, fps, rate) - frame_start(t.index, fps, rate)
    fed = np.concatenate([s.audio for s in segments])
    out = np.concatenate([t.audio for t in ticks])
    assert len(out) == frame_start(len(ticks), fps, rate)  # padded to a frame boundary
    assert 0 <= len(out) - len(fed) < rate / fps + 1
    assert np.array_equal(out[: len(fed)], fed)
    assert not out[len(fed) :].any()

    # Each segment is announced once, in the tick its first sample plays in.
    first = np.cumsum([0] + [len(s) for s in segments])
    for seg, at in zip(segments, first):
        holders = [t.index for t in ticks if any(x.segment is seg for x in t.starts)]
        assert holders == ([] if len(seg) == 0 else [frames_after(int(at), fps, rate)])


def test_ticker_finish_adds_nothing_on_a_frame_boundary_or_without_audio() -> None:
    video, audio = VideoFormat(16, 16, 25), AudioFormat(48000, 1)
    ticker = Ticker(video, audio, lambda ctx: b"")
    assert list(ticker.finish()) == []
    ticks = list(ticker.feed(Segment(np.ones((48000 // 25 * 3, 1), np.int16), "speech")))
    assert len(ticks) == 3
    assert list(ticker.finish()) == []


def test_every_frame_sees_the_audio_of_its_window() -> None:
    rate, fps = 44100, 25
    video, audio = VideoFormat(16, 16, fps), AudioFormat(rate, 1)
    loud = Segment(np.full((rate, 1), 16384, np.int16), "speech")
    quiet = Segment(np.zeros((3 * rate, 1), np.int16), "pause")  # longer than the 2 s kept
    stream = np.concatenate([loud.audio[:, 0], quiet.audio[:, 0]]).astype(np.float32) / 32768.0
    seen: dict[int, np.ndarray] = {}
    ticker = Ticker(video, audio, lambda ctx: seen.setdefault(ctx.index, ctx.audio()))
    for s in (loud, quiet):
        list(ticker.feed(s))
    for n, got in seen.items():
        lo, hi = frame_window(n, fps, rate)
        want = np.concatenate([np.zeros(max(0, -lo), np.float32), stream[max(0, lo) : hi]])
        assert np.array_equal(got, want), f"frame {n} sees other audio than its window [{lo}, {hi})"


class FakeTime:
    """A clock that only moves when slept on (or when the test moves it)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_pacer_releases_frame_n_at_t0_plus_n_over_fps() -> None:
    t = FakeTime()
    pacer = Pacer(25, t.clock, t.sleep)
    for n in range(500):
        assert pacer.wait(n) == 0.0
        assert t.now == pytest.approx(1000.0 + n / 25, abs=1e-9)
        t.now += 0.013  # producing the next frame takes a while, less than a frame
    assert t.now - pacer.due(0) == pytest.approx(499 / 25 + 0.013, abs=1e-9)


def test_pacer_reports_lateness_and_keeps_its_schedule() -> None:
    t = FakeTime()
    pacer = Pacer(25, t.clock, t.sleep)
    pacer.wait(0)
    t.now += 1.0  # a stall: frame 10 was due at 0.4 s
    assert pacer.wait(10) == pytest.approx(0.6)
    assert t.slept == []
    assert pacer.wait(30) == 0.0  # back on the original schedule, not shifted by the stall
    assert t.now == pytest.approx(1000.0 + 30 / 25)


def test_pacer_anchors_on_the_first_frame_it_sees() -> None:
    t = FakeTime()
    pacer = Pacer(30, t.clock, t.sleep)
    assert pacer.wait(90) == 0.0  # resuming at frame 90: due now
    assert t.slept == []
    pacer.wait(91)
    assert t.slept == [pytest.approx(1 / 30)]
