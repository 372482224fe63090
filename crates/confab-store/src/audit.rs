//! The audit log: who changed what, and when, with the record before and
//! after. Entries are written in the transaction of the change they tell of,
//! so one is never without the other.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

/// Who makes a change, and when: every change that is audited takes one.
#[derive(Clone, Copy, Debug)]
pub struct Change<'a> {
    /// `user:ana`, `key:3`, `cli`, `env`.
    pub actor: &'a str,
    pub now_ms: i64,
}

impl<'a> Change<'a> {
    pub fn by(actor: &'a str, now_ms: i64) -> Change<'a> {
        Change { actor, now_ms }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    /// `user.create`, `key.revoke`...
    pub action: String,
    /// `user:ana`, `key:3`...
    pub target: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Writes an entry on `conn` (the change's own transaction). `before` and
/// `after` are the records as the API shows them: no secret is in them.
pub(crate) async fn record(
    conn: &mut sqlx::AnyConnection,
    by: &Change<'_>,
    action: &str,
    target: &str,
    before: Option<&impl Serialize>,
    after: Option<&impl Serialize>,
) -> Result<(), StoreError> {
    fn text(v: Option<&impl Serialize>) -> Option<String> {
        v.map(|v| serde_json::to_string(v).unwrap_or_default())
    }
    sqlx::query(
        "INSERT INTO audit_log (at_ms, actor, action, target, before, after) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(by.now_ms)
    .bind(by.actor.to_string())
    .bind(action.to_string())
    .bind(target.to_string())
    .bind(text(before))
    .bind(text(after))
    .execute(conn)
    .await?;
    Ok(())
}

fn entry(r: AnyRow) -> Result<AuditEntry, StoreError> {
    let json = |col: &str| -> Result<Option<Value>, StoreError> {
        let text: Option<String> = r.try_get(col)?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    };
    Ok(AuditEntry {
        id: r.try_get("id")?,
        at_ms: r.try_get("at_ms")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        before: json("before")?,
        after: json("after")?,
    })
}

impl Store {
    /// The newest entries first; `before_id` reads on from a page's last id.
    pub async fn audit_log(
        &self,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        sqlx::query(
            "SELECT id, at_ms, actor, action, target, before, after FROM audit_log \
             WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(before_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(entry)
        .collect()
    }
}
