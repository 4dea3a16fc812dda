//! Tests of loading, initialisation, forward passes, saving and errors on a tiny random BERT
//! (hidden 32, 2 layers, 2 heads) with the vocabulary of `models/tiny-bert`.

use super::*;
use crate::spec::config::ModelOverrides;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

const SENTENCES: [&str; 3] = [
    "A man is playing a guitar.",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
];

/// Torch's RNG is process-global and loading re-seeds it: tests that load models or draw dropout
/// masks hold this lock so that parallel tests do not interleave their draws.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(super) fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A model directory: models/tiny-bert's vocab.txt and a smaller config.json.
fn tiny_dir(tmp: &Path) -> PathBuf {
    let d = tmp.join("tiny");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(
        repo().join("models/tiny-bert/vocab.txt"),
        d.join("vocab.txt"),
    )
    .unwrap();
    let config = serde_json::json!({
        "architectures": ["BertForMaskedLM"], "model_type": "bert", "vocab_size": 30522,
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 64,
        "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
        "pad_token_id": 0, "position_embedding_type": "absolute", "custom_field": [1, 2]
    });
    std::fs::write(d.join("config.json"), config.to_string()).unwrap();
    d
}

fn random(dir: &Path, seed: i64) -> LoadedModel {
    LoadedModel::load(
        dir,
        Init::Random { seed },
        &ModelOverrides::default(),
        Device::Cpu,
    )
    .unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn vars_equal(a: &LoadedModel, b: &LoadedModel) {
    let va = a.vs.variables();
    let vb = b.vs.variables();
    assert_eq!(va.len(), vb.len());
    for (k, t) in &va {
        assert!(t.equal(&vb[k]), "variable {k} differs");
    }
}

fn err_text<T: std::fmt::Debug>(r: Result<T>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn forward_gives_all_hidden_states() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let m = random(&tiny_dir(tmp.path()), 1);
    assert_eq!(m.num_layers(), 2);
    let b = m.encode(&SENTENCES, 32).unwrap();
    let (n, t) = b.input_ids.size2().unwrap();
    assert_eq!(n, 3);
    let hs = m.forward_t(&b, false);
    assert_eq!(hs.len(), 3);
    for h in &hs {
        assert_eq!(h.size(), [3, t, 32]);
        assert_eq!(h.kind(), Kind::Float);
    }
    let z = m.sentence_embeddings(&b, &Pooler::new(Pooling::Cls), true);
    assert_eq!(z.size(), [3, 32]);
    // Padding does not change a sentence's vector: alone vs in a padded batch.
    let alone = m
        .embed(&SENTENCES[1..2], &Pooler::new(Pooling::Avg), 32, 8)
        .unwrap();
    let batch = m
        .embed(&SENTENCES, &Pooler::new(Pooling::Avg), 32, 8)
        .unwrap();
    assert!(max_abs_diff(&alone.get(0), &batch.get(1)) < 1e-5);
    // Batching and reordering by length keep the input order.
    let one_by_one = m
        .embed(&SENTENCES, &Pooler::new(Pooling::Avg), 32, 1)
        .unwrap();
    assert!(max_abs_diff(&one_by_one, &batch) < 1e-5);
    assert_eq!(
        m.embed(&[] as &[&str], &Pooler::new(Pooling::Avg), 32, 8)
            .unwrap()
            .size(),
        [0, 32]
    );
}

#[test]
fn dropout_only_in_training() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_dir(tmp.path());
    let m = random(&dir, 3);
    let b = m.encode(&SENTENCES, 32).unwrap();
    let last = |train: bool| m.forward_t(&b, train).pop().unwrap();
    let e1 = last(false);
    let e2 = last(false);
    assert!(e1.equal(&e2), "eval mode must be deterministic");
    let t1 = last(true);
    let t2 = last(true);
    assert!(
        !t1.equal(&t2),
        "two training passes must draw different dropout masks"
    );
    assert!(!t1.equal(&e1));
    tch::manual_seed(11);
    let s1 = last(true);
    tch::manual_seed(11);
    let s2 = last(true);
    assert!(s1.equal(&s2), "dropout follows torch's seed");
    // With both dropouts overridden to 0, training and evaluation agree.
    let o = ModelOverrides {
        hidden_dropout_prob: Some(0.0),
        attention_probs_dropout_prob: Some(0.0),
        ..Default::default()
    };
    let m0 = LoadedModel::load(&dir, Init::Random { seed: 3 }, &o, Device::Cpu).unwrap();
    let h_train = m0.forward_t(&b, true).pop().unwrap();
    let h_eval = m0.forward_t(&b, false).pop().unwrap();
    assert!(max_abs_diff(&h_train, &h_eval) < 1e-6);
    assert!(max_abs_diff(&h_eval, &e1) < 1e-6, "same seed, same weights");
}

