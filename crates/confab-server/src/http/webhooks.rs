//! Provider webhooks: verify, parse, store durably, then acknowledge.
//!
//! Every path answers 403 and stores nothing when a signature is missing or
//! wrong, and 4xx with a clear problem when the body is not what the provider
//! sends. A 2xx is only given after the message is committed.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use confab_channels::{meta, twilio};
use confab_model::{Channel, PhoneNumber, RejectedInbound};
use serde::Deserialize;
use std::sync::Arc;

use crate::app::AppState;
use crate::bots::BotEntry;
use crate::error::{ApiError, ApiResult};
use crate::ingest::IngestError;
use crate::origin::Origin;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/twilio", post(twilio_inbound))
        .route("/webhooks/twilio/status", post(twilio_status))
        .route("/webhooks/twilio/{bot}", post(twilio_inbound_of))
        .route("/webhooks/twilio/{bot}/status", post(twilio_status_of))
        .route("/webhooks/meta", get(meta_handshake).post(meta_inbound))
        .route(
            "/webhooks/meta/{bot}",
            get(meta_handshake_of).post(meta_inbound_of),
        )
        // The paths the Python AI bot this replaces told Twilio to call, so
        // a sender configured for it keeps working.
        .route("/webhook", get(legacy_webhook_alive).post(legacy_webhook))
}

/// Says the webhook is there (what the earlier Python AI bot offered for
/// checking it).
#[utoipa::path(get, path = "/webhook", tag = "webhooks",
    responses((status = 200, body = Object, example = json!({"status": "ok", "post": "Twilio inbound messages"}))))]
pub async fn legacy_webhook_alive() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok", "post": "Twilio inbound messages"}))
}

/// The earlier Python AI bot's Twilio webhook: the same as
/// `POST /webhooks/twilio`, so a sender configured for it keeps working.
#[utoipa::path(post, path = "/webhook", tag = "webhooks",
    request_body(content_type = "application/x-www-form-urlencoded", content = Object),
    responses((status = 200, content_type = "text/xml"), (status = 403, body = crate::error::Problem)))]
pub async fn legacy_webhook(
    state: State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Response> {
    twilio_inbound(state, origin, headers, uri, body).await
}

fn outcome(channel: Channel, what: &'static str) {
    metrics::counter!("confab_webhooks_total", "channel" => channel.as_str(), "outcome" => what)
        .increment(1);
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        // The provider retries a 503, so nothing it sent is lost.
        ApiError::Unavailable(e.to_string())
    }
}

/// The URL Twilio signed: the configured public URL, or the one the request
/// was addressed to (its `Host`; behind a trusted proxy, what the proxy
/// says in `X-Forwarded-Proto`/`-Host`).
fn public_url(state: &AppState, origin: &Origin, uri: &Uri) -> String {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    if let Some(base) = &state.settings.public_url {
        return format!("{base}{path}");
    }
    let host = origin.host.as_deref().unwrap_or("localhost");
    format!("{}://{host}{path}", origin.scheme)
}

/// Twilio signs the URL as it was configured, which may or may not spell the
/// default port; its own libraries accept both forms, and so do we.
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    for (scheme, port) in [("https://", ":443"), ("http://", ":80")] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            if let Some(bare) = host.strip_suffix(port) {
                out.push(format!("{scheme}{bare}{path}"));
            } else if !host.contains(':') {
                out.push(format!("{scheme}{host}{port}{path}"));
            }
        }
    }
    out
}

/// A Twilio form's fields, in order.
type Form = Vec<(String, String)>;

/// A webhook for a bot there is not: 404, nothing stored.
fn no_bot(channel: Channel, what: String) -> ApiError {
    outcome(channel, "unknown_bot");
    ApiError::NotFound(what)
}

