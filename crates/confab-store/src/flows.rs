//! Flows and their versions. Every distinct definition of a flow gets a
//! version, numbered per (bot, flow); runs pin the one they began on.
//!
//! A bundled or file flow's live version is its latest. A flow made
//! through the API has a row in `flows` naming its live version, which a
//! new version or a roll back moves; each such change is audited and tells
//! every server caching flows (the bots' generation).

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, Change};
use crate::{Store, StoreError};

/// A flow made through the API, at its live version.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFlow {
    pub bot_id: i64,
    pub id: String,
    pub version: i64,
    /// The definition as JSON.
    pub definition: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// One version of a flow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowVersion {
    pub version: i64,
    pub hash: String,
    pub created_ms: i64,
}

/// A change to an API flow: its definition and that definition's hash.
pub struct FlowWrite<'a> {
    pub bot_id: i64,
    pub id: &'a str,
    pub definition: &'a str,
    pub hash: &'a str,
}

/// Statuses of runs still in progress, which pin their flow.
const IN_PROGRESS: &str = "('waiting_input', 'waiting_effect', 'waiting_timer', 'handed_off')";

const COLUMNS: &str = "f.bot_id, f.id, f.version, v.definition, f.created_ms, f.updated_ms \
     FROM flows f JOIN flow_versions v ON v.bot_id = f.bot_id AND v.flow_id = f.id AND v.version = f.version";

fn flow_row(r: &AnyRow) -> Result<StoredFlow, StoreError> {
    Ok(StoredFlow {
        bot_id: r.try_get("bot_id")?,
        id: r.try_get("id")?,
        version: r.try_get("version")?,
        definition: r.try_get("definition")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

fn target(bot_id: i64, id: &str) -> String {
    format!("bot:{bot_id}/flow:{id}")
}

/// What the audit log keeps of a flow: its version and definition.
fn audited(version: i64, definition: &str) -> Value {
    serde_json::json!({
        "version": version,
        "definition": serde_json::from_str::<Value>(definition).unwrap_or(Value::Null),
    })
}

/// Audits a change to a flow and tells every server caching flows, in the
/// change's transaction.
async fn changed(
    conn: &mut sqlx::AnyConnection,
    by: &Change<'_>,
    action: &str,
    (bot_id, id): (i64, &str),
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), StoreError> {
    let target = target(bot_id, id);
    audit::record(conn, by, action, &target, before.as_ref(), after.as_ref()).await?;
    crate::bots::bump(conn).await
}

async fn api_flow(
    conn: &mut sqlx::AnyConnection,
    bot_id: i64,
    id: &str,
) -> Result<Option<StoredFlow>, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} WHERE f.bot_id = $1 AND f.id = $2"
    )))
    .bind(bot_id)
    .bind(id.to_string())
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(flow_row)
    .transpose()
}

async fn latest_version(
    conn: &mut sqlx::AnyConnection,
    bot_id: i64,
    id: &str,
) -> Result<Option<(i64, String)>, StoreError> {
    let row = sqlx::query(
        "SELECT version, hash FROM flow_versions WHERE bot_id = $1 AND flow_id = $2 ORDER BY version DESC LIMIT 1",
    )
    .bind(bot_id)
    .bind(id.to_string())
    .fetch_optional(conn)
    .await?;
    row.map(|r| Ok((r.try_get("version")?, r.try_get("hash")?)))
        .transpose()
}

async fn insert_version(
    conn: &mut sqlx::AnyConnection,
    w: &FlowWrite<'_>,
    version: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO flow_versions (bot_id, flow_id, version, definition, hash, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (bot_id, flow_id, version) DO NOTHING",
    )
    .bind(w.bot_id)
    .bind(w.id.to_string())
    .bind(version)
    .bind(w.definition.to_string())
    .bind(w.hash.to_string())
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() > 0)
}

impl Store {
    /// The version of a bundled or file flow whose definition has this
    /// hash, publishing it as the next version when it is new.
    pub async fn publish_flow(&self, w: &FlowWrite<'_>, now_ms: i64) -> Result<i64, StoreError> {
        // Replicas starting together race to publish the same version: the
        // loser reads again and finds the winner's (the same definition, or
        // the next version after it).
        for _ in 0..5 {
            let published = crate::retry_conflicts(|| async {
                let mut tx = self.write_tx().await?;
                let version = match latest_version(&mut tx, w.bot_id, w.id).await? {
                    Some((v, hash)) if hash == w.hash => return Ok(Some(v)),
                    Some((v, _)) => v + 1,
                    None => 1,
                };
                let inserted = insert_version(&mut tx, w, version, now_ms).await?;
                tx.commit().await?;
                Ok(inserted.then_some(version))
            })
            .await?;
            if let Some(version) = published {
                return Ok(version);
            }
        }
        Err(StoreError::Refused(format!(
            "flow {}: another server keeps publishing versions",
            w.id
        )))
    }

