//! The Slurm executor: a dry run (no Slurm needed), submission and settling against stand-in
//! `sbatch`/`scontrol` scripts (no Slurm needed), and a real single-node Slurm cluster from Debian's
//! packages (scripts/slurm.sh) running a sweep as a job array, one run failing on purpose, then
//! `--retry-failed` after the cause is fixed.

mod common;

use common::{count, data_dir, micro_model, repo, text};
use rusqlite::Connection;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

fn simsweep(db: &Path, data: &Path, path_env: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_simsweep"));
    c.arg("--db").arg(db).arg("--data-dir").arg(data).args(args);
    if let Some(p) = path_env {
        c.env("PATH", p);
    }
    c.output().unwrap()
}

/// What `broken.txt` holds: one sentence, fewer examples than one batch of 8. Planning accepts the
/// file (it is text); its run fails when training starts, alone ("1 training examples are fewer
/// than one batch of 8"), and a longer file fixes it for `--retry-failed`.
const BROKEN: &str = "a single sentence\n";

/// A sweep of four micro runs: three train on `data.txt`, the fourth on `broken.txt`.
fn write_sweep(dir: &Path, train: &str, broken: &Path, name: &str) -> PathBuf {
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
data.max_examples = 200
train.batch_size = 8
train.steps = 6
eval.every = 0
eval.tasks = []
probe.every = 0
probe.size = 100
[[zip]]
"data.train" = [["{train}"], ["{train}"], ["{train}"], ["{broken}"]]
"train.temperature" = [0.05, 0.1, 0.5, 0.05]
"#,
            broken = broken.display()
        ),
    )
    .unwrap();
    sweep
}

/// A PATH without Slurm's commands (simsweep needs nothing else from PATH).
fn path_without_slurm() -> String {
    "/nonexistent-simsweep-test".into()
}

