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
use std::time::Duration;

use sqlx::{Any, AnyConnection, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::StoreError;

/// How long a writer waits for its turn before the store reports itself
/// unavailable, as the pool's acquire timeout does.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub(crate) enum Writer {
    Pool(AnyPool),
    Single(Arc<Mutex<Single>>),
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Writer::Pool(_) => f.write_str("Writer::Pool"),
            Writer::Single(_) => f.write_str("Writer::Single"),
        }
    }
}

pub(crate) struct Single {
    /// None once the store is closed.
    conn: Option<AnyConnection>,
    /// A transaction was begun and neither committed nor rolled back yet.
    open: bool,
}

impl Writer {
    pub(crate) fn single(conn: AnyConnection) -> Writer {
        Writer::Single(Arc::new(Mutex::new(Single {
            conn: Some(conn),
            open: false,
        })))
    }

    /// A connection to write with, held until the value is dropped.
    pub(crate) async fn conn(&self) -> Result<WriteConn, StoreError> {
        match self {
            Writer::Pool(pool) => Ok(WriteConn::Pooled(pool.acquire().await?)),
            Writer::Single(single) => Ok(WriteConn::Single(lock(single).await?)),
        }
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// once (BEGIN IMMEDIATE): a deferred one that reads first cannot
    /// upgrade to writing once another process has written, and fails at
    /// once instead of waiting its turn.
    pub(crate) async fn begin(&self) -> Result<WriteTx, StoreError> {
        match self {
            Writer::Pool(pool) => Ok(WriteTx::Pooled(pool.begin().await?)),
            Writer::Single(single) => {
                let mut guard = lock(single).await?;
                guard.open = true;
                let conn = guard.conn.as_mut().ok_or(sqlx::Error::PoolClosed)?;
                conn.execute("BEGIN IMMEDIATE").await?;
                Ok(WriteTx::Single(SingleTx(Some(guard))))
            }
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Writer::Pool(pool) => pool.close().await,
            Writer::Single(single) => {
                let conn = single.lock().await.conn.take();
                if let Some(conn) = conn {
                    let _ = sqlx::Connection::close(conn).await;
                }
            }
        }
    }
}

/// Waits for the single connection, in turn; rolls back a transaction
/// its last holder left open.
async fn lock(single: &Arc<Mutex<Single>>) -> Result<OwnedMutexGuard<Single>, StoreError> {
    let mut guard = tokio::time::timeout(WAIT, single.clone().lock_owned())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?;
    let open = guard.open;
    let Some(conn) = guard.conn.as_mut() else {
        return Err(sqlx::Error::PoolClosed.into());
    };
    if open {
        // A transaction whose owner went away (an error, a cancelled
        // request) and whose rollback did not run.
        if let Err(e) = conn.execute("ROLLBACK").await {
            tracing::warn!(error = %e, "rolling back an abandoned write failed");
        }
        guard.open = false;
    }
    Ok(guard)
}

/// A write connection; derefs to the connection.
pub(crate) enum WriteConn {
    Pooled(sqlx::pool::PoolConnection<Any>),
    Single(OwnedMutexGuard<Single>),
}

impl Deref for WriteConn {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            WriteConn::Pooled(c) => c,
            // `conn` checked Some when the guard was taken; only `close`,
            // which waits for the guard, empties it.
            WriteConn::Single(g) => g.conn.as_ref().expect("an open write connection"),
        }
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            WriteConn::Pooled(c) => c,
            WriteConn::Single(g) => g.conn.as_mut().expect("an open write connection"),
        }
    }
}

/// A write transaction; derefs to its connection. Dropped uncommitted, it
/// is rolled back.
pub(crate) enum WriteTx {
    Pooled(Transaction<'static, Any>),
    Single(SingleTx),
}

/// The single writer's guard while a transaction is open: Some until it
/// is committed or dropped.
pub(crate) struct SingleTx(Option<OwnedMutexGuard<Single>>);

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            WriteTx::Pooled(tx) => tx.commit().await?,
            WriteTx::Single(mut tx) => {
                let mut guard = tx.0.take().expect("a transaction not yet ended");
                let conn = guard.conn.as_mut().ok_or(sqlx::Error::PoolClosed)?;
                // On failure `open` stays set: the next writer rolls back.
                conn.execute("COMMIT").await?;
                guard.open = false;
            }
        }
        Ok(())
    }
}

impl WriteTx {
    /// Runs `script` and commits: on SQLite the COMMIT travels with the
    /// script, one round trip for all.
    pub(crate) async fn commit_with(self, script: crate::script::Script) -> Result<(), StoreError> {
        match self {
            WriteTx::Pooled(mut tx) => {
                script.run(&mut tx, None).await?;
                tx.commit().await?;
            }
            WriteTx::Single(mut tx) => {
                let mut guard = tx.0.take().expect("a transaction not yet ended");
                let conn = guard.conn.as_mut().ok_or(sqlx::Error::PoolClosed)?;
                // On failure `open` stays set: the next writer rolls back.
                script.run(conn, Some("COMMIT")).await?;
                guard.open = false;
            }
        }
        Ok(())
    }
}

impl Drop for SingleTx {
    fn drop(&mut self) {
        if let Some(mut guard) = self.0.take()
            && guard.open
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            // Roll back now rather than at the next write, so that other
            // processes on the same file are not kept waiting for the lock.
            handle.spawn(async move {
                if let Some(conn) = guard.conn.as_mut()
                    && conn.execute("ROLLBACK").await.is_ok()
                {
                    guard.open = false;
                }
            });
        }
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            WriteTx::Pooled(tx) => tx,
            WriteTx::Single(tx) => {
                tx.0.as_ref()
                    .and_then(|g| g.conn.as_ref())
                    .expect("a transaction not yet ended")
            }
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            WriteTx::Pooled(tx) => tx,
            WriteTx::Single(tx) => {
                tx.0.as_mut()
                    .and_then(|g| g.conn.as_mut())
                    .expect("a transaction not yet ended")
            }
        }
    }
}
