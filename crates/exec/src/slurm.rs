//! Running a sweep on a Slurm cluster.
//!
//! `simsweep run FILE --executor slurm` plans the sweep, takes its pending runs and submits one job
//! array over them: task `i` runs `simsweep worker <dir>/tasks.json`, which trains run `i` of the
//! task table and writes only its own SQLite shard, `<results>/shards/<sweep>/<run id>.db` (results
//! = the folder of the main database; run folders and checkpoints go to `<results>/<sweep>/<run id>/`
//! as with the local executor). Compute nodes never open the main database. `simsweep merge` (also
//! run by `status` and by `run --executor slurm`) copies the shards into the main database and asks
//! Slurm about tasks that ended without a final status in their shard. Layout of a submission:
//!
//! ```text
//! <results>/shards/<sweep>/<run id>.db            one shard per run, reused by later submissions
//! <results>/shards/<sweep>/<stamp>-<pid>/job.sbatch   the batch script
//! <results>/shards/<sweep>/<stamp>-<pid>/tasks.json   the task table (everything a task needs)
//! <results>/shards/<sweep>/<stamp>-<pid>/jobid        the job id sbatch answered
//! <results>/shards/<sweep>/<stamp>-<pid>/<job>_<i>.out   each task's output
//! ```

use crate::spec::{self, PlannedRun, Sweep};
use crate::store::shard::{self as sh, RunMerge, ShardStart, SubmitRun};
use crate::store::Store;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use simsweep_core::device::Device;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Version of the task table format (`tasks.json`).
pub const TASKS_VERSION: u32 = 1;

/// Options of `run --executor slurm`.
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    pub partition: Option<String>,
    pub gpus_per_task: Option<u32>,
    pub cpus_per_task: Option<u32>,
    pub time: Option<String>,
    pub array_parallelism: Option<u32>,
    /// Extra sbatch options, one per `#SBATCH` line (e.g. `--mem=16G`, `--account=A`).
    pub sbatch_args: Vec<String>,
    pub dry_run: bool,
    pub wait: bool,
    /// Seconds between polls with `wait`.
    pub poll: f64,
    pub retry_failed: bool,
}

/// The task table a submission writes beside its batch script: everything a task needs, so that a
/// compute node reads nothing but this file, the sweep's model and data files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskFile {
    pub version: u32,
    /// The simsweep that submitted (the same binary runs the tasks).
    pub simsweep: String,
    pub sweep: String,
    pub description: String,
    /// The sweep file, absolute (relative model paths resolve against its folder).
    pub sweep_file: PathBuf,
    pub sweep_text: String,
    pub swept_keys: Vec<String>,
    pub seeds: Vec<i64>,
    /// Absolute; relative data paths of the runs resolve against it.
    pub data_dir: PathBuf,
    /// The main database's folder: run folders go to `<results_dir>/<sweep>/<run id>`.
    pub results_dir: PathBuf,
    /// `<results_dir>/shards/<sweep>`: task `i` writes `<shards_dir>/<run id>.db`.
    pub shards_dir: PathBuf,
    pub gpus_per_task: u32,
    /// The sweep's `[search]` (early stopping), absent in task tables of sweeps without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<spec::search::Search>,
    pub tasks: Vec<Task>,
}

/// The early-stopping board of a Slurm sweep, in its shards folder.
pub const SEARCH_BOARD: &str = "search.db";

/// One array task: the run it trains, as stored in the main database at submission.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    pub index: usize,
    pub run_id: String,
    pub ordinal: i64,
    pub seed: i64,
    /// `pending` or `cancelled` (a cancelled run may resume from its checkpoint).
    pub status: String,
    pub attempts: i64,
    /// The swept keys' values (for progress lines).
    pub params: BTreeMap<String, Value>,
    /// Every resolved setting, as stored.
    pub config: BTreeMap<String, Value>,
    pub canonical: String,
}

/// The folder of the main database, absolute.
pub fn results_dir(db: &Path) -> PathBuf {
    let parent = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

/// `<results>/shards/<sweep>`.
pub fn shards_dir(db: &Path, sweep: &str) -> PathBuf {
    results_dir(db).join("shards").join(sweep)
}

/// `program` found on PATH.
pub fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| {
                use std::os::unix::fs::PermissionsExt;
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    })
}

/// Quote for a POSIX shell.
fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=,%+@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// An `#SBATCH` value: double-quoted when it has blanks (sbatch reads quotes there).
fn sbatch_value(s: &str) -> String {
    if s.chars().any(char::is_whitespace) {
        format!("\"{s}\"")
    } else {
        s.to_string()
    }
}

