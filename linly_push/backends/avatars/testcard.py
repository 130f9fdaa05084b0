"""A broadcast test card for checking a stream end to end, lip sync above all.

Colour bars, the frame number, a timecode, the sentence being spoken and an audio level meter;
and a full white frame on the frame nearest to each sound onset, so a recording of the stream
shows how far the picture is from the sound (``linly_push.sync`` measures it). What counts as an
onset is ``linly_push.onsets``, shared with that measurement.

Everything that does not change from frame to frame is drawn once, in yuv420p: the bars, the
digit glyphs, the caption band (again only when the sentence changes) and the white frame.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ...captions import find_font, fitting, load_font, wrap
from ...media import VideoFormat
from ...onsets import ONSET_THRESHOLD, gap_samples, onsets_after
from ...timeline import FrameContext
from ...video import even, planes, rgb_to_yuv420p, rgb_to_yuv_planes
from ..base import Avatar, BackendOptions

_BLACK, _WHITE = 16, 235  # limited-range luma
_BARS = [(191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0), (191, 0, 191), (191, 0, 0), (0, 0, 191)]
_CASTELLATIONS = [(0, 0, 191), (0, 0, 0), (191, 0, 191), (0, 0, 0), (0, 191, 191), (0, 0, 0), (191, 191, 191)]
_BAND_GREY = 48
_METER_DB = 60.0  # the meter spans -60..0 dBFS peak
_DIGITS = 7  # frame numbers up to 9,999,999 (over 90 hours at 30 fps)


def timecode(n: int, fps: int) -> str:
    """Frame ``n`` as non-drop-frame HH:MM:SS:FF."""
    seconds, ff = divmod(n, fps)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}"


def _luma(gray: np.ndarray) -> np.ndarray:
    """Full-range grey (0..255) to limited-range luma, for text rendered by Pillow."""
    return (_BLACK + gray.astype(np.uint16) * (_WHITE - _BLACK) // 255).astype(np.uint8)


def _paste(plane: np.ndarray, tile: np.ndarray, x: int, y: int) -> None:
    """Copy ``tile`` into ``plane`` at (x, y), clipped to the plane (tiny frames must not crash)."""
    h, w = tile.shape
    x1, y1 = min(x + w, plane.shape[1]), min(y + h, plane.shape[0])
    if x1 > x and y1 > y:
        plane[y:y1, x:x1] = tile[: y1 - y, : x1 - x]


def _meter_lit(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The meter fully lit, as Y, U, V planes: green, yellow from -18 dBFS, red from -6."""
    rgb = np.zeros((height, width, 3), np.uint8)
    db = np.linspace(-_METER_DB, 0.0, width, endpoint=False)
    rgb[:, db < -18] = (0, 200, 0)
    rgb[:, (db >= -18) & (db < -6)] = (220, 200, 0)
    rgb[:, db >= -6] = (230, 0, 0)
    return rgb_to_yuv_planes(rgb)


class _Glyphs:
    """Digits and ':' rendered once as luma tiles, white on black, all the same height."""

    def __init__(self, size: int) -> None:
        font = ImageFont.load_default(size=max(1, size))
        chars = "0123456789:"
        _, top, _, bottom = font.getbbox(chars)
        self.height = max(1, bottom - top)
        self.tiles: dict[str, np.ndarray] = {}
        for c in chars:
            w = max(1, int(np.ceil(font.getlength(c))))
            img = Image.new("L", (w, self.height), 0)
            ImageDraw.Draw(img).text((0, -top), c, fill=255, font=font)
            self.tiles[c] = _luma(np.asarray(img))
        self.digit_width = max(self.tiles[d].shape[1] for d in "0123456789")

    def width(self, text: str) -> int:
        return sum(self.tiles[c].shape[1] for c in text)

    def paste(self, plane: np.ndarray, text: str, x: int, y: int) -> None:
        for c in text:
            tile = self.tiles[c]
            _paste(plane, tile, x, y)
            x += tile.shape[1]


def _wrap(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int, lines: int) -> list[str]:
    """At most ``lines`` lines no wider than ``width`` (broken as captions are), the last one
    cut short with '...' if the text does not fit."""
    spans = wrap(text, width, font.getlength)
    out = [text[a:b] for a, b in spans[:lines]]
    if len(spans) > lines:
        rest = text[spans[lines - 1][0] :]
        out[-1] = rest[: fitting(rest, width - font.getlength("..."), font.getlength)].rstrip() + "..."
    return out


