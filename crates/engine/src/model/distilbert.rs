//! DistilBERT (`model_type = "distilbert"`), as transformers' `DistilBertModel`: BERT's embeddings
//! without token types (word + position, LayerNorm ε 1e-12, dropout), then `n_layers` post-norm
//! blocks of DistilBERT's own layout, and no pooler.
//!
//! ```text
//! transformer.layer.{i}
//!   attention.{q_lin,k_lin,v_lin} → attention (dropout `attention_dropout` on the probabilities)
//!   attention.out_lin             → sa_layer_norm(· + x)           (no dropout here, as in DistilBERT)
//!   ffn.lin1 → activation → ffn.lin2 → dropout → output_layer_norm(· + sa)
//! ```
//!
//! With `sinusoidal_pos_embds` the position table is fixed (never trained), as transformers makes it
//! at initialisation (a table it loads from a checkpoint it leaves trainable; here it stays fixed).

use super::bert::BertEmbeddings;
use super::config::{EncoderConfig, HiddenAct};
use super::dropout::dropout;
use super::layers::{activation, attend, layer_norm, layer_states, linear, AttentionMask, Tokens};
use super::{EncodedBatch, Encoder};
use tch::nn::{self, Module};
use tch::Tensor;

/// One block (`transformer.layer.{i}`).
#[derive(Debug)]
struct DistilBertLayer {
    q_lin: nn::Linear,
    k_lin: nn::Linear,
    v_lin: nn::Linear,
    out_lin: nn::Linear,
    sa_layer_norm: nn::LayerNorm,
    lin1: nn::Linear,
    lin2: nn::Linear,
    output_layer_norm: nn::LayerNorm,
    num_heads: i64,
    act: HiddenAct,
    dropout: f64,
    attention_dropout: f64,
}

impl DistilBertLayer {
    fn new(vs: nn::Path, c: &EncoderConfig) -> Self {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let att = &vs / "attention";
        let ffn = &vs / "ffn";
        Self {
            q_lin: linear(&att / "q_lin", h, h),
            k_lin: linear(&att / "k_lin", h, h),
            v_lin: linear(&att / "v_lin", h, h),
            out_lin: linear(&att / "out_lin", h, h),
            sa_layer_norm: layer_norm(&vs / "sa_layer_norm", h, c.layer_norm_eps),
            lin1: linear(&ffn / "lin1", h, i),
            lin2: linear(&ffn / "lin2", i, h),
            output_layer_norm: layer_norm(&vs / "output_layer_norm", h, c.layer_norm_eps),
            num_heads: c.num_attention_heads,
            act: c.hidden_act,
            dropout: c.hidden_dropout_prob,
            attention_dropout: c.attention_probs_dropout_prob,
        }
    }

    fn forward_t(&self, x: &Tensor, tokens: &Tokens, mask: &AttentionMask, train: bool) -> Tensor {
        let p = if train { self.attention_dropout } else { 0.0 };
        let ctx = attend(
            tokens,
            &self.q_lin.forward(x),
            &self.k_lin.forward(x),
            &self.v_lin.forward(x),
            self.num_heads,
            mask,
            None,
            p,
        );
        let sa = self
            .sa_layer_norm
            .forward(&(self.out_lin.forward(&ctx) + x));
        let f = self
            .lin2
            .forward(&activation(&self.lin1.forward(&sa), self.act));
        self.output_layer_norm
            .forward(&(dropout(&f, self.dropout, train) + &sa))
    }
}

/// The DistilBERT encoder: `embeddings.*` and `transformer.layer.{i}.*`.
#[derive(Debug)]
pub struct DistilBertModel {
    embeddings: BertEmbeddings,
    layers: Vec<DistilBertLayer>,
}

impl DistilBertModel {
    /// Create the variables under `vs` with transformers' key names (zeros until loaded or
    /// initialised).
    pub fn new(vs: &nn::Path, c: &EncoderConfig) -> Self {
        let layer = vs / "transformer" / "layer";
        Self {
            embeddings: BertEmbeddings::new(vs / "embeddings", c),
            layers: (0..c.num_hidden_layers)
                .map(|i| DistilBertLayer::new(&layer / i, c))
                .collect(),
        }
    }
}

impl Encoder for DistilBertModel {
    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// As [`super::BertModel::forward_t`]: index 0 the embedding output, `L` the last block.
    fn forward_t(&self, batch: &EncodedBatch, train: bool) -> Vec<Tensor> {
        let tokens = Tokens::new(&batch.attention_mask, batch.real.as_ref());
        let x = self.embeddings.forward_t(&batch.input_ids, &tokens, train);
        let mask = AttentionMask::new(&batch.attention_mask, x.kind());
        let (mut hidden, last) = layer_states(&tokens, x, &self.layers, |layer, x| {
            layer.forward_t(x, &tokens, &mask, train)
        });
        hidden.push(tokens.scatter(&last));
        hidden
    }
}
