//! Questions about a sweep's results, answered from the database: its runs with their settings and
//! headline scores ([`runs_table`]), the best or final value of a metric per group of settings with
//! its spread over seeds ([`best`]), read-only SQL ([`prepare_readonly`]) and exports for pandas and
//! DuckDB ([`export`]). Everything here reads; the commands `simsweep runs | best | query | export`
//! only format what these functions return (docs/cli.md).
//!
//! Per-run lookups go through the primary key of `metrics`, (run_pk, metric_id, layer, step): a
//! run's values of one metric at one layer are one contiguous range of the B-tree, so the cost of a
//! question grows with the runs it asks about, not with the size of the database.

pub mod detail;
pub mod importance;
pub mod output;
pub mod stats;
#[cfg(test)]
mod tests;

use rusqlite::types::Value as Sql;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The question cannot be answered as asked: an unknown sweep, key, metric or status, a
    /// statement that would write. The message says what was expected.
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

fn input<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Input(msg.into()))
}

pub use crate::store::STATUSES;
pub use detail::{
    decisions, recorded_layers, run_detail, sweep_counts, sweep_version, RunDetail, SweepCounts,
};

// ---------------------------------------------------------------------------------------------
// Sweeps and runs

/// A sweep as recorded by `simsweep plan`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SweepInfo {
    pub sweep_id: i64,
    pub name: String,
    pub description: String,
    /// Keys varied by the sweep file, in file order (`seed` not included).
    pub swept_keys: Vec<String>,
}

/// Names of every sweep in the database, in the order they were first planned.
pub fn sweep_names(conn: &Connection) -> Result<Vec<String>> {
    let mut st = conn.prepare("SELECT name FROM sweeps ORDER BY sweep_id")?;
    let names = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(names)
}

/// The sweep called `name`; an unknown name is an [`Error::Input`] listing the known ones.
pub fn sweep(conn: &Connection, name: &str) -> Result<SweepInfo> {
    let row = conn
        .query_row(
            "SELECT sweep_id, name, description, swept_keys FROM sweeps WHERE name = ?1",
            [name],
            |r| {
                Ok(SweepInfo {
                    sweep_id: r.get(0)?,
                    name: r.get(1)?,
                    description: r.get(2)?,
                    swept_keys: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                })
            },
        )
        .optional()?;
    if let Some(s) = row {
        return Ok(s);
    }
    let known = sweep_names(conn)?;
    if known.is_empty() {
        return input(format!(
            "no sweep named `{name}`: the database has no sweeps yet (record one with `simsweep plan FILE`)"
        ));
    }
    input(format!(
        "no sweep named `{name}`{}; sweeps in the database: {}",
        did_you_mean(name, known.iter().map(|s| s.as_str())),
        known.join(", ")
    ))
}

fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    crate::spec::schema::suggest(word, candidates)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// One `--where KEY=VALUE` condition: runs whose setting `key` equals `value`.
///
/// The value is compared with the typed setting (docs/schema.md, `run_params`): text that reads as
/// a number matches the same number stored as INTEGER or REAL (`0.05` matches 0.05, `64` matches
/// 64 and 64.0), `true` / `false` match booleans (stored 0 / 1), and any value also matches the
/// same text (a list setting compares as its JSON text, e.g. `["a.txt"]`). Values are bound
/// parameters, never part of the SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub key: String,
    pub value: String,
}

impl std::str::FromStr for Condition {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (k, v) = s.split_once('=').ok_or_else(|| {
            format!("expected KEY=VALUE (e.g. train.temperature=0.05), found `{s}`")
        })?;
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("expected KEY=VALUE, found `{s}` (no key)"));
        }
        Ok(Condition {
            key: k.to_string(),
            value: v.to_string(),
        })
    }
}

impl Condition {
    /// The value as SQLite should compare it with a typed setting.
    fn typed(&self) -> Sql {
        let v = self.value.trim();
        match v {
            "true" => return Sql::Integer(1),
            "false" => return Sql::Integer(0),
            _ => {}
        }
        if let Ok(i) = v.parse::<i64>() {
            return Sql::Integer(i);
        }
        match v.parse::<f64>() {
            Ok(x) if x.is_finite() => Sql::Real(x),
            _ => Sql::Text(self.value.clone()),
        }
    }
}

/// Which runs of a sweep a question is about.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// All must hold (AND).
    pub conditions: Vec<Condition>,
    /// Accepted statuses; empty: any.
    pub statuses: Vec<String>,
    /// Also runs the sweep file no longer produces (`in_plan = 0`).
    pub include_removed: bool,
}

impl Selection {
    /// Only runs with one of these statuses.
    pub fn with_statuses(mut self, s: &[&str]) -> Self {
        self.statuses = s.iter().map(|x| x.to_string()).collect();
        self
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.statuses.is_empty() {
            parts.push(format!("status {}", self.statuses.join(" or ")));
        }
        for c in &self.conditions {
            parts.push(format!("{}={}", c.key, c.value));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" with {}", parts.join(", "))
        }
    }
}

/// A run with everything needed to label it.
#[derive(Debug, Clone)]
pub struct Run {
    pub run_pk: i64,
    pub run_id: String,
    pub ordinal: i64,
    pub seed: i64,
    pub status: String,
    /// Last step reached.
    pub step: Option<i64>,
    pub in_plan: bool,
    pub error: Option<String>,
    /// Every resolved setting (flat dotted keys), `seed` included.
    pub config: BTreeMap<String, Value>,
    /// The run's length in steps: as recorded when it started, else its `train.steps`; `None`
    /// before a `train.epochs` run starts.
    pub total_steps: Option<i64>,
}

