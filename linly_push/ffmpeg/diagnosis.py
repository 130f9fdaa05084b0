"""Reading what ffmpeg says: its log on stderr (each line's level, the line that says what
failed, a hint for people, which of a tee's destinations are up) and its -progress reports.

Nothing here runs ffmpeg: the sink and the preflight checks hand in what it wrote.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .. import urls
from ..limits import open_files_limit
from .argv import tee_order
from .binary import ENV_VAR

# ffmpeg's closing summaries and the tee's echoes of a failure (a line before them says what
# actually went wrong), and its note that we write faster than it encodes, which is
# back-pressure working, not a fault.
_GENERIC = re.compile(
    r"^(Conversion failed!|Exiting normally|Error opening output files?\b|Last message repeated"
    r"|Terminating thread with return code|Task finished with error code|Nothing was written"
    r"|Thread message queue blocking|Slave muxer #\d+ failed, aborting|Could not write header"
    r"|Error initializing output stream|Error sending frames to consumers|Error muxing a packet"
    r"|Failed to request url=)"  # the WHIP muxer's; the HTTP or TCP line before it says why
)
# The WHIP muxer logs its whole SDP offer after an error: lines of "x=..." without a level.
_SDP = re.compile(r"^[a-z]=")


def is_sdp(level: str | None, message: str) -> bool:
    """Whether a line of ffmpeg's log is part of an SDP dump (no use to people reading errors)."""
    return level is None and bool(_SDP.match(message))
_PREFIX = re.compile(r"^(\[[^\]]+ @ (0x)?[0-9a-fA-F]+\]\s*)+")
_LEVEL_TAG = re.compile(r"^\[(quiet|panic|fatal|error|warning|info|verbose|debug|trace)\] ")
_LOGGED = re.compile(r"^((?:\[[^\]]+ @ (?:0x)?[0-9a-fA-F]+\] )*)\[(panic|fatal|error|warning|info|verbose|debug|trace)\] ?(.*)$")
# The levels kept for people (the sink's stderr tail); the rest is read, not shown.
FOR_PEOPLE = {"panic", "fatal", "error", "warning"}


def parse_log_line(line: str) -> tuple[str | None, str, str]:
    """(level, context tags, message) of one line of ffmpeg's log with ``level`` flags; level
    None for a line printed without one (the rest of a message of several lines, or a library
    writing to stderr itself)."""
    m = _LOGGED.match(line)
    if m is None:
        return None, "", line
    return m.group(2), m.group(1), m.group(3)


_SLAVE = re.compile(r"^Slave '\[[^\]]*\](.*)': ")  # the tee names an output with its options


# ffmpeg's words for an HTTP error status (a WHIP endpoint's answer): "Server returned 404 Not
# Found", or for a status it has no name for, "Server returned 5XX Server Error reply".
_HTTP_STATUS = re.compile(r"Server returned (\d\d\d|[45]XX) ([^()\n]*?)(?: \(|\)|$)", re.MULTILINE)
# Statuses that a retry would get again: the request itself is wrong (a 408 or 429 may pass).
FINAL_STATUSES = {400, 401, 403, 404, 405, 410, 415}


def http_status(text: str) -> tuple[str, str] | None:
    """The HTTP status (``"401"``, or ``"5XX"`` when ffmpeg does not say which) and its reason,
    when ffmpeg says the server answered one."""
    m = _HTTP_STATUS.search(text)
    return (m.group(1), m.group(2).strip()) if m else None


def last_error(lines: Iterable[str]) -> str | None:
    """The last line of ffmpeg's stderr that says what failed, without its ``[muxer @ 0x..]`` tag
    (and, for an output of the tee, without the tee's options); an HTTP server's answer, where
    there is one, as that."""
    lines = list(lines)
    if status := http_status("\n".join(lines)):
        code, reason = status
        return f"the server answered an error ({code.lower()})" if code.endswith("XX") else f"the server answered {code} {reason}".rstrip()
    for line in reversed([_PREFIX.sub("", ln).strip() for ln in lines]):
        if line and not _GENERIC.match(line):
            return _SLAVE.sub(r"\1: ", line)
    return None


