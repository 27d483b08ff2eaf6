//! Android device login against a real server: master login with an encrypted password, each
//! per-service token type, consent, cross-project and unregistered apps refused, and revocation
//! of a device (account page, password change) killing everything minted through it.

use base64::Engine as _;
use tessera_domain::audit::Actor;
use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};
use tessera_domain::services::NewService;
use tessera_store::CredentialKind;

use crate::support::{T0, TestEnv, test_config};

pub(crate) const PASSWORD: &str = "north23AZ";
pub(crate) const ANDROID_ID: &str = "3a5f0b7c9d1e2f40";
const PACKAGE: &str = "com.example.notes";
const SIG: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567";
pub(crate) const SCOPE: &str = "https://notes.example/auth/notes";

pub(crate) struct Setup {
    pub(crate) env: TestEnv,
    pub(crate) account: tessera_store::AccountRecord,
    android: String,
    web: String,
    web_secret: String,
    other_web: String,
}

async fn client(
    env: &TestEnv,
    project: &tessera_store::ProjectRecord,
    kind: ClientKind,
    name: &str,
    android: bool,
) -> (String, Option<String>) {
    let new = NewClient {
        kind,
        name: name.to_owned(),
        redirect_uris: if android { vec![] } else { vec!["https://notes.example/cb".to_owned()] },
        android_package: android.then(|| PACKAGE.to_owned()),
        android_cert_sha1: android.then(|| {
            SIG.as_bytes()
                .chunks(2)
                .map(|it| std::str::from_utf8(it).unwrap().to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join(":")
        }),
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    let created = clients::create(env.ctx(), project, new, &Actor::Cli).await.unwrap();
    (created.client.record.client_id, created.secret)
}

async fn setup_on(env: TestEnv) -> Setup {
    let account = env.account("alice@example.com", PASSWORD).await;
    let service = NewService {
        name: "notes".to_owned(),
        display_name: "Notes".to_owned(),
        scopes: vec![SCOPE.to_owned()],
        clientlogin_ttl_secs: Some(3600),
        protocols: None,
    };
    tessera_domain::services::add(env.ctx(), service, &Actor::Cli).await.unwrap();
    let ctx = env.ctx();
    let project = tessera_domain::projects::create(ctx, "Notes", "alice@example.com", &Actor::Cli)
        .await
        .unwrap();
    let other = tessera_domain::projects::create(ctx, "Other", "alice@example.com", &Actor::Cli)
        .await
        .unwrap();
    let (android, _) = client(&env, &project, ClientKind::Android, "Notes for Android", true).await;
    let (web, web_secret) = client(&env, &project, ClientKind::Web, "Notes Web", false).await;
    let (other_web, _) = client(&env, &other, ClientKind::Web, "Other Web", false).await;
    Setup { env, account, android, web, web_secret: web_secret.unwrap(), other_web }
}

pub(crate) async fn setup() -> Setup {
    setup_on(TestEnv::start().await).await
}

pub(crate) struct Answer {
    status: u16,
    lines: Vec<(String, String)>,
}

impl Answer {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

pub(crate) async fn post(env: &TestEnv, fields: &[(&str, &str)]) -> Answer {
    let body: String =
        form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let res = reqwest::Client::new()
        .post(env.url("/auth"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let lines = tessera_proto_device::parse_body(&text).unwrap_or_else(|| panic!("{text:?}"));
    assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
    Answer { status, lines }
}

async fn published_key(env: &TestEnv) -> Vec<u8> {
    let text = reqwest::get(env.url("/auth/passwd_key")).await.unwrap().text().await.unwrap();
    base64::engine::general_purpose::STANDARD.decode(text.trim()).unwrap()
}

async fn encrypted(env: &TestEnv, email: &str, password: &str) -> String {
    let key = published_key(env).await;
    let blob = tessera_crypto::passwd_key::blob(&key, email, password).unwrap();
    base64::engine::general_purpose::URL_SAFE.encode(blob)
}

pub(crate) async fn master_login(env: &TestEnv, email: &str, password: &str) -> Answer {
    let blob = encrypted(env, email, password).await;
    post(
        env,
        &[
            ("accountType", "HOSTED_OR_GOOGLE"),
            ("Email", email),
            ("has_permission", "1"),
            ("add_account", "1"),
            ("EncryptedPasswd", &blob),
            ("service", "ac2dm"),
            ("source", "android"),
            ("androidId", ANDROID_ID),
            ("device_country", "us"),
            ("lang", "en"),
            ("sdk_version", "17"),
            ("droidguard_results", "dummy123"),
        ],
    )
    .await
}

async fn token(env: &TestEnv, master: &str, service: &str, sig: &str, permission: bool) -> Answer {
    let mut fields = vec![
        ("accountType", "HOSTED_OR_GOOGLE"),
        ("Email", "alice@example.com"),
        ("EncryptedPasswd", master),
        ("service", service),
        ("source", "android"),
        ("androidId", ANDROID_ID),
        ("app", PACKAGE),
        ("client_sig", sig),
    ];
    if permission {
        fields.push(("has_permission", "1"));
    }
    post(env, &fields).await
}

pub(crate) fn master(answer: &Answer) -> String {
    assert_eq!(answer.status, 200, "{:?}", answer.lines);
    answer.get("Token").unwrap().to_owned()
}

async fn live(env: &TestEnv, secret: &str, kind: CredentialKind) -> bool {
    tessera_domain::credentials::find_valid(env.ctx(), secret, &[kind]).await.unwrap().is_some()
}

#[tokio::test]
async fn master_login_with_an_encrypted_password() {
    let s = setup().await;
    let answer = master_login(&s.env, "alice@example.com", PASSWORD).await;
    let token = master(&answer);
    assert!(token.starts_with("aas_et/"));
    assert_eq!(answer.get("Email"), Some("alice@example.com"));
    assert_eq!(answer.get("firstName"), Some("alice"));
    assert_eq!(answer.get("services"), Some("notes"));
    assert!(answer.get("SID").is_some() && answer.get("LSID").is_some());
    assert!(live(&s.env, &token, CredentialKind::MasterToken).await);
    // Stored as a digest, bound to the device.
    let digest = tessera_crypto::digest::token_digest(&token);
    let row = s.env.ctx().store.credentials().get(&digest).await.unwrap().unwrap();
    assert!(row.data.contains(ANDROID_ID) && !row.data.contains(&token));
    let devices = tessera_domain::device::devices(s.env.ctx(), &s.account.id).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].android_id, ANDROID_ID);
    assert_eq!(devices[0].first_used, T0);
}

#[tokio::test]
async fn wrong_passwords_blobs_and_plain_passwords_over_http_are_refused() {
    let s = setup().await;
    let wrong = master_login(&s.env, "alice@example.com", "nope-nope").await;
    assert_eq!((wrong.status, wrong.get("Error")), (403, Some("BadAuthentication")));
    // The email inside the blob must be the one in the request.
    let blob = encrypted(&s.env, "mallory@example.com", PASSWORD).await;
    let mismatch = post(
        &s.env,
        &[("Email", "alice@example.com"), ("EncryptedPasswd", &blob), ("service", "ac2dm")],
    )
    .await;
    assert_eq!(mismatch.get("Error"), Some("BadAuthentication"));
    // A blob encrypted to Google's key (fingerprint 571be0a4) does not open here.
    let mut google = vec![0_u8, 0x57, 0x1b, 0xe0, 0xa4];
    google.extend_from_slice(&[7; 128]);
    let google = base64::engine::general_purpose::URL_SAFE.encode(google);
    let refused = post(
        &s.env,
        &[("Email", "alice@example.com"), ("EncryptedPasswd", &google), ("service", "ac2dm")],
    )
    .await;
    assert_eq!(refused.get("Error"), Some("BadAuthentication"));
    let plain =
        post(&s.env, &[("Email", "alice@example.com"), ("Passwd", PASSWORD), ("service", "ac2dm")])
            .await;
    assert_eq!(plain.get("Error"), Some("BadAuthentication"));
    let garbage = post(&s.env, &[("Email", "alice@example.com")]).await;
    assert_eq!(garbage.get("Error"), Some("BadRequest"));
}

#[tokio::test]
async fn plain_passwords_when_configured() {
    let env = TestEnv::with_config(|raw| raw.device.plain_passwd = true).await;
    let s = setup_on(env).await;
    let ok = post(
        &s.env,
        &[
            ("Email", "alice@example.com"),
            ("Passwd", PASSWORD),
            ("service", "notes"),
            ("androidId", ANDROID_ID),
        ],
    )
    .await;
    master(&ok);
    let auth = ok.get("Auth").unwrap();
    assert!(live(&s.env, auth, CredentialKind::ClientLoginAuth).await);
}

#[tokio::test]
async fn wrong_passwords_are_counted_by_the_pipeline() {
    let env = TestEnv::with_config(|raw| raw.signin.captcha_after_account_failures = 2).await;
    let s = setup_on(env).await;
    for _ in 0..2 {
        let wrong = master_login(&s.env, "alice@example.com", "nope-nope").await;
        assert_eq!(wrong.get("Error"), Some("BadAuthentication"));
    }
    let captcha = master_login(&s.env, "alice@example.com", PASSWORD).await;
    assert_eq!(captcha.get("Error"), Some("CaptchaRequired"), "{:?}", captcha.lines);
    let token = captcha.get("CaptchaToken").unwrap();
    assert_eq!(captcha.get("CaptchaUrl"), Some(format!("Captcha?ctoken={token}").as_str()));
}

#[tokio::test]
async fn two_step_accounts_need_the_browser_or_an_app_password() {
    let s = setup().await;
    let ctx = s.env.ctx();
    ctx.store.accounts().set_totp(&s.account.id, Some("sealed-secret"), T0).await.unwrap();
    let account = ctx.store.accounts().get(&s.account.id).await.unwrap().unwrap();
    let answer = master_login(&s.env, "alice@example.com", PASSWORD).await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.get("Error"), Some("NeedsBrowser"));
    let url = answer.get("Url").unwrap();
    assert!(url.starts_with(&s.env.url("/signin?")), "{url}");
    assert!(answer.get("ErrorDetail").is_some());
    let asp = tessera_domain::app_passwords::create(ctx, &account, "phone", "").await.unwrap();
    master(&master_login(&s.env, "alice@example.com", &asp).await);
}

#[tokio::test]
async fn per_service_tokens_of_each_type() {
    let s = setup().await;
    let env = &s.env;
    let token = master(&master_login(env, "alice@example.com", PASSWORD).await);

    // A ClientLogin service.
    let cl = self::token(env, &token, "notes", SIG, false).await;
    assert_eq!(cl.get("issueAdvice"), Some("auto"));
    assert!(live(env, cl.get("Auth").unwrap(), CredentialKind::ClientLoginAuth).await);

    // OAuth 2.0: consent first, then auto.
    let service = format!("oauth2:{SCOPE}");
    let ask = self::token(env, &token, &service, SIG, false).await;
    assert_eq!((ask.status, ask.get("issueAdvice")), (200, Some("consent")));
    assert_eq!(ask.get("Auth"), None);
    assert_eq!(ask.get("Permission"), Some("Notes for Android"));
    let given = self::token(env, &token, &service, SIG, true).await;
    assert_eq!(given.get("issueAdvice"), Some("auto"));
    assert_eq!(given.get("grantedScopes"), Some(SCOPE));
    assert_eq!(given.get("Expiry"), Some((T0 + 3600).to_string().as_str()));
    let access = given.get("Auth").unwrap().to_owned();
    assert!(access.starts_with("ya29."));
    let info =
        tessera_domain::oauth2::tokens::inspect(env.ctx(), &access, false).await.unwrap().unwrap();
    assert_eq!(info.client_id, s.android);
    // Remembered: no has_permission needed again.
    let again = self::token(env, &token, &service, SIG, false).await;
    assert_eq!(again.get("issueAdvice"), Some("auto"));
    assert_eq!(
        self::token(env, &token, "oauth2:https://unknown.example/x", SIG, true).await.get("Error"),
        Some("INVALID_SCOPE")
    );

    // Cross-client ID token for the same project's web client.
    let id =
        self::token(env, &token, &format!("audience:server:client_id:{}", s.web), SIG, false).await;
    assert_eq!(id.get("issueAdvice"), Some("auto"));
    let claims = tessera_domain::oauth2::jwt::unverified_claims(id.get("Auth").unwrap()).unwrap();
    assert_eq!(claims["aud"], s.web.as_str());
    assert_eq!(claims["azp"], s.android.as_str());
    assert_eq!(claims["email"], "alice@example.com");
    let verified =
        tessera_domain::oauth2::jwt::verify(env.ctx(), id.get("Auth").unwrap()).await.unwrap();
    assert!(verified.is_ok());

    // A one-time code the back end exchanges at the token endpoint.
    let code = self::token(
        env,
        &token,
        &format!("oauth2:server:client_id:{}:api_scope:{SCOPE}", s.web),
        SIG,
        true,
    )
    .await;
    let code = code.get("Auth").unwrap().to_owned();
    let exchange = |code: String| {
        let web = s.web.clone();
        let secret = s.web_secret.clone();
        let url = env.url("/o/oauth2/token");
        async move {
            reqwest::Client::new()
                .post(url)
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("client_id", web.as_str()),
                    ("client_secret", secret.as_str()),
                    ("redirect_uri", ""),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let res = exchange(code.clone()).await;
    assert_eq!(res.status(), 200);
    let json: serde_json::Value = res.json().await.unwrap();
    assert!(json["access_token"].is_string() && json["refresh_token"].is_string(), "{json}");
    assert_eq!(exchange(code).await.status(), 400, "single use");
}

#[tokio::test]
async fn other_projects_and_unregistered_apps_are_refused() {
    let s = setup().await;
    let env = &s.env;
    let token = master(&master_login(env, "alice@example.com", PASSWORD).await);
    let other =
        token_for(&s, &token, &format!("audience:server:client_id:{}", s.other_web), SIG).await;
    assert_eq!(other.get("Error"), Some("INVALID_AUDIENCE"));
    let code = token_for(
        &s,
        &token,
        &format!("oauth2:server:client_id:{}:api_scope:{SCOPE}", s.other_web),
        SIG,
    )
    .await;
    assert_eq!(code.get("Error"), Some("INVALID_AUDIENCE"));
    let wrong_cert = "ffffffffffffffffffffffffffffffffffffffff";
    for service in [format!("oauth2:{SCOPE}"), format!("audience:server:client_id:{}", s.web)] {
        let refused = token_for(&s, &token, &service, wrong_cert).await;
        assert_eq!(refused.get("Error"), Some("UNREGISTERED_ON_API_CONSOLE"), "{service}");
    }
    // A master token used from another device, or a made-up one.
    let moved =
        post(env, &[("Token", &token), ("service", "notes"), ("androidId", "0000000000000001")])
            .await;
    assert_eq!(moved.get("Error"), Some("BadAuthentication"));
    let made_up = post(env, &[("Token", "aas_et/madeup"), ("service", "notes")]).await;
    assert_eq!(made_up.get("Error"), Some("BadAuthentication"));
}

async fn token_for(s: &Setup, master: &str, service: &str, sig: &str) -> Answer {
    token(&s.env, master, service, sig, true).await
}

/// Everything one device holds: its master token and one token of each stored type.
pub(crate) async fn device_tokens(s: &Setup) -> Vec<(String, CredentialKind)> {
    let env = &s.env;
    let login = master_login(env, "alice@example.com", PASSWORD).await;
    let master = master(&login);
    let cl = token(env, &master, "notes", SIG, false).await.get("Auth").unwrap().to_owned();
    let access = token(env, &master, &format!("oauth2:{SCOPE}"), SIG, true)
        .await
        .get("Auth")
        .unwrap()
        .to_owned();
    vec![
        (login.get("SID").unwrap().to_owned(), CredentialKind::ClientLoginSid),
        (master, CredentialKind::MasterToken),
        (cl, CredentialKind::ClientLoginAuth),
        (access, CredentialKind::AccessToken),
    ]
}

#[tokio::test]
async fn revoking_the_device_kills_every_token_minted_through_it() {
    let s = setup().await;
    let tokens = device_tokens(&s).await;
    for (secret, kind) in &tokens {
        assert!(live(&s.env, secret, *kind).await, "{kind:?}");
    }
    let device = &tessera_domain::device::devices(s.env.ctx(), &s.account.id).await.unwrap()[0];
    tessera_domain::grants::revoke(
        s.env.ctx(),
        &s.account.id,
        &device.grant_id,
        &Actor::Account,
        "",
    )
    .await
    .unwrap();
    for (secret, kind) in &tokens {
        assert!(!live(&s.env, secret, *kind).await, "{kind:?}");
    }
    let again = token(&s.env, &tokens[1].0, "notes", SIG, false).await;
    assert_eq!(again.get("Error"), Some("BadAuthentication"));
    assert!(tessera_domain::device::devices(s.env.ctx(), &s.account.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_password_change_signs_every_device_out() {
    let s = setup().await;
    let tokens = device_tokens(&s).await;
    tessera_domain::accounts::set_password(
        s.env.ctx(),
        &s.account,
        "a-new-password-1".to_owned(),
        None,
        false,
        &Actor::Account,
        "",
    )
    .await
    .unwrap();
    for (secret, kind) in &tokens {
        assert!(!live(&s.env, secret, *kind).await, "{kind:?}");
    }
}

#[tokio::test]
async fn switched_off_device_login_stops_master_tokens() {
    let s = setup().await;
    let master = master(&master_login(&s.env, "alice@example.com", PASSWORD).await);
    let env = s.env.restart(|raw| raw.device.enabled = false).await;
    assert!(!live(&env, &master, CredentialKind::MasterToken).await);
    let res =
        reqwest::Client::new().post(env.url("/auth")).body("service=ac2dm").send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn key_rotation_keeps_the_previous_key_for_a_while() {
    let s = setup().await;
    let old = published_key(&s.env).await;
    s.env.clock.advance(60);
    tessera_domain::device::rotate_key(s.env.ctx(), &Actor::Cli).await.unwrap();
    let new = published_key(&s.env).await;
    assert_ne!(old, new);
    let blob_for = |key: &[u8]| {
        let blob = tessera_crypto::passwd_key::blob(key, "alice@example.com", PASSWORD).unwrap();
        base64::engine::general_purpose::URL_SAFE.encode(blob)
    };
    let env = &s.env;
    let login = |blob: String| async move {
        post(
            env,
            &[("Email", "alice@example.com"), ("EncryptedPasswd", &blob), ("service", "ac2dm")],
        )
        .await
    };
    master(&login(blob_for(&old)).await);
    master(&login(blob_for(&new)).await);
    s.env.clock.advance(60);
    tessera_domain::device::rotate_key(s.env.ctx(), &Actor::Cli).await.unwrap();
    assert_eq!(login(blob_for(&old)).await.get("Error"), Some("BadAuthentication"));
    master(&login(blob_for(&new)).await);
}

#[tokio::test]
async fn device_login_on_postgres() {
    let Some((url, name)) = crate::cluster::fresh_database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut raw = test_config(dir.path());
    raw.database_url = url;
    let env = TestEnv::start_raw(raw, dir, tessera::StartOptions::default()).await;
    assert_eq!(env.ctx().store.backend(), "postgres");
    let s = setup_on(env).await;
    let tokens = device_tokens(&s).await;
    let device = &tessera_domain::device::devices(s.env.ctx(), &s.account.id).await.unwrap()[0];
    tessera_domain::grants::revoke(
        s.env.ctx(),
        &s.account.id,
        &device.grant_id,
        &Actor::Account,
        "",
    )
    .await
    .unwrap();
    for (secret, kind) in &tokens {
        assert!(!live(&s.env, secret, *kind).await, "{kind:?}");
    }
    drop(s);
    crate::cluster::drop_database(&name).await;
}

/// The gpsoauth library (PyPI), with our key and URL swapped in, signs a device in and gets an
/// `oauth2:` token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)]
async fn gpsoauth_signs_in_and_gets_an_oauth2_token() {
    let have_python = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|it| it.status.success());
    if !have_python {
        eprintln!("SKIPPED: gpsoauth interop (no python3)");
        return;
    }
    let site = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/py");
    if !std::path::Path::new(site).join("gpsoauth").is_dir() {
        let status = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target", site, "gpsoauth"])
            .status()
            .unwrap();
        assert!(status.success(), "pip install gpsoauth");
    }
    let s = setup().await;
    let key = base64::engine::general_purpose::STANDARD.encode(published_key(&s.env).await);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/interop/gpsoauth_client.py");
    let service = format!("oauth2:{SCOPE}");
    let args = [
        script.to_owned(),
        site.to_owned(),
        s.env.url("/auth"),
        key,
        "alice@example.com".to_owned(),
        PASSWORD.to_owned(),
        ANDROID_ID.to_owned(),
        service,
        PACKAGE.to_owned(),
        SIG.to_owned(),
    ];
    let output = tokio::process::Command::new("python3").args(&args).output().await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let master = json["master"]["Token"].as_str().unwrap();
    assert!(master.starts_with("aas_et/"), "{json}");
    assert_eq!(json["master"]["Email"], "alice@example.com");
    let auth = json["token"]["Auth"].as_str().unwrap_or_else(|| panic!("{json}"));
    assert!(live(&s.env, auth, CredentialKind::AccessToken).await);
}

/// `weblogin:` answers a MergeSession URL that signs a fresh browser in once and goes on to
/// `continue`.
#[tokio::test]
async fn weblogin_urls_sign_a_fresh_browser_in_once() {
    let s = setup().await;
    let master = master(&master_login(&s.env, "alice@example.com", PASSWORD).await);
    let continue_to = s.env.url("/account");
    let service =
        format!("weblogin:service=notes&continue={}", crate::support::urlencode(&continue_to));
    let answer = token(&s.env, &master, &service, SIG, false).await;
    let url = answer.get("Auth").unwrap_or_else(|| panic!("{:?}", answer.lines)).to_owned();
    assert!(url.starts_with(&s.env.url("/accounts/MergeSession?uberauth=")), "{url}");
    let path = url.strip_prefix(&s.env.base).unwrap().to_owned();
    let mut browser = s.env.browser();
    let page = browser.get(&path).await;
    assert!(matches!(page.status, 302 | 303), "{} {}", page.status, page.body);
    assert_eq!(page.location(), continue_to);
    let account = browser.get("/account").await;
    assert_eq!(account.status, 200);
    assert!(account.body.contains("alice@example.com"));
    let again = s.env.browser().get(&path).await;
    assert!(!matches!(again.status, 302 | 303) || again.location() != continue_to);
}

/// A one-time code handed to the device is redeemed by exactly one of a parallel burst of
/// token-endpoint requests.
#[tokio::test]
async fn a_server_code_redeems_once_under_a_parallel_burst() {
    let s = setup().await;
    let master = master(&master_login(&s.env, "alice@example.com", PASSWORD).await);
    let service = format!("oauth2:server:client_id:{}:api_scope:{SCOPE}", s.web);
    let code = token(&s.env, &master, &service, SIG, true).await;
    let code = code.get("Auth").unwrap_or_else(|| panic!("{:?}", code.lines)).to_owned();
    let http = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (http, url) = (http.clone(), s.env.url("/o/oauth2/token"));
        let (code, web, secret) = (code.clone(), s.web.clone(), s.web_secret.clone());
        tasks.spawn(async move {
            let res = http
                .post(url)
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("client_id", web.as_str()),
                    ("client_secret", secret.as_str()),
                    ("redirect_uri", ""),
                ])
                .send()
                .await
                .unwrap();
            res.status().as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        statuses.push(joined.unwrap());
    }
    assert_eq!(statuses.iter().filter(|it| **it == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|it| matches!(it, 200 | 400)), "{statuses:?}");
}

/// A `weblogin:` MergeSession URL opened by a parallel burst signs exactly one browser in.
#[tokio::test]
async fn a_weblogin_url_signs_in_once_under_a_parallel_burst() {
    let s = setup().await;
    let master = master(&master_login(&s.env, "alice@example.com", PASSWORD).await);
    let continue_to = s.env.url("/account");
    let service =
        format!("weblogin:service=notes&continue={}", crate::support::urlencode(&continue_to));
    let answer = token(&s.env, &master, &service, SIG, false).await;
    let url = answer.get("Auth").unwrap_or_else(|| panic!("{:?}", answer.lines)).to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let url = url.clone();
        let continue_to = continue_to.clone();
        tasks.spawn(async move {
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let res = http.get(url).send().await.unwrap();
            let status = res.status().as_u16();
            assert!(status < 500, "{status}");
            let location = res
                .headers()
                .get("location")
                .and_then(|it| it.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let cookie = res.headers().get_all("set-cookie").iter().count() > 0;
            matches!(status, 302 | 303) && location == continue_to && cookie
        });
    }
    let mut signed_in = 0;
    while let Some(joined) = tasks.join_next().await {
        signed_in += usize::from(joined.unwrap());
    }
    assert_eq!(signed_in, 1);
}

/// A master login for the test account and the `weblogin:` MergeSession URL it buys, going on to
/// `/account`.
#[cfg_attr(not(feature = "browser"), allow(dead_code))]
pub(crate) async fn weblogin_url(s: &Setup) -> String {
    let master = master(&master_login(&s.env, "alice@example.com", PASSWORD).await);
    let continue_to = s.env.url("/account");
    let service =
        format!("weblogin:service=notes&continue={}", crate::support::urlencode(&continue_to));
    let answer = token(&s.env, &master, &service, SIG, false).await;
    answer.get("Auth").unwrap_or_else(|| panic!("{:?}", answer.lines)).to_owned()
}
