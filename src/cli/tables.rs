//! `simsweep best`: the groups of a sweep with their seed statistics (interval, comparison with the
//! best group), and paper tables — Markdown or LaTeX (booktabs), one metric, several side by side
//! (`--metric a,b,c`), or one laid out two-way (`--pivot ROW,COL`).

use super::*;
use query::output::{decimals_for, opt_num, table_cell};
use read::stdout;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Output of `best`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BestFormat {
    Table,
    Csv,
    Json,
    Markdown,
    Latex,
}

pub const BEST_FORMATS: &[(&str, BestFormat)] = &[
    ("table", BestFormat::Table),
    ("csv", BestFormat::Csv),
    ("json", BestFormat::Json),
    ("markdown", BestFormat::Markdown),
    ("latex", BestFormat::Latex),
];

/// What follows the mean in a paper table's cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Spread {
    /// ± the sample standard deviation.
    Std,
    /// ± the half-width of the confidence interval (`--ci`).
    Ci,
    /// The mean alone.
    None,
}

/// Everything `best` was asked.
pub struct BestArgs<'a> {
    pub sweep: &'a str,
    pub metrics: Vec<String>,
    pub query: query::BestQuery,
    pub seeds: Seeds,
    pub select: &'a SelectArgs,
    pub format: BestFormat,
    pub spread: Spread,
    pub digits: Option<usize>,
    pub pivot: Option<(String, String)>,
}

fn bad<T>(msg: String) -> Result<T> {
    Err(BadInput(msg).into())
}

