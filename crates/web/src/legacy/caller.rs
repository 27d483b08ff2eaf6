//! `POST /accounts/caller`: the one caller check for resource servers in other languages (the Rust
//! tower layer in `tessera-client` calls it too). The body names the `Authorization` header value
//! the resource server received and the request's method and full URL (which secure AuthSub tokens
//! sign); the answer is who is calling, through which client, with which scopes or service.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::StatusCode;
use serde_json::json;
use tessera_domain::caller::{self, CallerError, RequestFacts};

use crate::AppState;
use crate::error::PageError;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/accounts/caller", post(caller_post))
}

#[derive(serde::Deserialize)]
struct Question {
    #[serde(default)]
    authorization: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    url: String,
    /// The `DPoP` proof the resource request carried, for `DPoP` access tokens.
    #[serde(default)]
    dpop: Option<String>,
    /// The request's body when it is `application/x-www-form-urlencoded` (OAuth 1.0a signs its
    /// pairs, and may carry its parameters there instead of the header).
    #[serde(default)]
    form: String,
}

fn refusal(err: &CallerError) -> Response {
    if let CallerError::OAuth1Problem(problem) = err {
        // OAuth 1.0's own refusal: 401, the problem word in the body and the challenge.
        let body = json!({
            "error": "invalid_token",
            "error_description": err.to_string(),
            "oauth_problem": problem,
        });
        let mut res = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        if let Ok(value) =
            http::HeaderValue::from_str(&format!("OAuth realm=\"\", oauth_problem=\"{problem}\""))
        {
            res.headers_mut().insert(http::header::WWW_AUTHENTICATE, value);
        }
        return res;
    }
    let (status, code) = match err {
        CallerError::BadSignature => (StatusCode::FORBIDDEN, "bad_signature"),
        CallerError::Unsupported => (StatusCode::BAD_REQUEST, "unsupported_scheme"),
        CallerError::Missing => (StatusCode::UNAUTHORIZED, "missing_credentials"),
        CallerError::Malformed | CallerError::Invalid | CallerError::OAuth1Problem(_) => {
            (StatusCode::UNAUTHORIZED, "invalid_token")
        }
    };
    (status, axum::Json(json!({ "error": code, "error_description": err.to_string() })))
        .into_response()
}

async fn caller_post(State(state): State<AppState>, body: Bytes) -> Result<Response, PageError> {
    let Ok(question) = serde_json::from_slice::<Question>(&body) else {
        return Ok((
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "invalid_request", "error_description": "expected {\"authorization\", \"method\", \"url\"}" })),
        )
            .into_response());
    };
    let Ok(form) = tessera_proto_oauth1::parse_form(&question.form) else {
        return Ok(refusal(&CallerError::Malformed));
    };
    let facts = RequestFacts {
        method: question.method.to_ascii_uppercase(),
        url: question.url,
        dpop_proof: question.dpop,
        form,
    };
    let presented = match caller::parse_authorization(&question.authorization) {
        Ok(presented) => presented,
        Err(CallerError::Missing) if question.authorization.trim().is_empty() => {
            match caller::oauth1_without_header(&facts) {
                Some(presented) => presented,
                None => return Ok(refusal(&CallerError::Missing)),
            }
        }
        Err(err) => return Ok(refusal(&err)),
    };
    match caller::resolve(&state.ctx, &presented, &facts).await? {
        Ok(found) => Ok(axum::Json(json!({
            "protocol": found.protocol.as_str(),
            "account_id": found.account_id,
            "sub": found.account_id.as_deref().map(tessera_domain::accounts::subject),
            "client_id": found.client_id,
            "grant_id": found.grant_id,
            "scopes": found.scopes,
            "service": found.service,
            // None for a two-legged OAuth 1.0 call, which presents no credential.
            "kind": found.kind.map(|it| it.as_str()),
            "expires_at": found.expires_at,
        }))
        .into_response()),
        Err(err) => Ok(refusal(&err)),
    }
}
