"""Sound onsets, as the lip-sync check defines them: the ``testcard`` avatar flashes white on the
frame nearest to each, and ``sync`` pairs each with its flash in a recording.

An onset is a sample whose magnitude (channels averaged, full scale 1.0) exceeds
``ONSET_THRESHOLD`` after at least ``ONSET_GAP_SECONDS`` of samples that do not. 0.02 (-34 dBFS)
sits well above AAC's noise floor in silence and well below speech and test tones; 150 ms keeps
the gaps between syllables from flashing while every sentence after a pause does.
"""

from __future__ import annotations

import numpy as np

ONSET_THRESHOLD = 0.02
ONSET_GAP_SECONDS = 0.150


def gap_samples(rate: int) -> int:
    """``ONSET_GAP_SECONDS`` in samples at ``rate``."""
    return round(ONSET_GAP_SECONDS * rate)


def onsets(mono: np.ndarray, rate: int) -> np.ndarray:
    """Sample indices of the onsets in ``mono`` (float, full scale 1.0); silence before it."""
    gap = gap_samples(rate)
    return onsets_after(np.flatnonzero(np.abs(mono) > ONSET_THRESHOLD), -gap - 1, gap)


def onsets_after(loud: np.ndarray, last_loud: int, gap: int) -> np.ndarray:
    """The loud indices more than ``gap`` after the loud index before them (``last_loud`` for the
    first): onsets in a stream read piece by piece, ``last_loud`` carried over from the piece before."""
    if loud.size == 0:
        return loud
    prev = np.empty_like(loud)
    prev[0] = last_loud
    prev[1:] = loud[:-1]
    return loud[loud - prev > gap]
