//! What the AI assistant keeps: media fetched from the providers, every AI
//! call (model, tokens, latency, error) and the per-contact rate windows.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::{list, query, shaped_chunks, text, values};
use crate::{Store, StoreError, Tx};

/// A file of an inbound message, as fetched from the provider.
#[derive(Clone, Debug)]
pub struct NewMedia {
    pub message_id: i64,
    /// Its place among the message's media, from 0.
    pub position: i64,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    /// The bytes, when they are kept in the database.
    pub bytes: Option<Vec<u8>>,
    /// The file, when they are kept on disk.
    pub path: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredMedia {
    pub id: i64,
    pub message_id: i64,
    pub position: i64,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    #[serde(skip)]
    pub path: Option<String>,
    /// What a voice note said, or a PDF's text.
    pub text: Option<String>,
    pub created_ms: i64,
}

/// One call to the AI provider.
#[derive(Clone, Debug, Default)]
pub struct NewAiCall {
    pub message_id: Option<i64>,
    pub run_id: Option<i64>,
    /// The flow (the bot) that asked.
    pub flow_id: String,
    pub node: Option<String>,
    /// chat, vision or transcription.
    pub purpose: String,
    pub model: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub latency_ms: i64,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AiCall {
    pub purpose: String,
    pub model: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub created_ms: i64,
}

/// AI use of one flow on one day (UTC).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AiStat {
    pub flow_id: String,
    /// Days since 1970-01-01.
    pub day: i64,
    pub calls: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub latency_ms: i64,
}

/// A contact's messages in the current rate window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateWindow {
    pub start_ms: i64,
    pub count: i64,
    /// They were told they are over the limit in this window.
    pub told: bool,
}

const MEDIA_COLUMNS: &str =
    "id, message_id, position, content_type, size, sha256, path, text, created_ms";

fn media_row(r: &AnyRow) -> Result<StoredMedia, StoreError> {
    Ok(StoredMedia {
        id: r.try_get("id")?,
        message_id: r.try_get("message_id")?,
        position: r.try_get("position")?,
        content_type: r.try_get("content_type")?,
        size: r.try_get("size")?,
        sha256: r.try_get("sha256")?,
        path: r.try_get("path")?,
        text: r.try_get("text")?,
        created_ms: r.try_get("created_ms")?,
    })
}

pub(crate) const DAY_MS: i64 = 86_400_000;

impl Store {
    /// Stores a fetched file; a file already stored for the same place
    /// (a job run again) is kept and returned.
    pub async fn save_media(&self, m: &NewMedia, now_ms: i64) -> Result<StoredMedia, StoreError> {
        sqlx::query(
            "INSERT INTO media (message_id, position, content_type, size, sha256, bytes, path, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (message_id, position) DO NOTHING",
        )
        .bind(m.message_id)
        .bind(m.position)
        .bind(text(&m.content_type))
        .bind(m.size)
        .bind(m.sha256.clone())
        .bind(m.bytes.clone())
        .bind(m.path.clone())
        .bind(now_ms)
        .execute(&mut *self.write_conn().await?)
        .await?;
        self.media_of(m.message_id)
            .await?
            .into_iter()
            .find(|x| x.position == m.position)
            .ok_or_else(|| StoreError::Corrupt("stored media vanished".into()))
    }

