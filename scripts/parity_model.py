#!/usr/bin/env python3
"""Independent reference for simsweep's model layer (transformers + PyTorch), three modes.

  --write-fixture --model DIR --out tests/fixtures/minilm_avg.json
      Embed a fixed list of sentences with transformers' AutoModel (eval mode) and write the token
      ids and the pooled vectors (SimCSE's poolers: avg = mask-weighted mean of the last layer,
      cls_before_pooler, avg_top2, avg_first_last with layer 1) as the Rust parity test's reference.

  --write-tiny-fixtures --out tests/fixtures
      Create two tiny seeded checkpoints the Rust tests load without Python:
        tiny-bert-bin/   BertForMaskedLM, torch.save'd pytorch_model.bin (bert. prefix, cls.* head,
                         tied weights, LayerNorm.gamma/beta names), vocab.txt only;
        tiny-roberta/    RobertaForMaskedLM, model.safetensors (roberta. prefix, lm_head.*),
                         byte-level BPE tokenizer.json + vocab.json + merges.txt;
        tiny-distilbert/ DistilBertForMaskedLM, torch.save'd pytorch_model.bin (distilbert. prefix,
                         vocab_* head), WordPiece tokenizer.json + vocab.txt;
        tiny-mpnet/      MPNetForMaskedLM, model.safetensors (mpnet. prefix, lm_head.*), a strong
                         relative position bias, WordPiece tokenizer with <s> … </s>;
        tiny-modernbert/ ModernBertForMaskedLM, model.safetensors (model. prefix, head.*,
                         decoder.*), global and sliding-window layers with two rotary bases,
                         biases on, byte-level BPE tokenizer.json with [CLS] … [SEP];
      each with expected.json (token ids and pooled vectors from transformers). The last three
      also carry SimCSE's MLP (mlp.dense.*), so their expected.json has the `cls` pooler too.
      (The first two were written before and are not rewritten unless --only names them.)

  --check-saved DIR --embeddings JSON [--check-saved DIR2 --embeddings JSON2 ...] [--tol 1e-4]
      Load a checkpoint directory that simsweep's save_pretrained wrote with AutoModel and
      AutoTokenizer, embed the sentences listed in JSON with the pooling it names, and compare the
      token ids and vectors with those simsweep computed (and, when sentence-transformers is
      installed, check that it loads the directory too). Prints max |Δ| per checkpoint; exits 1 if
      any exceeds --tol.

Run with the Python of scripts/pyref.sh (torch 2.11.0, transformers 4.57.1).
"""
import argparse
import json
import os
import sys

import torch

SENTENCES = [
    "A man is playing a guitar.",
    "A woman is slicing an onion.",
    "The quick brown fox jumps over the lazy dog!",
    "Two dogs run across a snowy field, chasing a red ball.",
    "Un homme joue de la guitare.",
    "Tokenization handles unbelievably long, hyphenated-words and numbers like 3.14159.",
    "",
    "Hello",
    "Café résumé naïve — accents and em-dashes.",
    "A very long sentence " + " ".join(["that keeps going"] * 40) + " until it must be truncated.",
]
MAX_LEN = 64
POOLINGS = ["avg", "cls_before_pooler", "avg_top2", "avg_first_last"]


def rounded(rows):
    """Vectors as lists, rounded to 7 decimals (|error| <= 5e-8, far below the tests' 1e-4)."""
    return [[round(x, 7) for x in row] for row in rows.tolist()]


def states(out):
    """The hidden states simsweep pools: transformers' hidden_states with the last one replaced by
    last_hidden_state (the same tensor except for ModernBERT, whose last_hidden_state is after its
    final norm)."""
    hs = list(out.hidden_states)
    hs[-1] = out.last_hidden_state
    return hs


def dropout_off(model_type):
    """The config keyword arguments that switch every dropout off, by architecture."""
    return {
        "distilbert": {"dropout": 0.0, "attention_dropout": 0.0},
        "modernbert": {"embedding_dropout": 0.0, "attention_dropout": 0.0, "mlp_dropout": 0.0},
    }.get(model_type, {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0})


