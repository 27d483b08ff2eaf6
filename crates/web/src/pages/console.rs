//! The developer console: the signed-in account's projects and their OAuth 2.0 clients; for
//! administrators, the web sign-on settings of every service (web prefixes, front- and back-channel
//! logout URLs, through `services::set_web`, as `tessera admin service web`); each project's push
//! API keys (created and revoked through the same domain functions as `tessera admin push
//! api-key`); each project's front-end apps for the token proxy (registered through the same
//! `proxy::register` as `tessera admin proxy app add`). Secrets, API keys and private keys are shown once, on the page that answers the
//! POST that made them.

use askama::Template;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use tessera_domain::audit::Actor;
use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};
use tessera_domain::sessions::SignedIn;

use super::{check_csrf, csrf_for_page, pick, redirect, signed_in, with_cookies};
use crate::error::PageError;
use crate::forms::{self, Fields, Form};
use crate::{AppState, render};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(console_get))
        .route("/console/projects", post(project_post))
        .route("/console/projects/branding", post(branding_post))
        .route("/console/clients", post(client_post))
        .route("/console/clients/redirects", post(redirects_post))
        .route("/console/clients/rotate", post(rotate_post))
        .route("/console/clients/keys", post(key_post))
        .route("/console/clients/keys/upload", post(key_change_post))
        .route("/console/clients/keys/remove", post(key_change_post))
        .route("/console/clients/delete", post(delete_post))
        .route("/console/services/web", post(service_web_post))
        .route("/console/projects/push-keys", post(push_key_post))
        .route("/console/projects/push-keys/revoke", post(push_key_revoke_post))
        .route("/console/projects/proxy-apps", post(proxy_app_post))
}

/// A service's web sign-on settings, as the form shows them.
struct ServiceRow {
    name: String,
    display_name: String,
    prefixes: String,
    logout_url: String,
    backchannel_logout_url: String,
}

struct ClientRow {
    id: String,
    name: String,
    kind: String,
    redirect_uris: String,
    confidential: bool,
    service_account: bool,
    key_ids: Vec<String>,
    /// A front-end app's origins and its targets, one `PREFIX SCOPE…` a line.
    front_end: Option<(String, String)>,
}

/// A push API key as listed: never the key itself.
struct PushKeyRow {
    id: String,
    name: String,
    created: String,
    last_used: String,
}

struct ProjectRow {
    id: String,
    push_keys: Vec<PushKeyRow>,
    name: String,
    verified: bool,
    product_name: String,
    homepage: String,
    support_email: String,
    logo_url: String,
    clients: Vec<ClientRow>,
}

/// Something to show once.
struct Reveal {
    label: &'static str,
    client_id: String,
    value: String,
}

#[derive(Template)]
#[template(path = "console.html")]
struct ConsolePage<'a> {
    brand: &'a str,
    csrf: String,
    authuser: usize,
    email: String,
    projects: Vec<ProjectRow>,
    /// Every service, for administrators; empty otherwise.
    services: Vec<ServiceRow>,
    /// Administrators also get the legacy protocols page.
    admin: bool,
    reveal: Option<Reveal>,
    error: Option<String>,
}

