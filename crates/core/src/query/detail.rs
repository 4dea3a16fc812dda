//! What `simsweep status` and the dashboard (`simsweep serve`) show of sweeps and runs: each
//! sweep's counts by status and its progress ([`sweep_counts`]), one run whole — settings, events,
//! checkpoints, the summary of every metric it recorded ([`run_detail`]) — and the early-stopping
//! decisions of a sweep ([`decisions`]). Read-only, like the rest of the query layer.

use super::{input, metric_names, Result, Run, STATUSES};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A sweep's runs (those its file produces, `in_plan = 1`) by status, and how far they are.
#[derive(Debug, Clone, Serialize)]
pub struct SweepCounts {
    pub sweep_id: i64,
    pub name: String,
    pub description: String,
    pub runs: i64,
    /// Every status of [`STATUSES`], in that order, with its count (0 included).
    pub status: serde_json::Map<String, Value>,
    /// Runs that ended (any status but `pending` and `running`).
    pub finished: i64,
    /// Steps trained so far, over the runs (each run's last step).
    pub steps: i64,
    /// Steps of every run trained to its end: `total_steps`, else `train.steps`; `None` when a
    /// run's length is not known yet (`train.epochs` before it started).
    pub total_steps: Option<i64>,
    /// When the sweep was last planned, and when one of its runs last reported (UTC, RFC 3339).
    pub updated_at: String,
}

