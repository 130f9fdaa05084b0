"""The control API: an HTTP server beside a live show, to say, interrupt and steer it on air.

It runs in its own thread with its own event loop (aiohttp), and talks to the show only
through the ``Controller`` (thread-safe) and the events the show publishes to it (``publish``).
Nothing a client sends reaches the stream unchecked: bodies are bounded, JSON is validated
(unknown fields refused), and every refusal is a 4xx with ``{"error": "..."}``. The endpoints
are documented in docs/contract.md ("Control API").
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import audio as audio_io
from .control import Controller, Mode, QueueFull, cast_for
from .errors import LinlyPushError, OutputError, UsageError
from .events import Dropped, Error, Event, Finished, Reconnected, Status
from .presets import Preset, describe
from .program import AudioFile

TOKEN_ENV = "LINLY_PUSH_CONTROL_TOKEN"
MAX_JSON_BYTES = 64 * 1024
MAX_TEXT = 10_000  # characters a request may ask to say: some ten minutes of speech
MAX_WAV_BYTES = 64 * 1024 * 1024  # about six minutes of 48 kHz stereo WAV
BACKLOG = 1000  # events waiting for one slow client; past it the client is dropped
STALLED_AFTER = 3.0  # seconds without a status event: the show is not on air
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
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Say(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    mode: Mode = Mode.QUEUE
    voice: str | None = Field(None, max_length=200)
    tts: str | None = Field(None, max_length=200)
    avatar: str | None = Field(None, max_length=200)


@dataclass
class _Health:
    state: str = "starting"  # starting, on_air, reconnecting, ended
    last_status: float = 0.0  # monotonic time of the last status event

    def healthy(self) -> bool:
        return self.state == "on_air" and time.monotonic() - self.last_status < STALLED_AFTER


class ControlServer:
    """Serves the control API for ``controller`` on ``host``:``port`` (see the module)."""

    def __init__(self, controller: Controller, preset: Preset, host: str = "127.0.0.1", port: int = 8750,
                 token: str | None = None) -> None:
        if available() is not None:
            raise UsageError(f"--control: {MISSING}")
        self.controller, self.preset, self.host, self.port, self.token = controller, preset, host, port, token
        self.status: dict[str, Any] = {}
        self.health = _Health()
        self._clients: set[asyncio.Queue[Event | None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stopping: asyncio.Event | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="linly-push-control-")
        self._metrics = _Metrics(self)

    # -- the show's side (its thread) -------------------------------------------------------

    def start(self) -> ControlServer:
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
        self._metrics.seen(event)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closing
                loop.call_soon_threadsafe(self._fan_out, event)

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)
        self._tmp.cleanup()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

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
        self._stopping = asyncio.Event()
        @web.middleware
        async def errors(request: Any, handler: Any) -> Any:
            return await self._errors(request, handler)

        @web.middleware
        async def auth(request: Any, handler: Any) -> Any:
            return await self._auth(request, handler)

        app = web.Application(client_max_size=MAX_WAV_BYTES, middlewares=[errors, auth])
        app.add_routes([
            web.get("/", self._page), web.get("/healthz", self._healthz), web.get("/metrics", self._metrics_page),
            web.get("/status", self._status), web.get("/queue", self._queue), web.delete("/queue/{id}", self._cancel),
            web.post("/say", self._say), web.post("/audio", self._audio), web.post("/interrupt", self._interrupt),
            web.post("/pause", self._pause), web.post("/resume", self._resume),
            web.get("/events", self._events), web.get("/ws", self._ws),
        ])
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, reuse_address=True).start()
        except OSError as exc:
            self._failure = exc.strerror or exc
            self._ready.set()
            await runner.cleanup()
            return
        self._ready.set()
        await self._stopping.wait()
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
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            reason = "the body is too large" if exc.status == 413 else exc.reason.lower()
            return _error(exc.status, reason)

    async def _auth(self, request: Any, handler: Any) -> Any:
        if self.token is not None and request.path != "/":
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return _error(401, "a token is needed: Authorization: Bearer <LINLY_PUSH_CONTROL_TOKEN>")
        return await handler(request)

    # -- handlers ---------------------------------------------------------------------------

    async def _page(self, request: Any) -> Any:
        from aiohttp import web

        html = resources.files("linly_push").joinpath("control.html").read_text(encoding="utf-8")
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

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
            return _error(404, f"no queued item {request.match_info['id']!r}")
        return _json({"cancelled": request.match_info["id"]})

    async def _say(self, request: Any) -> Any:
        if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
            return _error(413, f"the body is too large: at most {MAX_JSON_BYTES // 1024} KiB of JSON")
        raw = await request.content.read(MAX_JSON_BYTES + 1)
        if len(raw) > MAX_JSON_BYTES:
            return _error(413, f"the body is too large: at most {MAX_JSON_BYTES // 1024} KiB of JSON")
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(400, f"the body is not JSON: {exc}")
        try:
            say = _Say.model_validate(data)
        except ValidationError as exc:
            return _error(422, _invalid(exc))
        try:
            # Checking a voice may start a TTS (a second, for a neural one): not on the loop.
            cast = await asyncio.get_running_loop().run_in_executor(None, cast_for, self.preset, say.tts, say.voice, say.avatar)
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
        body = await request.read()
        if not body:
            return _error(400, "the body is empty: send a WAV file")
        path = Path(self._tmp.name) / f"{time.monotonic_ns()}.wav"
        path.write_bytes(body)
        try:
            # Measuring its loudness reads it all (seconds for a long one): not on the loop.
            recording = await asyncio.get_running_loop().run_in_executor(None, self._recording, body, path)
        except (LinlyPushError, RuntimeError, ValueError, OSError) as exc:
            path.unlink(missing_ok=True)
            return _error(415, f"the body is not a WAV file ({exc})")
        try:
            item = self.controller.play(recording, mode)
        except QueueFull as exc:
            return _error(429, str(exc))
        return _json({"id": item.id}, 202)

    def _recording(self, body: bytes, path: Path) -> AudioFile:
        import soundfile as sf

        info = sf.info(io.BytesIO(body))
        if info.format != "WAV":
            raise ValueError(f"a {info.format} file")
        return AudioFile(audio_io.measured(audio_io.probe(path), self.preset.audio))

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
        return f"{where} is too long: at most {MAX_TEXT} characters"
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
