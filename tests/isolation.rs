//! One engine process per run (crates/exec/src/local.rs): a worker that dies natively — SIGSEGV,
//! SIGABRT, injected with `SIMSWEEP_FAULT=segv@STEP` / `abort@STEP` — fails its own run with the
//! signal named and its last standard-error lines, while the other runs of the same invocation
//! train to the end; `--retry-failed` resumes the failed runs from their checkpoints. Packing runs
//! (`--jobs-per-device 2`) records exactly the values of training them one at a time. A killed
//! front leaves no worker behind, and `runs` shows a running run's step while it trains.

mod common;

use common::{count, data_dir, micro_model};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sweep_file(dir: &Path, name: &str, steps: i64, temps: &str) -> PathBuf {
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
train.batch_size = 8
train.steps = {steps}
train.checkpoint_every = 4
eval.every = 5
eval.tasks = []
probe.every = 5
probe.size = 32
[grid]
"train.temperature" = [{temps}]
"#
        ),
    )
    .unwrap();
    sweep
}

fn simsweep(db: &Path, data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_simsweep"));
    c.arg("--db")
        .arg(db)
        .arg("--data-dir")
        .arg(data)
        .env_remove("SIMSWEEP_FAULT")
        .env_remove("SIMSWEEP_THREADS");
    c
}

fn run_ids(db: &Path, data: &Path, sweep: &Path) -> Vec<String> {
    let out = simsweep(db, data)
        .args(["plan", &sweep.display().to_string(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    plan["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn status_and_error(c: &Connection, id: &str) -> (String, String) {
    c.query_row(
        "SELECT status, coalesce(error, '') FROM runs WHERE run_id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn a_worker_killed_by_a_signal_fails_its_run_only_and_retry_resumes_it() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sweep = sweep_file(dir.path(), "crash", 12, "0.05, 0.1, 0.2");
    let db = dir.path().join("r.db");
    let ids = run_ids(&db, &data, &sweep);
    // Run 0 segfaults at step 6, run 1 aborts at step 7, run 2 has no fault; two at a time.
    let fault = format!("segv@6:{},abort@7:{}", &ids[0][..10], &ids[1][..10]);
    let out = simsweep(&db, &data)
        .args(["run", &sweep.display().to_string(), "--device", "cpu"])
        .args(["--jobs-per-device", "2", "--progress", "lines"])
        .env("SIMSWEEP_FAULT", &fault)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let c = Connection::open(&db).unwrap();
    let (s0, e0) = status_and_error(&c, &ids[0]);
    assert_eq!(s0, "failed", "{e0}");
    assert!(
        e0.contains("killed by SIGSEGV (segmentation fault)")
            && e0.contains("SIMSWEEP_FAULT: segv at step 6"),
        "{e0}"
    );
    let (s1, e1) = status_and_error(&c, &ids[1]);
    assert_eq!(s1, "failed", "{e1}");
    assert!(
        e1.contains("killed by SIGABRT (abort)") && e1.contains("SIMSWEEP_FAULT: abort at step 7"),
        "{e1}"
    );
    assert_eq!(status_and_error(&c, &ids[2]).0, "done");
    assert!(
        stdout.contains(&format!("{} failed: the engine process", ids[0])),
        "{stdout}"
    );
    // The failed runs kept their rows up to the crash and their checkpoint at step 4.
    assert_eq!(
        count(
            &c,
            &format!(
                "SELECT max(step) FROM metric_values WHERE run_id = '{}' AND metric = 'loss'",
                ids[2]
            )
        ),
        12
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM checkpoints WHERE kind = 'last' AND step = 4"
        ),
        2
    );
    drop(c);

    // Retried without the fault: both resume from step 4 and finish; every row once.
    let out = simsweep(&db, &data)
        .args(["run", &sweep.display().to_string(), "--device", "cpu"])
        .args(["--retry-failed", "--progress", "lines"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("(resuming from step 4)").count(),
        2,
        "{stdout}"
    );
    let c = Connection::open(&db).unwrap();
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM runs WHERE status = 'done' AND step = 12"
        ),
        3
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM metric_values WHERE metric = 'loss'"
        ),
        36
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM (SELECT run_pk, metric_id, layer, step, count(*) n FROM metrics GROUP BY 1, 2, 3, 4 HAVING n > 1)"
        ),
        0
    );
}

/// Every (run, metric, layer, step) value but the timings.
fn values(db: &Path) -> Vec<(String, String, i64, i64, Option<f64>)> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare(
            "SELECT run_id, metric, layer, step, value FROM metric_values
             WHERE metric NOT IN ('tokens_per_s', 'probe_seconds') ORDER BY 1, 2, 3, 4",
        )
        .unwrap();
    st.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn packed_runs_record_exactly_the_values_of_runs_trained_one_at_a_time() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sweep = sweep_file(dir.path(), "pack", 10, "0.05, 0.1, 0.2, 0.5");
    let mut dbs = Vec::new();
    // One worker at a time with one thread; two at a time with one thread each (two granted).
    for (name, threads, jobs) in [("one.db", "1", "1"), ("packed.db", "2", "2")] {
        let sub = dir.path().join(name.trim_end_matches(".db"));
        std::fs::create_dir_all(&sub).unwrap();
        let db = sub.join(name);
        let out = simsweep(&db, &data)
            .args(["run", &sweep.display().to_string(), "--device", "cpu"])
            .args(["--jobs-per-device", jobs, "--progress", "quiet"])
            .env("SIMSWEEP_THREADS", threads)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dbs.push(db);
    }
    let (a, b) = (values(&dbs[0]), values(&dbs[1]));
    assert!(a.len() > 1000, "{} values", a.len());
    assert_eq!(a.len(), b.len());
    let differ: Vec<_> = a.iter().zip(&b).filter(|(x, y)| x != y).take(5).collect();
    assert!(differ.is_empty(), "packed values differ: {differ:?}");
}

