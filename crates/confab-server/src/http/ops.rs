//! Operations: health, readiness and metrics, for people and orchestrators.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
}

/// What answers here, for someone who opens the server's address.
async fn root() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "name": "Confab",
        "version": env!("CARGO_PKG_VERSION"),
        "docs": "/docs",
        "openapi": "/openapi.json",
        "health": "/health",
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ChannelHealth {
    /// Inbound webhooks are checked against the provider's signature.
    pub webhooks_signed: bool,
    /// Credentials to send are configured.
    pub sending: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AiHealth {
    /// An AI provider is set (`OPENAI_API_KEY` or `OPENAI_BASE_URL`).
    pub configured: bool,
    /// The provider's base URL, without credentials.
    pub base_url: Option<String>,
    pub chat_model: Option<String>,
    pub vision_model: Option<String>,
    pub transcription_model: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the database does not answer.
    pub status: String,
    pub version: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    pub database_ok: bool,
    pub uptime_seconds: u64,
    pub outbox_depth: Option<i64>,
    pub twilio: ChannelHealth,
    pub meta: ChannelHealth,
    pub ai: AiHealth,
    /// Configuration that works but deserves attention (never secrets).
    pub warnings: Vec<String>,
}

/// What this server is connected to and whether it works. Never shows a secret.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let s = &state.settings;
    let database_ok = state.store.ping().await;
    let outbox_depth = if database_ok {
        state.store.outbox_depth().await.ok().map(|d| d.0)
    } else {
        None
    };
    let health = Health {
        status: if database_ok { "ok" } else { "degraded" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        database: state.store.backend().name().into(),
        database_ok,
        uptime_seconds: state.started.elapsed().as_secs(),
        outbox_depth,
        twilio: ChannelHealth {
            webhooks_signed: s.twilio_auth_token.is_some(),
            sending: s.twilio.is_some(),
        },
        meta: ChannelHealth {
            webhooks_signed: s.meta_app_secret.is_some(),
            sending: s.meta.is_some(),
        },
        ai: {
            let ai = s.assistant.ai.as_ref();
            AiHealth {
                configured: ai.is_some(),
                base_url: ai.map(|c| crate::config::redact_url(&c.base_url)),
                chat_model: ai.map(|c| c.chat_model.clone()),
                vision_model: ai.map(|c| c.vision_model.clone()),
                transcription_model: ai.map(|c| c.transcription_model.clone()),
            }
        },
        warnings: s.warnings(),
    };
    let code = if database_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(health))
}

/// 200 when this replica can take traffic (its database answers and it is
/// not shutting down), else 503.
#[utoipa::path(get, path = "/ready", tag = "operations", responses((status = 200), (status = 503)))]
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return crate::error::ApiError::Overloaded("shutting down".into()).into_response();
    }
    if state.store.ping().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        crate::error::ApiError::Unavailable("database does not answer".into()).into_response()
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics_text(State(state): State<AppState>) -> Response {
    if let Ok((n, _)) = state.store.outbox_depth().await {
        metrics::gauge!("confab_outbox_depth").set(n as f64);
    }
    metrics::gauge!("confab_password_memory_bytes")
        .set(crate::auth::Passwords::shared().mapped_bytes() as f64);
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
