//! ModernBERT (`model_type = "modernbert"`), as transformers' `ModernBertModel` (its SDPA path):
//!
//! ```text
//! embeddings: tok_embeddings → norm → dropout (embedding_dropout)
//! layers.{i}: h += attn.Wo(attention(rotary(attn.Wqkv(attn_norm(h)))))   (layer 0: no attn_norm)
//!             h += mlp.Wo(dropout(act(input) * gate)),  input, gate = mlp.Wi(mlp_norm(h))  (GeGLU)
//! final_norm
//! ```
//!
//! Layer `i` attends globally when `i % global_attn_every_n_layers == 0` (rotary base
//! `global_rope_theta`), else within a sliding window of `local_attention / 2` positions on each
//! side (rotary base `local_rope_theta`). Norms and projections have no biases unless `norm_bias`,
//! `attention_bias`, `mlp_bias` say so. Dropout: `embedding_dropout` after the embeddings,
//! `attention_dropout` on the attention probabilities and after `attn.Wo`, `mlp_dropout` inside
//! the MLP (all 0 in the released checkpoints: SimCSE's augmentation needs them set, see
//! `docs/models.md`).
//!
//! Hidden states: index 0 the embedding output, index `i` layer `i`'s output, and index `L` the
//! last layer's output *after* `final_norm`, i.e. transformers' `last_hidden_state` (its
//! `hidden_states[-1]` is the same layer before the final norm). So `avg` and `cls` pool what
//! sentence-transformers and `ModernBertForSequenceClassification` pool.
//!
//! Like the BERT path every position-wise module runs on the real tokens only; the rotary angles
//! are looked up per real token from its column in the padded grid (its position, as
//! transformers' `position_ids = arange(T)`).

use super::config::{EncoderConfig, HiddenAct};
use super::dropout::dropout;
use super::layers::{
    activation, attend, embedding, layer_states, linear_with, AttentionMask, Norm, Tokens,
};
use super::{EncodedBatch, Encoder};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// The rotary angles of one base: `cos`, `sin` `[T, d]` for positions `0..T`, computed in f32 as
/// transformers' default RoPE (`inv_freq = 1 / base^(2k/d)`, `emb = cat(freqs, freqs)`).
fn rotary_table(base: f64, head_dim: i64, t: i64, device: Device) -> (Tensor, Tensor) {
    let f = (Kind::Float, device);
    let exponent = Tensor::arange_start_step(0, head_dim, 2, (Kind::Int64, device))
        .to_kind(Kind::Float)
        / head_dim as f64;
    let inv_freq = (Tensor::from(base).to_kind(Kind::Float).to_device(device)).pow(&exponent);
    let inv_freq = inv_freq.reciprocal();
    let pos = Tensor::arange(t, f);
    let freqs = pos.unsqueeze(1).matmul(&inv_freq.unsqueeze(0));
    let emb = Tensor::cat(&[&freqs, &freqs], -1);
    (emb.cos(), emb.sin())
}

/// `x·cos + rotate_half(x)·sin` for `[N, heads, d]` with `cos`, `sin` `[N, 1, d]`.
fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let d = x.size()[2];
    let x1 = x.narrow(2, 0, d / 2);
    let x2 = x.narrow(2, d / 2, d / 2);
    let half = Tensor::cat(&[&x2.neg(), &x1], 2);
    x * cos + half * sin
}

/// The rotary angles of the real tokens for each base, built once per forward pass.
struct Rotary {
    /// `(cos, sin)`, each `[N, 1, d]`, f32 (each layer casts them to its projections' dtype).
    global: (Tensor, Tensor),
    local: (Tensor, Tensor),
}

impl Rotary {
    /// `bases`: the global and the local rotary base; `d` the head width.
    fn new(bases: (f64, f64), d: i64, tokens: &Tokens, device: Device) -> Self {
        let positions = match &tokens.index {
            Some(i) => i.remainder(tokens.t),
            None => Tensor::arange(tokens.t, (Kind::Int64, device)).repeat([tokens.b]),
        };
        let per_token = |base: f64| {
            let (cos, sin) = rotary_table(base, d, tokens.t, device);
            let pick = |x: &Tensor| x.index_select(0, &positions).unsqueeze(1);
            (pick(&cos), pick(&sin))
        };
        let global = per_token(bases.0);
        let local = if bases.1 == bases.0 {
            (global.0.shallow_clone(), global.1.shallow_clone())
        } else {
            per_token(bases.1)
        };
        Self { global, local }
    }
}

