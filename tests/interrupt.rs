//! Interrupting `simsweep run` (Ctrl-C, kill -9) and running it again: every run ends done, resumed
//! from its last checkpoint, with exactly one row per (run, metric, layer, step), values identical
//! to an uninterrupted sweep's, and the database intact. Two runners on one database share the
//! work without executing a run twice.

mod common;

use common::{count, data_dir, micro_model};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STEPS: i64 = 120;

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
train.steps = 120
train.checkpoint_every = 20
eval.every = 0
eval.tasks = []
probe.every = 0
probe.size = 64
[grid]
"train.temperature" = [0.05, 0.1]
"#,
    )
    .unwrap();
    sweep
}

/// Every recorded value but the timings, keyed by (run ordinal, metric, layer, step).
fn values(db: &Path) -> std::collections::BTreeMap<(i64, String, i64, i64), Option<f64>> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare(
            "SELECT r.ordinal, v.metric, v.layer, v.step, v.value FROM metric_values v JOIN runs r USING (run_id)
             WHERE v.metric NOT IN ('tokens_per_s', 'probe_seconds')",
        )
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok(((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?), r.get(4)?))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// The sweep run once without interruption, as the reference for the interrupted ones.
fn reference(data: &Path, sweep: &Path, dir: &Path) -> PathBuf {
    let db = dir.join("reference.db");
    assert!(start(&db, data, sweep).wait().unwrap().success());
    check_complete(&db);
    db
}

fn start(db: &Path, data: &Path, sweep: &Path) -> Child {
    start_with(db, data, sweep, &[])
}

fn start_with(db: &Path, data: &Path, sweep: &Path, extra: &[&str]) -> Child {
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
        .args(extra)
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

/// Wait until `at_least` loss rows are committed; false if the runner finished first.
fn wait_for_rows_or_exit(db: &Path, at_least: i64, child: &mut Child) -> bool {
    let t = Instant::now();
    while loss_rows(db) < at_least {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(t.elapsed() < Duration::from_secs(600), "training stalled");
        std::thread::sleep(Duration::from_millis(20));
    }
    true
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
        q(&format!(
            "SELECT count(*) FROM runs WHERE status = 'done' AND step = {STEPS}"
        )),
        2
    );
    // Exactly one row per (run, metric, layer, step), every step present.
    assert_eq!(
        q("SELECT count(*) FROM metric_values WHERE metric = 'loss'"),
        2 * STEPS
    );
    // The resumable checkpoints are gone with success; the best model stays, loadable.
    assert_eq!(q("SELECT count(*) FROM checkpoints WHERE kind = 'last'"), 0);
    let mut st = c
        .prepare("SELECT path FROM checkpoints WHERE kind = 'best'")
        .unwrap();
    let bests: Vec<String> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(bests.len(), 2);
    for b in &bests {
        let b = Path::new(b);
        assert!(b.is_absolute() && b.ends_with("best"), "{}", b.display());
        for f in ["config.json", "model.safetensors", "vocab.txt"] {
            assert!(b.join(f).is_file(), "{} lacks {f}", b.display());
        }
        // A complete safetensors file with finite float32 weights (the engine's loader reads
        // the same file when a run resumes or is evaluated).
        let bytes = std::fs::read(b.join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", b.display()));
        assert!(st.len() > 10, "{}: {} tensors", b.display(), st.len());
        for (name, t) in st.tensors() {
            assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
            assert!(
                t.data()
                    .chunks_exact(4)
                    .all(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite()),
                "{}: {name} is not finite",
                b.display()
            );
        }
        let leftovers: Vec<_> = std::fs::read_dir(b.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "best")
            .collect();
        assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    }
    assert_eq!(q("SELECT count(*) FROM (SELECT run_pk, metric_id, layer, step, count(*) c FROM metrics GROUP BY 1, 2, 3, 4 HAVING c > 1)"), 0);
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    // The per-run summaries agree with the rows.
    assert_eq!(
        simsweep_core::store::summary::check(&c).unwrap().mismatches,
        []
    );
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
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM events WHERE kind = 'started' AND message LIKE '%resuming from step%'"
        ),
        1,
        "the cancelled run continues from its checkpoint"
    );
}

