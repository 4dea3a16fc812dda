//! Synthetic sweep results with the shapes of real ones (a loss that falls faster at low
//! temperature, a STS-B dev score that rises and saturates, probes with a decaying spectrum), for
//! the chart tests and `simsweep bench plot`. Deterministic: the same spec gives the same database.

use crate::store::Store;
use anyhow::{anyhow, Result};
use rusqlite::params;
use std::path::Path;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub name: String,
    pub description: String,
    /// `[grid]` entries: key and TOML values (e.g. `("train.temperature", "[0.05, 0.5]")`).
    pub grid: Vec<(String, String)>,
    pub seeds: Vec<i64>,
    /// Last step; step metrics at 1..=steps every `log_every`.
    pub steps: i64,
    pub log_every: i64,
    /// stsb_dev at 0, every `eval_every`, and the last step; test scores and `avg` at the last.
    pub eval_every: i64,
    /// Probes at 0, every `probe_every` and the last step.
    pub probe_every: i64,
    /// Singular values sv_01… recorded by each probe.
    pub sv: usize,
    /// Per-layer probe values for layers 0..layers (0: none, and `probe.layers` stays "last").
    pub layers: usize,
    /// Step metrics per logged step, at least the 12 the trainer records (loss, lr, grad_norm,
    /// pos_cos, neg_cos, batch_alignment, batch_uniformity, gd_mean, w_entropy, w_max,
    /// ratio_mean, tokens_per_s); more are named `extra_NN`.
    pub step_metrics: usize,
    /// Runs left `pending` (no metrics): the last `pending` runs in plan order.
    pub pending: usize,
}

impl Synthetic {
    /// Two temperatures × two poolers, two seeds: a small sweep exercising seed bands and facets.
    pub fn small(name: &str) -> Synthetic {
        Synthetic {
            name: name.into(),
            description: "synthetic: temperature × pooler".into(),
            grid: vec![
                ("train.temperature".into(), "[0.05, 0.5]".into()),
                ("model.pooling".into(), "[\"avg\", \"cls\"]".into()),
            ],
            seeds: vec![1, 2],
            steps: 100,
            log_every: 1,
            eval_every: 25,
            probe_every: 25,
            sv: 16,
            layers: 0,
            step_metrics: 12,
            pending: 0,
        }
    }

    /// The benchmark's size: 5 temperatures × 2 poolers × 5 learning rates × 4 seeds = 200 runs,
    /// 30 step metrics every step for 2,000 steps (12 M rows).
    pub fn bench() -> Synthetic {
        Synthetic {
            name: "bench-plot".into(),
            description: "synthetic: 200 runs × 30 metrics × 2,000 steps".into(),
            grid: vec![
                (
                    "train.temperature".into(),
                    "[0.01, 0.02, 0.05, 0.1, 0.2]".into(),
                ),
                ("model.pooling".into(), "[\"cls\", \"avg\"]".into()),
                ("train.lr".into(), "[1e-5, 3e-5, 5e-5, 1e-4, 3e-4]".into()),
            ],
            seeds: vec![1, 2, 3, 4],
            steps: 2000,
            log_every: 1,
            eval_every: 125,
            probe_every: 250,
            sv: 64,
            layers: 0,
            step_metrics: 30,
            pending: 0,
        }
    }

    /// The sweep file this spec stands for.
    pub fn sweep_text(&self) -> String {
        let mut t = format!(
            "# Synthetic results (simsweep_report::synthetic) — a < b & c\n[sweep]\nname = \"{}\"\ndescription = \"{}\"\nseeds = [{}]\n[base]\nmodel.path = \"synthetic-model\"\ndata.train = [\"synthetic.txt\"]\ntrain.steps = {}\n",
            self.name,
            self.description,
            self.seeds
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            self.steps
        );
        if self.layers > 0 {
            t.push_str("probe.layers = \"all\"\n");
        }
        t.push_str("[grid]\n");
        for (k, v) in &self.grid {
            t.push_str(&format!("\"{k}\" = {v}\n"));
        }
        t
    }
}

