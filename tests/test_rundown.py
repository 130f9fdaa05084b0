"""Rundowns, --loop, --duration and --at: scheduled shows as one continuous stream."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli_run import linly, text
from linly_push import presets
from linly_push.errors import InputError, UsageError
from linly_push.program import AudioFile, Cast, Rest
from linly_push.rundown import load
from linly_push.script import Sentence
from media_probe import probe

FAST = ["--preset", "local-test", "--set", "video.width=320", "--set", "video.height=180"]
TONE_HZ = 1000


def _show(folder: Path, body: str) -> Path:
    sf.write(folder / "tone.wav", 0.3 * np.sin(2 * np.pi * TONE_HZ * np.arange(22050) / 22050), 22050)  # 1 s
    (folder / "more.txt").write_text("The end. Thank you.", encoding="utf-8")
    path = folder / "show.toml"
    path.write_text(body, encoding="utf-8")
    return path


MIXED = """
title = "Evening show"
[[segment]]
script = "Good evening. This is part one."
[[segment]]
pause = 1.5
[[segment]]
script = "Now with another look."
voice = "en-gb"
avatar = "testcard"
[[segment]]
audio = "tone.wav"
[[segment]]
script_file = "more.txt"
"""


def test_a_rundown_becomes_one_program_with_a_cast_per_segment(tmp_path):
    show = load(_show(tmp_path, MIXED), presets.load("local-test"))
    assert show.title == "Evening show"
    program = show.program
    kinds = [type(i).__name__ for i in program]
    assert kinds == ["Cast", "Sentence", "Sentence", "Cast", "Rest", "Cast", "Sentence", "Cast", "AudioFile",
                     "Cast", "Sentence", "Sentence"]
    casts = [i for i in program if isinstance(i, Cast)]
    assert casts[0].tts.backend == "espeak" and casts[0].avatar.backend == "cartoon"
    assert casts[2].tts.options == {"voice": "en-gb"} and casts[2].avatar.backend == "testcard"
    assert casts[3] == casts[0]  # overrides hold for their own segment only
    assert next(i for i in program if isinstance(i, Rest)).seconds == 1.5
    assert next(i for i in program if isinstance(i, AudioFile)).info.path == tmp_path / "tone.wav"
    assert [i.text for i in program if isinstance(i, Sentence)][-2:] == ["The end.", "Thank you."]


@pytest.mark.parametrize(("body", "message"), [
    ("[[segment]]\nscript = 'Hi.'\npause = 2", r"segment 1: needs exactly one of .* \(got script and pause\)"),
    ("[[segment]]\nvoice = 'en'", r"segment 1: needs exactly one of .* \(got none\)"),
    ("[[segment]]\nscript = 'Hi.'\n[[segment]]\nspeech = 'x'", r"segment 2, speech: unknown key"),
    ("[[segment]]\npause = -1", r"segment 1, pause: "),
    ("title = 'x'", r"no \[\[segment\]\] tables"),
    ("[[segment]]\nscript = 'Hi.'\navatar = { image = 'a.jpg' }", r"segment 1, avatar: .*needs a backend name"),
    ("[[segment]]\nscript = 'Hi.'\ntts = { backend = 3 }", r"segment 1, tts: .*needs a backend name"),
    ("[[segment]]\nscript = 'Hi.'\n[[segment]]\nscript = 'Yo.'\ntts = { backend = 'espeak', voce = 'x' }",
     r"segment 2: espeak: unknown option tts.voce"),
    ("[[segment]]\nscript = 'Hi.'\navatar = 'nope'", r"segment 1: unknown avatar backend 'nope'"),
    ("[[segment]]\npause = true", r"segment 1, pause: "),
    ("show = 'x'\n[[segment]]\nscript = 'Hi.'", r"unknown key 'show' \(a rundown has title and \[\[segment\]\] tables\)"),
    ("[[segment\nscript = 'Hi.'", r"invalid rundown"),
    # Nested past any sense: refused, not a RecursionError and its traceback (issue 18).
    ("[[segment]]\nscript = 'Hi.'\n[segment.tts]\nbackend = 'espeak'\nx = " + "[" * 1000 + "]" * 1000,
     r"nested more than 32 deep"),
    ("[[segment]]\nscript = 'Hi.'\n[segment.tts]\nbackend = 'espeak'\nx = " + "[" * 40 + "]" * 40,
     r"segment.tts is nested more than 32 deep"),
])
def test_bad_rundowns_are_usage_errors_that_say_where(tmp_path, body, message):
    with pytest.raises(UsageError, match=message):
        load(_show(tmp_path, body), presets.load("local-test"))


def test_files_named_in_a_backend_table_are_found_beside_the_rundown(tmp_path, monkeypatch):
    (tmp_path / "show").mkdir()
    (tmp_path / "show" / "idle.mp4").write_bytes(b"")
    show = _show(tmp_path / "show", "[[segment]]\nscript = 'Hi.'\navatar = { backend = 'loop', idle = 'idle.mp4', talk = 'x.mp4' }")
    monkeypatch.chdir(tmp_path)
    [cast] = [i for i in load(show, presets.load("local-test")).program if isinstance(i, Cast)]
    assert cast.avatar.options == {"idle": str(tmp_path / "show" / "idle.mp4"), "talk": "x.mp4"}  # x.mp4 is not there


def test_missing_files_in_a_rundown_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="audio file not found: .*nope.wav"):
        load(_show(tmp_path, "[[segment]]\naudio = 'nope.wav'"), presets.load("local-test"))
    with pytest.raises(InputError, match="rundown not found"):
        load(tmp_path / "absent.toml", presets.load("local-test"))
    with pytest.raises(InputError, match="segment 1 has nothing to say"):
        load(_show(tmp_path, "[[segment]]\nscript = '...'"), presets.load("local-test"))


def _events(stdout: bytes) -> list[dict]:
    return [json.loads(line) for line in stdout.decode().splitlines()]


def _bars(path: Path, at: float) -> float:
    """How much of the frame at ``at`` s is strongly coloured: high for the test card's bars."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", f"{at:.3f}", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
         "-pix_fmt", "rgb24", "-"], capture_output=True, check=True, timeout=60).stdout
    rgb = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(int)
    return float(np.mean(rgb.max(axis=1) - rgb.min(axis=1) > 150))


