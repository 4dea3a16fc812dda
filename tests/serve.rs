//! `simsweep serve`, started as users start it, on a free port: every API route and error status,
//! the refusals (methods, paths outside the embedded assets, foreign Host headers), the database
//! byte for byte unchanged by reading; then, while a tiny sweep trains into the same database,
//! a bounded load of concurrent requests (zero lock errors on either side) and a real browser
//! (headless Chromium driven by Playwright) that watches a curve gain points, hovers it, clicks a
//! legend entry, overlays a run, opens a run's page and takes a screenshot.

mod common;

use common::{data_dir, micro_model, repo};
use rusqlite::Connection;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `simsweep serve`, killed on drop.
struct Server {
    child: Child,
    /// `127.0.0.1:PORT`
    addr: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .arg("--db")
        .arg(db)
        .args(["serve", "--port", "0"])
        .args(extra)
        .env_remove("SIMSWEEP_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start simsweep serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let mut err = child.stderr.take().unwrap();
        let s = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = String::new();
            let _ = err.read_to_string(&mut buf);
            s.lock().unwrap().push_str(&buf);
        });
    }
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in the first line: {line:?}"))
        .to_string();
    assert!(line.contains("read-only"), "{line}");
    Server {
        child,
        addr: url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .into(),
        stderr,
    }
}

/// One request, raw (the path is sent exactly as given: no client normalises it), through the
/// server crate's loopback client.
type Resp = simsweep_serve::client::Answer;

trait Json {
    fn json(&self) -> Value;
}

