//! The pieces the encoders share: zero-initialised layers under Hugging Face key names, the
//! real-token bookkeeping ([`Tokens`]), the padding mask, scaled dot-product attention on the real
//! tokens ([`attend`]), activations.
//!
//! Every variable is created as zeros; the loader fills it from a checkpoint or a seeded
//! initialisation.

use super::config::HiddenAct;
use super::dropout::dropout;
use tch::nn;
use tch::{Device, Kind, Tensor};

const ZEROS: nn::Init = nn::Init::Const(0.0);

pub(super) fn linear(vs: nn::Path, in_dim: i64, out_dim: i64) -> nn::Linear {
    linear_with(vs, in_dim, out_dim, true)
}

/// A linear layer, with or without bias (ModernBERT's have none by default).
pub(super) fn linear_with(vs: nn::Path, in_dim: i64, out_dim: i64, bias: bool) -> nn::Linear {
    nn::linear(
        vs,
        in_dim,
        out_dim,
        nn::LinearConfig {
            ws_init: ZEROS,
            bs_init: bias.then_some(ZEROS),
            bias,
        },
    )
}

pub(super) fn embedding(
    vs: nn::Path,
    rows: i64,
    dim: i64,
    padding_idx: Option<i64>,
) -> nn::Embedding {
    nn::embedding(
        vs,
        rows,
        dim,
        nn::EmbeddingConfig {
            ws_init: ZEROS,
            padding_idx: padding_idx.unwrap_or(-1),
            ..Default::default()
        },
    )
}

pub(super) fn layer_norm(vs: nn::Path, dim: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(
        vs,
        vec![dim],
        nn::LayerNormConfig {
            eps,
            ws_init: nn::Init::Const(1.0),
            bs_init: ZEROS,
            ..Default::default()
        },
    )
}

/// The most negative finite value of a floating dtype (`torch.finfo(dtype).min`), the additive
/// mask value transformers uses for padding positions.
pub fn finfo_min(kind: Kind) -> f64 {
    match kind {
        Kind::Half => -65504.0,
        Kind::BFloat16 => -3.3895313892515355e38,
        Kind::Double => f64::MIN,
        _ => f32::MIN as f64,
    }
}

/// The real (unpadded) tokens of a batch. Every position-wise module — projections, feed-forward,
/// LayerNorm, dropout — runs on the `N` real tokens only (`[N, ·]`, N = Σ lengths), not on the
/// `B × T` padded grid: with SimCSE's Wikipedia sentences at max_len 32 a third of the grid is
/// padding, and its products were computed only to be masked out. Attention, the one operation
/// that mixes positions, scatters its projections back onto the grid and masks padded keys as
/// before, so a real token's states are those of the padded computation (up to summation order).
pub(super) struct Tokens {
    pub(super) b: i64,
    pub(super) t: i64,
    /// Flat `[B·T]` indices of the real tokens; `None` when nothing is padded.
    pub(super) index: Option<Tensor>,
}

impl Tokens {
    /// The tokens of a `[B, T]` batch whose real positions `index` names (flat, row-major),
    /// built with the batch on the host (`None`: nothing padded).
    pub(super) fn new(attention_mask: &Tensor, index: Option<&Tensor>) -> Self {
        let (b, t) = attention_mask
            .size2()
            .expect("attention_mask must be [batch, tokens]");
        Self {
            b,
            t,
            index: index.map(Tensor::shallow_clone),
        }
    }

    /// `[B, T, …]` → `[N, …]`: the rows of the real tokens.
    pub(super) fn select(&self, x: &Tensor) -> Tensor {
        let mut shape = vec![self.b * self.t];
        shape.extend_from_slice(&x.size()[2..]);
        let flat = x.reshape(shape.as_slice());
        match &self.index {
            Some(i) => flat.index_select(0, i),
            None => flat,
        }
    }

    /// `[N, H]` → `[B, T, H]`, zeros at padding.
    pub(super) fn scatter(&self, x: &Tensor) -> Tensor {
        let h = x.size()[1];
        let grid = match &self.index {
            Some(i) => {
                Tensor::zeros([self.b * self.t, h], (x.kind(), x.device())).index_copy(0, i, x)
            }
            None => x.shallow_clone(),
        };
        grid.view([self.b, self.t, h])
    }
}

/// The additive attention mask, `[B, 1, 1, T]`: 0 where attended, the dtype's min at padding.
pub(super) struct AttentionMask {
    /// 1 at padding, 0 elsewhere, in the embedding dtype.
    inverted: Tensor,
    /// `inverted * finfo(kind).min`, built for the dtype of the first query seen.
    additive: Tensor,
}

