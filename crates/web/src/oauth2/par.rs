//! The pushed authorization request endpoint, `POST /oauth2/par` (RFC 9126): the client
//! authenticates as at the token endpoint and gets a `request_uri` for the authorization endpoint.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tessera_domain::oauth2::{clients, par};
use tessera_proto_oauth2::client_auth;

use super::{failure, form_params, json_no_store, oauth_error};
use crate::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/oauth2/par", post(par_post))
}

async fn par_post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let params = match form_params(&headers, &body) {
        Ok(params) => params,
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
    let ctx = &state.ctx;
    let pushed = match clients::authenticate(ctx, presented.as_ref()).await {
        Ok(client) => par::push(ctx, &client, &params).await,
        Err(err) => Err(err),
    };
    match pushed {
        Ok(pushed) => json_no_store(
            StatusCode::CREATED,
            &json!({ "request_uri": pushed.request_uri, "expires_in": pushed.expires_in }),
        ),
        Err(err) => failure(err),
    }
}
