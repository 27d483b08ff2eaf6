//! The SQL implementation of the tessera store, for SQLite and PostgreSQL through `sqlx::Any`.
//!
//! One [`SqlStore`] implements [`tessera_store::Store`] and every aggregate trait. Statements are
//! plain runtime queries with `$N` placeholders, which both backends accept, over a portable schema:
//! TEXT ids and JSON, BIGINT unix seconds and BIGINT 0/1 for booleans.
//!
//! SQLite allows one writer at a time, so a SQLite store keeps two pools on the same file: a
//! single-connection writer pool for every statement that writes (and every transaction, opened
//! with `BEGIN IMMEDIATE`), and a read-only reader pool for the rest. On PostgreSQL one pool serves
//! both roles.

/// The columns of `accounts a`, each named `a_…` so that a join can read them beside another
/// table's; decoded by `accounts::account_from_named_row` with `accounts::JOINED_NAMES`.
macro_rules! joined_account_columns {
    () => {
        "a.id AS a_id, a.email AS a_email, a.name AS a_name, a.domain AS a_domain, \
         a.password_hash AS a_password_hash, a.state AS a_state, a.is_admin AS a_is_admin, \
         a.totp_secret_enc AS a_totp_secret_enc, a.totp_last_step AS a_totp_last_step, \
         a.created_at AS a_created_at, a.updated_at AS a_updated_at"
    };
}

/// The condition a `credentials` row meets while it is live at `$now`, for statements that reach
/// the row through a key (its digest) and not through the live listing by account: `$t` is the
/// table's alias with its dot, or `""`; `$now` is the placeholder of the time.
///
/// `COALESCE(revoked_at, consumed_at) IS NULL` means `revoked_at IS NULL AND consumed_at IS NULL`,
/// in a form that PostgreSQL's planner neither serves from an index nor uses to prove the
/// predicate of the partial index `credentials_account_kind_live_idx`. With the plain form, on a
/// table without statistics (never analyzed: autovacuum off, or a bulk load just before) the
/// planner guesses `IS NULL` to be rare, takes that partial index for a handful of rows, and then
/// reads every live credential on every token check. This form leaves the primary key as the only
/// path; `plans.rs` checks it.
macro_rules! live_by_key {
    ($t:literal, $now:literal) => {
        concat!(
            "COALESCE(",
            $t,
            "revoked_at, ",
            $t,
            "consumed_at) IS NULL AND (",
            $t,
            "expires_at IS NULL OR ",
            $t,
            "expires_at > ",
            $now,
            ")"
        )
    };
}

/// `revoked_at IS NULL` for statements that reach `credentials` rows through their grant or
/// session, in a form no index serves: the plain form lets a planner without statistics intersect
/// the grant's few rows with every unrevoked row of `credentials_revoked_idx` (see
/// [`live_by_key!`]).
macro_rules! unrevoked_by_key {
    () => {
        "(revoked_at IS NULL) IS TRUE"
    };
}

mod accounts;
mod audit;
mod counters;
mod credentials;
mod directory;
mod error;
mod grants;
mod group_commit;
mod keys;
#[cfg(test)]
mod plans_tests;
mod server_state;
mod services;
mod sessions;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Transaction};
use tessera_store::{
    AccountStore, AuditStore, CounterStore, CredentialStore, DomainStore, GrantStore, KeyStore,
    ProjectStore, Result, ServiceStore, SessionStore, Store, StoreError,
};

use crate::error::backend;

/// The migrations for each backend; both directories hold the same file names.
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The pragmas every SQLite connection gets, the busy timeout first so that switching to WAL waits
/// for other connections instead of failing.
const SQLITE_PRAGMAS: [&str; 4] = [
    "PRAGMA busy_timeout = 5000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
];

/// How the pools are sized.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Connections in the PostgreSQL pool, or in the SQLite reader pool (the SQLite writer pool
    /// always has exactly one).
    pub max_connections: u32,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions { max_connections: 10 }
    }
}

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The SQL store; cloning it shares the pools.
#[derive(Debug, Clone)]
pub struct SqlStore {
    backend: Backend,
    /// The pool for statements that only read.
    read: AnyPool,
    /// The pool for statements that write and for transactions (one connection on SQLite).
    write: AnyPool,
    /// Credential inserts commit in groups through this queue.
    inserts: std::sync::Arc<group_commit::InsertQueue>,
}

