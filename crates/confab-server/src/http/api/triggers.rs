//! `/api/v1/triggers`: a bot's keyword, event and schedule triggers, their
//! logs and statistics. A change reaches every server's trigger book at
//! once here and within a second elsewhere (the bots' generation).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use confab_store::{Change, StoredTrigger, TriggerWrite};
use serde::{Deserialize, Serialize};

use super::scope::{BotScope, Id};
use super::{Body, Page, cursor, limit};
use crate::app::AppState;
use crate::auth::Principal;
use crate::automation::{Active, How, TriggerDef};
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};

/// Upcoming firing times a schedule shows.
const UPCOMING: usize = 5;

#[derive(Serialize, utoipa::ToSchema)]
pub struct TriggerOut {
    pub id: i64,
    /// The definition, as given (the fields of its type).
    #[serde(flatten)]
    pub definition: TriggerDef,
    pub active: bool,
    /// A schedule's next due time (UTC); null when nothing is left to fire
    /// or the trigger is inactive.
    pub next_due_at: Option<String>,
    /// A schedule's next firing times, in its time zone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upcoming: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl TriggerOut {
    fn new(t: StoredTrigger, now: i64) -> TriggerOut {
        let mut definition: TriggerDef = serde_json::from_str(&t.spec).unwrap_or_default();
        definition.active = None;
        let upcoming = match Active::of(&t).map(|a| a.how) {
            Ok(How::Schedule { schedule, .. }) if t.active => schedule
                .upcoming(now, UPCOMING)
                .into_iter()
                .map(|ms| schedule.local(ms))
                .collect(),
            _ => Vec::new(),
        };
        TriggerOut {
            id: t.id,
            definition,
            active: t.active,
            next_due_at: t.next_due_ms.filter(|_| t.active).map(rfc3339),
            upcoming,
            created_at: rfc3339(t.created_ms),
            updated_at: rfc3339(t.updated_ms),
        }
    }
}

/// Checks a definition against the bot's flows: the stored form and when
/// a schedule is first due.
fn checked(
    state: &AppState,
    bot: &BotScope,
    def: &TriggerDef,
    active: bool,
) -> ApiResult<(String, Option<i64>)> {
    if let Some(given) = &def.bot_id {
        super::same_bot(state, bot, given, "triggers")?;
    }
    let catalog = state.registry.catalog(bot.id());
    let how = def
        .check(&|f| catalog.flows.contains_key(f))
        .map_err(ApiError::Invalid)?;
    let next = match &how {
        How::Schedule { schedule, .. } if active => schedule.next_after(state.clock.now_ms()),
        _ => None,
    };
    let mut stored = def.clone();
    stored.bot_id = None;
    stored.active = None;
    let spec = serde_json::to_string(&stored).map_err(ApiError::internal)?;
    Ok((spec, next))
}

async fn write(
    state: &AppState,
    bot: &BotScope,
    principal: &Principal,
    id: Option<i64>,
    def: &TriggerDef,
    active: bool,
) -> ApiResult<StoredTrigger> {
    let (spec, next_due_ms) = checked(state, bot, def, active)?;
    let w = TriggerWrite {
        name: def.name.trim(),
        kind: &def.trigger_type,
        flow_id: &def.flow,
        active,
        spec: &spec,
        next_due_ms,
    };
    let label = principal.label();
    let by = Change::by(&label, state.clock.now_ms());
    let t = match id {
        None => state.store.create_trigger(bot.id(), &w, &by).await?,
        Some(id) => state.store.update_trigger(bot.id(), id, &w, &by).await?,
    };
    state
        .runtime
        .triggers
        .reload(&state.store)
        .await
        .map_err(ApiError::internal)?;
    Ok(t)
}

