//! Set-up shared by the end-to-end training tests: the repository, the shared data and a micro BERT.
#![allow(dead_code)]

use rusqlite::Connection;
use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

/// Whether this run of the suite must not skip for missing inputs: CI (`CI=true`) or
/// `SIMSWEEP_REQUIRE_DATA=1`. There a missing input fails the test instead of skipping it.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("SIMSWEEP_REQUIRE_DATA").is_ok_and(|v| v == "1")
}

/// A missing input: a skip with a message, or a failure where [`required`].
pub fn missing(what: &str) {
    assert!(
        !required(),
        "{what}: this test must run under CI / SIMSWEEP_REQUIRE_DATA=1, not skip"
    );
    eprintln!("skipped: {what}");
}

/// The single integer a query returns.
pub fn count(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}
