//! `/o/oauth2/auth` (alias `/o/oauth2/v2/auth`) and the consent page's POST (`/o/oauth2/approval`).
//!
//! Until the client and redirect URI are known to be registered, errors are pages; after that they
//! go back to the redirect URI with `state` and `iss`. Sign-in is the ordinary
//! `/accounts/ServiceLogin?continue=<this request>`.

use askama::Template;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use tessera_domain::oauth2::authorize::{self, Answer, Selection, Target};
use tessera_domain::oauth2::{ErrorCode, OAuthError};
use tessera_proto_oauth2::Params;
use tessera_proto_oauth2::authorize::{self as proto, AuthorizeRequest};
use tessera_proto_oauth2::redirect_uri::{self, Destination};
use tessera_proto_oauth2::response::{self, ResponseMode};

use crate::error::PageError;
use crate::forms::Form;
use crate::pages::{Client, check_csrf, csrf_for_page, redirect, signed_in, with_cookies};
use crate::{AppState, render};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/o/oauth2/auth", get(authorize_get))
        .route("/o/oauth2/v2/auth", get(authorize_get))
        .route("/o/oauth2/approval", post(approval_post))
}

/// The consent page, for the authorization endpoint and the device flow alike.
#[derive(Template)]
#[template(path = "consent.html")]
pub(super) struct ConsentPage<'a> {
    pub(super) brand: &'a str,
    pub(super) action: &'a str,
    pub(super) app: String,
    pub(super) project: String,
    pub(super) verified: bool,
    pub(super) homepage: Option<String>,
    pub(super) support: Option<String>,
    pub(super) logo: Option<String>,
    pub(super) email: String,
    pub(super) scopes: Vec<String>,
    pub(super) csrf: String,
    pub(super) request: String,
}

#[derive(Template)]
#[template(path = "oob.html")]
struct OobPage<'a> {
    brand: &'a str,
    title: String,
    code: Option<String>,
    error: Option<String>,
    auto: bool,
}

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostPage<'a> {
    brand: &'a str,
    action: String,
    fields: Vec<(&'static str, String)>,
}

/// Consent pages may show the project's logo from its own https address; nothing else changes
/// from the default policy.
const CONSENT_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data: https:; base-uri 'none'; frame-ancestors 'none'";

pub(super) fn consent_response(page: &impl askama::Template) -> Response {
    let mut res = render::page(StatusCode::OK, page);
    res.headers_mut()
        .insert(http::header::CONTENT_SECURITY_POLICY, http::HeaderValue::from_static(CONSENT_CSP));
    res
}

/// The consent screen's names: the project's product name when set, else the client's name.
pub(super) struct Branding {
    pub(super) app: String,
    pub(super) homepage: Option<String>,
    pub(super) support: Option<String>,
    pub(super) logo: Option<String>,
}

impl Branding {
    pub(super) async fn load(
        state: &AppState,
        project_id: &str,
        client_name: &str,
    ) -> Result<Branding, PageError> {
        let branding = tessera_domain::projects::branding(&state.ctx, project_id).await?;
        let set = |value: &str| (!value.is_empty()).then(|| value.to_owned());
        Ok(match branding {
            Some(it) => Branding {
                app: set(&it.product_name).unwrap_or_else(|| client_name.to_owned()),
                homepage: set(&it.homepage),
                support: set(&it.support_email),
                logo: set(&it.logo_url),
            },
            None => {
                Branding { app: client_name.to_owned(), homepage: None, support: None, logo: None }
            }
        })
    }
}

/// What the person decided on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Allow,
    Deny,
}

async fn authorize_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Client(client): Client,
) -> Result<Response, PageError> {
    handle(&state, &headers, uri.query().unwrap_or_default(), &client.ip, None).await
}

async fn approval_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    Form(form): Form,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, form.get("csrf")).await?;
    let decision = match form.get("decision") {
        Some("allow") => Decision::Allow,
        Some("deny") => Decision::Deny,
        _ => return Err(PageError::bad_request("Choose Allow or Deny.")),
    };
    handle(&state, &headers, form.get("request").unwrap_or_default(), &client.ip, Some(decision))
        .await
}

