//! The SQL implementation of the tessera store, for SQLite and PostgreSQL, each on its native
//! driver (`rusqlite`; sqlx's PostgreSQL driver) behind one small query API ([`db`]).
//!
//! One [`SqlStore`] implements [`tessera_store::Store`] and every aggregate trait. Statements are
//! written once with `$N` placeholders (SQLite runs them as `?N`) over a portable schema: TEXT ids
//! and JSON, BIGINT unix seconds and BIGINT 0/1 for booleans.
//!
//! On SQLite a statement runs on the calling thread: reads on idle `query_only` connections, every
//! write through the one writer connection, whose transactions commit in groups
//! ([`db::sqlite`]). On PostgreSQL one pool serves both.
//!
//! SQLite runs in WAL mode with `synchronous = NORMAL`: a commit is in the operating system's hands
//! when the statement returns, so it survives the process being killed, and it reaches the disk at
//! the next checkpoint. The writes that take access away ([`SYNCED_WRITES`]) commit at `FULL`, so
//! they also survive a power loss; [`ConnectOptions::sync_every_commit`] does the same for every
//! commit.

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
#[cfg(test)]
mod contention_tests;
mod counters;
mod credentials;
pub mod db;
mod directory;
mod error;
mod grants;
mod group_commit;
mod keys;
mod legacy;
mod migrate;
#[cfg(test)]
mod plans_tests;
mod push;
mod push_wakeup;
mod server_state;
mod services;
mod sessions;

pub use push_wakeup::{PUSH_CHANNEL, PgWakeup};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tessera_store::{
    AccountStore, AuditStore, CounterStore, CredentialStore, DomainStore, GrantStore, KeyStore,
    LegacyStore, ProjectStore, PushStore, Result, ServiceStore, SessionStore, Store, StoreError,
};

use crate::db::{Changes, Db, Query, Role, Row, Tx, query};
use crate::error::backend;

