//! Parity of simsweep's model layer with Hugging Face transformers.
//!
//! * Tiny checkpoints in `tests/fixtures/` (written by `scripts/parity_model.py
//!   --write-tiny-fixtures`) with transformers' outputs beside them: a BERT `pytorch_model.bin`,
//!   a RoBERTa `model.safetensors` with a byte-level BPE tokenizer, a DistilBERT
//!   `pytorch_model.bin`, an MPNet and a ModernBERT `model.safetensors` (the last three with
//!   SimCSE's MLP, so the `cls` pooler is compared too). Always run.
//! * all-MiniLM-L6-v2 (`SIMSWEEP_MINILM` = its directory, see `scripts/minilm.sh`) against
//!   `tests/fixtures/minilm_avg.json` (`scripts/parity_model.py --write-fixture`).
//! * Checkpoints written by `save_pretrained` loaded back by transformers, when `SIMSWEEP_PYREF`
//!   names the reference Python (`scripts/pyref.sh`).

use serde::Deserialize;
mod common;

use simsweep_engine::model::{
    EncodedBatch, Init, LoadedModel, ModelType, Pooler, Pooling, Tokenizer,
};
use simsweep_engine::spec::config::ModelOverrides;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

const TOL: f64 = 1e-4;

#[derive(Deserialize)]
struct Expected {
    max_len: usize,
    sentences: Vec<String>,
    input_ids: Vec<Vec<i64>>,
    embeddings: BTreeMap<String, Vec<Vec<f64>>>,
}

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

fn read_expected(path: &Path) -> Expected {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn pretrained(dir: &Path) -> LoadedModel {
    LoadedModel::load(
        dir,
        Init::Pretrained { seed: 0 },
        &ModelOverrides::default(),
        Device::Cpu,
    )
    .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    let t = t.to_kind(Kind::Double).to_device(Device::Cpu);
    (0..t.size()[0])
        .map(|i| Vec::<f64>::try_from(t.get(i)).unwrap())
        .collect()
}

fn max_abs_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len(), "row counts differ");
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len(), "widths differ");
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f64::max)
}

/// Compare token ids and every pooling in `exp` with what `model` computes; returns the largest
/// |Δ| over poolings.
fn check(model: &LoadedModel, exp: &Expected, what: &str) -> f64 {
    let toks = model
        .tokenizer
        .tokenize(&exp.sentences, exp.max_len)
        .unwrap();
    for (i, (t, want)) in toks.iter().zip(&exp.input_ids).enumerate() {
        assert_eq!(
            &t.ids, want,
            "{what}: token ids of sentence {i} ({:?})",
            exp.sentences[i]
        );
    }
    let mut worst: f64 = 0.0;
    for (pooling, want) in &exp.embeddings {
        let p: Pooling = pooling.parse().unwrap();
        let z = model
            .embed(&exp.sentences, &Pooler::new(p), exp.max_len, 4)
            .unwrap();
        let d = max_abs_diff(&rows(&z), want);
        println!(
            "{what}: {pooling}: max |Δ| = {d:.3e} over {} sentences",
            exp.sentences.len()
        );
        assert!(
            d < TOL,
            "{what}: {pooling} differs from transformers by {d:e}"
        );
        worst = worst.max(d);
    }
    worst
}

#[test]
fn tiny_bert_pytorch_bin_matches_transformers() {
    // pytorch_model.bin (torch.save zip), `bert.` prefix, cls.* head with tied weights,
    // LayerNorm.gamma/beta names, tokenizer built from vocab.txt.
    let dir = fixture("tiny-bert-bin");
    let m = pretrained(&dir);
    assert_eq!(
        m.report.weights.as_deref(),
        Some(dir.join("pytorch_model.bin").as_path())
    );
    // BertForMaskedLM has no pooler; neither checkpoint has SimCSE's MLP.
    assert_eq!(
        m.report.initialised,
        [
            "mlp.dense.bias",
            "mlp.dense.weight",
            "pooler.dense.bias",
            "pooler.dense.weight"
        ]
    );
    assert!(m.report.unused.is_empty(), "{:?}", m.report.unused);
    check(
        &m,
        &read_expected(&dir.join("expected.json")),
        "tiny-bert-bin",
    );
}

