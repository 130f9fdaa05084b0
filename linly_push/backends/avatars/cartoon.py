"""The default avatar: a friendly 2D presenter, drawn once with Pillow and composed with numpy.

Everything that can appear on screen is pre-rendered at start-up, anti-aliased (drawn at 4x and
downscaled) and converted to yuv420p: the studio background, the body, the head, and small
patches of the face for each eye state and each mouth shape, cut from the same drawing so they
fit without seams. A frame is the background with body and head pasted at even pixel
offsets (chroma is subsampled 2x2) and two patches copied over them: a few numpy copies, and
composed frames are kept in bounded LRU caches.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any

import numpy as np
from PIL import Image, ImageColor, ImageDraw
from pydantic import Field

from ...media import VideoFormat
from ...timeline import FrameContext
from ...video import even, planes, rgb_to_yuv420p, rgb_to_yuv_planes
from ..base import Avatar, BackendOptions, Colour
from .gestures import Schedule, blink_gap
from .visemes import Loudness, Viseme, viseme_at

RGB = tuple[int, int, int]
Point = tuple[float, float]

_SS = 4  # supersampling factor for anti-aliasing
_MARGIN = 4  # final pixels drawn around every sprite so the downscale filter sees its neighbours
_CACHE_BYTES = 150 * 2**20


class CartoonOptions(BackendOptions):
    background: Colour = "#2d5a78"  # studio backdrop; the gradient and lights are made from it
    skin: Colour = "#f3c9a6"
    hair: Colour = "#3b2a22"
    shirt: Colour = "#d4634b"  # the jacket; the shirt under it stays white
    blink_interval: float = Field(4.0, ge=1.0, le=30.0)  # mean seconds between blinks
    seed: int = 0  # blinks, glances and sway phases are drawn from it
    head_motion: float = Field(1.0, ge=0.0, le=3.0)  # 0 keeps the presenter still



class Eyes(Enum):
    OPEN = 0
    LEFT = 1  # open, glancing to the viewer's left
    RIGHT = 2
    HALF = 3  # mid-blink
    CLOSED = 4


# ---------------------------------------------------------------------------------------------
# Drawing, in face units: the face is 1 tall, (0, 0) is its centre, y grows downwards.


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


_WHITE: RGB = (255, 255, 255)
_BLACK: RGB = (0, 0, 0)


@dataclass(frozen=True)
class _Palette:
    skin: RGB
    hair: RGB
    shirt: RGB
    background: RGB

    @property
    def skin_shade(self) -> RGB:
        return _mix(self.skin, (120, 50, 40), 0.22)

    @property
    def line(self) -> RGB:  # lashes and closed eyes
        return _mix(self.hair, _BLACK, 0.45)


_IRIS: RGB = (92, 62, 44)
_PUPIL: RGB = (28, 20, 16)
_SCLERA: RGB = (252, 250, 247)
_MOUTH: RGB = (84, 28, 38)
_LIP: RGB = (196, 96, 96)
_TEETH: RGB = (252, 251, 246)
_TONGUE: RGB = (226, 122, 128)
_BLUSH: RGB = (240, 120, 120)
_SHIRT_WHITE: RGB = (244, 243, 238)


class _Pen:
    """A supersampled RGBA canvas addressed in face units."""

    def __init__(self, size: tuple[int, int], scale: float, origin: Point) -> None:
        self.im = Image.new("RGBA", size, (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.im)
        self.k = scale  # canvas pixels per face unit
        self.origin = origin  # canvas position of the face centre

    def p(self, x: float, y: float) -> Point:
        return (self.origin[0] + x * self.k, self.origin[1] + y * self.k)

    def polygon(self, pts: Sequence[Point], fill: RGB) -> None:
        self.draw.polygon([self.p(x, y) for x, y in pts], fill=fill)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, fill: RGB) -> None:
        (x0, y0), (x1, y1) = self.p(cx - rx, cy - ry), self.p(cx + rx, cy + ry)
        self.draw.ellipse((x0, y0, x1, y1), fill=fill)

    def stroke(self, pts: Sequence[Point], width: float, fill: RGB) -> None:
        """A polyline with round caps (its points are close enough that joints need no rounding)."""
        w = max(1, round(width * self.k))
        self.draw.line([self.p(x, y) for x, y in pts], fill=fill, width=w)
        for x, y in (pts[0], pts[-1]):
            self.ellipse(x, y, width / 2, width / 2, fill)

    def glow(self, cx: float, cy: float, rx: float, ry: float, rgb: RGB, alpha: float) -> None:
        """A soft-edged spot (blush, shadows): exact wherever it is drawn, unlike a blur."""
        x0, y0 = (int(v) for v in self.p(cx - rx, cy - ry))
        x1, y1 = (int(v) + 1 for v in self.p(cx + rx, cy + ry))
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, self.im.width), min(y1, self.im.height)
        if x0 >= x1 or y0 >= y1:
            return
        ox, oy = self.p(cx, cy)
        xs = (np.arange(x0, x1) + 0.5 - ox) / (rx * self.k)
        ys = (np.arange(y0, y1) + 0.5 - oy) / (ry * self.k)
        r = np.sqrt(xs[None, :] ** 2 + ys[:, None] ** 2)
        t = np.clip(1.0 - r, 0.0, 1.0)
        a = alpha * t * t * (3 - 2 * t)
        spot = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
        spot[..., :3] = rgb
        spot[..., 3] = np.round(a * 255).astype(np.uint8)
        self.im.alpha_composite(Image.fromarray(spot, "RGBA"), (x0, y0))

    def clipped(
        self, box: tuple[float, float, float, float], shape: Callable[[_Pen], None], content: Callable[[_Pen], None]
    ) -> None:
        """Draw ``content`` only where ``shape`` is white (black cuts it away); both within ``box``."""
        (x0, y0), (x1, y1) = self.p(box[0], box[1]), self.p(box[2], box[3])
        x0, y0, x1, y1 = int(x0) - 2, int(y0) - 2, int(x1) + 3, int(y1) + 3
        sub = _Pen((x1 - x0, y1 - y0), self.k, (self.origin[0] - x0, self.origin[1] - y0))
        mask = _Pen(sub.im.size, self.k, sub.origin)
        content(sub)
        shape(mask)
        alpha = np.minimum(np.asarray(sub.im)[..., 3], np.asarray(mask.im)[..., 0])
        sub.im.putalpha(Image.fromarray(alpha, "L"))
        self.im.alpha_composite(sub.im, (x0, y0))


def _bezier(*ctrl: Point, n: int = 24) -> list[Point]:
    """Points along a cubic Bezier curve (four control points)."""
    (ax, ay), (bx, by), (cx, cy), (dx, dy) = ctrl
    out = []
    for i in range(n + 1):
        t = i / n
        u = 1 - t
        out.append((u**3 * ax + 3 * u * u * t * bx + 3 * u * t * t * cx + t**3 * dx,
                    u**3 * ay + 3 * u * u * t * by + 3 * u * t * t * cy + t**3 * dy))  # fmt: skip
    return out


def _face_outline(n: int = 120) -> list[Point]:
    """An egg: a full cranium and cheeks narrowing to a rounded chin."""
    pts = []
    for i in range(n):
        a = 2 * math.pi * i / n
        x, y = 0.39 * math.sin(a), -0.5 * math.cos(a)
        if y > 0:
            x *= 1 - 0.2 * (y / 0.5) ** 1.6
        pts.append((x, y))
    return pts


_EYE_X, _EYE_Y, _EYE_RX, _EYE_RY = 0.165, -0.02, 0.072, 0.084
_MOUTH_Y = 0.265
_BODY_PLAIN = 1.4  # face units below the face centre where the body stops changing row to row


def _draw_eye(pen: _Pen, side: int, eyes: Eyes, pal: _Palette) -> None:
    cx, cy = side * _EYE_X, _EYE_Y
    rx, ry = _EYE_RX, _EYE_RY
    if eyes is Eyes.CLOSED:
        arc = [(cx + rx * 1.05 * t, cy + 0.012 + 0.026 * (1 - t * t)) for t in np.linspace(-1, 1, 15)]
        pen.stroke(arc, 0.017, pal.line)
        return
    gaze = {Eyes.LEFT: -0.026, Eyes.RIGHT: 0.026}.get(eyes, 0.0)
    # The lid edge: the top of the eye when open, across the middle mid-blink.
    lid_y = cy - ry - 0.01 if eyes is not Eyes.HALF else cy + 0.005

    def shape(p: _Pen) -> None:
        p.ellipse(cx, cy, rx, ry, _WHITE)
        if eyes is Eyes.HALF:
            p.polygon([(cx - rx - 0.01, cy - ry - 0.01), (cx + rx + 0.01, cy - ry - 0.01),
                       (cx + rx + 0.01, lid_y), (cx - rx - 0.01, lid_y)], (0, 0, 0))  # fmt: skip

    def content(p: _Pen) -> None:
        p.ellipse(cx, cy, rx, ry, _SCLERA)
        ix, iy = cx + gaze, cy + 0.012
        p.ellipse(ix, iy, 0.056, 0.056, _IRIS)
        p.ellipse(ix, iy, 0.03, 0.03, _PUPIL)
        p.ellipse(ix + 0.021, iy - 0.024, 0.016, 0.016, _WHITE)
        p.ellipse(ix - 0.018, iy + 0.022, 0.0075, 0.0075, _WHITE)

    pen.clipped((cx - rx, cy - ry, cx + rx, cy + ry), shape, content)
    if eyes is Eyes.HALF:
        lid = [(cx + rx * t, lid_y - 0.01 * (1 - t * t)) for t in np.linspace(-1.02, 1.02, 15)]
    else:
        lid = [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in np.linspace(math.pi * 1.08, math.pi * 1.92, 15)]
    pen.stroke(lid, 0.019, pal.line)
    # A small flick of lashes at the outer corner.
    ex, ey = lid[-1] if side > 0 else lid[0]
    pen.stroke([(ex, ey), (ex + side * 0.022, ey - 0.016)], 0.012, pal.line)


def _draw_brow(pen: _Pen, side: int, raised: bool, pal: _Palette) -> None:
    lift = 0.028 if raised else 0.0
    inner, peak, outer = (0.075, -0.142), (0.16, -0.175), (0.245, -0.152)
    pts = _bezier(
        (side * inner[0], inner[1] - lift * 1.2),
        (side * 0.12, peak[1] - lift - 0.01),
        (side * 0.2, peak[1] - lift - 0.01),
        (side * outer[0], outer[1] - lift * 0.7),
        n=16,
    )
    pen.stroke(pts, 0.03, _mix(pal.hair, _BLACK, 0.15))


@dataclass(frozen=True)
class _Mouth:
    w: float  # half width
    up: float  # opening above the lip line
    lo: float  # opening below it
    round: float = 1.0  # edge exponent: 1 lens-shaped, 0.5 elliptic
    teeth_up: float = 0.0  # how far the upper teeth reach down into the opening
    teeth_lo: float = 0.0
    tongue: float = 0.0  # tongue showing at the bottom
    tongue_tip: float = 0.0  # tongue tip raised to the upper teeth (l) or between them (th)
    ring: float = 0.0  # lips pushed forward, drawn as a ring this thick
    lower_lip: float = 0.0  # lower lip drawn up over the teeth (f, v)
    smile: float = 0.02  # corners raised

    def edge(self, t: float, lower: bool) -> Point:
        bulge = (1 - t * t) ** self.round
        y = _MOUTH_Y - self.smile * t * t + (self.lo if lower else -self.up) * bulge
        return (self.w * t, y)

    def outline(self, n: int = 40) -> list[Point]:
        ts = np.linspace(-1, 1, n)
        return [self.edge(t, False) for t in ts] + [self.edge(t, True) for t in ts[::-1]]


_MOUTHS: dict[Viseme, _Mouth] = {
    Viseme.FV: _Mouth(0.095, 0.012, 0.03, teeth_up=0.03, lower_lip=0.022),
    Viseme.TH: _Mouth(0.095, 0.016, 0.034, teeth_up=0.016, teeth_lo=0.01, tongue_tip=0.03),
    Viseme.L: _Mouth(0.095, 0.03, 0.06, teeth_up=0.02, tongue=0.02, tongue_tip=0.035),
    Viseme.SZ: _Mouth(0.115, 0.016, 0.022, teeth_up=0.02, teeth_lo=0.02, smile=0.026),
    Viseme.CH: _Mouth(0.072, 0.03, 0.036, round=0.7, teeth_up=0.03, teeth_lo=0.028, ring=0.022, smile=0.008),
    Viseme.AA: _Mouth(0.11, 0.035, 0.115, round=0.85, teeth_up=0.024, tongue=0.04),
    Viseme.E: _Mouth(0.115, 0.028, 0.065, teeth_up=0.022, tongue=0.02, smile=0.026),
    Viseme.I: _Mouth(0.11, 0.02, 0.034, teeth_up=0.02, teeth_lo=0.014, smile=0.026),
    Viseme.O: _Mouth(0.066, 0.05, 0.075, round=0.5, teeth_up=0.014, tongue=0.025, ring=0.02, smile=0.0),
    Viseme.U: _Mouth(0.044, 0.028, 0.034, round=0.5, ring=0.024, smile=0.0),
}


def _draw_mouth(pen: _Pen, viseme: Viseme, pal: _Palette) -> None:
    outline_col = _mix(_LIP, _MOUTH, 0.35)
    if viseme is Viseme.REST:
        smile = [(0.1 * t, _MOUTH_Y - 0.03 * t * t + 0.006) for t in np.linspace(-1, 1, 21)]
        pen.stroke(smile, 0.017, outline_col)
        pen.glow(0, _MOUTH_Y + 0.045, 0.05, 0.014, pal.skin_shade, 0.35)
        return
    if viseme is Viseme.MBP:
        lips = [(0.085 * t, _MOUTH_Y - 0.01 * t * t - 0.014 * (1 - t * t)) for t in np.linspace(-1, 1, 21)]
        lips += [(0.085 * t, _MOUTH_Y - 0.01 * t * t + 0.018 * (1 - t * t)) for t in np.linspace(1, -1, 21)]
        pen.polygon(lips, _LIP)
        pen.stroke([(0.088 * t, _MOUTH_Y - 0.01 * t * t) for t in np.linspace(-1, 1, 21)], 0.012, outline_col)
        return
    m = _MOUTHS[viseme]
    top = _MOUTH_Y - m.up
    bottom = _MOUTH_Y + m.lo
    box = (-m.w - 0.01, top - 0.03, m.w + 0.01, bottom + 0.01)

    def content(p: _Pen) -> None:
        p.polygon(m.outline(), _MOUTH)
        if m.tongue:
            p.ellipse(0, bottom + m.tongue * 0.4, m.w * 0.75, m.tongue * 1.4, _TONGUE)
        if m.tongue_tip:
            tip_y = top + m.teeth_up + m.tongue_tip * 0.4 if m.teeth_lo else top + m.teeth_up + 0.004
            p.ellipse(0, tip_y + m.tongue_tip * 0.2, m.w * 0.38, m.tongue_tip * 0.7, _TONGUE)
        if m.teeth_up:
            p.polygon([(-m.w, top - 0.03), (m.w, top - 0.03), (m.w, top + m.teeth_up),
                       (-m.w, top + m.teeth_up)], _TEETH)  # fmt: skip
        if m.teeth_lo:
            p.polygon([(-m.w, bottom - m.teeth_lo), (m.w, bottom - m.teeth_lo), (m.w, bottom + 0.01),
                       (-m.w, bottom + 0.01)], _TEETH)  # fmt: skip

    pen.clipped(box, lambda p: p.polygon(m.outline(), _WHITE), content)
    ring = m.outline(48)
    pen.stroke(ring + ring[:1], m.ring or 0.011, _LIP if m.ring else outline_col)
    if m.ring:
        pen.stroke(ring + ring[:1], 0.006, outline_col)
    if m.lower_lip:  # tucked up under the upper teeth
        pen.ellipse(0, bottom - 0.004, m.w * 0.8, m.lower_lip, _LIP)
        pen.stroke([(0.7 * m.w * t, bottom - 0.004 - m.lower_lip * 0.55 * (1 - t * t)) for t in np.linspace(-1, 1, 9)],
                   0.006, outline_col)  # fmt: skip


def _draw_head(pen: _Pen, pal: _Palette, eyes: Eyes, raised: bool, viseme: Viseme) -> None:
    hair_dark = _mix(pal.hair, _BLACK, 0.25)
    # A bob: the back hair frames the face down to the jaw.
    pen.ellipse(0, -0.1, 0.53, 0.56, pal.hair)
    pen.polygon(
        _bezier((-0.53, -0.1), (-0.56, 0.12), (-0.5, 0.3), (-0.36, 0.34))
        + _bezier((0.36, 0.34), (0.5, 0.3), (0.56, 0.12), (0.53, -0.1)),
        pal.hair,
    )
    pen.glow(0, 0.3, 0.3, 0.1, hair_dark, 0.6)  # shadow behind the jaw
    for side in (-1, 1):
        pen.ellipse(side * 0.385, 0.03, 0.055, 0.085, pal.skin)
        pen.ellipse(side * 0.39, 0.035, 0.03, 0.055, pal.skin_shade)
    pen.polygon(_face_outline(), pal.skin)
    for side in (-1, 1):
        pen.glow(side * 0.23, 0.12, 0.08, 0.05, _BLUSH, 0.32)
    nose = [(-0.026, 0.118), (-0.012, 0.134), (0.012, 0.134), (0.026, 0.118)]
    pen.stroke(_bezier(*nose, n=12), 0.015, pal.skin_shade)
    for side in (-1, 1):
        _draw_eye(pen, side, eyes, pal)
        _draw_brow(pen, side, raised, pal)
    _draw_mouth(pen, viseme, pal)
    # Fringe swept from a parting on the right, over the forehead down to the temples.
    fringe = (
        _bezier((-0.47, 0.02), (-0.46, -0.35), (-0.25, -0.58), (0.04, -0.6))
        + _bezier((0.04, -0.6), (0.3, -0.6), (0.48, -0.42), (0.47, 0.0))
        + _bezier((0.47, 0.0), (0.42, -0.16), (0.36, -0.26), (0.16, -0.33))
        + _bezier((0.16, -0.33), (0.02, -0.28), (-0.22, -0.25), (-0.38, -0.1))
        + [(-0.41, 0.02)]
    )
    pen.polygon(fringe, pal.hair)
    hair_line = _mix(pal.hair, _BLACK, 0.3)
    pen.stroke(_bezier((0.14, -0.5), (0.0, -0.4), (-0.2, -0.34), (-0.32, -0.2), n=16), 0.01, hair_line)
    shine = _mix(pal.hair, _WHITE, 0.22)
    pen.stroke(_bezier((-0.3, -0.4), (-0.2, -0.5), (-0.05, -0.53), (0.08, -0.52), n=16), 0.025, shine)


def _draw_body(pen: _Pen, pal: _Palette, bottom: float) -> None:
    neck = _mix(pal.skin, (120, 50, 40), 0.08)
    pen.polygon([(-0.125, 0.3), (0.125, 0.3), (0.135, 0.8), (-0.135, 0.8)], neck)
    pen.glow(0, 0.47, 0.17, 0.08, pal.skin_shade, 0.7)  # under the chin
    # Below _BODY_PLAIN every row is the same (vertical arms), so only the top part is drawn.
    left = (
        _bezier((-0.13, 0.63), (-0.35, 0.65), (-0.58, 0.68), (-0.74, 0.77))
        + _bezier((-0.74, 0.77), (-0.89, 0.84), (-0.96, 0.97), (-0.98, 1.13))
        + [(-0.99, 1.3), (-0.99, bottom)]
    )
    pen.polygon(left + [(-x, y) for x, y in reversed(left)], pal.shirt)
    fold = _mix(pal.shirt, _BLACK, 0.14)
    for side in (-1, 1):  # where the arms meet the chest
        pen.stroke(
            _bezier((side * 0.77, 1.04), (side * 0.75, 1.14), (side * 0.76, 1.25), (side * 0.77, 1.32)), 0.012, fold
        )
        pen.stroke([(side * 0.77, 1.32), (side * 0.77, bottom)], 0.012, fold)
    pen.polygon([(-0.15, 0.6), (0.15, 0.6), (0.0, 1.02)], _SHIRT_WHITE)
    pen.polygon([(-0.06, 0.6), (0.06, 0.6), (0.0, 0.79)], neck)
    for side in (-1, 1):
        pen.polygon([(side * 0.15, 0.65), (side * 0.27, 0.69), (side * 0.33, 0.88), (side * 0.02, 1.08)], fold)
        pen.polygon([(side * 0.14, 0.64), (side * 0.06, 0.67), (side * 0.1, 0.82), (side * 0.2, 0.75)], _SHIRT_WHITE)
        pen.stroke([(side * 0.2, 0.75), (side * 0.1, 0.82)], 0.006, _mix(_SHIRT_WHITE, _BLACK, 0.15))


def _render(box: tuple[int, int, int, int], face_px: float, paint: Callable[[_Pen], None]) -> np.ndarray:
    """RGBA pixels of the final-pixel rectangle ``box`` (relative to the face centre), anti-aliased."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0 + 2 * _MARGIN, y1 - y0 + 2 * _MARGIN
    pen = _Pen((w * _SS, h * _SS), face_px * _SS, ((_MARGIN - x0) * _SS, (_MARGIN - y0) * _SS))
    paint(pen)
    small = pen.im.resize((w, h), Image.Resampling.LANCZOS)
    return np.asarray(small)[_MARGIN:-_MARGIN, _MARGIN:-_MARGIN]


