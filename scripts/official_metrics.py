#!/usr/bin/env python3
"""Scores prediction files with the official DISC21 evaluation code, for the agreement test.

Writes tests/fixtures/metrics/official.json: for each preds_*.csv beside gt.csv, the metrics
that `isc.metrics.evaluate` computes. Needs a checkout of facebookresearch/isc2021 (its `isc`
package; numpy only) and records which commit it was.

Usage: python3 scripts/official_metrics.py --isc2021 PATH/TO/isc2021 --commit SHA
"""
import argparse
import json
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "metrics"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--isc2021", required=True, help="checkout of facebookresearch/isc2021")
    parser.add_argument("--commit", required=True, help="the checkout's commit, recorded")
    args = parser.parse_args()
    sys.path.insert(0, args.isc2021)
    from isc.io import read_ground_truth, read_predictions
    from isc.metrics import evaluate

    gt = read_ground_truth(FIXTURES / "gt.csv")
    results = {}
    for preds_file in sorted(FIXTURES.glob("preds_*.csv")):
        m = evaluate(gt, read_predictions(preds_file))
        results[preds_file.name] = {
            "micro_ap": float(m.average_precision),
            "recall_at_p90": None if m.recall_at_p90 is None else float(m.recall_at_p90),
            "threshold_at_p90": None if m.threshold_at_p90 is None else float(m.threshold_at_p90),
            "recall_at_rank1": float(m.recall_at_rank1),
            "recall_at_rank10": float(m.recall_at_rank10),
        }
    out = {"isc2021_commit": args.commit, "files": results}
    (FIXTURES / "official.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
