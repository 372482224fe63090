//! Conversation tests: YAML transcripts of what the contact says and what
//! the bot must answer, run in-process against flows with records kept in
//! memory. A failing transcript reports the conversation so far and the
//! difference.

use std::collections::{BTreeMap, HashMap};

use confab_model::OutboundContent;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::answer::Reply;
use crate::collection::Collection;
use crate::definition::Flow;
use crate::engine::{Flows, step};
use crate::routing::{Destination, choose, triggered};
use crate::run::{EffectResult, Input, Request, Run};
use crate::template::time_text;

/// A transcript file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transcript {
    #[serde(default)]
    pub name: Option<String>,
    /// The flow a contact without a run starts in.
    pub flow: String,
    #[serde(default)]
    pub contact: Option<ContactSpec>,
    /// The time the conversation happens at (RFC 3339); a fixed default.
    #[serde(default)]
    pub now: Option<String>,
    /// Records in the collections before the conversation.
    #[serde(default)]
    pub records: BTreeMap<String, Vec<Map<String, Value>>>,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub expect: Option<Expect>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactSpec {
    pub phone: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// One turn: the contact says or taps something and the bot answers; or
/// the server restarts (the run survives as stored JSON); or time passes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub user: Option<String>,
    /// A tapped button or list row id.
    #[serde(default)]
    pub tap: Option<String>,
    /// What the bot answers, every message in order; none when left out.
    #[serde(default)]
    pub bot: Vec<Expected>,
    /// The server restarts before this step.
    #[serde(default)]
    pub interrupt: bool,
    /// Time passes before this step.
    #[serde(default)]
    pub advance_minutes: Option<u64>,
    /// The contact sends media of this kind (image, audio, document...).
    #[serde(default)]
    pub media: Option<String>,
    /// What the AI answers to this step's questions, in order.
    #[serde(default)]
    pub ai: Vec<AiScript>,
}

/// One AI answer in a transcript: its text, or a failure.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum AiScript {
    Text(String),
    Heard {
        heard: String,
        text: String,
    },
    Failure {
        fail: String,
        #[serde(default)]
        what: Option<String>,
    },
}

impl AiScript {
    fn result(&self) -> EffectResult {
        match self {
            AiScript::Text(text) => EffectResult::Ai {
                text: text.clone(),
                heard: None,
            },
            AiScript::Heard { heard, text } => EffectResult::Ai {
                text: text.clone(),
                heard: Some(heard.clone()),
            },
            AiScript::Failure { fail, what } => EffectResult::AiFailed {
                code: fail.clone(),
                error: what.clone().unwrap_or_default(),
            },
        }
    }
}

/// A bot message: exact text, or a pattern, or a part of it.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Expected {
    Exact(String),
    Pattern {
        #[serde(rename = "match")]
        pattern: String,
    },
    Contains {
        contains: String,
    },
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Variables of the run, compared field by field.
    #[serde(default)]
    pub vars: Map<String, Value>,
    /// Records per collection, all of them, in order of creation; each
    /// compared on the fields given.
    #[serde(default)]
    pub records: BTreeMap<String, Vec<Map<String, Value>>>,
    /// The run's status at the end.
    #[serde(default)]
    pub status: Option<String>,
}

const DEFAULT_NOW: &str = "2026-01-18T14:30:22Z";

/// Collections kept in memory, checked like the store checks them.
pub struct MemoryRecords<'a> {
    collections: &'a HashMap<String, Collection>,
    pub records: HashMap<String, Vec<Value>>,
    next_id: i64,
}

impl<'a> MemoryRecords<'a> {
    pub fn new(collections: &'a HashMap<String, Collection>) -> Self {
        MemoryRecords {
            collections,
            records: HashMap::new(),
            next_id: 1,
        }
    }

