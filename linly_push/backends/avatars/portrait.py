"""The portrait avatar: a user's photo (``avatar.image``) that speaks, blinks and moves a little.

At start-up the face is found once, with mediapipe's face mesh when it is installed, else (or
when the mesh finds nothing, or fails: a warning says so) with OpenCV's Haar cascade and the usual
proportions of a face. The photo is fitted into the frame around the face and converted to
yuv420p; what moves is a box around the head, kept as YUV 4:4:4 so warping and blending stay
linear:

- the mouth: per mouth shape a backward warp of the lower face (the jaw drops, the lips spread
  or round) and a synthesized inside (a dark cavity shaded from the lips' colour, upper and
  lower teeth, the tongue), rendered on demand and kept in a bounded cache, since shapes are
  smoothed over a frame or two;
- the eyes: a blink is the upper lid sliding down over the eyeball, lashes and crease kept;
  saccades move the eyeball between the lids; a louder syllable raises the brows (one warp per
  eye, cached per closure, gaze and lift);
- the head: a sway of a pixel or two, breathing, slow turns (the features move against the
  face's outline) and nods with the jaw and on emphasis: one remap of the box whose strength
  fades to nothing at its edge, so no seam shows where the moving part meets the still photo.

A frame is the cached still frame with that box converted and pasted over it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import os
import random
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageColor, ImageOps, UnidentifiedImageError
from pydantic import Field

from ...errors import BackendError, InputError, LinlyPushWarning, UsageError
from ...media import VideoFormat
from ...timeline import FrameContext
from ...video import KB, KG, KR, even, planes
from ..base import Avatar, BackendOptions, Colour, reason
from .gestures import Schedule, blink_gap
from .visemes import Loudness, Viseme, viseme_at

Detector = Literal["auto", "mesh", "haar"]
# The widest idle turn and the deepest nod: how far the features move against the face's outline,
# as a share of the face's height (5 and 3 pixels for a face 260 pixels tall, as at hd).
_TURN, _NOD = 0.02, 0.012
_MOUTH_CACHE_BYTES = 64 * 2**20  # rendered mouth shapes


class PortraitOptions(BackendOptions):
    image: str = Field(examples=["photo.jpg"])  # the photo
    background: Colour = "#202020"  # fills the frame where the photo does not reach
    blink_interval: float = Field(4.0, ge=1.0, le=30.0)  # mean seconds between blinks
    head_motion: float = Field(1.0, ge=0.0, le=3.0)  # idle life: sway, turns, saccades, brows; 0 keeps all still
    mouth: float = Field(1.0, ge=0.0, le=1.5)  # how far the jaw opens; 1 is a natural speaker
    seed: int = 0  # blinks, glances and sway phases are drawn from it
    detector: Detector = "auto"  # auto: the face mesh, falling back to the Haar cascade



# ---------------------------------------------------------------------------------------------
# Finding the face.

# The points a face is described by, in this order, as face-mesh landmark numbers: mouth corners,
# inner and outer lip midpoints, chin, forehead, cheeks, and per eye its corners and lid midpoints.
_MESH = (61, 291, 13, 14, 0, 17, 152, 10, 234, 454, 33, 133, 159, 145, 263, 362, 386, 374)
# The same points as fractions of a Haar face box (x, y, width, height): an average frontal face.
_HAAR = (
    (0.31, 0.8), (0.69, 0.8), (0.5, 0.83), (0.5, 0.83), (0.5, 0.78), (0.5, 0.92), (0.5, 1.17), (0.5, 0.05),
    (0.02, 0.47), (0.98, 0.47), (0.19, 0.37), (0.39, 0.39), (0.29, 0.335), (0.29, 0.405),
    (0.81, 0.37), (0.61, 0.39), (0.71, 0.335), (0.71, 0.405),
)  # fmt: skip
_DETECT_SIDE = 1280  # photos are searched at most this large: faster, and as good for a portrait


@dataclass(frozen=True, eq=False)
class Face:
    """Where a face is, in pixels (x right, y down), and which detector found it."""

    points: np.ndarray  # (18, 2) float, in the order of _MESH
    detector: Literal["mesh", "haar"]

    @property
    def mouth_corners(self) -> tuple[np.ndarray, np.ndarray]:
        return self.points[0], self.points[1]

    @property
    def mouth_centre(self) -> np.ndarray:
        return (self.points[2] + self.points[3]) / 2

    @property
    def lips(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Inner top, inner bottom, outer top, outer bottom midpoints."""
        return self.points[2], self.points[3], self.points[4], self.points[5]

    @property
    def chin(self) -> np.ndarray:
        return self.points[6]

    @property
    def eyes(self) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """Per eye: outer corner, inner corner, upper lid, lower lid."""
        return tuple(self.points[10:14]), tuple(self.points[14:18])

    @property
    def eye_centre(self) -> np.ndarray:
        return self.points[10:18].mean(axis=0)

    @property
    def height(self) -> float:
        """Forehead to chin."""
        return float(np.linalg.norm(self.points[6] - self.points[7]))

    @property
    def box(self) -> tuple[float, float, float, float]:
        """x0, y0, x1, y1 around every point: forehead to chin, cheek to cheek."""
        (x0, y0), (x1, y1) = self.points.min(axis=0), self.points.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    def moved(self, scale: float, offset: tuple[float, float]) -> Face:
        return Face(self.points * scale + np.asarray(offset), self.detector)


