//! Inbound batches: stored, and each new message a step of its contact's
//! run, all in one transaction (see [`Runtime::process`]).

use std::collections::HashSet;
use std::sync::Arc;

use confab_flow::routing::{Destination, choose};
use confab_flow::{Input, Reply, Run};
use confab_model::{Channel, InboundMessage, OutboundContent};
use confab_store::{Ingested, StoreError, Write};
use serde_json::Value;

use super::{Advanced, Route, Runtime, RuntimeError, Target, contact_json};
use crate::access;

impl Runtime {
    /// Stores an inbound batch and steps the runs of its new messages, all
    /// in one transaction; Twilio messages get their TwiML answer in
    /// `Ingested::response`.
    pub async fn process(&self, batch: &[InboundMessage]) -> Result<Vec<Ingested>, StoreError> {
        confab_store::retry_conflicts(|| self.process_once(batch)).await
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
        let mut queued = false;
        let mut writes: Vec<Write> = Vec::new();
        // Each bot's policy; the default bot's allow-list as read within
        // this transaction.
        let default_list = self.allow_list(allow_list);
        let policy_of = |bot_id: i64| -> crate::access::Policy {
            let mut policy = self
                .bots
                .by_id(bot_id)
                .map(|b| b.policy.clone())
                .unwrap_or_default();
            if bot_id == confab_store::DEFAULT_BOT {
                policy.allow_list = default_list.clone();
                policy.rate_limit = policy.rate_limit.or(self.settings.assistant.rate_limit);
            }
            policy
        };
        // Once per bot in the batch, not per message.
        let mut policies: std::collections::HashMap<i64, crate::access::Policy> =
            Default::default();
        for &i in &fresh {
            let bot_id = batch[i].bot_id;
            policies.entry(bot_id).or_insert_with(|| policy_of(bot_id));
        }
        let limited = policies.values().any(|p| p.rate_limit.is_some());
        let mut windows = if limited {
            tx.rate_windows(&contacts).await?
        } else {
            Default::default()
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
            // A message given through the API has no webhook to answer:
            // its replies go out through the outbox.
            let inline = m.channel == Channel::Simulator
                || !m.extra.simulated
                    && confab_channels::webhook::of(m.channel).is_some_and(|w| w.replies_inline());
            let route = if inline {
                Route::Inline(m)
            } else {
                Route::Outbox {
                    channel: m.channel,
                    sender: self.sender(m.bot_id, m.channel, m.to.as_deref()),
                    reply_to: (!m.extra.simulated).then(|| m.provider_message_id.clone()),
                }
            };
            // Off the allow-list: one polite refusal, ever; over the rate
            // limit: stored, not processed, told once per window.
            let Some(policy) = policies.get(&m.bot_id) else {
                continue;
            };
            let notice = match &policy.allow_list {
                Some(list) if !list.contains(&state.phone) => Some(
                    (!state.refused && refused.insert(contact_id)).then_some(access::REFUSAL_TEXT),
                ),
                _ => policy.rate_limit.and_then(|l| {
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
                    let (sent, answer) =
                        self.deliver(&mut writes, (contact_id, state.bot_id), reply, &route);
                    queued |= sent;
                    if let Some(a) = answer {
                        answered(&mut writes, &mut stored[i], a);
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
            let default_flow = self.default_flow_of(m.bot_id);
            let catalog = self.registry.catalog(m.bot_id);
            // Handed off: a person has the conversation, no trigger takes it.
            let handed_off = current
                .as_ref()
                .is_some_and(|(_, r)| r.status == confab_flow::RunStatus::HandedOff);
            let mut chosen = if handed_off {
                None
            } else {
                self.message_trigger(
                    &mut tx,
                    m,
                    &catalog,
                    contact_id,
                    current.is_some(),
                    text,
                    now,
                )
                .await?
            };
            let decided = choose(
                &*catalog,
                chosen.as_ref().map(|c| c.flow.as_str()),
                default_flow.as_deref(),
                current.as_ref().map(|(_, r)| r),
                text,
            );
            let starts_chosen = matches!(&decided, Destination::Start(f)
                if chosen.as_ref().is_some_and(|c| &c.flow == f));
            let (target, input) = match (decided, current) {
                (Destination::Start(flow), current) => (
                    Target::Fresh {
                        flow,
                        replacing: current.map(|(row, _)| row),
                        why: "a trigger started another flow",
                    },
                    chosen.as_mut().map_or(Input::Start, |c| {
                        std::mem::replace(&mut c.input, Input::Start)
                    }),
                ),
                (Destination::Current, Some(existing)) => (
                    Target::Existing(Box::new(existing)),
                    Input::Message(reply_of(m)),
                ),
                // No run answers, no trigger, no default flow: a STOP or
                // START is still honoured; anything else is stored, not
                // answered.
                (Destination::Current | Destination::Nobody, current) => {
                    let Some(out) = confab_flow::engine::opt_word(text) else {
                        // Still the contact's run for the batch's next message.
                        if let Some((row, _)) = current {
                            runs.insert(contact_id, row);
                        }
                        continue;
                    };
                    let confirm = vec![confab_flow::engine::opt_confirmation(out)];
                    let opted = self
                        .opt_outside_run(
                            &mut tx,
                            &mut writes,
                            contact_id,
                            out,
                            m.channel.as_str(),
                            Some(&route),
                            confirm,
                            current.map(|(row, _)| row),
                            now,
                        )
                        .await;
                    match opted {
                        Ok(opted) => {
                            queued |= opted.queued;
                            if let Some(a) = opted.answer {
                                answered(&mut writes, &mut stored[i], a);
                            }
                            // The contact's run for the batch's next message.
                            if let Some(row) = opted.run {
                                runs.insert(contact_id, row);
                            }
                        }
                        Err(RuntimeError::Store(e)) => return Err(e),
                        Err(RuntimeError::Flow(e)) => {
                            tracing::error!(contact = contact_id, error = %e, "an opt-out cannot be honoured");
                        }
                    }
                    continue;
                }
            };
            let mut contact = contact_json(contact_id, state, m.channel, m.to.as_deref());
            // The stored name is written with the commit; the message's is newer.
            if let Some(name) = &m.profile_name {
                contact["name"] = Value::String(name.clone());
            }
            let outcome = self
                .advance(
                    &mut tx,
                    &mut writes,
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
                Ok(Advanced {
                    row,
                    first,
                    queued: sent,
                    twiml: answer,
                }) => {
                    if let Some(c) = chosen {
                        c.log(&mut writes, starts_chosen.then_some(first));
                    }
                    queued |= sent;
                    if let Some(a) = answer {
                        answered(&mut writes, &mut stored[i], a);
                    }
                    runs.insert(contact_id, row);
                }
                Err(RuntimeError::Store(e)) => return Err(e),
                Err(RuntimeError::Flow(e)) => {
                    tracing::error!(contact = contact_id, error = %e, "no flow can answer this message");
                }
            }
        }
        // Only the windows this batch counted in are written back.
        writes.extend(
            windows
                .into_iter()
                .filter(|(c, _)| counted.contains(c))
                .map(|(contact, window)| Write::RateWindow { contact, window }),
        );
        tx.commit_writes(writes, now).await?;
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
}

/// The answer to a webhook's message, stored with it.
fn answered(writes: &mut Vec<Write>, stored: &mut Ingested, answer: String) {
    writes.push(Write::Response {
        message: stored.message_id,
        answer: answer.clone(),
    });
    stored.response = Some(answer);
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
