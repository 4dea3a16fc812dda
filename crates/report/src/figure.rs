//! The figure model: what a chart shows, independent of how it is drawn. Built by
//! [`super::charts`], drawn by [`super::render`].

/// An sRGB colour (JSON: `"#rrggbb"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl serde::Serialize for Rgb {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2))
    }
}

/// The Okabe–Ito palette (Okabe & Ito 2008, "Color Universal Design"), distinguishable with the
/// common colour-vision deficiencies; ordered for contrast on white (yellow and black last).
pub const OKABE_ITO: [Rgb; 8] = [
    Rgb(0x00, 0x72, 0xB2), // blue
    Rgb(0xD5, 0x5E, 0x00), // vermillion
    Rgb(0x00, 0x9E, 0x73), // bluish green
    Rgb(0xCC, 0x79, 0xA7), // reddish purple
    Rgb(0xE6, 0x9F, 0x00), // orange
    Rgb(0x56, 0xB4, 0xE9), // sky blue
    Rgb(0xF0, 0xE4, 0x42), // yellow
    Rgb(0x00, 0x00, 0x00), // black
];

/// Grey for entries that stand for no colour (line styles, bands).
pub const GREY: Rgb = Rgb(0x60, 0x60, 0x60);

/// The colour of value `i` of `n`: Okabe–Ito for up to 8 values; beyond that a sequential ramp
/// (cividis, also colour-blind safe) sampled evenly, since a key with many values is nearly always
/// an ordered one (a learning rate, a temperature).
pub fn palette(i: usize, n: usize) -> Rgb {
    if n <= OKABE_ITO.len() {
        return OKABE_ITO[i % OKABE_ITO.len()];
    }
    // cividis at 0, 1/8, …, 1 (matplotlib's table), interpolated linearly.
    #[allow(clippy::approx_constant)]
    const CIVIDIS: [(f64, f64, f64); 9] = [
        (0.0000, 0.1262, 0.3015),
        (0.0853, 0.2069, 0.4342),
        (0.2537, 0.2897, 0.4322),
        (0.3683, 0.3706, 0.4506),
        (0.4806, 0.4566, 0.4719),
        (0.6001, 0.5448, 0.4572),
        (0.7241, 0.6392, 0.4268),
        (0.8556, 0.7397, 0.3645),
        (0.9932, 0.9048, 0.1445),
    ];
    let t = i as f64 / (n - 1).max(1) as f64 * 8.0;
    let k = (t.floor() as usize).min(7);
    let f = t - k as f64;
    let (a, b) = (CIVIDIS[k], CIVIDIS[k + 1]);
    let c = |x: f64, y: f64| ((x + (y - x) * f) * 255.0).round().clamp(0.0, 255.0) as u8;
    Rgb(c(a.0, b.0), c(a.1, b.1), c(a.2, b.2))
}

/// Line styles for the keys that are neither colour nor facet: solid, dashed, dotted, long
/// dashes, short dashes, sparse dots; `(dash, gap)` in SVG units, (0, 0) = solid. They repeat
/// beyond six (the figure's note says so; facets are the better tool then).
pub const DASHES: [(u32, u32); 6] = [(0, 0), (8, 4), (2, 3), (16, 5), (4, 2), (1, 6)];

/// Where a marker sits on a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Markers {
    None,
    /// A filled dot at every point.
    All,
}

/// One line of a panel.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Series {
    /// What the line is (`key=value, …`): legends and tests.
    pub name: String,
    pub color: Rgb,
    /// Index into [`DASHES`].
    pub dash: usize,
    pub points: Vec<(f64, f64)>,
    /// (x, low, high): a translucent band (min–max over seeds), empty for none.
    pub band: Vec<(f64, f64, f64)>,
    /// (x, low, high): error bars (min–max over seeds), empty for none.
    pub error_bars: Vec<(f64, f64, f64)>,
    pub markers: Markers,
    /// A hollow circle at the first point and an arrowhead at the last (trajectories).
    pub trajectory: bool,
    /// (x, height): filled bars from 0, 0.6 wide (bar charts).
    pub bars: Vec<(f64, f64)>,
    /// The runs behind the series (ids), for the dashboard's hover and selection; empty when
    /// the series stands for no run (an importance bar, a reference line).
    pub runs: Vec<String>,
    /// The legend entries that stand for the series (their labels), so that hiding one of them
    /// hides it; empty when none does.
    pub legend: Vec<String>,
}

