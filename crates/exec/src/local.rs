//! The local executor: slots (devices × jobs per device) claim runs atomically; each slot trains
//! its run in its own engine process (`simsweep-engine worker`), reads the run's events from it,
//! forwards them to the one database writer, records how the run ended — including a worker that
//! dies by a signal — and claims the next.
//!
//! A worker sees only its own device (`CUDA_VISIBLE_DEVICES`), gets its share of the CPU threads,
//! runs in its own process group (the front forwards interrupts, once) and is killed by the kernel
//! if the front dies, so none outlives it.

use crate::progress::Progress;
use crate::spec::Sweep;
use crate::store::writer::{MetricRow, Write, Writer};
use crate::store::Store;
use anyhow::{Context, Result};
use simsweep_core::device::Device;
use simsweep_core::events::{Event, Outcome, RunJob, WorkerMessage};
use simsweep_core::search::{Board, Report, Verdict};
use simsweep_core::BadInput;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Interrupts: the first Ctrl-C (or SIGTERM) asks the running run to finish its step, save a `last`
/// checkpoint and stop (it is marked `cancelled` and runs again next time); the second stops at once.
pub fn install_interrupt_handler() -> &'static AtomicBool {
    static CANCEL: AtomicBool = AtomicBool::new(false);
    let installed = ctrlc::set_handler(|| {
        if CANCEL.swap(true, std::sync::atomic::Ordering::SeqCst) {
            eprintln!("\nsimsweep: stopping now");
            // The workers die with the front (PR_SET_PDEATHSIG); kill them first all the same.
            kill_workers(libc::SIGKILL);
            std::process::exit(130);
        }
        eprintln!(
            "\nsimsweep: finishing the current step, then stopping (Ctrl-C again to stop now)"
        );
    });
    if let Err(e) = installed {
        eprintln!("warning: cannot install the Ctrl-C handler: {e}");
    }
    &CANCEL
}

/// The process ids of the running workers, for the interrupt handler.
static WORKERS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn kill_workers(sig: i32) {
    if let Ok(w) = WORKERS.try_lock() {
        for &pid in w.iter() {
            // SAFETY: kill(2) on a pid this process started and has not yet reaped.
            unsafe {
                libc::kill(pid as i32, sig);
            }
        }
    }
}

/// `simsweep run` on this machine: devices × jobs per device, one engine process per run.
#[derive(Debug, Clone)]
pub struct Local {
    /// `--devices` as given (`cpu`, `cuda`, `cuda:N`); empty: cuda:0 where CUDA is available, else
    /// the CPU.
    pub devices: Vec<String>,
    pub jobs_per_device: usize,
    /// `--progress`: auto, lines or quiet.
    pub progress: String,
}

/// CUDA devices the engine sees, and why visible GPUs are unusable (asked once per invocation).
fn cuda_devices_and_problem() -> Result<(i64, Option<String>)> {
    static N: std::sync::OnceLock<(i64, Option<String>)> = std::sync::OnceLock::new();
    if let Some(n) = N.get() {
        return Ok(n.clone());
    }
    let info = crate::engine::info()?;
    let n = if info.cuda_available {
        info.cuda_devices
    } else {
        0
    };
    Ok(N.get_or_init(|| (n, info.cuda_problem)).clone())
}

/// A device named by option `flag`: a CUDA device must be one the engine sees.
fn checked_device(s: &str, flag: &str) -> Result<Device> {
    let device = Device::parse(s).map_err(BadInput::err)?;
    if let Device::Cuda(i) = device {
        let (n, problem) = cuda_devices_and_problem()?;
        if i as i64 >= n {
            return Err(BadInput::err(format!(
                "{flag}: cuda:{i} is not available ({n} CUDA devices){}",
                problem.map_or(String::new(), |p| format!("; {p}"))
            )));
        }
    }
    Ok(device)
}

/// Where to train when no device is named: cuda:0 where the engine sees CUDA, else the CPU — but
/// never the CPU silently where GPUs are visible that libtorch cannot use (an old driver): that
/// is an error naming the driver, libtorch's CUDA and the fix.
fn default_device() -> Result<Device> {
    let (n, problem) = cuda_devices_and_problem()?;
    if n > 0 {
        return Ok(Device::Cuda(0));
    }
    if let Some(p) = problem {
        anyhow::bail!(p);
    }
    Ok(Device::Cpu)
}

/// `--device` of the front's benchmarks: as given (a CUDA device must exist), else
/// [`default_device`].
pub fn resolve_device(d: Option<&str>) -> Result<Device> {
    match d {
        Some(s) => checked_device(s, "--device"),
        None => default_device(),
    }
}

