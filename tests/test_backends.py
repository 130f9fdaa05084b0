"""The backends' layout and contract: built-ins are plugins in ``backends/tts/`` and
``backends/avatars/``, found through entry points once, their options validated in one place
that rejects unknown keys for both kinds, and no library module imports a plugin."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from linly_push.backends import registry
from linly_push.backends.base import BackendOptions, as_backend_error
from linly_push.errors import BackendError, LinlyPushError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "linly_push"
PLUGINS = {"tts": "linly_push.backends.tts", "avatar": "linly_push.backends.avatars"}
BUILT_IN = {"tts": ["espeak", "command", "openai", "piper"], "avatar": ["cartoon", "testcard", "portrait", "loop"]}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The modules ``path`` imports, relative imports resolved (``from . import x`` as ``pkg.x``)."""
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def _is_plugin(path: Path) -> bool:
    return any(_module(path).startswith(prefix) for prefix in PLUGINS.values())


@pytest.mark.parametrize("kind", ["tts", "avatar"])
def test_the_built_ins_are_plugins_in_their_kinds_folder(kind: registry.Kind) -> None:
    found = registry.discover(kind)
    assert registry.discover(kind) is found  # entry points are read and loaded once
    ours = {name: info for name, info in found.items() if info.origin == "linly-push"}
    assert sorted(ours) == sorted(BUILT_IN[kind])
    for name, info in ours.items():
        assert info.cls is not None, info.status
        assert info.cls.__module__ == f"{PLUGINS[kind]}.{name}"


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, names in BUILT_IN.items() for n in names])
def test_every_built_in_rejects_an_unknown_option(kind: registry.Kind, name: str) -> None:
    cls = registry.discover(kind)[name].cls
    assert cls is not None
    assert issubclass(cls.Options, BackendOptions) and cls.Options.model_config.get("extra") == "forbid"
    # Reported before any required option the backend has (command, image) is missed.
    with pytest.raises(UsageError, match=rf"^{name}: unknown option {kind}\.no_such_option; its options are: "):
        registry.options(cls, {"no_such_option": 1})


def test_options_are_built_only_by_the_registry() -> None:
    """``registry.options`` is the one place a backend's ``Options`` is made from what a preset,
    a rundown or ``--set`` says: the one error message, whichever the kind."""
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "backends" / "registry.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in ast.walk(tree)
                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "Options"]  # fmt: skip
    assert calls == []


def test_the_library_imports_no_plugin() -> None:
    """Only the registry finds plugins (by entry point); what a plugin shares with the library
    lives in the library (``onsets``, ``video``), so the dependency goes one way."""
    library = [p for p in sorted(PACKAGE.rglob("*.py")) if not _is_plugin(p)]
    assert PACKAGE / "sync.py" in library and PACKAGE / "backends" / "registry.py" in library
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in library
        for name in _imports(path)
        if any(name == prefix or name.startswith(prefix + ".") for prefix in PLUGINS.values())
    }
    assert wrong == set()


def test_every_package_is_in_the_wheel() -> None:
    """A package missing from ``[tool.setuptools] packages`` works in an editable install and is
    absent from the wheel, where every backend in it fails to load."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    packages = {_module(p) for p in PACKAGE.rglob("__init__.py")}
    assert {PLUGINS["tts"], PLUGINS["avatar"]} <= packages
    assert packages - listed == set()


class _Engine:
    name = "engine"


def test_a_backends_own_failure_becomes_a_backend_error_naming_it() -> None:
    wrapped = pytest.raises(BackendError, match=r"^engine: failed on sentence 3: out of tea$")
    with wrapped as err, as_backend_error(_Engine(), "failed on sentence 3"):
        raise RuntimeError("out of tea")
    assert isinstance(err.value.__cause__, RuntimeError)
    with pytest.raises(BackendError, match=r"^engine: could not start: "), as_backend_error(_Engine, "could not start"):
        {}["missing"]


@pytest.mark.parametrize("error", [UsageError("engine needs tts.voice"), BackendError("engine: no voice")])
def test_a_backend_that_says_what_is_wrong_is_not_wrapped(error: LinlyPushError) -> None:
    with pytest.raises(type(error)) as err, as_backend_error(_Engine(), "failed on frame 7"):
        raise error
    assert err.value is error
