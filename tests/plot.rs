//! `simsweep plot` and `simsweep report` end to end, on synthetic databases
//! (`simsweep_report::synthetic`): every chart kind in SVG and PNG, the errors, the report's
//! structure, and the report rendered by headless Chromium.

use simsweep_report::figure::OKABE_ITO;
use simsweep_report::synthetic::{self, Synthetic};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_simsweep"));
    c.env_remove("SIMSWEEP_DB").env_remove("SIMSWEEP_DATA_DIR");
    c
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A database with one synthetic sweep `s` at `<tmp>/results/r.db`.
fn database(spec: &Synthetic) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("results/r.db");
    synthetic::write(&db, spec).unwrap();
    (dir, db)
}

fn small(layers: usize) -> Synthetic {
    let mut s = Synthetic::small("s");
    s.layers = layers;
    s
}

fn simsweep(db: &Path, args: &[&str]) -> Output {
    bin()
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run simsweep")
}

/// Width, height and RGB(A) pixels of a PNG file.
fn decode_png(path: &Path) -> (u32, u32, usize, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let channels = info.color_type.samples();
    (info.width, info.height, channels, buf)
}

/// How many pixels are (within a small tolerance) each Okabe–Ito colour.
fn palette_pixels(channels: usize, px: &[u8]) -> Vec<usize> {
    let mut n = vec![0; OKABE_ITO.len()];
    for p in px.chunks_exact(channels) {
        for (i, c) in OKABE_ITO.iter().enumerate() {
            if (p[0] as i32 - c.0 as i32).abs() <= 6
                && (p[1] as i32 - c.1 as i32).abs() <= 6
                && (p[2] as i32 - c.2 as i32).abs() <= 6
            {
                n[i] += 1;
            }
        }
    }
    n
}

#[test]
fn every_chart_kind_renders_as_svg_and_png() {
    let (dir, db) = database(&small(3));
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "curves",
            &["--metric", "loss", "--facet-by", "model.pooling"],
            &[
                "train.temperature=0.05",
                "train.temperature=0.5",
                "model.pooling=avg",
                "model.pooling=cls",
                "min–max over seeds",
                ">\nstep\n<",
            ],
        ),
        (
            "final",
            &["--metric", "stsb_dev"],
            &[
                "model.pooling=avg",
                "model.pooling=cls",
                "best stsb_dev",
                ">\ntrain.temperature\n<",
            ],
        ),
        (
            "align-uniform",
            &[],
            &[
                "train.temperature=0.05",
                "model.pooling=cls",
                "step 0",
                "step 100",
                "uniformity  ℓ_uniform",
                "alignment  ℓ_align",
            ],
        ),
        (
            "spectrum",
            &[],
            &["step=0", "step=100", "σ_k / σ_1", "train.temperature=0.5"],
        ),
        (
            "layers",
            &["--metric", "intra_sentence_similarity", "--steps", "0,100"],
            &[
                "layer (0 = embeddings)",
                "step=0",
                "step=100",
                "train.temperature=0.05",
            ],
        ),
        (
            "gradients",
            &["--smooth", "5"],
            &[
                ">\ngd_mean\n<",
                ">\nw_entropy\n<",
                ">\nw_max\n<",
                ">\nratio_mean\n<",
                "train.temperature=0.5",
                "moving",
            ],
        ),
    ];
    for (kind, args, expect) in cases {
        for ext in ["svg", "png"] {
            let out = dir.path().join(format!("charts/{kind}.{ext}"));
            let mut a = vec!["plot", "s", "--kind", kind];
            a.extend_from_slice(args);
            let o = out.display().to_string();
            a.extend(["-o", &o]);
            let r = simsweep(&db, &a);
            assert!(r.status.success(), "{kind} {ext}: {}", text(&r.stderr));
            assert_eq!(text(&r.stdout).trim(), o);
            let size = std::fs::metadata(&out).unwrap().len();
            if ext == "svg" {
                assert!((3_000..3_000_000).contains(&size), "{kind}: {size} bytes");
                let svg = std::fs::read_to_string(&out).unwrap();
                assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
                for e in *expect {
                    assert!(svg.contains(e), "{kind}: the SVG lacks {e:?}");
                }
            } else {
                assert!((20_000..8_000_000).contains(&size), "{kind}: {size} bytes");
                let (w, h, ch, px) = decode_png(&out);
                assert!(w >= 1000 && h >= 600, "{kind}: {w}×{h}");
                let colours = palette_pixels(ch, &px);
                // Blue and vermillion (the two temperatures) drawn over many pixels.
                assert!(
                    colours[0] > 300 && colours[1] > 300,
                    "{kind}: palette pixels {colours:?}"
                );
            }
        }
    }
}

