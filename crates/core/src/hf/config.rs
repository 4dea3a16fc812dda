//! `config.json` of a checkpoint, as Hugging Face transformers writes it, for every architecture
//! this crate implements: BERT, RoBERTa, XLM-RoBERTa, DistilBERT, MPNet and ModernBERT.
//!
//! Each architecture names its settings its own way (DistilBERT's `dim` / `n_layers`, ModernBERT's
//! `norm_eps` / `embedding_dropout`); [`EncoderConfig`] reads them into one set of canonical fields
//! (BERT's names) with transformers' defaults for that architecture, keeps every other key verbatim,
//! and writes the canonical values back under the architecture's own names when a checkpoint is
//! saved. `model.config.*` overrides use the canonical names ([`ModelOverrides`]) and are mapped the
//! same way (see [`ModelType::json_keys`]).

use super::error::{ModelError, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::Path;

/// The architectures this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// `distilbert`: BERT's embeddings without token types, six post-norm layers of its own layout
    /// (`transformer.layer.{i}`: `attention.{q,k,v,out}_lin`, `sa_layer_norm`, `ffn.lin1/2`,
    /// `output_layer_norm`), no pooler.
    #[serde(rename = "distilbert")]
    DistilBert,
    /// `mpnet`: RoBERTa-style positions plus a relative position bias shared by the layers
    /// (`encoder.relative_attention_bias`), BERT's post-norm layers.
    #[serde(rename = "mpnet")]
    Mpnet,
    /// `modernbert`: token embeddings only, rotary positions (a global and a local base), global
    /// and sliding-window attention alternating, GeGLU, pre-norm without biases, a final norm.
    #[serde(rename = "modernbert")]
    ModernBert,
}

/// Where a canonical setting lives in one architecture's `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonKeys {
    /// `hidden_size`.
    pub hidden_size: &'static str,
    /// `num_hidden_layers`.
    pub num_hidden_layers: &'static str,
    /// `num_attention_heads`.
    pub num_attention_heads: &'static str,
    /// `intermediate_size`.
    pub intermediate_size: &'static str,
    /// `hidden_act`.
    pub hidden_act: &'static str,
    /// `hidden_dropout_prob`: every key it is written to (ModernBERT has two).
    pub hidden_dropout_prob: &'static [&'static str],
    /// `attention_probs_dropout_prob`.
    pub attention_probs_dropout_prob: &'static str,
    /// `layer_norm_eps` (`None`: fixed by the architecture, DistilBERT's 1e-12).
    pub layer_norm_eps: Option<&'static str>,
}

impl ModelType {
    /// Every architecture, in the order error messages list them.
    pub const ALL: [ModelType; 6] = [
        ModelType::Bert,
        ModelType::Roberta,
        ModelType::XlmRoberta,
        ModelType::DistilBert,
        ModelType::Mpnet,
        ModelType::ModernBert,
    ];

