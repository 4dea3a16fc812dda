//! The front's command line: parse and validate arguments into typed values, then dispatch.
//! Commands that read (plan, status, runs, best, query, export, plot, report, merge) run here,
//! without libtorch; commands that compute run in the engine binary: `run` starts one engine
//! process per run through an executor, and `eval`, `probe`, `info` and `bench train` are handed to
//! the engine with their arguments (their options are defined there, once).

mod cache;
mod charts;
mod read;
mod tables;

use crate::query::output::{Format, RowWriter};
use crate::query::{self, Condition, ExportFormat, Goal, Mode};
use crate::spec::value;
use crate::store::Store;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The name/value pairs of a typed option (the library types stay free of clap).
fn choice<T: Copy + Send + Sync + 'static>(
    names: &'static [(&'static str, T)],
) -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(names.iter().map(|(n, _)| *n)).map(move |s| {
        names
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, v)| *v)
            .expect("a possible value")
    })
}

const FORMATS: &[(&str, Format)] = &[
    ("table", Format::Table),
    ("csv", Format::Csv),
    ("json", Format::Json),
];
const MODES: &[(&str, Mode)] = &[("best", Mode::Best), ("final", Mode::Final)];
const GOALS: &[(&str, Goal)] = &[("max", Goal::Max), ("min", Goal::Min)];
const EXPORT_FORMATS: &[(&str, ExportFormat)] =
    &[("csv", ExportFormat::Csv), ("jsonl", ExportFormat::Jsonl)];
const PLOT_KINDS: &[(&str, crate::plot::Kind)] = &[
    ("curves", crate::plot::Kind::Curves),
    ("final", crate::plot::Kind::Final),
    ("align-uniform", crate::plot::Kind::AlignUniform),
    ("spectrum", crate::plot::Kind::Spectrum),
    ("layers", crate::plot::Kind::Layers),
    ("gradients", crate::plot::Kind::Gradients),
    ("parallel", crate::plot::Kind::Parallel),
];

