//! AuthSub over HTTP: `AuthSubRequest` (sign-in through `ServiceLogin`, then the access page with
//! Allow / Deny), and the server-to-server `AuthSubSessionToken`, `AuthSubTokenInfo` and
//! `AuthSubRevokeToken`, which read the token from `Authorization: AuthSub …`.

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tessera_domain::authsub::{self, Prepared, UpgradeRefused};
use tessera_domain::caller::{self, CallerError, Presented};
use tessera_domain::interaction::{self, Decision, Step};

use super::{authorization, deprecation, request_facts, text};
use crate::error::PageError;
use crate::forms::Form;
use crate::pages::consent::{self, ConsentForm, Next};
use crate::pages::lang::Lang;
use crate::pages::{Client, MessagePage, check_csrf, redirect, signed_in};
use crate::{AppState, render};
use tessera_domain::credentials::Protocol;
use tessera_domain::legacy::{self, Verdict};

pub(super) fn router() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ["/accounts", ""] {
        router = router
            .route(&format!("{prefix}/AuthSubRequest"), get(request_get).post(request_post))
            .route(&format!("{prefix}/AuthSubSessionToken"), get(session_token))
            .route(&format!("{prefix}/AuthSubTokenInfo"), get(token_info).post(token_info))
            .route(&format!("{prefix}/AuthSubRevokeToken"), get(revoke_token).post(revoke_token));
    }
    router
}

/// The request as a page error: an unknown scope, a `next` outside the registration, and so on.
async fn prepared(state: &AppState, raw_query: &str) -> Result<Prepared, PageError> {
    let request = tessera_proto_authsub::parse_request(raw_query)
        .map_err(|err| PageError::bad_request(&err.to_string()))?;
    Ok(authsub::prepare(&state.ctx, request).await?)
}

/// The query without our own `authuser`, which the account chooser adds.
fn without_authuser(query: &str) -> String {
    query.split('&').filter(|it| !it.starts_with("authuser=")).collect::<Vec<_>>().join("&")
}

async fn request_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Client(client): Client,
) -> Result<Response, PageError> {
    let raw = uri.query().unwrap_or_default();
    let query = without_authuser(raw);
    let prepared = prepared(&state, &query).await?;
    // The deprecation switch for this application (its registered domain, or `next`'s host).
    let verdict =
        legacy::gate(&state.ctx, Protocol::AuthSub, Some(prepared.client_id.as_str())).await?;
    if let Verdict::Refused(notice) = &verdict {
        let title = format!(
            "AuthSub is no longer available for this application - see {}",
            notice.link.replace('&', "&amp;")
        );
        return Ok(deprecation::answer(&verdict, forbidden(&title)));
    }
    let accounts = signed_in(&state, &headers).await?;
    let authuser = tessera_proto_authsub::query_pairs(raw)
        .into_iter()
        .find(|(k, _)| k == "authuser")
        .map(|(_, v)| v);
    let request = authsub::interaction(&prepared, authuser);
    let step = interaction::start(&state.ctx, &request, &accounts, &client.ip).await?;
    let res = render(&state, &headers, &prepared, &query, step, false, Lang::of(&request.asks));
    Ok(deprecation::answer(&verdict, res.await?))
}

async fn request_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    Form(fields): Form,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, fields.get("csrf")).await?;
    let query = fields.get("query").unwrap_or_default();
    let prepared = prepared(&state, query).await?;
    let accounts = signed_in(&state, &headers).await?;
    let decision = match fields.get("action") {
        Some("allow") => Decision::Allow,
        _ => Decision::Deny,
    };
    let request = authsub::interaction(&prepared, fields.get("authuser").map(str::to_owned));
    let step = interaction::decide(&state.ctx, &request, &accounts, decision, &client.ip).await?;
    render(&state, &headers, &prepared, query, step, true, Lang::of(&request.asks)).await
}

/// AuthSub's rendering of a step of the interaction flow.
async fn render(
    state: &AppState,
    headers: &HeaderMap,
    prepared: &Prepared,
    query: &str,
    step: Step,
    after_post: bool,
    lang: Lang,
) -> Result<Response, PageError> {
    let here = format!("{}/accounts/AuthSubRequest?{query}", state.ctx.public_url);
    let form = ConsentForm {
        action: "/accounts/AuthSubRequest",
        hidden: vec![("query", query.to_owned())],
        compact: false,
        lang,
    };
    match consent::person_step(state, headers, step, &here, after_post, form)? {
        Next::Shown(response) => Ok(response),
        Next::Approved(approved) => {
            let location = authsub::approve(&state.ctx, &approved, prepared).await?;
            Ok(redirect(&location, after_post))
        }
        // Deny shows our page and never goes to `next` (docs/legacy.md).
        Next::Refused => {
            let page = MessagePage {
                brand: &state.brand,
                heading: "Access denied",
                message: format!("{} was not given access to your account.", prepared.name),
                link: "/account".to_owned(),
                link_text: "Go to your account",
            };
            Ok(render::page(StatusCode::OK, &page))
        }
    }
}