    fn collection(&self, name: &str) -> Result<&'a Collection, String> {
        self.collections
            .get(name)
            .ok_or_else(|| format!("no collection {name}"))
    }

    pub fn insert(
        &mut self,
        collection: &str,
        fields: &Map<String, Value>,
        now: &str,
    ) -> Result<Value, String> {
        let c = self.collection(collection)?;
        let mut record = c
            .check(fields, false)
            .map_err(|e| format!("{collection}: {e}"))?;
        record.insert("id".into(), Value::from(self.next_id));
        record.insert("created_at".into(), Value::String(now.into()));
        record.insert("updated_at".into(), Value::String(now.into()));
        self.next_id += 1;
        let record = Value::Object(record);
        self.records
            .entry(collection.into())
            .or_default()
            .push(record.clone());
        Ok(record)
    }

    /// Runs what a flow asked for, as the runtime would.
    pub fn execute(&mut self, request: &Request, now: &str) -> EffectResult {
        let result = match request {
            Request::SaveRecord { collection, fields } => self
                .insert(collection, fields, now)
                .map(|r| EffectResult::Record { record: Some(r) }),
            Request::FindRecords {
                collection,
                filter,
                limit,
            } => self.collection(collection).map(|_| {
                let records = self
                    .records
                    .get(collection)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let found = records
                    .iter()
                    .rev()
                    .filter(|r| filter.iter().all(|(k, v)| r.get(k) == Some(v)))
                    .take(*limit as usize)
                    .cloned()
                    .collect();
                EffectResult::Records { records: found }
            }),
            Request::UpdateRecord {
                collection,
                id,
                fields,
            } => self.collection(collection).and_then(|c| {
                let changes = c
                    .check(fields, true)
                    .map_err(|e| format!("{collection}: {e}"))?;
                let record = self.records.get_mut(collection).and_then(|rs| {
                    rs.iter_mut().find(|r| {
                        r.get("id") == Some(id)
                            || r.get("id").map(Value::to_string) == id.as_str().map(String::from)
                    })
                });
                Ok(EffectResult::Record {
                    record: record.map(|r| {
                        if let Some(o) = r.as_object_mut() {
                            o.extend(changes);
                            o.insert("updated_at".into(), Value::String(now.into()));
                        }
                        r.clone()
                    }),
                })
            }),
            Request::Http { url, .. } => Err(format!("transcripts make no HTTP calls (to {url})")),
            Request::Ai { .. } => Err("the transcript gives no AI answer here".into()),
        };
        result.unwrap_or_else(|error| EffectResult::Failed { error })
    }
}

/// A contact talking to flows, in memory: the same routing as the runtime.
pub struct Simulator<'a> {
    flows: &'a HashMap<String, Flow>,
    pub records: MemoryRecords<'a>,
    pub run: Option<Run>,
    pub now_ms: i64,
    default_flow: String,
    contact: Value,
    /// AI answers for the next questions; none left: AI not configured.
    pub ai: std::collections::VecDeque<EffectResult>,
    /// The last timer the run started: its token and when it goes off.
    timer: Option<(u64, i64)>,
}

impl<'a> Simulator<'a> {
    pub fn new(
        flows: &'a HashMap<String, Flow>,
        collections: &'a HashMap<String, Collection>,
        default_flow: &str,
        contact: Value,
        now_ms: i64,
    ) -> Self {
        Simulator {
            flows,
            records: MemoryRecords::new(collections),
            run: None,
            now_ms,
            default_flow: default_flow.into(),
            contact,
            ai: Default::default(),
            timer: None,
        }
    }

    /// What the bot answers to `reply`.
    pub fn say(&mut self, reply: Reply) -> Vec<OutboundContent> {
        let all: Vec<&Flow> = self.flows.values().collect();
        let hit = triggered(&all, reply.trimmed()).map(|f| f.id.as_str());
        let to = choose(
            self.flows,
            hit,
            Some(&self.default_flow),
            self.run.as_ref(),
            reply.trimmed(),
        );
        let (run, input) = match to {
            Destination::Start(flow) => (Run::new(&flow, self.contact.clone()), Input::Start),
            // A transcript always has a default flow: nobody is never chosen.
            Destination::Current | Destination::Nobody => match self.run.take() {
                Some(run) => (run, Input::Message(reply)),
                None => (
                    Run::new(&self.default_flow, self.contact.clone()),
                    Input::Start,
                ),
            },
        };
        self.drive(run, input)
    }