/// The batch script of a submission of `n` tasks whose folder is `dir`.
pub fn sbatch_script(
    sweep: &str,
    n: usize,
    opts: &SubmitOptions,
    dir: &Path,
    exe: &Path,
) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let mut line = |o: String| s.push_str(&format!("#SBATCH {o}\n"));
    line(format!("--job-name=simsweep-{sweep}"));
    line(format!(
        "--array=0-{}{}",
        n.saturating_sub(1),
        opts.array_parallelism
            .map_or(String::new(), |k| format!("%{k}"))
    ));
    line(format!(
        "--output={}",
        sbatch_value(&dir.join("%A_%a.out").display().to_string())
    ));
    line("--ntasks=1".into());
    if let Some(c) = opts.cpus_per_task {
        line(format!("--cpus-per-task={c}"));
    }
    if let Some(p) = &opts.partition {
        line(format!("--partition={}", sbatch_value(p)));
    }
    if let Some(g) = opts.gpus_per_task {
        line(format!("--gpus-per-task={g}"));
    }
    if let Some(t) = &opts.time {
        line(format!("--time={}", sbatch_value(t)));
    }
    for a in &opts.sbatch_args {
        line(a.clone());
    }
    s.push_str(&format!(
        "# simsweep {}: sweep {sweep}, {n} runs. Task i trains run i of tasks.json (beside this script)\n\
         # and writes only its shard <results>/shards/{sweep}/<run id>.db; `simsweep merge` brings the\n\
         # shards into the main database.\n",
        crate::code_version()
    ));
    s.push_str("export SIMSWEEP_THREADS=\"${SLURM_CPUS_PER_TASK:-${SIMSWEEP_THREADS:-1}}\"\n");
    s.push_str(&format!(
        "exec {} worker {}\n",
        sh_quote(&exe.display().to_string()),
        sh_quote(&dir.join("tasks.json").display().to_string())
    ));
    s
}

/// Name of a new submission folder: UTC time and this process's id.
fn submission_tag() -> String {
    let stamp = rusqlite::Connection::open_in_memory()
        .and_then(|c| {
            c.query_row("SELECT strftime('%Y%m%dT%H%M%SZ', 'now')", [], |r| {
                r.get::<_, String>(0)
            })
        })
        .unwrap_or_else(|_| "submission".into());
    format!("{stamp}-{}", std::process::id())
}

/// The swept keys' values of a run, for tables and progress lines.
fn params_of(sweep: &Sweep, config: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    sweep
        .display_keys()
        .iter()
        .filter_map(|k| config.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

fn task_table(sweep: &Sweep, tasks: &[Task]) -> String {
    let keys = sweep.display_keys();
    let mut headers = vec!["task".to_string(), "run".to_string()];
    headers.extend(keys.iter().cloned());
    headers.push("status".into());
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            let mut row = vec![t.index.to_string(), t.run_id.clone()];
            row.extend(
                keys.iter()
                    .map(|k| spec::value::display(t.config.get(k).unwrap_or(&Value::Null))),
            );
            row.push(t.status.clone());
            row
        })
        .collect();
    crate::table::render(&headers, &rows)
}

fn task_file(
    sweep: &Sweep,
    db: &Path,
    data_dir: &Path,
    opts: &SubmitOptions,
    tasks: Vec<Task>,
) -> TaskFile {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    TaskFile {
        version: TASKS_VERSION,
        simsweep: crate::code_version(),
        sweep: sweep.name.clone(),
        description: sweep.description.clone(),
        sweep_file: abs(&sweep.file),
        sweep_text: sweep.text.clone(),
        swept_keys: sweep.swept_keys.clone(),
        seeds: sweep.seeds.clone(),
        data_dir: abs(data_dir),
        results_dir: results_dir(db),
        shards_dir: shards_dir(db, &sweep.name),
        gpus_per_task: opts.gpus_per_task.unwrap_or(0),
        search: sweep.search.clone(),
        tasks,
    }
}

/// `run FILE --executor slurm`: submit one job array over the sweep's pending (and cancelled) runs;
/// with `retry_failed` failed and diverged runs too. Returns the exit status.
/// `simsweep run --executor slurm`: one job array over the pending runs.
#[derive(Debug, Clone)]
pub struct Slurm(pub SubmitOptions);

impl crate::Executor for Slurm {
    fn run(&self, req: &crate::Request<'_>) -> Result<i32> {
        let opts = SubmitOptions {
            retry_failed: req.retry_failed,
            ..self.0.clone()
        };
        submit(req.file, req.db, req.data_dir, &opts)
    }
}

