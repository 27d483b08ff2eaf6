//! OAuth 2.0 and OpenID Connect over HTTP, on Google's paths and the standard ones: the
//! authorization endpoint and consent page (`authorize`), token (`token`), tokeninfo, userinfo,
//! revocation, introspection, the device flow (`device`), discovery and keys (`metadata`). Handlers parse with
//! `tessera_proto_oauth2`, decide in `tessera_domain::oauth2`, and render JSON or pages here.

mod authorize;
mod device;
mod introspect;
mod metadata;
mod par;
mod revoke;
mod token;
mod tokeninfo;
mod userinfo;

use axum::Router;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use tessera_domain::oauth2::{Failure, OAuthError, dpop, tokens};
use tessera_proto_oauth2::Params;

use crate::AppState;
use crate::error::Internal;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(authorize::router())
        .merge(token::router())
        .merge(par::router())
        .merge(device::router())
        .merge(tokeninfo::router())
        .merge(userinfo::router())
        .merge(revoke::router())
        .merge(introspect::router())
        .merge(metadata::router())
}

/// A JSON response that no cache keeps (RFC 6749 §5.1).
pub(crate) fn json_no_store(status: StatusCode, body: &Value) -> Response {
    let mut res = (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"))],
        // Serialized straight into bytes: a `Value` has only string keys, so this cannot fail.
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// An RFC 6749 §5.2 error body with its status.
pub(crate) fn oauth_error(err: &OAuthError) -> Response {
    let status = StatusCode::from_u16(err.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut res = json_no_store(
        status,
        &json!({ "error": err.code.as_str(), "error_description": err.description }),
    );
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"oauth2\""));
    }
    res
}

/// A failure: protocol errors go to the client, our own to the log as a `server_error`.
pub(crate) fn failure(failure: Failure) -> Response {
    match failure {
        Failure::OAuth(err) => oauth_error(&err),
        Failure::Domain(err) => {
            let mut res = json_no_store(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "error": "server_error", "error_description": "Try again later." }),
            );
            res.extensions_mut().insert(Internal(err.to_string()));
            res
        }
    }
}

/// The parameters of a form body; other content types carry none.
pub(crate) fn form_params(headers: &HeaderMap, body: &Bytes) -> Result<Params, OAuthError> {
    if body.is_empty() {
        return Ok(Params::default());
    }
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|it| it.to_str().ok()).unwrap_or_default();
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "The body must be application/x-www-form-urlencoded.",
        ));
    }
    Params::parse(body)
}

/// Query and body parameters together; a parameter in both is refused like any repeat.
pub(crate) fn all_params(
    uri: &http::Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Params, OAuthError> {
    let query = Params::parse(uri.query().unwrap_or_default().as_bytes())?;
    let form = form_params(headers, body)?;
    // One source alone was parsed by the same rules already; both are joined and parsed again so
    // that a parameter given in each is refused as repeated.
    if form.pairs().is_empty() {
        return Ok(query);
    }
    if query.pairs().is_empty() {
        return Ok(form);
    }
    let mut raw = query.encode();
    raw.push('&');
    raw.push_str(&form.encode());
    Params::parse(raw.as_bytes())
}

/// The access token of a resource request and the DPoP key it was proven with, if any.
pub(crate) struct AccessToken {
    pub(crate) token: String,
    pub(crate) jkt: Option<String>,
}

impl AccessToken {
    /// How the validator should take it: a DPoP-bound token only with its key's proof.
    pub(crate) fn presentation(&self) -> tokens::Presentation<'_> {
        match &self.jkt {
            Some(jkt) => tokens::Presentation::Dpop(jkt),
            None => tokens::Presentation::Bearer,
        }
    }
}

/// The access token of a resource request: `Authorization: Bearer …` (or Chromium's `OAuth …`
/// without parameters), `Authorization: DPoP …` with a `DPoP` proof of this request and token
/// (RFC 9449 §7), read by the one parser, else `access_token` from the parameters. `None` when
/// there is none, or the DPoP proof does not hold.
pub(crate) async fn access_token(
    state: &AppState,
    method: &http::Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    params: &Params,
) -> tessera_domain::Result<Option<AccessToken>> {
    use tessera_domain::caller::Presented;
    if crate::caller::authorization(headers).is_none() {
        let token = params.get("access_token").map(str::to_owned);
        return Ok(token.map(|token| AccessToken { token, jkt: None }));
    }
    match crate::caller::presented(headers) {
        Some(Presented::Bearer(token)) => Ok(Some(AccessToken { token, jkt: None })),
        Some(Presented::Dpop(token)) => {
            let Ok(Some(proof)) = crate::caller::dpop_proof(headers) else { return Ok(None) };
            let url = format!("{}{}", state.ctx.public_url, uri.path());
            let expected = dpop::Expected {
                method: method.as_str(),
                url: &url,
                access_token: Some(&token),
                nonce: false,
            };
            match dpop::check(&state.ctx, &proof, &expected).await? {
                Ok(jkt) => Ok(Some(AccessToken { token, jkt: Some(jkt) })),
                Err(_) => Ok(None),
            }
        }
        _ => Ok(None),
    }
}
