//! ClientLogin over HTTP: `POST` (urlencoded or multipart) or `GET` with a query, answered with
//! LF-terminated `text/plain` and never a redirect; the help page its `Url=` lines point to; and
//! `DisplayUnlockCaptcha`, where a signed-in person solves a CAPTCHA for their next app sign-in.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::response::Response;
use axum::routing::get;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tessera_domain::clientlogin::{self, AccountKind, Login, Refusal};
use tessera_proto_clientlogin::{
    self as wire, AccountType, ErrorCode, ErrorExtras, ParseError, error_body, success_body,
};

use super::{deprecation, text};
use crate::error::PageError;
use crate::forms::{self, Form};
use crate::pages::{Client, check_csrf, csrf_for_page, pick, redirect, signed_in, with_cookies};
use crate::{AppState, render};
use tessera_domain::credentials::Protocol;
use tessera_domain::legacy::{self, Verdict};

pub(super) fn router() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ["/accounts", ""] {
        router = router
            .route(&format!("{prefix}/ClientLogin"), get(client_login).post(client_login))
            .route(&format!("{prefix}/ClientLoginHelp"), get(help_get))
            .route(&format!("{prefix}/DisplayUnlockCaptcha"), get(unlock_get).post(unlock_post));
    }
    router
}

const REASON: &str = "Access Forbidden";

fn help_url(state: &AppState, code: ErrorCode) -> String {
    match code {
        ErrorCode::CaptchaRequired => {
            format!("{}/accounts/DisplayUnlockCaptcha", state.ctx.public_url)
        }
        _ => format!("{}/accounts/ClientLoginHelp?Error={}", state.ctx.public_url, code.as_str()),
    }
}

fn failure(state: &AppState, code: ErrorCode, extras: ErrorExtras) -> Response {
    let url = match code {
        ErrorCode::BadAuthentication => None,
        _ => Some(help_url(state, code)),
    };
    text(StatusCode::FORBIDDEN, Some(REASON), error_body(code, &ErrorExtras { url, ..extras }))
}

/// The request's parameters: the query for GET; the body (urlencoded or multipart) for POST,
/// followed by any query parameters (the body wins when both name one).
fn parameters(
    method: &Method,
    headers: &HeaderMap,
    uri: &http::Uri,
    body: &[u8],
) -> Result<Vec<(String, String)>, ParseError> {
    let query = wire::urlencoded_pairs(uri.query().unwrap_or_default().as_bytes());
    if method == Method::GET {
        return Ok(query);
    }
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|it| it.to_str().ok()).unwrap_or_default();
    let mut pairs = match wire::multipart_boundary(content_type) {
        Some(boundary) => wire::multipart_pairs(body, &boundary)?,
        None => wire::urlencoded_pairs(body),
    };
    pairs.extend(query);
    Ok(pairs)
}

async fn client_login(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Client(client): Client,
    body: Bytes,
) -> Result<Response, PageError> {
    let request =
        match parameters(&method, &headers, &uri, &body).and_then(|it| wire::parse_request(&it)) {
            Ok(request) => request,
            Err(_) => return Ok(failure(&state, ErrorCode::Unknown, ErrorExtras::default())),
        };
    // The deprecation switch, before any password work: a refused application learns where to go.
    let source = request.source.as_deref().unwrap_or(clientlogin::ANONYMOUS_SOURCE);
    let verdict = match legacy::gate(&state.ctx, Protocol::ClientLogin, Some(source)).await {
        Ok(verdict) => verdict,
        Err(err) => {
            let mut res = failure(&state, ErrorCode::ServiceUnavailable, ErrorExtras::default());
            res.extensions_mut().insert(crate::error::Internal(format!("clientlogin: {err:?}")));
            return Ok(res);
        }
    };
    if let Verdict::Refused(notice) = &verdict {
        let extras = ErrorExtras { url: Some(notice.link.clone()), ..ErrorExtras::default() };
        let body = error_body(ErrorCode::ServiceDisabled, &extras);
        return Ok(deprecation::answer(&verdict, text(StatusCode::FORBIDDEN, Some(REASON), body)));
    }
    let login = Login {
        account_kind: match request.account_type {
            AccountType::HostedOrGoogle => AccountKind::HostedOrGoogle,
            AccountType::Google => AccountKind::Google,
            AccountType::Hosted => AccountKind::Hosted,
        },
        email: request.email,
        password: request.passwd,
        service: request.service,
        source: request.source,
        captcha: request.captcha,
        ip: client.ip,
    };
    let outcome = match clientlogin::login(&state.ctx, login).await {
        Ok(outcome) => outcome,
        Err(err) => {
            // Clients expect text, never an HTML 500: tell them to try again later.
            let mut res = failure(&state, ErrorCode::ServiceUnavailable, ErrorExtras::default());
            res.extensions_mut().insert(crate::error::Internal(format!("clientlogin: {err:?}")));
            return Ok(res);
        }
    };
    let res = match outcome {
        Ok(issued) => {
            text(StatusCode::OK, None, success_body(&issued.sid, &issued.lsid, &issued.auth))
        }
        Err(refusal) => {
            let (code, extras) = match refusal {
                Refusal::BadAuthentication { second_factor } => (
                    ErrorCode::BadAuthentication,
                    ErrorExtras {
                        info: second_factor.then(|| "InvalidSecondFactor".to_owned()),
                        ..Default::default()
                    },
                ),
                Refusal::CaptchaRequired { token } => (
                    ErrorCode::CaptchaRequired,
                    ErrorExtras {
                        captcha: Some((token.clone(), format!("Captcha?ctoken={token}"))),
                        ..Default::default()
                    },
                ),
                Refusal::NotVerified => (ErrorCode::NotVerified, ErrorExtras::default()),
                Refusal::TermsNotAgreed => (ErrorCode::TermsNotAgreed, ErrorExtras::default()),
                Refusal::Unknown => (ErrorCode::Unknown, ErrorExtras::default()),
                Refusal::AccountDeleted => (ErrorCode::AccountDeleted, ErrorExtras::default()),
                Refusal::AccountDisabled => (ErrorCode::AccountDisabled, ErrorExtras::default()),
                Refusal::ServiceDisabled => (ErrorCode::ServiceDisabled, ErrorExtras::default()),
            };
            failure(&state, code, extras)
        }
    };
    Ok(deprecation::answer(&verdict, res))
}

