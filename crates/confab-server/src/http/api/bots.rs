//! Bots through the API: create one, give it channels (their secrets are
//! sealed and never shown again), change it, test a channel against its
//! provider, delete it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use confab_channels::settings::{self, Config, Probe};
use confab_store::{BotWrite, Change, DEFAULT_BOT};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Body, Page};
use crate::app::AppState;
use crate::auth::Principal;
use crate::bots::{BotEntry, Source, channel_view};
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};

#[derive(Serialize, utoipa::ToSchema)]
pub struct BotOut {
    pub id: i64,
    pub slug: String,
    pub name: String,
    /// The flow a contact without a run starts in.
    pub default_flow: Option<String>,
    /// Each channel by kind (`twilio`, `meta`): its settings, of each
    /// secret only `{"set", "last4"}`, and `source` (`api` or `env`).
    #[schema(value_type = Object)]
    pub channels: Map<String, Value>,
    /// AI settings over the server's; `{}`: the server's.
    pub ai: crate::assistant::BotAi,
    pub created_at: String,
    pub updated_at: String,
}

impl BotOut {
    fn of(bot: &BotEntry) -> BotOut {
        BotOut {
            id: bot.id(),
            slug: bot.record.slug.clone(),
            name: bot.record.name.clone(),
            default_flow: bot.record.default_flow.clone(),
            channels: bot
                .channels
                .iter()
                .map(|c| (c.kind.name().to_string(), channel_view(c)))
                .collect(),
            ai: bot.ai.clone(),
            created_at: rfc3339(bot.record.created_ms),
            updated_at: rfc3339(bot.record.updated_ms),
        }
    }
}

/// A bot's channels by kind; in a change, `null` removes one.
type ChannelsIn = BTreeMap<String, Option<Map<String, Value>>>;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBot {
    pub name: String,
    /// Lower-case letters, digits, `-` and `_`, starting with a letter; made
    /// from the name when left out.
    pub slug: Option<String>,
    pub default_flow: Option<String>,
    /// `{"twilio": {"account_sid", "auth_token", "number"}, "meta":
    /// {"phone_number_id", "access_token", "app_secret", "verify_token",
    /// "business_account_id"}}`
    #[schema(value_type = Option<Object>)]
    pub channels: Option<ChannelsIn>,
    /// AI settings over the server's: `system_prompt`, `model`,
    /// `vision_model`, `history`.
    pub ai: Option<crate::assistant::BotAi>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BotChange {
    pub name: Option<String>,
    pub slug: Option<String>,
    /// `null` clears it: contacts without a run then start nothing.
    #[serde(default, deserialize_with = "super::given")]
    #[schema(value_type = Option<String>)]
    pub default_flow: Option<Option<String>>,
    /// Per kind: the settings to change (others keep their values), or
    /// `null` to remove the channel.
    #[schema(value_type = Option<Object>)]
    pub channels: Option<ChannelsIn>,
    /// Replaces the AI settings; `{}` or `null`: the server's.
    #[serde(default, deserialize_with = "super::given")]
    #[schema(value_type = Option<crate::assistant::BotAi>)]
    pub ai: Option<Option<crate::assistant::BotAi>>,
}

/// AI settings as a bot's record keeps them, checked.
fn ai_value(ai: Option<crate::assistant::BotAi>) -> ApiResult<Value> {
    let ai = ai.unwrap_or_default();
    if let Some((field, problem)) = ai.problem() {
        return Err(unprocessable(field, problem));
    }
    serde_json::to_value(ai).map_err(ApiError::internal)
}

fn unprocessable(field: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::Unprocessable(format!("{field}: {problem}"))
}

const SLUG_MAX: usize = 40;

/// Slugs a path already uses (`/webhooks/twilio/status`).
const RESERVED: &[&str] = &["status"];

fn check_slug(slug: &str) -> ApiResult<String> {
    if RESERVED.contains(&slug) {
        return Err(unprocessable("slug", format!("`{slug}` is reserved")));
    }
    let ok = (1..=SLUG_MAX).contains(&slug.len())
        && slug.starts_with(|c: char| c.is_ascii_lowercase())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        return Err(unprocessable(
            "slug",
            format!(
                "must be 1 to {SLUG_MAX} lower-case letters, digits, `-` or `_`, starting with a letter"
            ),
        ));
    }
    Ok(slug.to_string())
}

