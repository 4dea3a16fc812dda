//! The results database (SQLite): schema and migrations, planning, and reads.
//! The store knows nothing of tch or training; it stores what it is given.

pub mod shard;
pub mod summary;
pub mod writer;

use crate::spec::Sweep;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, ToSql, TransactionBehavior};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// The schema version this build reads and writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 3;

/// Migrations: entry `i` takes a database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("schema_v2.sql"),
    concat!(include_str!("schema_v3.sql"), include_str!("search.sql")),
];

/// The early-stopping board's tables (also created on their own in a Slurm sweep's `search.db`).
pub const SEARCH_SQL: &str = include_str!("search.sql");

/// How long a connection waits for another writer before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database {path}: schema version {found} is newer than this simsweep understands ({supported}); use a newer simsweep")]
    Newer {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database {path}: not a simsweep database (it has tables but no simsweep schema version); choose another --db")]
    Foreign { path: PathBuf },
    #[error("database {path}: not a SQLite database, or the file is corrupt ({reason}); it was left as it is: restore it from a copy or choose another --db")]
    Corrupt { path: PathBuf, reason: String },
    /// The OS error is part of the message, not a source (a chain would print it twice).
    #[error("database {path}: cannot create its folder {dir}: {cause}")]
    Dir {
        path: PathBuf,
        dir: PathBuf,
        cause: std::io::Error,
    },
    /// SQLite's error is part of the message, not a source (a chain would print it three times).
    #[error("database {path}: {cause}")]
    Sqlite {
        path: PathBuf,
        cause: rusqlite::Error,
    },
    #[error("database {path}: {message}")]
    Other { path: PathBuf, message: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The run statuses (docs/schema.md, "Run status"), in the order `status` lists them.
pub const STATUSES: &[&str] = &[
    "pending",
    "running",
    "done",
    "failed",
    "diverged",
    "cancelled",
    "pruned",
];

/// An open results database.
pub struct Store {
    pub conn: Connection,
    pub path: PathBuf,
}

/// What planning a sweep found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PlanSummary {
    pub sweep: String,
    pub total: usize,
    pub new: usize,
    pub pending: usize,
    pub running: usize,
    pub done: usize,
    pub failed: usize,
    pub cancelled: usize,
    /// Stopped early by the sweep's `[search]`.
    pub pruned: usize,
    /// Runs in the database that the sweep file no longer produces (kept, marked in_plan = 0).
    pub removed: usize,
    /// Status of each planned run, in plan order ("new" for runs added now).
    pub statuses: Vec<String>,
}

/// Why SQLite could not open, create or write `path`, in the operating system's words: SQLite
/// says only "unable to open database file". Any other error is [`sql_err_plain`]'s.
fn cannot_open(path: &Path, err: rusqlite::Error) -> StoreError {
    let cant_open = matches!(
        &err,
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::CannotOpen
            || f.code == rusqlite::ErrorCode::ReadOnly
            || f.code == rusqlite::ErrorCode::PermissionDenied
    );
    if !cant_open {
        return sql_err_plain(path, err);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let readonly = matches!(
        &err,
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ReadOnly
    );
    let dir_cause = || {
        probe_dir(&dir)
            .err()
            .map_or("unknown cause".into(), |io| io.to_string())
    };
    let message = if path.is_dir() {
        "it is a directory; --db names the database file".to_string()
    } else if path.exists() {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Err(io) => format!("cannot open it for writing: {io}"),
            Ok(_) if readonly => format!(
                "SQLite cannot write it: its folder {} must be writable for the journal ({})",
                dir.display(),
                dir_cause()
            ),
            Ok(_) => format!(
                "SQLite cannot open it, nor create its journal in {}: {}",
                dir.display(),
                dir_cause()
            ),
        }
    } else {
        match probe_dir(&dir) {
            Err(io) => format!("cannot create it in {}: {io}", dir.display()),
            Ok(()) => format!("SQLite cannot create it ({err})"),
        }
    };
    StoreError::Other {
        path: path.into(),
        message,
    }
}

/// Whether a file can be created in `dir` (created and removed at once).
fn probe_dir(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".simsweep-probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

/// SQLite's errors as store errors: [`cannot_open`] names why a file cannot be opened or written,
/// [`sql_err_plain`] the rest.
pub(crate) fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| cannot_open(path, source)
}

fn sql_err_plain(path: &Path, source: rusqlite::Error) -> StoreError {
    if is_corrupt(&source) {
        // SQLite's own short text ("file is not a database"); not the error as a source, whose
        // chain would repeat it.
        let reason = match &source {
            rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
            rusqlite::Error::SqliteFailure(f, None) => f.to_string(),
            other => other.to_string(),
        };
        StoreError::Corrupt {
            path: path.into(),
            reason,
        }
    } else {
        StoreError::Sqlite {
            path: path.into(),
            cause: source,
        }
    }
}

fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// Connection settings shared by every connection: WAL, a generous busy timeout, foreign keys.
pub(crate) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl Store {
    /// Open (creating if needed) and migrate the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|cause| StoreError::Dir {
                path: path.into(),
                dir: dir.into(),
                cause,
            })?;
        }
        let e = sql_err(path);
        let conn = Connection::open(path).map_err(&e)?;
        configure(&conn).map_err(&e)?;
        let mut store = Store {
            conn,
            path: path.into(),
        };
        // Refuse a newer, foreign or corrupt file before changing anything in it (even the journal mode).
        store.checked_version()?;
        if shard::rollback_journal() {
            // A Slurm worker's shard on a shared (network) filesystem: WAL needs shared memory
            // between the processes that open the file, which hosts do not share over NFS.
            let mode: String = store
                .conn
                .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
                .map_err(&e)?;
            if mode != "delete" {
                return Err(StoreError::Other {
                    path: path.into(),
                    message: format!("cannot switch to the rollback journal (got {mode})"),
                });
            }
            store
                .conn
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(&e)?;
            store.migrate()?;
            return Ok(store);
        }
        let mode = store.switch_to_wal()?;
        if mode != "wal" {
            return Err(StoreError::Other {
                path: path.into(),
                message: format!("cannot switch to WAL journal mode (got {mode}); is the file on a filesystem without shared memory?"),
            });
        }
        store
            .conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(&e)?;
        store.migrate()?;
        Ok(store)
    }

    /// Open an existing database for reading only (queries, reports). Refuses a missing file.
    pub fn open_readonly(path: &Path) -> Result<Store> {
        let e = sql_err(path);
        if !path.is_file() {
            return Err(StoreError::Other {
                path: path.into(),
                message: "no such database (run `simsweep plan` first, or pass --db)".into(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(&e)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(&e)?;
        let store = Store {
            conn,
            path: path.into(),
        };
        let v = store.checked_version()?;
        if v < SCHEMA_VERSION {
            return Err(StoreError::Other {
                path: path.into(),
                message: format!("schema version {v} is older than {SCHEMA_VERSION}; open it once read-write (e.g. `simsweep status`) to migrate"),
            });
        }
        Ok(store)
    }

    #[cfg(test)]
    fn user_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql_err(&self.path))
    }

    /// `PRAGMA journal_mode=WAL`, retried: while another connection reads a database that is
    /// still in rollback mode (a second process creating the same new file), SQLite answers
    /// SQLITE_BUSY at once without calling the busy handler, so we wait here ourselves.
    fn switch_to_wal(&self) -> Result<String> {
        let start = std::time::Instant::now();
        loop {
            match self
                .conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
            {
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::DatabaseBusy
                        && start.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                r => return r.map_err(sql_err(&self.path)),
            }
        }
    }

    /// The schema version, refusing a newer database and a non-empty file that is not ours.
    /// Version and table count are read in one statement, so one snapshot: a file another
    /// process is creating right now is either still empty or already stamped, never a
    /// "foreign" mix of the two.
    fn checked_version(&self) -> Result<i64> {
        let (v, tables) = version_and_tables(&self.conn).map_err(sql_err(&self.path))?;
        self.check_version(v, tables)?;
        Ok(v)
    }

    fn check_version(&self, v: i64, tables: i64) -> Result<()> {
        if v > SCHEMA_VERSION {
            return Err(StoreError::Newer {
                path: self.path.clone(),
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        if v == 0 && tables > 0 {
            return Err(StoreError::Foreign {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// A write transaction that takes the database's write lock at once (waiting up to
    /// [`BUSY_TIMEOUT`] for another writer), so it never fails half-way on a lock upgrade.
    fn immediate(&mut self) -> Result<rusqlite::Transaction<'_>> {
        let path = self.path.clone();
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| sql_err(&path)(source))
    }

    /// Bring the schema up to [`SCHEMA_VERSION`], one migration per transaction.
    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        let e = sql_err(&path);
        // Version 3 rebuilds `runs`, which other tables reference: foreign keys are off while
        // migrating (the pragma is a no-op inside a transaction), on again after.
        // `legacy_alter_table`: the rename does not re-check views and triggers of the user's
        // own that name `runs` (they read the new table by its name).
        self.conn
            .pragma_update(None, "foreign_keys", "OFF")
            .map_err(&e)?;
        self.conn
            .pragma_update(None, "legacy_alter_table", "ON")
            .map_err(&e)?;
        let r = self.migrate_steps();
        self.conn
            .pragma_update(None, "legacy_alter_table", "OFF")
            .map_err(&e)?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(&e)?;
        r
    }

    fn migrate_steps(&mut self) -> Result<()> {
        let path = self.path.clone();
        let e = sql_err(&path);
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(&e)?;
            // Re-read inside the write lock: another process may have migrated meanwhile.
            let (v, tables) = version_and_tables(&tx).map_err(&e)?;
            if v >= SCHEMA_VERSION || (v == 0 && tables > 0) {
                drop(tx);
                return self.check_version(v, tables);
            }
            // Version 3 drops the old `runs`, and its triggers with it: a user's own triggers on
            // runs are made again on the new table.
            let triggers: Vec<String> = if v == 2 {
                let mut st = tx
                    .prepare("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'runs' AND sql IS NOT NULL")
                    .map_err(&e)?;
                let rows = st.query_map([], |r| r.get(0)).map_err(&e)?;
                rows.collect::<rusqlite::Result<_>>().map_err(&e)?
            } else {
                Vec::new()
            };
            tx.execute_batch(MIGRATIONS[v as usize]).map_err(&e)?;
            for t in &triggers {
                tx.execute_batch(t).map_err(&e)?;
            }
            tx.pragma_update(None, "user_version", v + 1).map_err(&e)?;
            match v {
                0 => rebuild_runs_wide(&tx).map_err(&e)?,
                1 => summary::rebuild_all(&tx).map_err(&e)?,
                2 => {
                    rebuild_runs_wide(&tx).map_err(&e)?;
                    let bad: i64 = tx
                        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                            r.get(0)
                        })
                        .map_err(&e)?;
                    if bad > 0 {
                        return Err(StoreError::Other {
                            path: path.clone(),
                            message: format!("migrating to schema version 3: {bad} rows reference runs that do not exist (PRAGMA foreign_key_check); the database was left at version 2"),
                        });
                    }
                }
                _ => {}
            }
            tx.commit().map_err(&e)?;
        }
    }

    /// Record a planned sweep: insert new runs as pending, keep existing runs (and their results),
    /// mark runs the file no longer produces as out of plan. One transaction: all or nothing.
    pub fn plan(&mut self, sweep: &Sweep) -> Result<PlanSummary> {
        let path = self.path.clone();
        let e = sql_err(&path);
        let tx = self.immediate()?;
        let swept = serde_json::to_string(&sweep.swept_keys).expect("JSON");
        tx.execute(
            "INSERT INTO sweeps (name, description, file_path, file_text, swept_keys, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, strftime('%Y-%m-%dT%H:%M:%fZ','now'), strftime('%Y-%m-%dT%H:%M:%fZ','now'))
             ON CONFLICT(name) DO UPDATE SET description = excluded.description, file_path = excluded.file_path,
                file_text = excluded.file_text, swept_keys = excluded.swept_keys, updated_at = excluded.updated_at",
            params![sweep.name, sweep.description, sweep.file.display().to_string(), sweep.text, swept],
        )
        .map_err(&e)?;
        let sweep_id: i64 = tx
            .query_row(
                "SELECT sweep_id FROM sweeps WHERE name = ?1",
                [&sweep.name],
                |r| r.get(0),
            )
            .map_err(&e)?;
        let mut existing: HashMap<String, (i64, String)> = HashMap::new();
        {
            let mut st = tx
                .prepare("SELECT run_id, run_pk, status FROM runs WHERE sweep_id = ?1")
                .map_err(&e)?;
            let rows = st
                .query_map([sweep_id], |r| {
                    Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?)))
                })
                .map_err(&e)?;
            for row in rows {
                let (id, v) = row.map_err(&e)?;
                existing.insert(id, v);
            }
        }
        let mut summary = PlanSummary {
            sweep: sweep.name.clone(),
            total: sweep.runs.len(),
            ..Default::default()
        };
        {
            let mut key_ids = KeyIds::default();
            let mut ins_run = tx
                .prepare(
                    "INSERT INTO runs (run_id, sweep_id, ordinal, seed, config_json, canonical, status, in_plan, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 1, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
                )
                .map_err(&e)?;
            let mut upd_run = tx
                .prepare("UPDATE runs SET ordinal = ?2, in_plan = 1 WHERE run_pk = ?1")
                .map_err(&e)?;
            // Settings outside identity (checkpoint_every, ...) may change for runs not yet started.
            let mut upd_pending = tx
                .prepare(
                    "UPDATE runs SET config_json = ?2 WHERE run_pk = ?1 AND status = 'pending'",
                )
                .map_err(&e)?;
            let mut ins_param = tx
                .prepare(
                    "INSERT OR REPLACE INTO params (run_pk, key_id, value) VALUES (?1, ?2, ?3)",
                )
                .map_err(&e)?;
            let mut seen_pks = Vec::with_capacity(sweep.runs.len());
            for run in &sweep.runs {
                let config_json = serde_json::to_string(&run.config).expect("JSON");
                let pk = if let Some((pk, status)) = existing.get(&run.id) {
                    upd_run
                        .execute(params![pk, run.ordinal as i64])
                        .map_err(&e)?;
                    if status == "pending" {
                        upd_pending.execute(params![pk, config_json]).map_err(&e)?;
                    }
                    match status.as_str() {
                        "pending" => summary.pending += 1,
                        "running" => summary.running += 1,
                        "done" => summary.done += 1,
                        "failed" | "diverged" => summary.failed += 1,
                        "pruned" => summary.pruned += 1,
                        _ => summary.cancelled += 1,
                    }
                    summary.statuses.push(status.clone());
                    if status != "pending" {
                        seen_pks.push(*pk);
                        continue;
                    }
                    *pk
                } else {
                    ins_run
                        .execute(params![
                            run.id,
                            sweep_id,
                            run.ordinal as i64,
                            run.seed,
                            config_json,
                            run.canonical
                        ])
                        .map_err(&e)?;
                    summary.new += 1;
                    summary.statuses.push("new".into());
                    tx.last_insert_rowid()
                };
                seen_pks.push(pk);
                for (k, v) in &run.config {
                    let kid = key_ids.get(&tx, k).map_err(&e)?;
                    ins_param
                        .execute(params![pk, kid, SqlValue(v)])
                        .map_err(&e)?;
                }
            }
            let planned: std::collections::HashSet<i64> = seen_pks.into_iter().collect();
            let mut out_of_plan = tx
                .prepare("UPDATE runs SET in_plan = 0 WHERE run_pk = ?1")
                .map_err(&e)?;
            for (pk, _) in existing.values() {
                if !planned.contains(pk) {
                    out_of_plan.execute([pk]).map_err(&e)?;
                    summary.removed += 1;
                }
            }
        }
        tx.execute(
            "INSERT INTO events (at, sweep_id, kind, message, data) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?1, 'planned', ?2, ?3)",
            params![
                sweep_id,
                format!("{} runs: {} new, {} done, {} failed, {} removed", summary.total, summary.new, summary.done, summary.failed, summary.removed),
                serde_json::to_string(&summary).expect("JSON")
            ],
        )
        .map_err(&e)?;
        rebuild_runs_wide(&tx).map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(summary)
    }

    /// Runs of a sweep in plan order: (run_id, status, params of the swept keys).
    pub fn sweep_runs(&self, sweep: &str) -> Result<Vec<RunRow>> {
        let e = sql_err(&self.path);
        let mut st = self
            .conn
            .prepare(
                "SELECT r.run_pk, r.run_id, r.status, r.config_json, r.step, r.in_plan, r.error, r.worker, r.host
                 FROM runs r JOIN sweeps s ON s.sweep_id = r.sweep_id
                 WHERE s.name = ?1 ORDER BY r.in_plan DESC, r.ordinal",
            )
            .map_err(&e)?;
        let rows = st
            .query_map([sweep], |r| {
                let cfg: String = r.get(3)?;
                Ok(RunRow {
                    run_pk: r.get(0)?,
                    run_id: r.get(1)?,
                    status: r.get(2)?,
                    config: serde_json::from_str(&cfg).unwrap_or_default(),
                    step: r.get(4)?,
                    in_plan: r.get::<_, i64>(5)? != 0,
                    error: r.get(6)?,
                    worker: r.get(7)?,
                    host: r.get(8)?,
                })
            })
            .map_err(&e)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)
    }
}

