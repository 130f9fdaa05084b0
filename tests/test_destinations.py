"""Recordings and destinations that fail are never silent (issue 9): checked before going on air,
reported at once when they fail mid-show, the rest kept on air, and the exit status telling.
Real nginx-rtmp servers, real tmpfs disks that fill up or are mounted read-only."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from broadcast import SENTENCES, SMALL, Broadcast, url, write_script
from cli_run import linly, text
from media_probe import probe
from rtmp_server import free_port
from speechprint import missing

pytestmark = pytest.mark.live


def fill(disk: Path) -> None:
    """Leave no byte free on ``disk``."""
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(bytes(64 * 1024))
                f.flush()
        except OSError:
            pass


def events(r) -> list[dict]:
    return [json.loads(line) for line in r.stdout.decode().splitlines()]


@pytest.mark.parametrize("where", ["full", "read-only", "proc", "folder"])
def test_a_record_path_that_cannot_be_written_fails_before_going_on_air(rtmp_server, tmp_path, tmpfs, where):
    if where == "full":
        disk = tmpfs("full", "256k")
        fill(disk)
        record, says = disk / "show.mkv", "No space left on device"
    elif where == "read-only":
        record, says = tmpfs("ro", "1m", "ro") / "show.mkv", "read-only file system"
    elif where == "proc":
        record, says = Path("/proc/show.mkv"), "/proc does not take new files"
    else:
        record, says = tmp_path / "show.mkv", "it is a folder"
        record.mkdir()
    r = linly("live", "--script", write_script(tmp_path), "--url", rtmp_server.url(), "--record", str(record),
              "--json", *SMALL, timeout=60)
    assert r.returncode == 5, text(r)
    assert [e["event"] for e in events(r)] == ["error"]  # nothing went on air
    [line] = r.stderr.decode().splitlines()
    assert line.startswith(f"linly-push: error: cannot record to {record}: ") and says in line, line
    assert rtmp_server.events() == []


def test_a_render_to_a_full_disk_says_so(tmp_path, tmpfs):
    disk = tmpfs("small", "320k")  # room for the trial write, not for the video
    r = linly("render", "--script", write_script(tmp_path), "-o", str(disk / "talk.mp4"), "--json", timeout=120)
    assert r.returncode == 5, text(r)
    line = r.stderr.decode().strip().splitlines()[-1]
    assert "No space left on device" in line and "is full" in line, line
    assert "check that the folder" not in line


def test_a_recording_that_fails_mid_show_is_reported_and_the_stream_goes_on(rtmp_server, tmp_path, tmpfs):
    disk = tmpfs("small", "400k")  # about 1.5 s of the stream
    record = disk / "show.mkv"
    b = Broadcast("--script", write_script(tmp_path, SENTENCES[:3]), "--url", url(rtmp_server), "--record", str(record))
    failed = b.wait_for("destination", timeout=60)
    # Reported while on air, before the show is over.
    assert (failed["destination"], failed["role"], failed["state"]) == (str(record), "record", "failed")
    assert "No space left on device" in failed["reason"]
    assert b.of("finished") == []
    code, err = b.finish()
    assert code == 7, err
    finished = b.of("finished")[0]
    assert {d["destination"]: d["complete"] for d in finished["destinations"]} == {
        url(rtmp_server).replace("${STREAM_KEY}", "****"): True, str(record): False,
    }
    assert [e["event"] for e in b.events[-2:]] == ["finished", "error"]
    assert b.events[-1]["code"] == 7 and str(record) in b.events[-1]["message"]
    assert err.strip().splitlines()[-1].startswith(f"linly-push: error: the show went out, but recording {record} is incomplete")
    # The live destination got the whole show.
    [pushed] = rtmp_server.recordings()
    assert missing([pushed], SENTENCES[:3]) == []


def test_a_failed_reconnect_attempt_leaves_no_empty_recording(rtmp_server, tmp_path):
    record = tmp_path / "show.mkv"
    b = Broadcast("--script", write_script(tmp_path), "--url", url(rtmp_server), "--record", str(record),
                  "--set", "reconnect.first_delay=0.3", "--set", "reconnect.max_delay=0.5")
    b.wait_for("sentence", 2)
    rtmp_server.stop()
    b.wait_for("dropped", 3)  # the drop, then attempts the stopped server refuses
    rtmp_server.start()
    back = b.wait_for("reconnected", timeout=30)
    code, err = b.finish()
    assert code == 0, err
    assert back["record"] == str(tmp_path / "show-2.mkv")
    assert sorted(p.name for p in tmp_path.glob("show*.mkv")) == ["show-2.mkv", "show.mkv"]
    for path in (record, tmp_path / "show-2.mkv"):
        assert float(probe(path).format["duration"]) > 1.0
    first, *refused = b.of("dropped")
    assert first["connected"] and first["on_air"] > 1.0
    assert refused and all(not d["connected"] and d["on_air"] == 0 for d in refused)
    # Nothing is counted as sent while no connection takes it.
    kinds = [e["event"] for e in b.events]
    outage = b.events[kinds.index("dropped") + 1 : kinds.index("reconnected")]
    seconds = {e["seconds"] for e in outage if e["event"] == "status"}
    assert len(seconds) <= 1, seconds


def test_bitrate_is_reported_with_a_recording(rtmp_server, tmp_path):
    b = Broadcast("--script", write_script(tmp_path, SENTENCES[:2]), "--url", url(rtmp_server),
                  "--record", str(tmp_path / "show.mkv"))
    code, err = b.finish()
    assert code == 0, err
    rates = [s["bitrate_kbps"] for s in b.of("status") if s["bitrate_kbps"] is not None]
    assert rates, b.of("status")
    assert 500 < rates[-1] < 4000  # the preset's 2 Mbit/s (and AAC), give or take the start


def test_two_dead_destinations_give_up(tmp_path):
    dead = [f"rtmp://127.0.0.1:{free_port()}/live/${{STREAM_KEY}}" for _ in range(2)]
    t0 = time.monotonic()
    b = Broadcast("--script", write_script(tmp_path), "--url", dead[0], "--url", dead[1],
                  "--set", "reconnect.give_up_after=3")
    code, err = b.finish(timeout=60)
    assert code == 5, err
    assert time.monotonic() - t0 < 30
    assert {d["state"] for d in b.of("destination")} == {"down"} and len(b.of("destination")) == 2
    assert "every destination down" in err.strip().splitlines()[-1]