def _tone(path: Path) -> tuple[float, float]:
    """Where the 1 kHz test tone plays in the file's audio: (first, last) second."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-ac", "1", "-ar", "8000", "-f", "f32le", "-"],
                         capture_output=True, check=True, timeout=60).stdout
    mono = np.frombuffer(raw, np.float32)
    win = 400  # 50 ms
    hits = []
    for i in range(0, len(mono) - win, win):
        spectrum = np.abs(np.fft.rfft(mono[i : i + win] * np.hanning(win)))
        peak = int(np.argmax(spectrum))
        if spectrum[peak] > 5 and abs(peak * 8000 / win - TONE_HZ) <= 20:
            hits.append(i / 8000)
    assert hits, "the recording's tone is missing"
    return hits[0], hits[-1] + win / 8000


def test_rundown_renders_in_order_as_one_stream_of_the_right_length(tmp_path):
    show = _show(tmp_path, MIXED)
    out = tmp_path / "show.mp4"
    r = linly("render", "--rundown", str(show), "-o", str(out), "--json", *FAST)
    assert r.returncode == 0, text(r)
    events = _events(r.stdout)
    said = [e for e in events if e["event"] == "sentence"]
    assert [e["text"] for e in said] == ["Good evening.", "This is part one.", "Now with another look.", "The end.",
                                         "Thank you."]
    assert [e["index"] for e in said] == [1, 2, 3, 4, 5] and said[0]["total"] == 5
    at = [e["at"] for e in said]
    # The pause segment: at least 1.5 s between part one's end and the next sentence.
    assert at[2] - at[1] > 1.5 + 0.5
    # The recording plays after the third sentence and before the script file's.
    tone = _tone(out)
    assert at[2] < tone[0] and 0.9 < tone[1] - tone[0] < 1.15
    assert abs(tone[1] - at[3]) <= 0.06  # the next segment follows at once (50 ms windows)
    # The override shows on screen for its own segment only.
    assert _bars(out, at[2] + 0.5) > 0.2
    assert _bars(out, at[1] + 0.5) < 0.05 and _bars(out, at[4] + 0.3) < 0.05
    finished = events[-1]
    p = probe(out)
    assert abs(float(p.format["duration"]) - finished["seconds"]) < 0.1
    assert abs(p.video_seconds - p.audio_seconds) < 0.1


def test_rundown_with_only_pauses_and_recordings_needs_no_tts(tmp_path):
    show = _show(tmp_path, "[[segment]]\npause = 0.5\ntts = 'nonexistent'\n[[segment]]\naudio = 'tone.wav'")
    out = tmp_path / "quiet.mkv"
    r = linly("render", "--rundown", str(show), "-o", str(out), *FAST)
    assert r.returncode == 0, text(r)
    assert 1.5 < float(probe(out).format["duration"]) < 3.0


def test_a_rundown_naming_an_unknown_backend_fails_before_anything_is_written(tmp_path):
    show = _show(tmp_path, "[[segment]]\nscript = 'Hello.'\n[[segment]]\nscript = 'Bye.'\navatar = 'nope'")
    out = tmp_path / "x.mp4"
    r = linly("render", "--rundown", str(show), "-o", str(out), *FAST)
    assert r.returncode == 2 and "segment 2: unknown avatar backend 'nope'" in text(r) and "Traceback" not in text(r)
    assert not out.exists()
    r = linly("render", "--rundown", str(show), "--script", str(tmp_path / "more.txt"), *FAST)
    assert r.returncode == 2 and "one of --script, --audio or --rundown" in text(r)


def test_loop_repeats_until_the_duration(tmp_path):
    (tmp_path / "short.txt").write_text("One. Two.", encoding="utf-8")
    out = tmp_path / "looped.mp4"
    r = linly("render", "--script", str(tmp_path / "short.txt"), "--loop", "--duration", "6", "-o", str(out),
              "--json", *FAST)
    assert r.returncode == 0, text(r)
    said = [e for e in _events(r.stdout) if e["event"] == "sentence"]
    assert [e["text"] for e in said[:4]] == ["One.", "Two.", "One.", "Two."]
    assert said[0]["total"] is None and said[3]["index"] == 4
    p = probe(out)
    assert abs(float(p.format["duration"]) - 6.0) < 0.1
    r = linly("render", "--script", str(tmp_path / "short.txt"), "--loop", *FAST)
    assert r.returncode == 2 and "--loop needs --duration" in text(r)


def test_duration_cuts_a_long_script_short(tmp_path):
    (tmp_path / "long.txt").write_text("This sentence goes on for quite a while. " * 6, encoding="utf-8")
    out = tmp_path / "cut.mkv"
    r = linly("render", "--script", str(tmp_path / "long.txt"), "--duration", "2.5", "-o", str(out), *FAST)
    assert r.returncode == 0, text(r)
    assert abs(float(probe(out).format["duration"]) - 2.5) < 0.1


@pytest.mark.live
def test_live_waits_for_its_start_time_then_plays_the_rundown_on_one_connection(rtmp_server, tmp_path):
    show = _show(tmp_path, "[[segment]]\nscript = 'Welcome.'\n[[segment]]\npause = 1\n[[segment]]\naudio = 'tone.wav'")
    start = time.time() + 8
    at = time.strftime("%H:%M:%S", time.localtime(start))
    start = float(int(start))  # --at has whole seconds
    proc = subprocess.Popen(
        [sys.executable, "-m", "linly_push", "live", "--rundown", str(show), "--url", rtmp_server.url(),
         "--at", at, "--warmup", "1", "--json", *FAST], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    events = _events(out)
    assert events[0]["event"] == "waiting" and events[0]["warmup"] == 1.0
    assert 0.5 < events[0]["seconds"] <= 8.0
    started = next(e for e in events if e["event"] == "started")
    # On air at the start time less the warmup, not before; the first sentence a warmup later.
    assert start - 1.0 - 0.05 <= started["time"] < start - 1.0 + 1.0
    first = next(e for e in events if e["event"] == "sentence")
    assert abs(first["at"] - 1.0) < 0.05
    [recording] = rtmp_server.recordings()  # one connection for the whole show
    assert abs(float(probe(recording).format["duration"]) - events[-1]["seconds"]) < 0.3


def test_start_times_in_the_past_are_refused_before_anything_starts(tmp_path):
    (tmp_path / "t.txt").write_text("Hi.", encoding="utf-8")
    if time.localtime(time.time() - 3600).tm_yday != time.localtime().tm_yday:
        pytest.skip("an hour ago was yesterday")  # before running: "--at 23:09" at 00:09 is tonight's, 23 hours ahead
    past = time.strftime("%H:%M", time.localtime(time.time() - 3600))
    r = linly("live", "--script", str(tmp_path / "t.txt"), "--url", "rtmp://127.0.0.1:9/live/x", "--at", past)
    assert r.returncode == 2 and "ago today" in text(r) and "for tomorrow give --at" in text(r)


def test_a_day_long_pause_goes_out_in_pieces(tmp_path):
    show = _show(tmp_path, "[[segment]]\nscript = 'Hello.'\n[[segment]]\npause = 86400")
    out = tmp_path / "long.mkv"
    r = linly("render", "--rundown", str(show), "--duration", "3", "-o", str(out), *FAST)
    assert r.returncode == 0, text(r)
    assert abs(float(probe(out).format["duration"]) - 3.0) < 0.1


def test_the_lead_in_already_shows_the_first_segments_avatar(tmp_path):
    show = _show(tmp_path, "[[segment]]\nscript = 'Hello there.'\navatar = 'testcard'")
    out = tmp_path / "tc.mp4"
    r = linly("render", "--rundown", str(show), "-o", str(out), "--set", "speech.lead_in=1", *FAST)
    assert r.returncode == 0, text(r)
    assert _bars(out, 0.3) > 0.2


def test_a_failed_render_writes_no_captions(tmp_path):
    import os
    plugins = str(Path(__file__).parent / "plugins")
    show = _show(tmp_path, "[[segment]]\nscript = 'Fine.'\n[[segment]]\nscript = 'Then it fails.'\ntts = 'crashing'")
    r = linly("render", "--rundown", str(show), "-o", str(tmp_path / "x.mp4"), *FAST,
              env={"PYTHONPATH": os.pathsep.join([plugins, os.environ.get("PYTHONPATH", "")])})
    assert r.returncode == 4, text(r)
    assert not (tmp_path / "x.vtt").exists()


@pytest.mark.live
def test_a_late_start_shortens_the_warmup_so_the_show_starts_on_time(rtmp_server, tmp_path):
    show = _show(tmp_path, "[[segment]]\nscript = 'On time.'")
    start = float(int(time.time() + 7))
    at = time.strftime("%H:%M:%S", time.localtime(start))
    r = linly("live", "--rundown", str(show), "--url", rtmp_server.url(), "--at", at, "--warmup", "30", "--json", *FAST,
              timeout=90)
    assert r.returncode == 0, text(r)
    events = _events(r.stdout)
    started = next(e for e in events if e["event"] == "started")
    first = next(e for e in events if e["event"] == "sentence")
    assert started["time"] < start  # on air at once: less than the warmup was left
    assert abs(started["time"] + first["at"] - start) < 0.5  # and the show begins at the start time


COUNT_DISCOVERY = """
import importlib.metadata, json, sys
real = importlib.metadata.entry_points
calls = []
def counted(**kwargs):
    if str(kwargs.get("group", "")).startswith("linly_push."):
        calls.append(kwargs["group"])
    return real(**kwargs)
