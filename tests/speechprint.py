"""Finding spoken sentences in recordings, without speech recognition.

Each sentence is synthesized again with linly-push's own espeak backend (the CLI's defaults: the
voice follows the text's language), trimmed to its sound, and reduced to a fingerprint: the log
energy of 12 frequency bands every 10 ms. A recording (FLV, MP4, anything ffmpeg decodes) is
reduced the same way, and each sentence is looked for by normalised cross-correlation (z-scored
over the template's length, so level, AAC coding, resampling and a few samples' shift barely
matter). A place scores the lower of the whole sentence's correlation and that of its worst
~0.5 s piece (at least 4 pieces), so a sentence sharing all but one word with another does not
pass for it.

Only whole sentences count: a template is only compared where it fits entirely inside the
recording, so a recording cut in the middle of a sentence does not hold that sentence.

    found = find_sentences([rec1, rec2], texts)   # {text: [Match(path, start, score), ...]}
    assert missing([rec1, rec2], texts) == []
    best_scores([rec], texts)                     # {text: best score}, for checking margins

Scores are in [-1, 1] and THRESHOLD is 0.8: the same sentence rendered by the CLI scores 0.95 to
1.0; sentences not in it score under 0.65, even ones differing in a single word (see
tests/test_speechprint.py). A sentence that is a prefix or suffix of a longer one is found
inside it too (as a listener would hear it).
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

SAMPLE_RATE = 16000
HOP = 0.010  # seconds between fingerprint frames
WINDOW = 0.032  # seconds of audio per frame
BANDS = 12  # log-spaced between LOW and HIGH Hz
LOW, HIGH = 100.0, 7000.0
FLOOR = 1e-6  # mean square of -60 dBFS: quieter is silence (and AAC's noise in it)
AUDIBLE = 1e-3  # amplitude: a sentence's print runs from its first to its last sample above it
THRESHOLD = 0.8
PIECE = 0.5  # seconds: a sentence is also compared piece by piece...
PIECES = 4  # ...in at least this many pieces
JITTER = 2  # frames each piece may move


class Match(NamedTuple):
    path: Path
    start: float  # seconds from the start of the recording's decoded audio to the sentence's first sound
    score: float


def fingerprint(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(frames, BANDS) log band energies, one frame every HOP seconds (frame k starts at k*HOP)."""
    x = np.asarray(samples, dtype=np.float32)
    hop, win = round(HOP * sample_rate), round(WINDOW * sample_rate)
    nfft = 1 << (win - 1).bit_length()
    if len(x) < win:
        return np.zeros((0, BANDS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]
    edges = np.round(np.geomspace(LOW, min(HIGH, 0.45 * sample_rate), BANDS + 1) * nfft / sample_rate).astype(int)
    for k in range(1, len(edges)):  # at least one bin a band
        edges[k] = max(edges[k], edges[k - 1] + 1)
    window = np.hanning(win).astype(np.float32)
    spec = np.abs(np.fft.rfft(frames * window, nfft)) ** 2
    # Parseval: each band's share of the frame's mean square
    energy = np.add.reduceat(spec, edges, axis=1)[:, :BANDS] * (2.0 / (nfft * float(window @ window)))
    return np.log(np.maximum(energy, FLOOR)).astype(np.float32)


def correlate(template: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of ``template`` at every start frame where it fits whole
    inside ``features`` (both (frames, bands)); empty if it does not fit anywhere."""
    n, m = len(template), len(features)
    if n == 0 or m < n:
        return np.zeros(0)
    t = template.astype(np.float64)
    t = (t - t.mean()) / (t.std() + 1e-12)
    f = features.astype(np.float64)
    size = 1 << (m + n - 1).bit_length()
    # sum over bands of the correlation of each band, via FFT
    corr = np.fft.irfft(np.fft.rfft(f, size, axis=0) * np.conj(np.fft.rfft(t, size, axis=0)), size, axis=0)
    dot = corr[: m - n + 1].sum(axis=1)
    # mean and variance of each window of f (n frames x all bands)
    c1 = np.concatenate([[0.0], np.cumsum(f.sum(axis=1))])
    c2 = np.concatenate([[0.0], np.cumsum((f * f).sum(axis=1))])
    count = n * f.shape[1]
    s1 = c1[n:] - c1[: m - n + 1]
    s2 = c2[n:] - c2[: m - n + 1]
    var = np.maximum(s2 / count - (s1 / count) ** 2, 0.0)
    # sum(t_z) == 0, so the window's mean drops out of the numerator
    return np.where(var > 1e-6, dot / (count * np.sqrt(var) + 1e-12), 0.0)


def sentence_prints(
    texts: Iterable[str], sample_rate: int = SAMPLE_RATE, **tts_options: object
) -> dict[str, np.ndarray]:
    """Fingerprint of each sentence as linly-push's espeak speaks it (``tts_options`` as
    ``--set tts.KEY=...``: voice, rate, pitch; none means the CLI's defaults)."""
    return {text: _print(text, sample_rate, tuple(sorted(tts_options.items()))) for text in texts}


@functools.lru_cache(maxsize=512)
def _print(text: str, sample_rate: int, options: tuple[tuple[str, object], ...]) -> np.ndarray:
    import soxr

    from linly_push.backends.tts.espeak import EspeakTTS
    from linly_push.script import detect_lang

    tts = _tts(EspeakTTS, options)
    speech = tts.synthesize(text, detect_lang(text))
    samples = np.asarray(speech.samples, np.float32)
    if speech.sample_rate != sample_rate:
        samples = soxr.resample(samples, speech.sample_rate, sample_rate, quality="HQ")
    # From its first sound to its last: "whole" means every sound of it, not the silence around.
    loud = np.flatnonzero(np.abs(samples) > AUDIBLE)
    if len(loud):
        samples = samples[loud[0]: loud[-1] + 1]
    return fingerprint(samples, sample_rate)


@functools.lru_cache(maxsize=8)
def _tts(cls: type, options: tuple[tuple[str, object], ...]):
    return cls(cls.Options(**dict(options)))


def decode(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A recording's first audio stream as mono float32 at ``sample_rate``; empty if it has no
    audio, or nothing ffmpeg can read (a server's recording of a publish that sent nothing)."""
    from linly_push.ffmpeg import find_ffmpeg

    if not Path(path).is_file():
        raise FileNotFoundError(path)
    argv = [find_ffmpeg().path, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
            "-vn", "-map", "0:a:0?", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "pipe:1"]
    out = subprocess.run(argv, capture_output=True, timeout=600)
    return np.frombuffer(out.stdout, dtype=np.float32)


def _peaks(scores: np.ndarray, floor: float, spacing: int, limit: int) -> list[int]:
    """Start frames of up to ``limit`` best local maxima of at least ``floor``, ``spacing`` apart."""
    picked: list[int] = []
    taken = np.zeros(len(scores), bool)
    for i in np.argsort(-scores):
        if scores[i] < floor or len(picked) >= limit:
            break
        if not taken[i]:
            picked.append(int(i))
            taken[max(0, i - spacing + 1): i + spacing] = True
    return picked


def _pieces(template: np.ndarray, features: np.ndarray, start: int) -> float:
    """The worst normalised correlation of the template's pieces (about PIECE seconds each, at
    least PIECES of them) with the recording at ``start``, each free to move JITTER frames:
    a sentence that shares most of its words with another still differs badly in one piece."""
    n = len(template)
    k = max(PIECES, round(n * HOP / PIECE))
    worst = 1.0
    for p in range(k):
        a, b = p * n // k, (p + 1) * n // k
        lo, hi = max(0, start + a - JITTER), min(len(features), start + b + JITTER)
        scores = correlate(template[a:b], features[lo:hi])
        worst = min(worst, float(scores.max()) if len(scores) else -1.0)
    return worst


def scan(template: np.ndarray, features: np.ndarray, *, floor: float = THRESHOLD, limit: int = 1000) -> list[tuple[int, float]]:
    """(start frame, score) of the places ``template`` may be heard whole in ``features``: peaks
    of the whole template's correlation of at least ``floor``, each scored by the lower of that
    and its worst piece's."""
    scores = correlate(template, features)
    found = []
    for i in _peaks(scores, floor, max(1, len(template) // 2), limit):
        found.append((i, min(float(scores[i]), _pieces(template, features, i))))
    return found


def find_sentences(
    paths: Sequence[str | Path], texts: Iterable[str], *, threshold: float = THRESHOLD,
    sample_rate: int = SAMPLE_RATE, **tts_options: object,
) -> dict[str, list[Match]]:
    """Every place each sentence is heard whole in the recordings (scoring at least
    ``threshold``), by recording then time; {text: []} where it is not heard."""
    prints = sentence_prints(texts, sample_rate, **tts_options)
    found: dict[str, list[Match]] = {text: [] for text in prints}
    for path in paths:
        features = fingerprint(decode(path, sample_rate), sample_rate)
        for text, template in prints.items():
            hits = [(i, score) for i, score in scan(template, features, floor=threshold) if score >= threshold]
            found[text] += [Match(Path(path), round(i * HOP, 3), score) for i, score in sorted(hits)]
    return found


def best_scores(
    paths: Sequence[str | Path], texts: Iterable[str], *, sample_rate: int = SAMPLE_RATE, **tts_options: object,
) -> dict[str, float]:
    """Each sentence's best score anywhere in the recordings (-1.0 where it fits nowhere whole),
    for checking the margin on each side of THRESHOLD."""
    prints = sentence_prints(texts, sample_rate, **tts_options)
    best = {text: -1.0 for text in prints}
    for path in paths:
        features = fingerprint(decode(path, sample_rate), sample_rate)
        for text, template in prints.items():
            for _, score in scan(template, features, floor=-1.0, limit=5):
                best[text] = max(best[text], score)
    return best


def missing(paths: Sequence[str | Path], texts: Iterable[str], **kwargs: object) -> list[str]:
    """The sentences heard whole in none of the recordings, in the order given."""
    found = find_sentences(paths, texts, **kwargs)  # type: ignore[arg-type]
    return [text for text, matches in found.items() if not matches]
