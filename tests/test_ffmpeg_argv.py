"""The ffmpeg command line, pinned (no process runs here), and finding ffmpeg."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from linly_push import ffmpeg
from linly_push.errors import OutputError, UsageError
from linly_push.ffmpeg import FFmpegSink, build_argv, find_ffmpeg, hint, last_error
from linly_push.presets import AudioSettings, VideoSettings

INPUTS = """
    -f rawvideo -analyzeduration 0 -color_primaries bt709 -color_range tv -color_trc bt709
    -colorspace bt709 -pix_fmt yuv420p -probesize 32 -r 25 -s 960x540 -i pipe:5
    -f s16le -analyzeduration 0 -ar 44100 -ch_layout stereo -probesize 32 -i pipe:7
    -map 0:v -map 1:a
"""


def argv(output: str, video: VideoSettings | None = None, audio: AudioSettings | None = None) -> list[str]:
    return build_argv("ffmpeg", video or VideoSettings(), audio or AudioSettings(), output, video_fd=5, audio_fd=7)


def test_mp4_file():
    assert argv("out/show.mp4") == [
        *"ffmpeg -hide_banner -nostdin -loglevel warning -nostats -progress pipe:1 -y".split(),
        *INPUTS.split(),
        *"""-f mp4 -aac_coder fast -ac 2 -ar 44100 -b:a 128k -b:v 2M -bufsize 2M -c:a aac -c:v libx264 -g 50
        -keyint_min 25 -maxrate 2M -movflags +faststart -pix_fmt yuv420p -preset ultrafast
        -sc_threshold 0 -tune zerolatency -x264-params nal-hrd=cbr out/show.mp4""".split(),
    ]


def test_rtmp():
    url = "rtmp://127.0.0.1:1935/live/KEY"
    assert argv(url) == [
        *"ffmpeg -hide_banner -nostdin -loglevel warning -nostats -progress pipe:1".split(),
        *INPUTS.split(),
        *"""-f flv -aac_coder fast -ac 2 -ar 44100 -b:a 128k -b:v 2M -bufsize 2M -c:a aac -c:v libx264
        -flvflags no_duration_filesize -g 50 -keyint_min 25 -maxrate 2M -pix_fmt yuv420p
        -preset ultrafast -rw_timeout 5000000 -sc_threshold 0 -tune zerolatency
        -x264-params nal-hrd=cbr""".split(),
        url,
    ]


def test_srt():
    url = "srt://127.0.0.1:9000?streamid=publish:live/KEY&latency=200000"
    assert argv(url) == [
        *"ffmpeg -hide_banner -nostdin -loglevel warning -nostats -progress pipe:1".split(),
        *INPUTS.split(),
        *"""-f mpegts -aac_coder fast -ac 2 -ar 44100 -b:a 128k -b:v 2M -bufsize 2M -c:a aac -c:v libx264 -g 50
        -keyint_min 25 -maxrate 2M -pix_fmt yuv420p -preset ultrafast -rw_timeout 5000000
        -sc_threshold 0 -tune zerolatency -x264-params nal-hrd=cbr""".split(),
        url,
    ]


@pytest.mark.parametrize(
    ("name", "muxer"),
    [("a.MP4", "mp4"), ("a.mov", "mov"), ("a.mkv", "matroska"), ("a.flv", "flv"), ("a.ts", "mpegts")],
)
def test_file_container_from_extension(name, muxer):
    args = argv(name)
    assert args[args.index("-map") + 4 : args.index("-map") + 6] == ["-f", muxer]
    assert ("-movflags" in args) == (muxer in ("mp4", "mov"))
    assert "-flvflags" not in args and "-rw_timeout" not in args


def test_unknown_extension_is_a_usage_error():
    with pytest.raises(UsageError, match=r"\.mp4"):
        argv("show.avi")


def test_a_sink_for_a_bad_output_fails_when_made():
    with pytest.raises(UsageError):
        FFmpegSink(VideoSettings(), AudioSettings(), "show.avi")


def test_unsupported_scheme_is_a_usage_error():
    with pytest.raises(UsageError, match="srt://"):
        argv("udp://127.0.0.1:1234")


def test_vbr_without_vbv_or_tune():
    video = VideoSettings(fps=30, bitrate="1500k", maxrate=None, bufsize=None, cbr=False, tune=None, gop_seconds=1)
    args = argv("a.mp4", video, AudioSettings(sample_rate=48000, channels=1, bitrate="96k"))
    for absent in ("-maxrate", "-bufsize", "-x264-params", "-tune"):
        assert absent not in args
    pairs = dict(zip(args, args[1:]))
    assert pairs["-b:v"] == "1500k" and pairs["-g"] == "30" and pairs["-keyint_min"] == "30"
    assert pairs["-ch_layout"] == "mono" and pairs["-ac"] == "1" and pairs["-b:a"] == "96k"
    assert args.count("48000") == 2  # input and output rate


def test_pipes_name_the_given_fds():
    args = build_argv("ffmpeg", VideoSettings(), AudioSettings(), "a.mp4", video_fd=11, audio_fd=12)
    assert [args[i + 1] for i, a in enumerate(args) if a == "-i"] == ["pipe:11", "pipe:12"]


# -- reading ffmpeg's stderr ------------------------------------------------------------------

FFMPEG5_REFUSED = """\
[tcp @ 0x5630794eaf00] Connection to tcp://127.0.0.1:1999?tcp_nodelay=0 failed: Connection refused
[rtmp @ 0x5630794ea640] Cannot open connection tcp://127.0.0.1:1999?tcp_nodelay=0
rtmp://127.0.0.1:1999/live/****: Connection refused"""
FFMPEG9_REFUSED = """\
[tcp @ 0x5582b2fcf480] Connection to tcp://127.0.0.1:1999?tcp_nodelay=0 failed: Connection refused
[out#0/flv @ 0x5582b2fc8040] Error opening output rtmp://127.0.0.1:1999/live/****: Connection refused
Error opening output file rtmp://127.0.0.1:1999/live/****.
Error opening output files: Connection refused"""
FFMPEG9_DROPPED = """\
[vost#0:0/libx264 @ 0x55c851551240] Error submitting a packet to the muxer: Broken pipe
    Last message repeated 1 times
[out#0/flv @ 0x55c851550480] Error muxing a packet
[out#0/flv @ 0x55c851550480] Task finished with error code: -32 (Broken pipe)
[out#0/flv @ 0x55c851550480] Terminating thread with return code -32 (Broken pipe)
[out#0/flv @ 0x55c851550480] Error closing file: Broken pipe
Conversion failed!"""


