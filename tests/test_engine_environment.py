"""What the programs linly-push starts see of its environment (issue 18): ffmpeg and ffprobe get
only what they read (no stream key from a ${VAR}, no control token, no other secret); the
`command` TTS, the user's own program, gets the user's environment less the control token."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from broadcast import KEY, Broadcast, url, write_script
from cli_run import linly, text

TOKEN = "tok-engine-5d1f0c9a"  # LINLY_PUSH_CONTROL_TOKEN
OTHER = "sk-other-77b2e4"  # some other secret a deployment keeps in the environment
SECRETS = {"LINLY_PUSH_CONTROL_TOKEN": TOKEN, "OPENAI_API_KEY": OTHER}
KEPT = {"LANG": "C.UTF-8", "TZ": "UTC", "http_proxy": ""}  # what ffmpeg reads: passed on


def spies(folder: Path) -> dict[str, str]:
    """An ffmpeg and an ffprobe beside it that write their environment to ``folder``, then run
    the real ones; what LINLY_PUSH_FFMPEG needs to use them."""
    folder.mkdir()
    for name in ("ffmpeg", "ffprobe"):
        real = shutil.which(name)
        if real is None:
            pytest.skip(f"{name} is not installed")
        spy = folder / name
        spy.write_text(f'#!/bin/sh\n/usr/bin/env > "{folder}/{name}.$$.env"\nexec "{real}" "$@"\n')
        spy.chmod(0o755)
    return {"LINLY_PUSH_FFMPEG": str(folder / "ffmpeg")}


def environments(folder: Path, name: str) -> list[dict[str, str]]:
    found = [dict(line.split("=", 1) for line in p.read_text().splitlines() if "=" in line)
             for p in sorted(folder.glob(f"{name}.*.env"))]
    assert found, f"no {name} ran"
    return found


@pytest.mark.live
def test_ffmpeg_and_ffprobe_get_no_secret(rtmp_server, tmp_path):
    spy = tmp_path / "spy"
    env = {**spies(spy), **SECRETS, **KEPT}
    b = Broadcast("--script", write_script(tmp_path), "--url", url(rtmp_server), env=env)
    b.wait_for("sentence")
    # Probing the stream on air: the key in the URL is a ${VAR} here too.
    probed = linly("probe", url(rtmp_server), "--seconds", "2", env={**env, "STREAM_KEY": KEY}, timeout=120)
    code, err = b.finish()
    assert code == 0, err
    assert probed.returncode == 0, text(probed)
    # The version checks, the encoder's dry run, the broadcast, the probe's reading: every one.
    everything = environments(spy, "ffmpeg") + environments(spy, "ffprobe")
    assert len(everything) >= 4
    for seen in everything:
        assert not {"STREAM_KEY", *SECRETS} & seen.keys(), sorted(seen)
        assert not {KEY, TOKEN, OTHER} & set(seen.values())
        assert {k: seen.get(k) for k in (*KEPT, "PATH")} == {**KEPT, "PATH": os.environ["PATH"]}


def test_the_command_tts_gets_the_users_environment_but_not_the_control_token(tmp_path):
    dump = tmp_path / "tts.env"
    tts = tmp_path / "tts.py"
    tts.write_text(
        "import os, sys, wave\n"
        f"open({str(dump)!r}, 'w').write('\\n'.join(f'{{k}}={{v}}' for k, v in os.environ.items()))\n"
        "with wave.open(sys.argv[1], 'wb') as w:\n"
        "    w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000); w.writeframes(b'\\x00\\x10' * 8000)\n"
    )
    r = linly("render", "--script", "-", "-o", str(tmp_path / "out.mp4"), "--tts", "command",
              "--set", f"tts.command={sys.executable} {tts} {{wav}}", "--set", "video.width=160", "--set", "video.height=90",
              input=b"Hello.", env={**SECRETS, "MY_TTS_VOICE": "anna"})
    assert r.returncode == 0, text(r)
    seen = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    assert seen["MY_TTS_VOICE"] == "anna" and seen["OPENAI_API_KEY"] == OTHER  # the user's, for the user's program
    assert "LINLY_PUSH_CONTROL_TOKEN" not in seen and TOKEN not in dump.read_text()
