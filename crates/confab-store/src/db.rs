use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyConnection, AnyPool, Connection, Executor, SqlSafeStr};

use crate::writer::{WriteConn, WriteTx, Writer};

use crate::StoreError;

/// The database engine behind the pool, for the few statements that differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The engine behind a connection of either pool.
    pub(crate) fn of(conn: &sqlx::AnyConnection) -> Backend {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    /// `expr` with the letters A-Z folded to a-z and nothing else, alike on
    /// both engines: SQLite's LOWER folds only those, PostgreSQL's folds
    /// every letter, so there it is spelled out.
    pub(crate) fn ascii_lower(self, expr: &str) -> String {
        match self {
            Backend::Sqlite => format!("LOWER({expr})"),
            Backend::Postgres => format!(
                "TRANSLATE({expr}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
            ),
        }
    }

    /// Row locking for job claims: PostgreSQL lets concurrent workers skip
    /// each other's rows; SQLite has a single writer and needs nothing.
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// The handle every repository function hangs off. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    /// Reads.
    pub(crate) pool: AnyPool,
    /// Writes: see [`Writer`].
    pub(crate) writer: Writer,
    backend: Backend,
    /// Where to LISTEN on PostgreSQL (see [`crate::live`]).
    pub(crate) listen_url: Option<std::sync::Arc<str>>,
}

static DRIVERS: Once = Once::new();

