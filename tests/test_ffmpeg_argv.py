"""The ffmpeg command line, pinned (no process runs here), and finding ffmpeg."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from linly_push import ffmpeg
from linly_push.errors import OutputError, UsageError
from linly_push.ffmpeg import FFmpegSink, build_argv, find_ffmpeg, hint, last_error
from linly_push.presets import AudioSettings, VideoSettings, WhipSettings

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
        *"ffmpeg -hide_banner -nostdin -loglevel level+verbose -nostats -progress pipe:1 -y".split(),
        *INPUTS.split(),
        *"""-f mp4 -aac_coder fast -ac 2 -ar 44100 -b:a 128k -b:v 2M -bufsize 2M -c:a aac -c:v libx264 -g 50
        -keyint_min 25 -maxrate 2M -movflags +faststart -pix_fmt yuv420p -preset ultrafast
        -sc_threshold 0 -tune zerolatency -x264-params nal-hrd=cbr out/show.mp4""".split(),
    ]


def test_rtmp():
    url = "rtmp://127.0.0.1:1935/live/KEY"
    assert argv(url) == [
        *"ffmpeg -hide_banner -nostdin -loglevel level+verbose -nostats -progress pipe:1".split(),
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
        *"ffmpeg -hide_banner -nostdin -loglevel level+verbose -nostats -progress pipe:1".split(),
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


# -- several outputs: the tee muxer ------------------------------------------------------------

ENCODE = """
    -f tee -aac_coder fast -ac 2 -ar 44100 -b:a 128k -b:v 2M -bufsize 2M -c:a aac -c:v libx264
    -flags +global_header -g 50 -keyint_min 25 -maxrate 2M -pix_fmt yuv420p -preset ultrafast
    -sc_threshold 0 -tune zerolatency -x264-params nal-hrd=cbr
"""
# Two backslashes reach ffmpeg: the tee unescapes its list once, then each option list once more.
FIFO = (
    r"use_fifo=1:fifo_options=attempt_recovery=1\\:recover_any_error=1\\:recovery_wait_time=1"
    r"\\:restart_with_keyframe=1\\:drop_pkts_on_overflow=1\\:queue_size=137"  # 2 s of 25 fps + 44.1 kHz AAC
)
RTMP_OPTS = "flvflags=no_duration_filesize:rw_timeout=5000000"


def test_two_urls_and_a_record():
    a, b = "rtmp://a.example/live/KEY1", "rtmp://b.example:1936/app/KEY2"
    assert argv([a, b, "show.mkv"]) == [
        *"ffmpeg -hide_banner -nostdin -loglevel level+verbose -nostats -progress pipe:1 -y".split(),
        *INPUTS.split(),
        *ENCODE.split(),
        "[f=matroska:onfail=ignore:cluster_time_limit=1000]show.mkv"
        f"|[f=flv:onfail=ignore:{FIFO}:{RTMP_OPTS}]{a}"
        f"|[f=flv:onfail=ignore:{FIFO}:{RTMP_OPTS}]{b}",
    ]


def test_one_url_and_a_record_the_url_may_not_fail():
    url = "rtmp://a.example/live/KEY"
    assert argv([url, "out/show.mp4"])[-1] == (
        f"[f=mp4:onfail=ignore:movflags=+faststart]out/show.mp4|[f=flv:onfail=abort:{RTMP_OPTS}]{url}"
    )
    assert argv([url, "out/show.mp4"])[-len(ENCODE.split()) - 1 : -1] == ENCODE.split()


def test_three_urls():
    urls = ["rtmp://a/live/K1", "rtmps://b:443/app/K2", "srt://c:9000?streamid=publish:live/K3&latency=200000"]
    assert argv(urls)[-1] == (
        f"[f=flv:onfail=ignore:{FIFO}:{RTMP_OPTS}]{urls[0]}"
        f"|[f=flv:onfail=ignore:{FIFO}:{RTMP_OPTS}]{urls[1]}"
        f"|[f=mpegts:onfail=ignore:{FIFO}:rw_timeout=5000000]{urls[2]}"
    )
    assert "-y" not in argv(urls)


def test_files_alone_may_not_fail():
    assert argv(["a.mp4", "b.flv"])[-1] == "[f=mp4:onfail=abort:movflags=+faststart]a.mp4|[f=flv:onfail=abort]b.flv"


def test_one_output_in_a_list_is_the_plain_command():
    for target in ("rtmp://h/live/KEY", "show.mp4"):
        assert argv([target]) == argv(target)


def test_fifo_queue_holds_two_seconds_of_packets():
    video, audio = VideoSettings(fps=30), AudioSettings(sample_rate=48000)
    assert ffmpeg.fifo_options(video, audio)["queue_size"] == 154  # 2 * (30 + 48000 / 1024) = 153.75


@pytest.mark.parametrize(
    "outputs",
    [[], ["rtmp://h/live/K", "rtmp://h/live/K"], ["rtmp://h/live/K", "show.avi"], ["show.mp4", "udp://h:1"]],
)
def test_bad_output_lists_are_usage_errors(outputs):
    with pytest.raises(UsageError) as err:
        argv(outputs)
    assert "live/K" not in str(err.value)


def _token(text: str, term: str) -> tuple[str, str]:
    """ffmpeg's av_get_token: (the token, what follows it, starting at the terminator)."""
    text = text.lstrip(" \n\t\r")
    out, end, i = [], 0, 0
    while i < len(text) and text[i] not in term:
        c, i = text[i], i + 1
        if c == "\\" and i < len(text):
            out.append(text[i])
            i += 1
            end = len(out)
        elif c == "'":
            close = text.find("'", i)
            out.extend(text[i : close if close >= 0 else len(text)])
            i = close + 1 if close >= 0 else len(text)
            end = len(out)
        else:
            out.append(c)
    token = "".join(out)
    return token[:end] + token[end:].rstrip(" \n\t\r"), text[i:]


