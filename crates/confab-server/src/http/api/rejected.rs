//! What providers sent, signed, that could not be used: each event with the
//! reason, since the provider will not send it again.

use axum::Json;
use axum::extract::{Query, State};
use confab_model::Channel;
use confab_store::StoredRejected;
use serde::{Deserialize, Serialize};

use super::{Page, cursor, limit};
use crate::app::AppState;
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};

#[derive(Serialize, utoipa::ToSchema)]
pub struct RejectedOut {
    pub id: i64,
    /// `twilio` or `meta`.
    pub channel: String,
    /// `message` or `status`.
    pub event: String,
    pub provider_message_id: Option<String>,
    /// Why it could not be used.
    pub reason: String,
    /// The event as the provider sent it.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub received_at: String,
}

impl From<StoredRejected> for RejectedOut {
    fn from(r: StoredRejected) -> RejectedOut {
        RejectedOut {
            id: r.id,
            channel: r.channel,
            event: r.event,
            provider_message_id: r.provider_message_id,
            reason: r.reason,
            payload: serde_json::from_str(&r.payload)
                .unwrap_or(serde_json::Value::String(r.payload)),
            received_at: rfc3339(r.received_ms),
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `twilio` or `meta`.
    pub channel: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Events providers sent that could not be used, newest first.
#[utoipa::path(get, path = "/api/v1/rejected", tag = "messages", params(ListQuery),
    responses((status = 200, body = Page<RejectedOut>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<RejectedOut>>> {
    let limit = limit(q.limit)?;
    let channel = q
        .channel
        .as_deref()
        .map(|c| {
            Channel::parse(c)
                .ok_or_else(|| ApiError::BadRequest(format!("channel {c:?} is not twilio or meta")))
        })
        .transpose()?;
    let rows = state
        .store
        .rejected(channel, cursor(q.cursor.as_deref())?, limit + 1)
        .await?;
    Ok(Json(Page::new(rows, limit, |r| r.id, RejectedOut::from)))
}
