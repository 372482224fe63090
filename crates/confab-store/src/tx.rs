//! A transaction the runtime drives: an inbound batch, the flow steps it
//! causes, their records, replies and timers, all committed together.

use std::collections::HashMap;

use confab_model::{Channel, InboundMessage, OutboundContent};
use sqlx::Row;

use crate::script::Script;
use crate::sql::{among, ids_param, query};
use crate::{Backend, Ingested, NewOutbound, SendOutcome, Store, StoreError};

/// What the runtime needs to know of a contact.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactState {
    pub bot_id: i64,
    pub phone: String,
    pub name: Option<String>,
    pub blocked: bool,
    pub opted_out: bool,
    /// Off the allow-list and told so once.
    pub refused: bool,
}

pub struct Tx {
    pub(crate) inner: crate::writer::WriteTx,
    pub(crate) backend: Backend,
    /// Records saved in this transaction and not yet written (see
    /// [`Tx::insert_record`]).
    pub(crate) staged: crate::records::Staged,
    /// Ids given out ahead of their rows.
    pub(crate) ids: crate::ids::Ids,
    /// Writes made with the commit (see [`Tx::commit_with`]).
    pub(crate) closing: Script,
}

impl Store {
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(Tx::new(self.write_tx().await?, self.backend()))
    }

    /// Begins the transaction of an inbound batch: stores its messages
    /// (see [`Store::ingest`]) and reads what stepping their contacts' runs
    /// needs, with the setting `key`. On SQLite all of it goes with the
    /// BEGIN, one round trip: the one writer needs no locks. On PostgreSQL
    /// the batch's contacts are locked before their state is read, in one
    /// call (`confab_arrival`).
    pub async fn receive(
        &self,
        batch: &[InboundMessage],
        now_ms: i64,
        key: &str,
    ) -> Result<(Tx, Arrival), StoreError> {
        let backend = self.backend();
        let arriving = crate::inbound::Arriving::new(batch, now_ms);
        let mut script = Script::new(backend);
        arriving.script(&mut script);
        script
            .push(match backend {
                Backend::Sqlite => SQLITE_ARRIVAL,
                Backend::Postgres => POSTGRES_ARRIVAL,
            })
            .bind(arriving.phones())
            .bind(key);
        let (inner, rows) = self.writer.begin_with(script, false).await?;
        let mut tx = Tx::new(inner, backend);
        let stored = arriving
            .stored(&mut tx.inner, &mut tx.closing, &rows)
            .await?;
        let mut arrival = Arrival {
            stored,
            contacts: HashMap::new(),
            runs: HashMap::new(),
            setting: None,
        };
        let row = rows
            .iter()
            .find(|r| crate::sql::is_part(r, ARRIVAL_PART))
            .ok_or_else(|| StoreError::Corrupt("the batch's contacts were not read".into()))?;
        arrival.setting = row.try_get("setting")?;
        if backend == Backend::Sqlite {
            tx.ids
                .know_highest(crate::ids::Table::Runs, row.try_get("highest_run")?);
        }
        let contacts: Vec<ArrivingContact> = serde_json::from_str(row.try_get("contacts")?)
            .map_err(|e| StoreError::Corrupt(format!("the batch's contacts: {e}")))?;
        for c in contacts {
            let (id, state, run) = c.split()?;
            arrival.contacts.insert(id, state);
            if let Some(run) = run {
                arrival.runs.insert(id, run);
            }
        }
        Ok((tx, arrival))
    }
}

/// A batch of inbound messages as [`Store::receive`] stored it, and the
/// state of its contacts (on SQLite, of all; on PostgreSQL, of those with a
/// new message).
#[derive(Debug)]
pub struct Arrival {
    /// One per message of the batch.
    pub stored: Vec<Ingested>,
    pub contacts: HashMap<i64, ContactState>,
    /// Each contact's latest run, if any.
    pub runs: HashMap<i64, crate::StoredRun>,
    /// The setting asked for.
    pub setting: Option<String>,
}

const ARRIVAL_PART: &str = "arrival";

/// The batch's contacts (as `$1`: rows of phone, name, bot), each with its latest run,
/// the setting `$2` and the highest run id, as SQLite reads them after the
/// batch is stored. The contacts come as one JSON array in one row (see
/// [`ArrivingContact`]): every row is a hand-off between SQLite's thread
/// and the writer, which waits for it, and one row a contact cost the
/// SQLite flow batch 6% of its throughput.
const SQLITE_ARRIVAL: &str = "SELECT 'arrival' AS part, \
     (SELECT value FROM settings WHERE key = $2) AS setting, \
     (SELECT COALESCE(MAX(id), 0) FROM runs) AS highest_run, \
     json_group_array(json_array(c.id, c.phone, c.profile_name, c.blocked, c.opted_out, c.refused, \
     r.id, r.flow_id, r.flow_version, r.status, r.node, r.state, r.created_ms, r.updated_ms, c.bot_id)) AS contacts \
     FROM contacts c LEFT JOIN runs r ON r.id = (SELECT MAX(id) FROM runs WHERE contact_id = c.id) \
     WHERE (c.bot_id, c.phone) IN (SELECT j.value->>2, j.value->>0 FROM jsonb_each($1) AS j)";

