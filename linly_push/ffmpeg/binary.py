"""Finding the ffmpeg binary and checking it: its version, the encoders linly-push needs, and
whether it can push WebRTC (WHIP)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import OutputError, UsageError
from ..limits import ffmpeg_env

ENV_VAR = "LINLY_PUSH_FFMPEG"
REQUIRED_ENCODERS = ("libx264", "aac")
WHEEL = "imageio-ffmpeg wheel"
# WHIP carries H.264 and Opus only; ffmpeg's own Opus encoder is experimental, so libopus it is.
WHIP_NEEDS = ("the whip muxer", "the libopus encoder")


@dataclass(frozen=True)
class FFmpegBinary:
    path: str
    version: str
    source: str  # "LINLY_PUSH_FFMPEG", "PATH" or "imageio-ffmpeg wheel"
    whip: bool = False  # has the whip muxer and libopus: can push WebRTC

    def describe(self) -> str:
        return f"ffmpeg {self.version} at {self.path} (from {self.source})"


def find_ffmpeg(*, whip: bool = False) -> FFmpegBinary:
    """The ffmpeg to use: $LINLY_PUSH_FFMPEG, else ffmpeg on PATH, else the imageio-ffmpeg wheel's.

    With ``whip``, the first of them that can push WebRTC: Debian's ffmpeg 5.1 cannot, the
    wheel's 9.0 can. UsageError (nothing here can do what was asked) when none can.
    Each binary is checked (version, encoders, muxers) once.
    """
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        path = shutil.which(explicit)
        if path is None:
            raise OutputError(f"{ENV_VAR}={explicit} is not an executable ffmpeg")
        found = _inspect(path, ENV_VAR)
        if whip and not found.whip:
            raise UsageError(
                f"{found.describe()} cannot push WebRTC: it lacks {_lacking(found)};"
                f" point {ENV_VAR} at ffmpeg 8 or newer with a whip muxer and libopus, or unset it to use the {WHEEL}'s"
            )
        return found
    tried: list[FFmpegBinary] = []
    for candidate in _candidates():
        if not whip or candidate.whip:
            return candidate
        tried.append(candidate)
    if whip:
        seen = "; ".join(f"{b.describe()} lacks {_lacking(b)}" for b in tried) or "no ffmpeg found"
        raise UsageError(
            f"no ffmpeg here can push WebRTC (WHIP): {seen};"
            f" pip install 'imageio-ffmpeg>=0.8.1' (ffmpeg 9) or set {ENV_VAR} to an ffmpeg 8+ with whip and libopus"
        )
    raise OutputError(f"ffmpeg not found: install it (apt install ffmpeg), pip install imageio-ffmpeg, or set {ENV_VAR}")


def _candidates() -> Iterator[FFmpegBinary]:
    path = shutil.which("ffmpeg")
    if path is not None:
        yield _inspect(path, "PATH")
    try:
        import imageio_ffmpeg

        wheel = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return
    if wheel != path:
        yield _inspect(wheel, WHEEL)


def _lacking(binary: FFmpegBinary) -> str:
    missing = [need for need, has in zip(WHIP_NEEDS, _whip_parts(binary.path, binary.source)) if not has]
    return " and ".join(missing)


def _names(listing: str) -> set[str]:
    """The second column of ``ffmpeg -encoders`` or ``-muxers``: the names."""
    return {line.split()[1] for line in listing.splitlines() if len(line.split()) > 1}


def _run(path: str, source: str, *args: str) -> str:
    try:
        return subprocess.run(
            [path, "-hide_banner", *args], capture_output=True, text=True, timeout=30, check=True, env=ffmpeg_env(),
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise OutputError(f"cannot run ffmpeg at {path} (from {source}): {exc}") from None


@functools.cache
def _whip_parts(path: str, source: str) -> tuple[bool, bool]:
    return "whip" in _names(_run(path, source, "-muxers")), "libopus" in _encoders(path, source)


@functools.cache
def _encoders(path: str, source: str) -> frozenset[str]:
    return frozenset(_names(_run(path, source, "-encoders")))


@functools.cache
def _inspect(path: str, source: str) -> FFmpegBinary:
    first = (_run(path, source, "-version").splitlines() or [""])[0]
    m = re.match(r"ffmpeg version (\S+)", first)
    if not m:
        raise OutputError(f"{path} (from {source}) does not look like ffmpeg: {first[:80]!r}")
    missing = [e for e in REQUIRED_ENCODERS if e not in _encoders(path, source)]
    if missing:
        raise OutputError(
            f"ffmpeg {m.group(1)} at {path} (from {source}) lacks the {' and '.join(missing)} encoder;"
            f" install a full build (apt install ffmpeg) or point {ENV_VAR} at one"
        )
    return FFmpegBinary(path, m.group(1), source, whip=all(_whip_parts(path, source)))
