//! Twilio's WhatsApp API: form-encoded webhooks signed with
//! `X-Twilio-Signature`, TwiML replies, and the Messages REST resource.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use confab_model::{
    Channel, DeliveryStatus, Extra, InboundMessage, Location, Media, MessageKind, OutboundContent,
    PhoneNumber, ProviderError, StatusUpdate, TemplateSpec,
};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::http::{retry_after, snippet, status_is_retryable, transport_error};
use crate::media::{self, Auth, Credentials};
use crate::{Fetched, MediaError, MediaLimits, ParseError, SendError, Sent};

mod webhook;
pub use webhook::TwilioWebhooks;

pub const DEFAULT_API_URL: &str = "https://api.twilio.com";

/// Field names as the server reads them from the environment.
#[derive(Clone)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: String,
    /// Our WhatsApp sender (`TWILIO_WHATSAPP_NUMBER`).
    pub from: PhoneNumber,
    /// Base URL of the REST API, without a trailing slash.
    pub api_url: String,
}

impl TwilioConfig {
    pub fn new(
        account_sid: impl Into<String>,
        auth_token: impl Into<String>,
        from: PhoneNumber,
    ) -> Self {
        TwilioConfig {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            from,
            api_url: DEFAULT_API_URL.to_string(),
        }
    }
}

impl fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("from", &self.from)
            .field("api_url", &self.api_url)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Signatures

/// `X-Twilio-Signature` for a request: base64 of HMAC-SHA1, keyed with the
/// auth token, over the full URL followed by every POST parameter sorted by
/// name (then value), each name and value concatenated without delimiters.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Byte order, as Twilio sorts ("Unix-style, case-sensitive").
    sorted.sort();
    let mut mac = hmac_sha1(auth_token);
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    BASE64.encode(mac.finalize().into_bytes())
}

fn hmac_sha1(key: &str) -> Hmac<Sha1> {
    // HMAC takes keys of any length (long ones are hashed), so this cannot fail.
    Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length")
}

/// Whether `header` is the signature Twilio would send for this request.
///
/// Twilio signs the URL as it was configured, which may or may not carry the
/// scheme's default port (`:443`) while a proxy in front of us may add or
/// drop it; both forms are tried, as Twilio's own libraries do. An empty
/// token or header never verifies.
pub fn verify_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header: &str,
) -> bool {
    let header = header.trim();
    if auth_token.is_empty() || header.is_empty() {
        return false;
    }
    let matches = |u: &str| -> bool {
        let expected = signature(auth_token, u, params);
        bool::from(expected.as_bytes().ct_eq(header.as_bytes()))
    };
    // Evaluate both so the time taken does not tell which form matched.
    let first = matches(url);
    let second = other_port_form(url).is_some_and(|u| matches(&u));
    first | second
}

/// The same URL with the scheme's default port added, or removed if present.
fn other_port_form(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // Leave userinfo and IPv6 literals alone: Twilio webhook URLs do not use
    // them and splitting them on ':' would be wrong.
    if authority.contains('@') || authority.contains('[') {
        return None;
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port == default_port => {
            return Some(format!("{scheme}://{host}{tail}"));
        }
        Some(_) => return None,
        None => authority,
    };
    Some(format!("{scheme}://{host}:{default_port}{tail}"))
}

// ---------------------------------------------------------------------------
// Webhooks

fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A parameter with content: Twilio sends many fields empty rather than absent.
fn non_empty<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    get(params, name).map(str::trim).filter(|v| !v.is_empty())
}

fn owned(params: &[(String, String)], name: &str) -> Option<String> {
    non_empty(params, name).map(str::to_string)
}

/// What the contact wrote, untrimmed: leading spaces or line breaks may matter.
fn text(params: &[(String, String)], name: &str) -> Option<String> {
    get(params, name)
        .filter(|v| !v.trim().is_empty())
        .map(str::to_string)
}

