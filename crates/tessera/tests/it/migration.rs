//! Moving applications off the legacy protocols: the migration grants at the token endpoint (an
//! AuthSub session token, a ClientLogin `Auth` token or an OAuth 1.0 access token traded once for
//! an OAuth 2.0 refresh token of a client of the same project), their refusals, and the legacy
//! credential consumed exactly once under a parallel burst.

use serde_json::Value;
use tessera_domain::audit::Actor;
use tessera_domain::credentials::Protocol;
use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};
use tessera_domain::services::NewService;
use tessera_store::AccountState;

use crate::oauth1::sign;
use crate::support::{Page, TestEnv, urlencode};

const CAL: &str = "http://www.example.com/calendar/feeds/";
const APP: &str = "app.example.com";
const OAUTH1_GRANT: &str = "urn:ietf:params:oauth:grant-type:migration:oauth1";
const LEGACY_GRANT: &str = "urn:tessera:params:oauth:grant-type:migration:legacy";

/// A service, Alice, the registered legacy application `app.example.com` (AuthSub and OAuth 1.0
/// consumer with an HMAC secret) and a web client in its project and one in another project.
struct Setup {
    alice: tessera_store::AccountRecord,
    consumer_secret: String,
    /// (client id, secret) of a web client in the registration's project.
    same: (String, String),
    /// (client id, secret) of a web client in another project.
    other: (String, String),
}

