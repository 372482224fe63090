//! Confab's storage: one set of repository functions over SQLite and
//! PostgreSQL through sqlx's `Any` driver.
//!
//! Column conventions keep one SQL text valid on both backends: `$n`
//! placeholders, timestamps as BIGINT Unix milliseconds, JSON as TEXT, flags
//! as 0/1 integers, `RETURNING` instead of last-insert ids. What truly differs
//! between the backends lives in [`Backend`].

mod ai;
mod audit;
mod auth;
mod bots;
mod broadcasts;
mod contacts;
mod db;
mod error;
mod flows;
mod functions;
mod ids;
mod inbound;
mod jobs;
pub mod live;
mod messages;
mod nodelay;
mod records;
mod rejected;
mod runs;
mod script;
mod secrets;
mod sql;
mod templates;
mod triggers;
mod tx;
mod writer;
mod writes;

pub use ai::{AiCall, AiStat, NewAiCall, NewMedia, RateWindow, StoredMedia};
pub use audit::{AuditEntry, Change};
pub use auth::{ApiKey, User};
pub use bots::{Bot, BotChannel, BotData, BotWrite, DEFAULT_BOT};
pub use broadcasts::{Broadcast, NewBroadcast};
pub use contacts::{
    Contact, ContactCursor, ContactFilter, ContactOrder, ContactPatch, LastMessage,
};
pub use db::{Backend, Store, sqlite_file};
pub use error::StoreError;
pub use flows::{FlowVersion, FlowWrite, StoredFlow};
pub use inbound::{Ingested, StatusApplied};
pub use jobs::{ClaimedJob, ClaimedSend, JOB_EFFECT, JOB_SEND, JOB_TIMER};
pub use messages::{Message, MessageDay, MessageFilter, NewOutbound, SendOutcome};
pub use records::{Record, RecordFilter};
pub use rejected::StoredRejected;
pub use runs::{FlowStats, NewRun, RunDay, RunFilter, StoredEvent, StoredRun};
pub use secrets::SealedSecret;
pub use templates::{DECLARED, SYNCED, StoredTemplate, Synced, TemplateHeader, TemplateWrite};
pub use triggers::{
    AudienceContact, DueSchedule, Firing, JOB_SCHEDULE, NewFiring, PageStart, ScheduleFiring,
    StoredTrigger, TriggerDay, TriggerWrite,
};
pub use tx::{Arrival, Closing, ContactState, Outgoing, Tx};
pub use writes::Write;

/// Runs a transaction again when the database aborted it to break a
/// deadlock or a serialization conflict with a concurrent writer.
pub async fn retry_conflicts<T, F, Fut>(mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut tries = 0;
    loop {
        match f().await {
            Err(e) if e.is_conflict() && tries < 4 => {
                tries += 1;
                tracing::debug!(error = %e, tries, "transaction conflicted; running it again");
                tokio::time::sleep(std::time::Duration::from_millis(5 << tries)).await;
            }
            other => return other,
        }
    }
}

/// Connections in a PostgreSQL store's pool, shared by the inbound
/// writers, the API, the outbox and the timers.
pub const POSTGRES_POOL: u32 = 16;

/// Rows fetched per page when a caller asks for no limit, and the most a
/// caller may ask for.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 500;
