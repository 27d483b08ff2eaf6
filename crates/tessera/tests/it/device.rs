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
pub(crate) const ANDROID_ID_WEB: &str = "77aa00bb11cc22dd";
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
    // The web sign-in page, whose token the device then exchanges (`ACCESS_TOKEN=1`).
    assert!(url.starts_with(&s.env.url("/EmbeddedSetup?Email=alice%40example")), "{url}");
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

/// `target/py` with gpsoauth from PyPI (installed by `cargo xtask ci`, or here when missing);
/// `None`, said loudly, when python3 is absent.
#[allow(clippy::print_stderr)]
fn gpsoauth_site() -> Option<&'static str> {
    let have_python = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|it| it.status.success());
    if !have_python {
        eprintln!("SKIPPED: gpsoauth interop (no python3)");
        return None;
    }
    let site = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/py");
    if !std::path::Path::new(site).join("gpsoauth").is_dir() {
        let status = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target", site, "gpsoauth"])
            .status()
            .unwrap();
        assert!(status.success(), "pip install gpsoauth");
    }
    Some(site)
}

/// The gpsoauth library (PyPI), with our key and URL swapped in, signs a device in and gets an
/// `oauth2:` token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpsoauth_signs_in_and_gets_an_oauth2_token() {
    let Some(site) = gpsoauth_site() else { return };
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

/// The `<tr>` of the account page's device table that names `android_id`.
fn device_row(body: &str, android_id: &str) -> Option<String> {
    let at = body.find(&format!("<code>{android_id}</code>"))?;
    let start = body[..at].rfind("<tr>")?;
    let end = body[at..].find("</tr>")? + at;
    Some(body[start..end].to_owned())
}

/// A browser signed in to the test account at the account page.
async fn signed_in_browser(env: &TestEnv) -> crate::support::Browser {
    let mut browser = env.browser();
    let res = browser.sign_in("alice@example.com", PASSWORD).await;
    assert!(matches!(res.status, 302 | 303), "{} {}", res.status, res.body);
    browser
}

/// Whether `/accounts/caller` (what a resource server asks) accepts `authorization`.
async fn accepted(env: &TestEnv, authorization: &str) -> bool {
    reqwest::Client::new()
        .post(env.url("/accounts/caller"))
        .json(&serde_json::json!({
            "authorization": authorization, "method": "GET", "url": format!("{SCOPE}/x")
        }))
        .send()
        .await
        .unwrap()
        .status()
        == 200
}

#[tokio::test]
async fn the_account_page_lists_each_device_and_its_last_use() {
    let s = setup().await;
    let env = &s.env;
    let master = master(&master_login(env, "alice@example.com", PASSWORD).await);
    let mut browser = signed_in_browser(env).await;
    let page = browser.get("/account").await;
    assert!(page.body.contains("<h2 id=\"devices\">Devices</h2>"));
    let row = device_row(&page.body, ANDROID_ID).unwrap_or_else(|| panic!("{}", page.body));
    assert!(row.contains("country us, language en, Android SDK 17"), "{row}");
    assert_eq!(row.matches("2026-11-21 00:00 UTC").count(), 2, "first and last use: {row}");
    assert!(row.contains("Sign out this device"), "{row}");
    // A device is not a connected app.
    let apps = &page.body
        [page.body.find("id=\"apps\"").unwrap()..page.body.find("id=\"devices\"").unwrap()];
    assert!(!apps.contains(ANDROID_ID), "{apps}");

    // A token request ten minutes later moves "last used"; another a minute after that writes
    // nothing (the grant's touch happens at most once per five minutes).
    env.clock.advance(600);
    assert!(token(env, &master, "notes", SIG, false).await.get("Auth").is_some());
    let row = device_row(&browser.get("/account").await.body, ANDROID_ID).unwrap();
    assert!(row.contains("2026-11-21 00:00 UTC") && row.contains("2026-11-21 00:10 UTC"), "{row}");
    env.clock.advance(60);
    assert!(token(env, &master, "notes", SIG, false).await.get("Auth").is_some());
    let device = &tessera_domain::device::devices(env.ctx(), &s.account.id).await.unwrap()[0];
    assert_eq!(device.last_used, Some(T0 + 600));
    env.clock.advance(300);
    assert!(token(env, &master, "notes", SIG, false).await.get("Auth").is_some());
    let device = &tessera_domain::device::devices(env.ctx(), &s.account.id).await.unwrap()[0];
    assert_eq!(device.last_used, Some(T0 + 960));
}

