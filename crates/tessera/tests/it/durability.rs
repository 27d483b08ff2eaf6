//! Durability of the real binary: tokens acknowledged to clients, acknowledged revocations, and
//! push messages answered with a message id survive `kill -9` of `tessera serve` in the middle of
//! a burst of requests. Each case seeds a data
//! directory with `tessera admin dev seed`, drives concurrent requests from several tasks, kills the
//! server once enough answers are in, starts it again on the same data and checks every answer it
//! had given. SQLite always; PostgreSQL too when `TESSERA_TEST_DATABASE_URL` is set.

use std::future::Future;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection as _};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::Notify;

/// Client tasks sending requests at once.
const WORKERS: usize = 8;
/// A bound on how long the server may take to start, or the load to reach the kill.
const PATIENCE: Duration = Duration::from_secs(120);
/// The PKCE pair of RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Tokens issued under load survive `kill -9` on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_tokens_survive_kill_9_on_sqlite() {
    issued_tokens_survive_kill_9(Data::sqlite()).await;
}

/// The same with `store.sync_issuance` on: every commit synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_tokens_survive_kill_9_with_every_commit_synced() {
    let mut data = Data::sqlite();
    data.env.push(("TESSERA_STORE_SYNC_ISSUANCE", "true"));
    issued_tokens_survive_kill_9(data).await;
}

/// Tokens issued under load survive `kill -9` on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_tokens_survive_kill_9_on_postgres() {
    let Some(data) = Data::postgres().await else { return };
    let name = data.database_name();
    issued_tokens_survive_kill_9(data).await;
    drop_database(&name).await;
}

/// Revocations acknowledged under load hold after `kill -9` on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_survive_kill_9_on_sqlite() {
    revocations_survive_kill_9(Data::sqlite()).await;
}

/// Revocations acknowledged under load hold after `kill -9` on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_survive_kill_9_on_postgres() {
    let Some(data) = Data::postgres().await else { return };
    let name = data.database_name();
    revocations_survive_kill_9(data).await;
    drop_database(&name).await;
}

/// Push messages answered with a message id under load are delivered after `kill -9` on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_push_messages_survive_kill_9_on_sqlite() {
    sent_push_messages_survive_kill_9(Data::sqlite()).await;
}

/// The same on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_push_messages_survive_kill_9_on_postgres() {
    let Some(data) = Data::postgres().await else { return };
    let name = data.database_name();
    sent_push_messages_survive_kill_9(data).await;
    drop_database(&name).await;
}

