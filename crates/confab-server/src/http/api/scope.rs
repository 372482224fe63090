//! The bot a data route acts on: the one its path names
//! (`/api/v1/bots/{bot}/contacts`), else `default` (`/api/v1/contacts`).
//! Callers limited to some bots were already checked against it by the
//! access layer (`auth::policy`).

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use serde::Deserialize;

use crate::app::AppState;
use crate::bots::BotEntry;
use crate::error::ApiError;

pub struct BotScope(pub Arc<BotEntry>);

impl BotScope {
    pub fn id(&self) -> i64 {
        self.0.id()
    }

    /// A record of this bot, or 404 naming `what` as if there were none.
    pub fn owns(&self, bot_id: i64, what: impl FnOnce() -> String) -> Result<(), ApiError> {
        if bot_id == self.id() {
            Ok(())
        } else {
            Err(ApiError::NotFound(what()))
        }
    }
}

impl FromRequestParts<AppState> for BotScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        match params.iter().find(|(name, _)| *name == "bot") {
            Some((_, key)) => state
                .bots
                .find(key)
                .map(BotScope)
                .ok_or_else(|| ApiError::NotFound(format!("no bot {key}"))),
            None => state
                .bots
                .by_id(confab_store::DEFAULT_BOT)
                .map(BotScope)
                .ok_or_else(|| ApiError::internal("the default bot is missing")),
        }
    }
}

/// `{id}` of a path, with or without a `{bot}` before it.
#[derive(Deserialize)]
pub struct Id<T> {
    pub id: T,
}

/// `{name}` of a collection's path.
#[derive(Deserialize)]
pub struct Name {
    pub name: String,
}

/// `{name}` and `{id}` of a record's path.
#[derive(Deserialize)]
pub struct NameId {
    pub name: String,
    pub id: i64,
}
