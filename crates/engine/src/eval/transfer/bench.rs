//! `bench eval`: SentEval's transfer protocol on saved embeddings, simsweep against the Python
//! reference (`scripts/parity_transfer.py`, embedded here) on the same files, in one invocation.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::{score, Embedded, Mode, TransferTask, DEFAULT_SEED};

const REFERENCE: &str = include_str!("../../../../../scripts/parity_transfer.py");

/// Read a little-endian `.npy` of `<f4` (2-D) or `<i8` (1-D), C order.
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, NpyData)> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if b.len() < 12 || &b[..6] != b"\x93NUMPY" {
        bail!("{}: not a .npy file", path.display());
    }
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        _ => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
    };
    let header = b
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .with_context(|| format!("{}: a truncated or unreadable .npy header", path.display()))?;
    let shape: Vec<usize> = header
        .split("'shape':")
        .nth(1)
        .and_then(|r| r.split(['(', ')']).nth(1))
        .context("the .npy shape")?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().context("a .npy dimension"))
        .collect::<Result<_>>()?;
    if header.contains("'fortran_order': True") {
        bail!("{}: Fortran order is not read", path.display());
    }
    let body = &b[start + hlen..];
    let n: usize = shape.iter().product();
    let width = if header.contains("'<i8'") { 8 } else { 4 };
    if body.len() != n * width {
        bail!(
            "{}: {} bytes of data for shape {shape:?}",
            path.display(),
            body.len()
        );
    }
    let data = if header.contains("'<f4'") {
        NpyData::F32(
            body.chunks_exact(4)
                .take(n)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        )
    } else if header.contains("'<i8'") {
        NpyData::I64(
            body.chunks_exact(8)
                .take(n)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        )
    } else {
        bail!("{}: expected <f4 or <i8 data ({header})", path.display());
    };
    Ok((shape, data))
}

pub enum NpyData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

fn splits(task: TransferTask) -> &'static [&'static str] {
    match task {
        TransferTask::Mr | TransferTask::Cr | TransferTask::Subj | TransferTask::Mpqa => &["all"],
        TransferTask::Sst2 => &["train", "dev", "test"],
        TransferTask::Trec | TransferTask::Mrpc => &["train", "test"],
    }
}

/// One task's saved embeddings.
pub fn load(dir: &Path, task: TransferTask) -> Result<Embedded> {
    let mut out = Vec::new();
    let mut dim = 0;
    for s in splits(task) {
        let (xs, x) = read_npy(&dir.join(format!("{task}.{s}.x.npy")))?;
        let (_, y) = read_npy(&dir.join(format!("{task}.{s}.y.npy")))?;
        let (NpyData::F32(x), NpyData::I64(y)) = (x, y) else {
            bail!("{task}.{s}: expected float32 rows and int64 labels");
        };
        if xs.len() != 2 || xs[0] != y.len() {
            bail!("{task}.{s}: rows of shape {xs:?} for {} labels", y.len());
        }
        if let Some(bad) = y.iter().find(|&&v| v < 0 || v as usize >= task.classes()) {
            bail!(
                "{task}.{s}: label {bad} (the task has {} classes)",
                task.classes()
            );
        }
        dim = xs[1];
        out.push((x, y.into_iter().map(|v| v as usize).collect()));
    }
    Ok(Embedded { dim, splits: out })
}

