"""The portrait avatar on real photos of different people, not one: skimage's astronaut (a smiling
woman, frontal), matplotlib's Grace Hopper (an older face behind glasses) and mahotas' Luis Pedro
(a man in three-quarter view, a small photo); pictures without a face (a cat, a cup of coffee, a
rocket); and photos stored in any EXIF orientation. Every picture ships with an installed package:
nothing is downloaded."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from avatar_drive import FPS, drawn, pause, speech
from cli_run import linly, text
from optional import need
from PIL import Image

from linly_push.backends.avatars.portrait import Face, PortraitAvatar, PortraitOptions, find_face, fit, load_photo
from linly_push.errors import InputError, LinlyPushWarning
from linly_push.media import VideoFormat
from linly_push.video import rgb_to_yuv420p

need("cv2", "portrait")
# The face mesh: the points read off these photos are its landmarks, and the framing is checked by
# finding the face again in the frame, which the Haar cascade does not do reliably (in the
# astronaut's 640x360 frame its largest box is a false one, below and right of her face).
# test_portrait.py tests the cascade on the astronaut.
need("mediapipe", "portrait")
skimage_data = need("skimage.data", "test")
mpl_cbook = need("matplotlib.cbook", "test")
mahotas = need("mahotas", "test")

VIDEO = VideoFormat(640, 360, FPS)
HD = VideoFormat(1280, 720, FPS)
MAGENTA = (255, 0, 255)  # a background no photo here has at its edges


class Known:
    """Where a photo's mouth and eyes are, read off the picture by eye (x right, y down, in the
    photo's pixels): the mouth where the lips meet below the philtrum, each eye the middle of its
    iris (which sits between its corners in these photos). ``tolerance``: about 3 % of the face's
    height, forehead to chin."""

    def __init__(self, mouth: tuple[float, float], eyes: tuple[tuple[float, float], tuple[float, float]],
                 tolerance: float) -> None:  # fmt: skip
        self.mouth, self.eyes, self.tolerance = np.array(mouth), np.array(eyes), tolerance


# Checked on 6x to 12x crops with a pixel grid drawn over them; the face mesh agrees within 4 px.
KNOWN = {
    # 512x512, face 103 px: mouth open in a smile (teeth between y 142 and 149).
    "astronaut": Known(mouth=(223, 146), eyes=((204, 102), (246, 103)), tolerance=4),
    # 512x600, face 201 px: through glasses; the lips closed, their line at y 276-277.
    "grace": Known(mouth=(268, 277), eyes=((221, 189), (305, 186)), tolerance=6),
    # 300x377, face 224 px, turned to the viewer's left: the eyes tilt (the far one 10 px higher),
    # the lips meet at y 257 below the philtrum, left of the middle of the mouth's corners.
    "luis": Known(mouth=(96, 257), eyes=((68, 171), (144, 160)), tolerance=6),
}
FACES = list(KNOWN)
NO_FACES = ["chelsea", "coffee", "rocket"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("photos")
    paths = {
        "grace": Path(mpl_cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
        "luis": Path(mahotas.__file__).parent / "demos" / "data" / "luispedro.jpg",
    }
    for name in ("astronaut", *NO_FACES):
        paths[name] = d / f"{name}.png"
        Image.fromarray(getattr(skimage_data, name)()).save(paths[name])
    return paths


@pytest.fixture(scope="module")
def upright(photos: dict[str, Path]) -> dict[str, np.ndarray]:
    return {name: load_photo(photos[name], MAGENTA) for name in FACES}


@pytest.fixture(scope="module")
def found(upright: dict[str, np.ndarray]) -> dict[str, Face]:
    faces = {name: find_face(rgb) for name, rgb in upright.items()}
    assert all(face is not None and face.detector == "mesh" for face in faces.values()), faces
    return faces  # type: ignore[return-value]


@pytest.fixture(scope="module")
def still(photos: dict[str, Path]) -> dict[str, PortraitAvatar]:
    """Per photo an avatar at 640x360 that only moves its mouth (no sway, no blink in 30 s)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", LinlyPushWarning)  # none of them is enlarged at 640x360
        return {name: PortraitAvatar(VIDEO, PortraitOptions(image=str(photos[name]), head_motion=0, blink_interval=30))
                for name in FACES}  # fmt: skip


