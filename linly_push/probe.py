"""Probing a stream or file: what it carries (codecs, picture, rates, keyframes, lip sync), and
checking that against a preset or against simple ``key=value`` expectations.

The pure parts come first: ``parse`` turns ffprobe's JSON (streams, format and every packet) into
a ``Report``; ``expectations`` says what a preset asks of a stream; ``evaluate`` compares. Rates,
frame rate and keyframe spacing are measured from the packets (sizes, timestamps, key flags),
not taken from container metadata, which encoders and servers fill in as they please.

``probe`` runs the tools. A URL is read for a few seconds with ``ffmpeg -c copy`` into a
temporary file (a player joins at the next keyframe), which is then probed like any file, so a
stream and a recording of it are measured the same way, lip sync included.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import urls
from .errors import InputError, LinlyPushError, OutputError, UsageError
from .ffmpeg import find_ffmpeg, hint, last_error
from .limits import ffmpeg_env
from .onsets import ONSET_GAP_SECONDS
from .presets import Preset, VideoSettings
from .sync import SyncReport, measure

STREAM_SECONDS = 8.0  # how much of a live stream to read unless told: four 2 s GOPs
READ_TIMEOUT_US = 5_000_000  # no bytes from the server for this long is an error, not a hang
# EBU R37: sound at most 40 ms before its picture, at most 60 ms after it.
SYNC_EARLY_MS, SYNC_LATE_MS = 40.0, 60.0


# -- the report --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    codec: str | None  # ffprobe's codec name: h264, hevc, ...
    profile: str | None
    width: int | None
    height: int | None
    pix_fmt: str | None
    fps: float | None  # frames per second of media time, from the packets' timestamps
    bitrate_kbps: float | None  # packet bytes over the video's span
    frames: int  # video packets read
    keyframes: int
    keyframe_interval: float | None  # mean seconds between keyframes (None with fewer than two)
    keyframe_interval_max: float | None  # the longest stretch without one, ends of the sample included


@dataclass(frozen=True)
class AudioInfo:
    codec: str | None
    profile: str | None
    sample_rate: int | None
    channels: int | None
    bitrate_kbps: float | None


@dataclass(frozen=True)
class SyncSummary:
    """Lip sync of testcard content: sound onset minus its flash (positive: sound after picture)."""

    offset_ms: float | None  # median over the pairs
    min_ms: float | None
    max_ms: float | None
    pairs: int  # onsets paired with a flash
    unmatched_onsets: int  # within the video read, but no flash near them
    unmatched_flashes: int  # within the audio read, but no sound near them


@dataclass(frozen=True)
class Report:
    target: str  # the file, or the URL with its key masked
    live: bool  # read from a URL
    container: str | None  # ffmpeg's name for it: flv, mov,mp4,..., matroska,webm, mpegts
    duration: float | None  # seconds of media read (all of a file, or what was read of a stream)
    video: VideoInfo | None
    audio: AudioInfo | None
    sync: SyncSummary | None = None  # with sync=True
    issues: list[str] = field(default_factory=list)  # what looks wrong, whatever the expectations

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):  # absent, or ffprobe's "N/A"
        return None


def _rate(text: str | None) -> float | None:
    """ffprobe's "25/1" as 25.0; None for "0/0"."""
    num, _, den = (text or "").partition("/")
    n, d = _number(num), _number(den or 1)
    return n / d if n and d else None


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


@dataclass(frozen=True)
class _Packet:
    time: float
    duration: float
    size: int
    key: bool


def _packets(info: dict[str, Any], index: int) -> list[_Packet]:
    """The stream's packets in presentation order; those marked discard (AAC priming) left out."""
    out = []
    for p in info.get("packets", []):
        if p.get("stream_index") != index or "D" in p.get("flags", ""):
            continue
        t = _number(p.get("pts_time"))
        t = _number(p.get("dts_time")) if t is None else t
        if t is not None:
            out.append(_Packet(t, _number(p.get("duration_time")) or 0.0, int(p.get("size", 0)), "K" in p.get("flags", "")))
    return sorted(out, key=lambda p: p.time)