impl crate::Executor for Local {
    fn run(&self, req: &crate::Request<'_>) -> Result<i32> {
        let mut devs = Vec::new();
        for d in &self.devices {
            let device = checked_device(d, "--devices")?;
            if devs.contains(&device) {
                return Err(BadInput(format!(
                    "--devices: {d} is listed twice (use --jobs-per-device for several runs per device)"
                ))
                .into());
            }
            devs.push(device);
        }
        if devs.is_empty() {
            devs.push(default_device()?);
        }
        if self.jobs_per_device == 0 {
            return Err(BadInput("--jobs-per-device must be at least 1".into()).into());
        }
        let progress = match self.progress.as_str() {
            "auto" => ProgressMode::Auto,
            "lines" => ProgressMode::Lines,
            "quiet" => ProgressMode::Quiet,
            other => {
                return Err(BadInput(format!(
                    "--progress: unknown mode `{other}` (auto, lines, quiet)"
                ))
                .into())
            }
        };
        let (sweep, summary) = crate::load_and_plan(req.file, req.db, req.data_dir)?;
        let requeued = if req.retry_failed {
            Store::open(req.db)?.requeue(&sweep.name, &["failed", "diverged"])?
        } else {
            0
        };
        println!(
            "sweep {}: {} runs ({} to run{}, {} done, {} failed) on {}{}",
            sweep.name,
            summary.total,
            summary.new + summary.pending + summary.cancelled + requeued,
            if requeued > 0 {
                format!(" incl. {requeued} retried")
            } else {
                String::new()
            },
            summary.done,
            summary.failed - requeued.min(summary.failed),
            devs.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if self.jobs_per_device > 1 {
                format!(" × {} jobs each", self.jobs_per_device)
            } else {
                String::new()
            }
        );
        let cancel = install_interrupt_handler();
        let opts = ExecOptions {
            devices: devs,
            jobs_per_device: self.jobs_per_device,
            only: None,
            progress,
            results_dir: None,
            board: sweep.search.as_ref().map(|_| req.db.to_path_buf()),
        };
        let totals = run_sweep(&sweep, req.db, req.data_dir, &opts, cancel)?;
        println!(
            "sweep {}: {} done, {} failed, {} diverged, {} cancelled{} in this invocation → {}",
            sweep.name,
            totals.done,
            totals.failed,
            totals.diverged,
            totals.cancelled,
            if sweep.search.is_some() {
                format!(", {} pruned", totals.pruned)
            } else {
                String::new()
            },
            req.db.display()
        );
        // 130: interrupted (as a shell reports SIGINT); 1: a run failed or diverged.
        Ok(if totals.cancelled > 0 {
            130
        } else if totals.failed + totals.diverged > 0 {
            1
        } else {
            0
        })
    }
}

pub use crate::progress::ProgressMode;

/// What `run_sweep` executes, where.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Devices to train on; one slot per device and job.
    pub devices: Vec<Device>,
    /// Runs trained at the same time on each device (one engine process each).
    pub jobs_per_device: usize,
    /// Only these run ids (a Slurm worker executes exactly its own run); `None`: every claimable run.
    pub only: Option<Vec<String>>,
    pub progress: ProgressMode,
    /// Where run folders go, `<results_dir>/<sweep>/<run id>`; None: the database's folder (a Slurm
    /// worker writes a shard under `shards/` but its run folders beside the main database).
    pub results_dir: Option<PathBuf>,
    /// The early-stopping board of a sweep with `[search]` ([`simsweep_core::search`]): the
    /// results database here, a Slurm sweep's `search.db` for array tasks.
    pub board: Option<PathBuf>,
}

impl ExecOptions {
    pub fn on(device: Device) -> Self {
        ExecOptions {
            devices: vec![device],
            jobs_per_device: 1,
            only: None,
            progress: ProgressMode::Auto,
            results_dir: None,
            board: None,
        }
    }
}

/// Totals of one `run` invocation.
#[derive(Debug, Default)]
pub struct RunTotals {
    pub done: usize,
    pub failed: usize,
    pub diverged: usize,
    pub cancelled: usize,
    pub pruned: usize,
}

/// What the slots of one invocation share.
struct Shared<'a> {
    sweep: &'a Sweep,
    db: &'a Path,
    data_dir: &'a Path,
    opts: &'a ExecOptions,
    cancel: &'a AtomicBool,
    writer: &'a Writer,
    progress: &'a Progress,
    totals: Mutex<RunTotals>,
    worker: String,
    /// Swept keys of each run, for its label.
    params: HashMap<&'a str, String>,
    /// The engine binary.
    engine: PathBuf,
    /// libtorch threads of each worker.
    threads: usize,
}

