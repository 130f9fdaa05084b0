"""The loop avatar: pre-recorded clips of a presenter, one while quiet (``avatar.idle``) and one
while speaking (``avatar.talk``), chosen frame by frame from speech activity and crossfaded.

Each clip is decoded once at start-up by ffmpeg to raw yuv420p at the stream's size and frame
rate and kept in memory. The stretch of it that loops best is kept (``loop_points``: where the
clip comes back closest to how it looked), its seam blended in advance; a frame is then a
stored buffer, handed out as is, or a blend of two while switching.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np
from PIL import ImageColor
from pydantic import Field

from ...errors import InputError, Interrupted, UsageError
from ...ffmpeg import find_ffmpeg, last_error
from ...limits import ffmpeg_env
from ...media import VideoFormat
from ...timeline import FrameContext
from ..base import Avatar, BackendOptions, Colour
from .visemes import Loudness, Viseme, rms_db, viseme_at

MAX_BYTES = 3 * 2**29  # 1.5 GiB of decoded frames for both clips together
AUDIBLE_DB = -50.0  # speech audio above this counts as speaking (the loudness gate of visemes)
Fit = Literal["cover", "contain"]


class LoopOptions(BackendOptions):
    idle: str = Field(examples=["clip.mp4"])  # the clip shown while quiet
    talk: str | None = None  # the clip shown while speaking; the idle clip if not given
    crossfade: float = Field(0.25, ge=0.0, le=2.0)  # seconds to blend from one clip to the other
    hold: float = Field(0.3, ge=0.0, le=5.0)  # seconds talk stays on after speech stops: no flip between words
    seam: float = Field(0.5, ge=0.0, le=5.0)  # seconds of each clip's end blended into its start
    # The loop is chosen where the clip matches itself best, at least this share of it long.
    min_loop: float = Field(0.6, ge=0.1, le=1.0)
    fit: Fit = "cover"  # cover: fill the frame, cropping; contain: show all of it, with borders
    background: Colour = "black"  # the colour of the borders with fit=contain



def video_filter(video: VideoFormat, fit: Fit, background: str) -> str:
    """The ffmpeg filter chain that turns any clip into the stream's frames: its rate, its size
    (cropped or bordered), BT.709 limited range like every other avatar's frames."""
    w, h = video.width, video.height
    mode = "increase" if fit == "cover" else "decrease"
    scale = (
        f"scale={w}:{h}:force_original_aspect_ratio={mode}:force_divisible_by=2"
        ":out_color_matrix=bt709:out_range=tv"
    )
    if fit == "cover":
        place = f"crop={w}:{h}"
    else:
        r, g, b = ImageColor.getrgb(background)[:3]
        place = f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=0x{r:02x}{g:02x}{b:02x}"
    return f"fps={video.fps},{scale},{place},format=yuv420p"


def decode(ffmpeg: str, path: Path, video: VideoFormat, fit: Fit, background: str, budget: int) -> list[np.ndarray]:
    """Every frame of the clip at ``path`` as a read-only yuv420p buffer.

    InputError when ffmpeg cannot read it or it has no video; UsageError once its frames would
    take more than ``budget`` bytes (the check runs while decoding, so a huge clip stops early).
    """
    argv = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",  # -nostdin: the script may be on stdin
        "-i", str(path), "-map", "0:v:0", "-an", "-sn", "-dn",
        "-vf", video_filter(video, fit, background), "-f", "rawvideo", "pipe:1",
    ]  # fmt: skip
    frames: list[np.ndarray] = []
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a broken clip's errors can be long
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, env=ffmpeg_env())
        assert proc.stdout is not None
        try:
            while (frame := _read_frame(proc.stdout, video.frame_bytes)) is not None:
                if (len(frames) + 1) * video.frame_bytes > budget:
                    gib, seconds = budget / 2**30, budget / video.frame_bytes / video.fps
                    raise UsageError(
                        f"loop: {path} does not fit in memory at {video.width}x{video.height}: the clips may"
                        f" hold {gib:.1f} GiB of frames here (about {seconds:.0f} s);"
                        " use a shorter clip or a lower resolution"
                    )
                frames.append(frame)
        except BaseException:  # too long, or interrupted: stop decoding now
            proc.kill()
            raise
        finally:
            proc.stdout.close()
            rc = proc.wait()
        if rc != 0:
            errors.seek(0)
            said = errors.read(64 * 1024).decode(errors="replace")
            if rc < 0 or rc == 255:  # ffmpeg's exit after a signal: Ctrl-C or SIGTERM reached it too
                raise Interrupted(f"loop: stopped while decoding {path}")
            raise InputError(f"loop: cannot read {path}: {_reason(said, path)}")
    if not frames:
        raise InputError(f"loop: {path} has no video frames")
    return frames


