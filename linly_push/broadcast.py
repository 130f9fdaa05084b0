"""One broadcast: connections one after another, each the clock's ticks into an ffmpeg sink.

A render is one connection to a file; live is connections to servers, each run until the
program ends (``Ended``) or the server is lost (``Lost``), then retried with backoff, the clock
resuming at the sentence that was cut. The two differ in a few decisions only, each a method of
their policy (``RenderPolicy``, ``LivePolicy``): how far ahead to work, what to report and how
often, what counts as on air, what a lost output means.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import urls
from .captions import Cue, cue_for, webvtt
from .clock import Clock
from .errors import Interrupted, OutputError, Refused
from .events import Destination, Dropped, Finished, Listener, Progress, Reconnected, Sentence, Started, Status
from .ffmpeg import Change, FFmpegSink
from .media import Kind
from .reconnect import Backoff
from .timeline import Placed

if TYPE_CHECKING:
    from .pipeline import Job

STALL_SECONDS = 10.0  # live: no progress from ffmpeg this long counts as a lost connection
RESUME_MARGIN = 1.0  # seconds before ffmpeg's last reported output time that may not have arrived


@dataclass
class Outlet:
    """One destination of a live show (a URL, or one recording file), for the end report."""

    shown: str  # masked
    role: str  # "live" or "record"
    state: str = "up"  # "up", "down" (a fan-out URL being retried) or "failed" (a recording, for good)
    complete: bool = True  # got everything that went on air while it was open
    reason: str | None = None  # why not (masked)
    down_at: float | None = None  # media seconds when it last went down or failed

    def to_dict(self) -> dict[str, object]:
        return {"destination": self.shown, "role": self.role, "complete": self.complete, "reason": self.reason}


@dataclass
class Summary:
    output: str  # masked
    frames: int  # sent, over all connections
    seconds: float  # media time on air (or in the file)
    sentences: int
    wall: float
    reconnects: int = 0
    repeated: int = 0
    destinations: list[Outlet] = field(default_factory=list)  # live: each URL and recording
    vtt: str | None = None  # render: the captions written beside the file

    @property
    def speed(self) -> float:
        return self.seconds / self.wall if self.wall > 0 else 0.0

    @property
    def incomplete(self) -> list[Outlet]:
        """The destinations that did not get the whole show."""
        return [d for d in self.destinations if not d.complete]


@dataclass(frozen=True)
class Ended:
    """The connection carried the program to its end (or to ``--duration``)."""


@dataclass(frozen=True)
class Lost:
    """The connection failed: what the retry needs."""

    error: OutputError
    on_air: float  # media seconds the server took (0 when it never connected)
    connected: bool
    out_time: float  # seconds ffmpeg said it had written


class _Stopped(Exception):
    """The stop event was set."""


class _GaveUp(OutputError):
    """No destination has worked for ``reconnect.give_up_after``: not retried."""


class RenderPolicy:
    """To a file: as fast as ffmpeg takes it; every frame counts; a failure is final; WebVTT
    captions beside the file."""

    live = False
    report_every = 0.25
    read_stall = 30.0  # ffmpeg reading nothing this long (its trailer, a slow disk) is a failure

    def ahead(self, job: Job) -> float:
        return 2.0

    def history(self, job: Job) -> float:
        """Seconds of what went out to keep: none beyond what avatars look back at, as a file is
        never resumed."""
        return 0.0

    def outlets(self, job: Job) -> dict[str, Outlet]:
        return {}

    def cues(self, job: Job) -> list[Cue] | None:
        return [] if job.preset.captions.vtt else None

    def recording(self, job: Job, number: int) -> str | None:
        return None

    def counts(self, connected: bool) -> bool:
        return True

    def watch(self, now: float, since: float, sink: FFmpegSink) -> None:
        """A file is written at ffmpeg's pace, however slow: no watchdog."""

    def report(self, b: Broadcast, fps: float, clock: Clock, sink: FFmpegSink) -> Progress:
        return Progress(**b.progress(fps))

    def lost(self, exc: OutputError, connected: bool, on_air: float, sink: FFmpegSink) -> Lost:
        raise exc