/// The CPU threads each of `slots` workers gets: the cores granted to this process
/// (`SIMSWEEP_THREADS` or the container's), shared out, at least one.
pub fn worker_threads(slots: usize) -> usize {
    let granted = std::env::var("SIMSWEEP_THREADS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    (granted / slots.max(1)).max(1)
}

/// Execute the claimable runs of a planned sweep (pending, cancelled, orphaned): one slot per
/// device and job, each claiming runs until none is left. Runs interrupted before resume from
/// their last checkpoint.
pub fn run_sweep(
    sweep: &Sweep,
    db: &Path,
    data_dir: &Path,
    opts: &ExecOptions,
    cancel: &AtomicBool,
) -> Result<RunTotals> {
    anyhow::ensure!(!opts.devices.is_empty(), "no device to run on");
    let store = Store::open(db)?;
    let claimable = store.claimable(&sweep.name, opts.only.as_deref())?;
    drop(store);
    let slots: Vec<Device> = opts
        .devices
        .iter()
        .flat_map(|d| std::iter::repeat_n(*d, opts.jobs_per_device.max(1)))
        .collect();
    let engine = crate::engine::locate()?;
    let threads = worker_threads(slots.len());
    let progress = Progress::new(opts.progress, &sweep.name, claimable, slots.len());
    let writer = Writer::spawn(db)?;
    let params = sweep
        .runs
        .iter()
        .map(|r| {
            let p = sweep
                .display_keys()
                .iter()
                .map(|k| format!("{k}={}", crate::spec::value::display(&r.params[k])))
                .collect::<Vec<_>>()
                .join(" ");
            (r.id.as_str(), p)
        })
        .collect();
    let shared = Shared {
        sweep,
        db,
        data_dir,
        opts,
        cancel,
        writer: &writer,
        progress: &progress,
        totals: Mutex::new(RunTotals::default()),
        worker: crate::store::worker_id(),
        params,
        engine,
        threads,
    };
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = slots
            .iter()
            .enumerate()
            .map(|(slot, &device)| {
                let shared = &shared;
                std::thread::Builder::new()
                    .name(format!("simsweep-slot-{slot}"))
                    .spawn_scoped(s, move || slot_loop(shared, slot, device))
                    .expect("spawning a runner thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|p| {
                    Err(anyhow::anyhow!(
                        "a runner thread panicked: {}",
                        simsweep_core::error::panic_message(p.as_ref())
                    ))
                })
            })
            .collect()
    });
    progress.finish();
    let totals = shared.totals.into_inner().expect("totals");
    let flushed = writer.finish();
    for r in results {
        r?;
    }
    flushed?;
    Ok(totals)
}

