//! `ask`: a question; the answer checked (text, number, email, date, yes/no,
//! choice, media...), stored, or asked again with why; a timeout branch.

use confab_model::OutboundContent;

use super::{Kind, Then};
use crate::answer::{self, Reply};
use crate::definition::{AnswerSpec, AskNode};
use crate::engine::{Broken, Stepper};
use crate::run::{Event, RunStatus};

impl Kind for AskNode {
    fn enter(&self, s: &mut Stepper) -> Result<Then, Broken> {
        let content = s.message_content(&self.message())?;
        s.send(content);
        s.run.status = RunStatus::WaitingInput;
        s.run.tries = 0;
        if let Some(secs) = self.timeout_seconds {
            s.start_timer(s.now_ms.saturating_add((secs as i64).saturating_mul(1000)));
        }
        Ok(Then::Wait)
    }

    fn answer(&self, s: &mut Stepper, reply: &Reply) -> Option<Result<(), Broken>> {
        Some(answered(self, s, reply))
    }

    fn timer(&self, s: &mut Stepper) -> Option<Result<(), Broken>> {
        (s.run.status == RunStatus::WaitingInput).then(|| {
            s.run.tries = 0;
            s.go(self.on_timeout.clone())
        })
    }

    fn problems(&self, _flow_exists: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut out = crate::check::message_problems(&self.message());
        if self.save_as.trim().is_empty() {
            out.push("save_as is empty".into());
        }
        if self.max_tries.is_some() != self.on_give_up.is_some() {
            out.push("max_tries and on_give_up go together".into());
        }
        if self.timeout_seconds.is_some() != self.on_timeout.is_some() {
            out.push("timeout_seconds and on_timeout go together".into());
        }
        match &self.answer {
            Some(AnswerSpec::Text {
                pattern: Some(pat), ..
            }) => {
                if let Err(e) = regex::Regex::new(pat) {
                    out.push(format!(
                        "pattern {pat:?} is not a valid regular expression: {e}"
                    ));
                }
            }
            Some(AnswerSpec::Text {
                min_length: Some(min),
                max_length: Some(max),
                ..
            }) if min > max => {
                out.push(format!("min_length {min} is above max_length {max}"));
            }
            Some(AnswerSpec::Choice { options }) if options.is_empty() => {
                out.push("a choice needs options".into())
            }
            _ => {}
        }
        out
    }
}

fn answered(n: &AskNode, s: &mut Stepper, reply: &Reply) -> Result<(), Broken> {
    let re = match &n.answer {
        Some(AnswerSpec::Text {
            pattern: Some(p), ..
        }) => Some(
            crate::pattern::compiled(p).map_err(|e| Broken(format!("bad pattern {p:?}: {e}")))?,
        ),
        _ => None,
    };
    match answer::check(n.answer.as_ref(), reply, re.as_deref()) {
        Ok(value) => {
            s.set_var(&n.save_as, value);
            s.run.tries = 0;
            s.run.timer = None;
            s.go(n.next.clone())
        }
        Err(refusal) => {
            s.run.tries += 1;
            s.events.push(Event::Invalid {
                node: n.id.clone(),
                code: refusal.code.into(),
            });
            if let Some(max) = n.max_tries
                && s.run.tries >= max
            {
                s.run.tries = 0;
                s.run.timer = None;
                return s.go(n.on_give_up.clone());
            }
            let text = n.errors.get(refusal.code).or(n.error.as_ref()).cloned();
            match text {
                Some(t) => s.send_text(&t)?,
                None => s.send(OutboundContent::Text {
                    body: refusal.message,
                }),
            }
            let question = s.message_content(&n.message())?;
            s.send(question);
            Ok(())
        }
    }
}
