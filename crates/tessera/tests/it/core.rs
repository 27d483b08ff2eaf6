//! The one core every protocol shares: every credential kind at every endpoint that accepts it is
//! refused once its account, grant or client is gone; the per-app caps hold in one second and
//! under bursts; single-use rules hold under bursts; password changes end what the old password
//! made; the guessing budget and 2-step counters hold against parallel bursts.

use serde_json::{Value, json};
use tessera_domain::audit::Actor;
use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};
use tessera_domain::oauth2::tokens::{self, Subject};
use tessera_domain::services::NewService;
use tessera_store::{AccountState, CredentialKind};

use crate::support::{T0, TestEnv};

const CAL: &str = "http://www.example.com/calendar/feeds/";
const PASSWORD: &str = "correct horse 1";

/// Every credential kind a client presents, minted for one account.
pub(crate) struct Minted {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    /// A second client of the same project that introspects.
    pub(crate) resource_id: String,
    pub(crate) resource_secret: String,
    pub(crate) access: String,
    pub(crate) jwt_access: String,
    pub(crate) refresh: String,
    pub(crate) clientlogin_auth: String,
    pub(crate) authsub_session: String,
    pub(crate) authsub_single: String,
    /// An OAuth 1.0a access token of the consumer `app.example` (the AuthSub registration), its
    /// secret and the consumer's HMAC secret.
    pub(crate) oauth1: (String, String, String),
    /// An ubertoken hanging from the web client's OAuth 2.0 grant (as `OAuthLogin` mints it).
    pub(crate) ubertoken: String,
    /// The URL a browser session of the account was sent to with a one-time `auth=` token for the
    /// web sign-on service `feeds`.
    pub(crate) service_auth: String,
    pub(crate) account: tessera_store::AccountRecord,
}

/// The web sign-on service of the matrix.
const FEEDS: &str = "https://feeds.example/";

/// A fresh ubertoken (from the web client's OAuth 2.0 grant) and `auth=` URL for `account`.
async fn sso_tokens(
    env: &TestEnv,
    account: &tessera_store::AccountRecord,
    client_id: &str,
) -> (String, String) {
    let ctx = env.ctx();
    let grant = tessera_domain::grants::find_live(
        ctx,
        &account.id,
        client_id,
        tessera_domain::credentials::Protocol::OAuth2,
    )
    .await
    .unwrap()
    .unwrap();
    let uber = tessera_domain::sso::issue_ubertoken(ctx, &account.id, Some(&grant.id), "matrix")
        .await
        .unwrap();
    let client = tessera_domain::sessions::ClientInfo { ip: "".into(), user_agent: "t".into() };
    let (token, session) =
        tessera_domain::sessions::create(ctx, account, false, false, &client).await.unwrap();
    let signed = tessera_domain::sessions::SignedIn { token, session, account: account.clone() };
    let target =
        tessera_domain::sso::target(ctx, "feeds", &format!("{FEEDS}home")).await.unwrap().unwrap();
    let url = tessera_domain::sso::issue_service_auth(ctx, &signed, &target).await.unwrap();
    (uber, url)
}

async fn new_client(
    env: &TestEnv,
    project: &tessera_store::ProjectRecord,
    name: &str,
    jwt: bool,
) -> clients::Created {
    let new = NewClient {
        kind: ClientKind::Web,
        name: name.to_owned(),
        redirect_uris: vec!["https://rp.example/cb".to_owned()],
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: jwt,
    };
    clients::create(env.ctx(), project, new, &Actor::Cli).await.unwrap()
}

