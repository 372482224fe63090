//! Background work inside `serve`: the outbox sender, and the timers and
//! requests of runs, and schedule triggers.

mod jobs;
mod outbox;
mod pacing;
mod schedules;

pub use jobs::{carry_out_requests, remove_files, run_jobs};
pub use outbox::{Worker, backoff};
pub use pacing::TokenBucket;
pub use schedules::{GRACE_MS, run_schedules};
