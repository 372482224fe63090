//! Triggers made through the API, their firings, and schedules worked
//! through their audience.
//!
//! A schedule's next due time is a column. A server fires a due time by
//! moving it on in a statement that names the old value, so of several
//! servers only one ever fires it; the firing's row (unique per trigger
//! and due time) and its job go in that same transaction. The job then
//! starts the flow for the audience a page at a time, each page with the
//! cursor that records it in one transaction: a server that dies mid-way
//! leaves the rest for the next to take the job.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, Change};
use crate::script::Script;
use crate::sql::is_part;
use crate::sql::{Col, columns, json_rows, like_containing, to_json};
use crate::{Backend, Store, StoreError, Tx};

/// The job kind that works a schedule's due time through its audience
/// (ref: the schedule firing).
pub const JOB_SCHEDULE: &str = "schedule";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredTrigger {
    pub id: i64,
    pub bot_id: i64,
    pub name: String,
    /// keyword, event or schedule.
    pub kind: String,
    pub flow_id: String,
    pub active: bool,
    /// The definition, as JSON.
    pub spec: String,
    /// A schedule's next due time; none for the other kinds, and for a
    /// schedule with nothing left to fire.
    pub next_due_ms: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// What a trigger is set to by a create or an update.
pub struct TriggerWrite<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub flow_id: &'a str,
    pub active: bool,
    pub spec: &'a str,
    pub next_due_ms: Option<i64>,
}

/// One firing of a trigger, as its log shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Firing {
    pub id: i64,
    pub trigger_id: i64,
    pub at_ms: i64,
    pub contact_id: Option<i64>,
    pub matched: String,
    pub run_id: Option<i64>,
    pub error: Option<String>,
}

/// A firing to record with a batch's writes.
#[derive(Clone, Debug, PartialEq)]
pub struct NewFiring {
    pub trigger_id: i64,
    pub bot_id: i64,
    pub contact_id: Option<i64>,
    pub matched: String,
    pub run_id: Option<i64>,
    pub error: Option<String>,
}

/// One trigger's firings on one day (UTC, days since the epoch).
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerDay {
    pub trigger_id: i64,
    pub day: i64,
    pub firings: i64,
    pub runs: i64,
    pub errors: i64,
}

/// A schedule whose due time has come.
#[derive(Clone, Debug, PartialEq)]
pub struct DueSchedule {
    pub id: i64,
    pub bot_id: i64,
    pub due_ms: i64,
    pub spec: String,
}

/// A schedule's due time on its way through the audience.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleFiring {
    pub id: i64,
    pub trigger_id: i64,
    pub bot_id: i64,
    pub due_ms: i64,
    /// The last contact id (or list position) done.
    pub cursor: i64,
}

/// A contact of an audience page.
#[derive(Clone, Debug, PartialEq)]
pub struct AudienceContact {
    pub id: i64,
    pub state: crate::ContactState,
    pub last_inbound_ms: Option<i64>,
}

const COLUMNS: &str =
    "id, bot_id, name, kind, flow_id, active, spec, next_due_ms, created_ms, updated_ms";

