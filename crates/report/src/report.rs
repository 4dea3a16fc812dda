//! `simsweep report`: one self-contained HTML file per sweep — the sweep file, the runs, the
//! best-per-key tables and the default charts as inline SVG. No scripts, no external resources:
//! it opens offline, in a mail attachment or an archive, as it was written.

use super::charts;
use super::data::{self, Layers, SweepData};
use super::figure::Figure;
use super::{Kind, Mode, Request};
use anyhow::Result;
use rayon::prelude::*;
use rusqlite::Connection;
use simsweep_core::BadInput;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Escape text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A headline score column of the run table.
struct Headline {
    metric: &'static str,
    mode: Mode,
    header: String,
}

/// The run table's score columns: the query layer's headlines (`runs`: best STS-B dev, final avg,
/// STS-B test, SICK-R test; [`simsweep_core::query::HEADLINES`]), with the final STS-B dev after the
/// best and the final loss last.
fn headlines() -> Vec<Headline> {
    let mut v: Vec<Headline> = simsweep_core::query::HEADLINES
        .iter()
        .map(|h| Headline {
            metric: h.metric,
            mode: h.mode,
            header: match (h.metric, h.mode) {
                ("avg", _) => "avg (7 STS)".into(),
                (m, Mode::Best) => format!("best {m}"),
                (m, Mode::Final) => m.to_string(),
            },
        })
        .collect();
    v.insert(
        1,
        Headline {
            metric: "stsb_dev",
            mode: Mode::Final,
            header: "final stsb_dev".into(),
        },
    );
    v.push(Headline {
        metric: "loss",
        mode: Mode::Final,
        header: "final loss".into(),
    });
    v
}

static HEADLINES: std::sync::LazyLock<Vec<Headline>> = std::sync::LazyLock::new(headlines);

/// The columns of the summary tables (indices into [`headlines`]): best and final STS-B dev, avg.
const SUMMARY: [usize; 3] = [0, 1, 2];

/// Moving-average window of the report's noisy per-step curves (loss, gradient components).
const REPORT_SMOOTH: usize = 9;

/// The default charts of a report, in page order, with their headings.
pub fn default_charts(conn: &Connection, sweep: &SweepData) -> Result<Vec<(String, Request)>> {
    let k = &sweep.swept_keys;
    let color = k.first().cloned();
    let facet = k.get(1).cloned();
    let mut out = Vec::new();
    for metric in ["loss", "stsb_dev"] {
        let mut r = Request::new(Kind::Curves);
        r.metric = Some(metric.into());
        r.color_by = color.clone();
        r.facet_by = facet.clone();
        if metric == "loss" {
            r.smooth = REPORT_SMOOTH;
        }
        out.push((format!("Learning curve: {metric}"), r));
    }
    for (metric, mode) in [
        ("stsb_dev", Mode::Best),
        ("stsb_dev", Mode::Final),
        ("avg", Mode::Final),
    ] {
        let mut r = Request::new(Kind::Final);
        r.metric = Some(metric.into());
        r.mode = mode;
        r.x_key = k.first().cloned();
        r.color_by = k.get(1).cloned();
        out.push((
            format!(
                "{} {metric} by {}",
                if mode == Mode::Best { "Best" } else { "Final" },
                k.first().map(String::as_str).unwrap_or("seed")
            ),
            r,
        ));
    }
    if !k.is_empty() {
        let mut pc = Request::new(Kind::Parallel);
        pc.metric = Some("stsb_dev".into());
        out.push((
            "Parallel coordinates: swept keys against best stsb_dev".into(),
            pc,
        ));
    }
    let mut au = Request::new(Kind::AlignUniform);
    au.color_by = color.clone();
    out.push(("Alignment and uniformity (SimCSE Fig. 2)".into(), au));
    let mut sp = Request::new(Kind::Spectrum);
    sp.color_by = color.clone();
    out.push(("Singular value spectrum (SimCSE §5)".into(), sp));
    let mut gr = Request::new(Kind::Gradients);
    gr.color_by = color.clone();
    gr.smooth = REPORT_SMOOTH;
    out.push(("Gradient components (Li et al. 2024)".into(), gr));
    // Per-layer profiles only when layers were probed.
    if let Some(id) = data::metric_id(conn, "token_anisotropy")? {
        if data::recorded(conn, &sweep.runs, id, Layers::PerLayer)? {
            for metric in ["token_anisotropy", "intra_sentence_similarity"] {
                let mut l = Request::new(Kind::Layers);
                l.metric = Some(metric.into());
                l.color_by = color.clone();
                out.push((format!("Per-layer {metric} (Xiao et al. 2023)"), l));
            }
        }
    }
    Ok(out)
}

