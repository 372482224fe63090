//! Where flows meet the world: inbound messages step their contacts' runs,
//! and the effects (replies, records, timers, requests) are carried out in
//! the same transaction that stores the message.
//!
//! Per contact, one step at a time in arrival order: the batch is walked in
//! order, and on PostgreSQL every contact in it is locked for the
//! transaction, so replicas serialise too.
//!
//! Here: stepping a run and carrying out its effects (`advance`,
//! `deliver`, `execute`). Inbound batches are in `inbound`; runs moved by
//! timers, requests' results and operators in `moved`; a batch's gathered
//! writes in the store's batch of domain writes (`confab_store::Write`).

use std::sync::Arc;

use confab_flow::{Effect, EffectResult, Event, Input, Outcome, Request, Run, RunStatus, step};
use confab_model::{Channel, InboundMessage, OutboundContent};
use confab_store::{
    ContactState, Outgoing, Record, RecordFilter, Store, StoreError, StoredRun, Tx, Write,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashSet;
use tokio::sync::Notify;

mod fired;
mod inbound;
mod moved;
mod scheduled;

pub use scheduled::Held;

use crate::automation::{Book, BotEvent, EventKind};
use crate::bots::Directory;
use crate::catalog::{Catalog, Pinned, Registry};
use crate::clock::Clock;
use crate::config::Settings;

/// Requests a step may chain within one input (a find, then a save...).
const MAX_REQUESTS: usize = 20;

pub struct Runtime {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    /// The flow a contact of the default bot with no run starts in; none:
    /// only triggers start flows.
    pub default_flow: Option<String>,
    /// The bot and flow `confab chat` was told to talk to.
    pub chat_flow: Option<(i64, String)>,
    /// The bots, with their channels and default flows.
    pub bots: Arc<Directory>,
    pub wake: Arc<Notify>,
    /// Carries out what `ai` nodes ask, after commit.
    pub assistant: Arc<crate::assistant::Assistant>,
    /// The files contacts send, fetched once and kept.
    pub files: Arc<crate::media::Files>,
    /// The allow-list as last read, by its stored text: parsed once per change.
    pub allow_list: std::sync::Mutex<AllowListCache>,
    /// The bots' active triggers.
    pub triggers: Arc<Book>,
}

/// A run moved on by something other than a message.
pub struct Continuation {
    pub run_id: i64,
    pub input: Input,
    /// The job that carried it, with its lease.
    pub job: Option<(i64, i64)>,
    /// AI calls made for it, recorded in the transaction that moves it.
    pub calls: Vec<confab_store::NewAiCall>,
}

/// The stored allow-list's text and what it parsed to.
pub type AllowListCache = Option<(String, Option<Arc<HashSet<String>>>)>;

/// A request carried out after commit, as its job stores it.
#[derive(Serialize, Deserialize)]
pub struct EffectJob {
    pub request: Request,
    /// The message that moved the run, for an AI request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<i64>,
}

impl EffectJob {
    pub fn parse(payload: &str) -> Result<EffectJob, serde_json::Error> {
        serde_json::from_str(payload).or_else(|e| {
            // Jobs queued before AI requests existed hold the bare request.
            serde_json::from_str::<Request>(payload)
                .map(|request| EffectJob {
                    request,
                    message_id: None,
                })
                .map_err(|_| e)
        })
    }
}

/// Why a run could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Flow(String),
}

/// The run a step moves: the contact's stored one, or a new one of a flow.
enum Target {
    Existing(Box<(StoredRun, Run)>),
    Fresh {
        flow: String,
        /// The contact's latest run, which the new one replaces, and why.
        replacing: Option<StoredRun>,
        why: &'static str,
    },
}

/// What [`Runtime::advance`] did.
pub(crate) struct Advanced {
    /// The contact's run now: the last a flow_completed (or other event)
    /// trigger started after the step, or the stepped run itself.
    row: StoredRun,
    /// The run the step stored, whatever followed it: what a trigger that
    /// chose it started.
    first: i64,
    /// Whether anything was queued for the outbox.
    queued: bool,
    /// The TwiML answer, when the route is a webhook's.
    twiml: Option<String>,
}

