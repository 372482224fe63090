//! Each bot's catalogue of WhatsApp message templates: the ones declared
//! through the API and the ones synced from the provider. What a template
//! may hold is checked before it gets here; this keeps the rows.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, Change};
use crate::{Store, StoreError};

/// Declared through the API.
pub const DECLARED: &str = "declared";
/// Read from the provider by a sync.
pub const SYNCED: &str = "synced";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredTemplate {
    pub id: i64,
    pub bot_id: i64,
    /// twilio or meta.
    pub channel: String,
    pub name: String,
    pub language: String,
    pub category: String,
    /// APPROVED, PENDING, REJECTED, PAUSED... as the provider says; a
    /// declared template is APPROVED.
    pub status: String,
    pub body: String,
    /// The body's placeholders, in order of first use.
    pub parameters: Vec<String>,
    pub header: Option<TemplateHeader>,
    pub content_sid: Option<String>,
    /// declared or synced.
    pub source: String,
    /// The provider's id for it.
    pub external_id: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A template's header: its format (TEXT, IMAGE, VIDEO, DOCUMENT or
/// LOCATION) and a TEXT header's placeholders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateHeader {
    pub format: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<String>,
}

/// A template as a declaration or a sync gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateWrite {
    pub channel: String,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub body: String,
    pub parameters: Vec<String>,
    pub header: Option<TemplateHeader>,
    pub content_sid: Option<String>,
    pub external_id: Option<String>,
}

/// What a sync changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Synced {
    pub fetched: usize,
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
}

const COLUMNS: &str = "id, bot_id, channel, name, language, category, status, body, parameters, \
                       header, content_sid, source, external_id, created_ms, updated_ms";

fn template_row(r: &AnyRow) -> Result<StoredTemplate, StoreError> {
    let parameters: String = r.try_get("parameters")?;
    let header: Option<String> = r.try_get("header")?;
    Ok(StoredTemplate {
        id: r.try_get("id")?,
        bot_id: r.try_get("bot_id")?,
        channel: r.try_get("channel")?,
        name: r.try_get("name")?,
        language: r.try_get("language")?,
        category: r.try_get("category")?,
        status: r.try_get("status")?,
        body: r.try_get("body")?,
        parameters: serde_json::from_str(&parameters)
            .map_err(|e| StoreError::Corrupt(format!("template parameters: {e}")))?,
        header: header
            .map(|h| serde_json::from_str(&h))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("template header: {e}")))?,
        content_sid: r.try_get("content_sid")?,
        source: r.try_get("source")?,
        external_id: r.try_get("external_id")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

fn parameters_json(w: &TemplateWrite) -> String {
    serde_json::to_string(&w.parameters).unwrap_or_else(|_| "[]".into())
}

fn header_json(w: &TemplateWrite) -> Option<String> {
    w.header
        .as_ref()
        .and_then(|h| serde_json::to_string(h).ok())
}

async fn one(
    conn: &mut sqlx::AnyConnection,
    bot_id: i64,
    id: i64,
) -> Result<StoredTemplate, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM message_templates WHERE bot_id = $1 AND id = $2"
    )))
    .bind(bot_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(template_row)
    .transpose()?
    .ok_or(StoreError::NotFound)
}

async fn insert(
    conn: &mut sqlx::AnyConnection,
    bot_id: i64,
    w: &TemplateWrite,
    source: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let id = sqlx::query_scalar(
        "INSERT INTO message_templates (bot_id, channel, name, language, category, status, body, \
         parameters, header, content_sid, source, external_id, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING id",
    )
    .bind(bot_id)
    .bind(w.channel.clone())
    .bind(w.name.clone())
    .bind(w.language.clone())
    .bind(w.category.clone())
    .bind(w.status.clone())
    .bind(w.body.clone())
    .bind(parameters_json(w))
    .bind(header_json(w))
    .bind(w.content_sid.clone())
    .bind(source.to_string())
    .bind(w.external_id.clone())
    .bind(now_ms)
    .fetch_one(conn)
    .await
    .map_err(|e| {
        let what = match &w.content_sid {
            Some(sid) => format!(
                "template {} ({}) or one with content_sid {sid}",
                w.name, w.language
            ),
            None => format!("{} template {} ({})", w.channel, w.name, w.language),
        };
        StoreError::from_unique(e, &what)
    })?;
    Ok(id)
}

fn target(bot_id: i64, id: i64) -> String {
    format!("bot:{bot_id}/template:{id}")
}

