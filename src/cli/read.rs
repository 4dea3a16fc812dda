//! The commands that read the results database: check, status, runs, best, query, export.

use super::*;

/// `simsweep check`: SQLite's integrity check, then the summaries against a scan of the rows.
pub(super) fn check(cli: &Cli, quick: bool, repair: bool) -> Result<i32> {
    use crate::store::summary;
    let mut store = if repair {
        Store::open(&cli.db)?
    } else {
        Store::open_readonly(&cli.db)?
    };
    let db = cli.db.display();
    let pragma = if quick {
        "quick_check"
    } else {
        "integrity_check"
    };
    let start = std::time::Instant::now();
    let problems: Vec<String> = store
        .conn
        .prepare(&format!("PRAGMA {pragma}"))?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    let sqlite_ok = problems == ["ok"];
    println!(
        "{db}: SQLite {pragma}: {} ({:.1} s)",
        if sqlite_ok {
            "ok".to_string()
        } else {
            format!("{} problems", problems.len())
        },
        start.elapsed().as_secs_f64()
    );
    for p in problems.iter().filter(|_| !sqlite_ok).take(20) {
        println!("  {p}");
    }
    let start = std::time::Instant::now();
    let found = summary::check(&store.conn)?;
    println!(
        "{db}: {} summaries checked against {} metric rows: {} ({:.1} s)",
        found.summaries,
        found.rows,
        if found.mismatches.is_empty() {
            "ok".to_string()
        } else {
            format!("{} do not match", found.mismatches.len())
        },
        start.elapsed().as_secs_f64()
    );
    let name = |table: &str, key: &str, id: i64| -> String {
        store
            .conn
            .query_row(
                &format!("SELECT {key} FROM {table} WHERE rowid = ?1"),
                [id],
                |r| r.get::<_, String>(0),
            )
            .unwrap_or_else(|_| format!("#{id}"))
    };
    let show = |s: &Option<summary::Summary>| match s {
        None => "none".to_string(),
        Some(s) => format!(
            "n {}, first {:?}, last {:?}, min {:?}, max {:?}",
            s.n, s.first, s.last, s.min, s.max
        ),
    };
    for m in found.mismatches.iter().take(20) {
        println!(
            "  run {} metric {} layer {}: stored {}; the rows give {}",
            name("runs", "run_id", m.key.0),
            name("metric_names", "name", m.key.1),
            m.key.2,
            show(&m.stored),
            show(&m.scanned)
        );
    }
    if found.mismatches.len() > 20 {
        println!("  … and {} more", found.mismatches.len() - 20);
    }
    let mut summaries_ok = found.mismatches.is_empty();
    if repair && !summaries_ok {
        let tx = store.conn.transaction()?;
        summary::rebuild_all(&tx)?;
        tx.commit()?;
        let again = summary::check(&store.conn)?;
        summaries_ok = again.mismatches.is_empty();
        println!(
            "{db}: summaries rebuilt from the rows: {}",
            if summaries_ok {
                "ok now"
            } else {
                "still wrong"
            }
        );
    }
    if !sqlite_ok || !summaries_ok {
        eprintln!(
            "error: {db}: {}",
            match (sqlite_ok, summaries_ok) {
                (false, _) => "SQLite reports damage: restore the file from a copy (`.recover` in sqlite3 may save what is left)",
                (true, _) => "the summaries do not match the rows: `simsweep check --repair` rebuilds them",
            }
        );
        return Ok(1);
    }
    Ok(0)
}

