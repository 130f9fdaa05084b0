"""Lip sync of a recording of the ``testcard`` avatar: how far each sound onset (``onsets``) is
from its white flash, on the file's own timeline.

Two ffmpeg runs decode the streams with ``-copyts`` (so times are the container's, not shifted
to start at zero), log each frame's PTS with showinfo/ashowinfo and pipe out a 64x36 grey copy
of the video and the audio as float32, held in memory (about 350 kB a second of 44.1 kHz
stereo: give long files ``seconds``). Audio sample times come from the PTS of the decoded frame
that holds them, so an audio start that is not the video's (AAC priming in FLV, say) or a gap in
the audio shows up in the offsets instead of being assumed away.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import InputError
from .ffmpeg import find_ffmpeg
from .onsets import onsets
from .limits import ffmpeg_env

FLASH_LUMA = 200  # mean grey level of a flash (white decodes to 255 here); the card itself averages ~70
_SIZE = (64, 36)
_VIDEO = re.compile(r"\[Parsed_showinfo_\d+ @ [^]]+\] n:\s*\d+ pts:\s*(-?\d+)")
_VIDEO_TB = re.compile(r"\[Parsed_showinfo_\d+ @ [^]]+\] config in time_base: (\d+)/(\d+)")
_AUDIO = re.compile(r"\[Parsed_ashowinfo_\d+ @ [^]]+\] n:\d+ pts:(-?\d+) .*channels:(\d+) .*rate:(\d+) nb_samples:(\d+)")


@dataclass(frozen=True)
class SyncReport:
    onsets: list[float]  # sound onsets, seconds on the container's timeline
    flashes: list[float]  # PTS of the white frames, seconds
    pairs: list[tuple[float, float]]  # (onset, flash), each the other's nearest
    unmatched_onsets: int
    unmatched_flashes: int
    audio_start: float  # time of the first decoded sample
    video_start: float  # PTS of the first frame
    audio_duration: float  # decoded samples / rate
    video_duration: float  # first frame's PTS to the last frame's end

    @property
    def offsets_ms(self) -> list[float]:
        """Per pair, onset minus flash: positive when the sound comes after the picture."""
        return [1000.0 * (a - v) for a, v in self.pairs]

    @property
    def max_abs_offset_ms(self) -> float:
        return max((abs(o) for o in self.offsets_ms), default=0.0)

    @property
    def start_offset_ms(self) -> float:
        """Where the audio starts relative to the video, e.g. AAC priming left in by a muxer."""
        return 1000.0 * (self.audio_start - self.video_start)


def measure(path: str | Path, within: float = 0.5, *, seconds: float | None = None, ffmpeg: str | None = None) -> SyncReport:
    """Decode ``path`` (its first ``seconds``, or all) and pair each onset with its flash
    (mutually nearest, ``within`` seconds).

    ``ffmpeg`` is the binary to run (``find_ffmpeg()`` by default). Raises InputError when the
    file cannot be decoded or lacks a video or an audio stream.
    """
    binary = ffmpeg or find_ffmpeg().path
    w, h = _SIZE
    # showinfo before scaling logs the decoder's PTS; passthrough keeps frames 1:1 with the log.
    # Video and audio are decoded by two runs: ffmpeg 7 and later run each filter graph in its
    # own thread, and their log lines interleave mid-line.
    log, gray = _decode(binary, path, seconds, "0:v:0", ["-vf", f"showinfo,scale={w}:{h}:flags=area,format=gray",
                        "-fps_mode", "passthrough", "-f", "rawvideo"])  # fmt: skip
    luma = np.frombuffer(gray, np.uint8).reshape(-1, w * h).mean(axis=1)
    num, den = map(int, _VIDEO_TB.search(log).groups())  # type: ignore[union-attr]
    pts = np.array([int(p) for p in _VIDEO.findall(log)], dtype=np.int64)
    video_times = pts * num / den
    if not len(luma):
        raise InputError(f"cannot measure lip sync in {path}: no video frames decoded")
    if len(video_times) != len(luma):
        raise RuntimeError(f"{len(luma)} frames decoded but {len(video_times)} timestamps logged")

    log, pcm = _decode(binary, path, seconds, "0:a:0", ["-af", "ashowinfo", "-c:a", "pcm_f32le", "-f", "f32le"])
    frames = [(int(p), int(c), int(r), int(n)) for p, c, r, n in _AUDIO.findall(log)]
    if not frames:
        raise InputError(f"cannot measure lip sync in {path}: no audio decoded")
    _, channels, rate, _ = frames[0]
    mono = np.frombuffer(pcm, np.float32).reshape(-1, channels).mean(axis=1)
    starts = np.cumsum([0] + [n for *_, n in frames])
    if starts[-1] != len(mono):
        raise RuntimeError(f"{len(mono)} samples decoded but {starts[-1]} logged")

    def audio_time(i: int) -> float:
        k = int(np.searchsorted(starts, i, side="right")) - 1
        return float(Fraction(frames[k][0], rate) + Fraction(i - int(starts[k]), rate))

    heard = [audio_time(int(i)) for i in onsets(mono, rate)]
    seen = [float(t) for t in video_times[luma >= FLASH_LUMA]]
    pairs = _pair(heard, seen, within)
    frame = float(np.median(np.diff(video_times))) if len(video_times) > 1 else 0.0
    return SyncReport(
        onsets=heard,
        flashes=seen,
        pairs=pairs,
        unmatched_onsets=len(heard) - len(pairs),
        unmatched_flashes=len(seen) - len(pairs),
        audio_start=audio_time(0),
        video_start=float(video_times[0]),
        audio_duration=len(mono) / rate,
        video_duration=float(video_times[-1] - video_times[0]) + frame,
    )


def _decode(binary: str, path: str | Path, seconds: float | None, stream: str, output: list[str]) -> tuple[str, bytes]:
    """ffmpeg's log and the raw output of decoding one ``stream`` of ``path`` (``-copyts``)."""
    limit = ["-t", f"{seconds:g}"] if seconds else []
    argv = [binary, "-hide_banner", "-nostdin", "-nostats", "-copyts", *limit, "-i", str(path), "-map", stream, *output, "pipe:1"]
    run = subprocess.run(argv, capture_output=True, env=ffmpeg_env())
    log = run.stderr.decode("utf-8", "replace")
    if run.returncode != 0:
        what = "video" if stream.startswith("0:v") else "audio"
        last = (log.strip().splitlines() or ["no message"])[-1]
        raise InputError(f"cannot decode the {what} of {path} to measure lip sync: {last}")
    return log, run.stdout


def _pair(heard: list[float], seen: list[float], within: float) -> list[tuple[float, float]]:
    """Onsets and flashes that are each other's nearest, no further apart than ``within``."""
    if not heard or not seen:
        return []
    a, v = np.array(heard), np.array(seen)
    return [(x, y) for x in heard if abs((y := _nearest(x, v)) - x) <= within and _nearest(y, a) == x]


def _nearest(t: float, among: np.ndarray) -> float:
    """The value in sorted, non-empty ``among`` nearest to ``t``."""
    i = int(np.searchsorted(among, t))
    return float(min(among[max(0, i - 1) : i + 1], key=lambda u: abs(u - t)))
