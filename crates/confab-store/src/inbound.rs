use std::collections::HashMap;

use confab_model::{DeliveryStatus, Direction, InboundMessage, StatusUpdate};
use sqlx::Row;

use crate::script::Script;
use crate::sql::Col::Text;
use crate::sql::{columns, json_rows, list, query, text_at, to_json};
use crate::{Backend, Store, StoreError};

/// The stored form of one inbound message of a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Ingested {
    pub message_id: i64,
    pub contact_id: i64,
    /// The provider delivered this message before; nothing new was stored.
    pub duplicate: bool,
    /// What the first delivery was answered with, if anything was recorded.
    pub response: Option<String>,
}

/// What a delivery report did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusApplied {
    /// The message moved forward to the reported status.
    Advanced,
    /// The message is already at or past it (a late or repeated report).
    Stale,
    /// No message carries that id yet; the report is kept and applied when
    /// the send result naming the id is stored.
    Unknown,
}

/// PostgreSQL cannot store NUL characters in TEXT. Providers never send
/// them in earnest, so they are dropped (on both backends alike) rather than
/// failing the whole batch.
fn has_nul(m: &InboundMessage) -> bool {
    let nul = |s: &Option<String>| s.as_deref().is_some_and(|s| s.contains('\0'));
    m.provider_message_id.contains('\0') || nul(&m.text) || nul(&m.profile_name) || nul(&m.to)
}

fn without_nul(m: &InboundMessage) -> InboundMessage {
    let strip = |s: &Option<String>| s.as_deref().map(crate::sql::text);
    InboundMessage {
        provider_message_id: crate::sql::text(&m.provider_message_id),
        text: strip(&m.text),
        profile_name: strip(&m.profile_name),
        to: strip(&m.to),
        ..m.clone()
    }
}

/// A contact as a batch names it: its bot, its phone, the name last given.
pub(crate) type ContactKey<'a> = (i64, &'a str, Option<&'a str>);

/// One row per contact (bot and phone), in (bot, phone) order, with the
/// last name given for it, as the JSON rows `[phone, name, bot]`.
/// PostgreSQL refuses to upsert a row twice in one statement, and rows
/// locked in one order cannot deadlock concurrent writers.
fn distinct_contacts<'a>(contacts: &[ContactKey<'a>]) -> Vec<(&'a str, Option<&'a str>, i64)> {
    let mut distinct: Vec<(&str, Option<&str>, i64)> = Vec::with_capacity(contacts.len());
    let mut seen: HashMap<(i64, &str), usize> = HashMap::with_capacity(contacts.len());
    for &(bot, phone, name) in contacts {
        match seen.get(&(bot, phone)) {
            Some(&i) => {
                if name.is_some() {
                    distinct[i].1 = name;
                }
            }
            None => {
                seen.insert((bot, phone), distinct.len());
                distinct.push((phone, name, bot));
            }
        }
    }
    distinct.sort_unstable_by(|a, b| (a.2, a.0).cmp(&(b.2, b.0)));
    distinct
}

/// Creates the contacts that do not exist yet (`$1`: rows of phone, name,
/// bot); `$2` is now, `$3` the time of their last inbound message.
/// `conflict` says what to do with a contact that exists.
fn insert_contacts_sql(backend: Backend, conflict: &str) -> String {
    format!(
        "INSERT INTO contacts (phone, profile_name, bot_id, first_seen_ms, last_seen_ms, last_inbound_ms, created_ms, updated_ms) \
         SELECT {}, {}, $2, $2, $3, $2, $2 FROM {} WHERE true ORDER BY j.key \
         ON CONFLICT (bot_id, phone) {conflict}",
        columns(0, &[Text, Text]),
        crate::sql::int_at(2),
        json_rows(backend, 1)
    )
}

