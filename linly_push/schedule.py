"""Times and durations as users write them on a command line (``--at``, ``--duration``).

Pure functions of the text and the current time, so tests can pin them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, time, timedelta

from .errors import UsageError

LATE_GRACE = 60.0  # seconds: a start time this recent still starts (a timer that fired a bit late)

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_PARTS = re.compile(r"(\d+(?:\.\d+)?)([hms])")


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``45m``, ``1h30m``, ``2.5h`` or ``1:30:00`` (H:MM:SS or M:SS)."""
    t = text.strip().lower()
    seconds: float | None = None
    if re.fullmatch(r"\d+(\.\d+)?", t):
        seconds = float(t)
    elif re.fullmatch(r"(\d+:)?\d{1,2}:[0-5]\d(\.\d+)?", t) and (t.count(":") == 1 or int(t.split(":")[1]) < 60):
        seconds = 0.0
        for part in t.split(":"):
            seconds = seconds * 60 + float(part)
    elif t and _PARTS.sub("", t) == "":
        seconds = sum(float(n) * _UNITS[u] for n, u in _PARTS.findall(t))
    if seconds is None or seconds <= 0:
        raise UsageError(f"--duration takes a length like 90, 45m, 1h30m or 1:30:00, not {text!r}")
    return seconds


def system_local(naive: datetime) -> datetime:
    """A wall-clock time in the system's time zone, with the offset in force on that date."""
    return naive.astimezone()


def parse_start(text: str, now: datetime, local: Callable[[datetime], datetime] = system_local) -> datetime:
    """When to go on air: ``20:00`` or ``20:00:30`` (today, local time) or an ISO date and time
    (``2026-12-01T20:00``, local; ``2026-12-01T20:00+08:00`` with an offset).

    ``now`` is the current local time, with its offset; ``local`` gives a wall-clock time its
    offset (which differs from today's across a daylight-saving change). A time more than
    LATE_GRACE seconds ago is a UsageError.
    """
    t = text.strip()
    clock = _CLOCK.match(t)
    try:
        if clock:
            start = local(datetime.combine(now.date(), time(int(clock[1]), int(clock[2]), int(clock[3] or 0))))
        else:
            start = datetime.fromisoformat(t.replace(" ", "T", 1).removesuffix("Z") + ("+00:00" if t.endswith("Z") else ""))
            if start.tzinfo is None:
                start = local(start)
    except ValueError:
        raise UsageError(
            f"--at takes a time like 20:00 (today) or 2026-12-01T20:00 or 2026-12-01T20:00+08:00, not {text!r}"
        ) from None
    late = (now - start).total_seconds()
    if late > LATE_GRACE:
        if clock:
            tomorrow = (now + timedelta(days=1)).strftime("%Y-%m-%dT") + t
            raise UsageError(
                f"--at {t}: that was {_ago(late)} ago today (it is {now:%H:%M:%S}); for tomorrow give --at {tomorrow}"
            )
        raise UsageError(f"--at {t}: that was {_ago(late)} ago (it is {now.isoformat(timespec='seconds')}); give a time in the future")
    return start


def _ago(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"
