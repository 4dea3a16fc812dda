//! End-to-end tests of the `simsweep` binary (planning, errors, the database left as it was).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_simsweep"));
    c.env_remove("SIMSWEEP_DB").env_remove("SIMSWEEP_DATA_DIR");
    c
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared data directory (../shared/data), or None with a message when it is absent.
fn data_dir() -> Option<PathBuf> {
    let d = std::env::var_os("SIMSWEEP_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/data"));
    if d.join("wiki1m_for_simcse.head.txt").is_file() {
        Some(d)
    } else {
        common::missing(&format!("shared data not found at {}", d.display()));
        None
    }
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run simsweep")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// A sweep file next to a copy of the tiny model, with a data dir holding one training file.
fn setup(body: &str) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("train.txt"), "a sentence\nanother sentence\n").unwrap();
    let sweep = write(dir.path(), "s.toml", body);
    let db = dir.path().join("out/r.db");
    (dir, sweep, data, db)
}

const SWEEP: &str = "[sweep]\nname = \"cli\"\nseeds = [1, 2]\n[base]\nmodel.path = \"/dev/null/x\"\ndata.train = [\"train.txt\"]\n[grid]\ntrain.temperature = [0.05, 0.1]\n";

/// SWEEP with the tiny model (random init: it has no weights, which plan checks for pretrained
/// runs); the lines from [grid] on move down by one.
fn sweep_with_model() -> String {
    SWEEP.replace(
        "\"/dev/null/x\"",
        &format!(
            "\"{}\"\nmodel.init = \"random\"",
            repo().join("models/tiny-bert").display()
        ),
    )
}

