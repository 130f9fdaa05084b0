import pytest

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
