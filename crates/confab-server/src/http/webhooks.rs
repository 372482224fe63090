//! Provider webhooks: verify, parse, store durably, then acknowledge.
//!
//! Every path answers 403 and stores nothing when a signature is missing or
//! wrong, and 4xx with a clear problem when the body is not what the provider
//! sends. A 2xx is only given after the message is committed.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use confab_channels::{meta, twilio};
use confab_model::{Channel, RejectedInbound};
use serde::Deserialize;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::ingest::IngestError;
use crate::origin::Origin;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/twilio", post(twilio_inbound))
        .route("/webhooks/twilio/status", post(twilio_status))
        .route("/webhooks/meta", get(meta_handshake).post(meta_inbound))
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

/// Reads a Twilio form body and checks its signature.
fn twilio_form(
    state: &AppState,
    origin: &Origin,
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
) -> ApiResult<Vec<(String, String)>> {
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
    if let Some(token) = &state.settings.twilio_auth_token {
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
            tracing::warn!(%url, "Twilio signature does not match; is PUBLIC_URL right?");
            return Err(ApiError::Forbidden(
                "X-Twilio-Signature does not match".into(),
            ));
        }
    }
    Ok(params)
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
    event: &'static str,
    required: &[&str],
    parse: TwilioParser<T>,
) -> ApiResult<Parsed<T>> {
    let (origin, headers, uri, body) = request;
    let params = twilio_form(state, origin, headers, uri, body)?;
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
        Ok(parsed) => return Ok(Parsed::Usable(parsed)),
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
    Ok(Parsed::Rejected)
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
/// `X-Twilio-Signature`). Answers TwiML.
#[utoipa::path(post, path = "/webhooks/twilio", tag = "webhooks",
    request_body(content_type = "application/x-www-form-urlencoded", content = Object),
    responses((status = 200, content_type = "text/xml"), (status = 400, body = crate::error::Problem), (status = 403, body = crate::error::Problem)))]
pub async fn twilio_inbound(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Response> {
    let msg = match twilio_parse(
        &state,
        (&origin, &headers, &uri, &body),
        "message",
        &["From", "MessageSid"],
        twilio::parse_inbound,
    )
    .await?
    {
        Parsed::Usable(m) => m,
        Parsed::Rejected => return Ok(twiml(twilio::twiml(&[]))),
    };
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

/// A delivery status callback from Twilio (`MessageSid`, `MessageStatus`, `ErrorCode`).
#[utoipa::path(post, path = "/webhooks/twilio/status", tag = "webhooks",
    request_body(content_type = "application/x-www-form-urlencoded", content = Object),
    responses((status = 200, content_type = "text/xml"), (status = 400, body = crate::error::Problem), (status = 403, body = crate::error::Problem)))]
pub async fn twilio_status(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Response> {
    let update = match twilio_parse(
        &state,
        (&origin, &headers, &uri, &body),
        "status",
        &["MessageSid", "MessageStatus"],
        twilio::parse_status,
    )
    .await?
    {
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
/// `hub.verify_token` matches.
#[utoipa::path(get, path = "/webhooks/meta", tag = "webhooks",
    params(("hub.mode" = String, Query), ("hub.verify_token" = String, Query), ("hub.challenge" = String, Query)),
    responses((status = 200, content_type = "text/plain"), (status = 403, body = crate::error::Problem)))]
pub async fn meta_handshake(
    State(state): State<AppState>,
    Query(q): Query<Handshake>,
) -> ApiResult<String> {
    let expected = state.settings.meta_verify_token.as_deref().ok_or_else(|| {
        ApiError::Forbidden("WHATSAPP_WEBHOOK_VERIFY_TOKEN is not configured".into())
    })?;
    meta::verify_handshake(
        q.mode.as_deref(),
        q.token.as_deref(),
        q.challenge.as_deref(),
        expected,
    )
    .ok_or_else(|| {
        ApiError::Forbidden("verification failed: wrong hub.mode or hub.verify_token".into())
    })
}

/// Messages and statuses from the Meta WhatsApp Cloud API, batched, signed
/// with `X-Hub-Signature-256`.
#[utoipa::path(post, path = "/webhooks/meta", tag = "webhooks", request_body(content_type = "application/json", content = Object),
    responses((status = 200, content_type = "text/plain"), (status = 400, body = crate::error::Problem), (status = 403, body = crate::error::Problem)))]
pub async fn meta_inbound(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<&'static str> {
    if let Some(secret) = &state.settings.meta_app_secret {
        let given = headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok());
        let Some(given) = given else {
            outcome(Channel::Meta, "unsigned");
            return Err(ApiError::Forbidden("missing X-Hub-Signature-256".into()));
        };
        if !meta::verify_signature(secret, &body, given) {
            outcome(Channel::Meta, "forged");
            return Err(ApiError::Forbidden(
                "X-Hub-Signature-256 does not match".into(),
            ));
        }
    }
    let mut batch = meta::parse_webhook(&body).map_err(|e| {
        outcome(Channel::Meta, "bad_request");
        ApiError::BadRequest(e.to_string())
    })?;
    // An id no provider would send is kept aside like any unusable event,
    // rather than failing the batch and the good events in it.
    let (messages, too_long): (Vec<_>, Vec<_>) = std::mem::take(&mut batch.messages)
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
    keep_rejected(&state, std::mem::take(&mut batch.rejected)).await?;
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
