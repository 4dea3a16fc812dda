//! Set-up shared by the end-to-end training tests: the repository, the shared data and a micro BERT.
#![allow(dead_code)]

use rusqlite::Connection;

mod required;
#[allow(unused_imports)]
pub use required::{missing, required};
use std::path::{Path, PathBuf};

/// The repository: `SIMSWEEP_REPO` where set (a test binary run from a copy of the working tree
/// elsewhere, as `scripts/gpu-check` runs the CUDA suite), else this build's.
pub fn repo() -> PathBuf {
    std::env::var_os("SIMSWEEP_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The shared data directory (`SIMSWEEP_DATA_DIR`, else `../shared/data`) when it holds the training
/// excerpt and STS-B dev (which every run evaluates); None, with a message, otherwise.
pub fn data_dir() -> Option<PathBuf> {
    let d = std::env::var_os("SIMSWEEP_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/data"));
    if d.join("wiki1m_for_simcse.head.txt").is_file()
        && d.join("SentEval/data/downstream/STS/STSBenchmark/sts-dev.csv")
            .is_file()
    {
        Some(d)
    } else {
        missing(&format!("shared data not found at {}", d.display()));
        None
    }
}

/// A 1-layer, 32-wide BERT with the bert-base-uncased vocabulary, as `dir/micro-bert`.
pub fn micro_model(dir: &Path) -> PathBuf {
    let m = dir.join("micro-bert");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::copy(
        repo().join("models/tiny-bert/vocab.txt"),
        m.join("vocab.txt"),
    )
    .unwrap();
    let cfg = std::fs::read_to_string(repo().join("models/tiny-bert/config.json"))
        .unwrap()
        .replace("\"hidden_size\": 128", "\"hidden_size\": 32")
        .replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1")
        .replace("\"intermediate_size\": 512", "\"intermediate_size\": 64");
    std::fs::write(m.join("config.json"), cfg).unwrap();
    m
}

/// A finished command's exit status, standard output and standard error, for assertion messages.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The single integer a query returns.
pub fn count(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The known objective of the early-stopping tests (`SIMSWEEP_TEST_OBJECTIVE`): `stsb_dev` at the
/// evaluations of steps 10, 20, 30, 40 for each `train.warmup_steps` 0–8 (nine settings).
///
/// ASHA (η = 3, rungs 10 and 30), one run at a time in plan order, by hand (threshold: the 2/3
/// quantile of the values at the rung, numpy's interpolation):
/// rung 10: w0 50 alone → on; w1 40 < 46.67 → pruned; w2 60 ≥ 53.33; w3 30 < 50 → pruned;
/// w4 70 ≥ 56.67; w5 55 < 56.67 → pruned; w6 20 < 55 → pruned; w7 65 ≥ 58.33; w8 45 < 56.67 →
/// pruned. rung 30: w0 52 alone; w2 61 ≥ 58; w4 58 < 59 → pruned; w7 70 ≥ 61.
/// Pruned at 10: w1 w3 w5 w6 w8; at 30: w4; done: w0 w2 w7. Steps: 200 of 360 trained.
pub const ASHA_OBJECTIVE: &str = r#"{"key": "train.warmup_steps", "values": {
  "0": [50, 51, 52, 53], "1": [40, 41, 42, 43], "2": [60, 60, 61, 62], "3": [30, 31, 32, 33],
  "4": [70, 65, 58, 60], "5": [55, 56, 57, 58], "6": [20, 21, 22, 23], "7": [65, 68, 70, 71],
  "8": [45, 46, 47, 48]}}"#;

/// The runs ASHA prunes under [`ASHA_OBJECTIVE`], with the step each stops at.
pub const ASHA_PRUNED: &[(i64, i64)] = &[(1, 10), (3, 10), (4, 30), (5, 10), (6, 10), (8, 10)];

/// A sweep of nine micro runs (train.warmup_steps 0–8), 40 steps, evaluated every 10, with the
/// `[search]` table given.
pub fn search_sweep(dir: &Path, name: &str, search: &str) -> PathBuf {
    micro_model(dir);
    let sweep = dir.join(format!("{name}.toml"));
    std::fs::write(
        &sweep,
        format!(
            r#"
[sweep]
name = "{name}"
[base]
model.path = "micro-bert"
model.init = "random"
model.pooling = "avg"
data.train = ["wiki1m_for_simcse.head.txt"]
data.max_examples = 400
train.batch_size = 8
train.steps = 40
train.checkpoint_every = 20
eval.every = 10
eval.tasks = []
probe.every = 0
probe.size = 64
[grid]
"train.warmup_steps" = [0, 1, 2, 3, 4, 5, 6, 7, 8]
{search}
"#
        ),
    )
    .unwrap();
    sweep
}

/// (warmup_steps, status, step) of every run of a database, by warmup.
pub fn search_outcome(db: &Path) -> Vec<(i64, String, i64)> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare(
            "SELECT json_extract(config_json, '$.\"train.warmup_steps\"'), status, coalesce(step, -1)
             FROM runs ORDER BY 1",
        )
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// What [`search_outcome`] should be when the runs in `pruned` (warmup, step) were pruned and the
/// rest trained their 40 steps.
pub fn expected_outcome(pruned: &[(i64, i64)]) -> Vec<(i64, String, i64)> {
    (0..9)
        .map(|w| match pruned.iter().find(|p| p.0 == w) {
            Some((_, s)) => (w, "pruned".to_string(), *s),
            None => (w, "done".to_string(), 40),
        })
        .collect()
}
