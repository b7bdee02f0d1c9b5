"""Writes tests/fixtures/exif: small synthetic photos with the EXIF that phones and cameras
write (date with time zone offset, camera, lens, exposure, GPS, orientation), for the
metadata, filter and orientation tests; and a HEIC and an AVIF made from two of them (with
their EXIF) by libheif's `heif-enc` (Debian: libheif-examples; x265 and aom inside). The
JPEGs and PNGs are deterministic (Pillow); the encoders' output may differ by version.

    python scripts/make_exif_fixtures.py
"""

import random
import shutil
import subprocess
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "exif"


def scene(seed: int, size=(192, 128)) -> Image.Image:
    """A picture with structure (a gradient and shapes), different for every seed."""
    rng = random.Random(seed)
    w, h = size
    image = Image.new("RGB", size)
    px = image.load()
    a, b = [tuple(rng.randrange(256) for _ in range(3)) for _ in range(2)]
    for y in range(h):
        for x in range(w):
            t = (x + y) / (w + h)
            px[x, y] = tuple(int(a[i] * (1 - t) + b[i] * t) for i in range(3))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.randrange(w - 20), rng.randrange(h - 20)
        x1, y1 = x0 + rng.randrange(10, 60), y0 + rng.randrange(10, 50)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    return image


def dms(value: float):
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    s = round(((value - d) * 60 - m) * 60, 2)
    return (float(d), float(m), s)


def exif(make=None, model=None, lens=None, taken=None, offset=None, gps=None, iso=None,
         focal=None, exposure=None, orientation=None) -> Image.Exif:
    e = Image.Exif()
    if make:
        e[0x010F] = make
    if model:
        e[0x0110] = model
    if orientation:
        e[0x0112] = orientation
    sub = e.get_ifd(0x8769)
    if taken:
        sub[0x9003] = taken
    if offset:
        sub[0x9011] = offset
    if lens:
        sub[0xA434] = lens
    if iso:
        sub[0x8827] = iso
    if focal:
        sub[0x920A] = focal
    if exposure:
        sub[0x829A] = exposure
    if gps:
        lat, lon, alt = gps
        g = e.get_ifd(0x8825)
        g[1] = "N" if lat >= 0 else "S"
        g[2] = dms(lat)
        g[3] = "E" if lon >= 0 else "W"
        g[4] = dms(lon)
        if alt is not None:
            g[5] = b"\x00" if alt >= 0 else b"\x01"
            g[6] = abs(alt)
    return e


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    scene(1).save(OUT / "paris.jpg", quality=90, exif=exif(
        make="Apple", model="iPhone 13", lens="iPhone 13 back dual wide camera 5.1mm f/1.6",
        taken="2023:06:01 00:30:00", offset="+02:00", gps=(48.8584, 2.2945, 35.0), iso=50,
        focal=5.1, exposure=1 / 120))
    scene(2).save(OUT / "newyork.jpg", quality=90, exif=exif(
        make="Google", model="Pixel 7", taken="2023:05:31 23:30:00", offset="-04:00",
        gps=(40.6892, -74.0445, None), iso=800, focal=6.8, exposure=1 / 60))
    scene(3).save(OUT / "nikon.jpg", quality=90, exif=exif(
        make="NIKON CORPORATION", model="NIKON Z 6", lens="NIKKOR Z 24-70mm f/4 S",
        taken="2024:01:15 12:00:00", iso=200, focal=24.0, exposure=1 / 250))
    scene(4).save(OUT / "plain.png")
    # One picture upright, and stored turned with the EXIF tag that turns it back:
    # orientation 6 is shown turned 90 degrees clockwise, 8 counter-clockwise.
    upright = scene(5, size=(192, 128))
    upright.save(OUT / "upright.jpg", quality=95)
    upright.transpose(Image.Transpose.ROTATE_90).save(
        OUT / "orientation6.jpg", quality=95, exif=exif(orientation=6))
    upright.transpose(Image.Transpose.ROTATE_270).save(
        OUT / "orientation8.jpg", quality=95, exif=exif(orientation=8))
    # The same stored pixels without the tag: what ignoring it would embed.
    upright.transpose(Image.Transpose.ROTATE_90).save(OUT / "sideways.jpg", quality=95)
    if shutil.which("heif-enc"):
        subprocess.run(["heif-enc", "-q", "70", OUT / "paris.jpg", "-o", OUT / "paris.heic"],
                       check=True, capture_output=True)
        subprocess.run(["heif-enc", "-q", "70", OUT / "nikon.jpg", "-o", OUT / "nikon.avif"],
                       check=True, capture_output=True)
    else:
        print("heif-enc not found: paris.heic and nikon.avif left as they are")
    for p in sorted(OUT.iterdir()):
        print(p.name, p.stat().st_size)


if __name__ == "__main__":
    main()