def find_face(rgb: np.ndarray, detector: Detector = "auto") -> Face | None:
    """The most prominent face in an RGB photo, or None.

    The face mesh (if mediapipe is installed) looks at the whole photo first; its own detector
    misses faces that are small in the picture, so next the Haar cascade finds the face's box
    and the mesh looks again inside it; ``haar`` (and ``auto`` when the mesh finds nothing or
    cannot run) then places the points by the proportions of an average face in that box.
    With ``auto``, a mesh that fails is a LinlyPushWarning; with ``mesh``, UsageError if
    mediapipe is not installed and BackendError if it fails.
    """
    h, w = rgb.shape[:2]
    k = min(1.0, _DETECT_SIDE / max(h, w))
    small = rgb if k == 1.0 else _resize(rgb, k)
    use_mesh = detector != "haar" and importlib.util.find_spec("mediapipe") is not None
    if detector == "mesh" and not use_mesh:
        raise UsageError(
            "portrait: avatar.detector=mesh needs mediapipe (pip install 'linly-push[portrait]'); or use haar"
        )
    found = None
    if use_mesh:
        try:
            found = _mesh(small)
        except Exception as exc:  # installed but broken, e.g. by a protobuf too new for it
            if detector == "mesh":
                raise BackendError(
                    f"portrait: avatar.detector=mesh, but mediapipe's face mesh fails here ({reason(exc)});"
                    " reinstall it (pip install 'linly-push[portrait]') or use avatar.detector=haar"
                ) from None
            warnings.warn(
                f"portrait: mediapipe's face mesh fails here ({reason(exc)}); finding the face with"
                " OpenCV's Haar cascade instead",
                LinlyPushWarning,
            )
            use_mesh = False
    if found is None:
        box = _haar_box(small, required=not use_mesh)
        if box is not None:
            found = _mesh_around(small, box) if use_mesh else None
            if found is None and detector != "mesh":
                found = _from_box(box)
    # Back to the photo's own pixels (pixel centres at integers, as cv2 counts them).
    return None if found is None else Face((found.points + 0.5) / k - 0.5, found.detector)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """mediapipe's C++ core writes start-up chatter (TFLite, absl) to file descriptor 2 itself."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _mesh(rgb: np.ndarray) -> Face | None:
    with _native_stderr_silenced():
        import mediapipe as mp

        with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
            result = mesh.process(np.ascontiguousarray(rgb))
    if not result.multi_face_landmarks:
        return None
    marks = result.multi_face_landmarks[0].landmark
    h, w = rgb.shape[:2]
    # Landmarks are fractions of the image; pixel i covers [i, i + 1).
    return Face(np.array([(marks[i].x * w - 0.5, marks[i].y * h - 0.5) for i in _MESH]), "mesh")


def _mesh_failure() -> str | None:
    """Why mediapipe's face mesh cannot run here, or None when it runs (on a blank picture)."""
    if importlib.util.find_spec("mediapipe") is None:
        return "mediapipe is not installed"
    try:
        with _native_stderr_silenced():
            importlib.import_module("mediapipe")
    except Exception as exc:
        return f"mediapipe fails to import: {reason(exc)}"
    try:
        _mesh(np.zeros((64, 64, 3), np.uint8))
    except Exception as exc:
        return f"mediapipe's face mesh fails: {reason(exc)}"
    return None


def _mesh_around(rgb: np.ndarray, box: tuple[int, int, int, int]) -> Face | None:
    """The face mesh on a square crop around a face's box (x, y, width, height)."""
    x, y, w, h = box
    side = round(2.2 * max(w, h))
    x0, y0 = max(0, round(x + w / 2 - side / 2)), max(0, round(y + h / 2 - side / 2))
    found = _mesh(rgb[y0 : y0 + side, x0 : x0 + side])
    return None if found is None else found.moved(1.0, (x0, y0))