/// Finds or creates contacts by bot and phone and returns their ids. A
/// contact that exists is left as it is (see `refresh_contacts`); a new one
/// created for an inbound message starts with its service window open.
pub(crate) async fn upsert_contacts(
    tx: &mut crate::writer::WriteTx,
    contacts: &[ContactKey<'_>],
    now_ms: i64,
    inbound: bool,
) -> Result<HashMap<(i64, String), i64>, StoreError> {
    // Touching a row that exists makes RETURNING give its id on both backends.
    let sql = insert_contacts_sql(
        Backend::of(tx),
        "DO UPDATE SET updated_ms = contacts.updated_ms RETURNING id, bot_id, phone",
    );
    let rows = query(sql)
        .bind(to_json(&distinct_contacts(contacts)))
        .bind(now_ms)
        .bind(inbound.then_some(now_ms))
        .fetch_all(&mut **tx)
        .await?;
    let mut ids = HashMap::with_capacity(rows.len());
    for row in rows {
        ids.insert(
            (
                row.try_get::<i64, _>("bot_id")?,
                row.try_get::<String, _>("phone")?,
            ),
            row.try_get::<i64, _>("id")?,
        );
    }
    Ok(ids)
}

/// What the store holds for one provider message id: message id, contact
/// id, whether it was there before, and its recorded response.
type StoredRow = (i64, i64, bool, Option<String>);

/// A batch of inbound messages on its way in: the statements that store it
/// (see [`Arriving::script`]), then [`Arriving::stored`] over their rows.
pub(crate) struct Arriving<'a> {
    batch: std::borrow::Cow<'a, [InboundMessage]>,
    /// The first of each provider message id in the batch.
    first: HashMap<Key, usize>,
    /// Those firsts, in batch order.
    unique: Vec<usize>,
    /// The batch's distinct phones (with the name last given), as one JSON
    /// parameter in phone order.
    phones: String,
    now_ms: i64,
}

/// A message's identity at its provider: channel and provider id.
type Key = (&'static str, String);

fn key(m: &InboundMessage) -> Key {
    (m.channel.as_str(), m.provider_message_id.clone())
}

/// Rows of a statement that stored messages carry `part = 'message'`, so
/// that they can be told apart from rows of statements sent with them.
pub(crate) const MESSAGE_PART: &str = "message";

/// How a batch's new messages are stored: a message there before is left
/// as it is.
const STORE_NEW: &str = " ON CONFLICT (channel, direction, provider_message_id) DO NOTHING";

/// What is read back of each message stored. On PostgreSQL the insert
/// returns a row a message; SQLite reads them back as one row (see
/// [`Arriving::script`]): each row is a hand-off between its thread and
/// the writer, which waits for it.
const STORED_COLUMNS: &str = "id, contact_id, channel, provider_message_id";

/// A channel as the batch names it; stored rows name no other.
fn channel_named(name: &str) -> Result<&'static str, StoreError> {
    confab_model::Channel::parse(name)
        .map(confab_model::Channel::as_str)
        .ok_or_else(|| StoreError::Corrupt(format!("a message of channel {name}")))
}

impl<'a> Arriving<'a> {
    pub(crate) fn new(batch: &'a [InboundMessage], now_ms: i64) -> Arriving<'a> {
        let batch = if batch.iter().any(has_nul) {
            std::borrow::Cow::Owned(batch.iter().map(without_nul).collect())
        } else {
            std::borrow::Cow::Borrowed(batch)
        };
        let mut first = HashMap::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            first.entry(key(m)).or_insert(i);
        }
        let mut unique: Vec<usize> = first.values().copied().collect();
        unique.sort_unstable();
        let contacts: Vec<ContactKey> = batch
            .iter()
            .map(|m| (m.bot_id, m.from.as_str(), m.profile_name.as_deref()))
            .collect();
        let phones = to_json(&distinct_contacts(&contacts));
        Arriving {
            batch,
            first,
            unique,
            phones,
            now_ms,
        }
    }

    /// See [`Arriving::phones`](Arriving).
    pub(crate) fn phones(&self) -> &str {
        &self.phones
    }

