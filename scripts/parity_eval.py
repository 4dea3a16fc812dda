#!/usr/bin/env python3
"""Independent Python reference for simsweep's STS evaluation (SimCSE / SentEval protocol).

Reads the STS files itself, following SentEval's loaders (SimCSE's bundled copy), embeds every
distinct sentence with a Hugging Face `transformers` model, scores each task as
Spearman(cosine, gold) x 100 with scipy, and prints a table:

  sts12..sts16  SimCSE's "all" setting: the year's subsets (SentEval's list) concatenated,
                pairs with an empty gold line dropped, subsets without an input file skipped
  stsb_dev/test STS Benchmark sts-{dev,test}.csv, the whole file
  sickr_test    SICK_test_annotated.txt, the whole file
  avg           mean of sts12-16, stsb_test, sickr_test (only when all seven were run)

Sentences reach the tokenizer as SentEval + SimCSE's batcher pass them: ' '.join(s.split()).
Tokenization: the tokenizer's own truncation at --max-len (default 32, simsweep's default), padding
to the longest in the batch. Pooling over the last layer(s) as SimCSE's evaluation.py defines it.

  --rust-json FILE        compare with simsweep's scores JSON ({"sts12": .., ...}); exit 1 if any
                          |delta| > --tolerance (default 0.05) or a task is missing on either side
  --json-out FILE         write this script's scores as JSON in the same shape
  --dump-embeddings FILE  write {sentence: vector} (float32 values) of --dump-task and this script's
                          score for it; simsweep's test `eval::tests::python_dump_parity` reads it
                          through env SIMSWEEP_EVAL_FIXTURE
  --dump-pairs FILE       write {task: [[a, b, gold], ...]} as this script reads them (no model
                          needed); simsweep's test `eval::tests::python_reader_parity` compares its
                          own reader with it through env SIMSWEEP_EVAL_PAIRS
  --write-fixture FILE    the small committed CI fixture: the first 200 pairs of stsb_dev, the first
                          32 embedding dimensions rounded to 4 decimals (stored as integers x 1e4),
                          with the cosines and correlations computed from those rounded vectors

Run with the reference environment: $(bash scripts/pyref.sh) scripts/parity_eval.py --model DIR
--data-dir DIR.
"""

import argparse
import io
import json
import math
import os
import sys
import time

import numpy as np
from scipy.stats import pearsonr, spearmanr

STS_YEARS = {
    "sts12": ("STS12-en-test", ["MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"]),
    "sts13": ("STS13-en-test", ["FNWN", "headlines", "OnWN"]),
    "sts14": ("STS14-en-test", ["deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news"]),
    "sts15": ("STS15-en-test", ["answers-forums", "answers-students", "belief", "headlines", "images"]),
    "sts16": ("STS16-en-test", ["answer-answer", "headlines", "plagiarism", "postediting", "question-question"]),
}
TASKS = ["sts12", "sts13", "sts14", "sts15", "sts16", "stsb_dev", "stsb_test", "sickr_test"]
AVG_TASKS = ["sts12", "sts13", "sts14", "sts15", "sts16", "stsb_test", "sickr_test"]
POOLERS = ["cls_before_pooler", "avg", "avg_top2", "avg_first_last"]


def downstream(data_dir):
    for cand in (
        os.path.join(data_dir, "SentEval", "data", "downstream"),
        os.path.join(data_dir, "data", "downstream"),
        os.path.join(data_dir, "downstream"),
    ):
        if os.path.isdir(cand):
            return cand
    if os.path.isdir(os.path.join(data_dir, "STS")) or os.path.isdir(os.path.join(data_dir, "SICK")):
        return data_dir
    sys.exit(f"{data_dir}: no SentEval data found")


def words(s):
    # SentEval keeps s.split(); SimCSE's batcher re-joins with single spaces.
    return " ".join(s.split())


def load_sts_year(path, subsets):
    """SentEval STSEval.loadFile, subsets concatenated ("all")."""
    out = []
    for dataset in subsets:
        fin = os.path.join(path, "STS.input.%s.txt" % dataset)
        if not os.path.exists(fin):
            continue
        lines = io.open(fin, encoding="utf8").read().splitlines()
        sent1, sent2 = zip(*[l.split("\t") for l in lines])
        raw = io.open(os.path.join(path, "STS.gs.%s.txt" % dataset), encoding="utf8").read().splitlines()
        if len(raw) != len(sent1):
            sys.exit(f"{fin}: {len(sent1)} lines but gold has {len(raw)}")
        for a, b, g in zip(sent1, sent2, raw):
            if g != "":
                out.append((words(a), words(b), float(g)))
    return out


