"""Tests of optional backends: skipped where the extra is not installed, failed under CI
(``.ci/run`` installs every extra, so a missing one there is a broken setup, not a skip)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def need(module: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is missing under CI: {exc}")
        pytest.skip(f"needs pip install -e '.[{extra}]' ({module})", allow_module_level=True)
