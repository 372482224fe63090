//! A batch of domain writes: what the steps of a batch of messages (or a
//! run moved on its own) change, handed to the store at the end, which
//! decides how to group them: one multi-row statement per kind, the last
//! of them sent with the commit (on SQLite, in its round trip). Nothing a
//! step goes on to read is among them: records and ids are written or
//! taken in the transaction at once.

use crate::{Closing, NewRun, Outgoing, RateWindow, StoreError, Tx};

/// One change a step made.
#[derive(Clone, Debug)]
pub enum Write {
    /// A run begun in the batch, with the id [`Tx::next_run_id`] gave it.
    RunStarted { id: i64, run: NewRun },
    /// A run's new status, node and state; a run changed twice keeps the
    /// last, and one begun in the batch is inserted as it ended.
    RunChanged {
        id: i64,
        status: String,
        node: Option<String>,
        state: String,
    },
    /// The events of one step of a run, a JSON array in order.
    RunEvents { run: i64, events: String },
    /// A timer the run waits for.
    Timer { run: i64, token: u64, at_ms: i64 },
    /// A request carried out after commit (HTTP, AI), as its job keeps it.
    Effect { run: i64, request: String },
    /// A contact's rate window as the batch counted it.
    RateWindow { contact: i64, window: RateWindow },
    /// A reply handed to the provider in the webhook's answer.
    Reply(Outgoing),
    /// A message queued for the outbox.
    Queued(Outgoing),
    /// What an inbound message was answered with, for a redelivery.
    Response { message: i64, answer: String },
    /// A trigger fired (see `Store::trigger_firings`).
    Fired(crate::NewFiring),
    /// The run an event firing recorded ahead (`Tx::fire_once`) started,
    /// or why none.
    FiringOutcome {
        id: i64,
        run: Option<i64>,
        error: Option<String>,
    },
}

impl Tx {
    /// Makes a batch's writes and commits.
    pub async fn commit_writes(
        mut self,
        writes: Vec<Write>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut last = Closing::default();
        let mut windows = Vec::new();
        let mut fired = Vec::new();
        for w in writes {
            match w {
                Write::RunStarted { id, run } => last.new_runs.push((id, run)),
                Write::RunChanged {
                    id,
                    status,
                    node,
                    state,
                } => match last.new_runs.iter_mut().find(|(n, _)| *n == id) {
                    Some((_, new)) => {
                        new.status = status;
                        new.node = node;
                        new.state = state;
                    }
                    None => last.run_updates.push((id, status, node, state)),
                },
                Write::RunEvents { run, events } => last.events.push((run, events)),
                Write::Timer { run, token, at_ms } => {
                    self.schedule_timer(run, token, at_ms, now_ms).await?
                }
                Write::Effect { run, request } => {
                    self.schedule_effect(run, &request, now_ms).await?
                }
                Write::RateWindow { contact, window } => windows.push((contact, window)),
                Write::Reply(r) => last.replies.push(r),
                Write::Queued(m) => last.queued.push(m),
                Write::Response { message, answer } => last.responses.push((message, answer)),
                Write::Fired(f) => fired.push(f),
                Write::FiringOutcome { id, run, error } => {
                    self.firing_outcome(id, run, error.as_deref()).await?
                }
            }
        }
        self.put_rate_windows(&windows).await?;
        self.closing.insert_firings(&fired, now_ms);
        self.commit_with(&last, now_ms).await
    }
}