def _gaps(packets: list[_Packet], what: str) -> list[str]:
    """An issue for timestamps that jump by more than twice the usual step (a freeze or a cut)."""
    if len(packets) < 3:
        return []
    steps = [b.time - a.time for a, b in zip(packets, packets[1:])]
    usual = statistics.median(steps)
    jumps = [(s, packets[i].time) for i, s in enumerate(steps) if s > 2 * usual + 0.002]  # FLV rounds to ms
    if not jumps:
        return []
    longest, at = max(jumps)
    return [f"{what} timestamps jump {len(jumps)} time(s), the longest by {longest:.3f} s at {at:.3f} s"]


def _video(stream: dict[str, Any], packets: list[_Packet]) -> tuple[VideoInfo, list[str]]:
    fps = _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate"))
    if len(packets) > 1 and packets[-1].time > packets[0].time:
        fps = (len(packets) - 1) / (packets[-1].time - packets[0].time)
    bitrate = interval = longest = None
    keys = [p.time for p in packets if p.key]
    if packets and fps:
        start, end = packets[0].time, packets[-1].time + 1 / fps
        bitrate = sum(p.size for p in packets) * 8 / (end - start) / 1000
        stretches = [b - a for a, b in zip([start, *keys], [*keys, end])]
        longest = max(stretches)
        if len(keys) > 1:
            interval = (keys[-1] - keys[0]) / (len(keys) - 1)
    info = VideoInfo(
        codec=stream.get("codec_name"),
        profile=stream.get("profile"),
        width=stream.get("width"),
        height=stream.get("height"),
        pix_fmt=stream.get("pix_fmt"),
        fps=_round(fps),
        bitrate_kbps=_round(bitrate, 1),
        frames=len(packets),
        keyframes=len(keys),
        keyframe_interval=_round(interval),
        keyframe_interval_max=_round(longest),
    )
    return info, _gaps(packets, "video")


def _audio(stream: dict[str, Any], packets: list[_Packet]) -> tuple[AudioInfo, list[str]]:
    bitrate = None
    if packets:
        span = packets[-1].time + packets[-1].duration - packets[0].time
        bitrate = sum(p.size for p in packets) * 8 / span / 1000 if span > 0 else None
    rate = _number(stream.get("sample_rate"))
    info = AudioInfo(
        codec=stream.get("codec_name"),
        profile=stream.get("profile"),
        sample_rate=int(rate) if rate else None,
        channels=stream.get("channels"),
        bitrate_kbps=_round(bitrate, 1),
    )
    return info, _gaps(packets, "audio")


def parse(info: dict[str, Any], *, target: str, live: bool = False) -> Report:
    """The report for ffprobe's JSON of one input (``-show_format -show_streams`` and packets
    with stream_index, pts_time, dts_time, duration_time, size and flags). The first video and
    the first audio stream are the ones reported."""
    streams = info.get("streams", [])
    v = next((s for s in streams if s.get("codec_type") == "video"), None)
    a = next((s for s in streams if s.get("codec_type") == "audio"), None)
    issues: list[str] = []
    video = audio = None
    spans: list[tuple[float, float]] = []
    if v is None:
        issues.append("no video stream")
    else:
        vp = _packets(info, v["index"])
        video, found = _video(v, vp)
        issues += found if vp else ["no video packets"]
        if vp and video.fps:
            spans.append((vp[0].time, vp[-1].time + 1 / video.fps))
    if a is None:
        issues.append("no audio stream")
    else:
        ap = _packets(info, a["index"])
        audio, found = _audio(a, ap)
        issues += found if ap else ["no audio packets"]
        if ap:
            spans.append((ap[0].time, ap[-1].time + ap[-1].duration))
    fmt = info.get("format", {})
    if spans:
        duration = max(e for _, e in spans) - min(s for s, _ in spans)
    else:
        duration = _number(fmt.get("duration"))
    return Report(target, live, fmt.get("format_name"), _round(duration), video, audio, issues=issues)


