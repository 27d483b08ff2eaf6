//! The example feeds service (`tessera-example-feeds`) in-process on loopback host names: its
//! pages behind the client library's web sign-on layer, and its API accepting every legacy token
//! kind (`GoogleLogin auth=`, AuthSub, OAuth 1.0a signed, OAuth 2.0 Bearer) through the one caller
//! check.

use tessera_domain::audit::Actor;
use tessera_domain::services::ServiceWeb;

use crate::support::TestEnv;

const CAL: &str = "http://www.example.com/calendar/feeds/";

/// Runs the example feeds service as `name` on `host` (a loopback address, port 0), registered at
/// `env` with web sign-on and both logout channels; its API asks for `api_scope` (by default
/// `<public>/api/`). Answers its public URL (no trailing slash).
pub(crate) async fn start(
    env: &TestEnv,
    name: &str,
    host: &str,
    api_scope: Option<&str>,
) -> String {
    let listener = tokio::net::TcpListener::bind(format!("{host}:0")).await.unwrap();
    let public = format!("http://{host}:{}", listener.local_addr().unwrap().port());
    let api_scope =
        api_scope.map_or_else(|| tessera_example_feeds::api_scope(&public), str::to_owned);
    if tessera_domain::services::get(env.ctx(), name).await.is_err() {
        let new = tessera_domain::services::NewService {
            name: name.to_owned(),
            display_name: name.to_uppercase(),
            scopes: vec![api_scope.clone()],
            clientlogin_ttl_secs: None,
            protocols: None,
        };
        tessera_domain::services::add(env.ctx(), new, &Actor::Cli).await.unwrap();
    }
    let web = ServiceWeb {
        prefixes: vec![format!("{public}/")],
        logout_url: Some(format!("{public}/sso/logout")),
        backchannel_logout_url: Some(format!("{public}/sso/backchannel")),
    };
    tessera_domain::services::set_web(env.ctx(), name, web, &Actor::Cli).await.unwrap();
    let config = tessera_example_feeds::FeedsConfig {
        accounts: env.base.clone(),
        service: name.to_owned(),
        public: public.clone(),
        cookie_name: Some(format!("{}SID", name.replace('-', "").to_uppercase())),
        api_scope: Some(api_scope),
        proxy_app: None,
    };
    let app = tessera_example_feeds::router(&config).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    public
}

async fn get_feed(url: &str, authorization: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// A server with every legacy token kind minted for one account (the credential matrix's set) and
/// the feeds service whose API covers their calendar scope (service `cl`).
struct Setup {
    env: TestEnv,
    minted: crate::core::Minted,
    feeds: String,
    url: String,
    /// What the API answers that account.
    me: String,
}

async fn setup() -> Setup {
    let env = TestEnv::start().await;
    let minted = crate::core::mint(&env).await;
    let feeds = start(&env, "cl", "127.0.0.2", Some(CAL)).await;
    let url = format!("{feeds}/api/feed");
    let me = format!("feed for {}\n", tessera_domain::accounts::subject(&minted.account.id));
    Setup { env, minted, feeds, url, me }
}

/// After the account is disabled, `authorization` is refused at the service too.
async fn dies_with_the_account(s: &Setup, authorization: &str) {
    tessera_domain::accounts::set_state(
        s.env.ctx(),
        &s.minted.account,
        tessera_store::AccountState::Disabled,
        &Actor::Cli,
        "",
    )
    .await
    .unwrap();
    assert_eq!(get_feed(&s.url, Some(authorization)).await.0, 401, "{authorization}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feeds_api_takes_a_clientlogin_auth_token() {
    let s = setup().await;
    let google = format!("GoogleLogin auth={}", s.minted.clientlogin_auth);
    assert_eq!(get_feed(&s.url, Some(&google)).await, (200, s.me.clone()));
    assert_eq!(get_feed(&s.url, Some("GoogleLogin auth=nope")).await.0, 401);
    // No credentials at all: a challenge.
    assert_eq!(get_feed(&s.url, None).await.0, 401);
    dies_with_the_account(&s, &google).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feeds_api_takes_an_authsub_token() {
    let s = setup().await;
    let authsub = format!("AuthSub token=\"{}\"", s.minted.authsub_session);
    assert_eq!(get_feed(&s.url, Some(&authsub)).await, (200, s.me.clone()));
    assert_eq!(get_feed(&s.url, Some("AuthSub token=\"nope\"")).await.0, 401);
    dies_with_the_account(&s, &authsub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feeds_api_takes_an_oauth1_signed_request() {
    let s = setup().await;
    // Signed for this service's URL; the nonce is spent, so a replay is refused.
    let (token, token_secret, consumer_secret) = &s.minted.oauth1;
    let sign = |url: &str| {
        crate::core::oauth1_header("GET", url, "app.example", consumer_secret, token, token_secret)
    };
    let signed = sign(&s.url);
    assert_eq!(get_feed(&s.url, Some(&signed)).await, (200, s.me.clone()));
    assert_eq!(get_feed(&s.url, Some(&signed)).await.0, 401, "nonce replayed");
    let elsewhere = sign(&format!("{}/api/other", s.feeds));
    assert_eq!(get_feed(&s.url, Some(&elsewhere)).await.0, 401, "signed for another URL");
    dies_with_the_account(&s, &sign(&s.url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feeds_api_takes_an_oauth2_bearer_token_that_covers_it() {
    let s = setup().await;
    let bearer = format!("Bearer {}", bearer_with_scope(&s.env, &s.minted.account, CAL).await);
    assert_eq!(get_feed(&s.url, Some(&bearer)).await, (200, s.me.clone()));
    // The matrix's openid/email token is valid but does not cover the feed.
    let narrow = format!("Bearer {}", s.minted.access);
    assert_eq!(get_feed(&s.url, Some(&narrow)).await.0, 403, "scope does not cover the feed");
    assert_eq!(get_feed(&s.url, Some("Bearer nope")).await.0, 401);
    dies_with_the_account(&s, &bearer).await;
}

/// An OAuth 2.0 access token for `account` carrying `scope`, from a client of a fresh project.
async fn bearer_with_scope(
    env: &TestEnv,
    account: &tessera_store::AccountRecord,
    scope: &str,
) -> String {
    crate::sso::access_token_with(env, account, scope).await.0
}
