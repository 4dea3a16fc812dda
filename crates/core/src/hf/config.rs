//! `config.json` of a BERT-family checkpoint, as Hugging Face transformers writes it.

use super::error::{ModelError, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::Path;

/// The architectures this crate implements; all share BERT's module layout and key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelType {
    /// `bert`: absolute positions 0..T.
    #[serde(rename = "bert")]
    Bert,
    /// `roberta`: positions start after the padding index and skip padding.
    #[serde(rename = "roberta")]
    Roberta,
    /// `xlm-roberta`: as RoBERTa.
    #[serde(rename = "xlm-roberta")]
    XlmRoberta,
}

impl ModelType {
    /// RoBERTa-style position ids (`padding_idx + cumsum(mask) * mask`).
    pub fn roberta_positions(self) -> bool {
        !matches!(self, ModelType::Bert)
    }

    /// The bare-encoder class name transformers uses (`architectures` in a saved config.json).
    pub fn architecture(self) -> &'static str {
        match self {
            ModelType::Bert => "BertModel",
            ModelType::Roberta => "RobertaModel",
            ModelType::XlmRoberta => "XLMRobertaModel",
        }
    }

    /// The key prefix the task-head classes put before the encoder's keys (`bert.`, `roberta.`).
    pub fn checkpoint_prefix(self) -> &'static str {
        match self {
            ModelType::Bert => "bert.",
            ModelType::Roberta | ModelType::XlmRoberta => "roberta.",
        }
    }
}

/// The feed-forward activation (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HiddenAct {
    /// Exact GELU, `x Φ(x)` with the error function.
    #[serde(rename = "gelu")]
    Gelu,
    /// GELU's tanh approximation (`gelu_new` in transformers).
    #[serde(rename = "gelu_new")]
    GeluNew,
    /// GELU's tanh approximation as PyTorch computes it.
    #[serde(rename = "gelu_pytorch_tanh")]
    GeluPytorchTanh,
    /// `max(0, x)`.
    #[serde(rename = "relu")]
    Relu,
    /// `x σ(x)`.
    #[serde(rename = "silu", alias = "swish")]
    Silu,
}

/// `model.config.*`: overrides of the checkpoint's config.json.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelOverrides {
    pub hidden_size: Option<i64>,
    pub num_hidden_layers: Option<i64>,
    pub num_attention_heads: Option<i64>,
    pub intermediate_size: Option<i64>,
    pub max_position_embeddings: Option<i64>,
    pub hidden_dropout_prob: Option<f64>,
    pub attention_probs_dropout_prob: Option<f64>,
}

/// The `model.config.*` overrides that change a model's architecture, which only random
/// initialisation allows (in the order of [`architecture_overrides`]).
pub const ARCHITECTURE_KEYS: [&str; 5] = [
    "model.config.hidden_size",
    "model.config.num_hidden_layers",
    "model.config.num_attention_heads",
    "model.config.intermediate_size",
    "model.config.max_position_embeddings",
];

/// A BERT-family `config.json`. Fields this crate does not use are kept in [`BertConfig::extra`]
/// so that saving writes them back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// `bert`, `roberta` or `xlm-roberta`.
    #[serde(default = "d_model_type")]
    pub model_type: ModelType,
    /// Rows of the word-embedding matrix.
    #[serde(default = "d_vocab")]
    pub vocab_size: i64,
    /// Width of every hidden state.
    #[serde(default = "d_hidden")]
    pub hidden_size: i64,
    /// Transformer layers.
    #[serde(default = "d_layers")]
    pub num_hidden_layers: i64,
    /// Attention heads per layer; divides `hidden_size`.
    #[serde(default = "d_heads")]
    pub num_attention_heads: i64,
    /// Width of the feed-forward inner layer.
    #[serde(default = "d_intermediate")]
    pub intermediate_size: i64,
    /// Feed-forward activation.
    #[serde(default = "d_act")]
    pub hidden_act: HiddenAct,
    /// Dropout after embeddings, attention output and feed-forward output.
    #[serde(default = "d_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on the attention probabilities.
    #[serde(default = "d_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Rows of the position-embedding matrix.
    #[serde(default = "d_positions")]
    pub max_position_embeddings: i64,
    /// Rows of the token-type-embedding matrix.
    #[serde(default = "d_types")]
    pub type_vocab_size: i64,
    /// LayerNorm epsilon.
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    /// Id of the padding token (also RoBERTa's position padding index). `null` in config.json
    /// means 0, as in transformers' BERT.
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    /// Standard deviation of the normal initialisation of weights.
    #[serde(default = "d_init")]
    pub initializer_range: f64,
    /// Every other key of config.json, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn d_model_type() -> ModelType {
    ModelType::Bert
}
fn d_vocab() -> i64 {
    30522
}
fn d_hidden() -> i64 {
    768
}
fn d_layers() -> i64 {
    12
}
fn d_heads() -> i64 {
    12
}
fn d_intermediate() -> i64 {
    3072
}
fn d_act() -> HiddenAct {
    HiddenAct::Gelu
}
fn d_dropout() -> f64 {
    0.1
}
fn d_positions() -> i64 {
    512
}
fn d_types() -> i64 {
    2
}
fn d_eps() -> f64 {
    1e-12
}
fn d_init() -> f64 {
    0.02
}