    /// The `model_type` of config.json.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelType::Bert => "bert",
            ModelType::Roberta => "roberta",
            ModelType::XlmRoberta => "xlm-roberta",
            ModelType::DistilBert => "distilbert",
            ModelType::Mpnet => "mpnet",
            ModelType::ModernBert => "modernbert",
        }
    }

    /// The architecture of a `model_type`, or a message naming the supported ones.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "model_type `{s}` is not supported (supported: {})",
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }

    /// RoBERTa-style position ids (`padding_idx + cumsum(mask) * mask`): RoBERTa, XLM-R, MPNet.
    pub fn roberta_positions(self) -> bool {
        matches!(
            self,
            ModelType::Roberta | ModelType::XlmRoberta | ModelType::Mpnet
        )
    }

    /// Whether the architecture has a learned position-embedding table (ModernBERT's positions are
    /// rotary).
    pub fn position_table(self) -> bool {
        !matches!(self, ModelType::ModernBert)
    }

    /// Whether the bare encoder has a pooler layer (`pooler.dense`, kept so checkpoints round-trip;
    /// SimCSE's poolers do not use it). DistilBERT and ModernBERT have none.
    pub fn has_pooler(self) -> bool {
        !matches!(self, ModelType::DistilBert | ModelType::ModernBert)
    }

    /// Whether the architecture has token-type embeddings (`type_vocab_size`).
    pub fn token_types(self) -> bool {
        matches!(
            self,
            ModelType::Bert | ModelType::Roberta | ModelType::XlmRoberta
        )
    }

    /// Whether the special tokens are RoBERTa's (`<s>`, `</s>`, `<pad>`, …) rather than BERT's
    /// (`[CLS]`, `[SEP]`, `[PAD]`, …) when the tokenizer files do not name them.
    pub fn roberta_specials(self) -> bool {
        self.roberta_positions()
    }

    /// The bare-encoder class name transformers uses (`architectures` in a saved config.json).
    pub fn architecture(self) -> &'static str {
        match self {
            ModelType::Bert => "BertModel",
            ModelType::Roberta => "RobertaModel",
            ModelType::XlmRoberta => "XLMRobertaModel",
            ModelType::DistilBert => "DistilBertModel",
            ModelType::Mpnet => "MPNetModel",
            ModelType::ModernBert => "ModernBertModel",
        }
    }

    /// The key prefix the task-head classes put before the encoder's keys (`bert.`, `roberta.`,
    /// `distilbert.`, `mpnet.`, ModernBERT's `model.`).
    pub fn checkpoint_prefix(self) -> &'static str {
        match self {
            ModelType::Bert => "bert.",
            ModelType::Roberta | ModelType::XlmRoberta => "roberta.",
            ModelType::DistilBert => "distilbert.",
            ModelType::Mpnet => "mpnet.",
            ModelType::ModernBert => "model.",
        }
    }

    /// Where the canonical settings live in this architecture's config.json.
    pub fn json_keys(self) -> JsonKeys {
        const BERT: JsonKeys = JsonKeys {
            hidden_size: "hidden_size",
            num_hidden_layers: "num_hidden_layers",
            num_attention_heads: "num_attention_heads",
            intermediate_size: "intermediate_size",
            hidden_act: "hidden_act",
            hidden_dropout_prob: &["hidden_dropout_prob"],
            attention_probs_dropout_prob: "attention_probs_dropout_prob",
            layer_norm_eps: Some("layer_norm_eps"),
        };
        match self {
            ModelType::Bert | ModelType::Roberta | ModelType::XlmRoberta | ModelType::Mpnet => BERT,
            ModelType::DistilBert => JsonKeys {
                hidden_size: "dim",
                num_hidden_layers: "n_layers",
                num_attention_heads: "n_heads",
                intermediate_size: "hidden_dim",
                hidden_act: "activation",
                hidden_dropout_prob: &["dropout"],
                attention_probs_dropout_prob: "attention_dropout",
                layer_norm_eps: None,
            },
            ModelType::ModernBert => JsonKeys {
                hidden_act: "hidden_activation",
                hidden_dropout_prob: &["embedding_dropout", "mlp_dropout"],
                attention_probs_dropout_prob: "attention_dropout",
                layer_norm_eps: Some("norm_eps"),
                ..BERT
            },
        }
    }

    /// transformers' defaults for this architecture's config class.
    fn defaults(self) -> Defaults {
        let bert = Defaults {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            dropout: 0.1,
            attention_dropout: 0.1,
            max_position_embeddings: 512,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
        };
        match self {
            ModelType::Bert => bert,
            ModelType::Roberta | ModelType::XlmRoberta => Defaults {
                vocab_size: if self == ModelType::Roberta {
                    50265
                } else {
                    30522
                },
                pad_token_id: 1,
                ..bert
            },
            ModelType::DistilBert => Defaults {
                num_hidden_layers: 6,
                ..bert
            },
            ModelType::Mpnet => Defaults {
                vocab_size: 30527,
                pad_token_id: 1,
                ..bert
            },
            ModelType::ModernBert => Defaults {
                vocab_size: 50368,
                num_hidden_layers: 22,
                intermediate_size: 1152,
                dropout: 0.0,
                attention_dropout: 0.0,
                max_position_embeddings: 8192,
                layer_norm_eps: 1e-5,
                pad_token_id: 50283,
                ..bert
            },
        }
    }
}

impl std::fmt::Display for ModelType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

struct Defaults {
    vocab_size: i64,
    hidden_size: i64,
    num_hidden_layers: i64,
    num_attention_heads: i64,
    intermediate_size: i64,
    dropout: f64,
    attention_dropout: f64,
    max_position_embeddings: i64,
    layer_norm_eps: f64,
    pad_token_id: i64,
}

/// The feed-forward activation (`hidden_act`, DistilBERT's `activation`, ModernBERT's
/// `hidden_activation`).
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

impl HiddenAct {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "gelu" => HiddenAct::Gelu,
            "gelu_new" => HiddenAct::GeluNew,
            "gelu_pytorch_tanh" => HiddenAct::GeluPytorchTanh,
            "relu" => HiddenAct::Relu,
            "silu" | "swish" => HiddenAct::Silu,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            HiddenAct::Gelu => "gelu",
            HiddenAct::GeluNew => "gelu_new",
            HiddenAct::GeluPytorchTanh => "gelu_pytorch_tanh",
            HiddenAct::Relu => "relu",
            HiddenAct::Silu => "silu",
        }
    }
}

/// `model.config.*`: overrides of the checkpoint's config.json, under BERT's names whatever the
/// architecture (mapped by [`ModelType::json_keys`]: DistilBERT's `dim`, `n_layers`, `n_heads`,
/// `hidden_dim`, `dropout`, `attention_dropout`; ModernBERT's `embedding_dropout` and
/// `mlp_dropout` for `hidden_dropout_prob`, `attention_dropout` for
/// `attention_probs_dropout_prob`).
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

