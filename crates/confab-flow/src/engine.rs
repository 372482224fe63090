//! `step`: one input in, the new run state and the effects out. No I/O; the
//! runtime carries the effects out and feeds results back as inputs.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use confab_model::{Button, ListRow, ListSection, MessageKind, OutboundContent, Template};
use serde_json::{Map, Value};

use crate::answer::{Reply, normalise};
use crate::definition::{Flow, MessageSpec, Node};
use crate::nodes::Then;
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

/// Whether `text` is a contact's STOP (`Some(true)`: opt out) or START
/// (`Some(false)`): words that hold in any run, or in none.
pub fn opt_word(text: &str) -> Option<bool> {
    match normalise(text).as_str() {
        "stop" | "unsubscribe" => Some(true),
        "start" => Some(false),
        _ => None,
    }
}

/// What a contact is told when STOP or START is honoured.
pub fn opt_confirmation(opted_out: bool) -> OutboundContent {
    OutboundContent::Text {
        body: if opted_out { STOP_TEXT } else { START_TEXT }.into(),
    }
}
pub const EXPIRED_TEXT: &str = "It has been a while since we last spoke, so let's start again.";
pub const MENU_ERROR: &str =
    "Sorry, I did not get that. Please reply with the number of an option.";

pub use crate::nodes::ai::{AI_BUSY_TEXT, AI_FAILURES};

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

/// The words every run answers to, whatever its flow: stop (and
/// unsubscribe), start and restart. `word` is normalised.
pub fn is_command(word: &str) -> bool {
    matches!(word, "stop" | "unsubscribe" | "start" | "restart")
}

pub(crate) struct Stepper<'a> {
    pub(crate) flows: &'a dyn Flows,
    pub(crate) run: Run,
    pub(crate) now_ms: i64,
    pub(crate) effects: Vec<Effect>,
    pub(crate) events: Vec<Event>,
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
pub(crate) struct Broken(pub(crate) String);

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
    pub(crate) fn ctx(&self) -> Context {
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
    pub(crate) fn changed(&mut self) {
        *self.context.get_mut() = None;
    }

    pub(crate) fn set_var(&mut self, name: &str, value: Value) {
        self.run.vars.insert(name.to_string(), value);
        self.changed();
    }

    pub(crate) fn render(&self, template: &str) -> Result<String, Broken> {
        if let Some(text) = crate::template::plain(template) {
            return Ok(text.to_string());
        }
        templates()
            .render_in(template, &self.ctx())
            .map_err(|e| Broken(format!("template {template:?}: {e}")))
    }

    pub(crate) fn eval(&self, expr: &str) -> Result<Value, Broken> {
        templates()
            .eval_in(expr, &self.ctx())
            .map_err(|e| Broken(format!("expression {expr:?}: {e}")))
    }

    pub(crate) fn eval_map(
        &self,
        fields: &BTreeMap<String, String>,
    ) -> Result<Map<String, Value>, Broken> {
        fields
            .iter()
            .map(|(k, e)| Ok((k.clone(), self.eval(e)?)))
            .collect()
    }

    pub(crate) fn send(&mut self, content: OutboundContent) {
        self.effects.push(Effect::Send { content });
    }

    pub(crate) fn send_text(&mut self, template: &str) -> Result<(), Broken> {
        let body = self.render(template)?;
        if !body.trim().is_empty() {
            self.send(OutboundContent::Text { body });
        }
        Ok(())
    }

    pub(crate) fn request(&mut self, request: Request) {
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
        if let Some(out) = opt_word(&text) {
            self.events.push(Event::Command {
                name: if out { "stop" } else { "start" }.into(),
            });
            self.effects
                .push(if out { Effect::OptOut } else { Effect::OptIn });
            self.send(opt_confirmation(out));
            return Ok(());
        }
        let word = normalise(&text);
        match word.as_str() {
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
            RunStatus::WaitingEffect | RunStatus::WaitingTimer => {
                let node = self.node().ok().cloned();
                match node.and_then(|n| n.behaviour().while_waiting(self)) {
                    Some(done) => done,
                    None => {
                        self.events.push(Event::Ignored {
                            reason: "the run is waiting".into(),
                        });
                        Ok(())
                    }
                }
            }
        }
    }

    fn answer(&mut self, reply: &Reply) -> Result<(), Broken> {
        let node = self.node()?.clone();
        node.behaviour().answer(self, reply).unwrap_or_else(|| {
            Err(Broken(format!(
                "the run waits for an answer at {} node {}",
                node.kind(),
                node.id()
            )))
        })
    }

    fn timer(&mut self, token: u64) -> Result<(), Broken> {
        if self.run.timer != Some(token) {
            self.events.push(Event::Ignored {
                reason: format!("timer {token} is stale"),
            });
            return Ok(());
        }
        self.run.timer = None;
        let node = self.node()?.clone();
        match node.behaviour().timer(self) {
            Some(done) => done,
            None => {
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
        if let EffectResult::Failed { error } = &result
            && !node.behaviour().takes_failures()
        {
            return Err(Broken(error.clone()));
        }
        node.behaviour().result(self, result).unwrap_or_else(|| {
            Err(Broken(format!(
                "a result that does not fit {} node {}",
                node.kind(),
                node.id()
            )))
        })
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
        let next = self.node()?.behaviour().resumed();
        self.go(next)
    }

    /// Enters `target` and walks on until the run waits or ends. No target
    /// ends the current flow: a subflow returns to its caller.
    pub(crate) fn go(&mut self, mut target: Option<String>) -> Result<(), Broken> {
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
            match node.behaviour().enter(self)? {
                Then::Go(next) => target = next,
                Then::Wait => return Ok(()),
            }
        }
    }

    pub(crate) fn start_timer(&mut self, at_ms: i64) {
        self.run.timers += 1;
        let token = self.run.timers;
        self.run.timer = Some(token);
        self.effects.push(Effect::StartTimer { token, at_ms });
    }

    /// Renders the strings of a JSON value as templates.
    pub(crate) fn render_json(&self, v: &Value) -> Result<Value, Broken> {
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

    pub(crate) fn message_content(&self, m: &MessageSpec) -> Result<OutboundContent, Broken> {
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
