//! End-to-end training through the binary: a tiny random-init BERT on the wiki excerpt, evaluated on
//! the shared STS data. Sized for CI (two cores, seconds).

mod common;

use common::{count, data_dir, micro_model};
use rusqlite::Connection;
use std::path::Path;
use std::process::Command;

/// `simsweep --db DB --data-dir DATA run SWEEP --device cpu`.
fn run_on_cpu(db: &Path, data: &Path, sweep: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .arg("--db")
        .arg(db)
        .arg("--data-dir")
        .arg(data)
        .arg("run")
        .arg(sweep)
        .args(["--device", "cpu"])
        .output()
        .unwrap()
}

#[test]
fn a_sweep_trains_evaluates_checkpoints_and_isolates_a_failing_run() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    micro_model(dir.path());
    let sweep = dir.path().join("s.toml");
    std::fs::write(
        &sweep,
        r#"
[sweep]
name = "e2e"
[base]
model.path = "micro-bert"
model.init = "random"
data.train = ["wiki1m_for_simcse.head.txt"]
data.max_examples = 400
train.batch_size = 8
train.steps = 20
train.lr = 1e-4
eval.every = 10
eval.tasks = ["stsb_test"]
probe.every = 0
[grid]
"model.pooling" = ["cls", "avg"]
"train.max_len" = [24, 600]   # 600 exceeds the model's 512 positions: that run must fail alone
"#,
    )
    .unwrap();
    let db = dir.path().join("results/r.db");
    let out = run_on_cpu(&db, &data, &sweep);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed run makes the exit status 1\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("e2e: 2 done, 2 failed, 0 diverged"),
        "{stdout}"
    );
    assert!(
        stdout.contains("max_len 600 exceeds what the model's position embeddings allow"),
        "{stdout}"
    );

    let c = Connection::open(&db).unwrap();
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM runs WHERE status = 'done' AND step = 20"
        ),
        2
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM runs WHERE status = 'failed' AND error LIKE '%max_len 600%'"
        ),
        2
    );
    let done = "SELECT run_pk FROM runs WHERE status = 'done'";
    // Step metrics: every step 1..=20 once per metric, for both runs.
    for m in [
        "loss",
        "lr",
        "grad_norm",
        "pos_cos",
        "neg_cos",
        "batch_alignment",
        "batch_uniformity",
        "gd_mean",
        "w_entropy",
        "w_max",
        "ratio_mean",
        "tokens_per_s",
    ] {
        let q = format!("SELECT count(*), count(DISTINCT step), min(step), max(step) FROM metric_values WHERE metric = '{m}' AND run_id IN (SELECT run_id FROM runs WHERE status = 'done')");
        let (n, d, lo, hi): (i64, i64, i64, i64) = c
            .query_row(&q, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap();
        assert_eq!((n, d, lo, hi), (40, 20, 1, 20), "{m}");
    }
    // The per-run summaries the writer kept agree with the rows (a diverged run's NULLs included).
    assert_eq!(
        simsweep_core::store::summary::check(&c).unwrap().mismatches,
        []
    );
    // The loss is finite and the learning rate decays linearly to 1e-4/20 at the last step.
    assert_eq!(count(&c, &format!("SELECT count(*) FROM metrics m JOIN metric_names n USING (metric_id) WHERE n.name = 'loss' AND m.value IS NULL AND run_pk IN ({done})")), 0);
    let lr_last: f64 = c
        .query_row(
            "SELECT value FROM metric_values WHERE metric = 'lr' AND step = 20 LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!((lr_last - 1e-4 / 20.0).abs() < 1e-12, "{lr_last}");
    // STS-B dev at steps 0, 10, 20; the final score of the best checkpoint on STS-B test.
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM metric_values WHERE metric = 'stsb_dev' AND step IN (0, 10, 20)"
        ),
        6
    );
    assert_eq!(count(&c, "SELECT count(*) FROM metric_values WHERE metric = 'stsb_test' AND step = 20 AND value BETWEEN -100 AND 100"), 2);
    assert_eq!(count(&c, "SELECT count(*) FROM metric_values WHERE metric = 'best_step' AND value IN (0, 10, 20)"), 2);
    // The best checkpoint is a Hugging Face directory, listed in checkpoints, and evaluates the same.
    let (path, best): (String, f64) = c
        .query_row(&format!("SELECT path, value FROM checkpoints WHERE kind = 'best' AND run_pk IN ({done}) ORDER BY run_pk LIMIT 1"), [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(Path::new(&path).join(f).is_file(), "{path}/{f}");
    }
    let pooling: String = c
        .query_row("SELECT value FROM run_params p WHERE key = 'model.pooling' AND run_id = (SELECT run_id FROM runs WHERE run_pk = (SELECT min(run_pk) FROM runs WHERE status = 'done'))", [], |r| r.get(0))
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .args([
            "--data-dir",
            &data.display().to_string(),
            "eval",
            "--model",
            &path,
            "--pooling",
            &pooling,
            "--tasks",
            "stsb_dev",
            "--json",
            "--device",
            "cpu",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let again = j["scores"]["stsb_dev"].as_f64().unwrap();
    assert!(
        (again - best).abs() < 1e-3,
        "eval of the saved best checkpoint {again} vs recorded {best}"
    );

    // `status` counts the runs and shows the failures' errors.
    let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .args(["--db", &db.display().to_string(), "status", "e2e"])
        .output()
        .unwrap();
    let st = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{st}");
    assert!(
        st.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["e2e", "4", "0", "0", "2", "2", "0", "0", "0"]),
        "{st}"
    );
    assert_eq!(st.matches("failed at step -: ").count(), 2, "{st}");
    let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .args(["--db", &db.display().to_string(), "status", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // Running again skips the done runs and retries nothing else (failed runs stay failed).
    let out = run_on_cpu(&db, &data, &sweep);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("e2e: 0 done, 0 failed"), "{stdout}");
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM metric_values WHERE metric = 'loss'"
        ),
        40
    );
}

