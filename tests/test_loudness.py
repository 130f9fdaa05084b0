"""Loudness: the meter against EBU Tech 3341's test signals and ffmpeg's ebur128, the limiter,
the levelling of speech and recordings, and rendered files measured by ffmpeg."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli_run import linly, text
from linly_push import audio as audio_io
from linly_push import loudness
from linly_push.backends.tts.espeak import EspeakTTS
from linly_push.cli.inputs import gather
from linly_push.program import measured as measure_program
from linly_push.loudness import Leveller, Measurement, Target, gain_db, limit, measure, measure_blocks
from linly_push.media import AudioFormat, Speech
from linly_push.presets import AudioSettings

TARGET = Target(-16.0, -1.0)
STEREO = AudioFormat(44100, 2)
SMALL = ["--avatar", "testcard", "--set", "video.width=320", "--set", "video.height=180", "--set", "video.fps=10"]


def ebur128(path: Path) -> tuple[float, float]:
    """ffmpeg's integrated loudness (LUFS) and true peak (dBTP) of a file's audio: the reference."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed (apt install ffmpeg)")
    r = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a",
         "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    summary = r.stderr[r.stderr.rindex("Summary:"):]
    lufs = re.search(r"I:\s+(\S+) LUFS", summary)
    peak = re.search(r"Peak:\s+(\S+) dB", summary)
    assert lufs and peak, summary
    return float(lufs[1]), float(peak[1])


def sine(db: float, seconds: float, rate: int = 48000, freq: float = 997.0, channels: int = 2) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    x = (10 ** (db / 20) * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1)


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    """A few seconds of espeak, mono float at its own rate."""
    s = EspeakTTS(EspeakTTS.Options()).synthesize(
        "Good evening. Tonight we look at the weather, the markets, and a very clever dog.", "en")
    return s.samples, s.sample_rate


def stereo(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[:, None], 2, axis=1)


# --- the meter ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("parts", "expected"), [
    ([(-23, 20)], -23.0),  # EBU Tech 3341 case 1
    ([(-33, 20)], -33.0),  # case 2
    ([(-36, 10), (-23, 60), (-36, 10)], -23.0),  # case 3: the relative gate drops the quiet parts
    ([(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)], -23.0),  # case 4: both gates
    ([(-26, 20), (-20, 20.1), (-26, 20)], -23.0),  # case 5
])
def test_meter_meets_ebu_tech_3341(parts, expected):
    x = np.concatenate([sine(db, seconds) for db, seconds in parts])
    assert measure(x, 48000).lufs == pytest.approx(expected, abs=0.1)


def test_true_peak_finds_the_peak_between_samples():
    # EBU Tech 3341 case 15: a quarter-rate sine at -6 dBFS sampled 45 degrees off its peaks, so
    # every sample is 3 dB under the true peak.
    n = np.arange(48000)
    x = (0.5 * np.sin(np.pi / 2 * n + np.pi / 4)).astype(np.float32)
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-9.03, abs=0.01)
    assert measure(x, 48000).true_peak == pytest.approx(-6.02, abs=0.2)


def test_mono_full_scale_sine_reads_minus_3_lufs():
    # BS.1770: a 0 dBFS 1 kHz sine in one channel measures -3.01 LKFS.
    assert measure(sine(0, 5, channels=1)[:, 0], 48000).lufs == pytest.approx(-3.01, abs=0.05)


def test_meter_agrees_with_ffmpeg(tmp_path, speech):
    x, rate = speech
    rng = np.random.default_rng(1)
    # Noise smoothed a little: the two oversamplers differ near the Nyquist rate (white noise's
    # true peak reads 0.3 dB apart), and no real programme has much there.
    noise = np.apply_along_axis(np.convolve, 0, 0.025 * rng.standard_normal((5 * 44100, 2)), np.ones(4), "same")
    cases = {
        "speech": (x, rate),
        "speech-stereo": (np.stack([x, 0.3 * x], axis=1), rate),
        "noise-44k1": (noise.astype(np.float32), 44100),
        "sine-11k": (sine(-12, 3, rate=11025, freq=440), 11025),  # 100 ms is not a whole sample count
    }
    for name, (samples, sr) in cases.items():
        path = tmp_path / f"{name}.wav"
        sf.write(path, samples, sr, subtype="FLOAT")
        ours, (lufs, peak) = measure(samples, sr), ebur128(path)
        assert ours.lufs == pytest.approx(lufs, abs=0.1), name  # ffmpeg prints one decimal
        assert ours.true_peak == pytest.approx(peak, abs=0.2), name