impl BertConfig {
    /// Read and validate `config.json`; errors name the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ModelError::MissingFile {
                    path: path.into(),
                    what: "every model directory needs a config.json".into(),
                }
            } else {
                ModelError::io(path, e)
            }
        })?;
        let config = Self::from_json(&text).map_err(|m| ModelError::config(path, m))?;
        Ok(config)
    }

    /// Parse and validate the text of a `config.json`.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        if let Some(t) = value.get("model_type").and_then(Value::as_str) {
            if !matches!(t, "bert" | "roberta" | "xlm-roberta") {
                return Err(format!(
                    "model_type `{t}` is not supported (supported: bert, roberta, xlm-roberta)"
                ));
            }
        }
        if let Some(a) = value.get("hidden_act").and_then(Value::as_str) {
            if !matches!(
                a,
                "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu" | "silu" | "swish"
            ) {
                return Err(format!(
                    "hidden_act `{a}` is not supported (supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu)"
                ));
            }
        }
        let config: BertConfig =
            serde_json::from_value(value).map_err(|e| format!("unexpected content: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// The padding token id (`pad_token_id`, 0 when absent).
    pub fn pad_id(&self) -> i64 {
        self.pad_token_id.unwrap_or(0)
    }

    /// Width of one attention head.
    pub fn head_size(&self) -> i64 {
        self.hidden_size / self.num_attention_heads
    }

    /// The longest input (tokens, specials included) the position embeddings allow.
    pub fn max_tokens(&self) -> i64 {
        if self.model_type.roberta_positions() {
            self.max_position_embeddings - self.pad_id() - 1
        } else {
            self.max_position_embeddings
        }
    }

    /// Check the values are usable; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        for (k, v) in positive {
            if v < 1 {
                return Err(format!("{k} must be at least 1, found {v}"));
            }
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(format!(
                "num_attention_heads ({}) must divide hidden_size ({})",
                self.num_attention_heads, self.hidden_size
            ));
        }
        for (k, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{k} must be in [0, 1), found {p}"));
            }
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return Err(format!(
                "layer_norm_eps must be positive, found {}",
                self.layer_norm_eps
            ));
        }
        if self.initializer_range.is_nan() || self.initializer_range < 0.0 {
            return Err(format!(
                "initializer_range must be non-negative, found {}",
                self.initializer_range
            ));
        }
        let pad = self.pad_id();
        if pad < 0 || pad >= self.vocab_size {
            return Err(format!(
                "pad_token_id {pad} is outside the vocabulary (vocab_size {})",
                self.vocab_size
            ));
        }
        if self.model_type.roberta_positions() && self.max_tokens() < 1 {
            return Err(format!(
                "max_position_embeddings ({}) leaves no positions after the padding index {pad}",
                self.max_position_embeddings
            ));
        }
        if let Some(p) = self.extra.get("position_embedding_type") {
            if p.as_str() != Some("absolute") {
                return Err(format!(
                    "position_embedding_type {p} is not supported (only \"absolute\")"
                ));
            }
        }
        Ok(())
    }

    /// Apply `model.config.*` overrides, then validate. Whether architecture overrides are allowed
    /// (random init only) is the loader's decision; see [`architecture_overrides`].
    pub fn apply(&mut self, o: &ModelOverrides) -> Result<(), String> {
        if let Some(v) = o.hidden_size {
            self.hidden_size = v;
        }
        if let Some(v) = o.num_hidden_layers {
            self.num_hidden_layers = v;
        }
        if let Some(v) = o.num_attention_heads {
            self.num_attention_heads = v;
        }
        if let Some(v) = o.intermediate_size {
            self.intermediate_size = v;
        }
        if let Some(v) = o.max_position_embeddings {
            self.max_position_embeddings = v;
        }
        if let Some(v) = o.hidden_dropout_prob {
            self.hidden_dropout_prob = v;
        }
        if let Some(v) = o.attention_probs_dropout_prob {
            self.attention_probs_dropout_prob = v;
        }
        self.validate()
            .map_err(|e| format!("after model.config overrides: {e}"))
    }

    /// The JSON written to a saved checkpoint's `config.json`: every field (unknown ones kept),
    /// `architectures` naming the bare encoder class the weights belong to.
    pub fn to_json_pretty(&self) -> String {
        let mut c = self.clone();
        c.extra.insert(
            "architectures".into(),
            Value::Array(vec![Value::from(self.model_type.architecture())]),
        );
        c.extra.insert("torch_dtype".into(), Value::from("float32"));
        // Serialising plain data into a JSON value cannot fail.
        serde_json::to_string_pretty(&c).unwrap_or_default()
    }
}