/// A run claimed for execution.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub run_pk: i64,
    pub run_id: String,
    pub sweep_id: i64,
    pub ordinal: i64,
    pub config: BTreeMap<String, Value>,
    /// The `last` checkpoint (step, directory) the run continues from; its metrics after that
    /// step were removed at the claim.
    pub resume: Option<(i64, PathBuf)>,
}

/// Asked by [`Store::claim_next_with`] about each candidate (run id, settings): why its setting
/// was pruned, if it was, and the step the run itself was judged at (when the decision was its own).
pub type PrunedAsk<'a> =
    dyn FnMut(&str, &BTreeMap<String, Value>) -> Option<(String, Option<i64>)> + 'a;

/// A run [`Store::claim_next_with`] marked pruned instead of claiming it: (run_pk, run id, why).
pub type PrunedAtClaim = (i64, String, String);

/// A running run whose heartbeat is older than this is taken to be lost with its machine (unless it
/// runs under Slurm, whose own state decides). `SIMSWEEP_STALE_SECS` overrides it.
pub const STALE_AFTER_SECS: i64 = 600;

/// This process as a run's `worker`: `host:pid:start`, the start time (clock ticks since boot, from
/// /proc) telling a live process from a later one that got the same pid.
pub fn worker_id() -> String {
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let pid = std::process::id();
    format!("{host}:{pid}:{}", process_start(pid).unwrap_or(0))
}

