"""The reference training loop of `simsweep bench train`: unsupervised SimCSE as the SimCSE code runs
it (PyTorch eager mode, the `transformers` model class of the geometry's `model_type`: BertModel,
DistilBertModel, MPNetModel or ModernBertModel, without pooler; in-batch InfoNCE over two dropout views in one
forward pass, AdamW with linear decay and gradient clipping at 1.0 as HF Trainer does), on exactly
the token ids simsweep trains on (one example per line, in order, written by the benchmark).

Prints one JSON object: timed steps, seconds, sentences, tokens (non-padding, both views) and padded
tokens. Steps before `--warmup` are run but not timed; on CUDA the clock is read after a synchronise.
"""

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, help="config.json of the model geometry")
    ap.add_argument("--ids", required=True, help="token ids, one example per line")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True, help="steps in all, warm-up included")
    ap.add_argument("--warmup", type=int, required=True, help="untimed steps at the start")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--attn", default="sdpa", help="transformers attn_implementation (sdpa, eager)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    device = torch.device(a.device)
    with open(a.config) as f:
        settings = json.load(f)
    model_type = settings.pop("model_type", "bert")
    config = AutoConfig.for_model(model_type, **settings)
    # The encoders with a pooler layer leave it out, as SimCSE's average pooling does not use it.
    extra = {"add_pooling_layer": False} if model_type in ("bert", "roberta", "xlm-roberta", "mpnet") else {}
    try:
        model = AutoModel.from_config(config, attn_implementation=a.attn, **extra).to(device)
    except ValueError as e:
        # transformers' MPNet has no SDPA path: the eager attention is what its users run.
        if "attention implementation" not in str(e) or a.attn == "eager":
            raise
        model = AutoModel.from_config(config, attn_implementation="eager", **extra).to(device)
    model.train()
    with open(a.ids) as f:
        examples = [[int(t) for t in line.split()] for line in f if line.strip()]
    need = a.steps * a.batch
    if len(examples) < need:
        raise SystemExit(f"{a.ids}: {len(examples)} examples, {need} needed")

    # AdamW without weight decay (simsweep's default), linear decay to 0 at the last step.
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0, eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / a.steps))
    autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.precision)
    pad = config.pad_token_id or 0

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    t0 = None
    tokens = padded = 0
    for step in range(a.steps):
        if step == a.warmup:
            sync()
            t0 = time.perf_counter()
        batch = examples[step * a.batch : (step + 1) * a.batch]
        # SimCSE's unsupervised input: every sentence twice, example-major (batch, 2, len) → 2·batch rows;
        # padded to the longest in the batch, as its data collator does.
        width = max(len(e) for e in batch)
        ids = torch.full((2 * a.batch, width), pad, dtype=torch.long)
        for i, e in enumerate(batch):
            ids[2 * i, : len(e)] = torch.tensor(e)
            ids[2 * i + 1, : len(e)] = torch.tensor(e)
        mask = (ids != pad).long()
        ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
        if t0 is not None:
            tokens += int(2 * sum(len(e) for e in batch))
            padded += 2 * a.batch * width
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
        # Average pooling over the attention mask, in fp32 like the loss.
        m = mask.unsqueeze(-1).to(h.dtype)
        z = ((h * m).sum(1) / m.sum(1)).float().view(a.batch, 2, -1)
        z1, z2 = z[:, 0], z[:, 1]
        sim = F.cosine_similarity(z1.unsqueeze(1), z2.unsqueeze(0), dim=-1) / a.temperature
        loss = F.cross_entropy(sim, torch.arange(a.batch, device=device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    sync()
    secs = time.perf_counter() - t0
    if not math.isfinite(loss.item()):
        raise SystemExit("the reference loss is not finite")
    timed = a.steps - a.warmup
    print(
        json.dumps(
            {
                "steps": timed,
                "secs": secs,
                "sentences": timed * a.batch,
                "tokens": tokens,
                "padded_tokens": padded,
                "parameters": sum(p.numel() for p in model.parameters()),
                "torch": torch.__version__,
                "model_class": type(model).__name__,
                "attn": model.config._attn_implementation,
                "threads": torch.get_num_threads(),
                "loss": loss.item(),
            }
        )
    )


if __name__ == "__main__":
    main()
