//! Every loss of the gradient-paradigm grid trains end to end: the loss grid of
//! `sweeps/gradient-paradigm-cpu.toml` on a micro BERT for a few steps; each run must finish with a
//! finite loss and the eight loss metrics at every step.

mod common;

use common::{count, data_dir, micro_model, repo};
use rusqlite::Connection;
use std::process::Command;

const STEPS: i64 = 5;

#[test]
fn every_loss_of_the_gradient_paradigm_grid_trains_and_logs_its_components() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    micro_model(dir.path());
    // The CPU sweep's loss grid, on the micro model with fewer steps.
    let cpu = std::fs::read_to_string(repo().join("sweeps/gradient-paradigm-cpu.toml")).unwrap();
    let grid = &cpu[cpu
        .find("[[zip]]")
        .expect("the CPU sweep varies the loss in [[zip]]")..];
    let sweep = dir.path().join("s.toml");
    std::fs::write(
        &sweep,
        format!(
            r#"
[sweep]
name = "losses"
seeds = [1]
[base]
model.path = "micro-bert"
model.init = "random"
model.pooling = "avg"
data.train = ["wiki1m_for_simcse.head.txt"]
data.max_examples = 40
train.batch_size = 8
train.max_len = 24
train.steps = {STEPS}
train.lr = 1e-4
eval.every = 0
eval.tasks = []
probe.every = 0
probe.size = 16
{grid}"#
        ),
    )
    .unwrap();
    let db = dir.path().join("results/r.db");
    let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .args([
            "--db",
            &db.display().to_string(),
            "--data-dir",
            &data.display().to_string(),
            "run",
            &sweep.display().to_string(),
            "--device",
            "cpu",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");

    let c = Connection::open(&db).unwrap();
    let runs = count(&c, "SELECT count(*) FROM runs");
    assert_eq!(runs, 13, "{stdout}");
    assert_eq!(
        count(
            &c,
            &format!("SELECT count(*) FROM runs WHERE status = 'done' AND step = {STEPS}")
        ),
        runs,
        "{stdout}"
    );
    for m in [
        "loss",
        "pos_cos",
        "neg_cos",
        "batch_alignment",
        "batch_uniformity",
        "gd_mean",
        "w_entropy",
        "w_max",
        "ratio_mean",
    ] {
        // Every run has the metric at every step, finite (SQLite stores NaN as NULL).
        let q = format!(
            "SELECT count(*), count(DISTINCT run_id || ':' || step), count(value), \
             sum(abs(value) < 1e30) FROM metric_values WHERE metric = '{m}' AND step >= 1"
        );
        let (n, d, v, fin): (i64, i64, i64, i64) = c
            .query_row(&q, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap();
        assert_eq!((n, d, v, fin), (runs * STEPS, runs * STEPS, n, n), "{m}");
    }
    // The components mean what they say: GD in [0, 1] and W a distribution's maximum.
    assert_eq!(count(&c, "SELECT count(*) FROM metric_values WHERE metric IN ('gd_mean', 'w_max') AND (value < 0 OR value > 1.000001)"), 0);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM metric_values WHERE metric = 'w_entropy' AND value < -1e-6"
        ),
        0
    );
}
