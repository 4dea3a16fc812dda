#!/usr/bin/env python3
"""Independent reference for simsweep's probe metrics (docs: ../shared/docs/metrics.md, "Probe metrics").

Written from the definitions, not from the Rust code: transformers' BertModel in float32 (eval mode)
for the hidden states, everything after that in float64 numpy, pairwise quantities computed as
explicit pair sums (blocked Gram matrices) rather than through the closed forms simsweep uses.

    $(bash scripts/pyref.sh) scripts/probe_reference.py --model "$(bash scripts/minilm.sh)" \
        --data-dir ../shared/data --out tests/fixtures/probe_minilm.json

Default probe set: the first 1000 sentence1 of STS-B dev (file order, whitespace normalised as SentEval
hands sentences to the model), max_len 32 tokens including [CLS]/[SEP], last layer, avg pooling.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from scipy.special import logsumexp
from transformers import AutoModel, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))


def read_stsb_dev(data_dir):
    path = os.path.join(data_dir, "SentEval", "data", "downstream", "STS", "STSBenchmark", "sts-dev.csv")
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            cols = line.strip().split("\t")
            rows.append((" ".join(cols[5].split()), " ".join(cols[6].split()), float(cols[4])))
    return rows


def encode(model, tok, sentences, max_len, batch=64):
    """Per sentence: token strings, special flags, and float64 hidden states of every layer [L+1, n, H]."""
    out = []
    for i in range(0, len(sentences), batch):
        enc = tok(sentences[i:i + batch], padding=True, truncation=True, max_length=max_len,
                  return_tensors="pt", return_special_tokens_mask=True)
        special = enc.pop("special_tokens_mask")
        with torch.no_grad():
            hs = model(**enc, output_hidden_states=True).hidden_states
        hs = torch.stack(hs, 0).double().numpy()  # [L+1, B, T, H]
        for b in range(enc["input_ids"].shape[0]):
            n = int(enc["attention_mask"][b].sum())
            ids = enc["input_ids"][b, :n].tolist()
            out.append({
                "tokens": tok.convert_ids_to_tokens(ids),
                "special": [bool(s) for s in special[b, :n].tolist()],
                "h": hs[:, b, :n, :],
            })
    return out


def normalise(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def token_metrics(sents, layer, stopwords):
    X = np.concatenate([s["h"][layer] for s in sents], 0)
    owner = np.concatenate([np.full(len(s["tokens"]), k) for k, s in enumerate(sents)])
    U = normalise(X)
    # Mean cosine over token pairs from different sentences, as an explicit blocked pair sum.
    total, pairs = 0.0, 0
    for a in range(0, len(U), 2048):
        G = U[a:a + 2048] @ U.T
        diff = owner[a:a + 2048, None] != owner[None, :]
        total += G[diff].sum()
        pairs += int(diff.sum())
    aniso = total / pairs
    # Intra-sentence similarity.
    intra = []
    for s in sents:
        h = s["h"][layer]
        m = h.mean(0)
        intra.append(np.mean([np.dot(v, m) / (np.linalg.norm(v) * np.linalg.norm(m)) for v in h]))
    intra = float(np.mean(intra))
    # Self-similarity: first occurrence per sentence of each non-special WordPiece type.
    occ = {}
    for s in sents:
        seen = set()
        for j, (t, sp) in enumerate(zip(s["tokens"], s["special"])):
            if sp or t in seen:
                continue
            seen.add(t)
            occ.setdefault(t, []).append(s["h"][layer][j])
    per_type = {}
    for t, vs in occ.items():
        if len(vs) < 5:
            continue
        V = normalise(np.stack(vs))
        G = V @ V.T
        m = len(vs)
        per_type[t] = (G.sum() - np.trace(G)) / (m * (m - 1))
    fn = [v for t, v in per_type.items() if t.lower() in stopwords]
    ct = [v for t, v in per_type.items() if t.lower() not in stopwords]
    selfsim = float(np.mean(list(per_type.values())))
    out = {
        "token_anisotropy": aniso,
        "intra_sentence_similarity": intra,
        "intra_sentence_similarity_adjusted": intra - aniso,
        "self_similarity": selfsim,
        "self_similarity_adjusted": selfsim - aniso,
        "self_similarity_function": float(np.mean(fn)),
        "self_similarity_function_adjusted": float(np.mean(fn)) - aniso,
        "self_similarity_content": float(np.mean(ct)),
        "self_similarity_content_adjusted": float(np.mean(ct)) - aniso,
        "mean_token_norm": float(np.linalg.norm(X, axis=1).mean()),
    }
    return out, len(per_type)


def avg_pool(s, layer):
    return s["h"][layer].mean(0)


def sentence_metrics(Z):
    N = len(Z)
    Zh = normalise(Z)
    G = Zh @ Zh.T
    off = ~np.eye(N, dtype=bool)
    out = {"sentence_anisotropy": float(G[off].mean())}
    iu = np.triu_indices(N, 1)
    d2 = ((Zh[:, None, :] - Zh[None, :, :]) ** 2).sum(-1)[iu]
    out["uniformity"] = float(logsumexp(-2.0 * d2) - np.log(len(d2)))
    out["mean_sentence_norm"] = float(np.linalg.norm(Z, axis=1).mean())
    out["centroid_norm"] = float(np.linalg.norm(Z.mean(0)))
    sv = np.linalg.svd(Z - Z.mean(0), compute_uv=False)
    p = sv / sv.sum()
    p = p[p > 0]
    out["effective_rank"] = float(np.exp(-(p * np.log(p)).sum()))
    _, vecs = np.linalg.eigh(Z.T @ Z)
    logZ = []
    for k in range(vecs.shape[1]):
        c = vecs[:, k]
        logZ.append(logsumexp(Z @ c))
        logZ.append(logsumexp(-(Z @ c)))
    out["isotropy_partition"] = float(np.exp(min(logZ) - max(logZ)))
    total = G[off].sum()
    shares = []
    for d in range(Z.shape[1]):
        outer = np.outer(Zh[:, d], Zh[:, d])
        shares.append((outer.sum() - np.trace(outer)) / total)
    out["rogue_top1_share"] = float(max(shares))
    for i, v in enumerate(sv[:64] / sv[0]):
        out[f"sv_{i + 1:02d}"] = float(v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--max-len", type=int, default=32)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    stop_path = os.path.join(HERE, "..", "src", "probe", "stopwords-en.txt")
    stopwords = {l.strip() for l in open(stop_path, encoding="utf-8") if l.strip()}
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModel.from_pretrained(args.model, dtype=torch.float32).eval()
    L = model.config.num_hidden_layers
    dev = read_stsb_dev(args.data_dir)
    probe = [a for a, _, _ in dev[:args.size]]
    sents = encode(model, tok, probe, args.max_len)
    metrics, n_types = token_metrics(sents, L, stopwords)
    Z = np.stack([avg_pool(s, L) for s in sents])
    pairs = [(a, b) for a, b, g in dev if g > 4.0]
    A = encode(model, tok, [a for a, _ in pairs], args.max_len)
    B = encode(model, tok, [b for _, b in pairs], args.max_len)
    za = normalise(np.stack([avg_pool(s, L) for s in A]))
    zb = normalise(np.stack([avg_pool(s, L) for s in B]))
    metrics["alignment"] = float(np.mean(np.sum((za - zb) ** 2, axis=1)))
    metrics.update(sentence_metrics(Z))
    result = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "sentences": "stsb-dev",
        "size": len(probe),
        "max_len": args.max_len,
        "pooling": "avg",
        "layer": L,
        "self_similarity_types": n_types,
        "alignment_pairs": len(pairs),
        "torch": torch.__version__,
        "metrics": {k: float(v) for k, v in metrics.items()},
    }
    text = json.dumps(result, indent=1, sort_keys=False) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
