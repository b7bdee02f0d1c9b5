"""Camera-sized photos for `imgsim bench decode`: 12 COCO photos upscaled to 12 MP (4000x3000)
and written three ways: JPEG (quality 90), HEIC (libheif's heif-enc, quality 70) and DNG whose
embedded preview is that JPEG (as cameras embed one), beside a small sensor image.

    python bench/make_decode_photos.py [OUT] [COCO_DIR]   (Pillow, NumPy, heif-enc)
    imgsim bench decode OUT
"""

import glob
import subprocess
import sys
from pathlib import Path

from PIL import Image

# The hand-written DNG of the RAW test fixtures.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import make_raw_fixtures as m  # noqa: E402

out = Path(sys.argv[1] if len(sys.argv) > 1 else '/tmp/imgsim-bench-decode')
out.mkdir(exist_ok=True)
coco = sys.argv[2] if len(sys.argv) > 2 else '../shared/data/coco128/val2017'
srcs = sorted(glob.glob(coco + '/*.jpg'))[:12]
for i, src in enumerate(srcs):
    im = Image.open(src).convert('RGB')
    big = im.resize((4000, 3000) if im.width >= im.height else (3000, 4000), Image.BICUBIC)
    jpg = out / f'p{i:02d}.jpg'
    big.save(jpg, quality=90)
    subprocess.run(['heif-enc', '-q', '70', str(jpg), '-o', str(out / f'p{i:02d}.heic')], check=True, capture_output=True)
    # A DNG whose preview is that 12 MP JPEG (as cameras embed), with a small sensor image.
    t = m.Tiff()
    raw = m.bayer(im.resize((240, 160)))
    ro = t.blob(raw.tobytes())
    raw_ifd = t.ifd([(254, m.LONG, [0]), (256, m.LONG, [240]), (257, m.LONG, [160]), (258, m.SHORT, [16]), (259, m.SHORT, [1]), (262, m.SHORT, [32803]), (273, m.LONG, [ro]), (277, m.SHORT, [1]), (278, m.LONG, [160]), (279, m.LONG, [len(raw.tobytes())]), (284, m.SHORT, [1]), (33421, m.SHORT, [2, 2]), (33422, m.BYTE, [0, 1, 1, 2]), (50714, m.LONG, [64]), (50717, m.LONG, [4064])])
    data = jpg.read_bytes()
    jo = t.blob(data)
    w, h = big.size
    prev = t.ifd([(254, m.LONG, [1]), (256, m.LONG, [w]), (257, m.LONG, [h]), (258, m.SHORT, [8, 8, 8]), (259, m.SHORT, [7]), (262, m.SHORT, [6]), (273, m.LONG, [jo]), (277, m.SHORT, [3]), (278, m.LONG, [h]), (279, m.LONG, [len(data)]), (284, m.SHORT, [1])])
    root = t.ifd([(254, m.LONG, [0]), (256, m.LONG, [240]), (257, m.LONG, [160]), (271, m.ASCII, 'Imgsim'), (272, m.ASCII, 'Bench'), (274, m.SHORT, [1]), (330, m.LONG, [raw_ifd, prev]), (50706, m.BYTE, [1, 4, 0, 0]), (50708, m.ASCII, 'Imgsim Bench'),
        (50721, m.SRATIONAL, [(32404542, 10000000), (-15371385, 10000000), (-4985314, 10000000), (-9692660, 10000000), (18760108, 10000000), (415560, 10000000), (556434, 10000000), (-2040259, 10000000), (10572252, 10000000)]), (50778, m.SHORT, [21]), (50728, m.RATIONAL, [(1, 1), (1, 1), (1, 1)])])
    t.set_first_ifd(root)
    (out / f'p{i:02d}.dng').write_bytes(bytes(t.data))
print(sorted(p.name for p in out.iterdir())[:6], len(list(out.iterdir())))