pub fn submit(file: &Path, db: &Path, data_dir: &Path, opts: &SubmitOptions) -> Result<i32> {
    let sbatch = if opts.dry_run {
        None
    } else {
        Some(on_path("sbatch").ok_or_else(|| {
            anyhow!("Slurm's sbatch is not on PATH: --executor slurm submits with sbatch (run on a Slurm login node, or use --dry-run to see the script)")
        })?)
    };
    let sweep = spec::load(file).map_err(|e| simsweep_core::BadInput(e.to_string()))?;
    spec::check_paths(&sweep, data_dir).map_err(|e| simsweep_core::BadInput(e.to_string()))?;
    for w in &sweep.warnings {
        eprintln!("warning: {w}");
    }
    let exe = std::env::current_exe().context("locating the simsweep binary")?;
    let dir = shards_dir(db, &sweep.name).join(submission_tag());
    if opts.dry_run {
        return dry_run(&sweep, db, opts, &dir, &exe);
    }
    let sbatch = sbatch.expect("checked");

    let mut store = Store::open(db)?;
    let summary = store
        .plan(&sweep)
        .with_context(|| format!("recording sweep `{}`", sweep.name))?;
    // What earlier submissions recorded, before choosing what to submit.
    let rec = reconcile(&mut store, Some(&sweep.name))?;
    rec.print_notes();
    if opts.retry_failed {
        let n = store.requeue(&sweep.name, &["failed", "diverged"])?;
        if n > 0 {
            println!(
                "sweep {}: {} failed or diverged back to pending",
                sweep.name,
                runs(n)
            );
        }
    }
    let claimer = Store::submitting_worker();
    let claimed = store.claim_for_submission(&sweep.name, &claimer)?;
    if claimed.is_empty() {
        let c = counts(&store, &sweep.name)?;
        println!(
            "sweep {}: no pending runs to submit ({} runs: {} done, {} running, {} failed, {} diverged{}){}",
            sweep.name,
            summary.total,
            c.get("done"),
            c.get("running"),
            c.get("failed"),
            c.get("diverged"),
            if c.get("pruned") > 0 {
                format!(", {} pruned", c.get("pruned"))
            } else {
                String::new()
            },
            if c.get("failed") + c.get("diverged") > 0 && !opts.retry_failed {
                "; --retry-failed submits the failed ones again"
            } else {
                ""
            }
        );
        return Ok(0);
    }
    let tasks = tasks_of(&sweep, &claimed);
    let submitted = (|| -> Result<String> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let tf = task_file(&sweep, db, data_dir, opts, tasks.clone());
        std::fs::write(
            dir.join("tasks.json"),
            serde_json::to_string_pretty(&tf).expect("JSON"),
        )
        .with_context(|| format!("writing {}", dir.join("tasks.json").display()))?;
        let script = sbatch_script(&sweep.name, tasks.len(), opts, &dir, &exe);
        std::fs::write(dir.join("job.sbatch"), &script)
            .with_context(|| format!("writing {}", dir.join("job.sbatch").display()))?;
        let out = Command::new(&sbatch)
            .arg("--parsable")
            .arg(dir.join("job.sbatch"))
            .current_dir(&dir)
            .output()
            .with_context(|| format!("running {}", sbatch.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!(
                "sbatch failed ({}): {}",
                out.status,
                if stderr.trim().is_empty() {
                    stdout.trim()
                } else {
                    stderr.trim()
                }
            );
        }
        let job = stdout.trim().split(';').next().unwrap_or("").to_string();
        if job.is_empty() || !job.chars().all(|c| c.is_ascii_digit()) {
            bail!("sbatch answered `{}`, not a job id", stdout.trim());
        }
        Ok(job)
    })();
    let job = match submitted {
        Ok(job) => job,
        Err(err) => {
            store.release_submission(&claimed, &claimer)?;
            let _ = std::fs::remove_dir_all(&dir);
            return Err(err);
        }
    };
    let _ = std::fs::write(dir.join("jobid"), format!("{job}\n"));
    let held = store.confirm_submission(&claimed, &claimer, &job, &dir)?;
    println!(
        "sweep {}: submitted Slurm job {job}, array 0-{}{} ({}{}) → {}",
        sweep.name,
        tasks.len() - 1,
        opts.array_parallelism
            .map_or(String::new(), |k| format!("%{k}")),
        runs(tasks.len()),
        if held < tasks.len() {
            format!(
                ", {} taken by another process meanwhile",
                tasks.len() - held
            )
        } else {
            String::new()
        },
        dir.display()
    );
    if !opts.wait {
        let rec = reconcile(&mut store, Some(&sweep.name))?;
        rec.print_notes();
        println!(
            "`simsweep status {}` merges the finished tasks' shards and shows where the sweep stands",
            sweep.name
        );
        return Ok(0);
    }
    wait(&mut store, &sweep.name, &job, &claimed, opts.poll)
}

/// `1 run`, `3 runs`.
fn runs(n: usize) -> String {
    format!("{n} run{}", if n == 1 { "" } else { "s" })
}

fn tasks_of(sweep: &Sweep, claimed: &[SubmitRun]) -> Vec<Task> {
    claimed
        .iter()
        .enumerate()
        .map(|(i, r)| Task {
            index: i,
            run_id: r.run_id.clone(),
            ordinal: r.ordinal,
            seed: r.seed,
            status: r.status.clone(),
            attempts: r.attempts,
            params: params_of(sweep, &r.config),
            config: r.config.clone(),
            canonical: r.canonical.clone(),
        })
        .collect()
}

