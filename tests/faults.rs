//! Numerical faults injected with `SIMSWEEP_FAULT` (src/train/fault.rs): a NaN gradient in one run
//! and a loss explosion in another mark those runs `diverged` at exactly the injected step — also
//! in the middle of a window of step metrics held on the device (flushed every 25 steps and at the
//! last step) — with their rows up to that step and none after, while the rest of the sweep trains
//! to the end.

mod common;

use common::{count, data_dir, micro_model};
use rusqlite::Connection;
use std::process::Command;

const STEPS: i64 = 40;

#[test]
fn nan_gradients_and_a_loss_explosion_diverge_at_their_step_and_the_sweep_continues() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    micro_model(dir.path());
    let sweep = dir.path().join("f.toml");
    std::fs::write(
        &sweep,
        format!(
            r#"
[sweep]
name = "faults"
[base]
model.path = "micro-bert"
model.init = "random"
model.pooling = "avg"
data.train = ["wiki1m_for_simcse.head.txt"]
train.batch_size = 8
train.steps = {STEPS}
train.checkpoint_every = 20
eval.every = 0
eval.tasks = []
probe.every = 0
probe.size = 64
[grid]
"train.temperature" = [0.05, 0.1, 0.2]
"#
        ),
    )
    .unwrap();
    let db = dir.path().join("r.db");
    let simsweep = |args: &[&str], fault: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_simsweep"));
        c.arg("--db")
            .arg(&db)
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .env_remove("SIMSWEEP_FAULT");
        if let Some(f) = fault {
            c.env("SIMSWEEP_FAULT", f);
        }
        c.output().unwrap()
    };
    let out = simsweep(&["plan", &sweep.display().to_string(), "--json"], None);
    assert!(out.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<String> = plan["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    // Run 0: a NaN gradient at step 37 (inside the window 26..40); run 1: the loss explodes at
    // step 13 (inside 1..25); run 2 has no fault. A prefix of the id selects the run.
    let fault = format!("nan_grad@37:{},loss_explode@13:{}", &ids[0][..8], &ids[1]);
    let out = simsweep(
        &["run", &sweep.display().to_string(), "--device", "cpu"],
        Some(&fault),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a diverged run makes the exit status 1\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("faults: 1 done, 0 failed, 2 diverged, 0 cancelled in this invocation"),
        "{stdout}"
    );

    let c = Connection::open(&db).unwrap();
    let run = |i: usize| -> (String, Option<i64>, Option<String>) {
        c.query_row(
            "SELECT status, step, error FROM runs WHERE run_id = ?1",
            [&ids[i]],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    };
    let (status, step, error) = run(0);
    assert_eq!((status.as_str(), step), ("diverged", Some(37)));
    let error = error.unwrap();
    let loss: f64 = error
        .strip_prefix("loss = ")
        .and_then(|r| r.strip_suffix(", grad_norm = NaN at step 37"))
        .unwrap_or_else(|| panic!("{error}"))
        .parse()
        .unwrap();
    assert!(
        loss.is_finite() && loss > 0.0,
        "the loss itself was fine: {error}"
    );
    let (status, step, error) = run(1);
    assert_eq!((status.as_str(), step), ("diverged", Some(13)));
    let error = error.unwrap();
    assert!(
        error.starts_with("loss = inf, grad_norm = ") && error.ends_with(" at step 13"),
        "{error}"
    );
    assert_eq!(run(2), ("done".to_string(), Some(STEPS), None));

    // Rows: every step up to the diverged one (its own row included, the non-finite values as
    // NULL), none after; the healthy run has all of its steps.
    let steps = |i: usize, metric: &str| -> (i64, i64, i64, i64) {
        c.query_row(
            "SELECT count(*), count(DISTINCT step), min(step), max(step) FROM metric_values WHERE run_id = ?1 AND metric = ?2",
            [&ids[i], metric],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
    };
    for m in ["loss", "grad_norm", "lr", "pos_cos", "tokens_per_s"] {
        assert_eq!(steps(0, m), (37, 37, 1, 37), "{m}");
        assert_eq!(steps(1, m), (13, 13, 1, 13), "{m}");
        assert_eq!(steps(2, m), (STEPS, STEPS, 1, STEPS), "{m}");
    }
    let value = |i: usize, metric: &str, step: i64| -> Option<f64> {
        c.query_row(
            "SELECT value FROM metric_values WHERE run_id = ?1 AND metric = ?2 AND step = ?3",
            rusqlite::params![&ids[i], metric, step],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert!(value(0, "loss", 37).is_some_and(f64::is_finite));
    assert_eq!(value(0, "grad_norm", 37), None, "NaN is stored as NULL");
    assert!(value(0, "grad_norm", 36).is_some_and(f64::is_finite));
    let exploded = value(1, "loss", 13);
    assert!(
        exploded.is_none_or(|v| v.is_infinite()),
        "the exploded loss: {exploded:?}"
    );
    assert!(value(1, "loss", 12).is_some_and(|v| v.is_finite() && v < 10.0));
    // Nothing logged after the diverged step (no probe, no evaluation, no final scores).
    for (i, at) in [(0, 37), (1, 13)] {
        assert_eq!(
            count(
                &c,
                &format!(
                    "SELECT count(*) FROM metric_values WHERE run_id = '{}' AND step > {at}",
                    ids[i]
                )
            ),
            0
        );
    }
    // The checkpoint before the divergence is kept for --retry-failed (run 0 saved step 20).
    assert_eq!(
        count(
            &c,
            &format!(
                "SELECT count(*) FROM checkpoints JOIN runs USING (run_pk) WHERE run_id = '{}' AND kind = 'last' AND checkpoints.step = 20",
                ids[0]
            )
        ),
        1
    );

    // `status` shows both diverged runs with their errors.
    let out = simsweep(&["status", "faults"], None);
    let st = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{st}");
    assert!(
        st.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["faults", "3", "0", "0", "1", "0", "2", "0", "0"]),
        "{st}"
    );
    assert!(
        st.contains(&format!("{} diverged at step 37: loss = ", ids[0])),
        "{st}"
    );
    assert!(
        st.contains(&format!(
            "{} diverged at step 13: loss = inf, grad_norm = ",
            ids[1]
        )),
        "{st}"
    );

    // Without the fault the diverged runs train to the end when retried.
    let out = simsweep(
        &[
            "run",
            &sweep.display().to_string(),
            "--device",
            "cpu",
            "--retry-failed",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        count(
            &c,
            &format!("SELECT count(*) FROM runs WHERE status = 'done' AND step = {STEPS}")
        ),
        3
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM metric_values WHERE metric = 'loss'"
        ),
        3 * STEPS
    );
}

#[test]
fn a_malformed_fault_spec_fails_the_run_with_its_usage() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    micro_model(dir.path());
    let sweep = dir.path().join("f.toml");
    std::fs::write(
        &sweep,
        "[sweep]\nname = \"bad-fault\"\n[base]\nmodel.path = \"micro-bert\"\nmodel.init = \"random\"\ndata.train = [\"wiki1m_for_simcse.head.txt\"]\ntrain.batch_size = 8\ntrain.steps = 2\neval.every = 0\neval.tasks = []\nprobe.size = 16\n",
    )
    .unwrap();
    let db = dir.path().join("r.db");
    let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .arg("--db")
        .arg(&db)
        .arg("--data-dir")
        .arg(&data)
        .args(["run", &sweep.display().to_string(), "--device", "cpu"])
        .env("SIMSWEEP_FAULT", "nan_grad@soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let c = Connection::open(&db).unwrap();
    let error: String = c
        .query_row("SELECT error FROM runs WHERE status = 'failed'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        error,
        "SIMSWEEP_FAULT: `nan_grad@soon`: the step must be an integer ≥ 1 (a range FIRST-LAST with LAST ≥ FIRST); expected KIND@STEP, KIND@STEP-LAST or either with :RUN_ID_PREFIX, KIND nan_grad, loss_explode, segv or abort"
    );
}

/// With the loss scaler on (forced on the CPU, as fp16 on CUDA has it), a NaN gradient skips the
/// step; NaN gradients at every step from 5 on end the run as diverged after 25 skipped steps in a
/// row instead of skipping for ever, while a single bad step is skipped and the run goes on. The
/// training loop reads device values once per metric window, plus once per step for the scaler's
/// overflow check (`SIMSWEEP_COUNT_HOST_READS`).
#[test]
fn a_stalled_loss_scaler_diverges_the_run_and_the_loop_reads_the_device_once_per_window() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    micro_model(dir.path());
    let sweep = dir.path().join("s.toml");
    std::fs::write(
        &sweep,
        format!(
            r#"
[sweep]
name = "scaler"
[base]
model.path = "micro-bert"
model.init = "random"
data.train = ["wiki1m_for_simcse.head.txt"]
train.batch_size = 8
train.steps = {STEPS}
eval.every = 0
eval.tasks = []
probe.every = 0
probe.size = 64
[grid]
"train.temperature" = [0.05, 0.1, 0.2]
"#
        ),
    )
    .unwrap();
    let db = dir.path().join("r.db");
    let run_in = |db: &std::path::Path, envs: &[(&str, String)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_simsweep"));
        c.arg("--db")
            .arg(db)
            .arg("--data-dir")
            .arg(&data)
            .args(["run", &sweep.display().to_string(), "--device", "cpu"])
            .env_remove("SIMSWEEP_FAULT")
            .env("SIMSWEEP_COUNT_HOST_READS", "1");
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .arg("--db")
        .arg(&db)
        .args(["plan", &sweep.display().to_string(), "--json"])
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<String> = plan["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    // Run 0: NaN gradients from step 5 on; run 1: at step 10 only; run 2: none, scaler off.
    let out = run_in(
        &db,
        &[
            (
                "SIMSWEEP_FAULT",
                format!("nan_grad@5-{STEPS}:{},nan_grad@10:{}", ids[0], ids[1]),
            ),
            ("SIMSWEEP_FORCE_LOSS_SCALER", "1".into()),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = Connection::open(&db).unwrap();
    let run_row = |i: usize| -> (String, Option<i64>, Option<String>) {
        c.query_row(
            "SELECT status, step, error FROM runs WHERE run_id = ?1",
            [&ids[i]],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    };
    let (status, step, error) = run_row(0);
    assert_eq!((status.as_str(), step), ("diverged", Some(29)), "{error:?}");
    assert_eq!(
        error.as_deref(),
        Some("the fp16 loss scaler skipped 25 steps in a row on non-finite gradients (scale 1.953125e-3; the run gives up after 25 in a row or below 5.960464477539063e-8) at step 29")
    );
    assert_eq!(
        count(
            &c,
            &format!(
                "SELECT max(step) FROM metric_values WHERE run_id = '{}' AND metric = 'loss'",
                ids[0]
            )
        ),
        29,
        "its rows end at the step it gave up"
    );
    let (status, step, _) = run_row(1);
    assert_eq!(
        (status.as_str(), step),
        ("done", Some(STEPS)),
        "one skipped step"
    );
    // The skipped step's gradient norm is recorded as infinite (NULL), the next one's is finite.
    let gn = |step: i64| -> Option<f64> {
        c.query_row(
            "SELECT value FROM metric_values WHERE run_id = ?1 AND metric = 'grad_norm' AND step = ?2",
            rusqlite::params![&ids[1], step],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(gn(10), None);
    assert!(gn(11).is_some_and(f64::is_finite));
    let reads = |i: usize| -> String {
        c.query_row(
            "SELECT e.message FROM events e JOIN runs r USING (run_pk) WHERE r.run_id = ?1 AND e.kind = 'host_reads'",
            [&ids[i]],
            |r| r.get(0),
        )
        .unwrap()
    };
    // The scaler's check is one read per step: 40 steps, windows at 25 and 40.
    assert_eq!(
        reads(1),
        format!("42 host reads in steps 1..{STEPS}, 2 metric windows")
    );
    drop(c);
    // Without the scaler, a step makes no read of its own: one per window.
    let plain = dir.path().join("plain.db");
    let out = run_in(&plain, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = Connection::open(&plain).unwrap();
    let mut st = c
        .prepare("SELECT message FROM events WHERE kind = 'host_reads' ORDER BY run_pk")
        .unwrap();
    let msgs: Vec<String> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        msgs,
        vec![format!("2 host reads in steps 1..{STEPS}, 2 metric windows"); 3]
    );
}
