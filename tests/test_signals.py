"""Every signal ends a run through the contract (issue 9): exit 128 + N within 2 s, one line on
stderr, the JSON stream ending on `error`, recordings playable — on air, while reading a script
from a pipe that stays open, and before going on air. Real signals, real nginx-rtmp."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from broadcast import SENTENCES, SMALL, Broadcast, url, write_script
from media_probe import probe

pytestmark = pytest.mark.live


def assert_ended_by(b: Broadcast, sig: int, code: int, record=None) -> str:
    b.proc.send_signal(sig)
    t0 = time.monotonic()
    rc, err = b.finish(timeout=30)
    assert time.monotonic() - t0 < 2.0, err
    assert rc == code, err
    assert "Fatal Python error" not in err and "Traceback" not in err, err
    [line] = [ln for ln in err.splitlines() if ln.startswith("linly-push:")]
    assert b.events[-1]["event"] == "error" and b.events[-1]["code"] == code
    if record is not None:
        p = probe(record)  # playable, trailer and all
        assert p.video["codec_name"] == "h264" and float(p.format["duration"]) > 1.0
    return line


@pytest.mark.parametrize("round", [1, 2])
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stopping_a_script_piped_in_that_is_still_open(rtmp_server, tmp_path, sig, code, round):
    # `tail -f talk.txt | linly-push live --script -`: standard input stays open, and a thread
    # is blocked reading it when the signal comes.
    record = tmp_path / "show.mkv"
    b = Broadcast("--script", "-", "--url", url(rtmp_server), "--record", str(record), stdin=True)
    b.proc.stdin.write((SENTENCES[0] + "\n").encode())
    b.proc.stdin.flush()
    b.wait_for("sentence")
    b.wait_for("status", 2)
    assert_ended_by(b, sig, code, record)


def test_sighup_ends_the_show_through_the_contract(rtmp_server, tmp_path):
    record = tmp_path / "show.mkv"
    b = Broadcast("--script", write_script(tmp_path), "--url", url(rtmp_server), "--record", str(record))
    b.wait_for("sentence", 2)
    line = assert_ended_by(b, signal.SIGHUP, 129, record)
    assert line.startswith("linly-push: stopped:")


def test_another_signal_too(rtmp_server, tmp_path):
    b = Broadcast("--script", write_script(tmp_path), "--url", url(rtmp_server))
    b.wait_for("sentence")
    assert_ended_by(b, signal.SIGUSR1, 128 + signal.SIGUSR1)


def test_nohup_keeps_sighup_ignored(rtmp_server, tmp_path):
    # A program started with a signal ignored (nohup, a shell's background job) keeps it ignored.
    b = Broadcast("--script", write_script(tmp_path, SENTENCES[:2]), "--url", url(rtmp_server),
                  preexec=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    b.wait_for("sentence")
    b.proc.send_signal(signal.SIGHUP)
    rc, err = b.finish()
    assert rc == 0, err
    assert b.events[-1]["event"] == "finished"


def test_sigterm_while_recordings_are_measured_before_going_on_air(rtmp_server, tmp_path):
    # Twenty minutes of audio: measuring its loudness takes seconds, before anything goes on air.
    rate = 16000
    noise = np.random.default_rng(1).normal(0, 0.1, 20 * 60 * rate).astype(np.float32)
    sf.write(tmp_path / "long.wav", noise, rate)
    proc = subprocess.Popen(
        [sys.executable, "-m", "linly_push", "live", "--json", *SMALL, "--audio", str(tmp_path / "long.wav"),
         "--url", rtmp_server.url()],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    assert b"measuring loudness" in proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    [event] = [json.loads(line) for line in out.decode().splitlines()]
    assert (event["event"], event["code"]) == ("error", 143)
    assert err.decode().strip().startswith("linly-push: terminated:")
    assert rtmp_server.events() == []
