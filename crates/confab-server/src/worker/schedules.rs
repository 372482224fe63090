//! Schedule triggers: each due time is claimed by one server (see
//! `confab_store::triggers`) and worked through its audience as a leased
//! job, a page at a time.
//!
//! A server that was down over due times fires only the latest of them,
//! once, when it is back (or skips it, with `misfire: skip`): the next due
//! time is counted from now, so missed times never come as a burst.

use std::sync::Arc;
use std::time::Duration;

use confab_store::{ClaimedJob, DueSchedule, JOB_SCHEDULE};
use tokio::sync::watch;

use crate::automation::How;
use crate::runtime::{Held, Runtime};

const POLL: Duration = Duration::from_millis(500);
/// A due time this late was missed (no server ran), not merely reached.
pub const GRACE_MS: i64 = 60_000;
/// Schedule pages claimed at once.
const PAGES: i64 = 2;
/// Schedules one server works through at once; more wait for a server
/// with room.
const MAX_HELD: usize = 16;

/// Fires due schedules and works their audiences until `stop`.
pub async fn run_schedules(runtime: Arc<Runtime>, mut stop: watch::Receiver<bool>) {
    // Jobs this server keeps between their pages (see `Held`).
    let mut held: Vec<Held> = Vec::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let now = runtime.clock.now_ms();
        // Work that is due now (a schedule fired, a page worked at once)
        // is looked for again at once; else the loop waits for the next
        // page, or a poll.
        let mut again = false;
        let mut wake_at = now + POLL.as_millis() as i64;
        match runtime.store.due_schedules(now, 32).await {
            Ok(due) => {
                for d in due {
                    again = true;
                    if let Err(e) = claim(&runtime, &d, now).await {
                        tracing::warn!(trigger = d.id, error = %e, "firing a schedule failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading due schedules failed"),
        }
        let (due, later): (Vec<Held>, Vec<Held>) = std::mem::take(&mut held)
            .into_iter()
            .partition(|h| h.due_ms <= now);
        held = later;
        let mut jobs: Vec<ClaimedJob> = due.into_iter().map(|h| h.job).collect();
        // New schedules' pages, or those of a server that stopped.
        let room = PAGES.min(MAX_HELD.saturating_sub(held.len() + jobs.len()) as i64);
        if room > 0 {
            let lease = now + runtime.settings.outbox_lease.as_millis() as i64;
            match runtime
                .store
                .claim_jobs(JOB_SCHEDULE, now, lease, room)
                .await
            {
                Ok(claimed) => jobs.extend(claimed),
                Err(e) => tracing::warn!(error = %e, "claiming schedule pages failed"),
            }
        }
        for job in jobs {
            match runtime.schedule_page(&job).await {
                Ok(Some(next)) => {
                    again |= next.due_ms <= now;
                    held.push(next);
                }
                Ok(None) => again = true,
                Err(e) => {
                    tracing::warn!(job = job.job_id, error = %e, "a schedule page failed")
                }
            }
        }
        if let Some(first) = held.iter().map(|h| h.due_ms).min() {
            wake_at = wake_at.min(first);
        }
        if !again {
            let wait = u64::try_from(wake_at - runtime.clock.now_ms()).unwrap_or(0);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                _ = stop.changed() => {}
            }
        }
    }
    // Another server may go on with them at once.
    let leases: Vec<(i64, i64)> = held.iter().map(|h| (h.job.job_id, h.job.lease)).collect();
    if let Err(e) = runtime.store.release_jobs(&leases).await {
        tracing::warn!(error = %e, "giving up schedule pages failed; their leases will run out");
    }
}

/// Moves a due schedule on to its next due time and fires (or skips) this one.
async fn claim(runtime: &Runtime, due: &DueSchedule, now: i64) -> anyhow::Result<()> {
    let (next, skip, matched) = match crate::automation::read(&due.spec).map(|(_, how)| how) {
        Ok(How::Schedule {
            schedule,
            skip_missed,
            ..
        }) => {
            let missed = now - due.due_ms > GRACE_MS;
            let next = schedule.next_after(if missed { now } else { due.due_ms });
            let skip = (missed && skip_missed)
                .then_some("missed while no server was running (misfire: skip)");
            (next, skip, format!("due {}", schedule.local(due.due_ms)))
        }
        // A schedule that no longer reads stops.
        Ok(_) => (None, Some("not a schedule"), String::new()),
        Err(e) => {
            tracing::warn!(trigger = due.id, error = %e, "a stored schedule cannot be read");
            (None, Some("the schedule cannot be read"), String::new())
        }
    };
    let fired = runtime
        .store
        .claim_schedule(due, next, skip.map(|why| (matched.as_str(), why)), now)
        .await?;
    if fired.is_some_and(|id| id > 0) {
        tracing::info!(trigger = due.id, due = due.due_ms, "schedule fired");
    }
    Ok(())
}