#[test]
fn tiny_roberta_safetensors_matches_transformers() {
    // model.safetensors with `roberta.` prefix and lm_head, RoBERTa positions (padding_idx 1),
    // gelu_new, byte-level BPE tokenizer.json, no pooler in the checkpoint.
    let dir = fixture("tiny-roberta");
    let m = pretrained(&dir);
    assert_eq!(m.config.model_type, ModelType::Roberta);
    assert!(m
        .report
        .initialised
        .iter()
        .any(|k| k.starts_with("pooler.")));
    let exp = read_expected(&dir.join("expected.json"));
    check(&m, &exp, "tiny-roberta");
    // Without tokenizer.json the tokenizer is rebuilt from vocab.json + merges.txt, identically.
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "vocab.json",
        "merges.txt",
        "special_tokens_map.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(dir.join(f), tmp.path().join(f)).unwrap();
    }
    let slow = Tokenizer::from_dir(tmp.path(), ModelType::Roberta).unwrap();
    let toks = slow.tokenize(&exp.sentences, exp.max_len).unwrap();
    let ids: Vec<Vec<i64>> = toks.into_iter().map(|t| t.ids).collect();
    assert_eq!(ids, exp.input_ids);
}

/// A fixture of a new architecture: what loading read and initialised, and every pooler
/// (`cls` with the checkpoint's SimCSE MLP) against transformers.
fn check_fixture(name: &str, model_type: ModelType, weights: &str, layers: usize) -> LoadedModel {
    let dir = fixture(name);
    let m = pretrained(&dir);
    assert_eq!(m.config.model_type, model_type);
    assert_eq!(m.num_layers(), layers);
    assert_eq!(
        m.report.weights.as_deref(),
        Some(dir.join(weights).as_path())
    );
    // The checkpoint has every encoder tensor and SimCSE's MLP; only MPNet has a pooler, which
    // its masked-LM class lacks.
    let want: Vec<&str> = if model_type.has_pooler() {
        vec!["pooler.dense.bias", "pooler.dense.weight"]
    } else {
        vec![]
    };
    assert_eq!(m.report.initialised, want, "{name}");
    assert!(m.report.unused.is_empty(), "{name}: {:?}", m.report.unused);
    let exp = read_expected(&dir.join("expected.json"));
    assert!(exp.embeddings.contains_key("cls"), "{name}: cls reference");
    assert_eq!(exp.embeddings.len(), 5, "{name}: every pooler");
    check(&m, &exp, name);
    m
}

#[test]
fn tiny_distilbert_pytorch_bin_matches_transformers() {
    // torch.save'd state dict with the `distilbert.` prefix and the vocab_* head.
    let m = check_fixture(
        "tiny-distilbert",
        ModelType::DistilBert,
        "pytorch_model.bin",
        3,
    );
    assert_eq!(m.hidden_size(), 16);
    assert_eq!(
        m.config.intermediate_size, 40,
        "hidden_dim read as intermediate_size"
    );
}

#[test]
fn tiny_mpnet_safetensors_matches_transformers() {
    // `mpnet.` prefix and lm_head; a relative position bias of N(0, 1) and sentences of up to 36
    // tokens, so both the exact and the logarithmic buckets matter.
    let m = check_fixture("tiny-mpnet", ModelType::Mpnet, "model.safetensors", 2);
    assert_eq!(
        m.max_tokens(),
        38,
        "MPNet's positions start after the padding index 1"
    );
    assert_eq!(m.tokenizer.special_tokens().cls, 0, "<s>");
}

#[test]
fn tiny_modernbert_safetensors_matches_transformers() {
    // `model.` prefix, head.* and decoder.*; 4 layers (0 and 3 global, 1 and 2 within ±3
    // positions), two rotary bases, sentences of up to 24 tokens; byte-level BPE with [CLS].
    let m = check_fixture(
        "tiny-modernbert",
        ModelType::ModernBert,
        "model.safetensors",
        4,
    );
    assert!(m.config.global_layer(0) && m.config.global_layer(3));
    assert!(!m.config.global_layer(1) && !m.config.global_layer(2));
    assert_eq!(m.config.modernbert.local_attention, 6);
    let cls = m.tokenizer.special_tokens().cls;
    assert_eq!(m.tokenizer.id_to_token(cls).as_deref(), Some("[CLS]"));
}

fn minilm() -> Option<PathBuf> {
    match std::env::var_os("SIMSWEEP_MINILM") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            common::missing(
                "SIMSWEEP_MINILM is not set (scripts/test sets it from scripts/minilm.sh); the all-MiniLM-L6-v2 parity check did not run",
            );
            None
        }
    }
}