def summarize_sync(rep: SyncReport) -> tuple[SyncSummary, list[str]]:
    """The lip-sync summary of a testcard measurement, and its issues.

    Onsets and flashes near the edges of what was read are not counted as unmatched: a live
    reader gets audio before the first keyframe, whose picture it never sees; a sound already
    playing when the sample starts looks like an onset; a flash's sound may lie just outside.
    "Near" is the silence an onset needs before it (``ONSET_GAP_SECONDS``).
    """
    edge = ONSET_GAP_SECONDS
    start = max(rep.video_start, rep.audio_start) + edge
    end = min(rep.video_start + rep.video_duration, rep.audio_start + rep.audio_duration) - edge
    paired_onsets, paired_flashes = {a for a, _ in rep.pairs}, {v for _, v in rep.pairs}
    onsets = [t for t in rep.onsets if t not in paired_onsets and start <= t <= end]
    flashes = [t for t in rep.flashes if t not in paired_flashes and start <= t <= end]
    offsets = rep.offsets_ms
    summary = SyncSummary(
        offset_ms=_round(statistics.median(offsets), 1) if offsets else None,
        min_ms=_round(min(offsets), 1) if offsets else None,
        max_ms=_round(max(offsets), 1) if offsets else None,
        pairs=len(rep.pairs),
        unmatched_onsets=len(onsets),
        unmatched_flashes=len(flashes),
    )
    issues = []
    if not rep.pairs:
        issues.append("lip sync: no testcard flash paired with a sound onset (is this the testcard avatar, with speech?)")
    if onsets:
        issues.append(f"lip sync: {len(onsets)} sound onset(s) without a flash, first at {onsets[0]:.3f} s")
    if flashes:
        issues.append(f"lip sync: {len(flashes)} flash(es) without a sound onset, first at {flashes[0]:.3f} s")
    return summary, issues


# -- expectations ------------------------------------------------------------------------------

_SECTIONS = {"video": VideoInfo, "audio": AudioInfo, "sync": SyncSummary}
# Every scalar a --expect may name, and whether it is text (else a number).
KEYS: dict[str, bool] = {
    "container": True,
    "duration": False,
    "issues": False,  # compared as a count
    **{f"{name}.{f.name}": "str" in str(f.type) for name, cls in _SECTIONS.items() for f in dataclasses.fields(cls)},
}


@dataclass(frozen=True)
class Expectation:
    """What one report field should be: equal to a text, or a number within [low, high]."""

    key: str  # one of KEYS
    wanted: str  # how to show what is expected: "h264", "960", "1.8..2.2", "<= 60"
    text: str | None = None  # compared case-insensitively
    low: float | None = None
    high: float | None = None
    optional: bool = False  # not measured (None) is a skip, not a failure: e.g. too short a sample
    source: str = ""  # where it comes from: "preset hd", "--expect"

    def met_by(self, got: Any) -> bool:
        if isinstance(got, list):  # issues
            got = len(got)
        if self.text is not None:
            return str(got).lower() == self.text.lower()
        return isinstance(got, (int, float)) and (self.low is None or got >= self.low) and (self.high is None or got <= self.high)


@dataclass(frozen=True)
class Outcome:
    expectation: Expectation
    got: Any
    ok: bool | None  # None: skipped, nothing measured for an optional expectation

    def describe(self) -> str:
        e = self.expectation
        if self.ok is None:
            return f"{e.key}: not measured (expected {e.wanted})"
        got = "not measured" if self.got is None else _show(self.got)
        return f"{e.key}: {got}" if self.ok else f"{e.key}: expected {e.wanted}, got {got}"


def _show(x: Any) -> str:
    if isinstance(x, list):
        return "; ".join(map(str, x)) or "none"
    return f"{x:g}" if isinstance(x, float) else str(x)


def value(report: Report, key: str) -> Any:
    """The field ``key`` (dotted, one of KEYS) of ``report``; None where not measured."""
    node: Any = report
    for part in key.split("."):
        node = getattr(node, part, None) if node is not None else None
    return node


def evaluate(report: Report, wanted: Iterable[Expectation]) -> list[Outcome]:
    outcomes = []
    for e in wanted:
        got = value(report, e.key)
        outcomes.append(Outcome(e, got, None if got is None and e.optional else got is not None and e.met_by(got)))
    return outcomes


