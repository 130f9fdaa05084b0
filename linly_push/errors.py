"""The one error hierarchy. Each class carries its exit code; only the CLI turns them into exits."""

from __future__ import annotations


class LinlyPushError(Exception):
    """Base of every error linly-push reports to a user. The message is one line, secrets masked."""

    exit_code = 1


class UsageError(LinlyPushError):
    """A bad flag or value, unknown preset or backend, an invalid preset file, no input."""

    exit_code = 2


class InputError(LinlyPushError):
    """A script or audio file that is missing, unreadable, empty, undecodable, not UTF-8 or too
    large."""

    exit_code = 3


class BackendError(LinlyPushError):
    """A TTS or avatar backend failed."""

    exit_code = 4


class OutputError(LinlyPushError):
    """FFmpeg failed or the destination could not be reached."""

    exit_code = 5


class Refused(OutputError):
    """The destination answered, and said no for good (a WHIP endpoint's 401, 403 or 404): a retry
    would get the same answer, so it is not retried."""


class CheckFailed(LinlyPushError):
    """A stream or file did not meet what was expected of it (``probe --expect``)."""

    exit_code = 6


class Incomplete(LinlyPushError):
    """The show went out to the end, but a recording or a destination did not get all of it."""

    exit_code = 7


class Interrupted(LinlyPushError):
    """The user stopped the run (Ctrl-C, SIGINT). Every signal that stops a run is one of these,
    with exit code 128 + the signal's number."""

    exit_code = 130
    label = "interrupted"


class Terminated(Interrupted):
    """The run was stopped by SIGTERM (systemd, a supervisor, kill)."""

    exit_code = 143
    label = "terminated"


class Signalled(Interrupted):
    """The run was stopped by another signal: SIGHUP (the terminal or SSH session closed),
    SIGQUIT, SIGUSR1, ..."""

    label = "stopped"

    def __init__(self, signum: int, message: str) -> None:
        import signal

        super().__init__(message)
        self.exit_code = 128 + signum
        self.signal = signal.Signals(signum).name


EXIT_CODES = {
    0: "done",
    UsageError.exit_code: "usage: bad flag or value, unknown preset or backend, invalid preset or rundown file, a start time in the past, no input",
    InputError.exit_code: "bad input: script, audio or probed file missing, unreadable, empty, undecodable, not UTF-8, too large",
    BackendError.exit_code: "a TTS or avatar backend failed",
    OutputError.exit_code: "output failed: ffmpeg error, server unreachable, an output or recording file that cannot be written",
    CheckFailed.exit_code: "check failed: a probed stream or file does not match what --expect asked for",
    Incomplete.exit_code: "partial: the show went out, but a recording or a destination did not get all of it",
    129: "stopped by SIGHUP (terminal or SSH session closed)",
    Interrupted.exit_code: "interrupted (Ctrl-C, SIGINT)",
    Terminated.exit_code: "terminated (SIGTERM)",
}


class LinlyPushWarning(UserWarning):
    """Something works, but not as well as it could: a backend running on a fallback, say. Raised
    with ``warnings.warn``, so the run goes on and the CLI reports it."""
