//! The tessera server as a library: configuration, wiring of store, domain and web, start-up
//! (migrations, keys, first-run link, demo data) and graceful shutdown. `main.rs` and the
//! integration tests both start servers through `Server::start`.

pub mod config;
pub mod demo;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{Context as _, format_err};
use metrics_exporter_prometheus::PrometheusHandle;
use tessera_crypto::kek::Kek;
use tessera_crypto::random::{Rng, SystemRng};
use tessera_domain::{Clock, Ctx};
use tessera_store::Store;
use tessera_store_sql::{ConnectOptions, SqlStore};

pub use config::{Config, RawConfig};

/// Wall-clock time; the only place the server reads it.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|it| it.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// Opens (and migrates) the configured store. The embedded database lives in the data directory,
/// which is created readable by its owner only (0700), as are the database files (0600).
pub async fn open_store(config: &Config) -> anyhow::Result<SqlStore> {
    let opts = ConnectOptions {
        max_connections: config.raw.store.max_connections,
        sync_every_commit: config.raw.store.sync_issuance,
    };
    let store = match &config.database_url {
        Some(url) => SqlStore::connect(url, &opts).await,
        None => {
            create_private_dir(&config.data_dir)?;
            warn_if_shared(&config.data_dir);
            let path = config.data_dir.join("tessera.db");
            let store = SqlStore::connect_sqlite_file(&path, &opts).await;
            warn_if_shared(&path);
            store
        }
    }
    .map_err(|err| format_err!("opening the database: {err}"))?;
    store.migrate().await.map_err(|err| format_err!("migrating the database: {err}"))?;
    Ok(store)
}

/// The key-encryption key: from the configuration, or from a key file that is created (mode 0600)
/// on first start.
pub fn load_kek(config: &Config, rng: &dyn Rng) -> anyhow::Result<Kek> {
    if !config.raw.kek.is_empty() {
        return Kek::parse(&config.raw.kek)
            .map_err(|_| format_err!("kek: must be base64 of exactly 32 bytes"));
    }
    let path = match config.raw.kek_file.as_str() {
        "" => config.data_dir.join("kek"),
        file => file.into(),
    };
    if path.exists() {
        return read_kek_file(&path);
    }
    create_private_dir(path.parent().unwrap_or(Path::new(".")))?;
    let kek = Kek::generate(rng);
    write_private(&path, kek.to_base64().as_bytes())?;
    tracing::info!(target: "tessera::startup", path = %path.display(), "generated a new key-encryption key");
    Ok(kek)
}

/// Creates a directory (and any missing parents) that only its owner may enter; an existing
/// directory keeps its mode.
fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(path).with_context(|| format!("creating directory {}", path.display()))
}