/// Up to 400 GCM sends spread over 40 registered devices (within the per-registration quota and
/// store limit; the limit on new installs per address is off, all devices register from here); the server is killed once 120 were answered with a message id. After the restart
/// every device connects and receives every message it was sent and answered for.
async fn sent_push_messages_survive_kill_9(mut data: Data) {
    const DEVICES: usize = 40;
    // Forty first registrations from one address: over the default limit on new installs.
    data.env.push(("TESSERA_PUSH_NEW_INSTALLS_PER_MINUTE", "0"));
    const MAX: usize = 400;
    const KILL_AFTER: usize = 120;
    let (project, key) = push_sender(&data).await;
    let server = serve(&data).await;
    let mut devices = Vec::new();
    for n in 0..DEVICES {
        devices.push(
            crate::push_delivery::register(&server.base, &project, &format!("{}", 1000 + n)).await,
        );
    }
    let ids: Arc<Vec<String>> = Arc::new(devices.iter().map(|(id, _)| id.clone()).collect());

    let (http, base, key) = (http_client(), server.base.clone(), format!("key={key}"));
    let job = move |n: usize| {
        let (http, base, key, ids) = (http.clone(), base.clone(), key.clone(), ids.clone());
        async move {
            let device = n % DEVICES;
            let body = serde_json::json!({ "to": ids[device], "data": { "n": n.to_string() } });
            let res = http
                .post(format!("{base}/gcm/send"))
                .header("authorization", &key)
                .json(&body)
                .send()
                .await;
            match read(res).await {
                Ok((200, body)) => match body["results"][0]["message_id"].as_str() {
                    Some(id) => Outcome::Acked(format!("{device} {id}")),
                    None => Outcome::Refused(200, body.to_string()),
                },
                Ok((status, body)) => Outcome::Refused(status, body.to_string()),
                Err(err) => Outcome::CutOff(err),
            }
        }
    };
    let load = run_load(server, MAX, |acked| acked.len() >= KILL_AFTER, job).await;

    let server = serve(&data).await;
    let mut lost = Vec::new();
    for (device, (id, auth)) in devices.iter().enumerate() {
        let mut socket = crate::push_delivery::ws(&server.base, Some(auth), &[id]).await.unwrap();
        let delivered: std::collections::HashSet<String> =
            crate::push_delivery::settle(&mut socket)
                .await
                .iter()
                .map(|frame| frame["message_id"].as_str().unwrap().to_owned())
                .collect();
        for (_, acked) in &load.acked {
            let (of, message) = acked.split_once(' ').unwrap();
            if of == device.to_string() && !delivered.contains(message) {
                lost.push(acked.clone());
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged sends were not delivered: {lost:?}",
        lost.len(),
        load.acked.len()
    );
    server.kill_9().await;
}

/// A sender for push tests, made on the data before the server starts: an account, its project
/// and an API key of the project.
async fn push_sender(data: &Data) -> (String, String) {
    let mut raw = tessera::RawConfig {
        data_dir: data.dir.path().to_string_lossy().into_owned(),
        ..tessera::RawConfig::default()
    };
    if let Some(url) = &data.database_url {
        raw.database_url = url.clone();
    }
    let config = raw.validate().unwrap();
    let store = tessera::open_store(&config).await.unwrap();
    let ctx = tessera::context(
        &config,
        Arc::new(store.clone()),
        Arc::new(tessera::SystemClock),
        Arc::new(tessera_crypto::random::SystemRng::new()),
    )
    .unwrap();
    let new = tessera_domain::accounts::NewAccount {
        email: "sender@example.test".to_owned(),
        name: "sender".to_owned(),
        domain: None,
        password: None,
        is_admin: false,
        state: tessera_store::AccountState::Active,
    };
    let actor = tessera_domain::audit::Actor::Cli;
    tessera_domain::accounts::create(&ctx, new, &actor, "").await.unwrap();
    let project = tessera_domain::projects::create(&ctx, "Pushy", "sender@example.test", &actor)
        .await
        .unwrap();
    let key = tessera_domain::push::create_api_key(&ctx, &project.id, "load").await.unwrap();
    drop(ctx);
    store.close().await;
    (project.id, key)
}

/// Up to 4000 token requests, half `client_credentials` and half `refresh_token`; the server is
/// killed once 400 tokens were received. Every received token works after the restart.
async fn issued_tokens_survive_kill_9(data: Data) {
    const MAX: usize = 4000;
    const KILL_AFTER: usize = 400;
    let fixture = seed(&data).await;
    let server = serve(&data).await;
    let http = http_client();
    let refresh = refresh_token(&http, &server.base, &fixture).await;

    let (base, client, refresh_for_load) = (server.base.clone(), fixture.clone(), refresh.clone());
    let job = move |n: usize| {
        let (http, base, client) = (http.clone(), base.clone(), client.clone());
        let refresh = refresh_for_load.clone();
        async move {
            let grant: &[(&str, &str)] = match n % 2 {
                0 => &[("grant_type", "client_credentials")],
                _ => &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            };
            let res = http
                .post(format!("{base}/o/oauth2/token"))
                .basic_auth(&client.client_id, Some(&client.client_secret))
                .form(grant)
                .send()
                .await;
            match read(res).await {
                Ok((200, body)) => match body["access_token"].as_str() {
                    Some(token) => Outcome::Acked(token.to_owned()),
                    None => Outcome::Refused(200, body.to_string()),
                },
                Ok((status, body)) => Outcome::Refused(status, body.to_string()),
                Err(err) => Outcome::CutOff(err),
            }
        }
    };
    let load = run_load(server, MAX, |acked| acked.len() >= KILL_AFTER, job).await;

    let server = serve(&data).await;
    let http = http_client();
    let tokens: Vec<String> = load.acked.iter().map(|(_, token)| token.clone()).collect();
    let lost: Vec<String> = check_all(&http, &server.base, tokens, |works| !works).await;
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged tokens were lost: {lost:?}",
        lost.len(),
        load.acked.len()
    );
    let res = http
        .post(format!("{}/o/oauth2/token", server.base))
        .basic_auth(&fixture.client_id, Some(&fixture.client_secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())])
        .send()
        .await;
    assert_eq!(read(res).await.unwrap().0, 200, "the refresh token survived too");
    server.kill_9().await;
}

