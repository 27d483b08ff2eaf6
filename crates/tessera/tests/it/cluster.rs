//! Two server nodes on one PostgreSQL database behave as one service: a session, a CSRF token, a
//! failure counter or a CAPTCHA made on one node is honoured by the other. Runs when
//! `TESSERA_TEST_DATABASE_URL` is set (the test command sets it when PostgreSQL answers).

use sqlx::{AssertSqlSafe, Connection as _};
use tessera_store::AccountState;

use crate::support::{TestEnv, test_config};

/// A fresh database on the test server, dropped by the caller.
// A test that cannot run says so where the person running the suite looks.
#[allow(clippy::print_stderr)]
pub(crate) async fn fresh_database() -> Option<(String, String)> {
    let Ok(admin_url) = std::env::var("TESSERA_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: two-node PostgreSQL tests (TESSERA_TEST_DATABASE_URL unset)");
        return None;
    };
    let name = format!("tessera_it_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').unwrap().0.to_owned();
    Some((format!("{base}/{name}"), name))
}

pub(crate) async fn drop_database(name: &str) {
    let admin_url = std::env::var("TESSERA_TEST_DATABASE_URL").unwrap();
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    let _ = sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&mut admin)
        .await;
}

pub(crate) async fn node(database_url: &str, kek: &str) -> TestEnv {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = test_config(dir.path());
    raw.database_url = database_url.to_owned();
    raw.kek = kek.to_owned();
    raw.signin.captcha_after_account_failures = 2;
    TestEnv::start_raw(raw, dir, tessera::StartOptions::default()).await
}

