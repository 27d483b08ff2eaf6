//! The authorization endpoint's decisions: is the client and redirect URI registered, is the
//! request acceptable, what it asks of the interaction flow (`crate::interaction` chooses the
//! account, asks for a fresh sign-in or consent and records the grant), and what goes back to the
//! client once it is allowed.

use tessera_proto_oauth2::Params;
use tessera_proto_oauth2::authorize::{self as proto, AuthorizeRequest};
use tessera_proto_oauth2::pkce::Method;
use tessera_proto_oauth2::redirect_uri;
use tessera_store::ProjectRecord;

use super::clients::{self, Client, ClientKind};
use super::tokens::{self, IdTokenClaims, Remembered, Subject};
use super::{ACCESS_TOKEN_TTL_SECS, ErrorCode, OAuthError, PROTOCOL};
use crate::interaction::{Applicant, Approved, Asks, Choosing, Memory, Refusal, Request};
use crate::services::{self, ScopeInfo};
use crate::{Ctx, Error, Result, grants};

/// A client and redirect URI that passed registration checks: from here on errors may redirect.
#[derive(Debug, Clone)]
pub struct Target {
    pub client: Client,
    pub project: ProjectRecord,
    /// The URI the answer goes to (the one sent, or the only registered one).
    pub redirect_uri: String,
    pub redirect_sent: bool,
    /// The pushed request (RFC 9126) this request runs, by its row's digest.
    pub pushed: Option<String>,
}

/// The request the query describes: a pushed one (`request_uri`), a signed request object
/// (`request`) or the query itself, and the pushed request's digest when there is one. Errors
/// here are shown on a page: the client and redirect URI are not checked yet.
pub async fn unwrap(
    ctx: &Ctx,
    query: &Params,
) -> Result<std::result::Result<(Params, Option<String>), OAuthError>> {
    match super::par::resolve(ctx, query).await? {
        Err(err) => Ok(Err(err)),
        Ok(Some(resolved)) => Ok(Ok((resolved.params, Some(resolved.digest)))),
        Ok(None) => Ok(super::request_object::unwrap(ctx, query).await?.map(|it| (it, None))),
    }
}

/// Uses up the pushed request this answer comes from: `Err` when another answer already did.
pub async fn use_pushed(ctx: &Ctx, target: &Target) -> Result<std::result::Result<(), OAuthError>> {
    match &target.pushed {
        Some(digest) if !super::par::consume(ctx, digest).await? => Ok(Err(OAuthError::new(
            ErrorCode::InvalidRequestUri,
            "The request_uri was already used.",
        ))),
        _ => Ok(Ok(())),
    }
}

/// Checks `client_id` and `redirect_uri`. `Err(text)` is shown on a page, never redirected
/// (RFC 6749 §4.1.2.1, RFC 9700 §4.1).
pub async fn target(ctx: &Ctx, wire: &proto::Target) -> Result<Result<Target, String>> {
    let Some(client) = clients::load(ctx, &wire.client_id).await? else {
        return Ok(Err("invalid_client: The OAuth client was not found.".to_owned()));
    };
    if !matches!(client.kind, ClientKind::Web | ClientKind::Installed) {
        return Ok(Err(
            "unauthorized_client: This client cannot sign people in through a browser.".to_owned(),
        ));
    }
    let registered = &client.settings.redirect_uris;
    let (redirect_uri, redirect_sent) = match &wire.redirect_uri {
        Some(uri) if redirect_uri::matches(registered, uri) => (uri.clone(), true),
        Some(_) => {
            return Ok(Err(
                "redirect_uri_mismatch: The redirect URI in the request does not match \
                           the ones registered for the OAuth client."
                    .to_owned(),
            ));
        }
        None if registered.len() == 1 => (registered[0].clone(), false),
        None => {
            return Ok(Err("invalid_request: Missing required parameter: redirect_uri".to_owned()));
        }
    };
    let Some(project) = crate::answers::get_project(ctx, &client.record.project_id).await? else {
        return Ok(Err("invalid_client: The OAuth client was not found.".to_owned()));
    };
    Ok(Ok(Target { client, project, redirect_uri, redirect_sent, pushed: None }))
}

