"""The openai TTS backend against a small OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import soundfile
from cli_run import linly, text

from linly_push.backends import registry
from linly_push.backends.tts.openai import OpenAITTS
from linly_push.errors import BackendError, UsageError

KEY = "sk-test-0123456789abcdef"


def sine_wav(seconds: float = 0.5, rate: int = 24000, channels: int = 1) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    tone = 0.4 * np.sin(2 * np.pi * 300 * t)
    buf = io.BytesIO()
    soundfile.write(buf, np.repeat(tone[:, None], channels, axis=1), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "audio/wav"


@dataclass
class Server:
    url: str
    requests: list[dict] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)  # used in order; the last one repeats


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            reply = state.replies[min(len(state.requests), len(state.replies)) - 1] if state.replies else Reply(body=sine_wav())
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def make(**options) -> OpenAITTS:
    return OpenAITTS(registry.options(OpenAITTS, options))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_registered():
    assert registry.get("tts", "openai") is OpenAITTS


def test_request_and_decoded_speech(server, monkeypatch):
    monkeypatch.setenv("MY_TTS_KEY", KEY)
    server.replies = [Reply(body=sine_wav(0.5, 24000, channels=2))]
    speech = make(base_url=server.url + "/", model="kokoro", voice="af_sky", api_key_env="MY_TTS_KEY").synthesize(
        'Hello "there"; $(x)', "en"
    )
    assert speech.sample_rate == 24000 and len(speech.samples) == 12000
    assert speech.samples.dtype == np.float32 and speech.samples.ndim == 1
    assert 0.35 < np.abs(speech.samples).max() < 0.45
    [req] = server.requests
    assert req["path"] == "/v1/audio/speech"
    assert json.loads(req["body"]) == {"model": "kokoro", "input": 'Hello "there"; $(x)', "voice": "af_sky", "response_format": "wav"}
    assert req["headers"]["Authorization"] == f"Bearer {KEY}"
    assert req["headers"]["Content-Type"] == "application/json"


def test_no_key_no_authorization(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    make(base_url=server.url).synthesize("Hi.", "en")
    assert "Authorization" not in server.requests[0]["headers"]


def test_base_url_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("LINLY_PUSH_OPENAI_BASE_URL", server.url)
    make().synthesize("Hi.", "en")
    assert len(server.requests) == 1
    monkeypatch.setenv("LINLY_PUSH_OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    assert make(base_url=server.url).url == server.url + "/audio/speech"  # the option wins


def test_retries_after_503_then_succeeds(server):
    server.replies = [Reply(503, b'{"error": {"message": "loading model"}}', "application/json"),
                      Reply(429, b"slow down", "text/plain"), Reply(body=sine_wav())]
    speech = make(base_url=server.url, retries=2).synthesize("Hi.", "en")
    assert len(server.requests) == 3 and speech.duration == pytest.approx(0.5)


def test_gives_up_after_its_retries(server):
    server.replies = [Reply(503, b'{"error": {"message": "loading model"}}', "application/json")]
    with pytest.raises(BackendError, match="HTTP 503: loading model"):
        make(base_url=server.url, retries=1).synthesize("Hi.", "en")
    assert len(server.requests) == 2


def test_unreachable_is_a_quick_clear_error():
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(BackendError) as err:
        make(base_url=url, retries=1).synthesize("Hi.", "en")
    assert time.monotonic() - started < 3
    assert f"cannot reach the TTS server at {url}" in str(err.value)


def test_401_names_the_variable_not_the_key(server, monkeypatch):
    monkeypatch.setenv("MY_TTS_KEY", KEY)
    server.replies = [Reply(401, json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}"}}).encode(), "application/json")]
    with pytest.raises(BackendError) as err:
        make(base_url=server.url, api_key_env="MY_TTS_KEY").synthesize("Hi.", "en")
    message = str(err.value)
    assert "HTTP 401" in message and "$MY_TTS_KEY" in message
    assert KEY not in message and KEY[3:12] not in message
    assert len(server.requests) == 1  # no retry on 401


def test_mp3_answer_is_named(server):
    server.replies = [Reply(body=b"ID3\x04\x00\x00" + bytes(200), content_type="audio/mpeg")]
    with pytest.raises(BackendError, match="is MP3, not the WAV"):
        make(base_url=server.url).synthesize("Hi.", "en")


def test_non_audio_answer(server):
    server.replies = [Reply(body=b'{"detail": "voice not found"}', content_type="application/json")]
    with pytest.raises(BackendError, match="not audio.*voice not found"):
        make(base_url=server.url).synthesize("Hi.", "en")


def test_slow_server_times_out():
    listener = socket.socket()  # accepts (the kernel's backlog) but never answers
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        started = time.monotonic()
        with pytest.raises(BackendError, match="no answer within 0.3 s"):
            make(base_url=f"http://127.0.0.1:{listener.getsockname()[1]}/v1", timeout=0.3).synthesize("Hi.", "en")
        assert time.monotonic() - started < 3
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("options", "words"),
    [({"voice": "a", "speaker": "b"}, "unknown option tts.speaker"), ({"retries": -1}, "tts.retries"),
     ({"api_key": KEY}, "unknown option tts.api_key")],
)
def test_bad_options_are_usage_errors(options, words):
    with pytest.raises(UsageError) as err:
        registry.options(OpenAITTS, options)
    assert words in str(err.value)


def test_bad_base_url_is_a_usage_error():
    with pytest.raises(UsageError, match="http:// or https://"):
        make(base_url="127.0.0.1:8000/v1")


def test_render_through_the_cli(server, tmp_path, ffprobe):
    out = tmp_path / "x.mp4"
    r = linly("render", "--script", "-", "--tts", "openai", "--avatar", "testcard", "--set", f"tts.base_url={server.url}",
              "-o", str(out), input="Hello there. 你好。\n".encode(), env={"OPENAI_API_KEY": KEY})
    assert r.returncode == 0, text(r)
    assert KEY not in text(r)
    assert [json.loads(q["body"])["input"] for q in server.requests] == ["Hello there.", "你好。"]
    info = ffprobe(out)
    assert sorted(s["codec_type"] for s in info["streams"]) == ["audio", "video"]
    assert float(info["format"]["duration"]) > 1.0


def test_cli_unreachable_exits_4(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    r = linly("render", "--script", "-", "--tts", "openai", "--avatar", "testcard", "--set", f"tts.base_url={url}",
              "--set", "tts.retries=0", "-o", str(tmp_path / "y.mp4"), input=b"Hello.\n", env={"OPENAI_API_KEY": KEY})
    assert r.returncode == 4, text(r)
    assert f"cannot reach the TTS server at {url}" in text(r) and KEY not in text(r)
