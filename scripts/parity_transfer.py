#!/usr/bin/env python3
"""An independent reference for simsweep's SentEval transfer protocol (crates/engine/src/eval/transfer).

Reads the embeddings that `simsweep eval --tasks transfer --save-embeddings DIR` wrote
(`<task>.<split>.x.npy` float32 rows and `<task>.<split>.y.npy` labels, in SentEval's sorted order)
and scores them as SentEval does with SimCSE's parameters, written here from SentEval's description
(docs/cli.md, `simsweep eval`), with other tools than simsweep's:

- folds: scikit-learn's StratifiedKFold(k, shuffle=True, random_state=seed);
- randomness: numpy's global legacy RandomState, reseeded by every classifier (batch order, the
  5 % validation split);
- initial weights: torch's nn.Linear(d, classes) after torch.manual_seed(seed), as SentEval builds it;
- the classifier: a linear layer trained in numpy float32 on mean cross-entropy, with torch.optim's
  Adam / RMSprop update rules and coupled weight decay, early stopping on validation accuracy with a
  cumulative tenacity.

Usage: parity_transfer.py DIR --mode test|fasttest [--seed 1111] [--tasks mr,cr,...] [--json OUT]
Prints one line per task and, with --json, writes {"mode", "seed", "scores": {task: acc, "mrpc_f1"},
"seconds": {task: s}}.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
from sklearn.model_selection import StratifiedKFold

MODES = {
    "test": dict(kfold=10, optim="adam", batch_size=64, tenacity=5, epoch_size=4),
    "fasttest": dict(kfold=5, optim="rmsprop", batch_size=128, tenacity=3, epoch_size=2),
}
REGS = [10.0**t for t in range(-5, -1)]
MAX_EPOCH = 200


def init_linear(d, c, seed):
    import torch

    torch.manual_seed(seed)
    lin = torch.nn.Linear(d, c)
    return lin.weight.detach().numpy().astype(np.float32).copy(), lin.bias.detach().numpy().astype(np.float32).copy()


_INIT = {}


def initial(d, c, seed):
    if (d, c, seed) not in _INIT:
        _INIT[(d, c, seed)] = init_linear(d, c, seed)
    w, b = _INIT[(d, c, seed)]
    return w.copy(), b.copy()


def accuracy(w, b, x, y):
    if len(y) == 0:
        return 0.0
    z = x @ w.T + b
    return float((z.argmax(axis=1) == y).mean())


def fit(x, y, c, reg, cfg, seed, val=None, split=None):
    np.random.seed(seed)
    if split is not None:
        perm = np.random.permutation(len(x))
        nd = int(split * len(x))
        xd, yd, xt, yt = x[perm[:nd]], y[perm[:nd]], x[perm[nd:]], y[perm[nd:]]
    else:
        xt, yt = x, y
        xd, yd = val
    w, b = initial(x.shape[1], c, seed)
    m = [np.zeros_like(w), np.zeros_like(b)]
    v = [np.zeros_like(w), np.zeros_like(b)]
    reg = np.float32(reg)
    t = 0
    best, kept = -1.0, (w.copy(), b.copy())
    bad, nepoch, stop = 0, 0, False
    eye = np.eye(c, dtype=np.float32)
    while not stop and nepoch <= MAX_EPOCH:
        for _ in range(cfg["epoch_size"]):
            perm = np.random.permutation(len(xt))
            for i in range(0, len(xt), cfg["batch_size"]):
                idx = perm[i : i + cfg["batch_size"]]
                xb = xt[idx]
                z = xb @ w.T + b
                z = z - z.max(axis=1, keepdims=True)
                p = np.exp(z)
                p /= p.sum(axis=1, keepdims=True)
                g = (p - eye[yt[idx]]) / np.float32(len(idx))
                grads = [g.T @ xb, g.sum(axis=0)]
                t += 1
                for k, theta in enumerate((w, b)):
                    gk = grads[k] + reg * theta
                    # torch.optim's single-tensor forms: lerp, mul + addcmul, addcdiv.
                    if cfg["optim"] == "adam":
                        m[k] += np.float32(1 - 0.9) * (gk - m[k])
                        v[k] = v[k] * np.float32(0.999) + np.float32(1 - 0.999) * gk * gk
                        step = np.float32(1e-3 / (1 - 0.9**t))
                        denom = np.sqrt(v[k]) / np.float32((1 - 0.999**t) ** 0.5) + np.float32(1e-8)
                        theta += np.float32(-step) * m[k] / denom
                    else:
                        v[k] = v[k] * np.float32(0.99) + np.float32(1 - 0.99) * gk * gk
                        theta += np.float32(-1e-2) * gk / (np.sqrt(v[k]) + np.float32(1e-8))
        nepoch += cfg["epoch_size"]
        acc = accuracy(w, b, xd, yd)
        if acc > best:
            best, kept = acc, (w.copy(), b.copy())
        else:
            if bad >= cfg["tenacity"]:
                stop = True
            bad += 1
    return kept, best


def penalty_scan(x, y, folds, c, cfg, seed):
    """Each penalty's mean validation accuracy over the folds, × 100 rounded as numpy rounds."""
    scores = []
    for reg in REGS:
        s = []
        for tr, te in folds.split(x, y):
            (w, b), _ = fit(x[tr], y[tr], c, reg, cfg, seed, val=(x[te], y[te]))
            s.append(accuracy(w, b, x[te], y[te]))
        scores.append(round(100 * np.mean(s), 2))
    return scores


