//! AdamW (torch.optim.AdamW semantics, HF Trainer's parameter groups) over one flat parameter buffer,
//! global-norm gradient clipping, and the learning-rate schedules.
//!
//! Every trainable variable is re-pointed (`set_data`) at a slice of one contiguous f32 buffer, so an
//! optimizer step is a handful of kernels over the whole model instead of several per parameter.

use tch::{Kind, Tensor};

pub struct FlatAdamW {
    params: Vec<Tensor>,
    numels: Vec<i64>,
    flat: Tensor,
    /// Per element: the weight decay (0 for biases and LayerNorm parameters).
    decay: Tensor,
    m: Tensor,
    v: Tensor,
    step: i64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

/// HF Trainer's rule: no weight decay for biases and LayerNorm parameters.
pub fn decays(name: &str) -> bool {
    !(name.ends_with("bias") || name.contains("LayerNorm") || name.contains("layer_norm"))
}

impl FlatAdamW {
    /// Take over the given (name, variable) pairs. Order is fixed by sorting on the name.
    pub fn new(
        mut named: Vec<(String, Tensor)>,
        weight_decay: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
    ) -> Self {
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let device = named.first().map_or(tch::Device::Cpu, |(_, t)| t.device());
        let numels: Vec<i64> = named.iter().map(|(_, t)| t.numel() as i64).collect();
        let total: i64 = numels.iter().sum();
        let (flat, decay) = tch::no_grad(|| {
            let flat = Tensor::cat(
                &named
                    .iter()
                    .map(|(_, t)| t.detach().to_kind(Kind::Float).flatten(0, -1))
                    .collect::<Vec<_>>(),
                0,
            );
            let decay = Tensor::cat(
                &named
                    .iter()
                    .zip(&numels)
                    .map(|((n, _), k)| {
                        Tensor::full(
                            [*k],
                            if decays(n) { weight_decay } else { 0.0 },
                            (Kind::Float, device),
                        )
                    })
                    .collect::<Vec<_>>(),
                0,
            );
            (flat, decay)
        });
        let mut params = Vec::with_capacity(named.len());
        let mut off = 0;
        for ((_, mut t), k) in named.into_iter().zip(&numels) {
            let view = flat.narrow(0, off, *k).view(t.size().as_slice());
            t.set_data(&view);
            params.push(t);
            off += k;
        }
        debug_assert_eq!(off, total);
        FlatAdamW {
            params,
            numels,
            m: flat.zeros_like(),
            v: flat.zeros_like(),
            flat,
            decay,
            step: 0,
            beta1,
            beta2,
            eps,
        }
    }

    pub fn numel(&self) -> i64 {
        self.numels.iter().sum()
    }

    /// The moments and the update count, for a resumable checkpoint.
    pub fn state(&self) -> (&Tensor, &Tensor, i64) {
        (&self.m, &self.v, self.step)
    }

    /// Restore what [`FlatAdamW::state`] gave (the same parameters, in the same sorted order).
    pub fn load_state(&mut self, m: &Tensor, v: &Tensor, step: i64) -> anyhow::Result<()> {
        for (name, t) in [("m", m), ("v", v)] {
            if t.size() != self.m.size() {
                anyhow::bail!(
                    "optimizer state `{name}` has shape {:?}, the model needs [{}]",
                    t.size(),
                    self.numel()
                );
            }
        }
        tch::no_grad(|| {
            self.m.copy_(m);
            self.v.copy_(v);
        });
        self.step = step;
        Ok(())
    }

    /// All gradients as one flat tensor (zeros where a parameter got none).
    pub fn flat_grad(&self) -> Tensor {
        let parts: Vec<Tensor> = self
            .params
            .iter()
            .map(|p| {
                let g = p.grad();
                if g.defined() {
                    g.to_kind(Kind::Float).flatten(0, -1)
                } else {
                    p.detach().zeros_like().to_kind(Kind::Float).flatten(0, -1)
                }
            })
            .collect();
        Tensor::cat(&parts, 0)
    }

    /// One update at learning rate `lr`, clipping the global gradient norm to `max_grad_norm`
    /// (0 = no clipping). Returns the gradient's global L2 norm before clipping, on the device
    /// (no synchronisation here).
    pub fn step(&mut self, lr: f64, max_grad_norm: f64) -> Tensor {
        tch::no_grad(|| {
            let mut g = self.flat_grad();
            let norm = g.norm();
            if max_grad_norm > 0.0 {
                // torch.nn.utils.clip_grad_norm_: scale by max / (norm + 1e-6) when that is below 1.
                let coef = (norm.shallow_clone() + 1e-6)
                    .reciprocal()
                    .multiply_scalar(max_grad_norm)
                    .clamp_max(1.0);
                g *= coef;
            }
            self.step += 1;
            let t = self.step as f64;
            // Decoupled weight decay: p ← p − lr·wd·p.
            let _ = self
                .flat
                .addcmul_(&self.flat.shallow_clone(), &(&self.decay * (-lr)));
            let _ = self.m.lerp_(&g, 1.0 - self.beta1);
            let _ = self
                .v
                .multiply_scalar_(self.beta2)
                .addcmul_(&g, &(&g * (1.0 - self.beta2)));
            let bc1 = 1.0 - self.beta1.powf(t);
            let bc2 = 1.0 - self.beta2.powf(t);
            let denom = (self.v.sqrt() / bc2.sqrt()) + self.eps;
            let _ = self.flat.addcdiv_(&(&self.m * (-lr / bc1)), &denom);
            norm
        })
    }

