//! Provider webhooks: verify, parse, store durably, then acknowledge.
//!
//! Every kind of channel is handled the same way, through its
//! [`Webhooks`] (the channels crate's registry): the request is read, the
//! bot found (named in the path, or by the address it was sent to), the
//! signature checked with that bot's secret, the events parsed, stored,
//! and answered. Every path answers 403 and stores nothing when a signature
//! is missing or wrong, 404 for no bot, and 4xx with a clear problem when
//! the body is not what the provider sends. A 2xx is only given after what
//! it carried is committed.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use confab_channels::webhook::{
    self, Handshake, Hook, MAX_PROVIDER_ID, Request, WebhookError, Webhooks,
};
use confab_model::{Channel, RejectedInbound};
use serde_json::{Map, Value, json};
use std::sync::Arc;

use crate::app::AppState;
use crate::bots::BotEntry;
use crate::error::{ApiError, ApiResult};
use crate::ingest::IngestError;
use crate::origin::Origin;

/// A webhook's path: `/webhooks/<kind>[/{bot}][/status]`.
fn path(w: &dyn Webhooks, hook: Hook, of_bot: bool) -> String {
    let bot = if of_bot { "/{bot}" } else { "" };
    let status = if hook == Hook::Status { "/status" } else { "" };
    format!("/webhooks/{}{bot}{status}", w.channel().as_str())
}

pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for w in webhook::all() {
        for &hook in w.hooks() {
            router = router
                .route(
                    &path(w, hook, false),
                    post(
                        move |State(state): State<AppState>,
                              origin: Origin,
                              headers: HeaderMap,
                              uri: Uri,
                              body: Bytes| async move {
                            receive(&state, w, hook, None, (&origin, &headers, &uri, &body)).await
                        },
                    ),
                )
                .route(
                    &path(w, hook, true),
                    post(
                        move |State(state): State<AppState>,
                              Path(params): Path<Vec<(String, String)>>,
                              origin: Origin,
                              headers: HeaderMap,
                              uri: Uri,
                              body: Bytes| async move {
                            let bot = params.into_iter().find(|(k, _)| k == "bot").map(|(_, v)| v);
                            let req = (&origin, &headers, &uri, &body[..]);
                            receive(&state, w, hook, bot.as_deref(), req).await
                        },
                    ),
                );
        }
        if w.handshake_with().is_some() {
            router = router
                .route(
                    &path(w, Hook::Inbound, false),
                    get(
                        move |State(state): State<AppState>, Query(q): Query<Handshake>| async move {
                            handshake(w, state.bots.all(), &q)
                        },
                    ),
                )
                .route(
                    &path(w, Hook::Inbound, true),
                    get(
                        move |State(state): State<AppState>,
                              Path(params): Path<Vec<(String, String)>>,
                              Query(q): Query<Handshake>| async move {
                            let key = params.into_iter().find(|(k, _)| k == "bot").map(|(_, v)| v);
                            let bot = webhook_bot(&state, w.channel(), key.as_deref(), &[])?;
                            handshake(w, vec![bot], &q)
                        },
                    ),
                );
        }
    }
    // The paths the Python AI bot this replaces told Twilio to call, so
    // a sender configured for it keeps working.
    router.route("/webhook", get(legacy_webhook_alive).post(legacy_webhook))
}

/// Says the webhook is there (what the earlier Python AI bot offered for
/// checking it).
#[utoipa::path(get, path = "/webhook", tag = "webhooks",
    responses((status = 200, body = Object, example = json!({"status": "ok", "post": "Twilio inbound messages"}))))]
pub async fn legacy_webhook_alive() -> axum::Json<Value> {
    axum::Json(json!({"status": "ok", "post": "Twilio inbound messages"}))
}

