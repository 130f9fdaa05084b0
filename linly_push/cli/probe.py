"""`probe`: what a stream or file carries, checked against a preset or simple expectations.

With ``--json``, stdout holds one JSON object (also when a check fails):

- ``target`` (a URL with its key masked), ``live`` (read from a URL), ``container``
  (ffmpeg's name: ``flv``, ``mov,mp4,m4a,3gp,3g2,mj2``, ...), ``duration`` (seconds read)
- ``video``: ``codec``, ``profile``, ``width``, ``height``, ``pix_fmt``, ``fps``,
  ``bitrate_kbps``, ``frames``, ``keyframes``, ``keyframe_interval`` (mean seconds between
  keyframes), ``keyframe_interval_max`` (longest stretch without one); null without video
- ``audio``: ``codec``, ``profile``, ``sample_rate``, ``channels``, ``bitrate_kbps``
- ``sync`` (with ``--sync``, else null): ``offset_ms`` (median of sound onset minus its testcard
  flash; positive: sound late), ``min_ms``, ``max_ms``, ``pairs``, ``unmatched_onsets``,
  ``unmatched_flashes``
- ``issues``: what looks wrong whatever was expected (gaps in timestamps, a missing stream, a
  stream that ended early, flashes without sound); ``--expect issues=0`` counts them
- ``checks``: one per expectation: ``key``, ``expected`` (text), ``got`` (the report's value),
  ``ok`` (true, false, or null when skipped: a keyframe interval in a sample shorter than two
  keyframes), ``source`` (``preset NAME`` or ``--expect``)
- ``ok``: no check failed

Rates are measured from packet sizes and timestamps, not read from metadata.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import presets as presets_mod
from .. import probe as probe_mod
from .. import urls
from ..errors import CheckFailed, UsageError
from ..probe import Expectation, Outcome, Report


def _expectations(items: list[str]) -> tuple[list[Expectation], list[presets_mod.Preset]]:
    """Plain expectations and presets, from --expect items (read before anything is probed)."""
    plain, presets = [], []
    for item in items:
        key, sep, name = item.partition("=")
        if key.strip() == "preset" and sep:
            if not name.strip():
                raise UsageError("--expect preset= needs a preset name or a .toml file")
            presets.append(presets_mod.load(name.strip()))
        else:
            plain.append(probe_mod.parse_expectation(item))
    return plain, presets


def probe(
    target: Annotated[str, typer.Argument(metavar="URL|FILE", help="A file, or a stream URL (rtmp://, rtmps://, srt://, http(s)://...). Write the key as ${VAR} (single quotes) to keep it out of shell history.")],
    expect: Annotated[Optional[list[str]], typer.Option("--expect", "-e", metavar="CHECK", help="preset=NAME|FILE: codecs, size, fps, keyframe interval, bit rate, audio rate and channels as the preset sets them, no issues (gaps, an early end), and lip sync within EBU R37 with --sync. Or one field of --json's report: KEY=VALUE, 'KEY<=N', 'KEY>=N', KEY=LOW..HIGH, e.g. video.fps=25, video.bitrate_kbps=1800..2200, 'sync.max_ms<=40', issues=0. Repeatable.")] = None,
    seconds: Annotated[Optional[float], typer.Option("--seconds", "-t", metavar="N", min=0.1, help=f"Read this many seconds: of a stream (default {probe_mod.STREAM_SECONDS:g}; it joins at the next keyframe), or the start of a file (default: all of it).")] = None,
    sync: Annotated[bool, typer.Option("--sync/--no-sync", help="Measure lip sync of testcard content (render or live with --avatar testcard): each sound onset against its white flash.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout: the report, each check, and ok.")] = False,
) -> None:
    """Report what a stream or file carries: codecs, picture size, fps, bit rates, duration, keyframe interval and (--sync) lip sync. With --expect, check it: exit 6 when a check fails.

    \b
    Examples:
      linly-push probe talk.mp4
      linly-push probe show.mp4 --expect preset=hd
      linly-push probe 'rtmp://127.0.0.1/live/${STREAM_KEY}' \\
          --expect preset=local-test --json
      linly-push probe sync-check.mp4 --sync \\
          --expect 'sync.max_ms<=40' --expect 'sync.min_ms>=-40'
    """
    plain, presets = _expectations(expect or [])
    secrets = urls.env_values(target)
    with urls.redacting(secrets):
        where = urls.expand(target)
        report = probe_mod.probe(where, seconds=seconds, sync=sync, secrets=secrets)
    outcomes = probe_mod.evaluate(report, plain) + [o for p in presets for o in probe_mod.check(report, p)]
    failed = [o for o in outcomes if o.ok is False]
    if as_json:
        print(json.dumps({**report.to_dict(), "checks": [_check(o) for o in outcomes], "ok": not failed}, ensure_ascii=False))
    else:
        _show(report, outcomes)
    if failed:
        summary = "; ".join(o.describe() for o in failed)
        sources = sorted({o.expectation.source for o in failed})
        message = f"{len(failed)} of {len(outcomes)} checks failed ({', '.join(sources)}): {summary}"
        if not as_json:
            raise CheckFailed(message)
        # One JSON object on stdout, so the error goes to stderr only (main() would add an event).
        print(f"linly-push: error: {message}", file=sys.stderr)
        raise typer.Exit(CheckFailed.exit_code)


def _check(o: Outcome) -> dict[str, Any]:
    e = o.expectation
    return {"key": e.key, "expected": e.wanted, "got": o.got, "ok": o.ok, "source": e.source}


def _show(report: Report, outcomes: list[Outcome]) -> None:
    table = Table(box=None, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    read = f" ({report.duration:g} s read)" if report.live and report.duration is not None else ""
    table.add_row("target", escape(report.target) + read)
    table.add_row("container", escape(report.container or "-"))
    table.add_row("duration", f"{report.duration:g} s" if report.duration is not None else "-")
    v, a = report.video, report.audio
    if v is None:
        table.add_row("video", "[red]none[/]")
    else:
        profile = f" ({v.profile})" if v.profile else ""
        table.add_row("video", escape(f"{v.codec}{profile} {v.width}x{v.height} {v.pix_fmt}, {_num(v.fps)} fps, {_num(v.bitrate_kbps)} kbps, {v.frames} frames"))
        every = f"every {_num(v.keyframe_interval)} s" if v.keyframe_interval is not None else "too few to tell the interval"
        table.add_row("keyframes", f"{every} (longest without: {_num(v.keyframe_interval_max)} s; {v.keyframes} keyframes)")
    if a is None:
        table.add_row("audio", "[red]none[/]")
    else:
        profile = f" ({a.profile})" if a.profile else ""
        table.add_row("audio", escape(f"{a.codec}{profile} {a.sample_rate} Hz, {a.channels} ch, {_num(a.bitrate_kbps)} kbps"))
    s = report.sync
    if s is not None:
        spread = f"{s.min_ms:+g}..{s.max_ms:+g} ms" if s.pairs else "-"
        median = f"{s.offset_ms:+g} ms" if s.offset_ms is not None else "-"
        table.add_row("lip sync", f"{median} median, {spread} over {s.pairs} flashes (+: sound late)")
    table.add_row("issues", "\n".join(escape(i) for i in report.issues) if report.issues else "none")
    console = Console()
    if not console.is_terminal:  # piped: one row per line, not wrapped at 80 columns
        console = Console(width=200)
    console.print(table)
    for o in outcomes:
        mark = {True: "[green]✓[/]", False: "[red]✗[/]", None: "[dim]–[/]"}[o.ok]
        source = f" [dim]({escape(o.expectation.source)})[/]"
        console.print(f"{mark} {escape(o.describe())}{source}")


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"
