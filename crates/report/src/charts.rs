//! From a sweep's data to a [`Figure`], one builder per chart kind.
//!
//! Runs are grouped by every swept key (seeds of one configuration form a group): a group of one
//! run is drawn as its plain line; a group of several as the mean over its seeds with a translucent
//! min–max band (`final`: min–max error bars). Colour shows `--color-by`, small multiples
//! `--facet-by` (shared axes, titles `key=value`), and the remaining swept keys, if any, are told
//! apart by line style (solid, dashed, dotted, long dashes). Legend entries read `key=value`.

use super::data::{self, Layers, Run, SweepData};
use super::figure::{
    downsample, downsample_band, palette, smooth, Axis, Figure, Label, LegendEntry, Markers, Panel,
    Series, GREY,
};
use super::{Kind, Mode, Request};
use anyhow::Result;
use rusqlite::Connection;
use simsweep_core::BadInput;
use std::collections::BTreeMap;

/// Points kept per line: about one per pixel column of a panel in PNG output (see
/// [`downsample`]).
const LINE_POINTS: usize = 900;

/// The gradient components of Li et al. (2024), as the trainer records them.
pub const GRADIENT_COMPONENTS: [&str; 4] = ["gd_mean", "w_entropy", "w_max", "ratio_mean"];

/// The default metric of a kind (`curves`: loss, `final`: stsb_dev, `layers`: token_anisotropy).
pub fn default_metric(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Curves => Some("loss"),
        Kind::Final | Kind::Parallel => Some("stsb_dev"),
        Kind::Layers => Some("token_anisotropy"),
        _ => None,
    }
}

/// Build the figure a request asks for.
pub fn figure(conn: &Connection, sweep: &SweepData, req: &Request) -> Result<Figure> {
    if sweep.runs.is_empty() {
        return Err(BadInput(format!("sweep `{}` has no runs", sweep.name)).into());
    }
    if req.metric.is_some() && default_metric(req.kind).is_none() {
        return Err(BadInput(format!(
            "--metric does not apply to --kind {} (it draws {})",
            req.kind.name(),
            match req.kind {
                Kind::AlignUniform => "alignment against uniformity",
                Kind::Spectrum => "sv_01…sv_64",
                _ => "gd_mean, w_entropy, w_max and ratio_mean",
            }
        ))
        .into());
    }
    if req.smooth > 1 && !matches!(req.kind, Kind::Curves | Kind::Gradients) {
        return Err(BadInput(format!(
            "--smooth applies to --kind curves and gradients, not {}",
            req.kind.name()
        ))
        .into());
    }
    let metric = req
        .metric
        .clone()
        .or_else(|| default_metric(req.kind).map(str::to_string))
        .unwrap_or_default();
    let mut fig = match req.kind {
        Kind::Curves => curves(conn, sweep, req, &metric)?,
        Kind::Final => final_values(conn, sweep, req, &metric)?,
        Kind::AlignUniform => align_uniform(conn, sweep, req)?,
        Kind::Spectrum => spectrum(conn, sweep, req)?,
        Kind::Layers => layers(conn, sweep, req, &metric)?,
        Kind::Gradients => gradients(conn, sweep, req)?,
        Kind::Parallel => parallel(conn, sweep, req, &metric)?,
    };
    if let Some(t) = &req.title {
        fig.title = t.clone();
    }
    let styles = fig
        .panels
        .iter()
        .flat_map(|p| p.series.iter().map(|s| s.dash))
        .max()
        .unwrap_or(0);
    if styles >= super::figure::DASHES.len() {
        let warn = format!(
            "{} line-style combinations share {} styles:\nsplit them with --facet-by",
            styles + 1,
            super::figure::DASHES.len()
        );
        fig.note = Some(match fig.note.take() {
            Some(n) => format!("{n}\n{warn}"),
            None => warn,
        });
    }
    Ok(fig)
}

// ---------------------------------------------------------------------------------------------
// Dimensions and groups.

/// How runs map to colour, facets and line style.
#[derive(Debug, Clone)]
struct Dims {
    color: Option<String>,
    facet: Option<String>,
    /// Keys shown by line style: the grouping keys that are neither colour, facet nor excluded.
    style: Vec<String>,
    /// Keys that define a group: every swept key, plus `seed` when it is a dimension.
    group: Vec<String>,
}

fn dims(sweep: &SweepData, req: &Request, exclude: &[&str], default_color: bool) -> Result<Dims> {
    if let Some(k) = &req.color_by {
        sweep.check_key("--color-by", k)?;
    }
    if let Some(k) = &req.facet_by {
        sweep.check_key("--facet-by", k)?;
        if req.color_by.as_deref() == Some(k.as_str()) {
            return Err(
                BadInput(format!("--color-by and --facet-by name the same key `{k}`")).into(),
            );
        }
    }
    for x in exclude {
        if req.color_by.as_deref() == Some(*x) || req.facet_by.as_deref() == Some(*x) {
            return Err(BadInput(format!(
                "`{x}` is on the x axis; --color-by and --facet-by need another key"
            ))
            .into());
        }
    }
    let color = req.color_by.clone().or_else(|| {
        if !default_color {
            return None;
        }
        sweep
            .swept_keys
            .iter()
            .find(|k| Some(k.as_str()) != req.facet_by.as_deref() && !exclude.contains(&k.as_str()))
            .cloned()
    });
    let mut group = sweep.swept_keys.clone();
    let seed_used = color.as_deref() == Some("seed")
        || req.facet_by.as_deref() == Some("seed")
        || exclude.contains(&"seed");
    if seed_used {
        group.push("seed".into());
    }
    let style = group
        .iter()
        .filter(|k| {
            Some(k.as_str()) != color.as_deref()
                && Some(k.as_str()) != req.facet_by.as_deref()
                && !exclude.contains(&k.as_str())
        })
        .cloned()
        .collect();
    Ok(Dims {
        color,
        facet: req.facet_by.clone(),
        style,
        group,
    })
}

/// Runs of one configuration (all grouping keys equal).
#[derive(Debug, Clone)]
struct Group {
    runs: Vec<usize>,
    color: usize,
    facet: usize,
    style: usize,
    /// `key=value, …` over the grouping keys.
    label: String,
}

struct Groups {
    groups: Vec<Group>,
    color_values: Vec<String>,
    facet_values: Vec<String>,
    /// Labels of the line styles (`key=value, …` of the style keys), in style order.
    style_labels: Vec<String>,
}

