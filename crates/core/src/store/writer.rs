//! The database writer: one thread that owns a connection, fed by a bounded channel, committing
//! whatever has queued up as one transaction (so batches grow with the load and a quiet producer
//! still sees its rows committed promptly).
//!
//! Metric rows are upserts on (run, metric, layer, step): a run resumed from a checkpoint rewrites
//! the steps after it, and every (run, metric, layer, step) appears exactly once. Each
//! transaction also brings the summaries of the (run, metric, layer)s it wrote up to date
//! ([`super::summary`]).

use super::{configure, sql_err, summary, Result, StoreError};
use rusqlite::{params, Connection, TransactionBehavior};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;

/// One metric value.
#[derive(Debug, Clone)]
pub struct MetricRow {
    pub run_pk: i64,
    pub step: i64,
    /// -1 when the value is not per layer.
    pub layer: i64,
    pub name: Arc<str>,
    pub value: f64,
}

/// A message to the writer.
#[derive(Debug)]
pub enum Write {
    Metrics(Vec<MetricRow>),
    Event {
        run_pk: Option<i64>,
        sweep_id: Option<i64>,
        kind: String,
        message: String,
        data: Option<String>,
    },
    /// Record a checkpoint (replacing the run's previous one of the same kind).
    Checkpoint {
        run_pk: i64,
        kind: String,
        step: i64,
        path: String,
        metric: Option<String>,
        value: Option<f64>,
    },
    /// Commit everything queued so far, then answer.
    Flush(SyncSender<()>),
}

/// The writer connection's page cache.
const WRITER_CACHE_KIB: i64 = 256 * 1024;

/// Most rows in one transaction.
const MAX_BATCH_ROWS: usize = 100_000;

#[derive(Debug, Clone, Copy, Default)]
pub struct WriterStats {
    pub rows: u64,
    pub transactions: u64,
}

/// Handle to the writer thread.
pub struct Writer {
    tx: Option<SyncSender<Write>>,
    handle: Option<JoinHandle<Result<WriterStats>>>,
    path: PathBuf,
}

impl Writer {
    /// Start a writer on an existing, migrated database.
    pub fn spawn(path: &Path) -> Result<Writer> {
        let e = sql_err(path);
        let conn = Connection::open(path).map_err(&e)?;
        configure(&conn).map_err(&e)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(&e)?;
        // Keep the metrics B-tree's working set in memory (negative = KiB).
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
            .map_err(&e)?;
        let (tx, rx) = sync_channel(4096);
        let p = path.to_path_buf();
        let handle = std::thread::Builder::new()
            .name("simsweep-writer".into())
            .spawn(move || run(conn, rx, &p))
            .map_err(|err| StoreError::Other {
                path: path.into(),
                message: format!("cannot start the writer thread: {err}"),
            })?;
        Ok(Writer {
            tx: Some(tx),
            handle: Some(handle),
            path: path.into(),
        })
    }

    /// A sender for producers (cloneable, usable from any thread).
    pub fn sender(&self) -> SyncSender<Write> {
        self.tx.clone().expect("writer is open")
    }

    /// Block until everything sent before this call is committed.
    pub fn flush(&self) -> Result<()> {
        let (ack_tx, ack_rx) = sync_channel(1);
        let sent = self
            .tx
            .as_ref()
            .expect("writer is open")
            .send(Write::Flush(ack_tx));
        if sent.is_err() || ack_rx.recv().is_err() {
            return Err(StoreError::Other {
                path: self.path.clone(),
                message: "the database writer stopped".into(),
            });
        }
        Ok(())
    }

    /// Commit what is queued, stop the thread, and report its totals (or its error).
    pub fn finish(mut self) -> Result<WriterStats> {
        self.tx.take();
        self.join()
    }

