"""Audio in: recorded files and TTS speech, converted to the stream's rate and layout.

Resampling goes through soxr (a proper band-limited resampler); files are read and converted
block by block so an hour-long recording never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import InputError
from .media import AudioFormat, Segment, Speech, to_int16

BLOCK_SECONDS = 0.5  # size of the segments a file is cut into


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def probe(path: str | Path) -> AudioInfo:
    """Check that a file can be decoded, before anything goes on air."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"audio file not found: {p}")
    if p.is_dir():
        raise InputError(f"audio path is a folder, not a file: {p}")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise InputError(f"cannot decode audio {p}: {_reason(exc)} (wav, flac and ogg are supported)") from None
    if info.frames == 0:
        raise InputError(f"audio file is empty: {p}")
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


def file_segments(info: AudioInfo, fmt: AudioFormat) -> Iterator[Segment]:
    """The file as consecutive segments in the stream's format."""
    block = max(1, int(BLOCK_SECONDS * info.sample_rate))
    resampler = None
    if info.sample_rate != fmt.sample_rate:
        resampler = soxr.ResampleStream(info.sample_rate, fmt.sample_rate, fmt.channels, dtype="float32")
    try:
        with sf.SoundFile(str(info.path)) as f:
            while True:
                data = f.read(block, dtype="float32", always_2d=True)
                last = len(data) < block
                data = remix(data, fmt.channels)
                if resampler is not None:
                    data = resampler.resample_chunk(data, last=last)
                if len(data):
                    yield Segment(to_int16(data), "audio", source=info.path.name)
                if last:
                    return
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise InputError(f"cannot decode audio {info.path}: {_reason(exc)}") from None


def speech_segment(speech: Speech, fmt: AudioFormat, text: str, sentence: int) -> Segment:
    """TTS output in the stream's format, its marks moved to the stream's sample rate."""
    samples = np.asarray(speech.samples, dtype=np.float32)
    scale = fmt.sample_rate / speech.sample_rate
    if speech.sample_rate != fmt.sample_rate:
        samples = soxr.resample(samples, speech.sample_rate, fmt.sample_rate, quality="HQ")
    audio = to_int16(remix(samples, fmt.channels))
    return Segment(
        audio,
        "speech",
        text=text,
        sentence=sentence,
        phonemes=[m.shifted(0, scale) for m in speech.phonemes],
        words=[m.shifted(0, scale) for m in speech.words],
        alphabet=speech.alphabet,
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
