"""The PyTorch side of `imgsim bench text`: what a Python user would run for a text query,
`CLIPTokenizer` + `CLIPModel.get_text_features`, on the same model folder and the same texts.

Prints one JSON line: load time, tokenizer and embedding time per query (median), the
versions, and the L2-normalised embeddings of the first texts (imgsim compares them with its
own). With --one, embeds one text and exits (imgsim times the whole process).

    python bench/peer_torch_text.py --model-dir DIR --threads 2 --text "a photo of a dog" ...
"""
import argparse
import json
import statistics
import time

T0 = time.perf_counter()
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import CLIPModel, CLIPTokenizer  # noqa: E402

IMPORT_S = time.perf_counter() - T0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--text", action="append", default=[])
    ap.add_argument("--one", action="store_true")
    ap.add_argument("--compare", type=int, default=3)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t = time.perf_counter()
    tokenizer = CLIPTokenizer.from_pretrained(args.model_dir)
    model = CLIPModel.from_pretrained(args.model_dir).eval()
    load_s = time.perf_counter() - t

    def embed(text):
        ids = tokenizer([text], padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            f = model.get_text_features(**ids)
        f = f if torch.is_tensor(f) else f.pooler_output
        return torch.nn.functional.normalize(f, dim=-1)[0]

    if args.one:
        embed(args.text[0])
        return
    embed(args.text[0])  # warm-up
    tokenize_ms, embed_ms = [], []
    for text in args.text:
        t = time.perf_counter()
        tokenizer([text], padding=True, truncation=True, return_tensors="pt")
        tokenize_ms.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        embed(text)
        embed_ms.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({
        "import_s": IMPORT_S,
        "load_s": load_s,
        "tokenize_p50_ms": statistics.median(tokenize_ms),
        "embed_p50_ms": statistics.median(embed_ms),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "embeddings": [embed(t).tolist() for t in args.text[:args.compare]],
    }))


if __name__ == "__main__":
    main()
