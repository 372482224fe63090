use confab_model::{DeliveryStatus, ProviderError};
use sqlx::Row;

use crate::inbound::advance_status;
use crate::messages::{Message, from_row};
use crate::sql::{list, query, to_json, values};
use crate::{Store, StoreError};

/// The job kind that sends one outbound message.
pub const JOB_SEND: &str = "send";
/// The job kind that fires a run's timer (payload: the timer's token).
pub const JOB_TIMER: &str = "timer";
/// The job kind that carries out a run's request outside any transaction,
/// an HTTP call (payload: the request as JSON).
pub const JOB_EFFECT: &str = "effect";

/// A due job a worker has leased.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedJob {
    pub job_id: i64,
    pub lease: i64,
    /// What it is for: the run (timers, effects) or the message (sends).
    pub ref_id: i64,
    pub payload: Option<String>,
    pub attempt: i64,
}

/// A send job a worker has leased, with the message it sends.
#[derive(Clone, Debug)]
pub struct ClaimedSend {
    pub job_id: i64,
    /// The lease this claim holds; every result names it, so a worker whose
    /// lease ran out cannot overwrite the work of the one that took over.
    pub lease: i64,
    /// How many times this job has been claimed, this claim included.
    pub attempt: i64,
    pub message: Message,
    /// The bot whose contact it goes to, and whose channel sends it.
    pub bot_id: i64,
    pub to_phone: String,
    /// The contact was blocked, or opted out and this is no answer to them,
    /// after the message was queued.
    pub contact_refuses: bool,
}

