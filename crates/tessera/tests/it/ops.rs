//! Operations: file modes of the data directory, readiness that proves the store can write, the
//! key-encryption-key check at start, access to `/metrics`, the default public URL, and the
//! connection limits and timeouts of the HTTP server.

use std::sync::Arc;

use tessera_store::{Store, StoreError, Timestamp};

use crate::support::{TestEnv, test_config};

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Issue 9: the data directory is 0700 and the database, its WAL and shared-memory files and the
/// generated kek are 0600.
#[cfg(unix)]
#[tokio::test]
async fn data_directory_and_database_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("data");
    let raw = test_config(&data);
    let env = TestEnv::start_raw(raw, dir, tessera::StartOptions::default()).await;
    env.account("mode@example.test", "password-1").await;
    assert_eq!(mode(&data), 0o700);
    for file in ["tessera.db", "tessera.db-wal", "tessera.db-shm", "kek"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
}

/// A store whose database answers but refuses every write, as on a full disk: the heartbeat fails
/// and everything else goes to the real store.
struct CannotWrite(Arc<dyn Store>);

#[async_trait::async_trait]
impl Store for CannotWrite {
    fn backend(&self) -> &'static str {
        self.0.backend()
    }
    async fn ping(&self) -> tessera_store::Result<()> {
        self.0.ping().await
    }
    fn accounts(&self) -> &dyn tessera_store::AccountStore {
        self.0.accounts()
    }
    fn domains(&self) -> &dyn tessera_store::DomainStore {
        self.0.domains()
    }
    fn projects(&self) -> &dyn tessera_store::ProjectStore {
        self.0.projects()
    }
    fn grants(&self) -> &dyn tessera_store::GrantStore {
        self.0.grants()
    }
    fn credentials(&self) -> &dyn tessera_store::CredentialStore {
        self.0.credentials()
    }
    fn sessions(&self) -> &dyn tessera_store::SessionStore {
        self.0.sessions()
    }
    fn keys(&self) -> &dyn tessera_store::KeyStore {
        self.0.keys()
    }
    fn audit(&self) -> &dyn tessera_store::AuditStore {
        self.0.audit()
    }
    fn counters(&self) -> &dyn tessera_store::CounterStore {
        self.0.counters()
    }
    fn services(&self) -> &dyn tessera_store::ServiceStore {
        self.0.services()
    }
    async fn heartbeat(&self, _now: Timestamp) -> tessera_store::Result<()> {
        Err(StoreError::Backend("heartbeat: database or disk is full".to_owned()))
    }
    async fn kek_check(&self) -> tessera_store::Result<Option<String>> {
        self.0.kek_check().await
    }
    async fn init_kek_check(&self, sealed: &str, now: Timestamp) -> tessera_store::Result<String> {
        self.0.init_kek_check(sealed, now).await
    }
}

/// Issue 10: `/readyz` is 503 while the store answers reads but cannot write, and 200 when it can.
#[tokio::test]
async fn readyz_reports_a_store_that_cannot_write() {
    let env = TestEnv::start().await;
    assert_eq!(env.browser().get("/readyz").await.status, 200);

    let dir = tempfile::tempdir().unwrap();
    let raw = test_config(dir.path());
    let config = raw.validate().unwrap();
    let store: Arc<dyn Store> = Arc::new(tessera::open_store(&config).await.unwrap());
    let opts = tessera::StartOptions {
        store: Some(Arc::new(CannotWrite(store))),
        ..tessera::StartOptions::default()
    };
    let env = TestEnv::start_raw(raw, dir, opts).await;
    let mut b = env.browser();
    assert_eq!(b.get("/healthz").await.status, 200, "alive");
    let ready = b.get("/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (503, "store cannot write\n"));
}

fn kek(byte: u8) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [byte; 32])
}

async fn start_err(raw: &tessera::RawConfig) -> String {
    let config = raw.validate().unwrap();
    match tessera::Server::start(&config, tessera::StartOptions::default()).await {
        Ok(_) => panic!("the server started"),
        Err(err) => format!("{err:#}"),
    }
}

/// Issue 10: a node whose key-encryption key differs from the one that sealed the database refuses
/// to start, naming the mismatch, instead of failing every signature later.
#[tokio::test]
async fn a_different_kek_refuses_to_start() {
    let mut env = TestEnv::with_config(|raw| raw.kek = kek(1)).await;
    env.server.take().unwrap().stop().await.unwrap();
    let mut raw = env.raw.clone();
    raw.listen = "127.0.0.1:0".to_owned();
    raw.kek = kek(2);
    let err = start_err(&raw).await;
    assert!(err.contains("kek mismatch") && err.contains("the configured kek"), "{err}");
    // The right key still starts, and signs.
    let env = env.restart(|raw| raw.kek = kek(1)).await;
    assert_eq!(env.browser().get("/oauth2/v3/certs").await.status, 200);
}

/// The same for the generated key file, and for a database from before the check value existed
/// (its signing keys are opened instead, and the check value is written then).
#[tokio::test]
async fn a_replaced_kek_file_or_a_database_without_check_value_refuses_to_start() {
    let mut env = TestEnv::start().await;
    env.server.take().unwrap().stop().await.unwrap();
    let key_file = env.dir.path().join("kek");
    let original = std::fs::read_to_string(&key_file).unwrap();
    std::fs::write(&key_file, kek(3)).unwrap();
    let mut raw = env.raw.clone();
    raw.listen = "127.0.0.1:0".to_owned();
    let err = start_err(&raw).await;
    assert!(err.contains("kek mismatch") && err.contains(&key_file.display().to_string()), "{err}");

    let db = tessera_store_sql::SqlStore::sqlite_path_url(&env.dir.path().join("tessera.db"));
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db).await.unwrap();
    sqlx::query("DELETE FROM server_state").execute(&mut conn).await.unwrap();
    sqlx::Connection::close(conn).await.unwrap();
    let err = start_err(&raw).await;
    assert!(err.contains("kek mismatch"), "the signing keys do not open: {err}");

    std::fs::write(&key_file, original).unwrap();
    let env = env.restart(|_| ()).await;
    assert!(env.ctx().store.kek_check().await.unwrap().is_some(), "written again");
}
