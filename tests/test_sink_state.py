"""FFmpegSink's one state, against a real ffmpeg: NEW -> RUNNING -> CLOSING -> DONE or FAILED."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from linly_push.errors import OutputError
from linly_push.ffmpeg import FFmpegSink
from linly_push.ffmpeg.sink import SinkState
from linly_push.presets import AudioSettings, VideoSettings

VIDEO = VideoSettings(width=160, height=90, fps=25, bitrate="200k", maxrate="200k", bufsize="200k", gop_seconds=1)
AUDIO = AudioSettings(sample_rate=16000, channels=1, bitrate="32k")


def push(sink: FFmpegSink, frames: int) -> None:
    frame = np.full(sink.frame_bytes, 128, np.uint8)
    audio = np.zeros((AUDIO.sample_rate // VIDEO.fps, AUDIO.channels), np.int16)
    for _ in range(frames):
        sink.write(frame, audio)


def test_start_write_close_is_done(tmp_path):
    sink = FFmpegSink(VIDEO, AUDIO, str(tmp_path / "a.mp4"))
    assert sink.state is SinkState.NEW
    sink.start()
    assert sink.state is SinkState.RUNNING
    push(sink, 10)
    sink.close()
    assert sink.state is SinkState.DONE and sink.failure is None and sink.returncode == 0
    sink.close()  # again: nothing to do
    sink.check()
    assert sink.state is SinkState.DONE
    with pytest.raises(RuntimeError, match="closed"):
        push(sink, 1)
    with pytest.raises(RuntimeError, match="already started"):
        sink.start()


def test_a_killed_ffmpeg_is_failed_and_check_raises_the_same_error_every_time(tmp_path):
    sink = FFmpegSink(VIDEO, AUDIO, str(tmp_path / "a.mp4")).start()
    push(sink, 5)
    os.kill(sink.pid, signal.SIGKILL)
    with pytest.raises(OutputError, match="killed by signal 9") as first:
        push(sink, 1000)  # far more than the pipes and queues hold
    assert sink.state is SinkState.FAILED and sink.failure is first.value
    for call in (sink.check, sink.close, lambda: push(sink, 1)):
        with pytest.raises(OutputError) as again:
            call()
        assert again.value is first.value
    sink.abort()  # a failure stays a failure
    assert sink.state is SinkState.FAILED
    with pytest.raises(OutputError) as again:
        sink.check()
    assert again.value is first.value


def test_abort_from_new_does_nothing_and_abort_when_running_is_done(tmp_path):
    sink = FFmpegSink(VIDEO, AUDIO, str(tmp_path / "a.mp4"))
    sink.abort()
    assert sink.state is SinkState.NEW and sink.pid is None and sink.returncode is None
    for call in (sink.check, sink.close, lambda: push(sink, 1)):
        with pytest.raises(RuntimeError, match="not started"):
            call()

    sink.start()
    push(sink, 5)
    sink.abort()
    assert sink.state is SinkState.DONE and sink.returncode == -signal.SIGKILL and sink.failure is None
    sink.check()  # stopped on purpose: no failure
    sink.close()
    with pytest.raises(RuntimeError, match="closed"):
        push(sink, 1)


def test_a_start_that_fails_leaves_the_sink_new(tmp_path):
    sink = FFmpegSink(VIDEO, AUDIO, str(tmp_path / "a.mp4"), ffmpeg=str(tmp_path / "no-such-ffmpeg"))
    with pytest.raises(OutputError, match="cannot start ffmpeg"):
        sink.start()
    assert sink.state is SinkState.NEW
    sink.abort()


def test_an_ffmpeg_that_cannot_open_its_output_is_failed(tmp_path):
    (tmp_path / "gone").mkdir()
    sink = FFmpegSink(VIDEO, AUDIO, str(tmp_path / "gone" / "a.mp4"))
    (tmp_path / "gone").rmdir()  # ffmpeg cannot open its output
    sink.start()
    with pytest.raises(OutputError) as err:
        push(sink, 50)
        sink.close()
    assert sink.state is SinkState.FAILED and sink.failure is err.value
    assert sink.returncode not in (None, 0)


def test_an_ffmpeg_that_does_not_finish_is_failed_after_closing(tmp_path):
    stalled = tmp_path / "ffmpeg"
    stalled.write_text("#!/bin/sh\nexec sleep 30\n")  # takes the pipes, never reads them
    stalled.chmod(0o755)
    sink = FFmpegSink(VIDEO, AUDIO, str(tmp_path / "a.mp4"), ffmpeg=str(stalled)).start()
    push(sink, 2)
    raised: list[BaseException] = []

    def close() -> None:
        try:
            sink.close(timeout=1.0)
        except BaseException as exc:
            raised.append(exc)

    closer = threading.Thread(target=close)
    closer.start()
    deadline = time.monotonic() + 0.9
    while sink.state is SinkState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.state is SinkState.CLOSING  # EOF sent, waiting for ffmpeg
    sink.close()  # a second close() while one waits: nothing to do
    closer.join(5)
    [error] = raised
    assert isinstance(error, OutputError) and "did not finish within 1 s" in str(error)
    assert sink.state is SinkState.FAILED and sink.failure is error
    assert sink.returncode == -signal.SIGKILL