#[test]
fn random_init_is_seeded_and_follows_hf() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_dir(tmp.path());
    let a = random(&dir, 7);
    let b = random(&dir, 7);
    vars_equal(&a, &b);
    let c = random(&dir, 8);
    let w = "embeddings.word_embeddings.weight";
    assert!(!a.vs.variables()[w].equal(&c.vs.variables()[w]));
    let vars = a.vs.variables();
    assert_eq!(vars.len(), a.report.initialised.len());
    let we = &vars[w];
    let std = we.std(true).double_value(&[]);
    assert!((std - 0.02).abs() < 0.001, "word embeddings std {std}");
    assert_eq!(
        we.get(0).abs().sum(Kind::Float).double_value(&[]),
        0.0,
        "padding row"
    );
    for (k, v) in &vars {
        let (lo, hi) = (v.min().double_value(&[]), v.max().double_value(&[]));
        if k.contains("LayerNorm.weight") {
            assert_eq!((lo, hi), (1.0, 1.0), "{k}");
        } else if k.ends_with(".bias") {
            assert_eq!((lo, hi), (0.0, 0.0), "{k}");
        } else {
            assert!(lo < 0.0 && hi > 0.0, "{k} is not random");
        }
    }
    let q = &vars["encoder.layer.1.attention.self.query.weight"];
    assert!((q.std(true).double_value(&[]) - 0.02).abs() < 0.002);
    assert!(vars.contains_key("mlp.dense.weight") && vars.contains_key("pooler.dense.bias"));
    // A tensor's initial values depend on the seed and its name only, not on the architecture.
    let o = ModelOverrides {
        num_hidden_layers: Some(3),
        ..Default::default()
    };
    let deeper = LoadedModel::load(&dir, Init::Random { seed: 7 }, &o, Device::Cpu).unwrap();
    assert_eq!(deeper.num_layers(), 3);
    assert!(deeper.vs.variables()[w].equal(we));
}

#[test]
fn hf_key_names() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let m = random(&tiny_dir(tmp.path()), 1);
    let vars = m.vs.variables();
    let shape = |k: &str| vars.get(k).unwrap_or_else(|| panic!("no {k}")).size();
    assert_eq!(shape("embeddings.word_embeddings.weight"), [30522, 32]);
    assert_eq!(shape("embeddings.position_embeddings.weight"), [64, 32]);
    assert_eq!(shape("embeddings.token_type_embeddings.weight"), [2, 32]);
    assert_eq!(shape("embeddings.LayerNorm.weight"), [32]);
    for i in 0..2 {
        let p = format!("encoder.layer.{i}.");
        for k in ["query", "key", "value"] {
            assert_eq!(shape(&format!("{p}attention.self.{k}.weight")), [32, 32]);
            assert_eq!(shape(&format!("{p}attention.self.{k}.bias")), [32]);
        }
        assert_eq!(
            shape(&format!("{p}attention.output.dense.weight")),
            [32, 32]
        );
        assert_eq!(shape(&format!("{p}attention.output.LayerNorm.bias")), [32]);
        assert_eq!(shape(&format!("{p}intermediate.dense.weight")), [64, 32]);
        assert_eq!(shape(&format!("{p}output.dense.weight")), [32, 64]);
        assert_eq!(shape(&format!("{p}output.LayerNorm.weight")), [32]);
    }
    assert_eq!(shape("pooler.dense.weight"), [32, 32]);
    assert_eq!(shape("mlp.dense.weight"), [32, 32]);
    // 5 embedding tensors, 16 per layer, pooler 2, mlp 2.
    assert_eq!(vars.len(), 5 + 16 * 2 + 2 + 2);
}

