#!/usr/bin/env python3
"""Gives the tiny CLIP fixture a text tower with the real CLIP tokenizer, and writes what the
reference (transformers' CLIPTokenizer and CLIPModel.get_text_features) makes of a few hundred
strings: token ids (padded to 77) and L2-normalised text embeddings.

Hugging Face cannot be reached here, but CLIP's BPE vocabulary ships inside the open_clip_torch
wheel on PyPI (`open_clip/bpe_simple_vocab_16e6.txt.gz`). This script builds the Hugging Face
tokenizer files from it (vocab = 256 byte characters, the same with `</w>`, each merge joined,
then <|startoftext|> and <|endoftext|>: 49,408 tokens), checks transformers' ids against
open_clip's own SimpleTokenizer on every test string, and reports where they differ (open_clip
runs ftfy and html.unescape first; transformers does not).

The vision tower of tests/fixtures/tiny-clip is kept byte for byte (the image parity fixtures
stay valid); only the text tower is replaced: the real 49,408-token vocabulary, 77 positions,
and `eos_token_id: 2` as in OpenAI's checkpoints, so transformers pools at `input_ids.argmax(-1)`.

Usage: python3 scripts/make_text_fixtures.py OPEN_CLIP_WHEEL
       (needs: pip install torch transformers safetensors ftfy regex;
        pip download --no-deps open_clip_torch gives the wheel)
"""
import gzip
import importlib.util
import io
import json
import math
import sys
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
MODEL = FIXTURES / "tiny-clip"
REFERENCE = FIXTURES / "reference" / "tiny-clip" / "text.json"
CONTEXT = 77

COCO_CATEGORIES = """person bicycle car motorcycle airplane bus train truck boat traffic-light
fire-hydrant stop-sign parking-meter bench bird cat dog horse sheep cow elephant bear zebra giraffe
backpack umbrella handbag tie suitcase frisbee skis snowboard sports-ball kite baseball-bat
baseball-glove skateboard surfboard tennis-racket bottle wine-glass cup fork knife spoon bowl banana
apple sandwich orange broccoli carrot hot-dog pizza donut cake chair couch potted-plant bed
dining-table toilet tv laptop mouse remote keyboard cell-phone microwave oven toaster sink
refrigerator book clock vase scissors teddy-bear hair-drier toothbrush""".split()