class TestcardAvatar(Avatar):
    name = "testcard"
    description = "colour bars, frame number, timecode and a white flash on each sound onset, for checking A/V sync"

    def __init__(self, video: VideoFormat, options: BackendOptions) -> None:
        super().__init__(video, options)
        w, h = video.width, video.height
        self._white = np.full(video.frame_bytes, 128, np.uint8)
        planes(self._white, w, h)[0][:] = _WHITE

        bars_end = even(0.58 * h)
        panel_top = bars_end + even(0.08 * h)
        self._band_top = even(0.86 * h)
        rgb = np.zeros((h, w, 3), np.uint8)
        edges = [even(w * i / 7) for i in range(8)]
        for i in range(7):
            rgb[:bars_end, edges[i] : edges[i + 1]] = _BARS[i]
            rgb[bars_end:panel_top, edges[i] : edges[i + 1]] = _CASTELLATIONS[i]
        rgb[self._band_top :] = _BAND_GREY

        # Frame number: big, in a black box in the middle of the bars.
        box_h = even(0.24 * h)
        self._number = _Glyphs(int(0.8 * box_h))
        box_w = min(w, even(self._number.digit_width * _DIGITS + box_h * 0.3))
        self._box = (even((w - box_w) / 2), even((bars_end - box_h) / 2), box_w, box_h)
        bx, by, _, _ = self._box
        rgb[by : by + box_h, bx : bx + box_w] = 0

        # Timecode left and level meter right, in the black panel under the castellations.
        panel_h = self._band_top - panel_top
        self._tc = _Glyphs(int(0.55 * panel_h))
        self._tc_at = (even(0.04 * w), panel_top + (panel_h - self._tc.height) // 2)
        mx, mw, mh = even(0.56 * w), even(0.40 * w), max(2, even(0.25 * panel_h))
        self._meter = (mx, panel_top + even((panel_h - mh) / 2), mw, mh)
        my = self._meter[1]
        rgb[my : my + mh, mx : mx + mw] = 40
        self._lit = _meter_lit(mw, mh)

        self._base = rgb_to_yuv420p(rgb)
        # The captions' font (Noto Sans CJK from a wheel): Pillow's own has no Chinese glyphs.
        file, face = find_font()
        self._caption_font = load_font(file, face, max(1, int(0.3 * (h - self._band_top))))
        self._captioned = self._base
        self._caption: str | None = None

        self._gap = 0  # in samples; set on the first frame, when the audio rate is known
        self._scanned: int | None = None  # end of the audio looked at so far
        self._last_loud = 0  # stream sample of the last loud sample seen

    def draw(self, ctx: FrameContext) -> np.ndarray:
        flash, peak = self._listen(ctx)
        if flash:
            return self._white

        if ctx.text != self._caption:
            self._caption = ctx.text
            self._captioned = self._render_caption(ctx.text)
        out = self._captioned.copy()
        y, u, v = planes(out, self.video.width, self.video.height)

        bx, by, bw, bh = self._box
        number = str(ctx.index)[-_DIGITS:]
        self._number.paste(y, number, bx + (bw - self._number.width(number)) // 2, by + (bh - self._number.height) // 2)
        self._tc.paste(y, timecode(ctx.index, self.video.fps), *self._tc_at)
        self._draw_meter((y, u, v), peak)
        return out

    def _listen(self, ctx: FrameContext) -> tuple[bool, float]:
        """Whether an onset falls in the frame's window, and the window's peak level.

        The frame nearest to an onset is the one whose window holds it. Windows of consecutive
        frames are contiguous, so the last loud sample before this one was seen drawing the frame
        before; the timeline may no longer hold that audio (it keeps what was fed last).
        """
        lo, hi = ctx.window()
        if lo != self._scanned:  # first frame, or frames out of order: look back instead
            self._gap = gap_samples(ctx.rate)
            back = np.flatnonzero(np.abs(ctx.audio(lo - self._gap, lo)) > ONSET_THRESHOLD)
            self._last_loud = lo - self._gap + int(back[-1]) if back.size else lo - self._gap - 1
        self._scanned = hi
        x = np.abs(ctx.audio(lo, hi))
        loud = np.flatnonzero(x > ONSET_THRESHOLD)
        flash = onsets_after(loud, self._last_loud - lo, self._gap).size > 0
        if loud.size:
            self._last_loud = lo + int(loud[-1])
        return flash, float(x.max()) if x.size else 0.0

    def _render_caption(self, text: str | None) -> np.ndarray:
        frame = self._base.copy()
        w, h = self.video.width, self.video.height
        band_h = h - self._band_top
        if not text:
            return frame
        img = Image.new("L", (w, band_h), _BAND_GREY)
        draw = ImageDraw.Draw(img)
        margin = even(0.03 * w)
        lines = _wrap(" ".join(text.split()), self._caption_font, w - 2 * margin, 2)
        line_h = band_h // 2
        for i, line in enumerate(lines):
            draw.text((margin, i * line_h + line_h // 2), line, fill=255, font=self._caption_font, anchor="lm")
        planes(frame, w, h)[0][self._band_top :] = _luma(np.asarray(img))
        return frame

    def _draw_meter(self, out: tuple[np.ndarray, np.ndarray, np.ndarray], peak: float) -> None:
        """Onto a frame's Y, U, V planes."""
        mx, my, mw, mh = self._meter
        db = 20.0 * np.log10(max(peak, 1e-9))
        n = 2 * round(mw / 2 * min(1.0, max(0.0, (db + _METER_DB) / _METER_DB)))
        if n == 0:
            return
        y, u, v = out
        ly, lu, lv = self._lit
        y[my : my + mh, mx : mx + n] = ly[:, :n]
        u[my // 2 : (my + mh) // 2, mx // 2 : (mx + n) // 2] = lu[:, : n // 2]
        v[my // 2 : (my + mh) // 2, mx // 2 : (mx + n) // 2] = lv[:, : n // 2]