#[test]
fn save_load_round_trip() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_dir(tmp.path());
    let o = ModelOverrides {
        hidden_dropout_prob: Some(0.2),
        intermediate_size: Some(48),
        ..Default::default()
    };
    let m = LoadedModel::load(&dir, Init::Random { seed: 5 }, &o, Device::Cpu).unwrap();
    let out = tmp.path().join("ckpts/step-10");
    m.save_pretrained(&out).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
        "tokenizer_config.json",
    ] {
        assert!(out.join(f).is_file(), "{f} not saved");
    }
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("ckpts"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "temporary directories left: {leftovers:?}"
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["intermediate_size"], 48);
    assert_eq!(cfg["hidden_dropout_prob"], 0.2);
    assert_eq!(cfg["custom_field"], serde_json::json!([1, 2]));
    assert_eq!(cfg["architectures"][0], "BertModel");
    let st = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    assert!(st.names().iter().all(|n| !n.starts_with("bert.")));
    assert_eq!(
        st.tensor("mlp.dense.weight").unwrap().dtype(),
        safetensors::Dtype::F32
    );

    let back = LoadedModel::load(
        &out,
        Init::Pretrained { seed: 99 },
        &ModelOverrides::default(),
        Device::Cpu,
    )
    .unwrap();
    vars_equal(&m, &back);
    assert!(back.report.initialised.is_empty(), "{:?}", back.report);
    assert!(back.report.unused.is_empty(), "{:?}", back.report);
    assert_eq!(back.config.hidden_dropout_prob, 0.2);
    for pooling in Pooling::ALL {
        let p = Pooler::new(pooling);
        let a = m.embed(&SENTENCES, &p, 32, 2).unwrap();
        let b = back.embed(&SENTENCES, &p, 32, 2).unwrap();
        assert!(a.equal(&b), "{pooling} differs after save/load");
    }
    // Saving over an existing checkpoint replaces it.
    let m2 = random(&dir, 6);
    m2.save_pretrained(&out).unwrap();
    let back2 = LoadedModel::load(
        &out,
        Init::Pretrained { seed: 0 },
        &ModelOverrides::default(),
        Device::Cpu,
    )
    .unwrap();
    vars_equal(&m2, &back2);
    assert_eq!(
        std::fs::read_dir(tmp.path().join("ckpts")).unwrap().count(),
        1
    );
    // The tokenizer saved from vocab.txt reproduces the original.
    let saved_tok = Tokenizer::from_dir(&out, ModelType::Bert).unwrap();
    assert_eq!(
        saved_tok.tokenize(&SENTENCES, 32).unwrap(),
        m.tokenizer.tokenize(&SENTENCES, 32).unwrap()
    );
}