fn kv(keys: &[String], run: &Run) -> String {
    keys.iter()
        .map(|k| format!("{k}={}", run.display(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn make_groups(sweep: &SweepData, d: &Dims) -> Groups {
    let color_values = d
        .color
        .as_ref()
        .map(|k| sweep.values_of(k))
        .unwrap_or_default();
    let facet_values = d
        .facet
        .as_ref()
        .map(|k| sweep.values_of(k))
        .unwrap_or_default();
    // Style combinations ordered by each key's value order.
    let orders: Vec<Vec<String>> = d.style.iter().map(|k| sweep.values_of(k)).collect();
    let style_pos = |r: &Run| -> Vec<usize> {
        d.style
            .iter()
            .zip(&orders)
            .map(|(k, o)| o.iter().position(|v| *v == r.display(k)).unwrap_or(0))
            .collect()
    };
    let mut combos: Vec<(Vec<usize>, String)> = Vec::new();
    for r in &sweep.runs {
        let p = style_pos(r);
        if !combos.iter().any(|c| c.0 == p) {
            combos.push((p, kv(&d.style, r)));
        }
    }
    combos.sort();
    let mut groups: Vec<Group> = Vec::new();
    let mut by_key: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for (i, r) in sweep.runs.iter().enumerate() {
        let key: Vec<String> = d.group.iter().map(|k| r.display(k)).collect();
        if let Some(&g) = by_key.get(&key) {
            groups[g].runs.push(i);
            continue;
        }
        let pos = |vals: &[String], k: &Option<String>| {
            k.as_ref()
                .and_then(|k| vals.iter().position(|v| *v == r.display(k)))
                .unwrap_or(0)
        };
        let sp = style_pos(r);
        by_key.insert(key, groups.len());
        groups.push(Group {
            runs: vec![i],
            color: pos(&color_values, &d.color),
            facet: pos(&facet_values, &d.facet),
            style: combos.iter().position(|c| c.0 == sp).unwrap_or(0),
            label: kv(&d.group, r),
        });
    }
    Groups {
        groups,
        color_values,
        facet_values,
        style_labels: combos.into_iter().map(|c| c.1).collect(),
    }
}

/// The legend: one entry per colour value, one per line style (grey), the seed band.
fn legend(
    d: &Dims,
    g: &Groups,
    style_labels: &[String],
    band: bool,
    markers: bool,
) -> Vec<LegendEntry> {
    let mut out = Vec::new();
    if d.color.is_some() {
        for i in 0..g.color_values.len() {
            out.push(LegendEntry::Line {
                label: color_label(d, g, i).expect("a colour key"),
                color: palette(i, g.color_values.len()),
                dash: 0,
                marker: markers,
            });
        }
    }
    if style_labels.len() > 1 {
        for (i, l) in style_labels.iter().enumerate() {
            out.push(LegendEntry::Line {
                label: l.clone(),
                color: if d.color.is_some() {
                    GREY
                } else {
                    palette(0, 1)
                },
                dash: i,
                marker: false,
            });
        }
    }
    if band {
        out.push(LegendEntry::Band("min–max over seeds".into()));
    }
    out
}

/// The legend label of colour value `i` (`key=value`); `None` without a colour key.
fn color_label(d: &Dims, g: &Groups, i: usize) -> Option<String> {
    d.color
        .as_ref()
        .map(|k| format!("{k}={}", g.color_values[i]))
}

/// The dashboard's tags of a group's series: the runs behind it and the legend entries (colour
/// value, line style) that stand for it.
fn tag(s: &mut Series, sweep: &SweepData, d: &Dims, g: &Groups, grp: &Group) {
    s.runs = grp.runs.iter().map(|&i| sweep.runs[i].id.clone()).collect();
    s.legend = legend_tags(d, g, grp.color, &g.style_labels, grp.style);
}

/// The legend labels of colour value `color` and line style `style` (as [`legend`] writes them).
fn legend_tags(
    d: &Dims,
    g: &Groups,
    color: usize,
    style_labels: &[String],
    style: usize,
) -> Vec<String> {
    let mut out: Vec<String> = color_label(d, g, color).into_iter().collect();
    if style_labels.len() > 1 {
        out.push(style_labels[style].clone());
    }
    out
}

fn group_color(g: &Groups, grp: &Group) -> super::figure::Rgb {
    palette(grp.color, g.color_values.len().max(1))
}

/// Mean over runs at each x, and the min–max band when two or more runs have data there.
/// A line and its band: (x, y) and (x, low, high).
type LineAndBand = (Vec<(f64, f64)>, Vec<(f64, f64, f64)>);

/// Reads one run's profile (spectrum or per-layer values) at a step.
type ProfileReader<'a> = &'a dyn Fn(&Run, i64) -> Result<Vec<(i64, f64)>>;

/// Per series (facet, colour, style), per x (its bits): x and the seeds' scores.
type FinalPoints = BTreeMap<(usize, usize, usize), BTreeMap<u64, (f64, Vec<f64>)>>;

fn aggregate(runs: &[Vec<(i64, f64)>]) -> LineAndBand {
    let with_data = runs.iter().filter(|r| !r.is_empty()).count();
    if with_data == 1 {
        let r = runs.iter().find(|r| !r.is_empty()).expect("one");
        return (r.iter().map(|&(x, y)| (x as f64, y)).collect(), Vec::new());
    }
    let mut at: BTreeMap<i64, (f64, usize, f64, f64)> = BTreeMap::new();
    for r in runs {
        for &(x, y) in r {
            let e = at
                .entry(x)
                .or_insert((0.0, 0, f64::INFINITY, f64::NEG_INFINITY));
            e.0 += y;
            e.1 += 1;
            e.2 = e.2.min(y);
            e.3 = e.3.max(y);
        }
    }
    let mean = at
        .iter()
        .map(|(&x, e)| (x as f64, e.0 / e.1 as f64))
        .collect();
    let band = if with_data > 1 {
        at.iter().map(|(&x, e)| (x as f64, e.2, e.3)).collect()
    } else {
        Vec::new()
    };
    (mean, band)
}

fn cols_for(n: usize) -> usize {
    match n {
        0..=3 => n.max(1),
        4 => 2,
        _ => (n as f64).sqrt().ceil() as usize,
    }
}

/// Fit one y axis to every panel's points and bands, and give it to all (shared y).
fn share_y(panels: &mut [Panel], log: bool, pad: f64) {
    let ys = panels.iter().flat_map(|p| {
        p.series.iter().flat_map(|s| {
            s.points
                .iter()
                .map(|q| q.1)
                .chain(s.band.iter().flat_map(|b| [b.1, b.2]))
                .chain(s.error_bars.iter().flat_map(|b| [b.1, b.2]))
        })
    });
    let y = Axis::fit(ys.collect::<Vec<_>>(), log, pad);
    for p in panels {
        p.y = y.clone();
    }
}

fn x_range(panels: &[Panel]) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for p in panels {
        for s in &p.series {
            for q in &s.points {
                lo = lo.min(q.0);
                hi = hi.max(q.0);
            }
        }
    }
    if !lo.is_finite() {
        (0.0, 1.0)
    } else if hi <= lo {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi)
    }
}

fn facet_title(d: &Dims, g: &Groups, f: usize) -> Option<String> {
    d.facet
        .as_ref()
        .map(|k| format!("{k}={}", g.facet_values[f]))
}

fn n_facets(g: &Groups) -> usize {
    g.facet_values.len().max(1)
}

// ---------------------------------------------------------------------------------------------
// Chart kinds.

fn curves(conn: &Connection, sweep: &SweepData, req: &Request, metric: &str) -> Result<Figure> {
    let mid = data::require_metric(conn, sweep, metric, Layers::Own)?;
    let d = dims(sweep, req, &[], true)?;
    let g = make_groups(sweep, &d);
    let mut panels: Vec<Panel> = (0..n_facets(&g))
        .map(|f| Panel {
            title: facet_title(&d, &g, f),
            x: Axis::linear(0.0, 1.0),
            y: Axis::linear(0.0, 1.0),
            x_label: "step".into(),
            y_label: metric.into(),
            series: Vec::new(),
            labels: Vec::new(),
        })
        .collect();
    let mut any_band = false;
    for grp in &g.groups {
        let runs: Vec<Vec<(i64, f64)>> = grp
            .runs
            .iter()
            .map(|&i| {
                Ok(smooth(
                    &windowed(data::series(conn, sweep.runs[i].pk, mid, -1)?, req),
                    req.smooth,
                ))
            })
            .collect::<Result<_>>()?;
        if runs.iter().all(|r| r.is_empty()) {
            continue;
        }
        let (mean, band) = aggregate(&runs);
        any_band |= !band.is_empty();
        let mut s = Series::line(
            grp.label.clone(),
            group_color(&g, grp),
            grp.style,
            downsample(&mean, LINE_POINTS),
        );
        s.band = downsample_band(&band, LINE_POINTS);
        // A metric recorded at a few steps only (stsb_dev, probes) gets dots at its points.
        if mean.len() <= 40 {
            s.markers = Markers::All;
        }
        tag(&mut s, sweep, &d, &g, grp);
        panels[grp.facet].series.push(s);
    }
    finish_xy(&mut panels, req.log_y.unwrap_or(false));
    let markers = panels
        .iter()
        .any(|p| p.series.iter().any(|s| s.markers == Markers::All));
    Ok(Figure {
        title: format!("{} — {metric}", sweep.name),
        cols: cols_for(panels.len()),
        legend: legend(&d, &g, &g.style_labels, any_band, markers),
        panels,
        note: smooth_note(req.smooth),
    })
}

/// The points of `series` inside the request's step window (all without one).
fn windowed(mut series: Vec<(i64, f64)>, req: &Request) -> Vec<(i64, f64)> {
    if let Some((lo, hi)) = req.step_window {
        series.retain(|&(step, _)| step >= lo && step <= hi);
    }
    series
}

fn smooth_note(w: usize) -> Option<String> {
    (w > 1).then(|| format!("smoothed: centred moving\naverage of {} points", w | 1))
}

/// Step axes from the data, shared y.
fn finish_xy(panels: &mut [Panel], log_y: bool) {
    let (lo, hi) = x_range(panels);
    for p in panels.iter_mut() {
        p.x = Axis::linear(lo, hi).integer();
    }
    share_y(panels, log_y, 0.05);
}

fn final_values(
    conn: &Connection,
    sweep: &SweepData,
    req: &Request,
    metric: &str,
) -> Result<Figure> {
    let mid = data::require_metric(conn, sweep, metric, Layers::Own)?;
    let x_key = match &req.x_key {
        Some(k) => {
            sweep.check_key("--x", k)?;
            k.clone()
        }
        None => sweep
            .swept_keys
            .iter()
            .find(|k| {
                Some(k.as_str()) != req.color_by.as_deref()
                    && Some(k.as_str()) != req.facet_by.as_deref()
            })
            .cloned()
            .unwrap_or_else(|| "seed".into()),
    };
    let d = dims(sweep, req, &[x_key.as_str()], true)?;
    let g = make_groups(sweep, &d);
    let x_values = sweep.values_of(&x_key);
    let numeric: Option<Vec<f64>> = x_values.iter().map(|v| v.parse::<f64>().ok()).collect();
    let numeric = numeric.filter(|_| sweep.runs.iter().all(|r| r.value(&x_key).is_number()));
    let pos_of = |v: &str| -> f64 {
        match &numeric {
            Some(_) => v.parse().unwrap_or(f64::NAN),
            None => x_values.iter().position(|x| x == v).unwrap_or(0) as f64,
        }
    };
    // Series: (facet, colour, style) → x → seed scores.
    let mut series: FinalPoints = BTreeMap::new();
    let mut series_runs: BTreeMap<(usize, usize, usize), Vec<String>> = BTreeMap::new();
    let mut any_bar = false;
    for grp in &g.groups {
        let x = pos_of(&sweep.runs[grp.runs[0]].display(&x_key));
        let mut vals = Vec::new();
        for &i in &grp.runs {
            if let Some(s) = data::run_score(conn, sweep.runs[i].pk, mid, metric, req.mode)? {
                vals.push(s.value);
            }
        }
        if vals.is_empty() {
            continue;
        }
        any_bar |= vals.len() > 1;
        series_runs
            .entry((grp.facet, grp.color, grp.style))
            .or_default()
            .extend(grp.runs.iter().map(|&i| sweep.runs[i].id.clone()));
        series
            .entry((grp.facet, grp.color, grp.style))
            .or_default()
            .insert(x.to_bits(), (x, vals));
    }
    let mut panels: Vec<Panel> = (0..n_facets(&g))
        .map(|f| Panel {
            title: facet_title(&d, &g, f),
            x: Axis::linear(0.0, 1.0),
            y: Axis::linear(0.0, 1.0),
            x_label: x_key.clone(),
            y_label: format!("{} {metric}", req.mode.name()),
            series: Vec::new(),
            labels: Vec::new(),
        })
        .collect();
    for ((f, c, st), pts) in series {
        let mut v: Vec<(f64, Vec<f64>)> = pts.into_values().collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let name = [
            color_label(&d, &g, c),
            (g.style_labels.len() > 1).then(|| g.style_labels[st].clone()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        let mut s = Series::line(
            if name.is_empty() {
                metric.to_string()
            } else {
                name
            },
            palette(c, g.color_values.len().max(1)),
            st,
            v.iter()
                .map(|(x, ys)| (*x, ys.iter().sum::<f64>() / ys.len() as f64))
                .collect(),
        );
        s.markers = Markers::All;
        s.error_bars = v
            .iter()
            .filter(|(_, ys)| ys.len() > 1)
            .map(|(x, ys)| {
                (
                    *x,
                    ys.iter().copied().fold(f64::INFINITY, f64::min),
                    ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                )
            })
            .collect();
        s.runs = series_runs.remove(&(f, c, st)).unwrap_or_default();
        s.legend = legend_tags(&d, &g, c, &g.style_labels, st);
        panels[f].series.push(s);
    }
    let x_axis = match &numeric {
        Some(nums) => {
            let pos: Vec<f64> = nums.clone();
            let all_pos = pos.iter().all(|&p| p > 0.0);
            let (lo, hi) = (
                pos.iter().copied().fold(f64::INFINITY, f64::min),
                pos.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            );
            let log = req.log_x.unwrap_or(all_pos && lo > 0.0 && hi / lo >= 10.0) && all_pos;
            let mut a = Axis::fit(pos, log, 0.08);
            a.integer = nums.iter().all(|v| v.fract() == 0.0) && !log;
            a
        }
        None => Axis::categorical(x_values.clone()),
    };
    for p in panels.iter_mut() {
        p.x = x_axis.clone();
    }
    share_y(&mut panels, req.log_y.unwrap_or(false), 0.08);
    let leg = legend(&d, &g, &g.style_labels, false, true);
    let note = [
        any_bar.then(|| "points: mean over seeds; bars: min–max".to_string()),
        Some(match req.mode {
            Mode::Best => format!(
                "best = {} over steps",
                if data::lower_is_better(metric)? {
                    "min"
                } else {
                    "max"
                }
            ),
            Mode::Final => "final = value at the last step".into(),
        }),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("\n");
    Ok(Figure {
        title: format!("{} — {} {metric} by {x_key}", sweep.name, req.mode.name()),
        cols: cols_for(panels.len()),
        legend: leg,
        panels,
        note: Some(note),
    })
}

fn align_uniform(conn: &Connection, sweep: &SweepData, req: &Request) -> Result<Figure> {
    let a = data::require_metric(conn, sweep, "alignment", Layers::Own)?;
    let u = data::require_metric(conn, sweep, "uniformity", Layers::Own)?;
    let d = dims(sweep, req, &[], true)?;
    let g = make_groups(sweep, &d);
    let mut panels: Vec<Panel> = (0..n_facets(&g))
        .map(|f| Panel {
            title: facet_title(&d, &g, f),
            x: Axis::linear(0.0, 1.0),
            y: Axis::linear(0.0, 1.0),
            x_label: "uniformity  ℓ_uniform".into(),
            y_label: "alignment  ℓ_align".into(),
            series: Vec::new(),
            labels: Vec::new(),
        })
        .collect();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for grp in &g.groups {
        // Per step, the mean over seeds of each coordinate (steps where both were recorded).
        let mut at: BTreeMap<i64, (f64, f64, usize)> = BTreeMap::new();
        for &i in &grp.runs {
            let pk = sweep.runs[i].pk;
            let al: BTreeMap<i64, f64> = data::series(conn, pk, a, -1)?.into_iter().collect();
            for (step, un) in data::series(conn, pk, u, -1)? {
                if let Some(&al) = al.get(&step) {
                    let e = at.entry(step).or_insert((0.0, 0.0, 0));
                    e.0 += un;
                    e.1 += al;
                    e.2 += 1;
                }
            }
        }
        if at.is_empty() {
            continue;
        }
        first = first.min(*at.keys().next().expect("non-empty"));
        last = last.max(*at.keys().last().expect("non-empty"));
        let pts: Vec<(f64, f64)> = at
            .values()
            .map(|e| (e.0 / e.2 as f64, e.1 / e.2 as f64))
            .collect();
        let mut s = Series::line(grp.label.clone(), group_color(&g, grp), grp.style, pts);
        s.markers = Markers::All;
        s.trajectory = true;
        tag(&mut s, sweep, &d, &g, grp);
        panels[grp.facet].series.push(s);
    }
    let xs: Vec<f64> = panels
        .iter()
        .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0)))
        .collect();
    let x = Axis::fit(xs, false, 0.08);
    for p in panels.iter_mut() {
        p.x = x.clone();
    }
    share_y(&mut panels, req.log_y.unwrap_or(false), 0.08);
    let mut leg = legend(&d, &g, &g.style_labels, false, true);
    leg.push(LegendEntry::Start(format!("step {first}")));
    leg.push(LegendEntry::End(format!("step {last}")));
    Ok(Figure {
        title: format!("{} — alignment and uniformity over training", sweep.name),
        cols: cols_for(panels.len()),
        legend: leg,
        panels,
        note: Some(seed_note(sweep, "lower is better on both axes")),
    })
}

fn seed_note(sweep: &SweepData, extra: &str) -> String {
    if sweep.seed_count() > 1 {
        format!("{extra}\npoints: mean over seeds")
    } else {
        extra.to_string()
    }
}

/// The steps to show for `spectrum` and `layers`: the request's, checked against the probed
/// steps, or the default.
fn pick_steps(
    probed: &[i64],
    asked: &[i64],
    default: impl Fn(&[i64]) -> Vec<i64>,
    what: &str,
) -> Result<Vec<i64>> {
    if asked.is_empty() {
        return Ok(default(probed));
    }
    for s in asked {
        if !probed.contains(s) {
            return Err(BadInput(format!(
                "--steps: {what} was not recorded at step {s}; recorded at steps {}",
                probed
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into());
        }
    }
    let mut v = asked.to_vec();
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// Shared by `spectrum` and `layers`: one curve per group and step, x an integer index. Without
/// --facet-by and with several steps, steps are the facets; otherwise they join the line styles.
#[allow(clippy::too_many_arguments)]
fn profile_chart(
    sweep: &SweepData,
    req: &Request,
    steps: &[i64],
    read: ProfileReader,
    x_label: &str,
    y_label: &str,
    log_default: bool,
    title: String,
    markers: bool,
) -> Result<Figure> {
    let d = dims(sweep, req, &[], true)?;
    let g = make_groups(sweep, &d);
    let steps_are_facets = req.facet_by.is_none() && steps.len() > 1;
    let n_panels = if steps_are_facets {
        steps.len()
    } else {
        n_facets(&g)
    };
    let mut panels: Vec<Panel> = (0..n_panels)
        .map(|f| Panel {
            title: if steps_are_facets {
                Some(format!("step={}", steps[f]))
            } else {
                facet_title(&d, &g, f)
            },
            x: Axis::linear(0.0, 1.0),
            y: Axis::linear(0.0, 1.0),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            labels: Vec::new(),
        })
        .collect();
    // Line styles: the style keys, and the step when steps are not the facets.
    let step_in_style = !steps_are_facets && steps.len() > 1;
    let style_labels: Vec<String> = if step_in_style {
        g.style_labels
            .iter()
            .flat_map(|l| {
                steps.iter().map(move |s| {
                    if l.is_empty() {
                        format!("step={s}")
                    } else {
                        format!("{l}, step={s}")
                    }
                })
            })
            .collect()
    } else {
        g.style_labels.clone()
    };
    let mut any_band = false;
    for grp in &g.groups {
        for (si, &step) in steps.iter().enumerate() {
            let runs: Vec<Vec<(i64, f64)>> = grp
                .runs
                .iter()
                .map(|&i| read(&sweep.runs[i], step))
                .collect::<Result<_>>()?;
            if runs.iter().all(|r| r.is_empty()) {
                continue;
            }
            let (mean, band) = aggregate(&runs);
            any_band |= !band.is_empty();
            let (panel, style) = if steps_are_facets {
                (si, grp.style)
            } else if step_in_style {
                (grp.facet, grp.style * steps.len() + si)
            } else {
                (grp.facet, grp.style)
            };
            let mut s = Series::line(
                if steps.len() > 1 {
                    format!("{}, step={step}", grp.label)
                } else {
                    grp.label.clone()
                },
                group_color(&g, grp),
                style,
                mean,
            );
            s.band = band;
            if markers {
                s.markers = Markers::All;
            }
            tag(&mut s, sweep, &d, &g, grp);
            s.legend = legend_tags(&d, &g, grp.color, &style_labels, style);
            panels[panel].series.push(s);
        }
    }
    let (lo, hi) = x_range(&panels);
    for p in panels.iter_mut() {
        p.x = Axis::linear(
            lo - 0.5_f64.min((hi - lo) * 0.03),
            hi + 0.5_f64.min((hi - lo) * 0.03),
        )
        .integer();
    }
    share_y(&mut panels, req.log_y.unwrap_or(log_default), 0.04);
    Ok(Figure {
        title,
        cols: cols_for(panels.len()),
        legend: legend(&d, &g, &style_labels, any_band, markers),
        panels,
        note: None,
    })
}

fn spectrum(conn: &Connection, sweep: &SweepData, req: &Request) -> Result<Figure> {
    let first = data::require_metric(conn, sweep, "sv_01", Layers::Own).map_err(|_| {
        BadInput(format!(
            "sweep `{}` recorded no singular values (sv_01…): its runs have not been probed yet",
            sweep.name
        ))
    })?;
    let mut ids: Vec<i64> = vec![first];
    for k in 2..=64 {
        match data::metric_id(conn, &format!("sv_{k:02}"))? {
            Some(id) => ids.push(id),
            None => break,
        }
    }
    let mut probed: Vec<i64> = Vec::new();
    for r in &sweep.runs {
        probed.extend(data::steps_of(conn, r.pk, first, Layers::Own)?);
    }
    probed.sort_unstable();
    probed.dedup();
    let steps = pick_steps(
        &probed,
        &req.steps,
        |p| {
            let mut v = vec![p[0], p[p.len() - 1]];
            v.dedup();
            v
        },
        "the spectrum",
    )?;
    let read = |r: &Run, step: i64| -> Result<Vec<(i64, f64)>> {
        let mut out = Vec::with_capacity(ids.len());
        for (k, &id) in ids.iter().enumerate() {
            if let Some(v) = data::value_at(conn, r.pk, id, -1, step)? {
                out.push((k as i64 + 1, v));
            }
        }
        Ok(out)
    };
    profile_chart(
        sweep,
        req,
        &steps,
        &read,
        "index k",
        "σ_k / σ_1",
        true,
        format!(
            "{} — singular value spectrum of the sentence embeddings",
            sweep.name
        ),
        false,
    )
}

fn layers(conn: &Connection, sweep: &SweepData, req: &Request, metric: &str) -> Result<Figure> {
    let set = sweep.runs.iter().any(|r| {
        r.config
            .get("probe.layers")
            .is_some_and(|v| v.as_str() != Some("last") && !v.is_null())
    });
    let mid = data::metric_id(conn, metric)?;
    let has = match mid {
        Some(id) => data::recorded(conn, &sweep.runs, id, Layers::PerLayer)?,
        None => false,
    };
    if !has {
        if !set {
            return Err(BadInput(format!(
                "probe.layers was not set for this sweep (`{}`): there are no per-layer probe values; set probe.layers = \"all\" (or a list such as [0, 3, 6]) in the sweep file and run it",
                sweep.name
            ))
            .into());
        }
        data::require_metric(conn, sweep, metric, Layers::PerLayer)?;
    }
    let mid = mid.expect("checked");
    let mut probed: Vec<i64> = Vec::new();
    for r in &sweep.runs {
        probed.extend(data::steps_of(conn, r.pk, mid, Layers::PerLayer)?);
    }
    probed.sort_unstable();
    probed.dedup();
    let steps = pick_steps(
        &probed,
        &req.steps,
        |p| vec![p[p.len() - 1]],
        &format!("`{metric}` per layer"),
    )?;
    let read = |r: &Run, step: i64| data::layer_profile(conn, r.pk, mid, step);
    profile_chart(
        sweep,
        req,
        &steps,
        &read,
        "layer (0 = embeddings)",
        metric,
        false,
        format!(
            "{} — {metric} by layer{}",
            sweep.name,
            if steps.len() == 1 {
                format!(" at step {}", steps[0])
            } else {
                String::new()
            }
        ),
        true,
    )
}

fn gradients(conn: &Connection, sweep: &SweepData, req: &Request) -> Result<Figure> {
    let mut comps: Vec<(&str, i64)> = Vec::new();
    for c in GRADIENT_COMPONENTS {
        if let Some(id) = data::metric_id(conn, c)? {
            if data::recorded(conn, &sweep.runs, id, Layers::Own)? {
                comps.push((c, id));
            }
        }
    }
    if comps.is_empty() {
        let have = data::recorded_metrics(conn, sweep, Layers::Own)?;
        return Err(BadInput(format!(
            "sweep `{}` recorded none of the gradient components ({}); recorded: {}",
            sweep.name,
            GRADIENT_COMPONENTS.join(", "),
            data::list_for_message(&have)
        ))
        .into());
    }
    let d = dims(sweep, req, &[], true)?;
    let g = make_groups(sweep, &d);
    let nf = n_facets(&g);
    // Panels: facet-major, one per component.
    let mut panels: Vec<Panel> = Vec::new();
    for f in 0..nf {
        for (c, _) in &comps {
            panels.push(Panel {
                title: Some(match facet_title(&d, &g, f) {
                    Some(t) => format!("{c} — {t}"),
                    None => c.to_string(),
                }),
                x: Axis::linear(0.0, 1.0),
                y: Axis::linear(0.0, 1.0),
                x_label: "step".into(),
                y_label: c.to_string(),
                series: Vec::new(),
                labels: Vec::new(),
            });
        }
    }
    let mut any_band = false;
    for grp in &g.groups {
        for (ci, (_, id)) in comps.iter().enumerate() {
            let runs: Vec<Vec<(i64, f64)>> = grp
                .runs
                .iter()
                .map(|&i| {
                    Ok(smooth(
                        &windowed(data::series(conn, sweep.runs[i].pk, *id, -1)?, req),
                        req.smooth,
                    ))
                })
                .collect::<Result<_>>()?;
            if runs.iter().all(|r| r.is_empty()) {
                continue;
            }
            let (mean, band) = aggregate(&runs);
            any_band |= !band.is_empty();
            let mut s = Series::line(
                grp.label.clone(),
                group_color(&g, grp),
                grp.style,
                downsample(&mean, LINE_POINTS / 2),
            );
            s.band = downsample_band(&band, LINE_POINTS / 2);
            tag(&mut s, sweep, &d, &g, grp);
            panels[grp.facet * comps.len() + ci].series.push(s);
        }
    }
    let (lo, hi) = x_range(&panels);
    for p in panels.iter_mut() {
        p.x = Axis::linear(lo, hi).integer();
    }
    // Each component shares its y axis across the facets.
    let nc = comps.len();
    for ci in 0..nc {
        let mut same: Vec<Panel> = (0..nf).map(|f| panels[f * nc + ci].clone()).collect();
        share_y(&mut same, req.log_y.unwrap_or(false), 0.05);
        for (f, p) in same.into_iter().enumerate() {
            panels[f * nc + ci].y = p.y;
        }
    }
    let cols = if nf == 1 && nc == 4 { 2 } else { nc };
    Ok(Figure {
        title: format!("{} — gradient components (Li et al. 2024)", sweep.name),
        cols,
        legend: legend(&d, &g, &g.style_labels, any_band, false),
        panels,
        note: smooth_note(req.smooth),
    })
}

// ---------------------------------------------------------------------------------------------
// Parallel coordinates and importance bars.

/// Where a run sits on one parallel axis, 0..1.
type AxisPos = Box<dyn Fn(&Run) -> f64>;

/// Parallel coordinates: an axis per swept key and one for the metric (each scaled to its own
/// range; categorical keys spaced evenly in plan order, numeric keys by value, on a log scale when
/// positive and spanning a factor of 10 or more), a line per run coloured by its metric value
/// (cividis, dark = low).
fn parallel(conn: &Connection, sweep: &SweepData, req: &Request, metric: &str) -> Result<Figure> {
    let mid = data::require_metric(conn, sweep, metric, Layers::Own)?;
    let keys: Vec<String> = sweep.swept_keys.clone();
    if keys.is_empty() {
        return Err(BadInput(format!(
            "sweep `{}` varies no setting: parallel coordinates need at least one swept key",
            sweep.name
        ))
        .into());
    }
    let mut runs: Vec<(&Run, f64)> = Vec::new();
    for r in &sweep.runs {
        if let Some(s) = data::run_score(conn, r.pk, mid, metric, req.mode)? {
            runs.push((r, s.value));
        }
    }
    if runs.is_empty() {
        return Err(BadInput(format!(
            "no run of sweep `{}` has a value of {metric}",
            sweep.name
        ))
        .into());
    }
    // Each key's position function to 0..1 and its axis labels.
    let mut labels: Vec<Label> = Vec::new();
    let mut pos: Vec<AxisPos> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let x = i as f64;
        let levels = sweep.values_of(k);
        let nums: Option<Vec<f64>> = runs.iter().map(|(r, _)| r.value(k).as_f64()).collect();
        match nums {
            Some(v) if levels.len() > 1 => {
                let (lo, hi) = v
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                        (a.min(x), b.max(x))
                    });
                let log = lo > 0.0 && hi / lo >= 10.0;
                let t = move |x: f64| if log { x.log10() } else { x };
                let (tl, th) = (t(lo), t(hi));
                let key = k.clone();
                pos.push(Box::new(move |r: &Run| {
                    (t(r.value(&key).as_f64().unwrap_or(lo)) - tl) / (th - tl).max(1e-300)
                }));
                for l in &levels {
                    if let Ok(v) = l.parse::<f64>() {
                        labels.push(Label {
                            x: x + 0.05,
                            y: (t(v) - tl) / (th - tl).max(1e-300),
                            text: l.clone(),
                            left: true,
                        });
                    }
                }
                if log {
                    labels.push(Label {
                        x,
                        y: -0.09,
                        text: "(log)".into(),
                        left: false,
                    });
                }
            }
            _ => {
                let n = levels.len();
                let at = move |j: usize| {
                    if n > 1 {
                        j as f64 / (n - 1) as f64
                    } else {
                        0.5
                    }
                };
                for (j, l) in levels.iter().enumerate() {
                    labels.push(Label {
                        x: x + 0.05,
                        y: at(j),
                        text: l.clone(),
                        left: true,
                    });
                }
                let key = k.clone();
                let lv = levels.clone();
                pos.push(Box::new(move |r: &Run| {
                    let d = r.display(&key);
                    at(lv.iter().position(|x| *x == d).unwrap_or(0))
                }));
            }
        }
    }
    let (lo, hi) = runs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, v)| {
            (a.min(*v), b.max(*v))
        });
    let norm = |v: f64| if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
    let m = keys.len() as f64;
    for (j, f) in [0.0, 0.5, 1.0].iter().enumerate() {
        let v = lo + (hi - lo) * f;
        if j == 1 && hi <= lo {
            continue;
        }
        labels.push(Label {
            x: m + 0.05,
            y: *f,
            text: format!("{v:.4}"),
            left: true,
        });
    }
    let mut series: Vec<Series> = Vec::new();
    // The axes, grey, under the runs.
    for i in 0..=keys.len() {
        series.push(Series::line(
            String::new(),
            super::figure::Rgb(0xBB, 0xBB, 0xBB),
            0,
            vec![(i as f64, 0.0), (i as f64, 1.0)],
        ));
    }
    // Runs drawn low to high, so the best lie on top.
    let mut order: Vec<usize> = (0..runs.len()).collect();
    let lower = data::lower_is_better(metric)?;
    order.sort_by(|&a, &b| {
        let o = runs[a].1.total_cmp(&runs[b].1);
        if lower {
            o.reverse()
        } else {
            o
        }
    });
    for &i in &order {
        let (r, v) = runs[i];
        let mut pts: Vec<(f64, f64)> = pos
            .iter()
            .enumerate()
            .map(|(k, p)| (k as f64, p(r)))
            .collect();
        pts.push((m, norm(v)));
        let shade = (norm(v) * 255.0).round() as usize;
        let mut s = Series::line(
            format!("{} {metric}={v:.4}", r.id),
            palette(shade, 256),
            0,
            pts,
        );
        s.markers = Markers::All;
        s.runs = vec![r.id.clone()];
        series.push(s);
    }
    let mut names: Vec<String> = keys.clone();
    names.push(metric.to_string());
    let mut x = Axis::categorical(names);
    x.lo = -0.3;
    x.hi = m + 0.7;
    let panel = Panel {
        title: None,
        x,
        y: Axis::linear(-0.14, 1.06),
        x_label: String::new(),
        y_label: "each axis scaled to its own range".into(),
        series,
        labels,
    };
    let mode = req.mode.name();
    Ok(Figure {
        title: format!("{}: swept keys against {mode} {metric}", sweep.name),
        cols: 1,
        panels: vec![panel],
        legend: vec![
            LegendEntry::Heading(format!("{mode} {metric}")),
            LegendEntry::Line {
                label: format!("{lo:.4} (lowest)"),
                color: palette(0, 256),
                dash: 0,
                marker: true,
            },
            LegendEntry::Line {
                label: format!("{hi:.4} (highest)"),
                color: palette(255, 256),
                dash: 0,
                marker: true,
            },
        ],
        note: Some(format!("{} runs with a value", runs.len())),
    })
}

