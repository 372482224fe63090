//! Where triggers fire within a step: a message's keyword or event picks
//! the flow it starts, and what a step made happen (a run completing or
//! failing, the contact opting in or out) starts an event trigger's flow,
//! in the same transaction as the step. Each firing goes in its trigger's log.

use confab_flow::Input;
use confab_flow::routing::triggered_by;
use confab_model::InboundMessage;
use confab_model::OutboundContent;
use confab_store::{NewFiring, StoreError, StoredRun, Tx, Write};
use serde_json::Value;

use super::{Route, Runtime, RuntimeError, Stepped, Target, contact_json};
use crate::automation::{Active, BotEvent, EventKind};
use crate::catalog::Catalog;

/// Flows event triggers may start one after another within one step: a
/// flow that completes at once and starts itself again stops here.
const MAX_CHAIN: usize = 5;

/// The flow a message starts, and the trigger that chose it.
pub(super) struct Chosen {
    pub flow: String,
    pub input: Input,
    /// The API trigger, with its firing to log (or logged ahead, by id).
    pub firing: Option<Firing>,
}

pub(super) enum Firing {
    /// To log once the run is known.
    Log(NewFiring),
    /// Logged ahead (an event that must fire once), to complete.
    Once(i64),
}

impl Chosen {
    /// Logs the firing: `run` is the run the flow began as, or none when
    /// the message went to the run the contact is in already.
    pub(super) fn log(self, writes: &mut Vec<Write>, run: Option<i64>) {
        match self.firing {
            Some(Firing::Log(mut f)) if run.is_some() => {
                f.run_id = run;
                writes.push(Write::Fired(f));
            }
            Some(Firing::Once(id)) => writes.push(Write::FiringOutcome {
                id,
                run,
                error: run
                    .is_none()
                    .then(|| "the contact is in this flow already".to_string()),
            }),
            _ => {}
        }
    }
}

fn firing(a: &Active, contact: i64, matched: String) -> NewFiring {
    NewFiring {
        trigger_id: a.id,
        bot_id: a.bot_id,
        contact_id: Some(contact),
        matched,
        run_id: None,
        error: None,
    }
}

fn input_of(a: &Active) -> Input {
    if a.variables.is_empty() {
        Input::Start
    } else {
        Input::StartWith(a.variables.clone())
    }
}