    /// Multiply every gradient by `factor` (unscaling after fp16 loss scaling).
    pub fn scale_grads(&mut self, factor: f64) {
        tch::no_grad(|| {
            for p in &self.params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.multiply_scalar_(factor);
                }
            }
        });
    }

    /// Zero every gradient.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }
}

/// Learning rate for the update at 0-based `step` of `total` (HF's schedules): linear warm-up over
/// `warmup` steps, then linear decay to 0 at `total`, or constant.
pub fn lr_at(step: i64, total: i64, warmup: i64, peak: f64, schedule: &str) -> f64 {
    if step < warmup {
        return peak * step as f64 / warmup.max(1) as f64;
    }
    match schedule {
        "constant" => peak,
        _ => peak * ((total - step) as f64 / (total - warmup).max(1) as f64).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, nn::OptimizerConfig, Device};

    fn model(vs: &nn::VarStore) -> (Tensor, Tensor) {
        let root = vs.root() / "dense";
        let w = root.randn("weight", &[4, 3], 0.0, 1.0);
        let b = root.randn("bias", &[4], 0.0, 1.0);
        (w, b)
    }

    fn loss(w: &Tensor, b: &Tensor, x: &Tensor) -> Tensor {
        (x.matmul(&w.tr()) + b)
            .tanh()
            .pow_tensor_scalar(2)
            .sum(Kind::Float)
    }

    /// Same trajectory as libtorch's own AdamW (weight decay on every parameter there, so the test
    /// gives every name decay here too by calling them "w*").
    #[test]
    fn matches_libtorch_adamw_step_for_step() {
        tch::manual_seed(0);
        let x = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
        let vs_a = nn::VarStore::new(Device::Cpu);
        let (wa, ba) = model(&vs_a);
        let vs_b = nn::VarStore::new(Device::Cpu);
        let (wb, bb) = model(&vs_b);
        tch::no_grad(|| {
            wb.shallow_clone().copy_(&wa);
            bb.shallow_clone().copy_(&ba);
        });
        let mut ours = FlatAdamW::new(
            vec![
                ("w1".into(), wa.shallow_clone()),
                ("w2".into(), ba.shallow_clone()),
            ],
            0.1,
            0.9,
            0.999,
            1e-8,
        );
        let mut theirs = nn::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            wd: 0.1,
            eps: 1e-8,
            amsgrad: false,
        }
        .build(&vs_b, 1e-2)
        .unwrap();
        for _ in 0..5 {
            ours.zero_grad();
            loss(&wa, &ba, &x).backward();
            let _ = ours.step(1e-2, 0.0);
            theirs.zero_grad();
            loss(&wb, &bb, &x).backward();
            theirs.step();
        }
        let d =
            (&wa - &wb).abs().max().double_value(&[]) + (&ba - &bb).abs().max().double_value(&[]);
        assert!(d < 1e-6, "max |Δ| = {d}");
        // The variables really are views of the flat buffer.
        assert_eq!(ours.numel(), 16);
    }

    #[test]
    fn clipping_and_decay_groups() {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root() / "layer";
        let w = (&root / "dense").ones("weight", &[2]);
        let b = (&root / "dense").ones("bias", &[2]);
        let ln = (&root / "LayerNorm").ones("weight", &[2]);
        let mut opt = FlatAdamW::new(
            vec![
                ("layer.dense.weight".into(), w.shallow_clone()),
                ("layer.dense.bias".into(), b.shallow_clone()),
                ("layer.LayerNorm.weight".into(), ln.shallow_clone()),
            ],
            0.5,
            0.9,
            0.999,
            1e-8,
        );
        // Gradient (3, 4, 0, 0, 0, 0) on w: norm 5, clipped to 1.
        (w.shallow_clone() * Tensor::from_slice(&[3.0f32, 4.0]))
            .sum(Kind::Float)
            .backward();
        let norm = opt.step(0.1, 1.0);
        assert!((norm.double_value(&[]) - 5.0).abs() < 1e-5);
        // Adam's first step moves each coordinate with a gradient by lr·sign(g); decay only on w.
        let wv = Vec::<f32>::try_from(&w).unwrap();
        let expect = 1.0 - 0.1 * 0.5 - 0.1;
        assert!((wv[0] as f64 - expect).abs() < 1e-5, "{wv:?}");
        assert_eq!(Vec::<f32>::try_from(&b).unwrap(), vec![1.0, 1.0]);
        assert_eq!(Vec::<f32>::try_from(&ln).unwrap(), vec![1.0, 1.0]);
        assert!(decays("encoder.layer.0.output.dense.weight"));
        assert!(!decays("embeddings.LayerNorm.weight") && !decays("pooler.dense.bias"));
    }

    #[test]
    fn schedules() {
        assert_eq!(lr_at(0, 10, 0, 1.0, "linear"), 1.0);
        assert!((lr_at(9, 10, 0, 1.0, "linear") - 0.1).abs() < 1e-12);
        assert_eq!(lr_at(0, 10, 2, 1.0, "linear"), 0.0);
        assert_eq!(lr_at(1, 10, 2, 1.0, "linear"), 0.5);
        assert_eq!(lr_at(2, 10, 2, 1.0, "linear"), 1.0);
        assert_eq!(lr_at(6, 10, 2, 1.0, "linear"), 0.5);
        assert_eq!(lr_at(7, 10, 2, 1.0, "constant"), 1.0);
    }
}