impl Json for Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn request(addr: &str, method: &str, path: &str, host: Option<&str>) -> Resp {
    simsweep_serve::client::request(addr, method, path, host)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// The status line of the answer to a request written out whole.
fn raw_status(addr: &str, text: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(text.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

fn get(addr: &str, path: &str) -> Resp {
    request(addr, "GET", path, None)
}

fn ok_json(addr: &str, path: &str) -> Value {
    let r = get(addr, path);
    assert_eq!(r.status, 200, "{path}: {} {}", r.head, r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{path}: {}",
        r.head
    );
    r.json()
}

/// A 404 or 400 with a JSON error that mentions `needle`.
fn err_json(addr: &str, path: &str, status: u16, needle: &str) {
    let r = get(addr, path);
    assert_eq!(r.status, status, "{path}: {}", r.text());
    let e = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(e.contains(needle), "{path}: error `{e}` lacks `{needle}`");
}

fn file_bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// The synthetic sweep of the chart tests (2 temperatures × 2 poolers × 2 seeds, 100 steps), with
/// one run failed, events, a checkpoint and a fingerprint added as the executor writes them.
fn synthetic_db(dir: &Path) -> PathBuf {
    let db = dir.join("results.db");
    simsweep_report::synthetic::write(&db, &simsweep_report::synthetic::Synthetic::small("s"))
        .unwrap();
    let c = Connection::open(&db).unwrap();
    c.execute_batch(
        "UPDATE runs SET status = 'failed', error = 'loss is NaN at step 57 (diverged?)', step = 57
             WHERE ordinal = (SELECT max(ordinal) FROM runs);
         INSERT INTO events (at, sweep_id, run_pk, kind, message)
             SELECT '2026-12-01T10:00:00Z', sweep_id, run_pk, 'started', 'on cpu' FROM runs;
         INSERT INTO events (at, sweep_id, run_pk, kind, message)
             SELECT '2026-12-01T10:00:01Z', sweep_id, run_pk, 'fingerprint', '{\"device\":\"cpu: test\",\"threads\":2}' FROM runs;
         INSERT INTO events (at, sweep_id, run_pk, kind, message)
             SELECT '2026-12-01T10:05:00Z', sweep_id, run_pk, 'failed', error FROM runs WHERE status = 'failed';
         INSERT INTO checkpoints (run_pk, kind, step, path, metric, value, created_at)
             SELECT run_pk, 'best', 75, 'results/s/' || run_id || '/best', 'stsb_dev', 0.5, '2026-12-01T10:04:00Z'
             FROM runs WHERE ordinal = 0;",
    )
    .unwrap();
    // The journal checkpointed into the main file: what the server reads is all in it.
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(c);
    db
}

#[test]
fn every_route_answers_and_every_refusal_holds_and_the_database_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = synthetic_db(dir.path());
    let before = file_bytes(&db);
    let srv = serve(&db, &[]);
    let a = srv.addr.as_str();
    let c = Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let run_ids: Vec<String> = {
        let mut st = c
            .prepare("SELECT run_id FROM runs ORDER BY ordinal")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(run_ids.len(), 8);
    let (first, failed) = (&run_ids[0], &run_ids[7]);

    // The page and its assets, embedded.
    let page = get(a, "/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page.header("content-security-policy").is_some());
    assert!(page.text().contains("/assets/app.js"));
    for (p, ty) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/chart.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
        ("/favicon.svg", "image/svg+xml"),
        ("/index.html", "text/html"),
    ] {
        let r = get(a, p);
        assert_eq!(r.status, 200, "{p}");
        assert!(r.header("content-type").unwrap().starts_with(ty), "{p}");
        assert!(!r.body.is_empty());
    }
    let head = request(a, "HEAD", "/assets/app.js", None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    // GET /api/sweeps
    let s = ok_json(a, "/api/sweeps");
    let sw = &s["sweeps"][0];
    assert_eq!(sw["name"], "s");
    assert_eq!(sw["runs"], 8);
    assert_eq!(sw["status"]["done"], 7);
    assert_eq!(sw["status"]["failed"], 1);
    assert_eq!(sw["status"]["pending"], 0);
    assert_eq!(sw["finished"], 8);
    assert_eq!(sw["total_steps"], 800);
    assert_eq!(sw["steps"], 7 * 100 + 57);
    assert!((sw["progress"].as_f64().unwrap() - 757.0 / 800.0).abs() < 1e-12);
    // The CLI's status reads the same counts (one query in the query layer).
    let st = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .arg("--db")
        .arg(&db)
        .arg("status")
        .output()
        .unwrap();
    let st = String::from_utf8_lossy(&st.stdout).to_string();
    assert!(
        st.contains('s') && st.contains('7') && st.contains('1'),
        "{st}"
    );

    // GET /api/sweeps/{sweep}
    let one = ok_json(a, "/api/sweeps/s");
    assert_eq!(
        one["swept_keys"],
        serde_json::json!(["train.temperature", "model.pooling"])
    );
    assert_eq!(
        one["values"]["model.pooling"],
        serde_json::json!(["avg", "cls"])
    );
    assert_eq!(one["values"]["seed"], serde_json::json!(["1", "2"]));
    let metrics: Vec<&str> = one["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    for m in [
        "loss",
        "stsb_dev",
        "alignment",
        "uniformity",
        "sv_01",
        "gd_mean",
    ] {
        assert!(metrics.contains(&m), "{m} not in {metrics:?}");
    }
    assert_eq!(one["fingerprints"]["groups"].as_array().unwrap().len(), 1);
    assert!(one["version"].as_str().is_some());
    assert!(one["file_text"].as_str().unwrap().contains("[sweep]"));
    // The filter menu's values are what `where` takes.
    let t0 = &one["filters"]["train.temperature"][0];
    assert_eq!(t0["label"], "0.05");
    let w = format!(
        "/api/sweeps/s/runs?where=train.temperature={}",
        t0["value"].as_str().unwrap()
    );
    assert_eq!(ok_json(a, &w)["runs"].as_array().unwrap().len(), 4);
    assert_eq!(one["filters"]["model.pooling"][1]["value"], "cls");

    // GET /api/sweeps/{sweep}/runs, with the CLI's filters.
    let runs = ok_json(a, "/api/sweeps/s/runs");
    let rows = runs["runs"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[0]["run_id"], first.as_str());
    assert_eq!(rows[0]["total_steps"], 100);
    assert!(rows[0]["scores"]["stsb_dev_best"].is_number());
    assert_eq!(rows[7]["status"], "failed");
    assert!(rows[7]["error"].as_str().unwrap().contains("NaN"));
    let cls = ok_json(a, "/api/sweeps/s/runs?where=model.pooling%3Dcls");
    assert_eq!(cls["runs"].as_array().unwrap().len(), 4);
    assert!(cls["runs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["params"]["model.pooling"] == "cls"));
    let two = ok_json(
        a,
        "/api/sweeps/s/runs?where=model.pooling=cls&where=train.temperature=0.05",
    );
    assert_eq!(two["runs"].as_array().unwrap().len(), 2);
    let f = ok_json(a, "/api/sweeps/s/runs?status=failed");
    assert_eq!(f["runs"].as_array().unwrap().len(), 1);
    let cli = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .arg("--db")
        .arg(&db)
        .args(["runs", "s", "--format", "json"])
        .output()
        .unwrap();
    let cli: Value = serde_json::from_slice(&cli.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", common::text(&cli)));
    let cli_rows = cli.as_array().or_else(|| cli["runs"].as_array()).unwrap();
    for (r, c) in rows.iter().zip(cli_rows) {
        assert_eq!(r["run_id"], c["run_id"]);
        assert_eq!(r["scores"]["stsb_dev_best"], c["stsb_dev_best"]);
    }

    // GET /api/sweeps/{sweep}/best: `best --json`.
    let b = ok_json(a, "/api/sweeps/s/best?metric=stsb_dev&mode=best");
    assert_eq!(b["groups"].as_array().unwrap().len(), 4);
    assert_eq!(b["groups"][0]["best"], true);
    let cli = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .arg("--db")
        .arg(&db)
        .args(["best", "s", "--metric", "stsb_dev", "--format", "json"])
        .output()
        .unwrap();
    let cli: Value = serde_json::from_slice(&cli.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", common::text(&cli)));
    assert_eq!(b["groups"], cli["groups"]);

    // GET /api/sweeps/{sweep}/figures/{kind}: every kind this sweep has data for.
    for kind in [
        "curves",
        "final",
        "align-uniform",
        "spectrum",
        "gradients",
        "parallel",
    ] {
        let metric = if matches!(kind, "curves" | "final" | "parallel") {
            "?metric=stsb_dev"
        } else {
            ""
        };
        let f = ok_json(a, &format!("/api/sweeps/s/figures/{kind}{metric}"));
        let panels = f["figure"]["panels"].as_array().unwrap();
        assert!(!panels.is_empty(), "{kind}");
        let series: Vec<&Value> = panels
            .iter()
            .flat_map(|p| p["series"].as_array().unwrap())
            .collect();
        assert!(
            series
                .iter()
                .any(|s| !s["points"].as_array().unwrap().is_empty()),
            "{kind}: no points"
        );
        assert!(
            series
                .iter()
                .any(|s| !s["runs"].as_array().unwrap().is_empty()),
            "{kind}: no series names its runs"
        );
        assert!(f["figure"]["legend"].is_array());
    }
    err_json(a, "/api/sweeps/s/figures/layers", 400, "layer");
    // Coloured by pooler, faceted by temperature: legend tags and panel titles as the CLI's chart.
    let f = ok_json(
        a,
        "/api/sweeps/s/figures/curves?metric=loss&color=model.pooling&facet=train.temperature",
    );
    let panels = f["figure"]["panels"].as_array().unwrap();
    assert_eq!(panels.len(), 2);
    assert_eq!(panels[0]["title"], "train.temperature=0.05");
    let s0 = &panels[0]["series"][0];
    assert!(s0["legend"]
        .as_array()
        .unwrap()
        .contains(&Value::from("model.pooling=avg")));
    assert_eq!(s0["runs"].as_array().unwrap().len(), 2);
    assert!(s0["color"].as_str().unwrap().starts_with('#'));
    // A zoom on the step axis: only steps in the window.
    let z = ok_json(a, "/api/sweeps/s/figures/curves?metric=loss&from=20&to=40");
    for p in z["figure"]["panels"].as_array().unwrap() {
        for s in p["series"].as_array().unwrap() {
            for q in s["points"].as_array().unwrap() {
                let x = q[0].as_f64().unwrap();
                assert!((20.0..=40.0).contains(&x), "step {x} outside the zoom");
            }
        }
    }
    // Filters reach the charts.
    let fl = ok_json(
        a,
        "/api/sweeps/s/figures/curves?metric=loss&where=model.pooling=cls",
    );
    let n_runs: usize = fl["figure"]["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["series"].as_array().unwrap())
        .map(|s| s["runs"].as_array().unwrap().len())
        .sum();
    assert_eq!(n_runs, 4);

    // GET /api/sweeps/{sweep}/decisions (no [search] here: none).
    let d = ok_json(a, "/api/sweeps/s/decisions");
    assert_eq!(d["decisions"], serde_json::json!([]));
    assert_eq!(d["savings"], Value::Null);

    // GET /api/runs/{run_id}
    let r = ok_json(a, &format!("/api/runs/{failed}"));
    assert_eq!(r["status"], "failed");
    assert_eq!(r["sweep"], "s");
    assert!(r["error"].as_str().unwrap().contains("NaN"));
    let kinds: Vec<&str> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["started", "fingerprint", "failed"]);
    assert_eq!(r["fingerprint"]["threads"], 2);
    assert!(r["config"]["train.temperature"].is_number());
    let r0 = ok_json(a, &format!("/api/runs/{first}"));
    assert_eq!(r0["checkpoints"][0]["kind"], "best");
    assert!(r0["checkpoints"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with("/best"));
    let ms = r0["metrics"].as_array().unwrap();
    assert!(ms
        .iter()
        .any(|m| m["metric"] == "stsb_dev" && m["family"] == "evaluation"));

    // GET /api/runs/{run_id}/metrics/{metric}: the rows of the database, then thinned.
    let m = ok_json(a, &format!("/api/runs/{first}/metrics/loss"));
    let rows: Vec<(i64, f64)> = {
        let mut st = c
            .prepare(
                "SELECT m.step, m.value FROM metrics m JOIN runs r USING (run_pk)
                 JOIN metric_names n USING (metric_id)
                 WHERE r.run_id = ?1 AND n.name = 'loss' AND m.layer = -1 ORDER BY m.step",
            )
            .unwrap();
        st.query_map([first], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let steps: Vec<i64> = m["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    // The values exactly, bit for bit: read from the JSON text with Rust's exact parser
    // (serde_json's default one may land one ulp off).
    let body = get(a, &format!("/api/runs/{first}/metrics/loss")).text();
    let list = body.split("\"values\":[").nth(1).unwrap();
    let values: Vec<f64> = list[..list.find(']').unwrap()]
        .split(',')
        .map(|v| v.parse::<f64>().unwrap())
        .collect();
    assert_eq!(steps, rows.iter().map(|r| r.0).collect::<Vec<_>>());
    assert_eq!(
        values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        rows.iter().map(|r| r.1.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(m["thinned"], false);
    let t = ok_json(a, &format!("/api/runs/{first}/metrics/loss?max_points=20"));
    let ts = t["steps"].as_array().unwrap();
    assert!(ts.len() <= 20 && ts.len() >= 10, "{}", ts.len());
    assert_eq!(t["thinned"], true);
    assert_eq!(ts[0], rows[0].0);
    assert_eq!(ts[ts.len() - 1], rows[rows.len() - 1].0);
    let lo = rows.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
    let tv: Vec<f64> = t["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        tv.iter().any(|v| (v - lo).abs() <= 1e-15 * lo.abs()),
        "min–max thinning keeps the minimum"
    );
    let w = ok_json(a, &format!("/api/runs/{first}/metrics/loss?from=10&to=19"));
    assert_eq!(w["steps"].as_array().unwrap().len(), 10);

    // Errors: 404 with a JSON message for what does not exist, 400 for parameters.
    err_json(a, "/api/sweeps/nope", 404, "no sweep named `nope`");
    err_json(a, "/api/sweeps/nope/runs", 404, "no sweep named");
    err_json(a, "/api/sweeps/nope/figures/curves", 404, "no sweep named");
    err_json(a, "/api/sweeps/s/figures/pie", 404, "curves, final");
    err_json(a, "/api/sweeps/s/figures/curves?metric=nope", 404, "nope");
    err_json(a, "/api/runs/0123456789abcdef", 404, "no run");
    err_json(
        a,
        &format!("/api/runs/{first}/metrics/nope"),
        404,
        "recorded no metric `nope`",
    );
    err_json(
        a,
        &format!("/api/runs/{first}/metrics/loss?layer=3"),
        404,
        "layer",
    );
    err_json(a, "/api/nope", 404, "no API route");
    err_json(a, "/api/sweeps/s/runs/extra", 404, "no API route");
    err_json(
        a,
        &format!("/api/runs/{first}/metrics/loss?max_points=many"),
        400,
        "max_points",
    );
    err_json(
        a,
        "/api/sweeps?colour=red",
        400,
        "unknown parameter `colour`",
    );
    err_json(a, "/api/sweeps/s/runs?status=asleep", 400, "unknown status");
    err_json(
        a,
        &format!("/api/runs/{first}/metrics/loss?max_points=5"),
        400,
        "at least 10",
    );
    err_json(
        a,
        &format!("/api/runs/{first}/metrics/loss?from=9&to=3"),
        400,
        "empty",
    );
    err_json(
        a,
        "/api/sweeps/s/figures/curves?include_removed=true",
        400,
        "unknown parameter `include_removed`",
    );
    // axum's own refusals are JSON too (a path segment that is not UTF-8).
    let r = get(a, "/api/sweeps/%FF/runs");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"].is_string());
    err_json(a, "/api/sweeps/s/runs?where=nokey=1", 400, "unknown key");
    err_json(a, "/api/sweeps/s/figures/curves?from=9&to=3", 400, "empty");
    err_json(a, "/api/sweeps/s/best?mode=worst", 400, "best, final");
    let nf = get(a, "/nope.html");
    assert_eq!(nf.status, 404);

    // Only GET (and HEAD): everything else is 405, with Allow.
    for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
        for p in ["/api/sweeps", "/", "/api/runs/x", "/nowhere"] {
            let r = request(a, m, p, None);
            assert_eq!(r.status, 405, "{m} {p}");
            assert_eq!(r.header("allow").as_deref(), Some("GET, HEAD"), "{m} {p}");
        }
    }

    // No path outside the embedded assets: traversal, encoded or not, is 404.
    for p in [
        "/../Cargo.toml",
        "/assets/../Cargo.toml",
        "/assets/../../../../etc/passwd",
        "/%2e%2e/Cargo.toml",
        "/assets/%2e%2e/%2e%2e/Cargo.toml",
        "/assets/..%2f..%2fCargo.toml",
        "/assets/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/..%5c..%5cCargo.toml",
        "//etc/passwd",
        "/assets//app.js",
        "/assets/app.js/..",
        "/assets/./app.js",
        "/Cargo.toml",
        "/src/main.rs",
        "/crates/serve/assets/app.js",
        "/results.db",
        "/api/../Cargo.toml",
        "/api/%2e%2e/Cargo.toml",
    ] {
        let r = get(a, p);
        assert_eq!(r.status, 404, "{p}: {}", r.text());
        let t = r.text();
        assert!(
            !t.contains("[package]") && !t.contains("root:") && !t.contains("SQLite"),
            "{p} leaked a file"
        );
    }

    // A page elsewhere cannot read through DNS rebinding: a foreign Host is refused.
    let port = a.rsplit(':').next().unwrap();
    for h in [
        "evil.example",
        "evil.example:80",
        &format!("evil.example:{port}"),
        &format!("localhost.evil.example:{port}"),
        &format!("192.168.1.7:{port}"),
    ] {
        let r = request(a, "GET", "/api/sweeps", Some(h));
        assert_eq!(r.status, 403, "Host {h}");
    }
    let no_host = raw_status(a, "GET /api/sweeps HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(
        no_host.contains(" 403") || no_host.contains(" 400"),
        "{no_host}"
    );
    // Any port: an SSH tunnel (`ssh -L 9000:localhost:8080 node`) sends its own.
    for h in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "localhost:9000".to_string(),
    ] {
        assert_eq!(
            request(a, "GET", "/api/sweeps", Some(&h)).status,
            200,
            "{h}"
        );
    }

    // Many requests at once: every one answered.
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let a = a.to_string();
            let id = run_ids[i % 8].clone();
            std::thread::spawn(move || {
                for k in 0..25 {
                    let p = match k % 4 {
                        0 => "/api/sweeps/s/runs".to_string(),
                        1 => format!("/api/runs/{id}/metrics/loss"),
                        2 => "/api/sweeps/s/figures/curves?metric=loss".to_string(),
                        _ => format!("/api/runs/{id}"),
                    };
                    assert_eq!(get(&a, &p).status, 200, "{p}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(c);
    drop(srv);
    assert!(
        file_bytes(&db) == before,
        "the database file changed while it was served"
    );
}

#[test]
fn another_host_than_loopback_needs_host_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let db = synthetic_db(dir.path());
    let srv = serve(&db, &["--host", "0.0.0.0"]);
    let port = srv.addr.rsplit(':').next().unwrap().to_string();
    let r = request(
        &format!("127.0.0.1:{port}"),
        "GET",
        "/api/sweeps",
        Some("box.lab:1"),
    );
    assert_eq!(r.status, 200, "any Host when serving the network");
    std::thread::sleep(Duration::from_millis(300));
    drop(srv);
    // The warning is printed before the address line, so it is there once the server answered.
    let dir2 = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .arg("--db")
        .arg(dir2.path().join("none.db"))
        .args(["serve", "--port", "0"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing database is bad input"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no results database"));
    let bad = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .args(["serve", "--host", "localhost:80"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let mut child = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .arg("--db")
        .arg(&db)
        .args(["serve", "--port", "0", "--host", "0.0.0.0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: serving on 0.0.0.0") && err.contains("no authentication"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Live: a sweep training into the database being served.

fn sweep_text(name: &str) -> String {
    format!(
        r#"
[sweep]
name = "{name}"
seeds = [1, 2]
[base]
model.path = "micro-bert"
model.init = "random"
model.pooling = "avg"
data.train = ["wiki1m_for_simcse.head.txt"]
data.max_examples = 4000
train.batch_size = 8
train.steps = 1500
train.log_every = 1
train.checkpoint_every = 500
eval.every = 250
eval.tasks = []
probe.every = 250
probe.size = 64
[grid]
"train.temperature" = [0.05, 0.5]
"#
    )
}

/// Playwright's core (scripts/playwright.sh) and Chromium (scripts/chromium.sh); None, with a
/// message, only where they cannot be installed here and the suite need not run in full (CI sets
/// SIMSWEEP_REQUIRE_CHROMIUM, so it never skips there).
fn browser() -> Option<(PathBuf, PathBuf)> {
    let run = |script: &str| {
        let o = Command::new("bash")
            .arg(repo().join("scripts").join(script))
            .output()
            .unwrap_or_else(|e| panic!("run scripts/{script}: {e}"));
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let mut found = Vec::new();
    for script in ["chromium.sh", "playwright.sh"] {
        match run(script) {
            (Some(0), out, _) => found.push(PathBuf::from(out.lines().last().unwrap_or(""))),
            (Some(3), _, err) if std::env::var_os("SIMSWEEP_REQUIRE_CHROMIUM").is_none() => {
                eprintln!("skipped: the dashboard's browser test: {}", err.trim());
                return None;
            }
            (code, _, err) => panic!("scripts/{script} failed (exit {code:?}): {err}"),
        }
    }
    Some((found[0].clone(), found[1].clone()))
}

fn png_pixels(p: &Path) -> (u32, u32, usize, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, info.color_type.samples(), buf)
}

#[test]
fn a_training_sweep_is_watched_live_in_a_browser_under_concurrent_load() {
    let Some(data) = data_dir() else { return };
    let Some((chromium, node_modules)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    micro_model(dir.path());
    let sweep = dir.path().join("live.toml");
    std::fs::write(&sweep, sweep_text("live")).unwrap();
    let db = dir.path().join("results.db");
    let simsweep = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_simsweep"));
        c.arg("--db")
            .arg(&db)
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .env("SIMSWEEP_THREADS", "1")
            .env_remove("SIMSWEEP_DB")
            .env_remove("SIMSWEEP_DATA_DIR")
            .env_remove("SIMSWEEP_FAULT");
        c
    };
    let plan = simsweep(&["plan", &sweep.display().to_string()])
        .output()
        .unwrap();
    assert!(plan.status.success(), "{}", common::text(&plan));
    let srv = serve(&db, &[]);
    let a = srv.addr.clone();
    let train = simsweep(&["run", &sweep.display().to_string(), "--device", "cpu"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // A bounded load from four clients (about 40 requests per second in all) for as long as the
    // sweep trains: every answer must be 200, never a lock error.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loaders: Vec<_> = (0..4)
        .map(|i| {
            let a = a.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0usize;
                let mut failures = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let ids: Vec<String> = get(&a, "/api/sweeps/live/runs").json()["runs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["run_id"].as_str().unwrap().to_string())
                        .collect();
                    let paths = [
                        "/api/sweeps".to_string(),
                        "/api/sweeps/live".to_string(),
                        "/api/sweeps/live/figures/curves?metric=loss".to_string(),
                        format!("/api/runs/{}", ids[i % ids.len()]),
                        format!(
                            "/api/runs/{}/metrics/loss?max_points=500",
                            ids[i % ids.len()]
                        ),
                    ];
                    for p in &paths {
                        let r = get(&a, p);
                        n += 1;
                        // Before the first step nothing has a loss curve: 404 says so, and is
                        // no error.
                        let fine = r.status == 200
                            || (r.status == 404 && r.text().contains("recorded no metric"))
                            || (r.status == 404 && r.text().contains("unknown metric `loss`"))
                            || (r.status == 400 && r.text().contains("no values"));
                        if !fine || r.text().to_lowercase().contains("locked") {
                            failures.push(format!("{p}: {} {}", r.status, r.text()));
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                (n, failures)
            })
        })
        .collect();

    // The browser, while it trains.
    let shot = dir.path().join("dashboard.png");
    let t = Instant::now();
    let b = Command::new("node")
        .arg(repo().join("tests/browser/dashboard.cjs"))
        .env("NODE_PATH", &node_modules)
        .env("SIMSWEEP_URL", format!("http://{a}/"))
        .env("SIMSWEEP_SWEEP", "live")
        .env("SIMSWEEP_SHOT", &shot)
        .env("SIMSWEEP_CHROMIUM", &chromium)
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&b.stdout).to_string();
    assert!(
        b.status.success(),
        "browser test failed after {:.0} s: {}\n{}",
        t.elapsed().as_secs_f64(),
        seen,
        String::from_utf8_lossy(&b.stderr)
    );
    let out = train.wait_with_output().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut requests = 0;
    for l in loaders {
        let (n, failures) = l.join().unwrap();
        requests += n;
        assert!(failures.is_empty(), "{failures:#?}");
    }
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(out.status.success(), "{}", common::text(&out));
    assert!(
        !err.contains("locked") && !err.contains("busy"),
        "the sweep met a lock: {err}"
    );
    assert!(requests > 100, "only {requests} requests under load");
    let server_err = srv.stderr.lock().unwrap().clone();
    assert!(
        !server_err.to_lowercase().contains("locked"),
        "{server_err}"
    );

    let v: Value = serde_json::from_str(seen.lines().last().unwrap()).unwrap();
    eprintln!("browser: {v}");
    assert_eq!(v["errors"], serde_json::json!([]), "the page logged errors");
    assert_eq!(
        v["bad_text"],
        serde_json::json!([]),
        "the page shows values as code"
    );
    assert!(v["points_later"].as_u64() > v["points_first"].as_u64());
    assert_eq!(v["navigations"], 1, "the page reloaded");
    let tip = v["tooltip"].as_str().unwrap();
    assert!(
        tip.contains("step") && tip.contains("loss") && tip.contains("run"),
        "tooltip: {tip}"
    );
    assert!(v["series_after"].as_u64() < v["series_before"].as_u64());
    assert!(v["hash_after_legend"].as_str().unwrap().contains(&format!(
        "hide.curves={}",
        v["legend_label"].as_str().unwrap()
    )));
    for c in v["cards"].as_array().unwrap() {
        let kind = c["kind"].as_str().unwrap();
        if matches!(kind, "curves" | "align-uniform" | "spectrum" | "gradients") {
            assert_eq!(c["svg"], true, "{kind}: {}", c["message"]);
        }
    }
    // The downloads: a standalone SVG of the chart, a PNG, the table as CSV.
    let files: Vec<(String, PathBuf)> = v["downloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                PathBuf::from(d["path"].as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(files[0].0, "live-curves.svg");
    let svg = std::fs::read_to_string(&files[0].1).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("<svg") && svg.contains("<path"));
    assert_eq!(files[1].0, "live-curves.png");
    let (pw, ph, _, _) = png_pixels(&files[1].1);
    assert!(pw >= 1000 && ph >= 400, "{pw}×{ph}");
    assert_eq!(files[2].0, "live-runs.csv");
    let csv = std::fs::read_to_string(&files[2].1).unwrap();
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("run_id,train.temperature,seed,status,step"));
    assert_eq!(lines.count(), 4);
    assert!(v["overlay"].is_string());
    assert!(v["run_page_title"].as_str().unwrap().contains("run "));
    let tables: Vec<&str> = v["run_page_tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for t in [
        "Events",
        "Checkpoints",
        "Configuration",
        "Evaluation scores",
    ] {
        assert!(tables.contains(&t), "{t} not in {tables:?}");
    }
    // The screenshot shows charts: many non-white pixels; the first temperature's colour over
    // many (its curves, drawn while it trained), the second's at least in the legend.
    let (w, h, ch, px) = png_pixels(&shot);
    assert_eq!((w, h), (1400, 1000));
    let non_white = px
        .chunks_exact(ch)
        .filter(|p| p[0] < 235 || p[1] < 235 || p[2] < 235)
        .count();
    assert!(
        non_white > (w * h) as usize / 40,
        "{non_white} non-white pixels"
    );
    for (rgb, least) in [([0x00u8, 0x72, 0xB2], 300), ([0xD5, 0x5E, 0x00], 30)] {
        let n = px
            .chunks_exact(ch)
            .filter(|p| (0..3).all(|i| (p[i] as i32 - rgb[i] as i32).abs() <= 12))
            .count();
        assert!(n >= least, "colour {rgb:02x?}: {n} pixels");
    }
    drop(srv);
}