/// A run stepped and stored, with what it sends and the events it made.
struct Stepped {
    row: StoredRun,
    replies: Vec<OutboundContent>,
    happened: Vec<BotEvent>,
    bot_id: i64,
    /// The contact, as the run holds it.
    contact: Value,
}

/// How a run's messages leave: in the answer to the message, or via the outbox.
enum Route<'a> {
    /// A provider whose webhook's answer carries replies (Twilio's TwiML),
    /// and the simulator (the replies as JSON).
    Inline(&'a InboundMessage),
    /// A simulator run moved by something other than a message: the
    /// replies are kept and handed back to the caller.
    Collect,
    /// Any other provider, or no inbound message at all: queued for the
    /// outbox worker.
    Outbox {
        channel: Channel,
        sender: String,
        reply_to: Option<String>,
    },
}

impl Route<'_> {
    /// The channel the messages leave by.
    fn channel(&self) -> Channel {
        match self {
            Route::Inline(m) => m.channel,
            Route::Collect => Channel::Simulator,
            Route::Outbox { channel, .. } => *channel,
        }
    }
}

/// The bot a run's contact belongs to. Runs from before bots held
/// conversations are the default bot's.
fn bot_of(run: &confab_flow::Run) -> i64 {
    run.vars
        .get("contact")
        .and_then(|c| c.get("bot_id"))
        .and_then(Value::as_i64)
        .unwrap_or(confab_store::DEFAULT_BOT)
}

/// A run's contact, as flows see it (`contact.phone`, `contact.name`).
fn contact_json(id: i64, c: &ContactState, channel: Channel, via: Option<&str>) -> Value {
    json!({"id": id, "bot_id": c.bot_id, "phone": c.phone, "name": c.name, "channel": channel.as_str(), "via": via})
}

pub fn record_json(r: &Record) -> Value {
    let mut m = r.data.clone();
    m.insert("id".into(), Value::from(r.id));
    m.insert(
        "contact_id".into(),
        r.contact_id.map(Value::from).unwrap_or(Value::Null),
    );
    m.insert(
        "created_at".into(),
        Value::String(crate::clock::rfc3339(r.created_ms)),
    );
    m.insert(
        "updated_at".into(),
        Value::String(crate::clock::rfc3339(r.updated_ms)),
    );
    Value::Object(m)
}

