"""README's main command, run in a checkout, leaves nothing for git to show as new."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_what_the_main_command_of_the_readme_writes_is_ignored_by_git() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r"linly-push (render --script \S+ -o (\S+))", readme)
    assert command, "README's main command is gone"
    video = Path(command.group(2))
    written = [video, video.with_suffix(".vtt")]  # the captions beside it (captions.vtt, on by default)
    r = subprocess.run(["git", "check-ignore", "--no-index", *map(str, written)], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.stdout.split() == [str(p) for p in written], f"git would show these as new: {r.stdout!r} {r.stderr!r}"