/// The migrations for each backend; both directories hold the same file names.
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The writes that take access away (revocations, sign-outs, password changes, account disables,
/// changes to 2-step or admin rights, and to a client's secret or keys), named by the operation
/// the store runs them under; a new write of this sort is named here. On SQLite each one commits
/// with `synchronous = FULL`: the WAL is synced before the caller is answered, so an acknowledged
/// revocation survives a power loss and not only a crash. They are rare next to issuance, and
/// concurrent ones share one sync through the writer's group commit.
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
    /// Connections in the PostgreSQL pool, or idle SQLite readers kept open (SQLite has one
    /// writer connection).
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

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The SQL store; cloning it shares the connections.
#[derive(Debug, Clone)]
pub struct SqlStore {
    backend: Backend,
    /// Where statements that only read run.
    read: Db,
    /// Where statements that write and transactions run.
    write: Db,
    /// Credential inserts commit in groups through this queue.
    inserts: Arc<group_commit::Queue<group_commit::CredentialInserts>>,
    /// Push acknowledgements commit in groups through this queue.
    acks: Arc<group_commit::Queue<group_commit::PushAcks>>,
    /// Single-use inserts (an OAuth 1.0 nonce) commit in groups through this queue on PostgreSQL.
    once: Arc<group_commit::Queue<group_commit::CredentialOnce>>,
}

impl SqlStore {
    /// Connects to `sqlite://PATH?mode=rwc` (or `mode=rw`, `mode=ro`) or `postgres://…`; the
    /// schema is not touched until [`SqlStore::migrate`].
    pub async fn connect(url: &str, opts: &ConnectOptions) -> Result<SqlStore> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or_default();
        let max = opts.max_connections.max(1);
        let (backend, read, write) = match scheme {
            "sqlite" => {
                let (path, mode) = sqlite_url(url)?;
                let sqlite =
                    db::sqlite::Sqlite::open(&path, mode, max as usize, opts.sync_every_commit)
                        .map_err(backend("connect sqlite"))?;
                tracing::debug!(
                    readers = max,
                    sync_every_commit = opts.sync_every_commit,
                    "connected to sqlite"
                );
                let sqlite = Arc::new(sqlite);
                let changes = Arc::new(Changes::default());
                (
                    Backend::Sqlite,
                    Db::Sqlite(sqlite.clone(), Role::Read, changes.clone()),
                    Db::Sqlite(sqlite, Role::Write, changes),
                )
            }
            "postgres" | "postgresql" => {
                let options = url
                    .parse::<PgConnectOptions>()
                    .map_err(|e| backend("connect postgres")(e.into()))?
                    .options(POSTGRES_SESSION);
                let pool = postgres_pool_options(max)
                    .connect_with(options)
                    .await
                    .map_err(|e| backend("connect postgres")(e.into()))?;
                tracing::debug!(connections = max, "connected to postgres");
                let changes = Arc::new(Changes::default());
                (
                    Backend::Postgres,
                    Db::Postgres(pool.clone(), changes.clone()),
                    Db::Postgres(pool, changes),
                )
            }
            // The URL itself is not echoed: it may carry a password.
            _ => return Err(StoreError::Backend("unsupported database URL scheme".to_owned())),
        };
        let inserts = group_commit::Queue::start(write.clone(), backend);
        let acks = group_commit::Queue::start(write.clone(), backend);
        let once = group_commit::Queue::start(write.clone(), backend);
        Ok(SqlStore {
            backend,
            read,
            write,
            inserts: Arc::new(inserts),
            acks: Arc::new(acks),
            once: Arc::new(once),
        })
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
        match &self.write {
            Db::Sqlite(sqlite, ..) => migrate::sqlite(sqlite, &SQLITE_MIGRATIONS).await,
            Db::Postgres(pool, _) => POSTGRES_MIGRATIONS
                .run(pool)
                .await
                .map_err(|e| StoreError::Backend(format!("migrate: {e}"))),
        }?;
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

    /// Closes the connections (on SQLite after committing the writer's open group).
    pub async fn close(&self) {
        match &self.write {
            Db::Sqlite(sqlite, ..) => sqlite.close().await,
            Db::Postgres(pool, _) => pool.close().await,
        }
    }

    /// Runs a writing statement and returns how many rows it changed; a synced write
    /// ([`SYNCED_WRITES`]) is on disk when this returns.
    async fn write_rows(&self, op: &'static str, query: Query) -> Result<u64> {
        let mut tx = self.begin(op).await?;
        let done = query.execute(&mut tx).await.map_err(backend(op))?;
        tx.commit().await.map_err(backend(op))?;
        Ok(done.rows_affected())
    }

    /// Runs an update of one row by its key and fails with `NotFound` when no row matched.
    async fn update_one(&self, op: &'static str, query: Query) -> Result<()> {
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
        let done = query(parent).bind(id).bind(now).execute(&mut tx).await.map_err(backend(op))?;
        query(credentials).bind(id).bind(now).execute(&mut tx).await.map_err(backend(op))?;
        tx.commit().await.map_err(backend(op))?;
        Ok(done.rows_affected() == 1)
    }

    /// Opens a write transaction. On SQLite it is one of the writer's group commit; the commit
    /// of a synced write ([`SYNCED_WRITES`]) is on disk when it returns.
    async fn begin(&self, op: &'static str) -> Result<Tx> {
        self.write.begin(SYNCED_WRITES.contains(&op)).await.map_err(backend(op))
    }
}

/// The file and open mode of a `sqlite:` URL: `sqlite://PATH` or `sqlite:PATH`, the path
/// percent-decoded, with an optional `?mode=rwc|rw|ro` (`rwc` when absent).
fn sqlite_url(url: &str) -> Result<(PathBuf, db::sqlite::Mode)> {
    let bad = || StoreError::Backend("malformed sqlite URL".to_owned());
    let rest = url.strip_prefix("sqlite:").ok_or_else(bad)?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    let mut mode = db::sqlite::Mode::Create;
    for param in params.split('&').filter(|param| !param.is_empty()) {
        mode = match param {
            "mode=rwc" => db::sqlite::Mode::Create,
            "mode=rw" => db::sqlite::Mode::Existing,
            "mode=ro" => db::sqlite::Mode::ReadOnly,
            _ => return Err(StoreError::Backend("unsupported sqlite URL parameter".to_owned())),
        };
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = path.get(i + 1..i + 3).ok_or_else(bad)?;
            decoded.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let path = String::from_utf8(decoded).map_err(|_| bad())?;
    if path.is_empty() {
        return Err(bad());
    }
    Ok((PathBuf::from(path), mode))
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

/// Planner settings of tessera's PostgreSQL sessions, sent when each connection starts.
///
/// - `random_page_cost = 1.1`: the server's working set (credentials, push messages) is read from
///   memory, not a disk that seeks. At the default of 4 PostgreSQL read a batch of 500 credential
///   digests or push registrations (a multicast) by scanning the whole table, 2.4 times slower
///   than through the index, measured on 20,000 credentials and 42,000 messages.
/// - `max_parallel_workers_per_gather = 0`: no request is big enough to gain from workers, and
///   the scans above were run by two parallel workers each, a process started and ended per query.
/// - `jit = off`: no statement of tessera's runs long enough to repay compiling it, and the planner
///   decides to compile by its cost estimate, which on a table without statistics (autovacuum off,
///   or a table that grew since it was last analyzed) can be high: a push multicast's
///   500-registration survey, without statistics on 40,000 messages, is estimated at 155,000
///   (`jit_above_cost` is 100,000) and took 183 ms compiled against 11 ms not.
const POSTGRES_SESSION: [(&str, &str); 3] =
    [("random_page_cost", "1.1"), ("max_parallel_workers_per_gather", "0"), ("jit", "off")];

/// How long a PostgreSQL connection may sit idle in the pool before it is pinged on its way out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Pool options for PostgreSQL. sqlx pings every connection it hands out by default: one more
/// round trip to the server per statement, which a one-statement token check pays twice over.
/// Here only a connection that sat idle for [`PING_AFTER_IDLE`] is pinged, which is where a
/// connection the server dropped (a restart, an idle timeout) is found; a connection in steady use
/// proves itself with every statement.
fn postgres_pool_options(max: u32) -> PgPoolOptions {
    PgPoolOptions::new()
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

/// `(…), (…), …`: `rows` rows of `columns` placeholders for a multi-row `INSERT`; the text holds
/// no value, every value is bound. PostgreSQL gets numbered placeholders; SQLite gets anonymous
/// `?` ones, because sqlx resolved each numbered SQLite parameter through
/// `sqlite3_bind_parameter_name`, a linear walk over the statement's names: binding was quadratic,
/// and 200-row statements spent 70% of a bulk load there.
pub(crate) fn value_rows(rows: usize, columns: usize, backend: Backend) -> String {
    value_rows_from(1, rows, columns, backend)
}

/// [`value_rows`] whose first PostgreSQL placeholder is `$first`, for a statement that binds
/// other values before the rows.
pub(crate) fn value_rows_from(
    first: usize,
    rows: usize,
    columns: usize,
    backend: Backend,
) -> String {
    let mut sql = String::new();
    for row in 0..rows {
        let first = first - 1 + row * columns;
        let placeholders: Vec<String> = (1..=columns)
            .map(|i| match backend {
                Backend::Postgres => format!("${}", first + i),
                Backend::Sqlite => "?".to_owned(),
            })
            .collect();
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(&placeholders.join(", "));
        sql.push(')');
    }
    sql
}

/// Reads a 0/1 integer column as a boolean.
fn get_bool(row: &Row, column: &'static str) -> Result<bool> {
    Ok(get::<i64>(row, column)? != 0)
}

/// Reads one column, naming the column (never the value) when it cannot be decoded.
fn get<T: db::Decode>(row: &Row, column: &'static str) -> Result<T> {
    row.try_get::<T>(column).map_err(|e| {
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
        query("SELECT 1").execute(&self.read).await.map_err(backend("ping"))?;
        if self.backend == Backend::Sqlite {
            query("SELECT 1").execute(&self.write).await.map_err(backend("ping writer"))?;
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

    fn changes(&self, of: tessera_store::Answer) -> Option<u64> {
        Some(self.write.changes().count(of))
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

    /// The writer's `PRAGMA synchronous` in a new group: 1 is NORMAL, 2 is FULL.
    async fn writer_level(store: &SqlStore) -> i64 {
        let row = query("PRAGMA synchronous").fetch_one(&store.write).await.expect("pragma");
        get::<i64>(&row, "synchronous").expect("level")
    }

    fn sqlite_of(store: &SqlStore) -> &Arc<db::sqlite::Sqlite> {
        match &store.write {
            Db::Sqlite(sqlite, ..) => sqlite,
            Db::Postgres(..) => panic!("a SQLite store"),
        }
    }

    /// How many synced transactions ran in a group committed at FULL.
    async fn synced(store: &SqlStore) -> u64 {
        sqlite_of(store).synced().await.transactions
    }

    /// The write just made was the `n`-th synced one, and the writer is back at NORMAL after it.
    async fn ran_synced(store: &SqlStore, n: u64, op: &str) {
        assert!(SYNCED_WRITES.contains(&op), "{op}");
        assert_eq!(synced(store).await, n, "{op} ran at FULL");
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

    /// The token lookup, the hottest statement, runs from the statement cache as prepared: a new
    /// digest or time bound to it does not make SQLite parse and plan it again.
    #[tokio::test]
    async fn a_cached_token_lookup_is_not_prepared_again_for_new_values() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = sqlite(dir.path(), false).await;
        let s: &dyn Store = &store;
        seed_account(s, "acct").await;
        for i in 0..5 {
            let mut token = credential(&format!("t-{i}"), CredentialKind::AccessToken, NOW, 60);
            token.account_id = Some("acct".to_owned());
            s.credentials().insert(&token).await.expect("insert");
        }
        for i in 0..5 {
            let found = s.credentials().find_live_token(&format!("t-{i}"), NOW + i).await;
            assert!(found.expect("find").is_some(), "t-{i}");
        }
        let expired = s.credentials().find_live_token("t-0", NOW + 61).await.expect("find");
        assert!(expired.is_none());
        let reprepared = db::sqlite::reprepared(sqlite_of(&store), credentials::FIND_LIVE_TOKEN);
        assert_eq!(reprepared, 0, "each new binding prepared the lookup again");
    }

    /// Each statement that reaches credentials through a secondary key, and the sweep, goes
    /// through that key's index on SQLite (with the planner's stability guarantee on, as every
    /// connection has it), although the indexes hold only rows whose column has a value.
    #[tokio::test]
    async fn sqlite_statements_on_credentials_use_their_index() {
        use crate::credentials::{
            ENFORCE_CAP_SQLITE, LIST_LIVE_BY_ACCOUNT, REVOKE_BY_ACCOUNT, REVOKE_BY_GRANT,
            REVOKE_BY_SESSION, SWEEP,
        };
        use crate::sessions::REVOKE_BY_ACCOUNT_SESSIONS;
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = sqlite(dir.path(), false).await;
        let statements: [(&str, usize, &[&str]); 8] = [
            (
                SWEEP,
                2,
                &["credentials_expires_idx", "credentials_revoked_idx", "credentials_consumed_idx"],
            ),
            (REVOKE_BY_GRANT, 2, &["credentials_grant_idx"]),
            (REVOKE_BY_SESSION, 2, &["credentials_session_idx"]),
            (REVOKE_BY_ACCOUNT_SESSIONS, 2, &["credentials_session_idx"]),
            ("DELETE FROM credentials WHERE session_id = $1", 1, &["credentials_session_idx"]),
            (ENFORCE_CAP_SQLITE, 5, &["credentials_cap_idx"]),
            (LIST_LIVE_BY_ACCOUNT, 3, &["credentials_account_kind_live_idx"]),
            (REVOKE_BY_ACCOUNT, 3, &["credentials_account_kind_idx"]),
        ];
        for (sql, arity, indexes) in statements {
            let mut explain = db::query_built(format!("EXPLAIN QUERY PLAN {sql}"));
            for i in 0..arity {
                explain = explain.bind(format!("v{i}"));
            }
            let rows = explain.fetch_all(&store.write).await.expect("explain");
            let plan: Vec<String> =
                rows.iter().map(|row| get::<String>(row, "detail").expect("detail")).collect();
            for index in indexes {
                assert!(plan.iter().any(|step| step.contains(index)), "{sql}: {plan:?}");
            }
            let scans = plan.iter().any(|step| step.starts_with("SCAN credentials"));
            assert!(!scans, "{sql} reads every credential: {plan:?}");
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
        assert_eq!(
            (synced(&store).await, writer_level(&store).await),
            (0, 1),
            "issuance is not raised"
        );

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
        assert_eq!(synced(&store).await, SYNCED_WRITES.len() as u64, "other writes are not raised");
        assert_eq!(sqlite_of(&store).synced().await.groups, SYNCED_WRITES.len() as u64);
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
        // Each revocation committed at FULL; concurrent ones may share one synced commit.
        let synced = sqlite_of(&store).synced().await;
        assert_eq!(synced.transactions, N as u64);
        assert!((1..=N as u64).contains(&synced.groups), "{synced:?}");
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
        assert_eq!((synced(&store).await, writer_level(&store).await), (0, 2));
        store.close().await;
    }
}