#[tokio::test]
async fn signing_a_device_out_on_the_page_kills_its_master_and_minted_tokens() {
    let s = setup().await;
    let env = &s.env;
    let master = master(&master_login(env, "alice@example.com", PASSWORD).await);
    let access = token(env, &master, &format!("oauth2:{SCOPE}"), SIG, true).await;
    let access = access.get("Auth").unwrap().to_owned();
    assert!(accepted(env, &format!("Bearer {access}")).await);
    let mut browser = signed_in_browser(env).await;
    let page = browser.get("/account").await;
    let grant = page.input("device").unwrap();
    // Without the CSRF token nothing happens.
    let forged =
        browser.post("/account/devices/revoke", &[("authuser", "0"), ("device", &grant)]).await;
    assert_eq!(forged.status, 400);
    assert!(accepted(env, &format!("Bearer {access}")).await);
    // Another account's grant id is not a device of this one.
    let csrf = page.csrf();
    let res = browser
        .post("/account/devices/revoke", &[("csrf", &csrf), ("authuser", "0"), ("device", "nope")])
        .await;
    assert_eq!(res.status, 404, "{}", res.body);
    let page = browser.get("/account").await;
    let res = browser
        .post(
            "/account/devices/revoke",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("device", &grant)],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(res.location().ends_with("done=device-revoked"), "{}", res.location());
    let page = browser.get("/account").await;
    assert!(device_row(&page.body, ANDROID_ID).is_none());
    assert!(page.body.contains("No device is signed in"));
    let again = token(env, &master, "notes", SIG, false).await;
    assert_eq!(again.get("Error"), Some("BadAuthentication"));
    assert!(!accepted(env, &format!("Bearer {access}")).await);
    let info = reqwest::get(env.url(&format!("/oauth2/v3/tokeninfo?access_token={access}")))
        .await
        .unwrap()
        .status();
    assert_eq!(info, 400);
}

/// A web sign-in (`/EmbeddedSetup`) with a cookie-keeping client: sign in through the sign-in
/// page, come back, get the `oauth_token` cookie. Returns the token and its `Set-Cookie` line.
pub(crate) async fn web_sign_in_token(
    env: &TestEnv,
    browser: &mut crate::support::Browser,
) -> (String, String) {
    let first = browser.get("/EmbeddedSetup?Email=alice%40example.com").await;
    if first.status == 200 {
        return setup_cookie(&first);
    }
    assert_eq!(first.status, 302, "{}", first.body);
    assert!(first.location().starts_with("/accounts/ServiceLogin?"), "{}", first.location());
    let back = env.url("/EmbeddedSetup?Email=alice%40example.com");
    let signed = browser.sign_in_to("alice@example.com", PASSWORD, &back).await;
    assert!(matches!(signed.status, 302 | 303), "{}", signed.body);
    // Back with the account chosen (`authuser`).
    assert!(signed.location().starts_with(&back), "{}", signed.location());
    let page = browser.get(signed.location()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    setup_cookie(&page)
}

fn setup_cookie(page: &crate::support::Page) -> (String, String) {
    let line = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|it| it.to_str().unwrap().to_owned())
        .find(|it| it.starts_with("oauth_token="))
        .unwrap_or_else(|| panic!("no oauth_token cookie: {:?}", page.headers));
    let value = line.split(';').next().unwrap().strip_prefix("oauth_token=").unwrap().to_owned();
    (value, line)
}

pub(crate) async fn exchange(env: &TestEnv, token: &str, android_id: &str) -> Answer {
    post(
        env,
        &[
            ("accountType", "HOSTED_OR_GOOGLE"),
            ("has_permission", "1"),
            ("add_account", "1"),
            ("ACCESS_TOKEN", "1"),
            ("Token", token),
            ("service", "ac2dm"),
            ("source", "android"),
            ("androidId", android_id),
            ("device_country", "de"),
            ("lang", "de_DE"),
            ("sdk_version", "30"),
            ("get_accountid", "1"),
        ],
    )
    .await
}