fn dry_run(sweep: &Sweep, db: &Path, opts: &SubmitOptions, dir: &Path, exe: &Path) -> Result<i32> {
    // What the database holds, read only; a run it does not know yet would be planned as pending.
    let stored: HashMap<String, crate::store::RunRow> = if db.is_file() {
        Store::open_readonly(db)?
            .sweep_runs(&sweep.name)?
            .into_iter()
            .map(|r| (r.run_id.clone(), r))
            .collect()
    } else {
        HashMap::new()
    };
    let mut claimed = Vec::new();
    for r in &sweep.runs {
        let (status, config, attempts) = match stored.get(&r.id) {
            None => ("pending".to_string(), r.config.clone(), 0),
            Some(s) if s.status == "pending" => ("pending".into(), r.config.clone(), 0),
            Some(s) => (s.status.clone(), s.config.clone(), 0),
        };
        let submit = match status.as_str() {
            "pending" | "cancelled" => true,
            "failed" | "diverged" => opts.retry_failed,
            _ => false,
        };
        if submit {
            claimed.push(SubmitRun {
                run_pk: 0,
                run_id: r.id.clone(),
                ordinal: r.ordinal as i64,
                seed: r.seed,
                config,
                canonical: r.canonical.clone(),
                attempts,
                status: if status == "failed" || status == "diverged" {
                    "pending".into()
                } else {
                    status
                },
                error: None,
            });
        }
    }
    if claimed.is_empty() {
        println!(
            "sweep {}: no pending runs to submit (dry run: nothing submitted, nothing written)",
            sweep.name
        );
        return Ok(0);
    }
    let tasks = tasks_of(sweep, &claimed);
    println!(
        "# dry run: sweep {}, {} of {} runs would be submitted as one job array; nothing submitted, nothing written.",
        sweep.name,
        tasks.len(),
        sweep.runs.len()
    );
    println!("# {}", dir.join("job.sbatch").display());
    print!(
        "{}",
        sbatch_script(&sweep.name, tasks.len(), opts, dir, exe)
    );
    println!("\n# tasks ({})", dir.join("tasks.json").display());
    print!("{}", task_table(sweep, &tasks));
    Ok(0)
}

/// Counts of a sweep's in-plan runs by status.
struct Counts(HashMap<String, usize>);
impl Counts {
    fn get(&self, k: &str) -> usize {
        self.0.get(k).copied().unwrap_or(0)
    }
}

fn counts(store: &Store, sweep: &str) -> Result<Counts> {
    Ok(Counts(
        store
            .sweep_runs(sweep)?
            .into_iter()
            .filter(|r| r.in_plan)
            .fold(HashMap::new(), |mut m, r| {
                *m.entry(r.status).or_insert(0) += 1;
                m
            }),
    ))
}

/// `--wait`: merge and poll until no run of this submission is running; print each change.
fn wait(
    store: &mut Store,
    sweep: &str,
    job: &str,
    claimed: &[SubmitRun],
    poll: f64,
) -> Result<i32> {
    let cancel = crate::local::install_interrupt_handler();
    let pks: HashSet<i64> = claimed.iter().map(|r| r.run_pk).collect();
    let poll = Duration::from_secs_f64(poll.max(0.1));
    let mut last = String::new();
    loop {
        let started = Instant::now();
        while started.elapsed() < poll {
            if cancel.load(Ordering::SeqCst) {
                println!(
                    "stopped waiting; Slurm job {job} goes on (`simsweep status {sweep}` shows it, `scancel {job}` stops it)"
                );
                return Ok(130);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let rec = reconcile(store, Some(sweep))?;
        rec.print_notes();
        let rows: Vec<(String, String, Option<String>, Option<String>)> = {
            let mut st = store.conn.prepare(
                "SELECT r.run_pk, r.run_id, r.status, r.host, r.error FROM runs r JOIN sweeps s ON s.sweep_id = r.sweep_id WHERE s.name = ?1",
            )?;
            let rows = st.query_map([sweep], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })?;
            rows.filter_map(|r| r.ok())
                .filter(|r| pks.contains(&r.0))
                .map(|(_, id, st, host, err)| (id, st, host, err))
                .collect()
        };
        let mut c: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, st, host, _) in &rows {
            let k = match (st.as_str(), host) {
                ("running", None) => "queued",
                (s, _) => s,
            };
            *c.entry(k).or_insert(0) += 1;
        }
        let line = [
            "queued",
            "running",
            "done",
            "failed",
            "diverged",
            "cancelled",
            "pruned",
        ]
        .iter()
        .filter_map(|k| c.get(k).map(|n| format!("{n} {k}")))
        .collect::<Vec<_>>()
        .join(", ");
        if line != last {
            println!("job {job}: {line}");
            last = line;
        }
        if c.get("queued").copied().unwrap_or(0) + c.get("running").copied().unwrap_or(0) == 0 {
            let bad =
                c.get("failed").copied().unwrap_or(0) + c.get("diverged").copied().unwrap_or(0);
            for (id, st, _, err) in &rows {
                if st != "done" && st != "pruned" {
                    println!("{id} {st}: {}", err.as_deref().unwrap_or(""));
                }
            }
            println!(
                "sweep {sweep}: {} done, {} failed, {} diverged, {} cancelled, {} pruned in job {job} → {}",
                c.get("done").copied().unwrap_or(0),
                c.get("failed").copied().unwrap_or(0),
                c.get("diverged").copied().unwrap_or(0),
                c.get("cancelled").copied().unwrap_or(0),
                c.get("pruned").copied().unwrap_or(0),
                store.path.display()
            );
            return Ok(if bad > 0 {
                1
            } else if c.get("cancelled").copied().unwrap_or(0) > 0 {
                130
            } else {
                0
            });
        }
    }
}

