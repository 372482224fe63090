//! Delivers queued messages through the providers.
//!
//! Jobs are leased from the database, so several replicas can share the
//! work and a crashed worker's jobs come back when the lease runs out. A
//! message the provider accepted is never sent again: its provider id is
//! stored in the same transaction that finishes the job.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_channels::{SendError, Sent};
use confab_model::{Channel, PhoneNumber, ProviderError};
use confab_store::{ClaimedSend, Store};
use rand::Rng;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};

use super::TokenBucket;
use crate::clock::Clock;
use crate::config::Settings;

/// Sends in flight at once, across senders.
const MAX_IN_FLIGHT: usize = 32;
/// How often to look for due jobs when nobody wakes us.
const POLL: Duration = Duration::from_millis(250);

pub struct Worker {
    store: Store,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    /// Each bot's channels, which send its messages.
    bots: Arc<crate::bots::Directory>,
    wake: Arc<Notify>,
    /// Accepted sends waiting to be recorded together.
    accepted: mpsc::UnboundedSender<Accepted>,
    accepted_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Accepted>>>,
}

/// A send the provider accepted, and who waits to hear it is recorded.
struct Accepted {
    job_id: i64,
    message_id: i64,
    provider_message_id: String,
    recorded: oneshot::Sender<bool>,
}

/// The outbox depth gauge, counted at most once a second: counting a
/// queue of thousands at every claim costs the database more than sending.
#[derive(Default)]
struct Depth {
    last: Option<Instant>,
}

impl Depth {
    async fn report(&mut self, store: &Store) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last = Some(Instant::now());
        if let Ok((n, _)) = store.outbox_depth().await {
            metrics::gauge!("confab_outbox_depth").set(n as f64);
        }
    }
}

/// Accepted sends recorded in one transaction at most.
const RECORD_BATCH: usize = 64;

/// The delay before retry number `attempt` (1-based): exponential from
/// `base`, capped at ten minutes, with jitter so that retries of many
/// messages spread out, and never sooner than the provider asked.
pub fn backoff(base: Duration, attempt: i64, retry_after: Option<Duration>) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.clamp(1, 16).saturating_sub(1) as u32);
    let capped = exp.min(Duration::from_secs(600));
    let jittered = capped.mul_f64(rand::rng().random_range(0.5..=1.0));
    // A provider asking for more than an hour is capped there.
    jittered.max(
        retry_after
            .unwrap_or_default()
            .min(Duration::from_secs(3600)),
    )
}

/// A provider gave a message an id another message has: counted and said,
/// since the two messages' delivery reports cannot be told apart.
fn id_taken(message: i64) {
    metrics::counter!("confab_send_results_unstorable_total").increment(1);
    tracing::warn!(
        message,
        "the provider accepted the message with an id another message has; recorded as accepted without it"
    );
}

impl Worker {
    pub fn new(
        store: Store,
        bots: Arc<crate::bots::Directory>,
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
    ) -> Worker {
        let (accepted, accepted_rx) = mpsc::unbounded_channel();
        Worker {
            bots,
            store,
            settings,
            clock,
            wake: Arc::new(Notify::new()),
            accepted,
            accepted_rx: std::sync::Mutex::new(Some(accepted_rx)),
        }
    }

