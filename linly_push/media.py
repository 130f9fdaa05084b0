"""The media types that flow through the pipeline: formats, speech from TTS, stream segments.

Time inside the pipeline is counted in integer samples of the stream's audio rate and integer
frame numbers; seconds appear only at the edges (reports, presets).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class VideoFormat:
    width: int
    height: int
    fps: int

    @property
    def frame_bytes(self) -> int:
        """Size of one yuv420p frame, the pixel format avatars hand to the sink."""
        return self.width * self.height * 3 // 2


@dataclass(frozen=True)
class AudioFormat:
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class Mark:
    """A labelled span of speech (a phoneme or a word), in samples of the audio it belongs to."""

    label: str
    start: int
    end: int

    def shifted(self, offset: int, scale: float = 1.0) -> Mark:
        return Mark(self.label, offset + round(self.start * scale), offset + round(self.end * scale))


# Phoneme names differ between engines: espeak's ASCII names, or IPA (piper and most others).
Alphabet = Literal["espeak", "ipa"]


@dataclass
class Speech:
    """What a TTS backend returns for one utterance: mono PCM and, when it has them, timings."""

    samples: np.ndarray  # float32, mono, in [-1, 1]
    sample_rate: int
    phonemes: list[Mark] = field(default_factory=list)
    words: list[Mark] = field(default_factory=list)
    alphabet: Alphabet = "espeak"

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


class Kind(str, Enum):
    """What a segment of the stream is. A str, so ``Kind.SPEECH == "speech"``."""

    SPEECH = "speech"  # a sentence from TTS
    PAUSE = "pause"  # silence the program asks for (between sentences, a rundown's pause)
    AUDIO = "audio"  # a block of a recording
    IDLE = "idle"  # filler while live waits for more: not part of the program, never replayed

    def __str__(self) -> str:
        return self.value


@dataclass
class Segment:
    """A stretch of the stream's audio, converted to the stream's format, with what it says.

    Marks are in samples of the stream's rate, relative to the segment's first sample.
    """

    audio: np.ndarray  # int16, shape (n, channels)
    kind: Kind
    text: str | None = None  # the sentence being spoken, for speech
    sentence: int | None = None  # 1-based sentence number in the script, for speech
    phonemes: list[Mark] = field(default_factory=list)
    words: list[Mark] = field(default_factory=list)
    alphabet: Alphabet = "espeak"
    source: str | None = None  # file name, for audio segments
    avatar: Hashable | None = None  # the key of the job's avatar that draws it (a rundown's cast); None: the one on screen
    tag: Hashable | None = None  # the tag of the program item it comes from (a control request)

    def __post_init__(self) -> None:
        self.kind = Kind(self.kind)

    def __len__(self) -> int:
        return int(self.audio.shape[0])

    def head(self, samples: int) -> Segment:
        """Its first ``samples`` samples, with the marks that start in them."""
        keep = [m for m in self.phonemes if m.start < samples]
        words = [m for m in self.words if m.start < samples]
        return replace(self, audio=self.audio[:samples], phonemes=keep, words=words)


def silence(samples: int, fmt: AudioFormat) -> np.ndarray:
    return np.zeros((samples, fmt.channels), dtype=np.int16)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float [-1, 1] to int16 with clipping (TTS peaks can overshoot slightly)."""
    return np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)