def parse_tee(spec: str) -> list[tuple[dict[str, str], str]]:
    """The tee muxer's reading of its argument: (options, file name) for each output."""
    slaves = []
    while spec:
        slave, spec = _token(spec, "|")
        spec = spec[1:]
        options, rest = {}, slave[1:]
        while rest[0] != "]":
            key, _, rest = rest.partition("=")
            options[key], rest = _token(rest, ":]")
            rest = rest[1:] if rest[0] == ":" else rest
        slaves.append((options, rest[1:]))
    return slaves


def test_tee_escapes_what_its_parser_would_eat():
    nasty = " odd [1|2]: it's a\\b.mkv"  # leading space, list and option delimiters, quote, backslash
    key = "rtmp://h/live/k|e[y]'s:x"
    parsed = parse_tee(argv([nasty, key, "rtmp://h2/live/K"])[-1])
    assert [name for _, name in parsed] == [nasty, key, "rtmp://h2/live/K"]
    assert parsed[0][0] == {"f": "matroska", "onfail": "ignore", "cluster_time_limit": "1000"}
    fifo = dict(pair.split("=") for pair in parsed[1][0]["fifo_options"].split(":"))
    assert fifo == {
        "attempt_recovery": "1", "recover_any_error": "1", "recovery_wait_time": "1",
        "restart_with_keyframe": "1", "drop_pkts_on_overflow": "1", "queue_size": "137",
    }


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


FFMPEG5_TEE_TIMED_OUT = """\
[rtmp @ 0x56105b8400c0] Cannot read RTMP handshake response
[tee @ 0x56105b744540] Slave '[f=flv:onfail=abort:flvflags=no_duration_filesize:rw_timeout=5000000]rtmp://127.0.0.1:47999/live/****': error opening: Connection timed out
[tee @ 0x56105b744540] Slave muxer #0 failed, aborting.
Could not write header for output file #0 (incorrect codec parameters ?): Connection timed out
Error initializing output stream 0:1 --
[rawvideo @ 0x56105b707980] Thread message queue blocking; consider raising the thread_queue_size option (current value: 8)"""
FFMPEG9_TEE_DROPPED = """\
[tee @ 0x55fbc6b85400] Slave muxer #0 failed, aborting.
[aost#0:1/aac @ 0x55fbc6b8c140] Error submitting a packet to the muxer: Broken pipe
    Last message repeated 1 times
[out#0/tee @ 0x55fbc6b852c0] Error muxing a packet
[out#0/tee @ 0x55fbc6b852c0] Task finished with error code: -32 (Broken pipe)
[out#0/tee @ 0x55fbc6b852c0] Terminating thread with return code -32 (Broken pipe)"""


