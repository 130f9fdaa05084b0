"""The on-air clock: idle frames while TTS is slow, repeated frames when drawing is late, and
splices — everything not yet handed out dropped, new material from the next frame on, the
timestamps continuous. Real threads (TTS and the drawer), real time where live."""

from __future__ import annotations

import threading
import time

import numpy as np

from linly_push.backends.base import Avatar, BackendOptions
from linly_push.clock import Clock
from linly_push.media import AudioFormat, Kind, Segment, VideoFormat
from linly_push.producers import Ahead, Drawer
from linly_push.timeline import FrameContext, frame_start

VIDEO, AUDIO = VideoFormat(16, 16, 25), AudioFormat(8000, 1)
PER_FRAME = AUDIO.sample_rate // VIDEO.fps  # 320 samples


class Numbered(Avatar):
    """Draws each frame filled with its index, or with 200 + the sentence on screen; counts calls."""

    name = "numbered"

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(VIDEO, BackendOptions())
        self.calls: list[int] = []
        self.delay = delay

    def draw(self, ctx: FrameContext) -> np.ndarray:
        self.calls.append(ctx.index)
        if self.delay:
            time.sleep(self.delay)
        placed = ctx.placed
        value = 200 + placed.segment.sentence if placed is not None and placed.segment.sentence else ctx.index % 200
        return np.full(VIDEO.frame_bytes, value, np.uint8)


def speech(value: int, seconds: float, sentence: int) -> Segment:
    return Segment(np.full((round(seconds * AUDIO.sample_rate), 1), value, np.int16), Kind.SPEECH,
                   text=f"sentence {sentence}", sentence=sentence)


def clock_for(segments, avatar: Avatar, *, live: bool, ahead: float = 1.0, low_water: float = 0.2):
    source = Ahead(lambda: segments() if callable(segments) else segments, 2, "tts")
    drawer = Drawer(VIDEO, {"a": avatar}, "a")
    return Clock(VIDEO, AUDIO, source, drawer, live=live, ahead=ahead, low_water=low_water), source, drawer


def test_idles_in_silence_while_tts_has_nothing_then_speaks():
    release = threading.Event()

    def slow_tts():
        release.wait(10)
        yield speech(1000, 0.5, 1)

    clock, source, drawer = clock_for(slow_tts, Numbered(), live=True)
    ticks = clock.ticks()
    idle = [next(ticks) for _ in range(10)]  # in real time: each comes when due, silent
    assert [t.index for t in idle] == list(range(10))
    assert all(not t.audio.any() for t in idle)
    release.set()
    rest = list(ticks)
    assert rest[0].index == 10  # the clock just goes on
    said = np.concatenate([t.audio[:, 0] for t in rest])
    assert int((said == 1000).sum()) == 4000  # every sample of speech, once
    assert sum(len(t.audio) for t in idle + rest) == frame_start(idle[-1].index + len(rest) + 1, VIDEO.fps, AUDIO.sample_rate)
    source.stop()
    drawer.close()


def test_new_speech_cuts_the_idle_filler_placed_ahead_at_the_next_frame():
    """What is on air answers at once: speech that arrives while idling starts at the next frame
    boundary, not after the idle filler already placed ahead of it (``low_water``: 5 frames)."""
    release = threading.Event()

    def slow_tts():
        release.wait(10)
        yield speech(1000, 0.5, 1)

    clock, source, drawer = clock_for(slow_tts, Numbered(), live=True, low_water=0.2)
    ticks = clock.ticks()
    idle = [next(ticks) for _ in range(10)]
    release.set()
    deadline = time.monotonic() + 10
    while source._queue.qsize() == 0:  # the speech is ready for the clock to take
        assert time.monotonic() < deadline
        time.sleep(0.001)
    rest = list(ticks)
    first = next(t.index for t in rest if (t.audio == 1000).any())
    assert first <= rest[0].index + 1, (rest[0].index, first)  # the frame about to go may stay
    assert clock.placed_frames - idle[-1].index < 40  # and the filler it cut is not played later
    said = np.concatenate([t.audio[:, 0] for t in rest])
    assert int((said == 1000).sum()) == 4000
    assert sum(len(t.audio) for t in idle + rest) == frame_start(rest[-1].index + 1, VIDEO.fps, AUDIO.sample_rate)
    assert [int(t.frame[0]) for t in rest if (t.audio == 1000).any()][1:] == [201] * 12  # the speech's frames drawn as speech
    source.stop()
    drawer.close()


