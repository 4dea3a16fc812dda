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

/// The single integer a query returns.
pub fn count(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}