impl AttentionMask {
    pub(super) fn new(attention_mask: &Tensor, kind: Kind) -> Self {
        let (b, t) = attention_mask
            .size2()
            .expect("attention_mask must be [batch, tokens]");
        let inverted = attention_mask
            .to_kind(kind)
            .neg()
            .g_add_scalar(1.0)
            .reshape([b, 1, 1, t]);
        let additive = &inverted * finfo_min(kind);
        Self { inverted, additive }
    }

    /// This mask with the keys farther than `half` positions from the query masked too
    /// (ModernBERT's local layers: `[B, 1, T, T]`); the mask itself when the window covers every
    /// position.
    pub(super) fn window(&self, half: i64) -> Self {
        let size = self.inverted.size();
        let (b, t) = (size[0], size[3]);
        if half >= t - 1 {
            return Self {
                inverted: self.inverted.shallow_clone(),
                additive: self.additive.shallow_clone(),
            };
        }
        let pos = Tensor::arange(t, (Kind::Int64, self.inverted.device()));
        let outside = (pos.unsqueeze(0) - pos.unsqueeze(1))
            .abs()
            .gt(half)
            .view([1, 1, t, t]);
        let inverted = self
            .inverted
            .expand([b, 1, t, t], false)
            .masked_fill(&outside, 1.0);
        let additive = &inverted * finfo_min(inverted.kind());
        Self { inverted, additive }
    }

    /// The mask in the dtype of `q` (under autocast the queries may be half precision).
    pub(super) fn for_query(&self, q: &Tensor) -> Tensor {
        if q.kind() == self.additive.kind() {
            self.additive.shallow_clone()
        } else {
            self.inverted.to_kind(q.kind()) * finfo_min(q.kind())
        }
    }
}

/// Scaled dot-product attention as libtorch's `_scaled_dot_product_attention_math`: queries and
/// keys each scaled by `d^-1/4`, additive mask, softmax, dropout on the probabilities.
pub(super) fn attention_math(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, p: f64) -> Tensor {
    let d = q.size()[3] as f64;
    let s = d.powf(-0.25);
    let scores = (q * s).matmul(&(k.transpose(-2, -1) * s)) + mask;
    let probs = scores.softmax(-1, scores.kind());
    dropout(&probs, p, true).matmul(v)
}

/// Apply a feed-forward activation.
pub fn activation(x: &Tensor, act: HiddenAct) -> Tensor {
    match act {
        HiddenAct::Gelu => x.gelu("none"),
        HiddenAct::GeluNew | HiddenAct::GeluPytorchTanh => x.gelu("tanh"),
        HiddenAct::Relu => x.relu(),
        HiddenAct::Silu => x.silu(),
    }
}

/// LayerNorm whose bias may be absent (ModernBERT's `norm_bias = false`): `weight` (ones) and,
/// when `bias`, `bias` (zeros) under `vs`.
#[derive(Debug)]
pub(super) struct Norm {
    weight: Tensor,
    bias: Option<Tensor>,
    dim: i64,
    eps: f64,
}

impl Norm {
    pub(super) fn new(vs: nn::Path, dim: i64, eps: f64, bias: bool) -> Self {
        Self {
            weight: vs.var("weight", &[dim], nn::Init::Const(1.0)),
            bias: bias.then(|| vs.var("bias", &[dim], ZEROS)),
            dim,
            eps,
        }
    }

    pub(super) fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm(
            [self.dim],
            Some(&self.weight),
            self.bias.as_ref(),
            self.eps,
            true,
        )
    }
}

/// Run `layers` in turn from the real tokens' embeddings `x` (`[N, H]`): returns every input of a
/// layer on the `[B, T, H]` grid (hidden states `0 … L − 1`, zeros at padding) and the last
/// layer's output on the real tokens (the caller adds it as state `L`, after a final norm where
/// the architecture has one).
pub(super) fn layer_states<L>(
    tokens: &Tokens,
    mut x: Tensor,
    layers: &[L],
    mut forward: impl FnMut(&L, &Tensor) -> Tensor,
) -> (Vec<Tensor>, Tensor) {
    let mut hidden = Vec::with_capacity(layers.len() + 1);
    for layer in layers {
        let next = forward(layer, &x);
        hidden.push(tokens.scatter(&x));
        x = next;
    }
    (hidden, x)
}

