//! `simsweep bench train`: training throughput against the loop a researcher would otherwise run —
//! PyTorch eager mode with `transformers`' BertModel and the SimCSE loss
//! (`scripts/bench_train_reference.py`, embedded here) — on the same geometry, batch size, sequence
//! length, precision, loss, thread count and the very same token ids, in one invocation.
//!
//! simsweep is timed through its real trainer ([`crate::train::train`]: step metrics, metric
//! windows, everything but evaluation and probes, which run outside the timed steps), from the
//! end of its first metric window (warm-up) to the end of the last; the reference from the same
//! step to the same step.

use crate::train::{self, Event, Outcome};
use anyhow::{anyhow, bail, Context, Result};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use tch::Device;

/// The reference loop (kept in the repo as a script; embedded so the binary carries it).
const REFERENCE: &str = include_str!("../../../scripts/bench_train_reference.py");
pub struct Options {
    /// `minilm`, `bert-base`, `tiny` or a path to a config.json.
    pub geometry: String,
    pub batch: usize,
    pub max_len: usize,
    /// Timed steps (after the warm-up window).
    pub steps: usize,
    /// Untimed steps at the start; also simsweep's metric window (`SIMSWEEP_FLUSH_EVERY`).
    pub warmup: usize,
    /// Evaluation data (the trainer loads STS-B dev).
    pub data_dir: PathBuf,
    pub precision: String,
    pub device: Device,
    pub python: PathBuf,
    /// Measurements of each side, alternating.
    pub repeat: usize,
    /// Also time simsweep with `train.step_metrics = false`.
    pub metrics_off: bool,
    /// Also run simsweep once with `SIMSWEEP_PROFILE=1` and print time per phase.
    pub profile: bool,
    /// Training sentences (one per line).
    pub data: PathBuf,
    /// Peak FLOP/s for model FLOP utilisation (default: a table by device, or a measured matmul peak).
    pub peak_tflops: Option<f64>,
    /// transformers' attention implementation for the reference.
    pub attn: String,
    /// Append the results as one JSON line here.
    pub json: Option<PathBuf>,
}

/// One timed measurement.
#[derive(Debug, Clone)]
struct Measure {
    steps: usize,
    secs: f64,
    /// The reference's model class and attention implementation, as it reports them.
    about: Option<String>,
}

/// Nominal dense peaks (FLOP/s) by GPU name and precision: bf16/fp16 tensor cores, TF32 tensor
/// cores, and plain fp32 (what an fp32 run uses without `train.tf32`), from NVIDIA's data sheets
/// (without sparsity). More specific names come first: the NVL and PCIe parts of H100/H200 are
/// slower than the SXM ones.
fn nominal_peak(name: &str, precision: &str, tf32: bool) -> Option<f64> {
    let n = name.to_ascii_uppercase();
    // (name contains, bf16/fp16, tf32, fp32)
    let table: &[(&str, f64, f64, f64)] = &[
        ("H200 NVL", 835.5e12, 417.5e12, 60.0e12),
        ("H200", 989.4e12, 494.7e12, 66.9e12),
        ("H100 NVL", 835.5e12, 417.5e12, 60.0e12),
        ("H100 PCIE", 756.0e12, 378.0e12, 51.2e12),
        ("H100", 989.4e12, 494.7e12, 66.9e12),
        ("A100", 312.0e12, 156.0e12, 19.5e12),
        ("L40S", 362.1e12, 183.2e12, 91.6e12),
        ("A10G", 70.0e12, 35.0e12, 31.2e12),
    ];
    let (_, half, tf, full) = table.iter().find(|(k, ..)| n.contains(k))?;
    Some(match precision {
        "bf16" | "fp16" => *half,
        _ if tf32 => *tf,
        _ => *full,
    })
}

