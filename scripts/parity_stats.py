"""Independent reference for simsweep's seed statistics (crates/core/src/query/stats.rs), with SciPy.

Writes cases (random groups of seed values) and SciPy's answers as JSON:
  - per group: mean, sample std, sem, the t confidence interval of the mean (scipy.stats.t.interval),
    median;
  - per pair (group, best): the paired t-test (scipy.stats.ttest_rel) over common seeds, or Welch's
    (scipy.stats.ttest_ind, equal_var=False), with the confidence interval of the difference from
    the result's confidence_interval(); Holm's adjustment computed here from SciPy's p-values;
  - a full grid's ANOVA shares by key, pair and residual, from a least-squares fit of the
    corresponding indicator models (numpy), and the F-test p-values (scipy.stats.f.sf).

  $(bash scripts/pyref.sh) scripts/parity_stats.py --seed 7 --out tests/fixtures/stats_scipy.json

crates/core/src/query/stats.rs's test reads the file and compares to 1e-9.
"""
import argparse
import itertools
import json

import numpy as np
from scipy import stats


def holm(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adj = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def group_summary(x, level):
    x = np.asarray(x, dtype=float)
    n = len(x)
    out = {"n": n, "mean": float(x.mean()), "median": float(np.median(x)),
           "min": float(x.min()), "max": float(x.max())}
    if n > 1:
        s = float(x.std(ddof=1))
        sem = float(stats.sem(x))
        lo, hi = stats.t.interval(level, n - 1, loc=x.mean(), scale=sem)
        out.update(std=s, sem=sem, ci_low=float(lo), ci_high=float(hi))
    else:
        out.update(std=None, sem=None, ci_low=None, ci_high=None)
    return out


def comparison_case(rng, level):
    """Groups of (seed, value); group 0 is the reference ('best')."""
    k = int(rng.integers(2, 6))
    groups = ["same"] + [str(rng.choice(["same", "other", "one"])) for _ in range(k - 1)]
    base_seeds = list(range(1, int(rng.integers(2, 7)) + 1))
    out = []
    for g, kind in enumerate(groups):
        if g == 0 or kind == "same":
            seeds = base_seeds
        elif kind == "other":
            seeds = sorted(rng.choice(np.arange(1, 12), size=int(rng.integers(2, 7)), replace=False).tolist())
        else:
            seeds = [int(rng.integers(1, 10))]
        mu = 60 + rng.normal(0, 3)
        vals = (mu + rng.normal(0, rng.uniform(0.5, 4), size=len(seeds))).tolist()
        out.append([[int(s), float(v)] for s, v in zip(seeds, vals)])
    best = out[0]
    bseeds = [s for s, _ in best]
    bvals = np.array([v for _, v in best])
    comps = []
    for g in out[1:]:
        gseeds = [s for s, _ in g]
        gvals = np.array([v for _, v in g])
        if sorted(gseeds) == sorted(bseeds) and len(g) >= 2:
            gi = np.array([v for _, v in sorted(g)])
            bi = np.array([v for _, v in sorted(best)])
            r = stats.ttest_rel(gi, bi)
            ci = r.confidence_interval(level)
            comps.append({"test": "paired", "diff": float(gi.mean() - bi.mean()), "p": float(r.pvalue),
                          "ci_low": float(ci.low), "ci_high": float(ci.high)})
        elif len(g) >= 2 and len(best) >= 2:
            r = stats.ttest_ind(gvals, bvals, equal_var=False)
            ci = r.confidence_interval(level)
            comps.append({"test": "welch", "diff": float(gvals.mean() - bvals.mean()), "p": float(r.pvalue),
                          "ci_low": float(ci.low), "ci_high": float(ci.high)})
        else:
            comps.append({"test": "welch", "diff": float(gvals.mean() - bvals.mean()), "p": None,
                          "ci_low": None, "ci_high": None})
    tested = [i for i, c in enumerate(comps) if c["p"] is not None]
    adj = holm([comps[i]["p"] for i in tested])
    for i, a in zip(tested, adj):
        comps[i]["p_adjusted"] = a
    for c in comps:
        c.setdefault("p_adjusted", None)
    return {"level": level, "groups": out,
            "summaries": [group_summary([v for _, v in g], level) for g in out],
            "comparisons": comps}


def design(levels, n_levels, terms):
    """Indicator columns (sum-to-zero coding) of the given terms over the rows' levels."""
    cols = [np.ones(len(levels))]
    for t in terms:
        blocks = []
        for k in t:
            m = np.zeros((len(levels), n_levels[k] - 1))
            for r, lv in enumerate(levels):
                if lv[k] < n_levels[k] - 1:
                    m[r, lv[k]] = 1.0
                else:
                    m[r, :] = -1.0
            blocks.append(m)
        prod = blocks[0]
        for b in blocks[1:]:
            prod = np.einsum("ri,rj->rij", prod, b).reshape(len(levels), -1)
        cols.append(prod)
    return np.column_stack(cols)


def rss(X, y):
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ beta
    return float(r @ r)


def anova_case(rng):
    k = int(rng.integers(2, 4))
    n_levels = [int(rng.integers(2, 4)) for _ in range(k)]
    reps = int(rng.integers(2, 4))
    keys = [f"k{i}" for i in range(k)]
    cells, levels = [], []
    effects = [rng.normal(0, 2, size=n) for n in n_levels]
    for lv in itertools.product(*[range(n) for n in n_levels]):
        mu = 50 + sum(effects[i][lv[i]] for i in range(k)) + (0.7 * lv[0] * lv[1])
        cells.append((mu + rng.normal(0, 1, size=reps)).tolist())
        levels.append(list(lv))
    # Rows: every value with its cell's levels (balanced: the sequential sums of squares of the
    # hierarchical models equal the orthogonal decomposition).
    rows, y = [], []
    for lv, c in zip(levels, cells):
        for v in c:
            rows.append(lv)
            y.append(v)
    y = np.array(y)
    mains = [(i,) for i in range(k)]
    pairs = list(itertools.combinations(range(k), 2))
    full = [t for r in range(1, k + 1) for t in itertools.combinations(range(k), r)]
    total = float(((y - y.mean()) ** 2).sum())
    terms = {}
    for i in range(k):
        others = [t for t in mains if t != (i,)]
        terms[keys[i]] = rss(design(rows, n_levels, others), y) - rss(design(rows, n_levels, mains), y)
    for (i, j) in pairs:
        others = mains + [p for p in pairs if p != (i, j)]
        terms[f"{keys[i]} × {keys[j]}"] = rss(design(rows, n_levels, others), y) - rss(design(rows, n_levels, mains + pairs), y)
    resid = rss(design(rows, n_levels, full), y)
    if k > 2:
        terms["higher-order interactions"] = rss(design(rows, n_levels, mains + pairs), y) - resid
    terms["seed (residual)"] = resid
    df_within = len(y) - len(cells)
    dfs = {keys[i]: n_levels[i] - 1 for i in range(k)}
    for (i, j) in pairs:
        dfs[f"{keys[i]} × {keys[j]}"] = (n_levels[i] - 1) * (n_levels[j] - 1)
    if k > 2:
        dfs["higher-order interactions"] = len(cells) - 1 - sum(dfs.values())
    out = []
    for t, ss in terms.items():
        e = {"term": t, "sum_sq": ss, "share": ss / total}
        if t != "seed (residual)" and dfs[t] > 0:
            f = (ss / dfs[t]) / (resid / df_within)
            e["f"] = f
            e["p"] = float(stats.f.sf(f, dfs[t], df_within))
        out.append(e)
    return {"keys": keys, "n_levels": n_levels, "levels": levels, "cells": cells, "terms": out}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    doc = {"scipy": __import__("scipy").__version__, "seed": a.seed,
           "comparisons": [comparison_case(rng, float(rng.choice([0.9, 0.95, 0.99]))) for _ in range(a.cases)],
           "anova": [anova_case(rng) for _ in range(max(4, a.cases // 5))]}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
