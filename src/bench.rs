//! Benchmarks that print measured figures against a reference measured in the same invocation
//! (run by hand; never timed in tests).

use crate::store::writer::{MetricRow, Write, Writer};
use crate::store::Store;
use anyhow::Result;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Target of the writer benchmark: ≥ 200,000 rows/s on the CI-sized machine.
pub const WRITER_TARGET_ROWS_PER_S: f64 = 200_000.0;

/// Insert `rows` metric rows through the batched writer into an on-disk database and print rows/s,
/// next to a reference: the same rows written as a plain logging loop would (one transaction per
/// step, rows in arrival order).
pub fn writer(rows: u64, per_msg: usize, out: Option<&Path>) -> Result<()> {
    let tmp;
    let db = match out {
        Some(p) => p.to_path_buf(),
        None => {
            tmp = TempDir::new()?;
            tmp.0.join("bench.db")
        }
    };
    let ref_db = db.with_extension("reference.db");
    let _ = std::fs::remove_file(&ref_db);
    // A synthetic sweep of 200 runs, planned into both databases.
    let text = "[sweep]\nname = \"bench-writer\"\nseeds = [0]\n[base]\nmodel.path = \"m\"\ndata.train = [\"t.txt\"]\n[grid]\n\"train.steps\" = [".to_string()
        + &(1..=200).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        + "]\n";
    let sweep =
        crate::spec::parse(Path::new("bench.toml"), &text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut store = Store::open(&db)?;
    store.plan(&sweep)?;
    let pks: Vec<i64> = store
        .sweep_runs("bench-writer")?
        .iter()
        .map(|r| r.run_pk)
        .collect();
    drop(store);
    Store::open(&ref_db)?.plan(&sweep)?;

    // The workload: 200 runs training side by side, each step logging `per_msg` metrics.
    let names: Vec<Arc<str>> = (0..30)
        .map(|i| Arc::from(format!("metric_{i:02}")))
        .collect();
    let messages = || {
        let mut out = Vec::new();
        let (mut sent, mut step) = (0u64, 0usize);
        while sent < rows {
            let n = (per_msg as u64).min(rows - sent) as usize;
            out.push(
                (0..n)
                    .map(|i| MetricRow {
                        run_pk: pks[step % pks.len()],
                        step: (step / pks.len()) as i64,
                        layer: -1,
                        name: names[i % names.len()].clone(),
                        value: (sent + i as u64) as f64 * 1e-3,
                    })
                    .collect::<Vec<_>>(),
            );
            sent += n as u64;
            step += 1;
        }
        out
    };

    // Reference.
    let mut conn = rusqlite::Connection::open(&ref_db)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    for (i, n) in names.iter().enumerate() {
        conn.execute(
            "INSERT INTO metric_names (metric_id, name) VALUES (?1, ?2)",
            rusqlite::params![i as i64 + 1, n.as_ref()],
        )?;
    }
    let msgs = messages();
    let start = Instant::now();
    for m in &msgs {
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO metrics (run_pk, metric_id, layer, step, value) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (i, r) in m.iter().enumerate() {
                st.execute(rusqlite::params![
                    r.run_pk,
                    (i % names.len()) as i64 + 1,
                    r.layer,
                    r.step,
                    r.value
                ])?;
            }
        }
        tx.commit()?;
    }
    let ref_secs = start.elapsed().as_secs_f64();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", ref_db.display()));
    }
    let ref_rate = rows as f64 / ref_secs;

    // simsweep's writer.
    let msgs = messages();
    let writer = Writer::spawn(&db)?;
    let tx = writer.sender();
    let start = Instant::now();
    for m in msgs {
        tx.send(Write::Metrics(m))?;
    }
    drop(tx);
    let stats = writer.finish()?;
    let secs = start.elapsed().as_secs_f64();
    let rate = stats.rows as f64 / secs;
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(format!("{}-wal", db.display()))
            .map(|m| m.len())
            .unwrap_or(0);
    println!(
        "writer benchmark: {} rows ({per_msg} per message, 200 runs interleaved) into {}",
        stats.rows,
        db.display()
    );
    println!(
        "  simsweep writer {rate:.0} rows/s ({secs:.3} s, {} transactions)",
        stats.transactions
    );
    println!("  reference       {ref_rate:.0} rows/s ({ref_secs:.3} s; one transaction per step, arrival order)");
    println!("  ratio           {:.2} × reference; {:.2} × target of {WRITER_TARGET_ROWS_PER_S:.0} rows/s", rate / ref_rate, rate / WRITER_TARGET_ROWS_PER_S);
    println!(
        "  on disk         {:.1} MiB ({:.1} bytes/row)",
        size as f64 / 1048576.0,
        size as f64 / stats.rows.max(1) as f64
    );
    Ok(())
}

/// A temporary directory removed on drop.
use simsweep_core::scratch::TempDir;

