"""``beep``: a TTS that "speaks" one tone per word, with word timings.

Useless as a voice, useful as a template: it shows the shape of a Speech (mono float PCM at the
backend's own rate, marks in samples of that audio) and needs nothing but numpy.
"""

from __future__ import annotations

import re

import numpy as np
from pydantic import Field

from linly_push.backends.base import BackendOptions, TTSBackend
from linly_push.media import Mark, Speech

# A word is a run of letters or digits, or a single Chinese character (Chinese has no spaces).
_CJK = "\u3400-\u4dbf\u4e00-\u9fff"
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")
_FADE_SECONDS = 0.005  # fade each tone in and out, so it does not click


class BeepTTS(TTSBackend):
    name = "beep"
    description = "one tone per word, with word timings (example plugin)"

    class Options(BackendOptions):  # extra="forbid" comes from BackendOptions
        pitch: float = Field(440.0, ge=50.0, le=4000.0)  # Hz of the first word; later ones vary
        word: float = Field(0.18, gt=0.0, le=2.0)  # seconds of tone per word, plus a bit per letter
        gap: float = Field(0.07, ge=0.0, le=2.0)  # seconds of silence after each word
        rate: int = Field(22050, ge=8000, le=96000)  # our own sample rate; linly-push resamples

    options: Options  # for type checkers: the validated Options instance

    def synthesize(self, text: str, lang: str) -> Speech:
        o = self.options
        gap = np.zeros(round(o.gap * o.rate), np.float32)
        chunks: list[np.ndarray] = []
        words: list[Mark] = []
        at = 0  # samples so far
        for i, word in enumerate(_WORD.findall(text)):
            seconds = min(o.word + 0.02 * len(word), 0.6)
            pitch = o.pitch * (1.0, 1.25, 1.5, 1.125)[i % 4]  # a little tune
            tone = _tone(pitch, round(seconds * o.rate), o.rate)
            words.append(Mark(word, at, at + len(tone)))  # in samples of *this* audio
            chunks += [tone, gap]
            at += len(tone) + len(gap)
        if not chunks:  # nothing to say ("..."): a short silence keeps the sentence on the clock
            chunks = [gap if len(gap) else np.zeros(o.rate // 10, np.float32)]
        # No phoneme marks: avatars that want visemes fall back to loudness, as for --audio.
        return Speech(np.concatenate(chunks), o.rate, words=words)


def _tone(hz: float, n: int, rate: int) -> np.ndarray:
    t = np.arange(n, dtype=np.float32) / rate
    tone = 0.3 * np.sin(2 * np.pi * hz * t)  # about -10 dBFS: loud enough, never clipping
    fade = min(round(_FADE_SECONDS * rate), n // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        tone[:fade] *= ramp
        tone[n - fade :] *= ramp[::-1]
    return tone.astype(np.float32)
