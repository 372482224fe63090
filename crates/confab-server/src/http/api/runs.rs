//! Runs: where each contact is in which flow, with the event log; start,
//! cancel and resume them; flow statistics.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use confab_flow::{Input, RunStatus};
use confab_store::{RunFilter, StoredRun};
use serde::{Deserialize, Serialize};

use super::scope::{BotScope, Id};
use super::{Body, Page, cursor, limit};
use crate::app::AppState;
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::runtime::RuntimeError;

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunOut {
    pub id: i64,
    pub contact_id: i64,
    pub flow: String,
    /// The flow version the run is pinned to.
    pub flow_version: i64,
    /// waiting_input, waiting_effect, waiting_timer, handed_off, completed,
    /// failed, expired, cancelled or interrupted (replaced by a newer run of
    /// the contact: a contact has one run in progress).
    pub status: String,
    /// The node the run is at.
    pub node: Option<String>,
    /// Answers and other variables.
    #[schema(value_type = Object)]
    pub variables: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
    /// The event log, oldest first (only when one run is read).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub events: Option<Vec<serde_json::Value>>,
}

impl RunOut {
    fn new(r: StoredRun) -> RunOut {
        let variables = serde_json::from_str::<serde_json::Value>(&r.state)
            .ok()
            .and_then(|s| s.get("vars").cloned())
            .unwrap_or(serde_json::Value::Null);
        RunOut {
            id: r.id,
            contact_id: r.contact_id,
            flow: r.flow_id,
            flow_version: r.flow_version,
            status: r.status,
            node: r.node,
            variables,
            created_at: rfc3339(r.created_ms),
            updated_at: rfc3339(r.updated_ms),
            events: None,
        }
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> ApiError {
        match e {
            RuntimeError::Store(e) => e.into(),
            RuntimeError::Flow(e) => ApiError::Conflict(e),
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// A contact id, or a phone number in international form.
    pub contact: Option<String>,
    /// The same as `contact`, by id only (kept for earlier clients).
    pub contact_id: Option<i64>,
    pub flow: Option<String>,
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(ListQuery),
    responses((status = 200, body = Page<RunOut>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    bot: BotScope,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<RunOut>>> {
    if let Some(s) = &q.status
        && RunStatus::parse(s).is_none()
    {
        return Err(ApiError::BadRequest(format!(
            "status {s:?} is not a run status"
        )));
    }
    let limit = limit(q.limit)?;
    let before_id = cursor(q.cursor.as_deref())?;
    let contact_id = match (&q.contact, q.contact_id) {
        (Some(key), _) => match super::contacts::resolve(&state, &bot, key).await {
            Ok(c) => Some(c.id),
            // No such contact: no runs.
            Err(ApiError::NotFound(_)) => {
                return Ok(Json(Page {
                    items: vec![],
                    next_cursor: None,
                }));
            }
            Err(e) => return Err(e),
        },
        (None, id) => id,
    };
    let rows = state
        .store
        .runs(&RunFilter {
            bot_id: Some(bot.id()),
            contact_id,
            flow_id: q.flow,
            status: q.status,
            before_id,
            limit: limit + 1,
        })
        .await?;
    Ok(Json(Page::new(rows, limit, |r| r.id, RunOut::new)))
}

/// Run `id` of a contact of `bot`.
async fn load(state: &AppState, bot: &BotScope, id: i64) -> ApiResult<StoredRun> {
    let missing = || format!("no run with id {id}");
    let run = match state.store.run(id).await {
        Err(confab_store::StoreError::NotFound) => return Err(ApiError::NotFound(missing())),
        other => other?,
    };
    bot.owns(state.store.contact(run.contact_id).await?.bot_id, missing)?;
    Ok(run)
}

/// One run with its event log.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = i64, Path)),
    responses((status = 200, body = RunOut), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Id { id }): Path<Id<i64>>,
) -> ApiResult<Json<RunOut>> {
    let run = load(&state, &bot, id).await?;
    let events = state.store.run_events(id, 1000).await?;
    let mut out = RunOut::new(run);
    // Each stored row holds one step's events, in order.
    let mut log = Vec::new();
    for row in events {
        let at = rfc3339(row.created_ms);
        let step = match serde_json::from_str::<serde_json::Value>(&row.event).unwrap_or_default() {
            serde_json::Value::Array(a) => a,
            other => vec![other],
        };
        for mut e in step {
            if let Some(o) = e.as_object_mut() {
                o.insert("at".into(), at.clone().into());
            }
            log.push(e);
        }
    }
    out.events = Some(log);
    Ok(Json(out))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// A contact id, or a phone number in international form (the contact is
    /// created if new).
    pub contact: Option<String>,
    /// The contact's phone number (the shape of earlier clients); `+` may
    /// be left out.
    pub contact_phone: Option<String>,
    /// The flow's id (`flow_id` as earlier clients spell it).
    #[serde(alias = "flow_id", deserialize_with = "super::text_or_number")]
    #[schema(value_type = String)]
    pub flow: String,
    /// `twilio` or `meta`: how the flow's messages go out; the configured one
    /// when only one is. `simulator`: nothing goes to a provider, the bot's
    /// messages are kept in the conversation (the console's simulator);
    /// without a contact, a fresh test contact is made.
    pub channel: Option<String>,
    /// What the flow reads as `input.*` (`initial_state` as earlier clients
    /// spell it).
    #[serde(alias = "initial_state")]
    #[schema(value_type = Option<Object>)]
    pub variables: Option<serde_json::Map<String, serde_json::Value>>,
    /// The bot, as earlier clients send it: it must be the one the path
    /// names (the default bot's without one).
    #[schema(value_type = Option<String>)]
    pub bot_id: Option<serde_json::Value>,
}

/// Start a flow for a contact, with variables the flow reads as `input.*`:
/// its messages go through the outbox (outside the 24-hour window only
/// templates reach the contact). A run the contact has in progress ends as
/// `interrupted`. 409 when no channel can send, as for `POST /messages`.
#[utoipa::path(post, path = "/api/v1/runs", tag = "runs", request_body = StartRun,
    responses((status = 201, body = RunOut), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn start(
    State(state): State<AppState>,
    bot: BotScope,
    Body(req): Body<StartRun>,
) -> ApiResult<(StatusCode, Json<RunOut>)> {
    if let Some(given) = &req.bot_id {
        super::same_bot(&state, &bot, given, "runs")?;
    }
    let simulated = req.channel.as_deref() == Some(confab_model::Channel::Simulator.as_str());
    let key = match (req.contact, req.contact_phone) {
        (Some(c), None) => c,
        (None, Some(p)) if p.starts_with('+') => p,
        (None, Some(p)) => format!("+{p}"),
        (None, None) if simulated => test_phone(),
        _ => {
            return Err(ApiError::Unprocessable(
                "contact: give contact or contact_phone".into(),
            ));
        }
    };
    if !state
        .registry
        .catalog(bot.id())
        .flows
        .contains_key(&req.flow)
    {
        return Err(ApiError::Unprocessable(format!(
            "flow: the bot has no flow {:?}",
            req.flow
        )));
    }
    let channel = match simulated {
        true => confab_model::Channel::Simulator,
        false => super::messages::sending_channel(&bot.0, req.channel.as_deref())?.0,
    };
    let contact_id = match super::contacts::resolve(&state, &bot, &key).await {
        Ok(c) => c.id,
        Err(ApiError::NotFound(_)) if key.starts_with('+') => {
            let phone = confab_model::PhoneNumber::parse(&key)
                .map_err(|e| ApiError::Unprocessable(format!("contact: {e}")))?;
            let (store, now) = (&state.store, state.clock.now_ms());
            // A contact a simulation makes is a test contact.
            match simulated {
                true => {
                    store
                        .ensure_test_contact(bot.id(), phone.as_str(), now)
                        .await?
                }
                false => store.ensure_contact(bot.id(), phone.as_str(), now).await?,
            }
        }
        Err(e) => return Err(e),
    };
    let run = state
        .runtime
        .start_run(
            contact_id,
            &req.flow,
            channel,
            req.variables.unwrap_or_default(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(RunOut::new(run))))
}

/// A test contact's number: in +1 555, an area code that is not in
/// service, so no person has it; random, so each simulation starts fresh.
fn test_phone() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 10_000_000;
    format!("+1555{n:07}")
}

/// Stop a run for good.
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs", params(("id" = i64, Path)),
    responses((status = 200, body = RunOut), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Id { id }): Path<Id<i64>>,
) -> ApiResult<Json<RunOut>> {
    load(&state, &bot, id).await?;
    Ok(Json(RunOut::new(state.runtime.cancel_run(id).await?)))
}

/// Hand a paused run back to the bot: a handed-off conversation goes on,
/// a run waiting for a timer goes on now (the timer is then stale).
#[utoipa::path(post, path = "/api/v1/runs/{id}/resume", tag = "runs", params(("id" = i64, Path)),
    responses((status = 200, body = RunOut), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Id { id }): Path<Id<i64>>,
) -> ApiResult<Json<RunOut>> {
    let run = load(&state, &bot, id).await?;
    let input = if run.status == RunStatus::HandedOff.as_str() {
        Input::Resume
    } else if run.status == RunStatus::WaitingTimer.as_str() {
        let token = serde_json::from_str::<confab_flow::Run>(&run.state)
            .ok()
            .and_then(|r| r.timer)
            .ok_or_else(|| ApiError::Conflict(format!("run {id} waits for no timer")))?;
        Input::Timer(token)
    } else {
        return Err(ApiError::Conflict(format!(
            "run {id} is {}, not paused (handed off or waiting for a timer)",
            run.status
        )));
    };
    if state.runtime.continue_run(id, input, None).await?.is_none() {
        return Err(ApiError::Conflict(format!(
            "run {id} is no longer its contact's current run"
        )));
    }
    Ok(Json(RunOut::new(load(&state, &bot, id).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    /// What the contact says (`message` as earlier clients spell it).
    #[serde(alias = "message")]
    pub text: Option<String>,
    /// A tapped button or list row, by its id.
    pub tap: Option<String>,
    /// `text` (the only kind given this way), as earlier clients send it.
    pub message_type: Option<String>,
    /// The run's id again, as earlier clients send it: it must be this one.
    pub execution_id: Option<i64>,
}

/// A contact's current run: its newest.
async fn current_run(
    state: &AppState,
    bot: &BotScope,
    contact_id: i64,
) -> ApiResult<Option<StoredRun>> {
    let newest = state
        .store
        .runs(&RunFilter {
            bot_id: Some(bot.id()),
            contact_id: Some(contact_id),
            limit: 1,
            ..RunFilter::default()
        })
        .await?;
    Ok(newest.into_iter().next())
}

/// Give a run a message as if its contact had sent it (another system
/// answering for them): kept as an inbound message marked `simulated`,
/// handled like any other (a keyword may start another flow); the bot's
/// replies go to the contact through the outbox. Answers the contact's
/// current run after it.
#[utoipa::path(post, path = "/api/v1/runs/{id}/input", tag = "runs", params(("id" = i64, Path)), request_body = RunInput,
    responses((status = 200, body = RunOut), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn input(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Id { id }): Path<Id<i64>>,
    Body(req): Body<RunInput>,
) -> ApiResult<Json<RunOut>> {
    if req.execution_id.is_some_and(|e| e != id) {
        return Err(ApiError::Unprocessable(format!(
            "execution_id: this is run {id}"
        )));
    }
    if req.message_type.as_deref().is_some_and(|t| t != "text") {
        return Err(ApiError::Unprocessable(
            "message_type: only text is given this way (tap for a button or list row)".into(),
        ));
    }
    let text = req.text.filter(|t| !t.trim().is_empty());
    if text.is_none() && req.tap.is_none() {
        return Err(ApiError::Unprocessable(
            "text: give the message, or tap".into(),
        ));
    }
    if text.as_ref().is_some_and(|t| t.chars().count() > 4096) {
        return Err(ApiError::Unprocessable(
            "text: at most 4,096 characters, as WhatsApp allows".into(),
        ));
    }
    let run = load(&state, &bot, id).await?;
    let status = RunStatus::parse(&run.status);
    if status.is_none_or(|s| s.is_finished()) {
        return Err(ApiError::Conflict(format!("run {id} is {}", run.status)));
    }
    if current_run(&state, &bot, run.contact_id)
        .await?
        .map(|r| r.id)
        != Some(id)
    {
        return Err(ApiError::Conflict(format!(
            "run {id} is no longer its contact's current run"
        )));
    }
    let contact = state.store.contact(run.contact_id).await?;
    let channel = serde_json::from_str::<confab_flow::Run>(&run.state)
        .ok()
        .and_then(|r| {
            r.vars
                .get("contact")?
                .get("channel")?
                .as_str()
                .map(str::to_string)
        })
        .and_then(|c| confab_model::Channel::parse(&c))
        .unwrap_or(confab_model::Channel::Simulator);
    if channel != confab_model::Channel::Simulator {
        super::messages::sending_channel(&bot.0, Some(channel.as_str()))?;
    }
    let from = confab_model::PhoneNumber::parse(&contact.phone).map_err(ApiError::internal)?;
    let message = confab_model::InboundMessage {
        bot_id: bot.id(),
        channel,
        provider_message_id: format!("input-{}", uuid::Uuid::new_v4()),
        from,
        to: None,
        profile_name: None,
        kind: confab_model::MessageKind::Text,
        text,
        media: Vec::new(),
        extra: confab_model::Extra {
            reply_id: req.tap,
            simulated: true,
            ..Default::default()
        },
    };
    state.ingest.store(message).await?;
    let latest = current_run(&state, &bot, run.contact_id)
        .await?
        .ok_or_else(|| ApiError::internal("the contact's run is gone"))?;
    Ok(Json(RunOut::new(latest)))
}

#[derive(Serialize, utoipa::ToSchema, Default)]
pub struct RunCounts {
    pub started: i64,
    pub completed: i64,
    pub failed: i64,
    pub expired: i64,
    pub cancelled: i64,
    /// Replaced by a newer run of the same contact.
    pub interrupted: i64,
    pub in_progress: i64,
    /// The median time from start to completion of the completed runs, to
    /// the tenth of a second; null when none completed.
    pub median_seconds: Option<f64>,
}

impl RunCounts {
    /// Runs counted by status (several maps are summed), and the times
    /// completed runs took: (milliseconds, how many runs).
    pub(super) fn of(
        by_status: &[&std::collections::HashMap<String, i64>],
        mut took: Vec<(i64, i64)>,
    ) -> RunCounts {
        let n = |k: &str| by_status.iter().filter_map(|m| m.get(k)).sum::<i64>();
        let started: i64 = by_status.iter().flat_map(|m| m.values()).sum();
        let finished = RunStatus::ALL.into_iter().filter(|s| s.is_finished());
        took.sort_unstable();
        // The time of the i-th run, by how long they took.
        let nth = |i: i64| {
            let mut seen = 0;
            took.iter()
                .find(|(_, n)| {
                    seen += n;
                    seen > i
                })
                .map_or(0, |(ms, _)| *ms)
        };
        let median = match took.iter().map(|(_, n)| n).sum::<i64>() {
            0 => None,
            l if l % 2 == 1 => Some(nth(l / 2) as f64),
            l => Some((nth(l / 2 - 1) + nth(l / 2)) as f64 / 2.0),
        };
        RunCounts {
            started,
            completed: n("completed"),
            failed: n("failed"),
            expired: n("expired"),
            cancelled: n("cancelled"),
            interrupted: n("interrupted"),
            in_progress: started - finished.map(|s| n(s.as_str())).sum::<i64>(),
            median_seconds: median.map(|ms| (ms / 100.0).round() / 10.0),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunDayOut {
    pub flow: String,
    /// YYYY-MM-DD (UTC), the day the runs began.
    pub date: String,
    #[serde(flatten)]
    pub counts: RunCounts,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunStatistics {
    pub from: String,
    pub to: String,
    /// Every flow, every day.
    pub total: RunCounts,
    /// By flow.
    #[schema(value_type = Object)]
    pub flows: std::collections::BTreeMap<String, RunCounts>,
    /// By flow and day, days in order.
    pub days: Vec<RunDayOut>,
}

/// How the bot's runs went, over every flow: begun, completed, failed,
/// expired, cancelled, interrupted, in progress, and the median time to
/// complete, in total, by flow, and by flow and day (UTC, of their start).
/// A year at most: `from` earlier than a year before `to` is moved up.
#[utoipa::path(get, path = "/api/v1/runs/statistics", tag = "runs", params(super::assistant::StatsQuery),
    responses((status = 200, body = RunStatistics), (status = 400, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn statistics(
    State(state): State<AppState>,
    bot: BotScope,
    Query(q): Query<super::assistant::StatsQuery>,
) -> ApiResult<Json<RunStatistics>> {
    use super::assistant::date_text;
    let ((from, to), span) = q.year(state.clock.now_ms())?;
    let days = match span {
        Some((since, until)) => state.store.run_days(bot.id(), since, until).await?,
        None => Vec::new(),
    };
    let all: Vec<_> = days.iter().map(|d| &d.by_status).collect();
    let total = RunCounts::of(
        &all,
        days.iter().flat_map(|d| d.completed_ms.clone()).collect(),
    );
    let mut flows = std::collections::BTreeMap::new();
    for flow in days
        .iter()
        .map(|d| d.flow_id.clone())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let of: Vec<_> = days.iter().filter(|d| d.flow_id == flow).collect();
        let counts = RunCounts::of(
            &of.iter().map(|d| &d.by_status).collect::<Vec<_>>(),
            of.iter().flat_map(|d| d.completed_ms.clone()).collect(),
        );
        flows.insert(flow, counts);
    }
    let days = days
        .into_iter()
        .map(|d| RunDayOut {
            counts: RunCounts::of(&[&d.by_status], d.completed_ms),
            flow: d.flow_id,
            date: date_text(d.day),
        })
        .collect();
    Ok(Json(RunStatistics {
        from: date_text(from),
        to: date_text(to),
        total,
        flows,
        days,
    }))
}

#[cfg(test)]
mod tests {
    use super::RunCounts;

    #[test]
    fn the_median_is_of_every_run_however_many_took_as_long() {
        let median = |took: Vec<(i64, i64)>| RunCounts::of(&[], took).median_seconds;
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![(3_000, 1), (1_000, 3)]), Some(1.0));
        // Four runs: 1.0, 2.0, 2.0, 9.0 s; the median is between the middle two.
        assert_eq!(median(vec![(9_000, 1), (2_000, 2), (1_000, 1)]), Some(2.0));
        assert_eq!(median(vec![(1_000, 1), (2_000, 1)]), Some(1.5));
    }
}