async fn render_console(
    state: &AppState,
    headers: &HeaderMap,
    authuser: usize,
    me: &SignedIn,
    status: StatusCode,
    reveal: Option<Reveal>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let ctx = &state.ctx;
    let mut projects = Vec::new();
    for project in tessera_domain::projects::owned_by(ctx, &me.account.id).await? {
        let clients = clients::list(ctx, &project.id)
            .await?
            .into_iter()
            .map(|it| ClientRow {
                id: it.record.client_id.clone(),
                name: it.record.name.clone(),
                kind: it.kind.as_str().to_owned(),
                redirect_uris: it.settings.redirect_uris.join("\n"),
                confidential: it.record.secret_digest.is_some(),
                service_account: it.kind == ClientKind::ServiceAccount,
                key_ids: it.settings.keys.iter().map(|key| key.kid.clone()).collect(),
                front_end: it.settings.proxy.as_ref().map(|app| {
                    let targets: Vec<String> = app
                        .targets
                        .iter()
                        .map(|t| format!("{} {}", t.prefix, t.scopes.join(" ")))
                        .collect();
                    (app.origins.join(" "), targets.join("\n"))
                }),
            })
            .collect();
        let branding = tessera_domain::projects::branding(ctx, &project.id).await?;
        let (product_name, homepage, support_email, logo_url) = branding
            .map(|it| (it.product_name, it.homepage, it.support_email, it.logo_url))
            .unwrap_or_default();
        let push_keys = tessera_domain::push::list_api_keys(ctx, &project.id)
            .await?
            .into_iter()
            .map(|it| PushKeyRow {
                id: it.id,
                name: it.name,
                created: render::datetime(it.created_at),
                last_used: it.last_used_at.map(render::datetime).unwrap_or_else(|| "never".into()),
            })
            .collect();
        projects.push(ProjectRow {
            push_keys,
            id: project.id,
            name: project.name,
            verified: project.verified,
            product_name,
            homepage,
            support_email,
            logo_url,
            clients,
        });
    }
    let services = match me.account.is_admin {
        true => tessera_domain::services::list(ctx)
            .await?
            .into_iter()
            .map(|it| ServiceRow {
                prefixes: tessera_domain::services::web_prefixes(&it).join("\n"),
                name: it.name,
                display_name: it.display_name,
                logout_url: it.logout_url,
                backchannel_logout_url: it.backchannel_logout_url,
            })
            .collect(),
        false => Vec::new(),
    };
    let (csrf, set) = csrf_for_page(state, headers);
    let page = ConsolePage {
        services,
        admin: me.account.is_admin,
        brand: &state.brand,
        csrf,
        authuser,
        email: me.account.email.clone(),
        projects,
        reveal,
        error,
    };
    Ok(with_cookies(render::page(status, &page), set))
}

fn sign_in(authuser: usize) -> Response {
    redirect(&format!("/accounts/ServiceLogin?continue=%2Fconsole%3Fauthuser%3D{authuser}"), false)
}

async fn console_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let query = forms::query(&uri)?;
    let accounts = signed_in(&state, &headers).await?;
    let Some((authuser, me)) = pick(&accounts, query.get("authuser")) else {
        return Ok(sign_in(0));
    };
    render_console(&state, &headers, authuser, &me, StatusCode::OK, None, None).await
}

/// CSRF, then the account the form was for.
async fn who(
    state: &AppState,
    headers: &HeaderMap,
    fields: &Fields,
) -> Result<Option<(usize, SignedIn)>, PageError> {
    check_csrf(state, headers, fields.get("csrf")).await?;
    let accounts = signed_in(state, headers).await?;
    Ok(pick(&accounts, fields.get("authuser")))
}

/// The result of a console action: back to the console, or the console with the problem shown.
async fn finish(
    state: &AppState,
    headers: &HeaderMap,
    (authuser, me): (usize, SignedIn),
    res: tessera_domain::Result<Option<Reveal>>,
) -> Result<Response, PageError> {
    match res {
        Ok(None) => Ok(redirect(&format!("/console?authuser={authuser}"), true)),
        Ok(Some(reveal)) => {
            render_console(state, headers, authuser, &me, StatusCode::OK, Some(reveal), None).await
        }
        Err(tessera_domain::Error::Invalid(text) | tessera_domain::Error::Conflict(text)) => {
            render_console(state, headers, authuser, &me, StatusCode::BAD_REQUEST, None, Some(text))
                .await
        }
        Err(err) => Err(err.into()),
    }
}

fn uris(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|it| !it.is_empty()).map(str::to_owned).collect()
}

async fn project_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let Some((authuser, me)) = who(&state, &headers, &fields).await? else { return Ok(sign_in(0)) };
    let res = tessera_domain::projects::create(
        &state.ctx,
        &fields.text("name"),
        &me.account.email,
        &Actor::Account,
    )
    .await
    .map(|_| None);
    finish(&state, &headers, (authuser, me), res).await
}