def dry_run_error(stderr: str) -> str | None:
    """The line of a dry run's stderr (``check_argv``) that says why the encoder refused, without
    tags, levels or x264's prefix; None when it says nothing but ffmpeg's summaries."""
    lines = [_LEVEL_TAG.sub("", _PREFIX.sub("", ln)).strip() for ln in stderr.splitlines()]
    lines = [ln.removeprefix("x264 [error]: ") for ln in lines if ln]
    return next((ln for ln in lines if not _GENERIC.match(ln) and not ln.startswith("Error initializing")), None)


def hint(
    text: str, output: str | Sequence[str], show: Callable[[str], str] = urls.mask, *, token: bool = False,
) -> str | None:
    """A suggestion for a failure whose stderr is ``text``, writing to ``output`` (one or several).

    With several, the hint is about the one ``text`` names (masked or not), else the first URL.
    ``show`` is how to name an output (masked); ``token``: whether a WHIP token was sent.
    """
    outputs = (output,) if isinstance(output, str) else tuple(output)
    named = [o for o in outputs if o in text or show(o) in text]
    output = (named or [o for o in outputs if urls.kind(o) != "file"] or list(outputs))[0]
    where = show(output)
    if urls.kind(output) == "whip" and (status := http_status(text)):
        return _whip_hint(status[0], where, token)
    if "Connection refused" in text or re.search(r"Connection to \S+ failed", text):  # SRT says only that
        return f"is the server at {where} running?"
    if "timed out" in text.lower():
        return f"no answer from {where}; check the host, port and any firewall"
    if "resolve" in text or "Name or service not known" in text:
        return f"cannot find the host of {where}; check the URL"
    if "Protocol not found" in text:
        return f"this ffmpeg cannot send to {where}; set {ENV_VAR} to a build with that protocol"
    if "Already publishing" in text:  # nginx-rtmp; it lets an old session go after its timeout
        return (
            f"the server says {where} is already being published: by another encoder,"
            " or by an earlier connection it still holds"
        )
    if urls.kind(output) != "file" and any(s in text for s in ("Broken pipe", "reset by peer", "Input/output error")):
        return "the server closed the connection: did it stop, or refuse the stream key?"
    if urls.kind(output) == "file":
        return file_hint(text, Path(output))
    return None


def _whip_hint(status: str, where: str, token: bool) -> str:
    if status in ("401", "403") and token:
        return f"the WHIP endpoint at {where} refused the token: check the one whip.token_env names"
    if status in ("401", "403"):
        return (
            f"the WHIP endpoint at {where} wants a token: put it in an environment variable and"
            " name that with --set whip.token_env=NAME"
        )
    if status == "404":
        return (
            f"there is no WHIP endpoint at {where}: check the URL (SRS: /rtc/v1/whip/?app=APP&stream=NAME;"
            " mediamtx: /NAME/whip) and that the server has WebRTC enabled"
        )
    if status.startswith("5"):
        return f"the WHIP endpoint at {where} failed on its side; check its log"
    return f"the WHIP endpoint at {where} refused the offer"


def refused(text: str) -> bool:
    """Whether ffmpeg's log says a server refused in a way a retry would not change."""
    status = http_status(text)
    return status is not None and status[0].isdigit() and int(status[0]) in FINAL_STATUSES


def file_hint(text: str, path: Path) -> str | None:
    """What to do about writing ``path`` failing with ``text`` (an OS error or ffmpeg's words)."""
    if "No space left" in text or "quota exceeded" in text.lower():
        return f"the disk holding {path} is full ({_free(path.parent)} free): make room, or write elsewhere"
    if "Read-only file system" in text:
        return f"{path.parent} is on a read-only file system: write elsewhere"
    if "Permission denied" in text or "Operation not permitted" in text:
        return f"no permission to write in {path.parent}"
    if "No such file" in text or "Not a directory" in text:
        return f"check that the folder of {path} exists and is writable"
    return None


