//! `simsweep-engine worker`: train one run for the front. The front writes a
//! [`RunJob`](crate::events::RunJob) as one JSON line on standard input; this process trains it on
//! its own libtorch (its own generator, thread pool and CUDA context) and writes one
//! [`WorkerMessage`] per line on standard output: events as they come, then `End` or `Error`.
//! Standard error carries anything else (the front keeps its last lines for a crash report).
//!
//! SIGUSR1 asks it to stop for good (the run was pruned by early stopping): it ends `Stopped` with
//! its best checkpoint and no final evaluation.
//!
//! SIGINT or SIGTERM asks the trainer to finish its step and save a `last` checkpoint (the run
//! ends `Cancelled`); more of them change nothing. One interrupt often arrives twice — Slurm's
//! `scancel` signals every process of the task while the front forwards its own SIGTERM — so
//! "stop at once" is the front's SIGKILL (a second Ctrl-C), never a second signal here. The front
//! sets the process to be killed when the front dies, so no worker outlives it.

use crate::events::{RunJob, WorkerMessage};
use crate::spec::config::RunConfig;
use crate::train::{self, Event, ResumeError};
use anyhow::{Context, Result};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

static CANCEL: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigusr1(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_interrupt_handler() {
    let installed = ctrlc::set_handler(|| CANCEL.store(true, Ordering::SeqCst));
    if let Err(e) = installed {
        eprintln!("warning: cannot install the interrupt handler: {e}");
    }
}

/// SIGUSR1: the front pruned the run (early stopping). Only for a job under early stopping, so a
/// stray SIGUSR1 elsewhere keeps its default effect. The handler only stores an atomic.
fn install_stop_handler() {
    // SAFETY: installing an async-signal-safe handler.
    unsafe {
        libc::signal(
            libc::SIGUSR1,
            on_sigusr1 as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

/// The test hook's curve for this run (`SIMSWEEP_TEST_OBJECTIVE`, a JSON file
/// `{"key": K, "values": {"<value of K>[@<seed>]": [v1, v2, ...]}}`; docs/cli.md).
fn test_objective(job: &RunJob) -> Result<Option<Vec<f64>>> {
    let Some(path) = std::env::var_os("SIMSWEEP_TEST_OBJECTIVE") else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "SIMSWEEP_TEST_OBJECTIVE: reading {}",
            path.to_string_lossy()
        )
    })?;
    let spec: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("SIMSWEEP_TEST_OBJECTIVE: {}", path.to_string_lossy()))?;
    let key = spec["key"].as_str().unwrap_or("train.lr");
    let shown = job
        .config
        .get(key)
        .map(simsweep_core::spec::value::display)
        .unwrap_or_default();
    let seed = job.config.get("seed").and_then(|v| v.as_i64()).unwrap_or(0);
    let values = &spec["values"];
    let curve = values
        .get(format!("{shown}@{seed}"))
        .or_else(|| values.get(&shown))
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .map(|x| x.as_f64().unwrap_or(f64::NAN))
                .collect::<Vec<f64>>()
        })
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("SIMSWEEP_TEST_OBJECTIVE: no curve for {key} = {shown} (seed {seed})")
        })?;
    Ok(Some(curve))
}

fn send(out: &mut impl Write, m: &WorkerMessage) -> Result<()> {
    let line = serde_json::to_string(m).context("encoding a worker message")?;
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .context("writing to the front (standard output)")
}

/// Read the job, train, report. Exit status 0 whenever a final message was written (the outcome
/// is in it); 1 when the job could not be read or the front went away.
pub fn main() -> Result<i32> {
    install_interrupt_handler();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the job from standard input")?;
    let job: RunJob = serde_json::from_str(&line).context("the job on standard input")?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = run(&job, &mut out);
    let last = match result {
        Ok(outcome) => WorkerMessage::End(outcome),
        Err(e) => WorkerMessage::Error {
            resume: e.downcast_ref::<ResumeError>().is_some(),
            message: format!("{e:#}"),
        },
    };
    send(&mut out, &last)?;
    Ok(0)
}

fn run(job: &RunJob, out: &mut impl Write) -> Result<train::Outcome> {
    let cfg = RunConfig::from_flat(&job.config)
        .context("the stored config does not match this simsweep's settings")?;
    let device = crate::runtime::torch_device(
        simsweep_core::device::Device::parse(&job.device).map_err(anyhow::Error::msg)?,
    );
    if job.verdicts {
        install_stop_handler();
    }
    if let Some(curve) = test_objective(job)? {
        let _ = train::TEST_OBJECTIVE.set(curve);
    }
    let (tx, rx) = mpsc::channel::<Event>();
    std::thread::scope(|s| -> Result<train::Outcome> {
        let trainer = std::thread::Builder::new()
            .name("simsweep-train".into())
            .spawn_scoped(s, || {
                train::train(train::Job {
                    config: &cfg,
                    sweep_file: &job.sweep_file,
                    data_dir: &job.data_dir,
                    out_dir: &job.out_dir,
                    device,
                    events: tx,
                    cancel: &CANCEL,
                    stop: &STOP,
                    verdicts: job.verdicts,
                    resume: job.resume.as_deref(),
                    token_cache: job.token_cache.as_deref(),
                })
            })
            .context("starting the trainer thread")?;
        for ev in rx {
            send(out, &WorkerMessage::Event(ev))?;
        }
        trainer.join().map_err(|p| {
            anyhow::anyhow!(
                "the trainer stopped with an error: {}",
                simsweep_core::error::panic_message(p.as_ref())
            )
        })?
    })
}
