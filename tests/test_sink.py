"""FFmpegSink against a real ffmpeg: files checked with ffprobe, a local RTMP server, failures."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from rtmp_server import free_port, read_stream

from linly_push.timeline import frame_start
from linly_push.errors import OutputError
from linly_push.ffmpeg import FFmpegSink
from linly_push.ffmpeg import argv as ffmpeg_argv
from linly_push.presets import AudioSettings, VideoSettings

VIDEO = VideoSettings(width=320, height=180, fps=30, bitrate="400k", maxrate="400k", bufsize="400k", gop_seconds=1)
AUDIO = AudioSettings(sample_rate=44100, channels=2, bitrate="96k")
CUT = 50  # a hard scene change: with scene-cut detection on, x264 would put a keyframe here


ON_PATH = shutil.which("ffmpeg")
BINARIES = [  # Debian's 5.1 and the wheel's 9.x differ in options and messages
    pytest.param(ON_PATH, id="PATH", marks=pytest.mark.skipif(ON_PATH is None, reason="no ffmpeg on PATH")),
    pytest.param(imageio_ffmpeg.get_ffmpeg_exe(), id="wheel"),
]


def frame(n: int, video: VideoSettings = VIDEO) -> np.ndarray:
    """yuv420p: a moving luma ramp, dark before CUT and bright after; neutral chroma."""
    w, h = video.width, video.height
    y = ((np.arange(w)[None, :] + np.arange(h)[:, None] + 4 * n) % 64).astype(np.uint8)
    y += 16 if n < CUT else 160
    return np.concatenate([y.ravel(), np.full(w * h // 2, 128, np.uint8)])


def ticks(seconds: float, video: VideoSettings = VIDEO, audio: AudioSettings = AUDIO):
    """(frame, audio) per frame: a 440 Hz tone cut exactly on the frame grid."""
    fps, rate = video.fps, audio.sample_rate
    for n in range(round(seconds * fps)):
        a, b = frame_start(n, fps, rate), frame_start(n + 1, fps, rate)
        tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(a, b) / rate)).astype(np.int16)
        yield frame(n, video), np.repeat(tone[:, None], audio.channels, axis=1)


def push(sink: FFmpegSink, seconds: float, realtime: bool = False) -> None:
    t0 = time.monotonic()
    for n, (f, a) in enumerate(ticks(seconds, sink.video, sink.audio)):
        if realtime:
            time.sleep(max(0.0, t0 + n / sink.video.fps - time.monotonic()))
        sink.write(f, a)


@pytest.mark.parametrize("ffmpeg", BINARIES)
def test_file_has_what_was_written(ffmpeg, tmp_path, ffprobe):
    out = tmp_path / "show.mp4"
    with FFmpegSink(VIDEO, AUDIO, str(out), ffmpeg=ffmpeg) as sink:
        push(sink, 3.0)
    assert sink.returncode == 0 and sink.connected
    assert sink.progress is not None and sink.progress.done and sink.progress.frame == 90

    info = ffprobe(out)
    v, a = sorted(info["streams"], key=lambda s: s["codec_type"], reverse=True)
    assert (v["codec_name"], v["width"], v["height"], v["pix_fmt"]) == ("h264", 320, 180, "yuv420p")
    assert (v["r_frame_rate"], int(v["nb_frames"])) == ("30/1", 90)
    assert (v["color_space"], v["color_primaries"], v["color_transfer"], v["color_range"]) == ("bt709",) * 3 + ("tv",)
    assert (a["codec_name"], a["sample_rate"], a["channels"]) == ("aac", "44100", 2)
    frame_time = 1 / VIDEO.fps
    assert abs(float(v["duration"]) - 3.0) < frame_time
    assert abs(float(a["duration"]) - 3.0) < frame_time
    assert info["format"]["format_name"].startswith("mov,mp4")
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart

    keys = ffprobe(out, "-select_streams", "v", "-skip_frame", "nokey", "-show_entries", "frame=pts_time")
    assert [Fraction(f["pts_time"]) for f in keys["frames"]] == [0, 1, 2]  # every gop (30), not at CUT


@pytest.mark.live
def test_rtmp_push_is_played_and_recorded(rtmp_server, tmp_path, ffprobe):
    url = rtmp_server.url(key="test")
    with ThreadPoolExecutor(1) as pool:
        played = pool.submit(read_stream, url, 2.0, tmp_path / "played.flv")
        rtmp_server.wait_for("play", "test")
        with FFmpegSink(VIDEO, AUDIO, url) as sink:
            push(sink, 3.0, realtime=True)
        back = played.result()

    for path, seconds in ((back, 2.0), *((p, 3.0) for p in rtmp_server.recordings())):
        info = ffprobe(path)
        assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"], path
        assert abs(float(info["format"]["duration"]) - seconds) < 0.2, path
    assert len(rtmp_server.recordings()) == 1


@pytest.mark.skipif(ON_PATH is None, reason="no ffmpeg on PATH to listen for SRT")
def test_srt_push_reaches_a_listener(tmp_path, ffprobe):
    port, received = free_port(), tmp_path / "received.ts"
    listener = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "quiet", "-y", "-i", f"srt://127.0.0.1:{port}?mode=listener",
         "-c", "copy", str(received)],
    )
    try:
        time.sleep(0.5)  # a head start; the caller retries its handshake for a few seconds anyway
        with FFmpegSink(VIDEO, AUDIO, f"srt://127.0.0.1:{port}?streamid=publish:live/KEY") as sink:
            push(sink, 1.5, realtime=True)
        listener.wait(10)
    finally:
        listener.kill()
        listener.wait()
    assert sorted(s["codec_name"] for s in ffprobe(received)["streams"]) == ["aac", "h264"]


def test_closed_port_fails_with_the_key_masked():
    key, port = "sk_live_Zq8Xw2", free_port()
    url = f"rtmp://127.0.0.1:{port}/live/{key}"
    sink = FFmpegSink(VIDEO, AUDIO, url).start()
    with pytest.raises(OutputError) as err:
        push(sink, 2.0)
        sink.close()
    message = str(err.value)
    assert not sink.connected
    assert "Connection refused" in message
    assert f"is the server at rtmp://127.0.0.1:{port}/live/**** running?" in message
    for text in (message, *sink.stderr_tail(), sink.command_line):
        assert key not in text
    assert any("/live/****" in line for line in sink.stderr_tail())


def test_ffmpeg_dying_mid_stream_is_an_output_error(tmp_path):
    sink = FFmpegSink(VIDEO, AUDIO, str(tmp_path / "a.mp4")).start()
    push(sink, 0.5)
    os.kill(sink.pid, signal.SIGKILL)
    with pytest.raises(OutputError, match="killed by signal 9"):
        push(sink, 30.0)  # far more than the pipes and queues hold
    with pytest.raises(OutputError, match="killed by signal 9"):
        push(sink, 0.1)  # the same failure, again
    with pytest.raises(OutputError, match="killed by signal 9"):
        sink.close()


def test_a_stalled_ffmpeg_blocks_the_producer_until_abort(tmp_path):
    stalled = tmp_path / "ffmpeg"
    stalled.write_text("#!/bin/sh\nexec sleep 30\n")  # takes the pipes, never reads them
    stalled.chmod(0o755)
    sink = FFmpegSink(VIDEO, AUDIO, str(tmp_path / "a.mp4"), ffmpeg=str(stalled), queue_seconds=0.2).start()
    raised: list[BaseException] = []

    def produce() -> None:
        try:
            push(sink, 30.0)
        except BaseException as exc:
            raised.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join(1.0)
    assert producer.is_alive(), "write() should block while ffmpeg reads nothing"
    assert not sink.connected and time.monotonic() - sink.last_progress >= 1.0  # what a watchdog sees
    sink.abort()
    producer.join(2.0)
    assert not producer.is_alive()
    assert sink.returncode == -signal.SIGKILL
    assert [type(e) for e in raised] == [RuntimeError]  # the next write() after abort


def test_rejects_frames_of_the_wrong_size(tmp_path):
    with FFmpegSink(VIDEO, AUDIO, str(tmp_path / "a.mp4")) as sink:
        with pytest.raises(ValueError, match="320x180 yuv420p has 86400"):
            sink.write(b"\0" * 100, None)
        with pytest.raises(ValueError, match=r"\(k, 2\)"):
            sink.write(None, np.zeros(100, np.int16))
        push(sink, 0.2)


@pytest.mark.live
def test_server_going_away_mid_stream(rtmp_server):
    key = "sk_live_Zq8Xw2"
    sink = FFmpegSink(VIDEO, AUDIO, rtmp_server.url(key=key)).start()
    push(sink, 1.0, realtime=True)
    rtmp_server.wait_for("publish", key)
    rtmp_server.stop()
    with pytest.raises(OutputError) as err:
        push(sink, 10.0, realtime=True)
    assert "the server closed the connection" in str(err.value)
    assert key not in str(err.value) and not any(key in line for line in sink.stderr_tail())

    rtmp_server.start()  # same port: a new publish is accepted and recorded
    with FFmpegSink(VIDEO, AUDIO, rtmp_server.url(key=key)) as again:
        push(again, 0.5)
    rtmp_server.wait_for("publish", key, count=2)
    assert len(rtmp_server.recordings()) == 2


# -- several outputs (the tee muxer) ----------------------------------------------------------


@pytest.fixture
def hung_server():
    """The port of a TCP server on 127.0.0.1 that accepts connections and never reads or answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                held.append(listener.accept()[0])
            except (TimeoutError, socket.timeout):
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


