"""The drawer keeps a live stream fed: idle frames while TTS is slow, repeated frames when late."""

import itertools
import threading
import time

import numpy as np

from linly_push.backends.base import Avatar, BackendOptions
from linly_push.clock import FrameContext, Pacer, frame_start
from linly_push.media import AudioFormat, Segment, VideoFormat
from linly_push.stages import END, Ahead, Counters, Drawer

VIDEO, AUDIO = VideoFormat(16, 16, 25), AudioFormat(8000, 1)


class Numbered(Avatar):
    """Draws each frame filled with its own index, and counts the calls."""

    name = "numbered"

    def __init__(self) -> None:
        super().__init__(VIDEO, BackendOptions())
        self.calls = 0

    def draw(self, ctx: FrameContext) -> np.ndarray:
        self.calls += 1
        return np.full(VIDEO.frame_bytes, ctx.index % 256, np.uint8)


def test_idles_in_silence_while_tts_has_nothing_then_speaks():
    release = threading.Event()
    speech = Segment(np.full((4000, 1), 1000, np.int16), "speech", text="hi", sentence=1)

    def slow_tts():
        release.wait(5)
        yield speech

    spoken = Ahead(slow_tts, 2, "tts")
    counters = Counters()
    drawer = Drawer(VIDEO, AUDIO, Numbered(), spoken, [], Pacer(VIDEO.fps), counters, low_water=0.2)
    ticks = drawer.ticks()
    idle = []
    for _ in range(20):  # the consumer keeps taking frames: each must come at once, silent
        tick = next(ticks)
        counters.sent = tick.index + 1
        idle.append(tick)
    assert [t.index for t in idle] == list(range(20))
    assert all(not t.audio.any() for t in idle)
    assert sum(len(t.audio) for t in idle) == frame_start(20, VIDEO.fps, AUDIO.sample_rate)
    release.set()
    rest = list(ticks)
    assert rest[0].index == 20  # the clock just goes on
    spoken_ticks = [t for t in rest if t.audio.any()]
    assert sum(int((t.audio != 0).sum()) for t in spoken_ticks) == 4000  # every sample of speech, once
    spoken.stop()


class Late(Pacer):
    def __init__(self, late_from: int) -> None:
        super().__init__(VIDEO.fps)
        self.late_from = late_from

    def lateness(self, n: int) -> float:
        return 1.0 if n >= self.late_from else 0.0


def test_shows_the_last_frame_again_instead_of_drawing_late_ones():
    avatar, counters = Numbered(), Counters()
    spoken = Ahead(lambda: [Segment(np.zeros((8000, 1), np.int16), "pause")], 2, "tts")
    while spoken.depth() < 2:  # the pause and the end are ready: no idle filler needed
        time.sleep(0.01)
    drawer = Drawer(VIDEO, AUDIO, avatar, spoken, [], Late(late_from=10), counters)
    ticks = list(drawer.ticks())
    assert len(ticks) == 25
    assert avatar.calls == 10 and counters.repeated == 15
    assert all(int(t.frame[0]) == 9 for t in ticks[10:])  # frame 9 shown again
    assert spoken.get() is END


def test_a_pause_after_idling_is_not_waited_twice():
    release = threading.Event()
    pause = Segment(np.zeros((2400, 1), np.int16), "pause")  # 0.3 s at 8 kHz
    speech = Segment(np.full((800, 1), 1000, np.int16), "speech", text="hi", sentence=1)

    def tts():
        release.wait(5)
        yield pause
        yield speech

    spoken = Ahead(tts, 2, "tts")
    counters = Counters()
    drawer = Drawer(VIDEO, AUDIO, Numbered(), spoken, [], Pacer(VIDEO.fps), counters, low_water=0.2)
    stream = drawer.ticks()
    ticks = list(itertools.islice(stream, 5))  # 0.2 s of idle filler while TTS is silent
    for t in ticks:
        counters.sent = t.index + 1
    release.set()
    ticks += stream
    first_sound = int(np.flatnonzero(np.concatenate([t.audio[:, 0] for t in ticks]))[0])
    # Idle and pause overlap: speech starts once the longer of the two has passed, not after both.
    assert 2400 <= first_sound < 5 * 320 + 2400
    spoken.stop()
