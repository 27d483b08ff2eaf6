//! Userinfo (`/oauth2/v3/userinfo` with OpenID Connect names, `/oauth2/v2/userinfo` and
//! `/oauth2/v1/userinfo` with Google's `Userinfoplus` names). Missing or invalid tokens get a 401
//! with `WWW-Authenticate: Bearer` (RFC 6750 §3).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::response::Response;
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};
use tessera_domain::claims::Names;
use tessera_domain::credentials::Scopes;
use tessera_domain::oauth2::tokens;

use super::{access_token, all_params, json_no_store};
use crate::AppState;
use crate::error::Internal;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth2/v3/userinfo", get(userinfo_v3).post(userinfo_v3))
        .route("/oauth2/v2/userinfo", get(userinfo_v2).post(userinfo_v2))
        .route("/oauth2/v1/userinfo", get(userinfo_v2).post(userinfo_v2))
        .route("/userinfo/v2/me", get(userinfo_v2).post(userinfo_v2))
}

async fn userinfo_v3(
    State(state): State<AppState>,
    method: http::Method,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Response {
    userinfo(&state, &method, &headers, &uri, &body, true).await
}

async fn userinfo_v2(
    State(state): State<AppState>,
    method: http::Method,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Response {
    userinfo(&state, &method, &headers, &uri, &body, false).await
}

fn unauthorized(error: Option<&str>) -> Response {
    let mut res = json_no_store(
        StatusCode::UNAUTHORIZED,
        &json!({ "error": { "errors": [{ "domain": "global", "reason": "authError", "message": "Invalid Credentials", "locationType": "header", "location": "Authorization" }], "code": 401, "message": "Invalid Credentials" } }),
    );
    let challenge = match error {
        Some(error) => format!("Bearer realm=\"userinfo\", error=\"{error}\""),
        None => "Bearer realm=\"userinfo\"".to_owned(),
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    res
}

async fn userinfo(
    state: &AppState,
    method: &http::Method,
    headers: &HeaderMap,
    uri: &http::Uri,
    body: &Bytes,
    oidc: bool,
) -> Response {
    let params = all_params(uri, headers, body).unwrap_or_default();
    let token = match access_token(state, method, uri, headers, &params).await {
        Ok(Some(token)) => token,
        Ok(None) if crate::caller::authorization(headers).is_some() => {
            return unauthorized(Some("invalid_token"));
        }
        Ok(None) => return unauthorized(None),
        Err(err) => {
            let mut res = json_no_store(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "error": "server_error" }),
            );
            res.extensions_mut().insert(Internal(err.to_string()));
            return res;
        }
    };
    let presentation = token.presentation();
    let info = match tokens::inspect_presented(&state.ctx, &token.token, false, presentation).await
    {
        Ok(Some(info)) => info,
        Ok(None) => return unauthorized(Some("invalid_token")),
        Err(err) => {
            let mut res = json_no_store(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "error": "server_error" }),
            );
            res.extensions_mut().insert(Internal(err.to_string()));
            return res;
        }
    };
    let Some(account) = info.account else { return unauthorized(Some("invalid_token")) };
    let scopes = Scopes::from_names(info.scopes.iter().map(String::as_str));
    if !["openid", "email", "profile"].iter().any(|it| scopes.contains(it)) {
        let mut res =
            json_no_store(StatusCode::FORBIDDEN, &json!({ "error": "insufficient_scope" }));
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"userinfo\", error=\"insufficient_scope\""),
        );
        return res;
    }
    let released = tessera_domain::claims::release(&account, &scopes);
    let names = if oidc { Names::OpenIdConnect } else { Names::Userinfoplus };
    let mut out = Map::new();
    released.render_into(names, &mut out);
    json_no_store(StatusCode::OK, &Value::Object(out))
}
