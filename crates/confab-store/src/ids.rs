//! Ids given out before their rows are written. A transaction that names a
//! new row at once (a run its step's events point to, a record a flow
//! shows) can then write the row later, with the commit, instead of making
//! a round trip for each insert while it holds its contacts.

use sqlx::{AnyConnection, Row};

use crate::{Backend, StoreError};

/// Tables whose ids may be given out ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    Runs,
    Records,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Runs => "runs",
            Table::Records => "records",
        }
    }
}

/// The next ids of each table, per transaction.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    runs: Next,
    records: Next,
}

/// SQLite: the next id, one past the highest, as SQLite itself would give:
/// the transaction holds the only write lock, so nobody else takes it.
/// PostgreSQL: ids taken from the table's sequence, a block at a time,
/// lowest last; unused ones are gaps, as a rolled-back insert leaves.
#[derive(Debug, Default)]
enum Next {
    #[default]
    Unknown,
    Counter(i64),
    Block(Vec<i64>),
}

/// Ids taken from PostgreSQL's sequence at a time.
const BLOCK: i64 = 16;

impl Ids {
    fn of(&mut self, table: Table) -> &mut Next {
        match table {
            Table::Runs => &mut self.runs,
            Table::Records => &mut self.records,
        }
    }

    /// On SQLite, the highest id of `table` as read within the
    /// transaction's write lock along with something else: the next id
    /// then needs no query of its own.
    pub(crate) fn know_highest(&mut self, table: Table, highest: i64) {
        *self.of(table) = Next::Counter(highest + 1);
    }

    /// The id the next row of `table` written in this transaction gets.
    pub(crate) async fn next(
        &mut self,
        conn: &mut AnyConnection,
        backend: Backend,
        table: Table,
    ) -> Result<i64, StoreError> {
        let next = self.of(table);
        match next {
            Next::Counter(n) => {
                *n += 1;
                return Ok(*n - 1);
            }
            Next::Block(ids) => {
                if let Some(id) = ids.pop() {
                    return Ok(id);
                }
            }
            Next::Unknown => {}
        }
        match backend {
            Backend::Sqlite => {
                let sql = format!("SELECT COALESCE(MAX(id), 0) AS id FROM {}", table.name());
                let highest: i64 = crate::sql::query(sql)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("id")?;
                *next = Next::Counter(highest + 2);
                Ok(highest + 1)
            }
            Backend::Postgres => {
                let sql = format!(
                    "SELECT nextval(pg_get_serial_sequence('{}', 'id')) AS id FROM generate_series(1, $1)",
                    table.name()
                );
                let rows = crate::sql::query(sql)
                    .bind(BLOCK)
                    .fetch_all(&mut *conn)
                    .await?;
                let mut ids = rows
                    .iter()
                    .map(|r| r.try_get::<i64, _>("id"))
                    .collect::<Result<Vec<_>, _>>()?;
                ids.sort_unstable_by(|a, b| b.cmp(a));
                let first = ids.pop().ok_or(StoreError::NotFound)?;
                *next = Next::Block(ids);
                Ok(first)
            }
        }
    }
}
