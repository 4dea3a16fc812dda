//! Sentence encoders in tch — BERT, RoBERTa, XLM-R ([`bert`]), DistilBERT ([`distilbert`]), MPNet
//! ([`mpnet`]) and ModernBERT ([`modernbert`]): Hugging Face checkpoint loading and saving, seeded
//! random initialisation, the tokenizer, and SimCSE's poolers.
//!
//! ```text
//! LoadedModel::load(dir, Init, &ModelOverrides, device)
//!   ├─ config.json ─▶ EncoderConfig (+ overrides)
//!   ├─ tokenizer.json | vocab.txt | vocab.json+merges.txt ─▶ Tokenizer
//!   ├─ VarStore: BertModel at the root (HF key names), MlpLayer under `mlp.dense`
//!   └─ model.safetensors | pytorch_model.bin (or sharded) ─▶ variables; the rest seeded
//! LoadedModel::forward_t(&EncodedBatch, train) → all hidden states
//! LoadedModel::sentence_embeddings(&EncodedBatch, &Pooler, train) → [B, H]
//! LoadedModel::embed(&sentences, &Pooler, max_len, batch_size) → [N, H] (eval, no_grad)
//! LoadedModel::save_pretrained(dir)  (atomic; loadable by transformers' AutoModel)
//! ```

pub mod bert;
pub mod distilbert;
pub mod dropout;
mod layers;
mod load;
pub mod modernbert;
pub mod mpnet;
pub mod pooling;
mod torch_pickle;
// config.json, the errors and the tokenizer need no libtorch: they live in the core (`plan` checks
// model directories with them) and are used here under their old names.
pub use crate::hf::{config, error, tokenizer};

pub use bert::BertModel;
pub use config::{EncoderConfig, HiddenAct, ModelType};
pub use error::{ModelError, Result, ShapeMismatch};
pub use pooling::{MlpLayer, Pooler, Pooling};
pub use tokenizer::{PaddedBatch, SpecialTokens, TokenizedSentence, Tokenizer};

/// A transformer encoder: token ids to every hidden state. Each architecture is one module
/// implementing this ([`bert`], [`distilbert`], [`mpnet`], [`modernbert`]) and one arm of
/// [`build_encoder`] and of [`var_init`]; loading,
/// saving, pooling, the trainer, the probes and the evaluation see only this interface and the
/// variables it registers under Hugging Face's key names.
pub trait Encoder: std::fmt::Debug + Send {
    /// Transformer layers `L`: [`Encoder::forward_t`] returns `L + 1` hidden states.
    fn num_layers(&self) -> usize;

    /// Every hidden state `[B, T, H]` (index 0 the embedding output, `L` the last layer) of a
    /// batch (ids, mask 1 = token, the real-token index); `train` switches dropout. Padded
    /// positions may hold anything the poolers mask out (BERT's are zeros).
    fn forward_t(&self, batch: &EncodedBatch, train: bool) -> Vec<Tensor>;
}

/// BERT, RoBERTa and XLM-R.
impl Encoder for BertModel {
    fn num_layers(&self) -> usize {
        BertModel::num_layers(self)
    }

    fn forward_t(&self, batch: &EncodedBatch, train: bool) -> Vec<Tensor> {
        BertModel::forward_t(
            self,
            &batch.input_ids,
            &batch.attention_mask,
            batch.real.as_ref(),
            train,
        )
    }
}

/// The encoder `config.json` describes, its variables created under `root` with the
/// architecture's Hugging Face key names. The registry of architectures: a new one is a module
/// implementing [`Encoder`] and an arm here (with its `model_type` in [`ModelType`]).
pub fn build_encoder(root: &nn::Path, config: &EncoderConfig) -> Box<dyn Encoder> {
    match config.model_type {
        ModelType::Bert | ModelType::Roberta | ModelType::XlmRoberta => {
            Box::new(BertModel::new(root, config))
        }
        ModelType::DistilBert => Box::new(distilbert::DistilBertModel::new(root, config)),
        ModelType::Mpnet => Box::new(mpnet::MpnetModel::new(root, config)),
        ModelType::ModernBert => Box::new(modernbert::ModernBertModel::new(root, config)),
    }
}

/// How random initialisation fills one variable, as the architecture's `_init_weights` in
/// transformers does (values are drawn from the run's seed and the variable's name).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VarInit {
    /// LayerNorm weights.
    Ones,
    /// Biases, LayerNorm biases.
    Zeros,
    /// `N(0, std)`, with row `zero_row` (an embedding's padding index) set to 0.
    Normal {
        /// Standard deviation.
        std: f64,
        /// The padding row, zeroed.
        zero_row: Option<i64>,
    },
    /// `N(0, std)` truncated to `±cutoff·std` (ModernBERT's `trunc_normal_`).
    TruncNormal {
        /// Standard deviation.
        std: f64,
        /// Truncation, in standard deviations.
        cutoff: f64,
    },
    /// DistilBERT's fixed sinusoidal position table.
    Sinusoidal,
}

