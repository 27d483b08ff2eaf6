//! `/accounts/ManageDomains`: administrators register AuthSub applications in the browser (the
//! same rules as `tessera admin consumer add`): a domain, its `next` prefix, an optional PEM
//! certificate for secure tokens and RSA-SHA1, and optionally an OAuth 1.0 HMAC consumer secret.
//! An administrator whose account belongs to a hosted domain also authorizes consumers for
//! two-legged OAuth 1.0 there (`/accounts/ManageDomains/two-legged`, the same rules as
//! `tessera admin consumer authorize-domain`), after re-entering the password when the sign-in is
//! not recent.

use askama::Template;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use tessera_domain::audit::Actor;
use tessera_domain::sessions::SignedIn;

use crate::error::PageError;
use crate::forms::{self, Form};
use crate::pages::{Client, check_csrf, csrf_for_page, pick, redirect, signed_in, with_cookies};
use crate::{AppState, render};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/accounts/ManageDomains", get(domains_get).post(domains_post))
        .route("/accounts/ManageDomains/two-legged", post(two_legged_post))
}

struct DomainGrantRow {
    consumer: String,
    scopes: String,
    created: String,
}

struct Row {
    domain: String,
    next_prefix: String,
    secure: bool,
}

#[derive(Template)]
#[template(path = "authsub_domains.html")]
struct DomainsPage<'a> {
    brand: &'a str,
    csrf: String,
    authuser: usize,
    rows: Vec<Row>,
    error: Option<String>,
    notice: Option<String>,
    domain: String,
    next_prefix: String,
    /// The hosted domain the administrator's account belongs to, if any: two-legged OAuth.
    hosted: Option<String>,
    domain_grants: Vec<DomainGrantRow>,
}

/// The signed-in administrator, or the response to send instead.
async fn admin(
    state: &AppState,
    headers: &HeaderMap,
    authuser: Option<&str>,
) -> Result<Result<(usize, SignedIn), Response>, PageError> {
    let accounts = signed_in(state, headers).await?;
    match pick(&accounts, authuser) {
        None => {
            Ok(Err(redirect("/accounts/ServiceLogin?continue=%2Faccounts%2FManageDomains", false)))
        }
        Some((_, who)) if !who.account.is_admin => {
            Err(PageError::forbidden("Only administrators register AuthSub applications."))
        }
        Some(found) => Ok(Ok(found)),
    }
}

async fn page(
    state: &AppState,
    headers: &HeaderMap,
    who: &SignedIn,
    authuser: usize,
    error: Option<String>,
    notice: Option<String>,
    typed: (String, String),
) -> Result<Response, PageError> {
    let rows = tessera_domain::authsub::list_registrations(&state.ctx)
        .await?
        .into_iter()
        .map(|it| Row {
            secure: it.cert_pem.is_some(),
            domain: it.domain,
            next_prefix: it.next_prefix,
        })
        .collect();
    let hosted = who.account.domain.clone();
    let domain_grants = match &hosted {
        Some(domain) => tessera_domain::oauth1::domain_grants(&state.ctx, Some(domain))
            .await?
            .into_iter()
            .filter(|it| it.revoked_at.is_none())
            .map(|it| DomainGrantRow {
                consumer: it.client_id,
                scopes: it.scopes,
                created: crate::render::datetime(it.created_at),
            })
            .collect(),
        None => Vec::new(),
    };
    let (csrf, set_cookie) = csrf_for_page(state, headers);
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let view = DomainsPage {
        brand: &state.brand,
        csrf,
        authuser,
        rows,
        error,
        notice,
        domain: typed.0,
        next_prefix: typed.1,
        hosted,
        domain_grants,
    };
    Ok(with_cookies(render::page(status, &view), set_cookie))
}

async fn domains_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let query = forms::query(&uri)?;
    let (index, who) = match admin(&state, &headers, query.get("authuser")).await? {
        Ok(it) => it,
        Err(res) => return Ok(res),
    };
    page(&state, &headers, &who, index, None, None, Default::default()).await
}

async fn domains_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, fields.get("csrf")).await?;
    let (index, who) = match admin(&state, &headers, fields.get("authuser")).await? {
        Ok(it) => it,
        Err(res) => return Ok(res),
    };
    let domain = fields.text("domain");
    let next_prefix = fields.text("next_prefix");
    let cert = fields.get("cert").map(str::trim).filter(|it| !it.is_empty());
    let res = tessera_domain::authsub::register(
        &state.ctx,
        &domain,
        &next_prefix,
        cert,
        Some(&who.account.email),
        &Actor::Admin(who.account.id.clone()),
    )
    .await;
    match res {
        Ok(reg) => {
            let mut notice = format!("Registered {}.", reg.domain);
            if fields.get("hmac") == Some("1") {
                let actor = Actor::Admin(who.account.id.clone());
                let secret =
                    tessera_domain::oauth1::mint_consumer_secret(&state.ctx, &reg.domain, &actor)
                        .await?;
                notice.push_str(&format!(
                    " OAuth 1.0 consumer key: {}; consumer secret (shown once): {secret}",
                    reg.domain
                ));
            }
            page(&state, &headers, &who, index, None, Some(notice), Default::default()).await
        }
        Err(tessera_domain::Error::Invalid(message) | tessera_domain::Error::Conflict(message)) => {
            page(&state, &headers, &who, index, Some(message), None, (domain, next_prefix)).await
        }
        Err(err) => Err(err.into()),
    }
}

/// Authorizes (`action=authorize`, `consumer`, space-separated `scopes`) or revokes
/// (`action=revoke`, `consumer`) a consumer for two-legged OAuth 1.0 in the administrator's own
/// hosted domain. A sensitive change: the password again (`confirm`) unless the sign-in is recent.
async fn two_legged_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    Form(fields): Form,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, fields.get("csrf")).await?;
    let (index, who) = match admin(&state, &headers, fields.get("authuser")).await? {
        Ok(it) => it,
        Err(res) => return Ok(res),
    };
    let Some(domain) = who.account.domain.clone() else {
        return Err(PageError::forbidden("Your account belongs to no hosted domain."));
    };
    let consumer = fields.text("consumer");
    let actor = Actor::Admin(who.account.id.clone());
    let confirmed = tessera_domain::password::confirm_recent(
        &state.ctx,
        &who.session,
        &who.account,
        fields.get("confirm").unwrap_or_default(),
        &client.ip,
    )
    .await;
    let res = match confirmed {
        Err(err) => Err(err),
        Ok(()) if fields.get("action") == Some("revoke") => {
            tessera_domain::oauth1::deauthorize_domain(
                &state.ctx,
                &domain,
                &consumer,
                Some(&who.account),
                &actor,
            )
            .await
            .map(|_| format!("{consumer} no longer acts for accounts of {domain}."))
        }
        Ok(()) => {
            let scopes: Vec<String> =
                fields.text("scopes").split_whitespace().map(str::to_owned).collect();
            tessera_domain::oauth1::authorize_domain(
                &state.ctx,
                &domain,
                &consumer,
                &scopes,
                Some(&who.account),
                &actor,
            )
            .await
            .map(|grant| {
                format!("{consumer} may act for accounts of {domain} within: {}", grant.scopes)
            })
        }
    };
    match res {
        Ok(notice) => {
            page(&state, &headers, &who, index, None, Some(notice), Default::default()).await
        }
        Err(tessera_domain::Error::Invalid(message)) => {
            page(&state, &headers, &who, index, Some(message), None, Default::default()).await
        }
        Err(err) => Err(err.into()),
    }
}