    /// Adds the statements that create the batch's new contacts and store
    /// its new messages; the second gives a row per message stored.
    pub(crate) fn script(&self, script: &mut Script) {
        let backend = script.backend();
        script
            .push(&insert_contacts_sql(backend, "DO NOTHING"))
            .bind(self.phones())
            .bind(self.now_ms)
            .bind(self.now_ms);
        let rows: Vec<_> = self
            .unique
            .iter()
            .map(|&i| {
                let m = &self.batch[i];
                (
                    m.from.as_str(),
                    m.channel.as_str(),
                    m.kind.as_str(),
                    m.text.as_deref(),
                    to_json(&m.media),
                    to_json(&m.extra),
                    m.provider_message_id.as_str(),
                    m.bot_id,
                )
            })
            .collect();
        // The contact is found by bot and phone (created by the statement before,
        // or there already), one index lookup a row: a join is planned for
        // the hundred rows a JSON array is guessed to hold, and PostgreSQL
        // then reads every contact.
        let sql = crate::messages::insert_messages_sql(
            backend,
            "contact_id, channel, kind, text, media, extra, provider_message_id",
            &format!(
                "(SELECT id FROM contacts WHERE bot_id = {} AND phone = {}), {}",
                crate::sql::int_at(7),
                text_at(0),
                columns(1, &[Text; 6])
            ),
            &match backend {
                Backend::Sqlite => STORE_NEW.to_string(),
                Backend::Postgres => {
                    format!("{STORE_NEW} RETURNING '{MESSAGE_PART}' AS part, {STORED_COLUMNS}")
                }
            },
        );
        script
            .push(&sql)
            .bind(to_json(&rows))
            .bind(Direction::Inbound.as_str())
            .bind(DeliveryStatus::Received.as_str())
            .bind(DeliveryStatus::Received.rank())
            .bind(self.now_ms);
        if backend == Backend::Sqlite {
            // The rows just stored, as one: SQLite numbers a statement's
            // new rows one after another, the last being the last insert.
            script.push(&format!(
                "SELECT '{MESSAGE_PART}' AS part, json_group_array(json_array({STORED_COLUMNS})) AS rows \
                 FROM messages WHERE id > last_insert_rowid() - changes() AND id <= last_insert_rowid()"
            ));
        }
    }

    /// One result per message of the batch, from the rows of
    /// [`Arriving::script`] (rows of other statements are passed over).
    /// A message not stored was there before: what it was is read, a round
    /// trip only redeliveries cost. The contacts' last-seen times, service
    /// windows and profile names are written by `closing`, with the commit:
    /// nothing in the batch reads them but the name, which the runtime
    /// takes from the message.
    pub(crate) async fn stored(
        &self,
        conn: &mut sqlx::AnyConnection,
        closing: &mut Script,
        rows: &[sqlx::any::AnyRow],
    ) -> Result<Vec<Ingested>, StoreError> {
        let mut stored: HashMap<Key, StoredRow> = HashMap::with_capacity(self.unique.len());
        for row in rows.iter().filter(|r| crate::sql::is_part(r, MESSAGE_PART)) {
            if let Ok(list) = row.try_get::<&str, _>("rows") {
                let list: Vec<(i64, i64, String, String)> = serde_json::from_str(list)
                    .map_err(|e| StoreError::Corrupt(format!("the batch's messages: {e}")))?;
                for (id, contact_id, channel, provider_message_id) in list {
                    stored.insert(
                        (channel_named(&channel)?, provider_message_id),
                        (id, contact_id, false, None),
                    );
                }
                continue;
            }
            stored.insert(
                (
                    channel_named(row.try_get("channel")?)?,
                    row.try_get("provider_message_id")?,
                ),
                (row.try_get("id")?, row.try_get("contact_id")?, false, None),
            );
        }

        // Each contact once, with the name of its latest new message and
        // how many it sent.
        let mut fresh: Vec<(i64, Option<&str>, i64)> = Vec::with_capacity(stored.len());
        let mut at: HashMap<i64, usize> = HashMap::with_capacity(stored.len());
        let mut known: HashMap<&'static str, Vec<String>> = HashMap::new();
        for &i in self.unique.iter().rev() {
            let m = &self.batch[i];
            match stored.get(&key(m)) {
                Some(&(_, contact_id, _, _)) => match at.get(&contact_id) {
                    Some(&j) => fresh[j].2 += 1,
                    None => {
                        at.insert(contact_id, fresh.len());
                        fresh.push((contact_id, m.profile_name.as_deref(), 1));
                    }
                },
                // Not inserted: it was there before.
                None => known
                    .entry(m.channel.as_str())
                    .or_default()
                    .push(m.provider_message_id.clone()),
            }
        }
        fresh.sort_unstable_by_key(|c| c.0);
        closing.refresh_contacts(&fresh, self.now_ms);

        for (channel, ids) in known {
            for chunk in crate::sql::shaped_chunks(&ids) {
                let sql = format!(
                    "SELECT m.id, m.contact_id, m.provider_message_id, r.response FROM messages m \
                     LEFT JOIN message_responses r ON r.message_id = m.id \
                     WHERE m.channel = $1 AND m.direction = 'inbound' AND m.provider_message_id IN ({})",
                    list(chunk.len(), 2)
                );
                let mut q = query(sql).bind(channel.to_string());
                for id in chunk {
                    q = q.bind(id.clone());
                }
                for row in q.fetch_all(&mut *conn).await? {
                    stored.insert(
                        (channel, row.try_get("provider_message_id")?),
                        (
                            row.try_get("id")?,
                            row.try_get("contact_id")?,
                            true,
                            row.try_get("response")?,
                        ),
                    );
                }
            }
        }

        self.batch
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let k = key(m);
                let &(message_id, contact_id, dup, ref response) = stored
                    .get(&k)
                    .ok_or_else(|| StoreError::Corrupt("ingested message vanished".into()))?;
                // A second copy within the same batch is a redelivery too.
                let duplicate = dup || self.first.get(&k) != Some(&i);
                Ok(Ingested {
                    message_id,
                    contact_id,
                    duplicate,
                    response: response.clone(),
                })
            })
            .collect()
    }
}

