//! The console's scripts and stylesheet, built into the binary (see
//! `console/static/VENDORED.md`). The scripts' names carry their versions
//! and the stylesheet's link its digest, so a browser may keep them for a
//! year.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const STYLESHEET: &str = include_str!("../../../console/static/console.css");

/// The stylesheet's link: a new one whenever the stylesheet changes.
pub fn stylesheet() -> &'static str {
    static LINK: OnceLock<String> = OnceLock::new();
    LINK.get_or_init(|| {
        // FNV-1a: enough to tell one version from the next.
        let digest = STYLESHEET.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("/console/static/console.css?v={digest:016x}")
    })
}

const FILES: &[(&str, &str, &str)] = &[
    (
        "htmx-2.0.11.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../console/static/htmx-2.0.11.min.js"),
    ),
    (
        "htmx-ext-sse-2.2.4.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../console/static/htmx-ext-sse-2.2.4.min.js"),
    ),
    ("console.css", "text/css; charset=utf-8", STYLESHEET),
];

pub async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