fn required_phone(params: &[(String, String)], name: &str) -> Result<PhoneNumber, ParseError> {
    let raw = non_empty(params, name).ok_or_else(|| ParseError::missing(name))?;
    PhoneNumber::parse(raw).map_err(|e| ParseError(format!("`{name}` is not a phone number: {e}")))
}

fn message_sid(params: &[(String, String)]) -> Result<String, ParseError> {
    ["MessageSid", "SmsMessageSid", "SmsSid"]
        .iter()
        .find_map(|n| owned(params, n))
        .ok_or_else(|| ParseError::missing("MessageSid"))
}

fn coordinate(params: &[(String, String)], name: &str, limit: f64) -> Result<f64, ParseError> {
    let raw = non_empty(params, name).ok_or_else(|| ParseError::missing(name))?;
    raw.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && v.abs() <= limit)
        .ok_or_else(|| {
            ParseError(format!(
                "`{name}` is not a coordinate between -{limit} and {limit}: '{}'",
                raw.chars().take(40).collect::<String>()
            ))
        })
}

/// Twilio allows at most 10 media per message; a larger count is not Twilio.
const MAX_MEDIA: usize = 10;

fn media(params: &[(String, String)]) -> Result<Vec<Media>, ParseError> {
    let count = match non_empty(params, "NumMedia") {
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_MEDIA)
            .ok_or_else(|| {
                ParseError(format!(
                    "`NumMedia` is not a number from 0 to {MAX_MEDIA}: '{}'",
                    n.chars().take(20).collect::<String>()
                ))
            })?,
        // Without a count, take the consecutive MediaUrlN that are there.
        None => (0..MAX_MEDIA)
            .take_while(|i| non_empty(params, &format!("MediaUrl{i}")).is_some())
            .count(),
    };
    (0..count)
        .map(|i| {
            let url_field = format!("MediaUrl{i}");
            let url = owned(params, &url_field).ok_or_else(|| {
                ParseError(format!("missing field `{url_field}` (NumMedia is {count})"))
            })?;
            Ok(Media {
                url: Some(url),
                content_type: owned(params, &format!("MediaContentType{i}")),
                ..Media::default()
            })
        })
        .collect()
}

fn media_kind(content_type: Option<&str>) -> MessageKind {
    let ct = content_type.unwrap_or("").trim().to_ascii_lowercase();
    // image/webp is also how stickers arrive; Twilio does not tell them
    // apart, so they are kept as images.
    if ct.starts_with("image/") {
        MessageKind::Image
    } else if ct.starts_with("audio/") {
        MessageKind::Audio
    } else if ct.starts_with("video/") {
        MessageKind::Video
    } else {
        MessageKind::Document
    }
}

/// An incoming WhatsApp message from Twilio's webhook parameters.
pub fn parse_inbound(params: &[(String, String)]) -> Result<InboundMessage, ParseError> {
    let from = required_phone(params, "From")?;
    let provider_message_id = message_sid(params)?;
    let body = text(params, "Body");
    let media = media(params)?;

    let mut extra = Extra {
        context_id: owned(params, "OriginalRepliedMessageSid"),
        ..Extra::default()
    };
    let (kind, text) = if let Some(list_id) = owned(params, "ListId") {
        extra.reply_id = Some(list_id);
        (MessageKind::Interactive, text(params, "ListTitle").or(body))
    } else if let Some(payload) = owned(params, "ButtonPayload") {
        extra.reply_id = Some(payload);
        (MessageKind::Button, text(params, "ButtonText").or(body))
    } else if let Some(first) = media.first() {
        (media_kind(first.content_type.as_deref()), body)
    } else if non_empty(params, "Latitude").is_some() || non_empty(params, "Longitude").is_some() {
        extra.location = Some(Location {
            latitude: coordinate(params, "Latitude", 90.0)?,
            longitude: coordinate(params, "Longitude", 180.0)?,
            name: owned(params, "Label"),
            address: owned(params, "Address"),
        });
        (MessageKind::Location, body)
    } else {
        (MessageKind::Text, body)
    };

    Ok(InboundMessage {
        // Routed to its bot by the caller, which knows the bots.
        bot_id: confab_model::DEFAULT_BOT,
        channel: Channel::Twilio,
        provider_message_id,
        from,
        to: owned(params, "To"),
        profile_name: owned(params, "ProfileName"),
        kind,
        text,
        media,
        extra,
    })
}

