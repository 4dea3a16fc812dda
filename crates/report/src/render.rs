//! Drawing a [`Figure`] with plotters: SVG text (vector, for papers) or PNG (bitmap).
//!
//! Text is laid out with DejaVu Sans bundled in the binary (`assets/fonts`, plotters' `ab_glyph`
//! feature): no system fonts or fontconfig are needed, and PNGs look the same on every machine.
//! SVG text names the `sans-serif` family, rendered by the viewer's font.

use super::figure::{Axis, Figure, LegendEntry, Markers, Panel, Rgb, Series, DASHES, GREY};
use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{
    KeyPointHint, KeyPointWeight, NoDefaultFormatting, Ranged, ValueFormatter,
};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";

/// Register the bundled font with plotters (once per process).
pub fn init_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            if plotters::style::register_font(FAMILY, style, FONT).is_err() {
                panic!("the bundled font assets/fonts/DejaVuSans-subset.ttf is not a valid font");
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Axis: one coordinate type for linear, log and categorical axes, with readable tick labels.

fn nice_step(span: f64, n: usize, integer: bool) -> f64 {
    let raw = (span / n.max(1) as f64).abs();
    if !raw.is_finite() || raw == 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let m = raw / mag;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 2.5 {
        2.5
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    let s = nice * mag;
    if integer {
        s.max(1.0).round()
    } else {
        s
    }
}

/// Decimals needed to print multiples of `step` exactly.
fn decimals(step: f64) -> usize {
    let mut d = 0;
    while d < 12 {
        let x = step * 10f64.powi(d as i32);
        if (x - x.round()).abs() < 1e-6 * x.abs().max(1e-12) {
            break;
        }
        d += 1;
    }
    d
}

/// A number for a tick label: U+2212 minus, no "-0".
fn tick_text(v: f64, d: usize) -> String {
    let s = format!("{v:.d$}");
    let s = if s
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    };
    s.replacen('-', "\u{2212}", 1)
}

fn superscript(n: i32) -> String {
    const D: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let mut s = String::new();
    if n < 0 {
        s.push('⁻');
    }
    for c in n.unsigned_abs().to_string().chars() {
        s.push(D[c.to_digit(10).unwrap_or(0) as usize]);
    }
    s
}

impl Axis {
    fn linear_step(&self) -> f64 {
        nice_step(self.hi - self.lo, self.n_labels, self.integer)
    }

    fn log_ticks(&self, minor: bool) -> Vec<f64> {
        let (a, b) = (self.lo.log10(), self.hi.log10());
        let (e0, e1) = (a.floor() as i32, b.ceil() as i32);
        let decades = (b - a).max(1e-9);
        // Thin out decades when there are too many for the labels asked.
        let every = ((e1 - e0) as usize).div_ceil(self.n_labels.max(2)).max(1) as i32;
        let mut out = Vec::new();
        for e in e0..=e1 {
            for m in 1..=9 {
                // Labelled: powers of ten over several decades; 1, 2, 5 over about one; 1, 2, 3,
                // 5 over half of one; every mantissa within less.
                let major = if decades >= 2.5 {
                    m == 1 && (e - e0) % every == 0
                } else if decades >= 0.8 {
                    matches!(m, 1 | 2 | 5)
                } else if decades >= 0.35 {
                    matches!(m, 1 | 2 | 3 | 5)
                } else {
                    true
                };
                let v = m as f64 * 10f64.powi(e);
                if major != minor && v >= self.lo * (1.0 - 1e-9) && v <= self.hi * (1.0 + 1e-9) {
                    out.push(v);
                }
            }
        }
        out
    }

    /// The labelled ticks (`minor` = false) or the unlabelled grid lines between them.
    pub fn ticks(&self, minor: bool) -> Vec<f64> {
        if let Some(c) = &self.categories {
            return if minor {
                Vec::new()
            } else {
                (0..c.len()).map(|i| i as f64).collect()
            };
        }
        if self.log && self.lo > 0.0 {
            return self.log_ticks(minor);
        }
        let step = self.linear_step();
        let (step, offset) = if minor {
            if self.integer && step < 2.0 {
                return Vec::new();
            }
            (step, step / 2.0)
        } else {
            (step, 0.0)
        };
        let first = ((self.lo - offset) / step).ceil() as i64;
        let last = ((self.hi - offset) / step).floor() as i64;
        (first..=last.min(first + 1000))
            .map(|k| k as f64 * step + offset)
            .collect()
    }

    /// The label of a tick.
    pub fn label(&self, v: f64) -> String {
        if let Some(c) = &self.categories {
            let i = v.round();
            return if i >= 0.0 && (i as usize) < c.len() {
                c[i as usize].clone()
            } else {
                String::new()
            };
        }
        if self.log && self.lo > 0.0 {
            let e = v.log10().floor() as i32;
            let e = if (v / 10f64.powi(e + 1) - 1.0).abs() < 1e-9 {
                e + 1
            } else {
                e
            };
            let m = v / 10f64.powi(e);
            if (-3..=4).contains(&e) {
                return tick_text(v, (-e).max(0) as usize);
            }
            return if (m - 1.0).abs() < 1e-9 {
                format!("10{}", superscript(e))
            } else {
                format!("{}×10{}", tick_text(m, decimals(m)), superscript(e))
            };
        }
        let step = self.linear_step();
        let big = v.abs().max(self.lo.abs()).max(self.hi.abs());
        if big >= 1e6 || (step < 1e-4 && big < 1e-3) {
            let s = format!("{v:.2e}");
            return s.replace("e0", "").replacen('-', "\u{2212}", 1);
        }
        tick_text(v, decimals(step))
    }

    /// Map to a pixel in `limit` (either direction).
    fn to_pixel(&self, v: f64, limit: (i32, i32)) -> i32 {
        let t = if self.log && self.lo > 0.0 {
            if v <= 0.0 {
                -10.0
            } else {
                (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
            }
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        let t = if t.is_finite() {
            t.clamp(-10.0, 11.0)
        } else {
            0.0
        };
        let len = (limit.1 - limit.0) as f64;
        limit.0 + (len * t).round() as i32
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.to_pixel(*value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        match hint.weight() {
            KeyPointWeight::Bold => self.ticks(false),
            KeyPointWeight::Any => self.ticks(true),
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Axis {
    fn format_ext(&self, value: &f64) -> String {
        self.label(*value)
    }
}

// ---------------------------------------------------------------------------------------------
// Drawing.

fn color(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

type DrawResult<T> = std::result::Result<T, String>;

fn de<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// Sizes in SVG units, multiplied by the scale for PNG.
struct Sty {
    s: f64,
}

impl Sty {
    fn px(&self, v: f64) -> i32 {
        (v * self.s).round() as i32
    }
    fn pxu(&self, v: f64) -> u32 {
        (v * self.s).round().max(1.0) as u32
    }
    fn font(&self, size: f64) -> FontDesc<'static> {
        FontDesc::new(FontFamily::Name(FAMILY), size * self.s, FontStyle::Normal)
    }
}

const PANEL_W: u32 = 440;
const PANEL_H: u32 = 320;
const TITLE_H: u32 = 34;
const LEGEND_ROW: f64 = 21.0;

/// Width of the legend column (SVG units).
fn legend_width(fig: &Figure) -> u32 {
    init_font();
    let sty = Sty { s: 1.0 };
    let f = sty.font(13.5);
    let mut w = 0u32;
    for e in &fig.legend {
        let tw = f
            .box_size(e.label())
            .map(|b| b.0)
            .unwrap_or(8 * e.label().len() as u32);
        let extra = if matches!(e, LegendEntry::Heading(_)) {
            0
        } else {
            36
        };
        w = w.max(tw + extra);
    }
    if let Some(n) = &fig.note {
        for line in n.lines() {
            w = w.max(f.box_size(line).map(|b| b.0).unwrap_or(0).min(260));
        }
    }
    if w == 0 {
        0
    } else {
        w + 28
    }
}

/// The default size of a figure (SVG units): panels of 440 × 320, the legend column, the title.
pub fn default_size(fig: &Figure) -> (u32, u32) {
    let cols = fig.cols.max(1).min(fig.panels.len().max(1)) as u32;
    let rows = fig.rows().max(1) as u32;
    let legend_rows = fig.legend.len() as f64 * LEGEND_ROW + 40.0;
    let h = (rows * PANEL_H + TITLE_H).max(legend_rows as u32 + TITLE_H);
    (cols * PANEL_W + legend_width(fig), h)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
    sty: &Sty,
) -> DrawResult<()> {
    root.fill(&WHITE).map_err(de)?;
    let (w, _h) = root.dim_in_pixel();
    let body = if fig.title.is_empty() {
        root.clone()
    } else {
        let (top, rest) = root.split_vertically(sty.px(TITLE_H as f64));
        let (tw, th) = top.dim_in_pixel();
        top.draw(&Text::new(
            fig.title.clone(),
            (sty.px(14.0), th as i32 / 2),
            TextStyle::from(sty.font(17.0).style(FontStyle::Bold))
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(de)?;
        let _ = tw;
        rest
    };
    let lw = (legend_width(fig) as f64 * sty.s).round() as u32;
    let lw = lw.min(w / 2);
    let (plots, legend) = body.split_horizontally(w.saturating_sub(lw));
    let cols = fig.cols.max(1).min(fig.panels.len().max(1));
    let areas = plots.split_evenly((fig.rows().max(1), cols));
    for (panel, area) in fig.panels.iter().zip(areas.iter()) {
        draw_panel(root, area, panel, sty)?;
    }
    draw_legend(&legend, fig, sty)?;
    Ok(())
}

fn dash_style(dash: usize) -> (u32, u32) {
    DASHES[dash % DASHES.len()]
}

fn draw_line<DB: DrawingBackend, CT: CoordTranslate<From = (f64, f64)>>(
    area: &DrawingArea<DB, CT>,
    pts: &[(f64, f64)],
    c: RGBColor,
    dash: usize,
    width: u32,
    sty: &Sty,
) -> DrawResult<()> {
    let style = c.stroke_width(width);
    let (d, g) = dash_style(dash);
    if d == 0 {
        area.draw(&PathElement::new(pts.to_vec(), style))
            .map_err(de)
    } else {
        area.draw(&DashedPathElement::new(
            pts.iter().copied(),
            sty.pxu(d as f64),
            sty.pxu(g as f64),
            style,
        ))
        .map_err(de)
    }
}

fn draw_panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    sty: &Sty,
) -> DrawResult<()> {
    let mut cb = ChartBuilder::on(area);
    cb.margin_top(sty.px(6.0))
        .margin_right(sty.px(14.0))
        .margin_left(sty.px(4.0))
        .margin_bottom(sty.px(4.0))
        .x_label_area_size(sty.px(40.0))
        .y_label_area_size(sty.px(64.0));
    if let Some(t) = &panel.title {
        cb.caption(t, sty.font(15.0));
    }
    let mut chart = cb
        .build_cartesian_2d(panel.x.clone(), panel.y.clone())
        .map_err(de)?;
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .x_labels(panel.x.n_labels)
        .y_labels(panel.y.n_labels)
        .label_style(sty.font(12.5))
        .axis_desc_style(sty.font(14.0))
        .bold_line_style(RGBColor(222, 222, 222).stroke_width(sty.pxu(1.0)))
        .light_line_style(RGBColor(242, 242, 242).stroke_width(sty.pxu(1.0)))
        .axis_style(RGBColor(60, 60, 60).stroke_width(sty.pxu(1.0)))
        .set_all_tick_mark_size(sty.px(4.0))
        .draw()
        .map_err(de)?;
    let pa = chart.plotting_area().clone();
    let clip = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite() && (!panel.y.log || p.1 > 0.0);
    // Bands under every line.
    for s in &panel.series {
        if s.band.len() < 2 {
            continue;
        }
        let mut poly: Vec<(f64, f64)> = s.band.iter().map(|b| (b.0, b.2)).filter(clip).collect();
        poly.extend(s.band.iter().rev().map(|b| (b.0, b.1)).filter(clip));
        pa.draw(&Polygon::new(poly, color(s.color).mix(0.2).filled()))
            .map_err(de)?;
    }
    for s in &panel.series {
        for &(x, h) in &s.bars {
            let (lo, hi) = if h >= 0.0 { (0.0, h) } else { (h, 0.0) };
            pa.draw(&Rectangle::new(
                [(x - 0.3, lo), (x + 0.3, hi)],
                color(s.color).mix(0.85).filled(),
            ))
            .map_err(de)?;
        }
        draw_series(root, &chart, &pa, s, sty, &clip)?;
    }
    for l in &panel.labels {
        let h = if l.left { HPos::Left } else { HPos::Center };
        pa.draw(&Text::new(
            l.text.clone(),
            (l.x, l.y),
            TextStyle::from(sty.font(11.5))
                .color(&RGBColor(40, 40, 40))
                .pos(Pos::new(h, VPos::Center)),
        ))
        .map_err(de)?;
    }
    Ok(())
}

fn draw_series<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartContext<DB, Cartesian2d<Axis, Axis>>,
    pa: &DrawingArea<DB, Cartesian2d<Axis, Axis>>,
    s: &Series,
    sty: &Sty,
    clip: &dyn Fn(&(f64, f64)) -> bool,
) -> DrawResult<()> {
    let c = color(s.color);
    let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|p| clip(p)).collect();
    for &(x, lo, hi) in &s.error_bars {
        if clip(&(x, lo)) && clip(&(x, hi)) {
            pa.draw(&ErrorBar::new_vertical(
                x,
                lo,
                (lo + hi) / 2.0,
                hi,
                c.stroke_width(sty.pxu(1.3)),
                sty.pxu(8.0),
            ))
            .map_err(de)?;
        }
    }
    if pts.len() >= 2 {
        // Dense lines (per-step metrics) a little thinner, so neighbours stay apart.
        let w = if pts.len() > 300 { 1.5 } else { 2.0 };
        draw_line(pa, &pts, c, s.dash, sty.pxu(w), sty)?;
    }
    if s.markers == Markers::All || pts.len() == 1 {
        for p in &pts {
            pa.draw(&Circle::new(*p, sty.pxu(3.2), c.filled()))
                .map_err(de)?;
        }
    }
    if s.trajectory && !pts.is_empty() {
        pa.draw(&Circle::new(pts[0], sty.pxu(4.5), WHITE.filled()))
            .map_err(de)?;
        pa.draw(&Circle::new(
            pts[0],
            sty.pxu(4.5),
            c.stroke_width(sty.pxu(2.0)),
        ))
        .map_err(de)?;
        let end = chart.backend_coord(&pts[pts.len() - 1]);
        // Direction from the last earlier point at a visible distance.
        let mut from = None;
        for p in pts.iter().rev().skip(1) {
            let q = chart.backend_coord(p);
            if (q.0 - end.0).abs() + (q.1 - end.1).abs() >= 2 {
                from = Some(q);
                break;
            }
        }
        let (dx, dy) = match from {
            Some(q) => ((end.0 - q.0) as f64, (end.1 - q.1) as f64),
            None => (1.0, 0.0),
        };
        let n = (dx * dx + dy * dy).sqrt().max(1e-9);
        let (ux, uy) = (dx / n, dy / n);
        let (l, hw) = (13.0 * sty.s, 5.5 * sty.s);
        let (ex, ey) = (end.0 as f64 + ux * 0.35 * l, end.1 as f64 + uy * 0.35 * l);
        let tri = vec![
            (ex.round() as i32, ey.round() as i32),
            (
                (ex - ux * l - uy * hw).round() as i32,
                (ey - uy * l + ux * hw).round() as i32,
            ),
            (
                (ex - ux * l + uy * hw).round() as i32,
                (ey - uy * l - ux * hw).round() as i32,
            ),
        ];
        // Backend coordinates are the root area's own (the root starts at the origin).
        root.draw(&Polygon::new(tri, c.filled())).map_err(de)?;
    }
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &Figure,
    sty: &Sty,
) -> DrawResult<()> {
    if fig.legend.is_empty() && fig.note.is_none() {
        return Ok(());
    }
    let x0 = sty.px(8.0);
    let mut y = sty.px(22.0);
    let row = sty.px(LEGEND_ROW);
    let text_at = |s: &str, x: i32, y: i32, bold: bool| {
        let f = if bold {
            sty.font(13.5).style(FontStyle::Bold)
        } else {
            sty.font(13.5)
        };
        area.draw(&Text::new(
            s.to_string(),
            (x, y),
            f.color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(de)
    };
    let sw = sty.px(28.0);
    let tx = x0 + sw + sty.px(8.0);
    for e in &fig.legend {
        match e {
            LegendEntry::Heading(h) => {
                if y > sty.px(22.0) {
                    y += sty.px(6.0);
                }
                text_at(h, x0, y, true)?;
            }
            LegendEntry::Line {
                label,
                color: c,
                dash,
                marker,
            } => {
                let c = color(*c);
                let style = c.stroke_width(sty.pxu(2.0));
                let (d, g) = dash_style(*dash);
                let line = vec![(x0, y), (x0 + sw, y)];
                if d == 0 {
                    area.draw(&PathElement::new(line, style)).map_err(de)?;
                } else {
                    area.draw(&DashedPathElement::new(
                        line,
                        sty.pxu(d as f64),
                        sty.pxu(g as f64),
                        style,
                    ))
                    .map_err(de)?;
                }
                if *marker {
                    area.draw(&Circle::new((x0 + sw / 2, y), sty.pxu(3.2), c.filled()))
                        .map_err(de)?;
                }
                text_at(label, tx, y, false)?;
            }
            LegendEntry::Band(label) => {
                area.draw(&Rectangle::new(
                    [(x0, y - sty.px(6.0)), (x0 + sw, y + sty.px(6.0))],
                    color(GREY).mix(0.25).filled(),
                ))
                .map_err(de)?;
                text_at(label, tx, y, false)?;
            }
            LegendEntry::Start(label) => {
                let c = color(GREY);
                area.draw(&Circle::new(
                    (x0 + sw / 2, y),
                    sty.pxu(4.5),
                    c.stroke_width(sty.pxu(2.0)),
                ))
                .map_err(de)?;
                text_at(label, tx, y, false)?;
            }
            LegendEntry::End(label) => {
                let (cx, cy) = (x0 + sw / 2, y);
                let (l, hw) = (sty.px(7.0), sty.px(5.5));
                area.draw(&Polygon::new(
                    vec![(cx + l, cy), (cx - l, cy - hw), (cx - l, cy + hw)],
                    color(GREY).filled(),
                ))
                .map_err(de)?;
                text_at(label, tx, y, false)?;
            }
        }
        y += row;
    }
    if let Some(note) = &fig.note {
        y += sty.px(8.0);
        for line in note.lines() {
            area.draw(&Text::new(
                line.to_string(),
                (x0, y),
                sty.font(12.5)
                    .color(&RGBColor(90, 90, 90))
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(de)?;
            y += sty.px(16.0);
        }
    }
    Ok(())
}

/// The figure as SVG text; `size` in SVG units (default: [`default_size`]).
pub fn svg(fig: &Figure, size: Option<(u32, u32)>) -> Result<String> {
    init_font();
    let (w, h) = size.unwrap_or_else(|| default_size(fig));
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
        draw(&root, fig, &Sty { s: 1.0 }).map_err(|e| anyhow!("drawing {}: {e}", fig.title))?;
        root.present()
            .map_err(|e| anyhow!("drawing {}: {e:?}", fig.title))?;
    }
    Ok(out)
}

/// The figure as PNG bytes, `scale` pixels per SVG unit.
pub fn png(fig: &Figure, size: Option<(u32, u32)>, scale: f64) -> Result<Vec<u8>> {
    init_font();
    let (w, h) = size.unwrap_or_else(|| default_size(fig));
    let (pw, ph) = (
        (w as f64 * scale).round() as u32,
        (h as f64 * scale).round() as u32,
    );
    let mut buf = vec![255u8; pw as usize * ph as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (pw, ph)).into_drawing_area();
        draw(&root, fig, &Sty { s: scale }).map_err(|e| anyhow!("drawing {}: {e}", fig.title))?;
        root.present()
            .map_err(|e| anyhow!("drawing {}: {e:?}", fig.title))?;
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, pw, ph);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut wr = enc.write_header()?;
        wr.write_image_data(&buf)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_are_round_numbers() {
        let a = Axis::linear(0.0, 200.0).integer();
        assert_eq!(a.ticks(false), vec![0.0, 50.0, 100.0, 150.0, 200.0]);
        assert_eq!(a.label(150.0), "150");
        let b = Axis::linear(-0.013, 0.041);
        let t = b.ticks(false);
        assert!(t.contains(&0.0) && t.len() >= 4 && t.len() <= 8, "{t:?}");
        assert_eq!(b.label(-0.01), "\u{2212}0.01");
        assert_eq!(b.label(0.0), "0.00");
    }

    #[test]
    fn log_ticks_read_as_powers() {
        let a = Axis {
            log: true,
            ..Axis::linear(1e-3, 1.0)
        };
        let t = a.ticks(false);
        assert_eq!(t.len(), 4, "{t:?}");
        assert_eq!(a.label(1e-3), "0.001");
        assert_eq!(a.label(1.0), "1");
        let b = Axis {
            log: true,
            ..Axis::linear(1e-7, 1.0)
        };
        assert_eq!(b.label(1e-6), "10⁻⁶");
        let c = Axis {
            log: true,
            ..Axis::linear(0.05, 0.5)
        };
        let t = c.ticks(false);
        assert!(t.contains(&0.1) && t.contains(&0.2), "{t:?}");
        assert_eq!(c.label(0.2), "0.2");
        assert_eq!(c.label(0.05), "0.05");
    }

    #[test]
    fn categorical_labels() {
        let a = Axis::categorical(vec!["avg".into(), "cls".into()]);
        assert_eq!(a.ticks(false), vec![0.0, 1.0]);
        assert_eq!(a.label(1.0), "cls");
    }
}
