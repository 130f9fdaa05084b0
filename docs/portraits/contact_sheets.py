"""Contact sheets of the portrait avatar: what each test photo looks like on air.

    python docs/portraits/contact_sheets.py            # writes docs/portraits/*.jpg
    python docs/portraits/contact_sheets.py me.jpg     # writes me-sheet.jpg: your own photo

For each photo (all shipped by packages the tests install), the frame at the hd preset's size
(1280x720), cropped to the head: every mouth shape, a blink, the eyes and head turned, emphasis.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from linly_push.backends import registry
from linly_push.backends.avatars.portrait import Look, PortraitAvatar
from linly_push.backends.avatars.visemes import Viseme
from linly_push.errors import LinlyPushError
from linly_push.media import VideoFormat
from linly_push.video import yuv420p_to_rgb

HERE = Path(__file__).resolve().parent
VIDEO = VideoFormat(1280, 720, 30)
TILE = 240
V = Viseme
ROWS: list[list[tuple[str, Look]]] = [
    [("rest", Look()), ("a (father)", Look(V.AA)), ("e (bed)", Look(V.E)), ("i (see)", Look(V.I)),
     ("o (go)", Look(V.O)), ("u (blue)", Look(V.U))],
    [("m b p", Look(V.MBP)), ("f v", Look(V.FV)), ("s z", Look(V.SZ)), ("ch sh", Look(V.CH)),
     ("th", Look(V.TH)), ("l", Look(V.L))],
    [("blinking", Look(closed=0.6)), ("eyes shut", Look(closed=1.0)), ("glance left", Look(gaze=-0.16)),
     ("head turned", Look(turn=1.0, gaze=0.08)), ("emphasis", Look(V.E, emphasis=1.0)),
     ("emphasis, a", Look(V.AA, emphasis=1.0, turn=-0.6))],
]  # fmt: skip


def photos(folder: Path) -> dict[str, Path]:
    """The test photos (docs/portraits/README.md says what each shows), the astronaut written
    to ``folder``."""
    import mahotas
    import matplotlib
    import skimage.data

    Image.fromarray(skimage.data.astronaut()).save(folder / "astronaut.png")
    return {
        "astronaut": folder / "astronaut.png",
        "grace_hopper": Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
        "luispedro": Path(mahotas.__file__).parent / "demos" / "data" / "luispedro.jpg",
    }


def sheet(photo: Path) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small photos are enlarged: the sheet shows how that looks
        avatar = PortraitAvatar(VIDEO, registry.options(PortraitAvatar, {"image": str(photo)}))
    x0, y0, x1, y1 = avatar.face.box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2 + 0.05 * (y1 - y0), 0.72 * (y1 - y0)
    box = tuple(round(v) for v in (cx - half, cy - half, cx + half, cy + half))
    font = ImageFont.load_default(size=17)
    label = 26
    out = Image.new("RGB", (TILE * len(ROWS[0]), (TILE + label) * len(ROWS)), "white")
    draw = ImageDraw.Draw(out)
    for r, row in enumerate(ROWS):
        for c, (name, look) in enumerate(row):
            rgb = Image.fromarray(yuv420p_to_rgb(np.asarray(avatar.look(look)), VIDEO.width, VIDEO.height))
            tile = rgb.crop(box).resize((TILE, TILE), Image.LANCZOS)
            x, y = c * TILE, r * (TILE + label)
            out.paste(tile, (x, y + label))
            draw.text((x + 6, y + 4), name, fill="black", font=font)
    return out


def main() -> None:
    if len(sys.argv) > 1:
        for path in map(Path, sys.argv[1:]):
            target = Path(f"{path.stem}-sheet.jpg")
            sheet(path).save(target, quality=88, optimize=True)
            print(target)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in photos(Path(tmp)).items():
            target = HERE / f"{name}.jpg"
            sheet(path).save(target, quality=88, optimize=True)
            print(target)


if __name__ == "__main__":
    try:
        main()
    except LinlyPushError as exc:
        sys.exit(f"contact_sheets: {exc}")