impl SqlStore {
    /// Connects to `sqlite://PATH?mode=rwc` or `postgres://…`; the schema is not touched until
    /// [`SqlStore::migrate`].
    pub async fn connect(url: &str, opts: &ConnectOptions) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or_default();
        let max = opts.max_connections.max(1);
        match scheme {
            "sqlite" => {
                // The writer connects first so that it is the one switching the file to WAL.
                let write = sqlite_pool_options(1, false)
                    .connect(url)
                    .await
                    .map_err(backend("connect sqlite writer"))?;
                let read = sqlite_pool_options(max, true)
                    .connect(url)
                    .await
                    .map_err(backend("connect sqlite reader"))?;
                tracing::debug!(readers = max, "connected to sqlite");
                let inserts = group_commit::InsertQueue::start(write.clone(), Backend::Sqlite);
                Ok(SqlStore {
                    backend: Backend::Sqlite,
                    read,
                    write,
                    inserts: std::sync::Arc::new(inserts),
                })
            }
            "postgres" | "postgresql" => {
                let pool = postgres_pool_options(max)
                    .connect(url)
                    .await
                    .map_err(backend("connect postgres"))?;
                tracing::debug!(connections = max, "connected to postgres");
                let inserts = group_commit::InsertQueue::start(pool.clone(), Backend::Postgres);
                Ok(SqlStore {
                    backend: Backend::Postgres,
                    read: pool.clone(),
                    write: pool,
                    inserts: std::sync::Arc::new(inserts),
                })
            }
            // The URL itself is not echoed: it may carry a password.
            _ => Err(StoreError::Backend("unsupported database URL scheme".to_owned())),
        }
    }

    /// Opens the SQLite database file at `path`, creating it first when it does not exist. A new
    /// file is created readable and writable by its owner only (mode 0600 on Unix) before SQLite
    /// opens it, because SQLite gives the `-wal` and `-shm` files the mode of the database file.
    pub async fn connect_sqlite_file(path: &Path, opts: &ConnectOptions) -> Result<SqlStore> {
        create_private_file(path)?;
        SqlStore::connect(&SqlStore::sqlite_path_url(path), opts).await
    }

    /// Applies the embedded migrations of this backend that have not run yet.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.write)
            .await
            .map_err(|e| StoreError::Backend(format!("migrate: {e}")))?;
        tracing::info!(backend = self.backend(), "database schema is up to date");
        Ok(())
    }

    /// The `sqlite://` URL that opens (and creates if needed) the database file at `path`.
    /// Characters that would end or alter the path part of the URL are percent-encoded.
    pub fn sqlite_path_url(path: &Path) -> String {
        let mut encoded = String::new();
        for ch in path.to_string_lossy().chars() {
            if ch.is_ascii_control()
                || matches!(ch, ' ' | '"' | '#' | '%' | '<' | '>' | '?' | '`' | '{' | '}')
            {
                encoded.push_str(&format!("%{:02X}", u32::from(ch)));
            } else {
                encoded.push(ch);
            }
        }
        format!("sqlite://{encoded}?mode=rwc")
    }

    /// Closes the pools and waits for their connections to shut down.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// Runs a writing statement on the writer pool and returns how many rows it changed.
    async fn write_rows(&self, op: &'static str, query: AnyQuery) -> Result<u64> {
        let done = query.execute(&self.write).await.map_err(backend(op))?;
        Ok(done.rows_affected())
    }

    /// Runs an update of one row by its key and fails with `NotFound` when no row matched.
    async fn update_one(&self, op: &'static str, query: AnyQuery) -> Result<()> {
        match self.write_rows(op, query).await? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    /// Revokes one parent row (a grant, a session) and, in the same transaction, every credential
    /// that carries its id; true when this call revoked the parent.
    async fn revoke_with_credentials(
        &self,
        op: &'static str,
        parent: &'static str,
        credentials: &'static str,
        id: &str,
        now: tessera_store::Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin(op).await?;
        let done =
            sqlx::query(parent).bind(id).bind(now).execute(&mut *tx).await.map_err(backend(op))?;
        sqlx::query(credentials).bind(id).bind(now).execute(&mut *tx).await.map_err(backend(op))?;
        tx.commit().await.map_err(backend(op))?;
        Ok(done.rows_affected() == 1)
    }

    /// Opens a transaction on the writer pool (see [`begin_on`]).
    async fn begin(&self, op: &'static str) -> Result<Transaction<'static, Any>> {
        begin_on(&self.write, self.backend).await.map_err(backend(op))
    }
}

/// Opens a transaction on `pool`: `BEGIN IMMEDIATE` on SQLite, so that the write lock is taken up
/// front, and a plain `BEGIN` on PostgreSQL.
async fn begin_on(
    pool: &AnyPool,
    kind: Backend,
) -> std::result::Result<Transaction<'static, Any>, sqlx::Error> {
    match kind {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
}

/// Creates an empty file only its owner may read and write; an existing file is left as it is.
fn create_private_file(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(StoreError::Backend(format!("create the database file: {err}"))),
    }
}

