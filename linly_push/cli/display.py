"""Showing a run's events: Rich on a terminal, plain lines in logs, JSON lines with --json.

Everything goes to stderr except --json events, which go to stdout so they can be piped.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, SpinnerColumn, Task, TextColumn
from rich.progress import Progress as Bar
from rich.table import Column
from rich.text import Text

from ..events import (
    Control,
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

    def _on_control(self, d: Control) -> None:
        if d.token_file is None:
            self._print(f"Control API on {escape(d.url)} [dim](token from LINLY_PUSH_CONTROL_TOKEN)[/]")
        else:  # the token itself is never printed: only where it is
            self._print(f"Control API on {escape(d.url)} · token in {escape(d.token_file)} · "
                        f"operator page: open {escape(d.page_file or '')}")

    def _on_waiting(self, d: Waiting) -> None:
        warm = f" (on air {d.warmup:g}s earlier, idling)" if d.warmup else ""
        self._print(f"[bold]Waiting[/] until {escape(d.start)}{warm}: {_clock(d.seconds)} to go. Ctrl-C cancels.")

    def _on_started(self, d: Started) -> None:
        self.live = d.live
        self.sentence = (0, d.sentences or 0)
        verb = "Streaming to" if self.live else "Rendering"
        title = f"[bold]{escape(d.title)}[/]: " if d.title else ""
        self._print(
            f"{title}[bold]{verb}[/] {escape(d.output)}  [dim]{d.preset} · {d.video} · {d.audio} · "
            f"tts {d.tts or '-'} · avatar {d.avatar} · ffmpeg {d.ffmpeg}[/]"
        )
        if not self.console.is_terminal:
            return
        # The words stay whole; the fields after them give way in a narrow terminal (see _Fields).
        whole = Column(no_wrap=True)
        columns: list[Any] = [SpinnerColumn(table_column=whole), TextColumn("{task.description}", table_column=whole)]
        if not self.live and d.sentences:
            columns += [BarColumn(bar_width=20), MofNCompleteColumn(table_column=whole),
                        TextColumn("sentences", table_column=whole)]
        columns += [_FieldsColumn()]
        self.progress = Bar(*columns, console=self.console)
        total = d.sentences if not self.live and d.sentences else None
        self.task = self.progress.add_task("on air" if self.live else "rendering", total=total, info=_Fields([]))
        self.progress.start()

    def _on_sentence(self, d: Sentence) -> None:
        self.sentence = (d.index, d.total or 0)
        of = f"/{d.total}" if d.total else ""
        line = f"[dim]{_clock(d.at)}[/] sentence {d.index}{of}: {escape(d.text)}"
        self._print(line)
        if self.progress is not None and not self.live:
            self.progress.update(self.task, completed=d.index - 1)

    def _on_progress(self, d: Progress) -> None:
        if self.progress is not None:
            speed = [f"{d.speed:.1f}× realtime"] if d.speed else []
            info = _Fields([f"{_clock(d.seconds)} rendered", *speed, f"{d.frames} frames"])
            self.progress.update(self.task, info=info)

    def _on_status(self, d: Status) -> None:
        if self.progress is None:
            return
        current, total = self.sentence
        said = [f"sentence {current}/{total}" if total else f"sentence {current}"] if current else []
        rate = f"{d.bitrate_kbps:.0f} kbit/s" if d.bitrate_kbps else "- kbit/s"
        problems = [_count(n, what) for n, what in ((d.repeated, "repeated frame"), (d.reconnects, "reconnect")) if n]
        info = _Fields([_clock(d.seconds), *said, f"{d.fps:.1f} fps", rate, f"{d.buffer:.1f}s buffered", *problems])
        self.progress.update(self.task, info=info)

    def _print(self, line: str) -> None:
        # In a terminal, a long line wraps between words; in a log, it stays one line.
        self.console.print(line, soft_wrap=False if self.console.is_terminal else None)

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
            info = _Fields([f"{_clock(d.seconds)} rendered", f"{d.frames} frames"])
            self.progress.update(self.task, completed=self.sentence[1], info=info)
        self.close()
        what = "Streamed" if self.live else "Wrote"
        captions = f" and its captions {escape(d.vtt)}" if d.vtt else ""
        n = d.sentences
        said = f", {n} sentence{'s' if n != 1 else ''}" if n else ""
        missed = [x for x in d.destinations if not x["complete"]]
        mark = "[yellow]⚠[/]" if missed else "[green]✓[/]"
        self._print(
            f"{mark} {what} {escape(d.output)}{captions}: {_clock(d.seconds)}, {d.frames} frames{said} "
            f"in {d.wall:.1f}s ({d.speed:.1f}× realtime)"
        )
        for x in missed:
            what = "recording" if x["role"] == "record" else "destination"
            why = f": {escape(x['reason'])}" if x["reason"] else ""
            self._print(f"  [yellow]{what} {escape(x['destination'])} is incomplete[/]{why}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    _HANDLERS = {
        Control: _on_control, Waiting: _on_waiting, Started: _on_started, Sentence: _on_sentence, Progress: _on_progress,
        Status: _on_status, Dropped: _on_dropped, Destination: _on_destination, WarningEvent: _on_warning,
        Queued: _on_queued, InterruptedEvent: _on_interrupted,
        Reconnected: _on_reconnected, Finished: _on_finished,
    }


class _Fields:
    """A status line's fields, most important first: as many as the width allows, each whole, so
    a narrow terminal drops the last ones instead of cutting every word short ("o…")."""

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = list(fields)

    def fit(self, width: int) -> str:
        shown = self.fields[:1]  # the first is kept whatever the width
        for field in self.fields[1:]:
            if cell_len(" · ".join([*shown, field])) > width:
                break
            shown.append(field)
        return " · ".join(shown)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(cell_len(self.fit(0)), cell_len(" · ".join(self.fields)))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        yield Text(self.fit(options.max_width), style="cyan", no_wrap=True, overflow="ellipsis")


class _FieldsColumn(ProgressColumn):
    """The task's ``info``: its _Fields, which give way first when the line is too long."""

    def render(self, task: Task) -> _Fields:
        return task.fields["info"]


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'s' if n != 1 else ''}"


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"