impl Store {
    /// Opens the database named by `url`: `sqlite://PATH`, `sqlite::memory:`
    /// or `postgres://...`. A SQLite file and its folder are created if missing.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            (Backend::Sqlite, sqlite_url(rest)?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, postgres_url(url))
        } else {
            return Err(StoreError::Open(
                "DATABASE_URL must start with sqlite: or postgres://".into(),
            ));
        };
        let options: AnyConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::Open(e.to_string()))?;
        let memory = url.contains(":memory:");
        let tcp_port = match backend {
            Backend::Postgres => postgres_tcp_port(&url),
            Backend::Sqlite => None,
        };
        let open = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(10))
                // A SQLite file does not drop connections; a ping before
                // every transaction is a round trip the lone writer waits for.
                .test_before_acquire(backend == Backend::Postgres)
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            sqlite_pragmas(conn).await?;
                        }
                        if let Some(port) = tcp_port {
                            crate::nodelay::to_port(port);
                        }
                        Ok(())
                    })
                })
                .connect_with(options.clone())
        };
        let fail = |e: sqlx::Error| StoreError::Open(e.to_string());
        let (pool, writer) = match (backend, memory) {
            // An in-memory SQLite database exists once per connection.
            (Backend::Sqlite, true) => {
                let p = open(1).await.map_err(fail)?;
                (p.clone(), Writer::pool(p, backend))
            }
            (Backend::Sqlite, false) => {
                let mut conn = AnyConnection::connect_with(&options).await.map_err(fail)?;
                sqlite_pragmas(&mut conn).await.map_err(fail)?;
                conn.execute(WAL_AUTOCHECKPOINT).await.map_err(fail)?;
                let pool = open(4).await.map_err(fail)?;
                checkpoint_in_background(pool.clone());
                (pool, Writer::single(conn))
            }
            (Backend::Postgres, _) => {
                let p = open(crate::POSTGRES_POOL).await.map_err(fail)?;
                (p.clone(), Writer::pool(p, backend))
            }
        };
        Ok(Store {
            pool,
            writer,
            backend,
            listen_url: (backend == Backend::Postgres).then(|| url.as_str().into()),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction that will write; see [`Writer::begin`].
    pub(crate) async fn write_tx(&self) -> Result<WriteTx, StoreError> {
        self.writer.begin().await
    }

    /// A connection to write with outside a transaction.
    pub(crate) async fn write_conn(&self) -> Result<WriteConn, StoreError> {
        self.writer.conn().await
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_until(i64::MAX).await
    }

    /// Applies the migrations up to `version` (numbered from 1 in order):
    /// for tests of what a migration does to the rows before it.
    #[doc(hidden)]
    pub async fn migrate_until(&self, version: i64) -> Result<(), StoreError> {
        let migrations: &[(&str, &str)] = match self.backend {
            Backend::Sqlite => &[
                (
                    "messaging",
                    include_str!("../migrations/sqlite/0001_messaging.sql"),
                ),
                (
                    "read marks",
                    include_str!("../migrations/sqlite/0002_read_marks.sql"),
                ),
                ("flows", include_str!("../migrations/sqlite/0003_flows.sql")),
                (
                    "responses",
                    include_str!("../migrations/sqlite/0004_responses.sql"),
                ),
                ("ai", include_str!("../migrations/sqlite/0005_ai.sql")),
                (
                    "run updates",
                    include_str!("../migrations/sqlite/0006_run_updates.sql"),
                ),
                (
                    "principals",
                    include_str!("../migrations/sqlite/0007_principals.sql"),
                ),
                (
                    "rejected",
                    include_str!("../migrations/sqlite/0008_rejected.sql"),
                ),
                ("audit", include_str!("../migrations/sqlite/0009_audit.sql")),
                (
                    "secrets",
                    include_str!("../migrations/sqlite/0010_secrets.sql"),
                ),
                ("bots", include_str!("../migrations/sqlite/0011_bots.sql")),
                (
                    "bot limits",
                    include_str!("../migrations/sqlite/0012_bot_limits.sql"),
                ),
                (
                    "contacts of bots",
                    include_str!("../migrations/sqlite/0013_contacts_of_bots.sql"),
                ),
                (
                    "records of bots",
                    include_str!("../migrations/sqlite/0014_records_of_bots.sql"),
                ),
                (
                    "flows of bots",
                    include_str!("../migrations/sqlite/0015_flows_of_bots.sql"),
                ),
                (
                    "bot ai",
                    include_str!("../migrations/sqlite/0016_bot_ai.sql"),
                ),
                (
                    "triggers",
                    include_str!("../migrations/sqlite/0017_triggers.sql"),
                ),
                (
                    "message templates",
                    include_str!("../migrations/sqlite/0018_message_templates.sql"),
                ),
                (
                    "contacts by bot",
                    include_str!("../migrations/sqlite/0019_contacts_by_bot.sql"),
                ),
                (
                    "template headers",
                    include_str!("../migrations/sqlite/0020_template_headers.sql"),
                ),
                ("live", include_str!("../migrations/sqlite/0021_live.sql")),
                (
                    "broadcasts",
                    include_str!("../migrations/sqlite/0022_broadcasts.sql"),
                ),
                ("inbox", include_str!("../migrations/sqlite/0023_inbox.sql")),
                (
                    "message days",
                    include_str!("../migrations/sqlite/0024_message_days.sql"),
                ),
                (
                    "run days",
                    include_str!("../migrations/sqlite/0025_run_days.sql"),
                ),
                (
                    "unread count",
                    include_str!("../migrations/sqlite/0026_unread_count.sql"),
                ),
            ],
            Backend::Postgres => &[
                (
                    "messaging",
                    include_str!("../migrations/postgres/0001_messaging.sql"),
                ),
                (
                    "read marks",
                    include_str!("../migrations/postgres/0002_read_marks.sql"),
                ),
                (
                    "flows",
                    include_str!("../migrations/postgres/0003_flows.sql"),
                ),
                (
                    "responses",
                    include_str!("../migrations/postgres/0004_responses.sql"),
                ),
                ("ai", include_str!("../migrations/postgres/0005_ai.sql")),
                (
                    "run updates",
                    include_str!("../migrations/postgres/0006_run_updates.sql"),
                ),
                (
                    "arrival",
                    include_str!("../migrations/postgres/0007_arrival.sql"),
                ),
                (
                    "principals",
                    include_str!("../migrations/postgres/0008_principals.sql"),
                ),
                (
                    "rejected",
                    include_str!("../migrations/postgres/0009_rejected.sql"),
                ),
                (
                    "audit",
                    include_str!("../migrations/postgres/0010_audit.sql"),
                ),
                (
                    "secrets",
                    include_str!("../migrations/postgres/0011_secrets.sql"),
                ),
                ("bots", include_str!("../migrations/postgres/0012_bots.sql")),
                (
                    "bot limits",
                    include_str!("../migrations/postgres/0013_bot_limits.sql"),
                ),
                (
                    "contacts of bots",
                    include_str!("../migrations/postgres/0014_contacts_of_bots.sql"),
                ),
                (
                    "records of bots",
                    include_str!("../migrations/postgres/0015_records_of_bots.sql"),
                ),
                (
                    "flows of bots",
                    include_str!("../migrations/postgres/0016_flows_of_bots.sql"),
                ),
                (
                    "bot ai",
                    include_str!("../migrations/postgres/0017_bot_ai.sql"),
                ),
                (
                    "triggers",
                    include_str!("../migrations/postgres/0018_triggers.sql"),
                ),
                (
                    "message templates",
                    include_str!("../migrations/postgres/0019_message_templates.sql"),
                ),
                (
                    "contacts by bot",
                    include_str!("../migrations/postgres/0020_contacts_by_bot.sql"),
                ),
                (
                    "template headers",
                    include_str!("../migrations/postgres/0021_template_headers.sql"),
                ),
                ("live", include_str!("../migrations/postgres/0022_live.sql")),
                (
                    "broadcasts",
                    include_str!("../migrations/postgres/0023_broadcasts.sql"),
                ),
                (
                    "inbox",
                    include_str!("../migrations/postgres/0024_inbox.sql"),
                ),
                (
                    "message days",
                    include_str!("../migrations/postgres/0025_message_days.sql"),
                ),
                (
                    "run days",
                    include_str!("../migrations/postgres/0026_run_days.sql"),
                ),
                (
                    "unread count",
                    include_str!("../migrations/postgres/0027_unread_count.sql"),
                ),
            ],
        };
        let migrator = Migrator::with_migrations(
            migrations
                .iter()
                .enumerate()
                .take_while(|(i, _)| (*i as i64) < version)
                .map(|(i, (name, sql))| {
                    Migration::new(
                        i as i64 + 1,
                        (*name).into(),
                        MigrationType::Simple,
                        sql.into_sql_str(),
                        // A migration that must manage its own transaction
                        // (SQLite's foreign keys can only be switched
                        // outside one) says so on its first line.
                        sql.starts_with("-- no-transaction"),
                    )
                })
                .collect(),
        );
        migrator.run(&mut *self.write_conn().await?).await?;
        Ok(())
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    pub async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.0))
    }

    /// Stores `value` under `key` unless a value is there already, and
    /// returns the one that is: replicas starting together agree on one.
    pub async fn get_or_init_setting(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *self.write_conn().await?)
        .await?;
        self.get_setting(key)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("setting {key} vanished")))
    }
}

