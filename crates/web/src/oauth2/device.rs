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
use tessera_domain::oauth2::{clients, device};
use tessera_proto_oauth2::{OAuthError, Params, client_auth, split_scopes};

use super::{authorization, failure, form_params, json_no_store, oauth_error};
use crate::error::PageError;
use crate::forms::{self, Form};
use crate::pages::{Client, check_csrf, csrf_for_page, pick, redirect, signed_in, with_cookies};
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
    let presented = match client_auth::extract(authorization(&headers), &params) {
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
    let Some((authuser, signed)) = pick(&accounts, query.get("authuser")) else {
        return Ok(sign_in_first(&state, uri.query().unwrap_or_default()));
    };
    let (csrf, set) = csrf_for_page(&state, &headers);
    let page = DevicePage {
        brand: &state.brand,
        csrf,
        authuser,
        email: signed.account.email,
        user_code: query.get("user_code").unwrap_or_default().chars().take(20).collect(),
        error: None,
        done: None,
    };
    Ok(with_cookies(render::page(StatusCode::OK, &page), set))
}

/// The person typed a user code: show what the device asks for.
async fn device_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, form.get("csrf")).await?;
    let accounts = signed_in(&state, &headers).await?;
    let Some((authuser, signed)) = pick(&accounts, form.get("authuser")) else {
        return Ok(sign_in_first(&state, ""));
    };
    let user_code: String = form.get("user_code").unwrap_or_default().chars().take(20).collect();
    let (csrf, set) = csrf_for_page(&state, &headers);
    let found = device::lookup(&state.ctx, &signed.account.id, &user_code).await;
    let pending = match found {
        Ok(Some(pending)) => pending,
        Ok(None) | Err(tessera_domain::Error::Invalid(_)) => {
            let error = match found {
                Err(err) => err.to_string(),
                _ => "That code is not valid or has expired. Check it and try again.".to_owned(),
            };
            let page = DevicePage {
                brand: &state.brand,
                csrf,
                authuser,
                email: signed.account.email,
                user_code,
                error: Some(error),
                done: None,
            };
            return Ok(with_cookies(render::page(StatusCode::BAD_REQUEST, &page), set));
        }
        Err(err) => return Err(err.into()),
    };
    let request =
        Params::from_pairs([("authuser", authuser.to_string()), ("user_code", user_code)]);
    let branding =
        super::authorize::Branding::load(&state, &pending.project.id, &pending.client.record.name)
            .await?;
    let page = super::authorize::ConsentPage {
        brand: &state.brand,
        action: "/device/approve",
        app: branding.app,
        project: pending.project.name.clone(),
        verified: pending.project.verified,
        homepage: branding.homepage,
        support: branding.support,
        logo: branding.logo,
        email: signed.account.email.clone(),
        scopes: pending.scopes.into_iter().map(|it| it.description).collect(),
        csrf,
        request: request.encode(),
    };
    Ok(with_cookies(super::authorize::consent_response(&page), set))
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
    let allow = match form.get("decision") {
        Some("allow") => true,
        Some("deny") => false,
        _ => return Err(PageError::bad_request("Choose Allow or Deny.")),
    };
    let accounts = signed_in(&state, &headers).await?;
    let Some((authuser, signed)) = pick(&accounts, request.get("authuser")) else {
        return Ok(sign_in_first(&state, ""));
    };
    let user_code = request.get("user_code").unwrap_or_default();
    let recorded = device::decide(&state.ctx, &signed, user_code, allow, &client.ip).await?;
    let (csrf, set) = csrf_for_page(&state, &headers);
    let page = DevicePage {
        brand: &state.brand,
        csrf,
        authuser,
        email: signed.account.email,
        user_code: String::new(),
        error: (!recorded).then(|| "That code is not valid or has expired.".to_owned()),
        done: recorded.then_some(if allow {
            "Done. You may return to your device."
        } else {
            "Access denied. The device was told."
        }),
    };
    Ok(with_cookies(render::page(StatusCode::OK, &page), set))
}
