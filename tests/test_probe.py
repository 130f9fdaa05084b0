"""`linly-push probe`: reports on files and live streams, and checks them against presets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cli_run import linly, text
from linly_push import presets
from linly_push.errors import UsageError
from linly_push.probe import Report, VideoInfo, check, evaluate, expectations, parse, parse_expectation, summarize_sync
from linly_push.sync import SyncReport
from rtmp_server import free_port

KEY = "sk-probe-5e3c7a9d"  # a stream key: must appear nowhere in what linly-push prints
# Every paragraph starts after a pause, so each one is a sound onset with its flash.
SCRIPT = "Hello, this is the probe test.\n\nIt checks what was encoded.\n\nGoodbye for now."


@pytest.fixture(scope="module")
def card(tmp_path_factory) -> Path:
    """A few seconds of the testcard, rendered with the local-test preset."""
    tmp = tmp_path_factory.mktemp("card")
    (tmp / "s.txt").write_text(SCRIPT, encoding="utf-8")
    out = tmp / "card.mp4"
    r = linly("render", "--preset", "local-test", "--avatar", "testcard", "--script", str(tmp / "s.txt"), "-o", str(out))
    assert r.returncode == 0, text(r)
    return out


def probe_json(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    r = linly("probe", "--json", *args, env=env, timeout=120)
    return r, json.loads(r.stdout)


def failed(report: dict) -> set[str]:
    return {c["key"] for c in report["checks"] if c["ok"] is False}


def test_a_rendered_testcard_meets_its_preset(card):
    r, rep = probe_json(str(card), "--sync", "--expect", "preset=local-test")
    assert r.returncode == 0, text(r)
    v, a, s = rep["video"], rep["audio"], rep["sync"]
    assert (v["codec"], v["width"], v["height"], v["pix_fmt"]) == ("h264", 960, 540, "yuv420p")
    assert v["fps"] == pytest.approx(25, abs=0.01)
    assert v["keyframe_interval"] == pytest.approx(2.0, abs=0.04) and v["keyframes"] >= 2
    assert 1500 < v["bitrate_kbps"] < 2500  # the preset's 2 Mbps CBR
    assert (a["codec"], a["sample_rate"], a["channels"]) == ("aac", 44100, 2)
    assert rep["duration"] > 4
    assert s["pairs"] >= 3 and s["unmatched_onsets"] == s["unmatched_flashes"] == 0, s
    assert abs(s["min_ms"]) < 40 and abs(s["max_ms"]) < 40, s
    assert rep["ok"] is True and rep["issues"] == []
    assert {c["key"] for c in rep["checks"]} >= {"video.width", "video.keyframe_interval", "audio.sample_rate", "sync.max_ms"}
    assert all(c["ok"] for c in rep["checks"]), rep["checks"]


def test_a_preset_the_file_does_not_match_fails_naming_the_fields(card):
    r = linly("probe", str(card), "--expect", "preset=hd")
    assert r.returncode == 6, text(r)
    err = r.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("linly-push: error: "), err
    for field in ("video.width", "video.height", "video.fps"):
        assert field in err[0]
    out = r.stdout.decode()
    assert "✗ video.width: expected 1280, got 960" in out and "✓ video.codec: h264" in out
    # The same with --json: one object on stdout, the failures in it.
    r, rep = probe_json(str(card), "--expect", "preset=hd")
    assert r.returncode == 6 and rep["ok"] is False
    assert {"video.width", "video.height", "video.fps"} <= failed(rep)


def test_simple_expectations(card):
    r, rep = probe_json(str(card), "-e", "video.fps=25", "-e", "video.width=900..1000", "-e", "audio.codec=AAC")
    assert r.returncode == 0, text(r)
    r, rep = probe_json(str(card), "-e", "video.height=720", "-e", "duration<=1", "-e", "video.keyframes>=2")
    assert r.returncode == 6, text(r)
    assert failed(rep) == {"video.height", "duration"}


def _encode(out: Path, *extra: str) -> Path:
    """Four seconds encoded by ffmpeg alone, as the local-test preset would, but for ``extra``."""
    argv = [
        "ffmpeg", "-v", "error", "-nostdin", "-y",
        "-f", "lavfi", "-i", "testsrc2=s=960x540:r=25:d=4", "-f", "lavfi", "-i", "sine=f=440:d=4",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
        "-b:v", "2M", "-maxrate", "2M", "-bufsize", "2M", "-x264-params", "nal-hrd=cbr", "-sc_threshold", "0",
        "-g", "50", "-c:a", "aac", "-ar", "44100", "-ac", "2", *extra, str(out),
    ]  # fmt: skip
    subprocess.run(argv, check=True, timeout=60)
    return out


@pytest.mark.parametrize("extra, field", [
    ((), None),
    (("-g", "25"), "video.keyframe_interval"),  # a keyframe every second, not every two
    (("-ar", "48000"), "audio.sample_rate"),
])  # fmt: skip
def test_files_made_elsewhere_are_checked_field_by_field(tmp_path, extra, field):
    path = _encode(tmp_path / "x.mkv", *extra)
    r, rep = probe_json(str(path), "--expect", "preset=local-test")
    if field is None:
        assert r.returncode == 0, text(r)
        return
    assert r.returncode == 6, text(r)
    assert failed(rep) == {field}, rep["checks"]
    assert field in r.stderr.decode()


def test_without_ffprobe_the_error_says_what_to_install(card, tmp_path):
    import imageio_ffmpeg

    # The wheel's ffmpeg has no ffprobe beside it, and PATH has none.
    env = {"PATH": str(tmp_path), "LINLY_PUSH_FFMPEG": imageio_ffmpeg.get_ffmpeg_exe()}
    r = linly("probe", str(card), env=env)
    assert r.returncode == 5, text(r)
    assert "apt install ffmpeg" in r.stderr.decode() and len(r.stderr.decode().strip().splitlines()) == 1


def test_files_that_are_not_there_or_not_media(tmp_path):
    r = linly("probe", str(tmp_path / "missing.mp4"))
    assert r.returncode == 3 and "no such file" in r.stderr.decode(), text(r)
    (tmp_path / "junk.mp4").write_bytes(os.urandom(4096))
    r = linly("probe", str(tmp_path / "junk.mp4"))
    assert r.returncode == 3, text(r)
    assert len(r.stderr.decode().strip().splitlines()) == 1 and "Traceback" not in text(r)


@pytest.mark.parametrize("bad", ["preset=nosuch", "video.widht=960", "video.width=wide", "video.codec>=3", "fast"])
def test_a_bad_expectation_is_a_usage_error(card, bad):
    r = linly("probe", str(card), "--expect", bad)
    assert r.returncode == 2, text(r)
    assert r.stderr.decode().startswith("linly-push: error: ")


@pytest.mark.live
def test_a_live_stream_meets_its_preset_and_its_key_stays_secret(rtmp_server, tmp_path):
    env = {**os.environ, "STREAM_KEY": KEY}
    url = rtmp_server.url(key="${STREAM_KEY}")  # expanded by linly-push, not the shell
    broadcast = subprocess.Popen(
        [sys.executable, "-m", "linly_push", "live", "--preset", "local-test", "--avatar", "testcard",
         "--script", "-", "--url", url],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        # Stdin stays open: after the script the card idles on air until it is stopped.
        broadcast.stdin.write((SCRIPT + "\n\n" + SCRIPT + "\n").encode())
        broadcast.stdin.flush()
        rtmp_server.wait_for("publish", key=KEY, timeout=30)
        r, rep = probe_json(url, "--seconds", "6", "--sync", "--expect", "preset=local-test", env={"STREAM_KEY": KEY})
        human = linly("probe", url, "--seconds", "3", env={"STREAM_KEY": KEY}, timeout=60)
    finally:
        broadcast.send_signal(signal.SIGTERM)
        _, err = broadcast.communicate(timeout=30)
    assert r.returncode == 0, text(r) + json.dumps(rep)
    assert rep["live"] is True and rep["container"] == "flv"
    assert rep["target"] == rtmp_server.url(key="****")
    assert rep["duration"] > 5 and rep["video"]["keyframes"] >= 2
    assert rep["sync"]["pairs"] >= 1
    assert human.returncode == 0, text(human)
    for output in (text(r), text(human), err.decode()):
        assert KEY not in output
    # The server is up but nobody publishes: an error once nothing arrives, not a hang.
    r = linly("probe", url, env={"STREAM_KEY": KEY}, timeout=60)
    assert r.returncode == 5, text(r)
    assert KEY not in text(r) and "nothing arrived" in r.stderr.decode()


@pytest.mark.live
def test_a_url_nobody_serves_is_an_output_error(tmp_path):
    r = linly("probe", f"rtmp://127.0.0.1:{free_port()}/live/${{STREAM_KEY}}", env={"STREAM_KEY": KEY}, timeout=30)
    assert r.returncode == 5, text(r)
    err = r.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("linly-push: error: cannot read rtmp://127.0.0.1:"), err
    assert "****" in err[0] and KEY not in text(r)


# -- the pure parts ----------------------------------------------------------------------------


def _ffprobe_json(keys: list[float], frames: int, fps: float = 25, size: int = 10_000, rate: int = 44100) -> dict:
    """What ffprobe says of ``frames`` video packets (keyframes at ``keys`` seconds) and audio beside."""
    packets = [
        {"stream_index": 0, "pts_time": f"{i / fps:.6f}", "duration_time": f"{1 / fps:.6f}", "size": str(size),
         "flags": "K_" if any(abs(i / fps - k) < 1e-6 for k in keys) else "__"}
        for i in range(frames)
    ]  # fmt: skip
    step = 1024 / rate
    packets += [
        {"stream_index": 1, "pts_time": f"{j * step:.6f}", "duration_time": f"{step:.6f}", "size": "300", "flags": "K_"}
        for j in range(int(frames / fps / step))
    ]
    return {
        "streams": [
            {"index": 0, "codec_type": "video", "codec_name": "h264", "width": 960, "height": 540, "pix_fmt": "yuv420p", "avg_frame_rate": "25/1"},
            {"index": 1, "codec_type": "audio", "codec_name": "aac", "sample_rate": str(rate), "channels": 2},
        ],
        "format": {"format_name": "flv"},
        "packets": packets,
    }


def test_parse_measures_rates_and_keyframes_from_packets():
    rep = parse(_ffprobe_json([0, 2, 4, 6], 175), target="x.flv")
    v = rep.video
    assert v.fps == pytest.approx(25) and v.frames == 175
    assert v.bitrate_kbps == pytest.approx(10_000 * 8 * 25 / 1000)
    assert (v.keyframes, v.keyframe_interval, v.keyframe_interval_max) == (4, 2.0, 2.0)
    assert rep.duration == pytest.approx(7.0, abs=0.03) and rep.issues == []
    # One keyframe: no interval, but the longest stretch without one still shows.
    v = parse(_ffprobe_json([0], 150), target="x.flv").video
    assert v.keyframe_interval is None and v.keyframe_interval_max == pytest.approx(6.0)


def test_parse_reports_gaps_and_missing_streams():
    info = _ffprobe_json([0, 2], 100)
    for p in info["packets"]:
        if p["stream_index"] == 0 and float(p["pts_time"]) >= 2.0:
            p["pts_time"] = f"{float(p['pts_time']) + 0.5:.6f}"  # half a second missing at 2 s
    rep = parse(info, target="x.flv")
    assert any(i.startswith("video timestamps jump 1 time(s), the longest by 0.540 s") for i in rep.issues), rep.issues
    [bad] = [o for o in check(rep, presets.load("live")) if o.expectation.key == "issues"]
    assert bad.ok is False and "jump" in bad.describe()  # a healthy stream has no issues
    info["streams"].pop()
    assert "no audio stream" in parse(info, target="x.flv").issues


def test_preset_expectations():
    live = presets.load("live")
    keys = {e.key for e in expectations(live)}
    assert {"video.codec", "video.width", "video.fps", "video.keyframe_interval", "audio.sample_rate"} <= keys
    assert not any(k.startswith("sync.") for k in keys)
    # The bit rate's band: ±10% and one VBV buffer over the sample, so it narrows as the sample grows.
    [short] = [e for e in expectations(live, seconds=2) if e.key == "video.bitrate_kbps"]
    [long] = [e for e in expectations(live, seconds=100) if e.key == "video.bitrate_kbps"]
    assert (short.low, short.high) == pytest.approx((800, 3200))
    assert (long.low, long.high) == pytest.approx((1780, 2220))
    # mobile is capped VBR: only a ceiling.
    [capped] = [e for e in expectations(presets.load("mobile"), seconds=10) if e.key == "video.bitrate_kbps"]
    assert capped.low is None and capped.high == pytest.approx(2400)


def test_check_skips_an_interval_too_short_to_measure():
    rep = parse(_ffprobe_json([0], 40), target="x.flv")  # 1.6 s: one keyframe
    outcomes = {o.expectation.key: o for o in check(rep, presets.load("live"))}
    assert outcomes["video.keyframe_interval"].ok is None
    assert outcomes["video.keyframe_interval_max"].ok is True
    assert all(o.ok is not False for o in outcomes.values()), [o.describe() for o in outcomes.values()]


def test_lip_sync_summary_leaves_out_the_edges_of_the_sample():
    # A live reader's sample: audio from 0 s, video from its first keyframe at 0.8 s, to 8 s.
    rep = SyncReport(
        onsets=[0.01, 0.5, 2.0, 4.0, 6.0], flashes=[2.0, 4.04, 7.96], pairs=[(2.0, 2.0), (4.0, 4.04)],
        unmatched_onsets=3, unmatched_flashes=1,
        audio_start=0.0, video_start=0.8, audio_duration=8.0, video_duration=7.2,
    )  # fmt: skip
    summary, issues = summarize_sync(rep)
    # 0.01 s: speech already going; 0.5 s: before the picture; 7.96 s: its sound may follow the end.
    assert (summary.pairs, summary.unmatched_onsets, summary.unmatched_flashes) == (2, 1, 0)
    assert (summary.min_ms, summary.max_ms, summary.offset_ms) == (-40.0, 0.0, -20.0)
    assert issues == ["lip sync: 1 sound onset(s) without a flash, first at 6.000 s"]


def test_parse_expectation():
    fps = parse_expectation("video.fps=25")
    assert fps.met_by(25.004) and fps.met_by(24.6) and not fps.met_by(24.4)
    assert parse_expectation("video.fps=29.97").met_by(29.9701) and not parse_expectation("video.fps=29.97").met_by(29.98)
    assert parse_expectation("sync.max_ms<=40").met_by(40) and not parse_expectation("sync.max_ms<=40").met_by(40.1)
    assert parse_expectation("sync.min_ms >= -40").met_by(-12.5)
    band = parse_expectation("video.bitrate_kbps=1800..")
    assert band.met_by(5000) and not band.met_by(1700)
    assert parse_expectation("video.codec=H264").met_by("h264")
    report = Report("x", False, None, 1.0, VideoInfo("h264", None, 960, 540, "yuv420p", 25.0, 2000.0, 25, 1, None, 1.0), None)
    [o] = evaluate(report, [parse_expectation("audio.sample_rate=44100")])
    assert o.ok is False and o.describe() == "audio.sample_rate: expected 44100, got not measured"
    for bad in ("video.fps", "nokey=3", "video.fps=fast", "video.codec<=3"):
        with pytest.raises(UsageError):
            parse_expectation(bad)
