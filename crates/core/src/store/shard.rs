//! Runs executed elsewhere (Slurm array tasks): marking runs submitted, requeueing, and merging the
//! per-task SQLite shards back into the main database.
//!
//! A shard is an ordinary simsweep database holding one run (`<results>/shards/<sweep>/<run id>.db`),
//! written by `simsweep worker` on a compute node with the rollback journal (WAL needs memory shared
//! between the processes that open the file, which hosts do not share over a network filesystem).
//! The main database is never opened by a compute node. Which submission a shard belongs to is
//! recorded in the shard as the run's latest `slurm_task` event (message `<job id>_<index>`); the main
//! database marks a submitted run `running` with worker `slurm:<job id>_<index>`. A shard is merged
//! only into the run whose worker names its task, so a shard left from an earlier submission is never
//! mistaken for the current one.

use super::{sql_err, Result, Store, StoreError};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, OptionalExtension};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Prefix of the `worker` of a run held by a Slurm array task: `slurm:<job id>_<index>`.
pub const SLURM_WORKER: &str = "slurm:";
/// Prefix of the `worker` of a run being submitted (sbatch not yet answered):
/// `slurm:submitting:<host>:<pid>:<start>`.
pub const SUBMITTING_WORKER: &str = "slurm:submitting:";

/// The `events.kind` a worker records in its shard: message `<job id>_<index>`.
pub const TASK_EVENT: &str = "slurm_task";

static ROLLBACK_JOURNAL: AtomicBool = AtomicBool::new(false);

/// Make every database this process opens with [`Store::open`] use the rollback journal instead
/// of WAL (a Slurm worker writing its shard on a shared filesystem).
pub fn use_rollback_journal() {
    ROLLBACK_JOURNAL.store(true, Ordering::SeqCst);
}

pub(crate) fn rollback_journal() -> bool {
    ROLLBACK_JOURNAL.load(Ordering::SeqCst)
}

fn host() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

/// A run taken for a Slurm submission.
#[derive(Debug, Clone)]
pub struct SubmitRun {
    pub run_pk: i64,
    pub run_id: String,
    pub ordinal: i64,
    pub seed: i64,
    pub config: BTreeMap<String, Value>,
    pub canonical: String,
    pub attempts: i64,
    /// Status before the submission (`pending` or `cancelled`), restored if sbatch fails.
    pub status: String,
    pub error: Option<String>,
}

/// A run held by a Slurm task (or by a submission in progress), as stored in the main database.
#[derive(Debug, Clone)]
pub struct SlurmRun {
    pub run_pk: i64,
    pub run_id: String,
    pub sweep: String,
    pub status: String,
    pub worker: String,
    pub host: Option<String>,
    pub step: Option<i64>,
    /// Seconds since the submission or the last heartbeat merged from the shard.
    pub quiet_s: f64,
}

impl SlurmRun {
    /// `<job id>_<index>` of the task, or None for a submission in progress.
    pub fn task(&self) -> Option<&str> {
        if self.worker.starts_with(SUBMITTING_WORKER) {
            return None;
        }
        self.worker.strip_prefix(SLURM_WORKER)
    }
}

/// What merging one run of a shard did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunMerge {
    pub run_id: String,
    /// The shard's task (`<job id>_<index>`), if it recorded one.
    pub task: Option<String>,
    /// The shard's status of the run.
    pub shard_status: String,
    /// Merged: the main database's run is the one the shard's task was submitted for.
    pub applied: bool,
    /// Why not, when not applied.
    pub skipped: Option<String>,
    /// The run's row (status, step, times, host, device, error) was updated.
    pub row_updated: bool,
    pub metrics_written: usize,
    pub metrics_deleted: usize,
    pub checkpoints_changed: usize,
    pub events_added: usize,
    /// Not read: the shard file is unchanged since it was last merged, and its run is held by the
    /// same worker (`applied` and `skipped` are that merge's).
    pub unread: bool,
}

impl RunMerge {
    /// Whether anything in the main database changed.
    pub fn changed(&self) -> bool {
        self.row_updated
            || self.metrics_written
                + self.metrics_deleted
                + self.checkpoints_changed
                + self.events_added
                > 0
    }
}

