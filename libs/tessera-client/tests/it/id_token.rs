//! `IdTokenVerifier` against a mock issuer: every error path, rotation, rate limiting, caching, azp.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use tessera_client::ManualClock;
use tessera_client::id_token::{FetchError, IdTokenVerifier, IdTokenVerifierBuilder, VerifyError};
use url::Url;

use crate::support::{TestKey, serve};

const T0: u64 = 1_700_000_000;
const WEB_CLIENT: &str = "1234-web.apps.example.test";
const ANDROID_CLIENT: &str = "1234-android.apps.example.test";

#[derive(Default)]
struct IssuerState {
    base: OnceLock<String>,
    jwks: Mutex<Vec<Value>>,
    cache_control: Mutex<Option<&'static str>>,
    fail: Mutex<bool>,
    jwks_hits: AtomicUsize,
    discovery_hits: AtomicUsize,
    /// When set, the next JWKS request waits for this signal before answering.
    gate: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

async fn discovery(State(state): State<Arc<IssuerState>>) -> Json<Value> {
    state.discovery_hits.fetch_add(1, Ordering::SeqCst);
    let base = state.base.get().unwrap();
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/o/oauth2/auth"),
        "token_endpoint": format!("{base}/o/oauth2/token"),
        "jwks_uri": format!("{base}/oauth2/v3/certs"),
        "revocation_endpoint": format!("{base}/o/oauth2/revoke"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
    }))
}

