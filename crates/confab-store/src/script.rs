//! Writes sent together: statements whose results nobody waits for, made in
//! one round trip. Every statement is a round trip while the transaction
//! holds the write lock (SQLite) or its contacts (PostgreSQL); a batch's last
//! writes (runs, events, replies, answers, records) need none of their own.

use sqlx::any::AnyArguments;
use sqlx::{Any, AnyConnection, Arguments, AssertSqlSafe, Encode, Type};

use confab_model::DeliveryStatus;

use crate::messages::{OutboundRow, outbound_sql, outbound_values};
use crate::sql::{int_at, json_rows_in, text_at, to_json};
use crate::{Backend, StoreError};

/// Statements and their values, numbered as one. SQLite runs them in order
/// as one multi-statement query; PostgreSQL as one statement whose earlier
/// parts are data-modifying `WITH` clauses, so the parts must write to
/// different tables and return nothing.
pub(crate) struct Script {
    backend: Backend,
    parts: Vec<String>,
    args: AnyArguments,
}

impl Script {
    pub(crate) fn new(backend: Backend) -> Script {
        Script {
            backend,
            parts: Vec::new(),
            args: AnyArguments::default(),
        }
    }

    /// Adds a statement whose placeholders count from `$1`; its values
    /// follow with [`Script::bind`], in order.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Script {
        self.parts.push(renumber(sql, self.args.len()));
        self
    }

    pub(crate) fn bind<'q, T>(&mut self, value: T) -> &mut Script
    where
        T: Encode<'q, Any> + Type<Any> + 'q,
    {
        // Encoding our own integers and strings for Any cannot fail.
        let _ = self.args.add(value);
        self
    }

    /// The whole script as one SQL text.
    fn sql(&self, then: Option<&str>) -> String {
        match self.backend {
            Backend::Sqlite => {
                let mut parts = self.parts.clone();
                parts.extend(then.map(str::to_string));
                parts.join(";\n")
            }
            Backend::Postgres => {
                let Some((last, rest)) = self.parts.split_last() else {
                    return String::new();
                };
                let with: Vec<String> = rest
                    .iter()
                    .enumerate()
                    .map(|(i, part)| format!("w{i} AS ({part})"))
                    .collect();
                if with.is_empty() {
                    last.clone()
                } else {
                    format!("WITH {} {last}", with.join(", "))
                }
            }
        }
    }

    /// Runs the script; on SQLite `then` (a statement without values, such
    /// as `COMMIT`) goes in the same round trip. Returns whether it did.
    pub(crate) async fn run(
        self,
        conn: &mut AnyConnection,
        then: Option<&str>,
    ) -> Result<bool, StoreError> {
        let joined = self.backend == Backend::Sqlite;
        if self.parts.is_empty() && !(joined && then.is_some()) {
            return Ok(false);
        }
        let sql = self.sql(then.filter(|_| joined));
        sqlx::query_with(AssertSqlSafe(sql), self.args)
            .execute(conn)
            .await?;
        Ok(joined && then.is_some())
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
            json_rows_in(self.backend, 1)
        );
        self.push(&sql).bind(to_json(&last)).bind(now_ms)
    }

    /// Appends event rows (run id, the events of one step as a JSON array) in order.
    pub(crate) fn insert_events(&mut self, events: &[(i64, String)], now_ms: i64) -> &mut Script {
        if events.is_empty() {
            return self;
        }
        let sql = format!(
            "INSERT INTO run_events (run_id, event, created_ms) SELECT {}, {}, $2 FROM {} WHERE true ORDER BY j.key",
            int_at(0),
            text_at(1),
            json_rows_in(self.backend, 1)
        );
        self.push(&sql).bind(to_json(&events)).bind(now_ms)
    }

    /// Stores replies sent in a webhook's answer, in order.
    pub(crate) fn record_replies(&mut self, replies: &[crate::Reply], now_ms: i64) -> &mut Script {
        if replies.is_empty() {
            return self;
        }
        let rows: Vec<OutboundRow> = replies
            .iter()
            .map(|r| {
                OutboundRow::new(
                    r.contact_id,
                    r.channel,
                    &r.content,
                    r.sender.as_deref(),
                    None,
                )
            })
            .collect();
        let (rows, direction, status, rank, now) =
            outbound_values(&rows, DeliveryStatus::Accepted, now_ms);
        let sql = outbound_sql(self.backend, false);
        self.push(&sql)
            .bind(rows)
            .bind(direction)
            .bind(status)
            .bind(rank)
            .bind(now)
    }

    /// Records what inbound messages were answered with (message id,
    /// answer), so that a redelivery is answered the same way.
    pub(crate) fn set_responses(&mut self, responses: &[(i64, String)]) -> &mut Script {
        if responses.is_empty() {
            return self;
        }
        let sql = format!(
            "INSERT INTO message_responses (message_id, response) SELECT {}, {} FROM {} \
             WHERE true ORDER BY j.key ON CONFLICT (message_id) DO NOTHING",
            int_at(0),
            text_at(1),
            json_rows_in(self.backend, 1)
        );
        self.push(&sql).bind(to_json(&responses))
    }
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
    fn postgres_joins_parts_as_with_clauses() {
        let mut s = Script::new(Backend::Postgres);
        s.push("UPDATE a SET x = $1").bind(1_i64);
        s.push("INSERT INTO b VALUES ($1)").bind(2_i64);
        s.push("INSERT INTO c VALUES ($1, $2)")
            .bind(3_i64)
            .bind(4_i64);
        assert_eq!(
            s.sql(None),
            "WITH w0 AS (UPDATE a SET x = $1), w1 AS (INSERT INTO b VALUES ($2)) INSERT INTO c VALUES ($3, $4)"
        );
        let mut s = Script::new(Backend::Sqlite);
        s.push("UPDATE a SET x = $1").bind(1_i64);
        s.push("INSERT INTO b VALUES ($1)").bind(2_i64);
        assert_eq!(
            s.sql(Some("COMMIT")),
            "UPDATE a SET x = $1;\nINSERT INTO b VALUES ($2);\nCOMMIT"
        );
    }
}