def test_blocks_of_any_size_measure_as_one(speech):
    x, rate = speech
    rng = np.random.default_rng(2)
    whole = measure(stereo(x), rate)
    cuts = np.cumsum(rng.integers(1, 5000, 200))
    blocks = [b for b in np.split(stereo(x), cuts[cuts < len(x)]) if len(b)]
    assert len(blocks) > 20
    parts = measure_blocks(blocks, rate, 2)
    assert parts.lufs == pytest.approx(whole.lufs, abs=0.01)
    assert parts.true_peak == pytest.approx(whole.true_peak, abs=0.05)
    assert parts.seconds == pytest.approx(len(x) / rate)


def test_silence_and_short_clips():
    silent = measure(np.zeros((48000, 2), np.float32), 48000)
    assert silent.lufs == -math.inf and silent.true_peak == -math.inf and silent.silent
    hum = measure(sine(-75, 2), 48000)  # under the absolute gate
    assert hum.lufs == -math.inf and hum.silent
    short = measure(sine(-20, 0.3), 48000)
    assert not short.gated and not short.silent
    assert short.lufs == pytest.approx(-20.0, abs=0.1)  # measured as one block


# --- gain and limiter --------------------------------------------------------------------------

def test_target_from_settings():
    assert Target.from_settings(AudioSettings(loudness="off")) is None
    assert Target.from_settings(AudioSettings(loudness=-23, true_peak=-2)) == Target(-23.0, -2.0)
    assert Target.from_settings(AudioSettings()) == TARGET


def test_gain_db():
    assert gain_db(Measurement(-30.0, -15.0, 10), TARGET) == pytest.approx(14.0)
    assert gain_db(Measurement(-8.0, -0.5, 10), TARGET) == pytest.approx(-8.0)
    # Peaks 20 dB over the loudness would need 5 dB of limiting: fine. 30 dB would need 15: capped.
    assert gain_db(Measurement(-30.0, -10.0, 10), TARGET) == pytest.approx(14.0)
    assert gain_db(Measurement(-30.0, 0.0, 10), TARGET) == pytest.approx(loudness.MAX_LIMITING - 1)
    assert gain_db(Measurement(-math.inf, -math.inf, 10), TARGET) == 0.0
    assert gain_db(Measurement(-65.0, -40.0, 10), TARGET) == 0.0  # room tone is left alone


