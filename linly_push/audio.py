"""Audio in: recorded files and TTS speech, converted to the stream's rate and layout and
brought to the loudness target (``loudness``).

Resampling goes through soxr (a proper band-limited resampler); files are read, measured and
converted block by block so an hour-long recording never sits in memory whole. A file gets one
gain, from a measurement of the whole of it as it will be played; speech gets one per sentence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from . import loudness
from .errors import InputError
from .loudness import Leveller, Measurement, Target
from .media import AudioFormat, Segment, Speech, to_int16
from .presets import AudioSettings

BLOCK_SECONDS = 0.5  # size of the segments a file is cut into
# What a recording may be. A header's rate or channel count outside these is a broken or hostile
# file (a 66 KB WAV that says 1 Hz would be resampled to gigabytes), refused before decoding.
MIN_RATE, MAX_RATE = 8_000, 384_000
MAX_CHANNELS = 8  # 7.1


class AudioProblem(InputError):
    """A recording that cannot be played; ``reason`` says why without naming the file (the
    control API's answers never show the server's own paths)."""

    def __init__(self, reason: str, path: Path) -> None:
        super().__init__(f"{reason}: {path}")
        self.reason = reason


class Cancelled(Exception):
    """Reading a file was stopped (``cancel()`` said so): the show is ending."""


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int
    measured: Measurement | None = None  # as played in the stream's format (``measure_file``)

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def probe(path: str | Path) -> AudioInfo:
    """Check that a file can be decoded, before anything goes on air."""
    p = Path(path)
    if not p.exists():
        raise AudioProblem("audio file not found", p)
    if p.is_dir():
        raise AudioProblem("audio path is a folder, not a file", p)
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioProblem(f"cannot decode audio ({reason(exc)}; wav, flac and ogg are supported)", p) from None
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioProblem(f"its sample rate, {info.samplerate} Hz, is not one of a recording ({MIN_RATE}-{MAX_RATE} Hz)", p)
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise AudioProblem(f"it has {info.channels} channels (at most {MAX_CHANNELS})", p)
    if info.frames == 0:
        raise AudioProblem("audio file is empty", p)
    return AudioInfo(p, info.samplerate, info.channels, info.frames)


# 5.1 (FL FR FC LFE BL BR, the WAV/FLAC order) to stereo, ITU-R BS.775: centre and surrounds at
# -3 dB, LFE left out; scaled so a full-scale signal in every channel cannot clip.
_DOWNMIX_51 = np.array([[1, 0], [0, 1], [0.7071, 0.7071], [0, 0], [0.7071, 0], [0, 0.7071]], np.float32) / 2.4142


def remix(samples: np.ndarray, channels: int) -> np.ndarray:
    """(n, c) float to (n, channels): mono is copied to both sides; more channels are mixed down."""
    if samples.ndim == 1:
        samples = samples[:, None]
    have = samples.shape[1]
    if have == channels:
        return samples
    if have == 6:
        stereo = samples @ _DOWNMIX_51
        return stereo if channels == 2 else stereo.mean(axis=1, keepdims=True)
    mono = samples if have == 1 else samples.mean(axis=1, keepdims=True)
    return np.repeat(mono, channels, axis=1) if channels > 1 else mono


def measure_file(info: AudioInfo, fmt: AudioFormat, cancel: Callable[[], bool] | None = None) -> Measurement:
    """Loudness and true peak of the whole file as it will be played in ``fmt`` (a mono file on
    a stereo stream is 3 LU louder than on its own). Samples that are not numbers (NaN, ±inf)
    make it an ``AudioProblem``: the file is broken. ``Cancelled`` once ``cancel()`` is true."""
    return loudness.measure_blocks(_blocks(info, fmt, strict=True, cancel=cancel), fmt.sample_rate, fmt.channels)


def measured(info: AudioInfo, settings: AudioSettings, cancel: Callable[[], bool] | None = None) -> AudioInfo:
    """``info`` with the file measured as it will be played under ``settings``, when those ask
    for loudness normalisation; else as it is. Reads the whole file (seconds for an hour), once:
    a file already measured is returned as it is."""
    if Target.from_settings(settings) is None or info.measured is not None:
        return info
    fmt = AudioFormat(settings.sample_rate, settings.channels)
    return dataclasses.replace(info, measured=measure_file(info, fmt, cancel))


def file_segments(info: AudioInfo, fmt: AudioFormat, target: Target | None = None) -> Iterator[Segment]:
    """The file as consecutive segments in the stream's format, brought to ``target`` (measured
    now unless ``info.measured`` says how loud it is)."""
    blocks = _blocks(info, fmt)
    if target is not None:
        m = info.measured or measure_file(info, fmt)
        blocks = loudness.level(blocks, fmt.sample_rate, loudness.gain_db(m, target), m, target)
    for data in blocks:
        yield Segment(to_int16(data), "audio", source=info.path.name)


def _blocks(
    info: AudioInfo, fmt: AudioFormat, strict: bool = False, cancel: Callable[[], bool] | None = None
) -> Iterator[np.ndarray]:
    """The file as consecutive float blocks in the stream's rate and layout. A float file's NaN
    and ±inf samples are an ``AudioProblem`` when ``strict``, else silence (never full scale)."""
    block = max(1, int(BLOCK_SECONDS * info.sample_rate))
    resampler = None
    if info.sample_rate != fmt.sample_rate:
        resampler = soxr.ResampleStream(info.sample_rate, fmt.sample_rate, fmt.channels, dtype="float32")
    try:
        with sf.SoundFile(str(info.path)) as f:
            while True:
                if cancel is not None and cancel():
                    raise Cancelled()
                data = f.read(block, dtype="float32", always_2d=True)
                last = len(data) < block
                if not np.isfinite(data).all():
                    if strict:
                        raise AudioProblem("it holds samples that are not numbers (NaN or infinite): a broken file", info.path)
                    data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
                data = remix(data, fmt.channels)
                if resampler is not None:
                    data = resampler.resample_chunk(data, last=last)
                if len(data):
                    yield data
                if last:
                    return
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioProblem(f"cannot decode audio ({reason(exc)})", info.path) from None


def speech_segment(
    speech: Speech, fmt: AudioFormat, text: str, sentence: int, leveller: Leveller | None = None, voice: str = ""
) -> Segment:
    """TTS output in the stream's format, its marks moved to the stream's sample rate; levelled
    by ``leveller`` (which tells ``voice``s apart) unless it is None."""
    samples = np.asarray(speech.samples, dtype=np.float32)
    scale = fmt.sample_rate / speech.sample_rate
    if leveller is not None:
        # Levelled as spoken, mono at the TTS's rate: a quarter of the work in the stream's format.
        samples = leveller(samples[:, None], speech.sample_rate, voice, copies=fmt.channels)[:, 0]
    if speech.sample_rate != fmt.sample_rate:
        samples = soxr.resample(samples, speech.sample_rate, fmt.sample_rate, quality="HQ")
    samples = remix(samples, fmt.channels)
    return Segment(
        to_int16(samples),
        "speech",
        text=text,
        sentence=sentence,
        phonemes=[m.shifted(0, scale) for m in speech.phonemes],
        words=[m.shifted(0, scale) for m in speech.words],
        alphabet=speech.alphabet,
    )


def reason(exc: BaseException) -> str:
    """What a decoding error says, without the file's name (libsndfile puts it in front)."""
    text = (getattr(exc, "error_string", None) or str(exc)).strip().splitlines()
    return text[-1] if text else type(exc).__name__
