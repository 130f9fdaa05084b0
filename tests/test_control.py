"""The control API (issue 11), end to end: `linly-push live --control` pushing to a real
nginx-rtmp, driven by a real HTTP client (urllib, aiohttp's WebSocket client) from this
process. Behaviours, not times: the timings are in benchmarks/control_latency.py."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from broadcast import KEY, SMALL, Broadcast, url
from optional import need
from rtmp_server import free_port
from speechprint import missing

need("aiohttp", "control")
pytestmark = pytest.mark.live

LONG = "This request is a long one, so that there is time to interrupt it well before it ends, with more words than needed."
assert len(LONG) < 160  # one sentence, as the preset cuts them


class Controlled(Broadcast):
    """`linly-push live --control PORT --json` in the background; its events read by a thread,
    so the test can make requests while the show runs."""

    def __init__(self, rtmp, *args: str, env: dict | None = None, port: int | None = None, preexec=None) -> None:
        self.port = port or free_port()
        super().__init__("--control", str(self.port), "--url", url(rtmp), *args, env=env, preexec=preexec)
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.token: str | None = (env or {}).get("LINLY_PUSH_CONTROL_TOKEN")
        self.wait_for("started")  # after the control API's own event
        self.control = next((e for e in self.events if e["event"] == "control"), {})
        if self.token is None and self.control.get("token_file"):  # made at start, in a file only we can read
            self.token = Path(self.control["token_file"]).read_text().strip()
        self.until(lambda: self.request("GET", "/healthz", check=False)[0] == 200, "healthy")

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.lock:
                self.events.append(json.loads(line))

    def until(self, ok, what: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while not (found := ok()):
            assert time.monotonic() < deadline, f"no {what} within {timeout} s: {self.events[-20:]}"
            assert self.proc.poll() is None, f"linly-push ended: {self.proc.stderr.read().decode()}"
            time.sleep(0.05)
        return found

    def wait_for(self, kind: str, count: int = 1, timeout: float = 60, **fields) -> dict:
        def found():
            with self.lock:
                hits = [e for e in self.events if e["event"] == kind and all(e.get(k) == v for k, v in fields.items())]
            return hits[count - 1] if len(hits) >= count else None

        return self.until(found, f"{kind} {fields}", timeout)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, body=None, *, raw: bytes | None = None, headers=None, check=True):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {"Content-Type": "application/json", **self.auth, **(headers or {})}
        hdrs = {k: v for k, v in hdrs.items() if v is not None}  # None: leave that header out
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        except OSError:
            if check:
                raise
            return 0, None
        payload = json.loads(text) if text and text.lstrip().startswith(("{", "[")) else text
        return status, payload

    def say(self, text: str, **more) -> str:
        status, body = self.request("POST", "/say", {"text": text, **more})
        assert status == 202, body
        return body["id"]

    def stop(self) -> tuple[int, str]:
        self.proc.terminate()
        self.proc.wait(60)
        self.reader.join(10)  # it reads standard output to its end
        err = self.proc.stderr.read()
        everything = json.dumps(self.events) + err.decode()
        assert KEY not in everything
        if self.token:
            assert self.token not in everything, "the control token leaked"
        return self.proc.returncode, err.decode()

    def spoken(self) -> list[str]:
        with self.lock:
            return [e["text"] for e in self.events if e["event"] == "sentence"]


@pytest.fixture
def show(rtmp_server):
    running: list[Controlled] = []

    def start(*args: str, **kw) -> Controlled:
        running.append(Controlled(rtmp_server, *args, **kw))
        return running[-1]

    yield start
    for c in running:
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()


def test_a_channel_that_idles_until_told_what_to_say(show, rtmp_server):
    c = show()
    first = c.say("Good evening. This came over the control API.")
    queued = c.wait_for("queued", id=first)
    assert (queued["request"], queued["mode"]) == ("say", "queue")
    c.wait_for("spoken", id=first)
    assert c.spoken() == ["Good evening.", "This came over the control API."]
    status, s = c.request("GET", "/status")
    assert status == 200 and s["speaking"] is False and s["state"] == "on_air" and s["frames"] > 0
    code, err = c.stop()
    assert code == 143, err
    [recording] = rtmp_server.recordings()
    assert missing([recording], ["Good evening.", "This came over the control API."]) == []


def test_interrupt_stops_speech_and_clears_the_queue(show):
    c = show()
    long = c.say(LONG)
    later = c.say("This was queued and never said.")
    c.wait_for("sentence", text=LONG)
    status, body = c.request("POST", "/interrupt")
    assert status == 200 and body["interrupted"] == [long, later]
    c.wait_for("interrupted", id=long, state="interrupted")
    c.wait_for("interrupted", id=later, state="cancelled")
    after = c.say("After the interrupt.")
    c.wait_for("spoken", id=after)
    assert c.of("spoken") == [e for e in c.of("spoken") if e["id"] == after]  # the long one never finished
    assert "This was queued and never said." not in c.spoken()
    c.stop()


def test_an_interrupt_before_the_speech_starts_still_stops_it(show):
    c = show()
    early = c.say("Stopped before a word of it was heard.")
    c.request("POST", "/interrupt")  # at once: it is being synthesized, or queued
    after = c.say("Only this is heard.")
    c.wait_for("spoken", id=after)
    assert c.spoken() == ["Only this is heard."]
    assert c.wait_for("interrupted", id=early)["state"] in ("interrupted", "cancelled")  # being made, or queued
    c.stop()


def test_say_now_interrupts_and_next_goes_before_the_queue(show):
    c = show()
    long = c.say(LONG)
    c.wait_for("sentence", text=LONG)
    now = c.say("Breaking news, said at once.", mode="now")
    c.wait_for("interrupted", id=long)
    c.wait_for("spoken", id=now)
    status, _ = c.request("POST", "/pause")
    a = c.say("Queued first.")
    b = c.say("Queued second.")
    n = c.say("Put next.", mode="next")
    c.request("POST", "/resume")
    c.wait_for("spoken", id=b)
    assert c.spoken()[-3:] == ["Put next.", "Queued first.", "Queued second."]
    assert {a, b, n} <= {e["id"] for e in c.of("spoken")}
    c.stop()


def test_pause_stops_at_once_and_resume_says_the_cut_sentence_again(show):
    c = show()
    item = c.say("One sentence before the pause. " + LONG)
    c.wait_for("sentence", text=LONG)
    c.request("POST", "/pause")
    c.until(lambda: c.request("GET", "/status")[1]["speaking"] is False, "not speaking")
    assert c.request("GET", "/status")[1]["paused"] is True
    [queued] = c.request("GET", "/queue")[1]["items"]
    assert queued["id"] == item and queued["state"] == "queued"
    c.request("POST", "/resume")
    c.wait_for("spoken", id=item)
    assert c.spoken().count(LONG) == 2, [e for e in c.events if e["event"] != "status"]  # cut, then said again in full
    c.stop()


def test_the_queue_says_how_much_of_an_item_has_gone_on_air(show):
    c = show()
    item = c.say("A first short sentence. " + LONG)
    c.wait_for("sentence", text=LONG)
    [speaking] = c.request("GET", "/queue")[1]["items"]
    assert (speaking["id"], speaking["state"], speaking["parts"], speaking["done"]) == (item, "speaking", 2, 1), speaking
    c.request("POST", "/interrupt")
    c.stop()


def test_the_queue_can_be_read_and_an_item_taken_out(show):
    c = show()
    c.request("POST", "/pause")
    keep, drop = c.say("Stays in the queue."), c.say("Taken out again.")
    status, q = c.request("GET", "/queue")
    assert [i["id"] for i in q["items"]] == [keep, drop] and all(i["state"] == "queued" for i in q["items"])
    assert c.request("DELETE", f"/queue/{drop}") == (200, {"cancelled": drop})
    assert c.request("DELETE", "/queue/q999")[0] == 404
    assert [i["id"] for i in c.request("GET", "/queue")[1]["items"]] == [keep]
    c.request("POST", "/resume")
    c.wait_for("spoken", id=keep)
    assert "Taken out again." not in c.spoken()
    c.stop()


def test_bad_requests_are_clear_4xx_errors_and_the_stream_carries_on(show):
    c = show()
    frames = c.wait_for("status")["frames"]
    cases = [
        (dict(raw=b"{not json"), 400, "not JSON"),
        (dict(body={"text": "Hi.", "shout": True}), 422, "unknown field 'shout'"),
        (dict(body={"text": ""}), 422, "text is empty"),
        (dict(body={}), 422, "text is missing"),
        (dict(body=["Hi."]), 422, "a JSON object"),
        (dict(body={"text": "Hi.", "mode": "sometime"}), 422, "mode"),
        (dict(body={"text": "x" * 20_000}), 422, "too long"),
        (dict(raw=b'{"text": "' + b"x" * (1024 * 1024) + b'"}'), 413, "too large"),
        (dict(body={"text": "Hi.", "voice": "zz-no-such-voice"}), 422, "no voice 'zz-no-such-voice'"),
        (dict(body={"text": "Hi.", "avatar": "puppet"}), 422, "unknown avatar backend 'puppet'"),
        (dict(body={"text": "..."}), 422, "nothing to say"),
    ]
    for kw, code, says in cases:
        status, body = c.request("POST", "/say", **kw)
        assert status == code and says in body["error"], (kw.get("body"), status, body)
    status, body = c.request("POST", "/audio", raw=b"RIFF, but not really a WAV file", headers={"Content-Type": "audio/wav"})
    assert status == 415 and "not a WAV" in body["error"]
    assert c.request("POST", "/audio", raw=b"", headers={"Content-Type": "audio/wav"})[0] == 400
    assert c.request("GET", "/nowhere")[0] == 404
    # A full queue refuses more, and says so.
    c.request("POST", "/pause")
    codes = [c.request("POST", "/say", {"text": f"Item {i}."})[0] for i in range(101)]
    assert codes[:100] == [202] * 100 and codes[100] == 429
    c.request("POST", "/interrupt")
    c.wait_for("status", count=len(c.of("status")) + 2)
    assert c.of("status")[-1]["frames"] > frames and c.of("dropped") == []
    c.stop()


def test_a_recording_posted_as_wav_is_played(show, rtmp_server):
    c = show()
    t = np.arange(22050) / 22050
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * 440 * t), 22050, format="WAV")
    status, body = c.request("POST", "/audio?mode=next", raw=buf.getvalue(), headers={"Content-Type": "audio/wav"})
    assert status == 202
    queued = c.wait_for("queued", id=body["id"])
    assert (queued["request"], queued["mode"]) == ("audio", "next")
    c.wait_for("spoken", id=body["id"])
    c.stop()


def test_events_stream_over_sse_and_websocket(show):
    c = show()
    sse = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{c.port}/events", headers=c.auth), timeout=30)
    aiohttp = need("aiohttp", "control")
    got_ws: list[dict] = []

    async def ws_client() -> None:
        async with aiohttp.ClientSession(headers=c.auth) as session, session.ws_connect(f"http://127.0.0.1:{c.port}/ws") as ws:
            async for msg in ws:
                got_ws.append(json.loads(msg.data))
                if got_ws[-1]["event"] == "spoken":
                    return

    runner = threading.Thread(target=lambda: asyncio.run(ws_client()), daemon=True)
    runner.start()
    c.until(lambda: c.request("GET", "/healthz")[0] == 200, "ready")
    time.sleep(0)  # the WebSocket connects while the first request is made
    item = c.say("Heard by every listener.")
    seen = []
    for raw in sse:
        line = raw.decode().strip()
        if line.startswith("data: "):
            seen.append(json.loads(line[6:]))
            if seen[-1]["event"] == "spoken":
                break
    sse.close()
    runner.join(30)
    for events in (seen, got_ws):
        kinds = [e["event"] for e in events]
        assert {"queued", "sentence", "spoken", "status"} <= set(kinds), kinds
        assert next(e for e in events if e["event"] == "spoken")["id"] == item
    c.stop()


def test_healthz_and_metrics(show):
    c = show()
    assert c.request("GET", "/healthz") == (200, {"ok": True, "state": "on_air"})
    c.wait_for("spoken", id=c.say("Counted in the metrics."))
    c.wait_for("status", count=len(c.of("status")) + 1)
    status, text = c.request("GET", "/metrics")
    assert status == 200
    from prometheus_client.parser import text_string_to_metric_families

    metrics = {m.name: m for m in text_string_to_metric_families(text)}
    for name in ("frames_sent", "frames_repeated", "reconnects", "buffer_seconds", "bitrate_kbps", "queue_depth",
                 "speaking", "say_to_first_sound_seconds", "tts_seconds", "draw_seconds"):
        assert f"linly_push_{name}" in metrics, sorted(metrics)
    first = metrics["linly_push_say_to_first_sound_seconds"]
    assert next(s.value for s in first.samples if s.name.endswith("_count")) == 1
    assert next(s.value for s in metrics["linly_push_frames_sent"].samples) > 0
    c.stop()


def test_a_token_guards_every_endpoint_and_is_never_printed(show):
    token = "ctl-t0ken-s3cret-77"
    c = show(env={"LINLY_PUSH_CONTROL_TOKEN": token})
    for path in ("/status", "/queue", "/metrics", "/healthz"):
        assert c.request("GET", path, headers={"Authorization": "Bearer wrong"})[0] == 401
    status, body = c.request("POST", "/say", {"text": "Hi."}, headers={"Authorization": None})
    assert status == 401 and body["error"].startswith("a token is needed") and "LINLY_PUSH_CONTROL_TOKEN" in body["error"]
    status, body = c.request("POST", "/say", {"text": "Hi."}, headers={"Authorization": "Bearer wrong"})
    assert status == 401 and body["error"].startswith("the token is wrong")
    assert c.request("GET", "/")[0] == 200  # the page itself asks for the token
    c.wait_for("spoken", id=c.say("With the right token."))
    c.stop()


def test_serving_beyond_this_machine_needs_a_token(rtmp_server, tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "linly_push", "live", "--control", f"0.0.0.0:{free_port()}", "--url", rtmp_server.url(), *SMALL],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 2 and "needs a token" in r.stderr and "LINLY_PUSH_CONTROL_TOKEN" in r.stderr
    assert rtmp_server.events() == []


def test_many_requests_a_second_do_not_disturb_the_stream(show):
    c = show()
    c.say(LONG)
    c.wait_for("sentence", text=LONG)
    base = c.of("status")[-1]
    done, codes = threading.Event(), []

    def load():
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(codes) < 600:
            codes.append(c.request("GET", "/status")[0])
            time.sleep(0.005)
        done.set()

    workers = [threading.Thread(target=load) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert len(codes) >= 100 and set(codes) == {200}
    c.wait_for("status", count=len(c.of("status")) + 1)
    last = c.of("status")[-1]
    assert last["repeated"] == base["repeated"] and c.of("dropped") == []
    assert last["frames"] > base["frames"]
    c.stop()


def test_the_example_client_answers_questions(show):
    c = show()
    client = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent.parent / "examples" / "control" / "answer.py")],
        env={**os.environ, "LINLY_PUSH_CONTROL": f"http://127.0.0.1:{c.port}", "LINLY_PUSH_CONTROL_TOKEN": c.token},
    )
    try:
        # Asked until answered: the client may not be reading /events yet when the first is said.
        for attempt in range(1, 7):
            c.wait_for("spoken", id=c.say("Is anybody there?"))
            with contextlib.suppress(AssertionError):
                c.wait_for("sentence", text="You asked: Is anybody there?", timeout=10)
                break
        assert attempt < 6
    finally:
        client.kill()
        client.wait()
    c.stop()


def test_healthz_says_503_while_reconnecting(show, rtmp_server):
    c = show("--set", "reconnect.first_delay=0.5", "--set", "reconnect.max_delay=1")
    assert c.request("GET", "/healthz")[0] == 200
    rtmp_server.stop()
    c.wait_for("dropped")
    status, body = c.request("GET", "/healthz")
    assert status == 503 and body["state"] in ("reconnecting", "stalled")
    rtmp_server.start()
    c.wait_for("reconnected", timeout=60)
    c.until(lambda: c.request("GET", "/healthz")[0] == 200, "healthy again")
    c.stop()


def test_a_script_plays_first_and_requests_come_after(show, tmp_path):
    script = tmp_path / "opening.txt"
    script.write_text("This is the opening. It was in the script.", encoding="utf-8")
    c = show("--script", str(script))
    c.wait_for("sentence", text="It was in the script.")
    later = c.say("And this came over the API.")
    c.wait_for("spoken", id=later)
    assert c.spoken() == ["This is the opening.", "It was in the script.", "And this came over the API."]
    c.stop()


def test_a_client_that_vanishes_mid_stream_leaves_the_rest_alone(show):
    import socket

    c = show()
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", c.port))
        s.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{c.port}\r\nAuthorization: Bearer {c.token}\r\n\r\n".encode())
        assert b"200" in s.recv(100)
        s.close()  # gone without a word
    c.wait_for("spoken", id=c.say("Still here for everyone else."))
    assert c.request("GET", "/healthz")[0] == 200 and c.of("dropped") == []
    c.stop()