@pytest.fixture
def short_rw_timeout(monkeypatch):
    """Outputs time out after 2 s instead of 5, to keep the tests quick."""
    monkeypatch.setattr(ffmpeg_argv, "LIVE_TIMEOUT_US", 2_000_000)
    return 2.0


def packets(ffprobe, path: Path) -> dict[str, int]:
    info = ffprobe(path, "-count_packets", "-show_entries", "stream=codec_type,nb_read_packets")
    return {s["codec_type"]: int(s["nb_read_packets"]) for s in info["streams"]}


def attempts(sink: FFmpegSink, url: str, error: str) -> int:
    """How often ffmpeg's fifo said it could not open ``url`` (masked), with ``error``."""
    return sum(f"Error opening {url}: {error}" in line for line in sink.stderr_tail())


def assert_whole(ffprobe, path: Path, seconds: float) -> None:
    """``path`` holds every frame of ``seconds`` and its audio."""
    counts = packets(ffprobe, path)
    assert counts["video"] == round(seconds * VIDEO.fps), (path, counts)
    assert abs(counts["audio"] - seconds * AUDIO.sample_rate / 1024) <= 2, (path, counts)


@pytest.mark.live
@pytest.mark.parametrize("ffmpeg", BINARIES)
def test_fan_out_a_dead_destination_does_not_stop_the_live_one(ffmpeg, rtmp_server, ffprobe):
    port = free_port()
    dead, live = f"rtmp://127.0.0.1:{port}/live/sk_dead_1", rtmp_server.url(key="sk_live_2")
    sink = FFmpegSink(VIDEO, AUDIO, [dead, live], ffmpeg=ffmpeg).start()
    push(sink, 2.0, realtime=True)
    assert sink.returncode is None, sink.stderr_tail()  # the dead one did not end ffmpeg
    assert sink.connected and time.monotonic() - sink.last_progress < 1.5
    sink.close()
    assert sink.returncode == 0
    assert attempts(sink, f"rtmp://127.0.0.1:{port}/live/****", "Connection refused") >= 2  # retried
    [recording] = rtmp_server.recordings()
    assert_whole(ffprobe, recording, 2.0)
    for text in (*sink.stderr_tail(), sink.command_line):
        assert "sk_dead_1" not in text and "sk_live_2" not in text


