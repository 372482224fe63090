use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use confab_model::{
    Button, Channel, DeliveryStatus, Direction, ListSection, MessageKind, OutboundContent,
    PhoneNumber, Template,
};
use confab_store::{Contact, Message, MessageFilter, NewOutbound};
use serde::{Deserialize, Serialize};

use super::contacts::WINDOW_MS;
use super::scope::{BotScope, Id};
use super::{Body, Page, cursor, limit};
use crate::app::AppState;
use crate::clock::{parse_time, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::message_templates::Named;

/// A message as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageOut {
    pub id: i64,
    pub contact_id: i64,
    /// `twilio` or `meta`.
    pub channel: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// text, image, audio, video, document, sticker, location, contacts,
    /// interactive, button, template, reaction or unsupported.
    pub kind: String,
    pub text: Option<String>,
    /// What was sent (outbound): its buttons, list rows or template.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub content: Option<confab_model::OutboundContent>,
    #[schema(value_type = Vec<Object>)]
    pub media: Vec<confab_model::Media>,
    /// Location, tapped reply id, replied-to message id, shared contacts.
    #[schema(value_type = Object)]
    pub extra: confab_model::Extra,
    /// received (inbound); queued, accepted, sent, delivered, read, failed,
    /// undelivered (outbound).
    pub status: String,
    pub provider_message_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub error: Option<confab_model::ProviderError>,
    pub created_at: String,
    pub updated_at: String,
    /// The AI calls made to answer it (one message's view and a contact's
    /// history).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub ai: Vec<confab_store::AiCall>,
    /// Its media as fetched and stored, with a voice note's transcript or a
    /// PDF's text (one message's view only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub stored_media: Vec<confab_store::StoredMedia>,
}

impl From<Message> for MessageOut {
    fn from(m: Message) -> MessageOut {
        MessageOut {
            id: m.id,
            contact_id: m.contact_id,
            channel: m.channel.as_str().into(),
            direction: m.direction.as_str().into(),
            kind: m.kind.as_str().into(),
            text: m.text,
            content: m.content,
            media: m.media,
            extra: m.extra,
            status: m.status.as_str().into(),
            provider_message_id: m.provider_message_id,
            error: m.error,
            created_at: rfc3339(m.created_ms),
            updated_at: rfc3339(m.updated_ms),
            ai: Vec::new(),
            stored_media: Vec::new(),
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub contact_id: Option<i64>,
    /// The contact's phone number, in international form.
    pub phone: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: Option<String>,
    pub status: Option<String>,
    pub channel: Option<String>,
    /// Created at or after (RFC 3339 or Unix milliseconds).
    pub since: Option<String>,
    /// Created before (RFC 3339 or Unix milliseconds).
    pub until: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

pub(super) fn parse_enum<T>(
    name: &str,
    v: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &str,
) -> ApiResult<Option<T>> {
    v.map(|s| {
        parse(s).ok_or_else(|| ApiError::BadRequest(format!("{name} must be one of {allowed}")))
    })
    .transpose()
}

fn parse_when(name: &str, v: Option<&str>) -> ApiResult<Option<i64>> {
    v.map(|s| {
        parse_time(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{name} must be an RFC 3339 time or Unix milliseconds"
            ))
        })
    })
    .transpose()
}