class LivePolicy:
    """On air: in real time; each destination reported on; only what a server took counts; a
    stalled or lost server is retried, recording on in a new file."""

    live = True
    report_every = 1.0
    # ffmpeg that reads nothing this long is stopped (SIGKILL): a WHIP muxer whose peer closed
    # its DTLS session hangs for good, deaf to SIGTERM, while our writes wait on it.
    read_stall = STALL_SECONDS

    def ahead(self, job: Job) -> float:
        return job.preset.live.buffer

    def history(self, job: Job) -> float:
        """Seconds of what went out to keep, to resume after a reconnect from ffmpeg's last
        reported time (which lags what the server has by a second or so)."""
        return 30.0

    def outlets(self, job: Job) -> dict[str, Outlet]:
        return {o: Outlet(job.scrub.show(o), "live") for o in job.outputs}

    def cues(self, job: Job) -> list[Cue] | None:
        return None

    def recording(self, job: Job, number: int) -> str | None:
        return job.recording(number)

    def counts(self, connected: bool) -> bool:
        return connected

    def watch(self, now: float, since: float, sink: FFmpegSink) -> None:
        if now - max(sink.last_progress, since) > STALL_SECONDS:
            raise OutputError(f"no progress for {STALL_SECONDS:g} s: the server stopped taking the stream")

    def report(self, b: Broadcast, fps: float, clock: Clock, sink: FFmpegSink) -> Status:
        return Status(
            **b.progress(fps), sentence=b.sentence[0], text=b.sentence[1], bitrate_kbps=sink.bitrate_kbps,
            buffer=round(clock.buffered, 2), repeated=clock.repeated, reconnects=b.reconnects,
        )

    def lost(self, exc: OutputError, connected: bool, on_air: float, sink: FFmpegSink) -> Lost:
        out_time = sink.progress.out_time if sink.progress else 0.0
        return Lost(exc, on_air if connected else 0.0, connected, out_time)


Policy = LivePolicy | RenderPolicy


def _gave_up(backoff: Backoff, error: OutputError) -> str:
    """The last word of a live run that found no working connection for the give-up time."""
    message = f"gave up after {backoff.give_up_after:g} s without a working connection: {error}"
    if backoff.was_on_air:
        return message
    return f"{message}; it never got on air: check the URL and that the server runs (reconnect.first_give_up_after: how long to try)"


def policy_for(job: Job) -> Policy:
    return LivePolicy() if job.live else RenderPolicy()


