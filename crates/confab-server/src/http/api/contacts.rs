use axum::Json;
use axum::extract::{Path, Query, State};
use confab_model::PhoneNumber;
use confab_store::{
    Contact, ContactCursor, ContactFilter, ContactOrder, ContactPatch, MessageFilter,
};
use serde::{Deserialize, Serialize};

use super::messages::{MessageOut, check_len};
use super::scope::{BotScope, Id};
use super::{Body, Page, cursor, limit};
use crate::app::AppState;
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};

#[derive(Serialize, utoipa::ToSchema)]
pub struct ContactOut {
    pub id: i64,
    /// E.164, e.g. `+14155552671`.
    pub phone: String,
    pub profile_name: Option<String>,
    pub first_seen_at: String,
    pub last_seen_at: String,
    /// The last message from the contact; WhatsApp lets us answer freely for
    /// 24 hours after it.
    pub last_inbound_at: Option<String>,
    pub service_window_open: bool,
    pub unread_count: i64,
    pub opted_out: bool,
    pub blocked: bool,
    /// A test contact of the console's simulator: not in the inbox's
    /// list, nor in a schedule's or a broadcast's audience.
    pub test: bool,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub created_at: String,
    pub updated_at: String,
    /// The latest message to or from the contact.
    pub last_message: Option<LastMessageOut>,
    /// The contact's latest flow run, if any.
    pub last_run: Option<LastRunOut>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LastRunOut {
    pub flow: String,
    /// As a run's status: `waiting_input`, `handed_off`, `completed`, ...
    pub status: String,
}

/// A conversation's latest message, as a list of them shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LastMessageOut {
    pub id: i64,
    /// `inbound` or `outbound`.
    pub direction: String,
    pub kind: String,
    /// Its first 200 characters.
    pub text: Option<String>,
    pub status: String,
    pub created_at: String,
}

/// How much of the latest message's text a contact carries.
const LAST_TEXT_CHARS: usize = 200;

pub const WINDOW_MS: i64 = 24 * 3600 * 1000;

