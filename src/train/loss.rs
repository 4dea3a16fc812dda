//! Training objectives as functions of the views' sentence embeddings, plus the step metrics that
//! every objective reports (computed on the device; nothing here synchronises with the host).

use crate::spec::config::RunConfig;
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
    fn forward(&self, views: &Views<'_>) -> LossOutput;
}

/// The objective a run's config names.
pub fn build(cfg: &RunConfig) -> Result<Box<dyn Loss>> {
    match cfg.loss.kind.as_str() {
        "infonce" => Ok(Box::new(InfoNce {
            temperature: cfg.train.temperature,
            hard_negative_weight: cfg.train.hard_negative_weight,
        })),
        other => bail!("loss `{other}` is not implemented by this build (implemented: infonce)"),
    }
}

/// Row-normalised copy in f32 (cosines are computed in f32 even under autocast).
pub fn normalize(z: &Tensor) -> Tensor {
    let z = z.to_kind(Kind::Float);
    let n = z.norm_scalaropt_dim(2.0, [1], true).clamp_min(1e-8);
    z / n
}

/// SimCSE's InfoNCE: cross-entropy over the rows of cos(z1_i, z2_j)/τ with the diagonal as targets;
/// with hard negatives, cos(z1_i, z3_j)/τ columns are appended and `hard_negative_weight` is added to
/// each anchor's own hard negative.
pub struct InfoNce {
    pub temperature: f64,
    pub hard_negative_weight: f64,
}

impl Loss for InfoNce {
    fn forward(&self, v: &Views<'_>) -> LossOutput {
        let (n1, n2) = (normalize(v.z1), normalize(v.z2));
        let b = n1.size()[0];
        let s12 = n1.matmul(&n2.tr());
        let mut logits = &s12 / self.temperature;
        if let Some(z3) = v.z3 {
            let s13 = n1.matmul(&normalize(z3).tr()) / self.temperature;
            let s13 = if self.hard_negative_weight != 0.0 {
                s13 + Tensor::eye(b, (Kind::Float, n1.device())) * self.hard_negative_weight
            } else {
                s13
            };
            logits = Tensor::cat(&[logits, s13], 1);
        }
        let labels = Tensor::arange(b, (Kind::Int64, n1.device()));
        let loss = logits.cross_entropy_for_logits(&labels);
        let mut metrics = batch_metrics(&n1, &n2, &s12);
        // Gradient-paradigm components of InfoNCE: GD_i = 1 − P_ii, W_ij = P_ij over j ≠ i, R = 1.
        let p = tch::no_grad(|| logits.detach().softmax(1, Kind::Float));
        let pii = p.diagonal(0, 0, 1);
        metrics.push(("gd_mean", (-&pii + 1.0).mean(Kind::Float)));
        let off = p.narrow(1, 0, b) * (-Tensor::eye(b, (Kind::Float, n1.device())) + 1.0);
        let off = if p.size()[1] > b {
            Tensor::cat(&[off, p.narrow(1, b, p.size()[1] - b)], 1)
        } else {
            off
        };
        let w = &off / off.sum_dim_intlist(1, true, Kind::Float).clamp_min(1e-30);
        let ent = -(&w * w.clamp_min(1e-30).log()).sum_dim_intlist(1, false, Kind::Float);
        metrics.push(("w_entropy", ent.mean(Kind::Float)));
        metrics.push(("w_max", w.amax([1], false).mean(Kind::Float)));
        metrics.push(("ratio_mean", Tensor::ones([], (Kind::Float, n1.device()))));
        LossOutput { loss, metrics }
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
}
