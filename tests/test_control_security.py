"""The control API is safe by default (issue 18): no web page can drive the show, no client can
take it down, and what a client does wrong is a clear 4xx. A real `linly-push live --control`
pushing to nginx-rtmp, real clients over real sockets (the browser's side is in
test_control_page.py)."""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from optional import need
from test_control import Controlled, show  # noqa: F401 - the fixture, shared

need("aiohttp", "control")
pytestmark = pytest.mark.live

HEAD_TIMEOUT, MAX_CONNECTIONS = 10.0, 128  # as linly_push.server has them (read there by the first test)


def test_the_limits_here_are_the_servers():
    from linly_push import server

    assert (server.HEAD_TIMEOUT, server.MAX_CONNECTIONS) == (HEAD_TIMEOUT, MAX_CONNECTIONS)


def raw(c: Controlled, head: str, body: bytes = b"", *, timeout: float = 30) -> tuple[int, dict, bytes]:
    """One request written as given on a socket of its own: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", c.port), timeout=timeout) as s:
        s.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        return read_answer(s)


def read_answer(s: socket.socket) -> tuple[int, dict, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"closed without an answer: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split()[1]), headers, rest


def wav(samples: np.ndarray, rate: int, **kw) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, **{"format": "WAV", **kw})
    return buf.getvalue()


def tone(seconds: float = 1.0, rate: int = 22050, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * 440 * t)
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono


def post_audio(c: Controlled, body: bytes, mode: str = "queue") -> tuple[int, dict]:
    return c.request("POST", f"/audio?mode={mode}", raw=body, headers={"Content-Type": "audio/wav"})


def queued_ids(c: Controlled) -> list[str]:
    return [e["id"] for e in c.of("queued")]


# -- where a request comes from ------------------------------------------------------------


@pytest.mark.parametrize(("host", "bound", "ok"), [
    ("127.0.0.1:8750", "127.0.0.1", True),
    ("localhost:8750", "127.0.0.1", True),
    ("LOCALHOST", "127.0.0.1", True),
    ("[::1]:8750", "::1", True),
    ("127.0.0.1:8750", "::1", False),
    ("evil.example:8750", "127.0.0.1", False),
    ("evil.localhost:8750", "127.0.0.1", False),  # a browser resolves it to 127.0.0.1 itself
    ("127.0.0.1.evil.example", "127.0.0.1", False),
    ("127.0.0.1:notaport", "127.0.0.1", False),
    ("", "127.0.0.1", False),
    ("192.168.1.5:8750", "192.168.1.5", True),
    ("127.0.0.1:8750", "localhost", True),
    ("10.0.0.7:8750", "0.0.0.0", True),  # every address: any address, this machine's names
    ("studio:8750", "0.0.0.0", True),
    ("evil.example", "0.0.0.0", False),
])
def test_only_this_servers_own_names_are_taken_as_host(host, bound, ok):
    from linly_push.server import host_allowed

    assert host_allowed(host, bound, frozenset({"studio"})) is ok


def test_a_page_of_another_site_is_refused_whatever_it_asks():
    from linly_push.server import refusal

    home = {"Host": "127.0.0.1:8750"}
    assert refusal("POST", "/say", home, "127.0.0.1") is None  # curl, a program: no Origin
    assert refusal("POST", "/say", {**home, "Origin": "http://127.0.0.1:8750"}, "127.0.0.1") is None
    assert refusal("GET", "/events", {**home, "Sec-Fetch-Site": "same-origin"}, "127.0.0.1") is None
    for foreign in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": "http://127.0.0.1:3000"},
                    {"Origin": "http://localhost:8750"}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
        for method, path in (("POST", "/say"), ("POST", "/interrupt"), ("GET", "/events"), ("GET", "/ws"),
                             ("OPTIONS", "/say"), ("GET", "/status")):
            assert "another site" in refusal(method, path, {**home, **foreign}, "127.0.0.1"), (foreign, path)
    # The operator page itself may be opened from a link or a bookmark; the names still count.
    assert refusal("GET", "/", {**home, "Sec-Fetch-Site": "cross-site"}, "127.0.0.1") is None
    assert "not 'evil.example'" in refusal("GET", "/", {"Host": "evil.example"}, "127.0.0.1")


def test_requests_from_elsewhere_are_refused_and_never_reach_the_show(show):
    c = show()
    port = c.port
    auth = f"Authorization: Bearer {c.token}\n"
    body = json.dumps({"text": "Nobody may make me say this."}).encode()
    json_head = f"Content-Type: application/json\nContent-Length: {len(body)}\n"
    cases = [
        # DNS rebinding: a page at evil.example whose name now points here.
        (f"GET /status HTTP/1.1\nHost: evil.example:{port}\n{auth}", b"", 403, "not 'evil.example"),
        (f"GET / HTTP/1.1\nHost: evil.example:{port}\n", b"", 403, "not 'evil.example"),
        (f"POST /say HTTP/1.1\nHost: evil.example:{port}\n{auth}{json_head}", body, 403, "not 'evil.example"),
        # A page of another site, even one that knows the token.
        (f"POST /say HTTP/1.1\nHost: 127.0.0.1:{port}\nOrigin: http://evil.example\n{auth}{json_head}", body, 403, "another site"),
        (f"POST /interrupt HTTP/1.1\nHost: 127.0.0.1:{port}\nOrigin: http://127.0.0.1:1\n{auth}Content-Length: 0\n", b"", 403, "another site"),
        (f"GET /events HTTP/1.1\nHost: 127.0.0.1:{port}\nOrigin: null\n{auth}", b"", 403, "another site"),
        (f"POST /say HTTP/1.1\nHost: 127.0.0.1:{port}\nSec-Fetch-Site: cross-site\n{auth}{json_head}", body, 403, "another site"),
        # Its preflight is refused, with nothing that would let the browser go on.
        (f"OPTIONS /say HTTP/1.1\nHost: 127.0.0.1:{port}\nOrigin: http://evil.example\n"
         "Access-Control-Request-Method: POST\nAccess-Control-Request-Headers: content-type, authorization\n", b"", 403, "another site"),
        # What a form or a no-cors fetch can send without asking first.
        (f"POST /say HTTP/1.1\nHost: 127.0.0.1:{port}\n{auth}Content-Type: text/plain\nContent-Length: {len(body)}\n", body, 415, "application/json"),
        (f"POST /say HTTP/1.1\nHost: 127.0.0.1:{port}\n{auth}Content-Type: application/x-www-form-urlencoded\n"
         f"Content-Length: {len(body)}\n", body, 415, "application/json"),
        (f"POST /audio?mode=now HTTP/1.1\nHost: 127.0.0.1:{port}\n{auth}Content-Type: text/plain\nContent-Length: 4\n", b"RIFF", 415, "audio"),
        (f"POST /audio HTTP/1.1\nHost: 127.0.0.1:{port}\n{auth}Content-Type: multipart/form-data; boundary=x\nContent-Length: 4\n", b"RIFF", 415, "audio"),
    ]
    for head, payload, code, says in cases:
        status, headers, answer = raw(c, head, payload)
        assert status == code and says in json.loads(answer)["error"], (head, status, answer)
        assert not any(h.startswith("access-control-allow") for h in headers), headers
    # The same requests from this server's own page, or a program, are taken.
    status, _, answer = raw(c, f"POST /say HTTP/1.1\nHost: localhost:{port}\nOrigin: http://localhost:{port}\n{auth}{json_head}", body)
    assert status == 202, answer
    said = json.loads(answer)["id"]
    c.wait_for("spoken", id=said)
    assert queued_ids(c) == [said]
    status, headers, _ = raw(c, f"GET / HTTP/1.1\nHost: 127.0.0.1:{port}\n")
    assert status == 200 and headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in headers["content-security-policy"]
    c.stop()


def test_a_token_is_made_when_none_is_given_and_handed_over_privately(show):
    c = show()  # no LINLY_PUSH_CONTROL_TOKEN: one is made
    token_file, page_file = Path(c.control["token_file"]), Path(c.control["page_file"])
    for f in (token_file, page_file):
        assert f.stat().st_mode & 0o777 == 0o600, oct(f.stat().st_mode)
    assert token_file.parent.stat().st_mode & 0o777 == 0o700
    assert len(c.token) >= 32 and f"#token={c.token}" in page_file.read_text()
    status, body = c.request("GET", "/status", headers={"Authorization": None})
    assert status == 401 and str(token_file) in body["error"]
    assert c.request("GET", "/status")[0] == 200
    code, err = c.stop()  # checks the token was printed nowhere
    assert code == 143, err
    assert not token_file.exists() and not page_file.exists()
    assert c.token not in json.dumps(c.events) + err


# -- what a client sends ---------------------------------------------------------------------


def test_bodies_and_headers_that_are_wrong_get_a_4xx_and_no_traceback(show):
    c = show(env={"LINLY_PUSH_CONTROL_TOKEN": "t0ken-for-the-malformed-ones"})
    port, auth = c.port, "Authorization: Bearer t0ken-for-the-malformed-ones\n"
    for head in (f"POST /say HTTP/1.1\nHost: 127.0.0.1:{port}\n{auth}Content-Length: -5\n",
                 f"POST /say HTTP/1.1\nHost: 127.0.0.1:{port}\n{auth}Content-Length: nine\n",
                 "GARBAGE\n", f"GET /status HTTP/1.1\nHost: 127.0.0.1:{port}\nBad Header\n"):
        status, _, _ = raw(c, head)
        assert status == 400, head
    nested = b"[" * 100_000 + b"]" * 100_000
    status, body = c.request("POST", "/say", raw=nested[: 60 * 1024])
    assert status == 400 and "nested too deeply" in body["error"], body
    status, body = c.request("POST", "/say", raw=b'{"text": "Hi.", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert status in (400, 422) and isinstance(body, dict), body
    status, body = c.request("POST", "/say", {"text": "Hi.", "voice": "v" * 201})
    assert status == 422 and "at most 200 characters" in body["error"], body
    c.wait_for("spoken", id=c.say("Still on air after all that."))
    from prometheus_client.parser import text_string_to_metric_families

    metrics = {m.name: m for m in text_string_to_metric_families(c.request("GET", "/metrics")[1])}
    assert metrics["linly_push_control_rejected"].samples[0].value >= 4  # the four malformed ones, counted
    code, err = c.stop()
    assert code == 143 and "Traceback" not in err and len(err.strip().splitlines()) <= 2, err


def test_a_say_request_whose_body_comes_in_pieces_is_read_whole(show):
    c = show()
    text = "This request came in several pieces, as a long one from a real client does. " * 5
    body = json.dumps({"text": text.strip(), "mode": "queue"}).encode()
    accepted = 0
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", c.port), timeout=30) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall((f"POST /say HTTP/1.1\r\nHost: 127.0.0.1:{c.port}\r\nAuthorization: Bearer {c.token}\r\n"
                       f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode())
            for piece in (body[:10], body[10:200], body[200:]):
                time.sleep(0.05)  # each piece its own segment, as a real network delivers them
                s.sendall(piece)
            status, _, answer = read_answer(s)
            accepted += status == 202
            assert status == 202, answer
    assert accepted == 10
    c.request("POST", "/interrupt")
    c.stop()


# -- recordings --------------------------------------------------------------------------------


def ffmpeg_wav(tmp_path: Path, name: str, *args: str) -> bytes:
    out = tmp_path / name
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.6",
                    *args, str(out)], check=True, timeout=60)
    return out.read_bytes()


def test_wav_files_as_ffmpeg_and_sox_write_them_are_played(show, tmp_path):
    c = show()
    files = {
        "24-bit (WAVE_FORMAT_EXTENSIBLE)": ffmpeg_wav(tmp_path, "s24.wav", "-ac", "2", "-c:a", "pcm_s24le"),
        "float32": ffmpeg_wav(tmp_path, "f32.wav", "-c:a", "pcm_f32le"),
        "5.1": ffmpeg_wav(tmp_path, "six.wav", "-af", "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0"),
        "RF64": ffmpeg_wav(tmp_path, "rf64.wav", "-rf64", "always"),
        "WAVEX float (soundfile)": wav(tone(0.6), 22050, format="WAVEX", subtype="FLOAT"),
    }
    for kind in ("24-bit (WAVE_FORMAT_EXTENSIBLE)", "5.1"):
        assert files[kind][20:22] == b"\xfe\xff", kind  # really WAVE_FORMAT_EXTENSIBLE
    assert files["RF64"][:4] == b"RF64"
    ids = {}
    for kind, data in files.items():
        status, body = post_audio(c, data)
        assert status == 202, (kind, body)
        ids[kind] = body["id"]
    for item in ids.values():
        c.wait_for("spoken", id=item)
    c.stop()


def test_broken_and_hostile_wav_files_are_refused_at_once(show, tmp_path):
    c = show(env={"TMPDIR": str(tmp_path)})
    good = wav(tone(0.5, 8000), 8000, subtype="PCM_16")
    one_hertz = bytearray(wav(tone(4.0, 8000), 8000, subtype="PCM_16"))  # a 64 KB file...
    one_hertz[24:28] = (1).to_bytes(4, "little")  # ...whose header says 1 Hz
    one_hertz[28:32] = (2).to_bytes(4, "little")
    many = bytearray(good)
    many[22:24] = (200).to_bytes(2, "little")  # 200 channels
    samples = tone(1.0, 22050)
    samples[100:200] = np.inf
    samples[300] = -np.inf
    samples[400] = np.nan
    cases = [
        (bytes(one_hertz), 422, "1 Hz"),
        (bytes(many), 422, None),
        (wav(samples, 22050, subtype="FLOAT"), 422, "not numbers"),
        (b"RIFF, but not really a WAV file", 415, "not a WAV"),
        (wav(tone(0.5), 22050, format="FLAC"), 415, "not a WAV"),
    ]
    for data, code, says in cases:
        started = time.monotonic()
        status, body = post_audio(c, data)
        assert status == code and (says is None or says in body["error"]), body
        assert time.monotonic() - started < 20, "not refused at once"
        assert str(tmp_path) not in body["error"] and "linly-push-control" not in body["error"], body
    c.wait_for("spoken", id=c.say("Still on air."))
    uploads = list(tmp_path.glob("linly-push-control-*/**/*.wav"))
    assert uploads == [], uploads  # nothing refused is kept
    code, err = c.stop()
    assert code == 143 and "Traceback" not in err, err


def test_uploads_are_deleted_once_played_interrupted_or_refused(show, tmp_path):
    c = show(env={"TMPDIR": str(tmp_path)})
    [folder] = tmp_path.glob("linly-push-control-*")

    def kept() -> list[Path]:
        return list(folder.rglob("*.wav"))

    played = post_audio(c, wav(tone(0.5), 22050))[1]["id"]
    c.wait_for("spoken", id=played)
    c.until(lambda: kept() == [], "the played upload deleted")
    long = post_audio(c, wav(tone(20.0, 8000), 8000))[1]["id"]
    c.until(lambda: c.request("GET", "/status")[1]["speaking"], "speaking")
    waiting = post_audio(c, wav(tone(1.0), 22050))[1]["id"]
    assert len(kept()) == 2
    assert set(c.request("POST", "/interrupt")[1]["interrupted"]) == {long, waiting}
    c.until(lambda: kept() == [], "the interrupted uploads deleted")
    # A full queue says so before the body is read: a 60 MB upload is answered at once.
    c.request("POST", "/pause")
    for i in range(100):
        assert c.request("POST", "/say", {"text": f"Item {i}."})[0] == 202
    with socket.create_connection(("127.0.0.1", c.port), timeout=30) as s:
        s.sendall((f"POST /audio HTTP/1.1\r\nHost: 127.0.0.1:{c.port}\r\nAuthorization: Bearer {c.token}\r\n"
                   f"Content-Type: audio/wav\r\nContent-Length: {60 * 2**20}\r\n\r\n").encode() + b"RIFF")
        status, _, answer = read_answer(s)
    assert status == 429 and "queue" in json.loads(answer)["error"]
    assert kept() == []
    c.request("POST", "/interrupt")
    c.stop()


# -- clients that hold on --------------------------------------------------------------------


def _low_descriptor_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))  # the default soft limit of most systems


@pytest.mark.slow
def test_a_thousand_idle_connections_do_not_take_the_show_down(show, rtmp_server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1400:
        pytest.skip(f"this test needs 1400 descriptors of its own (the hard limit is {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1400), hard))
    c = show("--set", "reconnect.first_delay=0.5", "--set", "reconnect.max_delay=1",
             env={"LINLY_PUSH_CONTROL_TOKEN": "t0ken-under-siege"}, preexec=_low_descriptor_limit)
    idle, refused = [], 0
    try:
        for _ in range(1100):
            s = socket.create_connection(("127.0.0.1", c.port), timeout=30)
            idle.append(s)
        for s in idle[MAX_CONNECTIONS:]:
            # Past the cap: told so at once, and closed. (Those let in before them are let go
            # after HEAD_TIMEOUT, which frees places while the test connects: not all are 503s.)
            s.settimeout(3 * HEAD_TIMEOUT)
            refused += s.recv(200).startswith(b"HTTP/1.1 503")
        assert refused > 500, refused
        # The show reconnects (new pipes, a new ffmpeg) while every idle connection it let in holds on.
        rtmp_server.stop()
        c.wait_for("dropped")
        rtmp_server.start()
        c.wait_for("reconnected", timeout=60)
    finally:
        for s in idle:
            s.close()
    c.until(lambda: c.request("GET", "/healthz", check=False)[0] == 200, "healthy")
    c.wait_for("spoken", id=c.say("Still on air after a thousand idle clients."))
    code, err = c.stop()
    assert code == 143 and "Traceback" not in err and len(err.strip().splitlines()) <= 3, err[-3000:]


@pytest.mark.slow
def test_a_client_that_sends_its_request_slowly_is_let_go(show):
    c = show()
    head = f"GET /status HTTP/1.1\r\nHost: 127.0.0.1:{c.port}\r\nAuthorization: Bearer {c.token}\r\nX-Slow: "
    with socket.create_connection(("127.0.0.1", c.port), timeout=60) as s:
        s.sendall(head.encode())
        started = time.monotonic()
        closed = None
        while time.monotonic() - started < 3 * HEAD_TIMEOUT + 30:
            try:
                s.sendall(b"a")  # a byte a second, never the end of the headers (slowloris)
            except OSError:
                closed = time.monotonic() - started
                break
            s.settimeout(1.0)
            try:
                if s.recv(1024) == b"":
                    closed = time.monotonic() - started
                    break
            except socket.timeout:
                pass
        assert closed is not None, "the slow client was never let go"
    body = json.dumps({"text": "Slow."}).encode()
    with socket.create_connection(("127.0.0.1", c.port), timeout=60) as s:
        s.sendall((f"POST /say HTTP/1.1\r\nHost: 127.0.0.1:{c.port}\r\nAuthorization: Bearer {c.token}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body[:3])
        status, _, answer = read_answer(s)  # the rest never comes
    assert status == 408 and "did not arrive" in json.loads(answer)["error"]
    assert c.request("GET", "/healthz")[0] == 200
    c.stop()


# -- stopping in the middle of an upload --------------------------------------------------------


def _terminate(c: Controlled) -> float:
    """SIGTERM, and the seconds until linly-push has ended."""
    started = time.monotonic()
    c.proc.send_signal(signal.SIGTERM)
    c.proc.wait(60)
    took = time.monotonic() - started
    c.reader.join(10)
    return took


def _uploaded(folder: Path, size: int) -> bool:
    """Whether an upload of ``size`` bytes is all on the server's disk: it is being measured."""
    return any(f.stat().st_size == size for f in folder.glob("linly-push-control-*/**/*.wav"))


