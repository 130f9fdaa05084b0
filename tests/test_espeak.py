"""The espeak backend against the real libespeak-ng from the espeakng-loader wheel."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from linly_push.backends import registry
from linly_push.backends.tts.espeak import EspeakTTS
from linly_push.errors import UsageError
from linly_push.media import Mark, Speech


def make(**options) -> EspeakTTS:
    return EspeakTTS(registry.options(EspeakTTS, options))


@pytest.fixture(scope="module")
def tts() -> EspeakTTS:
    return make()


def loudness(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


def check_marks(marks: list[Mark], speech: Speech) -> None:
    assert marks
    for m in marks:
        assert 0 <= m.start < m.end <= len(speech.samples), m
        assert type(m.start) is int and type(m.end) is int
    for a, b in zip(marks, marks[1:]):
        assert a.end <= b.start, (a, b)


def spoken(speech: Speech) -> list[str]:
    return [m.label for m in speech.phonemes if not m.label.startswith("_")]


def test_registered_and_ready():
    assert registry.get("tts", "espeak") is EspeakTTS
    assert EspeakTTS.missing() is None


def test_english_audio_and_marks(tts: EspeakTTS):
    speech = tts.synthesize("Hello world, this is a test.", "en")
    assert speech.samples.dtype == np.float32 and speech.samples.ndim == 1
    assert speech.sample_rate == 22050 and speech.alphabet == "espeak"
    assert 1.0 < speech.duration < 2.5
    assert 0.05 < loudness(speech.samples) and np.abs(speech.samples).max() <= 1.0
    check_marks(speech.phonemes, speech)
    # One run: each phoneme ends where the next starts, the last at the end of the audio.
    assert all(a.end == b.start for a, b in zip(speech.phonemes, speech.phonemes[1:]))
    assert speech.phonemes[-1].end == len(speech.samples)
    assert spoken(speech)[:4] == ["h", "@", "l", "'oU"]
    check_marks(speech.words, speech)
    assert [w.label for w in speech.words] == ["Hello", "world", "this", "is", "a", "test"]


def test_marks_line_up_with_the_sound(tts: EspeakTTS):
    speech = tts.synthesize("Hello world, this is a test.", "en")
    comma = next(m for m in speech.phonemes if m.label == "_:")  # the pause at the comma
    assert comma.end - comma.start > 0.1 * speech.sample_rate
    assert loudness(speech.samples[comma.start : comma.end]) < 0.1 * loudness(speech.samples)
    for w in speech.words:
        assert loudness(speech.samples[w.start : w.end]) > 0.3 * loudness(speech.samples), w


def test_mandarin_is_spoken_with_tones_not_digits(tts: EspeakTTS):
    speech = tts.synthesize("你好", "zh")
    assert spoken(speech) == ["n", "i", "X", "'Au"]  # ni hao; 1.51 would add the tone digits' names
    assert [w.label for w in speech.words] == ["你好"]


def test_chinese_sentence(tts: EspeakTTS):
    speech = tts.synthesize("今天天气很好，我们去公园散步吧。", "zh")
    assert 2.0 < speech.duration < 6.0 and loudness(speech.samples) > 0.05
    check_marks(speech.phonemes, speech)
    check_marks(speech.words, speech)
    assert "".join(w.label for w in speech.words) == "今天天气很好我们去公园散步吧"


def test_mixed_chinese_and_english(tts: EspeakTTS):
    speech = tts.synthesize("我喜欢Python编程，Python 3.12 很好用。", "zh")
    check_marks(speech.phonemes, speech)
    check_marks(speech.words, speech)
    labels = [w.label for w in speech.words]
    assert labels.count("Python") == 2 and "3.12" in labels
    assert labels[0] == "我" and labels[-1] in ("用", "很好用")
    three = next(w for w in speech.words if w.label == "3.12")  # read in English: three point one two
    assert three.end - three.start > 0.4 * speech.sample_rate


def test_explicit_voice_and_language_codes():
    speech = make(voice="en-gb").synthesize("Hello world.", "zh")
    assert [w.label for w in speech.words] == ["Hello", "world"]
    assert spoken(make(voice="CMN").synthesize("你好", "en")) == ["n", "i", "X", "'Au"]
    # cmn itself switches to English for Latin words, marking the switch with "(en)" events.
    mixed = make(voice="cmn").synthesize("我喜欢Python。", "zh")
    assert not [m for m in mixed.phonemes if m.label.startswith("(")]
    assert "Python" in [w.label for w in mixed.words]


def test_rate_changes_duration():
    text = "The quick brown fox jumps over the lazy dog."
    slow = make(rate=120).synthesize(text, "en").duration
    fast = make(rate=360).synthesize(text, "en").duration
    assert fast < 0.6 * slow


def test_silence_at_the_ends_is_trimmed(tts: EspeakTTS):
    # Brackets make espeak pause ~0.1 s before and ~0.3 s after.
    speech = tts.synthesize("(Hello.)", "en")
    loud = np.flatnonzero(np.abs(speech.samples) > 1e-3)
    assert loud[0] <= 0.05 * speech.sample_rate
    assert len(speech.samples) - loud[-1] <= 0.051 * speech.sample_rate
    check_marks(speech.phonemes, speech)
    assert [w.label for w in speech.words] == ["Hello"]


def test_unknown_voice_is_a_usage_error():
    with pytest.raises(UsageError, match="did you mean en-us"):
        make(voice="en-uss")


@pytest.mark.parametrize("options", [{"voce": "en-us"}, {"rate": 10}, {"pitch": 101}])
def test_bad_options_are_usage_errors(options: dict):
    with pytest.raises(UsageError, match="espeak"):
        registry.options(EspeakTTS, options)


def test_calls_from_several_threads(tts: EspeakTTS):
    texts = ["One two three.", "你好世界。", "Four five six.", "今天很好。"] * 3
    alone = [[w.label for w in tts.synthesize(t, "en").words] for t in texts]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda t: [w.label for w in tts.synthesize(t, "en").words], texts))
    assert together == alone