    /// The stored files of a message, in order.
    pub async fn media_of(&self, message_id: i64) -> Result<Vec<StoredMedia>, StoreError> {
        let rows = query(format!(
            "SELECT {MEDIA_COLUMNS} FROM media WHERE message_id = $1 ORDER BY position"
        ))
        .bind(message_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(media_row).collect()
    }

    /// The bytes of a file kept in the database (none when kept on disk).
    pub async fn media_bytes(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT bytes FROM media WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(row.try_get("bytes")?)
    }

    pub async fn set_media_text(&self, id: i64, value: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE media SET text = $1 WHERE id = $2")
            .bind(text(value))
            .bind(id)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(())
    }

    /// The text of each message's media (transcripts, PDF text), joined.
    pub async fn media_texts(
        &self,
        message_ids: &[i64],
    ) -> Result<HashMap<i64, String>, StoreError> {
        let mut out: HashMap<i64, String> = HashMap::new();
        for chunk in shaped_chunks(message_ids) {
            let sql = format!(
                "SELECT message_id, text FROM media WHERE text IS NOT NULL AND message_id IN ({}) ORDER BY message_id, position",
                list(chunk.len(), 1)
            );
            for r in crate::sql::query_ids(sql, chunk)
                .fetch_all(&self.pool)
                .await?
            {
                let t: String = r.try_get("text")?;
                let e = out.entry(r.try_get("message_id")?).or_default();
                if !e.is_empty() {
                    e.push('\n');
                }
                e.push_str(&t);
            }
        }
        Ok(out)
    }

    /// Forgets media stored before `before_ms`; returns the files to delete.
    pub async fn purge_media(&self, before_ms: i64) -> Result<(u64, Vec<String>), StoreError> {
        let mut tx = self.write_tx().await?;
        let paths: Vec<String> =
            sqlx::query("SELECT path FROM media WHERE created_ms < $1 AND path IS NOT NULL")
                .bind(before_ms)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get("path"))
                .collect::<Result<_, _>>()?;
        let gone = sqlx::query("DELETE FROM media WHERE created_ms < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok((gone, paths))
    }

    /// The AI calls made for each message, in order.
    pub async fn ai_calls_of(
        &self,
        message_ids: &[i64],
    ) -> Result<HashMap<i64, Vec<AiCall>>, StoreError> {
        let mut out: HashMap<i64, Vec<AiCall>> = HashMap::new();
        for chunk in shaped_chunks(message_ids) {
            let sql = format!(
                "SELECT message_id, purpose, model, prompt_tokens, completion_tokens, latency_ms, error, created_ms \
                 FROM ai_calls WHERE message_id IN ({}) ORDER BY id",
                list(chunk.len(), 1)
            );
            for r in crate::sql::query_ids(sql, chunk)
                .fetch_all(&self.pool)
                .await?
            {
                out.entry(r.try_get("message_id")?)
                    .or_default()
                    .push(AiCall {
                        purpose: r.try_get("purpose")?,
                        model: r.try_get("model")?,
                        prompt_tokens: r.try_get("prompt_tokens")?,
                        completion_tokens: r.try_get("completion_tokens")?,
                        latency_ms: r.try_get("latency_ms")?,
                        error: r.try_get("error")?,
                        created_ms: r.try_get("created_ms")?,
                    });
            }
        }
        Ok(out)
    }

    /// AI use per flow and day (UTC) between two times, by day then flow.
    pub async fn ai_stats(
        &self,
        bot_id: i64,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<AiStat>, StoreError> {
        // SUM gives NUMERIC on PostgreSQL, which the Any driver cannot read.
        let rows = sqlx::query(
            "SELECT flow_id, created_ms / $1 AS day, COUNT(*) AS calls, \
             CAST(SUM(CASE WHEN error IS NULL THEN 0 ELSE 1 END) AS BIGINT) AS errors, \
             CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, \
             CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens, \
             CAST(SUM(latency_ms) AS BIGINT) AS latency_ms \
             FROM ai_calls a WHERE created_ms >= $2 AND created_ms < $3 \
             AND (EXISTS (SELECT 1 FROM runs r JOIN contacts c ON c.id = r.contact_id WHERE r.id = a.run_id AND c.bot_id = $4) \
                  OR EXISTS (SELECT 1 FROM messages m JOIN contacts c ON c.id = m.contact_id WHERE m.id = a.message_id AND c.bot_id = $4)) \
             GROUP BY flow_id, created_ms / $1 ORDER BY day, flow_id",
        )
        .bind(DAY_MS)
        .bind(since_ms)
        .bind(until_ms)
        .bind(bot_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AiStat {
                    flow_id: r.try_get("flow_id")?,
                    day: r.try_get("day")?,
                    calls: r.try_get("calls")?,
                    errors: r.try_get("errors")?,
                    prompt_tokens: r.try_get("prompt_tokens")?,
                    completion_tokens: r.try_get("completion_tokens")?,
                    latency_ms: r.try_get("latency_ms")?,
                })
            })
            .collect()
    }
}

impl Tx {
    /// Records AI calls, in the transaction that moves their runs on.
    pub async fn record_ai_calls(
        &mut self,
        calls: &[NewAiCall],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        for chunk in shaped_chunks(calls) {
            let sql = format!(
                "INSERT INTO ai_calls (message_id, run_id, flow_id, node, purpose, model, prompt_tokens, \
                 completion_tokens, latency_ms, error, created_ms) VALUES {}",
                values(chunk.len(), 11, 1)
            );
            let mut q = query(sql);
            for c in chunk {
                q = q
                    .bind(c.message_id)
                    .bind(c.run_id)
                    .bind(c.flow_id.clone())
                    .bind(c.node.clone())
                    .bind(c.purpose.clone())
                    .bind(text(&c.model))
                    .bind(c.prompt_tokens)
                    .bind(c.completion_tokens)
                    .bind(c.latency_ms)
                    .bind(c.error.as_deref().map(text))
                    .bind(now_ms);
            }
            q.execute(&mut *self.inner).await?;
        }
        Ok(())
    }

    /// The rate windows of these contacts (none for a contact without one).
    pub async fn rate_windows(
        &mut self,
        contacts: &[i64],
    ) -> Result<HashMap<i64, RateWindow>, StoreError> {
        let mut out = HashMap::with_capacity(contacts.len());
        for chunk in shaped_chunks(contacts) {
            let sql = format!(
                "SELECT contact_id, window_start_ms, count, told FROM rate_windows WHERE contact_id IN ({})",
                list(chunk.len(), 1)
            );
            for r in crate::sql::query_ids(sql, chunk)
                .fetch_all(&mut *self.inner)
                .await?
            {
                out.insert(
                    r.try_get("contact_id")?,
                    RateWindow {
                        start_ms: r.try_get("window_start_ms")?,
                        count: r.try_get("count")?,
                        told: r.try_get::<i64, _>("told")? != 0,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Writes rate windows; contacts must be distinct.
    pub async fn put_rate_windows(&mut self, rows: &[(i64, RateWindow)]) -> Result<(), StoreError> {
        for chunk in shaped_chunks(rows) {
            let sql = format!(
                "INSERT INTO rate_windows (contact_id, window_start_ms, count, told) VALUES {} \
                 ON CONFLICT (contact_id) DO UPDATE SET window_start_ms = excluded.window_start_ms, \
                 count = excluded.count, told = excluded.told",
                values(chunk.len(), 4, 1)
            );
            let mut q = query(sql);
            for (contact, w) in chunk {
                q = q
                    .bind(*contact)
                    .bind(w.start_ms)
                    .bind(w.count)
                    .bind(i64::from(w.told));
            }
            q.execute(&mut *self.inner).await?;
        }
        Ok(())
    }

    /// Notes that a contact off the allow-list has had their one refusal.
    pub async fn set_refused(&mut self, contact_id: i64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE contacts SET refused = 1, updated_ms = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(contact_id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Stores `value` under `key`, replacing what was there.
    pub async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(())
    }
}
