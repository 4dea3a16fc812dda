#!/usr/bin/env python3
"""Writes tests/fixtures/transfer_reference.json: small synthetic embeddings for each of SentEval's
protocols (nested k-fold as MR/CR/SUBJ/MPQA, train/dev/test as SST-2, k-fold then test as TREC with
6 classes and as MRPC with F1) and the scores scripts/parity_transfer.py gives them in both modes.
crates/engine/src/eval/transfer/tests.rs checks simsweep's classifier against it in CI.

Run: $(bash scripts/pyref.sh) scripts/transfer_fixture.py
"""
import json
import os
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import parity_transfer as ref  # noqa: E402


def noise(rs, n, d, classes, spread):
    y = rs.randint(0, classes, size=n)
    return rs.normal(0, spread, size=(n, d)), y.astype(np.int64)


def main():
    rs = np.random.RandomState(7)
    d = 8
    # (splits as (rows, spread), classes): each case's splits share its class centres.
    cases = {
        "inner_kfold": ([(240, 1.3)], 2),
        "split": ([(300, 1.3), (80, 1.3), (120, 1.3)], 2),
        "kfold_test": ([(300, 1.0), (120, 1.0)], 6),
        "kfold_test_f1": ([(260, 1.5), (120, 1.5)], 2),
    }
    out = {"dim": d, "seed": 1111, "cases": {}}
    for name, (sizes, k) in cases.items():
        centres = rs.normal(0, 1, size=(k, d))
        splits = []
        for n, spread in sizes:
            z, y = noise(rs, n, d, k, spread)
            # Three decimals, so the JSON holds each float32 exactly as a short decimal.
            x = np.round(centres[y] + z, 3)
            splits.append((x, y))
        scores = {}
        for mode, cfg in ref.MODES.items():
            xs = [(x.astype(np.float32), y) for x, y in splits]
            if name == "inner_kfold":
                r = ref.inner_kfold(*xs[0], k, cfg, 1111)
            elif name == "split":
                r = ref.split_classifier(*xs[0], *xs[1], *xs[2], k, cfg, 1111)
            else:
                r = ref.kfold_then_test(*xs[0], *xs[1], k, cfg, 1111, f1=name.endswith("f1"))
            scores[mode] = {key: float(v) for key, v in r.items()}
        out["cases"][name] = {
            "classes": k,
            "splits": [{"x": [float(v) for v in x.ravel()], "y": [int(v) for v in y]} for x, y in splits],
            "scores": scores,
        }
    path = os.path.join(here, "..", "tests", "fixtures", "transfer_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    for name, c in out["cases"].items():
        print(name, c["scores"])


if __name__ == "__main__":
    main()
