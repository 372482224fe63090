//! `ai`: the assistant answers the contact (once, or every message while
//! it converses), or pulls data out of their message (`extract`); failures
//! are told to the contact and may branch.

use confab_model::OutboundContent;
use serde_json::Value;

use super::{Kind, Then, store};
use crate::answer::Reply;
use crate::definition::{AiMedia, AiNode};
use crate::engine::{Broken, Stepper};
use crate::run::{EffectResult, Event, Request, RunStatus};

/// What an `ai` node tells the contact when it cannot answer, by failure
/// code; a node's `errors` replace them. `{what}` is what was sent.
fn ai_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "not_configured" => {
            "The assistant is not set up yet, so I can't answer that. Please try again later."
        }
        "failed" => {
            "Sorry, I couldn't come up with an answer just now. Please try again in a moment."
        }
        "unsupported" => {
            "Sorry, I can't handle {what} yet. Send me text, a photo, a voice note or a PDF."
        }
        "too_large" => "That file is too large for me to look at. Could you send a smaller one?",
        "no_text" => {
            "I couldn't find any text in that PDF; it may be a scan or empty. Could you send one with selectable text, or type your question?"
        }
        "unreadable" => {
            "I couldn't open that file. Could you send it again, or type your question?"
        }
        "not_heard" => {
            "I couldn't make out any words in that voice note. Could you try again, or type your message?"
        }
        _ => return None,
    })
}

/// The failure codes an `ai` node's `errors` may name.
pub const AI_FAILURES: [&str; 8] = [
    "not_configured",
    "failed",
    "unsupported",
    "too_large",
    "no_text",
    "unreadable",
    "not_heard",
    "not_extracted",
];

pub const AI_BUSY_TEXT: &str = "One moment, I'm still working on your previous message.";

impl Kind for AiNode {
    fn enter(&self, s: &mut Stepper) -> Result<Then, Broken> {
        ask(self, s)?;
        Ok(Then::Wait)
    }

    /// A conversing node answers every message.
    fn answer(&self, s: &mut Stepper, _reply: &Reply) -> Option<Result<(), Broken>> {
        Some(ask(self, s))
    }

    fn while_waiting(&self, s: &mut Stepper) -> Option<Result<(), Broken>> {
        if s.run.status != RunStatus::WaitingEffect {
            return None;
        }
        if self.converse {
            // Answered next, with this message as the latest.
            s.run.queued = true;
            s.events.push(Event::Ignored {
                reason: "answered once the current answer is out".into(),
            });
        } else {
            s.events.push(Event::Ignored {
                reason: "the assistant is still answering".into(),
            });
            s.send(OutboundContent::Text {
                body: AI_BUSY_TEXT.into(),
            });
        }
        Some(Ok(()))
    }

    fn result(&self, s: &mut Stepper, result: EffectResult) -> Option<Result<(), Broken>> {
        Some(match result {
            EffectResult::Ai { text, heard } => match &self.extract {
                Some(schema) => match crate::extract::validate(schema, &text) {
                    Ok(data) => {
                        store(s, &self.save_as, Value::Object(data));
                        s.go(self.next.clone())
                    }
                    Err(e) => {
                        s.events.push(Event::Invalid {
                            node: self.id.clone(),
                            code: "not_extracted".into(),
                        });
                        s.events.push(Event::Error {
                            message: format!("nothing could be extracted: {e}"),
                        });
                        store(s, &self.save_as, Value::Null);
                        failed(self, s, "not_extracted", "")
                    }
                },
                None => {
                    store(s, &self.save_as, Value::String(text.clone()));
                    if self.replies() && !text.trim().is_empty() {
                        let body = match heard {
                            Some(h) => format!("🎙️ \u{201c}{}\u{201d}\n\n{text}", h.trim()),
                            None => text,
                        };
                        s.send(OutboundContent::Text { body });
                    }
                    after(self, s, false)
                }
            },
            EffectResult::AiFailed { code, error } => {
                s.events.push(Event::Invalid {
                    node: self.id.clone(),
                    code: code.clone(),
                });
                failed(self, s, &code, &error)
            }
            _ => return None,
        })
    }

    fn problems(&self, _flow_exists: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(schema) = &self.extract {
            if let Err(e) = crate::extract::check_schema(schema) {
                out.push(e);
            }
            if self.reply == Some(true) {
                out.push("an ai node that extracts does not reply: leave reply out".into());
            }
        }
        if self.converse
            && (self.next.is_some() || self.on_failure.is_some() || self.extract.is_some())
        {
            out.push(
                "a conversing ai node stays where it is: it takes no next, on_failure or extract"
                    .into(),
            );
        }
        for code in self.errors.keys() {
            if !AI_FAILURES.contains(&code.as_str()) {
                out.push(format!(
                    "errors names {code:?}, not one of {}",
                    AI_FAILURES.join(", ")
                ));
            }
        }
        if self.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            out.push("temperature must be 0 to 2".into());
        }
        if self.max_tokens == Some(0) {
            out.push("max_tokens must be above 0".into());
        }
        out
    }
}

/// Asks the AI about the contact's latest message; the run waits for the answer.
fn ask(n: &AiNode, s: &mut Stepper) -> Result<(), Broken> {
    let system = n.system.as_deref().map(|t| s.render(t)).transpose()?;
    let prompt = n.prompt.as_deref().map(|t| s.render(t)).transpose()?;
    s.request(Request::Ai {
        system,
        prompt,
        history: n.history,
        media: n.media == AiMedia::Understand,
        model: n.model.clone(),
        temperature: n.temperature,
        max_tokens: n.max_tokens,
        schema: n.extract.as_ref().map(crate::extract::strict_form),
    });
    Ok(())
}

/// Tells the contact why the AI could not help, then goes on.
fn failed(n: &AiNode, s: &mut Stepper, code: &str, what: &str) -> Result<(), Broken> {
    match n.errors.get(code) {
        Some(t) => s.send_text(t)?,
        None => {
            if let Some(t) = ai_text(code) {
                let what = if what.is_empty() { "that" } else { what };
                s.send(OutboundContent::Text {
                    body: t.replace("{what}", what),
                });
            }
        }
    }
    after(n, s, true)
}

/// A conversing node waits for the next message; others go on.
fn after(n: &AiNode, s: &mut Stepper, failed: bool) -> Result<(), Broken> {
    if n.converse {
        if std::mem::take(&mut s.run.queued) {
            return ask(n, s);
        }
        s.run.status = RunStatus::WaitingInput;
        return Ok(());
    }
    let target = if failed {
        n.on_failure.clone().or_else(|| n.next.clone())
    } else {
        n.next.clone()
    };
    s.go(target)
}
