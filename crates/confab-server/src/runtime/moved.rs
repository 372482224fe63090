//! Runs moved by something other than an inbound message: timers and
//! requests' results, an operator's start, resume or cancel, and expiry.

use confab_flow::{Input, RunStatus};
use confab_model::{Channel, OutboundContent};
use confab_store::{StoreError, StoredRun, Tx, Write};
use serde_json::Value;

use super::{
    Continuation, Route, Runtime, RuntimeError, Target, contact_json, end_run, stored_run,
};

impl Runtime {
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
        let mut writes: Vec<Write> = Vec::new();
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
            // Runs from before bots held conversations are the default bot's.
            let bot_id = contact
                .and_then(|c| c.get("bot_id"))
                .and_then(Value::as_i64)
                .unwrap_or(confab_store::DEFAULT_BOT);
            let route = match channel {
                Channel::Simulator => Route::Collect,
                _ => Route::Outbox {
                    channel,
                    sender: self.sender(bot_id, channel, via),
                    reply_to: None,
                },
            };
            let contact = contact.cloned().unwrap_or(Value::Null);
            let contact_id = row.contact_id;
            let moved = self
                .advance(
                    &mut tx,
                    &mut writes,
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
                Ok(super::Advanced {
                    queued: sent,
                    twiml: answer,
                    ..
                }) => {
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
        tx.commit_writes(writes, now).await?;
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
        contact_id: i64,
        contact: Value,
        target: Target,
        input: Input,
        route: &Route<'_>,
        now: i64,
    ) -> Result<(StoredRun, Option<String>), RuntimeError> {
        let mut writes: Vec<Write> = Vec::new();
        let super::Advanced {
            row,
            queued,
            twiml: answer,
            ..
        } = self
            .advance(
                &mut tx,
                &mut writes,
                contact_id,
                contact,
                None,
                target,
                input,
                route,
                now,
            )
            .await?;
        tx.commit_writes(writes, now).await?;
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
        input: serde_json::Map<String, Value>,
    ) -> Result<StoredRun, RuntimeError> {
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        tx.lock_contacts(&[contact_id]).await?;
        let states = tx.contact_states(&[contact_id]).await?;
        let state = states.get(&contact_id).ok_or(StoreError::NotFound)?;
        if !self.registry.catalog(state.bot_id).flows.contains_key(flow) {
            return Err(RuntimeError::Flow(format!("no flow {flow}")));
        }
        let contact = contact_json(contact_id, state, channel, None);
        let replacing = tx.current_runs(&[contact_id]).await?.remove(&contact_id);
        // A simulation's messages stay in its conversation.
        let route = match channel {
            Channel::Simulator => Route::Collect,
            _ => Route::Outbox {
                channel,
                sender: self.sender(state.bot_id, channel, None),
                reply_to: None,
            },
        };
        self.step_alone(
            tx,
            contact_id,
            contact,
            Target::Fresh {
                flow: flow.to_string(),
                replacing,
                why: "another run was started through the API",
            },
            Input::StartWith(input),
            &route,
            now,
        )
        .await
        .map(|(run, _)| run)
    }

    /// An operator opts a contact out or back in: the flag and the flow an
    /// `opt_out`/`opt_in` trigger starts for them (`source` "api") commit
    /// together; setting the flag the contact has already fires nothing.
    pub async fn set_opted_out(
        &self,
        contact_id: i64,
        opted_out: bool,
    ) -> Result<(), RuntimeError> {
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        tx.lock_contacts(&[contact_id]).await?;
        let bot_id = tx
            .contact_states(&[contact_id])
            .await?
            .get(&contact_id)
            .ok_or(StoreError::NotFound)?
            .bot_id;
        let route = self.sending_channel(bot_id).map(|channel| Route::Outbox {
            channel,
            sender: self.sender(bot_id, channel, None),
            reply_to: None,
        });
        let run = tx.current_runs(&[contact_id]).await?.remove(&contact_id);
        let mut writes = Vec::new();
        let opted = self
            .opt_outside_run(
                &mut tx,
                &mut writes,
                contact_id,
                opted_out,
                "api",
                route.as_ref(),
                Vec::new(),
                run,
                now,
            )
            .await?;
        tx.commit_writes(writes, now).await?;
        if opted.queued {
            self.wake.notify_one();
        }
        Ok(())
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
