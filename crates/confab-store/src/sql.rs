//! Small helpers for SQL that is built at run time (multi-row statements,
//! optional filters). Only placeholders and fixed fragments are ever
//! concatenated; values always travel as bound parameters.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Row};

use crate::{Backend, StoreError};

pub(crate) type AnyQuery = Query<'static, Any, AnyArguments>;

pub(crate) fn query(sql: String) -> AnyQuery {
    sqlx::query(AssertSqlSafe(sql))
}

/// A LIKE pattern matching `text` anywhere, its own `%`, `_` and `\` taken
/// literally; use it with `ESCAPE '\'`.
pub(crate) fn like_containing(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// `($1,$2,$3),($4,$5,$6)` for `rows` rows of `cols` values each, numbered
/// from `start`.
pub(crate) fn values(rows: usize, cols: usize, start: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    let mut n = start;
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push(',');
            }
            s.push('$');
            s.push_str(&n.to_string());
            n += 1;
        }
        s.push(')');
    }
    s
}

/// Splits rows into chunks of 32, 16, 8, ... 1 rows. Multi-row statements
/// then come in six shapes only, which the driver's prepared-statement
/// cache keeps; a new shape per batch size would be parsed every time.
pub(crate) fn shaped_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let n = if items.len() >= MAX_ROWS {
            MAX_ROWS
        } else {
            1 << items.len().ilog2()
        };
        let (head, tail) = items.split_at(n);
        items = tail;
        Some(head)
    })
}

/// Rows per multi-row statement at most. SQLite looks a bound parameter up
/// by walking the statement's list of them, so binding costs grow with the
/// square of a statement's parameters: 32 rows measured faster than 128.
pub(crate) const MAX_ROWS: usize = 32;

/// Rows handed to a statement as one parameter: a JSON array of arrays,
/// unpacked by the database. A batch is then one statement per table, of
/// one shape, whatever its size. Bound value by value, the same rows cost a
/// conversion per value in the driver, and SQLite time quadratic in the
/// placeholders of a statement (it finds each by walking a list of them).
///
/// `json_rows(backend, n)` is a `FROM` source over parameter `$n`: each row is
/// `j.value`, `j.key` its position; [`int_at`] and [`text_at`] read a column.
/// An `INSERT ... SELECT` names `WHERE true` before `ON CONFLICT`, which
/// SQLite needs to tell the upsert from a join, and `ORDER BY j.key`, so that
/// rows are written (and ids given) in the order they were passed.
///
/// Both read the rows as JSONB, parsed once, which `->>` reads as it is.
/// Read as JSON text, every `->>` parsed its row again: 8% of SQLite's
/// writer connection in a flow batch, and 13% of PostgreSQL's time.
///
/// PostgreSQL takes a set-returning function for 100 rows, and so joined
/// a batch's rows to contacts and runs by scanning and hashing the whole
/// table, every batch (in a 100,000-message run, 2,500 scans reading 9.5
/// million rows). A LIMIT of the rows' own count makes the estimate the
/// real count in a custom plan and ten in a generic one: lookups by key.
pub(crate) fn json_rows(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => format!("jsonb_each(${n}) AS j"),
        Backend::Postgres => {
            // The LIMIT is no limit (it is the number of rows) but tells
            // the planner they are few; see above.
            format!(
                "(SELECT * FROM jsonb_array_elements(CAST(${n} AS JSONB)) WITH ORDINALITY AS r(value, key) \
                 LIMIT jsonb_array_length(CAST(${n} AS JSONB))) AS j"
            )
        }
    }
}

/// Column `i` of a [`json_rows`] row, as a BIGINT.
pub(crate) fn int_at(i: usize) -> String {
    format!("CAST(j.value->>{i} AS BIGINT)")
}

/// Column `i` of a [`json_rows`] row, as TEXT (NULL stays NULL).
pub(crate) fn text_at(i: usize) -> String {
    format!("j.value->>{i}")
}

/// The type a [`json_rows`] column is read as.
#[derive(Clone, Copy)]
pub(crate) enum Col {
    Int,
    Text,
}

