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
//!
//! SQLite runs in WAL mode with `synchronous = NORMAL`: a commit is in the operating system's hands
//! when the statement returns, so it survives the process being killed, and it reaches the disk at
//! the next checkpoint. The writes that take access away ([`SYNCED_WRITES`]) are synced before they
//! return, so they also survive a power loss; [`ConnectOptions::sync_every_commit`] does the same
//! for every commit.

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
mod legacy;
#[cfg(test)]
mod plans_tests;
mod push;
mod push_wakeup;
mod server_state;
mod services;
mod sessions;

pub use push_wakeup::{PUSH_CHANNEL, PgWakeup};

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, SqlSafeStr as _, Transaction};
use tessera_store::{
    AccountStore, AuditStore, CounterStore, CredentialStore, DomainStore, GrantStore, KeyStore,
    LegacyStore, ProjectStore, PushStore, Result, ServiceStore, SessionStore, Store, StoreError,
};

use crate::error::backend;

/// The migrations for each backend; both directories hold the same file names.
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The pragmas every SQLite connection gets, the busy timeout first so that switching to WAL waits
/// for other connections instead of failing. The writer's `synchronous` level follows them.
const SQLITE_PRAGMAS: [&str; 4] = [
    "PRAGMA busy_timeout = 5000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
];

/// The writes that take access away (revocations, sign-outs, password changes, account disables,
/// changes to 2-step or admin rights, and to a client's secret or keys), named by the operation
/// the store runs them under; a new write of this sort is named here. On SQLite each one commits
/// with `synchronous = FULL`: the WAL is synced before the caller is answered, so an acknowledged
/// revocation survives a power loss and not only a crash. They are rare next to issuance, so the
/// extra sync costs little overall.
const SYNCED_WRITES: [&str; 14] = [
    "revoke credential",
    "revoke domain grant",
    "revoke credentials by grant",
    "revoke credentials by session",
    "revoke credentials by account",
    "revoke grant",
    "revoke session",
    "revoke all sessions of account",
    "set account state",
    "set account admin",
    "set password hash",
    "set totp",
    "update client",
    "delete client",
];

/// How the pools are sized and how SQLite syncs.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Connections in the PostgreSQL pool, or in the SQLite reader pool (the SQLite writer pool
    /// always has exactly one).
    pub max_connections: u32,
    /// SQLite only: sync every commit (`synchronous = FULL`), issued tokens and sessions included,
    /// so that nothing acknowledged is lost to a power loss. When false (the default) only the
    /// writes that take access away are synced; the rest survive a crash of the process but may be
    /// lost with the last moments before a power loss. PostgreSQL commits as the server is
    /// configured (`synchronous_commit`) either way.
    pub sync_every_commit: bool,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions { max_connections: 10, sync_every_commit: false }
    }
}

