//! A provider's webhooks behind one trait: read the request, say which
//! addresses it was sent to (they pick the bot), check its signature with
//! that bot's secret, parse it, and answer it. The server handles every
//! kind of channel the same way through [`of`] and [`all`], which read the
//! registry of kinds ([`crate::settings::KINDS`]).

use std::collections::HashMap;

use confab_model::{Channel, InboundMessage, OutboundContent, RejectedInbound, StatusUpdate};
use reqwest::header::HeaderMap;

/// A webhook request as the server received it, not yet trusted.
pub struct Request<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The URL the provider was given, as it would have signed it.
    pub url: &'a str,
}

impl Request<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Which of a provider's webhooks a request came to: its messages, or its
/// delivery reports (a provider may send both to one URL).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Hook {
    #[default]
    Inbound,
    Status,
}

impl Hook {
    /// How a rejected event of this hook is named.
    pub fn event(self) -> &'static str {
        match self {
            Hook::Inbound => "message",
            Hook::Status => "status",
        }
    }
}

/// Why a webhook request is refused; nothing of it is kept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Not the content type the provider sends (415).
    #[error("{0}")]
    ContentType(String),
    /// Not what the provider sends (400).
    #[error("{0}")]
    Malformed(String),
    /// No signature (403).
    #[error("{0}")]
    Unsigned(String),
    /// A signature that does not match (403).
    #[error("{0}")]
    Forged(String),
}

impl WebhookError {
    /// The outcome as counted in metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            WebhookError::ContentType(_) | WebhookError::Malformed(_) => "bad_request",
            WebhookError::Unsigned(_) => "unsigned",
            WebhookError::Forged(_) => "forged",
        }
    }
}

/// A request's body, read: a form's fields in order (Twilio), or nothing
/// beyond the raw body (a JSON body is read when parsed).
#[derive(Clone, Debug, Default)]
pub struct Incoming {
    pub hook: Hook,
    pub form: Vec<(String, String)>,
}

/// What one webhook request carried.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusUpdate>,
    /// Events that cannot be used (no id, a sender that is not a phone
    /// number), with the reason: kept, and acknowledged, since the provider
    /// would not send them any better again.
    pub rejected: Vec<RejectedInbound>,
    /// Events we do not handle: changes of other fields, statuses we do
    /// not track, account-level errors.
    pub ignored: usize,
    /// The address each message (by its id) was sent to: which bot it is for.
    pub sent_to: HashMap<String, String>,
}

/// Meta's subscription check (`hub.mode`, `hub.verify_token`, `hub.challenge`).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    pub mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    pub token: Option<String>,
    #[serde(rename = "hub.challenge")]
    pub challenge: Option<String>,
}

/// Longest provider message id accepted. Real ids are far shorter (Twilio
/// 34 characters, Meta about 60); a longer one is not from a provider and
/// would not fit the database's unique index.
pub const MAX_PROVIDER_ID: usize = 256;

/// One kind of channel's webhooks.
pub trait Webhooks: Send + Sync {
    fn channel(&self) -> Channel;

    /// The content type of the provider's requests, for the API document.
    fn content_type(&self) -> &'static str;

    /// What a hook receives, for the API document.
    fn about(&self, hook: Hook) -> &'static str;

    /// The JSON Schema of a hook's request body, for the API document: as
    /// much as the provider always sends (past it, what cannot be used is
    /// kept as rejected, not refused).
    fn body_schema(&self, hook: Hook) -> serde_json::Value;

    /// The hooks it has: each is a path, `/webhooks/<kind>` for
    /// [`Hook::Inbound`] and `/webhooks/<kind>/status` for [`Hook::Status`].
    fn hooks(&self) -> &'static [Hook];

    /// Reads the body: a content type or a body the provider would not
    /// send is refused.
    fn read(&self, hook: Hook, req: &Request) -> Result<Incoming, WebhookError>;

    /// The addresses the request says it was sent to, read before it is
    /// trusted: they say whose secret checks it. None: it names none.
    fn addresses(&self, incoming: &Incoming, req: &Request) -> Vec<String>;

    /// The setting of a channel whose secret signs its webhooks.
    fn signed_with(&self) -> &'static str;

    /// Checks the request's signature with `secret`.
    fn verify(&self, secret: &str, incoming: &Incoming, req: &Request) -> Result<(), WebhookError>;

    /// What the request says. Only a request the provider would never send
    /// fails; an event in it that cannot be used is handed back in
    /// `rejected`.
    fn parse(&self, incoming: Incoming, req: &Request) -> Result<Batch, WebhookError>;

    /// Whether replies to a message go in the webhook's answer (TwiML)
    /// rather than through the outbox.
    fn replies_inline(&self) -> bool;

    /// Replies as the webhook's answer carries them.
    fn render(&self, replies: &[OutboundContent]) -> String;

    /// The answer to a request: `inline` replies (as `render` gave them),
    /// or an acknowledgement. Its content type and body.
    fn answer(&self, inline: Option<String>) -> (&'static str, String);

    /// The setting of a channel holding the token of a subscription
    /// handshake, for providers that make one.
    fn handshake_with(&self) -> Option<&'static str> {
        None
    }

    /// The challenge to echo when the handshake presents `expected`.
    fn handshake(&self, _q: &Handshake, _expected: &str) -> Option<String> {
        None
    }
}

/// Every kind of channel's webhooks.
pub fn all() -> impl Iterator<Item = &'static dyn Webhooks> {
    crate::settings::KINDS.iter().map(|k| k.webhooks)
}

/// The webhooks of `channel`; none for the simulator.
pub fn of(channel: Channel) -> Option<&'static dyn Webhooks> {
    all().find(|w| w.channel() == channel)
}
