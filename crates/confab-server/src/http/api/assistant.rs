//! The assistant's numbers (AI use per bot and day) and the access policy
//! (the allow-list, changed at run time; the rate limit, as configured).

use axum::Json;
use axum::extract::{Query, State};
use confab_model::PhoneNumber;
use serde::{Deserialize, Serialize};

use super::Body;
use crate::access;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

const DAY_MS: i64 = 86_400_000;

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

fn date_text(day: i64) -> String {
    crate::clock::rfc3339(day * DAY_MS)[..10].to_string()
}

/// AI use summed per bot and day: calls, errors, tokens and latency.
#[utoipa::path(get, path = "/api/v1/stats/ai", tag = "assistant", params(StatsQuery),
    responses((status = 200, body = AiStats), (status = 400, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn ai_stats(
    State(state): State<AppState>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<AiStats>> {
    let today = state.clock.now_ms().div_euclid(DAY_MS);
    let to =
        q.to.as_deref()
            .map(|t| day_of(t, "to"))
            .transpose()?
            .unwrap_or(today);
    let from = q
        .from
        .as_deref()
        .map(|t| day_of(t, "from"))
        .transpose()?
        .unwrap_or(to - 29);
    // From after to: no day lies between them.
    let rows = if from > to {
        Vec::new()
    } else {
        state
            .store
            .ai_stats(from * DAY_MS, (to + 1) * DAY_MS)
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

#[derive(Serialize, utoipa::ToSchema)]
pub struct RateLimitOut {
    pub messages: i64,
    pub window_seconds: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Access {
    /// Only these numbers are answered; null: everyone is.
    pub allow_list: Option<Vec<String>>,
    /// Messages a contact may send per window (`RATE_LIMIT_MESSAGES`,
    /// `RATE_LIMIT_WINDOW_SECONDS`); null: no limit.
    pub rate_limit: Option<RateLimitOut>,
}

async fn current(state: &AppState) -> ApiResult<Access> {
    let list = state
        .store
        .get_setting(access::ALLOW_LIST_KEY)
        .await?
        .and_then(|raw| access::parse_allow_list(&raw))
        .map(|set| {
            let mut v: Vec<String> = set.into_iter().collect();
            v.sort();
            v
        });
    Ok(Access {
        allow_list: list,
        rate_limit: state.settings.assistant.rate_limit.map(|l| RateLimitOut {
            messages: l.messages,
            window_seconds: l.window.as_secs(),
        }),
    })
}

/// Who the bot answers.
#[utoipa::path(get, path = "/api/v1/access", tag = "assistant",
    responses((status = 200, body = Access)), security(("bearer" = [])))]
pub async fn get_access(State(state): State<AppState>) -> ApiResult<Json<Access>> {
    Ok(Json(current(&state).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowListIn {
    /// Numbers in international form; null turns the allow-list off.
    pub numbers: Option<Vec<String>>,
}

/// Replaces the allow-list. It applies to the next message of every
/// contact, on every replica.
#[utoipa::path(put, path = "/api/v1/access/allow-list", tag = "assistant", request_body = AllowListIn,
    responses((status = 200, body = Access), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn put_allow_list(
    State(state): State<AppState>,
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
    state
        .store
        .put_setting(
            access::ALLOW_LIST_KEY,
            &access::allow_list_text(numbers.as_deref()),
        )
        .await?;
    Ok(Json(current(&state).await?))
}