importlib.metadata.entry_points = counted  # before linly_push imports it
from linly_push import presets
from linly_push.rundown import load
show = load(sys.argv[1], presets.load("local-test"))
print(json.dumps({"items": len(show.program), "calls": sorted(calls)}))
"""


def test_a_long_rundown_discovers_the_backends_once_not_per_segment(tmp_path):
    # 10,000 segments took 70 s to load when every segment read the entry points again (issue 9).
    segments = [
        "[[segment]]\nscript = 'Part one.'\nvoice = 'en-gb'\navatar = 'testcard'\n",
        "[[segment]]\npause = 1\n",
        "[[segment]]\nscript_file = 'more.txt'\ntts = { backend = 'espeak', rate = 150 }\n",
        "[[segment]]\naudio = 'tone.wav'\navatar = 'cartoon'\n",
    ]
    show = _show(tmp_path, "".join(segments[i % 4] for i in range(2000)))
    r = subprocess.run([sys.executable, "-c", COUNT_DISCOVERY, str(show)], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    loaded = json.loads(r.stdout)
    assert loaded["items"] == 500 * (2 + 2 + 3 + 2)  # a Cast per segment, then 1, 1, 2 and 1 items
    assert loaded["calls"] == ["linly_push.avatars", "linly_push.tts"]