def _read_frame(pipe: IO[bytes], size: int) -> np.ndarray | None:
    """One frame from ffmpeg's output, or None at its end (a partial last frame is dropped)."""
    frame = np.empty(size, np.uint8)
    view, got = memoryview(frame), 0
    while got < size:
        n = pipe.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            return None
        got += n
    frame.flags.writeable = False  # handed to the sink as is, again and again
    return frame


def _reason(said: str, path: Path) -> str:
    """What ffmpeg said was wrong with the clip, in one short line."""
    if "matches no streams" in said:
        return "it has no video"
    line = last_error(said.splitlines()) or "ffmpeg could not decode it"
    return line.removeprefix(f"{path}: ")[:200]


def blend(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """(1 - t)·a + t·b for two yuv420p frames, rounded, in integer arithmetic (weights in 1/256)."""
    w = round(t * 256)
    out = a.astype(np.uint16)
    out *= 256 - w
    out += b.astype(np.uint16) * np.uint16(w)
    out += 128
    out >>= 8
    return out.astype(np.uint8)


THUMB_WIDTH = 32  # frames are compared as grey copies about this wide


def thumbnails(frames: list[np.ndarray], video: VideoFormat) -> np.ndarray:
    """Small grey copies of yuv420p ``frames``, one row each (float32): what ``loop_points``
    compares. Block means of the luma plane, so noise and compression detail count little."""
    w, h = video.width, video.height
    f = max(1, w // THUMB_WIDTH)
    tw, th = w // f, h // f
    out = np.empty((len(frames), th * tw), np.float32)
    for i, frame in enumerate(frames):
        y = frame[: w * h].reshape(h, w)[: th * f, : tw * f].astype(np.float32)
        out[i] = y.reshape(th, f, tw, f).mean(axis=(1, 3)).ravel()
    return out


def loop_points(thumbs: np.ndarray, seam: int, shortest: int) -> tuple[int, int]:
    """Where a clip loops best: (start, end), the loop being frames start..end-1 and then start
    again, chosen so that the jump back is a step the clip could have taken itself.

    The frame that follows the loop's last in the clip (``end``) should look like the loop's
    first (``start``), and the one before each alike, so that motion carries on too. Distances
    are mean squared differences of ``thumbs`` (``thumbnails``). The ``seam`` frames from
    ``end`` on must exist (``seamless`` blends them into the loop's start); the loop is at
    least ``shortest`` frames; of loops that match equally well, the longer. A clip too short
    for any choice loops whole, less its seam, as it is.
    """
    n = len(thumbs)
    last = n - max(seam, 1)  # the latest ``end``: a real frame, with the seam's frames after it
    if last - shortest < 0:
        return 0, max(1, n - seam)
    sq = np.einsum("ij,ij->i", thumbs, thumbs)
    d = (sq[:, None] + sq[None, :] - 2.0 * (thumbs @ thumbs.T)) / thumbs.shape[1]  # d[i, j]
    d = np.maximum(d, 0.0)
    starts = np.arange(0, last - shortest + 1)
    ends = np.arange(shortest, last + 1)
    cost = d[np.ix_(starts, ends)]
    # The frames before: for start 0 there is none, so its own match counts twice.
    before = np.where(starts[:, None] > 0, d[np.ix_(np.maximum(starts - 1, 0), ends - 1)], cost)
    cost = cost + before
    length = ends[None, :] - starts[:, None]
    cost = np.where(length >= shortest, cost, np.inf)
    # Equal matches (a still clip): the longest loop, so it repeats as seldom as possible.
    cost = cost + 1e-6 * (n - length)
    i, j = np.unravel_index(np.argmin(cost), cost.shape)
    return int(starts[i]), int(ends[j])


def seamless(frames: list[np.ndarray], seam: int) -> list[np.ndarray]:
    """The clip as a loop that plays on without a jump: the last ``seam`` frames crossfade into
    the first ones, so the loop is ``seam`` frames shorter.

    A crossfade rather than ping-pong (forwards then backwards): played backwards, a person's
    gestures, blinks and breathing look wrong and every reversal shows; blended, motion always
    runs forwards and only a brief soft dissolve marks the seam. Computed once, here.
    """
    seam = min(seam, len(frames) // 2)
    if seam == 0:
        return frames
    n = len(frames) - seam
    head = []
    for k in range(seam):  # frame n + k (the end) fades into frame k (the start)
        frame = blend(frames[n + k], frames[k], (k + 1) / (seam + 1))
        frame.flags.writeable = False
        head.append(frame)
    return head + frames[seam:n]


@dataclass(frozen=True)
class Clip:
    frames: list[np.ndarray]  # the loop, seam blended in; read-only yuv420p buffers

    def at(self, index: int) -> np.ndarray:
        return self.frames[index % len(self.frames)]


class LoopAvatar(Avatar):
    name = "loop"
    description = "pre-recorded clips of a presenter (avatar.idle, avatar.talk), switched by speech with a crossfade"
    Options = LoopOptions

    def __init__(self, video: VideoFormat, options: BackendOptions) -> None:
        super().__init__(video, options)
        assert isinstance(options, LoopOptions)
        o = options
        ffmpeg, fps = find_ffmpeg().path, video.fps
        loaded: dict[Path, Clip] = {}

        def load(which: str, name: str) -> Clip:
            path = Path(name).expanduser()
            if not path.is_file():
                problem = "is not a file" if path.exists() else "not found"
                raise InputError(f"loop: avatar.{which} clip {path} {problem}")
            # Resolved, so a name like "http:x" or "-x" is read as a file, not a protocol or a flag.
            key = path.resolve()
            if key not in loaded:  # the same clip twice is decoded once
                budget = MAX_BYTES - sum(len(c.frames) for c in loaded.values()) * video.frame_bytes
                frames = decode(ffmpeg, key, video, o.fit, o.background, budget)
                seam = round(o.seam * fps)
                seam = min(seam, len(frames) // 2)
                shortest = max(1, round(o.min_loop * (len(frames) - seam)))  # of the longest loop there can be
                start, end = loop_points(thumbnails(frames, video), seam, shortest)
                loaded[key] = Clip(seamless(frames[start : end + seam], seam))
            return loaded[key]

        self._idle = load("idle", o.idle)
        self._talk = load("talk", o.talk or o.idle)
        self._steps = max(1, round(o.crossfade * fps))  # frames a switch takes; 1: a cut
        self._hold = round(o.hold * fps)
        self._loudness = Loudness(fps)
        self._mix = 0  # 0 shows idle, _steps talk, in between a blend
        self._last_active: int | None = None  # the last frame with speech
        self._last: int | None = None  # the last frame drawn

    def draw(self, ctx: FrameContext) -> np.ndarray:
        n = ctx.index
        # Frames skipped (live, drawing behind) still count towards the crossfade and the hold.
        step = n - self._last if self._last is not None and n > self._last else 1
        self._last = n
        if self._speaking(ctx):
            self._last_active = n
        talking = self._last_active is not None and n - self._last_active <= self._hold
        self._mix = min(self._steps, self._mix + step) if talking else max(0, self._mix - step)
        # Both clips run on the stream's clock, whichever is shown: a frame depends only on its
        # index and the mix, and a switch lands wherever the talk clip is, which suits a talk
        # clip that is speech all through (restarting it would replay its lead-in every time).
        idle, talk = self._idle.at(n), self._talk.at(n)
        if self._mix == 0 or idle is talk:
            return idle
        if self._mix == self._steps:
            return talk
        return blend(idle, talk, self._mix / self._steps)

    def _speaking(self, ctx: FrameContext) -> bool:
        """A mouth shape other than rest, or audible audio in a sentence (between its marks)."""
        if viseme_at(ctx, self._loudness) is not Viseme.REST:  # called every frame: Loudness tracks levels
            return True
        placed = ctx.placed
        return placed is not None and placed.segment.kind == "speech" and rms_db(ctx.audio()) >= AUDIBLE_DB