/// WAL lets readers run beside the writer. FULL syncs the log at every
/// commit, so an acknowledged webhook survives a power cut too; group
/// commit makes each fsync count for many messages. Reads go through a
/// memory map of the file (up to SQLite's 2 GiB): a scan takes its pages
/// from the OS's cache without a system call each, which made a filter
/// over 100,000 records 55 ms instead of 65-300 ms (each connection's own
/// cache holds 2 MiB); the mapped pages are the OS's to drop, not the
/// process's heap.
async fn sqlite_pragmas(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    conn.execute(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; PRAGMA mmap_size=2147418112;",
    )
    .await?;
    Ok(())
}

/// How often a SQLite database's WAL is copied back into its file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

/// The WAL's length, in frames (pages), at which the writer checkpoints
/// it itself: 4,000 (16 MiB), where SQLite's default is 1,000.
const WAL_AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint=4000";

/// Copies SQLite's WAL back into the database file on a reading
/// connection, off the writer's path, until the pool closes.
///
/// A checkpoint made by the writer runs inside the COMMIT that crosses
/// the threshold, and every message of that batch waits for it: at
/// 1,000 messages/s one flow batch in a hundred did. The writer still
/// checkpoints when the WAL reaches 4,000 frames ([`WAL_AUTOCHECKPOINT`]), which
/// lets the WAL start over from its beginning (a checkpoint made beside
/// a writer rarely catches up with it), but by then this has copied
/// most of the frames. Between the writer's checkpoints a page written
/// many times is copied a few times, not once a checkpoint.
fn checkpoint_in_background(pool: AnyPool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                break;
            }
            // PASSIVE: copies what no reader still needs, waits for no one.
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                if pool.is_closed() {
                    break;
                }
                tracing::debug!(error = %e, "a background checkpoint failed");
            }
        }
    });
}

