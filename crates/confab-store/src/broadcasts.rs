//! Broadcasts: one message queued for an audience at once. The row keeps
//! the queued messages' ids, so a broadcast's progress is read from their
//! statuses as the outbox sends them.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::{among, ids_param, query};
use crate::{Store, StoreError};

pub struct NewBroadcast<'a> {
    pub bot_id: i64,
    /// `{"tag": ...}` or `{"to": [...]}`, as it was asked for.
    pub audience: &'a Value,
    /// What was sent, as the outbox keeps it.
    pub content: &'a Value,
    pub rejected: i64,
    pub outside_window: i64,
    pub created_by: &'a str,
    pub now_ms: i64,
}

#[derive(Clone, Debug)]
pub struct Broadcast {
    pub id: i64,
    pub bot_id: i64,
    pub audience: Value,
    pub content: Value,
    pub queued: i64,
    pub rejected: i64,
    pub outside_window: i64,
    pub created_by: String,
    pub created_ms: i64,
    /// Its messages by status, now.
    pub statuses: BTreeMap<String, i64>,
    message_ids: Vec<i64>,
}

fn of_row(r: &AnyRow) -> Result<Broadcast, StoreError> {
    let json = |col: &str| -> Result<Value, StoreError> {
        Ok(serde_json::from_str(&r.try_get::<String, _>(col)?).unwrap_or(Value::Null))
    };
    let message_ids: Vec<i64> =
        serde_json::from_str(&r.try_get::<String, _>("message_ids")?).unwrap_or_default();
    Ok(Broadcast {
        id: r.try_get("id")?,
        bot_id: r.try_get("bot_id")?,
        audience: json("audience")?,
        content: json("content")?,
        queued: message_ids.len() as i64,
        rejected: r.try_get("rejected")?,
        outside_window: r.try_get("outside_window")?,
        created_by: r.try_get("created_by")?,
        created_ms: r.try_get("created_ms")?,
        statuses: BTreeMap::new(),
        message_ids,
    })
}

const COLUMNS: &str =
    "id, bot_id, audience, content, message_ids, rejected, outside_window, created_by, created_ms";

impl Store {
    /// Queues the broadcast's messages and keeps the broadcast, in one
    /// transaction: a broadcast is never queued without its row (a client
    /// told of a failure may send it again without sending it twice).
    pub async fn enqueue_broadcast(
        &self,
        b: &NewBroadcast<'_>,
        items: &[crate::NewOutbound],
    ) -> Result<(i64, Vec<crate::SendOutcome>), StoreError> {
        crate::retry_conflicts(|| async {
            let mut tx = self.write_tx().await?;
            let queued = crate::messages::enqueue_in(&mut tx, items, b.now_ms).await?;
            let ids: Vec<i64> = queued.iter().map(|q| q.message_id).collect();
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO broadcasts (bot_id, audience, content, message_ids, rejected, outside_window, created_by, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(b.bot_id)
            .bind(b.audience.to_string())
            .bind(b.content.to_string())
            .bind(serde_json::to_string(&ids).unwrap_or_default())
            .bind(b.rejected)
            .bind(b.outside_window)
            .bind(b.created_by.to_string())
            .bind(b.now_ms)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok((id, queued))
        })
        .await
    }

    /// One of the bot's broadcasts, with its messages' statuses now.
    pub async fn broadcast(&self, bot_id: i64, id: i64) -> Result<Broadcast, StoreError> {
        let row = query(format!(
            "SELECT {COLUMNS} FROM broadcasts WHERE id = $1 AND bot_id = $2"
        ))
        .bind(id)
        .bind(bot_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let mut b = of_row(&row)?;
        self.count_statuses(&mut b).await?;
        Ok(b)
    }

    /// The bot's broadcasts, newest first, each with its statuses now.
    pub async fn broadcasts(&self, bot_id: i64, limit: i64) -> Result<Vec<Broadcast>, StoreError> {
        let rows = query(format!(
            "SELECT {COLUMNS} FROM broadcasts WHERE bot_id = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(bot_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut b = of_row(r)?;
            self.count_statuses(&mut b).await?;
            out.push(b);
        }
        Ok(out)
    }

    async fn count_statuses(&self, b: &mut Broadcast) -> Result<(), StoreError> {
        if b.message_ids.is_empty() {
            return Ok(());
        }
        let backend = self.backend();
        let rows = query(format!(
            "SELECT status, COUNT(*) AS n FROM messages WHERE {} GROUP BY status",
            among(backend, "id", 1)
        ))
        .bind(ids_param(backend, &b.message_ids))
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            b.statuses
                .insert(r.try_get("status")?, r.try_get::<i64, _>("n")?);
        }
        Ok(())
    }
}
