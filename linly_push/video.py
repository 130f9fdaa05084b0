"""Pixel helpers shared by avatars: frames go to ffmpeg as raw yuv420p (BT.709, limited range).

yuv420p is half the bytes of rgb24 through the pipe and spares ffmpeg a conversion; avatars
convert what they pre-render once and cache it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# BT.709 limited-range coefficients (the output is tagged bt709/tv in the ffmpeg argv).
KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB


def planes(buf: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A flat yuv420p buffer as views of its Y (height x width), U and V (half size each way)
    planes: writing into a view writes into ``buf``."""
    n = width * height
    q = n // 4
    half = (height // 2, width // 2)
    return buf[:n].reshape(height, width), buf[n : n + q].reshape(half), buf[n + q : n + 2 * q].reshape(half)


def even(v: float, rounding: Callable[[float], int] = math.floor) -> int:
    """``v`` pixels as an even number of them (chroma is subsampled 2x2): rounded down, or by
    ``rounding`` (``math.ceil`` up, ``round`` to the nearest)."""
    return 2 * int(rounding(v / 2))


def rgb_to_yuv_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HxWx3 uint8 RGB (H and W even) to full-size Y and half-size U, V uint8 planes."""
    f = rgb.astype(np.float32) / 255.0
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = KR * r + KG * g + KB * b
    u = (b - y) / (2 * (1 - KB))
    v = (r - y) / (2 * (1 - KR))
    Y = 16.0 + 219.0 * y
    # Chroma subsampled by averaging each 2x2 block.
    U = 128.0 + 224.0 * _pool2(u)
    V = 128.0 + 224.0 * _pool2(v)
    return _u8(Y), _u8(U), _u8(V)


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB to one flat uint8 buffer in yuv420p layout (Y plane, then U, then V)."""
    y, u, v = rgb_to_yuv_planes(rgb)
    return np.concatenate([y.ravel(), u.ravel(), v.ravel()])


def yuv420p_to_rgb(buf: np.ndarray, width: int, height: int) -> np.ndarray:
    """The inverse, for tests and previews."""
    y, u, v = (p.astype(np.float32) for p in planes(buf, width, height))
    u = u.repeat(2, 0).repeat(2, 1)
    v = v.repeat(2, 0).repeat(2, 1)
    yy = (y - 16.0) / 219.0
    pb = (u - 128.0) / 224.0
    pr = (v - 128.0) / 224.0
    r = yy + 2 * (1 - KR) * pr
    b = yy + 2 * (1 - KB) * pb
    g = (yy - KR * r - KB * b) / KG
    return _u8(np.stack([r, g, b], axis=-1) * 255.0)


def _pool2(p: np.ndarray) -> np.ndarray:
    return 0.25 * (p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2])


def _u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.round(a), 0, 255).astype(np.uint8)