/// A process's start time in clock ticks since boot (field 22 of /proc/PID/stat).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it follow its closing paren.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether the process a `worker` string names (`host:pid[:start]`, this host) still runs.
fn worker_alive(worker: &str) -> bool {
    let mut parts = worker.rsplitn(3, ':');
    let (a, b) = (parts.next(), parts.next());
    let (pid, start) = match (a, b, parts.next()) {
        // host:pid:start
        (Some(st), Some(pid), Some(_)) => (pid.parse::<u32>().ok(), st.parse::<u64>().ok()),
        // host:pid (databases written by older builds)
        (Some(pid), Some(_), None) => (pid.parse::<u32>().ok(), None),
        _ => (None, None),
    };
    let Some(pid) = pid else { return false };
    if pid == std::process::id() {
        return true;
    }
    match (process_start(pid), start) {
        (None, _) => false,
        (Some(now), Some(then)) if then != 0 => now == then,
        (Some(_), _) => true,
    }
}

impl Store {
    /// Atomically take the next run of `sweep` to execute (in plan order) and mark it running under
    /// `worker`: two processes never get the same run. Candidates are pending runs, cancelled runs
    /// (interrupted by Ctrl-C), and runs marked running by a process of this host that no longer
    /// exists (killed). The run's earlier metrics and checkpoints are cleared, so the new attempt's
    /// rows are the only ones.
    pub fn claim_next(
        &mut self,
        sweep: &str,
        worker: &str,
        device: &str,
        only: Option<&[String]>,
    ) -> Result<Option<Claimed>> {
        Ok(self
            .claim_next_with(sweep, worker, device, only, &mut |_, _| None)?
            .0)
    }

