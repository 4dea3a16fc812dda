//! Command-line interface: parse and validate arguments into typed values, then dispatch.

use crate::query::output::{Format, RowWriter};
use crate::query::{self, Condition, ExportFormat, Goal, Mode};
use crate::spec::{self, value};
use crate::store::Store;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// Plan a sweep file (as `plan`), then train its pending runs, storing every step metric,
    /// evaluation and checkpoint. Re-running skips done runs and resumes interrupted ones from
    /// their last checkpoint. Exits 1 if any run failed or diverged, 130 when interrupted. With
    /// `--executor slurm`, submit them as one Slurm job array instead (docs/cli.md).
    Run {
        /// The sweep file (TOML).
        file: PathBuf,
        /// Where to train, comma-separated: cpu, cuda, cuda:N (default: cuda:0 when CUDA is
        /// available, else cpu). Each device gets --jobs-per-device runs at a time.
        #[arg(long, alias = "device", value_delimiter = ',')]
        devices: Vec<String>,
        /// Runs trained at the same time on each device (small runs share a GPU well).
        #[arg(long, default_value_t = 1)]
        jobs_per_device: usize,
        /// Run the failed and diverged runs again (from their last checkpoint when they have one).
        #[arg(long)]
        retry_failed: bool,
        /// Progress display: auto (bars on a terminal, lines otherwise), lines, quiet.
        #[arg(long, default_value = "auto")]
        progress: String,
        /// local: train here; slurm: submit one job array over the pending runs (sbatch), each
        /// task training one run into its own shard under <db folder>/shards/.
        #[arg(long, value_enum, default_value_t = Executor::Local)]
        executor: Executor,
        /// Slurm: the partition (sbatch --partition).
        #[arg(long, help_heading = "Slurm (--executor slurm)")]
        partition: Option<String>,
        /// Slurm: GPUs per task (sbatch --gpus-per-task); a task trains on CUDA when it has one.
        #[arg(long, help_heading = "Slurm (--executor slurm)")]
        gpus_per_task: Option<u32>,
        /// Slurm: CPUs per task (sbatch --cpus-per-task; also libtorch's threads).
        #[arg(long, help_heading = "Slurm (--executor slurm)")]
        cpus_per_task: Option<u32>,
        /// Slurm: time limit per task (sbatch --time, e.g. 02:00:00).
        #[arg(long, help_heading = "Slurm (--executor slurm)")]
        time: Option<String>,
        /// Slurm: at most K tasks of the array at once (--array=0-N%K).
        #[arg(long, value_name = "K", help_heading = "Slurm (--executor slurm)")]
        array_parallelism: Option<u32>,
        /// Slurm: any other sbatch option, as an #SBATCH line (repeatable), e.g. --sbatch-arg=--mem=16G.
        #[arg(
            long,
            value_name = "OPTION",
            allow_hyphen_values = true,
            help_heading = "Slurm (--executor slurm)"
        )]
        sbatch_arg: Vec<String>,
        /// Slurm: print the batch script and the task table; submit nothing, write nothing.
        #[arg(long, help_heading = "Slurm (--executor slurm)")]
        dry_run: bool,
        /// Slurm: wait for the array to finish, merging and reporting progress; exit 1 if a run
        /// failed or diverged.
        #[arg(long, help_heading = "Slurm (--executor slurm)")]
        wait: bool,
        /// Slurm: seconds between polls with --wait.
        #[arg(
            long,
            value_name = "SECONDS",
            default_value_t = 10.0,
            help_heading = "Slurm (--executor slurm)"
        )]
        poll: f64,
    },
    /// Run one task of a Slurm job array (what `run --executor slurm` submits): train the run that
    /// the task table names for this task into its shard. Exits 0 done, 1 failed or diverged, 130
    /// cancelled. Ignores --db: it writes only the shard named in the task table.
    Worker {
        /// The submission's task table (<db folder>/shards/<sweep>/<submission>/tasks.json).
        tasks: PathBuf,
        /// The task index (default: $SLURM_ARRAY_TASK_ID).
        #[arg(long)]
        index: Option<usize>,
        /// The array's job id (default: $SLURM_ARRAY_JOB_ID).
        #[arg(long)]
        job: Option<String>,
    },
    /// Bring Slurm tasks' shards into the database (idempotent) and settle runs whose task ended
    /// without a final status (Slurm's state and exit code become the error).
    Merge {
        /// A sweep name (default: every sweep in the database).
        sweep: Option<String>,
    },
    /// Evaluate a checkpoint on the STS tasks (SentEval protocol: Spearman × 100 of cosine
    /// similarities; STS12–16 "all"; avg of the seven test sets).
    Eval {
        /// A Hugging Face model directory (a simsweep checkpoint, or any BERT/RoBERTa checkpoint).
        #[arg(long)]
        model: PathBuf,
        /// Sentence pooler: cls, cls_before_pooler, avg, avg_top2, avg_first_last.
        #[arg(long, default_value = "cls")]
        pooling: String,
        /// With --pooling cls: do not apply the MLP (SimCSE's unsupervised checkpoints).
        #[arg(long)]
        mlp_only_train: bool,
        /// Tasks, comma-separated (default: all eight).
        #[arg(long, value_delimiter = ',')]
        tasks: Vec<String>,
        /// Truncate sentences to this many tokens (default: the model's limit, as SentEval).
        #[arg(long)]
        max_len: Option<usize>,
        /// Sentences per forward pass.
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        /// cpu, cuda, cuda:N (default: cuda:0 when available, else cpu).
        #[arg(long)]
        device: Option<String>,
        /// Print {"model", "pooling", "scores": {task: score, ..., "avg"}}.
        #[arg(long)]
        json: bool,
    },
    /// Counts of runs by status; with a sweep name, also the running runs with their step and the
    /// errors of failed runs.
    Status {
        /// A sweep name (default: every sweep in the database).
        sweep: Option<String>,
    },
    /// Probe the embedding geometry of a checkpoint (the metrics a run records every
    /// `probe.every` steps; docs/metrics.md): token and sentence anisotropy, self-similarity,
    /// alignment, uniformity, norms, effective rank, partition isotropy, rogue share, spectrum.
    Probe {
        /// A Hugging Face model directory (a simsweep checkpoint, or any BERT/RoBERTa checkpoint).
        #[arg(long)]
        model: PathBuf,
        /// Probe sentences: `stsb-dev` (the first sentence1 of STS-B dev) or a file of one
        /// sentence per line (relative to --data-dir).
        #[arg(long, default_value = "stsb-dev")]
        sentences: String,
        /// Number of probe sentences.
        #[arg(long, default_value_t = 1000)]
        size: usize,
        /// Sentence pooler for the sentence metrics: cls, cls_before_pooler, avg, avg_top2,
        /// avg_first_last.
        #[arg(long, default_value = "avg")]
        pooling: String,
        /// With --pooling cls: do not apply the MLP.
        #[arg(long)]
        mlp_only_train: bool,
        /// Tokens per probe sentence, specials included.
        #[arg(long, default_value_t = 32)]
        max_len: usize,
        /// Extra per-layer values: last (none), all, or indices like 0,3,6 (0 = embeddings).
        #[arg(long, default_value = "last")]
        layers: String,
        /// cpu, cuda, cuda:N (default: cuda:0 when available, else cpu).
        #[arg(long)]
        device: Option<String>,
        /// Print {"model", "pooling", "layer", "metrics": {name: value}} (+ "layers" when asked).
        #[arg(long)]
        json: bool,
    },
    /// The runs of a sweep: run id, swept settings, seed, status, last step, headline scores (best
    /// stsb_dev over training and its step, final avg / stsb_test / sickr_test, those recorded) and
    /// the error of failed runs.
    Runs {
        /// The sweep's name.
        sweep: String,
        #[command(flatten)]
        select: SelectArgs,
        /// table, csv or json (an array of objects with the table's columns).
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// The best (or final) value of a metric per group of settings, aggregated over seeds: mean ±
    /// sample std (n−1), n, min, max; best group first. Only `done` runs unless --status is given.
    Best {
        /// The sweep's name.
        sweep: String,
        /// The metric (as in `metric_values`: stsb_dev, avg, stsb_test, loss, alignment, sv_01, …).
        #[arg(long)]
        metric: String,
        /// Settings that define a group (repeatable or comma-separated; default: every swept key,
        /// so a group's runs differ only in seed). `--by ''` pools all selected runs.
        #[arg(long, value_delimiter = ',', value_name = "KEY")]
        by: Vec<String>,
        /// best: the best value over each run's steps; final: the value at its last recorded step.
        #[arg(long, value_enum, default_value_t)]
        mode: Mode,
        /// Which direction is better (default: min for names ending in `loss` and for alignment,
        /// uniformity, batch_alignment, batch_uniformity, token_anisotropy, sentence_anisotropy;
        /// max otherwise).
        #[arg(long, value_enum)]
        goal: Option<Goal>,
        /// mean: one row per group; all: one row per run (its seed, value and step), groups in
        /// the same order.
        #[arg(long, value_enum, default_value_t)]
        seeds: Seeds,
        /// The layer of per-layer probe metrics (-1: the run's own representation).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        layer: i64,
        #[command(flatten)]
        select: SelectArgs,
        /// table, csv or json (json: every group with its runs, whatever --seeds says).
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Read-only SQL over the results database (views run_params, metric_values, runs_wide; see
    /// docs/schema.md). One statement; a statement that would write is refused.
    Query {
        /// One SELECT (or WITH … SELECT, EXPLAIN, read-only PRAGMA) statement.
        sql: String,
        /// table (NULL shown as NULL), csv (NULL as an empty field) or json (an array of objects).
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Settings and metric series of a sweep's runs, for pandas and DuckDB: csv has one row per
    /// (run, step) with settings and metrics as columns; jsonl one object per run with each
    /// metric's steps and values.
    Export {
        /// The sweep's name.
        sweep: String,
        /// csv or jsonl.
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// Metrics to export (repeatable or comma-separated; default: every metric the runs
        /// recorded at --layer).
        #[arg(long, value_delimiter = ',', value_name = "M")]
        metrics: Vec<String>,
        /// The layer of per-layer probe metrics (-1: the run's own representation).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        layer: i64,
        /// Every setting as a column (default: the swept keys and seed).
        #[arg(long)]
        all_params: bool,
        #[command(flatten)]
        select: SelectArgs,
        /// Write to this file instead of standard output (a summary goes to standard error).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Draw a chart of a sweep's results (SVG or PNG, from the -o extension): learning curves,
    /// final/best values against a swept key, the alignment–uniformity plane, the singular value
    /// spectrum, per-layer probe profiles or the gradient components. See docs/cli.md.
    Plot {
        /// The sweep's name.
        sweep: String,
        /// What to draw.
        #[arg(long, value_enum)]
        kind: crate::plot::Kind,
        /// The metric (curves: default loss; final: stsb_dev; layers: token_anisotropy);
        /// several, comma-separated, draw one chart each (in parallel).
        #[arg(long, value_delimiter = ',')]
        metric: Vec<String>,
        /// Colour lines by this swept key, or `seed` (default: the first swept key).
        #[arg(long)]
        color_by: Option<String>,
        /// Small multiples, one per value of this swept key (or `seed`), sharing their axes.
        #[arg(long)]
        facet_by: Option<String>,
        /// final: the swept key on the x axis (default: the first one other than --color-by).
        #[arg(long = "x")]
        x_key: Option<String>,
        /// final: each run's best value over its steps (max; min for loss, alignment,
        /// uniformity) or its value at the last step.
        #[arg(long, value_enum, default_value = "best")]
        mode: crate::plot::Mode,
        /// spectrum, layers: the steps to show, comma-separated (default: spectrum the first and
        /// last probed step, layers the last).
        #[arg(long, value_delimiter = ',')]
        steps: Vec<i64>,
        /// A log y axis (default for spectrum).
        #[arg(long, conflicts_with = "linear_y")]
        log_y: bool,
        /// A linear y axis (e.g. for spectrum).
        #[arg(long)]
        linear_y: bool,
        /// final: a log x axis (default when the values are positive and span ×10 or more).
        #[arg(long, conflicts_with = "linear_x")]
        log_x: bool,
        /// final: a linear x axis.
        #[arg(long)]
        linear_x: bool,
        /// Figure size WIDTHxHEIGHT in SVG units (PNG: twice as many pixels); default from the
        /// number of panels.
        #[arg(long, value_parser = parse_size)]
        size: Option<(u32, u32)>,
        /// curves, gradients: smooth each run with a centred moving average over N recorded
        /// points (before the seed mean); 0: none.
        #[arg(long, default_value_t = 0)]
        smooth: usize,
        /// Figure title (default: sweep — what is drawn).
        #[arg(long)]
        title: Option<String>,
        /// Output file, .svg or .png; `{metric}` in the name is replaced by the metric
        /// (default: <db folder>/<sweep>/plots/<kind>[-<metric>].svg).
        #[arg(short = 'o', long = "out")]
        out: Option<PathBuf>,
    },
    /// Write a self-contained HTML report of a sweep (inline SVG charts, no network): the sweep
    /// file, the runs with their headline scores, best-per-key tables and the default charts.
    Report {
        /// The sweep's name.
        sweep: String,
        /// Output file (default: <db folder>/<sweep>/report.html).
        #[arg(short = 'o', long = "out")]
        out: Option<PathBuf>,
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

/// Which runs of a sweep a command looks at.
#[derive(Debug, Clone, clap::Args)]
pub struct SelectArgs {
    /// Only runs whose setting KEY equals VALUE (repeatable; all must hold), e.g.
    /// `--where train.temperature=0.05 --where model.pooling=avg`. Numbers match numerically
    /// (0.05 = 5e-2), true/false match booleans; `seed` is a key too.
    #[arg(long = "where", value_name = "KEY=VALUE")]
    pub conditions: Vec<Condition>,
    /// Only runs with these statuses (repeatable or comma-separated): pending, running, done,
    /// failed, diverged, cancelled. Default: done for `best`, every status otherwise.
    #[arg(long, value_delimiter = ',', value_name = "S")]
    pub status: Vec<String>,
    /// Also runs that the sweep file no longer produces (in_plan = 0).
    #[arg(long)]
    pub include_removed: bool,
}

impl SelectArgs {
    fn selection(&self, default_statuses: &[&str]) -> query::Selection {
        query::Selection {
            conditions: self.conditions.clone(),
            statuses: if self.status.is_empty() {
                default_statuses.iter().map(|s| s.to_string()).collect()
            } else {
                self.status.clone()
            },
            include_removed: self.include_removed,
        }
    }
}

/// How `best` reports a group's seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Seeds {
    /// Mean, sample std, n, min and max per group.
    #[default]
    Mean,
    /// Every run's value.
    All,
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
    /// Query speed on a synthetic results database (default 200 runs × 30 metrics × 2,000 steps,
    /// 12 M rows, built through the writer once and reused): times `best`, `runs` and an export
    /// of one metric.
    Query {
        /// Number of runs (temperature × pooling × seed).
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Metrics per step.
        #[arg(long, default_value_t = 30)]
        metrics: usize,
        /// Steps per run.
        #[arg(long, default_value_t = 2000)]
        steps: usize,
        /// The database (reused when it holds this benchmark's sweep of the same size; default: a
        /// file named after the size in the temp directory, kept for the next invocation).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Chart speed on a synthetic 200-run × 30-metric × 2,000-step database (12 M rows): a
    /// learning-curve chart and every run's best value, each against a 1 s target.
    Plot {
        /// Keep the synthetic database here (reused when it exists; default: a temporary file).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Training throughput against a PyTorch reference (transformers BertModel + the SimCSE loss,
    /// eager mode) on the same geometry, batch, max_len, precision, threads and token ids, in one
    /// invocation: sentences/s, tokens/s, the ratio simsweep / reference, model FLOP utilisation.
    Train {
        /// minilm (6×384), bert-base (12×768), bert-large, tiny, or a path to a config.json.
        #[arg(long, default_value = "minilm")]
        geometry: String,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, default_value_t = 32)]
        max_len: usize,
        /// Timed steps (after the warm-up).
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Untimed warm-up steps (also simsweep's metric window while benchmarking; default 5 on
        /// CPU, 25 — the trainer's own window — on CUDA).
        #[arg(long)]
        warmup: Option<usize>,
        /// fp32, bf16 or fp16 (autocast on CUDA; CPU computes in fp32).
        #[arg(long, default_value = "fp32")]
        precision: String,
        /// cpu, cuda, cuda:N (default: cuda:0 when available, else cpu).
        #[arg(long)]
        device: Option<String>,
        /// Python with torch 2.11 and transformers (scripts/pyref.sh makes one).
        #[arg(long, env = "SIMSWEEP_PYREF", default_value = "python3")]
        python: PathBuf,
        /// Measurements per side, alternating (medians are compared).
        #[arg(long, default_value_t = 2)]
        repeat: usize,
        /// Also time simsweep with train.step_metrics = false (the cost of the step metrics).
        #[arg(long)]
        metrics_off: bool,
        /// Also profile simsweep's step by phase (an extra, synchronised run).
        #[arg(long)]
        profile: bool,
        /// Training sentences, one per line (relative to --data-dir).
        #[arg(long, default_value = "wiki1m_for_simcse.head.txt")]
        data: PathBuf,
        /// Peak TFLOP/s for MFU (default: nominal by GPU name; always also against a measured matmul).
        #[arg(long)]
        peak_tflops: Option<f64>,
        /// The reference's attention implementation (transformers attn_implementation).
        #[arg(long, default_value = "sdpa")]
        attn: String,
        /// Append the figures as a JSON line to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Sweep throughput: a sweep of small runs trained one at a time, then N at a time on one
    /// device (`--jobs-per-device N`), into fresh databases: both wall times and the ratio.
    Sweep {
        /// Runs in the sweep.
        #[arg(long, default_value_t = 8)]
        runs: usize,
        /// Runs at once in the packed pass.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
        /// Steps per run.
        #[arg(long, default_value_t = 100)]
        steps: usize,
        /// cpu, cuda, cuda:N (default: cuda:0 when available, else cpu).
        #[arg(long)]
        device: Option<String>,
    },
    /// Share of a run's wall time spent probing: trains the sweep file's runs into a temporary
    /// database and prints probe seconds / run seconds (target ≤ 5 % with the default schedule).
    Probe {
        /// The sweep file (default: sweeps/quickstart.toml).
        #[arg(default_value = "sweeps/quickstart.toml")]
        file: PathBuf,
        /// cpu, cuda, cuda:N (default: cuda:0 when available, else cpu).
        #[arg(long)]
        device: Option<String>,
    },
}

/// Where `run` executes the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Executor {
    Local,
    Slurm,
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
        Command::Run {
            ref file,
            ref devices,
            jobs_per_device,
            retry_failed,
            ref progress,
            executor: Executor::Local,
            ref partition,
            gpus_per_task,
            cpus_per_task,
            ref time,
            array_parallelism,
            ref sbatch_arg,
            dry_run,
            wait,
            ..
        } => {
            let slurm_only = [
                ("--partition", partition.is_some()),
                ("--gpus-per-task", gpus_per_task.is_some()),
                ("--cpus-per-task", cpus_per_task.is_some()),
                ("--time", time.is_some()),
                ("--array-parallelism", array_parallelism.is_some()),
                ("--sbatch-arg", !sbatch_arg.is_empty()),
                ("--dry-run", dry_run),
                ("--wait", wait),
            ];
            if let Some((flag, _)) = slurm_only.iter().find(|(_, given)| *given) {
                return Err(BadInput(format!("{flag} needs --executor slurm")).into());
            }
            run(&cli, file, devices, jobs_per_device, retry_failed, progress)
        }
        Command::Run {
            ref file,
            ref devices,
            jobs_per_device,
            retry_failed,
            progress: _,
            executor: Executor::Slurm,
            ref partition,
            gpus_per_task,
            cpus_per_task,
            ref time,
            array_parallelism,
            ref sbatch_arg,
            dry_run,
            wait,
            poll,
        } => {
            if !devices.is_empty() || jobs_per_device != 1 {
                return Err(BadInput(
                    "--devices and --jobs-per-device apply to the local executor; a Slurm task trains one run, on CUDA when given GPUs (--gpus-per-task), else on the CPU".into(),
                )
                .into());
            }
            if array_parallelism == Some(0) {
                return Err(BadInput("--array-parallelism must be at least 1".into()).into());
            }
            if !(poll.is_finite() && poll > 0.0) {
                return Err(BadInput("--poll must be a positive number of seconds".into()).into());
            }
            let opts = crate::slurm::SubmitOptions {
                partition: partition.clone(),
                gpus_per_task,
                cpus_per_task,
                time: time.clone(),
                array_parallelism,
                sbatch_args: sbatch_arg.clone(),
                dry_run,
                wait,
                poll,
                retry_failed,
            };
            crate::slurm::submit(file, &cli.db, &cli.data_dir, &opts)
        }
        Command::Worker {
            ref tasks,
            index,
            ref job,
        } => crate::slurm::worker(tasks, index, job.clone()),
        Command::Merge { ref sweep } => crate::slurm::merge_command(&cli.db, sweep.as_deref()),
        Command::Eval {
            ref model,
            ref pooling,
            mlp_only_train,
            ref tasks,
            max_len,
            batch_size,
            ref device,
            json,
        } => eval(
            model,
            pooling,
            mlp_only_train,
            tasks,
            max_len,
            batch_size,
            device.as_deref(),
            json,
            &cli.data_dir,
        ),
        Command::Status { ref sweep } => status(&cli, sweep.as_deref()),
        Command::Probe {
            ref model,
            ref sentences,
            size,
            ref pooling,
            mlp_only_train,
            max_len,
            ref layers,
            ref device,
            json,
        } => probe(
            model,
            sentences,
            size,
            pooling,
            mlp_only_train,
            max_len,
            layers,
            device.as_deref(),
            json,
            &cli.data_dir,
        ),
        Command::Runs {
            ref sweep,
            ref select,
            format,
        } => quiet_pipe(runs(&cli.db, sweep, select, format)),
        Command::Best {
            ref sweep,
            ref metric,
            ref by,
            mode,
            goal,
            seeds,
            layer,
            ref select,
            format,
        } => {
            let q = query::BestQuery {
                metric: metric.clone(),
                layer,
                mode,
                goal,
                by: (!by.is_empty()).then(|| {
                    by.iter()
                        .filter(|k| !k.trim().is_empty())
                        .cloned()
                        .collect()
                }),
            };
            quiet_pipe(best(&cli.db, sweep, &q, seeds, select, format))
        }
        Command::Query { ref sql, format } => quiet_pipe(sql_query(&cli.db, sql, format)),
        Command::Export {
            ref sweep,
            format,
            ref metrics,
            layer,
            all_params,
            ref select,
            ref out,
        } => {
            let q = query::ExportQuery {
                format,
                metrics: metrics.clone(),
                layer,
                all_params,
            };
            quiet_pipe(export(&cli.db, sweep, &q, select, out.as_deref()))
        }
        Command::Plot {
            ref sweep,
            kind,
            ref metric,
            ref color_by,
            ref facet_by,
            ref x_key,
            mode,
            ref steps,
            log_y,
            linear_y,
            log_x,
            linear_x,
            size,
            smooth,
            ref title,
            ref out,
        } => {
            let flag = |on: bool, off: bool| match (on, off) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let mut req = crate::plot::Request::new(kind);
            req.color_by = color_by.clone();
            req.facet_by = facet_by.clone();
            req.x_key = x_key.clone();
            req.mode = mode;
            req.steps = steps.clone();
            req.log_y = flag(log_y, linear_y);
            req.log_x = flag(log_x, linear_x);
            req.size = size;
            req.title = title.clone();
            req.smooth = smooth;
            plot(&cli, sweep, req, metric, out.as_deref())
        }
        Command::Report { ref sweep, ref out } => report(&cli, sweep, out.as_deref()),
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
        Command::Bench(BenchCommand::Query {
            runs,
            metrics,
            steps,
            ref out,
        }) => {
            if runs == 0 || metrics == 0 || steps == 0 {
                return Err(
                    BadInput("--runs, --metrics and --steps must be at least 1".into()).into(),
                );
            }
            crate::bench::query(runs, metrics, steps, out.as_deref())?;
            Ok(0)
        }
        Command::Bench(BenchCommand::Plot { ref out }) => {
            crate::bench::plot(out.as_deref())?;
            Ok(0)
        }
        Command::Bench(BenchCommand::Train {
            ref geometry,
            batch,
            max_len,
            steps,
            warmup,
            ref precision,
            ref device,
            ref python,
            repeat,
            metrics_off,
            profile,
            ref data,
            peak_tflops,
            ref attn,
            ref json,
        }) => {
            if batch < 2 || max_len < 2 || steps < 2 {
                return Err(
                    BadInput("--batch, --max-len and --steps must be at least 2".into()).into(),
                );
            }
            if !["fp32", "bf16", "fp16"].contains(&precision.as_str()) {
                return Err(BadInput(format!(
                    "--precision {precision}: expected fp32, bf16 or fp16"
                ))
                .into());
            }
            let device = device_arg(device.as_deref())?;
            let opts = crate::bench::train::Options {
                geometry: geometry.clone(),
                batch,
                max_len,
                steps,
                warmup: warmup.unwrap_or(match device {
                    tch::Device::Cpu => 5,
                    _ => crate::train::FLUSH_EVERY as usize,
                }),
                data_dir: cli.data_dir.clone(),
                precision: precision.clone(),
                device,
                python: python.clone(),
                repeat,
                metrics_off,
                profile,
                data: crate::spec::config::resolve_data_path(
                    &cli.data_dir,
                    &data.display().to_string(),
                ),
                peak_tflops,
                attn: attn.clone(),
                json: json.clone(),
            };
            crate::bench::train::train(&opts)?;
            Ok(0)
        }
        Command::Bench(BenchCommand::Sweep {
            runs,
            jobs,
            steps,
            ref device,
        }) => {
            if runs == 0 || jobs == 0 || steps == 0 {
                return Err(
                    BadInput("--runs, --jobs and --steps must be at least 1".into()).into(),
                );
            }
            let device = device_arg(device.as_deref())?;
            crate::bench::sweep(runs, jobs, steps, device, &cli.data_dir)?;
            Ok(0)
        }
        Command::Bench(BenchCommand::Probe {
            ref file,
            ref device,
        }) => {
            let device = device_arg(device.as_deref())?;
            crate::bench::probe_cost(file, &cli.data_dir, device)?;
            Ok(0)
        }
    }
}

fn device_arg(d: Option<&str>) -> Result<tch::Device> {
    match d {
        Some(s) => crate::exec::parse_device(s).map_err(|e| BadInput(e).into()),
        None => Ok(tch::Device::cuda_if_available()),
    }
}

fn run(
    cli: &Cli,
    file: &std::path::Path,
    devices: &[String],
    jobs_per_device: usize,
    retry_failed: bool,
    progress: &str,
) -> Result<i32> {
    let mut devs = Vec::new();
    for d in devices {
        let device = device_arg(Some(d))?;
        if let tch::Device::Cuda(i) = device {
            if !tch::Cuda::is_available() || i as i64 >= tch::Cuda::device_count() {
                return Err(BadInput(format!(
                    "--devices: cuda:{i} is not available ({} CUDA devices)",
                    tch::Cuda::device_count()
                ))
                .into());
            }
        }
        if devs.contains(&device) {
            return Err(BadInput(format!(
                "--devices: {d} is listed twice (use --jobs-per-device for several runs per device)"
            ))
            .into());
        }
        devs.push(device);
    }
    if devs.is_empty() {
        devs.push(tch::Device::cuda_if_available());
    }
    if jobs_per_device == 0 {
        return Err(BadInput("--jobs-per-device must be at least 1".into()).into());
    }
    let progress = match progress {
        "auto" => crate::exec::ProgressMode::Auto,
        "lines" => crate::exec::ProgressMode::Lines,
        "quiet" => crate::exec::ProgressMode::Quiet,
        other => {
            return Err(BadInput(format!(
                "--progress: unknown mode `{other}` (auto, lines, quiet)"
            ))
            .into())
        }
    };
    let (sweep, summary) = load_and_plan(cli, file)?;
    let requeued = if retry_failed {
        Store::open(&cli.db)?.requeue(&sweep.name, &["failed", "diverged"])?
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
            .map(|d| crate::exec::device_name(*d))
            .collect::<Vec<_>>()
            .join(", "),
        if jobs_per_device > 1 {
            format!(" × {jobs_per_device} jobs each")
        } else {
            String::new()
        }
    );
    let cancel = crate::exec::install_interrupt_handler();
    let opts = crate::exec::ExecOptions {
        devices: devs,
        jobs_per_device,
        only: None,
        progress,
        results_dir: None,
    };
    let totals = crate::exec::run_sweep(&sweep, &cli.db, &cli.data_dir, &opts, cancel)?;
    println!(
        "sweep {}: {} done, {} failed, {} diverged, {} cancelled in this invocation → {}",
        sweep.name,
        totals.done,
        totals.failed,
        totals.diverged,
        totals.cancelled,
        cli.db.display()
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

#[allow(clippy::too_many_arguments)]
fn eval(
    model_dir: &std::path::Path,
    pooling: &str,
    mlp_only_train: bool,
    tasks: &[String],
    max_len: Option<usize>,
    batch_size: usize,
    device: Option<&str>,
    json: bool,
    data_dir: &std::path::Path,
) -> Result<i32> {
    use crate::eval::{StsData, Task};
    let device = device_arg(device)?;
    let pooling_kind: crate::model::Pooling = pooling.parse().map_err(BadInput)?;
    let tasks: Vec<Task> = if tasks.is_empty() {
        Task::ALL.to_vec()
    } else {
        Task::parse_list(tasks).map_err(|e| BadInput(format!("{e:#}")))?
    };
    if batch_size == 0 {
        return Err(BadInput("--batch-size must be at least 1".into()).into());
    }
    let model = crate::model::LoadedModel::load(
        model_dir,
        crate::model::Init::Pretrained { seed: 0 },
        &Default::default(),
        device,
    )
    .with_context(|| format!("loading {}", model_dir.display()))?;
    let max_len = max_len.unwrap_or(model.max_tokens() as usize);
    let sts = StsData::load(data_dir, &tasks)?;
    let pooler = crate::model::Pooler {
        pooling: pooling_kind,
        mlp_only_train,
    };
    let scores =
        crate::train::embed_scores(&model, &pooler, &sts, &tasks, max_len, batch_size, None)?;
    let mut entries: Vec<(String, f64)> = scores
        .entries()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if let Some(avg) = scores.avg() {
        entries.push(("avg".into(), avg));
    }
    if json {
        let map: serde_json::Map<String, serde_json::Value> = entries
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!(v)))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"model": model_dir, "pooling": pooling, "scores": map})
            )?
        );
    } else {
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|(k, v)| vec![k.clone(), format!("{v:.2}")])
            .collect();
        println!("{} ({pooling})", model_dir.display());
        print!(
            "{}",
            crate::table::render(&["task".to_string(), "spearman×100".to_string()], &rows)
        );
    }
    Ok(0)
}

