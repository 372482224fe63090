//! Broadcasts: one message (a template, or anything inside the 24-hour
//! window) to a tag's contacts or a list of numbers, queued at once and
//! sent by the outbox at each sender's pace. `?dry_run=true` says first
//! how many it reaches and how many of them are outside the window; a
//! broadcast's progress is its messages' statuses.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use confab_store::{Broadcast, ContactCursor, ContactFilter, NewBroadcast};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Body;
use super::messages::{
    BulkResult, MAX_BULK, Outgoing, Planned, catalogued, check_len, content, plan, sending_channel,
};
use super::scope::{BotScope, Id};
use super::{DryRun, Page};
use crate::app::AppState;
use crate::auth::Principal;
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};

/// Who a broadcast goes to.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Audience {
    /// Every contact of the bot with this tag who has not opted out.
    Tag { tag: String },
    /// These numbers, in international form.
    List(Vec<String>),
}

pub type BroadcastIn = Outgoing<Audience>;

/// Rejections answered at most (the counts are whole).
const SHOWN: usize = 100;
/// Broadcasts listed.
const LISTED: i64 = 50;

#[derive(Serialize, utoipa::ToSchema)]
pub struct BroadcastOut {
    /// None for a dry run.
    pub id: Option<i64>,
    /// `{"tag"}` or `{"to"}`, as asked.
    #[schema(value_type = Object)]
    pub audience: Value,
    /// Recipients it was (or would be) queued for.
    pub queued: i64,
    /// Recipients it does not reach (see `rejections`).
    pub rejected: i64,
    /// Of those it reaches, or would but for a closed window, how many
    /// have not written in 24 hours: only a template reaches them.
    pub outside_window: i64,
    /// Its messages by status now (`queued`, `accepted`, `sent`,
    /// `delivered`, `read`, `failed`, `undelivered`).
    pub statuses: BTreeMap<String, i64>,
    /// Messages the outbox is done with: every status but `queued`.
    pub done: i64,
    /// The first recipients it does not reach, and why (only in the answer
    /// to the POST).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<BulkResult>,
    pub created_by: Option<String>,
    pub created_at: Option<String>,
}

impl BroadcastOut {
    fn of(b: Broadcast) -> BroadcastOut {
        let done = b
            .statuses
            .iter()
            .filter(|(s, _)| s.as_str() != "queued")
            .map(|(_, n)| n)
            .sum();
        BroadcastOut {
            id: Some(b.id),
            audience: b.audience,
            queued: b.queued,
            rejected: b.rejected,
            outside_window: b.outside_window,
            statuses: b.statuses,
            done,
            rejections: Vec::new(),
            created_by: Some(b.created_by),
            created_at: Some(rfc3339(b.created_ms)),
        }
    }
}