def inner_kfold(x, y, c, cfg, seed):
    k = cfg["kfold"]
    # SentEval's InnerKFoldClassifier draws its folds with a fixed 1111, whatever the seed.
    outer = StratifiedKFold(n_splits=k, shuffle=True, random_state=1111)
    inner = StratifiedKFold(n_splits=k, shuffle=True, random_state=1111)
    dev, test = [], []
    for tr, te in outer.split(x, y):
        xtr, ytr = x[tr], y[tr]
        scores = penalty_scan(xtr, ytr, inner, c, cfg, seed)
        best = int(np.argmax(scores))
        dev.append(scores[best])
        (w, b), _ = fit(xtr, ytr, c, REGS[best], cfg, seed, split=0.05)
        test.append(round(100 * accuracy(w, b, x[te], y[te]), 2))
    return {"acc": round(np.mean(test), 2), "devacc": round(np.mean(dev), 2)}


def kfold_then_test(xtr, ytr, xte, yte, c, cfg, seed, f1=False):
    skf = StratifiedKFold(n_splits=cfg["kfold"], shuffle=True, random_state=seed)
    scores = penalty_scan(xtr, ytr, skf, c, cfg, seed)
    best = int(np.argmax(scores))
    (w, b), _ = fit(xtr, ytr, c, REGS[best], cfg, seed, split=0.05)
    pred = (xte @ w.T + b).argmax(axis=1)
    out = {"acc": round(100 * float((pred == yte).mean()), 2), "devacc": scores[best]}
    if f1:
        tp = int(((pred == 1) & (yte == 1)).sum())
        fp = int(((pred == 1) & (yte != 1)).sum())
        fn = int(((pred != 1) & (yte == 1)).sum())
        den = 2 * tp + fp + fn
        out["f1"] = round(100 * (2 * tp / den if den else 0.0), 2)
    return out


def split_classifier(xtr, ytr, xdev, ydev, xte, yte, c, cfg, seed):
    fits = [fit(xtr, ytr, c, reg, cfg, seed, val=(xdev, ydev)) for reg in REGS]
    scores = [round(100 * acc, 2) for _, acc in fits]
    best = int(np.argmax(scores))
    w, b = fits[best][0]
    return {"acc": round(100 * accuracy(w, b, xte, yte), 2), "devacc": scores[best]}


def load(d, task, split):
    x = np.load(os.path.join(d, f"{task}.{split}.x.npy")).astype(np.float32)
    y = np.load(os.path.join(d, f"{task}.{split}.y.npy")).astype(np.int64)
    return x, y


def score(d, task, cfg, seed):
    if task in ("mr", "cr", "subj", "mpqa"):
        x, y = load(d, task, "all")
        return inner_kfold(x, y, 2, cfg, seed)
    if task == "sst2":
        return split_classifier(*load(d, task, "train"), *load(d, task, "dev"), *load(d, task, "test"), 2, cfg, seed)
    if task == "trec":
        return kfold_then_test(*load(d, task, "train"), *load(d, task, "test"), 6, cfg, seed)
    if task == "mrpc":
        return kfold_then_test(*load(d, task, "train"), *load(d, task, "test"), 2, cfg, seed, f1=True)
    raise SystemExit(f"unknown task {task}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--mode", choices=list(MODES), default="test")
    ap.add_argument("--seed", type=int, default=1111)
    ap.add_argument("--tasks", default="mr,cr,subj,mpqa,sst2,trec,mrpc")
    ap.add_argument("--json")
    a = ap.parse_args()
    cfg = MODES[a.mode]
    scores, seconds = {}, {}
    for task in a.tasks.split(","):
        t0 = time.perf_counter()
        r = score(a.dir, task, cfg, a.seed)
        seconds[task] = time.perf_counter() - t0
        scores[task] = r["acc"]
        if "f1" in r:
            scores["mrpc_f1"] = r["f1"]
        print(f"{task}: {r} ({seconds[task]:.1f} s)", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"mode": a.mode, "seed": a.seed, "scores": scores, "seconds": seconds}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
