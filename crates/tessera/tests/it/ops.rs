//! Operations: file modes of the data directory, readiness that proves the store can write, the
//! key-encryption-key check at start, access to `/metrics`, the default public URL, and the
//! connection limits and timeouts of the HTTP server.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tessera_store::{Store, StoreError, Timestamp};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

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
    fn push(&self) -> &dyn tessera_store::PushStore {
        self.0.push()
    }
    fn legacy(&self) -> &dyn tessera_store::LegacyStore {
        self.0.legacy()
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

    let conn = rusqlite::Connection::open(env.dir.path().join("tessera.db")).unwrap();
    conn.execute("DELETE FROM server_state", []).unwrap();
    drop(conn);
    let err = start_err(&raw).await;
    assert!(err.contains("kek mismatch"), "the signing keys do not open: {err}");

    std::fs::write(&key_file, original).unwrap();
    let env = env.restart(|_| ()).await;
    assert!(env.ctx().store.kek_check().await.unwrap().is_some(), "written again");
}

// ---------------------------------------------------------------------------------------------
// Connection limits and timeouts (issue 4)

/// The failure guard of every wait below: a passing test never comes near it.
const GUARD: Duration = Duration::from_secs(30);

fn server_addr(env: &TestEnv) -> SocketAddr {
    env.base.trim_start_matches("http://").parse().unwrap()
}

/// Connects to the server from a loopback address of our choice (all of 127/8 is local).
async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(server).await.unwrap()
}

/// Waits until the server closes the connection (end of stream or reset); returns what it sent.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    timeout(GUARD, read_to_close(stream)).await.expect("the server closes it")
}

async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    out
}