pub(super) fn best(db: &Path, a: &BestArgs<'_>) -> Result<i32> {
    let level = a.query.level;
    if !(level > 0.0 && level < 1.0) {
        return bad(format!(
            "--ci {level}: a confidence level between 0 and 1 (exclusive), e.g. 0.95"
        ));
    }
    if let Some(d) = a.digits.filter(|d| *d > 12) {
        return bad(format!("--digits {d}: at most 12"));
    }
    let store = read::open_results(db)?;
    let c = &store.conn;
    let sw = query::sweep(c, a.sweep).map_err(read::qerr)?;
    let sel = a.select.selection(&["done"]);
    let paper = matches!(a.format, BestFormat::Markdown | BestFormat::Latex);
    if a.seeds == Seeds::All && (paper || a.metrics.len() > 1 || a.pivot.is_some()) {
        return bad("--seeds all lists every run: it takes one metric, no --pivot, and --format table, csv or json".into());
    }
    let mut q = a.query.clone();
    if let Some((row, col)) = &a.pivot {
        if a.metrics.len() > 1 {
            return bad("--pivot lays out one metric; give one --metric".into());
        }
        if q.by.is_some() {
            return bad("--pivot ROW,COL sets the groups; leave out --by".into());
        }
        let swept: Vec<&String> = sw.swept_keys.iter().filter(|k| *k != "seed").collect();
        for k in [row, col] {
            if !swept.contains(&k) {
                return bad(format!(
                    "--pivot {k}: not a swept key of sweep {}; swept: {}",
                    sw.name,
                    swept
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if row == col {
            return bad(format!("--pivot {row},{col}: two different keys"));
        }
        q.by = Some(vec![row.clone(), col.clone()]);
    }
    let mut results = Vec::new();
    for m in &a.metrics {
        q.metric = m.clone();
        results.push(query::best(c, &sw, &sel, &q).map_err(read::qerr)?);
    }
    let mut out = stdout();
    if results.len() == 1 && a.pivot.is_none() && !paper {
        return one(&mut out, &results[0], a, &sel);
    }
    // Several metrics or a pivot with table / csv / json, or any paper table.
    match a.format {
        BestFormat::Json => {
            let v = json!({"metrics": results.iter().map(|b| b.to_json()).collect::<Vec<_>>()});
            serde_json::to_writer_pretty(&mut out, &v)?;
            writeln!(out)?;
        }
        BestFormat::Csv => long_csv(&mut out, &results)?,
        f => {
            let grid = match &a.pivot {
                Some((row, col)) => pivot_grid(&results[0], row, col),
                None => metrics_grid(&results),
            };
            let d = a.digits.unwrap_or_else(|| {
                decimals_for(results.iter().flat_map(|b| {
                    b.groups
                        .iter()
                        .filter_map(|g| g.stats.map(|s| s.mean.abs().max(s.max.abs())))
                }))
            });
            let caption = caption(&results, a, &sel);
            match f {
                BestFormat::Markdown => markdown(&mut out, &grid, d, a.spread, &caption)?,
                BestFormat::Latex => latex(&mut out, &grid, d, a.spread, &caption)?,
                _ => plain(&mut out, &grid, d, a.spread, &caption)?,
            }
        }
    }
    out.flush()?;
    Ok(0)
}

fn caption(results: &[query::Best], a: &BestArgs<'_>, sel: &query::Selection) -> String {
    let b = &results[0];
    let spread = match a.spread {
        Spread::Std => "mean ± sample std over seeds".to_string(),
        Spread::Ci => format!("mean ± half-width of the {:.0} % CI", b.level * 100.0),
        Spread::None => "mean over seeds".to_string(),
    };
    let metrics = results
        .iter()
        .map(|b| format!("{} ({}, {})", b.metric, mode_word(b.mode), b.goal.word()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "sweep {}: {metrics}; {spread}; {} runs{}; bold: best; underlined: not distinguishable from the best (Holm-adjusted p ≥ {:.2}, paired t-test over common seeds, Welch otherwise)",
        b.sweep,
        if sel.statuses.is_empty() {
            "all".to_string()
        } else {
            sel.statuses.join("/")
        },
        match &a.pivot {
            Some((r, c)) => format!("; rows {r}, columns {c}"),
            None => String::new(),
        },
        1.0 - b.level
    )
}

fn mode_word(m: Mode) -> &'static str {
    match m {
        Mode::Best => "best over steps",
        Mode::Final => "final value",
    }
}

/// One metric: the detailed table, CSV or JSON.
fn one(
    out: &mut impl Write,
    b: &query::Best,
    a: &BestArgs<'_>,
    sel: &query::Selection,
) -> Result<i32> {
    if a.format == BestFormat::Json {
        serde_json::to_writer_pretty(&mut *out, &b.to_json())?;
        writeln!(out)?;
        out.flush()?;
        return Ok(0);
    }
    let show_status = sel.statuses != ["done"];
    // One decimal setting for every value shown, so groups line up.
    let d = a.digits.unwrap_or_else(|| {
        decimals_for(
            b.groups
                .iter()
                .flat_map(|g| g.runs.iter().filter_map(|r| r.value)),
        )
    });
    if a.seeds == Seeds::All {
        let mut headers = b.by.clone();
        headers.extend(["seed", "run_id"].map(String::from));
        let csv = a.format == BestFormat::Csv;
        if show_status || csv {
            headers.push("status".into());
        }
        headers.extend(["step".to_string(), b.metric.clone()]);
        let rows: Vec<Vec<Value>> = b
            .groups
            .iter()
            .flat_map(|g| {
                g.runs.iter().map(move |run| {
                    let mut r = g.key.clone();
                    r.extend([json!(run.seed), json!(run.run_id)]);
                    if show_status || csv {
                        r.push(json!(run.status));
                    }
                    r.extend([json!(run.step), opt_num(run.value)]);
                    r
                })
            })
            .collect();
        if csv {
            let mut w = RowWriter::new(out, Format::Csv, headers, "");
            for r in &rows {
                w.row(r)?;
            }
            w.finish()?;
            return Ok(0);
        }
        header_line(out, b, sel, "")?;
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let mut t: Vec<String> = r[..r.len() - 1]
                    .iter()
                    .map(|v| table_cell(v, "-"))
                    .collect();
                t.push(
                    r[r.len() - 1]
                        .as_f64()
                        .map_or("-".into(), |x| format!("{x:.d$}")),
                );
                t
            })
            .collect();
        out.write_all(crate::table::render(&headers, &table).as_bytes())?;
        out.flush()?;
        return Ok(0);
    }
    if a.format == BestFormat::Csv {
        // (column, key of the group in `to_json`).
        const COLUMNS: [(&str, &str); 16] = [
            ("n", "n"),
            ("runs", "runs_total"),
            ("mean", "mean"),
            ("std", "std"),
            ("min", "min"),
            ("max", "max"),
            ("sem", "sem"),
            ("ci_low", "ci_low"),
            ("ci_high", "ci_high"),
            ("median", "median"),
            ("diff_vs_best", "diff_vs_best"),
            ("diff_ci_low", "diff_ci_low"),
            ("diff_ci_high", "diff_ci_high"),
            ("p_vs_best", "p_vs_best"),
            ("p_adjusted", "p_adjusted"),
            ("tied_with_best", "tied_with_best"),
        ];
        let mut headers = b.by.clone();
        headers.extend(COLUMNS.iter().map(|c| c.0.to_string()));
        let j = b.to_json();
        let mut w = RowWriter::new(out, Format::Csv, headers, "");
        for (g, gj) in b.groups.iter().zip(j["groups"].as_array().expect("groups")) {
            let mut r = g.key.clone();
            r.extend(COLUMNS.iter().map(|c| gj[c.1].clone()));
            w.row(&r)?;
        }
        w.finish()?;
        return Ok(0);
    }
    let f = |x: f64| format!("{x:.d$}");
    let pct = format!("{:.0}% CI", b.level * 100.0);
    header_line(
        out,
        b,
        sel,
        &format!(
            "; mean ± sample std (n−1) over each group's runs, {pct} of the mean (Student t); Δ vs the best group with its {pct}, p of a paired t-test over common seeds (Welch otherwise), Holm-adjusted; ≈: not distinguishable from the best"
        ),
    )?;
    let mut headers = b.by.clone();
    headers.extend(
        [
            "mean ± std",
            "n",
            &pct,
            "median",
            "min",
            "max",
            "Δ vs best",
            "p (Holm)",
            "≈best",
        ]
        .map(String::from),
    );
    let table: Vec<Vec<String>> = b
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut t: Vec<String> = g.key.iter().map(|v| table_cell(v, "-")).collect();
            let Some(s) = &g.stats else {
                t.push("-".into());
                t.push(format!("0 of {}", g.runs.len()));
                t.extend(std::iter::repeat_n("-".to_string(), 7));
                return t;
            };
            t.push(s.mean_std_text(d));
            t.push(if s.n == g.runs.len() {
                s.n.to_string()
            } else {
                format!("{} of {}", s.n, g.runs.len())
            });
            t.push(s.ci_text(d).unwrap_or_else(|| "n/a (n=1)".into()));
            t.extend([f(s.median), f(s.min), f(s.max)]);
            match (&g.vs_best, i) {
                (_, 0) => t.extend(["best".into(), "-".into(), "".into()]),
                (Some(c), _) => {
                    t.push(c.diff_text(d));
                    t.push(match (c.p, c.p_adjusted) {
                        (Some(p), Some(adj)) => format!("{} ({})", fmt_p(p), fmt_p(adj)),
                        _ => "n/a (n=1)".into(),
                    });
                    t.push(if c.tied_with_best {
                        "≈".into()
                    } else {
                        "".into()
                    });
                }
                (None, _) => t.extend(["-".into(), "-".into(), "".into()]),
            }
            t
        })
        .collect();
    out.write_all(crate::table::render(&headers, &table).as_bytes())?;
    out.flush()?;
    Ok(0)
}