/// One slot: claim, train, record, until nothing is left or the sweep is cancelled.
fn slot_loop(sh: &Shared<'_>, slot: usize, device: Device) -> Result<()> {
    let mut store = Store::open(sh.db)?;
    let total_runs = sh.sweep.runs.len();
    // Absolute, so the checkpoint paths recorded in the database do not depend on where the next
    // `run` is started from.
    let results_base =
        std::path::absolute(sh.opts.results_dir.as_deref().unwrap_or(results_dir(sh.db)))
            .context("resolving the results directory")?;
    let token_cache = simsweep_core::tokcache::dir_for(&results_base);
    let results = results_base.join(&sh.sweep.name);
    let mut board = match (&sh.sweep.search, &sh.opts.board) {
        (Some(search), Some(path)) => Some((search, Board::open(path)?)),
        _ => None,
    };
    while !sh.cancel.load(Ordering::SeqCst) {
        // A pending (or interrupted) seed of a setting pruned meanwhile is marked pruned in the
        // claiming transaction, before anything of it is cleared, and not started.
        let sweep_name = &sh.sweep.name;
        let mut board_error = None;
        let mut pruned_setting = |run_id: &str, config: &BTreeMap<String, serde_json::Value>| {
            let (_, b) = board.as_ref()?;
            let setting = simsweep_core::spec::search::setting_id(sweep_name, config);
            match b.pruned(sweep_name, &setting) {
                Ok(d) => d.map(|d| (d.pruned_setting(), (d.run_id == run_id).then_some(d.step))),
                Err(e) => {
                    board_error = Some(e);
                    None
                }
            }
        };
        let (claim, skipped) = store.claim_next_with(
            &sh.sweep.name,
            &sh.worker,
            &device.to_string(),
            sh.opts.only.as_deref(),
            &mut pruned_setting,
        )?;
        if let Some(e) = board_error {
            // The claimed run, if any, goes back to the pool with the next `run`.
            return Err(e);
        }
        for (pk, run_id, why) in skipped {
            // An interrupted run keeps its best checkpoint as `best/`; its resumable ones go.
            settle_pruned_files(&store, pk, &results.join(&run_id))?;
            sh.progress.line(&format!("{run_id} pruned ({why})"));
            sh.totals.lock().expect("totals").pruned += 1;
            sh.progress.finish_run(slot, true);
        }
        let Some(claim) = claim else {
            break;
        };
        let label = format!("[{}/{}] {}", claim.ordinal + 1, total_runs, claim.run_id);
        let setting = simsweep_core::spec::search::setting_id(&sh.sweep.name, &claim.config);
        let params = sh
            .params
            .get(claim.run_id.as_str())
            .cloned()
            .unwrap_or_default();
        let resuming = claim
            .resume
            .as_ref()
            .map_or(String::new(), |(k, _)| format!(" (resuming from step {k})"));
        sh.progress.line(&format!(
            "{label} {params}{resuming}{}",
            if sh.opts.devices.len() > 1 || sh.opts.jobs_per_device > 1 {
                format!(" on {device}")
            } else {
                String::new()
            }
        ));
        let out_dir = results.join(&claim.run_id);
        let eval_every = claim
            .config
            .get("eval.every")
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let mut attempt = |store: &mut Store, resume: Option<&Path>| {
            let job = RunJob {
                run_id: claim.run_id.clone(),
                config: claim.config.clone(),
                sweep_file: sh.sweep.file.clone(),
                data_dir: sh.data_dir.to_path_buf(),
                out_dir: out_dir.clone(),
                device: match device {
                    Device::Cpu => "cpu".into(),
                    Device::Cuda(_) => "cuda:0".into(),
                },
                resume: resume.map(Path::to_path_buf),
                token_cache: token_cache.clone(),
                verdicts: board.is_some(),
            };
            execute(
                sh,
                store,
                slot,
                &job,
                eval_every,
                claim.run_pk,
                device,
                &label,
                board.as_mut().map(|(se, b)| Judge {
                    search: se,
                    board: b,
                    setting: &setting,
                    decision: None,
                    polled: Instant::now(),
                    stdin: None,
                }),
            )
        };
        let mut result = attempt(&mut store, claim.resume.as_ref().map(|(_, d)| d.as_path()));
        // A checkpoint that cannot be resumed (damaged, or from another version): start over.
        if let Some(re) = result
            .as_ref()
            .err()
            .and_then(|e| e.downcast_ref::<ResumeFailed>())
        {
            let why = format!("{re}; starting over from step 0");
            sh.progress.line(&format!("{label} {why}"));
            sh.writer.flush()?;
            store.restart_run(claim.run_pk, &why)?;
            result = attempt(&mut store, None);
        }
        sh.writer.flush()?;
        let mut totals = sh.totals.lock().expect("totals");
        let ok = matches!(
            result,
            Ok((Outcome::Done { .. } | Outcome::Stopped { .. }, _, _))
        );
        match result {
            Ok((Outcome::Stopped { step }, summary, Some(why))) => {
                store.finish_run(claim.run_pk, "pruned", Some(step), Some(&why))?;
                sh.progress
                    .line(&format!("{label} pruned at step {step}: {summary}"));
                totals.pruned += 1;
            }
            Ok((Outcome::Stopped { step }, _, None)) => {
                let msg = format!("the engine stopped at step {step} on a SIGUSR1 that early stopping did not send");
                store.finish_run(claim.run_pk, "failed", Some(step), Some(&msg))?;
                sh.progress.line(&format!("{label} failed: {msg}"));
                totals.failed += 1;
            }
            Ok((Outcome::Done { steps }, summary, _)) => {
                store.finish_run(claim.run_pk, "done", Some(steps), None)?;
                sh.progress.line(&format!("{label} done: {summary}"));
                totals.done += 1;
            }
            Ok((Outcome::Diverged { step, detail }, _, _)) => {
                store.finish_run(claim.run_pk, "diverged", Some(step), Some(&detail))?;
                sh.progress.line(&format!("{label} diverged: {detail}"));
                totals.diverged += 1;
            }
            Ok((Outcome::Cancelled { step }, _, _)) => {
                store.finish_run(claim.run_pk, "cancelled", Some(step), Some("cancelled"))?;
                sh.progress
                    .line(&format!("{label} cancelled at step {step} (resumable)"));
                totals.cancelled += 1;
            }
            Err(e) => {
                let msg = format!("{e:#}");
                store.finish_run(claim.run_pk, "failed", None, Some(&msg))?;
                sh.progress.line(&format!("{label} failed: {msg}"));
                totals.failed += 1;
            }
        }
        drop(totals);
        sh.progress.finish_run(slot, ok);
    }
    Ok(())
}

/// The files of a run pruned before it could resume: its `best-<step>/` becomes `best/` (as the
/// engine does at a run's end) and its `last-<step>/` checkpoints are removed.
fn settle_pruned_files(store: &Store, run_pk: i64, out_dir: &Path) -> Result<()> {
    use rusqlite::OptionalExtension;
    let best: Option<String> = store
        .conn
        .query_row(
            "SELECT path FROM checkpoints WHERE run_pk = ?1 AND kind = 'best'",
            [run_pk],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(from) = best.map(PathBuf::from) {
        if from != out_dir.join(simsweep_core::BEST_DIR) && from.is_dir() {
            let to = simsweep_core::promote_best(out_dir, &from)?;
            store.conn.execute(
                "UPDATE checkpoints SET path = ?2 WHERE run_pk = ?1 AND kind = 'best'",
                rusqlite::params![run_pk, to.display().to_string()],
            )?;
        }
    }
    if let Ok(entries) = std::fs::read_dir(out_dir) {
        for e in entries.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(simsweep_core::LAST_PREFIX)
                && e.path().is_dir()
            {
                std::fs::remove_dir_all(e.path())
                    .with_context(|| format!("removing {}", e.path().display()))?;
            }
        }
    }
    Ok(())
}

