//! Bots and their channels. A bot is the unit of tenancy; its channels'
//! secrets are kept sealed in `secrets` (owner `bot:<id>`, name the
//! channel's kind) and never opened here.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, Change};
use crate::{Store, StoreError};

/// The bot every unscoped route and the environment's settings describe.
pub const DEFAULT_BOT: i64 = confab_model::DEFAULT_BOT;

/// The setting that changes with every change to a bot, so that servers
/// caching bots know to read them again.
const GENERATION: &str = "bots_generation";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bot {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub default_flow: Option<String>,
    /// The access policy: allow-list, rate limit.
    pub policy: Value,
    /// AI settings over the server's: system prompt, models, history.
    pub ai: Value,
    pub channels: Vec<BotChannel>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BotChannel {
    /// `twilio`, `meta`.
    pub kind: String,
    /// What routes a webhook to the bot: the number, the phone number id.
    pub address: String,
    /// Everything that is not secret, as the API shows it.
    pub config: Value,
    /// The channel's secrets, sealed; never serialized.
    #[serde(skip)]
    pub sealed: Option<String>,
}

/// A bot as it is to be written, whole.
#[derive(Clone, Debug)]
pub struct BotWrite {
    pub slug: String,
    pub name: String,
    pub default_flow: Option<String>,
    pub policy: Value,
    pub ai: Value,
    pub channels: Vec<BotChannel>,
}

fn owner(id: i64) -> String {
    format!("bot:{id}")
}

fn target(bot: &Bot) -> String {
    format!("bot:{}", bot.slug)
}

fn json(text: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn bot_row(r: &AnyRow) -> Result<Bot, StoreError> {
    Ok(Bot {
        id: r.try_get("id")?,
        slug: r.try_get("slug")?,
        name: r.try_get("name")?,
        default_flow: r.try_get("default_flow")?,
        policy: json(r.try_get("policy")?, "a bot's policy")?,
        ai: json(r.try_get("ai")?, "a bot's AI settings")?,
        channels: Vec::new(),
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

const BOT_COLUMNS: &str = "id, slug, name, default_flow, policy, ai, created_ms, updated_ms";

/// The bots chosen by `filter` (`$1` its value), with their channels.
async fn load(
    conn: &mut sqlx::AnyConnection,
    filter: &str,
    value: Option<Value>,
) -> Result<Vec<Bot>, StoreError> {
    let sql = format!("SELECT {BOT_COLUMNS} FROM bots {filter} ORDER BY id");
    let mut q = crate::sql::query(sql);
    match value {
        Some(Value::Number(n)) => q = q.bind(n.as_i64().unwrap_or(0)),
        Some(Value::String(s)) => q = q.bind(s),
        _ => {}
    }
    let mut bots: Vec<Bot> = q
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(bot_row)
        .collect::<Result<_, _>>()?;
    if bots.is_empty() {
        return Ok(bots);
    }
    // Few bots, fewer channels: one read of them all beats a join per bot.
    let channels = sqlx::query(
        "SELECT c.bot_id, c.kind, c.address, c.config, s.sealed FROM bot_channels c \
         LEFT JOIN secrets s ON s.owner = 'bot:' || CAST(c.bot_id AS TEXT) AND s.name = c.kind \
         ORDER BY c.bot_id, c.kind",
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in channels {
        let bot_id: i64 = r.try_get("bot_id")?;
        if let Some(bot) = bots.iter_mut().find(|b| b.id == bot_id) {
            bot.channels.push(BotChannel {
                kind: r.try_get("kind")?,
                address: r.try_get("address")?,
                config: json(r.try_get("config")?, "a channel's settings")?,
                sealed: r.try_get("sealed")?,
            });
        }
    }
    Ok(bots)
}

async fn one(conn: &mut sqlx::AnyConnection, id: i64) -> Result<Bot, StoreError> {
    load(conn, "WHERE id = $1", Some(Value::from(id)))
        .await?
        .pop()
        .ok_or(StoreError::NotFound)
}

/// Writes a bot's channels and their sealed secrets, replacing any.
async fn put_channels(
    conn: &mut sqlx::AnyConnection,
    id: i64,
    channels: &[BotChannel],
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM bot_channels WHERE bot_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM secrets WHERE owner = $1")
        .bind(owner(id))
        .execute(&mut *conn)
        .await?;
    for c in channels {
        // Said plainly, rather than as the unique index's violation.
        let taken: Option<String> = sqlx::query_scalar(
            "SELECT b.slug FROM bot_channels c JOIN bots b ON b.id = c.bot_id \
             WHERE c.kind = $1 AND c.address = $2",
        )
        .bind(c.kind.clone())
        .bind(c.address.clone())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(slug) = taken {
            return Err(StoreError::Conflict(format!(
                "the {} channel {} (bot {slug})",
                c.kind, c.address
            )));
        }
        sqlx::query(
            "INSERT INTO bot_channels (bot_id, kind, address, config, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(id)
        .bind(c.kind.clone())
        .bind(c.address.clone())
        .bind(c.config.to_string())
        .bind(now_ms)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            StoreError::from_unique(e, &format!("the {} channel {}", c.kind, c.address))
        })?;
        if let Some(sealed) = &c.sealed {
            sqlx::query(
                "INSERT INTO secrets (owner, name, sealed, updated_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(owner(id))
            .bind(c.kind.clone())
            .bind(sealed.clone())
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// Records a change to a bot in the audit log, in its transaction, and
/// tells caches of it.
async fn changed(
    conn: &mut sqlx::AnyConnection,
    by: &Change<'_>,
    action: &str,
    before: Option<&Bot>,
    after: Option<&Bot>,
) -> Result<(), StoreError> {
    let bot = after
        .or(before)
        .expect("a change has a bot before or after it");
    audit::record(conn, by, action, &target(bot), before, after).await?;
    bump(conn).await
}

/// Tells every server caching bots that they changed.
pub(crate) async fn bump(conn: &mut sqlx::AnyConnection) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO settings (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(GENERATION)
    .bind(uuid::Uuid::new_v4().to_string())
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Every bot, by id.
    pub async fn bots(&self) -> Result<Vec<Bot>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load(&mut conn, "", None).await
    }

    /// A bot by id, or by slug when `key` is not a number.
    pub async fn bot(&self, key: &str) -> Result<Option<Bot>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let found = match key.parse::<i64>() {
            Ok(id) => load(&mut conn, "WHERE id = $1", Some(Value::from(id))).await?,
            Err(_) => load(&mut conn, "WHERE slug = $1", Some(Value::from(key))).await?,
        };
        Ok(found.into_iter().next())
    }

    /// The default bot as the environment describes it: its default flow
    /// is the environment's (`DEFAULT_FLOW`) on every start, and so is its
    /// rate limit when the environment sets one (`rate_limit`, as its
    /// policy keeps it).
    pub async fn sync_default_bot(
        &self,
        default_flow: Option<&str>,
        rate_limit: Option<Value>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let before = one(&mut tx, DEFAULT_BOT).await?;
        let mut policy = before.policy.clone();
        if let (Some(limit), Some(p)) = (rate_limit, policy.as_object_mut()) {
            p.insert("rate_limit".into(), limit);
        }
        if before.default_flow.as_deref() != default_flow || policy != before.policy {
            sqlx::query(
                "UPDATE bots SET default_flow = $2, policy = $3, updated_ms = $4 WHERE id = $1",
            )
            .bind(DEFAULT_BOT)
            .bind(default_flow.map(str::to_string))
            .bind(policy.to_string())
            .bind(now_ms.max(before.updated_ms + 1))
            .execute(&mut *tx)
            .await?;
            let after = one(&mut tx, DEFAULT_BOT).await?;
            let by = Change::by("env", now_ms);
            changed(&mut tx, &by, "bot.update", Some(&before), Some(&after)).await?;
        }
        tx.commit().await
    }

    pub async fn bots_generation(&self) -> Result<String, StoreError> {
        Ok(self.get_setting(GENERATION).await?.unwrap_or_default())
    }

    /// Creates a bot; `channels` gives its channels once its id is known
    /// (their secrets are sealed for it), written in the same transaction.
    pub async fn create_bot(
        &self,
        bot: &BotWrite,
        channels: impl FnOnce(i64) -> Vec<BotChannel>,
        by: &Change<'_>,
    ) -> Result<Bot, StoreError> {
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO bots (slug, name, default_flow, policy, ai, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
        )
        .bind(bot.slug.clone())
        .bind(bot.name.clone())
        .bind(bot.default_flow.clone())
        .bind(bot.policy.to_string())
        .bind(bot.ai.to_string())
        .bind(by.now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::from_unique(e, &format!("bot {}", bot.slug)))?;
        let mut all = bot.channels.clone();
        all.extend(channels(id));
        put_channels(&mut tx, id, &all, by.now_ms).await?;
        let created = one(&mut tx, id).await?;
        changed(&mut tx, by, "bot.create", None, Some(&created)).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Replaces bot `id` with `bot`, if nobody changed it since
    /// `updated_ms` (else `Conflict`: read it again and redo the change).
    pub async fn update_bot(
        &self,
        id: i64,
        updated_ms: i64,
        bot: &BotWrite,
        by: &Change<'_>,
    ) -> Result<Bot, StoreError> {
        let mut tx = self.write_tx().await?;
        let before = one(&mut tx, id).await?;
        if before.updated_ms != updated_ms {
            return Err(StoreError::Refused(format!(
                "bot {} was changed meanwhile; read it again and retry",
                before.slug
            )));
        }
        if id == DEFAULT_BOT && bot.slug != before.slug {
            return Err(StoreError::Refused(
                "the default bot keeps its slug `default`".into(),
            ));
        }
        // Never the same time twice: it is what tells a change from none.
        let now = by.now_ms.max(before.updated_ms + 1);
        sqlx::query(
            "UPDATE bots SET slug = $2, name = $3, default_flow = $4, policy = $5, ai = $6, updated_ms = $7 WHERE id = $1",
        )
        .bind(id)
        .bind(bot.slug.clone())
        .bind(bot.name.clone())
        .bind(bot.default_flow.clone())
        .bind(bot.policy.to_string())
        .bind(bot.ai.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::from_unique(e, &format!("bot {}", bot.slug)))?;
        put_channels(&mut tx, id, &bot.channels, now).await?;
        let after = one(&mut tx, id).await?;
        changed(&mut tx, by, "bot.update", Some(&before), Some(&after)).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes bot `id`, its channels and their secrets; with `force`, also
    /// its conversations and records (without, a bot that holds any is
    /// `Refused`, saying what it holds). The default bot stays. Returns
    /// the files of its media kept on disk, for the caller to delete once
    /// the rows are gone.
    pub async fn delete_bot(
        &self,
        id: i64,
        force: bool,
        by: &Change<'_>,
    ) -> Result<(Bot, BotData, Vec<String>), StoreError> {
        if id == DEFAULT_BOT {
            return Err(StoreError::Refused(
                "the default bot cannot be deleted".into(),
            ));
        }
        let mut tx = self.write_tx().await?;
        let before = one(&mut tx, id).await?;
        let data = bot_data(&mut tx, id).await?;
        if !data.is_empty() && !force {
            return Err(StoreError::Refused(format!(
                "bot {} holds {data}; delete it with ?force=true to remove them too",
                before.slug
            )));
        }
        let files: Vec<(String,)> = sqlx::query_as(
            "SELECT path FROM media WHERE path IS NOT NULL AND message_id IN \
             (SELECT id FROM messages WHERE contact_id IN (SELECT id FROM contacts WHERE bot_id = $1))",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        // Children first: every table that names a contact, a message or
        // a run of the bot's, then its flows, triggers and templates.
        const OF_BOT: &[&str] = &[
            "DELETE FROM run_events WHERE run_id IN (SELECT id FROM runs WHERE contact_id IN (SELECT id FROM contacts WHERE bot_id = $1))",
            "DELETE FROM jobs WHERE kind = 'send' AND ref_id IN (SELECT id FROM messages WHERE contact_id IN (SELECT id FROM contacts WHERE bot_id = $1))",
            "DELETE FROM jobs WHERE kind IN ('timer', 'effect') AND ref_id IN (SELECT id FROM runs WHERE contact_id IN (SELECT id FROM contacts WHERE bot_id = $1))",
            "DELETE FROM message_responses WHERE message_id IN (SELECT id FROM messages WHERE contact_id IN (SELECT id FROM contacts WHERE bot_id = $1))",
            "DELETE FROM media WHERE message_id IN (SELECT id FROM messages WHERE contact_id IN (SELECT id FROM contacts WHERE bot_id = $1))",
            "DELETE FROM ai_calls WHERE message_id IN (SELECT id FROM messages WHERE contact_id IN (SELECT id FROM contacts WHERE bot_id = $1))",
            "DELETE FROM runs WHERE contact_id IN (SELECT id FROM contacts WHERE bot_id = $1)",
            "DELETE FROM run_days WHERE bot_id = $1",
            "DELETE FROM messages WHERE contact_id IN (SELECT id FROM contacts WHERE bot_id = $1)",
            "DELETE FROM message_days WHERE bot_id = $1",
            "DELETE FROM rate_windows WHERE contact_id IN (SELECT id FROM contacts WHERE bot_id = $1)",
            "DELETE FROM records WHERE bot_id = $1 OR contact_id IN (SELECT id FROM contacts WHERE bot_id = $1)",
            "DELETE FROM contacts WHERE bot_id = $1",
            "DELETE FROM flows WHERE bot_id = $1",
            "DELETE FROM flow_versions WHERE bot_id = $1",
            "DELETE FROM jobs WHERE kind = 'schedule' AND ref_id IN (SELECT id FROM schedule_firings WHERE bot_id = $1)",
            "DELETE FROM schedule_firings WHERE bot_id = $1",
            "DELETE FROM trigger_firings WHERE bot_id = $1",
            "DELETE FROM triggers WHERE bot_id = $1",
            "DELETE FROM message_templates WHERE bot_id = $1",
        ];
        for sql in OF_BOT {
            sqlx::query(*sql).bind(id).execute(&mut *tx).await?;
        }
        put_channels(&mut tx, id, &[], by.now_ms).await?;
        sqlx::query("DELETE FROM bots WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        changed(&mut tx, by, "bot.delete", Some(&before), None).await?;
        tx.commit().await?;
        Ok((before, data, files.into_iter().map(|f| f.0).collect()))
    }

    /// What bot `id` holds.
    pub async fn bot_data(&self, id: i64) -> Result<BotData, StoreError> {
        let mut conn = self.pool.acquire().await?;
        bot_data(&mut conn, id).await
    }
}

/// What a bot holds: what deleting it removes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BotData {
    pub contacts: i64,
    pub messages: i64,
    pub runs: i64,
    pub records: i64,
}

impl BotData {
    pub fn is_empty(&self) -> bool {
        *self == BotData::default()
    }
}

impl std::fmt::Display for BotData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} contacts, {} messages, {} runs and {} records",
            self.contacts, self.messages, self.runs, self.records
        )
    }
}

async fn bot_data(conn: &mut sqlx::AnyConnection, id: i64) -> Result<BotData, StoreError> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM contacts WHERE bot_id = $1) AS contacts, \
                (SELECT COUNT(*) FROM messages WHERE contact_id IN (SELECT id FROM contacts WHERE bot_id = $1)) AS messages, \
                (SELECT COUNT(*) FROM runs WHERE contact_id IN (SELECT id FROM contacts WHERE bot_id = $1)) AS runs, \
                (SELECT COUNT(*) FROM records WHERE bot_id = $1) AS records",
    )
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(BotData {
        contacts: row.try_get("contacts")?,
        messages: row.try_get("messages")?,
        runs: row.try_get("runs")?,
        records: row.try_get("records")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> Store {
        let dir = std::env::temp_dir().join("confab-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("bots-{}.db", uuid::Uuid::new_v4()));
        let s = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        s.migrate().await.unwrap();
        s
    }

    fn twilio(number: &str, sealed: &str) -> BotChannel {
        BotChannel {
            kind: "twilio".into(),
            address: number.into(),
            config: serde_json::json!({"account_sid": "AC1"}),
            sealed: Some(sealed.into()),
        }
    }

    fn write(slug: &str, channels: Vec<BotChannel>) -> BotWrite {
        BotWrite {
            slug: slug.into(),
            name: slug.to_uppercase(),
            default_flow: None,
            policy: serde_json::json!({}),
            ai: serde_json::json!({}),
            channels,
        }
    }

    #[tokio::test]
    async fn the_default_bot_is_there_from_the_start_and_stays() {
        let s = store().await;
        let bots = s.bots().await.unwrap();
        assert_eq!(bots.len(), 1);
        assert_eq!(
            (bots[0].id, bots[0].slug.as_str()),
            (DEFAULT_BOT, "default")
        );
        let by = Change::by("test", 5);
        assert!(matches!(
            s.delete_bot(DEFAULT_BOT, true, &by).await,
            Err(StoreError::Refused(_))
        ));
    }

    #[tokio::test]
    async fn a_number_belongs_to_one_bot_and_secrets_go_with_their_bot() {
        let s = store().await;
        let by = Change::by("test", 5);
        let a = s
            .create_bot(
                &write("a", vec![]),
                |_| vec![twilio("+1555", "sealed-a")],
                &by,
            )
            .await
            .unwrap();
        assert_eq!(a.channels[0].sealed.as_deref(), Some("sealed-a"));
        let taken = s
            .create_bot(
                &write("b", vec![twilio("+1555", "sealed-b")]),
                |_| vec![],
                &by,
            )
            .await;
        assert!(
            matches!(&taken, Err(StoreError::Conflict(m)) if m.contains("bot a")),
            "{taken:?}"
        );
        // Nothing of the refused bot was kept.
        assert!(s.bot("b").await.unwrap().is_none());
        assert!(matches!(
            s.create_bot(&write("a", vec![]), |_| vec![], &by).await,
            Err(StoreError::Conflict(_))
        ));
        let generation = s.bots_generation().await.unwrap();
        s.delete_bot(a.id, false, &by).await.unwrap();
        assert_ne!(s.bots_generation().await.unwrap(), generation);
        assert!(s.all_secrets().await.unwrap().is_empty());
        let b = s
            .create_bot(
                &write("b", vec![twilio("+1555", "sealed-b")]),
                |_| vec![],
                &by,
            )
            .await
            .unwrap();
        assert!(b.id > a.id, "ids are not reused");
        let log = s.audit_log(None, 10).await.unwrap();
        assert_eq!(log[0].action, "bot.create");
        assert!(
            !log[0]
                .after
                .as_ref()
                .unwrap()
                .to_string()
                .contains("sealed")
        );
    }

    #[tokio::test]
    async fn a_change_made_meanwhile_is_not_overwritten() {
        let s = store().await;
        let by = Change::by("test", 5);
        let a = s
            .create_bot(&write("a", vec![]), |_| vec![], &by)
            .await
            .unwrap();
        let mut w = write("a", vec![]);
        w.name = "First".into();
        let first = s.update_bot(a.id, a.updated_ms, &w, &by).await.unwrap();
        assert!(first.updated_ms > a.updated_ms);
        w.name = "Second".into();
        assert!(matches!(
            s.update_bot(a.id, a.updated_ms, &w, &by).await,
            Err(StoreError::Refused(_))
        ));
        assert_eq!(
            s.bot(&a.id.to_string()).await.unwrap().unwrap().name,
            "First"
        );
    }
}