    /// [`Store::claim_next`], where `pruned` is asked about each candidate first (early stopping:
    /// why its setting was pruned, if it was). Such a run is not claimed but marked `pruned` in the
    /// same transaction, its rows and best checkpoint kept as they are (only its `last` checkpoint
    /// rows go), and the next candidate is taken. Returns the claim and the runs marked pruned
    /// (run_pk, run id, why).
    pub fn claim_next_with(
        &mut self,
        sweep: &str,
        worker: &str,
        device: &str,
        only: Option<&[String]>,
        pruned: &mut PrunedAsk<'_>,
    ) -> Result<(Option<Claimed>, Vec<PrunedAtClaim>)> {
        let path = self.path.clone();
        let e = sql_err(&path);
        let tx = self.immediate()?;
        let host = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Runs left `running` by a dead process of this host, or silent for longer than the
        // stale limit on another host (a lost machine), go back to the pool. Slurm tasks are
        // judged by Slurm's state instead (`merge`).
        let stale_secs = std::env::var("SIMSWEEP_STALE_SECS")
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(STALE_AFTER_SECS);
        let orphans: Vec<(i64, String, bool, bool)> = {
            let mut st = tx
                .prepare(
                    "SELECT r.run_pk, coalesce(r.worker, ''), coalesce(r.host = ?2, 0),
                            coalesce((julianday('now') - julianday(r.heartbeat_at)) * 86400.0 > ?3, 1)
                     FROM runs r JOIN sweeps s ON s.sweep_id = r.sweep_id
                     WHERE s.name = ?1 AND r.status = 'running' AND coalesce(r.worker, '') NOT LIKE 'slurm:%'",
                )
                .map_err(&e)?;
            let rows = st
                .query_map(params![sweep, host, stale_secs], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(&e)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)?
        };
        for (pk, w, local, stale) in orphans {
            let why = if local && !worker_alive(&w) {
                "ended without finishing"
            } else if !local && stale {
                "sent no heartbeat for longer than the stale limit"
            } else {
                continue;
            };
            tx.execute(
                "UPDATE runs SET status = 'cancelled', error = 'the process running it (' || ?2 || ') ' || ?3 WHERE run_pk = ?1",
                params![pk, w, why],
            )
            .map_err(&e)?;
        }
        let mut skipped = Vec::new();
        let (run_pk, run_id, sweep_id, ordinal, config) = loop {
            let row = tx
                .query_row(
                    "SELECT r.run_pk, r.run_id, r.sweep_id, r.ordinal, r.config_json FROM runs r JOIN sweeps s ON s.sweep_id = r.sweep_id
                     WHERE s.name = ?1 AND r.status IN ('pending', 'cancelled') AND r.in_plan = 1
                       AND (?2 IS NULL OR r.run_id IN (SELECT value FROM json_each(?2)))
                     ORDER BY r.ordinal LIMIT 1",
                    params![sweep, only.map(|o| serde_json::to_string(o).expect("JSON"))],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?, r.get::<_, String>(4)?)),
                )
                .optional()
                .map_err(&e)?;
            let Some((run_pk, run_id, sweep_id, ordinal, cfg)) = row else {
                tx.commit().map_err(&e)?;
                return Ok((None, skipped));
            };
            let config: BTreeMap<String, Value> =
                serde_json::from_str(&cfg).map_err(|err| StoreError::Other {
                    path: path.clone(),
                    message: format!("run {run_id}: stored config is not valid JSON: {err}"),
                })?;
            let Some((why, judged_at)) = pruned(&run_id, &config) else {
                break (run_pk, run_id, sweep_id, ordinal, config);
            };
            // Its step: the furthest of what it recorded, its rows, and the step it was judged at.
            tx.execute(
                "UPDATE runs SET status = 'pruned', error = ?2, finished_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'),
                     step = nullif(max(coalesce(step, -1), coalesce(?3, -1),
                                       coalesce((SELECT max(m.step) FROM metrics m WHERE m.run_pk = ?1), -1)), -1)
                 WHERE run_pk = ?1",
                params![run_pk, why, judged_at],
            )
            .map_err(&e)?;
            tx.execute(
                "DELETE FROM checkpoints WHERE run_pk = ?1 AND kind = 'last'",
                [run_pk],
            )
            .map_err(&e)?;
            tx.execute(
                "INSERT INTO events (at, sweep_id, run_pk, kind, message) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?1, ?2, 'pruned', ?3)",
                params![sweep_id, run_pk, why],
            )
            .map_err(&e)?;
            skipped.push((run_pk, run_id, why));
        };
        tx.execute(
            "UPDATE runs SET status = 'running', worker = ?2, host = ?3, device = ?4, code_version = ?5,
                 attempts = attempts + 1, started_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'),
                 heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'), finished_at = NULL, error = NULL, step = NULL
             WHERE run_pk = ?1",
            params![run_pk, worker, host, device, crate::code_version()],
        )
        .map_err(&e)?;
        // A `last` checkpoint whose files are complete: continue from it, and replace what was
        // logged after it. Otherwise start over with no rows.
        let resume = tx
            .query_row(
                "SELECT step, path FROM checkpoints WHERE run_pk = ?1 AND kind = 'last'",
                [run_pk],
                |r| Ok((r.get::<_, i64>(0)?, PathBuf::from(r.get::<_, String>(1)?))),
            )
            .optional()
            .map_err(&e)?
            .filter(|(_, dir)| dir.join(crate::TRAINER_STATE).is_file());
        let from = resume.as_ref().map_or(-1, |(k, _)| *k);
        let deleted = tx
            .execute(
                "DELETE FROM metrics WHERE run_pk = ?1 AND step > ?2",
                params![run_pk, from],
            )
            .map_err(&e)?;
        if deleted > 0 {
            summary::recompute_run(&tx, run_pk).map_err(&e)?;
        }
        tx.execute(
            "DELETE FROM checkpoints WHERE run_pk = ?1 AND step > ?2",
            params![run_pk, from],
        )
        .map_err(&e)?;
        if resume.is_some() {
            tx.execute(
                "UPDATE runs SET step = ?2 WHERE run_pk = ?1",
                params![run_pk, from],
            )
            .map_err(&e)?;
        }
        let how = match &resume {
            Some((k, _)) => format!("{worker} on {device}, resuming from step {k}"),
            None => format!("{worker} on {device}"),
        };
        tx.execute(
            "INSERT INTO events (at, sweep_id, run_pk, kind, message) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?1, ?2, 'started', ?3)",
            params![sweep_id, run_pk, how],
        )
        .map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok((
            Some(Claimed {
                run_pk,
                run_id,
                sweep_id,
                ordinal,
                config,
                resume,
            }),
            skipped,
        ))
    }

    /// Record how a run ended: status (`done`, `failed`, `diverged`, `cancelled`), the last step and
    /// an error text, with an event.
    pub fn finish_run(
        &mut self,
        run_pk: i64,
        status: &str,
        step: Option<i64>,
        error: Option<&str>,
    ) -> Result<()> {
        let path = self.path.clone();
        let e = sql_err(&path);
        let tx = self.immediate()?;
        tx.execute(
            "UPDATE runs SET status = ?2, step = coalesce(?3, step), error = ?4, finished_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE run_pk = ?1",
            params![run_pk, status, step, error],
        )
        .map_err(&e)?;
        if status == "done" || status == "pruned" {
            // The resumable checkpoints were removed with the run's end (a pruned run keeps
            // its best checkpoint).
            tx.execute(
                "DELETE FROM checkpoints WHERE run_pk = ?1 AND kind = 'last'",
                [run_pk],
            )
            .map_err(&e)?;
        }
        tx.execute(
            "INSERT INTO events (at, sweep_id, run_pk, kind, message) SELECT strftime('%Y-%m-%dT%H:%M:%fZ','now'), sweep_id, run_pk, ?2, ?3 FROM runs WHERE run_pk = ?1",
            params![run_pk, status, error.unwrap_or("")],
        )
        .map_err(&e)?;
        tx.commit().map_err(&e)
    }

    /// How many runs of `sweep` a runner would execute now (pending or cancelled, in the plan;
    /// restricted to `only` when given). Orphaned running runs are not counted until claimed.
    pub fn claimable(&self, sweep: &str, only: Option<&[String]>) -> Result<usize> {
        self.conn
            .query_row(
                "SELECT count(*) FROM runs r JOIN sweeps s ON s.sweep_id = r.sweep_id
                 WHERE s.name = ?1 AND r.status IN ('pending', 'cancelled') AND r.in_plan = 1
                   AND (?2 IS NULL OR r.run_id IN (SELECT value FROM json_each(?2)))",
                params![sweep, only.map(|o| serde_json::to_string(o).expect("JSON"))],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(sql_err(&self.path))
    }

    /// Start a claimed run over from step 0 (its checkpoint could not be resumed): its metrics and
    /// checkpoints are removed, `why` is logged.
    pub fn restart_run(&mut self, run_pk: i64, why: &str) -> Result<()> {
        let path = self.path.clone();
        let e = sql_err(&path);
        let tx = self.immediate()?;
        tx.execute("DELETE FROM metrics WHERE run_pk = ?1", [run_pk])
            .map_err(&e)?;
        tx.execute("DELETE FROM metric_summaries WHERE run_pk = ?1", [run_pk])
            .map_err(&e)?;
        tx.execute("DELETE FROM checkpoints WHERE run_pk = ?1", [run_pk])
            .map_err(&e)?;
        tx.execute(
            "INSERT INTO events (at, sweep_id, run_pk, kind, message) SELECT strftime('%Y-%m-%dT%H:%M:%fZ','now'), sweep_id, run_pk, 'restarted', ?2 FROM runs WHERE run_pk = ?1",
            params![run_pk, why],
        )
        .map_err(&e)?;
        tx.commit().map_err(&e)
    }

    /// Put the runs of `sweep` with one of `statuses` (e.g. failed, diverged) back to pending,
    /// so the next `run` executes them again (from their last checkpoint when they have one).
    /// Returns how many.
    pub fn requeue(&mut self, sweep: &str, statuses: &[&str]) -> Result<usize> {
        let path = self.path.clone();
        let e = sql_err(&path);
        let tx = self.immediate()?;
        let list = serde_json::to_string(statuses).expect("JSON");
        let n = tx
            .execute(
                "UPDATE runs SET status = 'pending', error = NULL
                 WHERE sweep_id = (SELECT sweep_id FROM sweeps WHERE name = ?1) AND in_plan = 1
                   AND status IN (SELECT value FROM json_each(?2))",
                params![sweep, list],
            )
            .map_err(&e)?;
        if n > 0 {
            tx.execute(
                "INSERT INTO events (at, sweep_id, kind, message) SELECT strftime('%Y-%m-%dT%H:%M:%fZ','now'), sweep_id, 'requeued', ?2 FROM sweeps WHERE name = ?1",
                params![sweep, format!("{n} runs ({}) back to pending", statuses.join(", "))],
            )
            .map_err(&e)?;
        }
        tx.commit().map_err(&e)?;
        Ok(n)
    }

    /// Record the steps a started run trains when not stopped (for the steps early stopping saved).
    pub fn set_total_steps(&self, run_pk: i64, total: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET total_steps = ?2 WHERE run_pk = ?1",
                params![run_pk, total],
            )
            .map(|_| ())
            .map_err(sql_err(&self.path))
    }

    /// Update a running run's last step and heartbeat.
    pub fn heartbeat(&self, run_pk: i64, step: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET step = ?2, heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE run_pk = ?1",
                params![run_pk, step],
            )
            .map(|_| ())
            .map_err(sql_err(&self.path))
    }
}