/// The 401 every gdata client understands: `WWW-Authenticate` present, Google's HTML body.
fn unauthorized(state: &AppState) -> Response {
    let title = "Token invalid - Invalid AuthSub token.";
    let mut res = (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=UTF-8"))],
        tessera_proto_authsub::error_page(title, 401),
    )
        .into_response();
    let challenge = format!("AuthSub realm=\"{}/accounts/AuthSubRequest\"", state.ctx.public_url);
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    res
}

fn forbidden(title: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=UTF-8"))],
        tessera_proto_authsub::error_page(title, 403),
    )
        .into_response()
}

const BAD_SIGNATURE: &str = "Token invalid - Invalid AuthSub signature.";

fn refused(state: &AppState, err: &CallerError) -> Response {
    match err {
        CallerError::BadSignature => forbidden(BAD_SIGNATURE),
        _ => unauthorized(state),
    }
}

/// The AuthSub fields of the `Authorization` header, as `caller::parse_authorization` reads them.
struct Fields {
    token: String,
    sigalg: Option<String>,
    data: Option<String>,
    sig: Option<String>,
}

impl Fields {
    fn read(headers: &HeaderMap) -> Option<Fields> {
        match caller::parse_authorization(authorization(headers)) {
            Ok(Presented::AuthSub { token, sigalg, data, sig }) => {
                Some(Fields { token, sigalg, data, sig })
            }
            _ => None,
        }
    }

    fn presented(&self) -> authsub::Presented<'_> {
        authsub::Presented {
            token: &self.token,
            sigalg: self.sigalg.as_deref(),
            data: self.data.as_deref(),
            sig: self.sig.as_deref(),
        }
    }
}

async fn session_token(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let Some(fields) = Fields::read(&headers) else { return Ok(unauthorized(&state)) };
    let presented = fields.presented();
    let facts = request_facts(&state, &method, &uri, &headers);
    Ok(match authsub::upgrade(&state.ctx, presented, &facts).await? {
        Ok(token) => text(StatusCode::OK, None, tessera_proto_authsub::session_token_body(&token)),
        Err(UpgradeRefused::Caller(err)) => refused(&state, &err),
        Err(UpgradeRefused::NotUpgradeable) => {
            forbidden("Invalid AuthSub token - this token cannot be exchanged for a session token.")
        }
    })
}

/// Whether the `Authorization` header says `OAuth` with parameters: the OAuth 1.0a variants of
/// `AuthSubTokenInfo` and `AuthSubRevokeToken` answer it.
fn oauth_signed(headers: &HeaderMap) -> bool {
    matches!(caller::parse_authorization(authorization(headers)), Ok(Presented::OAuth1(_)))
}

async fn token_info(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    if oauth_signed(&headers) {
        let incoming = match super::oauth1::incoming(&state, &method, &uri, &headers, &body) {
            Ok(incoming) => incoming,
            Err(err) => return Ok(super::oauth1::problem(&state, &err)),
        };
        return Ok(match tessera_domain::oauth1::token_info(&state.ctx, &incoming).await? {
            Ok((target, scopes, secure)) => text(
                StatusCode::OK,
                None,
                tessera_proto_authsub::token_info_body(&target, &scopes, secure),
            ),
            Err(err) => super::oauth1::problem(&state, &err),
        });
    }
    let Some(fields) = Fields::read(&headers) else { return Ok(unauthorized(&state)) };
    let presented = fields.presented();
    let facts = request_facts(&state, &method, &uri, &headers);
    Ok(match authsub::check(&state.ctx, presented, &facts).await? {
        Ok(checked) => text(
            StatusCode::OK,
            None,
            tessera_proto_authsub::token_info_body(
                &checked.target,
                &checked.scopes(),
                checked.secure,
            ),
        ),
        Err(err) => refused(&state, &err),
    })
}

async fn revoke_token(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Client(client): Client,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    if oauth_signed(&headers) {
        let incoming = match super::oauth1::incoming(&state, &method, &uri, &headers, &body) {
            Ok(incoming) => incoming,
            Err(err) => return Ok(super::oauth1::problem(&state, &err)),
        };
        return Ok(
            match tessera_domain::oauth1::revoke(&state.ctx, &incoming, &client.ip).await? {
                Ok(()) => text(StatusCode::OK, None, String::new()),
                Err(err) => super::oauth1::problem(&state, &err),
            },
        );
    }
    let Some(fields) = Fields::read(&headers) else { return Ok(unauthorized(&state)) };
    let presented = fields.presented();
    let facts = request_facts(&state, &method, &uri, &headers);
    Ok(match authsub::revoke(&state.ctx, presented, &facts, &client.ip).await? {
        Ok(()) => text(StatusCode::OK, None, String::new()),
        Err(err) => refused(&state, &err),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_only_our_authuser() {
        assert_eq!(without_authuser("next=a&authuser=1&scope=b"), "next=a&scope=b");
        assert_eq!(without_authuser("next=a&xauthuser=1"), "next=a&xauthuser=1");
    }
}