def pool(hidden_states, mask, pooling, mlp=None):
    """SimCSE's Pooler (avg_first_last with hidden_states[1], the corrected definition); `cls` is
    SimCSE's MLP (dense + tanh) on the first token."""
    m = mask.unsqueeze(-1).to(hidden_states[-1].dtype)
    last = hidden_states[-1]
    if pooling == "cls_before_pooler":
        return last[:, 0]
    if pooling == "cls":
        return torch.tanh(mlp(last[:, 0]))
    if pooling == "avg":
        h = last
    elif pooling == "avg_top2":
        h = (last + hidden_states[-2]) / 2.0
    elif pooling == "avg_first_last":
        h = (hidden_states[1] + last) / 2.0
    else:
        raise SystemExit(f"pooling {pooling} has no reference here")
    return (h * m).sum(1) / m.sum(1)


def load_mlp(model_dir):
    """SimCSE's MLP (mlp.dense.*) as simsweep saved it beside the encoder."""
    from safetensors.torch import load_file

    sd = load_file(os.path.join(model_dir, "model.safetensors"))
    w = sd["mlp.dense.weight"]
    mlp = torch.nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        mlp.weight.copy_(w)
        mlp.bias.copy_(sd["mlp.dense.bias"])
    return mlp


def embed(model_dir, sentences, max_len, poolings):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    enc = tok(sentences, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    with torch.no_grad():
        out = model(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            output_hidden_states=True,
        )
    ids = [
        [int(t) for t, m in zip(row, mrow) if m]
        for row, mrow in zip(enc["input_ids"].tolist(), enc["attention_mask"].tolist())
    ]
    mlp = load_mlp(model_dir) if "cls" in poolings else None
    with torch.no_grad():
        pooled = {p: pool(states(out), enc["attention_mask"], p, mlp) for p in poolings}
    return ids, pooled


def write_fixture(model_dir, out):
    torch.manual_seed(0)
    ids, pooled = embed(model_dir, SENTENCES, MAX_LEN, POOLINGS)
    doc = {
        "about": "reference vectors from transformers AutoModel (eval) for tests/model_parity.rs; "
        "written by scripts/parity_model.py --write-fixture",
        "model": os.path.basename(os.path.normpath(model_dir)),
        "max_len": MAX_LEN,
        "sentences": SENTENCES,
        "input_ids": ids,
        "embeddings": {p: rounded(v) for p, v in pooled.items()},
    }
    with open(out, "w") as f:
        json.dump(doc, f)
    print(f"wrote {out}: {len(SENTENCES)} sentences, poolings {POOLINGS}")


TINY_WORDS = (
    "a man woman is playing guitar slicing an onion the quick brown fox jumps over lazy dog "
    "two dogs run across snowy field chasing red ball hello world play ##ing ##s ##ed . , ! ?"
).split()


def tiny_bert_bin(out):
    from transformers import BertConfig, BertForMaskedLM

    d = os.path.join(out, "tiny-bert-bin")
    os.makedirs(d, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TINY_WORDS
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
        pad_token_id=0,
        hidden_act="gelu",
    )
    torch.manual_seed(1)
    model = BertForMaskedLM(cfg).eval()
    # Make the biases and LayerNorm parameters non-trivial so that loading them matters.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("bias") or "LayerNorm" in n:
                p.add_(torch.randn_like(p) * 0.1)
    cfg.save_pretrained(d)
    # torch.save of the state dict (tied decoder weight shares the embeddings' storage); old-style
    # LayerNorm.gamma / beta names on the embeddings' LayerNorm, as TF-converted checkpoints have.
    sd = model.state_dict()
    renamed = type(sd)()
    for k, v in sd.items():
        if k.startswith("bert.embeddings.LayerNorm."):
            k = k.replace(".weight", ".gamma").replace(".bias", ".beta")
        renamed[k] = v
    renamed._metadata = getattr(sd, "_metadata", None)
    torch.save(renamed, os.path.join(d, "pytorch_model.bin"))
    sentences = ["hello world", "a man is playing guitar.", "the quick brown fox jumps over the lazy dogs!", "zebra"]
    expected(d, model.bert, sentences, 12, poolings=POOLINGS)


def tiny_roberta(out):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForMaskedLM, RobertaTokenizerFast

    d = os.path.join(out, "tiny-roberta")
    os.makedirs(d, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    corpus = SENTENCES[:6] * 3 + [" ".join(TINY_WORDS)]
    bpe.train_from_iterator(
        corpus, vocab_size=300, min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    bpe.save_model(d)  # vocab.json, merges.txt
    tok = RobertaTokenizerFast(
        vocab_file=os.path.join(d, "vocab.json"), merges_file=os.path.join(d, "merges.txt"),
        model_max_length=64,
    )
    tok.save_pretrained(d)
    cfg = RobertaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=32,
        max_position_embeddings=40,
        type_vocab_size=1,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        hidden_act="gelu_new",
    )
    torch.manual_seed(2)
    model = RobertaForMaskedLM(cfg).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("bias") or "LayerNorm" in n:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(d, safe_serialization=True)
    sentences = ["A man is playing a guitar.", "Two dogs run.", "The quick brown fox jumps over the lazy dog!"]
    expected(d, model.roberta, sentences, 16, poolings=POOLINGS)


def simcse_mlp(hidden, seed):
    """SimCSE's MLP (dense H -> H) with seeded non-trivial weights, stored as mlp.dense.*."""
    torch.manual_seed(seed)
    mlp = torch.nn.Linear(hidden, hidden)
    with torch.no_grad():
        mlp.weight.mul_(3.0)
        mlp.bias.normal_(0.0, 0.2)
    return mlp.eval()


def jitter(model, scale=0.1):
    """Make biases and norm parameters non-trivial, so that loading them matters."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("bias") or "norm" in n.lower():
                p.add_(torch.randn_like(p) * scale)


def add_mlp_safetensors(d, mlp):
    from safetensors.torch import load_file, save_file

    path = os.path.join(d, "model.safetensors")
    sd = load_file(path)
    sd["mlp.dense.weight"] = mlp.weight.detach().clone().contiguous()
    sd["mlp.dense.bias"] = mlp.bias.detach().clone().contiguous()
    save_file(sd, path, metadata={"format": "pt"})


ALL_POOLINGS = POOLINGS + ["cls"]
WP_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TINY_WORDS


def tiny_distilbert(out):
    from transformers import DistilBertConfig, DistilBertForMaskedLM, DistilBertTokenizerFast

    d = os.path.join(out, "tiny-distilbert")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(WP_VOCAB) + "\n")
    tok = DistilBertTokenizerFast(vocab_file=os.path.join(d, "vocab.txt"), model_max_length=40)
    tok.save_pretrained(d)
    cfg = DistilBertConfig(
        vocab_size=len(WP_VOCAB), dim=16, n_layers=3, n_heads=2, hidden_dim=40,
        max_position_embeddings=40, pad_token_id=0, activation="gelu",
    )
    torch.manual_seed(3)
    model = DistilBertForMaskedLM(cfg).eval()
    jitter(model)
    cfg.save_pretrained(d)
    mlp = simcse_mlp(16, 31)
    sd = model.state_dict()
    sd["mlp.dense.weight"] = mlp.weight.detach().clone()
    sd["mlp.dense.bias"] = mlp.bias.detach().clone()
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    sentences = ["hello world", "a man is playing guitar.", "the quick brown fox jumps over the lazy dogs!", "zebra"]
    expected(d, model.distilbert, sentences, 12, ALL_POOLINGS, mlp)


def tiny_mpnet(out):
    from transformers import MPNetConfig, MPNetForMaskedLM, MPNetTokenizerFast

    d = os.path.join(out, "tiny-mpnet")
    os.makedirs(d, exist_ok=True)
    vocab = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]"] + TINY_WORDS + ["<mask>"]
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    tok = MPNetTokenizerFast(vocab_file=os.path.join(d, "vocab.txt"), model_max_length=38)
    tok.save_pretrained(d)
    cfg = MPNetConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=32, max_position_embeddings=40, pad_token_id=1, bos_token_id=0,
        eos_token_id=2, hidden_act="gelu", relative_attention_num_buckets=32,
    )
    torch.manual_seed(4)
    model = MPNetForMaskedLM(cfg).eval()
    jitter(model)
    with torch.no_grad():
        # A relative position bias large enough to move the attention.
        model.mpnet.encoder.relative_attention_bias.weight.normal_(0.0, 1.0)
    model.save_pretrained(d, safe_serialization=True)
    mlp = simcse_mlp(16, 41)
    add_mlp_safetensors(d, mlp)
    long = " ".join(TINY_WORDS[:30])
    sentences = ["hello world", "a man is playing guitar.", long, "two dogs run across a snowy field chasing a red ball"]
    expected(d, model.mpnet, sentences, 36, ALL_POOLINGS, mlp)


def tiny_modernbert(out):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import ModernBertConfig, ModernBertForMaskedLM, PreTrainedTokenizerFast

    d = os.path.join(out, "tiny-modernbert")
    os.makedirs(d, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, min_frequency=1, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(SENTENCES[:6] * 3 + [" ".join(TINY_WORDS)], trainer)
    cls, sep = bpe.token_to_id("[CLS]"), bpe.token_to_id("[SEP]")
    bpe.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
        unk_token="[UNK]", mask_token="[MASK]", model_max_length=64,
    )
    tok.save_pretrained(d)
    cfg = ModernBertConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=24, num_hidden_layers=4,
        num_attention_heads=4, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
        bos_token_id=cls, cls_token_id=cls, eos_token_id=sep, sep_token_id=sep,
        global_attn_every_n_layers=3, local_attention=6, global_rope_theta=160000.0,
        local_rope_theta=10000.0, norm_bias=True, attention_bias=True, mlp_bias=True,
        hidden_activation="gelu", reference_compile=False,
    )
    torch.manual_seed(5)
    model = ModernBertForMaskedLM(cfg, ).eval()
    jitter(model)
    model.save_pretrained(d, safe_serialization=True)
    mlp = simcse_mlp(32, 51)
    add_mlp_safetensors(d, mlp)
    sentences = ["A man is playing a guitar.", "Two dogs run.", "The quick brown fox jumps over the lazy dog!",
                 "Tokenization handles unbelievably long, hyphenated-words and numbers like 3.14159."]
    expected(d, model.model, sentences, 24, ALL_POOLINGS, mlp)


def expected(d, encoder, sentences, max_len, poolings, mlp=None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(d)
    enc = tok(sentences, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    with torch.no_grad():
        out = encoder(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True
        )
    ids = [
        [int(t) for t, m in zip(row, mrow) if m]
        for row, mrow in zip(enc["input_ids"].tolist(), enc["attention_mask"].tolist())
    ]
    doc = {
        "about": "written by scripts/parity_model.py --write-tiny-fixtures (transformers reference)",
        "max_len": max_len,
        "sentences": sentences,
        "input_ids": ids,
        "embeddings": {p: rounded(pool(states(out), enc["attention_mask"], p, mlp)) for p in poolings},
    }
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(doc, f)
    print(f"wrote {d}")


def check_saved(model_dir, emb_path, tol):
    with open(emb_path) as f:
        doc = json.load(f)
    pooling = doc["pooling"]
    ids, pooled = embed(model_dir, doc["sentences"], doc["max_len"], [pooling])
    ok = True
    if ids != doc["input_ids"]:
        bad = [i for i, (a, b) in enumerate(zip(ids, doc["input_ids"])) if a != b]
        print(f"{model_dir}: token ids differ for sentences {bad}")
        ok = False
    ref = pooled[pooling]
    ours = torch.tensor(doc["embeddings"])
    if ref.shape != ours.shape:
        print(f"{model_dir}: shapes differ: transformers {tuple(ref.shape)}, simsweep {tuple(ours.shape)}")
        return 1
    delta = (ref - ours).abs().max().item()
    print(f"{model_dir}: pooling {pooling}, {len(doc['sentences'])} sentences, max |delta| = {delta:.3e} (tol {tol:g})")
    if delta > tol:
        ok = False
    if "train_grads" in doc:
        ok = check_gradients(model_dir, doc, tol) and ok
    # sentence-transformers, when installed, must load the directory as is (mean pooling).
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        pass
    else:
        st = SentenceTransformer(model_dir, device="cpu")
        st.max_seq_length = doc["max_len"]
        v = torch.tensor(st.encode(doc["sentences"]))
        print(f"{model_dir}: sentence-transformers loaded it, embeddings {tuple(v.shape)}")
        if pooling == "avg":
            d2 = (v - ours).abs().max().item()
            print(f"{model_dir}: sentence-transformers mean pooling max |delta| = {d2:.3e}")
            ok = ok and d2 <= tol
    return 0 if ok else 1


def check_gradients(model_dir, doc, tol):
    """One training-mode step with dropout off, as simsweep's test computed it: every sentence as
    two views, pooled, cosine similarities / 0.05, cross-entropy against the diagonal; compare the
    loss and every encoder gradient with simsweep's (relative to the largest gradient entry)."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    with open(os.path.join(model_dir, "config.json")) as f:
        model_type = json.load(f).get("model_type", "bert")
    model = AutoModel.from_pretrained(model_dir, **dropout_off(model_type))
    model.train()
    enc = tok(doc["sentences"], padding=True, truncation=True, max_length=doc["max_len"], return_tensors="pt")
    ids = enc["input_ids"].repeat_interleave(2, 0)
    mask = enc["attention_mask"].repeat_interleave(2, 0)
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    mlp = load_mlp(model_dir) if doc["pooling"] == "cls" else None
    z = pool(states(out), mask, doc["pooling"], mlp).view(len(doc["sentences"]), 2, -1)
    sim = torch.nn.functional.cosine_similarity(z[:, 0].unsqueeze(1), z[:, 1].unsqueeze(0), dim=-1) / 0.05
    loss = torch.nn.functional.cross_entropy(sim, torch.arange(len(doc["sentences"])))
    loss.backward()
    ours = load_file(doc["train_grads"])
    dl = abs(loss.item() - doc["train_loss"])
    print(f"{model_dir}: training loss {loss.item():.6f}, simsweep {doc['train_loss']:.6f}, |delta| = {dl:.3e}")
    ok = dl <= tol
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()
             if not n.startswith("pooler.")}
    # Each gradient is compared relative to its own largest entry, floored at 1e-3 of the largest
    # entry of any: the key biases' gradients are exactly zero in exact arithmetic (softmax does
    # not see a constant added to every score of a row) and only rounding noise in both.
    top = max(g.abs().max().item() for g in grads.values())
    worst, worst_name, compared = 0.0, None, 0
    for name, g in grads.items():
        if name not in ours:
            if g.abs().max().item() > 0:
                print(f"{model_dir}: simsweep has no gradient for {name}")
                ok = False
            continue
        scale = max(g.abs().max().item(), 1e-3 * top)
        rel = (g - ours[name]).abs().max().item() / scale
        compared += 1
        if rel > worst:
            worst, worst_name = rel, name
    print(f"{model_dir}: {compared} encoder gradients, max |delta| / max |grad| = {worst:.3e} ({worst_name}; tol {tol:g})")
    return ok and compared > 0 and worst <= tol


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write-fixture", action="store_true")
    mode.add_argument("--write-tiny-fixtures", action="store_true")
    mode.add_argument("--check-saved", metavar="DIR", action="append")
    ap.add_argument("--model", help="model directory (--write-fixture)")
    ap.add_argument("--out", help="output file (--write-fixture) or folder (--write-tiny-fixtures)")
    ap.add_argument("--embeddings", action="append", help="simsweep's embeddings JSON, one per --check-saved")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--only", action="append", help="--write-tiny-fixtures: write only this fixture (repeatable)")
    a = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    if a.write_fixture:
        if not a.model or not a.out:
            ap.error("--write-fixture needs --model and --out")
        write_fixture(a.model, a.out)
    elif a.write_tiny_fixtures:
        if not a.out:
            ap.error("--write-tiny-fixtures needs --out")
        writers = {
            "tiny-bert-bin": tiny_bert_bin, "tiny-roberta": tiny_roberta, "tiny-distilbert": tiny_distilbert,
            "tiny-mpnet": tiny_mpnet, "tiny-modernbert": tiny_modernbert,
        }
        for name in a.only or list(writers):
            writers[name](a.out)
    else:
        if not a.embeddings or len(a.embeddings) != len(a.check_saved):
            ap.error("each --check-saved needs its --embeddings")
        failed = [check_saved(d, e, a.tol) for d, e in zip(a.check_saved, a.embeddings)]
        sys.exit(1 if any(failed) else 0)


if __name__ == "__main__":
    main()
