#!/usr/bin/env python3
"""Puts the GPU check's results (scripts/gpu-check.sh) into one Markdown report.

    python3 scripts/gpu_report.py OUT_DIR > OUT_DIR/report.md

Reads parity.jsonl, imgsim.jsonl, peer-<family>-<precision>.json (+ .window) and
gpu-samples.csv (nvidia-smi: timestamp, MiB used, % busy). Standard library only.
"""
import datetime
import json
import sys
from pathlib import Path


def lines(path):
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def samples(path):
    """(unix time, MiB used) from nvidia-smi's CSV (local time stamps)."""
    out = []
    if not path.exists():
        return out
    for row in path.read_text().splitlines():
        parts = [p.strip() for p in row.split(",")]
        if len(parts) < 2:
            continue
        try:
            t = datetime.datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
            out.append((t, float(parts[1])))
        except ValueError:
            continue
    return out


def peak_mib(gpu, start, end):
    inside = [mib for t, mib in gpu if start <= t <= end]
    return max(inside) if inside else None


def fmt(x, digits=1):
    return "-" if x is None else f"{x:,.{digits}f}"


def main():
    out = Path(sys.argv[1])
    gpu = samples(out / "gpu-samples.csv")
    print("# GPU check\n")
    smi = (out / "nvidia-smi.txt").read_text() if (out / "nvidia-smi.txt").exists() else ""
    name = next((l for l in smi.splitlines() if "NVIDIA" in l and "Driver" not in l), "").strip(" |")
    print(f"GPU: {name or 'unknown'}\n")

    parity = lines(out / "parity.jsonl")
    rc = (out / "parity.rc").read_text().strip() if (out / "parity.rc").exists() else "?"
    print(f"## Parity (exit {rc})\n")
    print("| model | pooling | precision | images | worst relative L2 | worst cosine | bound | failed |")
    print("|---|---|---|---|---|---|---|---|")
    groups = {}
    for p in parity:
        groups.setdefault((p["model"], p["pooling"], p["precision"]), []).append(p)
    for (model, pooling, precision), ps in groups.items():
        failed = sum(1 for p in ps if p["ok"] is False)
        bounds = "; ".join(sorted({p["bound"] for p in ps}))
        print(f"| {model} | {pooling} | {precision} | {len(ps)} | {max(p['relative_l2'] for p in ps):.2e} "
              f"| {min(p['cosine'] for p in ps):.6f} | {bounds} | {failed} |")
    print()

    ours = {(l["model"].split("+")[0].split("/")[-1], l["precision"]): l for l in lines(out / "imgsim.jsonl")
            if "model_only" in l}
    print("## Images/s, imgsim / PyTorch, same GPU, same run\n")
    print("| model | precision | what | imgsim | PyTorch | ratio | peak GPU MiB imgsim / PyTorch |")
    print("|---|---|---|---|---|---|---|")
    order = {"f32": 0, "f16": 1, "bf16": 2, "int8": 3}
    suggestions = []
    for (model, precision), l in sorted(ours.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 9))):
        family = "clip" if "clip" in model else "dinov2"
        peer = lines(out / f"peer-{family}-{precision}.json")
        peer = peer[-1] if peer else {}
        window = lines(out / f"peer-{family}-{precision}.window")
        peer_mib = peak_mib(gpu, window[0]["started_at"], window[0]["ended_at"]) if window else None
        our_mib = peak_mib(gpu, l["started_at"], l["ended_at"])
        memory = f"{fmt(our_mib, 0)} / {fmt(peer_mib, 0)}"
        rows = []
        for m in l["model_only"]:
            theirs = next((p for p in peer.get("model_only", []) if p["batch_size"] == m["batch_size"]), {})
            rows.append((f"model only, batch {m['batch_size']}", m.get("images_per_s"), theirs.get("images_per_s")))
        for key, what in [("end_to_end", "end to end, coco128"), ("end_to_end_camera", "end to end, camera photos")]:
            mine, theirs = l.get(key) or {}, peer.get(key) or {}
            rows.append((what, mine.get("images_per_s"), theirs.get("images_per_s")))
        for what, a, b in rows:
            ratio = f"{a / b:.2f}x" if a and b else "-"
            print(f"| {model} | {precision} | {what} | {fmt(a)} | {fmt(b)} | {ratio} | {memory} |")
            memory = ""
        measured = [m for m in l["model_only"] if m.get("images_per_s")]
        if measured:
            best = max(m["images_per_s"] for m in measured)
            enough = min(m["batch_size"] for m in measured if m["images_per_s"] >= 0.95 * best)
            suggestions.append(f"{model} {precision}: batch {enough} (within 5% of the best, {best:,.0f} images/s)")
        f = l.get("fidelity_vs_f32")
        if f:
            print(f"| {model} | {precision} | cosine with f32: mean {f['mean_cosine']:.6f}, worst "
                  f"{f['worst_cosine']:.6f}; top-{f['k']} overlap {f['top_k_overlap']:.4f} | | | | |")
    print()
    if suggestions:
        print("Smallest model-only batch within 5% of the best: " + "; ".join(suggestions) + ".\n")
    print(f"End-to-end batch: {', '.join(sorted({str(l['end_to_end_batch']) for l in ours.values()})) or '-'}; "
          "peak GPU memory is the device's (nvidia-smi, every 250 ms) while each side ran; "
          "PyTorch's own allocator peak (max_memory_allocated) is in peer-*.json.")
    for err in sorted(out.glob("*.err")):
        text = err.read_text().strip()
        if text:
            print(f"\n### {err.name}\n\n```\n{text[-2000:]}\n```")


if __name__ == "__main__":
    main()
