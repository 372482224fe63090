//! `/api/v1/templates`: a bot's catalogue of WhatsApp message templates,
//! declared here or synced from Meta's business account. Sends and flows
//! naming a template are checked against it (`message_templates`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use confab_channels::client::Client;
use confab_model::Channel;
use confab_store::{Change, StoredTemplate};
use serde::{Deserialize, Serialize};

use super::scope::{BotScope, Id};
use super::{Body, Page};
use crate::app::AppState;
use crate::auth::Principal;
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::message_templates::{DeclareTemplate, synced};

#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageTemplateOut {
    pub id: i64,
    /// twilio or meta.
    pub channel: String,
    pub name: String,
    pub language: String,
    /// MARKETING, UTILITY or AUTHENTICATION.
    pub category: String,
    /// APPROVED, or what Meta says of a synced one (PENDING, REJECTED,
    /// PAUSED...): only an approved template can be sent.
    pub status: String,
    pub body: String,
    /// The body's parameters (`1`, `2`... or names), each once.
    pub parameters: Vec<String>,
    /// A Meta template's header: `format` (TEXT, IMAGE, VIDEO, DOCUMENT,
    /// LOCATION) and a TEXT header's `parameters`; a send gives them in its
    /// `header` component.
    #[schema(value_type = Option<Object>)]
    pub header: Option<confab_store::TemplateHeader>,
    pub content_sid: Option<String>,
    /// declared or synced.
    pub source: String,
    /// The provider's id for it.
    pub external_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<StoredTemplate> for MessageTemplateOut {
    fn from(t: StoredTemplate) -> MessageTemplateOut {
        MessageTemplateOut {
            id: t.id,
            channel: t.channel,
            name: t.name,
            language: t.language,
            category: t.category,
            status: t.status,
            body: t.body,
            parameters: t.parameters,
            header: t.header,
            content_sid: t.content_sid,
            source: t.source,
            external_id: t.external_id,
            created_at: rfc3339(t.created_ms),
            updated_at: rfc3339(t.updated_ms),
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TemplateQuery {
    /// Only this channel's: twilio or meta.
    pub channel: Option<String>,
    /// Only templates of this name.
    pub name: Option<String>,
}

/// The bot's templates, by channel, name and language.
#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", params(TemplateQuery),
    responses((status = 200, body = Page<MessageTemplateOut>), (status = 400, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    bot: BotScope,
    Query(q): Query<TemplateQuery>,
) -> ApiResult<Json<Page<MessageTemplateOut>>> {
    let channel = super::messages::parse_enum(
        "channel",
        q.channel.as_deref(),
        Channel::parse,
        "twilio, meta, simulator",
    )?;
    let all = state.store.templates(bot.id()).await?;
    Ok(Json(Page::whole(
        all.into_iter()
            .filter(|t| channel.is_none_or(|c| c.as_str() == t.channel))
            .filter(|t| q.name.as_ref().is_none_or(|n| *n == t.name))
            .map(MessageTemplateOut::from),
    )))
}

/// DeclareTemplate a template the provider holds: Meta by name and language,
/// Twilio by its Content SID too. A 422 names each field at fault; a 409
/// says the bot has it already.
#[utoipa::path(post, path = "/api/v1/templates", tag = "templates", request_body = DeclareTemplate,
    responses((status = 201, body = MessageTemplateOut), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn declare(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Body(req): Body<DeclareTemplate>,
) -> ApiResult<(StatusCode, Json<MessageTemplateOut>)> {
    // The channel that sends, else the only one: what "the bot's channel" means.
    let sending: Vec<Channel> = bot
        .0
        .channels
        .iter()
        .filter(|c| c.client.is_some())
        .map(|c| c.channel())
        .collect();
    let channels = if sending.is_empty() {
        bot.0.channels.iter().map(|c| c.channel()).collect()
    } else {
        sending
    };
    let w = req.check(&channels).map_err(ApiError::Invalid)?;
    let label = principal.label();
    let t = state
        .store
        .declare_template(bot.id(), &w, &Change::by(&label, state.clock.now_ms()))
        .await?;
    Ok((StatusCode::CREATED, Json(t.into())))
}

/// A store error for template `id`, naming it when it is not there.
fn missing(id: i64) -> impl Fn(confab_store::StoreError) -> ApiError {
    move |e| match e {
        confab_store::StoreError::NotFound => ApiError::NotFound(format!("no template {id}")),
        e => e.into(),
    }
}

#[utoipa::path(get, path = "/api/v1/templates/{id}", tag = "templates", params(("id" = i64, Path)),
    responses((status = 200, body = MessageTemplateOut), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Id { id }): Path<Id<i64>>,
) -> ApiResult<Json<MessageTemplateOut>> {
    let t = state
        .store
        .template(bot.id(), id)
        .await
        .map_err(missing(id))?;
    Ok(Json(t.into()))
}

/// Remove a template from the catalogue (not from the provider). A synced
/// one comes back with the next sync.
#[utoipa::path(delete, path = "/api/v1/templates/{id}", tag = "templates", params(("id" = i64, Path)),
    responses((status = 200, body = MessageTemplateOut), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Path(Id { id }): Path<Id<i64>>,
) -> ApiResult<Json<MessageTemplateOut>> {
    let label = principal.label();
    let t = state
        .store
        .delete_template(bot.id(), id, &Change::by(&label, state.clock.now_ms()))
        .await
        .map_err(missing(id))?;
    Ok(Json(t.into()))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TemplateSyncOut {
    /// The channel read from: meta. A bot with only Twilio has its
    /// declared templates, and nothing is read.
    pub channel: String,
    /// Templates the provider listed.
    pub fetched: usize,
    pub added: usize,
    pub updated: usize,
    /// Synced templates the provider no longer lists.
    pub removed: usize,
    /// The whole catalogue after the sync.
    pub templates: Vec<MessageTemplateOut>,
}

async fn catalogue(state: &AppState, bot: i64) -> ApiResult<Vec<MessageTemplateOut>> {
    let all = state.store.templates(bot).await?;
    Ok(all.into_iter().map(MessageTemplateOut::from).collect())
}

/// Read the business account's templates from Meta (`GET
/// /{waba-id}/message_templates`) into the catalogue: new ones added,
/// changed ones updated, ones Meta no longer lists removed; declared ones
/// stay. A bot with only Twilio keeps its declared templates (Twilio's are
/// declared). 409 when the bot's Meta channel cannot list them; 502 with
/// what Meta answered when it refuses.
#[utoipa::path(post, path = "/api/v1/templates/sync", tag = "templates",
    responses((status = 200, body = TemplateSyncOut), (status = 409, body = crate::error::Problem), (status = 502, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn sync(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
) -> ApiResult<Json<TemplateSyncOut>> {
    let Some(meta) = bot.0.channel(Channel::Meta) else {
        if bot.0.channel(Channel::Twilio).is_some() {
            return Ok(Json(TemplateSyncOut {
                channel: Channel::Twilio.as_str().into(),
                fetched: 0,
                added: 0,
                updated: 0,
                removed: 0,
                templates: catalogue(&state, bot.id()).await?,
            }));
        }
        return Err(ApiError::Conflict(format!(
            "bot {} has no channel: give it one through /api/v1/bots first",
            bot.0.slug()
        )));
    };
    let waba = meta.value("business_account_id").ok_or_else(|| {
        ApiError::Conflict(format!(
            "bot {}'s meta channel has no business_account_id: set it through PATCH /api/v1/bots/{} (WHATSAPP_BUSINESS_ACCOUNT_ID for the default bot)",
            bot.0.slug(),
            bot.0.slug()
        ))
    })?;
    let Some(Client::Meta(client)) = meta.client.as_deref() else {
        return Err(ApiError::Conflict(meta.problem.clone().unwrap_or_else(
            || "the meta channel cannot call Meta without phone_number_id and access_token".into(),
        )));
    };
    let remote = client
        .message_templates(waba)
        .await
        .map_err(ApiError::BadGateway)?;
    // One row per name and language, whatever the answer repeats.
    let mut seen = std::collections::HashSet::new();
    let rows: Vec<_> = remote
        .iter()
        .map(synced)
        .filter(|w| seen.insert((w.name.clone(), w.language.clone())))
        .collect();
    let label = principal.label();
    let counts = state
        .store
        .sync_templates(
            bot.id(),
            Channel::Meta.as_str(),
            &rows,
            &Change::by(&label, state.clock.now_ms()),
        )
        .await?;
    Ok(Json(TemplateSyncOut {
        channel: Channel::Meta.as_str().into(),
        fetched: counts.fetched,
        added: counts.added,
        updated: counts.updated,
        removed: counts.removed,
        templates: catalogue(&state, bot.id()).await?,
    }))
}
