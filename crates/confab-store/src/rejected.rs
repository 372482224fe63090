//! What providers sent that could not be used, kept with the reason.

use confab_model::{Channel, RejectedInbound};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

#[derive(Clone, Debug, Serialize)]
pub struct StoredRejected {
    pub id: i64,
    pub channel: String,
    pub event: String,
    pub provider_message_id: Option<String>,
    pub reason: String,
    pub payload: String,
    pub received_ms: i64,
}

fn from_row(r: AnyRow) -> Result<StoredRejected, StoreError> {
    Ok(StoredRejected {
        id: r.try_get("id")?,
        channel: r.try_get("channel")?,
        event: r.try_get("event")?,
        provider_message_id: r.try_get("provider_message_id")?,
        reason: r.try_get("reason")?,
        payload: r.try_get("payload")?,
        received_ms: r.try_get("received_ms")?,
    })
}

impl Store {
    /// Keeps each rejected event once (a redelivery of one with an id adds
    /// nothing); returns how many were new.
    pub async fn store_rejected(
        &self,
        events: &[RejectedInbound],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut conn = self.write_conn().await?;
        let mut added = 0;
        for e in events {
            let done = sqlx::query(
                "INSERT INTO rejected_inbound (channel, event, provider_message_id, reason, payload, received_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (channel, event, provider_message_id) WHERE provider_message_id IS NOT NULL DO NOTHING",
            )
            .bind(e.channel.as_str())
            .bind(e.event)
            .bind(e.provider_message_id.clone())
            .bind(e.reason.clone())
            .bind(e.payload.clone())
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
            added += done.rows_affected();
        }
        Ok(added)
    }

    /// Newest first; `before_id` reads on from a page's last id.
    pub async fn rejected(
        &self,
        channel: Option<Channel>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<StoredRejected>, StoreError> {
        sqlx::query(
            "SELECT id, channel, event, provider_message_id, reason, payload, received_ms \
             FROM rejected_inbound WHERE ($1 IS NULL OR channel = $1) AND ($2 IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(channel.map(|c| c.as_str()))
        .bind(before_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
    }
}