async fn branding_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let Some((authuser, me)) = who(&state, &headers, &fields).await? else { return Ok(sign_in(0)) };
    let ctx = &state.ctx;
    let res = async {
        let project =
            tessera_domain::projects::get_owned(ctx, &me.account.id, &fields.text("project"))
                .await?;
        tessera_domain::projects::set_branding(
            ctx,
            &project,
            &fields.text("product_name"),
            &fields.text("homepage"),
            &fields.text("support_email"),
            &fields.text("logo_url"),
            &Actor::Account,
        )
        .await?;
        Ok(None)
    }
    .await;
    finish(&state, &headers, (authuser, me), res).await
}

async fn client_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let Some((authuser, me)) = who(&state, &headers, &fields).await? else { return Ok(sign_in(0)) };
    let ctx = &state.ctx;
    let res = async {
        let project =
            tessera_domain::projects::get_owned(ctx, &me.account.id, &fields.text("project"))
                .await?;
        let kind = ClientKind::parse(&fields.text("kind"))
            .ok_or_else(|| tessera_domain::Error::Invalid("Choose a kind of client.".to_owned()))?;
        let new = NewClient {
            kind,
            name: fields.text("name"),
            redirect_uris: uris(&fields.text("redirect_uris")),
            android_package: fields.get("android_package").map(str::to_owned),
            android_cert_sha1: fields.get("android_cert_sha1").map(str::to_owned),
            allow_implicit: false,
            jwt_access_tokens: fields.get("jwt_access_tokens") == Some("on"),
        };
        let created = clients::create(ctx, &project, new, &Actor::Account).await?;
        Ok(created.secret.map(|secret| Reveal {
            label: "Client secret",
            client_id: created.client.record.client_id.clone(),
            value: secret,
        }))
    }
    .await;
    finish(&state, &headers, (authuser, me), res).await
}

async fn proxy_app_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let Some((authuser, me)) = who(&state, &headers, &fields).await? else { return Ok(sign_in(0)) };
    let ctx = &state.ctx;
    let res = async {
        let project =
            tessera_domain::projects::get_owned(ctx, &me.account.id, &fields.text("project"))
                .await?;
        let targets = uris(&fields.text("targets"))
            .iter()
            .map(|it| tessera_domain::proxy::parse_target(it))
            .collect::<tessera_domain::Result<Vec<_>>>()?;
        let new = tessera_domain::proxy::NewFrontEnd {
            name: fields.text("name"),
            origins: uris(&fields.text("origins")),
            targets,
        };
        tessera_domain::proxy::register(ctx, &project, new, &Actor::Account).await?;
        Ok(None)
    }
    .await;
    finish(&state, &headers, (authuser, me), res).await
}

async fn redirects_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let Some((authuser, me)) = who(&state, &headers, &fields).await? else { return Ok(sign_in(0)) };
    let ctx = &state.ctx;
    let res = async {
        let client = clients::load_owned(ctx, &me.account.id, &fields.text("client")).await?;
        clients::set_redirect_uris(
            ctx,
            client.id(),
            uris(&fields.text("redirect_uris")),
            &Actor::Account,
        )
        .await?;
        Ok(None)
    }
    .await;
    finish(&state, &headers, (authuser, me), res).await
}

async fn rotate_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let Some((authuser, me)) = who(&state, &headers, &fields).await? else { return Ok(sign_in(0)) };
    let ctx = &state.ctx;
    let res = async {
        let client = clients::load_owned(ctx, &me.account.id, &fields.text("client")).await?;
        let secret = clients::rotate_secret(ctx, client.id(), &Actor::Account).await?;
        Ok(Some(Reveal {
            label: "New client secret",
            client_id: client.id().to_owned(),
            value: secret,
        }))
    }
    .await;
    finish(&state, &headers, (authuser, me), res).await
}