/// What a worker found in its shard before training.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardStart {
    /// The run is ready to be claimed.
    Ready,
    /// The same task already finished the run (Slurm started the task again): nothing to do.
    AlreadyDone,
}

/// A `file:` URI that opens `path` read-only.
fn readonly_uri(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut uri = String::from("file:");
    for ch in abs.to_string_lossy().chars() {
        match ch {
            '%' | '?' | '#' => uri.push_str(&format!("%{:02X}", ch as u32)),
            c => uri.push(c),
        }
    }
    uri + "?mode=ro"
}

/// Open a shard read-write once, so that SQLite rolls back a transaction its writer left unfinished
/// (a hot journal, after a task was killed mid-commit); a read-only reader cannot. Only call this
/// when the shard's task has ended.
pub fn recover_shard(path: &Path) -> Result<()> {
    let e = sql_err(path);
    let conn = rusqlite::Connection::open(path).map_err(&e)?;
    conn.busy_timeout(super::BUSY_TIMEOUT).map_err(&e)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(&e)?;
    Ok(())
}

impl Store {
    /// The worker value that marks runs taken by a submission of this process:
    /// `slurm:submitting:<host>:<pid>:<start>`.
    pub fn submitting_worker() -> String {
        format!("{SUBMITTING_WORKER}{}", super::worker_id())
    }

