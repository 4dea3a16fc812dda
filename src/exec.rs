//! Executing a sweep's runs: claim a pending run, train it on a thread, forward its events to the
//! database writer, record how it ended, repeat. (One run at a time on one device.)

use crate::spec::config::RunConfig;
use crate::spec::Sweep;
use crate::store::writer::{MetricRow, Write, Writer};
use crate::store::Store;
use crate::train::{self, Event, Outcome};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::Instant;
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

/// Totals of one `run` invocation.
#[derive(Debug, Default)]
pub struct RunTotals {
    pub done: usize,
    pub failed: usize,
    pub diverged: usize,
    pub cancelled: usize,
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

/// Execute the claimable runs of a planned sweep (pending, cancelled, orphaned).
pub fn run_sweep(
    sweep: &Sweep,
    db: &Path,
    data_dir: &Path,
    opts: &ExecOptions,
    cancel: &AtomicBool,
) -> Result<RunTotals> {
    let device = opts.devices[0];
    let mut store = Store::open(db)?;
    let worker = format!(
        "{}:{}",
        hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    );
    let results = opts
        .results_dir
        .as_deref()
        .unwrap_or(db.parent().unwrap_or(Path::new(".")))
        .join(&sweep.name);
    let writer = Writer::spawn(db)?;
    let mut totals = RunTotals::default();
    let total_runs = sweep.runs.len();
    while let Some(claim) = store.claim_next(
        &sweep.name,
        &worker,
        &device_name(device),
        opts.only.as_deref(),
    )? {
        let label = format!("[{}/{}] {}", claim.ordinal + 1, total_runs, claim.run_id);
        let params = sweep
            .runs
            .iter()
            .find(|r| r.id == claim.run_id)
            .map(|r| {
                sweep
                    .display_keys()
                    .iter()
                    .map(|k| format!("{k}={}", crate::spec::value::display(&r.params[k])))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        println!("{label} {params}");
        let result = RunConfig::from_flat(&claim.config)
            .context("the stored config does not match this simsweep's settings")
            .and_then(|cfg| {
                let out_dir = results.join(&claim.run_id);
                execute(
                    &cfg,
                    sweep,
                    claim.run_pk,
                    &out_dir,
                    data_dir,
                    device,
                    &writer,
                    &mut store,
                    &label,
                    cancel,
                )
            });
        writer.flush()?;
        match result {
            Ok((Outcome::Done { steps }, summary)) => {
                store.finish_run(claim.run_pk, "done", Some(steps), None)?;
                println!("{label} done: {summary}");
                totals.done += 1;
            }
            Ok((Outcome::Diverged { step, detail }, _)) => {
                store.finish_run(claim.run_pk, "diverged", Some(step), Some(&detail))?;
                println!("{label} diverged: {detail}");
                totals.diverged += 1;
            }
            Ok((Outcome::Cancelled { step }, _)) => {
                store.finish_run(claim.run_pk, "cancelled", Some(step), Some("cancelled"))?;
                println!("{label} cancelled at step {step}");
                totals.cancelled += 1;
                break;
            }
            Err(e) => {
                let msg = format!("{e:#}");
                store.finish_run(claim.run_pk, "failed", None, Some(&msg))?;
                println!("{label} failed: {msg}");
                totals.failed += 1;
            }
        }
    }
    writer.finish()?;
    Ok(totals)
}

/// Train one run on a thread; forward its events to the writer and print progress lines.
#[allow(clippy::too_many_arguments)]
fn execute(
    cfg: &RunConfig,
    sweep: &Sweep,
    run_pk: i64,
    out_dir: &Path,
    data_dir: &Path,
    device: Device,
    writer: &Writer,
    store: &mut Store,
    label: &str,
    cancel: &AtomicBool,
) -> Result<(Outcome, String)> {
    let (tx, rx) = mpsc::channel::<Event>();
    let sink = writer.sender();
    let started = Instant::now();
    let outcome = std::thread::scope(|s| -> Result<(Outcome, String)> {
        let handle = s.spawn(|| {
            train::train(train::Job {
                config: cfg,
                sweep_file: &sweep.file,
                data_dir,
                out_dir,
                device,
                events: tx,
                cancel,
            })
        });
        let mut names: HashMap<String, Arc<str>> = HashMap::new();
        let mut last: HashMap<String, (i64, f64)> = HashMap::new();
        let mut total_steps = 0;
        let mut printed = -1i64;
        let mut eval_printed = -1i64;
        let mut probe_secs = 0.0f64;
        for ev in rx {
            match ev {
                Event::Started {
                    device,
                    parameters,
                    examples,
                    skipped_lines,
                    total_steps: t,
                    tokens_cached,
                } => {
                    total_steps = t;
                    println!(
                        "{label} {device}: {parameters} parameters, {examples} examples ({skipped_lines} lines skipped{}), {t} steps",
                        if tokens_cached { ", tokens reused" } else { "" }
                    );
                    sink.send(Write::Event {
                        run_pk: Some(run_pk),
                        sweep_id: None,
                        kind: "setup".into(),
                        message: format!(
                            "{device}, {parameters} parameters, {examples} examples, {t} steps"
                        ),
                        data: None,
                    })?;
                }
                Event::Metrics(rows) => {
                    let mut max_step = None;
                    let batch: Vec<MetricRow> = rows
                        .into_iter()
                        .map(|(step, name, value)| {
                            max_step = max_step.max(Some(step));
                            last.insert(name.clone(), (step, value));
                            let n = names
                                .entry(name.clone())
                                .or_insert_with(|| Arc::from(name.as_str()))
                                .clone();
                            MetricRow {
                                run_pk,
                                step,
                                layer: -1,
                                name: n,
                                value,
                            }
                        })
                        .collect();
                    sink.send(Write::Metrics(batch))?;
                    if let Some(step) = max_step {
                        store.heartbeat(run_pk, step.min(total_steps))?;
                        // One line per evaluation, and about every tenth of the run otherwise
                        // (not on steps about to be evaluated: their evaluation line follows).
                        let evaluated = last.get("stsb_dev").is_some_and(|(s, _)| *s == step);
                        let will_eval = (cfg.eval.every > 0 && step % cfg.eval.every == 0)
                            || step >= total_steps;
                        let every = (total_steps / 10).max(1);
                        let periodic = step / every > printed / every;
                        if periodic {
                            printed = step;
                        }
                        if (evaluated && step != eval_printed)
                            || (periodic && !will_eval && !evaluated)
                        {
                            if evaluated {
                                eval_printed = step;
                            }
                            let show = |k: &str| {
                                last.get(k)
                                    .map(|(_, v)| format!(" {k} {v:.4}"))
                                    .unwrap_or_default()
                            };
                            println!(
                                "{label} step {}/{total_steps}{}{}{}{}",
                                step.min(total_steps),
                                show("loss"),
                                show("stsb_dev"),
                                show("pos_cos"),
                                last.get("tokens_per_s")
                                    .map_or(String::new(), |v| format!(" {:.0} tok/s", v.1))
                            );
                            let _ = std::io::stdout().flush();
                        }
                    }
                }
                Event::LayerMetrics(rows) => {
                    let batch: Vec<MetricRow> = rows
                        .into_iter()
                        .map(|(step, layer, name, value)| {
                            if layer == -1 {
                                if name == "probe_seconds" {
                                    probe_secs += value;
                                }
                                last.insert(name.clone(), (step, value));
                            }
                            let n = names
                                .entry(name.clone())
                                .or_insert_with(|| Arc::from(name.as_str()))
                                .clone();
                            MetricRow {
                                run_pk,
                                step,
                                layer,
                                name: n,
                                value,
                            }
                        })
                        .collect();
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
        let outcome = handle
            .join()
            .map_err(|_| anyhow::anyhow!("the trainer panicked"))??;
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
    })?;
    Ok(outcome)
}

/// Where a sweep's run outputs go: `<db folder>/<sweep>/<run id>`.
pub fn run_dir(db: &Path, sweep: &str, run_id: &str) -> PathBuf {
    db.parent()
        .unwrap_or(Path::new("."))
        .join(sweep)
        .join(run_id)
}
