//! AdamW (torch.optim.AdamW semantics, HF Trainer's parameter groups) over one flat parameter buffer,
//! global-norm gradient clipping, and the learning-rate schedules.
//!
//! Every trainable variable is re-pointed (`set_data`) at a slice of one contiguous f32 buffer, so an
//! optimizer step is a handful of kernels over the whole model instead of several per parameter. The
//! gradients get the same treatment after the first backward pass: each becomes a view of one flat
//! gradient buffer that backward accumulates into in place, so reading all gradients is free and
//! zeroing them is one kernel. On the CPU the whole update (clipping, decay, both moments, the
//! parameter step) is one parallel pass over the flat buffers — read g, p, m, v, write p, m, v — where
//! libtorch's kernels would make ten passes; elsewhere it runs as libtorch kernels in place with one
//! persistent scratch buffer (no full-size temporaries are allocated per step).

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

pub struct FlatAdamW {
    params: Vec<Tensor>,
    numels: Vec<i64>,
    flat: Tensor,
    /// Per element: the weight decay (0 for biases and LayerNorm parameters).
    decay: Tensor,
    /// Whether any element decays (the decay pass is skipped otherwise).
    any_decay: bool,
    m: Tensor,
    v: Tensor,
    /// The flat gradient buffer (created at the first step) and the parameters whose gradients are
    /// not views of it yet (no gradient so far).
    grad: Option<Tensor>,
    unbound: Vec<usize>,
    offsets: Vec<i64>,
    /// Scratch space of the update, the size of the parameters.
    scratch: Option<Tensor>,
    step: i64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

/// HF Trainer's rule (`Trainer.get_decay_parameter_names`): no weight decay for the parameters of
/// normalisation layers (BERT's `LayerNorm`, DistilBERT's `sa_layer_norm` / `output_layer_norm`,
/// ModernBERT's `norm`, `attn_norm`, `mlp_norm`, `final_norm`: [`crate::model::is_norm`]) nor for
/// any whose lower-cased name contains `bias`, `layernorm` or `rmsnorm` (so MPNet's
/// `relative_attention_bias` is not decayed either).
pub fn decays(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !(["bias", "layernorm", "rmsnorm"]
        .iter()
        .any(|p| lower.contains(p))
        || crate::model::is_norm(name))
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
        let offsets = numels
            .iter()
            .scan(0i64, |o, k| {
                let at = *o;
                *o += k;
                Some(at)
            })
            .collect();
        let any_decay = weight_decay != 0.0;
        FlatAdamW {
            unbound: (0..params.len()).collect(),
            params,
            numels,
            offsets,
            grad: None,
            scratch: None,
            any_decay,
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

    /// All gradients as one flat tensor (zeros where a parameter got none): the flat gradient
    /// buffer itself, which the parameters' gradients are views of (changing it changes them).
    pub fn flat_grad(&mut self) -> Tensor {
        let buf = self
            .grad
            .get_or_insert_with(|| self.flat.zeros_like())
            .shallow_clone();
        if !self.unbound.is_empty() {
            tch::no_grad(|| {
                self.unbound.retain(|&i| {
                    let mut g = self.params[i].grad();
                    if !g.defined() {
                        return true;
                    }
                    let slice = buf.narrow(0, self.offsets[i], self.numels[i]);
                    slice
                        .shallow_clone()
                        .copy_(&g.to_kind(Kind::Float).flatten(0, -1));
                    g.set_data(&slice.view(self.params[i].size().as_slice()));
                    false
                });
            });
        }
        buf
    }

    /// One update at learning rate `lr`, clipping the global gradient norm to `max_grad_norm`
    /// (0 = no clipping). Returns the gradient's global L2 norm before clipping, on the device
    /// (no synchronisation here).
    pub fn step(&mut self, lr: f64, max_grad_norm: f64) -> Tensor {
        let fused = self.flat.device() == Device::Cpu;
        self.step_with(lr, max_grad_norm, fused)
    }

    /// [`Self::step`] with the update fused into one pass (`fused`, CPU only) or as libtorch kernels.
    fn step_with(&mut self, lr: f64, max_grad_norm: f64, fused: bool) -> Tensor {
        let mut g = self.flat_grad();
        tch::no_grad(|| {
            let norm = g.norm();
            self.step += 1;
            let t = self.step as f64;
            let bc1 = 1.0 - self.beta1.powf(t);
            let bc2 = 1.0 - self.beta2.powf(t);
            if fused {
                // torch.nn.utils.clip_grad_norm_'s coefficient, read on the host (free on the CPU).
                let coef = if max_grad_norm > 0.0 {
                    (max_grad_norm / (norm.double_value(&[]) + 1e-6)).min(1.0)
                } else {
                    1.0
                };
                let h = Hyper {
                    coef: coef as f32,
                    lr: lr as f32,
                    one_minus_beta1: (1.0 - self.beta1) as f32,
                    beta2: self.beta2 as f32,
                    one_minus_beta2: (1.0 - self.beta2) as f32,
                    step_size: (lr / bc1) as f32,
                    bc2_sqrt: bc2.sqrt() as f32,
                    eps: self.eps as f32,
                };
                let decay = self.any_decay.then_some(&self.decay);
                fused_update(&self.flat, &g, &self.m, &self.v, decay, &h);
                return norm;
            }
            if max_grad_norm > 0.0 {
                // torch.nn.utils.clip_grad_norm_: scale by max / (norm + 1e-6) when that is below 1.
                let coef = (norm.shallow_clone() + 1e-6)
                    .reciprocal()
                    .multiply_scalar(max_grad_norm)
                    .clamp_max(1.0);
                g *= coef;
            }
            // Decoupled weight decay: p ← p − lr·wd·p (per element: wd is 0 for the excluded groups).
            if self.any_decay && lr != 0.0 {
                let _ = self
                    .flat
                    .addcmul_(&self.flat.shallow_clone(), &(&self.decay * (-lr)));
            }
            let scratch = self
                .scratch
                .get_or_insert_with(|| self.flat.empty_like())
                .shallow_clone();
            // m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²  (lerp towards g and g²).
            let _ = self.m.lerp_(&g, 1.0 - self.beta1);
            let _ = g.mul_out(&scratch, &g);
            let _ = self.v.lerp_(&scratch, 1.0 - self.beta2);
            if lr != 0.0 {
                // p ← p − lr/bc1 · m / (√v/√bc2 + ε), as p + m / d with d = (√v/√bc2 + ε)·(−bc1/lr).
                let k = -bc1 / lr;
                let _ = self.v.sqrt_out(&scratch);
                let _ = scratch
                    .shallow_clone()
                    .multiply_scalar_(k / bc2.sqrt())
                    .g_add_scalar_(self.eps * k);
                let _ = self.flat.addcdiv_(&self.m, &scratch);
            }
            norm
        })
    }

    /// Multiply every gradient by `factor` (unscaling after fp16 loss scaling).
    pub fn scale_grads(&mut self, factor: f64) {
        let g = self.flat_grad();
        tch::no_grad(|| {
            let _ = g.shallow_clone().multiply_scalar_(factor);
        });
    }

    /// Zero every gradient (one kernel over the flat gradient buffer).
    pub fn zero_grad(&mut self) {
        let g = self.flat_grad();
        tch::no_grad(|| {
            let _ = g.shallow_clone().zero_();
        });
    }
}

/// The scalars of one AdamW update, in f32 as libtorch applies them to f32 tensors.
struct Hyper {
    /// Clipping coefficient (1 when the norm is within bounds).
    coef: f32,
    lr: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    /// lr / (1 − β1^t).
    step_size: f32,
    /// √(1 − β2^t).
    bc2_sqrt: f32,
    eps: f32,
}

/// Elements per parallel task of the fused update.
const UPDATE_CHUNK: usize = 1 << 16;

/// The AdamW update in one pass over contiguous f32 CPU buffers of equal length, per element in
/// torch.optim.AdamW's order: `g ← coef·g`; `p ← p·(1 − lr·wd)`; `m ← lerp(m, g, 1 − β1)`;
/// `v ← β2·v + (1 − β2)·g²`; `p ← p − step_size · m / (√v / √bc2 + ε)`. `g` is read, not written.
fn fused_update(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, decay: Option<&Tensor>, h: &Hyper) {
    let n = p.numel();
    for t in [g, m, v].into_iter().chain(decay) {
        assert!(
            t.numel() == n
                && t.is_contiguous()
                && t.kind() == Kind::Float
                && t.device() == Device::Cpu,
            "fused AdamW needs equal contiguous f32 CPU buffers"
        );
    }
    assert!(p.is_contiguous() && p.kind() == Kind::Float && p.device() == Device::Cpu);
    // Addresses, so the parallel tasks can share them; each task touches its own index range.
    let addr = |t: &Tensor| t.data_ptr() as usize;
    let (pa, ga, ma, va) = (addr(p), addr(g), addr(m), addr(v));
    let da = decay.map(addr);
    (0..n.div_ceil(UPDATE_CHUNK)).into_par_iter().for_each(|c| {
        let start = c * UPDATE_CHUNK;
        let len = UPDATE_CHUNK.min(n - start);
        // SAFETY: the four (five) buffers are distinct tensors of `n` f32 elements, alive for
        // this call; tasks cover disjoint ranges [start, start + len).
        let (p, g, m, v) = unsafe {
            (
                std::slice::from_raw_parts_mut((pa as *mut f32).add(start), len),
                std::slice::from_raw_parts((ga as *const f32).add(start), len),
                std::slice::from_raw_parts_mut((ma as *mut f32).add(start), len),
                std::slice::from_raw_parts_mut((va as *mut f32).add(start), len),
            )
        };
        if let Some(da) = da {
            // SAFETY: as above; the decay buffer is only read.
            let d = unsafe { std::slice::from_raw_parts((da as *const f32).add(start), len) };
            for (p, d) in p.iter_mut().zip(d) {
                *p *= 1.0 - h.lr * d;
            }
        }
        let moments = |g: f32, m: &mut f32, v: &mut f32| {
            let g = g * h.coef;
            *m += h.one_minus_beta1 * (g - *m);
            *v = *v * h.beta2 + h.one_minus_beta2 * g * g;
        };
        // Two loops rather than a branch per element, so each vectorises.
        if h.lr == 0.0 {
            for ((g, m), v) in g.iter().zip(m.iter_mut()).zip(v.iter_mut()) {
                moments(*g, m, v);
            }
        } else {
            for (((g, m), v), p) in g
                .iter()
                .zip(m.iter_mut())
                .zip(v.iter_mut())
                .zip(p.iter_mut())
            {
                moments(*g, m, v);
                *p -= h.step_size * *m / (v.sqrt() / h.bc2_sqrt + h.eps);
            }
        }
    });
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
    /// gives every name decay here too by calling them "w*"), with the CPU's fused update and with
    /// the kernel sequence other devices run; with and without clipping.
    #[test]
    fn matches_libtorch_adamw_step_for_step() {
        for (wd, fused, clip) in [
            (0.1, true, false),
            (0.0, true, false),
            (0.1, false, false),
            (0.0, false, false),
            (0.1, true, true),
            (0.1, false, true),
        ] {
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
                wd,
                0.9,
                0.999,
                1e-8,
            );
            let mut theirs = nn::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                wd,
                eps: 1e-8,
                amsgrad: false,
            }
            .build(&vs_b, 1e-2)
            .unwrap();
            for _ in 0..5 {
                ours.zero_grad();
                loss(&wa, &ba, &x).backward();
                let _ = ours.step_with(1e-2, if clip { 0.5 } else { 0.0 }, fused);
                theirs.zero_grad();
                loss(&wb, &bb, &x).backward();
                if clip {
                    theirs.clip_grad_norm(0.5);
                }
                theirs.step();
            }
            let d = (&wa - &wb).abs().max().double_value(&[])
                + (&ba - &bb).abs().max().double_value(&[]);
            assert!(
                d < 1e-6,
                "wd {wd}, fused {fused}, clip {clip}: max |Δ| = {d}"
            );
            // The variables really are views of the flat buffer.
            assert_eq!(ours.numel(), 16);
        }
    }