impl Series {
    pub fn line(name: String, color: Rgb, dash: usize, points: Vec<(f64, f64)>) -> Series {
        Series {
            name,
            color,
            dash,
            points,
            band: Vec::new(),
            error_bars: Vec::new(),
            markers: Markers::None,
            trajectory: false,
            bars: Vec::new(),
            runs: Vec::new(),
            legend: Vec::new(),
        }
    }
}

/// An axis: range, scale and how its ticks read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    /// Integer ticks only (steps, layers, indices).
    pub integer: bool,
    /// Categorical axis: a label at each integer position 0, 1, ….
    pub categories: Option<Vec<String>>,
    /// About how many labelled ticks to draw.
    pub n_labels: usize,
}

impl Axis {
    pub fn linear(lo: f64, hi: f64) -> Axis {
        Axis {
            lo,
            hi,
            log: false,
            integer: false,
            categories: None,
            n_labels: 6,
        }
    }

    pub fn categorical(labels: Vec<String>) -> Axis {
        Axis {
            lo: -0.5,
            hi: labels.len() as f64 - 0.5,
            log: false,
            integer: true,
            n_labels: labels.len().max(1),
            categories: Some(labels),
        }
    }

    pub fn integer(mut self) -> Axis {
        self.integer = true;
        self
    }

    /// An axis holding `values` with a margin of `pad` (a fraction of the span, in log space for a
    /// log axis). A log axis ignores values ≤ 0 and falls back to linear when none is positive.
    pub fn fit(values: impl IntoIterator<Item = f64>, log: bool, pad: f64) -> Axis {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for v in values {
            if v.is_finite() && (!log || v > 0.0) {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if !lo.is_finite() {
            return if log {
                Axis::fit(std::iter::empty(), false, pad)
            } else {
                Axis::linear(0.0, 1.0)
            };
        }
        if log {
            let (a, b) = (lo.log10(), hi.log10());
            let (a, b) = if b - a < 1e-9 {
                (a - 0.5, b + 0.5)
            } else {
                let p = (b - a) * pad;
                (a - p, b + p)
            };
            let mut ax = Axis::linear(10f64.powf(a), 10f64.powf(b));
            ax.log = true;
            return ax;
        }
        let (lo, hi) = if hi - lo <= f64::EPSILON * lo.abs().max(hi.abs()).max(1e-300) * 16.0 {
            let d = (lo.abs() * 0.05).max(1e-6);
            (lo - d, hi + d)
        } else {
            let p = (hi - lo) * pad;
            (lo - p, hi + p)
        };
        Axis::linear(lo, hi)
    }

    /// The smallest range covering both.
    pub fn union(&self, other: &Axis) -> Axis {
        let mut a = self.clone();
        a.lo = a.lo.min(other.lo);
        a.hi = a.hi.max(other.hi);
        a
    }
}

/// One panel (a facet, or one gradient component).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Panel {
    /// `key=value` of a facet, or the component's name.
    pub title: Option<String>,
    pub x: Axis,
    pub y: Axis,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Text at data coordinates (parallel coordinates' axis levels, bar values).
    pub labels: Vec<Label>,
}

/// A text placed at data coordinates: starting there (`left`), or centred on it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Label {
    pub x: f64,
    pub y: f64,
    pub text: String,
    pub left: bool,
}

/// A legend entry.
#[derive(Debug, Clone)]
pub enum LegendEntry {
    /// A heading line (a key name).
    Heading(String),
    /// A line sample.
    Line {
        label: String,
        color: Rgb,
        dash: usize,
        marker: bool,
    },
    /// A translucent band sample.
    Band(String),
    /// The trajectory start marker (hollow circle) and end marker (arrowhead).
    Start(String),
    End(String),
}

/// JSON: `{"type": "heading" | "line" | "band" | "start" | "end", "label"}`, a line with its
/// `color`, `dash` and `marker`.
impl serde::Serialize for LegendEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let kind = match self {
            LegendEntry::Heading(_) => "heading",
            LegendEntry::Line { .. } => "line",
            LegendEntry::Band(_) => "band",
            LegendEntry::Start(_) => "start",
            LegendEntry::End(_) => "end",
        };
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", kind)?;
        m.serialize_entry("label", self.label())?;
        if let LegendEntry::Line {
            color,
            dash,
            marker,
            ..
        } = self
        {
            m.serialize_entry("color", color)?;
            m.serialize_entry("dash", dash)?;
            m.serialize_entry("marker", marker)?;
        }
        m.end()
    }
}