/// Columns `from`, `from + 1`, ... of a [`json_rows`] row, read as `types`:
/// the select list of an `INSERT ... SELECT` whose values come in order.
pub(crate) fn columns(from: usize, types: &[Col]) -> String {
    types
        .iter()
        .enumerate()
        .map(|(i, t)| match t {
            Col::Int => int_at(from + i),
            Col::Text => text_at(from + i),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `column` is one of the ids in parameter `$n`, bound as [`Ids`] makes
/// them: one parameter, whatever their number (see [`json_rows`]). On
/// PostgreSQL an array, whose length the planner sees, so that it looks
/// the rows up by index; it plans a JSON array for 100 rows and scanned
/// every run instead.
pub(crate) fn among(backend: Backend, column: &str, n: usize) -> String {
    match backend {
        Backend::Sqlite => format!("{column} IN (SELECT value FROM json_each(${n}))"),
        Backend::Postgres => format!("{column} = ANY(CAST(${n} AS BIGINT[]))"),
    }
}

/// Ids as [`among`] takes them: a JSON array, or PostgreSQL's array text.
pub(crate) fn ids_param(backend: Backend, ids: &[i64]) -> String {
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    match backend {
        Backend::Sqlite => format!("[{}]", list.join(",")),
        Backend::Postgres => format!("{{{}}}", list.join(",")),
    }
}

/// `sql` with `ids` bound in order, for an `IN (...)` list made by [`list`].
pub(crate) fn query_ids(sql: String, ids: &[i64]) -> AnyQuery {
    ids.iter().fold(query(sql), |q, id| q.bind(*id))
}

/// `$a,$b,...` for an `IN (...)` list of `count` values from `start`.
pub(crate) fn list(count: usize, start: usize) -> String {
    (start..start + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A WHERE clause built from optional conditions, numbering placeholders.
#[derive(Default)]
pub(crate) struct Filter {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

#[derive(Clone)]
pub(crate) enum Bind {
    I64(i64),
    Text(String),
}

impl Filter {
    /// Adds a condition; `{}` in `clause` stands for the next placeholder.
    pub fn push(&mut self, clause: &str, bind: Bind) {
        let n = self.binds.len() + 1;
        self.clauses.push(clause.replace("{}", &format!("${n}")));
        self.binds.push(bind);
    }

    /// A clause with several `{}`, bound in order to `binds`.
    pub fn push_each(&mut self, clause: &str, binds: impl IntoIterator<Item = Bind>) {
        let mut out = String::with_capacity(clause.len());
        let mut parts = clause.split("{}");
        out.push_str(parts.next().unwrap_or_default());
        let mut binds = binds.into_iter();
        for part in parts {
            if let Some(b) = binds.next() {
                self.binds.push(b);
            }
            out.push_str(&format!("${}", self.binds.len()));
            out.push_str(part);
        }
        self.clauses.push(out);
    }

    pub fn next_placeholder(&self) -> String {
        format!("${}", self.binds.len() + 1)
    }

    pub fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub fn bind_all(self, mut q: AnyQuery) -> AnyQuery {
        for b in self.binds {
            q = match b {
                Bind::I64(v) => q.bind(v),
                Bind::Text(v) => q.bind(v),
            };
        }
        q
    }
}

/// Text from outside without NUL characters, which PostgreSQL cannot store
/// in TEXT; SQLite gets the same so that both backends keep the same data.
pub(crate) fn text(s: &str) -> String {
    s.replace('\0', "")
}

/// Reads a JSON TEXT column into a type, naming the column if it is corrupt.
pub(crate) fn json_col<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    col: &str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(col)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn opt_json_col<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    col: &str,
) -> Result<Option<T>, StoreError> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{col}: {e}"))))
        .transpose()
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serializing our own plain data types cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Whether `row` came from the statement tagged `part` (a literal `part`
/// column), among rows of several statements sent together.
pub(crate) fn is_part(row: &AnyRow, part: &str) -> bool {
    row.try_get::<&str, _>("part").is_ok_and(|p| p == part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_read_in_order_as_their_types() {
        assert_eq!(
            columns(1, &[Col::Int, Col::Text]),
            "CAST(j.value->>1 AS BIGINT), j.value->>2"
        );
    }

    #[test]
    fn placeholders_number_in_order() {
        assert_eq!(values(2, 3, 1), "($1,$2,$3),($4,$5,$6)");
        assert_eq!(values(1, 2, 4), "($4,$5)");
        assert_eq!(list(3, 2), "$2,$3,$4");
        let mut f = Filter::default();
        f.push("a = {}", Bind::I64(1));
        f.push("b < {}", Bind::Text("x".into()));
        assert_eq!(f.where_sql(), " WHERE a = $1 AND b < $2");
        assert_eq!(f.next_placeholder(), "$3");
    }

    #[test]
    fn chunks_come_in_few_shapes() {
        let v: Vec<u32> = (0..333).collect();
        let sizes: Vec<usize> = shaped_chunks(&v).map(|c| c.len()).collect();
        assert_eq!(
            sizes,
            [32; 10].into_iter().chain([8, 4, 1]).collect::<Vec<_>>()
        );
        assert_eq!(shaped_chunks(&v).flatten().copied().collect::<Vec<_>>(), v);
        assert_eq!(shaped_chunks::<u32>(&[]).count(), 0);
    }
}