fn status(cli: &Cli, sweep: Option<&str>) -> Result<i32> {
    // Work submitted to Slurm: merge the shards and ask Slurm about its tasks first.
    let mut states = std::collections::HashMap::new();
    if cli.db.is_file() && crate::slurm::results_dir(&cli.db).join("shards").is_dir() {
        match Store::open(&cli.db) {
            Ok(mut store) => {
                let known = match sweep {
                    Some(s) => !store.sweep_runs(s)?.is_empty(),
                    None => true,
                };
                if known {
                    let rec = crate::slurm::reconcile(&mut store, sweep)?;
                    rec.print_notes();
                    states = rec.states;
                }
            }
            Err(e) => eprintln!("warning: cannot merge Slurm shards: {e}"),
        }
    }
    let store = Store::open_readonly(&cli.db)?;
    let c = &store.conn;
    let mut st = c.prepare(
        "SELECT s.name, count(r.run_pk),
                sum(r.status = 'pending'), sum(r.status = 'running'), sum(r.status = 'done'),
                sum(r.status = 'failed'), sum(r.status = 'diverged'), sum(r.status = 'cancelled')
         FROM sweeps s LEFT JOIN runs r ON r.sweep_id = s.sweep_id AND r.in_plan = 1
         WHERE ?1 IS NULL OR s.name = ?1 GROUP BY s.sweep_id ORDER BY s.sweep_id",
    )?;
    let rows: Vec<Vec<String>> = st
        .query_map([sweep], |r| {
            (0..8)
                .map(|i| {
                    if i == 0 {
                        r.get::<_, String>(0)
                    } else {
                        Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0).to_string())
                    }
                })
                .collect()
        })?
        .collect::<rusqlite::Result<_>>()?;
    if rows.is_empty() {
        return Err(BadInput(match sweep {
            Some(s) => format!("no sweep named `{s}` in {}", cli.db.display()),
            None => format!("no sweeps in {}", cli.db.display()),
        })
        .into());
    }
    let headers: Vec<String> = [
        "sweep",
        "runs",
        "pending",
        "running",
        "done",
        "failed",
        "diverged",
        "cancelled",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    print!("{}", crate::table::render(&headers, &rows));
    if let Some(name) = sweep {
        let runs = store.sweep_runs(name)?;
        let running: Vec<Vec<String>> = runs
            .iter()
            .filter(|r| r.status == "running")
            .map(|r| {
                let worker = r.worker.clone().unwrap_or_default();
                let slurm = worker
                    .strip_prefix(crate::store::shard::SLURM_WORKER)
                    .and_then(|t| states.get(t))
                    .map(|s: &crate::slurm::TaskState| s.describe())
                    .unwrap_or_default();
                vec![
                    r.run_id.clone(),
                    r.step.map_or("-".into(), |s| s.to_string()),
                    worker,
                    r.host.clone().unwrap_or_default(),
                    slurm,
                ]
            })
            .collect();
        if !running.is_empty() {
            println!("\nrunning");
            print!(
                "{}",
                crate::table::render(
                    &[
                        "run".into(),
                        "step".into(),
                        "worker".into(),
                        "host".into(),
                        "slurm".into()
                    ],
                    &running
                )
            );
        }
        for r in runs
            .iter()
            .filter(|r| matches!(r.status.as_str(), "failed" | "diverged"))
        {
            println!(
                "\n{} {} at step {}: {}",
                r.run_id,
                r.status,
                r.step.map_or("-".into(), |s| s.to_string()),
                r.error.as_deref().unwrap_or("")
            );
        }
    }
    Ok(0)
}

