//! The one consent page. Every protocol's "allow this application?" screen (the OAuth 2.0
//! authorization endpoint, the device flow, AuthSubRequest, OpenID 2.0 sign-in) is built here from the domain's
//! `interaction::ConsentView`; no other module makes one.

use askama::Template;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tessera_domain::interaction::{About, ConsentView, Decision};

use crate::error::PageError;
use crate::pages::{csrf_for_page, with_cookies};
use crate::{AppState, render};

/// Where the page's Allow / Deny goes, and what the protocol needs back with it.
pub(crate) struct Post {
    pub(crate) action: &'static str,
    /// The name the buttons send `allow` or `deny` under.
    pub(crate) button: &'static str,
    /// Hidden fields after the CSRF token, in this order.
    pub(crate) hidden: Vec<(&'static str, String)>,
}

/// What a project's page says about it.
struct ProjectPart {
    name: String,
    verified: bool,
    homepage: Option<String>,
    support: Option<String>,
    logo: Option<String>,
}

/// What a site's page says about it.
struct SitePart {
    registered: bool,
    return_host: String,
    services: Vec<String>,
    lasting: bool,
    signed: bool,
    /// The OpenID 2.0 realm signed in to.
    realm: Option<String>,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    brand: &'a str,
    action: &'static str,
    button: &'static str,
    csrf: String,
    hidden: Vec<(&'static str, String)>,
    app: String,
    email: String,
    /// In words for a project's client; exactly as requested for a site, whose services are
    /// the words.
    scopes: Vec<String>,
    project: Option<ProjectPart>,
    site: Option<SitePart>,
    /// The compact variant for small screens (OAuth 1.0a's `btmpl=mobile`): the same choice with
    /// the optional detail left out.
    compact: bool,
}

/// Pages about a project may show its logo from its own https address; nothing else changes
/// from the default policy.
const CONSENT_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data: https:; base-uri 'none'; frame-ancestors 'none'";

/// The answer the page's buttons sent.
pub(crate) fn decision(value: Option<&str>) -> Result<Decision, PageError> {
    match value {
        Some("allow") => Ok(Decision::Allow),
        Some("deny") => Ok(Decision::Deny),
        _ => Err(PageError::bad_request("Choose Allow or Deny.")),
    }
}

/// The consent page for `view`, with a fresh CSRF token.
pub(crate) fn page(
    state: &AppState,
    headers: &HeaderMap,
    view: ConsentView,
    post: Post,
) -> Response {
    page_variant(state, headers, view, post, false)
}

/// The consent page for `view`, compact (for small screens) when `compact`.
pub(crate) fn page_variant(
    state: &AppState,
    headers: &HeaderMap,
    view: ConsentView,
    post: Post,
    compact: bool,
) -> Response {
    let (csrf, set_cookie) = csrf_for_page(state, headers);
    let (scopes, project, site) = match view.about {
        About::Project { name, verified, homepage, support, logo } => (
            view.scopes.into_iter().map(|it| it.description).collect(),
            Some(ProjectPart { name, verified, homepage, support, logo }),
            None,
        ),
        About::Site { registered, return_host, services, lasting, signed, realm } => (
            view.scopes.into_iter().map(|it| it.scope).collect(),
            None,
            Some(SitePart { registered, return_host, services, lasting, signed, realm }),
        ),
    };
    let with_logo_policy = project.is_some();
    let page = ConsentPage {
        brand: &state.brand,
        action: post.action,
        button: post.button,
        csrf,
        hidden: post.hidden,
        app: view.app,
        email: view.email,
        scopes,
        project,
        site,
        compact,
    };
    let mut res = render::page(StatusCode::OK, &page);
    if with_logo_policy {
        res.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONSENT_CSP));
    }
    with_cookies(res, set_cookie)
}
