//! The BERT encoder (also RoBERTa / XLM-R, which share its layout), one small struct per module.
//!
//! Variables are created under `nn::Path` sub-paths that spell Hugging Face's key names
//! (`embeddings.word_embeddings.weight`, `encoder.layer.3.attention.self.query.bias`, …), so a
//! checkpoint's tensors map onto the [`tch::nn::VarStore`] by name, without a renaming table.
//! Every variable is created as zeros; the loader fills it from a checkpoint or a seeded
//! initialisation. The other architectures reuse its pieces: [`BertResidual`] (MPNet),
//! [`BertEmbeddings`] (DistilBERT, MPNet: no token types).

use super::config::{EncoderConfig, HiddenAct};
use super::dropout::dropout;
use super::layers::{
    activation, attend, embedding, layer_norm, layer_states, linear, AttentionMask, Tokens,
};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Word + token-type + position embeddings, LayerNorm, dropout (BERT, RoBERTa; DistilBERT and
/// MPNet without token types).
#[derive(Debug)]
pub struct BertEmbeddings {
    word_embeddings: nn::Embedding,
    /// `position_embeddings.weight` (not trained with DistilBERT's sinusoidal positions).
    position_embeddings: Tensor,
    token_type_embeddings: Option<nn::Embedding>,
    layer_norm: nn::LayerNorm,
    dropout: f64,
    /// RoBERTa's (and MPNet's) padding index: positions are
    /// `padding_idx + cumsum(ids != pad) * (ids != pad)`.
    roberta_padding_idx: Option<i64>,
}

impl BertEmbeddings {
    pub(super) fn new(vs: nn::Path, c: &EncoderConfig) -> Self {
        let roberta_padding_idx = c.model_type.roberta_positions().then(|| c.padding_idx());
        let positions = &vs / "position_embeddings";
        let shape = [c.max_position_embeddings, c.hidden_size];
        let position_embeddings = if c.sinusoidal_pos_embds {
            positions.zeros_no_train("weight", &shape)
        } else {
            positions.zeros("weight", &shape)
        };
        Self {
            word_embeddings: embedding(
                &vs / "word_embeddings",
                c.vocab_size,
                c.hidden_size,
                Some(c.padding_idx()),
            ),
            position_embeddings,
            token_type_embeddings: c.model_type.token_types().then(|| {
                embedding(
                    &vs / "token_type_embeddings",
                    c.type_vocab_size,
                    c.hidden_size,
                    None,
                )
            }),
            layer_norm: layer_norm(&vs / "LayerNorm", c.hidden_size, c.layer_norm_eps),
            dropout: c.hidden_dropout_prob,
            roberta_padding_idx,
        }
    }

    /// `[B, T]` ids → `[N, H]`, the embeddings of the real tokens (`tokens`); token types are 0.
    pub(super) fn forward_t(&self, input_ids: &Tensor, tokens: &Tokens, train: bool) -> Tensor {
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
        let mut x = self.word_embeddings.forward(&ids);
        if let Some(types) = &self.token_type_embeddings {
            x += types.forward(&ids.zeros_like());
        }
        let pad = self.roberta_padding_idx.unwrap_or(-1);
        let x = x + Tensor::embedding(&self.position_embeddings, &position_ids, pad, false, false);
        dropout(&self.layer_norm.forward(&x), self.dropout, train)
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
    dropout: f64,
}

impl BertSelfAttention {
    fn new(vs: nn::Path, c: &EncoderConfig) -> Self {
        Self::named(&vs, ["query", "key", "value"], c)
    }

    /// With the projections under `vs / names[0..3]` (MPNet's `q`, `k`, `v`).
    fn named(vs: &nn::Path, names: [&str; 3], c: &EncoderConfig) -> Self {
        let h = c.hidden_size;
        Self {
            query: linear(vs / names[0], h, h),
            key: linear(vs / names[1], h, h),
            value: linear(vs / names[2], h, h),
            num_heads: c.num_attention_heads,
            dropout: c.attention_probs_dropout_prob,
        }
    }

    /// `[N, H]` real tokens → `[N, H]` attention outputs; `bias` is MPNet's relative position
    /// bias.
    pub(super) fn forward_t(
        &self,
        x: &Tensor,
        tokens: &Tokens,
        mask: &AttentionMask,
        bias: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        let p = if train { self.dropout } else { 0.0 };
        attend(
            tokens,
            &self.query.forward(x),
            &self.key.forward(x),
            &self.value.forward(x),
            self.num_heads,
            mask,
            bias,
            p,
        )
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
    fn new(vs: nn::Path, in_dim: i64, c: &EncoderConfig) -> Self {
        Self::at(&vs / "dense", &vs / "LayerNorm", in_dim, c)
    }

    /// With the dense layer and the LayerNorm at their own paths (MPNet's `attention.attn.o` and
    /// `attention.LayerNorm`).
    fn at(dense: nn::Path, norm: nn::Path, in_dim: i64, c: &EncoderConfig) -> Self {
        Self {
            dense: linear(dense, in_dim, c.hidden_size),
            layer_norm: layer_norm(norm, c.hidden_size, c.layer_norm_eps),
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
    fn new(vs: nn::Path, c: &EncoderConfig) -> Self {
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

    /// MPNet's layer (`encoder.layer.{i}`): BERT's, with the attention under `attention.attn`
    /// (`q`, `k`, `v`, `o`) and its LayerNorm at `attention.LayerNorm`.
    pub(super) fn mpnet(vs: nn::Path, c: &EncoderConfig) -> Self {
        let att = &vs / "attention";
        let attn = &att / "attn";
        Self {
            attention: BertSelfAttention::named(&attn, ["q", "k", "v"], c),
            attention_output: BertResidual::at(&attn / "o", &att / "LayerNorm", c.hidden_size, c),
            intermediate: linear(
                &vs / "intermediate" / "dense",
                c.hidden_size,
                c.intermediate_size,
            ),
            output: BertResidual::new(&vs / "output", c.intermediate_size, c),
            act: c.hidden_act,
        }
    }

    /// `[N, H]` → `[N, H]`; `bias` is MPNet's relative position bias.
    pub(super) fn forward_t(
        &self,
        x: &Tensor,
        tokens: &Tokens,
        mask: &AttentionMask,
        bias: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        let a = self.attention.forward_t(x, tokens, mask, bias, train);
        let a = self.attention_output.forward_t(&a, x, train);
        let i = activation(&self.intermediate.forward(&a), self.act);
        self.output.forward_t(&i, &a, train)
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
    pub fn new(vs: &nn::Path, c: &EncoderConfig) -> Self {
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
        let x = self.embeddings.forward_t(input_ids, &tokens, train);
        let mask = AttentionMask::new(attention_mask, x.kind());
        let (mut hidden, last) = layer_states(&tokens, x, &self.layers, |layer, x| {
            layer.forward_t(x, &tokens, &mask, None, train)
        });
        hidden.push(tokens.scatter(&last));
        hidden
    }

    /// BERT's own pooler output: `tanh(dense(h[:, 0]))` of the last hidden state.
    pub fn pooler_output(&self, last_hidden: &Tensor) -> Tensor {
        self.pooler.forward(&last_hidden.select(1, 0)).tanh()
    }
}
