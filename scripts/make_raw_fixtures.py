"""Writes tests/fixtures/raw: DNG files (the RAW format every camera maker's converter and
many phones write) built by hand, for the RAW tests, since no camera RAW can be downloaded
here. Both hold the same synthetic scene as `scene.jpg` beside them:

- `scene.dng`: a thumbnail in IFD0, the sensor data (a 16-bit RGGB Bayer mosaic) and a
  1200x800 JPEG preview in SubIFDs, EXIF date and camera: what imgsim embeds is the preview;
- `nopreview.dng`: the same without the preview: imgsim develops the sensor data;
- `scan.tif`: a plain TIFF whose Make is a camera maker's (a scanner's);
- `scene.jpg`: the JPEG "the camera wrote beside the RAW" (same stem as `scene.dng`, taken a
  second later by its EXIF);
- `sony.arw`: a Sony ARW (a second RAW format, TIFF-based with a maker note) of the same
  scene, its 1200x800 preview JPEG in IFD0 stored turned a quarter (EXIF orientation 8), so
  that only a reader that applies the orientation sees the scene upright. Just enough of a
  Sony file for rawler: Make/Model of a camera it knows (ILCE-7M3) and a maker note.

    python scripts/make_raw_fixtures.py      (Pillow and NumPy)
"""

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "raw"

BYTE, ASCII, SHORT, LONG, RATIONAL, UNDEFINED, SRATIONAL = 1, 2, 3, 4, 5, 7, 10
SIZES = {BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, UNDEFINED: 1, SRATIONAL: 8}


def scene(size):
    w, h = size
    image = Image.new("RGB", size, (40, 90, 160))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, int(h * 0.6), w, h), fill=(70, 140, 60))
    draw.ellipse((int(w * 0.65), int(h * 0.1), int(w * 0.85), int(h * 0.4)), fill=(250, 220, 60))
    draw.rectangle((int(w * 0.1), int(h * 0.35), int(w * 0.4), int(h * 0.75)), fill=(180, 60, 50))
    draw.polygon([(int(w * 0.08), int(h * 0.35)), (int(w * 0.25), int(h * 0.15)),
                  (int(w * 0.42), int(h * 0.35))], fill=(110, 40, 30))
    return image


class Tiff:
    """A little-endian TIFF written by hand: IFDs whose entries may point at data blobs."""

    def __init__(self):
        self.data = bytearray(b"II*\x00\x00\x00\x00\x00")

    def blob(self, payload: bytes) -> int:
        if len(self.data) % 2:
            self.data += b"\x00"
        offset = len(self.data)
        self.data += payload
        return offset

    def ifd(self, entries) -> int:
        """entries: (tag, type, values) with values a list of numbers, (num, den) pairs or
        bytes; returns the IFD's offset."""
        encoded = []
        for tag, kind, values in sorted(entries, key=lambda e: e[0]):
            if kind == ASCII:
                raw = values.encode() + b"\x00"
                count = len(raw)
            elif kind in (BYTE, UNDEFINED):
                raw = bytes(values)
                count = len(raw)
            elif kind in (RATIONAL, SRATIONAL):
                fmt = "<II" if kind == RATIONAL else "<ii"
                raw = b"".join(struct.pack(fmt, n, d) for n, d in values)
                count = len(values)
            else:
                fmt = "<H" if kind == SHORT else "<I"
                raw = b"".join(struct.pack(fmt, v) for v in values)
                count = len(values)
            if len(raw) <= 4:
                field = raw.ljust(4, b"\x00")
            else:
                field = struct.pack("<I", self.blob(raw))
            encoded.append(struct.pack("<HHI", tag, kind, count) + field)
        body = struct.pack("<H", len(encoded)) + b"".join(encoded) + b"\x00\x00\x00\x00"
        return self.blob(body)

    def set_first_ifd(self, offset: int):
        self.data[4:8] = struct.pack("<I", offset)


