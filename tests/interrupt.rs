//! Interrupting `simsweep run` (Ctrl-C, kill -9) and running it again: every run ends done, with
//! exactly one row per (run, metric, layer, step), and the database intact.

mod common;

use common::{data_dir, micro_model};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn setup(dir: &Path) -> PathBuf {
    micro_model(dir);
    let sweep = dir.join("s.toml");
    std::fs::write(
        &sweep,
        r#"
[sweep]
name = "interrupt"
[base]
model.path = "micro-bert"
model.init = "random"
model.pooling = "avg"
data.train = ["wiki1m_for_simcse.head.txt"]
train.batch_size = 8
train.steps = 200
eval.every = 0
eval.tasks = []
probe.every = 0
[grid]
"train.temperature" = [0.05, 0.1]
"#,
    )
    .unwrap();
    sweep
}

fn start(db: &Path, data: &Path, sweep: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_simsweep"))
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
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn loss_rows(db: &Path) -> i64 {
    Connection::open(db)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM metric_values WHERE metric = 'loss'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(0)
}

/// Wait until some training rows are committed (the run is under way).
fn wait_for_rows(db: &Path, at_least: i64) {
    let t = Instant::now();
    while loss_rows(db) < at_least {
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "training did not reach {at_least} rows"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn check_complete(db: &Path) {
    let c = Connection::open(db).unwrap();
    let q = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        q("SELECT count(*) FROM runs WHERE status = 'done' AND step = 200"),
        2
    );
    // Exactly one row per (run, metric, layer, step), every step present.
    assert_eq!(
        q("SELECT count(*) FROM metric_values WHERE metric = 'loss'"),
        400
    );
    assert_eq!(q("SELECT count(*) FROM (SELECT run_pk, metric_id, layer, step, count(*) c FROM metrics GROUP BY 1, 2, 3, 4 HAVING c > 1)"), 0);
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn ctrl_c_cancels_cleanly_and_the_next_run_completes() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sweep = setup(dir.path());
    let db = dir.path().join("r.db");
    let mut child = start(&db, &data, &sweep);
    wait_for_rows(&db, 30);
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "an interrupted invocation exits 130"
    );
    let c = Connection::open(&db).unwrap();
    let (cancelled, last): (i64, i64) = c
        .query_row(
            "SELECT count(*), (SELECT count(*) FROM checkpoints WHERE kind = 'last') FROM runs WHERE status = 'cancelled'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (cancelled, last),
        (1, 1),
        "the run finishes its step, saves a checkpoint and is marked cancelled"
    );
    let status = start(&db, &data, &sweep).wait().unwrap();
    assert!(status.success());
    check_complete(&db);
}

#[test]
fn kill_9_then_rerun_reclaims_the_orphaned_run() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sweep = setup(dir.path());
    let db = dir.path().join("r.db");
    for at in [30, 230] {
        let mut child = start(&db, &data, &sweep);
        wait_for_rows(&db, at);
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let status = start(&db, &data, &sweep).wait().unwrap();
    assert!(status.success());
    check_complete(&db);
}
