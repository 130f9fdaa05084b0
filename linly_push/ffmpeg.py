"""FFmpeg: finding the binary, building its command line (pure), and running it as the sink.

Several outputs (URLs, recordings) share one encode through ffmpeg's tee muxer (``tee_spec``).
Raw yuv420p frames and s16le audio go to ffmpeg over two pipes (``pass_fds``), each fed by its
own writer thread from a bounded queue: a slow encoder or network pushes back on the producer,
and ffmpeg, which reads its inputs in parallel, never waits on one pipe while we block on the
other. Closing both pipes (EOF) is how a stream ends: ffmpeg flushes and writes the trailer.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import os
import queue
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import ffmpeg as ffmpeg_python
import numpy as np

from . import urls
from .errors import OutputError, UsageError
from .presets import AudioSettings, VideoSettings

ENV_VAR = "LINLY_PUSH_FFMPEG"
REQUIRED_ENCODERS = ("libx264", "aac")
# File outputs: extension -> muxer. MP4 and MOV get +faststart (index moved to the front).
FILE_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".flv": "flv", ".ts": "mpegts"}
LIVE_TIMEOUT_US = 5_000_000  # a server that stops reading fails the write after 5 s, not never
FIFO_SECONDS = 2  # fan-out: how far (in packets) a destination may fall behind before some are dropped
AAC_FRAME = 1024  # samples per AAC packet
RECORD_CLUSTER_MS = 1000


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


def encode_options(video: VideoSettings, audio: AudioSettings) -> dict[str, object]:
    """The encoders and their settings, as ffmpeg output options: the same for every output."""
    opts: dict[str, object] = {
        "c:v": "libx264",
        "preset": video.x264_preset,
        "pix_fmt": "yuv420p",
        "b:v": video.bitrate,
        "g": video.gop,
        "keyint_min": video.fps,
        "sc_threshold": 0,  # keyframes only on the GOP grid, as platforms expect
        "c:a": "aac",
        "aac_coder": audio.aac_coder,
        "b:a": audio.bitrate,
        "ar": audio.sample_rate,
        "ac": audio.channels,
    }
    if video.tune:
        opts["tune"] = video.tune
    if video.maxrate:
        opts["maxrate"] = video.maxrate
    if video.bufsize:
        opts["bufsize"] = video.bufsize
    if video.cbr:
        opts["x264-params"] = "nal-hrd=cbr"  # filler keeps the rate flat; needs maxrate and bufsize
    return opts


# Every line of ffmpeg's log carries its level ("[error]"): the sink keeps warnings and errors for
# people, and reads the fifo's verbose notes on reconnecting destinations (see ``Watch``).
LOG_LEVEL = "level+verbose"


def build_argv(
    ffmpeg: str,
    video: VideoSettings,
    audio: AudioSettings,
    output: str | Sequence[str],
    *,
    video_fd: int,
    audio_fd: int,
) -> list[str]:
    """The ffmpeg command line reading raw video from ``video_fd`` and audio from ``audio_fd``.

    ``output`` is one destination (a file, or an rtmp/rtmps/srt URL) or several: several are
    fed from one encode through the tee muxer (see ``tee_spec``).
    Raw inputs carry no timestamps: frame n is at n/fps and audio at its sample count, both from 0,
    so the stream stays in sync exactly as long as we feed audio and frames in step.
    Progress comes as key=value lines on stdout; the log, each line with its level, on stderr.
    """
    outputs = destinations(output)
    raw = {"probesize": 32, "analyzeduration": 0}  # raw needs no probing; probing would stall
    # Frames come as BT.709 limited range (linly_push.video). Tagged on the input, so the tags
    # reach the encoder on every ffmpeg (9.x drops output-side primaries and transfer).
    bt709 = {"colorspace": "bt709", "color_primaries": "bt709", "color_trc": "bt709", "color_range": "tv"}
    v_in = ffmpeg_python.input(
        f"pipe:{video_fd}",
        f="rawvideo",
        pix_fmt="yuv420p",
        s=f"{video.width}x{video.height}",
        r=video.fps,
        **bt709,
        **raw,
    )
    layout = "mono" if audio.channels == 1 else "stereo"  # -ac alone makes ffmpeg guess, and warn
    a_in = ffmpeg_python.input(f"pipe:{audio_fd}", f="s16le", ar=audio.sample_rate, ch_layout=layout, **raw)
    opts = encode_options(video, audio)
    if len(outputs) == 1:
        target = outputs[0]
        opts.update(_muxer_options(target))
    else:
        # MP4, MKV and FLV want the codec headers out of band; the tee hands one encode to all.
        opts.update(f="tee", flags="+global_header")
        target = tee_spec(outputs, video, audio)
    out = ffmpeg_python.output(v_in.video, a_in.audio, target, **opts)
    head = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", LOG_LEVEL, "-nostats", "-progress", "pipe:1"]
    files = any(urls.kind(o) == "file" for o in outputs)
    return head + (["-y"] if files else []) + ffmpeg_python.get_args(out)


def check_argv(ffmpeg: str, video: VideoSettings, audio: AudioSettings) -> list[str]:
    """A dry run of the encoders with ``video`` and ``audio``: a few frames of a test pattern and
    silence, encoded and thrown away (``-f null``)."""
    size, layout = f"{video.width}x{video.height}", "mono" if audio.channels == 1 else "stereo"
    v_in = ffmpeg_python.input(f"color=black:s={size}:r={video.fps}", f="lavfi")
    a_in = ffmpeg_python.input(f"anullsrc=r={audio.sample_rate}:cl={layout}", f="lavfi")
    out = ffmpeg_python.output(v_in.video, a_in.audio, "-", f="null", t=0.2, **encode_options(video, audio))
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "level+error", "-nostats", *ffmpeg_python.get_args(out)]


@functools.cache
def _dry_run(argv: tuple[str, ...]) -> tuple[int, str]:
    try:
        run = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return -1, str(exc)
    return run.returncode, run.stderr


# Settings a dry run's error may name, by the value ffmpeg quotes back.
def _settings(video: VideoSettings, audio: AudioSettings) -> list[tuple[str, str]]:
    named = [(f"video.{k}", v) for k, v in video.model_dump().items()] + [(f"audio.{k}", v) for k, v in audio.model_dump().items()]
    return [(k, str(v)) for k, v in named if isinstance(v, str) and v]


def check_encoder(ffmpeg: str, video: VideoSettings, audio: AudioSettings) -> None:
    """UsageError naming the setting when the ffmpeg that will run rejects the encoder settings
    (an unknown x264 tune, a bit rate it cannot parse): found before anything goes on air, not
    as a connection that keeps failing. Each set of settings is tried once per process."""
    code, stderr = _dry_run(tuple(check_argv(ffmpeg, video, audio)))
    if code == 0 or "lavfi" in stderr:
        return  # fine, or a build without the test sources: the real run will tell
    lines = [_LEVEL_TAG.sub("", _PREFIX.sub("", ln)).strip() for ln in stderr.splitlines()]
    lines = [ln.removeprefix("x264 [error]: ") for ln in lines if ln]
    reason = next((ln for ln in lines if not _GENERIC.match(ln) and not ln.startswith("Error initializing")), None)
    reason = reason or f"it exited with code {code}"
    quoted = ("'{}'", '"{}"', " {}.", "{}/", "/{}.")
    named = [k for k, v in _settings(video, audio) if any(q.format(v) in reason for q in quoted)]
    # Two settings may share a value ("fast"): the one whose name the message uses is meant.
    named = [k for k in named if k.split(".")[1].split("_")[-1] in reason] or named
    which = f" (check {', '.join(named)})" if named else " (check the preset's [video] and [audio] settings)"
    raise UsageError(f"ffmpeg cannot encode with these settings: {reason}{which}")


def destinations(output: str | Sequence[str]) -> tuple[str, ...]:
    """``output`` as a tuple of destinations, each checked: a known scheme or file extension, none twice."""
    outputs = (output,) if isinstance(output, str) else tuple(output)
    if not outputs:
        raise UsageError("no output given")
    for i, target in enumerate(outputs):
        _muxer_options(target)
        if target in outputs[:i]:
            raise UsageError(f"{urls.mask(target)!r} is given twice as an output")
    return outputs


def _muxer_options(target: str) -> dict[str, object]:
    """The container and its options for one destination."""
    kind = urls.kind(target)
    if kind == "rtmp":
        return {"f": "flv", "flvflags": "no_duration_filesize", "rw_timeout": LIVE_TIMEOUT_US}
    if kind == "srt":
        return {"f": "mpegts", "rw_timeout": LIVE_TIMEOUT_US}
    ext = Path(target).suffix.lower()
    if ext not in FILE_FORMATS:
        raise UsageError(f"cannot tell the container of {target!r}: use one of {', '.join(FILE_FORMATS)}")
    muxer = FILE_FORMATS[ext]
    return {"f": muxer, "movflags": "+faststart"} if muxer in ("mp4", "mov") else {"f": muxer}


# The tee muxer parses its argument twice: the list is split at '|' (av_get_token: backslash
# escapes, single quotes), then each "[key=value:...]" list is split at ':' and ']' the same way;
# the file name after ']' is not unescaped again. fifo_options is split a third time, at ':'.
_LIST_SPECIAL = "\\'|"
_OPTION_SPECIAL = "\\':]"


def _escape(text: str, special: str) -> str:
    return "".join(f"\\{c}" if c in special or c.isspace() else c for c in text)


def fifo_options(video: VideoSettings, audio: AudioSettings) -> dict[str, object]:
    """The fifo in front of each destination of a fan-out: it reconnects every second, dropping
    what it cannot send meanwhile (restarting on a keyframe), and holds ``FIFO_SECONDS`` of packets.

    A small queue also keeps the end short: after EOF, a fifo whose destination is down drops
    its queue at about 100 packets a second between connection attempts.
    """
    packets_per_second = video.fps + audio.sample_rate / AAC_FRAME
    return {
        "attempt_recovery": 1,
        "recover_any_error": 1,
        "recovery_wait_time": 1,
        "restart_with_keyframe": 1,
        "drop_pkts_on_overflow": 1,
        "queue_size": math.ceil(FIFO_SECONDS * packets_per_second),
    }


def tee_slave(target: str, options: dict[str, object]) -> str:
    """One entry of a tee list, escaped: ``[key=value:...]target``."""
    listed = ":".join(f"{key}={_escape(str(value), _OPTION_SPECIAL)}" for key, value in options.items())
    return _escape(f"[{listed}]{target}", _LIST_SPECIAL)


def tee_order(outputs: Sequence[str]) -> list[str]:
    """The tee's outputs in the order it numbers them: files first, then URLs, each as given."""
    return sorted(outputs, key=lambda t: urls.kind(t) != "file")