/// The TCP port a PostgreSQL URL connects to; none for a Unix socket.
/// A PostgreSQL URL as connected to: on this machine's loopback, without
/// TLS unless the URL asks for it. sqlx's default (`sslmode=prefer`) makes
/// every new connection a TLS handshake, which over loopback protects
/// nothing and, before the socket's Nagle's algorithm can be turned off
/// (`crate::nodelay`), waits out two delayed acknowledgements: 120 ms for
/// each connection the pool opens, which the first pages after a start
/// waited for.
fn postgres_url(url: &str) -> String {
    use std::str::FromStr;
    let loopback = sqlx::postgres::PgConnectOptions::from_str(url)
        .is_ok_and(|o| matches!(o.get_host(), "127.0.0.1" | "localhost" | "::1" | "[::1]"));
    if !loopback || url.contains("sslmode=") {
        return url.to_string();
    }
    let joint = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joint}sslmode=disable")
}

fn postgres_tcp_port(url: &str) -> Option<u16> {
    use std::str::FromStr;
    let options = sqlx::postgres::PgConnectOptions::from_str(url).ok()?;
    (!options.get_host().starts_with('/')).then(|| options.get_port())
}

/// Normalises a SQLite URL so that the file is created when missing, and
/// creates its folder.
/// The file of a SQLite database URL (`sqlite://./data/confab.db`:
/// `./data/confab.db`); none for PostgreSQL or an in-memory database.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    if rest.contains(":memory:") {
        return None;
    }
    let file = sqlite_path(rest).split('?').next()?;
    (!file.is_empty()).then(|| file.into())
}

/// The path (and query) of a SQLite URL after `sqlite:`. `sqlite:///./x.db`
/// is SQLAlchemy's (and the Python seeds') way to say a path relative to
/// the working directory: `./x.db`, not `/./x.db`.
fn sqlite_path(rest: &str) -> &str {
    match rest.strip_prefix("///") {
        Some(rel) if rel.starts_with("./") || rel.starts_with("../") => rel,
        _ => rest.trim_start_matches("//"),
    }
}

fn sqlite_url(rest: &str) -> Result<String, StoreError> {
    if rest.contains(":memory:") {
        return Ok(format!("sqlite:{rest}"));
    }
    let path = sqlite_path(rest);
    let (file, query) = match path.split_once('?') {
        Some((f, q)) => (f, Some(q)),
        None => (path, None),
    };
    if file.is_empty() {
        return Err(StoreError::Open("the SQLite URL names no file".into()));
    }
    if let Some(dir) = Path::new(file).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Open(format!("cannot create {}: {e}", dir.display())))?;
    }
    let query = match query {
        Some(q) if q.contains("mode=") => q.to_string(),
        Some(q) => format!("{q}&mode=rwc"),
        None => "mode=rwc".to_string(),
    };
    Ok(format!("sqlite://{file}?{query}"))
}

const TABLES: [&str; 26] = [
    "contacts",
    "messages",
    "message_statuses",
    "jobs",
    "users",
    "api_keys",
    "settings",
    "flow_versions",
    "flows",
    "runs",
    "run_events",
    "records",
    "media",
    "ai_calls",
    "rate_windows",
    "rejected_inbound",
    "audit_log",
    "secrets",
    "triggers",
    "trigger_firings",
    "schedule_firings",
    "message_templates",
    "live_changes",
    "broadcasts",
    "message_days",
    "run_days",
];