async fn certs(State(state): State<Arc<IssuerState>>) -> impl IntoResponse {
    state.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let gate = state.gate.lock().unwrap().take();
    if let Some(gate) = gate {
        gate.await.unwrap();
    }
    if *state.fail.lock().unwrap() {
        return (StatusCode::INTERNAL_SERVER_ERROR, HeaderMap::new(), Json(json!({})));
    }
    let mut headers = HeaderMap::new();
    if let Some(value) = *state.cache_control.lock().unwrap() {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    (StatusCode::OK, headers, Json(json!({ "keys": *state.jwks.lock().unwrap() })))
}

struct Env {
    state: Arc<IssuerState>,
    issuer: String,
    clock: Arc<ManualClock>,
    key: TestKey,
}

impl Env {
    async fn start() -> Self {
        let state = Arc::new(IssuerState::default());
        *state.cache_control.lock().unwrap() =
            Some("public, max-age=3600, must-revalidate, no-transform");
        let router = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/oauth2/v3/certs", get(certs))
            .with_state(state.clone());
        let issuer = serve(router).await;
        state.base.set(issuer.clone()).unwrap();
        let key = TestKey::rsa("k1");
        state.jwks.lock().unwrap().push(key.jwk());
        Self { state, issuer, clock: Arc::new(ManualClock::at_unix(T0)), key }
    }

    fn builder(&self) -> IdTokenVerifierBuilder {
        IdTokenVerifier::for_issuer(&self.issuer, WEB_CLIENT)
            .clock(self.clock.clone())
            .refetch_interval(Duration::from_secs(60))
    }

    fn verifier(&self) -> IdTokenVerifier {
        self.builder().build()
    }

    fn claims(&self) -> Value {
        json!({
            "iss": self.issuer, "sub": "10769150350006150715113082367", "aud": WEB_CLIENT, "azp": ANDROID_CLIENT,
            "email": "jsmith@example.com", "email_verified": true, "hd": "example.com",
            "iat": T0 - 10, "exp": T0 + 3590, "nonce": "0394852-3190485-2490358", "name": "J Smith",
        })
    }

    fn publish(&self, key: &TestKey) {
        self.state.jwks.lock().unwrap().push(key.jwk());
    }

    fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

#[tokio::test]
async fn valid_token_through_discovery_yields_typed_claims() {
    let env = Env::start().await;
    let claims = env.verifier().verify(&env.key.sign(&env.claims())).await.unwrap();
    assert_eq!(claims.iss, env.issuer);
    assert_eq!(claims.sub, "10769150350006150715113082367");
    assert_eq!(claims.aud, vec![WEB_CLIENT]);
    assert_eq!(claims.azp.as_deref(), Some(ANDROID_CLIENT));
    assert_eq!(claims.email.as_deref(), Some("jsmith@example.com"));
    assert_eq!(claims.email_verified, Some(true));
    assert_eq!(claims.hd.as_deref(), Some("example.com"));
    assert_eq!((claims.iat, claims.exp), (T0 - 10, T0 + 3590));
    assert_eq!(claims.nonce.as_deref(), Some("0394852-3190485-2490358"));
    assert_eq!(claims.extra["name"], "J Smith");
    assert_eq!(env.state.discovery_hits.load(Ordering::SeqCst), 1);
    assert_eq!(env.jwks_hits(), 1);
}

#[tokio::test]
async fn fixed_jwks_uri_skips_discovery_and_es256_works() {
    let env = Env::start().await;
    let ec = TestKey::ec("ec1");
    env.publish(&ec);
    let jwks = Url::parse(&format!("{}/oauth2/v3/certs", env.issuer)).unwrap();
    let verifier = IdTokenVerifier::with_jwks_uri(jwks, &env.issuer, WEB_CLIENT)
        .clock(env.clock.clone())
        .build();
    let claims = verifier.verify(&ec.sign(&env.claims())).await.unwrap();
    assert_eq!(claims.sub, "10769150350006150715113082367");
    verifier.verify(&env.key.sign(&env.claims())).await.unwrap();
    assert_eq!(env.state.discovery_hits.load(Ordering::SeqCst), 0);
    assert_eq!(env.jwks_hits(), 1);
}

#[tokio::test]
async fn expiry_and_issued_at_respect_leeway() {
    let env = Env::start().await;
    let verifier = env.builder().leeway(Duration::from_secs(60)).build();
    let within = env.key.sign(&with(env.claims(), "exp", json!(T0 - 30)));
    verifier.verify(&within).await.unwrap();
    let expired = env.key.sign(&with(env.claims(), "exp", json!(T0 - 61)));
    assert!(
        matches!(verifier.verify(&expired).await, Err(VerifyError::Expired { exp, now: T0 }) if exp == T0 - 61)
    );
    let future = env.key.sign(&with(env.claims(), "iat", json!(T0 + 600)));
    assert!(
        matches!(verifier.verify(&future).await, Err(VerifyError::NotYetValid { iat, .. }) if iat == T0 + 600)
    );
    let long = env.key.sign(&with(env.claims(), "exp", json!(T0 + 2 * 86_400)));
    assert!(matches!(verifier.verify(&long).await, Err(VerifyError::LifetimeTooLong { .. })));
    // The same token passes once the clock reaches it, and expires later.
    env.clock.set_unix(T0 + 3590 + 61);
    assert!(matches!(
        verifier.verify(&env.key.sign(&env.claims())).await,
        Err(VerifyError::Expired { .. })
    ));
}

#[tokio::test]
async fn wrong_audience_and_issuer_are_rejected() {
    let env = Env::start().await;
    let verifier = env.verifier();
    let other_aud = env.key.sign(&with(env.claims(), "aud", json!("someone-else")));
    assert!(
        matches!(verifier.verify(&other_aud).await, Err(VerifyError::WrongAudience { found }) if found == ["someone-else"])
    );
    let many = env.key.sign(&with(env.claims(), "aud", json!(["someone-else", WEB_CLIENT])));
    verifier.verify(&many).await.unwrap();
    let other_iss = env.key.sign(&with(env.claims(), "iss", json!("accounts.google.com")));
    assert!(
        matches!(verifier.verify(&other_iss).await, Err(VerifyError::WrongIssuer { found }) if found == "accounts.google.com")
    );
    // A second allowed audience.
    let verifier = env.builder().audience("someone-else").build();
    verifier.verify(&other_aud).await.unwrap();
}

#[tokio::test]
async fn authorized_party_is_checked_when_configured() {
    let env = Env::start().await;
    let verifier =
        env.builder().authorized_party(ANDROID_CLIENT).authorized_party("other-android").build();
    verifier.verify(&env.key.sign(&env.claims())).await.unwrap();
    let wrong = env.key.sign(&with(env.claims(), "azp", json!("rogue-app")));
    assert!(matches!(
        verifier.verify(&wrong).await,
        Err(VerifyError::WrongAuthorizedParty { found: Some(azp) }) if azp == "rogue-app"
    ));
    // Without azp the authorized party is the audience (the web client), which is not an allowed Android client.
    let mut claims = env.claims();
    claims.as_object_mut().unwrap().remove("azp");
    let web_only = env.key.sign(&claims);
    assert!(matches!(
        verifier.verify(&web_only).await,
        Err(VerifyError::WrongAuthorizedParty { found: Some(azp) }) if azp == WEB_CLIENT
    ));
    // Without the azp restriction the same token is fine.
    env.verifier().verify(&web_only).await.unwrap();
}

#[tokio::test]
async fn nonce_is_compared_on_request() {
    let env = Env::start().await;
    let token = env.key.sign(&env.claims());
    let verifier = env.verifier();
    verifier.verify_with_nonce(&token, "0394852-3190485-2490358").await.unwrap();
    assert!(matches!(
        verifier.verify_with_nonce(&token, "other").await,
        Err(VerifyError::WrongNonce)
    ));
}

#[tokio::test]
async fn bad_signatures_are_rejected() {
    let env = Env::start().await;
    let verifier = env.verifier();
    // Signed by an unpublished key that claims the published kid.
    let impostor = TestKey::rsa("k1");
    assert!(matches!(
        verifier.verify(&impostor.sign(&env.claims())).await,
        Err(VerifyError::BadSignature)
    ));
    // A payload swapped after signing.
    let token = env.key.sign(&env.claims());
    let forged = env.key.sign(&with(env.claims(), "sub", json!("admin")));
    let parts: Vec<&str> = token.split('.').collect();
    let forged_parts: Vec<&str> = forged.split('.').collect();
    let spliced = format!("{}.{}.{}", parts[0], forged_parts[1], parts[2]);
    assert!(matches!(verifier.verify(&spliced).await, Err(VerifyError::BadSignature)));
}

#[tokio::test]
async fn algorithm_comes_from_the_key_not_the_header() {
    let env = Env::start().await;
    let verifier = env.verifier();
    for alg in ["HS256", "none", "RS512", "ES256"] {
        let token = env.key.sign_with_header(&json!({"alg": alg, "kid": "k1"}), &env.claims());
        assert!(
            matches!(verifier.verify(&token).await, Err(VerifyError::AlgorithmMismatch { ref header, key: "RS256" }) if header == alg),
            "alg {alg}"
        );
    }
}

#[tokio::test]
async fn malformed_tokens_are_rejected() {
    let env = Env::start().await;
    let verifier = env.verifier();
    for token in
        ["", "abc", "a.b", "a.b.c.d", "!!!.e30.AA", "e30.e30.AA", "eyJhbGciOiJSUzI1NiJ9.e30.***"]
    {
        assert!(
            matches!(verifier.verify(token).await, Err(VerifyError::Malformed(_))),
            "{token:?}"
        );
    }
    assert_eq!(env.jwks_hits(), 0, "malformed tokens never cause a fetch");
    // Properly signed, but the claims lack `sub`.
    let mut claims = env.claims();
    claims.as_object_mut().unwrap().remove("sub");
    assert!(matches!(
        verifier.verify(&env.key.sign(&claims)).await,
        Err(VerifyError::Malformed(_))
    ));
    let crit = env
        .key
        .sign_with_header(&json!({"alg": "RS256", "kid": "k1", "crit": ["exp"]}), &env.claims());
    assert!(matches!(verifier.verify(&crit).await, Err(VerifyError::Malformed(_))));
    assert!(matches!(verifier.verify(&"a".repeat(20_000)).await, Err(VerifyError::Malformed(_))));
}

#[tokio::test]
async fn rotation_refetches_once_for_a_new_kid() {
    let env = Env::start().await;
    let verifier = env.verifier();
    verifier.verify(&env.key.sign(&env.claims())).await.unwrap();
    assert_eq!(env.jwks_hits(), 1);
    let next = TestKey::rsa("k2");
    env.publish(&next);
    verifier.verify(&next.sign(&env.claims())).await.unwrap();
    assert_eq!(env.jwks_hits(), 2);
    verifier.verify(&next.sign(&env.claims())).await.unwrap();
    verifier.verify(&env.key.sign(&env.claims())).await.unwrap();
    assert_eq!(env.jwks_hits(), 2, "known kids are served from the cache");
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_at_most_once_per_interval() {
    let env = Env::start().await;
    let verifier = env.verifier();
    verifier.verify(&env.key.sign(&env.claims())).await.unwrap();
    for n in 0..50 {
        let rogue = TestKey::rsa_like(&env.key, &format!("unknown-{n}"));
        assert!(matches!(
            verifier.verify(&rogue).await,
            Err(VerifyError::UnknownKey { kid: Some(_) })
        ));
    }
    assert_eq!(env.jwks_hits(), 2, "one refetch for the whole flood");
    env.clock.advance(Duration::from_secs(59));
    assert!(matches!(
        verifier.verify(&TestKey::rsa_like(&env.key, "x")).await,
        Err(VerifyError::UnknownKey { .. })
    ));
    assert_eq!(env.jwks_hits(), 2);
    env.clock.advance(Duration::from_secs(1));
    assert!(matches!(
        verifier.verify(&TestKey::rsa_like(&env.key, "y")).await,
        Err(VerifyError::UnknownKey { .. })
    ));
    assert_eq!(env.jwks_hits(), 3, "the interval has passed");
}

#[tokio::test]
async fn cache_control_max_age_is_honoured() {
    let env = Env::start().await;
    *env.state.cache_control.lock().unwrap() = Some("public, max-age=100");
    let verifier = env.verifier();
    let token = env.key.sign(&env.claims());
    verifier.verify(&token).await.unwrap();
    env.clock.advance(Duration::from_secs(99));
    verifier.verify(&token).await.unwrap();
    assert_eq!(env.jwks_hits(), 1);
    env.clock.advance(Duration::from_secs(1));
    verifier.verify(&token).await.unwrap();
    assert_eq!(env.jwks_hits(), 2, "stale after max-age");
    // A retired key disappears once the cache is refreshed.
    env.state.jwks.lock().unwrap().clear();
    env.clock.advance(Duration::from_secs(100));
    assert!(matches!(verifier.verify(&token).await, Err(VerifyError::UnknownKey { .. })));
    assert_eq!(env.jwks_hits(), 3);
}

#[tokio::test]
async fn no_store_means_fetch_every_time_and_absent_header_uses_default_ttl() {
    let env = Env::start().await;
    *env.state.cache_control.lock().unwrap() = Some("no-store");
    let verifier = env.verifier();
    let token = env.key.sign(&env.claims());
    verifier.verify(&token).await.unwrap();
    verifier.verify(&token).await.unwrap();
    assert_eq!(env.jwks_hits(), 2);

    *env.state.cache_control.lock().unwrap() = None;
    let verifier = env.builder().default_cache_ttl(Duration::from_secs(10)).build();
    verifier.verify(&token).await.unwrap();
    env.clock.advance(Duration::from_secs(9));
    verifier.verify(&token).await.unwrap();
    assert_eq!(env.jwks_hits(), 3);
    env.clock.advance(Duration::from_secs(1));
    verifier.verify(&token).await.unwrap();
    assert_eq!(env.jwks_hits(), 4);
}

#[tokio::test]
async fn fetch_failures_are_reported_and_backed_off() {
    let env = Env::start().await;
    *env.state.fail.lock().unwrap() = true;
    let verifier = env.verifier();
    let token = env.key.sign(&env.claims());
    assert!(matches!(
        verifier.verify(&token).await,
        Err(VerifyError::Fetch(FetchError::Status(500)))
    ));
    assert!(matches!(verifier.verify(&token).await, Err(VerifyError::Fetch(FetchError::Backoff))));
    assert_eq!(env.jwks_hits(), 1);
    *env.state.fail.lock().unwrap() = false;
    env.clock.advance(Duration::from_secs(60));
    verifier.verify(&token).await.unwrap();
    assert_eq!(env.jwks_hits(), 2);
}

#[tokio::test]
async fn discovery_of_a_different_issuer_is_a_fetch_error() {
    let env = Env::start().await;
    let verifier = IdTokenVerifier::for_issuer(format!("{}/", env.issuer), WEB_CLIENT)
        .clock(env.clock.clone())
        .build();
    let err = verifier.verify(&env.key.sign(&env.claims())).await.unwrap_err();
    assert!(matches!(err, VerifyError::Fetch(FetchError::Discovery(_))), "{err:?}");
}

impl TestKey {
    /// A token signed by `key` whose header names `kid`.
    fn rsa_like(key: &TestKey, kid: &str) -> String {
        let claims = json!({"iss": "x", "sub": "s", "aud": WEB_CLIENT, "iat": T0, "exp": T0 + 60});
        key.sign_with_header(&json!({"alg": "RS256", "kid": kid}), &claims)
    }
}

#[tokio::test]
async fn concurrent_verifications_share_one_refresh_after_expiry() {
    let env = Env::start().await;
    *env.state.cache_control.lock().unwrap() = Some("max-age=100");
    let verifier = env.verifier();
    let token = env.key.sign(&env.claims());
    verifier.verify(&token).await.unwrap();
    env.clock.advance(Duration::from_secs(100));

    let (release, gate) = tokio::sync::oneshot::channel();
    *env.state.gate.lock().unwrap() = Some(gate);
    let refreshing = tokio::spawn({
        let (verifier, token) = (verifier.clone(), token.clone());
        async move { verifier.verify(&token).await }
    });
    while env.jwks_hits() < 2 {
        tokio::task::yield_now().await;
    }
    // The refresh is stuck in the server; another verification uses the stale key meanwhile.
    verifier.verify(&token).await.unwrap();
    assert_eq!(env.jwks_hits(), 2);
    release.send(()).unwrap();
    refreshing.await.unwrap().unwrap();
    verifier.verify(&token).await.unwrap();
    assert_eq!(env.jwks_hits(), 2, "the refreshed set is fresh again");
}

#[tokio::test]
async fn an_abandoned_refresh_does_not_pin_stale_keys() {
    let env = Env::start().await;
    *env.state.cache_control.lock().unwrap() = Some("max-age=100");
    let verifier = env.verifier();
    let token = env.key.sign(&env.claims());
    verifier.verify(&token).await.unwrap();
    env.clock.advance(Duration::from_secs(100));

    let (_release, gate) = tokio::sync::oneshot::channel::<()>();
    *env.state.gate.lock().unwrap() = Some(gate);
    let refreshing = tokio::spawn({
        let (verifier, token) = (verifier.clone(), token.clone());
        async move { verifier.verify(&token).await }
    });
    while env.jwks_hits() < 2 {
        tokio::task::yield_now().await;
    }
    refreshing.abort();
    assert!(refreshing.await.unwrap_err().is_cancelled());
    // The dropped fetch no longer counts as under way: the next verification fetches itself.
    verifier.verify(&token).await.unwrap();
    assert_eq!(env.jwks_hits(), 3);
}

#[tokio::test]
async fn keys_sharing_a_kid_are_told_apart_by_algorithm() {
    let env = Env::start().await;
    let ec = TestKey::ec("k1");
    env.publish(&ec);
    let verifier = env.verifier();
    verifier.verify(&env.key.sign(&env.claims())).await.unwrap();
    verifier.verify(&ec.sign(&env.claims())).await.unwrap();
    let ps = env.key.sign_with_header(&json!({"alg": "PS256", "kid": "k1"}), &env.claims());
    assert!(matches!(verifier.verify(&ps).await, Err(VerifyError::AlgorithmMismatch { .. })));
}
