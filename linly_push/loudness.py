"""Loudness: measuring it (ITU-R BS.1770-4, as EBU R128 and ffmpeg's ebur128 do) and bringing
speech and recordings to a target under a true-peak ceiling.

The meter is streaming: blocks go in one after another, the K-weighting filters keep their state
across blocks and only one energy per 100 ms is kept, so an hour-long file is measured without
ever being in memory whole. True peak is the sample peak of a 4x oversampled copy (BS.1770-4
Annex 2).

TTS sentences peak 11-21 dB above their loudness (espeak and piper, on a stereo stream), often
more than the 15 dB that -16 LUFS under -1 dBTP leaves: a gain capped at the ceiling left some a
few LU under the target (a piper sentence 6 LU). So the gain goes all the way, and a look-ahead
limiter takes the few peaks that would go over the ceiling down smoothly.

scipy is imported only when something is measured or limited ("off" never needs it).
"""

from __future__ import annotations

import dataclasses

import math
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import soxr

from .presets import AudioSettings

BLOCK_SECONDS = 0.4  # a gating block
HOPS_PER_BLOCK = 4  # blocks overlap by 75%: one starts every 100 ms
ABSOLUTE_GATE = -70.0  # LUFS
RELATIVE_GATE = -10.0  # LU below the loudness of the blocks above the absolute gate
SILENT = -55.0  # LUFS: quieter than this there is nothing to level (hiss, room tone)
MAX_GAIN = 36.0  # dB: speech down to -52 LUFS is brought up to -16, nothing quieter
OVERSAMPLE = 4  # for true peak
# At most this much of the gain may come from limiting (the peaks taken down by up to this);
# audio that would need more stays under the target rather than being squashed.
MAX_LIMITING = 9.0  # dB
# The limiter: its gain eases down over RAMP before a peak, holds for HOLD, eases back over RAMP.
RAMP_SECONDS = 0.005
HOLD_SECONDS = 0.050
LIMIT_MARGIN = 0.2  # dB under the ceiling, for what the limiter's own estimate of true peak misses


@dataclass(frozen=True)
class Target:
    lufs: float  # integrated loudness to reach
    true_peak: float  # dBTP ceiling

    @classmethod
    def from_settings(cls, audio: AudioSettings) -> Target | None:
        """The preset's target, or None when ``audio.loudness`` is "off"."""
        if audio.loudness == "off":
            return None
        return cls(float(audio.loudness), audio.true_peak)


@dataclass(frozen=True)
class Measurement:
    lufs: float  # integrated loudness; -inf for silence
    true_peak: float  # dBTP; -inf for digital silence
    seconds: float

    @property
    def gated(self) -> bool:
        """Long enough for a gating block. A shorter clip is measured as one block, which counts
        its silent edges too and reads low."""
        return self.seconds >= BLOCK_SECONDS

    @property
    def silent(self) -> bool:
        return self.lufs < SILENT


def _signal() -> ModuleType:
    from scipy import signal  # over a second to import: only when measuring or limiting

    return signal


def preload() -> threading.Thread:
    """Import what measuring needs in the background, while the backends start."""
    thread = threading.Thread(target=_signal, name="preload-scipy", daemon=True)
    thread.start()
    return thread


def _k_weighting(rate: int) -> np.ndarray:
    """The BS.1770 pre-filter (high shelf, then high pass) as second-order sections for ``rate``.

    The spec gives coefficients for 48 kHz only; these analog prototypes (libebur128's, behind
    ffmpeg's ebur128) give exactly those at 48 kHz and the same curve at any rate.
    """
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
             1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    high_pass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf, high_pass])


