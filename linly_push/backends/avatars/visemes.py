"""Mouth shapes (visemes) from phoneme marks, or from loudness when there are no marks.

Phoneme names come in two alphabets (``media.Alphabet``): espeak's ASCII names as its phoneme
events give them (``'oU``, ``tS``, ``ts.h``, ``@2``, ``_:``) and IPA (piper and most others).
Any name maps to some viseme: stress, tone and length marks are dropped, pauses rest, and an
unknown name is judged by its leading letters.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable
from enum import Enum
from functools import lru_cache

import numpy as np

from ...media import Alphabet, Mark
from ...timeline import FrameContext


class Viseme(Enum):
    REST = "rest"  # lips closed, relaxed (silence)
    MBP = "mbp"  # lips pressed together
    FV = "fv"  # lower lip under the upper teeth
    TH = "th"  # tongue between the teeth
    L = "l"  # open, tongue tip up behind the teeth (l, t, d, n)
    SZ = "sz"  # teeth together, lips spread
    CH = "ch"  # lips pushed forward, teeth close (sh, ch, r)
    AA = "aa"  # wide open
    E = "e"  # mid open, spread
    I = "i"  # slightly open, spread (also k, g, ng)
    O = "o"  # round, open
    U = "u"  # small and round (u, w)

    @property
    def openness(self) -> float:
        """How far the jaw drops, 0 (closed) to 1 (wide open): drives head nods and brows."""
        return _OPENNESS[self]


_OPENNESS = {
    Viseme.REST: 0.0, Viseme.MBP: 0.0, Viseme.FV: 0.2, Viseme.TH: 0.3, Viseme.L: 0.45,
    Viseme.SZ: 0.15, Viseme.CH: 0.3, Viseme.AA: 1.0, Viseme.E: 0.6, Viseme.I: 0.35,
    Viseme.O: 0.7, Viseme.U: 0.35,
}  # fmt: skip

V = Viseme
# espeak-ng ASCII phoneme names (en-us, cmn and the letters most other voices use).
# Longer names are tried first, so "tS" wins over "t" and "ts.h" finds "ts.".
_ESPEAK: dict[str, Viseme] = {
    "p": V.MBP, "b": V.MBP, "m": V.MBP,
    "f": V.FV, "v": V.FV,
    "T": V.TH, "D": V.TH,
    "l": V.L, "L": V.L, "t": V.L, "d": V.L, "n": V.L, "*": V.L,
    "s": V.SZ, "z": V.SZ, "ts": V.SZ, "dz": V.SZ,
    # Mandarin alveolo-palatals (j, q, x) are spread, retroflexes (zh, ch, sh, r) pushed forward.
    "tS;": V.SZ, "dZ;": V.SZ, "S;": V.SZ, "Z;": V.SZ,
    "S": V.CH, "Z": V.CH, "tS": V.CH, "dZ": V.CH, "r": V.CH, "R": V.CH,
    "ts.": V.CH, "dz.": V.CH, "s.": V.CH, "z.": V.CH,
    "k": V.I, "g": V.I, "N": V.I, "c": V.I, "J": V.I, "q": V.I, "G": V.I,
    "x": V.I, "X": V.I, "C": V.I, "j": V.I, "?": V.I,
    "h": V.E, "H": V.E,
    "w": V.U, "W": V.O,
    "a": V.AA, "A": V.AA, "&": V.AA, "V": V.AA,
    "@": V.E, "3": V.E, "e": V.E, "E": V.E, "o-": V.E,
    "i": V.I, "I": V.I,
    "0": V.O, "o": V.O, "O": V.O,
    "u": V.U, "U": V.U, "y": V.U, "Y": V.U,
}  # fmt: skip

_IPA: dict[str, Viseme] = {
    "p": V.MBP, "b": V.MBP, "m": V.MBP, "ɓ": V.MBP, "ʙ": V.MBP,
    "f": V.FV, "v": V.FV, "ɱ": V.FV, "ʋ": V.FV,
    "θ": V.TH, "ð": V.TH,
    "l": V.L, "ɫ": V.L, "ɭ": V.L, "ʎ": V.L, "ɬ": V.L, "ɮ": V.L, "t": V.L, "d": V.L, "ʈ": V.L,
    "ɖ": V.L, "n": V.L, "ɳ": V.L, "ɾ": V.L, "ɽ": V.L,
    "s": V.SZ, "z": V.SZ, "ts": V.SZ, "dz": V.SZ, "tɕ": V.SZ, "dʑ": V.SZ, "ɕ": V.SZ, "ʑ": V.SZ,
    "ʃ": V.CH, "ʒ": V.CH, "tʃ": V.CH, "dʒ": V.CH, "ʧ": V.CH, "ʤ": V.CH, "ʂ": V.CH, "ʐ": V.CH,
    "tʂ": V.CH, "dʐ": V.CH, "ɹ": V.CH, "r": V.CH, "ɻ": V.CH, "ʀ": V.CH,
    "k": V.I, "g": V.I, "ɡ": V.I, "ŋ": V.I, "c": V.I, "ɟ": V.I, "ɲ": V.I, "q": V.I, "ɢ": V.I,
    "ɴ": V.I, "x": V.I, "ɣ": V.I, "χ": V.I, "ʁ": V.I, "ç": V.I, "ʝ": V.I, "j": V.I, "ʔ": V.I,
    "h": V.E, "ɦ": V.E, "ħ": V.E, "ʕ": V.E,
    "w": V.U, "ʍ": V.U, "ɥ": V.U,
    "a": V.AA, "ɑ": V.AA, "ɐ": V.AA, "æ": V.AA, "ʌ": V.AA, "ɶ": V.AA,
    "e": V.E, "ɛ": V.E, "ə": V.E, "ɜ": V.E, "ɚ": V.E, "ɝ": V.E, "ɘ": V.E, "ɤ": V.E,
    "i": V.I, "ɪ": V.I, "ɨ": V.I, "ɯ": V.I,
    "o": V.O, "ɔ": V.O, "ɒ": V.O, "ø": V.O, "œ": V.O, "ɞ": V.O, "ɵ": V.O,
    "u": V.U, "ʊ": V.U, "y": V.U, "ʏ": V.U, "ʉ": V.U,
}  # fmt: skip
del V

_TABLES: dict[str, dict[str, Viseme]] = {"espeak": _ESPEAK, "ipa": _IPA}
_LONGEST = 4
_MARKS = "'\",%=ˈˌ͡‿"  # stress and tie marks carry no mouth shape
_TONES = "0123456789˥˦˧˨˩"  # Mandarin tone numbers (espeak "@5") and IPA tone letters
_PAUSES = "_|#.,;:!?-… "
_GLIDES = "iuy"
_OPEN_VOWELS = {Viseme.AA, Viseme.E, Viseme.O}


@lru_cache(maxsize=1024)
def viseme_for(label: str, alphabet: Alphabet = "espeak") -> Viseme:
    """The mouth shape for one phoneme name; never raises."""
    table = _TABLES.get(alphabet, _ESPEAK)
    name = "".join(c for c in label.strip() if c not in _MARKS and not unicodedata.combining(c))
    if not name or name[0] in _PAUSES:
        return Viseme.REST
    # Tone digits trail the vowel ("Au214"); espeak's "0" and "3" are vowels, not tones.
    name = name.rstrip(_TONES) or name
    # A glide before a more open vowel ("iA", "ua", "y&"): the mouth shows the main vowel.
    if len(name) > 1 and name[0] in _GLIDES and table.get(name[1]) in _OPEN_VOWELS:
        name = name[1:]
    for n in range(min(_LONGEST, len(name)), 0, -1):
        found = table.get(name[:n])
        if found is not None:
            return found
    return Viseme.I if name[0].isalpha() else Viseme.REST  # some sound, shape unknown


def viseme_in_window(marks: Iterable[tuple[Mark, Alphabet]], window: tuple[int, int]) -> Viseme | None:
    """The viseme of the mark that covers most of ``window`` ([start, end) samples), or None if
    no mark overlaps it. Ties go to the later mark: lips move ahead of the sound."""
    lo, hi = window
    best: tuple[int, int, Mark, Alphabet] | None = None
    for mark, alphabet in marks:
        overlap = min(mark.end, hi) - max(mark.start, lo)
        if overlap > 0 and (best is None or (overlap, mark.start) > best[:2]):
            best = (overlap, mark.start, mark, alphabet)
    return None if best is None else viseme_for(best[2].label, best[3])


# Loudness fallback, calibrated on espeak-ng speech (40 ms frames: median about -25 dBFS RMS,
# 90th percentile -16): levels relative to a slowly tracked speech level, so quiet recordings
# still open the mouth, under a fixed gate for silence and room noise.
_GATE_DB = -50.0
_LEVELS = ((-5.0, Viseme.AA), (-12.0, Viseme.E), (-26.0, Viseme.I))  # dB under the reference
_REF_DB, _REF_RANGE = -16.0, (-30.0, -10.0)
_REF_DECAY_DB_S = 1.5
_HYSTERESIS_DB = 3.0  # a level is left only this far under its threshold: no flicker


def level_viseme(db: float, ref_db: float = _REF_DB) -> Viseme:
    """Loudness in dBFS to a mouth opening: REST, I (small), E (mid) or AA (wide)."""
    if db < _GATE_DB:
        return Viseme.REST
    for under, viseme in _LEVELS:
        if db >= ref_db + under:
            return viseme
    return Viseme.REST


def rms_db(audio: np.ndarray) -> float:
    if audio.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


class Loudness:
    """Mouth opening from the loudness of successive frames, for audio without phoneme marks.

    Keeps the speech level and the current opening between frames; call it once per frame, in
    order. Each frame's window already averages 30-40 ms, so hysteresis is all the smoothing needed.
    """

    _ORDER = (Viseme.REST, Viseme.I, Viseme.E, Viseme.AA)

    def __init__(self, fps: int) -> None:
        self._ref_decay = _REF_DECAY_DB_S / fps
        self._ref = _REF_DB
        self._level = 0
        self.db = -math.inf  # the level of the last frame it was given, dBFS

    def __call__(self, audio: np.ndarray) -> Viseme:
        db = self.db = rms_db(audio)
        if db >= _GATE_DB:
            self._ref = min(max(db, self._ref - self._ref_decay, _REF_RANGE[0]), _REF_RANGE[1])
        up = self._ORDER.index(level_viseme(db, self._ref))
        down = self._ORDER.index(level_viseme(db + _HYSTERESIS_DB, self._ref))
        if up > self._level:
            self._level = up
        elif down < self._level:
            self._level = down
        return self._ORDER[self._level]


def viseme_at(ctx: FrameContext, loudness: Loudness | None = None) -> Viseme:
    """The mouth shape for frame ``ctx.index``.

    Phoneme marks win: the one covering most of the frame's window, REST between marks. Where the
    segment has no marks (a recorded audio file, a TTS without timings) the loudness decides:
    through ``loudness`` (smoothed; it should see every frame, so it is fed even when marks
    decide) or, without one, the frame's own RMS.
    """
    by_loudness = loudness(ctx.audio()) if loudness is not None else None
    marks = [(m, p.segment.alphabet) for m, p in ctx.phonemes()]
    found = viseme_in_window(marks, ctx.window())
    if found is not None:
        return found
    placed = ctx.placed
    if placed is not None and placed.segment.phonemes:
        return Viseme.REST
    return by_loudness if by_loudness is not None else level_viseme(rms_db(ctx.audio()))