/// Checks the rest of the request against the client's registration; the scopes in words.
pub async fn check(
    ctx: &Ctx,
    target: &Target,
    req: &AuthorizeRequest,
) -> Result<Result<Vec<ScopeInfo>, OAuthError>> {
    let settings = &target.client.settings;
    if target.pushed.is_none() && super::par::required(ctx, &target.client) {
        return Ok(Err(OAuthError::invalid_request(
            "This client must push its authorization requests first (PAR).",
        )));
    }
    if req.response_type.is_implicit() && !settings.allow_implicit {
        return Ok(Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "This client may not use response_type token or id_token.",
        )));
    }
    let oob = matches!(
        redirect_uri::destination(&target.redirect_uri),
        redirect_uri::Destination::Oob { .. }
    );
    if oob && req.response_type.is_implicit() {
        return Ok(Err(OAuthError::invalid_request("Out-of-band redirects return codes only.")));
    }
    if req.response_type.code {
        match &req.challenge {
            None if target.client.is_public() => {
                return Ok(Err(OAuthError::invalid_request(
                    "Missing code_challenge: this client must use PKCE (S256).",
                )));
            }
            Some(challenge) if challenge.method == Method::Plain && !settings.allow_plain_pkce => {
                return Ok(Err(OAuthError::invalid_request(
                    "PKCE method plain is not allowed for this client; use S256.",
                )));
            }
            _ => {}
        }
    }
    match services::resolve(ctx, &req.scopes).await {
        Ok(scopes) if !scopes.is_empty() => Ok(Ok(scopes)),
        Ok(_) => Ok(Err(OAuthError::new(ErrorCode::InvalidScope, "No scope was requested."))),
        Err(Error::Invalid(text)) => Ok(Err(OAuthError::new(ErrorCode::InvalidScope, text))),
        Err(err) => Err(err),
    }
}

/// The request as the interaction flow sees it: remembered consent per project, accounts
/// chosen by `authuser`, `hd`, `login_hint` and `prompt=select_account`.
pub fn interaction(target: &Target, req: &AuthorizeRequest, scopes: Vec<ScopeInfo>) -> Request {
    Request {
        protocol: PROTOCOL,
        client_id: target.client.id().to_owned(),
        applicant: Applicant::Client {
            name: target.client.record.name.clone(),
            project: target.project.clone(),
        },
        scopes,
        asks: Asks {
            authuser: req.authuser.clone(),
            hd: req.hd.clone(),
            login_hint: req.login_hint.clone(),
            select_account: req.prompt.select_account,
            login: req.prompt.login,
            max_age: req.max_age,
            consent: req.prompt.consent,
            immediate: req.prompt.none,
            ui_lang: req.ui_locales.clone(),
        },
        choosing: Choosing::Fitting,
        memory: Memory::PerProject,
    }
}

/// The error an immediate or denied request answers (OpenID Connect Core §3.1.2.6). A request
/// whose signed-in accounts do not do answers `interaction_required`, the code it always had.
pub fn refusal(refusal: Refusal) -> OAuthError {
    let (code, text) = match refusal {
        Refusal::LoginRequired => {
            (ErrorCode::LoginRequired, "The person must sign in or choose an account.")
        }
        Refusal::AccountSelectionRequired => {
            (ErrorCode::InteractionRequired, "The person must sign in or choose an account.")
        }
        Refusal::FreshLoginRequired => (ErrorCode::LoginRequired, "A fresh sign-in is required."),
        Refusal::ConsentRequired => (ErrorCode::ConsentRequired, "Consent is required."),
        Refusal::Denied => (ErrorCode::AccessDenied, "The person denied the request."),
    };
    OAuthError::new(code, text)
}

