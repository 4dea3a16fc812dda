//! SentEval's transfer tasks through the binaries: a sweep whose runs evaluate them records the
//! scores as evaluation rows of the best checkpoint; `runs`, `best`, `plot` and the report show
//! them; `eval` on that checkpoint gives the same numbers; every run records its fingerprint, and
//! the report warns when runs differ in it; a missing task folder is refused before training.

mod common;

use common::{count, data_dir, micro_model, text};
use rusqlite::Connection;
use std::path::Path;
use std::process::{Command, Output};

const SWEEP: &str = r#"
[sweep]
name = "transfer"
[base]
model.path = "micro-bert"
model.init = "random"
data.train = ["wiki1m_for_simcse.head.txt"]
data.max_examples = 64
train.batch_size = 16
train.max_len = 24
train.steps = 3
eval.every = 0
eval.mode = "fasttest"
# Batches of 16 × 32 values through the pooler's tanh stay on one thread (docs/cli.md,
# "Determinism"), so `eval` below reproduces the recorded scores bit for bit on any machine.
eval.batch_size = 16
probe.every = 0
probe.size = 32
[grid]
"eval.tasks" = [["stsb_test", "transfer"], ["stsb_test"]]
"#;

fn simsweep(db: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .args(["--db", &db.display().to_string()])
        .args(["--data-dir", &data.display().to_string()])
        .args(args)
        .env("SIMSWEEP_THREADS", "2")
        .output()
        .unwrap()
}

