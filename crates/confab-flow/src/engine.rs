//! `step`: one input in, the new run state and the effects out. No I/O; the
//! runtime carries the effects out and feeds results back as inputs.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use confab_model::{Button, ListRow, ListSection, MessageKind, OutboundContent, Template};
use serde_json::{Map, Value};

use crate::answer::{self, Reply, normalise};
use crate::definition::{AiMedia, AiNode, AskNode, Flow, MenuNode, MessageSpec, Node};
use crate::run::{Effect, EffectResult, Event, Frame, Input, Request, Run, RunStatus};
use crate::template::{Context, Templates, time_text};

/// Nodes one step may enter before the run is stopped: a flow that loops
/// without waiting for the contact must not spin.
pub const STEP_BUDGET: usize = 100;

pub const ERROR_TEXT: &str =
    "Sorry, something went wrong on our side. Send *restart* to start again.";
pub const STOP_TEXT: &str =
    "You will not get any more messages from us. Send *start* if you change your mind.";
pub const START_TEXT: &str = "Welcome back! You will get our messages again.";
pub const EXPIRED_TEXT: &str = "It has been a while since we last spoke, so let's start again.";
pub const MENU_ERROR: &str =
    "Sorry, I did not get that. Please reply with the number of an option.";

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

/// Where the engine finds flows by id (a subflow names another flow).
pub trait Flows {
    fn flow(&self, id: &str) -> Option<&Flow>;
}

impl Flows for HashMap<String, Flow> {
    fn flow(&self, id: &str) -> Option<&Flow> {
        self.get(id)
    }
}

impl Flows for BTreeMap<String, Flow> {
    fn flow(&self, id: &str) -> Option<&Flow> {
        self.get(id)
    }
}

impl Flows for Flow {
    fn flow(&self, id: &str) -> Option<&Flow> {
        (self.id == id).then_some(self)
    }
}

/// The result of one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub run: Run,
    pub effects: Vec<Effect>,
    pub events: Vec<Event>,
}

impl Outcome {
    /// The messages this step sends, in order.
    pub fn sent(&self) -> Vec<&OutboundContent> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { content } => Some(content),
                _ => None,
            })
            .collect()
    }

    /// The request the run now waits for, if any.
    pub fn request(&self) -> Option<&Request> {
        self.effects.iter().find_map(|e| match e {
            Effect::Request { request } => Some(request),
            _ => None,
        })
    }
}

pub(crate) fn templates() -> &'static Templates {
    Templates::global()
}

/// Moves `run` by `input` at time `now_ms`.
pub fn step(flows: &dyn Flows, run: Run, input: Input, now_ms: i64) -> Outcome {
    let mut s = Stepper {
        flows,
        run,
        now_ms,
        effects: Vec::new(),
        events: Vec::new(),
        budget: STEP_BUDGET,
        answer: None,
        context: RefCell::new(None),
    };
    s.handle(input);
    Outcome {
        run: s.run,
        effects: s.effects,
        events: s.events,
    }
}

struct Stepper<'a> {
    flows: &'a dyn Flows,
    run: Run,
    now_ms: i64,
    effects: Vec<Effect>,
    events: Vec<Event>,
    budget: usize,
    /// The text of the message being handled, as `answer` in templates.
    answer: Option<String>,
    /// The template context (see [`Stepper::ctx`]), made when first asked
    /// for and kept until what it is made of changes (see
    /// [`Stepper::changed`]).
    context: RefCell<Option<Context>>,
}

/// What templates see: the run's variables, and `now`, `flow` and `answer`
/// over any variable of those names.
struct Scope<'a> {
    vars: &'a Map<String, Value>,
    now: String,
    flow: &'a str,
    answer: Option<&'a str>,
}

impl serde::Serialize for Scope<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        const OWN: [&str; 3] = ["now", "flow", "answer"];
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.vars {
            if !OWN.contains(&k.as_str()) {
                m.serialize_entry(k, v)?;
            }
        }
        m.serialize_entry("now", &self.now)?;
        m.serialize_entry("flow", &serde_json::json!({ "id": self.flow }))?;
        m.serialize_entry("answer", &self.answer)?;
        m.end()
    }
}

/// A step stopped by a problem in the flow (not in the contact's answer).
struct Broken(String);