/// The run's checkpoint cannot be resumed from (the worker said so): start it over.
#[derive(Debug)]
pub struct ResumeFailed(pub String);

impl std::fmt::Display for ResumeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResumeFailed {}

/// How often a running run's heartbeat is refreshed even when no metrics arrive (a long
/// evaluation), well inside [`crate::store::STALE_AFTER_SECS`].
const HEARTBEAT: Duration = Duration::from_secs(30);

/// Lines of a worker's standard error kept for the report of a crash.
const STDERR_TAIL: usize = 12;

/// The name of a signal that ends processes.
fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGSEGV => "SIGSEGV (segmentation fault)".into(),
        libc::SIGABRT => "SIGABRT (abort)".into(),
        libc::SIGKILL => "SIGKILL (killed: the kernel's out-of-memory killer, or kill -9)".into(),
        libc::SIGBUS => "SIGBUS (bus error)".into(),
        libc::SIGILL => "SIGILL (illegal instruction)".into(),
        libc::SIGFPE => "SIGFPE (arithmetic exception)".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        other => format!("signal {other}"),
    }
}

/// The `CUDA_VISIBLE_DEVICES` of the worker on `cuda:i`: it sees only that GPU, as cuda:0. Where
/// the front's own `CUDA_VISIBLE_DEVICES` already narrows the machine (a Slurm allocation), `i`
/// indexes that list.
fn visible_device(i: usize, front: Option<&str>) -> String {
    front
        .and_then(|v| v.split(',').map(str::trim).nth(i).map(str::to_string))
        .unwrap_or_else(|| i.to_string())
}

/// Start the engine worker for one job.
fn spawn_worker(sh: &Shared<'_>, job: &RunJob, device: Device) -> Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new(&sh.engine);
    c.arg("worker")
        .env("SIMSWEEP_THREADS", sh.threads.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Device::Cuda(i) = device {
        let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        c.env(
            "CUDA_VISIBLE_DEVICES",
            visible_device(i, visible.as_deref()),
        );
    }
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            // Killed when the front's thread that started it ends (the slot outlives its
            // worker, and a killed front ends every slot); its own process group, so a Ctrl-C
            // at the terminal reaches the front alone, which forwards it once.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    let mut child = c
        .spawn()
        .with_context(|| format!("starting the engine {}", sh.engine.display()))?;
    let line = serde_json::to_string(job).context("encoding the job")?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    std::io::Write::write_all(&mut stdin, format!("{line}\n").as_bytes())
        .context("sending the job to the engine")?;
    // Early stopping: the worker waits for a verdict after each evaluation.
    if job.verdicts {
        child.stdin = Some(stdin);
    }
    Ok(child)
}

/// Train one run in an engine process; forward its events to the writer and report progress.
#[allow(clippy::too_many_arguments)]
fn execute(
    sh: &Shared<'_>,
    store: &mut Store,
    slot: usize,
    job: &RunJob,
    eval_every: i64,
    run_pk: i64,
    device: Device,
    label: &str,
    judge: Option<Judge<'_>>,
) -> Result<(Outcome, String, Option<String>)> {
    let started = Instant::now();
    let mut child = spawn_worker(sh, job, device)?;
    let pid = child.id();
    WORKERS.lock().expect("workers").push(pid);
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut judge = judge;
    if let Some(j) = judge.as_mut() {
        j.stdin = child.stdin.take();
    }
    let (tx, rx) = mpsc::channel::<Result<WorkerMessage, String>>();
    let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
    let result = std::thread::scope(|s| -> Result<(Outcome, String, Option<String>)> {
        // Owned here: on an early return the worker's standard input closes with it, so a worker
        // waiting for a verdict reads its end instead of waiting for ever.
        let mut judge = judge;
        s.spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let msg = serde_json::from_str::<WorkerMessage>(&line)
                    .map_err(|e| format!("unreadable line from the engine ({e}): {line}"));
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        let tail2 = Arc::clone(&tail);
        s.spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                let mut t = tail2.lock().expect("stderr tail");
                if t.len() == STDERR_TAIL {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
        let mut rec = Recorder::new(sh, slot, run_pk, &job.run_id, label, eval_every, device);
        let mut end: Option<Result<Outcome, (String, bool)>> = None;
        let mut forwarded = false;
        loop {
            if sh.cancel.load(Ordering::SeqCst) && !forwarded {
                forwarded = true;
                // SAFETY: kill(2) on our own, not yet reaped, child.
                unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                }
            }
            if let Some(j) = judge.as_mut() {
                j.poll(&rec, pid)?;
            }
            let msg = match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    rec.heartbeat_if_older(store, HEARTBEAT)?;
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            match msg {
                Ok(WorkerMessage::Event(ev)) => {
                    let judged = match (&ev, judge.as_mut()) {
                        (Event::Metrics(rows), Some(j)) => rows
                            .iter()
                            .filter(|(_, name, _)| *name == j.search.metric)
                            .map(|(step, _, v)| (*step, *v))
                            .collect(),
                        _ => Vec::new(),
                    };
                    rec.event(ev, store)?;
                    if let Some(j) = judge.as_mut() {
                        for (step, v) in judged {
                            j.judge(&rec, pid, step, v)?;
                            j.answer();
                        }
                    }
                }
                Ok(WorkerMessage::End(o)) => end = Some(Ok(o)),
                Ok(WorkerMessage::Error { message, resume }) => end = Some(Err((message, resume))),
                Err(bad) => end = Some(Err((bad, false))),
            }
        }
        let status = child.wait().context("waiting for the engine")?;
        rec.bar = None;
        let outcome = match end {
            Some(Ok(o)) => o,
            Some(Err((message, true))) => return Err(ResumeFailed(message).into()),
            Some(Err((message, false))) => anyhow::bail!("{message}"),
            None => {
                use std::os::unix::process::ExitStatusExt;
                let how = match (status.signal(), status.code()) {
                    (Some(sig), _) => format!("killed by {}", signal_name(sig)),
                    (None, Some(code)) => format!("exited with status {code}"),
                    (None, None) => format!("ended ({status})"),
                };
                let tail = tail.lock().expect("stderr tail");
                let last = if tail.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; its last standard error lines:\n{}",
                        tail.iter().cloned().collect::<Vec<_>>().join("\n")
                    )
                };
                anyhow::bail!(
                    "the engine process (pid {pid}) {how} at step {}{last}",
                    rec.step_now
                )
            }
        };
        let why = judge.and_then(|j| j.decision);
        Ok((outcome, rec.summary(started.elapsed().as_secs_f64()), why))
    });
    WORKERS.lock().expect("workers").retain(|&p| p != pid);
    result
}

