import os
import resource
import subprocess
import sys

import pytest
from cli_run import linly, text

from linly_push import presets
from linly_push.errors import UsageError


def test_builtin_presets_match_the_table():
    live, mobile, hd, local = (presets.load(n) for n in ("live", "mobile", "hd", "local-test"))
    assert (live.video.width, live.video.height, live.video.fps, live.video.bitrate, live.video.cbr) == (960, 540, 25, "2M", True)
    assert (mobile.video.fps, mobile.video.bitrate, mobile.video.maxrate) == (15, "1M", "2M")
    assert (hd.video.width, hd.video.height, hd.video.fps, hd.video.bitrate) == (1280, 720, 30, "3M")
    assert local.live.url == "rtmp://localhost/live/test"
    assert local.video == live.video
    for p in (live, mobile, hd, local):
        assert p.video.x264_preset == "ultrafast" and p.video.tune == "zerolatency"
        assert p.video.gop == 2 * p.video.fps
        assert p.audio.sample_rate == 44100


def test_set_overrides_in_order_and_typed():
    p = presets.load("live", [presets.parse_assignment("video.fps=30"), ("video.fps", 15), presets.parse_assignment("tts.voice=en-gb")])
    assert p.video.fps == 15
    assert p.tts.options == {"voice": "en-gb"}
    assert presets.parse_value("2.5") == 2.5 and presets.parse_value("true") is True and presets.parse_value("en-us") == "en-us"


@pytest.mark.parametrize("assignment, message", [
    ("video.fsp=30", "unknown setting video.fsp"),
    ("video.fps=0", "video.fps"),
    ("video.width=961", "must be even"),
    ("audio.sample_rate=44000", "audio.sample_rate"),
    ("video.bitrate=fast", "bit rate"),
    ("video.x264_preset=turbo", "ultrafast"),
])
def test_bad_settings_are_usage_errors(assignment, message):
    with pytest.raises(UsageError, match=message):
        presets.load("live", [presets.parse_assignment(assignment)])


@pytest.mark.parametrize("item", ["fps=30", "video.fps", "=3", "video..fps=1"])
def test_malformed_set(item):
    with pytest.raises(UsageError, match="section.key=value"):
        presets.parse_assignment(item)


def test_user_preset_file(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('description = "mine"\n[video]\nwidth = 640\nheight = 360\nfps = 30\n')
    p = presets.load(str(f))
    assert (p.name, p.video.width, p.video.fps, p.video.bitrate) == ("mine", 640, 30, "2M")


def test_unknown_and_invalid_preset(tmp_path):
    with pytest.raises(UsageError, match="unknown preset 'nope'.*local-test"):
        presets.load("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("[video\nwidth=1")
    with pytest.raises(UsageError, match="invalid preset"):
        presets.load(str(bad))
    with pytest.raises(UsageError, match="not found"):
        presets.load(str(tmp_path / "missing.toml"))


# ---------------------------------------------------------------------------------------------
# Preset files and --set values that would have escaped as a traceback, a hang or a full memory.


def _usage_error_line(r: subprocess.CompletedProcess) -> str:
    """The one line a usage error prints (exit 2, no traceback)."""
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 2, text(r)[-2000:]
    assert err.startswith("linly-push: error: ") and err.count("\n") == 1, err[-2000:]
    return err


def _show_limited(source: str) -> subprocess.CompletedProcess:
    """`presets show SOURCE` with its memory capped, so a read without a bound fails fast (a
    MemoryError) instead of bringing in the OOM killer, and a hang ends at the timeout."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))  # 1.5 GiB

    return subprocess.run([sys.executable, "-m", "linly_push", "presets", "show", source], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=60, preexec_fn=cap)  # fmt: skip


def test_a_device_as_preset_is_a_usage_error_not_a_read_without_end():
    err = _usage_error_line(_show_limited("/dev/zero"))
    assert "preset /dev/zero is not a file" in err


def test_a_fifo_or_folder_as_preset_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "preset.toml"
    os.mkfifo(fifo)
    err = _usage_error_line(_show_limited(str(fifo)))
    assert f"preset {fifo} is not a file" in err
    with pytest.raises(UsageError, match=f"preset {tmp_path} is not a file"):
        presets.load(str(tmp_path))


def test_a_preset_file_is_read_up_to_its_bound(tmp_path):
    big = tmp_path / "big.toml"
    line = b"# " + b"x" * 97 + b"\n"
    big.write_bytes(b"[video]\nfps = 30\n" + line * ((presets.MAX_PRESET_BYTES - 17) // len(line)))
    assert big.stat().st_size <= presets.MAX_PRESET_BYTES
    assert presets.load(str(big)).video.fps == 30
    big.write_bytes(big.read_bytes() + line)
    with pytest.raises(UsageError, match=f"preset {big} is over 1 MiB"):
        presets.load(str(big))


NESTED = {
    "an array 1000 deep": "a = " + "[" * 1000 + "]" * 1000,
    "an inline table 1000 deep": "a = " + "{b = " * 1000 + "1" + "}" * 1000,
    "a backend option 1000 deep": "[tts]\nbackend = 'espeak'\nx = " + "[" * 1000 + "]" * 1000,
    "a backend option 300 deep": "[tts]\nbackend = 'espeak'\nx = " + "[" * 300 + "]" * 300,
    "backend tables 1000 deep": "[tts." + ".".join(["t"] * 1000) + "]\nx = 1",
    "a dotted key 1000 deep": "[tts]\n" + ".".join(["k"] * 1000) + " = 1",
}


@pytest.mark.parametrize("toml", NESTED.values(), ids=NESTED)
def test_a_preset_nested_too_deep_is_a_usage_error(tmp_path, toml):
    deep = tmp_path / "deep.toml"
    deep.write_text(toml, encoding="utf-8")
    with pytest.raises(UsageError, match="nested more than 32 deep"):
        presets.load(str(deep))
    err = _usage_error_line(linly("presets", "show", str(deep), timeout=60))
    assert "nested more than 32 deep" in err and len(err) < 300, err


SETS = {
    "a value 1000 deep": "video.fps=" + "[" * 1000 + "]" * 1000,
    "a backend option 300 deep": "tts.x=" + "[" * 300 + "]" * 300,
    "a key 1000 deep": "tts." + ".".join(["k"] * 1000) + "=1",
}


@pytest.mark.parametrize("assignment", SETS.values(), ids=SETS)
def test_a_set_value_nested_too_deep_is_a_usage_error(assignment):
    err = _usage_error_line(linly("presets", "show", "live", "--set", assignment, timeout=60))
    assert "nested more than 32 deep" in err and len(err) < 300, err


def test_a_preset_nested_as_deep_as_allowed_loads(tmp_path):
    # [avatar] is one level, each array inside it one more: 32 in all is the most.
    ok = tmp_path / "ok.toml"
    ok.write_text("[avatar]\nbackend = 'cartoon'\nx = " + "[" * 31 + "1" + "]" * 31)
    x = presets.load(str(ok)).avatar.options["x"]
    for _ in range(31):
        (x,) = x
    assert x == 1
    ok.write_text("[avatar]\nbackend = 'cartoon'\nx = " + "[" * 32 + "]" * 32)
    with pytest.raises(UsageError, match="avatar.x is nested more than 32 deep"):
        presets.load(str(ok))