def tee_spec(outputs: Sequence[str], video: VideoSettings, audio: AudioSettings) -> str:
    """The tee muxer's argument for several destinations: files first, then URLs, each in order.

    At the end ffmpeg closes them in that order, so the recordings are complete even while a
    stalled destination is still timing out.

    - Two or more URLs: each behind its own fifo with ``onfail=ignore``: one that fails or
      stalls (``rw_timeout``) is retried every second while the others go on.
    - One URL: ``onfail=abort``, no fifo: losing it ends ffmpeg (exit code not 0), so the caller
      can restart and resume. (ffmpeg 5.1 carries on without a failed output, at its opening or
      later, unless onfail=abort is written out.)
    - Files: ``onfail=ignore`` beside any URL (a full disk does not end the broadcast: ``Watch``
      reports it), else ``onfail=abort``.
    """
    live = [t for t in outputs if urls.kind(t) != "file"]
    fifo = ":".join(f"{k}={v}" for k, v in fifo_options(video, audio).items())
    slaves = []
    for target in tee_order(outputs):
        muxer = _muxer_options(target)
        options: dict[str, object] = {"f": muxer.pop("f")}
        if urls.kind(target) == "file":
            options["onfail"] = "ignore" if live else "abort"
            if live and options["f"] == "matroska":
                # A cluster a second, not five: a full disk shows within a second, and a crash
                # loses at most that much of the recording.
                options["cluster_time_limit"] = RECORD_CLUSTER_MS
        elif len(live) == 1:
            options["onfail"] = "abort"
        else:
            options.update(onfail="ignore", use_fifo=1, fifo_options=fifo)
        options.update(muxer)  # the tee (or the fifo) hands rw_timeout to the connection, the rest to the muxer
        slaves.append(tee_slave(target, options))
    return "|".join(slaves)


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


