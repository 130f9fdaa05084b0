"""The test card: flashes on exactly the frame nearest each onset, and the sync that survives
encoding (through ffmpeg directly, not the project's pipeline, so a failure here is the card's)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from linly_push.backends.avatars.testcard import TestcardAvatar as Card  # a Test* name would be collected
from linly_push.backends.avatars.testcard import timecode
from linly_push.backends.base import BackendOptions
from linly_push.onsets import gap_samples, onsets
from linly_push.timeline import FrameContext, Ticker, Timeline, frames_after, nearest_frame
from linly_push.media import AudioFormat, Segment, VideoFormat, to_int16

from syncmeter import measure  # tests/ is on sys.path (pytest rootdir-relative import)

RATE, FPS = 44100, 25
AUDIO = AudioFormat(RATE, 2)
SMALL = VideoFormat(320, 180, FPS)


def _burst(samples: int) -> np.ndarray:
    """A 1 kHz square wave at half scale: every sample is loud, so a burst's edges are exact."""
    return np.where(np.cos(2 * np.pi * 1000 * np.arange(samples) / RATE) >= 0, 0.5, -0.5)


def _stream(starts_and_lengths: list[tuple[int, int]], total: int) -> np.ndarray:
    x = np.zeros(total)
    for start, n in starts_and_lengths:
        x[start : start + n] = _burst(n)
    return x


def _segments(mono: np.ndarray, cuts: list[int]) -> list[Segment]:
    """The stream cut into segments at ``cuts`` (onsets must be found across segment edges)."""
    stereo = to_int16(np.repeat(mono[:, None], 2, axis=1))
    edges = [0, *cuts, len(mono)]
    return [Segment(stereo[a:b], "speech", text=f"sentence {i}") for i, (a, b) in enumerate(zip(edges, edges[1:]))]


def _is_white(frame: np.ndarray, video: VideoFormat) -> bool:
    area = video.width * video.height
    return bool((frame[:area] == 235).all() and (frame[area:] == 128).all())


