//! Where flows meet the world: inbound messages step their contacts' runs,
//! and the effects (replies, records, timers, requests) are carried out in
//! the same transaction that stores the message.
//!
//! Per contact, one step at a time in arrival order: the batch is walked in
//! order, and on PostgreSQL every contact in it is locked for the
//! transaction, so replicas serialise too.

use std::sync::Arc;

use confab_channels::twilio;
use confab_flow::routing::choose;
use confab_flow::{
    Effect, EffectResult, Event, Input, Outcome, Reply, Request, Run, RunStatus, step,
};
use confab_model::{Channel, InboundMessage, OutboundContent, PhoneNumber};
use confab_store::{
    ContactState, Ingested, NewOutbound, Record, RecordFilter, Store, StoreError, StoredRun, Tx,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashSet;
use tokio::sync::Notify;

use crate::access;
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
    /// The flow a contact with no run starts in; none: only triggers start flows.
    pub default_flow: Option<String>,
    pub wake: Arc<Notify>,
    /// Carries out what `ai` nodes ask, after commit.
    pub assistant: Arc<crate::assistant::Assistant>,
    /// The allow-list as last read, by its stored text: parsed once per change.
    pub allow_list: std::sync::Mutex<AllowListCache>,
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

/// Writes of a batch's steps, made together at its end: one multi-row
/// statement each instead of one per message. A run begun in the batch has
/// its id at once and its row written at the end.
#[derive(Default)]
struct Pending {
    new_runs: Vec<(i64, confab_store::NewRun)>,
    runs: Vec<(i64, String, Option<String>, String)>,
    events: Vec<(i64, String)>,
    timers: Vec<(i64, u64, i64)>,
    effects: Vec<(i64, String)>,
    rate_windows: Vec<(i64, confab_store::RateWindow)>,
    replies: Vec<confab_store::Reply>,
    responses: Vec<(i64, String)>,
}

impl Pending {
    /// Writes everything and commits.
    async fn commit(mut self, mut tx: Tx, now: i64) -> Result<(), StoreError> {
        // A run begun and stepped again in the batch is inserted as it ended.
        let mut updates = Vec::with_capacity(self.runs.len());
        for (id, status, node, state) in self.runs {
            match self.new_runs.iter_mut().find(|(n, _)| *n == id) {
                Some((_, new)) => {
                    new.status = status;
                    new.node = node;
                    new.state = state;
                }
                None => updates.push((id, status, node, state)),
            }
        }
        for (run, token, at) in self.timers {
            tx.schedule_timer(run, token, at, now).await?;
        }
        for (run, request) in self.effects {
            tx.schedule_effect(run, &request, now).await?;
        }
        tx.put_rate_windows(&self.rate_windows).await?;
        let last = confab_store::Closing {
            new_runs: self.new_runs,
            run_updates: updates,
            events: self.events,
            replies: self.replies,
            responses: self.responses,
        };
        tx.commit_with(&last, now).await
    }
}

/// The run a step moves: the contact's stored one, or a new one of a flow.
enum Target {
    Existing(Box<(StoredRun, Run)>),
    Fresh(String),
}

/// How a run's messages leave: in the answer to the message, or via the outbox.
enum Route<'a> {
    /// Twilio (TwiML in the webhook's answer) and the simulator (the
    /// replies as JSON): the answer carries the replies.
    Inline(&'a InboundMessage),
    /// A simulator run moved by something other than a message: the
    /// replies are kept and handed back to the caller.
    Collect,
    /// Meta, or no inbound message at all: queued for the outbox worker.
    Outbox {
        channel: Channel,
        sender: String,
        reply_to: Option<String>,
    },
}

/// A run's contact, as flows see it (`contact.phone`, `contact.name`).
fn contact_json(id: i64, c: &ContactState, channel: Channel, via: Option<&str>) -> Value {
    json!({"id": id, "phone": c.phone, "name": c.name, "channel": channel.as_str(), "via": via})
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

fn reply_of(m: &InboundMessage) -> Reply {
    Reply {
        text: m.text.clone(),
        kind: Some(m.kind),
        reply_id: m.extra.reply_id.clone(),
        media: m
            .media
            .iter()
            .map(|x| serde_json::to_value(x).unwrap_or(Value::Null))
            .collect(),
    }
}

impl Runtime {
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
    ) -> Runtime {
        let assistant = Arc::new(crate::assistant::Assistant::new(
            store.clone(),
            settings.clone(),
            clock.clone(),
        ));
        Runtime {
            default_flow: settings.default_flow.clone(),
            store,
            registry,
            settings,
            clock,
            wake,
            assistant,
            allow_list: Default::default(),
        }
    }

    /// Stores an inbound batch and steps the runs of its new messages, all
    /// in one transaction; Twilio messages get their TwiML answer in
    /// `Ingested::response`.
    pub async fn process(&self, batch: &[InboundMessage]) -> Result<Vec<Ingested>, StoreError> {
        let mut tries = 0;
        loop {
            match self.process_once(batch).await {
                Err(e) if e.is_conflict() && tries < 4 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(5 << tries)).await;
                }
                other => return other,
            }
        }
    }

    async fn process_once(&self, batch: &[InboundMessage]) -> Result<Vec<Ingested>, StoreError> {
        let now = self.clock.now_ms();
        let (mut tx, arrival) = self
            .store
            .receive(batch, now, access::ALLOW_LIST_KEY)
            .await?;
        let confab_store::Arrival {
            mut stored,
            contacts: states,
            mut runs,
            setting: allow_list,
        } = arrival;
        let fresh: Vec<usize> = (0..batch.len()).filter(|&i| !stored[i].duplicate).collect();
        if fresh.is_empty() {
            tx.commit().await?;
            return Ok(stored);
        }
        let contacts: Vec<i64> = fresh.iter().map(|&i| stored[i].contact_id).collect();
        let catalog = self.registry.catalog();
        let flow_list: Vec<&confab_flow::Flow> =
            catalog.flows.values().map(|(_, f)| f.as_ref()).collect();
        let mut queued = false;
        let mut pending = Pending::default();
        let allowed = self.allow_list(allow_list);
        let limit = self.settings.assistant.rate_limit;
        let mut windows = match limit {
            Some(_) => tx.rate_windows(&contacts).await?,
            None => Default::default(),
        };
        // The windows this batch counted in: only they are written back.
        let mut counted = HashSet::new();
        let mut refused = HashSet::new();
        for i in fresh {
            let m = &batch[i];
            let contact_id = stored[i].contact_id;
            let Some(state) = states.get(&contact_id) else {
                continue;
            };
            if state.blocked {
                // Stored, never answered.
                continue;
            }
            let route = match m.channel {
                Channel::Twilio | Channel::Simulator => Route::Inline(m),
                Channel::Meta => Route::Outbox {
                    channel: Channel::Meta,
                    sender: self.sender(Channel::Meta, m.to.as_deref()),
                    reply_to: Some(m.provider_message_id.clone()),
                },
            };
            // Off the allow-list: one polite refusal, ever; over the rate
            // limit: stored, not processed, told once per window.
            let notice = match &allowed {
                Some(list) if !list.contains(&state.phone) => Some(
                    (!state.refused && refused.insert(contact_id)).then_some(access::REFUSAL_TEXT),
                ),
                _ => limit.and_then(|l| {
                    let (w, verdict) = access::count(windows.get(&contact_id).copied(), l, now);
                    windows.insert(contact_id, w);
                    counted.insert(contact_id);
                    match verdict {
                        access::Verdict::Pass => None,
                        access::Verdict::Tell => Some(Some(access::RATE_LIMIT_TEXT)),
                        access::Verdict::Quiet => Some(None),
                    }
                }),
            };
            if let Some(text) = notice {
                if let Some(text) = text {
                    if refused.contains(&contact_id) {
                        tx.set_refused(contact_id, now).await?;
                    }
                    let reply = vec![OutboundContent::Text { body: text.into() }];
                    let (sent, answer) = self
                        .deliver(
                            &mut tx,
                            &mut pending,
                            contact_id,
                            &state.phone,
                            reply,
                            &route,
                            now,
                        )
                        .await
                        .map_err(|e| match e {
                            RuntimeError::Store(e) => e,
                            RuntimeError::Flow(e) => StoreError::Corrupt(e),
                        })?;
                    queued |= sent;
                    if let Some(a) = answer {
                        pending.responses.push((stored[i].message_id, a.clone()));
                        stored[i].response = Some(a);
                    }
                }
                continue;
            }
            let existing = runs.remove(&contact_id);
            let current = existing.and_then(|row| match serde_json::from_str::<Run>(&row.state) {
                Ok(run) => Some((row, run)),
                Err(e) => {
                    tracing::error!(run = row.id, error = %e, "a stored run cannot be read; starting afresh");
                    None
                }
            });
            let text = m
                .text
                .as_deref()
                .or(m.extra.reply_id.as_deref())
                .unwrap_or("");
            let (target, input) = match choose(
                &flow_list,
                self.default_flow.as_deref(),
                current.as_ref().map(|(_, r)| r),
                text,
            ) {
                Some(flow) => (Target::Fresh(flow), Input::Start),
                None => match current {
                    Some(existing) => (
                        Target::Existing(Box::new(existing)),
                        Input::Message(reply_of(m)),
                    ),
                    // No run, no trigger, no default flow: stored, not answered.
                    None => continue,
                },
            };
            let mut contact = contact_json(contact_id, state, m.channel, m.to.as_deref());
            // The stored name is written with the commit; the message's is newer.
            if let Some(name) = &m.profile_name {
                contact["name"] = Value::String(name.clone());
            }
            let outcome = self
                .advance(
                    &mut tx,
                    &mut pending,
                    &catalog,
                    contact_id,
                    contact,
                    Some(stored[i].message_id),
                    target,
                    input,
                    &route,
                    now,
                )
                .await;
            match outcome {
                Ok((row, sent, answer)) => {
                    queued |= sent;
                    if let Some(a) = answer {
                        pending.responses.push((stored[i].message_id, a.clone()));
                        stored[i].response = Some(a);
                    }
                    runs.insert(contact_id, row);
                }
                Err(RuntimeError::Store(e)) => return Err(e),
                Err(RuntimeError::Flow(e)) => {
                    tracing::error!(contact = contact_id, error = %e, "no flow can answer this message");
                }
            }
        }
        pending.rate_windows = windows
            .into_iter()
            .filter(|(c, _)| counted.contains(c))
            .collect();
        pending.commit(tx, now).await?;
        if queued {
            self.wake.notify_one();
        }
        Ok(stored)
    }

    /// The allow-list in force, as read within the batch's transaction so
    /// a change applies at once on every replica; none: everyone is served.
    fn allow_list(&self, raw: Option<String>) -> Option<Arc<HashSet<String>>> {
        let raw = raw?;
        let mut cache = self.allow_list.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((text, list)) = cache.as_ref()
            && *text == raw
        {
            return list.clone();
        }
        let list = access::parse_allow_list(&raw).map(Arc::new);
        *cache = Some((raw, list.clone()));
        list
    }

    /// The number we send from on a channel.
    fn sender(&self, channel: Channel, inbound_to: Option<&str>) -> String {
        match channel {
            Channel::Twilio => self.settings.twilio.as_ref().map(|t| t.from.to_string()),
            Channel::Meta => self
                .settings
                .meta
                .as_ref()
                .map(|m| m.phone_number_id.clone()),
            Channel::Simulator => Some("simulator".into()),
        }
        .or_else(|| inbound_to.map(|t| t.strip_prefix("whatsapp:").unwrap_or(t).to_string()))
        .unwrap_or_default()
    }

    /// Steps one run (a new one of the default flow when `run` is none),
    /// carries out what it asks within `tx`, and stores it. Returns the
    /// stored run, whether anything was queued for the outbox, and the
    /// TwiML answer when the route is a webhook's.
    #[allow(clippy::too_many_arguments)]
    async fn advance(
        &self,
        tx: &mut Tx,
        pending: &mut Pending,
        catalog: &Catalog,
        contact_id: i64,
        contact: Value,
        message_id: Option<i64>,
        target: Target,
        input: Input,
        route: &Route<'_>,
        now: i64,
    ) -> Result<(StoredRun, bool, Option<String>), RuntimeError> {
        let (mut row, run) = match target {
            Target::Existing(existing) => {
                let (row, run) = *existing;
                (Some(row), run)
            }
            Target::Fresh(flow) => (None, Run::new(&flow, contact)),
        };
        let root_id = run.root_flow().to_string();
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
            .version(&root_id, version)
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
            let result = self.execute(tx, catalog, contact_id, &request, now).await?;
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
                pending.runs.push((
                    r.id,
                    run.status.as_str().to_string(),
                    run.node.clone(),
                    state.clone(),
                ));
                r.id
            }
            _ => {
                let id = tx.next_run_id().await?;
                pending.new_runs.push((
                    id,
                    confab_store::NewRun {
                        contact_id,
                        flow_id: run.root_flow().to_string(),
                        flow_version,
                        status: run.status.as_str().to_string(),
                        node: run.node.clone(),
                        state: state.clone(),
                    },
                ));
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
        pending
            .events
            .push((run_id, serde_json::to_string(&events).unwrap_or_default()));
        if let Some(request) = remote {
            let job = EffectJob {
                request,
                message_id,
            };
            pending
                .effects
                .push((run_id, serde_json::to_string(&job).unwrap_or_default()));
        }

        let mut replies: Vec<OutboundContent> = Vec::new();
        for e in effects {
            match e {
                Effect::Send { content } => replies.push(content),
                Effect::StartTimer { token, at_ms } => pending.timers.push((run_id, token, at_ms)),
                Effect::OptOut => tx.set_opted_out(contact_id, true, now).await?,
                Effect::OptIn => tx.set_opted_out(contact_id, false, now).await?,
                Effect::Handoff | Effect::Request { .. } => {}
            }
        }
        let phone = run
            .vars
            .get("contact")
            .and_then(|c| c.get("phone"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (queued, twiml) = self
            .deliver(tx, pending, contact_id, phone, replies, route, now)
            .await?;
        Ok((stored, queued, twiml))
    }

    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &self,
        tx: &mut Tx,
        pending: &mut Pending,
        contact_id: i64,
        phone: &str,
        replies: Vec<OutboundContent>,
        route: &Route<'_>,
        now: i64,
    ) -> Result<(bool, Option<String>), RuntimeError> {
        match route {
            Route::Inline(_) | Route::Collect if replies.is_empty() => Ok((false, None)),
            Route::Collect => {
                let answer = serde_json::to_string(&replies).unwrap_or_default();
                pending
                    .replies
                    .extend(replies.into_iter().map(|content| confab_store::Reply {
                        contact_id,
                        channel: Channel::Simulator,
                        sender: Some(self.sender(Channel::Simulator, None)),
                        content,
                    }));
                Ok((false, Some(answer)))
            }
            Route::Inline(m) => {
                let answer = match m.channel {
                    Channel::Twilio => twilio::twiml(&replies),
                    _ => serde_json::to_string(&replies).unwrap_or_default(),
                };
                let history: Vec<confab_store::Reply> = replies
                    .into_iter()
                    .map(|content| confab_store::Reply {
                        contact_id,
                        channel: m.channel,
                        sender: Some(self.sender(m.channel, m.to.as_deref())),
                        content,
                    })
                    .collect();
                pending.replies.extend(history);
                Ok((false, Some(answer)))
            }
            Route::Outbox {
                channel,
                sender,
                reply_to,
            } => {
                if replies.is_empty() {
                    return Ok((false, None));
                }
                let to = PhoneNumber::parse(phone)
                    .map_err(|e| RuntimeError::Flow(format!("the run's contact: {e}")))?;
                let items: Vec<NewOutbound> = replies
                    .into_iter()
                    .map(|content| NewOutbound {
                        to: to.clone(),
                        channel: *channel,
                        sender: sender.clone(),
                        content,
                        reply_to: reply_to.clone(),
                        contact_id: Some(contact_id),
                    })
                    .collect();
                // Recipients must be distinct per call: one call per message keeps their order.
                for item in items {
                    tx.enqueue_outbound(std::slice::from_ref(&item), now)
                        .await?;
                }
                Ok((true, None))
            }
        }
    }

    /// Carries out a record request within the transaction.
    async fn execute(
        &self,
        tx: &mut Tx,
        catalog: &Catalog,
        contact_id: i64,
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
                let r = tx.insert_record(name, Some(contact_id), &data, now).await?;
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
                let r = tx.update_record(name, id, &changes, now).await?;
                Ok(EffectResult::Record {
                    record: r.as_ref().map(record_json),
                })
            }
            Request::Http { .. } | Request::Ai { .. } => {
                failed("a remote request cannot run inside a transaction".into())
            }
        }
    }

    /// Moves a stored run by an input that is not a message (an operator's
    /// resume); see [`Runtime::continue_runs`].
    pub async fn continue_run(
        &self,
        run_id: i64,
        input: Input,
        job: Option<(i64, i64)>,
    ) -> Result<Option<Vec<OutboundContent>>, RuntimeError> {
        let mut out = self
            .continue_runs(vec![Continuation {
                run_id,
                input,
                job,
                calls: Vec::new(),
            }])
            .await?;
        Ok(out.pop().flatten())
    }

    /// Moves stored runs by inputs that are not messages (timers, requests'
    /// results, an operator's resume), all in one transaction: results
    /// arrive many at a time, and one commit serves them all. What the runs
    /// send goes through the outbox, or for a simulator contact comes back.
    /// A run that is no longer its contact's current one is left alone, as
    /// is one whose job another worker took over: `None` for it. Run ids
    /// must be distinct.
    pub async fn continue_runs(
        &self,
        items: Vec<Continuation>,
    ) -> Result<Vec<Option<Vec<OutboundContent>>>, RuntimeError> {
        let now = self.clock.now_ms();
        let mut out = vec![None; items.len()];
        let mut tx = self.store.begin().await?;
        let ids: Vec<i64> = items.iter().map(|it| it.run_id).collect();
        let run_contacts = tx.run_contacts(&ids).await?;
        let mut contacts: Vec<i64> = run_contacts.values().copied().collect();
        contacts.sort_unstable();
        contacts.dedup();
        tx.lock_contacts(&contacts).await?;
        let jobs: Vec<(i64, i64)> = items.iter().filter_map(|it| it.job).collect();
        let held = tx.finish_jobs(&jobs).await?;
        // Read under the contacts' locks: a state read before them may
        // already be old.
        let current = tx.current_runs(&contacts).await?;
        let catalog = self.registry.catalog();
        let mut pending = Pending::default();
        let mut calls = Vec::new();
        let mut queued = false;
        for (i, it) in items.into_iter().enumerate() {
            if let Some((job_id, _)) = it.job
                && !held.contains(&job_id)
            {
                // Another worker took this job over; it will do the step.
                continue;
            }
            calls.extend(it.calls);
            // A run that is no longer its contact's current one is left alone.
            let Some(row) = run_contacts
                .get(&it.run_id)
                .and_then(|c| current.get(c))
                .filter(|r| r.id == it.run_id)
                .cloned()
            else {
                continue;
            };
            let run = match stored_run(&row) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "a stored run cannot be read");
                    continue;
                }
            };
            let contact = run.vars.get("contact");
            let channel = contact
                .and_then(|c| c.get("channel"))
                .and_then(Value::as_str)
                .and_then(Channel::parse)
                .unwrap_or(Channel::Twilio);
            let via = contact.and_then(|c| c.get("via")).and_then(Value::as_str);
            let route = match channel {
                Channel::Simulator => Route::Collect,
                _ => Route::Outbox {
                    channel,
                    sender: self.sender(channel, via),
                    reply_to: None,
                },
            };
            let contact = contact.cloned().unwrap_or(Value::Null);
            let contact_id = row.contact_id;
            let moved = self
                .advance(
                    &mut tx,
                    &mut pending,
                    &catalog,
                    contact_id,
                    contact,
                    None,
                    Target::Existing(Box::new((row, run))),
                    it.input,
                    &route,
                    now,
                )
                .await;
            match moved {
                Ok((_, sent, answer)) => {
                    queued |= sent;
                    out[i] = Some(
                        answer
                            .and_then(|a| serde_json::from_str(&a).ok())
                            .unwrap_or_default(),
                    );
                }
                Err(RuntimeError::Store(e)) => return Err(e.into()),
                Err(RuntimeError::Flow(e)) => {
                    tracing::error!(run = it.run_id, error = %e, "the run cannot be moved on");
                }
            }
        }
        tx.record_ai_calls(&calls, now).await?;
        pending.commit(tx, now).await?;
        if queued {
            self.wake.notify_one();
        }
        Ok(out)
    }

    /// Steps one run on its own (not a message of a batch), writes it and
    /// commits; what it sends goes through the outbox.
    #[allow(clippy::too_many_arguments)]
    async fn step_alone(
        &self,
        mut tx: Tx,
        catalog: &Catalog,
        contact_id: i64,
        contact: Value,
        target: Target,
        input: Input,
        route: &Route<'_>,
        now: i64,
    ) -> Result<(StoredRun, Option<String>), RuntimeError> {
        let mut pending = Pending::default();
        let (row, queued, answer) = self
            .advance(
                &mut tx,
                &mut pending,
                catalog,
                contact_id,
                contact,
                None,
                target,
                input,
                route,
                now,
            )
            .await?;
        pending.commit(tx, now).await?;
        if queued {
            self.wake.notify_one();
        }
        Ok((row, answer))
    }

    /// Starts `flow` for a contact (an operator's or another system's
    /// request); its messages go through the outbox.
    pub async fn start_run(
        &self,
        contact_id: i64,
        flow: &str,
        channel: Channel,
    ) -> Result<StoredRun, RuntimeError> {
        let now = self.clock.now_ms();
        let catalog = self.registry.catalog();
        if !catalog.flows.contains_key(flow) {
            return Err(RuntimeError::Flow(format!("no flow {flow}")));
        }
        let mut tx = self.store.begin().await?;
        tx.lock_contacts(&[contact_id]).await?;
        let states = tx.contact_states(&[contact_id]).await?;
        let state = states.get(&contact_id).ok_or(StoreError::NotFound)?;
        let contact = contact_json(contact_id, state, channel, None);
        let route = Route::Outbox {
            channel,
            sender: self.sender(channel, None),
            reply_to: None,
        };
        self.step_alone(
            tx,
            &catalog,
            contact_id,
            contact,
            Target::Fresh(flow.to_string()),
            Input::Start,
            &route,
            now,
        )
        .await
        .map(|(run, _)| run)
    }

    /// Expires runs that have waited for an answer longer than the
    /// inactivity timeout; the contact's next message starts afresh and is
    /// told so. Returns how many expired.
    pub async fn expire_idle(&self) -> Result<usize, RuntimeError> {
        let Some(timeout) = self.settings.run_timeout else {
            return Ok(0);
        };
        let now = self.clock.now_ms();
        let cutoff = now - timeout.as_millis() as i64;
        let mut expired = 0;
        for row in self.store.idle_runs(cutoff, 100).await? {
            let mut tx = self.store.begin().await?;
            tx.lock_contacts(&[row.contact_id]).await?;
            let row = tx.run(row.id).await?;
            // It may have moved since it was listed.
            if row.status != RunStatus::WaitingInput.as_str() || row.updated_ms >= cutoff {
                continue;
            }
            let run = stored_run(&row)?;
            end_run(&mut tx, row.id, run, RunStatus::Expired, "expire", now).await?;
            tx.commit().await?;
            expired += 1;
        }
        Ok(expired)
    }

    /// Stops a run for good.
    pub async fn cancel_run(&self, run_id: i64) -> Result<StoredRun, RuntimeError> {
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let contact_id = tx.run(run_id).await?.contact_id;
        tx.lock_contacts(&[contact_id]).await?;
        let row = tx.run(run_id).await?;
        let run = stored_run(&row)?;
        if run.status.is_finished() {
            return Err(RuntimeError::Flow(format!(
                "run {run_id} is already {}",
                run.status.as_str()
            )));
        }
        let state = end_run(&mut tx, run_id, run, RunStatus::Cancelled, "cancel", now).await?;
        tx.commit().await?;
        Ok(StoredRun {
            status: RunStatus::Cancelled.as_str().into(),
            state,
            updated_ms: now,
            ..row
        })
    }
}

/// A stored run's state.
fn stored_run(row: &StoredRun) -> Result<Run, RuntimeError> {
    serde_json::from_str(&row.state).map_err(|e| RuntimeError::Flow(format!("run {}: {e}", row.id)))
}

/// Ends a run from outside the flow (expiry, an operator) with `status`,
/// logging `command` as its event; returns the stored state.
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