def _background(width: int, height: int, centre: Point, scale: float, pal: _Palette, seed: int) -> np.ndarray:
    """A studio backdrop: a vertical gradient, a soft light behind the presenter, out-of-focus lights."""
    top, bottom = np.array(_mix(pal.background, _WHITE, 0.1)), np.array(_mix(pal.background, _BLACK, 0.5))
    ys = (np.arange(height, dtype=np.float32) + 0.5)[:, None]
    xs = (np.arange(width, dtype=np.float32) + 0.5)[None, :]
    t = (ys / height) ** 1.3
    img = (top * (1 - t[..., None]) + bottom * t[..., None]).astype(np.float32)
    img = np.broadcast_to(img, (height, width, 3)).copy()
    d2 = ((xs - centre[0]) / (0.85 * scale)) ** 2 + ((ys - centre[1]) / (0.65 * scale)) ** 2
    glow = np.exp(-2.0 * d2)[..., None]
    light = np.array(_mix(pal.background, _WHITE, 0.4), np.float32)
    img += (light - img) * 0.55 * glow
    rng = random.Random(f"{seed}/lights")
    tint = np.array(_mix(pal.background, (255, 240, 220), 0.7), np.float32)
    for _ in range(9):
        bx = width * rng.choice((rng.uniform(0.03, 0.3), rng.uniform(0.7, 0.97)))
        by = height * rng.uniform(0.08, 0.6)
        r = scale * rng.uniform(0.03, 0.08)
        x0, x1, y0, y1 = (
            max(0, int(bx - r)),
            min(width, int(bx + r) + 1),
            max(0, int(by - r)),
            min(height, int(by + r) + 1),
        )
        dist = np.sqrt((xs[:, x0:x1] - bx) ** 2 + (ys[y0:y1] - by) ** 2)
        a = np.clip((r - dist) / (0.35 * r), 0, 1)[..., None] * rng.uniform(0.05, 0.11)
        img[y0:y1, x0:x1] += (tint - img[y0:y1, x0:x1]) * a
    vignette = 1 - 0.22 * (((xs - width / 2) / (width / 2)) ** 2 * 0.7 + ((ys - height / 2) / (height / 2)) ** 2 * 0.3)
    img *= vignette[..., None]
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Composing frames.


