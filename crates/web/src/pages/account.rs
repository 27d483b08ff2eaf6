//! The account page: profile, password, 2-step verification, app passwords, connected apps,
//! devices, sessions ("sign out everywhere") and recent security events, for the account chosen
//! by `authuser`.

use askama::Template;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use tessera_domain::audit::Actor;
use tessera_domain::password::Confirmed;
use tessera_domain::sessions::SignedIn;

use super::{Client, check_csrf, csrf_for_page, pick, redirect, signed_in, with_cookies};
use crate::error::PageError;
use crate::forms::{self, Fields, Form};
use crate::{AppState, render};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(account_get))
        .route("/account/profile", post(profile_post))
        .route("/account/password", post(password_post))
        .route("/account/2sv/start", post(totp_start_post))
        .route("/account/2sv/confirm", post(totp_confirm_post))
        .route("/account/2sv/disable", post(totp_disable_post))
        .route("/account/app-passwords", post(app_password_post))
        .route("/account/app-passwords/revoke", post(app_password_revoke_post))
        .route("/account/sessions/revoke", post(session_revoke_post))
        .route("/account/apps/revoke", post(app_revoke_post))
        .route("/account/devices/revoke", post(device_revoke_post))
        .route("/account/signout-everywhere", post(sign_out_everywhere_post))
}

struct OtherAccount {
    index: usize,
    email: String,
}

struct AppPasswordRow {
    id: String,
    name: String,
    created: String,
    last_used: String,
}

struct AppRow {
    id: String,
    name: String,
    registered: bool,
    scopes: String,
    protocol: String,
    created: String,
    last_used: String,
}

struct DeviceRow {
    id: String,
    android_id: String,
    /// Country, language and SDK level as the device sent them at sign-in, when it did.
    details: String,
    first: String,
    last_used: String,
}

struct SessionRow {
    id: String,
    created: String,
    last_seen: String,
    ip: String,
    user_agent: String,
    current: bool,
}

struct EventRow {
    at: String,
    text: String,
    ip: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    brand: &'a str,
    csrf: String,
    authuser: usize,
    email: String,
    name: String,
    domain: Option<String>,
    others: Vec<OtherAccount>,
    notice: Option<&'static str>,
    error: Option<String>,
    totp_on: bool,
    app_passwords: Vec<AppPasswordRow>,
    apps: Vec<AppRow>,
    devices: Vec<DeviceRow>,
    sessions: Vec<SessionRow>,
    events: Vec<EventRow>,
}

#[derive(Template)]
#[template(path = "totp_setup.html")]
struct TotpSetupPage<'a> {
    brand: &'a str,
    csrf: String,
    authuser: usize,
    qr_svg: String,
    secret: String,
    sealed: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "app_password.html")]
struct AppPasswordPage<'a> {
    brand: &'a str,
    authuser: usize,
    name: String,
    password: String,
}

/// The signed-in account chosen by `authuser`, or a redirect to sign in.
async fn current(
    state: &AppState,
    headers: &HeaderMap,
    authuser: Option<&str>,
) -> Result<Result<(usize, SignedIn, Vec<SignedIn>), Response>, PageError> {
    let accounts = signed_in(state, headers).await?;
    match pick(&accounts, authuser) {
        Some((index, it)) => Ok(Ok((index, it, accounts))),
        None => Ok(Err(redirect("/accounts/ServiceLogin?continue=%2Faccount", false))),
    }
}

fn notice_text(code: Option<&str>) -> Option<&'static str> {
    match code? {
        "profile" => Some("Your profile was saved."),
        "password" => Some("Your password was changed. Other sessions were signed out."),
        "2sv-on" => Some("2-step verification is on."),
        "2sv-off" => Some("2-step verification is off."),
        "asp-revoked" => Some("The app password was revoked."),
        "session-revoked" => Some("That session was signed out."),
        "app-revoked" => Some("The app no longer has access to your account."),
        "device-revoked" => Some("That device was signed out."),
        _ => None,
    }
}

