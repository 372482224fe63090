use confab_model::{DeliveryStatus, ProviderError};
use sqlx::{Any, Row, Transaction};

use crate::inbound::advance_status;
use crate::messages::{Message, from_row};
use crate::sql::{list, query, to_json, values};
use crate::{Store, StoreError};

/// The job kind that sends one outbound message.
pub const JOB_SEND: &str = "send";

/// A send job a worker has leased, with the message it sends.
#[derive(Clone, Debug)]
pub struct ClaimedSend {
    pub job_id: i64,
    /// How many times this job has been claimed, this claim included.
    pub attempt: i64,
    pub message: Message,
    pub to_phone: String,
}

pub(crate) async fn insert_jobs(
    tx: &mut Transaction<'_, Any>,
    kind: &str,
    ref_ids: &[i64],
    now_ms: i64,
) -> Result<(), StoreError> {
    for chunk in crate::sql::shaped_chunks(ref_ids) {
        let sql = format!(
            "INSERT INTO jobs (kind, ref_id, run_at_ms, created_ms) VALUES {}",
            values(chunk.len(), 4, 1)
        );
        let mut q = query(sql);
        for id in chunk {
            q = q.bind(kind).bind(*id).bind(now_ms).bind(now_ms);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Removes a done job and commits the transaction that recorded its result.
async fn finish_job(mut tx: Transaction<'_, Any>, job_id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM jobs WHERE id = $1")
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

impl Store {
    /// Leases up to `limit` due send jobs until `lease_until_ms`. A job
    /// leased by a worker that died becomes due again when its lease ends.
    pub async fn claim_sends(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedSend>, StoreError> {
        // The outer `locked_until_ms` test makes a concurrent claimer on
        // PostgreSQL that waited for our row lock re-check it and skip it.
        let sql = format!(
            "UPDATE jobs SET locked_until_ms = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM jobs WHERE kind = $2 AND run_at_ms <= $3 AND locked_until_ms <= $3 \
                          ORDER BY run_at_ms, id LIMIT $4{}) \
             AND locked_until_ms <= $3 RETURNING id, ref_id, attempts",
            self.backend().skip_locked()
        );
        let rows = query(sql)
            .bind(lease_until_ms)
            .bind(JOB_SEND)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut jobs = Vec::with_capacity(rows.len());
        for r in &rows {
            jobs.push((
                r.try_get::<i64, _>("id")?,
                r.try_get::<i64, _>("ref_id")?,
                r.try_get::<i64, _>("attempts")?,
            ));
        }
        let sql = format!(
            "SELECT m.{}, c.phone AS to_phone FROM messages m JOIN contacts c ON c.id = m.contact_id WHERE m.id IN ({})",
            crate::messages::COLUMNS.replace(", ", ", m."),
            list(jobs.len(), 1)
        );
        let mut q = query(sql);
        for (_, message_id, _) in &jobs {
            q = q.bind(*message_id);
        }
        let mut by_id = std::collections::HashMap::new();
        for row in q.fetch_all(&self.pool).await? {
            let m = from_row(&row)?;
            by_id.insert(m.id, (m, row.try_get::<String, _>("to_phone")?));
        }
        let mut out = Vec::with_capacity(jobs.len());
        jobs.sort_by_key(|j| j.0);
        for (job_id, message_id, attempt) in jobs {
            match by_id.remove(&message_id) {
                Some((message, to_phone)) => out.push(ClaimedSend {
                    job_id,
                    attempt,
                    message,
                    to_phone,
                }),
                None => {
                    // The message is gone; so is the point of the job.
                    sqlx::query("DELETE FROM jobs WHERE id = $1")
                        .bind(job_id)
                        .execute(&self.pool)
                        .await?;
                }
            }
        }
        Ok(out)
    }

    /// The provider accepted the message: store its id, finish the job, and
    /// apply any delivery report that arrived before this result did.
    pub async fn send_accepted(
        &self,
        job_id: i64,
        message_id: i64,
        provider_message_id: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("UPDATE messages SET provider_message_id = $1, updated_ms = $2 WHERE id = $3 RETURNING channel")
            .bind(provider_message_id.to_string())
            .bind(now_ms)
            .bind(message_id)
            .fetch_one(&mut *tx)
            .await?;
        let channel: String = row.try_get("channel")?;
        advance_status(
            &mut tx,
            &channel,
            provider_message_id,
            DeliveryStatus::Accepted,
            None,
            now_ms,
        )
        .await?;
        let early = sqlx::query(
            "SELECT status, error FROM message_statuses WHERE channel = $1 AND provider_message_id = $2 ORDER BY status_rank DESC LIMIT 1",
        )
        .bind(channel.clone())
        .bind(provider_message_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = early {
            let status: String = r.try_get("status")?;
            if let Some(status) = DeliveryStatus::parse(&status) {
                advance_status(
                    &mut tx,
                    &channel,
                    provider_message_id,
                    status,
                    r.try_get("error")?,
                    now_ms,
                )
                .await?;
            }
        }
        finish_job(tx, job_id).await
    }

    /// The send failed for good: the message is `failed` with the error.
    pub async fn send_failed(
        &self,
        job_id: i64,
        message_id: i64,
        error: &ProviderError,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE messages SET status = $1, status_rank = $2, error = $3, updated_ms = $4 WHERE id = $5 AND status_rank < $2")
            .bind(DeliveryStatus::Failed.as_str())
            .bind(DeliveryStatus::Failed.rank())
            .bind(to_json(error))
            .bind(now_ms)
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        finish_job(tx, job_id).await
    }

    /// The send may work later: release the lease and try again at `run_at_ms`.
    pub async fn send_retry(
        &self,
        job_id: i64,
        run_at_ms: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET run_at_ms = $1, locked_until_ms = 0, last_error = $2 WHERE id = $3",
        )
        .bind(run_at_ms)
        .bind(error.to_string())
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives back leases this worker holds, at shutdown, so another worker
    /// (or this one after a restart) can send at once.
    pub async fn release_jobs(&self, job_ids: &[i64]) -> Result<(), StoreError> {
        for chunk in crate::sql::shaped_chunks(job_ids) {
            let sql = format!(
                "UPDATE jobs SET locked_until_ms = 0 WHERE id IN ({})",
                list(chunk.len(), 1)
            );
            let mut q = query(sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Send jobs waiting, and the earliest time one of them is due.
    pub async fn outbox_depth(&self) -> Result<(i64, Option<i64>), StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n, MIN(run_at_ms) AS next FROM jobs WHERE kind = $1")
                .bind(JOB_SEND)
                .fetch_one(&self.pool)
                .await?;
        Ok((row.try_get("n")?, row.try_get("next")?))
    }
}
