"""The control API: an HTTP server beside a live show, to say, interrupt and steer it on air.

It runs in its own thread with its own event loop (aiohttp), and talks to the show only
through the ``Controller`` (thread-safe) and the events the show publishes to it (``publish``).
Nothing a client sends reaches the stream unchecked: bodies are bounded, JSON is validated
(unknown fields refused), and every refusal is a 4xx with ``{"error": "..."}``. The endpoints
are documented in docs/contract.md ("Control API").

A server on 127.0.0.1 is still reachable from every web page the operator opens, so nothing
here trusts where a request comes from: every request but the operator page needs the token
(made here when none is given, and handed over in a private file, never printed); a ``Host``
that is not this server's (DNS rebinding) and an ``Origin`` of another site are refused; the
bodies that change the show need types a browser must ask before sending (``application/json``,
``audio/*``), and such a preflight from another site is refused too. No client, however slow
or many, can take the show down: connections are capped, a request's head and body must arrive
in time, uploads go to disk within a size, and what a client did wrong is its 4xx, never a
traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import audio as audio_io
from .control import Controller, Mode, QueueFull, cast_for
from .errors import LinlyPushError, OutputError, UsageError
from .events import Dropped, Error, Event, Finished, InterruptedEvent, Reconnected, Spoken, Status
from .limits import TOKEN_ENV
from .presets import Preset, describe
from .program import AudioFile

MAX_JSON_BYTES = 64 * 1024
MAX_TEXT = 10_000  # characters a request may ask to say: some ten minutes of speech
MAX_NAME = 200  # characters of a voice, TTS or avatar name
MAX_WAV_BYTES = 64 * 1024 * 1024  # about six minutes of 48 kHz stereo WAV
BACKLOG = 1000  # events waiting for one slow client; past it the client is dropped
STALLED_AFTER = 3.0  # seconds without a status event: the show is not on air
# A client holds a descriptor for as long as it is connected; past this many, new ones are
# answered 503 and closed at once, so no number of clients can use up the process's descriptors
# (which the show needs to reconnect: pipes to ffmpeg) or its memory.
MAX_CONNECTIONS = 128
HEAD_TIMEOUT = 10.0  # seconds for a request's line and headers, from connecting or the last answer
BODY_TIMEOUT = {"json": 10.0, "audio": 120.0}  # seconds for a whole body to arrive
MEASURERS = 2  # uploads decoded and measured at once (each reads a whole file)
MISSING = "aiohttp and prometheus-client are not installed (pip install 'linly-push[control]')"


def available() -> str | None:
    """Why the control server cannot run here, or None."""
    import importlib.util

    missing = [m for m in ("aiohttp", "prometheus_client") if importlib.util.find_spec(m) is None]
    return MISSING if missing else None


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``PORT`` (on 127.0.0.1); an IPv6 host in brackets."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--control takes HOST:PORT or PORT (e.g. 127.0.0.1:8750), not {text!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


EVERY_ADDRESS = ("", "0.0.0.0", "::")


def _hostname(host: str) -> str | None:
    """The name in a ``Host`` header (``127.0.0.1:8750``, ``[::1]:8750``, ``localhost``), lower
    case and unbracketed; None when it is not one."""
    try:
        u = urlsplit(f"//{host}")
        u.port  # noqa: B018 - ValueError for a port that is not a number
    except ValueError:
        return None
    return u.hostname or None


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower() == b.lower()


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(host: str, bound: str, local_names: frozenset[str] = frozenset()) -> bool:
    """Whether a request's ``Host`` names this server, bound to ``bound``. A name is what DNS
    rebinding hides behind (a page at evil.example whose name turns into 127.0.0.1), so only
    ``localhost`` and the bound address are taken; a server bound to every address (0.0.0.0,
    ::) also takes any address and this machine's own names (``local_names``)."""
    name = _hostname(host)
    if name is None:
        return False
    if name == "localhost":
        return True
    if bound in EVERY_ADDRESS:
        return _is_ip(name) or name in local_names
    if bound == "localhost":
        return name in ("127.0.0.1", "::1")
    return _same_address(name, bound)