/// The shares of [`simsweep_core::query::importance::Importance`] as bars, largest first.
pub fn importance_figure(imp: &simsweep_core::query::importance::Importance) -> Figure {
    let names: Vec<String> = imp.terms.iter().map(|t| t.term.clone()).collect();
    let bars: Vec<(f64, f64)> = imp
        .terms
        .iter()
        .enumerate()
        .map(|(i, t)| (i as f64, 100.0 * t.share))
        .collect();
    let top = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1.0);
    let mut s = Series::line("share".into(), super::figure::OKABE_ITO[0], 0, Vec::new());
    s.bars = bars.clone();
    let labels = bars
        .iter()
        .map(|&(x, h)| Label {
            x,
            y: h + top * 0.05,
            text: format!("{h:.1} %"),
            left: false,
        })
        .collect();
    let n = names.len();
    // Terms are numbered on the axis and named in the legend (the names are long).
    let mut x = Axis::categorical((1..=n).map(|i| i.to_string()).collect());
    x.n_labels = n.max(1);
    let mut legend = vec![LegendEntry::Heading("terms".into())];
    legend.extend(
        names
            .iter()
            .enumerate()
            .map(|(i, t)| LegendEntry::Heading(format!("{}  {t}", i + 1))),
    );
    Figure {
        title: format!(
            "{}: variance of {} {} by term",
            imp.sweep,
            imp.mode.name(),
            imp.metric
        ),
        cols: 1,
        panels: vec![Panel {
            title: None,
            x,
            y: Axis::linear(0.0, top * 1.15),
            x_label: String::new(),
            y_label: "% of the variance".into(),
            series: vec![s],
            labels,
        }],
        legend,
        note: Some(imp.note.replace("; ", ";\n").replace(": ", ":\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{self, Synthetic};

    fn db(layers: usize) -> (tempfile::TempDir, crate::store::Store, SweepData) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let mut spec = Synthetic::small("s");
        spec.steps = 40;
        spec.eval_every = 10;
        spec.probe_every = 20;
        spec.layers = layers;
        synthetic::write(&path, &spec).unwrap();
        let store = crate::store::Store::open_readonly(&path).unwrap();
        let data = SweepData::load(&store.conn, "s").unwrap();
        (dir, store, data)
    }

    fn labels(f: &Figure) -> Vec<String> {
        f.legend.iter().map(|e| e.label().to_string()).collect()
    }

    #[test]
    fn curves_group_seeds_into_a_mean_and_a_band() {
        let (_d, store, data) = db(0);
        let mut req = Request::new(Kind::Curves);
        req.metric = Some("loss".into());
        let f = figure(&store.conn, &data, &req).unwrap();
        // 8 runs = 4 configurations × 2 seeds: 4 lines, each with a band, in one panel.
        assert_eq!(f.panels.len(), 1);
        let s = &f.panels[0].series;
        assert_eq!(s.len(), 4);
        assert!(s.iter().all(|s| s.band.len() == 40 && s.points.len() == 40));
        assert!(s.iter().all(|s| s.band.iter().all(|b| b.1 <= b.2)));
        assert_eq!(
            labels(&f),
            [
                "train.temperature=0.05",
                "train.temperature=0.5",
                "model.pooling=avg",
                "model.pooling=cls",
                "min–max over seeds"
            ]
        );
        // Colour by temperature, line style by pooler.
        let avg005 = s
            .iter()
            .find(|s| s.name == "train.temperature=0.05, model.pooling=avg")
            .unwrap();
        let cls05 = s
            .iter()
            .find(|s| s.name == "train.temperature=0.5, model.pooling=cls")
            .unwrap();
        assert_eq!((avg005.dash, cls05.dash), (0, 1));
        assert_ne!(avg005.color, cls05.color);
        // The mean lies inside its band.
        for (p, b) in avg005.points.iter().zip(&avg005.band) {
            assert!(b.1 <= p.1 && p.1 <= b.2);
        }
    }

    #[test]
    fn facets_share_the_y_axis_and_seed_as_colour_splits_the_groups() {
        let (_d, store, data) = db(0);
        let mut req = Request::new(Kind::Curves);
        req.metric = Some("stsb_dev".into());
        req.color_by = Some("seed".into());
        req.facet_by = Some("model.pooling".into());
        let f = figure(&store.conn, &data, &req).unwrap();
        assert_eq!(f.panels.len(), 2);
        assert_eq!(f.panels[0].title.as_deref(), Some("model.pooling=avg"));
        assert_eq!(f.panels[0].y, f.panels[1].y);
        // Seeds are not averaged when they are a dimension: 2 temperatures × 2 seeds per panel.
        assert_eq!(f.panels[0].series.len(), 4);
        assert!(f.panels[0].series.iter().all(|s| s.band.is_empty()));
        assert!(labels(&f).contains(&"seed=1".to_string()));
        // Few points: markers.
        assert!(f.panels[0].series.iter().all(|s| s.markers == Markers::All));
    }

    #[test]
    fn final_values_put_a_key_on_x_with_seed_error_bars() {
        let (_d, store, data) = db(0);
        let req = Request::new(Kind::Final);
        let f = figure(&store.conn, &data, &req).unwrap();
        let p = &f.panels[0];
        assert_eq!(p.x_label, "train.temperature");
        assert_eq!(p.y_label, "best stsb_dev");
        assert!(p.x.log, "0.05 and 0.5 span a factor of 10");
        assert_eq!(p.series.len(), 2);
        assert_eq!(p.series[0].name, "model.pooling=avg");
        assert_eq!(p.series[0].points.len(), 2);
        assert_eq!(p.series[0].error_bars.len(), 2);
        // A text key on x is categorical.
        let mut req = Request::new(Kind::Final);
        req.x_key = Some("model.pooling".into());
        req.mode = Mode::Final;
        let f = figure(&store.conn, &data, &req).unwrap();
        assert_eq!(
            f.panels[0].x.categories.as_deref(),
            Some(&["avg".to_string(), "cls".to_string()][..])
        );
        assert_eq!(f.panels[0].series[0].name, "train.temperature=0.05");
        // x and colour may not be the same key.
        let mut req = Request::new(Kind::Final);
        req.x_key = Some("model.pooling".into());
        req.color_by = Some("model.pooling".into());
        assert!(figure(&store.conn, &data, &req).is_err());
    }

    #[test]
    fn geometry_charts_have_their_axes() {
        let (_d, store, data) = db(3);
        let f = figure(&store.conn, &data, &Request::new(Kind::AlignUniform)).unwrap();
        assert!(f.panels[0]
            .series
            .iter()
            .all(|s| s.trajectory && s.points.len() == 3));
        assert!(labels(&f).contains(&"step 0".to_string()));
        assert!(labels(&f).contains(&"step 40".to_string()));
        let f = figure(&store.conn, &data, &Request::new(Kind::Spectrum)).unwrap();
        assert_eq!(f.panels.len(), 2, "first and last probed step");
        assert_eq!(f.panels[1].title.as_deref(), Some("step=40"));
        assert!(f.panels[0].y.log);
        assert_eq!(f.panels[0].series[0].points.len(), 16);
        let mut req = Request::new(Kind::Spectrum);
        req.steps = vec![20];
        req.log_y = Some(false);
        let f = figure(&store.conn, &data, &req).unwrap();
        assert_eq!(f.panels.len(), 1);
        assert!(!f.panels[0].y.log);
        req.steps = vec![7];
        let e = figure(&store.conn, &data, &req).unwrap_err().to_string();
        assert!(
            e.contains("not recorded at step 7; recorded at steps 0, 20, 40"),
            "{e}"
        );
        let f = figure(&store.conn, &data, &Request::new(Kind::Layers)).unwrap();
        assert_eq!(f.panels[0].series[0].points.len(), 3, "layers 0, 1, 2");
        assert!(
            f.title.contains("token_anisotropy by layer at step 40"),
            "{}",
            f.title
        );
        let f = figure(&store.conn, &data, &Request::new(Kind::Gradients)).unwrap();
        assert_eq!(f.panels.len(), 4);
        assert_eq!(f.cols, 2);
        let titles: Vec<_> = f.panels.iter().map(|p| p.title.clone().unwrap()).collect();
        assert_eq!(titles, GRADIENT_COMPONENTS);
    }

    #[test]
    fn bad_requests_are_bad_input() {
        let (_d, store, data) = db(0);
        let bad = |req: &Request| {
            let e = figure(&store.conn, &data, req).unwrap_err();
            assert!(e.downcast_ref::<BadInput>().is_some(), "{e}");
            e.to_string()
        };
        let mut req = Request::new(Kind::Layers);
        assert!(bad(&req).starts_with("probe.layers was not set for this sweep"));
        req = Request::new(Kind::Curves);
        req.color_by = Some("train.lr".into());
        assert!(bad(&req).contains("`train.lr` is not a swept key of sweep `s` (swept keys: train.temperature, model.pooling; or `seed`)"));
        req = Request::new(Kind::Spectrum);
        req.metric = Some("loss".into());
        assert!(bad(&req).contains("--metric does not apply to --kind spectrum"));
        req = Request::new(Kind::Final);
        req.smooth = 5;
        assert!(bad(&req).contains("--smooth applies to"));
    }
}
