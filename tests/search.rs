//! Early stopping (`[search]`, crates/core/src/search.rs) on the local executor: ASHA and the
//! median rule on a sweep whose metric is known in advance (the `SIMSWEEP_TEST_OBJECTIVE` hook), so
//! the pruned runs and their steps are computed by hand (tests/common: `ASHA_OBJECTIVE`); kill -9
//! of the front in the middle of a sweep, then a resume that keeps the decisions taken; and a real
//! micro sweep (no hook) where pruning saves steps. The Slurm job array case is in tests/slurm.rs.

mod common;

use common::{
    count, data_dir, expected_outcome, search_outcome, search_sweep, text, ASHA_OBJECTIVE,
    ASHA_PRUNED,
};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ASHA: &str =
    "[search]\nmethod = \"asha\"\nmetric = \"stsb_dev\"\nmin_steps = 10\nreduction_factor = 3\n";

/// The median rule's objective (min_runs 2, decisions at 10, 20, 30; none at the last step 40):
/// w0 [10 20 30 40] and w1 [30 …] have too few others; w2 5 < median(10, 30) = 20 → pruned at 10;
/// w3 15 ≥ 10, then 25 ≥ 22.5 (w0 15, w1 30), 26 ≥ 25 (w0 20, w1 30): done; w4 12 < 12.5
/// (5 10 15 30) → pruned at 10; w5 40 keeps its best 40 through 10s: done; w6 20 ≥ 13.5 at 10,
/// then best 21 < 22.5 (w0 15, w1 30, w3 20, w5 25) → pruned at 20; w7 100: done; w8 1 → pruned at 10.
const MEDIAN_OBJECTIVE: &str = r#"{"key": "train.warmup_steps", "values": {
  "0": [10, 20, 30, 40], "1": [30, 30, 30, 30], "2": [5, 5, 5, 5], "3": [15, 25, 26, 24],
  "4": [12, 12, 12, 12], "5": [40, 10, 10, 10], "6": [20, 21, 19, 0], "7": [100, 100, 100, 100],
  "8": [1, 1, 1, 1]}}"#;
const MEDIAN_PRUNED: &[(i64, i64)] = &[(2, 10), (4, 10), (6, 20), (8, 10)];

fn simsweep(db: &Path, data: &Path, objective: Option<&Path>, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_simsweep"));
    c.arg("--db").arg(db).arg("--data-dir").arg(data).args(args);
    c.env_remove("SIMSWEEP_TEST_OBJECTIVE");
    if let Some(o) = objective {
        c.env("SIMSWEEP_TEST_OBJECTIVE", o);
    }
    c
}

/// A search sweep of the nine micro runs in a fresh folder, with a test objective there.
struct Setup {
    dir: tempfile::TempDir,
    /// The sweep file, as an argument.
    sweep: String,
    objective: PathBuf,
    db: PathBuf,
}

fn setup(name: &str, search: &str, objective: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sweep = search_sweep(dir.path(), name, search).display().to_string();
    let objective_file = dir.path().join("objective.json");
    std::fs::write(&objective_file, objective).unwrap();
    let db = dir.path().join("r.db");
    Setup {
        dir,
        sweep,
        objective: objective_file,
        db,
    }
}