#[test]
fn dry_run_prints_the_script_and_task_table_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("data.txt"), "a sentence\nanother one\n").unwrap();
    let broken = data.join("broken.txt");
    std::fs::write(&broken, BROKEN).unwrap();
    let sweep = write_sweep(dir.path(), "data.txt", &broken, "dry");
    let db = dir.path().join("results/r.db");
    let path = path_without_slurm();
    let s = sweep.display().to_string();

    let out = simsweep(
        &db,
        &data,
        Some(&path),
        &[
            "run",
            &s,
            "--executor",
            "slurm",
            "--dry-run",
            "--partition",
            "gpu",
            "--gpus-per-task",
            "1",
            "--time",
            "01:00:00",
            "--array-parallelism",
            "2",
            "--cpus-per-task",
            "3",
        ],
    );
    let o = text(&out);
    assert!(out.status.success(), "{o}");
    for l in [
        "#SBATCH --job-name=simsweep-dry",
        "#SBATCH --array=0-3%2",
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --time=01:00:00",
        "#SBATCH --cpus-per-task=3",
        " worker ",
        "nothing submitted, nothing written",
    ] {
        assert!(o.contains(l), "{l}\n{o}");
    }
    assert!(
        o.contains(&format!(
            "#SBATCH --output={}",
            dir.path().join("results/shards/dry/").display()
        )),
        "{o}"
    );
    let table: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip_while(|l| !l.starts_with("task "))
        .map(str::to_string)
        .collect();
    assert_eq!(table.len(), 5, "{o}");
    assert!(table[4].contains("broken.txt"), "{o}");
    assert!(
        !dir.path().join("results").exists(),
        "the dry run wrote files"
    );

    // With a database: done runs are not submitted, and the database is not touched.
    let out = simsweep(&db, &data, None, &["plan", &s]);
    assert!(out.status.success(), "{}", text(&out));
    {
        let c = Connection::open(&db).unwrap();
        c.execute(
            "UPDATE runs SET status = 'done' WHERE ordinal IN (0, 1)",
            [],
        )
        .unwrap();
        c.execute("UPDATE runs SET status = 'failed' WHERE ordinal = 3", [])
            .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let out = simsweep(
        &db,
        &data,
        Some(&path),
        &["run", &s, "--executor", "slurm", "--dry-run"],
    );
    let o = text(&out);
    assert!(out.status.success(), "{o}");
    assert!(o.contains("#SBATCH --array=0-0\n"), "{o}");
    let out = simsweep(
        &db,
        &data,
        Some(&path),
        &[
            "run",
            &s,
            "--executor",
            "slurm",
            "--dry-run",
            "--retry-failed",
        ],
    );
    let o = text(&out);
    assert!(o.contains("#SBATCH --array=0-1\n"), "{o}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the dry run changed the database"
    );
    assert!(!dir.path().join("results/shards").exists());

    // Without sbatch: a clear error, nothing written.
    let out = simsweep(&db, &data, Some(&path), &["run", &s, "--executor", "slurm"]);
    let o = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}");
    assert!(o.contains("Slurm's sbatch is not on PATH"), "{o}");
    assert_eq!(std::fs::read(&db).unwrap(), before);
    // Slurm options need the Slurm executor; the device is per task there.
    let out = simsweep(&db, &data, None, &["run", &s, "--partition", "gpu"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--partition needs --executor slurm"));
    let out = simsweep(
        &db,
        &data,
        None,
        &["run", &s, "--executor", "slurm", "--device", "cpu"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// Stand-ins for sbatch and scontrol, driven by files in `dir`.
fn fake_slurm(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let d = dir.display();
    // Shell builtins only: PATH holds nothing else.
    let cat = "show() { while IFS= read -r l || [ -n \"$l\" ]; do printf '%s\\n' \"$l\"; done < \"$1\"; }\n";
    let sbatch = format!(
        "#!/bin/sh\n{cat}\
         if [ -f {d}/sbatch.fail ]; then show {d}/sbatch.fail >&2; exit 1; fi\n\
         n=42; if [ -f {d}/next ]; then read -r n < {d}/next; fi\n\
         show \"$2\" > {d}/submitted-$n.sbatch\n\
         echo $((n + 1)) > {d}/next\n\
         echo \"$n;cluster\"\n"
    );
    let scontrol = format!(
        "#!/bin/sh\n{cat}\
         if [ ! -f {d}/scontrol-$4.out ]; then echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1; fi\n\
         show {d}/scontrol-$4.out\n"
    );
    for (name, body) in [("sbatch", sbatch), ("scontrol", scontrol)] {
        let p = bin.join(name);
        std::fs::write(&p, body).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    format!("{}:{}", bin.display(), path_without_slurm())
}

fn statuses(db: &Path) -> Vec<(String, String, Option<String>)> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT status, coalesce(worker, ''), error FROM runs ORDER BY ordinal")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn tasks_that_end_without_a_shard_are_settled_from_slurms_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("data.txt"), "a sentence\n").unwrap();
    let broken = data.join("broken.txt");
    std::fs::write(&broken, BROKEN).unwrap();
    let sweep = write_sweep(dir.path(), "data.txt", &broken, "fake");
    let s = sweep.display().to_string();
    let db = dir.path().join("results/r.db");
    let fake = dir.path().join("fake");
    let path = fake_slurm(&fake);

    // sbatch refuses (a bad partition): its message, and the runs stay pending.
    std::fs::write(
        fake.join("sbatch.fail"),
        "sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job submission failed: Invalid partition name specified\n",
    )
    .unwrap();
    let out = simsweep(
        &db,
        &data,
        Some(&path),
        &["run", &s, "--executor", "slurm", "--partition", "nope"],
    );
    let o = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}");
    assert!(
        o.contains("sbatch failed") && o.contains("invalid partition specified: nope"),
        "{o}"
    );
    assert!(
        statuses(&db)
            .iter()
            .all(|r| r.0 == "pending" && r.1.is_empty()),
        "{:?}",
        statuses(&db)
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("results/shards/fake"))
            .unwrap()
            .count(),
        0,
        "the failed submission's folder is removed"
    );
    std::fs::remove_file(fake.join("sbatch.fail")).unwrap();

    // Submitted as job 42: every run held by its task, with a submitted event.
    std::fs::write(
        fake.join("scontrol-42.out"),
        "JobId=42 ArrayJobId=42 ArrayTaskId=0-3 JobState=PENDING Reason=None ExitCode=0:0\n",
    )
    .unwrap();
    let out = simsweep(&db, &data, Some(&path), &["run", &s, "--executor", "slurm"]);
    let o = text(&out);
    assert!(out.status.success(), "{o}");
    assert!(
        o.contains("submitted Slurm job 42, array 0-3 (4 runs)"),
        "{o}"
    );
    let st = statuses(&db);
    for (i, r) in st.iter().enumerate() {
        assert_eq!(
            (r.0.as_str(), r.1.as_str()),
            ("running", format!("slurm:42_{i}").as_str())
        );
    }
    let script = std::fs::read_to_string(fake.join("submitted-42.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-3\n"), "{script}");
    let tasks_json = script
        .lines()
        .find(|l| l.starts_with("exec "))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .trim_matches('\'')
        .to_string();
    let tasks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tasks_json).unwrap()).unwrap();
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 4);
    assert_eq!(tasks["sweep"], "fake");
    assert!(Path::new(tasks["data_dir"].as_str().unwrap()).is_absolute());

    // Slurm says: 0 ran out of time, 1 runs, 2 waits, 3 was cancelled; 0 and 3 wrote no shard.
    let log_dir = Path::new(&tasks_json).parent().unwrap();
    std::fs::write(log_dir.join("42_0.out"), "simsweep worker: slurm task 42_0\nslurmstepd: error: *** JOB 43 CANCELLED DUE TO TIME LIMIT ***\n").unwrap();
    std::fs::write(
        fake.join("scontrol-42.out"),
        "JobId=43 ArrayJobId=42 ArrayTaskId=0 JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15 NodeList=n1 BatchHost=n1\n\
         JobId=44 ArrayJobId=42 ArrayTaskId=1 JobState=RUNNING Reason=None ExitCode=0:0 NodeList=n2 BatchHost=n2\n\
         JobId=42 ArrayJobId=42 ArrayTaskId=2%2 JobState=PENDING Reason=Priority ExitCode=0:0 NodeList=\n\
         JobId=45 ArrayJobId=42 ArrayTaskId=3 JobState=CANCELLED Reason=None ExitCode=0:0 NodeList=n1 BatchHost=n1\n",
    )
    .unwrap();
    let out = simsweep(&db, &data, Some(&path), &["status", "fake"]);
    let o = text(&out);
    assert!(out.status.success(), "{o}");
    assert!(
        o.contains("slurm:42_1") && o.contains("RUNNING on n2"),
        "{o}"
    );
    assert!(o.contains("PENDING (Priority)"), "{o}");
    assert!(
        o.contains("failed at step -: slurm job 42_0 TIMEOUT (exit code 0:15); log ")
            && o.contains(
                "42_0.out: slurmstepd: error: *** JOB 43 CANCELLED DUE TO TIME LIMIT ***"
            ),
        "{o}"
    );
    let st = statuses(&db);
    assert_eq!(st[0].0, "failed");
    assert_eq!((st[1].0.as_str(), st[2].0.as_str()), ("running", "running"));
    assert_eq!(st[3].0, "cancelled");
    assert!(
        st[3]
            .2
            .as_deref()
            .unwrap()
            .starts_with("slurm job 42_3 CANCELLED"),
        "{st:?}"
    );
    // Asking again changes nothing.
    let out = simsweep(&db, &data, Some(&path), &["merge", "fake"]);
    assert!(text(&out).contains("0 runs settled"), "{}", text(&out));
    assert_eq!(statuses(&db), st);

    // The job's records expired: the runs it still held fail with that reason.
    std::fs::remove_file(fake.join("scontrol-42.out")).unwrap();
    let out = simsweep(&db, &data, Some(&path), &["merge"]);
    assert!(
        text(&out).contains("0 runs settled"),
        "not within a minute of news: {}",
        text(&out)
    );
    Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE runs SET heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-2 minutes')",
            [],
        )
        .unwrap();
    let out = simsweep(&db, &data, Some(&path), &["merge"]);
    assert!(text(&out).contains("2 runs settled"), "{}", text(&out));
    let st = statuses(&db);
    assert!(
        st[1..3].iter().all(
            |r| r.0 == "failed" && r.2.as_deref().unwrap().contains("no longer known to Slurm")
        ),
        "{st:?}"
    );

    std::fs::write(
        fake.join("scontrol-43.out"),
        "JobId=43 ArrayJobId=43 ArrayTaskId=0-3 JobState=PENDING Reason=Priority ExitCode=0:0\n",
    )
    .unwrap();
    // --retry-failed resubmits the three failed runs (the cancelled one goes again anyway).
    let out = simsweep(
        &db,
        &data,
        Some(&path),
        &["run", &s, "--executor", "slurm", "--retry-failed"],
    );
    let o = text(&out);
    assert!(out.status.success(), "{o}");
    assert!(
        o.contains("3 runs failed or diverged back to pending"),
        "{o}"
    );
    assert!(
        o.contains("submitted Slurm job 43, array 0-3 (4 runs)"),
        "{o}"
    );
    let st = statuses(&db);
    assert!(
        st.iter()
            .all(|r| r.0 == "running" && r.1.starts_with("slurm:43_")),
        "{st:?}"
    );
    let c = Connection::open(&db).unwrap();
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM events WHERE kind = 'requeued' AND message LIKE '3 runs %'"
        ),
        1
    );
    assert_eq!(count(&c, "SELECT max(attempts) FROM runs"), 0);

    // scontrol missing: a warning, the runs stay as they are.
    let no_scontrol = path.replace(&format!("{}:", fake.join("bin").display()), "");
    let out = simsweep(&db, &data, Some(&no_scontrol), &["status", "fake"]);
    let o = text(&out);
    assert!(out.status.success(), "{o}");
    assert!(o.contains("cannot ask Slurm about job 43"), "{o}");
    assert_eq!(statuses(&db), st);
}