#[test]
fn minilm_matches_transformers() {
    let Some(dir) = minilm() else { return };
    let m = pretrained(&dir);
    assert_eq!(m.num_layers(), 6);
    assert_eq!(m.hidden_size(), 384);
    let exp = read_expected(&fixture("minilm_avg.json"));
    let worst = check(&m, &exp, "all-MiniLM-L6-v2");
    println!("all-MiniLM-L6-v2: worst max |Δ| over poolings = {worst:.3e}");
    // The tokenizer rebuilt from vocab.txt (no tokenizer.json) agrees with tokenizer.json.
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "vocab.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        std::fs::copy(dir.join(f), tmp.path().join(f)).unwrap();
    }
    let slow = Tokenizer::from_dir(tmp.path(), ModelType::Bert).unwrap();
    let a = slow.tokenize(&exp.sentences, exp.max_len).unwrap();
    let b = m.tokenizer.tokenize(&exp.sentences, exp.max_len).unwrap();
    assert_eq!(a, b);
}

/// Write `model`'s checkpoint and its embeddings of the fixture sentences under `out`, and check
/// that simsweep reloads it identically. Returns the checkpoint and the embeddings' JSON.
fn save_and_reload(model: &LoadedModel, pooling: Pooling, out: &Path, what: &str) -> [PathBuf; 2] {
    let sentences: Vec<String> = read_expected(&fixture("minilm_avg.json")).sentences;
    let max_len = model.max_tokens().min(48) as usize;
    let ckpt = out.join(what);
    model.save_pretrained(&ckpt).unwrap();
    let pooler = Pooler::new(pooling);
    let z = model.embed(&sentences, &pooler, max_len, 4).unwrap();
    let back = pretrained(&ckpt);
    let z_back = back.embed(&sentences, &pooler, max_len, 4).unwrap();
    assert!(
        z.equal(&z_back),
        "{what}: embeddings change after save → load"
    );
    let ids: Vec<Vec<i64>> = model
        .tokenizer
        .tokenize(&sentences, max_len)
        .unwrap()
        .into_iter()
        .map(|t| t.ids)
        .collect();
    let doc = serde_json::json!({
        "pooling": pooling.as_str(),
        "max_len": max_len,
        "sentences": sentences,
        "input_ids": ids,
        "embeddings": rows(&z),
    });
    let mut doc = doc;
    let (loss, grads) = training_gradients(&ckpt, &sentences, max_len, pooling, out, what);
    doc["train_loss"] = serde_json::json!(loss);
    doc["train_grads"] = serde_json::json!(grads);
    let emb = out.join(format!("{what}.json"));
    std::fs::write(&emb, doc.to_string()).unwrap();
    [ckpt, emb]
}

/// Temperature of the gradient check's InfoNCE.
const TAU: f64 = 0.05;

/// One training-mode step's loss and gradients for the checkpoint at `ckpt`, with dropout off so
/// transformers can reproduce it: every sentence as two views (SimCSE's unsupervised batch), the
/// pooled views' cosine similarities over `TAU`, cross-entropy against the diagonal. This is where
/// simsweep's encoder runs on the real tokens only ([`simsweep_engine::model::bert`]), so the gradients
/// check that skipping the padding changes nothing. Writes the gradients (by HF name) to a
/// safetensors file and returns the loss and that file's path.
fn training_gradients(
    ckpt: &Path,
    sentences: &[String],
    max_len: usize,
    pooling: Pooling,
    out: &Path,
    what: &str,
) -> (f64, PathBuf) {
    let o = ModelOverrides {
        hidden_dropout_prob: Some(0.0),
        attention_probs_dropout_prob: Some(0.0),
        ..Default::default()
    };
    let m = LoadedModel::load(ckpt, Init::Pretrained { seed: 0 }, &o, Device::Cpu).unwrap();
    let b = m.encode(sentences, max_len).unwrap();
    let ids = b.input_ids.repeat_interleave_self_int(2, Some(0), None);
    let mask = b
        .attention_mask
        .repeat_interleave_self_int(2, Some(0), None);
    let host = |t: &Tensor| Vec::<i64>::try_from(t.flatten(0, -1)).unwrap();
    let (rows, cols) = ids.size2().unwrap();
    let batch = EncodedBatch::from_host(&host(&ids), &host(&mask), [rows, cols], Device::Cpu);
    let z = m.sentence_embeddings(&batch, &Pooler::new(pooling), true);
    let n = sentences.len() as i64;
    let z = z.view([n, 2, -1]);
    let (z1, z2) = (z.select(1, 0), z.select(1, 1));
    let sim = Tensor::cosine_similarity(&z1.unsqueeze(1), &z2.unsqueeze(0), -1, 1e-8) / TAU;
    let target = Tensor::arange(n, (Kind::Int64, Device::Cpu));
    let loss = sim.cross_entropy_for_logits(&target);
    loss.backward();
    let encoder: Vec<(String, Tensor)> = m
        .vs
        .variables()
        .into_iter()
        .filter(|(k, v)| !k.starts_with("mlp.") && !k.starts_with("pooler.") && v.grad().defined())
        .map(|(k, v)| (k, v.grad()))
        .collect();
    assert!(
        encoder.len() > 10,
        "{what}: the encoder's variables have gradients"
    );
    let path = out.join(format!("{what}-grads.safetensors"));
    Tensor::write_safetensors(&encoder, &path).unwrap();
    (loss.double_value(&[]), path)
}

