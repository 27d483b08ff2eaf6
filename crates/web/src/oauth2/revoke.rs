//! Revocation: `/o/oauth2/revoke` and `/revoke`. RFC 7009 (POST form, client authentication) and
//! Google's form (GET or POST with `token=`, no client authentication) both work; revoking an
//! access or refresh token revokes its grant.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::response::Response;
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tessera_domain::oauth2::revoke::{self, Revoked};
use tessera_domain::oauth2::{Failure, clients};
use tessera_proto_oauth2::{client_auth, revocation};

use super::{all_params, failure, json_no_store, oauth_error};
use crate::AppState;
use crate::pages::Client;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/o/oauth2/revoke", get(revoke_any).post(revoke_any))
        .route("/revoke", get(revoke_any).post(revoke_any))
}

async fn revoke_any(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Client(peer): Client,
    body: Bytes,
) -> Response {
    let params = match all_params(&uri, &headers, &body) {
        Ok(params) => params,
        Err(err) => return oauth_error(&err),
    };
    let request = match revocation::parse(&params) {
        Ok(request) => request,
        Err(err) => return oauth_error(&err),
    };
    let basic = match crate::caller::client_basic(&headers) {
        Ok(basic) => basic,
        Err(err) => return oauth_error(&err),
    };
    let presented = match client_auth::extract(basic, &params) {
        Ok(presented) => presented,
        Err(err) => return oauth_error(&err),
    };
    let client = match &presented {
        Some(presented) => match clients::authenticate(&state.ctx, Some(presented)).await {
            Ok(client) => Some(client),
            Err(err) => return failure(err),
        },
        None => None,
    };
    match revoke::token(&state.ctx, &request.token, client.as_ref(), &peer.ip).await {
        Ok(Revoked::Done) => json_no_store(StatusCode::OK, &json!({})),
        // RFC 7009 §2.2: an authenticated client hears 200 for tokens that are already invalid.
        Ok(Revoked::Unknown) if client.is_some() => json_no_store(StatusCode::OK, &json!({})),
        Ok(Revoked::Unknown) => json_no_store(
            StatusCode::BAD_REQUEST,
            &json!({ "error": "invalid_token", "error_description": "Token expired or revoked" }),
        ),
        Ok(Revoked::NotYours) => json_no_store(
            StatusCode::BAD_REQUEST,
            &json!({ "error": "invalid_request", "error_description": "The token was issued to another client." }),
        ),
        Err(err) => failure(Failure::Domain(err)),
    }
}