fn event_text(event: &str) -> String {
    match event {
        "signin.success" => "Signed in",
        "signin.failure" => "Failed sign-in attempt",
        "clientlogin.failure" => "Failed sign-in attempt from an installed app",
        "reauth.failure" => "Wrong password entered to confirm a change",
        "signout" => "Signed out",
        "password.change" => "Password changed",
        "2sv.enable" => "2-step verification turned on",
        "2sv.disable" => "2-step verification turned off",
        "app_password.create" => "App password created",
        "app_password.revoke" => "App password revoked",
        "session.revoke" => "Session signed out",
        "profile.change" => "Profile changed",
        "grant.create" => "Access given to an app",
        "grant.revoke" => "Access removed from an app",
        "device.login" => "A device signed in",
        "signout.everywhere" => "Signed out everywhere",
        "account.create" => "Account created",
        other => other,
    }
    .to_owned()
}

async fn account_page(
    state: &AppState,
    headers: &HeaderMap,
    index: usize,
    me: &SignedIn,
    all: &[SignedIn],
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let ctx = &state.ctx;
    let account = tessera_domain::accounts::get(ctx, &me.account.id).await?;
    let app_passwords = tessera_domain::app_passwords::list(ctx, &account.id)
        .await?
        .into_iter()
        .map(|it| AppPasswordRow {
            id: it.id,
            name: it.name,
            created: render::datetime(it.created_at),
            last_used: it.last_used_at.map(render::datetime).unwrap_or_else(|| "never".to_owned()),
        })
        .collect();
    let apps = tessera_domain::grants::connected(ctx, &account.id)
        .await?
        .into_iter()
        .map(|it| AppRow {
            id: it.grant.id.clone(),
            name: it.name,
            registered: it.registered,
            scopes: it.grant.scopes.replace(' ', ", "),
            protocol: it.grant.protocol.clone(),
            created: render::datetime(it.grant.created_at),
            last_used: it
                .grant
                .last_used_at
                .map(render::datetime)
                .unwrap_or_else(|| "never".to_owned()),
        })
        .collect();
    let devices = tessera_domain::device::devices(ctx, &account.id)
        .await?
        .into_iter()
        .map(|it| {
            let details = [
                ("country", it.country.as_str()),
                ("language", it.lang.as_str()),
                ("Android SDK", it.sdk_version.as_str()),
            ]
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| format!("{name} {value}"))
            .collect::<Vec<_>>()
            .join(", ");
            DeviceRow {
                id: it.grant_id,
                android_id: it.android_id,
                details,
                first: render::datetime(it.first_used),
                last_used: it.last_used.map(render::datetime).unwrap_or_else(|| "never".to_owned()),
            }
        })
        .collect();
    let sessions = tessera_domain::sessions::list_for_account(ctx, &account.id)
        .await?
        .into_iter()
        .map(|it| SessionRow {
            current: it.id == me.session.id,
            created: render::datetime(it.created_at),
            last_seen: render::datetime(it.last_seen_at),
            ip: it.ip,
            user_agent: it.user_agent,
            id: it.id,
        })
        .collect();
    let events = tessera_domain::audit::list(ctx, Some(&account.id), None, 20)
        .await?
        .into_iter()
        .map(|it| EventRow { at: render::datetime(it.at), text: event_text(&it.event), ip: it.ip })
        .collect();
    let others = all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(i, it)| OtherAccount { index: i, email: it.account.email.clone() })
        .collect();
    let (csrf, set_cookie) = csrf_for_page(state, headers);
    let page = AccountPage {
        brand: &state.brand,
        csrf,
        authuser: index,
        email: account.email.clone(),
        name: account.name.clone(),
        domain: account.domain.clone(),
        others,
        notice,
        error: error.clone(),
        totp_on: account.totp_secret_enc.is_some(),
        app_passwords,
        apps,
        devices,
        sessions,
        events,
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok(with_cookies(render::page(status, &page), set_cookie))
}

async fn account_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let query = forms::query(&uri)?;
    let (index, me, all) = match current(&state, &headers, query.get("authuser")).await? {
        Ok(it) => it,
        Err(res) => return Ok(res),
    };
    account_page(&state, &headers, index, &me, &all, notice_text(query.get("done")), None).await
}

/// A POST from the account page: the CSRF token checked, the acting account picked by `authuser`.
/// A browser that is not signed in is sent to sign in instead.
struct AccountForm {
    index: usize,
    me: SignedIn,
    all: Vec<SignedIn>,
    fields: Fields,
    client: tessera_domain::sessions::ClientInfo,
    headers: HeaderMap,
}

