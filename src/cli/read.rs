//! The commands that read the results database: status, runs, best, query, export.

use super::*;

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
    let counts: String = crate::store::STATUSES
        .iter()
        .map(|s| format!(", sum(r.status = '{s}')"))
        .collect();
    let mut st = c.prepare(&format!(
        "SELECT s.name, count(r.run_pk){counts}
         FROM sweeps s LEFT JOIN runs r ON r.sweep_id = s.sweep_id AND r.in_plan = 1
         WHERE ?1 IS NULL OR s.name = ?1 GROUP BY s.sweep_id ORDER BY s.sweep_id"
    ))?;
    let columns = 2 + crate::store::STATUSES.len();
    let rows: Vec<Vec<String>> = st
        .query_map([sweep], |r| {
            (0..columns)
                .map(|i| {
                    if i == 0 {
                        r.get::<_, String>(0)
                    } else {
                        Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0).to_string())
                    }
                })
                .collect()
        })?
        .collect::<rusqlite::Result<_>>()?;
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
            "sweep {}{}: {} runs",
            sw.name,
            if sw.description.is_empty() {
                String::new()
            } else {
                format!(" — {}", sw.description)
            },
            t.runs.len()
        )?;
    }
    let headers = t.headers(sel.include_removed);
    let error_col = headers.len() - 1;
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