/// Probe cost: run the sweep file's runs into a fresh database (in the temp directory) and print,
/// per run and in total, the seconds spent probing (`probe_seconds`, summed) against the run's wall
/// time (claim to finish, evaluation included). Target: ≤ 5 % with the default schedule.
pub fn probe_cost(
    file: &Path,
    data_dir: &Path,
    device: simsweep_core::device::Device,
) -> Result<f64> {
    let sweep = crate::spec::load(file).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::spec::check_paths(&sweep, data_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tmp = TempDir::new()?;
    let db = tmp.0.join("bench-probe.db");
    Store::open(&db)?.plan(&sweep)?;
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let totals = crate::exec::local::run_sweep(
        &sweep,
        &db,
        data_dir,
        &crate::exec::local::ExecOptions::on(device),
        &cancel,
    )?;
    if totals.done == 0 {
        anyhow::bail!("no run finished");
    }
    let conn = rusqlite::Connection::open(&db)?;
    let mut st = conn.prepare(
        "SELECT r.run_id,
                (julianday(r.finished_at) - julianday(r.started_at)) * 86400.0,
                (SELECT sum(value) FROM metric_values v WHERE v.run_id = r.run_id AND v.metric = 'probe_seconds'),
                (SELECT count(*) FROM metric_values v WHERE v.run_id = r.run_id AND v.metric = 'probe_seconds'),
                r.step
         FROM runs r WHERE r.status = 'done' ORDER BY r.ordinal",
    )?;
    let rows: Vec<(String, f64, f64, i64, i64)> = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get::<_, Option<f64>>(2)?.unwrap_or(0.0),
                r.get(3)?,
                r.get(4)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    println!("probe cost benchmark: {} on {}", file.display(), device);
    let (mut wall, mut probe) = (0.0, 0.0);
    for (id, w, p, n, steps) in &rows {
        println!(
            "  {id}  {steps} steps  run {w:8.1} s  probes {p:6.2} s ({n} probes)  share {:.2} %",
            100.0 * p / w
        );
        wall += w;
        probe += p;
    }
    let share = probe / wall;
    println!(
        "  total            run {wall:8.1} s  probes {probe:6.2} s  share {:.2} % (target ≤ 5 %)",
        100.0 * share
    );
    Ok(share)
}

/// Metric names of the synthetic query database, realistic first (step metrics, the STS-B dev
/// score, probe metrics, the spectrum), then `metric_NN`.
fn synthetic_metric_names(n: usize) -> Vec<String> {
    let step: Vec<&str> = simsweep_core::metrics::step_metrics().collect();
    let mut names: Vec<String> = step[..1]
        .iter()
        .chain(&["stsb_dev"])
        .chain(&step[1..])
        .chain(&[
            "alignment",
            "uniformity",
            "token_anisotropy",
            "sentence_anisotropy",
            "effective_rank",
            "isotropy_partition",
            "mean_sentence_norm",
            "centroid_norm",
            "rogue_top1_share",
            "self_similarity",
            "intra_sentence_similarity",
            "mean_token_norm",
        ])
        .map(|s| s.to_string())
        .collect();
    names.extend((1..=64).map(|i| format!("sv_{i:02}")));
    let mut i = 0;
    while names.len() < n {
        names.push(format!("metric_{i:02}"));
        i += 1;
    }
    names.truncate(n);
    names
}

/// The sweep of the query benchmark: temperature × pooling × seeds giving exactly `runs` runs
/// (4 seeds when `runs` divides by 4, up to 5 poolers, the rest temperatures).
fn query_bench_sweep(runs: usize, metrics: usize, steps: usize) -> Result<crate::spec::Sweep> {
    let seeds = if runs.is_multiple_of(4) { 4 } else { 1 };
    let per_seed = runs / seeds;
    let poolers = (1..=crate::spec::schema::POOLERS.len())
        .rev()
        .find(|p| per_seed.is_multiple_of(*p))
        .unwrap_or(1);
    let temps = per_seed / poolers;
    let list = |v: Vec<String>| v.join(", ");
    let text = format!(
        "[sweep]\nname = \"bench-query\"\ndescription = \"synthetic: {runs} runs × {metrics} metrics × {steps} steps\"\nseeds = [{}]\n[base]\nmodel.path = \"m\"\ndata.train = [\"t.txt\"]\ntrain.steps = {steps}\n[grid]\n\"train.temperature\" = [{}]\n\"model.pooling\" = [{}]\n",
        list((1..=seeds).map(|s| s.to_string()).collect()),
        list((1..=temps).map(|t| format!("{}", t as f64 / 100.0)).collect()),
        list(
            crate::spec::schema::POOLERS[..poolers]
                .iter()
                .map(|p| format!("\"{p}\""))
                .collect()
        ),
    );
    crate::spec::parse(Path::new("bench-query.toml"), &text).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Whether `db` already holds the finished benchmark sweep `sweep` (same description, every run done).
fn query_bench_ready(db: &Path, sweep: &crate::spec::Sweep) -> Result<bool> {
    let store = Store::open_readonly(db)?;
    let names = crate::query::sweep_names(&store.conn)?;
    if names.iter().any(|n| n != "bench-query") {
        anyhow::bail!(
            "{} holds other sweeps ({}); the query benchmark only reuses or replaces its own database (choose another --out)",
            db.display(),
            names.join(", ")
        );
    }
    let (desc, done): (Option<String>, i64) = store.conn.query_row(
        "SELECT (SELECT description FROM sweeps WHERE name = 'bench-query'),
                (SELECT count(*) FROM runs r JOIN sweeps s ON s.sweep_id = r.sweep_id
                 WHERE s.name = 'bench-query' AND r.status = 'done')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(desc.as_deref() == Some(sweep.description.as_str()) && done as usize == sweep.runs.len())
}

/// The sizes `bench query` measures: a lab's 12 M rows, and with `--large` 300 M (2,500 runs ×
/// 30 metrics × 4,000 steps, about 8 GB).
pub const QUERY_SIZES: [(usize, usize, usize); 2] = [(200, 30, 2000), (2500, 30, 4000)];

/// Targets of the query benchmark (issue "the results store at lab scale"), at every size:
/// `best`, `best --mode final` and `runs` as whole processes, a learning curve in-process, and
/// bytes per row on disk.
pub const QUERY_PROCESS_TARGET_S: f64 = 0.2;
pub const CURVE_TARGET_S: f64 = 0.05;
pub const BYTES_PER_ROW_TARGET: f64 = 26.0;

/// Query speed at each of `sizes` (runs × metrics × steps): [`query_size`] on a database in `dir`
/// named after the size (or `out` when one size is measured).
pub fn query(sizes: &[(usize, usize, usize)], dir: &Path, out: Option<&Path>) -> Result<()> {
    for (i, &(runs, metrics, steps)) in sizes.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let db = match out {
            Some(p) => p.to_path_buf(),
            None => dir.join(format!("simsweep-bench-query-{runs}x{metrics}x{steps}.db")),
        };
        query_size(runs, metrics, steps, &db)?;
    }
    Ok(())
}

/// Query speed: build (once) a synthetic database of `runs` × `metrics` × `steps` rows through
/// the metric writer, then time the commands behind `best`, `best --mode final`, `runs`, one run's
/// learning curve and an export, in-process and as whole processes (start-up included), against
/// the targets above.
pub fn query_size(runs: usize, metrics: usize, steps: usize, db: &Path) -> Result<()> {
    use crate::query::{self as q, Selection};
    let db = db.to_path_buf();
    let sweep = query_bench_sweep(runs, metrics, steps)?;
    let rows = (runs * metrics * steps) as u64;
    println!(
        "query benchmark: {runs} runs × {metrics} metrics × {steps} steps = {rows} rows in {}",
        db.display()
    );
    let size = |p: &Path| {
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(format!("{}-wal", p.display()))
                .map(|m| m.len())
                .unwrap_or(0)
    };
    if db.exists() && query_bench_ready(&db, &sweep)? {
        println!(
            "  database  reused ({:.1} MiB; remove the file to rebuild)",
            size(&db) as f64 / 1048576.0
        );
    } else {
        // A file left by an interrupted build (or another size): start again.
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let mut store = Store::open(&db)?;
        store.plan(&sweep)?;
        let planned = store.sweep_runs("bench-query")?;
        let names: Vec<Arc<str>> = synthetic_metric_names(metrics)
            .into_iter()
            .map(Arc::from)
            .collect();
        let start = Instant::now();
        let writer = Writer::spawn(&db)?;
        let tx = writer.sender();
        for (i, run) in planned.iter().enumerate() {
            let t = run.config["train.temperature"].as_f64().unwrap_or(0.05);
            let pool = crate::spec::schema::POOLERS
                .iter()
                .position(|p| run.config["model.pooling"] == *p)
                .unwrap_or(0) as f64;
            // A plausible STS-B dev curve: peak near τ = 0.05, a little per pooler and seed.
            let peak = 60.0
                + 15.0 * (-(t / 0.05).ln().powi(2)).exp()
                + pool
                + 1.5 * crate::plot::synthetic::noise(i as u64, 0, 0);
            for step in 1..=steps {
                let s = step as f64;
                let rows: Vec<MetricRow> = names
                    .iter()
                    .enumerate()
                    .map(|(m, name)| {
                        let e = crate::plot::synthetic::noise(i as u64, m as u64, step as u64);
                        let value = match &**name {
                            "loss" => 4.0 * (-s / 400.0).exp() + 0.5 + 0.05 * e,
                            "stsb_dev" => peak * (1.0 - (-s / 300.0).exp()) + 0.3 * e,
                            "lr" => 3e-5 * (1.0 - s / steps as f64),
                            _ => (1.0 + m as f64).recip() * (1.0 + 0.1 * e) * (-s / 1000.0).exp(),
                        };
                        MetricRow {
                            run_pk: run.run_pk,
                            step: step as i64,
                            layer: -1,
                            name: name.clone(),
                            value,
                        }
                    })
                    .collect();
                tx.send(Write::Metrics(rows))?;
            }
        }
        drop(tx);
        let stats = writer.finish()?;
        for run in &planned {
            store.finish_run(run.run_pk, "done", Some(steps as i64), None)?;
        }
        store
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        drop(store);
        let secs = start.elapsed().as_secs_f64();
        println!(
            "  database  built in {secs:.1} s: {:.0} rows/s through the writer ({} transactions)",
            stats.rows as f64 / secs,
            stats.transactions,
        );
    }
    let bytes = size(&db);
    let per_row = bytes as f64 / rows.max(1) as f64;
    let summaries: i64 =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?
            .query_row(
                "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = 'metric_summaries'",
                [],
                |r| r.get(0),
            )?;
    println!(
        "  on disk   {:.1} MiB, {per_row:.2} bytes/row, of which the summaries {:.3} bytes/row ({:.1} MiB)",
        bytes as f64 / 1048576.0,
        summaries as f64 / rows.max(1) as f64,
        summaries as f64 / 1048576.0
    );

    let store = Store::open_readonly(&db)?;
    let c = &store.conn;
    let sw = q::sweep(c, "bench-query")?;
    let done = Selection::default().with_statuses(&["done"]);
    let best_of = |metric: &str, mode: q::Mode| q::BestQuery {
        metric: metric.into(),
        layer: -1,
        mode,
        goal: None,
        by: None,
        level: 0.95,
    };
    // One run in the middle of the sweep, for its learning curve.
    let all = q::select_runs(c, &sw, &Selection::default())?;
    let one = all[all.len() / 2].clone();
    let stsb = q::metric(c, "stsb_dev")?;
    let dbs = db.display().to_string();
    let one_where: Vec<String> = ["train.temperature", "model.pooling", "seed"]
        .iter()
        .map(|k| format!("{k}={}", json_text(&one.param(k))))
        .collect();
    let mut export_one: Vec<String> = ["export", "bench-query", "--metrics", "stsb_dev"]
        .map(String::from)
        .to_vec();
    for w in &one_where {
        export_one.extend(["--where".to_string(), w.clone()]);
    }
    let words = |s: &[&str]| s.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    // Each entry: what is timed, a closure that does it once in-process and says what it
    // produced, the same command's arguments as a process (if it has one), and its target as a
    // process (or, for the curve, in-process).
    type InProcess<'a> = Box<dyn Fn() -> Result<String> + 'a>;
    struct Timed<'a> {
        what: &'a str,
        run: Option<InProcess<'a>>,
        args: Option<Vec<String>>,
        target: Option<f64>,
    }
    let timed: Vec<Timed> = vec![
        Timed {
            what: "best --metric stsb_dev (max over steps)",
            run: Some(Box::new(|| {
                let b = q::best(c, &sw, &done, &best_of("stsb_dev", q::Mode::Best))?;
                Ok(format!(
                    "{} groups, best mean {:.2}",
                    b.groups.len(),
                    b.groups[0].stats.map_or(f64::NAN, |s| s.mean)
                ))
            })),
            args: Some(words(&["best", "bench-query", "--metric", "stsb_dev"])),
            target: Some(QUERY_PROCESS_TARGET_S),
        },
        Timed {
            what: "reference: the same best values by scanning rows",
            run: Some(Box::new(|| {
                // What `best` read before the summaries (4492503): per run, the best value from
                // an ordered scan of its rows of the metric.
                let runs = q::select_runs(c, &sw, &done)?;
                let mut st = c.prepare(
                    "SELECT step, value FROM metrics WHERE run_pk = ?1 AND metric_id = ?2 AND layer = -1
                     AND value IS NOT NULL ORDER BY value DESC, step LIMIT 1",
                )?;
                let mut n = 0;
                for r in &runs {
                    n += st.exists(rusqlite::params![r.run_pk, stsb.id])? as usize;
                }
                Ok(format!("{n} runs"))
            })),
            args: None,
            target: None,
        },
        Timed {
            what: "best --metric loss --mode final",
            run: Some(Box::new(|| {
                let b = q::best(c, &sw, &done, &best_of("loss", q::Mode::Final))?;
                Ok(format!("{} groups", b.groups.len()))
            })),
            args: Some(words(&[
                "best",
                "bench-query",
                "--metric",
                "loss",
                "--mode",
                "final",
            ])),
            target: Some(QUERY_PROCESS_TARGET_S),
        },
        Timed {
            what: "runs (headline scores; the dashboard's run table)",
            run: Some(Box::new(|| {
                let t = q::runs_table(c, &sw, &Selection::default())?;
                Ok(format!("{} runs", t.runs.len()))
            })),
            args: Some(words(&["runs", "bench-query"])),
            target: Some(QUERY_PROCESS_TARGET_S),
        },
        Timed {
            what: "one run's stsb_dev curve (process: export --where)",
            run: Some(Box::new(|| {
                let v = q::run_series(c, one.run_pk, &stsb, -1)?;
                Ok(format!("{} points", v.len()))
            })),
            args: Some(export_one),
            target: Some(CURVE_TARGET_S),
        },
        Timed {
            what: "export --metrics stsb_dev (csv, every run)",
            run: Some(Box::new(|| {
                let mut sink = CountingSink(0);
                let eq = q::ExportQuery {
                    format: q::ExportFormat::Csv,
                    metrics: vec!["stsb_dev".into()],
                    layer: -1,
                    all_params: false,
                };
                let st = q::export(c, &sw, &Selection::default(), &eq, &mut sink)?;
                Ok(format!(
                    "{} lines, {:.1} MiB",
                    st.lines,
                    sink.0 as f64 / 1048576.0
                ))
            })),
            args: None,
            target: None,
        },
        Timed {
            what: "--version (the front's start-up alone)",
            run: None,
            args: Some(vec!["--version".into()]),
            target: None,
        },
    ];
    let exe = std::env::current_exe()?;
    let process = |args: &[String]| -> Result<String> {
        let mut cmd = std::process::Command::new(&exe);
        if args[0] != "--version" {
            cmd.args(["--db", &dbs]);
        }
        let out = cmd.args(args).output()?;
        anyhow::ensure!(
            out.status.success(),
            "simsweep {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(format!(
            "{} lines of output",
            out.stdout.iter().filter(|&&b| b == b'\n').count()
        ))
    };
    let three = |f: &dyn Fn() -> Result<String>| -> Result<(f64, f64, String)> {
        let mut times = Vec::new();
        let mut said = String::new();
        for _ in 0..3 {
            let start = Instant::now();
            said = f()?;
            times.push(start.elapsed().as_secs_f64());
        }
        Ok((
            times[0],
            times.iter().copied().fold(f64::INFINITY, f64::min),
            said,
        ))
    };
    let width = timed
        .iter()
        .map(|t| t.what.chars().count())
        .max()
        .unwrap_or(0);
    let mut verdicts = Vec::new();
    let mut best_in = f64::NAN;
    println!("  (seconds: first call, fastest of 3)");
    for t in &timed {
        let mut line = format!("  {:<width$}", t.what);
        let mut curve_in = None;
        if let Some(f) = &t.run {
            let (first, fastest, said) = three(f.as_ref())?;
            line += &format!("  in-process {first:.3} / {fastest:.3}  ({said})");
            curve_in = Some(first);
            if t.what.starts_with("best --metric stsb_dev") {
                best_in = fastest;
            }
            if t.what.starts_with("reference") {
                line += &format!("  → summaries {:.0}× faster", fastest / best_in);
            }
        }
        if let Some(args) = &t.args {
            let (first, fastest, _) = three(&|| process(args))?;
            line += &format!("  as a process {first:.3} / {fastest:.3}");
            match t.target {
                Some(target) if t.what.starts_with("one run") => {
                    let v = curve_in.unwrap_or(first);
                    verdicts.push(format!(
                        "curve in-process {v:.3} s ≤ {target} s: {}",
                        if v <= target { "met" } else { "NOT met" }
                    ));
                }
                Some(target) => {
                    let name = t.what.split(" (").next().unwrap_or(t.what);
                    verdicts.push(format!(
                        "{name} as a process {first:.3} s ≤ {target} s: {}",
                        if first <= target { "met" } else { "NOT met" }
                    ));
                }
                None => {}
            }
        }
        println!("{line}");
    }
    verdicts.push(format!(
        "{per_row:.2} bytes/row ≤ {BYTES_PER_ROW_TARGET}: {}",
        if per_row <= BYTES_PER_ROW_TARGET {
            "met"
        } else {
            "NOT met"
        }
    ));
    for v in verdicts {
        println!("  target    {v}");
    }
    Ok(())
}