impl Store {
    /// Creates an empty database for one test on this PostgreSQL server
    /// and returns its name. A test cannot drop the database it is still
    /// connected to as it ends, so test databases made more than an hour
    /// ago (by earlier runs) are dropped here instead.
    pub async fn create_test_database(&self) -> Result<String, StoreError> {
        const PREFIX: &str = "confab_t_";
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let names: Vec<(String,)> = sqlx::query_as(
            "SELECT CAST(datname AS TEXT) FROM pg_database WHERE datname LIKE 'confab\\_t\\_%'",
        )
        .fetch_all(&self.pool)
        .await?;
        for (name,) in names {
            let made = name
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse::<u64>().ok());
            let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if plain && made.is_none_or(|t| t + 3600 < now) {
                // Another run may be dropping it too, or still using it.
                let _ = crate::sql::query(format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&self.pool)
                    .await;
            }
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{PREFIX}{now}_{}", &id[..12]);
        crate::sql::query(format!("CREATE DATABASE {name}"))
            .execute(&self.pool)
            .await?;
        Ok(name)
    }

    /// The number of rows in one of Confab's tables.
    pub async fn count_rows(&self, table: &str) -> Result<i64, StoreError> {
        if !TABLES.contains(&table) {
            return Err(StoreError::NotFound);
        }
        let (n,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&self.pool)
                .await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_on_the_loopback_is_reached_without_tls_unless_asked() {
        assert_eq!(
            postgres_url("postgres://root@127.0.0.1:5432/test"),
            "postgres://root@127.0.0.1:5432/test?sslmode=disable"
        );
        assert_eq!(
            postgres_url("postgres://u:p@localhost/db?application_name=x"),
            "postgres://u:p@localhost/db?application_name=x&sslmode=disable"
        );
        for kept in [
            "postgres://root@127.0.0.1:5432/test?sslmode=require",
            "postgres://u@db.example.com:5432/confab",
            "postgres://u@10.0.0.5/confab",
        ] {
            assert_eq!(postgres_url(kept), kept);
        }
    }

    /// What is written reaches the database file itself, not only the
    /// WAL, long before the writer's own checkpoint would copy it.
    #[tokio::test]
    async fn the_wal_is_copied_into_the_database_file_in_the_background() {
        let dir = std::env::temp_dir().join("confab-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("checkpoint-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store.get_or_init_setting("probe", "written").await.unwrap();
        // An immutable connection reads the database file and ignores the WAL.
        let file_only = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .immutable(true);
        // The task runs every 50 ms; a busy machine may delay it, so up to 5 s.
        let mut found = None;
        for _ in 0..250 {
            let mut conn = sqlx::SqliteConnection::connect_with(&file_only)
                .await
                .unwrap();
            found =
                sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = 'probe'")
                    .fetch_optional(&mut conn)
                    .await
                    .ok()
                    .flatten();
            let _ = conn.close().await;
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        store.close().await;
        let _ = std::fs::remove_file(&path);
        assert_eq!(found.as_deref(), Some("written"));
    }

    #[test]
    fn sqlite_urls_create_the_file() {
        assert_eq!(
            sqlite_url("///tmp/confab-url-test/x.db").unwrap(),
            "sqlite:///tmp/confab-url-test/x.db?mode=rwc"
        );
        assert_eq!(sqlite_url("::memory:").unwrap(), "sqlite:::memory:");
        // SQLAlchemy's relative form, as the Python seeds write it.
        assert_eq!(sqlite_path("///./data/x.db"), "./data/x.db");
        assert_eq!(sqlite_path("///../x.db"), "../x.db");
        assert_eq!(sqlite_path("///var/x.db"), "/var/x.db");
        assert_eq!(sqlite_path("//data/x.db"), "data/x.db");
        assert_eq!(
            sqlite_url("///tmp/a.db?mode=ro").unwrap(),
            "sqlite:///tmp/a.db?mode=ro"
        );
        assert!(sqlite_url("//").is_err());
    }
}