def _eye_centres(face: Face) -> list[np.ndarray]:
    """Each eye's centre (corners and lids), the one on the viewer's left first."""
    return sorted((np.mean(eye, axis=0) for eye in face.eyes), key=lambda p: p[0])


def _planes(frame: np.ndarray, video: VideoFormat) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w, h = video.width, video.height
    y = frame[: w * h].reshape(h, w)
    u = frame[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)
    v = frame[w * h * 5 // 4 :].reshape(h // 2, w // 2)
    return y, u, v


def _into_frame(photo_face: Face, frame_face: Face) -> Callable[[np.ndarray], np.ndarray]:
    """The map from photo pixels to frame pixels that takes one face onto the other (a scale
    and an offset per axis, fitted to all 18 points)."""
    k = [np.polyfit(photo_face.points[:, i], frame_face.points[:, i], 1) for i in (0, 1)]
    return lambda p: np.array([np.polyval(k[0], p[..., 0]), np.polyval(k[1], p[..., 1])]).T


# ---------------------------------------------------------------------------------------------
# Finding the face.


@pytest.mark.parametrize("name", FACES)
def test_the_face_mesh_finds_each_face_where_it_is(name: str, upright: dict[str, np.ndarray]) -> None:
    known = KNOWN[name]
    face = find_face(upright[name], "mesh")
    assert face is not None and face.detector == "mesh"
    x0, y0, x1, y1 = face.box
    (lx, ly), (rx, ry) = eyes = _eye_centres(face)
    mx, my = face.mouth_centre
    # Shaped like a face: the mouth below the eyes, between them across, inside the face's box;
    # the eyes apart by about half the face's width (cheek to cheek) and level within 15 degrees.
    assert x0 < mx < x1 and (y0 + y1) / 2 < my < y1
    assert lx < mx < rx
    assert 0.3 < (my - (ly + ry) / 2) / face.height < 0.55
    assert 0.35 < (rx - lx) / (x1 - x0) < 0.6
    assert abs(ry - ly) < 0.27 * (rx - lx)
    # Where they are in the picture.
    assert np.hypot(*(face.mouth_centre - known.mouth)) < known.tolerance, face.mouth_centre
    for got, want in zip(eyes, known.eyes, strict=True):
        assert np.hypot(*(got - want)) < known.tolerance, (got, want)


@pytest.mark.parametrize("name", NO_FACES)
def test_pictures_without_a_face_have_none(name: str, photos: dict[str, Path]) -> None:
    rgb = load_photo(photos[name], MAGENTA)
    assert find_face(rgb, "haar") is None
    assert find_face(rgb) is None
    with pytest.raises(InputError, match=f"no face found in .*{name}.png"):
        PortraitAvatar(VideoFormat(320, 180, FPS), PortraitOptions(image=str(photos[name])))


def test_pictures_without_a_face_from_the_command_line(photos: dict[str, Path], tmp_path: Path) -> None:
    script = tmp_path / "hi.txt"
    script.write_text("Hi.", encoding="utf-8")
    for name in NO_FACES:
        out = tmp_path / f"{name}.mp4"
        r = linly("render", "--script", str(script), "--avatar", "portrait",
                  "--set", f"avatar.image={photos[name]}", "-o", str(out))  # fmt: skip
        assert r.returncode == 3, text(r)  # input (docs/contract.md, Exit codes)
        lines = r.stderr.decode().strip().splitlines()
        assert len(lines) == 1, text(r)  # no traceback, no chatter
        assert lines[0].startswith(f"linly-push: error: portrait: no face found in {photos[name]}: "), text(r)
        assert "Traceback" not in text(r)
        assert not out.exists()  # found before anything was rendered


# ---------------------------------------------------------------------------------------------
# The photo in the frame.

SIZES = [VIDEO, HD, VideoFormat(360, 640, FPS)]  # and a vertical one, as for phones


@pytest.mark.parametrize("video", SIZES, ids=lambda v: f"{v.width}x{v.height}")
@pytest.mark.parametrize("name", FACES)
def test_each_photo_is_framed_around_its_face(
    name: str, video: VideoFormat, upright: dict[str, np.ndarray], found: dict[str, Face]
) -> None:
    rgb, face = upright[name], found[name]
    width, height = video.width, video.height
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LinlyPushWarning)  # enlarged at 1280x720: tested below
        frame, placed = fit(rgb, face, width, height, MAGENTA)
    assert frame.shape == (height, width, 3) and frame.dtype == np.uint8
    # The face, forehead to chin, 28 % to 50 % of the frame's height.
    s = placed.height / face.height
    assert 0.28 * height - 1 <= placed.height <= 0.5 * height + 1
    # Where the photo is: its scale and offset follow from where the face went.
    to_frame = _into_frame(face, placed)
    ox, oy = to_frame(np.array([-0.5, -0.5]))  # the photo's top-left corner
    pw, ph = rgb.shape[1] * s, rgb.shape[0] * s
    # The photo covers the frame when the face can stay at most half the frame's height.
    covers = max(width / rgb.shape[1], height / rgb.shape[0]) * face.height <= 0.5 * height + 0.5
    # Here: the astronaut (a small face in her photo) always; Grace only in a vertical frame;
    # Luis (his face fills the photo) never, bordered across.
    assert covers == (name == "astronaut" or (name == "grace" and height > width))
    border = np.all(frame == MAGENTA, axis=-1)
    assert (not border.any()) == covers, (covers, border.sum())
    # Per axis: the face centred across and its eyes 40 % down, unless that would pull an edge of
    # the photo into the frame (or, for a photo smaller than the frame that way, cut it off).
    for where, target, offset, size, length, cols in (
        ((placed.eye_centre[0] + placed.mouth_centre[0]) / 2, width / 2, ox, pw, width, border.all(axis=0)),
        (placed.eye_centre[1], 0.4 * height, oy, ph, height, border.all(axis=1)),
    ):
        lo, hi = sorted((0.0, length - size))
        assert lo - 1 <= offset <= hi + 1, (offset, lo, hi)
        wanted = offset + target - where  # the offset that puts the face at its target
        assert abs(offset - min(max(wanted, lo), hi)) <= 1, (offset, wanted, lo, hi)
        if size >= length:  # covers this way: no border at either end
            assert not cols.any()
        else:  # whole this way, the border around it
            assert abs(int(cols.sum()) - (length - size)) <= 2, (cols.sum(), length - size)
    # And the frame shows the face where ``placed`` says it is.
    again = find_face(frame)
    assert again is not None
    tolerance = 2 + 0.03 * placed.height
    assert np.hypot(*(again.mouth_centre - placed.mouth_centre)) < tolerance
    assert np.hypot(*(again.eye_centre - placed.eye_centre)) < tolerance