def refusal(method: str, path: str, headers: Mapping[str, str], bound: str,
            local_names: frozenset[str] = frozenset()) -> str | None:
    """Why a request is refused for where it comes from (403), or None. The operator page
    (``GET /``) may be opened from anywhere (a link, a bookmark); nothing else may be asked
    for by a page of another site, whatever it sends."""
    host = headers.get("Host", "")
    if not host_allowed(host, bound, local_names):
        if not host:
            return "a request needs a Host header"
        return f"this server is not {host[:100]!r}: ask for it by its address (or localhost), not by another name"
    if method == "GET" and path == "/":
        return None
    origin = headers.get("Origin")
    if origin is not None and origin.lower() not in (f"http://{host}".lower(), f"https://{host}".lower()):
        return f"requests from another site are refused (Origin {origin[:100]})"
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return f"requests from another site are refused (Sec-Fetch-Site {site[:20]})"
    return None


def _local_names() -> frozenset[str]:
    return frozenset(n.lower() for n in (socket.gethostname(), socket.getfqdn()) if n)


class _Say(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    mode: Mode = Mode.QUEUE
    voice: str | None = Field(None, max_length=MAX_NAME)
    tts: str | None = Field(None, max_length=MAX_NAME)
    avatar: str | None = Field(None, max_length=MAX_NAME)


class _Refused(Exception):
    """A request refused with ``status`` and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Health:
    state: str = "starting"  # starting, on_air, reconnecting, ended
    last_status: float = 0.0  # monotonic time of the last status event

    def healthy(self) -> bool:
        return self.state == "on_air" and time.monotonic() - self.last_status < STALLED_AFTER


class ControlServer:
    """Serves the control API for ``controller`` on ``host``:``port`` (see the module).

    ``token`` is what every request but the operator page must carry; without one, one is made
    here and written, for the operator only, to ``token_file`` (and a page that opens the
    operator page with it, ``page_file``): neither the token nor the page is ever printed."""

    def __init__(self, controller: Controller, preset: Preset, host: str = "127.0.0.1", port: int = 8750,
                 token: str | None = None) -> None:
        if available() is not None:
            raise UsageError(f"--control: {MISSING}")
        self.controller, self.preset, self.host, self.port = controller, preset, host, port
        self.token = token or secrets.token_urlsafe(32)
        self.status: dict[str, Any] = {}
        self.health = _Health()
        self._clients: set[asyncio.Queue[Event | None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stopping: asyncio.Event | None = None
        self._closing = threading.Event()  # set when the server stops: measuring an upload stops
        self._ending: threading.Event | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="linly-push-control-")  # 0700, this user's
        self._uploads_dir = Path(self._tmp.name) / "uploads"
        self._uploads_dir.mkdir()
        self._uploads: dict[str, Path] = {}  # request id -> its WAV, deleted once played or dropped
        self._uploads_lock = threading.Lock()
        self._workers = ThreadPoolExecutor(MEASURERS, thread_name_prefix="control-work")
        self._local_names = _local_names() if host in EVERY_ADDRESS else frozenset()
        self.trouble = _QuietLog()
        self._metrics = _Metrics(self)
        self.token_file: Path | None = None
        self.page_file: Path | None = None
        if token is None:
            self.token_file, self.page_file = self._hand_over()

    # -- the show's side (its thread) -------------------------------------------------------

    def start(self, ending: threading.Event | None = None) -> ControlServer:
        """Serve, in a thread of its own. ``ending`` is set when the show starts to end (the
        first signal): what the server is working on for a client stops then."""
        self._ending = ending
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._failure is not None:
            raise OutputError(f"cannot serve the control API on {self.host}:{self.port}: {self._failure}")
        return self

    def publish(self, event: Event) -> None:
        """An event of the show: kept for /status, /healthz and /metrics, and sent to each
        /events and /ws client."""
        if isinstance(event, Status):
            self.status = event.data()
            self.health.last_status = time.monotonic()
            if self.health.state == "starting":
                self.health.state = "on_air"
        elif isinstance(event, Reconnected):
            self.health.state = "on_air"
        elif isinstance(event, Dropped):
            self.health.state = "reconnecting"
        elif isinstance(event, (Finished, Error)):
            self.health.state = "ended"
        elif isinstance(event, (Spoken, InterruptedEvent)):
            self._forget_upload(event.id)
        self._metrics.seen(event)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closing
                loop.call_soon_threadsafe(self._fan_out, event)

    def stop(self) -> None:
        self._closing.set()
        loop = self._loop
        if loop is not None and self._stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)
        self._workers.shutdown(wait=True, cancel_futures=True)  # a measurement stops within a block
        self._tmp.cleanup()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _hand_over(self) -> tuple[Path, Path]:
        """Write the token made here where only this user can read it, and a page that opens
        the operator page with it (in the URL's fragment, which browsers never send)."""
        folder = Path(self._tmp.name)
        token_file, page_file = folder / "token", folder / "control.html"
        address = f"{self.url}/#token={self.token}"
        for path, text in (
            (token_file, self.token + "\n"),
            (page_file, '<!doctype html><meta charset="utf-8"><title>linly-push control</title>\n'
                        f'<meta http-equiv="refresh" content="0; url={address}">\n'
                        f'<a href="{address}">Open the linly-push control page</a>\n'),
        ):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
        return token_file, page_file

    def _cancelled(self) -> bool:
        return self._closing.is_set() or (self._ending is not None and self._ending.is_set())

    def _forget_upload(self, item: str) -> None:
        with self._uploads_lock:
            path = self._uploads.pop(item, None)
        if path is not None:
            path.unlink(missing_ok=True)

    # -- the server's thread ----------------------------------------------------------------

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start(), or lost when the show is ending
            self._failure = exc
            self._ready.set()

    async def _main(self) -> None:
        from aiohttp import web

        self._loop = asyncio.get_running_loop()
        # asyncio reports what it cannot do itself (an accept() without a descriptor left) to
        # this handler; by default it prints a traceback each time, thousands a second.
        self._loop.set_exception_handler(lambda loop, context: self.trouble.count(context.get("message", "")))
        self._stopping = asyncio.Event()

        @web.middleware
        async def errors(request: Any, handler: Any) -> Any:
            return await self._errors(request, handler)

        @web.middleware
        async def guard(request: Any, handler: Any) -> Any:
            return await self._guard(request, handler)

        app = web.Application(client_max_size=MAX_WAV_BYTES, middlewares=[errors, guard])
        app.add_routes([
            web.get("/", self._page), web.get("/healthz", self._healthz), web.get("/metrics", self._metrics_page),
            web.get("/status", self._status), web.get("/queue", self._queue), web.delete("/queue/{id}", self._cancel),
            web.post("/say", self._say), web.post("/audio", self._audio), web.post("/interrupt", self._interrupt),
            web.post("/pause", self._pause), web.post("/resume", self._resume),
            web.get("/events", self._events), web.get("/ws", self._ws),
        ])
        # keepalive_timeout is also how long a connection may take to send a request's head:
        # aiohttp closes a connection still waiting for a whole request when it runs out.
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0,
                               keepalive_timeout=HEAD_TIMEOUT, logger=self.trouble.logger)
        await runner.setup()
        http = runner.server
        assert http is not None

        def connection() -> asyncio.BaseProtocol:
            if len(http.connections) < MAX_CONNECTIONS:
                return http()
            self.trouble.count("too many connections")
            return _Busy()

        try:
            listening = await self._loop.create_server(connection, self.host, self.port, reuse_address=True)
        except OSError as exc:
            self._failure = exc.strerror or exc
            self._ready.set()
            await runner.cleanup()
            return
        self._ready.set()
        await self._stopping.wait()
        listening.close()
        for client in list(self._clients):
            client.put_nowait(None)
        await runner.cleanup()

    def _fan_out(self, event: Event) -> None:
        for client in list(self._clients):
            try:
                client.put_nowait(event)
            except asyncio.QueueFull:  # a client that does not read: let it go
                self._clients.discard(client)
                with contextlib.suppress(asyncio.QueueFull):
                    client.put_nowait(None)

    # -- middleware -------------------------------------------------------------------------

    async def _errors(self, request: Any, handler: Any) -> Any:
        from aiohttp import web

        try:
            return await handler(request)
        except _Refused as exc:
            return _error(exc.status, str(exc))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            reason = "the body is too large" if exc.status == 413 else exc.reason.lower()
            return _error(exc.status, reason)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:  # a bug here: the client gets JSON, the show goes on
            self.trouble.count(f"{type(exc).__name__} answering {request.method} {request.path}")
            return _error(500, f"the server failed on this request ({type(exc).__name__})")

    async def _guard(self, request: Any, handler: Any) -> Any:
        why = refusal(request.method, request.path, request.headers, self.host, self._local_names)
        if why is not None:
            return _error(403, why)
        if request.method == "GET" and request.path == "/":
            return await handler(request)
        given = request.headers.get("Authorization")
        if given is None:
            source = f"the value of {TOKEN_ENV}" if self.token_file is None else f"the token in {self.token_file}"
            return _error(401, f"a token is needed: send Authorization: Bearer TOKEN, with {source}")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return _error(401, "the token is wrong: send Authorization: Bearer TOKEN with the token this show was started with")
        return await handler(request)

    # -- handlers ---------------------------------------------------------------------------

    async def _page(self, request: Any) -> Any:
        from aiohttp import web

        html = resources.files("linly_push").joinpath("control.html").read_text(encoding="utf-8")
        # Never inside another site's frame, where a click could be stolen (clickjacking).
        headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                   "Content-Security-Policy": "frame-ancestors 'none'; connect-src 'self'; form-action 'none'"}
        return web.Response(text=html, content_type="text/html", headers=headers)

    async def _healthz(self, request: Any) -> Any:
        healthy = self.health.healthy()
        state = self.health.state if healthy or self.health.state != "on_air" else "stalled"
        return _json({"ok": healthy, "state": state}, 200 if healthy else 503)

    async def _metrics_page(self, request: Any) -> Any:
        from aiohttp import web
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status(self, request: Any) -> Any:
        c = self.controller
        return _json({**self.status, "speaking": c.speaking, "paused": c.paused, "queue": c.depth,
                      "state": self.health.state})

    async def _queue(self, request: Any) -> Any:
        return _json({"items": self.controller.queued()})

    async def _cancel(self, request: Any) -> Any:
        if not self.controller.cancel(request.match_info["id"]):
            return _error(404, f"no queued item {request.match_info['id'][:100]!r}")
        return _json({"cancelled": request.match_info["id"]})

    async def _say(self, request: Any) -> Any:
        if request.content_type != "application/json":
            return _error(415, "send the request as JSON, with Content-Type: application/json")
        raw = await _body(request, MAX_JSON_BYTES, BODY_TIMEOUT["json"], "of JSON")
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(400, f"the body is not JSON: {exc}")
        except RecursionError:
            return _error(400, "the body is not a say request: it is nested too deeply")
        try:
            say = _Say.model_validate(data)
        except ValidationError as exc:
            return _error(422, _invalid(exc))
        try:
            # Checking a voice may start a TTS (a second, for a neural one): not on the loop.
            cast = await asyncio.get_running_loop().run_in_executor(self._workers, cast_for, self.preset, say.tts, say.voice, say.avatar)
            item = self.controller.say(say.text, say.mode, cast)
        except (LinlyPushError, ValueError) as exc:
            return _error(422, str(exc))
        except QueueFull as exc:
            return _error(429, str(exc))
        return _json({"id": item.id}, 202)

    async def _audio(self, request: Any) -> Any:
        try:
            mode = Mode(request.query.get("mode", "queue"))
        except ValueError:
            return _error(422, "mode is one of queue, next, now")
        if not request.content_type.startswith("audio/"):
            return _error(415, "send a WAV file with an audio type, e.g. Content-Type: audio/wav")
        if self.controller.full:  # said before a byte of the body is read
            return _error(429, f"the queue holds {self.controller.max_queue} items already")
        path = self._uploads_dir / f"{secrets.token_hex(8)}.wav"
        try:
            if not await _save(request, path, MAX_WAV_BYTES, BODY_TIMEOUT["audio"]):
                return _error(400, "the body is empty: send a WAV file")
            # Measuring its loudness reads it all (seconds for a long one): not on the loop.
            recording = await asyncio.get_running_loop().run_in_executor(self._workers, self._recording, path)
            item = self.controller.play(recording, mode)
        except BaseException as exc:
            path.unlink(missing_ok=True)
            if isinstance(exc, QueueFull):
                return _error(429, str(exc))
            raise
        with self._uploads_lock:
            self._uploads[item.id] = path
        return _json({"id": item.id}, 202)

    def _recording(self, path: Path) -> AudioFile:
        """The upload checked and measured; a refusal says why without naming the file."""
        import soundfile as sf

        try:
            kind = sf.info(str(path)).format
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise _Refused(415, f"the body is not a WAV file ({audio_io.reason(exc)})") from None
        if kind not in WAV_FORMATS:
            raise _Refused(415, f"the body is not a WAV file (it is {kind}): send a WAV file")
        try:
            return AudioFile(audio_io.measured(audio_io.probe(path), self.preset.audio, self._cancelled))
        except audio_io.AudioProblem as exc:
            raise _Refused(422, f"the WAV file cannot be played: {exc.reason}") from None
        except audio_io.Cancelled:
            raise _Refused(503, "the show is ending") from None

    async def _interrupt(self, request: Any) -> Any:
        return _json({"interrupted": [i.id for i in self.controller.interrupt()]})

    async def _pause(self, request: Any) -> Any:
        self.controller.pause()
        return _json({"paused": True})

    async def _resume(self, request: Any) -> Any:
        self.controller.resume()
        return _json({"paused": False})

    @contextlib.contextmanager
    def _client(self) -> Iterator[asyncio.Queue[Event | None]]:
        client: asyncio.Queue[Event | None] = asyncio.Queue(BACKLOG)
        self._clients.add(client)
        try:
            yield client
        finally:
            self._clients.discard(client)

    async def _events(self, request: Any) -> Any:
        from aiohttp import web

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        with self._client() as client, contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await response.write(b": linly-push events\n\n")
            while True:
                try:
                    event = await asyncio.wait_for(client.get(), 15)
                except asyncio.TimeoutError:
                    await response.write(b": still here\n\n")  # keeps proxies from closing an idle stream
                    continue
                if event is None:
                    break
                await response.write(f"event: {event.kind}\ndata: {event.to_json()}\n\n".encode())
        return response

    async def _ws(self, request: Any) -> Any:
        from aiohttp import web

        ws = web.WebSocketResponse(heartbeat=15, max_msg_size=MAX_JSON_BYTES)
        await ws.prepare(request)
        with self._client() as client, contextlib.suppress(ConnectionError, asyncio.CancelledError):
            reader = asyncio.ensure_future(ws.receive())  # the client may close at any time
            while True:
                getter = asyncio.ensure_future(client.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    getter.cancel()
                    break
                event = getter.result()
                if event is None:
                    reader.cancel()
                    break
                await ws.send_str(event.to_json())
        await ws.close()
        return ws


WAV_FORMATS = ("WAV", "WAVEX", "RF64")  # as libsndfile names them: plain, extensible, over 4 GiB


class _Busy(asyncio.Protocol):
    """A connection past ``MAX_CONNECTIONS``: told so, and closed at once."""

    ANSWER = b'{"error": "too many connections: try again in a moment"}'

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        b"Retry-After: 1\r\nContent-Length: %d\r\n\r\n%s" % (len(self.ANSWER), self.ANSWER))
        transport.close()


