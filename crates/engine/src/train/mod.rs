//! The training loop: one resolved run config in, events out (on a channel; the trainer never
//! touches SQLite).
//!
//! Step numbering: step `k` is the state after `k` optimisation updates. Step metrics of the `k`-th
//! update are recorded at step `k` (1..=total); evaluations and checkpoints at the step they follow
//! (0 = the initial model).

pub mod checkpoint;
pub mod fault;
pub mod loss;
pub mod optim;
pub mod profile;

use crate::eval::{Scores, StsData, Task};
use crate::model::{LoadedModel, Pooler, Pooling};
use crate::spec::config::RunConfig;
use crate::{batch, data, tokcache};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

pub use crate::events::{Event, Outcome};

/// Everything a run needs besides its config.
pub struct Job<'a> {
    pub config: &'a RunConfig,
    /// The sweep file (model paths resolve against its folder).
    pub sweep_file: &'a Path,
    pub data_dir: &'a Path,
    /// Where this run's checkpoints go.
    pub out_dir: &'a Path,
    pub device: Device,
    pub events: Sender<Event>,
    /// Set to stop after the current step.
    pub cancel: &'a AtomicBool,
    /// Set to stop for good after the current step (early stopping): keep the best checkpoint,
    /// no final evaluation, no resumable checkpoint.
    pub stop: &'a AtomicBool,
    /// After each evaluation during training, wait for the front's verdict on standard input
    /// (`stop` sets [`Job::stop`]; anything else, or the end of the input, continues).
    pub verdicts: bool,
    /// Continue from this `last-*` checkpoint (see [`checkpoint`]) instead of starting afresh.
    pub resume: Option<&'a Path>,
    /// The token cache's folder (`None`: tokenize in memory).
    pub token_cache: Option<&'a Path>,
}

/// A checkpoint that cannot be resumed from (missing or damaged files): the run should start over.
#[derive(Debug, thiserror::Error)]
#[error("cannot resume from {dir}: {reason:#}")]
pub struct ResumeError {
    pub dir: PathBuf,
    pub reason: anyhow::Error,
}

/// The test hook `SIMSWEEP_TEST_OBJECTIVE` (set by the worker): the values evaluation `k` (1 at
/// the first `eval.every`, the last one at the last step) reports for `stsb_dev` instead of
/// evaluating, so that early-stopping tests know every value in advance.
pub static TEST_OBJECTIVE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();

/// Step metrics held on the device between host copies (one copy every `FLUSH_EVERY` steps).
pub const FLUSH_EVERY: i64 = 25;

/// The metric window: [`FLUSH_EVERY`], or `SIMSWEEP_FLUSH_EVERY` where set (benchmarks shorten it
/// to time few steps; it changes no recorded value).
fn flush_every() -> i64 {
    std::env::var("SIMSWEEP_FLUSH_EVERY")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v >= 1)
        .unwrap_or(FLUSH_EVERY)
}

/// `SIMSWEEP_COUNT_HOST_READS=1` (a testing aid): the run records a `host_reads` event, the reads
/// of device values by the host in its training loop ([`crate::runtime::host_read`]) and the
/// metric windows, so a test can check that a step makes none of its own.
pub const COUNT_HOST_READS: &str = "SIMSWEEP_COUNT_HOST_READS";

/// The step metrics known on the host at a flush; the others are stacked on the device each step.
const HOST_METRICS: [&str; 2] = ["lr", "tokens_per_s"];

fn send(tx: &Sender<Event>, e: Event) -> Result<()> {
    tx.send(e)
        .map_err(|_| anyhow!("the event receiver is gone"))
}