/// 600 `client_credentials` tokens and a refresh token's grant, then their revocations from
/// several tasks (the refresh token first); the server is killed once 200 revocations were
/// acknowledged, the refresh token's among them. After the restart every acknowledged revocation
/// holds, and every token whose revocation was never sent still works.
async fn revocations_survive_kill_9(data: Data) {
    const TOKENS: usize = 600;
    const KILL_AFTER: usize = 200;
    let fixture = seed(&data).await;
    let server = serve(&data).await;
    let http = http_client();
    let refresh = refresh_token(&http, &server.base, &fixture).await;
    // An access token of the refresh token's grant: revoking the refresh token revokes it.
    let granted = {
        let res = http
            .post(format!("{}/o/oauth2/token", server.base))
            .basic_auth(&fixture.client_id, Some(&fixture.client_secret))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())])
            .send()
            .await;
        let (status, body) = read(res).await.unwrap();
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    };
    let mut queue = vec![refresh.clone()];
    queue.extend(issue_client_tokens(&http, &server.base, &fixture, TOKENS).await);
    let queue = Arc::new(queue);

    let (base, to_revoke) = (server.base.clone(), queue.clone());
    let job = move |n: usize| {
        let (http, base, token) = (http.clone(), base.clone(), to_revoke[n].clone());
        async move {
            // Google's form: the token alone; 200 only when this request revoked it.
            let res = http
                .post(format!("{base}/o/oauth2/revoke"))
                .form(&[("token", token.as_str())])
                .send()
                .await;
            match read(res).await {
                Ok((200, _)) => Outcome::Acked(token),
                Ok((status, body)) => Outcome::Refused(status, body.to_string()),
                Err(err) => Outcome::CutOff(err),
            }
        }
    };
    let kill_when =
        |acked: &[(usize, String)]| acked.len() >= KILL_AFTER && acked.iter().any(|(n, _)| *n == 0);
    let load = run_load(server, queue.len(), kill_when, job).await;

    let server = serve(&data).await;
    let http = http_client();
    // The access tokens by tokeninfo; the refresh token (job 0) and its grant below.
    let revoked: Vec<String> =
        load.acked.iter().filter(|(n, _)| *n != 0).map(|(_, token)| token.clone()).collect();
    let revived = check_all(&http, &server.base, revoked, |works| works).await;
    assert!(
        revived.is_empty(),
        "{} of {} acknowledged revocations were lost: {revived:?}",
        revived.len(),
        load.acked.len()
    );
    assert!(!token_works(&http, &server.base, &granted).await, "the grant's access token");
    let res = http
        .post(format!("{}/o/oauth2/token", server.base))
        .basic_auth(&fixture.client_id, Some(&fixture.client_secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())])
        .send()
        .await;
    assert_eq!(read(res).await.unwrap().0, 400, "the revoked refresh token is refused");
    // Tokens whose revocation was never sent still work: the refusals above are the revocations',
    // not a lost database's.
    let untouched: Vec<String> = queue[load.started..].to_vec();
    assert!(!untouched.is_empty(), "the kill came before the last revocation was sent");
    let dead = check_all(&http, &server.base, untouched, |works| !works).await;
    assert!(dead.is_empty(), "tokens never revoked stopped working: {dead:?}");
    server.kill_9().await;
}