/// Whether the variable `name` belongs to a normalisation layer: its module is BERT's
/// `LayerNorm` or ends in `norm` (DistilBERT's `sa_layer_norm`, ModernBERT's `final_norm`, …), as
/// HF Trainer's `(^|\.)norm(\.|$)` / `_norm(\.|$)` rule finds them.
pub fn is_norm(name: &str) -> bool {
    name.split('.')
        .any(|m| m == "LayerNorm" || m == "norm" || m.ends_with("_norm"))
}

/// The initialisation of the variable `name` (a Hugging Face key, or SimCSE's `mlp.dense.*`).
pub fn var_init(c: &EncoderConfig, name: &str) -> VarInit {
    let module = name.rsplit('.').nth(1).unwrap_or("");
    let std = c.initializer_range;
    if is_norm(name) {
        return if name.ends_with(".weight") {
            VarInit::Ones
        } else {
            VarInit::Zeros
        };
    }
    if name.ends_with(".bias") {
        return VarInit::Zeros;
    }
    match c.model_type {
        ModelType::ModernBert if !name.starts_with("mlp.") => {
            let cutoff = c.modernbert.initializer_cutoff_factor;
            let out = module == "Wo";
            VarInit::TruncNormal {
                std: if out {
                    std / (2.0 * c.num_hidden_layers as f64).sqrt()
                } else {
                    std
                },
                cutoff,
            }
        }
        ModelType::DistilBert
            if c.sinusoidal_pos_embds && name == "embeddings.position_embeddings.weight" =>
        {
            VarInit::Sinusoidal
        }
        _ => {
            let zero_row = match name {
                "embeddings.word_embeddings.weight" => Some(c.padding_idx()),
                "embeddings.position_embeddings.weight" if c.model_type.roberta_positions() => {
                    Some(c.padding_idx())
                }
                _ => None,
            };
            VarInit::Normal { std, zero_row }
        }
    }
}

/// A batch ready for the encoder: `[B, T]` int64 ids and mask on one device, and where its real
/// tokens are. The index is built on the host with the batch, so the encoder never asks the
/// device which positions are real (a `nonzero` on CUDA waits for the device to drain).
#[derive(Debug)]
pub struct EncodedBatch {
    /// Token ids.
    pub input_ids: Tensor,
    /// 1 at tokens, 0 at padding.
    pub attention_mask: Tensor,
    /// Flat `[N]` indices into the `B·T` grid of the real tokens (row-major); `None` when no
    /// position is padded.
    pub real: Option<Tensor>,
}

impl EncodedBatch {
    /// From host rows (ids and a 0/1 mask, `B·T` each, row-major) onto `device` in one copy:
    /// ids, mask and the real-token index share one buffer, copied from page-locked memory on
    /// CUDA and queued behind the device's work (the host goes on preparing the step).
    pub fn from_host(ids: &[i64], mask: &[i64], shape: [i64; 2], device: Device) -> Self {
        let n = ids.len();
        debug_assert_eq!(n, mask.len());
        debug_assert_eq!(n as i64, shape[0] * shape[1]);
        let mut buf = Vec::with_capacity(3 * n);
        buf.extend_from_slice(ids);
        buf.extend_from_slice(mask);
        buf.extend(
            mask.iter()
                .enumerate()
                .filter(|(_, &m)| m != 0)
                .map(|(i, _)| i as i64),
        );
        let real = buf.len() - 2 * n;
        let flat = crate::runtime::to_device_queued(Tensor::from_slice(&buf), device);
        EncodedBatch {
            input_ids: flat.narrow(0, 0, n as i64).view(shape),
            attention_mask: flat.narrow(0, n as i64, n as i64).view(shape),
            real: (real < n).then(|| flat.narrow(0, 2 * n as i64, real as i64)),
        }
    }

    /// A padded batch from the tokenizer onto `device`.
    pub fn from_padded(b: &PaddedBatch, device: Device) -> Self {
        Self::from_host(&b.ids, &b.mask, b.shape, device)
    }
}

/// libtorch's errors as model errors.
pub fn torch_err(e: tch::TchError) -> ModelError {
    ModelError::Torch(e.to_string())
}

use crate::spec::config::{resolve_hub, resolve_model_path, ModelConfig, ModelOverrides};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