#[allow(clippy::too_many_arguments)]
fn probe(
    model_dir: &std::path::Path,
    sentences: &str,
    size: usize,
    pooling: &str,
    mlp_only_train: bool,
    max_len: usize,
    layers: &str,
    device: Option<&str>,
    json: bool,
    data_dir: &std::path::Path,
) -> Result<i32> {
    use serde_json::{json, Map, Value};
    let device = device_arg(device)?;
    let pooling_kind: crate::model::Pooling = pooling.parse().map_err(BadInput)?;
    let layer_sel = crate::probe::Layers::parse(layers).map_err(|e| BadInput(format!("{e:#}")))?;
    if size < 2 {
        return Err(BadInput("--size must be at least 2".into()).into());
    }
    let model = crate::model::LoadedModel::load(
        model_dir,
        crate::model::Init::Pretrained { seed: 0 },
        &Default::default(),
        device,
    )
    .with_context(|| format!("loading {}", model_dir.display()))?;
    let last = model.num_layers();
    let layer_list = layer_sel
        .resolve(last)
        .map_err(|e| BadInput(format!("{e:#}")))?;
    model
        .check_max_len(max_len)
        .map_err(|e| BadInput(e.to_string()))?;
    let set = crate::probe::ProbeSet::from_settings(&model, data_dir, sentences, size, max_len)?;
    let pooler = crate::model::Pooler {
        pooling: pooling_kind,
        mlp_only_train,
    };
    let rows = crate::probe::probe(&model, &pooler, &set, &layer_list)?;
    let of_layer = |l: i64| -> Vec<(String, f64)> {
        rows.iter()
            .filter(|r| r.0 == l)
            .map(|r| (r.1.clone(), r.2))
            .collect()
    };
    let to_map = |v: &[(String, f64)]| -> Map<String, Value> {
        v.iter()
            .map(|(k, x)| {
                (
                    k.clone(),
                    if x.is_finite() { json!(x) } else { Value::Null },
                )
            })
            .collect()
    };
    let own = of_layer(-1);
    if json {
        let mut out = json!({
            "model": model_dir,
            "pooling": pooling,
            "layer": last,
            "sentences": set.len(),
            "max_len": max_len,
            "metrics": to_map(&own),
        });
        if !layer_list.is_empty() {
            let layers: Map<String, Value> = layer_list
                .iter()
                .map(|&l| (l.to_string(), Value::Object(to_map(&of_layer(l as i64)))))
                .collect();
            out["layers"] = Value::Object(layers);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let mut headers = vec!["metric".to_string(), format!("{pooling} (layer {last})")];
        headers.extend(layer_list.iter().map(|l| format!("layer {l} (avg)")));
        let per: Vec<Vec<(String, f64)>> = layer_list.iter().map(|&l| of_layer(l as i64)).collect();
        let table: Vec<Vec<String>> = own
            .iter()
            .map(|(k, v)| {
                let mut row = vec![k.clone(), format!("{v:.6}")];
                for p in &per {
                    row.push(
                        p.iter()
                            .find(|(n, _)| n == k)
                            .map(|(_, x)| format!("{x:.6}"))
                            .unwrap_or_default(),
                    );
                }
                row
            })
            .collect();
        println!(
            "{}: {} probe sentences, max_len {max_len}, {} self-similarity types, {} alignment pairs",
            model_dir.display(),
            set.len(),
            set.types.len(),
            set.alignment_pairs
        );
        print!("{}", crate::table::render(&headers, &table));
    }
    Ok(0)
}

/// Open the results database for reading; a missing file is bad input (exit 2).
fn open_results(db: &Path) -> Result<Store> {
    if !db.is_file() {
        return Err(BadInput(format!(
            "no results database at {} (record a sweep with `simsweep plan FILE`, or choose one with --db / SIMSWEEP_DB)",
            db.display()
        ))
        .into());
    }
    Ok(Store::open_readonly(db)?)
}

/// A query error as the CLI reports it: questions that cannot be answered as asked exit 2.
fn qerr(e: query::Error) -> anyhow::Error {
    match e {
        query::Error::Input(m) => BadInput(m).into(),
        e => e.into(),
    }
}

/// A reader that stopped reading (`| head`) ends the command quietly, as for other Unix tools.
fn quiet_pipe(r: Result<i32>) -> Result<i32> {
    match r {
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    || matches!(c.downcast_ref::<query::Error>(), Some(query::Error::Io(io)) if io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            Ok(0)
        }
        r => r,
    }
}

fn stdout() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())
}