    #[test]
    fn gradients_become_views_of_the_flat_buffer() {
        let vs = nn::VarStore::new(Device::Cpu);
        let a = vs.root().ones("a", &[2]);
        let b = vs.root().ones("b", &[3]);
        let mut opt = FlatAdamW::new(
            vec![
                ("a".into(), a.shallow_clone()),
                ("b".into(), b.shallow_clone()),
            ],
            0.0,
            0.9,
            0.999,
            1e-8,
        );
        let flat = |opt: &mut FlatAdamW| Vec::<f32>::try_from(&opt.flat_grad()).unwrap();
        (&a * Tensor::from_slice(&[2.0f32, 3.0]))
            .sum(Kind::Float)
            .backward();
        assert_eq!(flat(&mut opt), vec![2.0, 3.0, 0.0, 0.0, 0.0]);
        // Accumulates in place into the buffer.
        (&a * 1.0).sum(Kind::Float).backward();
        assert_eq!(flat(&mut opt), vec![3.0, 4.0, 0.0, 0.0, 0.0]);
        assert_eq!(Vec::<f32>::try_from(&a.grad()).unwrap(), vec![3.0, 4.0]);
        opt.zero_grad();
        assert_eq!(Vec::<f32>::try_from(&a.grad()).unwrap(), vec![0.0, 0.0]);
        // `b` gets its first gradient now.
        ((&a + 1.0).sum(Kind::Float) + (&b * 5.0).sum(Kind::Float)).backward();
        assert_eq!(flat(&mut opt), vec![1.0, 1.0, 5.0, 5.0, 5.0]);
        opt.scale_grads(0.5);
        assert_eq!(
            Vec::<f32>::try_from(&b.grad()).unwrap(),
            vec![2.5, 2.5, 2.5]
        );
        // A step at lr 0 (the first warm-up step) moves nothing and keeps everything finite.
        let before = Vec::<f32>::try_from(&a).unwrap();
        let _ = opt.step(0.0, 1.0);
        assert_eq!(Vec::<f32>::try_from(&a).unwrap(), before);
        let _ = opt.step(1e-2, 1.0);
        let after = Vec::<f32>::try_from(&b).unwrap();
        assert!(after.iter().all(|x| x.is_finite() && *x < 1.0), "{after:?}");
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
        // Every architecture's norms, as HF Trainer's `(^|\.)norm(\.|$)` / `_norm(\.|$)` rule.
        for n in [
            "transformer.layer.0.sa_layer_norm.weight",
            "transformer.layer.5.output_layer_norm.weight",
            "embeddings.norm.weight",
            "layers.3.attn_norm.weight",
            "layers.3.mlp_norm.weight",
            "final_norm.weight",
            "encoder.layer.0.attention.LayerNorm.weight",
            "encoder.relative_attention_bias.weight",
        ] {
            assert!(!decays(n), "{n}");
        }
        for n in [
            "layers.3.mlp.Wi.weight",
            "layers.3.attn.Wo.weight",
            "embeddings.tok_embeddings.weight",
            "transformer.layer.0.ffn.lin1.weight",
        ] {
            assert!(decays(n), "{n}");
        }
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