async fn web_client(
    env: &TestEnv,
    project: &tessera_store::ProjectRecord,
    name: &str,
) -> (String, String) {
    let new = NewClient {
        kind: ClientKind::Web,
        name: name.to_owned(),
        redirect_uris: vec!["https://app.example.com/oauth2cb".to_owned()],
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    let created = clients::create(env.ctx(), project, new, &Actor::Cli).await.unwrap();
    (created.client.record.client_id.clone(), created.secret.unwrap())
}

async fn setup(env: &TestEnv) -> Setup {
    let ctx = env.ctx();
    let new = NewService {
        name: "cl".to_owned(),
        display_name: "cl service".to_owned(),
        scopes: vec![CAL.to_owned()],
        clientlogin_ttl_secs: Some(3600),
        protocols: None,
    };
    tessera_domain::services::add(ctx, new, &Actor::Cli).await.unwrap();
    let alice = env.account("alice@example.com", "north23AZ").await;
    tessera_domain::authsub::register(
        ctx,
        APP,
        "http://app.example.com/",
        None,
        Some("alice@example.com"),
        &Actor::Cli,
    )
    .await
    .unwrap();
    let consumer_secret =
        tessera_domain::oauth1::mint_consumer_secret(ctx, APP, &Actor::Cli).await.unwrap();
    let registration = ctx.store.projects().get_client(APP).await.unwrap().unwrap();
    let project = ctx.store.projects().get(&registration.project_id).await.unwrap().unwrap();
    let same = web_client(env, &project, "Calendar (OAuth 2.0)").await;
    let other_project =
        tessera_domain::projects::create(ctx, "Someone else", "alice@example.com", &Actor::Cli)
            .await
            .unwrap();
    let other = web_client(env, &other_project, "Other").await;
    Setup { alice, consumer_secret, same, other }
}

/// An AuthSub session token of Alice for `app.example.com`, through the browser flow.
async fn authsub_session(env: &TestEnv) -> String {
    let single = authsub_single_use(env).await;
    let page =
        send_get(env, "/accounts/AuthSubSessionToken", &format!("AuthSub token={single}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body.trim_end().strip_prefix("Token=").unwrap().to_owned()
}

/// A ClientLogin `Auth` token of Alice whose `source` is the registered application.
async fn clientlogin_auth(env: &TestEnv) -> String {
    let page = env
        .browser()
        .post(
            "/accounts/ClientLogin",
            &[
                ("accountType", "HOSTED_OR_GOOGLE"),
                ("Email", "alice@example.com"),
                ("Passwd", "north23AZ"),
                ("service", "cl"),
                ("source", APP),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body.lines().find_map(|it| it.strip_prefix("Auth=")).unwrap().to_owned()
}

/// An OAuth 1.0 access token and secret of Alice for the consumer `app.example.com`.
async fn oauth1_access(env: &TestEnv, alice: &tessera_store::AccountRecord) -> (String, String) {
    let ctx = env.ctx();
    let scopes = vec![CAL.to_owned()];
    let grant = tessera_domain::grants::grant(ctx, &alice.id, APP, Protocol::OAuth1, &scopes, "")
        .await
        .unwrap();
    tessera_domain::oauth1::issue_for_grant(ctx, &grant).await.unwrap()
}

async fn send_get(env: &TestEnv, path: &str, authorization: &str) -> Page {
    crate::oauth1::send("GET", &env.url(path), authorization, None).await
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn post_token(
    env: &TestEnv,
    pairs: &[(&str, &str)],
    authorization: Option<&str>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(env.url("/o/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs));
    if let Some(authorization) = authorization {
        req = req.header("authorization", authorization);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// The legacy-token migration grant for the client `(id, secret)`.
async fn migrate_legacy(env: &TestEnv, client: &(String, String), token: &str) -> (u16, Value) {
    let pairs = [
        ("grant_type", LEGACY_GRANT),
        ("legacy_token", token),
        ("client_id", client.0.as_str()),
        ("client_secret", client.1.as_str()),
    ];
    post_token(env, &pairs, None).await
}

/// The OAuth 1.0 migration grant: the token request signed by the consumer with the access token.
async fn migrate_oauth1(
    env: &TestEnv,
    client: &(String, String),
    consumer_secret: &str,
    access: &(String, String),
    nonce: &str,
) -> (u16, Value) {
    let url = env.url("/o/oauth2/token");
    let body = [
        ("grant_type", OAUTH1_GRANT),
        ("client_id", client.0.as_str()),
        ("client_secret", client.1.as_str()),
    ];
    let now = tessera_domain::Clock::now(env.clock.as_ref()).to_string();
    let header = sign(
        "POST",
        &url,
        &[
            ("oauth_consumer_key", APP),
            ("oauth_nonce", nonce),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", &now),
            ("oauth_token", &access.0),
            ("oauth_version", "1.0"),
        ],
        &body,
        consumer_secret,
        &access.1,
    );
    post_token(env, &body, Some(&header)).await
}

/// What the caller check says of an `Authorization` value.
async fn caller_status(env: &TestEnv, authorization: &str) -> u16 {
    reqwest::Client::new()
        .post(env.url("/accounts/caller"))
        .json(&serde_json::json!({ "authorization": authorization, "method": "GET", "url": CAL }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A successful migration: tokens on the legacy scopes, a refresh token that refreshes, and an
/// OAuth 2.0 grant to the new client.
async fn assert_migrated(env: &TestEnv, setup: &Setup, answer: &(u16, Value)) {
    let (status, body) = answer;
    assert_eq!(*status, 200, "{body}");
    assert_eq!(body["scope"], CAL);
    assert_eq!(body["token_type"], "Bearer");
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(caller_status(env, &format!("Bearer {access}")).await, 200);
    let refresh = body["refresh_token"].as_str().unwrap();
    let pairs = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", setup.same.0.as_str()),
        ("client_secret", setup.same.1.as_str()),
    ];
    let (status, refreshed) = post_token(env, &pairs, None).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["scope"], CAL);
    let live = env.ctx().store.grants().list_by_account(&setup.alice.id).await.unwrap();
    assert!(
        live.iter().any(|it| it.revoked_at.is_none()
            && it.client_id == setup.same.0
            && it.protocol == "oauth2"
            && it.scopes == CAL),
        "{live:?}"
    );
}

fn assert_refused(answer: &(u16, Value), error: &str) {
    assert_eq!(answer.0, if error == "invalid_client" { 401 } else { 400 }, "{}", answer.1);
    assert_eq!(answer.1["error"], error, "{}", answer.1);
}

#[tokio::test]
async fn migration_trades_each_legacy_credential_once_for_a_refresh_token() {
    let env = TestEnv::start().await;
    let setup = setup(&env).await;

    let session = authsub_session(&env).await;
    let answer = migrate_legacy(&env, &setup.same, &session).await;
    assert_migrated(&env, &setup, &answer).await;
    assert_eq!(caller_status(&env, &format!("AuthSub token={session}")).await, 401);
    assert_refused(&migrate_legacy(&env, &setup.same, &session).await, "invalid_grant");

    let auth = clientlogin_auth(&env).await;
    let answer = migrate_legacy(&env, &setup.same, &auth).await;
    assert_migrated(&env, &setup, &answer).await;
    assert_eq!(caller_status(&env, &format!("GoogleLogin auth={auth}")).await, 401);
    assert_refused(&migrate_legacy(&env, &setup.same, &auth).await, "invalid_grant");

    let access = oauth1_access(&env, &setup.alice).await;
    let answer = migrate_oauth1(&env, &setup.same, &setup.consumer_secret, &access, "n1").await;
    assert_migrated(&env, &setup, &answer).await;
    let again = migrate_oauth1(&env, &setup.same, &setup.consumer_secret, &access, "n2").await;
    assert_refused(&again, "invalid_grant");

    // The audit log names each migration.
    let filter = tessera_store::AuditFilter { account_id: None, since: None, limit: 1000 };
    let events = env.ctx().store.audit().list(&filter).await.unwrap();
    assert_eq!(events.iter().filter(|it| it.event == "legacy.migrate").count(), 3);

    // Discovery advertises both grant types.
    let meta: Value = reqwest::get(env.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let supported = meta["grant_types_supported"].as_array().unwrap();
    assert!(supported.contains(&Value::from(OAUTH1_GRANT)), "{meta}");
    assert!(supported.contains(&Value::from(LEGACY_GRANT)), "{meta}");
}

#[tokio::test]
async fn migration_is_refused_across_projects_and_for_dead_grants_accounts_and_clients() {
    let env = TestEnv::start().await;
    let setup = setup(&env).await;
    let ctx = env.ctx();
    let session = authsub_session(&env).await;
    let auth = clientlogin_auth(&env).await;
    let access = oauth1_access(&env, &setup.alice).await;

    // Another project's client: refused, and the legacy credentials still work.
    assert_refused(&migrate_legacy(&env, &setup.other, &session).await, "invalid_grant");
    assert_refused(&migrate_legacy(&env, &setup.other, &auth).await, "invalid_grant");
    let answer = migrate_oauth1(&env, &setup.other, &setup.consumer_secret, &access, "x1").await;
    assert_refused(&answer, "invalid_grant");
    assert_eq!(caller_status(&env, &format!("AuthSub token={session}")).await, 200);
    assert_eq!(caller_status(&env, &format!("GoogleLogin auth={auth}")).await, 200);

    // A wrong client secret, a public client, an unsigned OAuth 1.0 migration, a garbage token.
    let wrong = (setup.same.0.clone(), "not-the-secret".to_owned());
    assert_refused(&migrate_legacy(&env, &wrong, &session).await, "invalid_client");
    let unsigned = [
        ("grant_type", OAUTH1_GRANT),
        ("client_id", setup.same.0.as_str()),
        ("client_secret", setup.same.1.as_str()),
    ];
    assert_refused(&post_token(&env, &unsigned, None).await, "invalid_request");
    assert_refused(&migrate_legacy(&env, &setup.same, "no-such-token").await, "invalid_grant");
    let bad_signature = migrate_oauth1(&env, &setup.same, "wrong-secret", &access, "x2").await;
    assert_refused(&bad_signature, "invalid_grant");
    let registration = ctx.store.projects().get_client(APP).await.unwrap().unwrap();
    let project = ctx.store.projects().get(&registration.project_id).await.unwrap().unwrap();
    let installed = NewClient {
        kind: ClientKind::Installed,
        name: "Desktop".to_owned(),
        redirect_uris: vec!["http://127.0.0.1/cb".to_owned()],
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    let public = clients::create(ctx, &project, installed, &Actor::Cli).await.unwrap();
    let pairs = [
        ("grant_type", LEGACY_GRANT),
        ("legacy_token", session.as_str()),
        ("client_id", public.client.record.client_id.as_str()),
    ];
    assert_refused(&post_token(&env, &pairs, None).await, "unauthorized_client");
    // None of that consumed anything.
    assert_eq!(caller_status(&env, &format!("AuthSub token={session}")).await, 200);

    // A disabled account: refused; enabled again, the same token migrates.
    tessera_domain::accounts::set_state(ctx, &setup.alice, AccountState::Disabled, &Actor::Cli, "")
        .await
        .unwrap();
    assert_refused(&migrate_legacy(&env, &setup.same, &auth).await, "invalid_grant");
    let alice = ctx.store.accounts().get(&setup.alice.id).await.unwrap().unwrap();
    tessera_domain::accounts::set_state(ctx, &alice, AccountState::Active, &Actor::Cli, "")
        .await
        .unwrap();
    assert_migrated(&env, &setup, &migrate_legacy(&env, &setup.same, &auth).await).await;

    // A revoked grant: the person removed the application's access.
    let grants = ctx.store.grants().list_by_account(&setup.alice.id).await.unwrap();
    let authsub_grant =
        grants.iter().find(|it| it.protocol == "authsub" && it.revoked_at.is_none()).unwrap();
    tessera_domain::grants::revoke(ctx, &setup.alice.id, &authsub_grant.id, &Actor::Account, "")
        .await
        .unwrap();
    assert_refused(&migrate_legacy(&env, &setup.same, &session).await, "invalid_grant");

    // A deleted OAuth 2.0 client, then a deleted legacy registration.
    let doomed = web_client(&env, &project, "Doomed").await;
    clients::delete(ctx, &doomed.0, &Actor::Cli).await.unwrap();
    let answer = migrate_oauth1(&env, &doomed, &setup.consumer_secret, &access, "x3").await;
    assert_refused(&answer, "invalid_client");
    tessera_domain::authsub::unregister(ctx, APP, &Actor::Cli).await.unwrap();
    let answer = migrate_oauth1(&env, &setup.same, &setup.consumer_secret, &access, "x4").await;
    assert_refused(&answer, "invalid_grant");
}

/// `n` concurrent migrations of one legacy credential: exactly one gets tokens.
async fn burst<F, Fut>(n: usize, one: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = (u16, Value)> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(one(i))).collect();
    let mut won = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            200 => won += 1,
            400 => assert_eq!(body["error"], "invalid_grant", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migration_consumes_the_legacy_credential_once_under_a_parallel_burst() {
    let env = std::sync::Arc::new(TestEnv::start().await);
    let setup = std::sync::Arc::new(setup(&env).await);
    for token in [authsub_session(&env).await, clientlogin_auth(&env).await] {
        let (env, setup) = (env.clone(), setup.clone());
        burst(16, move |_| {
            let (env, setup, token) = (env.clone(), setup.clone(), token.clone());
            async move { migrate_legacy(&env, &setup.same, &token).await }
        })
        .await;
    }
    let access = oauth1_access(&env, &setup.alice).await;
    let (env2, setup2) = (env.clone(), setup.clone());
    burst(16, move |i| {
        let (env, setup, access) = (env2.clone(), setup2.clone(), access.clone());
        async move {
            let nonce = format!("burst{i}");
            migrate_oauth1(&env, &setup.same, &setup.consumer_secret, &access, &nonce).await
        }
    })
    .await;
    // Each burst's winner holds one refresh token: three in all.
    let now = tessera_domain::Clock::now(env.clock.as_ref());
    let tokens = env
        .ctx()
        .store
        .credentials()
        .list_live_by_account(&setup.alice.id, tessera_store::CredentialKind::RefreshToken, now)
        .await
        .unwrap();
    assert_eq!(tokens.len(), 3);
    // The first burst's winner recorded Alice's permission once; no loser recorded another, and
    // the later bursts found it held.
    assert_eq!(oauth2_grants_to(&env, &setup).await, 1);
    assert_eq!(grants_given_to(&env, &setup).await, 1, "one grant given, by the winner");
}

/// Alice's grants to the OAuth 2.0 web client of the registration's project, live or not.
async fn oauth2_grants_to(env: &TestEnv, setup: &Setup) -> usize {
    let grants = env.ctx().store.grants().list_by_account(&setup.alice.id).await.unwrap();
    grants.iter().filter(|it| it.client_id == setup.same.0 && it.protocol == "oauth2").count()
}

/// The grants given to the OAuth 2.0 web client of the registration's project, by the audit log.
async fn grants_given_to(env: &TestEnv, setup: &Setup) -> usize {
    let filter = tessera_store::AuditFilter { account_id: None, since: None, limit: 1000 };
    let events = env.ctx().store.audit().list(&filter).await.unwrap();
    let to_client = |detail: &str| {
        let detail: Value = serde_json::from_str(detail).unwrap();
        detail["client"] == setup.same.0.as_str()
    };
    events.iter().filter(|it| it.event == "grant.create" && to_client(&it.detail)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_migrations_to_several_clients_leave_one_grant() {
    // Each racer asks for a different client of the project, so none finds another's grant
    // held: a migration that recorded its grant before consuming the credential would leave one
    // grant per racer that got that far.
    let env = std::sync::Arc::new(TestEnv::start().await);
    let setup = setup(&env).await;
    let registration = env.ctx().store.projects().get_client(APP).await.unwrap().unwrap();
    let project = env.ctx().store.projects().get(&registration.project_id).await.unwrap().unwrap();
    let racers = 16;
    let mut clients = Vec::new();
    for i in 0..racers {
        clients.push(web_client(&env, &project, &format!("Calendar {i}")).await);
    }
    let clients = std::sync::Arc::new(clients);
    let session = authsub_session(&env).await;
    let (env2, clients2) = (env.clone(), clients.clone());
    burst(racers, move |i| {
        let (env, clients, session) = (env2.clone(), clients2.clone(), session.clone());
        async move { migrate_legacy(&env, &clients[i], &session).await }
    })
    .await;
    let ids: Vec<&str> = clients.iter().map(|(id, _)| id.as_str()).collect();
    let grants = env.ctx().store.grants().list_by_account(&setup.alice.id).await.unwrap();
    let given: Vec<_> = grants.iter().filter(|it| ids.contains(&it.client_id.as_str())).collect();
    assert_eq!(given.len(), 1, "only the winner's client holds a grant: {given:?}");
    let filter = tessera_store::AuditFilter { account_id: None, since: None, limit: 1000 };
    let events = env.ctx().store.audit().list(&filter).await.unwrap();
    let audited = events.iter().filter(|it| {
        let detail: Value = serde_json::from_str(&it.detail).unwrap();
        it.event == "grant.create" && ids.iter().any(|id| detail["client"] == *id)
    });
    assert_eq!(audited.count(), 1, "one grant.create, the winner's");
}

/// One protocol's dates: warned from `T0 + 100`, refused from `T0 + 200`.
const WARN: i64 = crate::support::T0 + 100;
const REFUSE: i64 = crate::support::T0 + 200;

fn assert_no_deprecation(page: &Page) {
    assert!(page.headers.get("deprecation").is_none(), "{:?}", page.headers);
    assert!(page.headers.get("sunset").is_none(), "{:?}", page.headers);
}

fn assert_deprecation(env: &TestEnv, page: &Page) {
    assert_eq!(page.headers["deprecation"], format!("@{WARN}").as_str(), "{:?}", page.headers);
    assert_eq!(page.headers["sunset"], tessera_domain::legacy::http_date(REFUSE).as_str());
    assert_eq!(
        page.headers["link"],
        format!("<{}/accounts/LegacyMigration>; rel=\"deprecation\"", env.base).as_str()
    );
}

async fn clientlogin_page(env: &TestEnv, source: &str) -> Page {
    env.browser()
        .post(
            "/accounts/ClientLogin",
            &[
                ("Email", "alice@example.com"),
                ("Passwd", "north23AZ"),
                ("service", "cl"),
                ("source", source),
            ],
        )
        .await
}

async fn request_token_page(env: &TestEnv, secret: &str, nonce: &str) -> Page {
    let url = env.url(&format!("/accounts/OAuthGetRequestToken?scope={}", urlencode(CAL)));
    let now = tessera_domain::Clock::now(env.clock.as_ref()).to_string();
    let header = sign(
        "GET",
        &url,
        &[
            ("oauth_callback", "oob"),
            ("oauth_consumer_key", APP),
            ("oauth_nonce", nonce),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", &now),
            ("oauth_version", "1.0"),
        ],
        &[],
        secret,
        "",
    );
    crate::oauth1::send("GET", &url, &header, None).await
}

#[tokio::test]
async fn deprecation_dates_warn_then_refuse_each_protocols_main_endpoint() {
    let env = TestEnv::with_config(|raw| {
        let (warn, refuse) = (WARN.to_string(), REFUSE.to_string());
        let legacy = &mut raw.legacy;
        legacy.clientlogin_warn_from = warn.clone();
        legacy.clientlogin_refuse_from = refuse.clone();
        legacy.authsub_warn_from = warn.clone();
        legacy.authsub_refuse_from = refuse.clone();
        legacy.oauth1_warn_from = warn.clone();
        legacy.oauth1_refuse_from = refuse.clone();
        // RFC 3339 works too: T0 is 2026-11-21T00:00:00Z.
        legacy.openid2_warn_from = "2026-11-21T00:01:40Z".to_owned();
        legacy.openid2_refuse_from = "2026-11-21T00:03:20Z".to_owned();
    })
    .await;
    let setup = setup(&env).await;
    let authsub_path = format!(
        "/accounts/AuthSubRequest?next={}&scope={}&session=1",
        urlencode("http://app.example.com/cb"),
        urlencode(CAL)
    );
    let openid_path = format!(
        "/accounts/o8/ud?{}",
        crate::openid2::checkid(
            "checkid_setup",
            None,
            crate::openid2::RETURN_TO,
            crate::openid2::REALM
        )
    );

    // Before the warn-from date: no headers, everything works.
    let page = clientlogin_page(&env, APP).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_no_deprecation(&page);
    let page = env.browser().get(&authsub_path).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert_no_deprecation(&page);
    let page = request_token_page(&env, &setup.consumer_secret, "d1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_no_deprecation(&page);
    let page = env.browser().get(&openid_path).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert_no_deprecation(&page);

    // Between the dates: the headers, and everything still works.
    env.clock.set(WARN);
    let page = clientlogin_page(&env, APP).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_deprecation(&env, &page);
    let page = env.browser().get(&authsub_path).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert_deprecation(&env, &page);
    let page = request_token_page(&env, &setup.consumer_secret, "d2").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_deprecation(&env, &page);
    let page = env.browser().get(&openid_path).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert_deprecation(&env, &page);

    // From the refuse-from date: each protocol's own error, with the link.
    env.clock.set(REFUSE);
    let link = format!("{}/accounts/LegacyMigration", env.base);
    let page = clientlogin_page(&env, APP).await;
    assert_eq!(page.status, 403);
    assert_eq!(page.body, format!("Error=ServiceDisabled\nUrl={link}\n"));
    assert_deprecation(&env, &page);
    let page = env.browser().get(&authsub_path).await;
    assert_eq!(page.status, 403);
    assert!(
        page.body.contains(&format!(
            "<H1>AuthSub is no longer available for this application - see {link}</H1>"
        )),
        "{}",
        page.body
    );
    assert!(page.body.contains("<H2>Error 403</H2>"), "{}", page.body);
    let page = request_token_page(&env, &setup.consumer_secret, "d3").await;
    assert_eq!(page.status, 401);
    assert_eq!(
        page.body,
        format!(
            "consumer_key_refused\noauth_problem_advice:{}\n",
            tessera_proto_oauth1::encode(&link)
        )
    );
    assert!(page.headers["www-authenticate"].to_str().unwrap().contains("consumer_key_refused"));
    let page = env.browser().get(&openid_path).await;
    assert_eq!(page.status, 302, "{}", page.body);
    let fields = crate::openid2::response_fields(page.location());
    assert_eq!(fields["mode"], "error");
    assert_eq!(fields["reference"], link);
    assert!(fields["error"].contains(&link), "{fields:?}");
    // The page the link names exists.
    let res = reqwest::get(&link).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);

    // One application gets more time: its own refuse-from date overrides the protocol's, others
    // stay refused.
    let later = tessera_domain::legacy::Dates { warn_from: None, refuse_from: Some(REFUSE + 1000) };
    tessera_domain::legacy::set_deprecation(
        env.ctx(),
        Protocol::ClientLogin,
        APP,
        later,
        &Actor::Cli,
    )
    .await
    .unwrap();
    let page = clientlogin_page(&env, APP).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.headers["deprecation"], format!("@{WARN}").as_str());
    assert_eq!(page.headers["sunset"], tessera_domain::legacy::http_date(REFUSE + 1000).as_str());
    assert_eq!(clientlogin_page(&env, "Other-App-1.0").await.status, 403);

    // Migration still works after the refuse-from date: that is the way out.
    let auth = {
        let page = clientlogin_page(&env, APP).await;
        page.body.lines().find_map(|it| it.strip_prefix("Auth=")).unwrap().to_owned()
    };
    assert_migrated(&env, &setup, &migrate_legacy(&env, &setup.same, &auth).await).await;

    // Every request was counted, per protocol and application.
    let usage = tessera_domain::legacy::usage(env.ctx()).await.unwrap();
    let requests = |protocol: &str, client: &str| {
        usage
            .iter()
            .find(|it| it.protocol == protocol && it.client_id == client)
            .map(|it| it.requests)
    };
    assert_eq!(requests("clientlogin", APP), Some(5));
    assert_eq!(requests("clientlogin", "Other-App-1.0"), Some(1));
    assert_eq!(requests("authsub", APP), Some(3));
    assert_eq!(requests("oauth1", APP), Some(3));
    assert_eq!(requests("openid2", crate::openid2::REALM), Some(3));
    let own = usage.iter().find(|it| it.protocol == "clientlogin" && it.client_id == APP).unwrap();
    assert!(own.own_dates);
    assert_eq!(own.dates.refuse_from, Some(REFUSE + 1000));
}

/// The administrators' legacy page shows each application's grants and counted requests, sets an
/// application's own dates (which the next request obeys), refuses a bad date changing nothing,
/// and is closed to other accounts.
#[tokio::test]
async fn the_console_legacy_page_reports_usage_and_sets_an_applications_dates() {
    let env = TestEnv::start().await;
    setup(&env).await;
    authsub_session(&env).await;
    clientlogin_auth(&env).await;
    clientlogin_auth(&env).await;

    let mut alice = env.browser();
    alice.sign_in("alice@example.com", "north23AZ").await;
    assert_eq!(alice.get("/console/legacy").await.status, 403, "not an administrator");
    assert_eq!(env.browser().get("/console/legacy").await.status, 302, "not signed in");

    let root = env.account("root@example.com", "root-password-1").await;
    tessera_domain::accounts::set_admin(env.ctx(), &root, true, &Actor::Cli, "").await.unwrap();
    let mut admin = env.browser();
    admin.sign_in("root@example.com", "root-password-1").await;
    let console = admin.get("/console").await;
    assert!(console.body.contains("href=\"/console/legacy?authuser=0\""), "{}", console.body);
    let page = admin.get("/console/legacy").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let row = |page: &Page, protocol: &str, client: &str| -> String {
        let needle = format!("data-protocol=\"{protocol}\" data-client=\"{client}\"");
        let start = page.body.find(&needle).unwrap_or_else(|| panic!("{needle}: {}", page.body));
        page.body[start..start + page.body[start..].find("</tr>").unwrap()].to_owned()
    };
    let authsub = row(&page, "authsub", APP);
    assert!(
        authsub.contains("<td class=\"grants\">1</td><td class=\"accounts\">1</td>"),
        "{authsub}"
    );
    assert!(authsub.contains("(registered)"), "{authsub}");
    let clientlogin = row(&page, "clientlogin", APP);
    assert!(
        clientlogin.contains("<td class=\"requests\">2</td><td class=\"today\">2</td>"),
        "{clientlogin}"
    );

    let bad = admin
        .post(
            "/console/legacy/deprecate",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("protocol", "clientlogin"),
                ("client", APP),
                ("warn_from", "next tuesday"),
                ("refuse_from", ""),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("Warn from: give a date"), "{}", bad.body);
    let dates = tessera_domain::legacy::dates(env.ctx(), Protocol::ClientLogin, Some(APP));
    assert_eq!(dates.await.unwrap(), tessera_domain::legacy::Dates::default(), "nothing changed");
    let forged = admin
        .post(
            "/console/legacy/deprecate",
            &[("csrf", "x"), ("authuser", "0"), ("protocol", "clientlogin"), ("client", APP)],
        )
        .await;
    assert_eq!(forged.status, 400, "CSRF is checked");
    let alice_csrf = alice.get("/console").await.csrf();
    let by_alice = alice
        .post(
            "/console/legacy/deprecate",
            &[
                ("csrf", &alice_csrf),
                ("authuser", "0"),
                ("protocol", "clientlogin"),
                ("client", APP),
                ("refuse_from", "1"),
            ],
        )
        .await;
    assert_eq!(by_alice.status, 403, "{}", by_alice.body);
    let dates = tessera_domain::legacy::dates(env.ctx(), Protocol::ClientLogin, Some(APP));
    assert_eq!(dates.await.unwrap(), tessera_domain::legacy::Dates::default(), "nothing changed");

    let now = tessera_domain::Clock::now(env.clock.as_ref());
    let set = admin
        .post(
            "/console/legacy/deprecate",
            &[
                ("csrf", &bad.csrf()),
                ("authuser", "0"),
                ("protocol", "clientlogin"),
                ("client", APP),
                ("warn_from", &(now - 10).to_string()),
                ("refuse_from", &(now + 1000).to_string()),
            ],
        )
        .await;
    assert_eq!(set.status, 303, "{}", set.body);
    let page = admin.get("/console/legacy").await;
    let clientlogin = row(&page, "clientlogin", APP);
    assert!(
        clientlogin.contains(&format!(
            "<td class=\"warn\">{}</td>",
            tessera_domain::legacy::rfc3339(now - 10)
        )),
        "{clientlogin}"
    );
    let warned = clientlogin_page(&env, APP).await;
    assert_eq!(warned.status, 200, "{}", warned.body);
    assert_eq!(warned.headers["deprecation"], format!("@{}", now - 10).as_str());
}

/// A single-use AuthSub token of Alice for `app.example.com`, not yet upgraded.
async fn authsub_single_use(env: &TestEnv) -> String {
    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    let query = format!(
        "next={}&scope={}&session=1",
        urlencode("http://app.example.com/cb"),
        urlencode(CAL)
    );
    let page = b.get(&format!("/accounts/AuthSubRequest?{query}")).await;
    let form_query = page
        .input("query")
        .unwrap()
        .replace("&#38;", "&")
        .replace("&#61;", "=")
        .replace("&#37;", "%");
    let res = b
        .post(
            "/accounts/AuthSubRequest",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("query", &form_query),
                ("action", "allow"),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    res.location().rsplit_once("token=").unwrap().1.to_owned()
}

/// The client library's ClientLogin, AuthSub and OAuth 1.0 clients keep (and log) the notice a
/// warned answer carries, at each step of each dance; past the refuse-from date the second steps
/// (`AuthSubSessionToken`, `OAuthGetAccessToken`) are refused as the first ones are.
#[tokio::test]
async fn the_client_libraries_see_each_dances_deprecation_and_its_second_step_is_refused_too() {
    use tessera_client::Secret;
    use tessera_client::authsub::{AuthSubClient, AuthSubError};
    use tessera_client::client_login::ClientLogin;
    use tessera_client::oauth1::{Consumer, OAuth1Client, OAuth1Error, SignatureMethod, Token};

    let env = TestEnv::with_config(|raw| {
        let (warn, refuse) = (WARN.to_string(), REFUSE.to_string());
        let legacy = &mut raw.legacy;
        legacy.clientlogin_warn_from = warn.clone();
        legacy.authsub_warn_from = warn.clone();
        legacy.authsub_refuse_from = refuse.clone();
        legacy.oauth1_warn_from = warn;
        legacy.oauth1_refuse_from = refuse;
    })
    .await;
    let setup = setup(&env).await;
    let base = url::Url::parse(&env.base).unwrap();
    let link = format!("{}/accounts/LegacyMigration", env.base);
    let early_single_use = authsub_single_use(&env).await;
    env.clock.set(WARN);
    let client_clock = std::sync::Arc::new(tessera_client::ManualClock::at_unix(WARN as u64));

    let clientlogin = ClientLogin::new(base.clone());
    assert!(clientlogin.last_deprecation().is_none());
    clientlogin.login("alice@example.com", &Secret::new("north23AZ"), "cl", APP).await.unwrap();
    let notice = clientlogin.last_deprecation().expect("ClientLogin saw the notice");
    assert_eq!(notice.endpoint, env.url("/accounts/ClientLogin"));
    assert_eq!(notice.since, format!("@{WARN}"));
    assert_eq!(notice.sunset, None);
    assert_eq!(notice.link.as_deref(), Some(link.as_str()));

    let authsub = AuthSubClient::new(base.clone());
    let single = authsub_single_use(&env).await;
    authsub.session_token(&Secret::new(single)).await.unwrap();
    let notice = authsub.last_deprecation().expect("AuthSubSessionToken carries the notice");
    assert_eq!(notice.endpoint, env.url("/accounts/AuthSubSessionToken"));
    assert_eq!(notice.sunset.as_deref(), Some(tessera_domain::legacy::http_date(REFUSE).as_str()));

    let consumer = Consumer {
        key: APP.to_owned(),
        method: SignatureMethod::HmacSha1(Secret::new(setup.consumer_secret.clone())),
    };
    let oauth1 = OAuth1Client::new(base.clone(), consumer.clone()).with_clock(client_clock.clone());
    let request = oauth1.request_token(&[CAL], "oob").await.unwrap();
    let notice = oauth1.last_deprecation().expect("OAuthGetRequestToken carries the notice");
    assert_eq!(notice.endpoint, env.url("/accounts/OAuthGetRequestToken"));
    let fresh = OAuth1Client::new(base.clone(), consumer).with_clock(client_clock.clone());
    let unauthorized = fresh.access_token(&request, Some("wrong")).await;
    assert!(matches!(unauthorized, Err(OAuth1Error::Rejected { .. })), "{unauthorized:?}");
    let notice = fresh.last_deprecation().expect("OAuthGetAccessToken carries the notice");
    assert_eq!(notice.endpoint, env.url("/accounts/OAuthGetAccessToken"));

    // Past the refuse-from date: the second steps are refused with each protocol's error, and the
    // single-use token is not spent by the refusal.
    env.clock.set(REFUSE);
    client_clock.advance(std::time::Duration::from_secs((REFUSE - WARN) as u64));
    let refused = authsub.session_token(&Secret::new(early_single_use.clone())).await;
    assert!(matches!(refused, Err(AuthSubError::Rejected { status: 403 })), "{refused:?}");
    let page = send_get(
        &env,
        "/accounts/AuthSubSessionToken",
        &format!("AuthSub token={early_single_use}"),
    )
    .await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains(&format!("see {link}")), "{}", page.body);
    assert_eq!(page.headers["deprecation"], format!("@{WARN}").as_str());
    let still_single = tessera_domain::credentials::find_valid(
        env.ctx(),
        &early_single_use,
        &[tessera_store::CredentialKind::AuthsubSingleUse],
    )
    .await
    .unwrap();
    assert!(still_single.is_some(), "a refused upgrade spends nothing");
    let token = Token { token: request.token.clone(), secret: request.secret.clone() };
    let refused = oauth1.access_token(&token, None).await;
    match refused {
        Err(OAuth1Error::Rejected { status: 401, problem }) => {
            assert_eq!(problem, "consumer_key_refused")
        }
        other => panic!("{other:?}"),
    }
}