/// One layer (`layers.{i}`).
#[derive(Debug)]
struct ModernBertLayer {
    attn_norm: Option<Norm>,
    wqkv: nn::Linear,
    attn_wo: nn::Linear,
    mlp_norm: Norm,
    wi: nn::Linear,
    mlp_wo: nn::Linear,
    global: bool,
    num_heads: i64,
    act: HiddenAct,
    attention_dropout: f64,
    mlp_dropout: f64,
}

impl ModernBertLayer {
    fn new(vs: nn::Path, i: i64, c: &EncoderConfig) -> Self {
        let m = &c.modernbert;
        let (h, inter) = (c.hidden_size, c.intermediate_size);
        let norm = |p: nn::Path| Norm::new(p, h, c.layer_norm_eps, m.norm_bias);
        let attn = &vs / "attn";
        let mlp = &vs / "mlp";
        Self {
            attn_norm: (i > 0).then(|| norm(&vs / "attn_norm")),
            wqkv: linear_with(&attn / "Wqkv", h, 3 * h, m.attention_bias),
            attn_wo: linear_with(&attn / "Wo", h, h, m.attention_bias),
            mlp_norm: norm(&vs / "mlp_norm"),
            wi: linear_with(&mlp / "Wi", h, 2 * inter, m.mlp_bias),
            mlp_wo: linear_with(&mlp / "Wo", inter, h, m.mlp_bias),
            global: c.global_layer(i),
            num_heads: c.num_attention_heads,
            act: c.hidden_act,
            attention_dropout: c.attention_probs_dropout_prob,
            mlp_dropout: m.mlp_dropout,
        }
    }

    fn forward_t(
        &self,
        x: &Tensor,
        tokens: &Tokens,
        masks: (&AttentionMask, &AttentionMask),
        rotary: &Rotary,
        train: bool,
    ) -> Tensor {
        let n = x.size()[0];
        let h = x.size()[1];
        let normed = match &self.attn_norm {
            Some(norm) => norm.forward(x),
            None => x.shallow_clone(),
        };
        let qkv = self
            .wqkv
            .forward(&normed)
            .view([n, 3, self.num_heads, h / self.num_heads]);
        let (cos, sin) = if self.global {
            (&rotary.global.0, &rotary.global.1)
        } else {
            (&rotary.local.0, &rotary.local.1)
        };
        // In the projections' dtype (half precision under autocast), as transformers casts them:
        // the queries then keep that dtype, and so does the mask built for them.
        let kind = qkv.kind();
        let (cos, sin) = (cos.to_kind(kind), sin.to_kind(kind));
        let q = rotate(&qkv.select(1, 0), &cos, &sin).reshape([n, h]);
        let k = rotate(&qkv.select(1, 1), &cos, &sin).reshape([n, h]);
        let v = qkv.select(1, 2).reshape([n, h]);
        let mask = if self.global { masks.0 } else { masks.1 };
        let p = if train { self.attention_dropout } else { 0.0 };
        let ctx = attend(tokens, &q, &k, &v, self.num_heads, mask, None, p);
        let x = x + dropout(&self.attn_wo.forward(&ctx), self.attention_dropout, train);
        let gated = self.wi.forward(&self.mlp_norm.forward(&x));
        let parts = gated.chunk(2, -1);
        let inner = activation(&parts[0], self.act) * &parts[1];
        let mlp = self
            .mlp_wo
            .forward(&dropout(&inner, self.mlp_dropout, train));
        x + mlp
    }
}

/// The ModernBERT encoder: `embeddings.*`, `layers.{i}.*`, `final_norm.*`.
#[derive(Debug)]
pub struct ModernBertModel {
    tok_embeddings: nn::Embedding,
    embedding_norm: Norm,
    embedding_dropout: f64,
    layers: Vec<ModernBertLayer>,
    final_norm: Norm,
    local_half: i64,
    /// The global and the local rotary base.
    rope_bases: (f64, f64),
    head_dim: i64,
}

