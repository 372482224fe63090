//! `/api/v1`: the management API. Every route but login needs a bearer
//! token (a JWT from login, or an API key).

pub mod auth;
pub mod contacts;
pub mod messages;

use axum::Router;
use axum::routing::{get, post};
use serde::Serialize;

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
