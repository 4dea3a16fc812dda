//! Hugging Face model directories as far as planning needs them, without libtorch: `config.json`
//! ([`config`]), the tokenizer ([`tokenizer`]), and the framing of the weights files, so `plan`
//! refuses a broken checkpoint before any run starts. The engine builds models from the same types.

pub mod config;
pub mod error;
pub mod geometry;
pub mod tokenizer;

pub use config::{architecture_overrides, EncoderConfig, HiddenAct, ModelType};

pub use error::{ModelError, Result, ShapeMismatch};
pub use tokenizer::{PaddedBatch, SpecialTokens, TokenizedSentence, Tokenizer};

use std::path::{Path, PathBuf};

/// Check a safetensors file's framing without reading its tensors: the 8-byte header length, the
/// JSON header, and that the file is as long as the header's largest data offset says (a truncated
/// download or a file of garbage is refused here with a plain message).
pub fn check_safetensors(path: &Path) -> Result<()> {
    use std::io::Read;
    let bad = |m: String| ModelError::weights(path, format!("not a valid safetensors file ({m})"));
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let len = f.metadata().map_err(|e| ModelError::io(path, e))?.len();
    let mut head = [0u8; 8];
    if len < 8 {
        return Err(bad(format!(
            "it is {len} bytes long, shorter than the 8-byte header length"
        )));
    }
    f.read_exact(&mut head)
        .map_err(|e| ModelError::io(path, e))?;
    let n = u64::from_le_bytes(head);
    if n > len - 8 || n > 100_000_000 {
        return Err(bad(format!(
            "its header length field says {n} bytes, the file has {len} bytes"
        )));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|e| ModelError::io(path, e))?;
    let json: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("its header is not valid JSON: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| bad("its header is not a JSON object".into()))?;
    let mut end = 0u64;
    for (name, t) in obj {
        if name == "__metadata__" {
            continue;
        }
        let off = t
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .filter(|o| o.len() == 2)
            .and_then(|o| Some((o[0].as_u64()?, o[1].as_u64()?)))
            .filter(|(a, b)| a <= b)
            .ok_or_else(|| bad(format!("tensor `{name}` has no valid data_offsets")))?;
        end = end.max(off.1);
    }
    let want = 8 + n + end;
    if want != len {
        return Err(bad(if want > len {
            format!("truncated: its tensors need {want} bytes, the file has {len}")
        } else {
            format!("{} bytes after its last tensor", len - want)
        }));
    }
    Ok(())
}

/// The shard files named by a `*.index.json`, in order.
pub fn shards(index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(|e| ModelError::io(index, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::weights(index, format!("not valid JSON: {e}")))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::weights(index, "no `weight_map` object"))?;
    let mut files: Vec<String> = map
        .values()
        .filter_map(|f| f.as_str().map(String::from))
        .collect();
    files.sort();
    files.dedup();
    let dir = index.parent().unwrap_or(Path::new("."));
    Ok(files.into_iter().map(|f| dir.join(f)).collect())
}

/// The checkpoint's tokenizer, checked against its config (ids within the vocabulary; RoBERTa's pad id).
pub fn tokenizer_for(dir: &Path, config: &EncoderConfig) -> Result<Tokenizer> {
    let tokenizer = Tokenizer::from_dir(dir, config.model_type)?;
    let max_id = tokenizer.max_id();
    if max_id >= config.vocab_size {
        return Err(ModelError::tokenizer(
            dir,
            format!(
                "the tokenizer produces ids up to {max_id} but config.json has vocab_size {}",
                config.vocab_size
            ),
        ));
    }
    // RoBERTa's positions skip the padding id; MPNet's embeddings fix theirs at 1 whatever the
    // tokenizer pads with (transformers' MPNet), so only RoBERTa and XLM-R need the two to agree.
    let roberta = matches!(
        config.model_type,
        ModelType::Roberta | ModelType::XlmRoberta
    );
    if roberta && tokenizer.special_tokens().pad != config.pad_id() {
        return Err(ModelError::tokenizer(
            dir,
            format!(
                "the tokenizer's pad id {} differs from config.json's pad_token_id {}, which RoBERTa's positions depend on",
                tokenizer.special_tokens().pad,
                config.pad_id()
            ),
        ));
    }
    Ok(tokenizer)
}

/// Check a model directory as loading would, without building the model: config.json, the
/// tokenizer, and (when `weights`) the framing of the weights files. Cheap enough for `plan`.
pub fn check_dir(dir: &Path, weights: bool) -> Result<()> {
    if !dir.is_dir() {
        return Err(ModelError::MissingDir(dir.to_path_buf()));
    }
    let config = EncoderConfig::from_file(&dir.join("config.json"))?;
    tokenizer_for(dir, &config)?;
    if !weights {
        return Ok(());
    }
    let st = dir.join("model.safetensors");
    if st.is_file() {
        return check_safetensors(&st);
    }
    let st_index = dir.join("model.safetensors.index.json");
    if st_index.is_file() {
        for f in shards(&st_index)? {
            if !f.is_file() {
                return Err(ModelError::MissingFile {
                    path: f,
                    what: format!("a shard named by {}", st_index.display()),
                });
            }
            check_safetensors(&f)?;
        }
        return Ok(());
    }
    for bin in ["pytorch_model.bin", "pytorch_model.bin.index.json"] {
        if dir.join(bin).is_file() {
            return Ok(());
        }
    }
    Err(ModelError::NoWeights(dir.to_path_buf()))
}
