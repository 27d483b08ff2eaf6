//! `IntrospectionLayer` in front of an axum router, with the mock provider's introspection endpoint.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use tessera_client::ManualClock;
use tessera_client::layer::{Caller, IntrospectionLayer};
use tessera_client::oauth2::{ClientAuthMethod, OAuthClient};
use tower::ServiceExt as _;

use crate::oauth2::{CLIENT_ID, CLIENT_SECRET, FAR_EXP, Provider};

const T0: u64 = 1_700_000_000;

async fn whoami(Extension(caller): Extension<Caller>) -> String {
    format!(
        "{} {} {} {:?}",
        caller.subject.unwrap_or_default(),
        caller.client_id.unwrap_or_default(),
        caller.scopes.join(","),
        caller.expires_at.map(|it| it.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()),
    )
}

fn app(client: OAuthClient, clock: Arc<ManualClock>) -> axum::Router {
    let layer = IntrospectionLayer::with_options(client, Duration::from_secs(30), 100, clock);
    axum::Router::new().route("/whoami", get(whoami)).layer(layer)
}

async fn call(
    app: &axum::Router,
    authorization: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let mut req = Request::builder().uri("/whoami");
    if let Some(value) = authorization {
        req = req.header(header::AUTHORIZATION, value);
    }
    let res = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let challenge =
        res.headers().get(header::WWW_AUTHENTICATE).map(|it| it.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(res.into_body(), 64 * 1024).await.unwrap();
    (status, challenge, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn active_token_yields_a_cached_caller() {
    let provider = Provider::start().await;
    provider.state.active.lock().unwrap().insert("live".into(), FAR_EXP);
    let clock = Arc::new(ManualClock::at_unix(T0));
    let app = app(provider.client().await, clock.clone());

    let (status, challenge, body) = call(&app, Some("Bearer live")).await;
    assert_eq!((status, challenge), (StatusCode::OK, None));
    assert_eq!(body, format!("user-1 android-app read,write Some({FAR_EXP})"));
    call(&app, Some("Bearer live")).await;
    assert_eq!(provider.introspections(), 1, "served from the cache within the TTL");
    clock.advance(Duration::from_secs(30));
    let (status, _, _) = call(&app, Some("bearer live")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(provider.introspections(), 2, "asked again after the TTL");
}

#[tokio::test]
async fn inactive_and_missing_tokens_get_401() {
    let provider = Provider::start().await;
    let app = app(provider.client().await, Arc::new(ManualClock::at_unix(T0)));

    let (status, challenge, _) = call(&app, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some("Bearer"));
    let (status, challenge, _) = call(&app, Some("GoogleLogin auth=abc")).await;
    assert_eq!((status, challenge.as_deref()), (StatusCode::UNAUTHORIZED, Some("Bearer")));
    assert_eq!(provider.introspections(), 0);

    let (status, challenge, _) = call(&app, Some("Bearer revoked")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some("Bearer error=\"invalid_token\""));
    call(&app, Some("Bearer revoked")).await;
    assert_eq!(provider.introspections(), 1, "inactive answers are cached too");
}

#[tokio::test]
async fn cache_never_outlives_the_token() {
    let provider = Provider::start().await;
    provider.state.active.lock().unwrap().insert("short".into(), T0 + 10);
    let clock = Arc::new(ManualClock::at_unix(T0));
    let app = app(provider.client().await, clock.clone());
    assert_eq!(call(&app, Some("Bearer short")).await.0, StatusCode::OK);
    clock.advance(Duration::from_secs(10));
    let (status, challenge, _) = call(&app, Some("Bearer short")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some("Bearer error=\"invalid_token\""));
    assert_eq!(provider.introspections(), 2);
}

#[tokio::test]
async fn introspection_failure_is_503() {
    let provider = Provider::start().await;
    let unauthenticated = OAuthClient::discover(reqwest::Client::new(), &provider.base, CLIENT_ID)
        .await
        .unwrap()
        .with_secret(CLIENT_SECRET, ClientAuthMethod::Post);
    let app = app(unauthenticated, Arc::new(ManualClock::at_unix(T0)));
    let (status, _, _) = call(&app, Some("Bearer live")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn layer_is_generic_over_bodies_and_services() {
    use std::convert::Infallible;
    use tower::Layer as _;

    let provider = Provider::start().await;
    provider.state.active.lock().unwrap().insert("live".into(), FAR_EXP);
    let layer = IntrospectionLayer::new(provider.client().await);
    // A plain tower service over `String` bodies, no axum involved.
    let inner = tower::service_fn(|req: axum::http::Request<String>| async move {
        let caller = req.extensions().get::<Caller>().cloned();
        Ok::<_, Infallible>(axum::http::Response::new(format!(
            "{:?} {}",
            caller.and_then(|it| it.subject),
            req.body()
        )))
    });
    let service = layer.layer(inner);
    let req = axum::http::Request::builder()
        .header(header::AUTHORIZATION, "Bearer live")
        .body(String::from("payload"))
        .unwrap();
    let res = service.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "Some(\"user-1\") payload");
    let res = service.oneshot(axum::http::Request::new(String::new())).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.body(), "");
}

#[tokio::test]
async fn required_scopes_are_enforced() {
    let provider = Provider::start().await;
    provider.state.active.lock().unwrap().insert("live".into(), FAR_EXP);
    let client = provider.client().await;
    let clock = Arc::new(ManualClock::at_unix(T0));
    let layer = |scopes: &[&str]| {
        IntrospectionLayer::with_options(
            client.clone(),
            Duration::from_secs(30),
            100,
            clock.clone(),
        )
        .require_scopes(scopes.iter().copied())
    };
    let granted = axum::Router::new().route("/whoami", get(whoami)).layer(layer(&["read"]));
    assert_eq!(call(&granted, Some("Bearer live")).await.0, StatusCode::OK);
    let missing =
        axum::Router::new().route("/whoami", get(whoami)).layer(layer(&["read", "admin"]));
    let (status, challenge, _) = call(&missing, Some("Bearer live")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        challenge.as_deref(),
        Some("Bearer error=\"insufficient_scope\", scope=\"read admin\"")
    );
}

async fn call_dpop(
    app: &axum::Router,
    scheme: &str,
    token: &str,
    proofs: &[String],
) -> (StatusCode, Option<String>) {
    let mut req = Request::builder()
        .uri("/whoami")
        .header(header::HOST, "api.example.test")
        .header(header::AUTHORIZATION, format!("{scheme} {token}"));
    for proof in proofs {
        req = req.header("DPoP", proof);
    }
    let res = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let challenge =
        res.headers().get(header::WWW_AUTHENTICATE).map(|it| it.to_str().unwrap().to_owned());
    (res.status(), challenge)
}

/// A DPoP-bound token passes only with the `DPoP` scheme and a proof of its own key for this
/// request (RFC 9449 §7); an unbound token is no DPoP token.
#[tokio::test]
async fn dpop_bound_tokens_need_a_proof_of_their_key() {
    use tessera_client::dpop::DpopSigner;
    let provider = Provider::start().await;
    let signer = DpopSigner::generate().unwrap();
    let thief = DpopSigner::generate().unwrap();
    provider.state.active.lock().unwrap().insert("bound".into(), FAR_EXP);
    provider.state.active.lock().unwrap().insert("plain".into(), FAR_EXP);
    provider.state.bound.lock().unwrap().insert("bound".into(), signer.jkt());
    let app = app(provider.client().await, Arc::new(ManualClock::at_unix(T0)));
    let url = "https://api.example.test/whoami";
    let proof = |signer: &DpopSigner, method: &str, url: &str, token: &str, iat: u64| {
        signer.proof(method, url, Some(token), None, iat).unwrap()
    };

    let good = proof(&signer, "GET", url, "bound", T0);
    assert_eq!(
        call_dpop(&app, "DPoP", "bound", std::slice::from_ref(&good)).await,
        (StatusCode::OK, None)
    );
    let with_query = proof(&signer, "GET", &format!("{url}?x=1"), "bound", T0 + 10);
    assert_eq!(call_dpop(&app, "dpop", "bound", &[with_query]).await.0, StatusCode::OK);

    let bad_proof = Some("DPoP algs=\"ES256\", error=\"invalid_dpop_proof\"".to_owned());
    let refused = [
        vec![],
        vec![good.clone(), good.clone()],
        vec![proof(&signer, "POST", url, "bound", T0)],
        vec![proof(&signer, "GET", "https://other.example.test/whoami", "bound", T0)],
        vec![proof(&signer, "GET", "https://api.example.test/other", "bound", T0)],
        vec![proof(&signer, "GET", url, "another token", T0)],
        vec![proof(&signer, "GET", url, "bound", T0 - 301)],
        vec![format!("{}x", &good[..good.len() - 2])],
        vec!["not a jwt".to_owned()],
    ];
    for proofs in refused {
        assert_eq!(
            call_dpop(&app, "DPoP", "bound", &proofs).await,
            (StatusCode::UNAUTHORIZED, bad_proof.clone()),
            "{proofs:?}"
        );
    }
    // Another key's valid proof, the bound token as a bearer token, an unbound token with DPoP.
    let stolen = proof(&thief, "GET", url, "bound", T0);
    let wrong_key = call_dpop(&app, "DPoP", "bound", &[stolen]).await;
    let invalid = Some("DPoP algs=\"ES256\", error=\"invalid_token\"".to_owned());
    assert_eq!(wrong_key, (StatusCode::UNAUTHORIZED, invalid.clone()));
    let as_bearer = call_dpop(&app, "Bearer", "bound", &[]).await;
    assert_eq!(
        as_bearer,
        (StatusCode::UNAUTHORIZED, Some("Bearer error=\"invalid_token\"".into()))
    );
    let plain = proof(&signer, "GET", url, "plain", T0);
    assert_eq!(
        call_dpop(&app, "DPoP", "plain", &[plain]).await,
        (StatusCode::UNAUTHORIZED, invalid)
    );
    assert_eq!(call_dpop(&app, "Bearer", "plain", &[]).await, (StatusCode::OK, None));
}

/// A proof is accepted once by the resource server too (RFC 9449 §11.1): its `jti` is kept for the
/// `iat` window in a bounded cache, which refuses new proofs rather than forget a live one.
#[tokio::test]
async fn a_dpop_proof_is_accepted_once_and_the_jti_cache_is_bounded() {
    use tessera_client::dpop::DpopSigner;
    let provider = Provider::start().await;
    let signer = DpopSigner::generate().unwrap();
    provider.state.active.lock().unwrap().insert("bound".into(), FAR_EXP);
    provider.state.bound.lock().unwrap().insert("bound".into(), signer.jkt());
    let clock = Arc::new(ManualClock::at_unix(T0));
    let layer = IntrospectionLayer::with_options(
        provider.client().await,
        Duration::from_secs(30),
        2,
        clock.clone(),
    );
    let app = axum::Router::new().route("/whoami", get(whoami)).layer(layer);
    let url = "https://api.example.test/whoami";
    let proof = |iat: u64| signer.proof("GET", url, Some("bound"), None, iat).unwrap();
    let replay = Some("DPoP algs=\"ES256\", error=\"invalid_dpop_proof\"".to_owned());

    let first = proof(T0);
    assert_eq!(
        call_dpop(&app, "DPoP", "bound", std::slice::from_ref(&first)).await,
        (StatusCode::OK, None)
    );
    assert_eq!(
        call_dpop(&app, "DPoP", "bound", std::slice::from_ref(&first)).await,
        (StatusCode::UNAUTHORIZED, replay.clone()),
        "the same proof twice"
    );
    // A second fresh proof fills the cache (two entries); a third is refused while both live.
    assert_eq!(call_dpop(&app, "DPoP", "bound", &[proof(T0)]).await.0, StatusCode::OK);
    assert_eq!(
        call_dpop(&app, "DPoP", "bound", &[proof(T0)]).await,
        (StatusCode::UNAUTHORIZED, replay.clone()),
        "a full cache refuses rather than forgets"
    );
    // Past the window the old proofs are dropped; the first one is stale anyway.
    clock.advance(Duration::from_secs(301));
    let later = proof(T0 + 301);
    assert_eq!(
        call_dpop(&app, "DPoP", "bound", std::slice::from_ref(&later)).await,
        (StatusCode::OK, None)
    );
    assert_eq!(call_dpop(&app, "DPoP", "bound", &[later]).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call_dpop(&app, "DPoP", "bound", &[first]).await.0, StatusCode::UNAUTHORIZED);
}

/// Sixteen requests carrying one proof at once: exactly one gets through.
#[tokio::test]
async fn a_burst_of_one_dpop_proof_lets_exactly_one_request_through() {
    use tessera_client::dpop::DpopSigner;
    let provider = Provider::start().await;
    let signer = DpopSigner::generate().unwrap();
    provider.state.active.lock().unwrap().insert("bound".into(), FAR_EXP);
    provider.state.bound.lock().unwrap().insert("bound".into(), signer.jkt());
    let app = app(provider.client().await, Arc::new(ManualClock::at_unix(T0)));
    let proof =
        signer.proof("GET", "https://api.example.test/whoami", Some("bound"), None, T0).unwrap();
    let mut calls = Vec::new();
    for _ in 0..16 {
        let (app, proof) = (app.clone(), proof.clone());
        calls.push(tokio::spawn(async move { call_dpop(&app, "DPoP", "bound", &[proof]).await }));
    }
    let mut passed = 0;
    for call in calls {
        let (status, _) = call.await.unwrap();
        assert!(matches!(status, StatusCode::OK | StatusCode::UNAUTHORIZED), "{status}");
        passed += usize::from(status == StatusCode::OK);
    }
    assert_eq!(passed, 1);
}
