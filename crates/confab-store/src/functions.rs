//! Scripts run as PostgreSQL functions.
//!
//! PostgreSQL takes one statement per query when values are bound, so a
//! script of seven statements was seven round trips, each waiting for the
//! last; at a thousand messages a second, a flow batch spent more time
//! between its statements than in them. A script becomes a PL/pgSQL
//! function named after its text, made the first time the script is run:
//! every later run is one call, and PL/pgSQL keeps the plans of its
//! statements for the connection. Functions are made outside any batch's
//! transaction, so that a batch rolled back does not take its function
//! with it; where one cannot be made (a user without the right to), the
//! script runs statement by statement as before.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::AnyPool;

use crate::StoreError;

/// The functions a store's scripts were compiled into, by name.
pub(crate) struct Functions {
    pool: AnyPool,
    made: Mutex<HashMap<String, Made>>,
}

#[derive(Clone, Copy, PartialEq)]
enum Made {
    Yes,
    /// It could not be made: the script runs statement by statement.
    Refused,
}

/// A script as a function of its values: its name, from its statements
/// and their values' types, and what makes it and calls it.
pub(crate) struct Function {
    pub(crate) name: String,
    /// The values' types, in order.
    types: Vec<&'static str>,
    /// The statements, numbered as one.
    body: String,
}

impl Function {
    pub(crate) fn new(types: Vec<&'static str>, body: String) -> Function {
        let name = format!(
            "confab_script_{:016x}",
            fingerprint(&format!("{}\n{body}", types.join(", ")))
        );
        Function { name, types, body }
    }

    /// The statement that makes it: only the first time it is needed.
    pub(crate) fn create(&self) -> String {
        format!(
            "CREATE OR REPLACE FUNCTION {}({}) RETURNS void LANGUAGE plpgsql AS $confab$\nBEGIN\n{};\nEND\n$confab$",
            self.name,
            self.types.join(", "),
            self.body
        )
    }

    /// The call that runs it, its values bound in order.
    pub(crate) fn call(&self) -> String {
        format!(
            "SELECT {}({})",
            self.name,
            crate::sql::list(self.types.len(), 1)
        )
    }
}

/// A key of PostgreSQL's two-key advisory locks (a space of its own,
/// apart from the contacts' one-key locks): functions made at once by
/// several replicas would collide.
const LOCK_CLASS: i32 = 0x636f_6e66;

impl Functions {
    pub(crate) fn new(pool: AnyPool) -> Functions {
        Functions {
            pool,
            made: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `f` exists, making it the first time; false when it cannot
    /// be made, and the script is to be run statement by statement.
    pub(crate) async fn ready(&self, f: &Function) -> Result<bool, StoreError> {
        let known = self
            .made
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&f.name)
            .copied();
        if let Some(made) = known {
            return Ok(made == Made::Yes);
        }
        let made = match self.make(f).await {
            Ok(()) => Made::Yes,
            Err(StoreError::Database(sqlx::Error::Database(e))) => {
                tracing::warn!(function = %f.name, error = %e, "a script cannot be made a function; it runs statement by statement");
                Made::Refused
            }
            Err(e) => return Err(e),
        };
        self.made
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(f.name.clone(), made);
        Ok(made == Made::Yes)
    }

    /// Forgets that `name` was made: it is made again when next needed.
    pub(crate) fn forget(&self, name: &str) {
        self.made
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    async fn make(&self, f: &Function) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(lock_key(&f.name))
            .execute(&mut *tx)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(f.create()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// FNV-1a: a name that stays the same from build to build, unlike std's
/// hasher.
fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn lock_key(name: &str) -> i32 {
    fingerprint(name) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_fixed_and_tells_texts_apart() {
        assert_eq!(fingerprint(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fingerprint("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fingerprint("UPDATE a"), fingerprint("UPDATE b"));
    }
}