    /// The definition (JSON) of one version of a bot's flow.
    pub async fn flow_definition(
        &self,
        bot_id: i64,
        flow_id: &str,
        version: i64,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT definition FROM flow_versions WHERE bot_id = $1 AND flow_id = $2 AND version = $3",
        )
        .bind(bot_id)
        .bind(flow_id.to_string())
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.0))
    }

    /// Every flow made through the API, of every bot, at its live version.
    pub async fn api_flows(&self) -> Result<Vec<StoredFlow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} ORDER BY f.bot_id, f.id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(flow_row).collect()
    }

    /// A bot's flow made through the API, at its live version.
    pub async fn api_flow(&self, bot_id: i64, id: &str) -> Result<Option<StoredFlow>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        api_flow(&mut conn, bot_id, id).await
    }

    /// A flow's versions, newest first.
    pub async fn flow_versions(
        &self,
        bot_id: i64,
        id: &str,
    ) -> Result<Vec<FlowVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, hash, created_ms FROM flow_versions WHERE bot_id = $1 AND flow_id = $2 ORDER BY version DESC",
        )
        .bind(bot_id)
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FlowVersion {
                    version: r.try_get("version")?,
                    hash: r.try_get("hash")?,
                    created_ms: r.try_get("created_ms")?,
                })
            })
            .collect()
    }

    /// Makes an API flow (`create`: it must not exist yet; otherwise it
    /// must) live at this definition: a new version after the flow's
    /// latest, unless the live one already has it. Returns the live version
    /// and whether it is new.
    pub async fn save_flow(
        &self,
        w: &FlowWrite<'_>,
        create: bool,
        by: &Change<'_>,
    ) -> Result<(i64, bool), StoreError> {
        let mut tx = self.write_tx().await?;
        let before = api_flow(&mut tx, w.bot_id, w.id).await?;
        match (&before, create) {
            (Some(_), true) => return Err(StoreError::Conflict(format!("flow {}", w.id))),
            (None, false) => return Err(StoreError::NotFound),
            (Some(b), false) if b.definition == w.definition => return Ok((b.version, false)),
            _ => {}
        }
        let version = latest_version(&mut tx, w.bot_id, w.id)
            .await?
            .map_or(1, |(v, _)| v + 1);
        insert_version(&mut tx, w, version, by.now_ms).await?;
        sqlx::query(
            "INSERT INTO flows (bot_id, id, version, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (bot_id, id) DO UPDATE SET version = excluded.version, updated_ms = excluded.updated_ms",
        )
        .bind(w.bot_id)
        .bind(w.id.to_string())
        .bind(version)
        .bind(by.now_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::from_unique(e, &format!("flow {}", w.id)))?;
        let action = if create { "flow.create" } else { "flow.update" };
        let before = before.map(|b| audited(b.version, &b.definition));
        let after = audited(version, w.definition);
        changed(&mut tx, by, action, (w.bot_id, w.id), before, Some(after)).await?;
        tx.commit().await?;
        Ok((version, true))
    }

    /// Makes an earlier (or later) version of an API flow the live one.
    pub async fn publish_flow_version(
        &self,
        bot_id: i64,
        id: &str,
        version: i64,
        by: &Change<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let before = api_flow(&mut tx, bot_id, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let definition: Option<(String,)> = sqlx::query_as(
            "SELECT definition FROM flow_versions WHERE bot_id = $1 AND flow_id = $2 AND version = $3",
        )
        .bind(bot_id)
        .bind(id.to_string())
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        let (definition,) = definition.ok_or(StoreError::NotFound)?;
        if before.version == version {
            return Ok(());
        }
        sqlx::query("UPDATE flows SET version = $3, updated_ms = $4 WHERE bot_id = $1 AND id = $2")
            .bind(bot_id)
            .bind(id.to_string())
            .bind(version)
            .bind(by.now_ms)
            .execute(&mut *tx)
            .await?;
        let was = audited(before.version, &before.definition);
        let now = audited(version, &definition);
        changed(
            &mut tx,
            by,
            "flow.publish",
            (bot_id, id),
            Some(was),
            Some(now),
        )
        .await?;
        tx.commit().await
    }

    /// Deletes an API flow with every version of it; refused while runs
    /// are in progress in it (the caller ends them first).
    pub async fn delete_flow(
        &self,
        bot_id: i64,
        id: &str,
        by: &Change<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let before = api_flow(&mut tx, bot_id, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let running = in_progress(&mut tx, bot_id, id).await?;
        if running > 0 {
            return Err(StoreError::Refused(format!(
                "flow {id} has {running} runs in progress: end them first, or delete with ?force=true"
            )));
        }
        for sql in [
            "DELETE FROM flows WHERE bot_id = $1 AND id = $2",
            "DELETE FROM flow_versions WHERE bot_id = $1 AND flow_id = $2",
        ] {
            sqlx::query(sql)
                .bind(bot_id)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let was = audited(before.version, &before.definition);
        changed(&mut tx, by, "flow.delete", (bot_id, id), Some(was), None).await?;
        tx.commit().await
    }
}

async fn in_progress(
    conn: &mut sqlx::AnyConnection,
    bot_id: i64,
    flow_id: &str,
) -> Result<i64, StoreError> {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM runs WHERE bot_id = $1 AND flow_id = $2 AND status IN {IN_PROGRESS}"
    )))
    .bind(bot_id)
    .bind(flow_id.to_string())
    .fetch_one(conn)
    .await?;
    Ok(n)
}