/// A setting as `--where` takes it (strings bare, numbers as JSON writes them).
fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Counts the bytes written to it.
struct CountingSink(u64);
impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Target of the chart benchmark: a learning-curve chart, and the best value of every run, each
/// in under 1 s on the 200-run × 30-metric × 2,000-step database (12 M rows).
pub const PLOT_TARGET_S: f64 = 1.0;

/// Chart speed on a synthetic database of 200 runs × 30 step metrics × 2,000 steps (12 M rows,
/// [`crate::plot::synthetic::Synthetic::bench`]): prints the time to read the sweep, build a
/// learning-curve figure (200 series of 2,000 points), render it to PNG and to SVG, and compute
/// every run's best `stsb_dev` and `loss`; then the wall time of the whole `simsweep plot`
/// command, next to the process start-up alone (`simsweep --version`; the front loads no libtorch).
/// `out`: keep the database there (reused when it already holds the sweep).
pub fn plot(out: Option<&Path>) -> Result<()> {
    use crate::plot::{self, charts, data, synthetic, Kind, Mode, Request};
    let (_tmp, db) = chart_bench_db(out, "bench-plot.db")?;
    let spec = synthetic::Synthetic::bench();
    let store = Store::open_readonly(&db)?;
    let rows: i64 = store
        .conn
        .query_row("SELECT count(*) FROM metrics", [], |r| r.get(0))?;
    println!(
        "chart benchmark: {} ({rows} metric rows, {:.0} MiB)",
        db.display(),
        std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0
    );
    let t = Instant::now();
    let sweep = data::SweepData::load(&store.conn, &spec.name)?;
    let t_load = t.elapsed().as_secs_f64();
    let mut req = Request::new(Kind::Curves);
    req.metric = Some("loss".into());
    req.color_by = Some("train.temperature".into());
    req.facet_by = Some("model.pooling".into());
    let t = Instant::now();
    let fig = charts::figure(&store.conn, &sweep, &req)?;
    let t_fig = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let png = plot::render_bytes(&fig, None, plot::Format::Png)?;
    let t_png = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let svg = plot::render_bytes(&fig, None, plot::Format::Svg)?;
    let t_svg = t.elapsed().as_secs_f64();
    let mut best = Vec::new();
    for metric in ["stsb_dev", "loss"] {
        let t = Instant::now();
        let id = data::require_metric(&store.conn, &sweep, metric, data::Layers::Own)?;
        let mut n = 0;
        for r in &sweep.runs {
            n += usize::from(data::run_score(&store.conn, r.pk, id, metric, Mode::Best)?.is_some());
        }
        best.push((metric, n, t.elapsed().as_secs_f64()));
    }
    let series = fig.panels.iter().map(|p| p.series.len()).sum::<usize>();
    println!("  read the sweep (200 runs)           {t_load:.3} s");
    println!("  curves figure: {series} seed-mean lines of 4 seeds, 2,000 steps each, read and aggregated  {t_fig:.3} s");
    println!(
        "  render PNG ({} KiB)                 {t_png:.3} s",
        png.len() / 1024
    );
    println!(
        "  render SVG ({} KiB)                 {t_svg:.3} s",
        svg.len() / 1024
    );
    let chart_png = t_fig + t_png;
    println!(
        "  one learning-curve chart (read + PNG) {chart_png:.3} s ({} the {PLOT_TARGET_S} s target)",
        if chart_png < PLOT_TARGET_S {
            "within"
        } else {
            "OVER"
        }
    );
    for (metric, n, secs) in &best {
        println!(
            "  best {metric} of {n} runs              {secs:.3} s ({} the {PLOT_TARGET_S} s target)",
            if *secs < PLOT_TARGET_S {
                "within"
            } else {
                "OVER"
            }
        );
    }
    // The whole command, as a user runs it.
    let exe = std::env::current_exe()?;
    let img = db.with_extension("curves.png");
    let t = Instant::now();
    let st = std::process::Command::new(&exe)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()?;
    let t_start = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let st2 = std::process::Command::new(&exe)
        .args(["--db"])
        .arg(&db)
        .args([
            "plot",
            &spec.name,
            "--kind",
            "curves",
            "--metric",
            "loss",
            "--color-by",
            "train.temperature",
            "--facet-by",
            "model.pooling",
            "-o",
        ])
        .arg(&img)
        .stdout(std::process::Stdio::null())
        .status()?;
    let t_cmd = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&img);
    if !st.success() || !st2.success() {
        anyhow::bail!("the simsweep commands failed");
    }
    println!("  `simsweep plot … -o curves.png`, wall  {t_cmd:.3} s, of which process start-up (`simsweep --version`, the front alone) {t_start:.3} s");
    Ok(())
}

