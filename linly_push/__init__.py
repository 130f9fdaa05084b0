"""linly-push: scripted talking-avatar broadcasts, live over RTMP/SRT or rendered to a file.

The library (docs/library.md)::

    import linly_push as lp

    lp.render(lp.Show.text("Hello there."), "hello.mp4")
    lp.live(lp.Show.file("talk.txt"), ["rtmp://127.0.0.1/live/test"], on_event=print)

Names are loaded on first use, so ``import linly_push`` (and the CLI starting) stays quick.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Each public name, and the module that holds it.
_PUBLIC = {
    "load_preset": "api", "render": "api", "live": "api",
    "Show": "program", "Preset": "presets", "Controller": "control", "Mode": "control", "Summary": "broadcast", "Outlet": "broadcast",
    "LinlyPushError": "errors", "UsageError": "errors", "InputError": "errors", "BackendError": "errors",
    "OutputError": "errors", "CheckFailed": "errors", "Incomplete": "errors", "Interrupted": "errors",
    "Terminated": "errors", "Signalled": "errors", "LinlyPushWarning": "errors",
    "Event": "events", "Listener": "events", "Waiting": "events", "WarningEvent": "events", "Started": "events",
    "Sentence": "events", "Progress": "events", "Status": "events", "Dropped": "events", "Reconnected": "events",
    "Destination": "events", "Finished": "events", "Error": "events", "Queued": "events", "Spoken": "events",
    "InterruptedEvent": "events",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'linly_push' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