@pytest.mark.live
@pytest.mark.parametrize("ffmpeg", BINARIES)
def test_fan_out_a_hung_destination_times_out_and_is_retried(
    ffmpeg, rtmp_server, hung_server, short_rw_timeout, ffprobe
):
    hung = f"rtmp://127.0.0.1:{hung_server}/live/sk_hung"
    sink = FFmpegSink(VIDEO, AUDIO, [hung, rtmp_server.url()], ffmpeg=ffmpeg).start()
    push(sink, 2.5, realtime=True)
    assert sink.returncode is None, sink.stderr_tail()
    started = time.monotonic()
    sink.close()
    # ffmpeg waits for the hung one's connection attempt in progress, then lets it go
    assert time.monotonic() - started < 2 * short_rw_timeout + 1.0
    assert attempts(sink, f"rtmp://127.0.0.1:{hung_server}/live/****", "Connection timed out") >= 1
    [recording] = rtmp_server.recordings()
    assert_whole(ffprobe, recording, 2.5)


@pytest.mark.live
@pytest.mark.parametrize("ffmpeg", BINARIES)
def test_a_record_beside_a_url_is_playable(ffmpeg, rtmp_server, tmp_path, ffprobe):
    (tmp_path / "rec").mkdir()
    record = tmp_path / "rec" / " show [1|2]: it's a\\b.mp4"  # characters the tee list would otherwise eat
    with FFmpegSink(VIDEO, AUDIO, [rtmp_server.url(), str(record)], ffmpeg=ffmpeg) as sink:
        push(sink, 2.0)
    assert sink.returncode == 0 and sink.connected
    assert [p.name for p in record.parent.iterdir()] == [record.name]
    for path in (record, *rtmp_server.recordings()):
        assert_whole(ffprobe, path, 2.0)
    assert abs(float(ffprobe(record)["format"]["duration"]) - 2.0) < 1 / VIDEO.fps
    data = record.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # the trailer, +faststart, through the tee


