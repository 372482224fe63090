//! `/api/v1`: the management API. Every route but login needs a bearer
//! token (a JWT from login, or an API key).

pub mod assistant;
pub mod auth;
pub mod collections;
pub mod contacts;
pub mod messages;
pub mod rejected;
pub mod runs;

use axum::Router;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(auth::login))
        .route("/contacts", get(contacts::list))
        .route("/contacts/{id}", get(contacts::get).patch(contacts::update))
        .route("/contacts/{id}/read", post(contacts::mark_read))
        .route("/contacts/{id}/messages", get(contacts::history))
        .route("/messages", get(messages::list).post(messages::send))
        .route("/messages/bulk", post(messages::send_bulk))
        .route("/messages/{id}", get(messages::get))
        .route("/rejected", get(rejected::list))
        .route("/runs", get(runs::list).post(runs::start))
        .route("/runs/{id}", get(runs::get))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/runs/{id}/resume", post(runs::resume))
        .route("/flows", get(runs::flows))
        .route("/flows/reload", post(runs::reload))
        .route("/flows/{id}/stats", get(runs::stats))
        .route("/collections", get(collections::list_collections))
        .route("/stats/ai", get(assistant::ai_stats))
        .route("/access", get(assistant::get_access))
        .route(
            "/access/allow-list",
            axum::routing::put(assistant::put_allow_list),
        )
        .route(
            "/collections/{name}/records",
            get(collections::list).post(collections::create),
        )
        .route(
            "/collections/{name}/records/{id}",
            get(collections::get)
                .put(collections::replace)
                .patch(collections::patch)
                .delete(collections::delete),
        )
}

/// A JSON request body: axum's extractor (415 without a JSON content type,
/// 400 for bad JSON, 413 over the size limit), then 422 for text holding a
/// NUL character, which no database text column can store, or for a body
/// that does not fit `T`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if has_nul(&value) {
            return Err(
                ApiError::Unprocessable("text must not contain NUL characters".into())
                    .into_response(),
            );
        }
        T::deserialize(value).map(Body).map_err(|e| {
            ApiError::Unprocessable(format!("the body does not fit: {e}")).into_response()
        })
    }
}

fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(has_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// A page of a list, newest first. Pass `next_cursor` as `cursor` to read on;
/// it is null on the last page.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// `rows` was fetched with one row more than `limit`, to learn whether a
    /// next page exists without a second query.
    pub fn new<R>(
        mut rows: Vec<R>,
        limit: i64,
        id: impl Fn(&R) -> i64,
        map: impl Fn(R) -> T,
    ) -> Page<T> {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| id(r).to_string())
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }
}

pub fn limit(requested: Option<i64>) -> ApiResult<i64> {
    match requested {
        None => Ok(confab_store::DEFAULT_PAGE),
        Some(n) if (1..=confab_store::MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {}",
            confab_store::MAX_PAGE
        ))),
    }
}

pub fn cursor(c: Option<&str>) -> ApiResult<Option<i64>> {
    c.map(|s| {
        s.parse::<i64>()
            .map_err(|_| ApiError::BadRequest("cursor is not one this API gave out".into()))
    })
    .transpose()
}
