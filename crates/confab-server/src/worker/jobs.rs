//! Timers and requests of runs: a timer that went off, or an HTTP call a
//! flow asked for, moves its run on. Both are leased jobs, like sends.
//! Runs idle past the inactivity timeout are expired here too, and media
//! past its retention deleted.

use std::sync::Arc;
use std::time::Duration;

use confab_flow::{EffectResult, Input, Request};
use confab_model::OutboundContent;
use confab_store::{ClaimedJob, JOB_EFFECT, JOB_TIMER, NewAiCall};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::assistant::Asker;
use crate::runtime::{Continuation, EffectJob, Runtime, perform_http};

const POLL: Duration = Duration::from_millis(250);
const BATCH: i64 = 32;
/// Runs moved on in one transaction at most.
const CONTINUE_BATCH: usize = 8;
/// How often to look for runs idle past the inactivity timeout.
const EXPIRY_EVERY: Duration = Duration::from_secs(2);
/// How often to delete media past its retention.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Fires due timers and carries out queued requests until `stop`. Requests
/// (HTTP calls, AI answers) run side by side, up to `AI_CONCURRENCY` at once:
/// one slow answer must not hold up the others.
pub async fn run_jobs(runtime: Arc<Runtime>, mut stop: watch::Receiver<bool>) {
    let http = confab_channels::http_client(Duration::from_secs(60));
    let slots = Arc::new(Semaphore::new(runtime.settings.assistant.concurrency));
    let mut tasks = JoinSet::new();
    let (done, finished) = mpsc::unbounded_channel();
    let continuer = tokio::spawn(continue_in_batches(runtime.clone(), finished));
    let mut next_expiry = tokio::time::Instant::now();
    let mut next_purge = tokio::time::Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        while tasks.try_join_next().is_some() {}
        let now_at = tokio::time::Instant::now();
        if now_at >= next_expiry {
            next_expiry = now_at + EXPIRY_EVERY;
            match runtime.expire_idle().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "idle runs expired"),
                Err(e) => tracing::warn!(error = %e, "expiring idle runs failed"),
            }
        }
        if now_at >= next_purge {
            next_purge = now_at + PURGE_EVERY;
            purge_media(&runtime).await;
        }
        let mut did = 0;
        let now = runtime.clock.now_ms();
        let lease = now + runtime.settings.outbox_lease.as_millis() as i64;
        match runtime.store.claim_jobs(JOB_TIMER, now, lease, BATCH).await {
            Ok(jobs) => {
                did += jobs.len();
                for job in jobs {
                    if let Some(input) = timer_input(&job) {
                        let _ = done.send(continuation(&job, input, Vec::new()));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "claiming timers failed"),
        }
        // Only as many requests as there are free slots are claimed: a
        // claimed job waits for no one.
        let free = slots.available_permits().min(BATCH as usize) as i64;
        if free > 0 {
            // The lease outlasts the longest AI call, so no other worker
            // takes a job over while its answer is still being written.
            let ai = runtime
                .settings
                .assistant
                .ai
                .as_ref()
                .map_or(Duration::ZERO, |c| c.deadline + Duration::from_secs(30));
            let lease = now + (runtime.settings.outbox_lease + ai).as_millis() as i64;
            match runtime.store.claim_jobs(JOB_EFFECT, now, lease, free).await {
                Ok(jobs) => {
                    did += jobs.len();
                    for job in jobs {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            break;
                        };
                        let runtime = runtime.clone();
                        let http = http.clone();
                        let done = done.clone();
                        tasks.spawn(async move {
                            let (input, calls) = effect_input(&runtime, &http, &job).await;
                            let _ = done.send(continuation(&job, input, calls));
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming requests failed"),
            }
        }
        if did == 0 {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
        }
    }
    // Requests in flight finish: their leases would otherwise have to run out.
    while tasks.join_next().await.is_some() {}
    drop(done);
    let _ = continuer.await;
}

fn continuation(job: &ClaimedJob, input: Input, calls: Vec<NewAiCall>) -> Continuation {
    Continuation {
        run_id: job.ref_id,
        input,
        job: Some((job.job_id, job.lease)),
        calls,
    }
}

/// Moves runs on as their timers and requests finish, as many as are ready
/// in one transaction (group commit, as for inbound messages).
async fn continue_in_batches(
    runtime: Arc<Runtime>,
    mut finished: mpsc::UnboundedReceiver<Continuation>,
) {
    let mut later: std::collections::VecDeque<Continuation> = Default::default();
    loop {
        let first = match later.pop_front() {
            Some(c) => c,
            None => match finished.recv().await {
                Some(c) => c,
                None => return,
            },
        };
        let mut batch = vec![first];
        while batch.len() < CONTINUE_BATCH {
            let Ok(c) = finished.try_recv() else { break };
            // One step per run per transaction; a second waits its turn.
            if batch.iter().any(|b| b.run_id == c.run_id) {
                later.push_back(c);
            } else {
                batch.push(c);
            }
        }
        move_runs(&runtime, batch).await;
    }
}

async fn move_runs(runtime: &Runtime, batch: Vec<Continuation>) -> Vec<OutboundContent> {
    let n = batch.len();
    match runtime.continue_runs(batch).await {
        Ok(replies) => replies.into_iter().flatten().flatten().collect(),
        Err(e) => {
            // The leases run out and the jobs are tried again.
            tracing::error!(runs = n, error = %e, "moving runs on failed");
            Vec::new()
        }
    }
}

/// Carries out the requests that are due now, one after another, and
/// returns what simulator runs answered: `confab chat` runs no worker.
pub async fn carry_out_requests(runtime: &Runtime) -> Vec<OutboundContent> {
    let http = confab_channels::http_client(Duration::from_secs(60));
    let mut replies = Vec::new();
    loop {
        let now = runtime.clock.now_ms();
        let lease = now + 600_000;
        let jobs = match runtime
            .store
            .claim_jobs(JOB_EFFECT, now, lease, BATCH)
            .await
        {
            Ok(j) if !j.is_empty() => j,
            Ok(_) => return replies,
            Err(e) => {
                tracing::warn!(error = %e, "claiming requests failed");
                return replies;
            }
        };
        let mut batch = Vec::with_capacity(jobs.len());
        for job in jobs {
            let (input, calls) = effect_input(runtime, &http, &job).await;
            batch.push(continuation(&job, input, calls));
        }
        replies.extend(move_runs(runtime, batch).await);
    }
}

/// Deletes media kept longer than `MEDIA_RETENTION_DAYS`.
async fn purge_media(runtime: &Runtime) {
    let keep = runtime.settings.assistant.media.retention.as_millis() as i64;
    match runtime
        .store
        .purge_media(runtime.clock.now_ms() - keep)
        .await
    {
        Ok((0, _)) => {}
        Ok((n, files)) => {
            remove_files(&files).await;
            tracing::info!(purged = n, "media past its retention deleted");
        }
        Err(e) => tracing::warn!(error = %e, "purging media failed"),
    }
}

fn timer_input(job: &ClaimedJob) -> Option<Input> {
    let token = job.payload.as_deref().and_then(|p| p.parse().ok());
    if token.is_none() {
        tracing::error!(job = job.job_id, "a timer without a token");
    }
    token.map(Input::Timer)
}

async fn effect_input(
    runtime: &Runtime,
    http: &reqwest::Client,
    job: &ClaimedJob,
) -> (Input, Vec<NewAiCall>) {
    let Some(Ok(effect)) = job.payload.as_deref().map(EffectJob::parse) else {
        tracing::error!(job = job.job_id, "a request job that cannot be read");
        let failed = EffectResult::Failed {
            error: "the request could not be read".into(),
        };
        return (Input::Result(failed), Vec::new());
    };
    let (result, calls) = match &effect.request {
        Request::Ai { .. } => match runtime.store.run(job.ref_id).await {
            Ok(run) => {
                let bot_id = match runtime.store.contact(run.contact_id).await {
                    Ok(c) => c.bot_id,
                    Err(e) => {
                        let error = format!("the run's contact cannot be read: {e}");
                        return (Input::Result(EffectResult::Failed { error }), Vec::new());
                    }
                };
                let who = Asker {
                    bot_id,
                    run_id: run.id,
                    contact_id: run.contact_id,
                    flow_id: run.flow_id,
                    node: run.node,
                };
                runtime
                    .assistant
                    .answer(&who, &effect.request, effect.message_id)
                    .await
            }
            Err(e) => (
                EffectResult::Failed {
                    error: format!("the run cannot be read: {e}"),
                },
                Vec::new(),
            ),
        },
        other => (perform_http(http, other).await, Vec::new()),
    };
    (Input::Result(result), calls)
}

/// Deletes media files whose rows are gone; one already gone is no matter.
pub async fn remove_files(files: &[String]) {
    for f in files {
        if let Err(e) = tokio::fs::remove_file(f).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %f, error = %e, "deleting a media file failed");
        }
    }
}
