//! The token endpoint, `/o/oauth2/token` (aliases `/token`, `/oauth2/v4/token`): client
//! authentication, then one grant (the OAuth 1.0 migration grant also reads the request as an
//! OAuth 1.0 signed request).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::response::Response;
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};
use tessera_domain::oauth2::tokens::Issued;
use tessera_domain::oauth2::{ErrorCode, OAuthError, dpop, exchange};
use tessera_proto_oauth2::client_auth;
use tessera_proto_oauth2::grants::migration;
use tessera_proto_oauth2::token;

use super::{failure, form_params, json_no_store, oauth_error};
use crate::AppState;
use crate::pages::Client;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/o/oauth2/token", post(token_post))
        .route("/token", post(token_post))
        .route("/oauth2/v3/token", post(token_post))
        .route("/oauth2/v4/token", post(token_post))
}

async fn token_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Client(client): Client,
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
    let request = match token::parse(&params) {
        Ok(request) => request,
        Err(err) => return oauth_error(&err),
    };
    let ctx = &state.ctx;
    let jkt = match crate::caller::dpop_proof(&headers) {
        Ok(None) => None,
        Ok(Some(proof)) => {
            let url = format!("{}{}", ctx.public_url, uri.path());
            let expected = dpop::Expected {
                method: "POST",
                url: &url,
                access_token: None,
                nonce: ctx.policy.dpop_nonce,
            };
            match dpop::check(ctx, &proof, &expected).await {
                Ok(Ok(jkt)) => Some(jkt),
                Ok(Err(dpop::Refusal::NonceRequired)) => {
                    let err = OAuthError::new(
                        ErrorCode::UseDpopNonce,
                        dpop::Refusal::NonceRequired.to_string(),
                    );
                    return with_nonce(&state, oauth_error(&err));
                }
                Ok(Err(refusal)) => {
                    let err = OAuthError::new(ErrorCode::InvalidDpopProof, refusal.to_string());
                    return with_nonce(&state, oauth_error(&err));
                }
                Err(err) => return failure(err.into()),
            }
        }
        Err(()) => {
            let err = OAuthError::new(ErrorCode::InvalidDpopProof, "Send one DPoP proof.");
            return oauth_error(&err);
        }
    };
    // The OAuth 1.0 migration grant is signed with OAuth 1.0: its pairs, URL and body go to the
    // one OAuth 1.0 verifier.
    let signed = match &request {
        token::TokenRequest::Migration(migration::Request::OAuth1) => {
            match crate::legacy::oauth1_incoming(&state, &http::Method::POST, &uri, &headers, &body)
            {
                Ok(incoming) => Some(incoming),
                Err(problem) => {
                    let err = OAuthError::invalid_request(format!(
                        "The OAuth 1.0 parameters were refused: {}.",
                        problem.word()
                    ));
                    return oauth_error(&err);
                }
            }
        }
        _ => None,
    };
    let ip = &client.ip;
    let jkt = jkt.as_deref();
    match exchange::token_signed(ctx, presented.as_ref(), &request, ip, jkt, signed.as_ref()).await
    {
        Ok(issued) => with_nonce(&state, json_no_store(StatusCode::OK, &render(&issued))),
        Err(err) => with_nonce(&state, failure(err)),
    }
}

/// The next nonce for DPoP proofs (RFC 9449 §8), when the deployment asks for them.
fn with_nonce(state: &AppState, mut res: Response) -> Response {
    if state.ctx.policy.dpop_nonce
        && let Ok(value) = http::HeaderValue::from_str(&dpop::nonce(&state.ctx))
    {
        res.headers_mut().insert("dpop-nonce", value);
    }
    res
}

fn render(issued: &Issued) -> Value {
    let mut body = Map::new();
    match &issued.access_token {
        Some(token) => {
            body.insert("access_token".into(), json!(token));
            body.insert("token_type".into(), json!(issued.token_type));
        }
        None => {
            // Token exchange: the ID token is the issued token (RFC 8693 §2.2.1).
            if let Some(id_token) = &issued.id_token {
                body.insert("access_token".into(), json!(id_token));
                body.insert(
                    "issued_token_type".into(),
                    json!(tessera_proto_oauth2::grants::token_exchange::ID_TOKEN_TYPE),
                );
                body.insert("token_type".into(), json!("N_A"));
            }
        }
    }
    body.insert("expires_in".into(), json!(issued.expires_in));
    body.insert("scope".into(), json!(issued.scope));
    if let Some(refresh) = &issued.refresh_token {
        body.insert("refresh_token".into(), json!(refresh));
    }
    if let Some(id_token) = &issued.id_token {
        body.insert("id_token".into(), json!(id_token));
    }
    Value::Object(body)
}
