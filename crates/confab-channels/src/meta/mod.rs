//! Meta's WhatsApp Cloud API: JSON webhooks signed with
//! `X-Hub-Signature-256`, the subscription handshake, the Graph API
//! `messages` endpoint, and downloading inbound media.

use std::collections::{HashMap, HashSet};
use std::fmt;

use confab_model::{
    Button, Channel, DeliveryStatus, Extra, InboundMessage, ListSection, Location, Media,
    MessageKind, OutboundContent, PhoneNumber, ProviderError, RejectedInbound, StatusUpdate,
    TemplateSpec,
};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::http::{retry_after, snippet, status_is_retryable, transport_error};
use crate::media::{self, Auth, Credentials};
use crate::{Fetched, MediaError, MediaLimits, ParseError, SendError, Sent};

mod templates;
mod webhook;
pub use templates::{RemoteTemplate, body_component, component};
pub use webhook::MetaWebhooks;

pub const DEFAULT_API_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_API_VERSION: &str = "v23.0";

#[derive(Clone)]
pub struct MetaConfig {
    pub access_token: String,
    pub phone_number_id: String,
    /// Verifies `X-Hub-Signature-256` on webhooks.
    pub app_secret: Option<String>,
    /// The token the subscription handshake must present.
    pub verify_token: Option<String>,
    pub api_version: String,
    /// Base URL of the Graph API, without a trailing slash.
    pub api_url: String,
}

impl MetaConfig {
    pub fn new(access_token: impl Into<String>, phone_number_id: impl Into<String>) -> Self {
        MetaConfig {
            access_token: access_token.into(),
            phone_number_id: phone_number_id.into(),
            app_secret: None,
            verify_token: None,
            api_version: DEFAULT_API_VERSION.to_string(),
            api_url: DEFAULT_API_URL.to_string(),
        }
    }
}

impl fmt::Debug for MetaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("MetaConfig")
            .field("access_token", &"<redacted>")
            .field("phone_number_id", &self.phone_number_id)
            .field("app_secret", &redact(&self.app_secret))
            .field("verify_token", &redact(&self.verify_token))
            .field("api_version", &self.api_version)
            .field("api_url", &self.api_url)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Signatures and the handshake

fn hmac_sha256(key: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length (long ones are hashed), so this cannot fail.
    Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length")
}