@pytest.mark.slow
def test_sigterm_during_an_upload_or_its_measurement_ends_the_show_within_2_s(show, tmp_path):
    long = wav((tone(60 * 60, 8000) * 0.5).astype(np.float32), 8000, subtype="PCM_16")  # an hour: 57 MB
    assert len(long) > 50 * 2**20
    # During the measurement of an hour of audio (seconds of work).
    c = show(env={"TMPDIR": str(tmp_path)})
    sent = threading.Thread(target=lambda: post_audio(c, long), daemon=True)
    sent.start()
    c.until(lambda: _uploaded(tmp_path, len(long)), "the upload being measured")
    took = _terminate(c)
    assert c.proc.returncode == 143 and took < 2.0, took
    # During the upload itself.
    c = show()
    with socket.create_connection(("127.0.0.1", c.port), timeout=30) as s:
        s.sendall((f"POST /audio HTTP/1.1\r\nHost: 127.0.0.1:{c.port}\r\nAuthorization: Bearer {c.token}\r\n"
                   f"Content-Type: audio/wav\r\nContent-Length: {len(long)}\r\n\r\n").encode() + long[: len(long) // 2])
        took = _terminate(c)
    assert c.proc.returncode == 143 and took < 2.0, took


def test_the_operator_is_told_where_the_token_is_and_never_the_token(rtmp_server):
    import sys

    from broadcast import SMALL, url
    from rtmp_server import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "linly_push", "live", "--control", str(port), "--url", url(rtmp_server), *SMALL],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "STREAM_KEY": "k3y-of-the-operator"}, start_new_session=True)
    try:
        line = proc.stderr.readline()
        assert line.startswith(f"Control API on http://127.0.0.1:{port}/ · token in "), line
        token_file = Path(line.split(" token in ")[1].split(" · ")[0])
        page_file = Path(line.rstrip().split("operator page: open ")[1])
        token = token_file.read_text().strip()
        assert page_file.exists() and token not in line
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and token not in out + err and "k3y-of-the-operator" not in out + err