/// The name of the GPU `device` is (nvidia-smi's, of that device: with `CUDA_VISIBLE_DEVICES`
/// narrowing the machine, cuda:i is the i-th entry of that list).
fn gpu_name(device: Device) -> Option<String> {
    let Device::Cuda(i) = device else {
        return None;
    };
    let id = std::env::var("CUDA_VISIBLE_DEVICES")
        .ok()
        .and_then(|v| v.split(',').nth(i).map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| i.to_string());
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader", "-i", &id])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    s.lines().next().map(|l| l.trim().to_string())
}

/// Matmul throughput measured on `device` (FLOP/s): square products for about a second.
fn measured_matmul_peak(device: Device, precision: &str) -> f64 {
    let (n, kind) = match (device, precision) {
        (Device::Cpu, _) => (1024, tch::Kind::Float),
        (_, "bf16") => (8192, tch::Kind::BFloat16),
        (_, "fp16") => (8192, tch::Kind::Half),
        _ => (8192, tch::Kind::Float),
    };
    tch::no_grad(|| {
        let a = tch::Tensor::randn([n, n], (kind, device));
        let b = tch::Tensor::randn([n, n], (kind, device));
        let sync = || {
            if let Device::Cuda(i) = device {
                tch::Cuda::synchronize(i as i64);
            }
        };
        let _ = a.matmul(&b);
        sync();
        let t = Instant::now();
        let mut k = 0u32;
        while t.elapsed().as_secs_f64() < 1.0 {
            for _ in 0..4 {
                let _ = a.matmul(&b);
            }
            sync();
            k += 4;
        }
        2.0 * (n as f64).powi(3) * k as f64 / t.elapsed().as_secs_f64()
    })
}

struct Prepared {
    dir: PathBuf,
    sweep_file: PathBuf,
    config: crate::spec::config::RunConfig,
    ids_file: PathBuf,
    config_json: PathBuf,
    /// Non-padding tokens (both views) and padded tokens of the timed steps.
    tokens: u64,
    padded: u64,
    parameters: i64,
    flop_parameters: i64,
}

fn prepare(o: &Options, tmp: &Path) -> Result<Prepared> {
    let model_dir = tmp.join("model");
    crate::hf::geometry::write_model_dir(&model_dir, &o.geometry)?;
    let config_json = model_dir.join("config.json");

    // Training text: the data file's lines, repeated until the run needs no second epoch.
    let total = o.warmup + o.steps;
    let need = total * o.batch;
    let text = std::fs::read_to_string(&o.data)
        .with_context(|| format!("reading {}", o.data.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        bail!("{} has no sentences", o.data.display());
    }
    let train_file = tmp.join("train.txt");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&train_file)?);
        for l in lines.iter().cycle().take(need) {
            writeln!(f, "{l}")?;
        }
    }
    let sweep_text = format!(
        "[sweep]\nname = \"bench-train\"\nseeds = [1]\n[base]\nmodel.path = \"model\"\nmodel.init = \"random\"\nmodel.pooling = \"avg\"\ndata.train = [{train:?}]\ndata.shuffle = false\ntrain.batch_size = {b}\ntrain.max_len = {l}\ntrain.steps = {total}\ntrain.lr = 3e-5\ntrain.temperature = 0.05\ntrain.precision = \"{p}\"\ntrain.checkpoint_every = 0\ntrain.log_every = 1\nloss.kind = \"infonce\"\neval.every = 0\neval.tasks = []\nprobe.every = 0\nprobe.size = 2\n",
        train = train_file.display().to_string(),
        b = o.batch,
        l = o.max_len,
        p = o.precision,
    );
    let sweep_file = tmp.join("bench-train.toml");
    std::fs::write(&sweep_file, &sweep_text)?;
    let sweep = crate::spec::parse(&sweep_file, &sweep_text).map_err(|e| anyhow!("{e}"))?;
    let config = crate::spec::config::RunConfig::from_flat(&sweep.runs[0].config)
        .map_err(|e| anyhow!("{e}"))?;

    // The token ids simsweep trains on, in order, for the reference.
    let model =
        crate::model::LoadedModel::from_run_config(&config.model, &sweep_file, 1, Device::Cpu)
            .context("loading the benchmark model")?;
    let vars = model.vs.variables();
    let count = |keep: &dyn Fn(&str) -> bool| -> i64 {
        vars.iter()
            .filter(|(n, t)| t.requires_grad() && keep(n))
            .map(|(_, t)| t.numel() as i64)
            .sum()
    };
    let parameters = count(&|_| true);
    // Model FLOPs count the matrix products: the embedding tables are looked up, not multiplied,
    // and the pooler and SimCSE's MLP are not used by average pooling.
    let flop_parameters = count(&|n| {
        !(n.starts_with("embeddings.")
            || n.starts_with("pooler.")
            || n.starts_with("mlp.")
            || n.ends_with("relative_attention_bias.weight"))
    });
    let tok = crate::tokcache::build(
        std::slice::from_ref(&train_file),
        "lines",
        &model.tokenizer,
        o.max_len as i64,
        None,
    )?;
    if tok.len() < need {
        bail!("{} examples tokenized, {need} needed", tok.len());
    }
    let ids_file = tmp.join("ids.txt");
    let (mut tokens, mut padded) = (0u64, 0u64);
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&ids_file)?);
        for step in 0..total {
            let rows: Vec<&[u32]> = (step * o.batch..(step + 1) * o.batch)
                .map(|i| tok.text(i))
                .collect();
            if step >= o.warmup {
                let width = rows.iter().map(|r| r.len()).max().unwrap_or(0) as u64;
                tokens += 2 * rows.iter().map(|r| r.len() as u64).sum::<u64>();
                padded += 2 * o.batch as u64 * width;
            }
            for r in rows {
                let line: Vec<String> = r.iter().map(|t| t.to_string()).collect();
                writeln!(f, "{}", line.join(" "))?;
            }
        }
    }
    Ok(Prepared {
        dir: tmp.to_path_buf(),
        sweep_file,
        config,
        ids_file,
        config_json,
        tokens,
        padded,
        parameters,
        flop_parameters,
    })
}