#[tokio::test]
async fn a_web_sign_in_token_signs_a_device_in_exactly_once() {
    let s = setup().await;
    let env = &s.env;
    let mut browser = env.browser();
    let (token, line) = web_sign_in_token(env, &mut browser).await;
    assert!(token.starts_with("oauth2_4/"), "{token}");
    for flag in ["Path=/", "HttpOnly", "Max-Age=600"] {
        assert!(line.contains(flag), "{line}");
    }
    // Stored as a digest only.
    let digest = tessera_crypto::digest::token_digest(&token);
    let row = env.ctx().store.credentials().get(&digest).await.unwrap().unwrap();
    assert_eq!(row.kind, CredentialKind::DeviceSetupToken);
    assert!(!row.data.contains(&token));

    // microG's exchange: no Email, which the answer names.
    let answer = exchange(env, &token, ANDROID_ID_WEB).await;
    let token_of_device = master(&answer);
    let master_token = token_of_device.clone();
    assert!(master_token.starts_with("aas_et/"));
    assert_eq!(answer.get("Email"), Some("alice@example.com"));
    assert!(answer.get("SID").is_some() && answer.get("LSID").is_some());
    assert_eq!(answer.get("services"), Some("notes"));
    assert_eq!(
        answer.get("accountId"),
        Some(tessera_domain::accounts::subject(&s.account.id).as_str())
    );
    assert!(
        token_for(&s, &master_token, "notes", SIG).await.get("Auth").is_none(),
        "bound to its device"
    );
    let mut fields = vec![("EncryptedPasswd", token_of_device.as_str()), ("service", "notes")];
    fields.push(("androidId", ANDROID_ID_WEB));
    assert!(post(env, &fields).await.get("Auth").is_some());
    let devices = tessera_domain::device::devices(env.ctx(), &s.account.id).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(
        (devices[0].android_id.as_str(), devices[0].country.as_str()),
        (ANDROID_ID_WEB, "de")
    );

    // Used up.
    let again = exchange(env, &token, ANDROID_ID_WEB).await;
    assert_eq!((again.status, again.get("Error")), (403, Some("BadAuthentication")));
    // Not a master token, and a master token is not a web sign-in token.
    assert_eq!(
        exchange(env, &master_token, ANDROID_ID).await.get("Error"),
        Some("BadAuthentication")
    );
    let (other, _) = web_sign_in_token(env, &mut browser).await;
    let wrong = post(env, &[("EncryptedPasswd", other.as_str()), ("service", "notes")]).await;
    assert_eq!(wrong.get("Error"), Some("BadAuthentication"));
    // gpsoauth sends the Email it was given: it must be the token's account.
    let mismatch = post(
        env,
        &[
            ("ACCESS_TOKEN", "1"),
            ("Token", &other),
            ("Email", "bob@example.com"),
            ("service", "ac2dm"),
        ],
    )
    .await;
    assert_eq!(mismatch.get("Error"), Some("BadAuthentication"));
    master(&exchange(env, &other, ANDROID_ID).await);
}

#[tokio::test]
async fn the_web_sign_in_page_wants_a_recent_password() {
    let s = setup().await;
    let env = &s.env;
    let mut browser = signed_in_browser(env).await;
    // Signed in just now: straight to the token.
    let page = browser.get("/EmbeddedSetup").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.headers.get("cache-control").unwrap(), "no-store");
    setup_cookie(&page);
    // Signed in six minutes ago: the password again first.
    env.clock.advance(360);
    let page = browser.get("/embedded/setup/android").await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert!(
        page.location().starts_with("/accounts/ServiceLogin?add=1&Email=alice%40example"),
        "{}",
        page.location()
    );
    assert!(
        page.headers
            .get_all("set-cookie")
            .iter()
            .all(|it| !it.to_str().unwrap().starts_with("oauth_token="))
    );
}

#[tokio::test]
async fn sixteen_parallel_exchanges_of_one_web_sign_in_token_make_one_master_token() {
    exchange_burst(&setup().await).await;
}

