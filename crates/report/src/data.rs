//! Reading a sweep for charts and reports: its runs with their swept values, and metric series.
//!
//! Every metric read names one run and one metric (`run_pk`, `metric_id`, then `layer` and `step`),
//! so it is a range scan of the `metrics` primary key — never a scan of the table — whatever the
//! database's size (checked by `tests::metric_reads_use_the_primary_key`). Values stored as
//! NULL (NaN or infinite) are skipped.

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use simsweep_core::BadInput;
use std::collections::BTreeMap;

/// A sweep as charts see it.
#[derive(Debug, Clone)]
pub struct SweepData {
    pub sweep_id: i64,
    pub name: String,
    pub description: String,
    pub file_path: String,
    /// The sweep file as last planned.
    pub file_text: String,
    /// Keys varied by the sweep, in file order (`seed` not included).
    pub swept_keys: Vec<String>,
    /// The runs the sweep file produces (`in_plan = 1`), in plan order.
    pub runs: Vec<Run>,
}

/// One run.
#[derive(Debug, Clone)]
pub struct Run {
    pub pk: i64,
    pub id: String,
    pub seed: i64,
    pub status: String,
    pub step: Option<i64>,
    pub error: Option<String>,
    /// Every resolved setting (flat dotted keys, plus `seed`).
    pub config: BTreeMap<String, Value>,
}

impl Run {
    /// The value of a swept key (or `seed`) as shown in legends and tables.
    pub fn display(&self, key: &str) -> String {
        if key == "seed" {
            return self.seed.to_string();
        }
        crate::spec::value::display(self.config.get(key).unwrap_or(&Value::Null))
    }

    /// The raw value of a key (numbers stay numbers).
    pub fn value(&self, key: &str) -> Value {
        if key == "seed" {
            return Value::from(self.seed);
        }
        self.config.get(key).cloned().unwrap_or(Value::Null)
    }
}

impl SweepData {
    /// Load the sweep `name`; an unknown name is bad input listing the sweeps there are.
    pub fn load(conn: &Connection, name: &str) -> Result<SweepData> {
        let row = conn
            .query_row(
                "SELECT sweep_id, description, file_path, file_text, swept_keys FROM sweeps WHERE name = ?1",
                [name],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                },
            )
            .optional()?;
        let Some((sweep_id, description, file_path, file_text, swept)) = row else {
            let mut st = conn.prepare("SELECT name FROM sweeps ORDER BY sweep_id")?;
            let names: Vec<String> = st
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            return Err(BadInput(if names.is_empty() {
                format!("no sweep named `{name}`: the database has no sweeps")
            } else {
                format!(
                    "no sweep named `{name}`; sweeps in the database: {}",
                    names.join(", ")
                )
            })
            .into());
        };
        let swept_keys: Vec<String> = serde_json::from_str(&swept).unwrap_or_default();
        let mut st = conn.prepare(
            "SELECT run_pk, run_id, seed, status, step, config_json, error FROM runs
             WHERE sweep_id = ?1 AND in_plan = 1 ORDER BY ordinal",
        )?;
        let runs = st
            .query_map([sweep_id], |r| {
                let cfg: String = r.get(5)?;
                Ok(Run {
                    pk: r.get(0)?,
                    id: r.get(1)?,
                    seed: r.get(2)?,
                    status: r.get(3)?,
                    step: r.get(4)?,
                    error: r.get(6)?,
                    config: serde_json::from_str(&cfg).unwrap_or_default(),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(SweepData {
            sweep_id,
            name: name.to_string(),
            description,
            file_path,
            file_text,
            swept_keys,
            runs,
        })
    }

    /// Distinct seeds of the sweep's runs.
    pub fn seed_count(&self) -> usize {
        let mut s: Vec<i64> = self.runs.iter().map(|r| r.seed).collect();
        s.sort_unstable();
        s.dedup();
        s.len()
    }

    /// The distinct values of `key` over the runs, ordered: numerically when every value is a
    /// number, else in plan order (for a grid, the order of the sweep file).
    pub fn values_of(&self, key: &str) -> Vec<String> {
        let mut seen: Vec<(Value, String)> = Vec::new();
        for r in &self.runs {
            let d = r.display(key);
            if !seen.iter().any(|(_, s)| *s == d) {
                seen.push((r.value(key), d));
            }
        }
        if seen.iter().all(|(v, _)| v.is_number()) {
            seen.sort_by(|a, b| {
                a.0.as_f64()
                    .unwrap_or(0.0)
                    .total_cmp(&b.0.as_f64().unwrap_or(0.0))
            });
        }
        seen.into_iter().map(|(_, s)| s).collect()
    }

    /// A key that may name a chart dimension: a swept key or `seed`; anything else is bad input.
    pub fn check_key(&self, flag: &str, key: &str) -> Result<()> {
        if key == "seed" || self.swept_keys.iter().any(|k| k == key) {
            return Ok(());
        }
        Err(BadInput(format!(
            "{flag} `{key}` is not a swept key of sweep `{}` (swept keys: {}; or `seed`)",
            self.name,
            if self.swept_keys.is_empty() {
                "none".to_string()
            } else {
                self.swept_keys.join(", ")
            }
        ))
        .into())
    }
}

/// The id of a metric name, None when no run of any sweep recorded it.
pub fn metric_id(conn: &Connection, name: &str) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT metric_id FROM metric_names WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?)
}

// Every metric read, each a range or point lookup of the `metrics` primary key
// (run_pk, metric_id, layer, step); `tests::metric_reads_use_the_primary_key` checks the plans.
const RECORDED_OWN_SQL: &str =
    "SELECT EXISTS (SELECT 1 FROM metrics WHERE run_pk = ?1 AND metric_id = ?2 AND layer = -1)";
const RECORDED_LAYERS_SQL: &str =
    "SELECT EXISTS (SELECT 1 FROM metrics WHERE run_pk = ?1 AND metric_id = ?2 AND layer >= 0)";
const SERIES_SQL: &str = "SELECT step, value FROM metrics
     WHERE run_pk = ?1 AND metric_id = ?2 AND layer = ?3 AND value IS NOT NULL ORDER BY step";
const VALUE_AT_SQL: &str =
    "SELECT value FROM metrics WHERE run_pk = ?1 AND metric_id = ?2 AND layer = ?3 AND step = ?4";
const LAYER_PROFILE_SQL: &str = "SELECT layer, value FROM metrics
     WHERE run_pk = ?1 AND metric_id = ?2 AND layer >= 0 AND step = ?3 AND value IS NOT NULL
     ORDER BY layer";
const STEPS_OWN_SQL: &str =
    "SELECT step FROM metrics WHERE run_pk = ?1 AND metric_id = ?2 AND layer = -1 ORDER BY step";
const STEPS_LAYERS_SQL: &str =
    "SELECT step FROM metrics WHERE run_pk = ?1 AND metric_id = ?2 AND layer >= 0";

/// Which layers to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layers {
    /// The run's own representation (`layer = -1`).
    Own,
    /// Per-layer probe values (`layer >= 0`).
    PerLayer,
}

