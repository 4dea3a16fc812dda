//! The BERT encoder (also RoBERTa / XLM-R, which share its layout), one small struct per module.
//!
//! Variables are created under `nn::Path` sub-paths that spell Hugging Face's key names
//! (`embeddings.word_embeddings.weight`, `encoder.layer.3.attention.self.query.bias`, …), so a
//! checkpoint's tensors map onto the [`tch::nn::VarStore`] by name, without a renaming table.
//! Every variable is created as zeros; the loader fills it from a checkpoint or a seeded
//! initialisation.

use super::config::{BertConfig, HiddenAct};
use super::dropout::dropout;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

const ZEROS: nn::Init = nn::Init::Const(0.0);

fn linear(vs: nn::Path, in_dim: i64, out_dim: i64) -> nn::Linear {
    nn::linear(
        vs,
        in_dim,
        out_dim,
        nn::LinearConfig {
            ws_init: ZEROS,
            bs_init: Some(ZEROS),
            bias: true,
        },
    )
}

fn embedding(vs: nn::Path, rows: i64, dim: i64, padding_idx: Option<i64>) -> nn::Embedding {
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

fn layer_norm(vs: nn::Path, dim: i64, eps: f64) -> nn::LayerNorm {
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

/// Word + token-type + position embeddings, LayerNorm, dropout.
#[derive(Debug)]
pub struct BertEmbeddings {
    word_embeddings: nn::Embedding,
    position_embeddings: nn::Embedding,
    token_type_embeddings: nn::Embedding,
    layer_norm: nn::LayerNorm,
    dropout: f64,
    /// RoBERTa's padding index: positions are `padding_idx + cumsum(ids != pad) * (ids != pad)`.
    roberta_padding_idx: Option<i64>,
}

impl BertEmbeddings {
    fn new(vs: nn::Path, c: &BertConfig) -> Self {
        let roberta_padding_idx = c.model_type.roberta_positions().then(|| c.pad_id());
        Self {
            word_embeddings: embedding(
                &vs / "word_embeddings",
                c.vocab_size,
                c.hidden_size,
                Some(c.pad_id()),
            ),
            position_embeddings: embedding(
                &vs / "position_embeddings",
                c.max_position_embeddings,
                c.hidden_size,
                roberta_padding_idx,
            ),
            token_type_embeddings: embedding(
                &vs / "token_type_embeddings",
                c.type_vocab_size,
                c.hidden_size,
                None,
            ),
            layer_norm: layer_norm(&vs / "LayerNorm", c.hidden_size, c.layer_norm_eps),
            dropout: c.hidden_dropout_prob,
            roberta_padding_idx,
        }
    }

    /// `[B, T]` ids → `[N, H]`, the embeddings of the real tokens (`tokens`); token types are 0.
    fn forward_t(&self, input_ids: &Tensor, tokens: &Tokens, train: bool) -> Tensor {
        let (b, t) = (tokens.b, tokens.t);
        let position_ids = match self.roberta_padding_idx {
            Some(pad) => {
                let mask = input_ids.ne(pad).to_kind(Kind::Int64);
                mask.cumsum(1, Kind::Int64) * &mask + pad
            }
            None => Tensor::arange(t, (Kind::Int64, input_ids.device()))
                .unsqueeze(0)
                .expand([b, t], false),
        };
        let ids = tokens.select(input_ids);
        let position_ids = tokens.select(&position_ids);
        let x = self.word_embeddings.forward(&ids)
            + self.token_type_embeddings.forward(&ids.zeros_like());
        let x = x + self.position_embeddings.forward(&position_ids);
        dropout(&self.layer_norm.forward(&x), self.dropout, train)
    }
}

/// The real (unpadded) tokens of a batch. Every position-wise module — projections, feed-forward,
/// LayerNorm, dropout — runs on the `N` real tokens only (`[N, ·]`, N = Σ lengths), not on the
/// `B × T` padded grid: with SimCSE's Wikipedia sentences at max_len 32 a third of the grid is
/// padding, and its products were computed only to be masked out. Attention, the one operation
/// that mixes positions, scatters its projections back onto the grid and masks padded keys as
/// before, so a real token's states are those of the padded computation (up to summation order).
struct Tokens {
    b: i64,
    t: i64,
    /// Flat `[B·T]` indices of the real tokens; `None` when nothing is padded.
    index: Option<Tensor>,
}

impl Tokens {
    /// The tokens of a `[B, T]` batch whose real positions `index` names (flat, row-major),
    /// built with the batch on the host (`None`: nothing padded).
    fn new(attention_mask: &Tensor, index: Option<&Tensor>) -> Self {
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
    fn select(&self, x: &Tensor) -> Tensor {
        let mut shape = vec![self.b * self.t];
        shape.extend_from_slice(&x.size()[2..]);
        let flat = x.reshape(shape.as_slice());
        match &self.index {
            Some(i) => flat.index_select(0, i),
            None => flat,
        }
    }

    /// `[N, H]` → `[B, T, H]`, zeros at padding.
    fn scatter(&self, x: &Tensor) -> Tensor {
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
struct AttentionMask {
    /// 1 at padding, 0 elsewhere, in the embedding dtype.
    inverted: Tensor,
    /// `inverted * finfo(kind).min`, built for the dtype of the first query seen.
    additive: Tensor,
}

impl AttentionMask {
    fn new(attention_mask: &Tensor, kind: Kind) -> Self {
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

    /// The mask in the dtype of `q` (under autocast the queries may be half precision).
    fn for_query(&self, q: &Tensor) -> Tensor {
        if q.kind() == self.additive.kind() {
            self.additive.shallow_clone()
        } else {
            self.inverted.to_kind(q.kind()) * finfo_min(q.kind())
        }
    }
}

/// Multi-head self-attention (`attention.self`): query/key/value projections and scaled
/// dot-product attention with dropout on the probabilities.
#[derive(Debug)]
pub struct BertSelfAttention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    num_heads: i64,
    head_size: i64,
    dropout: f64,
}

impl BertSelfAttention {
    fn new(vs: nn::Path, c: &BertConfig) -> Self {
        let h = c.hidden_size;
        Self {
            query: linear(&vs / "query", h, h),
            key: linear(&vs / "key", h, h),
            value: linear(&vs / "value", h, h),
            num_heads: c.num_attention_heads,
            head_size: c.head_size(),
            dropout: c.attention_probs_dropout_prob,
        }
    }

    fn heads(&self, x: &Tensor, b: i64, t: i64) -> Tensor {
        x.view([b, t, self.num_heads, self.head_size])
            .transpose(1, 2)
    }

    /// `[N, H]` real tokens → `[N, H]` attention outputs.
    fn forward_t(&self, x: &Tensor, tokens: &Tokens, mask: &AttentionMask, train: bool) -> Tensor {
        let (b, t) = (tokens.b, tokens.t);
        let h = x.size()[1];
        let q = self.heads(&tokens.scatter(&self.query.forward(x)), b, t);
        let k = self.heads(&tokens.scatter(&self.key.forward(x)), b, t);
        let v = self.heads(&tokens.scatter(&self.value.forward(x)), b, t);
        let m = mask.for_query(&q);
        let p = if train { self.dropout } else { 0.0 };
        let ctx = if p > 0.0 && x.device() == Device::Cpu {
            // libtorch's SDPA takes its math path on the CPU whenever dropout is on; the same
            // arithmetic here, with the attention dropout drawn in parallel (see `dropout`).
            attention_math(&q, &k, &v, &m, p)
        } else {
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(m), p, false, None, false)
        };
        tokens.select(&ctx.transpose(1, 2).reshape([b, t, h]))
    }
}

/// Scaled dot-product attention as libtorch's `_scaled_dot_product_attention_math`: queries and
/// keys each scaled by `d^-1/4`, additive mask, softmax, dropout on the probabilities.
fn attention_math(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, p: f64) -> Tensor {
    let d = q.size()[3] as f64;
    let s = d.powf(-0.25);
    let scores = (q * s).matmul(&(k.transpose(-2, -1) * s)) + mask;
    let probs = scores.softmax(-1, scores.kind());
    dropout(&probs, p, true).matmul(v)
}

/// Dense, dropout, residual, LayerNorm: `attention.output` and a layer's `output`.
#[derive(Debug)]
pub struct BertResidual {
    dense: nn::Linear,
    layer_norm: nn::LayerNorm,
    dropout: f64,
}

impl BertResidual {
    fn new(vs: nn::Path, in_dim: i64, c: &BertConfig) -> Self {
        Self {
            dense: linear(&vs / "dense", in_dim, c.hidden_size),
            layer_norm: layer_norm(&vs / "LayerNorm", c.hidden_size, c.layer_norm_eps),
            dropout: c.hidden_dropout_prob,
        }
    }

    fn forward_t(&self, x: &Tensor, residual: &Tensor, train: bool) -> Tensor {
        let y = dropout(&self.dense.forward(x), self.dropout, train);
        self.layer_norm.forward(&(y + residual))
    }
}

/// One transformer layer (`encoder.layer.{i}`).
#[derive(Debug)]
pub struct BertLayer {
    attention: BertSelfAttention,
    attention_output: BertResidual,
    intermediate: nn::Linear,
    output: BertResidual,
    act: HiddenAct,
}

impl BertLayer {
    fn new(vs: nn::Path, c: &BertConfig) -> Self {
        let att = &vs / "attention";
        Self {
            attention: BertSelfAttention::new(&att / "self", c),
            attention_output: BertResidual::new(&att / "output", c.hidden_size, c),
            intermediate: linear(
                &vs / "intermediate" / "dense",
                c.hidden_size,
                c.intermediate_size,
            ),
            output: BertResidual::new(&vs / "output", c.intermediate_size, c),
            act: c.hidden_act,
        }
    }

    fn forward_t(&self, x: &Tensor, tokens: &Tokens, mask: &AttentionMask, train: bool) -> Tensor {
        let a = self.attention.forward_t(x, tokens, mask, train);
        let a = self.attention_output.forward_t(&a, x, train);
        let i = activation(&self.intermediate.forward(&a), self.act);
        self.output.forward_t(&i, &a, train)
    }
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

/// The encoder: embeddings, `num_hidden_layers` layers, and BERT's pooler (`pooler.dense`, kept so
/// checkpoints round-trip; SimCSE's poolers do not use it).
#[derive(Debug)]
pub struct BertModel {
    embeddings: BertEmbeddings,
    layers: Vec<BertLayer>,
    pooler: nn::Linear,
}

impl BertModel {
    /// Create the variables under `vs` with transformers' key names (all zeros until loaded or
    /// initialised).
    pub fn new(vs: &nn::Path, c: &BertConfig) -> Self {
        let embeddings = BertEmbeddings::new(vs / "embeddings", c);
        let enc = vs / "encoder" / "layer";
        let layers = (0..c.num_hidden_layers)
            .map(|i| BertLayer::new(&enc / i, c))
            .collect();
        let pooler = linear(vs / "pooler" / "dense", c.hidden_size, c.hidden_size);
        Self {
            embeddings,
            layers,
            pooler,
        }
    }

    /// Number of transformer layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// All hidden states, as transformers' `output_hidden_states`: index 0 the embedding output,
    /// index `L` the last layer; each `[B, T, H]`, zeros at padding (transformers leaves values
    /// there that every pooling masks out; here padded positions are never computed, see
    /// [`Tokens`]). `input_ids` and `attention_mask` are `[B, T]` integer tensors on the model's
    /// device (mask 1 = token, 0 = padding). Dropout (embeddings, attention probabilities,
    /// hidden) is active only when `train`.
    ///
    /// Panics (as tch does) if the tensors are malformed or `T` exceeds the position embeddings;
    /// [`super::LoadedModel::check_max_len`] validates user-supplied lengths beforehand.
    ///
    /// `real`: the flat `[N]` indices of the real tokens in the `B·T` grid, as
    /// [`super::EncodedBatch`] builds them on the host (`None`: nothing is padded). They are
    /// never derived from the mask here, which on CUDA would wait for the device.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        real: Option<&Tensor>,
        train: bool,
    ) -> Vec<Tensor> {
        let tokens = Tokens::new(attention_mask, real);
        let mut x = self.embeddings.forward_t(input_ids, &tokens, train);
        let mask = AttentionMask::new(attention_mask, x.kind());
        let mut hidden = Vec::with_capacity(self.layers.len() + 1);
        for layer in &self.layers {
            let next = layer.forward_t(&x, &tokens, &mask, train);
            hidden.push(tokens.scatter(&x));
            x = next;
        }
        hidden.push(tokens.scatter(&x));
        hidden
    }

    /// BERT's own pooler output: `tanh(dense(h[:, 0]))` of the last hidden state.
    pub fn pooler_output(&self, last_hidden: &Tensor) -> Tensor {
        self.pooler.forward(&last_hidden.select(1, 0)).tanh()
    }
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
