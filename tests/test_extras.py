"""Extras that break each other, and backends whose packages are installed but broken.

mediapipe (extra ``portrait``) needs protobuf 4; onnx (extra ``piper``), installed on its own,
takes the newest protobuf. The slow tests install the extras one after the other into fresh
virtual environments, both ways round, and run the face mesh there. The others break mediapipe
or onnx for real in a child process, with a package of that name first on PYTHONPATH that fails
as the real one does under the wrong protobuf, and check that ``backends`` says so and that the
portrait avatar falls back to the Haar cascade, saying that too.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest
from cli_run import linly, text
from media_probe import probe
from optional import need
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PROTOBUF_TOO_NEW = "'FieldDescriptor' object has no attribute 'label'"  # mediapipe under protobuf 5+
PROTOBUF_TOO_OLD = "cannot import name 'runtime_version' from 'google.protobuf'"  # onnx 1.23 under protobuf 4

FAKES = {
    # mediapipe fails as it is imported
    "mediapipe fails to import": f"raise AttributeError({PROTOBUF_TOO_NEW!r})\n",
    # mediapipe imports, and its face mesh fails as it is built: what protobuf 7 does
    "mediapipe's face mesh fails": (
        "import types\n\n\nclass FaceMesh:\n    def __init__(self, **options):\n"
        f"        raise AttributeError({PROTOBUF_TOO_NEW!r})\n\n\n"
        "solutions = types.SimpleNamespace(face_mesh=types.SimpleNamespace(FaceMesh=FaceMesh))\n"
    ),
}


def _broken(tmp_path: Path, package: str, source: str) -> dict[str, str]:
    """An environment where ``import package`` runs ``source`` instead of the real package."""
    folder = tmp_path / "broken" / package
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(source, encoding="utf-8")
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(folder.parent), os.environ.get("PYTHONPATH")) if p)}


def _status(listing: str, name: str) -> str:
    """The status of backend ``name`` in ``linly-push backends`` (piped: a row per line): "ready",
    or as the note line below its row says it ("ready (...)" for one that runs with less)."""
    lines = listing.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:1] == [name])
    note = lines[at + 1].strip() if at + 1 < len(lines) and lines[at + 1].startswith("   ") else None
    ready = lines[at].split()[1] == "ready"
    return "ready" if note is None else ("ready " if ready else "") + note


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("cv2", "portrait")
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(need("skimage.data", "test").astronaut()).save(path)
    return path


def _render_portrait(photo: Path, tmp_path: Path, env: dict[str, str], *sets: str) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "portrait.mp4"
    args = ["--set", f"avatar.image={photo}", "--set", "video.width=320", "--set", "video.height=180"]
    r = linly("render", "--script", "-", "--avatar", "portrait", *args, *(a for s in sets for a in ("--set", s)),
              "-o", str(out), input=b"Hello from a photo.", env=env, timeout=120)  # fmt: skip
    return r, out


def test_backends_finds_portrait_and_piper_ready_here() -> None:
    need("mediapipe", "portrait")
    need("piper", "piper")
    r = linly("backends", timeout=60)
    assert r.returncode == 0, text(r)
    assert (_status(r.stdout.decode(), "portrait"), _status(r.stdout.decode(), "piper")) == ("ready", "ready"), text(r)


@pytest.mark.parametrize("failure", FAKES)
def test_backends_says_portrait_runs_on_haar_only_when_the_mesh_fails(tmp_path: Path, failure: str) -> None:
    need("cv2", "portrait")
    r = linly("backends", env=_broken(tmp_path, "mediapipe", FAKES[failure]), timeout=60)
    assert r.returncode == 0, text(r)
    status = _status(r.stdout.decode(), "portrait")
    assert status == (
        f"ready (Haar detector only: {failure}: AttributeError: {PROTOBUF_TOO_NEW}) (pip install 'linly-push[portrait]')"
    )


@pytest.mark.parametrize("failure", FAKES)
def test_portrait_falls_back_to_haar_and_says_so(photo: Path, tmp_path: Path, failure: str) -> None:
    r, out = _render_portrait(photo, tmp_path, _broken(tmp_path, "mediapipe", FAKES[failure]))
    assert r.returncode == 0, text(r)
    said = f"portrait: mediapipe's face mesh fails here (AttributeError: {PROTOBUF_TOO_NEW}); finding the face with OpenCV's Haar cascade instead"
    assert said in " ".join(r.stderr.decode().split()), text(r)
    assert probe(out).video_seconds > 0.5


def test_portrait_with_the_mesh_required_is_a_clear_error(photo: Path, tmp_path: Path) -> None:
    env = _broken(tmp_path, "mediapipe", FAKES["mediapipe's face mesh fails"])
    r, _ = _render_portrait(photo, tmp_path, env, "avatar.detector=mesh")
    assert r.returncode == 4, text(r)
    assert r.stderr.decode().strip() == (
        f"linly-push: error: portrait: avatar.detector=mesh, but mediapipe's face mesh fails here (AttributeError: "
        f"{PROTOBUF_TOO_NEW}); reinstall it (pip install 'linly-push[portrait]') or use avatar.detector=haar"
    )


def test_backends_and_piper_say_when_onnx_fails(tmp_path: Path) -> None:
    need("piper", "piper")
    env = _broken(tmp_path, "onnx", f"raise ImportError({PROTOBUF_TOO_OLD!r})\n")
    r = linly("backends", env=env, timeout=60)
    assert r.returncode == 0, text(r)
    assert _status(r.stdout.decode(), "piper") == (
        f"ready (no phoneme timings: onnx fails to import: ImportError: {PROTOBUF_TOO_OLD}) (pip install 'linly-push[piper]')"
    )
    out = tmp_path / "piper.mp4"
    r = linly("render", "--script", "-", "--tts", "piper", "--avatar", "testcard", "-o", str(out),
              input=b"Hello there.", env=env, timeout=120)  # fmt: skip
    assert r.returncode == 0, text(r)
    assert "piper: no phoneme timings, the mouth follows loudness: onnx fails to import" in r.stderr.decode(), text(r)
    assert probe(out).audio_seconds > 0.3


# ---------------------------------------------------------------------------------------------
# Installing the extras one after the other, as README says, into fresh environments.

_FACE_MESH = """
import numpy as np, mediapipe as mp
with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
    mesh.process(np.zeros((64, 64, 3), np.uint8))
import onnx, piper
print("face mesh and onnx work")
"""


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})  # fmt: skip
    assert r.returncode == 0, f"{' '.join(argv)}:\n{(r.stdout + r.stderr)[-3000:]}"
    return r


@pytest.mark.slow
@pytest.mark.parametrize("order", [("portrait", "piper"), ("piper", "portrait")], ids=" then ".join)
def test_extras_installed_one_after_the_other_work_together(tmp_path: Path, order: tuple[str, str]) -> None:
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = str(env / "bin" / "python")
    for extra in order:
        _run([python, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[{extra}]"], timeout=600)
    assert "face mesh and onnx work" in _run([python, "-c", _FACE_MESH], timeout=120).stdout
    listing = _run([python, "-m", "linly_push", "backends"], timeout=120).stdout
    assert (_status(listing, "portrait"), _status(listing, "piper")) == ("ready", "ready"), listing
    _run([python, "-m", "pip", "check"], timeout=120)  # and nothing else was left broken
