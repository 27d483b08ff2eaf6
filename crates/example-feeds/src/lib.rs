//! A small "feeds" web service signed in through tessera's web single sign-on.
//!
//! * `/` is for people: `tessera_client::sso::SsoLayer` sends anonymous browsers to tessera's
//!   `ServiceLogin` and lets signed-in ones see their feed page, with a "Sign out everywhere" link
//!   to tessera's `Logout`; tessera's sign-outs reach it at `/sso/logout` (front channel) and
//!   `/sso/backchannel` (back channel).
//! * `/api/feed` is for programs: every `Authorization` scheme tessera knows (ClientLogin's
//!   `GoogleLogin auth=`, AuthSub, OAuth 1.0a signed requests, OAuth 2.0 `Bearer`) is checked by
//!   tessera's one caller check (`tessera_client::caller_check::OAuth1CallerLayer`, every scheme),
//!   and the caller must hold a scope that covers `<public>/api/`.
//! * `/reader` (when [`FeedsConfig::proxy_app`] names a front-end app) is a single-page feed
//!   reader in plain HTML and JavaScript that holds no token: it asks tessera's front-end token
//!   proxy (`POST /proxy/request`) for `/api/feed`, follows the `oauthApprovalUrl` it may get, and
//!   shows the feed. Register it with
//!   `tessera admin proxy app add --project P --name Reader --origin PUBLIC --target "PUBLIC/api/ PUBLIC/api/"`.
//!
//! Register the service first:
//! `tessera admin service add NAME --scope PUBLIC/api/` and
//! `tessera admin service web NAME --prefix PUBLIC/ --logout-url PUBLIC/sso/logout
//! --backchannel-logout-url PUBLIC/sso/backchannel` (`--demo` registers two).

use axum::Extension;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use tessera_client::caller_check::OAuth1CallerLayer;
use tessera_client::layer::Caller;
use tessera_client::sso::{SsoConfig, SsoLayer, SsoUser};

/// Where the service runs and which tessera it trusts.
#[derive(Debug, Clone)]
pub struct FeedsConfig {
    /// tessera's public URL.
    pub accounts: String,
    /// The service name registered at tessera.
    pub service: String,
    /// This service's public origin (`http://127.0.0.2:8081`), without a trailing slash.
    pub public: String,
    /// The session cookie's name (two services on one host need two names).
    pub cookie_name: Option<String>,
    /// The scope (a URL prefix) a caller of `/api/` must hold; [`api_scope`] when `None`.
    pub api_scope: Option<String>,
    /// The client id of the front-end app registered at tessera for `/reader`; no reader without.
    pub proxy_app: Option<String>,
}

const READER_HTML: &str = include_str!("../static/reader.html");
const READER_JS: &str = include_str!("../static/reader.js");

/// The reader page, told where tessera and the feed are and which app it is.
fn reader_page(accounts: &str, app: &str, feed: &str) -> String {
    READER_HTML
        .replace("{accounts}", &escape(accounts.trim_end_matches('/')))
        .replace("{app}", &escape(app))
        .replace("{feed}", &escape(feed))
}

/// The scope prefix a caller of `/api/` must hold.
pub fn api_scope(public: &str) -> String {
    format!("{}/api/", public.trim_end_matches('/'))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The whole service.
pub fn router(config: &FeedsConfig) -> Result<axum::Router, String> {
    let public = config.public.trim_end_matches('/').to_owned();
    let mut sso_config = SsoConfig::new(&config.accounts, &config.service, &public);
    if let Some(name) = &config.cookie_name {
        sso_config.cookie_name = name.clone();
    }
    let sso = SsoLayer::new(sso_config);
    let logout = sso.logout_url();
    let service = config.service.clone();
    let web = axum::Router::new()
        .route(
            "/",
            get(move |Extension(user): Extension<SsoUser>| async move {
                Html(format!(
                    "<!doctype html><title>{service}</title><h1>Feeds at {service}</h1>\
                     <p id=\"who\">Signed in as {}</p>\
                     <p><a href=\"{}\">Sign out everywhere</a></p>",
                    escape(&user.email),
                    escape(&logout)
                ))
            }),
        )
        .route("/sso/logout", get(|| async { "" }))
        .route("/sso/backchannel", post(|| async { "" }))
        .route_layer(sso);
    let accounts = url::Url::parse(&config.accounts).map_err(|e| format!("--accounts: {e}"))?;
    let base = url::Url::parse(&format!("{public}/")).map_err(|e| format!("--public: {e}"))?;
    let callers = OAuth1CallerLayer::new(&accounts, base)
        .map_err(|e| format!("--accounts: {e}"))?
        .accepting_every_scheme();
    let scope = config.api_scope.clone().unwrap_or_else(|| api_scope(&public));
    let feed_url = format!("{public}/api/feed");
    let api = axum::Router::new()
        .route(
            "/api/feed",
            get(move |Extension(caller): Extension<Caller>| async move {
                feed(&caller, &scope, &feed_url)
            }),
        )
        .route_layer(callers);
    let mut all = web.merge(api);
    if let Some(app) = &config.proxy_app {
        let page = reader_page(&config.accounts, app, &format!("{public}/api/feed"));
        all = all.route("/reader", get(move || async move { Html(page) })).route(
            "/reader/app.js",
            get(|| async {
                ([(http::header::CONTENT_TYPE, "text/javascript; charset=utf-8")], READER_JS)
            }),
        );
    }
    Ok(all)
}

/// The caller's feed, when one of its scopes covers this URL.
fn feed(caller: &Caller, scope: &str, feed_url: &str) -> Response {
    let covered = caller.scopes.iter().any(|it| it == scope || feed_url.starts_with(it.as_str()));
    match (covered, &caller.subject) {
        (true, Some(subject)) => format!("feed for {subject}\n").into_response(),
        _ => (StatusCode::FORBIDDEN, "insufficient scope\n").into_response(),
    }
}