pub(super) fn status(cli: &Cli, sweep: Option<&str>) -> Result<i32> {
    // Work submitted to Slurm: merge the shards and ask Slurm about its tasks first.
    let mut states = std::collections::HashMap::new();
    if cli.db.is_file() && crate::slurm::results_dir(&cli.db).join("shards").is_dir() {
        match Store::open(&cli.db) {
            Ok(mut store) => {
                let known = match sweep {
                    Some(s) => !store.sweep_runs(s)?.is_empty(),
                    None => true,
                };
                if known {
                    let rec = crate::slurm::reconcile(&mut store, sweep)?;
                    rec.print_notes();
                    states = rec.states;
                }
            }
            Err(e) => eprintln!("warning: cannot merge Slurm shards: {e}"),
        }
    }
    let store = Store::open_readonly(&cli.db)?;
    let c = &store.conn;
    let rows: Vec<Vec<String>> = query::sweep_counts(c, sweep)
        .map_err(qerr)?
        .into_iter()
        .map(|s| {
            let mut row = vec![s.name, s.runs.to_string()];
            row.extend(s.status.values().map(|n| n.to_string()));
            row
        })
        .collect();
    if rows.is_empty() {
        return Err(BadInput(match sweep {
            Some(s) => format!("no sweep named `{s}` in {}", cli.db.display()),
            None => format!("no sweeps in {}", cli.db.display()),
        })
        .into());
    }
    let headers: Vec<String> = ["sweep", "runs"]
        .iter()
        .chain(crate::store::STATUSES)
        .map(|s| s.to_string())
        .collect();
    print!("{}", crate::table::render(&headers, &rows));
    for row in &rows {
        let id = crate::query::sweep(c, &row[0]).map_err(qerr)?.sweep_id;
        if let Some(saved) = crate::query::savings(c, id)? {
            println!("{}: {}", row[0], saved.line());
        }
    }
    if let Some(name) = sweep {
        let runs = store.sweep_runs(name)?;
        let running: Vec<Vec<String>> = runs
            .iter()
            .filter(|r| r.status == "running")
            .map(|r| {
                let worker = r.worker.clone().unwrap_or_default();
                let slurm = worker
                    .strip_prefix(crate::store::shard::SLURM_WORKER)
                    .and_then(|t| states.get(t))
                    .map(|s: &crate::slurm::TaskState| s.describe())
                    .unwrap_or_default();
                vec![
                    r.run_id.clone(),
                    r.step.map_or("-".into(), |s| s.to_string()),
                    worker,
                    r.host.clone().unwrap_or_default(),
                    slurm,
                ]
            })
            .collect();
        if !running.is_empty() {
            println!("\nrunning");
            print!(
                "{}",
                crate::table::render(
                    &[
                        "run".into(),
                        "step".into(),
                        "worker".into(),
                        "host".into(),
                        "slurm".into()
                    ],
                    &running
                )
            );
        }
        for r in runs
            .iter()
            .filter(|r| matches!(r.status.as_str(), "failed" | "diverged"))
        {
            println!(
                "\n{} {} at step {}: {}",
                r.run_id,
                r.status,
                r.step.map_or("-".into(), |s| s.to_string()),
                r.error.as_deref().unwrap_or("")
            );
        }
    }
    Ok(0)
}

/// Open the results database for reading; a missing file is bad input (exit 2).
pub(super) fn open_results(db: &Path) -> Result<Store> {
    if !db.is_file() {
        return Err(BadInput(format!(
            "no results database at {} (record a sweep with `simsweep plan FILE`, or choose one with --db / SIMSWEEP_DB)",
            db.display()
        ))
        .into());
    }
    Ok(Store::open_readonly(db)?)
}

/// A query error as the CLI reports it: questions that cannot be answered as asked exit 2.
pub(super) fn qerr(e: query::Error) -> anyhow::Error {
    match e {
        query::Error::Input(m) => BadInput(m).into(),
        e => e.into(),
    }
}

/// A reader that stopped reading (`| head`) ends the command quietly, as for other Unix tools.
pub(super) fn quiet_pipe(r: Result<i32>) -> Result<i32> {
    match r {
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    || matches!(c.downcast_ref::<query::Error>(), Some(query::Error::Io(io)) if io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            Ok(0)
        }
        r => r,
    }
}

pub(super) fn stdout() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())
}