/// `X-Hub-Signature-256` for a body: `sha256=` and the lowercase hex
/// HMAC-SHA256 of the raw body, keyed with the app secret.
pub fn signature(app_secret: &str, body: &[u8]) -> String {
    let mut mac = hmac_sha256(app_secret);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` (`sha256=<hex>`) signs `body`. Compared in constant
/// time; an empty secret never verifies.
pub fn verify_signature(app_secret: &str, body: &[u8], header: &str) -> bool {
    if app_secret.is_empty() {
        return false;
    }
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = hmac_sha256(app_secret);
    mac.update(body);
    // verify_slice compares in constant time and rejects a wrong length.
    mac.verify_slice(&given).is_ok()
}

/// Answer to Meta's subscription check (`hub.mode`, `hub.verify_token`,
/// `hub.challenge`): the challenge to echo back iff the mode is `subscribe`
/// and the token is ours. A challenge other than a short token of URL-safe
/// characters (Meta sends digits) is refused, as it is echoed verbatim.
pub fn verify_handshake(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
    expected: &str,
) -> Option<String> {
    let token_ok = match token {
        Some(t) if !expected.is_empty() => bool::from(t.as_bytes().ct_eq(expected.as_bytes())),
        _ => false,
    };
    let challenge = challenge.filter(|c| {
        !c.is_empty()
            && c.len() <= 512
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    })?;
    (mode == Some("subscribe") && token_ok).then(|| challenge.to_string())
}

// ---------------------------------------------------------------------------
// Webhooks

/// What one webhook request carried.
pub type WebhookBatch = crate::webhook::Batch;

/// The phone number ids a webhook body names (`metadata.phone_number_id`
/// of each change), read leniently and before its signature is checked:
/// they say whose secret checks it. A body they cannot be read from names
/// none.
pub fn phone_number_ids(body: &[u8]) -> Vec<String> {
    let Ok(root) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = root
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("changes").and_then(Value::as_array))
        .flatten()
        .filter_map(|c| {
            c.get("value")?
                .get("metadata")?
                .get("phone_number_id")?
                .as_str()
                .map(str::to_string)
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// A webhook body from Meta. The envelope must be well formed; a single
/// event in it that cannot be used is handed back in `rejected` rather than
/// failing the batch, since Meta would resend the whole batch and the good
/// events in it would never be taken.
pub fn parse_webhook(body: &[u8]) -> Result<WebhookBatch, ParseError> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| ParseError(format!("webhook body is not JSON: {e}")))?;
    let root = root
        .as_object()
        .ok_or_else(|| ParseError::new("webhook body is not a JSON object"))?;
    match root.get("object") {
        Some(Value::String(o)) if o == "whatsapp_business_account" => {}
        Some(Value::String(o)) => {
            return Err(ParseError(format!(
                "`object` is '{}', expected 'whatsapp_business_account'",
                o.chars().take(60).collect::<String>()
            )));
        }
        Some(_) => return Err(ParseError::new("`object` is not a string")),
        None => return Err(ParseError::missing("object")),
    }
    let entries = array_field(root, "entry", "entry")?;

    let mut batch = WebhookBatch::default();
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("entry[{i}]");
        let entry = entry
            .as_object()
            .ok_or_else(|| ParseError(format!("`{path}` is not an object")))?;
        let changes = array_field(entry, "changes", &format!("{path}.changes"))?;
        for (j, change) in changes.iter().enumerate() {
            let path = format!("{path}.changes[{j}]");
            let change = change
                .as_object()
                .ok_or_else(|| ParseError(format!("`{path}` is not an object")))?;
            if change.get("field").and_then(Value::as_str) != Some("messages") {
                batch.ignored += 1;
                continue;
            }
            // A change of the right field but the wrong shape is Meta's to
            // own: kept as rejected, like an unusable message in it.
            let parsed = change
                .get("value")
                .and_then(Value::as_object)
                .ok_or_else(|| format!("`{path}.value` is not an object"))
                .and_then(|value| parse_change(value, &format!("{path}.value"), &mut batch));
            if let Err(reason) = parsed {
                tracing::warn!(%reason, "Meta change rejected");
                batch.rejected.push(RejectedInbound {
                    channel: Channel::Meta,
                    event: "change",
                    provider_message_id: None,
                    reason,
                    payload: Value::Object(change.clone()).to_string(),
                });
            }
        }
    }
    Ok(batch)
}

fn array_field<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<&'a Vec<Value>, ParseError> {
    match obj.get(name) {
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(ParseError(format!("`{path}` is not an array"))),
        None => Err(ParseError::missing(path)),
    }
}

/// An optional array; absent and `null` are the same.
fn optional_array<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<&'a [Value], ParseError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(ParseError(format!("`{path}.{name}` is not an array"))),
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn string_at(v: &Value, key: &str) -> Option<String> {
    str_at(v, key).filter(|s| !s.is_empty()).map(str::to_string)
}

fn parse_change(
    value: &Map<String, Value>,
    path: &str,
    batch: &mut WebhookBatch,
) -> Result<(), String> {
    // Every list is checked before any event is taken, so that a change
    // is taken whole or rejected whole.
    for name in ["contacts", "messages", "statuses", "errors"] {
        optional_array(value, name, path).map_err(|e| e.0)?;
    }
    let metadata = value.get("metadata").unwrap_or(&Value::Null);
    let to = string_at(metadata, "display_phone_number")
        .or_else(|| string_at(metadata, "phone_number_id"));
    let phone_number_id = string_at(metadata, "phone_number_id");

    let mut names: HashMap<&str, &str> = HashMap::new();
    for contact in optional_array(value, "contacts", path).unwrap_or_default() {
        if let (Some(wa_id), Some(name)) = (
            str_at(contact, "wa_id"),
            contact.get("profile").and_then(|p| str_at(p, "name")),
        ) {
            names.insert(wa_id, name);
        }
    }

    let rejected = |event: &'static str, v: &Value, reason: String| RejectedInbound {
        channel: Channel::Meta,
        event,
        provider_message_id: string_at(v, "id"),
        reason,
        payload: v.to_string(),
    };
    for (k, message) in optional_array(value, "messages", path)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match parse_message(message, to.as_deref(), &names) {
            Ok(m) => {
                if let Some(id) = &phone_number_id {
                    batch
                        .sent_to
                        .insert(m.provider_message_id.clone(), id.clone());
                }
                batch.messages.push(m)
            }
            Err(reason) => {
                tracing::warn!(event = %format!("{path}.messages[{k}]"), %reason, "Meta message rejected");
                batch.rejected.push(rejected("message", message, reason));
            }
        }
    }
    for (k, status) in optional_array(value, "statuses", path)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match parse_status(status) {
            Ok(Some(s)) => batch.statuses.push(s),
            Ok(None) => batch.ignored += 1,
            Err(reason) => {
                tracing::warn!(event = %format!("{path}.statuses[{k}]"), %reason, "Meta status rejected");
                batch.rejected.push(rejected("status", status, reason));
            }
        }
    }
    // Errors about the account or webhook itself, not about one message.
    batch.ignored += optional_array(value, "errors", path)
        .unwrap_or_default()
        .len();
    Ok(())
}

fn parse_message(
    m: &Value,
    to: Option<&str>,
    names: &HashMap<&str, &str>,
) -> Result<InboundMessage, String> {
    let id = string_at(m, "id").ok_or("no `id`")?;
    let from_raw = str_at(m, "from").ok_or("no `from`")?;
    let from =
        PhoneNumber::parse(from_raw).map_err(|e| format!("`from` is not a phone number: {e}"))?;
    let kind_name = str_at(m, "type").unwrap_or("");

    let mut extra = Extra {
        context_id: m.get("context").and_then(|c| string_at(c, "id")),
        ..Extra::default()
    };
    let mut media = Vec::new();
    let (kind, text) = match kind_name {
        "text" => (
            MessageKind::Text,
            m.get("text").and_then(|t| string_at(t, "body")),
        ),
        "image" | "audio" | "video" | "document" | "sticker" => match m.get(kind_name) {
            Some(obj) if obj.is_object() => {
                media.push(Media {
                    url: string_at(obj, "url"),
                    provider_id: string_at(obj, "id"),
                    content_type: string_at(obj, "mime_type"),
                    filename: string_at(obj, "filename"),
                    sha256: string_at(obj, "sha256"),
                });
                let kind = match kind_name {
                    "image" => MessageKind::Image,
                    "audio" => MessageKind::Audio,
                    "video" => MessageKind::Video,
                    "document" => MessageKind::Document,
                    _ => MessageKind::Sticker,
                };
                (kind, string_at(obj, "caption"))
            }
            _ => (MessageKind::Unsupported, None),
        },
        "location" => match m.get("location").and_then(location) {
            Some(loc) => {
                extra.location = Some(loc);
                (MessageKind::Location, None)
            }
            None => (MessageKind::Unsupported, None),
        },
        "contacts" => match m.get("contacts") {
            Some(c @ Value::Array(_)) => {
                extra.contacts = Some(c.clone());
                (MessageKind::Contacts, None)
            }
            _ => (MessageKind::Unsupported, None),
        },
        "interactive" => {
            let i = m.get("interactive").unwrap_or(&Value::Null);
            let reply = match str_at(i, "type") {
                Some(t @ ("button_reply" | "list_reply")) => i.get(t),
                _ => None,
            };
            match reply.and_then(|r| Some((string_at(r, "id")?, string_at(r, "title")))) {
                Some((reply_id, title)) => {
                    extra.reply_id = Some(reply_id);
                    (MessageKind::Interactive, title)
                }
                None => (MessageKind::Unsupported, None),
            }
        }
        "button" => match m.get("button") {
            Some(b) if b.is_object() => {
                extra.reply_id = string_at(b, "payload");
                (MessageKind::Button, string_at(b, "text"))
            }
            _ => (MessageKind::Unsupported, None),
        },
        "reaction" => match m.get("reaction") {
            Some(r) if r.is_object() => {
                // An empty or absent emoji is the contact removing a reaction.
                extra.emoji = string_at(r, "emoji");
                if let Some(target) = string_at(r, "message_id") {
                    extra.context_id = Some(target);
                }
                (MessageKind::Reaction, None)
            }
            _ => (MessageKind::Unsupported, None),
        },
        // order, system, unsupported and types yet to come: stored, not understood.
        _ => (MessageKind::Unsupported, None),
    };

    Ok(InboundMessage {
        // Routed to its bot by the caller, which knows the bots.
        bot_id: confab_model::DEFAULT_BOT,
        channel: Channel::Meta,
        provider_message_id: id,
        profile_name: names.get(from_raw).map(|n| n.to_string()),
        from,
        to: to.map(str::to_string),
        kind,
        text,
        media,
        extra,
    })
}

/// Coordinates arrive as numbers, though the spec also allows strings.
fn location(v: &Value) -> Option<Location> {
    let coord = |key: &str, limit: f64| -> Option<f64> {
        let n = match v.get(key)? {
            Value::Number(n) => n.as_f64()?,
            Value::String(s) => s.trim().parse().ok()?,
            _ => return None,
        };
        (n.is_finite() && n.abs() <= limit).then_some(n)
    };
    Some(Location {
        latitude: coord("latitude", 90.0)?,
        longitude: coord("longitude", 180.0)?,
        name: string_at(v, "name"),
        address: string_at(v, "address"),
    })
}

/// `Ok(None)` for statuses we do not track (e.g. `deleted`, `warning`).
fn parse_status(s: &Value) -> Result<Option<StatusUpdate>, String> {
    let id = string_at(s, "id").ok_or("no `id`")?;
    let status = match str_at(s, "status").ok_or("no `status`")? {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        // A voice message played has certainly been read.
        "read" | "played" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        _ => return Ok(None),
    };
    let error = s
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|errors| errors.first())
        .map(webhook_error);
    Ok(Some(StatusUpdate {
        channel: Channel::Meta,
        provider_message_id: id,
        status,
        error,
    }))
}

/// A webhook error `{code, title, message, error_data: {details}}` as one line.
fn webhook_error(e: &Value) -> ProviderError {
    let code = match e.get("code") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let headline = string_at(e, "title").or_else(|| string_at(e, "message"));
    let details = e.get("error_data").and_then(|d| string_at(d, "details"));
    let message = match (headline, details) {
        (Some(h), Some(d)) if h != d => format!("{h}: {d}"),
        (Some(h), _) => h,
        (None, Some(d)) => d,
        (None, None) => "Meta reported an error".to_string(),
    };
    ProviderError { code, message }
}

// ---------------------------------------------------------------------------
// Sending

/// Limits Meta enforces on interactive messages; checked before sending so
/// the failure says which part is wrong.
const MAX_BUTTONS: usize = 3;
const MAX_BUTTON_TITLE: usize = 20;
const MAX_BUTTON_ID: usize = 256;
const MAX_INTERACTIVE_BODY: usize = 1024;
const MAX_LIST_BUTTON: usize = 20;
const MAX_LIST_ROWS: usize = 10;
const MAX_SECTIONS: usize = 10;
const MAX_SECTION_TITLE: usize = 24;
const MAX_ROW_TITLE: usize = 24;
const MAX_ROW_DESCRIPTION: usize = 72;
const MAX_ROW_ID: usize = 200;

/// Graph API error codes that mean "slow down" or "try again" even when
/// the HTTP status is 400: rate limits (4, 80007, 130429), spam and pair
/// rate limits (131048, 131056), and temporary failures (1, 2, 133004).
const RETRYABLE_CODES: &[i64] = &[1, 2, 4, 80007, 130429, 131048, 131056, 133004];

/// Sends through the Graph API's `messages` endpoint and fetches inbound
/// media.
#[derive(Clone, Debug)]
pub struct MetaClient {
    cfg: MetaConfig,
    http: reqwest::Client,
    /// Follows no redirects by itself; see [`media::download`].
    media_http: reqwest::Client,
    messages_url: String,
}

#[derive(Deserialize)]
struct SendResponse {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: Option<String>,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    message: Option<String>,
    code: Option<i64>,
    error_subcode: Option<i64>,
    fbtrace_id: Option<String>,
    is_transient: Option<bool>,
    error_data: Option<Value>,
}

impl MetaClient {
    pub fn new(cfg: MetaConfig, http: reqwest::Client) -> Self {
        Self::sharing(cfg, http, media::client())
    }

    /// A client that downloads media through `media_http` (see
    /// [`media::client`]), which many clients may share.
    pub fn sharing(cfg: MetaConfig, http: reqwest::Client, media_http: reqwest::Client) -> Self {
        let messages_url = format!(
            "{}/{}/{}/messages",
            cfg.api_url.trim_end_matches('/'),
            cfg.api_version,
            cfg.phone_number_id
        );
        MetaClient {
            cfg,
            http,
            media_http,
            messages_url,
        }
    }

    pub fn config(&self) -> &MetaConfig {
        &self.cfg
    }

    pub async fn send(
        &self,
        to: &PhoneNumber,
        content: &OutboundContent,
    ) -> Result<Sent, SendError> {
        let body = request_body(to, content)?;
        let response = self
            .http
            .post(&self.messages_url)
            .bearer_auth(&self.cfg.access_token)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error("Meta", e))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error("Meta", e))?;

        if status.is_success() {
            let id = serde_json::from_slice::<SendResponse>(&bytes)
                .ok()
                .and_then(|r| r.messages.into_iter().next())
                .and_then(|m| m.id)
                .filter(|id| !id.is_empty());
            return match id {
                Some(provider_message_id) => Ok(Sent {
                    provider_message_id,
                }),
                // Meta may have taken the message; sending again could
                // duplicate it, so this is not retried.
                None => Err(SendError::invalid(format!(
                    "Meta answered {status} without a message id: {}",
                    snippet(&bytes)
                ))),
            };
        }

        let Ok(GraphErrorBody { error }) = serde_json::from_slice::<GraphErrorBody>(&bytes) else {
            let message = format!("Meta HTTP {status}: {}", snippet(&bytes));
            return Err(if status_is_retryable(status) {
                SendError::Retryable {
                    message,
                    retry_after: wait,
                }
            } else {
                SendError::invalid(message)
            });
        };
        let mut message = error
            .message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| format!("HTTP {status}"));
        if let Some(details) = error
            .error_data
            .as_ref()
            .and_then(|d| string_at(d, "details"))
            && details != message
        {
            message = format!("{message} ({details})");
        }
        tracing::debug!(
            code = ?error.code,
            subcode = ?error.error_subcode,
            fbtrace_id = ?error.fbtrace_id,
            "Meta refused a message"
        );
        let retryable = status_is_retryable(status)
            || error.is_transient == Some(true)
            || error.code.is_some_and(|c| RETRYABLE_CODES.contains(&c));
        if retryable {
            let code = error
                .code
                .map(|c| format!(" (code {c})"))
                .unwrap_or_default();
            return Err(SendError::Retryable {
                message: format!("Meta {status}{code}: {message}"),
                retry_after: wait,
            });
        }
        Err(SendError::Permanent(ProviderError {
            code: error.code.map(|c| c.to_string()),
            message,
        }))
    }
}

/// The JSON the `messages` endpoint takes for `content`, or why it cannot
/// be sent.
pub fn request_body(to: &PhoneNumber, content: &OutboundContent) -> Result<Value, SendError> {
    let (kind, payload) = match content {
        OutboundContent::Text { body } => ("text", json!({ "body": body, "preview_url": false })),
        OutboundContent::Media { kind, url, caption } => {
            media_payload(*kind, url, caption.as_deref())?
        }
        OutboundContent::Template { template } => {
            match template
                .for_channel(Channel::Meta)
                .map_err(SendError::invalid)?
            {
                TemplateSpec::Meta {
                    name,
                    language,
                    components,
                } => (
                    "template",
                    json!({
                        "name": name,
                        // The spec requires a policy; `deterministic` is the only one.
                        "language": { "policy": "deterministic", "code": language },
                        "components": components,
                    }),
                ),
                TemplateSpec::Twilio { .. } => {
                    return Err(SendError::invalid("not a Meta template"));
                }
            }
        }
        OutboundContent::Buttons { body, buttons } => {
            ("interactive", buttons_payload(body, buttons)?)
        }
        OutboundContent::List {
            body,
            button,
            sections,
        } => ("interactive", list_payload(body, button, sections)?),
    };
    let mut message = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to.digits(),
        "type": kind,
    });
    message[kind] = payload;
    Ok(message)
}

fn media_payload(
    kind: MessageKind,
    url: &str,
    caption: Option<&str>,
) -> Result<(&'static str, Value), SendError> {
    let (name, takes_caption) = match kind {
        MessageKind::Image => ("image", true),
        MessageKind::Video => ("video", true),
        MessageKind::Document => ("document", true),
        MessageKind::Audio => ("audio", false),
        MessageKind::Sticker => ("sticker", false),
        other => {
            return Err(SendError::invalid(format!(
                "`{other}` is not a media kind Meta can send"
            )));
        }
    };
    let mut media = json!({ "link": url });
    match caption {
        Some(c) if takes_caption => media["caption"] = json!(c),
        Some(_) => tracing::debug!(
            kind = name,
            "caption dropped: WhatsApp shows none on this media"
        ),
        None => {}
    }
    // Without a filename WhatsApp shows a document as "Untitled".
    if kind == MessageKind::Document
        && let Some(filename) = filename_from_url(url)
    {
        media["filename"] = json!(filename);
    }
    Ok((name, media))
}

/// The last path segment of a URL if it looks like a file name.
fn filename_from_url(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let path = path.split_once("://").map_or(path, |(_, rest)| rest);
    let (_, segment) = path.rsplit_once('/')?;
    let name = percent_decode(segment)?;
    let name = name.trim();
    (name.contains('.') && !name.starts_with('.') && !name.contains('/')).then(|| name.to_string())
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn check_len(what: &str, value: &str, max: usize) -> Result<(), SendError> {
    if value.trim().is_empty() {
        return Err(SendError::invalid(format!("{what} is empty")));
    }
    let len = value.chars().count();
    if len > max {
        return Err(SendError::invalid(format!(
            "{what} '{value}' is {len} characters; WhatsApp allows at most {max}"
        )));
    }
    Ok(())
}

fn buttons_payload(body: &str, buttons: &[Button]) -> Result<Value, SendError> {
    check_len("the message body", body, MAX_INTERACTIVE_BODY)?;
    if buttons.is_empty() || buttons.len() > MAX_BUTTONS {
        return Err(SendError::invalid(format!(
            "a buttons message has {} buttons; WhatsApp allows 1 to {MAX_BUTTONS}",
            buttons.len()
        )));
    }
    let mut ids = HashSet::new();
    let mut titles = HashSet::new();
    for b in buttons {
        check_len("a button title", &b.title, MAX_BUTTON_TITLE)?;
        check_len("a button id", &b.id, MAX_BUTTON_ID)?;
        if !ids.insert(b.id.as_str()) {
            return Err(SendError::invalid(format!(
                "button id '{}' is used twice",
                b.id
            )));
        }
        if !titles.insert(b.title.as_str()) {
            return Err(SendError::invalid(format!(
                "button title '{}' is used twice",
                b.title
            )));
        }
    }
    let buttons: Vec<Value> = buttons
        .iter()
        .map(|b| json!({ "type": "reply", "reply": { "id": b.id, "title": b.title } }))
        .collect();
    Ok(json!({
        "type": "button",
        "body": { "text": body },
        "action": { "buttons": buttons },
    }))
}

fn list_payload(body: &str, button: &str, sections: &[ListSection]) -> Result<Value, SendError> {
    check_len("the message body", body, MAX_INTERACTIVE_BODY)?;
    check_len("the list button", button, MAX_LIST_BUTTON)?;
    if sections.is_empty() || sections.len() > MAX_SECTIONS {
        return Err(SendError::invalid(format!(
            "a list has {} sections; WhatsApp allows 1 to {MAX_SECTIONS}",
            sections.len()
        )));
    }
    let rows: usize = sections.iter().map(|s| s.rows.len()).sum();
    if rows == 0 || rows > MAX_LIST_ROWS {
        return Err(SendError::invalid(format!(
            "a list has {rows} rows; WhatsApp allows 1 to {MAX_LIST_ROWS} in all"
        )));
    }
    let mut ids = HashSet::new();
    let mut out = Vec::with_capacity(sections.len());
    for section in sections {
        let mut s = Map::new();
        match &section.title {
            Some(t) => {
                check_len("a section title", t, MAX_SECTION_TITLE)?;
                s.insert("title".into(), json!(t));
            }
            None if sections.len() > 1 => {
                return Err(SendError::invalid(
                    "every section needs a title when a list has more than one",
                ));
            }
            None => {}
        }
        let mut rows = Vec::with_capacity(section.rows.len());
        for row in &section.rows {
            check_len("a row id", &row.id, MAX_ROW_ID)?;
            check_len("a row title", &row.title, MAX_ROW_TITLE)?;
            if !ids.insert(row.id.as_str()) {
                return Err(SendError::invalid(format!(
                    "row id '{}' is used twice",
                    row.id
                )));
            }
            let mut r = json!({ "id": row.id, "title": row.title });
            if let Some(d) = &row.description {
                check_len("a row description", d, MAX_ROW_DESCRIPTION)?;
                r["description"] = json!(d);
            }
            rows.push(r);
        }
        s.insert("rows".into(), Value::Array(rows));
        out.push(Value::Object(s));
    }
    Ok(json!({
        "type": "list",
        "body": { "text": body },
        "action": { "button": button, "sections": out },
    }))
}

// ---------------------------------------------------------------------------
// Media

/// What `GET /{version}/{media-id}` says about a file.
#[derive(Deserialize)]
struct MediaInfo {
    url: Option<String>,
    mime_type: Option<String>,
    sha256: Option<String>,
    /// A string in the published spec, a number in the API's answers; both
    /// are read.
    file_size: Option<Value>,
}

/// Graph codes that mean "too many requests" although sent with HTTP 400.
const RATE_LIMIT_CODES: &[i64] = &[4, 80007, 130429];

impl MetaClient {
    /// Resolves a media id through the Graph API
    /// (`{api_url}/{api_version}/{media_id}`, bearer token), then downloads
    /// `url` with the bearer token. If the metadata's `sha256` is present, the
    /// downloaded bytes must match it (else Malformed).
    ///
    /// The metadata's `mime_type` and `file_size` are checked against
    /// `limits` before anything is downloaded. An id Graph does not know
    /// (HTTP 404, or 400 with error 100/33) is [`MediaError::NotFound`];
    /// Graph's rate limits and transient errors, which come as 400, are
    /// reported as `Status(429)` and `Status(503)` so that they are retried.
    pub async fn fetch_media(
        &self,
        media_id: &str,
        limits: &MediaLimits,
    ) -> Result<Fetched, MediaError> {
        let media_id = media_id.trim();
        // Media ids are numbers. Anything that could name another Graph path,
        // to be requested with our token, cannot be a media id.
        if media_id.is_empty()
            || !media_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(MediaError::NotFound);
        }
        let lookup_url = format!(
            "{}/{}/{}",
            self.cfg.api_url.trim_end_matches('/'),
            self.cfg.api_version,
            media_id
        );
        let response = self
            .http
            .get(&lookup_url)
            .bearer_auth(&self.cfg.access_token)
            .send()
            .await
            .map_err(media::network)?;
        let status = response.status();
        let body = response.bytes().await.map_err(media::network)?;
        if !status.is_success() {
            return Err(media_lookup_error(status, &body));
        }
        let info = serde_json::from_slice::<MediaInfo>(&body).map_err(|e| {
            MediaError::Malformed(format!("Meta's media answer is not the expected JSON: {e}"))
        })?;

        let declared_type = info.mime_type.as_deref().and_then(media::normalize_type);
        if let Some(t) = &declared_type
            && !limits.accepts(t)
        {
            return Err(MediaError::WrongType(t.clone()));
        }
        if let Some(size) = info.file_size.as_ref().and_then(file_size)
            && size > limits.max_bytes
        {
            return Err(MediaError::TooLarge {
                limit: limits.max_bytes,
            });
        }
        let url = info
            .url
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| MediaError::Malformed("Meta's media answer has no url".into()))?;
        let expected = match info.sha256.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(sha256_digest(s).ok_or_else(|| {
                MediaError::Malformed("Meta's media answer has an unreadable sha256".into())
            })?),
        };

        // The URL comes from Graph's own answer and, as Meta documents, needs
        // the token too; it is sent to that URL's origin and no further.
        let credentials = Credentials {
            auth: Auth::Bearer(&self.cfg.access_token),
            origin: media::parse_url(&url)?,
        };
        let fetched = media::download(
            &self.media_http,
            &url,
            Some(&credentials),
            declared_type.as_deref(),
            limits,
        )
        .await?;
        if let Some(expected) = expected
            && hex::encode(expected) != fetched.sha256
        {
            return Err(MediaError::Malformed(
                "the file does not match the sha256 Meta gave for it".into(),
            ));
        }
        Ok(fetched)
    }
}

fn media_lookup_error(status: reqwest::StatusCode, body: &[u8]) -> MediaError {
    if status == reqwest::StatusCode::NOT_FOUND {
        return MediaError::NotFound;
    }
    let Ok(GraphErrorBody { error }) = serde_json::from_slice::<GraphErrorBody>(body) else {
        return MediaError::Status(status.as_u16());
    };
    tracing::debug!(
        status = status.as_u16(),
        code = ?error.code,
        subcode = ?error.error_subcode,
        fbtrace_id = ?error.fbtrace_id,
        "Meta refused a media lookup"
    );
    // "Object with ID '…' does not exist, cannot be loaded due to missing
    // permissions, or does not support this operation": either way the
    // media is not there for us.
    if error.code == Some(100) && error.error_subcode == Some(33) {
        return MediaError::NotFound;
    }
    if !status_is_retryable(status) {
        if error.code.is_some_and(|c| RATE_LIMIT_CODES.contains(&c)) {
            return MediaError::Status(429);
        }
        if error.is_transient == Some(true)
            || error.code.is_some_and(|c| RETRYABLE_CODES.contains(&c))
        {
            return MediaError::Status(503);
        }
    }
    MediaError::Status(status.as_u16())
}

fn file_size(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A SHA-256 as Meta writes it: hex in media answers, base64 in webhooks.
/// The two cannot be confused: 64 characters against 43 or 44.
fn sha256_digest(s: &str) -> Option<[u8; 32]> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let bytes = if s.len() == 64 {
        hex::decode(s).ok()?
    } else {
        STANDARD
            .decode(s)
            .or_else(|_| STANDARD_NO_PAD.decode(s))
            .ok()?
    };
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_model::{ListRow, Template};

    fn to() -> PhoneNumber {
        PhoneNumber::parse("+16505551234").unwrap()
    }

    fn permanent_message(e: SendError) -> String {
        match e {
            SendError::Permanent(p) => {
                assert_eq!(p.code, None);
                p.message
            }
            other => panic!("expected a permanent error, got {other:?}"),
        }
    }

    // Computed independently:
    // printf %s '{"object":"whatsapp_business_account","entry":[]}' | openssl dgst -sha256 -hmac 'meta-app-secret'
    const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    const SIG: &str = "sha256=ee9f05f989bc0aa2693d85691a477f8b8403933cde7959a1c5c6be7ea85e8d3d";

    #[test]
    fn signature_matches_openssl() {
        assert_eq!(signature("meta-app-secret", BODY), SIG);
        // printf %s hello | openssl dgst -sha256 -hmac k
        assert_eq!(
            signature("k", b"hello"),
            "sha256=406e4b43f87095aa86ca6299d25e875921fefa180f02043bb29bec5681c0c2d0"
        );
    }

    #[test]
    fn verify_signature_cases() {
        assert!(verify_signature("meta-app-secret", BODY, SIG));
        assert!(verify_signature(
            "meta-app-secret",
            BODY,
            &SIG.to_uppercase().replace("SHA256=", "sha256=")
        ));
        assert!(!verify_signature("other", BODY, SIG));
        assert!(!verify_signature("", BODY, SIG));
        assert!(!verify_signature("meta-app-secret", b"{}", SIG));
        assert!(!verify_signature("meta-app-secret", BODY, ""));
        assert!(!verify_signature("meta-app-secret", BODY, "sha256="));
        assert!(!verify_signature(
            "meta-app-secret",
            BODY,
            &SIG["sha256=".len()..]
        ));
        assert!(!verify_signature(
            "meta-app-secret",
            BODY,
            &SIG[..SIG.len() - 2]
        ));
        assert!(!verify_signature("meta-app-secret", BODY, "sha256=zz"));
        assert!(!verify_signature(
            "meta-app-secret",
            BODY,
            &SIG.replace("sha256=", "sha1=")
        ));
    }

    #[test]
    fn handshake() {
        let ok = verify_handshake(Some("subscribe"), Some("tok"), Some("1158201444"), "tok");
        assert_eq!(ok.as_deref(), Some("1158201444"));
        assert_eq!(
            verify_handshake(Some("subscribe"), Some("nope"), Some("1"), "tok"),
            None
        );
        assert_eq!(
            verify_handshake(Some("unsubscribe"), Some("tok"), Some("1"), "tok"),
            None
        );
        assert_eq!(verify_handshake(None, Some("tok"), Some("1"), "tok"), None);
        assert_eq!(
            verify_handshake(Some("subscribe"), None, Some("1"), "tok"),
            None
        );
        assert_eq!(
            verify_handshake(Some("subscribe"), Some("tok"), None, "tok"),
            None
        );
        assert_eq!(
            verify_handshake(Some("subscribe"), Some(""), Some("1"), ""),
            None
        );
        assert_eq!(
            verify_handshake(Some("subscribe"), Some("tok"), Some("<script>"), "tok"),
            None
        );
    }

    #[test]
    fn config_debug_hides_secrets() {
        let mut cfg = MetaConfig::new("EAAG-secret-token", "106540352242922");
        cfg.app_secret = Some("app-secret-value".into());
        cfg.verify_token = Some("verify-secret-value".into());
        let dbg = format!("{cfg:?}");
        for secret in [
            "EAAG-secret-token",
            "app-secret-value",
            "verify-secret-value",
        ] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
        assert!(dbg.contains("106540352242922"));
        assert_eq!(cfg.api_version, "v23.0");
        assert_eq!(cfg.api_url, "https://graph.facebook.com");
    }

    #[test]
    fn text_and_media_bodies() {
        let b = request_body(&to(), &OutboundContent::Text { body: "hi".into() }).unwrap();
        assert_eq!(
            b,
            json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234","type":"text",
                   "text":{"body":"hi","preview_url":false}})
        );
        let media = |kind, url: &str, caption: Option<&str>| {
            request_body(
                &to(),
                &OutboundContent::Media {
                    kind,
                    url: url.into(),
                    caption: caption.map(Into::into),
                },
            )
            .unwrap()
        };
        let b = media(MessageKind::Image, "https://x.test/a.png", Some("look"));
        assert_eq!(b["type"], "image");
        assert_eq!(
            b["image"],
            json!({"link":"https://x.test/a.png","caption":"look"})
        );
        let b = media(MessageKind::Video, "https://x.test/v.mp4", None);
        assert_eq!(b["video"], json!({"link":"https://x.test/v.mp4"}));
        let b = media(MessageKind::Audio, "https://x.test/a.ogg", Some("dropped"));
        assert_eq!(b["audio"], json!({"link":"https://x.test/a.ogg"}));
        let b = media(
            MessageKind::Sticker,
            "https://x.test/s.webp",
            Some("dropped"),
        );
        assert_eq!(b["sticker"], json!({"link":"https://x.test/s.webp"}));
        let b = media(
            MessageKind::Document,
            "https://x.test/files/My%20Report.pdf?sig=1",
            Some("Q3"),
        );
        assert_eq!(
            b["document"],
            json!({"link":"https://x.test/files/My%20Report.pdf?sig=1","caption":"Q3","filename":"My Report.pdf"})
        );
        let b = media(MessageKind::Document, "https://x.test/download", None);
        assert_eq!(b["document"], json!({"link":"https://x.test/download"}));
        let e = request_body(
            &to(),
            &OutboundContent::Media {
                kind: MessageKind::Location,
                url: "https://x.test/a".into(),
                caption: None,
            },
        )
        .unwrap_err();
        assert!(permanent_message(e).contains("not a media kind"));
    }

    #[test]
    fn template_body() {
        let t = Template {
            name: Some("order_update".into()),
            language: Some("en_US".into()),
            components: Some(vec![
                json!({"type":"body","parameters":[{"type":"text","text":"42"}]}),
            ]),
            ..Default::default()
        };
        let b = request_body(&to(), &OutboundContent::Template { template: t }).unwrap();
        assert_eq!(b["type"], "template");
        assert_eq!(
            b["template"],
            json!({"name":"order_update","language":{"policy":"deterministic","code":"en_US"},
                   "components":[{"type":"body","parameters":[{"type":"text","text":"42"}]}]})
        );
        let twilio_only = Template {
            content_sid: Some(format!("HX{}", "a".repeat(32))),
            ..Default::default()
        };
        let e = request_body(
            &to(),
            &OutboundContent::Template {
                template: twilio_only,
            },
        )
        .unwrap_err();
        assert!(permanent_message(e).contains("needs `name`"));
    }

    fn button(id: &str, title: &str) -> Button {
        Button {
            id: id.into(),
            title: title.into(),
        }
    }

    #[test]
    fn buttons_body_and_limits() {
        let c = OutboundContent::Buttons {
            body: "Continue?".into(),
            buttons: vec![button("y", "Yes"), button("n", "No")],
        };
        let b = request_body(&to(), &c).unwrap();
        assert_eq!(b["type"], "interactive");
        assert_eq!(
            b["interactive"],
            json!({"type":"button","body":{"text":"Continue?"},"action":{"buttons":[
                {"type":"reply","reply":{"id":"y","title":"Yes"}},
                {"type":"reply","reply":{"id":"n","title":"No"}}]}})
        );
        let too_many = OutboundContent::Buttons {
            body: "x".into(),
            buttons: (0..4)
                .map(|i| button(&i.to_string(), &i.to_string()))
                .collect(),
        };
        assert!(
            permanent_message(request_body(&to(), &too_many).unwrap_err()).contains("4 buttons")
        );
        let none = OutboundContent::Buttons {
            body: "x".into(),
            buttons: vec![],
        };
        assert!(permanent_message(request_body(&to(), &none).unwrap_err()).contains("0 buttons"));
        let long = OutboundContent::Buttons {
            body: "x".into(),
            buttons: vec![button("a", "This title is far too long")],
        };
        let msg = permanent_message(request_body(&to(), &long).unwrap_err());
        assert!(
            msg.contains("button title") && msg.contains("at most 20"),
            "{msg}"
        );
        // Twenty characters, some of them multi-byte, fit.
        let exact = OutboundContent::Buttons {
            body: "x".into(),
            buttons: vec![button("a", "ééééééééééééééééééé✓")],
        };
        assert!(request_body(&to(), &exact).is_ok());
        let dup = OutboundContent::Buttons {
            body: "x".into(),
            buttons: vec![button("a", "A"), button("a", "B")],
        };
        assert!(permanent_message(request_body(&to(), &dup).unwrap_err()).contains("used twice"));
        let empty_body = OutboundContent::Buttons {
            body: " ".into(),
            buttons: vec![button("a", "A")],
        };
        assert!(
            permanent_message(request_body(&to(), &empty_body).unwrap_err())
                .contains("body is empty")
        );
    }

    fn row(id: &str, title: &str, description: Option<&str>) -> ListRow {
        ListRow {
            id: id.into(),
            title: title.into(),
            description: description.map(Into::into),
        }
    }

    #[test]
    fn list_body_and_limits() {
        let c = OutboundContent::List {
            body: "Choose shipping".into(),
            button: "Options".into(),
            sections: vec![
                ListSection {
                    title: Some("Fast".into()),
                    rows: vec![row("express", "Express", Some("Next day"))],
                },
                ListSection {
                    title: Some("Cheap".into()),
                    rows: vec![row("ground", "Ground", None)],
                },
            ],
        };
        let b = request_body(&to(), &c).unwrap();
        assert_eq!(
            b["interactive"],
            json!({"type":"list","body":{"text":"Choose shipping"},"action":{"button":"Options","sections":[
                {"title":"Fast","rows":[{"id":"express","title":"Express","description":"Next day"}]},
                {"title":"Cheap","rows":[{"id":"ground","title":"Ground"}]}]}})
        );
        let one_untitled = OutboundContent::List {
            body: "b".into(),
            button: "Pick".into(),
            sections: vec![ListSection {
                title: None,
                rows: vec![row("a", "A", None)],
            }],
        };
        assert_eq!(
            request_body(&to(), &one_untitled).unwrap()["interactive"]["action"]["sections"],
            json!([{"rows":[{"id":"a","title":"A"}]}])
        );

        let eleven = OutboundContent::List {
            body: "b".into(),
            button: "Pick".into(),
            sections: vec![
                ListSection {
                    title: Some("one".into()),
                    rows: (0..6).map(|i| row(&format!("a{i}"), "t", None)).collect(),
                },
                ListSection {
                    title: Some("two".into()),
                    rows: (0..5).map(|i| row(&format!("b{i}"), "t", None)).collect(),
                },
            ],
        };
        assert!(permanent_message(request_body(&to(), &eleven).unwrap_err()).contains("11 rows"));
        let untitled = OutboundContent::List {
            body: "b".into(),
            button: "Pick".into(),
            sections: vec![
                ListSection {
                    title: None,
                    rows: vec![row("a", "A", None)],
                },
                ListSection {
                    title: Some("x".into()),
                    rows: vec![row("b", "B", None)],
                },
            ],
        };
        assert!(
            permanent_message(request_body(&to(), &untitled).unwrap_err())
                .contains("needs a title")
        );
        let long_desc = OutboundContent::List {
            body: "b".into(),
            button: "Pick".into(),
            sections: vec![ListSection {
                title: None,
                rows: vec![row("a", "A", Some(&"d".repeat(73)))],
            }],
        };
        assert!(
            permanent_message(request_body(&to(), &long_desc).unwrap_err()).contains("at most 72")
        );
        let long_button = OutboundContent::List {
            body: "b".into(),
            button: "A button label that is too long".into(),
            sections: vec![ListSection {
                title: None,
                rows: vec![row("a", "A", None)],
            }],
        };
        assert!(
            permanent_message(request_body(&to(), &long_button).unwrap_err())
                .contains("list button")
        );
    }

    #[test]
    fn filenames() {
        assert_eq!(
            filename_from_url("https://x.test/a/b/report.pdf"),
            Some("report.pdf".into())
        );
        assert_eq!(filename_from_url("https://x.test/a/b/"), None);
        assert_eq!(filename_from_url("https://x.test"), None);
        assert_eq!(filename_from_url("https://x.test/.hidden"), None);
        assert_eq!(filename_from_url("https://x.test/bad%zz.pdf"), None);
        assert_eq!(filename_from_url("https://x.test/a%2Fb.pdf"), None);
    }

    #[test]
    fn media_hashes_in_either_encoding() {
        // printf %s hello | sha256sum
        let hex_form = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let digest = sha256_digest(hex_form).unwrap();
        assert_eq!(hex::encode(digest), hex_form);
        assert_eq!(sha256_digest(&hex_form.to_uppercase()), Some(digest));
        // printf %s hello | openssl dgst -sha256 -binary | base64
        let b64 = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=";
        assert_eq!(sha256_digest(b64), Some(digest));
        assert_eq!(sha256_digest(b64.trim_end_matches('=')), Some(digest));
        // The truncated hashes in some webhook samples are not hashes at all.
        assert_eq!(sha256_digest("4654+8g="), None);
        assert_eq!(sha256_digest(&"z".repeat(64)), None);
        assert_eq!(sha256_digest("<HASH>"), None);
    }

    #[test]
    fn media_file_sizes() {
        assert_eq!(file_size(&json!(303833)), Some(303833));
        assert_eq!(file_size(&json!("303833")), Some(303833));
        assert_eq!(file_size(&json!("big")), None);
        assert_eq!(file_size(&json!(-1)), None);
        assert_eq!(file_size(&Value::Null), None);
    }

    #[test]
    fn media_lookup_errors() {
        use reqwest::StatusCode;
        let graph = |code: i64, subcode: Option<i64>, transient: Option<bool>| {
            json!({ "error": { "message": "m", "type": "OAuthException", "code": code,
                               "error_subcode": subcode, "is_transient": transient } })
            .to_string()
        };
        let bad = StatusCode::BAD_REQUEST;
        assert_eq!(
            media_lookup_error(bad, graph(100, Some(33), None).as_bytes()),
            MediaError::NotFound
        );
        assert_eq!(
            media_lookup_error(StatusCode::NOT_FOUND, b"<html>"),
            MediaError::NotFound
        );
        assert_eq!(
            media_lookup_error(bad, graph(100, None, None).as_bytes()),
            MediaError::Status(400)
        );
        assert_eq!(
            media_lookup_error(bad, graph(80007, None, None).as_bytes()),
            MediaError::Status(429)
        );
        assert_eq!(
            media_lookup_error(bad, graph(1, None, None).as_bytes()),
            MediaError::Status(503)
        );
        assert_eq!(
            media_lookup_error(bad, graph(131000, None, Some(true)).as_bytes()),
            MediaError::Status(503)
        );
        assert_eq!(
            media_lookup_error(StatusCode::UNAUTHORIZED, graph(190, None, None).as_bytes()),
            MediaError::Status(401)
        );
        assert_eq!(
            media_lookup_error(StatusCode::BAD_GATEWAY, b"oops"),
            MediaError::Status(502)
        );
    }
}