/// Train one run. Returns how it ended; an `Err` is a failure (bad model, bad data, out of memory…).
pub fn train(job: Job<'_>) -> Result<Outcome> {
    let cfg = job.config;
    let device = job.device;
    let max_len = cfg.train.max_len as usize;
    let (model, resumed) = load_model(&job)?;
    model.check_max_len(max_len)?;
    let pooling: Pooling = cfg.model.pooling.parse().map_err(|e: String| anyhow!(e))?;
    let pooler = Pooler {
        pooling,
        mlp_only_train: cfg.model.mlp_only_train,
    };

    let data = training_data(&job, &model)?;
    let tokens = &data.tokens;
    let (n_all, n, steps_per_epoch, total) = (data.n_all, data.n, data.steps_per_epoch, data.total);
    let b = cfg.train.batch_size as usize;
    let order_for_epoch = |epoch: i64| epoch_order(cfg, n_all, n, epoch);

    // Evaluation data, read once.
    let dev_task = [Task::StsbDev];
    let mut sts = StsData::load(job.data_dir, &dev_task).context("loading STS-B dev")?;
    let (final_tasks, transfer_tasks) = crate::eval::parse_tasks(&cfg.eval.tasks)?;
    sts.ensure(job.data_dir, &final_tasks)
        .context("loading the evaluation tasks")?;
    let transfer_mode: crate::eval::transfer::Mode = cfg.eval.mode.parse()?;
    // The transfer tasks' files are read (and checked) before training, not after it.
    let transfer_files = crate::eval::transfer::read_tasks(job.data_dir, &transfer_tasks)
        .context("loading the transfer tasks")?;
    let eval_len = model.max_tokens() as usize;
    let eval_bs = cfg.eval.batch_size as usize;

    let loss_fn = loss::build(cfg)?;
    let faults = fault::Faults::from_env(job.out_dir)?;
    let named: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    let mut opt = optim::FlatAdamW::new(named, cfg.train.weight_decay, 0.9, 0.999, 1e-8);
    let start = resumed.as_ref().map_or(1, |(s, _, _)| s.step + 1);
    if let Device::Cuda(_) = device {
        crate::runtime::set_tf32(cfg.train.tf32);
    }
    let autocast = match (device, cfg.train.precision.as_str()) {
        (Device::Cuda(_), "bf16") => Some(Kind::BFloat16),
        (Device::Cuda(_), "fp16") => Some(Kind::Half),
        _ => None,
    };
    let mut scaler = LossScaler::new(
        autocast == Some(Kind::Half) || std::env::var(FORCE_LOSS_SCALER).is_ok_and(|v| v == "1"),
    );
    if let (Some((state, m, v)), Some(dir)) = (&resumed, job.resume) {
        if state.total_steps != total {
            return Err(resume_err(
                dir,
                anyhow!(
                    "it was saved by a run of {} steps, this one has {total}",
                    state.total_steps
                ),
            )
            .into());
        }
        opt.load_state(&m.to_device(device), &v.to_device(device), state.adam_step)
            .map_err(|e| resume_err(dir, e))?;
        scaler.scale = state.loss_scale;
        scaler.clean = state.clean_steps;
    }

    announce(&job, &model, &data, &opt, (start, n, total), autocast)?;

    let out_dir = job.out_dir;
    let mut best: Option<(i64, f64)> = resumed.as_ref().and_then(|(s, _, _)| s.best);
    let mut keeper = checkpoint::Keeper::new(resumed.as_ref().map(|(s, _, _)| s));
    // Probes: a fixed probe set, built once; step 0, every `probe.every` steps, the last step.
    let probe_layers =
        crate::probe::Layers::from_value(&cfg.probe.layers)?.resolve(model.num_layers())?;
    let probe_set = crate::probe::ProbeSet::from_settings(
        &model,
        job.data_dir,
        &cfg.probe.sentences,
        cfg.probe.size as usize,
        cfg.probe.max_len as usize,
    )
    .context("building the probe set")?;
    let io = RunIo {
        job: &job,
        pooler: &pooler,
        sts: &sts,
        eval_len,
        eval_bs,
        probe_set: &probe_set,
        probe_layers: &probe_layers,
        total,
    };
    match (&resumed, job.resume) {
        (Some((state, _, _)), Some(dir)) => {
            // Directories written after the checkpoint (a later best, a newer `last-*` whose row
            // never reached the database) belong to the lost attempt.
            keeper.collect(out_dir);
            if let Some((b, v)) = state.best {
                let bd = checkpoint::best_dir(out_dir, b);
                if !bd.join("config.json").is_file() {
                    return Err(resume_err(
                        dir,
                        anyhow!("its best model {} is missing", bd.display()),
                    )
                    .into());
                }
                io.best_event(b, bd, v)?;
            }
            send(
                &job.events,
                Event::Note {
                    kind: "resumed".into(),
                    message: format!("resumed from step {} ({})", state.step, dir.display()),
                },
            )?;
        }
        _ => {
            if cfg.eval.every > 0 {
                io.evaluate_dev(&model, 0, &mut best, &mut keeper)?;
            }
        }
    }

    if resumed.is_none() {
        io.probe(&model, 0)?;
    }

    // Stacked each step in this order: the loss, the gradient norm, then the batch metrics.
    let step_metrics: Vec<&str> = crate::metrics::step_metrics()
        .filter(|m| !HOST_METRICS.contains(m))
        .take(if cfg.train.step_metrics {
            usize::MAX
        } else {
            2
        })
        .collect();
    let mut pending: Vec<Tensor> = Vec::new();
    let mut pending_from = start;
    let mut window_tokens = 0usize;
    let mut window_start = Instant::now();
    let mut epoch = -1i64;
    let mut order: Vec<usize> = Vec::new();
    let per = tokens.per_example;
    let pad = model.config.pad_id();
    let mut outcome = None;
    // Phase timing (SIMSWEEP_PROFILE=1); the first flush window is warm-up.
    let flush = flush_every();
    let mut prof = profile::Profile::from_env(device, start - 1 + flush);
    let stepper = Stepper {
        cfg,
        model: &model,
        pooler: &pooler,
        loss_fn: loss_fn.as_ref(),
        faults: &faults,
        autocast,
        device,
        step_metrics: &step_metrics,
        batch: b,
    };
    let reads_before = crate::runtime::host_reads();
    let mut stopped = None;
    let mut windows = 0u64;
    for step in start..=total {
        faults.on_step(step);
        prof.start(step);
        // Dropout draws restart from the run's seed and the step, so a resumed run continues
        // exactly as one never stopped (with one run per process; see docs).
        tch::manual_seed(checkpoint::step_seed(cfg.seed, step));
        let e = (step - 1) / steps_per_epoch;
        if e != epoch {
            epoch = e;
            order = order_for_epoch(e);
        }
        let k = ((step - 1) % steps_per_epoch) as usize;
        let idx = &order[k * b..(k + 1) * b];
        let views = if per == 1 { 2 } else { 3 };
        let seqs = step_sequences(tokens, idx);
        window_tokens += seqs.iter().map(|s| s.len()).sum::<usize>();
        let batch = batch::collate(&seqs, pad, device);
        prof.mark(step, "batch");
        let lr = optim::lr_at(
            step - 1,
            total,
            cfg.train.warmup_steps,
            cfg.train.lr,
            &cfg.train.lr_schedule,
        );
        let row = stepper.step(step, (&batch, views), lr, &mut opt, &mut scaler, &mut prof);
        pending.push(row);
        prof.mark(step, "metrics");
        let stalled = scaler.stalled();

        let checkpoint_now = cfg.train.checkpoint_every > 0
            && step % cfg.train.checkpoint_every == 0
            && step < total;
        let cancelled = job.cancel.load(Ordering::Relaxed);
        let stop = job.stop.load(Ordering::Relaxed) && step < total;
        let eval_now = cfg.eval.every > 0 && step % cfg.eval.every == 0 || step == total;
        let probe_now = cfg.probe.every > 0 && step % cfg.probe.every == 0 || step == total;
        if step % flush == 0
            || eval_now
            || probe_now
            || cancelled
            || stop
            || checkpoint_now
            || stalled.is_some()
        {
            // One host copy for the window's metrics; this is also where a divergence is seen.
            let host = crate::runtime::host_read(|| {
                Vec::<f64>::try_from(
                    Tensor::stack(&pending, 0)
                        .to_kind(Kind::Double)
                        .to_device(Device::Cpu)
                        .flatten(0, -1),
                )
            })?;
            windows += 1;
            let secs = window_start.elapsed().as_secs_f64().max(1e-9);
            let window = Window {
                cfg,
                names: &step_metrics,
                from: pending_from,
                total,
                tokens_per_s: window_tokens as f64 / secs,
                check_grad_norm: !scaler.enabled,
                stalled: stalled.as_deref().map(|why| (step, why)),
            };
            let (rows, diverged) = window.rows(&host);
            outcome = outcome.or(diverged);
            send(&job.events, Event::Metrics(rows))?;
            pending.clear();
            pending_from = step + 1;
            window_tokens = 0;
            window_start = Instant::now();
            prof.mark(step, "flush");
            if let Some(o) = outcome.take() {
                return Ok(o);
            }
            if eval_now {
                io.evaluate_dev(&model, step, &mut best, &mut keeper)?;
                window_start = Instant::now();
                prof.mark(step, "eval");
            }
            if probe_now {
                io.probe(&model, step)?;
                window_start = Instant::now();
                prof.mark(step, "probe");
            }
            // After this step's metrics, evaluation and probe were sent: a run resumed from
            // here replaces exactly the steps after it.
            if checkpoint_now || (cancelled && step < total) {
                io.save_last(&model, &opt, &scaler, best, &mut keeper, step)?;
                window_start = Instant::now();
                prof.mark(step, "checkpoint");
            }
            if cancelled && step < total {
                return Ok(Outcome::Cancelled { step });
            }
            if job.stop.load(Ordering::Relaxed) && step < total {
                stopped = Some(step);
                break;
            }
        }
    }

    if std::env::var(COUNT_HOST_READS).is_ok_and(|v| v == "1") {
        send(
            &job.events,
            Event::Note {
                kind: "host_reads".into(),
                message: format!(
                    "{} host reads in steps {start}..{total}, {windows} metric windows",
                    crate::runtime::host_reads() - reads_before
                ),
            },
        )?;
    }
    if prof.on() {
        send(
            &job.events,
            Event::Note {
                kind: "profile".into(),
                message: prof.summary(),
            },
        )?;
    }
    // The best model becomes `best/`; the resumable checkpoints go.
    let best_path = keeper.finish(out_dir)?;
    if let (Some(path), Some((b, v))) = (&best_path, best) {
        io.best_event(b, path.clone(), v)?;
    }
    if let Some(step) = stopped {
        return Ok(Outcome::Stopped { step });
    }
    // Final evaluation of the best checkpoint on the configured tasks.
    if !final_tasks.is_empty() || !transfer_files.is_empty() {
        let best_dir = best_path.ok_or_else(|| anyhow!("no checkpoint was evaluated"))?;
        let best_step = best.map_or(total, |(s, _)| s);
        let fin = FinalEval {
            pooler: &pooler,
            sts: &sts,
            tasks: &final_tasks,
            transfer: &transfer_files,
            mode: transfer_mode,
            seed: cfg.eval.seed as u32,
            max_len: eval_len,
            batch_size: eval_bs,
        };
        send(
            &job.events,
            Event::Metrics(fin.run(&job, &best_dir, best_step, total)?),
        )?;
    }
    Ok(Outcome::Done { steps: total })
}

