"""Gestures avatars share: random events (blinks, glances) laid out frame by frame from a seed."""

from __future__ import annotations

import random
from collections.abc import Callable


class Schedule:
    """Random events (blinks, glances) laid out frame by frame from a seeded generator."""

    def __init__(self, rng: random.Random, first: float, gap: Callable[[random.Random], float],
                 length: Callable[[random.Random], int], fps: int) -> None:  # fmt: skip
        self._rng, self._gap, self._length, self._fps = rng, gap, length, fps
        self.start = round(first * fps)
        self.length = length(rng)

    def at(self, index: int) -> int | None:
        """Frames since the current event began, or None between events."""
        while index >= self.start + self.length:
            self.start += self.length + max(1, round(self._gap(self._rng) * self._fps))
            self.length = self._length(self._rng)
        return index - self.start if index >= self.start else None


def blink_gap(mean: float) -> Callable[[random.Random], float]:
    # Mostly 0.5x to 1.5x the mean apart; now and then a quick second blink.
    return lambda rng: rng.uniform(0.12, 0.22) if rng.random() < 0.15 else mean * rng.uniform(0.5, 1.5)