/// A number from the environment, or `default`.
fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: expected a number"))
        })
        .unwrap_or(default)
}

/// `SIMSWEEP_CRASH_KILLS` kills (default 6) per seed, `SIMSWEEP_CRASH_SEEDS` seeds (default 1), each
/// seed a fresh database: its kill points (committed loss rows) and a delay after each (0–250 ms,
/// so kills also land inside evaluations, checkpoint saves and commits) come from the seed.
#[test]
fn kill_9_at_many_moments_then_resume_matches_an_uninterrupted_sweep() {
    let Some(data) = data_dir() else { return };
    let kills = env_count("SIMSWEEP_CRASH_KILLS", 6);
    let seeds = env_count("SIMSWEEP_CRASH_SEEDS", 1);
    let dir = tempfile::tempdir().unwrap();
    let sweep = setup(dir.path());
    let t0 = Instant::now();
    let want = values(&reference(&data, &sweep, dir.path()));
    let (mut landed, mut resumptions) = (0, 0);
    for s in 0..seeds {
        let db = dir.path().join(format!("r{s}.db"));
        // Kill points spread over both runs (loss rows committed when the kill lands): early,
        // between checkpoints, across the run boundary, near the end.
        let mut seed = 0x5eed_u64 + s;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        let mut points: Vec<(i64, u64)> = (0..kills)
            .map(|_| (10 + (next() % (2 * STEPS as u64 - 20)) as i64, next() % 250))
            .collect();
        points.sort();
        let mut landed_here = 0;
        for (at, delay) in points {
            let mut child = start(&db, &data, &sweep);
            if !wait_for_rows_or_exit(&db, at, &mut child) {
                break;
            }
            std::thread::sleep(Duration::from_millis(delay));
            child.kill().unwrap();
            child.wait().unwrap();
            landed_here += 1;
        }
        assert!(
            landed_here >= kills.min(3),
            "seed {s}: only {landed_here} kills landed"
        );
        let status = start(&db, &data, &sweep).wait().unwrap();
        assert!(status.success());
        check_complete(&db);
        let c = Connection::open(&db).unwrap();
        let resumed = count(
            &c,
            "SELECT count(*) FROM events WHERE kind = 'started' AND message LIKE '%resuming from step%'",
        );
        assert!(
            resumed >= 2.min(landed_here as i64),
            "seed {s}: killed runs resume from their checkpoints"
        );
        // Same dropout masks, same data order, same optimizer state: the interrupted sweep's
        // values are exactly the uninterrupted sweep's.
        let got = values(&db);
        assert_eq!(got.len(), want.len());
        let differ: Vec<_> = got
            .iter()
            .filter(|(k, v)| want.get(*k) != Some(*v))
            .take(5)
            .collect();
        assert!(
            differ.is_empty(),
            "seed {s}: values differ from the reference: {differ:?}"
        );
        landed += landed_here;
        resumptions += resumed;
    }
    eprintln!(
        "kill -9: {landed} kills landed over {seeds} seeds, {resumptions} resumptions from a checkpoint, {:.0} s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn two_runners_and_a_two_slot_runner_share_a_sweep_without_running_anything_twice() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sweep = setup(dir.path());
    let text = std::fs::read_to_string(&sweep)
        .unwrap()
        .replace("train.steps = 120", "train.steps = 40")
        .replace("[0.05, 0.1]", "[0.05, 0.1, 0.2, 0.5, 1.0]");
    std::fs::write(&sweep, text).unwrap();
    let db = dir.path().join("r.db");
    let a = start(&db, &data, &sweep);
    let b = start_with(&db, &data, &sweep, &["--jobs-per-device", "2"]);
    for mut c in [a, b] {
        assert!(c.wait().unwrap().success());
    }
    let c = Connection::open(&db).unwrap();
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM runs WHERE status = 'done' AND attempts = 1"
        ),
        5
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM events WHERE kind = 'started'"),
        5,
        "each run was claimed once"
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM metric_values WHERE metric = 'loss'"
        ),
        5 * 40
    );
    assert_eq!(count(&c, "SELECT count(*) FROM (SELECT run_pk, metric_id, layer, step, count(*) n FROM metrics GROUP BY 1, 2, 3, 4 HAVING n > 1)"), 0);
}