# Bursts and the gaps before them: the gap rule's edge (exactly 150 ms flashes, a sample less
# does not), short gaps that must not flash, an onset at the very first sample.
GAP = gap_samples(RATE)
BURSTS: list[tuple[int, int, bool]] = []  # (start, length, flashes)
_at = 0
for _gap, _len in [(0, 3000), (GAP, 2000), (GAP - 1, 2000), (RATE // 10, 4000), (RATE // 2, 9000),
                   (GAP + 1, 500), (1, 3000), (RATE, 100), (GAP * 2, 20000), (RATE // 3, 1)]:  # fmt: skip
    _at += _gap
    BURSTS.append((_at, _len, _gap >= GAP or _at == 0))
    _at += _len
TOTAL = _at + RATE // 2
EXPECTED_ONSETS = [s for s, _, flashes in BURSTS if flashes]


def _timeline(video: VideoFormat) -> tuple[Timeline, int]:
    mono = _stream([(s, n) for s, n, _ in BURSTS], TOTAL)
    timeline = Timeline(AUDIO, keep_seconds=TOTAL / RATE + 1)
    for seg in _segments(mono, [RATE // 7, BURSTS[4][0], BURSTS[4][0] + 5, RATE * 2]):
        timeline.append(seg)
    return timeline, frames_after(TOTAL, video.fps, RATE)


def test_batch_onsets_follow_the_gap_rule() -> None:
    mono = _stream([(s, n) for s, n, _ in BURSTS], TOTAL)
    assert onsets(mono, RATE).tolist() == EXPECTED_ONSETS


@pytest.mark.parametrize("fps", [25, 30, 24])
def test_flash_lands_exactly_on_the_frame_nearest_each_onset(fps: int) -> None:
    video = VideoFormat(320, 180, fps)
    timeline, frames = _timeline(video)
    card = Card(video, BackendOptions())
    white = [n for n in range(frames) if _is_white(np.asarray(card.draw(FrameContext(n, video, timeline))), video)]
    assert white == [nearest_frame(s, fps, RATE) for s in EXPECTED_ONSETS]


def test_frames_drawn_out_of_order_flash_the_same() -> None:
    timeline, frames = _timeline(SMALL)
    card = Card(SMALL, BackendOptions())
    backwards = [n for n in reversed(range(frames)) if _is_white(card.draw(FrameContext(n, SMALL, timeline)), SMALL)]
    assert sorted(backwards) == [nearest_frame(s, FPS, RATE) for s in EXPECTED_ONSETS]


@pytest.mark.parametrize(("width", "height"), [(16, 16), (320, 180), (960, 540), (1280, 720), (1920, 1080)])
def test_every_frame_is_one_yuv420p_frame(width: int, height: int) -> None:
    video = VideoFormat(width, height, FPS)
    timeline = Timeline(AUDIO)
    long_text = "A sentence far too long for two lines of caption, " * 8 + "你好，世界。" * 30
    mono = np.concatenate([np.zeros(RATE // 2), _burst(RATE // 2)])
    timeline.append(_segments(mono, [])[0])
    timeline.append(Segment(np.zeros((RATE, 2), np.int16), "speech", text=long_text))
    card = Card(video, BackendOptions())
    frames = [np.asarray(card.draw(FrameContext(n, video, timeline))) for n in range(frames_after(2 * RATE, FPS, RATE))]
    assert {f.nbytes for f in frames} == {video.frame_bytes}
    assert any(_is_white(f, video) for f in frames)  # flash frames are the right size too


def test_timecode() -> None:
    assert timecode(0, 25) == "00:00:00:00"
    assert timecode(24, 25) == "00:00:00:24"
    assert timecode(25, 25) == "00:00:01:00"
    assert timecode(30 * 3600 - 1, 30) == "00:59:59:29"
    assert timecode(((10 * 60 + 1) * 60 + 1) * 25 + 3, 25) == "10:01:01:03"


def test_card_shows_the_frame_number_timecode_and_caption() -> None:
    timeline = Timeline(AUDIO)
    timeline.append(Segment(np.zeros((RATE, 2), np.int16), "speech", text="first"))
    timeline.append(Segment(np.zeros((RATE, 2), np.int16), "speech", text="second"))
    card = Card(SMALL, BackendOptions())
    frames = [np.asarray(card.draw(FrameContext(n, SMALL, timeline))) for n in range(4)]
    kept = frames[3].copy()
    frames += [np.asarray(card.draw(FrameContext(n, SMALL, timeline))) for n in range(4, 50)]
    area = SMALL.width * SMALL.height

    def luma(n: int) -> np.ndarray:
        return frames[n][:area].reshape(SMALL.height, SMALL.width)

    # Pasting frame 37's timecode over frame 37 changes nothing; frame 38's would.
    y = luma(37).copy()
    card._tc.paste(y, timecode(37, FPS), *card._tc_at)
    assert np.array_equal(y, luma(37))
    card._tc.paste(y, timecode(38, FPS), *card._tc_at)
    assert not np.array_equal(y, luma(37))

    band = card._band_top
    assert np.array_equal(luma(3)[band:], luma(24)[band:])  # same sentence
    assert not np.array_equal(luma(24)[band:], luma(26)[band:])  # next sentence
    assert not np.array_equal(luma(3)[:band], luma(4)[:band])  # the number and timecode move on
    assert np.array_equal(frames[3], kept)  # a frame handed out is never written again


def test_meter_follows_the_level() -> None:
    levels = [0.0, 0.01, 0.1, 1.0]
    timeline = Timeline(AUDIO)
    for level in levels:  # constant levels, so no onset (and no flash) after the first
        timeline.append(_segments(np.full(RATE, level), [])[0])
    card = Card(SMALL, BackendOptions())
    mx, my, mw, _ = card._meter
    rows = []
    for second in range(len(levels)):
        frame = np.asarray(card.draw(FrameContext(second * FPS + FPS // 2, SMALL, timeline)))
        rows.append(frame[: SMALL.width * SMALL.height].reshape(SMALL.height, SMALL.width)[my, mx : mx + mw])
    lit = [int((row != rows[0]).sum()) for row in rows]
    assert 0 < lit[1] < lit[2] < lit[3] == mw  # -40 dB, -20 dB, full scale fills it


# End to end: ~30 s of bursts at random places, encoded by ffmpeg straight from the Ticker.
def _bursts_for_e2e() -> tuple[list[Segment], list[int]]:
    rng = np.random.default_rng(2024)
    segments, onsets_at, at = [], [], 0
    for k in range(50):
        gap = int(rng.uniform(0.2, 0.6) * RATE)
        parts = [_burst(int(rng.uniform(0.05, 0.3) * RATE))]
        if k % 5 == 0:  # a second burst too soon after the first: no flash of its own
            parts += [np.zeros(int(0.1 * RATE)), _burst(int(0.1 * RATE))]
        speech = np.concatenate(parts)
        segments.append(Segment(np.zeros((gap, 2), np.int16), "pause"))
        segments.append(Segment(to_int16(np.repeat(speech[:, None], 2, axis=1)), "speech", text=f"burst {k}"))
        onsets_at.append(at + gap)
        at += gap + len(speech)
    return segments, onsets_at


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("needs ffmpeg and ffprobe")
    tmp = tmp_path_factory.mktemp("testcard")
    segments, onsets_at = _bursts_for_e2e()
    ticker = Ticker(SMALL, AUDIO, Card(SMALL, BackendOptions()).draw)
    with open(tmp / "video.yuv", "wb") as video, open(tmp / "audio.s16", "wb") as audio:
        for tick in [t for s in segments for t in ticker.feed(s)] + list(ticker.finish()):
            video.write(np.asarray(tick.frame).tobytes())
            audio.write(tick.audio.tobytes())
    return tmp, onsets_at


@pytest.mark.parametrize("container", ["mp4", "flv"])
def test_sync_survives_encoding(encoded: tuple[Path, list[int]], container: str) -> None:
    tmp, onsets_at = encoded
    out = tmp / f"card.{container}"
    argv = [
        "ffmpeg", "-y", "-v", "error", "-nostdin",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{SMALL.width}x{SMALL.height}", "-r", str(FPS),
        "-i", str(tmp / "video.yuv"),
        "-f", "s16le", "-ar", str(RATE), "-ac", "2", "-i", str(tmp / "audio.s16"),
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-c:a", "aac", "-b:a", "128k", str(out),
    ]  # fmt: skip
    subprocess.run(argv, check=True)
    report = measure(out)

    detail = f"{container}: audio starts {report.start_offset_ms:+.1f} ms from video; offsets {report.offsets_ms}"
    assert len(report.onsets) == len(onsets_at), detail
    assert report.unmatched_onsets == report.unmatched_flashes == 0, detail
    assert report.max_abs_offset_ms <= 25.0, detail
    # Beyond the bound: each offset is what rounding to the nearest frame makes it, so a flash
    # one frame early or late fails even where it would stay within 25 ms.
    ideal = [1000.0 * (s / RATE - nearest_frame(s, FPS, RATE) / FPS) for s in onsets_at]
    assert np.allclose(report.offsets_ms, ideal, atol=3.0), detail
    assert abs(report.audio_duration - report.video_duration) < 0.1, detail