def _moved(before: Progress, after: Progress) -> bool:
    return (after.frame, after.total_size, after.out_time) != (before.frame, before.total_size, before.out_time)


# ffmpeg's closing summaries and the tee's echoes of a failure (a line before them says what
# actually went wrong), and its note that we write faster than it encodes, which is
# back-pressure working, not a fault.
_GENERIC = re.compile(
    r"^(Conversion failed!|Exiting normally|Error opening output files?\b|Last message repeated"
    r"|Terminating thread with return code|Task finished with error code|Nothing was written"
    r"|Thread message queue blocking|Slave muxer #\d+ failed, aborting|Could not write header"
    r"|Error initializing output stream|Error sending frames to consumers|Error muxing a packet)"
)
_PREFIX = re.compile(r"^(\[[^\]]+ @ (0x)?[0-9a-fA-F]+\]\s*)+")
_LEVEL_TAG = re.compile(r"^\[(quiet|panic|fatal|error|warning|info|verbose|debug|trace)\] ")
_LOGGED = re.compile(r"^((?:\[[^\]]+ @ (?:0x)?[0-9a-fA-F]+\] )*)\[(panic|fatal|error|warning|info|verbose|debug|trace)\] ?(.*)$")
_FOR_PEOPLE = {"panic", "fatal", "error", "warning"}