pub(crate) async fn mint(env: &TestEnv) -> Minted {
    let ctx = env.ctx();
    let account = env.account("ann@example.test", PASSWORD).await;
    let admin = env.account("admin@example.test", PASSWORD).await;
    tessera_domain::accounts::set_admin(ctx, &admin, true, &Actor::Cli, "").await.unwrap();
    let project =
        tessera_domain::projects::create(ctx, "Matrix", "admin@example.test", &Actor::Cli)
            .await
            .unwrap();
    let web = new_client(env, &project, "Matrix web", false).await;
    let web_client_id = &web.client.id().to_owned();
    let jwt_client = new_client(env, &project, "Matrix jwt", true).await;
    let resource = new_client(env, &project, "Matrix resource", false).await;
    let scopes: Vec<String> = vec!["openid".into(), "email".into()];
    let mut tokens_of = Vec::new();
    for created in [&web, &jwt_client] {
        let client = &created.client;
        let grant = tessera_domain::grants::grant(
            ctx,
            &account.id,
            client.id(),
            tessera_domain::credentials::Protocol::OAuth2,
            &scopes,
            "",
        )
        .await
        .unwrap();
        let subject = Subject {
            account_id: Some(&account.id),
            client_id: client.id(),
            grant_id: Some(&grant.id),
        };
        let access =
            tokens::access_token(ctx, client, subject, "email openid", false).await.unwrap();
        let refresh = tokens::refresh_token(ctx, subject, "email openid", None).await.unwrap();
        tokens_of.push((access, refresh));
    }
    let (access, refresh) = tokens_of.remove(0);
    let (jwt_access, _) = tokens_of.remove(0);

    let service = NewService {
        name: "cl".to_owned(),
        display_name: "Calendar".to_owned(),
        scopes: vec![CAL.to_owned()],
        clientlogin_ttl_secs: Some(3600),
        protocols: None,
    };
    tessera_domain::services::add(ctx, service, &Actor::Cli).await.unwrap();
    let login = tessera_domain::clientlogin::Login {
        account_kind: tessera_domain::clientlogin::AccountKind::HostedOrGoogle,
        email: account.email.clone(),
        password: PASSWORD.to_owned(),
        service: "cl".to_owned(),
        source: Some("Matrix-App-1".to_owned()),
        captcha: None,
        ip: "192.0.2.10".to_owned(),
    };
    let issued = tessera_domain::clientlogin::login(ctx, login).await.unwrap().unwrap();

    tessera_domain::authsub::register(
        ctx,
        "app.example",
        "https://app.example/cb/",
        None,
        Some("admin@example.test"),
        &Actor::Cli,
    )
    .await
    .unwrap();
    let mut authsub_tokens = Vec::new();
    for _ in 0..2 {
        authsub_tokens.push(authsub_single(env, &account).await);
    }
    let presented = tessera_domain::authsub::Presented {
        token: &authsub_tokens[0],
        sigalg: None,
        data: None,
        sig: None,
    };
    let authsub_session = tessera_domain::authsub::upgrade(ctx, presented, &Default::default())
        .await
        .unwrap()
        .unwrap()
        .token;
    let oauth1 = oauth1_access(env, &account).await;
    let feeds = NewService {
        name: "feeds".to_owned(),
        display_name: "Feeds".to_owned(),
        scopes: vec![format!("{FEEDS}api/")],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    tessera_domain::services::add(ctx, feeds, &Actor::Cli).await.unwrap();
    let feeds_web = tessera_domain::services::ServiceWeb {
        prefixes: vec![FEEDS.to_owned()],
        ..Default::default()
    };
    tessera_domain::services::set_web(ctx, "feeds", feeds_web, &Actor::Cli).await.unwrap();
    let (ubertoken, service_auth) = sso_tokens(env, &account, web_client_id).await;
    Minted {
        oauth1,
        ubertoken,
        service_auth,
        client_id: web.client.id().to_owned(),
        client_secret: web.secret.clone().unwrap(),
        resource_id: resource.client.id().to_owned(),
        resource_secret: resource.secret.clone().unwrap(),
        access,
        jwt_access,
        refresh,
        clientlogin_auth: issued.auth,
        authsub_session,
        authsub_single: authsub_tokens.remove(1),
        account,
    }
}

/// An OAuth 1.0a access token for `account` at the consumer `app.example`: a grant, a request
/// token authorized for it, and the signed exchange.
async fn oauth1_access(
    env: &TestEnv,
    account: &tessera_store::AccountRecord,
) -> (String, String, String) {
    let ctx = env.ctx();
    let consumer_secret =
        tessera_domain::oauth1::mint_consumer_secret(ctx, "app.example", &Actor::Cli)
            .await
            .unwrap();
    let grant = tessera_domain::grants::grant(
        ctx,
        &account.id,
        "app.example",
        tessera_domain::credentials::Protocol::OAuth1,
        &[CAL.to_owned()],
        "",
    )
    .await
    .unwrap();
    let scopes = tessera_domain::credentials::Scopes::parse(CAL);
    let request = tessera_domain::oauth1::authorized_request_token(
        ctx,
        "app.example",
        &scopes,
        &account.id,
        &grant.id,
    )
    .await
    .unwrap();
    let url = env.url("/accounts/OAuthGetAccessToken");
    let header = oauth1_header("POST", &url, "app.example", &consumer_secret, &request, "");
    let res =
        reqwest::Client::new().post(&url).header("authorization", header).send().await.unwrap();
    let body = res.text().await.unwrap();
    let pairs = tessera_proto_oauth1::parse_form(&body).unwrap();
    (pairs[0].1.clone(), pairs[1].1.clone(), consumer_secret)
}

/// An `Authorization: OAuth` header signing `method url` with HMAC-SHA1, a fresh nonce each time.
pub(crate) fn oauth1_header(
    method: &str,
    url: &str,
    consumer: &str,
    consumer_secret: &str,
    token: &str,
    token_secret: &str,
) -> String {
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nonce = NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string();
    let timestamp = T0.to_string();
    let oauth = [
        ("oauth_consumer_key", consumer),
        ("oauth_nonce", nonce.as_str()),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", timestamp.as_str()),
        ("oauth_token", token),
    ];
    crate::oauth1::sign(method, url, &oauth, &[], consumer_secret, token_secret)
}

/// A single-use AuthSub token for `account`, asked and allowed through the interaction flow.
pub(crate) async fn authsub_single(
    env: &TestEnv,
    account: &tessera_store::AccountRecord,
) -> String {
    use tessera_domain::interaction::{self, Decision, Step};
    let ctx = env.ctx();
    let query =
        format!("next=https://app.example/cb/x&scope={}&session=1", crate::support::urlencode(CAL));
    let request = tessera_proto_authsub::parse_request(&query).unwrap();
    let prepared = tessera_domain::authsub::prepare(ctx, request).await.unwrap();
    let client = tessera_domain::sessions::ClientInfo { ip: "".into(), user_agent: "t".into() };
    let (token, session) =
        tessera_domain::sessions::create(ctx, account, false, false, &client).await.unwrap();
    let signed = tessera_domain::sessions::SignedIn { token, session, account: account.clone() };
    let flow = tessera_domain::authsub::interaction(&prepared, None);
    let Step::Approved(approved) =
        interaction::decide(ctx, &flow, &[signed], Decision::Allow, "").await.unwrap()
    else {
        panic!("not approved");
    };
    let next = tessera_domain::authsub::approve(ctx, &approved, &prepared).await.unwrap();
    next.rsplit_once("token=").unwrap().1.to_owned()
}

/// The minted web client and its live OAuth 2.0 grant.
async fn web_client_and_grant(
    env: &TestEnv,
    m: &Minted,
) -> (clients::Client, tessera_store::GrantRecord) {
    let ctx = env.ctx();
    let client = clients::load(ctx, &m.client_id).await.unwrap().unwrap();
    let grant = tessera_domain::grants::find_live(
        ctx,
        &m.account.id,
        &m.client_id,
        tessera_domain::credentials::Protocol::OAuth2,
    )
    .await
    .unwrap()
    .unwrap();
    (client, grant)
}

async fn caller(env: &TestEnv, authorization: &str) -> u16 {
    reqwest::Client::new()
        .post(env.url("/accounts/caller"))
        .json(&json!({ "authorization": authorization, "method": "GET", "url": CAL }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn get(env: &TestEnv, path: &str, authorization: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().get(env.url(path));
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn form(
    env: &TestEnv,
    path: &str,
    basic: (&str, &str),
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(env.url(path))
        .basic_auth(basic.0, Some(basic.1))
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Each (kind, endpoint) pair: whether the credential works there now. OpenID 2.0 associations
/// have no row: they belong to no account, grant or client (a MAC key shared with an anonymous
/// relying party), so none of the ends below applies to them; they end by expiry.
async fn matrix(env: &TestEnv, m: &Minted) -> Vec<(&'static str, bool)> {
    let resource = (m.resource_id.as_str(), m.resource_secret.as_str());
    let mut out = Vec::new();
    for (kind, token) in [("access", &m.access), ("jwt access", &m.jwt_access)] {
        out.push((
            if kind == "access" { "access@tokeninfo" } else { "jwt@tokeninfo" },
            get(env, &format!("/oauth2/v3/tokeninfo?access_token={token}"), None).await == 200,
        ));
        out.push((
            if kind == "access" { "access@userinfo" } else { "jwt@userinfo" },
            get(env, "/oauth2/v3/userinfo", Some(&format!("Bearer {token}"))).await == 200,
        ));
        let (_, body) = form(env, "/oauth2/introspect", resource, &[("token", token)]).await;
        out.push((
            if kind == "access" { "access@introspect" } else { "jwt@introspect" },
            body["active"] == true,
        ));
        out.push((
            if kind == "access" { "access@caller" } else { "jwt@caller" },
            caller(env, &format!("Bearer {token}")).await == 200,
        ));
    }
    let (_, body) = form(env, "/oauth2/introspect", resource, &[("token", &m.refresh)]).await;
    out.push(("refresh@introspect", body["active"] == true));
    out.push((
        "clientlogin@caller",
        caller(env, &format!("GoogleLogin auth={}", m.clientlogin_auth)).await == 200,
    ));
    for (name, token) in
        [("authsub session", &m.authsub_session), ("authsub single", &m.authsub_single)]
    {
        let header = format!("AuthSub token=\"{token}\"");
        out.push((
            if name == "authsub session" { "session@tokeninfo" } else { "single@tokeninfo" },
            get(env, "/accounts/AuthSubTokenInfo", Some(&header)).await == 200,
        ));
    }
    let (token, secret, consumer_secret) = &m.oauth1;
    let header = oauth1_header("GET", CAL, "app.example", consumer_secret, token, secret);
    out.push(("oauth1@caller", caller(env, &header).await == 200));
    let info = env.url("/accounts/AuthSubTokenInfo");
    let header = oauth1_header("GET", &info, "app.example", consumer_secret, token, secret);
    out.push((
        "oauth1@tokeninfo",
        get(env, "/accounts/AuthSubTokenInfo", Some(&header)).await == 200,
    ));
    out.push((
        "session@caller",
        caller(env, &format!("AuthSub token=\"{}\"", m.authsub_session)).await == 200,
    ));
    // Last, because success spends them: the refresh grant and single-use upgrade and use.
    let client = (m.client_id.as_str(), m.client_secret.as_str());
    let (status, _) = form(
        env,
        "/o/oauth2/token",
        client,
        &[("grant_type", "refresh_token"), ("refresh_token", &m.refresh)],
    )
    .await;
    out.push(("refresh@token", status == 200));
    let header = format!("AuthSub token=\"{}\"", m.authsub_single);
    out.push(("single@caller", caller(env, &header).await == 200));
    let token_auth = format!("/accounts/TokenAuth?auth={}&continue=%2Faccount", m.ubertoken);
    let no_redirects =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = no_redirects.get(env.url(&token_auth)).send().await.unwrap();
    out.push(("ubertoken@TokenAuth", res.status().as_u16() == 302));
    let auth = url::Url::parse(&m.service_auth)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "auth")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let res = reqwest::Client::new()
        .post(env.url("/accounts/ServiceAuthCheck"))
        .form(&[("auth", auth.as_str()), ("service", "feeds"), ("continue", &m.service_auth)])
        .send()
        .await
        .unwrap();
    out.push(("service_auth@ServiceAuthCheck", res.status().as_u16() == 200));
    out
}

#[derive(Debug, Clone, Copy)]
enum Gone {
    Disabled,
    Deleted,
    GrantRevoked,
    ClientDeleted,
}

#[tokio::test]
async fn every_credential_at_every_endpoint_dies_with_its_account_grant_or_client() {
    for gone in [Gone::Disabled, Gone::Deleted, Gone::GrantRevoked, Gone::ClientDeleted] {
        let env = TestEnv::start().await;
        let m = mint(&env).await;
        // The control: everything works before (the single-use token is then spent, so mint
        // another run's worth again).
        let before = matrix(&env, &m).await;
        assert!(before.iter().all(|(_, ok)| *ok), "{gone:?}: before {before:?}");
        let env = env;
        let m = Minted { ..fresh(&env, m).await };
        let ctx = env.ctx();
        match gone {
            Gone::Disabled | Gone::Deleted => {
                let state = match gone {
                    Gone::Disabled => AccountState::Disabled,
                    _ => AccountState::Deleted,
                };
                tessera_domain::accounts::set_state(ctx, &m.account, state, &Actor::Cli, "")
                    .await
                    .unwrap();
            }
            Gone::GrantRevoked => {
                for app in tessera_domain::grants::connected(ctx, &m.account.id).await.unwrap() {
                    tessera_domain::grants::revoke(
                        ctx,
                        &m.account.id,
                        &app.grant.id,
                        &Actor::Account,
                        "",
                    )
                    .await
                    .unwrap();
                }
            }
            Gone::ClientDeleted => {
                for client in [m.client_id.as_str()] {
                    clients::delete(ctx, client, &Actor::Cli).await.unwrap();
                }
                let jwt_client = ctx
                    .store
                    .credentials()
                    .get(&tessera_crypto::digest::token_digest(&m.jwt_access))
                    .await
                    .unwrap()
                    .unwrap()
                    .client_id
                    .unwrap();
                clients::delete(ctx, &jwt_client, &Actor::Cli).await.unwrap();
                tessera_domain::authsub::unregister(ctx, "app.example", &Actor::Cli).await.unwrap();
                // An `auth=` token's "client" is its web sign-on service: switching that off
                // (services are never deleted) ends it.
                let off = tessera_domain::services::ServiceWeb::default();
                tessera_domain::services::set_web(ctx, "feeds", off, &Actor::Cli).await.unwrap();
                // ClientLogin has no registered client (the `source` names it): removing its
                // app is revoking its grant.
                let grant = tessera_domain::grants::find_live(
                    ctx,
                    &m.account.id,
                    "Matrix-App-1",
                    tessera_domain::credentials::Protocol::ClientLogin,
                )
                .await
                .unwrap()
                .unwrap();
                tessera_domain::grants::revoke(ctx, &m.account.id, &grant.id, &Actor::Account, "")
                    .await
                    .unwrap();
            }
        }
        let after = matrix(&env, &m).await;
        let working: Vec<_> =
            after.iter().filter(|(name, ok)| *ok && !not_applicable(gone, name)).collect();
        assert!(working.is_empty(), "{gone:?}: still accepted: {working:?}");
        assert_eq!(after.len(), before.len());
    }
}

/// The cells of the matrix where an end does not apply to a kind. An `auth=` token
/// (`service_auth`) hangs from a browser session, not from a grant: no grant is revoked under it
/// (signing the session out ends it, `sso::tests`); every other cell applies.
fn not_applicable(gone: Gone, row: &str) -> bool {
    matches!((gone, row), (Gone::GrantRevoked, "service_auth@ServiceAuthCheck"))
}

/// Mints a new set after the control spent the single-use ones (same account and clients).
async fn fresh(env: &TestEnv, old: Minted) -> Minted {
    let ctx = env.ctx();
    let account = old.account.clone();
    let client = clients::load(ctx, &old.client_id).await.unwrap().unwrap();
    let grant = tessera_domain::grants::find_live(
        ctx,
        &account.id,
        &old.client_id,
        tessera_domain::credentials::Protocol::OAuth2,
    )
    .await
    .unwrap()
    .unwrap();
    let subject = Subject {
        account_id: Some(&account.id),
        client_id: client.id(),
        grant_id: Some(&grant.id),
    };
    let refresh = tokens::refresh_token(ctx, subject, "email openid", None).await.unwrap();
    let authsub_single = authsub_single(env, &account).await;
    let (ubertoken, service_auth) = sso_tokens(env, &account, &old.client_id).await;
    Minted { refresh, authsub_single, ubertoken, service_auth, ..old }
}

#[tokio::test]
async fn switched_off_protocols_stop_their_tokens_everywhere() {
    let env = TestEnv::start().await;
    let m = mint(&env).await;
    assert_eq!(caller(&env, &format!("GoogleLogin auth={}", m.clientlogin_auth)).await, 200);
    let env = env
        .restart(|c| {
            c.legacy.clientlogin = false;
            c.legacy.authsub = false;
            c.legacy.oauth1 = false;
        })
        .await;
    let (token, secret, consumer_secret) = &m.oauth1;
    let header = oauth1_header("GET", CAL, "app.example", consumer_secret, token, secret);
    assert_eq!(caller(&env, &header).await, 401);
    assert_eq!(caller(&env, &format!("GoogleLogin auth={}", m.clientlogin_auth)).await, 401);
    assert_eq!(caller(&env, &format!("AuthSub token=\"{}\"", m.authsub_session)).await, 401);
    assert_eq!(caller(&env, &format!("Bearer {}", m.access)).await, 200, "OAuth 2.0 stays on");
}

#[tokio::test]
async fn twenty_refresh_tokens_in_one_second_leave_the_newest_ten() {
    let env = TestEnv::start().await;
    let m = mint(&env).await;
    let ctx = env.ctx();
    let (client, grant) = web_client_and_grant(&env, &m).await;
    let subject = Subject {
        account_id: Some(&m.account.id),
        client_id: client.id(),
        grant_id: Some(&grant.id),
    };
    let mut issued = Vec::new();
    for _ in 0..20 {
        issued.push(tokens::refresh_token(ctx, subject, "email openid", None).await.unwrap());
    }
    assert_eq!(env.ctx().now(), T0, "all in the same second");
    for (i, token) in issued.iter().enumerate() {
        let live = tokens::inspect(ctx, token, true).await.unwrap().is_some();
        assert_eq!(live, i >= 10, "token {i}");
    }
    // The same under a parallel burst through the token endpoint is covered by the store's
    // conformance case; here twenty parallel issues leave exactly ten.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let ctx = ctx.clone();
        let client = client.clone();
        let (account_id, grant_id) = (m.account.id.clone(), grant.id.clone());
        tasks.push(tokio::spawn(async move {
            let subject = Subject {
                account_id: Some(&account_id),
                client_id: client.id(),
                grant_id: Some(&grant_id),
            };
            tokens::refresh_token(&ctx, subject, "email openid", None).await.unwrap()
        }));
    }
    let mut burst = Vec::new();
    for task in tasks {
        burst.push(task.await.unwrap());
    }
    let mut live = 0;
    for token in issued.iter().chain(&burst) {
        live += usize::from(tokens::inspect(ctx, token, true).await.unwrap().is_some());
    }
    let total = ctx
        .store
        .credentials()
        .list_live_by_account(&m.account.id, CredentialKind::RefreshToken, T0)
        .await
        .unwrap()
        .into_iter()
        .filter(|it| it.client_id.as_deref() == Some(m.client_id.as_str()))
        .count();
    assert_eq!(total, 10);
    assert_eq!(live, 10);
}

#[tokio::test]
async fn twenty_parallel_authsub_upgrades_leave_ten_session_tokens() {
    let env = TestEnv::start().await;
    let m = mint(&env).await;
    let ctx = env.ctx();
    let mut singles = Vec::new();
    for _ in 0..20 {
        singles.push(authsub_single(&env, &m.account).await);
    }
    let mut tasks = Vec::new();
    for single in singles {
        let url = env.url("/accounts/AuthSubSessionToken");
        tasks.push(tokio::spawn(async move {
            let res = reqwest::Client::new()
                .get(url)
                .header("authorization", format!("AuthSub token=\"{single}\""))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.text().await.unwrap().trim().strip_prefix("Token=").unwrap().to_owned()
        }));
    }
    let mut sessions = Vec::new();
    for task in tasks {
        sessions.push(task.await.unwrap());
    }
    let live = ctx
        .store
        .credentials()
        .list_live_by_account(&m.account.id, CredentialKind::AuthsubSession, T0)
        .await
        .unwrap();
    // The minted set's own session token was the first; ten remain in all.
    assert_eq!(live.len(), 10);
}

#[tokio::test]
async fn a_code_redeemed_by_the_wrong_client_stays_good_for_the_right_one() {
    let env = TestEnv::start().await;
    let m = mint(&env).await;
    let ctx = env.ctx();
    let (client, grant) = web_client_and_grant(&env, &m).await;
    let subject = Subject {
        account_id: Some(&m.account.id),
        client_id: client.id(),
        grant_id: Some(&grant.id),
    };
    let remembered = tokens::Remembered {
        redirect_uri: Some("https://rp.example/cb".to_owned()),
        redirect_sent: true,
        ..Default::default()
    };
    let code = tokens::code(ctx, subject, "email openid", &remembered).await.unwrap();
    let redeem = |basic: (String, String), redirect: &'static str| {
        let (env_url, code) = (env.url("/o/oauth2/token"), code.clone());
        async move {
            let res = reqwest::Client::new()
                .post(env_url)
                .basic_auth(basic.0, Some(basic.1))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect),
                ])
                .send()
                .await
                .unwrap();
            res.status().as_u16()
        }
    };
    let right = (m.client_id.clone(), m.client_secret.clone());
    let wrong = (m.resource_id.clone(), m.resource_secret.clone());
    assert_eq!(redeem(wrong, "https://rp.example/cb").await, 400);
    assert_eq!(redeem(right.clone(), "https://rp.example/other").await, 400, "wrong redirect");
    assert_eq!(redeem(right.clone(), "https://rp.example/cb").await, 200, "still good");
    assert_eq!(caller(&env, &format!("Bearer {}", m.access)).await, 200, "grant not revoked");
}

