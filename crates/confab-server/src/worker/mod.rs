//! Background work inside `serve`: the outbox sender.

mod outbox;
mod pacing;

pub use outbox::{Worker, backoff};
pub use pacing::TokenBucket;
