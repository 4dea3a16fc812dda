//! Executing a sweep's runs: slots (devices × jobs per device) claim runs atomically, train each on
//! a thread, forward its events to the one database writer, record how it ended, repeat.

use crate::progress::Progress;
use crate::spec::config::RunConfig;
use crate::spec::Sweep;
use crate::store::writer::{MetricRow, Write, Writer};
use crate::store::Store;
use crate::train::{self, Event, Outcome};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tch::Device;

/// Interrupts: the first Ctrl-C (or SIGTERM) asks the running run to finish its step, save a `last`
/// checkpoint and stop (it is marked `cancelled` and runs again next time); the second stops at once.
pub fn install_interrupt_handler() -> &'static AtomicBool {
    static CANCEL: AtomicBool = AtomicBool::new(false);
    let installed = ctrlc::set_handler(|| {
        if CANCEL.swap(true, std::sync::atomic::Ordering::SeqCst) {
            eprintln!("\nsimsweep: stopping now");
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

/// Parse `cpu`, `cuda`, `cuda:N`.
pub fn parse_device(s: &str) -> Result<Device, String> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(Device::Cuda)
            .ok_or_else(|| format!("unknown device `{s}`: expected cpu, cuda or cuda:N")),
    }
}

pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// Bars when stdout is a terminal, lines otherwise.
    #[default]
    Auto,
    /// Plain lines (logs, CI, Slurm output files).
    Lines,
    /// Nothing but errors.
    Quiet,
}

/// What `run_sweep` executes, where.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Devices to train on; one slot per device and job.
    pub devices: Vec<Device>,
    /// Runs trained at the same time on each device (threads of this process).
    pub jobs_per_device: usize,
    /// Only these run ids (a Slurm worker executes exactly its own run); `None`: every claimable run.
    pub only: Option<Vec<String>>,
    pub progress: ProgressMode,
    /// Where run folders go, `<results_dir>/<sweep>/<run id>`; None: the database's folder (a Slurm
    /// worker writes a shard under `shards/` but its run folders beside the main database).
    pub results_dir: Option<PathBuf>,
}

