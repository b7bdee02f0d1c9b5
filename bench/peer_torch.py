#!/usr/bin/env python3
"""The PyTorch + transformers side of `imgsim bench embed --peer`.

Measures, with the same threads and the same architecture (random weights, like imgsim's
--random-weights), what a user would otherwise run:
  - model only: images/s of the forward pass at each --batch-size, on random pixel values;
  - end to end: the published comparison's loop over --images, one image at a time:
    PIL open, the transformers image processor, forward, pooling, L2 normalisation.
--precision bf16 runs the forward pass under torch.autocast("cpu", dtype=torch.bfloat16) (oneDNN's
bf16 products where the CPU has AVX-512 BF16); --precision int8 first applies dynamic int8
quantisation to the linear layers (torch.ao.quantization.quantize_dynamic, qint8 weights), the
two ways PyTorch offers a user to run these models faster on a CPU.
--device cuda runs on the GPU (cuda:0); there --precision f16|bf16 converts the whole model
(model.to(torch.float16), the way users run half precision on a GPU) and the inputs, the
model-only timings wait for the GPU (torch.cuda.synchronize), and the peak GPU memory
(torch.cuda.max_memory_allocated) is reported.
--min-seconds S repeats the end-to-end loop over the folder until S seconds have passed (a
figure that rests on enough work when a fast GPU finishes the folder in under a second).
Prints one JSON line with the same fields as imgsim's figures, and the peak resident memory.

Usage: python3 bench/peer_torch.py --family clip --architecture '{"hidden_size": 768, ...}'
       [--images DIR] [--batch-size 1 --batch-size 16] [--threads 2] [--seconds 5]
       [--precision f32|bf16|int8|f16] [--device cpu|cuda] [--min-seconds 0]
Needs: pip install torch transformers pillow
"""
import argparse
import contextlib
import json
import resource
import sys
import time
import warnings
from pathlib import Path

import torch
from PIL import Image

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


DEVICE = "cpu"
HALF = {"f16": torch.float16, "bf16": torch.bfloat16}


def sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def quantised(model, precision):
    """The model as PyTorch runs it at `precision`, and the context its forward passes run in."""
    if DEVICE == "cuda":
        model = model.to("cuda")
        if precision in HALF:
            model = model.to(HALF[precision])
        return model, contextlib.nullcontext
    if precision == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated, still shipped
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        return model, contextlib.nullcontext
    if precision == "bf16":
        return model, lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return model, contextlib.nullcontext


def build(family, architecture, precision):
    """The model with random weights, its processor, and the embedding function of the recipe."""
    dtype = HALF.get(precision, torch.float32) if DEVICE == "cuda" else torch.float32
    if family == "clip":
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
        try:
            from transformers import CLIPImageProcessorPil
        except ImportError:  # transformers releases before the PIL/torchvision processor split
            from transformers import CLIPImageProcessor as CLIPImageProcessorPil
        model, context = quantised(CLIPVisionModelWithProjection(CLIPVisionConfig(**architecture)).eval(), precision)
        processor = CLIPImageProcessorPil()

        def embed(px):
            with context():
                return model(pixel_values=px.to(DEVICE, dtype)).image_embeds.float()
    else:
        from transformers import Dinov2Config, Dinov2Model
        try:
            from transformers import BitImageProcessorPil
        except ImportError:
            from transformers import BitImageProcessor as BitImageProcessorPil
        model, context = quantised(Dinov2Model(Dinov2Config(**architecture)).eval(), precision)
        processor = BitImageProcessorPil(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                                         image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)

        def embed(px):
            with context():
                return model(pixel_values=px.to(DEVICE, dtype)).last_hidden_state.float().mean(dim=1)
    return processor, embed


def model_only(embed, batch_size, seconds):
    px = torch.randn(batch_size, 3, 224, 224, device=DEVICE)
    with torch.inference_mode():
        embed(px)  # warm-up
        sync()
        start, runs = time.perf_counter(), 0
        while runs < 2 or time.perf_counter() - start < seconds:
            embed(px)
            sync()
            runs += 1
    elapsed = time.perf_counter() - start
    return {"batch_size": batch_size, "images": runs * batch_size, "seconds": elapsed,
            "images_per_s": runs * batch_size / elapsed}


def end_to_end(processor, embed, folder, min_seconds=0.0):
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in EXTENSIONS)
    images = failed = 0
    start = time.perf_counter()
    while images == 0 or time.perf_counter() - start < min_seconds:
        for path in paths:
            images += 1
            try:
                image = Image.open(path).convert("RGB")
            except Exception:
                failed += 1
                continue
            with torch.inference_mode():
                inputs = processor(images=image, return_tensors="pt")
                features = embed(inputs["pixel_values"])
                torch.nn.functional.normalize(features, dim=-1).cpu().numpy()
    elapsed = time.perf_counter() - start
    return {"images": images, "failed": failed, "seconds": elapsed,
            "images_per_s": (images - failed) / elapsed}


def decode_resize_ms(processor, folder):
    """PIL open + convert + the image processor, per image, one thread (what the loop does
    before the model)."""
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in EXTENSIONS)
    start = time.perf_counter()
    for path in paths:
        processor(images=Image.open(path).convert("RGB"), return_tensors="pt")
    return (time.perf_counter() - start) * 1000 / len(paths)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", choices=["clip", "dinov2"], required=True)
    ap.add_argument("--architecture", required=True, help="config.json fields, as JSON")
    ap.add_argument("--images")
    ap.add_argument("--camera", help="folder of camera-sized photos")
    ap.add_argument("--batch-size", type=int, action="append", default=[])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--precision", choices=["f32", "bf16", "int8", "f16"], default="f32")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--min-seconds", type=float, default=0.0)
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cpu" and args.precision == "f16":
        sys.exit("--precision f16 is measured on a GPU only (--device cuda)")
    if DEVICE == "cuda" and args.precision == "int8":
        sys.exit("--precision int8 is measured on the CPU only")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    processor, embed = build(args.family, json.loads(args.architecture), args.precision)
    figures = {"model_only": [model_only(embed, b, args.seconds) for b in (args.batch_size or [1])],
               "end_to_end": end_to_end(processor, embed, args.images, args.min_seconds) if args.images else None,
               "end_to_end_camera": end_to_end(processor, embed, args.camera, args.min_seconds) if args.camera else None,
               "decode_resize_ms": decode_resize_ms(processor, args.camera) if args.camera else None,
               "torch": torch.__version__, "threads": torch.get_num_threads(),
               "precision": args.precision, "device": args.device,
               "gpu": torch.cuda.get_device_name(0) if DEVICE == "cuda" else None,
               "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if DEVICE == "cuda" else None,
               # ru_maxrss is in KiB on Linux.
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