#[test]
fn pretrained_without_pooler_or_mlp_initialises_them() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_dir(tmp.path());
    let m = random(&dir, 5);
    let out = tmp.path().join("ckpt");
    m.save_pretrained(&out).unwrap();
    // Rewrite the weights without pooler.* and mlp.*, with a bert. prefix and a cls.* head.
    let vars = m.vs.variables();
    let mut kept: Vec<(String, Tensor)> = vars
        .iter()
        .filter(|(k, _)| !k.starts_with("pooler.") && !k.starts_with("mlp."))
        .map(|(k, v)| (format!("bert.{k}"), v.shallow_clone()))
        .collect();
    kept.push((
        "cls.predictions.bias".into(),
        Tensor::zeros([30522], (Kind::Float, Device::Cpu)),
    ));
    kept.push((
        "something.else".into(),
        Tensor::zeros([2], (Kind::Float, Device::Cpu)),
    ));
    Tensor::write_safetensors(&kept, out.join("model.safetensors")).unwrap();
    let back = LoadedModel::load(
        &out,
        Init::Pretrained { seed: 4 },
        &ModelOverrides::default(),
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(
        back.report.initialised,
        [
            "mlp.dense.bias",
            "mlp.dense.weight",
            "pooler.dense.bias",
            "pooler.dense.weight"
        ]
    );
    assert_eq!(back.report.unused, ["something.else"]);
    let bv = back.vs.variables();
    let w = "encoder.layer.0.attention.self.key.weight";
    assert!(bv[w].equal(&vars[w]));
    let mlp = &bv["mlp.dense.weight"];
    assert!((mlp.std(true).double_value(&[]) - 0.02).abs() < 0.005);
    let again = LoadedModel::load(
        &out,
        Init::Pretrained { seed: 4 },
        &ModelOverrides::default(),
        Device::Cpu,
    )
    .unwrap();
    assert!(
        again.vs.variables()["mlp.dense.weight"].equal(mlp),
        "seeded"
    );
}

