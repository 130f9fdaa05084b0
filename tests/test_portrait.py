"""The portrait avatar: the face found in a real photo (face mesh and Haar cascade), a mouth that
opens with the viseme, blinks, a still frame around the face, clear errors, and a render."""

from __future__ import annotations

import itertools
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from avatar_drive import AUDIO, FPS, FRAME, RATE, drawn, pause, speech
from cli_run import linly, text
from media_probe import probe
from mouthsync import mouth_lag
from optional import need
from PIL import Image

from linly_push.backends import registry
from linly_push.backends.avatars.portrait import Face, PortraitAvatar, PortraitOptions, find_face, load_photo, to_yuv420p
from linly_push.timeline import FrameContext, Ticker, Timeline
from linly_push.errors import InputError, LinlyPushWarning, UsageError
from linly_push.media import Segment, VideoFormat, to_int16
from linly_push.video import rgb_to_yuv420p, yuv420p_to_rgb

need("cv2", "portrait")
skimage_data = need("skimage.data", "test")

VIDEO = VideoFormat(640, 360, FPS)
SMALL = VideoFormat(320, 180, FPS)

# skimage's astronaut (512x512): where her mouth and eyes are, read off the picture.
MOUTH = (223.0, 147.0)
EYES = ((204.0, 102.0), (247.0, 104.0))  # her right eye (on the viewer's left), then her left


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage_data.astronaut()).save(d / "astronaut.png")
    ramp = np.linspace(40, 220, 400 * 300).reshape(300, 400).astype(np.uint8)
    Image.fromarray(np.stack([ramp, ramp, ramp[::-1]], axis=-1)).save(d / "gradient.png")
    (d / "notes.txt").write_text("not a picture", encoding="utf-8")
    return {"astronaut": d / "astronaut.png", "gradient": d / "gradient.png", "text": d / "notes.txt"}


def _avatar(photos: dict[str, Path], video: VideoFormat = VIDEO, **options: object) -> PortraitAvatar:
    return PortraitAvatar(video, PortraitOptions(image=str(photos["astronaut"]), **options))  # type: ignore[arg-type]


def _luma(frame: np.ndarray, video: VideoFormat) -> np.ndarray:
    return frame[: video.width * video.height].reshape(video.height, video.width)


def _eye_centres(face: Face) -> list[np.ndarray]:
    return sorted((np.mean(eye, axis=0) for eye in face.eyes), key=lambda p: p[0])


def _check_astronaut(face: Face, mouth_tolerance: float, eye_tolerance: float) -> None:
    x0, y0, x1, y1 = face.box
    mx, my = face.mouth_centre
    assert x0 < mx < x1 and (y0 + y1) / 2 < my < y1  # in the lower half of the face
    assert np.hypot(mx - MOUTH[0], my - MOUTH[1]) < mouth_tolerance, face.mouth_centre
    for found, known in zip(_eye_centres(face), EYES, strict=True):
        assert np.hypot(*(found - known)) < eye_tolerance, found
        assert found[1] < my


def test_the_face_mesh_finds_the_mouth_and_eyes(photos: dict[str, Path]) -> None:
    need("mediapipe", "portrait")
    face = find_face(load_photo(photos["astronaut"], (0, 0, 0)), "mesh")
    assert face is not None and face.detector == "mesh"
    _check_astronaut(face, mouth_tolerance=5, eye_tolerance=5)
    # In the frame: scaled to cover it (640 / 512), the photo's top-left corner at the frame's.
    avatar = _avatar(photos)
    assert avatar.face.detector == "mesh"
    assert np.allclose(avatar.face.points, face.points * 1.25, atol=2)


def test_a_face_small_in_the_picture_is_found_by_the_mesh_inside_the_haar_box() -> None:
    need("mediapipe", "portrait")
    rgb = np.full((1024, 1024, 3), 128, np.uint8)  # too small a face for the mesh's own detector
    rgb[256:768, 256:768] = skimage_data.astronaut()
    face = find_face(rgb, "auto")
    assert face is not None and face.detector == "mesh"
    assert np.hypot(*(face.mouth_centre - MOUTH - 256)) < 5