fn fmt_p(p: f64) -> String {
    if p == 0.0 {
        "0".into()
    } else if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

fn header_line(
    out: &mut impl Write,
    b: &query::Best,
    sel: &query::Selection,
    tail: &str,
) -> Result<()> {
    let runs: usize = b.groups.iter().map(|g| g.runs.len()).sum();
    writeln!(
        out,
        "{}{}: {} ({}) — sweep {}, {} {}runs in {} groups{tail}",
        b.metric,
        if b.layer == -1 {
            String::new()
        } else {
            format!(" at layer {}", b.layer)
        },
        mode_word(b.mode),
        b.goal.word(),
        b.sweep,
        runs,
        if sel.statuses.is_empty() {
            String::new()
        } else {
            format!("{} ", sel.statuses.join("/"))
        },
        b.groups.len(),
    )?;
    Ok(())
}

/// Several metrics, long: one line per (metric, group).
fn long_csv(out: &mut impl Write, results: &[query::Best]) -> Result<()> {
    const KEYS: [&str; 14] = [
        "n",
        "mean",
        "std",
        "sem",
        "ci_low",
        "ci_high",
        "median",
        "min",
        "max",
        "diff_vs_best",
        "p_vs_best",
        "p_adjusted",
        "tied_with_best",
        "best",
    ];
    let mut headers = results[0].by.clone();
    headers.push("metric".into());
    headers.extend(KEYS.iter().map(|k| k.to_string()));
    let mut w = RowWriter::new(out, Format::Csv, headers, "");
    for b in results {
        let j = b.to_json();
        for (g, gj) in b.groups.iter().zip(j["groups"].as_array().expect("groups")) {
            let mut r = g.key.clone();
            r.push(json!(b.metric));
            r.extend(KEYS.iter().map(|k| gj[*k].clone()));
            w.row(&r)?;
        }
    }
    w.finish()?;
    Ok(())
}

/// One cell of a paper table.
#[derive(Debug, Clone)]
struct Cell {
    stats: query::Stats,
    best: bool,
    tied: bool,
}

/// A paper table: row labels (one column per label key), column headings, cells.
struct Grid {
    label_keys: Vec<String>,
    rows: Vec<Vec<String>>,
    columns: Vec<String>,
    cells: Vec<Vec<Option<Cell>>>,
}

fn cells_of(b: &query::Best) -> HashMap<String, Cell> {
    b.groups
        .iter()
        .enumerate()
        .filter_map(|(i, g)| {
            let s = g.stats?;
            Some((
                serde_json::to_string(&g.key).expect("JSON"),
                Cell {
                    stats: s,
                    best: i == 0,
                    tied: i > 0 && g.vs_best.is_some_and(|c| c.tied_with_best),
                },
            ))
        })
        .collect()
}

/// Rows: the groups, in the first metric's order; columns: the metrics.
fn metrics_grid(results: &[query::Best]) -> Grid {
    let first = &results[0];
    let per: Vec<HashMap<String, Cell>> = results.iter().map(cells_of).collect();
    let mut keys: Vec<Vec<Value>> = first.groups.iter().map(|g| g.key.clone()).collect();
    for b in &results[1..] {
        for g in &b.groups {
            if !keys.contains(&g.key) {
                keys.push(g.key.clone());
            }
        }
    }
    Grid {
        label_keys: first.by.clone(),
        rows: keys
            .iter()
            .map(|k| k.iter().map(|v| table_cell(v, "-")).collect())
            .collect(),
        columns: results.iter().map(|b| b.metric.clone()).collect(),
        cells: keys
            .iter()
            .map(|k| {
                let id = serde_json::to_string(k).expect("JSON");
                per.iter().map(|m| m.get(&id).cloned()).collect()
            })
            .collect(),
    }
}

/// Rows: the values of `row` in plan order; columns: the values of `col`.
fn pivot_grid(b: &query::Best, row: &str, col: &str) -> Grid {
    let cells = cells_of(b);
    // Levels in plan order (groups are listed best first; `order` is their plan position).
    let mut by_plan: Vec<&query::Group> = b.groups.iter().collect();
    by_plan.sort_by_key(|g| g.order);
    let mut rows: Vec<Value> = Vec::new();
    let mut cols: Vec<Value> = Vec::new();
    for g in by_plan {
        if !rows.contains(&g.key[0]) {
            rows.push(g.key[0].clone());
        }
        if !cols.contains(&g.key[1]) {
            cols.push(g.key[1].clone());
        }
    }
    let sort = |v: &mut Vec<Value>| {
        if v.iter().all(Value::is_number) {
            v.sort_by(|a, b| a.as_f64().unwrap().total_cmp(&b.as_f64().unwrap()));
        }
    };
    sort(&mut rows);
    sort(&mut cols);
    Grid {
        label_keys: vec![format!("{row} \\ {col}")],
        rows: rows.iter().map(|r| vec![table_cell(r, "-")]).collect(),
        columns: cols.iter().map(|c| table_cell(c, "-")).collect(),
        cells: rows
            .iter()
            .map(|r| {
                cols.iter()
                    .map(|c| {
                        let id = serde_json::to_string(&vec![r.clone(), c.clone()]).expect("JSON");
                        cells.get(&id).cloned()
                    })
                    .collect()
            })
            .collect(),
    }
}

fn cell_text(c: &Cell, d: usize, spread: Spread, pm: &str) -> String {
    let s = &c.stats;
    let half = match spread {
        Spread::Std => s.std,
        Spread::Ci => s.ci.map(|(lo, hi)| (hi - lo) / 2.0),
        Spread::None => None,
    };
    match half {
        Some(h) => format!("{:.d$}{pm}{:.d$}", s.mean, h),
        None => format!("{:.d$}", s.mean),
    }
}

/// How a paper table marks its cells.
struct Style {
    esc: fn(&str) -> String,
    pm: &'static str,
    best: fn(&str) -> String,
    tied: fn(&str) -> String,
    missing: &'static str,
}

/// The grid's heading and rows as text in `st`'s marks.
fn grid_text(g: &Grid, d: usize, spread: Spread, st: &Style) -> (Vec<String>, Vec<Vec<String>>) {
    let mut head: Vec<String> = g.label_keys.iter().map(|s| (st.esc)(s)).collect();
    head.extend(g.columns.iter().map(|s| (st.esc)(s)));
    let rows = g
        .rows
        .iter()
        .zip(&g.cells)
        .map(|(labels, cells)| {
            let mut r: Vec<String> = labels.iter().map(|s| (st.esc)(s)).collect();
            r.extend(cells.iter().map(|c| match c {
                Some(c) => {
                    let t = cell_text(c, d, spread, st.pm);
                    if c.best {
                        (st.best)(&t)
                    } else if c.tied {
                        (st.tied)(&t)
                    } else {
                        t
                    }
                }
                None => st.missing.into(),
            }));
            r
        })
        .collect();
    (head, rows)
}

fn plain(out: &mut impl Write, g: &Grid, d: usize, spread: Spread, caption: &str) -> Result<()> {
    writeln!(out, "{caption} (here: * best, ≈ tied with the best)")?;
    let st = Style {
        esc: |s| s.to_string(),
        pm: " ± ",
        best: |t| format!("{t} *"),
        tied: |t| format!("{t} ≈"),
        missing: "-",
    };
    let (head, rows) = grid_text(g, d, spread, &st);
    out.write_all(crate::table::render(&head, &rows).as_bytes())?;
    Ok(())
}

fn markdown(out: &mut impl Write, g: &Grid, d: usize, spread: Spread, caption: &str) -> Result<()> {
    let st = Style {
        esc: |s| s.replace('|', "\\|"),
        pm: " ± ",
        best: |t| format!("**{t}**"),
        tied: |t| format!("<ins>{t}</ins>"),
        missing: "–",
    };
    let (head, rows) = grid_text(g, d, spread, &st);
    writeln!(out, "| {} |", head.join(" | "))?;
    let mut rule: Vec<&str> = vec!["---"; g.label_keys.len()];
    rule.extend(std::iter::repeat_n("--:", g.columns.len()));
    writeln!(out, "|{}|", rule.join("|"))?;
    for r in rows {
        writeln!(out, "| {} |", r.join(" | "))?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        caption
            .replace("bold", "**bold**")
            .replace("underlined", "<ins>underlined</ins>")
    )?;
    Ok(())
}

/// LaTeX special characters escaped.
fn tex(s: &str) -> String {
    let mut o = String::new();
    for ch in s.chars() {
        match ch {
            '\\' => o.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                o.push('\\');
                o.push(ch);
            }
            '~' => o.push_str("\\textasciitilde{}"),
            '^' => o.push_str("\\textasciicircum{}"),
            '±' => o.push_str("$\\pm$"),
            '×' => o.push_str("$\\times$"),
            '≥' => o.push_str("$\\geq$"),
            '–' => o.push_str("--"),
            c => o.push(c),
        }
    }
    o
}