impl FromRequest<AppState> for AccountForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<AccountForm, Response> {
        let (mut parts, body) = req.into_parts();
        let Ok(Client(client)) = Client::from_request_parts(&mut parts, state).await;
        let headers = parts.headers.clone();
        let Form(fields) = Form::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        check_csrf(state, &headers, fields.get("csrf"))
            .await
            .map_err(IntoResponse::into_response)?;
        match current(state, &headers, fields.get("authuser"))
            .await
            .map_err(IntoResponse::into_response)?
        {
            Ok((index, me, all)) => Ok(AccountForm { index, me, all, fields, client, headers }),
            Err(res) => Err(res),
        }
    }
}

fn done(index: usize, code: &str) -> Response {
    redirect(&format!("/account?authuser={index}&done={code}"), true)
}

/// After a domain action: back to the account page with a notice, or the page again with the
/// action's `Invalid` message, or an error page.
async fn or_show(
    state: &AppState,
    form: &AccountForm,
    res: tessera_domain::Result<()>,
    code: &str,
) -> Result<Response, PageError> {
    match res {
        Ok(()) => Ok(done(form.index, code)),
        Err(tessera_domain::Error::Invalid(message)) => {
            account_page(state, &form.headers, form.index, &form.me, &form.all, None, Some(message))
                .await
        }
        Err(err) => Err(err.into()),
    }
}

/// Sensitive changes (app passwords, 2-step settings) need the password entered in the last few
/// minutes, or again now in the form's `confirm` field.
async fn recent_password(state: &AppState, form: &AccountForm) -> tessera_domain::Result<()> {
    tessera_domain::password::confirm_recent(
        &state.ctx,
        &form.me.session,
        &form.me.account,
        form.fields.get("confirm").unwrap_or_default(),
        &form.client.ip,
    )
    .await
}

async fn profile_post(
    State(state): State<AppState>,
    form: AccountForm,
) -> Result<Response, PageError> {
    let res = tessera_domain::accounts::set_name(
        &state.ctx,
        &form.me.account,
        &form.fields.text("name"),
        &Actor::Account,
        &form.client.ip,
    )
    .await;
    or_show(&state, &form, res, "profile").await
}

async fn password_post(
    State(state): State<AppState>,
    form: AccountForm,
) -> Result<Response, PageError> {
    let ctx = &state.ctx;
    let account = tessera_domain::accounts::get(ctx, &form.me.account.id).await?;
    let res = match tessera_domain::password::confirm(
        ctx,
        &account,
        &form.fields.text("current"),
        &form.client.ip,
    )
    .await?
    {
        Confirmed::Wrong => {
            Err(tessera_domain::Error::Invalid("Your current password is not right.".to_owned()))
        }
        Confirmed::Throttled => Err(tessera_domain::Error::Invalid(
            "Too many wrong passwords. Try again later.".to_owned(),
        )),
        Confirmed::Yes => {
            let keep = Some(form.me.session.id.as_str());
            tessera_domain::accounts::set_password(
                ctx,
                &account,
                form.fields.text("new"),
                keep,
                form.fields.get("remove_apps") == Some("1"),
                &Actor::Account,
                &form.client.ip,
            )
            .await
        }
    };
    or_show(&state, &form, res, "password").await
}

async fn totp_start_post(
    State(state): State<AppState>,
    form: AccountForm,
) -> Result<Response, PageError> {
    if let Err(err) = recent_password(&state, &form).await {
        return or_show(&state, &form, Err(err), "").await;
    }
    let enrollment = tessera_domain::totp::start(&state.ctx, &form.me.account, &state.brand)?;
    totp_page(&state, &form.headers, form.index, enrollment, None)
}

fn totp_page(
    state: &AppState,
    headers: &HeaderMap,
    index: usize,
    enrollment: tessera_domain::totp::Enrollment,
    error: Option<String>,
) -> Result<Response, PageError> {
    let (csrf, set_cookie) = csrf_for_page(state, headers);
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = TotpSetupPage {
        brand: &state.brand,
        csrf,
        authuser: index,
        qr_svg: enrollment.qr_svg,
        secret: enrollment.secret_base32,
        sealed: enrollment.sealed,
        error,
    };
    Ok(with_cookies(render::page(status, &page), set_cookie))
}