/// The arguments of a command the engine runs, passed on unchanged.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..,
        value_name = "ARGS"
    )]
    pub args: Vec<std::ffi::OsString>,
}

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
        /// Print JSON: {"sweep", "total", "new", "pending", "done", "failed", "pruned", "removed", "search", "order", "runs": [{"id", "params", "status"}]}.
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
    /// similarities). Runs in the engine: `simsweep eval --help` lists its options.
    #[command(disable_help_flag = true)]
    Eval(EngineArgs),
    /// Probe the embedding geometry of a checkpoint (the metrics a run records every
    /// `probe.every` steps). Runs in the engine: `simsweep probe --help` lists its options.
    #[command(disable_help_flag = true)]
    Probe(EngineArgs),
    /// Show what the engine sees: versions, threads, CUDA devices (`--json`).
    #[command(disable_help_flag = true)]
    Info(EngineArgs),
    /// Check the database: SQLite's integrity check, then every per-run metric summary against a
    /// full scan of the metric rows. Exit status 1 when something is wrong.
    Check {
        /// SQLite's quick_check instead of integrity_check (faster on a large file; it does not
        /// check that indexes match their tables).
        #[arg(long)]
        quick: bool,
        /// Rebuild the summaries from the rows (one transaction), after reporting what was wrong.
        #[arg(long)]
        repair: bool,
    },
    /// Counts of runs by status; with a sweep name, also the running runs with their step and the
    /// errors of failed runs.
    Status {
        /// A sweep name (default: every sweep in the database).
        sweep: Option<String>,
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
        #[arg(long, value_parser = choice(FORMATS), default_value = "table")]
        format: Format,
    },
    /// The best (or final) value of a metric per group of settings, with seed statistics: mean ±
    /// sample std (n−1), n, the confidence interval of the mean, median, min, max, and each group
    /// against the best one (difference with its interval, p of a paired t-test over common seeds
    /// or Welch's, Holm-adjusted; ≈ marks groups not distinguishable from the best). Best group
    /// first. Only `done` runs unless --status is given. Paper tables: --format markdown|latex,
    /// several metrics side by side (--metric a,b,c) or one two-way (--pivot ROW,COL).
    Best {
        /// The sweep's name.
        sweep: String,
        /// The metric (as in `metric_values`: stsb_dev, avg, stsb_test, loss, alignment, sv_01, …);
        /// several, comma-separated, make a table with a column per metric.
        #[arg(long, value_delimiter = ',', required = true)]
        metric: Vec<String>,
        /// Settings that define a group (repeatable or comma-separated; default: every swept key,
        /// so a group's runs differ only in seed). `--by ''` pools all selected runs.
        #[arg(long, value_delimiter = ',', value_name = "KEY")]
        by: Vec<String>,
        /// best: the best value over each run's steps; final: the value at its last recorded step.
        #[arg(long, value_parser = choice(MODES), default_value = "best")]
        mode: Mode,
        /// Which direction is better (default: the metric registry's, docs/schema.md: min for
        /// losses, alignment, uniformity and the anisotropies, max for scores; a metric with no
        /// better side needs it with --mode best).
        #[arg(long, value_parser = choice(GOALS))]
        goal: Option<Goal>,
        /// mean: one row per group; all: one row per run (its seed, value and step), groups in
        /// the same order.
        #[arg(long, value_enum, default_value_t)]
        seeds: Seeds,
        /// The layer of per-layer probe metrics (-1: the run's own representation).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        layer: i64,
        /// Confidence level of the intervals and of "not distinguishable from the best"
        /// (Holm-adjusted p ≥ 1 − LEVEL); between 0 and 1.
        #[arg(long = "ci", value_name = "LEVEL", default_value_t = 0.95)]
        ci: f64,
        /// Paper tables (markdown, latex, several metrics, --pivot): what follows the mean,
        /// `± std`, `± ci` (the interval's half-width) or nothing.
        #[arg(long, value_enum, default_value_t = tables::Spread::Std)]
        spread: tables::Spread,
        /// Decimals of every value shown (default: four significant digits of the largest).
        #[arg(long, value_name = "N")]
        digits: Option<usize>,
        /// Lay one metric out as a two-way table: rows the values of ROWKEY, columns those of
        /// COLKEY (both swept keys; other keys pooled), e.g. `--pivot train.temperature,model.pooling`.
        #[arg(long, value_name = "ROWKEY,COLKEY", value_delimiter = ',')]
        pivot: Vec<String>,
        #[command(flatten)]
        select: SelectArgs,
        /// table, csv, json (every group with its runs and statistics), markdown or latex
        /// (booktabs; best bold, groups tied with the best underlined).
        #[arg(long, value_parser = choice(tables::BEST_FORMATS), default_value = "table")]
        format: tables::BestFormat,
    },
    /// Which settings matter: the share of a metric's variance (best or final per run) explained
    /// by each swept key and each pair of keys. A full grid gets the ANOVA decomposition of its
    /// cells (seeds as replicates: the residual is the seed's share; F-tests against it); a sweep
    /// that is not a full grid (random search, holes) a random forest's out-of-bag permutation
    /// importance. `-o FILE` also draws the shares as bars.
    Importance {
        /// The sweep's name.
        sweep: String,
        /// The metric.
        #[arg(long)]
        metric: String,
        /// best: each run's best value over its steps; final: its last.
        #[arg(long, value_parser = choice(MODES), default_value = "best")]
        mode: Mode,
        /// Which direction is better (default: the metric registry's).
        #[arg(long, value_parser = choice(GOALS))]
        goal: Option<Goal>,
        /// The layer of per-layer probe metrics (-1: the run's own representation).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        layer: i64,
        #[command(flatten)]
        select: SelectArgs,
        /// table, csv or json.
        #[arg(long, value_parser = choice(FORMATS), default_value = "table")]
        format: Format,
        /// Also write the bar chart here (.svg or .png).
        #[arg(short = 'o', long = "out")]
        out: Option<PathBuf>,
    },
    /// Read-only SQL over the results database (views run_params, metric_values, runs_wide; see
    /// docs/schema.md). One statement; a statement that would write is refused.
    Query {
        /// One SELECT (or WITH … SELECT, EXPLAIN, read-only PRAGMA) statement.
        sql: String,
        /// table (NULL shown as NULL), csv (NULL as an empty field) or json (an array of objects).
        #[arg(long, value_parser = choice(FORMATS), default_value = "table")]
        format: Format,
    },
    /// Settings and metric series of a sweep's runs, for pandas and DuckDB: csv has one row per
    /// (run, step) with settings and metrics as columns; jsonl one object per run with each
    /// metric's steps and values.
    Export {
        /// The sweep's name.
        sweep: String,
        /// csv or jsonl.
        #[arg(long, value_parser = choice(EXPORT_FORMATS), default_value = "csv")]
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
    /// spectrum, per-layer probe profiles, the gradient components, or parallel coordinates of
    /// the swept keys against a metric. See docs/cli.md.
    Plot {
        /// The sweep's name.
        sweep: String,
        /// What to draw.
        #[arg(long, value_parser = choice(PLOT_KINDS))]
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
        /// final: each run's best value over its steps (max, or min for lower-is-better metrics:
        /// the metric registry, docs/schema.md) or its value at the last step.
        #[arg(long, value_parser = choice(MODES), default_value = "best")]
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
        #[arg(long, value_parser = charts::parse_size)]
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
    /// The live dashboard: serve the results database (read-only) as a web page and a JSON API
    /// (docs/api.md) until Ctrl-C. The page lists the sweeps; a sweep's page has its run table and
    /// charts, updated within 2 s while runs train; a run's page has its settings, events,
    /// checkpoints, scores and curves. Binds 127.0.0.1 unless --host says otherwise.
    Serve {
        /// Address to listen on. Another than 127.0.0.1 (or ::1) lets other machines read the
        /// results (no authentication); a warning says so.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Port (0: any free one; the address taken is printed).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Open the page in the desktop's browser (xdg-open) once listening.
        #[arg(long)]
        open: bool,
    },
    /// The tokenized-corpus cache that runs share (`<db folder>/cache/tokens`, or
    /// $SIMSWEEP_TOKEN_CACHE; `off` disables it): list or clear its entries.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Benchmarks (not tests): print measured figures.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// The cache's folder and entries: key, state (ok, damaged: why, partial = a build in progress
    /// or interrupted, lock), size, examples, tokens, max_len, training files, tokenizer, created.
    Status {
        /// Also check every entry's checksum (reads each whole); by default the header and
        /// length only.
        #[arg(long)]
        verify: bool,
        /// table, csv or json (json: the folder and every entry with its full description).
        #[arg(long, value_parser = choice(FORMATS), default_value = "table")]
        format: Format,
    },
    /// Remove the cache's entries, temporary files and locks (nothing else in the folder). Runs
    /// that have an entry open keep reading it; later runs rebuild what they need.
    Clear,
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
    /// failed, diverged, cancelled, pruned. Default: done for `best` and `importance`, every
    /// status otherwise.
    #[arg(long, value_delimiter = ',', value_name = "S")]
    pub status: Vec<String>,
    /// With the default statuses of `best` and `importance` (done), also the runs early stopping
    /// pruned (their best value up to the step they were stopped at).
    #[arg(long)]
    pub include_pruned: bool,
    /// Also runs that the sweep file no longer produces (in_plan = 0).
    #[arg(long)]
    pub include_removed: bool,
}

impl SelectArgs {
    fn selection(&self, default_statuses: &[&str]) -> query::Selection {
        query::Selection {
            conditions: self.conditions.clone(),
            statuses: if self.status.is_empty() {
                let mut d: Vec<String> = default_statuses.iter().map(|s| s.to_string()).collect();
                if self.include_pruned && !d.iter().any(|s| s == "pruned") {
                    d.push("pruned".into());
                }
                d
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
    /// Training throughput against a PyTorch reference (transformers BertModel + the SimCSE loss,
    /// eager mode); runs in the engine: `simsweep bench train --help` lists its options.
    #[command(disable_help_flag = true)]
    Train(EngineArgs),
    /// SentEval's transfer protocol (both modes) on saved embeddings against the Python reference
    /// (scripts/parity_transfer.py) in one invocation: time, ratio and every score side by side;
    /// runs in the engine: `simsweep bench eval --help` lists its options.
    #[command(disable_help_flag = true)]
    Eval(EngineArgs),
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
    /// Query speed on synthetic results databases (12 M rows: 200 runs × 30 metrics × 2,000 steps;
    /// with --large also 300 M rows: 2,500 runs × 30 metrics × 4,000 steps), each built through the
    /// writer once and reused: times `best`, `best --mode final`, `runs`, one run's curve and an
    /// export, in-process and as whole processes, against the targets.
    Query {
        /// A single size instead: number of runs (temperature × pooling × seed; default 200).
        #[arg(long)]
        runs: Option<usize>,
        /// A single size instead: metrics per step (default 30).
        #[arg(long)]
        metrics: Option<usize>,
        /// A single size instead: steps per run (default 2,000).
        #[arg(long)]
        steps: Option<usize>,
        /// Also the 300 M-row database (about 8 GB of disk; building it takes minutes).
        #[arg(long)]
        large: bool,
        /// Folder of the databases, named after their size (default: the temp directory; they are
        /// kept and reused by the next invocation).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The database file, when one size is measured (reused when it holds this benchmark's
        /// sweep of the same size).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Slurm shard merging at scale: finished task shards (default 1,000 of 2,000 steps × 30
    /// metrics) merged into the main database, then again with nothing changed, then with 1 %
    /// changed; against a 1 minute target for the first merge.
    Merge {
        /// Number of shards (one run each).
        #[arg(long, default_value_t = 1000)]
        shards: usize,
        /// Metrics per step.
        #[arg(long, default_value_t = 30)]
        metrics: usize,
        /// Steps per shard.
        #[arg(long, default_value_t = 2000)]
        steps: usize,
        /// Folder for the shards and databases (default: the temp directory; the shards are kept
        /// and reused by the next invocation).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Chart speed on a synthetic 200-run × 30-metric × 2,000-step database (12 M rows): a
    /// learning-curve chart and every run's best value, each against a 1 s target.
    Plot {
        /// Keep the synthetic database here (reused when it exists; default: a temporary file).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Dashboard speed on the synthetic 12 M-row database of `bench plot`: the sweep page's data
    /// (every request the page makes when it opens) and one curve request, through the HTTP
    /// server on loopback, each against its target (1 s, 100 ms), next to `simsweep runs` as a
    /// whole process on the same database; then the store's writer and a
    /// real training sweep (needs --data-dir) each with and without a load of 8 clients × 10
    /// requests/s on the database they write: throughput ratio, noise, lock errors.
    Serve {
        /// Keep the synthetic database here (reused when it exists; default: a temporary file).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Early stopping: a sweep of 27 tiny runs (2×128 BERT from random init; learning rate ×
    /// temperature × dropout) trained in full, then with ASHA, into fresh databases: steps trained,
    /// wall time and the best STS-B dev found by each.
    Search {
        /// Steps per run.
        #[arg(long, default_value_t = 200)]
        steps: usize,
        /// Evaluation interval (ASHA's first rung; η = 3).
        #[arg(long, default_value_t = 25)]
        eval_every: usize,
        /// cpu, cuda, cuda:N (default: cuda:0 when available, else cpu).
        #[arg(long)]
        device: Option<String>,
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
    /// Token cache: a run's data setup on a corpus of N lines (the wiki excerpt repeated; default
    /// SimCSE's 1,000,777) without the cache (as before it), with a cold cache and with a warm
    /// one, each in its own process: seconds, peak memory, ratios.
    Data {
        /// Lines in the corpus.
        #[arg(long, default_value_t = 1_000_777)]
        lines: usize,
        #[arg(long, default_value_t = 32)]
        max_len: i64,
        /// Keep the corpus and the cache here (reused next time; default: a temporary folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// One phase on this corpus (the benchmark starts itself with it).
        #[arg(long, hide = true)]
        phase: Option<PathBuf>,
        #[arg(long, hide = true)]
        cache: Option<PathBuf>,
        #[arg(long, hide = true)]
        model: Option<PathBuf>,
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

pub use simsweep_core::{BadInput, EXIT_BAD_INPUT};

/// Run `executor` over the sweep file.
fn run_with(
    cli: &Cli,
    file: &Path,
    retry_failed: bool,
    executor: &dyn crate::exec::Executor,
) -> Result<i32> {
    executor.run(&crate::exec::Request {
        file,
        db: &cli.db,
        data_dir: &cli.data_dir,
        retry_failed,
    })
}

/// Hand a computing command (its words, e.g. `["bench", "train"]`) to the engine binary.
fn engine(cli: &Cli, command: &[&str], a: &EngineArgs) -> Result<i32> {
    let mut args: Vec<std::ffi::OsString> = command.iter().map(|w| w.into()).collect();
    args.extend(a.args.iter().cloned());
    crate::exec::engine::hand_over(&args, &cli.data_dir, &cli.db)
}

impl Command {
    /// Commands whose arguments the engine parses (the front hands them over unchanged).
    pub fn runs_in_engine(&self) -> bool {
        matches!(
            self,
            Command::Eval(_)
                | Command::Probe(_)
                | Command::Info(_)
                | Command::Bench(BenchCommand::Train(_))
                | Command::Bench(BenchCommand::Eval(_))
        )
    }
}

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
            let local = crate::exec::local::Local {
                devices: devices.clone(),
                jobs_per_device,
                progress: progress.clone(),
            };
            run_with(&cli, file, retry_failed, &local)
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
            run_with(&cli, file, retry_failed, &crate::slurm::Slurm(opts))
        }
        Command::Worker {
            ref tasks,
            index,
            ref job,
        } => crate::slurm::worker(tasks, index, job.clone()),
        Command::Merge { ref sweep } => crate::slurm::merge_command(&cli.db, sweep.as_deref()),
        Command::Eval(ref a) => engine(&cli, &["eval"], a),
        Command::Probe(ref a) => engine(&cli, &["probe"], a),
        Command::Info(ref a) => engine(&cli, &["info"], a),
        Command::Cache(CacheCommand::Status { verify, format }) => {
            cache::status(&cli, verify, format)
        }
        Command::Cache(CacheCommand::Clear) => cache::clear(&cli),
        Command::Bench(BenchCommand::Train(ref a)) => engine(&cli, &["bench", "train"], a),
        Command::Bench(BenchCommand::Eval(ref a)) => engine(&cli, &["bench", "eval"], a),
        Command::Check { quick, repair } => read::check(&cli, quick, repair),
        Command::Status { ref sweep } => read::status(&cli, sweep.as_deref()),
        Command::Runs {
            ref sweep,
            ref select,
            format,
        } => read::quiet_pipe(read::runs(&cli.db, sweep, select, format)),
        Command::Best {
            ref sweep,
            ref metric,
            ref by,
            mode,
            goal,
            seeds,
            layer,
            ci,
            spread,
            digits,
            ref pivot,
            ref select,
            format,
        } => {
            let q = query::BestQuery {
                metric: metric[0].clone(),
                layer,
                mode,
                goal,
                by: (!by.is_empty()).then(|| {
                    by.iter()
                        .filter(|k| !k.trim().is_empty())
                        .cloned()
                        .collect()
                }),
                level: ci,
            };
            let args = tables::BestArgs {
                sweep,
                metrics: metric.clone(),
                query: q,
                seeds,
                select,
                format,
                spread,
                digits,
                pivot: match pivot.as_slice() {
                    [] => None,
                    [r, c] => Some((r.clone(), c.clone())),
                    other => {
                        return Err(BadInput(format!(
                            "--pivot {}: two swept keys, ROWKEY,COLKEY",
                            other.join(",")
                        ))
                        .into())
                    }
                },
            };
            read::quiet_pipe(tables::best(&cli.db, &args))
        }
        Command::Importance {
            ref sweep,
            ref metric,
            mode,
            goal,
            layer,
            ref select,
            format,
            ref out,
        } => {
            let q = query::BestQuery {
                metric: metric.clone(),
                layer,
                mode,
                goal,
                by: None,
                level: 0.95,
            };
            read::quiet_pipe(tables::importance(
                &cli.db,
                sweep,
                &q,
                select,
                format,
                out.as_deref(),
            ))
        }
        Command::Query { ref sql, format } => {
            read::quiet_pipe(read::sql_query(&cli.db, sql, format))
        }
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
            read::quiet_pipe(read::export(&cli.db, sweep, &q, select, out.as_deref()))
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
            charts::plot(&cli, sweep, req, metric, out.as_deref())
        }
        Command::Report { ref sweep, ref out } => charts::report(&cli, sweep, out.as_deref()),
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
            large,
            ref dir,
            ref out,
        }) => {
            let custom = runs.is_some() || metrics.is_some() || steps.is_some();
            let [small, big] = crate::bench::QUERY_SIZES;
            let sizes = if custom {
                vec![(
                    runs.unwrap_or(small.0),
                    metrics.unwrap_or(small.1),
                    steps.unwrap_or(small.2),
                )]
            } else if large {
                vec![small, big]
            } else {
                vec![small]
            };
            if sizes.iter().any(|s| s.0 == 0 || s.1 == 0 || s.2 == 0) {
                return Err(
                    BadInput("--runs, --metrics and --steps must be at least 1".into()).into(),
                );
            }
            if custom && large {
                return Err(BadInput(
                    "--large adds the 300 M-row size to the default one; it does not combine with --runs, --metrics or --steps".into(),
                )
                .into());
            }
            if out.is_some() && sizes.len() > 1 {
                return Err(BadInput(
                    "--out names one database, and --large measures two: use --dir for their folder".into(),
                )
                .into());
            }
            let dir = dir.clone().unwrap_or_else(std::env::temp_dir);
            crate::bench::query(&sizes, &dir, out.as_deref())?;
            Ok(0)
        }
        Command::Bench(BenchCommand::Merge {
            shards,
            metrics,
            steps,
            ref dir,
        }) => {
            if shards == 0 || metrics == 0 || steps == 0 {
                return Err(
                    BadInput("--shards, --metrics and --steps must be at least 1".into()).into(),
                );
            }
            let dir = dir.clone().unwrap_or_else(std::env::temp_dir);
            crate::bench::merge(shards, metrics, steps, &dir)?;
            Ok(0)
        }
        Command::Serve { host, port, open } => {
            crate::serve::serve(&crate::serve::Options {
                db: cli.db.clone(),
                host,
                port,
                open,
            })?;
            Ok(0)
        }
        Command::Bench(BenchCommand::Serve { ref out }) => {
            crate::bench::serve(out.as_deref(), &cli.data_dir)?;
            Ok(0)
        }
        Command::Bench(BenchCommand::Plot { ref out }) => {
            crate::bench::plot(out.as_deref())?;
            Ok(0)
        }
        Command::Bench(BenchCommand::Search {
            steps,
            eval_every,
            ref device,
        }) => {
            if eval_every == 0 || eval_every >= steps {
                return Err(BadInput(format!(
                    "--eval-every {eval_every}: between 1 and --steps ({steps}), exclusive"
                ))
                .into());
            }
            let device = crate::exec::local::resolve_device(device.as_deref())?;
            crate::bench::search(steps, eval_every, device, &cli.data_dir)?;
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
            let device = crate::exec::local::resolve_device(device.as_deref())?;
            crate::bench::sweep(runs, jobs, steps, device, &cli.data_dir)?;
            Ok(0)
        }
        Command::Bench(BenchCommand::Data {
            lines,
            max_len,
            ref out,
            ref phase,
            ref cache,
            ref model,
        }) => {
            match (phase, model) {
                (Some(corpus), Some(model)) => {
                    crate::bench::data_phase(corpus, cache.as_deref(), model, max_len)?
                }
                _ => crate::bench::data(lines, max_len, &cli.data_dir, out.as_deref())?,
            }
            Ok(0)
        }
        Command::Bench(BenchCommand::Probe {
            ref file,
            ref device,
        }) => {
            let device = crate::exec::local::resolve_device(device.as_deref())?;
            crate::bench::probe_cost(file, &cli.data_dir, device)?;
            Ok(0)
        }
    }
}

fn plan(cli: &Cli, file: &std::path::Path, json: bool) -> Result<i32> {
    let (sweep, summary) = crate::exec::load_and_plan(file, &cli.db, &cli.data_dir)?;
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
            "pruned": summary.pruned,
            "removed": summary.removed,
            "search": sweep.search,
            "order": if sweep.shuffle_seed.is_some() { "shuffle" } else { "plan" },
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
    if summary.pruned > 0 {
        println!("{} runs pruned by early stopping", summary.pruned);
    }
    if let Some(se) = &sweep.search {
        use crate::spec::search::Method;
        let how = match se.method {
            Method::Asha => {
                let steps = sweep.runs[0]
                    .config
                    .get("train.steps")
                    .and_then(serde_json::Value::as_i64);
                let rungs = steps.map_or_else(
                    || format!("from step {}, × {}", se.min_steps, se.reduction_factor),
                    |t| {
                        se.rungs(t)
                            .iter()
                            .map(i64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                );
                format!("ASHA (η = {}): rungs at steps {rungs}", se.reduction_factor)
            }
            Method::Median => format!(
                "the median rule from step {} (once {} other settings reported)",
                se.min_steps, se.min_runs
            ),
        };
        println!(
            "early stopping: {how}, by {} ({}), seeds of a setting judged together",
            se.metric,
            se.goal.name()
        );
    }
    Ok(0)
}