/// simsweep's trainer on the prepared run; returns the timed window and, when profiling, the
/// profile summary.
fn run_simsweep(
    p: &Prepared,
    o: &Options,
    step_metrics: bool,
    profile: bool,
) -> Result<(Measure, Option<String>)> {
    let mut cfg = p.config.clone();
    cfg.train.step_metrics = step_metrics;
    let out_dir = p.dir.join("out");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir)?;
    std::env::set_var("SIMSWEEP_FLUSH_EVERY", o.warmup.to_string());
    if profile {
        std::env::set_var("SIMSWEEP_PROFILE", "1");
    } else {
        std::env::remove_var("SIMSWEEP_PROFILE");
    }
    let data_dir = o.data_dir.clone();
    let token_cache = p.dir.join("tokens");
    let cancel = AtomicBool::new(false);
    let never = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut first: Option<(i64, Instant)> = None;
    let mut last: Option<(i64, Instant)> = None;
    let mut summary = None;
    let outcome = std::thread::scope(|s| {
        let h = s.spawn(|| {
            train::train(train::Job {
                config: &cfg,
                sweep_file: &p.sweep_file,
                data_dir: &data_dir,
                out_dir: &out_dir,
                device: o.device,
                events: tx,
                cancel: &cancel,
                stop: &never,
                verdicts: false,
                resume: None,
                token_cache: Some(&token_cache),
            })
        });
        for e in rx {
            match e {
                Event::Metrics(rows) => {
                    let now = Instant::now();
                    if let Some(step) = rows.iter().filter(|r| r.1 == "loss").map(|r| r.0).max() {
                        if step as usize == o.warmup {
                            first = Some((step, now));
                        }
                        if step as usize > o.warmup {
                            last = Some((step, now));
                        }
                    }
                }
                Event::Note { kind, message } if kind == "profile" => summary = Some(message),
                _ => {}
            }
        }
        h.join()
            .map_err(|_| anyhow!("the trainer thread panicked"))?
    })?;
    std::env::remove_var("SIMSWEEP_PROFILE");
    std::env::remove_var("SIMSWEEP_FLUSH_EVERY");
    match outcome {
        Outcome::Done { .. } => {}
        other => bail!("the benchmark run ended as {other:?}"),
    }
    let (Some((s0, t0)), Some((s1, t1))) = (first, last) else {
        bail!("the benchmark run reported no metric windows");
    };
    Ok((
        Measure {
            steps: (s1 - s0) as usize,
            secs: (t1 - t0).as_secs_f64(),
            about: None,
        },
        summary,
    ))
}

