"""ffmpeg's command line, built by pure functions: no process runs here.

ffmpeg-python builds the input/output graph (``build_argv``, ``check_argv``); the rest is what it
cannot say: the encoder settings, each destination's container, and the tee muxer's list with
its escaping and the fifo in front of each URL of a fan-out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ffmpeg as ffmpeg_python

from .. import urls
from ..errors import UsageError
from ..presets import AudioSettings, VideoSettings, WhipSettings

# File outputs: extension -> muxer. MP4 and MOV get +faststart (index moved to the front).
FILE_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".flv": "flv", ".ts": "mpegts"}
LIVE_TIMEOUT_US = 5_000_000  # a server that stops reading fails the write after 5 s, not never
FIFO_SECONDS = 2  # fan-out: how far (in packets) a destination may fall behind before some are dropped
AAC_FRAME = 1024  # samples per AAC packet
RECORD_CLUSTER_MS = 1000
OPUS_RATE = 48000  # the only rate WebRTC's Opus is signalled at
# Containers that hold Opus as ffmpeg writes them (and players read them back).
OPUS_CONTAINERS = frozenset({"matroska", "mp4", "mpegts"})


@dataclass(frozen=True)
class Encode:
    """What one ffmpeg encodes for all its destinations: the video once, the audio once per codec.

    RTMP and SRT take AAC, WHIP takes Opus; a recording takes AAC when it is encoded anyway,
    else Opus where its container holds it. With a WHIP destination the one video encode is
    WebRTC's (constrained baseline, no B-frames, ``[whip]``'s keyframe interval) for every
    destination: a second x264 encode would cost more than the whole rest of the pipeline.
    """

    webrtc: bool  # a WHIP destination is among them
    audio: tuple[str, ...]  # the audio codecs, in stream order: "aac", "opus"
    cbr: bool  # pad the video to a constant rate: only where RTMP or SRT (platforms) take it

    def audio_stream(self, target: str) -> int:
        """Which of the audio streams ``target`` gets."""
        kind = urls.kind(target)
        if kind == "whip":
            want = "opus"
        elif kind == "file" and "aac" not in self.audio and _file_muxer(target) in OPUS_CONTAINERS:
            want = "opus"
        else:
            want = "aac"
        return self.audio.index(want)


def plan(outputs: Sequence[str], video: VideoSettings) -> Encode:
    """The encodes ``outputs`` need (see ``Encode``)."""
    kinds = [urls.kind(o) for o in outputs]
    webrtc = "whip" in kinds
    codecs = ["opus"] if webrtc else []
    pushes_aac = any(k in ("rtmp", "srt") for k in kinds)
    files_aac = any(k == "file" and (not webrtc or _file_muxer(o) not in OPUS_CONTAINERS) for k, o in zip(kinds, outputs))
    if pushes_aac or files_aac:
        codecs.insert(0, "aac")
    cbr = video.cbr and (not webrtc or pushes_aac or any(k == "file" for k in kinds))
    return Encode(webrtc=webrtc, audio=tuple(codecs), cbr=cbr)


def encode_options(
    video: VideoSettings, audio: AudioSettings, encode: Encode | None = None, whip: WhipSettings | None = None,
) -> dict[str, object]:
    """The encoders and their settings, as ffmpeg output options (per audio stream where there
    are two). By default one AAC stream, as for RTMP."""
    encode = encode or Encode(webrtc=False, audio=("aac",), cbr=video.cbr)
    whip = whip or WhipSettings()
    gop = max(1, round(whip.gop_seconds * video.fps)) if encode.webrtc else video.gop
    opts: dict[str, object] = {
        "c:v": "libx264",
        "preset": video.x264_preset,
        "pix_fmt": "yuv420p",
        "b:v": video.bitrate,
        "g": gop,
        "keyint_min": min(video.fps, gop),
        "sc_threshold": 0,  # keyframes only on the GOP grid, as platforms expect
    }
    if encode.webrtc:
        # Browsers decode constrained baseline everywhere; B-frames would also reorder frames
        # that WebRTC sends in the order they are shown.
        opts.update({"profile:v": "baseline", "bf": 0})
    if video.tune:
        opts["tune"] = video.tune
    if video.maxrate:
        opts["maxrate"] = video.maxrate
    if video.bufsize:
        opts["bufsize"] = video.bufsize
    if encode.cbr:
        opts["x264-params"] = "nal-hrd=cbr"  # filler keeps the rate flat; needs maxrate and bufsize
    for i, codec in enumerate(encode.audio):
        one = len(encode.audio) == 1
        a, per = ("a", "") if one else (f"a:{i}", f":a:{i}")
        if codec == "aac":
            settings: dict[str, object] = {"c": "aac", "aac_coder": audio.aac_coder, "b": audio.bitrate,
                                           "ar": audio.sample_rate, "ac": audio.channels}
        else:  # Opus in WebRTC is 48 kHz stereo; ffmpeg resamples our rate to it
            settings = {"c": "libopus", "b": whip.opus_bitrate, "ar": OPUS_RATE, "ac": 2}
        for key, value in settings.items():
            opts[f"{key}:{a}" if key in ("c", "b") else f"{key}{per}"] = value
    return opts


# Every line of ffmpeg's log carries its level ("[error]"): the sink keeps warnings and errors for
# people, and reads the fifo's verbose notes on reconnecting destinations (see ``Watch``).
LOG_LEVEL = "level+verbose"


def build_argv(
    ffmpeg: str,
    video: VideoSettings,
    audio: AudioSettings,
    output: str | Sequence[str],
    *,
    video_fd: int,
    audio_fd: int,
    whip: WhipSettings | None = None,
    token: str | None = None,
) -> list[str]:
    """The ffmpeg command line reading raw video from ``video_fd`` and audio from ``audio_fd``.

    ``output`` is one destination (a file, an rtmp/rtmps/srt URL or a WHIP endpoint) or several:
    several are fed from one encode (``plan``) through the tee muxer (see ``tee_spec``).
    ``whip`` sets what a WHIP endpoint gets, and ``token`` is its bearer token.
    Raw inputs carry no timestamps: frame n is at n/fps and audio at its sample count, both from 0,
    so the stream stays in sync exactly as long as we feed audio and frames in step.
    Progress comes as key=value lines on stdout; the log, each line with its level, on stderr.
    """
    outputs = destinations(output)
    raw = {"probesize": 32, "analyzeduration": 0}  # raw needs no probing; probing would stall
    # Frames come as BT.709 limited range (linly_push.video). Tagged on the input, so the tags
    # reach the encoder on every ffmpeg (9.x drops output-side primaries and transfer).
    bt709 = {"colorspace": "bt709", "color_primaries": "bt709", "color_trc": "bt709", "color_range": "tv"}
    v_in = ffmpeg_python.input(
        f"pipe:{video_fd}",
        f="rawvideo",
        pix_fmt="yuv420p",
        s=f"{video.width}x{video.height}",
        r=video.fps,
        **bt709,
        **raw,
    )
    layout = "mono" if audio.channels == 1 else "stereo"  # -ac alone makes ffmpeg guess, and warn
    a_in = ffmpeg_python.input(f"pipe:{audio_fd}", f="s16le", ar=audio.sample_rate, ch_layout=layout, **raw)
    encode = plan(outputs, video)
    opts = encode_options(video, audio, encode, whip)
    if len(outputs) == 1:
        target = outputs[0]
        opts.update(_muxer_options(target, token))
    else:
        # MP4, MKV and FLV want the codec headers out of band; the tee hands one encode to all.
        opts.update(f="tee", flags="+global_header")
        target = tee_spec(outputs, video, audio, token=token)
    out = ffmpeg_python.output(v_in.video, *[a_in.audio] * len(encode.audio), target, **opts)
    head = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", LOG_LEVEL, "-nostats", "-progress", "pipe:1"]
    files = any(urls.kind(o) == "file" for o in outputs)
    return head + (["-y"] if files else []) + ffmpeg_python.get_args(out)


def check_argv(
    ffmpeg: str, video: VideoSettings, audio: AudioSettings, outputs: Sequence[str] = (), whip: WhipSettings | None = None,
) -> list[str]:
    """A dry run of the encoders ``outputs`` need (by default, RTMP's) with ``video`` and
    ``audio``: a few frames of a test pattern and silence, encoded and thrown away (``-f null``)."""
    size, layout = f"{video.width}x{video.height}", "mono" if audio.channels == 1 else "stereo"
    encode = plan(outputs, video) if outputs else None
    v_in = ffmpeg_python.input(f"color=black:s={size}:r={video.fps}", f="lavfi")
    a_in = ffmpeg_python.input(f"anullsrc=r={audio.sample_rate}:cl={layout}", f="lavfi")
    streams = [a_in.audio] * (len(encode.audio) if encode else 1)
    out = ffmpeg_python.output(v_in.video, *streams, "-", f="null", t=0.2, **encode_options(video, audio, encode, whip))
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "level+error", "-nostats", *ffmpeg_python.get_args(out)]


def destinations(output: str | Sequence[str]) -> tuple[str, ...]:
    """``output`` as a tuple of destinations, each checked: a known scheme or file extension, none twice."""
    outputs = (output,) if isinstance(output, str) else tuple(output)
    if not outputs:
        raise UsageError("no output given")
    for i, target in enumerate(outputs):
        _muxer_options(target)
        if target in outputs[:i]:
            raise UsageError(f"{urls.mask(target)!r} is given twice as an output")
    return outputs


def _file_muxer(target: str) -> str:
    ext = Path(target).suffix.lower()
    if ext not in FILE_FORMATS:
        raise UsageError(f"cannot tell the container of {target!r}: use one of {', '.join(FILE_FORMATS)}")
    return FILE_FORMATS[ext]


def _muxer_options(target: str, token: str | None = None) -> dict[str, object]:
    """The container and its options for one destination; ``token`` is a WHIP endpoint's."""
    kind = urls.kind(target)
    if kind == "rtmp":
        return {"f": "flv", "flvflags": "no_duration_filesize", "rw_timeout": LIVE_TIMEOUT_US}
    if kind == "srt":
        return {"f": "mpegts", "rw_timeout": LIVE_TIMEOUT_US}
    if kind == "whip":
        return {"f": "whip", **({"authorization": token} if token else {})}
    muxer = _file_muxer(target)
    return {"f": muxer, "movflags": "+faststart"} if muxer in ("mp4", "mov") else {"f": muxer}


# The tee muxer parses its argument twice: the list is split at '|' (av_get_token: backslash
# escapes, single quotes), then each "[key=value:...]" list is split at ':' and ']' the same way;
# the file name after ']' is not unescaped again. fifo_options is split a third time, at ':'.
_LIST_SPECIAL = "\\'|"
_OPTION_SPECIAL = "\\':]"


def _escape(text: str, special: str) -> str:
    return "".join(f"\\{c}" if c in special or c.isspace() else c for c in text)


def fifo_options(video: VideoSettings, audio: AudioSettings) -> dict[str, object]:
    """The fifo in front of each destination of a fan-out: it reconnects every second, dropping
    what it cannot send meanwhile (restarting on a keyframe), and holds ``FIFO_SECONDS`` of packets.

    A small queue also keeps the end short: after EOF, a fifo whose destination is down drops
    its queue at about 100 packets a second between connection attempts.
    """
    packets_per_second = video.fps + audio.sample_rate / AAC_FRAME
    return {
        "attempt_recovery": 1,
        "recover_any_error": 1,
        "recovery_wait_time": 1,
        "restart_with_keyframe": 1,
        "drop_pkts_on_overflow": 1,
        "queue_size": math.ceil(FIFO_SECONDS * packets_per_second),
    }


def tee_slave(target: str, options: dict[str, object]) -> str:
    """One entry of a tee list, escaped: ``[key=value:...]target``."""
    listed = ":".join(f"{key}={_escape(str(value), _OPTION_SPECIAL)}" for key, value in options.items())
    return _escape(f"[{listed}]{target}", _LIST_SPECIAL)


def tee_order(outputs: Sequence[str]) -> list[str]:
    """The tee's outputs in the order it numbers them: files first, then URLs, each as given."""
    return sorted(outputs, key=lambda t: urls.kind(t) != "file")


def tee_spec(outputs: Sequence[str], video: VideoSettings, audio: AudioSettings, *, token: str | None = None) -> str:
    """The tee muxer's argument for several destinations: files first, then URLs, each in order.

    At the end ffmpeg closes them in that order, so the recordings are complete even while a
    stalled destination is still timing out.

    - Two or more URLs: each behind its own fifo with ``onfail=ignore``: one that fails or
      stalls (``rw_timeout``) is retried every second while the others go on.
    - One URL: ``onfail=abort``, no fifo: losing it ends ffmpeg (exit code not 0), so the caller
      can restart and resume. (ffmpeg 5.1 carries on without a failed output, at its opening or
      later, unless onfail=abort is written out.)
    - Files: ``onfail=ignore`` beside any URL (a full disk does not end the broadcast: ``Watch``
      reports it), else ``onfail=abort``.
    - With two audio encodes (AAC and Opus, see ``plan``), each takes the video and its own audio.
    """
    live = [t for t in outputs if urls.kind(t) != "file"]
    fifo = ":".join(f"{k}={v}" for k, v in fifo_options(video, audio).items())
    encode = plan(outputs, video)
    slaves = []
    for target in tee_order(outputs):
        muxer = _muxer_options(target, token)
        options: dict[str, object] = {"f": muxer.pop("f")}
        if len(encode.audio) > 1:
            options["select"] = f"v,a:{encode.audio_stream(target)}"
        if urls.kind(target) == "file":
            options["onfail"] = "ignore" if live else "abort"
            if live and options["f"] == "matroska":
                # A cluster a second, not five: a full disk shows within a second, and a crash
                # loses at most that much of the recording.
                options["cluster_time_limit"] = RECORD_CLUSTER_MS
        elif len(live) == 1:
            options["onfail"] = "abort"
        else:
            options.update(onfail="ignore", use_fifo=1, fifo_options=fifo)
        options.update(muxer)  # the tee (or the fifo) hands rw_timeout to the connection, the rest to the muxer
        slaves.append(tee_slave(target, options))
    return "|".join(slaves)
