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
use tessera_domain::interaction::{self, Decision, Step};
use tessera_domain::oauth2::OAuthError;
use tessera_domain::oauth2::authorize::{self, Answer, Target};
use tessera_proto_oauth2::Params;
use tessera_proto_oauth2::authorize::{self as proto, AuthorizeRequest};
use tessera_proto_oauth2::redirect_uri::{self, Destination};
use tessera_proto_oauth2::response::{self, ResponseMode};

use crate::error::PageError;
use crate::forms::Form;
use crate::pages::consent::{self, Post};
use crate::pages::lang::Lang;
use crate::pages::{Client, check_csrf, encode, redirect, signed_in};
use crate::{AppState, render};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/o/oauth2/auth", get(authorize_get))
        .route("/o/oauth2/v2/auth", get(authorize_get))
        .route("/o/oauth2/approval", post(approval_post))
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
    let decision = consent::decision(form.get("decision"))?;
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
    let outer = Params::parse(query.as_bytes())
        .map_err(|err| PageError::bad_request(&format!("invalid_request: {}", err.description)))?;
    let (params, pushed) = authorize::unwrap(ctx, &outer)
        .await?
        .map_err(|err| PageError::bad_request(&format!("{}: {}", err.code, err.description)))?;
    let wire = proto::target(&params)
        .map_err(|err| PageError::bad_request(&format!("{}: {}", err.code, err.description)))?;
    let mut target =
        authorize::target(ctx, &wire).await?.map_err(|text| PageError::bad_request(&text))?;
    target.pushed = pushed;
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
    let request = authorize::interaction(&target, &req, scopes);
    let step = match decision {
        None => interaction::start(ctx, &request, &accounts, ip).await?,
        Some(decision) => interaction::decide(ctx, &request, &accounts, decision, ip).await?,
    };
    let lang = Lang::of(&request.asks);
    let sign_in = |add: bool, email: Option<&str>, fresh_login: bool| {
        let again = encode(&authorize::again(ctx, &outer, fresh_login));
        let add = if add { "add=1&" } else { "" };
        let hl = match lang {
            Lang::English => String::new(),
            _ => format!("hl={}&", lang.code()),
        };
        let email = email.map(|it| format!("Email={}&", encode(it))).unwrap_or_default();
        redirect(&format!("/accounts/ServiceLogin?{add}{hl}{email}continue={again}"), after_post)
    };
    match step {
        Step::SignIn { another } => Ok(sign_in(another, None, false)),
        Step::ChooseAccount | Step::WrongAccount { .. } => Ok(sign_in(false, None, false)),
        Step::Reauthenticate { email, .. } => Ok(sign_in(true, Some(&email), true)),
        Step::Consent(view) => {
            let request = outer.with("authuser", &view.authuser.to_string()).encode();
            let post = Post {
                action: "/o/oauth2/approval",
                button: "decision",
                hidden: vec![("request", request)],
                lang,
            };
            Ok(consent::page(state, headers, *view, post))
        }
        Step::Approved(approved) => {
            if let Err(err) = authorize::use_pushed(ctx, &target).await? {
                return fail(err);
            }
            let answer = authorize::approve(ctx, &approved, &target, &req).await?;
            Ok(respond(state, &target, &req, answer, after_post))
        }
        Step::Refused(refusal) => fail(authorize::refusal(refusal)),
    }
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
