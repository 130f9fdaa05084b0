"""Rundown paths outside the rundown's folder (issue 9): followed by default, refused with
``confine`` (``--confine``), symlinks resolved, before anything is read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli_run import linly, text
from linly_push import presets
from linly_push.errors import UsageError
from linly_push.program import AudioFile, Cast
from linly_push.rundown import load
from linly_push.script import Sentence

FAST = ["--preset", "local-test", "--set", "video.width=320", "--set", "video.height=180"]
OUTSIDE = "Words from outside the show."


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    """``show/`` (the rundown's folder, with ``in.txt`` and ``sub/deeper.txt``) beside files it
    should not reach: ``outside.txt`` and ``tone.wav``."""
    (tmp_path / "outside.txt").write_text(OUTSIDE, encoding="utf-8")
    sf.write(tmp_path / "tone.wav", np.zeros(2205), 22050)
    show = tmp_path / "show"
    (show / "sub").mkdir(parents=True)
    (show / "in.txt").write_text("Words from inside.", encoding="utf-8")
    (show / "sub" / "deeper.txt").write_text("Deeper words.", encoding="utf-8")
    (show / "escape.txt").symlink_to(tmp_path / "outside.txt")
    (show / "alias.txt").symlink_to(show / "sub" / "deeper.txt")
    return tmp_path


def _rundown(folder: Path, segment: str) -> Path:
    path = folder / "show" / "show.toml"
    path.write_text("[[segment]]\nscript = 'First.'\n[[segment]]\n" + segment + "\n", encoding="utf-8")
    return path


def _load(path: Path, confine: bool):
    return load(path, presets.load("local-test"), confine=confine)


ESCAPES = [
    ("script_file = '../outside.txt'", "script_file '../outside.txt'"),
    ("script_file = 'escape.txt'", "script_file 'escape.txt'"),  # a symlink to ../outside.txt
    ("script_file = '{root}/outside.txt'", "script_file '{root}/outside.txt'"),
    ("script_file = 'sub/../../outside.txt'", "script_file 'sub/../../outside.txt'"),
    ("audio = '../tone.wav'", "audio '../tone.wav'"),
    ("audio = '{root}/tone.wav'", "audio '{root}/tone.wav'"),
    ("script = 'Hi.'\navatar = {{ backend = 'loop', idle = '../tone.wav' }}", "avatar.idle '../tone.wav'"),
    ("script = 'Hi.'\navatar = {{ backend = 'loop', idle = 'escape.txt' }}", "avatar.idle 'escape.txt'"),
    ("script = 'Hi.'\navatar = {{ backend = 'loop', idle = '/nowhere/clip.mp4' }}", "avatar.idle '/nowhere/clip.mp4'"),
]


@pytest.mark.parametrize(("segment", "named"), ESCAPES)
def test_paths_leading_out_of_the_folder_are_refused_when_confined_and_followed_otherwise(folders, segment, named):
    path = _rundown(folders, segment.format(root=folders))
    assert _load(path, confine=False).program  # today's behaviour stays the default
    message = f"rundown {path}, segment 2: {named.format(root=folders)} is outside the rundown's folder {folders / 'show'}"
    with pytest.raises(UsageError, match="^" + re.escape(message)):
        _load(path, confine=True)


def test_what_an_escaping_path_names_is_what_is_spoken_without_confine(folders):
    program = _load(_rundown(folders, "script_file = 'escape.txt'"), confine=False).program
    assert [i.text for i in program if isinstance(i, Sentence)] == ["First.", OUTSIDE]


def test_an_escape_is_refused_before_the_file_is_read(folders):
    # Not "script not found": the path is refused for where it leads, whether or not it is there.
    with pytest.raises(UsageError, match=r"script_file '\.\./missing\.txt' is outside the rundown's folder"):
        _load(_rundown(folders, "script_file = '../missing.txt'"), confine=True)


def test_paths_inside_the_folder_are_accepted_when_confined(folders, monkeypatch):
    show = folders / "show"
    (show / "clip.mp4").write_bytes(b"")
    _rundown(folders, f"script_file = 'in.txt'\n[[segment]]\nscript_file = 'sub/deeper.txt'\n"
                      f"[[segment]]\nscript_file = 'alias.txt'\n[[segment]]\nscript_file = '{show}/in.txt'\n"
                      f"[[segment]]\nscript_file = 'sub/../in.txt'\n"
                      f"[[segment]]\nscript = 'Hi.'\navatar = {{ backend = 'loop', idle = 'clip.mp4', talk = 'absent.mp4' }}")
    monkeypatch.chdir(folders)  # the rundown named by a relative path, from another folder
    program = _load(Path("show/show.toml"), confine=True).program
    assert [i.text for i in program if isinstance(i, Sentence)] == [
        "First.", "Words from inside.", "Deeper words.", "Deeper words.", "Words from inside.", "Words from inside.", "Hi."]
    assert [i for i in program if isinstance(i, Cast)][-1].avatar.options == {"idle": "show/clip.mp4", "talk": "absent.mp4"}


def test_a_rundown_in_a_symlinked_folder_is_confined_to_the_folder_it_really_is(folders):
    (folders / "link").symlink_to(folders / "show")
    path = folders / "link" / "show.toml"
    _rundown(folders, "script_file = 'in.txt'")
    assert [i.text for i in _load(path, confine=True).program if isinstance(i, Sentence)] == ["First.", "Words from inside."]
    _rundown(folders, "audio = '../tone.wav'")
    with pytest.raises(UsageError, match=r"audio '\.\./tone\.wav' is outside"):
        _load(path, confine=True)


def test_a_backend_name_is_not_taken_for_a_path(folders, monkeypatch):
    for folder in (folders, folders / "show"):  # files that happen to share its name, here and beside the rundown
        (folder / "testcard").write_text("", encoding="utf-8")
    monkeypatch.chdir(folders)
    program = _load(_rundown(folders, "script = 'Hi.'\navatar = { backend = 'testcard' }"), confine=True).program
    assert [i for i in program if isinstance(i, Cast)][-1].avatar.backend == "testcard"


def test_render_and_live_refuse_an_escape_with_confine_and_exit_2(folders):
    path = _rundown(folders, "script_file = '../outside.txt'")
    out = folders / "x.mp4"
    for command in (["render", "-o", str(out)], ["live", "--url", "rtmp://127.0.0.1:9/live/x"]):
        r = linly(*command, "--rundown", str(path), "--confine", *FAST)
        assert r.returncode == 2, text(r)
        [line] = r.stderr.decode().strip().splitlines()
        assert line == (f"linly-push: error: rundown {path}, segment 2: script_file '../outside.txt' is outside the "
                        f"rundown's folder {folders / 'show'}, and its paths are confined to it")
    assert not out.exists()
    r = linly("render", "--rundown", str(path), "-o", str(out), "--json", *FAST)
    assert r.returncode == 0, text(r)
    said = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [e["text"] for e in said if e["event"] == "sentence"] == ["First.", OUTSIDE]


def test_confine_needs_a_rundown(folders):
    r = linly("render", "--script", str(folders / "outside.txt"), "--confine", *FAST)
    assert r.returncode == 2 and "--confine is about the paths in a rundown" in text(r)


def test_recordings_inside_are_played_when_confined(folders):
    sf.write(folders / "show" / "jingle.wav", np.zeros(2205), 22050)
    program = _load(_rundown(folders, "audio = 'jingle.wav'"), confine=True).program
    assert [i.info.path for i in program if isinstance(i, AudioFile)] == [folders / "show" / "jingle.wav"]


@pytest.mark.parametrize(
    "table",
    [
        '{ backend = "command", command = "sh -c \'cat /etc/passwd\' {wav}" }',
        '{ backend = "openai", base_url = "http://127.0.0.1:9/v1" }',
        '{ backend = "openai", api_key_env = "AWS_SECRET_ACCESS_KEY" }',
    ],
)
def test_confined_rundowns_may_not_set_the_options_only_an_operator_may(tmp_path, table):
    rundown = tmp_path / "show.toml"
    rundown.write_text(f'[[segment]]\nscript = "Hello."\ntts = {table}\n', encoding="utf-8")
    preset = presets.load("local-test")
    load(rundown, preset)  # the operator's own rundown: allowed
    with pytest.raises(UsageError, match=r"segment 1: tts\.\w+ of \w+ cannot come from a confined rundown"):
        load(rundown, preset, confine=True)
    # Only those options: the same backends with harmless ones are fine.
    rundown.write_text('[[segment]]\nscript = "Hello."\ntts = { backend = "openai", voice = "nova" }\n', encoding="utf-8")
    load(rundown, preset, confine=True)
