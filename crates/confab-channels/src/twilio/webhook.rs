//! Twilio's webhooks behind the channel trait.

use confab_model::{Channel, OutboundContent, PhoneNumber, RejectedInbound};

use super::{non_empty, parse_inbound, parse_status, twiml, verify_signature};
use crate::webhook::{Batch, Hook, Incoming, Request, WebhookError};

/// Twilio's webhooks: a form signed with the auth token over the URL
/// (`X-Twilio-Signature`), a message routed by the number it was sent to
/// (`To`), a delivery report by the number it went from (`From`), replies
/// carried in the TwiML answer.
pub struct TwilioWebhooks;

impl TwilioWebhooks {
    /// The fields every Twilio request of a hook has: without one, it is
    /// not Twilio's.
    fn required(hook: Hook) -> &'static [&'static str] {
        match hook {
            Hook::Inbound => &["From", "MessageSid"],
            Hook::Status => &["MessageSid", "MessageStatus"],
        }
    }
}

impl crate::webhook::Webhooks for TwilioWebhooks {
    fn channel(&self) -> Channel {
        Channel::Twilio
    }

    fn content_type(&self) -> &'static str {
        "application/x-www-form-urlencoded"
    }

    fn about(&self, hook: Hook) -> &'static str {
        match hook {
            Hook::Inbound => {
                "An inbound WhatsApp message from Twilio (form-encoded, signed with \
                 `X-Twilio-Signature`), for the bot with the number it was sent to (`To`). \
                 Answers TwiML."
            }
            Hook::Status => {
                "A delivery status callback from Twilio (`MessageSid`, `MessageStatus`, \
                 `ErrorCode`), checked with the token of the bot that sent the message (`From`)."
            }
        }
    }

    fn body_schema(&self, hook: Hook) -> serde_json::Value {
        let text = || serde_json::json!({"type": "string"});
        let present = || serde_json::json!({"type": "string", "maxLength": 256, "pattern": "\\S"});
        let properties = match hook {
            Hook::Inbound => serde_json::json!({
                "From": {"type": "string", "pattern": "\\S", "example": "whatsapp:+14155552671"},
                "MessageSid": present(),
                "To": text(), "Body": text(), "ProfileName": text(), "WaId": text(),
                "NumMedia": text(), "MediaUrl0": text(), "MediaContentType0": text(),
                "Latitude": text(), "Longitude": text(),
                "ButtonPayload": text(), "ButtonText": text(), "OriginalRepliedMessageSid": text(),
            }),
            Hook::Status => serde_json::json!({
                "MessageSid": present(),
                "MessageStatus": {"type": "string", "pattern": "\\S", "example": "delivered"},
                "ErrorCode": text(), "ErrorMessage": text(),
            }),
        };
        serde_json::json!({"type": "object", "required": Self::required(hook), "properties": properties})
    }

    fn hooks(&self) -> &'static [Hook] {
        &[Hook::Inbound, Hook::Status]
    }

    fn read(&self, hook: Hook, req: &Request) -> Result<Incoming, WebhookError> {
        let ct = req.header("content-type").unwrap_or("");
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return Err(WebhookError::ContentType(
                "Twilio webhooks must be application/x-www-form-urlencoded".into(),
            ));
        }
        let form = serde_urlencoded::from_bytes(req.body)
            .map_err(|e| WebhookError::Malformed(format!("the form body cannot be read: {e}")))?;
        Ok(Incoming { hook, form })
    }

    fn addresses(&self, incoming: &Incoming, _req: &Request) -> Vec<String> {
        let field = match incoming.hook {
            Hook::Inbound => "To",
            Hook::Status => "From",
        };
        non_empty(&incoming.form, field)
            .and_then(|v| PhoneNumber::parse(v).ok())
            .map(|p| vec![p.as_str().to_string()])
            .unwrap_or_default()
    }

    fn signed_with(&self) -> &'static str {
        "auth_token"
    }

    fn verify(&self, secret: &str, incoming: &Incoming, req: &Request) -> Result<(), WebhookError> {
        let Some(given) = req.header("x-twilio-signature") else {
            return Err(WebhookError::Unsigned("missing X-Twilio-Signature".into()));
        };
        if verify_signature(secret, req.url, &incoming.form, given) {
            Ok(())
        } else {
            tracing::warn!(url = %req.url, "Twilio signature does not match; is PUBLIC_URL right?");
            Err(WebhookError::Forged(
                "X-Twilio-Signature does not match".into(),
            ))
        }
    }

    fn parse(&self, incoming: Incoming, _req: &Request) -> Result<Batch, WebhookError> {
        let Incoming { hook, form } = incoming;
        if let Some(missing) = Self::required(hook)
            .iter()
            .find(|f| non_empty(&form, f).is_none())
        {
            return Err(WebhookError::Malformed(format!(
                "missing field `{missing}`"
            )));
        }
        let mut batch = Batch::default();
        let parsed = match hook {
            Hook::Inbound => parse_inbound(&form).map(|m| {
                if let Some(to) = m.to.as_deref().and_then(|t| PhoneNumber::parse(t).ok()) {
                    batch
                        .sent_to
                        .insert(m.provider_message_id.clone(), to.as_str().to_string());
                }
                batch.messages.push(m);
            }),
            Hook::Status => parse_status(&form).map(|s| match s {
                Some(s) => batch.statuses.push(s),
                None => batch.ignored += 1,
            }),
        };
        if let Err(e) = parsed {
            // Signed and well formed, but unusable (a `From` that is not a
            // phone number): kept as rejected, since Twilio would not send
            // it any better again.
            tracing::warn!(reason = %e, "Twilio {} rejected", hook.event());
            let id = non_empty(&form, "MessageSid")
                .filter(|id| id.chars().count() <= crate::webhook::MAX_PROVIDER_ID)
                .map(str::to_string);
            let payload: serde_json::Map<String, serde_json::Value> = form
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            batch.rejected.push(RejectedInbound {
                channel: Channel::Twilio,
                event: hook.event(),
                provider_message_id: id,
                reason: e.to_string(),
                payload: serde_json::Value::Object(payload).to_string(),
            });
        }
        Ok(batch)
    }

    fn replies_inline(&self) -> bool {
        true
    }

    fn render(&self, replies: &[OutboundContent]) -> String {
        twiml(replies)
    }

    fn answer(&self, inline: Option<String>) -> (&'static str, String) {
        (
            "text/xml; charset=utf-8",
            inline.unwrap_or_else(|| twiml(&[])),
        )
    }
}
