"""Trials before anything goes on air: a dry run of the encoder settings on the ffmpeg that
will run (``check_encoder``) and a trial write of each file output (``check_file``), so a bad
setting or an unwritable disk is a clear error at once, not a broadcast that keeps failing."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ..errors import OutputError, UsageError
from ..limits import ffmpeg_env
from ..presets import AudioSettings, VideoSettings, WhipSettings
from .argv import FILE_FORMATS, check_argv
from .diagnosis import dry_run_error, file_hint


@functools.cache
def _dry_run(argv: tuple[str, ...]) -> tuple[int, str]:
    try:
        run = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=60, env=ffmpeg_env())
    except (OSError, subprocess.SubprocessError) as exc:
        return -1, str(exc)
    return run.returncode, run.stderr


# Settings a dry run's error may name, by the value ffmpeg quotes back.
def _settings(video: VideoSettings, audio: AudioSettings, whip: WhipSettings | None) -> list[tuple[str, str]]:
    tables = {"video": video, "audio": audio, **({"whip": whip} if whip else {})}
    named = [(f"{t}.{k}", v) for t, table in tables.items() for k, v in table.model_dump().items()]
    return [(k, str(v)) for k, v in named if isinstance(v, str) and v]


def check_encoder(
    ffmpeg: str, video: VideoSettings, audio: AudioSettings, outputs: Sequence[str] = (), whip: WhipSettings | None = None,
) -> None:
    """UsageError naming the setting when the ffmpeg that will run rejects the encoder settings
    (an unknown x264 tune, a bit rate it cannot parse) for ``outputs``: found before anything
    goes on air, not as a connection that keeps failing. Each set of settings is tried once per
    process."""
    code, stderr = _dry_run(tuple(check_argv(ffmpeg, video, audio, outputs, whip)))
    if code == 0 or "lavfi" in stderr:
        return  # fine, or a build without the test sources: the real run will tell
    reason = dry_run_error(stderr) or f"it exited with code {code}"
    quoted = ("'{}'", '"{}"', " {}.", "{}/", "/{}.")
    named = [k for k, v in _settings(video, audio, whip) if any(q.format(v) in reason for q in quoted)]
    # Two settings may share a value ("fast"): the one whose name the message uses is meant.
    named = [k for k in named if k.split(".")[1].split("_")[-1] in reason] or named
    which = f" (check {', '.join(named)})" if named else " (check the preset's [video] and [audio] settings)"
    raise UsageError(f"ffmpeg cannot encode with these settings: {reason}{which}")


TRIAL_BYTES = 64 * 1024  # a file output must take this much before anything starts


def check_file(path: Path, verb: str) -> None:
    """A file output ffmpeg can write: a container it knows, in a folder that exists, on a disk
    that takes a trial write (a read-only or full disk, or /proc, fails here, not mid-show).

    UsageError for an unknown container, OutputError for the rest. A file that did not exist
    is removed again after the trial; one that did is left as it was (ffmpeg replaces it).
    """
    if path.suffix.lower() not in FILE_FORMATS:
        raise UsageError(f"cannot tell the container from {path.name!r}; use one of {', '.join(FILE_FORMATS)}")
    if not path.parent.is_dir():
        raise OutputError(f"cannot {verb} {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise OutputError(f"cannot {verb} {path}: it is a folder; give a file name")
    existed = path.exists()
    trial = path if not existed else path.with_name(f".{path.name}.linly-push-check")
    try:
        with open(trial, "xb" if not existed else "wb") as f:
            try:
                f.write(bytes(TRIAL_BYTES))
                f.flush()
                os.fsync(f.fileno())
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(trial)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ENOENT:  # the folder is there, yet refuses new files
            tip: str | None = f"{path.parent} does not take new files: write elsewhere"
        else:
            tip = file_hint(reason, path)
        raise OutputError(f"cannot {verb} {path}: {reason}" + (f" ({tip})" if tip else "")) from None
