"""`render` and `live`: the same pipeline, to a file or on air."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from .. import presets as presets_mod
from .. import urls
from ..errors import OutputError, UsageError
from ..pipeline import Job, run
from .display import JsonDisplay, RichDisplay
from .inputs import gather

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
AvatarOpt = Annotated[Optional[str], typer.Option("--avatar", metavar="NAME", help="Avatar backend: cartoon (default) or testcard.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object per line (events) on stdout instead of progress.")]


def _preset(preset: str, sets: list[str] | None, tts: str | None, avatar: str | None, extra: list[tuple[str, Any]] = ()) -> presets_mod.Preset:
    overrides = [presets_mod.parse_assignment(s) for s in sets or []]
    # Explicit flags win over --set, which wins over the preset file.
    if tts:
        overrides.append(("tts.backend", tts))
    if avatar:
        overrides.append(("avatar.backend", avatar))
    overrides.extend(extra)
    return presets_mod.load(preset, overrides)


def _display(as_json: bool) -> JsonDisplay | RichDisplay:
    return JsonDisplay() if as_json else RichDisplay(Console(stderr=True, soft_wrap=True))


def _execute(job: Job, as_json: bool) -> None:
    display = _display(as_json)
    try:
        run(job, display)
    finally:
        display.close()


def render(
    script: ScriptOpt = None,
    audio: AudioOpt = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="FILE", help="File to write (replaced if it exists); the container follows the extension: .mp4, .mov, .mkv, .flv, .ts. A folder gets the default name inside it. Default: the script's (or first recording's) name with .mp4, in the current folder; linly-push.mp4 for standard input.")] = None,
    preset: PresetOpt = presets_mod.DEFAULT_PRESET,
    sets: SetOpt = None,
    tts: TtsOpt = None,
    avatar: AvatarOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Render a script or recordings to a video file, as fast as the machine allows.

    \b
    Examples:
      linly-push render --script talk.txt -o talk.mp4
      linly-push render --audio intro.wav --audio part2.flac -o show.mp4
      echo "Hello there." | linly-push render --script - -o hello.mp4
      linly-push render --script talk.txt --avatar testcard -o sync-check.mp4
    """
    p = _preset(preset, sets, tts, avatar)
    inputs = gather(script, audio or [], p.speech.max_sentence_chars)
    target = output or _default_output(script, audio or [])
    if target.is_dir():
        target = target / _default_output(script, audio or [])
    if target.suffix.lower() not in {".mp4", ".mov", ".mkv", ".flv", ".ts", ".m4v"}:
        raise UsageError(f"cannot tell the container from {target.name!r}; use .mp4, .mkv, .mov, .flv or .ts")
    if not target.parent.is_dir():
        raise OutputError(f"cannot write {target}: folder {target.parent} does not exist")
    _execute(Job(p, inputs, str(target), live=False), as_json)


def live(
    script: ScriptOpt = None,
    audio: AudioOpt = None,
    url: Annotated[Optional[str], typer.Option("--url", "-u", metavar="URL", help=f"Where to push: rtmp://, rtmps:// or srt://. Write the key as ${{VAR}} (single quotes) to keep it out of shell history. Default: ${URL_ENV}, then the preset's live.url.")] = None,
    preset: PresetOpt = presets_mod.DEFAULT_PRESET,
    sets: SetOpt = None,
    tts: TtsOpt = None,
    avatar: AvatarOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Broadcast a script or recordings live, in real time, to an RTMP or SRT server.

    The key part of the URL (last path segment, query) is never printed.

    \b
    Examples:
      linly-push live --preset local-test --script talk.txt
      export STREAM_KEY=...
      linly-push live --preset hd --script talk.txt \\
          --url 'rtmp://ingest.example/app/${STREAM_KEY}'
      echo "Breaking news." | linly-push live --script - --json \\
          --url rtmp://127.0.0.1/live/test
    """
    p = _preset(preset, sets, tts, avatar)
    raw = url or os.environ.get(URL_ENV) or p.live.url
    if not raw:
        raise UsageError(f"no destination: give --url, set {URL_ENV}, or use a preset with a live.url (e.g. --preset local-test)")
    secrets = urls.env_values(raw)
    with urls.redacting(secrets):
        target = urls.expand(raw)
        secrets += urls.secrets_of(target)
        if urls.kind(target) == "file":
            raise UsageError(f"live pushes to rtmp://, rtmps:// or srt:// URLs, not {target!r}; use 'linly-push render' for files")
        inputs = gather(script, audio or [], p.speech.max_sentence_chars)
        _execute(Job(p, inputs, target, live=True, secrets=secrets), as_json)


def _default_output(script: str | None, audio: list[Path]) -> Path:
    if script and script != "-":
        return Path(Path(script).stem + ".mp4")
    if audio:
        return Path(audio[0].stem + ".mp4")
    return Path("linly-push.mp4")
