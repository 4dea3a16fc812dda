//! The JSON API (docs/api.md): what the page asks, and what scripts may ask. Every answer comes
//! from the query layer (`simsweep_core::query`) and the charts' figure model
//! (`simsweep_report::charts`), the code behind `simsweep runs | best | plot`: the dashboard and the
//! CLI cannot disagree.
//!
//! Errors are JSON, `{"error": "..."}`: 404 for an unknown sweep, run, metric, layer, chart kind or
//! route; 400 for a parameter that cannot be used (the message says which and what it takes);
//! 405 for a method other than GET or HEAD; 500 for a failure reading the database.

use crate::App;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rusqlite::Connection;
use serde_json::{json, Value};
use simsweep_core::query::{self, Condition, Goal, Mode, Selection};
use simsweep_core::spec::value::display;
use simsweep_report::{charts, data::SweepData, figure, Kind, Request};
use std::sync::Arc;

/// The API's routes (all GET).
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/sweeps", get(sweeps))
        .route("/api/sweeps/{sweep}", get(sweep))
        .route("/api/sweeps/{sweep}/runs", get(runs))
        .route("/api/sweeps/{sweep}/best", get(best))
        .route("/api/sweeps/{sweep}/figures/{kind}", get(figure_of))
        .route("/api/sweeps/{sweep}/decisions", get(decisions))
        .route("/api/runs/{run_id}", get(run))
        .route("/api/runs/{run_id}/metrics/{metric}", get(metric))
}

/// The routes, for the 404 of an unknown one.
pub const ROUTES: &[&str] = &[
    "/api/sweeps",
    "/api/sweeps/{sweep}",
    "/api/sweeps/{sweep}/runs",
    "/api/sweeps/{sweep}/best",
    "/api/sweeps/{sweep}/figures/{kind}",
    "/api/sweeps/{sweep}/decisions",
    "/api/runs/{run_id}",
    "/api/runs/{run_id}/metrics/{metric}",
];

/// The chart kinds of `figures/{kind}`, as `simsweep plot --kind` names them.
pub const KINDS: &[(&str, Kind)] = &[
    ("curves", Kind::Curves),
    ("final", Kind::Final),
    ("align-uniform", Kind::AlignUniform),
    ("spectrum", Kind::Spectrum),
    ("layers", Kind::Layers),
    ("gradients", Kind::Gradients),
    ("parallel", Kind::Parallel),
];

/// Points of a curve when `max_points` is not given.
pub const DEFAULT_MAX_POINTS: usize = 4000;

/// The fewest points a thinned curve may be asked for (min–max buckets keep the first and last
/// point and two per bucket).
pub const MIN_POINTS: usize = 10;

// ---------------------------------------------------------------------------------------------
// Errors and answers

/// An answer that is not the one asked for: a status and what to say.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    fn not_found(m: impl Into<String>) -> ApiError {
        ApiError(StatusCode::NOT_FOUND, m.into())
    }
    fn bad(m: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, m.into())
    }
}

/// A JSON error answer, `{"error": message}`.
pub fn error(status: StatusCode, message: String) -> Response {
    let mut r = (status, axum::Json(json!({ "error": message }))).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

/// What a reading function failed with: bad input (the question cannot be answered as asked)
/// is 400, anything else 500.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        if let Some(a) = e.downcast_ref::<ApiError>() {
            return ApiError(a.0, a.1.clone());
        }
        if let Some(b) = e.downcast_ref::<simsweep_core::BadInput>() {
            return ApiError::bad(b.0.clone());
        }
        if let Some(query::Error::Input(m)) = e.downcast_ref::<query::Error>() {
            return ApiError::bad(m.clone());
        }
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for ApiError {}

type Answer = Result<Response, ApiError>;