/// What Slurm says about one array task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    /// JobState: PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, CANCELLED, …
    pub state: String,
    pub reason: String,
    pub exit_code: String,
    pub node: String,
}

impl TaskState {
    /// Whether the task has ended (it will not write to its shard any more).
    pub fn ended(&self) -> bool {
        matches!(
            self.state.as_str(),
            "COMPLETED"
                | "FAILED"
                | "TIMEOUT"
                | "CANCELLED"
                | "NODE_FAIL"
                | "OUT_OF_MEMORY"
                | "PREEMPTED"
                | "BOOT_FAIL"
                | "DEADLINE"
        )
    }

    /// `PENDING (Resources)`, `RUNNING on node1`, `TIMEOUT`.
    pub fn describe(&self) -> String {
        match self.state.as_str() {
            "PENDING" if !self.reason.is_empty() && self.reason != "None" => {
                format!("PENDING ({})", self.reason)
            }
            "RUNNING" | "COMPLETING" if !self.node.is_empty() => {
                format!("{} on {}", self.state, self.node)
            }
            s => s.to_string(),
        }
    }
}

/// The indices an `ArrayTaskId` names: `3`, `0-3`, `2,4-7%2`.
fn array_indices(spec: &str) -> Vec<u32> {
    let spec = spec.split('%').next().unwrap_or("");
    let mut out = Vec::new();
    for part in spec.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b.min(a.saturating_add(1_000_000)));
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

/// Parse `scontrol show job -o <job>` (one line per array task, or per pending range of tasks):
/// task index → state, for the tasks of array `job`.
pub fn parse_scontrol(job: &str, text: &str) -> HashMap<u32, TaskState> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|t| t.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .unwrap_or("")
                .to_string()
        };
        let ids = field("ArrayTaskId");
        if ids.is_empty() || field("ArrayJobId") != job {
            continue;
        }
        let node = field("BatchHost");
        let state = TaskState {
            state: field("JobState"),
            reason: field("Reason"),
            exit_code: field("ExitCode"),
            node: if node.is_empty() {
                field("NodeList")
            } else {
                node
            },
        };
        for i in array_indices(&ids) {
            out.insert(i, state.clone());
        }
    }
    out
}

/// Slurm's answer about a job.
#[derive(Debug, Clone)]
pub enum JobInfo {
    Known(HashMap<u32, TaskState>),
    /// "Invalid job id": finished longer ago than the cluster's MinJobAge, or never existed.
    Unknown,
}

/// Ask `scontrol show job -o` about a job; Err when Slurm cannot be asked.
pub fn query_job(job: &str) -> std::result::Result<JobInfo, String> {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", job])
        .output()
        .map_err(|e| format!("cannot run scontrol: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(JobInfo::Known(parse_scontrol(job, &stdout)))
    } else if stderr.contains("Invalid job id") {
        Ok(JobInfo::Unknown)
    } else {
        Err(format!("scontrol show job {job}: {}", stderr.trim()))
    }
}

/// What [`reconcile`] did.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Shard merges that changed the main database.
    pub merged: Vec<RunMerge>,
    /// Shards read (files), and how many were skipped as belonging to no current submission.
    pub shards: usize,
    pub stale: usize,
    /// Shards not read: unchanged since they were last merged.
    pub unread: usize,
    /// Runs settled from Slurm's word: (run id, status, error).
    pub settled: Vec<(String, String, String)>,
    /// Slurm's state of each task holding a run, by `<job>_<index>`.
    pub states: HashMap<String, TaskState>,
    /// Problems that did not stop the merge (an unreadable shard, Slurm not reachable).
    pub warnings: Vec<String>,
    /// Runs given back from an interrupted submission.
    pub released: usize,
}

impl Reconciled {
    pub fn print_notes(&self) {
        for w in &self.warnings {
            eprintln!("warning: {w}");
        }
        for (id, status, err) in &self.settled {
            println!("{id} {status}: {err}");
        }
    }
}

/// Last non-empty line of a task's output file, if found.
fn task_log(db: &Path, sweep: &str, task: &str) -> Option<(PathBuf, String)> {
    let dir = shards_dir(db, sweep);
    for entry in std::fs::read_dir(&dir).ok()?.flatten() {
        let p = entry.path().join(format!("{task}.out"));
        if p.is_file() {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            let last: String = last.chars().take(300).collect();
            return Some((p, last));
        }
    }
    None
}

