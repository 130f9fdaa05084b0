"""Lip sync read from a rendered file: how far a mouth's movement lags the sound, in frames.

Per frame, the number of pixels in the mouth's box that differ from the first frame (silent, the
mouth at rest) is set against the loudness of the audio that frame stands for (half a frame
either side of its time, on the file's own timeline); the correlation is taken at shifts of
whole frames and the best one refined with a parabola through its neighbours.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from media_probe import probe

from linly_push.ffmpeg import find_ffmpeg

RATE = 8000


def mouth_lag(path: Path, mouth: tuple[slice, slice], width: int, height: int, fps: int) -> tuple[float, dict[int, float]]:
    """The lag (frames; > 0 when the mouth comes after the sound) and the correlation per shift."""
    ffmpeg = find_ffmpeg().path
    # Every frame once, as coded: by default ffmpeg fills a constant-rate raw output from time 0
    # and, the video starting after the AAC priming (23 ms), repeats the first frame, which would
    # put every frame a frame late against the audio.
    grey = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-map", "0:v", "-fps_mode", "passthrough",
                           "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"], capture_output=True, check=True).stdout  # fmt: skip
    frames = np.frombuffer(grey, np.uint8).reshape(-1, height, width)
    pcm = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-map", "0:a", "-ac", "1", "-ar", str(RATE),
                          "-f", "s16le", "pipe:1"], capture_output=True, check=True).stdout  # fmt: skip
    audio = np.frombuffer(pcm, np.int16).astype(np.float32)
    streams = probe(path)
    lead = float(streams.video["start_time"]) - float(streams.audio["start_time"])
    per = RATE // fps
    starts = np.round((lead + (np.arange(len(frames)) - 0.5) / fps) * RATE).astype(int)
    heard = (starts >= 0) & (starts + per <= len(audio))  # frames whose half-frame-either-side is in the file
    frames, starts = frames[heard], starts[heard]
    n = len(frames)
    assert n > 100, n
    loud = np.array([np.sqrt((audio[s : s + per] ** 2).mean()) for s in starts])
    rest = frames[0][mouth].astype(int)  # silent, so the mouth is at rest
    moved = np.array([(np.abs(f[mouth].astype(int) - rest) > 40).sum() for f in frames], np.float64)
    assert loud[0] < 30 and moved.max() > 50 and loud.max() > 1000, (loud[0], moved.max(), loud.max())

    def agreement(shift: int) -> float:
        a, b = (loud[: n - shift], moved[shift:]) if shift >= 0 else (loud[-shift:], moved[: n + shift])
        return float(np.corrcoef(a, b)[0, 1])

    scores = {k: agreement(k) for k in range(-4, 5)}
    best = max(scores, key=scores.__getitem__)
    if abs(best) == 4:
        return float(best), scores
    left, mid, right = scores[best - 1], scores[best], scores[best + 1]
    bend = left - 2 * mid + right
    return best + (0.5 * (left - right) / bend if bend < 0 else 0.0), scores