fn runs(db: &Path, sweep: &str, select: &SelectArgs, format: Format) -> Result<i32> {
    let store = open_results(db)?;
    let c = &store.conn;
    let sw = query::sweep(c, sweep).map_err(qerr)?;
    let sel = select.selection(&[]);
    let t = query::runs_table(c, &sw, &sel).map_err(qerr)?;
    let mut out = stdout();
    if format == Format::Table {
        writeln!(
            out,
            "sweep {}{}: {} runs",
            sw.name,
            if sw.description.is_empty() {
                String::new()
            } else {
                format!(" — {}", sw.description)
            },
            t.runs.len()
        )?;
    }
    let headers = t.headers(sel.include_removed);
    let error_col = headers.len() - 1;
    // In the table, each score column keeps one number of decimals (4 significant digits of its
    // largest value), so scores line up.
    let decimals: Vec<(usize, usize)> = t
        .headlines
        .iter()
        .zip(&t.scores)
        .map(|(h, s)| {
            let col = headers.iter().position(|c| c == h.column).expect("column");
            let d = query::output::decimals_for(s.iter().filter_map(|v| v.and_then(|v| v.value)));
            (col, d)
        })
        .collect();
    let mut w = RowWriter::new(out, format, headers, "-");
    for i in 0..t.runs.len() {
        let mut row = t.row(i, sel.include_removed);
        if format == Format::Table {
            if let serde_json::Value::String(e) = &row[error_col] {
                row[error_col] = serde_json::Value::String(query::output::shorten(e, 60));
            }
            for &(col, d) in &decimals {
                if let Some(x) = row[col].as_f64() {
                    row[col] = serde_json::Value::String(format!("{x:.d$}"));
                }
            }
        }
        w.row(&row)?;
    }
    w.finish()?;
    Ok(0)
}