def kbps(rate: str) -> float:
    """A preset's rate (2M, 1500k, 800000) in kbit/s."""
    scale = {"k": 1.0, "K": 1.0, "M": 1000.0}.get(rate[-1])
    return float(rate[:-1]) * scale if scale else float(rate) / 1000


def _bitrate(v: VideoSettings, seconds: float | None, source: str) -> list[Expectation]:
    """What a preset's rate control allows over a sample of ``seconds``.

    Over any stretch of T seconds, an encoder that keeps its VBV model sends rate·T give or take
    one buffer (bufsize) of bits, so the band is rate ± bufsize/T: wide for a short sample,
    narrowing as it grows. On top, 10% for what packet sizes do not show exactly (x264's
    filler, SEI, the rounding of a server's timestamps). CBR must stay inside the band; a capped
    VBR only under its top (a still picture needs few bits); no cap, no check.
    """
    slack = kbps(v.bufsize) / seconds if v.bufsize and seconds else 0.0
    if v.cbr:
        target = kbps(v.bitrate)
        low, high = 0.9 * target - slack, 1.1 * target + slack
        return [Expectation("video.bitrate_kbps", f"{low:.0f}..{high:.0f} (≈{target:g})", low=low, high=high, source=source)]
    if v.maxrate:
        high = 1.1 * kbps(v.maxrate) + slack
        return [Expectation("video.bitrate_kbps", f"<= {high:.0f}", high=high, source=source)]
    return []


def expectations(preset: Preset, seconds: float | None = None, sync: bool = False) -> list[Expectation]:
    """What ``preset`` asks of a stream, ``seconds`` long (for the bit rate's band; see ``_bitrate``).

    Frame rate within 1%, keyframes every GOP within one frame or 10% (the larger), audio as
    set, no issues; with ``sync`` (lip sync was measured), at least one flash paired with its sound and
    every pair within EBU R37. Audio bit rate is not checked: AAC spends fewer bits than asked
    on silence.
    """
    v, a = preset.video, preset.audio
    src = f"preset {preset.name}"
    gop = v.gop / v.fps
    tol = max(1 / v.fps, 0.1 * gop)

    def equal(key: str, want: str | int, **kw: Any) -> Expectation:
        if isinstance(want, str):
            return Expectation(key, want, text=want, source=src, **kw)
        return Expectation(key, str(want), low=want, high=want, source=src, **kw)

    def around(key: str, want: float, by: float, **kw: Any) -> Expectation:
        return Expectation(key, f"{want:g} ±{by:.2g}", low=want - by, high=want + by, source=src, **kw)

    checks = [
        equal("video.codec", "h264"),
        equal("video.width", v.width),
        equal("video.height", v.height),
        equal("video.pix_fmt", "yuv420p"),
        around("video.fps", v.fps, 0.01 * v.fps),
        # Optional: a sample shorter than two GOPs has one keyframe, and the maximum still tells.
        around("video.keyframe_interval", gop, tol, optional=True),
        Expectation("video.keyframe_interval_max", f"<= {gop + tol:.3g}", high=gop + tol, source=src),
        *_bitrate(v, seconds, src),
        equal("audio.codec", "aac"),
        equal("audio.sample_rate", a.sample_rate),
        equal("audio.channels", a.channels),
        # A healthy stream: no gaps in the timestamps, no early end, every flash with its sound.
        Expectation("issues", "none", high=0, source=src),
    ]
    if sync:
        checks += [
            Expectation("sync.pairs", ">= 1", low=1, source=src),
            Expectation("sync.min_ms", f">= {-SYNC_EARLY_MS:g}", low=-SYNC_EARLY_MS, source=src),
            Expectation("sync.max_ms", f"<= {SYNC_LATE_MS:g}", high=SYNC_LATE_MS, source=src),
        ]
    return checks


def check(report: Report, preset: Preset) -> list[Outcome]:
    """``report`` against ``preset``: the bit rate's band set by how much video was read, lip
    sync checked where it was measured."""
    v = report.video
    seconds = v.frames / v.fps if v is not None and v.fps else None
    return evaluate(report, expectations(preset, seconds, sync=report.sync is not None))