/// Early stopping on the front: each report of the search metric goes to the board, which
/// decides; a pruned run's worker is told to stop (SIGUSR1). While training, the board is also
/// polled, so that a seed learns when another seed of its setting got the setting pruned.
struct Judge<'b> {
    search: &'b simsweep_core::spec::search::Search,
    board: &'b mut Board,
    setting: &'b str,
    /// Why the run was stopped, once it was told to.
    decision: Option<String>,
    polled: Instant,
    /// The worker's standard input, where each evaluation's verdict goes.
    stdin: Option<std::process::ChildStdin>,
}

/// How often a training run asks the board whether its setting was pruned by another seed.
const BOARD_POLL: Duration = Duration::from_secs(2);

impl Judge<'_> {
    fn judge(&mut self, rec: &Recorder<'_, '_>, pid: u32, step: i64, value: f64) -> Result<()> {
        // The evaluation at step 0 scores the model before training: not a report.
        if self.decision.is_some() || step < 1 {
            return Ok(());
        }
        let sh = rec.sh;
        let verdict = self.board.report(
            self.search,
            &Report {
                sweep: &sh.sweep.name,
                setting: self.setting,
                run_id: rec.run_id,
                step,
                value,
                total_steps: rec.total_steps,
            },
        )?;
        match &verdict {
            Verdict::None => {}
            Verdict::Decided(d) => {
                sh.writer.sender().send(Write::Event {
                    run_pk: Some(rec.run_pk),
                    sweep_id: None,
                    kind: "search".into(),
                    message: format!("decision {}: {}", d.id, d.message),
                    data: Some(decision_json(d)),
                })?;
                if !d.prune && sh.progress.lines() {
                    sh.progress.line(&format!("{} {}", rec.label, d.message));
                }
            }
            Verdict::AlreadyPruned(_) => {}
        }
        if let Some(d) = verdict.prune() {
            let why = if d.run_id == rec.run_id && matches!(verdict, Verdict::Decided(_)) {
                format!("decision {}: {}", d.id, d.message)
            } else {
                d.pruned_setting()
            };
            self.stop(rec, pid, why, false);
        }
        Ok(())
    }

    /// Tell the worker, waiting after an evaluation, whether to go on. A worker that has ended
    /// meanwhile (a closed pipe) needs no answer.
    fn answer(&mut self) {
        if let Some(stdin) = self.stdin.as_mut() {
            let verdict: &[u8] = if self.decision.is_some() {
                b"stop\n"
            } else {
                b"continue\n"
            };
            let _ = std::io::Write::write_all(stdin, verdict)
                .and_then(|_| std::io::Write::flush(stdin));
        }
    }

    fn poll(&mut self, rec: &Recorder<'_, '_>, pid: u32) -> Result<()> {
        // Not before the worker said it started: its SIGUSR1 handler is installed by then.
        if self.decision.is_some() || !rec.started || self.polled.elapsed() < BOARD_POLL {
            return Ok(());
        }
        self.polled = Instant::now();
        if let Some(d) = self.board.pruned(&rec.sh.sweep.name, self.setting)? {
            self.stop(rec, pid, d.pruned_setting(), true);
        }
        Ok(())
    }

    /// Stop the run: a worker waiting for this evaluation's verdict gets `stop`; one training
    /// (told by a poll) gets SIGUSR1 and stops after its current step.
    fn stop(&mut self, rec: &Recorder<'_, '_>, pid: u32, why: String, signal: bool) {
        rec.sh
            .progress
            .line(&format!("{} pruning: {why}", rec.label));
        if signal {
            // SAFETY: kill(2) on our own, not yet reaped, child.
            unsafe {
                libc::kill(pid as i32, libc::SIGUSR1);
            }
        }
        self.decision = Some(why);
    }
}

