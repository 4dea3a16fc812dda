//! The BERT encoder (also RoBERTa / XLM-R, which share its layout), one small struct per module.
//!
//! Variables are created under `nn::Path` sub-paths that spell Hugging Face's key names
//! (`embeddings.word_embeddings.weight`, `encoder.layer.3.attention.self.query.bias`, …), so a
//! checkpoint's tensors map onto the [`tch::nn::VarStore`] by name, without a renaming table.
//! Every variable is created as zeros; the loader fills it from a checkpoint or a seeded
//! initialisation.

use super::config::{BertConfig, HiddenAct};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

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

    /// `[B, T]` ids → `[B, T, H]`; token types are all 0.
    pub fn forward_t(&self, input_ids: &Tensor, train: bool) -> Tensor {
        let (b, t) = input_ids
            .size2()
            .expect("input_ids must be [batch, tokens]");
        let position_ids = match self.roberta_padding_idx {
            Some(pad) => {
                let mask = input_ids.ne(pad).to_kind(Kind::Int64);
                mask.cumsum(1, Kind::Int64) * &mask + pad
            }
            None => Tensor::arange(t, (Kind::Int64, input_ids.device()))
                .unsqueeze(0)
                .expand([b, t], false),
        };
        let token_type_ids = input_ids.zeros_like();
        let x = self.word_embeddings.forward(input_ids)
            + self.token_type_embeddings.forward(&token_type_ids);
        let x = x + self.position_embeddings.forward(&position_ids);
        self.layer_norm.forward(&x).dropout(self.dropout, train)
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

    fn forward_t(&self, x: &Tensor, mask: &AttentionMask, train: bool) -> Tensor {
        let (b, t, h) = x
            .size3()
            .expect("hidden states must be [batch, tokens, hidden]");
        let q = self.heads(&self.query.forward(x), b, t);
        let k = self.heads(&self.key.forward(x), b, t);
        let v = self.heads(&self.value.forward(x), b, t);
        let m = mask.for_query(&q);
        let p = if train { self.dropout } else { 0.0 };
        let ctx = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(m), p, false, None, false);
        ctx.transpose(1, 2).contiguous().view([b, t, h])
    }
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
        let y = self.dense.forward(x).dropout(self.dropout, train);
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

    fn forward_t(&self, x: &Tensor, mask: &AttentionMask, train: bool) -> Tensor {
        let a = self.attention.forward_t(x, mask, train);
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
    /// index `L` the last layer; each `[B, T, H]`. `input_ids` and `attention_mask` are `[B, T]`
    /// integer tensors on the model's device (mask 1 = token, 0 = padding). Dropout (embeddings,
    /// attention probabilities, hidden) is active only when `train`.
    ///
    /// Panics (as tch does) if the tensors are malformed or `T` exceeds the position embeddings;
    /// [`super::LoadedModel::check_max_len`] validates user-supplied lengths beforehand.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Vec<Tensor> {
        let x = self.embeddings.forward_t(input_ids, train);
        let mask = AttentionMask::new(attention_mask, x.kind());
        let mut hidden = Vec::with_capacity(self.layers.len() + 1);
        hidden.push(x);
        for layer in &self.layers {
            let next = layer.forward_t(hidden.last().expect("starts non-empty"), &mask, train);
            hidden.push(next);
        }
        hidden
    }

    /// BERT's own pooler output: `tanh(dense(h[:, 0]))` of the last hidden state.
    pub fn pooler_output(&self, last_hidden: &Tensor) -> Tensor {
        self.pooler.forward(&last_hidden.select(1, 0)).tanh()
    }
}
