//! The engine's commands: what computes with libtorch. The front (`simsweep`) starts this binary
//! for `run` (one `worker` per run), and hands `eval`, `probe`, `info` and `bench train` to it with
//! their arguments unchanged, so their options are defined here once.

use crate::runtime::device_arg;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use simsweep_core::BadInput;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "simsweep",
    bin_name = "simsweep",
    version = crate_version(),
    about = "simsweep's engine: the commands that compute with libtorch (started by `simsweep`)",
    long_about = None
)]
pub struct EngineCli {
    /// Results database (SQLite); the engine's commands do not open it.
    #[arg(
        long,
        global = true,
        env = "SIMSWEEP_DB",
        default_value = "results/simsweep.db",
        hide = true
    )]
    pub db: PathBuf,

    /// Root of the data files; relative paths resolve against it.
    #[arg(long, global = true, env = "SIMSWEEP_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    #[command(subcommand)]
    pub command: EngineCommand,
}

fn crate_version() -> &'static str {
    Box::leak(crate::code_version().into_boxed_str())
}

#[derive(Debug, Subcommand)]
pub enum EngineCommand {
    /// Train one run (what the front's executors start): reads the job (JSON) on standard input,
    /// writes one JSON message per line on standard output (simsweep_core::events).
    #[command(hide = true)]
    Worker,
    /// Evaluate a checkpoint on the STS tasks (SentEval protocol: Spearman × 100 of cosine
    /// similarities; STS12–16 "all"; avg of the seven test sets) and SentEval's transfer tasks
    /// (logistic regression on frozen embeddings, SimCSE's test or fasttest mode).
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
        /// Tasks, comma-separated: `sts` (the eight STS tasks, the default), `transfer` (mr, cr,
        /// subj, mpqa, sst2, trec, mrpc), `full` (both), or task names.
        #[arg(long, value_delimiter = ',')]
        tasks: Vec<String>,
        /// The transfer tasks' protocol: `test` (10-fold, Adam, the numbers papers report) or
        /// `fasttest` (5-fold, RMSprop).
        #[arg(long, default_value = "test")]
        mode: String,
        /// SentEval's seed (folds, batches, validation splits, initial weights).
        #[arg(long, default_value_t = crate::eval::transfer::DEFAULT_SEED)]
        seed: u32,
        /// Write each transfer task's embeddings and labels, in SentEval's order, as .npy files
        /// into this folder (`<task>.<split>.x.npy`, `<task>.<split>.y.npy`), for checks against
        /// another implementation of the classifier (scripts/parity_transfer.py).
        #[arg(long)]
        save_embeddings: Option<PathBuf>,
        /// Truncate sentences to this many tokens (default: the model's limit, as SentEval).
        #[arg(long)]
        max_len: Option<usize>,
        /// Sentences per forward pass.
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        /// cpu, cuda, cuda:N (default: cuda:0 when available, else cpu).
        #[arg(long)]
        device: Option<String>,
        /// Print {"model", "pooling", "mode", "seed", "scores": {task: score, ..., "avg", "transfer_avg"},
        /// "transfer": {task: {acc, devacc, f1, penalty, ndev, ntest}}, "seconds": {task: {embed,
        /// classify}}, "fingerprint"}.
        #[arg(long)]
        json: bool,
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
    /// Show what this build sees: versions, threads, CUDA devices.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks that compute: training throughput against the PyTorch reference.
    #[command(subcommand)]
    Bench(EngineBench),
}