@pytest.mark.parametrize(
    ("stderr", "line"),
    [
        (FFMPEG5_REFUSED, "rtmp://127.0.0.1:1999/live/****: Connection refused"),
        (FFMPEG9_REFUSED, "Error opening output rtmp://127.0.0.1:1999/live/****: Connection refused"),
        (FFMPEG9_DROPPED, "Error closing file: Broken pipe"),
        (FFMPEG5_TEE_TIMED_OUT, "rtmp://127.0.0.1:47999/live/****: error opening: Connection timed out"),
        (FFMPEG9_TEE_DROPPED, "Error submitting a packet to the muxer: Broken pipe"),
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


def test_hints_name_the_output_the_error_is_about():
    a, b = "rtmp://127.0.0.1:1999/live/KEY", "rtmp://127.0.0.1:1998/live/KEY2"
    text = "[tcp @ 0x55] Connection to tcp://127.0.0.1:1998 failed\nrtmp://127.0.0.1:1998/live/****: Connection refused"
    assert hint(text, [a, b, "show.mkv"]) == "is the server at rtmp://127.0.0.1:1998/live/**** running?"
    dropped = hint(FFMPEG9_TEE_DROPPED, ["show.mkv", a])
    assert dropped == "the server closed the connection: did it stop, or refuse the stream key?"
    assert "already being published" in hint("[rtmp @ 0x55] Server error: Already publishing", a)


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


# -- WebRTC (WHIP) ----------------------------------------------------------------------------

WHIP = "http://127.0.0.1:1985/rtc/v1/whip/?app=live&stream=KEY"


def whip_argv(output: str | list[str], token: str | None = None) -> list[str]:
    return build_argv(
        "ffmpeg", VideoSettings(), AudioSettings(), output, video_fd=5, audio_fd=7, whip=WhipSettings(), token=token,
    )


def test_whip_alone_is_webrtc_h264_and_opus_without_padding():
    assert whip_argv(WHIP, token="TOKEN") == [
        *"ffmpeg -hide_banner -nostdin -loglevel level+verbose -nostats -progress pipe:1".split(),
        *INPUTS.split(),
        *"""-f whip -ac 2 -ar 48000 -authorization TOKEN -b:a 96k -b:v 2M -bf 0 -bufsize 2M -c:a libopus
        -c:v libx264 -g 25 -keyint_min 25 -maxrate 2M -pix_fmt yuv420p -preset ultrafast -profile:v baseline
        -sc_threshold 0 -tune zerolatency""".split(),
        WHIP,
    ]


def test_whip_beside_rtmp_shares_the_video_and_encodes_the_audio_twice():
    rtmp = "rtmp://127.0.0.1/live/KEY"
    args = whip_argv([WHIP, rtmp])
    assert args[args.index("-map") : args.index("-map") + 6] == ["-map", "0:v", "-map", "1:a", "-map", "1:a"]
    pairs = dict(zip(args[::1], args[1::1]))
    assert (pairs["-c:a:0"], pairs["-ar:a:0"], pairs["-c:a:1"], pairs["-ar:a:1"]) == ("aac", "44100", "libopus", "48000")
    assert pairs["-profile:v"] == "baseline" and pairs["-g"] == "25" and pairs["-x264-params"] == "nal-hrd=cbr"
    rtmp_slave, whip_slave = sorted(args[-1].split("|"), key=lambda s: "whip" in s)
    assert rtmp_slave.startswith(r"[f=flv:select=v,a\\:0:") and rtmp_slave.endswith(rtmp)
    assert whip_slave.startswith(r"[f=whip:select=v,a\\:1:") and whip_slave.endswith(WHIP)


@pytest.mark.parametrize(("record", "audio"), [("show.mkv", "opus"), ("show.mp4", "opus"), ("show.flv", "aac")])
def test_a_recording_beside_whip_keeps_opus_where_its_container_holds_it(record, audio):
    encode = ffmpeg.argv.plan([WHIP, record], VideoSettings())
    assert encode.audio[encode.audio_stream(record)] == audio
    assert encode.audio[encode.audio_stream(WHIP)] == "opus"
    # the recording beside RTMP and WHIP takes the AAC encoded anyway
    both = ffmpeg.argv.plan([WHIP, "rtmp://h/live/k", record], VideoSettings())
    assert both.audio == ("aac", "opus") and both.audio[both.audio_stream(record)] == "aac"


def test_whip_token_never_shows_in_the_command_a_sink_reports():
    sink = FFmpegSink(VideoSettings(), AudioSettings(), WHIP, whip=WhipSettings(), token="s3cret-token")
    shown = sink.command_line
    assert "-authorization" in shown and "s3cret-token" not in shown and "KEY" not in shown


def test_check_argv_tries_the_encodes_the_outputs_need():
    args = ffmpeg.argv.check_argv("ffmpeg", VideoSettings(), AudioSettings(), [WHIP, "rtmp://h/live/k"], WhipSettings())
    assert args.count("-map") == 3 and "libopus" in args and "baseline" in args


def fake_whip_ffmpeg(tmp_path: Path, whip: bool) -> Path:
    exe = tmp_path / "ffmpeg"
    muxers = r" E whip  WHIP\n E flv  FLV\n" if whip else r" E flv  FLV\n"
    exe.write_text(
        "#!/bin/sh\n"
        'case "$*" in *-version*) echo "ffmpeg version 9.0-fake Copyright";; '
        r'*-encoders*) printf "Encoders:\n ------\n V....D libx264  H.264\n A....D aac  AAC\n A....D libopus  Opus\n";; '
        f'*-muxers*) printf "Muxers:\\n --\\n{muxers}";; esac\n'
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_whip_takes_the_first_ffmpeg_that_can(tmp_path, monkeypatch):
    monkeypatch.delenv("LINLY_PUSH_FFMPEG", raising=False)
    fake_whip_ffmpeg(tmp_path, whip=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_ffmpeg().source == "PATH" and not find_ffmpeg().whip
    found = find_ffmpeg(whip=True)
    assert found.source == "imageio-ffmpeg wheel" and found.whip
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_ffmpeg(whip=True).source == "imageio-ffmpeg wheel"


def test_whip_on_path_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("LINLY_PUSH_FFMPEG", raising=False)
    exe = fake_whip_ffmpeg(tmp_path, whip=True)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_ffmpeg(whip=True) == ffmpeg.FFmpegBinary(str(exe), "9.0-fake", "PATH", whip=True)


def test_no_ffmpeg_that_can_push_whip_is_a_usage_error_naming_what_lacks(tmp_path, monkeypatch):
    import imageio_ffmpeg

    monkeypatch.delenv("LINLY_PUSH_FFMPEG", raising=False)
    exe = fake_whip_ffmpeg(tmp_path, whip=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(exe))  # the wheel's is that one too
    with pytest.raises(UsageError) as err:
        find_ffmpeg(whip=True)
    message = str(err.value)
    assert "no ffmpeg here can push WebRTC" in message and "lacks the whip muxer" in message
    assert "imageio-ffmpeg>=0.8.1" in message and err.value.exit_code == 2


def test_an_explicit_ffmpeg_without_whip_is_refused_not_passed_over(tmp_path, monkeypatch):
    exe = fake_whip_ffmpeg(tmp_path, whip=False)
    monkeypatch.setenv("LINLY_PUSH_FFMPEG", str(exe))
    with pytest.raises(UsageError, match=r"cannot push WebRTC: it lacks the whip muxer; point LINLY_PUSH_FFMPEG"):
        find_ffmpeg(whip=True)


WHIP_REFUSED_TCP = """\
[tcp @ 0x7f945c06b780] Connection to tcp://127.0.0.1:1 failed: Connection refused
[WHIP muxer @ 0x55699be13f00] Failed to request url=http://127.0.0.1:1/x, offer: v=0
[out#0/whip @ 0x55ecca443900] Could not write header (incorrect codec parameters ?): Connection refused
[vf#0:0 @ 0x55ecca44c240] Error sending frames to consumers: Connection refused
[vf#0:0 @ 0x55ecca44c240] Task finished with error code: -111 (Connection refused)
[out#0/whip @ 0x55ecca443900] Nothing was written into output file, because at least one of its streams received no packets.
"""


def test_a_whip_endpoint_that_is_not_listening_reads_as_the_connection_that_failed():
    assert last_error(WHIP_REFUSED_TCP.splitlines()) == "Connection to tcp://127.0.0.1:1 failed: Connection refused"
    assert hint(WHIP_REFUSED_TCP, "http://127.0.0.1:1/x") == "is the server at http://127.0.0.1:1/x running?"


def test_the_whip_muxers_sdp_dump_is_not_an_error_line():
    from linly_push.ffmpeg.diagnosis import is_sdp, parse_log_line

    assert is_sdp(*parse_log_line("a=ssrc:2783859568 msid:FFmpeg video")[::2])
    assert not is_sdp(*parse_log_line("[tcp @ 0x7f] [error] a=1 is not an option")[::2])


@pytest.mark.parametrize(
    ("line", "error", "refused"),
    [
        ("Could not write header (incorrect codec parameters ?): Server returned 401 Unauthorized (authorization failed)",
         "the server answered 401 Unauthorized", True),
        ("Could not write header (incorrect codec parameters ?): Server returned 404 Not Found", "the server answered 404 Not Found", True),
        ("Could not write header (incorrect codec parameters ?): Server returned 5XX Server Error reply", "the server answered an error (5xx)", False),
    ],
)
def test_a_whip_endpoints_http_answer_is_the_error(line, error, refused):
    from linly_push.ffmpeg.diagnosis import refused as is_refused

    assert last_error([f"[out#0/whip @ 0x55] {line}", "[vf#0:0 @ 0x5] Terminating thread with return code -1"]) == error
    assert is_refused(line) is refused