@pytest.mark.parametrize("layout", ["small face", "close-up"])
def test_the_photo_is_framed_around_the_face(tmp_path: Path, layout: str) -> None:
    astronaut = skimage_data.astronaut()
    if layout == "small face":  # in the middle of a big grey picture: zoomed in, no border
        rgb = np.full((1024, 1024, 3), 128, np.uint8)
        rgb[256:768, 256:768] = astronaut
    else:  # the face fills the picture: shrunk, with borders
        rgb = np.asarray(Image.fromarray(astronaut[50:200, 150:300]).resize((600, 600)))
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    options = PortraitOptions(image=str(tmp_path / "photo.png"), background="#ff00ff", detector="haar")
    avatar = PortraitAvatar(VIDEO, options)
    face = avatar.face
    # The eyes 40 % down, the face centred across, 28 % to 50 % of the frame's height.
    assert abs(face.eye_centre[1] - 0.4 * VIDEO.height) < 1
    assert abs((face.eye_centre[0] + face.mouth_centre[0]) / 2 - VIDEO.width / 2) < 1
    assert 0.28 * VIDEO.height - 1 <= face.height <= 0.5 * VIDEO.height + 1
    frame = np.asarray(avatar.draw(FrameContext(0, VIDEO, Timeline(AUDIO))))
    picture = yuv420p_to_rgb(frame, VIDEO.width, VIDEO.height).astype(int)
    corners = [picture[y, x] for x in (1, VIDEO.width - 2) for y in (1, VIDEO.height - 2)]
    magenta = [np.abs(c - (255, 0, 255)).max() < 8 for c in corners]
    assert all(magenta) if layout == "close-up" else not any(magenta)


def test_the_haar_cascade_finds_the_face_too(photos: dict[str, Path]) -> None:
    face = find_face(load_photo(photos["astronaut"], (0, 0, 0)), "haar")
    assert face is not None and face.detector == "haar"
    # From the face box and average proportions: close, not exact.
    _check_astronaut(face, mouth_tolerance=10, eye_tolerance=10)
    assert _avatar(photos, SMALL, detector="haar").face.detector == "haar"


def test_the_mouth_opens_with_the_viseme(photos: dict[str, Path]) -> None:
    avatar = _avatar(photos, head_motion=0, blink_interval=30)  # nothing else moves in these 2 s
    frames = drawn(avatar, speech("_ _ _ " + "a " * 6 + "_ " * 6 + "i " * 6 + "_ " * 6 + "m " * 6))
    # Each shape is aimed at one frame early (the mouth leads the sound): the runs start at 3,
    # 9, 15, 21 and 27, so their last frames show what follows.
    rest, aa, rest_again, i, mbp = (_luma(frames[k], VIDEO) for k in (1, 7, 13, 19, 31))
    assert np.array_equal(rest, rest_again)  # back to the photo exactly
    assert np.array_equal(rest, _luma(frames[0], VIDEO))
    assert not np.array_equal(mbp, rest)  # pressed lips differ a little

    x0, y0, x1, y1 = avatar.face.box
    mx, my = avatar.face.mouth_centre
    mouth = np.s_[round(my - 0.2 * (y1 - y0)) : round(my + 0.3 * (y1 - y0)), round(x0) : round(x1)]

    def dark(luma: np.ndarray) -> int:
        """Pixels that turned dark: the inside of the mouth."""
        return int(((luma[mouth] < 50) & (rest[mouth] >= 50)).sum())

    assert dark(aa) > 1.5 * dark(i) > 0.25 * (x1 - x0)
    # What changed is the mouth and jaw: around the mouth, across the face and below the eyes.
    ys, xs = np.nonzero(aa != rest)
    assert ys.size > 100
    assert abs(xs.mean() - mx) < 0.1 * (x1 - x0)
    assert xs.min() > x0 - 0.1 * (x1 - x0) and xs.max() < x1 + 0.1 * (x1 - x0)
    assert ys.min() > avatar.face.eye_centre[1]
    assert abs(np.median(ys) - my) < 0.25 * (y1 - y0)


def _runs(changed: list[bool]) -> list[int]:
    """Lengths of the runs of True."""
    runs, n = [], 0
    for c in [*changed, False]:
        if c:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


