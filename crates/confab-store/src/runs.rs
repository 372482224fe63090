//! Flow versions, runs and their event logs.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::script::Script;
use crate::sql::{Bind, Filter, among, ids_param, list, query};
use crate::{Store, StoreError, Tx};

/// One contact in one flow, as stored. `state` is the engine's run as JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredRun {
    pub id: i64,
    pub contact_id: i64,
    pub flow_id: String,
    pub flow_version: i64,
    pub status: String,
    pub node: Option<String>,
    #[serde(skip)]
    pub state: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A run to insert.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRun {
    pub contact_id: i64,
    pub flow_id: String,
    pub flow_version: i64,
    pub status: String,
    pub node: Option<String>,
    pub state: String,
}

#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// The runs of the bot's contacts only.
    pub bot_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub flow_id: Option<String>,
    pub status: Option<String>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredEvent {
    pub id: i64,
    pub event: String,
    pub created_ms: i64,
}

/// Runs of one flow begun on one UTC day.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunDay {
    pub flow_id: String,
    /// Days since 1970-01-01.
    pub day: i64,
    pub by_status: HashMap<String, i64>,
    /// How long the completed runs took: (milliseconds, to the tenth of a
    /// second below; how many runs took that long).
    pub completed_ms: Vec<(i64, i64)>,
}

/// How a flow's runs ended up.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FlowStats {
    /// Runs by status.
    pub by_status: HashMap<String, i64>,
    /// Runs that stopped at a node and went no further (expired, failed, or
    /// abandoned for a newer run), by node.
    pub dropped_at: HashMap<String, i64>,
}

pub(crate) const COLUMNS: &str =
    "id, contact_id, flow_id, flow_version, status, node, state, created_ms, updated_ms";

