//! The example feeds service (`tessera-example-feeds`) in-process on loopback host names: its
//! pages behind the client library's web sign-on layer, and its API accepting every legacy token
//! kind (`GoogleLogin auth=`, AuthSub, OAuth 1.0a signed, OAuth 2.0 Bearer) through the one caller
//! check.

use tessera_domain::audit::Actor;
use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feeds_api_accepts_every_legacy_token_through_the_one_caller_check() {
    let env = TestEnv::start().await;
    let minted = crate::core::mint(&env).await;
    // Its API covers the calendar scope the matrix tokens carry (service `cl`).
    let feeds = start(&env, "cl", "127.0.0.2", Some(CAL)).await;
    let url = format!("{feeds}/api/feed");
    let me = format!("feed for {}\n", tessera_domain::accounts::subject(&minted.account.id));

    // ClientLogin.
    let google = format!("GoogleLogin auth={}", minted.clientlogin_auth);
    assert_eq!(get_feed(&url, Some(&google)).await, (200, me.clone()));
    // AuthSub session token.
    let authsub = format!("AuthSub token=\"{}\"", minted.authsub_session);
    assert_eq!(get_feed(&url, Some(&authsub)).await, (200, me.clone()));
    // OAuth 1.0a, signed for this service's URL; the nonce is spent, so a replay is refused.
    let (token, token_secret, consumer_secret) = &minted.oauth1;
    let signed = crate::core::oauth1_header(
        "GET",
        &url,
        "app.example",
        consumer_secret,
        token,
        token_secret,
    );
    assert_eq!(get_feed(&url, Some(&signed)).await, (200, me.clone()));
    assert_eq!(get_feed(&url, Some(&signed)).await.0, 401, "nonce replayed");
    let elsewhere = crate::core::oauth1_header(
        "GET",
        &format!("{feeds}/api/other"),
        "app.example",
        consumer_secret,
        token,
        token_secret,
    );
    assert_eq!(get_feed(&url, Some(&elsewhere)).await.0, 401, "signed for another URL");
    // OAuth 2.0 Bearer with the calendar scope; the matrix's openid/email token lacks it.
    let bearer = bearer_with_scope(&env, &minted.account, CAL).await;
    assert_eq!(get_feed(&url, Some(&format!("Bearer {bearer}"))).await, (200, me.clone()));
    let narrow = format!("Bearer {}", minted.access);
    assert_eq!(get_feed(&url, Some(&narrow)).await.0, 403, "scope does not cover the feed");

    // No credentials, an unknown scheme, garbage tokens: refused with a challenge.
    assert_eq!(get_feed(&url, None).await.0, 401);
    assert_eq!(get_feed(&url, Some("GoogleLogin auth=nope")).await.0, 401);
    assert_eq!(get_feed(&url, Some("Bearer nope")).await.0, 401);
    // A disabled account's tokens die at the service too.
    tessera_domain::accounts::set_state(
        env.ctx(),
        &minted.account,
        tessera_store::AccountState::Disabled,
        &Actor::Cli,
        "",
    )
    .await
    .unwrap();
    for value in [google, authsub, format!("Bearer {bearer}")] {
        assert_eq!(get_feed(&url, Some(&value)).await.0, 401, "{value}");
    }
}

/// An OAuth 2.0 access token for `account` carrying `scope`, from a client of a fresh project.
async fn bearer_with_scope(
    env: &TestEnv,
    account: &tessera_store::AccountRecord,
    scope: &str,
) -> String {
    let ctx = env.ctx();
    let project =
        tessera_domain::projects::create(ctx, "Feeds reader", &account.email, &Actor::Cli)
            .await
            .unwrap();
    let new = NewClient {
        kind: ClientKind::Web,
        name: "Feeds reader".to_owned(),
        redirect_uris: vec!["https://reader.example/cb".to_owned()],
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    let created = clients::create(ctx, &project, new, &Actor::Cli).await.unwrap();
    let grant = tessera_domain::grants::grant(
        ctx,
        &account.id,
        created.client.id(),
        tessera_domain::credentials::Protocol::OAuth2,
        &[scope.to_owned()],
        "",
    )
    .await
    .unwrap();
    let subject = tessera_domain::oauth2::tokens::Subject {
        account_id: Some(&account.id),
        client_id: created.client.id(),
        grant_id: Some(&grant.id),
    };
    tessera_domain::oauth2::tokens::access_token(ctx, &created.client, subject, scope, false)
        .await
        .unwrap()
}
