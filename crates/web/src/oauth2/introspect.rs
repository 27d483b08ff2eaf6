//! Introspection (RFC 7662) at `/oauth2/introspect`, for authenticated clients. A client sees the
//! tokens of its own project only; anything else is `{"active": false}`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};
use tessera_domain::oauth2::{Failure, clients, tokens};
use tessera_domain::store::CredentialKind;
use tessera_proto_oauth2::{client_auth, introspection};

use super::{failure, form_params, json_no_store, oauth_error};
use crate::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/oauth2/introspect", post(introspect_post))
}

async fn introspect_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
    let request = match introspection::parse(&params) {
        Ok(request) => request,
        Err(err) => return oauth_error(&err),
    };
    let ctx = &state.ctx;
    let client = match clients::authenticate(ctx, presented.as_ref()).await {
        Ok(client) if !client.is_public() => client,
        Ok(_) => {
            return oauth_error(&tessera_domain::oauth2::OAuthError::invalid_client(
                "Introspection needs client authentication.",
            ));
        }
        Err(err) => return failure(err),
    };
    let info = match tokens::introspect(ctx, &client, &request.token).await {
        Ok(info) => info,
        Err(err) => return failure(Failure::Domain(err)),
    };
    let Some(info) = info else {
        return json_no_store(StatusCode::OK, &json!({ "active": false }));
    };
    let mut out = Map::new();
    out.insert("active".into(), json!(true));
    out.insert("scope".into(), json!(info.scopes.join(" ")));
    out.insert("client_id".into(), json!(info.client_id));
    out.insert("aud".into(), json!(info.client_id));
    out.insert("iss".into(), json!(&*ctx.public_url));
    out.insert("iat".into(), json!(info.issued_at));
    let kind = match (info.kind, &info.jkt) {
        (CredentialKind::RefreshToken, _) => "refresh_token",
        (_, Some(_)) => "DPoP",
        (_, None) => "Bearer",
    };
    out.insert("token_type".into(), json!(kind));
    if let Some(jkt) = &info.jkt {
        out.insert("cnf".into(), json!({ "jkt": jkt }));
    }
    if let Some(exp) = info.expires_at {
        out.insert("exp".into(), json!(exp));
    }
    if let Some(account) = &info.account {
        out.insert("sub".into(), json!(tessera_domain::accounts::subject(&account.id)));
        out.insert("username".into(), json!(account.email));
    }
    json_no_store(StatusCode::OK, &Value::Object(out))
}