impl Store {
    /// A bot's templates, by channel, name and language.
    pub async fn templates(&self, bot_id: i64) -> Result<Vec<StoredTemplate>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM message_templates WHERE bot_id = $1 ORDER BY channel, name, language"
        )))
        .bind(bot_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(template_row).collect()
    }

    /// A bot's templates that a send naming `name` or `content_sid` could
    /// mean: what checking one send needs, by index.
    pub async fn templates_named(
        &self,
        bot_id: i64,
        name: Option<&str>,
        content_sid: Option<&str>,
    ) -> Result<Vec<StoredTemplate>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM message_templates WHERE bot_id = $1 AND (name = $2 OR content_sid = $3) \
             ORDER BY channel, name, language"
        )))
        .bind(bot_id)
        .bind(name.map(str::to_string))
        .bind(content_sid.map(str::to_string))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(template_row).collect()
    }

    pub async fn template(&self, bot_id: i64, id: i64) -> Result<StoredTemplate, StoreError> {
        one(&mut *self.pool.acquire().await?, bot_id, id).await
    }

    /// Adds a declared template; `Conflict` when the bot has one of that
    /// channel, name and language (or that Content SID).
    pub async fn declare_template(
        &self,
        bot_id: i64,
        w: &TemplateWrite,
        by: &Change<'_>,
    ) -> Result<StoredTemplate, StoreError> {
        let mut tx = self.write_tx().await?;
        let id = insert(&mut tx, bot_id, w, DECLARED, by.now_ms).await?;
        let after = one(&mut tx, bot_id, id).await?;
        audit::record(
            &mut tx,
            by,
            "template.declare",
            &target(bot_id, id),
            None::<&StoredTemplate>,
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    pub async fn delete_template(
        &self,
        bot_id: i64,
        id: i64,
        by: &Change<'_>,
    ) -> Result<StoredTemplate, StoreError> {
        let mut tx = self.write_tx().await?;
        let before = one(&mut tx, bot_id, id).await?;
        sqlx::query("DELETE FROM message_templates WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            by,
            "template.delete",
            &target(bot_id, id),
            Some(&before),
            None::<&StoredTemplate>,
        )
        .await?;
        tx.commit().await?;
        Ok(before)
    }

    /// Makes the bot's synced templates of `channel` what the provider
    /// listed: new ones added, changed ones updated (a declared one the
    /// provider also lists becomes synced), and synced ones it no longer
    /// lists removed. Declared ones it does not list stay. One transaction.
    pub async fn sync_templates(
        &self,
        bot_id: i64,
        channel: &str,
        fetched: &[TemplateWrite],
        by: &Change<'_>,
    ) -> Result<Synced, StoreError> {
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM message_templates WHERE bot_id = $1 AND channel = $2"
        )))
        .bind(bot_id)
        .bind(channel.to_string())
        .fetch_all(&mut *tx)
        .await?;
        let mut existing: HashMap<(String, String), StoredTemplate> = rows
            .iter()
            .map(template_row)
            .map(|t| t.map(|t| ((t.name.clone(), t.language.clone()), t)))
            .collect::<Result<_, _>>()?;
        let mut counts = Synced {
            fetched: fetched.len(),
            ..Synced::default()
        };
        for w in fetched {
            match existing.remove(&(w.name.clone(), w.language.clone())) {
                None => {
                    insert(&mut tx, bot_id, w, SYNCED, by.now_ms).await?;
                    counts.added += 1;
                }
                Some(old) => {
                    let same = old.source == SYNCED
                        && old.category == w.category
                        && old.status == w.status
                        && old.body == w.body
                        && old.parameters == w.parameters
                        && old.header == w.header
                        && old.external_id == w.external_id;
                    if same {
                        continue;
                    }
                    sqlx::query(
                        "UPDATE message_templates SET category = $1, status = $2, body = $3, \
                         parameters = $4, header = $9, source = $5, external_id = $6, updated_ms = $7 \
                         WHERE id = $8",
                    )
                    .bind(w.category.clone())
                    .bind(w.status.clone())
                    .bind(w.body.clone())
                    .bind(parameters_json(w))
                    .bind(SYNCED)
                    .bind(w.external_id.clone())
                    .bind(by.now_ms)
                    .bind(old.id)
                    .bind(header_json(w))
                    .execute(&mut *tx)
                    .await?;
                    counts.updated += 1;
                }
            }
        }
        for gone in existing.values().filter(|t| t.source == SYNCED) {
            sqlx::query("DELETE FROM message_templates WHERE id = $1")
                .bind(gone.id)
                .execute(&mut *tx)
                .await?;
            counts.removed += 1;
        }
        audit::record(
            &mut tx,
            by,
            "template.sync",
            &format!("bot:{bot_id}/templates:{channel}"),
            None::<&Synced>,
            Some(&counts),
        )
        .await?;
        tx.commit().await?;
        Ok(counts)
    }
}
