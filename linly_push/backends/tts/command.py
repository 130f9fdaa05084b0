"""Any program that writes a WAV file, e.g. ``--set tts.command='my-tts --out {wav} {text}'``.

The template is split once, like a shell would split it (shlex), and the placeholders are then
filled in argument by argument, so the sentence becomes exactly one argument however it is
written. No shell ever sees it: quotes, ``;``, ``$(...)`` and backticks in a script are just text.
Unless the template itself calls a shell: in ``sh -c 'my-tts {text} > {wav}'`` (or ``bash -c``, ...)
the shell does parse the sentence, so such a template must never speak text from others.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator

from ...errors import BackendError
from ...limits import without_token
from ...media import Speech
from ..base import TRUSTED, BackendOptions, TTSBackend

_PLACEHOLDER = re.compile(r"\{(wav|text|lang)\}")


def fill(argv: list[str], values: dict[str, str]) -> list[str]:
    """Each argument with its placeholders replaced, in one pass: a ``{wav}`` inside the
    sentence stays text."""
    return [_PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in argv]


def decode_wav(source: str | Path | bytes, what: str) -> Speech:
    """A WAV (any rate, channels, sample format) as mono float32 Speech without timings.

    ``what`` names the source in errors ("'my-tts' wrote ...").
    """
    import soundfile

    try:
        data, rate = soundfile.read(io.BytesIO(source) if isinstance(source, bytes) else source,
                                    dtype="float32", always_2d=True)
    except (RuntimeError, TypeError, ValueError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise BackendError(f"{what} is not audio soundfile can read ({exc})") from None
    if data.shape[0] == 0:
        raise BackendError(f"{what} has no audio (0 samples)")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return Speech(np.ascontiguousarray(mono, dtype=np.float32), int(rate))


def _last_line(*outputs: bytes) -> str:
    for out in outputs:
        lines = [ln.strip() for ln in out.decode(errors="replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1][:300]
    return ""


class CommandTTS(TTSBackend):
    name = "command"
    description = "any program that writes a WAV: --set tts.command='my-tts --out {wav} {text}'"

    class Options(BackendOptions):
        # {wav}: the file to write; {text}: the sentence (one argument); {lang}: "en", "zh"...
        command: str = Field(json_schema_extra=TRUSTED)  # runs a program: not from a confined rundown
        timeout: float = Field(60, gt=0)  # seconds per sentence

        @field_validator("command")
        @classmethod
        def _split(cls, value: str) -> str:
            try:
                argv = shlex.split(value)
            except ValueError as exc:
                raise ValueError(f"cannot split {value!r} into arguments: {exc}") from None
            if not argv:
                raise ValueError("empty command; e.g. 'my-tts --out {wav} {text}'")
            if not any("{wav}" in arg for arg in argv):
                raise ValueError(f"{value!r} has no {{wav}}: where should the program write its WAV?")
            return value

    options: Options

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self._argv = shlex.split(options.command)

    def synthesize(self, text: str, lang: str) -> Speech:
        program = self._argv[0]
        with tempfile.TemporaryDirectory(prefix="linly-push-tts-") as tmp:
            wav = os.path.join(tmp, "speech.wav")
            argv = fill(self._argv, {"wav": wav, "text": text, "lang": lang})
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    start_new_session=True,  # its own process group, so a timeout ends its children too
                    env=without_token(),  # the user's environment, not our control API's token
                )
            except FileNotFoundError:
                raise BackendError(f"tts.command: program {program!r} not found (is it installed and on PATH?)") from None
            except PermissionError:
                raise BackendError(f"tts.command: program {program!r} is not executable") from None
            except OSError as exc:
                raise BackendError(f"tts.command: cannot run {program!r}: {exc.strerror or exc}") from None
            try:
                out, err = proc.communicate(timeout=self.options.timeout)
            except subprocess.TimeoutExpired:
                _kill(proc)
                raise BackendError(
                    f"tts.command: {program!r} did not finish within {self.options.timeout:g} s "
                    "(raise it with --set tts.timeout=SECONDS)"
                ) from None
            except BaseException:
                _kill(proc)
                raise
            if proc.returncode != 0:
                why = _last_line(err, out) or "no message"
                raise BackendError(f"tts.command: {program!r} failed (exit {proc.returncode}): {why}")
            if not os.path.isfile(wav):
                raise BackendError(f"tts.command: {program!r} exited without writing {{wav}}")
            if os.path.getsize(wav) == 0:
                raise BackendError(f"tts.command: {program!r} wrote an empty file to {{wav}}")
            return decode_wav(wav, f"tts.command: what {program!r} wrote to {{wav}}")


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # a grandchild that left its group still holds the pipes
        pass