def bayer(image: Image.Image) -> np.ndarray:
    """An RGGB mosaic of linear 16-bit values (sRGB decoded), what a sensor would record."""
    rgb = np.asarray(image, dtype=np.float64) / 255.0
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    h, w, _ = linear.shape
    mosaic = np.zeros((h, w))
    mosaic[0::2, 0::2] = linear[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = linear[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = linear[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = linear[1::2, 1::2, 2]
    return (mosaic * 4000 + 64).astype("<u2")


def dng(path: Path, with_preview: bool):
    tiff = Tiff()
    sensor = (240, 160)
    raw = bayer(scene(sensor))
    raw_offset = tiff.blob(raw.tobytes())
    raw_ifd = tiff.ifd([
        (254, LONG, [0]),
        (256, LONG, [sensor[0]]), (257, LONG, [sensor[1]]),
        (258, SHORT, [16]), (259, SHORT, [1]), (262, SHORT, [32803]),
        (273, LONG, [raw_offset]), (277, SHORT, [1]), (278, LONG, [sensor[1]]),
        (279, LONG, [len(raw.tobytes())]), (284, SHORT, [1]),
        (33421, SHORT, [2, 2]), (33422, BYTE, [0, 1, 1, 2]),
        (50714, LONG, [64]), (50717, LONG, [4064]),
    ])
    sub_ifds = [raw_ifd]
    if with_preview:
        buffer = io.BytesIO()
        scene((1200, 800)).save(buffer, "JPEG", quality=85)
        jpeg = buffer.getvalue()
        jpeg_offset = tiff.blob(jpeg)
        sub_ifds.append(tiff.ifd([
            (254, LONG, [1]),
            (256, LONG, [1200]), (257, LONG, [800]),
            (258, SHORT, [8, 8, 8]), (259, SHORT, [7]), (262, SHORT, [6]),
            (273, LONG, [jpeg_offset]), (277, SHORT, [3]), (278, LONG, [800]),
            (279, LONG, [len(jpeg)]), (284, SHORT, [1]),
        ]))
    exif_ifd = tiff.ifd([
        (36867, ASCII, "2024:05:04 10:11:12"),
        (36880, ASCII, "+01:00"),
        (34855, SHORT, [100]),
    ])
    thumb = np.asarray(scene((60, 40)), dtype=np.uint8).tobytes()
    thumb_offset = tiff.blob(thumb)
    root = tiff.ifd([
        (254, LONG, [1]),
        (256, LONG, [60]), (257, LONG, [40]),
        (258, SHORT, [8, 8, 8]), (259, SHORT, [1]), (262, SHORT, [2]),
        (271, ASCII, "Imgsim"), (272, ASCII, "Test Camera"),
        (273, LONG, [thumb_offset]), (274, SHORT, [1]), (277, SHORT, [3]),
        (278, LONG, [40]), (279, LONG, [len(thumb)]), (284, SHORT, [1]),
        (306, ASCII, "2024:05:04 10:11:12"),
        (330, LONG, sub_ifds),
        (34665, LONG, [exif_ifd]),
        (50706, BYTE, [1, 4, 0, 0]), (50707, BYTE, [1, 1, 0, 0]),
        (50708, ASCII, "Imgsim Test Camera"),
        # sRGB's XYZ (D65) -> camera matrix for a camera whose primaries are sRGB's.
        (50721, SRATIONAL, [(32404542, 10000000), (-15371385, 10000000), (-4985314, 10000000),
                            (-9692660, 10000000), (18760108, 10000000), (415560, 10000000),
                            (556434, 10000000), (-2040259, 10000000), (10572252, 10000000)]),
        (50778, SHORT, [21]),
        (50728, RATIONAL, [(1, 1), (1, 1), (1, 1)]),
    ])
    tiff.set_first_ifd(root)
    path.write_bytes(bytes(tiff.data))


def arw(path: Path):
    tiff = Tiff()
    buffer = io.BytesIO()
    # Stored turned; orientation 8 says "turn a quarter counter-clockwise to view".
    scene((1200, 800)).transpose(Image.Transpose.ROTATE_270).save(buffer, "JPEG", quality=85)
    jpeg = buffer.getvalue()
    jpeg_offset = tiff.blob(jpeg)
    # Sony's maker note: its 12-byte header, then an IFD (here empty).
    maker_note = b"SONY DSC \x00\x00\x00" + struct.pack("<HI", 0, 0)
    exif_ifd = tiff.ifd([
        (36867, ASCII, "2025:01:02 03:04:05"),
        (36880, ASCII, "+09:00"),
        (34855, SHORT, [800]),
        (37500, UNDEFINED, list(maker_note)),
    ])
    root = tiff.ifd([
        (254, LONG, [1]),
        (271, ASCII, "SONY"), (272, ASCII, "ILCE-7M3"),
        (274, SHORT, [8]),
        (306, ASCII, "2025:01:02 03:04:05"),
        (513, LONG, [jpeg_offset]), (514, LONG, [len(jpeg)]),
        (34665, LONG, [exif_ifd]),
    ])
    tiff.set_first_ifd(root)
    path.write_bytes(bytes(tiff.data))


def scan_tiff(path: Path):
    """A plain TIFF from a scanner that names a camera maker (Canon makes both): rawler takes
    it for a Canon RAW and fails; imgsim must still read it as the TIFF it is."""
    tiff = Tiff()
    size = (1040, 24)
    pixels = np.asarray(scene(size), dtype=np.uint8).tobytes()
    offset = tiff.blob(pixels)
    root = tiff.ifd([
        (256, LONG, [size[0]]), (257, LONG, [size[1]]),
        (258, SHORT, [8, 8, 8]), (259, SHORT, [1]), (262, SHORT, [2]),
        (271, ASCII, "Canon"), (272, ASCII, "CanoScan LiDE 400"),
        (273, LONG, [offset]), (277, SHORT, [3]), (278, LONG, [size[1]]),
        (279, LONG, [len(pixels)]), (284, SHORT, [1]),
    ])
    tiff.set_first_ifd(root)
    path.write_bytes(bytes(tiff.data))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    scan_tiff(OUT / "scan.tif")
    dng(OUT / "scene.dng", with_preview=True)
    dng(OUT / "nopreview.dng", with_preview=False)
    arw(OUT / "sony.arw")
    # The camera's JPEG of the same shot, dated a second after the RAW (as cameras do when
    # the JPEG is written last).
    exif = Image.Exif()
    exif[0x010F] = "Imgsim"
    exif[0x0110] = "Test Camera"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:04 10:11:13"
    exif.get_ifd(0x8769)[0x9011] = "+01:00"
    scene((1200, 800)).save(OUT / "scene.jpg", quality=85, exif=exif)
    for p in sorted(OUT.iterdir()):
        print(p.name, p.stat().st_size)


if __name__ == "__main__":
    main()
