//! The device flow over HTTP: `/o/oauth2/device/code` (alias `/device/code`) for the device, and
//! the `/device` pages where a signed-in person enters the user code and allows or denies.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tessera_domain::interaction::{self, Decision, Step};
use tessera_domain::oauth2::device::Answered;
use tessera_domain::oauth2::{clients, device};
use tessera_domain::sessions::SignedIn;
use tessera_proto_oauth2::{OAuthError, Params, client_auth, split_scopes};

use super::{failure, form_params, json_no_store, oauth_error};
use crate::error::PageError;
use crate::forms::{self, Form};
use crate::pages::consent::{self, Post};
use crate::pages::lang::Lang;
use crate::pages::{Client, check_csrf, csrf_for_page, redirect, signed_in, with_cookies};
use crate::{AppState, render};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/o/oauth2/device/code", post(code_post))
        .route("/device/code", post(code_post))
        .route("/device", get(device_get).post(device_post))
        .route("/device/approve", post(approve_post))
}

async fn code_post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
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
    let scope = match params.require("scope") {
        Ok(scope) => split_scopes(scope),
        Err(err) => return oauth_error(&err),
    };
    let ctx = &state.ctx;
    let started = match clients::authenticate(ctx, presented.as_ref()).await {
        Ok(client) => device::start(ctx, &client, &scope).await,
        Err(err) => Err(err),
    };
    match started {
        Ok(started) => {
            let page = format!("{}/device", ctx.public_url);
            json_no_store(
                StatusCode::OK,
                &json!({
                    "device_code": started.device_code,
                    "user_code": started.user_code,
                    "verification_url": page,
                    "verification_uri": page,
                    "verification_uri_complete": format!("{page}?user_code={}", started.user_code),
                    "expires_in": started.expires_in,
                    "interval": started.interval,
                }),
            )
        }
        Err(err) => failure(err),
    }
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    brand: &'a str,
    csrf: String,
    authuser: usize,
    email: String,
    user_code: String,
    error: Option<String>,
    done: Option<&'static str>,
}

fn sign_in_first(state: &AppState, query: &str) -> Response {
    let again = format!(
        "{}/device{}{query}",
        state.ctx.public_url,
        if query.is_empty() { "" } else { "?" }
    );
    let to = format!(
        "/accounts/ServiceLogin?continue={}",
        percent_encoding::utf8_percent_encode(&again, percent_encoding::NON_ALPHANUMERIC)
    );
    redirect(&to, false)
}

async fn device_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let query = forms::query(&uri)?;
    let accounts = signed_in(&state, &headers).await?;
    let Some((authuser, signed)) = device::account(&accounts, &device::asks(query.get("authuser")))
    else {
        return Ok(sign_in_first(&state, uri.query().unwrap_or_default()));
    };
    let user_code = query.get("user_code").unwrap_or_default().chars().take(20).collect();
    Ok(device_page(&state, &headers, StatusCode::OK, authuser, signed, user_code, Ok(None)))
}

/// The `/device` page: the code form, or what became of an answer; `Err` is an error to show.
fn device_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    authuser: usize,
    signed: &SignedIn,
    user_code: String,
    done: Result<Option<&'static str>, String>,
) -> Response {
    let (csrf, set) = csrf_for_page(state, headers);
    let (done, error) = match done {
        Ok(done) => (done, None),
        Err(error) => (None, Some(error)),
    };
    let page = DevicePage {
        brand: &state.brand,
        csrf,
        authuser,
        email: signed.account.email.clone(),
        user_code,
        error,
        done,
    };
    with_cookies(render::page(status, &page), set)
}

const NOT_VALID: &str = "That code is not valid or has expired.";

/// The person typed a user code: show what the device asks for.
async fn device_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    Form(form): Form,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, form.get("csrf")).await?;
    let accounts = signed_in(&state, &headers).await?;
    let asks = device::asks(form.get("authuser"));
    let Some((authuser, signed)) = device::account(&accounts, &asks) else {
        return Ok(sign_in_first(&state, ""));
    };
    let user_code: String = form.get("user_code").unwrap_or_default().chars().take(20).collect();
    let pending = match device::lookup(&state.ctx, &signed.account.id, &user_code).await {
        Ok(Some(pending)) => pending,
        Ok(None) => {
            let error = format!("{NOT_VALID} Check it and try again.");
            let status = StatusCode::BAD_REQUEST;
            return Ok(device_page(
                &state,
                &headers,
                status,
                authuser,
                signed,
                user_code,
                Err(error),
            ));
        }
        Err(tessera_domain::Error::Invalid(error)) => {
            let status = StatusCode::BAD_REQUEST;
            return Ok(device_page(
                &state,
                &headers,
                status,
                authuser,
                signed,
                user_code,
                Err(error),
            ));
        }
        Err(err) => return Err(err.into()),
    };
    let request = pending.interaction(asks);
    let step = interaction::start(&state.ctx, &request, &accounts, &client.ip).await?;
    Ok(render_step(&state, &headers, step, authuser, &user_code))
}

/// The device flow's rendering of a step of the interaction flow.
fn render_step(
    state: &AppState,
    headers: &HeaderMap,
    step: Step,
    authuser: usize,
    user_code: &str,
) -> Response {
    match step {
        Step::Consent(view) => {
            let request = Params::from_pairs([
                ("authuser", authuser.to_string()),
                ("user_code", user_code.to_owned()),
            ]);
            let post = Post {
                action: "/device/approve",
                button: "decision",
                hidden: vec![("request", request.encode())],
                lang: Lang::default(),
            };
            consent::page(state, headers, *view, post)
        }
        // Nothing is remembered and nothing is immediate here: the flow asks for consent, or for
        // a sign-in when the account went meanwhile.
        _ => sign_in_first(state, ""),
    }
}

async fn approve_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    Form(form): Form,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, form.get("csrf")).await?;
    let request = Params::parse(form.get("request").unwrap_or_default().as_bytes())
        .map_err(|err: OAuthError| PageError::bad_request(&err.description))?;
    let decision = consent::decision(form.get("decision"))?;
    let accounts = signed_in(&state, &headers).await?;
    let asks = device::asks(request.get("authuser"));
    let Some((authuser, signed)) = device::account(&accounts, &asks) else {
        return Ok(sign_in_first(&state, ""));
    };
    let user_code = request.get("user_code").unwrap_or_default();
    let answered =
        device::decide(&state.ctx, &accounts, &asks, user_code, decision, &client.ip).await;
    let (status, done) = match answered {
        Ok(Answered::Recorded(Decision::Allow)) => {
            (StatusCode::OK, Ok(Some("Done. You may return to your device.")))
        }
        Ok(Answered::Recorded(Decision::Deny)) => {
            (StatusCode::OK, Ok(Some("Access denied. The device was told.")))
        }
        Ok(Answered::Gone) => (StatusCode::OK, Err(NOT_VALID.to_owned())),
        Ok(Answered::Step(_)) => return Ok(sign_in_first(&state, "")),
        Err(tessera_domain::Error::Invalid(error)) => (StatusCode::BAD_REQUEST, Err(error)),
        Err(err) => return Err(err.into()),
    };
    Ok(device_page(&state, &headers, status, authuser, signed, String::new(), done))
}