def start_error(exc: OSError) -> str:
    """Why ffmpeg could not be started (``exc``, from making its pipes or its process), and what
    to do about it."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EMFILE:
        return (f"{reason} (this process may have {open_files_limit()} open: raise the limit with LimitNOFILE="
                f" in its systemd unit or ulimit -n, or see what holds them in /proc/{os.getpid()}/fd)")
    if exc.errno == errno.ENFILE:
        return f"{reason} (the system's table of open files is full: see which process holds them, or raise fs.file-max)"
    if exc.errno in (errno.ENOMEM, errno.EAGAIN):
        return f"{reason} (the machine is out of memory or processes: free some)"
    if exc.errno in (errno.ENOENT, errno.EACCES, errno.ENOEXEC):
        return f"{reason} (has ffmpeg been removed or replaced? {ENV_VAR} picks one)"
    return reason


def _free(folder: Path) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown space"
    return next(f"{free / 1024**i:.3g} {unit}" for i, unit in ((3, "GB"), (2, "MB"), (1, "kB"), (0, "bytes")) if free >= 1024**i or i == 0)


State = Literal["down", "up", "failed"]


@dataclass(frozen=True)
class Change:
    """A destination of a tee that went down (its fifo reconnects), came back up, or failed for
    good (a recording the tee gave up on). ``output`` as given to the sink; ``reason`` from
    ffmpeg's log, not yet redacted."""

    output: str
    state: State
    reason: str | None = None


_SLAVE_FAILED = re.compile(r"^Slave muxer #(\d+) failed: (.+?), continuing with \d+/\d+ slaves")
_FIFO = re.compile(r"\[fifo @ ((?:0x)?[0-9a-fA-F]+)\] $")


class Watch:
    """Which of a tee's outputs are up, read from ffmpeg's log (``parse_log_line`` parts).

    The tee names a failed output by its number (``tee_order``); a fifo names its URL when it
    cannot (re)open it, and says "Recovery successful" under its own address once it is back.
    With one output there is no tee: its failure ends ffmpeg, which the sink reports itself.
    """

    def __init__(self, outputs: Sequence[str]) -> None:
        self.order = tee_order(outputs) if len(outputs) > 1 else []
        self.state: dict[str, State] = {o: "up" for o in self.order}
        self._fifos: dict[str, str] = {}  # a fifo's address in the log -> its URL

    def feed(self, tags: str, message: str) -> Change | None:
        if not self.order:
            return None
        if m := _SLAVE_FAILED.match(message):
            index = int(m.group(1))
            return self._set(self.order[index], "failed", m.group(2)) if index < len(self.order) else None
        fifo = _FIFO.search(tags)
        if fifo is None:
            return None
        if message.startswith("Error opening "):
            rest = message.removeprefix("Error opening ")
            # The longest match: one URL may be the start of another.
            for output in sorted(self.order, key=len, reverse=True):
                if rest.startswith(output + ": "):
                    self._fifos[fifo.group(1)] = output
                    return self._set(output, "down", rest[len(output) + 2 :])
            return None
        if message.startswith("Recovery successful") and fifo.group(1) in self._fifos:
            return self._set(self._fifos[fifo.group(1)], "up", None)
        return None

    def _set(self, output: str, state: State, reason: str | None) -> Change | None:
        if self.state.get(output) in (state, "failed"):
            return None  # no news; a failed output stays failed
        self.state[output] = state
        return Change(output, state, reason)


@dataclass(frozen=True)
class Progress:
    """ffmpeg's latest -progress report."""

    frame: int
    fps: float
    total_size: int  # bytes written so far
    out_time: float  # seconds of output
    bitrate_kbps: float | None
    speed: float | None  # x realtime
    done: bool  # ffmpeg said progress=end

    def moved(self, before: Progress) -> bool:
        """Whether this report shows ffmpeg got further than ``before`` did (a watchdog's test)."""
        return (self.frame, self.total_size, self.out_time) != (before.frame, before.total_size, before.out_time)


def progress_reports(lines: Iterable[bytes]) -> Iterator[Progress]:
    """Each report in ffmpeg's ``-progress`` output (key=value lines), once its last line is read."""
    fields: dict[str, str] = {}
    for raw in lines:
        key, _, value = raw.decode("utf-8", "replace").strip().partition("=")
        fields[key] = value
        if key == "progress":  # the last key of each report
            yield _progress(fields)
            fields = {}


def _number(text: str | None) -> float | None:
    m = re.match(r"\s*([0-9.]+)", text or "")
    return float(m.group(1)) if m else None


def _progress(fields: dict[str, str]) -> Progress:
    return Progress(
        frame=int(_number(fields.get("frame")) or 0),
        fps=_number(fields.get("fps")) or 0.0,
        total_size=int(_number(fields.get("total_size")) or 0),
        out_time=(_number(fields.get("out_time_us")) or 0.0) / 1e6,
        bitrate_kbps=_number(fields.get("bitrate")),
        speed=_number(fields.get("speed")),
        done=fields.get("progress") == "end",
    )