    /// Time passes: the run's timer goes off if it is due, as the runtime
    /// would fire it. What the bot sends then.
    pub fn pass(&mut self, ms: i64) -> Vec<OutboundContent> {
        self.now_ms = self.now_ms.saturating_add(ms);
        match (self.run.take(), self.timer) {
            (Some(run), Some((token, at))) if run.timer == Some(token) && at <= self.now_ms => {
                self.drive(run, Input::Timer(token))
            }
            (run, _) => {
                self.run = run;
                Vec::new()
            }
        }
    }

    /// Steps `run` by `input`, carrying out what it asks (records, AI
    /// answers from the script) until it waits.
    fn drive(&mut self, run: Run, input: Input) -> Vec<OutboundContent> {
        let mut sent = Vec::new();
        let mut outcome = step(self.flows, run, input, self.now_ms);
        loop {
            for e in &outcome.effects {
                if let crate::run::Effect::StartTimer { token, at_ms } = e {
                    self.timer = Some((*token, *at_ms));
                }
            }
            sent.extend(outcome.sent().into_iter().cloned());
            let Some(request) = outcome.request().cloned() else {
                break;
            };
            let result = match request {
                Request::Ai { .. } => self.ai.pop_front().unwrap_or(EffectResult::AiFailed {
                    code: "not_configured".into(),
                    error: "no AI answer given".into(),
                }),
                _ => self.records.execute(&request, &time_text(self.now_ms)),
            };
            outcome = step(self.flows, outcome.run, Input::Result(result), self.now_ms);
        }
        self.run = Some(outcome.run);
        sent
    }
}

