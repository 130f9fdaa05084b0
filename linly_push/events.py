"""What a run reports as it goes. The library emits events; the CLI shows them (Rich) or prints
them as JSON lines (``--json``). Event names and fields are documented in README.md."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    kind: str  # started, sentence, progress, status, finished, error
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps({"event": self.kind, "time": round(self.at, 3), **self.data}, ensure_ascii=False)


Listener = Callable[[Event], None]


def ignore(_: Event) -> None:
    """A listener for callers that want no reports."""
