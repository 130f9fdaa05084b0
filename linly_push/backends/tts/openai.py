"""Any OpenAI-compatible ``/v1/audio/speech`` server (OpenAI itself, and many local TTS servers).

The server is ``base_url`` (else the environment variable LINLY_PUSH_OPENAI_BASE_URL, else
http://127.0.0.1:8000/v1). The API key comes only from the environment variable named by
``api_key_env``, never from options or presets, and never appears in a message. Only the
standard library speaks HTTP here.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from pydantic import Field

from ...errors import BackendError, UsageError
from ...media import Speech
from ..base import TRUSTED, BackendOptions, TTSBackend
from .command import decode_wav

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
BASE_URL_ENV = "LINLY_PUSH_OPENAI_BASE_URL"
_RETRY_STATUS = {429, 500, 502, 503, 504}
_FIRST_BACKOFF = 0.5  # seconds, doubled per retry
_MAX_BACKOFF = 5.0


class OpenAITTS(TTSBackend):
    name = "openai"
    description = "an OpenAI-compatible /v1/audio/speech server (base_url, model, voice; key from the environment)"

    class Options(BackendOptions):
        # Where the text and the key go: neither from a confined rundown.
        base_url: str | None = Field(None, json_schema_extra=TRUSTED)  # None: $LINLY_PUSH_OPENAI_BASE_URL, else DEFAULT_BASE_URL
        model: str = "tts-1"
        voice: str = "alloy"
        api_key_env: str = Field("OPENAI_API_KEY", json_schema_extra=TRUSTED)  # the variable's name, not the key
        timeout: float = Field(30, gt=0)  # seconds per request
        retries: int = Field(2, ge=0, le=10)  # more tries after a connection error, 429 or 5xx

    options: Options

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        base = options.base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"openai: tts.base_url must be an http:// or https:// URL, got {base!r}")
        self.base_url = base.rstrip("/")
        self.url = self.base_url + "/audio/speech"

    def synthesize(self, text: str, lang: str) -> Speech:
        opts = self.options
        key = os.environ.get(opts.api_key_env, "")
        body = json.dumps({"model": opts.model, "input": text, "voice": opts.voice, "response_format": "wav"}).encode()
        headers = {"Content-Type": "application/json", "Accept": "audio/wav"}
        if key:
            headers["Authorization"] = f"Bearer {key}"

        for attempt in range(opts.retries + 1):
            last = attempt == opts.retries
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=opts.timeout) as response:
                    data = response.read()
                    kind = response.headers.get("Content-Type", "")
                return self._decode(data, kind)
            except urllib.error.HTTPError as exc:
                detail = _detail(exc)
                if exc.code in _RETRY_STATUS and not last:
                    time.sleep(_retry_after(exc, attempt))
                    continue
                raise BackendError(_scrub(self._http_message(exc.code, detail), key)) from None
            except TimeoutError:
                raise BackendError(
                    f"openai: the TTS server at {self.base_url} sent no answer within {opts.timeout:g} s "
                    "(raise it with --set tts.timeout=SECONDS)"
                ) from None
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", None) or exc
                if isinstance(reason, TimeoutError):
                    raise BackendError(
                        f"openai: cannot reach the TTS server at {self.base_url}: no answer within {opts.timeout:g} s"
                    ) from None
                if not last:
                    time.sleep(_backoff(attempt))
                    continue
                tries = f" (tried {opts.retries + 1} times)" if opts.retries else ""
                raise BackendError(_scrub(f"openai: cannot reach the TTS server at {self.base_url}: {reason}{tries}", key)) from None
        raise AssertionError("unreachable")  # the loop returns or raises

    def _http_message(self, code: int, detail: str) -> str:
        where = f"openai: the TTS server at {self.base_url} answered HTTP {code}"
        detail = f": {detail}" if detail else ""
        if code in (401, 403):
            have = "is set" if os.environ.get(self.options.api_key_env) else "is not set"
            return f"{where}{detail} (check the API key in ${self.options.api_key_env}, which {have})"
        if code == 404:
            return f"{where}{detail} (is {self.url} an OpenAI-compatible /v1/audio/speech endpoint? check tts.base_url)"
        return where + detail

    def _decode(self, data: bytes, content_type: str) -> Speech:
        what = f"openai: the answer from {self.url}"
        if not data:
            raise BackendError(f"{what} is empty")
        if data[:3] == b"ID3" or (data[0] == 0xFF and len(data) > 1 and data[1] & 0xE0 == 0xE0) or "mpeg" in content_type:
            raise BackendError(
                f"{what} is MP3, not the WAV asked for (response_format=wav); "
                "use a server or model that can answer in WAV"
            )
        if data[:4] != b"RIFF" and ("json" in content_type or data[:1] in (b"{", b"<")):
            snippet = data[:200].decode(errors="replace").strip()
            raise BackendError(f"{what} is not audio ({content_type or 'no content type'}): {snippet}")
        return decode_wav(data, what)


def _detail(exc: urllib.error.HTTPError) -> str:
    """The server's own words about an error, short."""
    try:
        raw = exc.read(2000).decode(errors="replace")
    except Exception:
        return ""
    try:
        parsed = json.loads(raw)
        err = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
        message = err.get("message") or err.get("detail") if isinstance(err, dict) else err
        raw = str(message) if message else raw
    except (ValueError, AttributeError):
        pass
    return " ".join(raw.split())[:200]


def _backoff(attempt: int) -> float:
    return min(_FIRST_BACKOFF * 2**attempt, _MAX_BACKOFF)


def _retry_after(exc: urllib.error.HTTPError, attempt: int) -> float:
    try:
        return min(max(float(exc.headers.get("Retry-After", "")), 0.0), _MAX_BACKOFF)
    except (TypeError, ValueError):
        return _backoff(attempt)


def _scrub(message: str, key: str) -> str:
    return message.replace(key, "****") if key else message