#[test]
fn plan_records_the_sweep_and_is_idempotent() {
    let (_d, sweep, data, db) = setup(&sweep_with_model());
    let args = |json: bool| {
        let mut a = vec![
            "plan".to_string(),
            sweep.display().to_string(),
            "--db".into(),
            db.display().to_string(),
            "--data-dir".into(),
            data.display().to_string(),
        ];
        if json {
            a.push("--json".into());
        }
        a
    };
    let out = bin().args(args(false)).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("4 runs: 4 new, 0 pending"), "{stdout}");
    assert!(
        stdout.contains("train.temperature") && stdout.contains("seed"),
        "{stdout}"
    );
    assert!(db.is_file());
    let out = bin().args(args(true)).output().unwrap();
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["sweep"], "cli");
    assert_eq!(j["total"], 4);
    assert_eq!(j["new"], 0);
    assert_eq!(j["pending"], 4);
    assert_eq!(j["runs"].as_array().unwrap().len(), 4);
    assert_eq!(j["runs"][0]["params"]["train.temperature"], 0.05);
    assert_eq!(j["runs"][0]["params"]["seed"], 1);
    assert_eq!(j["runs"][0]["id"].as_str().unwrap().len(), 16);
    // The same through the environment variables.
    let out = bin()
        .args(["plan", &sweep.display().to_string(), "--json"])
        .env("SIMSWEEP_DB", &db)
        .env("SIMSWEEP_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_bad_sweep_file_exits_2_with_file_line_key_and_writes_nothing() {
    let body = sweep_with_model().replace(
        "train.temperature = [0.05, 0.1]",
        "train.temperature = [0.05, 0.0]",
    );
    let (_d, sweep, data, db) = setup(&body);
    let out = run(&[
        "plan",
        &sweep.display().to_string(),
        "--db",
        &db.display().to_string(),
        "--data-dir",
        &data.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(
        err.trim(),
        format!(
            "error: {}:9:28: key `train.temperature`: 0.0 is out of range: expected a number > 0",
            sweep.display()
        )
    );
    assert!(
        !db.exists() && !db.parent().unwrap().exists(),
        "nothing may be written"
    );
}

#[test]
fn missing_data_or_model_is_reported_before_anything_is_written() {
    let (_d, sweep, data, db) = setup(SWEEP);
    let out = run(&[
        "plan",
        &sweep.display().to_string(),
        "--db",
        &db.display().to_string(),
        "--data-dir",
        &data.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(":5:14: key `model.path`: model directory /dev/null/x does not exist"),
        "{err}"
    );
    let (_d, sweep, _data, db) = setup(&sweep_with_model());
    let out = run(&[
        "plan",
        &sweep.display().to_string(),
        "--db",
        &db.display().to_string(),
        "--data-dir",
        "/nonexistent",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains(":7:14: key `data.train`: data file /nonexistent/train.txt not found (relative paths resolve against the data directory /nonexistent; set --data-dir or SIMSWEEP_DATA_DIR)"), "{err}");
    assert!(!db.exists());
}

#[test]
fn a_database_from_a_newer_schema_is_refused_and_untouched() {
    let (_d, sweep, data, db) = setup(&sweep_with_model());
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE x (y); PRAGMA user_version = 7;")
            .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let out = run(&[
        "plan",
        &sweep.display().to_string(),
        "--db",
        &db.display().to_string(),
        "--data-dir",
        &data.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("schema version 7 is newer than this simsweep understands (3)"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the database file changed"
    );
}

#[test]
fn an_unwritable_results_directory_is_a_clear_error() {
    let (_d, sweep, data, _db) = setup(&sweep_with_model());
    let out = run(&[
        "plan",
        &sweep.display().to_string(),
        "--db",
        "/proc/simsweep/r.db",
        "--data-dir",
        &data.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("database /proc/simsweep/r.db: cannot create its folder /proc/simsweep"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_quickstart_sweep_plans_against_the_shared_data() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let out = run(&[
        "plan",
        &repo().join("sweeps/quickstart.toml").display().to_string(),
        "--db",
        &db.display().to_string(),
        "--data-dir",
        &data.display().to_string(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["sweep"], "quickstart");
    assert_eq!(j["total"], 4);
}

#[test]
fn every_sweep_file_in_the_repo_is_valid() {
    for entry in std::fs::read_dir(repo().join("sweeps")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            simsweep_core::spec::load(&p).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn info_reports_threads_and_a_working_libtorch() {
    let out = bin()
        .args(["info", "--json"])
        .env("SIMSWEEP_THREADS", "2")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["torch"], "2.11.0");
    assert_eq!(j["threads"], 2);
    assert_eq!(j["torch_threads"], 2);
    assert_eq!(j["check"], "[5.0, 14.0, 14.0, 50.0]");
    assert!(j["cuda_available"].is_boolean());
}

#[test]
fn the_binary_runs_without_ld_library_path() {
    let out = bin()
        .arg("info")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn help_is_available_at_every_level() {
    for args in [
        vec!["--help"],
        vec!["plan", "--help"],
        vec!["info", "--help"],
        vec!["bench", "--help"],
        vec!["bench", "writer", "--help"],
        vec!["bench", "query", "--help"],
        vec!["runs", "--help"],
        vec!["best", "--help"],
        vec!["query", "--help"],
        vec!["export", "--help"],
    ] {
        let out = run(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(text(&out.stdout).contains("Usage: simsweep"), "{args:?}");
    }
    let out = run(&["plan"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_writer_benchmark_runs_and_reports_rows_per_second() {
    let out = run(&["bench", "writer", "--rows", "20000"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("writer benchmark: 20000 rows") && s.contains("× reference"),
        "{s}"
    );
}

/// The front links no libtorch: no tch or torch-sys among its dependencies, and no torch library
/// in the binary's dynamic section (docs/architecture.md).
#[test]
fn the_front_links_no_libtorch() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(repo())
        .args([
            "tree",
            "-p",
            "simsweep",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--offline",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("simsweep-core"), "{tree}");
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        assert!(
            name != "tch" && name != "torch-sys",
            "the front depends on {line}"
        );
    }
    let ldd = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_simsweep"))
        .output()
        .unwrap();
    let libs = String::from_utf8_lossy(&ldd.stdout);
    assert!(libs.contains("libc.so"), "{libs}");
    // The libraries' names and paths, not their load addresses (an address can read "…c10…").
    for line in libs.lines() {
        let names = line.split(" (0x").next().unwrap_or(line);
        assert!(
            !names.contains("torch") && !names.contains("libc10"),
            "the front links {line}"
        );
    }
}

/// The engine's commands run through the front: `info` hands over to `simsweep-engine`, and a
/// missing engine is a clear error naming SIMSWEEP_ENGINE.
#[test]
fn computing_commands_are_handed_to_the_engine() {
    let out = bin().args(["info", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["torch"], "2.11.0");
    let out = bin()
        .args(["info"])
        .env("SIMSWEEP_ENGINE", "/nonexistent/simsweep-engine")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: SIMSWEEP_ENGINE=/nonexistent/simsweep-engine: no such file (it names the engine binary, simsweep-engine)"
    );
    let help = bin().args(["eval", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("Usage: simsweep eval [OPTIONS] --model <MODEL>"),
        "{text}"
    );
}

/// GPUs visible (here: `CUDA_VISIBLE_DEVICES`, as a Slurm allocation or a user sets it) but no CUDA
/// in libtorch (on a real machine: a driver older than libtorch's CUDA 13 build) is an error
/// naming both and the fix, never a silent CPU run; `info` says the same. Hidden GPUs (an empty
/// value, `-1`) are no GPUs, and naming the CPU trains there on purpose.
#[test]
fn visible_gpus_that_libtorch_cannot_use_are_an_error_not_a_silent_cpu_run() {
    let info = |visible: &str| {
        let out = bin()
            .args(["info", "--json"])
            .env("CUDA_VISIBLE_DEVICES", visible)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let j = info("0");
    if j["cuda_available"] == true {
        eprintln!("SKIP: CUDA works here; the unusable-GPU message cannot be shown");
        return;
    }
    assert_eq!(j["torch_build"], "2.11.0+cu130");
    assert_eq!(j["torch_cuda"], "13.0");
    let problem = j["cuda_problem"].as_str().unwrap().to_string();
    assert!(
        problem.starts_with("GPUs are visible (")
            && problem.contains("CUDA_VISIBLE_DEVICES=0")
            && problem.contains("but libtorch cannot use them: libtorch 2.11.0+cu130 is built for CUDA 13.0, which needs an NVIDIA driver for CUDA 13.0 or newer (Linux driver 580 or later)")
            && problem.contains("Fix: update the NVIDIA driver, or build simsweep against a PyTorch for this driver's CUDA")
            && problem.contains("--devices cpu"),
        "{problem}"
    );
    for hidden in ["", "-1"] {
        let j = info(hidden);
        if j["gpus_visible"].is_null() {
            assert!(j["cuda_problem"].is_null(), "{hidden:?}: {j}");
        }
    }
    let out = bin()
        .arg("info")
        .env("CUDA_VISIBLE_DEVICES", "0")
        .output()
        .unwrap();
    let s = text(&out.stdout);
    assert!(
        s.contains("CUDA build      libtorch is built for CUDA 13.0"),
        "{s}"
    );
    assert!(s.contains("TF32            off"), "{s}");
    assert!(s.contains("problem         GPUs are visible"), "{s}");

    // A run without --devices refuses to fall back; nothing trains.
    let (_d, sweep, data, db) = setup(&sweep_with_model());
    let out = bin()
        .arg("--db")
        .arg(&db)
        .arg("--data-dir")
        .arg(&data)
        .args(["run", sweep.to_str().unwrap(), "--progress", "quiet"])
        .env("CUDA_VISIBLE_DEVICES", "0")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("GPUs are visible (") && err.contains("CUDA 13.0"),
        "{err}"
    );
    if db.exists() {
        let c = rusqlite::Connection::open(&db).unwrap();
        let trained: i64 = c
            .query_row(
                "SELECT count(*) FROM runs WHERE status != 'pending'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(trained, 0, "nothing trained on the CPU");
    }
    // The engine's own commands say the same without --device.
    let out = bin()
        .args(["probe", "--model"])
        .arg(repo().join("models/tiny-bert"))
        .args(["--sentences", "stsb-dev"])
        .env("CUDA_VISIBLE_DEVICES", "0")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("GPUs are visible ("),
        "{}",
        text(&out.stderr)
    );
}
