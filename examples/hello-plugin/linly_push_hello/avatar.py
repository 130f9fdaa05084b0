"""``hello``: a calm solid-colour card with two eyes and a mouth bar that opens with loudness.

The pattern to copy: render everything once in ``__init__`` (here one whole yuv420p frame per
mouth opening), then ``draw`` only measures the audio and returns a cached buffer, well under a
millisecond a frame. Cached buffers are returned again and again, so they are never modified.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageColor, ImageDraw
from pydantic import field_validator

from linly_push.backends.base import Avatar, BackendOptions
from linly_push.timeline import FrameContext
from linly_push.media import VideoFormat
from linly_push.video import rgb_to_yuv420p

LEVELS = 8  # mouth openings drawn in advance, closed (0) to wide open (LEVELS - 1)
QUIET_DB, LOUD_DB = -50.0, -12.0  # RMS loudness mapped onto closed .. wide open
RELEASE = 0.6  # per frame, how much of the last opening remains when it gets quieter (calm closing)


class HelloAvatar(Avatar):
    name = "hello"
    description = "a solid-colour card whose mouth bar follows loudness (example plugin)"

    class Options(BackendOptions):  # extra="forbid": `--set avatar.colur=...` is a usage error
        colour: str = "#2f5d8a"  # background: any colour Pillow knows, "#rrggbb" or a name
        mouth: str = "#1a1a1a"

        @field_validator("colour", "mouth")
        @classmethod
        def _known_colour(cls, value: str) -> str:
            try:
                ImageColor.getrgb(value)
            except ValueError:  # becomes "hello: bad value for avatar.colour: ..." (exit 2)
                raise ValueError(f"unknown colour {value!r}; use #rrggbb or a name like 'teal'") from None
            return value

    options: Options

    def __init__(self, video: VideoFormat, options: Options) -> None:
        super().__init__(video, options)
        self._frames = [_render(video, options, level) for level in range(LEVELS)]
        self._open = 0.0  # smoothed opening, 0..1; draw() is called once per frame, in order

    def draw(self, ctx: FrameContext) -> np.ndarray:
        samples = ctx.audio()  # mono float32 around this frame's instant (half a frame either side)
        rms = float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0
        db = 20.0 * np.log10(max(rms, 1e-9))
        target = min(1.0, max(0.0, (db - QUIET_DB) / (LOUD_DB - QUIET_DB)))
        self._open = max(target, self._open * RELEASE)  # open at once, close gently
        return self._frames[round(self._open * (LEVELS - 1))]


def _render(video: VideoFormat, options: HelloAvatar.Options, level: int) -> np.ndarray:
    """The whole frame with the mouth at ``level``, as one flat yuv420p buffer."""
    w, h = video.width, video.height  # even: yuv420p needs that, and presets guarantee it
    img = Image.new("RGB", (w, h), ImageColor.getrgb(options.colour))
    d = ImageDraw.Draw(img)
    eye = max(1, h // 24)
    for x in (0.4 * w, 0.6 * w):
        d.ellipse((x - eye, 0.4 * h - eye, x + eye, 0.4 * h + eye), fill="white")
    mouth_w = 0.2 * w
    mouth_h = max(2.0, 0.02 * h + 0.16 * h * level / (LEVELS - 1))
    cx, cy = w / 2, 0.65 * h
    d.rounded_rectangle(
        (cx - mouth_w / 2, cy - mouth_h / 2, cx + mouth_w / 2, cy + mouth_h / 2),
        radius=min(mouth_h, mouth_w) / 2,
        fill=ImageColor.getrgb(options.mouth),
    )
    return rgb_to_yuv420p(np.asarray(img))