impl LegendEntry {
    pub fn label(&self) -> &str {
        match self {
            LegendEntry::Heading(s)
            | LegendEntry::Band(s)
            | LegendEntry::Start(s)
            | LegendEntry::End(s) => s,
            LegendEntry::Line { label, .. } => label,
        }
    }
}

/// A whole chart: a grid of panels and one legend to their right (never over the data).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figure {
    pub title: String,
    pub cols: usize,
    pub panels: Vec<Panel>,
    pub legend: Vec<LegendEntry>,
    /// Free text under the legend (e.g. how many runs were drawn).
    pub note: Option<String>,
}

impl Figure {
    pub fn rows(&self) -> usize {
        self.panels.len().div_ceil(self.cols.max(1))
    }

    /// The names of every series, for tests and messages.
    pub fn series_names(&self) -> Vec<&str> {
        self.panels
            .iter()
            .flat_map(|p| p.series.iter().map(|s| s.name.as_str()))
            .collect()
    }
}

/// A centred moving average over `window` points (an even window is widened by one), the window
/// shrinking symmetrically at the ends so the first and last points stay where they were
/// recorded. x values are kept.
pub fn smooth(points: &[(i64, f64)], window: usize) -> Vec<(i64, f64)> {
    let half = window / 2;
    if half == 0 || points.len() < 3 {
        return points.to_vec();
    }
    let mut prefix = Vec::with_capacity(points.len() + 1);
    prefix.push(0.0);
    for p in points {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + p.1);
    }
    let n = points.len();
    (0..n)
        .map(|i| {
            let h = half.min(i).min(n - 1 - i);
            let (a, b) = (i - h, i + h + 1);
            (points[i].0, (prefix[b] - prefix[a]) / (b - a) as f64)
        })
        .collect()
}

/// Thin a line to about `target` buckets, keeping each bucket's lowest and highest point in
/// step order, and the first and last point: at one bucket per pixel column the drawn envelope
/// is the same as with every point (min–max decimation), at a fraction of the cost for long runs
/// (2,000 steps × 200 runs). Lines of up to `2 × target` points are returned as they are.
pub fn downsample(points: &[(f64, f64)], target: usize) -> Vec<(f64, f64)> {
    let n = points.len();
    let target = target.max(2);
    if n <= 2 * target {
        return points.to_vec();
    }
    let mut out = Vec::with_capacity(2 * target + 2);
    out.push(points[0]);
    for b in 0..target {
        let (s, e) = (1 + b * (n - 2) / target, 1 + (b + 1) * (n - 2) / target);
        if s >= e {
            continue;
        }
        let chunk = &points[s..e];
        let (mut imin, mut imax) = (0, 0);
        for (i, p) in chunk.iter().enumerate() {
            if p.1 < chunk[imin].1 {
                imin = i;
            }
            if p.1 > chunk[imax].1 {
                imax = i;
            }
        }
        let (a, b2) = if imin <= imax {
            (imin, imax)
        } else {
            (imax, imin)
        };
        out.push(chunk[a]);
        if b2 != a {
            out.push(chunk[b2]);
        }
    }
    out.push(points[n - 1]);
    out
}