/// The synthetic 12 M-row database of `bench plot` and `bench serve`: at `out` (reused when it
/// already holds the sweep), else in a temporary folder (returned, to keep it alive).
fn chart_bench_db(out: Option<&Path>, file: &str) -> Result<(Option<TempDir>, std::path::PathBuf)> {
    use crate::plot::{data, synthetic};
    let (tmp, db) = match out {
        Some(p) => (None, p.to_path_buf()),
        None => {
            let t = TempDir::new()?;
            let db = t.0.join(file);
            (Some(t), db)
        }
    };
    let spec = synthetic::Synthetic::bench();
    let exists = db.is_file()
        && Store::open_readonly(&db)
            .ok()
            .and_then(|s| data::SweepData::load(&s.conn, &spec.name).ok())
            .is_some_and(|d| d.runs.len() == 200);
    if !exists {
        let start = Instant::now();
        synthetic::write(&db, &spec)?;
        println!(
            "built {} in {:.1} s",
            db.display(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok((tmp, db))
}

/// One GET on loopback through the server crate's client: status and body.
fn http_get(url: &str, path: &str) -> Result<(u16, Vec<u8>)> {
    let a = crate::serve::client::get(url, path)?;
    Ok((a.status, a.body))
}

/// Targets of `bench serve` (issue: the sweep page's data under 1 s, one curve under 100 ms).
const SERVE_PAGE_TARGET_S: f64 = 1.0;
const SERVE_CURVE_TARGET_S: f64 = 0.1;

/// Dashboard speed on the 12 M-row synthetic database: the requests the sweep page makes when it
/// opens (runs, the sweep, six charts), cold and warm, and one run's curve, through the server on
/// loopback; next to `simsweep runs --format json` as a whole process on the same database.
pub fn serve(out: Option<&Path>, data_dir: &Path) -> Result<()> {
    let (_tmp, db) = chart_bench_db(out, "bench-serve.db")?;
    let bytes = std::fs::metadata(&db)?.len();
    let server = crate::serve::Background::start(&db)?;
    let sweep = crate::plot::synthetic::Synthetic::bench().name;
    println!(
        "dashboard benchmark: {} ({:.0} MiB, 200 runs × 30 metrics × 2,000 steps), server at {}",
        db.display(),
        bytes as f64 / 1048576.0,
        server.url
    );
    let get = |path: &str| -> Result<(f64, usize)> {
        let t = Instant::now();
        let (status, body) = http_get(&server.url, path)?;
        let secs = t.elapsed().as_secs_f64();
        if status != 200 {
            anyhow::bail!("{path}: HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok((secs, body.len()))
    };
    let page: Vec<String> = {
        let s = format!("/api/sweeps/{sweep}");
        let mut v = vec![format!("{s}/runs"), s.clone()];
        for kind in [
            "curves",
            "final",
            "align-uniform",
            "spectrum",
            "gradients",
            "parallel",
        ] {
            let metric = if matches!(kind, "curves" | "final" | "parallel") {
                "&metric=stsb_dev"
            } else {
                ""
            };
            let mode = if matches!(kind, "final" | "parallel") {
                "&mode=best"
            } else {
                ""
            };
            v.push(format!("{s}/figures/{kind}?{metric}{mode}"));
        }
        // The learning curves of a step metric (every step of 200 runs), as the metric menu gives.
        v.push(format!("{s}/figures/curves?metric=loss"));
        v
    };
    // (seconds in all, bytes, seconds per request)
    type PageLoad = (f64, usize, Vec<(String, f64)>);
    let load_page = || -> Result<PageLoad> {
        let t = Instant::now();
        let mut total = 0;
        let mut each = Vec::new();
        for p in &page {
            let (secs, n) = get(p)?;
            total += n;
            each.push((p.clone(), secs));
        }
        Ok((t.elapsed().as_secs_f64(), total, each))
    };
    let (cold, size, each) = load_page()?;
    let mut warm: Vec<f64> = (0..5)
        .map(|_| load_page().map(|x| x.0))
        .collect::<Result<_>>()?;
    warm.sort_by(f64::total_cmp);
    println!(
        "  the sweep page's data ({} requests, {} KiB of JSON), one after another:",
        page.len(),
        size / 1024
    );
    for (p, secs) in &each {
        println!("    {secs:.3} s  {p}");
    }
    let verdict = |s: f64, target: f64| if s < target { "within" } else { "OVER" };
    println!(
        "    first load {cold:.3} s; warm, median of 5: {:.3} s ({} the {SERVE_PAGE_TARGET_S} s target)",
        warm[2],
        verdict(warm[2].max(cold), SERVE_PAGE_TARGET_S)
    );
    let store = Store::open_readonly(&db)?;
    let run_id: String = store.conn.query_row(
        "SELECT run_id FROM runs ORDER BY ordinal LIMIT 1 OFFSET 117",
        [],
        |r| r.get(0),
    )?;
    for (label, q) in [
        ("2,000 points, every one", "?max_points=0"),
        ("thinned to 500 points", "?max_points=500"),
    ] {
        let path = format!("/api/runs/{run_id}/metrics/loss{q}");
        let mut t: Vec<f64> = (0..21)
            .map(|_| get(&path).map(|x| x.0))
            .collect::<Result<_>>()?;
        t.sort_by(f64::total_cmp);
        println!(
            "  one curve ({label}): median of 21 {:.4} s, slowest {:.4} s ({} the {SERVE_CURVE_TARGET_S} s target)",
            t[10],
            t[20],
            verdict(t[20], SERVE_CURVE_TARGET_S)
        );
    }
    // The CLI on the same database, as a whole process: the reference of this invocation.
    let exe = std::env::current_exe()?;
    let mut cli: Vec<f64> = (0..5)
        .map(|_| -> Result<f64> {
            let t = Instant::now();
            let st = std::process::Command::new(&exe)
                .arg("--db")
                .arg(&db)
                .args(["runs", &sweep, "--format", "json"])
                .stdout(std::process::Stdio::null())
                .status()?;
            if !st.success() {
                anyhow::bail!("simsweep runs failed");
            }
            Ok(t.elapsed().as_secs_f64())
        })
        .collect::<Result<_>>()?;
    cli.sort_by(f64::total_cmp);
    let runs_req: Vec<f64> = (0..5)
        .map(|_| get(&page[0]).map(|x| x.0))
        .collect::<Result<_>>()?;
    let mut runs_req = runs_req;
    runs_req.sort_by(f64::total_cmp);
    println!(
        "  the run table: GET …/runs median {:.4} s against `simsweep runs --format json` (whole process) median {:.4} s: {:.1}×",
        runs_req[2],
        cli[2],
        cli[2] / runs_req[2].max(1e-9)
    );
    drop(server);
    serve_under_load()?;
    serve_training(data_dir)?;
    Ok(())
}

/// Load clients of the dashboard: 8 threads, each asking every 100 ms for one of `paths` in turn,
/// until `stop`; each returns its request count and the answers that were neither 200 nor an
/// expected "not recorded yet" (404/400), lock errors among them.
fn load_clients(
    url: &str,
    paths: Vec<String>,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<(usize, Vec<String>)>> {
    (0..8)
        .map(|i| {
            let (url, stop, paths) = (url.to_string(), stop.clone(), paths.clone());
            std::thread::spawn(move || {
                let (mut n, mut bad) = (0usize, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let p = &paths[(n + i) % paths.len()];
                    match http_get(&url, p) {
                        Ok((200 | 404 | 400, b))
                            if !String::from_utf8_lossy(&b)
                                .to_lowercase()
                                .contains("locked") => {}
                        Ok((st, b)) => {
                            bad.push(format!("{p}: {st} {}", String::from_utf8_lossy(&b)))
                        }
                        Err(e) => bad.push(format!("{p}: {e}")),
                    }
                    n += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                (n, bad)
            })
        })
        .collect()
}

fn join_clients(
    clients: Vec<std::thread::JoinHandle<(usize, Vec<String>)>>,
) -> Result<(usize, Vec<String>)> {
    let (mut requests, mut bad) = (0, Vec::new());
    for c in clients {
        let (n, b) = c
            .join()
            .map_err(|_| anyhow::anyhow!("a load client panicked"))?;
        requests += n;
        bad.extend(b);
    }
    Ok((requests, bad))
}

/// A real training sweep (`simsweep run`, 4 runs of a 2×128 BERT from random init, 300 steps of
/// batch 32, step metrics every step, STS-B dev and probes every 100) into a database the
/// dashboard serves to the load of [`load_clients`], against the same sweep unserved, alternating
/// (a fresh database each pass); steps/s of each, with libtorch on 1 thread (a core left for the
/// server) and on 2 (the server competes for the cores). Needs the shared data; skipped without.
fn serve_training(data_dir: &Path) -> Result<()> {
    if !data_dir.join("wiki1m_for_simcse.head.txt").is_file() {
        println!(
            "  a training sweep under dashboard load: skipped, no training data in {} (--data-dir)",
            data_dir.display()
        );
        return Ok(());
    }
    let tmp = TempDir::new()?;
    simsweep_core::hf::geometry::write_model_dir(&tmp.0.join("model"), "tiny")?;
    let file = tmp.0.join("train.toml");
    std::fs::write(
        &file,
        "[sweep]\nname = \"served\"\nseeds = [1, 2]\n[base]\nmodel.path = \"model\"\nmodel.init = \"random\"\nmodel.pooling = \"avg\"\ndata.train = [\"wiki1m_for_simcse.head.txt\"]\ndata.max_examples = 20000\ntrain.batch_size = 32\ntrain.max_len = 32\ntrain.steps = 300\ntrain.checkpoint_every = 0\neval.every = 100\neval.tasks = []\nprobe.every = 100\nprobe.size = 200\n[grid]\n\"train.temperature\" = [0.05, 0.5]\n",
    )?;
    let exe = std::env::current_exe()?;
    let mut pass_no = 0;
    let mut pass = |threads: usize, served: bool| -> Result<(f64, usize, Vec<String>)> {
        pass_no += 1;
        let db = tmp.0.join(format!("pass{pass_no}.db"));
        let front = |args: &[&str]| {
            let mut c = std::process::Command::new(&exe);
            c.arg("--db")
                .arg(&db)
                .arg("--data-dir")
                .arg(data_dir)
                .args(args)
                .env("SIMSWEEP_THREADS", threads.to_string())
                .env_remove("SIMSWEEP_DB")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            c
        };
        let out = front(&["plan", &file.display().to_string()]).output()?;
        anyhow::ensure!(
            out.status.success(),
            "plan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let server = if served {
            Some(crate::serve::Background::start(&db)?)
        } else {
            None
        };
        let clients = match &server {
            Some(s) => {
                let ids: Vec<String> = Store::open_readonly(&db)?
                    .sweep_runs("served")?
                    .into_iter()
                    .map(|r| r.run_id)
                    .collect();
                let mut paths = vec![
                    "/api/sweeps".to_string(),
                    "/api/sweeps/served/runs".to_string(),
                    "/api/sweeps/served".to_string(),
                    "/api/sweeps/served/figures/curves?metric=loss".to_string(),
                ];
                for id in &ids {
                    paths.push(format!("/api/runs/{id}"));
                    paths.push(format!("/api/runs/{id}/metrics/loss?max_points=1000"));
                }
                load_clients(&s.url, paths, &stop)
            }
            None => Vec::new(),
        };
        let t = Instant::now();
        let out = front(&["run", &file.display().to_string(), "--device", "cpu"]).output()?;
        let wall = t.elapsed().as_secs_f64();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (requests, mut bad) = join_clients(clients)?;
        drop(server);
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        if !out.status.success() || err.contains("locked") || err.contains("busy") {
            bad.push(format!("the sweep: {}", err.trim()));
        }
        let steps: i64 = Store::open_readonly(&db)?.conn.query_row(
            "SELECT coalesce(sum(step), 0) FROM runs",
            [],
            |r| r.get(0),
        )?;
        Ok((steps as f64 / wall, requests, bad))
    };
    println!("  a training sweep under the same load (`simsweep run`, 4 runs × 300 steps of a 2×128 BERT, a fresh database each pass):");
    for threads in [1, 2] {
        let (mut quiet, mut loaded, mut requests, mut bad) =
            (Vec::new(), Vec::new(), 0, Vec::new());
        for _ in 0..2 {
            quiet.push(pass(threads, false)?.0);
            let (r, n, b) = pass(threads, true)?;
            loaded.push(r);
            requests += n;
            bad.extend(b);
        }
        quiet.push(pass(threads, false)?.0);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (q, l) = (mean(&quiet), mean(&loaded));
        let spread = quiet.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            - quiet.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "    libtorch on {threads} thread{}: unserved {} steps/s (mean {q:.1}, spread {:.1} %); served {} steps/s (mean {l:.1}): {:.3} ×; {requests} requests, {} failures (lock errors included)",
            if threads == 1 { "" } else { "s" },
            quiet.iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>().join(", "),
            100.0 * spread / q,
            loaded.iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>().join(", "),
            l / q,
            bad.len()
        );
        for b in bad.iter().take(5) {
            println!("      {b}");
        }
    }
    Ok(())
}

/// The store's writer (the front's side of a training sweep) into a database the dashboard serves
/// to 8 clients, each asking every 100 ms (about 80 requests/s: the run table, a sweep's chart, a
/// run, a curve), against the same writer with no server, alternating; prints rows/s of each pass,
/// the ratio, the spread of the passes without load (the noise), and the answers that were not 200
/// (lock errors among them).
fn serve_under_load() -> Result<()> {
    let tmp = TempDir::new()?;
    let db = tmp.0.join("load.db");
    let text = "[sweep]\nname = \"load\"\nseeds = [0]\n[base]\nmodel.path = \"m\"\ndata.train = [\"t.txt\"]\n[grid]\n\"train.temperature\" = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0]\n"
        .to_string();
    let sweep =
        crate::spec::parse(Path::new("load.toml"), &text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut store = Store::open(&db)?;
    store.plan(&sweep)?;
    let runs = store.sweep_runs("load")?;
    let pks: Vec<i64> = runs.iter().map(|r| r.run_pk).collect();
    let ids: Vec<String> = runs.iter().map(|r| r.run_id.clone()).collect();
    drop(store);
    let names: Vec<Arc<str>> = (0..30)
        .map(|i| {
            Arc::from(if i == 0 {
                "loss".to_string()
            } else {
                format!("metric_{i:02}")
            })
        })
        .collect();
    const ROWS: u64 = 1_200_000;
    let mut next_step = 0i64;
    // One pass: ROWS rows, 30 per message (one training step of one run), 8 runs interleaved.
    let mut pass = |load: Option<&str>| -> Result<(f64, usize, Vec<String>)> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients = load
            .map(|url| {
                let mut paths = vec![
                    "/api/sweeps/load/runs".to_string(),
                    "/api/sweeps/load/figures/curves?metric=loss".to_string(),
                ];
                for id in &ids {
                    paths.push(format!("/api/runs/{id}"));
                    paths.push(format!("/api/runs/{id}/metrics/loss?max_points=1000"));
                }
                load_clients(url, paths, &stop)
            })
            .unwrap_or_default();
        let writer = Writer::spawn(&db)?;
        let tx = writer.sender();
        let start = Instant::now();
        let (mut sent, mut k) = (0u64, 0usize);
        while sent < ROWS {
            let step = next_step + (k / pks.len()) as i64;
            let msg: Vec<MetricRow> = names
                .iter()
                .map(|n| MetricRow {
                    run_pk: pks[k % pks.len()],
                    step,
                    layer: -1,
                    name: n.clone(),
                    value: 4.0 / (1.0 + step as f64 * 1e-3),
                })
                .collect();
            sent += msg.len() as u64;
            tx.send(Write::Metrics(msg))?;
            k += 1;
        }
        next_step += (k / pks.len()) as i64 + 1;
        drop(tx);
        let stats = writer.finish()?;
        let rate = stats.rows as f64 / start.elapsed().as_secs_f64();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (requests, bad) = join_clients(clients)?;
        Ok((rate, requests, bad))
    };
    // The database must exist before the server opens it: a first pass without load (discarded:
    // it also creates the metric names).
    pass(None)?;
    let server = crate::serve::Background::start(&db)?;
    let (mut quiet, mut loaded, mut requests, mut bad) = (Vec::new(), Vec::new(), 0, Vec::new());
    for _ in 0..3 {
        quiet.push(pass(None)?.0);
        let (r, n, b) = pass(Some(&server.url))?;
        loaded.push(r);
        requests += n;
        bad.extend(b);
    }
    quiet.push(pass(None)?.0);
    drop(server);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (q, l) = (mean(&quiet), mean(&loaded));
    let spread = quiet.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        - quiet.iter().copied().fold(f64::INFINITY, f64::min);
    println!("  the store's writer under dashboard load (8 clients × 10 requests/s, {ROWS} rows a pass, 30 metrics × 8 runs):");
    println!(
        "    without the server: {} rows/s (mean {q:.0}; spread {:.1} % of it: the noise)",
        quiet
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        100.0 * spread / q
    );
    println!(
        "    while served:       {} rows/s (mean {l:.0}): {:.3} × without; {requests} requests, {} not answered 200/404/400, {} lock errors",
        loaded.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", "),
        l / q,
        bad.len(),
        bad.iter().filter(|b| b.to_lowercase().contains("locked") || b.to_lowercase().contains("busy")).count()
    );
    for b in bad.iter().take(5) {
        println!("      {b}");
    }
    Ok(())
}

/// Sweep throughput: a sweep of `runs` small runs (a 2-layer, 128-wide BERT from random init,
/// `steps` steps of batch 64, InfoNCE, 8 temperatures × seeds) trained one at a time, then with
/// `jobs` runs at once on the same device, each into a fresh database; prints both wall times and
/// the ratio. Every run is its own engine process (which loads libtorch and tokenizes its corpus),
/// in both passes alike. On a GPU, packing small runs fills a device one run leaves idle; on a CPU
/// the runs share the same cores.
pub fn sweep(
    runs: usize,
    jobs: usize,
    steps: usize,
    device: simsweep_core::device::Device,
    data_dir: &Path,
) -> Result<f64> {
    let tmp = TempDir::new()?;
    simsweep_core::hf::geometry::write_model_dir(&tmp.0.join("model"), "tiny")?;
    let temps: Vec<String> = (0..runs)
        .map(|i| format!("{}", 0.02 + 0.01 * i as f64))
        .collect();
    let text = format!(
        "[sweep]\nname = \"bench-sweep\"\nseeds = [1]\n[base]\nmodel.path = \"model\"\nmodel.init = \"random\"\nmodel.pooling = \"avg\"\ndata.train = [\"wiki1m_for_simcse.head.txt\"]\ntrain.batch_size = 64\ntrain.max_len = 32\ntrain.steps = {steps}\ntrain.checkpoint_every = 0\nloss.kind = \"infonce\"\neval.every = 0\neval.tasks = []\nprobe.every = 0\nprobe.size = 200\n[grid]\n\"train.temperature\" = [{}]\n",
        temps.join(", ")
    );
    let file = tmp.0.join("bench-sweep.toml");
    std::fs::write(&file, &text)?;
    let sweep = crate::spec::parse(&file, &text).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::spec::check_paths(&sweep, data_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "sweep throughput: {runs} runs × {steps} steps (2×128 BERT, batch 64, max_len 32) on {}, one engine process per run, {} threads each one at a time, {} packed",
        device,
        crate::exec::local::worker_threads(1),
        crate::exec::local::worker_threads(jobs.max(1))
    );
    // Warm-up: one run of one step brings libtorch's libraries and the corpus into the page cache,
    // so neither pass pays the first read from disk.
    {
        let warm_text = text
            .replace("bench-sweep", "bench-sweep-warmup")
            .replace(&format!("train.steps = {steps}"), "train.steps = 1");
        let warm = crate::spec::parse(&file, &warm_text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let db = tmp.0.join("warmup.db");
        Store::open(&db)?.plan(&warm)?;
        let opts = crate::exec::local::ExecOptions {
            only: Some(vec![warm.runs[0].id.clone()]),
            progress: crate::exec::local::ProgressMode::Quiet,
            ..crate::exec::local::ExecOptions::on(device)
        };
        let t = Instant::now();
        crate::exec::local::run_sweep(
            &warm,
            &db,
            data_dir,
            &opts,
            &std::sync::atomic::AtomicBool::new(false),
        )?;
        println!(
            "  warm-up run (one engine process, one step): {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let mut walls = Vec::new();
    for j in [1, jobs.max(1)] {
        let db = tmp.0.join(format!("jobs-{j}.db"));
        Store::open(&db)?.plan(&sweep)?;
        let opts = crate::exec::local::ExecOptions {
            jobs_per_device: j,
            progress: crate::exec::local::ProgressMode::Quiet,
            ..crate::exec::local::ExecOptions::on(device)
        };
        let cancel = std::sync::atomic::AtomicBool::new(false);
        let t = Instant::now();
        let totals = crate::exec::local::run_sweep(&sweep, &db, data_dir, &opts, &cancel)?;
        let wall = t.elapsed().as_secs_f64();
        if totals.done != runs {
            anyhow::bail!(
                "{} of {runs} runs finished with --jobs-per-device {j}",
                totals.done
            );
        }
        let conn = rusqlite::Connection::open(&db)?;
        let mean_run: f64 = conn.query_row(
            "SELECT avg((julianday(finished_at) - julianday(started_at)) * 86400.0) FROM runs",
            [],
            |r| r.get(0),
        )?;
        println!(
            "  --jobs-per-device {j}: {wall:7.1} s for the sweep ({:.2} runs/min; a run takes {mean_run:.1} s)",
            60.0 * runs as f64 / wall
        );
        walls.push(wall);
        if jobs <= 1 {
            break;
        }
    }
    let speedup = walls[0] / walls[walls.len() - 1];
    if walls.len() == 2 {
        println!("  one at a time / packed = {speedup:.2}× faster with --jobs-per-device {jobs}");
    }
    Ok(speedup)
}

/// Early stopping against the full sweep: 27 tiny runs (3 learning rates × 3 temperatures × 3
/// dropout rates, one seed) trained to their end, then the same sweep with ASHA (η = 3, first rung
/// at the first evaluation), each into a fresh database, one run at a time on `device`. Prints the
/// steps trained, the wall time and the best STS-B dev of each pass, and whether ASHA kept the
/// full sweep's best setting.
pub fn search(
    steps: usize,
    eval_every: usize,
    device: simsweep_core::device::Device,
    data_dir: &Path,
) -> Result<()> {
    let tmp = TempDir::new()?;
    simsweep_core::hf::geometry::write_model_dir(&tmp.0.join("model"), "tiny")?;
    let base = format!(
        "[sweep]\nname = \"bench-search\"\nseeds = [1]\n[base]\nmodel.path = \"model\"\nmodel.init = \"random\"\nmodel.pooling = \"avg\"\ndata.train = [\"wiki1m_for_simcse.head.txt\"]\ntrain.batch_size = 64\ntrain.max_len = 32\ntrain.steps = {steps}\ntrain.checkpoint_every = 0\ntrain.step_metrics = false\neval.every = {eval_every}\neval.tasks = []\nprobe.every = 0\nprobe.size = 200\n[grid]\n\"train.lr\" = [1e-5, 1e-4, 1e-3]\n\"train.temperature\" = [0.02, 0.05, 0.2]\n\"model.config.hidden_dropout_prob\" = [0.0, 0.1, 0.3]\n"
    );
    let searched = format!(
        "{base}[search]\nmethod = \"asha\"\nmetric = \"stsb_dev\"\nmin_steps = {eval_every}\nreduction_factor = 3\n"
    );
    println!(
        "early stopping: 27 runs × {steps} steps (2×128 BERT from random init, batch 64; lr × temperature × dropout), evaluated every {eval_every}, one run at a time on {device}, {} threads",
        crate::exec::local::worker_threads(1)
    );
    struct Pass {
        steps: i64,
        wall: f64,
        best: f64,
        best_run: String,
        pruned: i64,
    }
    let mut passes = Vec::new();
    for (name, text) in [("full sweep", &base), ("ASHA", &searched)] {
        let file = tmp.0.join(format!("{}.toml", passes.len()));
        std::fs::write(&file, text)?;
        let sweep = crate::spec::parse(&file, text).map_err(|e| anyhow::anyhow!("{e}"))?;
        crate::spec::check_paths(&sweep, data_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        let db = tmp.0.join(format!("{}.db", passes.len()));
        Store::open(&db)?.plan(&sweep)?;
        let opts = crate::exec::local::ExecOptions {
            progress: crate::exec::local::ProgressMode::Quiet,
            board: sweep.search.as_ref().map(|_| db.clone()),
            ..crate::exec::local::ExecOptions::on(device)
        };
        let cancel = std::sync::atomic::AtomicBool::new(false);
        let t = Instant::now();
        let totals = crate::exec::local::run_sweep(&sweep, &db, data_dir, &opts, &cancel)?;
        let wall = t.elapsed().as_secs_f64();
        if totals.done + totals.pruned != 27 {
            anyhow::bail!(
                "{name}: {} done and {} pruned of 27 runs ({} failed, {} diverged)",
                totals.done,
                totals.pruned,
                totals.failed,
                totals.diverged
            );
        }
        let conn = rusqlite::Connection::open(&db)?;
        let trained: i64 = conn.query_row("SELECT sum(step) FROM runs", [], |r| r.get(0))?;
        let (best, best_run): (f64, String) = conn.query_row(
            "SELECT max_value, run_id FROM metric_summary_values WHERE metric = 'stsb_dev' ORDER BY max_value DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        println!(
            "  {name:>10}: {trained:6} steps trained, {wall:7.1} s, {} pruned, best stsb_dev {best:.2} (run {best_run})",
            totals.pruned
        );
        passes.push(Pass {
            steps: trained,
            wall,
            best,
            best_run,
            pruned: totals.pruned as i64,
        });
    }
    let (full, asha) = (&passes[0], &passes[1]);
    println!(
        "  ASHA / full: {:.2}× the steps, {:.2}× the wall time, best {:+.2} points ({} runs pruned); the full sweep's best run {} by ASHA",
        asha.steps as f64 / full.steps as f64,
        asha.wall / full.wall,
        asha.best - full.best,
        asha.pruned,
        if asha.best_run == full.best_run { "was also found" } else { "was not the best" }
    );
    Ok(())
}

/// One phase of the token cache benchmark, measured in its own process (so each peak resident
/// memory is its own): what the child prints as one JSON line.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct DataPhase {
    pub seconds: f64,
    pub examples: usize,
    pub tokens: usize,
    pub source: String,
    /// VmHWM, RssAnon and RssFile of /proc/self/status after the tokens are ready, KiB.
    pub peak_kib: u64,
    pub anon_kib: u64,
    pub file_kib: u64,
}

fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The child side: obtain the tokens of `corpus` (`cache`: its folder, None: in memory) the way a
/// run does, touch every id as training would, and print the figures.
pub fn data_phase(corpus: &Path, cache: Option<&Path>, model: &Path, max_len: i64) -> Result<()> {
    use simsweep_core::hf::config::ModelType;
    let tokenizer = simsweep_core::hf::tokenizer::Tokenizer::from_dir(model, ModelType::Bert)?;
    let t0 = Instant::now();
    let (tokens, source) = simsweep_core::tokcache::load_or_build(
        cache,
        &[corpus.to_path_buf()],
        "lines",
        &tokenizer,
        max_len,
    )?;
    let seconds = t0.elapsed().as_secs_f64();
    // An epoch reads every example once.
    let sum: u64 = (0..tokens.len())
        .map(|i| tokens.text(i).iter().map(|&t| u64::from(t)).sum::<u64>())
        .sum();
    std::hint::black_box(sum);
    let phase = DataPhase {
        seconds,
        examples: tokens.len(),
        tokens: tokens.n_tokens,
        source: format!("{source:?}"),
        peak_kib: proc_status_kib("VmHWM:"),
        anon_kib: proc_status_kib("RssAnon:"),
        file_kib: proc_status_kib("RssFile:"),
    };
    println!("{}", serde_json::to_string(&phase)?);
    Ok(())
}

/// Token cache benchmark: a corpus of `lines` lines (the wiki excerpt repeated), its setup as a run
/// does it without the cache (read and tokenize in memory, what every run paid before the cache),
/// with a cold cache (tokenize, write, map) and with a warm one (hash the file, map, verify), each
/// in its own process; prints seconds, peak memory and the ratios against the uncached setup.
pub fn data(lines: usize, max_len: i64, data_dir: &Path, keep: Option<&Path>) -> Result<()> {
    let tmp = TempDir::new()?;
    let work = keep.unwrap_or(&tmp.0);
    std::fs::create_dir_all(work)?;
    let model = work.join("model");
    simsweep_core::hf::geometry::write_model_dir(&model, "tiny")?;
    let excerpt = data_dir.join("wiki1m_for_simcse.head.txt");
    let corpus = work.join(format!("wiki-{lines}.txt"));
    if std::fs::metadata(&corpus).map_or(true, |m| m.len() == 0) {
        let text = std::fs::read_to_string(&excerpt)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", excerpt.display()))?;
        let src: Vec<&str> = text.lines().collect();
        let mut out = std::io::BufWriter::new(std::fs::File::create(&corpus)?);
        for i in 0..lines {
            use std::io::Write as _;
            writeln!(out, "{}", src[i % src.len()])?;
        }
        std::io::Write::flush(&mut out)?;
    }
    let bytes = std::fs::metadata(&corpus)?.len();
    let cache = work.join("cache");
    let _ = simsweep_core::tokcache::clear(&cache);
    let exe = std::env::current_exe()?;
    let phase = |cache: Option<&Path>| -> Result<DataPhase> {
        let mut c = std::process::Command::new(&exe);
        c.args(["bench", "data", "--phase"])
            .arg(&corpus)
            .arg("--model")
            .arg(&model)
            .args(["--max-len", &max_len.to_string()]);
        if let Some(d) = cache {
            c.arg("--cache").arg(d);
        }
        let out = c.output()?;
        if !out.status.success() {
            anyhow::bail!(
                "the benchmark phase failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    println!(
        "token cache benchmark: {lines} lines ({:.1} MB, {} repeated), WordPiece tokenizer of bert-base-uncased, max_len {max_len}, {} rayon threads; each setup in its own process",
        bytes as f64 / 1e6,
        excerpt.display(),
        rayon::current_num_threads()
    );
    let mib = |k: u64| k as f64 / 1024.0;
    let show = |what: &str, p: &DataPhase| {
        println!(
            "  {what:<44} {:>8.3} s   peak RSS {:>7.1} MiB (after: anon {:.1} MiB, mapped file {:.1} MiB)   {} examples, {} tokens",
            p.seconds,
            mib(p.peak_kib),
            mib(p.anon_kib),
            mib(p.file_kib),
            p.examples,
            p.tokens
        );
    };
    let none = phase(None)?;
    show("no cache (read + tokenize in memory)", &none);
    let cold = phase(Some(&cache))?;
    show("cold cache (read + tokenize + write + map)", &cold);
    let warm = phase(Some(&cache))?;
    show("warm cache (hash the corpus + map + verify)", &warm);
    let entry: u64 = simsweep_core::tokcache::entries(&cache, false)?
        .iter()
        .filter(|e| e.info.is_some())
        .map(|e| e.bytes)
        .sum();
    println!(
        "  entry on disk {:.1} MiB ({:.2} bytes per token)",
        entry as f64 / (1024.0 * 1024.0),
        entry as f64 / cold.tokens.max(1) as f64
    );
    anyhow::ensure!(
        none.tokens == cold.tokens && cold.tokens == warm.tokens,
        "the three setups disagree on the token count"
    );
    println!(
        "  warm / no cache {:.4}× ({:.0}× faster; target ≤ 1 s: {}); cold / no cache {:.2}× (target ≤ 1.0×, within noise); warm peak memory / no cache {:.2}×",
        warm.seconds / none.seconds,
        none.seconds / warm.seconds,
        if warm.seconds <= 1.0 { "met" } else { "NOT met" },
        cold.seconds / none.seconds,
        warm.peak_kib as f64 / none.peak_kib.max(1) as f64
    );
    Ok(())
}

/// Target of the merge benchmark: 1,000 finished shards of 2,000 steps × 30 metrics merged into
/// the main database in at most a minute.
pub const MERGE_TARGET_S: f64 = 60.0;

/// Slurm shard merging at scale: `shards` finished task shards (one run each, `steps` × `metrics`
/// rows, made as workers make them and left alone for a minute) merged into a main database that
/// holds their submission; then merged again (nothing changed: no shard is read), then again after
/// 1 % of the shards changed. The shards and the main database as it was before the first merge
/// are built once into `dir` and reused. Checks the rows and the summaries afterwards.
pub fn merge(shards: usize, metrics: usize, steps: usize, dir: &Path) -> Result<()> {
    use rayon::prelude::*;
    let root = dir.join(format!("simsweep-bench-merge-{shards}x{metrics}x{steps}"));
    let shard_dir = root.join("shards/bench-merge");
    let pristine = root.join("before-merge.db");
    let built = root.join("built");
    let rows_each = (metrics * steps) as u64;
    println!(
        "merge benchmark: {shards} shards × {metrics} metrics × {steps} steps = {} rows, in {}",
        rows_each * shards as u64,
        root.display()
    );
    let text = format!(
        "[sweep]\nname = \"bench-merge\"\nseeds = [{}]\n[base]\nmodel.path = \"m\"\ndata.train = [\"t.txt\"]\ntrain.steps = {steps}\n",
        (0..shards).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
    );
    let sweep = crate::spec::parse(Path::new("bench-merge.toml"), &text)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    const JOB: &str = "4242";
    if !built.is_file() {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&shard_dir)?;
        let start = Instant::now();
        // The main database: the sweep planned and submitted as array job 4242.
        let mut main = Store::open(&pristine)?;
        main.plan(&sweep)?;
        let claimer = Store::submitting_worker();
        let claimed = main.claim_for_submission("bench-merge", &claimer)?;
        main.confirm_submission(&claimed, &claimer, JOB, &root)?;
        main.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        drop(main);
        let names = synthetic_metric_names(metrics);
        // The shards, as `simsweep worker` makes them: the run planned alone, claimed, its rows
        // written, finished; two at a time (one per core).
        sweep
            .runs
            .par_iter()
            .enumerate()
            .try_for_each(|(i, run)| -> Result<()> {
                let mut one = sweep.clone();
                one.runs = vec![run.clone()];
                one.runs[0].ordinal = 0;
                let path = shard_dir.join(format!("{}.db", run.id));
                let mut shard = Store::open(&path)?;
                shard
                    .conn
                    .query_row("PRAGMA journal_mode=DELETE", [], |_| Ok(()))?;
                shard.plan(&one)?;
                shard.prepare_shard_run(
                    &run.id,
                    &format!("{JOB}_{i}"),
                    "pending",
                    0,
                    &serde_json::json!({}),
                )?;
                let c = shard
                    .claim_next("bench-merge", "node:1:1", "cpu", None)?
                    .ok_or_else(|| anyhow::anyhow!("shard {i}: nothing to claim"))?;
                let w = Writer::spawn(&path)?;
                let tx = w.sender();
                let names: Vec<Arc<str>> = names.iter().map(|n| Arc::from(n.as_str())).collect();
                for step in 1..=steps {
                    let rows = names
                        .iter()
                        .enumerate()
                        .map(|(m, name)| MetricRow {
                            run_pk: c.run_pk,
                            step: step as i64,
                            layer: -1,
                            name: name.clone(),
                            value: crate::plot::synthetic::noise(i as u64, m as u64, step as u64),
                        })
                        .collect();
                    tx.send(Write::Metrics(rows))?;
                }
                drop(tx);
                w.finish()?;
                shard.finish_run(c.run_pk, "done", Some(steps as i64), None)?;
                Ok(())
            })?;
        std::fs::write(&built, "")?;
        println!(
            "  shards    built in {:.1} s",
            start.elapsed().as_secs_f64()
        );
    } else {
        println!("  shards    reused (remove {} to rebuild)", root.display());
    }
    // Finished shards are old by the time a merge sees them.
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&shard_dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .collect();
    files.sort();
    anyhow::ensure!(
        files.len() == shards,
        "{}: {} shards, expected {shards} (remove the folder to rebuild)",
        shard_dir.display(),
        files.len()
    );
    let age = |p: &Path, secs: u64| -> Result<()> {
        std::fs::File::options()
            .write(true)
            .open(p)?
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(secs))?;
        Ok(())
    };
    for f in &files {
        age(f, 120)?;
    }
    let db = root.join("r.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::copy(&pristine, &db)?;
    let mut main = Store::open(&db)?;
    // In the order `merge` takes them.
    main.sort_shards(&mut files)?;
    let pass = |what: &str, main: &mut Store| -> Result<()> {
        let start = Instant::now();
        let (mut unread, mut changed, mut written) = (0usize, 0usize, 0usize);
        for f in &files {
            for m in main.merge_shard(f)? {
                unread += usize::from(m.unread);
                changed += usize::from(m.changed());
                written += m.metrics_written;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "  {what:<34} {secs:>7.2} s  ({} shards read, {unread} not read; {changed} runs changed, {written} rows written{})",
            files.len() - unread,
            if written > 0 {
                format!(", {:.0} rows/s", written as f64 / secs)
            } else {
                String::new()
            }
        );
        Ok(())
    };
    let start = Instant::now();
    pass("first merge (every shard new)", &mut main)?;
    let first = start.elapsed().as_secs_f64();
    pass("again (nothing changed)", &mut main)?;
    // 1 % of the shards written again (a heartbeat), as tasks still running would be.
    let touched: Vec<&std::path::PathBuf> = files.iter().step_by(100).collect();
    for f in &touched {
        let s = Store::open(f)?;
        s.conn
            .execute("UPDATE runs SET heartbeat_at = heartbeat_at", [])?;
        drop(s);
        age(f, 60)?;
    }
    pass(
        &format!("again ({} shards changed)", touched.len()),
        &mut main,
    )?;
    let rows: i64 = main
        .conn
        .query_row("SELECT count(*) FROM metrics", [], |r| r.get(0))?;
    let start = Instant::now();
    let check = crate::store::summary::check(&main.conn)?;
    println!(
        "  check     {rows} rows in the main database (expected {}); {} summaries, {} mismatches ({:.1} s)",
        rows_each * shards as u64,
        check.summaries,
        check.mismatches.len(),
        start.elapsed().as_secs_f64()
    );
    anyhow::ensure!(
        rows as u64 == rows_each * shards as u64 && check.mismatches.is_empty(),
        "the merge lost or garbled rows"
    );
    println!(
        "  target    first merge {first:.1} s ≤ {MERGE_TARGET_S} s: {}",
        if first <= MERGE_TARGET_S {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}
