"""Finding the ffmpeg binary and checking it: its version, and the encoders linly-push needs."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from ..errors import OutputError

ENV_VAR = "LINLY_PUSH_FFMPEG"
REQUIRED_ENCODERS = ("libx264", "aac")


@dataclass(frozen=True)
class FFmpegBinary:
    path: str
    version: str
    source: str  # "LINLY_PUSH_FFMPEG", "PATH" or "imageio-ffmpeg wheel"


def find_ffmpeg() -> FFmpegBinary:
    """The ffmpeg to use: $LINLY_PUSH_FFMPEG, else ffmpeg on PATH, else the imageio-ffmpeg wheel's.

    Checked (version, libx264 and aac encoders) once per binary.
    """
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        path = shutil.which(explicit)
        if path is None:
            raise OutputError(f"{ENV_VAR}={explicit} is not an executable ffmpeg")
        return _inspect(path, ENV_VAR)
    path = shutil.which("ffmpeg")
    if path is not None:
        return _inspect(path, "PATH")
    try:
        import imageio_ffmpeg

        return _inspect(imageio_ffmpeg.get_ffmpeg_exe(), "imageio-ffmpeg wheel")
    except (ImportError, RuntimeError):
        raise OutputError(
            f"ffmpeg not found: install it (apt install ffmpeg), pip install imageio-ffmpeg, or set {ENV_VAR}"
        ) from None


@functools.cache
def _inspect(path: str, source: str) -> FFmpegBinary:
    def run(*args: str) -> str:
        try:
            return subprocess.run(
                [path, "-hide_banner", *args], capture_output=True, text=True, timeout=30, check=True
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise OutputError(f"cannot run ffmpeg at {path} (from {source}): {exc}") from None

    first = (run("-version").splitlines() or [""])[0]
    m = re.match(r"ffmpeg version (\S+)", first)
    if not m:
        raise OutputError(f"{path} (from {source}) does not look like ffmpeg: {first[:80]!r}")
    listed = {line.split()[1] for line in run("-encoders").splitlines() if len(line.split()) > 1}
    missing = [e for e in REQUIRED_ENCODERS if e not in listed]
    if missing:
        raise OutputError(
            f"ffmpeg {m.group(1)} at {path} (from {source}) lacks the {' and '.join(missing)} encoder;"
            f" install a full build (apt install ffmpeg) or point {ENV_VAR} at one"
        )
    return FFmpegBinary(path, m.group(1), source)
