"""ffprobe, for checking what linly-push wrote."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path


@dataclass
class Probe:
    format: dict
    video: dict
    audio: dict

    @property
    def fps(self) -> Fraction:
        return Fraction(self.video["avg_frame_rate"])

    @property
    def video_seconds(self) -> float:
        return float(self.video["duration"])

    @property
    def audio_seconds(self) -> float:
        return float(self.audio["duration"])


def probe(path: str | Path) -> Probe:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    data = json.loads(out)
    streams = data["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    audio = next(s for s in streams if s["codec_type"] == "audio")
    return Probe(data["format"], video, audio)


def count_frames(path: str | Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
         "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    return int(out.strip())