def _haar_box(rgb: np.ndarray, required: bool) -> tuple[int, int, int, int] | None:
    """The largest frontal face's box (x, y, width, height), or None. Without cascades (OpenCV 5
    has none): UsageError if ``required``, else None."""
    import cv2

    path = _cascade_path()
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        if required:
            raise UsageError(f"portrait: OpenCV has no Haar cascades ({path}); pip install 'linly-push[portrait]'")
        return None
    gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    side = max(24, min(gray.shape) // 24)  # smaller is too small to animate, and often not a face
    faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return int(x), int(y), int(w), int(h)


def _cascade_path() -> Path:
    import cv2

    return Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"


def _from_box(box: tuple[int, int, int, int]) -> Face:
    x, y, w, h = box
    return Face(np.array([(x + fx * w, y + fy * h) for fx, fy in _HAAR], np.float64), "haar")


# ---------------------------------------------------------------------------------------------
# The photo in the frame.


def load_photo(path: Path, background: tuple[int, int, int]) -> np.ndarray:
    """The photo at ``path`` as HxWx3 RGB, upright (EXIF orientation), transparency over
    ``background``. InputError when it is missing or not an image."""
    if not path.is_file():
        raise InputError(f"portrait: photo {path} {'is not a file' if path.exists() else 'not found'}")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                rgba = im.convert("RGBA")
                im = Image.new("RGB", im.size, background)
                im.paste(rgba, mask=rgba)
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise InputError(f"portrait: cannot read {path} as a picture ({exc}); use a JPEG or PNG photo") from None


def _resize(rgb: np.ndarray, k: float) -> np.ndarray:
    """``rgb`` scaled by ``k``: area averaging to shrink (no aliasing), Lanczos to enlarge (the
    sharpest of OpenCV's filters, without the blur of bicubic)."""
    import cv2

    h, w = rgb.shape[:2]
    how = cv2.INTER_AREA if k < 1 else cv2.INTER_LANCZOS4
    return cv2.resize(rgb, (max(1, round(w * k)), max(1, round(h * k))), interpolation=how)


# Framing: the face takes 28-50 % of the frame's height; the photo covers the frame when that
# allows, else it is shown whole with borders. The eyes sit 40 % down, the face centred across,
# unless that would pull an edge of the photo into the frame.
_FACE_MIN, _FACE_MAX, _EYES_AT = 0.28, 0.5, 0.4
_SHARP = 1.25  # enlarging a photo more than this shows: say what photo would be sharp


def fit(
    rgb: np.ndarray, face: Face, width: int, height: int, background: tuple[int, int, int]
) -> tuple[np.ndarray, Face]:
    """The frame (HxWx3 RGB) showing the photo placed around its face, and the face in it.

    The photo is scaled once (``_resize``) and then placed at whole pixels, without resampling
    again. Enlarged by more than ``_SHARP``, a LinlyPushWarning says what photo would be sharp.
    """
    import cv2

    ih, iw = rgb.shape[:2]
    cover = max(width / iw, height / ih)
    s = min(max(cover, _FACE_MIN * height / face.height), _FACE_MAX * height / face.height)
    if s > _SHARP:
        warnings.warn(
            f"portrait: the photo ({iw}x{ih}) is enlarged {s:.1f}x to frame its face at {width}x{height},"
            f" which softens it: for a sharp picture use one of at least {math.ceil(iw * s)}x{math.ceil(ih * s)}"
            f" (the face, forehead to chin, {math.ceil(face.height * s)} px tall or more)",
            LinlyPushWarning,
        )
    if s != 1:
        rgb = _resize(rgb, s)
        sx, sy = rgb.shape[1] / iw, rgb.shape[0] / ih
        face = Face((face.points + 0.5) * (sx, sy) - 0.5, face.detector)
    ph, pw = rgb.shape[:2]
    cx = (face.eye_centre[0] + face.mouth_centre[0]) / 2
    ox = round(_clamp(width / 2 - cx, width - pw))
    oy = round(_clamp(_EYES_AT * height - face.eye_centre[1], height - ph))
    m = np.array([[1, 0, ox], [0, 1, oy]], np.float64)
    # Whole pixels: a copy, with the background where the photo does not reach.
    frame = cv2.warpAffine(rgb, m, (width, height), flags=cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=background)  # fmt: skip
    return frame, face.moved(1.0, (ox, oy))


def _clamp(offset: float, slack: float) -> float:
    """An offset within [slack, 0] when the photo is larger than the frame (no border shows), or
    within [0, slack] when smaller (none of it is cut)."""
    return min(max(offset, min(0.0, slack)), max(0.0, slack))


# ---------------------------------------------------------------------------------------------
# Pixels: everything that moves is warped and blended as YUV 4:4:4 (BT.709, limited range; the
# conversion is linear, so this equals working in RGB), then subsampled.

_RGB_TO_YUV = np.array(
    [
        [219 / 255 * KR, 219 / 255 * KG, 219 / 255 * KB, 16.0],
        [*(224 / 255 * (np.array([0, 0, 1]) - (KR, KG, KB)) / (2 - 2 * KB)), 128.0],  # (B - Y) scaled
        [*(224 / 255 * (np.array([1, 0, 0]) - (KR, KG, KB)) / (2 - 2 * KR)), 128.0],  # (R - Y) scaled
    ]
)


def yuv444(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB to HxWx3 uint8 Y, U, V (rounded, clipped): one pass in C."""
    import cv2

    return cv2.transform(rgb, _RGB_TO_YUV)


_BLACK = _RGB_TO_YUV[:, 3].astype(np.float32)


def to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """``video.rgb_to_yuv420p`` (within one level: chroma is rounded before it is averaged),
    several times faster."""
    yuv = yuv444(rgb)
    return np.concatenate([yuv[..., 0].ravel(), _subsample(yuv)[..., 1:].transpose(2, 0, 1).ravel()])


def _yuv_light(rgb: tuple[float, float, float]) -> np.ndarray:
    """An RGB colour as Y, U, V less their black (16, 128, 128): scaling it scales the light."""
    return (_RGB_TO_YUV[:, :3] @ np.asarray(rgb, np.float64)).astype(np.float32)


def _subsample(yuv: np.ndarray) -> np.ndarray:
    """HxWx3 (H, W even) to (H/2)x(W/2)x3, averaging each 2x2 block (used for U and V)."""
    import cv2

    h, w = yuv.shape[:2]
    return cv2.resize(yuv, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def _smooth(t: np.ndarray) -> np.ndarray:
    """Smoothstep: 0 below 0, 1 above 1, a gentle S between."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _even_box(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The pixel box around these bounds, on even pixels (chroma is subsampled 2x2), in the frame."""
    return max(0, even(x0)), max(0, even(y0)), min(width, even(x1, math.ceil)), min(height, even(y1, math.ceil))


@dataclass(frozen=True, eq=False)
class _Frame:
    """A local frame of the face: origin, unit x axis, unit y axis (pointing down), unit length."""

    origin: np.ndarray
    u: np.ndarray
    n: np.ndarray
    unit: float

    @classmethod
    def along(cls, origin: np.ndarray, a: np.ndarray, b: np.ndarray, unit: float) -> _Frame:
        u = (b - a) / max(float(np.linalg.norm(b - a)), 1e-6)
        n = np.array([-u[1], u[0]])
        if n[1] < 0:  # y points down the face whichever way a -> b runs
            u, n = -u, -n
        return cls(origin, u, n, unit)

    def to_local(self, p: np.ndarray) -> tuple[float, float]:
        d = p - self.origin
        return float(d @ self.u) / self.unit, float(d @ self.n) / self.unit

    def grid(self, box: tuple[int, int, int, int], step: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Local coordinates of the pixel centres in ``box`` (x0, y0, x1, y1), or with ``step`` 2
        of the centres of its 2x2 blocks (the samples cv2.resize scales up from)."""
        x0, y0, x1, y1 = box
        c = (step - 1) / 2
        dx = np.arange(x0, x1, step, dtype=np.float32)[None, :] + np.float32(c - self.origin[0])
        dy = np.arange(y0, y1, step, dtype=np.float32)[:, None] + np.float32(c - self.origin[1])
        k = np.float32(1 / self.unit)
        u, n = self.u.astype(np.float32), self.n.astype(np.float32)
        return (dx * u[0] + dy * u[1]) * k, (dx * n[0] + dy * n[1]) * k

    def maps(self, dx: np.ndarray, dy: np.ndarray, ident: np.ndarray) -> np.ndarray:
        """A cv2.remap map (HxWx2 float) from local displacements (on the grid of ``ident``, the
        box's own pixel positions, or of its 2x2 blocks, then scaled up: they are smooth)."""
        import cv2

        u, n = self.u * self.unit, self.n * self.unit
        u, n = u.astype(np.float32), n.astype(np.float32)
        d = np.stack([dx * u[0] + dy * n[0], dx * u[1] + dy * n[1]], axis=-1)
        if d.shape[:2] != ident.shape[:2]:
            d = cv2.resize(d, (ident.shape[1], ident.shape[0]), interpolation=cv2.INTER_LINEAR)
        return d + ident

    def bounds(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        """The pixel bounding box of a local rectangle."""
        corners = np.array([self.origin + (x * self.u + y * self.n) * self.unit for x in (x0, x1) for y in (y0, y1)])
        (a, b), (c, d) = corners.min(axis=0), corners.max(axis=0)
        return float(a), float(b), float(c), float(d)


# ---------------------------------------------------------------------------------------------
# The mouth.


@dataclass(frozen=True)
class Shape:
    """A mouth shape: jaw opening (0-1, ``Viseme.openness``), width (>1 spread, <1 rounded), how
    round the opening is, how much upper teeth, tongue and lower teeth show (0-1), and how far
    lips the photo shows apart are closed and pressed together (0-1)."""

    open: float
    width: float = 1.0
    round: float = 0.0
    teeth: float = 0.0
    tongue: float = 0.0
    lower: float = 0.0
    press: float = 0.0

    def toward(self, other: Shape, k: float) -> Shape:
        def step(a: float, b: float, q: float) -> float:
            # Quantized, so a settled shape is exactly its target and each is rendered once.
            v = round((a + (b - a) * k) / q) * q
            return b if abs(v - b) < q / 2 else v

        return Shape(
            step(self.open, other.open, 0.02), step(self.width, other.width, 0.01), step(self.round, other.round, 0.1),
            step(self.teeth, other.teeth, 0.1), step(self.tongue, other.tongue, 0.1), step(self.lower, other.lower, 0.1),
            step(self.press, other.press, 0.1),
        )  # fmt: skip


_V = Viseme
# Width, roundness, upper teeth, tongue, lower teeth, press per viseme (the opening is its
# openness): spread for E, I, SZ, with both rows of teeth; rounded and narrow for O, U, CH; lips
# closed and pressed for MBP; FV's lower lip tucks under the upper teeth.
_SHAPES: dict[Viseme, Shape] = {v: Shape(v.openness, *rest) for v, rest in {
    _V.REST: (1.0, 0.0, 0.0, 0.0, 0.0), _V.MBP: (0.96, 0.0, 0.0, 0.0, 0.0, 1.0), _V.FV: (1.0, 0.0, 1.0, 0.0, 0.0),
    _V.TH: (1.0, 0.0, 0.7, 1.0, 0.3), _V.L: (1.0, 0.2, 0.6, 0.8, 0.3), _V.SZ: (1.08, 0.0, 1.0, 0.0, 0.9),
    _V.CH: (0.88, 0.8, 0.7, 0.2, 0.5), _V.AA: (1.0, 0.3, 0.5, 0.9, 0.15), _V.E: (1.08, 0.1, 0.8, 0.5, 0.5),
    _V.I: (1.1, 0.0, 1.0, 0.0, 0.8), _V.O: (0.86, 1.0, 0.2, 0.6, 0.1), _V.U: (0.8, 1.0, 0.0, 0.0, 0.0),
}.items()}  # fmt: skip
del _V

_JAW = 0.58  # the opening at openness 1, in half mouth widths (speech, not a yawn)
_UPPER = 0.22  # the share of the opening the upper lip takes (the jaw takes the rest)
_TEETH = 0.3  # upper teeth showing, in half mouth widths
_LOWER_TEETH = 0.24  # lower teeth showing above the lower lip, in half mouth widths
_ENDS = 0.9  # where the opening ends, in half mouth widths: short of the corners
_EDGE = 0.035  # the inside's edge is blended over this much (1.2 px at least): soft, as lips are
_INSIDE_RGB, _TONGUE_RGB, _TEETH_RGB = (84.0, 16.0, 20.0), (196.0, 88.0, 92.0), (232.0, 226.0, 212.0)


class _Mouth:
    """Renders the mouth region of the still picture for any Shape.

    Local units: the origin between the inner lips, x along the mouth (corners at -1 and 1),
    y down the face, 1 = half the mouth's width. Warps are backward maps (each output pixel
    says where in the photo to look) designed directly, so none folds over. The warp is worked
    out on 2x2 blocks and scaled up; the inside, which has edges, per pixel in a small box.
    """

    def __init__(self, face: Face, still: np.ndarray, strength: float, rgb: np.ndarray) -> None:
        """``still``: the frame as YUV 4:4:4; ``rgb``: as RGB (for the lips' colour)."""
        left, right = face.mouth_corners
        top_in, bottom_in, top_out, bottom_out = face.lips
        half = max(float(np.linalg.norm(right - left)) / 2, 2.0)
        f = self.frame = _Frame.along(face.mouth_centre, left, right, half)
        self._corner_y = (f.to_local(left)[1] + f.to_local(right)[1]) / 2  # lip line: corner_y * x^2
        self._gap = max(0.0, (f.to_local(bottom_in)[1] - f.to_local(top_in)[1]) / 2)  # lips already apart
        self._upper = max(0.6, -f.to_local(top_out)[1] + 0.35)  # the upper lip and a little above it
        self._lower = max(0.6, f.to_local(bottom_out)[1] + 0.2)
        self._chin = max(1.0, f.to_local(face.chin)[1])
        # Each lip's height from where the lips meet (or, apart, from its inner edge).
        self._lip_up = max(0.2, -f.to_local(top_out)[1] + f.to_local(top_in)[1])
        self._lip_down = max(0.2, f.to_local(bottom_out)[1] - f.to_local(bottom_in)[1])
        self._jaw = _JAW * strength
        # The neck under the chin takes up the jaw's drop; long enough not to crease.
        self._neck = max(1.2, 1.5 * self._jaw)
        size = still.shape[1], still.shape[0]
        lip_lo, lip_hi = min(0.0, 2.5 * self._corner_y), max(0.0, 2.5 * self._corner_y) + self._gap
        top = lip_lo - _UPPER * self._jaw - self._upper - 0.1
        self._top = top  # the box's top, locally: the sideways pull fades out before it
        self.box = _even_box(*f.bounds(-2.4, top, 2.4, self._chin + self._jaw + self._neck + 0.1), *size)
        bx0, by0, bx1, by1 = self.box
        self._src = still[by0:by1, bx0:bx1]
        self._ident = _identity(self.box)
        self._coarse = f.grid(self.box, 2)
        # Where the opening can be (the corners move out by 10 % at most), relative to the box.
        opening = f.bounds(-1.25, lip_lo - _UPPER * self._jaw - 0.1, 1.25, lip_hi + self._jaw + 0.1)
        ix0, iy0, ix1, iy1 = _even_box(*opening, *size)
        ix0, iy0, ix1, iy1 = max(ix0, bx0), max(iy0, by0), min(ix1, bx1), min(iy1, by1)
        self._inner = np.s_[iy0 - by0 : iy1 - by0, ix0 - bx0 : ix1 - bx0]
        self._fine = f.grid((ix0, iy0, ix1, iy1))
        # The inside's colours, half from the lips' own (so they suit the face and the light).
        lip = np.mean([_sample(rgb, (top_in + top_out) / 2), _sample(rgb, (bottom_in + bottom_out) / 2)], axis=0)
        self._dark = _yuv_light(tuple(0.55 * np.asarray(_INSIDE_RGB) + 0.12 * lip))
        self._wet = _yuv_light(tuple(0.55 * lip))  # the inside of the lips, where the cavity begins
        self._tongue = _yuv_light(tuple(0.7 * np.asarray(_TONGUE_RGB) + 0.25 * lip))
        self._teeth = _yuv_light(_teeth_colour(rgb, face))

    def _opening(self, s: Shape, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
        """Where output point (x, y) comes from in the photo (xs, and q: 1 mid-mouth, 0 at and past
        the end of the opening), the lips' line, the opening's height and its top and bottom edge.
        The lips stay together for the last tenth before each corner, so the opening's ends are
        rounded rather than pointed."""
        r = np.sqrt(x * x + (y / 0.8) ** 2)
        xs = x * (1 + (1 / s.width - 1) * _smooth((1.9 - r) / 1.0))  # corners move, cheeks follow a little
        split = self._corner_y * np.minimum(xs * xs, 2.5) + self._gap * np.clip(1 - xs * xs, 0, 1)  # lower lip's edge
        q = np.clip(1 - (xs / _ENDS) ** 2, 0, 1)
        h = self._jaw * s.open * q ** (0.6 - 0.25 * s.round)  # its height; rounder shapes are fuller
        return xs, q, split, h, split - _UPPER * h, split + (1 - _UPPER) * h

    def _pressed(self, p: float, xs: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Where in the photo (local y) to look for lips ``p`` of the way to closed and pressed:
        lips the photo shows apart each come half the gap down or up (over the teeth between
        them), and both are squeezed a little towards the line where they meet, as pressed lips
        are."""
        line = self._corner_y * np.minimum(xs * xs, 2.5)
        half = self._gap * np.clip(1 - xs * xs, 0, 1)  # half the gap between the lips, in the photo
        up, down = self._lip_up + 0.15, self._lip_down + 0.15
        # Pressed: the lips thinner near where they meet (looked for further from it), no fold.
        d = y - line
        y = y + 0.25 * p * d * (1 - _smooth(np.abs(d) / (0.6 * min(up, down)))) * np.clip(1 - xs * xs, 0, 1)
        # Closing: the inner edges, at line -/+ half in the photo, come p of the way to the line.
        c = p * half
        top, bottom = line - half - up, line + half + down
        upper = top + (y - top) * up / (up + c)
        lower = bottom - (bottom - y) * down / (down + c)
        between = line + (y - line) * half / np.maximum(half - c, 1e-3)
        return np.where((y < top) | (y > bottom), y,
                        np.where(y <= line - half + c, upper, np.where(y >= line + half - c, lower, between)))  # fmt: skip

    def _seal(self, out: np.ndarray, s: Shape) -> None:
        """The line where closed lips meet, drawn dark over the sliver of teeth the warp's jump
        there leaves (it is worked out on 2x2 blocks)."""
        x, y = self._fine
        xs = self._opening(s, x, y)[0]
        line = self._corner_y * np.minimum(xs * xs, 2.5)
        px = float(self.frame.unit)
        strength = s.press * min(1.0, self._gap / 0.1)  # lips that met in the photo need no seal
        a = strength * np.clip(1.5 - np.abs(y - line) * px / 1.2, 0, 1) * _smooth((0.92 - np.abs(xs)) / 0.3)
        region = out[self._inner].astype(np.float32)
        region += a[..., None] * (0.7 * self._wet + _BLACK - region)
        out[self._inner] = np.clip(region + 0.5, 0, 255).astype(np.uint8)

    def render(self, s: Shape) -> np.ndarray:
        """The box's pixels (YUV 4:4:4) with the mouth in shape ``s``."""
        import cv2

        x, y = self._coarse
        up, j = _UPPER, self._jaw * s.open
        xs, q, split, h, top, bottom = self._opening(s, x, y)
        # Corners drawn in or out pull the cheeks along, but not the nose above: no seam at the
        # top of the box.
        xs = x + (xs - x) * _smooth((y - self._top) / max(0.6, -self._top / 2))
        # Above the opening the upper lip rises a little, fading out over the lip.
        ys = np.where(y <= top, y + up * h * _smooth(1 - (top - y) / self._upper), split)
        # Below it the jaw drops: the lower lip's own curve near the mouth, the whole chin further
        # down (over a stretch long enough not to fold), taken up by the neck under the chin.
        d = y - bottom
        lip_to_jaw = _smooth(d / max(self._lower, 1.6 * (1 - up) * j))
        chin = _smooth(2.0 - np.abs(xs))
        neck = _smooth(1 - (d - self._chin) / self._neck)
        drop = (1 - up) * (h * (1 - lip_to_jaw) + j * chin * lip_to_jaw) * neck
        ys = np.where(y >= bottom, y - drop, ys)
        if s.press:
            ys = self._pressed(s.press, xs, ys)
        out = cv2.remap(self._src, self.frame.maps(xs - x, ys - y, self._ident), None, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        if s.press and self._gap > 0:
            self._seal(out, s)
        if j == 0:
            return out
        # The inside: dark, upper teeth along its top (more of them than the photo shows already),
        # the tongue along its bottom; edges anti-aliased over a pixel.
        x, y = self._fine
        xs, q, split, h, top, bottom = self._opening(s, x, y)
        px = np.float32(self.frame.unit)
        depth = np.minimum(y - top, bottom - y)
        inside = np.clip(depth * px / max(1.2, _EDGE * px), 0, 1)[..., None]
        teeth_h = max(0.0, s.teeth * _TEETH - 2 * self._gap) * np.sqrt(q)
        teeth = np.clip((top + teeth_h - y) * px, 0, 1) * _smooth((0.85 - np.abs(xs)) / 0.3)
        # The tongue: a hump lying behind the lower teeth, lit at its tip, in shadow further back.
        tongue_top = bottom - s.tongue * h * (0.6 - 0.3 * xs * xs)
        tongue = np.clip((y - tongue_top) * px / 2.5, 0, 1) * _smooth((0.8 - np.abs(xs)) / 0.3)
        tongue_lit = (0.7 + 0.3 * _smooth((y - tongue_top) / np.maximum(0.3 * h, 1e-3)))[..., None]
        # The lower teeth: a row just above the lower lip, shorter, set further in.
        lower_h = s.lower * _LOWER_TEETH * s.open * np.sqrt(q)
        lower = np.clip((y - (bottom - lower_h)) * px, 0, 1) * _smooth((0.7 - np.abs(xs)) / 0.3)
        # From the lips' wet inner side into a dark cavity, darker towards the corners.
        deep = _smooth(depth / np.maximum(0.45 * h, 1e-3))[..., None]
        shade = (1.0 - 0.35 * deep - 0.3 * (1 - q)[..., None])
        colour = (self._wet + deep * (self._dark - self._wet)) * shade
        # Teeth in the lips' shadow at their roots, lit towards their edges, each tooth a little
        # rounded (darker where two meet): a row of teeth, not a white band.
        gaps = _tooth_gaps(xs)
        lit = (0.72 + 0.2 * _smooth((y - top) / np.maximum(teeth_h, 1e-3)) + 0.08 * q) * gaps
        colour += teeth[..., None] * (self._teeth * lit[..., None] - colour)
        colour += tongue[..., None] * (self._tongue * shade * tongue_lit - colour)
        colour += lower[..., None] * (self._teeth * ((0.66 + 0.14 * q) * _tooth_gaps(xs, 0.15))[..., None] - colour)
        region = out[self._inner].astype(np.float32)
        region += inside * (colour + _BLACK - region)
        out[self._inner] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
        return out


def _teeth_colour(rgb: np.ndarray, face: Face) -> tuple[float, float, float]:
    """Teeth lit as the face is: the colour of the skin's light (its hue, a share of its
    brightness) over an ivory, so teeth in a warm, dim photo are not a cold, bright white."""
    cheeks = [_sample(rgb, c + 0.45 * (face.chin - c), r=2) for c in face.points[8:10]]
    skin = max(cheeks, key=lambda c: float(c.sum()))  # the lit cheek, in a photo lit from one side
    light = skin / max(float(skin.max()), 1.0)
    k = min(1.0, 0.55 + 0.45 * float(skin.max()) / 230)  # dimmer skin, dimmer teeth
    return tuple(float(v) for v in np.asarray(_TEETH_RGB) * (0.6 + 0.4 * light) * k)  # type: ignore[return-value]


def _tooth_gaps(x: np.ndarray, width: float = 0.2) -> np.ndarray:
    """Light across a row of teeth ``width`` wide (in half mouth widths), the middle two meeting
    at 0: 1 across a tooth, falling to 0.9 where two meet, and darker towards the corners."""
    t = np.abs(x) / width
    edge = np.abs(t - np.round(t))  # 0 where two teeth meet, 0.5 mid-tooth
    return (0.9 + 0.1 * _smooth(edge / 0.25)) * (1 - 0.25 * _smooth(np.abs(x) - 0.3))


def _identity(box: tuple[int, int, int, int]) -> np.ndarray:
    """The remap map that leaves a box as it is: each pixel's own position within it."""
    xs, ys = np.meshgrid(np.arange(box[2] - box[0], dtype=np.float32), np.arange(box[3] - box[1], dtype=np.float32))
    return np.stack([xs, ys], axis=-1)


def _sample(rgb: np.ndarray, p: np.ndarray, r: int = 1) -> np.ndarray:
    """The mean colour around point ``p``."""
    h, w = rgb.shape[:2]
    x, y = min(max(round(p[0]), r), w - 1 - r), min(max(round(p[1]), r), h - 1 - r)
    return rgb[y - r : y + r + 1, x - r : x + r + 1].reshape(-1, 3).mean(axis=0)


# ---------------------------------------------------------------------------------------------
# The eyes.

_LID = 0.8  # the lid skin above the lash line that unfolds over a closing eye, in half eye widths
_LASHES = 0.2  # the lashes' band, carried down whole (stretching it would smear the lashes)
_BROW = 1.25  # the brow above the upper lid, lifted for emphasis; the box reaches past it


class _Eye:
    """Renders one eye's region closed by any amount, looking aside a little, its brow raised.

    Local units: the origin between the eye's corners (at x = -1 and 1), y down, 1 = half the
    eye's width; the lids are parabolas. A blink is the upper lid sliding down over the eyeball,
    which stays where it is: the lid's skin unfolds from under the crease and the band of lashes
    at its edge moves down whole, so a shut eye is skin with lashes along the lower lid.
    """

    def __init__(self, corners: tuple[np.ndarray, np.ndarray], lids: tuple[np.ndarray, np.ndarray],
                 still: np.ndarray) -> None:  # fmt: skip
        a, b = corners
        half = max(float(np.linalg.norm(b - a)) / 2, 2.0)
        f = self.frame = _Frame.along((a + b) / 2, a, b, half)
        self._upper = min(f.to_local(lids[0])[1], -0.05)
        self._lower = max(f.to_local(lids[1])[1], 0.05)
        self._top = self._upper - _BROW - 0.6
        bounds = f.bounds(-1.35, self._top, 1.35, self._lower + 0.25)
        self.box = _even_box(*bounds, still.shape[1], still.shape[0])
        bx0, by0, bx1, by1 = self.box
        self._src = still[by0:by1, bx0:bx1]
        self._ident = _identity(self.box)
        self._x, self._y = f.grid(self.box)
        # The lashes' colour: the darkest of the eye's opening (lashes, pupil).
        opening = (np.abs(self._x) < 0.8) & (self._y > self._upper * 0.8) & (self._y < self._lower * 0.8)
        dark = self._src[opening].astype(np.float32)
        self._lash = dark[dark[:, 0] <= np.percentile(dark[:, 0], 10)].mean(axis=0) if dark.size else _BLACK

    def render(self, closed: float, gaze: float = 0.0, lift: float = 0.0) -> np.ndarray:
        """The box's pixels (YUV 4:4:4) with the eye ``closed`` (0 open, 1 shut), the eyeball
        turned by ``gaze`` (half eye widths, + towards the image's right) and the brow raised by
        ``lift`` (half eye widths)."""
        import cv2

        x, y = self._x, self._y
        q = np.clip(1 - x * x, 0, 1)
        upper, lower = self._upper * q, self._lower * q
        top = upper - _LID
        drop = closed * (lower + 0.05 * q - upper)  # shut, the lid's edge lies along the lower lid
        # Backward map, top to bottom: the lid's skin stretched from the crease to the band at
        # its edge, the band moved down whole, then the eyeball as it is (turned by the gaze).
        start = upper - _LASHES * np.sqrt(q)
        stretch = (start - top) / np.maximum(start + drop - top, 1e-3)
        ys = np.where(y < top, y, top + (y - top) * stretch)
        ys = np.where(y >= start + drop, y - drop, ys)
        ys = np.where(y >= upper + drop, y, ys)
        eyeball = (y >= upper + drop) & (y <= lower)
        # The gaze moves what shows between the lids, most at the iris, none at the corners.
        inside = _smooth((y - upper) / 0.15) * _smooth((lower - y) / 0.15) * q
        xs = np.where(eyeball, x - gaze * inside, x)
        # The brow rises, the skin between it and the crease following, the lid and above the
        # brow less and less.
        if lift:
            brow = self._upper - _BROW
            up = np.where(y < brow, _smooth((y - self._top) / (brow - self._top)), _smooth((top - y) / (top - brow)))
            ys = ys + lift * up * _smooth((1.35 - np.abs(x)) / 0.5)
        maps = self.frame.maps(xs - x, ys - y, self._ident)
        out = cv2.remap(self._src, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if closed > 0:
            # The lashes along the lid's edge (the photo's own stay on the eyeball the lid covers:
            # the mesh marks the lid a little above them), drawn in as the lid comes down.
            d = np.abs(y - (upper + drop - 0.03)) * self.frame.unit
            lash = (_smooth(closed / 0.4) * np.sqrt(q) * np.clip(1.3 - d / max(1.0, 0.05 * self.frame.unit), 0, 1))
            lash = lash[..., None].astype(np.float32)
            out = np.clip(out + lash * (self._lash - out) + 0.5, 0, 255).astype(np.uint8)
        return out


# ---------------------------------------------------------------------------------------------
# The head.


class _Head:
    """Moves the head by a small rotation and translation, and turns or nods it: the middle of
    the face (eyes, nose, mouth) moves further than its outline, as it does when a head turns.
    Every motion fades out between the face and the edge of the region (hair and neck stretch
    by a pixel or two), so nothing tears."""

    def __init__(self, face: Face, roi: tuple[int, int, int, int]) -> None:
        x0, y0, x1, y1 = face.box
        rx0, ry0, rx1, ry1 = roi
        cx, cy, ax, ay = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        # The weight: 1 over the face, 0 from the largest ellipse that fits in the region.
        inner = 1.05
        outer = max(inner + 0.2, min((cx - rx0) / ax, (rx1 - cx) / ax, (cy - ry0) / ay, (ry1 - cy) / ay))
        # Worked out on 4x4 blocks and scaled up: the field is smooth, and 16x cheaper per frame.
        xs = np.arange(rx0, rx1, 4, dtype=np.float32) + 1.5
        ys = np.arange(ry0, ry1, 4, dtype=np.float32)[:, None] + 1.5
        r = np.sqrt(((xs - cx) / ax) ** 2 + ((ys - cy) / ay) ** 2)
        w = (1 - _smooth((r - inner) / (outer - inner))).astype(np.float32)
        px, py = np.float32(face.chin[0]), np.float32(face.chin[1] + 0.3 * face.height)  # the neck
        self._w, self._wx, self._wy = w, w * (xs - px), w * (ys - py)
        # The turn's weight: 1 between the eyes and the mouth, 0 at the face's outline.
        fx, fy = (face.eye_centre + face.mouth_centre) / 2
        rc = np.sqrt(((xs - fx) / ax) ** 2 + ((ys - fy) / ay) ** 2)
        self._wc = (1 - _smooth(rc / 0.95)).astype(np.float32)
        self._ident = _identity(roi)

    def maps(self, dx: float, dy: float, angle: float, turn: float = 0.0, nod: float = 0.0) -> np.ndarray:
        """A cv2.remap map for the region moved by (dx, dy) pixels and tilted by ``angle``
        radians, its features moved ``turn`` pixels aside and ``nod`` down against its outline."""
        import cv2

        c, s = math.cos(angle), math.sin(angle)
        # Backward: the source of p is the neck pivot + R(-angle) (p - pivot - t), weighted.
        tx, ty = c * dx + s * dy, -s * dx + c * dy
        wx, wy, w1, wc = self._wx, self._wy, self._w, self._wc
        d = np.stack([(c - 1) * wx + s * wy - tx * w1 - turn * wc, -s * wx + (c - 1) * wy - ty * w1 - nod * wc], axis=-1)
        h, w = self._ident.shape[:2]
        return cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR) + self._ident


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    """One state of the portrait, drawn on its own by ``PortraitAvatar.look`` (for contact sheets
    and previews): a mouth shape, the eyes, the brows and the head."""

    viseme: Viseme = Viseme.REST
    closed: float = 0.0  # the eyelids: 0 open, 1 shut
    gaze: float = 0.0  # the eyes turned aside, in half eye widths (+ towards the picture's right)
    emphasis: float = 0.0  # 0-1: the brows raised and the head dipped, as on a stressed syllable
    turn: float = 0.0  # the head turned, -1 to 1 of the widest idle turn (+ towards the picture's right)


class PortraitAvatar(Avatar):
    name = "portrait"
    description = "animates a photo of a face (avatar.image): lip-sync, blinks, glances, head motion"
    extra = "portrait"
    Options = PortraitOptions

    @classmethod
    def missing(cls) -> str | None:
        # find_spec, not import: every backend lookup asks, and mediapipe takes a second to import.
        spec = importlib.util.find_spec("cv2")
        if spec is None:
            return "opencv-contrib-python is not installed"
        folders = spec.submodule_search_locations or ()
        cascades = any((Path(p) / "data" / "haarcascade_frontalface_default.xml").is_file() for p in folders)
        if not cascades and importlib.util.find_spec("mediapipe") is None:
            return "neither mediapipe nor OpenCV's Haar cascades (OpenCV 5 has none) are installed"
        return None

    @classmethod
    def check(cls) -> str | None:
        try:
            import cv2
        except Exception as exc:  # found but not loadable, e.g. without libGL on a slim system
            return f"OpenCV fails to import: {reason(exc)} (on slim systems: apt install libgl1 libglib2.0-0)"
        mesh = _mesh_failure()
        if mesh is None:
            return None
        if cv2.CascadeClassifier(str(_cascade_path())).empty():
            return f"{mesh}, and OpenCV has no Haar cascades (OpenCV 5 has none)"
        warnings.warn(f"Haar detector only: {mesh}", LinlyPushWarning)
        return None

    def __init__(self, video: VideoFormat, options: BackendOptions) -> None:
        super().__init__(video, options)
        assert isinstance(options, PortraitOptions)
        o = options
        background: tuple[int, int, int] = ImageColor.getrgb(o.background)[:3]  # type: ignore[assignment]
        path = Path(o.image).expanduser()
        photo = load_photo(path, background)
        found = find_face(photo, o.detector)
        if found is None:
            raise InputError(
                f"portrait: no face found in {path}: use a clear, front-facing photo in which the face is"
                " large, whole and well lit"
            )
        width, height, fps = video.width, video.height, video.fps
        rgb, face = fit(photo, found, width, height, background)
        self.face = face  # where the face is in the frame
        still = yuv444(rgb)
        self._base = to_yuv420p(rgb)
        self._base.flags.writeable = False

        self._mouth = _Mouth(face, still, o.mouth, rgb)
        self._eyes = [_Eye((e[0], e[1]), (e[2], e[3]), still) for e in face.eyes]
        # The region that moves: the face with room for hair, jaw and neck around it.
        x0, y0, x1, y1 = face.box
        fw, fh = x1 - x0, y1 - y0
        boxes = [_even_box(x0 - 0.3 * fw, y0 - 0.35 * fh, x1 + 0.3 * fw, y1 + 0.2 * fh, width, height),
                 self._mouth.box, *(e.box for e in self._eyes)]  # fmt: skip
        lo, hi = np.min(boxes, axis=0), np.max(boxes, axis=0)
        self._roi = roi = (int(lo[0]), int(lo[1]), int(hi[2]), int(hi[3]))
        self._region = still[roi[1] : roi[3], roi[0] : roi[2]]
        self._head = _Head(face, roi) if o.head_motion > 0 else None
        # Rendered shapes, kept while they fit: smoothing visits a few between each two visemes.
        # Every viseme's own shape is rendered now, so speech rarely waits for one.
        entries = max(16, _MOUTH_CACHE_BYTES // (3 * _area(self._mouth.box) or 1))
        self._mouth_at = lru_cache(maxsize=entries)(self._mouth.render)
        for shape in _SHAPES.values():
            self._mouth_at(shape)
        self._eyes_at = [lru_cache(maxsize=64)(eye.render) for eye in self._eyes]

        self._fps = fps
        self._loudness = Loudness(fps)
        self._shape = _SHAPES[Viseme.REST]
        self._shape_k = 1 - math.exp(-1 / (0.03 * fps))  # ~30 ms: a shape is reached in a frame or two
        self._talk = 0.0  # smoothed 0..1: is the presenter speaking
        self._open = 0.0  # smoothed jaw opening, for the nod
        self._talk_k = 1 - math.exp(-1 / (0.4 * fps))
        self._open_k = 1 - math.exp(-1 / (0.25 * fps))
        # Emphasis: a syllable louder than the speech's loud syllables raises the brows and dips
        # the head a little, quickly, and lets go slowly. The speech's loud level is the 90th
        # percentile of its frames' levels, followed as it goes (from the first frame heard).
        self._loud: float | None = None
        self._loud_step = 6.0 / fps  # dB a frame: it settles within a few seconds of speech
        self._emphasis = 0.0
        self._rise_k, self._fall_k = 1 - math.exp(-1 / (0.06 * fps)), 1 - math.exp(-1 / (0.35 * fps))
        blink_rng = random.Random(f"{o.seed}/blinks")  # string seeds are stable across runs
        self._blink_len = max(3, round(0.12 * fps))
        self._blinks = Schedule(
            blink_rng, o.blink_interval * blink_rng.uniform(0.3, 0.8),
            blink_gap(o.blink_interval), lambda rng: self._blink_len, fps,
        )  # fmt: skip
        # Saccades: the eyes jump to a new point every second or two (a little aside, mostly
        # back to the camera), in a frame or two, and rest there.
        self._gaze_rng = random.Random(f"{o.seed}/gaze")
        self._gaze, self._gaze_to, self._gaze_next = 0.0, 0.0, round(self._gaze_rng.uniform(0.5, 1.5) * fps)
        self._gaze_k = 1 - math.exp(-1 / (0.02 * fps))
        sway_rng = random.Random(f"{o.seed}/sway")
        self._phases = [sway_rng.uniform(0, 2 * math.pi) for _ in range(8)]
        # About 2 px at most at the face, whatever its size: enough to look alive, never to wobble.
        self._sway = o.head_motion * min(1.0, 0.006 * face.height)
        self._turn, self._nod = o.head_motion * _TURN * face.height, o.head_motion * _NOD * face.height
        self._lively = o.head_motion > 0
        self._brows = 0.14 * min(1.0, o.head_motion)  # half eye widths at the most emphasis
        self._glance = min(1.0, o.head_motion)
        self._last: tuple[Any, np.ndarray] | None = None

    def draw(self, ctx: FrameContext) -> np.ndarray:
        # The shape is smoothed towards its target over a frame or so: aim at the next frame's,
        # so the mouth is open when the sound is loud (lips lead the sound a little, as in speech).
        ahead = FrameContext(ctx.index + 1, ctx.video, ctx.timeline)
        viseme = viseme_at(ahead, self._loudness)
        self._shape = self._shape.toward(_SHAPES[viseme], self._shape_k)
        speaking = viseme is not Viseme.REST
        self._talk += (speaking - self._talk) * self._talk_k
        self._open += (viseme.openness - self._open) * self._open_k
        self._emphasize(self._loudness.db if speaking else -math.inf)  # viseme_at measured it
        k = self._blinks.at(ctx.index)
        closed = 0.0 if k is None else round(math.sin(math.pi * (k + 1) / (self._blink_len + 1)), 2)
        eyes = (closed, self._gaze_at(ctx.index), round(self._brows * self._emphasis, 2))
        pose = self._pose(ctx.index / self._fps)
        key = (self._shape, eyes, pose)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        out = self._compose(self._shape, eyes, pose)
        self._last = (key, out)
        return out

    def look(self, look: Look) -> np.ndarray:
        """A yuv420p frame of the portrait in ``look``, as ``draw`` would show it, with the head
        otherwise still."""
        brows = round(self._brows * look.emphasis, 2)
        pose = (0.0, 0.0, 0.0, 0.0, 0.0)
        if self._head is not None:
            dip, nod = self._dip(look.emphasis)
            pose = (0.0, round(dip, 2), 0.0, round(self._turn * look.turn, 2), round(nod, 2))
        return self._compose(_SHAPES[look.viseme], (look.closed, look.gaze, brows), pose)

    def _dip(self, emphasis: float) -> tuple[float, float]:
        """How far emphasis moves the head down and nods its features (pixels)."""
        return 0.6 * self._sway * emphasis, 0.7 * self._nod * emphasis

    def _emphasize(self, db: float) -> None:
        target = 0.0
        if db > -60:
            if self._loud is None:
                self._loud = db + 3.0  # the first syllable is not an emphasis
            # A running quantile: up by 0.9 of a step when louder, down by 0.1 when quieter.
            self._loud += self._loud_step * (0.9 if db > self._loud else -0.1)
            target = min(1.0, max(0.0, (db - self._loud - 0.5) / 3.0))
        k = self._rise_k if target > self._emphasis else self._fall_k
        self._emphasis += (target - self._emphasis) * k
        if self._emphasis < 0.01:
            self._emphasis = 0.0

    def _gaze_at(self, index: int) -> float:
        """The gaze (half eye widths aside) at frame ``index``; frames come in order."""
        if not self._lively:
            return 0.0
        if index >= self._gaze_next:
            # Speaking, mostly at the camera; as far aside as the head moves (head_motion, to 1).
            rng, aside = self._gaze_rng, self._glance * (0.07 + 0.1 * (1 - self._talk))
            self._gaze_to = 0.0 if rng.random() < 0.45 else rng.uniform(-aside, aside)
            self._gaze_next = index + max(1, round(rng.uniform(0.6, 2.4) * self._fps))
        self._gaze += (self._gaze_to - self._gaze) * self._gaze_k
        return round(round(self._gaze / 0.02) * 0.02, 2)  # quantized: each gaze is rendered once

    def _pose(self, t: float) -> tuple[float, ...]:
        """Head offset (pixels), tilt (radians), turn and nod (pixels the features move): slow
        sway, breathing and turns, livelier while speaking, a nod with the jaw and on emphasis.
        Rounded so a still head repeats frames exactly."""
        if self._head is None:
            return (0.0, 0.0, 0.0, 0.0, 0.0)
        a, p, talk, tau = self._sway, self._phases, self._talk, 2 * math.pi
        dx = a * (0.55 * math.sin(tau * t / 6.7 + p[0]) + 0.25 * (1 + talk) * math.sin(tau * t / 2.9 + p[1]))
        breath = math.sin(tau * t / 4.2 + p[2])  # about 14 breaths a minute
        dip, nod = self._dip(self._emphasis)
        dy = a * (0.35 * breath + 0.5 * self._open) + dip
        tilt = 0.6 * math.sin(tau * t / 8.1 + p[3]) + 0.4 * talk * math.sin(tau * t / 3.1 + p[4])
        angle = a / self.face.height * tilt  # radians: the forehead moves about ``a`` pixels
        turn = self._turn * (0.65 * math.sin(tau * t / 11.3 + p[5]) + 0.35 * (0.4 + 0.6 * talk) * math.sin(tau * t / 4.4 + p[6]))
        nod += 0.3 * self._nod * math.sin(tau * t / 9.7 + p[7])
        return (round(dx, 2), round(dy, 2), round(angle, 5), round(turn, 2), round(nod, 2))

    def _compose(self, shape: Shape, eyes: tuple[float, float, float], pose: tuple[float, ...]) -> np.ndarray:
        """The frame with the mouth in ``shape``, the eyes (closed, gaze, brow lift) as
        ``_Eye.render`` takes them, and the head posed as ``_Head.maps`` takes it."""
        import cv2

        rx0, ry0, rx1, ry1 = self._roi
        work = self._region.copy()
        if shape != _SHAPES[Viseme.REST]:
            _paste(work, self._mouth_at(shape), self._mouth.box, self._roi)
        if any(eyes):
            for eye, eye_at in zip(self._eyes, self._eyes_at, strict=True):
                _paste(work, eye_at(*eyes), eye.box, self._roi)
        if self._head is not None and any(pose):
            work = cv2.remap(work, self._head.maps(*pose), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out = self._base.copy()
        y, u, v = planes(out, self.video.width, self.video.height)
        y[ry0:ry1, rx0:rx1] = work[..., 0]
        chroma = _subsample(work)
        u[ry0 // 2 : ry1 // 2, rx0 // 2 : rx1 // 2] = chroma[..., 1]
        v[ry0 // 2 : ry1 // 2, rx0 // 2 : rx1 // 2] = chroma[..., 2]
        return out


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _paste(dst: np.ndarray, patch: np.ndarray, box: tuple[int, int, int, int], roi: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    dst[y0 - roi[1] : y1 - roi[1], x0 - roi[0] : x1 - roi[0]] = patch