/// Run `simsweep` as [`simsweep`] does and require exit status 0 (its output in the message).
fn ok(db: &Path, data: &Path, objective: Option<&Path>, args: &[&str]) -> std::process::Output {
    let out = simsweep(db, data, objective, args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    out
}

/// (run, rung, verdict) of every decision on the board, in the order taken.
fn decisions(db: &Path) -> Vec<(String, i64, String)> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT run_id, rung, verdict FROM search_decisions ORDER BY decision_id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// Every decision event's (warmup, message), in order.
fn decision_events(db: &Path) -> Vec<(i64, String)> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare(
            "SELECT json_extract(r.config_json, '$.\"train.warmup_steps\"'), e.message FROM events e
             JOIN runs r ON r.run_pk = e.run_pk WHERE e.kind = 'search' ORDER BY e.event_id",
        )
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn asha_prunes_the_runs_computed_by_hand_and_status_shows_the_steps_saved() {
    let Some(data) = data_dir() else { return };
    let Setup {
        dir,
        sweep: s,
        objective,
        db,
    } = setup("asha", ASHA, ASHA_OBJECTIVE);
    let out = ok(
        &db,
        &data,
        Some(&objective),
        &["run", &s, "--device", "cpu", "--progress", "lines"],
    );
    let o = text(&out);
    assert!(
        o.contains("asha: 3 done, 0 failed, 0 diverged, 0 cancelled, 6 pruned in this invocation"),
        "{o}"
    );
    assert_eq!(search_outcome(&db), expected_outcome(ASHA_PRUNED), "{o}");

    // Every decision is an event naming the rung, the value and the threshold: nine at rung 10,
    // four at rung 30.
    let events = decision_events(&db);
    assert_eq!(events.len(), 13, "{events:#?}");
    let rung1: Vec<&(i64, String)> = events
        .iter()
        .filter(|e| e.1.contains("rung 1 (step 10)"))
        .collect();
    assert_eq!(rung1.len(), 9);
    let w1 = &events.iter().find(|e| e.0 == 1).unwrap().1;
    assert!(
        w1.contains("stsb_dev 40.0000 (1 seed at step 10) below the threshold 46.6667 (the 66.7 % quantile of 2 settings at this rung, η = 3): pruned"),
        "{w1}"
    );
    let w4: Vec<&String> = events.iter().filter(|e| e.0 == 4).map(|e| &e.1).collect();
    assert!(
        w4[1].contains("asha rung 2 (step 30): stsb_dev 58.0000")
            && w4[1].contains("below the threshold 59.0000")
            && w4[1].contains("pruned"),
        "{w4:?}"
    );
    // The board holds the same decisions.
    let c = Connection::open(&db).unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM search_decisions"), 13);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM search_decisions WHERE verdict = 'prune'"
        ),
        6
    );
    // A pruned run keeps its rows up to its step (none after) and its best checkpoint.
    assert_eq!(
        count(&c, "SELECT count(*) FROM metric_values WHERE metric = 'loss' AND run_id IN (SELECT run_id FROM runs WHERE status = 'pruned' AND step = 10)"),
        5 * 10
    );
    assert_eq!(count(&c, "SELECT max(m.step) FROM metric_values m JOIN runs r USING (run_id) WHERE r.status = 'pruned'"), 30);
    let mut st = c
        .prepare("SELECT c.path FROM checkpoints c JOIN runs r USING (run_pk) WHERE r.status = 'pruned' AND c.kind = 'best'")
        .unwrap();
    let bests: Vec<String> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(bests.len(), 6);
    for b in &bests {
        assert!(Path::new(b).join("config.json").is_file(), "{b}");
    }
    assert_eq!(
        count(&c, "SELECT count(*) FROM checkpoints WHERE kind = 'last'"),
        0
    );

    // status: the pruned column and what was saved (200 of 360 steps trained).
    let out = ok(&db, &data, None, &["status", "asha"]);
    let o = text(&out);
    assert!(o.contains("pruned"), "{o}");
    assert!(
        o.contains("asha: early stopping: 6 runs pruned, 160 of 360 steps not trained (44.4 % of the full sweep's GPU time)"),
        "{o}"
    );
    // runs and the report say it too, and show each pruned run.
    let out = ok(&db, &data, None, &["runs", "asha"]);
    let o = text(&out);
    assert!(
        o.contains(
            "sweep asha: 9 runs; early stopping: 6 runs pruned, 160 of 360 steps not trained"
        ),
        "{o}"
    );
    let out = ok(&db, &data, None, &["runs", "asha", "--format", "json"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pruned = runs
        .as_array()
        .or_else(|| runs["runs"].as_array())
        .unwrap_or_else(|| panic!("{runs}"))
        .iter()
        .filter(|r| r["status"] == "pruned")
        .count();
    assert_eq!(pruned, 6, "{runs}");
    let report = dir.path().join("report.html");
    ok(
        &db,
        &data,
        None,
        &["report", "asha", "-o", &report.display().to_string()],
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("3 done, 0 running, 0 pending, 0 failed or diverged, 6 pruned"),
        "report meta"
    );
    assert!(
        html.contains("early stopping: 6 runs pruned, 160 of 360 steps not trained (44.4 %"),
        "report savings"
    );
    // best leaves pruned runs out unless asked.
    let best = |extra: &[&str]| -> usize {
        let mut args = vec![
            "best",
            "asha",
            "--metric",
            "stsb_dev",
            "--by",
            "train.warmup_steps",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        let out = ok(&db, &data, None, &args);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["groups"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .len()
    };
    assert_eq!(best(&[]), 3);
    assert_eq!(best(&["--include-pruned"]), 9);
    // A second run has nothing left to do and changes nothing.
    ok(
        &db,
        &data,
        Some(&objective),
        &["run", &s, "--device", "cpu"],
    );
    assert_eq!(search_outcome(&db), expected_outcome(ASHA_PRUNED));
    assert_eq!(
        count(
            &Connection::open(&db).unwrap(),
            "SELECT count(*) FROM search_decisions"
        ),
        13
    );
}

#[test]
fn the_median_rule_prunes_the_runs_computed_by_hand() {
    let Some(data) = data_dir() else { return };
    let Setup {
        dir: _dir,
        sweep,
        objective,
        db,
    } = setup(
        "median",
        "[search]\nmethod = \"median\"\nmin_steps = 10\nmin_runs = 2\n",
        MEDIAN_OBJECTIVE,
    );
    let out = ok(
        &db,
        &data,
        Some(&objective),
        &["run", &sweep, "--device", "cpu"],
    );
    let o = text(&out);
    assert_eq!(search_outcome(&db), expected_outcome(MEDIAN_PRUNED), "{o}");
    let events = decision_events(&db);
    let w6: Vec<&String> = events.iter().filter(|e| e.0 == 6).map(|e| &e.1).collect();
    assert_eq!(w6.len(), 2, "{events:#?}");
    assert!(
        w6[1].contains("median rule at step 20: best stsb_dev so far 21.0000 (1 seed at step 20) worse than the median 22.5000 of the running averages of 4 other settings: pruned"),
        "{w6:?}"
    );
    // w5's best so far (40 at step 10) keeps it through its low later values.
    let w5: Vec<&String> = events.iter().filter(|e| e.0 == 5).map(|e| &e.1).collect();
    assert_eq!(w5.len(), 3);
    assert!(
        w5.iter()
            .all(|m| m.contains("best stsb_dev so far 40.0000") && m.ends_with("continues")),
        "{w5:?}"
    );
    // No decision before min_runs other settings reported: w0 and w1 have none.
    assert!(!events.iter().any(|e| e.0 == 0 || e.0 == 1), "{events:#?}");
}

#[test]
fn a_front_killed_mid_sweep_resumes_with_the_decisions_already_taken() {
    let Some(data) = data_dir() else { return };
    let Setup {
        dir: _dir,
        sweep: s,
        objective,
        db,
    } = setup("killed", ASHA, ASHA_OBJECTIVE);
    let mut child = simsweep(
        &db,
        &data,
        Some(&objective),
        &["run", &s, "--device", "cpu", "--progress", "quiet"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // Kill -9 once the board holds a few decisions (several runs in, several to go).
    let t = Instant::now();
    loop {
        let n = Connection::open(&db)
            .ok()
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM search_decisions", [], |r| {
                    r.get::<_, i64>(0)
                })
                .ok()
            })
            .unwrap_or(0);
        // Decisions 1 and 2 are w0's (rungs 10, 30), 3 prunes w1: killing now often lands between
        // that decision and w1's end being recorded (the next claim then marks it pruned, rows kept).
        if n >= 3 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no decisions after 300 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let c = Connection::open(&db).unwrap();
    let before = decisions(&db);
    assert!(
        count(
            &c,
            "SELECT count(*) FROM runs WHERE status IN ('pending', 'running')"
        ) > 0,
        "killed mid-sweep"
    );
    drop(c);
    let out = ok(
        &db,
        &data,
        Some(&objective),
        &["run", &s, "--device", "cpu"],
    );
    let o = text(&out);
    assert_eq!(search_outcome(&db), expected_outcome(ASHA_PRUNED), "{o}");
    let after = decisions(&db);
    // The decisions taken before the kill are kept as they were, none is taken twice.
    assert_eq!(&after[..before.len()], &before[..]);
    assert_eq!(after.len(), 13, "{after:#?}");
}

#[test]
fn a_real_micro_sweep_saves_steps_with_asha() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sweep = search_sweep(dir.path(), "real", ASHA);
    // Five settings are enough to prune some (and keep CI short).
    let file = std::fs::read_to_string(&sweep)
        .unwrap()
        .replace("[0, 1, 2, 3, 4, 5, 6, 7, 8]", "[0, 2, 4, 6, 8]");
    std::fs::write(&sweep, file).unwrap();
    let db = dir.path().join("r.db");
    // No hook: the runs' own STS-B dev scores decide.
    ok(
        &db,
        &data,
        None,
        &["run", &sweep.display().to_string(), "--device", "cpu"],
    );
    let outcome = search_outcome(&db);
    let pruned: Vec<&(i64, String, i64)> = outcome.iter().filter(|r| r.1 == "pruned").collect();
    assert!(!pruned.is_empty(), "{outcome:?}");
    assert!(pruned.iter().all(|r| r.2 == 10 || r.2 == 30), "{outcome:?}");
    let c = Connection::open(&db).unwrap();
    let trained = count(&c, "SELECT sum(step) FROM runs");
    assert!(trained < 5 * 40, "{trained}");
    // The decisions follow the recorded scores: each pruned setting's value is below its threshold.
    assert_eq!(
        count(&c, "SELECT count(*) FROM search_decisions WHERE verdict = 'prune' AND NOT value < threshold"),
        0
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM search_decisions d JOIN runs r USING (run_id) JOIN metric_values m ON m.run_id = r.run_id AND m.metric = 'stsb_dev' AND m.step = d.step WHERE m.value != d.value"),
        0
    );
}

#[test]
fn the_seeds_of_a_pruned_setting_stop_or_never_start() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sweep = search_sweep(dir.path(), "seeds", ASHA);
    // Two settings × three seeds, two runs at a time: A (warmup 0) scores 50, B (warmup 1) 20 at
    // every evaluation and seed. B's first seed at rung 10 is below any threshold with A there
    // (2/3 quantile of {50, 20} = 40): B is pruned, and its other seeds stop at their next report or
    // poll, or are marked pruned when claimed, whichever comes first.
    let file = std::fs::read_to_string(&sweep)
        .unwrap()
        .replace("name = \"seeds\"", "name = \"seeds\"\nseeds = [1, 2, 3]")
        .replace("[0, 1, 2, 3, 4, 5, 6, 7, 8]", "[0, 1]");
    std::fs::write(&sweep, file).unwrap();
    let objective = dir.path().join("objective.json");
    std::fs::write(
        &objective,
        r#"{"key": "train.warmup_steps", "values": {"0": [50], "1": [20]}}"#,
    )
    .unwrap();
    let db = dir.path().join("r.db");
    let out = ok(
        &db,
        &data,
        Some(&objective),
        &[
            "run",
            &sweep.display().to_string(),
            "--device",
            "cpu",
            "--jobs-per-device",
            "2",
        ],
    );
    let o = text(&out);
    let c = Connection::open(&db).unwrap();
    let runs: Vec<(i64, String, Option<i64>, Option<String>)> = c
        .prepare("SELECT json_extract(config_json, '$.\"train.warmup_steps\"'), status, step, error FROM runs ORDER BY ordinal")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    for (w, status, step, error) in &runs {
        if *w == 0 {
            assert_eq!(
                (status.as_str(), *step),
                ("done", Some(40)),
                "{runs:?}\n{o}"
            );
        } else {
            assert_eq!(status, "pruned", "{runs:?}\n{o}");
            assert!(step.unwrap_or(0) <= 10, "{runs:?}");
            assert!(
                error
                    .as_deref()
                    .unwrap_or("")
                    .contains("below the threshold"),
                "{runs:?}"
            );
        }
    }
    // One prune decision for the setting, however many seeds it stopped.
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM search_decisions WHERE verdict = 'prune'"
        ),
        1
    );
}