    /// Take every pending or cancelled run of `sweep` (in the plan, in plan order) for a Slurm
    /// submission, atomically: they become `running` under `claimer` (see
    /// [`Store::submitting_worker`]) so no local runner or other submission takes them meanwhile.
    pub fn claim_for_submission(&mut self, sweep: &str, claimer: &str) -> Result<Vec<SubmitRun>> {
        let path = self.path.clone();
        let e = sql_err(&path);
        let tx = self.immediate()?;
        let runs = {
            let mut st = tx
                .prepare(
                    "SELECT r.run_pk, r.run_id, r.ordinal, r.seed, r.config_json, r.canonical, r.attempts, r.status, r.error
                     FROM runs r JOIN sweeps s ON s.sweep_id = r.sweep_id
                     WHERE s.name = ?1 AND r.in_plan = 1 AND r.status IN ('pending', 'cancelled')
                     ORDER BY r.ordinal",
                )
                .map_err(&e)?;
            let rows = st
                .query_map([sweep], |r| {
                    let cfg: String = r.get(4)?;
                    Ok(SubmitRun {
                        run_pk: r.get(0)?,
                        run_id: r.get(1)?,
                        ordinal: r.get(2)?,
                        seed: r.get(3)?,
                        config: serde_json::from_str(&cfg).unwrap_or_default(),
                        canonical: r.get(5)?,
                        attempts: r.get(6)?,
                        status: r.get(7)?,
                        error: r.get(8)?,
                    })
                })
                .map_err(&e)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)?
        };
        {
            let mut upd = tx
                .prepare(&format!(
                    "UPDATE runs SET status = 'running', worker = ?2, host = NULL, device = NULL,
                         heartbeat_at = {NOW}, error = NULL WHERE run_pk = ?1"
                ))
                .map_err(&e)?;
            for r in &runs {
                upd.execute(params![r.run_pk, claimer]).map_err(&e)?;
            }
        }
        tx.commit().map_err(&e)?;
        Ok(runs)
    }

    /// Give runs taken by [`Store::claim_for_submission`] back (sbatch failed): their earlier status
    /// and error, where `claimer` still holds them.
    pub fn release_submission(&mut self, runs: &[SubmitRun], claimer: &str) -> Result<()> {
        let path = self.path.clone();
        let e = sql_err(&path);
        let tx = self.immediate()?;
        for r in runs {
            tx.execute(
                "UPDATE runs SET status = ?2, error = ?3, worker = NULL, heartbeat_at = NULL
                 WHERE run_pk = ?1 AND worker = ?4",
                params![r.run_pk, r.status, r.error, claimer],
            )
            .map_err(&e)?;
        }
        tx.commit().map_err(&e)
    }

    /// sbatch accepted the array: run `i` of `runs` is now held by task `<job>_<i>` (worker
    /// `slurm:<job>_<i>`), with a `submitted` event (data: job, index, folder). Returns how many
    /// runs were still held by `claimer`.
    pub fn confirm_submission(
        &mut self,
        runs: &[SubmitRun],
        claimer: &str,
        job: &str,
        dir: &Path,
    ) -> Result<usize> {
        let path = self.path.clone();
        let e = sql_err(&path);
        let tx = self.immediate()?;
        let mut n = 0;
        for (i, r) in runs.iter().enumerate() {
            let task = format!("{job}_{i}");
            let changed = tx
                .execute(
                    &format!("UPDATE runs SET worker = ?2, heartbeat_at = {NOW} WHERE run_pk = ?1 AND worker = ?3"),
                    params![r.run_pk, format!("{SLURM_WORKER}{task}"), claimer],
                )
                .map_err(&e)?;
            if changed == 0 {
                continue;
            }
            n += 1;
            let data = serde_json::json!({"job": job, "index": i, "task": task, "dir": dir});
            tx.execute(
                &format!(
                    "INSERT INTO events (at, sweep_id, run_pk, kind, message, data)
                     SELECT {NOW}, sweep_id, run_pk, 'submitted', ?2, ?3 FROM runs WHERE run_pk = ?1"
                ),
                params![r.run_pk, format!("slurm job {task}"), data.to_string()],
            )
            .map_err(&e)?;
        }
        tx.commit().map_err(&e)?;
        Ok(n)
    }

    /// Runs held by Slurm tasks or by a submission in progress (status `running`, worker `slurm:…`),
    /// of one sweep or all.
    pub fn slurm_runs(&self, sweep: Option<&str>) -> Result<Vec<SlurmRun>> {
        let e = sql_err(&self.path);
        let mut st = self
            .conn
            .prepare(
                "SELECT r.run_pk, r.run_id, s.name, r.status, r.worker, r.host, r.step,
                        coalesce((julianday('now') - julianday(r.heartbeat_at)) * 86400.0, 1e9)
                 FROM runs r JOIN sweeps s ON s.sweep_id = r.sweep_id
                 WHERE (?1 IS NULL OR s.name = ?1) AND r.status = 'running' AND r.worker LIKE 'slurm:%'
                 ORDER BY s.sweep_id, r.ordinal",
            )
            .map_err(&e)?;
        let rows = st
            .query_map([sweep], |r| {
                Ok(SlurmRun {
                    run_pk: r.get(0)?,
                    run_id: r.get(1)?,
                    sweep: r.get(2)?,
                    status: r.get(3)?,
                    worker: r.get(4)?,
                    host: r.get(5)?,
                    step: r.get(6)?,
                    quiet_s: r.get(7)?,
                })
            })
            .map_err(&e)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)
    }

    /// Settle a run whose Slurm task ended without a final status in its shard: `status` (failed or
    /// cancelled) with `error`, only if `worker` still holds it running. Returns whether it changed.
    pub fn settle_slurm_run(
        &mut self,
        run_pk: i64,
        worker: &str,
        status: &str,
        error: &str,
    ) -> Result<bool> {
        let path = self.path.clone();
        let e = sql_err(&path);
        let tx = self.immediate()?;
        let n = tx
            .execute(
                &format!(
                    "UPDATE runs SET status = ?2, error = ?3, finished_at = {NOW}
                     WHERE run_pk = ?1 AND status = 'running' AND worker = ?4"
                ),
                params![run_pk, status, error, worker],
            )
            .map_err(&e)?;
        if n > 0 {
            tx.execute(
                &format!(
                    "INSERT INTO events (at, sweep_id, run_pk, kind, message)
                     SELECT {NOW}, sweep_id, run_pk, ?2, ?3 FROM runs WHERE run_pk = ?1"
                ),
                params![run_pk, status, error],
            )
            .map_err(&e)?;
        }
        tx.commit().map_err(&e)?;
        Ok(n > 0)
    }

    /// Runs left held by a submission that never finished (its process, on this host, is gone; or
    /// it is older than ten minutes): back to `pending` (never started) or `cancelled`. Returns how
    /// many.
    pub fn release_stale_submissions(&mut self) -> Result<usize> {
        let path = self.path.clone();
        let e = sql_err(&path);
        let tx = self.immediate()?;
        let held: Vec<(i64, String, bool)> = {
            let mut st = tx
                .prepare(
                    "SELECT run_pk, worker, heartbeat_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-10 minutes')
                     FROM runs WHERE status = 'running' AND worker LIKE 'slurm:submitting:%'",
                )
                .map_err(&e)?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get::<_, Option<bool>>(2)?.unwrap_or(true),
                    ))
                })
                .map_err(&e)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)?
        };
        let me = host();
        let mut n = 0;
        for (pk, worker, old) in held {
            let rest = worker.strip_prefix(SUBMITTING_WORKER).unwrap_or("");
            let h = rest.rsplitn(3, ':').last().unwrap_or("");
            let dead = h == me && !super::worker_alive(rest);
            if !(dead || old) {
                continue;
            }
            n += tx
                .execute(
                    "UPDATE runs SET status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'cancelled' END,
                         error = CASE WHEN attempts = 0 THEN NULL ELSE 'the Slurm submission was interrupted' END,
                         worker = NULL WHERE run_pk = ?1 AND worker = ?2",
                    params![pk, worker],
                )
                .map_err(&e)?;
        }
        tx.commit().map_err(&e)?;
        Ok(n)
    }

    /// Worker side, in the shard: make the run ready for task `task` (`<job id>_<index>`). A shard
    /// from an earlier submission keeps its rows (a resumable run finds its checkpoints) and its run
    /// takes `status` (what the main database said at submission: pending or cancelled); the same
    /// task started again by Slurm finds its run done (nothing to do) or resumes it as cancelled.
    /// `attempts` (the main database's count) carries over. Records a `slurm_task` event.
    pub fn prepare_shard_run(
        &mut self,
        run_id: &str,
        task: &str,
        status: &str,
        attempts: i64,
        data: &Value,
    ) -> Result<ShardStart> {
        let path = self.path.clone();
        let e = sql_err(&path);
        let tx = self.immediate()?;
        let (pk, current): (i64, String) = tx
            .query_row(
                "SELECT run_pk, status FROM runs WHERE run_id = ?1",
                [run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(&e)?;
        let last_task: Option<String> = tx
            .query_row(
                "SELECT message FROM events WHERE run_pk = ?1 AND kind = ?2 ORDER BY event_id DESC LIMIT 1",
                params![pk, TASK_EVENT],
                |r| r.get(0),
            )
            .optional()
            .map_err(&e)?;
        let again = last_task.as_deref() == Some(task);
        if again && (current == "done" || current == "pruned") {
            return Ok(ShardStart::AlreadyDone);
        }
        let new_status = if again && current != "pending" {
            "cancelled"
        } else {
            status
        };
        tx.execute(
            "UPDATE runs SET status = ?2, attempts = max(attempts, ?3), worker = NULL WHERE run_pk = ?1",
            params![pk, new_status, attempts],
        )
        .map_err(&e)?;
        tx.execute(
            &format!(
                "INSERT INTO events (at, sweep_id, run_pk, kind, message, data)
                 SELECT {NOW}, sweep_id, run_pk, ?2, ?3, ?4 FROM runs WHERE run_pk = ?1"
            ),
            params![pk, TASK_EVENT, task, data.to_string()],
        )
        .map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(ShardStart::Ready)
    }

    /// Merge a shard into this (main) database, reading it read-only; one transaction. For each run
    /// of the shard whose main-database run is held by the shard's task (worker `slurm:<task>`):
    /// the run's row (status, step, attempts, times, host, device, code version, error) once the
    /// shard's run has started (a shard still `running` never overrides a run the main database has
    /// settled), its metrics made exactly the shard's (one row per run, metric, layer, step; names
    /// mapped to this database's ids), its checkpoints, and the shard's events not yet copied.
    /// Idempotent: merging the same shard again changes nothing.
    ///
    /// Incremental: the file's size and modification time are recorded with the merge
    /// (`shard_merges`), and a shard found as it was then, whose run the same worker holds, is not
    /// read again (one `unread` entry with that merge's outcome is returned).
    pub fn merge_shard(&mut self, shard: &Path) -> Result<Vec<RunMerge>> {
        let path = self.path.clone();
        let e = sql_err(&path);
        let shard_err = |source: rusqlite::Error| StoreError::Sqlite {
            path: shard.to_path_buf(),
            cause: source,
        };
        let ident = shard_identity(shard);
        if let Some(id) = &ident {
            if let Some(m) = self.merged_before(id).map_err(&e)? {
                return Ok(vec![m]);
            }
        }
        // The main database's working set in memory while shards come in (negative = KiB), as the
        // writer has it.
        self.conn
            .pragma_update(Some("main"), "cache_size", -MERGE_CACHE_KIB)
            .map_err(&e)?;
        self.conn
            .execute("ATTACH DATABASE ?1 AS shard", [readonly_uri(shard)])
            .map_err(shard_err)?;
        let result = self.merge_attached(shard, ident.as_ref());
        let detached = self.conn.execute("DETACH DATABASE shard", []).map_err(&e);
        let merged = result?;
        detached?;
        Ok(merged)
    }

    /// Put shard files in the order their runs are stored (`run_pk`, read from the file names,
    /// which are run ids; unknown runs last, by name), so a merge appends each run's rows next to
    /// the previous one's instead of all over the metrics table.
    pub fn sort_shards(&self, files: &mut [std::path::PathBuf]) -> Result<()> {
        let mut st = self
            .conn
            .prepare_cached("SELECT run_pk FROM runs WHERE run_id = ?1")
            .map_err(sql_err(&self.path))?;
        let mut keyed = Vec::with_capacity(files.len());
        for f in files.iter() {
            let id = f.file_stem().map(|s| s.to_string_lossy().into_owned());
            let pk: Option<i64> = match &id {
                Some(id) => st
                    .query_row([id], |r| r.get(0))
                    .optional()
                    .map_err(sql_err(&self.path))?,
                None => None,
            };
            keyed.push((pk.unwrap_or(i64::MAX), f.clone()));
        }
        keyed.sort();
        for (slot, (_, f)) in files.iter_mut().zip(keyed) {
            *slot = f;
        }
        Ok(())
    }

    /// The recorded outcome of merging the shard `id` names, when the file is as it was then and
    /// its run is still held by the same worker.
    fn merged_before(&self, id: &ShardIdentity) -> rusqlite::Result<Option<RunMerge>> {
        type Record = (i64, i64, Option<String>, bool, Option<String>);
        let rec: Option<Record> = self
            .conn
            .query_row(
                "SELECT size, mtime_ns, worker, applied, skipped FROM shard_merges WHERE path = ?1",
                [&id.path],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((size, mtime, worker, applied, skipped)) = rec else {
            return Ok(None);
        };
        if size != id.size || mtime != id.mtime_ns {
            return Ok(None);
        }
        let now: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT worker FROM runs WHERE run_id = ?1",
                [&id.run_id],
                |r| r.get(0),
            )
            .optional()?;
        if now.flatten() != worker {
            return Ok(None);
        }
        Ok(Some(RunMerge {
            run_id: id.run_id.clone(),
            applied,
            skipped,
            unread: true,
            ..Default::default()
        }))
    }

    fn merge_attached(
        &mut self,
        shard: &Path,
        ident: Option<&ShardIdentity>,
    ) -> Result<Vec<RunMerge>> {
        let path = self.path.clone();
        let e = sql_err(&path);
        let se = |source: rusqlite::Error| StoreError::Sqlite {
            path: shard.to_path_buf(),
            cause: source,
        };
        let version: i64 = self
            .conn
            .query_row("PRAGMA shard.user_version", [], |r| r.get(0))
            .map_err(se)?;
        let tables: i64 = self
            .conn
            .query_row("SELECT count(*) FROM shard.sqlite_master", [], |r| r.get(0))
            .map_err(se)?;
        if version == 0 && tables == 0 {
            // The worker is creating it right now: nothing to merge yet.
            return Ok(Vec::new());
        }
        // Version 1 shards (a submission by the previous release) have the same rows; their
        // summaries are computed here.
        if !(1..=super::SCHEMA_VERSION).contains(&version) {
            return Err(StoreError::Other {
                path: shard.to_path_buf(),
                message: format!(
                    "shard schema version {version}, expected 1 to {} (written by a newer simsweep?)",
                    super::SCHEMA_VERSION
                ),
            });
        }
        self.conn
            .execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS shard_metric_map (main_id INTEGER PRIMARY KEY, shard_id INTEGER NOT NULL UNIQUE)",
            )
            .map_err(&e)?;
        let tx = self.immediate()?;
        const ROW: &str = "status, step, attempts, started_at, finished_at, heartbeat_at, host, device, code_version, error";
        let shard_runs: Vec<(i64, String, Vec<SqlValue>)> = {
            let mut st = tx
                .prepare(&format!(
                    "SELECT run_pk, run_id, {ROW} FROM shard.runs ORDER BY run_pk"
                ))
                .map_err(se)?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        (2..12).map(|i| r.get(i)).collect::<rusqlite::Result<_>>()?,
                    ))
                })
                .map_err(se)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(se)?
        };
        if shard_runs.is_empty() {
            return Ok(Vec::new());
        }
        tx.execute_batch(
            "INSERT OR IGNORE INTO main.metric_names (name) SELECT name FROM shard.metric_names;
             DELETE FROM temp.shard_metric_map;
             INSERT INTO temp.shard_metric_map (main_id, shard_id)
                 SELECT m.metric_id, s.metric_id FROM shard.metric_names s JOIN main.metric_names m ON m.name = s.name;",
        )
        .map_err(&e)?;
        let mut out = Vec::new();
        for (spk, run_id, shard_row) in shard_runs {
            let shard_status = match &shard_row[0] {
                SqlValue::Text(s) => s.clone(),
                _ => String::new(),
            };
            let task: Option<String> = tx
                .query_row(
                    "SELECT message FROM shard.events WHERE run_pk = ?1 AND kind = ?2 ORDER BY event_id DESC LIMIT 1",
                    params![spk, TASK_EVENT],
                    |r| r.get(0),
                )
                .optional()
                .map_err(se)?;
            let mut m = RunMerge {
                run_id: run_id.clone(),
                task: task.clone(),
                shard_status: shard_status.clone(),
                ..Default::default()
            };
            let main: Option<(i64, i64, Option<String>, Vec<SqlValue>)> = tx
                .query_row(
                    &format!(
                        "SELECT run_pk, sweep_id, worker, {ROW} FROM main.runs WHERE run_id = ?1"
                    ),
                    [&run_id],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            (3..13).map(|i| r.get(i)).collect::<rusqlite::Result<_>>()?,
                        ))
                    },
                )
                .optional()
                .map_err(&e)?;
            let Some((mpk, sweep_id, worker, main_row)) = main else {
                m.skipped = Some("no such run in the main database".into());
                out.push(m);
                continue;
            };
            let Some(task) = task else {
                m.skipped = Some("the shard names no Slurm task".into());
                out.push(m);
                continue;
            };
            if worker.as_deref() != Some(&format!("{SLURM_WORKER}{task}")) {
                m.skipped = Some(format!(
                    "the run is held by {} now, not by slurm task {task}",
                    worker.as_deref().unwrap_or("nobody")
                ));
                out.push(m);
                continue;
            }
            m.applied = true;
            // A finished run already merged: nothing in its shard changes any more.
            if !matches!(shard_status.as_str(), "pending" | "running") && shard_row == main_row {
                out.push(m);
                continue;
            }
            let main_status = match &main_row[0] {
                SqlValue::Text(s) => s.clone(),
                _ => String::new(),
            };
            let take_row = match shard_status.as_str() {
                // Queued or starting: the main database already says running.
                "pending" => false,
                // Started: only while the main database has not settled the run otherwise.
                "running" => main_status == "running",
                _ => true,
            };
            if take_row && shard_row != main_row {
                tx.execute(
                    "UPDATE main.runs SET (status, step, attempts, started_at, finished_at, heartbeat_at, host, device, code_version, error) =
                         (SELECT status, step, attempts, started_at, finished_at, heartbeat_at, host, device, code_version, error
                          FROM shard.runs WHERE run_pk = ?2)
                     WHERE run_pk = ?1",
                    params![mpk, spk],
                )
                .map_err(&e)?;
                m.row_updated = true;
            }
            // Version-3 shards know the run's planned steps (what early stopping saved).
            if take_row && version >= 3 {
                tx.execute(
                    "UPDATE main.runs SET total_steps = (SELECT total_steps FROM shard.runs WHERE run_pk = ?2)
                     WHERE run_pk = ?1 AND (SELECT total_steps FROM shard.runs WHERE run_pk = ?2) IS NOT NULL",
                    params![mpk, spk],
                )
                .map_err(&e)?;
            }
            let main_has_rows: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM main.metrics WHERE run_pk = ?1)",
                    [mpk],
                    |r| r.get(0),
                )
                .map_err(&e)?;
            if !main_has_rows {
                // The first merge of the run: every row is new; appended in key order.
                m.metrics_written = tx
                    .execute(
                        "INSERT INTO main.metrics (run_pk, metric_id, layer, step, value)
                         SELECT ?1, mm.main_id, s.layer, s.step, s.value
                         FROM shard.metrics s JOIN temp.shard_metric_map mm ON mm.shard_id = s.metric_id
                         WHERE s.run_pk = ?2 ORDER BY mm.main_id, s.layer, s.step",
                        params![mpk, spk],
                    )
                    .map_err(&e)?;
            } else {
                m.metrics_written = tx
                    .execute(
                        "INSERT OR REPLACE INTO main.metrics (run_pk, metric_id, layer, step, value)
                         SELECT ?1, mm.main_id, s.layer, s.step, s.value
                         FROM shard.metrics s JOIN temp.shard_metric_map mm ON mm.shard_id = s.metric_id
                         WHERE s.run_pk = ?2 AND NOT EXISTS (
                             SELECT 1 FROM main.metrics x WHERE x.run_pk = ?1 AND x.metric_id = mm.main_id
                                 AND x.layer = s.layer AND x.step = s.step AND x.value IS s.value)",
                        params![mpk, spk],
                    )
                    .map_err(&e)?;
            }
            m.metrics_deleted = if !main_has_rows {
                0
            } else {
                tx.execute(
                    "DELETE FROM main.metrics WHERE run_pk = ?1 AND NOT EXISTS (
                         SELECT 1 FROM temp.shard_metric_map mm JOIN shard.metrics s
                             ON s.run_pk = ?2 AND s.metric_id = mm.shard_id
                         WHERE mm.main_id = main.metrics.metric_id AND s.layer = main.metrics.layer
                             AND s.step = main.metrics.step)",
                    params![mpk, spk],
                )
                .map_err(&e)?
            };
            if m.metrics_written + m.metrics_deleted > 0 {
                // The shard's own summaries when they account for exactly its rows (a version-2
                // shard, kept by its writer in the same transactions); otherwise from the rows.
                let copied = version >= 2
                    && !main_has_rows
                    && tx
                        .query_row(
                            "SELECT coalesce(sum(n), -1) FROM shard.metric_summaries WHERE run_pk = ?1",
                            [spk],
                            |r| r.get::<_, i64>(0),
                        )
                        .map_err(se)?
                        == m.metrics_written as i64;
                if copied {
                    tx.execute("DELETE FROM main.metric_summaries WHERE run_pk = ?1", [mpk])
                        .map_err(&e)?;
                    tx.execute(
                        "INSERT INTO main.metric_summaries
                             (run_pk, metric_id, layer, n, first_step, first_value, last_step, last_value,
                              min_step, min_value, max_step, max_value)
                         SELECT ?1, mm.main_id, s.layer, s.n, s.first_step, s.first_value, s.last_step,
                                s.last_value, s.min_step, s.min_value, s.max_step, s.max_value
                         FROM shard.metric_summaries s JOIN temp.shard_metric_map mm ON mm.shard_id = s.metric_id
                         WHERE s.run_pk = ?2",
                        params![mpk, spk],
                    )
                    .map_err(&e)?;
                } else {
                    super::summary::recompute_run(&tx, mpk).map_err(&e)?;
                }
            }
            m.checkpoints_changed = tx
                .execute(
                    "DELETE FROM main.checkpoints WHERE run_pk = ?1 AND NOT EXISTS (
                         SELECT 1 FROM shard.checkpoints c WHERE c.run_pk = ?2 AND c.kind = main.checkpoints.kind
                             AND c.step = main.checkpoints.step AND c.path = main.checkpoints.path
                             AND c.metric IS main.checkpoints.metric AND c.value IS main.checkpoints.value
                             AND c.created_at = main.checkpoints.created_at)",
                    params![mpk, spk],
                )
                .map_err(&e)?;
            m.checkpoints_changed += tx
                .execute(
                    "INSERT OR REPLACE INTO main.checkpoints (run_pk, kind, step, path, metric, value, created_at)
                     SELECT ?1, c.kind, c.step, c.path, c.metric, c.value, c.created_at FROM shard.checkpoints c
                     WHERE c.run_pk = ?2 AND NOT EXISTS (
                         SELECT 1 FROM main.checkpoints x WHERE x.run_pk = ?1 AND x.kind = c.kind)",
                    params![mpk, spk],
                )
                .map_err(&e)?;
            m.events_added = tx
                .execute(
                    "INSERT INTO main.events (at, sweep_id, run_pk, kind, message, data)
                     SELECT e.at, ?3, ?1, e.kind, e.message, e.data FROM shard.events e
                     WHERE e.run_pk = ?2 AND NOT EXISTS (
                         SELECT 1 FROM main.events x WHERE x.run_pk = ?1 AND x.at = e.at
                             AND x.kind = e.kind AND x.message = e.message)
                     ORDER BY e.event_id",
                    params![mpk, spk, sweep_id],
                )
                .map_err(&e)?;
            out.push(m);
        }
        // One run per shard is what workers write; only then does the record name its run.
        if let Some(id) = ident {
            tx.execute("DELETE FROM main.shard_merges WHERE path = ?1", [&id.path])
                .map_err(&e)?;
        }
        if let (Some(id), [m]) = (ident, out.as_slice()) {
            if m.run_id == id.run_id && id.settled {
                tx.execute(
                    &format!(
                        "INSERT OR REPLACE INTO main.shard_merges (path, size, mtime_ns, worker, applied, skipped, merged_at)
                         VALUES (?1, ?2, ?3, (SELECT worker FROM main.runs WHERE run_id = ?4), ?5, ?6, {NOW})"
                    ),
                    params![id.path, id.size, id.mtime_ns, id.run_id, m.applied, m.skipped],
                )
                .map_err(&e)?;
            }
        }
        tx.commit().map_err(&e)?;
        Ok(out)
    }
}