@pytest.mark.parametrize("name", FACES)
def test_the_avatar_frames_the_photo_as_fit_does(
    name: str, upright: dict[str, np.ndarray], found: dict[str, Face], still: dict[str, PortraitAvatar]
) -> None:
    frame, placed = fit(upright[name], found[name], VIDEO.width, VIDEO.height, (0x20, 0x20, 0x20))  # the default
    avatar = still[name]
    assert np.allclose(avatar.face.points, placed.points, atol=0.01)
    # At rest, the avatar's frame is that picture (BT.709, within a level or two of rounding).
    y, u, v = _planes(drawn(avatar, pause(0.2))[0], VIDEO)
    ry, ru, rv = _planes(rgb_to_yuv420p(frame), VIDEO)
    assert np.abs(y.astype(int) - ry).max() <= 2
    assert np.abs(u.astype(int) - ru).max() <= 2 and np.abs(v.astype(int) - rv).max() <= 2


# ---------------------------------------------------------------------------------------------
# Sharpness.


@pytest.mark.parametrize("name", FACES)
def test_no_photo_here_is_enlarged_at_640x360(name: str, upright: dict[str, np.ndarray], found: dict[str, Face]) -> None:
    # astronaut: scaled 1.25x to cover the frame (no more than that is sharp); Grace and Luis,
    # whose faces are large in their photos, shrunk to keep the face half the frame's height.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LinlyPushWarning)
        _, placed = fit(upright[name], found[name], VIDEO.width, VIDEO.height, MAGENTA)
    assert not [w for w in caught if issubclass(w.category, LinlyPushWarning)]
    assert placed.height / found[name].height <= 1.25 + 1e-6