#[tokio::test]
async fn racing_code_redemptions_have_exactly_one_winner() {
    for round in 0..5 {
        let env = TestEnv::start().await;
        let m = mint(&env).await;
        let ctx = env.ctx();
        let (client, grant) = web_client_and_grant(&env, &m).await;
        let subject = Subject {
            account_id: Some(&m.account.id),
            client_id: client.id(),
            grant_id: Some(&grant.id),
        };
        let code = tokens::code(ctx, subject, "email openid", &tokens::Remembered::default())
            .await
            .unwrap();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (url, code, id, secret) = (
                env.url("/o/oauth2/token"),
                code.clone(),
                m.client_id.clone(),
                m.client_secret.clone(),
            );
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                reqwest::Client::new()
                    .post(url)
                    .basic_auth(id, Some(secret))
                    .form(&[("grant_type", "authorization_code"), ("code", code.as_str())])
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        let ok = statuses.iter().filter(|it| **it == 200).count();
        assert_eq!(ok, 1, "round {round}: {statuses:?}");
        assert!(statuses.iter().all(|it| *it == 200 || *it == 400), "{statuses:?}");
    }
}

#[tokio::test]
async fn a_password_change_ends_what_the_old_password_made() {
    let env = TestEnv::start().await;
    let m = mint(&env).await;
    let ctx = env.ctx();
    let asp = tessera_domain::app_passwords::create(ctx, &m.account, "Mail", "").await.unwrap();
    assert!(crate::support::app_password_works(&env, &m.account, &asp).await);
    let mut here = env.browser();
    let mut there = env.browser();
    here.sign_in(&m.account.email, PASSWORD).await;
    there.sign_in(&m.account.email, PASSWORD).await;
    let page = here.get("/account").await;
    let changed = here
        .post(
            "/account/password",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("current", PASSWORD),
                ("new", "a new password 2"),
            ],
        )
        .await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    assert!(
        !crate::support::app_password_works(&env, &m.account, &asp).await,
        "app password revoked"
    );
    assert_eq!(caller(&env, &format!("GoogleLogin auth={}", m.clientlogin_auth)).await, 401);
    assert_eq!(there.get("/account").await.status, 302, "the other session is signed out");
    assert_eq!(here.get("/account").await.status, 200, "this one stays");
    // OAuth grants do not depend on the password: they stay unless asked.
    assert_eq!(caller(&env, &format!("Bearer {}", m.access)).await, 200);
    let page = here.get("/account").await;
    let changed = here
        .post(
            "/account/password",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("current", "a new password 2"),
                ("new", "a third password 3"),
                ("remove_apps", "1"),
            ],
        )
        .await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    assert_eq!(caller(&env, &format!("Bearer {}", m.access)).await, 401, "apps removed on request");
}

