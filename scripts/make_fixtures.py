#!/usr/bin/env python3
"""Writes the parity fixtures under tests/fixtures/ (committed; tests need no Python).

Tiny, randomly initialised CLIP and DINOv2 models in Hugging Face layout, a few test images,
and what the reference implementation (transformers' PIL-backend image processors and models)
makes of them: the 8-bit resized-and-cropped image, the pixel values of one image, and the
L2-normalised embeddings. The DINOv2 model has image_size 518, so that at 224 px input its
37x37 position grid is interpolated to 16x16, as with the real checkpoints.

Also the `imagehash.phash` of those images, for the weight-free baseline.

Usage: python3 scripts/make_fixtures.py [--only phash]
       (needs: pip install torch transformers pillow safetensors imagehash)
"""
import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import (BitImageProcessorPil, CLIPConfig, CLIPImageProcessorPil, CLIPModel,
                          Dinov2Config, Dinov2Model)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
COCO = ROOT.parent / "shared" / "data" / "coco128" / "val2017"
# Photos the parity tests use; scripts/check_parity.py checks any others.
COCO_IMAGES = ["000000000009.jpg", "000000000025.jpg", "000000000030.jpg", "000000000034.jpg"]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def make_test_images():
    """Grayscale, RGBA, very tall and 10x10 PNGs, cut from a real photo."""
    out = FIXTURES / "images"
    out.mkdir(parents=True, exist_ok=True)
    photo = Image.open(COCO / "000000000036.jpg").convert("RGB")
    photo.crop((0, 0, 300, 200)).convert("L").save(out / "gray.png")
    rgba = photo.crop((100, 100, 420, 340)).convert("RGBA")
    alpha = Image.linear_gradient("L").resize(rgba.size)
    rgba.putalpha(alpha)
    rgba.save(out / "rgba.png")
    photo.crop((200, 0, 260, 420)).save(out / "tall.png")
    photo.resize((10, 10), Image.Resampling.BOX).save(out / "tiny.png")
    return [f"images/{n}" for n in ["gray.png", "rgba.png", "tall.png", "tiny.png"]]


def spread_init(model, seed):
    """Weights large enough that embeddings depend strongly on every detail of the input:
    transformers' default init (std 0.02) makes all embeddings nearly equal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            elif "position" in name or "cls_token" in name or "class_embedding" in name:
                p.copy_(0.5 * noise)
            elif "lambda1" in name:
                p.copy_(1.0 + 0.2 * noise)
            elif "mask_token" in name:
                p.zero_()
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(noise / math.sqrt(fan_in))


def tiny_clip(path):
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=99, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16),
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, image_size=224, patch_size=32),
        projection_dim=32,
    )
    model = CLIPModel(config).eval()
    spread_init(model, 1)
    model.save_pretrained(path, safe_serialization=True)
    processor = CLIPImageProcessorPil()
    processor.save_pretrained(path)
    return model, processor


def tiny_dinov2(path):
    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=4,
                          image_size=518, patch_size=14, layer_norm_eps=1e-6)
    model = Dinov2Model(config).eval()
    spread_init(model, 2)
    model.save_pretrained(path, safe_serialization=True)
    processor = BitImageProcessorPil(size={"shortest_edge": 256},
                                     crop_size={"height": 224, "width": 224},
                                     image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)
    processor.save_pretrained(path)
    return model, processor


def load_rgb(rel):
    path = load_path(rel)
    # PIL's convert("RGB"): grey replicated, alpha dropped. (transformers 5 would composite
    # alpha onto white; imgsim follows PIL and the published recipe.)
    return Image.open(path).convert("RGB")


def normalize(t):
    return torch.nn.functional.normalize(t, dim=-1)


def reference(name, model, processor, images, pixel_image):
    out_dir = FIXTURES / "reference" / name
    (out_dir / "crops").mkdir(parents=True, exist_ok=True)
    records = []
    tensors = {}
    for rel in images:
        img = load_rgb(rel)
        px = processor(images=img, return_tensors="pt").pixel_values
        crop = processor(images=img, do_rescale=False, do_normalize=False,
                         return_tensors="np").pixel_values[0]
        crop_name = rel.replace("/", "_").rsplit(".", 1)[0] + ".png"
        Image.fromarray(np.round(crop).astype(np.uint8).transpose(1, 2, 0)).save(out_dir / "crops" / crop_name)
        record = {"image": rel, "size": list(img.size), "crop": f"crops/{crop_name}"}
        with torch.no_grad():
            if isinstance(model, CLIPModel):
                feats = model.get_image_features(pixel_values=px)
                feats = feats if torch.is_tensor(feats) else feats.pooler_output
                record["embedding"] = normalize(feats)[0].tolist()
            else:
                out = model(pixel_values=px)
                record["embedding"] = normalize(out.last_hidden_state.mean(dim=1))[0].tolist()
                record["embedding_cls"] = normalize(out.pooler_output)[0].tolist()
        records.append(record)
        if rel == pixel_image:
            tensors["pixel_values"] = px.contiguous()
            with torch.no_grad():
                if isinstance(model, CLIPModel):
                    f = model.get_image_features(pixel_values=px)
                    f = f if torch.is_tensor(f) else f.pooler_output
                    tensors["embedding"] = normalize(f).contiguous()
                else:
                    tensors["embedding"] = normalize(model(pixel_values=px).last_hidden_state.mean(1)).contiguous()
                    dummy = torch.zeros(1, 257, model.config.hidden_size)
                    tensors["positions_16x16"] = model.embeddings.interpolate_pos_encoding(dummy, 224, 224).contiguous()
    save_file(tensors, str(out_dir / "pixels.safetensors"), metadata={"image": pixel_image})
    (out_dir / "embeddings.json").write_text(json.dumps({"model": name, "images": records}, indent=1) + "\n")


def phash_reference(images):
    """imagehash.phash of each image, as the hex string imagehash prints."""
    import imagehash
    hashes = {rel: str(imagehash.phash(Image.open(load_path(rel)))) for rel in images}
    (FIXTURES / "reference" / "phash.json").write_text(
        json.dumps({"imagehash": imagehash.__version__, "hashes": hashes}, indent=1) + "\n")


def load_path(rel):
    return COCO / rel.split("/", 1)[1] if rel.startswith("coco/") else FIXTURES / rel


def main():
    import sys
    import transformers
    if sys.argv[1:] == ["--only", "phash"]:
        pngs = [f"images/{n}" for n in ["gray.png", "rgba.png", "tall.png", "tiny.png"]]
        phash_reference([f"coco/{n}" for n in COCO_IMAGES] + pngs)
        return
    pngs = make_test_images()
    images = [f"coco/{n}" for n in COCO_IMAGES] + pngs
    clip, clip_proc = tiny_clip(FIXTURES / "tiny-clip")
    dino, dino_proc = tiny_dinov2(FIXTURES / "tiny-dinov2")
    reference("tiny-clip", clip, clip_proc, images, "images/rgba.png")
    reference("tiny-dinov2", dino, dino_proc, images, "coco/000000000009.jpg")
    phash_reference(images)
    (FIXTURES / "reference" / "VERSIONS").write_text(
        f"torch {torch.__version__}\ntransformers {transformers.__version__}\n"
        f"pillow {Image.__version__}\nnumpy {np.__version__}\n")
    print("fixtures written to", FIXTURES)


if __name__ == "__main__":
    main()