/// The bot a webhook is for: the one its path names, else the one with
/// the address it was sent to (see `Directory::route`).
fn webhook_bot(
    state: &AppState,
    channel: Channel,
    named: Option<&str>,
    address: Option<&str>,
) -> ApiResult<Arc<BotEntry>> {
    match named {
        Some(key) => state
            .bots
            .find(key)
            .ok_or_else(|| no_bot(channel, format!("no bot {key}"))),
        None => state.bots.route(channel, address).ok_or_else(|| {
            no_bot(
                channel,
                format!(
                    "no bot has the {channel} address {}",
                    address.unwrap_or("(none given)")
                ),
            )
        }),
    }
}

/// The secret that signs `bot`'s webhooks of `channel`. `Ok(None)`: the
/// default bot with none configured, which takes them unsigned (as when
/// there were no bots). A bot without the channel has no webhooks.
fn signing_secret<'a>(
    bot: &'a BotEntry,
    channel: Channel,
    field: &str,
) -> ApiResult<Option<&'a str>> {
    let c = bot.channel(channel);
    if let Some(p) = c.and_then(|c| c.problem.as_deref()) {
        return Err(ApiError::Unavailable(format!(
            "bot {}: the {channel} channel cannot be used: {p}",
            bot.slug()
        )));
    }
    match c.and_then(|c| c.value(field)) {
        Some(secret) => Ok(Some(secret)),
        None if bot.id() == confab_store::DEFAULT_BOT => Ok(None),
        None => Err(no_bot(
            channel,
            format!("bot {} has no {channel} channel", bot.slug()),
        )),
    }
}

/// Reads a Twilio form body, finds its bot (named, or by the number in
/// `address`: `To` for a message, `From` for a status) and checks the
/// signature with that bot's auth token.
fn twilio_form(
    state: &AppState,
    request: (&Origin, &HeaderMap, &Uri, &[u8]),
    named: Option<&str>,
    address: &str,
) -> ApiResult<(Arc<BotEntry>, Form)> {
    let (origin, headers, uri, body) = request;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        outcome(Channel::Twilio, "bad_request");
        return Err(ApiError::UnsupportedMediaType(
            "Twilio webhooks must be application/x-www-form-urlencoded".into(),
        ));
    }
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
        outcome(Channel::Twilio, "bad_request");
        ApiError::BadRequest(format!("the form body cannot be read: {e}"))
    })?;
    let number = params
        .iter()
        .find(|(k, _)| k == address)
        .and_then(|(_, v)| PhoneNumber::parse(v).ok());
    let bot = webhook_bot(
        state,
        Channel::Twilio,
        named,
        number.as_ref().map(PhoneNumber::as_str),
    )?;
    if let Some(token) = signing_secret(&bot, Channel::Twilio, "auth_token")? {
        let given = headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok());
        let Some(given) = given else {
            outcome(Channel::Twilio, "unsigned");
            return Err(ApiError::Forbidden("missing X-Twilio-Signature".into()));
        };
        let url = public_url(state, origin, uri);
        if !url_variants(&url)
            .iter()
            .any(|u| twilio::verify_signature(token, u, &params, given))
        {
            outcome(Channel::Twilio, "forged");
            tracing::warn!(%url, bot = %bot.slug(), "Twilio signature does not match; is PUBLIC_URL right?");
            return Err(ApiError::Forbidden(
                "X-Twilio-Signature does not match".into(),
            ));
        }
    }
    Ok((bot, params))
}

/// `twilio::parse_inbound` or `twilio::parse_status`.
type TwilioParser<T> = fn(&[(String, String)]) -> Result<T, confab_channels::ParseError>;

/// What a checked Twilio form turned out to be.
enum Parsed<T> {
    Usable(T),
    /// Signed and well formed, but unusable (a `From` that is not a phone
    /// number, an id too long to be real): kept as rejected; Twilio is
    /// answered 200, since it would not send it again anyway.
    Rejected,
}

