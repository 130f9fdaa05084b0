"""Finding backends. Built-in and third-party backends are registered the same way: as entry
points in the groups ``linly_push.tts`` and ``linly_push.avatars``, each naming a backend class
(linly-push's own pyproject.toml declares the built-ins there)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, Literal

from pydantic import ValidationError

from ..errors import LinlyPushWarning, UsageError
from ..presets import describe
from .base import Avatar, Backend, BackendOptions, TTSBackend, reason

Kind = Literal["tts", "avatar"]
GROUPS: dict[Kind, str] = {"tts": "linly_push.tts", "avatar": "linly_push.avatars"}
BASES: dict[Kind, type[Backend]] = {"tts": TTSBackend, "avatar": Avatar}


@dataclass(frozen=True)
class BackendInfo:
    kind: Kind
    name: str
    cls: type[Backend] | None
    origin: str  # distribution that provides it
    error: str | None = None  # why it could not be loaded or is not ready
    notes: tuple[str, ...] = ()  # limits a ready backend runs with, from its deeper check

    @property
    def ready(self) -> bool:
        return self.cls is not None and self.error is None

    @property
    def status(self) -> str:
        if self.ready and not self.notes:
            return "ready"
        # The extra belongs to the distribution that registered the backend (linly-push for its own);
        # installing it again also mends what a note says is missing or broken.
        hint = f" (pip install '{self.origin}[{self.cls.extra}]')" if self.cls is not None and self.cls.extra else ""
        if self.ready:
            return "ready" + "".join(f" ({note})" for note in self.notes) + hint
        return f"{self.error}{hint}"


@functools.cache
def discover(kind: Kind) -> Mapping[str, BackendInfo]:
    """Every backend of ``kind`` that is installed, ready or not, by name.

    Entry points are read and loaded once per process: a rundown asks for every segment.
    """
    found: dict[str, BackendInfo] = {}
    for ep in entry_points(group=GROUPS[kind]):
        origin = ep.dist.name if ep.dist is not None else "?"
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not break the others
            found[ep.name] = BackendInfo(kind, ep.name, None, origin, f"failed to load: {exc}")
            continue
        if not (isinstance(cls, type) and issubclass(cls, BASES[kind])):
            found[ep.name] = BackendInfo(kind, ep.name, None, origin, f"{ep.value} is not a {BASES[kind].__name__}")
            continue
        found[ep.name] = BackendInfo(kind, ep.name, cls, origin, cls.missing())
    return MappingProxyType(found)


def checked(info: BackendInfo) -> BackendInfo:
    """``info`` after the backend's deeper check (``Backend.check``): it imports and may start
    what the backend needs, so it is slow and only ``linly-push backends`` asks. The
    LinlyPushWarnings the check raises become notes of a ready backend."""
    if not info.ready:
        return info
    assert info.cls is not None
    # Recording drops the other warnings too: third-party chatter on import, not about readiness.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LinlyPushWarning)
        try:
            problem = info.cls.check()
        except Exception as exc:  # a plugin's broken check must not break the listing
            problem = f"its check failed: {reason(exc)}"
    notes = tuple(str(w.message) for w in caught if issubclass(w.category, LinlyPushWarning))
    return replace(info, error=problem, notes=notes if problem is None else ())


def get(kind: Kind, name: str) -> type[Backend]:
    """The backend class called ``name``; UsageError naming the choices if there is none."""
    found = discover(kind)
    info = found.get(name)
    if info is None:
        choices = ", ".join(sorted(found)) or "none (is linly-push installed with pip?)"
        raise UsageError(f"unknown {kind} backend {name!r}; choose one of: {choices}")
    if not info.ready:
        raise UsageError(f"{kind} backend {name!r} is not ready: {info.status}")
    assert info.cls is not None
    return info.cls


def options(cls: type[Backend], values: dict[str, Any]) -> BackendOptions:
    """Validate a backend's options (the preset's [tts] or [avatar] table less its 'backend' key)."""
    try:
        return cls.Options(**values)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt option is what to report, rather than the required one it was meant to be.
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        where = ".".join(str(p) for p in err["loc"])
        kind = "tts" if issubclass(cls, TTSBackend) else "avatar"
        if err["type"] == "extra_forbidden":
            known = ", ".join(cls.Options.model_fields) or "none"
            raise UsageError(f"{cls.name}: unknown option {kind}.{where}; its options are: {known}") from None
        if err["type"] == "missing":
            field = cls.Options.model_fields.get(str(err["loc"][0]))
            example = field.examples[0] if field is not None and field.examples else "..."
            raise UsageError(f"{cls.name} needs {kind}.{where}: pass --set {kind}.{where}={example} or set it in the preset") from None
        raise UsageError(f"{cls.name}: bad value for {kind}.{where}: {describe(err)}") from None