_EXPECT = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|=)\s*(\S.*?)\s*$")
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)$")


def parse_expectation(text: str) -> Expectation:
    """``KEY=VALUE``, ``KEY<=NUMBER``, ``KEY>=NUMBER`` or ``KEY=LOW..HIGH`` (either end may be left out).

    A number after ``=`` matches to the precision written: ``video.fps=25`` is met by 24.5 to
    25.5, ``video.fps=29.97`` by 29.965 to 29.975. Text (codecs, pix_fmt) matches regardless of case.
    """
    m = _EXPECT.match(text)
    if not m:
        raise UsageError(f"--expect takes KEY=VALUE, KEY<=N, KEY>=N or preset=NAME, not {text!r}")
    key, op, raw = m.groups()
    if key not in KEYS:
        raise UsageError(f"--expect: unknown key {key!r}; choose from preset, {', '.join(KEYS)}")
    if KEYS[key]:
        if op != "=":
            raise UsageError(f"--expect {key} is text: write {key}=VALUE")
        return Expectation(key, raw, text=raw, source="--expect")
    if op == "<=":
        return Expectation(key, f"<= {raw}", high=_parse_number(key, raw), source="--expect")
    if op == ">=":
        return Expectation(key, f">= {raw}", low=_parse_number(key, raw), source="--expect")
    if ".." in raw:
        lo, _, hi = raw.partition("..")
        low = _parse_number(key, lo) if lo.strip() else None
        high = _parse_number(key, hi) if hi.strip() else None
        return Expectation(key, raw, low=low, high=high, source="--expect")
    number = _parse_number(key, raw)
    decimals = len(raw.strip().partition(".")[2])
    half = 0.5 * 10.0**-decimals
    return Expectation(key, raw, low=number - half, high=number + half, source="--expect")


def _parse_number(key: str, text: str) -> float:
    if not _NUMBER.match(text.strip()):
        raise UsageError(f"--expect {key} needs a number, not {text.strip()!r}")
    return float(text)


# -- running ffprobe and ffmpeg ----------------------------------------------------------------


def find_ffprobe() -> str:
    """ffprobe beside the ffmpeg in use, else on PATH. (The imageio-ffmpeg wheel has none.)"""
    try:
        beside = Path(find_ffmpeg().path).with_name("ffprobe")
        if beside.is_file():
            return str(beside)
    except LinlyPushError:
        pass  # no usable ffmpeg: a file can still be probed with an ffprobe on PATH
    found = shutil.which("ffprobe")
    if found is None:
        raise OutputError("ffprobe not found (the imageio-ffmpeg wheel has none): install ffmpeg's tools (apt install ffmpeg)")
    return found


_PACKET_FIELDS = "packet=stream_index,pts_time,dts_time,duration_time,size,flags"


def _ffprobe(path: Path, seconds: float | None) -> dict[str, Any]:
    argv = [find_ffprobe(), "-v", "error", "-show_format", "-show_streams", "-show_entries", _PACKET_FIELDS, "-of", "json"]
    if seconds:
        argv += ["-read_intervals", f"%+{seconds:g}"]
    try:
        run = subprocess.run([*argv, str(path)], capture_output=True, text=True, errors="replace", env=ffmpeg_env())
    except OSError as exc:
        raise OutputError(f"cannot start ffprobe ({argv[0]}): {exc.strerror or exc}") from None
    if run.returncode != 0:
        line = last_error(ln.replace(f"{path}: ", "") for ln in run.stderr.splitlines())
        raise InputError(f"cannot read {path}: {line or f'ffprobe exited with code {run.returncode}'}")
    return json.loads(run.stdout)


def _is_url(target: str) -> bool:
    return "://" in target