fn latex(out: &mut impl Write, g: &Grid, d: usize, spread: Spread, caption: &str) -> Result<()> {
    writeln!(out, "% {caption}")?;
    writeln!(out, "% needs \\usepackage{{booktabs}}")?;
    writeln!(
        out,
        "\\begin{{tabular}}{{{}{}}}",
        "l".repeat(g.label_keys.len()),
        "r".repeat(g.columns.len())
    )?;
    let st = Style {
        esc: tex,
        pm: " $\\pm$ ",
        best: |t| format!("\\textbf{{{t}}}"),
        tied: |t| format!("\\underline{{{t}}}"),
        missing: "--",
    };
    let (head, rows) = grid_text(g, d, spread, &st);
    writeln!(out, "\\toprule")?;
    writeln!(out, "{} \\\\", head.join(" & "))?;
    writeln!(out, "\\midrule")?;
    for r in rows {
        writeln!(out, "{} \\\\", r.join(" & "))?;
    }
    writeln!(out, "\\bottomrule")?;
    writeln!(out, "\\end{{tabular}}")?;
    Ok(())
}

/// `simsweep importance`.
pub(super) fn importance(
    db: &Path,
    sweep: &str,
    q: &query::BestQuery,
    select: &SelectArgs,
    format: Format,
    chart: Option<&Path>,
) -> Result<i32> {
    let chart_format = chart.map(crate::plot::Format::from_path).transpose()?;
    let store = read::open_results(db)?;
    let c = &store.conn;
    let sw = query::sweep(c, sweep).map_err(read::qerr)?;
    let sel = select.selection(&["done"]);
    let imp = query::importance::importance(c, &sw, &sel, q).map_err(read::qerr)?;
    let mut out = stdout();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &imp)?;
            writeln!(out)?;
        }
        _ => {
            let headers: Vec<String> = ["term", "share", "sum_sq", "df", "F", "p"]
                .map(String::from)
                .to_vec();
            let rows: Vec<Vec<Value>> = imp
                .terms
                .iter()
                .map(|t| {
                    vec![
                        json!(t.term),
                        json!(t.share),
                        json!(t.sum_sq),
                        json!(t.df),
                        opt_num(t.f),
                        opt_num(t.p),
                    ]
                })
                .collect();
            if format == Format::Csv {
                let mut w = RowWriter::new(&mut out, Format::Csv, headers, "");
                for r in &rows {
                    w.row(r)?;
                }
                w.finish()?;
            } else {
                writeln!(
                    out,
                    "{} ({}, {}) — sweep {}, {} runs with a value: {}{}",
                    imp.metric,
                    mode_word(imp.mode),
                    imp.goal.word(),
                    imp.sweep,
                    imp.runs,
                    imp.note,
                    imp.oob_r2
                        .map_or(String::new(), |r| format!("; out-of-bag R² {r:.3}"))
                )?;
                let forest = imp.method == "random_forest";
                let headers: Vec<String> = if forest {
                    ["term", "share", "OOB MSE increase", "levels"]
                        .map(String::from)
                        .to_vec()
                } else {
                    ["term", "share", "sum of squares", "df", "F", "p"]
                        .map(String::from)
                        .to_vec()
                };
                let table: Vec<Vec<String>> = imp
                    .terms
                    .iter()
                    .map(|t| {
                        let mut r = vec![
                            t.term.clone(),
                            format!("{:.1} %", 100.0 * t.share),
                            query::output::fmt_sig(t.sum_sq, 4),
                        ];
                        if forest {
                            r.push(format!("{}", t.df as i64 + 1));
                        } else {
                            r.push(format!("{}", t.df));
                            r.push(t.f.map_or("-".into(), |f| format!("{f:.2}")));
                            r.push(t.p.map_or("-".into(), fmt_p));
                        }
                        r
                    })
                    .collect();
                out.write_all(crate::table::render(&headers, &table).as_bytes())?;
            }
        }
    }
    out.flush()?;
    if let (Some(path), Some(f)) = (chart, chart_format) {
        let fig = crate::plot::charts::importance_figure(&imp);
        let bytes = crate::plot::render_bytes(&fig, None, f)?;
        crate::plot::write_output(path, &bytes)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(0)
}