class _QuietLog:
    """Where aiohttp and asyncio report trouble: a malformed request (answered 400 already), a
    client gone mid-answer, a descriptor not there. Counted for /metrics, never printed: any
    client could fill the show's log with tracebacks."""

    def __init__(self) -> None:
        self.count_by_kind: dict[str, int] = {}
        self.logger = logging.Logger("linly_push.control")  # not in logging's tree: nothing propagates
        self.logger.addHandler(_Counting(self))

    def count(self, message: str) -> None:
        kind = message.split(" from ")[0][:80] or "unknown"
        if len(self.count_by_kind) < 100 or kind in self.count_by_kind:
            self.count_by_kind[kind] = self.count_by_kind.get(kind, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.count_by_kind.values())


class _Counting(logging.Handler):
    def __init__(self, log: _QuietLog) -> None:
        super().__init__(logging.DEBUG)  # aiohttp reports a request that is not HTTP at all at debug level
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        self.log.count(str(record.msg))


async def _body(request: Any, limit: int, timeout: float, what: str) -> bytes:
    """The whole body, however many pieces it comes in: at most ``limit`` bytes, all of it
    within ``timeout`` seconds."""
    chunks: list[bytes] = []
    await _receive(request, chunks.append, limit, timeout, what)
    return b"".join(chunks)


