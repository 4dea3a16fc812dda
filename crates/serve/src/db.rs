//! The server's database connections: read-only, opened on demand and kept for reuse, at most
//! [`READERS`] in use at a time (requests beyond that wait their turn instead of piling threads
//! onto the writer's machine).

use anyhow::Result;
use simsweep_core::store::Store;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Queries running at once.
pub const READERS: usize = 4;

pub struct Db {
    path: PathBuf,
    idle: Mutex<Vec<Store>>,
    permits: Arc<Semaphore>,
}

impl Db {
    /// Check that `path` is a results database this version reads (the first connection).
    pub fn open(path: &Path) -> Result<Db> {
        if !path.is_file() {
            return Err(simsweep_core::BadInput(format!(
                "no results database at {} (record a sweep with `simsweep plan FILE`, or choose one with --db / SIMSWEEP_DB)",
                path.display()
            ))
            .into());
        }
        let first = Store::open_readonly(path)?;
        Ok(Db {
            path: path.into(),
            idle: Mutex::new(vec![first]),
            permits: Arc::new(Semaphore::new(READERS)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on a read-only connection, inside one read transaction (one snapshot of the
    /// database for everything `f` asks), on the blocking pool.
    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T> + Send + 'static,
    {
        let permit = self.permits.clone().acquire_owned().await?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let store = match me.idle.lock().expect("pool").pop() {
                Some(s) => s,
                None => Store::open_readonly(&me.path)?,
            };
            let out = (|| {
                let tx = store.conn.unchecked_transaction()?;
                let out = f(&store.conn);
                let ended = tx.finish();
                let out = out?;
                ended?;
                Ok(out)
            })();
            // Back to the pool whatever happened (a read-only connection holds no state).
            me.idle.lock().expect("pool").push(store);
            out
        })
        .await?
    }
}
