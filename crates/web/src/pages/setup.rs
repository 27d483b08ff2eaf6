//! First-run setup: the one-time link printed at start creates the first administrator.

use askama::Template;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::response::Response;
use axum::routing::get;
use http::{HeaderMap, StatusCode};

use super::{Client, check_csrf, csrf_for_page, redirect, with_cookies};
use crate::error::PageError;
use crate::forms::{self, Form};
use crate::{AppState, render};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/setup", get(setup_get).post(setup_post))
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage<'a> {
    brand: &'a str,
    csrf: String,
    token: String,
    name: String,
    email: String,
    error: Option<String>,
}

fn setup_page(
    state: &AppState,
    headers: &HeaderMap,
    token: String,
    name: String,
    email: String,
    error: Option<String>,
) -> Response {
    let (csrf, set_cookie) = csrf_for_page(state, headers);
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = SetupPage { brand: &state.brand, csrf, token, name, email, error };
    with_cookies(render::page(status, &page), set_cookie)
}

async fn setup_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let query = forms::query(&uri)?;
    let token = query.text("token");
    if !tessera_domain::setup::token_is_live(&state.ctx, &token).await? {
        return Err(PageError::forbidden(
            "This setup link has expired or was already used. Restart the server to get a new one.",
        ));
    }
    Ok(setup_page(&state, &headers, token, String::new(), String::new(), None))
}

async fn setup_post(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, fields.get("csrf")).await?;
    let token = fields.text("token");
    let name = fields.text("name");
    let email = fields.get_any(&["Email", "email"]).unwrap_or_default().to_owned();
    let password = fields.get_any(&["Passwd", "password"]).unwrap_or_default().to_owned();
    match tessera_domain::setup::complete(&state.ctx, &token, &email, &name, password, &client.ip)
        .await
    {
        Ok(()) => Ok(redirect(
            &format!(
                "/accounts/ServiceLogin?Email={}",
                percent_encoding::utf8_percent_encode(&email, percent_encoding::NON_ALPHANUMERIC)
            ),
            true,
        )),
        Err(tessera_domain::Error::Invalid(message) | tessera_domain::Error::Conflict(message)) => {
            Ok(setup_page(&state, &headers, token, name, email, Some(message)))
        }
        Err(err) => Err(err.into()),
    }
}