/// The exchange burst and the sign-out race on PostgreSQL, where requests really run in parallel
/// transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_sign_in_exchange_and_sign_out_race_on_postgres() {
    let Some((url, name)) = crate::cluster::fresh_database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut raw = test_config(dir.path());
    raw.database_url = url;
    let env = TestEnv::start_raw(raw, dir, tessera::StartOptions::default()).await;
    assert_eq!(env.ctx().store.backend(), "postgres");
    let s = setup_on(env).await;
    exchange_burst(&s).await;
    sign_out_race(&s).await;
    drop(s);
    crate::cluster::drop_database(&name).await;
}

/// Sixteen parallel `/auth` exchanges of one web sign-in token: exactly one master token.
async fn exchange_burst(s: &Setup) {
    let (token, _) = web_sign_in_token(&s.env, &mut s.env.browser()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (token, url) = (token.clone(), s.env.url("/auth"));
        tasks.spawn(async move {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("ACCESS_TOKEN", "1"),
                    ("Token", token.as_str()),
                    ("service", "ac2dm"),
                    ("androidId", &format!("{i:016x}")),
                ])
                .finish();
            let res = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            let text = res.text().await.unwrap();
            let lines = tessera_proto_device::parse_body(&text).unwrap();
            lines.into_iter().find(|(k, _)| k == "Token").map(|(_, v)| v)
        });
    }
    let mut masters = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        masters.extend(joined.unwrap());
    }
    assert_eq!(masters.len(), 1, "{masters:?}");
    assert!(live(&s.env, &masters[0], CredentialKind::MasterToken).await);
    assert_eq!(tessera_domain::device::devices(s.env.ctx(), &s.account.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn expired_tokens_and_disabled_accounts_are_refused() {
    let s = setup().await;
    let env = &s.env;
    let mut browser = env.browser();
    let (late, _) = web_sign_in_token(env, &mut browser).await;
    env.clock.advance(tessera_domain::device::SETUP_TOKEN_TTL_SECS + 1);
    let answer = exchange(env, &late, ANDROID_ID).await;
    assert_eq!((answer.status, answer.get("Error")), (403, Some("BadAuthentication")));

    let (token, _) = web_sign_in_token(env, &mut browser).await;
    tessera_domain::accounts::set_state(
        env.ctx(),
        &s.account,
        tessera_store::AccountState::Disabled,
        &Actor::Cli,
        "",
    )
    .await
    .unwrap();
    let answer = exchange(env, &token, ANDROID_ID).await;
    assert_eq!((answer.status, answer.get("Error")), (403, Some("BadAuthentication")));
    assert!(answer.get("Token").is_none());
}

/// A ClientLogin login of the test account (no device): SID, LSID and an `Auth` for `notes`.
async fn client_login(env: &TestEnv) -> (String, String, String) {
    let res = env
        .browser()
        .post(
            "/accounts/ClientLogin",
            &[
                ("Email", "alice@example.com"),
                ("Passwd", PASSWORD),
                ("service", "notes"),
                ("source", "test"),
            ],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let line = |key: &str| {
        res.body
            .lines()
            .find_map(|it| it.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key}: {}", res.body))
            .to_owned()
    };
    (line("SID"), line("LSID"), line("Auth"))
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_kind_of_sign_in() {
    let s = setup().await;
    let env = &s.env;
    let held = device_tokens(&s).await;
    let master = held[1].0.clone();
    let (sid, lsid, cl_auth) = client_login(env).await;
    let (sid2, lsid2, _) = client_login(env).await;
    let weblogin = weblogin_url(&s).await;
    let weblogin = weblogin.strip_prefix(&env.base).unwrap().to_owned();
    let mut other = signed_in_browser(env).await;
    let (setup_token, _) = web_sign_in_token(env, &mut other).await;
    let mut browser = signed_in_browser(env).await;
    assert!(accepted(env, &format!("GoogleLogin auth={cl_auth}")).await);
    for secret in [&sid, &sid2] {
        assert!(live(env, secret, CredentialKind::ClientLoginSid).await);
    }
    for secret in [&lsid, &lsid2] {
        assert!(live(env, secret, CredentialKind::ClientLoginLsid).await);
    }

    // Six minutes later the password is asked again, and a wrong one changes nothing.
    env.clock.advance(360);
    let page = browser.get("/account").await;
    assert!(page.body.contains("Sign out everywhere"));
    let res = browser
        .post("/account/signout-everywhere", &[("csrf", &page.csrf()), ("authuser", "0")])
        .await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(res.body.contains("Enter your password"), "{}", res.body);
    let page = browser.get("/account").await;
    let res = browser
        .post(
            "/account/signout-everywhere",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("confirm", "wrong-password")],
        )
        .await;
    assert_eq!(res.status, 400);
    assert!(live(env, &master, CredentialKind::MasterToken).await);
    assert_eq!(other.get("/account").await.status, 200);

    let page = browser.get("/account").await;
    let res = browser
        .post(
            "/account/signout-everywhere",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("confirm", PASSWORD)],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), "/accounts/ServiceLogin?continue=%2Faccount");

    // Browsers: this one and the other.
    for b in [&mut browser, &mut other] {
        let res = b.get("/account").await;
        assert_eq!(res.status, 302);
        assert!(res.location().starts_with("/accounts/ServiceLogin"), "{}", res.location());
    }
    // The device: its master token and what it minted.
    let again = token(env, &master, "notes", SIG, false).await;
    assert_eq!(again.get("Error"), Some("BadAuthentication"));
    for (secret, kind) in &held {
        let auth = match kind {
            CredentialKind::ClientLoginAuth => format!("GoogleLogin auth={secret}"),
            CredentialKind::AccessToken => format!("Bearer {secret}"),
            _ => continue,
        };
        assert!(!accepted(env, &auth).await, "{kind:?}");
    }
    // ClientLogin: Auth at the resource, SID and LSID at IssueAuthToken.
    assert!(!accepted(env, &format!("GoogleLogin auth={cl_auth}")).await);
    for (sid, lsid) in [(&sid, &lsid), (&sid2, &lsid2)] {
        let res = env
            .browser()
            .post("/accounts/IssueAuthToken", &[("SID", sid), ("LSID", lsid), ("service", "gaia")])
            .await;
        assert_eq!((res.status, res.body.as_str()), (403, "Error=BadAuthentication\n"));
    }
    // Web sign-on: the unused MergeSession URL signs nobody in.
    let mut fresh = env.browser();
    let res = fresh.get(&weblogin).await;
    assert!(!(matches!(res.status, 302 | 303) && res.location().ends_with("/account")), "{res:?}");
    assert_eq!(fresh.get("/account").await.status, 302);
    // The unused web sign-in token.
    assert_eq!(
        exchange(env, &setup_token, ANDROID_ID).await.get("Error"),
        Some("BadAuthentication")
    );
    // Connected apps stay unless asked: the app's consent is remembered.
    let apps = tessera_domain::grants::connected(env.ctx(), &s.account.id).await.unwrap();
    assert!(apps.iter().any(|it| it.grant.protocol == "oauth2"), "{apps:?}");
    let events =
        tessera_domain::audit::list(env.ctx(), Some(&s.account.id), None, 5).await.unwrap();
    assert!(events.iter().any(|it| it.event == "signout.everywhere"));

    // With "also remove connected apps" (the password change's option, the same code path).
    let mut browser = signed_in_browser(env).await;
    let page = browser.get("/account").await;
    let res = browser
        .post(
            "/account/signout-everywhere",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("remove_apps", "1")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(tessera_domain::grants::connected(env.ctx(), &s.account.id).await.unwrap().is_empty());
}

/// Per-service token requests racing "sign out everywhere": whatever they got, nothing works
/// afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_requests_racing_sign_out_everywhere_get_nothing_that_survives() {
    sign_out_race(&setup().await).await;
}

/// Sixteen per-service token requests (ClientLogin and `oauth2:`) and four exchanges of web
/// sign-in tokens issued before, racing "sign out everywhere".
async fn sign_out_race(s: &Setup) {
    let master = master(&master_login(&s.env, "alice@example.com", PASSWORD).await);
    // Consent for the app first, so `oauth2:` requests mint.
    assert!(
        token(&s.env, &master, &format!("oauth2:{SCOPE}"), SIG, true).await.get("Auth").is_some()
    );
    let mut browser = s.env.browser();
    let mut setup_tokens = Vec::new();
    for _ in 0..4 {
        setup_tokens.push(web_sign_in_token(&s.env, &mut browser).await.0);
    }
    let mut exchanges = tokio::task::JoinSet::new();
    for (i, setup_token) in setup_tokens.into_iter().enumerate() {
        let url = s.env.url("/auth");
        exchanges.spawn(async move {
            let android_id = format!("{:016x}", 0xabc0 + i);
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("ACCESS_TOKEN", "1"),
                    ("Token", setup_token.as_str()),
                    ("service", "ac2dm"),
                    ("androidId", android_id.as_str()),
                ])
                .finish();
            let res = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(res.status().as_u16() < 500);
            let text = res.text().await.unwrap();
            let lines = tessera_proto_device::parse_body(&text).unwrap();
            lines.into_iter().find(|(k, _)| k == "Token").map(|(_, v)| v)
        });
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (master, url) = (master.clone(), s.env.url("/auth"));
        tasks.spawn(async move {
            let service = if i % 2 == 0 { "notes".to_owned() } else { format!("oauth2:{SCOPE}") };
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("Token", master.as_str()),
                    ("service", service.as_str()),
                    ("androidId", ANDROID_ID),
                    ("app", PACKAGE),
                    ("client_sig", SIG),
                ])
                .finish();
            let res = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(res.status().as_u16() < 500);
            let text = res.text().await.unwrap();
            let lines = tessera_proto_device::parse_body(&text).unwrap();
            let auth = lines.into_iter().find(|(k, _)| k == "Auth").map(|(_, v)| v);
            auth.map(|it| {
                if i % 2 == 0 { format!("GoogleLogin auth={it}") } else { format!("Bearer {it}") }
            })
        });
    }
    let ctx = s.env.ctx().clone();
    let account = s.account.clone();
    let signout = tokio::spawn(async move {
        tessera_domain::accounts::sign_out_everywhere(&ctx, &account, false, &Actor::Account, "")
            .await
    });
    let mut minted = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        minted.extend(joined.unwrap());
    }
    let mut masters = vec![master];
    while let Some(joined) = exchanges.join_next().await {
        masters.extend(joined.unwrap());
    }
    signout.await.unwrap().unwrap();
    for auth in &minted {
        assert!(!accepted(&s.env, auth).await, "{auth} survived");
    }
    for master in &masters {
        assert!(!live(&s.env, master, CredentialKind::MasterToken).await, "{master} survived");
    }
    assert!(tessera_domain::device::devices(s.env.ctx(), &s.account.id).await.unwrap().is_empty());
}

