"""Visemes: phoneme names in both alphabets, the mark under a frame, and the loudness fallback."""

from __future__ import annotations

import numpy as np
import pytest

from linly_push.timeline import FrameContext, Ticker, Timeline, frame_window
from linly_push.media import Alphabet, AudioFormat, Mark, Segment, VideoFormat, to_int16
from linly_push.backends.avatars.visemes import Loudness, Viseme, level_viseme, viseme_at, viseme_for, viseme_in_window

V = Viseme
RATE, FPS = 44100, 25
AUDIO = AudioFormat(RATE, 2)
VIDEO = VideoFormat(320, 180, FPS)

# Names as espeak-ng's phoneme events give them (en-us and cmn), stress marks included.
ESPEAK = {
    "p": V.MBP, "b": V.MBP, "m": V.MBP, "f": V.FV, "v": V.FV, "T": V.TH, "D": V.TH,
    "l": V.L, "t": V.L, "d": V.L, "n": V.L, "s": V.SZ, "z": V.SZ, "S": V.CH, "Z": V.CH,
    "tS": V.CH, "dZ": V.CH, "r": V.CH, "w": V.U, "j": V.I, "k": V.I, "g": V.I, "N": V.I, "h": V.E,
    "a": V.AA, "'a": V.AA, "'V": V.AA, "'aI": V.AA, "'aU": V.AA, "A:": V.AA,
    "@": V.E, "@2": V.E, "3": V.E, "'3:": V.E, "'E": V.E, "'eI": V.E,
    "i": V.I, "i:": V.I, "'I": V.I, ",I": V.I,
    "'0": V.O, "O:": V.O, "'oU": V.O, "'OI": V.O, "u:": V.U, "U": V.U,
    # Mandarin: aspirates, retroflexes (pushed forward), alveolo-palatals (spread), tones.
    "th": V.L, "tsh": V.SZ, "ts.": V.CH, "ts.h": V.CH, "s.": V.CH, "tS;": V.SZ, "tS;h": V.SZ,
    "S;": V.SZ, "X": V.I, "'Au": V.AA, "'iA": V.AA, "'iE": V.E, "'o-": V.E, "'y": V.U,
    "'i.": V.I, "@5": V.E, "i214": V.I, "ong35": V.O,
}  # fmt: skip

IPA = {
    "p": V.MBP, "m": V.MBP, "f": V.FV, "θ": V.TH, "ð": V.TH, "l": V.L, "ɾ": V.L, "s": V.SZ,
    "ʃ": V.CH, "t͡ʃ": V.CH, "dʒ": V.CH, "ɹ": V.CH, "ʂ": V.CH, "tɕʰ": V.SZ, "ɕ": V.SZ, "ŋ": V.I,
    "ɡ": V.I, "w": V.U, "ˈaɪ": V.AA, "ɑː": V.AA, "æ": V.AA, "ʌ": V.AA, "ə": V.E, "ɚ": V.E,
    "ɛ": V.E, "iː": V.I, "ɪ": V.I, "oʊ": V.O, "ɔ": V.O, "uː": V.U, "ʊ": V.U, "y": V.U,
    "a˥˩": V.AA, "tʰ": V.L,
}  # fmt: skip


@pytest.mark.parametrize(("name", "viseme"), ESPEAK.items())
def test_espeak_names(name: str, viseme: Viseme) -> None:
    assert viseme_for(name, "espeak") is viseme


@pytest.mark.parametrize(("name", "viseme"), IPA.items())
def test_ipa_names(name: str, viseme: Viseme) -> None:
    assert viseme_for(name, "ipa") is viseme


@pytest.mark.parametrize("name", ["_", "_:", "_!", "_|", "_^_", "||", "", " ", ",", ".", "ˈ", "'"])
def test_pauses_and_bare_marks_rest(name: str) -> None:
    assert viseme_for(name, "espeak") is V.REST
    assert viseme_for(name, "ipa") is V.REST


@pytest.mark.parametrize("name", ["Ω", "(en)", "Qx9", "7", "\x00", "ʘ", "a" * 50, "🙂", "ǃ", "ts.h.h"])
def test_unknown_names_never_crash(name: str) -> None:
    for alphabet in ("espeak", "ipa", "other"):
        assert isinstance(viseme_for(name, alphabet), Viseme)  # type: ignore[arg-type]


def test_unknown_letters_still_open_the_mouth() -> None:
    # A sound whose name is unknown is still a sound: some opening, not silence.
    assert viseme_for("Ω", "ipa") is not V.REST
    assert viseme_for("(en)", "espeak") is V.REST