fn json_answer(v: Value) -> Answer {
    let mut r = axum::Json(v).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Run `f` on a read-only connection and answer its JSON.
async fn read<F>(app: &Arc<App>, f: F) -> Answer
where
    F: FnOnce(&Connection) -> anyhow::Result<Value> + Send + 'static,
{
    let v = app.db.read(f).await.map_err(ApiError::from)?;
    json_answer(v)
}

// ---------------------------------------------------------------------------------------------
// Parameters

/// The query string's `name=value` pairs, percent-decoded, in order (a name may repeat).
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parse the query string; a name not in `allowed` is a 400 naming the ones this route takes.
    pub fn parse(raw: Option<String>, allowed: &[&str]) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        for (k, _) in &pairs {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad(if allowed.is_empty() {
                    format!("unknown parameter `{k}`: this route takes none")
                } else {
                    format!(
                        "unknown parameter `{k}`: this route takes {}",
                        allowed.join(", ")
                    )
                }));
            }
        }
        Ok(Params(pairs))
    }

    /// The last value of `name` (empty values count as absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, each split at commas.
    fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()))
            .filter(|s| !s.is_empty())
            .collect()
    }

    fn num<T: std::str::FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                ApiError::bad(format!("parameter `{name}`: expected {what}, found `{v}`"))
            }),
        }
    }

    fn choice<T: Copy>(&self, name: &str, choices: &[(&str, T)]) -> Result<Option<T>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => choices
                .iter()
                .find(|(n, _)| *n == v)
                .map(|(_, t)| Some(*t))
                .ok_or_else(|| {
                    ApiError::bad(format!(
                        "parameter `{name}`: expected one of {}, found `{v}`",
                        choices
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }),
        }
    }

    fn flag(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.choice(
            name,
            &[("true", true), ("false", false), ("1", true), ("0", false)],
        )
    }

    /// `where=KEY=VALUE` (repeatable, all must hold, as `--where`), `status=S,…` and
    /// `include_removed=true`.
    fn selection(&self) -> Result<Selection, ApiError> {
        let mut sel = Selection::default();
        for (k, v) in &self.0 {
            if k == "where" && !v.is_empty() {
                let c: Condition = v
                    .parse()
                    .map_err(|e: String| ApiError::bad(format!("parameter `where`: {e}")))?;
                sel.conditions.push(c);
            }
        }
        sel.statuses = self.list("status");
        sel.include_removed = self.flag("include_removed")?.unwrap_or(false);
        Ok(sel)
    }
}

const SELECTION: &[&str] = &["where", "status", "include_removed"];