/// A task Slurm does not know (any more) settles its run only after this long without news.
const UNKNOWN_GRACE_S: f64 = 60.0;

/// Bring the main database up to date with Slurm work: give back runs of interrupted submissions,
/// ask Slurm about the tasks holding runs, merge every shard of the sweep (or of every sweep), and
/// settle the runs whose task ended without a final status in its shard (`failed` with Slurm's state
/// and exit code, `cancelled` when Slurm cancelled it). Safe to run at any time and repeatedly.
pub fn reconcile(store: &mut Store, sweep: Option<&str>) -> Result<Reconciled> {
    let mut rec = Reconciled {
        released: store.release_stale_submissions()?,
        ..Default::default()
    };
    // Slurm first, shards second: a task Slurm reports ended wrote its last shard rows before.
    let held = store.slurm_runs(sweep)?;
    let mut jobs: HashMap<String, Option<JobInfo>> = HashMap::new();
    for r in &held {
        let Some((job, _)) = r.task().and_then(|t| t.split_once('_')) else {
            continue;
        };
        if jobs.contains_key(job) {
            continue;
        }
        let info = match query_job(job) {
            Ok(i) => Some(i),
            Err(msg) => {
                rec.warnings.push(format!(
                    "cannot ask Slurm about job {job} ({msg}); runs it holds stay running until it can be asked"
                ));
                None
            }
        };
        jobs.insert(job.to_string(), info);
    }
    let state_of = |task: &str| -> Option<Option<TaskState>> {
        let (job, idx) = task.split_once('_')?;
        match jobs.get(job)? {
            None => None,
            Some(JobInfo::Unknown) => Some(None),
            Some(JobInfo::Known(m)) => Some(idx.parse().ok().and_then(|i: u32| m.get(&i).cloned())),
        }
    };
    for r in &held {
        if let Some(t) = r.task() {
            if let Some(Some(s)) = state_of(t) {
                rec.states.insert(t.to_string(), s);
            }
        }
    }
    let ended: HashMap<&str, bool> = held
        .iter()
        .filter_map(|r| {
            let t = r.task()?;
            Some((
                r.run_id.as_str(),
                matches!(state_of(t), Some(None) if r.quiet_s >= UNKNOWN_GRACE_S)
                    || matches!(state_of(t), Some(Some(s)) if s.ended()),
            ))
        })
        .collect();

    // Merge the shards.
    let sweeps: Vec<String> = match sweep {
        Some(s) => vec![s.to_string()],
        None => {
            let mut st = store
                .conn
                .prepare("SELECT name FROM sweeps ORDER BY sweep_id")?;
            let names = st
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            names
        }
    };
    for name in &sweeps {
        let dir = shards_dir(&store.path, name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "db")
                    && p.is_file()
                    && p.file_name().is_none_or(|n| n != SEARCH_BOARD)
            })
            .collect();
        store.sort_shards(&mut files)?;
        // The array's early-stopping board: its reports and decisions join the main database's.
        let board = dir.join(SEARCH_BOARD);
        if board.is_file() {
            if let Err(e) = simsweep_core::search::copy_board(&store.conn, &board, name) {
                rec.warnings.push(format!(
                    "cannot merge the early-stopping board {}: {e:#}",
                    board.display()
                ));
            }
        }
        for f in files {
            rec.shards += 1;
            let mut merged = store.merge_shard(&f);
            if merged.is_err() {
                // A task killed mid-commit leaves a journal only a writer can roll back: do that
                // once its task has ended, then read again.
                let run_id = f.file_stem().map(|s| s.to_string_lossy().into_owned());
                let over = run_id
                    .as_deref()
                    .is_some_and(|id| ended.get(id).copied().unwrap_or(true));
                if over && sh::recover_shard(&f).is_ok() {
                    merged = store.merge_shard(&f);
                }
            }
            match merged {
                Ok(runs) => {
                    for m in runs {
                        if m.unread {
                            rec.unread += 1;
                        }
                        if !m.applied {
                            rec.stale += 1;
                        } else if m.changed() {
                            rec.merged.push(m);
                        }
                    }
                }
                Err(e) => rec
                    .warnings
                    .push(format!("cannot merge shard {}: {e}", f.display())),
            }
        }
    }

    // Tasks that ended without a final status in their shard.
    for r in &held {
        let Some(task) = r.task() else { continue };
        let Some(state) = state_of(task) else {
            continue;
        };
        let (status, what) = match &state {
            // Unknown to Slurm: believed only after a quiet minute (no heartbeat, no submission),
            // never for a task just submitted.
            None if r.quiet_s < UNKNOWN_GRACE_S => continue,
            None => (
                "failed",
                format!("slurm job {task} is no longer known to Slurm (cancelled before it started, or its record expired) and its shard has no final status"),
            ),
            Some(s) if s.ended() => (
                if s.state == "CANCELLED" { "cancelled" } else { "failed" },
                format!(
                    "slurm job {task} {}{}",
                    s.state,
                    if s.exit_code.is_empty() {
                        String::new()
                    } else {
                        format!(" (exit code {})", s.exit_code)
                    }
                ),
            ),
            Some(_) => continue,
        };
        let mut error = what;
        if let Some((log, last)) = task_log(&store.path, &r.sweep, task) {
            error.push_str(&format!("; log {}", log.display()));
            if !last.is_empty() {
                error.push_str(&format!(": {last}"));
            }
        }
        if store.settle_slurm_run(r.run_pk, &r.worker, status, &error)? {
            rec.settled
                .push((r.run_id.clone(), status.to_string(), error));
        }
    }
    Ok(rec)
}