def test_most_overlapping_mark_wins() -> None:
    marks: list[tuple[Mark, Alphabet]] = [(Mark("m", 0, 500), "espeak"), (Mark("a", 500, 2000), "espeak")]
    assert viseme_in_window(marks, (400, 1000)) is V.AA
    assert viseme_in_window(marks, (0, 600)) is V.MBP
    assert viseme_in_window(marks, (300, 700)) is V.AA  # a tie goes to the later mark
    assert viseme_in_window(marks, (2000, 3000)) is None


def _timeline(*segments: Segment) -> Timeline:
    timeline = Timeline(AUDIO)
    for segment in segments:
        timeline.append(segment)
    return timeline


def _tone(seconds: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return to_int16(np.repeat((amplitude * np.sin(2 * np.pi * 220 * t))[:, None], 2, axis=1))


def test_viseme_at_uses_the_frame_window() -> None:
    lo, hi = frame_window(10, FPS, RATE)
    cut = lo + (hi - lo) // 3  # "b" covers a third of frame 10's window, "a" two thirds
    marks = [Mark("b", 0, cut), Mark("a", cut, RATE)]
    timeline = _timeline(Segment(_tone(1.0, 0.3), "speech", phonemes=marks))
    assert viseme_at(FrameContext(10, VIDEO, timeline)) is V.AA
    assert viseme_at(FrameContext(5, VIDEO, timeline)) is V.MBP


def test_marks_win_over_loudness_and_gaps_rest() -> None:
    # Loud audio, but the marks leave a gap: the mouth follows the marks, closed in the gap.
    marks = [Mark("a", 0, RATE // 4), Mark("o", RATE // 2, RATE)]
    timeline = _timeline(Segment(_tone(1.0, 0.5), "speech", phonemes=marks))
    assert viseme_at(FrameContext(3, VIDEO, timeline), Loudness(FPS)) is V.AA
    assert viseme_at(FrameContext(9, VIDEO, timeline), Loudness(FPS)) is V.REST
    assert viseme_at(FrameContext(20, VIDEO, timeline), Loudness(FPS)) is V.O


def _by_loudness(*segments: Segment) -> list[Viseme]:
    loudness, out = Loudness(FPS), []
    ticker = Ticker(VIDEO, AUDIO, lambda ctx: out.append(viseme_at(ctx, loudness)))
    for segment in segments:
        list(ticker.feed(segment))
    return out


def test_loudness_opens_for_loud_audio_and_closes_for_silence() -> None:
    visemes = _by_loudness(Segment(_tone(1.0, 0.4), "audio"), Segment(_tone(1.0, 0.0), "audio"))
    loud, quiet = visemes[:FPS], visemes[FPS:]
    assert all(v is V.AA for v in loud[1:])  # steady and wide open: no flicker
    assert all(v is V.REST for v in quiet[3:])  # closes within a few frames
    assert all(v is V.REST for v in _by_loudness(Segment(_tone(1.0, 0.0), "pause")))


def test_loudness_follows_speech_level() -> None:
    # Syllables at 5 Hz: the mouth opens on each and closes between them.
    t = np.arange(2 * RATE) / RATE
    envelope = (np.sin(2 * np.pi * 5 * t) > 0.3).astype(float)
    audio = to_int16(np.repeat((0.3 * envelope * np.sin(2 * np.pi * 220 * t))[:, None], 2, axis=1))
    visemes = _by_loudness(Segment(audio, "audio"))
    opened = sum(v is not V.REST for v in visemes)
    assert 0.2 * len(visemes) < opened < 0.8 * len(visemes)
    changes = sum(a is not b for a, b in zip(visemes[:-1], visemes[1:], strict=True))
    assert 10 <= changes <= 40  # about 10 syllables, each opening and closing a step or two


def test_loudness_does_not_flicker_between_levels() -> None:
    # Frame windows alternately 5.5 dB apart, across the wide/mid step: the mouth stays put.
    half = RATE // FPS // 2
    n = np.arange(2 * RATE)
    gain = np.where(((n + half) // (2 * half)) % 2 == 0, 1.0, 10 ** (-5.5 / 20))
    tone = 0.3 * gain * np.sin(2 * np.pi * 220 * n / RATE)
    visemes = _by_loudness(Segment(to_int16(np.repeat(tone[:, None], 2, axis=1)), "audio"))
    assert set(visemes[2:]) == {V.AA}


def test_level_curve_is_monotonic() -> None:
    order = [V.REST, V.I, V.E, V.AA]
    levels = [order.index(level_viseme(db)) for db in range(-90, 1)]
    assert levels == sorted(levels)
    assert levels[0] == 0 and levels[-1] == 3
