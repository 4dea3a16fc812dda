//! Benchmarks that print measured figures (run by hand; never timed in tests).

use crate::store::writer::{MetricRow, Write, Writer};
use crate::store::Store;
use anyhow::Result;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Target of the writer benchmark (issue: ≥ 200,000 rows/s on the CI-sized machine).
pub const WRITER_TARGET_ROWS_PER_S: f64 = 200_000.0;

/// Insert `rows` metric rows through the batched writer into an on-disk database and print rows/s.
pub fn writer(rows: u64, per_msg: usize, out: Option<&Path>) -> Result<()> {
    let tmp;
    let db = match out {
        Some(p) => p.to_path_buf(),
        None => {
            tmp = TempDb::new()?;
            tmp.0.join("bench.db")
        }
    };
    let mut store = Store::open(&db)?;
    // A synthetic sweep: 30 metric names, 200 runs.
    let text = "[sweep]\nname = \"bench-writer\"\nseeds = [0]\n[base]\nmodel.path = \"m\"\ndata.train = [\"t.txt\"]\n[grid]\n\"train.steps\" = [".to_string()
        + &(1..=200).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        + "]\n";
    let sweep =
        crate::spec::parse(Path::new("bench.toml"), &text).map_err(|e| anyhow::anyhow!("{e}"))?;
    store.plan(&sweep)?;
    let pks: Vec<i64> = store
        .sweep_runs("bench-writer")?
        .iter()
        .map(|r| r.run_pk)
        .collect();
    drop(store);
    let names: Vec<Arc<str>> = (0..30)
        .map(|i| Arc::from(format!("metric_{i:02}")))
        .collect();
    let writer = Writer::spawn(&db)?;
    let tx = writer.sender();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut step = 0i64;
    while sent < rows {
        let run = pks[(step as usize) % pks.len()];
        let n = (per_msg as u64).min(rows - sent) as usize;
        let batch: Vec<MetricRow> = (0..n)
            .map(|i| MetricRow {
                run_pk: run,
                step: step / pks.len() as i64,
                layer: -1,
                name: names[i % names.len()].clone(),
                value: (sent + i as u64) as f64 * 1e-3,
            })
            .collect();
        tx.send(Write::Metrics(batch))?;
        sent += n as u64;
        step += 1;
    }
    drop(tx);
    let stats = writer.finish()?;
    let secs = start.elapsed().as_secs_f64();
    let rate = stats.rows as f64 / secs;
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    println!(
        "writer benchmark: {} rows ({} per message) into {}",
        stats.rows,
        per_msg,
        db.display()
    );
    println!(
        "  time            {secs:.3} s in {} transactions",
        stats.transactions
    );
    println!("  rows/s          {rate:.0}");
    println!(
        "  target          {WRITER_TARGET_ROWS_PER_S:.0} rows/s → ratio {:.2}",
        rate / WRITER_TARGET_ROWS_PER_S
    );
    println!(
        "  database size   {:.1} MiB ({:.1} bytes/row before checkpoint)",
        size as f64 / 1048576.0,
        size as f64 / stats.rows.max(1) as f64
    );
    Ok(())
}

/// A temporary directory removed on drop.
struct TempDb(std::path::PathBuf);
impl TempDb {
    fn new() -> Result<Self> {
        let p = std::env::temp_dir().join(format!("simsweep-bench-{}", std::process::id()));
        std::fs::create_dir_all(&p)?;
        Ok(TempDb(p))
    }
}
impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
