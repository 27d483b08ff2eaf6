//! `OAuthClient` against a mock provider: discovery, PKCE code exchange, refresh, client credentials,
//! revocation, introspection and RFC 6749 errors.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Json;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tessera_client::Secret;
use tessera_client::oauth2::{
    ClientAuthMethod, ErrorCode, OAuthClient, OAuthError, PkceVerifier, TokenTypeHint,
};

use crate::support::{b64, serve};

pub const CLIENT_ID: &str = "resource client";
pub const CLIENT_SECRET: &str = "s3cr:t";
pub const REDIRECT: &str = "https://app.example.test/cb";
/// Far in the future (2100-01-01).
pub const FAR_EXP: u64 = 4_102_444_800;

#[derive(Default)]
pub struct ProviderState {
    base: OnceLock<String>,
    pub challenge: Mutex<Option<String>>,
    pub last_auth: Mutex<Option<&'static str>>,
    pub last_scope: Mutex<Option<String>>,
    pub revoked: Mutex<Vec<String>>,
    pub introspections: AtomicUsize,
    /// Tokens the introspection endpoint reports as active, with their `exp`.
    pub active: Mutex<HashMap<String, u64>>,
    /// Active tokens bound to a DPoP key: the key's thumbprint (`cnf.jkt`).
    pub bound: Mutex<HashMap<String, String>>,
}

pub struct Provider {
    pub base: String,
    pub state: Arc<ProviderState>,
}

impl Provider {
    pub async fn start() -> Self {
        let state = Arc::new(ProviderState::default());
        let router = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/o/oauth2/token", post(token))
            .route("/o/oauth2/revoke", post(revoke))
            .route("/oauth2/introspect", post(introspect))
            .with_state(state.clone());
        let base = serve(router).await;
        state.base.set(base.clone()).unwrap();
        Self { base, state }
    }

    pub async fn client(&self) -> OAuthClient {
        OAuthClient::discover(reqwest::Client::new(), &self.base, CLIENT_ID)
            .await
            .unwrap()
            .with_secret(CLIENT_SECRET, ClientAuthMethod::Basic)
    }

    pub fn introspections(&self) -> usize {
        self.state.introspections.load(Ordering::SeqCst)
    }
}

async fn discovery(State(state): State<Arc<ProviderState>>) -> Json<Value> {
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

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (status, Json(json!({"error": code, "error_description": description}))).into_response()
}

/// Which client authentication the request used, if it is valid (RFC 6749 §2.3.1).
fn client_auth(headers: &HeaderMap, form: &HashMap<String, String>) -> Option<&'static str> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|it| it.to_str().ok()) {
        let decoded = STANDARD.decode(value.strip_prefix("Basic ")?).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let unescape = |it: &str| {
            url::form_urlencoded::parse(format!("x={it}").as_bytes()).next().unwrap().1.into_owned()
        };
        return (unescape(id) == CLIENT_ID && unescape(secret) == CLIENT_SECRET).then_some("basic");
    }
    let ok = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    ok.then_some("post")
}

async fn token(
    State(state): State<Arc<ProviderState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(method) = client_auth(&headers, &form) else {
        return error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
    };
    *state.last_auth.lock().unwrap() = Some(method);
    *state.last_scope.lock().unwrap() = form.get("scope").cloned();
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let challenge =
                b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes())
                    .as_ref());
            let expected = state.challenge.lock().unwrap().clone();
            if form.get("code").map(String::as_str) != Some("good-code")
                || form.get("redirect_uri").map(String::as_str) != Some(REDIRECT)
                || expected.as_deref() != Some(challenge.as_str())
            {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Code was already redeemed.",
                );
            }
            Json(json!({
                "access_token": "at-1", "token_type": "Bearer", "expires_in": 3600,
                "refresh_token": "rt-1", "id_token": "h.c.s", "scope": "openid email",
            }))
            .into_response()
        }
        Some("refresh_token") if form.get("refresh_token").map(String::as_str) == Some("rt-1") => {
            Json(json!({"access_token": "at-2", "token_type": "Bearer", "expires_in": "3600"}))
                .into_response()
        }
        Some("refresh_token") => {
            error(StatusCode::BAD_REQUEST, "invalid_grant", "Token has been revoked.")
        }
        Some("client_credentials") => {
            Json(json!({"access_token": "cc-1", "token_type": "Bearer", "expires_in": 3600}))
                .into_response()
        }
        _ => error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Unsupported grant type"),
    }
}

async fn revoke(
    State(state): State<Arc<ProviderState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if client_auth(&headers, &form).is_none() {
        return error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
    }
    if form.get("token_type_hint").map(String::as_str) == Some("refresh_token")
        && form.get("token").map(String::as_str) == Some("odd")
    {
        return error(StatusCode::BAD_REQUEST, "unsupported_token_type", "nope");
    }
    state.revoked.lock().unwrap().push(form.get("token").cloned().unwrap_or_default());
    (StatusCode::OK, "{}").into_response()
}

async fn introspect(
    State(state): State<Arc<ProviderState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if client_auth(&headers, &form) != Some("basic") {
        return error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
    }
    state.introspections.fetch_add(1, Ordering::SeqCst);
    let token = form.get("token").cloned().unwrap_or_default();
    match state.active.lock().unwrap().get(&token) {
        Some(exp) => {
            let mut body = json!({
                "active": true, "scope": "read write", "client_id": "android-app", "sub": "user-1",
                "exp": exp, "token_type": "Bearer",
            });
            if let Some(jkt) = state.bound.lock().unwrap().get(&token) {
                body["cnf"] = json!({ "jkt": jkt });
                body["token_type"] = json!("DPoP");
            }
            Json(body).into_response()
        }
        None => Json(json!({"active": false})).into_response(),
    }
}