pub(super) fn runs(db: &Path, sweep: &str, select: &SelectArgs, format: Format) -> Result<i32> {
    let store = open_results(db)?;
    let c = &store.conn;
    let sw = query::sweep(c, sweep).map_err(qerr)?;
    let sel = select.selection(&[]);
    let t = query::runs_table(c, &sw, &sel).map_err(qerr)?;
    let mut out = stdout();
    if format == Format::Table {
        writeln!(
            out,
            "sweep {}{}: {} runs{}",
            sw.name,
            if sw.description.is_empty() {
                String::new()
            } else {
                format!(" — {}", sw.description)
            },
            t.runs.len(),
            query::savings(c, sw.sweep_id)?.map_or(String::new(), |s| format!("; {}", s.line()))
        )?;
    }
    let mut headers = t.headers(sel.include_removed);
    let error_col = headers.len() - 1;
    // JSON rows carry each run's reproducibility fingerprint.
    let fingerprints = if format == Format::Json {
        headers.push("fingerprint".into());
        let pks: Vec<i64> = t.runs.iter().map(|r| r.run_pk).collect();
        query::fingerprints(c, &pks).map_err(qerr)?
    } else {
        Vec::new()
    };
    // In the table, each score column keeps one number of decimals (4 significant digits of its
    // largest value), so scores line up.
    let decimals: Vec<(usize, usize)> = t
        .headlines
        .iter()
        .zip(&t.scores)
        .map(|(h, s)| {
            let col = headers.iter().position(|c| c == h.column).expect("column");
            let d = query::output::decimals_for(s.iter().filter_map(|v| v.and_then(|v| v.value)));
            (col, d)
        })
        .collect();
    let mut w = RowWriter::new(out, format, headers, "-");
    for i in 0..t.runs.len() {
        let mut row = t.row(i, sel.include_removed);
        if let Some(f) = fingerprints.get(i) {
            row.push(f.clone().unwrap_or(serde_json::Value::Null));
        }
        if format == Format::Table {
            if let serde_json::Value::String(e) = &row[error_col] {
                row[error_col] = serde_json::Value::String(query::output::shorten(e, 60));
            }
            for &(col, d) in &decimals {
                if let Some(x) = row[col].as_f64() {
                    row[col] = serde_json::Value::String(format!("{x:.d$}"));
                }
            }
        }
        w.row(&row)?;
    }
    w.finish()?;
    Ok(0)
}

pub(super) fn sql_query(db: &Path, sql: &str, format: Format) -> Result<i32> {
    let store = open_results(db)?;
    let mut st = query::prepare_readonly(&store.conn, sql).map_err(qerr)?;
    let headers: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
    let mut w = RowWriter::new(stdout(), format, headers, "NULL");
    query::for_each_row(&mut st, |r| Ok(w.row(r)?)).map_err(qerr)?;
    w.finish()?;
    Ok(0)
}

pub(super) fn export(
    db: &Path,
    sweep: &str,
    q: &query::ExportQuery,
    select: &SelectArgs,
    out: Option<&Path>,
) -> Result<i32> {
    let store = open_results(db)?;
    let c = &store.conn;
    let sw = query::sweep(c, sweep).map_err(qerr)?;
    let sel = select.selection(&[]);
    match out {
        None => {
            query::export(c, &sw, &sel, q, &mut stdout()).map_err(qerr)?;
        }
        Some(path) => {
            // Refuse unknown metrics before creating the file.
            for m in &q.metrics {
                query::metric(c, m).map_err(qerr)?;
            }
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
            let st = query::export(c, &sw, &sel, q, &mut w).map_err(qerr)?;
            eprintln!(
                "{} runs, {} lines, {} metrics ({}) → {}",
                st.runs,
                st.lines,
                st.metrics.len(),
                query::summarize_names(st.metrics.iter().map(|m| m.as_str())),
                path.display()
            );
        }
    }
    Ok(0)
}