#[test]
fn loading_errors_name_the_problem() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_dir(tmp.path());
    let none = ModelOverrides::default();
    let pre = Init::Pretrained { seed: 0 };
    let cpu = Device::Cpu;

    let missing = tmp.path().join("nope");
    let e = err_text(LoadedModel::load(&missing, pre, &none, cpu));
    assert!(e.contains("does not exist") && e.contains("nope"), "{e}");

    // No weights in a config-only directory (models/tiny-bert is such a directory).
    let e = err_text(LoadedModel::load(&dir, pre, &none, cpu));
    assert!(
        e.contains("no weights") && e.contains("model.safetensors"),
        "{e}"
    );
    let shipped = LoadedModel::load(
        &repo().join("models/tiny-bert"),
        Init::Random { seed: 1 },
        &none,
        cpu,
    )
    .unwrap();
    assert_eq!(shipped.hidden_size(), 128);

    let m = random(&dir, 1);
    let ckpt = tmp.path().join("ckpt");
    m.save_pretrained(&ckpt).unwrap();

    // Architecture overrides need random init.
    let o = ModelOverrides {
        num_hidden_layers: Some(4),
        ..Default::default()
    };
    let e = err_text(LoadedModel::load(&ckpt, pre, &o, cpu));
    assert!(
        e.contains("model.config.num_hidden_layers = 4") && e.contains("random"),
        "{e}"
    );

    // Missing keys.
    let vars = m.vs.variables();
    let kept: Vec<(String, Tensor)> = vars
        .iter()
        .filter(|(k, _)| !k.starts_with("encoder.layer.1.output."))
        .map(|(k, v)| (k.clone(), v.shallow_clone()))
        .collect();
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for f in ["config.json", "vocab.txt", "tokenizer.json"] {
        std::fs::copy(ckpt.join(f), broken.join(f)).unwrap();
    }
    Tensor::write_safetensors(&kept, broken.join("model.safetensors")).unwrap();
    let e = err_text(LoadedModel::load(&broken, pre, &none, cpu));
    assert!(
        e.contains("model.safetensors")
            && e.contains("4 tensor(s)")
            && e.contains("encoder.layer.1.output.dense.weight"),
        "{e}"
    );

    // Shape mismatch: config.json says something else than the weights.
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("config.json")).unwrap()).unwrap();
    cfg["intermediate_size"] = 40.into();
    std::fs::write(broken.join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(
        ckpt.join("model.safetensors"),
        broken.join("model.safetensors"),
    )
    .unwrap();
    let e = err_text(LoadedModel::load(&broken, pre, &none, cpu));
    assert!(
        e.contains("wrong shape")
            && e.contains(
                "encoder.layer.0.intermediate.dense.weight expected [40, 32], found [64, 32]"
            ),
        "{e}"
    );
    std::fs::copy(ckpt.join("config.json"), broken.join("config.json")).unwrap();

    // Corrupt safetensors.
    std::fs::write(
        broken.join("model.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json",
    )
    .unwrap();
    let e = err_text(LoadedModel::load(&broken, pre, &none, cpu));
    assert!(
        e.contains("model.safetensors") && e.contains("not a valid safetensors"),
        "{e}"
    );

    // Corrupt pytorch_model.bin.
    std::fs::remove_file(broken.join("model.safetensors")).unwrap();
    std::fs::write(broken.join("pytorch_model.bin"), b"PK\x03\x04garbage").unwrap();
    let e = err_text(LoadedModel::load(&broken, pre, &none, cpu));
    assert!(
        e.contains("pytorch_model.bin") && e.contains("cannot read weights"),
        "{e}"
    );

    // Missing tokenizer.
    std::fs::remove_file(broken.join("vocab.txt")).unwrap();
    std::fs::remove_file(broken.join("tokenizer.json")).unwrap();
    let e = err_text(LoadedModel::load(
        &broken,
        Init::Random { seed: 0 },
        &none,
        cpu,
    ));
    assert!(
        e.contains("tokenizer.json") && e.contains("vocab.txt"),
        "{e}"
    );

    // Corrupt tokenizer.json.
    std::fs::write(broken.join("tokenizer.json"), "{").unwrap();
    let e = err_text(LoadedModel::load(
        &broken,
        Init::Random { seed: 0 },
        &none,
        cpu,
    ));
    assert!(
        e.contains("tokenizer.json") && e.contains("tokenizer"),
        "{e}"
    );

    // Missing and invalid config.json.
    std::fs::remove_file(broken.join("config.json")).unwrap();
    let e = err_text(LoadedModel::load(
        &broken,
        Init::Random { seed: 0 },
        &none,
        cpu,
    ));
    assert!(e.contains("config.json") && e.contains("not found"), "{e}");
    std::fs::write(broken.join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
    let e = err_text(LoadedModel::load(
        &broken,
        Init::Random { seed: 0 },
        &none,
        cpu,
    ));
    assert!(e.contains("config.json") && e.contains("gpt2"), "{e}");

    // Requests the model cannot serve.
    let p = Pooler::new(Pooling::Avg);
    let e = err_text(m.embed(&SENTENCES, &p, 65, 4));
    assert!(e.contains("max_len 65") && e.contains("64"), "{e}");
    assert!(err_text(m.embed(&SENTENCES, &p, 2, 4)).contains("no room"));
    assert!(err_text(m.embed(&SENTENCES, &p, 8, 0)).contains("batch_size"));
    assert!(err_text(Init::from_config("warm", 1)).contains("warm"));
}

#[test]
fn tokenizer_from_vocab_txt() {
    let _rng = rng_lock();
    let t = Tokenizer::from_dir(&repo().join("models/tiny-bert"), ModelType::Bert).unwrap();
    let s = t.special_tokens();
    assert_eq!(
        (s.cls, s.sep, s.pad, s.unk, s.mask),
        (101, 102, 0, Some(100), Some(103))
    );
    assert_eq!(t.num_special_tokens(), 2);
    let toks = t.tokenize(&["Hello, WORLD! Tokenization", ""], 64).unwrap();
    assert_eq!(
        toks[0].tokens,
        [
            "[CLS]",
            "hello",
            ",",
            "world",
            "!",
            "token",
            "##ization",
            "[SEP]"
        ]
    );
    assert_eq!(toks[0].ids, [101, 7592, 1010, 2088, 999, 19204, 3989, 102]);
    assert_eq!(
        toks[0].special,
        [true, false, false, false, false, false, false, true]
    );
    assert_eq!(toks[1].ids, [101, 102]);
    // Truncation counts the specials and keeps [SEP] last.
    let cut = t.tokenize(&["Hello, WORLD! Tokenization"], 4).unwrap();
    assert_eq!(cut[0].ids, [101, 7592, 1010, 102]);
    let b = EncodedBatch::from_padded(
        &t.encode_ids(&["Hello, WORLD! Tokenization", "hello"], 64)
            .unwrap(),
        Device::Cpu,
    );
    assert_eq!(b.input_ids.size(), [2, 8]);
    assert_eq!(
        Vec::<i64>::try_from(b.input_ids.get(1)).unwrap(),
        [101, 7592, 102, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        Vec::<i64>::try_from(b.attention_mask.get(1)).unwrap(),
        [1, 1, 1, 0, 0, 0, 0, 0]
    );
    assert!(t.tokenize(&["x"], 2).is_err());
    assert_eq!(t.id_to_token(7592).as_deref(), Some("hello"));
    assert_eq!(t.token_to_id("[MASK]"), Some(103));
}

#[test]
fn cased_vocab_follows_tokenizer_config() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let d = tiny_dir(tmp.path());
    std::fs::write(
        d.join("tokenizer_config.json"),
        r#"{"do_lower_case": false}"#,
    )
    .unwrap();
    let t = Tokenizer::from_dir(&d, ModelType::Bert).unwrap();
    let toks = t.tokenize(&["Hello"], 16).unwrap();
    // The uncased vocabulary has no "Hello": it splits into pieces or [UNK], never "hello".
    assert!(
        !toks[0].tokens.contains(&"hello".to_string()),
        "{:?}",
        toks[0].tokens
    );
}

#[test]
fn dtype_flows_through_the_encoder() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let mut m = random(&tiny_dir(tmp.path()), 2);
    let b = m.encode(&SENTENCES, 32).unwrap();
    let p = Pooler::new(Pooling::Cls);
    let reference = m.embed(&SENTENCES, &p, 32, 8).unwrap();
    // In bfloat16 the mask uses bfloat16's min and every hidden state stays bfloat16.
    m.vs.bfloat16();
    let hs = m.forward_t(&b, true);
    assert!(hs.iter().all(|h| h.kind() == Kind::BFloat16));
    let low = m.embed(&SENTENCES, &p, 32, 8).unwrap();
    assert_eq!(low.kind(), Kind::Float, "embed returns f32");
    let d = max_abs_diff(&low, &reference);
    assert!(d < 0.05, "bfloat16 vs float32: {d}");
    // Saving writes float32 whatever the variables' dtype.
    let out = tmp.path().join("bf16");
    m.save_pretrained(&out).unwrap();
    let st = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    assert!(st
        .tensors()
        .iter()
        .all(|(_, v)| v.dtype() == safetensors::Dtype::F32));
}

/// The runs of a sweep read a checkpoint once per process: the second load of the same directory
/// comes from the cache with the same values, training one model does not change the other's
/// start, and a checkpoint rewritten in place is read again.
#[test]
fn pretrained_weights_are_read_once_per_process_and_reread_when_changed() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_dir(tmp.path());
    let ckpt = tmp.path().join("ckpt");
    random(&dir, 3).save_pretrained(&ckpt).unwrap();
    let o = ModelOverrides::default();
    let a = load::load(&ckpt, Init::Pretrained { seed: 1 }, &o, Device::Cpu, true).unwrap();
    assert!(!a.report.weights_cached);
    // A first run trains (writes into its own variables).
    tch::no_grad(|| {
        for (_, mut t) in a.vs.variables() {
            let _ = t.fill_(7.0);
        }
    });
    let b = load::load(&ckpt, Init::Pretrained { seed: 1 }, &o, Device::Cpu, true).unwrap();
    assert!(b.report.weights_cached);
    let fresh = LoadedModel::load(&ckpt, Init::Pretrained { seed: 1 }, &o, Device::Cpu).unwrap();
    assert!(!fresh.report.weights_cached);
    vars_equal(&b, &fresh);
    // Rewritten in place (another model, a new modification time): read again.
    std::thread::sleep(std::time::Duration::from_millis(20));
    random(&dir, 4).save_pretrained(&ckpt).unwrap();
    let c = load::load(&ckpt, Init::Pretrained { seed: 1 }, &o, Device::Cpu, true).unwrap();
    assert!(!c.report.weights_cached);
    let fresh = LoadedModel::load(&ckpt, Init::Pretrained { seed: 1 }, &o, Device::Cpu).unwrap();
    vars_equal(&c, &fresh);
}