/// Processes whose environment holds `tag`.
fn tagged_processes(tag: &str) -> Vec<u32> {
    let needle = format!("SIMSWEEP_TEST_TAG={tag}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
        })
        .collect()
}

#[test]
fn runs_shows_the_step_while_training_and_a_killed_front_leaves_no_worker() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sweep = sweep_file(dir.path(), "live", 4000, "0.05, 0.1");
    let db = dir.path().join("r.db");
    let tag = format!("{}-{}", std::process::id(), dir.path().display());
    let mut front = simsweep(&db, &data)
        .args(["run", &sweep.display().to_string(), "--device", "cpu"])
        .args(["--jobs-per-device", "2", "--progress", "quiet"])
        .env("SIMSWEEP_TEST_TAG", &tag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // `runs` (a read-only process) sees both runs' steps move while they train.
    let step_of = || -> Vec<i64> {
        let out = simsweep(&db, &data)
            .args(["runs", "live", "--status", "running", "--format", "json"])
            .output()
            .unwrap();
        if !out.status.success() {
            return Vec::new();
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array()
            .map(|a| a.iter().filter_map(|r| r["step"].as_i64()).collect())
            .unwrap_or_default()
    };
    let t = Instant::now();
    let first = loop {
        let s = step_of();
        if s.len() == 2 && s.iter().all(|&x| x > 0) {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no step shown: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let t = Instant::now();
    loop {
        let s = step_of();
        if s.len() == 2 && s.iter().zip(&first).all(|(a, b)| a > b) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "steps did not move: {first:?} → {s:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let workers: Vec<u32> = tagged_processes(&tag)
        .into_iter()
        .filter(|&p| p != front.id())
        .collect();
    assert_eq!(workers.len(), 2, "two engine workers: {workers:?}");
    // kill -9 of the front: the kernel ends its workers (PR_SET_PDEATHSIG) at once.
    front.kill().unwrap();
    front.wait().unwrap();
    let t = Instant::now();
    while !tagged_processes(&tag).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "workers outlived the front: {:?}",
            tagged_processes(&tag)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