/// Where a run's evaluations, probes and checkpoints go: computed, saved and reported as events.
struct RunIo<'a> {
    job: &'a Job<'a>,
    pooler: &'a Pooler,
    sts: &'a StsData,
    eval_len: usize,
    eval_bs: usize,
    probe_set: &'a crate::probe::ProbeSet,
    probe_layers: &'a [usize],
    total: i64,
}

impl RunIo<'_> {
    fn best_event(&self, step: i64, path: PathBuf, v: f64) -> Result<()> {
        send(
            &self.job.events,
            Event::Checkpoint {
                kind: "best".into(),
                step,
                path,
                metric: Some("stsb_dev".into()),
                value: Some(v),
            },
        )
    }

    /// STS-B dev at `step`; a new best is saved as `best-<step>/`.
    fn evaluate_dev(
        &self,
        model: &LoadedModel,
        step: i64,
        best: &mut Option<(i64, f64)>,
        keeper: &mut checkpoint::Keeper,
    ) -> Result<()> {
        let out_dir = self.job.out_dir;
        let v = match TEST_OBJECTIVE.get() {
            // The test hook: a known curve instead of the evaluation.
            Some(curve) => {
                let every = self.job.config.eval.every.max(1);
                let k = ((step + every - 1) / every).max(1) as usize;
                curve[(k - 1).min(curve.len() - 1)]
            }
            None => {
                let scores = embed_scores(
                    model,
                    self.pooler,
                    self.sts,
                    &[Task::StsbDev],
                    self.eval_len,
                    self.eval_bs,
                )?;
                scores.get(Task::StsbDev).unwrap_or(f64::NAN)
            }
        };
        send(
            &self.job.events,
            Event::Metrics(vec![(step, "stsb_dev".into(), v)]),
        )?;
        if self.job.verdicts {
            let mut line = String::new();
            match std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line) {
                // The front closed the pipe (it gave up on the run): stop as when interrupted,
                // with a resumable checkpoint, rather than train on unobserved.
                Ok(0) | Err(_) => self.job.cancel.store(true, Ordering::SeqCst),
                Ok(_) if line.trim() == "stop" => self.job.stop.store(true, Ordering::SeqCst),
                Ok(_) => {}
            }
        }
        if best.is_none_or(|(_, b)| v > b) {
            let dir = checkpoint::best_dir(out_dir, step);
            model
                .save_pretrained(&dir)
                .context("saving the best checkpoint")?;
            *best = Some((step, v));
            keeper.saved_best(step);
            keeper.collect(out_dir);
            self.best_event(step, dir, v)?;
        }
        Ok(())
    }

    /// The probes at `step`, with the time they took.
    fn probe(&self, model: &LoadedModel, step: i64) -> Result<()> {
        let t0 = Instant::now();
        let rows = crate::probe::probe(model, self.pooler, self.probe_set, self.probe_layers)
            .context("probing")?;
        let secs = t0.elapsed().as_secs_f64();
        let mut out: Vec<(i64, i64, String, f64)> = rows
            .into_iter()
            .map(|(layer, name, v)| (step, layer, name, v))
            .collect();
        out.push((step, -1, "probe_seconds".into(), secs));
        send(&self.job.events, Event::LayerMetrics(out))
    }

    /// A resumable checkpoint `last-<step>/`: model, AdamW moments, trainer state.
    fn save_last(
        &self,
        model: &LoadedModel,
        opt: &optim::FlatAdamW,
        scaler: &LossScaler,
        best: Option<(i64, f64)>,
        keeper: &mut checkpoint::Keeper,
        step: i64,
    ) -> Result<()> {
        let out_dir = self.job.out_dir;
        let dir = checkpoint::last_dir(out_dir, step);
        let (m, v, adam_step) = opt.state();
        let state = checkpoint::TrainerState {
            format: 1,
            step,
            total_steps: self.total,
            seed: self.job.config.seed,
            best,
            loss_scale: scaler.scale,
            clean_steps: scaler.clean,
            adam_step,
        };
        checkpoint::save_last(model, &dir, &state, m, v)?;
        keeper.saved_last(step);
        keeper.collect(out_dir);
        send(
            &self.job.events,
            Event::Checkpoint {
                kind: "last".into(),
                step,
                path: dir,
                metric: None,
                value: None,
            },
        )
    }
}

