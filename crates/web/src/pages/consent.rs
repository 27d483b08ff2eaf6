//! The one consent page. Every protocol's "allow this application?" screen (the OAuth 2.0
//! authorization endpoint, the device flow, AuthSubRequest, OpenID 2.0 sign-in) is built here from the domain's
//! `interaction::ConsentView`; no other module makes one.

use askama::Template;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tessera_domain::interaction::{About, Approved, ConsentView, Decision, Step};

use crate::error::PageError;
use crate::pages::lang::{Lang, Text, fill};
use crate::pages::{csrf_for_page, encode, redirect, with_cookies};
use crate::{AppState, render};

/// Where the page's Allow / Deny goes, and what the protocol needs back with it.
pub(crate) struct Post {
    pub(crate) action: &'static str,
    /// The name the buttons send `allow` or `deny` under.
    pub(crate) button: &'static str,
    /// Hidden fields after the CSRF token, in this order.
    pub(crate) hidden: Vec<(&'static str, String)>,
    /// The page's language (the request's `Asks::ui_lang`).
    pub(crate) lang: Lang,
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
    lang: &'static str,
    t: &'static Text,
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

impl ConsentPage<'_> {
    /// `text` with the page's names filled in.
    fn say(&self, text: impl AsRef<str>) -> String {
        let (host, realm) = match &self.site {
            Some(site) => (site.return_host.as_str(), site.realm.as_deref().unwrap_or_default()),
            None => ("", ""),
        };
        let project = self.project.as_ref().map(|it| it.name.as_str()).unwrap_or_default();
        let vars = [
            ("app", self.app.as_str()),
            ("brand", self.brand),
            ("host", host),
            ("realm", realm),
            ("project", project),
        ];
        fill(text.as_ref(), &vars)
    }
}

/// A page that ends or redirects the flow, in the flow's language.
#[derive(Template)]
#[template(path = "flow_message.html")]
pub(crate) struct FlowMessage<'a> {
    pub(crate) lang: &'static str,
    pub(crate) brand: &'a str,
    pub(crate) heading: &'static str,
    pub(crate) message: String,
    pub(crate) link: String,
    pub(crate) link_text: &'static str,
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
        lang: post.lang.code(),
        t: post.lang.text(),
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

/// Where a protocol's consent form goes: its action, the hidden fields after `authuser`, and
/// whether the page is the compact variant.
pub(crate) struct ConsentForm {
    pub(crate) action: &'static str,
    pub(crate) hidden: Vec<(&'static str, String)>,
    pub(crate) compact: bool,
    /// The page's language (the request's `Asks::ui_lang`); the sign-in page gets it as `hl`.
    pub(crate) lang: Lang,
}

/// What is left of a step of the one interaction flow once the person's part is shown: the
/// protocol answers an approval or a refusal its own way.
pub(crate) enum Next {
    Shown(Response),
    Approved(Box<Approved>),
    Refused,
}

/// Shows the person's part of `step` the same way for every browser-facing protocol that resumes
/// at an address of its own (`here`, absolute): signing in or choosing an account goes through
/// ServiceLogin and comes back to `here`; a wrong hosted-domain account gets a page offering
/// another; consent is [`page_variant`], posted as `form` says.
/// `after_post`: the step answers the consent form, so a sign-in that vanished meanwhile is an
/// error rather than a new round.
pub(crate) fn person_step(
    state: &AppState,
    headers: &HeaderMap,
    step: Step,
    here: &str,
    after_post: bool,
    form: ConsentForm,
) -> Result<Next, PageError> {
    let lang = form.lang;
    let t = lang.text();
    // The sign-in pages show the flow's language; English is their default.
    let hl = match lang {
        Lang::English => String::new(),
        _ => format!("hl={}&", lang.code()),
    };
    let shown = match step {
        Step::SignIn { .. } | Step::ChooseAccount if after_post => {
            return Err(PageError::bad_request(
                "You are no longer signed in. Go back and try again.",
            ));
        }
        // Not signed in, or several accounts: ServiceLogin signs in or shows the chooser, whose
        // links come back here with `authuser=N`.
        Step::SignIn { .. } | Step::ChooseAccount => {
            redirect(&format!("/accounts/ServiceLogin?{hl}continue={}", encode(here)), false)
        }
        Step::Reauthenticate { email, .. } => {
            let to = format!(
                "/accounts/ServiceLogin?add=1&{hl}Email={}&continue={}",
                encode(&email),
                encode(here)
            );
            redirect(&to, after_post)
        }
        Step::WrongAccount { .. } if after_post => {
            return Err(tessera_domain::Error::Forbidden.into());
        }
        Step::WrongAccount { email, hd } => {
            let page = FlowMessage {
                lang: lang.code(),
                brand: &state.brand,
                heading: t.wrong_heading,
                message: fill(t.wrong_message, &[("hd", &hd), ("email", &email)]),
                link: format!("/accounts/ServiceLogin?add=1&{hl}continue={}", encode(here)),
                link_text: t.wrong_link,
            };
            render::page(StatusCode::FORBIDDEN, &page)
        }
        Step::Consent(view) => {
            let mut fields = vec![("authuser", view.authuser.to_string())];
            fields.extend(form.hidden);
            let post = Post { action: form.action, button: "action", hidden: fields, lang };
            page_variant(state, headers, *view, post, form.compact)
        }
        Step::Approved(approved) => return Ok(Next::Approved(approved)),
        Step::Refused(_) => return Ok(Next::Refused),
    };
    Ok(Next::Shown(shown))
}
