"""The cartoon presenter: frame layout at any size, a mouth that follows the marks, natural
blinks, determinism, and its options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from avatar_drive import AUDIO, FPS, drawn, pause, speech
from cli_run import linly, text
from mouthsync import mouth_lag

from linly_push.backends import registry
from linly_push.backends.avatars.cartoon import CartoonAvatar, CartoonOptions
from linly_push.timeline import Ticker
from linly_push.errors import UsageError
from linly_push.media import VideoFormat

SMALL = VideoFormat(320, 180, FPS)


@pytest.mark.parametrize("size", [(960, 540), (1280, 720), (640, 360), (540, 960), (320, 180)])
def test_frames_have_the_size_of_the_format(size: tuple[int, int]) -> None:
    video = VideoFormat(*size, FPS)
    frames = drawn(CartoonAvatar(video, CartoonOptions()), speech("h @ l oU"))
    assert len(frames) == 4
    for frame in frames:
        assert frame.dtype == np.uint8 and frame.size == video.frame_bytes
    luma = frames[0][: size[0] * size[1]]
    assert luma.std() > 10  # a picture, not a flat fill


def test_the_mouth_follows_the_viseme_and_nothing_else_changes() -> None:
    still = CartoonOptions(head_motion=0, blink_interval=30)  # no sway, no blink in the first 9 s
    frames = drawn(CartoonAvatar(SMALL, still), speech("a " * 20 + "_ " + "a " * 5 + "m"))
    aa, rest, aa_again, mbp = frames[19], frames[20], frames[25], frames[26]
    assert np.array_equal(aa, aa_again)  # the same viseme draws the same picture
    assert not np.array_equal(aa, mbp)
    luma = SMALL.width * SMALL.height
    diff = (aa[:luma] != rest[:luma]).reshape(SMALL.height, SMALL.width)
    ys, xs = np.nonzero(diff)
    assert ys.size > 30  # the mouth opened
    # Only a small box changed, in the middle of the lower face.
    assert xs.max() - xs.min() < 0.12 * SMALL.width and ys.max() - ys.min() < 0.12 * SMALL.height
    assert abs((xs.max() + xs.min()) / 2 - SMALL.width / 2) < 4
    assert 0.25 * SMALL.height < ys.mean() < 0.6 * SMALL.height


def _eye_states(frames: list[np.ndarray], video: VideoFormat) -> list[str]:
    """'o' open, 'h' half, 'c' closed, from how much eye white shows in the band of the frame that
    holds the eyes (nothing else there is that bright)."""
    w, h = video.width, video.height
    band = slice(w * (h // 4), w * (h * 45 // 100))
    white = np.array([(f[band] > 228).sum() for f in frames])
    usual = np.median(white)  # eyes are open most of the time
    return ["c" if n < 0.2 * usual else "h" if n < 0.8 * usual else "o" for n in white]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blinks_come_at_natural_intervals(seed: int) -> None:
    video = VideoFormat(640, 360, FPS)
    avatar = CartoonAvatar(video, CartoonOptions(head_motion=0, seed=seed))
    states = "".join(_eye_states(drawn(avatar, pause(10)), video))
    blinks = [i for i in range(len(states)) if states[i] != "o" and (i == 0 or states[i - 1] == "o")]
    assert 2 <= len(blinks) <= 7, states
    for start in blinks:
        assert states[start : start + 3] == "hch", states  # ~120 ms: half, closed, half
        assert states[start + 3 : start + 4] in ("o", ""), states
    gaps = np.diff([0, *blinks]) / FPS
    # 2 to 6 s apart around the 4 s mean, or a quick double blink.
    assert all(g < 0.5 or 0.9 <= g <= 6.2 for g in gaps), gaps
    assert sum(g < 0.5 for g in gaps) <= len(gaps) // 2


def test_same_seed_same_frames() -> None:
    def run(seed: int) -> list[np.ndarray]:
        segments = (pause(2), speech("h @ l oU w 3: l d " * 6, 2), pause(2))
        return drawn(CartoonAvatar(SMALL, CartoonOptions(seed=seed)), *segments)

    first, again, other = run(7), run(7), run(8)
    assert len(first) == len(again) == len(other)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_returned_frames_are_not_changed_later() -> None:
    avatar = CartoonAvatar(SMALL, CartoonOptions())
    ticker = Ticker(SMALL, AUDIO, avatar.draw)
    first = [(tick.frame, np.array(tick.frame)) for tick in ticker.feed(speech("a m o _ " * 10))]
    list(ticker.feed(pause(3)))
    assert all(np.array_equal(frame, copy) for frame, copy in first)


def test_options_are_checked() -> None:
    opts = registry.options(CartoonAvatar, {"shirt": "#336699", "seed": 3, "head_motion": 0})
    assert isinstance(opts, CartoonOptions) and opts.seed == 3
    with pytest.raises(UsageError, match="unknown option avatar.colour"):
        registry.options(CartoonAvatar, {"colour": "red"})
    with pytest.raises(UsageError, match="avatar.skin"):
        registry.options(CartoonAvatar, {"skin": "not-a-colour"})
    with pytest.raises(UsageError, match="avatar.blink_interval"):
        registry.options(CartoonAvatar, {"blink_interval": 0})


def test_registered_as_the_cartoon_avatar() -> None:
    assert registry.get("avatar", "cartoon") is CartoonAvatar


def test_the_mouth_opens_with_the_sound_in_the_rendered_file(tmp_path: Path) -> None:
    """Lip sync from the file a user gets: per frame, how much of the mouth changed from the rest
    frame against the loudness of the audio the frame stands for; the two line up best with no
    shift, within half a frame (broadcast tolerance: 40 ms early, 60 ms late)."""
    script = tmp_path / "talk.txt"
    script.write_text("Papa, a banana? Mama ate all the apples at dawn. Wow, oh no, bob, pop!", encoding="utf-8")
    out = tmp_path / "talk.mkv"
    video = VideoFormat(640, 360, FPS)
    sets = ["--set", f"video.width={video.width}", "--set", f"video.height={video.height}",
            "--set", "avatar.head_motion=0", "--set", "avatar.blink_interval=30"]  # fmt: skip
    r = linly("render", "--script", str(script), "--avatar", "cartoon", *sets, "-o", str(out))
    assert r.returncode == 0, text(r)
    with_still_head = CartoonAvatar(video, registry.options(CartoonAvatar, {"head_motion": 0}))
    x0, y0, x1, y1 = with_still_head.mouth_box
    mouth = np.s_[y0:y1, x0:x1]
    lag, scores = mouth_lag(out, mouth, video.width, video.height, FPS)
    assert abs(lag) < 0.5 and max(scores.values()) > 0.4, (lag, scores)
