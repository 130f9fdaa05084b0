"""Shared fixtures: a local nginx-rtmp server, and ffprobe for checking what ffmpeg wrote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rtmp_server import RtmpServer, unavailable


@pytest.fixture
def rtmp_server(tmp_path: Path) -> Iterator[RtmpServer]:
    """nginx-rtmp on 127.0.0.1 (a free port), application ``live``, recording every publish."""
    reason = unavailable()
    if reason:
        if os.environ.get("CI"):  # .ci/run installs the server: missing there is a failure, not a skip
            pytest.fail(reason)
        pytest.skip(reason)
    server = RtmpServer(tmp_path / "rtmp")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ffprobe() -> Callable[..., dict[str, Any]]:
    """``ffprobe(path, *args)``: ffprobe's JSON (``-show_streams -show_format`` unless args are given)."""
    exe = shutil.which("ffprobe")
    if exe is None:
        pytest.skip("ffprobe is not installed (apt install ffmpeg)")

    def probe(path: Path | str, *args: str) -> dict[str, Any]:
        argv = [exe, "-v", "error", "-of", "json", *(args or ("-show_streams", "-show_format")), str(path)]
        return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout)

    return probe


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``tmpfs(name, size, *options)``: a real tmpfs mounted at ``tmp_path / name`` (a small disk
    to fill up, or one mounted read-only), unmounted afterwards. Needs root (CI runs as root)."""
    mounted: list[Path] = []

    def mount(name: str, size: str, *options: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        opts = ",".join([f"size={size}", *options])
        run = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
        if run.returncode != 0:
            reason = f"cannot mount a tmpfs here: {run.stderr.strip()}"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)