/// What one optimisation step needs besides its batch.
struct Stepper<'a> {
    cfg: &'a RunConfig,
    model: &'a LoadedModel,
    pooler: &'a Pooler,
    loss_fn: &'a dyn loss::Loss,
    faults: &'a fault::Faults,
    autocast: Option<Kind>,
    device: Device,
    /// The stacked names of a step's row: the loss, the gradient norm, the batch metrics.
    step_metrics: &'a [&'a str],
    batch: usize,
}

impl Stepper<'_> {
    /// Forward (under autocast where configured), loss, backward, optimizer update; returns the
    /// step's metrics stacked on the device, in the order of `step_metrics`.
    fn step(
        &self,
        step: i64,
        (batch, views): (&crate::model::EncodedBatch, usize),
        lr: f64,
        opt: &mut optim::FlatAdamW,
        scaler: &mut LossScaler,
        prof: &mut profile::Profile,
    ) -> Tensor {
        // The encoder runs under autocast (on CUDA, as configured); the loss always in fp32, as the
        // views are cast up before their similarities are taken.
        let encode = || self.model.sentence_embeddings(batch, self.pooler, true);
        let z = match self.autocast {
            Some(kind) => crate::runtime::autocast(kind, encode),
            None => encode(),
        }
        .to_kind(Kind::Float);
        prof.mark(step, "forward");
        let h = z.size()[1];
        let z = z.view([self.batch as i64, views as i64, h]);
        let (z1, z2) = (z.select(1, 0), z.select(1, 1));
        let z3 = (views == 3).then(|| z.select(1, 2));
        let out = self.loss_fn.forward_with(
            &loss::Views {
                z1: &z1,
                z2: &z2,
                z3: z3.as_ref(),
            },
            self.cfg.train.step_metrics,
        );
        let out = self.faults.on_loss(step, out);
        prof.mark(step, "loss");
        scaler.backward(&out.loss);
        self.faults.on_backward(step, &self.model.vs);
        prof.mark(step, "backward");
        let gnorm = if scaler.unscale_and_check(opt) {
            opt.step(lr, self.cfg.train.max_grad_norm)
        } else {
            Tensor::full([], f64::INFINITY, (Kind::Float, self.device))
        };
        opt.zero_grad();
        prof.mark(step, "optimizer");
        let mut row: Vec<Tensor> = vec![
            out.loss.detach().to_kind(Kind::Float),
            gnorm.to_kind(Kind::Float),
        ];
        for name in &self.step_metrics[2..] {
            let t = out
                .metrics
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.to_kind(Kind::Float))
                .unwrap_or_else(|| Tensor::full([], f64::NAN, (Kind::Float, self.device)));
            row.push(t);
        }
        Tensor::stack(&row, 0)
    }
}

