"""URLs and settings that cannot work are found before going on air (issue 9): exit 2 at once,
one line, no traceback, no retries. The encoder settings are tried on the ffmpeg that will run."""

from __future__ import annotations

import json

import pytest

from broadcast import SMALL, write_script
from cli_run import linly, text
from linly_push import urls
from linly_push.errors import UsageError
from linly_push.ffmpeg import check_encoder, find_ffmpeg
from linly_push.presets import AudioSettings, VideoSettings


def refused(r, *says: str) -> str:
    assert r.returncode == 2, text(r)
    events = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [e["event"] for e in events] == ["error"]  # nothing started
    [line] = r.stderr.decode().splitlines()
    assert line.startswith("linly-push: error: ") and "Traceback" not in line
    for s in says:
        assert s in line, line
    return line


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("rtmp://", "has no host"),
        ("rtmp:///live/key", "has no host"),
        ("rtmp://[::1/live/key", "is not a valid URL"),
        ("rtmp://127.0.0.1:99999/live/key", "is not a valid URL"),
        ("rtmp://127.0.0.1", "has no application and stream key"),
        ("srt://127.0.0.1?streamid=key", "has no port"),
    ],
)
def test_a_url_that_cannot_work_is_a_usage_error_before_anything_starts(tmp_path, url, says):
    r = linly("live", "--script", write_script(tmp_path), "--url", url, "--json", *SMALL, timeout=60)
    line = refused(r, says)
    assert "key" not in line.replace("stream key", "")  # the key part stays masked


def test_a_malformed_url_with_a_secret_in_it_stays_masked(tmp_path):
    r = linly("live", "--script", write_script(tmp_path), "--url", "rtmp://[::1/live/${K}", "--json", *SMALL,
              env={"K": "sekrit-value-77"}, timeout=60)
    line = refused(r, "is not a valid URL")
    assert "sekrit" not in line and "77" not in line


@pytest.mark.parametrize(
    ("setting", "says"),
    [("video.tune=cinematic", "video.tune"), ("video.bitrate=2Q", "video.bitrate")],
)
@pytest.mark.parametrize("command", ["live", "render"])
def test_encoder_settings_ffmpeg_rejects_are_a_usage_error(tmp_path, command, setting, says):
    if setting.startswith("video.bitrate"):
        # The preset's own check catches a malformed rate before ffmpeg would.
        says = "is not a bit rate"
    where = ["--url", "rtmp://127.0.0.1:1/live/key"] if command == "live" else ["-o", str(tmp_path / "x.mp4")]
    r = linly(command, "--script", write_script(tmp_path), *where, "--set", setting, "--set", "video.cbr=false",
              "--json", *SMALL, timeout=60)
    refused(r, says)


def test_check_encoder_names_the_setting_ffmpeg_rejected():
    binary = find_ffmpeg().path
    check_encoder(binary, VideoSettings(width=320, height=180), AudioSettings())  # fine: no error
    with pytest.raises(UsageError) as err:
        check_encoder(binary, VideoSettings(width=320, height=180, tune="cinematic"), AudioSettings())
    assert "invalid tune 'cinematic'" in str(err.value) and "video.tune" in str(err.value)
    with pytest.raises(UsageError, match="x264_preset|preset"):
        # A preset name x264 does not know, past our own list: what a newer or older ffmpeg may reject.
        check_encoder(binary, VideoSettings.model_construct(**{**VideoSettings().model_dump(), "x264_preset": "turbo"}), AudioSettings())


def test_urls_check_accepts_what_servers_take():
    for url in ("rtmp://127.0.0.1/live/k", "rtmps://a.example:443/app/k", "srt://h:9000?streamid=k",
                "rtmp://[::1]:1935/live/k", "rtmp://u:p@h/app/k"):
        urls.check(url)
