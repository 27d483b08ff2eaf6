//! The administrators' page about the legacy protocols (`/console/legacy`): per application and
//! protocol, live grants and accounts, last use, requests counted, and the deprecation dates that
//! apply, with a form per application that sets its own dates through `legacy::set_deprecation`,
//! as `tessera admin legacy deprecate` does. The usage report is `legacy::usage`, the one the
//! command line prints.

use askama::Template;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use tessera_domain::audit::Actor;
use tessera_domain::credentials::Protocol;
use tessera_domain::legacy::{self, Dates};
use tessera_domain::sessions::SignedIn;

use super::{check_csrf, csrf_for_page, pick, redirect, signed_in, with_cookies};
use crate::error::PageError;
use crate::forms::{self, Form};
use crate::{AppState, render};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/console/legacy", get(legacy_get))
        .route("/console/legacy/deprecate", post(deprecate_post))
}

struct UsageRow {
    protocol: String,
    client_id: String,
    name: String,
    registered: bool,
    grants: u64,
    accounts: u64,
    last_used: String,
    requests: u64,
    requests_today: u64,
    warn_from: String,
    refuse_from: String,
    own_dates: bool,
}

struct ProtocolRow {
    name: &'static str,
    warn_from: String,
    refuse_from: String,
}

#[derive(Template)]
#[template(path = "console_legacy.html")]
struct LegacyPage<'a> {
    brand: &'a str,
    csrf: String,
    authuser: usize,
    email: String,
    migration_url: String,
    protocols: Vec<ProtocolRow>,
    rows: Vec<UsageRow>,
    error: Option<String>,
}

fn date(at: Option<i64>) -> String {
    at.map(legacy::rfc3339).unwrap_or_default()
}

async fn render_page(
    state: &AppState,
    headers: &HeaderMap,
    (authuser, me): (usize, &SignedIn),
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, PageError> {
    let ctx = &state.ctx;
    let rows = legacy::usage(ctx)
        .await?
        .into_iter()
        .map(|it| UsageRow {
            protocol: it.protocol,
            client_id: it.client_id,
            name: it.name,
            registered: it.registered,
            grants: it.grants,
            accounts: it.accounts,
            last_used: it.last_used_at.map(render::datetime).unwrap_or_else(|| "never".into()),
            requests: it.requests,
            requests_today: it.requests_today,
            warn_from: date(it.dates.warn_from),
            refuse_from: date(it.dates.refuse_from),
            own_dates: it.own_dates,
        })
        .collect();
    let protocols = legacy::PROTOCOLS
        .iter()
        .map(|protocol| {
            let dates = ctx.policy.deprecation.of(*protocol);
            ProtocolRow {
                name: protocol.as_str(),
                warn_from: date(dates.warn_from),
                refuse_from: date(dates.refuse_from),
            }
        })
        .collect();
    let (csrf, set) = csrf_for_page(state, headers);
    let page = LegacyPage {
        brand: &state.brand,
        csrf,
        authuser,
        email: me.account.email.clone(),
        migration_url: legacy::migration_url(ctx),
        protocols,
        rows,
        error,
    };
    Ok(with_cookies(render::page(status, &page), set))
}

fn sign_in(authuser: usize) -> Response {
    redirect(
        &format!("/accounts/ServiceLogin?continue=%2Fconsole%2Flegacy%3Fauthuser%3D{authuser}"),
        false,
    )
}

fn only_administrators() -> PageError {
    PageError::forbidden("Only administrators see and change how legacy protocols are retired.")
}

async fn legacy_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let query = forms::query(&uri)?;
    let accounts = signed_in(&state, &headers).await?;
    let Some((authuser, me)) = pick(&accounts, query.get("authuser")) else {
        return Ok(sign_in(0));
    };
    if !me.account.is_admin {
        return Err(only_administrators());
    }
    render_page(&state, &headers, (authuser, &me), StatusCode::OK, None).await
}

/// Sets (both fields empty: clears) one application's dates for one protocol.
async fn deprecate_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, fields.get("csrf")).await?;
    let accounts = signed_in(&state, &headers).await?;
    let Some((authuser, me)) = pick(&accounts, fields.get("authuser")) else {
        return Ok(sign_in(0));
    };
    if !me.account.is_admin {
        return Err(only_administrators());
    }
    let res = async {
        let protocol = Protocol::parse(&fields.text("protocol"))
            .filter(|it| legacy::PROTOCOLS.contains(it))
            .ok_or_else(|| invalid("Pick one of the legacy protocols."))?;
        let date = |name: &str, label: &str| -> tessera_domain::Result<Option<i64>> {
            let text = fields.text(name);
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            legacy::parse_date(text).map(Some).ok_or_else(|| {
                invalid(&format!(
                    "{label}: give a date (2027-06-01), a UTC date-time or unix seconds."
                ))
            })
        };
        let dates = Dates {
            warn_from: date("warn_from", "Warn from")?,
            refuse_from: date("refuse_from", "Refuse from")?,
        };
        legacy::set_deprecation(
            &state.ctx,
            protocol,
            &fields.text("client"),
            dates,
            &Actor::Account,
        )
        .await
    }
    .await;
    match res {
        Ok(()) => Ok(redirect(&format!("/console/legacy?authuser={authuser}"), true)),
        Err(tessera_domain::Error::Invalid(text) | tessera_domain::Error::Conflict(text)) => {
            render_page(&state, &headers, (authuser, &me), StatusCode::BAD_REQUEST, Some(text))
                .await
        }
        Err(err) => Err(err.into()),
    }
}

fn invalid(text: &str) -> tessera_domain::Error {
    tessera_domain::Error::Invalid(text.to_owned())
}