async fn totp_confirm_post(
    State(state): State<AppState>,
    form: AccountForm,
) -> Result<Response, PageError> {
    let sealed = form.fields.text("sealed");
    match tessera_domain::totp::confirm(
        &state.ctx,
        &form.me.account,
        &sealed,
        &form.fields.text("code"),
        &form.client.ip,
    )
    .await
    {
        Ok(()) => Ok(done(form.index, "2sv-on")),
        Err(tessera_domain::Error::Invalid(message)) => {
            // Show the same secret again so the person can retry with the next code.
            let Ok(again) =
                tessera_domain::totp::reopen(&state.ctx, &form.me.account, &sealed, &state.brand)
            else {
                return Err(PageError::bad_request("Start the setup again."));
            };
            totp_page(&state, &form.headers, form.index, again, Some(message))
        }
        Err(err) => Err(err.into()),
    }
}

async fn totp_disable_post(
    State(state): State<AppState>,
    form: AccountForm,
) -> Result<Response, PageError> {
    if let Err(err) = recent_password(&state, &form).await {
        return or_show(&state, &form, Err(err), "").await;
    }
    let res = tessera_domain::totp::disable(
        &state.ctx,
        &form.me.account,
        &Actor::Account,
        &form.client.ip,
    )
    .await;
    or_show(&state, &form, res, "2sv-off").await
}

async fn app_password_post(
    State(state): State<AppState>,
    form: AccountForm,
) -> Result<Response, PageError> {
    if let Err(err) = recent_password(&state, &form).await {
        return or_show(&state, &form, Err(err), "").await;
    }
    let name = form.fields.text("name");
    match tessera_domain::app_passwords::create(
        &state.ctx,
        &form.me.account,
        &name,
        &form.client.ip,
    )
    .await
    {
        Ok(password) => {
            let page = AppPasswordPage {
                brand: &state.brand,
                authuser: form.index,
                name: name.trim().to_owned(),
                password,
            };
            Ok(render::page(StatusCode::OK, &page))
        }
        Err(err) => or_show(&state, &form, Err(err), "").await,
    }
}

async fn app_password_revoke_post(
    State(state): State<AppState>,
    form: AccountForm,
) -> Result<Response, PageError> {
    let res = tessera_domain::app_passwords::revoke(
        &state.ctx,
        &form.me.account.id,
        &form.fields.text("id"),
        &form.client.ip,
    )
    .await;
    or_show(&state, &form, res, "asp-revoked").await
}

async fn session_revoke_post(
    State(state): State<AppState>,
    form: AccountForm,
) -> Result<Response, PageError> {
    let res = tessera_domain::sessions::revoke(
        &state.ctx,
        &form.me.account.id,
        &form.fields.text("id"),
        &Actor::Account,
        &form.client.ip,
    )
    .await;
    or_show(&state, &form, res, "session-revoked").await
}

async fn app_revoke_post(
    State(state): State<AppState>,
    form: AccountForm,
) -> Result<Response, PageError> {
    let res = tessera_domain::grants::revoke(
        &state.ctx,
        &form.me.account.id,
        &form.fields.text("grant"),
        &Actor::Account,
        &form.client.ip,
    )
    .await;
    or_show(&state, &form, res, "app-revoked").await
}

async fn device_revoke_post(
    State(state): State<AppState>,
    form: AccountForm,
) -> Result<Response, PageError> {
    let res = tessera_domain::device::revoke(
        &state.ctx,
        &form.me.account.id,
        &form.fields.text("device"),
        &form.client.ip,
    )
    .await;
    or_show(&state, &form, res, "device-revoked").await
}

/// "Sign out everywhere", once the password is confirmed (entered in the last few minutes, or in
/// the form now). This browser's session ends too: the person lands on the sign-in page.
async fn sign_out_everywhere_post(
    State(state): State<AppState>,
    form: AccountForm,
) -> Result<Response, PageError> {
    if let Err(err) = recent_password(&state, &form).await {
        return or_show(&state, &form, Err(err), "").await;
    }
    tessera_domain::accounts::sign_out_everywhere(
        &state.ctx,
        &form.me.account,
        form.fields.get("remove_apps") == Some("1"),
        &Actor::Account,
        &form.client.ip,
    )
    .await?;
    Ok(redirect("/accounts/ServiceLogin?continue=%2Faccount", true))
}
