"""Staying on air (issue 3): reconnects, give-up, signals, never starving, fan-out, streaming stdin.
All against real nginx-rtmp servers on 127.0.0.1 that record what they receive."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from broadcast import KEY, PLUGINS, SENTENCES, Broadcast, url, write_script
from media_probe import probe
from rtmp_server import free_port
from speechprint import missing

pytestmark = pytest.mark.live


def test_server_restart_mid_broadcast_loses_no_sentence(rtmp_server, tmp_path):
    b = Broadcast("--script", write_script(tmp_path), "--url", url(rtmp_server),
                  "--set", "reconnect.first_delay=0.5", "--set", "reconnect.max_delay=1")
    b.wait_for("sentence", 3)
    rtmp_server.stop()  # the server goes away mid-sentence
    b.wait_for("dropped")
    time.sleep(2.0)
    rtmp_server.start()
    b.wait_for("reconnected", timeout=30)
    code, err = b.finish()
    assert code == 0, err
    dropped = b.of("dropped")  # the drop, then refused retries while the server is down
    assert all(KEY not in d["reason"] for d in dropped)
    assert dropped[0]["resume_sentence"] in (2, 3)  # the sentence that was cut, or the one before
    assert b.of("finished")[0]["reconnects"] == 1
    # Retries refused while the server was down announced nothing; every sentence was announced.
    kinds = [e["event"] for e in b.events]
    outage = kinds[kinds.index("dropped") : kinds.index("reconnected")]
    assert "sentence" not in outage, outage
    assert {e["index"] for e in b.of("sentence")} == set(range(1, len(SENTENCES) + 1))
    recordings = rtmp_server.recordings()
    assert len(recordings) == 2
    assert missing(recordings, SENTENCES) == []


def test_unreachable_server_gives_up_with_exit_5(tmp_path):
    dead = f"rtmp://127.0.0.1:{free_port()}/live/${{STREAM_KEY}}"
    t0 = time.monotonic()
    b = Broadcast("--script", write_script(tmp_path), "--url", dead,
                  "--set", "reconnect.give_up_after=3", "--set", "reconnect.first_delay=0.5")
    code, err = b.finish(timeout=60)
    elapsed = time.monotonic() - t0
    assert code == 5, err
    assert 3 <= elapsed < 15
    assert len(b.of("dropped")) >= 2  # it kept trying until giving up
    assert b.of("sentence") == []  # nothing went on air
    assert err.strip().splitlines()[-1].startswith("linly-push: error: gave up after 3 s")
    assert "Traceback" not in err


def test_a_server_that_never_answers_is_given_up_on_sooner_and_says_what_to_check(tmp_path):
    dead = f"rtmp://127.0.0.1:{free_port()}/live/${{STREAM_KEY}}"  # a closed port: refused at once
    b = Broadcast("--script", write_script(tmp_path), "--url", dead,
                  "--set", "reconnect.first_give_up_after=2", "--set", "reconnect.first_delay=0.5")
    first = b.wait_for("dropped")
    # At once, on the first failure: what went wrong, what to check, for how long it is tried.
    assert "Connection refused" in first["reason"] and "running?" in first["reason"]
    assert "giving up after 2 s" in first["reason"]
    code, err = b.finish(timeout=60)
    assert code == 5, err  # after 2 s, not reconnect.give_up_after's 180
    assert len(b.of("dropped")) >= 2 and "giving up" not in b.of("dropped")[-1]["reason"]  # said once
    line = err.strip().splitlines()[-1]
    assert line.startswith("linly-push: error: gave up after 2 s") and "first_give_up_after" in line, line
    assert b.events[-1]["event"] == "error" and b.events[-1]["code"] == 5
    assert "Traceback" not in err


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_ends_the_broadcast_cleanly(rtmp_server, tmp_path, sig, code):
    record = tmp_path / "show.mkv"
    b = Broadcast("--script", write_script(tmp_path), "--url", url(rtmp_server), "--record", str(record))
    b.wait_for("sentence", 2)
    b.proc.send_signal(sig)
    t0 = time.monotonic()
    rc, err = b.finish(timeout=30)
    assert time.monotonic() - t0 < 2.0
    assert rc == code, err
    assert "Traceback" not in err
    for path in (*rtmp_server.recordings(), record):
        p = probe(path)  # a playable file, trailer and all
        assert p.video["codec_name"] == "h264" and float(p.format["duration"]) > 2.0


def test_slow_tts_never_starves_the_stream(rtmp_server, tmp_path):
    b = Broadcast("--script", write_script(tmp_path, SENTENCES[:3]), "--url", url(rtmp_server),
                  "--tts", "slow-espeak", "--set", "tts.delay=2.5", env={"PYTHONPATH": PLUGINS})
    code, err = b.finish(timeout=120)
    assert code == 0, err
    [recording] = rtmp_server.recordings()
    assert_continuous(recording, fps=25)
    finished = b.of("finished")[0]
    # The waits were filled with idle frames: on air at least as long as TTS made us wait.
    assert finished["seconds"] >= 3 * 2.5


def assert_continuous(path: Path, fps: int) -> None:
    """No gap longer than one frame in the video, and audio as long as the video."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time",
         "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True,
    ).stdout
    pts = sorted(float(x) for x in out.split())
    gaps = [b - a for a, b in zip(pts, pts[1:])]
    assert max(gaps) <= 1 / fps + 0.002, max(gaps)
    audio = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "packet=pts_time,duration_time",
         "-of", "json", str(path)], capture_output=True, text=True, check=True,
    ).stdout)["packets"]
    audio_end = max(float(a["pts_time"]) + float(a["duration_time"]) for a in audio)
    assert abs(audio_end - (pts[-1] + 1 / fps)) < 0.1


