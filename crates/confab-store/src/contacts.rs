use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::{Bind, Filter, json_col, like_containing, query, to_json};
use crate::{Store, StoreError};

/// A person a bot talks to: one per phone number and bot, across channels.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Contact {
    pub id: i64,
    pub bot_id: i64,
    pub phone: String,
    pub profile_name: Option<String>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// Opens WhatsApp's 24-hour customer service window.
    pub last_inbound_ms: Option<i64>,
    pub last_read_ms: i64,
    pub unread_count: i64,
    pub opted_out: bool,
    pub blocked: bool,
    /// A test contact of the console's simulator, not a person.
    pub test: bool,
    pub tags: Vec<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The latest message to or from the contact.
    pub last_message: Option<LastMessage>,
    /// The contact's latest flow run: its flow and status.
    pub last_run: Option<(String, String)>,
}

/// What a list of conversations shows of each one's latest message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastMessage {
    pub id: i64,
    pub direction: String,
    pub kind: String,
    pub text: Option<String>,
    pub status: String,
    pub created_ms: i64,
}

/// The order of a list of contacts, newest first either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContactOrder {
    /// By when the contact was made (its id).
    #[default]
    Created,
    /// By the contact's latest message to the bot (`last_seen_ms`): an
    /// inbox. What the bot sends does not move a contact up: a broadcast
    /// would bury those who wrote.
    Activity,
}

/// Where the next page of a list of contacts starts: after this contact,
/// last seen then (for [`ContactOrder::Activity`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContactCursor {
    pub last_seen_ms: i64,
    pub id: i64,
}

#[derive(Clone, Debug, Default)]
pub struct ContactFilter {
    /// The bot's contacts only.
    pub bot_id: Option<i64>,
    /// Matches part of the phone number or profile name, any case.
    pub search: Option<String>,
    pub tag: Option<String>,
    pub opted_out: Option<bool>,
    /// Test contacts only (`true`) or none of them (`false`).
    pub test: Option<bool>,
    pub order: ContactOrder,
    /// The contacts after this one in `order` (the next page).
    pub after: Option<ContactCursor>,
    pub limit: i64,
}

/// What an operator may change on a contact; `None` leaves a field alone.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    pub profile_name: Option<String>,
    pub opted_out: Option<bool>,
    pub blocked: Option<bool>,
    pub tags: Option<Vec<String>>,
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

const COLUMNS: &str = "c.id, c.bot_id, c.phone, c.profile_name, c.first_seen_ms, c.last_seen_ms, c.last_inbound_ms, \
     c.last_read_ms, c.opted_out, c.blocked, c.test, c.tags, c.attributes, c.created_ms, c.updated_ms, \
     c.unread_count, \
     lm.id AS lm_id, lm.direction AS lm_direction, lm.kind AS lm_kind, lm.text AS lm_text, \
     lm.status AS lm_status, lm.created_ms AS lm_created_ms, \
     (SELECT r.flow_id FROM runs r WHERE r.contact_id = c.id ORDER BY r.id DESC LIMIT 1) AS run_flow, \
     (SELECT r.status FROM runs r WHERE r.contact_id = c.id ORDER BY r.id DESC LIMIT 1) AS run_status";

/// Each contact's latest message: one step down the (contact, id) index.
const LATEST: &str =
    "LEFT JOIN messages lm ON lm.id = (SELECT MAX(m.id) FROM messages m WHERE m.contact_id = c.id)";

fn from_row(row: &AnyRow) -> Result<Contact, StoreError> {
    Ok(Contact {
        id: row.try_get("id")?,
        bot_id: row.try_get("bot_id")?,
        phone: row.try_get("phone")?,
        profile_name: row.try_get("profile_name")?,
        first_seen_ms: row.try_get("first_seen_ms")?,
        last_seen_ms: row.try_get("last_seen_ms")?,
        last_inbound_ms: row.try_get("last_inbound_ms")?,
        last_read_ms: row.try_get("last_read_ms")?,
        unread_count: row.try_get("unread_count")?,
        opted_out: row.try_get::<i64, _>("opted_out")? != 0,
        blocked: row.try_get::<i64, _>("blocked")? != 0,
        test: row.try_get::<i64, _>("test")? != 0,
        tags: json_col(row, "tags")?,
        attributes: json_col(row, "attributes")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        last_message: match row.try_get::<Option<i64>, _>("lm_id")? {
            None => None,
            Some(id) => Some(LastMessage {
                id,
                direction: row.try_get("lm_direction")?,
                kind: row.try_get("lm_kind")?,
                text: row.try_get("lm_text")?,
                status: row.try_get("lm_status")?,
                created_ms: row.try_get("lm_created_ms")?,
            }),
        },
        last_run: match (row.try_get("run_flow")?, row.try_get("run_status")?) {
            (Some(flow), Some(status)) => Some((flow, status)),
            _ => None,
        },
    })
}

