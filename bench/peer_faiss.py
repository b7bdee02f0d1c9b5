#!/usr/bin/env python3
"""The FAISS side of `imgsim bench ann --peer`.

Searches the same vectors and queries that imgsim just searched (raw little-endian float32
files written by imgsim) with FAISS, one query at a time as imgsim does:
  - IndexFlatIP: exact inner-product search (cosine, the vectors are unit length);
  - IndexIVFPQ with the same shape as imgsim's index (nlist partitions, m sub-quantizers of
    8 bits, inner product), searched with the same nprobe;
  - the same IVF-PQ re-ranked with the full vectors (IndexRefineFlat, k_factor = refine x 4,
    as many candidates as imgsim re-ranks).
Recall@k is measured against the exact top k that imgsim computed (--truth). Prints one JSON
line per method with imgsim's fields.

Usage: python3 bench/peer_faiss.py --vectors V.f32 --queries Q.f32 --truth T.json --dim 768
       --k 10 --nlist 316 --m 48 --nprobe 32 --refine 8
Needs: pip install faiss-cpu numpy
"""
import argparse
import json
import time

import faiss
import numpy as np


def measure(name, index, queries, truth, k, rows, build_seconds):
    latencies = []
    found = 0
    for q, expected in zip(queries, truth):
        start = time.perf_counter()
        _, ids = index.search(q[None, :], k)
        latencies.append((time.perf_counter() - start) * 1000.0)
        found += len(set(ids[0].tolist()) & set(expected))
    latencies.sort()
    pick = lambda p: latencies[round((len(latencies) - 1) * p)]
    return {
        "method": name,
        "rows": rows,
        "build_seconds": build_seconds,
        "recall_at_k": found / (len(queries) * k),
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "queries": len(queries),
    }


def main():
    parser = argparse.ArgumentParser()
    for name in ["--vectors", "--queries", "--truth"]:
        parser.add_argument(name, required=True)
    for name in ["--dim", "--k", "--nlist", "--m", "--nprobe", "--refine"]:
        parser.add_argument(name, type=int, required=True)
    args = parser.parse_args()

    data = np.fromfile(args.vectors, dtype="<f4").reshape(-1, args.dim)
    queries = np.fromfile(args.queries, dtype="<f4").reshape(-1, args.dim)
    with open(args.truth) as f:
        truth = json.load(f)
    rows = data.shape[0]

    start = time.perf_counter()
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(data)
    built = time.perf_counter() - start
    print(json.dumps(measure("FAISS IndexFlatIP (exact)", flat, queries, truth, args.k, rows, built)),
          flush=True)
    del flat

    start = time.perf_counter()
    quantizer = faiss.IndexFlatIP(args.dim)
    ivfpq = faiss.IndexIVFPQ(quantizer, args.dim, args.nlist, args.m, 8, faiss.METRIC_INNER_PRODUCT)
    ivfpq.train(data)
    ivfpq.add(data)
    built = time.perf_counter() - start
    ivfpq.nprobe = args.nprobe
    print(json.dumps(measure("FAISS IVF-PQ", ivfpq, queries, truth, args.k, rows, built)), flush=True)

    refined = faiss.IndexRefineFlat(ivfpq, faiss.swig_ptr(data))
    refined.k_factor = args.refine * 4
    print(json.dumps(measure("FAISS IVF-PQ + refine", refined, queries, truth, args.k, rows, built)),
          flush=True)


if __name__ == "__main__":
    main()