#[derive(Template)]
#[template(path = "clientlogin_help.html")]
struct HelpPage<'a> {
    brand: &'a str,
    code: String,
    explanation: &'static str,
}

fn explain(code: Option<ErrorCode>) -> &'static str {
    match code {
        Some(ErrorCode::BadAuthentication) => {
            "The email address or password was not recognised. Accounts with 2-step verification must use an app password."
        }
        Some(ErrorCode::NotVerified) => {
            "The account's email address has not been verified. Sign in on the web to verify it."
        }
        Some(ErrorCode::TermsNotAgreed) => {
            "The account has not accepted the terms of service. Sign in on the web to accept them."
        }
        Some(ErrorCode::CaptchaRequired) => {
            "Too many failed attempts: solve the CAPTCHA on the unlock page, then sign in from the app again."
        }
        Some(ErrorCode::Unknown) => {
            "The request was incomplete or malformed, or named a service this server does not know."
        }
        Some(ErrorCode::AccountDeleted) => "The account has been deleted.",
        Some(ErrorCode::AccountDisabled) => "The account has been disabled.",
        Some(ErrorCode::ServiceDisabled) => {
            "This service does not accept ClientLogin sign-ins here."
        }
        Some(ErrorCode::ServiceUnavailable) => "The service is unavailable. Try again later.",
        None => "An app's sign-in was refused.",
    }
}

async fn help_get(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let query = forms::query(&uri)?;
    let code = query.get("Error").and_then(ErrorCode::parse);
    let page = HelpPage {
        brand: &state.brand,
        code: code.map(|it| it.as_str().to_owned()).unwrap_or_default(),
        explanation: explain(code),
    };
    Ok(render::page(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "unlock_captcha.html")]
struct UnlockPage<'a> {
    brand: &'a str,
    csrf: String,
    email: String,
    authuser: usize,
    captcha_token: String,
    error: Option<&'static str>,
    done: bool,
}

async fn unlock_page(
    state: &AppState,
    headers: &HeaderMap,
    email: String,
    authuser: usize,
    error: Option<&'static str>,
    done: bool,
) -> Result<Response, PageError> {
    let (csrf, set_cookie) = csrf_for_page(state, headers);
    let captcha_token = match done {
        true => String::new(),
        false => tessera_domain::captcha::issue(&state.ctx).await?.token,
    };
    let page =
        UnlockPage { brand: &state.brand, csrf, email, authuser, captcha_token, error, done };
    let mut res = render::page(StatusCode::OK, &page);
    if !done {
        res.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(crate::pages::signin::CAPTCHA_PAGE_CSP),
        );
    }
    Ok(with_cookies(res, set_cookie))
}

fn sign_in_first(state: &AppState, uri: &http::Uri) -> Response {
    let here = super::public_here(state, uri);
    redirect(&format!("/accounts/ServiceLogin?continue={}", crate::pages::encode(&here)), false)
}

async fn unlock_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let query = forms::query(&uri)?;
    let accounts = signed_in(&state, &headers).await?;
    let Some((index, who)) = pick(&accounts, query.get("authuser")) else {
        return Ok(sign_in_first(&state, &uri));
    };
    unlock_page(&state, &headers, who.account.email, index, None, false).await
}

async fn unlock_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Client(client): Client,
    Form(fields): Form,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, fields.get("csrf")).await?;
    let accounts = signed_in(&state, &headers).await?;
    let Some((index, who)) = pick(&accounts, fields.get("authuser")) else {
        return Ok(sign_in_first(&state, &uri));
    };
    let solved = tessera_domain::captcha::check(
        &state.ctx,
        fields.get("logintoken").unwrap_or_default(),
        fields.get("logincaptcha").unwrap_or_default(),
    )
    .await?;
    if !solved {
        return unlock_page(
            &state,
            &headers,
            who.account.email,
            index,
            Some("Those were not the characters in the picture and the recording. Try this one."),
            false,
        )
        .await;
    }
    clientlogin::unlock(&state.ctx, &who.account.id, &client.ip).await?;
    unlock_page(&state, &headers, who.account.email, index, None, true).await
}