fn best(
    db: &Path,
    sweep: &str,
    q: &query::BestQuery,
    seeds: Seeds,
    select: &SelectArgs,
    format: Format,
) -> Result<i32> {
    use query::output::{decimals_for, opt_num};
    use serde_json::{json, Value};
    let store = open_results(db)?;
    let c = &store.conn;
    let sw = query::sweep(c, sweep).map_err(qerr)?;
    let sel = select.selection(&["done"]);
    let b = query::best(c, &sw, &sel, q).map_err(qerr)?;
    let mut out = stdout();
    if format == Format::Json {
        serde_json::to_writer_pretty(&mut out, &b.to_json())?;
        writeln!(out)?;
        out.flush()?;
        return Ok(0);
    }
    let show_status = sel.statuses != ["done"];
    let mut headers = b.by.clone();
    let rows: Vec<Vec<Value>> = match seeds {
        Seeds::Mean => {
            headers.extend(["n", "runs", "mean", "std", "min", "max"].map(String::from));
            b.groups
                .iter()
                .map(|g| {
                    let s = g.stats.as_ref();
                    let mut r = g.key.clone();
                    r.extend([
                        json!(s.map_or(0, |s| s.n)),
                        json!(g.runs.len()),
                        opt_num(s.map(|s| s.mean)),
                        opt_num(s.and_then(|s| s.std)),
                        opt_num(s.map(|s| s.min)),
                        opt_num(s.map(|s| s.max)),
                    ]);
                    r
                })
                .collect()
        }
        Seeds::All => {
            headers.extend(["seed", "run_id"].map(String::from));
            if show_status || format == Format::Csv {
                headers.push("status".into());
            }
            headers.extend(["step".to_string(), b.metric.clone()]);
            b.groups
                .iter()
                .flat_map(|g| {
                    g.runs.iter().map(|run| {
                        let mut r = g.key.clone();
                        r.extend([json!(run.seed), json!(run.run_id)]);
                        if show_status || format == Format::Csv {
                            r.push(json!(run.status));
                        }
                        r.extend([json!(run.step), opt_num(run.value)]);
                        r
                    })
                })
                .collect()
        }
    };
    if format == Format::Csv {
        let mut w = RowWriter::new(out, Format::Csv, headers, "");
        for r in &rows {
            w.row(r)?;
        }
        w.finish()?;
        return Ok(0);
    }
    // The table: one decimal setting for every value shown, so groups line up.
    let values = b
        .groups
        .iter()
        .flat_map(|g| g.runs.iter().filter_map(|r| r.value));
    let d = decimals_for(values);
    let f = |x: f64| format!("{x:.d$}");
    let runs: usize = b.groups.iter().map(|g| g.runs.len()).sum();
    writeln!(
        out,
        "{}{}: {} ({}) — sweep {}, {} {}runs in {} groups{}",
        b.metric,
        if b.layer == -1 {
            String::new()
        } else {
            format!(" at layer {}", b.layer)
        },
        match b.mode {
            Mode::Best => "best over steps",
            Mode::Final => "final value",
        },
        b.goal.word(),
        b.sweep,
        runs,
        if sel.statuses.is_empty() {
            String::new()
        } else {
            format!("{} ", sel.statuses.join("/"))
        },
        b.groups.len(),
        if seeds == Seeds::Mean {
            "; mean ± sample std (n−1) over each group's runs"
        } else {
            ""
        }
    )?;
    let cell = |v: &Value| query::output::table_cell(v, "-");
    let table: Vec<Vec<String>> = match seeds {
        Seeds::Mean => {
            let keys = b.by.len();
            headers = b.by.clone();
            headers.extend(["mean ± std", "n", "min", "max"].map(String::from));
            b.groups
                .iter()
                .zip(&rows)
                .map(|(g, r)| {
                    let mut t: Vec<String> = r[..keys].iter().map(cell).collect();
                    match &g.stats {
                        Some(s) => {
                            t.push(match s.std {
                                Some(sd) => format!("{} ± {}", f(s.mean), f(sd)),
                                None => f(s.mean),
                            });
                            t.push(if s.n == g.runs.len() {
                                s.n.to_string()
                            } else {
                                format!("{} of {}", s.n, g.runs.len())
                            });
                            t.extend([f(s.min), f(s.max)]);
                        }
                        None => t.extend([
                            "-".to_string(),
                            format!("0 of {}", g.runs.len()),
                            "-".into(),
                            "-".into(),
                        ]),
                    }
                    t
                })
                .collect()
        }
        Seeds::All => rows
            .iter()
            .map(|r| {
                let mut t: Vec<String> = r[..r.len() - 1].iter().map(cell).collect();
                t.push(r[r.len() - 1].as_f64().map_or("-".into(), f));
                t
            })
            .collect(),
    };
    out.write_all(crate::table::render(&headers, &table).as_bytes())?;
    out.flush()?;
    Ok(0)
}