/// A slug made from a name: `Acme Support!` is `acme-support`.
fn slug_of(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_matches('-').chars().take(SLUG_MAX).collect();
    let slug = slug.trim_end_matches('-');
    match slug.chars().next() {
        Some(_) if RESERVED.contains(&slug) => format!("{slug}-bot"),
        Some(c) if c.is_ascii_lowercase() => slug.to_string(),
        Some(_) => format!("bot-{}", &slug[..slug.len().min(SLUG_MAX - 4)]),
        None => "bot".into(),
    }
}

/// `flow` as a default flow of bot `bot` (a bot not made yet has the
/// bundled flows only).
fn check_flow(
    state: &AppState,
    bot: Option<i64>,
    flow: Option<String>,
) -> ApiResult<Option<String>> {
    let known = match bot {
        Some(id) => state.registry.catalog(id).ids(),
        None => state.registry.bundled_ids(),
    };
    match flow {
        Some(f) if !known.contains(&f) => Err(unprocessable(
            "default_flow",
            format!("no flow `{f}` (flows: {})", known.join(", ")),
        )),
        other => Ok(other),
    }
}

/// A bot's channels as they are to be kept, checked, not yet sealed.
struct Checked<'a> {
    values: BTreeMap<String, settings::Values>,
    /// Seals their secrets; there is one whenever there are channels.
    ring: Option<&'a crate::secrets::Keyring>,
}

impl Checked<'_> {
    /// The channels as the store keeps them: secrets sealed for `bot_id`.
    fn sealed(self, bot_id: i64) -> Vec<confab_store::BotChannel> {
        let ring = self.ring;
        self.values
            .into_iter()
            .filter_map(|(name, v)| {
                let kind = settings::kind(&name)?;
                let secrets = kind.secrets(&v);
                let sealed = ring.filter(|_| !secrets.is_empty()).map(|ring| {
                    let text = serde_json::to_string(&secrets).unwrap_or_default();
                    ring.seal(&format!("bot:{bot_id}"), &name, &text)
                });
                Some(confab_store::BotChannel {
                    address: kind.address(&v).to_string(),
                    kind: name,
                    config: Value::Object(kind.public(&v)),
                    sealed,
                })
            })
            .collect()
    }
}

/// The bot's channels after `change`, checked: each field, the address
/// against the other bots', and that there is a key to seal them with.
/// Channels set by the environment cannot be changed here.
fn channels_after<'a>(
    state: &'a AppState,
    bot_id: i64,
    current: Option<&BotEntry>,
    change: Option<ChannelsIn>,
) -> ApiResult<Checked<'a>> {
    let mut values: BTreeMap<String, settings::Values> = current
        .into_iter()
        .flat_map(|b| &b.channels)
        .filter(|c| c.source == Source::Api)
        .map(|c| (c.kind.name().to_string(), c.values.clone()))
        .collect();
    for (name, input) in change.unwrap_or_default() {
        let field = format!("channels.{name}");
        let kind = settings::kind(&name).ok_or_else(|| {
            let kinds: Vec<&str> = settings::KINDS.iter().map(|k| k.name()).collect();
            unprocessable(
                &field,
                format!("not a kind of channel (those are {})", kinds.join(", ")),
            )
        })?;
        if current
            .and_then(|b| b.channel(kind.channel))
            .is_some_and(|c| c.source == Source::Env)
        {
            return Err(ApiError::Conflict(format!(
                "{field} is set by the environment's settings; change it there"
            )));
        }
        match input {
            None => {
                values.remove(&name);
            }
            Some(input) => {
                let parsed = kind
                    .parse(&input, values.get(&name))
                    .map_err(|e| unprocessable(&format!("{field}.{}", e.field), e.problem))?;
                let address = kind.address(&parsed);
                if let Some(owner) = state.bots.address_owner(kind.channel, address, bot_id) {
                    return Err(ApiError::Conflict(format!(
                        "{field}.{}: {address} is the {name} channel of bot {}",
                        kind.address,
                        owner.slug()
                    )));
                }
                values.insert(name, parsed);
            }
        }
    }
    let ring =
        if values.is_empty() {
            None
        } else {
            Some(state.bots.keyring().map_err(|e| {
                ApiError::Conflict(format!("channel credentials cannot be kept: {e}"))
            })?)
        };
    Ok(Checked { values, ring })
}

