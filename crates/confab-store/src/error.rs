/// Errors of the storage layer. The server maps them to HTTP in one place.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0} already exists")]
    Conflict(String),
    /// The change breaks a rule of the data (it would leave no admin):
    /// the message says which.
    #[error("{0}")]
    Refused(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot open database: {0}")]
    Open(String),
}

impl StoreError {
    /// A unique-constraint violation, which callers turn into 409.
    pub(crate) fn from_unique(e: sqlx::Error, what: &str) -> StoreError {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return StoreError::Conflict(what.to_string());
        }
        StoreError::Database(e)
    }
}

impl StoreError {
    /// PostgreSQL broke a deadlock or a serialization conflict by aborting
    /// this transaction; running it again is safe.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(db))
            if matches!(db.code().as_deref(), Some("40P01") | Some("40001")))
    }

    /// Trying again cannot help: the statement breaks a rule of the schema
    /// (a unique key, a reference, a NOT NULL or CHECK constraint) or the
    /// data is corrupt.
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::Corrupt(_)
            | StoreError::NotFound
            | StoreError::Conflict(_)
            | StoreError::Refused(_) => true,
            StoreError::Database(sqlx::Error::Database(db)) => {
                !matches!(db.kind(), sqlx::error::ErrorKind::Other)
            }
            _ => false,
        }
    }

    /// The database is unreachable or overloaded, not the request at fault:
    /// callers answer 503 and the client may retry.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
            ) | StoreError::Open(_)
        )
    }
}