/// Where the weights come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// The checkpoint's weights. Tensors it may lack (BERT's `pooler`, SimCSE's `mlp`) are
    /// initialised from `seed`.
    Pretrained {
        /// Seed for the tensors the checkpoint lacks.
        seed: i64,
    },
    /// The architecture of config.json (with overrides), initialised from `seed` as transformers'
    /// `_init_weights` does: Linear/Embedding weights ~ N(0, initializer_range), biases 0,
    /// LayerNorm 1 / 0, padding rows of embeddings 0.
    Random {
        /// The initialisation seed.
        seed: i64,
    },
}

impl Init {
    /// From `model.init` (`"pretrained"` or `"random"`) and the run's seed.
    pub fn from_config(init: &str, seed: i64) -> Result<Self> {
        match init {
            "pretrained" => Ok(Init::Pretrained { seed }),
            "random" => Ok(Init::Random { seed }),
            other => Err(ModelError::Invalid(format!(
                "model.init `{other}` is not one of: pretrained, random"
            ))),
        }
    }

    /// The seed of the random part of the initialisation.
    pub fn seed(self) -> i64 {
        match self {
            Init::Pretrained { seed } | Init::Random { seed } => seed,
        }
    }
}

/// What loading did, for the run's log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The weights file (or shard index) read; `None` for random init.
    pub weights: Option<PathBuf>,
    /// Variables the checkpoint lacked and that were initialised from the seed (`pooler.*`,
    /// `mlp.*`); every variable for random init.
    pub initialised: Vec<String>,
    /// Checkpoint tensors that matched nothing (task heads such as `cls.*` and `lm_head.*` and the
    /// `position_ids` buffer are not listed).
    pub unused: Vec<String>,
    /// The weights came from this process's cache (an earlier run of the sweep read them).
    pub weights_cached: bool,
}

/// The directory a run's model comes from: `model.path` (resolved against the sweep file's folder)
/// or `model.hub` (resolved offline in the Hugging Face cache).
pub fn resolve_model_dir(model: &ModelConfig, sweep_file: &Path) -> Result<PathBuf> {
    match (&model.path, &model.hub) {
        (Some(p), _) => Ok(resolve_model_path(sweep_file, p)),
        (None, Some(id)) => resolve_hub(id).map_err(ModelError::Invalid),
        (None, None) => Err(ModelError::Invalid(
            "one of model.path / model.hub is required".into(),
        )),
    }
}

/// A sentence encoder ready to train or embed: variables, config, tokenizer, SimCSE's MLP.
#[derive(Debug)]
pub struct LoadedModel {
    /// Every trainable variable: the encoder under HF key names, the MLP under `mlp.dense`.
    pub vs: nn::VarStore,
    /// config.json with the overrides applied.
    pub config: EncoderConfig,
    /// The checkpoint's tokenizer.
    pub tokenizer: Tokenizer,
    /// The encoder (see [`Encoder`]).
    pub encoder: Box<dyn Encoder>,
    /// SimCSE's MLP (dense + tanh) used by the `cls` pooler.
    pub mlp: MlpLayer,
    /// The directory the model was loaded from (its tokenizer files are copied on save).
    pub source: PathBuf,
    /// What loading did.
    pub report: LoadReport,
}

impl LoadedModel {
    /// Load the checkpoint in `dir` onto `device`.
    ///
    /// `overrides` apply to config.json; dropout overrides always, architecture overrides
    /// (sizes, layers, heads, positions) only with [`Init::Random`]. Weights come from
    /// `model.safetensors` or `pytorch_model.bin` (or their sharded indexes), under bare HF key
    /// names or with a `bert.` / `roberta.` prefix; heads are ignored and old
    /// `LayerNorm.gamma/beta` names accepted. Torch's global RNG is re-seeded with the init seed
    /// before returning, so later random operations (dropout) also follow the seed.
    pub fn load(
        dir: &Path,
        init: Init,
        overrides: &ModelOverrides,
        device: Device,
    ) -> Result<Self> {
        load::load(dir, init, overrides, device, false)
    }

    /// [`LoadedModel::load`] for a run's `model.*` settings and seed. The weights are read once per
    /// process and shared by later runs of the same checkpoint ([`LoadReport::weights_cached`]).
    pub fn from_run_config(
        model: &ModelConfig,
        sweep_file: &Path,
        seed: i64,
        device: Device,
    ) -> Result<Self> {
        let dir = resolve_model_dir(model, sweep_file)?;
        load::load(
            &dir,
            Init::from_config(&model.init, seed)?,
            &model.config,
            device,
            true,
        )
    }

    /// The device the variables live on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Width of the hidden states and sentence vectors.
    pub fn hidden_size(&self) -> i64 {
        self.config.hidden_size
    }

    /// Transformer layers `L` (`forward_t` returns `L + 1` hidden states).
    pub fn num_layers(&self) -> usize {
        self.encoder.num_layers()
    }