/// [`SQLITE_ARRIVAL`] on PostgreSQL, where the contacts are locked first:
/// the function of migration 0007.
const POSTGRES_ARRIVAL: &str = "SELECT 'arrival' AS part, setting_value AS setting, \
     contact_rows AS contacts FROM confab_arrival($1, $2)";

/// One contact of [`SQLITE_ARRIVAL`] and [`POSTGRES_ARRIVAL`], its fields in the order of the
/// query's `json_array`; the run's are null for a contact without a run.
#[derive(serde::Deserialize)]
struct ArrivingContact {
    id: i64,
    phone: String,
    profile_name: Option<String>,
    blocked: i64,
    opted_out: i64,
    refused: i64,
    run_id: Option<i64>,
    flow_id: Option<String>,
    flow_version: Option<i64>,
    status: Option<String>,
    node: Option<String>,
    state: Option<String>,
    created_ms: Option<i64>,
    updated_ms: Option<i64>,
    bot_id: i64,
}

impl ArrivingContact {
    fn split(self) -> Result<(i64, ContactState, Option<crate::StoredRun>), StoreError> {
        let state = ContactState {
            bot_id: self.bot_id,
            phone: self.phone,
            name: self.profile_name,
            blocked: self.blocked != 0,
            opted_out: self.opted_out != 0,
            refused: self.refused != 0,
        };
        let Some(run_id) = self.run_id else {
            return Ok((self.id, state, None));
        };
        let missing = || StoreError::Corrupt(format!("run {run_id} lacks a column"));
        let run = crate::StoredRun {
            id: run_id,
            contact_id: self.id,
            flow_id: self.flow_id.ok_or_else(missing)?,
            flow_version: self.flow_version.ok_or_else(missing)?,
            status: self.status.ok_or_else(missing)?,
            node: self.node,
            state: self.state.ok_or_else(missing)?,
            created_ms: self.created_ms.ok_or_else(missing)?,
            updated_ms: self.updated_ms.ok_or_else(missing)?,
        };
        Ok((self.id, state, Some(run)))
    }
}

/// A contact's id and state, from a row with `contact_id`, `bot_id`, `phone`,
/// `profile_name`, `blocked`, `opted_out` and `refused`.
pub(crate) fn contact_from_row(r: &sqlx::any::AnyRow) -> Result<(i64, ContactState), StoreError> {
    Ok((
        r.try_get("contact_id")?,
        ContactState {
            bot_id: r.try_get("bot_id")?,
            phone: r.try_get("phone")?,
            name: r.try_get("profile_name")?,
            blocked: r.try_get::<i64, _>("blocked")? != 0,
            opted_out: r.try_get::<i64, _>("opted_out")? != 0,
            refused: r.try_get::<i64, _>("refused")? != 0,
        },
    ))
}

impl Tx {
    pub(crate) fn new(inner: crate::writer::WriteTx, backend: Backend) -> Tx {
        Tx {
            inner,
            backend,
            staged: Default::default(),
            ids: Default::default(),
            closing: Script::new(backend),
        }
    }
}

/// What a batch writes last, with its commit (see [`Tx::commit_with`]):
/// nothing waits for these writes' results, so they need no round trips of
/// their own.
#[derive(Clone, Debug, Default)]
pub struct Closing {
    /// Runs begun in the batch, with the ids [`Tx::next_run_id`] gave them.
    pub new_runs: Vec<(i64, crate::NewRun)>,
    /// Run id, status, node, state; a run named twice keeps the last.
    pub run_updates: Vec<(i64, String, Option<String>, String)>,
    /// Run id and the events of one step (a JSON array), in order.
    pub events: Vec<(i64, String)>,
    /// Replies sent in a webhook's answer, kept in the history in order.
    pub replies: Vec<Outgoing>,
    /// Messages queued for the outbox, each with its send job, in order.
    pub queued: Vec<Outgoing>,
    /// Inbound message id and what it was answered with.
    pub responses: Vec<(i64, String)>,
}

/// A message a batch sends to one of its contacts: in the webhook's
/// answer (TwiML), or queued for the outbox.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub contact_id: i64,
    pub channel: Channel,
    pub sender: Option<String>,
    pub content: OutboundContent,
    /// The provider id of the inbound message it answers, if it does.
    pub reply_to: Option<String>,
}

impl Tx {
    pub async fn commit(self) -> Result<(), StoreError> {
        self.commit_with(&Closing::default(), 0).await
    }