fn trigger_row(r: &AnyRow) -> Result<StoredTrigger, StoreError> {
    Ok(StoredTrigger {
        id: r.try_get("id")?,
        bot_id: r.try_get("bot_id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        flow_id: r.try_get("flow_id")?,
        active: r.try_get::<i64, _>("active")? != 0,
        spec: r.try_get("spec")?,
        next_due_ms: r.try_get("next_due_ms")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

fn target(bot_id: i64, id: i64) -> String {
    format!("bot:{bot_id}/trigger:{id}")
}

async fn one(
    conn: &mut sqlx::AnyConnection,
    bot_id: i64,
    id: i64,
) -> Result<StoredTrigger, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM triggers WHERE bot_id = $1 AND id = $2"
    )))
    .bind(bot_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(trigger_row)
    .transpose()?
    .ok_or(StoreError::NotFound)
}

/// Audits a change and tells every server caching triggers.
async fn changed(
    conn: &mut sqlx::AnyConnection,
    by: &Change<'_>,
    action: &str,
    before: Option<&StoredTrigger>,
    after: Option<&StoredTrigger>,
) -> Result<(), StoreError> {
    let t = after.or(before).ok_or(StoreError::NotFound)?;
    let shown = |t: &StoredTrigger| {
        serde_json::json!({"name": t.name, "active": t.active,
            "spec": serde_json::from_str::<serde_json::Value>(&t.spec).unwrap_or_default()})
    };
    audit::record(
        conn,
        by,
        action,
        &target(t.bot_id, t.id),
        before.map(shown).as_ref(),
        after.map(shown).as_ref(),
    )
    .await?;
    crate::bots::bump(conn).await
}

impl Store {
    /// The triggers of one bot, or of every bot, by id.
    pub async fn triggers(&self, bot_id: Option<i64>) -> Result<Vec<StoredTrigger>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM triggers WHERE ($1 IS NULL OR bot_id = $1) ORDER BY id"
        )))
        .bind(bot_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(trigger_row).collect()
    }

    pub async fn trigger(&self, bot_id: i64, id: i64) -> Result<StoredTrigger, StoreError> {
        one(&mut *self.pool.acquire().await?, bot_id, id).await
    }

    pub async fn create_trigger(
        &self,
        bot_id: i64,
        w: &TriggerWrite<'_>,
        by: &Change<'_>,
    ) -> Result<StoredTrigger, StoreError> {
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO triggers (bot_id, name, kind, flow_id, active, spec, next_due_ms, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
        )
        .bind(bot_id)
        .bind(w.name.to_string())
        .bind(w.kind.to_string())
        .bind(w.flow_id.to_string())
        .bind(i64::from(w.active))
        .bind(w.spec.to_string())
        .bind(w.next_due_ms)
        .bind(by.now_ms)
        .fetch_one(&mut *tx)
        .await?;
        let after = one(&mut tx, bot_id, id).await?;
        changed(&mut tx, by, "trigger.create", None, Some(&after)).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Replaces a trigger's definition (and activity and due time).
    pub async fn update_trigger(
        &self,
        bot_id: i64,
        id: i64,
        w: &TriggerWrite<'_>,
        by: &Change<'_>,
    ) -> Result<StoredTrigger, StoreError> {
        let mut tx = self.write_tx().await?;
        let before = one(&mut tx, bot_id, id).await?;
        sqlx::query(
            "UPDATE triggers SET name = $1, kind = $2, flow_id = $3, active = $4, spec = $5, \
             next_due_ms = $6, updated_ms = $7 WHERE bot_id = $8 AND id = $9",
        )
        .bind(w.name.to_string())
        .bind(w.kind.to_string())
        .bind(w.flow_id.to_string())
        .bind(i64::from(w.active))
        .bind(w.spec.to_string())
        .bind(w.next_due_ms)
        .bind(by.now_ms)
        .bind(bot_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let after = one(&mut tx, bot_id, id).await?;
        let action = match (before.active, after.active) {
            (false, true) if before.spec == after.spec => "trigger.activate",
            (true, false) if before.spec == after.spec => "trigger.deactivate",
            _ => "trigger.update",
        };
        changed(&mut tx, by, action, Some(&before), Some(&after)).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a trigger with its log and any due time still being worked.
    pub async fn delete_trigger(
        &self,
        bot_id: i64,
        id: i64,
        by: &Change<'_>,
    ) -> Result<StoredTrigger, StoreError> {
        let mut tx = self.write_tx().await?;
        let before = one(&mut tx, bot_id, id).await?;
        for sql in [
            "DELETE FROM jobs WHERE kind = 'schedule' AND ref_id IN (SELECT id FROM schedule_firings WHERE trigger_id = $1)",
            "DELETE FROM schedule_firings WHERE trigger_id = $1",
            "DELETE FROM trigger_firings WHERE trigger_id = $1",
            "DELETE FROM triggers WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        changed(&mut tx, by, "trigger.delete", Some(&before), None).await?;
        tx.commit().await?;
        Ok(before)
    }

    /// A trigger's firings, newest first.
    pub async fn trigger_firings(
        &self,
        trigger_id: i64,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Firing>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, trigger_id, at_ms, contact_id, matched, run_id, error FROM trigger_firings \
             WHERE trigger_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(trigger_id)
        .bind(before_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Firing {
                    id: r.try_get("id")?,
                    trigger_id: r.try_get("trigger_id")?,
                    at_ms: r.try_get("at_ms")?,
                    contact_id: r.try_get("contact_id")?,
                    matched: r.try_get("matched")?,
                    run_id: r.try_get("run_id")?,
                    error: r.try_get("error")?,
                })
            })
            .collect()
    }

    /// A bot's firings counted by trigger and day, between two instants.
    pub async fn trigger_days(
        &self,
        bot_id: i64,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<TriggerDay>, StoreError> {
        let rows = sqlx::query(
            "SELECT trigger_id, at_ms / 86400000 AS day, COUNT(*) AS firings, COUNT(run_id) AS runs, \
             COUNT(error) AS errors FROM trigger_firings WHERE bot_id = $1 AND at_ms >= $2 AND at_ms < $3 \
             GROUP BY trigger_id, at_ms / 86400000 ORDER BY trigger_id, day",
        )
        .bind(bot_id)
        .bind(since_ms)
        .bind(until_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TriggerDay {
                    trigger_id: r.try_get("trigger_id")?,
                    day: r.try_get("day")?,
                    firings: r.try_get("firings")?,
                    runs: r.try_get("runs")?,
                    errors: r.try_get("errors")?,
                })
            })
            .collect()
    }

    /// Active schedules due by `now_ms`, earliest first.
    pub async fn due_schedules(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<DueSchedule>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, bot_id, next_due_ms, spec FROM triggers \
             WHERE next_due_ms <= $1 AND active = 1 ORDER BY next_due_ms, id LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DueSchedule {
                    id: r.try_get("id")?,
                    bot_id: r.try_get("bot_id")?,
                    due_ms: r.try_get("next_due_ms")?,
                    spec: r.try_get("spec")?,
                })
            })
            .collect()
    }

    /// Moves a schedule from its due time `due.due_ms` to `next_ms`, if no
    /// other server did first, and either fires the due time (a firing
    /// row and its job, returning the firing's id) or, with `skipped`
    /// (what was due, and why), logs why it was not fired. `None`: another server had it.
    pub async fn claim_schedule(
        &self,
        due: &DueSchedule,
        next_ms: Option<i64>,
        skipped: Option<(&str, &str)>,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        crate::retry_conflicts(|| async {
            let mut tx = self.write_tx().await?;
            let moved = sqlx::query(
                "UPDATE triggers SET next_due_ms = $1 WHERE id = $2 AND next_due_ms = $3 AND active = 1",
            )
            .bind(next_ms)
            .bind(due.id)
            .bind(due.due_ms)
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() == 0 {
                return Ok(None);
            }
            if let Some((matched, why)) = skipped {
                sqlx::query(
                    "INSERT INTO trigger_firings (trigger_id, bot_id, at_ms, matched, error) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(due.id)
                .bind(due.bot_id)
                .bind(now_ms)
                .bind(matched.to_string())
                .bind(why.to_string())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(Some(0));
            }
            let firing: Option<i64> = sqlx::query_scalar(
                "INSERT INTO schedule_firings (trigger_id, bot_id, due_ms, created_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (trigger_id, due_ms) DO NOTHING RETURNING id",
            )
            .bind(due.id)
            .bind(due.bot_id)
            .bind(due.due_ms)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = firing {
                sqlx::query(
                    "INSERT INTO jobs (kind, ref_id, run_at_ms, created_ms, payload) VALUES ($1, $2, $3, $3, '')",
                )
                .bind(JOB_SCHEDULE)
                .bind(id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(firing)
        })
        .await
    }
}

impl Store {
    /// A schedule's due time being worked, with its trigger's definition
    /// as it is now (none: the trigger is gone). Read outside the page's
    /// transaction: the job's lease keeps the firing this server's.
    pub async fn schedule_firing(
        &self,
        id: i64,
    ) -> Result<Option<(ScheduleFiring, Option<StoredTrigger>)>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query(
            "SELECT id, trigger_id, bot_id, due_ms, cursor FROM schedule_firings WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let firing = ScheduleFiring {
            id: r.try_get("id")?,
            trigger_id: r.try_get("trigger_id")?,
            bot_id: r.try_get("bot_id")?,
            due_ms: r.try_get("due_ms")?,
            cursor: r.try_get("cursor")?,
        };
        let trigger = match one(&mut conn, firing.bot_id, firing.trigger_id).await {
            Ok(t) => Some(t),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        Ok(Some((firing, trigger)))
    }

    /// The ids of the next page of a bot's contacts after contact
    /// `after_id` who have not opted out and are not blocked: all of them,
    /// or those tagged `tag`. [`Store::begin_page`] reads them afresh.
    pub async fn audience_page(
        &self,
        bot_id: i64,
        tag: Option<&str>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let lower = self.backend().ascii_lower("tags");
        let sql = format!(
            "SELECT id FROM contacts WHERE bot_id = $1 AND id > $2 AND opted_out = 0 AND blocked = 0 AND test = 0 \
             AND ($3 IS NULL OR {lower} LIKE $3 ESCAPE '\\') ORDER BY id LIMIT $4"
        );
        let pattern = tag.map(|t| like_containing(&to_json(&t.to_ascii_lowercase())));
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(bot_id)
            .bind(after_id)
            .bind(pattern)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The ids of these phones as contacts of the bot (created when new,
    /// with their service window closed), in the order given.
    pub async fn audience_of(
        &self,
        bot_id: i64,
        phones: &[&str],
        now_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let keys: Vec<crate::inbound::ContactKey> =
            phones.iter().map(|p| (bot_id, *p, None)).collect();
        let mut tx = self.write_tx().await?;
        let ids = crate::inbound::upsert_contacts(&mut tx, &keys, now_ms, false).await?;
        tx.commit().await?;
        Ok(phones
            .iter()
            .filter_map(|p| ids.get(&(bot_id, (*p).to_string())).copied())
            .collect())
    }

    /// Begins the transaction of a schedule's page for these contacts,
    /// unless the job's lease (`job`) was lost: none then. With the BEGIN
    /// (on SQLite one round trip with it) it reads the contacts as they
    /// are now, in the order given, and each one's latest run; on
    /// PostgreSQL it locks the job's row and the contacts first.
    ///
    /// The commit does not wait for the disk (see [`Writer::begin_with`]'s
    /// `lazy`): a page lost to a crash is worked again, as its job's cursor
    /// went with it, and its sends leave only once the outbox's claim of
    /// them, an ordinary commit, has made the page durable too.
    ///
    /// [`Writer::begin_with`]: crate::writer::Writer::begin_with
    pub async fn begin_page(
        &self,
        (job_id, lease): (i64, i64),
        ids: &[i64],
    ) -> Result<Option<(Tx, PageStart)>, StoreError> {
        let backend = self.backend();
        let mut script = Script::new(backend);
        script
            .push(match backend {
                Backend::Sqlite => {
                    "SELECT 'lease' AS part, id FROM jobs WHERE id = $1 AND locked_until_ms = $2"
                }
                Backend::Postgres => {
                    "SELECT 'lease' AS part, id FROM jobs WHERE id = $1 AND locked_until_ms = $2 FOR UPDATE"
                }
            })
            .bind(job_id)
            .bind(lease);
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let ids_param = crate::sql::ids_param(backend, &sorted);
        match backend {
            // One writer: nobody else writes, and the next run id is known.
            Backend::Sqlite => {
                script.push(
                    "SELECT 'highest' AS part, COALESCE(MAX(id), 0) AS highest_run FROM runs",
                );
            }
            // Serialised with every other transaction touching these
            // contacts, in id order (see `Tx::lock_contacts`).
            Backend::Postgres => {
                script
                    .push("SELECT 'locked' AS part, pg_advisory_xact_lock(x) FROM unnest(CAST($1 AS BIGINT[])) AS t(x)")
                    .bind(ids_param.clone());
            }
        }
        script
            .push(&format!(
                "SELECT 'contact' AS part, {AUDIENCE} FROM contacts WHERE {}",
                crate::sql::among(backend, "id", 1)
            ))
            .bind(ids_param.clone());
        script
            .push(&format!(
                "SELECT 'run' AS part, {} FROM runs WHERE id IN \
                 (SELECT MAX(id) FROM runs WHERE {} GROUP BY contact_id)",
                crate::runs::COLUMNS,
                crate::sql::among(backend, "contact_id", 1)
            ))
            .bind(ids_param);
        let (inner, rows) = self.writer.begin_with(script, true).await?;
        let mut tx = Tx::new(inner, backend);
        if !rows.iter().any(|r| is_part(r, "lease")) {
            // Another server has the job now: nothing of this page is made.
            return Ok(None);
        }
        let mut found = std::collections::HashMap::new();
        let mut runs = std::collections::HashMap::new();
        for r in &rows {
            if is_part(r, "highest") {
                tx.ids
                    .know_highest(crate::ids::Table::Runs, r.try_get("highest_run")?);
            } else if is_part(r, "contact") {
                let c = audience_row(r)?;
                found.insert(c.id, c);
            } else if is_part(r, "run") {
                let run = crate::runs::from_row(r)?;
                runs.insert(run.contact_id, run);
            }
        }
        let contacts = ids.iter().filter_map(|id| found.remove(id)).collect();
        Ok(Some((tx, PageStart { contacts, runs })))
    }
}

/// What a schedule's page reads as it begins (see [`Store::begin_page`]).
#[derive(Debug)]
pub struct PageStart {
    /// The page's contacts as they are now, in the order asked for.
    pub contacts: Vec<AudienceContact>,
    /// Each contact's latest run, if any.
    pub runs: std::collections::HashMap<i64, crate::StoredRun>,
}

impl Tx {
    /// Records a page of a schedule firing with the commit: its cursor and
    /// what it did, and keeps the job leased until `held_until_ms` for its
    /// next page, due at `next_page_ms` (the server working it needs no
    /// claim for it), or ends it when `done`. The page's transaction holds
    /// the job (see [`Store::begin_page`]).
    pub fn schedule_page(
        &mut self,
        firing: i64,
        (cursor, started, skipped): (i64, i64, i64),
        done: bool,
        job_id: i64,
        (now_ms, next_page_ms, held_until_ms): (i64, i64, i64),
    ) {
        if done {
            self.closing
                .push("DELETE FROM jobs WHERE id = $1")
                .bind(job_id);
        } else {
            self.closing
                .push("UPDATE jobs SET locked_until_ms = $1, run_at_ms = $2, attempts = 0 WHERE id = $3")
                .bind(held_until_ms)
                .bind(next_page_ms)
                .bind(job_id);
        }
        let set = "UPDATE schedule_firings SET cursor = $1, started = started + $2, skipped = skipped + $3";
        let script = match done {
            true => self
                .closing
                .push(&format!("{set}, done_ms = $4 WHERE id = $5"))
                .bind(cursor)
                .bind(started)
                .bind(skipped)
                .bind(now_ms),
            false => self
                .closing
                .push(&format!("{set} WHERE id = $4"))
                .bind(cursor)
                .bind(started)
                .bind(skipped),
        };
        script.bind(firing);
    }

    /// Records an event's firing of a trigger once: the firing's id, or
    /// none when this key fired it before. For `new_contact`, also only
    /// while the contact was first seen at `now_ms`.
    pub async fn fire_once(
        &mut self,
        f: &NewFiring,
        key: &str,
        first_seen_now: bool,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO trigger_firings (trigger_id, bot_id, at_ms, contact_id, matched, once_key) \
             SELECT $1, $2, $3, c.id, $4, $5 FROM contacts c WHERE c.id = $6 AND ($7 = 0 OR c.first_seen_ms = $3) \
             ON CONFLICT (trigger_id, once_key) DO NOTHING RETURNING id",
        )
        .bind(f.trigger_id)
        .bind(f.bot_id)
        .bind(now_ms)
        .bind(f.matched.clone())
        .bind(key.to_string())
        .bind(f.contact_id)
        .bind(i64::from(first_seen_now))
        .fetch_optional(&mut *self.inner)
        .await?;
        Ok(id)
    }

    /// Notes the run an event firing (see [`Tx::fire_once`]) started, or why none.
    pub(crate) async fn firing_outcome(
        &mut self,
        id: i64,
        run_id: Option<i64>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE trigger_firings SET run_id = $1, error = $2 WHERE id = $3")
            .bind(run_id)
            .bind(error.map(str::to_string))
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }
}

/// The columns of an audience contact, as [`audience_row`] reads them.
const AUDIENCE: &str =
    "id AS contact_id, bot_id, phone, profile_name, blocked, opted_out, refused, last_inbound_ms";

fn audience_row(r: &AnyRow) -> Result<AudienceContact, StoreError> {
    let (id, state) = crate::tx::contact_from_row(r)?;
    Ok(AudienceContact {
        id,
        last_inbound_ms: r.try_get("last_inbound_ms")?,
        state,
    })
}

impl crate::script::Script {
    /// Writes firings (a batch's), in one statement.
    pub(crate) fn insert_firings(&mut self, firings: &[NewFiring], now_ms: i64) -> &mut Self {
        if firings.is_empty() {
            return self;
        }
        let rows: Vec<_> = firings
            .iter()
            .map(|f| {
                (
                    f.trigger_id,
                    f.bot_id,
                    f.contact_id,
                    &f.matched,
                    f.run_id,
                    &f.error,
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO trigger_firings (trigger_id, bot_id, contact_id, matched, run_id, error, at_ms) \
             SELECT {}, $2 FROM {} WHERE true",
            columns(
                0,
                &[Col::Int, Col::Int, Col::Int, Col::Text, Col::Int, Col::Text]
            ),
            json_rows(self.backend(), 1)
        );
        self.push(&sql).bind(to_json(&rows)).bind(now_ms)
    }
}