fn with_selection(names: &[&'static str]) -> Vec<&'static str> {
    let mut v = names.to_vec();
    v.extend_from_slice(SELECTION);
    v
}

const MODES: &[(&str, Mode)] = &[("best", Mode::Best), ("final", Mode::Final)];
const GOALS: &[(&str, Goal)] = &[("max", Goal::Max), ("min", Goal::Min)];

// ---------------------------------------------------------------------------------------------
// Lookups that answer 404

/// A lookup by name whose "no such …" answer (the query layer's bad input) is a 404.
fn found<T>(r: query::Result<T>) -> anyhow::Result<T> {
    r.map_err(|e| match e {
        query::Error::Input(m) => ApiError::not_found(m).into(),
        e => e.into(),
    })
}

fn sweep_info(conn: &Connection, name: &str) -> anyhow::Result<query::SweepInfo> {
    found(query::sweep(conn, name))
}

fn run_detail(conn: &Connection, run_id: &str) -> anyhow::Result<query::RunDetail> {
    found(query::run_detail(conn, run_id))
}

/// The runs `sel` picks, as the charts read them (plan order).
fn sweep_data(conn: &Connection, name: &str, sel: &Selection) -> anyhow::Result<SweepData> {
    let info = sweep_info(conn, name)?;
    let mut data = SweepData::load(conn, name)?;
    if !sel.conditions.is_empty() || !sel.statuses.is_empty() {
        let keep: std::collections::HashSet<String> = query::select_runs(conn, &info, sel)?
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        data.runs.retain(|r| keep.contains(&r.id));
    }
    Ok(data)
}

// ---------------------------------------------------------------------------------------------
// Routes

/// What early stopping saved, as `status` words it; `null` when nothing was pruned.
fn savings_json(savings: Option<query::Savings>) -> Value {
    savings.map_or(Value::Null, |s| {
        json!({
            "pruned": s.pruned,
            "saved_steps": s.saved_steps,
            "full_steps": s.full_steps,
            "fraction": s.fraction(),
            "line": s.line(),
        })
    })
}

fn counts_json(c: &query::SweepCounts, savings: Option<query::Savings>) -> Value {
    let mut v = serde_json::to_value(c).expect("JSON");
    v["progress"] = match c.total_steps {
        Some(t) if t > 0 => json!((c.steps as f64 / t as f64).min(1.0)),
        _ => Value::Null,
    };
    v["savings"] = savings_json(savings);
    v
}

/// Per key, its values as the filter menu offers them: the label the charts write and the text
/// a `where` condition takes (a string as it is, anything else as JSON: `0.05`, `true`,
/// `["a.txt"]`). Runs without the key offer nothing.
fn filter_values(data: &SweepData, keys: &[String]) -> serde_json::Map<String, Value> {
    keys.iter()
        .map(|k| {
            let opts: Vec<Value> = data
                .values_of(k)
                .into_iter()
                .filter_map(|label| {
                    let raw = data.runs.iter().find(|r| r.display(k) == label)?.value(k);
                    let value = match raw {
                        Value::Null => return None,
                        Value::String(s) => s,
                        v => v.to_string(),
                    };
                    Some(json!({ "label": label, "value": value }))
                })
                .collect();
            (k.clone(), Value::Array(opts))
        })
        .collect()
}

/// `GET /api/sweeps`: every sweep with its counts by status and its progress.
async fn sweeps(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Answer {
    Params::parse(q, &[])?;
    let db = app.db.path().display().to_string();
    read(&app, move |conn| {
        let mut out = Vec::new();
        for c in query::sweep_counts(conn, None)? {
            let s = query::savings(conn, c.sweep_id)?;
            out.push(counts_json(&c, s));
        }
        Ok(json!({ "database": db, "sweeps": out }))
    })
    .await
}

/// `GET /api/sweeps/{sweep}`: the sweep, its keys and their values, what its runs recorded, its
/// fingerprints and early-stopping summary, and its version (for live updates).
async fn sweep(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    Params::parse(q, &[])?;
    read(&app, move |conn| {
        let info = sweep_info(conn, &name)?;
        let data = SweepData::load(conn, &name)?;
        let counts = query::sweep_counts(conn, Some(&name))?
            .pop()
            .expect("the sweep exists");
        let savings = query::savings(conn, info.sweep_id)?;
        let pks: Vec<i64> = data.runs.iter().map(|r| r.pk).collect();
        let metrics: Vec<Value> = query::recorded_layers(conn, &pks)?
            .into_iter()
            .map(|(name, layers)| {
                let reg = simsweep_core::metrics::lookup(&name);
                json!({
                    "name": name,
                    "family": reg.map(|m| m.family.name()),
                    "direction": reg.map(|m| m.direction.name()),
                    "unit": reg.map(|m| m.unit),
                    "layers": layers,
                })
            })
            .collect();
        let mut keys = info.swept_keys.clone();
        keys.push("seed".into());
        let values: serde_json::Map<String, Value> = keys
            .iter()
            .map(|k| (k.clone(), json!(data.values_of(k))))
            .collect();
        let filters = filter_values(&data, &keys);
        let fps = query::fingerprints(conn, &pks)?;
        let (differ, groups) = query::fingerprint_groups(&fps);
        let decisions = query::decisions(conn, &name)?;
        Ok(json!({
            "name": info.name,
            "description": info.description,
            "file_path": data.file_path,
            "file_text": data.file_text,
            "swept_keys": info.swept_keys,
            "values": values,
            "filters": filters,
            "counts": counts_json(&counts, savings),
            "metrics": metrics,
            "headlines": query::HEADLINES.iter().map(|h| json!({
                "column": h.column, "metric": h.metric, "mode": h.mode, "with_step": h.with_step,
            })).collect::<Vec<_>>(),
            "fingerprints": {
                "differ": differ,
                "groups": groups.iter().map(|(f, idx)| json!({
                    "fingerprint": f,
                    "runs": idx.iter().map(|&i| data.runs[i].id.clone()).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            },
            "search": {
                "decisions": decisions.len(),
                "pruned": decisions.iter().filter(|d| d.verdict == "prune").count(),
            },
            "kinds": KINDS.iter().map(|k| k.0).collect::<Vec<_>>(),
            "version": query::sweep_version(conn, info.sweep_id)?.to_string(),
        }))
    })
    .await
}

/// `GET /api/sweeps/{sweep}/runs`: the run table of `simsweep runs` (swept keys, seed, status,
/// step, headline scores), with each run's length and its values as the charts label them.
async fn runs(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = Params::parse(q, SELECTION)?;
    let sel = p.selection()?;
    read(&app, move |conn| {
        let info = sweep_info(conn, &name)?;
        let t = query::runs_table(conn, &info, &sel)?;
        let mut keys = t.keys.clone();
        keys.push("seed".into());
        let runs: Vec<Value> = t
            .runs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut scores = serde_json::Map::new();
                for (h, s) in t.headlines.iter().zip(&t.scores) {
                    scores.insert(
                        h.column.into(),
                        query::output::opt_num(s[i].and_then(|v| v.value)),
                    );
                    if h.with_step {
                        scores.insert(format!("{}_step", h.column), json!(s[i].map(|v| v.step)));
                    }
                }
                let params: serde_json::Map<String, Value> =
                    keys.iter().map(|k| (k.clone(), r.param(k))).collect();
                let shown: serde_json::Map<String, Value> = keys
                    .iter()
                    .map(|k| {
                        let v = r.param(k);
                        (k.clone(), json!(display(&v)))
                    })
                    .collect();
                json!({
                    "run_id": r.run_id,
                    "params": params,
                    "display": shown,
                    "seed": r.seed,
                    "status": r.status,
                    "step": r.step,
                    "total_steps": r.total_steps,
                    "in_plan": r.in_plan,
                    "error": r.error,
                    "scores": scores,
                })
            })
            .collect();
        Ok(json!({
            "sweep": info.name,
            "keys": t.keys,
            "headlines": t.headlines.iter().map(|h| json!({
                "column": h.column, "metric": h.metric, "mode": h.mode, "with_step": h.with_step,
            })).collect::<Vec<_>>(),
            "runs": runs,
            "version": query::sweep_version(conn, info.sweep_id)?.to_string(),
        }))
    })
    .await
}

/// `GET /api/sweeps/{sweep}/best`: `simsweep best --json` (groups of settings over seeds).
async fn best(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = Params::parse(
        q,
        &with_selection(&["metric", "mode", "layer", "goal", "by", "level"]),
    )?;
    let mut sel = p.selection()?;
    // As `simsweep best`: only `done` runs unless `status` says otherwise.
    if sel.statuses.is_empty() {
        sel.statuses = vec!["done".into()];
    }
    let bq = query::BestQuery {
        metric: p.get("metric").unwrap_or("stsb_dev").to_string(),
        layer: p
            .num("layer", "a layer index (−1: the run's own)")?
            .unwrap_or(-1),
        mode: p.choice("mode", MODES)?.unwrap_or(Mode::Best),
        goal: p.choice("goal", GOALS)?,
        by: p.get("by").map(|_| p.list("by")),
        level: p
            .num("level", "a confidence level in (0, 1)")?
            .unwrap_or(0.95),
    };
    if !(bq.level > 0.0 && bq.level < 1.0) {
        return Err(ApiError::bad(format!(
            "parameter `level`: expected a confidence level in (0, 1), found {}",
            bq.level
        )));
    }
    read(&app, move |conn| {
        let info = sweep_info(conn, &name)?;
        known_metric(conn, &bq.metric)?;
        Ok(query::best(conn, &info, &sel, &bq)?.to_json())
    })
    .await
}

/// A metric name the database has, else 404 naming the recorded ones.
fn known_metric(conn: &Connection, name: &str) -> anyhow::Result<query::Metric> {
    found(query::metric(conn, name))
}

/// `GET /api/sweeps/{sweep}/figures/{kind}`: a chart of `simsweep plot` as data (panels, axes,
/// series with the runs behind each, legend) for the page to draw.
async fn figure_of(
    State(app): State<Arc<App>>,
    Path((name, kind)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Answer {
    let Some(&(_, k)) = KINDS.iter().find(|(n, _)| *n == kind) else {
        return Err(ApiError::not_found(format!(
            "no chart kind `{kind}`: the kinds are {}",
            KINDS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
        )));
    };
    // The charts draw the runs the sweep file produces (`include_removed` does not apply).
    let p = Params::parse(
        q,
        &[
            "metric", "color", "facet", "x", "mode", "steps", "smooth", "from", "to", "log_y",
            "log_x", "where", "status",
        ],
    )?;
    let sel = p.selection()?;
    let mut req = Request::new(k);
    req.metric = p.get("metric").map(String::from);
    req.color_by = p.get("color").map(String::from);
    req.facet_by = p.get("facet").map(String::from);
    req.x_key = p.get("x").map(String::from);
    req.mode = p.choice("mode", MODES)?.unwrap_or(Mode::Best);
    req.steps = p
        .list("steps")
        .iter()
        .map(|s| {
            s.parse::<i64>().map_err(|_| {
                ApiError::bad(format!(
                    "parameter `steps`: expected steps separated by commas, found `{s}`"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    req.smooth = p.num("smooth", "a number of points")?.unwrap_or(0);
    req.log_y = p.flag("log_y")?;
    req.log_x = p.flag("log_x")?;
    let from: Option<i64> = p.num("from", "a step")?;
    let to: Option<i64> = p.num("to", "a step")?;
    if from.is_some() || to.is_some() {
        let w = (from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX));
        if w.0 > w.1 {
            return Err(ApiError::bad(format!(
                "parameters `from`, `to`: the window {}–{} is empty",
                w.0, w.1
            )));
        }
        req.step_window = Some(w);
    }
    read(&app, move |conn| {
        let data = sweep_data(conn, &name, &sel)?;
        if let Some(m) = &req.metric {
            known_metric(conn, m)?;
        }
        if data.runs.is_empty() {
            return Err(
                ApiError::bad(format!("no runs of sweep `{name}` match the filter")).into(),
            );
        }
        let fig = charts::figure(conn, &data, &req)?;
        Ok(json!({
            "kind": kind,
            "figure": fig,
            "dashes": figure::DASHES,
        }))
    })
    .await
}

/// `GET /api/sweeps/{sweep}/decisions`: the early-stopping decisions, oldest first.
async fn decisions(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    Params::parse(q, &[])?;
    read(&app, move |conn| {
        let info = sweep_info(conn, &name)?;
        let savings = query::savings(conn, info.sweep_id)?;
        Ok(json!({
            "sweep": info.name,
            "decisions": query::decisions(conn, &name)?,
            "savings": savings_json(savings),
        }))
    })
    .await
}

/// `GET /api/runs/{run_id}`: one run whole.
async fn run(
    State(app): State<Arc<App>>,
    Path(run_id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    Params::parse(q, &[])?;
    read(&app, move |conn| {
        let d = run_detail(conn, &run_id)?;
        let info = sweep_info(conn, &d.sweep)?;
        let r = &d.run;
        let swept: serde_json::Map<String, Value> = info
            .swept_keys
            .iter()
            .map(|k| (k.clone(), r.param(k)))
            .collect();
        let fp = query::fingerprints(conn, &[r.run_pk])?.pop().flatten();
        Ok(json!({
            "run_id": r.run_id,
            "sweep": d.sweep,
            "seed": r.seed,
            "status": r.status,
            "step": r.step,
            "total_steps": r.total_steps,
            "in_plan": r.in_plan,
            "error": r.error,
            "attempts": d.attempts,
            "created_at": d.times[0],
            "started_at": d.times[1],
            "finished_at": d.times[2],
            "heartbeat_at": d.times[3],
            "host": d.host,
            "device": d.device,
            "worker": d.worker,
            "code_version": d.code_version,
            "swept": swept,
            "config": r.config,
            "fingerprint": fp,
            "events": d.events,
            "checkpoints": d.checkpoints,
            "metrics": d.metrics,
        }))
    })
    .await
}

/// `GET /api/runs/{run_id}/metrics/{metric}`: one curve, `{"steps": [...], "values": [...]}`,
/// thinned on the server (min–max per bucket) to at most `max_points` (0: every point).
async fn metric(
    State(app): State<Arc<App>>,
    Path((run_id, metric)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = Params::parse(q, &["layer", "max_points", "from", "to"])?;
    let layer: i64 = p
        .num("layer", "a layer index (−1: the run's own)")?
        .unwrap_or(-1);
    let max_points: usize = p
        .num("max_points", "a whole number of points (0: all)")?
        .unwrap_or(DEFAULT_MAX_POINTS);
    if max_points != 0 && max_points < MIN_POINTS {
        return Err(ApiError::bad(format!(
            "parameter `max_points`: expected 0 (every point) or at least {MIN_POINTS}, found {max_points}"
        )));
    }
    let from: i64 = p.num("from", "a step")?.unwrap_or(i64::MIN);
    let to: i64 = p.num("to", "a step")?.unwrap_or(i64::MAX);
    if from > to {
        return Err(ApiError::bad(format!(
            "parameters `from`, `to`: the window {from}–{to} is empty"
        )));
    }
    read(&app, move |conn| {
        let d = run_detail(conn, &run_id)?;
        let recorded: Vec<&query::detail::MetricSummary> =
            d.metrics.iter().filter(|m| m.metric == metric).collect();
        if recorded.is_empty() {
            let names: Vec<&str> = {
                let mut v: Vec<&str> = d.metrics.iter().map(|m| m.metric.as_str()).collect();
                v.dedup();
                v
            };
            return Err(ApiError::not_found(format!(
                "run {run_id} recorded no metric `{metric}`; it recorded: {}",
                if names.is_empty() {
                    "nothing yet".to_string()
                } else {
                    query::summarize_names(names)
                }
            ))
            .into());
        }
        if !recorded.iter().any(|m| m.layer == layer) {
            return Err(ApiError::not_found(format!(
                "run {run_id} recorded `{metric}` at layer {} only, not at layer {layer}",
                recorded
                    .iter()
                    .map(|m| m.layer.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into());
        }
        let m = known_metric(conn, &metric)?;
        let mut series = query::run_series(conn, d.run.run_pk, &m, layer)?;
        series.retain(|&(s, _)| s >= from && s <= to);
        let n = series.len();
        let thinned = max_points > 0 && n > max_points;
        let (steps, values): (Vec<Value>, Vec<Value>) = if thinned {
            let pts: Vec<(f64, f64)> = series
                .iter()
                .filter_map(|&(s, v)| v.map(|v| (s as f64, v)))
                .collect();
            figure::downsample(&pts, (max_points.saturating_sub(2) / 2).max(1))
                .into_iter()
                .map(|(s, v)| (json!(s as i64), query::output::num(v)))
                .unzip()
        } else {
            series
                .into_iter()
                .map(|(s, v)| (json!(s), query::output::opt_num(v)))
                .unzip()
        };
        Ok(json!({
            "run_id": run_id,
            "metric": metric,
            "layer": layer,
            "status": d.run.status,
            "n": n,
            "thinned": thinned,
            "steps": steps,
            "values": values,
        }))
    })
    .await
}