/// The `model.config.*` keys that change the architecture (and hence the weights' shapes) and are
/// set in `o` to a value different from `config`'s.
pub fn architecture_overrides(config: &BertConfig, o: &ModelOverrides) -> Vec<String> {
    let pairs = [
        (o.hidden_size, config.hidden_size),
        (o.num_hidden_layers, config.num_hidden_layers),
        (o.num_attention_heads, config.num_attention_heads),
        (o.intermediate_size, config.intermediate_size),
        (o.max_position_embeddings, config.max_position_embeddings),
    ];
    ARCHITECTURE_KEYS
        .iter()
        .zip(pairs)
        .filter_map(|(key, (want, have))| {
            want.filter(|w| *w != have)
                .map(|w| format!("{key} = {w} (checkpoint: {have})"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r#"{"model_type": "bert", "vocab_size": 100, "hidden_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "hidden_act": "gelu", "architectures": ["BertForMaskedLM"], "gradient_checkpointing": false,
        "position_embedding_type": "absolute", "pad_token_id": 0}"#;

    #[test]
    fn parses_defaults_and_keeps_unknown_fields() {
        let c = BertConfig::from_json(MINI).unwrap();
        assert_eq!(c.hidden_size, 32);
        assert_eq!(c.max_position_embeddings, 512);
        assert_eq!(c.layer_norm_eps, 1e-12);
        assert_eq!(c.extra["gradient_checkpointing"], Value::Bool(false));
        let saved: Value = serde_json::from_str(&c.to_json_pretty()).unwrap();
        assert_eq!(saved["gradient_checkpointing"], Value::Bool(false));
        assert_eq!(saved["architectures"][0], "BertModel");
        assert_eq!(saved["hidden_act"], "gelu");
        let again = BertConfig::from_json(&c.to_json_pretty()).unwrap();
        assert_eq!(again.hidden_size, c.hidden_size);
        assert_eq!(again.extra["gradient_checkpointing"], Value::Bool(false));
    }

    #[test]
    fn rejects_unsupported() {
        let e = BertConfig::from_json(r#"{"model_type": "gpt2"}"#).unwrap_err();
        assert!(e.contains("model_type `gpt2`"), "{e}");
        let e = BertConfig::from_json(r#"{"hidden_act": "quick_gelu"}"#).unwrap_err();
        assert!(e.contains("hidden_act `quick_gelu`"), "{e}");
        let e =
            BertConfig::from_json(r#"{"hidden_size": 30, "num_attention_heads": 4}"#).unwrap_err();
        assert!(e.contains("must divide"), "{e}");
        let e =
            BertConfig::from_json(r#"{"position_embedding_type": "relative_key"}"#).unwrap_err();
        assert!(e.contains("position_embedding_type"), "{e}");
    }

    #[test]
    fn overrides_apply_and_validate() {
        let mut c = BertConfig::from_json(MINI).unwrap();
        let o = ModelOverrides {
            hidden_dropout_prob: Some(0.3),
            num_hidden_layers: Some(4),
            ..Default::default()
        };
        assert_eq!(architecture_overrides(&c, &o).len(), 1);
        c.apply(&o).unwrap();
        assert_eq!(c.hidden_dropout_prob, 0.3);
        assert_eq!(c.num_hidden_layers, 4);
        assert!(architecture_overrides(&c, &o).is_empty());
        let bad = ModelOverrides {
            num_attention_heads: Some(5),
            ..Default::default()
        };
        assert!(c.apply(&bad).unwrap_err().contains("must divide"));
    }

    #[test]
    fn roberta_max_tokens() {
        let c = BertConfig::from_json(
            r#"{"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}"#,
        )
        .unwrap();
        assert_eq!(c.max_tokens(), 512);
        assert!(c.model_type.roberta_positions());
    }
}