impl Runtime {
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        bots: Arc<Directory>,
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
    ) -> Runtime {
        let files = Arc::new(crate::media::Files::new(
            store.clone(),
            bots.clone(),
            settings.clone(),
            clock.clone(),
        ));
        let assistant = Arc::new(crate::assistant::Assistant::new(
            store.clone(),
            bots.clone(),
            files.clone(),
            settings.clone(),
        ));
        Runtime {
            bots,
            default_flow: settings.default_flow.clone(),
            chat_flow: None,
            store,
            registry,
            settings,
            clock,
            wake,
            assistant,
            files,
            allow_list: Default::default(),
            triggers: Default::default(),
        }
    }

    /// The number bot `bot_id` sends from on a channel: its channel's, or
    /// the one the contact wrote to.
    fn sender(&self, bot_id: i64, channel: Channel, inbound_to: Option<&str>) -> String {
        if channel == Channel::Simulator {
            return "simulator".into();
        }
        self.bots
            .client(bot_id, channel)
            .map(|c| c.sender())
            .or_else(|| inbound_to.map(|t| t.strip_prefix("whatsapp:").unwrap_or(t).to_string()))
            .unwrap_or_default()
    }

    /// The channel bot `bot_id` starts conversations on: its first that can send.
    fn sending_channel(&self, bot_id: i64) -> Option<Channel> {
        self.bots.by_id(bot_id).and_then(|b| {
            b.channels
                .iter()
                .find(|c| c.client.is_some())
                .map(|c| c.channel())
        })
    }

    /// The flow a contact of bot `bot_id` without a run starts in.
    fn default_flow_of(&self, bot_id: i64) -> Option<String> {
        if let Some((bot, flow)) = &self.chat_flow
            && *bot == bot_id
        {
            return Some(flow.clone());
        }
        if bot_id == confab_store::DEFAULT_BOT {
            // The environment's.
            return self.default_flow.clone();
        }
        self.bots.by_id(bot_id)?.record.default_flow.clone()
    }

    /// Steps one run (a new one of the default flow when `run` is none),
    /// carries out what it asks within `tx`, and stores it; a flow an
    /// event trigger starts on what happened (the run completing, the
    /// contact opting out...) follows in the same transaction.
    #[allow(clippy::too_many_arguments)]
    async fn advance(
        &self,
        tx: &mut Tx,
        writes: &mut Vec<Write>,
        contact_id: i64,
        contact: Value,
        message_id: Option<i64>,
        target: Target,
        input: Input,
        route: &Route<'_>,
        now: i64,
    ) -> Result<Advanced, RuntimeError> {
        let stepped = self
            .step_run(
                tx, writes, contact_id, contact, message_id, target, input, now,
            )
            .await?;
        let first = stepped.row.id;
        let Stepped {
            row,
            mut replies,
            bot_id,
            ..
        } = self
            .follow_events(tx, writes, contact_id, stepped, now)
            .await?;
        let (queued, twiml) = self.deliver(
            writes,
            (contact_id, bot_id),
            std::mem::take(&mut replies),
            route,
        );
        Ok(Advanced {
            row,
            first,
            queued,
            twiml,
        })
    }

    /// One step of one run, stored; what it sends is returned, not yet delivered.
    #[allow(clippy::too_many_arguments)]
    async fn step_run(
        &self,
        tx: &mut Tx,
        writes: &mut Vec<Write>,
        contact_id: i64,
        contact: Value,
        message_id: Option<i64>,
        target: Target,
        input: Input,
        now: i64,
    ) -> Result<Stepped, RuntimeError> {
        let before = match &target {
            Target::Existing(existing) => Some(existing.1.status),
            Target::Fresh { .. } => None,
        };
        let (mut row, run, replacing) = match target {
            Target::Existing(existing) => {
                let (row, run) = *existing;
                (Some(row), run, None)
            }
            Target::Fresh {
                flow,
                replacing,
                why,
            } => (None, Run::new(&flow, contact), replacing.map(|r| (r, why))),
        };
        let root_id = run.root_flow().to_string();
        let bot = bot_of(&run);
        let catalog = &*self.registry.catalog(bot);
        // A run in progress keeps the version it began on; a finished one
        // that a new message restarts takes the live version.
        let version = match &row {
            Some(r) if r.flow_id == root_id && !run.status.is_finished() => r.flow_version,
            _ => catalog
                .flows
                .get(&root_id)
                .map(|(v, _)| *v)
                .ok_or_else(|| RuntimeError::Flow(format!("flow {root_id} is not loaded")))?,
        };
        let root = self
            .registry
            .version(bot, &root_id, version)
            .await
            .map_err(|e| RuntimeError::Flow(e.to_string()))?
            .ok_or_else(|| {
                RuntimeError::Flow(format!("flow {root_id} version {version} is gone"))
            })?;
        let flows = Pinned {
            root: &root,
            catalog,
        };

        let mut outcome = step(&flows, run, input, now);
        let mut effects = Vec::new();
        let mut events = Vec::new();
        let mut remote = None;
        for _ in 0..MAX_REQUESTS {
            effects.append(&mut outcome.effects.clone());
            events.append(&mut outcome.events.clone());
            let Some(request) = outcome.request().cloned() else {
                break;
            };
            if request.is_remote() {
                // Carried out by a worker after commit: no network call
                // while the transaction holds the contact.
                remote = Some(request);
                break;
            }
            let owner = (bot, contact_id);
            let result = self.execute(tx, catalog, owner, &request, now).await?;
            outcome = step(&flows, outcome.run, Input::Result(result), now);
        }
        let Outcome { run, .. } = outcome;

        // A restart (or a first step) begins a new stored run.
        let started = events.iter().any(|e| matches!(e, Event::Started { .. }));
        let state = serde_json::to_string(&run).map_err(|e| RuntimeError::Flow(e.to_string()))?;
        let flow_version = if started {
            catalog
                .flows
                .get(run.root_flow())
                .map(|(v, _)| *v)
                .unwrap_or(version)
        } else {
            version
        };
        let run_id = match row.as_ref() {
            Some(r) if !started => {
                writes.push(Write::RunChanged {
                    id: r.id,
                    status: run.status.as_str().to_string(),
                    node: run.node.clone(),
                    state: state.clone(),
                });
                r.id
            }
            _ => {
                let id = tx.next_run_id().await?;
                // A contact has one run in progress: the one this replaces
                // ends here, saying why.
                let replaced = match (replacing, row.as_ref()) {
                    (Some(r), _) => Some(r),
                    (None, Some(r)) => Some((r.clone(), restarted_by(&events))),
                    (None, None) => None,
                };
                if let Some((old, why)) = replaced {
                    interrupt(writes, old, why, id, run.root_flow());
                }
                writes.push(Write::RunStarted {
                    id,
                    run: confab_store::NewRun {
                        contact_id,
                        flow_id: run.root_flow().to_string(),
                        flow_version,
                        status: run.status.as_str().to_string(),
                        node: run.node.clone(),
                        state: state.clone(),
                    },
                });
                id
            }
        };
        let stored = StoredRun {
            id: run_id,
            contact_id,
            flow_id: run.root_flow().to_string(),
            flow_version,
            status: run.status.as_str().to_string(),
            node: run.node.clone(),
            state,
            created_ms: row
                .take()
                .filter(|_| !started)
                .map_or(now, |r| r.created_ms),
            updated_ms: now,
        };
        // A step's events are one row: a JSON array, in order.
        writes.push(Write::RunEvents {
            run: run_id,
            events: serde_json::to_string(&events).unwrap_or_default(),
        });
        if let Some(request) = remote {
            let job = EffectJob {
                request,
                message_id,
            };
            writes.push(Write::Effect {
                run: run_id,
                request: serde_json::to_string(&job).unwrap_or_default(),
            });
        }

        let mut replies: Vec<OutboundContent> = Vec::new();
        let mut happened = Vec::new();
        for e in effects {
            match e {
                Effect::Send { content } => replies.push(content),
                Effect::StartTimer { token, at_ms } => writes.push(Write::Timer {
                    run: run_id,
                    token,
                    at_ms,
                }),
                // An event only when it changed something: a second STOP
                // is confirmed, and fires nothing.
                Effect::OptOut => {
                    if tx.set_opted_out(contact_id, true, now).await? {
                        happened.push(EventKind::OptOut);
                    }
                }
                Effect::OptIn => {
                    if tx.set_opted_out(contact_id, false, now).await? {
                        happened.push(EventKind::OptIn);
                    }
                }
                Effect::Handoff | Effect::Request { .. } => {}
            }
        }
        // A run that ended here, however it began.
        let was_running = before.is_none_or(|s| !s.is_finished()) || started;
        match run.status {
            RunStatus::Completed if was_running => happened.push(EventKind::FlowCompleted),
            RunStatus::Failed if was_running => happened.push(EventKind::FlowFailed),
            _ => {}
        }
        let contact = run.vars.get("contact").cloned().unwrap_or(Value::Null);
        let text = |k: &str| {
            contact
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (phone, source) = (text("phone"), text("channel"));
        let happened = happened
            .into_iter()
            .map(|kind| {
                let mut fields = vec![("source", source.clone()), ("phone", phone.clone())];
                if matches!(kind, EventKind::FlowCompleted | EventKind::FlowFailed) {
                    fields.push(("flow", run.root_flow().to_string()));
                }
                BotEvent { kind, fields }
            })
            .collect();
        Ok(Stepped {
            row: stored,
            replies,
            happened,
            bot_id: bot_of(&run),
            contact,
        })
    }

    /// Hands a step's replies to where they leave (see [`Route`]), as
    /// writes of the batch: whether any was queued for the outbox, and
    /// the answer to the webhook (or the simulator), if the route has one.
    fn deliver(
        &self,
        writes: &mut Vec<Write>,
        (contact_id, bot_id): (i64, i64),
        replies: Vec<OutboundContent>,
        route: &Route<'_>,
    ) -> (bool, Option<String>) {
        if replies.is_empty() {
            return (false, None);
        }
        let (channel, sender, reply_to) = match route {
            Route::Collect => (
                Channel::Simulator,
                self.sender(bot_id, Channel::Simulator, None),
                None,
            ),
            Route::Inline(m) => (
                m.channel,
                self.sender(m.bot_id, m.channel, m.to.as_deref()),
                None,
            ),
            Route::Outbox {
                channel,
                sender,
                reply_to,
            } => (*channel, sender.clone(), reply_to.clone()),
        };
        let answer = match route {
            // As the provider's answer carries them; the simulator's as JSON.
            Route::Inline(m) => Some(match confab_channels::webhook::of(m.channel) {
                Some(w) => w.render(&replies),
                None => serde_json::to_string(&replies).unwrap_or_default(),
            }),
            Route::Collect => Some(serde_json::to_string(&replies).unwrap_or_default()),
            Route::Outbox { .. } => None,
        };
        let queued = matches!(route, Route::Outbox { .. });
        writes.extend(replies.into_iter().map(|content| {
            let message = Outgoing {
                contact_id,
                channel,
                sender: Some(sender.clone()),
                content,
                reply_to: reply_to.clone(),
            };
            match queued {
                true => Write::Queued(message),
                false => Write::Reply(message),
            }
        }));
        (queued, answer)
    }

    /// Carries out a record request within the transaction.
    async fn execute(
        &self,
        tx: &mut Tx,
        catalog: &Catalog,
        (bot_id, contact_id): (i64, i64),
        request: &Request,
        now: i64,
    ) -> Result<EffectResult, RuntimeError> {
        let collection = |name: &str| {
            catalog
                .collections
                .get(name)
                .ok_or_else(|| format!("collection {name} is not declared"))
        };
        // The fields checked against their collection, or why they do not fit.
        let checked = |name: &str, fields, partial| {
            collection(name)?
                .check(fields, partial)
                .map_err(|e| format!("{name}: {e}"))
        };
        let failed = |error: String| Ok(EffectResult::Failed { error });
        match request {
            Request::SaveRecord {
                collection: name,
                fields,
            } => {
                let data = match checked(name, fields, false) {
                    Ok(d) => d,
                    Err(e) => return failed(e),
                };
                let r = tx
                    .insert_record(bot_id, name, Some(contact_id), &data, now)
                    .await?;
                Ok(EffectResult::Record {
                    record: Some(record_json(&r)),
                })
            }
            Request::FindRecords {
                collection: name,
                filter,
                limit,
            } => {
                let c = match collection(name) {
                    Ok(c) => c,
                    Err(e) => return failed(e),
                };
                let mut fields = Vec::new();
                for (k, v) in filter {
                    if k == "contact_id" {
                        continue;
                    }
                    if !c.fields.contains_key(k) {
                        return failed(format!("{name} has no field {k}"));
                    }
                    fields.push((k.clone(), v.clone()));
                }
                let contact = filter.get("contact_id").and_then(Value::as_i64);
                let f = RecordFilter {
                    bot_id,
                    fields,
                    contact_id: contact,
                    before_id: None,
                    limit: i64::from(*limit),
                };
                let records = tx.find_records(name, &f).await?;
                Ok(EffectResult::Records {
                    records: records.iter().map(record_json).collect(),
                })
            }
            Request::UpdateRecord {
                collection: name,
                id,
                fields,
            } => {
                let changes = match checked(name, fields, true) {
                    Ok(d) => d,
                    Err(e) => return failed(e),
                };
                let Some(id) = id
                    .as_i64()
                    .or_else(|| id.as_str().and_then(|s| s.parse().ok()))
                else {
                    return Ok(EffectResult::Record { record: None });
                };
                let r = tx.update_record(bot_id, name, id, &changes, now).await?;
                Ok(EffectResult::Record {
                    record: r.as_ref().map(record_json),
                })
            }
            Request::Http { .. } | Request::Ai { .. } => {
                failed("a remote request cannot run inside a transaction".into())
            }
        }
    }
}