impl ExecOptions {
    pub fn on(device: Device) -> Self {
        ExecOptions {
            devices: vec![device],
            jobs_per_device: 1,
            only: None,
            progress: ProgressMode::Auto,
            results_dir: None,
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
                        panic_message(&p)
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
    let results = std::path::absolute(sh.opts.results_dir.as_deref().unwrap_or(results_dir(sh.db)))
        .context("resolving the results directory")?
        .join(&sh.sweep.name);
    while !sh.cancel.load(Ordering::SeqCst) {
        let Some(claim) = store.claim_next(
            &sh.sweep.name,
            &sh.worker,
            &device_name(device),
            sh.opts.only.as_deref(),
        )?
        else {
            break;
        };
        let label = format!("[{}/{}] {}", claim.ordinal + 1, total_runs, claim.run_id);
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
                format!(" on {}", device_name(device))
            } else {
                String::new()
            }
        ));
        let out_dir = results.join(&claim.run_id);
        let cfg = RunConfig::from_flat(&claim.config)
            .context("the stored config does not match this simsweep's settings");
        let attempt = |store: &mut Store, resume: Option<&Path>| {
            let cfg = cfg.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            execute(
                sh,
                store,
                slot,
                cfg,
                claim.run_pk,
                &out_dir,
                device,
                &label,
                resume,
            )
        };
        let mut result = attempt(&mut store, claim.resume.as_ref().map(|(_, d)| d.as_path()));
        // A checkpoint that cannot be resumed (damaged, or from another version): start over.
        if let Some(re) = result
            .as_ref()
            .err()
            .and_then(|e| e.downcast_ref::<train::ResumeError>())
        {
            let why = format!("{re}; starting over from step 0");
            sh.progress.line(&format!("{label} {why}"));
            sh.writer.flush()?;
            store.restart_run(claim.run_pk, &why)?;
            result = attempt(&mut store, None);
        }
        sh.writer.flush()?;
        let mut totals = sh.totals.lock().expect("totals");
        let ok = matches!(result, Ok((Outcome::Done { .. }, _)));
        match result {
            Ok((Outcome::Done { steps }, summary)) => {
                store.finish_run(claim.run_pk, "done", Some(steps), None)?;
                sh.progress.line(&format!("{label} done: {summary}"));
                totals.done += 1;
            }
            Ok((Outcome::Diverged { step, detail }, _)) => {
                store.finish_run(claim.run_pk, "diverged", Some(step), Some(&detail))?;
                sh.progress.line(&format!("{label} diverged: {detail}"));
                totals.diverged += 1;
            }
            Ok((Outcome::Cancelled { step }, _)) => {
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

/// The text of a panic's payload (tch reports libtorch errors, CUDA out-of-memory included, as
/// panics).
fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

/// How often a running run's heartbeat is refreshed even when no metrics arrive (a long
/// evaluation), well inside [`crate::store::STALE_AFTER_SECS`].
const HEARTBEAT: Duration = Duration::from_secs(30);

/// Train one run on a thread; forward its events to the writer and report progress.
#[allow(clippy::too_many_arguments)]
fn execute(
    sh: &Shared<'_>,
    store: &mut Store,
    slot: usize,
    cfg: &RunConfig,
    run_pk: i64,
    out_dir: &Path,
    device: Device,
    label: &str,
    resume: Option<&Path>,
) -> Result<(Outcome, String)> {
    let (tx, rx) = mpsc::channel::<Event>();
    let sink = sh.writer.sender();
    let started = Instant::now();
    std::thread::scope(|s| -> Result<(Outcome, String)> {
        let handle = std::thread::Builder::new()
            .name(format!("simsweep-train-{slot}"))
            .spawn_scoped(s, || {
                train::train(train::Job {
                    config: cfg,
                    sweep_file: &sh.sweep.file,
                    data_dir: sh.data_dir,
                    out_dir,
                    device,
                    events: tx,
                    cancel: sh.cancel,
                    resume,
                })
            })
            .context("starting the trainer thread")?;
        let mut names: HashMap<String, Arc<str>> = HashMap::new();
        let mut last: HashMap<String, (i64, f64)> = HashMap::new();
        let mut total_steps = 1;
        let mut bar = None;
        let mut printed = -1i64;
        let mut eval_printed = -1i64;
        let mut probe_secs = 0.0f64;
        let mut step_now = 0i64;
        let mut beat = Instant::now();
        let metric_rows = |rows: Vec<(i64, i64, String, f64)>,
                           names: &mut HashMap<String, Arc<str>>|
         -> Vec<MetricRow> {
            rows.into_iter()
                .map(|(step, layer, name, value)| {
                    let n = names
                        .entry(name)
                        .or_insert_with_key(|k| Arc::from(k.as_str()))
                        .clone();
                    MetricRow {
                        run_pk,
                        step,
                        layer,
                        name: n,
                        value,
                    }
                })
                .collect()
        };
        loop {
            let ev = match rx.recv_timeout(HEARTBEAT) {
                Ok(ev) => ev,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    store.heartbeat(run_pk, step_now)?;
                    beat = Instant::now();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            match ev {
                Event::Started {
                    device,
                    parameters,
                    examples,
                    skipped_lines,
                    total_steps: t,
                    tokens_cached,
                    weights_cached,
                    resumed_from,
                } => {
                    total_steps = t;
                    let b = bar.insert(sh.progress.start_run(slot, label, t));
                    if let Some(k) = resumed_from {
                        step_now = k;
                        printed = k;
                        b.update(k, None, None);
                    }
                    let reused = match (tokens_cached, weights_cached) {
                        (true, true) => ", tokens and weights reused",
                        (true, false) => ", tokens reused",
                        (false, true) => ", weights reused",
                        (false, false) => "",
                    };
                    sh.progress.line(&format!(
                        "{label} {device}: {parameters} parameters, {examples} examples ({skipped_lines} lines skipped{reused}), {t} steps"
                    ));
                    sink.send(Write::Event {
                        run_pk: Some(run_pk),
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
                        last.insert(name.clone(), (*step, *value));
                    }
                    let batch = metric_rows(
                        rows.into_iter().map(|(s, n, v)| (s, -1, n, v)).collect(),
                        &mut names,
                    );
                    sink.send(Write::Metrics(batch))?;
                    let Some(step) = max_step else { continue };
                    step_now = step.min(total_steps);
                    let evaluated = last.get("stsb_dev").is_some_and(|(s, _)| *s == step);
                    if let Some(b) = bar.as_mut() {
                        b.update(
                            step_now,
                            last.get("loss").map(|v| v.1),
                            evaluated.then(|| last["stsb_dev"].1),
                        );
                    }
                    if beat.elapsed() >= Duration::from_secs(2) || step >= total_steps {
                        store.heartbeat(run_pk, step_now)?;
                        beat = Instant::now();
                    }
                    if !sh.progress.lines() {
                        continue;
                    }
                    // One line per evaluation, and about every tenth of the run otherwise
                    // (not on steps about to be evaluated: their evaluation line follows).
                    let will_eval =
                        (cfg.eval.every > 0 && step % cfg.eval.every == 0) || step >= total_steps;
                    let every = (total_steps / 10).max(1);
                    let periodic = step / every > printed / every;
                    if periodic {
                        printed = step;
                    }
                    if (evaluated && step != eval_printed) || (periodic && !will_eval && !evaluated)
                    {
                        if evaluated {
                            eval_printed = step;
                        }
                        let show = |k: &str| {
                            last.get(k)
                                .map(|(_, v)| format!(" {k} {v:.4}"))
                                .unwrap_or_default()
                        };
                        sh.progress.line(&format!(
                            "{label} step {step_now}/{total_steps}{}{}{}{}",
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
                }
                Event::LayerMetrics(rows) => {
                    for (step, layer, name, value) in &rows {
                        if *layer == -1 {
                            if name == "probe_seconds" {
                                probe_secs += value;
                            }
                            last.insert(name.clone(), (*step, *value));
                        }
                    }
                    let batch = metric_rows(rows, &mut names);
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
                        run_pk,
                        kind: kind.into(),
                        step,
                        path: path.display().to_string(),
                        metric,
                        value,
                    })?;
                }
                Event::Note { kind, message } => {
                    sink.send(Write::Event {
                        run_pk: Some(run_pk),
                        sweep_id: None,
                        kind: kind.into(),
                        message,
                        data: None,
                    })?;
                }
            }
        }
        drop(bar);
        let outcome = handle.join().map_err(|p| {
            anyhow::anyhow!("the trainer stopped with an error: {}", panic_message(&p))
        })??;
        let wall = started.elapsed().as_secs_f64();
        let mut summary = format!(
            "{wall:.1} s (probes {probe_secs:.1} s, {:.1} %)",
            100.0 * probe_secs / wall.max(1e-9)
        );
        for k in ["stsb_dev", "avg", "stsb_test", "sickr_test"] {
            if let Some((_, v)) = last.get(k) {
                summary.push_str(&format!(", {k} {v:.2}"));
            }
        }
        Ok((outcome, summary))
    })
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
