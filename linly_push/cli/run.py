"""`render` and `live`: the same pipeline, to a file or on air."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from .. import api
from .. import presets as presets_mod
from ..broadcast import Outlet, Summary
from ..errors import Incomplete, UsageError
from ..control import Controller
from ..events import Control, Event, Listener
from ..server import TOKEN_ENV, ControlServer, is_loopback, parse_address
from ..server import available as server_available
from ..program import Show, measured
from ..schedule import parse_duration, parse_start
from .display import JsonDisplay, RichDisplay
from .inputs import announce_measuring, gather
from .signals import Signals

URL_ENV = "LINLY_PUSH_URL"

ScriptOpt = Annotated[
    Optional[str],
    typer.Option("--script", "-s", metavar="FILE", help="UTF-8 text to speak, '-' for standard input. "
                 "Sentences end at . ! ? … 。！？；, a blank line is a longer pause."),
]
AudioOpt = Annotated[
    Optional[list[Path]],
    typer.Option("--audio", "-a", metavar="FILE", help="A recording to play (wav, flac, ogg; any rate). Repeat for several, in order."),
]
PresetOpt = Annotated[
    str, typer.Option("--preset", "-p", metavar="NAME|FILE", help="Scene settings: live, mobile, hd, local-test, or a .toml file. See 'linly-push presets list'."),
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", metavar="KEY=VALUE", help="Override a preset setting, e.g. --set video.fps=30 --set tts.voice=en-gb. Repeatable."),
]
TtsOpt = Annotated[Optional[str], typer.Option("--tts", metavar="NAME", help="TTS backend (default espeak). See 'linly-push backends'.")]
AvatarOpt = Annotated[Optional[str], typer.Option("--avatar", metavar="NAME", help="Avatar backend: cartoon (default), testcard, portrait, loop, or a plugin's. See 'linly-push backends'.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object per line (events) on stdout instead of progress.")]
RundownOpt = Annotated[
    Optional[Path],
    # Help texts are Rich markup, where "[segment]" is a tag: "\\[" escapes the bracket.
    typer.Option("--rundown", metavar="FILE", help="A show in TOML: [\\[segment]] tables of script, script_file, audio or pause, each with optional tts, avatar and voice. Played as one continuous stream. See README 'Rundowns'."),
]
ConfineOpt = Annotated[bool, typer.Option("--confine", help="Refuse rundown paths (script_file, audio, files in backend tables) outside the rundown's folder, after resolving symlinks: for rundowns from someone else. Nor may it set backend options that run programs or send text elsewhere (tts.command, openai's base_url). See README 'Rundowns'.")]
LoopOpt = Annotated[bool, typer.Option("--loop", help="Play the script, recordings or rundown over and over (a paragraph pause between rounds).")]
DurationOpt = Annotated[
    Optional[str],
    typer.Option("--duration", metavar="LENGTH", help="End after this much media time, e.g. 90, 45m, 1h30m, 1:30:00 (cuts mid-sentence if need be)."),
]


def _preset(preset: str, sets: list[str] | None, tts: str | None, avatar: str | None) -> presets_mod.Preset:
    overrides = [presets_mod.parse_assignment(s) for s in sets or []]
    # Explicit flags win over --set, which wins over the preset file.
    if tts:
        overrides.append(("tts.backend", tts))
    if avatar:
        overrides.append(("avatar.backend", avatar))
    return presets_mod.load(preset, overrides)


def _display(as_json: bool) -> JsonDisplay | RichDisplay:
    return JsonDisplay() if as_json else RichDisplay(Console(stderr=True, soft_wrap=True))


def _execute(go: Callable[[Listener, threading.Event], Summary], as_json: bool) -> None:
    """Run ``go`` (the library's render or live) with the display and the signals."""
    display = _display(as_json)
    try:
        with Signals.on_air() as stop:
            summary = go(display, stop)
    finally:
        display.close()
    if summary.incomplete:
        raise Incomplete("the show went out, but " + "; ".join(map(_missed, summary.incomplete)))


def _missed(d: Outlet) -> str:
    at = int(d.down_at or 0)
    when = f" at {at // 60:02d}:{at % 60:02d}" if d.down_at is not None else ""
    why = f": {d.reason}" if d.reason else ""
    if d.role == "record":
        return f"recording {d.shown} is incomplete (it failed{when}{why})"
    return f"{d.shown} did not get all of it (down{when}{why})"


def render(
    script: ScriptOpt = None,
    audio: AudioOpt = None,
    rundown: RundownOpt = None,
    confine: ConfineOpt = False,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="FILE", help="File to write (replaced if it exists); the container follows the extension: .mp4, .mov, .mkv, .flv, .ts. A folder gets the default name inside it. Default: the script's (or first recording's) name with .mp4, in the current folder; linly-push.mp4 for standard input.")] = None,
    preset: PresetOpt = presets_mod.DEFAULT_PRESET,
    sets: SetOpt = None,
    tts: TtsOpt = None,
    avatar: AvatarOpt = None,
    loop: LoopOpt = False,
    duration: DurationOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Render a script, recordings or a rundown to a video file, as fast as the machine allows.

    \b
    Examples:
      linly-push render --script talk.txt -o talk.mp4
      linly-push render --audio intro.wav --audio part2.flac -o show.mp4
      echo "Hello there." | linly-push render --script - -o hello.mp4
      linly-push render --script talk.txt --avatar testcard -o sync-check.mp4
      linly-push render --rundown show.toml -o show.mp4
      linly-push render --script loop.txt --loop --duration 10m -o ten-minutes.mp4
    """
    if loop and duration is None:
        raise UsageError("render --loop needs --duration (a file cannot be endless), e.g. --duration 10m")
    length = parse_duration(duration) if duration is not None else None
    p = _preset(preset, sets, tts, avatar)
    show = _show(p, script, audio, rundown, streaming=False, confine=confine)
    default = _default_output(rundown.name if rundown else script, audio or [])
    target = output or default
    if target.is_dir():
        target = target / default
    _execute(lambda listen, stop: api.render(show, target, preset=p, on_event=listen, stop=stop, loop=loop, duration=length), as_json)


def live(
    script: ScriptOpt = None,
    audio: AudioOpt = None,
    rundown: RundownOpt = None,
    confine: ConfineOpt = False,
    url: Annotated[Optional[list[str]], typer.Option("--url", "-u", metavar="URL", help=f"Where to push: rtmp://, rtmps://, srt://, or a WebRTC (WHIP) endpoint at http(s):// (its token from the variable --set whip.token_env=NAME names). Repeat to push to several at once (one that fails is retried without stopping the others). Write the key as ${{VAR}} (single quotes) to keep it out of shell history. Default: ${URL_ENV}, then the preset's live.url.")] = None,
    record: Annotated[Optional[Path], typer.Option("--record", "-r", metavar="FILE", help="Also record what goes on air (.mkv or .flv survive a crash best; .mp4 works). After a reconnect, recording goes on in FILE-2, FILE-3, ...")] = None,
    preset: PresetOpt = presets_mod.DEFAULT_PRESET,
    sets: SetOpt = None,
    tts: TtsOpt = None,
    avatar: AvatarOpt = None,
    at: Annotated[Optional[str], typer.Option("--at", metavar="TIME", help="Wait, then go on air: 20:00 (today, local time), 2026-12-01T20:00 or 2026-12-01T20:00+08:00. Everything is loaded and checked first, so errors show at once.")] = None,
    warmup: Annotated[Optional[float], typer.Option("--warmup", metavar="SECONDS", min=0, max=3600, help="Go on air this long before the first segment, idling: with --at, the stream is up at TIME minus SECONDS and the show starts at TIME.")] = None,
    loop: LoopOpt = False,
    duration: DurationOpt = None,
    control: Annotated[Optional[str], typer.Option("--control", metavar="HOST:PORT", help="Serve the control API (say, interrupt, queue, events, metrics; a page at /) while on air, e.g. --control 8750 (on 127.0.0.1) or 0.0.0.0:8750 (needs LINLY_PUSH_CONTROL_TOKEN). Without a script the show idles until told what to say, and runs until stopped. See README 'Control API'.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Broadcast a script, recordings or a rundown live, in real time, to RTMP, SRT or WebRTC (WHIP) servers.

    Between sentences, and while waiting for more text on standard input, the avatar idles and silence plays: the stream stays up. When the server drops or stalls, linly-push reconnects with backoff (the preset's reconnect settings) and resumes at the start of the sentence that was cut.

    The key part of a URL (last path segment, query) is never printed. SIGINT or SIGTERM end the broadcast cleanly; a second signal stops at once.

    \b
    Examples:
      linly-push live --preset local-test --script talk.txt
      export STREAM_KEY=...
      linly-push live --preset hd --script talk.txt \\
          --url 'rtmp://ingest.example/app/${STREAM_KEY}' --record show.mkv
      tail -f news.txt | linly-push live --script - --json \\
          --url rtmp://127.0.0.1/live/test
      linly-push live --rundown show.toml --at 20:00 --warmup 60 --preset hd
      linly-push live --script promo.txt --loop --duration 2h
      linly-push live --script talk.txt \\
          --url 'http://127.0.0.1:1985/rtc/v1/whip/?app=live&stream=anchor'
    """
    start = parse_start(at, datetime.now().astimezone()) if at is not None else None
    length = parse_duration(duration) if duration is not None else None
    if loop and script == "-":
        raise UsageError("--loop repeats a finished script; it cannot repeat standard input")
    p = _preset(preset, sets, tts, avatar)
    raw = url or [u for u in (os.environ.get(URL_ENV) or p.live.url,) if u]
    if not raw:
        raise UsageError(f"no destination: give --url, set {URL_ENV}, or use a preset with a live.url (e.g. --preset local-test)")
    if control is not None:
        server = _control_server(control, p)
        given = script is not None or audio or rundown is not None
        first = _show(p, script, audio, rundown, streaming=False, confine=confine) if given else None
        show = Show.controlled(server.controller, first)
    else:
        server, show = None, _show(p, script, audio, rundown, streaming=True, confine=confine)

    def go(listen: Listener, stop: threading.Event) -> Summary:
        if server is None:
            return api.live(show, raw, preset=p, record=record, on_event=listen, stop=stop, loop=loop,
                            duration=length, at=start, warmup=warmup)
        server.start(ending=stop)
        listen(Control(url=server.url + "/", token_file=_text(server.token_file), page_file=_text(server.page_file)))

        def both(event: Event) -> None:
            listen(event)
            server.publish(event)

        try:
            return api.live(show, raw, preset=p, record=record, on_event=both, stop=stop, loop=loop,
                            duration=length, at=start, warmup=warmup)
        finally:
            server.stop()

    _execute(go, as_json)