class Meter:
    """Integrated loudness and true peak of audio fed in blocks of shape (n,) or (n, channels).

    Channels are weighted equally: what is measured here is the stream's mono or stereo.
    """

    def __init__(self, rate: int, channels: int) -> None:
        self._sosfilt = _signal().sosfilt
        self.rate, self.channels = rate, channels
        self._sos = _k_weighting(rate)
        self._state = np.zeros((len(self._sos), 2, channels))
        self._upsampler = soxr.ResampleStream(rate, rate * OVERSAMPLE, channels, dtype="float32", quality="HQ")
        self._samples = 0
        self._hops: list[np.ndarray] = []  # K-weighted energy of each complete 100 ms hop
        self._hop_count = 0
        self._carry = 0.0  # energy so far in the hop not yet complete
        self._peak = 0.0

    def feed(self, samples: np.ndarray) -> None:
        x = np.asarray(samples, dtype=np.float32).reshape(len(samples), self.channels)
        if not len(x):
            return
        weighted, self._state = self._sosfilt(self._sos, x, axis=0, zi=self._state)
        self._add_energy(np.square(weighted).sum(axis=1))
        self._note_peak(self._upsampler.resample_chunk(x))

    def _add_energy(self, energy: np.ndarray) -> None:
        # Hop k ends at sample k*rate//10: exact integers at any rate.
        start, end = self._samples, self._samples + len(energy)
        first, last = self._hop_count + 1, (10 * (end + 1) - 1) // self.rate
        running = np.cumsum(energy)
        if last >= first:
            ends = np.arange(first, last + 1) * self.rate // 10 - start  # 1-based, within this block
            at = running[ends - 1]
            hops = np.diff(at, prepend=0.0)
            hops[0] += self._carry
            self._hops.append(hops)
            self._hop_count = last
            self._carry = float(running[-1] - at[-1])
        else:
            self._carry += float(running[-1])
        self._samples = end

    def _note_peak(self, upsampled: np.ndarray) -> None:
        if len(upsampled):
            self._peak = max(self._peak, float(np.abs(upsampled).max()))

    def result(self) -> Measurement:
        """What was fed, measured. Call once, at the end."""
        self._note_peak(self._upsampler.resample_chunk(np.zeros((0, self.channels), np.float32), last=True))
        return Measurement(self._integrated(), _db(self._peak), self._samples / self.rate)

    def _integrated(self) -> float:
        hops = np.concatenate(self._hops) if self._hops else np.zeros(0)
        if len(hops) < HOPS_PER_BLOCK:  # shorter than a gating block: the whole clip as one
            return float(_lufs((hops.sum() + self._carry) / max(self._samples, 1)))
        ends = np.arange(len(hops) + 1) * self.rate // 10
        blocks = np.convolve(hops, np.ones(HOPS_PER_BLOCK), mode="valid") / (ends[HOPS_PER_BLOCK:] - ends[:-HOPS_PER_BLOCK])
        loud = blocks[_lufs(blocks) > ABSOLUTE_GATE]
        if not len(loud):
            return -math.inf
        gate = _lufs(loud.mean()) + RELATIVE_GATE
        return float(_lufs(loud[_lufs(loud) > gate].mean()))