/// The run's first events: `Started` (what was set up) and notes on the precision and the data.
fn announce(
    job: &Job<'_>,
    model: &LoadedModel,
    data: &TrainData,
    opt: &optim::FlatAdamW,
    (start, n, total): (i64, usize, i64),
    autocast: Option<Kind>,
) -> Result<()> {
    let (cfg, device) = (job.config, job.device);
    let corpus = &data.tokens.info;
    send(
        &job.events,
        Event::Started {
            device: format!("{device:?}"),
            parameters: opt.numel(),
            examples: n,
            skipped_lines: corpus.skipped(),
            total_steps: total,
            tokens_cached: data.source.cached(),
            weights_cached: model.report.weights_cached,
            resumed_from: (start > 1).then_some(start - 1),
        },
    )?;
    if autocast.is_none() && cfg.train.precision != "fp32" {
        send(
            &job.events,
            Event::Note {
                kind: "precision".into(),
                message: format!(
                    "train.precision = {} applies on CUDA; this run on {device:?} computes in fp32",
                    cfg.train.precision
                ),
            },
        )?;
    }
    if corpus.skipped() > 0 {
        send(
            &job.events,
            Event::Note {
                kind: "data".into(),
                message: format!(
                    "skipped {} lines ({} empty, {} not UTF-8, {} malformed)",
                    corpus.skipped(),
                    corpus.skipped_empty,
                    corpus.skipped_non_utf8,
                    corpus.skipped_malformed
                ),
            },
        )?;
    }
    send(
        &job.events,
        Event::Note {
            kind: "tokens".into(),
            message: tokens_note(&data.tokens, &data.source, data.seconds),
        },
    )?;
    let precision = match autocast {
        Some(_) => cfg.train.precision.clone(),
        None => "fp32".into(),
    };
    let pooler = Pooler::from_config(&cfg.model)
        .map_or_else(|_| cfg.model.pooling.clone(), |p| p.describe());
    let fingerprint = crate::runtime::Fingerprint::new(
        device,
        &precision,
        &cfg.eval.mode,
        pooler,
        model.max_tokens() as usize,
    );
    send(
        &job.events,
        Event::Note {
            kind: simsweep_core::events::FINGERPRINT.into(),
            message: serde_json::to_string(&fingerprint)?,
        },
    )?;

    Ok(())
}

/// One window of step metrics copied to the host: the rows to record and, where a loss (or,
/// without a loss scaler, a gradient norm) is not finite, the divergence.
struct Window<'a> {
    cfg: &'a RunConfig,
    /// The stacked names, in the order of each step's row.
    names: &'a [&'a str],
    /// The window's first step.
    from: i64,
    total: i64,
    tokens_per_s: f64,
    check_grad_norm: bool,
    /// The loss scaler gave up at this step, for this reason ([`LossScaler::stalled`]).
    stalled: Option<(i64, &'a str)>,
}