/// Multi-head scaled dot-product attention over the real tokens: `q`, `k`, `v` are `[N, H]`
/// projections of the real tokens, scattered onto the `[B, heads, T, d]` grid; `mask` (padding,
/// and the sliding window where there is one) plus `bias` (`[1, heads, T, T]`, MPNet's relative
/// positions) is added to the scores; `p` is the dropout on the probabilities (0 outside training).
/// Returns the `[N, H]` context of the real tokens.
#[allow(clippy::too_many_arguments)]
pub(super) fn attend(
    tokens: &Tokens,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    num_heads: i64,
    mask: &AttentionMask,
    bias: Option<&Tensor>,
    p: f64,
) -> Tensor {
    let (b, t) = (tokens.b, tokens.t);
    let h = q.size()[1];
    let heads = |x: &Tensor| {
        tokens
            .scatter(x)
            .view([b, t, num_heads, h / num_heads])
            .transpose(1, 2)
    };
    let (q, k, v) = (heads(q), heads(k), heads(v));
    let m = mask.for_query(&q);
    let m = match bias {
        Some(bias) => m + bias.to_kind(q.kind()),
        None => m,
    };
    let mask = &m;
    let ctx = if p > 0.0 && q.device() == Device::Cpu {
        // libtorch's SDPA takes its math path on the CPU whenever dropout is on; the same
        // arithmetic here, with the attention dropout drawn in parallel (see `dropout`).
        attention_math(&q, &k, &v, mask, p)
    } else {
        Tensor::scaled_dot_product_attention(&q, &k, &v, Some(mask), p, false, None, false)
    };
    tokens.select(&ctx.transpose(1, 2).reshape([b, t, h]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_math_is_libtorchs_sdpa_without_dropout() {
        let _rng = super::super::tests::rng_lock();
        tch::manual_seed(3);
        let opts = (Kind::Float, Device::Cpu);
        let (q, k, v) = (
            Tensor::randn([2, 3, 5, 8], opts),
            Tensor::randn([2, 3, 5, 8], opts),
            Tensor::randn([2, 3, 5, 8], opts),
        );
        let lengths = Tensor::from_slice2(&[[1i64, 1, 1, 1, 1], [1, 1, 1, 0, 0]]);
        let mask = AttentionMask::new(&lengths, Kind::Float);
        let m = mask.for_query(&q);
        let ours = attention_math(&q, &k, &v, &m, 0.0);
        let sdpa =
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(&m), 0.0, false, None, false);
        let d = (&ours - &sdpa).abs().max().double_value(&[]);
        assert!(d < 1e-6, "max |Δ| {d}");
        // With dropout on, the probabilities are masked: a different output of the same shape.
        let drop = attention_math(&q, &k, &v, &m, 0.5);
        assert_eq!(drop.size(), ours.size());
        assert!(!drop.equal(&ours));
    }

    #[test]
    fn padded_positions_are_never_computed() {
        let b = super::super::EncodedBatch::from_host(
            &[7; 6],
            &[1, 1, 0, 1, 1, 1],
            [2, 3],
            Device::Cpu,
        );
        let tokens = Tokens::new(&b.attention_mask, b.real.as_ref());
        assert_eq!(
            Vec::<i64>::try_from(tokens.index.as_ref().unwrap()).unwrap(),
            [0, 1, 3, 4, 5]
        );
        // The host-built index is the mask's nonzero positions.
        let from_mask = b.attention_mask.reshape([-1]).nonzero().squeeze_dim(1);
        assert!(from_mask.equal(b.real.as_ref().unwrap()));
        let x = Tensor::arange(18, (Kind::Float, Device::Cpu)).view([2, 3, 3]);
        let real = tokens.select(&x);
        assert_eq!(real.size(), [5, 3]);
        let back = tokens.scatter(&real);
        let expect = x.copy().index_put_(
            &[Some(Tensor::from(0i64)), Some(Tensor::from(2i64))],
            &Tensor::from(0f32),
            false,
        );
        assert!(
            back.equal(&expect),
            "real rows back in place, zeros at padding"
        );
        // Nothing padded: no index, no copies.
        let all = super::super::EncodedBatch::from_host(&[7; 6], &[1; 6], [2, 3], Device::Cpu);
        assert!(all.real.is_none());
        let full = Tokens::new(&all.attention_mask, all.real.as_ref());
        assert!(full.index.is_none());
        assert!(full.scatter(&full.select(&x)).equal(&x));
    }
}
