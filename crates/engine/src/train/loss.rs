//! Training objectives as functions of the views' sentence embeddings, plus the step metrics that
//! every objective reports (computed on the device; nothing here synchronises with the host).
//!
//! The losses follow Li, Zhang & Nie (2024) and the reference code BDBC-KG-NLP/UnderstandingCSE
//! (`isotropy/models.py`): the same detach points, symmetric terms and surrogate-gradient forms of
//! the modified non-contrastive losses; the definitions in the shared `metrics.md` are normative.
//!
//! Every loss also exposes its per-anchor gradient components ([`Components`]): the gradient of the
//! loss with respect to the normalised view-1 embedding ẑ1_i is (up to a component along ẑ1_i, which
//! the normalisation removes) `scale_i · GD_i · Σ_j W_ij (neg_j − R_i · pos_i)`.

use crate::spec::config::{LossConfig, RunConfig};
use anyhow::{bail, Result};
use tch::{Kind, Tensor};

/// The pooled embeddings of one batch: view 1 and view 2 of each sentence (`[B, H]` each) and, with
/// supervised data, the hard negatives.
pub struct Views<'a> {
    pub z1: &'a Tensor,
    pub z2: &'a Tensor,
    pub z3: Option<&'a Tensor>,
}

/// A loss value (with its graph) and named scalar metrics (detached, on the device).
pub struct LossOutput {
    pub loss: Tensor,
    pub metrics: Vec<(&'static str, Tensor)>,
}

/// A training objective.
pub trait Loss: Send {
    /// The loss and every step metric.
    fn forward(&self, views: &Views<'_>) -> LossOutput {
        self.forward_with(views, true)
    }
    /// The loss, and the step metrics only when `metrics` is set (the gradient components behind
    /// them are then not computed at all).
    fn forward_with(&self, views: &Views<'_>, metrics: bool) -> LossOutput;
    /// The per-anchor gradient components of the loss on this batch (detached).
    fn components(&self, views: &Views<'_>) -> Components;
}

/// Per-anchor gradient components for the view-1 anchors of a batch of `B`, with `M` candidate
/// negatives: `∂L/∂ẑ1_i ≡ scale_i · gd_i · Σ_j w_ij (negatives_j − r_i · positives_i)` modulo the
/// direction of ẑ1_i itself (which the row normalisation projects out).
pub struct Components {
    /// `[B]` gradient-dissipation factor GD_i (InfoNCE/ArcCon `1 − P_ii`; margin losses and the
    /// gd-masked non-contrastive losses: 1 if the anchor receives gradient, else 0; otherwise 1).
    pub gd: Tensor,
    /// `[B, M]` weights over the negatives, rows summing to 1, zero at the anchor's own positive.
    pub w: Tensor,
    /// `[B]` ratio R_i of the pull towards the positive to the push from the negatives.
    pub r: Tensor,
    /// `[B]` the remaining positive factor (1/(Bτ) for InfoNCE/ArcCon, …).
    pub scale: Tensor,
    /// `[M, H]` the normalised vectors the anchors are pushed from.
    pub negatives: Tensor,
    /// `[B, H]` the normalised positives the anchors are pulled to (ẑ2).
    pub positives: Tensor,
}

impl Components {
    /// The gradient rebuilt from the components, w.r.t. the normalised view-1 embeddings (`[B, H]`).
    pub fn rebuild(&self) -> Tensor {
        let push = self.w.matmul(&self.negatives);
        let pull = &self.positives * self.r.unsqueeze(1);
        (push - pull) * (&self.gd * &self.scale).unsqueeze(1)
    }

    /// The logged means: `gd_mean`, `w_entropy`, `w_max`, `ratio_mean`.
    pub fn metrics(&self) -> Vec<(&'static str, Tensor)> {
        tch::no_grad(|| {
            let w = &self.w;
            let ent = -(w * w.clamp_min(1e-30).log()).sum_dim_intlist(1, false, Kind::Float);
            vec![
                ("gd_mean", self.gd.mean(Kind::Float).detach()),
                ("w_entropy", ent.mean(Kind::Float).detach()),
                ("w_max", w.amax([1], false).mean(Kind::Float).detach()),
                ("ratio_mean", self.r.mean(Kind::Float).detach()),
            ]
        })
    }
}

/// The objective a run's config names.
pub fn build(cfg: &RunConfig) -> Result<Box<dyn Loss>> {
    build_loss(
        &cfg.loss,
        cfg.train.temperature,
        cfg.train.hard_negative_weight,
    )
}

/// The objective for a `loss.*` section; `temperature` and `hard_negative_weight` are the
/// `train.*` settings (InfoNCE and ArcCon).
pub fn build_loss(
    l: &LossConfig,
    temperature: f64,
    hard_negative_weight: f64,
) -> Result<Box<dyn Loss>> {
    let on = |b: Option<bool>| b.unwrap_or(false);
    // Defaults come from the sweep-file schema, where they are documented.
    let default = |key: &str| {
        crate::spec::schema::loss_default(&l.kind, key)
            .ok_or_else(|| anyhow::anyhow!("loss `{}` has no default for {key}", l.kind))
    };
    Ok(match l.kind.as_str() {
        "infonce" => Box::new(InfoNce {
            temperature,
            hard_negative_weight,
        }),
        "arccon" => Box::new(ArcCon {
            temperature,
            hard_negative_weight,
            angle: match l.angle {
                Some(a) => a,
                None => default("loss.angle")?,
            },
        }),
        "mpt" => Box::new(Margin {
            kind: MarginKind::Mpt,
            margin: match l.margin {
                Some(m) => m,
                None => default("loss.margin")?,
            },
        }),
        "met" => Box::new(Margin {
            kind: MarginKind::Met,
            margin: match l.margin {
                Some(m) => m,
                None => default("loss.margin")?,
            },
        }),
        "mat" => Box::new(Margin {
            kind: MarginKind::Mat,
            margin: match l.margin {
                Some(m) => m,
                None => default("loss.margin")?,
            },
        }),
        k @ ("barlow_twins" | "vicreg" | "mhe" | "mhs") => {
            let kind = match k {
                "barlow_twins" => NcKind::BarlowTwins,
                "vicreg" => NcKind::VicReg,
                "mhe" => NcKind::Mhe,
                _ => NcKind::Mhs,
            };
            if kind == NcKind::Mhs && on(l.weight) {
                bail!("loss `mhs` has no weight modifier (its W is already one-hot on the nearest negative)");
            }
            Box::new(NonContrastive {
                kind,
                gd: on(l.gd)
                    .then(|| l.margin.map_or_else(|| default("loss.margin"), Ok))
                    .transpose()?,
                weight: on(l.weight)
                    .then(|| {
                        l.temperature
                            .map_or_else(|| default("loss.temperature"), Ok)
                    })
                    .transpose()?,
                ratio: on(l.ratio)
                    .then(|| {
                        l.ratio_scale
                            .map_or_else(|| default("loss.ratio_scale"), Ok)
                    })
                    .transpose()?,
                lambda: match l.lambda {
                    Some(x) => x,
                    None => default("loss.lambda")?,
                },
            })
        }
        other => bail!("unknown loss `{other}`"),
    })
}

/// Row-normalised copy in f32 (cosines are computed in f32 even under autocast).
pub fn normalize(z: &Tensor) -> Tensor {
    let z = z.to_kind(Kind::Float);
    let n = z.norm_scalaropt_dim(2.0, [1], true).clamp_min(1e-8);
    z / n
}

fn eye(b: i64, like: &Tensor) -> Tensor {
    Tensor::eye(b, (Kind::Float, like.device()))
}

fn rows_sum(t: &Tensor) -> Tensor {
    t.sum_dim_intlist(1, false, Kind::Float)
}

/// Clamp for `arccos` so its derivative stays finite when a cosine reaches ±1 (the reference code
/// does not clamp; the value changes by at most 1e-6 in the cosine).
const ACOS_CLAMP: f64 = 1.0 - 1e-6;

fn acos(s: &Tensor) -> Tensor {
    s.clamp(-ACOS_CLAMP, ACOS_CLAMP).arccos()
}

fn full_metrics(
    on: bool,
    n1: &Tensor,
    n2: &Tensor,
    comps: impl FnOnce() -> Components,
) -> Vec<(&'static str, Tensor)> {
    if !on {
        return Vec::new();
    }
    let comps = &comps();
    let s12 = tch::no_grad(|| n1.detach().matmul(&n2.detach().tr()));
    let mut m = batch_metrics(n1, n2, &s12);
    m.extend(comps.metrics());
    m
}

// ------------------------------------------------------------------------------------------------
// InfoNCE and ArcCon

/// Logits of InfoNCE/ArcCon: `[B, B]` (or `[B, 2B]` with hard negatives) similarities over τ, with
/// ArcCon's diagonal `cos(θ_ii + u)`, SimCSE's `hard_negative_weight` added to each anchor's own
/// hard negative. Also returns the cosine diagonal used for ArcCon's ratio.
fn ce_logits(
    n1: &Tensor,
    n2: &Tensor,
    n3: Option<&Tensor>,
    temperature: f64,
    hnw: f64,
    angle: Option<f64>,
) -> Tensor {
    let b = n1.size()[0];
    let mut s12 = n1.matmul(&n2.tr());
    if let Some(u) = angle {
        let theta = acos(&s12.diagonal(0, 0, 1));
        let e = eye(b, n1);
        s12 = &s12 * (-&e + 1.0) + (theta + u).cos().diag_embed(0, 0, 1);
    }
    let mut logits = s12 / temperature;
    if let Some(n3) = n3 {
        let s13 = n1.matmul(&n3.tr()) / temperature;
        let s13 = if hnw != 0.0 {
            s13 + eye(b, n1) * hnw
        } else {
            s13
        };
        logits = Tensor::cat(&[logits, s13], 1);
    }
    logits
}

fn ce_components(
    n1: &Tensor,
    n2: &Tensor,
    n3: Option<&Tensor>,
    temperature: f64,
    hnw: f64,
    angle: Option<f64>,
) -> Components {
    tch::no_grad(|| {
        let (n1, n2) = (n1.detach(), n2.detach());
        let n3 = n3.map(|t| t.detach());
        let b = n1.size()[0];
        let logits = ce_logits(&n1, &n2, n3.as_ref(), temperature, hnw, angle);
        let p = logits.softmax(1, Kind::Float);
        let mut not_pos = -eye(b, &n1) + 1.0;
        let mut negatives = n2.shallow_clone();
        if let Some(n3) = &n3 {
            not_pos = Tensor::cat(
                &[not_pos, Tensor::ones([b, b], (Kind::Float, n1.device()))],
                1,
            );
            negatives = Tensor::cat(&[negatives, n3.shallow_clone()], 0);
        }
        let off = &p * not_pos;
        // GD_i = 1 − P_ii, summed over the negatives rather than subtracted from 1 (no cancellation
        // in f32 when P_ii is close to 1).
        let gd = rows_sum(&off);
        let w = &off / gd.clamp_min(1e-30).unsqueeze(1);
        let r = match angle {
            None => Tensor::ones([b], (Kind::Float, n1.device())),
            Some(u) => {
                let theta = acos(&(&n1 * &n2).sum_dim_intlist(1, false, Kind::Float));
                (&theta + u).sin() / theta.sin()
            }
        };
        let scale = Tensor::full(
            [b],
            1.0 / (b as f64 * temperature),
            (Kind::Float, n1.device()),
        );
        Components {
            gd,
            w,
            r,
            scale,
            negatives,
            positives: n2,
        }
    })
}

/// SimCSE's InfoNCE: cross-entropy over the rows of cos(z1_i, z2_j)/τ with the diagonal as targets;
/// with hard negatives, cos(z1_i, z3_j)/τ columns are appended and `hard_negative_weight` is added to
/// each anchor's own hard negative.
pub struct InfoNce {
    pub temperature: f64,
    pub hard_negative_weight: f64,
}

impl Loss for InfoNce {
    fn forward_with(&self, v: &Views<'_>, metrics: bool) -> LossOutput {
        let (n1, n2) = (normalize(v.z1), normalize(v.z2));
        let n3 = v.z3.map(normalize);
        let logits = ce_logits(
            &n1,
            &n2,
            n3.as_ref(),
            self.temperature,
            self.hard_negative_weight,
            None,
        );
        let labels = Tensor::arange(n1.size()[0], (Kind::Int64, n1.device()));
        let loss = logits.cross_entropy_for_logits(&labels);
        LossOutput {
            loss,
            metrics: full_metrics(metrics, &n1, &n2, || {
                ce_components(
                    &n1,
                    &n2,
                    n3.as_ref(),
                    self.temperature,
                    self.hard_negative_weight,
                    None,
                )
            }),
        }
    }

    fn components(&self, v: &Views<'_>) -> Components {
        let n3 = v.z3.map(normalize);
        ce_components(
            &normalize(v.z1),
            &normalize(v.z2),
            n3.as_ref(),
            self.temperature,
            self.hard_negative_weight,
            None,
        )
    }
}

/// ArcCon (Zhang et al. 2022): InfoNCE with the positive cosine replaced by `cos(θ_ii + u)`.
/// Hard negatives, when the data has them, are appended as in InfoNCE.
pub struct ArcCon {
    pub temperature: f64,
    pub hard_negative_weight: f64,
    /// Additive angular margin u in radians.
    pub angle: f64,
}

impl Loss for ArcCon {
    fn forward_with(&self, v: &Views<'_>, metrics: bool) -> LossOutput {
        let (n1, n2) = (normalize(v.z1), normalize(v.z2));
        let n3 = v.z3.map(normalize);
        let a = Some(self.angle);
        let logits = ce_logits(
            &n1,
            &n2,
            n3.as_ref(),
            self.temperature,
            self.hard_negative_weight,
            a,
        );
        let labels = Tensor::arange(n1.size()[0], (Kind::Int64, n1.device()));
        let loss = logits.cross_entropy_for_logits(&labels);
        LossOutput {
            loss,
            metrics: full_metrics(metrics, &n1, &n2, || {
                ce_components(
                    &n1,
                    &n2,
                    n3.as_ref(),
                    self.temperature,
                    self.hard_negative_weight,
                    a,
                )
            }),
        }
    }

    fn components(&self, v: &Views<'_>) -> Components {
        let n3 = v.z3.map(normalize);
        ce_components(
            &normalize(v.z1),
            &normalize(v.z2),
            n3.as_ref(),
            self.temperature,
            self.hard_negative_weight,
            Some(self.angle),
        )
    }
}

// ------------------------------------------------------------------------------------------------
// Margin losses

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarginKind {
    /// `mean relu(max_{j≠i} s_ij − s_ii + m)`.
    Mpt,
    /// `d = sqrt(max(2 − 2s, 1e−4))`; `mean relu(d_ii − min_{j≠i} d_ij + m)`.
    Met,
    /// `a = arccos s`; `mean relu(a_ii − min_{j≠i} a_ij + m·π)`.
    Mat,
}

/// The triplet-style margin losses over the cross-view cosine matrix (hard negatives are ignored).
pub struct Margin {
    pub kind: MarginKind,
    pub margin: f64,
}

impl Margin {
    /// Per-anchor hinge arguments and the index of the hardest negative.
    fn hinge(&self, n1: &Tensor, n2: &Tensor) -> (Tensor, Tensor) {
        let b = n1.size()[0];
        let e = eye(b, n1);
        let s = n1.matmul(&n2.tr());
        match self.kind {
            MarginKind::Mpt => {
                let (neg, j) = (&s - &e * 1e8).max_dim(1, false);
                (neg - s.diagonal(0, 0, 1) + self.margin, j)
            }
            MarginKind::Met => {
                let d = (-&s * 2.0 + 2.0).clamp_min(1e-4).sqrt();
                let (neg, j) = (&d + &e * 1e8).min_dim(1, false);
                (d.diagonal(0, 0, 1) - neg + self.margin, j)
            }
            MarginKind::Mat => {
                let a = acos(&s);
                let (neg, j) = (&a + &e * 1e8).min_dim(1, false);
                (
                    a.diagonal(0, 0, 1) - neg + self.margin * std::f64::consts::PI,
                    j,
                )
            }
        }
    }

    fn comps(&self, n1: &Tensor, n2: &Tensor) -> Components {
        tch::no_grad(|| {
            let (n1, n2) = (n1.detach(), n2.detach());
            let b = n1.size()[0];
            let (h, j) = self.hinge(&n1, &n2);
            let gd = h.gt(0.0).to_kind(Kind::Float);
            let w = Tensor::zeros([b, b], (Kind::Float, n1.device())).scatter_value(
                1,
                &j.unsqueeze(1),
                1.0,
            );
            let s = n1.matmul(&n2.tr());
            let sii = s.diagonal(0, 0, 1);
            let sij = s.gather(1, &j.unsqueeze(1), false).squeeze_dim(1);
            let bf = b as f64;
            let (r, scale) = match self.kind {
                MarginKind::Mpt => (
                    Tensor::ones([b], (Kind::Float, n1.device())),
                    Tensor::full([b], 1.0 / bf, (Kind::Float, n1.device())),
                ),
                MarginKind::Met => {
                    let d = |x: &Tensor| (-x * 2.0 + 2.0).clamp_min(1e-4).sqrt();
                    let (dii, dij) = (d(&sii), d(&sij));
                    (&dij / dii, dij.reciprocal() / bf)
                }
                MarginKind::Mat => {
                    let sn = |x: &Tensor| acos(x).sin();
                    let (ai, aj) = (sn(&sii), sn(&sij));
                    (&aj / ai, aj.reciprocal() / bf)
                }
            };
            Components {
                gd,
                w,
                r,
                scale,
                negatives: n2.shallow_clone(),
                positives: n2,
            }
        })
    }
}

impl Loss for Margin {
    fn forward_with(&self, v: &Views<'_>, metrics: bool) -> LossOutput {
        let (n1, n2) = (normalize(v.z1), normalize(v.z2));
        let (h, _) = self.hinge(&n1, &n2);
        let loss = h.relu().mean(Kind::Float);
        LossOutput {
            loss,
            metrics: full_metrics(metrics, &n1, &n2, || self.comps(&n1, &n2)),
        }
    }

    fn components(&self, v: &Views<'_>) -> Components {
        self.comps(&normalize(v.z1), &normalize(v.z2))
    }
}

// ------------------------------------------------------------------------------------------------
// Non-contrastive losses in the reference code's surrogate-gradient forms

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NcKind {
    BarlowTwins,
    VicReg,
    Mhe,
    Mhs,
}

/// Barlow Twins, VICReg, MHE and MHS written, as in the reference code, as surrogate losses on the
/// normalised views whose gradients are those of the original objectives, with the modifiers:
/// `gd` (margin m: an anchor gets gradient only if `1 − max_{j≠i} cos(ẑ_i, ẑ_j) < m` within its own
/// view), `weight` (softmax weights over the negatives at temperature τ) and `ratio` (scale of the
/// positive term). Hard negatives are ignored.
pub struct NonContrastive {
    pub kind: NcKind,
    /// The gd modifier's margin, when on.
    pub gd: Option<f64>,
    /// The weight modifier's temperature, when on (MHS has no weight modifier).
    pub weight: Option<f64>,
    /// The ratio modifier's scale, when on.
    pub ratio: Option<f64>,
    pub lambda: f64,
}

/// The gd modifier's mask: anchors whose nearest same-view neighbour is within the margin.
fn gd_mask(n: &Tensor, m: f64) -> Tensor {
    tch::no_grad(|| {
        let n = n.detach();
        let s = n.matmul(&n.tr());
        let e = eye(n.size()[0], &n);
        let (nn, _) = (&s - e * 1e8).max_dim(1, false);
        (s.diagonal(0, 0, 1) - nn).lt(m)
    })
}

/// Rows outside the mask are detached (they get no gradient from any term).
fn apply_mask(n: &Tensor, mask: &Tensor) -> Tensor {
    let m = mask.to_kind(Kind::Float).unsqueeze(1);
    n * &m + n.detach() * (-m + 1.0)
}

impl NonContrastive {
    /// Weights of Barlow Twins / VICReg over the rows of `base` (detached): the modifier's
    /// `exp(s/τ)` normalised over all off-diagonal pairs, or the original `2 s / N²`.
    fn bv_weight(&self, base: &Tensor) -> Tensor {
        let b = base.size()[0];
        let s = base.matmul(&base.tr());
        match self.weight {
            Some(t) => {
                let w = (s / t).exp();
                let off = (&w * (-eye(b, base) + 1.0)).sum(Kind::Float);
                w / off
            }
            None => s * (2.0 / (b * b) as f64),
        }
    }

    /// One direction of Barlow Twins (`bt`) or VICReg: anchors `u1`, partner view `u2`.
    fn bv_half(&self, u1: &Tensor, u2: &Tensor, bt: bool) -> Tensor {
        let b = u1.size()[0];
        let nf = b as f64;
        let (u1d, u2d) = (u1.detach(), u2.detach());
        let weight = self.bv_weight(if bt { &u2d } else { &u1d });
        let sim = u1.matmul(&u1d.tr());
        let loss_neg = rows_sum(&(&weight * sim));
        let loss_pos = match self.ratio {
            Some(r) => {
                let off = rows_sum(&(&weight * (-eye(b, u1) + 1.0)));
                -rows_sum(&(u1 * u2)) * off * (self.lambda * r)
            }
            None if bt => {
                let wcor = u1d.tr().matmul(&u2d) / nf;
                let pos = (-wcor.diagonal(0, 0, 1) * (1.0 - self.lambda) + 1.0) * (2.0 / nf);
                rows_sum(&(-(u1 * &u2d) * pos.unsqueeze(0)))
            }
            None => -rows_sum(&(u1 * &u2d)) * (2.0 / nf),
        };
        (loss_pos + loss_neg * self.lambda).sum(Kind::Float)
    }

    fn mhe_parts(&self, u: &Tensor) -> (Tensor, Tensor) {
        let b = u.size()[0];
        let t = self.weight.unwrap_or(1.0);
        let sim = u.matmul(&u.tr()) / t;
        let upper = Tensor::ones([b, b], (Kind::Bool, u.device())).triu(0);
        let uniform = sim
            .masked_fill(&upper, f64::NEG_INFINITY)
            .view([-1])
            .logsumexp([0], false);
        let weight = match self.weight {
            Some(t) => {
                let sd = sim.detach() - eye(b, u) * 1e8;
                (sd.logsumexp([1], false) - uniform.detach()).exp() / t
            }
            None => Tensor::full([b], 1.0 / b as f64, (Kind::Float, u.device())),
        };
        (uniform, weight)
    }

    /// MHS: distances from anchors `u` to the detached other view; returns (−nearest, argmin).
    fn mhs_uniform(u: &Tensor, other: &Tensor) -> (Tensor, Tensor) {
        let b = u.size()[0];
        let d = (u.unsqueeze(1) - other.detach().unsqueeze(0))
            .square()
            .sum_dim_intlist(2, false, Kind::Float)
            .g_add_scalar(1e-4)
            .sqrt();
        let (m, j) = (d + eye(b, u) * 1e8).min_dim(1, false);
        (-m, j)
    }

    fn loss(&self, n1: &Tensor, n2: &Tensor) -> Tensor {
        let (n1, n2) = match self.gd {
            Some(m) => (
                apply_mask(n1, &gd_mask(n1, m)),
                apply_mask(n2, &gd_mask(n2, m)),
            ),
            None => (n1.shallow_clone(), n2.shallow_clone()),
        };
        let align = -rows_sum(&(&n1 * &n2)) * 2.0 + 2.0;
        let r = self.ratio.unwrap_or(1.0);
        match self.kind {
            NcKind::BarlowTwins => self.bv_half(&n1, &n2, true) + self.bv_half(&n2, &n1, true),
            NcKind::VicReg => self.bv_half(&n1, &n2, false) + self.bv_half(&n2, &n1, false),
            NcKind::Mhe => {
                let (u0, w0) = self.mhe_parts(&n1);
                let (u1, w1) = self.mhe_parts(&n2);
                let a0 = (&align * w0 * (r / 2.0)).sum(Kind::Float);
                let a1 = (&align * w1 * (r / 2.0)).sum(Kind::Float);
                (u0 + u1) * self.lambda + a0 + a1
            }
            NcKind::Mhs => {
                let (u0, _) = Self::mhs_uniform(&n1, &n2);
                let (u1, _) = Self::mhs_uniform(&n2, &n1);
                let (a0, a1) = if self.ratio.is_some() {
                    let w0 = (-u0.detach()).reciprocal();
                    let w1 = (-u1.detach()).reciprocal();
                    (&align * w0 * (r / 2.0), &align * w1 * (r / 2.0))
                } else {
                    (&align / 2.0, &align / 2.0)
                };
                (u0.mean(Kind::Float) + u1.mean(Kind::Float)) * self.lambda
                    + a0.mean(Kind::Float)
                    + a1.mean(Kind::Float)
            }
        }
    }

    /// Components of ∂L/∂ẑ1_i: the push `Σ_j A_ij neg_j` and pull `B_i ẑ2_i` read off the surrogate
    /// forms; `scale_i = Σ_{j≠i} max(A_ij, 0)`, `W = max(A, 0)/scale`, `R = B/scale`. Negative
    /// coefficients (the original Barlow Twins / VICReg weights are signed cosines) are clipped for W,
    /// and the original Barlow Twins' per-dimension positive is summarised by its component along ẑ2_i,
    /// so the rebuild is exact only without those two cases.
    fn comps(&self, n1: &Tensor, n2: &Tensor) -> Components {
        tch::no_grad(|| {
            let (n1, n2) = (n1.detach(), n2.detach());
            let b = n1.size()[0];
            let nf = b as f64;
            let dev = (Kind::Float, n1.device());
            let not_eye = -eye(b, &n1) + 1.0;
            let gd = match self.gd {
                Some(m) => gd_mask(&n1, m).to_kind(Kind::Float),
                None => Tensor::ones([b], dev),
            };
            let r = self.ratio.unwrap_or(1.0);
            let l = self.lambda;
            let (a, pull, negatives) = match self.kind {
                NcKind::BarlowTwins | NcKind::VicReg => {
                    let bt = self.kind == NcKind::BarlowTwins;
                    let w1 = self.bv_weight(if bt { &n2 } else { &n1 });
                    let w2 = self.bv_weight(if bt { &n1 } else { &n2 });
                    let pull = match self.ratio {
                        Some(_) => {
                            (rows_sum(&(&w1 * &not_eye)) + rows_sum(&(&w2 * &not_eye))) * (l * r)
                        }
                        None if bt => {
                            let wcor = n1.tr().matmul(&n2) / nf;
                            let pos = (-wcor.diagonal(0, 0, 1) * (1.0 - l) + 1.0) * (2.0 / nf);
                            rows_sum(&(n2.square() * pos.unsqueeze(0)))
                        }
                        None => Tensor::full([b], 2.0 / nf, dev),
                    };
                    (w1 * l, pull, n1.shallow_clone())
                }
                NcKind::Mhe => {
                    let t = self.weight.unwrap_or(1.0);
                    let s = n1.matmul(&n1.tr()) / t;
                    let e = (&s - s.max()).exp() * &not_eye;
                    // Z = Σ_{k>l} e^{s_kl}: half the off-diagonal sum of the symmetric matrix.
                    let z = e.sum(Kind::Float) / 2.0;
                    let a = &e / z * (l / t);
                    let (_, w0) = self.mhe_parts(&n1);
                    let (_, w1) = self.mhe_parts(&n2);
                    (a, (w0 + w1) * r, n1.shallow_clone())
                }
                NcKind::Mhs => {
                    let (u0, j0) = Self::mhs_uniform(&n1, &n2);
                    let (u1, _) = Self::mhs_uniform(&n2, &n1);
                    let (d0, d1) = (-u0, -u1);
                    let a = Tensor::zeros([b, b], dev).scatter(
                        1,
                        &j0.unsqueeze(1),
                        &(d0.reciprocal() * (l / nf)).unsqueeze(1),
                    );
                    let pull = match self.ratio {
                        Some(_) => (d0.reciprocal() + d1.reciprocal()) * (r / nf),
                        None => Tensor::full([b], 2.0 / nf, dev),
                    };
                    (a, pull, n2.shallow_clone())
                }
            };
            let a = (a * &not_eye).clamp_min(0.0);
            let scale = rows_sum(&a);
            let sc = scale.clamp_min(1e-30);
            let w = &a / sc.unsqueeze(1);
            // No positive push at all (possible only with signed weights): R is reported as 0.
            let r = (pull / &sc).where_self(&scale.gt(0.0), &scale.zeros_like());
            Components {
                gd,
                w,
                r,
                scale,
                negatives,
                positives: n2,
            }
        })
    }
}

impl Loss for NonContrastive {
    fn forward_with(&self, v: &Views<'_>, metrics: bool) -> LossOutput {
        let (n1, n2) = (normalize(v.z1), normalize(v.z2));
        let mut loss = self.loss(&n1, &n2);
        if self.gd.is_some() {
            // When the gd mask lets no anchor through, keep a (zero-gradient) graph for backward.
            loss += (n1.sum(Kind::Float) + n2.sum(Kind::Float)) * 0.0;
        }
        LossOutput {
            loss,
            metrics: full_metrics(metrics, &n1, &n2, || self.comps(&n1, &n2)),
        }
    }

    fn components(&self, v: &Views<'_>) -> Components {
        self.comps(&normalize(v.z1), &normalize(v.z2))
    }
}

/// Step metrics from normalised views and their cosine matrix: `pos_cos` (mean cosine of a sentence's
/// two views), `neg_cos` (mean off-diagonal cosine), `batch_alignment` (mean ‖ẑ1 − ẑ2‖²) and
/// `batch_uniformity` (log mean over pairs i < j of exp(−2‖ẑ1_i − ẑ1_j‖²)).
pub fn batch_metrics(n1: &Tensor, n2: &Tensor, s12: &Tensor) -> Vec<(&'static str, Tensor)> {
    tch::no_grad(|| {
        let b = s12.size()[0];
        let eye = Tensor::eye(b, (Kind::Float, s12.device()));
        let diag = s12.diagonal(0, 0, 1);
        let pos = diag.mean(Kind::Float);
        let not_eye = -&eye + 1.0;
        let neg = (s12 * &not_eye).sum(Kind::Float) / ((b * (b - 1)).max(1) as f64);
        let align = (-&diag * 2.0 + 2.0).mean(Kind::Float);
        let s11 = n1.matmul(&n1.tr());
        // exp(−2‖a − b‖²) = exp(−4 + 4 cos) for unit vectors; mean over the off-diagonal pairs.
        let e = ((s11 * 4.0) - 4.0).exp() * &not_eye;
        let unif = (e.sum(Kind::Float) / ((b * (b - 1)).max(1) as f64)).log();
        let _ = n2;
        vec![
            ("pos_cos", pos.detach()),
            ("neg_cos", neg.detach()),
            ("batch_alignment", align.detach()),
            ("batch_uniformity", unif.detach()),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn t(rows: &[[f32; 2]]) -> Tensor {
        Tensor::from_slice(&rows.concat()).view([rows.len() as i64, 2])
    }

    fn metric(o: &LossOutput, name: &str) -> f64 {
        o.metrics
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
            .double_value(&[])
    }

    /// Two sentences at right angles, views identical: cos = I, so with τ = 1 the loss is
    /// −log(e / (e + 1)) and P_ii = e / (e + 1).
    #[test]
    fn infonce_hand_computed() {
        let z = t(&[[1.0, 0.0], [0.0, 2.0]]);
        let l = InfoNce {
            temperature: 1.0,
            hard_negative_weight: 0.0,
        };
        let o = l.forward(&Views {
            z1: &z,
            z2: &z,
            z3: None,
        });
        let e = std::f64::consts::E;
        assert!((o.loss.double_value(&[]) - (-(e / (e + 1.0)).ln())).abs() < 1e-6);
        assert!((metric(&o, "gd_mean") - (1.0 - e / (e + 1.0))).abs() < 1e-6);
        assert!((metric(&o, "pos_cos") - 1.0).abs() < 1e-6);
        assert!(metric(&o, "neg_cos").abs() < 1e-6);
        assert!(metric(&o, "batch_alignment").abs() < 1e-6);
        // ‖a − b‖² = 2 for orthogonal unit vectors: log exp(−4) = −4.
        assert!((metric(&o, "batch_uniformity") + 4.0).abs() < 1e-5);
        assert!((metric(&o, "w_max") - 1.0).abs() < 1e-6);
        assert!(metric(&o, "w_entropy").abs() < 1e-6);
    }

    /// With hard negatives, the weight lands on each anchor's own negative: logits row i gets
    /// [cos(z1_i, z2_·), cos(z1_i, z3_·) + w·δ].
    #[test]
    fn infonce_hard_negative_weight() {
        let z1 = t(&[[1.0, 0.0], [0.0, 1.0]]);
        let z3 = t(&[[1.0, 0.0], [1.0, 0.0]]);
        let l = InfoNce {
            temperature: 0.5,
            hard_negative_weight: 1.0,
        };
        let o = l.forward(&Views {
            z1: &z1,
            z2: &z1,
            z3: Some(&z3),
        });
        // Row 0 logits: [2, 0, 2 + 1, 2]; row 1: [0, 2, 0, 0 + 1].
        let lse = |v: &[f64]| v.iter().map(|x| x.exp()).sum::<f64>().ln();
        let want = ((lse(&[2.0, 0.0, 3.0, 2.0]) - 2.0) + (lse(&[0.0, 2.0, 0.0, 1.0]) - 2.0)) / 2.0;
        assert!(
            (o.loss.double_value(&[]) - want).abs() < 1e-5,
            "{} vs {want}",
            o.loss.double_value(&[])
        );
    }

    #[test]
    fn infonce_gradient_flows_to_both_views() {
        let z1 = Tensor::randn([4, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let z2 = Tensor::randn([4, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let o = InfoNce {
            temperature: 0.05,
            hard_negative_weight: 0.0,
        }
        .forward(&Views {
            z1: &z1,
            z2: &z2,
            z3: None,
        });
        o.loss.backward();
        assert!(z1.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
        assert!(z2.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }

    /// Every loss reports the eight metrics, finite, with and without hard negatives (which only
    /// infonce and arccon use).
    #[test]
    fn every_loss_reports_the_eight_metrics() {
        let z1 = Tensor::randn([6, 5], (Kind::Float, Device::Cpu));
        let z2 = &z1 + Tensor::randn([6, 5], (Kind::Float, Device::Cpu)) * 0.3;
        let z3 = Tensor::randn([6, 5], (Kind::Float, Device::Cpu));
        for kind in crate::spec::schema::LOSSES {
            for (gd, weight, ratio) in [(None, None, None), (Some(true), Some(true), Some(true))] {
                let nc = crate::spec::schema::is_non_contrastive(kind);
                if !nc && gd.is_some() {
                    continue;
                }
                let cfg = LossConfig {
                    kind: kind.to_string(),
                    margin: None,
                    angle: None,
                    gd,
                    weight: if *kind == "mhs" { None } else { weight },
                    ratio,
                    temperature: None,
                    ratio_scale: None,
                    lambda: None,
                };
                let l = build_loss(&cfg, 0.05, 0.0).unwrap();
                for z3 in [None, Some(&z3)] {
                    let o = l.forward(&Views {
                        z1: &z1,
                        z2: &z2,
                        z3,
                    });
                    assert!(o.loss.double_value(&[]).is_finite(), "{kind}");
                    for m in [
                        "pos_cos",
                        "neg_cos",
                        "batch_alignment",
                        "batch_uniformity",
                        "gd_mean",
                        "w_entropy",
                        "w_max",
                        "ratio_mean",
                    ] {
                        let v = metric(&o, m);
                        assert!(v.is_finite(), "{kind} {m} = {v}");
                    }
                }
            }
        }
    }

    /// A gd mask that lets no anchor through still gives a loss that backward accepts (zero grads).
    #[test]
    fn gd_masking_every_anchor_still_backpropagates() {
        let z1 = Tensor::randn([4, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let z2 = Tensor::randn([4, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        for kind in [
            NcKind::BarlowTwins,
            NcKind::VicReg,
            NcKind::Mhe,
            NcKind::Mhs,
        ] {
            let l = NonContrastive {
                kind,
                gd: Some(-1.0),
                weight: None,
                ratio: None,
                lambda: 1.0,
            };
            let o = l.forward(&Views {
                z1: &z1,
                z2: &z2,
                z3: None,
            });
            o.loss.backward();
            assert_eq!(z1.grad().abs().sum(Kind::Float).double_value(&[]), 0.0);
            assert_eq!(metric(&o, "gd_mean"), 0.0);
        }
    }
}
