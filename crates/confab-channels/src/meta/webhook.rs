//! Meta's webhooks behind the channel trait.

use confab_model::{Channel, OutboundContent};
use serde_json::{Value, json};

use super::{parse_webhook, phone_number_ids, verify_handshake, verify_signature};
use crate::webhook::{Batch, Handshake, Hook, Incoming, Request, WebhookError};

/// Meta's webhooks: one URL for messages and statuses, JSON signed with
/// the app secret (`X-Hub-Signature-256`), routed by each change's
/// `metadata.phone_number_id`, acknowledged with a plain `OK`; replies go
/// through the Cloud API.
pub struct MetaWebhooks;

impl crate::webhook::Webhooks for MetaWebhooks {
    fn channel(&self) -> Channel {
        Channel::Meta
    }

    fn content_type(&self) -> &'static str {
        "application/json"
    }

    fn about(&self, _hook: Hook) -> &'static str {
        "Messages and statuses from the Meta WhatsApp Cloud API, batched, signed with \
         `X-Hub-Signature-256`: each message is for the bot with the phone number id it was \
         sent to, and the body is checked with that bot's app secret."
    }

    fn body_schema(&self, _hook: Hook) -> Value {
        let objects = || json!({"type": "array", "items": {"type": "object"}});
        // Past the envelope, a change or event that cannot be used is kept
        // as rejected, not refused: Meta would send it again and again,
        // with the good events beside it.
        json!({
            "type": "object",
            "required": ["object", "entry"],
            "properties": {
                "object": {"type": "string", "enum": ["whatsapp_business_account"]},
                "entry": {"type": "array", "items": {
                    "type": "object", "required": ["changes"],
                    "properties": {"changes": objects()}
                }}
            }
        })
    }

    fn hooks(&self) -> &'static [Hook] {
        &[Hook::Inbound]
    }

    fn read(&self, hook: Hook, _req: &Request) -> Result<Incoming, WebhookError> {
        Ok(Incoming {
            hook,
            form: Vec::new(),
        })
    }

    fn addresses(&self, _incoming: &Incoming, req: &Request) -> Vec<String> {
        phone_number_ids(req.body)
    }

    fn signed_with(&self) -> &'static str {
        "app_secret"
    }

    fn verify(
        &self,
        secret: &str,
        _incoming: &Incoming,
        req: &Request,
    ) -> Result<(), WebhookError> {
        let Some(given) = req.header("x-hub-signature-256") else {
            return Err(WebhookError::Unsigned("missing X-Hub-Signature-256".into()));
        };
        if verify_signature(secret, req.body, given) {
            Ok(())
        } else {
            Err(WebhookError::Forged(
                "X-Hub-Signature-256 does not match".into(),
            ))
        }
    }

    fn parse(&self, _incoming: Incoming, req: &Request) -> Result<Batch, WebhookError> {
        parse_webhook(req.body).map_err(|e| WebhookError::Malformed(e.to_string()))
    }

    fn replies_inline(&self) -> bool {
        false
    }

    fn render(&self, _replies: &[OutboundContent]) -> String {
        String::new()
    }

    fn answer(&self, _inline: Option<String>) -> (&'static str, String) {
        ("text/plain; charset=utf-8", "OK".into())
    }

    fn handshake_with(&self) -> Option<&'static str> {
        Some("verify_token")
    }

    fn handshake(&self, q: &Handshake, expected: &str) -> Option<String> {
        verify_handshake(
            q.mode.as_deref(),
            q.token.as_deref(),
            q.challenge.as_deref(),
            expected,
        )
    }
}
