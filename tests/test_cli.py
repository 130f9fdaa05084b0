"""The command line end to end: real TTS, real avatars, real ffmpeg, checked with ffprobe."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli_run import linly, text
from media_probe import count_frames, probe

SCRIPT = "Hello there. This is a short test of the spine!\n\nA new paragraph, and the end."


def check_av(path, width, height, fps):
    p = probe(path)
    assert p.video["codec_name"] == "h264" and p.audio["codec_name"] == "aac"
    assert (p.video["width"], p.video["height"]) == (width, height)
    assert p.video["pix_fmt"] == "yuv420p"
    assert p.fps == fps
    assert int(p.audio["sample_rate"]) == 44100
    assert abs(p.video_seconds - p.audio_seconds) <= 1 / fps + 0.03  # AAC frames are 23 ms
    return p


def test_render_script_to_mp4(tmp_path):
    script = tmp_path / "talk.txt"
    script.write_text(SCRIPT, encoding="utf-8")
    out = tmp_path / "talk.mp4"
    r = linly("render", "--script", str(script), "-o", str(out))
    assert r.returncode == 0, text(r)
    p = check_av(out, 960, 540, 25)
    assert 3.0 < p.video_seconds < 15.0
    assert count_frames(out) == round(p.video_seconds * 25)


def test_render_stdin_json_events_and_overrides(tmp_path):
    out = tmp_path / "hello.mp4"
    r = linly("render", "--script", "-", "-o", str(out), "--json", "--set", "video.fps=30",
              "--set", "video.width=640", "--set", "video.height=360", "--avatar", "testcard",
              input="Hello there. 你好，世界！".encode())
    assert r.returncode == 0, text(r)
    events = [json.loads(line) for line in r.stdout.decode().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert [e["text"] for e in events if e["event"] == "sentence"] == ["Hello there.", "你好，世界！"]
    assert events[0]["avatar"] == "testcard" and events[0]["video"] == "640x360@30"
    check_av(out, 640, 360, 30)
    assert events[-1]["frames"] == count_frames(out)


def test_render_audio_files_any_rate_and_layout(tmp_path):
    t = np.arange(int(1.5 * 48000)) / 48000
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], axis=1) * 0.3
    sf.write(tmp_path / "a.wav", stereo, 48000)
    t2 = np.arange(int(1.0 * 22050)) / 22050
    sf.write(tmp_path / "b.flac", 0.3 * np.sin(2 * np.pi * 440 * t2), 22050)
    out = tmp_path / "show.mp4"
    r = linly("render", "--audio", str(tmp_path / "a.wav"), "--audio", str(tmp_path / "b.flac"), "-o", str(out),
              "--set", "speech.lead_in=0", "--set", "speech.tail=0")
    assert r.returncode == 0, text(r)
    p = check_av(out, 960, 540, 25)
    assert abs(p.audio_seconds - 2.5) < 0.1


def test_default_output_name(tmp_path):
    (tmp_path / "news.txt").write_text("Short news.", encoding="utf-8")
    r = linly("render", "--script", "news.txt", "--set", "video.width=320", "--set", "video.height=180", cwd=tmp_path)
    assert r.returncode == 0, text(r)
    assert (tmp_path / "news.mp4").stat().st_size > 1000


def _bad_inputs(tmp_path):
    (tmp_path / "ok.txt").write_text("Fine.", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("  \n\n ", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me.".encode("latin-1"))
    (tmp_path / "dots.txt").write_text("... —", encoding="utf-8")
    (tmp_path / "noise.wav").write_bytes(b"RIFF....WAVEfmt garbage" * 10)
    (tmp_path / "bad.toml").write_text("[video\n", encoding="utf-8")
    ok, out = str(tmp_path / "ok.txt"), str(tmp_path / "o.mp4")
    return [
        (2, ["render", "--script", ok, "--bogus"], "No such option"),
        (2, ["render", "--script", ok, "-o", out, "--preset", "nope"], "unknown preset"),
        (2, ["render", "--script", ok, "-o", out, "--preset", str(tmp_path / "bad.toml")], "invalid preset"),
        (2, ["render", "--script", ok, "-o", out, "--tts", "nope"], "unknown tts backend"),
        (2, ["render", "--script", ok, "-o", out, "--avatar", "nope"], "unknown avatar backend"),
        (2, ["render", "--script", ok, "-o", out, "--set", "video.fps=zero"], "video.fps"),
        (2, ["render", "--script", ok, "-o", out, "--set", "tts.volume=3"], "unknown option tts.volume"),
        (2, ["render", "-o", out], "nothing to say"),
        (2, ["render", "--script", ok, "-o", str(tmp_path / "o.avi2")], "container"),
        (2, ["live", "--script", ok], "no destination"),
        (2, ["live", "--script", ok, "--url", "ws://127.0.0.1/x"], "rtmp"),
        (2, ["live", "--script", ok, "--url", "rtmp://127.0.0.1/live/${LINLY_TEST_UNSET_VAR}"], "LINLY_TEST_UNSET_VAR"),
        (3, ["render", "--script", str(tmp_path / "missing.txt"), "-o", out], "not found"),
        (3, ["render", "--script", str(tmp_path / "empty.txt"), "-o", out], "empty"),
        (3, ["render", "--script", str(tmp_path / "latin1.txt"), "-o", out], "not UTF-8"),
        (3, ["render", "--script", str(tmp_path / "dots.txt"), "-o", out], "nothing to say"),
        (3, ["render", "--script", str(tmp_path), "-o", out], "folder"),
        (3, ["render", "--audio", str(tmp_path / "noise.wav"), "-o", out], "cannot decode"),
        (3, ["render", "--audio", str(tmp_path / "none.wav"), "-o", out], "not found"),
        (2, ["render", "--script", ok, "-o", out, "--set", "tts.voice=klingon"], "no voice"),
        (5, ["render", "--script", ok, "-o", str(tmp_path / "no" / "such" / "dir.mp4")], "does not exist"),
    ]


def test_bad_input_exit_codes(tmp_path):
    for code, args, message in _bad_inputs(tmp_path):
        r = linly(*args, env={"LINLY_PUSH_URL": ""})
        err = r.stderr.decode()
        assert r.returncode == code, (args, text(r))
        assert message in err, (args, err)
        assert "Traceback" not in text(r)
        assert len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "o.mp4").exists()


def test_help_teaches_and_lists_exit_codes():
    r = linly("render", "--help")
    out = r.stdout.decode()
    assert r.returncode == 0
    for needle in ("--script", "--audio", "--preset", "--set", "Examples", "Exit codes", "130"):
        assert needle in out, needle


def test_presets_and_backends_commands():
    r = linly("presets", "list")
    assert r.returncode == 0 and all(n in r.stdout.decode() for n in ("live", "mobile", "hd", "local-test"))
    r = linly("presets", "show", "hd", "--set", "video.fps=25")
    shown = r.stdout.decode()
    assert r.returncode == 0 and "width = 1280" in shown and "fps = 25" in shown
    r = linly("backends")
    shown = r.stdout.decode()
    assert r.returncode == 0
    for needle in ("espeak", "cartoon", "testcard", "ready", "ffmpeg"):
        assert needle in shown, needle


def test_ctrl_c_closes_the_output_cleanly(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "long.txt").write_text("This sentence goes on for a while, again and again. " * 200, encoding="utf-8")
    out = tmp_path / "long.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "linly_push", "render", "--script", str(tmp_path / "long.txt"),
                             "-o", str(out), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Wait until frames are flowing, then interrupt.
    for line in proc.stdout:
        if b'"progress"' in line and json.loads(line)["frames"] > 100:
            break
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 5
    assert proc.returncode == 130, stderr.decode()
    assert "interrupted" in stderr.decode() and "Traceback" not in stderr.decode()
    p = probe(out)  # the trailer was written: the file plays
    assert p.video_seconds > 4


def test_a_failing_backend_plugin_is_exit_4(tmp_path):
    plugins = str(Path(__file__).parent / "plugins")  # a third-party package found through its entry points
    (tmp_path / "ok.txt").write_text("Fine.", encoding="utf-8")
    r = linly("backends", env={"PYTHONPATH": plugins, "COLUMNS": "300"})
    assert "crashing" in r.stdout.decode() and "linly-test-plugins" in r.stdout.decode()
    # A backend that is not ready says why, and which extra makes it ready, brackets and all.
    listing = " ".join(r.stdout.decode().split())
    assert ("uninstalled not ready a TTS whose engine [a package] is not installed (from linly-test-plugins) "
            "engine-package is not installed (pip install 'linly-test-plugins[uninstalled]')") in listing
    r = linly("render", "--script", str(tmp_path / "ok.txt"), "-o", str(tmp_path / "o.mp4"), "--tts", "crashing",
              "--json", env={"PYTHONPATH": plugins})
    assert r.returncode == 4, text(r)
    assert r.stderr.decode().strip() == "linly-push: error: crashing: failed on sentence 1: engine crashed"
    assert json.loads(r.stdout.decode().splitlines()[-1]) == {
        "event": "error", "code": 4, "message": "crashing: failed on sentence 1: engine crashed",
        "time": json.loads(r.stdout.decode().splitlines()[-1])["time"],
    }

    r = linly("render", "--script", str(tmp_path / "ok.txt"), "-o", str(tmp_path / "o.mp4"), "--avatar", "torn",
              env={"PYTHONPATH": plugins})
    assert r.returncode == 4, text(r)
    assert "torn: frame 0 has 777599 bytes; 960x540 yuv420p needs 777600" in r.stderr.decode()
    assert "Traceback" not in text(r)


@pytest.mark.parametrize("settings", [
    ["video.x264_preset=medium", "video.tune="],  # x264 lookahead: seconds of video before any audio
    ["video.fps=120", "audio.sample_rate=8000"],  # AAC wants audio frames far ahead of the video
    ["video.fps=50", "audio.sample_rate=8000", "video.x264_preset=veryslow", "video.tune="],
])
def test_encoders_that_read_ahead_do_not_deadlock_the_pipes(tmp_path, settings):
    out = tmp_path / "o.mp4"
    sets = [a for s in ["video.width=320", "video.height=180", *settings] for a in ("--set", s)]
    r = linly("render", "--script", "-", "-o", str(out), "--avatar", "testcard", *sets,
              input=b"Hello there, this is a test. It must not hang.", timeout=60)
    assert r.returncode == 0, text(r)
    assert probe(out).video_seconds > 3


def test_the_soft_limit_on_open_files_is_raised_to_the_hard_one(tmp_path):
    """Started with the soft limit many shells and services give (issue 18): raised at start, so
    control clients and reconnects cannot run out of descriptors while the hard limit allows more."""
    import resource
    import subprocess
    import sys
    import time

    def low() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))

    def soft() -> str:
        rows = Path(f"/proc/{proc.pid}/limits").read_text().splitlines()
        return next(row.split()[3] for row in rows if row.startswith("Max open files"))

    # It waits for the script on standard input: its limits can be read meanwhile.
    proc = subprocess.Popen([sys.executable, "-m", "linly_push", "render", "--script", "-", "-o", str(tmp_path / "x.mp4"),
                             "--set", "video.width=320", "--set", "video.height=180"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=low)
    try:
        deadline = time.monotonic() + 60
        while soft() != "4096" and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert soft() == "4096"
    finally:
        proc.communicate(b"Hello there.\n", timeout=120)
    assert proc.returncode == 0