impl Window<'_> {
    /// The rows of `host` (one row of `names` per step), every `train.log_every` steps, the last
    /// step, and up to a divergence (its step included, nothing after it).
    fn rows(&self, host: &[f64]) -> (Vec<(i64, String, f64)>, Option<Outcome>) {
        let (cfg, total) = (self.cfg, self.total);
        let mut outcome = None;
        let mut rows = Vec::new();
        for (j, vals) in host.chunks(self.names.len()).enumerate() {
            let s = self.from + j as i64;
            let bad = !vals[0].is_finite() || (self.check_grad_norm && !vals[1].is_finite());
            if bad {
                outcome = Some(Outcome::Diverged {
                    step: s,
                    detail: format!("loss = {}, grad_norm = {} at step {s}", vals[0], vals[1]),
                });
            } else if let Some((at, why)) = self.stalled.filter(|(at, _)| *at == s) {
                outcome = Some(Outcome::Diverged {
                    step: at,
                    detail: format!("{why} at step {at}"),
                });
            }
            if s % cfg.train.log_every == 0 || s == total || outcome.is_some() {
                for (name, v) in self.names.iter().zip(vals) {
                    rows.push((s, name.to_string(), *v));
                }
                rows.push((
                    s,
                    "lr".into(),
                    optim::lr_at(
                        s - 1,
                        total,
                        cfg.train.warmup_steps,
                        cfg.train.lr,
                        &cfg.train.lr_schedule,
                    ),
                ));
                rows.push((s, "tokens_per_s".into(), self.tokens_per_s));
            }
            if outcome.is_some() {
                break;
            }
        }
        (rows, outcome)
    }
}

/// The final evaluation: the best checkpoint on the configured tasks.
struct FinalEval<'a> {
    pooler: &'a Pooler,
    sts: &'a StsData,
    tasks: &'a [Task],
    transfer: &'a [crate::eval::transfer::TaskFiles],
    mode: crate::eval::transfer::Mode,
    seed: u32,
    max_len: usize,
    batch_size: usize,
}

impl FinalEval<'_> {
    /// Reload the best checkpoint and score it: the rows at the last step, with `avg` and
    /// `best_step`.
    fn run(
        &self,
        job: &Job<'_>,
        best_dir: &Path,
        best_step: i64,
        total: i64,
    ) -> Result<Vec<(i64, String, f64)>> {
        let best_model = LoadedModel::load(
            best_dir,
            crate::model::Init::Pretrained {
                seed: job.config.seed,
            },
            &Default::default(),
            job.device,
        )
        .context("reloading the best checkpoint")?;
        let scores = embed_scores(
            &best_model,
            self.pooler,
            self.sts,
            self.tasks,
            self.max_len,
            self.batch_size,
        )?;
        let mut rows: Vec<(i64, String, f64)> = scores
            .entries()
            .into_iter()
            .map(|(n, v)| (total, n.to_string(), v))
            .collect();
        if let Some(avg) = scores.avg() {
            rows.push((total, "avg".into(), avg));
        }
        let mut embed = |s: &[String]| -> Result<Tensor> {
            Ok(best_model.embed(s, self.pooler, self.max_len, s.len().max(1))?)
        };
        let transfer = crate::eval::transfer::evaluate(
            self.transfer,
            self.mode,
            self.seed,
            self.batch_size,
            &mut embed,
        )?;
        rows.extend(
            crate::eval::transfer::entries(&transfer)
                .into_iter()
                .map(|(n, v)| (total, n, v)),
        );
        rows.push((total, "best_step".into(), best_step as f64));
        Ok(rows)
    }
}

/// The token sequences of one batch: unsupervised, each sentence twice (two dropout masks in one
/// forward); supervised, the triplet. Rows are example-major, as SimCSE's (batch, num_sent, len).
fn step_sequences<'t>(tokens: &'t tokcache::Tokens, idx: &[usize]) -> Vec<&'t [u32]> {
    let per = tokens.per_example;
    let mut seqs: Vec<&[u32]> = Vec::with_capacity(idx.len() * if per == 1 { 2 } else { 3 });
    for &i in idx {
        if per == 1 {
            let s = tokens.text(i);
            seqs.push(s);
            seqs.push(s);
        } else {
            seqs.extend(tokens.example(i));
        }
    }
    seqs
}

/// The run's `tokens` event: where its token ids came from, how long that took, and why an
/// entry was rebuilt or the cache not used.
fn tokens_note(tokens: &tokcache::Tokens, source: &tokcache::Source, seconds: f64) -> String {
    let what = format!("{} examples, {} tokens", tokens.len(), tokens.n_tokens);
    match source {
        tokcache::Source::Hit { path } => format!(
            "{what} mapped from the token cache {} in {seconds:.2} s",
            path.display()
        ),
        tokcache::Source::Waited { path } => format!(
            "{what} mapped from the token cache {} after waiting for the process that built it ({seconds:.2} s)",
            path.display()
        ),
        tokcache::Source::Built { path, damaged } => format!(
            "{what} tokenized in {seconds:.2} s and written to the token cache {}{}",
            path.display(),
            damaged.as_ref().map_or(String::new(), |why| format!(
                " (the entry there was damaged: {why}; rebuilt)"
            ))
        ),
        tokcache::Source::Memory { reason: None } => {
            format!("{what} tokenized in {seconds:.2} s in memory (token cache off)")
        }
        tokcache::Source::Memory { reason: Some(why) } => format!(
            "{what} tokenized in {seconds:.2} s in memory: the token cache could not be used ({why})"
        ),
    }
}

