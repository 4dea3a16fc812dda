//! Command-line interface: parse and validate arguments into typed values, then dispatch.

use crate::spec::{self, value};
use crate::store::Store;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "simsweep",
    version = crate_version(),
    about = "Ablation sweeps of contrastive sentence-embedding training (SimCSE and its loss family), with learning-dynamics probes, stored in SQLite",
    long_about = None,
    after_help = "A sweep file (TOML) lists settings to vary; `simsweep plan FILE` expands it into runs and records them in the results database. See docs/sweep-file.md, docs/schema.md and docs/cli.md."
)]
pub struct Cli {
    /// Results database (SQLite).
    #[arg(
        long,
        global = true,
        env = "SIMSWEEP_DB",
        default_value = "results/simsweep.db"
    )]
    pub db: PathBuf,

    /// Root of the data files; relative paths in sweep files resolve against it.
    #[arg(long, global = true, env = "SIMSWEEP_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

fn crate_version() -> &'static str {
    Box::leak(crate::code_version().into_boxed_str())
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Expand a sweep file into runs and record them (idempotent): prints the runs with their swept
    /// keys and the counts total / new / done / failed.
    Plan {
        /// The sweep file (TOML).
        file: PathBuf,
        /// Print JSON: {"sweep", "total", "new", "pending", "done", "failed", "removed", "runs": [{"id", "params", "status"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Show what this build sees: versions, threads, CUDA devices.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks (not tests): print measured figures.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Rows per second through the batched metric writer into an on-disk database.
    Writer {
        /// Metric rows to insert.
        #[arg(long, default_value_t = 2_000_000)]
        rows: u64,
        /// Rows per message (one training step's metrics).
        #[arg(long, default_value_t = 30)]
        rows_per_message: usize,
        /// Database file to create (default: a fresh file in the temp directory, removed afterwards).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Exit status for bad input (a sweep file, a flag value), as clap uses for usage errors.
pub const EXIT_BAD_INPUT: i32 = 2;

/// An error caused by the user's input rather than by simsweep or the machine.
#[derive(Debug)]
pub struct BadInput(pub String);
impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for BadInput {}

pub fn main_with(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Plan { ref file, json } => plan(&cli, file, json),
        Command::Info { json } => {
            let info = crate::runtime::info();
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("simsweep        {}", info.simsweep);
                println!(
                    "PyTorch         {} (libtorch in {})",
                    info.torch, info.libtorch_lib
                );
                println!(
                    "threads         {} granted, libtorch uses {}",
                    info.threads, info.torch_threads
                );
                println!(
                    "CUDA            {} ({} devices, cuDNN {})",
                    if info.cuda_available {
                        "available"
                    } else {
                        "not available"
                    },
                    info.cuda_devices,
                    if info.cudnn_available { "yes" } else { "no" }
                );
                println!("check           [0,1,2;3,4,5]·ᵀ = {}", info.check);
            }
            Ok(0)
        }
        Command::Bench(BenchCommand::Writer {
            rows,
            rows_per_message,
            ref out,
        }) => {
            crate::bench::writer(rows, rows_per_message.max(1), out.as_deref())?;
            Ok(0)
        }
    }
}

fn plan(cli: &Cli, file: &std::path::Path, json: bool) -> Result<i32> {
    let sweep = spec::load(file).map_err(|e| BadInput(e.to_string()))?;
    spec::check_paths(&sweep, &cli.data_dir).map_err(|e| BadInput(e.to_string()))?;
    for w in &sweep.warnings {
        eprintln!("warning: {w}");
    }
    let mut store = Store::open(&cli.db)?;
    let summary = store
        .plan(&sweep)
        .with_context(|| format!("recording sweep `{}`", sweep.name))?;
    if json {
        let runs: Vec<serde_json::Value> = sweep
            .runs
            .iter()
            .zip(&summary.statuses)
            .map(|(r, s)| serde_json::json!({"id": r.id, "params": r.params, "status": s}))
            .collect();
        let out = serde_json::json!({
            "sweep": sweep.name,
            "db": cli.db,
            "total": summary.total,
            "new": summary.new,
            "pending": summary.pending + summary.new,
            "running": summary.running,
            "done": summary.done,
            "failed": summary.failed,
            "cancelled": summary.cancelled,
            "removed": summary.removed,
            "swept_keys": sweep.swept_keys,
            "runs": runs,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    let keys = sweep.display_keys();
    let mut headers = vec!["#".to_string(), "run".to_string()];
    headers.extend(keys.iter().cloned());
    headers.push("status".into());
    let rows: Vec<Vec<String>> = sweep
        .runs
        .iter()
        .zip(&summary.statuses)
        .map(|(r, s)| {
            let mut row = vec![r.ordinal.to_string(), r.id.clone()];
            row.extend(
                keys.iter()
                    .map(|k| value::display(r.params.get(k).unwrap_or(&serde_json::Value::Null))),
            );
            row.push(s.clone());
            row
        })
        .collect();
    println!(
        "sweep {}{}",
        sweep.name,
        if sweep.description.is_empty() {
            String::new()
        } else {
            format!(" — {}", sweep.description)
        }
    );
    print!("{}", crate::table::render(&headers, &rows));
    println!(
        "{} runs: {} new, {} pending, {} running, {} done, {} failed, {} cancelled{} → {}",
        summary.total,
        summary.new,
        summary.pending,
        summary.running,
        summary.done,
        summary.failed,
        summary.cancelled,
        if summary.removed > 0 {
            format!(
                " ({} earlier runs no longer in the file, kept)",
                summary.removed
            )
        } else {
            String::new()
        },
        cli.db.display()
    );
    Ok(0)
}