impl Store {
    pub async fn contact(&self, id: i64) -> Result<Contact, StoreError> {
        let row = query(format!(
            "SELECT {COLUMNS} FROM contacts c {LATEST} WHERE c.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        from_row(&row)
    }

    /// The contact of bot `bot_id` with this phone number.
    pub async fn contact_by_phone(
        &self,
        bot_id: i64,
        phone: &str,
    ) -> Result<Option<Contact>, StoreError> {
        let row = query(format!(
            "SELECT {COLUMNS} FROM contacts c {LATEST} WHERE c.bot_id = $1 AND c.phone = $2"
        ))
        .bind(bot_id)
        .bind(phone.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Newest contacts first; pass the last id of a page as `before_id`.
    pub async fn contacts(&self, f: &ContactFilter) -> Result<Vec<Contact>, StoreError> {
        let mut filter = Filter::default();
        // Both match text as written but for the case of A-Z, the same on
        // both engines; `%` and `_` are themselves.
        let lower = |col: &str| self.backend().ascii_lower(col);
        if let Some(b) = f.bot_id {
            filter.push("c.bot_id = {}", Bind::I64(b));
        }
        if let Some(s) = &f.search {
            let pattern = like_containing(&s.to_ascii_lowercase());
            let p = filter.next_placeholder();
            filter.push(
                &format!(
                    "({} LIKE {p} ESCAPE '\\' OR {} LIKE {p} ESCAPE '\\')",
                    lower("c.phone"),
                    lower("COALESCE(c.profile_name, '')")
                ),
                Bind::Text(pattern),
            );
        }
        if let Some(tag) = &f.tag {
            // Tags are a JSON array of strings; the quoted form matches one element.
            let element = to_json(&tag.to_ascii_lowercase());
            filter.push(
                &format!("{} LIKE {{}} ESCAPE '\\'", lower("c.tags")),
                Bind::Text(like_containing(&element)),
            );
        }
        if let Some(o) = f.opted_out {
            filter.push("c.opted_out = {}", Bind::I64(o as i64));
        }
        if let Some(t) = f.test {
            filter.push("c.test = {}", Bind::I64(t as i64));
        }
        let order = match f.order {
            ContactOrder::Created => {
                if let Some(a) = f.after {
                    filter.push("c.id < {}", Bind::I64(a.id));
                }
                "c.id DESC"
            }
            ContactOrder::Activity => {
                if let Some(a) = f.after {
                    let seen = Bind::I64(a.last_seen_ms);
                    filter.push_each(
                        "(c.last_seen_ms < {} OR (c.last_seen_ms = {} AND c.id < {}))",
                        [seen.clone(), seen, Bind::I64(a.id)],
                    );
                }
                "c.last_seen_ms DESC, c.id DESC"
            }
        };
        // The page of contacts first, then each one's latest message, run
        // and unread count: however the planner judges the filter (with
        // no statistics yet, PostgreSQL judged a bot's 100,000 contacts
        // to be 4 and read the latest message of every one before sorting).
        let sql = format!(
            "SELECT {COLUMNS} FROM (SELECT * FROM contacts c{} ORDER BY {order} LIMIT {}) c \
             {LATEST} ORDER BY {order}",
            filter.where_sql(),
            f.limit
        );
        let rows = filter.bind_all(query(sql)).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn update_contact(
        &self,
        id: i64,
        patch: &ContactPatch,
        now_ms: i64,
    ) -> Result<Contact, StoreError> {
        let mut sets = vec!["updated_ms = $1".to_string()];
        let mut binds: Vec<Bind> = vec![Bind::I64(now_ms)];
        let mut add = |col: &str, b: Bind| {
            binds.push(b);
            sets.push(format!("{col} = ${}", binds.len()));
        };
        if let Some(n) = &patch.profile_name {
            add("profile_name", Bind::Text(n.clone()));
        }
        if let Some(o) = patch.opted_out {
            add("opted_out", Bind::I64(o as i64));
        }
        if let Some(b) = patch.blocked {
            add("blocked", Bind::I64(b as i64));
        }
        if let Some(t) = &patch.tags {
            add("tags", Bind::Text(to_json(t)));
        }
        if let Some(a) = &patch.attributes {
            add("attributes", Bind::Text(to_json(a)));
        }
        let sql = format!(
            "UPDATE contacts SET {} WHERE id = ${}",
            sets.join(", "),
            binds.len() + 1
        );
        let mut q = query(sql);
        for b in binds {
            q = match b {
                Bind::I64(v) => q.bind(v),
                Bind::Text(v) => q.bind(v),
            };
        }
        let done = q.bind(id).execute(&mut *self.write_conn().await?).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.contact(id).await
    }

    /// Marks every inbound message received so far as read. The unread
    /// count loses the messages this marks, not all: on PostgreSQL a
    /// message committed meanwhile is counted on the row this updates, but
    /// is not among those this statement sees.
    pub async fn mark_read(&self, id: i64, now_ms: i64) -> Result<Contact, StoreError> {
        let done = sqlx::query(
            "UPDATE contacts SET last_read_ms = $1, updated_ms = $1, \
             unread_count = unread_count - (SELECT COUNT(*) FROM messages m \
               WHERE m.contact_id = $2 AND m.direction = 'inbound' AND m.id > contacts.read_up_to_id), \
             read_up_to_id = COALESCE(\
             (SELECT MAX(m.id) FROM messages m WHERE m.contact_id = $2 AND m.direction = 'inbound'), read_up_to_id) \
             WHERE id = $2",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&mut *self.write_conn().await?)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.contact(id).await
    }
}

impl Store {
    /// The known contacts of bot `bot_id` among these phone numbers, by phone.
    pub async fn contacts_by_phones(
        &self,
        bot_id: i64,
        phones: &[&str],
    ) -> Result<std::collections::HashMap<String, Contact>, StoreError> {
        let mut out = std::collections::HashMap::with_capacity(phones.len());
        for chunk in crate::sql::shaped_chunks(phones) {
            let sql = format!(
                "SELECT {COLUMNS} FROM contacts c {LATEST} WHERE c.bot_id = $1 AND c.phone IN ({})",
                crate::sql::list(chunk.len(), 2)
            );
            let mut q = query(sql).bind(bot_id);
            for p in chunk {
                q = q.bind(p.to_string());
            }
            for row in q.fetch_all(&self.pool).await? {
                let c = from_row(&row)?;
                out.insert(c.phone.clone(), c);
            }
        }
        Ok(out)
    }
}

impl Store {
    /// The contact of bot `bot_id` with this phone number, created when
    /// new; its id.
    pub async fn ensure_contact(
        &self,
        bot_id: i64,
        phone: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        self.ensure_contact_as(bot_id, phone, now_ms, false).await
    }

    /// A test contact of the simulator with this phone number; its id. A
    /// contact there is that has had a message is left as it is.
    pub async fn ensure_test_contact(
        &self,
        bot_id: i64,
        phone: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        self.ensure_contact_as(bot_id, phone, now_ms, true).await
    }

    async fn ensure_contact_as(
        &self,
        bot_id: i64,
        phone: &str,
        now_ms: i64,
        test: bool,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write_tx().await?;
        let ids = crate::inbound::upsert_contacts(&mut tx, &[(bot_id, phone, None)], now_ms, false)
            .await?;
        let id = ids
            .get(&(bot_id, phone.to_string()))
            .copied()
            .ok_or_else(|| StoreError::Corrupt("contact upsert returned no id".into()))?;
        if test {
            sqlx::query(
                "UPDATE contacts SET test = 1 WHERE id = $1 \
                 AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.contact_id = $1)",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }
}