fn ok(db: &Path, data: &Path, args: &[&str]) -> String {
    let o = simsweep(db, data, args);
    assert!(o.status.success(), "{args:?}\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const TRANSFER: [&str; 9] = [
    "mr",
    "cr",
    "subj",
    "mpqa",
    "sst2",
    "trec",
    "mrpc",
    "mrpc_f1",
    "transfer_avg",
];

#[test]
fn transfer_scores_are_recorded_shown_and_reproduced_with_the_runs_fingerprint() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    micro_model(dir.path());
    let sweep = dir.path().join("transfer.toml");
    std::fs::write(&sweep, SWEEP).unwrap();
    let db = dir.path().join("results.db");
    ok(
        &db,
        &data,
        &["run", &sweep.display().to_string(), "--device", "cpu"],
    );

    let c = Connection::open(&db).unwrap();
    // The run with the transfer tasks has every score at its last step; the other has none.
    let scores: Vec<(String, String, i64, f64)> = c
        .prepare(
            "SELECT run_id, metric, step, value FROM metric_values
             WHERE metric IN ('mr','cr','subj','mpqa','sst2','trec','mrpc','mrpc_f1','transfer_avg')
             ORDER BY run_id, metric",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(scores.len(), 9, "{scores:?}");
    let run = scores[0].0.clone();
    assert!(scores.iter().all(|s| s.0 == run && s.2 == 3), "{scores:?}");
    for (_, name, _, v) in &scores {
        assert!((0.0..=100.0).contains(v), "{name} = {v}");
    }
    let get = |n: &str| scores.iter().find(|s| s.1 == n).unwrap().3;
    let accs: f64 = TRANSFER[..7].iter().map(|n| get(n)).sum();
    assert!((get("transfer_avg") - accs / 7.0).abs() < 1e-9);
    // SentEval's accuracies are rounded to two decimals.
    assert!(TRANSFER[..8]
        .iter()
        .all(|n| ((get(n) * 100.0).round() - get(n) * 100.0).abs() < 1e-6));

    // Every run recorded one fingerprint.
    assert_eq!(
        count(&c, "SELECT count(*) FROM events WHERE kind = 'fingerprint'"),
        2
    );

    // runs: the headline column; JSON carries the fingerprint.
    let table = ok(&db, &data, &["runs", "transfer"]);
    assert!(table.contains("transfer_avg"), "{table}");
    let j: serde_json::Value =
        serde_json::from_str(&ok(&db, &data, &["runs", "transfer", "--format", "json"])).unwrap();
    let rows = j.as_array().unwrap();
    let with = rows.iter().find(|r| r["run_id"] == run.as_str()).unwrap();
    assert_eq!(with["transfer_avg"].as_f64(), Some(get("transfer_avg")));
    let fp = &with["fingerprint"];
    for key in [
        "simsweep",
        "libtorch",
        "cuda",
        "device",
        "threads",
        "precision",
        "eval_mode",
        "sts_aggregation",
        "pooler",
        "max_len",
    ] {
        assert!(!fp[key].is_null(), "fingerprint lacks {key}: {fp}");
    }
    assert_eq!(fp["eval_mode"], "fasttest");
    assert_eq!(fp["sts_aggregation"], "all");
    assert_eq!(fp["precision"], "fp32");
    assert_eq!(fp["pooler"], "cls+mlp");

    // best and the final-score chart.
    let best = ok(
        &db,
        &data,
        &[
            "best",
            "transfer",
            "--metric",
            "transfer_avg",
            "--mode",
            "final",
        ],
    );
    assert!(
        best.contains(&format!("{:.2}", get("transfer_avg"))),
        "{best}"
    );
    let svg = dir.path().join("final.svg");
    ok(
        &db,
        &data,
        &[
            "plot",
            "transfer",
            "--kind",
            "final",
            "--metric",
            "transfer_avg",
            "-o",
            &svg.display().to_string(),
        ],
    );
    assert!(std::fs::read_to_string(&svg)
        .unwrap()
        .contains("transfer_avg"));

    // The report: one fingerprint; then a run "computed elsewhere" makes it warn.
    let report = dir.path().join("report.html");
    ok(
        &db,
        &data,
        &["report", "transfer", "-o", &report.display().to_string()],
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("2 of 2 runs share one fingerprint"),
        "fingerprint line missing"
    );
    assert!(html.contains("transfer_avg"));
    c.execute(
        "UPDATE events SET message = json_set(message, '$.device', 'NVIDIA H100 80GB HBM3, driver 580.65', '$.threads', 1)
         WHERE kind = 'fingerprint' AND run_pk = (SELECT run_pk FROM runs WHERE run_id = ?1)",
        [&run],
    )
    .unwrap();
    ok(
        &db,
        &data,
        &["report", "transfer", "-o", &report.display().to_string()],
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("2 different fingerprints"), "no warning");
    assert!(
        html.contains("NVIDIA H100 80GB HBM3")
            && html.contains("<th>device</th>")
            && html.contains("<th>threads</th>")
    );
    assert!(
        !html.contains("<th>libtorch</th>"),
        "only the keys that differ are columns"
    );

    // eval on the best checkpoint reproduces the recorded numbers (same seed, same protocol).
    let best_dir = dir.path().join(format!("transfer/{run}/best"));
    let e: serde_json::Value = serde_json::from_str(&ok(
        &db,
        &data,
        &[
            "eval",
            "--model",
            &best_dir.display().to_string(),
            "--tasks",
            "trec,mrpc",
            "--mode",
            "fasttest",
            "--device",
            "cpu",
            "--batch-size",
            "16",
            "--json",
        ],
    ))
    .unwrap();
    for n in ["trec", "mrpc", "mrpc_f1"] {
        assert_eq!(e["scores"][n].as_f64(), Some(get(n)), "{n}: {e}");
    }
    assert_eq!(e["mode"], "fasttest");
    assert_eq!(e["fingerprint"]["pooler"], "cls+mlp");
    assert!(e["transfer"]["mrpc"]["f1"].is_f64() && e["transfer"]["trec"]["penalty"].is_f64());
}

#[test]
fn a_missing_transfer_folder_is_refused_naming_the_task_and_the_path() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    micro_model(dir.path());
    // A data folder with everything but MRPC.
    let fake = dir.path().join("data");
    let down = fake.join("SentEval/data/downstream");
    std::fs::create_dir_all(&down).unwrap();
    let real = data.join("SentEval/data/downstream");
    for d in ["STS", "TREC"] {
        std::os::unix::fs::symlink(real.join(d), down.join(d)).unwrap();
    }
    std::os::unix::fs::symlink(
        data.join("wiki1m_for_simcse.head.txt"),
        fake.join("wiki1m_for_simcse.head.txt"),
    )
    .unwrap();
    let model = dir.path().join("micro-bert");
    let db = dir.path().join("results.db");
    let o = simsweep(
        &db,
        &fake,
        &[
            "eval",
            "--model",
            &model.display().to_string(),
            "--tasks",
            "trec,mrpc",
            "--device",
            "cpu",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        err.contains("transfer task mrpc")
            && err.contains(&down.join("MRPC").display().to_string()),
        "{err}"
    );

    // A sweep asking for it fails before training: nothing but the failure is recorded.
    let sweep = dir.path().join("s.toml");
    std::fs::write(
        &sweep,
        SWEEP.replace(
            "[[\"stsb_test\", \"transfer\"], [\"stsb_test\"]]",
            "[[\"mrpc\"]]",
        ),
    )
    .unwrap();
    let o = simsweep(
        &db,
        &fake,
        &["run", &sweep.display().to_string(), "--device", "cpu"],
    );
    assert!(!o.status.success(), "{}", text(&o));
    let c = Connection::open(&db).unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM metric_values"), 0);
    let msg: String = c
        .query_row("SELECT error FROM runs", [], |r| r.get(0))
        .unwrap();
    assert!(
        msg.contains("transfer task mrpc") && msg.contains("MRPC"),
        "{msg}"
    );
}