/// ModernBERT's own settings (`modernbert` only; transformers' defaults otherwise unused).
#[derive(Debug, Clone, PartialEq)]
pub struct ModernBertSettings {
    /// Rotary base of the global-attention layers (`global_rope_theta`).
    pub global_rope_theta: f64,
    /// Rotary base of the sliding-window layers (`local_rope_theta`; `null`: the global base).
    pub local_rope_theta: f64,
    /// Width of the sliding window (`local_attention`): a token attends to those within
    /// `local_attention / 2` positions on either side.
    pub local_attention: i64,
    /// Every n-th layer (from layer 0) attends globally (`global_attn_every_n_layers`).
    pub global_attn_every_n_layers: i64,
    /// Dropout inside the MLP, before `Wo` (`mlp_dropout`); [`EncoderConfig::hidden_dropout_prob`]
    /// is `embedding_dropout`.
    pub mlp_dropout: f64,
    /// LayerNorms with biases (`norm_bias`).
    pub norm_bias: bool,
    /// `Wqkv` / `Wo` with biases (`attention_bias`).
    pub attention_bias: bool,
    /// `Wi` / `Wo` with biases (`mlp_bias`).
    pub mlp_bias: bool,
    /// Truncation of the initialisation's normal distribution, in standard deviations
    /// (`initializer_cutoff_factor`).
    pub initializer_cutoff_factor: f64,
}

/// A checkpoint's `config.json`, read into BERT's names (see the module's documentation). Keys this
/// crate does not use are kept in [`EncoderConfig::extra`] so that saving writes them back.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    /// The architecture.
    pub model_type: ModelType,
    /// Rows of the word-embedding matrix.
    pub vocab_size: i64,
    /// Width of every hidden state (DistilBERT's `dim`).
    pub hidden_size: i64,
    /// Transformer layers (DistilBERT's `n_layers`).
    pub num_hidden_layers: i64,
    /// Attention heads per layer; divides `hidden_size` (DistilBERT's `n_heads`).
    pub num_attention_heads: i64,
    /// Width of the feed-forward inner layer (DistilBERT's `hidden_dim`; ModernBERT's `Wi` is
    /// twice as wide, input and gate).
    pub intermediate_size: i64,
    /// Feed-forward activation.
    pub hidden_act: HiddenAct,
    /// Dropout on the hidden states: after the embeddings, the attention output and the
    /// feed-forward output (DistilBERT's `dropout`; ModernBERT's `embedding_dropout`, with
    /// [`ModernBertSettings::mlp_dropout`] inside its MLP).
    pub hidden_dropout_prob: f64,
    /// Dropout on the attention probabilities (DistilBERT's and ModernBERT's `attention_dropout`;
    /// ModernBERT also applies it to the attention output).
    pub attention_probs_dropout_prob: f64,
    /// Rows of the position-embedding matrix; ModernBERT's longest input (rotary positions).
    pub max_position_embeddings: i64,
    /// Rows of the token-type-embedding matrix (BERT, RoBERTa; 0 where there are none).
    pub type_vocab_size: i64,
    /// LayerNorm epsilon (ModernBERT's `norm_eps`; DistilBERT's fixed 1e-12).
    pub layer_norm_eps: f64,
    /// Id of the padding token (also the position padding index of RoBERTa and MPNet). `null` in
    /// config.json means the architecture's default.
    pub pad_token_id: Option<i64>,
    /// Standard deviation of the normal initialisation of weights.
    pub initializer_range: f64,
    /// DistilBERT's fixed sinusoidal position embeddings (`sinusoidal_pos_embds`).
    pub sinusoidal_pos_embds: bool,
    /// MPNet's relative-position buckets (`relative_attention_num_buckets`).
    pub relative_attention_num_buckets: i64,
    /// ModernBERT's settings.
    pub modernbert: ModernBertSettings,
    /// Every other key of config.json, kept verbatim.
    pub extra: Map<String, Value>,
}

/// Reads typed values out of a config.json object, naming the key in errors.
struct Reader<'a>(&'a mut Map<String, Value>);

impl Reader<'_> {
    fn take(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key).filter(|v| !v.is_null())
    }
    fn int(&mut self, key: &str, default: i64) -> Result<i64, String> {
        match self.take(key) {
            None => Ok(default),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or_else(|| format!("key `{key}` must be an integer, found {v}")),
        }
    }
    fn float(&mut self, key: &str, default: f64) -> Result<f64, String> {
        match self.take(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| format!("key `{key}` must be a number, found {v}")),
        }
    }
    fn bool(&mut self, key: &str, default: bool) -> Result<bool, String> {
        match self.take(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| format!("key `{key}` must be true or false, found {v}")),
        }
    }
    fn opt_int(&mut self, key: &str) -> Result<Option<i64>, String> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("key `{key}` must be an integer or null, found {v}")),
        }
    }
}

