"""FFmpegSink: ffmpeg run as a child process, encoding what it is given to its outputs.

Several outputs (URLs, recordings) share one encode through ffmpeg's tee muxer (``tee_spec``).
Raw yuv420p frames and s16le audio go to ffmpeg over two pipes (``pass_fds``), each fed by its
own writer thread from a bounded queue: a slow encoder or network pushes back on the producer,
and ffmpeg, which reads its inputs in parallel, never waits on one pipe while we block on the
other. Closing both pipes (EOF) is how a stream ends: ffmpeg flushes and writes the trailer.

A sink is in one ``SinkState`` at a time; ``FFmpegSink._to`` is the one place it changes::

    NEW --start()--> RUNNING --close()--> CLOSING --ffmpeg exits 0--> DONE
                        |                    `--ffmpeg fails, or outlives close()'s timeout--> FAILED
                        `--ffmpeg stops on its own, a pipe breaks, or it reads nothing--> FAILED

abort() goes from RUNNING or CLOSING to DONE; a failure is final (see ``_MOVES``).
"""

from __future__ import annotations

import contextlib
import enum
import math
import os
import queue
import shlex
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import IO

import numpy as np

from .. import urls
from ..errors import OutputError, Refused
from ..limits import ffmpeg_env
from ..presets import AudioSettings, VideoSettings, WhipSettings
from .argv import build_argv, destinations
from .binary import find_ffmpeg
from .diagnosis import (
    FOR_PEOPLE,
    Change,
    Progress,
    Watch,
    hint,
    is_sdp,
    last_error,
    parse_log_line,
    progress_reports,
    refused,
    start_error,
)


class SinkState(enum.Enum):
    NEW = "new"  # not started (a start that failed leaves it so)
    RUNNING = "running"  # ffmpeg runs; write() feeds it
    CLOSING = "closing"  # close() sent EOF and waits for ffmpeg to write the trailers
    DONE = "done"  # ended by close() or abort(): write() raises RuntimeError, check() nothing
    FAILED = "failed"  # ffmpeg failed; the failure is kept, and every call raises that same error