def parse_log_line(line: str) -> tuple[str | None, str, str]:
    """(level, context tags, message) of one line of ffmpeg's log with ``level`` flags; level
    None for a line printed without one (the rest of a message of several lines, or a library
    writing to stderr itself)."""
    m = _LOGGED.match(line)
    if m is None:
        return None, "", line
    return m.group(2), m.group(1), m.group(3)
_SLAVE = re.compile(r"^Slave '\[[^\]]*\](.*)': ")  # the tee names an output with its options


def last_error(lines: Iterable[str]) -> str | None:
    """The last line of ffmpeg's stderr that says what failed, without its ``[muxer @ 0x..]`` tag
    (and, for an output of the tee, without the tee's options)."""
    for line in reversed([_PREFIX.sub("", ln).strip() for ln in lines]):
        if line and not _GENERIC.match(line):
            return _SLAVE.sub(r"\1: ", line)
    return None


def hint(text: str, output: str | Sequence[str], show: Callable[[str], str] = urls.mask) -> str | None:
    """A suggestion for a failure whose stderr is ``text``, writing to ``output`` (one or several).

    With several, the hint is about the one ``text`` names (masked or not), else the first URL.
    ``show`` is how to name an output (masked).
    """
    outputs = (output,) if isinstance(output, str) else tuple(output)
    named = [o for o in outputs if o in text or show(o) in text]
    output = (named or [o for o in outputs if urls.kind(o) != "file"] or list(outputs))[0]
    where = show(output)
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


def _free(folder: Path) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown space"
    return next(f"{free / 1024**i:.3g} {unit}" for i, unit in ((3, "GB"), (2, "MB"), (1, "kB"), (0, "bytes")) if free >= 1024**i or i == 0)


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


_EOF = None  # end of a pipe's queue


def _daemon(target: Callable[..., None], name: str, *args: object) -> threading.Thread:
    return threading.Thread(target=target, args=args, name=f"ffmpeg-{name}", daemon=True)


