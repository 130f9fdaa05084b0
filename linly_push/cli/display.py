"""Showing a run's events: Rich on a terminal, plain lines in logs, JSON lines with --json.

Everything goes to stderr except --json events, which go to stdout so they can be piped.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ..events import Event


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
        self.progress: Progress | None = None
        self.task: Any = None
        self.live = False

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(event.data)

    def _on_started(self, d: dict) -> None:
        self.live = d["live"]
        verb = "Streaming to" if self.live else "Rendering"
        self.console.print(
            f"[bold]{verb}[/] {escape(d['output'])}  [dim]{d['preset']} · {d['video']} · {d['audio']} · "
            f"tts {d['tts'] or '-'} · avatar {d['avatar']} · ffmpeg {d['ffmpeg']}[/]"
        )
        if not self.console.is_terminal:
            return
        columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
        if not self.live:
            columns += [BarColumn(), MofNCompleteColumn(), TextColumn("sentences")]
        columns += [TextColumn("[cyan]{task.fields[info]}"), TimeElapsedColumn()]
        self.progress = Progress(*columns, console=self.console, transient=False)
        self.task = self.progress.add_task(
            "on air" if self.live else "rendering", total=max(1, d["sentences"]) if not self.live else None, info=""
        )
        self.progress.start()

    def _on_sentence(self, d: dict) -> None:
        line = f"[dim]{_clock(d['at'])}[/] sentence {d['index']}/{d['total']}: {escape(d['text'])}"
        if self.progress is not None:
            self.progress.console.print(line)
            self.progress.update(self.task, completed=d["index"] - 1)
        else:
            self.console.print(line)

    def _on_progress(self, d: dict) -> None:
        if self.progress is not None:
            speed = f"{d['speed']:.1f}× realtime" if d["speed"] else ""
            self.progress.update(self.task, info=f"{_clock(d['seconds'])} · {d['frames']} frames · {speed}")

    def _on_status(self, d: dict) -> None:
        rate = f"{d['bitrate_kbps']:.0f} kbit/s" if d["bitrate_kbps"] else "- kbit/s"
        info = f"on air {_clock(d['seconds'])} · {d['fps']:.1f} fps · {rate} · buffer {d['buffer']:.1f}s"
        if self.progress is not None:
            self.progress.update(self.task, info=info)

    def _on_finished(self, d: dict) -> None:
        self.close(done=True)
        what = "Streamed" if self.live else "Wrote"
        self.console.print(
            f"[green]✓[/] {what} {escape(d['output'])}: {_clock(d['seconds'])}, {d['frames']} frames, "
            f"{d['sentences']} sentences in {d['wall']:.1f}s ({d['speed']:.1f}× realtime)"
        )

    def close(self, done: bool = False) -> None:
        if self.progress is not None:
            if done and self.task is not None and not self.live:
                self.progress.update(self.task, completed=self.progress.tasks[0].total)
            self.progress.stop()
            self.progress = None


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"