def test_blinks_and_a_still_head_keep_the_rest_of_the_frame(photos: dict[str, Path]) -> None:
    avatar = _avatar(photos, head_motion=0)
    segments = (pause(10), speech("h @ l oU w 3: l d " * 4), pause(1))
    frames = [_luma(f, VIDEO) for f in drawn(avatar, *segments)]
    x0, y0, x1, y1 = avatar.face.box
    w, h = x1 - x0, y1 - y0
    quiet = frames[: 10 * FPS]

    # Blinks: now and then the eyes change for ~120 ms; nothing else changes while quiet.
    eye_points = np.array([p for eye in avatar.face.eyes for p in eye])
    (ex0, ey0), (ex1, ey1) = eye_points.min(axis=0), eye_points.max(axis=0)
    eyes = np.s_[round(ey0 - 0.1 * h) : round(ey1 + 0.1 * h), round(ex0 - 0.05 * w) : round(ex1 + 0.05 * w)]
    blinks = _runs([not np.array_equal(f[eyes], quiet[0][eyes]) for f in quiet])
    assert 1 <= len(blinks) <= 7, blinks
    assert all(n <= 4 for n in blinks), blinks
    outside_eyes = np.ones_like(quiet[0], bool)
    outside_eyes[eyes] = False
    assert all(np.array_equal(f[outside_eyes], quiet[0][outside_eyes]) for f in quiet)

    # Speaking moves the mouth and jaw, never anything away from the face.
    face = np.zeros_like(frames[0], bool)
    face[round(y0 - 0.1 * h) : round(y1 + 0.5 * h), round(x0 - 0.1 * w) : round(x1 + 0.1 * w)] = True
    assert not all(np.array_equal(f, frames[0]) for f in frames[10 * FPS :])
    assert all(np.array_equal(f[~face], frames[0][~face]) for f in frames)


def test_head_motion_moves_the_face_only(photos: dict[str, Path]) -> None:
    avatar = _avatar(photos, head_motion=1, blink_interval=30)
    frames = [_luma(f, VIDEO) for f in drawn(avatar, pause(3))]
    x0, y0, x1, y1 = avatar.face.box
    w, h = x1 - x0, y1 - y0
    centre = np.s_[round(y0) : round(y1), round(x0) : round(x1)]
    assert sum(not np.array_equal(f[centre], frames[0][centre]) for f in frames) > len(frames) // 2
    # Slight: the face barely changes from frame to frame.
    assert max(np.abs(f[centre].astype(int) - g[centre]).mean() for f, g in itertools.pairwise(frames)) < 3
    far = np.ones_like(frames[0], bool)
    far[max(0, round(y0 - 0.6 * h)) : round(y1 + 0.6 * h), round(x0 - 0.6 * w) : round(x1 + 0.6 * w)] = False
    assert all(np.array_equal(f[far], frames[0][far]) for f in frames)


