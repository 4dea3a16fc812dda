//! The CUDA suite: what only a GPU can show, run by `scripts/gpu-check` (which sets
//! `SIMSWEEP_REQUIRE_CUDA=1`, so there a missing GPU is a failure). On a machine without a usable
//! CUDA device every test here says so on standard error and passes.
//!
//! - a few training steps in fp32, bf16 and fp16 on `cuda:0` against the same steps on the CPU, per
//!   precision's tolerance, with nothing printed per step on standard error;
//! - resuming after a kill on the device continues as an uninterrupted run does;
//! - runs packed two per device record the values of runs trained one at a time;
//! - an out-of-memory batch fails its own run with CUDA's message, and the next run trains.
//!
//! The binaries and the repository are taken from `SIMSWEEP_BIN_DIR` and `SIMSWEEP_REPO` when set
//! (a device machine running this test binary from a copy of the working tree), else from this
//! build.

mod common;

use common::{micro_model, repo};
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn simsweep() -> PathBuf {
    std::env::var_os("SIMSWEEP_BIN_DIR")
        .map(|d| PathBuf::from(d).join("simsweep"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_simsweep")))
}

fn data_dir() -> PathBuf {
    std::env::var_os("SIMSWEEP_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/data"))
}

/// Whether the engine sees a usable CUDA device; where it does not, a message, and a failure
/// when `SIMSWEEP_REQUIRE_CUDA=1`.
fn cuda() -> bool {
    let out = Command::new(simsweep())
        .args(["info", "--json"])
        .output()
        .expect("running simsweep info");
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    if info["cuda_available"] == true && info["cuda_devices"].as_i64() > Some(0) {
        return true;
    }
    let why = format!(
        "no usable CUDA device ({})",
        info["cuda_problem"].as_str().unwrap_or("none visible")
    );
    if std::env::var("SIMSWEEP_REQUIRE_CUDA").as_deref() == Ok("1") {
        panic!("SIMSWEEP_REQUIRE_CUDA=1 but {why}");
    }
    eprintln!("SKIP: the CUDA suite (tests/cuda.rs) needs a GPU: {why}");
    false
}

/// A sweep file of `steps` steps of the micro model with dropout off (CPU and CUDA draw different
/// masks) and `extra` lines added to `[base]`.
fn sweep(dir: &Path, name: &str, steps: i64, extra: &str) -> PathBuf {
    micro_model(dir);
    let f = dir.join(format!("{name}.toml"));
    std::fs::write(
        &f,
        format!(
            r#"
[sweep]
name = "{name}"
[base]
model.path = "micro-bert"
model.init = "random"
model.pooling = "avg"
model.config.hidden_dropout_prob = 0.0
model.config.attention_probs_dropout_prob = 0.0
data.train = ["wiki1m_for_simcse.head.txt"]
train.batch_size = 16
train.steps = {steps}
eval.every = 0
eval.tasks = []
probe.every = 0
probe.size = 64
{extra}
"#
        ),
    )
    .unwrap();
    f
}

fn run(db: &Path, args: &[&str]) -> Output {
    Command::new(simsweep())
        .arg("--db")
        .arg(db)
        .arg("--data-dir")
        .arg(data_dir())
        .args(args)
        .args(["--progress", "quiet"])
        .output()
        .unwrap()
}

/// Every step value of `metric`, by (run ordinal, step).
fn values(db: &Path, metric: &str) -> BTreeMap<(i64, i64), Option<f64>> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare(
            "SELECT r.ordinal, v.step, v.value FROM metric_values v JOIN runs r USING (run_id) WHERE v.metric = ?1",
        )
        .unwrap();
    let rows = st
        .query_map([metric], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn training_on_cuda_matches_the_cpu_in_each_precision_and_prints_nothing_per_step() {
    if !cuda() {
        return;
    }
    const STEPS: i64 = 30;
    let dir = tempfile::tempdir().unwrap();
    let cpu_db = dir.path().join("cpu.db");
    let f = sweep(dir.path(), "p", STEPS, "");
    ok(
        &run(&cpu_db, &["run", f.to_str().unwrap(), "--devices", "cpu"]),
        "cpu",
    );
    let cpu = values(&cpu_db, "loss");
    assert_eq!(cpu.len(), STEPS as usize);
    // Relative tolerance on the loss, per precision (the encoder under autocast, the loss in fp32).
    for (precision, tol) in [("fp32", 1e-4), ("bf16", 5e-2), ("fp16", 1e-2)] {
        let db = dir.path().join(format!("{precision}.db"));
        let f = sweep(
            dir.path(),
            "p",
            STEPS,
            &format!("train.precision = \"{precision}\""),
        );
        let out = run(&db, &["run", f.to_str().unwrap(), "--devices", "cuda:0"]);
        ok(&out, precision);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.lines().count() < STEPS as usize / 2 && !stderr.contains("deprecated"),
            "{precision}: lines on standard error while training:\n{stderr}"
        );
        let gpu = values(&db, "loss");
        assert_eq!(gpu.len(), cpu.len(), "{precision}");
        for ((k, a), b) in cpu.iter().zip(gpu.values()) {
            let (a, b) = (a.unwrap(), b.unwrap());
            assert!(
                ((a - b) / a).abs() < tol,
                "{precision} step {k:?}: cpu {a}, cuda {b} (tolerance {tol})"
            );
        }
    }
}

#[test]
fn a_run_killed_on_cuda_resumes_as_an_uninterrupted_run_continues() {
    if !cuda() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = sweep(dir.path(), "r", 60, "train.checkpoint_every = 20");
    let whole = dir.path().join("whole.db");
    ok(
        &run(&whole, &["run", f.to_str().unwrap(), "--devices", "cuda:0"]),
        "whole",
    );
    // Killed after its second checkpoint (SIGKILL of the engine at step 45), then resumed.
    let db = dir.path().join("killed.db");
    let out = Command::new(simsweep())
        .arg("--db")
        .arg(&db)
        .arg("--data-dir")
        .arg(data_dir())
        .args([
            "run",
            f.to_str().unwrap(),
            "--devices",
            "cuda:0",
            "--progress",
            "quiet",
        ])
        .env("SIMSWEEP_FAULT", "segv@45")
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The failed run, taken again, resumes from its checkpoint at step 40.
    ok(
        &run(
            &db,
            &[
                "run",
                f.to_str().unwrap(),
                "--devices",
                "cuda:0",
                "--retry-failed",
            ],
        ),
        "resumed",
    );
    let c = Connection::open(&db).unwrap();
    let resumed: i64 = c
        .query_row(
            "SELECT count(*) FROM events WHERE kind = 'resumed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(resumed, 1, "the second attempt resumed from the checkpoint");
    drop(c);
    let (a, b) = (values(&whole, "loss"), values(&db, "loss"));
    assert_eq!(a.len(), b.len());
    // Bit-identical on the CPU (tests/interrupt.rs); on CUDA within float noise (docs/cli.md,
    // "Determinism").
    for ((k, x), y) in a.iter().zip(b.values()) {
        let (x, y) = (x.unwrap(), y.unwrap());
        assert!(((x - y) / x).abs() < 1e-5, "step {k:?}: {x} vs {y}");
    }
}

#[test]
fn runs_packed_two_per_device_record_the_values_of_runs_trained_alone() {
    if !cuda() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = sweep(
        dir.path(),
        "k",
        30,
        "[grid]\n\"train.temperature\" = [0.05, 0.1]",
    );
    let alone = dir.path().join("alone.db");
    ok(
        &run(&alone, &["run", f.to_str().unwrap(), "--devices", "cuda:0"]),
        "alone",
    );
    let packed = dir.path().join("packed.db");
    ok(
        &run(
            &packed,
            &[
                "run",
                f.to_str().unwrap(),
                "--devices",
                "cuda:0",
                "--jobs-per-device",
                "2",
            ],
        ),
        "packed",
    );
    let (a, b) = (values(&alone, "loss"), values(&packed, "loss"));
    assert_eq!(a.len(), 60);
    for ((k, x), y) in a.iter().zip(b.values()) {
        let (x, y) = (x.unwrap(), y.unwrap());
        assert!(((x - y) / x).abs() < 1e-5, "run/step {k:?}: {x} vs {y}");
    }
}

#[test]
fn an_out_of_memory_batch_fails_its_run_with_cudas_message() {
    if !cuda() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A feed-forward layer 2^20 wide over 4,096 × 2 views × ~25 tokens: some 800 GB of
    // activations in the first run, beyond any GPU; the second run is the micro model.
    let f = sweep(
        dir.path(),
        "oom",
        2,
        "[grid]\n\"model.config.intermediate_size\" = [1048576, 64]",
    );
    let text = std::fs::read_to_string(&f)
        .unwrap()
        .replace("train.batch_size = 16", "train.batch_size = 4096");
    std::fs::write(&f, text).unwrap();
    let db = dir.path().join("oom.db");
    let out = run(&db, &["run", f.to_str().unwrap(), "--devices", "cuda:0"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = Connection::open(&db).unwrap();
    let mut st = c
        .prepare("SELECT status, coalesce(error, '') FROM runs ORDER BY ordinal")
        .unwrap();
    let runs: Vec<(String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(runs[0].0, "failed", "{runs:?}");
    assert!(
        runs[0].1.to_lowercase().contains("out of memory"),
        "{runs:?}"
    );
    assert_eq!(runs[1].0, "done", "the next run trains: {runs:?}");
}