impl Runtime {
    /// The flow message `m` starts by a trigger, if any: a keyword (of a
    /// flow file or the API, by priority; the API's on a tie), else a
    /// `new_contact` event (a contact whose first message this is, and
    /// who has no run) or a `message_received` one.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn message_trigger(
        &self,
        tx: &mut Tx,
        m: &InboundMessage,
        catalog: &Catalog,
        contact_id: i64,
        has_run: bool,
        text: &str,
        now: i64,
    ) -> Result<Option<Chosen>, StoreError> {
        let book = self.triggers.of(m.bot_id);
        let from_file = triggered_by(&catalog.list(), text);
        let from_api = book.keyword(text);
        match (from_api, from_file) {
            (Some((a, k)), file) if file.is_none_or(|(p, _)| a.priority >= i64::from(p)) => {
                return Ok(Some(Chosen {
                    flow: a.flow.clone(),
                    input: input_of(a),
                    firing: Some(Firing::Log(firing(
                        a,
                        contact_id,
                        format!("keyword {:?}", k.value),
                    ))),
                }));
            }
            (_, Some((_, f))) => {
                return Ok(Some(Chosen {
                    flow: f.id.clone(),
                    input: Input::Start,
                    firing: None,
                }));
            }
            _ => {}
        }
        if book.list.is_empty() {
            return Ok(None);
        }
        let source = m.channel.as_str().to_string();
        let phone = m.from.as_str().to_string();
        if !has_run && book.wants(EventKind::NewContact) {
            let event = BotEvent {
                kind: EventKind::NewContact,
                fields: vec![("source", source.clone()), ("phone", phone.clone())],
            };
            if let Some(a) = book.on(&event) {
                let f = firing(a, contact_id, event.describe());
                // Once per contact, also when two batches see it new.
                if let Some(id) = tx
                    .fire_once(&f, &format!("contact:{contact_id}"), true, now)
                    .await?
                {
                    return Ok(Some(Chosen {
                        flow: a.flow.clone(),
                        input: input_of(a),
                        firing: Some(Firing::Once(id)),
                    }));
                }
            }
        }
        if book.wants(EventKind::MessageReceived) {
            let event = BotEvent {
                kind: EventKind::MessageReceived,
                fields: vec![
                    ("source", source),
                    ("phone", phone),
                    ("type", m.kind.as_str().to_string()),
                    ("text", text.to_string()),
                ],
            };
            if let Some(a) = book.on(&event) {
                return Ok(Some(Chosen {
                    flow: a.flow.clone(),
                    input: input_of(a),
                    firing: Some(Firing::Log(firing(a, contact_id, event.describe()))),
                }));
            }
        }
        Ok(None)
    }

    /// Starts the flows of event triggers that what `stepped` made happen
    /// sets off, one after another, each replacing the run before it.
    pub(super) async fn follow_events(
        &self,
        tx: &mut Tx,
        writes: &mut Vec<Write>,
        contact_id: i64,
        mut stepped: Stepped,
        now: i64,
    ) -> Result<Stepped, RuntimeError> {
        if stepped.happened.is_empty() {
            return Ok(stepped);
        }
        let happening = Happening {
            bot_id: stepped.bot_id,
            contact: stepped.contact.clone(),
            events: std::mem::take(&mut stepped.happened),
            run: Some(stepped.row.clone()),
        };
        let mut replies = std::mem::take(&mut stepped.replies);
        let last = self
            .fire_events(tx, writes, contact_id, happening, &mut replies, now)
            .await?;
        Ok(Stepped {
            replies,
            ..last.unwrap_or(stepped)
        })
    }

    /// Starts the flows of event triggers that `happening` sets off, one
    /// after another, each replacing the run before it; their messages are
    /// added to `replies`. The last run started, if any.
    async fn fire_events(
        &self,
        tx: &mut Tx,
        writes: &mut Vec<Write>,
        contact_id: i64,
        mut happening: Happening,
        replies: &mut Vec<OutboundContent>,
        now: i64,
    ) -> Result<Option<Stepped>, RuntimeError> {
        let book = self.triggers.of(happening.bot_id);
        let mut last = None;
        for depth in 0..=MAX_CHAIN {
            let Some((a, event)) = happening
                .events
                .iter()
                .find_map(|e| book.on(e).map(|a| (a, e)))
            else {
                break;
            };
            let mut f = firing(a, contact_id, event.describe());
            if depth == MAX_CHAIN {
                f.error = Some(format!(
                    "{MAX_CHAIN} flows were started by events in one step already"
                ));
                writes.push(Write::Fired(f));
                break;
            }
            if !self
                .registry
                .catalog(happening.bot_id)
                .flows
                .contains_key(&a.flow)
            {
                f.error = Some(format!("the bot has no flow {:?}", a.flow));
                writes.push(Write::Fired(f));
                break;
            }
            let next = self
                .step_run(
                    tx,
                    writes,
                    contact_id,
                    happening.contact.clone(),
                    None,
                    Target::Fresh {
                        flow: a.flow.clone(),
                        replacing: happening.run.clone(),
                        why: "an event trigger started another flow",
                    },
                    input_of(a),
                    now,
                )
                .await;
            // A flow that cannot start is the firing's error; what made
            // the event stands.
            let mut next = match next {
                Ok(next) => next,
                Err(RuntimeError::Flow(e)) => {
                    f.error = Some(e);
                    writes.push(Write::Fired(f));
                    break;
                }
                Err(e) => return Err(e),
            };
            f.run_id = Some(next.row.id);
            writes.push(Write::Fired(f));
            replies.append(&mut next.replies);
            happening = Happening {
                bot_id: next.bot_id,
                contact: next.contact.clone(),
                events: std::mem::take(&mut next.happened),
                run: Some(next.row.clone()),
            };
            last = Some(next);
        }
        Ok(last)
    }

    /// A contact opts out or back in outside any run's step (a STOP no run
    /// answers, an operator through the API): the flag, `confirm` (the
    /// answer to a STOP) and the flow an `opt_out`/`opt_in` trigger starts,
    /// replacing `run`, as writes of `tx`, leaving by `route` (none: the bot
    /// has no channel that can send). Setting the flag the contact has
    /// already fires nothing.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn opt_outside_run(
        &self,
        tx: &mut Tx,
        writes: &mut Vec<Write>,
        contact_id: i64,
        opted_out: bool,
        source: &str,
        route: Option<&Route<'_>>,
        confirm: Vec<OutboundContent>,
        run: Option<StoredRun>,
        now: i64,
    ) -> Result<Opted, RuntimeError> {
        let states = tx.contact_states(&[contact_id]).await?;
        let state = states.get(&contact_id).ok_or(StoreError::NotFound)?;
        let bot_id = state.bot_id;
        let mut replies = confirm;
        let mut run = run;
        if tx.set_opted_out(contact_id, opted_out, now).await? {
            let event = BotEvent {
                kind: if opted_out {
                    EventKind::OptOut
                } else {
                    EventKind::OptIn
                },
                fields: vec![
                    ("source", source.to_string()),
                    ("phone", state.phone.clone()),
                ],
            };
            let book = self.triggers.of(bot_id);
            match (book.on(&event), route) {
                (None, _) => {}
                (Some(a), None) => {
                    let mut f = firing(a, contact_id, event.describe());
                    f.error = Some("the bot has no channel that can send".into());
                    writes.push(Write::Fired(f));
                }
                (Some(_), Some(route)) => {
                    let happening = Happening {
                        bot_id,
                        contact: contact_json(contact_id, state, route.channel(), None),
                        events: vec![event],
                        run: run.clone(),
                    };
                    if let Some(last) = self
                        .fire_events(tx, writes, contact_id, happening, &mut replies, now)
                        .await?
                    {
                        run = Some(last.row);
                    }
                }
            }
        }
        let (queued, answer) = match route {
            Some(route) => self.deliver(writes, (contact_id, bot_id), replies, route),
            None => (false, None),
        };
        Ok(Opted {
            queued,
            answer,
            run,
        })
    }
}

/// What honouring an opt-out or opt-in outside a run did.
pub(super) struct Opted {
    /// Whether a message was queued for the outbox.
    pub queued: bool,
    /// The answer to the webhook, if its route has one.
    pub answer: Option<String>,
    /// The contact's run now.
    pub run: Option<StoredRun>,
}

/// What happened to a contact, for event triggers: the events, and the
/// run they found the contact in.
struct Happening {
    bot_id: i64,
    contact: Value,
    events: Vec<BotEvent>,
    run: Option<StoredRun>,
}
