//! The assistant's numbers (AI use per bot and day) and the access policy
//! (the allow-list, changed at run time; the rate limit, as configured).

use axum::Json;
use axum::extract::{Query, State};
use confab_model::PhoneNumber;
use serde::{Deserialize, Serialize};

use super::Body;
use super::scope::BotScope;
use crate::access;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use confab_store::{BotWrite, Change};

pub(super) const DAY_MS: i64 = 86_400_000;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct StatsQuery {
    /// First day (UTC, YYYY-MM-DD); 30 days before `to` when left out.
    pub from: Option<String>,
    /// Last day (UTC, YYYY-MM-DD), included; today when left out.
    pub to: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AiDay {
    /// The flow that asked (the bot).
    pub bot: String,
    /// YYYY-MM-DD (UTC).
    pub date: String,
    /// Calls to the provider: chat, vision and transcription.
    pub calls: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub average_latency_ms: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AiStats {
    pub from: String,
    pub to: String,
    pub days: Vec<AiDay>,
}

fn day_of(text: &str, field: &str) -> Result<i64, ApiError> {
    crate::clock::parse_time(&format!("{text}T00:00:00Z"))
        .map(|ms| ms.div_euclid(DAY_MS))
        .ok_or_else(|| {
            ApiError::BadRequest(format!("{field}: {text:?} is not a date like 2026-01-31"))
        })
}

/// First and last day, and the instants they span (see [`StatsQuery::year`]).
pub(super) type YearRange = ((i64, i64), Option<(i64, i64)>);

impl StatsQuery {
    /// The first and last day asked for, as days since 1970-01-01: by
    /// default the 30 days up to today.
    pub(super) fn days(&self, now_ms: i64) -> Result<(i64, i64), ApiError> {
        let to = self
            .to
            .as_deref()
            .map(|t| day_of(t, "to"))
            .transpose()?
            .unwrap_or(now_ms.div_euclid(DAY_MS));
        let from = self
            .from
            .as_deref()
            .map(|t| day_of(t, "from"))
            .transpose()?
            .unwrap_or(to - 29);
        Ok((from, to))
    }

    /// [`StatsQuery::days`] for statistics kept a year at most: a `from`
    /// earlier than a year before `to` is moved up. Also the instants
    /// (ms) the days span, from the first's start to the last's end; none
    /// when `from` is after `to`.
    pub(super) fn year(&self, now_ms: i64) -> Result<YearRange, ApiError> {
        let (from, to) = self.days(now_ms)?;
        let from = from.max(to - 365);
        let span = (from <= to).then(|| (from * DAY_MS, (to + 1) * DAY_MS));
        Ok(((from, to), span))
    }
}

pub(super) fn date_text(day: i64) -> String {
    crate::clock::rfc3339(day * DAY_MS)[..10].to_string()
}

/// AI use summed per bot and day: calls, errors, tokens and latency.
#[utoipa::path(get, path = "/api/v1/stats/ai", tag = "assistant", params(StatsQuery),
    responses((status = 200, body = AiStats), (status = 400, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn ai_stats(
    State(state): State<AppState>,
    bot: BotScope,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<AiStats>> {
    let (from, to) = q.days(state.clock.now_ms())?;
    // From after to: no day lies between them.
    let rows = if from > to {
        Vec::new()
    } else {
        state
            .store
            .ai_stats(bot.id(), from * DAY_MS, (to + 1) * DAY_MS)
            .await?
    };
    let days = rows
        .into_iter()
        .map(|r| AiDay {
            bot: r.flow_id,
            date: date_text(r.day),
            calls: r.calls,
            errors: r.errors,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            total_tokens: r.prompt_tokens + r.completion_tokens,
            average_latency_ms: r.latency_ms / r.calls.max(1),
        })
        .collect();
    Ok(Json(AiStats {
        from: date_text(from),
        to: date_text(to),
        days,
    }))
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitOut {
    pub messages: i64,
    pub window_seconds: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Access {
    /// Only these numbers are answered; null: everyone is.
    pub allow_list: Option<Vec<String>>,
    /// Messages a contact may send per window; null: no limit. The default
    /// bot's is `RATE_LIMIT_MESSAGES` and `RATE_LIMIT_WINDOW_SECONDS` until
    /// changed here (the environment's, when set, again on every start).
    pub rate_limit: Option<RateLimitOut>,
}

/// The bot's policy as it applies now.
async fn current(state: &AppState, bot: &BotScope) -> ApiResult<Access> {
    let stored = access::StoredPolicy::of(&bot.0.record.policy);
    let (list, limit) = if bot.id() == confab_store::DEFAULT_BOT {
        let list = state
            .store
            .get_setting(access::ALLOW_LIST_KEY)
            .await?
            .and_then(|raw| access::parse_allow_list(&raw))
            .map(|set| set.into_iter().collect::<Vec<_>>());
        let limit = stored
            .rate_limit
            .or(state.settings.assistant.rate_limit.map(Into::into));
        (list, limit)
    } else {
        (stored.allow_list, stored.rate_limit)
    };
    Ok(Access {
        allow_list: list.map(|mut v| {
            v.sort();
            v
        }),
        rate_limit: limit.map(|l| RateLimitOut {
            messages: l.messages,
            window_seconds: l.window_seconds,
        }),
    })
}

/// Who the bot answers.
#[utoipa::path(get, path = "/api/v1/access", tag = "assistant",
    responses((status = 200, body = Access)), security(("bearer" = [])))]
pub async fn get_access(State(state): State<AppState>, bot: BotScope) -> ApiResult<Json<Access>> {
    Ok(Json(current(&state, &bot).await?))
}

/// Changes a bot's stored policy, audited like any change to the bot, and
/// answers the policy as it then applies.
async fn change_policy(
    state: &AppState,
    bot: &BotScope,
    principal: &Principal,
    change: impl FnOnce(&mut access::StoredPolicy),
) -> ApiResult<Access> {
    // The database's copy: another server may have changed it a moment ago.
    state.bots.refresh().await.map_err(ApiError::internal)?;
    let current_bot = state
        .bots
        .by_id(bot.id())
        .ok_or_else(|| ApiError::NotFound(format!("no bot {}", bot.id())))?;
    let record = &current_bot.record;
    let mut policy = access::StoredPolicy::of(&record.policy);
    change(&mut policy);
    let write = BotWrite {
        slug: record.slug.clone(),
        name: record.name.clone(),
        default_flow: record.default_flow.clone(),
        policy: serde_json::to_value(&policy).map_err(ApiError::internal)?,
        ai: record.ai.clone(),
        channels: record.channels.clone(),
    };
    let label = principal.label();
    state
        .store
        .update_bot(
            record.id,
            record.updated_ms,
            &write,
            &Change::by(&label, state.clock.now_ms()),
        )
        .await?;
    state.reload_bots().await.map_err(ApiError::internal)?;
    let fresh = state
        .bots
        .by_id(bot.id())
        .ok_or_else(|| ApiError::NotFound(format!("no bot {}", bot.id())))?;
    current(state, &BotScope(fresh)).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowListIn {
    /// Numbers in international form; null turns the allow-list off.
    pub numbers: Option<Vec<String>>,
}

/// Replaces the allow-list. The default bot's applies to the next message
/// of every contact on every replica; another bot's on this server at once
/// and on the others within a second.
#[utoipa::path(put, path = "/api/v1/access/allow-list", tag = "assistant", request_body = AllowListIn,
    responses((status = 200, body = Access), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn put_allow_list(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Body(body): Body<AllowListIn>,
) -> ApiResult<Json<Access>> {
    let numbers = body
        .numbers
        .map(|list| {
            list.iter()
                .map(|n| {
                    PhoneNumber::parse(n)
                        .map_err(|e| ApiError::Unprocessable(format!("numbers: {n:?}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    if bot.id() != confab_store::DEFAULT_BOT {
        let list: Option<Vec<String>> =
            numbers.map(|n| n.iter().map(|p| p.as_str().to_string()).collect());
        let changed = change_policy(&state, &bot, &principal, |p| p.allow_list = list).await?;
        return Ok(Json(changed));
    }
    state
        .store
        .put_setting(
            access::ALLOW_LIST_KEY,
            &access::allow_list_text(numbers.as_deref()),
        )
        .await?;
    Ok(Json(current(&state, &bot).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitIn {
    /// Messages a contact may send per window, 1 to 10,000; null: no limit
    /// (the default bot: the environment's, if it sets one).
    pub rate_limit: Option<RateLimitOut>,
}

/// Replaces the bot's rate limit.
#[utoipa::path(put, path = "/api/v1/access/rate-limit", tag = "assistant", request_body = RateLimitIn,
    responses((status = 200, body = Access), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn put_rate_limit(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Body(body): Body<RateLimitIn>,
) -> ApiResult<Json<Access>> {
    let limit = match body.rate_limit {
        Some(l) if !(1..=10_000).contains(&l.messages) => {
            return Err(ApiError::Unprocessable(
                "rate_limit.messages: 1 to 10000".into(),
            ));
        }
        Some(l) if !(1..=86_400).contains(&l.window_seconds) => {
            return Err(ApiError::Unprocessable(
                "rate_limit.window_seconds: 1 to 86400".into(),
            ));
        }
        Some(l) => Some(access::StoredRateLimit {
            messages: l.messages,
            window_seconds: l.window_seconds,
        }),
        None => None,
    };
    let changed = change_policy(&state, &bot, &principal, |p| p.rate_limit = limit).await?;
    Ok(Json(changed))
}
