"""The pixel helpers avatars and captions share (``linly_push.video``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from linly_push.media import VideoFormat
from linly_push.video import even, planes, rgb_to_yuv420p, yuv420p_to_rgb

VIDEO = VideoFormat(8, 6, 25)


def test_planes_are_views_of_the_frame_in_yuv420p_order() -> None:
    buf = np.arange(VIDEO.frame_bytes, dtype=np.uint16).astype(np.uint8)
    y, u, v = planes(buf, VIDEO.width, VIDEO.height)
    assert (y.shape, u.shape, v.shape) == ((6, 8), (3, 4), (3, 4))
    assert (y[0, 0], u[0, 0], v[0, 0], v[-1, -1]) == (0, 48, 60, 71)
    y[:] = 16
    u[1, 1] = 200
    assert (buf[:48] == 16).all() and buf[48 + 4 + 1] == 200


def test_planes_and_the_rgb_conversions_agree() -> None:
    rgb = np.zeros((VIDEO.height, VIDEO.width, 3), np.uint8)
    rgb[:, : VIDEO.width // 2] = (200, 40, 40)
    buf = rgb_to_yuv420p(rgb)
    y, u, v = planes(buf, VIDEO.width, VIDEO.height)
    assert np.array_equal(np.concatenate([y.ravel(), u.ravel(), v.ravel()]), buf)
    assert np.abs(yuv420p_to_rgb(buf, VIDEO.width, VIDEO.height).astype(int) - rgb).max() <= 2


@pytest.mark.parametrize(
    ("v", "rounding", "want"),
    [(5.9, math.floor, 4), (6, math.floor, 6), (0.5, math.floor, 0), (4.1, math.ceil, 6), (6, math.ceil, 6),
     (4.9, round, 4), (5.1, round, 6), (-3.1, round, -4), (-1.2, math.floor, -2)],
)  # fmt: skip
def test_even_rounds_down_unless_told(v: float, rounding, want: int) -> None:
    assert even(v, rounding) == want
    if rounding is math.floor:
        assert even(v) == want