/// A Slurm cluster started by scripts/slurm.sh, stopped (by PID) when dropped.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Cluster {
    /// None (with a message) where Slurm cannot be installed here, unless SIMSWEEP_REQUIRE_SLURM=1.
    fn start(dir: &Path) -> Option<Cluster> {
        let required = std::env::var("SIMSWEEP_REQUIRE_SLURM").is_ok_and(|v| v == "1");
        if std::env::var("SIMSWEEP_SLURM").is_ok_and(|v| v == "skip") && !required {
            eprintln!("SKIP: Slurm integration test (SIMSWEEP_SLURM=skip: Slurm cannot be installed here)");
            return None;
        }
        let t = Instant::now();
        let out = Command::new("bash")
            .arg(repo().join("scripts/slurm.sh"))
            .arg("start")
            .arg(dir)
            .output()
            .unwrap();
        if out.status.code() == Some(3) && !required {
            eprintln!(
                "SKIP: Slurm integration test: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        assert!(
            out.status.success(),
            "scripts/slurm.sh start failed\n{}",
            text(&out)
        );
        eprintln!("slurm: cluster up in {:.1} s", t.elapsed().as_secs_f64());
        Some(Cluster {
            dir: dir.to_path_buf(),
            conf: dir.join("slurm.conf"),
        })
    }

    fn cmd(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .output()
            .unwrap();
        text(&out)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("scripts/slurm.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

/// Every (run, metric, layer, step) of a database.
fn metric_keys(db: &Path) -> BTreeSet<(String, String, i64, i64)> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT run_id, metric, layer, step FROM metric_values")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// A snapshot of what a merge could change.
fn snapshot(db: &Path) -> (Vec<Vec<String>>, i64, i64, i64) {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT run_id, status, coalesce(step, -1), attempts, coalesce(started_at, ''), coalesce(finished_at, ''), coalesce(host, ''), coalesce(device, ''), coalesce(worker, ''), coalesce(error, '') FROM runs ORDER BY run_id")
        .unwrap();
    let runs = st
        .query_map([], |r| {
            (0..10)
                .map(|i| {
                    r.get::<_, rusqlite::types::Value>(i)
                        .map(|v| format!("{v:?}"))
                })
                .collect()
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    (
        runs,
        count(&c, "SELECT count(*) FROM metrics"),
        count(&c, "SELECT count(*) FROM events"),
        count(&c, "SELECT count(*) FROM checkpoints"),
    )
}

#[test]
fn a_sweep_runs_as_a_slurm_job_array_and_failed_runs_are_retried() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::start(&dir.path().join("cluster")) else {
        return;
    };
    let t0 = Instant::now();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let broken = work.join("broken.txt");
    std::fs::write(&broken, BROKEN).unwrap();
    let sweep = write_sweep(&work, "wiki1m_for_simcse.head.txt", &broken, "array");
    let s = sweep.display().to_string();
    let db = work.join("results/r.db");
    let conf = cluster.conf.display().to_string();
    let run = |args: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_simsweep"))
            .arg("--db")
            .arg(&db)
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .env("SLURM_CONF", &conf)
            .output()
            .unwrap()
    };

    // Submit and wait: three runs done, the one on the empty file failed with its error.
    let out = run(&[
        "run",
        &s,
        "--executor",
        "slurm",
        "--array-parallelism",
        "4",
        "--wait",
        "--poll",
        "0.5",
    ]);
    let o = text(&out);
    eprintln!("{o}");
    assert_eq!(out.status.code(), Some(1), "{o}");
    assert!(o.contains("submitted Slurm job"), "{o}");
    assert!(
        o.contains(": 3 done, 1 failed, 0 diverged, 0 cancelled, 0 pruned in job"),
        "{o}"
    );
    let job: String = o
        .split("submitted Slurm job ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    eprintln!(
        "slurm: first array done at {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let sq = cluster.cmd(
        "squeue",
        &["--states=all", "-r", "-j", &job, "-h", "-o", "%i %T"],
    );
    eprintln!("{sq}");
    for i in 0..4 {
        assert!(sq.contains(&format!("{job}_{i} ")), "{sq}");
    }
    assert!(sq.contains(&format!("{job}_3 FAILED")), "{sq}");
    assert_eq!(sq.matches(" COMPLETED").count(), 3, "{sq}");

    let out = run(&["status", "array"]);
    let st = text(&out);
    eprintln!("{st}");
    assert!(out.status.success(), "{st}");
    assert!(
        st.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["array", "4", "0", "0", "3", "1", "0", "0", "0"]),
        "{st}"
    );
    assert!(
        st.contains("failed at step -: 1 training examples are fewer than one batch of 8"),
        "{st}"
    );

    // The same sweep run locally records exactly the same (run, metric, layer, step) rows.
    let local_db = work.join("local/r.db");
    let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .arg("--db")
        .arg(&local_db)
        .arg("--data-dir")
        .arg(&data)
        .args(["run", &s, "--device", "cpu"])
        .env("SIMSWEEP_THREADS", "1") // as the Slurm tasks (one CPU each); faster on a busy machine
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    eprintln!(
        "slurm: local run of the same sweep done at {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let keys = metric_keys(&db);
    assert_eq!(keys, metric_keys(&local_db));
    let runs_with_metrics: BTreeSet<&String> = keys.iter().map(|k| &k.0).collect();
    assert_eq!(runs_with_metrics.len(), 3);
    let c = Connection::open(&db).unwrap();
    // Every step metric at steps 1..=6 for each done run; no duplicate events.
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM metric_values WHERE metric = 'loss'"
        ),
        18
    );
    assert_eq!(count(&c, "SELECT count(*) FROM (SELECT run_pk, kind FROM events WHERE kind IN ('done', 'failed', 'slurm_task', 'submitted', 'started') GROUP BY 1, 2 HAVING count(*) > 1)"), 0);
    assert_eq!(count(&c, "SELECT count(*) FROM runs WHERE worker LIKE 'slurm:' || '%' AND host IS NOT NULL AND device = 'cpu'"), 4);
    // The tasks share the token cache beside the main database: the one that found no entry built
    // it, the others waited for it or mapped it.
    assert_eq!(count(&c, "SELECT count(*) FROM events e JOIN runs r USING (run_pk) WHERE e.kind = 'tokens' AND r.status = 'done'"), 3);
    assert_eq!(count(&c, "SELECT count(*) FROM events WHERE kind = 'tokens' AND message LIKE '%written to the token cache%'"), 1);
    assert_eq!(count(&c, "SELECT count(*) FROM events WHERE kind = 'tokens' AND message LIKE '%mapped from the token cache%'"), 2);
    assert_eq!(
        count(&c, "SELECT count(*) FROM checkpoints WHERE kind = 'best'"),
        3
    );
    drop(c);

    // Merging again changes nothing.
    let before = snapshot(&db);
    for _ in 0..2 {
        let out = run(&["merge", "array"]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("0 runs changed"), "{}", text(&out));
        assert_eq!(snapshot(&db), before);
    }
    let c = Connection::open(&db).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    // The per-run summaries agree with the rows.
    assert_eq!(
        simsweep_core::store::summary::check(&c).unwrap().mismatches,
        []
    );
    drop(c);

    // Nothing pending: nothing to submit.
    let out = run(&["run", &s, "--executor", "slurm"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("no pending runs to submit"),
        "{}",
        text(&out)
    );

    // Fix the cause and retry: exactly the failed run is submitted, and now it is done.
    let lines: String = std::fs::read_to_string(data.join("wiki1m_for_simcse.head.txt"))
        .unwrap()
        .lines()
        .take(300)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&broken, lines).unwrap();
    let out = run(&[
        "run",
        &s,
        "--executor",
        "slurm",
        "--retry-failed",
        "--wait",
        "--poll",
        "0.5",
    ]);
    let o = text(&out);
    eprintln!("{o}");
    assert_eq!(out.status.code(), Some(0), "{o}");
    assert!(o.contains("array 0-0 (1 run)"), "{o}");
    assert!(
        o.contains(": 1 done, 0 failed, 0 diverged, 0 cancelled, 0 pruned in job"),
        "{o}"
    );
    let out = run(&["status", "array"]);
    let st = text(&out);
    eprintln!("{st}");
    assert!(
        st.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["array", "4", "0", "0", "4", "0", "0", "0", "0"]),
        "{st}"
    );
    let c = Connection::open(&db).unwrap();
    let failed_id: String = c
        .query_row("SELECT run_id FROM runs WHERE ordinal = 3", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(count(&c, "SELECT attempts FROM runs WHERE ordinal = 3"), 2);
    assert_eq!(count(&c, "SELECT count(*) FROM runs WHERE attempts = 1"), 3);
    // The retried run has the rows of any other run, once each.
    let per_run: Vec<i64> = {
        let mut st = c
            .prepare("SELECT count(*) FROM runs r LEFT JOIN metrics m USING (run_pk) GROUP BY r.run_pk ORDER BY r.ordinal")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert!(
        per_run.iter().all(|n| *n == per_run[0] && *n > 0),
        "{per_run:?}"
    );
    let k = metric_keys(&db);
    let retried: BTreeSet<(String, i64, i64)> = k
        .iter()
        .filter(|x| x.0 == failed_id)
        .map(|x| (x.1.clone(), x.2, x.3))
        .collect();
    let first: BTreeSet<(String, i64, i64)> = k
        .iter()
        .filter(|x| x.0 != failed_id)
        .take(per_run[0] as usize)
        .map(|x| (x.1.clone(), x.2, x.3))
        .collect();
    assert_eq!(retried, first);
    assert_eq!(
        count(&c, &format!("SELECT count(*) FROM events e JOIN runs r USING (run_pk) WHERE r.run_id = '{failed_id}' AND e.kind IN ('failed', 'done', 'submitted', 'slurm_task')")),
        6
    );
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    // The per-run summaries agree with the rows.
    assert_eq!(
        simsweep_core::store::summary::check(&c).unwrap().mismatches,
        []
    );
    drop(c);
    eprintln!(
        "slurm: sweep, local comparison and retry in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // Interrupted and resumed: scancel a task once its run has a resumable checkpoint; the run is
    // cancelled, and the next submission continues from the checkpoint, each step's rows once.
    let resume = work.join("resume.toml");
    std::fs::write(
        &resume,
        r#"
[sweep]
name = "resume"
[base]
model.path = "micro-bert"
model.init = "random"
data.train = ["wiki1m_for_simcse.head.txt"]
data.max_examples = 3000
train.batch_size = 8
train.steps = 300
train.checkpoint_every = 10
eval.every = 0
eval.tasks = []
probe.every = 0
probe.size = 100
"#,
    )
    .unwrap();
    let r = resume.display().to_string();
    let out = run(&["run", &r, "--executor", "slurm"]);
    let o = text(&out);
    assert!(out.status.success(), "{o}");
    let job: String = o
        .split("submitted Slurm job ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let run_id: String = Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT run_id FROM runs JOIN sweeps USING (sweep_id) WHERE name = 'resume'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let shard = work.join(format!("results/shards/resume/{run_id}.db"));
    let waited = Instant::now();
    let checkpointed = loop {
        let last = Connection::open_with_flags(&shard, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()
            .and_then(|c| {
                c.query_row(
                    "SELECT max(step) FROM checkpoints WHERE kind = 'last'",
                    [],
                    |r| r.get::<_, Option<i64>>(0),
                )
                .ok()
            })
            .flatten();
        if let Some(step) = last {
            break step;
        }
        assert!(
            waited.elapsed().as_secs() < 120,
            "no checkpoint in {}",
            shard.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    eprintln!("{}", cluster.cmd("scancel", &[&job]));
    let waited = Instant::now();
    let (status, step) = loop {
        let out = run(&["merge", "resume"]);
        assert!(out.status.success(), "{}", text(&out));
        let (status, step): (String, Option<i64>) = Connection::open(&db)
            .unwrap()
            .query_row(
                "SELECT status, step FROM runs WHERE run_id = ?1",
                [&run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        if status != "running" {
            break (status, step);
        }
        assert!(waited.elapsed().as_secs() < 120, "the task did not stop");
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    eprintln!("slurm: cancelled at step {step:?} (checkpoint at {checkpointed} or later)");
    assert_eq!(status, "cancelled", "{step:?}");
    let stopped = step.unwrap();
    assert!(stopped >= checkpointed && stopped < 300, "{stopped}");
    let out = run(&["run", &r, "--executor", "slurm", "--wait", "--poll", "0.5"]);
    let o = text(&out);
    eprintln!("{o}");
    assert_eq!(out.status.code(), Some(0), "{o}");
    let c = Connection::open(&db).unwrap();
    let resumed: String = c
        .query_row(
            "SELECT message FROM events e JOIN runs r USING (run_pk) WHERE r.run_id = ?1 AND e.kind = 'resumed'",
            [&run_id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(resumed.starts_with("resumed from step "), "{resumed}");
    let from: i64 = resumed["resumed from step ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(from >= checkpointed && from <= stopped, "{from}");
    let q = format!("SELECT count(*), count(DISTINCT step), min(step), max(step) FROM metric_values WHERE run_id = '{run_id}' AND metric = 'loss'");
    let loss: (i64, i64, i64, i64) = c
        .query_row(&q, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap();
    assert_eq!(loss, (300, 300, 1, 300));
    assert_eq!(
        count(
            &c,
            &format!("SELECT attempts FROM runs WHERE run_id = '{run_id}'")
        ),
        2
    );
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    // The per-run summaries agree with the rows.
    assert_eq!(
        simsweep_core::store::summary::check(&c).unwrap().mismatches,
        []
    );
    eprintln!(
        "slurm: interrupted and resumed, all done in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// Early stopping across a job array: the tasks share the board `shards/<sweep>/search.db`, a
/// task whose run is pruned ends cleanly (exit 0, its slot freed) and the array's other tasks go on;
/// one task at a time, the runs pruned are exactly those computed by hand for the local executor
/// (tests/common `ASHA_OBJECTIVE`).
#[test]
fn asha_prunes_the_same_runs_on_a_slurm_job_array() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::start(&dir.path().join("cluster")) else {
        return;
    };
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let sweep = common::search_sweep(
        &work,
        "sasha",
        "[search]\nmethod = \"asha\"\nmin_steps = 10\nreduction_factor = 3\n",
    );
    let objective = work.join("objective.json");
    std::fs::write(&objective, common::ASHA_OBJECTIVE).unwrap();
    let db = work.join("results/r.db");
    let conf = cluster.conf.display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .arg("--db")
        .arg(&db)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "run",
            &sweep.display().to_string(),
            "--executor",
            "slurm",
            "--array-parallelism",
            "1",
            "--wait",
            "--poll",
            "0.5",
        ])
        .env("SLURM_CONF", &conf)
        // sbatch passes the environment on to the tasks.
        .env("SIMSWEEP_TEST_OBJECTIVE", &objective)
        .output()
        .unwrap();
    let o = text(&out);
    eprintln!("{o}");
    assert_eq!(out.status.code(), Some(0), "{o}");
    assert!(
        o.contains(": 3 done, 0 failed, 0 diverged, 0 cancelled, 6 pruned in job"),
        "{o}"
    );
    assert_eq!(
        common::search_outcome(&db),
        common::expected_outcome(common::ASHA_PRUNED)
    );
    let board = work.join("results/shards/sasha/search.db");
    let b = Connection::open(&board).unwrap();
    assert_eq!(count(&b, "SELECT count(*) FROM search_decisions"), 13);
    // Each run's decisions reached the main database with its shard, as events, and the board's
    // rows with the merge (once: merging again adds nothing).
    let c = Connection::open(&db).unwrap();
    assert_eq!(
        count(&c, "SELECT count(*) FROM events WHERE kind = 'search'"),
        13
    );
    assert_eq!(count(&c, "SELECT count(*) FROM search_decisions"), 13);
    let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .arg("--db")
        .arg(&db)
        .arg("merge")
        .env("SLURM_CONF", &conf)
        .output()
        .unwrap();
    let m = text(&out);
    assert!(out.status.success() && !m.contains("cannot merge"), "{m}");
    assert_eq!(count(&c, "SELECT count(*) FROM search_decisions"), 13);
    assert_eq!(
        count(&c, "SELECT count(*) FROM search_reports"),
        count(&b, "SELECT count(*) FROM search_reports")
    );
    // Every task of the array completed (a pruned run's task ends with status 0).
    let job: String = o
        .split("submitted Slurm job ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let sq = cluster.cmd(
        "squeue",
        &["--states=all", "-r", "-j", &job, "-h", "-o", "%i %T"],
    );
    assert_eq!(sq.matches(" COMPLETED").count(), 9, "{sq}");
}