class Broadcast:
    """One run of a job through the clock (see the module)."""

    def __init__(
        self, job: Job, policy: Policy, clock: Clock, make_sink: Callable[[list[str]], FFmpegSink],
        on_event: Listener, stop: threading.Event,
    ) -> None:
        self.job, self.policy, self.clock, self.make_sink, self.emit, self.stop = job, policy, clock, make_sink, on_event, stop
        self.video, self.fmt = job.video, job.audio
        self.scrub = job.scrub
        self.frames = 0  # over all connections (live: those that got on air)
        self.said: set[int] = set()  # sentence numbers that went on air (a repeat counts once)
        self.sentence: tuple[int | None, str | None] = (None, None)  # on air now
        self.reconnects = 0
        self.recordings = 0  # recording files that got media (the next one is FILE-{n + 1})
        # Live: each URL, then each recording file, as they are opened.
        self.outlets: dict[str, Outlet] = self.policy.outlets(job)
        self.all_down_since: float | None = None  # fan-out: when the last URL still up went down
        self.limit = round(job.duration * job.video.fps) if job.duration else float("inf")  # frames
        self.cues: list[Cue] | None = self.policy.cues(job)
        self.t0 = time.monotonic()

    def run(self, started: Started) -> Summary:
        job = self.job
        self.emit(started)
        backoff = Backoff(job.preset.reconnect)
        attempt = 0
        try:
            while True:
                attempt += 1
                result = self._connection(attempt)
                if isinstance(result, Ended):
                    break
                now = time.monotonic()
                delay = backoff.failed(now, result.on_air, result.connected)
                if delay is None:
                    raise OutputError(_gave_up(backoff, result.error))
                cut = max(0, round((result.out_time - RESUME_MARGIN) * self.fmt.sample_rate))
                replay = self.clock.restart(cut)
                resume = next((s.sentence for s in replay if s.kind == Kind.SPEECH), None)
                reason = str(result.error)
                if backoff.outage_since == now:  # the first failure of this outage: say for how long it is retried
                    reason += f"; giving up after {backoff.give_up_after:g} s without a connection"
                self.emit(Dropped(
                    reason=reason, attempt=attempt, on_air=round(result.on_air, 3),
                    connected=result.connected, retry_in=round(delay, 3), resume_sentence=resume,
                ))
                if self.stop.wait(delay):
                    raise Interrupted("stopped while reconnecting")
        except Interrupted:
            self._write_vtt()  # what was rendered keeps its captions, even when stopped
            raise
        vtt = self._write_vtt()
        summary = Summary(
            job.masked(), self.frames, self.frames / self.video.fps, len(self.said), time.monotonic() - self.t0,
            self.reconnects, self.clock.repeated, list(self.outlets.values()), vtt,
        )
        self.emit(Finished(
            output=summary.output, frames=summary.frames, seconds=round(summary.seconds, 3),
            sentences=summary.sentences, wall=round(summary.wall, 3), speed=round(summary.speed, 2),
            reconnects=summary.reconnects, repeated=summary.repeated, vtt=vtt,
            destinations=[d.to_dict() for d in summary.destinations],
        ))
        return summary

    def progress(self, fps_now: float) -> dict[str, object]:
        """The fields ``progress`` and ``status`` share."""
        media, wall = self.frames / self.video.fps, time.monotonic() - self.t0
        return {
            "frames": self.frames, "seconds": round(media, 3), "sentences": len(self.said), "total": self.job.sentences,
            "fps": round(fps_now, 2), "wall": round(wall, 3), "speed": round(media / wall, 2) if wall > 0 else None,
        }

    def _connection(self, attempt: int) -> Ended | Lost:
        """Stream until the end of the program or until the connection is lost."""
        job, policy, clock = self.job, self.policy, self.clock
        record = policy.recording(job, self.recordings + 1)
        if record is not None:
            self.outlets[record] = Outlet(record, "record")
        sink = self.make_sink(job.destinations(self.recordings + 1))
        base = self.frames  # frames on air before this connection
        connected = False
        unannounced: list[Placed] = []  # segments started on this connection, not yet announced
        started = time.monotonic()
        next_report, last = started, (started, base)
        try:
            sink.start()
        except OutputError as exc:  # no ffmpeg (no descriptors or memory left): an attempt that never connected
            self._discard(record)
            return policy.lost(exc, False, 0.0, sink)
        try:
            for tick in clock.ticks():
                if self.stop.is_set():
                    raise _Stopped
                sink.write(tick.frame, tick.audio)
                if not connected and sink.connected:
                    connected = True
                    if record is not None:
                        self.recordings += 1
                    if attempt > 1:
                        self.reconnects += 1
                        self.emit(Reconnected(
                            attempt=attempt, reconnects=self.reconnects, record=urls.mask(record) if record else None,
                        ))
                # Live, only what a server took counts as on air: an attempt that never connects
                # adds no frames, and sends (and announces) its sentences again on the next one.
                unannounced.extend(tick.starts)
                if policy.counts(connected):
                    self.frames = base + clock.aired
                    self._announce(unannounced, base)
                    unannounced.clear()
                for change in sink.changes():
                    self._changed(change)
                if job.controller is not None:
                    for event in job.controller.events():
                        self.emit(event)
                now = time.monotonic()
                if now >= next_report:
                    next_report = now + policy.report_every
                    fps = (self.frames - last[1]) / (now - last[0]) if now > last[0] else 0.0
                    last = (now, self.frames)
                    self.emit(policy.report(self, fps, clock, sink))
                    policy.watch(now, started, sink)
                    self._give_up_when_all_down(now)
                if self.frames >= self.limit:
                    break  # --duration reached: end here, as if the script had ended
            sink.close()
            for change in sink.changes():  # what ffmpeg said while closing (a recording's trailer)
                self._changed(change)
            self._announce(unannounced, base)  # ffmpeg took all of it
            return Ended()
        except _GaveUp:
            sink.abort()
            raise
        except Refused:
            sink.abort()  # a retry would be refused the same way
            if not (connected or sink.connected):
                self._discard(record)
            raise
        except OutputError as exc:
            sink.abort()
            for change in sink.changes():
                self._changed(change)
            got_on_air = connected or sink.connected
            if not got_on_air:
                self._discard(record)
            return policy.lost(exc, got_on_air, clock.aired / self.video.fps, sink)
        except (_Stopped, KeyboardInterrupt):
            with contextlib.suppress(OutputError):
                sink.close()  # EOF lets ffmpeg write the trailer: what was sent stays playable
            raise Interrupted("stopped; what was sent so far was closed cleanly") from None
        except BaseException:
            sink.abort()
            raise

    def _discard(self, record: str | None) -> None:
        """A recording of an attempt that never got on air holds no media: remove it, and record
        the next attempt under the same name."""
        if record is None:
            return
        self.outlets.pop(record, None)
        with contextlib.suppress(OSError):
            Path(record).unlink()

    def _changed(self, change: Change) -> None:
        """A destination of the fan-out went down or came back, or a recording failed."""
        outlet = self.outlets.get(change.output)
        if outlet is None:
            return
        at = self.frames / self.video.fps
        outlet.state = change.state
        if change.state != "up":
            outlet.complete = False
            outlet.reason, outlet.down_at = change.reason, at
        self.emit(Destination(
            destination=outlet.shown, role=outlet.role, state=change.state, reason=change.reason, at=round(at, 3),
        ))

    def _give_up_when_all_down(self, now: float) -> None:
        """A fan-out's URLs reconnect each by itself; when all have been down for the give-up
        time, the broadcast ends as a single URL's would."""
        live = [o for o in self.outlets.values() if o.role == "live"]
        if len(live) < 2 or any(o.state == "up" for o in live):
            self.all_down_since = None
            return
        if self.all_down_since is None:
            self.all_down_since = now
        give_up = self.job.preset.reconnect.give_up_after
        if now - self.all_down_since >= give_up:
            reasons = "; ".join(f"{o.shown}: {o.reason}" for o in live)
            raise _GaveUp(f"gave up after {give_up:g} s with every destination down: {reasons}")

    def _announce(self, starts: list[Placed], base: int) -> None:
        for placed in starts:
            seg = placed.segment
            if self.job.controller is not None:
                self.job.controller.started(seg)
            if seg.kind != Kind.SPEECH:
                continue
            self.said.add(seg.sentence or 0)
            self.sentence = (seg.sentence, seg.text)
            if self.cues is not None:
                self.cues.append(cue_for(seg, placed.start, self.fmt.sample_rate))
            self.emit(Sentence(
                index=seg.sentence, total=self.job.sentences, text=seg.text,
                at=round(base / self.video.fps + placed.start / self.fmt.sample_rate, 3),
            ))

    def _write_vtt(self) -> str | None:
        """Render: the sentences as WebVTT cues in FILE.vtt beside the video; its path."""
        if self.cues is None or not self.cues:
            return None
        end = self.frames / self.video.fps
        cues = [Cue(c.start, min(c.end, end), c.text) for c in self.cues if c.start < end]
        path = Path(self.job.outputs[0]).with_suffix(".vtt")
        try:
            path.write_text(webvtt(cues), encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write captions {path}: {exc.strerror}") from None
        return str(path)