# Where each state may go. A failure is final. DONE gives way only to a failure found by a call
# already under way when abort() came (close() waiting for the exit, check() reading why ffmpeg
# stopped): that call reports what it found.
_MOVES: dict[SinkState, frozenset[SinkState]] = {
    SinkState.NEW: frozenset({SinkState.RUNNING}),
    SinkState.RUNNING: frozenset({SinkState.CLOSING, SinkState.DONE, SinkState.FAILED}),
    SinkState.CLOSING: frozenset({SinkState.DONE, SinkState.FAILED}),
    SinkState.DONE: frozenset({SinkState.FAILED}),
    SinkState.FAILED: frozenset(),
}

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
        whip: WhipSettings | None = None,  # what a WHIP endpoint gets
        token: str | None = None,  # a WHIP endpoint's bearer token
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
        self._whip, self._token = whip, token
        self._argv = build_argv(ffmpeg or "ffmpeg", video, audio, self.outputs, video_fd=3, audio_fd=4, whip=whip, token=token)
        self._proc: subprocess.Popen[bytes] | None = None
        self._queues: list[queue.Queue[bytes | None]] = []
        self._writers: list[threading.Thread] = []
        self._readers: list[threading.Thread] = []
        self._pipes: tuple[IO[bytes], IO[bytes]] | None = None  # ffmpeg's stdout and stderr
        # What a writer thread hit: evidence, not state. check() turns it into the failure, once
        # ffmpeg's last words (the reason) are in; a writer cannot wait for them.
        self._write_error: OSError | None = None
        self._state = SinkState.NEW
        self._failure: OutputError | None = None  # how ffmpeg failed: set with FAILED, and only then
        self._state_lock = threading.Lock()  # the producer, an abort() and a watchdog may race
        self.progress: Progress | None = None
        # time.monotonic() of the last report that differed from the one before (of start() until
        # the first): a watchdog's clock. ffmpeg reports twice a second while it runs.
        self.last_progress = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FFmpegSink:
        """Start ffmpeg. OutputError when it cannot start: no descriptors or memory left for its
        pipes or process, or a binary that will not run; nothing is left open then."""
        if self._state is not SinkState.NEW:
            raise RuntimeError("FFmpegSink already started")
        binary = self._ffmpeg or find_ffmpeg().path
        self.last_progress = time.monotonic()
        try:
            self._proc, (vw, aw), self._pipes = self._spawn(binary)
        except OSError as exc:
            raise OutputError(self._redact(f"cannot start ffmpeg ({binary}): {start_error(exc)}")) from None
        self._queues = [queue.Queue(size) for size in self._queue_sizes]
        self._writers = [
            _daemon(self._write_loop, "video", vw, self._queues[0]),
            _daemon(self._write_loop, "audio", aw, self._queues[1]),
        ]
        self._readers = [  # in the order of _pipes
            _daemon(self._read_progress, "progress", self._pipes[0]),
            _daemon(self._read_stderr, "stderr", self._pipes[1]),
        ]
        self._to(SinkState.RUNNING)
        for t in (*self._writers, *self._readers):
            t.start()
        return self

    def _spawn(self, binary: str) -> tuple[subprocess.Popen[bytes], tuple[int, int], tuple[IO[bytes], IO[bytes]]]:
        """ffmpeg reading two pipes, its stdout and stderr on two more: the process, the write
        ends of its inputs and its outputs, to read. Every descriptor is made here, so that when
        one cannot be (none left: EMFILE) or the process cannot start, all are closed again."""
        made: list[int] = []

        def pipe() -> tuple[int, int]:
            ends = os.pipe()
            made.extend(ends)
            return ends

        try:
            (vr, vw), (ar, aw), (outr, outw), (errr, errw) = pipe(), pipe(), pipe(), pipe()
            null = os.open(os.devnull, os.O_RDONLY)
            made.append(null)
            self._argv = build_argv(
                binary, self.video, self.audio, self.outputs, video_fd=vr, audio_fd=ar, whip=self._whip, token=self._token,
            )
            proc = subprocess.Popen(
                self._argv, pass_fds=(vr, ar), stdin=null, stdout=outw, stderr=errw,
                env=ffmpeg_env(),  # what it needs to run, and no secret of ours
                # Its own session: a Ctrl-C in the terminal reaches only us, and we end the
                # stream with an EOF so the trailer is written, instead of ffmpeg dying mid-write.
                start_new_session=True,
            )
        except BaseException:
            for fd in made:
                os.close(fd)
            raise
        for fd in (vr, ar, outw, errw, null):  # the child holds these now
            os.close(fd)
        return proc, (vw, aw), (os.fdopen(outr, "rb"), os.fdopen(errr, "rb"))

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
        if self._state is not SinkState.RUNNING:
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
        if not self._to(SinkState.CLOSING):
            self._raise_failure()
            return  # closing or closed already
        if timeout is None and any(urls.kind(o) != "file" for o in self.outputs):
            timeout = 30.0
        for q in self._queues:
            self._put(q, _EOF, live=False)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            message = f"ffmpeg did not finish within {timeout:g} s of the stream's end; stopped it"
            error = self._fail(OutputError(message))
            self._stop()
            raise error from None
        self._join()
        if proc.returncode != 0:
            raise self._fail(self._diagnose())
        self._to(SinkState.DONE)

    def abort(self) -> None:
        """Stop ffmpeg at once (the output may lack its trailer)."""
        if self._state is SinkState.NEW:
            return
        # DONE before the kill: a write() blocked meanwhile sees a sink that was stopped, not an
        # ffmpeg that died. A failure already found stays.
        self._to(SinkState.DONE)
        self._stop()

    def check(self) -> None:
        """Raise OutputError if ffmpeg has stopped before the stream was closed."""
        proc = self._started()
        self._raise_failure()
        if self._state is not SinkState.RUNNING or (proc.poll() is None and self._write_error is None):
            return
        try:
            proc.wait(5)  # a write failed: ffmpeg is on its way out; wait for its last words
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._join()
        raise self._fail(self._diagnose())

    def __enter__(self) -> FFmpegSink:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- reporting ---------------------------------------------------------------------------

    @property
    def state(self) -> SinkState:
        """Where the sink is in its life: see ``SinkState``."""
        return self._state

    @property
    def failure(self) -> OutputError | None:
        """How ffmpeg failed (the error every call raises now), once the sink is FAILED."""
        return self._failure

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

    def _to(self, state: SinkState, failure: OutputError | None = None) -> bool:
        """The one place the state changes: to ``state`` (with ``failure`` for FAILED) if
        ``_MOVES`` allows it from where the sink is; False, and no change, if not."""
        with self._state_lock:
            if state not in _MOVES[self._state]:
                return False
            self._state, self._failure = state, failure
            return True

    def _fail(self, error: OutputError) -> OutputError:
        """FAILED with ``error``, unless failed already: the failure kept, to raise."""
        self._to(SinkState.FAILED, error)
        return self._failure or error

    def _raise_failure(self) -> None:
        if self._failure is not None:  # set only with FAILED
            raise self._failure

    def _started(self) -> subprocess.Popen[bytes]:
        if self._state is SinkState.NEW or self._proc is None:
            raise RuntimeError("FFmpegSink not started")
        return self._proc

    def _redact(self, text: str) -> str:
        text = self._redactor(text)
        # The token is a secret whatever redactor the caller gave.
        return text.replace(self._token, urls.MASK) if self._token else text

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
                if self._state is not SinkState.RUNNING:
                    return
            elif self._started().poll() is not None:
                return  # closing, and nobody will read it: _join ends the writer
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                if time.monotonic() > deadline:
                    error = self._fail(OutputError(f"ffmpeg read nothing for {self._stall:g} s and was stopped"))
                    self._stop()
                    raise error from None

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
            if is_sdp(level, message):
                continue
            level = last = level or last  # a line without a level continues the one before
            change = self._watch.feed(tags, message)
            if change is not None:
                self._changes.put(Change(change.output, change.state, change.reason and self._redact(change.reason)))
            if message and (level is None or level in FOR_PEOPLE):
                with self._stderr_lock:
                    self._stderr.append(self._redact(tags + message))

    def _read_progress(self, pipe: IO[bytes]) -> None:
        for report in progress_reports(pipe):
            last = self.progress
            if last is None or report.moved(last):
                self.last_progress = time.monotonic()
            self.progress = report

    def _stop(self) -> None:
        """Kill ffmpeg if it still runs, and wait for it and the threads; the state is the caller's."""
        proc = self._started()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._join()

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
        # Closed now, not when the sink is collected: a reconnect needs these descriptors.
        for reader, pipe in zip(self._readers, self._pipes or ()):
            if not reader.is_alive():
                pipe.close()

    def _diagnose(self) -> OutputError:
        rc = self.returncode
        tail = self.stderr_tail()
        what = f"ffmpeg was killed by signal {-rc}" if rc is not None and rc < 0 else f"ffmpeg exited with code {rc}"
        line = last_error(tail)
        if line is None and self._write_error is not None:
            line = f"writing to ffmpeg: {self._write_error.strerror}"
        message = f"{what}: {line}" if line else what
        text = "\n".join(tail)
        tip = hint(text, self.outputs, self.show, token=self._token is not None)
        kind = Refused if refused(text) else OutputError
        return kind(self._redact(f"{message} ({tip})" if tip else message))