/// The bot's triggers, oldest first.
#[utoipa::path(get, path = "/api/v1/triggers", tag = "triggers",
    responses((status = 200, body = Page<TriggerOut>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    bot: BotScope,
) -> ApiResult<Json<Page<TriggerOut>>> {
    let now = state.clock.now_ms();
    let all = state.store.triggers(Some(bot.id())).await?;
    Ok(Json(Page::whole(
        all.into_iter().map(|t| TriggerOut::new(t, now)),
    )))
}

/// Create a trigger. `keyword`: `keywords`, `match_type`, `case_sensitive`,
/// `priority`. `event`: `event_type` and `event_conditions`. `schedule`:
/// `schedule_type` (once, daily, weekly, monthly, cron) with its fields,
/// `schedule_timezone`, `audience` and `misfire`. A 422 names each field at fault.
/// With `dry_run`: checked and not kept, 200 with the trigger as it would
/// be (id 0), a schedule's next firing times included.
#[utoipa::path(post, path = "/api/v1/triggers", tag = "triggers", params(super::DryRun), request_body = TriggerDef,
    responses((status = 201, body = TriggerOut), (status = 200, body = TriggerOut, description = "a dry run"), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Query(q): Query<super::DryRun>,
    Body(def): Body<TriggerDef>,
) -> ApiResult<(StatusCode, Json<TriggerOut>)> {
    let active = def.active.unwrap_or(true);
    if q.dry_run {
        let (spec, next_due_ms) = checked(&state, &bot, &def, active)?;
        let now = state.clock.now_ms();
        let unsaved = StoredTrigger {
            id: 0,
            bot_id: bot.id(),
            name: def.name.trim().to_string(),
            kind: def.trigger_type.clone(),
            flow_id: def.flow.clone(),
            active,
            spec,
            next_due_ms,
            created_ms: now,
            updated_ms: now,
        };
        return Ok((StatusCode::OK, Json(TriggerOut::new(unsaved, now))));
    }
    let t = write(&state, &bot, &principal, None, &def, active).await?;
    Ok((
        StatusCode::CREATED,
        Json(TriggerOut::new(t, state.clock.now_ms())),
    ))
}

#[utoipa::path(get, path = "/api/v1/triggers/{id}", tag = "triggers", params(("id" = i64, Path)),
    responses((status = 200, body = TriggerOut), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Id { id }): Path<Id<i64>>,
) -> ApiResult<Json<TriggerOut>> {
    let t = state.store.trigger(bot.id(), id).await?;
    Ok(Json(TriggerOut::new(t, state.clock.now_ms())))
}

/// Replace a trigger's definition. A schedule's next due time is counted
/// again from now.
#[utoipa::path(put, path = "/api/v1/triggers/{id}", tag = "triggers", params(("id" = i64, Path)), request_body = TriggerDef,
    responses((status = 200, body = TriggerOut), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Path(Id { id }): Path<Id<i64>>,
    Body(def): Body<TriggerDef>,
) -> ApiResult<Json<TriggerOut>> {
    let before = state.store.trigger(bot.id(), id).await?;
    let active = def.active.unwrap_or(before.active);
    let t = write(&state, &bot, &principal, Some(id), &def, active).await?;
    Ok(Json(TriggerOut::new(t, state.clock.now_ms())))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TriggerDeleted {
    pub id: i64,
}

/// Delete a trigger with its log.
#[utoipa::path(delete, path = "/api/v1/triggers/{id}", tag = "triggers", params(("id" = i64, Path)),
    responses((status = 200, body = TriggerDeleted), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Path(Id { id }): Path<Id<i64>>,
) -> ApiResult<Json<TriggerDeleted>> {
    let label = principal.label();
    state
        .store
        .delete_trigger(bot.id(), id, &Change::by(&label, state.clock.now_ms()))
        .await?;
    state
        .runtime
        .triggers
        .reload(&state.store)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(TriggerDeleted { id }))
}