/// A confidential web client (redirect `https://app.example/cb`) of a new project owned by
/// `owner`, made through `node`: its id and secret.
async fn web_client(node: &TestEnv, owner: &str) -> (String, String) {
    let actor = tessera_domain::audit::Actor::Cli;
    let project =
        tessera_domain::projects::create(node.ctx(), "Cluster", owner, &actor).await.unwrap();
    let new = tessera_domain::oauth2::clients::NewClient {
        kind: tessera_domain::oauth2::clients::ClientKind::Web,
        name: "Cluster app".to_owned(),
        redirect_uris: vec!["https://app.example/cb".to_owned()],
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    let created =
        tessera_domain::oauth2::clients::create(node.ctx(), &project, new, &actor).await.unwrap();
    (created.client.record.client_id, created.secret.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_share_sessions_csrf_and_counters() {
    let Some((url, name)) = fresh_database().await else { return };
    let kek =
        tessera_crypto::kek::Kek::generate(&tessera_crypto::random::SystemRng::new()).to_base64();
    let a = node(&url, &kek).await;
    let b = node(&url, &kek).await;
    assert_eq!(a.ctx().store.backend(), "postgres");
    a.account("pg@example.test", "password-1").await;

    // A form from node A is posted to node B; the session made there works on node A.
    let mut browser = a.browser();
    let form = browser.get("/accounts/ServiceLogin").await;
    browser.base = b.base.clone();
    let res = browser
        .post(
            "/accounts/ServiceLoginAuth",
            &[("csrf", &form.csrf()), ("Email", "pg@example.test"), ("Passwd", "password-1")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    browser.base = a.base.clone();
    assert_eq!(browser.get("/account").await.status, 200);
    // The CSRF token was used on B, so A refuses it too.
    let replay = browser
        .post(
            "/accounts/ServiceLoginAuth",
            &[("csrf", &form.csrf()), ("Email", "pg@example.test"), ("Passwd", "password-1")],
        )
        .await;
    assert_eq!(replay.status, 400);

    // Failures counted on A make B ask for a CAPTCHA.
    let mut attacker = a.browser();
    attacker.sign_in("pg@example.test", "wrong-1").await;
    attacker.sign_in("pg@example.test", "wrong-2").await;
    let mut elsewhere = b.browser();
    let res = elsewhere.sign_in("pg@example.test", "password-1").await;
    assert!(res.body.contains("Type the characters you see in the picture"), "{}", res.body);

    // Signing out on B ends the session for A.
    browser.base = b.base.clone();
    browser.get("/accounts/Logout").await;
    let mut stale = a.browser();
    stale.jar = browser.jar.clone();
    assert_eq!(stale.get("/account").await.status, 302);

    drop(a);
    drop(b);
    drop_database(&name).await;
}

/// The protocols across two nodes: a ClientLogin `Auth` token made on one node is resolved by the
/// other's caller check; an OAuth code authorized on one node is exchanged on the other, and its
/// refresh token works back on the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_share_protocol_credentials() {
    let Some((url, name)) = fresh_database().await else { return };
    let kek =
        tessera_crypto::kek::Kek::generate(&tessera_crypto::random::SystemRng::new()).to_base64();
    let a = node(&url, &kek).await;
    let b = node(&url, &kek).await;
    let account = a.account("proto@example.test", "password-1").await;
    let service = tessera_domain::services::NewService {
        name: "cl".to_owned(),
        display_name: "Calendar".to_owned(),
        scopes: vec!["https://calendar.example.test/feeds/".to_owned()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    tessera_domain::services::add(a.ctx(), service, &tessera_domain::audit::Actor::Cli)
        .await
        .unwrap();
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // ClientLogin on A, the caller check on B.
    let login = http
        .post(a.url("/accounts/ClientLogin"))
        .form(&[
            ("Email", "proto@example.test"),
            ("Passwd", "password-1"),
            ("service", "cl"),
            ("source", "cluster-test"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let body = login.text().await.unwrap();
    let auth = body.lines().find_map(|it| it.strip_prefix("Auth=")).unwrap().to_owned();
    let caller = http
        .post(b.url("/accounts/caller"))
        .json(&serde_json::json!({ "authorization": format!("GoogleLogin auth={auth}") }))
        .send()
        .await
        .unwrap();
    assert_eq!(caller.status(), 200);
    let caller: serde_json::Value = caller.json().await.unwrap();
    assert_eq!(caller["service"], "cl", "{caller}");

    // OAuth: authorize on A, exchange on B, refresh on A.
    let (client_id, secret) = web_client(&a, "proto@example.test").await;
    tessera_domain::grants::grant(
        a.ctx(),
        &account.id,
        &client_id,
        tessera_domain::credentials::Protocol::OAuth2,
        &["openid".to_owned(), "email".to_owned()],
        "",
    )
    .await
    .unwrap();
    let mut browser = a.browser();
    browser.sign_in("proto@example.test", "password-1").await;
    let authorized = browser
        .get(&format!(
            "/o/oauth2/auth?response_type=code&client_id={client_id}&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid%20email&access_type=offline&state=s"
        ))
        .await;
    assert!(matches!(authorized.status, 302 | 303), "{}", authorized.body);
    let code = url::Url::parse(authorized.location())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let token = |node: &TestEnv, fields: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = node.url("/o/oauth2/token");
        let (id, secret) = (client_id.clone(), secret.clone());
        async move {
            let res =
                http.post(url).basic_auth(id, Some(secret)).form(&fields).send().await.unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, tokens) = token(
        &b,
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", "https://app.example/cb".to_owned()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, refreshed) = token(
        &a,
        vec![("grant_type", "refresh_token".to_owned()), ("refresh_token", refresh_token)],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, replay) = token(
        &a,
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", "https://app.example/cb".to_owned()),
        ],
    )
    .await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (400, Some("invalid_grant")),
        "a code redeems once across nodes"
    );
    // The replayed code revoked the grant: the access token from B is dead on A.
    let info = http
        .get(a.url(&format!(
            "/oauth2/v3/tokeninfo?access_token={}",
            tokens["access_token"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 400);

    drop(a);
    drop(b);
    drop_database(&name).await;
}

/// A code redeemed on two nodes at once gives tokens exactly once; refresh tokens issued on both
/// nodes within one second keep the newest ten, and a refresh works on either node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_race_for_one_code_and_share_the_refresh_cap() {
    use tessera_domain::oauth2::clients;
    use tessera_domain::oauth2::tokens::{self, Remembered, Subject};

    let Some((url, name)) = fresh_database().await else { return };
    let kek =
        tessera_crypto::kek::Kek::generate(&tessera_crypto::random::SystemRng::new()).to_base64();
    let a = node(&url, &kek).await;
    let b = node(&url, &kek).await;
    let m = crate::core::mint(&a).await;
    let client = clients::load(a.ctx(), &m.client_id).await.unwrap().unwrap();
    let scopes: Vec<String> = vec!["openid".into(), "email".into()];
    for round in 0..5 {
        // Each round's replays revoke the grant (RFC 6749 §4.1.2): give it again first.
        let grant = tessera_domain::grants::grant(
            a.ctx(),
            &m.account.id,
            &m.client_id,
            tessera_domain::credentials::Protocol::OAuth2,
            &scopes,
            "",
        )
        .await
        .unwrap();
        let subject = Subject {
            account_id: Some(&m.account.id),
            client_id: client.id(),
            grant_id: Some(&grant.id),
        };
        let remembered = Remembered { offline: true, ..Remembered::default() };
        let code = tokens::code(a.ctx(), subject, "email openid", &remembered).await.unwrap();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(6));
        let mut tasks = Vec::new();
        for i in 0..6 {
            let base = if i % 2 == 0 { a.base.clone() } else { b.base.clone() };
            let (code, id, secret) = (code.clone(), m.client_id.clone(), m.client_secret.clone());
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let res = reqwest::Client::new()
                    .post(format!("{base}/o/oauth2/token"))
                    .basic_auth(id, Some(secret))
                    .form(&[("grant_type", "authorization_code"), ("code", code.as_str())])
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                (status, res.json::<serde_json::Value>().await.unwrap())
            }));
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for task in tasks {
            let (status, body) = task.await.unwrap();
            assert!(status == 200 || status == 400, "{status} {body}");
            match status {
                200 => winners.push(body),
                _ => losers.push(body),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {losers:?}");
    }
    let grant = tessera_domain::grants::grant(
        a.ctx(),
        &m.account.id,
        &m.client_id,
        tessera_domain::credentials::Protocol::OAuth2,
        &scopes,
        "",
    )
    .await
    .unwrap();
    let subject = Subject {
        account_id: Some(&m.account.id),
        client_id: client.id(),
        grant_id: Some(&grant.id),
    };
    let mut issued = Vec::new();
    for i in 0..20 {
        let node = if i % 2 == 0 { &a } else { &b };
        issued
            .push(tokens::refresh_token(node.ctx(), subject, "email openid", None).await.unwrap());
    }
    for (i, token) in issued.iter().enumerate() {
        assert_eq!(tokens::inspect(b.ctx(), token, true).await.unwrap().is_some(), i >= 10, "{i}");
    }
    for (node, token) in [(&a, &issued[18]), (&b, &issued[19])] {
        let res = reqwest::Client::new()
            .post(node.url("/o/oauth2/token"))
            .basic_auth(&m.client_id, Some(&m.client_secret))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    drop((a, b));
    drop_database(&name).await;
}

/// A node keeps a token check for the rest of the clock's second (`[store] token_answers`): a
/// revocation through that node ends its kept answer at once; one through another node, which it
/// cannot see, within the second, never later. The same holds for a deleted client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_token_answers_end_at_once_here_and_within_a_second_elsewhere() {
    let Some((url, name)) = fresh_database().await else { return };
    let kek =
        tessera_crypto::kek::Kek::generate(&tessera_crypto::random::SystemRng::new()).to_base64();
    let a = node(&url, &kek).await;
    let b = node(&url, &kek).await;
    let owner = a.account("kept@example.test", "password-1").await;
    let (client_id, secret) = web_client(&a, "kept@example.test").await;
    let http = reqwest::Client::new();
    let issue_on = |node: &TestEnv, secret: &str| {
        let form = [
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", client_id.clone()),
            ("client_secret", secret.to_owned()),
        ];
        let (http, url) = (http.clone(), node.url("/o/oauth2/token"));
        async move {
            let res = http.post(url).form(&form).send().await.unwrap();
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap();
            (status, body["access_token"].as_str().unwrap_or_default().to_owned())
        }
    };
    let issue = || async {
        let (status, token) = issue_on(&a, &secret).await;
        assert_eq!(status, 200);
        token
    };
    let check = |node: &TestEnv, token: &str| {
        let url = node.url(&format!("/oauth2/v3/tokeninfo?access_token={token}"));
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    let revoke = |node: &TestEnv, token: &str| {
        let url = node.url("/o/oauth2/revoke");
        let form = [
            ("token", token.to_owned()),
            ("client_id", client_id.clone()),
            ("client_secret", secret.clone()),
        ];
        let http = http.clone();
        async move { http.post(url).form(&form).send().await.unwrap().status().as_u16() }
    };
    let kept = |node: &TestEnv| node.ctx().answers.len();

    // Both nodes check the token once and keep the answer.
    let token = issue().await;
    assert_eq!((check(&a, &token).await, check(&b, &token).await), (200, 200));
    assert_eq!((kept(&a), kept(&b)), (1, 1));

    // Revoked through A: A refuses at once. B cannot know until its clock's second ends: it
    // answers from what it kept (the documented bound, asserted so that it stays the bound),
    // and refuses in the next second.
    assert_eq!(revoke(&a, &token).await, 200);
    assert_eq!(check(&a, &token).await, 400, "the node that revoked refuses at once");
    assert_eq!(check(&b, &token).await, 200, "another node keeps its answer for the second");
    b.clock.advance(1);
    assert_eq!(check(&b, &token).await, 400, "and refuses within one second");

    // Revoked through B, which kept it: B refuses at once.
    let token = issue().await;
    assert_eq!(check(&b, &token).await, 200);
    assert_eq!(revoke(&b, &token).await, 200);
    assert_eq!(check(&b, &token).await, 400, "a revocation through this node ends its answer");

    // A new client secret through A: the old one fails on A at once, on B (which kept the
    // client when it issued with it) within the second.
    assert_eq!(issue_on(&b, &secret).await.0, 200);
    let fresh = tessera_domain::oauth2::clients::rotate_secret(
        a.ctx(),
        &client_id,
        &tessera_domain::audit::Actor::Cli,
    )
    .await
    .unwrap();
    assert_ne!(issue_on(&a, &secret).await.0, 200, "the old secret fails here at once");
    assert_eq!(issue_on(&b, &secret).await.0, 200, "another node keeps the client for the second");
    b.clock.advance(1);
    assert_ne!(issue_on(&b, &secret).await.0, 200, "and refuses the old secret within one second");
    assert_eq!(issue_on(&b, &fresh).await.0, 200);
    let secret = fresh;

    // The client deleted through A: B's kept answers for its tokens end within the second.
    let (status, token) = issue_on(&a, &secret).await;
    assert_eq!(status, 200);
    assert_eq!((check(&a, &token).await, check(&b, &token).await), (200, 200));
    assert!(a.ctx().store.projects().delete_client(&client_id).await.unwrap());
    assert_eq!(check(&a, &token).await, 400, "the deleted client's tokens fail here at once");
    b.clock.advance(1);
    assert_eq!(check(&b, &token).await, 400, "and on the other node within one second");

    // A browser session ended through A (the account's sessions page): A's next check refuses
    // it, B, which kept it, within the second.
    let browser = tessera_domain::sessions::ClientInfo::default();
    let (cookie, session) =
        tessera_domain::sessions::create(a.ctx(), &owner, false, false, &browser).await.unwrap();
    assert_eq!((signed_in(&a, &cookie).await, signed_in(&b, &cookie).await), (1, 1));
    assert_eq!((a.ctx().answers.sessions_len(), b.ctx().answers.sessions_len()), (1, 1));
    let actor = tessera_domain::audit::Actor::Account;
    tessera_domain::sessions::revoke(a.ctx(), &owner.id, &session.id, &actor, "").await.unwrap();
    assert_eq!(signed_in(&a, &cookie).await, 0, "the node that ended it refuses at once");
    assert_eq!(signed_in(&b, &cookie).await, 1, "another node keeps its answer for the second");
    b.clock.advance(1);
    assert_eq!(signed_in(&b, &cookie).await, 0, "and refuses within one second");

    // The account disabled through B: B refuses its session at once, A within the second.
    let (cookie, _) =
        tessera_domain::sessions::create(a.ctx(), &owner, false, false, &browser).await.unwrap();
    assert_eq!((signed_in(&a, &cookie).await, signed_in(&b, &cookie).await), (1, 1));
    let now = b.ctx().now();
    b.ctx().store.accounts().set_state(&owner.id, AccountState::Disabled, now).await.unwrap();
    assert_eq!(signed_in(&b, &cookie).await, 0, "a disabled account's session fails here at once");
    assert_eq!(signed_in(&a, &cookie).await, 1, "another node keeps its answer for the second");
    a.clock.advance(1);
    assert_eq!(signed_in(&a, &cookie).await, 0, "and refuses within one second");

    drop(a);
    drop(b);
    drop_database(&name).await;
}

/// How many accounts `node` finds signed in by the browser cookie `cookie`.
async fn signed_in(node: &TestEnv, cookie: &str) -> usize {
    tessera_domain::sessions::load(node.ctx(), cookie).await.unwrap().len()
}