fn sql_query(db: &Path, sql: &str, format: Format) -> Result<i32> {
    let store = open_results(db)?;
    let mut st = query::prepare_readonly(&store.conn, sql).map_err(qerr)?;
    let headers: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
    let mut w = RowWriter::new(stdout(), format, headers, "NULL");
    query::for_each_row(&mut st, |r| Ok(w.row(r)?)).map_err(qerr)?;
    w.finish()?;
    Ok(0)
}

fn export(
    db: &Path,
    sweep: &str,
    q: &query::ExportQuery,
    select: &SelectArgs,
    out: Option<&Path>,
) -> Result<i32> {
    let store = open_results(db)?;
    let c = &store.conn;
    let sw = query::sweep(c, sweep).map_err(qerr)?;
    let sel = select.selection(&[]);
    match out {
        None => {
            query::export(c, &sw, &sel, q, &mut stdout()).map_err(qerr)?;
        }
        Some(path) => {
            // Refuse unknown metrics before creating the file.
            for m in &q.metrics {
                query::metric(c, m).map_err(qerr)?;
            }
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
            let st = query::export(c, &sw, &sel, q, &mut w).map_err(qerr)?;
            eprintln!(
                "{} runs, {} lines, {} metrics ({}) → {}",
                st.runs,
                st.lines,
                st.metrics.len(),
                query::summarize_names(st.metrics.iter().map(|m| m.as_str())),
                path.display()
            );
        }
    }
    Ok(0)
}

