//! MPNet (`model_type = "mpnet"`), as transformers' `MPNetModel`: RoBERTa-style embeddings
//! without token types (padding index fixed at 1), BERT's post-norm layers with the attention
//! under `attention.attn.{q,k,v,o}`, a relative position bias shared by every layer
//! (`encoder.relative_attention_bias`, one value per head and bucket, added to the attention
//! scores), and BERT's pooler (`pooler.dense`, kept so checkpoints round-trip).
//!
//! Relative positions `j − i` are bucketed as T5 does, bidirectionally, into 32 buckets (16 per
//! direction: 8 exact, 8 logarithmic up to a distance of 128), as transformers'
//! `MPNetEncoder.relative_position_bucket` with its default arguments.

use super::bert::{BertEmbeddings, BertLayer};
use super::config::EncoderConfig;
use super::layers::{embedding, layer_states, linear, AttentionMask, Tokens};
use super::{EncodedBatch, Encoder};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// Buckets per direction × 2, and the distance the logarithmic buckets reach, as transformers
/// calls `relative_position_bucket` (whatever `relative_attention_num_buckets` says).
const NUM_BUCKETS: i64 = 32;
const MAX_DISTANCE: f64 = 128.0;

/// `[T, T]` bucket of key `j` for query `i`, computed as transformers does (float32 logarithms
/// truncated towards zero).
pub fn relative_position_buckets(t: i64, device: Device) -> Tensor {
    let pos = Tensor::arange(t, (Kind::Int64, device));
    let relative = pos.unsqueeze(0) - pos.unsqueeze(1); // memory − context
    let n = -relative;
    let half = NUM_BUCKETS / 2;
    let ret = n.lt(0).to_kind(Kind::Int64) * half;
    let n = n.abs();
    let max_exact = half / 2;
    let is_small = n.lt(max_exact);
    let large = (n.to_kind(Kind::Float) / max_exact as f64).log()
        / (MAX_DISTANCE / max_exact as f64).ln()
        * (half - max_exact) as f64;
    let large = large.to_kind(Kind::Int64) + max_exact;
    let large = large.clamp_max(half - 1);
    ret + n.where_self(&is_small, &large)
}

/// The MPNet encoder.
#[derive(Debug)]
pub struct MpnetModel {
    embeddings: BertEmbeddings,
    layers: Vec<BertLayer>,
    relative_attention_bias: nn::Embedding,
    /// `pooler.dense`: kept so checkpoints round-trip; SimCSE's poolers do not use it.
    _pooler: nn::Linear,
}

impl MpnetModel {
    /// Create the variables under `vs` with transformers' key names (zeros until loaded or
    /// initialised).
    pub fn new(vs: &nn::Path, c: &EncoderConfig) -> Self {
        let enc = vs / "encoder";
        let layer = &enc / "layer";
        Self {
            embeddings: BertEmbeddings::new(vs / "embeddings", c),
            layers: (0..c.num_hidden_layers)
                .map(|i| BertLayer::mpnet(&layer / i, c))
                .collect(),
            relative_attention_bias: embedding(
                &enc / "relative_attention_bias",
                c.relative_attention_num_buckets,
                c.num_attention_heads,
                None,
            ),
            _pooler: linear(vs / "pooler" / "dense", c.hidden_size, c.hidden_size),
        }
    }
}

impl Encoder for MpnetModel {
    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// As [`super::BertModel::forward_t`], the relative position bias `[1, heads, T, T]` computed
    /// once and added to every layer's scores.
    fn forward_t(&self, batch: &EncodedBatch, train: bool) -> Vec<Tensor> {
        let tokens = Tokens::new(&batch.attention_mask, batch.real.as_ref());
        let x = self.embeddings.forward_t(&batch.input_ids, &tokens, train);
        let mask = AttentionMask::new(&batch.attention_mask, x.kind());
        let buckets = relative_position_buckets(tokens.t, x.device());
        let bias = self
            .relative_attention_bias
            .forward(&buckets)
            .permute([2, 0, 1])
            .unsqueeze(0);
        let (mut hidden, last) = layer_states(&tokens, x, &self.layers, |layer, x| {
            layer.forward_t(x, &tokens, &mask, Some(&bias), train)
        });
        hidden.push(tokens.scatter(&last));
        hidden
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buckets by hand for T5's bidirectional scheme with 32 buckets and max distance 128.
    fn bucket(rel: i64) -> i64 {
        let n = -rel;
        let mut ret = if n < 0 { 16 } else { 0 };
        let n = n.abs();
        ret += if n < 8 {
            n
        } else {
            let v = 8 + ((n as f32 / 8.0).ln() / (16.0f32).ln() * 8.0) as i64;
            v.min(15)
        };
        ret
    }

    #[test]
    fn buckets_match_the_hand_computed_scheme() {
        let t = 300;
        let b =
            Vec::<i64>::try_from(relative_position_buckets(t, Device::Cpu).flatten(0, -1)).unwrap();
        for i in 0..t {
            for j in 0..t {
                assert_eq!(b[(i * t + j) as usize], bucket(j - i), "i {i} j {j}");
            }
        }
        // Spot checks: self 0; one to the right → n = -1 → 16 + 1; one to the left → 1; far → 15 / 31.
        let at = |i: i64, j: i64| b[(i * t + j) as usize];
        assert_eq!(at(5, 5), 0);
        assert_eq!(at(5, 6), 17);
        assert_eq!(at(6, 5), 1);
        assert_eq!(at(0, 299), 31);
        assert_eq!(at(299, 0), 15);
    }
}
