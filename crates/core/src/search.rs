//! Early stopping: the board where runs report the search metric and where the decisions are
//! taken and kept (docs/sweep-file.md, `[search]`; docs/schema.md, "Search").
//!
//! Every run of a sweep with `[search]` reports each evaluation of the search metric after step 0
//! (step 0 scores the model before training) here, in one
//! write transaction that also takes the decision, so concurrent runs (slots of one `run`, tasks of
//! a Slurm array on other machines) see one order of events. Seeds of one setting (the run's
//! settings without `seed`) are judged together, on their mean; a setting once pruned stays
//! pruned: its running seeds stop at their next report or poll, its unstarted seeds never start.
//!
//! - **ASHA** (asynchronous successive halving, Li et al. 2020, in its stopping form as Ray
//!   Tune's `AsyncHyperBandScheduler`): rungs at `min_steps·η^k` below the last step. A run's value
//!   at a rung is its first report at or after the rung's step. When a run reaches a rung, its
//!   setting's value there (the mean over the seeds that reached it) is compared with the
//!   (1 − 1/η) quantile (linear interpolation, numpy's default) of the values of every setting that
//!   reached the rung, its own included; strictly worse: pruned. The first setting at a rung always
//!   continues. A later seed's arrival judges the setting again on the new mean.
//! - **Median** (Golovin et al. 2017): at every report at step `s ≥ min_steps`, the setting's best
//!   value so far (of its per-step seed means) is compared with the median of the running averages
//!   up to `s` of the other settings that reached `s`; strictly worse: pruned. No decision until at
//!   least `min_runs` other settings reached `s`, and none at the run's last step.

use crate::spec::search::{Goal, Method, Search};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One evaluation of the search metric, as a run reports it.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    pub sweep: &'a str,
    pub setting: &'a str,
    pub run_id: &'a str,
    pub step: i64,
    /// Not a number counts as the worst value.
    pub value: f64,
    /// The run's last step.
    pub total_steps: i64,
}

/// A decision on a setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub id: i64,
    pub method: Method,
    pub run_id: String,
    pub step: i64,
    /// ASHA: the rung's step; median: the step.
    pub rung: i64,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub compared: usize,
    pub seeds: usize,
    pub prune: bool,
    pub message: String,
}

impl Decision {
    /// Why a run of the setting this decision pruned stops (or never starts).
    pub fn pruned_setting(&self) -> String {
        format!(
            "its setting was pruned by decision {} on run {}: {}",
            self.id, self.run_id, self.message
        )
    }
}

/// What a report led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Nothing to decide at this step (between rungs, before min_steps, too few others).
    None,
    /// A decision was taken now.
    Decided(Decision),
    /// The setting was pruned earlier (by this or another of its seeds).
    AlreadyPruned(Decision),
}

impl Verdict {
    /// The decision to stop the run, if any.
    pub fn prune(&self) -> Option<&Decision> {
        match self {
            Verdict::Decided(d) if d.prune => Some(d),
            Verdict::AlreadyPruned(d) => Some(d),
            _ => None,
        }
    }
}

/// The board, on its SQLite file.
pub struct Board {
    conn: Connection,
    path: PathBuf,
}

fn err(path: &Path) -> impl Fn(rusqlite::Error) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("early-stopping board {}: {e}", path.display())
}

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

