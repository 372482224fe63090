//! The HTTP surface: routes, and the middleware every request passes.

pub mod api;
pub mod console;
pub mod ops;
pub mod serve;
pub mod webhooks;

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::ApiError;

/// The `/api/v1` routes behind the access layer, as callers reach them.
fn api_routes(state: &AppState) -> Router<AppState> {
    Router::new().nest(
        api::PREFIX,
        api::table()
            .into_parts()
            .0
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                crate::auth::policy::authorize,
            )),
    )
}

pub fn router(state: AppState) -> Router {
    let limit = state.settings.max_body_bytes;
    // The console calls the API in-process, through the same routes and
    // access layer (and the same problem+json answers).
    let for_console = console::ApiRouter::new(
        api_routes(&state)
            .fallback(|| async { ApiError::NotFound("no such route".into()) })
            .layer(middleware::from_fn(problem_details))
            .with_state(state.clone()),
    );
    Router::new()
        .merge(ops::routes())
        .merge(webhooks::routes())
        .merge(api_routes(&state))
        .merge(console::routes(for_console))
        .merge(crate::openapi::routes())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(limit))
        // A body that takes longer than this to arrive is cut; the handler
        // reading it answers 400 and the connection closes.
        .layer(tower_http::timeout::RequestBodyDeadlineLayer::new(
            state.settings.http.body_timeout,
        ))
        .layer(middleware::from_fn(refuse_nul_in_query))
        .layer(middleware::from_fn(problem_details))
        .layer(middleware::from_fn(track))
        // Spans name the path only: query strings can carry tokens (Meta's
        // hub.verify_token), and secrets stay out of logs.
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request| {
            tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(state)
}

/// Counts and times every request by route and status. No label takes a
/// value the client chose: a route is its template (or `unmatched`), and a
/// method outside the standard ones is `other`, so the number of series
/// stays bounded whatever clients send.
async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("confab_http_requests_total", "method" => method, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("confab_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}

fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A NUL character in a query string can only be an attack or a mistake, and
/// no database text column can hold one.
async fn refuse_nul_in_query(req: Request, next: Next) -> Response {
    let query = req.uri().query().unwrap_or("");
    if query.contains("%00") || query.contains('\0') {
        return ApiError::BadRequest("the query string must not contain NUL characters".into())
            .into_response();
    }
    next.run(req).await
}

/// Turns the plain-text rejections of axum's extractors (bad JSON, wrong
/// content type, body too large, bad path or query) into problem+json, so
/// every error a client sees has one shape.
async fn problem_details(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("text/plain"));
    if !is_plain {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let detail = match axum::body::to_bytes(body, 16 * 1024).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).into_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let problem = crate::error::Problem {
        kind: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("Error").into(),
        status: status.as_u16(),
        detail,
        problems: None,
    };
    let mut resp = Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&problem).unwrap_or_default()),
    );
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    resp
}
