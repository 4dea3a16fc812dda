//! The model geometries of the benchmarks (`bench train --geometry`, `bench sweep`): config.json
//! text and a model directory with BERT's uncased vocabulary, for random initialisation.

use anyhow::{Context, Result};
use std::path::Path;

/// bert-base-uncased's WordPiece vocabulary (the one of all-MiniLM-L6-v2 and BERT).
const VOCAB: &str = include_str!("../../../../models/tiny-bert/vocab.txt");

/// The named geometries, as `bench train --geometry` lists them.
pub const GEOMETRIES: [&str; 7] = [
    "minilm",
    "bert-base",
    "bert-large",
    "tiny",
    "distilbert-base",
    "mpnet-base",
    "modernbert-base",
];

/// config.json of `g`: minilm (6×384), bert-base (12×768), bert-large, tiny (2×128),
/// distilbert-base (distilbert-base-uncased: 6×768), mpnet-base (all-mpnet-base-v2's MPNet:
/// 12×768), modernbert-base (ModernBERT-base: 22×768, GeGLU 1152, global attention every third
/// layer, a 128-token window otherwise; its dropouts set to 0.1 as the others' are, since SimCSE
/// trains on dropout), or the text of a config.json at that path.
pub fn geometry_config(g: &str) -> Result<String> {
    let bert = |hidden, layers, heads, inter| {
        format!(
            r#"{{"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 30522,
"hidden_size": {hidden}, "num_hidden_layers": {layers}, "num_attention_heads": {heads},
"intermediate_size": {inter}, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
"attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
"initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
"position_embedding_type": "absolute"}}"#
        )
    };
    Ok(match g {
        "minilm" => bert(384, 6, 12, 1536),
        "bert-base" => bert(768, 12, 12, 3072),
        "bert-large" => bert(1024, 24, 16, 4096),
        "tiny" => bert(128, 2, 2, 512),
        "distilbert-base" => r#"{"architectures": ["DistilBertModel"], "model_type": "distilbert",
"vocab_size": 30522, "dim": 768, "n_layers": 6, "n_heads": 12, "hidden_dim": 3072,
"activation": "gelu", "dropout": 0.1, "attention_dropout": 0.1, "max_position_embeddings": 512,
"sinusoidal_pos_embds": false, "initializer_range": 0.02, "pad_token_id": 0}"#
            .to_string(),
        "mpnet-base" => r#"{"architectures": ["MPNetModel"], "model_type": "mpnet",
"vocab_size": 30527, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
"intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
"attention_probs_dropout_prob": 0.1, "max_position_embeddings": 514, "initializer_range": 0.02,
"layer_norm_eps": 1e-05, "relative_attention_num_buckets": 32, "pad_token_id": 1,
"bos_token_id": 0, "eos_token_id": 2}"#
            .to_string(),
        "modernbert-base" => r#"{"architectures": ["ModernBertModel"], "model_type": "modernbert",
"vocab_size": 50368, "hidden_size": 768, "intermediate_size": 1152, "num_hidden_layers": 22,
"num_attention_heads": 12, "hidden_activation": "gelu", "max_position_embeddings": 8192,
"initializer_range": 0.02, "initializer_cutoff_factor": 2.0, "norm_eps": 1e-05,
"norm_bias": false, "global_rope_theta": 160000.0, "local_rope_theta": 10000.0,
"global_attn_every_n_layers": 3, "local_attention": 128, "attention_bias": false,
"mlp_bias": false, "embedding_dropout": 0.1, "attention_dropout": 0.1, "mlp_dropout": 0.1,
"pad_token_id": 0, "reference_compile": false}"#
            .to_string(),
        path if !Path::new(path).exists() => anyhow::bail!(
            "unknown model geometry `{path}`: one of {} or the path of a config.json",
            GEOMETRIES.join(", ")
        ),
        path => std::fs::read_to_string(path)
            .with_context(|| format!("reading the model geometry {path}"))?,
    })
}

/// A model directory of `geometry` (see [`geometry_config`]) with BERT's uncased vocabulary, for
/// random initialisation. MPNet's is BERT's with `<s> <pad> </s> <unk>` before it and `<mask>`
/// after it, as all-mpnet-base-v2's vocabulary is laid out (padding id 1, which MPNet's positions
/// need).
pub fn write_model_dir(dir: &Path, geometry: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let config = geometry_config(geometry)?;
    std::fs::write(dir.join("config.json"), &config)?;
    let mpnet = serde_json::from_str::<serde_json::Value>(&config)
        .ok()
        .and_then(|v| v.get("model_type")?.as_str().map(|t| t == "mpnet"))
        .unwrap_or(false);
    if mpnet {
        let vocab = format!("<s>\n<pad>\n</s>\n<unk>\n{}<mask>\n", VOCAB);
        std::fs::write(dir.join("vocab.txt"), vocab)?;
        std::fs::write(
            dir.join("tokenizer_config.json"),
            r#"{"do_lower_case": true, "bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>",
"sep_token": "</s>", "pad_token": "<pad>", "unk_token": "[UNK]", "mask_token": "<mask>",
"tokenizer_class": "MPNetTokenizer", "model_max_length": 512}"#,
        )?;
    } else {
        std::fs::write(dir.join("vocab.txt"), VOCAB)?;
    }
    Ok(())
}