fn decision_json(d: &simsweep_core::search::Decision) -> String {
    serde_json::json!({
        "decision": d.id, "method": d.method.name(), "run_id": d.run_id, "step": d.step,
        "rung": d.rung, "value": d.value, "threshold": d.threshold, "compared": d.compared,
        "seeds": d.seeds, "verdict": if d.prune { "prune" } else { "continue" },
    })
    .to_string()
}

/// What one run's events do on the front: rows to the writer, progress bars and lines, heartbeats.
struct Recorder<'s, 'a> {
    sh: &'s Shared<'a>,
    slot: usize,
    run_pk: i64,
    run_id: &'s str,
    /// The worker reported `Started` (its signal handlers are installed).
    started: bool,
    label: &'s str,
    eval_every: i64,
    names: HashMap<String, Arc<str>>,
    last: HashMap<String, (i64, f64)>,
    total_steps: i64,
    bar: Option<crate::progress::RunBar<'s>>,
    printed: i64,
    eval_printed: i64,
    probe_secs: f64,
    step_now: i64,
    /// When the run's heartbeat (and step) was last written.
    beat: Instant,
    /// The device the front gave the run (the worker sees its GPU as cuda:0).
    device: Device,
}

impl<'s, 'a> Recorder<'s, 'a> {
    fn new(
        sh: &'s Shared<'a>,
        slot: usize,
        run_pk: i64,
        run_id: &'s str,
        label: &'s str,
        eval_every: i64,
        device: Device,
    ) -> Self {
        Recorder {
            sh,
            slot,
            run_pk,
            run_id,
            started: false,
            label,
            eval_every,
            names: HashMap::new(),
            last: HashMap::new(),
            total_steps: 1,
            bar: None,
            printed: -1,
            eval_printed: -1,
            probe_secs: 0.0,
            step_now: 0,
            beat: Instant::now(),
            device,
        }
    }

    /// Write the heartbeat with the current step when the last one is older than `every`.
    fn heartbeat_if_older(&mut self, store: &mut Store, every: Duration) -> Result<()> {
        if self.beat.elapsed() >= every {
            store.heartbeat(self.run_pk, self.step_now)?;
            self.beat = Instant::now();
        }
        Ok(())
    }

    fn rows(&mut self, rows: Vec<(i64, i64, String, f64)>) -> Vec<MetricRow> {
        rows.into_iter()
            .map(|(step, layer, name, value)| {
                let n = self
                    .names
                    .entry(name)
                    .or_insert_with_key(|k| Arc::from(k.as_str()))
                    .clone();
                MetricRow {
                    run_pk: self.run_pk,
                    step,
                    layer,
                    name: n,
                    value,
                }
            })
            .collect()
    }