pub(crate) async fn insert_jobs(
    tx: &mut crate::writer::WriteTx,
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

impl Store {
    /// Leases up to `limit` due send jobs until `lease_until_ms`. A job
    /// leased by a worker that died becomes due again when its lease ends.
    pub async fn claim_sends(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedSend>, StoreError> {
        let claimed = self
            .claim_jobs(JOB_SEND, now_ms, lease_until_ms, limit)
            .await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let mut jobs: Vec<(i64, i64, i64)> = claimed
            .iter()
            .map(|j| (j.job_id, j.ref_id, j.attempt))
            .collect();
        let sql = format!(
            "SELECT m.{}, c.bot_id, c.phone AS to_phone, c.opted_out, c.blocked FROM messages m JOIN contacts c ON c.id = m.contact_id WHERE m.id IN ({})",
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
            // Opted-out contacts still get answers to what they write (the
            // answer names the message it replies to); blocked ones get nothing.
            let refuses = row.try_get::<i64, _>("blocked")? != 0
                || (row.try_get::<i64, _>("opted_out")? != 0 && m.extra.context_id.is_none());
            let to = (
                row.try_get::<i64, _>("bot_id")?,
                row.try_get::<String, _>("to_phone")?,
            );
            by_id.insert(m.id, (m, to, refuses));
        }
        let mut out = Vec::with_capacity(jobs.len());
        jobs.sort_by_key(|j| j.0);
        for (job_id, message_id, attempt) in jobs {
            match by_id.remove(&message_id) {
                Some((message, (bot_id, to_phone), contact_refuses)) => out.push(ClaimedSend {
                    job_id,
                    lease: lease_until_ms,
                    attempt,
                    message,
                    bot_id,
                    to_phone,
                    contact_refuses,
                }),
                None => {
                    // The message is gone; so is the point of the job.
                    sqlx::query("DELETE FROM jobs WHERE id = $1")
                        .bind(job_id)
                        .execute(&mut *self.write_conn().await?)
                        .await?;
                }
            }
        }
        Ok(out)
    }

    /// The provider accepted the message: store its id and finish the job,
    /// then apply any delivery report that arrived before this result did.
    /// The id is kept if one is stored already: a message has one send.
    /// Returns the messages whose provider id was another message's already
    /// (see [`Store::sends_accepted`]).
    pub async fn send_accepted(
        &self,
        job_id: i64,
        message_id: i64,
        provider_message_id: &str,
        now_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        self.sends_accepted(
            &[(job_id, message_id, provider_message_id.to_string())],
            now_ms,
        )
        .await
    }

    /// [`Store::send_accepted`] for several sends, in one transaction: sends
    /// finish many at a time, and one commit serves them all. Each item is
    /// (job id, message id, provider message id).
    ///
    /// A provider id that another message has already (a provider's bug, or
    /// a mock's) cannot be stored twice. The message went out all the same:
    /// it is recorded as accepted without the id, with the conflict in its
    /// error, so it is never sent again; its id is among those returned.
    pub async fn sends_accepted(
        &self,
        items: &[(i64, i64, String)],
        now_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.write_tx().await?;
        let mut stored = Vec::with_capacity(items.len());
        let mut conflicts = Vec::new();
        for (job_id, message_id, provider_message_id) in items {
            let taken: Option<i64> = sqlx::query_scalar(
                "SELECT o.id FROM messages o JOIN messages m ON m.id = $1 \
                 WHERE o.channel = m.channel AND o.direction = m.direction \
                 AND o.provider_message_id = $2 AND o.id <> m.id AND m.provider_message_id IS NULL",
            )
            .bind(*message_id)
            .bind(provider_message_id.clone())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(other) = taken {
                let note = format!(
                    "the provider accepted this message with id {provider_message_id}, which message {other} has already; its delivery reports cannot be told apart"
                );
                accept_without_id(&mut tx, *job_id, *message_id, &note, now_ms).await?;
                conflicts.push(*message_id);
                continue;
            }
            let row = sqlx::query(
                "UPDATE messages SET provider_message_id = COALESCE(provider_message_id, $1), updated_ms = $2 \
                 WHERE id = $3 RETURNING channel, provider_message_id",
            )
            .bind(provider_message_id.clone())
            .bind(now_ms)
            .bind(*message_id)
            .fetch_optional(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM jobs WHERE id = $1")
                .bind(*job_id)
                .execute(&mut *tx)
                .await?;
            let Some(row) = row else { continue };
            let channel: String = row.try_get("channel")?;
            let pid: String = row.try_get("provider_message_id")?;
            advance_status(
                &mut tx,
                &channel,
                &pid,
                DeliveryStatus::Accepted,
                None,
                now_ms,
            )
            .await?;
            stored.push((channel, pid));
        }
        tx.commit().await?;
        // Read the reports only after the ids are committed: a report stored
        // meanwhile either sees the id or is seen here (see apply_statuses).
        for (channel, pid) in stored {
            let early = sqlx::query(
                "SELECT status, error FROM message_statuses WHERE channel = $1 AND provider_message_id = $2 \
                 ORDER BY status_rank DESC LIMIT 1",
            )
            .bind(channel.clone())
            .bind(pid.clone())
            .fetch_optional(&self.pool)
            .await?;
            if let Some(r) = early
                && let Some(status) = DeliveryStatus::parse(&r.try_get::<String, _>("status")?)
            {
                let mut conn = self.write_conn().await?;
                advance_status(
                    &mut conn,
                    &channel,
                    &pid,
                    status,
                    r.try_get("error")?,
                    now_ms,
                )
                .await?;
            }
        }
        Ok(conflicts)
    }

    /// The provider accepted the message but what it answered cannot be
    /// stored (the database refuses it for good): the message is recorded
    /// as accepted with `note` as its error, and its job ends, so that it is
    /// neither left queued nor sent again.
    pub async fn send_accepted_without_id(
        &self,
        job_id: i64,
        message_id: i64,
        note: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        accept_without_id(&mut tx, job_id, message_id, note, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The send failed for good: the message is `failed` with the error.
    /// False when the lease was lost and another worker owns the job.
    pub async fn send_failed(
        &self,
        job_id: i64,
        lease: i64,
        message_id: i64,
        error: &ProviderError,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM jobs WHERE id = $1 AND locked_until_ms = $2")
            .bind(job_id)
            .bind(lease)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE messages SET status = $1, status_rank = $2, error = $3, updated_ms = $4 \
             WHERE id = $5 AND status_rank < $2",
        )
        .bind(DeliveryStatus::Failed.as_str())
        .bind(DeliveryStatus::Failed.rank())
        .bind(to_json(error))
        .bind(now_ms)
        .bind(message_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The send may work later: give the lease back and try again at
    /// `run_at_ms`. False when the lease was lost.
    pub async fn send_retry(
        &self,
        job_id: i64,
        lease: i64,
        run_at_ms: i64,
        error: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET run_at_ms = $1, locked_until_ms = 0, last_error = $2 WHERE id = $3 AND locked_until_ms = $4",
        )
        .bind(run_at_ms)
        .bind(error.to_string())
        .bind(job_id)
        .bind(lease)
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Puts claimed jobs back untried, each `(job, lease, run_at_ms)` due
    /// at its sender's pace: the claim does not count as an attempt. One
    /// transaction for all of them.
    pub async fn defer_sends(&self, jobs: &[(i64, i64, i64)]) -> Result<(), StoreError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for (job_id, lease, run_at_ms) in jobs {
            sqlx::query(
                "UPDATE jobs SET run_at_ms = $1, locked_until_ms = 0, attempts = attempts - 1 WHERE id = $2 AND locked_until_ms = $3",
            )
            .bind(*run_at_ms)
            .bind(*job_id)
            .bind(*lease)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Gives up leases this worker holds, `(job, lease)`, so that another
    /// worker may take the jobs at once (a server that stops).
    pub async fn release_jobs(&self, jobs: &[(i64, i64)]) -> Result<(), StoreError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for (job_id, lease) in jobs {
            sqlx::query(
                "UPDATE jobs SET locked_until_ms = 0 WHERE id = $1 AND locked_until_ms = $2",
            )
            .bind(*job_id)
            .bind(*lease)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Extends a lease this worker still holds; the new lease on success.
    pub async fn extend_lease(
        &self,
        job_id: i64,
        lease: i64,
        until_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET locked_until_ms = $1 WHERE id = $2 AND locked_until_ms = $3",
        )
        .bind(until_ms)
        .bind(job_id)
        .bind(lease)
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok((done.rows_affected() > 0).then_some(until_ms))
    }

    /// Leases due jobs of `kind` until `lease_until_ms`.
    pub async fn claim_jobs(
        &self,
        kind: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        // The outer `locked_until_ms` test makes a concurrent claimer on
        // PostgreSQL that waited for our row lock re-check it and skip it.
        let sql = format!(
            "UPDATE jobs SET locked_until_ms = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM jobs WHERE kind = $2 AND run_at_ms <= $3 AND locked_until_ms <= $3 \
                          ORDER BY run_at_ms, id LIMIT $4{}) \
             AND locked_until_ms <= $3 RETURNING id, ref_id, payload, attempts",
            self.backend().skip_locked()
        );
        let rows = query(sql)
            .bind(lease_until_ms)
            .bind(kind.to_string())
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&mut *self.write_conn().await?)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ClaimedJob {
                    job_id: r.try_get("id")?,
                    lease: lease_until_ms,
                    ref_id: r.try_get("ref_id")?,
                    payload: r.try_get("payload")?,
                    attempt: r.try_get("attempts")?,
                })
            })
            .collect()
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

/// Marks a message accepted without a provider id, noting why, and ends its job.
async fn accept_without_id(
    conn: &mut sqlx::AnyConnection,
    job_id: i64,
    message_id: i64,
    note: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE messages SET status = $1, status_rank = $2, error = $3, updated_ms = $4 \
         WHERE id = $5 AND status_rank < $2",
    )
    .bind(DeliveryStatus::Accepted.as_str())
    .bind(DeliveryStatus::Accepted.rank())
    .bind(crate::sql::to_json(&ProviderError {
        code: None,
        message: note.to_string(),
    }))
    .bind(now_ms)
    .bind(message_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM jobs WHERE id = $1")
        .bind(job_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