impl ContactOut {
    pub fn new(c: Contact, now_ms: i64) -> ContactOut {
        ContactOut {
            id: c.id,
            phone: c.phone,
            profile_name: c.profile_name,
            first_seen_at: rfc3339(c.first_seen_ms),
            last_seen_at: rfc3339(c.last_seen_ms),
            last_inbound_at: c.last_inbound_ms.map(rfc3339),
            service_window_open: c.last_inbound_ms.is_some_and(|t| now_ms - t < WINDOW_MS),
            unread_count: c.unread_count,
            opted_out: c.opted_out,
            blocked: c.blocked,
            test: c.test,
            tags: c.tags,
            attributes: c.attributes,
            created_at: rfc3339(c.created_ms),
            updated_at: rfc3339(c.updated_ms),
            last_message: c.last_message.map(|m| LastMessageOut {
                id: m.id,
                direction: m.direction,
                kind: m.kind,
                text: m.text.map(|t| match t.char_indices().nth(LAST_TEXT_CHARS) {
                    Some((at, _)) => format!("{}…", &t[..at]),
                    None => t,
                }),
                status: m.status,
                created_at: rfc3339(m.created_ms),
            }),
            last_run: c.last_run.map(|(flow, status)| LastRunOut { flow, status }),
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Part of the phone number or profile name. Letters A-Z match in
    /// either case, other characters as written; `%` and `_` are themselves.
    /// A `+` in a query string is a space, so `?search=+2712` searches for
    /// `2712` (leading and trailing spaces are ignored), which finds the same
    /// numbers; send `%2B2712` for the `+` itself.
    pub search: Option<String>,
    /// Contacts with this tag; A-Z match in either case.
    pub tag: Option<String>,
    pub opted_out: Option<bool>,
    /// Only the simulator's test contacts (`true`), or none of them (`false`).
    pub test: Option<bool>,
    /// `created` (the default): newest contacts first; `activity`: the
    /// contacts who wrote last first (an inbox; what the bot sends does not
    /// move a contact up).
    #[param(inline)]
    pub order: Option<Order>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, Clone, Copy, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    #[default]
    Created,
    Activity,
}

/// A page of contacts in activity order ends at a contact last seen at a
/// time: the cursor is both, `time.contact`.
fn activity_cursor(c: &Contact) -> String {
    format!("{}.{}", c.last_seen_ms, c.id)
}

fn parse_cursor(c: Option<&str>) -> ApiResult<Option<ContactCursor>> {
    let Some(c) = c else { return Ok(None) };
    let bad = || ApiError::BadRequest("cursor is not one this API gave out".into());
    let number = |s: &str| s.parse::<i64>().map_err(|_| bad());
    // Either order reads the other's form: a bare id in activity order
    // starts from the contacts seen last; `time.contact` in creation order
    // goes on after the contact.
    let (last_seen_ms, id) = match c.split_once('.') {
        Some((seen, id)) => (number(seen)?, number(id)?),
        None => (i64::MAX, cursor(Some(c))?.unwrap_or_default()),
    };
    Ok(Some(ContactCursor { last_seen_ms, id }))
}

/// List contacts, newest first.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", params(ListQuery),
    responses((status = 200, body = Page<ContactOut>), (status = 401, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    bot: BotScope,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<ContactOut>>> {
    let limit = limit(q.limit)?;
    let order = q.order.unwrap_or_default();
    let rows = state
        .store
        .contacts(&ContactFilter {
            bot_id: Some(bot.id()),
            search: q
                .search
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            tag: q.tag,
            opted_out: q.opted_out,
            test: q.test,
            order: match order {
                Order::Created => ContactOrder::Created,
                Order::Activity => ContactOrder::Activity,
            },
            after: parse_cursor(q.cursor.as_deref())?,
            limit: limit + 1,
        })
        .await?;
    let now = state.clock.now_ms();
    Ok(Json(Page::with_cursor(
        rows,
        limit,
        |c| match order {
            Order::Created => c.id.to_string(),
            Order::Activity => activity_cursor(c),
        },
        |c| ContactOut::new(c, now),
    )))
}

/// One contact.
#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = String, Path, description = "contact id, or phone number like +14155552671")),
    responses((status = 200, body = ContactOut), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Id { id: key }): Path<Id<String>>,
) -> ApiResult<Json<ContactOut>> {
    let c = resolve(&state, &bot, &key).await?;
    Ok(Json(ContactOut::new(c, state.clock.now_ms())))
}

/// The contact of `bot` a path names: by id, or by phone number in
/// international form (`/contacts/+27123456789/read`).
pub async fn resolve(state: &AppState, bot: &BotScope, key: &str) -> ApiResult<Contact> {
    let missing = || ApiError::NotFound(format!("no contact {key}"));
    // Rust's integer parse takes a leading '+', which marks a phone here.
    if let Some(id) = key
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| key.parse::<i64>().ok())
        .flatten()
    {
        return match state.store.contact(id).await {
            Err(confab_store::StoreError::NotFound) => Err(missing()),
            Ok(c) if c.bot_id != bot.id() => Err(missing()),
            other => Ok(other?),
        };
    }
    if !key_shaped(key) {
        return Err(ApiError::BadRequest(format!(
            "'{key}' is neither a contact id nor a phone number like +14155552671"
        )));
    }
    // Shaped like a number but not one: no contact can have it.
    let Ok(phone) = PhoneNumber::parse(key) else {
        return Err(missing());
    };
    state
        .store
        .contact_by_phone(bot.id(), phone.as_str())
        .await?
        .ok_or_else(missing)
}

/// A phone number a query filters by: 400 when it is not shaped like one
/// (the OpenAPI pattern); none when it is shaped like one but is no
/// number, which no contact can have.
pub fn phone_filter(name: &str, key: &str) -> ApiResult<Option<PhoneNumber>> {
    if !key_shaped(key) {
        return Err(ApiError::BadRequest(format!(
            "{name}: '{key}' is not a phone number like +14155552671"
        )));
    }
    Ok(PhoneNumber::parse(key).ok())
}

/// What a contact in a path may look like (the OpenAPI document says the
/// same as [`CONTACT_KEY_PATTERN`]): an id, or a phone number with an
/// optional `+` and spaces, dots, dashes or brackets between its digits.
fn key_shaped(key: &str) -> bool {
    let rest = key.strip_prefix('+').unwrap_or(key);
    rest.starts_with(|c: char| c.is_ascii_digit())
        && rest
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '(' | ')' | '.' | '-'))
}

