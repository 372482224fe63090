//! The two WhatsApp providers Confab speaks to, Twilio and Meta's Cloud API:
//! verifying their webhooks, parsing them into [`confab_model`] types,
//! rendering replies, sending messages and fetching the media contacts send.
//!
//! Each kind of channel lives in its folder (`twilio/`, `meta/`) and is
//! found through the registry of kinds ([`settings::KINDS`]): its settings,
//! its webhooks ([`webhook::Webhooks`]) and the client built from a bot's
//! settings ([`client::Client`]). The server names no kind of channel.
//!
//! Nothing here stores or schedules anything; the caller decides what to do
//! with a parsed message or a [`SendError`].

pub mod client;
pub mod http;
pub mod media;
pub mod meta;
pub mod settings;
pub mod twilio;
pub mod webhook;

use std::time::Duration;

use confab_model::ProviderError;

pub use http::{USER_AGENT, http_client};
pub use media::{Fetched, MediaError, MediaLimits};

/// A webhook the provider sent that we cannot turn into a message or status.
/// The text names the field at fault and is safe to return to the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub fn new(message: impl Into<String>) -> Self {
        ParseError(message.into())
    }

    pub(crate) fn missing(field: &str) -> Self {
        ParseError(format!("missing field `{field}`"))
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

/// Why a message could not be handed to the provider.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SendError {
    /// 429, 5xx, network/timeout: try again later. retry_after from Retry-After header if present.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The provider refused for good (4xx): store as failed with this error.
    #[error("{}", describe_provider_error(.0))]
    Permanent(ProviderError),
}

impl SendError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable { .. })
    }

    /// A refusal decided before any request, e.g. content the channel cannot carry.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        SendError::Permanent(ProviderError {
            code: None,
            message: message.into(),
        })
    }
}

fn describe_provider_error(e: &ProviderError) -> String {
    match &e.code {
        Some(code) => format!("provider error {code}: {}", e.message),
        None => e.message.clone(),
    }
}

/// The provider accepted the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub provider_message_id: String,
}