/// A checked Twilio form, parsed by `parse`. A form without the fields
/// every Twilio request of its kind has (`required`) is a 400; anything
/// else it cannot use is kept as rejected.
async fn twilio_parse<T>(
    state: &AppState,
    request: (&Origin, &HeaderMap, &Uri, &[u8]),
    (named, address): (Option<&str>, &str),
    event: &'static str,
    required: &[&str],
    parse: TwilioParser<T>,
) -> ApiResult<(Arc<BotEntry>, Parsed<T>)> {
    let (bot, params) = twilio_form(state, request, named, address)?;
    let value = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    if let Some(missing) = required.iter().find(|f| value(f).is_none()) {
        outcome(Channel::Twilio, "bad_request");
        return Err(ApiError::BadRequest(format!("missing field `{missing}`")));
    }
    let reason = match parse(&params) {
        Ok(parsed) => return Ok((bot, Parsed::Usable(parsed))),
        Err(e) => e.to_string(),
    };
    tracing::warn!(%reason, "Twilio {event} rejected");
    let id = value("MessageSid")
        .filter(|id| id.chars().count() <= MAX_PROVIDER_ID)
        .map(str::to_string);
    let payload: serde_json::Map<String, serde_json::Value> = params
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    keep_rejected(
        state,
        vec![RejectedInbound {
            channel: Channel::Twilio,
            event,
            provider_message_id: id,
            reason,
            payload: serde_json::Value::Object(payload).to_string(),
        }],
    )
    .await?;
    Ok((bot, Parsed::Rejected))
}

/// Keeps what a provider sent that cannot be used, before it is answered.
async fn keep_rejected(state: &AppState, rejected: Vec<RejectedInbound>) -> ApiResult<()> {
    if rejected.is_empty() {
        return Ok(());
    }
    let channel = rejected[0].channel;
    state
        .store
        .store_rejected(&rejected, state.clock.now_ms())
        .await?;
    metrics::counter!("confab_webhooks_total", "channel" => channel.as_str(), "outcome" => "rejected")
        .increment(rejected.len() as u64);
    Ok(())
}

/// Longest provider message id accepted. Real ids are far shorter (Twilio
/// 34 characters, Meta about 60); a longer one is not from a provider and
/// would not fit the database's unique index.
const MAX_PROVIDER_ID: usize = 256;

fn check_id(channel: Channel, id: &str) -> ApiResult<()> {
    if id.chars().count() > MAX_PROVIDER_ID {
        outcome(channel, "bad_request");
        return Err(ApiError::BadRequest(format!(
            "message id is longer than {MAX_PROVIDER_ID} characters"
        )));
    }
    Ok(())
}

fn twiml(body: String) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    resp
}

