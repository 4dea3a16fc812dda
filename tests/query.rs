//! End-to-end tests of the query commands (`runs`, `best`, `query`, `export`, `bench query`) on a
//! small database recorded through the real planning and writer paths.

use serde_json::{json, Value};
use simsweep_core::store::writer::{MetricRow, Write, Writer};
use simsweep_core::store::Store;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

fn run(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .env_remove("SIMSWEEP_DB")
        .env_remove("SIMSWEEP_DATA_DIR")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run simsweep")
}

fn ok(db: &Path, args: &[&str]) -> String {
    let out = run(db, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The message of a command that must exit 2.
fn bad(db: &Path, args: &[&str]) -> String {
    let out = run(db, args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// Sweep `t`: temperature 0.05 / 0.1 × pooling avg / cls × seeds 1, 2, 3 (12 runs, plan order).
/// Per run, `stsb_dev` at steps 0, 50, 100 is 10, peak, peak − 1 with peak = base + 2·(seed − 1),
/// base 70 (0.05, avg), 60 (0.05, cls), 66 (0.1, avg), 50 (0.1, cls); `loss` at steps 1..3 is
/// 3, 1, 2; `avg` at step 100 is peak − 2; `alignment` at layer 0, steps 0 and 100: 0.9, 0.8.
/// The last run (0.1, cls, seed 3) failed with a two-line error; the one before is pending.
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let text = "[sweep]\nname = \"t\"\ndescription = \"query test\"\nseeds = [1, 2, 3]\n[base]\nmodel.path = \"m\"\ndata.train = [\"w.txt\"]\n[grid]\n\"train.temperature\" = [0.05, 0.1]\n\"model.pooling\" = [\"avg\", \"cls\"]\n";
    let sweep = simsweep_core::spec::parse(Path::new("t.toml"), text).unwrap();
    let mut store = Store::open(&db).unwrap();
    store.plan(&sweep).unwrap();
    let runs = store.sweep_runs("t").unwrap();
    let writer = Writer::spawn(&db).unwrap();
    let tx = writer.sender();
    let name = |n: &str| -> Arc<str> { Arc::from(n) };
    for (i, r) in runs.iter().enumerate().take(10) {
        let t = r.config["train.temperature"].as_f64().unwrap();
        let cls = r.config["model.pooling"] == "cls";
        let base = match (t == 0.05, cls) {
            (true, false) => 70.0,
            (true, true) => 60.0,
            (false, false) => 66.0,
            (false, true) => 50.0,
        };
        let peak = base + 2.0 * (i % 3) as f64;
        let row = |m: &str, layer: i64, step: i64, value: f64| MetricRow {
            run_pk: r.run_pk,
            step,
            layer,
            name: name(m),
            value,
        };
        let mut rows = vec![
            row("stsb_dev", -1, 0, 10.0),
            row("stsb_dev", -1, 50, peak),
            row("stsb_dev", -1, 100, peak - 1.0),
            row("avg", -1, 100, peak - 2.0),
            row("alignment", 0, 0, 0.9),
            row("alignment", 0, 100, 0.8),
        ];
        for (s, l) in [(1, 3.0), (2, 1.0), (3, 2.0)] {
            rows.push(row("loss", -1, s, l));
        }
        tx.send(Write::Metrics(rows)).unwrap();
    }
    drop(tx);
    writer.finish().unwrap();
    for (i, r) in runs.iter().enumerate() {
        match i {
            10 => {}
            11 => store
                .finish_run(r.run_pk, "failed", Some(7), Some("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB total capacity)\nat step 7"))
                .unwrap(),
            _ => store.finish_run(r.run_pk, "done", Some(100), None).unwrap(),
        }
    }
    (dir, db)
}

fn run_count(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn runs_lists_settings_status_and_headline_scores_in_every_format() {
    let (_d, db) = fixture();
    let table = ok(&db, &["runs", "t"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "sweep t — query test: 12 runs");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        [
            "run_id",
            "train.temperature",
            "model.pooling",
            "seed",
            "status",
            "step",
            "stsb_dev_best",
            "stsb_dev_best_step",
            "avg",
            "error"
        ]
    );
    assert_eq!(
        lines[3].split_whitespace().skip(1).collect::<Vec<_>>(),
        ["0.05", "avg", "2", "done", "100", "72.00", "50", "70.00", "-"]
    );
    // The failed run's error: first line, shortened, in the table...
    assert!(
        lines[13].contains("failed")
            && lines[13].contains("CUDA out of memory. Tried to allocate")
            && lines[13].ends_with('…'),
        "{}",
        lines[13]
    );
    // ...and whole in JSON.
    let j: Value = serde_json::from_str(&ok(&db, &["runs", "t", "--format", "json"])).unwrap();
    assert_eq!(j.as_array().unwrap().len(), 12);
    assert_eq!(j[11]["error"].as_str().unwrap().lines().count(), 2);
    assert_eq!(j[1]["stsb_dev_best"], 72.0);
    assert_eq!(j[1]["train.temperature"], 0.05);
    assert_eq!(j[10]["status"], "pending");
    assert_eq!(j[10]["stsb_dev_best"], Value::Null);
    let csv = ok(
        &db,
        &[
            "runs",
            "t",
            "--format",
            "csv",
            "--where",
            "model.pooling=cls",
            "--where",
            "seed=1",
        ],
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], "run_id,train.temperature,model.pooling,seed,status,step,stsb_dev_best,stsb_dev_best_step,avg,error");
    assert!(
        lines[1].ends_with(",0.05,cls,1,done,100,60.0,50,58.0,")
            || lines[1].ends_with(",0.05,cls,1,done,100,60,50,58,"),
        "{}",
        lines[1]
    );
    let csv = ok(
        &db,
        &["runs", "t", "--format", "csv", "--status", "failed,pending"],
    );
    // Header, the pending run, the failed run (its quoted two-line error spans two lines).
    assert_eq!(csv.lines().count(), 4);
    assert!(
        csv.contains("\"CUDA out of memory") && csv.ends_with("at step 7\"\n"),
        "a line break in a field is quoted: {csv}"
    );
}

#[test]
fn best_gives_mean_and_sample_std_over_seeds_best_group_first() {
    let (_d, db) = fixture();
    let table = ok(&db, &["best", "t", "--metric", "stsb_dev"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("stsb_dev: best over steps (higher is better) — sweep t, 10 done runs in 4 groups; mean ± sample std (n−1) over each group's runs, 95% CI of the mean (Student t); Δ vs the best group"), "{}", lines[0]);
    assert_eq!(
        lines[1]
            .split("  ")
            .filter(|s| !s.is_empty())
            .map(str::trim)
            .collect::<Vec<_>>(),
        [
            "train.temperature",
            "model.pooling",
            "mean ± std",
            "n",
            "95% CI",
            "median",
            "min",
            "max",
            "Δ vs best",
            "p (Holm)",
            "≈best"
        ]
    );
    // t(0.975, 2) · 2/√3 = 4.968: 72 ± 4.97; the paired differences (seeds 1–3) are exactly
    // −4 and −10, so their intervals have no width and p is 0.
    let cols = |l: &str| -> Vec<String> {
        l.split("  ")
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string())
            .collect()
    };
    assert_eq!(
        cols(lines[2]),
        [
            "0.05",
            "avg",
            "72.00 ± 2.00",
            "3",
            "[67.03, 76.97]",
            "72.00",
            "70.00",
            "74.00",
            "best",
            "-"
        ]
    );
    assert_eq!(
        cols(lines[3]),
        [
            "0.1",
            "avg",
            "68.00 ± 2.00",
            "3",
            "[63.03, 72.97]",
            "68.00",
            "66.00",
            "70.00",
            "-4.00 [-4.00, -4.00]",
            "0 (0)"
        ]
    );
    assert!(lines[4].contains("62.00 ± 2.00"), "{}", lines[4]);
    // One run: no spread and no interval, said so (not shown as 0).
    assert_eq!(
        cols(lines[5]),
        [
            "0.1",
            "cls",
            "50.00",
            "1",
            "n/a (n=1)",
            "50.00",
            "50.00",
            "50.00",
            "-22.00",
            "n/a (n=1)"
        ]
    );
    // CSV: full precision, empty std for a single run.
    let csv = ok(
        &db,
        &["best", "t", "--metric", "stsb_dev", "--format", "csv"],
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "train.temperature,model.pooling,n,runs,mean,std,min,max,sem,ci_low,ci_high,median,diff_vs_best,diff_ci_low,diff_ci_high,p_vs_best,p_adjusted,tied_with_best"
    );
    assert!(
        lines[1].starts_with("0.05,avg,3,3,72.0,2.0,70.0,74.0,1.1547005383792517,67.0317245764993"),
        "{}",
        lines[1]
    );
    assert!(lines[1].ends_with(",72.0,0.0,,,,,true"), "{}", lines[1]);
    assert_eq!(
        lines[4],
        "0.1,cls,1,1,50.0,,50.0,50.0,,,,50.0,-22.0,,,,,false"
    );
    // Final values, grouped by pooling only.
    let j: Value = serde_json::from_str(&ok(
        &db,
        &[
            "best",
            "t",
            "--metric",
            "stsb_dev",
            "--mode",
            "final",
            "--by",
            "model.pooling",
            "--format",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(j["mode"], "final");
    assert_eq!(j["by"], json!(["model.pooling"]));
    assert_eq!(j["groups"][0]["params"], json!({"model.pooling": "avg"}));
    assert_eq!(j["groups"][0]["n"], 6);
    assert_eq!(j["groups"][0]["mean"], 69.0);
    assert_eq!(j["groups"][0]["runs"][0]["step"], 100);
    // Every seed.
    let all = ok(
        &db,
        &[
            "best",
            "t",
            "--metric",
            "stsb_dev",
            "--seeds",
            "all",
            "--format",
            "csv",
            "--where",
            "train.temperature=0.05",
            "--where",
            "model.pooling=avg",
        ],
    );
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(
        lines[0],
        "train.temperature,model.pooling,seed,run_id,status,step,stsb_dev"
    );
    assert_eq!(lines.len(), 4);
    assert!(
        lines[3].starts_with("0.05,avg,3,") && lines[3].ends_with(",done,50,74.0"),
        "{}",
        lines[3]
    );
    // Loss is minimised; --goal max turns it round.
    let j: Value = serde_json::from_str(&ok(
        &db,
        &["best", "t", "--metric", "loss", "--format", "json"],
    ))
    .unwrap();
    assert_eq!(
        (
            j["goal"].clone(),
            j["groups"][0]["mean"].clone(),
            j["groups"][0]["runs"][0]["step"].clone()
        ),
        (json!("min"), json!(1.0), json!(2))
    );
    let j: Value = serde_json::from_str(&ok(
        &db,
        &[
            "best", "t", "--metric", "loss", "--goal", "max", "--format", "json",
        ],
    ))
    .unwrap();
    assert_eq!(j["groups"][0]["mean"], 3.0);
    // Per-layer values, and other statuses on request.
    let j: Value = serde_json::from_str(&ok(
        &db,
        &[
            "best",
            "t",
            "--metric",
            "alignment",
            "--layer",
            "0",
            "--by",
            "",
            "--format",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(
        (j["groups"][0]["mean"].clone(), j["groups"][0]["n"].clone()),
        (json!(0.8), json!(10))
    );
    let j: Value = serde_json::from_str(&ok(
        &db,
        &[
            "best",
            "t",
            "--metric",
            "stsb_dev",
            "--status",
            "done,failed,pending",
            "--format",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(j["groups"][3]["runs_total"], 3);
    assert_eq!(j["groups"][3]["n"], 1);
    let table = ok(
        &db,
        &[
            "best",
            "t",
            "--metric",
            "stsb_dev",
            "--status",
            "done,pending",
        ],
    );
    assert!(table.contains("1 of 2"), "{table}");
}

#[test]
fn where_values_are_bound_parameters_never_sql() {
    let (_d, db) = fixture();
    for v in [
        "model.pooling=avg'; DROP TABLE runs; --",
        "model.pooling=avg' OR '1'='1",
        "model.pooling=\"); DELETE FROM metrics; --",
        "seed=1 OR 1=1",
    ] {
        let csv = ok(&db, &["runs", "t", "--where", v, "--format", "csv"]);
        assert_eq!(csv.lines().count(), 1, "{v}: only the header: {csv}");
        let err = bad(&db, &["best", "t", "--metric", "stsb_dev", "--where", v]);
        assert!(
            err.starts_with("error: no runs of sweep `t` with status done, "),
            "{err}"
        );
    }
    assert_eq!(run_count(&db), 12);
    // Numbers match numerically, whatever their spelling.
    for v in ["0.05", "0.050", "5e-2"] {
        let csv = ok(
            &db,
            &[
                "runs",
                "t",
                "--where",
                &format!("train.temperature={v}"),
                "--format",
                "csv",
            ],
        );
        assert_eq!(csv.lines().count(), 7, "{v}");
    }
    let err = bad(&db, &["runs", "t", "--where", "train.temprature=0.05"]);
    assert_eq!(err.trim(), "error: unknown key `train.temprature` in --where (did you mean `train.temperature`?): sweep `t` varies train.temperature, model.pooling, seed; any other setting of its runs works too (e.g. `loss.kind`)");
    let err = bad(&db, &["runs", "t", "--where", "train.temperature"]);
    assert!(err.contains("expected KEY=VALUE"), "{err}");
}

#[test]
fn query_reads_in_three_formats_and_refuses_to_write() {
    let (_d, db) = fixture();
    let sql = "SELECT run_id, \"train.temperature\" AS t, error, NULL AS missing FROM runs_wide WHERE sweep = 't' AND status = 'done' ORDER BY run_id LIMIT 2";
    let table = ok(&db, &["query", sql]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["run_id", "t", "error", "missing"]
    );
    assert!(
        lines[1].ends_with("NULL   NULL") || lines[1].ends_with("NULL  NULL"),
        "{}",
        lines[1]
    );
    let csv = ok(&db, &["query", sql, "--format", "csv"]);
    assert_eq!(csv.lines().next(), Some("run_id,t,error,missing"));
    assert!(csv.lines().nth(1).unwrap().ends_with(",,"));
    let j: Value = serde_json::from_str(&ok(&db, &["query", sql, "--format", "json"])).unwrap();
    assert_eq!(j.as_array().unwrap().len(), 2);
    assert_eq!(j[0]["missing"], Value::Null);
    assert!(j[0]["t"].is_f64());
    let j: Value = serde_json::from_str(&ok(&db, &["query", "SELECT metric, count(*) AS n FROM metric_values WHERE sweep = 't' GROUP BY metric ORDER BY metric", "--format", "json"])).unwrap();
    assert_eq!(
        j,
        json!([{"metric": "alignment", "n": 20}, {"metric": "avg", "n": 10}, {"metric": "loss", "n": 30}, {"metric": "stsb_dev", "n": 30}])
    );
    let before = std::fs::read(&db).unwrap();
    for (sql, msg) in [
        ("DELETE FROM runs", "only reading statements are allowed"),
        ("DROP VIEW runs_wide", "only reading statements are allowed"),
        (
            "UPDATE runs SET status = 'done'",
            "only reading statements are allowed",
        ),
        ("SELECT 1; DELETE FROM runs", "one statement at a time"),
        (
            "ATTACH 'other.db' AS o",
            "ATTACH, DETACH and transaction statements are refused",
        ),
        ("SELECT * FROM nowhere", "no such table: nowhere"),
    ] {
        let err = bad(&db, &["query", sql]);
        assert!(err.contains(msg), "{sql}: {err}");
    }
    assert_eq!(run_count(&db), 12);
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the database file changed"
    );
}

#[test]
fn export_writes_wide_csv_and_jsonl_per_run() {
    let (d, db) = fixture();
    let csv = ok(
        &db,
        &[
            "export",
            "t",
            "--metrics",
            "stsb_dev,loss",
            "--where",
            "seed=1",
            "--where",
            "model.pooling=avg",
        ],
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "sweep,run_id,status,train.temperature,model.pooling,seed,layer,step,stsb_dev,loss"
    );
    assert_eq!(lines.len(), 1 + 2 * 6, "two runs, six steps each");
    assert!(
        lines[1].starts_with("t,") && lines[1].ends_with(",done,0.05,avg,1,-1,0,10.0,"),
        "{}",
        lines[1]
    );
    assert!(lines[2].ends_with(",-1,1,,3.0"), "{}", lines[2]);
    assert!(lines[6].ends_with(",-1,100,69.0,"), "{}", lines[6]);
    // Every metric recorded at the layer; settings in full.
    let csv = ok(
        &db,
        &[
            "export",
            "t",
            "--layer",
            "0",
            "--all-params",
            "--status",
            "done",
        ],
    );
    let header = csv.lines().next().unwrap();
    assert!(
        header.contains(",train.lr,") && header.ends_with(",layer,step,alignment"),
        "{header}"
    );
    assert_eq!(csv.lines().count(), 1 + 10 * 2);
    // JSON Lines, to a file.
    let out = d.path().join("e.jsonl");
    let o = run(
        &db,
        &[
            "export",
            "t",
            "--format",
            "jsonl",
            "--metrics",
            "stsb_dev",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("12 runs, 12 lines, 1 metrics (stsb_dev)"));
    let text = std::fs::read_to_string(&out).unwrap();
    let runs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 12);
    assert_eq!(
        runs[2]["params"],
        json!({"train.temperature": 0.05, "model.pooling": "avg", "seed": 3})
    );
    assert_eq!(
        runs[2]["metrics"]["stsb_dev"],
        json!({"family": "evaluation", "better": "higher", "unit": "Spearman × 100",
               "steps": [0, 50, 100], "values": [10.0, 74.0, 73.0]})
    );
    assert_eq!(runs[10]["metrics"], json!({}));
    let err = bad(
        &db,
        &[
            "export",
            "t",
            "--metrics",
            "stsb_dve",
            "-o",
            d.path().join("x.csv").to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("unknown metric `stsb_dve` (did you mean `stsb_dev`?)"),
        "{err}"
    );
    assert!(
        !d.path().join("x.csv").exists(),
        "nothing written on bad input"
    );
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let (d, db) = fixture();
    assert_eq!(
        bad(&db, &["runs", "s"]).trim(),
        "error: no sweep named `s` (did you mean `t`?); sweeps in the database: t"
    );
    assert!(bad(&db, &["best", "t", "--metric", "stsbdev"])
        .contains("unknown metric `stsbdev` (did you mean `stsb_dev`?); recorded metrics: "));
    assert_eq!(bad(&db, &["best", "t", "--metric", "alignment"]).trim(), "error: no values of `alignment` at layer -1 in the selected runs; it is recorded at layer 0 (--layer)");
    assert!(bad(
        &db,
        &["best", "t", "--metric", "stsb_dev", "--by", "model.poling"]
    )
    .contains("unknown key `model.poling` in --by (did you mean `model.pooling`?)"));
    assert!(bad(&db, &["runs", "t", "--status", "finished"]).contains("unknown status `finished`: expected one of pending, running, done, failed, diverged, cancelled"));
    let missing = d.path().join("none.db");
    for args in [
        vec!["runs", "t"],
        vec!["best", "t", "--metric", "avg"],
        vec!["query", "SELECT 1"],
        vec!["export", "t"],
    ] {
        let err = bad(&missing, &args);
        assert!(
            err.contains("no results database at") && err.contains("none.db"),
            "{err}"
        );
    }
    assert!(!missing.exists(), "a query never creates a database");
    assert!(bad(&db, &["best", "t"]).contains("--metric"));
}

#[test]
fn the_query_benchmark_builds_once_and_times_the_queries() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("b.db");
    let args = [
        "bench",
        "query",
        "--runs",
        "8",
        "--metrics",
        "4",
        "--steps",
        "30",
        "--out",
        db.to_str().unwrap(),
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(
        s.contains("8 runs × 4 metrics × 30 steps = 960 rows") && s.contains("database  built in"),
        "{s}"
    );
    assert!(
        s.contains("best --metric stsb_dev")
            && s.contains("export --metrics stsb_dev")
            && s.contains("target    best --metric stsb_dev as a process")
            && s.contains("target    curve in-process")
            && s.contains("bytes/row ≤ 26"),
        "{s}"
    );
    // Each command in-process and as a process, its answer shown.
    assert!(
        s.lines().any(|l| l.contains("runs (headline scores")
            && l.contains("in-process")
            && l.contains("(8 runs)")
            && l.contains("as a process")),
        "{s}"
    );
    let c = rusqlite::Connection::open(&db).unwrap();
    let rows: i64 = c
        .query_row("SELECT count(*) FROM metrics", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 960);
    drop(c);
    let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .args(args)
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("database  reused"));
    // The sweep is planned like any other: the commands answer on it.
    let j: Value = serde_json::from_str(&ok(
        &db,
        &[
            "best",
            "bench-query",
            "--metric",
            "stsb_dev",
            "--format",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(j["by"], json!(["train.temperature", "model.pooling"]));
    assert_eq!(j["groups"][0]["n"], 4);
}

/// A database with sweep `text` planned and every run done at `step` with the values `values`
/// gives it: (metric, value) pairs.
fn recorded(
    name: &str,
    text: &str,
    step: i64,
    values: impl Fn(&simsweep_core::store::RunRow) -> Vec<(&'static str, f64)>,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let sweep = simsweep_core::spec::parse(Path::new(&format!("{name}.toml")), text).unwrap();
    let mut store = Store::open(&db).unwrap();
    store.plan(&sweep).unwrap();
    let runs = store.sweep_runs(name).unwrap();
    let writer = Writer::spawn(&db).unwrap();
    let tx = writer.sender();
    for r in &runs {
        let rows = values(r)
            .into_iter()
            .map(|(m, value)| MetricRow {
                run_pk: r.run_pk,
                step,
                layer: -1,
                name: Arc::from(m),
                value,
            })
            .collect();
        tx.send(Write::Metrics(rows)).unwrap();
    }
    drop(tx);
    writer.finish().unwrap();
    for r in &runs {
        store
            .finish_run(r.run_pk, "done", Some(step), None)
            .unwrap();
    }
    (dir, db)
}

/// Sweep `n`: pooling avg / cls / avg_top2 × temperature 0.05 / 0.1 × seeds 1–4, values chosen so
/// that avg_top2 at 0.05 cannot be told apart from the best (avg at 0.05) and cls can.
fn noisy_fixture() -> (tempfile::TempDir, PathBuf) {
    let text = "[sweep]\nname = \"n\"\nseeds = [1, 2, 3, 4]\n[base]\nmodel.path = \"m\"\ndata.train = [\"w.txt\"]\n[grid]\n\"model.pooling\" = [\"avg\", \"cls\", \"avg_top2\"]\n\"train.temperature\" = [0.05, 0.1]\n";
    let noise = [0.4, -0.7, 1.1, -0.3];
    recorded("n", text, 100, |r| {
        let pooling = r.config["model.pooling"].as_str().unwrap().to_string();
        let t = r.config["train.temperature"].as_f64().unwrap();
        let base = match pooling.as_str() {
            "avg" => 72.0,
            "avg_top2" => 71.8,
            _ => 60.0,
        } + if t == 0.1 { -1.0 } else { 0.0 };
        let seed = r.config["seed"].as_i64().unwrap();
        let v = base + noise[(seed - 1) as usize] * if pooling == "avg_top2" { -1.0 } else { 1.0 };
        vec![("stsb_dev", v), ("avg", v - 5.0)]
    })
}

#[test]
fn groups_indistinguishable_from_the_best_are_marked_in_every_format() {
    let (_d, db) = noisy_fixture();
    let j: Value = serde_json::from_str(&ok(
        &db,
        &["best", "n", "--metric", "stsb_dev", "--format", "json"],
    ))
    .unwrap();
    let g = j["groups"].as_array().unwrap();
    assert_eq!(g.len(), 6);
    for k in [
        "n",
        "mean",
        "std",
        "sem",
        "ci_low",
        "ci_high",
        "min",
        "max",
        "median",
        "diff_vs_best",
        "diff_ci_low",
        "diff_ci_high",
        "p_vs_best",
        "p_adjusted",
        "tied_with_best",
    ] {
        assert!(g[1].get(k).is_some(), "{k}");
    }
    assert_eq!(
        g[0]["params"],
        json!({"model.pooling": "avg", "train.temperature": 0.05})
    );
    assert_eq!(g[0]["tied_with_best"], true);
    assert_eq!(g[0]["diff_vs_best"], 0.0);
    // avg_top2 at 0.05 (71.8 with the noise mirrored) is tied with the best; cls is not.
    let tied: Vec<String> = g
        .iter()
        .filter(|x| x["tied_with_best"] == true)
        .map(|x| {
            format!(
                "{} {}",
                x["params"]["model.pooling"].as_str().unwrap(),
                x["params"]["train.temperature"]
            )
        })
        .collect();
    assert!(tied.contains(&"avg_top2 0.05".to_string()), "{tied:?}");
    assert!(tied.iter().all(|t| !t.starts_with("cls")), "{tied:?}");
    assert!(g
        .iter()
        .filter(|x| x["params"]["model.pooling"] == "cls")
        .all(|x| x["p_adjusted"].as_f64().unwrap() < 0.05));
    assert_eq!(g[1]["test"], "paired");
    // Holm: adjusted ≥ raw, at most 1.
    for x in &g[1..] {
        let (p, a) = (
            x["p_vs_best"].as_f64().unwrap(),
            x["p_adjusted"].as_f64().unwrap(),
        );
        assert!(a >= p && a <= 1.0, "{p} {a}");
    }
    // Two-way table (SimCSE Table D.1): pooler × temperature, best bold, tied underlined.
    let tex = ok(
        &db,
        &[
            "best",
            "n",
            "--metric",
            "stsb_dev",
            "--pivot",
            "model.pooling,train.temperature",
            "--format",
            "latex",
            "--digits",
            "1",
        ],
    );
    assert!(
        tex.contains("\\begin{tabular}{lrr}")
            && tex.contains("\\toprule")
            && tex.contains("\\bottomrule"),
        "{tex}"
    );
    assert!(
        tex.contains("model.pooling \\textbackslash{} train.temperature & 0.05 & 0.1 \\\\"),
        "{tex}"
    );
    assert!(tex.contains("avg & \\textbf{72.1 $\\pm$ 0.8}"), "{tex}");
    assert!(
        tex.contains("avg\\_top2 & \\underline{71.7 $\\pm$ 0.8}"),
        "{tex}"
    );
    assert!(!tex.contains("cls & \\underline"), "{tex}");
    // Metrics side by side (SimCSE Table 1), Markdown.
    let md = ok(
        &db,
        &[
            "best",
            "n",
            "--metric",
            "stsb_dev,avg",
            "--by",
            "model.pooling",
            "--format",
            "markdown",
            "--spread",
            "none",
            "--digits",
            "2",
        ],
    );
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines[0], "| model.pooling | stsb_dev | avg |");
    assert_eq!(lines[1], "|---|--:|--:|");
    assert!(
        lines[2].starts_with("| avg | **71.62** | **66.62** |"),
        "{md}"
    );
    assert!(md.contains("<ins>"), "{md}");
    // CSV of several metrics: long, one line per metric and group.
    let csv = ok(
        &db,
        &["best", "n", "--metric", "stsb_dev,avg", "--format", "csv"],
    );
    assert_eq!(csv.lines().count(), 1 + 2 * 6);
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .starts_with("model.pooling,train.temperature,metric,n,mean"));
    // --ci changes the intervals and the ties.
    let narrow: Value = serde_json::from_str(&ok(
        &db,
        &[
            "best", "n", "--metric", "stsb_dev", "--format", "json", "--ci", "0.5",
        ],
    ))
    .unwrap();
    assert_eq!(narrow["level"], 0.5);
    let w = |v: &Value| {
        v["groups"][0]["ci_high"].as_f64().unwrap() - v["groups"][0]["ci_low"].as_f64().unwrap()
    };
    assert!(w(&narrow) < w(&j));
}

#[test]
fn paper_table_options_are_checked() {
    let (_d, db) = noisy_fixture();
    let best = |extra: &[&str]| -> String {
        let mut args = vec!["best", "n", "--metric"];
        args.extend_from_slice(extra);
        bad(&db, &args)
    };
    for (extra, want) in [
        (
            &["stsb_dev", "--pivot", "train.lr,model.pooling"][..],
            "--pivot train.lr: not a swept key of sweep n; swept: model.pooling, train.temperature",
        ),
        (
            &["stsb_dev", "--ci", "1.5"][..],
            "--ci 1.5: a confidence level between 0 and 1",
        ),
        (
            &["stsb_dev", "--pivot", "model.pooling"][..],
            "--pivot model.pooling: two swept keys",
        ),
        (
            &["stsb_dev,avg", "--pivot", "model.pooling,train.temperature"][..],
            "--pivot lays out one metric",
        ),
        (
            &[
                "stsb_dev",
                "--by",
                "model.pooling",
                "--pivot",
                "model.pooling,train.temperature",
            ][..],
            "leave out --by",
        ),
        (
            &["stsb_dev", "--seeds", "all", "--format", "latex"][..],
            "--seeds all",
        ),
        (&["stsb_dev,nope"][..], "nope"),
    ] {
        let e = best(extra);
        assert!(e.contains(want), "{extra:?}: {e}");
    }
    let e = bad(&db, &["importance", "n", "--metric", "nope"]);
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn importance_decomposes_a_grid_and_draws_its_bars() {
    let (d, db) = noisy_fixture();
    let out = ok(
        &db,
        &[
            "importance",
            "n",
            "--metric",
            "stsb_dev",
            "--format",
            "json",
            "-o",
            &d.path().join("imp.svg").display().to_string(),
        ],
    );
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["method"], "anova");
    let terms: Vec<&str> = j["terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["term"].as_str().unwrap())
        .collect();
    assert_eq!(terms[0], "model.pooling", "{terms:?}");
    assert_eq!(*terms.last().unwrap(), "seed (residual)");
    assert!(terms.contains(&"model.pooling × train.temperature"));
    let total: f64 = j["terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["share"].as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-12, "{total}");
    assert!(j["terms"][0]["share"].as_f64().unwrap() > 0.95);
    let svg = std::fs::read_to_string(d.path().join("imp.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("model.pooling") && svg.contains("seed (residual)")
    );
    let table = ok(&db, &["importance", "n", "--metric", "stsb_dev"]);
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .contains("full grid 3 × 2 (6 cells), 4 seeds per cell; ANOVA"),
        "{table}"
    );
    // Parallel coordinates of the same sweep.
    ok(
        &db,
        &[
            "plot",
            "n",
            "--kind",
            "parallel",
            "--metric",
            "stsb_dev",
            "-o",
            &d.path().join("par.svg").display().to_string(),
        ],
    );
    let svg = std::fs::read_to_string(d.path().join("par.svg")).unwrap();
    for t in ["model.pooling", "train.temperature", "avg_top2", "stsb_dev"] {
        assert!(svg.contains(t), "{t}");
    }
}

#[test]
fn importance_of_a_random_search_uses_a_forest() {
    let text = "[sweep]\nname = \"r\"\nseeds = [1]\n[base]\nmodel.path = \"m\"\ndata.train = [\"w.txt\"]\n[random]\nn = 40\nseed = 3\n\"train.lr\" = { log_uniform = [1e-5, 1e-3] }\n\"train.temperature\" = { uniform = [0.01, 0.5] }\n";
    // The metric follows the temperature only.
    let (_d, db) = recorded("r", text, 10, |r| {
        vec![(
            "stsb_dev",
            80.0 - 40.0 * r.config["train.temperature"].as_f64().unwrap(),
        )]
    });
    let j: Value = serde_json::from_str(&ok(
        &db,
        &[
            "importance",
            "r",
            "--metric",
            "stsb_dev",
            "--format",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(j["method"], "random_forest");
    assert_eq!(j["terms"][0]["term"], "train.temperature");
    assert!(j["terms"][0]["share"].as_f64().unwrap() > 0.8, "{j}");
    assert!(j["oob_r2"].as_f64().unwrap() > 0.8, "{j}");
}

#[test]
fn check_finds_summaries_that_do_not_match_the_rows_and_repairs_them() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("b.db");
    let bench = |db: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
            .args([
                "bench",
                "query",
                "--runs",
                "4",
                "--metrics",
                "3",
                "--steps",
                "20",
                "--out",
            ])
            .arg(db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    bench(&db);
    let check = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
            .arg("--db")
            .arg(&db)
            .arg("check")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, out, _) = check(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("SQLite integrity_check: ok"), "{out}");
    assert!(
        out.contains("12 summaries checked against 240 metric rows: ok"),
        "{out}"
    );
    // A summary that lies about its best value, and one that is missing.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "UPDATE metric_summaries SET max_value = 1e9 WHERE run_pk = 1 AND metric_id = 2;
         DELETE FROM metric_summaries WHERE run_pk = 3 AND metric_id = 1;",
    )
    .unwrap();
    let run1: String = c
        .query_row("SELECT run_id FROM runs WHERE run_pk = 1", [], |r| r.get(0))
        .unwrap();
    let name2: String = c
        .query_row(
            "SELECT name FROM metric_names WHERE metric_id = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(c);
    let before = std::fs::read(&db).unwrap();
    let (code, out, err) = check(&["--quick"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("SQLite quick_check: ok"), "{out}");
    assert!(out.contains("2 do not match"), "{out}");
    assert!(
        out.contains(&format!("run {run1} metric {name2} layer -1: stored n 20")),
        "{out}"
    );
    assert!(out.contains("stored none; the rows give n 20"), "{out}");
    assert!(
        err.contains("`simsweep check --repair` rebuilds them"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "a check writes nothing"
    );
    let (code, out, _) = check(&["--repair"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("2 do not match"), "{out}");
    assert!(
        out.contains("summaries rebuilt from the rows: ok now"),
        "{out}"
    );
    let (code, out, _) = check(&[]);
    assert_eq!(code, Some(0), "{out}");
}