/// Messages in both directions, newest first, filtered.
#[utoipa::path(get, path = "/api/v1/messages", tag = "messages", params(ListQuery),
    responses((status = 200, body = Page<MessageOut>), (status = 400, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    bot: BotScope,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<MessageOut>>> {
    let limit = limit(q.limit)?;
    // Every parameter is checked before any is used.
    let mut filter = MessageFilter {
        bot_id: Some(bot.id()),
        contact_id: q.contact_id,
        direction: parse_enum(
            "direction",
            q.direction.as_deref(),
            Direction::parse,
            "inbound, outbound",
        )?,
        status: parse_enum(
            "status",
            q.status.as_deref(),
            DeliveryStatus::parse,
            "received, queued, accepted, sent, delivered, read, failed, undelivered",
        )?,
        channel: parse_enum(
            "channel",
            q.channel.as_deref(),
            Channel::parse,
            "twilio, meta, simulator",
        )?,
        since_ms: parse_when("since", q.since.as_deref())?,
        until_ms: parse_when("until", q.until.as_deref())?,
        before_id: cursor(q.cursor.as_deref())?,
        limit: limit + 1,
    };
    let phone = q
        .phone
        .as_deref()
        .map(|p| super::contacts::phone_filter("phone", p))
        .transpose()?;
    if let Some(phone) = phone {
        let found = match phone {
            Some(phone) => {
                state
                    .store
                    .contact_by_phone(bot.id(), phone.as_str())
                    .await?
            }
            None => None,
        };
        match found {
            Some(c) if q.contact_id.is_none_or(|id| id == c.id) => filter.contact_id = Some(c.id),
            // Nobody with that number (or another contact id): no messages.
            _ => {
                return Ok(Json(Page {
                    items: Vec::new(),
                    next_cursor: None,
                }));
            }
        }
    }
    let rows = state.store.messages(&filter).await?;
    Ok(Json(Page::new(rows, limit, |m| m.id, MessageOut::from)))
}

/// One message.
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "messages", params(("id" = i64, Path)),
    responses((status = 200, body = MessageOut), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Id { id }): Path<Id<i64>>,
) -> ApiResult<Json<MessageOut>> {
    let mut out: MessageOut = message_of(&state, &bot, id).await?.into();
    out.ai = state
        .store
        .ai_calls_of(&[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    out.stored_media = state.store.media_of(id).await?;
    Ok(Json(out))
}

/// Message `id`, if it is one of the bot's (else not found, as if there
/// were none).
pub(crate) async fn message_of(state: &AppState, bot: &BotScope, id: i64) -> ApiResult<Message> {
    let missing = || format!("no message with id {id}");
    let m = match state.store.message(id).await {
        Ok(m) => m,
        Err(confab_store::StoreError::NotFound) => return Err(ApiError::NotFound(missing())),
        Err(e) => return Err(e.into()),
    };
    bot.owns(state.store.contact(m.contact_id).await?.bot_id, missing)?;
    Ok(m)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSpec {
    /// The label of the button that opens the list (at most 20 characters).
    pub button: String,
    #[schema(value_type = Vec<Object>)]
    pub sections: Vec<ListSection>,
}

/// What to send and to whom: `to` is one number for `POST /messages` and a
/// list of up to 10,000 for `POST /messages/bulk`. Give `text` alone, or
/// `media_url` (with `caption`), or `template`, or `text` with `buttons` or
/// `list`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Outgoing<To> {
    /// Recipients in international form (`+14155552671`).
    pub to: To,
    /// `twilio` or `meta`; optional when only one is configured.
    pub channel: Option<String>,
    pub text: Option<String>,
    pub media_url: Option<String>,
    /// image, video, audio, document or sticker; guessed from the URL if left out.
    pub media_type: Option<String>,
    pub caption: Option<String>,
    /// Twilio: `{"content_sid", "variables"}`; Meta: `{"name", "language", "components"}`.
    #[schema(value_type = Option<Object>)]
    pub template: Option<Template>,
    /// Up to 3 reply buttons `{"id", "title"}`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub buttons: Option<Vec<Button>>,
    pub list: Option<ListSpec>,
}

pub type SendRequest = Outgoing<String>;
pub type BulkRequest = Outgoing<Vec<String>>;

#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkResult {
    pub to: String,
    /// The queued message's id, when it was queued.
    pub id: Option<i64>,
    /// `queued` or `rejected`.
    pub status: String,
    /// Why this recipient was not queued.
    pub error: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkResponse {
    pub queued: usize,
    pub rejected: usize,
    pub results: Vec<BulkResult>,
}

pub const MAX_BULK: usize = 10_000;
const MAX_TEXT: usize = 4096;

fn unprocessable(s: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(s.into())
}

/// Picks the bot's channel and the number it sends from: 409 when none
/// can send.
pub fn sending_channel(
    bot: &crate::bots::BotEntry,
    requested: Option<&str>,
) -> ApiResult<(Channel, String)> {
    let sending: Vec<(Channel, String)> = bot
        .channels
        .iter()
        .filter_map(|c| Some((c.channel(), c.client.as_ref()?.sender())))
        .collect();
    let channel = match requested {
        Some(s) => {
            Channel::parse(s).ok_or_else(|| unprocessable("channel must be twilio or meta"))?
        }
        None => match sending.as_slice() {
            [(one, _)] => *one,
            [] => {
                return Err(ApiError::Conflict(format!(
                    "bot {} has no channel that can send: set the TWILIO_* or WHATSAPP_* settings (the default bot), or give it one through /api/v1/bots",
                    bot.slug()
                )));
            }
            _ => {
                return Err(unprocessable(
                    "channel is required (twilio or meta) when both are configured",
                ));
            }
        },
    };
    sending
        .into_iter()
        .find(|(c, _)| *c == channel)
        .ok_or_else(|| {
            ApiError::Conflict(format!("channel {channel} is not configured for sending"))
        })
}

pub fn check_len(name: &str, s: &str, max: usize) -> ApiResult<()> {
    let n = s.chars().count();
    if s.trim().is_empty() {
        return Err(unprocessable(format!("{name} must not be empty")));
    }
    if n > max {
        return Err(unprocessable(format!(
            "{name} is {n} characters; at most {max} are allowed"
        )));
    }
    Ok(())
}

/// Turns a request into what the outbox sends, checking it against
/// WhatsApp's limits so that the provider does not refuse it later.
pub fn content<T>(c: &Outgoing<T>, channel: Channel) -> ApiResult<OutboundContent> {
    let shapes = [
        c.media_url.is_some(),
        c.template.is_some(),
        c.buttons.is_some(),
        c.list.is_some(),
    ];
    if shapes.iter().filter(|s| **s).count() > 1 {
        return Err(unprocessable(
            "give only one of media_url, template, buttons and list",
        ));
    }
    if let Some(url) = &c.media_url {
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.contains(char::is_whitespace)
        {
            return Err(unprocessable("media_url must be an http(s) URL"));
        }
        let kind = match c.media_type.as_deref() {
            None => MessageKind::for_media_url(url),
            Some(t) => MessageKind::parse(t)
                .filter(|k| k.is_media())
                .ok_or_else(|| {
                    unprocessable("media_type must be image, video, audio, document or sticker")
                })?,
        };
        let caption = match (&c.caption, &c.text) {
            (Some(_), Some(_)) => {
                return Err(unprocessable(
                    "give the caption as caption or text, not both",
                ));
            }
            (cap, text) => cap.clone().or_else(|| text.clone()),
        };
        if let Some(cap) = &caption {
            check_len("caption", cap, 1024)?;
        }
        return Ok(OutboundContent::Media {
            kind,
            url: url.clone(),
            caption,
        });
    }
    if c.caption.is_some() || c.media_type.is_some() {
        return Err(unprocessable("caption and media_type go with media_url"));
    }
    if let Some(t) = &c.template {
        if c.text.is_some() {
            return Err(unprocessable(
                "a template carries its own text; leave text out",
            ));
        }
        t.for_channel(channel).map_err(unprocessable)?;
        return Ok(OutboundContent::Template {
            template: t.clone(),
        });
    }
    let body = c
        .text
        .clone()
        .ok_or_else(|| unprocessable("nothing to send: give text, media_url or template"))?;
    if let Some(buttons) = &c.buttons {
        check_len("text", &body, 1024)?;
        if buttons.is_empty() || buttons.len() > 3 {
            return Err(unprocessable("buttons must hold 1 to 3 buttons"));
        }
        let mut ids = HashSet::new();
        for b in buttons {
            check_len("button title", &b.title, 20)?;
            check_len("button id", &b.id, 256)?;
            if !ids.insert(&b.id) {
                return Err(unprocessable(format!("button id {:?} is used twice", b.id)));
            }
        }
        return Ok(OutboundContent::Buttons {
            body,
            buttons: buttons.clone(),
        });
    }
    if let Some(list) = &c.list {
        check_len("text", &body, 1024)?;
        check_len("list.button", &list.button, 20)?;
        let rows: Vec<_> = list.sections.iter().flat_map(|s| &s.rows).collect();
        if list.sections.is_empty()
            || list.sections.len() > 10
            || rows.is_empty()
            || rows.len() > 10
        {
            return Err(unprocessable(
                "a list needs 1 to 10 sections holding 1 to 10 rows in all",
            ));
        }
        let mut ids = HashSet::new();
        for r in rows {
            check_len("row title", &r.title, 24)?;
            check_len("row id", &r.id, 200)?;
            if let Some(d) = &r.description {
                check_len("row description", d, 72)?;
            }
            if !ids.insert(&r.id) {
                return Err(unprocessable(format!("row id {:?} is used twice", r.id)));
            }
        }
        return Ok(OutboundContent::List {
            body,
            button: list.button.clone(),
            sections: list.sections.clone(),
        });
    }
    check_len("text", &body, MAX_TEXT)?;
    Ok(OutboundContent::Text { body })
}

/// A template must be one of the bot's catalogue, with its language and
/// number of parameters: else 422 naming it, before anything is queued.
pub async fn catalogued(
    state: &AppState,
    bot_id: i64,
    content: &OutboundContent,
    channel: Channel,
) -> ApiResult<()> {
    let OutboundContent::Template { template } = content else {
        return Ok(());
    };
    let named = Named::of_send(template);
    let catalogue = state
        .store
        .templates_named(bot_id, named.name, named.content_sid)
        .await?;
    named.check(channel, &catalogue).map_err(unprocessable)
}

/// Why a recipient cannot get this message now, if they cannot.
/// WhatsApp allows free-form messages only within 24 hours of the
/// contact's last message; outside it, only templates.
fn window_open(contact: Option<&Contact>, now_ms: i64) -> bool {
    contact
        .and_then(|c| c.last_inbound_ms)
        .is_some_and(|t| now_ms - t < WINDOW_MS)
}

fn refusal(contact: Option<&Contact>, content: &OutboundContent, now_ms: i64) -> Option<String> {
    if let Some(c) = contact {
        if c.blocked {
            return Some("the contact is blocked".into());
        }
        if c.opted_out {
            return Some("the contact has opted out of messages".into());
        }
    }
    if !content.is_template() && !window_open(contact, now_ms) {
        return Some(match contact.and_then(|c| c.last_inbound_ms) {
            Some(t) => format!("the 24-hour service window is closed (the contact last wrote at {}): send a template", rfc3339(t)),
            None => "the contact has never written, so the 24-hour service window is closed: send a template".into(),
        });
    }
    None
}

/// Queue one message for sending.
#[utoipa::path(post, path = "/api/v1/messages", tag = "messages", request_body = Outgoing<String>,
    responses((status = 202, body = MessageOut), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn send(
    State(state): State<AppState>,
    bot: BotScope,
    Body(req): Body<SendRequest>,
) -> ApiResult<(StatusCode, Json<MessageOut>)> {
    let to = PhoneNumber::parse(&req.to).map_err(|e| unprocessable(format!("to: {e}")))?;
    let (channel, sender) = sending_channel(&bot.0, req.channel.as_deref())?;
    let content = content(&req, channel)?;
    catalogued(&state, bot.id(), &content, channel).await?;
    let now = state.clock.now_ms();
    let contact = state.store.contact_by_phone(bot.id(), to.as_str()).await?;
    if let Some(why) = refusal(contact.as_ref(), &content, now) {
        return Err(ApiError::Conflict(why));
    }
    let queued = state
        .store
        .enqueue_outbound(
            &[NewOutbound {
                bot_id: bot.id(),
                to,
                channel,
                sender,
                content,
                reply_to: None,
                contact_id: None,
            }],
            now,
        )
        .await?;
    state.wake.notify_one();
    let id = queued
        .first()
        .map(|q| q.message_id)
        .ok_or_else(|| ApiError::Internal("queued nothing".into()))?;
    metrics::counter!("confab_messages_queued_total", "channel" => channel.as_str()).increment(1);
    Ok((
        StatusCode::ACCEPTED,
        Json(state.store.message(id).await?.into()),
    ))
}

/// Queue one message for many recipients. Each recipient gets a result:
/// the queued message's id, or why it was not queued.
#[utoipa::path(post, path = "/api/v1/messages/bulk", tag = "messages", request_body = Outgoing<Vec<String>>,
    responses((status = 202, body = BulkResponse), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn send_bulk(
    State(state): State<AppState>,
    bot: BotScope,
    Body(req): Body<BulkRequest>,
) -> ApiResult<(StatusCode, Json<BulkResponse>)> {
    if req.to.is_empty() || req.to.len() > MAX_BULK {
        return Err(unprocessable(format!(
            "to must list 1 to {MAX_BULK} recipients"
        )));
    }
    let (channel, sender) = sending_channel(&bot.0, req.channel.as_deref())?;
    let content = content(&req, channel)?;
    catalogued(&state, bot.id(), &content, channel).await?;
    let now = state.clock.now_ms();
    let Planned {
        mut results,
        queue,
        slots,
        ..
    } = plan(&state, &bot, &req.to, (channel, &sender), &content, now).await?;
    let queued = state.store.enqueue_outbound(&queue, now).await?;
    for (slot, q) in slots.into_iter().zip(&queued) {
        results[slot].id = Some(q.message_id);
    }
    if !queued.is_empty() {
        state.wake.notify_one();
    }
    metrics::counter!("confab_messages_queued_total", "channel" => channel.as_str())
        .increment(queued.len() as u64);
    let rejected = results.len() - queued.len();
    Ok((
        StatusCode::ACCEPTED,
        Json(BulkResponse {
            queued: queued.len(),
            rejected,
            results,
        }),
    ))
}

/// A message for many recipients, each looked at: queued, or rejected
/// with why (a bad or repeated number, a blocked or opted-out contact, a
/// closed window for anything but a template).
pub struct Planned {
    pub results: Vec<BulkResult>,
    pub queue: Vec<NewOutbound>,
    /// Where each queued one's result is in `results`.
    pub slots: Vec<usize>,
    /// Recipients (neither blocked nor opted out) whose 24-hour window is
    /// closed, or who never wrote: only a template reaches them.
    pub outside_window: usize,
}

pub async fn plan(
    state: &AppState,
    bot: &BotScope,
    to: &[String],
    (channel, sender): (Channel, &str),
    content: &OutboundContent,
    now: i64,
) -> ApiResult<Planned> {
    let parsed: Vec<Result<PhoneNumber, String>> = to
        .iter()
        .map(|t| PhoneNumber::parse(t).map_err(|e| e.to_string()))
        .collect();
    let phones: Vec<&str> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().map(|p| p.as_str()))
        .collect();
    let contacts = state.store.contacts_by_phones(bot.id(), &phones).await?;

    let mut seen = HashSet::new();
    let mut results: Vec<BulkResult> = Vec::with_capacity(to.len());
    let mut queue = Vec::new();
    let mut slots = Vec::new();
    let mut outside_window = 0;
    for (raw, p) in to.iter().zip(parsed) {
        let reject = |error: String| BulkResult {
            to: raw.clone(),
            id: None,
            status: "rejected".into(),
            error: Some(error),
        };
        match p {
            Err(e) => results.push(reject(e)),
            Ok(phone) if !seen.insert(phone.clone()) => {
                results.push(reject(format!("{phone} is listed more than once")))
            }
            Ok(phone) => {
                let contact = contacts.get(phone.as_str());
                let barred = contact.is_some_and(|c| c.blocked || c.opted_out);
                outside_window += usize::from(!barred && !window_open(contact, now));
                if let Some(why) = refusal(contact, content, now) {
                    results.push(reject(why));
                    continue;
                }
                slots.push(results.len());
                results.push(BulkResult {
                    to: phone.to_string(),
                    id: None,
                    status: "queued".into(),
                    error: None,
                });
                queue.push(NewOutbound {
                    bot_id: bot.id(),
                    to: phone,
                    channel,
                    sender: sender.to_string(),
                    content: content.clone(),
                    reply_to: None,
                    contact_id: None,
                });
            }
        }
    }
    Ok(Planned {
        results,
        queue,
        slots,
        outside_window,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Content = Outgoing<()>;

    fn c() -> Content {
        Outgoing {
            to: (),
            channel: None,
            text: None,
            media_url: None,
            media_type: None,
            caption: None,
            template: None,
            buttons: None,
            list: None,
        }
    }

    #[test]
    fn content_shapes_are_checked() {
        let text = Content {
            text: Some("hi".into()),
            ..c()
        };
        assert_eq!(
            content(&text, Channel::Meta).unwrap(),
            OutboundContent::Text { body: "hi".into() }
        );
        assert!(
            content(&c(), Channel::Meta)
                .unwrap_err()
                .to_string()
                .contains("nothing to send")
        );
        let long = Content {
            text: Some("x".repeat(4097)),
            ..c()
        };
        assert!(
            content(&long, Channel::Meta)
                .unwrap_err()
                .to_string()
                .contains("4097")
        );
        let media = Content {
            media_url: Some("https://x.test/a.png".into()),
            caption: Some("look".into()),
            ..c()
        };
        assert!(matches!(
            content(&media, Channel::Twilio).unwrap(),
            OutboundContent::Media {
                kind: MessageKind::Image,
                ..
            }
        ));
        let both = Content {
            media_url: Some("https://x.test/a.png".into()),
            template: Some(Template::default()),
            ..c()
        };
        assert!(content(&both, Channel::Meta).is_err());
        let four = Content {
            text: Some("pick".into()),
            buttons: Some(
                (0..4)
                    .map(|i| Button {
                        id: i.to_string(),
                        title: "t".into(),
                    })
                    .collect(),
            ),
            ..c()
        };
        assert!(
            content(&four, Channel::Meta)
                .unwrap_err()
                .to_string()
                .contains("1 to 3")
        );
        let tpl = Content {
            template: Some(Template {
                name: Some("hello".into()),
                language: Some("en_US".into()),
                ..Default::default()
            }),
            ..c()
        };
        assert!(content(&tpl, Channel::Meta).is_ok());
        assert!(
            content(&tpl, Channel::Twilio)
                .unwrap_err()
                .to_string()
                .contains("content_sid")
        );
    }

    #[test]
    fn window_and_flags_refuse() {
        let now = 10 * WINDOW_MS;
        let text = OutboundContent::Text { body: "x".into() };
        let tpl = OutboundContent::Template {
            template: Template::default(),
        };
        let mut contact = Contact {
            id: 1,
            bot_id: confab_store::DEFAULT_BOT,
            phone: "+14155552671".into(),
            profile_name: None,
            first_seen_ms: 0,
            last_seen_ms: 0,
            last_inbound_ms: Some(now - 1000),
            last_read_ms: 0,
            unread_count: 0,
            opted_out: false,
            blocked: false,
            test: false,
            tags: vec![],
            attributes: Default::default(),
            created_ms: 0,
            updated_ms: 0,
            last_message: None,
            last_run: None,
        };
        assert_eq!(refusal(Some(&contact), &text, now), None);
        contact.last_inbound_ms = Some(now - WINDOW_MS - 1);
        assert!(
            refusal(Some(&contact), &text, now)
                .unwrap()
                .contains("window is closed")
        );
        assert_eq!(refusal(Some(&contact), &tpl, now), None);
        assert!(refusal(None, &text, now).unwrap().contains("never written"));
        contact.opted_out = true;
        assert!(
            refusal(Some(&contact), &tpl, now)
                .unwrap()
                .contains("opted out")
        );
    }
}