    /// Makes a batch's last writes and commits: on SQLite in one round
    /// trip.
    pub async fn commit_with(mut self, last: &Closing, now_ms: i64) -> Result<(), StoreError> {
        let mut script = std::mem::replace(&mut self.closing, Script::new(self.backend));
        script
            .insert_runs(&last.new_runs, now_ms)
            .update_runs(&last.run_updates, now_ms)
            .insert_events(&last.events, now_ms)
            .record_replies(&last.replies, now_ms)
            .queue_outbound(&last.queued, now_ms)
            .set_responses(&last.responses);
        self.stage_records_into(&mut script);
        self.inner.commit_with(script).await
    }

    pub async fn ingest(
        &mut self,
        batch: &[InboundMessage],
        now_ms: i64,
    ) -> Result<Vec<Ingested>, StoreError> {
        let arriving = crate::inbound::Arriving::new(batch, now_ms);
        let mut script = Script::new(self.backend);
        arriving.script(&mut script);
        let rows = script.fetch(&mut self.inner, None).await?;
        arriving
            .stored(&mut self.inner, &mut self.closing, &rows)
            .await
    }

    pub async fn enqueue_outbound(
        &mut self,
        items: &[NewOutbound],
        now_ms: i64,
    ) -> Result<Vec<SendOutcome>, StoreError> {
        crate::messages::enqueue_in(&mut self.inner, items, now_ms).await
    }

    /// Serialises this transaction with every other one touching these
    /// contacts, across replicas: PostgreSQL advisory locks held until
    /// commit, taken in id order. SQLite has one writer and needs none.
    pub async fn lock_contacts(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        // One statement: unnest hands the ids over in array order, so the
        // locks are taken in id order and two writers cannot deadlock.
        for chunk in crate::sql::shaped_chunks(&ids) {
            let sql = format!(
                "SELECT pg_advisory_xact_lock(x) FROM unnest(CAST(ARRAY[{}] AS BIGINT[])) AS t(x)",
                crate::sql::list(chunk.len(), 1)
            );
            let mut q = query(sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.fetch_all(&mut *self.inner).await?;
        }
        Ok(())
    }

    /// Opts a contact out or back in: whether that changed anything.
    pub async fn set_opted_out(
        &mut self,
        contact_id: i64,
        opted_out: bool,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE contacts SET opted_out = $1, updated_ms = $2 WHERE id = $3 AND opted_out <> $1",
        )
        .bind(i64::from(opted_out))
        .bind(now_ms)
        .bind(contact_id)
        .execute(&mut *self.inner)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Sets (or replaces) the one timer a run may wait for.
    pub async fn schedule_timer(
        &mut self,
        run_id: i64,
        token: u64,
        at_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.schedule(
            crate::jobs::JOB_TIMER,
            run_id,
            &token.to_string(),
            at_ms,
            now_ms,
        )
        .await
    }

    /// Queues a request (an HTTP call) for a worker to carry out after commit.
    pub async fn schedule_effect(
        &mut self,
        run_id: i64,
        request: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.schedule(crate::jobs::JOB_EFFECT, run_id, request, now_ms, now_ms)
            .await
    }

    /// Removes jobs that are done, those this worker still holds (by their
    /// leases); returns the ids removed.
    pub async fn finish_jobs(
        &mut self,
        jobs: &[(i64, i64)],
    ) -> Result<std::collections::HashSet<i64>, StoreError> {
        let mut done = std::collections::HashSet::with_capacity(jobs.len());
        for chunk in crate::sql::shaped_chunks(jobs) {
            let held: Vec<String> = (0..chunk.len())
                .map(|i| format!("(id = ${} AND locked_until_ms = ${})", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = format!("DELETE FROM jobs WHERE {} RETURNING id", held.join(" OR "));
            let mut q = query(sql);
            for (id, lease) in chunk {
                q = q.bind(*id).bind(*lease);
            }
            for row in q.fetch_all(&mut *self.inner).await? {
                done.insert(row.try_get("id")?);
            }
        }
        Ok(done)
    }

    async fn schedule(
        &mut self,
        kind: &str,
        run_id: i64,
        payload: &str,
        at_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO jobs (kind, ref_id, run_at_ms, created_ms, payload) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (kind, ref_id) DO UPDATE SET run_at_ms = excluded.run_at_ms, payload = excluded.payload, \
             locked_until_ms = 0, attempts = 0",
        )
        .bind(kind.to_string())
        .bind(run_id)
        .bind(at_ms)
        .bind(now_ms)
        .bind(payload.to_string())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Phone, profile name and flags of these contacts.
    pub async fn contact_states(
        &mut self,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, ContactState>, StoreError> {
        let sql = format!(
            "SELECT id AS contact_id, bot_id, phone, profile_name, blocked, opted_out, refused FROM contacts WHERE {}",
            among(self.backend, "id", 1)
        );
        let rows = query(sql)
            .bind(ids_param(self.backend, ids))
            .fetch_all(&mut *self.inner)
            .await?;
        let mut out = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            let (id, state) = contact_from_row(r)?;
            out.insert(id, state);
        }
        Ok(out)
    }
}