/// Pool options for one SQLite pool; reader connections are made read-only. A connection to a
/// local file does not go stale, so it is not pinged before each use (a ping is one more trip to
/// the connection's worker thread, as costly as the statement itself).
fn sqlite_pool_options(max: u32, read_only: bool) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                for pragma in SQLITE_PRAGMAS {
                    sqlx::query(pragma).execute(&mut *conn).await?;
                }
                if read_only {
                    sqlx::query("PRAGMA query_only = ON").execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
}

/// How long a PostgreSQL connection may sit idle in the pool before it is pinged on its way out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Pool options for PostgreSQL. sqlx pings every connection it hands out by default: one more
/// round trip to the server per statement, which a one-statement token check pays twice over.
/// Here only a connection that sat idle for [`PING_AFTER_IDLE`] is pinged, which is where a
/// connection the server dropped (a restart, an idle timeout) is found; a connection in steady use
/// proves itself with every statement.
fn postgres_pool_options(max: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// A runtime query with its arguments bound.
type AnyQuery = sqlx::query::Query<'static, Any, sqlx::any::AnyArguments>;

/// Reads a 0/1 integer column as a boolean.
fn get_bool(row: &AnyRow, column: &'static str) -> Result<bool> {
    Ok(get::<i64>(row, column)? != 0)
}

/// Reads one column, naming the column (never the value) when it cannot be decoded.
fn get<'r, T>(row: &'r AnyRow, column: &'static str) -> Result<T>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    use sqlx::Row;
    row.try_get::<T, _>(column).map_err(|e| {
        StoreError::Backend(format!("decode column {column}: {}", error::describe(&e)))
    })
}

/// A 0/1 integer for a boolean column.
fn bool_int(value: bool) -> i64 {
    i64::from(value)
}

/// Converts a row count the database returned to `u64`, treating a negative count as zero.
fn count_u64(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await.map_err(backend("ping"))?;
        if self.backend == Backend::Sqlite {
            sqlx::query("SELECT 1").execute(&self.write).await.map_err(backend("ping writer"))?;
        }
        Ok(())
    }

    fn accounts(&self) -> &dyn AccountStore {
        self
    }

    fn domains(&self) -> &dyn DomainStore {
        self
    }

    fn projects(&self) -> &dyn ProjectStore {
        self
    }

    fn grants(&self) -> &dyn GrantStore {
        self
    }

    fn credentials(&self) -> &dyn CredentialStore {
        self
    }

    fn sessions(&self) -> &dyn SessionStore {
        self
    }

    fn keys(&self) -> &dyn KeyStore {
        self
    }

    fn audit(&self) -> &dyn AuditStore {
        self
    }

    fn services(&self) -> &dyn ServiceStore {
        self
    }

    fn counters(&self) -> &dyn CounterStore {
        self
    }

    async fn heartbeat(&self, now: tessera_store::Timestamp) -> Result<()> {
        self.write_heartbeat(now).await
    }

    async fn kek_check(&self) -> Result<Option<String>> {
        self.read_kek_check().await
    }

    async fn init_kek_check(&self, sealed: &str, now: tessera_store::Timestamp) -> Result<String> {
        self.insert_kek_check(sealed, now).await
    }
}
