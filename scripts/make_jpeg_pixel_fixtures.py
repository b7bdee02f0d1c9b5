"""Writes tests/fixtures/jpeg-pixels: small JPEGs of the kinds cameras and editors write
(4:2:0, 4:2:2 and 4:4:4 chroma, progressive, greyscale, odd sizes that end inside a block),
each with the pixels PIL decodes from it, stored losslessly as PNG: `NAME.jpg` ->
`NAME.pil.png` (`Image.open(..).convert("RGB")`) and `NAME.pil-quarter.png` (PIL's `draft`
at 1/4, the scaled inverse DCT). The decoder tests hold imgsim's JPEG pixels to these.

    python scripts/make_jpeg_pixel_fixtures.py    (Pillow from PyPI)
"""

from pathlib import Path

import PIL
from PIL import Image, features

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "jpeg-pixels"
PHOTO = ROOT.parent / "shared" / "data" / "coco128" / "val2017" / "000000000009.jpg"

# name: (size, mode, save options)
KINDS = {
    "yuv420": ((101, 75), "RGB", {"quality": 85, "subsampling": 2}),
    "yuv422": ((99, 70), "RGB", {"quality": 90, "subsampling": 1}),
    "yuv444": ((64, 48), "RGB", {"quality": 95, "subsampling": 0}),
    "progressive": ((120, 83), "RGB", {"quality": 80, "progressive": True}),
    "grey": ((77, 61), "L", {"quality": 85}),
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    photo = Image.open(PHOTO).convert("RGB")
    for name, (size, mode, options) in KINDS.items():
        jpeg = OUT / f"{name}.jpg"
        photo.resize(size, Image.BICUBIC).convert(mode).save(jpeg, "JPEG", **options)
        with Image.open(jpeg) as image:
            image.convert("RGB").save(OUT / f"{name}.pil.png")
        with Image.open(jpeg) as image:
            w, h = image.size
            image.draft(image.mode, (w // 4, h // 4))
            image.convert("RGB").save(OUT / f"{name}.pil-quarter.png")
    (OUT / "VERSIONS").write_text(
        f"pillow {PIL.__version__}\nlibjpeg-turbo {features.version('libjpeg_turbo')}\n"
    )


if __name__ == "__main__":
    main()