/// Per sweep (all, or the one named), in the order they were first planned. An unknown name gives
/// an empty list (the caller words the error).
pub fn sweep_counts(conn: &Connection, name: Option<&str>) -> Result<Vec<SweepCounts>> {
    let counts: String = STATUSES
        .iter()
        .map(|s| format!(", coalesce(sum(r.status = '{s}'), 0)"))
        .collect();
    let mut st = conn.prepare(&format!(
        "SELECT s.sweep_id, s.name, s.description, s.updated_at, count(r.run_pk),
                coalesce(sum(r.step), 0),
                sum(coalesce(r.total_steps, json_extract(r.config_json, '$.\"train.steps\"'))),
                sum(r.run_pk IS NOT NULL
                    AND coalesce(r.total_steps, json_extract(r.config_json, '$.\"train.steps\"')) IS NULL),
                max(coalesce(r.heartbeat_at, r.finished_at, r.started_at, r.created_at)){counts}
         FROM sweeps s LEFT JOIN runs r ON r.sweep_id = s.sweep_id AND r.in_plan = 1
         WHERE ?1 IS NULL OR s.name = ?1 GROUP BY s.sweep_id ORDER BY s.sweep_id"
    ))?;
    let rows = st
        .query_map([name], |r| {
            let mut status = serde_json::Map::new();
            let mut finished = 0;
            for (i, s) in STATUSES.iter().enumerate() {
                let n: i64 = r.get(9 + i)?;
                if !matches!(*s, "pending" | "running") {
                    finished += n;
                }
                status.insert(s.to_string(), n.into());
            }
            let unknown: Option<i64> = r.get(7)?;
            let planned: String = r.get(3)?;
            let reported: Option<String> = r.get(8)?;
            Ok(SweepCounts {
                sweep_id: r.get(0)?,
                name: r.get(1)?,
                description: r.get(2)?,
                runs: r.get(4)?,
                status,
                finished,
                steps: r.get(5)?,
                total_steps: if unknown.unwrap_or(0) > 0 {
                    None
                } else {
                    Some(r.get::<_, Option<i64>>(6)?.unwrap_or(0))
                },
                updated_at: reported.filter(|r| *r > planned).unwrap_or(planned),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// One event of a run (`events`).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub event_id: i64,
    pub at: String,
    pub kind: String,
    pub message: String,
    /// The event's JSON data, parsed (null when none).
    pub data: Value,
}

/// One checkpoint of a run (`checkpoints`).
#[derive(Debug, Clone, Serialize)]
pub struct Checkpoint {
    pub kind: String,
    pub step: i64,
    pub path: String,
    /// What a `best` checkpoint was judged by, and its value.
    pub metric: Option<String>,
    pub value: Option<f64>,
    pub created_at: String,
}

/// What a run recorded of one metric at one layer (`metric_summaries`).
#[derive(Debug, Clone, Serialize)]
pub struct MetricSummary {
    pub metric: String,
    /// −1: the run's own representation; ≥ 0: a per-layer probe value.
    pub layer: i64,
    /// Where the metric comes from (the metric registry: step, probe, evaluation; `null` for a
    /// name the registry does not know).
    pub family: Option<&'static str>,
    /// Rows recorded (NULL values included).
    pub n: i64,
    pub first_step: i64,
    pub last_step: i64,
    /// The value at the last step (`None`: NaN or infinite).
    pub last: Option<f64>,
    pub min_step: Option<i64>,
    pub min: Option<f64>,
    pub max_step: Option<i64>,
    pub max: Option<f64>,
}

/// A run whole: what `runs` shows of it and everything recorded about it.
#[derive(Debug, Clone)]
pub struct RunDetail {
    pub sweep: String,
    pub run: Run,
    pub total_steps: Option<i64>,
    pub attempts: i64,
    /// created, started, finished, last heartbeat (UTC, RFC 3339).
    pub times: [Option<String>; 4],
    pub host: Option<String>,
    pub device: Option<String>,
    pub worker: Option<String>,
    pub code_version: Option<String>,
    pub events: Vec<Event>,
    pub checkpoints: Vec<Checkpoint>,
    /// Every (metric, layer) the run recorded, in metric then layer order.
    pub metrics: Vec<MetricSummary>,
}

/// The run `run_id` (16 hex digits, of any sweep); an unknown id is an [`super::Error::Input`].
pub fn run_detail(conn: &Connection, run_id: &str) -> Result<RunDetail> {
    let row = conn
        .query_row(
            "SELECT r.run_pk, r.ordinal, r.seed, r.status, r.step, r.in_plan, r.error, r.config_json,
                    s.name, r.total_steps, r.attempts, r.created_at, r.started_at, r.finished_at,
                    r.heartbeat_at, r.host, r.device, r.worker, r.code_version,
                    coalesce(r.total_steps, json_extract(r.config_json, '$.\"train.steps\"'))
             FROM runs r JOIN sweeps s ON s.sweep_id = r.sweep_id WHERE r.run_id = ?1",
            [run_id],
            |r| {
                let cfg: String = r.get(7)?;
                Ok(RunDetail {
                    run: Run {
                        run_pk: r.get(0)?,
                        run_id: run_id.to_string(),
                        ordinal: r.get(1)?,
                        seed: r.get(2)?,
                        status: r.get(3)?,
                        step: r.get(4)?,
                        in_plan: r.get(5)?,
                        error: r.get(6)?,
                        config: serde_json::from_str(&cfg).unwrap_or_default(),
                        total_steps: r.get(19)?,
                    },
                    sweep: r.get(8)?,
                    total_steps: r.get(9)?,
                    attempts: r.get(10)?,
                    times: [r.get(11)?, r.get(12)?, r.get(13)?, r.get(14)?],
                    host: r.get(15)?,
                    device: r.get(16)?,
                    worker: r.get(17)?,
                    code_version: r.get(18)?,
                    events: Vec::new(),
                    checkpoints: Vec::new(),
                    metrics: Vec::new(),
                })
            },
        )
        .optional()?;
    let Some(mut d) = row else {
        return input(format!(
            "no run `{run_id}` in the database (run ids are the 16 hex digits `simsweep runs` lists)"
        ));
    };
    let pk = d.run.run_pk;
    let mut st = conn.prepare_cached(
        "SELECT event_id, at, kind, message, data FROM events WHERE run_pk = ?1 ORDER BY event_id",
    )?;
    d.events = st
        .query_map([pk], |r| {
            let data: Option<String> = r.get(4)?;
            Ok(Event {
                event_id: r.get(0)?,
                at: r.get(1)?,
                kind: r.get(2)?,
                message: r.get(3)?,
                data: data
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or(Value::Null),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut st = conn.prepare_cached(
        "SELECT kind, step, path, metric, value, created_at FROM checkpoints WHERE run_pk = ?1
         ORDER BY CASE kind WHEN 'best' THEN 0 WHEN 'final' THEN 1 ELSE 2 END",
    )?;
    d.checkpoints = st
        .query_map([pk], |r| {
            Ok(Checkpoint {
                kind: r.get(0)?,
                step: r.get(1)?,
                path: r.get(2)?,
                metric: r.get(3)?,
                value: r.get(4)?,
                created_at: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let names: BTreeMap<i64, String> = metric_names(conn)?
        .into_iter()
        .map(|m| (m.id, m.name))
        .collect();
    let mut st = conn.prepare_cached(
        "SELECT metric_id, layer, n, first_step, last_step, last_value, min_step, min_value,
                max_step, max_value
         FROM metric_summaries WHERE run_pk = ?1 ORDER BY metric_id, layer",
    )?;
    d.metrics = st
        .query_map([pk], |r| {
            let id: i64 = r.get(0)?;
            let metric = names.get(&id).cloned().unwrap_or_default();
            Ok(MetricSummary {
                family: crate::metrics::lookup(&metric).map(|m| m.family.name()),
                metric,
                layer: r.get(1)?,
                n: r.get(2)?,
                first_step: r.get(3)?,
                last_step: r.get(4)?,
                last: r.get(5)?,
                min_step: r.get(6)?,
                min: r.get(7)?,
                max_step: r.get(8)?,
                max: r.get(9)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(d)
}

/// One early-stopping decision (`search_decisions`).
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub decision_id: i64,
    pub run_id: String,
    pub setting: String,
    pub method: String,
    pub metric: String,
    pub step: i64,
    pub rung: i64,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub compared: i64,
    pub seeds: i64,
    pub verdict: String,
    pub message: String,
    pub at: String,
}

/// The early-stopping decisions taken in `sweep`, oldest first (empty for a sweep without
/// `[search]`, or a database from before schema version 3 has none).
pub fn decisions(conn: &Connection, sweep: &str) -> Result<Vec<Decision>> {
    let exists: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'search_decisions'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !exists {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare_cached(
        "SELECT decision_id, run_id, setting, method, metric, step, rung, value, threshold,
                compared, seeds, verdict, message, at
         FROM search_decisions WHERE sweep = ?1 ORDER BY decision_id",
    )?;
    let v = st
        .query_map(params![sweep], |r| {
            Ok(Decision {
                decision_id: r.get(0)?,
                run_id: r.get(1)?,
                setting: r.get(2)?,
                method: r.get(3)?,
                metric: r.get(4)?,
                step: r.get(5)?,
                rung: r.get(6)?,
                value: r.get(7)?,
                threshold: r.get(8)?,
                compared: r.get(9)?,
                seeds: r.get(10)?,
                verdict: r.get(11)?,
                message: r.get(12)?,
                at: r.get(13)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// The metrics that `run_pks` recorded, each with the layers it was recorded at (−1: the run's
/// own representation), in metric id order.
pub fn recorded_layers(conn: &Connection, run_pks: &[i64]) -> Result<Vec<(String, Vec<i64>)>> {
    let names: BTreeMap<i64, String> = metric_names(conn)?
        .into_iter()
        .map(|m| (m.id, m.name))
        .collect();
    let mut st =
        conn.prepare_cached("SELECT metric_id, layer FROM metric_summaries WHERE run_pk = ?1")?;
    let mut at: BTreeMap<i64, std::collections::BTreeSet<i64>> = BTreeMap::new();
    for pk in run_pks {
        for row in st.query_map([pk], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
            let (m, l) = row?;
            at.entry(m).or_default().insert(l);
        }
    }
    Ok(at
        .into_iter()
        .filter_map(|(m, ls)| Some((names.get(&m)?.clone(), ls.into_iter().collect())))
        .collect())
}

/// A number that changes whenever something the dashboard shows of a sweep changes: a replan
/// (the sweep's `updated_at`, a run joining or leaving the plan), a run's status or step (its
/// heartbeat), a row recorded by a running run (its metric summaries' row counts), an event of a
/// running run. Cheap: the sweep's runs, and the summaries and events of
/// its running runs only.
pub fn sweep_version(conn: &Connection, sweep_id: i64) -> Result<u64> {
    let mut st = conn.prepare_cached(
        "SELECT r.run_pk, r.status || (SELECT ' ' || updated_at FROM sweeps WHERE sweep_id = ?1),
                coalesce(r.step, -1) * 2 + r.in_plan, coalesce(r.heartbeat_at, ''),
                CASE WHEN r.status = 'running' THEN
                    (SELECT coalesce(sum(n), 0) FROM metric_summaries m WHERE m.run_pk = r.run_pk)
                    + (SELECT count(*) FROM events e WHERE e.run_pk = r.run_pk)
                ELSE 0 END
         FROM runs r WHERE r.sweep_id = ?1 ORDER BY r.run_pk",
    )?;
    // FNV-1a over the rows: stable across processes, so two servers agree.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    let mut rows = st.query([sweep_id])?;
    while let Some(r) = rows.next()? {
        feed(&r.get::<_, i64>(0)?.to_le_bytes());
        feed(r.get::<_, String>(1)?.as_bytes());
        feed(&r.get::<_, i64>(2)?.to_le_bytes());
        feed(r.get::<_, String>(3)?.as_bytes());
        feed(&r.get::<_, i64>(4)?.to_le_bytes());
    }
    Ok(h)
}