pub const CONTACT_KEY_PATTERN: &str = r"^\+?[0-9][0-9 ().-]*$";

#[cfg(test)]
#[test]
fn the_key_shape_and_its_pattern_agree() {
    let re = regex_lite(CONTACT_KEY_PATTERN);
    for key in ["12", "+14155552671", "+1 (415) 555-2671", "0", "+1.2"] {
        assert!(key_shaped(key) && re(key), "{key}");
    }
    for key in ["", "+", "abc", "+x1", "1a", " 1", "++1", "1/2"] {
        assert!(!key_shaped(key) && !re(key), "{key}");
    }
}

/// The pattern as a JSON Schema validator would read it (ECMA-262 regexes
/// agree with Rust's here).
#[cfg(test)]
fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
    let re = regex::Regex::new(pattern).unwrap();
    move |s| re.is_match(s)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactUpdate {
    pub profile_name: Option<String>,
    pub opted_out: Option<bool>,
    pub blocked: Option<bool>,
    pub tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Change a contact's name, flags, tags or attributes; fields left out stay.
/// Opting a contact out or back in fires the bot's `opt_out`/`opt_in`
/// triggers, with `source` "api".
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = String, Path, description = "contact id, or phone number like +14155552671")), request_body = ContactUpdate,
    responses((status = 200, body = ContactOut), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Id { id: key }): Path<Id<String>>,
    Body(u): Body<ContactUpdate>,
) -> ApiResult<Json<ContactOut>> {
    for tag in u.tags.iter().flatten() {
        check_len("a tag", tag, 64)?;
    }
    if let Some(name) = &u.profile_name {
        check_len("profile_name", name, 256)?;
    }
    let patch = ContactPatch {
        profile_name: u.profile_name,
        // Set through the runtime, which fires opt_out/opt_in triggers.
        opted_out: None,
        blocked: u.blocked,
        tags: u
            .tags
            .map(|t| t.into_iter().map(|s| s.trim().to_string()).collect()),
        attributes: u.attributes,
    };
    let id = resolve(&state, &bot, &key).await?.id;
    if let Some(opted_out) = u.opted_out {
        state.runtime.set_opted_out(id, opted_out).await?;
    }
    let now = state.clock.now_ms();
    let c = state.store.update_contact(id, &patch, now).await?;
    Ok(Json(ContactOut::new(c, now)))
}

/// Mark every message from the contact as read.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/read", tag = "contacts", params(("id" = String, Path, description = "contact id, or phone number like +14155552671")),
    responses((status = 200, body = ContactOut), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn mark_read(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Id { id: key }): Path<Id<String>>,
) -> ApiResult<Json<ContactOut>> {
    let id = resolve(&state, &bot, &key).await?.id;
    let now = state.clock.now_ms();
    let c = state.store.mark_read(id, now).await?;
    Ok(Json(ContactOut::new(c, now)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    pub limit: Option<i64>,
    /// Messages older than this message id (or `next_cursor` of the last page).
    pub before: Option<String>,
    pub cursor: Option<String>,
}

/// The contact's messages in both directions, newest first.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/messages", tag = "contacts", params(("id" = String, Path, description = "contact id, or phone number like +14155552671"), HistoryQuery),
    responses((status = 200, body = Page<MessageOut>), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Id { id: key }): Path<Id<String>>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<Page<MessageOut>>> {
    let id = resolve(&state, &bot, &key).await?.id;
    let limit = limit(q.limit)?;
    // `before` wins when both are given; both must read.
    let before = cursor(q.before.as_deref())?.or(cursor(q.cursor.as_deref())?);
    let rows = state
        .store
        .messages(&MessageFilter {
            contact_id: Some(id),
            before_id: before,
            limit: limit + 1,
            ..Default::default()
        })
        .await?;
    let ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
    let mut ai = state.store.ai_calls_of(&ids).await?;
    Ok(Json(Page::new(
        rows,
        limit,
        |m| m.id,
        |m| {
            let calls = ai.remove(&m.id).unwrap_or_default();
            MessageOut {
                ai: calls,
                ..m.into()
            }
        },
    )))
}