fn run_reference(p: &Prepared, o: &Options, script: &Path) -> Result<Measure> {
    let device = crate::runtime::device_name(o.device);
    let out = std::process::Command::new(&o.python)
        .arg(script)
        .args(["--config", &p.config_json.display().to_string()])
        .args(["--ids", &p.ids_file.display().to_string()])
        .args(["--batch", &o.batch.to_string()])
        .args(["--steps", &(o.warmup + o.steps).to_string()])
        .args(["--warmup", &o.warmup.to_string()])
        .args(["--threads", &tch::get_num_threads().to_string()])
        .args(["--device", &device])
        .args(["--precision", &o.precision])
        .args(["--attn", &o.attn])
        .output()
        .with_context(|| format!("starting the reference with {}", o.python.display()))?;
    if !out.status.success() {
        bail!(
            "the reference failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "reading the reference's output: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let tokens = v["tokens"].as_u64().unwrap_or(0);
    if tokens != p.tokens {
        bail!(
            "the reference counted {tokens} tokens, simsweep's batches hold {}: the inputs differ",
            p.tokens
        );
    }
    let about = match (v["model_class"].as_str(), v["attn"].as_str()) {
        (Some(class), Some(attn)) => Some(format!("{class}, {attn} attention")),
        _ => None,
    };
    Ok(Measure {
        steps: v["steps"].as_u64().unwrap_or(0) as usize,
        secs: v["secs"].as_f64().unwrap_or(f64::NAN),
        about,
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Run the benchmark and print the table; returns simsweep / reference (medians of sentences/s).
pub fn train(o: &Options) -> Result<f64> {
    let tmp = simsweep_core::scratch::TempDir::new()?;
    let p = prepare(o, &tmp.0)?;
    let script = tmp.0.join("bench_train_reference.py");
    std::fs::write(&script, REFERENCE)?;
    let device = crate::runtime::device_name(o.device);
    let threads = tch::get_num_threads();
    let gpu = match o.device {
        Device::Cuda(_) => gpu_name(o.device),
        _ => None,
    };
    println!(
        "training throughput: {} geometry ({:.1} M parameters), batch {}, max_len {}, {}, InfoNCE τ 0.05, avg pooling, {device}{}, {threads} threads",
        o.geometry,
        p.parameters as f64 / 1e6,
        o.batch,
        o.max_len,
        o.precision,
        gpu.as_deref().map(|g| format!(" ({g})")).unwrap_or_default()
    );
    println!(
        "  {} timed steps after {} warm-up steps; {:.1} tokens per sentence (padded to {:.1})",
        o.steps,
        o.warmup,
        p.tokens as f64 / (2 * o.steps * o.batch) as f64,
        p.padded as f64 / (2 * o.steps * o.batch) as f64
    );
    let per_step_tokens = p.tokens as f64 / o.steps as f64;
    let (mut refs, mut ours, mut off) = (Vec::new(), Vec::new(), Vec::new());
    let rate = |m: &Measure| m.steps as f64 * o.batch as f64 / m.secs;
    let show = |name: &str, m: &Measure| {
        let sps = m.steps as f64 / m.secs;
        println!(
            "  {name:<28} {:9.1} sentences/s  {:10.0} tokens/s  {:7.1} ms/step",
            sps * o.batch as f64,
            sps * per_step_tokens,
            1e3 / sps
        );
    };
    for _ in 0..o.repeat.max(1) {
        let m = run_reference(&p, o, &script)?;
        if refs.is_empty() {
            if let Some(about) = &m.about {
                println!("  reference model: transformers {about}");
            }
        }
        show("reference (PyTorch eager)", &m);
        refs.push(rate(&m));
        let (m, _) = run_simsweep(&p, o, true, false)?;
        show("simsweep", &m);
        ours.push(rate(&m));
        if o.metrics_off {
            let (m, _) = run_simsweep(&p, o, false, false)?;
            show("simsweep, step metrics off", &m);
            off.push(rate(&m));
        }
    }
    let r = median(&mut refs);
    let s = median(&mut ours);
    let ratio = s / r;
    println!(
        "  median: simsweep {s:.1} sentences/s, reference {r:.1} sentences/s; ratio simsweep / reference = {ratio:.3}"
    );
    let mut metrics_cost = None;
    if o.metrics_off {
        let f = median(&mut off);
        let cost = f / s - 1.0;
        println!(
            "  step metrics: {f:.1} sentences/s off vs {s:.1} on: overhead {:.2} % (target ≤ 3 %)",
            100.0 * cost
        );
        metrics_cost = Some(cost);
    }
    // Model FLOP utilisation: 6 × encoder parameters × the batch's real (non-padding) tokens per
    // second — the work the step must do. The reference also computes every padded position
    // (simsweep skips them), so counting padded tokens would credit it, and would credit simsweep
    // with FLOPs it never spends.
    let flops = |sents_per_s: f64| {
        6.0 * p.flop_parameters as f64 * per_step_tokens * sents_per_s / o.batch as f64
    };
    let measured = measured_matmul_peak(o.device, &o.precision);
    let nominal = o.peak_tflops.map(|t| t * 1e12).or_else(|| {
        gpu.as_deref()
            .and_then(|g| nominal_peak(g, &o.precision, p.config.train.tf32))
    });
    let mfu = |peak: f64| 100.0 * flops(s) / peak;
    print!(
        "  model FLOP/s (6 × {:.1} M encoder parameters × non-padding tokens): simsweep {:.2} TFLOP/s, reference {:.2} TFLOP/s; MFU vs measured {} matmul peak {:.2} TFLOP/s: simsweep {:.1} %, reference {:.1} %",
        p.flop_parameters as f64 / 1e6,
        flops(s) / 1e12,
        flops(r) / 1e12,
        o.precision,
        measured / 1e12,
        mfu(measured),
        100.0 * flops(r) / measured
    );
    if let Some(peak) = nominal {
        print!(
            "; vs nominal {} peak {:.0} TFLOP/s: simsweep {:.1} %, reference {:.1} %",
            match o.precision.as_str() {
                "bf16" | "fp16" => "bf16/fp16 tensor-core",
                _ if p.config.train.tf32 => "TF32 tensor-core",
                _ => "fp32 (no TF32)",
            },
            peak / 1e12,
            mfu(peak),
            100.0 * flops(r) / peak
        );
    }
    println!();
    let mut profile_json = None;
    if o.profile {
        let (_, summary) = run_simsweep(&p, o, true, true)?;
        let summary = summary.ok_or_else(|| anyhow!("the profiled run sent no profile"))?;
        let (steps, phases) = crate::train::profile::parse_summary(&summary)
            .ok_or_else(|| anyhow!("unreadable profile {summary}"))?;
        let periodic = ["eval", "probe", "checkpoint"];
        let total: f64 = phases
            .iter()
            .filter(|(n, _)| !periodic.contains(&n.as_str()))
            .map(|(_, v)| v)
            .sum();
        println!(
            "  profile of simsweep's step ({steps} steps, device synchronised at each phase):"
        );
        for (name, ms) in &phases {
            if !periodic.contains(&name.as_str()) {
                println!(
                    "    {name:<11} {ms:8.2} ms/step  {:5.1} %",
                    100.0 * ms / total
                );
            }
        }
        println!("    {:<11} {total:8.2} ms/step", "step");
        let extra: Vec<String> = phases
            .iter()
            .filter(|(n, ms)| periodic.contains(&n.as_str()) && *ms > 0.0)
            .map(|(n, ms)| format!("{n} {:.0} ms", ms * steps as f64))
            .collect();
        if !extra.is_empty() {
            println!(
                "    outside the steps: {} (the run's end)",
                extra.join(", ")
            );
        }
        if o.metrics_off {
            // The step metrics' own cost, free of run-to-run noise: the phases they live in (the
            // loss, where they are computed, and the per-step stacking) with and without them.
            let (_, off) = run_simsweep(&p, o, false, true)?;
            let (_, off_phases) = off
                .as_deref()
                .and_then(crate::train::profile::parse_summary)
                .ok_or_else(|| anyhow!("the profiled run without step metrics sent no profile"))?;
            let get = |ph: &[(String, f64)], n: &str| {
                ph.iter().find(|(k, _)| k == n).map_or(0.0, |(_, v)| *v)
            };
            let on_ms = get(&phases, "loss") + get(&phases, "metrics") + get(&phases, "flush");
            let off_ms =
                get(&off_phases, "loss") + get(&off_phases, "metrics") + get(&off_phases, "flush");
            println!(
                "    step metrics: loss + metrics + flush phases {on_ms:.2} ms/step with them, {off_ms:.2} without: {:.2} ms/step = {:.3} % of the step (target ≤ 3 %)",
                on_ms - off_ms,
                100.0 * (on_ms - off_ms) / total
            );
        }
        profile_json = Some(summary);
    }
    if let Some(path) = &o.json {
        let line = serde_json::json!({
            "date": now_utc(),
            "host": hostname(),
            "device": device,
            "gpu": gpu,
            "threads": threads,
            "geometry": o.geometry,
            "parameters": p.parameters,
            "encoder_parameters": p.flop_parameters,
            "batch": o.batch,
            "max_len": o.max_len,
            "precision": o.precision,
            "timed_steps": o.steps,
            "simsweep_sentences_per_s": s,
            "reference_sentences_per_s": r,
            "ratio": ratio,
            "step_metrics_overhead": metrics_cost,
            "measured_peak_flops": measured,
            "nominal_peak_flops": nominal,
            "simsweep_model_flops": flops(s),
            "reference_model_flops": flops(r),
            "profile": profile_json.and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok()),
        });
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(f, "{line}")?;
    }
    Ok(ratio)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn now_utc() -> String {
    rusqlite::Connection::open_in_memory()
        .and_then(|c| {
            c.query_row("SELECT strftime('%Y-%m-%dT%H:%M:%SZ', 'now')", [], |r| {
                r.get(0)
            })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::nominal_peak;

    #[test]
    fn peaks_follow_the_precision_and_the_part() {
        assert_eq!(nominal_peak("NVIDIA H200", "bf16", false), Some(989.4e12));
        assert_eq!(
            nominal_peak("NVIDIA H200", "fp32", false),
            Some(66.9e12),
            "fp32 is not the bf16 peak"
        );
        assert_eq!(nominal_peak("NVIDIA H200", "fp32", true), Some(494.7e12));
        assert_eq!(
            nominal_peak("NVIDIA H200 NVL", "bf16", false),
            Some(835.5e12),
            "NVL is not SXM"
        );
        assert_eq!(
            nominal_peak("NVIDIA H100 NVL", "bf16", false),
            Some(835.5e12)
        );
        assert_eq!(
            nominal_peak("NVIDIA H100 PCIe", "fp16", false),
            Some(756.0e12)
        );
        assert_eq!(
            nominal_peak("NVIDIA H100 80GB HBM3", "bf16", false),
            Some(989.4e12)
        );
        assert_eq!(nominal_peak("Tesla T4", "bf16", false), None);
    }
}
