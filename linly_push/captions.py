"""Captions: the sentence being spoken burned into the picture, and WebVTT files of what was said.

Burn-in draws white text on a translucent dark box, bottom-centred, in a font that covers
Chinese (Noto Sans CJK SC from the ``noto-cjk-sans-otc`` wheel unless ``captions.font`` names
another). A sentence is wrapped once, at spaces and between Chinese characters, and shown a page
of ``MAX_LINES`` lines at a time; in "words" mode each word appears, in its final place, as it
starts to be spoken. Each page is rendered once with Pillow and converted to yuv420p with alpha,
so a frame costs only a copy and a blend of the box.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import unicodedata
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .timeline import FrameContext
from .errors import UsageError
from .media import Mark, Segment, VideoFormat
from .presets import CaptionSettings
from .script import is_cjk
from .video import even, planes, rgb_to_yuv_planes

MAX_LINES = 2  # per page, as broadcast subtitles have; longer sentences turn pages
WIDTH = 0.9  # of the frame, for the box
MARGIN = 0.06  # of the frame height, below the box
BOX_ALPHA = 160  # of 255: dark enough to read white text over anything
_PAD_X, _PAD_Y, _GAP = 0.5, 0.2, 0.25  # in ems: box padding, space between lines

# The bundled font: face 2 of the Noto Sans CJK collection is the Simplified Chinese one.
_BUNDLED_PACKAGE, _BUNDLED_FILE, _BUNDLED_FACE = "noto_cjk_sans_otc", "NotoSansCJK-Regular.ttc", 2
_INSTALL_HINT = "pip install noto-cjk-sans-otc, or set captions.font=/path/to/font.ttf"

# Line breaking: closing punctuation never starts a line, opening punctuation never ends one.
_NO_LINE_START = frozenset("，。！？；：、）》」』】〕〉’”,.!?;:)]}%…")
_NO_LINE_END = frozenset("（《「『【〔〈‘“([{")


# --- fonts ---------------------------------------------------------------------------------


def find_font(path: str | None = None) -> tuple[str, int]:
    """The font file captions are drawn with, and the face in it: ``path`` when given, else the
    bundled Noto Sans CJK SC, else the font fontconfig ranks best among those covering Chinese.

    It never falls back to a font without Chinese (Pillow's own covers Latin only): every Chinese
    character would come out as a box.
    """
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise UsageError(f"captions.font: no such file: {file}; give a .ttf, .otf or .ttc file")
        return str(file), 0
    try:
        bundled = resources.files(_BUNDLED_PACKAGE) / _BUNDLED_FILE
    except ModuleNotFoundError:
        pass
    else:
        if bundled.is_file():
            return str(bundled), _BUNDLED_FACE
    found = _fontconfig_chinese()
    if found is None:
        raise UsageError(f"captions need a font that covers Chinese: {_INSTALL_HINT}")
    return found


def _fontconfig_chinese() -> tuple[str, int] | None:
    # fc-match alone answers with some font whatever it covers (DejaVu Sans, on a bare Debian),
    # so take its ranking but only fonts that fc-list says cover Chinese.
    if not (shutil.which("fc-match") and shutil.which("fc-list")):
        return None
    fmt = "%{file}\t%{index}\n"
    try:
        covering = _lines(["fc-list", "-f", fmt, ":lang=zh-cn"])
        ranked = _lines(["fc-match", "-s", "-f", fmt, ":lang=zh-cn"])
    except (OSError, subprocess.SubprocessError):
        return None
    for line in [*ranked, *sorted(covering)]:
        if line in covering:
            file, _, index = line.partition("\t")
            return file, int(index or 0)
    return None


def _lines(argv: list[str]) -> list[str]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def load_font(file: str, face: int, size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(file, max(1, size), index=face)
    except OSError as exc:  # not a font, or a face the collection lacks
        raise UsageError(f"captions.font: cannot use {file} as a font ({exc}); give a .ttf, .otf or .ttc file") from None


# --- text ----------------------------------------------------------------------------------


def _wide(ch: str) -> bool:
    """Chinese characters and other full-width ones (CJK punctuation, kana): a line may break
    beside them without a space."""
    return is_cjk(ch) or unicodedata.east_asian_width(ch) in "WF"


def break_points(text: str) -> list[int]:
    """Indices where a line may start: after spaces, and beside wide characters (but not before
    closing punctuation or after opening punctuation)."""
    out = []
    for i in range(1, len(text)):
        a, b = text[i - 1], text[i]
        if b.isspace():
            continue
        if a.isspace() or ((_wide(a) or _wide(b)) and b not in _NO_LINE_START and a not in _NO_LINE_END):
            out.append(i)
    return out


def wrap(text: str, width: float, measure: Callable[[str], float]) -> list[tuple[int, int]]:
    """Lines of ``text`` as (start, end) spans, spaces at their ends left out, filled greedily up
    to ``width`` as ``measure`` counts it. A piece with nowhere to break that is wider than a
    line (a long URL) is cut between characters."""
    lines: list[tuple[int, int]] = []

    def close(a: int, b: int) -> None:
        lines.append((a, a + len(text[a:b].rstrip())))

    start = fits = 0  # the line being filled, and how far it fits so far
    for stop in [*break_points(text), len(text)]:
        if measure(text[start:stop].rstrip()) <= width:
            fits = stop
            continue
        if fits > start:
            close(start, fits)
            start = fits
        while measure(text[start:stop].rstrip()) > width:
            n = fitting(text[start:stop], width, measure)
            close(start, start + n)
            start += n
        fits = stop
    if start < len(text):
        close(start, len(text))
    return lines


def fitting(text: str, width: float, measure: Callable[[str], float]) -> int:
    """The longest prefix of ``text`` no wider than ``width``, at least one character."""
    lo, hi = 1, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(text[:mid]) <= width:
            lo = mid
        else:
            hi = mid - 1
    return lo


def spoken_ends(text: str, words: Iterable[Mark]) -> list[tuple[int, int]]:
    """For each word mark found in ``text``, in order: (its first sample, how many characters of
    ``text`` are spoken once it starts, punctuation after it included). Marks whose label is not
    found after the previous word are skipped."""
    out: list[tuple[int, int]] = []
    cursor = 0
    for mark in sorted(words, key=lambda m: m.start):
        label = mark.label.strip()
        if not label:
            continue
        # Latin words match whole ("a" must not match inside "have").
        edge_a = r"(?<![A-Za-z0-9])" if label[0].isascii() and label[0].isalnum() else ""
        edge_b = r"(?![A-Za-z0-9])" if label[-1].isascii() and label[-1].isalnum() else ""
        found = re.compile(edge_a + re.escape(label) + edge_b, re.IGNORECASE).search(text, cursor)
        if found is None:
            continue
        end = found.end()
        while end < len(text) and not text[end].isalnum() and not text[end].isspace():
            end += 1
        out.append((mark.start, end))
        cursor = end
    return out


# --- burn-in -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Overlay:
    """A rendered caption box in yuv420p, ready to blend: for each plane, 256 - alpha (8-bit fixed
    point) and the premultiplied colour, rounding included."""

    x: int  # top-left corner, even
    y: int
    keep_y: np.ndarray  # uint16, full size
    add_y: np.ndarray
    keep_c: np.ndarray  # uint16, half size (both chroma planes share the alpha)
    add_u: np.ndarray
    add_v: np.ndarray

    def blend(self, buf: np.ndarray, video: VideoFormat) -> None:
        y, u, v = planes(buf, video.width, video.height)
        _blend(y, self.x, self.y, self.keep_y, self.add_y)
        _blend(u, self.x // 2, self.y // 2, self.keep_c, self.add_u)
        _blend(v, self.x // 2, self.y // 2, self.keep_c, self.add_v)


def _blend(plane: np.ndarray, x: int, y: int, keep: np.ndarray, add: np.ndarray) -> None:
    h, w = keep.shape
    region = plane[y : y + h, x : x + w]
    mixed = region.astype(np.uint16)
    mixed *= keep
    mixed += add
    mixed >>= 8
    region[...] = mixed


class Captioner:
    """Burns the sentence being spoken into frames (``captions.burn``: "sentence" or "words").

    Call it on each frame an avatar drew; it returns the frame untouched (the same object) when
    there is nothing to show, else a new yuv420p buffer. It never writes into the frame it is
    given: avatars hand out cached buffers.
    """

    OVERLAYS = 8  # rendered pages kept: the one on screen and a few before it

    def __init__(self, video: VideoFormat, settings: CaptionSettings) -> None:
        self.video = video
        self.mode = settings.burn
        if self.mode == "off":
            return
        file, face = find_font(settings.font)
        self.font = load_font(file, face, round(settings.size * video.height))
        em = self.font.size
        # Line metrics from the ink of tall and deep glyphs rather than the font's ascent and
        # descent, which CJK fonts make generous (1.45 em a line in Noto Sans CJK).
        _, top, _, bottom = self.font.getbbox("国Hgjy", anchor="ls")
        gap = _GAP * em
        self._line = math.ceil(bottom - top + gap)
        self._baseline = gap / 2 - top  # from a line's top
        self._pad_x, self._pad_y = round(_PAD_X * em), round(_PAD_Y * em)
        self._width = WIDTH * video.width - 2 * self._pad_x  # for text
        self._layout = lru_cache(maxsize=8)(self._wrap)
        self._overlays: OrderedDict[tuple[str, int, int], _Overlay] = OrderedDict()
        self._plan: tuple[Segment, str, list[int], list[int]] | None = None

    def __call__(self, frame: bytes | np.ndarray, ctx: FrameContext) -> bytes | np.ndarray:
        shown = self.shown(ctx)
        if shown is None:
            return frame
        out = frame.reshape(-1).copy() if isinstance(frame, np.ndarray) else np.frombuffer(frame, np.uint8).copy()
        self._overlay(*shown).blend(out, self.video)
        return out

    def shown(self, ctx: FrameContext) -> tuple[str, int, int] | None:
        """What frame ``ctx`` shows: (the sentence, its page, how many of its characters), or
        None for no caption."""
        if self.mode == "off":
            return None
        placed = ctx.placed
        if placed is None or placed.segment.kind != "speech" or not placed.segment.text:
            return None
        text, starts, ends = self._words(placed.segment)
        if not text:
            return None
        elapsed = ctx.position - placed.start
        if ends:
            started = bisect_right(starts, elapsed)  # words that have started
            spoken = ends[started - 1] if started else 0
            at = max(spoken - 1, 0)  # the last character spoken picks the page
            reveal = spoken if self.mode == "words" else len(text)
            if reveal == 0:
                return None
        else:  # no word timings: turn pages at an even pace through the sentence
            at = min(len(text) - 1, elapsed * len(text) // max(1, len(placed.segment)))
            reveal = len(text)
        lines = self._layout(text)
        line = max(0, bisect_right([a for a, _ in lines], at) - 1)
        page = line // MAX_LINES
        page_end = lines[min(len(lines), (page + 1) * MAX_LINES) - 1][1]
        return text, page, min(reveal, page_end)

    def _words(self, segment: Segment) -> tuple[str, list[int], list[int]]:
        """The segment's text with its spaces tidied, and its word plan (see ``spoken_ends``),
        worked out once per segment."""
        if self._plan is None or self._plan[0] is not segment:
            text = " ".join((segment.text or "").split())
            plan = spoken_ends(text, segment.words)
            self._plan = (segment, text, [s for s, _ in plan], [e for _, e in plan])
        return self._plan[1], self._plan[2], self._plan[3]

    def _wrap(self, text: str) -> list[tuple[int, int]]:
        return wrap(text, self._width, self.font.getlength)

    def _overlay(self, text: str, page: int, reveal: int) -> _Overlay:
        key = (text, page, reveal)
        found = self._overlays.get(key)
        if found is None:
            found = self._overlays[key] = self._render(text, page, reveal)
            if len(self._overlays) > self.OVERLAYS:
                self._overlays.popitem(last=False)
        else:
            self._overlays.move_to_end(key)
        return found

    def _render(self, text: str, page: int, reveal: int) -> _Overlay:
        """The box for one page, sized for all of its text so it stays put while words appear."""
        v = self.video
        spans = self._layout(text)[page * MAX_LINES : (page + 1) * MAX_LINES]
        widths = [self.font.getlength(text[a:b]) for a, b in spans]
        # Even sizes and corners: each 2x2 chroma block is wholly inside the box or outside it.
        w = min(even(v.width), even(math.ceil(max(widths) + 2 * self._pad_x) + 1))
        h = min(even(v.height), even(len(spans) * self._line + 2 * self._pad_y + 1))
        x = even((v.width - w) / 2)
        y = max(0, even(v.height - MARGIN * v.height - h))
        mask = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(mask)
        for i, ((a, b), lw) in enumerate(zip(spans, widths)):
            if reveal > a:
                at = ((w - lw) / 2, self._pad_y + i * self._line + self._baseline)
                draw.text(at, text[a : min(b, reveal)], fill=255, font=self.font, anchor="ls")
        box = Image.new("RGBA", (w, h), (0, 0, 0, BOX_ALPHA))
        ink = Image.new("RGBA", (w, h), (255, 255, 255, 0))
        ink.putalpha(mask)
        rgba = np.asarray(Image.alpha_composite(box, ink))
        # The caption's colours are neutral (black, white, greys), so averaging the straight
        # colour over 2x2 blocks, as rgb_to_yuv_planes does, gives the same chroma as weighting
        # by alpha would.
        planes = rgb_to_yuv_planes(rgba[..., :3])
        alpha = rgba[..., 3].astype(np.float32) / 255.0
        alpha_c = 0.25 * (alpha[0::2, 0::2] + alpha[1::2, 0::2] + alpha[0::2, 1::2] + alpha[1::2, 1::2])
        a_y, a_c = np.round(alpha * 256).astype(np.uint16), np.round(alpha_c * 256).astype(np.uint16)
        y_p, u_p, v_p = (p.astype(np.uint16) for p in planes)
        return _Overlay(x, y, 256 - a_y, y_p * a_y + 128, 256 - a_c, u_p * a_c + 128, v_p * a_c + 128)


# --- WebVTT --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cue:
    start: float  # seconds
    end: float
    text: str


def cue_for(segment: Segment, start_sample: int, rate: int) -> Cue:
    """The cue for a speech segment placed on the stream at ``start_sample``."""
    return Cue(start_sample / rate, (start_sample + len(segment)) / rate, segment.text or "")


def timestamp(seconds: float) -> str:
    """WebVTT's HH:MM:SS.mmm (hours grow past two digits when they must)."""
    ms = max(0, round(seconds * 1000))
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def cue_text(text: str) -> str:
    """Cue payload: one line (a blank line would end the cue), with &, < and > escaped (so it can
    hold neither markup nor the "-->" that marks a timing line)."""
    one = " ".join(text.split())
    return one.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webvtt(cues: Iterable[Cue]) -> str:
    """A WebVTT document of ``cues`` (in time order), numbered from 1; cues without text are left out."""
    blocks = ["WEBVTT\n"]
    n = 0
    for cue in cues:
        text = cue_text(cue.text)
        if text:
            n += 1
            blocks.append(f"{n}\n{timestamp(cue.start)} --> {timestamp(cue.end)}\n{text}\n")
    return "\n".join(blocks)