def test_shows_the_last_frame_again_instead_of_drawing_late_ones():
    avatar = Numbered(delay=4 / VIDEO.fps)  # four frames' time to draw one
    clock, source, drawer = clock_for([Segment(np.zeros((8000, 1), np.int16), Kind.PAUSE)], avatar, live=True)
    ticks = list(clock.ticks())
    assert [t.index for t in ticks] == list(range(25))
    assert clock.repeated > 0 and len(avatar.calls) < 25  # late frames were not drawn at all
    shown = [int(t.frame[0]) for t in ticks]
    assert sum(a == b for a, b in zip(shown, shown[1:])) == clock.repeated  # each repeat is the frame before
    assert sum(len(t.audio) for t in ticks) == 8000  # audio never cut or stretched
    source.stop()
    drawer.close()


def test_a_pause_after_idling_is_not_waited_twice():
    release = threading.Event()

    def tts():
        release.wait(10)
        yield Segment(np.zeros((2400, 1), np.int16), Kind.PAUSE)  # 0.3 s
        yield speech(1000, 0.1, 1)

    clock, source, drawer = clock_for(tts, Numbered(), live=True, low_water=0.2)
    ticks = clock.ticks()
    early = [next(ticks) for _ in range(5)]  # 0.2 s of idle filler while TTS is silent
    release.set()
    everything = early + list(ticks)
    first_sound = int(np.flatnonzero(np.concatenate([t.audio[:, 0] for t in everything]))[0])
    # Idle and pause overlap: speech starts once the longer of the two has passed, not after both.
    assert 2400 <= first_sound < 2400 + 10 * PER_FRAME
    source.stop()
    drawer.close()


def spliced(live: bool) -> tuple[list, int]:
    """Ten ticks of sentence 1 (two seconds of it placed), then a splice to sentence 2."""
    clock, source, drawer = clock_for([speech(1000, 2.0, 1)], Numbered(), live=live, ahead=1.0)
    ticks = clock.ticks()
    before = [next(ticks) for _ in range(10)]
    assert clock.placed_frames > 10  # more of sentence 1 was placed (and drawn) than handed out
    clock.splice([speech(2000, 0.4, 2)])
    after = list(ticks)
    source.stop()
    drawer.close()
    return before + after, len(before)


def test_a_splice_plays_the_new_material_from_the_next_frame_with_timestamps_continuous():
    for live in (False, True):
        ticks, cut = spliced(live)
        assert [t.index for t in ticks] == list(range(len(ticks)))  # frame numbers go on
        audio = np.concatenate([t.audio[:, 0] for t in ticks])
        assert len(audio) == frame_start(len(ticks), VIDEO.fps, AUDIO.sample_rate)  # samples go on, exactly
        at = frame_start(cut, VIDEO.fps, AUDIO.sample_rate)
        assert (audio[:at] == 1000).all()
        assert audio[at] == 2000 and int(ticks[cut].frame[0]) == 202  # the next frame shows the new material
        assert not (audio[at:] == 1000).any()  # nothing flushed went out
        assert int((audio == 2000).sum()) == 3200  # all of the new material, once
        assert [t.starts[0].segment.sentence for t in ticks if t.starts] == [1, 2]


def test_a_restart_resends_the_cut_sentence_from_frame_zero():
    clock, source, drawer = clock_for([speech(1000, 1.0, 1), speech(2000, 1.0, 2)], Numbered(), live=False)
    ticks = clock.ticks()
    sent = [next(ticks) for _ in range(40)]  # into sentence 2 (it starts at frame 25)
    assert sent[25].starts[0].segment.sentence == 2
    replay = clock.restart(cut=frame_start(30, VIDEO.fps, AUDIO.sample_rate))  # the server had up to frame 30
    assert [s.sentence for s in replay] == [2]
    again = list(clock.ticks())
    assert again[0].index == 0 and again[0].starts[0].segment.sentence == 2
    assert int((np.concatenate([t.audio[:, 0] for t in again]) == 2000).sum()) == 8000
    source.stop()
    drawer.close()


def test_the_buffer_is_what_is_drawn_ahead_of_air_and_no_more():
    """Live, a long sentence is placed and drawn ``ahead`` (1 s) past what is on air: the buffer
    says how much of it is ready to go, and never more than was asked for."""
    clock, source, drawer = clock_for([speech(1000, 4.0, 1)], Numbered(), live=True, ahead=1.0)
    ticks = clock.ticks()
    buffers = []
    for _ in range(40):  # 1.6 s on air, in real time
        next(ticks)
        buffers.append(clock.buffered)
    assert max(buffers[10:]) >= 0.5, buffers  # the drawer keeps up: most of the second is ready
    assert max(buffers) <= 1.0, buffers
    source.stop()
    drawer.close()