def _lufs(energy: float | np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return -0.691 + 10 * np.log10(energy)


def _db(amplitude: float) -> float:
    return 20 * math.log10(amplitude) if amplitude > 0 else -math.inf


def measure(samples: np.ndarray, rate: int) -> Measurement:
    """Loudness and true peak of float samples, shape (n,) or (n, channels)."""
    return measure_blocks([samples], rate, 1 if np.ndim(samples) == 1 else int(np.shape(samples)[1]))


def measure_blocks(blocks: Iterable[np.ndarray], rate: int, channels: int) -> Measurement:
    """Loudness and true peak of consecutive blocks, without holding more than one."""
    meter = Meter(rate, channels)
    for block in blocks:
        meter.feed(block)
    return meter.result()


def gain_db(m: Measurement, t: Target) -> float:
    """The gain that brings ``m`` to the target, capped so the limiter never has to take the
    peaks down by more than MAX_LIMITING; 0 for silence."""
    if m.silent:
        return 0.0
    return min(t.lufs - m.lufs, t.true_peak + MAX_LIMITING - m.true_peak, MAX_GAIN)


def apply(samples: np.ndarray, gain: float) -> np.ndarray:
    return (samples * np.float32(10 ** (gain / 20))).astype(np.float32, copy=False)


def level(blocks: Iterable[np.ndarray], rate: int, gain: float, m: Measurement, t: Target) -> Iterator[np.ndarray]:
    """Consecutive (n, channels) float blocks of audio measured as ``m``, with ``gain`` applied;
    through the limiter only when that would take the peaks over the ceiling."""
    gained = (apply(b, gain) for b in blocks)
    if m.true_peak + gain <= t.true_peak - LIMIT_MARGIN:
        return gained
    return limit(gained, rate, t.true_peak)


def limit(blocks: Iterable[np.ndarray], rate: int, ceiling: float) -> Iterator[np.ndarray]:
    """Consecutive (n, channels) float blocks with their true peak kept under ``ceiling`` dBTP.

    A look-ahead limiter: the gain each sample needs comes from a 4x oversampled copy; the
    lowest gain any peak needs is held for HOLD_SECONDS and eased in and out over RAMP_SECONDS
    with a raised cosine that is all the way down when the peak arrives, so nothing goes over.
    Output lags the input by the look-ahead; the last block brings the rest (same total length).
    """
    signal = _signal()
    from scipy.ndimage import minimum_filter1d  # loaded by scipy.signal anyway

    ramp = max(1, round(RAMP_SECONDS * rate))  # the smoothing kernel reaches this far each way
    hold = 2 * round(HOLD_SECONDS * rate / 2)  # even, so the minimum's window has a whole origin
    kernel = np.hanning(2 * ramp + 3)[1:-1]
    kernel /= kernel.sum()
    reach = 80  # input samples the oversampling filter (soxr HQ) reaches each way
    past, ahead = 2 * ramp + hold + reach, 2 * ramp + reach
    most = 10 ** ((ceiling - LIMIT_MARGIN) / 20)

    def gains(x: np.ndarray) -> np.ndarray:
        up = soxr.resample(x, rate, rate * OVERSAMPLE, quality="HQ")
        peak = np.maximum(np.abs(up).reshape(len(x), -1).max(axis=1), np.abs(x).max(axis=1))
        need = np.minimum(1.0, most / np.maximum(peak, 1e-9))
        # Each sample takes the lowest need from hold + ramp before it to ramp after it; the
        # smoothing then averages only such values around a peak: none above the peak's need.
        held = minimum_filter1d(need, 2 * ramp + hold + 1, origin=hold // 2)
        # Smoothing the reduction, not the gain: where there is none the gain stays exactly 1.
        return (1 - signal.oaconvolve(1 - held, kernel, mode="same")).astype(np.float32)

    def limited(x: np.ndarray) -> np.ndarray:
        return x[past:-ahead] * gains(x)[past:-ahead, None]

    buf: np.ndarray | None = None
    for block in blocks:
        history = np.zeros((past, block.shape[1]), np.float32) if buf is None else buf
        buf = np.concatenate([history, block])
        if len(buf) > past + ahead:
            yield limited(buf)
            buf = buf[-ahead - past:]
    if buf is not None:
        out = limited(np.concatenate([buf, np.zeros((ahead, buf.shape[1]), np.float32)]))
        if len(out):
            yield out


class Leveller:
    """Brings TTS speech to the target, sentence by sentence; one per run.

    A sentence too short for a gating block, or nearly silent, cannot be measured reliably: it
    gets the gain of the last sentence from the same voice.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self._gains: dict[str, float] = {}

    def gain(self, m: Measurement, voice: str) -> float:
        if m.gated and not m.silent:
            self._gains[voice] = gain_db(m, self.target)
            return self._gains[voice]
        if m.silent:
            return 0.0
        # The voice's gain, but never more than its own peaks allow: a short loud word after a
        # quiet sentence must not be pushed far into the limiter.
        fresh = gain_db(m, self.target)
        return min(self._gains.get(voice, fresh), self.target.true_peak + MAX_LIMITING - m.true_peak)

    def __call__(self, samples: np.ndarray, rate: int, voice: str = "", copies: int = 1) -> np.ndarray:
        """``samples`` (n, channels) float, levelled. ``voice`` tells voices apart: the TTS and
        the language (which picks espeak's voice unless one is set) make a good key. ``copies``:
        the channels each one will be played in (mono speech on a stereo stream: 2), which
        BS.1770 hears 10·log10(copies) LU louder."""
        m = measure(samples, rate)
        if copies > 1:
            m = dataclasses.replace(m, lufs=m.lufs + 10 * math.log10(copies))
        parts = list(level([samples], rate, self.gain(m, voice), m, self.target))
        return np.concatenate(parts) if parts else samples