def load_columns(fpath, skip_header, score_col, a_col, b_col):
    """SentEval's STSBenchmarkEval / SICKRelatednessEval.loadFile."""
    out = []
    with io.open(fpath, "r", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if skip_header and i == 0:
                continue
            text = line.strip().split("\t")
            out.append((words(text[a_col]), words(text[b_col]), float(text[score_col])))
    return out


def load_task(root, task):
    if task in STS_YEARS:
        year, subsets = STS_YEARS[task]
        return load_sts_year(os.path.join(root, "STS", year), subsets)
    if task == "stsb_dev":
        return load_columns(os.path.join(root, "STS", "STSBenchmark", "sts-dev.csv"), False, 4, 5, 6)
    if task == "stsb_test":
        return load_columns(os.path.join(root, "STS", "STSBenchmark", "sts-test.csv"), False, 4, 5, 6)
    if task == "sickr_test":
        return load_columns(os.path.join(root, "SICK", "SICK_test_annotated.txt"), True, 3, 1, 2)
    raise ValueError(task)


class Encoder:
    def __init__(self, model_dir, pooling, max_len, batch_size, device):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModel.from_pretrained(model_dir).to(device).eval()
        self.pooling, self.max_len, self.batch_size, self.device = pooling, max_len, batch_size, device

    def __call__(self, sentences):
        """{sentence: float32 vector} for the distinct sentences given."""
        torch = self.torch
        todo = sorted(set(sentences), key=lambda s: (-len(s), s))
        out = {}
        with torch.no_grad():
            for i in range(0, len(todo), self.batch_size):
                batch = todo[i:i + self.batch_size]
                enc = self.tok(batch, padding=True, truncation=True, max_length=self.max_len, return_tensors="pt")
                enc = {k: v.to(self.device) for k, v in enc.items()}
                o = self.model(**enc, output_hidden_states=True, return_dict=True)
                hs = o.hidden_states
                mask = enc["attention_mask"].unsqueeze(-1).to(hs[-1].dtype)
                if self.pooling == "cls_before_pooler":
                    z = hs[-1][:, 0]
                else:
                    h = {"avg": hs[-1], "avg_top2": (hs[-1] + hs[-2]) / 2.0,
                         "avg_first_last": (hs[1] + hs[-1]) / 2.0}[self.pooling]
                    z = (h * mask).sum(1) / mask.sum(1)
                for s, v in zip(batch, z.float().cpu().numpy()):
                    out[s] = v
        return out


def cosines(pairs, vec):
    a = np.nan_to_num(np.stack([np.asarray(vec[p[0]], dtype=np.float64) for p in pairs]))
    b = np.nan_to_num(np.stack([np.asarray(vec[p[1]], dtype=np.float64) for p in pairs]))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return np.nan_to_num(c)


def correlate(pairs, vec):
    c = cosines(pairs, vec)
    gold = np.array([p[2] for p in pairs], dtype=np.float64)
    return c, spearmanr(c, gold)[0] * 100.0, pearsonr(c, gold)[0] * 100.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="Hugging Face model directory (required unless only --dump-pairs)")
    ap.add_argument("--data-dir", required=True, help="data root holding SentEval/data/downstream")
    ap.add_argument("--pooling", default="avg", choices=POOLERS)
    ap.add_argument("--max-len", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    ap.add_argument("--rust-json")
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--json-out")
    ap.add_argument("--dump-embeddings")
    ap.add_argument("--dump-task", default="sickr_test", choices=TASKS)
    ap.add_argument("--write-fixture")
    ap.add_argument("--dump-pairs")
    args = ap.parse_args()

    root = downstream(args.data_dir)
    tasks = [t for t in TASKS if t in args.tasks]
    if args.dump_pairs:
        with open(args.dump_pairs, "w") as f:
            json.dump({t: load_task(root, t) for t in tasks}, f, ensure_ascii=False)
        print(f"wrote the pairs of {' '.join(tasks)} to {args.dump_pairs}")
        if not args.model:
            return
    if not args.model:
        ap.error("--model is required")
    if args.dump_embeddings and args.dump_task not in tasks:
        tasks.append(args.dump_task)
    if args.write_fixture and "stsb_dev" not in tasks:
        tasks.append("stsb_dev")
    enc = Encoder(args.model, args.pooling, args.max_len, args.batch_size, args.device)

    keep = set()
    if args.dump_embeddings:
        keep.add(args.dump_task)
    if args.write_fixture:
        keep.add("stsb_dev")
    scores, detail, vectors = {}, {}, {}
    for t in tasks:
        t0 = time.time()
        pairs = load_task(root, t)
        vec = enc([s for p in pairs for s in p[:2]])
        _, sp, pe = correlate(pairs, vec)
        scores[t] = float(sp)
        detail[t] = (len(pairs), len(vec), float(pe), time.time() - t0)
        if t in keep:
            vectors[t] = (pairs, vec)
    if all(t in scores for t in AVG_TASKS):
        scores["avg"] = sum(scores[t] for t in AVG_TASKS) / len(AVG_TASKS)

    print(f"model {args.model}  pooling {args.pooling}  max_len {args.max_len}")
    print(f"{'task':<11} {'pairs':>6} {'sents':>6} {'spearman':>9} {'pearson':>9} {'secs':>6}")
    for t in tasks:
        n, m, pe, secs = detail[t]
        print(f"{t:<11} {n:>6} {m:>6} {scores[t]:>9.4f} {pe:>9.4f} {secs:>6.1f}")
    if "avg" in scores:
        print(f"{'avg':<11} {'':>6} {'':>6} {scores['avg']:>9.4f}")

    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({k: scores[k] for k in TASKS + ["avg"] if k in scores}, f, indent=1)

    if args.dump_embeddings:
        pairs, vec = vectors[args.dump_task]
        n, _, pe, _ = detail[args.dump_task]
        dump = {
            "task": args.dump_task, "model": os.path.abspath(args.model), "pooling": args.pooling,
            "max_len": args.max_len, "pairs": n, "spearman": scores[args.dump_task], "pearson": pe,
            "embeddings": {s: [float(x) for x in v] for s, v in vec.items()},
        }
        with open(args.dump_embeddings, "w") as f:
            json.dump(dump, f, ensure_ascii=False)
        print(f"wrote {len(vec)} embeddings of {args.dump_task} to {args.dump_embeddings}")

    if args.write_fixture:
        pairs, vec = vectors["stsb_dev"]
        pairs = pairs[:200]
        dims, scale = 32, 10000
        ints = {}
        for p in pairs:
            for s in p[:2]:
                ints[s] = [int(round(float(x) * scale)) for x in vec[s][:dims]]
        small = {s: [x / scale for x in v] for s, v in ints.items()}
        c, sp, pe = correlate(pairs, small)
        fixture = {
            "about": "first 200 pairs of STS-B dev; embeddings: first 32 dims of "
                     f"{os.path.abspath(args.model)} ({args.pooling} pooling, max_len {args.max_len}), "
                     "stored as round(x * scale); cosines and correlations computed by scripts/parity_eval.py "
                     "(numpy float64, scipy) from x = int / scale",
            "scale": scale,
            "pairs": [[a, b, g] for a, b, g in pairs],
            "embeddings": ints,
            "cosines": [float(x) for x in c],
            "spearman": float(sp),
            "pearson": float(pe),
        }
        with open(args.write_fixture, "w") as f:
            json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        print(f"wrote fixture ({len(pairs)} pairs, {len(ints)} sentences) to {args.write_fixture}")

    if args.rust_json:
        with open(args.rust_json) as f:
            rust = json.load(f)
        if isinstance(rust.get("scores"), dict):  # `simsweep eval --json` nests them
            rust = rust["scores"]
        bad = 0
        print(f"\n{'task':<11} {'python':>9} {'simsweep':>9} {'delta':>8}")
        for k in [t for t in TASKS + ["avg"] if t in scores or t in rust]:
            p, r = scores.get(k), rust.get(k)
            if p is None or r is None or not math.isfinite(float(r)):
                ps = "-" if p is None else "%.4f" % p
                rs = "-" if r is None else str(r)
                print(f"{k:<11} {ps:>9} {rs:>9}  MISSING")
                bad += 1
                continue
            d = float(r) - p
            flag = "" if abs(d) <= args.tolerance else "  FAIL"
            bad += bool(flag)
            print(f"{k:<11} {p:>9.4f} {float(r):>9.4f} {d:>+8.4f}{flag}")
        if bad:
            print(f"parity: {bad} task(s) differ by more than {args.tolerance} or are missing")
            sys.exit(1)
        print(f"parity: all within {args.tolerance}")


if __name__ == "__main__":
    main()