impl ModernBertModel {
    /// Create the variables under `vs` with transformers' key names (zeros until loaded or
    /// initialised).
    pub fn new(vs: &nn::Path, c: &EncoderConfig) -> Self {
        let m = &c.modernbert;
        let emb = vs / "embeddings";
        let layers = vs / "layers";
        Self {
            tok_embeddings: embedding(
                &emb / "tok_embeddings",
                c.vocab_size,
                c.hidden_size,
                Some(c.pad_id()),
            ),
            embedding_norm: Norm::new(&emb / "norm", c.hidden_size, c.layer_norm_eps, m.norm_bias),
            embedding_dropout: c.hidden_dropout_prob,
            layers: (0..c.num_hidden_layers)
                .map(|i| ModernBertLayer::new(&layers / i, i, c))
                .collect(),
            final_norm: Norm::new(
                vs / "final_norm",
                c.hidden_size,
                c.layer_norm_eps,
                m.norm_bias,
            ),
            local_half: m.local_attention / 2,
            rope_bases: (m.global_rope_theta, m.local_rope_theta),
            head_dim: c.head_size(),
        }
    }
}

impl Encoder for ModernBertModel {
    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Index 0 the embedding output, `i` layer `i`, `L` the last layer after `final_norm`
    /// (transformers' `last_hidden_state`); zeros at padding.
    fn forward_t(&self, batch: &EncodedBatch, train: bool) -> Vec<Tensor> {
        let tokens = Tokens::new(&batch.attention_mask, batch.real.as_ref());
        let ids = tokens.select(&batch.input_ids);
        let x = dropout(
            &self
                .embedding_norm
                .forward(&self.tok_embeddings.forward(&ids)),
            self.embedding_dropout,
            train,
        );
        let global = AttentionMask::new(&batch.attention_mask, x.kind());
        let local = global.window(self.local_half);
        let rotary = Rotary::new(self.rope_bases, self.head_dim, &tokens, x.device());
        let (mut hidden, last) = layer_states(&tokens, x, &self.layers, |layer, x| {
            layer.forward_t(x, &tokens, (&global, &local), &rotary, train)
        });
        hidden.push(tokens.scatter(&self.final_norm.forward(&last)));
        hidden
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotary_rotates_pairs_by_position_times_frequency() {
        // d = 4: frequencies 1 and 1/base^(1/2); position 3 rotates (x0, x2) by 3 rad and (x1, x3)
        // by 3/√base rad.
        let base = 100.0;
        let (cos, sin) = rotary_table(base, 4, 5, Device::Cpu);
        let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([1, 1, 4]);
        let pick = |t: &Tensor| t.get(3).view([1, 1, 4]);
        let y = Vec::<f32>::try_from(rotate(&x, &pick(&cos), &pick(&sin)).flatten(0, -1)).unwrap();
        let (a, b) = (3.0f64, 3.0f64 / 10.0);
        let expect = [
            1.0 * a.cos() - 3.0 * a.sin(),
            2.0 * b.cos() - 4.0 * b.sin(),
            3.0 * a.cos() + 1.0 * a.sin(),
            4.0 * b.cos() + 2.0 * b.sin(),
        ];
        for (g, e) in y.iter().zip(expect) {
            assert!((*g as f64 - e).abs() < 1e-5, "{y:?} vs {expect:?}");
        }
    }

    #[test]
    fn the_window_masks_far_keys_and_padding() {
        let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1, 1, 0]).view([1, 8]);
        let m = AttentionMask::new(&mask, Kind::Float).window(2);
        let q = Tensor::zeros([1, 1, 8, 2], (Kind::Float, Device::Cpu));
        let add = m.for_query(&q);
        assert_eq!(add.size(), [1, 1, 8, 8]);
        let v = Vec::<f32>::try_from(add.flatten(0, -1)).unwrap();
        for i in 0..8usize {
            for j in 0..8usize {
                let masked = (i as i64 - j as i64).abs() > 2 || j == 7;
                let got = v[i * 8 + j];
                assert_eq!(got != 0.0, masked, "i {i} j {j}: {got}");
                if masked {
                    assert_eq!(got, f32::MIN, "masked exactly once, never -inf");
                }
            }
        }
        // A window wider than the batch is the padding mask itself.
        let wide = AttentionMask::new(&mask, Kind::Float).window(64);
        assert_eq!(wide.for_query(&q).size(), [1, 1, 1, 8]);
    }
}
