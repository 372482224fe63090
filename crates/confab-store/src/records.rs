//! Collection records: JSON documents filtered by field. The caller checks
//! records against their collection; field names reaching SQL are the
//! collection's own (lowercase letters, digits, underscores).

use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::script::Script;
use crate::sql::Col::{Int, Text};
use crate::sql::{AnyQuery, columns, int_at, json_rows, query, to_json};
use crate::{Backend, Store, StoreError, Tx};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    pub id: i64,
    /// The bot whose collection holds it.
    pub bot_id: i64,
    pub collection: String,
    pub contact_id: Option<i64>,
    pub data: Map<String, Value>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Which records to list.
#[derive(Clone, Debug, Default)]
pub struct RecordFilter {
    /// The bot whose records these are (0, the default value, has none).
    pub bot_id: i64,
    /// Field equals value (compared as text, as JSON writes it).
    pub fields: Vec<(String, Value)>,
    pub contact_id: Option<i64>,
    /// Records with an id below this one (the next page, newest first).
    pub before_id: Option<i64>,
    pub limit: i64,
}

const RECORD_COLUMNS: &str = "id, bot_id, collection, contact_id, data, created_ms, updated_ms";

fn from_row(r: &AnyRow) -> Result<Record, StoreError> {
    Ok(Record {
        id: r.try_get("id")?,
        bot_id: r.try_get("bot_id")?,
        collection: r.try_get("collection")?,
        contact_id: r.try_get("contact_id")?,
        data: crate::sql::json_col(r, "data")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A field's value as text, the same on both backends: strings as they are,
/// numbers and booleans as JSON writes them.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// SQL giving field `$n` of `data` as text; the dialect seam for JSON.
fn field_sql(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => format!(
            "(CASE json_type(data, ${n}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(json_extract(data, ${n}) AS TEXT) END)"
        ),
        Backend::Postgres => format!("(CAST(data AS jsonb) ->> ${n})"),
    }
}

fn field_param(backend: Backend, name: &str) -> String {
    match backend {
        Backend::Sqlite => format!("$.{name}"),
        Backend::Postgres => name.to_string(),
    }
}

fn select(backend: Backend, collection: &str, f: &RecordFilter) -> Result<AnyQuery, StoreError> {
    // The bot is bound as text (every bind here is); the column compares
    // as a number.
    let mut clauses = vec![
        "collection = $1".to_string(),
        "bot_id = CAST($2 AS BIGINT)".to_string(),
    ];
    let mut binds: Vec<Option<String>> =
        vec![Some(collection.to_string()), Some(f.bot_id.to_string())];
    for (name, value) in &f.fields {
        if !is_field_name(name) {
            return Err(StoreError::NotFound);
        }
        binds.push(Some(field_param(backend, name)));
        let field = field_sql(backend, binds.len());
        match text_of(value) {
            Some(t) => {
                // What JSON writes as it is is in the record's text: a
                // plain search there passes over most records before any
                // is read as JSON.
                if !t.is_empty() && to_json(&t) == format!("\"{t}\"") {
                    binds.push(Some(t.clone()));
                    clauses.push(match backend {
                        Backend::Sqlite => format!("instr(data, ${}) > 0", binds.len()),
                        Backend::Postgres => format!("strpos(data, ${}) > 0", binds.len()),
                    });
                }
                binds.push(Some(t));
                clauses.push(format!("{field} = ${}", binds.len()));
            }
            None => clauses.push(format!("{field} IS NULL")),
        }
    }
    let mut sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE {}",
        clauses.join(" AND ")
    );
    if f.contact_id.is_some() {
        sql.push_str(&format!(" AND contact_id = ${}", binds.len() + 1));
    }
    if f.before_id.is_some() {
        sql.push_str(&format!(
            " AND id < ${}",
            binds.len() + 1 + usize::from(f.contact_id.is_some())
        ));
    }
    sql.push_str(&format!(
        " ORDER BY id DESC LIMIT {}",
        f.limit.clamp(1, 10_000)
    ));
    let mut q = query(sql);
    for b in binds {
        q = q.bind(b);
    }
    if let Some(c) = f.contact_id {
        q = q.bind(c);
    }
    if let Some(b) = f.before_id {
        q = q.bind(b);
    }
    Ok(q)
}

/// Records a transaction has saved but not yet written. Flows save records
/// as they step; each written on its own is a round trip made while the
/// transaction holds its contacts. Staged, they are written together: before
/// the transaction next reads or changes records, or at commit.
#[derive(Default)]
pub(crate) struct Staged {
    records: Vec<Record>,
}

impl Tx {
    /// Saves a record in this transaction and returns it with its id; see
    /// [`Staged`].
    pub async fn insert_record(
        &mut self,
        bot_id: i64,
        collection: &str,
        contact_id: Option<i64>,
        data: &Map<String, Value>,
        now_ms: i64,
    ) -> Result<Record, StoreError> {
        let id = self
            .ids
            .next(&mut self.inner, self.backend, crate::ids::Table::Records)
            .await?;
        let record = Record {
            id,
            bot_id,
            collection: collection.to_string(),
            contact_id,
            data: data.clone(),
            created_ms: now_ms,
            updated_ms: now_ms,
        };
        self.staged.records.push(record.clone());
        Ok(record)
    }

    /// Moves the staged records into `script`, as one statement.
    pub(crate) fn stage_records_into(&mut self, script: &mut Script) {
        if self.staged.records.is_empty() {
            return;
        }
        let rows: Vec<_> = self
            .staged
            .records
            .drain(..)
            .map(|r| {
                (
                    r.id,
                    r.collection,
                    r.contact_id,
                    crate::sql::to_json(&r.data),
                    r.created_ms,
                    r.bot_id,
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO records (id, collection, contact_id, data, created_ms, updated_ms, bot_id) \
             SELECT {}, {}, {} FROM {} WHERE true ORDER BY j.key",
            columns(0, &[Int, Text, Int, Text, Int]),
            int_at(4),
            int_at(5),
            json_rows(self.backend, 1)
        );
        script.push(&sql).bind(crate::sql::to_json(&rows));
    }

    /// Writes the staged records now.
    async fn write_staged_records(&mut self) -> Result<(), StoreError> {
        let mut script = Script::new(self.backend);
        self.stage_records_into(&mut script);
        script.run(&mut self.inner, None).await?;
        Ok(())
    }

    pub async fn find_records(
        &mut self,
        collection: &str,
        f: &RecordFilter,
    ) -> Result<Vec<Record>, StoreError> {
        self.write_staged_records().await?;
        let rows = select(self.backend, collection, f)?
            .fetch_all(&mut *self.inner)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Merges `changes` into a record of bot `bot_id`; `None` when it has
    /// no such record.
    pub async fn update_record(
        &mut self,
        bot_id: i64,
        collection: &str,
        id: i64,
        changes: &Map<String, Value>,
        now_ms: i64,
    ) -> Result<Option<Record>, StoreError> {
        self.write_staged_records().await?;
        update(
            &mut self.inner,
            (bot_id, collection, id),
            changes,
            false,
            now_ms,
        )
        .await
    }
}

async fn insert(
    conn: &mut sqlx::AnyConnection,
    (bot_id, collection): (i64, &str),
    contact_id: Option<i64>,
    data: &Map<String, Value>,
    now_ms: i64,
) -> Result<Record, StoreError> {
    let row = query(format!(
        "INSERT INTO records (collection, contact_id, data, created_ms, updated_ms, bot_id) VALUES ($1, $2, $3, $4, $4, $5) \
         RETURNING {RECORD_COLUMNS}"
    ))
    .bind(collection.to_string())
    .bind(contact_id)
    .bind(crate::sql::to_json(data))
    .bind(now_ms)
    .bind(bot_id)
    .fetch_one(conn)
    .await?;
    from_row(&row)
}

async fn update(
    conn: &mut sqlx::AnyConnection,
    (bot_id, collection, id): (i64, &str, i64),
    changes: &Map<String, Value>,
    replace: bool,
    now_ms: i64,
) -> Result<Option<Record>, StoreError> {
    let row =
        sqlx::query("SELECT data FROM records WHERE id = $1 AND collection = $2 AND bot_id = $3")
            .bind(id)
            .bind(collection.to_string())
            .bind(bot_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let mut data: Map<String, Value> = if replace {
        Map::new()
    } else {
        crate::sql::json_col(&row, "data")?
    };
    for (k, v) in changes {
        if v.is_null() {
            data.remove(k);
        } else {
            data.insert(k.clone(), v.clone());
        }
    }
    let row = query(format!(
        "UPDATE records SET data = $1, updated_ms = $2 WHERE id = $3 RETURNING {RECORD_COLUMNS}"
    ))
    .bind(crate::sql::to_json(&data))
    .bind(now_ms)
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Some(from_row(&row)?))
}

impl Store {
    pub async fn insert_record(
        &self,
        bot_id: i64,
        collection: &str,
        contact_id: Option<i64>,
        data: &Map<String, Value>,
        now_ms: i64,
    ) -> Result<Record, StoreError> {
        let mut conn = self.write_conn().await?;
        insert(&mut conn, (bot_id, collection), contact_id, data, now_ms).await
    }

    /// A record of bot `bot_id`'s collection.
    pub async fn record(
        &self,
        bot_id: i64,
        collection: &str,
        id: i64,
    ) -> Result<Record, StoreError> {
        let row = query(format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE id = $1 AND collection = $2 AND bot_id = $3"
        ))
        .bind(id)
        .bind(collection.to_string())
        .bind(bot_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        from_row(&row)
    }

    /// Newest first.
    pub async fn records(
        &self,
        collection: &str,
        f: &RecordFilter,
    ) -> Result<Vec<Record>, StoreError> {
        let rows = select(self.backend(), collection, f)?
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Changes fields (`replace`: the record becomes exactly `changes`).
    pub async fn update_record(
        &self,
        (bot_id, collection, id): (i64, &str, i64),
        changes: &Map<String, Value>,
        replace: bool,
        now_ms: i64,
    ) -> Result<Record, StoreError> {
        let mut tx = self.write_tx().await?;
        let r = update(&mut tx, (bot_id, collection, id), changes, replace, now_ms)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(r)
    }

    pub async fn delete_record(
        &self,
        bot_id: i64,
        collection: &str,
        id: i64,
    ) -> Result<(), StoreError> {
        let done =
            sqlx::query("DELETE FROM records WHERE id = $1 AND collection = $2 AND bot_id = $3")
                .bind(id)
                .bind(collection.to_string())
                .bind(bot_id)
                .execute(&mut *self.write_conn().await?)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