fn bot_of(state: &AppState, key: &str) -> ApiResult<Arc<BotEntry>> {
    state
        .bots
        .find(key)
        .ok_or_else(|| ApiError::NotFound(format!("no bot {key}")))
}

async fn fresh(state: &AppState, id: i64) -> ApiResult<Json<BotOut>> {
    state.reload_bots().await.map_err(ApiError::internal)?;
    let bot = state
        .bots
        .by_id(id)
        .ok_or_else(|| ApiError::NotFound(format!("no bot {id}")))?;
    Ok(Json(BotOut::of(&bot)))
}

/// Bots, by id (those the caller may act on).
#[utoipa::path(get, path = "/api/v1/bots", tag = "bots",
    responses((status = 200, body = Page<BotOut>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Page<BotOut>>> {
    let bots = state.bots.all();
    Ok(Json(Page::whole(
        bots.iter()
            .filter(|b| principal.may_act_on(b.id()))
            .map(|b| BotOut::of(b)),
    )))
}

/// Create a bot, with its channels.
#[utoipa::path(post, path = "/api/v1/bots", tag = "bots", request_body = NewBot,
    responses((status = 201, body = BotOut), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Body(req): Body<NewBot>,
) -> ApiResult<(StatusCode, Json<BotOut>)> {
    super::users::check_name("name", &req.name)?;
    let slug = match req.slug {
        Some(s) => check_slug(&s)?,
        None => slug_of(&req.name),
    };
    let default_flow = check_flow(&state, None, req.default_flow)?;
    let write = BotWrite {
        slug,
        name: req.name.trim().to_string(),
        default_flow,
        policy: Value::Object(Map::new()),
        ai: ai_value(req.ai)?,
        channels: Vec::new(),
    };
    // Checked before anything is written; sealed for the new bot's id, in
    // the transaction that creates it.
    let channels = channels_after(&state, i64::MAX, None, req.channels)?;
    let label = principal.label();
    let created = state
        .store
        .create_bot(
            &write,
            |id| channels.sealed(id),
            &Change::by(&label, state.clock.now_ms()),
        )
        .await?;
    Ok((StatusCode::CREATED, fresh(&state, created.id).await?))
}

/// One bot, by id or slug.
#[utoipa::path(get, path = "/api/v1/bots/{bot}", tag = "bots", params(("bot" = String, Path, description = "id or slug")),
    responses((status = 200, body = BotOut), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Path(bot): Path<String>,
) -> ApiResult<Json<BotOut>> {
    Ok(Json(BotOut::of(bot_of(&state, &bot)?.as_ref())))
}

/// Change a bot: its name, slug, default flow, and channels (settings left
/// out keep their values; a channel given as `null` is removed).
#[utoipa::path(patch, path = "/api/v1/bots/{bot}", tag = "bots", params(("bot" = String, Path, description = "id or slug")),
    request_body = BotChange,
    responses((status = 200, body = BotOut), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(bot): Path<String>,
    Body(req): Body<BotChange>,
) -> ApiResult<Json<BotOut>> {
    // The database's copy: another server may have changed it a moment ago.
    state.bots.refresh().await.map_err(ApiError::internal)?;
    let current = bot_of(&state, &bot)?;
    if let Some(n) = &req.name {
        super::users::check_name("name", n)?;
    }
    let slug = match req.slug {
        Some(s) => check_slug(&s)?,
        None => current.record.slug.clone(),
    };
    if current.id() == DEFAULT_BOT && slug != current.record.slug {
        return Err(ApiError::Conflict(
            "the default bot keeps its slug `default`".into(),
        ));
    }
    let default_flow = match req.default_flow {
        Some(f) => check_flow(&state, Some(current.id()), f)?,
        None => current.record.default_flow.clone(),
    };
    let channels =
        channels_after(&state, current.id(), Some(&current), req.channels)?.sealed(current.id());
    let write = BotWrite {
        slug,
        name: req
            .name
            .map(|n| n.trim().to_string())
            .unwrap_or_else(|| current.record.name.clone()),
        default_flow,
        policy: current.record.policy.clone(),
        ai: match req.ai {
            Some(ai) => ai_value(ai)?,
            None => current.record.ai.clone(),
        },
        channels,
    };
    let label = principal.label();
    state
        .store
        .update_bot(
            current.id(),
            current.record.updated_ms,
            &write,
            &Change::by(&label, state.clock.now_ms()),
        )
        .await?;
    fresh(&state, current.id()).await
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DeleteQuery {
    /// Delete the bot also when it holds conversations or records, and
    /// them with it.
    pub force: Option<bool>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Deleted {
    /// What was removed with the bot.
    #[schema(value_type = Object)]
    pub removed: confab_store::BotData,
}

/// Delete a bot with its channels. One that holds contacts, messages, runs
/// or records is refused (409, saying how many) unless `force=true`, which
/// removes them too. The default bot stays.
#[utoipa::path(delete, path = "/api/v1/bots/{bot}", tag = "bots", params(("bot" = String, Path, description = "id or slug"), DeleteQuery),
    responses((status = 200, body = Deleted), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(bot): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Json<Deleted>> {
    let current = bot_of(&state, &bot)?;
    if current.id() == DEFAULT_BOT {
        return Err(ApiError::Conflict(
            "the default bot cannot be deleted".into(),
        ));
    }
    let label = principal.label();
    let (_, removed, files) = state
        .store
        .delete_bot(
            current.id(),
            q.force.unwrap_or(false),
            &Change::by(&label, state.clock.now_ms()),
        )
        .await?;
    crate::worker::remove_files(&files).await;
    state.reload_bots().await.map_err(ApiError::internal)?;
    Ok(Json(Deleted { removed }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProbeOut {
    /// The provider accepted the credentials.
    pub ok: bool,
    /// The HTTP status it answered with; null when it could not be reached.
    pub status: Option<u16>,
    /// What it said: the account or number, or its error.
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// Test a channel: ask the provider the cheapest question its credentials
/// allow (Twilio: the account; Meta: the phone number) and say what it
/// answered. Nothing is sent.
#[utoipa::path(post, path = "/api/v1/bots/{bot}/channels/{kind}/test", tag = "bots",
    params(("bot" = String, Path, description = "id or slug"), ("kind" = String, Path, description = "twilio or meta")),
    responses((status = 200, body = ProbeOut), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn test_channel(
    State(state): State<AppState>,
    Path((bot, kind)): Path<(String, String)>,
) -> ApiResult<Json<ProbeOut>> {
    let bot = bot_of(&state, &bot)?;
    let kind = settings::kind(&kind)
        .ok_or_else(|| ApiError::NotFound(format!("no kind of channel `{kind}`")))?;
    let channel = bot.channel(kind.channel).ok_or_else(|| {
        ApiError::NotFound(format!("bot {} has no {} channel", bot.slug(), kind.name()))
    })?;
    if let Some(p) = &channel.problem {
        return Err(ApiError::Conflict(p.clone()));
    }
    let config: &Config = channel.config.as_ref().ok_or_else(|| {
        let missing: Vec<&str> = kind
            .fields
            .iter()
            .filter(|f| f.required && channel.value(f.name).is_none())
            .map(|f| f.name)
            .collect();
        ApiError::Conflict(format!(
            "the {} channel cannot call its provider without {}",
            kind.name(),
            missing.join(", ")
        ))
    })?;
    let http = confab_channels::http_client(state.settings.provider_timeout);
    let Probe { ok, status, detail } = config.probe(&http).await;
    Ok(Json(ProbeOut { ok, status, detail }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_made_from_names() {
        assert_eq!(slug_of("Acme Support!"), "acme-support");
        assert_eq!(slug_of("  ¡Hola, Café 2!  "), "hola-caf-2");
        assert_eq!(slug_of("42 Shop"), "bot-42-shop");
        assert_eq!(slug_of("!!!"), "bot");
        assert!(slug_of(&"x".repeat(100)).len() <= SLUG_MAX);
        for name in ["Acme Support!", "42 Shop", "!!!", "ÄÖÜ"] {
            assert!(check_slug(&slug_of(name)).is_ok(), "{name}");
        }
        assert!(check_slug("1abc").is_err());
        assert!(check_slug("status").is_err());
        assert_eq!(slug_of("Status"), "status-bot");
        assert!(check_slug("Abc").is_err());
    }
}