/// A run as stored.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub run_pk: i64,
    pub run_id: String,
    pub status: String,
    pub config: BTreeMap<String, Value>,
    pub step: Option<i64>,
    pub in_plan: bool,
    pub error: Option<String>,
    /// Who holds (or last held) the run: `host:pid`, or `slurm:<job>_<index>` for a Slurm task.
    pub worker: Option<String>,
    pub host: Option<String>,
}

/// Cache of `param_keys` ids within one transaction.
#[derive(Default)]
struct KeyIds(HashMap<String, i64>);

impl KeyIds {
    fn get(&mut self, conn: &Connection, key: &str) -> rusqlite::Result<i64> {
        if let Some(id) = self.0.get(key) {
            return Ok(*id);
        }
        conn.execute("INSERT OR IGNORE INTO param_keys (key) VALUES (?1)", [key])?;
        let id: i64 =
            conn.query_row("SELECT key_id FROM param_keys WHERE key = ?1", [key], |r| {
                r.get(0)
            })?;
        self.0.insert(key.into(), id);
        Ok(id)
    }
}

/// A JSON setting as an SQLite value: numbers and text as themselves, booleans as 0/1, lists as JSON text.
pub struct SqlValue<'a>(pub &'a Value);

impl ToSql for SqlValue<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value as V};
        Ok(ToSqlOutput::Owned(match self.0 {
            Value::Null => V::Null,
            Value::Bool(b) => V::Integer(i64::from(*b)),
            Value::Number(n) => match n.as_i64() {
                Some(i) if !n.is_f64() => V::Integer(i),
                _ => V::Real(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => V::Text(s.clone()),
            other => V::Text(other.to_string()),
        }))
    }
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `runs_wide`: one row per run, one column per key swept in any sweep (plus seed).
/// Rebuilt whenever a sweep is planned, in the same transaction.
fn rebuild_runs_wide(conn: &Connection) -> rusqlite::Result<()> {
    let mut keys: Vec<String> = Vec::new();
    {
        let mut st = conn.prepare("SELECT swept_keys FROM sweeps ORDER BY sweep_id")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        for row in rows {
            let list: Vec<String> = serde_json::from_str(&row?).unwrap_or_default();
            for k in list {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
    }
    let mut cols = String::new();
    for k in &keys {
        cols.push_str(&format!(
            ",\n    (SELECT p.value FROM params p JOIN param_keys pk ON pk.key_id = p.key_id WHERE p.run_pk = r.run_pk AND pk.key = '{}') AS {}",
            k.replace('\'', "''"),
            quote_ident(k)
        ));
    }
    conn.execute_batch(&format!(
        "DROP VIEW IF EXISTS runs_wide;
         CREATE VIEW runs_wide AS SELECT s.name AS sweep, r.run_id, r.status, r.seed{cols},
             r.step, r.in_plan, r.started_at, r.finished_at, r.host, r.device, r.error
         FROM runs r JOIN sweeps s ON s.sweep_id = r.sweep_id;"
    ))
}

#[cfg(test)]
mod tests;

/// `(user_version, number of schema objects)` read in one statement, hence from one snapshot.
fn version_and_tables(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT user_version, (SELECT count(*) FROM sqlite_master) FROM pragma_user_version",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}
