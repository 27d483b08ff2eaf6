//! The `tessera` binary: admin commands against a data directory, configuration checks, and a real
//! `serve` process (logs without secrets, graceful shutdown).

use std::io::Write as _;
use std::process::{Command, Stdio};

use tokio::io::{AsyncBufReadExt as _, BufReader};

/// `tessera ARGS --data-dir DIR`, with `stdin` written to it: exit code, stdout, stderr.
pub(crate) fn tessera(
    dir: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("TESSERA_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn admin_accounts_domains_projects_keys_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, out, err) = tessera(d, &["admin", "domain", "add", "corp.example", "--json"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["name"], "corp.example");

    let (code, out, err) = tessera(
        d,
        &[
            "admin",
            "account",
            "add",
            "Quinn@Corp.Example",
            "--name",
            "Quinn",
            "--domain",
            "corp.example",
            "--password-stdin",
            "--json",
        ],
        Some("quinn-password\n"),
    );
    assert_eq!(code, 0, "{err}");
    let account: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(account["email"], "Quinn@corp.example");
    assert_eq!(account["domain"], "corp.example");
    assert_eq!(account["state"], "active");

    let (code, _, err) = tessera(d, &["admin", "account", "add", "quinn@corp.example"], None);
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = tessera(d, &["admin", "account", "add", "not-an-email"], None);
    assert_ne!(code, 0);
    assert!(err.contains("valid email"), "{err}");
    let (code, _, err) = tessera(
        d,
        &["admin", "account", "add", "x@other.example", "--domain", "nope.example"],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("not registered"), "{err}");

    for (command, state) in
        [("disable", "disabled"), ("enable", "active"), ("delete", "deleted"), ("enable", "active")]
    {
        let (code, out, err) =
            tessera(d, &["admin", "account", command, "quinn@corp.example", "--json"], None);
        assert_eq!(code, 0, "{err}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["state"], state);
    }
    let (code, _, err) = tessera(
        d,
        &["admin", "account", "set-password", "quinn@corp.example", "--password-stdin"],
        Some("new-password-1\n"),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = tessera(d, &["admin", "account", "list", "--json"], None);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().unwrap().len(),
        1
    );
    let (code, out, _) =
        tessera(d, &["admin", "account", "show", "QUINN@corp.example", "--json"], None);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["name"], "Quinn");
    let (code, _, err) = tessera(d, &["admin", "account", "show", "nobody@corp.example"], None);
    assert_ne!(code, 0);
    assert!(err.contains("no account"));

    let (code, out, err) = tessera(
        d,
        &["admin", "project", "add", "Payroll", "--owner", "quinn@corp.example", "--json"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["name"], "Payroll");
    let (code, _, _) =
        tessera(d, &["admin", "project", "add", "Payroll", "--owner", "quinn@corp.example"], None);
    assert_ne!(code, 0);

    let (code, out, err) = tessera(
        d,
        &[
            "admin",
            "service",
            "add",
            "cl",
            "--display-name",
            "Calendar",
            "--scope",
            "https://calendar.example.test/feeds/",
            "--json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let service: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(service["clientlogin_ttl_secs"], 14 * 86_400);
    assert_eq!(service["protocols"], serde_json::json!(["authsub", "clientlogin"]));
    // OAuth 1.0 is not served (yet): a service cannot accept it.
    let (code, _, err) = tessera(
        d,
        &[
            "admin",
            "service",
            "add",
            "mail",
            "--display-name",
            "Mail",
            "--scope",
            "https://mail.example.test/feeds/",
            "--protocol",
            "oauth1",
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("'oauth1'") && err.contains("authsub, clientlogin"), "{err}");
    let (code, out, err) = tessera(
        d,
        &[
            "admin",
            "service",
            "add",
            "mail",
            "--display-name",
            "Mail",
            "--scope",
            "https://mail.example.test/feeds/",
            "--protocol",
            "clientlogin",
            "--json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let service: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(service["protocols"], serde_json::json!(["clientlogin"]));
    let (code, _, err) = tessera(
        d,
        &["admin", "service", "add", "Bad Name", "--display-name", "x", "--scope", "https://x/"],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("service name"), "{err}");

    let (code, _, err) = tessera(
        d,
        &[
            "admin",
            "service",
            "add",
            "evil",
            "--display-name",
            "x",
            "--scope",
            "javascript:alert(1)",
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("not a valid scope"), "{err}");

    let (code, out, _) = tessera(d, &["admin", "keys", "list", "--json"], None);
    assert_eq!(code, 0);
    let keys: serde_json::Value = serde_json::from_str(&out).unwrap();
    let states: Vec<_> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|it| it["state"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        states.contains(&"active".to_owned()) && states.contains(&"next".to_owned()),
        "{states:?}"
    );
    let next =
        keys.as_array().unwrap().iter().find(|it| it["state"] == "next").unwrap()["kid"].clone();
    let (code, out, _) = tessera(d, &["admin", "keys", "rotate", "--json"], None);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["active"],
        next,
        "the published key becomes active"
    );
    let (code, out, _) = tessera(d, &["admin", "device", "rotate-key", "--json"], None);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["rotated"], true);

    let (code, out, _) = tessera(
        d,
        &["admin", "audit", "--account", "quinn@corp.example", "--since", "1h", "--json"],
        None,
    );
    assert_eq!(code, 0);
    let events: Vec<String> = serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|it| it["event"].as_str().unwrap().to_owned())
        .collect();
    for expected in
        ["account.create", "account.disable", "account.delete", "account.enable", "password.change"]
    {
        assert!(events.contains(&expected.to_owned()), "{expected} in {events:?}");
    }
    let (code, _, err) = tessera(d, &["admin", "audit", "--since", "yesterday"], None);
    assert_ne!(code, 0);
    assert!(err.contains("--since"));

    // The key-encryption key file was created private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join("kek")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn check_config_names_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(&file, "version = 1\n[signin]\nsesion_ttl_secs = 5\n").unwrap();
    let (code, _, err) =
        tessera(dir.path(), &["check-config", "--config", file.to_str().unwrap()], None);
    assert_ne!(code, 0);
    assert!(err.contains("sesion_ttl_secs"), "{err}");
    std::fs::write(&file, "version = 1\nlisten = \"127.0.0.1:9999\"\n").unwrap();
    let (code, out, err) =
        tessera(dir.path(), &["check-config", "--config", file.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("127.0.0.1:9999"));
}

#[tokio::test]
async fn serve_logs_no_secrets_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = tessera(
        dir.path(),
        &["admin", "account", "add", "rae@example.test", "--password-stdin"],
        Some("rae-secret-password\n"),
    );
    assert_eq!(code, 0, "{err}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("TESSERA_LOG", "debug")
        .env_remove("TESSERA_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = String::new();
    let mut banner = String::new();
    while let Some(line) = stdout.next_line().await.unwrap() {
        banner.push_str(&line);
        banner.push('\n');
        if let Some(rest) = line.strip_prefix("tessera is listening on http://") {
            addr = rest.split_whitespace().next().unwrap().to_owned();
        }
        if line.contains("/setup?token=") {
            break;
        }
    }
    assert!(!addr.is_empty(), "{banner}");
    // No public URL is configured: every link names the address it listens on.
    assert!(banner.contains(&format!("(public URL http://{addr})")), "{banner}");
    assert!(banner.contains(&format!("Open http://{addr}/accounts/ServiceLogin")), "{banner}");
    assert!(banner.contains(&format!("  http://{addr}/setup?token=")), "{banner}");
    let mut b = crate::support::Browser::new(&format!("http://{addr}"));
    let res = b.sign_in("rae@example.test", "rae-secret-password").await;
    assert_eq!(res.status, 303);
    let cookie = b.jar["TSID"].clone();
    assert_eq!(b.get("/account").await.status, 200);
    assert_eq!(b.get("/no/such/page?access_token=query-secret-42").await.status, 404);
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().await.unwrap();
    assert!(status.success(), "graceful exit: {status:?}");
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("request"), "logs were written: {stderr}");
    assert!(stderr.contains("signin.success"), "{stderr}");
    assert!(!stderr.contains("rae-secret-password"), "password in logs");
    assert!(!stderr.contains(&cookie), "session cookie in logs");
    let unmatched = stderr.lines().find(|it| it.contains("/no/such/page")).unwrap_or_default();
    assert!(unmatched.contains("unmatched"), "the unknown path is logged: {stderr}");
    assert!(!stderr.contains("query-secret-42"), "query string in logs");
    let setup_token = banner.split("/setup?token=").nth(1).unwrap().trim();
    assert!(!stderr.contains(setup_token), "setup token in logs");
}

/// A client credentials grant of the client `id` with `secret`.
async fn client_credentials(
    env: &crate::support::TestEnv,
    id: &str,
    secret: &str,
) -> reqwest::Response {
    let form = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)];
    reqwest::Client::new().post(env.url("/o/oauth2/token")).form(&form).send().await.unwrap()
}

/// `dev seed --second-account` adds another signed-in account allowed the bench clients, and
/// leaves the first seed's fixtures working (it rotates no secret); alone it refuses.
#[tokio::test]
async fn dev_seed_second_account_keeps_the_first_seeds_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let seed = |args: &[&str], out: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["admin", "dev", "seed"])
            .args(args)
            .arg("--out")
            .arg(out)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("TESSERA_DATABASE_URL")
            .output()
            .unwrap()
    };
    let read = |path: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let (first, second) = (dir.path().join("first.json"), dir.path().join("second.json"));
    let alone = seed(&["--second-account", "--sessions", "1"], &second);
    assert!(!alone.status.success());
    assert!(String::from_utf8_lossy(&alone.stderr).contains("seed the bench account first"));
    assert!(seed(&["--sessions", "1"], &first).status.success());
    assert!(seed(&["--second-account", "--sessions", "3"], &second).status.success());
    let (first, second) = (read(&first), read(&second));
    assert_eq!(second["account_email"], "bench-2@example.test");
    assert_eq!(second["session_cookies"].as_array().unwrap().len(), 3);

    let mut raw = crate::support::test_config(&data);
    raw.data_dir = data.to_string_lossy().into_owned();
    let env = crate::support::TestEnv::start_raw(raw, dir, tessera::StartOptions::default()).await;
    let mut b = env.browser();
    b.jar.insert("TSID".to_owned(), second["session_cookies"][2].as_str().unwrap().to_owned());
    let list = b.get("/accounts/ListAccounts").await;
    assert!(list.body.contains("bench-2@example.test"), "{}", list.body);
    // The first seed's client secret still works, and the second account has allowed its client.
    let client = &first["oauth_client"];
    let client_id = client["client_id"].as_str().unwrap();
    let res = client_credentials(&env, client_id, client["client_secret"].as_str().unwrap()).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let auth = format!(
        "/o/oauth2/v2/auth?response_type=code&client_id={client_id}&redirect_uri={}\
         &scope=openid%20email&state=s",
        crate::support::urlencode(client["redirect_uri"].as_str().unwrap())
    );
    let res = b.get(&auth).await;
    assert!(matches!(res.status, 302 | 303), "{} {}", res.status, res.body);
    assert!(res.location().contains("code="), "pre-approved: {}", res.location());
}

/// The benchmark fixture command seeds in batches, and what it prints works against a server on
/// the same data: session cookies sign in, the OAuth client gets tokens, and its grant is in place;
/// the OAuth 1.0a consumers' tokens sign resource calls (HMAC-SHA1 and RSA-SHA1).
#[tokio::test]
async fn dev_seed_writes_working_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fixtures.json");
    let data = dir.path().join("data");
    let fixtures_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../crypto/tests/fixtures");
    let status = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["admin", "dev", "seed", "--sessions", "7", "--credentials", "12000", "--out"])
        .arg(&out)
        .args(["--push-devices", "3"])
        .arg("--oauth1-rsa-cert")
        .arg(format!("{fixtures_dir}/authsub-1024.cert.pem"))
        .arg("--data-dir")
        .arg(&data)
        .env_remove("TESSERA_DATABASE_URL")
        .status()
        .unwrap();
    assert!(status.success());
    let fixtures: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(fixtures["session_cookies"].as_array().unwrap().len(), 7);
    let mut raw = crate::support::test_config(&data);
    raw.data_dir = data.to_string_lossy().into_owned();
    let env = crate::support::TestEnv::start_raw(raw, dir, tessera::StartOptions::default()).await;
    assert!(env.ctx().store.credentials().count().await.unwrap() >= 12_007);

    let mut b = env.browser();
    b.jar.insert("TSID".to_owned(), fixtures["session_cookies"][3].as_str().unwrap().to_owned());
    let list = b.get("/accounts/ListAccounts").await;
    assert!(list.body.contains("bench@example.test"), "{}", list.body);

    let client = &fixtures["oauth_client"];
    let (id, secret) = (client["client_id"].as_str().unwrap(), client["client_secret"].as_str());
    let res = client_credentials(&env, id, secret.unwrap()).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // Pre-approved: the authorization request redirects with a code at once.
    let auth = format!(
        "/o/oauth2/v2/auth?response_type=code&client_id={}&redirect_uri={}&scope=openid%20email&access_type=offline&state=s\
         &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        client["client_id"].as_str().unwrap(),
        crate::support::urlencode(client["redirect_uri"].as_str().unwrap())
    );
    let res = b.get(&auth).await;
    assert!(matches!(res.status, 302 | 303), "{} {}", res.status, res.body);
    assert!(
        res.location().starts_with("http://127.0.0.1/bench/callback?code="),
        "{}",
        res.location()
    );

    // The second client issues ES256 JWT access tokens and is pre-approved too.
    let jwt_client = &fixtures["jwt_client"];
    let jwt_id = jwt_client["client_id"].as_str().unwrap();
    let res = client_credentials(&env, jwt_id, jwt_client["client_secret"].as_str().unwrap()).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    let header = access.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some("ES256"), Some("at+jwt")));
    let res = b.get(&auth.replace(client["client_id"].as_str().unwrap(), jwt_id)).await;
    assert!(matches!(res.status, 302 | 303), "{} {}", res.status, res.body);

    // The OAuth 1.0a consumers: each token signs a resource call the caller check accepts.
    use tessera_client::Secret;
    use tessera_client::authsub::AuthSubSigner;
    use tessera_client::oauth1::{Consumer, SignRequest, SignatureMethod, Token};
    let key_pem = std::fs::read_to_string(format!("{fixtures_dir}/authsub-1024.key.pem")).unwrap();
    let hmac = &fixtures["oauth1_hmac"];
    let rsa = &fixtures["oauth1_rsa"];
    let methods = [
        SignatureMethod::HmacSha1(Secret::new(hmac["consumer_secret"].as_str().unwrap())),
        SignatureMethod::RsaSha1(Box::new(AuthSubSigner::from_pem(&key_pem).unwrap())),
    ];
    assert!(rsa["consumer_secret"].is_null(), "an RSA-SHA1 consumer has no secret");
    for (fixture, method) in [hmac, rsa].into_iter().zip(methods) {
        let consumer =
            Consumer { key: fixture["consumer_key"].as_str().unwrap().to_owned(), method };
        let token = Token {
            token: Secret::new(fixture["token"].as_str().unwrap().to_owned()),
            secret: Secret::new(fixture["token_secret"].as_str().unwrap().to_owned()),
        };
        let resource = fixture["resource"].as_str().unwrap();
        let request = SignRequest { token: Some(&token), ..SignRequest::default() };
        let now = tessera_domain::Clock::now(env.clock.as_ref()).unsigned_abs();
        let authorization = consumer
            .authorization_header("GET", &url::Url::parse(resource).unwrap(), &request, now, "s1")
            .unwrap();
        let res = reqwest::Client::new()
            .post(env.url("/accounts/caller"))
            .json(&serde_json::json!({ "authorization": authorization, "method": "GET", "url": resource }))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(status, 200, "{}: {body}", consumer.key);
        assert_eq!(body["protocol"], "oauth1", "{body}");
        assert_eq!(body["client_id"], fixture["consumer_key"], "{body}");
        assert!(body["account_id"].is_string(), "{body}");
    }

    // The push devices: the API key sends to every seeded id, and each device's credential
    // authenticates it for its own registration id.
    let push = &fixtures["push"];
    let devices = push["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 3);
    let ids: Vec<&str> = devices.iter().map(|d| d["registration_id"].as_str().unwrap()).collect();
    let res = reqwest::Client::new()
        .post(env.url("/gcm/send"))
        .header("authorization", format!("key={}", push["api_key"].as_str().unwrap()))
        .json(&serde_json::json!({ "registration_ids": ids, "data": { "n": "1" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!((body["success"].as_u64(), body["failure"].as_u64()), (Some(3), Some(0)), "{body}");
    for (device, result) in devices.iter().zip(body["results"].as_array().unwrap()) {
        assert!(result["message_id"].is_string(), "{body}");
        let credential = device["credential"].as_str().unwrap();
        let found = tessera_domain::push::authenticate_device(
            env.ctx(),
            device["device"].as_str().unwrap(),
            credential,
            tessera_domain::credentials::Recurrence::Often,
        )
        .await
        .unwrap();
        assert!(found.is_some(), "the seeded credential of {device} is refused");
    }
}

/// A `tessera serve --demo` process on a fresh data directory and what it printed up to its last
/// "try it" line.
pub(crate) struct Demo {
    pub(crate) child: tokio::process::Child,
    pub(crate) printed: Vec<String>,
    /// The server's base URL, from its "Open http://…" line.
    pub(crate) base: String,
    _dir: tempfile::TempDir,
}

impl Demo {
    pub(crate) async fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("TESSERA_LOG", "warn")
            .env_remove("TESSERA_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        while let Some(line) = stdout.next_line().await.unwrap() {
            let done = line.contains("tessera admin audit");
            printed.push(line);
            if done {
                break;
            }
        }
        let mut demo = Demo { child, printed, base: String::new(), _dir: dir };
        demo.base = demo
            .line("Open http://")
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_end_matches("/accounts/ServiceLogin")
            .to_owned();
        demo
    }

    /// The first printed line containing `needle`, trimmed.
    pub(crate) fn line(&self, needle: &str) -> String {
        self.printed
            .iter()
            .map(|it| it.trim())
            .find(|it| it.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle}: {}", self.printed.join("\n")))
            .to_owned()
    }
}

/// `serve --demo` prints a ClientLogin `curl` and an AuthSub URL; both work as printed against the
/// demo (its service accepts both protocols), and so do the follow-up commands.
#[tokio::test]
async fn demo_try_it_clientlogin_and_authsub_work_as_printed() {
    let demo = Demo::start().await;
    let line = |needle: &str| demo.line(needle);
    let base = demo.base.clone();
    let text = demo.printed.join("\n");
    let credentials = line("Sign in as");
    let words: Vec<&str> = credentials.split_whitespace().collect();
    let (email, password) = (words[words.len() - 4], words[words.len() - 1]);

    // ClientLogin: `curl -d K=V … URL` is a urlencoded POST of the -d values.
    let curl = line("/accounts/ClientLogin");
    let words: Vec<&str> = curl.split_whitespace().collect();
    assert_eq!(words[0], "curl", "{curl}");
    let body: Vec<&str> = words.windows(2).filter(|it| it[0] == "-d").map(|it| it[1]).collect();
    let http = reqwest::Client::new();
    let res = http
        .post(*words.last().unwrap())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.join("&"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer = res.text().await.unwrap();
    let auth = answer
        .lines()
        .find_map(|it| it.strip_prefix("Auth="))
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(answer.starts_with("SID=") && answer.contains("\nLSID="), "{answer}");
    assert!(line("/accounts/caller").contains("GoogleLogin auth=AUTH"), "{text}");
    let found: serde_json::Value = http
        .post(format!("{base}/accounts/caller"))
        .json(&serde_json::json!({ "authorization": format!("GoogleLogin auth={auth}") }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (found["protocol"].as_str(), found["service"].as_str()),
        (Some("clientlogin"), Some("cl")),
        "{found}"
    );

    // AuthSub: the printed URL, signed in as the demo account, then Allow.
    let request = line("/accounts/AuthSubRequest?");
    assert!(request.starts_with(&format!("{base}/accounts/AuthSubRequest?")), "{request}");
    let mut b = crate::support::Browser::new(&base);
    assert_eq!(b.sign_in(email, password).await.status, 303);
    let page = b.get(&request).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let query = page
        .input("query")
        .unwrap()
        .replace("&#38;", "&")
        .replace("&#61;", "=")
        .replace("&#37;", "%");
    let res = b
        .post(
            "/accounts/AuthSubRequest",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("query", &query), ("action", "allow")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let token = res
        .location()
        .strip_prefix(&format!("{base}/account?token="))
        .unwrap_or_else(|| panic!("{}", res.location()));
    let exchange = line("/accounts/AuthSubSessionToken");
    assert!(exchange.contains("-H 'Authorization: AuthSub token=\"TOKEN\"'"), "{exchange}");
    let res = http
        .get(format!("{base}/accounts/AuthSubSessionToken"))
        .header("authorization", format!("AuthSub token=\"{token}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().starts_with("Token="));

    // Android device login: the web sign-in line, as printed, with the demo account signed in.
    assert!(line("/auth/passwd_key").contains(&format!("{base}/auth/passwd_key")), "{text}");
    let key = http.get(format!("{base}/auth/passwd_key")).send().await.unwrap();
    assert_eq!(key.status(), 200);
    let web = line("/EmbeddedSetup");
    let page = b.get(&format!("{base}/EmbeddedSetup")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let cookie = b.jar.get("oauth_token").cloned().unwrap_or_else(|| panic!("{:?}", page.headers));
    let words: Vec<&str> = web.split(": ").nth(1).unwrap().split_whitespace().collect();
    assert_eq!(words[0], "curl", "{web}");
    let body: Vec<String> = words
        .windows(2)
        .filter(|it| matches!(it[0], "-d" | "--data-urlencode"))
        .map(|it| it[1].replace("COOKIE", &crate::support::urlencode(&cookie)))
        .collect();
    let res = http
        .post(*words.last().unwrap())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.join("&"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer = res.text().await.unwrap();
    assert!(
        answer.contains("\nToken=aas_et/") && answer.contains(&format!("\nEmail={email}\n")),
        "{answer}"
    );
}
