"""Getting back on air: the backoff schedule, and where to resume so no sentence is lost.

Both are pure: the live loop asks them what to do and does it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .timeline import Placed
from .media import Segment
from .presets import ReconnectSettings

QUIET = 0.01  # |x| below this (about -40 dBFS) counts as a pause in a recording
PAUSE_SECONDS = 0.15  # a pause in a recording is at least this long


@dataclass
class Backoff:
    """Capped exponential backoff with a give-up clock.

    The delay doubles from ``first_delay`` up to ``max_delay``; a run on air for ``healthy_after``
    seconds resets it. The give-up clock runs from the first failure since the last connection
    that worked, and stops the broadcast after ``give_up_after`` seconds, or, until a first
    connection got on air, after ``first_give_up_after`` (a server that never answered).
    """

    settings: ReconnectSettings
    attempts: int = 0  # failures since the last healthy run
    outage_since: float | None = None
    was_on_air: bool = False  # a connection got on air at least once

    @property
    def give_up_after(self) -> float:
        """Seconds of failures the outage now under way may last."""
        s = self.settings
        return s.give_up_after if self.was_on_air else min(s.first_give_up_after, s.give_up_after)

    def failed(self, now: float, on_air: float, connected: bool) -> float | None:
        """A connection ended after ``on_air`` seconds; the delay before the next try, or None
        to give up. ``connected``: whether it got on air at all."""
        s = self.settings
        if on_air >= s.healthy_after:
            self.attempts = 0
        if connected:
            self.was_on_air = True
        if connected or self.outage_since is None:
            self.outage_since = now
        limit = self.give_up_after
        if now - self.outage_since >= limit:
            return None
        delay = min(s.max_delay, s.first_delay * 2**self.attempts)
        self.attempts += 1
        # Never sleep past the give-up moment: one last try at the deadline.
        return max(0.0, min(delay, self.outage_since + limit - now))


def resume_point(fed: list[Placed], cut: int, rate: int) -> list[Segment]:
    """What to send again after a drop, given the segments fed to the lost connection and the
    first sample that may not have reached the server.

    Speech resumes at the start of the sentence that was cut; a recording at its last pause
    before the cut; idle filler is not repeated.
    """
    at = next((i for i, p in enumerate(fed) if p.end > cut), None)
    if at is None:
        return []
    first = fed[at]
    head: list[Segment] = []
    if first.segment.kind == "audio":
        head = _from_last_pause(fed[: at + 1], cut, rate)
    elif first.segment.kind != "idle":
        head = [first.segment]
    return head + [p.segment for p in fed[at + 1 :] if p.segment.kind != "idle"]


def _from_last_pause(fed: list[Placed], cut: int, rate: int) -> list[Segment]:
    """The recording from its last pause before ``cut`` (searching back through the contiguous
    blocks of the same file), as segments; from the cut block's start if there is none."""
    blocks = [fed[-1]]
    for p in reversed(fed[:-1]):
        if p.segment.kind != "audio" or p.segment.source != blocks[0].segment.source or p.end != blocks[0].start:
            break
        blocks.insert(0, p)
    audio = np.concatenate([b.segment.audio for b in blocks])
    start = blocks[0].start
    pause = last_pause(np.abs(audio.astype(np.float32)).max(axis=1) / 32768.0, cut - start, rate)
    if pause is None:
        return [blocks[-1].segment]
    seg = blocks[0].segment
    return [Segment(audio[pause:], "audio", source=seg.source, avatar=seg.avatar)]


def last_pause(level: np.ndarray, before: int, rate: int) -> int | None:
    """Where the last pause (≥ PAUSE_SECONDS below QUIET) before sample ``before`` ends, i.e.
    where the next sound starts; None if there is no such pause."""
    loud = np.flatnonzero(level[:before] >= QUIET)
    edges = np.concatenate([[-1], loud, [before]])
    pauses = np.flatnonzero(np.diff(edges) - 1 >= PAUSE_SECONDS * rate)
    return None if pauses.size == 0 else int(edges[pauses[-1] + 1])