/// Thin a band the same way: per bucket the lowest low and the highest high (at the bucket's
/// first x), so the drawn band never shrinks.
pub fn downsample_band(band: &[(f64, f64, f64)], target: usize) -> Vec<(f64, f64, f64)> {
    let n = band.len();
    let target = target.max(2);
    if n <= 2 * target {
        return band.to_vec();
    }
    let mut out = Vec::with_capacity(target + 2);
    out.push(band[0]);
    for b in 0..target {
        let (s, e) = (1 + b * (n - 2) / target, 1 + (b + 1) * (n - 2) / target);
        if s >= e {
            continue;
        }
        let chunk = &band[s..e];
        let lo = chunk.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = chunk.iter().map(|p| p.2).fold(f64::NEG_INFINITY, f64::max);
        out.push((chunk[0].0, lo, hi));
        if chunk.len() > 1 {
            out.push((chunk[chunk.len() - 1].0, lo, hi));
        }
    }
    out.push(band[n - 1]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_the_envelope_and_the_ends() {
        let pts: Vec<(f64, f64)> = (0..2000)
            .map(|i| (i as f64, ((i * 7919) % 1000) as f64))
            .collect();
        let d = downsample(&pts, 100);
        assert!(d.len() <= 202, "{}", d.len());
        assert_eq!(d[0], pts[0]);
        assert_eq!(*d.last().unwrap(), pts[1999]);
        let max = |v: &[(f64, f64)]| v.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        let min = |v: &[(f64, f64)]| v.iter().map(|p| p.1).fold(f64::MAX, f64::min);
        assert_eq!(max(&d), max(&pts));
        assert_eq!(min(&d), min(&pts));
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0), "x stays ordered");
        // Short lines are untouched.
        assert_eq!(downsample(&pts[..150], 100), pts[..150].to_vec());
        let band: Vec<(f64, f64, f64)> = pts.iter().map(|p| (p.0, p.1 - 1.0, p.1 + 1.0)).collect();
        let b = downsample_band(&band, 100);
        assert!(b.len() <= 202);
        assert_eq!(b.iter().map(|p| p.2).fold(f64::MIN, f64::max), 1000.0);
    }

    #[test]
    fn smoothing_is_a_centred_mean_that_keeps_the_ends() {
        let p: Vec<(i64, f64)> = (0..6).map(|i| (i, (i * i) as f64)).collect();
        let s = smooth(&p, 3);
        assert_eq!(s[0], (0, 0.0));
        assert_eq!(s[1], (1, (0.0 + 1.0 + 4.0) / 3.0));
        assert_eq!(s[5], (5, 25.0));
        assert_eq!(smooth(&p, 1), p);
    }

    #[test]
    fn palette_is_okabe_ito_then_cividis() {
        assert_eq!(palette(0, 2), Rgb(0x00, 0x72, 0xB2));
        assert_eq!(palette(1, 2), Rgb(0xD5, 0x5E, 0x00));
        assert_ne!(palette(0, 12), palette(11, 12));
        assert_eq!(palette(0, 12), Rgb(0, 32, 77));
    }

    #[test]
    fn fit_pads_and_handles_degenerate_ranges() {
        let a = Axis::fit([1.0, 3.0], false, 0.05);
        assert!((a.lo - 0.9).abs() < 1e-12 && (a.hi - 3.1).abs() < 1e-12);
        let c = Axis::fit([2.0, 2.0], false, 0.05);
        assert!(c.lo < 2.0 && c.hi > 2.0);
        let l = Axis::fit([0.0, 0.01, 1.0], true, 0.0);
        assert!(l.log && (l.lo - 0.01).abs() < 1e-12);
        let e = Axis::fit([f64::NAN], true, 0.0);
        assert!(!e.log && e.lo < e.hi);
    }
}
