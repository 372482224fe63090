//! Message statistics: the bot's messages per day in and out, outbound by
//! delivery status, and the outbox's depth now.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use serde::Serialize;

use super::assistant::{StatsQuery, date_text};
use super::scope::BotScope;
use crate::app::AppState;
use crate::error::ApiResult;

#[derive(Serialize, utoipa::ToSchema, Default)]
pub struct MessageDayOut {
    /// YYYY-MM-DD (UTC).
    pub date: String,
    pub inbound: i64,
    pub outbound: i64,
    /// Outbound messages by their status now.
    pub statuses: BTreeMap<String, i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageStats {
    pub from: String,
    pub to: String,
    /// Every day of the range, in order, days without messages included.
    pub days: Vec<MessageDayOut>,
    /// Outbound messages of the range by status.
    pub statuses: BTreeMap<String, i64>,
    /// Sends waiting in the outbox now, over every bot.
    pub outbox_depth: i64,
    /// How long the send due longest ago has been due, in seconds (0:
    /// none is due yet; absent: the outbox is empty).
    pub outbox_waiting_seconds: Option<i64>,
}

/// The bot's messages per day (UTC) in and out, the outbound ones by
/// delivery status, and the outbox now; by default the last 30 days.
#[utoipa::path(get, path = "/api/v1/stats/messages", tag = "messages", params(StatsQuery),
    responses((status = 200, body = MessageStats), (status = 400, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn messages(
    State(state): State<AppState>,
    bot: BotScope,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<MessageStats>> {
    let now = state.clock.now_ms();
    let ((from, to), span) = q.year(now)?;
    let rows = match span {
        Some((since, until)) => state.store.message_stats(bot.id(), since, until).await?,
        None => Vec::new(),
    };
    let mut days: Vec<MessageDayOut> = (from..=to)
        .map(|d| MessageDayOut {
            date: date_text(d),
            ..Default::default()
        })
        .collect();
    let mut statuses = BTreeMap::new();
    for r in rows {
        let Some(day) = usize::try_from(r.day - from)
            .ok()
            .and_then(|i| days.get_mut(i))
        else {
            continue;
        };
        if r.direction == "inbound" {
            day.inbound += r.count;
        } else {
            day.outbound += r.count;
            *day.statuses.entry(r.status.clone()).or_default() += r.count;
            *statuses.entry(r.status).or_default() += r.count;
        }
    }
    let (depth, oldest_ms) = state.store.outbox_depth().await?;
    Ok(Json(MessageStats {
        from: date_text(from),
        to: date_text(to),
        days,
        statuses,
        outbox_depth: depth,
        outbox_waiting_seconds: oldest_ms.map(|t| (now - t).max(0) / 1000),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_day_is_a_utc_date() {
        assert_eq!(super::date_text(20_000), "2024-10-04");
    }
}