/// Runs a transcript; the error tells the conversation so far and what differed.
pub fn run_transcript(
    t: &Transcript,
    flows: &HashMap<String, Flow>,
    collections: &HashMap<String, Collection>,
) -> Result<(), String> {
    let now = t.now.as_deref().unwrap_or(DEFAULT_NOW);
    let now_ms = time::OffsetDateTime::parse(now, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| format!("now: {now:?} is not an RFC 3339 time"))?;
    let contact = match &t.contact {
        Some(c) => serde_json::json!({"phone": c.phone, "name": c.name}),
        None => serde_json::json!({"phone": "+15551234567", "name": "Test Contact"}),
    };
    if flows.flow(&t.flow).is_none() {
        return Err(format!("no flow {}", t.flow));
    }
    let mut sim = Simulator::new(flows, collections, &t.flow, contact, now_ms);
    for (collection, records) in &t.records {
        for r in records {
            sim.records
                .insert(collection, r, now)
                .map_err(|e| format!("records: {e}"))?;
        }
    }
    let mut log: Vec<String> = Vec::new();
    let fail = |log: &[String], msg: String| Err(format!("{}\n  !! {msg}", log.join("\n")));
    for (i, s) in t.steps.iter().enumerate() {
        if s.interrupt {
            // The run is stored as JSON and read back, as across a restart.
            let stored = serde_json::to_string(&sim.run).map_err(|e| e.to_string())?;
            sim.run = serde_json::from_str(&stored).map_err(|e| e.to_string())?;
            log.push("  (server restarts)".into());
        }
        // Timers that go off as time passes send first.
        let mut got: Vec<String> = Vec::new();
        if let Some(m) = s.advance_minutes {
            let ms = i64::try_from(m)
                .unwrap_or(i64::MAX / 120_000)
                .saturating_mul(60_000);
            log.push(format!("  ({m} minutes pass)"));
            got.extend(sim.pass(ms).iter().map(|c| c.text().unwrap_or_default()));
            for g in &got {
                log.push(format!(" bot: {}", g.replace('\n', "\n      ")));
            }
        }
        if s.user.is_some() || s.tap.is_some() || s.media.is_some() {
            let kind = match &s.media {
                Some(k) => confab_model::MessageKind::parse(k)
                    .ok_or_else(|| format!("step {}: {k:?} is not a message kind", i + 1))?,
                None => confab_model::MessageKind::Text,
            };
            let reply = Reply {
                text: s.user.clone(),
                kind: Some(kind),
                reply_id: s.tap.clone(),
                media: Vec::new(),
            };
            sim.ai = s.ai.iter().map(AiScript::result).collect();
            log.push(format!(
                "user: {}",
                s.user.as_deref().or(s.tap.as_deref()).unwrap_or("")
            ));
            let said: Vec<String> = sim
                .say(reply)
                .iter()
                .map(|c| c.text().unwrap_or_default())
                .collect();
            for g in &said {
                log.push(format!(" bot: {}", g.replace('\n', "\n      ")));
            }
            got.extend(said);
        }
        if got.len() != s.bot.len() {
            return fail(
                &log,
                format!(
                    "step {}: expected {} bot message(s), got {}",
                    i + 1,
                    s.bot.len(),
                    got.len()
                ),
            );
        }
        for (j, (want, g)) in s.bot.iter().zip(&got).enumerate() {
            if let Err(e) = matches(want, g) {
                return fail(&log, format!("step {}, bot message {}: {e}", i + 1, j + 1));
            }
        }
        if !sim.ai.is_empty() {
            return fail(
                &log,
                format!(
                    "step {}: {} AI answer(s) given that the flow never asked for",
                    i + 1,
                    sim.ai.len()
                ),
            );
        }
    }
    let Some(expect) = &t.expect else {
        return Ok(());
    };
    let run = sim.run.as_ref();
    if let Some(status) = &expect.status {
        let got = run.map(|r| r.status.as_str()).unwrap_or("none");
        if got != status {
            return fail(&log, format!("status: expected {status}, got {got}"));
        }
    }
    for (k, want) in &expect.vars {
        let got = run.and_then(|r| r.vars.get(k)).unwrap_or(&Value::Null);
        if got != want {
            return fail(&log, format!("variable {k}: expected {want}, got {got}"));
        }
    }
    for (collection, wants) in &expect.records {
        let got = sim
            .records
            .records
            .get(collection)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let preloaded = t.records.get(collection).map_or(0, Vec::len);
        let got = &got[preloaded.min(got.len())..];
        if got.len() != wants.len() {
            return fail(
                &log,
                format!(
                    "collection {collection}: expected {} new record(s), got {}: {got:?}",
                    wants.len(),
                    got.len()
                ),
            );
        }
        for (want, g) in wants.iter().zip(got) {
            for (k, v) in want {
                if g.get(k) != Some(v) {
                    return fail(
                        &log,
                        format!(
                            "collection {collection}, field {k}: expected {v}, got {}",
                            g.get(k).unwrap_or(&Value::Null)
                        ),
                    );
                }
            }
        }
    }
    Ok(())
}

fn matches(want: &Expected, got: &str) -> Result<(), String> {
    match want {
        Expected::Exact(w) if w == got => Ok(()),
        Expected::Exact(w) => Err(format!("expected\n      {w:?}\n    got\n      {got:?}")),
        Expected::Pattern { pattern } => {
            let re =
                regex::Regex::new(pattern).map_err(|e| format!("bad pattern {pattern:?}: {e}"))?;
            if re.is_match(got) {
                Ok(())
            } else {
                Err(format!("expected a match of {pattern:?}\n    got {got:?}"))
            }
        }
        Expected::Contains { contains } if got.contains(contains.as_str()) => Ok(()),
        Expected::Contains { contains } => Err(format!(
            "expected a message containing {contains:?}\n    got {got:?}"
        )),
    }
}
