//! Charts of a sweep's results (plotters, SVG and PNG) and the self-contained HTML report.
//!
//! Three layers, one direction: [`data`] reads a sweep's runs and metric series from the database
//! (bound parameters, one metric of one run at a time through the `metrics` primary key);
//! [`charts`] turns them into a [`figure::Figure`] (panels, series, seed bands, legend: no drawing);
//! [`render`] draws a figure with plotters into SVG text or PNG bytes. Figures are plain data, so many
//! render in parallel (rayon) once read: `plot` with several metrics and `report` do so.

pub mod charts;
pub mod data;
pub mod figure;
pub mod render;
pub mod report;
pub mod synthetic;

pub(crate) use simsweep_core::{code_version, spec, store};

use anyhow::Result;
use simsweep_core::BadInput;
use std::path::{Path, PathBuf};

/// The chart kinds of `simsweep plot --kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A metric against the training step, a line per run (seed mean with a min–max band).
    Curves,
    /// The best or final value of a metric against a swept key, a line per value of another key.
    Final,
    /// The alignment–uniformity plane: each run's trajectory over the probed steps (SimCSE Fig. 2).
    AlignUniform,
    /// Normalised singular values sv_01…sv_64 against their index at chosen steps, log y (SimCSE §5).
    Spectrum,
    /// A probe metric against the layer index at a chosen step (needs `probe.layers`).
    Layers,
    /// The gradient components gd_mean, w_entropy, w_max, ratio_mean against the step.
    Gradients,
    /// Parallel coordinates of the swept keys against a metric, a line per run coloured by it.
    Parallel,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Curves => "curves",
            Kind::Final => "final",
            Kind::AlignUniform => "align-uniform",
            Kind::Spectrum => "spectrum",
            Kind::Layers => "layers",
            Kind::Gradients => "gradients",
            Kind::Parallel => "parallel",
        }
    }
}

/// Which value of a run `--kind final` (and the report) takes ([`data::run_score`]): the query
/// layer's [`Mode`](simsweep_core::query::Mode), one definition for `best`, `plot` and the report.
pub use simsweep_core::query::Mode;

/// Output format, from the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    /// `.svg` or `.png` (any case); anything else is bad input.
    pub fn from_path(p: &Path) -> Result<Format> {
        match p
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(BadInput(format!(
                "output file {}: the name must end in .svg or .png (the format is taken from it)",
                p.display()
            ))
            .into()),
        }
    }
}

/// Pixels per SVG unit in PNG output: PNGs are drawn at twice the figure's nominal size, so they
/// stay sharp on paper and high-density screens.
pub const PNG_SCALE: f64 = 2.0;

/// What to draw: the options of `simsweep plot`, for one metric.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: Kind,
    /// The metric (curves, final, layers); None: the kind's default.
    pub metric: Option<String>,
    /// Colour by this swept key (or `seed`); None: the kind's default.
    pub color_by: Option<String>,
    /// Small multiples by this swept key (or `seed`).
    pub facet_by: Option<String>,
    /// `final`: the swept key on the x axis; None: the first swept key other than --color-by.
    pub x_key: Option<String>,
    pub mode: Mode,
    /// `spectrum`, `layers`: the steps to show; empty: the kind's default.
    pub steps: Vec<i64>,
    /// Force a log (Some(true)) or linear (Some(false)) y axis; None: the kind's default.
    pub log_y: Option<bool>,
    /// `final`: force a log or linear x axis for a numeric key; None: log when the values are
    /// positive and span a factor of 10 or more.
    pub log_x: Option<bool>,
    /// Figure size in SVG units (PNG: × [`PNG_SCALE`] pixels); None: from the panel count.
    pub size: Option<(u32, u32)>,
    pub title: Option<String>,
    /// `curves`, `gradients`: a centred moving average over this many recorded points of each
    /// run before the seed mean ([`figure::smooth`]); 0 or 1: none.
    pub smooth: usize,
    /// `curves`, `gradients`: only the steps in this closed range (a zoom on the step axis; the
    /// points are thinned within it); None: every step.
    pub step_window: Option<(i64, i64)>,
}

impl Request {
    pub fn new(kind: Kind) -> Request {
        Request {
            kind,
            metric: None,
            color_by: None,
            facet_by: None,
            x_key: None,
            mode: Mode::Best,
            steps: Vec::new(),
            log_y: None,
            log_x: None,
            size: None,
            title: None,
            smooth: 0,
            step_window: None,
        }
    }
}

/// Render a figure in the given format: SVG text as bytes, or PNG bytes.
pub fn render_bytes(
    fig: &figure::Figure,
    size: Option<(u32, u32)>,
    format: Format,
) -> Result<Vec<u8>> {
    match format {
        Format::Svg => Ok(render::svg(fig, size)?.into_bytes()),
        Format::Png => render::png(fig, size, PNG_SCALE),
    }
}

/// Write `bytes` to `path`, creating its folder; a path that cannot be written is bad input.
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    let fail = |e: std::io::Error| -> anyhow::Error {
        BadInput(format!("cannot write output file {}: {e}", path.display())).into()
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    // Write beside it and rename, so a reader never sees half a file.
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}

/// Where a sweep's outputs go by default: `<db folder>/<sweep>/` (as the run checkpoints).
pub fn sweep_dir(db: &Path, sweep: &str) -> PathBuf {
    db.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(sweep)
}

/// The output path of one chart when a `plot` draws several metrics: `{metric}` in the name is
/// replaced by the metric; without it, `-<metric>` is inserted before the extension.
pub fn output_for_metric(out: &Path, metric: &str, several: bool) -> PathBuf {
    let s = out.to_string_lossy();
    if s.contains("{metric}") {
        return PathBuf::from(s.replace("{metric}", metric));
    }
    if !several {
        return out.to_path_buf();
    }
    let stem = out.file_stem().and_then(|x| x.to_str()).unwrap_or("chart");
    let ext = out.extension().and_then(|x| x.to_str()).unwrap_or("svg");
    out.with_file_name(format!("{stem}-{metric}.{ext}"))
}