def clicks(rate: int = 44100) -> np.ndarray:
    """Quiet noise with a few loud clicks and a burst of a quarter-rate tone (peaks between samples)."""
    rng = np.random.default_rng(3)
    x = (0.02 * rng.standard_normal((3 * rate, 2))).astype(np.float32)
    for at in (rate // 2, rate, rate + 300):
        x[at:at + 5] = 0.99
    n = np.arange(rate // 4)
    x[2 * rate:2 * rate + len(n)] += (0.9 * np.sin(np.pi / 2 * n + np.pi / 4))[:, None].astype(np.float32)
    return x


def test_limiter_keeps_true_peak_under_ceiling():
    x = clicks()
    assert measure(x, 44100).true_peak > 0
    y = np.concatenate(list(limit([x], 44100, -3.0)))
    assert y.shape == x.shape
    assert measure(y, 44100).true_peak <= -3.0
    # Far from any peak nothing changes.
    quiet = slice(int(1.6 * 44100), int(1.9 * 44100))
    np.testing.assert_array_equal(y[quiet], x[quiet])


def test_limiter_gives_the_same_however_the_blocks_fall():
    x = clicks()
    whole = np.concatenate(list(limit([x], 44100, -3.0)))
    rng = np.random.default_rng(4)
    cuts = np.cumsum(rng.integers(1, 20000, 50))
    blocks = [b for b in np.split(x, cuts[cuts < len(x)]) if len(b)]
    parts = np.concatenate(list(limit(blocks, 44100, -3.0)))
    np.testing.assert_allclose(parts, whole, atol=1e-6)
    assert list(limit([], 44100, -3.0)) == []


# --- speech ------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [0.03, 1.0, 4.0])
def test_speech_is_levelled(speech, scale):
    x, rate = speech
    samples = stereo(np.clip(x * scale, -1, 1))  # 4x is clipped hot speech, like a loud TTS
    out = Leveller(TARGET)(samples, rate, "en")
    m = measure(out, rate)
    assert m.lufs == pytest.approx(TARGET.lufs, abs=0.5)
    assert m.true_peak <= TARGET.true_peak + 0.05
    assert out.shape == samples.shape


def test_short_sentence_takes_the_gain_of_the_voice_before(speech):
    x, rate = speech
    lev = Leveller(TARGET)
    first = measure(stereo(x), rate)
    lev(stereo(x), rate, "a")
    short = stereo(x[: int(0.3 * rate)] * 0.1)  # too short to gate, and 20 dB quieter
    m = measure(short, rate)
    assert not m.gated
    assert lev.gain(m, "a") == pytest.approx(gain_db(first, TARGET))  # as before: not pushed up 20 dB
    assert lev.gain(m, "b") == pytest.approx(gain_db(m, TARGET))  # no history for this voice


def test_speech_segment_levels_espeak(speech):
    x, rate = speech
    for scale in (0.05, 1.0):
        seg = audio_io.speech_segment(Speech(x * scale, rate), STEREO, "text", 1, Leveller(TARGET), "en")
        m = measure(seg.audio.astype(np.float32) / 32768, STEREO.sample_rate)
        assert m.lufs == pytest.approx(-16.0, abs=1.0) and m.true_peak <= -0.95
    plain = audio_io.speech_segment(Speech(x * 0.05, rate), STEREO, "text", 1)
    assert measure(plain.audio.astype(np.float32) / 32768, 44100).lufs < -35
    empty = audio_io.speech_segment(Speech(np.zeros(0, np.float32), rate), STEREO, "  ", 1, Leveller(TARGET), "en")
    assert len(empty) == 0


# --- recordings --------------------------------------------------------------------------------

def write_speech(path: Path, speech, lufs: float, channels: int = 1) -> None:
    """espeak speech at about ``lufs`` as it plays on a stereo stream; above -14 it is driven
    into soft clipping to get there, as a hot recording is."""
    x, rate = speech
    y = x * 10 ** ((lufs - measure(stereo(x), rate).lufs) / 20)
    if lufs > -14:
        for drive in np.geomspace(1, 100, 60):
            y = 0.98 * np.tanh(drive * x)
            if measure(stereo(y), rate).lufs >= lufs:
                break
    sf.write(path, y if channels == 1 else stereo(y), rate, subtype="PCM_16")


def test_a_file_is_measured_as_it_will_play(tmp_path, speech):
    write_speech(tmp_path / "mono.wav", speech, -30)
    info = audio_io.probe(tmp_path / "mono.wav")
    alone = measure(sf.read(tmp_path / "mono.wav", dtype="float32")[0], info.sample_rate)
    on_stereo = audio_io.measure_file(info, STEREO)
    assert on_stereo.lufs == pytest.approx(alone.lufs + 3.01, abs=0.05)  # both sides play it
    assert audio_io.measured(info, AudioSettings()).measured == on_stereo
    assert audio_io.measured(info, AudioSettings(loudness="off")).measured is None


def test_recordings_are_measured_before_air_only_when_levelling(tmp_path, speech):
    write_speech(tmp_path / "a.wav", speech, -30)
    program = gather(None, [tmp_path / "a.wav"], 160)
    assert program[0].info.measured is None
    (levelled,) = measure_program(program, AudioSettings())
    assert levelled.info.measured is not None and levelled.info.measured.lufs == pytest.approx(-30, abs=0.5)
    (off,) = measure_program(program, AudioSettings(loudness="off"))
    assert off.info.measured is None


def test_file_segments_level_the_whole_file(tmp_path, speech):
    write_speech(tmp_path / "quiet.wav", speech, -35)
    info = audio_io.probe(tmp_path / "quiet.wav")  # not measured yet: file_segments does it
    out = np.concatenate([s.audio for s in audio_io.file_segments(info, STEREO, TARGET)]).astype(np.float32) / 32768
    same = np.concatenate([s.audio for s in audio_io.file_segments(info, STEREO)])
    assert out.shape == same.shape
    m = measure(out, STEREO.sample_rate)
    assert m.lufs == pytest.approx(-16.0, abs=0.5) and m.true_peak <= -0.95


# --- rendered files, measured by ffmpeg --------------------------------------------------------

@pytest.mark.parametrize(("lufs", "channels"), [(-35, 1), (-8, 2)])
def test_render_brings_quiet_and_loud_recordings_to_target(tmp_path, speech, lufs, channels):
    src = tmp_path / "in.wav"
    write_speech(src, speech, lufs, channels)
    before = ebur128(src)[0] + (3.01 if channels == 1 else 0)  # as it plays on the stereo stream
    assert before == pytest.approx(lufs, abs=1.0)
    out = tmp_path / "out.mkv"
    r = linly("render", "--audio", str(src), "-o", str(out), *SMALL)
    assert r.returncode == 0, text(r)
    after, peak = ebur128(out)
    assert after == pytest.approx(-16.0, abs=1.0)
    assert peak <= -1.0 + 0.3  # AAC moves peaks a little


def test_render_keeps_levels_with_loudness_off_and_meets_other_targets(tmp_path, speech):
    src = tmp_path / "in.wav"
    write_speech(src, speech, -30, channels=2)
    before = ebur128(src)[0]
    for setting, expected in (("off", before), ("-23", -23.0)):
        out = tmp_path / f"out{setting}.mkv"
        r = linly("render", "--audio", str(src), "-o", str(out), "--set", f"audio.loudness={setting}", *SMALL)
        assert r.returncode == 0, text(r)
        assert ebur128(out)[0] == pytest.approx(expected, abs=0.5 if setting == "off" else 1.0), setting


def test_render_levels_espeak_speech(tmp_path):
    script = tmp_path / "talk.txt"
    script.write_text("Hello there, and welcome. This sentence is spoken by espeak.\n\n"
                      "大家好，欢迎收看今天的节目。Goodbye!", encoding="utf-8")
    out = tmp_path / "talk.mkv"
    r = linly("render", "--script", str(script), "-o", str(out), *SMALL)
    assert r.returncode == 0, text(r)
    lufs, peak = ebur128(out)
    assert lufs == pytest.approx(-16.0, abs=1.0)
    assert peak <= -1.0 + 0.3


def test_a_short_loud_sentence_after_a_quiet_one_is_not_pushed_into_the_limiter(speech):
    samples, rate = speech
    leveller = Leveller(TARGET)
    quiet = np.repeat(samples[:, None], 2, axis=1) * np.float32(10 ** (-20 / 20))
    leveller(quiet, rate, "v")  # a quiet voice: a large gain is remembered for it
    remembered = leveller.gain(measure(quiet, rate), "v")
    t = np.arange(int(0.3 * rate)) / rate
    loud = np.repeat((0.6 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)[:, None], 2, axis=1)  # too short to gate
    m = measure(loud, rate)
    allowed = TARGET.true_peak + loudness.MAX_LIMITING - m.true_peak
    assert not m.gated and remembered > allowed + 3  # the remembered gain would crush it
    assert leveller.gain(m, "v") == pytest.approx(allowed)
    assert measure(leveller(loud, rate, "v"), rate).true_peak <= TARGET.true_peak + 0.2


def test_hiss_is_left_alone():
    rate = 22050
    rng = np.random.default_rng(1)
    hiss = (rng.standard_normal((rate * 2, 2)) * 10 ** (-63 / 20)).astype(np.float32)  # about -57 LUFS
    out = Leveller(TARGET)(hiss, rate, "v")
    assert np.allclose(out, hiss)