impl EncoderConfig {
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
        let Value::Object(mut map) = value else {
            return Err("unexpected content: not a JSON object".into());
        };
        let model_type = match map.remove("model_type") {
            None | Some(Value::Null) => ModelType::Bert,
            Some(Value::String(s)) => ModelType::parse(&s)?,
            Some(v) => return Err(format!("key `model_type` must be a string, found {v}")),
        };
        let keys = model_type.json_keys();
        let d = model_type.defaults();
        let mut r = Reader(&mut map);
        let hidden_act = match r.take(keys.hidden_act) {
            None => HiddenAct::Gelu,
            Some(Value::String(a)) => HiddenAct::parse(&a).ok_or_else(|| {
                format!(
                    "{} `{a}` is not supported (supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu)",
                    keys.hidden_act
                )
            })?,
            Some(v) => return Err(format!("key `{}` must be a string, found {v}", keys.hidden_act)),
        };
        let hidden_dropout_prob = r.float(keys.hidden_dropout_prob[0], d.dropout)?;
        let mlp_dropout = match keys.hidden_dropout_prob.get(1) {
            Some(k) => r.float(k, d.dropout)?,
            None => hidden_dropout_prob,
        };
        let global_rope_theta = if model_type == ModelType::ModernBert {
            // `rope_theta` is transformers' alias of `global_rope_theta` (its attribute_map).
            let alias = r.float("rope_theta", 160_000.0)?;
            r.float("global_rope_theta", alias)?
        } else {
            160_000.0
        };
        let mut config = EncoderConfig {
            model_type,
            vocab_size: r.int("vocab_size", d.vocab_size)?,
            hidden_size: r.int(keys.hidden_size, d.hidden_size)?,
            num_hidden_layers: r.int(keys.num_hidden_layers, d.num_hidden_layers)?,
            num_attention_heads: r.int(keys.num_attention_heads, d.num_attention_heads)?,
            intermediate_size: r.int(keys.intermediate_size, d.intermediate_size)?,
            hidden_act,
            hidden_dropout_prob,
            attention_probs_dropout_prob: r
                .float(keys.attention_probs_dropout_prob, d.attention_dropout)?,
            max_position_embeddings: r.int("max_position_embeddings", d.max_position_embeddings)?,
            type_vocab_size: if model_type.token_types() {
                r.int("type_vocab_size", 2)?
            } else {
                0
            },
            layer_norm_eps: match keys.layer_norm_eps {
                Some(k) => r.float(k, d.layer_norm_eps)?,
                None => d.layer_norm_eps,
            },
            pad_token_id: r.opt_int("pad_token_id")?,
            initializer_range: r.float("initializer_range", 0.02)?,
            sinusoidal_pos_embds: model_type == ModelType::DistilBert
                && r.bool("sinusoidal_pos_embds", false)?,
            relative_attention_num_buckets: if model_type == ModelType::Mpnet {
                r.int("relative_attention_num_buckets", 32)?
            } else {
                32
            },
            modernbert: ModernBertSettings {
                global_rope_theta,
                local_rope_theta: 10_000.0,
                local_attention: 128,
                global_attn_every_n_layers: 3,
                mlp_dropout,
                norm_bias: false,
                attention_bias: false,
                mlp_bias: false,
                initializer_cutoff_factor: 2.0,
            },
            extra: Map::new(),
        };
        if model_type == ModelType::ModernBert {
            let m = &mut config.modernbert;
            // Absent: transformers' default 10 000; `null`: the global base (as its attention does).
            let local_default = match r.0.get("local_rope_theta") {
                Some(Value::Null) => global_rope_theta,
                _ => 10_000.0,
            };
            m.local_rope_theta = r.float("local_rope_theta", local_default)?;
            m.local_attention = r.int("local_attention", 128)?;
            m.global_attn_every_n_layers = r.int("global_attn_every_n_layers", 3)?;
            m.norm_bias = r.bool("norm_bias", false)?;
            m.attention_bias = r.bool("attention_bias", false)?;
            m.mlp_bias = r.bool("mlp_bias", false)?;
            // `null` means 3 in transformers' `_init_weights`; absent, the class default 2.
            let cutoff_default = match r.0.get("initializer_cutoff_factor") {
                Some(Value::Null) => 3.0,
                _ => 2.0,
            };
            m.initializer_cutoff_factor = r.float("initializer_cutoff_factor", cutoff_default)?;
        }
        config.extra = map;
        config.validate()?;
        Ok(config)
    }

    /// The padding token id (`pad_token_id`, the architecture's default when absent).
    pub fn pad_id(&self) -> i64 {
        self.pad_token_id
            .unwrap_or(self.model_type.defaults().pad_token_id)
    }

    /// The padding index of the embedding tables: the word-embedding row padding uses (which
    /// receives no gradient) and the padding index of RoBERTa-style positions. `pad_token_id` for
    /// every architecture but MPNet, whose embeddings fix it at 1 whatever the config says (as
    /// transformers' `MPNetEmbeddings`).
    pub fn padding_idx(&self) -> i64 {
        match self.model_type {
            ModelType::Mpnet => 1,
            _ => self.pad_id(),
        }
    }

    /// Width of one attention head.
    pub fn head_size(&self) -> i64 {
        self.hidden_size / self.num_attention_heads
    }

    /// The longest input (tokens, specials included) the position embeddings allow.
    pub fn max_tokens(&self) -> i64 {
        if self.model_type.roberta_positions() {
            self.max_position_embeddings - self.padding_idx() - 1
        } else {
            self.max_position_embeddings
        }
    }

    /// Whether ModernBERT's layer `i` attends globally (else within its sliding window).
    pub fn global_layer(&self, i: i64) -> bool {
        i % self.modernbert.global_attn_every_n_layers == 0
    }

    /// Check the values are usable; the message names the offending key (the architecture's
    /// own name for it).
    pub fn validate(&self) -> Result<(), String> {
        let keys = self.model_type.json_keys();
        let mut positive = vec![
            ("vocab_size", self.vocab_size),
            (keys.hidden_size, self.hidden_size),
            (keys.num_hidden_layers, self.num_hidden_layers),
            (keys.num_attention_heads, self.num_attention_heads),
            (keys.intermediate_size, self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        if self.model_type.token_types() {
            positive.push(("type_vocab_size", self.type_vocab_size));
        }
        if self.model_type == ModelType::Mpnet {
            positive.push((
                "relative_attention_num_buckets",
                self.relative_attention_num_buckets,
            ));
        }
        if self.model_type == ModelType::ModernBert {
            positive.push((
                "global_attn_every_n_layers",
                self.modernbert.global_attn_every_n_layers,
            ));
            positive.push(("local_attention", self.modernbert.local_attention));
        }
        for (k, v) in positive {
            if v < 1 {
                return Err(format!("{k} must be at least 1, found {v}"));
            }
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(format!(
                "{} ({}) must divide {} ({})",
                keys.num_attention_heads,
                self.num_attention_heads,
                keys.hidden_size,
                self.hidden_size
            ));
        }
        if self.model_type == ModelType::ModernBert && self.head_size() % 2 != 0 {
            return Err(format!(
                "rotary positions need an even head width: hidden_size {} / num_attention_heads {} = {}",
                self.hidden_size,
                self.num_attention_heads,
                self.head_size()
            ));
        }
        if self.model_type == ModelType::Mpnet && self.relative_attention_num_buckets < 32 {
            // transformers' MPNet always buckets relative positions into 32 (its
            // `compute_position_bias` ignores the setting), so the table needs 32 rows.
            return Err(format!(
                "relative_attention_num_buckets must be at least 32 (MPNet buckets relative positions into 32), found {}",
                self.relative_attention_num_buckets
            ));
        }
        let mut probs = vec![
            (keys.hidden_dropout_prob[0], self.hidden_dropout_prob),
            (
                keys.attention_probs_dropout_prob,
                self.attention_probs_dropout_prob,
            ),
        ];
        if let Some(k) = keys.hidden_dropout_prob.get(1) {
            probs.push((k, self.modernbert.mlp_dropout));
        }
        for (k, p) in probs {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{k} must be in [0, 1), found {p}"));
            }
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return Err(format!(
                "{} must be positive, found {}",
                keys.layer_norm_eps.unwrap_or("layer_norm_eps"),
                self.layer_norm_eps
            ));
        }
        if self.initializer_range.is_nan() || self.initializer_range < 0.0 {
            return Err(format!(
                "initializer_range must be non-negative, found {}",
                self.initializer_range
            ));
        }
        if self.model_type == ModelType::ModernBert {
            // Scaled rotary positions (no released ModernBERT uses them) are not implemented:
            // refused rather than silently read as plain RoPE.
            if let Some(s) = self.extra.get("rope_scaling").filter(|v| !v.is_null()) {
                let kind = s
                    .get("rope_type")
                    .or_else(|| s.get("type"))
                    .and_then(Value::as_str);
                if kind != Some("default") {
                    return Err(format!(
                        "rope_scaling {s} is not supported for modernbert (plain rotary positions with global_rope_theta / local_rope_theta only)"
                    ));
                }
            }
            let m = &self.modernbert;
            for (k, v) in [
                ("global_rope_theta", m.global_rope_theta),
                ("local_rope_theta", m.local_rope_theta),
                ("initializer_cutoff_factor", m.initializer_cutoff_factor),
            ] {
                if v.is_nan() || v <= 0.0 {
                    return Err(format!("{k} must be positive, found {v}"));
                }
            }
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
                "max_position_embeddings ({}) leaves no positions after the padding index {}",
                self.max_position_embeddings,
                self.padding_idx()
            ));
        }
        if self.model_type.token_types() || self.model_type == ModelType::Mpnet {
            if let Some(p) = self.extra.get("position_embedding_type") {
                if p.as_str() != Some("absolute") {
                    return Err(format!(
                        "position_embedding_type {p} is not supported (only \"absolute\")"
                    ));
                }
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
            self.modernbert.mlp_dropout = v;
        }
        if let Some(v) = o.attention_probs_dropout_prob {
            self.attention_probs_dropout_prob = v;
        }
        self.validate()
            .map_err(|e| format!("after model.config overrides: {e}"))
    }

    /// The config.json object: every key kept from the source, the settings under the
    /// architecture's own names.
    pub fn to_json(&self) -> Map<String, Value> {
        let keys = self.model_type.json_keys();
        let mut m = self.extra.clone();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        put("model_type", Value::from(self.model_type.as_str()));
        put("vocab_size", Value::from(self.vocab_size));
        put(keys.hidden_size, Value::from(self.hidden_size));
        put(keys.num_hidden_layers, Value::from(self.num_hidden_layers));
        put(
            keys.num_attention_heads,
            Value::from(self.num_attention_heads),
        );
        put(keys.intermediate_size, Value::from(self.intermediate_size));
        put(keys.hidden_act, Value::from(self.hidden_act.as_str()));
        put(
            keys.hidden_dropout_prob[0],
            Value::from(self.hidden_dropout_prob),
        );
        if let Some(k) = keys.hidden_dropout_prob.get(1) {
            put(k, Value::from(self.modernbert.mlp_dropout));
        }
        put(
            keys.attention_probs_dropout_prob,
            Value::from(self.attention_probs_dropout_prob),
        );
        put(
            "max_position_embeddings",
            Value::from(self.max_position_embeddings),
        );
        if self.model_type.token_types() {
            put("type_vocab_size", Value::from(self.type_vocab_size));
        }
        if let Some(k) = keys.layer_norm_eps {
            put(k, Value::from(self.layer_norm_eps));
        }
        // The id the model was built with (the architecture's default when config.json had none),
        // so transformers builds the same padding rows.
        put("pad_token_id", Value::from(self.pad_id()));
        put("initializer_range", Value::from(self.initializer_range));
        match self.model_type {
            ModelType::DistilBert => put(
                "sinusoidal_pos_embds",
                Value::Bool(self.sinusoidal_pos_embds),
            ),
            ModelType::Mpnet => put(
                "relative_attention_num_buckets",
                Value::from(self.relative_attention_num_buckets),
            ),
            ModelType::ModernBert => {
                let s = &self.modernbert;
                put("global_rope_theta", Value::from(s.global_rope_theta));
                put("local_rope_theta", Value::from(s.local_rope_theta));
                put("local_attention", Value::from(s.local_attention));
                put(
                    "global_attn_every_n_layers",
                    Value::from(s.global_attn_every_n_layers),
                );
                put("norm_bias", Value::Bool(s.norm_bias));
                put("attention_bias", Value::Bool(s.attention_bias));
                put("mlp_bias", Value::Bool(s.mlp_bias));
                put(
                    "initializer_cutoff_factor",
                    Value::from(s.initializer_cutoff_factor),
                );
            }
            _ => {}
        }
        m
    }

    /// The JSON written to a saved checkpoint's `config.json`: every field (unknown ones kept),
    /// `architectures` naming the bare encoder class the weights belong to.
    pub fn to_json_pretty(&self) -> String {
        let mut m = self.to_json();
        m.insert(
            "architectures".into(),
            Value::Array(vec![Value::from(self.model_type.architecture())]),
        );
        m.insert("torch_dtype".into(), Value::from("float32"));
        // Serialising plain data into a JSON value cannot fail.
        serde_json::to_string_pretty(&Value::Object(m)).unwrap_or_default()
    }
}