#[test]
fn saved_checkpoints_load_in_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut saved = Vec::new();
    // A tiny random model (architecture overrides are written to config.json).
    let o = ModelOverrides {
        hidden_size: Some(32),
        num_attention_heads: Some(4),
        intermediate_size: Some(64),
        ..Default::default()
    };
    let tiny = LoadedModel::load(
        &repo().join("models/tiny-bert"),
        Init::Random { seed: 17 },
        &o,
        Device::Cpu,
    )
    .unwrap();
    saved.push(save_and_reload(
        &tiny,
        Pooling::AvgFirstLast,
        tmp.path(),
        "tiny-random",
    ));
    // The tiny RoBERTa fixture (its pooler was initialised from the seed).
    let roberta = pretrained(&fixture("tiny-roberta"));
    saved.push(save_and_reload(
        &roberta,
        Pooling::Avg,
        tmp.path(),
        "tiny-roberta",
    ));
    // The new architectures: their fixtures as loaded (SimCSE's MLP included) and a random
    // initialisation of each from its config.json with overrides (ModernBERT's without biases, as
    // the released checkpoints are).
    for (name, pooling) in [
        ("tiny-distilbert", Pooling::AvgTop2),
        ("tiny-mpnet", Pooling::Avg),
        ("tiny-modernbert", Pooling::AvgFirstLast),
    ] {
        saved.push(save_and_reload(
            &pretrained(&fixture(name)),
            pooling,
            tmp.path(),
            name,
        ));
    }
    let o = ModelOverrides {
        hidden_size: Some(24),
        num_attention_heads: Some(3),
        intermediate_size: Some(20),
        num_hidden_layers: Some(4),
        ..Default::default()
    };
    for name in ["tiny-distilbert", "tiny-mpnet"] {
        let m =
            LoadedModel::load(&fixture(name), Init::Random { seed: 5 }, &o, Device::Cpu).unwrap();
        saved.push(save_and_reload(
            &m,
            Pooling::Avg,
            tmp.path(),
            &format!("{name}-random"),
        ));
    }
    let bare = tmp.path().join("modernbert-no-bias");
    std::fs::create_dir_all(&bare).unwrap();
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        std::fs::copy(fixture("tiny-modernbert").join(f), bare.join(f)).unwrap();
    }
    let mut cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("tiny-modernbert/config.json")).unwrap(),
    )
    .unwrap();
    for k in ["norm_bias", "attention_bias", "mlp_bias"] {
        cfg[k] = serde_json::Value::Bool(false);
    }
    std::fs::write(bare.join("config.json"), cfg.to_string()).unwrap();
    let o = ModelOverrides {
        hidden_size: Some(48),
        num_attention_heads: Some(6),
        num_hidden_layers: Some(5),
        ..Default::default()
    };
    let m = LoadedModel::load(&bare, Init::Random { seed: 6 }, &o, Device::Cpu).unwrap();
    assert!(
        !m.vs
            .variables()
            .keys()
            .any(|k| k.ends_with(".bias") && !k.starts_with("mlp.")),
        "no biases"
    );
    saved.push(save_and_reload(
        &m,
        Pooling::Cls,
        tmp.path(),
        "tiny-modernbert-random",
    ));
    // MiniLM as loaded (when provisioned).
    if let Some(dir) = minilm() {
        saved.push(save_and_reload(
            &pretrained(&dir),
            Pooling::Avg,
            tmp.path(),
            "minilm",
        ));
    }
    let py = match std::env::var_os("SIMSWEEP_PYREF") {
        Some(p) if !p.is_empty() => p,
        _ => {
            common::missing(
                "SIMSWEEP_PYREF is not set (scripts/pyref.sh); transformers did not check the saved checkpoints",
            );
            return;
        }
    };
    let mut cmd = std::process::Command::new(&py);
    cmd.arg(repo().join("scripts/parity_model.py"));
    for [ckpt, emb] in &saved {
        cmd.arg("--check-saved")
            .arg(ckpt)
            .arg("--embeddings")
            .arg(emb);
    }
    cmd.arg("--tol").arg(TOL.to_string());
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running {py:?}: {e}"));
    assert!(
        status.success(),
        "transformers disagrees with a checkpoint simsweep saved (see the output above)"
    );
}
