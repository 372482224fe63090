//! `menu`: numbered options; the answer (a number, a word, a label, a
//! synonym, a tapped id) picks the next node.

use confab_model::OutboundContent;
use serde_json::Value;

use super::{Kind, Then};
use crate::answer::{Reply, normalise};
use crate::definition::MenuNode;
use crate::engine::{Broken, MENU_ERROR, Stepper};
use crate::run::{Event, RunStatus};

impl Kind for MenuNode {
    fn enter(&self, s: &mut Stepper) -> Result<Then, Broken> {
        let content = content(self, s)?;
        s.send(content);
        s.run.status = RunStatus::WaitingInput;
        s.run.tries = 0;
        Ok(Then::Wait)
    }

    fn answer(&self, s: &mut Stepper, reply: &Reply) -> Option<Result<(), Broken>> {
        Some(answered(self, s, reply))
    }

    fn problems(&self, _flow_exists: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.options.is_empty() || self.options.len() > 10 {
            out.push("a menu needs 1 to 10 options".into());
        }
        if self.max_tries.is_some() != self.on_give_up.is_some() {
            out.push("max_tries and on_give_up go together".into());
        }
        out
    }
}

/// The menu as text: its question, then its options numbered.
fn content(n: &MenuNode, s: &Stepper) -> Result<OutboundContent, Broken> {
    let mut body = s.render(&n.text)?;
    for (i, o) in n.options.iter().enumerate() {
        body.push_str(&format!("\n{}. {}", i + 1, s.render(&o.label)?));
    }
    Ok(OutboundContent::Text { body })
}

fn answered(n: &MenuNode, s: &mut Stepper, reply: &Reply) -> Result<(), Broken> {
    const NUMBERS: [&str; 10] = [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    let a = normalise(reply.trimmed());
    let tapped = reply.reply_id.as_deref();
    let chosen = n.options.iter().enumerate().find(|(i, o)| {
        let value = o.value.as_deref().unwrap_or(&o.label);
        a == (i + 1).to_string()
            || NUMBERS.get(*i).is_some_and(|w| *w == a)
            || normalise(&o.label) == a
            || normalise(value) == a
            || o.synonyms.iter().any(|s| normalise(s) == a)
            || tapped.is_some_and(|t| t == value)
    });
    match chosen {
        Some((_, o)) => {
            if let Some(var) = &n.save_as {
                let value = o.value.clone().unwrap_or_else(|| o.label.clone());
                s.set_var(var, Value::String(value));
            }
            s.run.tries = 0;
            s.go(Some(o.next.clone()))
        }
        None => {
            s.run.tries += 1;
            s.events.push(Event::Invalid {
                node: n.id.clone(),
                code: "not_an_option".into(),
            });
            if let Some(max) = n.max_tries
                && s.run.tries >= max
            {
                s.run.tries = 0;
                return s.go(n.on_give_up.clone());
            }
            match &n.error {
                Some(t) => s.send_text(t)?,
                None => s.send(OutboundContent::Text {
                    body: MENU_ERROR.into(),
                }),
            }
            let menu = content(n, s)?;
            s.send(menu);
            Ok(())
        }
    }
}
