//! The state of one contact in one flow, what moves it, and what it asks
//! the runtime to do.

use confab_model::OutboundContent;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::answer::Reply;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for the contact's answer.
    WaitingInput,
    /// Waiting for the result of a request (record, HTTP).
    WaitingEffect,
    /// Waiting for a timer.
    WaitingTimer,
    /// A person has the conversation; the bot is silent.
    HandedOff,
    Completed,
    Failed,
    /// Stopped for inactivity.
    Expired,
    /// Stopped by an operator.
    Cancelled,
    /// Replaced by another run of the same contact (a restart, a trigger,
    /// a run started through the API): a contact has one run in progress.
    Interrupted,
}

impl RunStatus {
    pub const ALL: [RunStatus; 9] = [
        RunStatus::WaitingInput,
        RunStatus::WaitingEffect,
        RunStatus::WaitingTimer,
        RunStatus::HandedOff,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Expired,
        RunStatus::Cancelled,
        RunStatus::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::WaitingInput => "waiting_input",
            RunStatus::WaitingEffect => "waiting_effect",
            RunStatus::WaitingTimer => "waiting_timer",
            RunStatus::HandedOff => "handed_off",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Expired => "expired",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The run is over: a new message starts a new one.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Completed
                | RunStatus::Failed
                | RunStatus::Expired
                | RunStatus::Cancelled
                | RunStatus::Interrupted
        )
    }
}

/// Where to come back to when a subflow ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub flow: String,
    pub next: Option<String>,
}

/// One contact in one flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The flow the run is in now (a subflow while one runs).
    pub flow: String,
    pub node: Option<String>,
    pub status: RunStatus,
    /// Variables: answers, records, anything `set` stores, and `contact`.
    pub vars: Map<String, Value>,
    /// Invalid answers at the current question.
    pub tries: u32,
    /// Flows to return to, innermost last.
    pub stack: Vec<Frame>,
    /// The timer the run waits for; a timer with another token is stale.
    pub timer: Option<u64>,
    /// The next timer token.
    pub timers: u64,
    /// A message came while a conversing `ai` node was answering: it asks
    /// again about the latest message as soon as it has answered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub queued: bool,
}

impl Run {
    /// A run of `flow` for a contact, before its first step.
    pub fn new(flow: &str, contact: Value) -> Run {
        let mut vars = Map::new();
        vars.insert("contact".into(), contact);
        // What whoever started the run gave it: empty when a message did.
        vars.insert("input".into(), Value::Object(Map::new()));
        Run {
            flow: flow.into(),
            node: None,
            status: RunStatus::WaitingInput,
            vars,
            tries: 0,
            stack: Vec::new(),
            timer: None,
            timers: 0,
            queued: false,
        }
    }

    /// The flow the contact started in (the bottom of the subflow stack).
    pub fn root_flow(&self) -> &str {
        self.stack
            .first()
            .map(|f| f.flow.as_str())
            .unwrap_or(&self.flow)
    }
}

/// What moves a run.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Begin at the flow's start.
    Start,
    /// Begin at the flow's start with variables from whoever started it
    /// (an operator, another system), which the flow reads as `input.*`.
    StartWith(Map<String, Value>),
    /// A message from the contact.
    Message(Reply),
    /// A timer the run set went off.
    Timer(u64),
    /// The result of the request the run waits for.
    Result(EffectResult),
    /// An operator hands the conversation back to the bot.
    Resume,
}

/// The outcome of a [`Request`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EffectResult {
    /// The saved or updated record (with its `id`), or none when missing.
    Record {
        record: Option<Value>,
    },
    /// Records found, newest first.
    Records {
        records: Vec<Value>,
    },
    Http {
        status: u16,
        body: Value,
    },
    /// The AI's answer; `heard` is what a voice note said.
    Ai {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heard: Option<String>,
    },
    /// The AI could not answer. `code` says why, for the contact's text:
    /// `not_configured`, `failed`, `unsupported`, `too_large`, `no_text`, `not_heard`.
    AiFailed {
        code: String,
        error: String,
    },
    /// The request could not be carried out.
    Failed {
        error: String,
    },
}

/// A request whose result the run waits for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    SaveRecord {
        collection: String,
        fields: Map<String, Value>,
    },
    FindRecords {
        collection: String,
        filter: Map<String, Value>,
        limit: u32,
    },
    UpdateRecord {
        collection: String,
        id: Value,
        fields: Map<String, Value>,
    },
    Http {
        method: String,
        url: String,
        headers: Vec<(String, String)>,
        body: Option<Value>,
        timeout_ms: u64,
    },
    /// Ask the AI about the contact's latest message. Left out, the
    /// system prompt, history size and model are the server's.
    Ai {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        system: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prompt: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        history: Option<u32>,
        /// Whether the message's media goes to the model.
        media: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        temperature: Option<f32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_tokens: Option<u32>,
        /// The strict JSON Schema the answer must fill.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema: Option<Value>,
    },
}

impl Request {
    /// Carried out after the transaction commits (a network call), rather
    /// than inside it.
    pub fn is_remote(&self) -> bool {
        matches!(self, Request::Http { .. } | Request::Ai { .. })
    }
}

/// What the runtime does for a step, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    Send {
        content: OutboundContent,
    },
    /// Fire `Input::Timer(token)` at `at_ms` (durably).
    StartTimer {
        token: u64,
        at_ms: i64,
    },
    /// The bot stops answering until an operator resumes the run.
    Handoff,
    /// No proactive message may go to the contact (until `OptIn`).
    OptOut,
    OptIn,
    /// Carry this out and step again with its result.
    Request {
        request: Request,
    },
}

/// What happened, for the run's event log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new run began (the first step, or a restart): the one before it ends here.
    Started {
        flow: String,
    },
    Entered {
        node: String,
    },
    Input {
        text: String,
    },
    Invalid {
        node: String,
        code: String,
    },
    Command {
        name: String,
    },
    Effect {
        kind: String,
    },
    Error {
        message: String,
    },
    Ignored {
        reason: String,
    },
}
