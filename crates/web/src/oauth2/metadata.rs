//! Discovery (`/.well-known/openid-configuration`, `/.well-known/oauth-authorization-server`) and
//! the published keys as a JWKS (`/oauth2/v3/certs`), cached for as long as a rotation allows.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use tessera_domain::oauth2::jwks::{self, KeyMaterial};

use crate::AppState;
use crate::error::PageError;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery_get))
        .route("/.well-known/oauth-authorization-server", get(discovery_get))
        .route("/oauth2/v3/certs", get(jwks_get))
        .route("/oauth2/v1/certs", get(x509_get))
}

fn public_json(body: &Value, max_age: i64) -> Response {
    let mut res = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"))],
        body.to_string(),
    )
        .into_response();
    if let Ok(value) =
        HeaderValue::from_str(&format!("public, max-age={max_age}, must-revalidate, no-transform"))
    {
        res.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    res
}

async fn discovery_get(State(state): State<AppState>) -> Response {
    let base = &*state.ctx.public_url;
    let body = json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/o/oauth2/v2/auth"),
        "token_endpoint": format!("{base}/token"),
        "pushed_authorization_request_endpoint": format!("{base}/oauth2/par"),
        "require_pushed_authorization_requests": state.ctx.policy.require_par,
        "request_parameter_supported": true,
        "request_uri_parameter_supported": false,
        "request_object_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "dpop_signing_alg_values_supported": tessera_domain::oauth2::dpop::ALGS,
        "userinfo_endpoint": format!("{base}/oauth2/v3/userinfo"),
        "revocation_endpoint": format!("{base}/revoke"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "jwks_uri": format!("{base}/oauth2/v3/certs"),
        "device_authorization_endpoint": format!("{base}/o/oauth2/device/code"),
        "response_types_supported": ["code", "token", "id_token", "code id_token", "token id_token", "code token id_token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "claims_supported": ["aud", "azp", "email", "email_verified", "exp", "hd", "iat", "iss", "name", "sub", "auth_time", "nonce", "at_hash", "c_hash"],
        "code_challenge_methods_supported": ["S256", "plain"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:migration:oauth1",
            "urn:tessera:params:oauth:grant-type:migration:legacy"
        ],
        "authorization_response_iss_parameter_supported": true,
        "prompt_values_supported": ["none", "consent", "select_account", "login"],
    });
    public_json(&body, 3600)
}

async fn jwks_get(State(state): State<AppState>) -> Result<Response, PageError> {
    let keys = jwks::published(&state.ctx).await?;
    let keys: Vec<Value> = keys
        .into_iter()
        .map(|it| match it.material {
            KeyMaterial::Rsa { n, e } => {
                json!({ "kty": "RSA", "alg": it.alg, "use": "sig", "kid": it.kid, "n": n, "e": e })
            }
            KeyMaterial::P256 { x, y } => json!({
                "kty": "EC", "alg": it.alg, "use": "sig", "kid": it.kid, "crv": "P-256", "x": x, "y": y
            }),
        })
        .collect();
    Ok(public_json(&json!({ "keys": keys }), jwks::MAX_AGE_SECS))
}

/// Google's `{kid: PEM certificate}` map, with the same kids as the JWKS.
async fn x509_get(State(state): State<AppState>) -> Result<Response, PageError> {
    let certs = jwks::certificates(&state.ctx).await?;
    let map: serde_json::Map<String, Value> =
        certs.into_iter().map(|(kid, pem)| (kid, Value::String(pem))).collect();
    Ok(public_json(&Value::Object(map), jwks::MAX_AGE_SECS))
}