/// An inbound WhatsApp message from Twilio (form-encoded, signed with
/// `X-Twilio-Signature`), for the bot with the number it was sent to
/// (`To`). Answers TwiML.
#[utoipa::path(post, path = "/webhooks/twilio", tag = "webhooks",
    request_body(content_type = "application/x-www-form-urlencoded", content = Object),
    responses((status = 200, content_type = "text/xml"), (status = 400, body = crate::error::Problem), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn twilio_inbound(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Response> {
    twilio_message(&state, (&origin, &headers, &uri, &body), None).await
}

/// An inbound WhatsApp message from Twilio for the bot the path names
/// (id or slug), whatever number it was sent to: for senders that want a
/// URL of their own. Signed with that bot's auth token.
#[utoipa::path(post, path = "/webhooks/twilio/{bot}", tag = "webhooks", params(("bot" = String, Path, description = "id or slug")),
    request_body(content_type = "application/x-www-form-urlencoded", content = Object),
    responses((status = 200, content_type = "text/xml"), (status = 400, body = crate::error::Problem), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn twilio_inbound_of(
    State(state): State<AppState>,
    Path(bot): Path<String>,
    origin: Origin,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Response> {
    twilio_message(&state, (&origin, &headers, &uri, &body), Some(&bot)).await
}

async fn twilio_message(
    state: &AppState,
    request: (&Origin, &HeaderMap, &Uri, &[u8]),
    named: Option<&str>,
) -> ApiResult<Response> {
    let (bot, parsed) = twilio_parse(
        state,
        request,
        (named, "To"),
        "message",
        &["From", "MessageSid"],
        twilio::parse_inbound,
    )
    .await?;
    let mut msg = match parsed {
        Parsed::Usable(m) => m,
        Parsed::Rejected => return Ok(twiml(twilio::twiml(&[]))),
    };
    msg.bot_id = bot.id();
    check_id(Channel::Twilio, &msg.provider_message_id)?;
    let stored = state.ingest.store(msg).await?;
    outcome(
        Channel::Twilio,
        if stored.duplicate {
            "duplicate"
        } else {
            "stored"
        },
    );
    // A redelivery is answered as the first delivery was.
    Ok(twiml(stored.response.unwrap_or_else(|| twilio::twiml(&[]))))
}

/// A delivery status callback from Twilio (`MessageSid`, `MessageStatus`,
/// `ErrorCode`), checked with the token of the bot that sent the message
/// (`From`).
#[utoipa::path(post, path = "/webhooks/twilio/status", tag = "webhooks",
    request_body(content_type = "application/x-www-form-urlencoded", content = Object),
    responses((status = 200, content_type = "text/xml"), (status = 400, body = crate::error::Problem), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn twilio_status(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Response> {
    twilio_delivery(&state, (&origin, &headers, &uri, &body), None).await
}

/// A delivery status callback from Twilio for the bot the path names.
#[utoipa::path(post, path = "/webhooks/twilio/{bot}/status", tag = "webhooks", params(("bot" = String, Path, description = "id or slug")),
    request_body(content_type = "application/x-www-form-urlencoded", content = Object),
    responses((status = 200, content_type = "text/xml"), (status = 400, body = crate::error::Problem), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn twilio_status_of(
    State(state): State<AppState>,
    Path(bot): Path<String>,
    origin: Origin,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Response> {
    twilio_delivery(&state, (&origin, &headers, &uri, &body), Some(&bot)).await
}

async fn twilio_delivery(
    state: &AppState,
    request: (&Origin, &HeaderMap, &Uri, &[u8]),
    named: Option<&str>,
) -> ApiResult<Response> {
    let (_, parsed) = twilio_parse(
        state,
        request,
        (named, "From"),
        "status",
        &["MessageSid", "MessageStatus"],
        twilio::parse_status,
    )
    .await?;
    let update = match parsed {
        Parsed::Usable(u) => u,
        Parsed::Rejected => return Ok(twiml(twilio::twiml(&[]))),
    };
    if let Some(u) = &update {
        check_id(Channel::Twilio, &u.provider_message_id)?;
    }
    if let Some(update) = update {
        state
            .store
            .apply_statuses(&[update], state.clock.now_ms())
            .await?;
    }
    outcome(Channel::Twilio, "status");
    Ok(twiml(twilio::twiml(&[])))
}

#[derive(Deserialize)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's subscription handshake: echoes `hub.challenge` when
/// `hub.verify_token` is a bot's verify token.
#[utoipa::path(get, path = "/webhooks/meta", tag = "webhooks",
    params(("hub.mode" = String, Query), ("hub.verify_token" = String, Query), ("hub.challenge" = String, Query)),
    responses((status = 200, content_type = "text/plain"), (status = 403, body = crate::error::Problem)))]
pub async fn meta_handshake(
    State(state): State<AppState>,
    Query(q): Query<Handshake>,
) -> ApiResult<String> {
    handshake(state.bots.all(), &q)
}

/// Meta's subscription handshake for the bot the path names.
#[utoipa::path(get, path = "/webhooks/meta/{bot}", tag = "webhooks",
    params(("bot" = String, Path, description = "id or slug"), ("hub.mode" = String, Query), ("hub.verify_token" = String, Query), ("hub.challenge" = String, Query)),
    responses((status = 200, content_type = "text/plain"), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn meta_handshake_of(
    State(state): State<AppState>,
    Path(bot): Path<String>,
    Query(q): Query<Handshake>,
) -> ApiResult<String> {
    let bot = webhook_bot(&state, Channel::Meta, Some(&bot), None)?;
    handshake(vec![bot], &q)
}

fn handshake(bots: Vec<Arc<BotEntry>>, q: &Handshake) -> ApiResult<String> {
    let tokens: Vec<&str> = bots
        .iter()
        .filter_map(|b| b.secret(Channel::Meta, "verify_token"))
        .collect();
    if tokens.is_empty() {
        return Err(ApiError::Forbidden(
            "no verify token is configured (WHATSAPP_WEBHOOK_VERIFY_TOKEN, or a bot's meta.verify_token)".into(),
        ));
    }
    tokens
        .iter()
        .find_map(|expected| {
            meta::verify_handshake(
                q.mode.as_deref(),
                q.token.as_deref(),
                q.challenge.as_deref(),
                expected,
            )
        })
        .ok_or_else(|| {
            ApiError::Forbidden("verification failed: wrong hub.mode or hub.verify_token".into())
        })
}

/// Messages and statuses from the Meta WhatsApp Cloud API, batched, signed
/// with `X-Hub-Signature-256`: each message is for the bot with the phone
/// number id it was sent to, and the body is checked with that bot's app
/// secret.
#[utoipa::path(post, path = "/webhooks/meta", tag = "webhooks", request_body(content_type = "application/json", content = Object),
    responses((status = 200, content_type = "text/plain"), (status = 400, body = crate::error::Problem), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn meta_inbound(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<&'static str> {
    meta_receive(&state, &headers, &body, None).await
}

/// Messages and statuses from Meta for the bot the path names, whatever
/// phone number id they name.
#[utoipa::path(post, path = "/webhooks/meta/{bot}", tag = "webhooks", params(("bot" = String, Path, description = "id or slug")),
    request_body(content_type = "application/json", content = Object),
    responses((status = 200, content_type = "text/plain"), (status = 400, body = crate::error::Problem), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn meta_inbound_of(
    State(state): State<AppState>,
    Path(bot): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<&'static str> {
    meta_receive(&state, &headers, &body, Some(&bot)).await
}

/// Checks a Meta body's signature with the app secret of every bot it is
/// for: a batch Meta sends is for the numbers of one app.
fn meta_verify(bots: &[Arc<BotEntry>], headers: &HeaderMap, body: &[u8]) -> ApiResult<()> {
    for bot in bots {
        let Some(secret) = signing_secret(bot, Channel::Meta, "app_secret")? else {
            continue;
        };
        let given = headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok());
        let Some(given) = given else {
            outcome(Channel::Meta, "unsigned");
            return Err(ApiError::Forbidden("missing X-Hub-Signature-256".into()));
        };
        if !meta::verify_signature(secret, body, given) {
            outcome(Channel::Meta, "forged");
            return Err(ApiError::Forbidden(
                "X-Hub-Signature-256 does not match".into(),
            ));
        }
    }
    Ok(())
}

async fn meta_receive(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    named: Option<&str>,
) -> ApiResult<&'static str> {
    // Whose secret checks the body: the bot the path names, or the bots of
    // the phone number ids it names (read before it is trusted, to know).
    let mut bots: Vec<Arc<BotEntry>> = Vec::new();
    match named {
        Some(_) => bots.push(webhook_bot(state, Channel::Meta, named, None)?),
        None => {
            let ids = meta::phone_number_ids(body);
            let wanted: Vec<Option<&str>> = if ids.is_empty() {
                vec![None]
            } else {
                ids.iter().map(|i| Some(i.as_str())).collect()
            };
            for id in wanted {
                if let Some(bot) = state.bots.route(Channel::Meta, id)
                    && !bots.iter().any(|b| b.id() == bot.id())
                {
                    bots.push(bot);
                }
            }
            if bots.is_empty() {
                return Err(no_bot(
                    Channel::Meta,
                    format!("no bot has the phone number id {}", ids.join(", ")),
                ));
            }
        }
    }
    meta_verify(&bots, headers, body)?;
    let mut batch = meta::parse_webhook(body).map_err(|e| {
        outcome(Channel::Meta, "bad_request");
        ApiError::BadRequest(e.to_string())
    })?;
    // Each message to its bot; one for a number no bot has (in a batch
    // with others that are known) is kept aside, like any unusable event.
    let mut messages = Vec::with_capacity(batch.messages.len());
    for mut m in std::mem::take(&mut batch.messages) {
        let to = batch
            .sent_to
            .get(&m.provider_message_id)
            .map(String::as_str);
        let bot = match named {
            Some(_) => Some(bots[0].clone()),
            None => state.bots.route(Channel::Meta, to),
        };
        match bot {
            Some(bot) => {
                m.bot_id = bot.id();
                messages.push(m);
            }
            None => batch.rejected.push(RejectedInbound {
                channel: Channel::Meta,
                event: "message",
                provider_message_id: Some(m.provider_message_id.clone())
                    .filter(|id| id.chars().count() <= MAX_PROVIDER_ID),
                reason: format!(
                    "no bot has the phone number id {}",
                    to.unwrap_or("(none given)")
                ),
                payload: serde_json::json!({"id": m.provider_message_id, "from": m.from.as_str()})
                    .to_string(),
            }),
        }
    }
    // An id no provider would send is kept aside like any unusable event,
    // rather than failing the batch and the good events in it.
    let (messages, too_long): (Vec<_>, Vec<_>) = messages
        .into_iter()
        .partition(|m| m.provider_message_id.chars().count() <= MAX_PROVIDER_ID);
    batch.messages = messages;
    batch
        .rejected
        .extend(too_long.into_iter().map(|m| {
            RejectedInbound {
                channel: Channel::Meta,
                event: "message",
                provider_message_id: None,
                reason: format!("message id is longer than {MAX_PROVIDER_ID} characters"),
                payload: serde_json::json!({"id": m.provider_message_id, "from": m.from.as_str()})
                    .to_string(),
            }
        }));
    for id in batch.statuses.iter().map(|s| &s.provider_message_id) {
        check_id(Channel::Meta, id)?;
    }
    // Meta does not send again what was acknowledged: what cannot be used
    // is kept, with why, before the answer.
    keep_rejected(state, std::mem::take(&mut batch.rejected)).await?;
    // Every message goes to the group-commit writer at once; we answer when
    // all of them are stored.
    let results =
        futures::future::join_all(batch.messages.into_iter().map(|m| state.ingest.store(m))).await;
    for r in results {
        let stored = r?;
        outcome(
            Channel::Meta,
            if stored.duplicate {
                "duplicate"
            } else {
                "stored"
            },
        );
    }
    if !batch.statuses.is_empty() {
        state
            .store
            .apply_statuses(&batch.statuses, state.clock.now_ms())
            .await?;
        outcome(Channel::Meta, "status");
    }
    Ok("OK")
}

#[cfg(test)]
mod tests {
    use super::url_variants;

    #[test]
    fn default_ports_are_tried_both_ways() {
        assert_eq!(
            url_variants("https://example.com/webhooks/twilio?x=1"),
            [
                "https://example.com/webhooks/twilio?x=1",
                "https://example.com:443/webhooks/twilio?x=1"
            ]
        );
        assert_eq!(
            url_variants("https://example.com:443/a"),
            ["https://example.com:443/a", "https://example.com/a"]
        );
        assert_eq!(
            url_variants("http://127.0.0.1:8000/a"),
            ["http://127.0.0.1:8000/a"]
        );
    }
}