/// The tiny transformers-written checkpoints of the architectures beside BERT.
const NEW_ARCHS: [(&str, ModelType); 3] = [
    ("tiny-distilbert", ModelType::DistilBert),
    ("tiny-mpnet", ModelType::Mpnet),
    ("tiny-modernbert", ModelType::ModernBert),
];

#[test]
fn every_architecture_drops_out_only_in_training_and_pads_with_zeros() {
    let _rng = rng_lock();
    for (name, model_type) in NEW_ARCHS {
        let dir = repo().join("tests/fixtures").join(name);
        // ModernBERT's checkpoints have no dropout; the override switches SimCSE's on.
        let o = ModelOverrides {
            hidden_dropout_prob: Some(0.1),
            attention_probs_dropout_prob: Some(0.1),
            ..Default::default()
        };
        let m = LoadedModel::load(&dir, Init::Pretrained { seed: 3 }, &o, Device::Cpu).unwrap();
        assert_eq!(m.config.model_type, model_type);
        let b = m.encode(&SENTENCES, 16).unwrap();
        let eval1 = m.forward_t(&b, false);
        let eval2 = m.forward_t(&b, false);
        assert_eq!(
            eval1.len(),
            m.num_layers() + 1,
            "{name}: L + 1 hidden states"
        );
        for (x, y) in eval1.iter().zip(&eval2) {
            assert!(x.equal(y), "{name}: evaluation is deterministic");
        }
        let t1 = m.forward_t(&b, true);
        let t2 = m.forward_t(&b, true);
        let last = m.num_layers();
        assert!(
            max_abs_diff(&t1[last], &t2[last]) > 1e-4,
            "{name}: two training passes differ (dropout is on)"
        );
        assert!(max_abs_diff(&t1[last], &eval1[last]) > 1e-4, "{name}");
        // Padded positions hold zeros in every hidden state.
        let pads = b.attention_mask.unsqueeze(-1).to_kind(Kind::Float).neg() + 1.0;
        for h in &eval1 {
            assert_eq!((h * &pads).abs().sum(Kind::Float).double_value(&[]), 0.0);
        }
        // With every dropout at 0 a training pass is the evaluation pass.
        let off = ModelOverrides {
            hidden_dropout_prob: Some(0.0),
            attention_probs_dropout_prob: Some(0.0),
            ..Default::default()
        };
        let m0 = LoadedModel::load(&dir, Init::Pretrained { seed: 3 }, &off, Device::Cpu).unwrap();
        let a = m0.forward_t(&b, true);
        let e = m0.forward_t(&b, false);
        assert!(max_abs_diff(&a[last], &e[last]) < 1e-6, "{name}");
    }
}

