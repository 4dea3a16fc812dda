//! `simsweep serve`: the live dashboard. An HTTP/1.1 server (axum on tokio) over the results
//! database, opened read-only, answering a JSON API ([`api`], docs/api.md) from the same query
//! layer as the CLI, and the page that draws it ([`assets`], every file embedded in the binary).
//!
//! Safety, as the command promises (docs/cli.md, `serve`): it binds 127.0.0.1 unless told
//! otherwise; it answers GET (and HEAD) only, anything else gets 405; it serves no file from disk,
//! only the embedded assets by exact name (so no path, encoded or not, reaches outside them); on
//! a loopback address it refuses requests whose `Host` is not a loopback name (a web page elsewhere
//! cannot read the results through DNS rebinding); its database connections are read-only, so
//! the file is never written.

pub mod api;
pub mod assets;
pub mod client;
mod db;

use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

pub use db::Db;

/// What `simsweep serve` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub db: PathBuf,
    pub host: IpAddr,
    /// 0: any free port (the one taken is printed).
    pub port: u16,
    /// Open the page in the desktop's browser once listening.
    pub open: bool,
}

/// Shared by every request.
pub struct App {
    pub db: Arc<Db>,
    /// The address the server listens on (for the `Host` check).
    addr: SocketAddr,
}

/// Serve until Ctrl-C (or SIGTERM). Prints the page's address on standard output first.
pub fn serve(opts: &Options) -> Result<()> {
    let db = Db::open(&opts.db)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(db::READERS * 2)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((opts.host, opts.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", opts.host, opts.port))?;
        let addr = listener.local_addr()?;
        let url = page_url(addr);
        if !opts.host.is_loopback() {
            eprintln!(
                "warning: serving on {addr}: anyone who can reach this machine on port {} can read the results database (there is no authentication); the default, 127.0.0.1, serves this machine only",
                addr.port()
            );
        }
        println!(
            "simsweep serve: {url} — {} (read-only); Ctrl-C stops",
            opts.db.display()
        );
        use std::io::Write;
        std::io::stdout().flush().ok();
        if opts.open {
            open_browser(&url);
        }
        serve_on(listener, db, shutdown())
            .await
            .context("the server stopped")
    })
}

/// Answer on `listener` until `stop` completes.
async fn serve_on(
    listener: tokio::net::TcpListener,
    db: Db,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Arc::new(App {
        db: Arc::new(db),
        addr: listener.local_addr()?,
    });
    axum::serve(listener, router(app))
        .with_graceful_shutdown(stop)
        .await
}

fn page_url(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => format!("http://127.0.0.1:{}/", addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => format!("http://[::1]:{}/", addr.port()),
        _ => format!("http://{addr}/"),
    }
}

/// The routes: the API, the page's assets, and the refusals around them.
pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new()
        .merge(api::routes())
        .fallback(assets::asset)
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Before any route: only GET and HEAD, and on loopback only a loopback `Host`; headers that keep
/// the page from being framed or its types guessed on every answer.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let mut resp = if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = api::error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "method {} is not allowed: the dashboard only reads (GET, HEAD)",
                req.method()
            ),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    } else if !host_allowed(&app, &req) {
        api::error(
            StatusCode::FORBIDDEN,
            format!(
                "Host `{}` is not this server's address; open {}",
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or(""),
                page_url(app.addr)
            ),
        )
    } else {
        let api = req.uri().path().starts_with("/api/");
        let resp = next.run(req).await;
        if api && !resp.status().is_success() && !is_json(&resp) {
            as_json_error(resp).await
        } else {
            resp
        }
    };
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"))
}

/// An error answered in plain text by axum itself (a path segment that is not UTF-8, say) as the
/// API's JSON error, with the same status.
async fn as_json_error(resp: Response) -> Response {
    let status = resp.status();
    let text = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    api::error(
        status,
        if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            text
        },
    )
}

/// On a loopback address, the `Host` header must name a loopback host (`127.0.0.1`, `[::1]`,
/// `localhost`), with any port (an SSH tunnel forwards another local port to ours); elsewhere any
/// host (the user chose to serve the network). A page of another site reaching us through DNS
/// rebinding sends its own name, and is refused.
fn host_allowed(app: &App, req: &Request) -> bool {
    if !app.addr.ip().is_loopback() {
        return true;
    }
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        // HTTP/1.1 requires it, and every browser sends it.
        return false;
    };
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((n, p)) => (n, p.strip_prefix(':')),
            None => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return false;
    }
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn shutdown() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("simsweep serve: stopped");
}

