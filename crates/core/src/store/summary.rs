//! Per-run summaries of the metrics (`metric_summaries`): for each (run, metric, layer) the number
//! of rows, the first and last step with their values, and the smallest and largest value with
//! their steps. `best`, `runs` and the report read these instead of scanning rows.
//!
//! They are kept in the transactions that change the rows: the writer folds each batch into them
//! (or recomputes a (run, metric, layer) whose batch rewrote steps it already had), a claim that
//! deletes a resumed run's later rows recomputes that run, a shard merge takes the shard's, and
//! migrating a version-1 database builds them from a scan. [`check`] compares them with a scan.
//!
//! One definition of what a summary holds, [`Summary::push`], serves every path. Values are
//! stored NULL when not finite (as the rows are); `min`/`max` skip NULL and, on ties, keep the
//! earliest step (the step order of `best`).

use rusqlite::{params, Connection, OptionalExtension};

/// A (step, value) pair; `value` is `None` for NULL.
pub type Point = (i64, Option<f64>);

/// What is known of one (run, metric, layer)'s rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: i64,
    pub first: Point,
    pub last: Point,
    /// The smallest non-NULL value and its earliest step.
    pub min: Option<(i64, f64)>,
    /// The largest non-NULL value and its earliest step.
    pub max: Option<(i64, f64)>,
}

impl Summary {
    /// The summary of one row.
    pub fn new(step: i64, value: Option<f64>) -> Summary {
        let v = value.filter(|v| v.is_finite());
        Summary {
            n: 1,
            first: (step, v),
            last: (step, v),
            min: v.map(|v| (step, v)),
            max: v.map(|v| (step, v)),
        }
    }

    /// Add a row whose step is after every step already summarised.
    pub fn push(&mut self, step: i64, value: Option<f64>) {
        debug_assert!(step > self.last.0, "rows are folded in step order");
        let v = value.filter(|v| v.is_finite());
        self.n += 1;
        self.last = (step, v);
        if let Some(v) = v {
            if self.min.is_none_or(|(_, m)| v < m) {
                self.min = Some((step, v));
            }
            if self.max.is_none_or(|(_, m)| v > m) {
                self.max = Some((step, v));
            }
        }
    }
}

/// The key of a summary: (run_pk, metric_id, layer).
pub type Key = (i64, i64, i64);

const COLUMNS: &str =
    "n, first_step, first_value, last_step, last_value, min_step, min_value, max_step, max_value";

fn from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Summary> {
    let pair = |s: Option<i64>, v: Option<f64>| s.zip(v);
    Ok(Summary {
        n: r.get(at)?,
        first: (r.get(at + 1)?, r.get(at + 2)?),
        last: (r.get(at + 3)?, r.get(at + 4)?),
        min: pair(r.get(at + 5)?, r.get(at + 6)?),
        max: pair(r.get(at + 7)?, r.get(at + 8)?),
    })
}

/// The stored summary of `key`.
pub fn get(conn: &Connection, key: Key) -> rusqlite::Result<Option<Summary>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM metric_summaries WHERE run_pk = ?1 AND metric_id = ?2 AND layer = ?3"
    ))?
    .query_row(params![key.0, key.1, key.2], |r| from_row(r, 0))
    .optional()
}

/// Store (insert or replace) the summary of `key`.
pub fn put(conn: &Connection, key: Key, s: &Summary) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO metric_summaries (run_pk, metric_id, layer, {COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?
    .execute(params![
        key.0,
        key.1,
        key.2,
        s.n,
        s.first.0,
        s.first.1,
        s.last.0,
        s.last.1,
        s.min.map(|m| m.0),
        s.min.map(|m| m.1),
        s.max.map(|m| m.0),
        s.max.map(|m| m.1),
    ])
    .map(|_| ())
}

/// Fold rows given in key order (run_pk, metric_id, layer, step) into one summary per key,
/// calling `out` for each finished one.
fn fold_rows(
    rows: impl Iterator<Item = rusqlite::Result<(Key, i64, Option<f64>)>>,
    mut out: impl FnMut(Key, &Summary) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut cur: Option<(Key, Summary)> = None;
    for row in rows {
        let (key, step, value) = row?;
        match &mut cur {
            Some((k, s)) if *k == key => s.push(step, value),
            _ => {
                if let Some((k, s)) = cur.take() {
                    out(k, &s)?;
                }
                cur = Some((key, Summary::new(step, value)));
            }
        }
    }
    if let Some((k, s)) = cur {
        out(k, &s)?;
    }
    Ok(())
}

/// The summaries of the rows `where_sql` selects from `metrics` (bound to `args`), computed from
/// a scan in key order.
fn scan(
    conn: &Connection,
    where_sql: &str,
    args: &[&dyn rusqlite::ToSql],
    mut out: impl FnMut(Key, &Summary) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT run_pk, metric_id, layer, step, value FROM metrics {where_sql}
         ORDER BY run_pk, metric_id, layer, step"
    ))?;
    let rows = st.query_map(args, |r| {
        Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?, r.get(4)?))
    })?;
    fold_rows(rows, &mut out)
}