/// A checkpoint's trainer state and AdamW moments, when a run resumes.
type Resumed = (checkpoint::TrainerState, Tensor, Tensor);

fn resume_err(dir: &Path, reason: anyhow::Error) -> ResumeError {
    ResumeError {
        dir: dir.into(),
        reason,
    }
}

/// The run's model: its `model.*` settings, or the `last` checkpoint it resumes from (with the
/// trainer state and optimizer moments saved there).
fn load_model(job: &Job<'_>) -> Result<(LoadedModel, Option<Resumed>)> {
    let (cfg, device) = (job.config, job.device);
    Ok(match job.resume {
        Some(dir) => {
            let (state, m, v) = checkpoint::load_last(dir).map_err(|e| resume_err(dir, e))?;
            if state.seed != cfg.seed {
                return Err(resume_err(
                    dir,
                    anyhow!("it was saved by a run with seed {}", state.seed),
                )
                .into());
            }
            let model = LoadedModel::load(
                dir,
                crate::model::Init::Pretrained { seed: cfg.seed },
                &Default::default(),
                device,
            )
            .map_err(|e| resume_err(dir, e.into()))?;
            // Tokenizer files are copied from the model's source at every save; the source is
            // the run's own model directory, not a checkpoint that will be cleaned up.
            let mut model = model;
            model.source = crate::model::resolve_model_dir(&cfg.model, job.sweep_file)
                .context("the run's model directory")?;
            (model, Some((state, m, v)))
        }
        None => (
            LoadedModel::from_run_config(&cfg.model, job.sweep_file, cfg.seed, device)
                .context("loading the model")?,
            None,
        ),
    })
}

/// The run's training examples, tokenized (through the token cache: mapped from disk when an
/// earlier run or process tokenized the same files with the same tokenizer and max_len), and its
/// length in steps.
struct TrainData {
    tokens: tokcache::Tokens,
    source: tokcache::Source,
    /// Seconds to obtain the tokens (hash, map and check; or read, tokenize and write).
    seconds: f64,
    /// Examples in the files; the first `n` of the seed's permutation are the run's.
    n_all: usize,
    n: usize,
    steps_per_epoch: i64,
    total: i64,
}

fn training_data(job: &Job<'_>, model: &LoadedModel) -> Result<TrainData> {
    let cfg = job.config;
    // Data: through the token cache (mapped when an earlier run or process tokenized the same
    // files with the same tokenizer and max_len).
    let files: Vec<PathBuf> = cfg
        .data
        .train
        .iter()
        .map(|f| crate::spec::config::resolve_data_path(job.data_dir, f))
        .collect();
    let t0 = Instant::now();
    let (tokens, source) = tokcache::load_or_build(
        job.token_cache,
        &files,
        &cfg.data.format,
        &model.tokenizer,
        cfg.train.max_len,
    )?;
    let seconds = t0.elapsed().as_secs_f64();
    let n_all = tokens.len();
    let n = if cfg.data.max_examples > 0 {
        n_all.min(cfg.data.max_examples as usize)
    } else {
        n_all
    };
    let b = cfg.train.batch_size as usize;
    let steps_per_epoch = (n / b) as i64;
    if steps_per_epoch == 0 {
        bail!("{} training examples are fewer than one batch of {b}", n);
    }
    let total = match (cfg.train.steps, cfg.train.epochs) {
        (Some(s), _) => s,
        (None, Some(e)) => e * steps_per_epoch,
        (None, None) => steps_per_epoch,
    };
    Ok(TrainData {
        tokens,
        source,
        seconds,
        n_all,
        n,
        steps_per_epoch,
        total,
    })
}

/// The examples of `epoch` in the order they are visited: the first `n` of the seed's permutation
/// of all `n_all` examples, each epoch after the first in its own order.
fn epoch_order(cfg: &RunConfig, n_all: usize, n: usize, epoch: i64) -> Vec<usize> {
    // The first `max_examples` of the seed's permutation are the run's examples; each epoch
    // visits them in its own order.
    let base: Vec<usize> = if cfg.data.shuffle {
        data::permutation(n_all, cfg.seed as u64)
    } else {
        (0..n_all).collect()
    };
    let mut chosen: Vec<usize> = base.into_iter().take(n).collect();
    if cfg.data.shuffle && epoch > 0 {
        let p = data::permutation(n, (cfg.seed as u64).wrapping_add(epoch as u64));
        chosen = p.iter().map(|&i| chosen[i]).collect();
    }
    chosen
}

