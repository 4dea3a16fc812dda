//! simsweep-exec: the executors. An [`Executor`] takes a planned sweep's pending runs and gets each
//! trained by one engine process (`simsweep-engine worker`): [`local`] starts them here (devices ×
//! jobs per device), [`slurm`] submits them as one job array whose tasks each start one. Neither
//! links libtorch: the engine binary is found by [`engine::locate`].

pub mod engine;
pub mod local;
pub mod progress;
pub mod slurm;

pub use simsweep_core::{code_version, spec, store, table, BadInput};

use anyhow::{Context, Result};
use std::path::Path;

/// What `simsweep run` hands an executor.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The sweep file.
    pub file: &'a Path,
    /// The results database.
    pub db: &'a Path,
    /// Where relative data paths resolve.
    pub data_dir: &'a Path,
    /// Run the failed and diverged runs again.
    pub retry_failed: bool,
}

/// An executor: gets a sweep's pending runs trained, one engine process per run. Adding one is a
/// new module with a type implementing this, and its flags in the front's `run`.
pub trait Executor {
    /// Plan the sweep, then train (or submit) its pending runs; returns `run`'s exit status
    /// (0 all done, 1 a run failed or diverged, 130 interrupted).
    fn run(&self, req: &Request<'_>) -> Result<i32>;
}

/// Validate a sweep file (with its data and model paths) and record its runs: what `plan` does and
/// every executor does first.
pub fn load_and_plan(
    file: &Path,
    db: &Path,
    data_dir: &Path,
) -> Result<(spec::Sweep, store::PlanSummary)> {
    let sweep = spec::load(file).map_err(|e| BadInput::err(e.to_string()))?;
    spec::check_paths(&sweep, data_dir).map_err(|e| BadInput::err(e.to_string()))?;
    for w in &sweep.warnings {
        eprintln!("warning: {w}");
    }
    let mut store = store::Store::open(db)?;
    let summary = store
        .plan(&sweep)
        .with_context(|| format!("recording sweep `{}`", sweep.name))?;
    Ok((sweep, summary))
}
