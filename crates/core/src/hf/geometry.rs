//! The model geometries of the benchmarks (`bench train --geometry`, `bench sweep`): config.json
//! text and a model directory with BERT's uncased vocabulary, for random initialisation.

use anyhow::{Context, Result};
use std::path::Path;

/// bert-base-uncased's WordPiece vocabulary (the one of all-MiniLM-L6-v2 and BERT).
const VOCAB: &str = include_str!("../../../../models/tiny-bert/vocab.txt");

/// config.json of `g`: minilm (6×384), bert-base (12×768), bert-large, tiny (2×128), or the text of
/// a config.json at that path.
pub fn geometry_config(g: &str) -> Result<String> {
    let (hidden, layers, heads, inter) = match g {
        "minilm" => (384, 6, 12, 1536),
        "bert-base" => (768, 12, 12, 3072),
        "bert-large" => (1024, 24, 16, 4096),
        "tiny" => (128, 2, 2, 512),
        path => {
            return std::fs::read_to_string(path)
                .with_context(|| format!("reading the model geometry {path}"))
        }
    };
    Ok(format!(
        r#"{{"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 30522,
"hidden_size": {hidden}, "num_hidden_layers": {layers}, "num_attention_heads": {heads},
"intermediate_size": {inter}, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
"attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
"initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
"position_embedding_type": "absolute"}}"#
    ))
}

/// A model directory of `geometry` (see [`geometry_config`]) with BERT's uncased vocabulary, for
/// random initialisation.
pub fn write_model_dir(dir: &Path, geometry: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("config.json"), geometry_config(geometry)?)?;
    std::fs::write(dir.join("vocab.txt"), VOCAB)?;
    Ok(())
}
