//! Where triggers fire within a step: a message's keyword or event picks
//! the flow it starts, and what a step made happen (a run completing or
//! failing, the contact opting in or out) starts an event trigger's flow,
//! in the same transaction as the step. Each firing goes in its trigger's log.

use confab_flow::Input;
use confab_flow::routing::triggered_by;
use confab_model::InboundMessage;
use confab_store::{NewFiring, StoreError, Tx, Write};

use super::{Runtime, RuntimeError, Stepped, Target};
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
        let book = self.triggers.of(stepped.bot_id);
        for depth in 0..=MAX_CHAIN {
            let Some((a, event)) = stepped
                .happened
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
                .catalog(stepped.bot_id)
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
                    stepped.contact.clone(),
                    None,
                    Target::Fresh {
                        flow: a.flow.clone(),
                        replacing: Some(stepped.row.clone()),
                        why: "an event trigger started another flow",
                    },
                    input_of(a),
                    now,
                )
                .await?;
            f.run_id = Some(next.row.id);
            writes.push(Write::Fired(f));
            let mut replies = std::mem::take(&mut stepped.replies);
            replies.extend(next.replies);
            stepped = Stepped { replies, ..next };
        }
        Ok(stepped)
    }
}
