//! Writes sent together: statements whose results nobody waits for. On
//! SQLite every statement is a round trip to the connection's thread while
//! the transaction holds the write lock; a batch's last writes (runs,
//! events, replies, answers, records) go in one, with the COMMIT.

use confab_model::DeliveryStatus;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::messages::{OutboundRow, outbound_sql, outbound_values};
use crate::sql::Col::{Int, Text};
use crate::sql::{columns, int_at, json_rows, query, text_at, to_json};
use crate::{Backend, StoreError};

/// PostgreSQL's SQLSTATE for a function that does not exist.
const UNDEFINED_FUNCTION: &str = "42883";

/// Statements and their values. SQLite runs them in order as one
/// multi-statement query, numbered as one; PostgreSQL, which takes one
/// statement per query when values are bound, one by one.
pub(crate) struct Script {
    backend: Backend,
    /// Each statement, placeholders counting from `$1`, and its values.
    parts: Vec<(String, Vec<Value>)>,
}

/// A value bound in a script.
pub(crate) enum Value {
    Int(i64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}

impl Script {
    pub(crate) fn new(backend: Backend) -> Script {
        Script {
            backend,
            parts: Vec::new(),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// Adds a statement whose placeholders count from `$1`; its values
    /// follow with [`Script::bind`], in order.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Script {
        self.parts.push((sql.to_string(), Vec::new()));
        self
    }

    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> &mut Script {
        if let Some((_, values)) = self.parts.last_mut() {
            values.push(value.into());
        }
        self
    }

    /// SQLite's one query: `before`, the statements renumbered as one,
    /// then `after`.
    fn joined(&self, before: Option<&str>, after: Option<&str>) -> String {
        let mut offset = 0;
        let mut sql: Vec<String> = Vec::with_capacity(self.parts.len() + 2);
        sql.extend(before.map(str::to_string));
        for (part, values) in &self.parts {
            sql.push(renumber(part, offset));
            offset += values.len();
        }
        sql.extend(after.map(str::to_string));
        sql.join(";\n")
    }

    /// Runs the script; on SQLite `then` (a statement without values, such
    /// as `COMMIT`) goes in the same round trip; elsewhere the caller runs it.
    pub(crate) async fn run(
        self,
        conn: &mut AnyConnection,
        then: Option<&str>,
    ) -> Result<(), StoreError> {
        if self.parts.is_empty() && then.is_none() {
            return Ok(());
        }
        self.send(conn, None, then, false).await.map(drop)
    }

    /// Runs the script and returns the rows its statements give, in order.
    /// On SQLite `before` and `after` (statements without values, such as
    /// `BEGIN IMMEDIATE`) go in the same round trip; elsewhere the caller
    /// has run them.
    pub(crate) async fn fetch(
        self,
        conn: &mut AnyConnection,
        before: Option<&str>,
    ) -> Result<Vec<AnyRow>, StoreError> {
        self.send(conn, before, None, true).await
    }

    /// Runs the script on PostgreSQL as one function call (see
    /// [`crate::functions`]); a script of one statement, or one that cannot
    /// be made a function, runs as [`Script::run`] does.
    pub(crate) async fn run_as_function(
        self,
        conn: &mut AnyConnection,
        functions: &crate::functions::Functions,
    ) -> Result<(), StoreError> {
        // Only a PostgreSQL pool is given functions (`Writer::Pool`).
        debug_assert!(self.backend == Backend::Postgres);
        if self.parts.len() < 2 {
            return self.run(conn, None).await;
        }
        let f = self.function();
        if !functions.ready(&f).await? {
            return self.run(conn, None).await;
        }
        let values = self.parts.into_iter().flat_map(|(_, v)| v);
        if let Err(e) = bound(query(f.call()), values).execute(conn).await {
            // Dropped since it was made: made again the next time.
            if let sqlx::Error::Database(db) = &e
                && db.code().as_deref() == Some(UNDEFINED_FUNCTION)
            {
                functions.forget(&f.name);
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// The script as a PL/pgSQL function of its values, in order, named
    /// after its statements and their values' types.
    fn function(&self) -> crate::functions::Function {
        let types: Vec<&str> = self
            .parts
            .iter()
            .flat_map(|(_, values)| values)
            .map(|v| match v {
                Value::Int(_) => "bigint",
                Value::Text(_) => "text",
            })
            .collect();
        crate::functions::Function::new(types, self.joined(None, None))
    }

    async fn send(
        self,
        conn: &mut AnyConnection,
        before: Option<&str>,
        after: Option<&str>,
        rows: bool,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let mut out = Vec::new();
        match self.backend {
            Backend::Sqlite => {
                let sql = self.joined(before, after);
                let values = self.parts.into_iter().flat_map(|(_, v)| v);
                let q = bound(query(sql), values);
                if rows {
                    out = q.fetch_all(conn).await?;
                } else {
                    q.execute(conn).await?;
                }
            }
            Backend::Postgres => {
                for (sql, values) in self.parts {
                    let q = bound(query(sql), values);
                    if rows {
                        out.extend(q.fetch_all(&mut *conn).await?);
                    } else {
                        q.execute(&mut *conn).await?;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Moves the last-seen time and the 24-hour service window of contacts
    /// who sent new messages (a redelivery does not reopen the window),
    /// counts those messages unread, and takes their latest profile name.
    /// Rows `(contact, name, new messages)` in id order.
    pub(crate) fn refresh_contacts(
        &mut self,
        contacts: &[(i64, Option<&str>, i64)],
        now_ms: i64,
    ) -> &mut Script {
        if contacts.is_empty() {
            return self;
        }
        let sql = format!(
            "UPDATE contacts SET profile_name = COALESCE(v.name, contacts.profile_name), \
             last_seen_ms = $2, last_inbound_ms = $2, updated_ms = $2, \
             unread_count = contacts.unread_count + v.n \
             FROM (SELECT {} AS id, {} AS name, {} AS n FROM {}) AS v WHERE contacts.id = v.id",
            int_at(0),
            text_at(1),
            int_at(2),
            json_rows(self.backend, 1)
        );
        self.push(&sql).bind(to_json(&contacts)).bind(now_ms)
    }

    /// Inserts runs whose ids were given ahead, in id order.
    pub(crate) fn insert_runs(
        &mut self,
        runs: &[(i64, crate::NewRun)],
        now_ms: i64,
    ) -> &mut Script {
        if runs.is_empty() {
            return self;
        }
        let mut rows: Vec<_> = runs
            .iter()
            .map(|(id, r)| {
                (
                    id,
                    r.contact_id,
                    &r.flow_id,
                    r.flow_version,
                    &r.status,
                    &r.node,
                    &r.state,
                )
            })
            .collect();
        rows.sort_unstable_by_key(|r| *r.0);
        let sql = format!(
            "INSERT INTO runs (id, contact_id, flow_id, flow_version, status, node, state, created_ms, updated_ms, bot_id) \
             SELECT {}, $2, $2, (SELECT c.bot_id FROM contacts c WHERE c.id = {}) FROM {} WHERE true ORDER BY j.key",
            columns(0, &[Int, Int, Text, Int, Text, Text, Text]),
            int_at(1),
            json_rows(self.backend, 1)
        );
        self.push(&sql).bind(to_json(&rows)).bind(now_ms)
    }

    /// Changes the state of several runs (id, status, node, state); a run
    /// named twice keeps the last.
    pub(crate) fn update_runs(
        &mut self,
        runs: &[(i64, String, Option<String>, String)],
        now_ms: i64,
    ) -> &mut Script {
        let mut last: Vec<&(i64, String, Option<String>, String)> = Vec::with_capacity(runs.len());
        for r in runs.iter().rev() {
            if !last.iter().any(|x| x.0 == r.0) {
                last.push(r);
            }
        }
        if last.is_empty() {
            return self;
        }
        // Rows in id order: concurrent writers cannot deadlock.
        last.sort_unstable_by_key(|r| r.0);
        let sql = format!(
            "UPDATE runs SET status = v.status, node = v.node, state = v.state, updated_ms = $2 \
             FROM (SELECT {} AS id, {} AS status, {} AS node, {} AS state FROM {}) AS v WHERE runs.id = v.id",
            int_at(0),
            text_at(1),
            text_at(2),
            text_at(3),
            json_rows(self.backend, 1)
        );
        self.push(&sql).bind(to_json(&last)).bind(now_ms)
    }

    /// Appends event rows (run id, the events of one step as a JSON array) in order.
    pub(crate) fn insert_events(&mut self, events: &[(i64, String)], now_ms: i64) -> &mut Script {
        if events.is_empty() {
            return self;
        }
        let sql = format!(
            "INSERT INTO run_events (run_id, event, created_ms) SELECT {}, $2 FROM {} WHERE true ORDER BY j.key",
            columns(0, &[Int, Text]),
            json_rows(self.backend, 1)
        );
        self.push(&sql).bind(to_json(&events)).bind(now_ms)
    }

    /// Stores replies sent in a webhook's answer, in order.
    pub(crate) fn record_replies(
        &mut self,
        replies: &[crate::Outgoing],
        now_ms: i64,
    ) -> &mut Script {
        if replies.is_empty() {
            return self;
        }
        let sql = outbound_sql(self.backend, false);
        self.push_messages(&sql, replies, DeliveryStatus::Accepted, now_ms)
    }

    /// Adds `sql`, an insert of [`outbound_sql`]'s shape, with `messages`
    /// and what it binds after them.
    fn push_messages(
        &mut self,
        sql: &str,
        messages: &[crate::Outgoing],
        status: DeliveryStatus,
        now_ms: i64,
    ) -> &mut Script {
        let (rows, direction, status, rank, now) =
            outbound_values(&rows_of(messages), status, now_ms);
        self.push(sql)
            .bind(rows)
            .bind(direction)
            .bind(status)
            .bind(rank)
            .bind(now)
    }

    /// Queues messages for the outbox, in order, each with its send job.
    /// Nothing waits for their ids: the jobs are made from the rows just
    /// inserted, on PostgreSQL as what the insert returns, on SQLite (whose
    /// one writer holds the lock) as the newest rows of the table.
    pub(crate) fn queue_outbound(
        &mut self,
        queued: &[crate::Outgoing],
        now_ms: i64,
    ) -> &mut Script {
        if queued.is_empty() {
            return self;
        }
        let insert = outbound_sql(self.backend, false);
        let jobs = "INSERT INTO jobs (kind, ref_id, run_at_ms, created_ms)";
        match self.backend {
            Backend::Postgres => {
                let sql = format!(
                    "WITH m AS ({insert} RETURNING id) {jobs} SELECT $6, id, $5, $5 FROM m ORDER BY id"
                );
                self.push_messages(&sql, queued, DeliveryStatus::Queued, now_ms)
                    .bind(crate::jobs::JOB_SEND);
            }
            Backend::Sqlite => {
                self.push_messages(&insert, queued, DeliveryStatus::Queued, now_ms);
                let sql = format!(
                    "{jobs} SELECT $1, id, $2, $2 FROM messages \
                     WHERE id > (SELECT MAX(id) FROM messages) - $3 ORDER BY id"
                );
                self.push(&sql)
                    .bind(crate::jobs::JOB_SEND)
                    .bind(now_ms)
                    .bind(queued.len() as i64);
            }
        }
        self
    }

    /// Records what inbound messages were answered with (message id,
    /// answer), so that a redelivery is answered the same way.
    pub(crate) fn set_responses(&mut self, responses: &[(i64, String)]) -> &mut Script {
        if responses.is_empty() {
            return self;
        }
        let sql = format!(
            "INSERT INTO message_responses (message_id, response) SELECT {} FROM {} \
             WHERE true ORDER BY j.key ON CONFLICT (message_id) DO NOTHING",
            columns(0, &[Int, Text]),
            json_rows(self.backend, 1)
        );
        self.push(&sql).bind(to_json(&responses))
    }
}

/// A batch's outgoing messages as their rows are inserted.
fn rows_of(messages: &[crate::Outgoing]) -> Vec<OutboundRow<'_>> {
    messages
        .iter()
        .map(|m| {
            OutboundRow::new(
                m.contact_id,
                m.channel,
                &m.content,
                m.sender.as_deref(),
                m.reply_to.clone(),
            )
        })
        .collect()
}

/// `q` with `values` bound, in order.
fn bound(
    mut q: crate::sql::AnyQuery,
    values: impl IntoIterator<Item = Value>,
) -> crate::sql::AnyQuery {
    for v in values {
        q = match v {
            Value::Int(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
        };
    }
    q
}

/// `sql` with each `$n` moved up by `by`.
fn renumber(sql: &str, by: usize) -> String {
    if by == 0 {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_move_up_and_nothing_else_changes() {
        assert_eq!(
            renumber("a = $1, b = $12, c = $", 3),
            "a = $4, b = $15, c = $"
        );
        assert_eq!(renumber("x = $2", 0), "x = $2");
    }

    #[test]
    fn a_postgresql_script_is_one_function_of_its_values() {
        let mut s = Script::new(Backend::Postgres);
        s.push("UPDATE a SET x = $1 WHERE y = $2")
            .bind(1_i64)
            .bind("one");
        s.push("INSERT INTO b VALUES ($1)").bind(2_i64);
        let f = s.function();
        assert!(f.name.starts_with("confab_script_"), "{}", f.name);
        assert_eq!(
            f.create(),
            format!(
                "CREATE OR REPLACE FUNCTION {}(bigint, text, bigint) RETURNS void LANGUAGE plpgsql AS $confab$\n\
                 BEGIN\nUPDATE a SET x = $1 WHERE y = $2;\nINSERT INTO b VALUES ($3);\nEND\n$confab$",
                f.name
            )
        );
        assert_eq!(f.call(), format!("SELECT {}($1,$2,$3)", f.name));
        // Other statements, or the same with values of other types, make
        // another function.
        let mut t = Script::new(Backend::Postgres);
        t.push("UPDATE a SET x = $1 WHERE y = $2")
            .bind(1_i64)
            .bind(2_i64);
        t.push("INSERT INTO b VALUES ($1)").bind(2_i64);
        assert_ne!(t.function().name, f.name);
    }

    #[test]
    fn sqlite_numbers_the_statements_as_one() {
        let mut s = Script::new(Backend::Sqlite);
        s.push("UPDATE a SET x = $1").bind(1_i64);
        s.push("INSERT INTO b VALUES ($1, $2)")
            .bind(2_i64)
            .bind("two");
        s.push("INSERT INTO c VALUES ($1)").bind(3_i64);
        assert_eq!(
            s.joined(None, Some("COMMIT")),
            "UPDATE a SET x = $1;\nINSERT INTO b VALUES ($2, $3);\nINSERT INTO c VALUES ($4);\nCOMMIT"
        );
    }
}