/// How the one SQLite writer connection syncs its commits.
#[derive(Debug, Default)]
struct WriterSync {
    /// Every commit is synced: the writer runs at `synchronous = FULL` from the start.
    every_commit: bool,
    /// The writer was raised to `FULL` for a synced write; it goes back to `NORMAL` when the
    /// connection is released, before anyone else can use it.
    raised: AtomicBool,
    /// How many synced writes were started at `FULL`.
    synced: AtomicU64,
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
    inserts: std::sync::Arc<group_commit::Queue<group_commit::CredentialInserts>>,
    /// Push acknowledgements commit in groups through this queue.
    acks: std::sync::Arc<group_commit::Queue<group_commit::PushAcks>>,
    /// On SQLite, how the writer syncs.
    sync: Option<Arc<WriterSync>>,
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
                let sync = Arc::new(WriterSync {
                    every_commit: opts.sync_every_commit,
                    ..WriterSync::default()
                });
                // The writer connects first so that it is the one switching the file to WAL.
                let write = sqlite_writer_options(sync.clone())
                    .connect(url)
                    .await
                    .map_err(backend("connect sqlite writer"))?;
                let read = sqlite_pool_options(max, Some("PRAGMA query_only = ON"))
                    .connect(url)
                    .await
                    .map_err(backend("connect sqlite reader"))?;
                tracing::debug!(
                    readers = max,
                    sync_every_commit = sync.every_commit,
                    "connected to sqlite"
                );
                let inserts = group_commit::Queue::start(write.clone(), Backend::Sqlite);
                let acks = group_commit::Queue::start(write.clone(), Backend::Sqlite);
                Ok(SqlStore {
                    backend: Backend::Sqlite,
                    read,
                    write,
                    inserts: std::sync::Arc::new(inserts),
                    acks: std::sync::Arc::new(acks),
                    sync: Some(sync),
                })
            }
            "postgres" | "postgresql" => {
                let pool = postgres_pool_options(max)
                    .connect(url)
                    .await
                    .map_err(backend("connect postgres"))?;
                tracing::debug!(connections = max, "connected to postgres");
                let inserts = group_commit::Queue::start(pool.clone(), Backend::Postgres);
                let acks = group_commit::Queue::start(pool.clone(), Backend::Postgres);
                Ok(SqlStore {
                    backend: Backend::Postgres,
                    read: pool.clone(),
                    write: pool,
                    inserts: std::sync::Arc::new(inserts),
                    acks: std::sync::Arc::new(acks),
                    sync: None,
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

    /// Runs a writing statement on the writer pool and returns how many rows it changed; a synced
    /// write ([`SYNCED_WRITES`]) is on disk when this returns.
    async fn write_rows(&self, op: &'static str, query: AnyQuery) -> Result<u64> {
        let done = match self.synced_writer(op).await? {
            Some(mut conn) => query.execute(&mut *conn).await,
            None => query.execute(&self.write).await,
        }
        .map_err(backend(op))?;
        Ok(done.rows_affected())
    }

    /// For a synced write on SQLite whose writer does not already sync every commit: the writer
    /// connection, raised to `synchronous = FULL` until it is released. `None` when the writer pool
    /// can be used as it is.
    async fn synced_writer(&self, op: &'static str) -> Result<Option<PoolConnection<Any>>> {
        let Some(sync) = &self.sync else { return Ok(None) };
        if sync.every_commit || !SYNCED_WRITES.contains(&op) {
            return Ok(None);
        }
        let mut conn = self.write.acquire().await.map_err(backend(op))?;
        // Marked before the pragma runs, so that even a cancelled raise is undone on release.
        sync.raised.store(true, Ordering::Release);
        sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await.map_err(backend(op))?;
        sync.synced.fetch_add(1, Ordering::Relaxed);
        Ok(Some(conn))
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

    /// Opens a transaction on the writer pool: `BEGIN IMMEDIATE` on SQLite, so that the write lock
    /// is taken up front, and a plain `BEGIN` on PostgreSQL. The commit of a synced write
    /// ([`SYNCED_WRITES`]) is on disk when it returns.
    async fn begin(&self, op: &'static str) -> Result<Transaction<'static, Any>> {
        match self.backend {
            Backend::Sqlite => match self.synced_writer(op).await? {
                Some(conn) => {
                    Transaction::begin(conn, Some("BEGIN IMMEDIATE".into_sql_str())).await
                }
                None => self.write.begin_with("BEGIN IMMEDIATE").await,
            },
            Backend::Postgres => self.write.begin().await,
        }
        .map_err(backend(op))
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

/// Pool options for one SQLite pool: every connection gets [`SQLITE_PRAGMAS`] and then `last`, if
/// any (readers are made read-only with it). A connection to a local file does not go stale, so it
/// is not pinged before each use (a ping is one more trip to the connection's worker thread, as
/// costly as the statement itself).
fn sqlite_pool_options(max: u32, last: Option<&'static str>) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                for pragma in SQLITE_PRAGMAS.iter().chain(&last) {
                    sqlx::query(*pragma).execute(&mut *conn).await?;
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

/// Pool options for the one SQLite writer connection: at `synchronous = FULL` when every commit is
/// synced; otherwise at `NORMAL`, and put back there on release whenever a synced write raised it.
fn sqlite_writer_options(sync: Arc<WriterSync>) -> AnyPoolOptions {
    let last = sync.every_commit.then_some("PRAGMA synchronous = FULL");
    sqlite_pool_options(1, last).after_release(move |conn, _meta| {
        let sync = sync.clone();
        Box::pin(async move {
            if sync.raised.swap(false, Ordering::AcqRel) {
                sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
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

    fn push(&self) -> &dyn PushStore {
        self
    }

    fn legacy(&self) -> &dyn LegacyStore {
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

#[cfg(test)]
mod tests {
    use tessera_store::testsuite::{NOW, credential, grant, is_live, seed_account, seed_session};
    use tessera_store::{AccountState, ClientRecord, CredentialKind, ProjectRecord};

    use super::*;

    async fn sqlite(dir: &Path, sync_every_commit: bool) -> SqlStore {
        let url = SqlStore::sqlite_path_url(&dir.join("sync.db"));
        let opts = ConnectOptions { sync_every_commit, ..ConnectOptions::default() };
        let store = SqlStore::connect(&url, &opts).await.expect("connect sqlite");
        store.migrate().await.expect("migrate sqlite");
        store
    }

    /// The writer's `PRAGMA synchronous`: 1 is NORMAL, 2 is FULL. Acquiring the one writer
    /// connection waits until the last user's release has run.
    async fn writer_level(store: &SqlStore) -> i64 {
        let row = sqlx::query("PRAGMA synchronous").fetch_one(&store.write).await.expect("pragma");
        sqlx::Row::try_get::<i64, _>(&row, 0).expect("level")
    }

    fn synced(store: &SqlStore) -> u64 {
        store.sync.as_ref().expect("sqlite").synced.load(Ordering::Relaxed)
    }

    /// The write just made was the `n`-th synced one, and the writer is back at NORMAL after it.
    async fn ran_synced(store: &SqlStore, n: u64, op: &str) {
        assert!(SYNCED_WRITES.contains(&op), "{op}");
        assert_eq!(synced(store), n, "{op} ran at FULL");
        assert_eq!(writer_level(store).await, 1, "the writer is back at NORMAL after {op}");
    }

    fn client(client_id: &str) -> ClientRecord {
        ClientRecord {
            client_id: client_id.to_owned(),
            project_id: "proj".to_owned(),
            kind: "web".to_owned(),
            name: "Web app".to_owned(),
            secret_digest: Some("digest-of-secret".to_owned()),
            settings: "{}".to_owned(),
            created_at: NOW,
        }
    }

    /// Every write that takes access away runs at FULL, once, and leaves the writer at NORMAL for
    /// the writes after it; the other writes never raise it.
    #[tokio::test]
    async fn writes_that_take_access_away_are_synced_and_others_are_not() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = sqlite(dir.path(), false).await;
        let s: &dyn Store = &store;
        seed_account(s, "acct").await;
        s.projects()
            .add(&ProjectRecord {
                id: "proj".to_owned(),
                name: "Project".to_owned(),
                owner_account_id: "acct".to_owned(),
                verified: false,
                created_at: NOW,
            })
            .await
            .expect("add project");
        s.projects().add_client(&client("client")).await.expect("add client");
        s.grants()
            .upsert(&grant("grant", "acct", "client", "oauth2", "email"))
            .await
            .expect("grant");
        seed_session(s, "session", "acct", NOW).await;
        let mut token = credential("token", CredentialKind::AccessToken, NOW, 3600);
        token.account_id = Some("acct".to_owned());
        s.credentials().insert(&token).await.expect("insert");
        s.credentials().touch("token", NOW + 1).await.expect("touch");
        assert_eq!((synced(&store), writer_level(&store).await), (0, 1), "issuance is not raised");

        let credentials = s.credentials();
        assert!(credentials.revoke("token", NOW).await.unwrap());
        ran_synced(&store, 1, "revoke credential").await;
        credentials.revoke_by_grant("grant", NOW).await.unwrap();
        ran_synced(&store, 2, "revoke credentials by grant").await;
        credentials.revoke_by_session("session", NOW).await.unwrap();
        ran_synced(&store, 3, "revoke credentials by session").await;
        credentials.revoke_by_account("acct", &[CredentialKind::AccessToken], NOW).await.unwrap();
        ran_synced(&store, 4, "revoke credentials by account").await;
        assert!(s.grants().revoke("grant", NOW).await.unwrap());
        ran_synced(&store, 5, "revoke grant").await;
        assert!(s.sessions().revoke("session", NOW).await.unwrap());
        ran_synced(&store, 6, "revoke session").await;
        s.sessions().revoke_all_for_account("acct", NOW).await.unwrap();
        ran_synced(&store, 7, "revoke all sessions of account").await;
        s.accounts().set_state("acct", AccountState::Disabled, NOW).await.unwrap();
        ran_synced(&store, 8, "set account state").await;
        s.accounts().set_admin("acct", true, NOW).await.unwrap();
        ran_synced(&store, 9, "set account admin").await;
        s.accounts().set_password_hash("acct", Some("hash"), NOW).await.unwrap();
        ran_synced(&store, 10, "set password hash").await;
        s.accounts().set_totp("acct", Some("sealed"), NOW).await.unwrap();
        ran_synced(&store, 11, "set totp").await;
        assert!(s.projects().update_client(&client("client")).await.unwrap());
        ran_synced(&store, 12, "update client").await;
        assert!(s.projects().delete_client("client").await.unwrap());
        ran_synced(&store, 13, "delete client").await;
        let authorization = tessera_store::DomainGrantRecord {
            id: "dg".to_owned(),
            domain: "corp.example".to_owned(),
            client_id: "client".to_owned(),
            scopes: "email".to_owned(),
            granted_by: String::new(),
            created_at: NOW,
            revoked_at: None,
        };
        s.grants().upsert_domain(&authorization).await.expect("authorize domain");
        assert!(s.grants().revoke_domain("corp.example", "client", NOW).await.unwrap());
        ran_synced(&store, 14, "revoke domain grant").await;
        assert_eq!(SYNCED_WRITES.len(), 14, "every synced write is checked above");
        s.accounts().set_name("acct", "Renamed", NOW).await.expect("set name");
        assert_eq!(synced(&store), SYNCED_WRITES.len() as u64, "other writes are not raised");
        store.close().await;
    }

    /// A burst of revocations racing a burst of issues: each revocation is synced, every issue
    /// and revocation lands, and the writer ends at NORMAL.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revocations_racing_issues_are_each_synced() {
        const N: usize = 50;
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = sqlite(dir.path(), false).await;
        for i in 0..N {
            let old = credential(&format!("old-{i}"), CredentialKind::AccessToken, NOW, 3600);
            store.credentials().insert(&old).await.expect("insert");
        }
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..N {
            let revoker = store.clone();
            tasks.spawn(async move {
                assert!(revoker.credentials().revoke(&format!("old-{i}"), NOW).await.unwrap());
            });
            let issuer = store.clone();
            tasks.spawn(async move {
                let new = credential(&format!("new-{i}"), CredentialKind::AccessToken, NOW, 3600);
                issuer.credentials().insert(&new).await.unwrap();
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.expect("task");
        }
        assert_eq!(synced(&store), N as u64);
        assert_eq!(writer_level(&store).await, 1);
        for i in 0..N {
            assert!(!is_live(&store, &format!("old-{i}"), NOW + 1).await);
            assert!(is_live(&store, &format!("new-{i}"), NOW + 1).await);
        }
        store.close().await;
    }

    /// With every commit synced the writer stays at FULL and nothing needs raising.
    #[tokio::test]
    async fn sync_every_commit_keeps_the_writer_at_full() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = sqlite(dir.path(), true).await;
        assert_eq!(writer_level(&store).await, 2);
        let token = credential("token", CredentialKind::AccessToken, NOW, 3600);
        store.credentials().insert(&token).await.expect("insert");
        assert!(store.credentials().revoke("token", NOW).await.expect("revoke"));
        assert_eq!((synced(&store), writer_level(&store).await), (0, 2));
        store.close().await;
    }
}
