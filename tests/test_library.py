"""docs/library.md's examples run as they are, and the public surface is what it documents."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import linly_push
from media_probe import probe

DOC = Path(__file__).resolve().parent.parent / "docs" / "library.md"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def run(code: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_every_public_name_is_documented_and_importable():
    text = DOC.read_text(encoding="utf-8")
    for name in linly_push.__all__:
        assert f"`{name}" in text, name
        assert getattr(linly_push, name) is not None
    with pytest.raises(AttributeError):
        linly_push.no_such_name  # noqa: B018


def test_the_render_example_writes_an_mp4_into_the_current_folder(tmp_path):
    r = run(examples()[0], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wrote hello.mp4" in r.stdout and "This video was made" in r.stdout
    p = probe(tmp_path / "hello.mp4")
    assert (p.video["width"], p.video["height"]) == (640, 360) and p.audio["codec_name"] == "aac"


def test_the_error_example_prints_the_error_and_its_exit_code(tmp_path):
    r = run(examples()[1], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "InputError (exit code 3): script not found: missing.txt"


@pytest.mark.live
def test_the_live_example_goes_on_air_and_reports_as_it_goes(rtmp_server, tmp_path):
    code = examples()[2].replace("rtmp://127.0.0.1/live/", f"rtmp://127.0.0.1:{rtmp_server.port}/live/")
    r = run(code, tmp_path, env={"STREAM_KEY": "test"})
    assert r.returncode == 0, r.stderr
    assert "on air: sentence 1: Good evening." in r.stdout and "done: 3 sentences, 0 reconnects" in r.stdout
    assert len(rtmp_server.recordings()) == 1 and (tmp_path / "show.mkv").stat().st_size > 0