#[tokio::test]
async fn code_flow_with_pkce_then_refresh() {
    let provider = Provider::start().await;
    let client = provider.client().await;
    let request = client.authorize(REDIRECT).scope("openid").scope("email").build();
    let challenge = request
        .url
        .query_pairs()
        .find(|(name, _)| name == "code_challenge")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(challenge, request.pkce_verifier.challenge());
    assert!(request.url.as_str().starts_with(&format!("{}/o/oauth2/auth?", provider.base)));
    *provider.state.challenge.lock().unwrap() = Some(challenge);

    let tokens = client.exchange_code("good-code", REDIRECT, &request.pkce_verifier).await.unwrap();
    assert_eq!(tokens.access_token.expose(), "at-1");
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, Some(3600));
    assert_eq!(tokens.refresh_token.as_ref().map(Secret::expose), Some("rt-1"));
    assert_eq!(tokens.id_token.as_deref(), Some("h.c.s"));
    assert_eq!(tokens.scope.as_deref(), Some("openid email"));
    assert_eq!(*provider.state.last_auth.lock().unwrap(), Some("basic"));

    let refreshed =
        client.refresh(tokens.refresh_token.as_ref().unwrap(), &["email"]).await.unwrap();
    assert_eq!(refreshed.access_token.expose(), "at-2");
    assert_eq!(refreshed.expires_in, Some(3600));
    assert!(refreshed.refresh_token.is_none());
    assert_eq!(provider.state.last_scope.lock().unwrap().as_deref(), Some("email"));
}

#[tokio::test]
async fn wrong_verifier_is_an_invalid_grant() {
    let provider = Provider::start().await;
    let client = provider.client().await;
    let request = client.authorize(REDIRECT).build();
    *provider.state.challenge.lock().unwrap() = Some(request.pkce_verifier.challenge());
    let err =
        client.exchange_code("good-code", REDIRECT, &PkceVerifier::generate()).await.unwrap_err();
    match err {
        OAuthError::Server(res) => {
            assert_eq!(res.status, 400);
            assert_eq!(res.error, ErrorCode::InvalidGrant);
            assert_eq!(res.error_description.as_deref(), Some("Code was already redeemed."));
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = client.refresh(&Secret::new("revoked"), &[]).await.unwrap_err();
    assert!(
        matches!(err, OAuthError::Server(ref res) if res.error == ErrorCode::InvalidGrant),
        "{err:?}"
    );
}

#[tokio::test]
async fn client_secret_post_and_bad_credentials() {
    let provider = Provider::start().await;
    let discovered =
        OAuthClient::discover(reqwest::Client::new(), &provider.base, CLIENT_ID).await.unwrap();
    let post = discovered.clone().with_secret(CLIENT_SECRET, ClientAuthMethod::Post);
    let tokens = post.client_credentials(&["read", "write"]).await.unwrap();
    assert_eq!(tokens.access_token.expose(), "cc-1");
    assert_eq!(*provider.state.last_auth.lock().unwrap(), Some("post"));
    assert_eq!(provider.state.last_scope.lock().unwrap().as_deref(), Some("read write"));

    let wrong = discovered.with_secret("wrong", ClientAuthMethod::Basic);
    let err = wrong.client_credentials(&[]).await.unwrap_err();
    assert!(
        matches!(err, OAuthError::Server(ref res) if res.status == 401 && res.error == ErrorCode::InvalidClient),
        "{err:?}"
    );
}

#[tokio::test]
async fn revoke_and_introspect() {
    let provider = Provider::start().await;
    let client = provider.client().await;
    client.revoke(&Secret::new("at-1"), Some(TokenTypeHint::AccessToken)).await.unwrap();
    assert_eq!(*provider.state.revoked.lock().unwrap(), vec!["at-1"]);
    let err =
        client.revoke(&Secret::new("odd"), Some(TokenTypeHint::RefreshToken)).await.unwrap_err();
    assert!(
        matches!(err, OAuthError::Server(ref res) if res.error == ErrorCode::UnsupportedTokenType),
        "{err:?}"
    );

    provider.state.active.lock().unwrap().insert("live".into(), FAR_EXP);
    let info = client.introspect("live", None).await.unwrap();
    assert!(info.active);
    assert_eq!(info.scopes(), vec!["read", "write"]);
    assert_eq!(info.client_id.as_deref(), Some("android-app"));
    assert_eq!(info.sub.as_deref(), Some("user-1"));
    assert_eq!(info.exp, Some(FAR_EXP));
    let info = client.introspect("dead", None).await.unwrap();
    assert!(!info.active);
    assert_eq!(info.scopes(), Vec::<String>::new());
}

#[tokio::test]
async fn missing_endpoints_are_reported() {
    let endpoints = tessera_client::oauth2::Endpoints {
        authorization: url::Url::parse("https://a.test/auth").unwrap(),
        token: url::Url::parse("https://a.test/token").unwrap(),
        revocation: None,
        introspection: None,
    };
    let client = OAuthClient::new(endpoints, "c");
    assert!(matches!(
        client.revoke(&Secret::new("t"), None).await,
        Err(OAuthError::MissingEndpoint("revocation"))
    ));
    assert!(matches!(
        client.introspect("t", None).await,
        Err(OAuthError::MissingEndpoint("introspection"))
    ));
}
