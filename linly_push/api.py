"""The library's front door: load a preset, describe a show, render it to a file or go live.

    import linly_push as lp

    preset = lp.load_preset("live", {"video.fps": 30})
    summary = lp.render(lp.Show.text("Hello there."), "hello.mp4", preset=preset)

Every function raises a ``LinlyPushError`` subclass on failure (each with the CLI's exit code,
``exit_code``), and reports what happens through ``on_event``: one typed event at a time
(``linly_push.events``), in the thread that called it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from . import presets as presets_mod
from . import urls
from .broadcast import Summary
from .errors import UsageError
from .events import Listener, ignore
from .ffmpeg import check_file
from .pipeline import Job, run
from .presets import Preset
from .program import Show, measured

__all__ = ["load_preset", "render", "live"]


def load_preset(name: str | Path = presets_mod.DEFAULT_PRESET, overrides: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> Preset:
    """A built-in preset (``live``, ``mobile``, ``hd``, ``local-test``) or a TOML file, with
    ``overrides`` (dotted keys, e.g. ``{"video.fps": 30, "tts.voice": "en-gb"}``) applied."""
    pairs = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides)
    return presets_mod.load(str(name), pairs)


def _preset(preset: Preset | str | Path | None) -> Preset:
    return preset if isinstance(preset, Preset) else load_preset(preset or presets_mod.DEFAULT_PRESET)


def render(
    show: Show,
    output: str | Path,
    *,
    preset: Preset | str | Path | None = None,
    on_event: Listener = ignore,
    stop: threading.Event | None = None,
    loop: bool = False,
    duration: float | None = None,
) -> Summary:
    """Render ``show`` to ``output`` (the container follows the extension: .mp4, .mov, .mkv,
    .flv, .ts), as fast as the machine allows. ``duration``: end after that many seconds of
    media (needed with ``loop``). Setting ``stop`` ends it cleanly, raising Interrupted."""
    p = _preset(preset)
    if loop and duration is None:
        raise UsageError("a looped render needs a duration (a file cannot be endless)")
    if not show.known:
        raise UsageError("a render needs the whole script up front, not one still arriving")
    check_file(Path(output), "write")
    show = Show(measured(show.program, p.audio), show.title)
    return run(Job(p, show.program, [str(output)], live=False, loop=loop, duration=duration, title=show.title), on_event, stop)


def live(
    show: Show,
    destinations: Sequence[str] = (),
    *,
    preset: Preset | str | Path | None = None,
    record: str | Path | None = None,
    on_event: Listener = ignore,
    stop: threading.Event | None = None,
    loop: bool = False,
    duration: float | None = None,
    at: datetime | None = None,
    warmup: float | None = None,
) -> Summary:
    """Broadcast ``show`` live, in real time, to each of ``destinations`` (rtmp://, rtmps://,
    srt://, or a WHIP endpoint's http(s)://, whose bearer token is read from the variable that
    the preset's ``whip.token_env`` names; ``${VAR}`` is taken from the environment and never
    shown), default the preset's
    ``live.url``; ``record`` also keeps a copy. Reconnects with backoff (the preset's
    ``[reconnect]``), and resumes at the sentence that was cut. ``at``: go on air then (less
    ``warmup`` seconds of idling). Returns what went out: ``Summary.incomplete`` names the
    destinations that did not get all of it. Setting ``stop`` ends it cleanly (Interrupted)."""
    p = _preset(preset)
    raw = list(destinations) or ([p.live.url] if p.live.url else [])
    if not raw:
        raise UsageError("no destination: give one, or use a preset with a live.url")
    if loop and not show.known:
        raise UsageError("a looped show repeats a finished script; it cannot repeat one still arriving")
    targets = [urls.target(r) for r in raw]
    token = whip_token(p) if any(urls.kind(t.url) == "whip" for t in targets) else None
    scrub = urls.Redactor(targets, secrets=[token] if token else [])
    with urls.redacting(scrub):
        for target in targets:
            if urls.kind(target.url) == "file":
                raise UsageError(
                    f"live pushes to rtmp://, rtmps://, srt:// or WHIP http(s):// URLs, not {target.url!r}; record to a file instead"
                )
        if record is not None:
            check_file(Path(record), "record to")
        program = measured(show.program, p.audio)
        job = Job(
            p, program, [t.url for t in targets], live=True, record=str(record) if record else None, redactor=scrub,
            loop=loop, duration=duration, start_at=at, warmup=warmup, title=show.title, controller=show.controller,
            whip_token=token,
        )
        return run(job, on_event, stop)


def whip_token(p: Preset) -> str | None:
    """The bearer token for WHIP endpoints: the value of the variable ``whip.token_env`` names."""
    name = p.whip.token_env
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise UsageError(f"environment variable {name} is not set or empty (whip.token_env names it for the WHIP token)")
    return value
