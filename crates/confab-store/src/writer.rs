//! Where writes go, and the transactions that make them.
//!
//! SQLite has one writer at a time. Its writes go through one connection
//! behind a fair lock: writers queue in order and get the connection the
//! moment the previous one is done with it. Several connections would
//! contend for SQLite's write lock and sleep in its busy handler (tens of
//! milliseconds each under load), and a pool of one hands its connection
//! back through a spawned task that pings it first: a round trip every
//! transaction waited for. PostgreSQL writes through its pool.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};

use crate::StoreError;
use crate::functions::Functions;

/// How long a writer waits for its turn before the store reports itself
/// unavailable, as the pool's acquire timeout does.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub(crate) enum Writer {
    /// A pool; on PostgreSQL with the functions its scripts become.
    Pool(AnyPool, Option<Arc<Functions>>),
    Single(Arc<Single>),
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Writer::Pool(..) => f.write_str("Writer::Pool"),
            Writer::Single(_) => f.write_str("Writer::Single"),
        }
    }
}

pub(crate) struct Single {
    /// The connection; None once the store is closed.
    slot: Arc<Mutex<Option<AnyConnection>>>,
    /// A transaction was begun and neither committed nor rolled back yet.
    /// Read and written only by the holder of `slot`.
    open: AtomicBool,
    /// The connection commits without waiting for the disk (a `lazy`
    /// [`Writer::begin_with`]) until the next holder restores it.
    lazy: AtomicBool,
}

/// The single connection, held.
type Held = OwnedMappedMutexGuard<Option<AnyConnection>, AnyConnection>;

impl Writer {
    pub(crate) fn pool(pool: AnyPool, backend: crate::Backend) -> Writer {
        let functions =
            (backend == crate::Backend::Postgres).then(|| Arc::new(Functions::new(pool.clone())));
        Writer::Pool(pool, functions)
    }

    pub(crate) fn single(conn: AnyConnection) -> Writer {
        Writer::Single(Arc::new(Single {
            slot: Arc::new(Mutex::new(Some(conn))),
            open: AtomicBool::new(false),
            lazy: AtomicBool::new(false),
        }))
    }

    /// A connection to write with, held until the value is dropped.
    pub(crate) async fn conn(&self) -> Result<WriteConn, StoreError> {
        match self {
            Writer::Pool(pool, _) => Ok(WriteConn::Pooled(pool.acquire().await?)),
            Writer::Single(single) => Ok(WriteConn::Single(lock(single).await?)),
        }
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// once (BEGIN IMMEDIATE): a deferred one that reads first cannot
    /// upgrade to writing once another process has written, and fails at
    /// once instead of waiting its turn.
    pub(crate) async fn begin(&self) -> Result<WriteTx, StoreError> {
        match self {
            Writer::Pool(pool, functions) => {
                Ok(WriteTx::Pooled(pool.begin().await?, functions.clone()))
            }
            Writer::Single(single) => {
                let mut conn = lock(single).await?;
                single.open.store(true, Ordering::Relaxed);
                conn.execute("BEGIN IMMEDIATE").await?;
                Ok(WriteTx::Single(SingleTx {
                    conn,
                    single: single.clone(),
                }))
            }
        }
    }

    /// [`Writer::begin`], with `script` as the transaction's first
    /// statements: on SQLite the BEGIN travels with them, one round trip.
    /// Returns the rows they give.
    ///
    /// A `lazy` transaction's commit does not wait for the disk. The log
    /// is written in order, so the next ordinary commit makes it durable
    /// too; a crash before that loses it, as if it had never begun. Only
    /// for work that is redone when lost and that nobody outside learns of
    /// but through a later ordinary commit.
    pub(crate) async fn begin_with(
        &self,
        script: crate::script::Script,
        lazy: bool,
    ) -> Result<(WriteTx, Vec<AnyRow>), StoreError> {
        match self {
            Writer::Pool(pool, functions) => {
                let mut tx = pool.begin().await?;
                if lazy {
                    tx.execute("SET LOCAL synchronous_commit = off").await?;
                }
                let rows = script.fetch(&mut tx, None).await?;
                Ok((WriteTx::Pooled(tx, functions.clone()), rows))
            }
            Writer::Single(single) => {
                let mut conn = lock(single).await?;
                single.open.store(true, Ordering::Relaxed);
                let begin = if lazy {
                    // Set outside the transaction, where SQLite takes it;
                    // the next holder of the connection sets it back.
                    single.lazy.store(true, Ordering::Relaxed);
                    "PRAGMA synchronous=NORMAL;\nBEGIN IMMEDIATE"
                } else {
                    "BEGIN IMMEDIATE"
                };
                let rows = script.fetch(&mut conn, Some(begin)).await?;
                let tx = WriteTx::Single(SingleTx {
                    conn,
                    single: single.clone(),
                });
                Ok((tx, rows))
            }
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Writer::Pool(pool, _) => pool.close().await,
            Writer::Single(single) => {
                let conn = single.slot.lock().await.take();
                if let Some(conn) = conn {
                    let _ = sqlx::Connection::close(conn).await;
                }
            }
        }
    }
}

/// Waits for the single connection, in turn; rolls back a transaction
/// its last holder left open.
async fn lock(single: &Single) -> Result<Held, StoreError> {
    let guard = tokio::time::timeout(WAIT, single.slot.clone().lock_owned())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?;
    let mut conn =
        OwnedMutexGuard::try_map(guard, Option::as_mut).map_err(|_| sqlx::Error::PoolClosed)?;
    if single.open.swap(false, Ordering::Relaxed) {
        // A transaction whose owner went away (an error, a cancelled
        // request) and whose rollback did not run.
        if let Err(e) = conn.execute("ROLLBACK").await {
            tracing::warn!(error = %e, "rolling back an abandoned write failed");
        }
    }
    if single.lazy.swap(false, Ordering::Relaxed) {
        // Every other commit waits for the disk.
        conn.execute("PRAGMA synchronous=FULL").await?;
    }
    Ok(conn)
}

/// A write connection; derefs to the connection.
pub(crate) enum WriteConn {
    Pooled(sqlx::pool::PoolConnection<Any>),
    Single(Held),
}

impl Deref for WriteConn {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            WriteConn::Pooled(c) => c,
            WriteConn::Single(c) => c,
        }
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            WriteConn::Pooled(c) => c,
            WriteConn::Single(c) => c,
        }
    }
}