    /// Records accepted sends as they come, as many as are ready in one
    /// transaction (group commit).
    async fn record_in_batches(
        store: Store,
        clock: Arc<dyn Clock>,
        mut rx: mpsc::UnboundedReceiver<Accepted>,
    ) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < RECORD_BATCH {
                match rx.try_recv() {
                    Ok(a) => batch.push(a),
                    Err(_) => break,
                }
            }
            let items: Vec<(i64, i64, String)> = batch
                .iter()
                .map(|a| (a.job_id, a.message_id, a.provider_message_id.clone()))
                .collect();
            let ok = match store.sends_accepted(&items, clock.now_ms()).await {
                Ok(conflicts) => {
                    for message in conflicts {
                        id_taken(message);
                    }
                    true
                }
                Err(e) => {
                    // Each send then records itself, retrying as long as it must.
                    tracing::warn!(error = %e, sends = items.len(), "recording send results together failed");
                    false
                }
            };
            for a in batch {
                let _ = a.recorded.send(ok);
            }
        }
    }

    /// A handle that makes the worker look for work at once.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let recorder = self
            .accepted_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(|rx| {
                tokio::spawn(Self::record_in_batches(
                    self.store.clone(),
                    self.clock.clone(),
                    rx,
                ))
            });
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut buckets: HashMap<String, TokenBucket> = HashMap::new();
        let mut depth = Depth::default();
        loop {
            if *stop.borrow() {
                break;
            }
            // Claim only what can go out now: a job is leased while it is
            // being sent, never while it waits for a slot or its pace.
            let first = tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = stop.changed() => continue,
            };
            let mut permits = vec![first];
            while let Ok(p) = slots.clone().try_acquire_owned() {
                permits.push(p);
            }
            let now = this.clock.now_ms();
            let lease = now + this.settings.outbox_lease.as_millis() as i64;
            let claimed = match this
                .store
                .claim_sends(now, lease, permits.len() as i64)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming outbox jobs failed");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                drop(permits);
                depth.report(&this.store).await;
                tokio::select! {
                    _ = this.wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let mut deferred: HashMap<String, u32> = HashMap::new();
            let mut put_back = Vec::new();
            for job in claimed {
                let Some(permit) = permits.pop() else { break };
                let sender = job.message.sender.clone().unwrap_or_default();
                let rate = this.settings.send_rate(job.message.channel);
                let bucket = buckets
                    .entry(sender.clone())
                    .or_insert_with(|| TokenBucket::new(rate));
                match bucket.try_take(Instant::now()) {
                    Ok(()) => {
                        let worker = this.clone();
                        tokio::spawn(async move {
                            worker.deliver(job).await;
                            drop(permit);
                        });
                    }
                    Err(wait) => {
                        // Over this sender's pace: back in the queue, spread
                        // out at the pace so the next claims find sendable work.
                        let k = deferred.entry(sender).or_default();
                        let at = now
                            + (wait.as_secs_f64() * 1000.0 + f64::from(*k) * 1000.0 / rate) as i64;
                        *k += 1;
                        put_back.push((job.job_id, job.lease, at));
                    }
                }
            }
            if let Err(e) = this.store.defer_sends(&put_back).await {
                tracing::warn!(error = %e, "deferring paced sends failed; their leases will run out");
            }
            depth.report(&this.store).await;
        }
        // Let sends in flight finish and record their results.
        let _ = slots.acquire_many(MAX_IN_FLIGHT as u32).await;
        if let Some(r) = recorder {
            r.abort();
        }
    }

    async fn deliver(&self, job: ClaimedSend) {
        let channel = job.message.channel;
        if job.contact_refuses {
            // Opted out or blocked since the message was queued.
            let error = ProviderError {
                code: None,
                message: "not sent: the contact opted out or is blocked".into(),
            };
            let stored = self
                .store
                .send_failed(
                    job.job_id,
                    job.lease,
                    job.message.id,
                    &error,
                    self.clock.now_ms(),
                )
                .await;
            self.finish(&job, "refused", stored.map(|_| ()));
            return;
        }
        let started = Instant::now();
        let result = self.send(&job).await;
        metrics::histogram!("confab_send_duration_seconds", "channel" => channel.as_str())
            .record(started.elapsed().as_secs_f64());
        let now = self.clock.now_ms();
        let (outcome, stored) = match result {
            Ok(sent) => {
                tracing::debug!(message = job.message.id, provider_id = %sent.provider_message_id, "sent");
                ("accepted", self.record_accepted(&job, &sent).await)
            }
            Err(SendError::Permanent(error)) => {
                tracing::warn!(message = job.message.id, code = ?error.code, error = %error.message, "send refused by provider");
                let r = self
                    .store
                    .send_failed(job.job_id, job.lease, job.message.id, &error, now)
                    .await;
                ("failed", r.map(|_| ()))
            }
            Err(SendError::Retryable {
                message,
                retry_after,
            }) if job.attempt < self.settings.send_max_attempts => {
                let delay = backoff(self.settings.send_retry_base, job.attempt, retry_after);
                tracing::info!(message = job.message.id, attempt = job.attempt, delay_ms = delay.as_millis() as u64, error = %message, "send will be retried");
                let r = self
                    .store
                    .send_retry(
                        job.job_id,
                        job.lease,
                        now + delay.as_millis() as i64,
                        &message,
                    )
                    .await;
                ("retry", r.map(|_| ()))
            }
            Err(SendError::Retryable { message, .. }) => {
                let error = ProviderError {
                    code: None,
                    message: format!("gave up after {} attempts: {message}", job.attempt),
                };
                tracing::warn!(message = job.message.id, error = %error.message, "send abandoned");
                let r = self
                    .store
                    .send_failed(job.job_id, job.lease, job.message.id, &error, now)
                    .await;
                ("failed", r.map(|_| ()))
            }
        };
        self.finish(&job, outcome, stored);
    }

    fn finish(
        &self,
        job: &ClaimedSend,
        outcome: &'static str,
        stored: Result<(), confab_store::StoreError>,
    ) {
        metrics::counter!("confab_sends_total", "channel" => job.message.channel.as_str(), "outcome" => outcome).increment(1);
        if let Err(e) = stored {
            // The lease runs out and the job is tried again.
            tracing::error!(message = job.message.id, error = %e, "recording a send result failed");
        }
    }

    /// Stores the provider's id. The message went out, so this must not be
    /// lost to a passing database error: keep trying, and keep the lease,
    /// for as long as the database refuses.
    async fn record_accepted(
        &self,
        job: &ClaimedSend,
        sent: &Sent,
    ) -> Result<(), confab_store::StoreError> {
        let (recorded, heard) = oneshot::channel();
        let together = self
            .accepted
            .send(Accepted {
                job_id: job.job_id,
                message_id: job.message.id,
                provider_message_id: sent.provider_message_id.clone(),
                recorded,
            })
            .is_ok();
        if together && heard.await == Ok(true) {
            return Ok(());
        }
        let mut lease = job.lease;
        let mut delay = Duration::from_millis(50);
        loop {
            let now = self.clock.now_ms();
            let err = match self
                .store
                .send_accepted(job.job_id, job.message.id, &sent.provider_message_id, now)
                .await
            {
                Ok(conflicts) => {
                    conflicts.into_iter().for_each(id_taken);
                    return Ok(());
                }
                Err(e) => e,
            };
            if err.is_permanent() {
                // Trying again cannot help, and the message went out: it is
                // recorded as accepted, with why its id is missing.
                tracing::error!(message = job.message.id, error = %err, "the send result cannot be stored; recording the message as accepted without it");
                metrics::counter!("confab_send_results_unstorable_total").increment(1);
                let note = format!(
                    "the provider accepted this message (id {}), but the id could not be stored: {err}",
                    sent.provider_message_id
                );
                match self
                    .store
                    .send_accepted_without_id(job.job_id, job.message.id, &note, now)
                    .await
                {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        tracing::warn!(error = %e, "recording the message as accepted failed; retrying")
                    }
                }
            } else {
                tracing::warn!(error = %err, "storing a send result failed; retrying");
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
            let until = self.clock.now_ms() + self.settings.outbox_lease.as_millis() as i64;
            match self.store.extend_lease(job.job_id, lease, until).await {
                Ok(Some(l)) => lease = l,
                // Someone else holds the job now: nothing more this worker can do.
                Ok(None) => return Err(err),
                // The database is still away; nobody else can claim the job either.
                Err(_) => {}
            }
        }
    }

    async fn send(&self, job: &ClaimedSend) -> Result<Sent, SendError> {
        let permanent = |message: String| {
            SendError::Permanent(ProviderError {
                code: None,
                message,
            })
        };
        let content = job
            .message
            .content
            .as_ref()
            .ok_or_else(|| permanent("the message has no content to send".into()))?;
        let to = PhoneNumber::parse(&job.to_phone).map_err(|e| permanent(e.to_string()))?;
        if job.message.channel == Channel::Simulator {
            return Err(permanent(
                "the simulator has no outbox: its replies are printed in the chat".into(),
            ));
        }
        let client = self
            .bots
            .client(job.bot_id, job.message.channel)
            .ok_or_else(|| {
                permanent(format!(
                    "the bot has no {} channel that can send",
                    job.message.channel
                ))
            })?;
        // Twilio reports delivery to this URL (Meta to the app's webhook).
        let callback = self
            .settings
            .public_url
            .as_ref()
            .map(|u| format!("{u}/webhooks/twilio/status"));
        client.send(&to, content, callback.as_deref()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        let base = Duration::from_secs(1);
        for attempt in 1..=5 {
            let full = Duration::from_secs(1 << (attempt - 1));
            let d = backoff(base, attempt, None);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(base, 30, None) <= Duration::from_secs(600));
        assert!(backoff(base, 1, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
        assert_eq!(
            backoff(base, 1, Some(Duration::from_secs(u64::MAX / 4))),
            Duration::from_secs(3600)
        );
    }
}