#[tokio::test]
async fn sensitive_changes_need_the_password_again_after_a_few_minutes() {
    let env = TestEnv::start().await;
    let account = env.account("kim@example.test", PASSWORD).await;
    let mut b = env.browser();
    b.sign_in("kim@example.test", PASSWORD).await;
    let page = b.get("/account").await;
    let fresh = b
        .post(
            "/account/app-passwords",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("name", "Mail")],
        )
        .await;
    assert_eq!(fresh.status, 200, "within the window no password is asked");
    env.clock.advance(6 * 60);
    for (path, fields) in
        [("/account/app-passwords", vec![("name", "Mail 2")]), ("/account/2sv/start", vec![])]
    {
        let page = b.get("/account").await;
        let mut form = vec![("csrf", page.csrf()), ("authuser", "0".to_owned())];
        form.extend(fields.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = b.post(path, &refs).await;
        assert_eq!(refused.status, 400, "{path}");
        assert!(
            refused.body.contains("Enter your password to confirm"),
            "{path}: {}",
            refused.body
        );
    }
    let listed = tessera_domain::app_passwords::list(env.ctx(), &account.id).await.unwrap();
    assert_eq!(listed.len(), 1, "nothing was created without the password");
    let page = b.get("/account").await;
    let wrong = b
        .post(
            "/account/app-passwords",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("name", "Mail 2"), ("confirm", "nope")],
        )
        .await;
    assert!(wrong.body.contains("That password is not right"));
    let page = b.get("/account").await;
    let ok = b
        .post(
            "/account/app-passwords",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("name", "Mail 2"), ("confirm", PASSWORD)],
        )
        .await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("id=\"app-password\""), "{}", ok.body);
}

