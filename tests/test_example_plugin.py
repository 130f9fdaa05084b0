"""The example plugin package (examples/hello-plugin) installs and works as a user would use it.

It is installed into a temporary folder, never into the environment running the tests, and
without network: pip builds it with the setuptools already here when that setuptools can build
wheels; otherwise (an old setuptools without ``wheel``, or none at all) the test installs it the
way a wheel would, from the package's own pyproject.toml: the package plus a dist-info with its
name, version and entry points.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_run import linly, text
from media_probe import probe

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello-plugin"


def _can_build_wheels() -> bool:
    if importlib.util.find_spec("setuptools") is None:
        return False
    if importlib.util.find_spec("wheel") is not None:
        return True
    from setuptools import __version__ as version  # bdist_wheel is built in from 70.1

    return tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) >= (70, 1)


def _install_from_metadata(target: Path) -> None:
    """What installing the wheel would do: the package, and a dist-info from pyproject.toml."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    for package in tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]:
        shutil.copytree(EXAMPLE / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    info = target / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    groups = "".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in eps.items()) + "\n"
        for group, eps in project["entry-points"].items()
    )
    (info / "entry_points.txt").write_text(groups)


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """PYTHONPATH under which linly-push finds the installed example plugin."""
    target = tmp_path_factory.mktemp("hello-plugin")
    if _can_build_wheels():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
             "--disable-pip-version-check", "--quiet", "--target", str(target), str(EXAMPLE)],
            check=True, capture_output=True, timeout=120,
        )
    else:
        _install_from_metadata(target)
    return {"PYTHONPATH": str(target)}


def test_backends_lists_the_plugin(hello: dict[str, str]) -> None:
    r = linly("backends", env=hello, timeout=60)
    assert r.returncode == 0, text(r)
    lines = r.stdout.decode().splitlines()
    for heading, name in (("Avatar backends", "hello"), ("TTS backends", "beep")):
        start = next(i for i, line in enumerate(lines) if line.startswith(heading))
        row = next(line for line in lines[start:] if line.split()[:1] == [name])
        assert row.split()[1] == "ready" and "(from linly-push-hello)" in row, row


def test_renders_with_hello_and_beep(hello: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "hello.mp4"
    r = linly("render", "--avatar", "hello", "--tts", "beep", "--set", "video.width=320", "--set", "video.height=180",
              "--set", "avatar.colour=teal", "--script", "-", "-o", str(out),
              input="Hello there. 你好。".encode(), env=hello, timeout=120)
    assert r.returncode == 0, text(r)
    p = probe(out)
    assert p.video["codec_name"] == "h264" and p.audio["codec_name"] == "aac"
    assert (p.video["width"], p.video["height"]) == (320, 180)
    assert p.video_seconds > 0.5


def test_bad_colour_is_a_usage_error(hello: dict[str, str], tmp_path: Path) -> None:
    r = linly("render", "--avatar", "hello", "--tts", "beep", "--set", "avatar.colour=notacolour",
              "--script", "-", "-o", str(tmp_path / "x.mp4"), input=b"Hello.", env=hello, timeout=60)
    assert r.returncode == 2, text(r)
    assert "colour" in text(r)
