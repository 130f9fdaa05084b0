"""The command TTS backend against real programs: a small Python script written here, and espeak-ng."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_run import linly, text

from linly_push.backends import registry
from linly_push.backends.tts.command import CommandTTS
from linly_push.errors import BackendError, UsageError

# Writes a stereo 22.05 kHz int16 sine WAV, 0.02 s per character of the text, and records its
# argv in argv.json beside itself. Some texts make it misbehave.
FAKE_TTS = r'''
import json, math, struct, sys, time, wave
from pathlib import Path
wav, text = sys.argv[1], sys.argv[2]
Path(__file__).with_name("argv.json").write_text(json.dumps(sys.argv[1:]))
if text == "FAIL":
    print("loading voice...", file=sys.stderr)
    print("error: voice 'xx' is not installed", file=sys.stderr)
    sys.exit(3)
if text == "NOWAV":
    sys.exit(0)
if text == "EMPTY":
    open(wav, "wb").close(); sys.exit(0)
if text == "GARBAGE":
    open(wav, "wb").write(b"this is not a wav file at all"); sys.exit(0)
if text == "SLEEP":
    time.sleep(30)
rate, n = 22050, round(0.02 * len(text) * 22050)
frames = b"".join(struct.pack("<hh", v, v) for v in (round(16000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n)))
with wave.open(wav, "wb") as w:
    w.setnchannels(2); w.setsampwidth(2); w.setframerate(rate); w.writeframes(frames)
'''

HOSTILE = "\"; rm -rf {tmp}/victim; $(touch {tmp}/pwned1) `touch {tmp}/pwned2` ' \" && touch {tmp}/pwned3 | {{wav}} {{lang}}"


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    script = tmp_path / "fake tts.py"  # a space in the path: the template must quote it
    script.write_text(FAKE_TTS)
    return script


def template(script: Path, extra: str = "") -> str:
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {{wav}} {{text}}{extra}"


def make(**options) -> CommandTTS:
    return CommandTTS(registry.options(CommandTTS, options))


def test_registered():
    assert registry.get("tts", "command") is CommandTTS


def test_speaks_mono_float_at_the_programs_rate(fake):
    speech = make(command=template(fake)).synthesize("Hello there, world.", "en")
    assert speech.sample_rate == 22050
    assert speech.samples.dtype == np.float32 and speech.samples.ndim == 1
    assert len(speech.samples) == round(0.02 * len("Hello there, world.") * 22050)
    assert 0.45 < np.abs(speech.samples).max() <= 0.5  # 16000 / 32768, both channels averaged
    assert speech.phonemes == [] and speech.words == []


def test_placeholders_fill_whole_arguments_and_parts_of_them(fake):
    tts = make(command=template(fake, " --lang={lang} {lang}"))
    tts.synthesize("Hi.", "zh")
    argv = json.loads((fake.parent / "argv.json").read_text())
    assert argv[1:] == ["Hi.", "--lang=zh", "zh"]
    assert argv[0].endswith("speech.wav")
    assert not Path(argv[0]).exists()  # the temporary folder is gone


def test_hostile_text_is_one_argument_and_runs_nothing(fake, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    hostile = HOSTILE.format(tmp=tmp_path)
    speech = make(command=template(fake)).synthesize(hostile, "en")
    argv = json.loads((fake.parent / "argv.json").read_text())
    assert argv[1] == hostile and len(argv) == 2  # verbatim, placeholders inside it left alone
    assert len(speech.samples) == round(0.02 * len(hostile) * 22050)
    assert victim.is_dir()
    for marker in ("pwned1", "pwned2", "pwned3", "pwned"):
        assert not (tmp_path / marker).exists(), marker


@pytest.mark.skipif(not Path("/usr/bin/espeak-ng").exists(), reason="no /usr/bin/espeak-ng (apt install espeak-ng)")
def test_espeak_ng_program_with_hostile_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    speech = make(command="/usr/bin/espeak-ng -w {wav} {text}").synthesize(HOSTILE.format(tmp=tmp_path), "en")
    assert speech.sample_rate == 22050 and speech.duration > 1.0
    assert not list(tmp_path.glob("pwned*"))


@pytest.mark.parametrize(
    ("command", "said", "words"),
    [
        ("no-such-tts-program-xyz {wav} {text}", "Hi.", ["'no-such-tts-program-xyz' not found"]),
        (None, "FAIL", ["exit 3", "error: voice 'xx' is not installed"]),
        (None, "NOWAV", ["without writing {wav}"]),
        (None, "EMPTY", ["empty file"]),
        (None, "GARBAGE", ["not audio"]),
    ],
)
def test_failures_are_backend_errors(fake, command, said, words):
    with pytest.raises(BackendError) as err:
        make(command=command or template(fake)).synthesize(said, "en")
    for w in words:
        assert w in str(err.value)
    assert "loading voice" not in str(err.value)  # only the last line


def test_timeout_ends_the_program(fake):
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"did not finish within 0\.5 s"):
        make(command=template(fake), timeout=0.5).synthesize("SLEEP", "en")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"command": "x {wav} {text}", "voice": "a"}, "unknown option tts.voice"),
        ({}, "tts.command"),
        ({"command": "my-tts {text}"}, "has no {wav}"),
        ({"command": "my-tts 'unclosed {wav}"}, "cannot split"),
        ({"command": "x {wav}", "timeout": 0}, "tts.timeout"),
    ],
)
def test_bad_options_are_usage_errors(options, words):
    with pytest.raises(UsageError) as err:
        registry.options(CommandTTS, options)
    assert words in str(err.value)


def test_render_through_the_cli(fake, tmp_path, ffprobe):
    script = tmp_path / "talk.txt"
    script.write_text("Hello from a command. $(touch pwned) `touch pwned`\n")
    out = tmp_path / "x.mp4"
    r = linly("render", "--script", str(script), "--tts", "command", "--avatar", "testcard",
              "--set", f"tts.command={template(fake)}", "-o", str(out), cwd=tmp_path)
    assert r.returncode == 0, text(r)
    info = ffprobe(out)
    kinds = sorted(s["codec_type"] for s in info["streams"])
    assert kinds == ["audio", "video"]
    assert float(info["format"]["duration"]) > 0.02 * len("Hello from a command.")
    assert not (tmp_path / "pwned").exists()


def test_cli_failure_exits_4(fake, tmp_path):
    r = linly("render", "--script", "-", "--tts", "command", "--avatar", "testcard",
              "--set", "tts.command=no-such-tts-program-xyz {wav} {text}", "-o", str(tmp_path / "y.mp4"),
              input=b"Hello.\n")
    assert r.returncode == 4, text(r)
    assert "no-such-tts-program-xyz" in text(r)