/// The earlier Python AI bot's Twilio webhook: the same as
/// `POST /webhooks/twilio`, so a sender configured for it keeps working.
#[utoipa::path(post, path = "/webhook", tag = "webhooks",
    request_body(content_type = "application/x-www-form-urlencoded", content = Object),
    responses((status = 200, content_type = "text/xml"), (status = 403, body = crate::error::Problem)))]
pub async fn legacy_webhook(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Response> {
    let w = webhook::of(Channel::Twilio).ok_or_else(|| ApiError::internal("no Twilio webhooks"))?;
    receive(
        &state,
        w,
        Hook::Inbound,
        None,
        (&origin, &headers, &uri, &body),
    )
    .await
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

/// A refused request, counted.
fn refused(channel: Channel, e: WebhookError) -> ApiError {
    outcome(channel, e.outcome());
    match e {
        WebhookError::ContentType(m) => ApiError::UnsupportedMediaType(m),
        WebhookError::Malformed(m) => ApiError::BadRequest(m),
        WebhookError::Unsigned(m) | WebhookError::Forged(m) => ApiError::Forbidden(m),
    }
}

/// The URL the provider signed: the configured public URL, or the one the
/// request was addressed to (its `Host`; behind a trusted proxy, what the
/// proxy says in `X-Forwarded-Proto`/`-Host`).
fn public_url(state: &AppState, origin: &Origin, uri: &Uri) -> String {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    if let Some(base) = &state.settings.public_url {
        return format!("{base}{path}");
    }
    let host = origin.host.as_deref().unwrap_or("localhost");
    format!("{}://{host}{path}", origin.scheme)
}

/// A webhook for a bot there is not: 404, nothing stored.
fn no_bot(channel: Channel, what: String) -> ApiError {
    outcome(channel, "unknown_bot");
    ApiError::NotFound(what)
}

/// The bot a webhook is for: the one its path names, else the one with
/// the first address it was sent to (see `Directory::route`).
fn webhook_bot(
    state: &AppState,
    channel: Channel,
    named: Option<&str>,
    addresses: &[String],
) -> ApiResult<Arc<BotEntry>> {
    match named {
        Some(key) => state
            .bots
            .find(key)
            .ok_or_else(|| no_bot(channel, format!("no bot {key}"))),
        None => {
            let address = addresses.first().map(String::as_str);
            state.bots.route(channel, address).ok_or_else(|| {
                no_bot(
                    channel,
                    format!(
                        "no bot has the {channel} address {}",
                        address.unwrap_or("(none given)")
                    ),
                )
            })
        }
    }
}

/// The bots a request is for: the one its path names, or those of the
/// addresses it names (a batch may name several numbers of one app).
fn webhook_bots(
    state: &AppState,
    channel: Channel,
    named: Option<&str>,
    addresses: &[String],
) -> ApiResult<Vec<Arc<BotEntry>>> {
    if named.is_some() || addresses.len() <= 1 {
        return Ok(vec![webhook_bot(state, channel, named, addresses)?]);
    }
    let mut bots: Vec<Arc<BotEntry>> = Vec::new();
    for a in addresses {
        if let Some(bot) = state.bots.route(channel, Some(a))
            && !bots.iter().any(|b| b.id() == bot.id())
        {
            bots.push(bot);
        }
    }
    if bots.is_empty() {
        return Err(no_bot(
            channel,
            format!("no bot has the {channel} address {}", addresses.join(", ")),
        ));
    }
    Ok(bots)
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

/// Set aside, with why, what is for no bot or carries an id no provider
/// would send: the rest of the batch is taken.
fn set_aside(
    channel: Channel,
    m: &confab_model::InboundMessage,
    reason: String,
) -> RejectedInbound {
    RejectedInbound {
        channel,
        event: Hook::Inbound.event(),
        provider_message_id: Some(m.provider_message_id.clone())
            .filter(|id| id.chars().count() <= MAX_PROVIDER_ID),
        reason,
        payload: json!({"id": m.provider_message_id, "from": m.from.as_str()}).to_string(),
    }
}

fn check_id(channel: Channel, id: &str) -> ApiResult<()> {
    if id.chars().count() > MAX_PROVIDER_ID {
        outcome(channel, "bad_request");
        return Err(ApiError::BadRequest(format!(
            "message id is longer than {MAX_PROVIDER_ID} characters"
        )));
    }
    Ok(())
}

fn answer(w: &dyn Webhooks, inline: Option<String>) -> Response {
    let (content_type, body) = w.answer(inline);
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// One webhook request of any kind: read, route, verify, parse, store,
/// answer.
async fn receive(
    state: &AppState,
    w: &'static dyn Webhooks,
    hook: Hook,
    named: Option<&str>,
    (origin, headers, uri, body): (&Origin, &HeaderMap, &Uri, &[u8]),
) -> ApiResult<Response> {
    let channel = w.channel();
    let url = public_url(state, origin, uri);
    let req = Request {
        headers,
        body,
        url: &url,
    };
    let incoming = w.read(hook, &req).map_err(|e| refused(channel, e))?;
    // Whose secret checks it: the bot the path names, or the bots of the
    // addresses it names (read before it is trusted, to know).
    let addresses = w.addresses(&incoming, &req);
    let bots = webhook_bots(state, channel, named, &addresses)?;
    for bot in &bots {
        if let Some(secret) = signing_secret(bot, channel, w.signed_with())? {
            w.verify(secret, &incoming, &req).map_err(|e| {
                tracing::warn!(bot = %bot.slug(), "{channel} webhook refused: {e}");
                refused(channel, e)
            })?;
        }
    }
    let mut batch = w.parse(incoming, &req).map_err(|e| refused(channel, e))?;
    // A lone message with an id no provider would send is refused; in a
    // batch, it is set aside like any unusable event, as is one for an
    // address no bot has, so that the rest of the batch is taken.
    if let [lone] = batch.messages.as_slice() {
        check_id(channel, &lone.provider_message_id)?;
    }
    let mut messages = Vec::with_capacity(batch.messages.len());
    for mut m in std::mem::take(&mut batch.messages) {
        if m.provider_message_id.chars().count() > MAX_PROVIDER_ID {
            let reason = format!("message id is longer than {MAX_PROVIDER_ID} characters");
            batch.rejected.push(RejectedInbound {
                provider_message_id: None,
                ..set_aside(channel, &m, reason)
            });
            continue;
        }
        let to = batch
            .sent_to
            .get(&m.provider_message_id)
            .map(String::as_str);
        let bot = if named.is_some() || bots.len() == 1 && addresses.len() <= 1 {
            Some(bots[0].clone())
        } else {
            state.bots.route(channel, to)
        };
        match bot {
            Some(bot) => {
                m.bot_id = bot.id();
                messages.push(m);
            }
            None => {
                let reason = format!(
                    "no bot has the {channel} address {}",
                    to.unwrap_or("(none given)")
                );
                batch.rejected.push(set_aside(channel, &m, reason));
            }
        }
    }
    for id in batch.statuses.iter().map(|s| &s.provider_message_id) {
        check_id(channel, id)?;
    }
    // The provider does not send again what was acknowledged: what cannot
    // be used is kept, with why, before the answer.
    keep_rejected(state, std::mem::take(&mut batch.rejected)).await?;
    // Every message goes to the group-commit writer at once; the answer
    // waits for all of them to be stored.
    let results =
        futures::future::join_all(messages.into_iter().map(|m| state.ingest.store(m))).await;
    let mut inline = None;
    for r in results {
        let stored = r?;
        outcome(
            channel,
            if stored.duplicate {
                "duplicate"
            } else {
                "stored"
            },
        );
        // A redelivery is answered as the first delivery was.
        if w.replies_inline() {
            inline = stored.response.or(inline);
        }
    }
    if !batch.statuses.is_empty() {
        state
            .store
            .apply_statuses(&batch.statuses, state.clock.now_ms())
            .await?;
        outcome(channel, "status");
    }
    Ok(answer(w, inline))
}

/// A provider's subscription handshake: the challenge, when the token it
/// presents is one of `bots`'.
fn handshake(w: &dyn Webhooks, bots: Vec<Arc<BotEntry>>, q: &Handshake) -> ApiResult<String> {
    let field = w.handshake_with().unwrap_or_default();
    let channel = w.channel();
    let tokens: Vec<&str> = bots
        .iter()
        .filter_map(|b| b.secret(channel, field))
        .collect();
    if tokens.is_empty() {
        return Err(ApiError::Forbidden(format!(
            "no {channel} {field} is configured (in the environment, or a bot's {channel}.{field})"
        )));
    }
    tokens
        .iter()
        .find_map(|expected| w.handshake(q, expected))
        .ok_or_else(|| {
            ApiError::Forbidden(format!("verification failed: wrong hub.mode or {field}"))
        })
}

/// The webhooks of every kind of channel in the API document, as the
/// registry describes them.
pub fn document(paths: &mut Map<String, Value>) {
    let problem = |d: &str| json!({"description": d, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let bot = json!({"name": "bot", "in": "path", "required": true,
                     "description": "id or slug", "schema": {"type": "string"}});
    for w in webhook::all() {
        let kind = w.channel().as_str();
        let (answer_type, _) = w.answer(None);
        let answer_type = answer_type.split(';').next().unwrap_or(answer_type);
        for &hook in w.hooks() {
            for of_bot in [false, true] {
                let about = if of_bot {
                    format!(
                        "{} This path names the bot (id or slug), whatever address the request names; it is checked with that bot's secret.",
                        w.about(hook)
                    )
                } else {
                    w.about(hook).to_string()
                };
                let mut op = json!({
                    "tags": ["webhooks"],
                    "summary": about.split(". ").next().unwrap_or_default(),
                    "description": about,
                    "operationId": format!("webhook_{kind}_{}{}", hook.event(), if of_bot { "_of_bot" } else { "" }),
                    "requestBody": {"required": true, "content": {w.content_type(): {"schema": w.body_schema(hook)}}},
                    "responses": {
                        "200": {"description": "Stored (or kept as rejected) and acknowledged", "content": {answer_type: {}}},
                        "400": problem("Not what the provider sends"),
                        "403": problem("Unsigned, or a signature that does not match"),
                        "404": problem("No bot has the address it was sent to"),
                    }
                });
                if of_bot {
                    op["parameters"] = json!([bot.clone()]);
                }
                let entry = paths
                    .entry(path(w, hook, of_bot))
                    .or_insert_with(|| json!({}));
                entry["post"] = op;
                if hook == Hook::Inbound && w.handshake_with().is_some() {
                    let mut params = vec![
                        json!({"name": "hub.mode", "in": "query", "required": true, "schema": {"type": "string"}}),
                        json!({"name": "hub.verify_token", "in": "query", "required": true, "schema": {"type": "string"}}),
                        json!({"name": "hub.challenge", "in": "query", "required": true, "schema": {"type": "string"}}),
                    ];
                    if of_bot {
                        params.insert(0, bot.clone());
                    }
                    entry["get"] = json!({
                        "tags": ["webhooks"],
                        "summary": format!("The {kind} subscription handshake"),
                        "description": "Echoes `hub.challenge` when `hub.verify_token` is a bot's verify token.",
                        "operationId": format!("webhook_{kind}_handshake{}", if of_bot { "_of_bot" } else { "" }),
                        "parameters": params,
                        "responses": {
                            "200": {"description": "The challenge", "content": {"text/plain": {}}},
                            "403": problem("Not a verify token of a bot"),
                            "404": problem("No such bot"),
                        }
                    });
                }
            }
        }
    }
}