#[tokio::test]
async fn a_burst_of_wrong_current_passwords_is_counted_before_checking() {
    let env = TestEnv::start().await;
    let account = env.account("kim@example.test", PASSWORD).await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let ctx = env.ctx().clone();
        let account = account.clone();
        tasks.push(tokio::spawn(async move {
            let guess = if i == 29 { PASSWORD.to_owned() } else { format!("guess {i}") };
            tessera_domain::password::confirm(&ctx, &account, &guess, "192.0.2.1").await.unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let checked = outcomes
        .iter()
        .filter(|it| !matches!(it, tessera_domain::password::Confirmed::Throttled))
        .count();
    assert!(checked <= tessera_domain::password::MAX_CONFIRM_FAILURES as usize, "{outcomes:?}");
}

/// A pending 2-step sign-in: the password was right, the code is due.
async fn pending_sign_in(env: &TestEnv) -> (String, tessera_crypto::totp::TotpSecret) {
    let ctx = env.ctx();
    let account = env.account("two@example.test", PASSWORD).await;
    let enrollment = tessera_domain::totp::start(ctx, &account, "tessera").unwrap();
    let secret = tessera_crypto::totp::TotpSecret::from_base32(&enrollment.secret_base32).unwrap();
    let code = secret.code_at_time(T0);
    tessera_domain::totp::confirm(ctx, &account, &enrollment.sealed, &code, "").await.unwrap();
    env.clock.advance(60);
    let attempt = tessera_domain::signin::Attempt {
        email: account.email.clone(),
        password: PASSWORD.to_owned(),
        captcha: None,
        persistent: false,
        client: tessera_domain::sessions::ClientInfo {
            ip: "192.0.2.5".into(),
            user_agent: "t".into(),
        },
    };
    match tessera_domain::signin::sign_in(ctx, attempt).await.unwrap() {
        tessera_domain::signin::Outcome::SecondFactor { pending, .. } => (pending, secret),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_parallel_burst_of_two_step_codes_cannot_outrun_the_limit() {
    let env = TestEnv::start().await;
    let (pending, secret) = pending_sign_in(&env).await;
    let right = secret.code_at_time(env.ctx().now());
    let mut tasks = Vec::new();
    for i in 0..40 {
        let ctx = env.ctx().clone();
        let pending = pending.clone();
        // The right code comes last in the burst; every other guess is wrong.
        let code = if i == 39 { right.clone() } else { format!("{:06}", (i * 7919) % 1_000_000) };
        let code = if code == right && i != 39 { "000000".to_owned() } else { code };
        tasks.push(tokio::spawn(async move {
            let client = tessera_domain::sessions::ClientInfo {
                ip: "192.0.2.5".into(),
                user_agent: "t".into(),
            };
            tessera_domain::signin::second_factor(&ctx, &pending, &code, &client).await.unwrap()
        }));
    }
    let mut checked = 0;
    let mut signed_in = 0;
    for task in tasks {
        match task.await.unwrap() {
            tessera_domain::signin::SecondFactorOutcome::SignedIn { .. } => {
                signed_in += 1;
                checked += 1;
            }
            tessera_domain::signin::SecondFactorOutcome::WrongCode => checked += 1,
            tessera_domain::signin::SecondFactorOutcome::Restart => {}
        }
    }
    assert!(checked <= 5, "at most five codes were checked, {checked} were");
    assert!(signed_in <= 1);
    // The pending sign-in is over whatever happened.
    let again = tessera_domain::signin::second_factor(
        env.ctx(),
        &pending,
        &right,
        &tessera_domain::sessions::ClientInfo { ip: "192.0.2.5".into(), user_agent: "t".into() },
    )
    .await
    .unwrap();
    assert!(matches!(again, tessera_domain::signin::SecondFactorOutcome::Restart));
}

fn attempt<'a>(
    email: &'a str,
    password: &'a str,
    ip: &'a str,
) -> tessera_domain::password::Attempt<'a> {
    tessera_domain::password::Attempt {
        email,
        password,
        captcha: None,
        ip,
        accept: tessera_domain::password::Accept::Password,
        fits: |_| true,
        unlockable: false,
        event: "signin",
    }
}

#[tokio::test]
async fn the_guessing_budget_holds_whatever_the_addresses_and_bursts() {
    // CAPTCHAs out of the way, as if every one were solved: only the budget stands.
    let env = TestEnv::with_config(|c| {
        c.signin.captcha_after_account_failures = 1_000_000;
        c.signin.captcha_after_ip_failures = 1_000_000;
        c.signin.captcha_after_network_failures = 1_000_000;
    })
    .await;
    env.account("vic@example.test", PASSWORD).await;
    let ctx = env.ctx();
    for i in 0..20 {
        let ip = format!("127.{}.{}.1", i / 250, i % 250);
        let checked =
            tessera_domain::password::check(ctx, attempt("vic@example.test", "wrong", &ip))
                .await
                .unwrap();
        assert!(matches!(checked, tessera_domain::password::Checked::BadCredentials { .. }));
    }
    // Past twenty failures: a burst from forty addresses gets one attempt checked this minute.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let ip = format!("10.0.{i}.9");
            tessera_domain::password::check(&ctx, attempt("vic@example.test", "wrong again", &ip))
                .await
                .unwrap()
        }));
    }
    let mut throttled = 0;
    for task in tasks {
        throttled += usize::from(matches!(
            task.await.unwrap(),
            tessera_domain::password::Checked::Throttled
        ));
    }
    assert_eq!(throttled, 39);
    // The right password is throttled too within the minute, and works in the next one.
    let now =
        tessera_domain::password::check(ctx, attempt("vic@example.test", PASSWORD, "192.0.2.7"))
            .await
            .unwrap();
    assert!(matches!(now, tessera_domain::password::Checked::Throttled));
    env.clock.advance(61);
    let later =
        tessera_domain::password::check(ctx, attempt("vic@example.test", PASSWORD, "192.0.2.7"))
            .await
            .unwrap();
    assert!(matches!(later, tessera_domain::password::Checked::Ok { .. }), "{later:?}");
    // The owner sees the failures on the account page.
    let mut b = env.browser();
    b.sign_in("vic@example.test", PASSWORD).await;
    let page = b.get("/account").await;
    assert!(page.body.contains("Failed sign-in"), "{}", page.body);
}