/// The index of the largest value, the first one on ties; NaN values are skipped.
fn argmax_first(values: impl IntoIterator<Item = f64>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in values.into_iter().enumerate() {
        if !v.is_nan() && best.is_none_or(|b| v > b.1) {
            best = Some((i, v));
        }
    }
    best.map(|b| b.0)
}

fn mean_std(v: &[f64]) -> Option<(f64, f64, usize)> {
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Some((m, s, v.len()))
}

fn fmt_ms(v: &[f64]) -> String {
    match mean_std(v) {
        None => "–".into(),
        Some((m, _, 1)) => format!("{m:.2}"),
        Some((m, s, _)) => format!("{m:.2} ± {s:.2}"),
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 0.01 || v == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.2e}")
    }
}

const STYLE: &str = r#"
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 24px 32px; color: #1a1a1a; max-width: 1500px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; margin-top: 36px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 22px 0 6px; }
.meta { color: #555; font-size: 13px; }
.warn { background: #fff4e5; border-left: 4px solid #e8890c; padding: 6px 12px; margin: 10px 0; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 14px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: left; white-space: nowrap; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.top td { font-weight: bold; }
.chart { margin: 8px 0 22px; } .chart svg { max-width: 100%; height: auto; border: 1px solid #eee; }
pre { background: #f7f7f7; border: 1px solid #e4e4e4; padding: 10px; font-size: 12px; overflow-x: auto; }
.status-failed, .status-diverged { color: #b00; } .status-running, .status-pending, .status-pruned { color: #666; }
.missing { color: #777; font-size: 13px; }
ul.lead { font-size: 14px; }
"#;

/// Build the report of a sweep: the HTML text. Charts are read from the database one after
/// another and rendered to SVG in parallel.
pub fn html(conn: &Connection, sweep: &SweepData, db: &std::path::Path) -> Result<String> {
    // Headline scores per run.
    let mut ids: Vec<Option<i64>> = Vec::new();
    for h in HEADLINES.iter() {
        ids.push(data::metric_id(conn, h.metric)?);
    }
    let mut scores: Vec<Vec<Option<data::Score>>> = Vec::new();
    for r in &sweep.runs {
        let mut row = Vec::new();
        for (h, id) in HEADLINES.iter().zip(&ids) {
            row.push(match id {
                Some(id) => data::run_score(conn, r.pk, *id, h.metric, h.mode)?,
                None => None,
            });
        }
        scores.push(row);
    }
    let shown: Vec<usize> = (0..HEADLINES.len())
        .filter(|&j| scores.iter().any(|row| row[j].is_some()))
        .collect();

    // Charts: read (sequentially, one connection), then render in parallel.
    let mut figures: Vec<(String, std::result::Result<Figure, String>)> = Vec::new();
    for (heading, mut req) in default_charts(conn, sweep)? {
        // The page's heading names the chart.
        req.title = Some(String::new());
        let fig = match charts::figure(conn, sweep, &req) {
            Ok(f) => Ok(f),
            Err(e) if e.downcast_ref::<BadInput>().is_some() => Err(e.to_string()),
            Err(e) => return Err(e),
        };
        figures.push((heading, fig));
    }
    let rendered: Vec<(String, std::result::Result<String, String>)> = figures
        .into_par_iter()
        .map(|(h, f)| {
            let svg = f.and_then(|f| {
                super::render::svg(&f, None)
                    .map(|s| s.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1))
                    .map_err(|e| format!("{e:#}"))
            });
            (h, svg)
        })
        .collect();

    let mut o = String::new();
    let title = format!("simsweep report: {}", sweep.name);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    let _ = writeln!(o, "<h1>{}</h1>", esc(&title));
    if !sweep.description.is_empty() {
        let _ = writeln!(o, "<p>{}</p>", esc(&sweep.description));
    }
    let savings = simsweep_core::query::sweep(conn, &sweep.name)
        .ok()
        .and_then(|info| {
            simsweep_core::query::savings(conn, info.sweep_id)
                .ok()
                .flatten()
        });
    let count = |s: &str| sweep.runs.iter().filter(|r| r.status == s).count();
    let _ = writeln!(
        o,
        "<p class=\"meta\">{} runs ({} done, {} running, {} pending, {} failed or diverged{}) · swept: {} · {} seed{} · database {} · simsweep {}</p>",
        sweep.runs.len(),
        count("done"),
        count("running"),
        count("pending") + count("cancelled"),
        count("failed") + count("diverged"),
        if count("pruned") > 0 { format!(", {} pruned", count("pruned")) } else { String::new() },
        if sweep.swept_keys.is_empty() { "nothing".into() } else { esc(&sweep.swept_keys.join(", ")) },
        sweep.seed_count(),
        if sweep.seed_count() == 1 { "" } else { "s" },
        esc(&db.display().to_string()),
        esc(&crate::code_version())
    );
    if let Some(sv) = savings {
        let _ = writeln!(
            o,
            "<p class=\"meta\" id=\"early-stopping\">{} (pruned runs: the run table's status; each decision is in its run's events)</p>",
            esc(&sv.line())
        );
    }

    fingerprint_section(&mut o, conn, sweep)?;

    // Best per key.
    let _ = writeln!(o, "<h2 id=\"best\">Best per key</h2>");
    let vals = |runs: &[usize], j: usize| -> Vec<f64> {
        runs.iter()
            .filter_map(|&i| scores[i][j].map(|s| s.value))
            .collect()
    };
    let mean_of = |runs: &[usize], j: usize| mean_std(&vals(runs, j)).map(|m| m.0);
    // Configurations: all swept keys, seeds pooled.
    let mut configs: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
    let mut order: Vec<Vec<String>> = Vec::new();
    for (i, r) in sweep.runs.iter().enumerate() {
        let key: Vec<String> = sweep.swept_keys.iter().map(|k| r.display(k)).collect();
        if !configs.contains_key(&key) {
            order.push(key.clone());
        }
        configs.entry(key).or_default().push(i);
    }
    // The headline: which configuration leads on each summary score.
    let describe = |key: &[String]| -> String {
        if key.is_empty() {
            "the sweep's only configuration".into()
        } else {
            sweep
                .swept_keys
                .iter()
                .zip(key)
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut lines = Vec::new();
    for &j in &SUMMARY {
        let means: Vec<(&Vec<String>, f64)> = order
            .iter()
            .filter_map(|k| mean_of(&configs[k], j).map(|m| (k, m)))
            .collect();
        if let Some(i) = argmax_first(means.iter().map(|m| m.1)) {
            let (k, m) = means[i];
            let ties = means.iter().filter(|o| o.1 == m).count() - 1;
            lines.push(format!(
                "<li>highest {}: <b>{}</b> ({}){}</li>",
                esc(&HEADLINES[j].header),
                esc(&describe(k)),
                esc(&fmt_ms(&vals(&configs[k], j))),
                match ties {
                    0 => String::new(),
                    1 => ", tied with 1 other configuration".into(),
                    n => format!(", tied with {n} other configurations"),
                }
            ));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(o, "<ul class=\"lead\">\n{}\n</ul>", lines.join("\n"));
    }
    let rank = |runs: &[usize]| mean_of(runs, SUMMARY[0]);
    order.sort_by(|a, b| {
        let (x, y) = (rank(&configs[a]), rank(&configs[b]));
        y.unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&x.unwrap_or(f64::NEG_INFINITY))
    });
    let heads: String = SUMMARY
        .iter()
        .map(|&j| format!("<th>{}</th>", esc(&HEADLINES[j].header)))
        .collect();
    let cells = |runs: &[usize]| -> String {
        SUMMARY
            .iter()
            .map(|&j| format!("<td class=\"num\">{}</td>", esc(&fmt_ms(&vals(runs, j)))))
            .collect()
    };
    let _ = writeln!(
        o,
        "<h3>Configurations, by best stsb_dev (mean ± std over seeds)</h3>\n<table>\n<tr>{}<th>runs</th>{heads}</tr>",
        sweep
            .swept_keys
            .iter()
            .map(|k| format!("<th>{}</th>", esc(k)))
            .collect::<String>()
    );
    for (n, key) in order.iter().enumerate() {
        let runs = &configs[key];
        let _ = writeln!(
            o,
            "<tr{}>{}<td class=\"num\">{}</td>{}</tr>",
            if n == 0 && rank(runs).is_some() {
                " class=\"top\""
            } else {
                ""
            },
            key.iter()
                .map(|v| format!("<td>{}</td>", esc(v)))
                .collect::<String>(),
            runs.len(),
            cells(runs),
        );
    }
    let _ = writeln!(o, "</table>");
    for k in &sweep.swept_keys {
        let _ = writeln!(
            o,
            "<h3>By {}</h3>\n<table>\n<tr><th>{}</th><th>runs</th>{heads}<th>best run (best stsb_dev)</th></tr>",
            esc(k),
            esc(k)
        );
        let values = sweep.values_of(k);
        let per: Vec<Vec<usize>> = values
            .iter()
            .map(|v| {
                (0..sweep.runs.len())
                    .filter(|&i| sweep.runs[i].display(k) == *v)
                    .collect()
            })
            .collect();
        let top = argmax_first(per.iter().map(|r| rank(r).unwrap_or(f64::NAN)));
        for (i, (v, runs)) in values.iter().zip(&per).enumerate() {
            let best_run = argmax_first(
                runs.iter()
                    .map(|&i| scores[i][SUMMARY[0]].map_or(f64::NAN, |s| s.value)),
            )
            .map(|i| sweep.runs[runs[i]].id.clone())
            .unwrap_or_else(|| "–".into());
            let _ = writeln!(
                o,
                "<tr{}><td>{}</td><td class=\"num\">{}</td>{}<td><code>{}</code></td></tr>",
                if Some(i) == top { " class=\"top\"" } else { "" },
                esc(v),
                runs.len(),
                cells(runs),
                esc(&best_run)
            );
        }
        let _ = writeln!(o, "</table>");
    }
    let _ = writeln!(
        o,
        "<p class=\"meta\">best stsb_dev: the highest STS-B dev Spearman × 100 over a run's evaluations (step 0, the initial model, included); final stsb_dev: at the last evaluation; avg: the mean of STS12–16, STS-B test and SICK-R test scored with the best checkpoint. Mean ± sample std over the runs of the row; bold: the highest best stsb_dev.</p>"
    );

    seed_statistics(&mut o, conn, sweep);

    // Charts.
    let _ = writeln!(o, "<h2 id=\"charts\">Charts</h2>");
    for (heading, svg) in &rendered {
        match svg {
            Ok(svg) => {
                let _ = writeln!(
                    o,
                    "<h3>{}</h3>\n<div class=\"chart\">\n{}\n</div>",
                    esc(heading),
                    svg
                );
            }
            Err(why) => {
                let _ = writeln!(
                    o,
                    "<h3>{}</h3>\n<p class=\"missing\">Not drawn: {}</p>",
                    esc(heading),
                    esc(why)
                );
            }
        }
    }

    // Runs.
    let _ = writeln!(o, "<h2 id=\"runs\">Runs</h2>\n<table>\n<tr><th>run</th>");
    for k in &sweep.swept_keys {
        let _ = write!(o, "<th>{}</th>", esc(k));
    }
    let _ = write!(o, "<th>seed</th><th>status</th><th>step</th>");
    for &j in &shown {
        let _ = write!(o, "<th>{}</th>", esc(&HEADLINES[j].header));
    }
    let _ = writeln!(o, "</tr>");
    for (i, r) in sweep.runs.iter().enumerate() {
        let _ = write!(o, "<tr><td><code>{}</code></td>", esc(&r.id));
        for k in &sweep.swept_keys {
            let _ = write!(o, "<td>{}</td>", esc(&r.display(k)));
        }
        let _ = write!(
            o,
            "<td class=\"num\">{}</td><td class=\"status-{}\">{}</td><td class=\"num\">{}</td>",
            r.seed,
            esc(&r.status),
            esc(&r.status),
            r.step.map_or("–".into(), |s| s.to_string())
        );
        for &j in &shown {
            let cell = match scores[i][j] {
                Some(s) if HEADLINES[j].mode == Mode::Best => {
                    format!(
                        "{} <span class=\"meta\">@{}</span>",
                        fmt_num(s.value),
                        s.step
                    )
                }
                Some(s) => fmt_num(s.value),
                None => "–".into(),
            };
            let _ = write!(o, "<td class=\"num\">{cell}</td>");
        }
        let _ = writeln!(o, "</tr>");
    }
    let _ = writeln!(o, "</table>");
    let failed: Vec<&data::Run> = sweep
        .runs
        .iter()
        .filter(|r| matches!(r.status.as_str(), "failed" | "diverged"))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(o, "<h3>Failed and diverged runs</h3>\n<ul>");
        for r in failed {
            let _ = writeln!(
                o,
                "<li><code>{}</code> {} at step {}: {}</li>",
                esc(&r.id),
                esc(&r.status),
                r.step.map_or("–".into(), |s| s.to_string()),
                esc(r.error.as_deref().unwrap_or(""))
            );
        }
        let _ = writeln!(o, "</ul>");
    }

    // The sweep file.
    let _ = writeln!(
        o,
        "<h2 id=\"sweep-file\">Sweep file</h2>\n<p class=\"meta\">{} (as last planned)</p>\n<pre>{}</pre>",
        esc(&sweep.file_path),
        esc(&sweep.file_text)
    );
    let _ = writeln!(o, "</body>\n</html>");
    Ok(o)
}

/// The seed statistics of best stsb_dev (intervals, the comparison with the best configuration,
/// the groups not distinguishable from it) and which settings matter (the ANOVA or forest shares
/// with their bar chart): the query layer's `best` and `importance`, as the CLI prints them.
fn seed_statistics(o: &mut String, conn: &Connection, sweep: &SweepData) {
    use simsweep_core::query;
    let _ = writeln!(
        o,
        "<h2 id=\"stats\">Seed statistics and which settings matter</h2>"
    );
    let info = match query::sweep(conn, &sweep.name) {
        Ok(i) => i,
        Err(e) => {
            let _ = writeln!(o, "<p class=\"missing\">{}</p>", esc(&e.to_string()));
            return;
        }
    };
    let sel = query::Selection::default().with_statuses(&["done"]);
    let q = query::BestQuery {
        metric: "stsb_dev".into(),
        layer: -1,
        mode: Mode::Best,
        goal: None,
        by: None,
        level: 0.95,
    };
    match query::best(conn, &info, &sel, &q) {
        Ok(b) => {
            let _ = writeln!(
                o,
                "<h3>Best stsb_dev per configuration: 95 % intervals and the comparison with the best</h3>\n<table>\n<tr>{}<th>n</th><th>mean ± std</th><th>95 % CI</th><th>Δ vs best [95 % CI]</th><th>p (Holm)</th><th></th></tr>",
                b.by.iter().map(|k| format!("<th>{}</th>", esc(k))).collect::<String>()
            );
            for (i, g) in b.groups.iter().enumerate() {
                let keys: String = g
                    .key
                    .iter()
                    .map(|v| format!("<td>{}</td>", esc(&simsweep_core::spec::value::display(v))))
                    .collect();
                let Some(st) = &g.stats else {
                    let _ = writeln!(
                        o,
                        "<tr>{keys}<td class=\"num\">0</td><td colspan=\"5\">no value</td></tr>"
                    );
                    continue;
                };
                let ms = st.mean_std_text(2);
                let ci = st.ci_text(2).unwrap_or_else(|| "n/a (one seed)".into());
                let (diff, p, mark) = match (&g.vs_best, i) {
                    (_, 0) => ("best".to_string(), "–".to_string(), ""),
                    (Some(c), _) => (
                        c.diff_text(2),
                        match (c.p, c.p_adjusted) {
                            (Some(p), Some(a)) => format!("{p:.3} ({a:.3}, {})", c.test),
                            _ => "n/a (one seed)".into(),
                        },
                        if c.tied_with_best { "≈ best" } else { "" },
                    ),
                    (None, _) => ("–".into(), "–".into(), ""),
                };
                let _ = writeln!(
                    o,
                    "<tr{}>{keys}<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{mark}</td></tr>",
                    if i == 0 { " class=\"top\"" } else { "" },
                    st.n,
                    esc(&ms),
                    esc(&ci),
                    esc(&diff),
                    esc(&p)
                );
            }
            let _ = writeln!(o, "</table>\n<p class=\"meta\">95 % CI of the mean: Student t over the configuration's seeds. Δ: the configuration's mean minus the best's, with the interval and p-value of a paired t-test over the seeds both ran (Welch's t-test otherwise), Holm-adjusted over the table; ≈ best: adjusted p ≥ 0.05, not distinguishable from the best at that level. <code>simsweep best {} --metric stsb_dev</code> prints the same.</p>", esc(&sweep.name));
        }
        Err(e) => {
            let _ = writeln!(o, "<p class=\"missing\">{}</p>", esc(&e.to_string()));
        }
    }
    match query::importance::importance(conn, &info, &sel, &q) {
        Ok(imp) => {
            let _ = writeln!(
                o,
                "<h3>Which settings matter (best stsb_dev)</h3>\n<p class=\"meta\">{}{}</p>\n<table>\n<tr><th>term</th><th>share of the variance</th><th>F</th><th>p</th></tr>",
                esc(&imp.note),
                imp.oob_r2.map_or(String::new(), |r| format!("; out-of-bag R² {r:.3}"))
            );
            for t in &imp.terms {
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td class=\"num\">{:.1} %</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    esc(&t.term),
                    100.0 * t.share,
                    t.f.map_or("–".into(), |f| format!("{f:.2}")),
                    t.p.map_or("–".into(), |p| format!("{p:.2e}"))
                );
            }
            let _ = writeln!(o, "</table>");
            match super::render::svg(&charts::importance_figure(&imp), None) {
                Ok(svg) => {
                    // Inline SVG needs no namespace (and the report names no URL).
                    let svg = svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
                    let _ = writeln!(o, "<div class=\"chart\">\n{svg}\n</div>");
                }
                Err(e) => {
                    let _ = writeln!(o, "<p class=\"missing\">{}</p>", esc(&e.to_string()));
                }
            }
        }
        Err(e) => {
            let _ = writeln!(
                o,
                "<p class=\"missing\">Which settings matter: {}</p>",
                esc(&e.to_string())
            );
        }
    }
}

/// One line when every run shares its reproducibility fingerprint; a warning with the runs side
/// by side, by fingerprint, when they differ (another simsweep commit, libtorch, device, thread
/// count, precision, evaluation mode, pooler or max length).
fn fingerprint_section(o: &mut String, conn: &Connection, sweep: &SweepData) -> Result<()> {
    let pks: Vec<i64> = sweep.runs.iter().map(|r| r.pk).collect();
    let fps = simsweep_core::query::fingerprints(conn, &pks)?;
    let (keys, groups) = simsweep_core::query::fingerprint_groups(&fps);
    let text = |v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "—".into(),
    };
    match groups.len() {
        0 => {}
        1 => {
            let (f, runs) = &groups[0];
            let parts: Vec<String> = f
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k} {}", text(Some(v))))
                        .collect()
                })
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "<p class=\"meta\" id=\"fingerprint\">{} of {} runs share one fingerprint: {}</p>",
                runs.len(),
                sweep.runs.len(),
                esc(&parts.join(" · "))
            );
        }
        n => {
            let _ = writeln!(
                o,
                "<div class=\"warn\" id=\"fingerprint\"><p><b>These runs were computed under {n} different fingerprints</b>: scores compared across them may differ for reasons the sweep file does not show ({}).</p>\n<table>\n<tr>{}<th>runs</th></tr>",
                esc(&keys.join(", ")),
                keys.iter().map(|k| format!("<th>{}</th>", esc(k))).collect::<String>()
            );
            for (f, runs) in &groups {
                let ids: Vec<&str> = runs.iter().map(|&i| sweep.runs[i].id.as_str()).collect();
                let _ = writeln!(
                    o,
                    "<tr>{}<td>{} ({})</td></tr>",
                    keys.iter()
                        .map(|k| format!("<td>{}</td>", esc(&text(f.get(k.as_str())))))
                        .collect::<String>(),
                    ids.len(),
                    esc(&ids.join(", "))
                );
            }
            let _ = writeln!(o, "</table></div>");
        }
    }
    Ok(())
}
