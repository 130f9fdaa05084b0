"""A WHIP endpoint (RFC 9725) on 127.0.0.1 for tests, on aiortc: it answers offers, receives the
media, decodes it and records what arrived and when, for checks on frames, sound and lip sync.

The endpoint runs its own asyncio loop in a daemon thread and offers a synchronous API::

    with WhipEndpoint(token="s3cret") as whip:
        ...  # ffmpeg ... -authorization s3cret -f whip {whip.url}
        session = whip.wait_session()
        session.wait(video_frames=50, audio_seconds=2)
        print(session.video_codec, len(session.video), sync_offsets_ms(session))

Loopback only: the HTTP server binds 127.0.0.1, aiortc gets no STUN or TURN servers, and while an
endpoint runs, aioice's host-address lookup answers ``["127.0.0.1"]`` (which aioice itself
skips) to the ICE gathering of the endpoints' own loops, and the real interfaces to anyone else.
Nothing else in the process is changed.

Known behaviour of aiortc as a receiver (1.16), which shows in the arrival stamps: a video frame
leaves its jitter buffer when the first packet of the next frame arrives (it does not use the RTP
marker bit), so one frame interval late; audio waits for 4 more packets (80 ms of 20 ms Opus
packets) before the first leaves; both are then decoded in a thread per track. See
``sync_offsets_ms`` for how lip sync is measured despite that. The last 80 ms of audio are still
in that jitter buffer when a DELETE closes the session, and are lost.

With ffmpeg 9.0's WHIP muxer as the pusher (aiortc is the DTLS client: ffmpeg offers
``a=setup:passive``): ICE completes in about 25 ms, but the DTLS handshake takes 1.0 s, every
time: aiortc's first ClientHello gets no answer and OpenSSL resends it after its 1 s timer, so
media start about 1.05 s after the POST (and ``-re`` then catches up on that second at 1.05x).
On a clean exit ffmpeg logs "Failed to read response from DELETE url=..." and "Failed to
dispose resource, ret=-5" whatever the endpoint answers (200 with or without a body, 204,
chunked): the DELETE did arrive and was answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aioice.ice
import numpy as np
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription

from linly_push.onsets import onsets
from linly_push.sync import _pair

__all__ = ["Session", "WhipEndpoint", "sync_offsets_ms"]

# ---------------------------------------------------------------------------------------------
# Loopback host candidates, for the endpoints' own loops only.

_patch_lock = threading.Lock()
_loops: set[asyncio.AbstractEventLoop] = set()
_original_host_addresses: Callable[..., list[str]] | None = None


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None and loop in _loops:
        return ["127.0.0.1"] if use_ipv4 else []
    assert _original_host_addresses is not None
    return _original_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)


def _use_loopback(loop: asyncio.AbstractEventLoop) -> None:
    global _original_host_addresses
    with _patch_lock:
        if not _loops:
            _original_host_addresses = aioice.ice.get_host_addresses
            aioice.ice.get_host_addresses = _host_addresses
        _loops.add(loop)


def _stop_loopback(loop: asyncio.AbstractEventLoop) -> None:
    with _patch_lock:
        _loops.discard(loop)
        if not _loops and aioice.ice.get_host_addresses is _host_addresses:
            assert _original_host_addresses is not None
            aioice.ice.get_host_addresses = _original_host_addresses


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Codec:
    mime: str
    rate: int
    channels: int


def _negotiated(answer: str) -> dict[str, _Codec]:
    """The codec each media section of an answer settled on, by kind (the first that is not a
    retransmission or FEC format)."""
    found: dict[str, _Codec] = {}
    for media in SessionDescription.parse(answer).media:
        for codec in media.rtp.codecs:
            if codec.name.lower() not in ("rtx", "red", "ulpfec", "flexfec-03"):
                found.setdefault(media.kind, _Codec(codec.mimeType, codec.clockRate, codec.channels or 1))
                break
    return found


class Session:
    """What one accepted offer brought: the negotiated codecs and every decoded frame.

    ``video``: (arrival, pts seconds, width, height, mean luma 0-255 of the Y plane) per frame;
    ``audio``: (arrival, pts seconds, mono float32 samples in -1..1) per frame. Arrival is
    ``time.monotonic()`` when aiortc's ``track.recv()`` handed the decoded frame over; pts is
    aiortc's: the RTP timestamp since the track's first frame, over the clock rate.
    ``video_wire`` and ``audio_wire`` hold, frame by frame, ``time.monotonic()`` when the last
    RTP packet of that frame came off the socket, before aiortc's jitter buffer and decoder
    thread (see ``sync_offsets_ms``). ``events`` holds
    (``time.monotonic()``, what) for the offer, the answer, ICE and connection state changes and
    each track's first frame, for timing the handshake.
    """

    def __init__(self, number: int, resource: str, offer: str) -> None:
        self.number = number  # 1 for the endpoint's first
        self.resource = resource  # the Location answered
        self.offer = offer
        self.answer = ""
        self.video_codec = ""
        self.audio_codec = ""
        self.video_rate = 0
        self.audio_rate = 0
        self.audio_channels = 0
        self.video: list[tuple[float, float, int, int, float]] = []
        self.audio: list[tuple[float, float, np.ndarray]] = []
        # Per frame, as video and audio: time.monotonic() when its last RTP packet came in.
        self.video_wire: list[float] = []
        self.audio_wire: list[float] = []
        self._unmatched = 0  # frames whose packets were not seen: their wire time is the arrival
        self.events: list[tuple[float, str]] = [(time.monotonic(), "offer")]
        self.ended = threading.Event()
        self.end_reason = ""
        self._kinds: set[str] = set()  # media sections offered
        self._tracks: set[str] = set()  # tracks aiortc announced
        self._audio_samples = 0
        self._cond = threading.Condition()
        self._pc: RTCPeerConnection | None = None

    # -- filled in from the endpoint's loop ---------------------------------------------------

    def _event(self, what: str) -> None:
        self.events.append((time.monotonic(), what))

    def _add_video(self, arrival: float, wire: float | None, frame: Any) -> None:
        plane = frame.planes[0]  # Y of yuv420p (what aiortc's H.264/VP8 decoders give)
        y = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: frame.height, : frame.width]
        row = (arrival, float(frame.pts * frame.time_base), frame.width, frame.height, float(y.mean()))
        with self._cond:
            if not self.video:
                self._event("first video frame")
            self.video.append(row)
            self.video_wire.append(arrival if wire is None else wire)
            self._unmatched += wire is None
            self._cond.notify_all()

    def _add_audio(self, arrival: float, wire: float | None, frame: Any) -> None:
        mono = _mono(frame)
        with self._cond:
            if not self.audio:
                self._event("first audio frame")
            self.audio.append((arrival, float(frame.pts * frame.time_base), mono))
            self.audio_wire.append(arrival if wire is None else wire)
            self._unmatched += wire is None
            self._audio_samples += len(mono)
            self._cond.notify_all()

    def _end(self, reason: str) -> None:
        with self._cond:
            if not self.ended.is_set():
                self.end_reason = reason
                self._event(f"ended: {reason}")
                self.ended.set()
            self._cond.notify_all()

    # -- for tests ----------------------------------------------------------------------------

    @property
    def audio_seconds(self) -> float:
        return self._audio_samples / self.audio_rate if self.audio_rate else 0.0

    def samples(self) -> np.ndarray:
        """All the audio so far, mono float32, in order of arrival."""
        with self._cond:
            parts = [a for _, _, a in self.audio]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def summary(self) -> str:
        return (f"session {self.number}: {len(self.video)} video frames ({self.video_codec or 'no video'}), "
                f"{self.audio_seconds:.2f} s of audio ({self.audio_codec or 'no audio'})"
                + (f", ended ({self.end_reason})" if self.ended.is_set() else ""))  # fmt: skip

    def wait(self, video_frames: int = 1, audio_seconds: float = 0.0, timeout: float = 20) -> None:
        """Until ``video_frames`` frames and ``audio_seconds`` of sound have arrived; TimeoutError
        (saying what did arrive) after ``timeout`` seconds, or as soon as the session ends short."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.video) < video_frames or self.audio_seconds < audio_seconds:
                if self.ended.is_set():
                    raise TimeoutError(f"{self.summary()}, before {video_frames} frames and {audio_seconds:g} s of audio")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"after {timeout:g} s, {self.summary()}; waited for {video_frames} frames "
                                       f"and {audio_seconds:g} s of audio")  # fmt: skip
                self._cond.wait(left)

    def __repr__(self) -> str:
        return f"<Session {self.summary()}>"