/// A stored run's state.
fn stored_run(row: &StoredRun) -> Result<Run, RuntimeError> {
    serde_json::from_str(&row.state).map_err(|e| RuntimeError::Flow(format!("run {}: {e}", row.id)))
}

/// Ends a run from outside the flow (expiry, an operator) with `status`,
/// logging `command` as its event; returns the stored state.
/// Why a run began again: the command that restarted it.
fn restarted_by(events: &[Event]) -> &'static str {
    let command = events.iter().find_map(|e| match e {
        Event::Command { name } => Some(name.as_str()),
        _ => None,
    });
    match command {
        Some("restart") => "the contact sent restart",
        Some(_) => "the contact asked for the menu",
        None => "a new run began",
    }
}

/// Ends `old`, if it is still in progress, as replaced by run `by`.
fn interrupt(writes: &mut Vec<Write>, old: StoredRun, why: &str, by: i64, flow: &str) {
    if RunStatus::parse(&old.status).is_none_or(|s| s.is_finished()) {
        return;
    }
    let state = match serde_json::from_str::<Run>(&old.state) {
        Ok(mut run) => {
            run.status = RunStatus::Interrupted;
            run.timer = None;
            serde_json::to_string(&run).unwrap_or(old.state)
        }
        Err(_) => old.state,
    };
    writes.push(Write::RunChanged {
        id: old.id,
        status: RunStatus::Interrupted.as_str().to_string(),
        node: old.node,
        state,
    });
    let event = json!([{"type": "interrupted", "reason": why, "run": by, "flow": flow}]);
    writes.push(Write::RunEvents {
        run: old.id,
        events: event.to_string(),
    });
}