@pytest.mark.parametrize("name", FACES)
def test_a_photo_enlarged_at_1280x720_says_what_photo_would_be_sharp(
    name: str, upright: dict[str, np.ndarray], found: dict[str, Face]
) -> None:
    rgb, face = upright[name], found[name]
    ih, iw = rgb.shape[:2]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LinlyPushWarning)
        _, placed = fit(rgb, face, HD.width, HD.height, MAGENTA)
    said = [str(w.message) for w in caught if issubclass(w.category, LinlyPushWarning)]
    assert len(said) == 1, said
    s = placed.height / face.height
    assert s > 1.25
    assert said[0].startswith(f"portrait: the photo ({iw}x{ih}) is enlarged {s:.1f}x to frame its face at 1280x720,"
                              " which softens it: for a sharp picture use one of at least "), said  # fmt: skip
    size = re.search(r"at least (\d+)x(\d+) \(the face, forehead to chin, (\d+) px tall or more\)", said[0])
    assert size, said
    w, h, tall = map(int, size.groups())
    assert abs(w / h - iw / ih) < 0.01
    assert iw * s <= w <= iw * s + 2 and ih * s <= h <= ih * s + 2  # the size it is shown at
    assert tall >= placed.height - 1
    # That photo is indeed sharp enough: at that size no warning.
    bigger = np.asarray(Image.fromarray(rgb).resize((w, h), Image.LANCZOS))
    big_face = find_face(bigger)
    assert big_face is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error", LinlyPushWarning)
        _, placed = fit(bigger, big_face, HD.width, HD.height, MAGENTA)
    assert abs(placed.height / big_face.height - 1) < 0.25


def test_the_small_photo_warns_through_the_avatar_at_1280x720(photos: dict[str, Path]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LinlyPushWarning)
        PortraitAvatar(HD, PortraitOptions(image=str(photos["luis"]), head_motion=0))
    said = [str(w.message) for w in caught if issubclass(w.category, LinlyPushWarning)]
    assert len(said) == 1 and "the photo (300x377) is enlarged 1.6x" in said[0], said
    assert re.search(r"use one of at least 4[89]\dx6[01]\d ", said[0]), said


# ---------------------------------------------------------------------------------------------
# EXIF orientation: the stored pixels per Orientation value, from the upright picture, as the
# EXIF standard describes each (where the stored 0th row and 0th column are in the upright one).
STORED: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],  # row 0 at the top, column 0 at the right: mirrored
    3: lambda a: a[::-1, ::-1],  # bottom, right: upside down
    4: lambda a: a[::-1],  # bottom, left: flipped
    5: lambda a: a.swapaxes(0, 1),  # left, top: transposed
    6: lambda a: np.rot90(a, 1),  # right, top: a phone held upright (display turns it 90 degrees clockwise)
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # right, bottom: transversed
    8: lambda a: np.rot90(a, -1),  # left, bottom: turned the other way
}
ORIENTATION = 0x0112


def _store(upright: np.ndarray, orientation: int, path: Path) -> Path:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    extra = {"quality": 95, "subsampling": 0} if path.suffix == ".jpg" else {}
    Image.fromarray(np.ascontiguousarray(STORED[orientation](upright))).save(path, exif=exif, **extra)
    with Image.open(path) as im:  # as stored: not upright (unless the picture is symmetric), tagged
        assert im.getexif().get(ORIENTATION) == orientation
        assert np.array_equal(np.asarray(im), STORED[orientation](upright)) or path.suffix == ".jpg"
    return path


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
@pytest.mark.parametrize("name", FACES)
def test_photos_in_every_exif_orientation_are_upright_and_their_faces_found(
    name: str, suffix: str, upright: dict[str, np.ndarray], found: dict[str, Face], tmp_path: Path
) -> None:
    rgb, face = upright[name], found[name]
    for orientation in STORED:
        path = _store(rgb, orientation, tmp_path / f"{name}-{orientation}{suffix}")
        got = load_photo(path, MAGENTA)
        assert got.shape == rgb.shape, orientation
        if suffix == ".png":  # lossless: exactly the upright pixels
            assert np.array_equal(got, rgb), orientation
        else:  # JPEG quality 95, 4:4:4: close everywhere, far closer than the mirrored picture
            diff = np.abs(got.astype(int) - rgb)
            assert diff.mean() < 2.5 and np.percentile(diff, 99.9) < 16, (orientation, diff.mean())
            wrong = np.abs(got.astype(int) - STORED[2](rgb)).mean()  # e.g. mirrored
            assert wrong > 5 * diff.mean(), orientation
        again = find_face(got)
        assert again is not None and again.detector == face.detector, orientation
        assert np.abs(again.points - face.points).max() < (0.01 if suffix == ".png" else 2.0), orientation


