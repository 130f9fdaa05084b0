"""`linly-push live` against a real nginx-rtmp server on 127.0.0.1."""

import json
import subprocess
import sys
import threading
import time

import pytest

from cli_run import linly, text
from media_probe import probe
from rtmp_server import read_stream

KEY = "sk-live-7f3a9c2e5b1d"  # a stream key: must appear nowhere in what linly-push prints
SCRIPT = "Hello from the live test. The stream should be watchable.\n\nGoodbye."


@pytest.mark.live
def test_live_is_paced_watchable_and_keeps_the_key_secret(rtmp_server, tmp_path):
    (tmp_path / "talk.txt").write_text(SCRIPT, encoding="utf-8")
    url = rtmp_server.url(key="${STREAM_KEY}")  # expanded by linly-push, not the shell
    played = tmp_path / "played.flv"
    reader = threading.Thread(target=read_stream, args=(rtmp_server.url(key=KEY), 30, played))
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "linly_push", "live", "--script", str(tmp_path / "talk.txt"), "--url", url,
         "--json", "--set", "video.width=640", "--set", "video.height=360"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**__import__("os").environ, "STREAM_KEY": KEY},
    )
    rtmp_server.wait_for("publish", key=KEY, timeout=20)
    reader.start()
    out, err = proc.communicate(timeout=120)
    wall = time.monotonic() - t0
    reader.join(60)
    everything = out.decode() + err.decode()
    assert proc.returncode == 0, everything
    assert KEY not in everything
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert "****" in events[0]["output"] and KEY not in json.dumps(events)
    finished = events[-1]
    assert finished["event"] == "finished"
    seconds = finished["seconds"]
    # Paced from the audio clock: it takes as long as its audio (not faster than real time).
    assert seconds > 4 and wall >= seconds * 0.95, (wall, seconds)
    assert wall < seconds + 15
    # The status line's buffer is what is ready ahead of air: while speech is ready, up to the
    # preset's live.buffer (3 s) of it, drawn.
    buffers = [e["buffer"] for e in events if e["event"] == "status"]
    assert buffers and max(buffers) >= 1.0 and max(buffers) <= 3.0, buffers

    # What the server recorded is the whole broadcast, decodable, in sync.
    [recording] = rtmp_server.recordings()
    p = probe(recording)
    assert (p.video["codec_name"], p.audio["codec_name"]) == ("h264", "aac")
    assert (p.video["width"], p.video["height"]) == (640, 360)
    assert abs(float(p.format["duration"]) - seconds) < 0.2
    # A player joining mid-stream got a watchable stream too.
    q = probe(played)
    assert q.video["codec_name"] == "h264" and float(q.format["duration"]) > 1.0


@pytest.mark.live
def test_live_url_from_environment_and_unreachable_server(tmp_path):
    (tmp_path / "talk.txt").write_text("Nobody is listening.", encoding="utf-8")
    from rtmp_server import free_port

    url = f"rtmp://127.0.0.1:{free_port()}/live/{KEY}"
    r = linly("live", "--script", str(tmp_path / "talk.txt"), "--set", "reconnect.give_up_after=0",
              env={"LINLY_PUSH_URL": url}, timeout=60)
    assert r.returncode == 5, text(r)
    err = r.stderr.decode()
    assert KEY not in text(r)
    assert "****" in err and "Traceback" not in err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    assert errors[0].startswith("linly-push: error: ") and "Connection refused" in errors[0]