/// What one request of the load came to.
#[derive(Debug)]
enum Outcome {
    /// Answered 200: the token issued, or the token revoked.
    Acked(String),
    /// Answered something else (a failure of the test before the kill).
    Refused(u16, String),
    /// No complete answer: the connection failed.
    CutOff(String),
}

/// What a load saw before and around the kill.
#[derive(Debug)]
struct Load {
    /// Acknowledged requests with their job number.
    acked: Vec<(usize, String)>,
    /// Jobs started: every job numbered from here on was never sent.
    started: usize,
}

/// Runs `job(0)`, `job(1)`, … up to `max` on [`WORKERS`] tasks and kills the server (`SIGKILL`)
/// as soon as `kill_when` holds for the acknowledged answers; each task stops at its first request
/// the kill cut off. Asserts that the kill came in the middle of the load: requests were cut off,
/// and not every job had been answered; and that nothing failed before it.
async fn run_load<J, F>(
    server: Served,
    max: usize,
    kill_when: impl Fn(&[(usize, String)]) -> bool + Send + Sync + 'static,
    job: J,
) -> Load
where
    J: Fn(usize) -> F + Clone + Send + 'static,
    F: Future<Output = Outcome> + Send,
{
    struct Shared<K> {
        next: AtomicUsize,
        acked: Mutex<Vec<(usize, String)>>,
        failed: Mutex<Vec<String>>,
        cut_off: AtomicUsize,
        killed: AtomicBool,
        enough: Notify,
        kill_when: K,
    }
    let shared = Arc::new(Shared {
        next: AtomicUsize::new(0),
        acked: Mutex::new(Vec::new()),
        failed: Mutex::new(Vec::new()),
        cut_off: AtomicUsize::new(0),
        killed: AtomicBool::new(false),
        enough: Notify::new(),
        kill_when,
    });
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (shared, job) = (shared.clone(), job.clone());
        workers.spawn(async move {
            loop {
                let n = shared.next.fetch_add(1, Ordering::SeqCst);
                if n >= max {
                    break;
                }
                match job(n).await {
                    Outcome::Acked(token) => {
                        let mut acked = shared.acked.lock().unwrap();
                        acked.push((n, token));
                        if (shared.kill_when)(&acked) {
                            shared.enough.notify_one();
                        }
                    }
                    Outcome::Refused(status, body) => {
                        shared.failed.lock().unwrap().push(format!("job {n}: {status} {body}"));
                    }
                    Outcome::CutOff(err) => {
                        if !shared.killed.load(Ordering::SeqCst) {
                            shared.failed.lock().unwrap().push(format!("job {n}: {err}"));
                        }
                        shared.cut_off.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                }
            }
        });
    }
    let reached = tokio::time::timeout(PATIENCE, shared.enough.notified()).await;
    shared.killed.store(true, Ordering::SeqCst);
    server.kill_9().await;
    while let Some(joined) = workers.join_next().await {
        joined.unwrap();
    }
    let acked = std::mem::take(&mut *shared.acked.lock().unwrap());
    let failed = std::mem::take(&mut *shared.failed.lock().unwrap());
    let started = shared.next.load(Ordering::SeqCst).min(max);
    assert!(reached.is_ok(), "the load never reached the kill: {} acknowledged", acked.len());
    assert!(failed.is_empty(), "requests failed before the kill: {failed:?}");
    assert!(shared.cut_off.load(Ordering::SeqCst) > 0, "the kill cut no request off");
    assert!(acked.len() < max, "the kill came after the load, not in it");
    Load { acked, started }
}