    /// Handle one event.
    fn event(&mut self, ev: Event, store: &mut Store) -> Result<()> {
        let sink = self.sh.writer.sender();
        let (sh, label) = (self.sh, self.label);
        match ev {
            Event::Started {
                device: _,
                parameters,
                examples,
                skipped_lines,
                total_steps: t,
                tokens_cached,
                weights_cached,
                resumed_from,
            } => {
                self.total_steps = t;
                self.started = true;
                store.set_total_steps(self.run_pk, t)?;
                let b = self.bar.insert(sh.progress.start_run(self.slot, label, t));
                if let Some(k) = resumed_from {
                    self.step_now = k;
                    self.printed = k;
                    b.update(k, None, None);
                }
                let reused = match (tokens_cached, weights_cached) {
                    (true, true) => ", tokens and weights reused",
                    (true, false) => ", tokens reused",
                    (false, true) => ", weights reused",
                    (false, false) => "",
                };
                let device = self.device;
                sh.progress.line(&format!(
                    "{label} {device}: {parameters} parameters, {examples} examples ({skipped_lines} lines skipped{reused}), {t} steps"
                ));
                sink.send(Write::Event {
                    run_pk: Some(self.run_pk),
                    sweep_id: None,
                    kind: "setup".into(),
                    message: format!(
                        "{device}, {parameters} parameters, {examples} examples, {t} steps{reused}"
                    ),
                    data: None,
                })?;
            }
            Event::Metrics(rows) => {
                let mut max_step = None;
                for (step, name, value) in &rows {
                    max_step = max_step.max(Some(*step));
                    self.last.insert(name.clone(), (*step, *value));
                }
                let batch = self.rows(rows.into_iter().map(|(s, n, v)| (s, -1, n, v)).collect());
                sink.send(Write::Metrics(batch))?;
                let Some(step) = max_step else {
                    return Ok(());
                };
                let total_steps = self.total_steps;
                self.step_now = step.min(total_steps);
                // `status` and `runs` show the step within 2 s; the last step at once.
                let every = if step >= total_steps {
                    Duration::ZERO
                } else {
                    Duration::from_secs(2)
                };
                self.heartbeat_if_older(store, every)?;
                let last = &self.last;
                let evaluated = last.get("stsb_dev").is_some_and(|(s, _)| *s == step);
                if let Some(b) = self.bar.as_mut() {
                    b.update(
                        self.step_now,
                        last.get("loss").map(|v| v.1),
                        evaluated.then(|| last["stsb_dev"].1),
                    );
                }
                if !sh.progress.lines() {
                    return Ok(());
                }
                // One line per evaluation, and about every tenth of the run otherwise (not on
                // steps about to be evaluated: their evaluation line follows).
                let will_eval =
                    (self.eval_every > 0 && step % self.eval_every == 0) || step >= total_steps;
                let every = (total_steps / 10).max(1);
                let periodic = step / every > self.printed / every;
                if periodic {
                    self.printed = step;
                }
                if (evaluated && step != self.eval_printed)
                    || (periodic && !will_eval && !evaluated)
                {
                    if evaluated {
                        self.eval_printed = step;
                    }
                    let show = |k: &str| {
                        last.get(k)
                            .map(|(_, v)| format!(" {k} {v:.4}"))
                            .unwrap_or_default()
                    };
                    sh.progress.line(&format!(
                        "{label} step {}/{total_steps}{}{}{}{}",
                        self.step_now,
                        show("loss"),
                        if evaluated {
                            show("stsb_dev")
                        } else {
                            String::new()
                        },
                        show("pos_cos"),
                        last.get("tokens_per_s")
                            .map_or(String::new(), |v| format!(" {:.0} tok/s", v.1))
                    ));
                }
                return Ok(());
            }
            Event::LayerMetrics(rows) => {
                for (step, layer, name, value) in &rows {
                    if *layer == -1 {
                        if name == "probe_seconds" {
                            self.probe_secs += value;
                        }
                        self.last.insert(name.clone(), (*step, *value));
                    }
                }
                let batch = self.rows(rows);
                sink.send(Write::Metrics(batch))?;
            }
            Event::Checkpoint {
                kind,
                step,
                path,
                metric,
                value,
            } => {
                sink.send(Write::Checkpoint {
                    run_pk: self.run_pk,
                    kind,
                    step,
                    path: path.display().to_string(),
                    metric,
                    value,
                })?;
            }
            Event::Note { kind, message } => {
                sink.send(Write::Event {
                    run_pk: Some(self.run_pk),
                    sweep_id: None,
                    kind,
                    message,
                    data: None,
                })?;
            }
        }
        Ok(())
    }

    /// The line printed when the run is done: wall time, probe share, headline scores.
    fn summary(&self, wall: f64) -> String {
        let mut summary = format!(
            "{wall:.1} s (probes {:.1} s, {:.1} %)",
            self.probe_secs,
            100.0 * self.probe_secs / wall.max(1e-9)
        );
        for k in simsweep_core::query::HEADLINES.iter().map(|h| h.metric) {
            if let Some((_, v)) = self.last.get(k) {
                summary.push_str(&format!(", {k} {v:.2}"));
            }
        }
        summary
    }
}

/// Where a sweep's run outputs go: `<db folder>/<sweep>/<run id>`.
pub fn run_dir(db: &Path, sweep: &str, run_id: &str) -> PathBuf {
    results_dir(db).join(sweep).join(run_id)
}

/// The folder of the database, where run outputs go (`.` for a bare file name).
pub fn results_dir(db: &Path) -> &Path {
    match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_sees_its_own_gpu_through_the_fronts_list() {
        assert_eq!(visible_device(1, None), "1");
        assert_eq!(visible_device(1, Some("4,6")), "6");
        assert_eq!(visible_device(0, Some("GPU-1a2b, GPU-3c4d")), "GPU-1a2b");
        assert_eq!(visible_device(3, Some("4,6")), "3");
    }

    #[test]
    fn signals_are_named() {
        assert_eq!(signal_name(libc::SIGSEGV), "SIGSEGV (segmentation fault)");
        assert!(signal_name(libc::SIGKILL).contains("out-of-memory killer"));
        assert_eq!(signal_name(64), "signal 64");
    }

    #[test]
    fn each_worker_gets_its_share_of_the_threads() {
        // SIMSWEEP_THREADS is the budget of the whole invocation.
        std::env::set_var("SIMSWEEP_THREADS", "8");
        assert_eq!(worker_threads(1), 8);
        assert_eq!(worker_threads(3), 2);
        assert_eq!(worker_threads(16), 1);
        std::env::remove_var("SIMSWEEP_THREADS");
    }
}
