"""Driving an avatar frame by frame in tests: speech with one phoneme mark per frame, silence,
and the frames an avatar draws for them (44.1 kHz stereo, 25 fps)."""

from __future__ import annotations

import numpy as np

from linly_push.backends.base import Avatar
from linly_push.media import AudioFormat, Mark, Segment, silence, to_int16
from linly_push.timeline import Ticker

RATE, FPS = 44100, 25
AUDIO = AudioFormat(RATE, 2)
FRAME = RATE // FPS  # samples per frame


def drawn(avatar: Avatar, *segments: Segment) -> list[np.ndarray]:
    """Every frame ``avatar`` draws for ``segments`` in turn (copies: they are kept)."""
    out: list[np.ndarray] = []
    ticker = Ticker(avatar.video, AUDIO, avatar.draw)
    for segment in segments:
        out += [np.array(tick.frame) for tick in ticker.feed(segment)]
    return out


def speech(labels: str, frames_each: int = 1) -> Segment:
    """Speech whose phoneme marks each cover ``frames_each`` whole frame windows, one per label
    (space separated); the first mark starts half a frame early so mark k fills frame k's window."""
    names = labels.split()
    n = len(names) * frames_each * FRAME
    marks = [Mark(name, max(0, (k * frames_each * FRAME) - FRAME // 2), (k + 1) * frames_each * FRAME - FRAME // 2)
             for k, name in enumerate(names)]  # fmt: skip
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / RATE)
    return Segment(to_int16(np.repeat(tone[:, None], 2, axis=1)), "speech", phonemes=marks)


def pause(seconds: float) -> Segment:
    return Segment(silence(round(seconds * RATE), AUDIO), "pause")
