//! Group commit for inbound messages.
//!
//! Webhook handlers hand their parsed messages to one writer task and wait.
//! The writer takes every message waiting, stores them and steps their
//! flows in one transaction (see `runtime`), then answers each handler: one commit (one fsync on SQLite)
//! serves many requests, and nothing is acknowledged before it is durable.

use std::sync::Arc;

use confab_model::InboundMessage;
use confab_store::{Backend, Ingested, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::runtime::Runtime;

/// Messages stored per transaction at most.
const MAX_BATCH: usize = 512;

type Queue = mpsc::Receiver<(InboundMessage, Reply)>;

type Reply = oneshot::Sender<Result<Ingested, Arc<StoreError>>>;

#[derive(Clone)]
pub struct Ingest {
    /// One writer per shard; a contact's messages always go to the same one.
    shards: Arc<Vec<mpsc::Sender<(InboundMessage, Reply)>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("storage failed: {0}")]
    Store(Arc<StoreError>),
    #[error("the server is shutting down")]
    Closed,
}

impl Ingest {
    /// Starts the writers; they end when every `Ingest` handle is dropped.
    /// A contact's messages all go to one writer, which keeps their order.
    ///
    /// On PostgreSQL `INGEST_WRITERS` writer tasks commit side by side,
    /// each for its share of the contacts. One is the default: on two
    /// cores, four gave the messaging core a quarter less throughput, and
    /// flow steps twice the latency at 1,000 messages/s. SQLite
    /// has one writer at a time, and it runs on a thread of its own: as a
    /// task it waited behind the webhook handlers each time SQLite's thread
    /// handed it a result, and every batch waits for several (6% of the
    /// SQLite flow benchmark's throughput).
    pub fn start(runtime: Arc<Runtime>) -> Ingest {
        let backend = runtime.store.backend();
        let writers = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => runtime.settings.ingest_writers,
        };
        let senders = (0..writers)
            .map(|_| {
                let (tx, rx) = mpsc::channel(MAX_BATCH * 8);
                match backend {
                    Backend::Sqlite => own_thread(runtime.clone(), rx),
                    Backend::Postgres => {
                        tokio::spawn(writer(runtime.clone(), rx));
                    }
                }
                tx
            })
            .collect();
        Ingest {
            shards: Arc::new(senders),
        }
    }

    /// Stores one message durably and returns what was stored.
    pub async fn store(&self, msg: InboundMessage) -> Result<Ingested, IngestError> {
        let (reply, rx) = oneshot::channel();
        let shard = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            msg.from.hash(&mut h);
            (h.finish() % self.shards.len() as u64) as usize
        };
        self.shards[shard]
            .send((msg, reply))
            .await
            .map_err(|_| IngestError::Closed)?;
        rx.await
            .map_err(|_| IngestError::Closed)?
            .map_err(IngestError::Store)
    }
}

/// Runs the writer on a thread with a runtime of its own, or as a task of
/// the caller's runtime if neither can be had.
fn own_thread(runtime: Arc<Runtime>, queue: Queue) {
    let own = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(own) => own,
        Err(e) => {
            tracing::warn!(error = %e, "no runtime of its own for the writer; it runs as a task");
            tokio::spawn(writer(runtime, queue));
            return;
        }
    };
    // The queue goes over once the thread runs, so that it is still here
    // if the thread cannot be started.
    let (hand_over, taken) = std::sync::mpsc::sync_channel::<Queue>(1);
    let started = std::thread::Builder::new()
        .name("confab-writer".into())
        .spawn({
            let runtime = runtime.clone();
            move || {
                if let Ok(queue) = taken.recv() {
                    own.block_on(writer(runtime, queue));
                }
            }
        });
    match started {
        Ok(_) => {
            let _ = hand_over.send(queue);
        }
        Err(e) => {
            tracing::warn!(error = %e, "no thread for the writer; it runs as a task");
            tokio::spawn(writer(runtime, queue));
        }
    }
}

async fn writer(runtime: Arc<Runtime>, mut rx: Queue) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Some((msg, reply)) = rx.recv().await {
        batch.push(msg);
        replies.push(reply);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((msg, reply)) => {
                    batch.push(msg);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let result = runtime.process(&batch).await;
        metrics::histogram!("confab_ingest_batch_size").record(batch.len() as f64);
        metrics::histogram!("confab_ingest_commit_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(stored) => {
                for (reply, s) in replies.drain(..).zip(stored) {
                    let _ = reply.send(Ok(s));
                }
            }
            Err(e) if batch.len() > 1 && !e.is_unavailable() => {
                // One message the database refuses must not fail the others
                // that share its transaction: store each on its own.
                tracing::warn!(error = %e, batch = batch.len(), "a batch failed; storing its messages one by one");
                for (msg, reply) in batch.drain(..).zip(replies.drain(..)) {
                    let one = runtime.process(std::slice::from_ref(&msg)).await;
                    let one = one.and_then(|v| {
                        v.into_iter()
                            .next()
                            .ok_or_else(|| StoreError::Corrupt("ingest returned nothing".into()))
                    });
                    let _ = reply.send(one.map_err(|e| {
                        tracing::error!(error = %e, "storing an inbound message failed");
                        Arc::new(e)
                    }));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = batch.len(), "storing inbound messages failed");
                let e = Arc::new(e);
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
        batch.clear();
    }
}