pub fn run(
    dir: &Path,
    modes: &[String],
    tasks: &[String],
    python: &str,
    json: bool,
) -> Result<i32> {
    crate::runtime::init();
    let modes: Vec<Mode> = modes.iter().map(|m| m.parse()).collect::<Result<_>>()?;
    let tasks: Vec<TransferTask> = if tasks.is_empty() {
        TransferTask::ALL
            .into_iter()
            .filter(|t| dir.join(format!("{t}.{}.x.npy", splits(*t)[0])).is_file())
            .collect()
    } else {
        tasks.iter().map(|t| t.parse()).collect::<Result<_>>()?
    };
    if tasks.is_empty() {
        bail!("{}: no saved embeddings (write them with `simsweep eval --tasks transfer --save-embeddings DIR`)", dir.display());
    }
    let data: Vec<Embedded> = tasks.iter().map(|&t| load(dir, t)).collect::<Result<_>>()?;
    let tmp = simsweep_core::scratch::TempDir::new()?;
    let script = tmp.0.join("parity_transfer.py");
    std::fs::write(&script, REFERENCE)?;
    let names: Vec<&str> = tasks.iter().map(|t| t.name()).collect();
    let threads = tch::get_num_threads();
    let mut report = Vec::new();
    for mode in modes {
        let t0 = Instant::now();
        let mut ours = Vec::new();
        for (&t, e) in tasks.iter().zip(&data) {
            let s = Instant::now();
            let r = score(t, e, mode, DEFAULT_SEED)?;
            ours.push((t, r, s.elapsed().as_secs_f64()));
        }
        let secs = t0.elapsed().as_secs_f64();
        let reference = if python == "none" {
            None
        } else {
            let out_json = tmp.0.join(format!("reference-{}.json", mode.name()));
            let t1 = Instant::now();
            let out = std::process::Command::new(python)
                .arg(&script)
                .arg(dir)
                .args(["--mode", mode.name(), "--tasks", &names.join(",")])
                .arg("--json")
                .arg(&out_json)
                .env("OMP_NUM_THREADS", threads.to_string())
                .env("MKL_NUM_THREADS", threads.to_string())
                .output()
                .with_context(|| format!("starting the reference with {python}"))?;
            let wall = t1.elapsed().as_secs_f64();
            if !out.status.success() {
                bail!(
                    "the Python reference failed ({python} {}):\n{}",
                    script.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_json)?)?;
            Some((wall, v))
        };
        report.push((mode, secs, ours, reference));
    }
    if json {
        let v: Vec<serde_json::Value> = report
            .iter()
            .map(|(mode, secs, ours, reference)| {
                serde_json::json!({
                    "mode": mode.name(),
                    "threads": threads,
                    "simsweep_seconds": secs,
                    "reference_seconds": reference.as_ref().map(|r| r.0),
                    "simsweep": ours.iter().map(|(t, r, s)| (t.name().to_string(), serde_json::json!({"acc": r.acc, "f1": r.f1, "seconds": s}))).collect::<serde_json::Map<_, _>>(),
                    "reference": reference.as_ref().map(|r| r.1.clone()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!(
        "SentEval transfer protocol on {} ({} tasks), {threads} threads; reference: {}",
        dir.display(),
        tasks.len(),
        if python == "none" {
            "none".to_string()
        } else {
            format!("{python} scripts/parity_transfer.py (numpy, scikit-learn)")
        }
    );
    let mut worst = 0f64;
    for (mode, secs, ours, reference) in &report {
        let mut rows = Vec::new();
        for (t, r, s) in ours {
            let theirs = reference
                .as_ref()
                .and_then(|(_, v)| v["scores"][t.name()].as_f64());
            let d = theirs.map(|x| r.acc - x);
            if let Some(d) = d {
                worst = worst.max(d.abs());
            }
            rows.push(vec![
                t.name().to_string(),
                format!("{:.2}", r.acc),
                theirs.map_or("-".into(), |x| format!("{x:.2}")),
                d.map_or("-".into(), |d| format!("{d:+.2}")),
                format!("{s:.2}"),
                reference
                    .as_ref()
                    .and_then(|(_, v)| v["seconds"][t.name()].as_f64())
                    .map_or("-".into(), |x| format!("{x:.2}")),
            ]);
        }
        println!("\nmode {}:", mode.name());
        print!(
            "{}",
            crate::table::render(
                &[
                    "task",
                    "simsweep",
                    "reference",
                    "Δ",
                    "simsweep s",
                    "reference s"
                ]
                .map(String::from),
                &rows
            )
        );
        match reference {
            Some((wall, _)) => println!(
                "total: simsweep {secs:.2} s, reference {wall:.2} s (its process, imports included): reference / simsweep = {:.2}×",
                wall / secs
            ),
            None => println!("total: simsweep {secs:.2} s"),
        }
    }
    if reference_present(&report) {
        println!(
            "\nlargest |Δ| over tasks and modes: {worst:.2} accuracy points (parity target 0.3)"
        );
    }
    Ok(0)
}

type Row = (
    Mode,
    f64,
    Vec<(TransferTask, super::TransferScore, f64)>,
    Option<(f64, serde_json::Value)>,
);

fn reference_present(r: &[Row]) -> bool {
    r.iter().any(|x| x.3.is_some())
}