/// The whole endpoint; `decision` is set when the consent page was answered.
async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    query: &str,
    ip: &str,
    decision: Option<Decision>,
) -> Result<Response, PageError> {
    let ctx = &state.ctx;
    let after_post = decision.is_some();
    let params = Params::parse(query.as_bytes())
        .map_err(|err| PageError::bad_request(&format!("invalid_request: {}", err.description)))?;
    let wire = proto::target(&params)
        .map_err(|err| PageError::bad_request(&format!("{}: {}", err.code, err.description)))?;
    let target =
        authorize::target(ctx, &wire).await?.map_err(|text| PageError::bad_request(&text))?;
    let req = match proto::parse(&params) {
        Ok(req) => req,
        Err(err) => {
            let implicit = params.get("response_type").is_some_and(|it| it.contains("token"));
            let mode = if implicit { ResponseMode::Fragment } else { ResponseMode::Query };
            let state_param = params.get("state");
            return Ok(error(state, &target, mode, &err, state_param, after_post));
        }
    };
    let fail = |err: OAuthError| {
        Ok(error(state, &target, req.response_mode, &err, req.state.as_deref(), after_post))
    };
    let scopes = match authorize::check(ctx, &target, &req).await? {
        Ok(scopes) => scopes,
        Err(err) => return fail(err),
    };
    let accounts = signed_in(state, headers).await?;
    let index = match authorize::select(&accounts, &req) {
        Selection::Account(index) => index,
        Selection::SignIn | Selection::Choose if req.prompt.none => {
            let code = if accounts.is_empty() {
                ErrorCode::LoginRequired
            } else {
                ErrorCode::InteractionRequired
            };
            return fail(OAuthError::new(code, "The person must sign in or choose an account."));
        }
        selection => {
            let again = format!(
                "{}/o/oauth2/auth?{}",
                ctx.public_url,
                params.without(&["authuser"]).encode()
            );
            let add =
                if selection == Selection::SignIn && !accounts.is_empty() { "add=1&" } else { "" };
            let to = format!("/accounts/ServiceLogin?{add}continue={}", encode(&again));
            return Ok(redirect(&to, after_post));
        }
    };
    let signed = &accounts[index];
    if decision.is_none() && authorize::needs_fresh_login(ctx, signed, &req) {
        if req.prompt.none {
            return fail(OAuthError::new(ErrorCode::LoginRequired, "A fresh sign-in is required."));
        }
        // After this sign-in the requirement is met: the request comes back without it.
        let prompt: Vec<&str> = params
            .get("prompt")
            .unwrap_or_default()
            .split(' ')
            .filter(|it| !it.is_empty() && *it != "login")
            .collect();
        let mut again = params.without(&["authuser", "max_age", "prompt"]);
        if !prompt.is_empty() {
            again = again.with("prompt", &prompt.join(" "));
        }
        let again = format!("{}/o/oauth2/auth?{}", ctx.public_url, again.encode());
        let to = format!(
            "/accounts/ServiceLogin?add=1&Email={}&continue={}",
            encode(&signed.account.email),
            encode(&again)
        );
        return Ok(redirect(&to, after_post));
    }
    let decision = match decision {
        Some(decision) => decision,
        None if authorize::needs_consent(ctx, &signed.account.id, &target, &req).await? => {
            if req.prompt.none {
                return fail(OAuthError::new(ErrorCode::ConsentRequired, "Consent is required."));
            }
            let (csrf, set) = csrf_for_page(state, headers);
            let branding =
                Branding::load(state, &target.project.id, &target.client.record.name).await?;
            let page = ConsentPage {
                brand: &state.brand,
                action: "/o/oauth2/approval",
                app: branding.app,
                project: target.project.name.clone(),
                verified: target.project.verified,
                homepage: branding.homepage,
                support: branding.support,
                logo: branding.logo,
                email: signed.account.email.clone(),
                scopes: scopes.into_iter().map(|it| it.description).collect(),
                csrf,
                request: params.with("authuser", &index.to_string()).encode(),
            };
            return Ok(with_cookies(consent_response(&page), set));
        }
        None => Decision::Allow,
    };
    if decision == Decision::Deny {
        return fail(OAuthError::new(ErrorCode::AccessDenied, "The person denied the request."));
    }
    let answer = authorize::approve(ctx, signed, &target, &req, ip).await?;
    Ok(respond(state, &target, &req, answer, after_post))
}

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn respond(
    state: &AppState,
    target: &Target,
    req: &AuthorizeRequest,
    answer: Answer,
    after_post: bool,
) -> Response {
    match redirect_uri::destination(&target.redirect_uri) {
        Destination::Oob { auto } => {
            let code = answer.code.unwrap_or_default();
            let page = OobPage {
                brand: &state.brand,
                title: format!("Success code={code}"),
                code: Some(code),
                error: None,
                auto,
            };
            render::page(StatusCode::OK, &page)
        }
        Destination::Uri(uri) => send(state, &uri, req.response_mode, answer.params, after_post),
    }
}

fn error(
    state: &AppState,
    target: &Target,
    mode: ResponseMode,
    err: &OAuthError,
    state_param: Option<&str>,
    after_post: bool,
) -> Response {
    let params = authorize::error_params(&state.ctx, err, state_param);
    match redirect_uri::destination(&target.redirect_uri) {
        Destination::Oob { auto } => {
            let page = OobPage {
                brand: &state.brand,
                title: format!("Denied error={}", err.code),
                code: None,
                error: Some(err.description.clone()),
                auto,
            };
            render::page(StatusCode::OK, &page)
        }
        Destination::Uri(uri) => send(state, &uri, mode, params, after_post),
    }
}

/// `script-src` allows exactly `document.forms[0].submit();` (its SHA-256).
const FORM_POST_CSP: &str = "default-src 'none'; style-src 'self'; script-src 'sha256-8lDeP0UDwCO6/RhblgeH/ctdBzjVpJxrXizsnIk3cEQ='; base-uri 'none'; frame-ancestors 'none'";

fn send(
    state: &AppState,
    uri: &str,
    mode: ResponseMode,
    params: Vec<(&'static str, String)>,
    after_post: bool,
) -> Response {
    match mode {
        ResponseMode::FormPost => {
            let mut res = render::page(
                StatusCode::OK,
                &FormPostPage { brand: &state.brand, action: uri.to_owned(), fields: params },
            );
            // The page submits itself; its one inline script is allowed by hash, nothing else.
            res.headers_mut().insert(
                http::header::CONTENT_SECURITY_POLICY,
                http::HeaderValue::from_static(FORM_POST_CSP),
            );
            res
        }
        mode => redirect(&response::redirect_url(uri, mode, &params), after_post),
    }
}