def _mono(frame: Any) -> np.ndarray:
    """An aiortc AudioFrame as mono float32 in -1..1 at its own rate (channels averaged)."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    name = frame.format.name.rstrip("p")
    if frame.format.is_planar:
        data = data.reshape(channels, -1).T
    else:
        data = data.reshape(-1, channels)
    scale = {"s16": 1 / 32768, "s32": 1 / 2147483648, "u8": 1 / 128}.get(name)
    mono = data.mean(axis=1, dtype=np.float64 if name == "dbl" else np.float32)
    if name == "u8":
        mono = mono - 128
    return (mono * scale if scale else mono).astype(np.float32, copy=False)


class WhipEndpoint:
    """A WHIP endpoint on ``http://127.0.0.1:PORT{path}``.

    POST an SDP offer (``Content-Type: application/sdp``) to ``url``: 201 Created with the answer
    (ICE gathering complete, a 127.0.0.1 host candidate) and a ``Location`` under ``url``; DELETE
    on that resource ends the session (200). ``token``: POSTs must carry ``Authorization: Bearer
    <token>``, else 401. ``status``: every POST gets that status and a short text body. OPTIONS
    gets 204, PATCH (trickle ICE) and other methods 405, other paths 404.

    ``posts``: every POST seen, as {"headers", "status", "time"}; ``requests``: every request, as
    {"method", "path", "headers", "status", "time"}; ``sessions``: one per accepted offer.
    """

    def __init__(self, *, token: str | None = None, status: int | None = None, path: str = "/whip/live/anchor") -> None:
        self.token = token
        self.status = status
        self.path = "/" + path.strip("/")
        self.port = 0
        self.url = ""
        self.posts: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.sessions: list[Session] = []
        self._refusing = False
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._live: dict[str, Session] = {}  # by resource id
        self._tasks: set[asyncio.Task[Any]] = set()
        self._held: list[socket.socket] = []  # ports kept bound by drop("silent"/"notify")

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> WhipEndpoint:
        if self._thread is not None:
            raise RuntimeError("the endpoint is already running")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=self._run_loop, name="whip-endpoint", daemon=True)
        _use_loopback(loop)
        self._thread.start()
        try:
            self._call(self._serve(), 10)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Close every session and the server, end the loop and its thread; the port is free
        again when this returns."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if loop.is_running():
                self._call(self._shutdown(), 20)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            if thread.is_alive():
                raise RuntimeError("the WHIP endpoint's loop did not stop")
            loop.close()
            _stop_loopback(loop)
            self._loop = self._thread = None

    def __enter__(self) -> WhipEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- for tests ----------------------------------------------------------------------------

    def wait_session(self, n: int = 1, timeout: float = 20) -> Session:
        """The ``n``-th session (1 for the first) once aiortc has announced a track for each
        media section of its offer (during the offer, before the answer goes out; media may
        still be on their way: ``Session.wait`` for those)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if len(self.sessions) >= n and self.sessions[n - 1]._tracks >= self.sessions[n - 1]._kinds:
                    return self.sessions[n - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = ", ".join(f"{p['status']}" for p in self.posts) or "none"
                    raise TimeoutError(f"no session {n} after {timeout:g} s: {len(self.sessions)} sessions, "
                                       f"POSTs answered {seen}")  # fmt: skip
                self._cond.wait(left)

    def drop(self, how: str = "abrupt") -> None:
        """Close every peer connection and answer new POSTs with 503 until ``allow()``, as an
        endpoint going away does. Sessions end (``ended``) before this returns.

        ``how`` (what the pusher sees next):

        - ``"abrupt"`` (the default): the process died. The sockets close without a DTLS alert,
          and the kernel answers the pusher's next packets with ICMP port unreachable.
        - ``"silent"``: the host or the path went away. The sockets stay bound (until ``allow()``
          or ``stop()``) but nothing is read or sent: no alert, no ICMP, no consent checks.
        - ``"notify"``: a server on a shared UDP port (as SFUs are) ended the session: a DTLS
          close_notify alert, then silence (the port stays bound, no ICMP).
        - ``"graceful"``: aiortc's own close: a DTLS close_notify alert, then the sockets close
          (ICMP after that).

        What ffmpeg 9.0's WHIP muxer did (``-re``, 25 fps): abrupt: "Failed to read from UDP
        socket" within 40 ms, exit 145 (ECONNREFUSED) 0.12 s after the drop; silent: "Consent
        Freshness expired after 30004.73ms (limited 30000ms), terminate session" 30 s after the
        last consent check it answered, exit 146 (ETIMEDOUT); notify: blocks for good in a read
        with no timeout, sending nothing and logging nothing, deaf to SIGINT and SIGTERM (four
        signals or SIGKILL end it); graceful: "Failed to write packet=...B, ret=-111" within
        40 ms, then blocks the same way while writing the trailer.
        """
        if how not in ("abrupt", "silent", "notify", "graceful"):
            raise ValueError(f"drop(how={how!r}): abrupt, silent, notify or graceful")
        self._call(self._drop(how), 20)

    def allow(self) -> None:
        """Accept POSTs again (and let go of the ports that ``drop()`` kept bound)."""
        self._refusing = False
        if self._loop is not None:
            self._call(self._release(), 5)

    # -- the loop -----------------------------------------------------------------------------

    def _run_loop(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coro: Any, timeout: float) -> Any:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self) -> None:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", self.path, self._collection)
        app.router.add_route("*", self.path + "/{id}", self._resource)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, reuse_address=False)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}{self.path}"

    async def _shutdown(self) -> None:
        for session in list(self._live.values()):
            await self._close(session, "endpoint stopped")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._release()
        current = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        for task in rest:
            task.cancel()
        if rest:
            await asyncio.wait(rest, timeout=5)

    def _record(self, request: web.Request, status: int) -> None:
        entry = {"method": request.method, "path": request.path, "headers": dict(request.headers),
                 "status": status, "time": time.monotonic()}  # fmt: skip
        with self._cond:
            self.requests.append(entry)
            if request.method == "POST" and request.path == self.path:
                self.posts.append({k: entry[k] for k in ("headers", "status", "time")})
            self._cond.notify_all()

    def _reply(self, request: web.Request, status: int, text: str = "", **headers: str) -> web.Response:
        self._record(request, status)
        return web.Response(status=status, text=text or None, headers=headers)

    async def _collection(self, request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            return self._reply(request, 204, Allow="POST, OPTIONS", **{"Accept-Post": "application/sdp"})
        if request.method != "POST":
            return self._reply(request, 405, "POST an SDP offer\n", Allow="POST, OPTIONS")
        if self._refusing:
            return self._reply(request, 503, "endpoint unavailable\n", **{"Retry-After": "1"})
        if self.status is not None:
            return self._reply(request, self.status, f"answered {self.status} as the test asked\n")
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._reply(request, 401, "a bearer token is required\n", **{"WWW-Authenticate": "Bearer"})
        if request.content_type != "application/sdp":
            return self._reply(request, 415, "Content-Type must be application/sdp\n")
        offer = await request.text()
        try:
            session, answer = await self._accept(offer)
        except Exception as exc:  # a malformed or unacceptable offer
            return self._reply(request, 400, f"cannot answer this offer: {exc}\n")
        response = web.Response(status=201, body=answer.encode(), content_type="application/sdp",
                                headers={"Location": session.resource})  # fmt: skip
        self._record(request, 201)
        return response

    async def _resource(self, request: web.Request) -> web.Response:
        session = self._live.get(request.match_info["id"])
        if request.method == "OPTIONS":
            return self._reply(request, 204, Allow="DELETE, OPTIONS")
        if request.method != "DELETE":
            return self._reply(request, 405, "no trickle ICE or restarts here\n", Allow="DELETE, OPTIONS")
        if session is None:
            return self._reply(request, 404, "no such session\n")
        await self._close(session, "DELETE")
        return self._reply(request, 200, "session closed\n")

    async def _accept(self, offer: str) -> tuple[Session, str]:
        rid = uuid.uuid4().hex[:12]
        kinds = {m.kind for m in SessionDescription.parse(offer).media if m.kind in ("audio", "video")}
        if not kinds:
            raise ValueError("no audio or video section")
        session = Session(0, f"{self.url}/{rid}", offer)
        session._kinds = kinds
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session._pc = pc

        @pc.on("track")
        def on_track(track: Any) -> None:
            session._event(f"track {track.kind}")
            receiver = next((t.receiver for t in pc.getTransceivers() if t.receiver.track is track), None)
            self._spawn(self._read(session, track, _wire_clock(receiver)))
            with self._cond:
                session._tracks.add(track.kind)
                self._cond.notify_all()

        @pc.on("iceconnectionstatechange")
        def on_ice() -> None:
            session._event(f"ice {pc.iceConnectionState}")

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            session._event(f"connection {state}")
            if state in ("failed", "closed"):
                if rid in self._live:
                    self._spawn(self._close(session, f"connection {state}"))
                else:
                    session._end(f"connection {state}")

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except BaseException:
            await pc.close()
            raise
        answer = pc.localDescription.sdp
        session.answer = answer
        session._event("answer")
        codecs = _negotiated(answer)
        if "video" in codecs:
            session.video_codec, session.video_rate = codecs["video"].mime, codecs["video"].rate
        if "audio" in codecs:
            a = codecs["audio"]
            session.audio_codec, session.audio_rate, session.audio_channels = a.mime, a.rate, a.channels
        self._live[rid] = session
        with self._cond:
            self.sessions.append(session)
            session.number = len(self.sessions)
            self._cond.notify_all()
        return session, answer

    async def _read(self, session: Session, track: Any, wire: Callable[[int], float | None]) -> None:
        add = session._add_video if track.kind == "video" else session._add_audio
        try:
            while True:
                frame = await track.recv()
                add(time.monotonic(), wire(frame.pts), frame)
        except MediaStreamError:
            pass
        except Exception as exc:  # a frame this module cannot read: say so where tests look
            session._event(f"{track.kind} reader failed: {exc!r}")
            raise

    async def _close(self, session: Session, reason: str, how: str = "abrupt") -> None:
        """End ``session``; ``how`` as for ``drop()``. DELETE, stop() and failures close abruptly:
        ffmpeg 9.0 hangs on a DTLS close_notify (see ``drop``)."""
        for rid, live in list(self._live.items()):
            if live is session:
                del self._live[rid]
        session._end(reason)
        pc = session._pc
        if pc is not None:
            connections = _ice_connections(pc) if how != "graceful" else []
            if how in ("silent", "notify"):  # keep the ports bound: a duplicate of each socket
                for connection in connections:
                    for protocol in getattr(connection, "_protocols", []):
                        transport = getattr(protocol, "transport", None)
                        sock = transport.get_extra_info("socket") if transport is not None else None
                        if sock is not None:
                            self._held.append(socket.socket(fileno=os.dup(sock.fileno())))
            if how in ("abrupt", "silent"):  # sockets first: the DTLS alert cannot go out
                for connection in connections:
                    with contextlib.suppress(Exception):
                        await connection.close()
            with contextlib.suppress(Exception):
                await pc.close()

    async def _release(self) -> None:
        for held in self._held:
            held.close()
        self._held.clear()

    async def _drop(self, how: str) -> None:
        self._refusing = True
        for session in list(self._live.values()):
            await self._close(session, f"dropped ({how})", how)


def _wire_clock(receiver: Any) -> Callable[[int], float | None]:
    """Stamp each RTP packet ``receiver`` gets with ``time.monotonic()`` as it comes off the socket,
    by RTP timestamp (a frame's last packet wins); return a look-up from a decoded frame's pts to
    its stamp. aiortc's pts is the RTP timestamp minus the first frame's, which on loopback is
    the first packet's. Without the hook (another aiortc), every look-up gives None."""
    stamps: dict[int, float] = {}
    first: list[int] = []
    handle = getattr(receiver, "_handle_rtp_packet", None)
    if handle is None:
        return lambda pts: None

    async def stamped(packet: Any, arrival_time_ms: int) -> None:
        stamps[packet.timestamp] = time.monotonic()
        if not first:
            first.append(packet.timestamp)
        if len(stamps) > 4096:  # frames never decoded
            for key in list(stamps)[:1024]:
                del stamps[key]
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = stamped
    return lambda pts: stamps.pop((first[0] + pts) & 0xFFFFFFFF, None) if first else None


def _ice_connections(pc: RTCPeerConnection) -> list[Any]:
    """The aioice connections under ``pc`` (one with BUNDLE)."""
    found: list[Any] = []
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        gatherer = getattr(getattr(dtls, "transport", None), "iceGatherer", None)
        connection = getattr(gatherer, "_connection", None)
        if connection is not None and all(connection is not c for c in found):
            found.append(connection)
    return found


# ---------------------------------------------------------------------------------------------


LAG_WINDOW = 0.5  # seconds of pts either side of an event over which sync_offsets_ms takes a track's lag


def sync_offsets_ms(session: Session, *, flash_luma: float = 200, within: float = 0.5, clock: str = "wire") -> list[float]:
    """Lip sync of a ``testcard`` stream as it arrived: per sound onset paired with a flash (each
    the other's nearest, at most ``within`` s apart: ``linly_push.sync``'s pairing), onset minus
    flash in ms; positive when the sound comes after the picture.

    Flashes: the first frame of each run of frames whose mean luma is at least ``flash_luma``
    (limited-range white is 235 in the Y plane; the card averages about 75). Onsets:
    ``linly_push.onsets.onsets`` over the audio as one run of samples, as the project finds them
    in a file. Both are placed on the arrival clock (``time.monotonic()``); the tracks' RTP
    timestamps are never compared with each other (their bases are unrelated).

    ``clock="wire"`` (the default): per track, lag = the arrival of a frame's last RTP packet
    (``video_wire``/``audio_wire``) minus its pts; an event at pts p is placed at p + the median
    lag of that track's frames with pts within ``LAG_WINDOW`` s of p: when that part of the
    stream typically arrived. Not each frame's own ``track.recv()`` arrival, because

    - aiortc's receiver adds delays that do not come from the sender and depend on the frame
      rate: audio leaves its jitter buffer 4 packets (80 ms) late, a video frame only when the
      next frame's first packet arrives (1/fps late); read there, lip sync is off by about
      +80 ms - 1/fps (+46 ms measured at 25 fps);
    - ffmpeg's muxer sends audio in bursts, the 20 ms Opus packets since the last video frame
      together with it (2 per frame at 25 fps, 3 at 15), so one onset's own packet arrives up to
      a frame interval early or late against its neighbours (9 ms standard deviation at 25 fps,
      20 ms at 15, from raw arrivals; 2-7 ms this way).

    What remains is the stream's own timing as sent, which is not always the file's: against
    ``linly_push.sync.measure`` of the file pushed with ``ffmpeg -re``, median -2 ms at 25 fps and
    +2 at 30, but +50 ms at 15 fps, where ffmpeg's interleaving holds each audio packet until the
    next video frame (66 ms apart).

    ``clock="recv"``: each event at its own frame's ``track.recv()`` arrival (plus the onset's
    position within its audio frame), unsmoothed, aiortc's delays and all.
    """
    if clock not in ("wire", "recv"):
        raise ValueError(f"clock={clock!r}: wire or recv")
    with session._cond:
        video, audio = list(session.video), list(session.audio)
        vwire, awire = list(session.video_wire), list(session.audio_wire)
    if not video or not audio:
        return []
    v_pts = np.array([r[1] for r in video])
    luma = np.array([r[4] for r in video])
    bright = luma >= flash_luma
    first = np.flatnonzero(bright & ~np.concatenate(([False], bright[:-1])))

    a_pts = np.array([r[1] for r in audio])
    mono = np.concatenate([r[2] for r in audio])
    starts = np.cumsum([0] + [len(r[2]) for r in audio])
    found = onsets(mono, session.audio_rate)
    frame = np.searchsorted(starts, found, side="right") - 1
    into = (found - starts[frame]) / session.audio_rate

    if clock == "recv":
        flashes = np.array([r[0] for r in video])[first]
        heard = np.array([r[0] for r in audio])[frame] + into
    else:
        flashes = v_pts[first] + _typical_lag(np.array(vwire), v_pts, v_pts[first])
        heard = a_pts[frame] + into + _typical_lag(np.array(awire), a_pts, a_pts[frame])
    pairs = _pair([float(t) for t in heard], [float(t) for t in flashes], within)
    return [1000.0 * (a - v) for a, v in pairs]


def _typical_lag(arrival: np.ndarray, pts: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Per time in ``at``, the median arrival - pts among frames with pts within ``LAG_WINDOW``
    of it (``pts`` ascending)."""
    lag = arrival - pts
    lo = np.searchsorted(pts, at - LAG_WINDOW)
    hi = np.searchsorted(pts, at + LAG_WINDOW, side="right")
    return np.array([np.median(lag[a:b]) for a, b in zip(lo, hi)])