/// Warns when a data file or directory made by an earlier version is open to group or others.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            let fix = if meta.is_dir() { "chmod 700" } else { "chmod 600" };
            tracing::warn!(target: "tessera::startup", path = %path.display(), "readable by group or others; restrict it ({fix})");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn read_kek_file(path: &Path) -> anyhow::Result<Kek> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format_err!(
                "{}: the key file must not be readable by group or others (chmod 600)",
                path.display()
            ));
        }
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Kek::parse(text.trim()).map_err(|_| format_err!("{}: not base64 of 32 bytes", path.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
    // The key seals what the database holds: it must be on disk before anything is sealed with
    // it, and so must the directory entry that names it.
    file.sync_all().with_context(|| format!("syncing {}", path.display()))?;
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|it| !it.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|it| it.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

/// Builds the domain context over an opened store.
pub fn context(
    config: &Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Rng>,
) -> anyhow::Result<Ctx> {
    let kek = load_kek(config, rng.as_ref())?;
    Ctx::new(store, clock, rng, kek, config.policy.clone(), &config.public_url)
        .map_err(|err| format_err!("password settings: {err}"))
}

/// The additional data and the plaintext of the key-encryption-key check value.
const KEK_CHECK_AAD: &[u8] = b"tessera/kek-check/v1";
const KEK_CHECK_TEXT: &[u8] = b"tessera key-encryption key check";

/// Refuses to go on with a key-encryption key other than the one that sealed this database's
/// secrets, which would start, report ready, and then fail every signature. The first start stores
/// a constant sealed with its key (`Store::init_kek_check`); every later start opens it. A database
/// from before the check value existed is checked against its signing keys first.
pub async fn check_kek(ctx: &Ctx, config: &Config) -> anyhow::Result<()> {
    let source = match (config.raw.kek.as_str(), config.raw.kek_file.as_str()) {
        ("", "") => format!("the key file {}", config.data_dir.join("kek").display()),
        ("", file) => format!("the key file {file}"),
        _ => "the configured kek".to_owned(),
    };
    let mismatch = || {
        format_err!(
            "kek mismatch: the key-encryption key from {source} is not the one this database's \
             keys were sealed with; start with the key the database was created with"
        )
    };
    let store_err = |err: tessera_store::StoreError| format_err!("checking the kek: {err}");
    if let Some(sealed) = ctx.store.kek_check().await.map_err(store_err)? {
        return ctx.kek.open(KEK_CHECK_AAD, &sealed).map(drop).map_err(|_| mismatch());
    }
    for record in ctx.store.keys().list().await.map_err(store_err)? {
        if record.alg == tessera_domain::device::PASSWD_KEY_ALG {
            continue;
        }
        tessera_domain::keys::open(ctx, &record).map_err(|_| mismatch())?;
    }
    let sealed = ctx
        .kek
        .seal(ctx.rng.as_ref(), KEK_CHECK_AAD, KEK_CHECK_TEXT)
        .map_err(|err| format_err!("sealing the kek check value: {err}"))?;
    // Another node starting at the same moment may have stored its own value first.
    let stored = ctx.store.init_kek_check(&sealed, ctx.now()).await.map_err(store_err)?;
    ctx.kek.open(KEK_CHECK_AAD, &stored).map(drop).map_err(|_| mismatch())
}

/// The process-wide Prometheus recorder (installed once; servers in one process share it).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("duration_seconds".to_owned()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .clone()
}

/// What start-up found and did, for the operator.
#[derive(Debug, Default)]
pub struct StartReport {
    pub setup_link: Option<String>,
    pub demo: Option<demo::DemoInfo>,
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when it has a listener of its own (`metrics.listen`).
    pub metrics_addr: Option<SocketAddr>,
    pub ctx: Ctx,
    pub report: StartReport,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Options for `Server::start` that the configuration does not hold.
#[derive(Default)]
pub struct StartOptions {
    pub demo: bool,
    /// Injected clock (tests); wall-clock time when `None`.
    pub clock: Option<Arc<dyn Clock>>,
    /// An already-bound listener (tests bind 127.0.0.1:0); `config.listen` when `None`.
    pub listener: Option<tokio::net::TcpListener>,
    /// Sweep expired credentials in the background.
    pub sweeper: bool,
    /// A store the caller opened (tests wrap one to make it fail); the configured one when `None`.
    pub store: Option<Arc<dyn Store>>,
}

impl Server {
    pub async fn start(config: &Config, opts: StartOptions) -> anyhow::Result<Server> {
        let listener = match opts.listener {
            Some(listener) => listener,
            None => tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("listening on {}", config.listen))?,
        };
        let addr = listener.local_addr()?;
        let config = &config.bound_to(addr);
        if config.public_url_from_listen && config.listen.ip().is_unspecified() {
            tracing::warn!(target: "tessera::startup", public_url = %config.public_url, "no public_url is configured: links and the token issuer name this machine's loopback address");
        }
        let store: Arc<dyn Store> = match opts.store {
            Some(store) => store,
            None => Arc::new(open_store(config).await?),
        };
        let clock = opts.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let rng: Arc<dyn Rng> = Arc::new(SystemRng::new());
        let ctx = context(config, store, clock, rng)?;
        check_kek(&ctx, config).await?;
        // Several nodes may share a PostgreSQL database: push signals go through it. SQLite is one
        // node, woken in process.
        if let Some(url) = config.database_url.as_deref().filter(|it| it.starts_with("postgres")) {
            let wakeup = tessera_store_sql::PgWakeup::start(url, ctx.push.registry.clone())
                .await
                .map_err(|err| format_err!("push wake-up: {err}"))?;
            ctx.push.set_wakeup(Arc::new(wakeup));
        }
        tessera_domain::keys::ensure(&ctx)
            .await
            .map_err(|err| format_err!("preparing signing keys: {err}"))?;
        if config.raw.device.enabled {
            tessera_domain::device::ensure_key(&ctx)
                .await
                .map_err(|err| format_err!("preparing the device password key: {err}"))?;
        }
        let mut report = StartReport::default();
        if opts.demo {
            report.demo = Some(demo::seed(&ctx).await?);
        }
        report.setup_link = tessera_domain::setup::link_if_needed(&ctx)
            .await
            .map_err(|err| format_err!("setup link: {err}"))?;
        let mut state = tessera_web::AppState::new(ctx.clone(), metrics_handle());
        state.continue_prefixes = config.raw.signin.continue_prefixes.clone().into();
        state.legacy = tessera_web::Legacy {
            authsub: config.raw.legacy.authsub,
            clientlogin: config.raw.legacy.clientlogin,
            oauth1: config.raw.legacy.oauth1,
            openid2: config.raw.legacy.openid2,
            device: config.raw.device.enabled,
        };
        state.request_timeout = config.request_timeout;
        let token = match config.raw.metrics.token.as_str() {
            "" => None,
            token => Some(tessera_web::MetricsAccess::Token(token.into())),
        };
        let metrics = match config.metrics_listen {
            Some(listen) => {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("metrics.listen: listening on {listen}"))?;
                let mut state = state.clone();
                state.metrics_access = token.clone().unwrap_or(tessera_web::MetricsAccess::Open);
                Some((listener, tessera_web::metrics_router(state)))
            }
            None => None,
        };
        let metrics_addr = match &metrics {
            Some((listener, _)) => Some(listener.local_addr()?),
            None => None,
        };
        if metrics.is_none() {
            state.metrics_access = token.unwrap_or_default();
        }
        let app = tessera_web::router(state);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        if opts.sweeper {
            spawn_sweeper(
                ctx.clone(),
                config.raw.store.sweep_interval_secs,
                config.raw.store.sweep_batch,
            );
        }
        let limits = config.limits;
        let registry = ctx.push.registry.clone();
        let task = tokio::spawn(async move {
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let signal = async move {
                // A dropped `Server` stops serving too.
                let _ = rx.await;
                let _ = stop_tx.send(true);
            };
            let main = tessera_web::serve(listener, app, limits, stopped(stop_rx.clone()));
            let ticks = tessera_web::tick_connections(registry, stopped(stop_rx.clone()));
            let metrics = async move {
                if let Some((listener, app)) = metrics {
                    tessera_web::serve(listener, app, limits, stopped(stop_rx)).await;
                }
            };
            tokio::join!(signal, main, ticks, metrics);
            Ok(())
        });
        Ok(Server { addr, metrics_addr, ctx, report, shutdown: Some(tx), task })
    }

    /// Stops accepting, lets requests in flight finish, and waits.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.context("server task")?
    }

    /// Waits for the server to end on its own (it does not, unless it fails).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.task).await.context("server task")?
    }

    pub fn shutdown_handle(&mut self) -> Option<tokio::sync::oneshot::Sender<()>> {
        self.shutdown.take()
    }
}

fn spawn_sweeper(ctx: Ctx, interval_secs: u64, batch: u32) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(interval_secs));
        loop {
            ticker.tick().await;
            match tessera_domain::sweep::run_once(&ctx, batch).await {
                Ok(0) => (),
                Ok(n) => tracing::info!(target: "tessera::sweep", n, "swept expired credentials"),
                Err(err) => tracing::warn!(target: "tessera::sweep", error = %err, "sweep failed"),
            }
        }
    });
}