/// `simsweep worker TASKS`: run one array task. Exit status 0 done, 1 failed or diverged, 130
/// cancelled (SIGTERM, e.g. Slurm's time limit).
pub fn worker(tasks_file: &Path, index: Option<usize>, job: Option<String>) -> Result<i32> {
    let text = std::fs::read_to_string(tasks_file)
        .with_context(|| format!("reading the task table {}", tasks_file.display()))?;
    let tf: TaskFile = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a simsweep task table", tasks_file.display()))?;
    if tf.version != TASKS_VERSION {
        bail!(
            "{}: task table version {}, this simsweep reads {TASKS_VERSION}",
            tasks_file.display(),
            tf.version
        );
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let index = match index {
        Some(i) => i,
        None => env("SLURM_ARRAY_TASK_ID")
            .ok_or_else(|| anyhow!("no task index: pass --index or run under a Slurm job array (SLURM_ARRAY_TASK_ID)"))?
            .parse()
            .context("SLURM_ARRAY_TASK_ID is not a number")?,
    };
    let job = job.or_else(|| env("SLURM_ARRAY_JOB_ID")).ok_or_else(|| {
        anyhow!("no job id: pass --job or run under a Slurm job array (SLURM_ARRAY_JOB_ID)")
    })?;
    let task = tf
        .tasks
        .iter()
        .find(|t| t.index == index)
        .ok_or_else(|| anyhow!("{}: no task {index}", tasks_file.display()))?;
    let tag = format!("{job}_{index}");
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    println!(
        "simsweep worker: slurm task {tag} on {host}: sweep {}, run {}",
        tf.sweep, task.run_id
    );

    sh::use_rollback_journal();
    std::fs::create_dir_all(&tf.shards_dir)
        .with_context(|| format!("creating {}", tf.shards_dir.display()))?;
    let shard = tf.shards_dir.join(format!("{}.db", task.run_id));
    let sweep = Sweep {
        name: tf.sweep.clone(),
        description: tf.description.clone(),
        file: tf.sweep_file.clone(),
        text: tf.sweep_text.clone(),
        seeds: tf.seeds.clone(),
        swept_keys: tf.swept_keys.clone(),
        runs: vec![PlannedRun {
            id: task.run_id.clone(),
            ordinal: 0,
            seed: task.seed,
            params: task.params.clone(),
            config: task.config.clone(),
            canonical: task.canonical.clone(),
        }],
        warnings: Vec::new(),
        paths: Vec::new(),
        search: tf.search.clone(),
        shuffle_seed: None,
    };
    let mut store = Store::open(&shard)?;
    store.plan(&sweep)?;
    // A task given GPUs trains on one; it never falls back to the CPU without a word.
    let gpu = tf.gpus_per_task > 0;
    if gpu {
        let info = crate::engine::info()?;
        if !info.cuda_available {
            bail!(
                "this task was given {} GPU(s) (--gpus-per-task) but libtorch sees no CUDA device: {}",
                tf.gpus_per_task,
                info.cuda_problem.unwrap_or_else(|| "no GPU is visible to the task either (CUDA_VISIBLE_DEVICES, SLURM_STEP_GPUS, nvidia-smi); check the partition's GPU configuration (gres)".into())
            );
        }
    }
    let device = if gpu { Device::Cuda(0) } else { Device::Cpu };
    let data = serde_json::json!({
        "job": job, "index": index, "host": host,
        "cpus": env("SLURM_CPUS_PER_TASK"), "gpus": tf.gpus_per_task,
        "device": device.to_string(),
    });
    if store.prepare_shard_run(&task.run_id, &tag, &task.status, task.attempts, &data)?
        == ShardStart::AlreadyDone
    {
        println!(
            "simsweep worker: run {} has already ended (done or pruned)",
            task.run_id
        );
        return Ok(0);
    }
    drop(store);
    let cancel = crate::local::install_interrupt_handler();
    let opts = crate::local::ExecOptions {
        devices: vec![device],
        jobs_per_device: 1,
        only: Some(vec![task.run_id.clone()]),
        progress: crate::local::ProgressMode::Lines,
        results_dir: Some(tf.results_dir.clone()),
        // The tasks of the array share one early-stopping board beside their shards.
        board: tf.search.as_ref().map(|_| tf.shards_dir.join(SEARCH_BOARD)),
    };
    let totals = crate::local::run_sweep(&sweep, &shard, &tf.data_dir, &opts, cancel)?;
    Ok(if totals.done + totals.pruned > 0 {
        0
    } else if totals.cancelled > 0 {
        130
    } else if totals.failed + totals.diverged > 0 {
        1
    } else {
        bail!(
            "run {} could not be claimed in its shard {}",
            task.run_id,
            shard.display()
        )
    })
}

/// `simsweep merge [SWEEP]`: print what a reconcile did.
pub fn merge_command(db: &Path, sweep: Option<&str>) -> Result<i32> {
    if !db.is_file() {
        return Err(simsweep_core::BadInput(format!(
            "no database at {} (pass --db)",
            db.display()
        ))
        .into());
    }
    let mut store = Store::open(db)?;
    if let Some(s) = sweep {
        if store.sweep_runs(s)?.is_empty() {
            return Err(simsweep_core::BadInput(format!(
                "no sweep named `{s}` in {}",
                db.display()
            ))
            .into());
        }
    }
    let rec = reconcile(&mut store, sweep)?;
    rec.print_notes();
    let (mut written, mut deleted, mut events, mut rows) = (0, 0, 0, 0);
    for m in &rec.merged {
        written += m.metrics_written;
        deleted += m.metrics_deleted;
        events += m.events_added;
        rows += usize::from(m.row_updated);
        println!(
            "{} ({}): {}{} metric rows written, {} removed, {} events",
            m.run_id,
            m.task
                .as_deref()
                .map_or(String::new(), |t| format!("slurm {t}")),
            if m.row_updated {
                format!("now {}, ", m.shard_status)
            } else {
                String::new()
            },
            m.metrics_written,
            m.metrics_deleted,
            m.events_added
        );
    }
    println!(
        "merged {} shards into {}{}: {} runs changed ({} statuses), {written} metric rows written, {deleted} removed, {events} events; {} shards from earlier submissions skipped; {} runs settled from Slurm's state{}",
        rec.shards,
        db.display(),
        if rec.unread > 0 {
            format!(" ({} unchanged since their last merge, not read)", rec.unread)
        } else {
            String::new()
        },
        rec.merged.len(),
        rows,
        rec.stale,
        rec.settled.len(),
        if rec.released > 0 {
            format!("; {} runs of an interrupted submission given back", rec.released)
        } else {
            String::new()
        }
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_specs() {
        assert_eq!(array_indices("3"), vec![3]);
        assert_eq!(array_indices("0-3%2"), vec![0, 1, 2, 3]);
        assert_eq!(array_indices("2,4-5"), vec![2, 4, 5]);
        assert!(array_indices("").is_empty());
    }

    #[test]
    fn scontrol_lines() {
        let text = "JobId=5 ArrayJobId=4 ArrayTaskId=2-3%2 ArrayTaskThrottle=2 JobName=x JobState=PENDING Reason=JobArrayTaskLimit Dependency=(null) ExitCode=0:0 NodeList= \n\
                    JobId=6 ArrayJobId=4 ArrayTaskId=1 JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15 NodeList=n1 BatchHost=n1\n\
                    JobId=4 ArrayJobId=4 ArrayTaskId=0 JobState=RUNNING Reason=None ExitCode=0:0 NodeList=n2 BatchHost=n2\n";
        let m = parse_scontrol("4", text);
        assert!(parse_scontrol("5", text).is_empty());
        assert_eq!(m.len(), 4);
        assert_eq!(m[&2].state, "PENDING");
        assert_eq!(m[&3].describe(), "PENDING (JobArrayTaskLimit)");
        assert!(m[&1].ended());
        assert_eq!(m[&1].exit_code, "0:15");
        assert_eq!(m[&0].describe(), "RUNNING on n2");
        assert!(!m[&0].ended());
    }

    #[test]
    fn script_has_the_array_options_and_runs_the_worker() {
        let opts = SubmitOptions {
            partition: Some("gpu".into()),
            gpus_per_task: Some(1),
            cpus_per_task: Some(4),
            time: Some("02:00:00".into()),
            array_parallelism: Some(8),
            sbatch_args: vec!["--mem=16G".into()],
            ..Default::default()
        };
        let s = sbatch_script(
            "abl",
            12,
            &opts,
            Path::new("/r/shards/abl/x y"),
            Path::new("/opt/simsweep"),
        );
        for l in [
            "#SBATCH --job-name=simsweep-abl\n",
            "#SBATCH --array=0-11%8\n",
            "#SBATCH --output=\"/r/shards/abl/x y/%A_%a.out\"\n",
            "#SBATCH --partition=gpu\n",
            "#SBATCH --gpus-per-task=1\n",
            "#SBATCH --cpus-per-task=4\n",
            "#SBATCH --time=02:00:00\n",
            "#SBATCH --mem=16G\n",
            "exec /opt/simsweep worker '/r/shards/abl/x y/tasks.json'\n",
        ] {
            assert!(s.contains(l), "{l} in\n{s}");
        }
        assert!(s.starts_with("#!/bin/bash\n#SBATCH"));
    }
}
