//! A batch's writes, gathered as its steps make them and written at its end.

use confab_store::{StoreError, Tx};

/// Writes of a batch's steps, made together at its end: one multi-row
/// statement each instead of one per message. A run begun in the batch has
/// its id at once and its row written at the end.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) new_runs: Vec<(i64, confab_store::NewRun)>,
    pub(super) runs: Vec<(i64, String, Option<String>, String)>,
    pub(super) events: Vec<(i64, String)>,
    pub(super) timers: Vec<(i64, u64, i64)>,
    pub(super) effects: Vec<(i64, String)>,
    pub(super) rate_windows: Vec<(i64, confab_store::RateWindow)>,
    pub(super) replies: Vec<confab_store::Reply>,
    pub(super) responses: Vec<(i64, String)>,
}

impl Pending {
    /// Writes everything and commits.
    pub(super) async fn commit(mut self, mut tx: Tx, now: i64) -> Result<(), StoreError> {
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
