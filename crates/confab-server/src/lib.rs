//! Confab's runtime: the HTTP server (webhooks, `/api/v1`, operations), the
//! outbox worker, authentication and settings. It wires the channel
//! adapters and the store together and owns the transactions.

pub mod access;
pub mod app;
pub mod assistant;
pub mod auth;
pub mod automation;
pub mod bots;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
mod http;
pub mod ingest;
pub mod live;
pub mod media;
pub mod message_templates;
mod metrics_setup;
mod openapi;
pub mod origin;
pub mod runtime;
pub mod secrets;
pub mod worker;

pub use app::{App, AppState};
pub use config::{RawSettings, Settings};