/// The numbers of the bot's contacts with `tag` who have not opted out.
async fn tagged(state: &AppState, bot: &BotScope, tag: &str) -> ApiResult<Vec<String>> {
    check_len("tag", tag, 64)?;
    let mut phones = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .store
            .contacts(&ContactFilter {
                bot_id: Some(bot.id()),
                tag: Some(tag.to_string()),
                opted_out: Some(false),
                test: Some(false),
                after,
                limit: 1000,
                ..ContactFilter::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(ContactCursor {
            last_seen_ms: 0,
            id: last.id,
        });
        phones.extend(page.into_iter().map(|c| c.phone));
        if phones.len() > MAX_BULK {
            return Err(ApiError::Unprocessable(format!(
                "to: more than {MAX_BULK} contacts have tag {tag:?}; a broadcast reaches at most {MAX_BULK}"
            )));
        }
    }
    Ok(phones)
}

/// Queue one message for a tag's contacts or a list of numbers (or, with
/// `dry_run`, say whom it would reach). Each recipient is checked as for a
/// bulk send; 422 when it reaches nobody.
#[utoipa::path(post, path = "/api/v1/broadcasts", tag = "messages", params(DryRun), request_body = Outgoing<Audience>,
    responses((status = 202, body = BroadcastOut), (status = 200, body = BroadcastOut, description = "a dry run"),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Query(q): Query<DryRun>,
    Body(req): Body<BroadcastIn>,
) -> ApiResult<(StatusCode, Json<BroadcastOut>)> {
    let (channel, sender) = sending_channel(&bot.0, req.channel.as_deref())?;
    let content = content(&req, channel)?;
    catalogued(&state, bot.id(), &content, channel).await?;
    let (audience, phones) = match &req.to {
        Audience::Tag { tag } => (json!({"tag": tag}), tagged(&state, &bot, tag).await?),
        Audience::List(list) => {
            if list.is_empty() || list.len() > MAX_BULK {
                return Err(ApiError::Unprocessable(format!(
                    "to must list 1 to {MAX_BULK} numbers, or name a tag"
                )));
            }
            (json!({"to": list}), list.clone())
        }
    };
    if phones.is_empty() {
        return Err(ApiError::Unprocessable(format!(
            "to: no contact of the bot who has not opted out has tag {}",
            audience["tag"]
        )));
    }
    let now = state.clock.now_ms();
    let Planned {
        results,
        queue,
        outside_window,
        ..
    } = plan(&state, &bot, &phones, (channel, &sender), &content, now).await?;
    let rejected: Vec<BulkResult> = results
        .into_iter()
        .filter(|r| r.id.is_none() && r.status == "rejected")
        .collect();
    let counts = (queue.len() as i64, rejected.len() as i64);
    let rejections: Vec<BulkResult> = rejected.into_iter().take(SHOWN).collect();
    if q.dry_run {
        return Ok((
            StatusCode::OK,
            Json(BroadcastOut {
                id: None,
                audience,
                queued: counts.0,
                rejected: counts.1,
                outside_window: outside_window as i64,
                statuses: BTreeMap::new(),
                done: 0,
                rejections,
                created_by: None,
                created_at: None,
            }),
        ));
    }
    if queue.is_empty() {
        return Err(ApiError::Unprocessable(format!(
            "the broadcast reaches nobody: {}",
            rejections
                .first()
                .and_then(|r| r.error.clone())
                .unwrap_or_default()
        )));
    }
    let content = serde_json::to_value(&content).map_err(ApiError::internal)?;
    let (id, queued) = state
        .store
        .enqueue_broadcast(
            &NewBroadcast {
                bot_id: bot.id(),
                audience: &audience,
                content: &content,
                rejected: counts.1,
                outside_window: outside_window as i64,
                created_by: &principal.label(),
                now_ms: now,
            },
            &queue,
        )
        .await?;
    state.wake.notify_one();
    metrics::counter!("confab_messages_queued_total", "channel" => channel.as_str())
        .increment(queued.len() as u64);
    let mut out = BroadcastOut::of(state.store.broadcast(bot.id(), id).await?);
    out.rejections = rejections;
    Ok((StatusCode::ACCEPTED, Json(out)))
}

/// The bot's latest broadcasts, newest first, each with its progress.
#[utoipa::path(get, path = "/api/v1/broadcasts", tag = "messages",
    responses((status = 200, body = Page<BroadcastOut>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    bot: BotScope,
) -> ApiResult<Json<Page<BroadcastOut>>> {
    let all = state.store.broadcasts(bot.id(), LISTED).await?;
    Ok(Json(Page::whole(all.into_iter().map(BroadcastOut::of))))
}

/// A broadcast, with its messages' statuses now.
#[utoipa::path(get, path = "/api/v1/broadcasts/{id}", tag = "messages", params(("id" = i64, Path)),
    responses((status = 200, body = BroadcastOut), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Id { id }): Path<Id<i64>>,
) -> ApiResult<Json<BroadcastOut>> {
    match state.store.broadcast(bot.id(), id).await {
        Ok(b) => Ok(Json(BroadcastOut::of(b))),
        Err(confab_store::StoreError::NotFound) => {
            Err(ApiError::NotFound(format!("no broadcast {id}")))
        }
        Err(e) => Err(e.into()),
    }
}