impl Run {
    /// The value of a setting (`seed` included); `null` when the run has no such setting.
    pub fn param(&self, key: &str) -> Value {
        if key == "seed" {
            return json!(self.seed);
        }
        self.config.get(key).cloned().unwrap_or(Value::Null)
    }
}

/// Every setting key recorded for the runs of a sweep, with its `param_keys` id.
pub fn param_keys(conn: &Connection, sweep: &SweepInfo) -> Result<BTreeMap<String, i64>> {
    let mut st = conn.prepare(
        "SELECT k.key, k.key_id FROM param_keys k WHERE EXISTS (
             SELECT 1 FROM params p JOIN runs r ON r.run_pk = p.run_pk
             WHERE p.key_id = k.key_id AND r.sweep_id = ?1)",
    )?;
    let keys = st
        .query_map([sweep.sweep_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(keys)
}

/// Check that `key` is a setting of the sweep's runs, naming the swept keys when it is not.
fn check_key(
    key: &str,
    keys: &BTreeMap<String, i64>,
    sweep: &SweepInfo,
    what: &str,
) -> Result<i64> {
    if let Some(id) = keys.get(key) {
        return Ok(*id);
    }
    let mut swept = sweep.swept_keys.clone();
    swept.push("seed".into());
    input(format!(
        "unknown key `{key}` in {what}{}: sweep `{}` varies {}; any other setting of its runs works too (e.g. `loss.kind`)",
        did_you_mean(key, keys.keys().map(|k| k.as_str())),
        sweep.name,
        swept.join(", ")
    ))
}

/// The runs of `sweep` that `sel` picks, in plan order (runs no longer in the plan last).
pub fn select_runs(conn: &Connection, sweep: &SweepInfo, sel: &Selection) -> Result<Vec<Run>> {
    for s in &sel.statuses {
        if !STATUSES.contains(&s.as_str()) {
            return input(format!(
                "unknown status `{s}`: expected one of {}",
                STATUSES.join(", ")
            ));
        }
    }
    // The SQL text depends only on how many statuses and conditions there are; every value is bound.
    let mut sql = String::from(
        "SELECT r.run_pk, r.run_id, r.ordinal, r.seed, r.status, r.step, r.in_plan, r.error, r.config_json,
                coalesce(r.total_steps, json_extract(r.config_json, '$.\"train.steps\"'))
         FROM runs r WHERE r.sweep_id = ? AND (? OR r.in_plan = 1)",
    );
    let mut args: Vec<Sql> = vec![
        Sql::Integer(sweep.sweep_id),
        Sql::Integer(sel.include_removed.into()),
    ];
    if !sel.statuses.is_empty() {
        sql.push_str(" AND r.status IN (");
        sql.push_str(&vec!["?"; sel.statuses.len()].join(", "));
        sql.push(')');
        args.extend(sel.statuses.iter().map(|s| Sql::Text(s.clone())));
    }
    if !sel.conditions.is_empty() {
        let keys = param_keys(conn, sweep)?;
        for c in &sel.conditions {
            let key_id = check_key(&c.key, &keys, sweep, "--where")?;
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM params p WHERE p.run_pk = r.run_pk AND p.key_id = ? AND p.value IN (?, ?))",
            );
            args.extend([Sql::Integer(key_id), c.typed(), Sql::Text(c.value.clone())]);
        }
    }
    sql.push_str(" ORDER BY r.in_plan DESC, r.ordinal");
    let mut st = conn.prepare(&sql)?;
    let runs = st
        .query_map(params_from_iter(args), |r| {
            let cfg: String = r.get(8)?;
            Ok(Run {
                run_pk: r.get(0)?,
                run_id: r.get(1)?,
                ordinal: r.get(2)?,
                seed: r.get(3)?,
                status: r.get(4)?,
                step: r.get(5)?,
                in_plan: r.get::<_, i64>(6)? != 0,
                error: r.get(7)?,
                config: serde_json::from_str(&cfg).unwrap_or_default(),
                total_steps: r.get(9)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(runs)
}

/// "4 runs: 2 done, 2 pending" for a sweep, for messages about empty selections.
fn status_summary(conn: &Connection, sweep: &SweepInfo) -> Result<String> {
    let mut st = conn.prepare(
        "SELECT status, count(*) FROM runs WHERE sweep_id = ?1 AND in_plan = 1 GROUP BY status ORDER BY count(*) DESC, status",
    )?;
    let counts: Vec<(String, i64)> = st
        .query_map([sweep.sweep_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let total: i64 = counts.iter().map(|c| c.1).sum();
    Ok(format!(
        "{total} runs{}{}",
        if counts.is_empty() { "" } else { ": " },
        counts
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn no_runs_error<T>(conn: &Connection, sweep: &SweepInfo, sel: &Selection) -> Result<T> {
    input(format!(
        "no runs of sweep `{}`{} (the sweep has {}){}",
        sweep.name,
        sel.describe(),
        status_summary(conn, sweep)?,
        if sel.statuses.len() == 1 && sel.statuses[0] == "done" {
            "; --status chooses others"
        } else {
            ""
        }
    ))
}

// ---------------------------------------------------------------------------------------------
// Metrics

/// A metric name with its id in `metric_names`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    pub id: i64,
    pub name: String,
}

/// Every metric name in the database, in the order first recorded.
pub fn metric_names(conn: &Connection) -> Result<Vec<Metric>> {
    let mut st = conn.prepare("SELECT metric_id, name FROM metric_names ORDER BY metric_id")?;
    let m = st
        .query_map([], |r| {
            Ok(Metric {
                id: r.get(0)?,
                name: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(m)
}

/// The metric called `name`; an unknown name is an [`Error::Input`] with the closest names.
pub fn metric(conn: &Connection, name: &str) -> Result<Metric> {
    let all = metric_names(conn)?;
    if let Some(m) = all.iter().find(|m| m.name == name) {
        return Ok(m.clone());
    }
    if all.is_empty() {
        return input(format!(
            "unknown metric `{name}`: no metrics are recorded yet (train with `simsweep run FILE`)"
        ));
    }
    input(format!(
        "unknown metric `{name}`{}; recorded metrics: {}",
        did_you_mean(name, all.iter().map(|m| m.name.as_str())),
        summarize_names(all.iter().map(|m| m.name.as_str()))
    ))
}

/// Names joined with commas, with runs of `sv_NN` shown as `sv_01…sv_64` (for messages).
pub fn summarize_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut sv: Vec<&str> = Vec::new();
    for n in names {
        if n.len() == 5 && n.starts_with("sv_") && n[3..].bytes().all(|b| b.is_ascii_digit()) {
            sv.push(n);
        } else {
            out.push(n.to_string());
        }
    }
    sv.sort_unstable();
    match sv.len() {
        0 => {}
        1 => out.push(sv[0].to_string()),
        _ => out.push(format!("{}…{}", sv[0], sv[sv.len() - 1])),
    }
    out.join(", ")
}

/// Which value of a run's curve a question is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The best value over the run's steps (higher or lower by the goal); ties go to the earliest
    /// step.
    #[default]
    Best,
    /// The value at the last step the run recorded this metric.
    Final,
}

impl Mode {
    /// `best` or `final`, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Best => "best",
            Mode::Final => "final",
        }
    }
}

/// Which direction is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// Higher is better (scores).
    Max,
    /// Lower is better (losses, alignment, uniformity, anisotropy).
    Min,
}

impl Goal {
    /// The direction the metric registry ([`crate::metrics`]) gives `metric`; `None` for a
    /// metric with no better side (its best value needs an explicit goal).
    pub fn infer(metric: &str) -> Option<Goal> {
        use crate::metrics::{direction, Direction};
        match direction(metric) {
            Direction::Higher => Some(Goal::Max),
            Direction::Lower => Some(Goal::Min),
            Direction::Neither => None,
        }
    }

    /// Whether `a` is better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Goal::Max => a > b,
            Goal::Min => a < b,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Goal::Max => "higher is better",
            Goal::Min => "lower is better",
        }
    }
}

/// One run's value of a metric, and the step it was recorded at.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RunValue {
    pub step: i64,
    /// `None` only in [`Mode::Final`], when the last recorded value is NULL (NaN or infinite).
    pub value: Option<f64>,
}

/// Per run (in the order of `run_pks`), the best or final value of `metric` at `layer`
/// (−1: the run's own representation) and its step; `None` for a run without any (non-NULL, in
/// best mode) value.
///
/// - [`Mode::Best`]: the best non-NULL value over all steps by `goal`, the earliest step on ties;
/// - [`Mode::Final`]: the value at the last step that recorded the metric (NULL stays `None`).
///
/// One lookup per run in `metric_summaries` (kept with the rows; no row is scanned).
pub fn run_values(
    conn: &Connection,
    run_pks: &[i64],
    metric: &Metric,
    layer: i64,
    mode: Mode,
    goal: Goal,
) -> Result<Vec<Option<RunValue>>> {
    let mut st = conn.prepare_cached(
        "SELECT last_step, last_value, min_step, min_value, max_step, max_value FROM metric_summaries
         WHERE run_pk = ?1 AND metric_id = ?2 AND layer = ?3",
    )?;
    let mut out = Vec::with_capacity(run_pks.len());
    for pk in run_pks {
        let v = st
            .query_row(params![pk, metric.id, layer], |r| {
                let at = |i: usize| -> rusqlite::Result<Option<RunValue>> {
                    let step: Option<i64> = r.get(i)?;
                    let value: Option<f64> = r.get(i + 1)?;
                    Ok(step.zip(value).map(|(step, v)| RunValue {
                        step,
                        value: Some(v),
                    }))
                };
                Ok(match (mode, goal) {
                    (Mode::Final, _) => Some(RunValue {
                        step: r.get(0)?,
                        value: r.get(1)?,
                    }),
                    (Mode::Best, Goal::Min) => at(2)?,
                    (Mode::Best, Goal::Max) => at(4)?,
                })
            })
            .optional()?
            .flatten();
        out.push(v);
    }
    Ok(out)
}

/// One run's curve of `metric` at `layer`: (step, value) in step order, NULL (NaN) values `None`.
/// A primary-key range scan.
pub fn run_series(
    conn: &Connection,
    run_pk: i64,
    metric: &Metric,
    layer: i64,
) -> Result<Vec<(i64, Option<f64>)>> {
    let mut st = conn.prepare_cached(
        "SELECT step, value FROM metrics WHERE run_pk = ?1 AND metric_id = ?2 AND layer = ?3 ORDER BY step",
    )?;
    let v = st
        .query_map(params![run_pk, metric.id, layer], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// The metrics that at least one of the runs recorded at `layer`, in the order first recorded
/// (one summary lookup per metric and run until found).
pub fn metrics_present(conn: &Connection, run_pks: &[i64], layer: i64) -> Result<Vec<Metric>> {
    let mut st = conn.prepare_cached(
        "SELECT 1 FROM metric_summaries WHERE run_pk = ?1 AND metric_id = ?2 AND layer = ?3",
    )?;
    let mut out = Vec::new();
    for m in metric_names(conn)? {
        for pk in run_pks {
            if st.exists(params![pk, m.id, layer])? {
                out.push(m);
                break;
            }
        }
    }
    Ok(out)
}

/// The layers at which some of the runs recorded `metric` (for messages).
fn layers_of(conn: &Connection, run_pks: &[i64], metric: &Metric) -> Result<Vec<i64>> {
    let mut st = conn.prepare_cached(
        "SELECT layer FROM metric_summaries WHERE run_pk = ?1 AND metric_id = ?2 ORDER BY layer",
    )?;
    let mut layers = BTreeSet::new();
    for pk in run_pks {
        for l in st.query_map(params![pk, metric.id], |r| r.get::<_, i64>(0))? {
            layers.insert(l?);
        }
    }
    Ok(layers.into_iter().collect())
}

/// An [`Error::Input`] saying that the runs have no value of `metric` at `layer`, with the layers
/// that do have values, or the metrics recorded at that layer.
fn no_values_error<T>(
    conn: &Connection,
    run_pks: &[i64],
    metric: &Metric,
    layer: i64,
) -> Result<T> {
    let layers = layers_of(conn, run_pks, metric)?;
    let hint = if !layers.is_empty() {
        format!(
            "; it is recorded at layer {} (--layer)",
            layers
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        let present = metrics_present(conn, run_pks, layer)?;
        if present.is_empty() {
            format!("; these runs recorded no metrics at layer {layer}")
        } else {
            format!(
                "{}; these runs recorded: {}",
                did_you_mean(&metric.name, present.iter().map(|m| m.name.as_str())),
                summarize_names(present.iter().map(|m| m.name.as_str()))
            )
        }
    };
    input(format!(
        "no values of `{}` at layer {layer} in the selected runs{hint}",
        metric.name
    ))
}

// ---------------------------------------------------------------------------------------------
// Statistics

pub use stats::{stats, sum, Comparison, Stats, Term};

// ---------------------------------------------------------------------------------------------
// best

/// What [`best`] is asked.
#[derive(Debug, Clone)]
pub struct BestQuery {
    pub metric: String,
    /// −1: the run's own representation; ≥ 0: a per-layer probe value.
    pub layer: i64,
    pub mode: Mode,
    /// `None`: [`Goal::infer`] from the metric's name.
    pub goal: Option<Goal>,
    /// Keys to group by; `None`: the swept keys (not `seed`), so groups differ only in seed.
    pub by: Option<Vec<String>>,
    /// Confidence level of the intervals and of "tied with the best" (default 0.95).
    pub level: f64,
}

/// One run's value within a group.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupRun {
    pub run_id: String,
    pub seed: i64,
    pub status: String,
    /// The step of the value; `None` when the run has none.
    pub step: Option<i64>,
    pub value: Option<f64>,
}

/// Runs sharing the values of the `by` keys.
#[derive(Debug, Clone)]
pub struct Group {
    /// The values of the `by` keys, in their order.
    pub key: Vec<Value>,
    /// The group's runs, by seed.
    pub runs: Vec<GroupRun>,
    /// Over the runs that have a value; `None` when none has.
    pub stats: Option<Stats>,
    /// Against the best group (the first); `None` for the best group itself and for a group
    /// without values.
    pub vs_best: Option<Comparison>,
    /// The group's position in plan order (groups are listed best first).
    pub order: usize,
}

/// The answer of [`best`]: groups best first.
#[derive(Debug, Clone)]
pub struct Best {
    pub sweep: String,
    pub metric: String,
    pub layer: i64,
    pub mode: Mode,
    pub goal: Goal,
    pub by: Vec<String>,
    /// The statuses the runs were selected by (empty: any).
    pub statuses: Vec<String>,
    /// The confidence level of the intervals.
    pub level: f64,
    pub groups: Vec<Group>,
}

/// Which direction is better for `q`: `--goal`, else the metric registry's; a metric with no
/// better side orders by max in final mode and needs `--goal` in best mode.
pub(crate) fn goal_of(metric: &Metric, q: &BestQuery) -> Result<Goal> {
    match (q.goal, Goal::infer(&metric.name)) {
        (Some(g), _) | (None, Some(g)) => Ok(g),
        (None, None) if q.mode == Mode::Final => Ok(Goal::Max),
        (None, None) => input(format!(
            "metric `{}` has no better direction (docs/schema.md, metric registry: neither); pass --goal max or --goal min, or --mode final",
            metric.name
        )),
    }
}

/// The runs `sel` picks and each one's value of `metric` as `q` asks (`run_values`, in their
/// order); bad input when no run is picked or none recorded the metric.
pub(crate) fn selected_values(
    conn: &Connection,
    sweep: &SweepInfo,
    sel: &Selection,
    metric: &Metric,
    q: &BestQuery,
    goal: Goal,
) -> Result<(Vec<Run>, Vec<Option<RunValue>>)> {
    let runs = select_runs(conn, sweep, sel)?;
    if runs.is_empty() {
        return no_runs_error(conn, sweep, sel);
    }
    let pks: Vec<i64> = runs.iter().map(|r| r.run_pk).collect();
    let values = run_values(conn, &pks, metric, q.layer, q.mode, goal)?;
    if values.iter().all(|v| v.is_none()) {
        return no_values_error(conn, &pks, metric, q.layer);
    }
    Ok((runs, values))
}

/// The best (or final) value of a metric per run, grouped by settings, with mean, sample std,
/// min and max over each group's runs (normally its seeds). Groups are sorted best first by mean
/// (by `goal`); groups without any value come last; ties keep plan order.
pub fn best(conn: &Connection, sweep: &SweepInfo, sel: &Selection, q: &BestQuery) -> Result<Best> {
    let metric = metric(conn, &q.metric)?;
    let goal = goal_of(&metric, q)?;
    let by = match &q.by {
        Some(keys) => {
            let known = param_keys(conn, sweep)?;
            for k in keys {
                check_key(k, &known, sweep, "--by")?;
            }
            keys.clone()
        }
        None => sweep
            .swept_keys
            .iter()
            .filter(|k| *k != "seed")
            .cloned()
            .collect(),
    };
    let (runs, values) = selected_values(conn, sweep, sel, &metric, q, goal)?;
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (run, v) in runs.iter().zip(&values) {
        let key: Vec<Value> = by.iter().map(|k| run.param(k)).collect();
        let i = *index
            .entry(serde_json::to_string(&key).expect("JSON"))
            .or_insert_with(|| {
                groups.push(Group {
                    key,
                    runs: Vec::new(),
                    stats: None,
                    vs_best: None,
                    order: groups.len(),
                });
                groups.len() - 1
            });
        groups[i].runs.push(GroupRun {
            run_id: run.run_id.clone(),
            seed: run.seed,
            status: run.status.clone(),
            step: v.map(|v| v.step),
            value: v.and_then(|v| v.value),
        });
    }
    for g in &mut groups {
        g.runs.sort_by_key(|r| r.seed);
        let vals: Vec<f64> = g.runs.iter().filter_map(|r| r.value).collect();
        g.stats = stats(&vals, q.level);
    }
    // Stable: equal means keep plan order.
    groups.sort_by(|a, b| match (&a.stats, &b.stats) {
        (Some(x), Some(y)) => {
            let o = x.mean.total_cmp(&y.mean);
            if goal == Goal::Max {
                o.reverse()
            } else {
                o
            }
        }
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    if groups.first().is_some_and(|g| g.stats.is_some()) {
        let values: Vec<Vec<(i64, f64)>> = groups
            .iter()
            .map(|g| {
                g.runs
                    .iter()
                    .filter_map(|r| r.value.map(|v| (r.seed, v)))
                    .collect()
            })
            .collect();
        for (g, c) in groups
            .iter_mut()
            .zip(stats::compare_with_best(&values, 0, q.level))
        {
            g.vs_best = c;
        }
    }
    Ok(Best {
        sweep: sweep.name.clone(),
        metric: metric.name,
        layer: q.layer,
        mode: q.mode,
        goal,
        by,
        statuses: sel.statuses.clone(),
        level: q.level,
        groups,
    })
}

impl Best {
    /// `{"sweep", "metric", "layer", "mode", "goal", "by", "statuses", "groups": [{"params",
    /// "n", "runs_total", "mean", "std", "min", "max", "runs": [{"run_id", "seed", "status",
    /// "step", "value"}]}]}`
    pub fn to_json(&self) -> Value {
        let groups: Vec<Value> = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let params: serde_json::Map<String, Value> =
                    self.by.iter().cloned().zip(g.key.iter().cloned()).collect();
                let s = g.stats.as_ref();
                let c = g.vs_best.as_ref();
                let best = i == 0 && s.is_some();
                json!({
                    "params": params,
                    "n": s.map_or(0, |s| s.n),
                    "runs_total": g.runs.len(),
                    "mean": output::opt_num(s.map(|s| s.mean)),
                    "std": output::opt_num(s.and_then(|s| s.std)),
                    "sem": output::opt_num(s.and_then(|s| s.sem)),
                    "ci_low": output::opt_num(s.and_then(|s| s.ci).map(|c| c.0)),
                    "ci_high": output::opt_num(s.and_then(|s| s.ci).map(|c| c.1)),
                    "min": output::opt_num(s.map(|s| s.min)),
                    "max": output::opt_num(s.map(|s| s.max)),
                    "median": output::opt_num(s.map(|s| s.median)),
                    "best": best,
                    "diff_vs_best": if best { json!(0.0) } else { output::opt_num(c.map(|c| c.diff)) },
                    "diff_ci_low": output::opt_num(c.and_then(|c| c.diff_ci).map(|d| d.0)),
                    "diff_ci_high": output::opt_num(c.and_then(|c| c.diff_ci).map(|d| d.1)),
                    "test": c.map(|c| c.test),
                    "p_vs_best": output::opt_num(c.and_then(|c| c.p)),
                    "p_adjusted": output::opt_num(c.and_then(|c| c.p_adjusted)),
                    "tied_with_best": best || c.is_some_and(|c| c.tied_with_best),
                    "runs": g.runs.iter().map(|r| json!({
                        "run_id": r.run_id,
                        "seed": r.seed,
                        "status": r.status,
                        "step": r.step,
                        "value": output::opt_num(r.value),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "sweep": self.sweep,
            "metric": self.metric,
            "layer": self.layer,
            "mode": self.mode,
            "goal": self.goal,
            "by": self.by,
            "statuses": self.statuses,
            "level": self.level,
            "groups": groups,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// runs

/// A score shown for every run by `simsweep runs`.
#[derive(Debug, Clone, Copy)]
pub struct Headline {
    /// Column name (also the CSV / JSON key).
    pub column: &'static str,
    pub metric: &'static str,
    pub mode: Mode,
    /// Also show the step of the value (as `<column>_step`).
    pub with_step: bool,
}

/// The headline scores, shown when at least one listed run recorded them: the best STS-B dev
/// score over training and its step, and the final test scores of the best checkpoint.
pub const HEADLINES: &[Headline] = &[
    Headline {
        column: "stsb_dev_best",
        metric: "stsb_dev",
        mode: Mode::Best,
        with_step: true,
    },
    Headline {
        column: "avg",
        metric: "avg",
        mode: Mode::Final,
        with_step: false,
    },
    Headline {
        column: "stsb_test",
        metric: "stsb_test",
        mode: Mode::Final,
        with_step: false,
    },
    Headline {
        column: "sickr_test",
        metric: "sickr_test",
        mode: Mode::Final,
        with_step: false,
    },
    Headline {
        column: "transfer_avg",
        metric: "transfer_avg",
        mode: Mode::Final,
        with_step: false,
    },
];

/// Each run's reproducibility fingerprint (its latest `fingerprint` event), in `run_pks` order;
/// `None` for a run that recorded none (not started, or recorded before fingerprints existed).
pub fn fingerprints(conn: &Connection, run_pks: &[i64]) -> Result<Vec<Option<Value>>> {
    let mut st = conn.prepare_cached(
        "SELECT message FROM events WHERE run_pk = ?1 AND kind = ?2 ORDER BY event_id DESC LIMIT 1",
    )?;
    run_pks
        .iter()
        .map(|&pk| {
            let m: Option<String> = st
                .query_row(rusqlite::params![pk, crate::events::FINGERPRINT], |r| {
                    r.get(0)
                })
                .optional()?;
            Ok(m.and_then(|m| serde_json::from_str(&m).ok()))
        })
        .collect()
}

/// Runs grouped by fingerprint: the keys whose values differ between groups, and each distinct
/// fingerprint with the indices (into `fps`) of the runs that have it. Runs without one are left
/// out.
pub fn fingerprint_groups(fps: &[Option<Value>]) -> (Vec<String>, Vec<(Value, Vec<usize>)>) {
    let mut groups: Vec<(Value, Vec<usize>)> = Vec::new();
    for (i, f) in fps.iter().enumerate() {
        let Some(f) = f else { continue };
        match groups.iter_mut().find(|(g, _)| g == f) {
            Some((_, v)) => v.push(i),
            None => groups.push((f.clone(), vec![i])),
        }
    }
    let mut keys: Vec<String> = Vec::new();
    if let Some((Value::Object(first), _)) = groups.first() {
        let mut all: Vec<&String> = first.keys().collect();
        for (g, _) in &groups[1..] {
            if let Value::Object(m) = g {
                all.extend(m.keys());
            }
        }
        all.sort();
        all.dedup();
        keys = all
            .into_iter()
            .filter(|k| {
                groups
                    .iter()
                    .any(|(g, _)| g.get(k.as_str()) != first.get(k.as_str()))
            })
            .cloned()
            .collect();
    }
    (keys, groups)
}

/// Runs with their headline scores.
#[derive(Debug, Clone)]
pub struct RunsTable {
    /// The swept keys shown per run (without `seed`, which every run has).
    pub keys: Vec<String>,
    /// The headlines that some run has.
    pub headlines: Vec<Headline>,
    pub runs: Vec<Run>,
    /// `scores[h][i]`: headline `h` of run `i`.
    pub scores: Vec<Vec<Option<RunValue>>>,
}

/// The runs `sel` picks, with the swept keys and the [`HEADLINES`] they recorded (layer −1).
pub fn runs_table(conn: &Connection, sweep: &SweepInfo, sel: &Selection) -> Result<RunsTable> {
    let runs = select_runs(conn, sweep, sel)?;
    let pks: Vec<i64> = runs.iter().map(|r| r.run_pk).collect();
    let names = metric_names(conn)?;
    let mut headlines = Vec::new();
    let mut scores = Vec::new();
    for h in HEADLINES {
        let Some(m) = names.iter().find(|m| m.name == h.metric) else {
            continue;
        };
        let v = run_values(conn, &pks, m, -1, h.mode, Goal::Max)?;
        if v.iter().any(|x| x.is_some()) {
            headlines.push(*h);
            scores.push(v);
        }
    }
    Ok(RunsTable {
        keys: sweep
            .swept_keys
            .iter()
            .filter(|k| *k != "seed")
            .cloned()
            .collect(),
        headlines,
        runs,
        scores,
    })
}

impl RunsTable {
    /// Column names: `run_id`, the swept keys, `seed`, `status`, `step`, the headlines (with
    /// `<column>_step` after those that have one), `in_plan` (when asked) and `error`.
    pub fn headers(&self, in_plan: bool) -> Vec<String> {
        let mut h = vec!["run_id".to_string()];
        h.extend(self.keys.iter().cloned());
        h.extend(["seed", "status", "step"].map(String::from));
        for x in &self.headlines {
            h.push(x.column.into());
            if x.with_step {
                h.push(format!("{}_step", x.column));
            }
        }
        if in_plan {
            h.push("in_plan".into());
        }
        h.push("error".into());
        h
    }

    /// Row `i` as cells matching [`RunsTable::headers`].
    pub fn row(&self, i: usize, in_plan: bool) -> Vec<Value> {
        let r = &self.runs[i];
        let mut row = vec![json!(r.run_id)];
        row.extend(self.keys.iter().map(|k| r.param(k)));
        row.extend([json!(r.seed), json!(r.status), json!(r.step)]);
        for (h, s) in self.headlines.iter().zip(&self.scores) {
            row.push(output::opt_num(s[i].and_then(|v| v.value)));
            if h.with_step {
                row.push(json!(s[i].map(|v| v.step)));
            }
        }
        if in_plan {
            row.push(json!(r.in_plan));
        }
        row.push(json!(r.error));
        row
    }
}

// ---------------------------------------------------------------------------------------------
// query

/// Prepare one statement of user SQL for reading: refused when empty, when it holds more than one
/// statement, when it would write (`sqlite3_stmt_readonly`), and when it returns no columns
/// (`ATTACH`, `BEGIN`, …). Open the connection read-only as well; this check is the second lock.
pub fn prepare_readonly<'c>(conn: &'c Connection, sql: &str) -> Result<rusqlite::Statement<'c>> {
    let blank = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .all(|l| l.trim().is_empty());
    if blank {
        return input("empty query: give one SELECT statement");
    }
    let st = match conn.prepare(sql) {
        Ok(st) => st,
        Err(rusqlite::Error::MultipleStatement) => return input(
            "one statement at a time: the query holds more than one (remove the `;` between them)",
        ),
        Err(
            rusqlite::Error::SqliteFailure(_, Some(msg))
            | rusqlite::Error::SqlInputError { msg, .. },
        ) => {
            return input(format!(
                "{msg} (the views: run_params, metric_values, runs_wide; docs/schema.md)"
            ))
        }
        Err(e) => return Err(e.into()),
    };
    if !st.readonly() {
        return input("only reading statements are allowed (SELECT, WITH … SELECT, EXPLAIN, read-only PRAGMA); this statement would change the database");
    }
    if st.column_count() == 0 {
        let first = sql
            .trim_start()
            .split(|c: char| !c.is_ascii_alphabetic())
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if matches!(
            first.as_str(),
            "ATTACH" | "DETACH" | "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE"
        ) {
            return input("ATTACH, DETACH and transaction statements are refused: give one SELECT (or WITH … SELECT) statement");
        }
        return input(
            "the statement returns no rows to show: give a SELECT (or WITH … SELECT) statement",
        );
    }
    Ok(st)
}

/// A value from SQLite as a cell: BLOBs as hexadecimal text.
pub fn cell(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef as V;
    match v {
        V::Null => Value::Null,
        V::Integer(i) => json!(i),
        V::Real(x) => output::num(x),
        V::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        V::Blob(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
    }
}

/// Run a statement from [`prepare_readonly`], handing each row to `f` as cells; returns the
/// column names. Errors while stepping (a function failing on a value) are [`Error::Input`].
pub fn for_each_row(
    st: &mut rusqlite::Statement<'_>,
    mut f: impl FnMut(&[Value]) -> Result<()>,
) -> Result<()> {
    let n = st.column_count();
    let mut rows = st.query([])?;
    let mut cells = Vec::with_capacity(n);
    loop {
        let row = match rows.next() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(rusqlite::Error::SqliteFailure(e, msg))
                if !matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::DatabaseCorrupt
                        | rusqlite::ErrorCode::NotADatabase
                ) =>
            {
                return input(msg.unwrap_or_else(|| e.to_string()))
            }
            Err(e) => return Err(e.into()),
        };
        cells.clear();
        for i in 0..n {
            cells.push(cell(row.get_ref(i)?));
        }
        f(&cells)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// export

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Wide CSV: one row per (run, step), settings and metrics as columns.
    Csv,
    /// JSON Lines: one object per run, each metric as {"family", "better", "unit", "steps": [...],
    /// "values": [...]}.
    Jsonl,
}

/// What [`export`] writes.
#[derive(Debug, Clone)]
pub struct ExportQuery {
    pub format: ExportFormat,
    /// Metric names; empty: every metric the runs recorded at `layer`.
    pub metrics: Vec<String>,
    pub layer: i64,
    /// Every setting as a column, not only the swept keys and `seed`.
    pub all_params: bool,
}

/// What an export wrote.
#[derive(Debug, Clone, Default)]
pub struct ExportStats {
    pub runs: usize,
    /// CSV data lines or JSONL lines.
    pub lines: u64,
    pub metrics: Vec<String>,
}

/// Write the selected runs' settings and metric series, one run at a time (memory holds one run's
/// values of the chosen metrics, never the sweep).
///
/// CSV columns: `sweep, run_id, status, <settings…>, layer, step, <metrics…>`; one line per step at
/// which the run recorded any of the metrics, an empty field where a metric has no value at that
/// step (or a NULL one). Runs without values write no line.
///
/// JSONL: one line per run, `{"sweep", "run_id", "status", "step", "params": {key: value},
/// "layer", "metrics": {name: {"family", "better", "unit", "steps": [...], "values": [...]}}}`, a
/// metric the run did not record
/// absent, NULL values `null`.
pub fn export(
    conn: &Connection,
    sweep: &SweepInfo,
    sel: &Selection,
    q: &ExportQuery,
    out: &mut dyn Write,
) -> Result<ExportStats> {
    let runs = select_runs(conn, sweep, sel)?;
    let pks: Vec<i64> = runs.iter().map(|r| r.run_pk).collect();
    let metrics: Vec<Metric> = if q.metrics.is_empty() {
        metrics_present(conn, &pks, q.layer)?
    } else {
        let mut v = Vec::new();
        for name in &q.metrics {
            let m = metric(conn, name)?;
            if !v.contains(&m) {
                v.push(m);
            }
        }
        v
    };
    let keys: Vec<String> = if q.all_params {
        let mut k: BTreeSet<String> = BTreeSet::new();
        for r in &runs {
            k.extend(r.config.keys().cloned());
        }
        k.insert("seed".into());
        k.into_iter().collect()
    } else {
        let mut k: Vec<String> = sweep
            .swept_keys
            .iter()
            .filter(|k| *k != "seed")
            .cloned()
            .collect();
        k.push("seed".into());
        k
    };
    let mut stats = ExportStats {
        runs: runs.len(),
        lines: 0,
        metrics: metrics.iter().map(|m| m.name.clone()).collect(),
    };
    if q.format == ExportFormat::Csv {
        let mut header: Vec<&str> = vec!["sweep", "run_id", "status"];
        header.extend(keys.iter().map(|k| k.as_str()));
        header.extend(["layer", "step"]);
        header.extend(metrics.iter().map(|m| m.name.as_str()));
        output::write_csv_line(out, header)?;
    }
    let mut line = String::new();
    for run in &runs {
        // This run's series, one per metric (empty when not recorded).
        let mut series: Vec<Vec<(i64, Option<f64>)>> = Vec::with_capacity(metrics.len());
        for m in &metrics {
            series.push(run_series(conn, run.run_pk, m, q.layer)?);
        }
        match q.format {
            ExportFormat::Csv => {
                let mut prefix = String::new();
                for v in [json!(sweep.name), json!(run.run_id), json!(run.status)] {
                    prefix.push_str(&output::csv_value(&v));
                    prefix.push(',');
                }
                for k in &keys {
                    prefix.push_str(&output::csv_value(&run.param(k)));
                    prefix.push(',');
                }
                prefix.push_str(&q.layer.to_string());
                prefix.push(',');
                let mut steps: Vec<i64> = series.iter().flatten().map(|p| p.0).collect();
                steps.sort_unstable();
                steps.dedup();
                let mut cursor = vec![0usize; series.len()];
                for step in steps {
                    line.clear();
                    line.push_str(&prefix);
                    line.push_str(&step.to_string());
                    for (s, c) in series.iter().zip(cursor.iter_mut()) {
                        line.push(',');
                        if let Some(&(st, v)) = s.get(*c) {
                            if st == step {
                                *c += 1;
                                // The shortest text that reads back to the same f64, as
                                // in JSON (`60.0`, `1e-300`).
                                if let Some(n) = v.and_then(serde_json::Number::from_f64) {
                                    use std::fmt::Write as _;
                                    let _ = write!(line, "{n}");
                                }
                            }
                        }
                    }
                    line.push('\n');
                    out.write_all(line.as_bytes())?;
                    stats.lines += 1;
                }
            }
            ExportFormat::Jsonl => {
                let params: serde_json::Map<String, Value> =
                    keys.iter().map(|k| (k.clone(), run.param(k))).collect();
                let mut ms = serde_json::Map::new();
                for (m, s) in metrics.iter().zip(&series) {
                    if s.is_empty() {
                        continue;
                    }
                    // What the metric is, from the registry (crate::metrics), beside its series.
                    let known = crate::metrics::lookup(&m.name);
                    ms.insert(
                        m.name.clone(),
                        json!({
                            "family": known.map(|k| k.family.name()),
                            "better": crate::metrics::direction(&m.name).name(),
                            "unit": known.map(|k| k.unit),
                            "steps": s.iter().map(|p| p.0).collect::<Vec<_>>(),
                            "values": s.iter().map(|p| output::opt_num(p.1)).collect::<Vec<_>>(),
                        }),
                    );
                }
                let obj = json!({
                    "sweep": sweep.name,
                    "run_id": run.run_id,
                    "status": run.status,
                    "step": run.step,
                    "params": params,
                    "layer": q.layer,
                    "metrics": ms,
                });
                serde_json::to_writer(&mut *out, &obj).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
                stats.lines += 1;
            }
        }
    }
    out.flush()?;
    Ok(stats)
}

/// What early stopping saved in a sweep: steps of pruned runs not trained against the steps of
/// the full sweep (every in-plan run to its last step).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Savings {
    pub pruned: usize,
    /// Steps the pruned runs would still have trained.
    pub saved_steps: i64,
    /// Steps of every in-plan run trained to its end.
    pub full_steps: i64,
}

impl Savings {
    /// The share of the full sweep's steps not trained, in [0, 1].
    pub fn fraction(&self) -> f64 {
        if self.full_steps == 0 {
            0.0
        } else {
            self.saved_steps as f64 / self.full_steps as f64
        }
    }

    /// One line for `status` and the report.
    pub fn line(&self) -> String {
        format!(
            "early stopping: {} run{} pruned, {} of {} steps not trained ({:.1} % of the full sweep's GPU time)",
            self.pruned,
            if self.pruned == 1 { "" } else { "s" },
            self.saved_steps,
            self.full_steps,
            100.0 * self.fraction()
        )
    }
}

/// [`Savings`] of a sweep; `None` when no run of it was pruned. A run's full length is its
/// `total_steps` (recorded when it started), else its `train.steps`, else the mean length of the
/// sweep's started runs (a run pruned before it started, under `train.epochs`).
pub fn savings(conn: &Connection, sweep_id: i64) -> Result<Option<Savings>> {
    let mut st = conn.prepare(
        "SELECT status, step, total_steps, json_extract(config_json, '$.\"train.steps\"')
         FROM runs WHERE sweep_id = ?1 AND in_plan = 1",
    )?;
    type Row = (String, Option<i64>, Option<i64>, Option<i64>);
    let rows: Vec<Row> = st
        .query_map([sweep_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let pruned = rows.iter().filter(|r| r.0 == "pruned").count();
    if pruned == 0 {
        return Ok(None);
    }
    let known: Vec<i64> = rows.iter().filter_map(|r| r.2).collect();
    let fallback = if known.is_empty() {
        0
    } else {
        known.iter().sum::<i64>() / known.len() as i64
    };
    let (mut saved, mut full) = (0i64, 0i64);
    for (status, step, total, steps) in &rows {
        let t = total.or(*steps).unwrap_or(fallback);
        full += t;
        if status == "pruned" {
            saved += (t - step.unwrap_or(0)).max(0);
        }
    }
    Ok(Some(Savings {
        pruned,
        saved_steps: saved,
        full_steps: full,
    }))
}
