//! The authorization endpoint's decisions: is the client and redirect URI registered, is the
//! request acceptable, which signed-in account answers, does the person need to see the consent
//! page, and what goes back to the client once they allowed it.

use tessera_proto_oauth2::authorize::{self as proto, AuthorizeRequest};
use tessera_proto_oauth2::pkce::Method;
use tessera_proto_oauth2::redirect_uri;
use tessera_store::ProjectRecord;

use super::clients::{self, Client, ClientKind};
use super::tokens::{self, IdTokenClaims, Remembered, Subject};
use super::{ACCESS_TOKEN_TTL_SECS, ErrorCode, OAuthError, PROTOCOL};
use crate::services::{self, ScopeInfo};
use crate::sessions::SignedIn;
use crate::{Ctx, Error, Result, grants};

/// A client and redirect URI that passed registration checks: from here on errors may redirect.
#[derive(Debug, Clone)]
pub struct Target {
    pub client: Client,
    pub project: ProjectRecord,
    /// The URI the answer goes to (the one sent, or the only registered one).
    pub redirect_uri: String,
    pub redirect_sent: bool,
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
    let Some(project) = ctx.store.projects().get(&client.record.project_id).await? else {
        return Ok(Err("invalid_client: The OAuth client was not found.".to_owned()));
    };
    Ok(Ok(Target { client, project, redirect_uri, redirect_sent }))
}

/// Checks the rest of the request against the client's registration; the scopes in words.
pub async fn check(
    ctx: &Ctx,
    target: &Target,
    req: &AuthorizeRequest,
) -> Result<Result<Vec<ScopeInfo>, OAuthError>> {
    let settings = &target.client.settings;
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

/// Which signed-in account answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// This `authuser` index.
    Account(usize),
    /// Nobody suitable is signed in: sign someone in first.
    SignIn,
    /// Several could answer and the request asks to choose.
    Choose,
}

/// `authuser` picks the account; `hd` restricts to a hosted domain (`*`: any hosted domain);
/// `login_hint` prefers the account with that email; `prompt=select_account` asks to choose.
pub fn select(signed_in: &[SignedIn], req: &AuthorizeRequest) -> Selection {
    let fits = |it: &SignedIn| match req.hd.as_deref() {
        None => true,
        Some("*") => it.account.domain.is_some(),
        Some(hd) => it.account.domain.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(hd)),
    };
    if let Some(authuser) = req.authuser.as_deref() {
        return match authuser.parse::<usize>().ok().and_then(|i| signed_in.get(i).map(|it| (i, it)))
        {
            Some((index, it)) if fits(it) => Selection::Account(index),
            _ => Selection::SignIn,
        };
    }
    let candidates: Vec<usize> =
        signed_in.iter().enumerate().filter(|(_, it)| fits(it)).map(|(i, _)| i).collect();
    if candidates.is_empty() {
        return Selection::SignIn;
    }
    if let Some(hint) = req.login_hint.as_deref() {
        let hinted = candidates.iter().find(|i| {
            let account = &signed_in[**i].account;
            account.email.eq_ignore_ascii_case(hint)
                || crate::accounts::subject(&account.id) == hint
        });
        if let Some(index) = hinted {
            return Selection::Account(*index);
        }
    }
    if req.prompt.select_account {
        return Selection::Choose;
    }
    Selection::Account(candidates[0])
}

/// Whether the person must sign in again first: `prompt=login`, or a sign-in older than `max_age`.
pub fn needs_fresh_login(ctx: &Ctx, signed: &SignedIn, req: &AuthorizeRequest) -> bool {
    let age = ctx.now() - signed.session.auth_time;
    req.prompt.login || req.max_age.is_some_and(|max| age > max)
}

/// Whether the person must see the consent page. A grant counts for its whole project
/// (cross-client identity): scopes granted to any client of the project need no new consent.
pub async fn needs_consent(
    ctx: &Ctx,
    account_id: &str,
    target: &Target,
    req: &AuthorizeRequest,
) -> Result<bool> {
    if req.prompt.consent {
        return Ok(true);
    }
    let mut granted: Vec<String> = Vec::new();
    for grant in ctx.store.grants().list_by_account(account_id).await? {
        if grant.revoked_at.is_some() || grant.protocol != PROTOCOL {
            continue;
        }
        let same_project = if grant.client_id == target.client.id() {
            true
        } else {
            ctx.store
                .projects()
                .get_client(&grant.client_id)
                .await?
                .is_some_and(|it| it.project_id == target.project.id)
        };
        if same_project {
            granted.extend(grant.scopes.split(' ').map(str::to_owned));
        }
    }
    Ok(!req.scopes.iter().all(|scope| granted.contains(scope)))
}

/// What goes back to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub params: Vec<(&'static str, String)>,
    /// The code, for the out-of-band page.
    pub code: Option<String>,
}

/// The person allowed the request (now or earlier): record the grant, issue the code and/or tokens.
pub async fn approve(
    ctx: &Ctx,
    signed: &SignedIn,
    target: &Target,
    req: &AuthorizeRequest,
    ip: &str,
) -> Result<Answer> {
    let account = &signed.account;
    let grant =
        grants::grant(ctx, &account.id, target.client.id(), PROTOCOL, &req.scopes, ip).await?;
    let scopes: Vec<String> = if req.include_granted_scopes {
        grant.scopes.split(' ').filter(|it| !it.is_empty()).map(str::to_owned).collect()
    } else {
        req.scopes.clone()
    };
    let scope_text = grants::normalize_scopes(scopes.iter().map(String::as_str));
    let subject = Subject {
        account_id: Some(&account.id),
        client_id: target.client.id(),
        grant_id: Some(&grant.id),
    };
    let auth_time = Some(signed.session.auth_time);
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