/// Whether any of `runs` recorded metric `mid` (at the given layers): one primary-key probe per run.
pub fn recorded(conn: &Connection, runs: &[Run], mid: i64, layers: Layers) -> Result<bool> {
    let mut st = conn.prepare_cached(match layers {
        Layers::Own => RECORDED_OWN_SQL,
        Layers::PerLayer => RECORDED_LAYERS_SQL,
    })?;
    for r in runs {
        if st.query_row(params![r.pk, mid], |row| row.get::<_, bool>(0))? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The names of the metrics some run of the sweep recorded (at the given layers), sorted; for
/// messages. One primary-key probe per (metric, run) until found.
pub fn recorded_metrics(
    conn: &Connection,
    sweep: &SweepData,
    layers: Layers,
) -> Result<Vec<String>> {
    let mut st = conn.prepare("SELECT metric_id, name FROM metric_names ORDER BY name")?;
    let all: Vec<(i64, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for (id, name) in all {
        if recorded(conn, &sweep.runs, id, layers)? {
            out.push(name);
        }
    }
    Ok(out)
}

/// A compact list for messages: the `sv_NN` family is shown as one entry.
pub fn list_for_message(names: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    let svs = names.iter().filter(|n| is_sv(n)).count();
    for n in names {
        if is_sv(n) {
            if !out.iter().any(|o| o.starts_with("sv_01")) {
                out.push(format!("sv_01…sv_{svs:02}"));
            }
        } else {
            out.push(n.clone());
        }
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(", ")
    }
}

fn is_sv(n: &str) -> bool {
    n.len() == 5 && n.starts_with("sv_") && n[3..].bytes().all(|b| b.is_ascii_digit())
}

/// The id of `metric`, checked to be recorded by the sweep (at the given layers); bad input
/// listing the recorded metrics otherwise.
pub fn require_metric(
    conn: &Connection,
    sweep: &SweepData,
    metric: &str,
    layers: Layers,
) -> Result<i64> {
    if let Some(id) = metric_id(conn, metric)? {
        if recorded(conn, &sweep.runs, id, layers)? {
            return Ok(id);
        }
    }
    let have = recorded_metrics(conn, sweep, layers)?;
    Err(BadInput(format!(
        "metric `{metric}` was not recorded{} in sweep `{}`; recorded: {}",
        if layers == Layers::PerLayer {
            " per layer"
        } else {
            ""
        },
        sweep.name,
        list_for_message(&have)
    ))
    .into())
}

/// One metric of one run at one layer: (step, value) in step order.
pub fn series(conn: &Connection, run_pk: i64, mid: i64, layer: i64) -> Result<Vec<(i64, f64)>> {
    let mut st = conn.prepare_cached(SERIES_SQL)?;
    let rows = st.query_map(params![run_pk, mid, layer], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .with_context(|| format!("reading metric {mid} of run {run_pk}"))
}

/// One value: a run's metric at a layer and step.
pub fn value_at(
    conn: &Connection,
    run_pk: i64,
    mid: i64,
    layer: i64,
    step: i64,
) -> Result<Option<f64>> {
    let mut st = conn.prepare_cached(VALUE_AT_SQL)?;
    Ok(st
        .query_row(params![run_pk, mid, layer, step], |r| {
            r.get::<_, Option<f64>>(0)
        })
        .optional()?
        .flatten())
}

/// A run's per-layer values of a metric at one step: (layer, value) in layer order.
pub fn layer_profile(
    conn: &Connection,
    run_pk: i64,
    mid: i64,
    step: i64,
) -> Result<Vec<(i64, f64)>> {
    let mut st = conn.prepare_cached(LAYER_PROFILE_SQL)?;
    let rows = st.query_map(params![run_pk, mid, step], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The steps at which a run recorded a metric at a layer (`Layers::PerLayer`: any layer ≥ 0).
pub fn steps_of(conn: &Connection, run_pk: i64, mid: i64, layers: Layers) -> Result<Vec<i64>> {
    let mut st = conn.prepare_cached(match layers {
        Layers::Own => STEPS_OWN_SQL,
        Layers::PerLayer => STEPS_LAYERS_SQL,
    })?;
    let rows = st.query_map(params![run_pk, mid], |r| r.get(0))?;
    let mut steps = rows.collect::<rusqlite::Result<Vec<i64>>>()?;
    // Per layer: (layer, step) order, so each layer's steps again.
    steps.sort_unstable();
    steps.dedup();
    Ok(steps)
}

/// Whether a smaller value of `metric` is better, from the metric registry
/// ([`simsweep_core::metrics`]): the one list `best`, `plot` and the report share. A metric with
/// no better side (a norm, a spectrum value) has no "best" value: bad input naming `--mode final`.
pub fn lower_is_better(metric: &str) -> Result<bool> {
    use simsweep_core::metrics::{direction, Direction};
    match direction(metric) {
        Direction::Lower => Ok(true),
        Direction::Higher => Ok(false),
        Direction::Neither => Err(BadInput(format!(
            "metric `{metric}` has no better direction (docs/schema.md, metric registry: neither), so it has no best value; use --mode final"
        ))
        .into()),
    }
}

/// A run's score for a metric (`layer = -1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub step: i64,
    pub value: f64,
}

/// The best or final value of one run's metric (`layer = -1`, non-NULL values only):
/// - [`Mode::Final`](super::Mode::Final): the value at the last recorded step;
/// - [`Mode::Best`](super::Mode::Best): the maximum over the recorded steps, or the minimum for
///   [`lower_is_better`] metrics; ties go to the earliest step.
///
/// None when the run has no value. One lookup in `metric_summaries`; the rows are read only when
/// the last one is NULL.
pub fn run_score(
    conn: &Connection,
    run_pk: i64,
    mid: i64,
    metric: &str,
    mode: super::Mode,
) -> Result<Option<Score>> {
    let Some(s) = crate::store::summary::get(conn, (run_pk, mid, -1))? else {
        return Ok(None);
    };
    let pick = match mode {
        super::Mode::Final => match s.last {
            (step, Some(value)) => Some((step, value)),
            // The last row is NULL (a diverged run): the last value there is, from the series.
            (_, None) => series(conn, run_pk, mid, -1)?.last().copied(),
        },
        super::Mode::Best if lower_is_better(metric)? => s.min,
        super::Mode::Best => s.max,
    };
    Ok(pick.map(|(step, value)| Score { step, value }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{self, Synthetic};
    use crate::Mode;

    fn db() -> (tempfile::TempDir, crate::store::Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let mut spec = Synthetic::small("s");
        spec.steps = 20;
        spec.layers = 2;
        spec.pending = 1;
        synthetic::write(&path, &spec).unwrap();
        let store = crate::store::Store::open_readonly(&path).unwrap();
        (dir, store)
    }

    #[test]
    fn metric_reads_use_the_primary_key() {
        let (_d, store) = db();
        for sql in [
            RECORDED_OWN_SQL,
            RECORDED_LAYERS_SQL,
            SERIES_SQL,
            VALUE_AT_SQL,
            LAYER_PROFILE_SQL,
            STEPS_OWN_SQL,
            STEPS_LAYERS_SQL,
        ] {
            let mut st = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let n = st.parameter_count();
            let plan: Vec<String> = st
                .query_map(rusqlite::params_from_iter(vec![1i64; n]), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let plan = plan.join(" | ");
            assert!(
                plan.contains("SEARCH metrics USING PRIMARY KEY (run_pk=? AND metric_id=?"),
                "{sql}: {plan}"
            );
            assert!(!plan.contains("SCAN metrics"), "{sql}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: sorts: {plan}");
        }
    }

    #[test]
    fn sweeps_runs_and_values_are_read() {
        let (_d, store) = db();
        let c = &store.conn;
        let s = SweepData::load(c, "s").unwrap();
        assert_eq!(s.runs.len(), 8);
        assert_eq!(s.swept_keys, ["train.temperature", "model.pooling"]);
        assert_eq!(s.values_of("train.temperature"), ["0.05", "0.5"]);
        assert_eq!(s.values_of("model.pooling"), ["avg", "cls"]);
        assert_eq!(s.seed_count(), 2);
        assert_eq!(s.runs.iter().filter(|r| r.status == "pending").count(), 1);
        let e = SweepData::load(c, "nope").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no sweep named `nope`; sweeps in the database: s"
        );
        assert!(s.check_key("--color-by", "seed").is_ok());
        let e = s.check_key("--color-by", "train.lr").unwrap_err();
        assert!(e.downcast_ref::<BadInput>().is_some());
        let loss = metric_id(c, "loss").unwrap().unwrap();
        let pk = s.runs[0].pk;
        assert_eq!(series(c, pk, loss, -1).unwrap().len(), 20);
        let ta = require_metric(c, &s, "token_anisotropy", Layers::PerLayer).unwrap();
        assert_eq!(
            layer_profile(c, pk, ta, 20)
                .unwrap()
                .iter()
                .map(|p| p.0)
                .collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(steps_of(c, pk, ta, Layers::PerLayer).unwrap(), [0, 20]);
        let e = require_metric(c, &s, "bogus", Layers::Own).unwrap_err();
        let m = e.to_string();
        assert!(
            m.starts_with("metric `bogus` was not recorded in sweep `s`; recorded: ")
                && m.contains("loss")
                && m.contains("sv_01…sv_16")
                && !m.contains("sv_02"),
            "{m}"
        );
        let e = require_metric(c, &s, "loss", Layers::PerLayer).unwrap_err();
        assert!(e.to_string().contains("not recorded per layer"), "{e}");
    }

    #[test]
    fn best_is_the_max_or_the_min_for_losses_and_final_is_the_last() {
        let (_d, store) = db();
        let c = &store.conn;
        let s = SweepData::load(c, "s").unwrap();
        let pk = s.runs[0].pk;
        for (metric, lower) in [("loss", true), ("stsb_dev", false), ("uniformity", true)] {
            assert_eq!(lower_is_better(metric).unwrap(), lower);
            let id = metric_id(c, metric).unwrap().unwrap();
            let rows = series(c, pk, id, -1).unwrap();
            let best = run_score(c, pk, id, metric, Mode::Best).unwrap().unwrap();
            let fin = run_score(c, pk, id, metric, Mode::Final).unwrap().unwrap();
            let ext = if lower {
                rows.iter().map(|r| r.1).fold(f64::INFINITY, f64::min)
            } else {
                rows.iter().map(|r| r.1).fold(f64::NEG_INFINITY, f64::max)
            };
            assert_eq!(best.value, ext, "{metric}");
            assert_eq!((fin.step, fin.value), *rows.last().unwrap(), "{metric}");
        }
        // A pending run has no score.
        let pending = s.runs.iter().find(|r| r.status == "pending").unwrap();
        let id = metric_id(c, "stsb_dev").unwrap().unwrap();
        assert_eq!(
            run_score(c, pending.pk, id, "stsb_dev", Mode::Best).unwrap(),
            None
        );
    }
}