/// A data directory, on PostgreSQL the URL of a fresh database of its own, and configuration
/// from the environment.
struct Data {
    dir: tempfile::TempDir,
    database_url: Option<String>,
    env: Vec<(&'static str, &'static str)>,
}

impl Data {
    fn sqlite() -> Data {
        Data { dir: tempfile::tempdir().unwrap(), database_url: None, env: Vec::new() }
    }

    /// A fresh database on the test server, or `None` (the case is skipped) without one.
    // A test that cannot run says so where the person running the suite looks.
    #[allow(clippy::print_stderr)]
    async fn postgres() -> Option<Data> {
        let Ok(admin_url) = std::env::var("TESSERA_TEST_DATABASE_URL") else {
            eprintln!("SKIPPED: kill -9 on PostgreSQL (TESSERA_TEST_DATABASE_URL unset)");
            return None;
        };
        let name = format!("tessera_kill_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let base = admin_url.rsplit_once('/').unwrap().0;
        let dir = tempfile::tempdir().unwrap();
        Some(Data { dir, database_url: Some(format!("{base}/{name}")), env: Vec::new() })
    }

    fn database_name(&self) -> String {
        let url = self.database_url.as_deref().unwrap();
        url.rsplit_once('/').unwrap().1.to_owned()
    }

    /// `tessera ARGS` on this data, with this data's environment and no other database URL.
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
        command.args(args).arg("--data-dir").arg(self.dir.path());
        if let Some(url) = &self.database_url {
            command.arg("--database-url").arg(url);
        }
        command.env_remove("TESSERA_DATABASE_URL").env("TESSERA_LOG", "warn");
        command.envs(self.env.iter().copied());
        command
    }
}

async fn drop_database(name: &str) {
    let admin_url = std::env::var("TESSERA_TEST_DATABASE_URL").unwrap();
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    let _ = sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&mut admin)
        .await;
}

/// The confidential client and the session `admin dev seed` made: the client is already allowed
/// `openid email` by the session's account.
#[derive(Debug, Clone)]
struct Fixture {
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    session_cookie: String,
}

async fn seed(data: &Data) -> Fixture {
    let out = data.dir.path().join("fixtures.json");
    let args = ["admin", "dev", "seed", "--sessions", "1", "--credentials", "0", "--out"];
    let status =
        data.command(&[&args[..], &[out.to_str().unwrap()]].concat()).status().await.unwrap();
    assert!(status.success(), "seeding failed: {status:?}");
    let fixtures: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let client = &fixtures["oauth_client"];
    let text = |value: &serde_json::Value| value.as_str().unwrap().to_owned();
    Fixture {
        client_id: text(&client["client_id"]),
        client_secret: text(&client["client_secret"]),
        redirect_uri: text(&client["redirect_uri"]),
        session_cookie: text(&fixtures["session_cookies"][0]),
    }
}

/// A running `tessera serve`, its log in the data directory.
struct Served {
    child: tokio::process::Child,
    base: String,
    log: PathBuf,
}

/// Starts `tessera serve` on a free loopback port and returns once it is listening.
async fn serve(data: &Data) -> Served {
    let log = data.dir.path().join(format!("serve-{}.log", uuid::Uuid::new_v4().simple()));
    let mut child = data
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("tessera is listening on http://") {
                return Some(rest.split_whitespace().next().unwrap().to_owned());
            }
        }
        None
    };
    let addr = tokio::time::timeout(PATIENCE, listening).await.unwrap();
    let Some(addr) = addr else {
        panic!("tessera serve did not start: {}", std::fs::read_to_string(&log).unwrap());
    };
    // The rest of the banner is read and dropped so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    Served { child, base: format!("http://{addr}"), log }
}