/// The `model.config.*` keys that change the architecture (and hence the weights' shapes) and are
/// set in `o` to a value different from `config`'s.
pub fn architecture_overrides(config: &EncoderConfig, o: &ModelOverrides) -> Vec<String> {
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
        let c = EncoderConfig::from_json(MINI).unwrap();
        assert_eq!(c.hidden_size, 32);
        assert_eq!(c.max_position_embeddings, 512);
        assert_eq!(c.layer_norm_eps, 1e-12);
        assert_eq!(c.extra["gradient_checkpointing"], Value::Bool(false));
        let saved: Value = serde_json::from_str(&c.to_json_pretty()).unwrap();
        assert_eq!(saved["gradient_checkpointing"], Value::Bool(false));
        assert_eq!(saved["architectures"][0], "BertModel");
        assert_eq!(saved["hidden_act"], "gelu");
        let again = EncoderConfig::from_json(&c.to_json_pretty()).unwrap();
        assert_eq!(again.hidden_size, c.hidden_size);
        assert_eq!(again.extra["gradient_checkpointing"], Value::Bool(false));
    }

    #[test]
    fn rejects_unsupported() {
        let e = EncoderConfig::from_json(r#"{"model_type": "gpt2"}"#).unwrap_err();
        assert!(e.contains("model_type `gpt2`"), "{e}");
        assert!(
            e.contains("supported: bert, roberta, xlm-roberta, distilbert, mpnet, modernbert"),
            "{e}"
        );
        let e = EncoderConfig::from_json(r#"{"hidden_act": "quick_gelu"}"#).unwrap_err();
        assert!(e.contains("hidden_act `quick_gelu`"), "{e}");
        let e = EncoderConfig::from_json(r#"{"hidden_size": 30, "num_attention_heads": 4}"#)
            .unwrap_err();
        assert!(e.contains("must divide"), "{e}");
        let e =
            EncoderConfig::from_json(r#"{"position_embedding_type": "relative_key"}"#).unwrap_err();
        assert!(e.contains("position_embedding_type"), "{e}");
    }

    #[test]
    fn overrides_apply_and_validate() {
        let mut c = EncoderConfig::from_json(MINI).unwrap();
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
        let c = EncoderConfig::from_json(
            r#"{"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}"#,
        )
        .unwrap();
        assert_eq!(c.max_tokens(), 512);
        assert!(c.model_type.roberta_positions());
    }

    #[test]
    fn distilbert_names_are_read_and_written_back() {
        let text = r#"{"model_type": "distilbert", "vocab_size": 100, "dim": 32, "n_layers": 3,
            "n_heads": 4, "hidden_dim": 48, "activation": "relu", "dropout": 0.2,
            "attention_dropout": 0.15, "max_position_embeddings": 64, "sinusoidal_pos_embds": true,
            "qa_dropout": 0.1, "seq_classif_dropout": 0.2, "pad_token_id": 0}"#;
        let mut c = EncoderConfig::from_json(text).unwrap();
        assert_eq!(
            (
                c.hidden_size,
                c.num_hidden_layers,
                c.num_attention_heads,
                c.intermediate_size
            ),
            (32, 3, 4, 48)
        );
        assert_eq!(c.hidden_act, HiddenAct::Relu);
        assert_eq!(
            (c.hidden_dropout_prob, c.attention_probs_dropout_prob),
            (0.2, 0.15)
        );
        assert_eq!(c.layer_norm_eps, 1e-12);
        assert_eq!(c.type_vocab_size, 0);
        assert!(c.sinusoidal_pos_embds);
        assert!(!c.model_type.has_pooler() && !c.model_type.token_types());
        // Overrides under BERT's names land on DistilBERT's.
        c.apply(&ModelOverrides {
            hidden_size: Some(64),
            hidden_dropout_prob: Some(0.3),
            attention_probs_dropout_prob: Some(0.05),
            ..Default::default()
        })
        .unwrap();
        let saved: Value = serde_json::from_str(&c.to_json_pretty()).unwrap();
        assert_eq!(saved["dim"], 64);
        assert_eq!(saved["dropout"], 0.3);
        assert_eq!(saved["attention_dropout"], 0.05);
        assert_eq!(saved["activation"], "relu");
        assert_eq!(saved["qa_dropout"], 0.1, "unknown keys kept");
        assert_eq!(saved["architectures"][0], "DistilBertModel");
        for bert_name in [
            "hidden_size",
            "hidden_dropout_prob",
            "type_vocab_size",
            "layer_norm_eps",
        ] {
            assert!(
                saved.get(bert_name).is_none(),
                "no BERT name {bert_name} in {saved}"
            );
        }
        // Read back, the saved file is the same configuration (plus the two keys saving adds).
        let mut again = EncoderConfig::from_json(&c.to_json_pretty()).unwrap();
        assert_eq!(
            again.extra.remove("architectures"),
            Some(saved["architectures"].clone())
        );
        assert_eq!(
            again.extra.remove("torch_dtype"),
            Some(Value::from("float32"))
        );
        assert_eq!(again, c);
        let e =
            EncoderConfig::from_json(r#"{"model_type": "distilbert", "dim": 30, "n_heads": 4}"#)
                .unwrap_err();
        assert!(e.contains("n_heads (4) must divide dim (30)"), "{e}");
        let e =
            EncoderConfig::from_json(r#"{"model_type": "distilbert", "dim": "wide"}"#).unwrap_err();
        assert!(e.contains("key `dim` must be an integer"), "{e}");
    }

    #[test]
    fn modernbert_settings_and_dropout_mapping() {
        let c = EncoderConfig::from_json(r#"{"model_type": "modernbert"}"#).unwrap();
        // transformers' ModernBertConfig defaults.
        assert_eq!(
            (c.vocab_size, c.hidden_size, c.num_hidden_layers),
            (50368, 768, 22)
        );
        assert_eq!(
            (c.intermediate_size, c.max_position_embeddings),
            (1152, 8192)
        );
        assert_eq!((c.pad_id(), c.layer_norm_eps), (50283, 1e-5));
        let m = &c.modernbert;
        assert_eq!(
            (m.global_rope_theta, m.local_rope_theta),
            (160000.0, 10000.0)
        );
        assert_eq!((m.local_attention, m.global_attn_every_n_layers), (128, 3));
        assert!(!m.norm_bias && !m.attention_bias && !m.mlp_bias);
        assert_eq!(
            (
                c.hidden_dropout_prob,
                m.mlp_dropout,
                c.attention_probs_dropout_prob
            ),
            (0.0, 0.0, 0.0)
        );
        assert!(c.global_layer(0) && !c.global_layer(1) && !c.global_layer(2) && c.global_layer(3));
        assert_eq!(c.max_tokens(), 8192);
        // `local_rope_theta: null` means the global base, as in transformers.
        let c2 = EncoderConfig::from_json(
            r#"{"model_type": "modernbert", "local_rope_theta": null, "global_rope_theta": 5000.0}"#,
        )
        .unwrap();
        assert_eq!(c2.modernbert.local_rope_theta, 5000.0);
        // `rope_theta` is the alias of the global base; a `null` cutoff is 3, as _init_weights reads it.
        let c3 = EncoderConfig::from_json(
            r#"{"model_type": "modernbert", "rope_theta": 8000.0, "initializer_cutoff_factor": null}"#,
        )
        .unwrap();
        assert_eq!(c3.modernbert.global_rope_theta, 8000.0);
        assert_eq!(c3.modernbert.initializer_cutoff_factor, 3.0);
        // hidden_dropout_prob sets both of ModernBERT's hidden dropouts.
        let mut c = c;
        c.apply(&ModelOverrides {
            hidden_dropout_prob: Some(0.1),
            attention_probs_dropout_prob: Some(0.05),
            ..Default::default()
        })
        .unwrap();
        let saved: Value = serde_json::from_str(&c.to_json_pretty()).unwrap();
        assert_eq!(saved["embedding_dropout"], 0.1);
        assert_eq!(saved["mlp_dropout"], 0.1);
        assert_eq!(saved["attention_dropout"], 0.05);
        assert_eq!(saved["norm_eps"], 1e-5);
        assert_eq!(saved["hidden_activation"], "gelu");
        assert_eq!(saved["architectures"][0], "ModernBertModel");
        assert!(
            saved.get("hidden_dropout_prob").is_none() && saved.get("layer_norm_eps").is_none()
        );
        let e = EncoderConfig::from_json(
            r#"{"model_type": "modernbert", "hidden_size": 36, "num_attention_heads": 4}"#,
        )
        .unwrap_err();
        assert!(e.contains("even head width"), "{e}");
        let e = EncoderConfig::from_json(
            r#"{"model_type": "modernbert", "rope_scaling": {"rope_type": "linear", "factor": 2.0}}"#,
        )
        .unwrap_err();
        assert!(e.contains("is not supported for modernbert"), "{e}");
        assert!(
            EncoderConfig::from_json(r#"{"model_type": "modernbert", "rope_scaling": null}"#)
                .is_ok()
        );
        let e = EncoderConfig::from_json(r#"{"model_type": "modernbert", "mlp_dropout": 1.5}"#)
            .unwrap_err();
        assert!(e.contains("mlp_dropout must be in [0, 1)"), "{e}");
    }

    #[test]
    fn mpnet_positions_and_buckets() {
        // transformers' MPNetConfig defaults (all-mpnet-base-v2 itself says 514 positions).
        let c = EncoderConfig::from_json(r#"{"model_type": "mpnet"}"#).unwrap();
        assert_eq!(
            (c.vocab_size, c.max_position_embeddings, c.pad_id()),
            (30527, 512, 1)
        );
        assert_eq!(c.max_tokens(), 510);
        assert_eq!(c.relative_attention_num_buckets, 32);
        assert!(c.model_type.roberta_positions() && c.model_type.has_pooler());
        // The padding index of MPNet's positions is 1 whatever pad_token_id says.
        let c = EncoderConfig::from_json(
            r#"{"model_type": "mpnet", "pad_token_id": 0, "max_position_embeddings": 514}"#,
        )
        .unwrap();
        assert_eq!((c.padding_idx(), c.max_tokens()), (1, 512));
        let e = EncoderConfig::from_json(
            r#"{"model_type": "mpnet", "relative_attention_num_buckets": 16}"#,
        )
        .unwrap_err();
        assert!(e.contains("at least 32"), "{e}");
    }
}
