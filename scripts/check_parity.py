#!/usr/bin/env python3
"""Checks `imgsim embed` against the reference implementation on any images.

Runs transformers (PIL-backend image processor + model) and `imgsim embed --json` on the same
model directory and images, and prints, per image, the relative L2 error and the cosine of the
two embeddings. Exit code 1 when an image is outside the parity bounds (relative L2 <= 1e-3 for
PNG, cosine >= 0.9999 for other formats, whose decoders differ slightly).

Usage: python3 scripts/check_parity.py --model-dir tests/fixtures/tiny-dinov2 [--imgsim PATH]
           [--pooling mean|cls] IMAGE...
"""
import argparse
import json
import subprocess
import sys

import numpy as np
import torch
from PIL import Image
from transformers import AutoConfig


def reference(model_dir, pooling, paths):
    config = AutoConfig.from_pretrained(model_dir)
    if config.model_type == "dinov2":
        from transformers import BitImageProcessorPil, Dinov2Model
        processor = BitImageProcessorPil.from_pretrained(model_dir)
        model = Dinov2Model.from_pretrained(model_dir).eval()

        def embed(px):
            out = model(pixel_values=px)
            return out.pooler_output if pooling == "cls" else out.last_hidden_state.mean(dim=1)
    else:
        from transformers import CLIPImageProcessorPil, CLIPModel
        processor = CLIPImageProcessorPil.from_pretrained(model_dir)
        model = CLIPModel.from_pretrained(model_dir).eval()

        def embed(px):
            f = model.get_image_features(pixel_values=px)
            return f if torch.is_tensor(f) else f.pooler_output
    out = []
    for path in paths:
        px = processor(images=Image.open(path).convert("RGB"), return_tensors="pt").pixel_values
        with torch.no_grad():
            out.append(torch.nn.functional.normalize(embed(px), dim=-1)[0].numpy())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--imgsim", default="imgsim")
    ap.add_argument("--pooling", choices=["mean", "cls"], default="mean")
    ap.add_argument("images", nargs="+")
    args = ap.parse_args()
    cmd = [args.imgsim, "embed", "--json", "--model-dir", args.model_dir, *args.images]
    if args.pooling == "cls":
        cmd += ["--pooling", "cls"]
    ours = {}
    for line in subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines():
        record = json.loads(line)
        ours[record["path"]] = np.array(record["embedding"], dtype=np.float32)
    worst_ok = True
    for path, theirs in zip(args.images, reference(args.model_dir, args.pooling, args.images)):
        if path not in ours:
            print(f"{path}: imgsim gave no embedding")
            worst_ok = False
            continue
        mine = ours[path]
        rel = float(np.linalg.norm(mine - theirs) / np.linalg.norm(theirs))
        cos = float(mine @ theirs / (np.linalg.norm(mine) * np.linalg.norm(theirs)))
        ok = rel <= 1e-3 if path.lower().endswith(".png") else cos >= 0.9999
        worst_ok &= ok
        print(f"{'ok  ' if ok else 'FAIL'} rel_l2={rel:.2e} cosine={cos:.7f} {path}")
    return 0 if worst_ok else 1


if __name__ == "__main__":
    sys.exit(main())