def test_two_destinations_one_dead_the_live_one_gets_everything(rtmp_server, tmp_path):
    port = free_port()
    dead = f"rtmp://127.0.0.1:{port}/live/${{STREAM_KEY}}"
    b = Broadcast("--script", write_script(tmp_path, SENTENCES[:3]), "--url", dead, "--url", url(rtmp_server))
    code, err = b.finish()
    # The show went out, but not everywhere: said at once, and in the exit status.
    assert code == 7, err
    shown = f"rtmp://127.0.0.1:{port}/live/****"
    [down] = b.of("destination")
    assert (down["destination"], down["role"], down["state"]) == (shown, "live", "down")
    assert "Connection refused" in down["reason"]
    report = {d["destination"]: d["complete"] for d in b.of("finished")[0]["destinations"]}
    assert report == {shown: False, url(rtmp_server).replace("${STREAM_KEY}", "****"): True}
    assert [e["event"] for e in b.events[-2:]] == ["finished", "error"] and b.events[-1]["code"] == 7
    assert err.strip().splitlines()[-1].startswith(f"linly-push: error: the show went out, but {shown} did not get all of it")
    [recording] = rtmp_server.recordings()
    assert missing([recording], SENTENCES[:3]) == []
    assert abs(float(probe(recording).format["duration"]) - b.of("finished")[0]["seconds"]) < 0.5


def test_script_from_stdin_goes_on_air_line_by_line(rtmp_server, tmp_path):
    b = Broadcast("--script", "-", "--url", url(rtmp_server), stdin=True)
    b.wait_for("started")
    for i, line in enumerate(SENTENCES[:3]):
        time.sleep(2.0)  # the writer is slower than the stream: idle in between
        b.proc.stdin.write((line + "\n").encode())
        b.proc.stdin.flush()
        said = b.wait_for("sentence", i + 1, timeout=10)
        assert said["text"] == line and said["total"] is None
    code, err = b.finish()  # closes standard input: the end of the script
    assert code == 0, err
    [recording] = rtmp_server.recordings()
    assert_continuous(recording, fps=25)
    assert missing([recording], SENTENCES[:3]) == []