@pytest.mark.live
@pytest.mark.parametrize("ffmpeg", BINARIES)
def test_losing_the_only_url_ends_ffmpeg_and_keeps_the_record(ffmpeg, rtmp_server, tmp_path, ffprobe):
    record = tmp_path / "show.mp4"
    sink = FFmpegSink(VIDEO, AUDIO, [rtmp_server.url(key="sk_only"), str(record)], ffmpeg=ffmpeg).start()
    push(sink, 1.0, realtime=True)
    rtmp_server.wait_for("publish", "sk_only")
    assert sink.connected
    rtmp_server.stop()
    stopped = time.monotonic()
    with pytest.raises(OutputError) as err:
        push(sink, 10.0, realtime=True)
    assert time.monotonic() - stopped < 3.0
    assert sink.returncode not in (None, 0)  # so the caller restarts it
    assert "the server closed the connection" in str(err.value) and "sk_only" not in str(err.value)
    seconds = float(ffprobe(record)["format"]["duration"])  # the record got its trailer
    assert 0.9 < seconds < 3.0, seconds


@pytest.mark.parametrize("ffmpeg", BINARIES)
def test_a_hung_server_behind_the_tee_times_out(ffmpeg, hung_server, short_rw_timeout, tmp_path):
    url = f"rtmp://127.0.0.1:{hung_server}/live/sk_hung"
    sink = FFmpegSink(VIDEO, AUDIO, [url, str(tmp_path / "show.mkv")], ffmpeg=ffmpeg).start()
    started = time.monotonic()
    with pytest.raises(OutputError) as err:
        push(sink, 10.0, realtime=True)
    assert short_rw_timeout - 0.5 < time.monotonic() - started < short_rw_timeout + 2.0
    assert f"rtmp://127.0.0.1:{hung_server}/live/****: error opening: Connection timed out" in str(err.value)
    assert not sink.connected and sink.returncode not in (None, 0)