impl Store {
    /// Stores a batch of inbound messages in one transaction, in order, and
    /// returns one result per message. A message whose provider id is known
    /// (a redelivery, also within the batch) stores nothing new.
    pub async fn ingest(
        &self,
        batch: &[InboundMessage],
        now_ms: i64,
    ) -> Result<Vec<Ingested>, StoreError> {
        crate::retry_conflicts(|| async {
            let arriving = Arriving::new(batch, now_ms);
            let mut script = Script::new(self.backend());
            arriving.script(&mut script);
            let (mut tx, rows) = self.writer.begin_with(script, false).await?;
            let mut closing = Script::new(self.backend());
            let stored = arriving.stored(&mut tx, &mut closing, &rows).await?;
            tx.commit_with(closing).await?;
            Ok(stored)
        })
        .await
    }
}

impl Store {
    /// Applies delivery reports in one transaction. Each is kept in the
    /// status history; a message only ever moves forward.
    pub async fn apply_statuses(
        &self,
        updates: &[StatusUpdate],
        now_ms: i64,
    ) -> Result<Vec<StatusApplied>, StoreError> {
        let cleaned: Vec<(String, Option<String>)> = updates
            .iter()
            .map(|u| {
                (
                    crate::sql::text(&u.provider_message_id),
                    u.error.as_ref().map(to_json),
                )
            })
            .collect();
        // The history row is committed before the message is looked at, and
        // `send_accepted` looks at the history only after committing the id:
        // whichever comes second sees the other, so no report is lost.
        let mut tx = self.write_tx().await?;
        for (u, (pid, error)) in updates.iter().zip(&cleaned) {
            sqlx::query(
                "INSERT INTO message_statuses (channel, provider_message_id, status, status_rank, error, received_ms) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(u.channel.as_str())
            .bind(pid.clone())
            .bind(u.status.as_str())
            .bind(u.status.rank())
            .bind(error.clone())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;

        // Each update is its own statement, taken in id order so that two
        // requests touching the same messages cannot deadlock.
        let mut order: Vec<usize> = (0..updates.len()).collect();
        order.sort_by(|&a, &b| cleaned[a].0.cmp(&cleaned[b].0));
        let mut out = vec![StatusApplied::Unknown; updates.len()];
        let mut conn = self.write_conn().await?;
        for i in order {
            let (u, (pid, error)) = (&updates[i], &cleaned[i]);
            let advanced = advance_status(
                &mut conn,
                u.channel.as_str(),
                pid,
                u.status,
                error.clone(),
                now_ms,
            )
            .await?;
            out[i] = if advanced {
                StatusApplied::Advanced
            } else {
                let exists: Option<(i64,)> = sqlx::query_as(
                    "SELECT id FROM messages WHERE channel = $1 AND direction = 'outbound' AND provider_message_id = $2",
                )
                .bind(u.channel.as_str())
                .bind(pid.clone())
                .fetch_optional(&mut *conn)
                .await?;
                if exists.is_some() {
                    StatusApplied::Stale
                } else {
                    StatusApplied::Unknown
                }
            };
        }
        Ok(out)
    }
}

/// Moves a message to `status` if that is progress; true when it moved.
pub(crate) async fn advance_status(
    conn: &mut sqlx::AnyConnection,
    channel: &str,
    provider_message_id: &str,
    status: DeliveryStatus,
    error: Option<String>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE messages SET status = $1, status_rank = $2, error = COALESCE($3, error), updated_ms = $4 \
         WHERE channel = $5 AND direction = 'outbound' AND provider_message_id = $6 AND status_rank < $2",
    )
    .bind(status.as_str())
    .bind(status.rank())
    .bind(error)
    .bind(now_ms)
    .bind(channel.to_string())
    .bind(provider_message_id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}