def probe(target: str, *, seconds: float | None = None, sync: bool = False, secrets: Iterable[str] = ()) -> Report:
    """Probe a file (all of it, or its first ``seconds``) or a URL (``seconds`` of it, default
    ``STREAM_SECONDS``); with ``sync``, measure the lip sync of testcard content too.

    ``secrets`` (values of ``${VAR}``s in the URL) are scrubbed from the report and every error,
    on top of the URL's own key, query and password. Raises InputError for a file that is
    missing or undecodable, OutputError for a stream that cannot be read.
    """
    if not _is_url(target):
        path = Path(target)
        if not path.is_file():
            raise InputError(f"{target}: {'a folder, not a file' if path.is_dir() else 'no such file'}")
        return _measured(parse(_ffprobe(path, seconds), target=target), path, sync, seconds)
    hidden = [*secrets, *urls.secrets_of(target)]
    with urls.redacting(hidden), tempfile.TemporaryDirectory(prefix="linly-probe-") as tmp:
        want = seconds or STREAM_SECONDS
        copy = Path(tmp) / "stream.mkv"  # Matroska takes any codec a stream may carry
        container = _record(target, want, copy, hidden)
        report = parse(_ffprobe(copy, None), target=urls.redact(target, hidden), live=True)
        report = dataclasses.replace(report, container=container or report.container)
        if report.duration is not None and report.duration < 0.9 * want:
            ended = f"the stream ended after {report.duration:.1f} s of the {want:g} s asked for"
            report = dataclasses.replace(report, issues=[*report.issues, ended])
        return _measured(report, copy, sync, None)


def _measured(report: Report, path: Path, sync: bool, seconds: float | None) -> Report:
    if not sync:
        return report
    if report.video is None or report.audio is None:
        return dataclasses.replace(report, issues=[*report.issues, "lip sync not measured: it needs both video and audio"])
    summary, issues = summarize_sync(measure(path, seconds=seconds))
    return dataclasses.replace(report, sync=summary, issues=[*report.issues, *issues])


_INPUT = re.compile(r"^\[info\] Input #0, (.+?), from '")
_LEVEL = re.compile(r"^(\[[^\]]+ @ (0x)?[0-9a-fA-F]+\] )?\[(error|fatal)\] ")


def _record(url: str, seconds: float, dest: Path, secrets: list[str]) -> str | None:
    """Copy ``seconds`` of the stream at ``url`` into ``dest``; the input's container name."""
    binary = find_ffmpeg().path
    argv = [
        binary, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info",
        "-rw_timeout", str(READ_TIMEOUT_US), "-i", url, "-t", f"{seconds:g}", "-c", "copy", "-y", str(dest),
    ]  # fmt: skip
    # Joining waits for a keyframe and probing reads a couple of seconds: allow for both, then more.
    limit = seconds + READ_TIMEOUT_US / 1e6 + 20
    started = time.monotonic()
    shown = urls.redact(url, secrets)
    try:
        run = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=limit, env=ffmpeg_env())
    except subprocess.TimeoutExpired:  # subprocess.run killed it
        raise OutputError(f"reading {shown} did not finish within {limit:g} s; stopped") from None
    except OSError as exc:
        raise OutputError(f"cannot start ffmpeg ({binary}): {exc}") from None
    lines = run.stderr.splitlines()
    if run.returncode != 0 or not dest.is_file() or dest.stat().st_size == 0:
        errors = [_LEVEL.sub("", ln).replace(f"{url}: ", "") for ln in lines if _LEVEL.match(ln)]
        line = last_error(errors) or f"ffmpeg exited with code {run.returncode}"
        waited = time.monotonic() - started >= READ_TIMEOUT_US / 1e6
        raise OutputError(urls.redact(f"cannot read {url}: {line} ({_read_hint(run.stderr, url, waited)})", secrets))
    return next((m.group(1) for ln in lines if (m := _INPUT.match(ln))), None)


def _read_hint(text: str, url: str, waited: bool) -> str:
    if waited and "Input/output error" in text:
        return f"nothing arrived for {READ_TIMEOUT_US / 1e6:g} s: is anything publishing to {urls.mask(url)}?"
    if any(s in text for s in ("Input/output error", "reset by peer", "Broken pipe")):
        return "the server closed the connection: check the application and stream names"
    return hint(text, url) or "check the URL"
