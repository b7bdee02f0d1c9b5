"""Writes a photo library of N distinct JPEGs for `imgsim bench serve` (and any test at a
library's size): crops of the coco128 photos at random places and scales, resized to at most
640 px and re-encoded, in folders of 500. Seeded: the same N and seed give the same files.

    python bench/make_serve_library.py 10000 /tmp/lib10k      (Pillow)
"""

import random
import sys
from pathlib import Path

from PIL import Image, ImageEnhance

COCO = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "coco128" / "val2017"


def main():
    n, out = int(sys.argv[1]), Path(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    rng = random.Random(seed)
    sources = sorted(COCO.glob("*.jpg"))
    photos = [Image.open(p).convert("RGB") for p in sources]
    for i in range(n):
        photo = photos[i % len(photos)]
        w, h = photo.size
        scale = rng.uniform(0.45, 0.95)
        cw, ch = int(w * scale), int(h * scale)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        image = photo.crop((x, y, x + cw, y + ch))
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.8, 1.2))
        image.thumbnail((640, 640))
        folder = out / f"set-{i // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"photo-{i:06d}.jpg", quality=rng.randint(70, 92))
    print(f"{n} photos in {out}")


if __name__ == "__main__":
    main()
