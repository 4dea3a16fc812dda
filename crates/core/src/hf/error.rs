//! The errors of model loading, tokenisation and saving. Each names the file it concerns.

use std::path::PathBuf;

/// A problem with a model directory, its files, or a request made of a loaded model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model directory does not exist (or is not a directory).
    #[error("model directory {0} does not exist or is not a directory")]
    MissingDir(PathBuf),
    /// A required file is absent.
    #[error("{path} not found: {what}")]
    MissingFile {
        /// The file looked for.
        path: PathBuf,
        /// What it is needed for.
        what: String,
    },
    /// `config.json` could not be read, parsed, or describes an unsupported or invalid model.
    #[error("{path}: {message}")]
    Config {
        /// The config.json.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint has no weights file.
    #[error("no weights in {0}: expected model.safetensors (or its index) or pytorch_model.bin (or its index); use model.init = \"random\" to train from scratch")]
    NoWeights(PathBuf),
    /// A weights file could not be read or decoded.
    #[error("{path}: cannot read weights: {message}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint lacks tensors the model needs.
    #[error("{path}: {} tensor(s) the model needs are missing: {}", keys.len(), list(keys))]
    MissingKeys {
        /// The weights file.
        path: PathBuf,
        /// The missing keys (the model's names, without prefix).
        keys: Vec<String>,
    },
    /// Checkpoint tensors whose shapes differ from what config.json implies.
    #[error("{path}: {} tensor(s) have the wrong shape: {}", mismatches.len(), shapes(mismatches))]
    ShapeMismatch {
        /// The weights file.
        path: PathBuf,
        /// Each tensor whose shape differs.
        mismatches: Vec<ShapeMismatch>,
    },
    /// The tokenizer files could not be read or are inconsistent with the model.
    #[error("{path}: tokenizer: {message}")]
    Tokenizer {
        /// The tokenizer file or model directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A request the model cannot serve (e.g. `max_len` beyond the position embeddings).
    #[error("{0}")]
    Invalid(String),
    /// A file-system error while reading or writing a checkpoint.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// An error reported by libtorch (the engine converts its errors into this).
    #[error("libtorch: {0}")]
    Torch(String),
}

/// One tensor whose checkpoint shape differs from the model's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The model's name for the tensor (HF key without prefix).
    pub key: String,
    /// The shape config.json implies.
    pub expected: Vec<i64>,
    /// The shape in the checkpoint.
    pub found: Vec<i64>,
}

const SHOW: usize = 12;

fn list(keys: &[String]) -> String {
    let mut s = keys
        .iter()
        .take(SHOW)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOW {
        s.push_str(&format!(", … ({} more)", keys.len() - SHOW));
    }
    s
}

fn shapes(m: &[ShapeMismatch]) -> String {
    let mut s = m
        .iter()
        .take(SHOW)
        .map(|m| format!("{} expected {:?}, found {:?}", m.key, m.expected, m.found))
        .collect::<Vec<_>>()
        .join("; ");
    if m.len() > SHOW {
        s.push_str(&format!("; … ({} more)", m.len() - SHOW));
    }
    s
}

impl ModelError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ModelError::Config {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn weights(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ModelError::Weights {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn tokenizer(path: impl Into<PathBuf>, message: impl ToString) -> Self {
        ModelError::Tokenizer {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

/// Results of this module.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
