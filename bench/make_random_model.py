"""Writes a model folder in Hugging Face layout with the real architecture and random weights
(CLIP ViT-B/32 or DINOv2-base), for speed and memory measurements where the real weights
cannot be downloaded. The embeddings mean nothing; the work per image is the real one.

    python bench/make_random_model.py clip /tmp/clip-random
    imgsim bench watch --model-dir /tmp/clip-random
    imgsim bench text --model-dir /tmp/clip-random --peer
"""
import shutil
import sys
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel, Dinov2Config, Dinov2Model

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def main():
    kind, out = sys.argv[1], Path(sys.argv[2])
    torch.manual_seed(0)
    if kind == "clip":
        model = CLIPModel(CLIPConfig())  # the defaults are ViT-B/32
        processor = FIXTURES / "tiny-clip" / "preprocessor_config.json"
    elif kind == "dinov2":
        model = Dinov2Model(Dinov2Config())  # the defaults are DINOv2-base
        processor = FIXTURES / "tiny-dinov2" / "preprocessor_config.json"
    else:
        sys.exit(f"unknown kind {kind!r}: clip or dinov2")
    model.save_pretrained(out, safe_serialization=True)
    shutil.copy(processor, out / "preprocessor_config.json")
    if kind == "clip":
        # The real CLIP tokenizer (built from open_clip's vocabulary by
        # scripts/make_text_fixtures.py), for `imgsim search` and `bench text`.
        for name in ["tokenizer.json", "tokenizer_config.json"]:
            shutil.copy(FIXTURES / "tiny-clip" / name, out / name)
    print(out)


if __name__ == "__main__":
    main()