fn load_and_plan(
    cli: &Cli,
    file: &std::path::Path,
) -> Result<(spec::Sweep, crate::store::PlanSummary)> {
    let sweep = spec::load(file).map_err(|e| BadInput(e.to_string()))?;
    spec::check_paths(&sweep, &cli.data_dir).map_err(|e| BadInput(e.to_string()))?;
    for w in &sweep.warnings {
        eprintln!("warning: {w}");
    }
    let mut store = Store::open(&cli.db)?;
    let summary = store
        .plan(&sweep)
        .with_context(|| format!("recording sweep `{}`", sweep.name))?;
    Ok((sweep, summary))
}

fn plan(cli: &Cli, file: &std::path::Path, json: bool) -> Result<i32> {
    let (sweep, summary) = load_and_plan(cli, file)?;
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

fn parse_size(s: &str) -> std::result::Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X', '×'])
        .ok_or_else(|| format!("`{s}`: expected WIDTHxHEIGHT, e.g. 900x600"))?;
    let p = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (100..=10_000).contains(n))
            .ok_or_else(|| {
                format!("`{s}`: width and height must be whole numbers from 100 to 10000")
            })
    };
    Ok((p(w)?, p(h)?))
}

/// `simsweep plot`: read, then render (several metrics in parallel), then write.
fn plot(
    cli: &Cli,
    sweep: &str,
    req: crate::plot::Request,
    metrics: &[String],
    out: Option<&std::path::Path>,
) -> Result<i32> {
    use crate::plot::{self, charts, data::SweepData, Format};
    use rayon::prelude::*;
    let metrics: Vec<Option<String>> = if metrics.is_empty() {
        vec![None]
    } else {
        metrics.iter().map(|m| Some(m.trim().to_string())).collect()
    };
    let out = match out {
        Some(p) => p.to_path_buf(),
        None => {
            let name = match (&metrics[0], metrics.len()) {
                (_, n) if n > 1 => format!("{}-{{metric}}.svg", req.kind.name()),
                (Some(m), _) => format!("{}-{m}.svg", req.kind.name()),
                (None, _) => match charts::default_metric(req.kind) {
                    Some(m) => format!("{}-{m}.svg", req.kind.name()),
                    None => format!("{}.svg", req.kind.name()),
                },
            };
            plot::sweep_dir(&cli.db, sweep).join("plots").join(name)
        }
    };
    let format = Format::from_path(&out)?;
    let store = Store::open_readonly(&cli.db)?;
    let data = SweepData::load(&store.conn, sweep)?;
    let mut figures = Vec::new();
    for m in &metrics {
        let mut r = req.clone();
        r.metric = m.clone();
        let fig = charts::figure(&store.conn, &data, &r)?;
        let path = plot::output_for_metric(
            &out,
            m.as_deref()
                .or(charts::default_metric(req.kind))
                .unwrap_or(req.kind.name()),
            metrics.len() > 1,
        );
        figures.push((path, fig));
    }
    let rendered: Vec<(std::path::PathBuf, Vec<u8>)> = figures
        .into_par_iter()
        .map(|(path, fig)| Ok((path, plot::render_bytes(&fig, req.size, format)?)))
        .collect::<Result<_>>()?;
    for (path, bytes) in rendered {
        plot::write_output(&path, &bytes)?;
        println!("{}", path.display());
    }
    Ok(0)
}

/// `simsweep report`: the sweep's HTML report.
fn report(cli: &Cli, sweep: &str, out: Option<&std::path::Path>) -> Result<i32> {
    use crate::plot::{self, data::SweepData};
    let out = match out {
        Some(p) => p.to_path_buf(),
        None => plot::sweep_dir(&cli.db, sweep).join("report.html"),
    };
    let store = Store::open_readonly(&cli.db)?;
    let data = SweepData::load(&store.conn, sweep)?;
    let html = plot::report::html(&store.conn, &data, &cli.db)?;
    plot::write_output(&out, html.as_bytes())?;
    println!("{}", out.display());
    Ok(0)
}