def _pool2(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    return a.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


@dataclass
class _Plane:
    src: np.ndarray  # uint8 values, premultiplied by coverage
    solid: np.ndarray | None  # where the picture fully covers (None: everywhere)
    ei: np.ndarray  # rows and columns of partly covered pixels
    ej: np.ndarray
    p: np.ndarray  # their premultiplied value (less the background's share of the offset)
    w: np.ndarray  # and how much of the background shows through


class _Layer:
    """A picture as yuv420p planes, pasted at even offsets: covered pixels are copied, the
    anti-aliased edge blended with what is under it."""

    def __init__(self, rgba: np.ndarray, origin: tuple[int, int], patch: bool = False) -> None:
        """``patch``: a piece of the head, redrawn with another face; only its fully covered pixels
        are copied, the rest (the head's outline) is already right underneath."""
        self.origin = origin  # top-left, relative to the face centre (even)
        a = rgba[..., 3].astype(np.float32) / 255.0
        prem = np.round(rgba[..., :3] * a[..., None]).astype(np.uint8)
        self.planes: list[_Plane] = []
        alphas, offsets = (a, _pool2(a), _pool2(a)), (16.0, 128.0, 128.0)
        for plane, alpha, offset in zip(rgb_to_yuv_planes(prem), alphas, offsets, strict=True):
            solid = alpha >= 1.0
            edge = (alpha > 0.002) & ~solid & (not patch)
            ei, ej = np.nonzero(edge)
            w = (1.0 - alpha[edge]).astype(np.float32)
            p = plane[edge].astype(np.float32) - w * offset + 0.5
            self.planes.append(_Plane(plane, None if solid.all() else solid, ei, ej, p, w))

    def paste(self, dst: Sequence[np.ndarray], x: int, y: int) -> None:
        """Onto Y, U, V planes with the layer's top-left at frame pixel (x, y), both even."""
        for k, pl in enumerate(self.planes):
            d = dst[k]
            ox, oy = (x, y) if k == 0 else (x // 2, y // 2)
            h, w = pl.src.shape
            sy0, sx0, sy1, sx1 = max(0, -oy), max(0, -ox), min(h, d.shape[0] - oy), min(w, d.shape[1] - ox)
            if sy0 >= sy1 or sx0 >= sx1:
                continue
            region = d[oy + sy0 : oy + sy1, ox + sx0 : ox + sx1]
            if pl.solid is None:
                region[...] = pl.src[sy0:sy1, sx0:sx1]
            else:
                np.copyto(region, pl.src[sy0:sy1, sx0:sx1], where=pl.solid[sy0:sy1, sx0:sx1])
            if pl.ei.size:
                ii, jj, p, wt = pl.ei + oy, pl.ej + ox, pl.p, pl.w
                if (sy0, sx0, sy1, sx1) != (0, 0, h, w):
                    keep = (ii >= 0) & (ii < d.shape[0]) & (jj >= 0) & (jj < d.shape[1])
                    ii, jj, p, wt = ii[keep], jj[keep], p[keep], wt[keep]
                d[ii, jj] = (p + wt * d[ii, jj]).astype(np.uint8)


class _LRU:
    """Frames by key, dropping the least recently used past a memory cap."""

    def __init__(self, max_bytes: int) -> None:
        self._items: OrderedDict[Any, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes

    def get(self, key: Any) -> np.ndarray | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: Any, item: np.ndarray) -> None:
        self._items[key] = item
        self._bytes += item.nbytes
        while self._bytes > self._max and len(self._items) > 1:
            self._bytes -= self._items.popitem(last=False)[1].nbytes


class CartoonAvatar(Avatar):
    name = "cartoon"
    description = "a friendly 2D presenter with lip-sync, drawn in software (nothing to install)"
    Options = CartoonOptions

    def __init__(self, video: VideoFormat, options: BackendOptions) -> None:
        super().__init__(video, options)
        assert isinstance(options, CartoonOptions)
        o = options
        pal = _Palette(*(ImageColor.getrgb(c)[:3] for c in (o.skin, o.hair, o.shirt, o.background)))  # type: ignore[arg-type]
        width, height, fps = video.width, video.height, video.fps
        # Laid out on the height (or the width, for tall portrait frames): any size works.
        scale = min(height, 1.3 * width)
        face = self._face = 0.34 * scale
        ax, ay = self._anchor = even(width / 2, round), even(height - 0.62 * scale, round)

        def box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
            return (even(x0 * face - 1, round), even(y0 * face - 1, round),
                    even(x1 * face + 1, round), even(y1 * face + 1, round))  # fmt: skip

        def head(b: tuple[int, int, int, int], eyes: Eyes, raised: bool, viseme: Viseme, patch: bool) -> _Layer:
            paint = partial(_draw_head, pal=pal, eyes=eyes, raised=raised, viseme=viseme)
            return _Layer(_render(b, face, paint), (b[0], b[1]), patch)

        self._bg = rgb_to_yuv420p(_background(width, height, (ax, ay + 0.1 * face), scale, pal, o.seed))
        reach = 0.2 * (height - ay) / face + 0.1  # below the frame, so motion never shows the body's end
        bottom = (height - ay) / face + reach
        half = min(1.1, (width / 2 + 0.2 * face) / face)
        body_box = box(-half, 0.28, half, min(bottom, _BODY_PLAIN))
        body = _render(body_box, face, lambda p: _draw_body(p, pal, bottom + 1))
        rows = max(0, even(bottom * face, round) - body_box[3])
        self._body = _Layer(np.concatenate([body, np.repeat(body[-1:], rows, axis=0)]), body_box[:2])
        self._head = head(box(-0.62, -0.72, 0.62, 0.58), Eyes.OPEN, False, Viseme.REST, patch=False)
        eye_box, mouth_box = box(-0.31, -0.27, 0.31, 0.075), box(-0.165, 0.15, 0.165, 0.405)
        self._eye_patches = {(e, r): head(eye_box, e, r, Viseme.REST, patch=True) for e in Eyes for r in (False, True)}
        self._mouth_patches = {v: head(mouth_box, Eyes.OPEN, False, v, patch=True) for v in Viseme}

        self._bases = _LRU(_CACHE_BYTES // 5)  # background and body, by body offset
        self._stages = _LRU(_CACHE_BYTES // 3)  # and the head, by both offsets
        self._frames = _LRU(_CACHE_BYTES - _CACHE_BYTES // 5 - _CACHE_BYTES // 3)  # finished frames

        self._fps = fps
        self._loudness = Loudness(fps)
        self._talk = 0.0  # smoothed 0..1: is the presenter speaking
        self._open = 0.0  # smoothed mouth opening
        self._talk_k = 1 - math.exp(-1 / (0.4 * fps))
        self._open_k = 1 - math.exp(-1 / (0.25 * fps))
        self._raised = False
        blink_rng = random.Random(f"{o.seed}/blinks")  # string seeds are stable across runs
        blink_len = max(3, round(0.12 * fps))  # three frames at 25 fps
        self._blinks = Schedule(
            blink_rng, o.blink_interval * blink_rng.uniform(0.3, 0.8),
            blink_gap(o.blink_interval), lambda rng: blink_len, fps,
        )  # fmt: skip
        glance_rng = random.Random(f"{o.seed}/glances")
        self._glances = Schedule(
            glance_rng, glance_rng.uniform(4, 8), lambda rng: rng.uniform(5, 12),
            lambda rng: round(rng.uniform(0.6, 1.4) * fps), fps,
        )  # fmt: skip
        sway_rng = random.Random(f"{o.seed}/sway")
        self._phases = [sway_rng.uniform(0, 2 * math.pi) for _ in range(6)]
        self._sway = face * o.head_motion
        self._offsets = (0, 0, 0, 0)

    def draw(self, ctx: FrameContext) -> np.ndarray:
        viseme = viseme_at(ctx, self._loudness)
        self._talk += ((viseme is not Viseme.REST) - self._talk) * self._talk_k
        self._open += (viseme.openness - self._open) * self._open_k
        # Brows lift while speaking, with hysteresis so they don't twitch between words.
        self._raised = self._talk > (0.3 if self._raised else 0.6)
        eyes = self._eyes(ctx.index)
        offsets = self._motion(ctx.index / self._fps)
        key = (offsets, eyes, self._raised, viseme)
        out = self._frames.get(key)
        if out is None:
            out = self._stage(offsets).copy()
            yuv = planes(out, self.video.width, self.video.height)
            hx, hy = self._anchor[0] + offsets[2], self._anchor[1] + offsets[3]
            for patch in (self._eye_patches[eyes, self._raised], self._mouth_patches[viseme]):
                patch.paste(yuv, hx + patch.origin[0], hy + patch.origin[1])
            self._frames.put(key, out)
        return out

    @property
    def mouth_box(self) -> tuple[int, int, int, int]:
        """Where the mouth is drawn in the frame (x0, y0, x1, y1), the head still: for lip-sync
        measurements."""
        patch = self._mouth_patches[Viseme.REST]
        h, w = patch.planes[0].src.shape[:2]
        x0, y0 = self._anchor[0] + patch.origin[0], self._anchor[1] + patch.origin[1]
        return x0, y0, x0 + w, y0 + h

    def _eyes(self, index: int) -> Eyes:
        k = self._blinks.at(index)
        if k is not None:
            return Eyes.HALF if k in (0, self._blinks.length - 1) else Eyes.CLOSED
        # Now and then a glance aside, only while quiet; the side follows from when it starts.
        if self._glances.at(index) is not None and self._talk < 0.15:
            return Eyes.LEFT if self._glances.start % 2 else Eyes.RIGHT
        return Eyes.OPEN

    def _motion(self, t: float) -> tuple[int, int, int, int]:
        """Body and head offsets in even pixels: slow sway, breathing, more life while speaking."""
        a, p, talk, tau = self._sway, self._phases, self._talk, 2 * math.pi
        bx = a * (0.02 * math.sin(tau * t / 9.3 + p[0]) + 0.008 * math.sin(tau * t / 4.1 + p[1])) * (1 + 0.6 * talk)
        by = -a * 0.012 * (0.5 - 0.5 * math.cos(tau * t / 4.6 + p[2]))
        hx = bx + a * (0.012 * math.sin(tau * t / 6.7 + p[3]) + 0.014 * talk * math.sin(tau * t / 2.3 + p[4]))
        hy = by + a * (0.008 * math.sin(tau * t / 5.9 + p[5]) + 0.018 * self._open)
        # An offset moves only once the motion is well past the rounding point: no 2 px flicker.
        q = [old if abs(v - old) < 1.5 else even(v, round) for v, old in zip((bx, by, hx, hy), self._offsets, strict=True)]
        self._offsets = (q[0], q[1], q[2], q[3])
        return self._offsets

    def _stage(self, key: tuple[int, int, int, int]) -> np.ndarray:
        stage = self._stages.get(key)
        if stage is None:
            bx, by, hx, hy = key
            ax, ay = self._anchor
            w, h = self.video.width, self.video.height
            base = self._bases.get((bx, by))
            if base is None:
                base = self._bg.copy()
                self._body.paste(planes(base, w, h), ax + bx + self._body.origin[0], ay + by + self._body.origin[1])
                self._bases.put((bx, by), base)
            stage = base.copy()
            self._head.paste(planes(stage, w, h), ax + hx + self._head.origin[0], ay + hy + self._head.origin[1])
            self._stages.put(key, stage)
        return stage