async fn key_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let Some((authuser, me)) = who(&state, &headers, &fields).await? else { return Ok(sign_in(0)) };
    let ctx = &state.ctx;
    let res = async {
        let client = clients::load_owned(ctx, &me.account.id, &fields.text("client")).await?;
        let (kid, pem) = clients::add_key(ctx, client.id(), &Actor::Account).await?;
        Ok(Some(Reveal {
            label: "Private key",
            client_id: format!("{} (key {kid})", client.id()),
            value: pem,
        }))
    }
    .await;
    finish(&state, &headers, (authuser, me), res).await
}

/// Uploads (`…/keys/upload`) or removes (`…/keys/remove`) a service account's public key.
async fn key_change_post(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let Some((authuser, me)) = who(&state, &headers, &fields).await? else { return Ok(sign_in(0)) };
    let ctx = &state.ctx;
    let res = async {
        let client = clients::load_owned(ctx, &me.account.id, &fields.text("client")).await?;
        match uri.path().ends_with("/upload") {
            true => {
                clients::upload_key(ctx, client.id(), &fields.text("public_key"), &Actor::Account)
                    .await?;
            }
            false => {
                clients::remove_key(ctx, client.id(), &fields.text("kid"), &Actor::Account).await?
            }
        }
        Ok(None)
    }
    .await;
    finish(&state, &headers, (authuser, me), res).await
}

async fn delete_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let Some((authuser, me)) = who(&state, &headers, &fields).await? else { return Ok(sign_in(0)) };
    let ctx = &state.ctx;
    let res = async {
        let client = clients::load_owned(ctx, &me.account.id, &fields.text("client")).await?;
        clients::delete(ctx, client.id(), &Actor::Account).await?;
        Ok(None)
    }
    .await;
    finish(&state, &headers, (authuser, me), res).await
}

/// Sets a service's web sign-on (administrators only): the prefixes, one a line (none switches web
/// sign-on off), and the logout URLs (empty for none). The same domain function and checks as
/// `tessera admin service web`.
async fn service_web_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let Some((authuser, me)) = who(&state, &headers, &fields).await? else { return Ok(sign_in(0)) };
    if !me.account.is_admin {
        return Err(PageError::forbidden("Only administrators change how services sign in."));
    }
    let optional =
        |name: &str| Some(fields.text(name).trim().to_owned()).filter(|it| !it.is_empty());
    let web = tessera_domain::services::ServiceWeb {
        prefixes: uris(&fields.text("prefixes")),
        logout_url: optional("logout_url"),
        backchannel_logout_url: optional("backchannel_logout_url"),
    };
    let res = tessera_domain::services::set_web(
        &state.ctx,
        &fields.text("service"),
        web,
        &Actor::Account,
    )
    .await
    .map(|_| None);
    finish(&state, &headers, (authuser, me), res).await
}

/// Creates a push API key for one of the account's projects and shows it once.
async fn push_key_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let Some((authuser, me)) = who(&state, &headers, &fields).await? else { return Ok(sign_in(0)) };
    let ctx = &state.ctx;
    let res = async {
        let project =
            tessera_domain::projects::get_owned(ctx, &me.account.id, &fields.text("project"))
                .await?;
        let (info, key) = tessera_domain::push::create_api_key_by(
            ctx,
            &project.id,
            &fields.text("name"),
            &Actor::Account,
        )
        .await?;
        Ok(Some(Reveal {
            label: "Push API key",
            client_id: format!("{} (key {})", project.name, info.id),
            value: key,
        }))
    }
    .await;
    finish(&state, &headers, (authuser, me), res).await
}

/// Revokes one of a project's push API keys, named by its id.
async fn push_key_revoke_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let Some((authuser, me)) = who(&state, &headers, &fields).await? else { return Ok(sign_in(0)) };
    let ctx = &state.ctx;
    let res = async {
        let project =
            tessera_domain::projects::get_owned(ctx, &me.account.id, &fields.text("project"))
                .await?;
        let key = fields.text("key");
        if !tessera_domain::push::revoke_api_key_by_id(ctx, &project.id, &key, &Actor::Account)
            .await?
        {
            return Err(tessera_domain::Error::Invalid("No such API key.".to_owned()));
        }
        Ok(None)
    }
    .await;
    finish(&state, &headers, (authuser, me), res).await
}
