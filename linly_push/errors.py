"""The one error hierarchy. Each class carries its exit code; only the CLI turns them into exits."""

from __future__ import annotations


class LinlyPushError(Exception):
    """Base of every error linly-push reports to a user. The message is one line, secrets masked."""

    exit_code = 1


class UsageError(LinlyPushError):
    """A bad flag or value, unknown preset or backend, an invalid preset file, no input."""

    exit_code = 2


class InputError(LinlyPushError):
    """A script or audio file that is missing, unreadable, empty, undecodable or not UTF-8."""

    exit_code = 3


class BackendError(LinlyPushError):
    """A TTS or avatar backend failed."""

    exit_code = 4


class OutputError(LinlyPushError):
    """FFmpeg failed or the destination could not be reached."""

    exit_code = 5


class CheckFailed(LinlyPushError):
    """A stream or file did not meet what was expected of it (``probe --expect``)."""

    exit_code = 6


class Interrupted(LinlyPushError):
    """The user stopped the run (Ctrl-C, SIGINT)."""

    exit_code = 130


class Terminated(Interrupted):
    """The run was stopped by SIGTERM (systemd, a supervisor, kill)."""

    exit_code = 143


EXIT_CODES = {
    0: "done",
    UsageError.exit_code: "usage: bad flag or value, unknown preset or backend, invalid preset or rundown file, a start time in the past, no input",
    InputError.exit_code: "bad input: script, audio or probed file missing, unreadable, empty, undecodable, not UTF-8",
    BackendError.exit_code: "a TTS or avatar backend failed",
    OutputError.exit_code: "output failed: ffmpeg error, server unreachable, output folder missing",
    CheckFailed.exit_code: "check failed: a probed stream or file does not match what --expect asked for",
    Interrupted.exit_code: "interrupted (Ctrl-C, SIGINT)",
    Terminated.exit_code: "terminated (SIGTERM)",
}
