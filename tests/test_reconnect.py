"""The pure parts of getting back on air: backoff, and where to resume."""

import numpy as np

from linly_push.timeline import Placed
from linly_push.media import Segment
from linly_push.presets import ReconnectSettings
from linly_push.reconnect import Backoff, last_pause, resume_point

RATE = 1000


def backoff(**kw) -> Backoff:
    return Backoff(ReconnectSettings(**{"first_delay": 1.0, "max_delay": 8.0, "give_up_after": 60.0, "healthy_after": 10.0, **kw}))


def test_delays_double_up_to_the_cap():
    b = backoff()
    delays = [b.failed(now=t, on_air=0.0, connected=False) for t in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_healthy_run_resets_the_backoff_and_the_give_up_clock():
    b = backoff()
    for t in range(4):
        b.failed(now=t, on_air=0.0, connected=False)
    assert b.failed(now=100, on_air=30.0, connected=True) == 1.0
    assert b.failed(now=101, on_air=0.0, connected=False) == 2.0


def test_gives_up_after_the_limit_and_never_sleeps_past_it():
    b = backoff(give_up_after=10.0, first_delay=4.0, max_delay=30.0)
    assert b.failed(now=0.0, on_air=0.0, connected=False) == 4.0
    assert b.failed(now=4.0, on_air=0.0, connected=False) == 6.0  # 8 s would pass the deadline
    assert b.failed(now=10.0, on_air=0.0, connected=False) is None


def test_give_up_after_zero_means_no_retry():
    assert backoff(give_up_after=0.0).failed(now=5.0, on_air=0.0, connected=False) is None


def test_a_server_that_never_answered_is_given_up_on_sooner():
    b = backoff(first_give_up_after=5.0, give_up_after=60.0, first_delay=1.0)
    assert b.give_up_after == 5.0
    assert b.failed(now=0.0, on_air=0.0, connected=False) == 1.0
    assert b.failed(now=4.0, on_air=0.0, connected=False) == 1.0  # one last try at the deadline
    assert b.failed(now=5.0, on_air=0.0, connected=False) is None


def test_once_on_air_a_drop_is_retried_for_give_up_after():
    b = backoff(first_give_up_after=5.0, give_up_after=60.0)
    assert b.failed(now=0.0, on_air=0.0, connected=False) == 1.0  # refused at first, then on air
    assert b.failed(now=100.0, on_air=30.0, connected=True) == 1.0  # dropped after 30 s on air
    assert b.give_up_after == 60.0
    assert b.failed(now=150.0, on_air=0.0, connected=False) is not None  # past 5 s: still trying
    assert b.failed(now=160.0, on_air=0.0, connected=False) is None


def test_the_first_limit_is_never_longer_than_give_up_after():
    assert backoff(first_give_up_after=30.0, give_up_after=3.0).give_up_after == 3.0


def seg(kind: str, n: int, value: int = 1000, source: str | None = None, sentence: int | None = None) -> Segment:
    return Segment(np.full((n, 1), value, np.int16), kind, sentence=sentence, source=source)


def placed(*segments: Segment) -> list[Placed]:
    out, at = [], 0
    for s in segments:
        out.append(Placed(at, s, np.empty(0, np.float32)))
        at += len(s)
    return out


def test_resume_at_the_start_of_the_cut_sentence_with_everything_after():
    s1, p1, s2, p2, s3 = (seg("speech", 500, sentence=1), seg("pause", 100, 0), seg("speech", 700, sentence=2),
                          seg("pause", 100, 0), seg("speech", 400, sentence=3))
    fed = placed(s1, p1, s2, p2, s3)
    assert resume_point(fed, cut=900, rate=RATE) == [s2, p2, s3]  # cut inside sentence 2
    assert resume_point(fed, cut=550, rate=RATE) == [p1, s2, p2, s3]  # cut in the pause before it
    assert resume_point(fed, cut=0, rate=RATE) == [s1, p1, s2, p2, s3]
    assert resume_point(fed, cut=5000, rate=RATE) == []


def test_idle_filler_is_not_sent_again():
    s1, idle, s2 = seg("speech", 500, sentence=1), seg("idle", 40, 0), seg("speech", 500, sentence=2)
    assert resume_point(placed(s1, idle, idle, s2), cut=510, rate=RATE) == [s2]


def test_a_recording_resumes_at_its_last_pause_before_the_cut():
    loud, quiet = np.full(300, 5000, np.int16), np.zeros(200, np.int16)  # 200 samples = 0.2 s at RATE
    audio = np.concatenate([loud, quiet, loud, quiet[:50], loud])  # a pause, then a gap too short
    blocks = [Segment(audio[i : i + 250, None], "audio", source="talk.wav") for i in range(0, len(audio), 250)]
    [head, *rest] = resume_point(placed(*blocks), cut=1100, rate=RATE)
    assert np.array_equal(head.audio[:, 0], audio[500:])  # from the end of the 0.2 s pause
    assert rest == []


def test_last_pause():
    level = np.array([1, 1, 0, 0, 0, 1, 0, 1, 1], np.float32)
    assert last_pause(level, before=9, rate=20) == 5  # pauses of >= 3 samples (0.15 s at 20 Hz)
    assert last_pause(level, before=4, rate=20) is None
    assert last_pause(np.zeros(10, np.float32), before=10, rate=20) == 10