    fn join(&mut self) -> Result<WriterStats> {
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(StoreError::Other {
                path: self.path.clone(),
                message: "the database writer panicked".into(),
            }),
            None => Ok(WriterStats::default()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx.take();
        let _ = self.join();
    }
}

fn run(mut conn: Connection, rx: Receiver<Write>, path: &Path) -> Result<WriterStats> {
    let e = sql_err(path);
    let mut names: HashMap<Arc<str>, i64> = HashMap::new();
    let mut stats = WriterStats::default();
    let mut pending: Vec<(i64, i64, i64, i64, f64)> = Vec::new();
    let mut group: Vec<(i64, Option<f64>)> = Vec::new();
    // Blocks for the first message of each batch; ends when every sender is gone.
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&e)?;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO metrics (run_pk, metric_id, layer, step, value) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (run_pk, metric_id, layer, step) DO UPDATE SET value = excluded.value",
                )
                .map_err(&e)?;
            let mut rows_in_batch = 0usize;
            pending.clear();
            let mut msg = Some(first);
            while let Some(m) = msg.take() {
                match m {
                    Write::Metrics(rows) => {
                        for r in &rows {
                            let id = match names.get(&r.name) {
                                Some(id) => *id,
                                None => {
                                    let id = metric_id(&tx, &r.name).map_err(&e)?;
                                    names.insert(r.name.clone(), id);
                                    id
                                }
                            };
                            pending.push((r.run_pk, id, r.layer, r.step, r.value));
                        }
                        rows_in_batch += rows.len();
                    }
                    Write::Event {
                        run_pk,
                        sweep_id,
                        kind,
                        message,
                        data,
                    } => {
                        tx.execute(
                            "INSERT INTO events (at, sweep_id, run_pk, kind, message, data)
                             VALUES (strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?1, ?2, ?3, ?4, ?5)",
                            params![sweep_id, run_pk, kind, message, data],
                        )
                        .map_err(&e)?;
                    }
                    Write::Checkpoint {
                        run_pk,
                        kind,
                        step,
                        path,
                        metric,
                        value,
                    } => {
                        tx.execute(
                            "INSERT OR REPLACE INTO checkpoints (run_pk, kind, step, path, metric, value, created_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
                            params![run_pk, kind, step, path, metric, value],
                        )
                        .map_err(&e)?;
                    }
                    Write::Flush(ack) => acks.push(ack),
                }
                if rows_in_batch < MAX_BATCH_ROWS {
                    msg = match rx.try_recv() {
                        Ok(m) => Some(m),
                        Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => None,
                    };
                }
            }
            // In key order the B-tree is walked once, front to back, instead of page by page at random.
            // A stable sort keeps the last of duplicate keys last, so the latest value wins.
            pending.sort_by_key(|r| (r.0, r.1, r.2, r.3));
            let mut i = 0;
            while i < pending.len() {
                // One (run, metric, layer): its rows, then its summary, in this transaction.
                let key = (pending[i].0, pending[i].1, pending[i].2);
                group.clear();
                while i < pending.len() && (pending[i].0, pending[i].1, pending[i].2) == key {
                    let (step, value) = (pending[i].3, pending[i].4);
                    // NaN is stored as NULL (SQLite has no NaN); the run's status says why.
                    let v = value.is_finite().then_some(value);
                    match group.last_mut() {
                        Some(last) if last.0 == step => last.1 = v,
                        _ => group.push((step, v)),
                    }
                    i += 1;
                }
                for &(step, v) in &group {
                    ins.execute(params![key.0, key.1, key.2, step, v])
                        .map_err(&e)?;
                }
                summary::fold_batch(&tx, key, &group).map_err(&e)?;
            }
            stats.rows += pending.len() as u64;
        }
        tx.commit().map_err(&e)?;
        stats.transactions += 1;
        for a in acks {
            let _ = a.send(());
        }
    }
    Ok(stats)
}

fn metric_id(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT OR IGNORE INTO metric_names (name) VALUES (?1)",
        [name],
    )?;
    conn.query_row(
        "SELECT metric_id FROM metric_names WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
}