@pytest.mark.parametrize(
    ("stderr", "line"),
    [
        (FFMPEG5_REFUSED, "rtmp://127.0.0.1:1999/live/****: Connection refused"),
        (FFMPEG9_REFUSED, "Error opening output rtmp://127.0.0.1:1999/live/****: Connection refused"),
        (FFMPEG9_DROPPED, "Error closing file: Broken pipe"),
        ("Conversion failed!", None),
        (
            "x.mp4: No such file or directory\n[rawvideo @ 0x55] Thread message queue blocking; consider raising"
            " the thread_queue_size option (current value: 8)",
            "x.mp4: No such file or directory",
        ),
    ],
)
def test_last_error_skips_summaries_and_tags(stderr, line):
    assert last_error(stderr.splitlines()) == line


def test_hints():
    url = "rtmp://127.0.0.1:1999/live/KEY"
    assert hint(FFMPEG9_REFUSED, url) == "is the server at rtmp://127.0.0.1:1999/live/**** running?"
    assert "refuse the stream key" in hint(FFMPEG9_DROPPED, url)
    assert "exists and is writable" in hint("/x/a.mp4: No such file or directory", "/x/a.mp4")
    srt = "[srt @ 0x55] Connection to srt://127.0.0.1:9000?**** failed: Input/output error"
    assert hint(srt, "srt://127.0.0.1:9000?streamid=KEY") == "is the server at srt://127.0.0.1:9000?**** running?"
    assert hint("something else", url) is None


# -- finding ffmpeg ---------------------------------------------------------------------------


def fake_ffmpeg(tmp_path: Path, encoders: str) -> Path:
    exe = tmp_path / "ffmpeg"
    exe.write_text(
        "#!/bin/sh\n"
        'case "$*" in *-version*) echo "ffmpeg version 6.1-fake Copyright";; '
        f'*-encoders*) printf "Encoders:\\n ------\\n{encoders}";; esac\n'
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_env_var_names_the_binary(tmp_path, monkeypatch):
    exe = fake_ffmpeg(tmp_path, " V....D libx264  H.264\\n A....D aac  AAC\\n")
    monkeypatch.setenv("LINLY_PUSH_FFMPEG", str(exe))
    assert find_ffmpeg() == ffmpeg.FFmpegBinary(str(exe), "6.1-fake", "LINLY_PUSH_FFMPEG")


def test_missing_encoder_is_an_output_error(tmp_path, monkeypatch):
    exe = fake_ffmpeg(tmp_path, " A....D aac  AAC\\n V....D libx264rgb  H.264 RGB\\n")
    monkeypatch.setenv("LINLY_PUSH_FFMPEG", str(exe))
    with pytest.raises(OutputError, match=r"lacks the libx264 encoder.*LINLY_PUSH_FFMPEG"):
        find_ffmpeg()


def test_env_var_pointing_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("LINLY_PUSH_FFMPEG", str(tmp_path / "nope"))
    with pytest.raises(OutputError, match="not an executable ffmpeg"):
        find_ffmpeg()


def test_path_then_wheel(tmp_path, monkeypatch):
    monkeypatch.delenv("LINLY_PUSH_FFMPEG", raising=False)
    exe = fake_ffmpeg(tmp_path, " V....D libx264  H.264\\n A....D aac  AAC\\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_ffmpeg().source == "PATH"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    found = find_ffmpeg()
    assert found.source == "imageio-ffmpeg wheel" and found.path != str(exe)