impl From<String> for Broken {
    fn from(s: String) -> Broken {
        Broken(s)
    }
}

impl Stepper<'_> {
    fn handle(&mut self, input: Input) {
        let result = match input {
            Input::Start => self.restart(),
            Input::StartWith(input) => {
                self.run.vars.insert("input".into(), Value::Object(input));
                self.restart()
            }
            Input::Message(reply) => self.message(reply),
            Input::Timer(token) => self.timer(token),
            Input::Result(result) => self.result(result),
            Input::Resume => self.resume(),
        };
        if let Err(Broken(message)) = result {
            self.events.push(Event::Error { message });
            self.run.status = RunStatus::Failed;
            self.run.timer = None;
            self.send(OutboundContent::Text {
                body: ERROR_TEXT.into(),
            });
        }
    }

    fn flow(&self) -> Result<&Flow, Broken> {
        self.flows
            .flow(&self.run.flow)
            .ok_or_else(|| Broken(format!("flow {} is not loaded", self.run.flow)))
    }

    fn node(&self) -> Result<&Node, Broken> {
        let flow = self.flow()?;
        let id = self
            .run
            .node
            .as_deref()
            .ok_or_else(|| Broken("the run is at no node".into()))?;
        flow.node(id)
            .ok_or_else(|| Broken(format!("flow {} has no node {id}", flow.id)))
    }

    /// The template context: the run's variables as they are now.
    fn ctx(&self) -> Context {
        if let Some(c) = self.context.borrow().as_ref() {
            debug_assert!(*c == self.fresh_ctx(), "the template context is stale");
            return c.clone();
        }
        let c = self.fresh_ctx();
        *self.context.borrow_mut() = Some(c.clone());
        c
    }

    fn fresh_ctx(&self) -> Context {
        Context::new(&Scope {
            vars: &self.run.vars,
            now: time_text(self.now_ms),
            flow: &self.run.flow,
            answer: self.answer.as_deref(),
        })
    }

    /// Something templates see changed: the run, its flow, its variables
    /// or the answer.
    fn changed(&mut self) {
        *self.context.get_mut() = None;
    }

    fn set_var(&mut self, name: &str, value: Value) {
        self.run.vars.insert(name.to_string(), value);
        self.changed();
    }

    fn render(&self, template: &str) -> Result<String, Broken> {
        if let Some(text) = crate::template::plain(template) {
            return Ok(text.to_string());
        }
        templates()
            .render_in(template, &self.ctx())
            .map_err(|e| Broken(format!("template {template:?}: {e}")))
    }

    fn eval(&self, expr: &str) -> Result<Value, Broken> {
        templates()
            .eval_in(expr, &self.ctx())
            .map_err(|e| Broken(format!("expression {expr:?}: {e}")))
    }

    fn eval_map(&self, fields: &BTreeMap<String, String>) -> Result<Map<String, Value>, Broken> {
        fields
            .iter()
            .map(|(k, e)| Ok((k.clone(), self.eval(e)?)))
            .collect()
    }

    fn send(&mut self, content: OutboundContent) {
        self.effects.push(Effect::Send { content });
    }

    fn send_text(&mut self, template: &str) -> Result<(), Broken> {
        let body = self.render(template)?;
        if !body.trim().is_empty() {
            self.send(OutboundContent::Text { body });
        }
        Ok(())
    }

    fn request(&mut self, request: Request) {
        self.events.push(Event::Effect {
            kind: request_kind(&request).into(),
        });
        self.effects.push(Effect::Request { request });
        self.run.status = RunStatus::WaitingEffect;
    }

    /// A new run of the contact's flow, from its start; answers are
    /// dropped, what it was started with (`input`) kept.
    fn restart(&mut self) -> Result<(), Broken> {
        let root = self.run.root_flow().to_string();
        let contact = self.run.vars.get("contact").cloned().unwrap_or(Value::Null);
        let input = self.run.vars.remove("input");
        self.run = Run::new(&root, contact);
        if let Some(input) = input {
            self.run.vars.insert("input".into(), input);
        }
        self.changed();
        self.events.push(Event::Started { flow: root });
        let start = self.flow()?.start_node().map(str::to_string);
        self.go(start)
    }

    fn message(&mut self, reply: Reply) -> Result<(), Broken> {
        let text = reply.trimmed().to_string();
        self.events.push(Event::Input {
            text: text.chars().take(500).collect(),
        });
        self.answer = Some(text.clone());
        self.changed();
        let word = normalise(&text);
        match word.as_str() {
            "stop" | "unsubscribe" => {
                self.events.push(Event::Command {
                    name: "stop".into(),
                });
                self.effects.push(Effect::OptOut);
                self.send(OutboundContent::Text {
                    body: STOP_TEXT.into(),
                });
                return Ok(());
            }
            "start" => {
                self.events.push(Event::Command {
                    name: "start".into(),
                });
                self.effects.push(Effect::OptIn);
                self.send(OutboundContent::Text {
                    body: START_TEXT.into(),
                });
                return Ok(());
            }
            // While a person has the conversation, only stop and start are the bot's.
            _ if self.run.status == RunStatus::HandedOff => {}
            "restart" => {
                self.events.push(Event::Command {
                    name: "restart".into(),
                });
                return self.restart();
            }
            _ => {}
        }
        let root = self.flows.flow(self.run.root_flow());
        let handed_off = self.run.status == RunStatus::HandedOff;
        if !handed_off && root.is_some_and(|f| f.menu_keywords.iter().any(|k| normalise(k) == word))
        {
            self.events.push(Event::Command { name: word });
            return self.restart();
        }
        match self.run.status {
            RunStatus::WaitingInput if self.run.node.is_none() => self.restart(),
            RunStatus::WaitingInput => self.answer(&reply),
            RunStatus::Completed => match root.and_then(|f| f.when_completed.clone()) {
                Some(text) => self.send_text(&text),
                None => self.restart(),
            },
            RunStatus::Expired => {
                self.send(OutboundContent::Text {
                    body: EXPIRED_TEXT.into(),
                });
                self.restart()
            }
            RunStatus::Failed | RunStatus::Cancelled | RunStatus::Interrupted => self.restart(),
            RunStatus::HandedOff => {
                self.events.push(Event::Ignored {
                    reason: "a person has this conversation".into(),
                });
                Ok(())
            }
            RunStatus::WaitingEffect if matches!(self.node(), Ok(Node::Ai(_))) => {
                let converse = matches!(self.node(), Ok(Node::Ai(n)) if n.converse);
                if converse {
                    // Answered next, with this message as the latest.
                    self.run.queued = true;
                    self.events.push(Event::Ignored {
                        reason: "answered once the current answer is out".into(),
                    });
                } else {
                    self.events.push(Event::Ignored {
                        reason: "the assistant is still answering".into(),
                    });
                    self.send(OutboundContent::Text {
                        body: AI_BUSY_TEXT.into(),
                    });
                }
                Ok(())
            }
            RunStatus::WaitingEffect | RunStatus::WaitingTimer => {
                self.events.push(Event::Ignored {
                    reason: "the run is waiting".into(),
                });
                Ok(())
            }
        }
    }

    fn answer(&mut self, reply: &Reply) -> Result<(), Broken> {
        match self.node()?.clone() {
            Node::Ask(n) => self.answer_ask(&n, reply),
            Node::Menu(n) => self.answer_menu(&n, reply),
            // A conversing ai node answers every message.
            Node::Ai(n) => self.ask_ai(&n),
            other => Err(Broken(format!(
                "the run waits for an answer at {} node {}",
                other.kind(),
                other.id()
            ))),
        }
    }

    fn answer_ask(&mut self, n: &AskNode, reply: &Reply) -> Result<(), Broken> {
        let re = match &n.answer {
            Some(crate::definition::AnswerSpec::Text {
                pattern: Some(p), ..
            }) => Some(
                crate::pattern::compiled(p)
                    .map_err(|e| Broken(format!("bad pattern {p:?}: {e}")))?,
            ),
            _ => None,
        };
        match answer::check(n.answer.as_ref(), reply, re.as_deref()) {
            Ok(value) => {
                self.set_var(&n.save_as, value);
                self.run.tries = 0;
                self.run.timer = None;
                self.go(n.next.clone())
            }
            Err(refusal) => {
                self.run.tries += 1;
                self.events.push(Event::Invalid {
                    node: n.id.clone(),
                    code: refusal.code.into(),
                });
                if let Some(max) = n.max_tries
                    && self.run.tries >= max
                {
                    self.run.tries = 0;
                    self.run.timer = None;
                    return self.go(n.on_give_up.clone());
                }
                let text = n.errors.get(refusal.code).or(n.error.as_ref()).cloned();
                match text {
                    Some(t) => self.send_text(&t)?,
                    None => self.send(OutboundContent::Text {
                        body: refusal.message,
                    }),
                }
                let question = self.message_content(&n.message())?;
                self.send(question);
                Ok(())
            }
        }
    }

    fn answer_menu(&mut self, n: &MenuNode, reply: &Reply) -> Result<(), Broken> {
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
                    self.set_var(var, Value::String(value));
                }
                self.run.tries = 0;
                self.go(Some(o.next.clone()))
            }
            None => {
                self.run.tries += 1;
                self.events.push(Event::Invalid {
                    node: n.id.clone(),
                    code: "not_an_option".into(),
                });
                if let Some(max) = n.max_tries
                    && self.run.tries >= max
                {
                    self.run.tries = 0;
                    return self.go(n.on_give_up.clone());
                }
                match &n.error {
                    Some(t) => self.send_text(t)?,
                    None => self.send(OutboundContent::Text {
                        body: MENU_ERROR.into(),
                    }),
                }
                let menu = self.menu_content(n)?;
                self.send(menu);
                Ok(())
            }
        }
    }

    fn timer(&mut self, token: u64) -> Result<(), Broken> {
        if self.run.timer != Some(token) {
            self.events.push(Event::Ignored {
                reason: format!("timer {token} is stale"),
            });
            return Ok(());
        }
        self.run.timer = None;
        match (self.run.status, self.node()?.clone()) {
            (RunStatus::WaitingTimer, Node::Wait(n)) => self.go(n.next),
            (RunStatus::WaitingInput, Node::Ask(n)) => {
                self.run.tries = 0;
                self.go(n.on_timeout)
            }
            _ => {
                self.events.push(Event::Ignored {
                    reason: "a timer for no waiting node".into(),
                });
                Ok(())
            }
        }
    }

    fn result(&mut self, result: EffectResult) -> Result<(), Broken> {
        if self.run.status != RunStatus::WaitingEffect {
            self.events.push(Event::Ignored {
                reason: "a result the run did not wait for".into(),
            });
            return Ok(());
        }
        let node = self.node()?.clone();
        let store = |s: &mut Self, var: &Option<String>, v: Value| {
            if let Some(var) = var {
                s.set_var(var, v);
            }
        };
        match (node, result) {
            (_, EffectResult::Failed { error }) if !matches!(self.node()?, Node::Http(_)) => {
                Err(Broken(error))
            }
            (Node::SaveRecord(n), EffectResult::Record { record }) => {
                store(self, &n.save_as, record.unwrap_or(Value::Null));
                self.go(n.next)
            }
            (Node::FindRecord(n), EffectResult::Records { records }) => {
                let missing = records.is_empty();
                let value = if n.many {
                    Value::Array(records)
                } else {
                    records.into_iter().next().unwrap_or(Value::Null)
                };
                store(self, &Some(n.save_as.clone()), value);
                self.go(if missing && n.on_missing.is_some() {
                    n.on_missing
                } else {
                    n.next
                })
            }
            (Node::UpdateRecord(n), EffectResult::Record { record: Some(r) }) => {
                store(self, &n.save_as, r);
                self.go(n.next)
            }
            (Node::UpdateRecord(n), EffectResult::Record { record: None }) => match n.on_missing {
                Some(t) => self.go(Some(t)),
                None => Err(Broken(format!("update_record {}: no such record", n.id))),
            },
            (Node::Http(n), EffectResult::Http { status, body }) => {
                store(
                    self,
                    &n.save_as,
                    serde_json::json!({"status": status, "body": body}),
                );
                let target = match n.on_status.get(&status.to_string()) {
                    Some(t) => Some(t.clone()),
                    None if (200..300).contains(&status) => n.next,
                    None => n.on_failure.or(n.next),
                };
                self.go(target)
            }
            (Node::Ai(n), EffectResult::Ai { text, heard }) => match &n.extract {
                Some(schema) => match crate::extract::validate(schema, &text) {
                    Ok(data) => {
                        store(self, &n.save_as, Value::Object(data));
                        self.go(n.next)
                    }
                    Err(e) => {
                        self.events.push(Event::Invalid {
                            node: n.id.clone(),
                            code: "not_extracted".into(),
                        });
                        self.events.push(Event::Error {
                            message: format!("nothing could be extracted: {e}"),
                        });
                        store(self, &n.save_as, Value::Null);
                        self.ai_failed(&n, "not_extracted", "")
                    }
                },
                None => {
                    store(self, &n.save_as, Value::String(text.clone()));
                    if n.replies() && !text.trim().is_empty() {
                        let body = match heard {
                            Some(h) => format!("🎙️ \u{201c}{}\u{201d}\n\n{text}", h.trim()),
                            None => text,
                        };
                        self.send(OutboundContent::Text { body });
                    }
                    self.after_ai(&n, false)
                }
            },
            (Node::Ai(n), EffectResult::AiFailed { code, error }) => {
                self.events.push(Event::Invalid {
                    node: n.id.clone(),
                    code: code.clone(),
                });
                self.ai_failed(&n, &code, &error)
            }
            (Node::Http(n), EffectResult::Failed { error }) => {
                store(
                    self,
                    &n.save_as,
                    serde_json::json!({"status": 0, "error": error}),
                );
                self.go(n.on_failure.or(n.next))
            }
            (node, _) => Err(Broken(format!(
                "a result that does not fit {} node {}",
                node.kind(),
                node.id()
            ))),
        }
    }

    /// Asks the AI about the contact's latest message; the run waits for the answer.
    fn ask_ai(&mut self, n: &AiNode) -> Result<(), Broken> {
        let system = n.system.as_deref().map(|t| self.render(t)).transpose()?;
        let prompt = n.prompt.as_deref().map(|t| self.render(t)).transpose()?;
        self.request(Request::Ai {
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
    fn ai_failed(&mut self, n: &AiNode, code: &str, what: &str) -> Result<(), Broken> {
        match n.errors.get(code) {
            Some(t) => self.send_text(t)?,
            None => {
                if let Some(t) = ai_text(code) {
                    let what = if what.is_empty() { "that" } else { what };
                    self.send(OutboundContent::Text {
                        body: t.replace("{what}", what),
                    });
                }
            }
        }
        self.after_ai(n, true)
    }

    /// A conversing node waits for the next message; others go on.
    fn after_ai(&mut self, n: &AiNode, failed: bool) -> Result<(), Broken> {
        if n.converse {
            if std::mem::take(&mut self.run.queued) {
                return self.ask_ai(n);
            }
            self.run.status = RunStatus::WaitingInput;
            return Ok(());
        }
        let target = if failed {
            n.on_failure.clone().or_else(|| n.next.clone())
        } else {
            n.next.clone()
        };
        self.go(target)
    }

    fn resume(&mut self) -> Result<(), Broken> {
        if self.run.status != RunStatus::HandedOff {
            self.events.push(Event::Ignored {
                reason: "the run is not handed off".into(),
            });
            return Ok(());
        }
        self.events.push(Event::Command {
            name: "resume".into(),
        });
        match self.node()?.clone() {
            Node::Handoff(n) => self.go(n.next),
            _ => self.go(None),
        }
    }

    /// Enters `target` and walks on until the run waits or ends. No target
    /// ends the current flow: a subflow returns to its caller.
    fn go(&mut self, mut target: Option<String>) -> Result<(), Broken> {
        loop {
            let Some(id) = target.take() else {
                if let Some(Frame { flow, next }) = self.run.stack.pop() {
                    self.run.flow = flow;
                    self.changed();
                    target = next;
                    continue;
                }
                self.run.status = RunStatus::Completed;
                self.run.node = None;
                self.run.timer = None;
                return Ok(());
            };
            if self.budget == 0 {
                return Err(Broken(format!(
                    "stopped after {STEP_BUDGET} nodes without waiting for the contact: the flow loops"
                )));
            }
            self.budget -= 1;
            let node = self
                .flow()?
                .node(&id)
                .cloned()
                .ok_or_else(|| Broken(format!("flow {} has no node {id}", self.run.flow)))?;
            self.run.node = Some(id.clone());
            self.events.push(Event::Entered { node: id });
            match node {
                Node::Send(n) => {
                    let content = self.message_content(&n.message())?;
                    self.send(content);
                    target = n.next;
                }
                Node::Ask(n) => {
                    let content = self.message_content(&n.message())?;
                    self.send(content);
                    self.run.status = RunStatus::WaitingInput;
                    self.run.tries = 0;
                    if let Some(secs) = n.timeout_seconds {
                        self.start_timer(
                            self.now_ms
                                .saturating_add((secs as i64).saturating_mul(1000)),
                        );
                    }
                    return Ok(());
                }
                Node::Menu(n) => {
                    let content = self.menu_content(&n)?;
                    self.send(content);
                    self.run.status = RunStatus::WaitingInput;
                    self.run.tries = 0;
                    return Ok(());
                }
                Node::Set(n) => {
                    for (var, expr) in &n.values {
                        let v = self.eval(expr)?;
                        self.set_var(var, v);
                    }
                    target = n.next;
                }
                Node::Branch(n) => {
                    let mut chosen = None;
                    for b in &n.branches {
                        let holds = templates()
                            .test_in(&b.when, &self.ctx())
                            .map_err(|e| Broken(format!("condition {:?}: {e}", b.when)))?;
                        if holds {
                            chosen = Some(b.next.clone());
                            break;
                        }
                    }
                    target = Some(chosen.unwrap_or(n.default));
                }
                Node::Http(n) => {
                    let url = self.render(&n.url)?;
                    let headers = n
                        .headers
                        .iter()
                        .map(|(k, v)| Ok((k.clone(), self.render(v)?)))
                        .collect::<Result<Vec<_>, Broken>>()?;
                    let body = n.body.as_ref().map(|b| self.render_json(b)).transpose()?;
                    self.request(Request::Http {
                        method: n.method.to_uppercase(),
                        url,
                        headers,
                        body,
                        timeout_ms: n.timeout_seconds.saturating_mul(1000),
                    });
                    return Ok(());
                }
                Node::Ai(n) => {
                    self.ask_ai(&n)?;
                    return Ok(());
                }
                Node::Wait(n) => {
                    let at = match (&n.seconds, &n.until) {
                        (Some(secs), _) => self
                            .now_ms
                            .saturating_add((*secs as i64).saturating_mul(1000)),
                        (None, Some(expr)) => {
                            let v = self.eval(expr)?;
                            let text = v.as_str().unwrap_or_default();
                            let t = time::OffsetDateTime::parse(
                                text,
                                &time::format_description::well_known::Rfc3339,
                            )
                            .map_err(|_| {
                                Broken(format!("wait {}: {text:?} is not an RFC 3339 time", n.id))
                            })?;
                            (t.unix_timestamp_nanos() / 1_000_000) as i64
                        }
                        (None, None) => {
                            return Err(Broken(format!(
                                "wait {} says neither seconds nor until",
                                n.id
                            )));
                        }
                    };
                    self.start_timer(at);
                    self.run.status = RunStatus::WaitingTimer;
                    return Ok(());
                }
                Node::SaveRecord(n) => {
                    let fields = self.eval_map(&n.fields)?;
                    self.request(Request::SaveRecord {
                        collection: n.collection,
                        fields,
                    });
                    return Ok(());
                }
                Node::FindRecord(n) => {
                    let filter = self.eval_map(&n.filter)?;
                    let limit = if n.many { n.limit.max(1) } else { 1 };
                    self.request(Request::FindRecords {
                        collection: n.collection,
                        filter,
                        limit,
                    });
                    return Ok(());
                }
                Node::UpdateRecord(n) => {
                    let id = self.eval(&n.record)?;
                    let fields = self.eval_map(&n.fields)?;
                    self.request(Request::UpdateRecord {
                        collection: n.collection,
                        id,
                        fields,
                    });
                    return Ok(());
                }
                Node::Handoff(n) => {
                    if let Some(t) = &n.text {
                        self.send_text(t)?;
                    }
                    self.effects.push(Effect::Handoff);
                    self.run.status = RunStatus::HandedOff;
                    return Ok(());
                }
                Node::Subflow(n) => {
                    let sub = self
                        .flows
                        .flow(&n.flow)
                        .ok_or_else(|| Broken(format!("subflow {} is not loaded", n.flow)))?;
                    let start = sub.start_node().map(str::to_string);
                    let caller = std::mem::replace(&mut self.run.flow, n.flow.clone());
                    self.changed();
                    self.run.stack.push(Frame {
                        flow: caller,
                        next: n.next,
                    });
                    target = start;
                }
                Node::End(n) => {
                    if let Some(t) = &n.text {
                        self.send_text(t)?;
                    }
                    target = None;
                }
            }
        }
    }

    fn start_timer(&mut self, at_ms: i64) {
        self.run.timers += 1;
        let token = self.run.timers;
        self.run.timer = Some(token);
        self.effects.push(Effect::StartTimer { token, at_ms });
    }

    /// Renders the strings of a JSON value as templates.
    fn render_json(&self, v: &Value) -> Result<Value, Broken> {
        Ok(match v {
            Value::String(s) => Value::String(self.render(s)?),
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|x| self.render_json(x))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| Ok((k.clone(), self.render_json(x)?)))
                    .collect::<Result<_, Broken>>()?,
            ),
            other => other.clone(),
        })
    }

    fn message_content(&self, m: &MessageSpec) -> Result<OutboundContent, Broken> {
        let text = m.text.as_deref().map(|t| self.render(t)).transpose()?;
        if let Some(t) = &m.template {
            let variables = t
                .variables
                .iter()
                .map(|(k, v)| Ok((k.clone(), Value::String(self.render(v)?))))
                .collect::<Result<Map<_, _>, Broken>>()?;
            return Ok(OutboundContent::Template {
                template: Template {
                    content_sid: t.content_sid.clone(),
                    variables: (!variables.is_empty()).then_some(variables),
                    name: t.name.clone(),
                    language: t.language.clone(),
                    components: (!t.components.is_empty()).then(|| t.components.clone()),
                },
            });
        }
        if let Some(url) = &m.media_url {
            let url = self.render(url)?;
            return Ok(OutboundContent::Media {
                kind: MessageKind::for_media_url(&url),
                url,
                caption: text,
            });
        }
        let body = text.ok_or_else(|| Broken("a message with nothing to send".into()))?;
        let button = |b: &crate::definition::ButtonSpec| -> Result<(String, String), Broken> {
            let title = self.render(&b.title)?;
            Ok((b.id.clone().unwrap_or_else(|| title.clone()), title))
        };
        if let Some(buttons) = &m.buttons {
            let buttons = buttons
                .iter()
                .map(|b| button(b).map(|(id, title)| Button { id, title }))
                .collect::<Result<_, _>>()?;
            return Ok(OutboundContent::Buttons { body, buttons });
        }
        if let Some(list) = &m.list {
            let sections = list
                .sections
                .iter()
                .map(|s| {
                    let rows = s
                        .rows
                        .iter()
                        .map(|r| {
                            button(r).map(|(id, title)| ListRow {
                                id,
                                title,
                                description: None,
                            })
                        })
                        .collect::<Result<_, _>>()?;
                    Ok(ListSection {
                        title: s.title.clone(),
                        rows,
                    })
                })
                .collect::<Result<_, Broken>>()?;
            return Ok(OutboundContent::List {
                body,
                button: self.render(&list.button)?,
                sections,
            });
        }
        Ok(OutboundContent::Text { body })
    }

    fn menu_content(&self, n: &MenuNode) -> Result<OutboundContent, Broken> {
        let mut body = self.render(&n.text)?;
        for (i, o) in n.options.iter().enumerate() {
            body.push_str(&format!("\n{}. {}", i + 1, self.render(&o.label)?));
        }
        Ok(OutboundContent::Text { body })
    }
}

fn request_kind(r: &Request) -> &'static str {
    match r {
        Request::SaveRecord { .. } => "save_record",
        Request::FindRecords { .. } => "find_records",
        Request::UpdateRecord { .. } => "update_record",
        Request::Http { .. } => "http",
        Request::Ai { .. } => "ai",
    }
}