/// Where the browser comes back to after signing in: this request without `authuser` (the
/// chooser and the sign-in add it), and after a fresh sign-in also without what asked for one
/// (`prompt=login`, `max_age`), since that sign-in met it.
pub fn again(ctx: &Ctx, params: &Params, fresh_login: bool) -> String {
    let mut again = params.without(&["authuser"]);
    if fresh_login {
        let prompt: Vec<&str> = params
            .get("prompt")
            .unwrap_or_default()
            .split(' ')
            .filter(|it| !it.is_empty() && *it != "login")
            .collect();
        again = params.without(&["authuser", "max_age", "prompt"]);
        if !prompt.is_empty() {
            again = again.with("prompt", &prompt.join(" "));
        }
    }
    format!("{}/o/oauth2/auth?{}", ctx.public_url, again.encode())
}

/// What goes back to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub params: Vec<(&'static str, String)>,
    /// The code, for the out-of-band page.
    pub code: Option<String>,
}

/// The person allowed the request (now or earlier; the flow recorded the grant): issue the code
/// and/or tokens.
pub async fn approve(
    ctx: &Ctx,
    approved: &Approved,
    target: &Target,
    req: &AuthorizeRequest,
) -> Result<Answer> {
    let account = &approved.signed.account;
    let grant = &approved.grant;
    let scopes: Vec<String> = if req.include_granted_scopes {
        crate::credentials::Scopes::parse(&grant.scopes).to_vec()
    } else {
        req.scopes.clone()
    };
    let scope_text = grants::normalize_scopes(scopes.iter().map(String::as_str));
    let subject = Subject {
        account_id: Some(&account.id),
        client_id: target.client.id(),
        grant_id: Some(&grant.id),
    };
    let auth_time = Some(approved.signed.session.auth_time);
    let mut params: Vec<(&'static str, String)> = Vec::new();
    let mut code = None;
    if req.response_type.code {
        let remembered = Remembered {
            redirect_uri: Some(target.redirect_uri.clone()),
            redirect_sent: target.redirect_sent,
            code_challenge: req.challenge.as_ref().map(|it| it.challenge.clone()),
            code_challenge_method: req.challenge.as_ref().map(|it| it.method.as_str().to_owned()),
            nonce: req.nonce.clone(),
            auth_time,
            offline: req.offline,
            jkt: None,
        };
        let issued = tokens::code(ctx, subject, &scope_text, &remembered).await?;
        params.push(("code", issued.clone()));
        code = Some(issued);
    }
    let mut access = None;
    if req.response_type.token {
        let token = tokens::access_token(ctx, &target.client, subject, &scope_text, false).await?;
        params.push(("access_token", token.clone()));
        params.push(("token_type", "Bearer".to_owned()));
        params.push(("expires_in", ACCESS_TOKEN_TTL_SECS.to_string()));
        access = Some(token);
    }
    if req.response_type.id_token {
        let claims = IdTokenClaims {
            account,
            audience: target.client.id(),
            authorized_party: target.client.id(),
            scopes: &scopes,
            nonce: req.nonce.as_deref(),
            auth_time,
            access_token: access.as_deref(),
            code: code.as_deref(),
        };
        params.push(("id_token", tokens::id_token(ctx, &claims).await?));
    }
    if req.response_type.is_implicit() || req.include_granted_scopes {
        params.push(("scope", scope_text));
    }
    if let Some(authuser) = req.authuser.as_deref() {
        params.push(("authuser", authuser.to_owned()));
    }
    Ok(Answer { params: finish(ctx, params, req.state.as_deref()), code })
}

/// An error for the redirect URI, with `state` and `iss` (RFC 9207).
pub fn error_params(
    ctx: &Ctx,
    err: &OAuthError,
    state: Option<&str>,
) -> Vec<(&'static str, String)> {
    let params = vec![
        ("error", err.code.as_str().to_owned()),
        ("error_description", err.description.clone()),
    ];
    finish(ctx, params, state)
}

fn finish(
    ctx: &Ctx,
    mut params: Vec<(&'static str, String)>,
    state: Option<&str>,
) -> Vec<(&'static str, String)> {
    if let Some(state) = state {
        params.push(("state", state.to_owned()));
    }
    params.push(("iss", ctx.public_url.to_string()));
    params
}