#[test]
fn random_init_follows_each_architectures_init_weights() {
    let _rng = rng_lock();
    // ModernBERT: truncated normals (±2σ), σ = 0.02 in, 0.02 / √(2L) for both Wo; norms 1 (the
    // fixture has norm biases, 0); the padding row not zeroed (transformers re-draws the table).
    let dir = repo().join("tests/fixtures/tiny-modernbert");
    let o = ModelOverrides {
        hidden_size: Some(64),
        num_hidden_layers: Some(8),
        num_attention_heads: Some(4),
        intermediate_size: Some(256),
        ..Default::default()
    };
    let m = LoadedModel::load(&dir, Init::Random { seed: 9 }, &o, Device::Cpu).unwrap();
    let vars = m.vs.variables();
    let std_of = |k: &str| {
        let t = &vars[k];
        let bound = t.abs().max().double_value(&[]);
        (t.std(true).double_value(&[]), bound)
    };
    // A normal truncated at ±2σ has standard deviation 0.8796σ.
    let (s_in, b_in) = std_of("layers.1.mlp.Wi.weight");
    assert!((s_in / 0.02 - 0.8796).abs() < 0.02, "Wi σ {s_in}");
    assert!(b_in <= 2.0 * 0.02 + 1e-7, "Wi truncated at 2σ: {b_in}");
    let out = 0.02 / (16f64).sqrt();
    let (s_out, b_out) = std_of("layers.2.attn.Wo.weight");
    assert!((s_out / out - 0.8796).abs() < 0.03, "Wo σ {s_out} vs {out}");
    assert!(b_out <= 2.0 * out + 1e-7);
    let (s_emb, _) = std_of("embeddings.tok_embeddings.weight");
    assert!((s_emb / 0.02 - 0.8796).abs() < 0.01);
    let pad = m.config.pad_id();
    let row = vars["embeddings.tok_embeddings.weight"].get(pad);
    assert!(row.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    assert!(vars["final_norm.weight"].equal(&Tensor::ones([64], (Kind::Float, Device::Cpu))));
    assert!(
        vars.contains_key("final_norm.bias"),
        "the fixture has norm_bias"
    );
    assert!(
        !vars.contains_key("layers.0.attn_norm.weight"),
        "layer 0 has no attn_norm"
    );
    // DistilBERT: N(0, 0.02), padding row 0; sinusoidal positions fixed and untrained.
    let dir = repo().join("tests/fixtures/tiny-distilbert");
    let m = random(&dir, 4);
    let vars = m.vs.variables();
    let w = &vars["embeddings.word_embeddings.weight"];
    assert_eq!(w.get(0).abs().sum(Kind::Float).double_value(&[]), 0.0);
    assert!(vars["transformer.layer.0.sa_layer_norm.weight"]
        .equal(&Tensor::ones([16], (Kind::Float, Device::Cpu))));
    assert!(vars["embeddings.position_embeddings.weight"].requires_grad());
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "vocab.txt",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        std::fs::copy(dir.join(f), tmp.path().join(f)).unwrap();
    }
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    cfg["sinusoidal_pos_embds"] = serde_json::Value::Bool(true);
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    let m = random(tmp.path(), 4);
    let pos = &m.vs.variables()["embeddings.position_embeddings.weight"];
    assert!(!pos.requires_grad(), "sinusoidal positions are not trained");
    // Row 3, columns 0 and 1: sin(3), cos(3); column 2: sin(3 / 10000^(2/16)).
    let v = |i: i64, j: i64| pos.double_value(&[i, j]);
    assert!((v(3, 0) - 3f64.sin()).abs() < 1e-6 && (v(3, 1) - 3f64.cos()).abs() < 1e-6);
    assert!((v(3, 2) - (3.0 / 10000f64.powf(2.0 / 16.0)).sin()).abs() < 1e-6);
    // MPNet: padding row 1 of both tables, the relative bias drawn, a pooler.
    let m = random(&repo().join("tests/fixtures/tiny-mpnet"), 4);
    let vars = m.vs.variables();
    for k in [
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
    ] {
        assert_eq!(
            vars[k].get(1).abs().sum(Kind::Float).double_value(&[]),
            0.0,
            "{k}"
        );
        assert!(
            vars[k].get(2).abs().sum(Kind::Float).double_value(&[]) > 0.0,
            "{k}"
        );
    }
    assert!(
        vars["encoder.relative_attention_bias.weight"]
            .std(true)
            .double_value(&[])
            > 0.01
    );
    assert!(vars.contains_key("pooler.dense.weight"));
}