/// gpsoauth's `exchange_token` trades the `oauth_token` of a web sign-in for a master token, which
/// then buys an `oauth2:` token; the same `oauth_token` does not work twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpsoauth_exchanges_a_web_sign_in_token() {
    let Some(site) = gpsoauth_site() else { return };
    let s = setup().await;
    let (oauth_token, _) = web_sign_in_token(&s.env, &mut s.env.browser()).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/interop/gpsoauth_exchange.py");
    let run = |oauth_token: String| {
        let args = [
            script.to_owned(),
            site.to_owned(),
            s.env.url("/auth"),
            "alice@example.com".to_owned(),
            oauth_token,
            ANDROID_ID.to_owned(),
            format!("oauth2:{SCOPE}"),
            PACKAGE.to_owned(),
            SIG.to_owned(),
        ];
        async move {
            let output =
                tokio::process::Command::new("python3").args(&args).output().await.unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
        }
    };
    let json = run(oauth_token.clone()).await;
    let master = json["master"]["Token"].as_str().unwrap_or_else(|| panic!("{json}"));
    assert!(master.starts_with("aas_et/"), "{json}");
    assert_eq!(json["master"]["Email"], "alice@example.com");
    assert!(live(&s.env, master, CredentialKind::MasterToken).await);
    let auth = json["token"]["Auth"].as_str().unwrap_or_else(|| panic!("{json}"));
    assert!(live(&s.env, auth, CredentialKind::AccessToken).await);
    let again = run(oauth_token).await;
    assert_eq!(again["master"]["Error"], "BadAuthentication", "{again}");
}