async fn set_active(
    state: &AppState,
    bot: &BotScope,
    principal: &Principal,
    id: i64,
    active: bool,
) -> ApiResult<Json<TriggerOut>> {
    let t = state.store.trigger(bot.id(), id).await?;
    let def: TriggerDef = serde_json::from_str(&t.spec).map_err(ApiError::internal)?;
    let t = write(state, bot, principal, Some(id), &def, active).await?;
    Ok(Json(TriggerOut::new(t, state.clock.now_ms())))
}

/// Make a trigger fire again (a schedule counts its next due time from now).
#[utoipa::path(post, path = "/api/v1/triggers/{id}/activate", tag = "triggers", params(("id" = i64, Path)),
    responses((status = 200, body = TriggerOut), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn activate(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Path(Id { id }): Path<Id<i64>>,
) -> ApiResult<Json<TriggerOut>> {
    set_active(&state, &bot, &principal, id, true).await
}

/// Stop a trigger firing, keeping it and its log.
#[utoipa::path(post, path = "/api/v1/triggers/{id}/deactivate", tag = "triggers", params(("id" = i64, Path)),
    responses((status = 200, body = TriggerOut), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn deactivate(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Path(Id { id }): Path<Id<i64>>,
) -> ApiResult<Json<TriggerOut>> {
    set_active(&state, &bot, &principal, id, false).await
}

/// A message to try a keyword trigger with (`test_message` as earlier
/// clients spell it).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    #[serde(alias = "test_message")]
    pub text: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TestOutcome {
    /// Whether this trigger matches the text.
    pub matches: bool,
    /// The keyword that matched.
    pub matched_keyword: Option<String>,
    /// Which trigger the message would start a flow by: `trigger:<id>` (of
    /// the API) or `flow:<id>` (a flow file's own `triggers:`), if any.
    pub winner: Option<String>,
    /// The flow the message would start.
    pub flow: Option<String>,
    /// Why that one wins.
    pub why: String,
}

/// Would this message set the trigger off, and which trigger of the bot
/// wins for it (and why)? Changes nothing.
#[utoipa::path(post, path = "/api/v1/triggers/{id}/test", tag = "triggers", params(("id" = i64, Path)), request_body = TestRequest,
    responses((status = 200, body = TestOutcome), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn test(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Id { id }): Path<Id<i64>>,
    Body(req): Body<TestRequest>,
) -> ApiResult<Json<TestOutcome>> {
    super::messages::check_len("text", &req.text, 4096)?;
    let t = state.store.trigger(bot.id(), id).await?;
    let this = Active::of(&t).map_err(ApiError::internal)?;
    let text = req.text.trim();
    let keyword = this.how.keyword_for(text).map(|k| k.value.clone());
    // The contest among the bot's active keyword triggers and flow files.
    let book = state.runtime.triggers.of(bot.id());
    let catalog = state.registry.catalog(bot.id());
    let api = book.keyword(text);
    let file = confab_flow::routing::triggered_by(&catalog.list(), text);
    let (winner, flow, why) = match (api, file) {
        (Some((a, k)), f) if f.is_none_or(|(p, _)| a.priority >= i64::from(p)) => (
            Some(format!("trigger:{}", a.id)),
            Some(a.flow.clone()),
            format!(
                "trigger {} ({:?}) matches {:?} ({}) with priority {}, the highest of the matching triggers",
                a.id,
                a.name,
                k.value,
                match_name(k.kind),
                a.priority
            ),
        ),
        (_, Some((p, f))) => (
            Some(format!("flow:{}", f.id)),
            Some(f.id.clone()),
            format!(
                "flow {}'s own trigger matches with priority {p}, the highest of the matching triggers",
                f.id
            ),
        ),
        _ => (None, None, "no active keyword trigger matches".into()),
    };
    let why = match (&keyword, t.active) {
        (Some(_), false) => format!("{why}; this trigger matches but is inactive"),
        _ => why,
    };
    Ok(Json(TestOutcome {
        matches: keyword.is_some(),
        matched_keyword: keyword,
        winner,
        flow,
        why,
    }))
}

fn match_name(k: confab_flow::definition::TriggerKind) -> &'static str {
    use confab_flow::definition::TriggerKind::*;
    match k {
        Exact => "exact",
        Contains => "contains",
        StartsWith => "starts_with",
        EndsWith => "ends_with",
        Regex => "regex",
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FiringOut {
    pub id: i64,
    pub at: String,
    /// What set it off: the keyword, the event, or the due time.
    pub matched: String,
    pub contact_id: Option<i64>,
    /// The run it started.
    pub run_id: Option<i64>,
    /// Why no run started.
    pub error: Option<String>,
}

/// Each firing of the trigger, newest first: when, what matched, the run
/// it started or why none did.
#[utoipa::path(get, path = "/api/v1/triggers/{id}/logs", tag = "triggers", params(("id" = i64, Path), LogQuery),
    responses((status = 200, body = Page<FiringOut>), (status = 400, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn logs(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Id { id }): Path<Id<i64>>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Json<Page<FiringOut>>> {
    state.store.trigger(bot.id(), id).await?;
    let limit = limit(q.limit)?;
    let rows = state
        .store
        .trigger_firings(id, cursor(q.cursor.as_deref())?, limit + 1)
        .await?;
    Ok(Json(Page::new(
        rows,
        limit,
        |f| f.id,
        |f| FiringOut {
            id: f.id,
            at: rfc3339(f.at_ms),
            matched: f.matched,
            contact_id: f.contact_id,
            run_id: f.run_id,
            error: f.error,
        },
    )))
}

#[derive(Serialize, Default, utoipa::ToSchema)]
pub struct FiringCounts {
    pub firings: i64,
    pub runs_started: i64,
    pub errors: i64,
}

impl FiringCounts {
    fn add(&mut self, d: &confab_store::TriggerDay) {
        self.firings += d.firings;
        self.runs_started += d.runs;
        self.errors += d.errors;
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TriggerDayOut {
    pub trigger_id: i64,
    /// YYYY-MM-DD (UTC).
    pub date: String,
    #[serde(flatten)]
    pub counts: FiringCounts,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TriggerStatistics {
    pub from: String,
    pub to: String,
    pub total: FiringCounts,
    /// By trigger id.
    #[schema(value_type = Object)]
    pub triggers: std::collections::BTreeMap<i64, FiringCounts>,
    /// By trigger and day.
    pub days: Vec<TriggerDayOut>,
}

/// The bot's trigger firings, runs started and errors: in total, by
/// trigger, and by trigger and day (UTC). A year at most.
#[utoipa::path(get, path = "/api/v1/triggers/statistics", tag = "triggers", params(super::assistant::StatsQuery),
    responses((status = 200, body = TriggerStatistics), (status = 400, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn statistics(
    State(state): State<AppState>,
    bot: BotScope,
    Query(q): Query<super::assistant::StatsQuery>,
) -> ApiResult<Json<TriggerStatistics>> {
    use super::assistant::date_text;
    let ((from, to), span) = q.year(state.clock.now_ms())?;
    let days = match span {
        Some((since, until)) => state.store.trigger_days(bot.id(), since, until).await?,
        None => Vec::new(),
    };
    let mut total = FiringCounts::default();
    let mut triggers = std::collections::BTreeMap::new();
    let mut out = Vec::with_capacity(days.len());
    for d in &days {
        total.add(d);
        triggers
            .entry(d.trigger_id)
            .or_insert_with(FiringCounts::default)
            .add(d);
        let mut counts = FiringCounts::default();
        counts.add(d);
        out.push(TriggerDayOut {
            trigger_id: d.trigger_id,
            date: date_text(d.day),
            counts,
        });
    }
    Ok(Json(TriggerStatistics {
        from: date_text(from),
        to: date_text(to),
        total,
        triggers,
        days: out,
    }))
}