async def _save(request: Any, path: Path, limit: int, timeout: float) -> int:
    """The body written to ``path`` as it comes (never whole in memory), bounded as ``_body``;
    the number of bytes."""
    with path.open("wb") as f:
        return await _receive(request, f.write, limit, timeout, "of WAV")


async def _receive(request: Any, take: Any, limit: int, timeout: float, what: str) -> int:
    size = f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit // 1024} KiB"
    if request.content_length is not None and request.content_length > limit:
        raise _Refused(413, f"the body is too large: at most {size} {what}")

    async def pieces() -> int:
        got = 0
        while chunk := await request.content.readany():
            got += len(chunk)
            if got > limit:
                raise _Refused(413, f"the body is too large: at most {size} {what}")
            take(chunk)
        return got

    try:
        return await asyncio.wait_for(pieces(), timeout)
    except asyncio.TimeoutError:
        raise _Refused(408, f"the body did not arrive within {timeout:g} s") from None


def _json(data: dict[str, Any], status: int = 200) -> Any:
    from aiohttp import web

    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _error(status: int, message: str) -> Any:
    return _json({"error": message}, status)


def _invalid(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "the body"
    if err["type"] == "extra_forbidden":
        return f"unknown field {where!r} (a request has text, mode, voice, tts, avatar)"
    if err["type"] == "missing":
        return f"{where} is missing"
    if err["type"] == "string_too_long":
        return f"{where} is too long: at most {err.get('ctx', {}).get('max_length', MAX_TEXT)} characters"
    if err["type"] == "string_too_short":
        return f"{where} is empty"
    if err["type"] == "model_type":
        return "the body is a JSON object, e.g. {\"text\": \"Hello.\"}"
    return f"{where}: {describe(err)}"


class _Metrics:
    """Prometheus metrics, ``linly_push_...``: counters and gauges from the latest status event
    and the controller, histograms as the show reports them."""

    def __init__(self, server: ControlServer) -> None:
        from prometheus_client import CollectorRegistry, Histogram

        self.server = server
        self.registry = CollectorRegistry(auto_describe=True)
        buckets = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
        self.first_sound = Histogram(
            "linly_push_say_to_first_sound_seconds", "From a request to its first sound going on air",
            buckets=buckets, registry=self.registry,
        )
        self.tts = Histogram(
            "linly_push_tts_seconds", "TTS time per sentence of a request", buckets=buckets, registry=self.registry,
        )
        self.draw = Histogram(
            "linly_push_draw_seconds", "Avatar drawing time per frame (captions included)",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16), registry=self.registry,
        )
        self.registry.register(self)

    def seen(self, event: Event) -> None:
        c = self.server.controller
        for values, histogram in ((c.first_sound, self.first_sound), (c.tts_seconds, self.tts), (c.draw_seconds, self.draw)):
            while values:
                histogram.observe(values.popleft())

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s, c = self.server.status, self.server.controller
        yield CounterMetricFamily("linly_push_frames_sent", "Video frames sent", value=s.get("frames", 0))
        yield CounterMetricFamily("linly_push_frames_repeated", "Frames shown again because drawing fell behind",
                                  value=s.get("repeated", 0))
        yield CounterMetricFamily("linly_push_reconnects", "Connections re-established", value=s.get("reconnects", 0))
        yield GaugeMetricFamily("linly_push_buffer_seconds", "Seconds drawn ahead of what is on air", value=s.get("buffer", 0))
        yield GaugeMetricFamily("linly_push_bitrate_kbps", "Output bit rate", value=s.get("bitrate_kbps") or 0)
        yield GaugeMetricFamily("linly_push_on_air_seconds", "Media seconds on air", value=s.get("seconds", 0))
        yield GaugeMetricFamily("linly_push_queue_depth", "Requests waiting", value=c.depth)
        yield GaugeMetricFamily("linly_push_speaking", "1 while a request is being said", value=int(c.speaking))
        yield GaugeMetricFamily("linly_push_healthy", "1 while on air and not stalled", value=int(self.server.health.healthy()))
        yield CounterMetricFamily("linly_push_control_rejected", "Connections and requests the control API dropped "
                                  "(malformed, past the connection cap, or failing)", value=self.server.trouble.total)