async fn end_run(
    tx: &mut Tx,
    run_id: i64,
    mut run: Run,
    status: RunStatus,
    command: &str,
    now: i64,
) -> Result<String, RuntimeError> {
    run.status = status;
    run.timer = None;
    let state = serde_json::to_string(&run).map_err(|e| RuntimeError::Flow(e.to_string()))?;
    tx.update_run(run_id, status.as_str(), run.node.as_deref(), &state, now)
        .await?;
    let event = json!([{"type": "command", "name": command}]).to_string();
    tx.insert_events(&[(run_id, event)], now).await?;
    Ok(state)
}

/// The result of an HTTP request a flow asked for, as the engine takes it.
pub async fn perform_http(http: &reqwest::Client, request: &Request) -> EffectResult {
    let Request::Http {
        method,
        url,
        headers,
        body,
        timeout_ms,
    } = request
    else {
        return EffectResult::Failed {
            error: "not an HTTP request".into(),
        };
    };
    let Ok(method) = reqwest::Method::from_bytes(method.as_bytes()) else {
        return EffectResult::Failed {
            error: format!("method {method} is not supported"),
        };
    };
    let mut req = http
        .request(method, url)
        .timeout(std::time::Duration::from_millis((*timeout_ms).max(1)));
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // A flow stores at most 256 KiB of an answer.
            let bytes = resp
                .bytes()
                .await
                .map(|b| b.slice(..b.len().min(256 * 1024)))
                .unwrap_or_default();
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            EffectResult::Http { status, body }
        }
        Err(e) => EffectResult::Failed {
            error: if e.is_timeout() {
                "the request timed out".into()
            } else {
                format!("the request failed: {e}")
            },
        },
    }
}