    /// The longest input, in tokens with specials, the position embeddings allow.
    pub fn max_tokens(&self) -> i64 {
        self.config.max_tokens()
    }

    /// Check a user-supplied `max_len` (tokens, specials included) against the model.
    pub fn check_max_len(&self, max_len: usize) -> Result<()> {
        if max_len as i64 > self.max_tokens() {
            return Err(ModelError::Invalid(format!(
                "max_len {max_len} exceeds what the model's position embeddings allow ({} tokens; max_position_embeddings = {})",
                self.max_tokens(),
                self.config.max_position_embeddings
            )));
        }
        let n = self.tokenizer.num_special_tokens();
        if max_len <= n {
            return Err(ModelError::Invalid(format!(
                "max_len {max_len} leaves no room for text: each sentence has {n} special tokens"
            )));
        }
        Ok(())
    }

    /// All hidden states (index 0 embeddings, index L last layer), see [`BertModel::forward_t`].
    pub fn forward_t(&self, batch: &EncodedBatch, train: bool) -> Vec<Tensor> {
        self.encoder.forward_t(batch, train)
    }

    /// Sentence vectors `[B, H]`: the encoder then the pooler (with the MLP where SimCSE applies
    /// it). `train` switches dropout and the `cls` pooler's training behaviour.
    pub fn sentence_embeddings(
        &self,
        batch: &EncodedBatch,
        pooler: &Pooler,
        train: bool,
    ) -> Tensor {
        let hidden = self.forward_t(batch, train);
        pooler.forward_t(&hidden, &batch.attention_mask, &self.mlp, train)
    }

    /// Tokenise and pad `sentences` (checked against the model's length limit) onto the model's
    /// device.
    pub fn encode<S: AsRef<str>>(&self, sentences: &[S], max_len: usize) -> Result<EncodedBatch> {
        self.check_max_len(max_len)?;
        let b = self.tokenizer.encode_ids(sentences, max_len)?;
        Ok(EncodedBatch::from_padded(&b, self.device()))
    }

    /// Embed sentences for evaluation: eval mode (no dropout), no gradients, in batches of
    /// `batch_size` (grouped by length; the result keeps the input order). Returns `[N, H]` f32
    /// on the model's device. Evaluation and probes run it in fp32 (no autocast), as SimCSE evaluates.
    pub fn embed<S: AsRef<str>>(
        &self,
        sentences: &[S],
        pooler: &Pooler,
        max_len: usize,
        batch_size: usize,
    ) -> Result<Tensor> {
        if batch_size == 0 {
            return Err(ModelError::Invalid("batch_size must be at least 1".into()));
        }
        self.check_max_len(max_len)?;
        let device = self.device();
        let toks = self.tokenizer.tokenize(sentences, max_len)?;
        if toks.is_empty() {
            return Ok(Tensor::zeros(
                [0, self.hidden_size()],
                (Kind::Float, device),
            ));
        }
        let mut order: Vec<usize> = (0..toks.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(toks[i].len()));
        let parts: Vec<Tensor> = tch::no_grad(|| {
            order
                .chunks(batch_size)
                .map(|chunk| {
                    let batch: Vec<TokenizedSentence> =
                        chunk.iter().map(|&i| toks[i].clone()).collect();
                    let b = EncodedBatch::from_padded(&self.tokenizer.pad_ids(&batch), device);
                    self.sentence_embeddings(&b, pooler, false)
                        .to_kind(Kind::Float)
                })
                .collect()
        });
        let sorted = Tensor::cat(&parts, 0);
        let mut inverse = vec![0i64; order.len()];
        for (pos, &i) in order.iter().enumerate() {
            inverse[i] = pos as i64;
        }
        Ok(sorted.index_select(0, &Tensor::from_slice(&inverse).to_device(device)))
    }

    /// Save as a Hugging Face checkpoint directory: `config.json` (overrides applied),
    /// `model.safetensors` (bare encoder key names, f32, plus `mlp.dense.*`), `tokenizer.json` and
    /// copies of the source's other tokenizer files. Written to a temporary sibling directory and
    /// renamed into place, so `dir` never holds a partial checkpoint; an existing `dir` is replaced.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        load::save_pretrained(self, dir, &|_| Ok(()))
    }

    /// [`LoadedModel::save_pretrained`], with `extra` writing more files into the staging
    /// directory before it is renamed into place (the whole directory appears at once or not at all).
    pub fn save_pretrained_with(
        &self,
        dir: &Path,
        extra: &dyn Fn(&Path) -> std::io::Result<()>,
    ) -> Result<()> {
        load::save_pretrained(self, dir, extra)
    }
}

#[cfg(test)]
mod tests;
