//! Google's tokeninfo (`/oauth2/v1/tokeninfo`, `/oauth2/v3/tokeninfo`, `/tokeninfo`): describes an
//! access token or an ID token, given by query, by form, or as a Bearer header on an empty POST.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::response::Response;
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};
use tessera_domain::credentials::Scopes;
use tessera_domain::oauth2::{jwt, tokens};

use super::{AccessToken, access_token, all_params, json_no_store};
use crate::AppState;
use crate::error::Internal;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth2/v1/tokeninfo", get(tokeninfo).post(tokeninfo))
        .route("/oauth2/v2/tokeninfo", get(tokeninfo).post(tokeninfo))
        .route("/oauth2/v3/tokeninfo", get(tokeninfo).post(tokeninfo))
        .route("/tokeninfo", get(tokeninfo).post(tokeninfo))
}

fn invalid() -> Response {
    json_no_store(
        StatusCode::BAD_REQUEST,
        &json!({ "error": "invalid_token", "error_description": "Invalid Value" }),
    )
}

async fn tokeninfo(
    State(state): State<AppState>,
    method: http::Method,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Response {
    let Ok(params) = all_params(&uri, &headers, &body) else {
        return json_no_store(
            StatusCode::BAD_REQUEST,
            &json!({ "error": "invalid_request", "error_description": "Malformed parameters" }),
        );
    };
    let presented = match params.get("id_token") {
        Some(_) if crate::caller::authorization(&headers).is_some() => return invalid(),
        Some(_) => None,
        None => match access_token(&state, &method, &uri, &headers, &params).await {
            Ok(Some(token)) => Some(token),
            Ok(None) => return invalid(),
            Err(err) => {
                let mut res = json_no_store(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({ "error": "server_error" }),
                );
                res.extensions_mut().insert(Internal(err.to_string()));
                return res;
            }
        },
    };
    let outcome = match (params.get("id_token"), presented) {
        (Some(id_token), None) if !params.contains("access_token") => {
            id_token_info(&state, id_token).await
        }
        (None, Some(token)) => access_token_info(&state, &token).await,
        _ => return invalid(),
    };
    match outcome {
        Ok(Some(body)) => json_no_store(StatusCode::OK, &body),
        Ok(None) => invalid(),
        Err(err) => {
            let mut res = json_no_store(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "error": "server_error" }),
            );
            res.extensions_mut().insert(Internal(err.to_string()));
            res
        }
    }
}

async fn access_token_info(
    state: &AppState,
    token: &AccessToken,
) -> tessera_domain::Result<Option<Value>> {
    let ctx = &state.ctx;
    let presentation = token.presentation();
    let Some(info) = tokens::inspect_presented(ctx, &token.token, false, presentation).await?
    else {
        return Ok(None);
    };
    let now = ctx.now();
    let mut body = Map::new();
    // v1 names and v3 names side by side: old and new client libraries read different ones.
    body.insert("issued_to".into(), json!(info.client_id));
    body.insert("audience".into(), json!(info.client_id));
    body.insert("azp".into(), json!(info.client_id));
    body.insert("aud".into(), json!(info.client_id));
    body.insert("scope".into(), json!(info.scopes.join(" ")));
    if let Some(expires_at) = info.expires_at {
        body.insert("exp".into(), json!(expires_at));
        body.insert("expires_in".into(), json!(info.expires_in(now).unwrap_or(0)));
    }
    body.insert("access_type".into(), json!(if info.offline { "offline" } else { "online" }));
    if let Some(jkt) = &info.jkt {
        body.insert("token_type".into(), json!("DPoP"));
        body.insert("cnf".into(), json!({ "jkt": jkt }));
    }
    if let Some(account) = &info.account {
        let scopes = Scopes::from_names(info.scopes.iter().map(String::as_str));
        let released = tessera_domain::claims::release(account, &scopes);
        released.render_into(tessera_domain::claims::Names::TokenInfo, &mut body);
    }
    Ok(Some(Value::Object(body)))
}

async fn id_token_info(state: &AppState, token: &str) -> tessera_domain::Result<Option<Value>> {
    let Ok((header, claims)) = jwt::verify(&state.ctx, token).await? else { return Ok(None) };
    // Only ID tokens here: a JWT access token is described through `access_token=`.
    if header.get("typ").and_then(Value::as_str) == Some("at+jwt") {
        return Ok(None);
    }
    let mut body = claims.as_object().cloned().unwrap_or_default();
    for name in ["alg", "kid", "typ"] {
        if let Some(value) = header.get(name) {
            body.insert(name.into(), value.clone());
        }
    }
    // Google's v1 names for the same facts.
    if let Some(aud) = claims.get("aud") {
        body.insert("audience".into(), aud.clone());
    }
    if let Some(azp) = claims.get("azp") {
        body.insert("issued_to".into(), azp.clone());
    }
    if let Some(sub) = claims.get("sub") {
        body.insert("user_id".into(), sub.clone());
    }
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
        body.insert("expires_in".into(), json!((exp - state.ctx.now()).max(0)));
    }
    Ok(Some(Value::Object(body)))
}
