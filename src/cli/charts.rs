//! The commands that draw: plot and report.

use super::*;

pub(super) fn parse_size(s: &str) -> std::result::Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X', '×'])
        .ok_or_else(|| format!("`{s}`: expected WIDTHxHEIGHT, e.g. 900x600"))?;
    let p = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (100..=10_000).contains(n))
            .ok_or_else(|| {
                format!("`{s}`: width and height must be whole numbers from 100 to 10000")
            })
    };
    Ok((p(w)?, p(h)?))
}

/// `simsweep plot`: read, then render (several metrics in parallel), then write.
pub(super) fn plot(
    cli: &Cli,
    sweep: &str,
    req: crate::plot::Request,
    metrics: &[String],
    out: Option<&std::path::Path>,
) -> Result<i32> {
    use crate::plot::{self, charts, data::SweepData, Format};
    use rayon::prelude::*;
    let metrics: Vec<Option<String>> = if metrics.is_empty() {
        vec![None]
    } else {
        metrics.iter().map(|m| Some(m.trim().to_string())).collect()
    };
    let out = match out {
        Some(p) => p.to_path_buf(),
        None => {
            let name = match (&metrics[0], metrics.len()) {
                (_, n) if n > 1 => format!("{}-{{metric}}.svg", req.kind.name()),
                (Some(m), _) => format!("{}-{m}.svg", req.kind.name()),
                (None, _) => match charts::default_metric(req.kind) {
                    Some(m) => format!("{}-{m}.svg", req.kind.name()),
                    None => format!("{}.svg", req.kind.name()),
                },
            };
            plot::sweep_dir(&cli.db, sweep).join("plots").join(name)
        }
    };
    let format = Format::from_path(&out)?;
    let store = Store::open_readonly(&cli.db)?;
    let data = SweepData::load(&store.conn, sweep)?;
    let mut figures = Vec::new();
    for m in &metrics {
        let mut r = req.clone();
        r.metric = m.clone();
        let fig = charts::figure(&store.conn, &data, &r)?;
        let path = plot::output_for_metric(
            &out,
            m.as_deref()
                .or(charts::default_metric(req.kind))
                .unwrap_or(req.kind.name()),
            metrics.len() > 1,
        );
        figures.push((path, fig));
    }
    let rendered: Vec<(std::path::PathBuf, Vec<u8>)> = figures
        .into_par_iter()
        .map(|(path, fig)| Ok((path, plot::render_bytes(&fig, req.size, format)?)))
        .collect::<Result<_>>()?;
    for (path, bytes) in rendered {
        plot::write_output(&path, &bytes)?;
        println!("{}", path.display());
    }
    Ok(0)
}

/// `simsweep report`: the sweep's HTML report.
pub(super) fn report(cli: &Cli, sweep: &str, out: Option<&std::path::Path>) -> Result<i32> {
    use crate::plot::{self, data::SweepData};
    let out = match out {
        Some(p) => p.to_path_buf(),
        None => plot::sweep_dir(&cli.db, sweep).join("report.html"),
    };
    let store = Store::open_readonly(&cli.db)?;
    let data = SweepData::load(&store.conn, sweep)?;
    let html = plot::report::html(&store.conn, &data, &cli.db)?;
    plot::write_output(&out, html.as_bytes())?;
    println!("{}", out.display());
    Ok(0)
}