class FFmpegSink:
    """Runs ffmpeg encoding what ``write`` is given to ``output``: a file or rtmp/srt URL, or a
    sequence of them, fed from one encode (see ``tee_spec`` for what fails when one fails).

    Everything the sink reports is scrubbed by ``redactor`` (by default, of each output's key
    parts). Destinations of a tee that go down, come back or fail for good are queued as
    ``Change``s for ``changes()``.
    """

    def __init__(
        self,
        video: VideoSettings,
        audio: AudioSettings,
        output: str | Sequence[str],
        *,
        ffmpeg: str | None = None,  # a binary to run as is; find_ffmpeg() by default
        redactor: urls.Redactor | None = None,
        queue_seconds: float = 1.0,
        stall_seconds: float = 30.0,
        stderr_lines: int = 50,
    ) -> None:
        self.video, self.audio, self.output = video, audio, output
        self.outputs = destinations(output)  # checked here, so a bad output fails before any process
        self.frame_bytes = video.width * video.height * 3 // 2
        self._ffmpeg = ffmpeg
        self._redactor = redactor or urls.Redactor(urls.Target.plain(o) for o in self.outputs)
        self._watch = Watch(self.outputs)
        self._changes: queue.SimpleQueue[Change] = queue.SimpleQueue()
        # Video may wait in memory for about ``queue_seconds``; audio (small) for ten times as
        # long. ffmpeg reads its inputs in whatever order its encoders need: x264's lookahead
        # takes seconds of video before any audio, an AAC encoder at a low sample rate wants
        # audio frames ahead of the video. Each queue must cover the other's lead, or the two
        # processes wait on each other for ever.
        self._queue_sizes = (max(8, math.ceil(queue_seconds * video.fps)), max(80, math.ceil(10 * queue_seconds * video.fps)))
        self._stall = stall_seconds
        self._stderr: deque[str] = deque(maxlen=stderr_lines)
        self._stderr_lock = threading.Lock()  # the reader thread appends while others copy
        self._argv = build_argv(ffmpeg or "ffmpeg", video, audio, self.outputs, video_fd=3, audio_fd=4)
        self._proc: subprocess.Popen[bytes] | None = None
        self._queues: list[queue.Queue[bytes | None]] = []
        self._writers: list[threading.Thread] = []
        self._readers: list[threading.Thread] = []
        self._write_error: OSError | None = None  # set by a writer thread
        self._error: OutputError | None = None  # how ffmpeg failed, once it has
        self._closed = False
        self.progress: Progress | None = None
        # time.monotonic() of the last report that differed from the one before (of start() until
        # the first): a watchdog's clock. ffmpeg reports twice a second while it runs.
        self.last_progress = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FFmpegSink:
        if self._proc is not None:
            raise RuntimeError("FFmpegSink already started")
        binary = self._ffmpeg or find_ffmpeg().path
        (vr, vw), (ar, aw) = os.pipe(), os.pipe()
        self._argv = build_argv(binary, self.video, self.audio, self.outputs, video_fd=vr, audio_fd=ar)
        self.last_progress = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                self._argv,
                pass_fds=(vr, ar),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Its own session: a Ctrl-C in the terminal reaches only us, and we end the
                # stream with an EOF so the trailer is written, instead of ffmpeg dying mid-write.
                start_new_session=True,
            )
        except OSError as exc:
            for fd in (vw, aw):
                os.close(fd)
            raise OutputError(self._redact(f"cannot start ffmpeg ({binary}): {exc}")) from None
        finally:
            os.close(vr)  # the child holds the read ends now
            os.close(ar)
        self._queues = [queue.Queue(size) for size in self._queue_sizes]
        self._writers = [
            _daemon(self._write_loop, "video", vw, self._queues[0]),
            _daemon(self._write_loop, "audio", aw, self._queues[1]),
        ]
        self._readers = [
            _daemon(self._read_stderr, "stderr", self._proc.stderr),
            _daemon(self._read_progress, "progress", self._proc.stdout),
        ]
        for t in (*self._writers, *self._readers):
            t.start()
        return self

    def write(
        self,
        frame: bytes | bytearray | memoryview | np.ndarray | None,
        audio: np.ndarray | None,
    ) -> None:
        """Queue one frame (yuv420p, ``frame_bytes`` long) and audio (int16, (k, channels)).

        A frame given as an ndarray is sent without a copy: do not change it afterwards.
        Blocks while ffmpeg is behind. Either may be None or empty. Raises OutputError once
        ffmpeg has stopped, or when it has read nothing for ``stall_seconds``.
        """
        self.check()
        if self._closed:
            raise RuntimeError("FFmpegSink is closed")
        video, audio_data = self._frame_data(frame), self._audio_data(audio)
        # Audio first: it is what ffmpeg most often needs ahead of the video.
        for q, data in ((self._queues[1], audio_data), (self._queues[0], video)):
            if len(data):
                self._put(q, data)

    def close(self, timeout: float | None = None) -> None:
        """End the stream: EOF on both pipes, then wait for ffmpeg to finish writing.

        Raises OutputError if ffmpeg fails or does not finish within ``timeout`` seconds
        (default: 30 s with a server among the outputs; no limit for files alone, whose trailers
        may take long to write).
        """
        proc = self._started()
        if self._error is not None:
            raise self._error
        if self._closed:
            return
        self._closed = True
        if timeout is None and any(urls.kind(o) != "file" for o in self.outputs):
            timeout = 30.0
        for q in self._queues:
            self._put(q, _EOF, live=False)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.abort()
            self._error = OutputError(f"ffmpeg did not finish within {timeout:g} s of the stream's end; stopped it")
            raise self._error from None
        self._join()
        if proc.returncode != 0:
            self._error = self._failure()
            raise self._error

    def abort(self) -> None:
        """Stop ffmpeg at once (the output may lack its trailer)."""
        if self._proc is None:
            return
        self._closed = True
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._join()

    def check(self) -> None:
        """Raise OutputError if ffmpeg has stopped before the stream was closed."""
        proc = self._started()
        if self._error is not None:
            raise self._error
        if self._closed or (proc.poll() is None and self._write_error is None):
            return
        try:
            proc.wait(5)  # a write failed: ffmpeg is on its way out; wait for its last words
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._closed = True
        self._join()
        self._error = self._failure()
        raise self._error

    def __enter__(self) -> FFmpegSink:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- reporting ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True once ffmpeg reports media muxed into its output(s); stays True.

        That is ``total_size`` above 0, or for the tee, which reports no size, ``frame`` and
        ``out_time`` above 0 (ffmpeg 9 reports the time of what it encoded even when it could not
        open the output, but counts only frames muxed).

        ffmpeg muxes nothing before the outputs it depends on are open, so with one URL, or one
        URL beside record files, this means the server accepted the stream. With two or more
        URLs, each connects (and reconnects) behind its own fifo: True then means ffmpeg is
        encoding, and which of them are up shows only in ffmpeg's messages.
        """
        p = self.progress
        return p is not None and (p.total_size > 0 or (p.frame > 0 and p.out_time > 0))

    @property
    def returncode(self) -> int | None:
        """ffmpeg's exit status (negative: killed by that signal); None while it runs."""
        return None if self._proc is None else self._proc.poll()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def command_line(self) -> str:
        """The ffmpeg command, secrets masked, for --debug."""
        return self._redact(shlex.join(self._argv))

    def changes(self) -> list[Change]:
        """The destinations that went down, came back or failed since the last call; reasons
        redacted."""
        found = []
        with contextlib.suppress(queue.Empty):
            while True:
                found.append(self._changes.get_nowait())
        return found

    @property
    def bitrate_kbps(self) -> float | None:
        """The output bit rate so far: ffmpeg's, or where it reports none (the tee), that of a
        file among the outputs, from its size on disk."""
        p = self.progress
        if p is None or p.bitrate_kbps is not None or p.out_time <= 0:
            return p.bitrate_kbps if p else None
        for output in self.outputs:
            if urls.kind(output) == "file" and self._watch.state.get(output) != "failed":
                with contextlib.suppress(OSError):
                    return round(os.stat(output).st_size * 8 / p.out_time / 1000, 1)
        return None

    def show(self, output: str) -> str:
        """How to name one of the outputs to people."""
        return self._redactor.show(output)

    def stderr_tail(self) -> list[str]:
        """ffmpeg's last stderr lines, secrets masked."""
        with self._stderr_lock:
            return list(self._stderr)

    # -- internals ---------------------------------------------------------------------------

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError("FFmpegSink not started")
        return self._proc

    def _redact(self, text: str) -> str:
        return self._redactor(text)

    def _frame_data(self, frame: bytes | bytearray | memoryview | np.ndarray | None) -> bytes | memoryview:
        if frame is None:
            return b""
        if isinstance(frame, np.ndarray):
            if frame.dtype != np.uint8:
                raise ValueError(f"frames must be uint8 yuv420p, not {frame.dtype}")
            data: bytes | memoryview = memoryview(np.ascontiguousarray(frame).reshape(-1))
        else:
            data = bytes(frame)  # a copy: callers may reuse a bytearray while this one waits
        if data and len(data) != self.frame_bytes:
            w, h = self.video.width, self.video.height
            raise ValueError(f"a frame has {len(data)} bytes; {w}x{h} yuv420p has {self.frame_bytes}")
        return data

    def _audio_data(self, audio: np.ndarray | None) -> bytes:
        if audio is None or audio.size == 0:
            return b""
        if audio.dtype != np.int16 or audio.ndim != 2 or audio.shape[1] != self.audio.channels:
            shape = f"(k, {self.audio.channels})"
            raise ValueError(f"audio must be int16 of shape {shape}, not {audio.dtype} {audio.shape}")
        return np.ascontiguousarray(audio, dtype="<i2").tobytes()

    def _put(self, q: queue.Queue[bytes | None], item: bytes | memoryview | None, *, live: bool = True) -> None:
        # Short waits, so a dead ffmpeg (or an abort from another thread) is noticed while
        # the pipe is full; a watchdog, so a stuck one is too.
        deadline = time.monotonic() + self._stall
        while True:
            if live:
                self.check()
                if self._closed:
                    return
            elif self._started().poll() is not None:
                return  # closing, and nobody will read it: _join ends the writer
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                if time.monotonic() > deadline:
                    self.abort()
                    self._error = OutputError(f"ffmpeg read nothing for {self._stall:g} s and was stopped")
                    raise self._error from None

    def _write_loop(self, fd: int, q: queue.Queue[bytes | None]) -> None:
        try:
            while (data := q.get()) is not _EOF:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
        except OSError as exc:  # BrokenPipeError: ffmpeg has gone; check() reports why
            self._write_error = exc
        finally:
            os.close(fd)

    def _read_stderr(self, pipe: IO[bytes]) -> None:
        last: str | None = None
        for raw in pipe:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            level, tags, message = parse_log_line(line)
            level = last = level or last  # a line without a level continues the one before
            change = self._watch.feed(tags, message)
            if change is not None:
                self._changes.put(Change(change.output, change.state, change.reason and self._redact(change.reason)))
            if message and (level is None or level in _FOR_PEOPLE):
                with self._stderr_lock:
                    self._stderr.append(self._redact(tags + message))

    def _read_progress(self, pipe: IO[bytes]) -> None:
        fields: dict[str, str] = {}
        for raw in pipe:
            key, _, value = raw.decode("utf-8", "replace").strip().partition("=")
            fields[key] = value
            if key == "progress":  # the last key of each report
                now, last = _progress(fields), self.progress
                if last is None or _moved(last, now):
                    self.last_progress = time.monotonic()
                self.progress = now
                fields = {}

    def _join(self) -> None:
        # ffmpeg has exited: drop what it will never read, and let each writer see EOF.
        for q in self._queues:
            while True:
                try:
                    q.put_nowait(_EOF)
                    break
                except queue.Full:
                    with contextlib.suppress(queue.Empty):
                        q.get_nowait()
        for t in (*self._writers, *self._readers):
            t.join(5)

    def _failure(self) -> OutputError:
        rc = self.returncode
        tail = self.stderr_tail()
        what = f"ffmpeg was killed by signal {-rc}" if rc is not None and rc < 0 else f"ffmpeg exited with code {rc}"
        line = last_error(tail)
        if line is None and self._write_error is not None:
            line = f"writing to ffmpeg: {self._write_error.strerror}"
        message = f"{what}: {line}" if line else what
        tip = hint("\n".join(tail), self.outputs, self.show)
        return OutputError(self._redact(f"{message} ({tip})" if tip else message))
