"""What a person reads on stderr for each event (plain lines, as in a log)."""

from __future__ import annotations

import io

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
