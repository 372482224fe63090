//! Timers and requests of runs: a timer that went off, or an HTTP call a
//! flow asked for, moves its run on. Both are leased jobs, like sends.
//! Runs idle past the inactivity timeout are expired here too.

use std::sync::Arc;
use std::time::Duration;

use confab_flow::{EffectResult, Input, Request};
use confab_store::{ClaimedJob, JOB_EFFECT, JOB_TIMER};
use tokio::sync::watch;

use crate::runtime::{Runtime, perform_http};

const POLL: Duration = Duration::from_millis(250);
const BATCH: i64 = 32;
/// How often to look for runs idle past the inactivity timeout.
const EXPIRY_EVERY: Duration = Duration::from_secs(2);

/// Fires due timers and carries out queued requests until `stop`.
pub async fn run_jobs(runtime: Arc<Runtime>, mut stop: watch::Receiver<bool>) {
    let http = confab_channels::http_client(Duration::from_secs(60));
    let mut next_expiry = tokio::time::Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        if tokio::time::Instant::now() >= next_expiry {
            next_expiry = tokio::time::Instant::now() + EXPIRY_EVERY;
            match runtime.expire_idle().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "idle runs expired"),
                Err(e) => tracing::warn!(error = %e, "expiring idle runs failed"),
            }
        }
        let mut did = 0;
        for kind in [JOB_TIMER, JOB_EFFECT] {
            let now = runtime.clock.now_ms();
            let lease = now + runtime.settings.outbox_lease.as_millis() as i64;
            let jobs = match runtime.store.claim_jobs(kind, now, lease, BATCH).await {
                Ok(j) => j,
                Err(e) => {
                    tracing::warn!(error = %e, kind, "claiming jobs failed");
                    continue;
                }
            };
            did += jobs.len();
            for job in jobs {
                let input = if kind == JOB_TIMER {
                    timer_input(&job)
                } else {
                    effect_input(&http, &job).await
                };
                let Some(input) = input else { continue };
                if let Err(e) = runtime
                    .continue_run(job.ref_id, input, Some((job.job_id, job.lease)))
                    .await
                {
                    // The lease runs out and the job is tried again.
                    tracing::error!(run = job.ref_id, kind, error = %e, "moving a run on failed");
                }
            }
        }
        if did == 0 {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

fn timer_input(job: &ClaimedJob) -> Option<Input> {
    let token = job.payload.as_deref().and_then(|p| p.parse().ok());
    if token.is_none() {
        tracing::error!(job = job.job_id, "a timer without a token");
    }
    token.map(Input::Timer)
}

async fn effect_input(http: &reqwest::Client, job: &ClaimedJob) -> Option<Input> {
    let request: Request = match job.payload.as_deref().map(serde_json::from_str) {
        Some(Ok(r)) => r,
        _ => {
            tracing::error!(job = job.job_id, "a request job that cannot be read");
            return Some(Input::Result(EffectResult::Failed {
                error: "the request could not be read".into(),
            }));
        }
    };
    Some(Input::Result(perform_http(http, &request).await))
}