/// What identifies a shard file's content without reading it.
#[derive(Debug, Clone)]
struct ShardIdentity {
    path: String,
    run_id: String,
    size: i64,
    mtime_ns: i64,
    /// Unchanged for [`SETTLED`] before it was looked at: a write right after the read would
    /// change its modification time (file times can be as coarse as a clock tick), so only such a
    /// shard is recorded as merged.
    settled: bool,
}

/// The main connection's page cache while merging.
const MERGE_CACHE_KIB: i64 = 256 * 1024;

/// How long a shard file must have been left alone before a merge of it is recorded.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

/// The shard's absolute path, run id (its file name), size and modification time; `None` when it
/// cannot be read or has a rollback journal beside it (a transaction in progress or left hot).
fn shard_identity(shard: &Path) -> Option<ShardIdentity> {
    let journal = format!("{}-journal", shard.display());
    if Path::new(&journal).exists() {
        return None;
    }
    let meta = std::fs::metadata(shard).ok()?;
    let mtime = meta.modified().ok()?;
    let mtime_ns = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos()
        .try_into()
        .ok()?;
    Some(ShardIdentity {
        path: std::path::absolute(shard)
            .unwrap_or_else(|_| shard.to_path_buf())
            .to_string_lossy()
            .into_owned(),
        run_id: shard.file_stem()?.to_string_lossy().into_owned(),
        size: meta.len() as i64,
        mtime_ns,
        settled: mtime.elapsed().is_ok_and(|d| d >= SETTLED),
    })
}

#[cfg(test)]
mod tests;