/// Evaluate `tasks` with the model's sentence embeddings (eval mode, no truncation below the model's
/// limit, as SentEval feeds whole sentences), always in fp32: SimCSE evaluates in fp32, and the
/// best checkpoint is then chosen on numbers `simsweep eval` reproduces, whatever the training
/// precision.
pub fn embed_scores(
    model: &LoadedModel,
    pooler: &Pooler,
    sts: &StsData,
    tasks: &[Task],
    max_len: usize,
    batch_size: usize,
) -> Result<Scores> {
    let mut embed =
        |s: &[String]| -> Result<Tensor> { Ok(model.embed(s, pooler, max_len, s.len().max(1))?) };
    sts.evaluate(tasks, batch_size, &mut embed)
}

/// Dynamic loss scaling for fp16 (as torch.cuda.amp.GradScaler): scale the loss, unscale the
/// gradients, skip the update and halve the scale on overflow, double it after 2000 clean steps.
/// Unlike GradScaler it gives up: after [`MAX_SKIPPED_STEPS`] skipped steps in a row, or once the
/// scale is below [`MIN_LOSS_SCALE`], the gradients are not finite at any scale and the run is
/// diverged instead of skipping steps for ever.
struct LossScaler {
    enabled: bool,
    scale: f64,
    clean: i64,
    /// Steps skipped in a row (non-finite gradients), since the last clean one.
    skipped: i64,
}

/// Consecutive skipped steps after which an fp16 run is diverged (the scale has then fallen
/// 2^25-fold).
pub const MAX_SKIPPED_STEPS: i64 = 25;

/// The smallest loss scale before an fp16 run is diverged: 2^-24, fp16's smallest subnormal.
pub const MIN_LOSS_SCALE: f64 = 5.960464477539063e-8;

/// `SIMSWEEP_FORCE_LOSS_SCALER=1` (a testing aid): the loss scaler on in any precision, so its
/// handling of overflows can be tested on the CPU.
pub const FORCE_LOSS_SCALER: &str = "SIMSWEEP_FORCE_LOSS_SCALER";

impl LossScaler {
    fn new(enabled: bool) -> Self {
        LossScaler {
            enabled,
            scale: 65536.0,
            clean: 0,
            skipped: 0,
        }
    }

    fn backward(&self, loss: &Tensor) {
        if self.enabled {
            (loss * self.scale).backward();
        } else {
            loss.backward();
        }
    }

    /// Unscale the gradients; false if they overflowed (the update is skipped).
    fn unscale_and_check(&mut self, opt: &mut optim::FlatAdamW) -> bool {
        if !self.enabled {
            return true;
        }
        let g = opt.flat_grad();
        // The one host read of a step with the scaler on: whether to apply the update.
        let finite = crate::runtime::host_read(|| g.isfinite().all().int64_value(&[]) != 0);
        if !finite {
            self.scale /= 2.0;
            self.clean = 0;
            self.skipped += 1;
            return false;
        }
        opt.scale_grads(1.0 / self.scale);
        self.skipped = 0;
        self.clean += 1;
        if self.clean >= 2000 {
            self.scale *= 2.0;
            self.clean = 0;
        }
        true
    }

    /// Why the run should end as diverged: too many skipped steps in a row, or a vanishing scale.
    fn stalled(&self) -> Option<String> {
        if !self.enabled {
            return None;
        }
        if self.skipped >= MAX_SKIPPED_STEPS {
            return Some(format!(
                "the fp16 loss scaler skipped {} steps in a row on non-finite gradients (scale {:e}; the run gives up after {MAX_SKIPPED_STEPS} in a row or below {MIN_LOSS_SCALE:e})",
                self.skipped, self.scale
            ));
        }
        (self.scale < MIN_LOSS_SCALE).then(|| {
            format!(
                "the fp16 loss scale fell to {:e}, below {MIN_LOSS_SCALE:e} (fp16's smallest subnormal), after repeated non-finite gradients",
                self.scale
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{LossScaler, MAX_SKIPPED_STEPS, MIN_LOSS_SCALE};

    #[test]
    fn the_loss_scaler_gives_up_on_skipped_steps_in_a_row_or_a_vanishing_scale() {
        let mut s = LossScaler::new(true);
        assert_eq!(s.stalled(), None);
        s.skipped = MAX_SKIPPED_STEPS - 1;
        assert_eq!(s.stalled(), None);
        s.skipped = MAX_SKIPPED_STEPS;
        assert!(s
            .stalled()
            .unwrap()
            .starts_with("the fp16 loss scaler skipped 25 steps in a row"));
        // Skips alternating with clean steps: the count restarts, the scale still falls.
        s.skipped = 1;
        s.scale = MIN_LOSS_SCALE / 2.0;
        assert_eq!(
            s.stalled().unwrap(),
            "the fp16 loss scale fell to 2.9802322387695313e-8, below 5.960464477539063e-8 (fp16's smallest subnormal), after repeated non-finite gradients"
        );
        // Off (fp32, bf16): never.
        let mut off = LossScaler::new(false);
        off.skipped = 100;
        off.scale = 0.0;
        assert_eq!(off.stalled(), None);
    }
}