pub(crate) fn from_row(r: &AnyRow) -> Result<StoredRun, StoreError> {
    Ok(StoredRun {
        id: r.try_get("id")?,
        contact_id: r.try_get("contact_id")?,
        flow_id: r.try_get("flow_id")?,
        flow_version: r.try_get("flow_version")?,
        status: r.try_get("status")?,
        node: r.try_get("node")?,
        state: r.try_get("state")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

impl Tx {
    /// The latest run of each of these contacts.
    pub async fn current_runs(
        &mut self,
        contact_ids: &[i64],
    ) -> Result<HashMap<i64, StoredRun>, StoreError> {
        // Not a correlated MAX per contact: on PostgreSQL, with runs updated
        // at every step, it measured slower in the benchmark (2,100 flow
        // steps/s against 2,900).
        let sql = format!(
            "SELECT {COLUMNS} FROM runs WHERE id IN (SELECT MAX(id) FROM runs WHERE {} GROUP BY contact_id)",
            among(self.backend, "contact_id", 1)
        );
        let rows = query(sql)
            .bind(ids_param(self.backend, contact_ids))
            .fetch_all(&mut *self.inner)
            .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in &rows {
            let run = from_row(row)?;
            out.insert(run.contact_id, run);
        }
        Ok(out)
    }

    /// The contact of each run that exists.
    pub async fn run_contacts(&mut self, run_ids: &[i64]) -> Result<HashMap<i64, i64>, StoreError> {
        let mut out = HashMap::with_capacity(run_ids.len());
        for chunk in crate::sql::shaped_chunks(run_ids) {
            let sql = format!(
                "SELECT id, contact_id FROM runs WHERE id IN ({})",
                list(chunk.len(), 1)
            );
            for row in crate::sql::query_ids(sql, chunk)
                .fetch_all(&mut *self.inner)
                .await?
            {
                out.insert(row.try_get("id")?, row.try_get("contact_id")?);
            }
        }
        Ok(out)
    }

    pub async fn run(&mut self, id: i64) -> Result<StoredRun, StoreError> {
        let row = query(format!("SELECT {COLUMNS} FROM runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *self.inner)
            .await?
            .ok_or(StoreError::NotFound)?;
        from_row(&row)
    }

    /// Inserts a run now and returns its id, given as
    /// [`Tx::next_run_id`] gives it: the two ways of beginning a run in a
    /// transaction never take the same id.
    pub async fn insert_run(&mut self, run: &NewRun, now_ms: i64) -> Result<i64, StoreError> {
        let id = self.next_run_id().await?;
        let mut script = Script::new(self.backend);
        script.insert_runs(&[(id, run.clone())], now_ms);
        script.run(&mut self.inner, None).await?;
        Ok(id)
    }

    pub async fn update_run(
        &mut self,
        id: i64,
        status: &str,
        node: Option<&str>,
        state: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runs SET status = $1, node = $2, state = $3, updated_ms = $4 WHERE id = $5",
        )
        .bind(status.to_string())
        .bind(node.map(str::to_string))
        .bind(state.to_string())
        .bind(now_ms)
        .bind(id)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// The id a run begun in this transaction gets: it is named at once
    /// (by its events, timers and requests) and written with the commit
    /// (see [`Closing::new_runs`](crate::Closing)).
    pub async fn next_run_id(&mut self) -> Result<i64, StoreError> {
        self.ids
            .next(&mut self.inner, self.backend, crate::ids::Table::Runs)
            .await
    }

    /// Appends event rows (run id, the events of one step as a JSON array) in order.
    pub async fn insert_events(
        &mut self,
        events: &[(i64, String)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut script = Script::new(self.backend);
        script.insert_events(events, now_ms);
        script.run(&mut self.inner, None).await?;
        Ok(())
    }
}

impl Store {
    /// Runs waiting for an answer since before `cutoff_ms`, oldest first.
    pub async fn idle_runs(
        &self,
        cutoff_ms: i64,
        limit: i64,
    ) -> Result<Vec<StoredRun>, StoreError> {
        let rows = query(format!(
            "SELECT {COLUMNS} FROM runs WHERE status = 'waiting_input' AND updated_ms < $1 ORDER BY updated_ms LIMIT $2"
        ))
        .bind(cutoff_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn run(&self, id: i64) -> Result<StoredRun, StoreError> {
        let row = query(format!("SELECT {COLUMNS} FROM runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        from_row(&row)
    }

    /// Newest first; pass the last id of a page as `before_id`.
    pub async fn runs(&self, f: &RunFilter) -> Result<Vec<StoredRun>, StoreError> {
        let mut filter = Filter::default();
        match (f.bot_id, f.contact_id) {
            // A contact's runs are found by the contact's index; the bot
            // is checked on those few (by the bot's index, a planner would
            // walk every run of the bot).
            (Some(b), Some(_)) => filter.push("bot_id + 0 = {}", Bind::I64(b)),
            (Some(b), None) => filter.push("bot_id = {}", Bind::I64(b)),
            (None, _) => {}
        }
        if let Some(c) = f.contact_id {
            filter.push("contact_id = {}", Bind::I64(c));
        }
        if let Some(id) = &f.flow_id {
            filter.push("flow_id = {}", Bind::Text(id.clone()));
        }
        if let Some(s) = &f.status {
            filter.push("status = {}", Bind::Text(s.clone()));
        }
        if let Some(b) = f.before_id {
            filter.push("id < {}", Bind::I64(b));
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM runs{} ORDER BY id DESC LIMIT {}",
            filter.where_sql(),
            f.limit
        );
        let rows = filter.bind_all(query(sql)).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// A run's event rows (one per step), oldest first, at most `limit`.
    pub async fn run_events(
        &self,
        run_id: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event, created_ms FROM run_events WHERE run_id = $1 ORDER BY id LIMIT $2",
        )
        .bind(run_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredEvent {
                    id: r.try_get("id")?,
                    event: r.try_get("event")?,
                    created_ms: r.try_get("created_ms")?,
                })
            })
            .collect()
    }

    /// A bot's runs begun on the days from the one of `since_ms` to the one
    /// before `until_ms`, counted by flow, UTC day and status, with how long
    /// each completed run took.
    pub async fn run_days(
        &self,
        bot_id: i64,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<RunDay>, StoreError> {
        const DAY_MS: i64 = 86_400_000;
        // Counted as the runs are written (`run_days`): whole days.
        let rows = sqlx::query(
            "SELECT flow_id, day, status, CAST(SUM(n) AS BIGINT) AS n FROM run_days \
             WHERE bot_id = $1 AND day >= $2 AND day < $3 \
             GROUP BY flow_id, day, status HAVING SUM(n) <> 0 ORDER BY day, flow_id",
        )
        .bind(bot_id)
        .bind(since_ms.div_euclid(DAY_MS))
        .bind((until_ms + DAY_MS - 1).div_euclid(DAY_MS))
        .fetch_all(&self.pool)
        .await?;
        let mut days: Vec<RunDay> = Vec::new();
        for r in rows {
            let (flow_id, day): (String, i64) = (r.try_get("flow_id")?, r.try_get("day")?);
            let at = match days
                .iter()
                .position(|d| d.flow_id == flow_id && d.day == day)
            {
                Some(i) => i,
                None => {
                    days.push(RunDay {
                        flow_id,
                        day,
                        ..RunDay::default()
                    });
                    days.len() - 1
                }
            };
            days[at]
                .by_status
                .insert(r.try_get("status")?, r.try_get("n")?);
        }
        let took = sqlx::query(
            "SELECT flow_id, created_ms / $1 AS day, (updated_ms - created_ms) / 100 * 100 AS took, COUNT(*) AS n \
             FROM runs WHERE bot_id = $4 AND status = 'completed' AND created_ms >= $2 AND created_ms < $3 \
             GROUP BY flow_id, created_ms / $1, (updated_ms - created_ms) / 100 * 100",
        )
        .bind(DAY_MS)
        .bind(since_ms)
        .bind(until_ms)
        .bind(bot_id)
        .fetch_all(&self.pool)
        .await?;
        for r in took {
            let (flow_id, day): (String, i64) = (r.try_get("flow_id")?, r.try_get("day")?);
            if let Some(d) = days
                .iter_mut()
                .find(|d| d.flow_id == flow_id && d.day == day)
            {
                d.completed_ms.push((r.try_get("took")?, r.try_get("n")?));
            }
        }
        Ok(days)
    }

    pub async fn flow_stats(&self, bot_id: i64, flow_id: &str) -> Result<FlowStats, StoreError> {
        let mut stats = FlowStats::default();
        let rows = sqlx::query(
            "SELECT status, CAST(SUM(n) AS BIGINT) AS n FROM run_days WHERE flow_id = $1 AND bot_id = $2 \
             GROUP BY status HAVING SUM(n) <> 0",
        )
        .bind(flow_id.to_string())
        .bind(bot_id)
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            stats
                .by_status
                .insert(r.try_get("status")?, r.try_get("n")?);
        }
        // A run dropped off where it stopped if it did not finish and is not
        // its contact's current run any more, or it expired or failed.
        // "Did not finish" is written as the two ranges either side of
        // `completed`, which the (bot, flow, status) index reads: as `<>`,
        // PostgreSQL read every run of the flow (66 ms for 100,000).
        let rows = sqlx::query(
            "SELECT node, COUNT(*) AS n FROM runs r WHERE bot_id = $2 AND flow_id = $1 AND node IS NOT NULL AND \
             (status < 'completed' OR status > 'completed') AND \
             (status IN ('expired', 'failed') OR id < (SELECT MAX(id) FROM runs WHERE contact_id = r.contact_id)) \
             GROUP BY node",
        )
        .bind(flow_id.to_string())
        .bind(bot_id)
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            stats.dropped_at.insert(r.try_get("node")?, r.try_get("n")?);
        }
        Ok(stats)
    }
}
