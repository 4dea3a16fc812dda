#!/usr/bin/env python3
"""Independent PyTorch (float64) implementation of simsweep's losses, writing the parity fixtures
`tests/fixtures/losses.json`: for small fixed batches, each loss variant's value and its gradient
with respect to the raw (unnormalised) embeddings z1, z2.

Semantics follow the shared metrics.md and the reference code BDBC-KG-NLP/UnderstandingCSE
(isotropy/models.py): detach points, symmetric terms, surrogate-gradient forms of the modified
non-contrastive losses. Run: `$(bash scripts/pyref.sh) scripts/loss_fixtures.py`.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
B, H = 6, 8


def offdiag(b):
    return 1.0 - torch.eye(b)


# ---- contrastive -------------------------------------------------------------------------------
def ce_loss(u, v, w, tau, hnw=0.0, angle=None):
    s = u @ v.T
    if angle is not None:
        d = torch.diagonal(s).clamp(-1 + 1e-6, 1 - 1e-6)
        s = s - torch.diag(torch.diagonal(s)) + torch.diag(torch.cos(torch.arccos(d) + angle))
    logits = s / tau
    if w is not None:
        logits = torch.cat([logits, u @ w.T / tau + hnw * torch.eye(u.shape[0])], dim=1)
    return F.cross_entropy(logits, torch.arange(u.shape[0]))


def margin_loss(u, v, kind, m):
    s = u @ v.T
    b = s.shape[0]
    big = 1e8 * torch.eye(b)
    if kind == "mpt":
        h = (s - big).max(dim=1).values - torch.diagonal(s) + m
    elif kind == "met":
        d = torch.sqrt(torch.clamp(2 - 2 * s, min=1e-4))
        h = torch.diagonal(d) - (d + big).min(dim=1).values + m
    else:
        a = torch.arccos(s.clamp(-1 + 1e-6, 1 - 1e-6))
        h = torch.diagonal(a) - (a + big).min(dim=1).values + m * math.pi
    return F.relu(h).mean()


# ---- non-contrastive (surrogate forms) ---------------------------------------------------------
def keep_rows(x, margin):
    """gd modifier: rows whose nearest same-view neighbour is not within the margin get no gradient."""
    g = x.detach() @ x.detach().T
    nearest = (g - 1e8 * torch.eye(g.shape[0])).max(dim=1).values
    keep = (torch.diagonal(g) - nearest) < margin
    k = keep.to(x.dtype)[:, None]
    return x * k + x.detach() * (1 - k)


def pair_weights(x, tau):
    """Barlow Twins / VICReg weights from the (detached) rows of x."""
    n = x.shape[0]
    g = x.detach() @ x.detach().T
    if tau is None:
        return g * 2.0 / (n * n)
    e = torch.exp(g / tau)
    return e / (e * offdiag(n)).sum()


def bt_or_vicreg(a, b, bt, lam, tau, ratio):
    n = a.shape[0]
    w = pair_weights(b if bt else a, tau)
    neg = (w * (a @ a.detach().T)).sum(dim=1)
    if ratio is not None:
        pos = -lam * ratio * (w * offdiag(n)).sum(dim=1) * (a * b).sum(dim=1)
    elif bt:
        corr = torch.diagonal(a.detach().T @ b.detach()) / n
        coef = (1 - (1 - lam) * corr) * 2.0 / n
        pos = -(a * b.detach() * coef).sum(dim=1)
    else:
        pos = -(a * b.detach()).sum(dim=1) * 2.0 / n
    return (pos + lam * neg).sum()


def mhe_terms(x, tau):
    n = x.shape[0]
    t = 1.0 if tau is None else tau
    g = x @ x.T / t
    lower = torch.tril(torch.ones(n, n, dtype=torch.bool), diagonal=-1)
    uni = torch.logsumexp(g[lower], dim=0)
    if tau is None:
        wt = torch.full((n,), 1.0 / n)
    else:
        wt = torch.exp(torch.logsumexp(g.detach() - 1e8 * torch.eye(n), dim=1) - uni.detach()) / t
    return uni, wt


def mhs_nearest(x, y):
    n = x.shape[0]
    d = torch.sqrt(((x[:, None, :] - y.detach()[None, :, :]) ** 2).sum(-1) + 1e-4)
    return (d + 1e8 * torch.eye(n)).min(dim=1).values


def non_contrastive(u, v, kind, gd=None, tau=None, ratio=None, lam=1.0):
    if gd is not None:
        u, v = keep_rows(u, gd), keep_rows(v, gd)
    r = 1.0 if ratio is None else ratio
    align = 2 - 2 * (u * v).sum(dim=1)
    if kind in ("barlow_twins", "vicreg"):
        bt = kind == "barlow_twins"
        return bt_or_vicreg(u, v, bt, lam, tau, ratio) + bt_or_vicreg(v, u, bt, lam, tau, ratio)
    if kind == "mhe":
        uu, wu = mhe_terms(u, tau)
        uv, wv = mhe_terms(v, tau)
        return lam * (uu + uv) + (align * wu * r / 2).sum() + (align * wv * r / 2).sum()
    du, dv = mhs_nearest(u, v), mhs_nearest(v, u)
    if ratio is None:
        pu = pv = align / 2
    else:
        pu, pv = align * r / (2 * du.detach()), align * r / (2 * dv.detach())
    return lam * (-du.mean() - dv.mean()) + pu.mean() + pv.mean()


def evaluate(case, z1, z2, z3):
    z1 = z1.clone().requires_grad_(True)
    z2 = z2.clone().requires_grad_(True)
    u, v = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    k = case["loss"]["kind"]
    L = case["loss"]
    if k in ("infonce", "arccon"):
        w = F.normalize(z3, dim=1) if case.get("hard_negatives") else None
        angle = L.get("angle", 10 / 180 * math.pi) if k == "arccon" else None
        loss = ce_loss(u, v, w, case["temperature"], case.get("hard_negative_weight", 0.0), angle)
    elif k in ("mpt", "met", "mat"):
        loss = margin_loss(u, v, k, L["margin"])
    else:
        loss = non_contrastive(
            u, v, k,
            gd=L.get("margin") if L.get("gd") else None,
            tau=L.get("temperature") if L.get("weight") else None,
            ratio=L.get("ratio_scale") if L.get("ratio") else None,
            lam=L.get("lambda", 1.0),
        )
    loss.backward()
    return loss.item(), z1.grad, z2.grad


def cases():
    u10 = 10 / 180 * math.pi
    out = [
        {"loss": {"kind": "infonce"}, "temperature": 0.05},
        {"loss": {"kind": "infonce"}, "temperature": 0.1, "hard_negatives": True, "hard_negative_weight": 0.5},
        {"loss": {"kind": "arccon", "angle": u10}, "temperature": 0.05},
        {"loss": {"kind": "arccon", "angle": 0.3}, "temperature": 0.1, "hard_negatives": True},
        {"loss": {"kind": "mpt", "margin": 0.23}},
        {"loss": {"kind": "mpt", "margin": 0.6}},
        {"loss": {"kind": "met", "margin": 0.45}},
        {"loss": {"kind": "met", "margin": 0.15}},
        {"loss": {"kind": "mat", "margin": 0.15}},
        {"loss": {"kind": "mat", "margin": 0.05}},
    ]
    for kind in ("barlow_twins", "vicreg", "mhe", "mhs"):
        rs = 1.75 if kind in ("mhe", "mhs") else 1.5
        mods = [{}, {"gd": True, "margin": 0.12}, {"ratio": True, "ratio_scale": rs}]
        if kind != "mhs":
            mods.append({"weight": True, "temperature": 0.05})
            mods.append({"gd": True, "margin": 0.13, "weight": True, "temperature": 0.05,
                         "ratio": True, "ratio_scale": rs, "lambda": 1.0})
        else:
            mods.append({"gd": True, "margin": 0.13, "ratio": True, "ratio_scale": rs})
        mods.append({"lambda": {"barlow_twins": 30.0, "vicreg": 30.0, "mhe": 10.0, "mhs": 2.0}[kind]})
        for m in mods:
            out.append({"loss": {"kind": kind, **m}})
    for c in out:
        c.setdefault("temperature", 0.05)
        c["name"] = c["loss"]["kind"] + "".join(
            f"_{k}={v}" for k, v in c["loss"].items() if k != "kind"
        ) + (f"_tau={c['temperature']}" if c["loss"]["kind"] in ("infonce", "arccon") else "") + (
            "_hn" if c.get("hard_negatives") else "")
    return out


def batch():
    g = torch.Generator().manual_seed(7)
    # Three clusters of two sentences, so that some same-view neighbours fall inside the gd margin.
    centres = torch.randn(3, H, generator=g)
    z1 = centres.repeat_interleave(2, dim=0) + 0.45 * torch.randn(B, H, generator=g)
    z1 = z1 * (0.5 + torch.rand(B, 1, generator=g) * 2)
    z2 = z1 + 0.5 * torch.randn(B, H, generator=g)
    z3 = torch.randn(B, H, generator=g)
    r = lambda t: torch.round(t * 1e4) / 1e4  # noqa: E731  values exactly as written to the JSON
    return r(z1), r(z2), r(z3)


def main():
    z1, z2, z3 = batch()
    out = {"B": B, "H": H, "z1": z1.tolist(), "z2": z2.tolist(), "z3": z3.tolist(), "cases": []}
    rnd = lambda t: [[float(f"{x:.9g}") for x in row] for row in t.tolist()]  # noqa: E731
    for c in cases():
        loss, g1, g2 = evaluate(c, z1, z2, z3)
        out["cases"].append({**c, "value": float(f"{loss:.12g}"), "grad_z1": rnd(g1), "grad_z2": rnd(g2)})
    # Report how close the discrete decisions (gd masks) are to their thresholds.
    u, v = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    for name, x in (("view1", u), ("view2", v)):
        g = x @ x.T
        gap = torch.diagonal(g) - (g - 1e8 * torch.eye(B)).max(dim=1).values
        print(name, "1 - nearest cos:", [round(t, 4) for t in gap.tolist()])
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "losses.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {len(out['cases'])} cases to {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