impl Served {
    /// `kill -9`, and waits until the process is gone.
    async fn kill_9(mut self) {
        self.child.start_kill().unwrap();
        let status = self.child.wait().await.unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "killed by SIGKILL, not ended on its own: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The status and JSON body of a response, or why no complete response came.
async fn read(
    res: Result<reqwest::Response, reqwest::Error>,
) -> Result<(u16, serde_json::Value), String> {
    let res = res.map_err(|err| format!("{err:?}"))?;
    let status = res.status().as_u16();
    let bytes = res.bytes().await.map_err(|err| format!("{err:?}"))?;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    Ok((status, body))
}

/// A refresh token for the fixture's client: the signed-in account's authorization request is
/// answered with a code at once (the client is already allowed), and the code is exchanged.
async fn refresh_token(http: &reqwest::Client, base: &str, fixture: &Fixture) -> String {
    let url = format!(
        "{base}/o/oauth2/v2/auth?response_type=code&client_id={}&redirect_uri={}\
         &scope=openid%20email&access_type=offline&state=s&code_challenge={CHALLENGE}\
         &code_challenge_method=S256",
        fixture.client_id,
        crate::support::urlencode(&fixture.redirect_uri)
    );
    let res =
        http.get(url).header("cookie", format!("TSID={}", fixture.session_cookie)).send().await;
    let res = res.unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let code = location
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("code="))
        .unwrap_or_else(|| panic!("no code in {location}"));
    let code = percent_encoding::percent_decode_str(code).decode_utf8().unwrap().into_owned();
    let res = http
        .post(format!("{base}/o/oauth2/token"))
        .basic_auth(&fixture.client_id, Some(&fixture.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", fixture.redirect_uri.as_str()),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await;
    let (status, body) = read(res).await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["refresh_token"].as_str().unwrap_or_else(|| panic!("no refresh token: {body}")).to_owned()
}

/// `n` `client_credentials` access tokens, asked for by [`WORKERS`] tasks.
async fn issue_client_tokens(
    http: &reqwest::Client,
    base: &str,
    fixture: &Fixture,
    n: usize,
) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let (http, base, fixture) = (http.clone(), base.to_owned(), fixture.clone());
        tasks.spawn(async move {
            let mut tokens = Vec::new();
            for _ in (worker..n).step_by(WORKERS) {
                let res = http
                    .post(format!("{base}/o/oauth2/token"))
                    .basic_auth(&fixture.client_id, Some(&fixture.client_secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await;
                let (status, body) = read(res).await.unwrap();
                assert_eq!(status, 200, "{body}");
                tokens.push(body["access_token"].as_str().unwrap().to_owned());
            }
            tokens
        });
    }
    let mut tokens = Vec::with_capacity(n);
    while let Some(joined) = tasks.join_next().await {
        tokens.extend(joined.unwrap());
    }
    tokens
}

/// Whether tokeninfo accepts the access token (200) or refuses it (400 `invalid_token`).
async fn token_works(http: &reqwest::Client, base: &str, token: &str) -> bool {
    let res = http.get(format!("{base}/oauth2/v3/tokeninfo")).query(&[("access_token", token)]);
    match read(res.send().await).await.unwrap() {
        (200, _) => true,
        (400, body) if body["error"] == "invalid_token" => false,
        (status, body) => panic!("tokeninfo answered {status} {body}"),
    }
}

/// The tokens for which `wrong(works)` holds, checked by [`WORKERS`] tasks.
async fn check_all(
    http: &reqwest::Client,
    base: &str,
    tokens: Vec<String>,
    wrong: fn(bool) -> bool,
) -> Vec<String> {
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (http, base, tokens, next) =
            (http.clone(), base.to_owned(), tokens.clone(), next.clone());
        tasks.spawn(async move {
            let mut found = Vec::new();
            while let Some(token) = tokens.get(next.fetch_add(1, Ordering::SeqCst)) {
                if wrong(token_works(&http, &base, token).await) {
                    found.push(token.clone());
                }
            }
            found
        });
    }
    let mut found = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        found.extend(joined.unwrap());
    }
    found
}