def bytes_to_unicode():
    """GPT-2's reversible map from bytes to printable characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def read_wheel(wheel):
    with zipfile.ZipFile(wheel) as z:
        bpe = z.read("open_clip/bpe_simple_vocab_16e6.txt.gz")
        source = z.read("open_clip/tokenizer.py").decode()
    return bpe, source


def hf_files(bpe_gz):
    lines = gzip.decompress(bpe_gz).decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408, len(vocab)
    return {t: i for i, t in enumerate(vocab)}, merges


def open_clip_tokenizer(source, bpe_gz, tmp):
    """open_clip's SimpleTokenizer from its own module, without importing open_clip."""
    (tmp / "bpe_simple_vocab_16e6.txt.gz").write_bytes(bpe_gz)
    (tmp / "oc_tokenizer.py").write_text(source)
    spec = importlib.util.spec_from_file_location("oc_tokenizer", tmp / "oc_tokenizer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SimpleTokenizer(str(tmp / "bpe_simple_vocab_16e6.txt.gz"))


def test_strings():
    s = [f"a photo of a {c.replace('-', ' ')}" for c in COCO_CATEGORIES]
    s += [c.replace("-", " ") for c in COCO_CATEGORIES]
    s += [
        "", " ", "a", "A", "dog", "DOG", "Dog on a Beach", "a dog on a beach at sunset",
        "two dogs, one cat.", "It's a dog's life", "they'll've", "I'M HERE", "what's up?!",
        "   leading and trailing   ", "tabs\tand\nnewlines\r\nhere", "multiple     spaces",
        "hyphen-ated words-here", "under_scores_and.dots", "email@example.com",
        "https://example.com/photo.jpg?x=1&y=2", "C:\\Users\\photos\\IMG_0001.JPG",
        "IMG_20231224_183012.jpg", "DSC01234", "2023-12-24 18:30", "3.14159", "1,000,000 photos",
        "100% sure", "#sunset #beach", "@friend", "$5.99", "(parentheses) [brackets] {braces}",
        "quotes \"double\" and 'single'", "semi;colon:colon", "a/b\\c|d", "~tilde^caret",
        "café", "déjà vu", "naïve façade", "Ålesund fjord", "São Paulo", "Zürich Straße",
        "crème brûlée", "El Niño", "Þingvellir", "Łódź", "İstanbul", "ǅ digraph",
        "e\u0301 combining", "ﬁ ligature", "ＦＵＬＬＷＩＤＴＨ", "Ⅻ roman", "²³ superscripts",
        "東京の夜景", "北京烤鸭", "서울 야경", "猫が寝ている", "Москва зимой", "Αθήνα",
        "ירושלים", "القاهرة", "मुंबई", "กรุงเทพ", "Việt Nam phở",
        "🐶 on a beach 🏖️", "🎉🎉🎉", "👨‍👩‍👧‍👦 family", "❤️", "🇯🇵 flag", "emoji😀inside",
        "zero\u200bwidth", "non\u00a0breaking space", "soft\u00adhyphen",
        "&amp; html &lt;entities&gt;", "it&#39;s", "Ã©mojibake cafÃ©",
        "<|startoftext|>", "<|endoftext|>", "a <|endoftext|> b",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
    ]
    words = ("the quick brown fox jumps over the lazy dog near a river bank while children play "
             "with a red kite and old men sit on wooden benches reading newspapers under tall "
             "trees").split()
    long_text = " ".join(words[i % len(words)] for i in range(200))
    s += [long_text, long_text.upper(), " ".join(["photo"] * 80), " ".join(["東京"] * 60)]
    # Mixed combinations, deterministic.
    adjectives = ["red", "old", "tiny", "blurry", "sunlit", "snowy", "crowded", "empty"]
    places = ["beach", "kitchen", "street", "forest", "airport", "stadium", "café", "東京"]
    for i, a in enumerate(adjectives):
        for j, p in enumerate(places):
            if (i + j) % 2 == 0:
                s.append(f"a {a} {COCO_CATEGORIES[(i * 8 + j) % 80]} in the {p}")
    return s


def tiny_text_model(vision_state):
    """The tiny CLIP with a real-vocabulary text tower and the fixture's own vision tower."""
    old = json.loads((MODEL / "config.json").read_text())
    text = dict(vocab_size=49408, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=CONTEXT, bos_token_id=49406,
                eos_token_id=2, pad_token_id=1, hidden_act="quick_gelu")
    config = CLIPConfig(text_config=text, vision_config=old["vision_config"],
                        projection_dim=old["projection_dim"])
    model = CLIPModel(config).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, p in params.items():
            if name in vision_state:
                p.copy_(vision_state[name])
                continue
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            elif "embedding" in name:
                p.copy_(0.5 * noise)
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(noise / math.sqrt(fan_in))
    return model


def main():
    import tempfile
    import transformers
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    bpe, source = read_wheel(sys.argv[1])
    vocab, merges = hf_files(bpe)
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CONTEXT)
    with tempfile.TemporaryDirectory() as tmp:
        oc = open_clip_tokenizer(source, bpe, Path(tmp))
        strings = test_strings()
        differ = []
        for s in strings:
            hf = tok(s, truncation=True, max_length=CONTEXT)["input_ids"]
            row = oc([s], context_length=CONTEXT)[0].tolist()
            theirs = row[:max(i for i, t in enumerate(row) if t != 0) + 1]
            if hf != theirs:
                differ.append(s)
    print(f"{len(strings)} strings; transformers and open_clip differ on {len(differ)}:")
    for s in differ:
        print("  ", repr(s))

    state = load_file(str(MODEL / "model.safetensors"))
    vision = {k: v for k, v in state.items() if not k.startswith("text_") and k != "logit_scale"}
    model = tiny_text_model(vision)
    new_state = {k: v.contiguous() for k, v in model.state_dict().items()}
    for k, v in vision.items():
        assert torch.equal(new_state[k], v), k
    config = model.config.to_dict()
    save_file(new_state, str(MODEL / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(MODEL)
    tok.save_pretrained(MODEL)
    # One line instead of the indented form: the same file, a third smaller.
    tj = MODEL / "tokenizer.json"
    tj.write_text(json.dumps(json.loads(tj.read_text()), ensure_ascii=False,
                             separators=(",", ":")))
    for extra in ["vocab.json", "merges.txt", "special_tokens_map.json", "chat_template.jinja"]:
        (MODEL / extra).unlink(missing_ok=True)

    records = []
    for s in strings:
        enc = tok(s, truncation=True, max_length=CONTEXT, padding="max_length",
                  return_tensors="pt")
        with torch.no_grad():
            f = model.get_text_features(input_ids=enc.input_ids, attention_mask=enc.attention_mask)
            f = f if torch.is_tensor(f) else f.pooler_output
        records.append({"text": s, "ids": enc.input_ids[0].tolist(),
                        "length": int(enc.attention_mask[0].sum()),
                        "embedding": torch.nn.functional.normalize(f, dim=-1)[0].tolist()})
    REFERENCE.write_text(json.dumps({
        "model": "tiny-clip", "context": CONTEXT, "transformers": transformers.__version__,
        "torch": torch.__version__, "open_clip_differs": differ, "strings": records},
        indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {REFERENCE} ({len(records)} strings) and the text tower of {MODEL}")
    del config


if __name__ == "__main__":
    main()