/// A deterministic value in [-1, 1) from a few integers (also the query benchmark's noise).
pub fn noise(a: u64, b: u64, c: u64) -> f64 {
    let mut x = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .wrapping_add(c.wrapping_mul(0x1656_67B1_9E37_79F9));
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// Plan the sweep into `db` (created if needed) and write its metrics; runs are marked done.
/// Rows go in one transaction per run, in primary-key order.
pub fn write(db: &Path, spec: &Synthetic) -> Result<()> {
    let sweep = crate::spec::parse(Path::new("synthetic.toml"), &spec.sweep_text())
        .map_err(|e| anyhow!("synthetic sweep: {e}"))?;
    let mut store = Store::open(db)?;
    store.plan(&sweep)?;
    let runs = store.sweep_runs(&spec.name)?;
    let conn = &mut store.conn;
    let step = simsweep_core::metrics::step_metrics().count();
    let mut names: Vec<String> = simsweep_core::metrics::step_metrics()
        .map(|s| s.to_string())
        .collect();
    for i in step..spec.step_metrics.max(step) {
        names.push(format!("extra_{:02}", i - step + 1));
    }
    let step_names = names.clone();
    let eval = [
        "stsb_dev",
        "avg",
        "stsb_test",
        "sickr_test",
        "sts12",
        "sts13",
        "sts14",
        "sts15",
        "sts16",
    ];
    let probes = [
        "alignment",
        "uniformity",
        "token_anisotropy",
        "intra_sentence_similarity",
        "effective_rank",
    ];
    names.extend(eval.iter().map(|s| s.to_string()));
    names.extend(probes.iter().map(|s| s.to_string()));
    names.extend((1..=spec.sv).map(|k| format!("sv_{k:02}")));
    let mut ids = std::collections::HashMap::new();
    for n in &names {
        conn.execute("INSERT OR IGNORE INTO metric_names (name) VALUES (?1)", [n])?;
        let id: i64 = conn.query_row(
            "SELECT metric_id FROM metric_names WHERE name = ?1",
            [n],
            |r| r.get(0),
        )?;
        ids.insert(n.clone(), id);
    }
    let n_active = runs.len().saturating_sub(spec.pending);
    for (ri, run) in runs.iter().enumerate().take(n_active) {
        let temp = run
            .config
            .get("train.temperature")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.05);
        let cls = run.config.get("model.pooling").and_then(|v| v.as_str()) == Some("cls");
        let lr = run
            .config
            .get("train.lr")
            .and_then(|v| v.as_f64())
            .unwrap_or(3e-5);
        let seed = run.config.get("seed").and_then(|v| v.as_i64()).unwrap_or(0) as u64;
        let speed = (0.05 / temp).powf(0.35) * (lr / 3e-5).powf(0.2) * if cls { 0.8 } else { 1.0 };
        let pk = run.run_pk;
        // Rows in key order: metric, layer, step.
        let mut rows: Vec<(i64, i64, i64, f64)> = Vec::new();
        let t = |step: i64| step as f64 / spec.steps.max(1) as f64;
        let steps: Vec<i64> = (1..=spec.steps)
            .filter(|s| s % spec.log_every.max(1) == 0 || *s == spec.steps)
            .collect();
        for (mi, name) in step_names.iter().enumerate() {
            let id = ids[name];
            for &s in &steps {
                let x = t(s);
                let e = noise(seed, s as u64, mi as u64 + 7 * ri as u64);
                let v = match name.as_str() {
                    "loss" => (4.2 - 3.6 * (1.0 - (-3.0 * speed * x).exp())) * (1.0 + 0.04 * e),
                    "lr" => lr * (1.0 - x),
                    "gd_mean" => (1.0 - 0.8 * (1.0 - (-2.5 * speed * x).exp())) * (1.0 + 0.03 * e),
                    "w_entropy" => 4.1 - 1.0 * speed * x + 0.05 * e,
                    "w_max" => 0.02 + 0.15 * speed * x * x + 0.01 * e.abs(),
                    "ratio_mean" => 1.0 + 0.02 * e,
                    "tokens_per_s" => 9000.0 + 500.0 * e,
                    _ => 0.5 + 0.3 * (x * (mi as f64 + 1.0)).sin() + 0.05 * e,
                };
                rows.push((id, -1, s, v));
            }
        }
        let mut evals: Vec<i64> = (0..=spec.steps)
            .filter(|s| s % spec.eval_every.max(1) == 0)
            .collect();
        if evals.last() != Some(&spec.steps) {
            evals.push(spec.steps);
        }
        let peak = 62.0 + 12.0 * speed.min(1.6) / 1.6 + if cls { -4.0 } else { 0.0 };
        for &s in &evals {
            let e = noise(seed, s as u64, 1001);
            let v = 45.0 + (peak - 45.0) * (1.0 - (-4.0 * t(s)).exp()) + 0.6 * e;
            rows.push((ids["stsb_dev"], -1, s, v));
        }
        for (k, name) in eval.iter().enumerate().skip(1) {
            let e = noise(seed, k as u64, 2002);
            rows.push((
                ids[*name],
                -1,
                spec.steps,
                peak - 6.0 + 2.0 * k as f64 + 0.5 * e,
            ));
        }
        let mut probe_steps: Vec<i64> = (0..=spec.steps)
            .filter(|s| s % spec.probe_every.max(1) == 0)
            .collect();
        if probe_steps.last() != Some(&spec.steps) {
            probe_steps.push(spec.steps);
        }
        for (pi, name) in probes.iter().enumerate() {
            let id = ids[*name];
            let layers: Vec<i64> = if spec.layers > 0 && (2..=3).contains(&pi) {
                std::iter::once(-1).chain(0..spec.layers as i64).collect()
            } else {
                vec![-1]
            };
            for &l in &layers {
                for &s in &probe_steps {
                    let x = t(s) * speed;
                    let e = 0.01 * noise(seed, s as u64, 3003 + pi as u64 * 31 + (l + 1) as u64);
                    let depth = if l < 0 {
                        1.0
                    } else {
                        (l as f64 + 1.0) / spec.layers as f64
                    };
                    let v = match *name {
                        "alignment" => 0.05 + 0.25 * (1.0 - (-2.0 * x).exp()) + e,
                        "uniformity" => -0.3 - 1.6 * (1.0 - (-2.0 * x).exp()) + e,
                        "token_anisotropy" => (0.1 + 0.5 * depth) * (1.0 - 0.6 * x.min(1.0)) + e,
                        "intra_sentence_similarity" => 0.3 + 0.4 * depth - 0.1 * x + e,
                        _ => 20.0 + 30.0 * x + 100.0 * e,
                    };
                    rows.push((id, l, s, v));
                }
            }
        }
        for k in 1..=spec.sv {
            let id = ids[&format!("sv_{k:02}")];
            for &s in &probe_steps {
                let x = t(s) * speed;
                let decay = 0.6 - 0.3 * x.min(1.5);
                let v = if k == 1 {
                    1.0
                } else {
                    (k as f64).powf(-decay) * (1.0 + 0.01 * noise(seed, s as u64, k as u64))
                };
                rows.push((id, -1, s, v));
            }
        }
        rows.sort_by_key(|r| (r.0, r.1, r.2));
        let tx = conn.transaction()?;
        {
            let mut ins = tx.prepare(
                "INSERT OR REPLACE INTO metrics (run_pk, metric_id, layer, step, value) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (id, l, s, v) in rows {
                ins.execute(params![pk, id, l, s, v])?;
            }
        }
        crate::store::summary::recompute_run(&tx, pk)?;
        tx.execute(
            "UPDATE runs SET status = 'done', step = ?2, started_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'), finished_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE run_pk = ?1",
            params![pk, spec.steps],
        )?;
        tx.commit()?;
    }
    Ok(())
}