#[derive(Debug, Subcommand)]
pub enum EngineBench {
    /// SentEval's transfer protocol on saved embeddings (`eval --save-embeddings DIR`), in each
    /// mode, against the Python reference (scripts/parity_transfer.py) on the same files in one
    /// invocation: seconds, the ratio reference / simsweep, and both implementations' scores.
    Eval {
        /// The folder `eval --tasks transfer --save-embeddings` wrote.
        #[arg(long)]
        embeddings: PathBuf,
        /// Modes to run, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "fasttest,test")]
        modes: Vec<String>,
        /// Tasks, comma-separated (default: the seven that have files in the folder).
        #[arg(long, value_delimiter = ',')]
        tasks: Vec<String>,
        /// Python with numpy, scikit-learn and torch (scripts/pyref.sh makes one); `none` times
        /// simsweep alone.
        #[arg(long, env = "SIMSWEEP_PYREF", default_value = "python3")]
        python: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Training throughput against a PyTorch reference (transformers BertModel + the SimCSE loss,
    /// eager mode) on the same geometry, batch, max_len, precision, threads and token ids, in one
    /// invocation: sentences/s, tokens/s, the ratio simsweep / reference, model FLOP utilisation.
    Train {
        /// minilm (6×384), bert-base (12×768), bert-large, tiny, distilbert-base, mpnet-base,
        /// modernbert-base, or a path to a config.json.
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
}

/// Parse and run an engine command; returns the exit status.
pub fn main_with(cli: EngineCli) -> Result<i32> {
    match cli.command {
        EngineCommand::Worker => crate::worker::main(),
        EngineCommand::Eval {
            ref model,
            ref pooling,
            mlp_only_train,
            ref tasks,
            ref mode,
            seed,
            ref save_embeddings,
            max_len,
            batch_size,
            ref device,
            json,
        } => eval(
            model,
            pooling,
            mlp_only_train,
            tasks,
            EvalProtocol {
                mode,
                seed,
                save_embeddings: save_embeddings.as_deref(),
            },
            max_len,
            batch_size,
            device.as_deref(),
            json,
            &cli.data_dir,
        ),
        EngineCommand::Probe {
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
        EngineCommand::Info { json } => {
            let info = crate::runtime::info();
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("simsweep        {}", info.simsweep);
                println!(
                    "PyTorch         {} (libtorch in {})",
                    if info.torch_build.is_empty() {
                        info.torch
                    } else {
                        info.torch_build
                    },
                    info.libtorch_lib
                );
                println!(
                    "CUDA build      {}",
                    if info.torch_cuda.is_empty() {
                        "none (a CPU-only libtorch)".to_string()
                    } else {
                        format!("libtorch is built for CUDA {}", info.torch_cuda)
                    }
                );
                println!(
                    "NVIDIA driver   {}",
                    match (&info.nvidia_driver, &info.driver_cuda) {
                        (Some(d), Some(c)) => format!("{d} (supports CUDA up to {c})"),
                        _ => "none found (nvidia-smi cannot be run)".into(),
                    }
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
                println!(
                    "GPUs visible    {}",
                    info.gpus_visible.as_deref().unwrap_or("none")
                );
                println!(
                    "TF32            {}",
                    if info.tf32 {
                        "allowed for fp32 matmuls on CUDA"
                    } else {
                        "off: fp32 runs on CUDA compute in full fp32 (train.tf32 = true allows TF32)"
                    }
                );
                if let Some(p) = &info.cuda_problem {
                    println!("problem         {p}");
                }
                println!("check           [0,1,2;3,4,5]·ᵀ = {}", info.check);
            }
            Ok(0)
        }
        EngineCommand::Bench(EngineBench::Eval {
            ref embeddings,
            ref modes,
            ref tasks,
            ref python,
            json,
        }) => crate::eval::transfer::bench::run(embeddings, modes, tasks, python, json),
        EngineCommand::Bench(EngineBench::Train {
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
            let opts = crate::bench_train::Options {
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
            crate::bench_train::train(&opts)?;
            Ok(0)
        }
    }
}

/// `eval`'s transfer settings.
struct EvalProtocol<'a> {
    mode: &'a str,
    seed: u32,
    save_embeddings: Option<&'a std::path::Path>,
}

#[allow(clippy::too_many_arguments)]
fn eval(
    model_dir: &std::path::Path,
    pooling: &str,
    mlp_only_train: bool,
    tasks: &[String],
    protocol: EvalProtocol<'_>,
    max_len: Option<usize>,
    batch_size: usize,
    device: Option<&str>,
    json: bool,
    data_dir: &std::path::Path,
) -> Result<i32> {
    use crate::eval::{transfer, StsData};
    let device = device_arg(device)?;
    let pooling_kind: crate::model::Pooling = pooling.parse().map_err(BadInput)?;
    let mode: transfer::Mode = protocol
        .mode
        .parse()
        .map_err(|e| BadInput(format!("--mode: {e:#}")))?;
    let (tasks, transfer_tasks) = if tasks.is_empty() {
        (crate::eval::Task::ALL.to_vec(), Vec::new())
    } else {
        crate::eval::parse_tasks(tasks).map_err(|e| BadInput(format!("--tasks: {e:#}")))?
    };
    if batch_size == 0 {
        return Err(BadInput("--batch-size must be at least 1".into()).into());
    }
    // The data are read (and checked) before the model is loaded and anything computed.
    let sts = StsData::load(data_dir, &tasks)?;
    let transfer_files = transfer::read_tasks(data_dir, &transfer_tasks)?;
    let model = crate::model::LoadedModel::load(
        model_dir,
        crate::model::Init::Pretrained { seed: 0 },
        &Default::default(),
        device,
    )
    .with_context(|| format!("loading {}", model_dir.display()))?;
    let max_len = max_len.unwrap_or(model.max_tokens() as usize);
    let pooler = crate::model::Pooler {
        pooling: pooling_kind,
        mlp_only_train,
    };
    let scores = crate::train::embed_scores(&model, &pooler, &sts, &tasks, max_len, batch_size)?;
    let mut entries: Vec<(String, f64)> = scores
        .entries()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if let Some(avg) = scores.avg() {
        entries.push(("avg".into(), avg));
    }
    let mut embed = |s: &[String]| -> Result<tch::Tensor> {
        Ok(model.embed(s, &pooler, max_len, s.len().max(1))?)
    };
    let mut transfer_scores = Vec::new();
    let mut seconds = serde_json::Map::new();
    for f in &transfer_files {
        let t0 = std::time::Instant::now();
        let e = transfer::embed_task(f.task, f, batch_size, &mut embed)?;
        let embedded = t0.elapsed().as_secs_f64();
        if let Some(dir) = protocol.save_embeddings {
            save_npy(dir, f, &e)?;
        }
        let t1 = std::time::Instant::now();
        transfer_scores.push((f.task, transfer::score(f.task, &e, mode, protocol.seed)?));
        seconds.insert(
            f.task.name().into(),
            serde_json::json!({"embed": embedded, "classify": t1.elapsed().as_secs_f64()}),
        );
    }
    entries.extend(transfer::entries(&transfer_scores));
    let fingerprint =
        crate::runtime::Fingerprint::new(device, "fp32", mode.name(), pooler.describe(), max_len);
    if json {
        let map: serde_json::Map<String, serde_json::Value> = entries
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!(v)))
            .collect();
        let detail: serde_json::Map<String, serde_json::Value> = transfer_scores
            .iter()
            .map(|(t, s)| (t.name().to_string(), serde_json::json!(s)))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "model": model_dir,
                "pooling": pooling,
                "mode": mode.name(),
                "seed": protocol.seed,
                "scores": map,
                "transfer": detail,
                "seconds": seconds,
                "fingerprint": fingerprint,
            }))?
        );
    } else {
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|(k, v)| {
                // The registry's unit: Spearman × 100, accuracy × 100, F1 × 100.
                let unit = simsweep_core::metrics::lookup(k).map_or("", |m| m.unit);
                vec![k.clone(), format!("{v:.2}"), unit.to_string()]
            })
            .collect();
        let how = if transfer_scores.is_empty() {
            String::new()
        } else {
            format!(", transfer tasks in {} mode", mode.name())
        };
        println!("{} ({pooling}{how})", model_dir.display());
        print!(
            "{}",
            crate::table::render(
                &["task".to_string(), "score".to_string(), "unit".to_string()],
                &rows
            )
        );
    }
    Ok(0)
}

/// Write one task's embedded splits as `.npy` (float32 rows, int64 labels).
fn save_npy(
    dir: &std::path::Path,
    files: &crate::eval::transfer::TaskFiles,
    e: &crate::eval::transfer::Embedded,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let npy = |descr: &str, shape: &[usize], body: &[u8]| -> Vec<u8> {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let shape = if dims.len() == 1 {
            format!("({},)", dims[0])
        } else {
            format!("({})", dims.join(", "))
        };
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(body);
        out
    };
    for (split, (x, y)) in files.splits.iter().zip(&e.splits) {
        let xb: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let yb: Vec<u8> = y.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect();
        // Labels first: a task's `.x.npy` exists only once its labels do (bench eval looks for it).
        for (suffix, bytes) in [
            ("y.npy", npy("<i8", &[y.len()], &yb)),
            ("x.npy", npy("<f4", &[y.len(), e.dim], &xb)),
        ] {
            let p = dir.join(format!("{}.{}.{suffix}", files.task.name(), split.name));
            let tmp = p.with_extension("npy.partial");
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, &p))
                .with_context(|| format!("writing {}", p.display()))?;
        }
    }
    Ok(())
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