/// A delivery report from Twilio's status callback; `None` for statuses that
/// are not progress of a message we sent (`receiving`, `received`).
pub fn parse_status(params: &[(String, String)]) -> Result<Option<StatusUpdate>, ParseError> {
    let provider_message_id = message_sid(params)?;
    let raw = non_empty(params, "MessageStatus")
        .or_else(|| non_empty(params, "SmsStatus"))
        .ok_or_else(|| ParseError::missing("MessageStatus"))?;
    let status = match raw {
        "queued" | "sending" | "accepted" | "scheduled" => DeliveryStatus::Accepted,
        "sent" => DeliveryStatus::Sent,
        // Only multi-part SMS are partially delivered; for our purposes the
        // message left Twilio.
        "partially_delivered" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" => DeliveryStatus::Read,
        "failed" | "canceled" => DeliveryStatus::Failed,
        "undelivered" => DeliveryStatus::Undelivered,
        "receiving" | "received" => return Ok(None),
        other => {
            return Err(ParseError(format!(
                "`MessageStatus` '{}' is not a Twilio message status",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    let code = owned(params, "ErrorCode").filter(|c| c != "0");
    let error = match (code, owned(params, "ErrorMessage")) {
        (None, None) => None,
        (code, message) => Some(ProviderError {
            message: message.unwrap_or_else(|| match &code {
                Some(c) => format!("Twilio error {c}"),
                None => "Twilio reported an error".to_string(),
            }),
            code,
        }),
    };
    Ok(Some(StatusUpdate {
        channel: Channel::Twilio,
        provider_message_id,
        status,
        error,
    }))
}

// ---------------------------------------------------------------------------
// Webhooks

// ---------------------------------------------------------------------------
// TwiML

/// A TwiML response that sends `replies` in order; with none, Twilio sends
/// nothing. Interactive content becomes numbered text. Templates cannot be
/// sent as TwiML and are left out (send them through [`TwilioClient`]).
pub fn twiml(replies: &[OutboundContent]) -> String {
    let mut xml = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#);
    for reply in replies {
        match reply {
            OutboundContent::Template { .. } => {
                tracing::warn!("a template cannot be sent as a TwiML reply; left out");
            }
            OutboundContent::Media { url, caption, .. } => {
                xml.push_str("<Message>");
                if let Some(caption) = caption {
                    push_element(&mut xml, "Body", caption);
                }
                push_element(&mut xml, "Media", url);
                xml.push_str("</Message>");
            }
            other => {
                xml.push_str("<Message>");
                push_element(&mut xml, "Body", &other.text().unwrap_or_default());
                xml.push_str("</Message>");
            }
        }
    }
    xml.push_str("</Response>");
    xml
}

fn push_element(xml: &mut String, name: &str, text: &str) {
    xml.push('<');
    xml.push_str(name);
    xml.push('>');
    push_escaped(xml, text);
    xml.push_str("</");
    xml.push_str(name);
    xml.push('>');
}

fn push_escaped(xml: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => xml.push_str("&amp;"),
            '<' => xml.push_str("&lt;"),
            '>' => xml.push_str("&gt;"),
            '"' => xml.push_str("&quot;"),
            '\'' => xml.push_str("&apos;"),
            // XML 1.0 cannot carry other control characters at all, not even
            // escaped; dropping them keeps the document valid.
            '\t' | '\n' | '\r' => xml.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => xml.push(c),
        }
    }
}

// ---------------------------------------------------------------------------
// Sending

/// Sends through Twilio's Messages resource and fetches inbound media.
#[derive(Clone, Debug)]
pub struct TwilioClient {
    cfg: TwilioConfig,
    http: reqwest::Client,
    /// Follows no redirects by itself; see [`media::download`].
    media_http: reqwest::Client,
    messages_url: String,
}

#[derive(Deserialize)]
struct CreatedMessage {
    sid: Option<String>,
}

/// Twilio's error body: `{code, message, more_info, status}`.
#[derive(Deserialize)]
struct TwilioErrorBody {
    code: Option<serde_json::Value>,
    message: Option<String>,
}

impl TwilioClient {
    pub fn new(cfg: TwilioConfig, http: reqwest::Client) -> Self {
        Self::sharing(cfg, http, media::client())
    }

    /// A client that downloads media through `media_http` (see
    /// [`media::client`]), which many clients may share.
    pub fn sharing(cfg: TwilioConfig, http: reqwest::Client, media_http: reqwest::Client) -> Self {
        let messages_url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            cfg.api_url.trim_end_matches('/'),
            cfg.account_sid
        );
        TwilioClient {
            cfg,
            http,
            media_http,
            messages_url,
        }
    }

    pub fn config(&self) -> &TwilioConfig {
        &self.cfg
    }

    /// Sends `content` to `to`; `status_callback` is where Twilio reports
    /// delivery progress.
    pub async fn send(
        &self,
        to: &PhoneNumber,
        content: &OutboundContent,
        status_callback: Option<&str>,
    ) -> Result<Sent, SendError> {
        let form = self.form(to, content, status_callback)?;
        let response = self
            .http
            .post(&self.messages_url)
            .basic_auth(&self.cfg.account_sid, Some(&self.cfg.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_error("Twilio", e))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error("Twilio", e))?;

        if status.is_success() {
            let sid = serde_json::from_slice::<CreatedMessage>(&body)
                .ok()
                .and_then(|m| m.sid)
                .filter(|s| !s.is_empty());
            return match sid {
                Some(provider_message_id) => Ok(Sent {
                    provider_message_id,
                }),
                // The message may well have gone out; sending again could
                // duplicate it, so this is not retried.
                None => Err(SendError::invalid(format!(
                    "Twilio answered {status} without a message sid: {}",
                    snippet(&body)
                ))),
            };
        }

        let parsed = serde_json::from_slice::<TwilioErrorBody>(&body).ok();
        let code = parsed.as_ref().and_then(|b| match &b.code {
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        });
        let message = parsed
            .and_then(|b| b.message)
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| format!("HTTP {status}: {}", snippet(&body)));
        if status_is_retryable(status) {
            let code = code.map(|c| format!(" (code {c})")).unwrap_or_default();
            return Err(SendError::Retryable {
                message: format!("Twilio {status}{code}: {message}"),
                retry_after: wait,
            });
        }
        Err(SendError::Permanent(ProviderError { code, message }))
    }

    /// Downloads a MediaUrlN from a webhook. Basic auth (account SID : auth
    /// token) is sent only when the URL's scheme+host+port equals that of the
    /// configured `api_url` (Twilio's API host): the credentials never go to
    /// another host, neither in the first request nor after a redirect (and
    /// not to the API host either once a redirect has left it). Follows up to
    /// 5 redirects; Twilio answers with one to short-lived storage that needs
    /// no credentials.
    pub async fn fetch_media(
        &self,
        url: &str,
        limits: &MediaLimits,
    ) -> Result<Fetched, MediaError> {
        // An api_url that does not parse matches no origin: nothing is sent.
        let credentials = reqwest::Url::parse(&self.cfg.api_url)
            .ok()
            .map(|origin| Credentials {
                auth: Auth::Basic {
                    user: &self.cfg.account_sid,
                    password: &self.cfg.auth_token,
                },
                origin,
            });
        media::download(&self.media_http, url, credentials.as_ref(), None, limits).await
    }

    fn form(
        &self,
        to: &PhoneNumber,
        content: &OutboundContent,
        status_callback: Option<&str>,
    ) -> Result<Vec<(&'static str, String)>, SendError> {
        let mut form = vec![
            ("To", to.whatsapp_address()),
            ("From", self.cfg.from.whatsapp_address()),
        ];
        match content {
            OutboundContent::Text { body } => form.push(("Body", body.clone())),
            OutboundContent::Media { url, caption, .. } => {
                form.push(("MediaUrl", url.clone()));
                if let Some(caption) = caption {
                    form.push(("Body", caption.clone()));
                }
            }
            OutboundContent::Template { template } => {
                match template
                    .for_channel(Channel::Twilio)
                    .map_err(SendError::invalid)?
                {
                    TemplateSpec::Twilio {
                        content_sid,
                        variables,
                    } => {
                        form.push(("ContentSid", content_sid.to_string()));
                        if let Some(vars) = variables {
                            // A map of JSON values always serialises.
                            let json = serde_json::to_string(vars).map_err(|e| {
                                SendError::invalid(format!("template variables: {e}"))
                            })?;
                            form.push(("ContentVariables", json));
                        }
                    }
                    TemplateSpec::Meta { .. } => {
                        return Err(SendError::invalid("not a Twilio template"));
                    }
                }
            }
            // Native buttons and lists need a Content API template on Twilio;
            // free-form ones go out as numbered text.
            OutboundContent::Buttons { .. } | OutboundContent::List { .. } => {
                form.push(("Body", content.text().unwrap_or_default()));
            }
        }
        if let Some(cb) = status_callback {
            form.push(("StatusCallback", cb.to_string()));
        }
        Ok(form)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn published_example() -> Vec<(String, String)> {
        p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ])
    }

    const EXAMPLE_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const EXAMPLE_SIG: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

    #[test]
    fn signature_matches_twilios_published_example() {
        assert_eq!(
            signature("12345", EXAMPLE_URL, &published_example()),
            EXAMPLE_SIG
        );
        // Parameter order in the request does not matter.
        let mut reversed = published_example();
        reversed.reverse();
        assert_eq!(signature("12345", EXAMPLE_URL, &reversed), EXAMPLE_SIG);
    }

    #[test]
    fn verify_accepts_only_the_right_signature() {
        let params = published_example();
        assert!(verify_signature("12345", EXAMPLE_URL, &params, EXAMPLE_SIG));
        assert!(verify_signature(
            "12345",
            EXAMPLE_URL,
            &params,
            &format!(" {EXAMPLE_SIG} ")
        ));
        assert!(!verify_signature("12345", EXAMPLE_URL, &params, ""));
        assert!(!verify_signature("12345", EXAMPLE_URL, &params, "   "));
        assert!(!verify_signature(
            "12345",
            EXAMPLE_URL,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ"
        ));
        assert!(!verify_signature(
            "12345",
            EXAMPLE_URL,
            &params,
            "AAAATR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!verify_signature(
            "wrong",
            EXAMPLE_URL,
            &params,
            EXAMPLE_SIG
        ));
        assert!(!verify_signature("", EXAMPLE_URL, &params, EXAMPLE_SIG));
        // A changed parameter, URL or extra parameter breaks it.
        let mut tampered = params.clone();
        tampered[2].1 = "9999".into();
        assert!(!verify_signature(
            "12345",
            EXAMPLE_URL,
            &tampered,
            EXAMPLE_SIG
        ));
        assert!(!verify_signature(
            "12345",
            "https://mycompany.com/myapp.php?foo=1",
            &params,
            EXAMPLE_SIG
        ));
        let mut extra = params.clone();
        extra.push(("Body".into(), "hi".into()));
        assert!(!verify_signature("12345", EXAMPLE_URL, &extra, EXAMPLE_SIG));
    }

    #[test]
    fn verify_tolerates_the_default_port() {
        let params = published_example();
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        let sig_with_port = signature("12345", with_port, &params);
        assert!(verify_signature(
            "12345",
            EXAMPLE_URL,
            &params,
            &sig_with_port
        ));
        assert!(verify_signature("12345", with_port, &params, EXAMPLE_SIG));
        assert!(!verify_signature(
            "12345",
            "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
            &params,
            EXAMPLE_SIG
        ));
        assert_eq!(
            other_port_form("http://h.test/x"),
            Some("http://h.test:80/x".into())
        );
        assert_eq!(
            other_port_form("http://h.test:80"),
            Some("http://h.test".into())
        );
        assert_eq!(other_port_form("http://h.test:8000/x"), None);
        assert_eq!(other_port_form("ftp://h.test/x"), None);
    }

    #[test]
    fn repeated_names_sort_by_value() {
        let a = p(&[("MediaUrl", "b"), ("MediaUrl", "a")]);
        let b = p(&[("MediaUrl", "a"), ("MediaUrl", "b")]);
        assert_eq!(
            signature("t", "https://x.test/", &a),
            signature("t", "https://x.test/", &b)
        );
    }

    #[test]
    fn text_message() {
        let m = parse_inbound(&p(&[
            ("SmsMessageSid", "SM11"),
            ("NumMedia", "0"),
            ("ProfileName", "Ana"),
            ("WaId", "14155550100"),
            ("Body", "Hello & bye"),
            ("To", "whatsapp:+14155238886"),
            ("From", "whatsapp:+14155550100"),
            ("MessageSid", "SM22"),
        ]))
        .unwrap();
        assert_eq!(m.channel, Channel::Twilio);
        assert_eq!(m.provider_message_id, "SM22");
        assert_eq!(m.from.as_str(), "+14155550100");
        assert_eq!(m.to.as_deref(), Some("whatsapp:+14155238886"));
        assert_eq!(m.profile_name.as_deref(), Some("Ana"));
        assert_eq!(m.kind, MessageKind::Text);
        assert_eq!(m.text.as_deref(), Some("Hello & bye"));
        assert!(m.media.is_empty());
        assert!(m.extra.is_empty());
    }

    #[test]
    fn empty_body_is_still_a_text_message() {
        let m = parse_inbound(&p(&[
            ("From", "whatsapp:+14155550100"),
            ("SmsMessageSid", "SM1"),
            ("Body", ""),
        ]))
        .unwrap();
        assert_eq!(m.kind, MessageKind::Text);
        assert_eq!(m.text, None);
        assert_eq!(m.provider_message_id, "SM1");
    }

    #[test]
    fn media_kinds_follow_the_first_content_type() {
        for (ct, kind) in [
            ("image/jpeg", MessageKind::Image),
            ("image/webp", MessageKind::Image),
            ("audio/ogg", MessageKind::Audio),
            ("video/mp4", MessageKind::Video),
            ("application/pdf", MessageKind::Document),
            ("text/vcard", MessageKind::Document),
        ] {
            let m = parse_inbound(&p(&[
                ("From", "whatsapp:+14155550100"),
                ("MessageSid", "MM1"),
                ("NumMedia", "2"),
                ("Body", "caption"),
                ("MediaUrl0", "https://api.twilio.com/m/0"),
                ("MediaContentType0", ct),
                ("MediaUrl1", "https://api.twilio.com/m/1"),
                ("MediaContentType1", "image/png"),
            ]))
            .unwrap();
            assert_eq!(m.kind, kind, "{ct}");
            assert_eq!(m.text.as_deref(), Some("caption"));
            assert_eq!(m.media.len(), 2);
            assert_eq!(
                m.media[0].url.as_deref(),
                Some("https://api.twilio.com/m/0")
            );
            assert_eq!(m.media[0].content_type.as_deref(), Some(ct));
            assert_eq!(m.media[1].content_type.as_deref(), Some("image/png"));
        }
    }

    #[test]
    fn media_without_count_and_bad_counts() {
        let m = parse_inbound(&p(&[
            ("From", "whatsapp:+14155550100"),
            ("MessageSid", "MM1"),
            ("MediaUrl0", "https://x.test/a"),
            ("MediaContentType0", "video/mp4"),
        ]))
        .unwrap();
        assert_eq!(m.kind, MessageKind::Video);
        assert_eq!(m.media.len(), 1);

        let e = parse_inbound(&p(&[
            ("From", "whatsapp:+14155550100"),
            ("MessageSid", "MM1"),
            ("NumMedia", "two"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("`NumMedia`"), "{e}");
        let e = parse_inbound(&p(&[
            ("From", "whatsapp:+14155550100"),
            ("MessageSid", "MM1"),
            ("NumMedia", "1"),
        ]))
        .unwrap_err();
        assert_eq!(e.to_string(), "missing field `MediaUrl0` (NumMedia is 1)");
    }

    #[test]
    fn location_message() {
        let m = parse_inbound(&p(&[
            ("From", "whatsapp:+14155550100"),
            ("MessageSid", "SM1"),
            ("Latitude", "37.7749"),
            ("Longitude", "-122.4194"),
            ("Address", "1 Market St"),
            ("Label", "Office"),
        ]))
        .unwrap();
        assert_eq!(m.kind, MessageKind::Location);
        assert_eq!(
            m.extra.location,
            Some(Location {
                latitude: 37.7749,
                longitude: -122.4194,
                name: Some("Office".into()),
                address: Some("1 Market St".into())
            })
        );
        for (lat, lon, field) in [
            ("91", "0", "Latitude"),
            ("north", "0", "Latitude"),
            ("1", "", "Longitude"),
            ("1", "NaN", "Longitude"),
        ] {
            let e = parse_inbound(&p(&[
                ("From", "whatsapp:+14155550100"),
                ("MessageSid", "SM1"),
                ("Latitude", lat),
                ("Longitude", lon),
            ]))
            .unwrap_err();
            assert!(
                e.to_string().contains(&format!("`{field}`")),
                "{lat},{lon}: {e}"
            );
        }
    }

    #[test]
    fn button_and_list_replies() {
        let m = parse_inbound(&p(&[
            ("From", "whatsapp:+14155550100"),
            ("MessageSid", "SM1"),
            ("Body", "Yes please"),
            ("ButtonText", "Yes please"),
            ("ButtonPayload", "yes"),
            ("OriginalRepliedMessageSid", "SM0"),
        ]))
        .unwrap();
        assert_eq!(m.kind, MessageKind::Button);
        assert_eq!(m.text.as_deref(), Some("Yes please"));
        assert_eq!(m.extra.reply_id.as_deref(), Some("yes"));
        assert_eq!(m.extra.context_id.as_deref(), Some("SM0"));

        let m = parse_inbound(&p(&[
            ("From", "whatsapp:+14155550100"),
            ("MessageSid", "SM2"),
            ("Body", "Express"),
            ("ListId", "express"),
            ("ListTitle", "Express"),
        ]))
        .unwrap();
        assert_eq!(m.kind, MessageKind::Interactive);
        assert_eq!(m.text.as_deref(), Some("Express"));
        assert_eq!(m.extra.reply_id.as_deref(), Some("express"));
    }

    #[test]
    fn inbound_errors_name_the_field() {
        let e = parse_inbound(&p(&[("MessageSid", "SM1"), ("Body", "hi")])).unwrap_err();
        assert_eq!(e.to_string(), "missing field `From`");
        let e =
            parse_inbound(&p(&[("From", "whatsapp:+14155550100"), ("Body", "hi")])).unwrap_err();
        assert_eq!(e.to_string(), "missing field `MessageSid`");
        let e =
            parse_inbound(&p(&[("From", "whatsapp:hello"), ("MessageSid", "SM1")])).unwrap_err();
        assert!(
            e.to_string().starts_with("`From` is not a phone number: "),
            "{e}"
        );
        let e = parse_inbound(&p(&[("From", "   "), ("MessageSid", "SM1")])).unwrap_err();
        assert_eq!(e.to_string(), "missing field `From`");
    }

    #[test]
    fn statuses() {
        for (raw, want) in [
            ("queued", DeliveryStatus::Accepted),
            ("sending", DeliveryStatus::Accepted),
            ("accepted", DeliveryStatus::Accepted),
            ("scheduled", DeliveryStatus::Accepted),
            ("sent", DeliveryStatus::Sent),
            ("delivered", DeliveryStatus::Delivered),
            ("read", DeliveryStatus::Read),
            ("failed", DeliveryStatus::Failed),
            ("canceled", DeliveryStatus::Failed),
            ("undelivered", DeliveryStatus::Undelivered),
        ] {
            let s = parse_status(&p(&[("MessageSid", "SM1"), ("MessageStatus", raw)]))
                .unwrap()
                .unwrap();
            assert_eq!(s.status, want, "{raw}");
            assert_eq!(s.provider_message_id, "SM1");
            assert_eq!(s.channel, Channel::Twilio);
            assert_eq!(s.error, None);
        }
        for raw in ["received", "receiving"] {
            assert_eq!(
                parse_status(&p(&[("MessageSid", "SM1"), ("MessageStatus", raw)])).unwrap(),
                None
            );
        }
        let e =
            parse_status(&p(&[("MessageSid", "SM1"), ("MessageStatus", "exploded")])).unwrap_err();
        assert!(e.to_string().contains("`MessageStatus`"), "{e}");
        assert_eq!(
            parse_status(&p(&[("MessageSid", "SM1")]))
                .unwrap_err()
                .to_string(),
            "missing field `MessageStatus`"
        );
        assert_eq!(
            parse_status(&p(&[("MessageStatus", "sent")]))
                .unwrap_err()
                .to_string(),
            "missing field `MessageSid`"
        );
    }

    #[test]
    fn failed_status_carries_the_error() {
        let s = parse_status(&p(&[
            ("MessageSid", "SM1"),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "63016"),
            ("ErrorMessage", "Outside the allowed window"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.status, DeliveryStatus::Undelivered);
        assert_eq!(
            s.error,
            Some(ProviderError {
                code: Some("63016".into()),
                message: "Outside the allowed window".into()
            })
        );
        let s = parse_status(&p(&[
            ("MessageSid", "SM1"),
            ("MessageStatus", "failed"),
            ("ErrorCode", "30008"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            s.error,
            Some(ProviderError {
                code: Some("30008".into()),
                message: "Twilio error 30008".into()
            })
        );
    }

    #[test]
    fn twiml_rendering() {
        assert_eq!(
            twiml(&[]),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#
        );
        let out = twiml(&[
            OutboundContent::Text {
                body: "Tom & Jerry <3 \"quotes\" 'x'\u{7}".into(),
            },
            OutboundContent::Media {
                kind: MessageKind::Image,
                url: "https://x.test/a.png?a=1&b=2".into(),
                caption: Some("pic".into()),
            },
            OutboundContent::Media {
                kind: MessageKind::Audio,
                url: "https://x.test/a.ogg".into(),
                caption: None,
            },
            OutboundContent::Buttons {
                body: "Pick".into(),
                buttons: vec![
                    confab_model::Button {
                        id: "a".into(),
                        title: "A".into(),
                    },
                    confab_model::Button {
                        id: "b".into(),
                        title: "B".into(),
                    },
                ],
            },
            OutboundContent::Template {
                template: Default::default(),
            },
        ]);
        assert_eq!(
            out,
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#,
                "<Message><Body>Tom &amp; Jerry &lt;3 &quot;quotes&quot; &apos;x&apos;</Body></Message>",
                "<Message><Body>pic</Body><Media>https://x.test/a.png?a=1&amp;b=2</Media></Message>",
                "<Message><Media>https://x.test/a.ogg</Media></Message>",
                "<Message><Body>Pick\n1. A\n2. B</Body></Message>",
                "</Response>"
            )
        );
    }

    #[test]
    fn config_debug_hides_the_token() {
        let cfg = TwilioConfig::new(
            "AC123",
            "super-secret-token",
            PhoneNumber::parse("+14155238886").unwrap(),
        );
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("super-secret-token"), "{dbg}");
        assert!(dbg.contains("AC123"));
        let client = TwilioClient::new(cfg, crate::http_client(std::time::Duration::from_secs(1)));
        assert!(!format!("{client:?}").contains("super-secret-token"));
    }
}
