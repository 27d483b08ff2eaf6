//! The people-facing pages: sign-in, 2-step, account chooser, sign-out, CAPTCHA, the account page,
//! first-run setup and the developer console. Shared here: who the browser is signed in as, its CSRF
//! binding, its client facts.

pub(crate) mod account;
pub(crate) mod assets;
pub(crate) mod consent;
pub(crate) mod console;
pub(crate) mod lang;
pub(crate) mod legacy_console;
pub(crate) mod setup;
pub(crate) mod signin;
pub(crate) mod sso;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, header};
use tessera_domain::sessions::{ClientInfo, SignedIn};

use askama::Template;

use crate::error::PageError;
use crate::{AppState, cookies};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/account") }))
        .route("/static/tessera.css", get(assets::stylesheet_get))
        .merge(signin::router())
        .merge(sso::router())
        .merge(account::router())
        .merge(setup::router())
        .merge(console::router())
        .merge(legacy_console::router())
}

/// The peer's address and user agent, as recorded with sessions and audit events.
pub(crate) struct Client(pub(crate) ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Client, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|it| it.0.ip().to_string())
            .unwrap_or_else(|| "unknown".to_owned());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|it| it.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        Ok(Client(ClientInfo { ip, user_agent }))
    }
}

/// The accounts this browser is signed in as, in `authuser` order.
pub(crate) async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Vec<SignedIn>, PageError> {
    match cookies::get(headers, cookies::SESSION) {
        Some(cookie) if !cookie.is_empty() => {
            Ok(tessera_domain::sessions::load(&state.ctx, cookie).await?)
        }
        _ => Ok(Vec::new()),
    }
}

/// The browser's CSRF binding, and a `Set-Cookie` when it needs a new one.
pub(crate) fn csrf_binding(state: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    match cookies::get(headers, cookies::CSRF) {
        Some(value) if value.len() >= 20 && value.len() <= 64 => (value.to_owned(), None),
        _ => {
            let value = tessera_crypto::random::token(state.ctx.rng.as_ref(), 18);
            let set =
                cookies::set(cookies::CSRF, &value, cookies::Life::Browser, state.secure_cookies);
            (value, Some(set))
        }
    }
}

/// A fresh CSRF token for a page, with the cookie it is bound to.
pub(crate) fn csrf_for_page(state: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    let (binding, set) = csrf_binding(state, headers);
    (tessera_domain::csrf::issue(&state.ctx, &binding), set)
}

/// Refuses a POST whose CSRF token is missing, foreign, expired or used.
pub(crate) async fn check_csrf(
    state: &AppState,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Result<(), PageError> {
    let binding = cookies::get(headers, cookies::CSRF).unwrap_or_default();
    match tessera_domain::csrf::check(&state.ctx, binding, token.unwrap_or_default()).await? {
        Ok(()) => Ok(()),
        Err(_) => Err(PageError::bad_request(
            "This form has expired or was already sent. Go back, reload the page and try again.",
        )),
    }
}

/// Adds `Set-Cookie` lines to a response.
pub(crate) fn with_cookies(
    mut res: Response,
    set_cookies: impl IntoIterator<Item = String>,
) -> Response {
    for cookie in set_cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            res.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    res
}

/// A 303 to `location` (after a POST) or a 302 (after a GET).
pub(crate) fn redirect(location: &str, after_post: bool) -> Response {
    let res = if after_post {
        Redirect::to(location).into_response()
    } else {
        Redirect::temporary(location).into_response()
    };
    let mut res = res;
    if !after_post {
        *res.status_mut() = http::StatusCode::FOUND;
    }
    res
}

/// `continue` made safe: this server's own pages, registered prefixes, else the account page.
pub(crate) fn safe_continue(state: &AppState, input: Option<&str>) -> String {
    input
        .and_then(|it| {
            tessera_domain::redirect::validate_continue(
                &state.ctx.public_url,
                &state.continue_prefixes,
                it,
            )
        })
        .unwrap_or_else(|| format!("{}/account", state.ctx.public_url))
}

/// Picks the signed-in account for `authuser` (default 0).
pub(crate) fn pick(signed_in: &[SignedIn], authuser: Option<&str>) -> Option<(usize, SignedIn)> {
    let index: usize = authuser.and_then(|it| it.parse().ok()).unwrap_or(0);
    signed_in.get(index).cloned().map(|it| (index, it))
}

/// Percent-encodes `text` for a query value.
pub(crate) fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A page with a heading, one sentence and one link (`message.html`).
#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage<'a> {
    pub(crate) brand: &'a str,
    pub(crate) heading: &'a str,
    pub(crate) message: String,
    pub(crate) link: String,
    pub(crate) link_text: &'a str,
}