/// Recompute the summary of one (run, metric, layer) from its rows (removing it when it has none).
pub fn recompute_key(conn: &Connection, key: Key) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM metric_summaries WHERE run_pk = ?1 AND metric_id = ?2 AND layer = ?3",
    )?
    .execute(params![key.0, key.1, key.2])?;
    scan(
        conn,
        "WHERE run_pk = ?1 AND metric_id = ?2 AND layer = ?3",
        &[&key.0, &key.1, &key.2],
        |k, s| put(conn, k, s),
    )
}

/// Recompute every summary of one run from its rows.
pub fn recompute_run(conn: &Connection, run_pk: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM metric_summaries WHERE run_pk = ?1")?
        .execute([run_pk])?;
    scan(conn, "WHERE run_pk = ?1", &[&run_pk], |k, s| {
        put(conn, k, s)
    })
}

/// Rebuild every summary from a scan of every row (the migration to schema version 2).
pub fn rebuild_all(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM metric_summaries", [])?;
    scan(conn, "", &[], |k, s| put(conn, k, s))
}

/// A summary that does not match the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub key: Key,
    /// What the table holds (`None`: no summary).
    pub stored: Option<Summary>,
    /// What a scan of the rows gives (`None`: no rows).
    pub scanned: Option<Summary>,
}

/// What [`check`] found.
#[derive(Debug, Clone, Default)]
pub struct Check {
    /// Summaries stored.
    pub summaries: usize,
    /// Metric rows scanned.
    pub rows: u64,
    /// The summaries that do not match the rows, in key order.
    pub mismatches: Vec<Mismatch>,
}

/// Compare every stored summary with a full scan of the rows, both read in one transaction, so
/// from one snapshot: a writer committing meanwhile cannot make them disagree.
pub fn check(conn: &Connection) -> rusqlite::Result<Check> {
    let tx = conn.unchecked_transaction()?;
    let found = check_in(&tx)?;
    tx.commit()?;
    Ok(found)
}

fn check_in(conn: &Connection) -> rusqlite::Result<Check> {
    let mut stored: std::collections::BTreeMap<Key, Summary> = Default::default();
    {
        let mut st = conn.prepare(&format!(
            "SELECT run_pk, metric_id, layer, {COLUMNS} FROM metric_summaries"
        ))?;
        let rows = st.query_map([], |r| {
            Ok(((r.get(0)?, r.get(1)?, r.get(2)?), from_row(r, 3)?))
        })?;
        for row in rows {
            let (k, s) = row?;
            stored.insert(k, s);
        }
    }
    let summaries = stored.len();
    let mut rows = 0u64;
    let mut out = Vec::new();
    scan(conn, "", &[], |k, s| {
        rows += s.n as u64;
        match stored.remove(&k) {
            Some(t) if same(&t, s) => {}
            t => out.push(Mismatch {
                key: k,
                stored: t,
                scanned: Some(*s),
            }),
        }
        Ok(())
    })?;
    out.extend(stored.into_iter().map(|(k, s)| Mismatch {
        key: k,
        stored: Some(s),
        scanned: None,
    }));
    out.sort_by_key(|m| m.key);
    Ok(Check {
        summaries,
        rows,
        mismatches: out,
    })
}

/// Equal, bit for bit in the values (what the store round-trips).
fn same(a: &Summary, b: &Summary) -> bool {
    let p = |x: Point| (x.0, x.1.map(f64::to_bits));
    let q = |x: Option<(i64, f64)>| x.map(|(s, v)| (s, v.to_bits()));
    a.n == b.n
        && p(a.first) == p(b.first)
        && p(a.last) == p(b.last)
        && q(a.min) == q(b.min)
        && q(a.max) == q(b.max)
}

/// Fold a batch of new rows for one key, sorted by step without duplicates, into its stored
/// summary, after they were written. Rows strictly after the stored last step extend it; a batch
/// that rewrote or filled in earlier steps has the key recomputed from its rows.
pub fn fold_batch(
    conn: &Connection,
    key: Key,
    rows: &[(i64, Option<f64>)],
) -> rusqlite::Result<()> {
    let Some(&(first_step, _)) = rows.first() else {
        return Ok(());
    };
    let mut s = get(conn, key)?;
    if s.is_some_and(|s| first_step <= s.last.0) {
        return recompute_key(conn, key);
    }
    for &(step, value) in rows {
        match s.as_mut() {
            Some(s) => s.push(step, value),
            None => s = Some(Summary::new(step, value)),
        }
    }
    put(conn, key, &s.expect("rows is not empty"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_keeps_first_last_and_the_earliest_extremes() {
        let mut s = Summary::new(0, Some(3.0));
        s.push(5, None);
        s.push(10, Some(1.0));
        s.push(15, Some(3.0));
        s.push(20, Some(1.0));
        s.push(25, Some(f64::NAN));
        assert_eq!(
            s,
            Summary {
                n: 6,
                first: (0, Some(3.0)),
                last: (25, None),
                min: Some((10, 1.0)),
                max: Some((0, 3.0)),
            }
        );
        let only_null = Summary::new(7, Some(f64::INFINITY));
        assert_eq!(only_null.min, None);
        assert_eq!(only_null.first, (7, None));
    }
}