def _control_server(address: str, p: presets_mod.Preset) -> ControlServer:
    """The control server --control asks for, checked: a token to bind beyond this machine."""
    host, port = parse_address(address)
    if server_available() is not None:
        raise UsageError(f"--control: {server_available()}")
    token = os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(host):
        raise UsageError(f"--control {address}: serving beyond this machine needs a token of your own: set {TOKEN_ENV}")
    return ControlServer(Controller(p), p, host, port, token)


def _text(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def _show(
    p: presets_mod.Preset, script: str | None, audio: list[Path] | None, rundown: Path | None, streaming: bool,
    confine: bool = False,
) -> Show:
    """The show the flags describe, read and checked."""
    if rundown is not None:
        if script is not None or audio:
            raise UsageError("give one of --script, --audio or --rundown")
        show = Show.rundown(rundown, p, confine=confine)
    elif confine:
        raise UsageError("--confine is about the paths in a rundown; give --rundown FILE")
    else:
        show = Show(gather(script, audio or [], p.speech.max_sentence_chars, streaming=streaming))
    # Measured here, before going on air, where a signal still stops everything at once.
    announce_measuring(show.program, p.audio)
    return Show(measured(show.program, p.audio), show.title)


def _default_output(script: str | None, audio: list[Path]) -> Path:
    if script and script != "-":
        return Path(Path(script).stem + ".mp4")
    if audio:
        return Path(audio[0].stem + ".mp4")
    return Path("linly-push.mp4")