#[test]
fn several_metrics_render_one_chart_each_and_the_default_path_is_beside_the_database() {
    let (dir, db) = database(&small(0));
    let pattern = dir.path().join("c/{metric}.png").display().to_string();
    let r = simsweep(
        &db,
        &[
            "plot",
            "s",
            "--kind",
            "curves",
            "--metric",
            "loss,stsb_dev,pos_cos",
            "-o",
            &pattern,
        ],
    );
    assert!(r.status.success(), "{}", text(&r.stderr));
    for m in ["loss", "stsb_dev", "pos_cos"] {
        assert!(dir.path().join(format!("c/{m}.png")).is_file(), "{m}");
    }
    let plain = dir.path().join("d/curves.svg").display().to_string();
    let r = simsweep(
        &db,
        &[
            "plot",
            "s",
            "--kind",
            "curves",
            "--metric",
            "loss,stsb_dev",
            "-o",
            &plain,
        ],
    );
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert!(dir.path().join("d/curves-loss.svg").is_file());
    assert!(dir.path().join("d/curves-stsb_dev.svg").is_file());
    let r = simsweep(&db, &["plot", "s", "--kind", "spectrum"]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let default = dir.path().join("results/s/plots/spectrum.svg");
    assert_eq!(text(&r.stdout).trim(), default.display().to_string());
    assert!(default.is_file());
}

#[test]
fn bad_requests_exit_2_with_a_clear_message() {
    let (dir, db) = database(&small(0));
    let out = dir.path().join("x.svg").display().to_string();
    let cases: &[(&[&str], &str)] = &[
        (
            &["plot", "nope", "--kind", "curves"],
            "no sweep named `nope`; sweeps in the database: s",
        ),
        (
            &["plot", "s", "--kind", "curves", "--metric", "bogus"],
            "metric `bogus` was not recorded in sweep `s`; recorded: alignment, avg, batch_alignment",
        ),
        (
            &["plot", "s", "--kind", "curves", "--color-by", "train.lr"],
            "--color-by `train.lr` is not a swept key of sweep `s` (swept keys: train.temperature, model.pooling; or `seed`)",
        ),
        (
            &["plot", "s", "--kind", "curves", "--facet-by", "model.poolin"],
            "--facet-by `model.poolin` is not a swept key",
        ),
        (
            &["plot", "s", "--kind", "layers"],
            "probe.layers was not set for this sweep (`s`)",
        ),
        (
            &["plot", "s", "--kind", "spectrum", "--steps", "30"],
            "--steps: the spectrum was not recorded at step 30; recorded at steps 0, 25, 50, 75, 100",
        ),
        (
            &["plot", "s", "--kind", "curves", "-o", "/proc/simsweep/x.svg"],
            "cannot write output file /proc/simsweep/x.svg",
        ),
        (
            &["plot", "s", "--kind", "curves", "-o", "chart.jpg"],
            "the name must end in .svg or .png",
        ),
        (
            &["plot", "s", "--kind", "gradients", "--metric", "loss"],
            "--metric does not apply to --kind gradients",
        ),
        (
            &["report", "nope"],
            "no sweep named `nope`",
        ),
        (
            &["report", "s", "-o", "/proc/simsweep/r.html"],
            "cannot write output file /proc/simsweep/r.html",
        ),
    ];
    for (args, msg) in cases {
        let mut a = args.to_vec();
        if !a.contains(&"-o") && a[0] == "plot" {
            a.extend(["-o", &out]);
        }
        let r = simsweep(&db, &a);
        let err = text(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
    assert!(!Path::new(&out).exists());
    // clap's own checks.
    let r = simsweep(&db, &["plot", "s", "--kind", "pie"]);
    assert_eq!(r.status.code(), Some(2));
    let r = simsweep(&db, &["plot", "s", "--kind", "curves", "--size", "20x10"]);
    assert_eq!(r.status.code(), Some(2));
}

#[test]
fn plot_and_report_have_help() {
    for args in [
        &["plot", "--help"][..],
        &["report", "--help"],
        &["bench", "plot", "--help"],
    ] {
        let out = bin().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let help = text(&out.stdout);
        assert!(help.contains("Usage: simsweep"), "{args:?}");
        if args[0] == "plot" {
            for flag in [
                "--kind",
                "--metric",
                "--color-by",
                "--facet-by",
                "--mode",
                "--steps",
                "--log-y",
                "--smooth",
                "--out",
            ] {
                assert!(help.contains(flag), "plot --help lacks {flag}");
            }
        }
    }
}

/// What every report must hold, and must not: no scripts, no external resources.
fn check_self_contained(html: &str) {
    for banned in [
        "<script", "<link", "http://", "https://", " src=", "href=", "url(", "@import",
    ] {
        assert!(!html.contains(banned), "the report contains {banned:?}");
    }
}

#[test]
fn the_report_is_one_self_contained_html_file() {
    let mut spec = small(2);
    spec.pending = 1;
    let (dir, db) = database(&spec);
    let r = simsweep(&db, &["report", "s"]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let path = dir.path().join("results/s/report.html");
    assert_eq!(text(&r.stdout).trim(), path.display().to_string());
    let html = std::fs::read_to_string(&path).unwrap();
    check_self_contained(&html);
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    for part in [
        "<title>simsweep report: s</title>",
        "synthetic: temperature × pooler",
        "Best per key",
        "Configurations, by best stsb_dev",
        "<h3>By train.temperature</h3>",
        "<h3>By model.pooling</h3>",
        "highest best stsb_dev: <b>",
        " ± ",
        "Learning curve: loss",
        "Best stsb_dev by train.temperature",
        "Alignment and uniformity",
        "Singular value spectrum",
        "Gradient components",
        "Per-layer token_anisotropy",
        "Parallel coordinates: swept keys against best stsb_dev",
        "<h2 id=\"stats\">Seed statistics and which settings matter</h2>",
        "Best stsb_dev per configuration: 95 % intervals",
        "Which settings matter (best stsb_dev)",
        "seed (residual)",
        "<h2 id=\"runs\">Runs</h2>",
        "pending",
        // The sweep file, escaped.
        "# Synthetic results (simsweep_report::synthetic) — a &lt; b &amp; c",
        "&quot;train.temperature&quot; = [0.05, 0.5]",
    ] {
        assert!(html.contains(part), "the report lacks {part:?}");
    }
    let store = simsweep_core::store::Store::open_readonly(&db).unwrap();
    for run in store.sweep_runs("s").unwrap() {
        assert!(html.contains(&run.run_id), "run {} missing", run.run_id);
    }
    // Twelve charts, all drawn: curves ×2, final ×3, parallel coordinates, align-uniform,
    // spectrum, gradients, layers ×2, and the importance bars.
    assert_eq!(html.matches("<svg ").count(), 12);
    assert!(!html.contains("Not drawn"));
    assert!(html.contains(">\nmodel.pooling=cls\n<"), "a facet title");
    // Without per-layer probes the layer charts are left out, not failed.
    let (dir, db) = database(&small(0));
    let out = dir.path().join("elsewhere/r.html");
    let r = simsweep(&db, &["report", "s", "-o", &out.display().to_string()]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let html = std::fs::read_to_string(&out).unwrap();
    check_self_contained(&html);
    assert_eq!(html.matches("<svg ").count(), 10);
    assert!(!html.contains("Per-layer"));
}

/// The browser for the screenshot test, from `scripts/chromium.sh` (which installs Debian's
/// `chromium` when it can). None, with a message, only where apt-get is not usable here (exit 3)
/// and `SIMSWEEP_REQUIRE_CHROMIUM` is not set (CI sets it, so CI never skips); a failed
/// installation fails the test.
fn chromium() -> Option<PathBuf> {
    let out = Command::new("bash")
        .arg(repo().join("scripts/chromium.sh"))
        .output()
        .expect("run scripts/chromium.sh");
    let err = text(&out.stderr);
    match out.status.code() {
        Some(0) => Some(PathBuf::from(text(&out.stdout).trim())),
        Some(3) if std::env::var_os("SIMSWEEP_REQUIRE_CHROMIUM").is_none() => {
            eprintln!("skipped: no headless Chromium: {}", err.trim());
            None
        }
        _ => panic!(
            "scripts/chromium.sh could not provide Chromium (exit {:?}): {err}",
            out.status.code()
        ),
    }
}

#[test]
fn the_report_renders_in_headless_chromium_with_its_charts_visible() {
    let Some(browser) = chromium() else { return };
    // Three temperatures, so three palette colours must show.
    let mut spec = small(0);
    spec.grid[0].1 = "[0.05, 0.1, 0.5]".into();
    let (dir, db) = database(&spec);
    let html = dir.path().join("report.html");
    let r = simsweep(&db, &["report", "s", "-o", &html.display().to_string()]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let shot = dir.path().join("shot.png");
    let profile = dir.path().join("chromium-profile");
    let mut child = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--window-size=1400,4200",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            panic!("chromium did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = {
        use std::io::Read;
        let mut s = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut s);
        s
    };
    assert!(
        status.success() && shot.is_file(),
        "chromium failed: {stderr}"
    );
    let (w, h, ch, px) = decode_png(&shot);
    assert_eq!((w, h), (1400, 4200));
    // The page is not blank, and the charts are there: the three temperatures' colours, each over
    // many pixels (lines, legends), in the charts' part of the page.
    let non_white = px
        .chunks_exact(ch)
        .filter(|p| p[0] < 235 || p[1] < 235 || p[2] < 235)
        .count();
    assert!(
        non_white > (w * h) as usize / 50,
        "only {non_white} non-white pixels"
    );
    let colours = palette_pixels(ch, &px);
    let shown = colours.iter().filter(|&&n| n >= 400).count();
    assert!(
        shown >= 3 && colours[0] >= 400 && colours[1] >= 400 && colours[2] >= 400,
        "palette pixels {colours:?}"
    );
    // Colour lies below the tables (the first chart starts after them): rows of palette pixels
    // spread over at least 1,500 px of the page's height.
    let row_has_colour = |y: usize| {
        let row = &px[y * w as usize * ch..(y + 1) * w as usize * ch];
        palette_pixels(ch, row)[..3].iter().any(|&n| n > 0)
    };
    let rows: Vec<usize> = (0..h as usize).filter(|&y| row_has_colour(y)).collect();
    assert!(
        rows.last().unwrap() - rows.first().unwrap() > 1500,
        "coloured rows from {} to {}",
        rows.first().unwrap(),
        rows.last().unwrap()
    );
}