def test_same_seed_same_frames_and_frames_are_not_changed_later(photos: dict[str, Path]) -> None:
    def run(seed: int) -> list[np.ndarray]:
        return drawn(_avatar(photos, SMALL, seed=seed), pause(1), speech("h @ l oU " * 5), pause(4))

    first, again, other = run(3), run(3), run(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    avatar = _avatar(photos, SMALL)
    ticker = Ticker(SMALL, AUDIO, avatar.draw)
    kept = [(tick.frame, np.array(tick.frame)) for tick in ticker.feed(speech("a m o _ " * 10))]
    list(ticker.feed(pause(3)))
    assert all(np.array_equal(frame, copy) for frame, copy in kept)
    assert all(np.asarray(frame).size == SMALL.frame_bytes for frame, _ in kept)


def test_frames_are_bt709_like_every_avatar() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    ours, reference = to_yuv420p(rgb).astype(int), rgb_to_yuv420p(rgb).astype(int)
    assert ours.shape == reference.shape and np.abs(ours - reference).max() <= 1


def test_bad_photos_and_options_are_clear_errors(photos: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no face found in .*gradient.png: use a clear, front-facing photo"):
        PortraitAvatar(SMALL, PortraitOptions(image=str(photos["gradient"])))
    with pytest.raises(InputError, match="photo .*missing.jpg not found"):
        PortraitAvatar(SMALL, PortraitOptions(image=str(tmp_path / "missing.jpg")))
    with pytest.raises(InputError, match="cannot read .*notes.txt as a picture"):
        PortraitAvatar(SMALL, PortraitOptions(image=str(photos["text"])))
    with pytest.raises(UsageError, match=r"pass --set avatar.image=photo.jpg"):
        PortraitAvatar(SMALL, registry.options(PortraitAvatar, {}))
    with pytest.raises(UsageError, match="unknown option avatar.photo"):
        registry.options(PortraitAvatar, {"photo": "me.jpg"})
    with pytest.raises(UsageError, match="avatar.detector"):
        registry.options(PortraitAvatar, {"image": "me.jpg", "detector": "dlib"})


def test_bad_photos_from_the_command_line(photos: dict[str, Path], tmp_path: Path) -> None:
    script = tmp_path / "hi.txt"
    script.write_text("Hi.", encoding="utf-8")
    out = str(tmp_path / "out.mp4")
    no_image = linly("render", "--script", str(script), "--avatar", "portrait", "-o", out)
    no_face = linly("render", "--script", str(script), "--avatar", "portrait",
                    "--set", f"avatar.image={photos['gradient']}", "-o", out)  # fmt: skip
    assert no_image.returncode == 2, text(no_image)
    assert "avatar.image=" in text(no_image)
    assert no_face.returncode == 3, text(no_face)
    assert "no face found" in text(no_face)
    for r in (no_image, no_face):
        assert "Traceback" not in text(r)
        assert len(r.stderr.decode().strip().splitlines()) == 1, text(r)


def test_render_a_talking_photo(photos: dict[str, Path], tmp_path: Path) -> None:
    script = tmp_path / "hello.txt"
    script.write_text("Hello from a photo.", encoding="utf-8")
    out = tmp_path / "photo.mp4"
    r = linly("render", "--preset", "live", "--script", str(script), "--avatar", "portrait",
              "--set", f"avatar.image={photos['astronaut']}", "-o", str(out))  # fmt: skip
    assert r.returncode == 0, text(r)
    p = probe(out)
    assert p.video["codec_name"] == "h264" and p.audio["codec_name"] == "aac"
    assert (p.video["width"], p.video["height"]) == (960, 540)
    assert 0.8 < p.video_seconds < 5


def test_registered_as_the_portrait_avatar() -> None:
    assert registry.get("avatar", "portrait") is PortraitAvatar
    assert PortraitAvatar.missing() is None


@pytest.mark.parametrize("enlarged", [True, False], ids=["small photo", "big photo"])
def test_a_photo_too_small_for_a_sharp_frame_says_what_size_would_be(tmp_path: Path, enlarged: bool) -> None:
    hd = VideoFormat(1280, 720, 30)
    astronaut = skimage_data.astronaut()  # 512x512, the face about 190 px
    photo = tmp_path / "photo.png"
    big = Image.fromarray(astronaut).resize((1536, 1536), Image.LANCZOS)
    (Image.fromarray(astronaut) if enlarged else big).save(photo)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LinlyPushWarning)
        PortraitAvatar(hd, PortraitOptions(image=str(photo), detector="haar"))
    said = [str(w.message) for w in caught if issubclass(w.category, LinlyPushWarning)]
    if enlarged:
        assert len(said) == 1 and "the photo (512x512) is enlarged" in said[0] and "at 1280x720" in said[0], said
        size = re.search(r"at least (\d+)x(\d+)", said[0])
        assert size and int(size.group(1)) > 512
    else:
        assert not said


def test_an_open_mouth_shows_lower_teeth_where_the_shape_asks(photos: dict[str, Path]) -> None:
    from linly_push.backends.avatars.portrait import Shape

    avatar = _avatar(photos, head_motion=0)
    mouth = avatar._mouth

    def bright_below(shape: Shape) -> int:
        """Light pixels (teeth) in the lower half of the opening's box."""
        y = mouth.render(shape)[mouth._inner][..., 0]
        return int((y[y.shape[0] // 2 :] > 130).sum())

    without, with_teeth = Shape(0.8, lower=0.0), Shape(0.8, lower=1.0)
    assert bright_below(with_teeth) > bright_below(without) + 0.5 * (mouth.box[2] - mouth.box[0])


def test_the_mouth_opens_with_the_sound_in_the_rendered_file(photos: dict[str, Path], tmp_path: Path) -> None:
    """Lip sync from the file a user gets: per frame, how much of the mouth moved against the
    loudness of that frame's audio; they line up within half a frame (broadcast tolerance: 40 ms
    early, 60 ms late). Aimed at the frame after, the smoothed mouth leads by a third of a frame;
    aimed at its own frame it lagged by two thirds."""
    script = tmp_path / "talk.txt"
    script.write_text("Papa, a banana? Mama ate all the apples at dawn. Wow, oh no, bob, pop!", encoding="utf-8")
    out = tmp_path / "talk.mkv"
    video = VideoFormat(640, 360, 25)
    sets = ["--set", f"video.width={video.width}", "--set", f"video.height={video.height}",
            "--set", "avatar.head_motion=0", "--set", "avatar.blink_interval=30"]  # fmt: skip
    r = linly("render", "--script", str(script), "--avatar", "portrait", "--set", f"avatar.image={photos['astronaut']}",
              *sets, "-o", str(out))  # fmt: skip
    assert r.returncode == 0, text(r)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LinlyPushWarning)
        face = PortraitAvatar(video, PortraitOptions(image=str(photos["astronaut"]), head_motion=0)).face
    x0, y0, x1, y1 = face.box
    mx, my = face.mouth_centre
    mouth = np.s_[round(my - 0.1 * (y1 - y0)) : round(my + 0.3 * (y1 - y0)), round(mx - 0.3 * (x1 - x0)) : round(mx + 0.3 * (x1 - x0))]
    lag, scores = mouth_lag(out, mouth, video.width, video.height, video.fps)
    assert abs(lag) < 0.5 and max(scores.values()) > 0.4, (lag, scores)


def _eye_patch(avatar: PortraitAvatar, k: int, *eyes: float) -> np.ndarray:
    return avatar._eyes[k].render(*eyes)[..., 0].astype(int)  # luma of the eye's box


def _whites(avatar: PortraitAvatar, k: int, closed: float, rows: slice, cols: slice) -> int:
    """Pixels of the eye's white: light and without colour (skin is light too, but pink)."""
    yuv = avatar._eyes[k].render(closed)[rows, cols].astype(int)
    return int(((yuv[..., 0] > 150) & (np.abs(yuv[..., 1] - 128) + np.abs(yuv[..., 2] - 128) < 14)).sum())


@pytest.mark.filterwarnings("ignore::linly_push.errors.LinlyPushWarning")  # enlarged to 1280x720
def test_a_blink_is_the_upper_lid_sliding_down_with_its_lashes(photos: dict[str, Path]) -> None:
    """Shut, the eye's white is gone and the dark of the lashes lies along the lower lid; the brow
    above the lid's skin is untouched (a lid, not a smear over the eye region)."""
    avatar = _avatar(photos, VideoFormat(1280, 720, FPS), head_motion=0)  # eyes big enough to look at
    for k, eye in enumerate(avatar._eyes):
        (x0, y0, _, _), (lower, upper) = eye.box, (eye._lower, eye._upper)
        cx, cy = eye.frame.origin
        unit = eye.frame.unit
        open_, shut = _eye_patch(avatar, k, 0.0), _eye_patch(avatar, k, 1.0)
        # The eye's opening: between the lids, corner to corner.
        cols = np.s_[round(cx - 0.8 * unit - x0) : round(cx + 0.8 * unit - x0)]
        rows = np.s_[round(cy + 0.6 * upper * unit - y0) : round(cy + 0.6 * lower * unit - y0)]
        assert _whites(avatar, k, 0.0, rows, cols) > 5
        assert _whites(avatar, k, 1.0, rows, cols) == 0
        # The darkest row (the lashes, or the iris when open) moves down to the lower lid.
        def darkest_row(luma: np.ndarray) -> float:  # from just above the upper lid to the lower
            top = round(cy + (upper - 0.4) * unit - y0)
            band = luma[top : round(cy + (lower + 0.2) * unit - y0), cols].mean(axis=1)
            return (int(np.argmin(band)) + top + y0 - cy) / unit
        assert darkest_row(open_) < 0.1 * lower
        assert darkest_row(shut) > 0.4 * lower, (darkest_row(shut), lower)
        brow = np.s_[: round(cy + (upper - 1.2) * unit - y0), :]
        assert np.array_equal(shut[brow], open_[brow])


def test_saccades_move_the_eyeball_between_the_lids_only(photos: dict[str, Path]) -> None:
    avatar = _avatar(photos, head_motion=0)
    for k, eye in enumerate(avatar._eyes):
        x0, y0 = eye.box[:2]
        ahead, aside = _eye_patch(avatar, k, 0.0), _eye_patch(avatar, k, 0.0, 0.16)
        # The iris (the darkest pixels) moves to the image's right by about 0.16 half eye widths.
        cy, unit = eye.frame.origin[1], eye.frame.unit
        middle = np.s_[round(cy + 0.5 * eye._upper * unit - y0) : round(cy + 0.5 * eye._lower * unit - y0) + 1]

        def iris_x(luma: np.ndarray) -> float:  # between the lids, clear of the lashes
            ys, xs = np.nonzero(luma[middle] < np.percentile(luma[middle], 15))
            return float(xs.mean())
        moved = (iris_x(aside) - iris_x(ahead)) / eye.frame.unit
        assert 0.04 < moved < 0.2, moved
        # The lids, the corners and all around stay: only between the lids, corner to corner, moves.
        cx = eye.frame.origin[0]
        outside = np.ones_like(ahead, bool)
        outside[round(cy + eye._upper * unit - y0) : round(cy + eye._lower * unit - y0) + 1,
                round(cx - unit - x0) : round(cx + unit - x0) + 1] = False  # fmt: skip
        assert np.array_equal(aside[outside], ahead[outside])


def test_emphasis_raises_the_brows_and_the_rest_lets_them_down(photos: dict[str, Path]) -> None:
    """A syllable 10 dB louder than the speech around it lifts the brows (the skin above the eyes
    moves up, the eye itself does not); steady speech does not; with head_motion 0 nothing lifts."""
    avatar = _avatar(photos)
    k, eye = 0, avatar._eyes[0]
    still, lifted = _eye_patch(avatar, k, 0.0), _eye_patch(avatar, k, 0.0, 0.0, 0.14)
    y0, cy, unit = eye.box[1], eye.frame.origin[1], eye.frame.unit
    brow = np.s_[: round(cy + (eye._upper - 0.9) * unit - y0)]
    lids = np.s_[round(cy + eye._upper * unit - y0) :]
    assert not np.array_equal(lifted[brow], still[brow])
    assert np.array_equal(lifted[lids], still[lids])

    def lifts(level: list[float] | Segment, head_motion: float = 1.0) -> list[float]:
        a = _avatar(photos, SMALL, head_motion=head_motion)
        if isinstance(level, Segment):
            talk = level
        else:
            tone = np.concatenate([g * 0.05 * np.sin(2 * np.pi * 220 * np.arange(FRAME) / RATE) for g in level])
            talk = Segment(to_int16(np.repeat(tone[:, None], 2, axis=1)), "speech")  # no marks: loudness decides
        seen: list[float] = []
        draw = a.draw

        def spy(ctx: FrameContext) -> np.ndarray:
            frame = draw(ctx)
            seen.append(a._last[0][1][2])  # the brows' lift in the key of the frame just drawn
            return frame

        list(Ticker(SMALL, AUDIO, spy).feed(talk))
        return seen

    steady = [1.0] * 75
    accent = [1.0] * 50 + [3.2] * 5 + [1.0] * 20  # +10 dB for 0.2 s, two seconds in
    assert max(lifts(steady)) == 0
    seen = lifts(accent)
    # Aimed at the frame after, as the mouth is: the lift starts a frame before the accent.
    assert max(seen[49:57]) >= 0.08 and max(seen[:49]) == 0 and seen[-1] < 0.02, seen
    assert max(lifts(accent, head_motion=0)) == 0
    # Real speech: its loud syllables are the norm, not emphasis; now and then one stands out
    # (about once a sentence).
    from linly_push.backends.tts.espeak import EspeakTTS

    said = EspeakTTS(registry.options(EspeakTTS, {})).synthesize(
        "Good evening. Tonight we look at the weather, the markets, and a story from the coast that"
        " nobody expected. First, the weather: a storm is moving in from the west.", "en")  # fmt: skip
    k = RATE // said.sample_rate
    assert k * said.sample_rate == RATE  # espeak speaks at 22.05 kHz
    pcm = to_int16(np.repeat(np.repeat(said.samples, k)[:, None], 2, axis=1))
    seen = lifts(Segment(pcm, "speech", phonemes=[m.shifted(0, k) for m in said.phonemes]))
    raised = sum(v >= 0.14 * 0.3 for v in seen) / len(seen)
    assert 0 < raised < 0.2, raised


def test_a_look_is_the_frame_draw_settles_on(photos: dict[str, Path]) -> None:
    from linly_push.backends.avatars.portrait import Look
    from linly_push.backends.avatars.visemes import Viseme

    avatar = _avatar(photos, head_motion=0, blink_interval=30)
    frames = drawn(avatar, speech("_ _ " + "a " * 8 + "_ " * 6))
    # (The last frame aims at one past the segment, where only the tone's tail is heard.)
    assert np.array_equal(avatar.look(Look(Viseme.AA)), frames[8])
    assert np.array_equal(avatar.look(Look()), frames[-2])
    shut = avatar.look(Look(closed=1.0))
    assert not np.array_equal(shut, frames[-2])
    assert np.array_equal(_avatar(photos, head_motion=0)._compose(_shape(Viseme.REST), (1.0, 0.0, 0.0), (0.0,) * 5), shut)


def _shape(viseme: object) -> object:
    from linly_push.backends.avatars.portrait import _SHAPES

    return _SHAPES[viseme]  # type: ignore[index]


def test_a_head_turn_moves_the_features_against_the_outline(photos: dict[str, Path]) -> None:
    avatar = _avatar(photos)
    head, (rx0, ry0, _, _) = avatar._head, avatar._roi
    assert head is not None
    maps = head.maps(0.0, 0.0, 0.0, 5.0, 0.0) - head.maps(0.0, 0.0, 0.0)

    def moved(p: np.ndarray) -> float:  # pixels a point of the picture moves to the right
        return -float(maps[round(p[1]) - ry0, round(p[0]) - rx0, 0])

    face = avatar.face
    nose = (face.eye_centre + face.mouth_centre) / 2
    cheeks = face.points[8], face.points[9]
    assert 4.0 < moved(nose) <= 5.0 and moved(face.mouth_centre) > 2.5, (moved(nose), moved(face.mouth_centre))
    assert all(abs(moved(c)) < 1.0 for c in cheeks)  # the outline stays: the face turned, not slid
    nod = head.maps(0.0, 0.0, 0.0, 0.0, 4.0) - head.maps(0.0, 0.0, 0.0)
    assert 3.0 < -nod[round(nose[1]) - ry0, round(nose[0]) - rx0, 1] <= 4.0


def test_m_b_p_closes_lips_the_photo_shows_apart(photos: dict[str, Path]) -> None:
    """The astronaut smiles with her teeth showing: for m, b and p her lips meet over them."""
    from linly_push.backends.avatars.portrait import _SHAPES
    from linly_push.backends.avatars.visemes import Viseme

    mouth = _avatar(photos, head_motion=0)._mouth

    def teeth(yuv: np.ndarray) -> int:  # light, colourless pixels where the lips are
        y, u, v = (yuv[mouth._inner][..., k].astype(int) for k in range(3))
        return int(((y > 170) & (np.abs(u - 128) + np.abs(v - 128) < 16)).sum())

    shown = teeth(mouth.render(_SHAPES[Viseme.REST]))
    assert shown > 40  # the photo's own
    assert teeth(mouth.render(_SHAPES[Viseme.MBP])) < 0.2 * shown