/// A write transaction; derefs to its connection. Dropped uncommitted, it
/// is rolled back.
pub(crate) enum WriteTx {
    Pooled(Transaction<'static, Any>, Option<Arc<Functions>>),
    Single(SingleTx),
}

/// The single connection while a transaction is open on it.
pub(crate) struct SingleTx {
    conn: Held,
    single: Arc<Single>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        let backend = crate::Backend::of(&self);
        self.commit_with(crate::script::Script::new(backend)).await
    }

    /// Runs `script` and commits: on SQLite the COMMIT travels with the
    /// script, one round trip for all.
    pub(crate) async fn commit_with(self, script: crate::script::Script) -> Result<(), StoreError> {
        match self {
            WriteTx::Pooled(mut tx, functions) => {
                match functions {
                    Some(f) => script.run_as_function(&mut tx, &f).await?,
                    None => script.run(&mut tx, None).await?,
                }
                tx.commit().await?;
            }
            WriteTx::Single(mut tx) => {
                // On failure `open` stays set: the transaction is rolled back.
                script.run(&mut tx.conn, Some("COMMIT")).await?;
                tx.single.open.store(false, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

impl Drop for SingleTx {
    fn drop(&mut self) {
        if self.single.open.load(Ordering::Relaxed)
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            // Roll back as soon as the connection is free rather than at
            // the next write, so that other processes on the same file are
            // not kept waiting for the lock: taking it rolls back.
            let single = self.single.clone();
            handle.spawn(async move {
                let _ = lock(&single).await;
            });
        }
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            WriteTx::Pooled(tx, _) => tx,
            WriteTx::Single(tx) => &tx.conn,
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            WriteTx::Pooled(tx, _) => tx,
            WriteTx::Single(tx) => &mut tx.conn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    async fn synchronous(conn: &mut AnyConnection) -> i64 {
        sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
            .fetch_one(conn)
            .await
            .unwrap()
    }

    /// A lazy transaction leaves the connection as it found it for the
    /// next holder: every other commit waits for the disk.
    #[tokio::test]
    async fn a_lazy_commit_does_not_make_the_next_one_lazy() {
        sqlx::any::install_default_drivers();
        let dir = std::env::temp_dir().join(format!("confab-lazy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("w.db").display());
        let mut conn = AnyConnection::connect(&url).await.unwrap();
        conn.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE t (x)")
            .await
            .unwrap();
        let writer = Writer::single(conn);
        let script = || crate::script::Script::new(crate::Backend::Sqlite);

        let (mut tx, _) = writer.begin_with(script(), true).await.unwrap();
        assert_eq!(synchronous(&mut tx).await, 1, "NORMAL within the lazy one");
        tx.execute("INSERT INTO t VALUES (1)").await.unwrap();
        tx.commit().await.unwrap();

        let (mut tx, _) = writer.begin_with(script(), false).await.unwrap();
        assert_eq!(synchronous(&mut tx).await, 2, "FULL again");
        tx.commit().await.unwrap();
        // Dropped uncommitted, a lazy one is set back too.
        drop(writer.begin_with(script(), true).await.unwrap());
        let mut conn = writer.conn().await.unwrap();
        assert_eq!(synchronous(&mut conn).await, 2);
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(n, 1);
        drop(conn);
        writer.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