#[tokio::test]
async fn failures_count_per_network_as_well_as_per_address() {
    let env = TestEnv::with_config(|c| {
        c.signin.captcha_after_account_failures = 1_000_000;
        c.signin.captcha_after_ip_failures = 1_000_000;
        c.signin.captcha_after_network_failures = 10;
    })
    .await;
    let ctx = env.ctx();
    for i in 0..10 {
        let email = format!("nobody{i}@example.test");
        let ip = format!("198.51.100.{}", i + 1);
        tessera_domain::password::check(ctx, attempt(&email, "wrong", &ip)).await.unwrap();
    }
    // A new address in the same /24 must solve a CAPTCHA; another network need not.
    assert!(
        tessera_domain::password::captcha_needed(ctx, "else@example.test", "198.51.100.200")
            .await
            .unwrap()
    );
    assert!(
        !tessera_domain::password::captcha_needed(ctx, "else@example.test", "198.51.101.1")
            .await
            .unwrap()
    );
    assert!(
        !tessera_domain::password::captcha_needed(ctx, "x@example.test", "2001:db8::1")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn sealed_secrets_open_only_with_the_key_and_only_on_their_own_row() {
    use tessera_domain::credentials::{self, SealedSecretData};
    use tessera_store::CredentialRecord;

    let env = TestEnv::start().await;
    let ctx = env.ctx();
    let (token, digest) = ctx.new_token();
    let secret = b"an oauth token secret";
    let mut record = CredentialRecord::new(digest.clone(), CredentialKind::Oauth1AccessToken, T0);
    let sealed = credentials::seal(ctx, record.kind, &digest, secret).unwrap();
    record.data = credentials::encode(&SealedSecretData { sealed_secret: sealed.clone() }).unwrap();
    ctx.store.credentials().insert(&record).await.unwrap();
    let stored = ctx.store.credentials().get(&digest).await.unwrap().unwrap();
    assert!(!stored.data.contains("oauth token secret"), "never in the clear");
    assert!(!stored.data.contains(&token));
    assert_eq!(credentials::open(ctx, &stored).unwrap(), secret);
    // Moved to another row, it does not open; nor under another key-encryption key.
    let mut moved = stored.clone();
    moved.digest = "another-row".to_owned();
    assert!(credentials::open(ctx, &moved).is_err());
    let other = tessera_crypto::kek::Kek::from_bytes([7; 32]);
    let aad =
        format!("credential-secret\n{}\n{digest}", CredentialKind::Oauth1AccessToken.as_str());
    assert!(other.open(aad.as_bytes(), &sealed).is_err());
    // Kinds that keep digests only refuse to seal.
    assert!(credentials::seal(ctx, CredentialKind::AccessToken, &digest, secret).is_err());
}

#[tokio::test]
async fn a_successful_sign_in_does_not_reset_the_address_count() {
    let env = TestEnv::with_config(|c| {
        c.signin.captcha_after_account_failures = 1_000_000;
        c.signin.captcha_after_ip_failures = 3;
    })
    .await;
    env.account("mine@example.test", PASSWORD).await;
    let ctx = env.ctx();
    for i in 0..3 {
        let email = format!("victim{i}@example.test");
        tessera_domain::password::check(ctx, attempt(&email, "guess", "203.0.113.9"))
            .await
            .unwrap();
    }
    // The attacker signs in to an account of their own from the same address…
    let own =
        tessera_domain::password::check(ctx, attempt("mine@example.test", PASSWORD, "203.0.113.9"))
            .await
            .unwrap();
    assert!(matches!(own, tessera_domain::password::Checked::CaptchaRequired { .. }));
    // …and the address still needs a CAPTCHA for anyone.
    assert!(
        tessera_domain::password::captcha_needed(ctx, "victim9@example.test", "203.0.113.9")
            .await
            .unwrap()
    );
}

/// The credentials a device holds, at every endpoint that accepts each: refused once the account
/// is disabled or deleted, the device revoked, or device login switched off.
#[tokio::test]
async fn device_credentials_at_every_endpoint_die_with_account_device_or_switch() {
    async fn device_matrix(
        env: &TestEnv,
        held: &[(String, CredentialKind)],
    ) -> Vec<(String, bool)> {
        let url = format!("{}/x", crate::device::SCOPE);
        let mut out = Vec::new();
        for (secret, kind) in held {
            let row = match kind {
                CredentialKind::MasterToken => {
                    // What `/auth` asks before it mints anything.
                    let found = tessera_domain::credentials::find_valid(
                        env.ctx(),
                        secret,
                        &[CredentialKind::MasterToken],
                    )
                    .await
                    .unwrap();
                    ("master@auth", found.is_some())
                }
                CredentialKind::ClientLoginAuth => {
                    let status = reqwest::Client::new()
                        .post(env.url("/accounts/caller"))
                        .json(&json!({ "authorization": format!("GoogleLogin auth={secret}"), "method": "GET", "url": url }))
                        .send()
                        .await
                        .unwrap()
                        .status();
                    ("clientlogin@caller", status == 200)
                }
                CredentialKind::AccessToken => {
                    let status = reqwest::Client::new()
                        .post(env.url("/accounts/caller"))
                        .json(&json!({ "authorization": format!("Bearer {secret}"), "method": "GET", "url": url }))
                        .send()
                        .await
                        .unwrap()
                        .status();
                    out.push(("access@caller".to_owned(), status == 200));
                    let info =
                        get(env, &format!("/oauth2/v3/tokeninfo?access_token={secret}"), None)
                            .await;
                    ("access@tokeninfo", info == 200)
                }
                _ => continue,
            };
            out.push((row.0.to_owned(), row.1));
        }
        out
    }
    for gone in ["disabled", "deleted", "device revoked", "switched off"] {
        let s = crate::device::setup().await;
        let held = crate::device::device_tokens(&s).await;
        let before = device_matrix(&s.env, &held).await;
        assert_eq!(before.len(), 4, "{before:?}");
        assert!(before.iter().all(|(_, ok)| *ok), "{gone}: before {before:?}");
        let ctx = s.env.ctx();
        let env = match gone {
            "disabled" | "deleted" => {
                let state =
                    if gone == "disabled" { AccountState::Disabled } else { AccountState::Deleted };
                tessera_domain::accounts::set_state(ctx, &s.account, state, &Actor::Cli, "")
                    .await
                    .unwrap();
                s.env
            }
            "device revoked" => {
                let device = &tessera_domain::device::devices(ctx, &s.account.id).await.unwrap()[0];
                tessera_domain::grants::revoke(
                    ctx,
                    &s.account.id,
                    &device.grant_id,
                    &Actor::Account,
                    "",
                )
                .await
                .unwrap();
                s.env
            }
            _ => s.env.restart(|raw| raw.device.enabled = false).await,
        };
        let after = device_matrix(&env, &held).await;
        let working: Vec<_> = after
            .iter()
            .filter(|(name, ok)| *ok && (gone != "switched off" || name.starts_with("master")))
            .collect();
        assert!(working.is_empty(), "{gone}: still accepted: {working:?}");
    }
}

/// The web sign-in token (`oauth_token`, exchanged with `ACCESS_TOKEN=1`) at the one endpoint
/// that accepts it: refused once the account is disabled or deleted, the account signed out
/// everywhere, its password changed, or device login switched off.
#[tokio::test]
async fn web_sign_in_tokens_die_with_account_sign_out_password_or_switch() {
    /// What `/auth` asks before it consumes anything (the endpoint itself uses the token up
    /// when it works, so it is asked only after).
    async fn valid(env: &TestEnv, token: &str) -> bool {
        tessera_domain::credentials::find_valid(
            env.ctx(),
            token,
            &[CredentialKind::DeviceSetupToken],
        )
        .await
        .unwrap()
        .is_some()
    }
    for gone in ["disabled", "deleted", "signed out everywhere", "password changed", "switched off"]
    {
        let s = crate::device::setup().await;
        let (token, _) = crate::device::web_sign_in_token(&s.env, &mut s.env.browser()).await;
        assert!(valid(&s.env, &token).await, "{gone}: before");
        let ctx = s.env.ctx();
        let env = match gone {
            "disabled" | "deleted" => {
                let state =
                    if gone == "disabled" { AccountState::Disabled } else { AccountState::Deleted };
                tessera_domain::accounts::set_state(ctx, &s.account, state, &Actor::Cli, "")
                    .await
                    .unwrap();
                s.env
            }
            "signed out everywhere" => {
                tessera_domain::accounts::sign_out_everywhere(
                    ctx,
                    &s.account,
                    false,
                    &Actor::Cli,
                    "",
                )
                .await
                .unwrap();
                s.env
            }
            "password changed" => {
                tessera_domain::accounts::set_password(
                    ctx,
                    &s.account,
                    "another-password-9".to_owned(),
                    None,
                    false,
                    &Actor::Cli,
                    "",
                )
                .await
                .unwrap();
                s.env
            }
            _ => s.env.restart(|raw| raw.device.enabled = false).await,
        };
        assert!(!valid(&env, &token).await, "{gone}: still valid");
        if gone != "switched off" {
            let answer = crate::device::exchange(&env, &token, crate::device::ANDROID_ID_WEB).await;
            assert_eq!(answer.get("Error"), Some("BadAuthentication"), "{gone}");
            assert!(answer.get("Token").is_none(), "{gone}");
        }
    }
}