#[test]
fn supervised_training_on_snli_triplets_with_hard_negatives() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    micro_model(dir.path());
    let sweep = dir.path().join("sup.toml");
    std::fs::write(
        &sweep,
        r#"
[sweep]
name = "sup"
[base]
model.path = "micro-bert"
model.init = "random"
model.pooling = "avg"
data.train = ["SentEval/data/downstream/SNLI/s1.dev"]
train.batch_size = 8
train.steps = 6
train.hard_negative_weight = 1.0
eval.every = 0
eval.tasks = []
"#,
    )
    .unwrap();
    let db = dir.path().join("r.db");
    let out = run_on_cpu(&db, &data, &sweep);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2943 examples"), "{stdout}");
    let c = Connection::open(&db).unwrap();
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM metric_values WHERE metric = 'loss' AND value > 0"
        ),
        6
    );
    // With hard negatives each row has 2B logits: the initial loss is near ln(16), not ln(8).
    let first: f64 = c
        .query_row(
            "SELECT value FROM metric_values WHERE metric = 'loss' AND step = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(first > 8f64.ln(), "{first}");
    // No evaluation during training: only the end-of-training STS-B dev point.
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM metric_values WHERE metric = 'stsb_dev'"
        ),
        1
    );
}

#[test]
fn probes_are_recorded_at_step_zero_every_n_steps_and_the_last_step_with_layers() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    micro_model(dir.path());
    let sweep = dir.path().join("p.toml");
    std::fs::write(
        &sweep,
        r#"
[sweep]
name = "probe-e2e"
[base]
model.path = "micro-bert"
model.init = "random"
model.pooling = "avg"
data.train = ["wiki1m_for_simcse.head.txt"]
data.max_examples = 200
train.batch_size = 8
train.steps = 12
eval.every = 0
eval.tasks = []
probe.every = 5
probe.size = 100
probe.layers = "all"
"#,
    )
    .unwrap();
    let db = dir.path().join("r.db");
    let out = run_on_cpu(&db, &data, &sweep);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("probes "), "{stdout}");
    let c = Connection::open(&db).unwrap();
    let steps = |metric: &str, layer: i64| -> Vec<i64> {
        let mut st = c
            .prepare(
                "SELECT step FROM metric_values WHERE metric = ?1 AND layer = ?2 ORDER BY step",
            )
            .unwrap();
        st.query_map(rusqlite::params![metric, layer], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    // Step 0, every 5 steps, and the last (12); the run's own rows at layer −1 and one row per
    // hidden state (0 = embeddings, 1 = the micro model's only layer).
    // Every probe metric of the registry (simsweep_core::metrics), the spectrum by two of its names.
    let probe_metrics = simsweep_core::metrics::METRICS
        .iter()
        .filter(|m| m.family == simsweep_core::metrics::Family::Probe)
        .map(|m| m.name)
        .filter(|n| !["sv_NN", "probe_seconds"].contains(n));
    for m in probe_metrics.chain(["sv_01", "sv_32"]) {
        for layer in [-1, 0, 1] {
            assert_eq!(steps(m, layer), vec![0, 5, 10, 12], "{m} at layer {layer}");
        }
    }
    assert_eq!(steps("probe_seconds", -1), vec![0, 5, 10, 12]);
    // The micro model is 32 wide: 32 singular values, no sv_33.
    assert!(steps("sv_33", -1).is_empty());
    // Values are finite where they must be and within their ranges.
    let bad = count(
        &c,
        "SELECT count(*) FROM metric_values WHERE metric IN ('token_anisotropy', 'sentence_anisotropy', 'uniformity', 'effective_rank', 'alignment') AND (value IS NULL OR value > 32 OR value < -5)",
    );
    assert_eq!(bad, 0);
    // With avg pooling the run's own sentence metrics are those of the last layer's mean.
    let own: f64 = c.query_row("SELECT value FROM metric_values WHERE metric = 'effective_rank' AND layer = -1 AND step = 12", [], |r| r.get(0)).unwrap();
    let l1: f64 = c.query_row("SELECT value FROM metric_values WHERE metric = 'effective_rank' AND layer = 1 AND step = 12", [], |r| r.get(0)).unwrap();
    assert!((own - l1).abs() < 1e-6 * own.abs(), "{own} vs {l1}");
}

/// One sweep over the encoders: `model.path` swept across the tiny transformers-written
/// checkpoints of every architecture (BERT `pytorch_model.bin`, RoBERTa, DistilBERT, MPNet,
/// ModernBERT), all trained, evaluated, probed at every layer and checkpointed by the same code.
#[test]
fn one_sweep_trains_every_architecture() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let fixtures = common::repo().join("tests/fixtures");
    let archs = [
        ("tiny-bert-bin", "bert", 2),
        ("tiny-roberta", "roberta", 2),
        ("tiny-distilbert", "distilbert", 3),
        ("tiny-mpnet", "mpnet", 2),
        ("tiny-modernbert", "modernbert", 4),
    ];
    let paths: Vec<String> = archs
        .iter()
        .map(|(d, _, _)| format!("{:?}", fixtures.join(d).display().to_string()))
        .collect();
    let sweep = dir.path().join("m.toml");
    std::fs::write(
        &sweep,
        format!(
            r#"
[sweep]
name = "encoders"
[base]
model.pooling = "cls"
model.mlp_only_train = true
model.config.hidden_dropout_prob = 0.1   # ModernBERT's checkpoints have none: SimCSE needs it
data.train = ["wiki1m_for_simcse.head.txt"]
data.max_examples = 200
train.batch_size = 8
train.max_len = 24
train.steps = 12
train.lr = 1e-4
train.checkpoint_every = 12
eval.every = 6
eval.tasks = ["stsb_dev"]
probe.every = 6
probe.size = 64
probe.layers = "all"
[grid]
"model.path" = [{}]
"#,
            paths.join(", ")
        ),
    )
    .unwrap();
    let db = dir.path().join("r.db");
    let out = run_on_cpu(&db, &data, &sweep);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = Connection::open(&db).unwrap();
    assert_eq!(
        count(&c, "SELECT count(*) FROM runs WHERE status = 'done'"),
        5
    );
    for (name, model_type, layers) in archs {
        let path = fixtures.join(name).display().to_string();
        let (pk, config): (i64, String) = c
            .query_row(
                "SELECT run_pk, config_json FROM runs WHERE json_extract(config_json, '$.\"model.path\"') = ?1",
                [&path],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(config.contains(name));
        let value = |metric: &str, layer: i64, step: i64| -> Option<f64> {
            c.query_row(
                "SELECT m.value FROM metric_values m JOIN runs r USING (run_id) WHERE r.run_pk = ?1 AND m.metric = ?2 AND m.layer = ?3 AND m.step = ?4",
                rusqlite::params![pk, metric, layer, step],
                |r| r.get(0),
            )
            .ok()
        };
        // Training losses at every step, finite and moving (dropout makes the two views differ).
        let losses: Vec<f64> = (1..=12)
            .map(|s| value("loss", -1, s).unwrap_or_else(|| panic!("{name}: loss at {s}")))
            .collect();
        assert!(
            losses.iter().all(|l| l.is_finite() && *l > 0.0),
            "{name}: {losses:?}"
        );
        assert!(
            losses.windows(2).any(|w| w[0] != w[1]),
            "{name}: the loss moves: {losses:?}"
        );
        // STS-B dev at 6 and 12, a Spearman correlation.
        for s in [6, 12] {
            let v = value("stsb_dev", -1, s).unwrap_or_else(|| panic!("{name}: stsb_dev at {s}"));
            assert!((-100.0..=100.0).contains(&v), "{name}: {v}");
        }
        // Probes at every hidden state 0..=L and none beyond.
        for layer in 0..=layers {
            assert!(
                value("uniformity", layer, 12).is_some(),
                "{name}: uniformity at layer {layer}"
            );
        }
        assert!(value("uniformity", layers + 1, 12).is_none(), "{name}");
        // The checkpoint is the architecture's own Hugging Face layout, dropout under its names.
        let ckpt: String = c
            .query_row(
                "SELECT path FROM checkpoints WHERE run_pk = ?1 ORDER BY kind LIMIT 1",
                [pk],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("{name}: no checkpoint: {e}"));
        let ckpt = std::path::Path::new(&ckpt);
        let ckpt = if ckpt.join("config.json").is_file() {
            ckpt.to_path_buf()
        } else {
            ckpt.join("model")
        };
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(ckpt.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(saved["model_type"], model_type, "{name}");
        let dropout_key = match model_type {
            "distilbert" => "dropout",
            "modernbert" => "embedding_dropout",
            _ => "hidden_dropout_prob",
        };
        assert_eq!(saved[dropout_key], 0.1, "{name}: {saved}");
    }
}