/// Reads one response to a request for `/healthz` (`ok\n`, 3 bytes) and leaves the connection open.
async fn read_healthz(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut chunk = [0u8; 1024];
    while !(out.ends_with(b"\r\n\r\nok\n")) {
        let n = timeout(GUARD, stream.read(&mut chunk)).await.expect("an answer").unwrap();
        assert!(n > 0, "closed before the answer: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(out).unwrap()
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: tessera.test\r\n\r\n";

/// One connection of a burst: connects, then either sees the server close it at once (false), or
/// is still open when `go` fires and then gets a request answered (true).
async fn burst_member(
    source: Ipv4Addr,
    server: SocketAddr,
    mut go: watch::Receiver<bool>,
    closed: mpsc::Sender<()>,
) -> bool {
    let mut stream = connect_from(source, server).await;
    let mut byte = [0u8; 1];
    let was_closed = tokio::select! {
        read = stream.read(&mut byte) => {
            assert!(matches!(read, Ok(0) | Err(_)), "the server sent something unasked");
            true
        }
        _ = go.wait_for(|go| *go) => false,
    };
    if was_closed {
        closed.send(()).await.unwrap();
        return false;
    }
    stream.write_all(HEALTHZ).await.unwrap();
    assert!(read_healthz(&mut stream).await.starts_with("HTTP/1.1 200 OK\r\n"));
    true
}

/// Opens one connection per source address at once; waits until `refused` of them were closed by
/// the server, then has the others send a request. Returns how many were closed and answered.
async fn burst(env: &TestEnv, sources: &[Ipv4Addr], refused: usize) -> (usize, usize) {
    let (go_tx, go_rx) = watch::channel(false);
    let (closed_tx, mut closed_rx) = mpsc::channel(sources.len());
    let server = server_addr(env);
    let members: Vec<_> = sources
        .iter()
        .map(|source| tokio::spawn(burst_member(*source, server, go_rx.clone(), closed_tx.clone())))
        .collect();
    for _ in 0..refused {
        timeout(GUARD, closed_rx.recv()).await.expect("the connections over the cap are closed");
    }
    go_tx.send(true).unwrap();
    let mut answered = 0;
    for member in members {
        answered += usize::from(member.await.unwrap());
    }
    (sources.len() - answered, answered)
}

/// A connection beyond the per-address cap is closed as it is accepted; the others are served.
#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed() {
    let env = TestEnv::with_config(|raw| raw.http.max_connections_per_address = 8).await;
    let sources = vec![Ipv4Addr::new(127, 0, 0, 2); 20];
    assert_eq!(burst(&env, &sources, 12).await, (12, 8));
    // Another address is not affected while those are open, nor is this one once they are closed.
    let sources = vec![Ipv4Addr::new(127, 0, 0, 3); 8];
    assert_eq!(burst(&env, &sources, 0).await, (0, 8));
}

/// A connection beyond the global cap is closed as it is accepted, whatever its address.
#[tokio::test]
async fn connections_over_the_global_cap_are_closed() {
    let env = TestEnv::with_config(|raw| {
        raw.http.max_connections = 8;
        raw.http.max_connections_per_address = 8;
    })
    .await;
    let sources: Vec<_> = (0..20).map(|i| Ipv4Addr::new(127, 0, 1, 10 + i)).collect();
    assert_eq!(burst(&env, &sources, 12).await, (12, 8));
}

/// A slow-loris of 2,000 connections from twenty addresses (half send part of a request line,
/// half nothing) does not keep a normal client from being served: each address gets 50
/// connections, the other 1,000 are closed at once. Stopping the server closes the 1,000 it holds
/// without waiting for their timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_of_2000_connections_does_not_stop_normal_clients() {
    let mut env = TestEnv::with_config(|raw| {
        raw.http.max_connections = 1500;
        raw.http.max_connections_per_address = 50;
        raw.http.header_read_timeout_ms = 600_000;
    })
    .await;
    let server = server_addr(&env);
    let (connected_tx, mut connected_rx) = mpsc::channel(2000);
    let (closed_tx, mut closed_rx) = mpsc::channel(2000);
    let mut held = Vec::new();
    // In waves of 200, so that the kernel's accept queue (1,024) never overflows: a connection
    // dropped there would only be retried by TCP seconds later.
    for wave in 0..40u32 {
        for i in wave * 50..(wave + 1) * 50 {
            let source = Ipv4Addr::new(127, 0, 2, 10 + (i % 20) as u8);
            let (connected, closed) = (connected_tx.clone(), closed_tx.clone());
            held.push(tokio::spawn(async move {
                let mut stream = connect_from(source, server).await;
                if i % 2 == 0 {
                    let _ = stream.write_all(b"GET /accounts/ServiceLogin HT").await;
                }
                connected.send(()).await.unwrap();
                read_to_close(&mut stream).await;
                closed.send(()).await.unwrap();
                // Kept until the end: a port given back at once could be taken again for a
                // connection the server still remembers (TIME_WAIT), which TCP retries seconds later.
                stream
            }));
        }
        for _ in 0..50 {
            timeout(GUARD, connected_rx.recv()).await.expect("connected");
        }
    }
    for _ in 0..1000 {
        timeout(GUARD, closed_rx.recv()).await.expect("1,000 over the per-address cap are closed");
    }
    let res = timeout(GUARD, reqwest::get(env.url("/healthz"))).await.expect("served").unwrap();
    assert_eq!(res.status(), 200);
    let mut b = env.browser();
    assert_eq!(timeout(GUARD, b.get("/accounts/ServiceLogin")).await.unwrap().status, 200);
    assert!(closed_rx.try_recv().is_err(), "no more were closed than the cap demands");

    timeout(GUARD, env.server.take().unwrap().stop()).await.expect("stops promptly").unwrap();
    let mut streams = Vec::new();
    for task in held {
        streams.push(timeout(GUARD, task).await.expect("every held connection is closed").unwrap());
    }
}

/// Header-read timeout: a connection that sends nothing, or part of a request line, is closed; so
/// is a kept-alive connection whose next request head does not complete. Idle timeout: a
/// kept-alive connection that sends nothing after its answer is closed.
#[tokio::test]
async fn slow_and_idle_connections_are_closed_after_their_timeouts() {
    let env = TestEnv::with_config(|raw| {
        raw.http.header_read_timeout_ms = 100;
        raw.http.idle_timeout_ms = 600_000;
    })
    .await;
    let server = server_addr(&env);
    let mut silent = TcpStream::connect(server).await.unwrap();
    let mut partial = TcpStream::connect(server).await.unwrap();
    partial.write_all(b"GET /healthz HT").await.unwrap();
    assert!(until_closed(&mut silent).await.is_empty());
    assert!(until_closed(&mut partial).await.is_empty());
    let mut kept = TcpStream::connect(server).await.unwrap();
    kept.write_all(HEALTHZ).await.unwrap();
    assert!(read_healthz(&mut kept).await.starts_with("HTTP/1.1 200 OK\r\n"));
    kept.write_all(b"GET /heal").await.unwrap();
    assert!(until_closed(&mut kept).await.is_empty(), "the second head timed out");

    let env = TestEnv::with_config(|raw| {
        raw.http.header_read_timeout_ms = 600_000;
        raw.http.idle_timeout_ms = 100;
    })
    .await;
    let mut kept = TcpStream::connect(server_addr(&env)).await.unwrap();
    kept.write_all(HEALTHZ).await.unwrap();
    assert!(read_healthz(&mut kept).await.starts_with("HTTP/1.1 200 OK\r\n"));
    kept.write_all(HEALTHZ).await.unwrap();
    assert!(read_healthz(&mut kept).await.starts_with("HTTP/1.1 200 OK\r\n"), "kept alive");
    assert!(until_closed(&mut kept).await.is_empty(), "closed when idle");
}

/// Request timeout: a request whose body does not arrive is answered 503 and logged as such.
#[tokio::test]
async fn a_request_that_takes_too_long_is_answered_503() {
    let env = TestEnv::with_config(|raw| raw.http.request_timeout_ms = 100).await;
    let mut stream = TcpStream::connect(server_addr(&env)).await.unwrap();
    stream
        .write_all(
            b"POST /accounts/ClientLogin HTTP/1.1\r\nHost: tessera.test\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nEmail=",
        )
        .await
        .unwrap();
    let answer = String::from_utf8(until_closed(&mut stream).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nthe request took too long\n"), "{answer}");
}

/// Stopping the server closes idle connections but answers a request in flight first.
#[tokio::test]
async fn stopping_answers_the_request_in_flight() {
    let mut env = TestEnv::start().await;
    let server = server_addr(&env);
    let mut idle = TcpStream::connect(server).await.unwrap();
    idle.write_all(HEALTHZ).await.unwrap();
    read_healthz(&mut idle).await;
    let body = "Email=a%40example.test&Passwd=x&service=nope";
    let mut busy = TcpStream::connect(server).await.unwrap();
    let head = format!(
        "POST /accounts/ClientLogin HTTP/1.1\r\nHost: tessera.test\r\nExpect: 100-continue\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    busy.write_all(head.as_bytes()).await.unwrap();
    // The interim answer comes when the handler starts reading the body: the request is in flight.
    let mut interim = [0u8; 25];
    timeout(GUARD, busy.read_exact(&mut interim)).await.unwrap().unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");

    let stopping = tokio::spawn(env.server.take().unwrap().stop());
    assert!(until_closed(&mut idle).await.is_empty(), "the idle connection is closed");
    busy.write_all(body.as_bytes()).await.unwrap();
    let answer = String::from_utf8(until_closed(&mut busy).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403 Access Forbidden\r\n"), "{answer}");
    assert!(answer.contains("\r\n\r\nError=Unknown\n"), "{answer}");
    timeout(GUARD, stopping).await.expect("stopped").unwrap().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Metrics (issue 10)

const SCRAPE_TOKEN: &str = "scrape-token-0123456789";

async fn scrape(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let challenge = res.headers().get("www-authenticate").map(|it| it.to_str().unwrap().to_owned());
    if status == 401 {
        assert_eq!(challenge.as_deref(), Some("Bearer realm=\"metrics\""));
    }
    (status, res.text().await.unwrap())
}

/// `/metrics` is not served to whoever reaches the port unless configured: by default it is a 404;
/// with `metrics.token` it needs that bearer token.
#[tokio::test]
async fn metrics_are_off_by_default_and_behind_a_token_when_set() {
    let env = TestEnv::start().await;
    assert_eq!(scrape(&env.url("/metrics"), None).await.0, 404);
    assert_eq!(scrape(&env.url("/metrics"), Some(SCRAPE_TOKEN)).await.0, 404);

    let env = TestEnv::with_config(|raw| raw.metrics.token = SCRAPE_TOKEN.to_owned()).await;
    env.browser().get("/accounts/ServiceLogin").await;
    let url = env.url("/metrics");
    assert_eq!(scrape(&url, None).await.0, 401);
    assert_eq!(scrape(&url, Some("scrape-token-012345678")).await.0, 401);
    assert_eq!(scrape(&url, Some("scrape-token-01234567890")).await.0, 401);
    let (status, body) = scrape(&url, Some(SCRAPE_TOKEN)).await;
    assert_eq!(status, 200);
    assert!(body.contains("tessera_http_requests_total"), "{body}");
}

/// With `metrics.listen`, `/metrics` is served there (with the token too when one is set) and no
/// longer on the main listener.
#[tokio::test]
async fn metrics_on_a_listener_of_their_own() {
    let env = TestEnv::with_config(|raw| raw.metrics.listen = "127.0.0.1:0".to_owned()).await;
    let metrics = env.server.as_ref().unwrap().metrics_addr.unwrap();
    assert_ne!(metrics, server_addr(&env));
    assert_eq!(scrape(&env.url("/metrics"), None).await.0, 404);
    let (status, body) = scrape(&format!("http://{metrics}/metrics"), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("tessera_http_connections_open"), "{body}");
    assert_eq!(scrape(&format!("http://{metrics}/account"), None).await.0, 404, "only metrics");

    let env = TestEnv::with_config(|raw| {
        raw.metrics.listen = "127.0.0.1:0".to_owned();
        raw.metrics.token = SCRAPE_TOKEN.to_owned();
    })
    .await;
    let metrics = env.server.as_ref().unwrap().metrics_addr.unwrap();
    assert_eq!(scrape(&env.url("/metrics"), Some(SCRAPE_TOKEN)).await.0, 404);
    let url = format!("http://{metrics}/metrics");
    assert_eq!(scrape(&url, None).await.0, 401);
    assert_eq!(scrape(&url, Some(SCRAPE_TOKEN)).await.0, 200);
}

// ---------------------------------------------------------------------------------------------
// The default public URL (issue 11)

/// Without a configured public URL the server names the address it listens on (here a port the
/// system chose), so a person who signs in there stays there, cookie and all.
#[tokio::test]
async fn without_a_public_url_sign_in_stays_on_the_listen_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = test_config(dir.path());
    raw.listen = "127.0.0.1:0".to_owned();
    assert_eq!(raw.public_url, "", "no public URL by default");
    let clock = Arc::new(tessera_domain::FixedClock::new(crate::support::T0));
    let opts = tessera::StartOptions { clock: Some(clock.clone()), ..Default::default() };
    let server = tessera::Server::start(&raw.validate().unwrap(), opts).await.unwrap();
    let base = format!("http://{}", server.addr);
    assert_eq!(&*server.ctx.public_url, base);
    let env = TestEnv { server: Some(server), clock, dir, base: base.clone(), raw };
    env.account("rio@example.test", "password-1").await;
    let mut b = env.browser();
    let res = b.sign_in("rio@example.test", "password-1").await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), format!("{base}/account?authuser=0"));
    assert_eq!(b.get(res.location()).await.status, 200, "signed in at the same address");
}

// ---------------------------------------------------------------------------------------------
// The demo (issue 12)

/// The demo seeds one service that accepts both legacy protocols tessera serves, and the push
/// service `ac2dm` (ClientLogin only, the push scope), and seeding again changes nothing. (`cli::demo_try_it_clientlogin_and_authsub_work_as_printed` runs what it
/// prints.)
#[tokio::test]
async fn the_demo_seeds_one_service_for_authsub_and_clientlogin() {
    let dir = tempfile::tempdir().unwrap();
    let raw = test_config(dir.path());
    let opts = tessera::StartOptions { demo: true, ..Default::default() };
    let env = TestEnv::start_raw(raw, dir, opts).await;
    let again = tessera::demo::seed(env.ctx()).await.unwrap();
    let all = env.ctx().store.services().list().await.unwrap();
    // Besides it, only the two example web services (web sign-on, no legacy protocol).
    let (services, web): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|it| !it.protocols.is_empty());
    assert_eq!(
        web.iter().map(|it| (it.name.as_str(), it.web_prefixes.as_str())).collect::<Vec<_>>(),
        [("feeds-a", "http://127.0.0.2:8081/"), ("feeds-b", "http://127.0.0.3:8082/")]
    );
    let legacy: Vec<_> = services
        .iter()
        .map(|it| (it.name.as_str(), it.scopes.as_str(), it.protocols.as_str()))
        .collect();
    assert_eq!(
        legacy,
        [
            ("ac2dm", tessera_domain::push::PUSH_SCOPE, "clientlogin"),
            ("cl", again.service_scope.as_str(), "authsub clientlogin"),
        ]
    );
    // Seeding again made no second push key and showed none.
    assert!(again.push.api_key.is_none() && again.push.device.is_none());
    let keys = tessera_domain::push::list_api_keys(env.ctx(), &again.push.sender_id).await.unwrap();
    assert_eq!(keys.len(), 1);
}

/// The serve loop hands every request its peer address (`ConnectInfo`): sessions record it.
#[tokio::test]
async fn the_peer_address_reaches_the_handlers() {
    let env = TestEnv::start().await;
    let account = env.account("ip@example.test", "password-1").await;
    let http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 7]))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = http.get(env.url("/accounts/ServiceLogin")).send().await.unwrap();
    let cookie =
        form.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let page = form.text().await.unwrap();
    let csrf = crate::support::Page { status: 200, headers: Default::default(), body: page }.csrf();
    let res = http
        .post(env.url("/accounts/ServiceLoginAuth"))
        .header("cookie", cookie)
        .form(&[("csrf", csrf.as_str()), ("Email", "ip@example.test"), ("Passwd", "password-1")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let sessions = env
        .ctx()
        .store
        .sessions()
        .list_live_by_account(&account.id, crate::support::T0)
        .await
        .unwrap();
    assert_eq!(sessions.iter().map(|it| it.ip.as_str()).collect::<Vec<_>>(), ["127.0.0.7"]);
}