impl Board {
    /// Open the board at `path`: the results database (local executor; its tables come with schema
    /// version 3) or a Slurm sweep's `search.db` (created here).
    pub fn open(path: &Path) -> anyhow::Result<Board> {
        let e = err(path);
        let conn = Connection::open(path).map_err(&e)?;
        crate::store::configure(&conn).map_err(&e)?;
        conn.execute_batch(crate::store::SEARCH_SQL).map_err(&e)?;
        Ok(Board {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The decision that pruned `setting`, if one did.
    pub fn pruned(&self, sweep: &str, setting: &str) -> anyhow::Result<Option<Decision>> {
        pruned_in(&self.conn, sweep, setting).map_err(err(&self.path))
    }

    /// Every decision of a sweep, in the order taken.
    pub fn decisions(&self, sweep: &str) -> anyhow::Result<Vec<Decision>> {
        let e = err(&self.path);
        let mut st = self
            .conn
            .prepare(&format!(
                "{SELECT_DECISION} WHERE sweep = ?1 ORDER BY decision_id"
            ))
            .map_err(&e)?;
        let rows = st.query_map([sweep], decision_row).map_err(&e)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)
    }

    /// Record a report and take the decision it calls for, in one write transaction.
    pub fn report(&mut self, search: &Search, r: &Report<'_>) -> anyhow::Result<Verdict> {
        let path = self.path.clone();
        let e = err(&path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&e)?;
        let value = r.value.is_finite().then_some(r.value);
        tx.execute(
            &format!(
                "INSERT OR IGNORE INTO search_reports (sweep, setting, run_id, step, value, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, {NOW})"
            ),
            params![r.sweep, r.setting, r.run_id, r.step, value],
        )
        .map_err(&e)?;
        if let Some(d) = pruned_in(&tx, r.sweep, r.setting).map_err(&e)? {
            tx.commit().map_err(&e)?;
            return Ok(Verdict::AlreadyPruned(d));
        }
        // Judged before (a resumed run evaluating the same step again): nothing new.
        let judged: bool = tx
            .query_row(
                "SELECT count(*) > 0 FROM search_decisions WHERE sweep = ?1 AND run_id = ?2 AND step = ?3",
                params![r.sweep, r.run_id, r.step],
                |row| row.get(0),
            )
            .map_err(&e)?;
        if judged {
            tx.commit().map_err(&e)?;
            return Ok(Verdict::None);
        }
        let reports = {
            let mut st = tx
                .prepare(
                    "SELECT setting, run_id, step, value FROM search_reports WHERE sweep = ?1 ORDER BY step",
                )
                .map_err(&e)?;
            let rows = st
                .query_map([r.sweep], |row| {
                    Ok(Reported {
                        setting: row.get(0)?,
                        run_id: row.get(1)?,
                        step: row.get(2)?,
                        value: row.get(3)?,
                    })
                })
                .map_err(&e)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)?
        };
        let Some(mut d) = decide(search, r, &reports) else {
            tx.commit().map_err(&e)?;
            return Ok(Verdict::None);
        };
        tx.execute(
            &format!(
                "INSERT INTO search_decisions (sweep, setting, run_id, method, metric, step, rung, value, threshold, compared, seeds, verdict, message, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, {NOW})"
            ),
            params![
                r.sweep,
                r.setting,
                r.run_id,
                d.method.name(),
                search.metric,
                d.step,
                d.rung,
                d.value,
                d.threshold,
                d.compared as i64,
                d.seeds as i64,
                if d.prune { "prune" } else { "continue" },
                d.message
            ],
        )
        .map_err(&e)?;
        d.id = tx.last_insert_rowid();
        tx.commit().map_err(&e)?;
        Ok(Verdict::Decided(d))
    }
}

/// Copy a Slurm array's board (`shards/<sweep>/search.db`) into the results database's tables, in
/// one transaction: reports not yet there, and decisions not yet there (matched on run, step, rung,
/// method and verdict). Returns how many decisions were added. Idempotent.
pub fn copy_board(main: &Connection, board: &Path, sweep: &str) -> anyhow::Result<usize> {
    let e = err(board);
    // Read-write (nothing is written): a journal left by a task killed mid-commit is rolled back.
    let b = Connection::open_with_flags(board, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(&e)?;
    b.busy_timeout(crate::store::BUSY_TIMEOUT).map_err(&e)?;
    type Rep = (String, String, i64, Option<f64>, String);
    let reports: Vec<Rep> = b
        .prepare("SELECT setting, run_id, step, value, at FROM search_reports WHERE sweep = ?1")
        .map_err(&e)?
        .query_map([sweep], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(&e)?
        .collect::<rusqlite::Result<_>>()
        .map_err(&e)?;
    let cols = "decision_id, sweep, setting, run_id, method, metric, step, rung, value, threshold, compared, seeds, verdict, message, at";
    let decisions: Vec<Vec<rusqlite::types::Value>> = {
        let mut st = b
            .prepare(&format!(
                "SELECT {cols} FROM search_decisions WHERE sweep = ?1 ORDER BY decision_id"
            ))
            .map_err(&e)?;
        let rows = st
            .query_map([sweep], |r| (0..15).map(|i| r.get(i)).collect())
            .map_err(&e)?;
        rows.collect::<rusqlite::Result<_>>().map_err(&e)?
    };
    let me = |x: rusqlite::Error| {
        anyhow::anyhow!("copying the early-stopping board into the results database: {x}")
    };
    let tx =
        rusqlite::Transaction::new_unchecked(main, TransactionBehavior::Immediate).map_err(me)?;
    for (setting, run_id, step, value, at) in &reports {
        tx.execute(
            "INSERT OR IGNORE INTO search_reports (sweep, setting, run_id, step, value, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![sweep, setting, run_id, step, value, at],
        )
        .map_err(me)?;
    }
    let mut added = 0;
    for d in &decisions {
        added += tx
            .execute(
                &format!(
                    // The board's id when it is free (so "decision N" in events names the same
                    // row), a new one otherwise.
                    "INSERT INTO search_decisions ({cols})
                     SELECT CASE WHEN EXISTS (SELECT 1 FROM search_decisions WHERE decision_id = ?1) THEN NULL ELSE ?1 END,
                            ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15
                     WHERE NOT EXISTS (SELECT 1 FROM search_decisions WHERE sweep = ?2 AND run_id = ?4 AND method = ?5
                                       AND step = ?7 AND rung = ?8 AND verdict = ?13)"
                ),
                rusqlite::params_from_iter(d.iter()),
            )
            .map_err(me)?;
    }
    tx.commit().map_err(me)?;
    Ok(added)
}

const SELECT_DECISION: &str = "SELECT decision_id, method, run_id, step, rung, value, threshold, compared, seeds, verdict, message FROM search_decisions";

fn decision_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Decision> {
    let method: String = r.get(1)?;
    let verdict: String = r.get(9)?;
    Ok(Decision {
        id: r.get(0)?,
        method: if method == "median" {
            Method::Median
        } else {
            Method::Asha
        },
        run_id: r.get(2)?,
        step: r.get(3)?,
        rung: r.get(4)?,
        value: r.get(5)?,
        threshold: r.get(6)?,
        compared: r.get::<_, i64>(7)? as usize,
        seeds: r.get::<_, i64>(8)? as usize,
        prune: verdict == "prune",
        message: r.get(10)?,
    })
}

fn pruned_in(c: &Connection, sweep: &str, setting: &str) -> rusqlite::Result<Option<Decision>> {
    c.query_row(
        &format!(
            "{SELECT_DECISION} WHERE sweep = ?1 AND setting = ?2 AND verdict = 'prune' ORDER BY decision_id LIMIT 1"
        ),
        params![sweep, setting],
        decision_row,
    )
    .optional()
}

/// One stored report.
#[derive(Debug, Clone)]
pub struct Reported {
    pub setting: String,
    pub run_id: String,
    pub step: i64,
    pub value: Option<f64>,
}

/// A value ordered so that larger is better (not a number is the worst).
fn score(goal: Goal, v: Option<f64>) -> f64 {
    match (goal, v) {
        (Goal::Max, Some(v)) => v,
        (Goal::Min, Some(v)) => -v,
        (_, None) => f64::NEG_INFINITY,
    }
}

fn unscore(goal: Goal, s: f64) -> Option<f64> {
    if !s.is_finite() {
        return None;
    }
    Some(match goal {
        Goal::Max => s,
        Goal::Min => -s,
    })
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// The `q` quantile of `xs` with linear interpolation between order statistics (numpy's default).
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let h = (v.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    let frac = h - lo as f64;
    if frac == 0.0 || v[lo] == v[hi] || !v[lo].is_finite() {
        v[lo]
    } else {
        v[lo] + frac * (v[hi] - v[lo])
    }
}

/// The median (the mean of the two middle values for an even count).
pub fn median(xs: &[f64]) -> f64 {
    quantile(xs, 0.5)
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("NaN".into(), |v| format!("{v:.4}"))
}

fn seeds_word(n: usize) -> String {
    if n == 1 {
        "1 seed".into()
    } else {
        format!("mean of {n} seeds")
    }
}

/// The decision a report calls for, from every report of the sweep (the new one included).
pub fn decide(search: &Search, r: &Report<'_>, reports: &[Reported]) -> Option<Decision> {
    match search.method {
        Method::Asha => decide_asha(search, r, reports),
        Method::Median => decide_median(search, r, reports),
    }
}

fn decide_asha(search: &Search, r: &Report<'_>, reports: &[Reported]) -> Option<Decision> {
    let goal = search.goal;
    // Nothing is left to save at the last step (its evaluation may be the first past a rung).
    if r.step >= r.total_steps {
        return None;
    }
    let rungs = search.rungs(r.total_steps);
    let earlier: Vec<i64> = reports
        .iter()
        .filter(|x| x.run_id == r.run_id && x.step < r.step)
        .map(|x| x.step)
        .collect();
    // The highest rung this report reaches that no earlier report of the run reached.
    let (k, rung) = rungs
        .iter()
        .enumerate()
        .rev()
        .find(|(_, &g)| g <= r.step && !earlier.iter().any(|&s| s >= g))
        .map(|(k, &g)| (k, g))?;
    // Each run's value at the rung: its first report at or after it.
    let mut at_rung: BTreeMap<&str, (&str, Option<f64>)> = BTreeMap::new();
    for x in reports.iter().filter(|x| x.step >= rung) {
        at_rung
            .entry(x.run_id.as_str())
            .or_insert((x.setting.as_str(), x.value));
    }
    let mut by_setting: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (setting, v) in at_rung.values() {
        by_setting.entry(setting).or_default().push(score(goal, *v));
    }
    let own = by_setting.get(r.setting)?;
    let seeds = own.len();
    let own = mean(own);
    let recorded: Vec<f64> = by_setting.values().map(|v| mean(v)).collect();
    let eta = search.reduction_factor as f64;
    let q = 1.0 - 1.0 / eta;
    let cutoff = quantile(&recorded, q);
    // Not a number is worse than any number, whatever the interpolation makes of it.
    let prune =
        own < cutoff || (own == f64::NEG_INFINITY && recorded.iter().any(|v| v.is_finite()));
    let (value, threshold) = (unscore(goal, own), unscore(goal, cutoff));
    let message = format!(
        "asha rung {} (step {rung}): {} {} ({} at step {}) {} the threshold {} (the {:.1} % quantile of {} setting{} at this rung, η = {}): {}",
        k + 1,
        search.metric,
        fmt(value),
        seeds_word(seeds),
        r.step,
        if prune { match goal { Goal::Max => "below", Goal::Min => "above" } } else { match goal { Goal::Max => "not below", Goal::Min => "not above" } },
        fmt(threshold),
        100.0 * match goal { Goal::Max => q, Goal::Min => 1.0 - q },
        recorded.len(),
        if recorded.len() == 1 { "" } else { "s" },
        search.reduction_factor,
        if prune { "pruned" } else { "continues" },
    );
    Some(Decision {
        id: 0,
        method: Method::Asha,
        run_id: r.run_id.to_string(),
        step: r.step,
        rung,
        value,
        threshold,
        compared: recorded.len(),
        seeds,
        prune,
        message,
    })
}

fn decide_median(search: &Search, r: &Report<'_>, reports: &[Reported]) -> Option<Decision> {
    let goal = search.goal;
    let s = r.step;
    // Nothing is left to save at the last step.
    if s < search.min_steps || s >= r.total_steps {
        return None;
    }
    // Per setting and step, the scores of the seeds that reported there.
    let mut series: BTreeMap<&str, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
    let mut reached: HashMap<&str, i64> = HashMap::new();
    for x in reports {
        let m = reached.entry(x.setting.as_str()).or_insert(x.step);
        *m = (*m).max(x.step);
        series
            .entry(x.setting.as_str())
            .or_default()
            .entry(x.step)
            .or_default()
            .push(score(goal, x.value));
    }
    let own = series.get(r.setting)?;
    let best = own
        .range(..=s)
        .map(|(_, v)| mean(v))
        .fold(f64::NEG_INFINITY, f64::max);
    let seeds = own.get(&s).map_or(0, Vec::len);
    let others: Vec<f64> = series
        .iter()
        .filter(|(k, _)| **k != r.setting && reached[*k] >= s)
        .map(|(_, ser)| {
            let means: Vec<f64> = ser.range(..=s).map(|(_, v)| mean(v)).collect();
            mean(&means)
        })
        .collect();
    if (others.len() as i64) < search.min_runs {
        return None;
    }
    let med = median(&others);
    let prune = best < med;
    let (value, threshold) = (unscore(goal, best), unscore(goal, med));
    let message = format!(
        "median rule at step {s}: best {} so far {} ({} at step {s}) {} the median {} of the running averages of {} other settings: {}",
        search.metric,
        fmt(value),
        seeds_word(seeds),
        if prune { "worse than" } else { "not worse than" },
        fmt(threshold),
        others.len(),
        if prune { "pruned" } else { "continues" },
    );
    Some(Decision {
        id: 0,
        method: Method::Median,
        run_id: r.run_id.to_string(),
        step: s,
        rung: s,
        value,
        threshold,
        compared: others.len(),
        seeds,
        prune,
        message,
    })
}

#[cfg(test)]
mod tests;
