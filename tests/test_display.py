"""What a person reads on stderr for each event (plain lines, as in a log)."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from linly_push.cli.display import RichDisplay
from linly_push.events import KINDS

STARTED = {
    "output": "rtmp://a/live/**** | rtmp://b/live/****", "live": True, "preset": "live", "title": None,
    "video": "320x180@25", "audio": "44100Hz/2ch", "tts": "espeak", "avatar": "cartoon", "sentences": 3,
    "ffmpeg": "5.1", "record": "show.mkv",
}
FINISHED = {
    "output": STARTED["output"], "frames": 250, "seconds": 10.0, "sentences": 3, "wall": 10.2, "speed": 0.98,
    "reconnects": 0, "repeated": 0, "vtt": None,
}


def shown(*events: tuple[str, dict]) -> list[str]:
    out = io.StringIO()
    display = RichDisplay(Console(file=out, width=200))
    for kind, data in events:
        display(KINDS[kind](**data))
    display.close()
    return out.getvalue().splitlines()


def test_a_connection_that_never_got_on_air_is_not_called_lost():
    lines = shown(
        ("started", STARTED),
        ("dropped", {"reason": "refused", "attempt": 1, "on_air": 75.0, "connected": True, "retry_in": 1.0, "resume_sentence": 2}),
        ("dropped", {"reason": "refused", "attempt": 2, "on_air": 0.0, "connected": False, "retry_in": 2.0, "resume_sentence": 2}),
    )
    assert "connection lost after 01:15 on air: refused; retrying in 1.0s, resuming at sentence 2" in lines[1]
    assert "could not connect: refused; retrying in 2.0s" in lines[2]
    assert "on air" not in lines[2]


def test_destinations_going_down_coming_back_and_failing_are_said():
    lines = shown(
        ("started", STARTED),
        ("destination", {"destination": "rtmp://b/live/****", "role": "live", "state": "down", "reason": "Connection refused", "at": 12.0}),
        ("destination", {"destination": "rtmp://b/live/****", "role": "live", "state": "up", "reason": None, "at": 30.0}),
        ("destination", {"destination": "show.mkv", "role": "record", "state": "failed", "reason": "No space left on device", "at": 61.0}),
    )
    assert "rtmp://b/live/**** is down at 00:12: Connection refused" in lines[1]
    assert "rtmp://b/live/**** is back at 00:30" in lines[2]
    assert "recording show.mkv failed at 01:01: No space left on device; the broadcast goes on" in lines[3]


def test_the_summary_names_what_did_not_get_the_whole_show():
    destinations = [
        {"destination": "rtmp://a/live/****", "role": "live", "complete": True, "reason": None},
        {"destination": "show.mkv", "role": "record", "complete": False, "reason": "No space left on device"},
    ]
    lines = shown(("started", STARTED), ("finished", {**FINISHED, "destinations": destinations}))
    assert lines[-2].startswith("⚠ Streamed")
    assert lines[-1].strip() == "recording show.mkv is incomplete: No space left on device"
    whole = shown(("started", STARTED), ("finished", {**FINISHED, "destinations": destinations[:1]}))
    assert whole[-1].startswith("✓ Streamed")


def test_a_warning_is_one_line():
    assert shown(("warning", {"message": "portrait: mediapipe cannot run here; using OpenCV's detector"})) == [
        "⚠ portrait: mediapipe cannot run here; using OpenCV's detector"
    ]


def _last_frame(width: int, *events: tuple[str, dict]) -> tuple[str, list[str]]:
    """The status line as a terminal ``width`` columns wide shows it last (escape codes taken
    out), and every line written, with a console made as the command line makes it."""
    out = io.StringIO()
    display = RichDisplay(Console(file=out, width=width, force_terminal=True, color_system=None, soft_wrap=True))
    for kind, data in events:
        display(KINDS[kind](**data))
    display.close()  # draws the line a last time, as it stands
    lines = [part for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue()).split("\n")
             for part in line.split("\r") if part.strip()]  # fmt: skip
    return lines[-1], lines


STATUS = {
    "frames": 93125, "seconds": 3725.0, "sentences": 4, "total": 12, "fps": 25.0, "wall": 3725.0, "speed": 1.0,
    "sentence": 4, "text": "Hello there.", "bitrate_kbps": 2048.3, "buffer": 2.9, "repeated": 3, "reconnects": 1,
}
LIVE_FIELDS = ["1:02:05", "sentence 4/12", "25.0 fps", "2048 kbit/s", "2.9s buffered", "3 repeated frames", "1 reconnect"]


@pytest.mark.parametrize(("width", "kept"), [(60, 4), (80, 5), (120, 7)])
def test_the_live_status_line_keeps_state_and_time_whole_and_drops_the_least_important_fields(width, kept):
    sentence = {"index": 4, "total": 12, "text": "Hello there.", "at": 3700.0}
    line, lines = _last_frame(width, ("started", STARTED), ("sentence", sentence), ("status", STATUS))
    assert all(len(x.rstrip()) <= width for x in lines), lines
    spinner, fields = line.rstrip().split(" on air ", 1)  # the state whole, after the spinner
    assert len(spinner) == 1, line
    assert fields.split(" · ") == LIVE_FIELDS[:kept], line  # each whole, time first, the last dropped first


@pytest.mark.parametrize(("width", "kept"), [(60, 1), (80, 2), (120, 3)])
def test_the_render_progress_line_keeps_its_words_whole(width, kept):
    started = {**STARTED, "output": "talk.mp4", "live": False, "sentences": 12}
    sentence = {"index": 4, "total": 12, "text": "Hello there.", "at": 30.0}
    progress = {"frames": 775, "seconds": 31.0, "sentences": 4, "total": 12, "fps": 25.0, "wall": 6.0, "speed": 5.2}
    line, lines = _last_frame(width, ("started", started), ("sentence", sentence), ("progress", progress))
    assert all(len(x.rstrip()) <= width for x in lines), lines
    assert " rendering " in line and " 3/12 sentences " in line, line
    fields = line.split(" 3/12 sentences ")[1].strip().split(" · ")
    assert fields == ["00:31 rendered", "5.2× realtime", "775 frames"][:kept], line


def test_the_end_of_a_render_names_the_captions_file_it_wrote():
    started = {**STARTED, "output": "talk.mp4", "live": False}
    lines = shown(("started", started), ("finished", {**FINISHED, "output": "talk.mp4", "vtt": "talk.vtt", "destinations": []}))
    assert lines[-1].startswith("✓ Wrote talk.mp4 and its captions talk.vtt: 00:10, 250 frames, 3 sentences"), lines
    lines = shown(("started", started), ("finished", {**FINISHED, "output": "talk.mp4", "destinations": []}))
    assert lines[-1].startswith("✓ Wrote talk.mp4: 00:10"), lines  # captions.vtt=false: none written, none named


def test_long_lines_wrap_between_words_in_a_terminal():
    said = "I am a digital presenter, and everything you hear was written as plain text a moment ago."
    started = {**STARTED, "output": "talk.mp4", "live": False, "sentences": 8}
    finished = {**FINISHED, "output": "talk.mp4", "vtt": "talk.vtt", "destinations": []}
    _, lines = _last_frame(80, ("started", started), ("sentence", {"index": 2, "total": 8, "text": said, "at": 2.0}),
                           ("finished", finished))  # fmt: skip
    assert all(len(line.rstrip()) <= 80 for line in lines), lines
    words = " ".join(line.strip() for line in lines)
    assert f"00:02 sentence 2/8: {said}" in words, lines
    assert "✓ Wrote talk.mp4 and its captions talk.vtt: 00:10, 250 frames, 3 sentences in 10.2s (1.0× realtime)" in words
