"""Showing a run's events: Rich on a terminal, plain lines in logs, JSON lines with --json.

Everything goes to stderr except --json events, which go to stdout so they can be piped.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn
from rich.progress import Progress as Bar

from ..events import (
    Destination,
    Dropped,
    Event,
    Finished,
    InterruptedEvent,
    Progress,
    Queued,
    Reconnected,
    Sentence,
    Started,
    Status,
    Waiting,
    WarningEvent,
)


class JsonDisplay:
    def __call__(self, event: Event) -> None:
        sys.stdout.write(event.to_json() + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        pass


class RichDisplay:
    """A progress bar for render, a status line for live; plain lines when not on a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Bar | None = None
        self.task: Any = None
        self.live = False
        self.sentence = (0, 0)  # (current, total)

    def __call__(self, event: Event) -> None:
        handler = self._HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _on_waiting(self, d: Waiting) -> None:
        warm = f" (on air {d.warmup:g}s earlier, idling)" if d.warmup else ""
        self.console.print(f"[bold]Waiting[/] until {escape(d.start)}{warm}: {_clock(d.seconds)} to go. Ctrl-C cancels.")

    def _on_started(self, d: Started) -> None:
        self.live = d.live
        self.sentence = (0, d.sentences or 0)
        verb = "Streaming to" if self.live else "Rendering"
        title = f"[bold]{escape(d.title)}[/]: " if d.title else ""
        self.console.print(
            f"{title}[bold]{verb}[/] {escape(d.output)}  [dim]{d.preset} · {d.video} · {d.audio} · "
            f"tts {d.tts or '-'} · avatar {d.avatar} · ffmpeg {d.ffmpeg}[/]"
        )
        if not self.console.is_terminal:
            return
        columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
        if not self.live and d.sentences:
            columns += [BarColumn(), MofNCompleteColumn(), TextColumn("sentences")]
        columns += [TextColumn("[cyan]{task.fields[info]}")]
        self.progress = Bar(*columns, console=self.console)
        total = d.sentences if not self.live and d.sentences else None
        self.task = self.progress.add_task("on air" if self.live else "rendering", total=total, info="")
        self.progress.start()

    def _on_sentence(self, d: Sentence) -> None:
        self.sentence = (d.index, d.total or 0)
        of = f"/{d.total}" if d.total else ""
        line = f"[dim]{_clock(d.at)}[/] sentence {d.index}{of}: {escape(d.text)}"
        if self.progress is not None:
            self.progress.console.print(line)
            if not self.live:
                self.progress.update(self.task, completed=d.index - 1)
        else:
            self.console.print(line)

    def _on_progress(self, d: Progress) -> None:
        if self.progress is not None:
            speed = f" · {d.speed:.1f}× realtime" if d.speed else ""
            info = f"{_clock(d.seconds)} rendered · {d.frames} frames{speed}"
            self.progress.update(self.task, info=info)

    def _on_status(self, d: Status) -> None:
        if self.progress is None:
            return
        rate = f"{d.bitrate_kbps:.0f} kbit/s" if d.bitrate_kbps else "- kbit/s"
        current, total = self.sentence
        said = (f"sentence {current}/{total} · " if total else f"sentence {current} · ") if current else ""
        extra = "".join(f" · {n} {label}" for n, label in ((d.repeated, "repeated frames"), (d.reconnects, "reconnects")) if n)
        info = f"{_clock(d.seconds)} · {said}{d.fps:.1f} fps · {rate} · {d.buffer:.1f}s buffered{extra}"
        self.progress.update(self.task, info=info)

    def _print(self, line: str) -> None:
        (self.progress.console if self.progress is not None else self.console).print(line)

    def _on_dropped(self, d: Dropped) -> None:
        resume = f", resuming at sentence {d.resume_sentence}" if d.resume_sentence else ""
        what = f"connection lost after {_clock(d.on_air)} on air" if d.connected else "could not connect"
        self._print(f"[yellow]⚠ {what}[/]: {escape(d.reason)}; retrying in {d.retry_in:.1f}s{resume}")

    def _on_destination(self, d: Destination) -> None:
        where, why = escape(d.destination), f": {escape(d.reason)}" if d.reason else ""
        if d.state == "up":
            self._print(f"[green]✓ {where} is back[/] at {_clock(d.at)}")
        elif d.role == "record":
            self._print(f"[red]✗ recording {where} failed[/] at {_clock(d.at)}{why}; the broadcast goes on")
        else:
            self._print(f"[yellow]⚠ {where} is down[/] at {_clock(d.at)}{why}; retrying every second, "
                        "the other destinations go on")

    def _on_queued(self, d: Queued) -> None:
        what = escape(d.text) if d.text is not None else "a recording"
        self._print(f"[dim]queued {d.id} ({d.mode}):[/] {what}")

    def _on_interrupted(self, d: InterruptedEvent) -> None:
        self._print(f"[yellow]■ {d.id} {d.state}[/]")

    def _on_warning(self, d: WarningEvent) -> None:
        self._print(f"[yellow]⚠ {escape(d.message)}[/]")

    def _on_reconnected(self, d: Reconnected) -> None:
        record = f", recording to {escape(d.record)}" if d.record else ""
        self._print(f"[green]✓ back on air[/] (reconnect {d.reconnects}){record}")

    def _on_finished(self, d: Finished) -> None:
        if self.progress is not None and not self.live:
            self.progress.update(
                self.task, completed=self.sentence[1], info=f"{_clock(d.seconds)} rendered · {d.frames} frames"
            )
        self.close()
        what = "Streamed" if self.live else "Wrote"
        n = d.sentences
        said = f", {n} sentence{'s' if n != 1 else ''}" if n else ""
        missed = [x for x in d.destinations if not x["complete"]]
        mark = "[yellow]⚠[/]" if missed else "[green]✓[/]"
        self.console.print(
            f"{mark} {what} {escape(d.output)}: {_clock(d.seconds)}, {d.frames} frames{said} "
            f"in {d.wall:.1f}s ({d.speed:.1f}× realtime)"
        )
        for x in missed:
            what = "recording" if x["role"] == "record" else "destination"
            why = f": {escape(x['reason'])}" if x["reason"] else ""
            self.console.print(f"  [yellow]{what} {escape(x['destination'])} is incomplete[/]{why}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    _HANDLERS = {
        Waiting: _on_waiting, Started: _on_started, Sentence: _on_sentence, Progress: _on_progress,
        Status: _on_status, Dropped: _on_dropped, Destination: _on_destination, WarningEvent: _on_warning,
        Queued: _on_queued, InterruptedEvent: _on_interrupted,
        Reconnected: _on_reconnected, Finished: _on_finished,
    }


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"