# ---------------------------------------------------------------------------------------------
# Animation.


@pytest.mark.parametrize("name", FACES)
def test_each_face_opens_its_mouth_for_an_open_vowel(
    name: str, found: dict[str, Face], still: dict[str, PortraitAvatar]
) -> None:
    avatar = still[name]
    face = avatar.face
    frames = [_planes(f, VIDEO)[0] for f in drawn(avatar, speech("_ _ _ " + "a " * 6 + "_ " * 6 + "i " * 6 + "_ "))]
    # The mouth aims one frame early: "a" shows in frames 2 to 7, "i" in 14 to 19, rest between.
    rest, aa, rest_again, ee = frames[1], frames[7], frames[13], frames[19]
    assert np.array_equal(rest, frames[0]) and np.array_equal(rest_again, rest)  # back to the photo exactly
    # Where the mouth is in the frame, from where it was read off the photo.
    mx, my = _into_frame(found[name], face)(KNOWN[name].mouth)
    left, right = face.mouth_corners
    mw = float(np.linalg.norm(right - left))  # the mouth's width
    near = np.s_[round(my - 0.3 * mw) : round(my + 0.5 * mw), round(mx - 0.6 * mw) : round(mx + 0.6 * mw)]

    def dark(luma: np.ndarray) -> np.ndarray:
        """Pixels near the mouth that turned dark: the inside of the open mouth."""
        return (luma[near] < 50) & (rest[near] >= 50)

    opening = dark(aa)
    assert opening.sum() > max(1.5 * mw, 1.5 * dark(ee).sum()), (opening.sum(), dark(ee).sum(), mw)
    # Opened where the lips meet: centred on them, its middle a little below their line (the jaw
    # drops further than the upper lip rises).
    ys, xs = np.nonzero(opening)
    dx, dy = xs.mean() + near[1].start - mx, ys.mean() + near[0].start - my
    assert abs(dx) < 0.15 * mw and -0.1 * mw < dy < 0.2 * mw, (dx, dy, mw)
    # What changed is the mouth and jaw: below the eyes, within the face across, down to the
    # neck (the skin below the chin stretches as the jaw drops: up to 0.37 face heights here).
    x0, y0, x1, y1 = face.box
    w, h = x1 - x0, y1 - y0
    ys, xs = np.nonzero(aa != rest)
    assert ys.min() > face.eye_centre[1]
    assert xs.min() > x0 - 0.1 * w and xs.max() < x1 + 0.1 * w
    assert ys.max() < y1 + 0.5 * h


@pytest.mark.parametrize("name", FACES)
def test_far_from_the_face_nothing_ever_moves(name: str, photos: dict[str, Path]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", LinlyPushWarning)
        avatar = PortraitAvatar(VIDEO, PortraitOptions(image=str(photos[name]), blink_interval=1.0))
    frames = drawn(avatar, pause(1), speech("h @ l oU w 3: l d a: m o " * 2), pause(1))
    x0, y0, x1, y1 = avatar.face.box
    w, h = x1 - x0, y1 - y0
    first = _planes(frames[0], VIDEO)
    near = np.s_[round(y0) : round(y1), round(x0) : round(x1)]
    assert sum(not np.array_equal(_planes(f, VIDEO)[0][near], first[0][near]) for f in frames) > len(frames) // 2
    far = np.ones((VIDEO.height, VIDEO.width), bool)
    far[max(0, round(y0 - 0.6 * h)) : round(y1 + 0.6 * h), max(0, round(x0 - 0.6 * w)) : round(x1 + 0.6 * w)] = False
    assert far.sum() > 0.1 * far.size
    corners = np.ix_([0, -1], [0, -1])  # chroma: the frame's 4 corners
    for f in frames:
        y, u, v = _planes(f, VIDEO)
        assert np.array_equal(y[far], first[0][far])
        assert np.array_equal(u[corners], first[1][corners]) and np.array_equal(v[corners], first[2][corners])
