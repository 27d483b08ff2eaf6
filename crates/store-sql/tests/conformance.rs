//! Runs the shared store conformance suite against SQLite and PostgreSQL, plus races across pools.
//!
//! SQLite cases each get a database file in a fresh temporary directory. PostgreSQL cases run when
//! `TESSERA_TEST_DATABASE_URL` names a server (for example `postgres://postgres@127.0.0.1:5432/test`):
//! each case creates its own database `tessera_t_<random>` there and drops it afterwards, so the
//! cases are isolated and run in parallel.

use std::hash::{BuildHasher, RandomState};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{AssertSqlSafe, Connection};
use tessera_store::Store;
use tessera_store::testsuite::{CaseFn, consume_race};
use tessera_store_sql::{ConnectOptions, SqlStore};

const DATABASE_URL_VAR: &str = "TESSERA_TEST_DATABASE_URL";

/// Awaits a spawned case and re-raises its panic, after the caller has cleaned up.
fn rethrow(outcome: Result<(), tokio::task::JoinError>) {
    if let Err(error) = outcome {
        if error.is_panic() {
            std::panic::resume_unwind(error.into_panic());
        }
        panic!("test case was cancelled: {error}");
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite

async fn sqlite_store(path: &Path) -> SqlStore {
    let url = SqlStore::sqlite_path_url(path);
    let store = SqlStore::connect(&url, &ConnectOptions::default()).await.expect("connect sqlite");
    store.migrate().await.expect("migrate sqlite");
    store
}

async fn sqlite_harness(case: &'static str, run: CaseFn) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = sqlite_store(&dir.path().join(format!("{case}.db"))).await;
    let outcome = tokio::spawn(run(Arc::new(store.clone()))).await;
    store.close().await;
    rethrow(outcome);
}

mod sqlite {
    tessera_store::conformance_tests!(super::sqlite_harness);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_pools_race_on_one_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("shared.db");
    let first = sqlite_store(&path).await;
    let second = sqlite_store(&path).await;
    let stores: Vec<Arc<dyn Store>> = vec![Arc::new(first.clone()), Arc::new(second.clone())];
    consume_race(&stores, 50).await;
    first.close().await;
    second.close().await;
}

#[tokio::test]
async fn sqlite_migrate_is_idempotent_and_odd_paths_work() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("odd name #1 ?x=%20.db");
    let store = sqlite_store(&path).await;
    store.migrate().await.expect("second migrate");
    store.ping().await.expect("ping");
    assert_eq!(store.backend(), "sqlite");
    assert!(path.exists(), "the file is created at the exact path");
    store.close().await;
}

#[tokio::test]
async fn unsupported_url_is_refused_without_echoing_it() {
    let error = SqlStore::connect("mysql://user:hunter2@db/x", &ConnectOptions::default())
        .await
        .expect_err("mysql is not supported");
    assert!(!error.to_string().contains("hunter2"));
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// Says once per run, on the real stderr (which the test harness does not capture), that the
/// PostgreSQL half of the suite did not run.
fn report_postgres_skipped() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let line = format!("\nSKIPPED: PostgreSQL store tests ({DATABASE_URL_VAR} unset)\n");
        // Nothing sensible is left to do if stderr itself is gone.
        let _ = std::io::stderr().write_all(line.as_bytes());
    });
}

/// A throw-away database on the test server.
struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates a fresh database, or reports the skip and returns `None` when no server is set.
    async fn create() -> Option<TestDatabase> {
        let Ok(admin_url) = std::env::var(DATABASE_URL_VAR) else {
            report_postgres_skipped();
            return None;
        };
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let salt = RandomState::new()
            .hash_one((std::process::id(), SEQUENCE.fetch_add(1, Ordering::Relaxed)));
        let name = format!("tessera_t_{salt:016x}");
        let mut url = url::Url::parse(&admin_url).expect("valid database URL");
        url.set_path(&format!("/{name}"));

        let mut admin =
            sqlx::PgConnection::connect(&admin_url).await.expect("connect to the test server");
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.expect("close admin connection");
        Some(TestDatabase { admin_url, name, url: url.to_string() })
    }

    async fn store(&self) -> SqlStore {
        let store = SqlStore::connect(&self.url, &ConnectOptions::default())
            .await
            .expect("connect postgres");
        store.migrate().await.expect("migrate postgres");
        store
    }

    /// Drops the database, best effort: a failure is reported, never raised.
    #[allow(clippy::print_stderr)]
    async fn drop_database(self) {
        let dropped = async {
            let mut admin = sqlx::PgConnection::connect(&self.admin_url).await?;
            sqlx::raw_sql(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin)
            .await?;
            admin.close().await
        }
        .await;
        if let Err(error) = dropped {
            eprintln!("could not drop test database {}: {error}", self.name);
        }
    }
}

async fn postgres_harness(_case: &'static str, run: CaseFn) {
    let Some(db) = TestDatabase::create().await else { return };
    let store = db.store().await;
    let outcome = tokio::spawn(run(Arc::new(store.clone()))).await;
    store.close().await;
    db.drop_database().await;
    rethrow(outcome);
}

mod postgres {
    tessera_store::conformance_tests!(super::postgres_harness);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_pools_race_on_one_database() {
    let Some(db) = TestDatabase::create().await else { return };
    let first = db.store().await;
    let second =
        SqlStore::connect(&db.url, &ConnectOptions::default()).await.expect("connect second pool");
    let stores: Vec<Arc<dyn Store>> = vec![Arc::new(first.clone()), Arc::new(second.clone())];
    let outcome = tokio::spawn(async move { consume_race(&stores, 50).await }).await;
    first.close().await;
    second.close().await;
    db.drop_database().await;
    rethrow(outcome);
}

#[tokio::test]
async fn postgres_migrate_is_idempotent() {
    let Some(db) = TestDatabase::create().await else { return };
    let store = db.store().await;
    let outcome = tokio::spawn({
        let store = store.clone();
        async move {
            store.migrate().await.expect("second migrate");
            store.ping().await.expect("ping");
            assert_eq!(store.backend(), "postgres");
        }
    })
    .await;
    store.close().await;
    db.drop_database().await;
    rethrow(outcome);
}