/// `--open`: the desktop's opener, detached; a message when there is none.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => {}
        Err(e) => eprintln!("warning: --open: cannot start `{opener}` ({e}); open {url} yourself"),
    }
}

/// Re-exported for the front's `bench serve`: an in-process server on a free loopback port,
/// running on its own runtime thread until the returned guard is dropped.
pub struct Background {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    pub fn start(db: &std::path::Path) -> Result<Background> {
        let db = Db::open(db)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .expect("bind");
                ready_tx.send(listener.local_addr().expect("addr")).ok();
                serve_on(listener, db, async {
                    rx.await.ok();
                })
                .await
                .ok();
            })
        });
        let addr = ready_rx.recv().context("the server thread did not start")?;
        Ok(Background {
            url: page_url(addr),
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            tx.send(()).ok();
        }
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: Option<&str>) -> Request {
        let mut b = axum::http::Request::builder().uri("/api/sweeps");
        if let Some(h) = host {
            b = b.header(header::HOST, h);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    fn app(addr: &str) -> App {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        simsweep_core::store::Store::open(&db).unwrap();
        App {
            db: Arc::new(Db::open(&db).unwrap()),
            addr: addr.parse().unwrap(),
        }
    }

    #[test]
    fn on_loopback_only_loopback_hosts_with_our_port_pass() {
        let a = app("127.0.0.1:8080");
        assert!(!host_allowed(&a, &req(None)), "HTTP/1.1 requires Host");
        for ok in [
            Some("127.0.0.1:8080"),
            Some("localhost:8080"),
            Some("LOCALHOST:8080"),
            Some("localhost"),
            Some("127.0.0.1"),
            Some("[::1]:8080"),
            Some("[::1]"),
            Some("127.1.2.3:8080"),
            Some("localhost:9000"),
            Some("127.0.0.1:80"),
        ] {
            assert!(host_allowed(&a, &req(ok)), "{ok:?}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example:8080",
            "10.0.0.1:8080",
            "[::1",
            "[::1]:x",
            "127.0.0.1:8080:8080",
            "",
        ] {
            assert!(!host_allowed(&a, &req(Some(bad))), "{bad:?}");
        }
        // Served to the network on purpose: any name.
        let open = app("0.0.0.0:8080");
        assert!(host_allowed(&open, &req(Some("box.lab:8080"))));
    }

    #[test]
    fn page_urls_name_a_reachable_address() {
        assert_eq!(
            page_url("0.0.0.0:80".parse().unwrap()),
            "http://127.0.0.1:80/"
        );
        assert_eq!(page_url("[::]:81".parse().unwrap()), "http://[::1]:81/");
        assert_eq!(
            page_url("127.0.0.1:8080".parse().unwrap()),
            "http://127.0.0.1:8080/"
        );
    }

    #[test]
    fn every_embedded_asset_is_nonempty_and_the_page_loads_them() {
        let index = assets::ASSETS[0].2;
        for (path, ty, body) in assets::ASSETS {
            assert!(!body.is_empty(), "{path}");
            assert!(ty.contains('/'), "{path}");
            if path.starts_with("/assets/") || *path == "/favicon.svg" {
                assert!(index.contains(path), "index.html does not load {path}");
            }
        }
    }

    #[test]
    fn parameters_are_decoded_checked_and_typed() {
        use api::Params;
        let p = Params::parse(
            Some(
                "where=model.pooling%3Dcls&where=seed=2&status=done,failed&max_points=12&x=".into(),
            ),
            &["where", "status", "max_points", "x"],
        )
        .unwrap();
        assert_eq!(p.get("max_points"), Some("12"));
        assert_eq!(p.get("x"), None, "an empty value counts as absent");
        let e = Params::parse(Some("colour=red".into()), &["color"])
            .err()
            .unwrap();
        assert_eq!(e.0, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.1.contains("unknown parameter `colour`") && e.1.contains("color"));
    }
}
