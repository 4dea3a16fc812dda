//! The page's files, embedded in the binary at build time (crates/serve/assets/): the server
//! reads nothing from disk but the database. A path is served only when it is one of these names
//! exactly; anything else — `..`, encoded or not, a doubled slash, a file that exists on disk —
//! is 404.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// (path, content type, contents).
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../assets/index.html"),
    ),
    (
        "/index.html",
        "text/html; charset=utf-8",
        include_str!("../assets/index.html"),
    ),
    (
        "/assets/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "/assets/chart.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/chart.js"),
    ),
    (
        "/assets/style.css",
        "text/css; charset=utf-8",
        include_str!("../assets/style.css"),
    ),
    (
        "/favicon.svg",
        "image/svg+xml",
        include_str!("../assets/favicon.svg"),
    ),
];

/// The page's content security policy: its own scripts, styles and API only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/// The fallback route: an embedded asset by its exact path, else 404 (JSON under `/api/`).
pub async fn asset(req: Request) -> Response {
    let path = req.uri().path();
    if let Some((_, ty, body)) = ASSETS.iter().find(|(p, _, _)| *p == path) {
        let mut r = (*body).into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        return r;
    }
    if path.starts_with("/api/") || path == "/api" {
        return crate::api::error(
            StatusCode::NOT_FOUND,
            format!(
                "no API route {path}; the routes are {}",
                crate::api::ROUTES.join(", ")
            ),
        );
    }
    let mut r = (StatusCode::NOT_FOUND, "not found\n").into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
