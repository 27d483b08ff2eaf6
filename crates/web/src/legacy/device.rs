//! Android device login: `POST /auth` (also `/accounts/auth`), form in, LF-terminated `Key=Value`
//! lines out; `GET /auth/passwd_key`, the published password-encryption key; and the web sign-in
//! page `GET /EmbeddedSetup` (also `/embedded/setup/android`), which ends by setting the one-time
//! `oauth_token` cookie a device exchanges with `ACCESS_TOKEN=1`. Clients read the body, not the
//! status; errors still carry `403` as Google's did, a consent request `200`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tessera_domain::device::{self, Input, Refusal};
use tessera_domain::interaction;
use tessera_proto_device::{self as wire, ErrorCode, ErrorExtras, error_body};

use super::text;
use crate::cookies::{self, Life};
use crate::error::PageError;
use crate::pages::consent::{self, ConsentForm, Next};
use crate::pages::lang::Lang;
use crate::pages::{Client, MessagePage, signed_in, with_cookies};
use crate::{AppState, forms, render};

/// The cookie the web sign-in page leaves for the device (the reference's name).
const SETUP_COOKIE: &str = "oauth_token";

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/auth", post(auth))
        .route("/accounts/auth", post(auth))
        .route("/auth/passwd_key", get(passwd_key))
        .route("/EmbeddedSetup", get(embedded_setup))
        .route("/embedded/setup/android", get(embedded_setup))
}

fn failure(code: ErrorCode, extras: ErrorExtras) -> Response {
    text(StatusCode::FORBIDDEN, None, error_body(code, &extras))
}

async fn auth(
    State(state): State<AppState>,
    Client(client): Client,
    body: Bytes,
) -> Result<Response, PageError> {
    let Ok(request) = wire::parse(&body) else {
        return Ok(failure(ErrorCode::BadRequest, ErrorExtras::default()));
    };
    let input = Input { request, ip: client.ip, secure: state.secure_cookies };
    let outcome = match device::auth(&state.ctx, input).await {
        Ok(outcome) => outcome,
        Err(err) => {
            let mut res = failure(ErrorCode::ServiceUnavailable, ErrorExtras::default());
            res.extensions_mut().insert(crate::error::Internal(format!("device: {err:?}")));
            return Ok(res);
        }
    };
    let public = &state.ctx.public_url;
    Ok(match outcome {
        Ok(answer) => text(StatusCode::OK, None, wire::body(&answer.lines)),
        Err(refusal) => {
            let (code, extras) = match refusal {
                Refusal::BadAuthentication => {
                    (ErrorCode::BadAuthentication, ErrorExtras::default())
                }
                Refusal::NeedsBrowser { url } => (
                    ErrorCode::NeedsBrowser,
                    ErrorExtras {
                        url: Some(url),
                        detail: Some(
                            "To access your account, you must sign in on the web. Touch Next to start \
                             browser sign-in."
                                .to_owned(),
                        ),
                        ..ErrorExtras::default()
                    },
                ),
                Refusal::CaptchaRequired { token } => (
                    ErrorCode::CaptchaRequired,
                    ErrorExtras {
                        url: Some(format!("{public}/accounts/DisplayUnlockCaptcha")),
                        captcha: Some((token.clone(), format!("Captcha?ctoken={token}"))),
                        ..ErrorExtras::default()
                    },
                ),
                Refusal::NotVerified => (ErrorCode::NotVerified, ErrorExtras::default()),
                Refusal::TermsNotAgreed => (ErrorCode::TermsNotAgreed, ErrorExtras::default()),
                Refusal::AccountDeleted => (ErrorCode::AccountDeleted, ErrorExtras::default()),
                Refusal::AccountDisabled => (ErrorCode::AccountDisabled, ErrorExtras::default()),
                Refusal::ServiceDisabled => (ErrorCode::ServiceDisabled, ErrorExtras::default()),
                Refusal::BadRequest => (ErrorCode::BadRequest, ErrorExtras::default()),
                Refusal::InvalidScope => (ErrorCode::InvalidScope, ErrorExtras::default()),
                Refusal::InvalidAudience => (ErrorCode::InvalidAudience, ErrorExtras::default()),
                Refusal::Unregistered => {
                    (ErrorCode::UnregisteredOnApiConsole, ErrorExtras::default())
                }
            };
            failure(code, extras)
        }
    })
}

async fn passwd_key(State(state): State<AppState>) -> Result<Response, PageError> {
    let key = device::published_key(&state.ctx).await?;
    Ok(text(StatusCode::OK, None, format!("{key}\n")))
}

/// The web sign-in for a device (§1.13): the one interaction flow signs the person in (sign-in
/// page, account chooser, 2-step, CAPTCHA; a password entered within the re-authentication
/// window), then the page sets `oauth_token`, which the device reads from its web view and
/// exchanges once at `/auth` with `ACCESS_TOKEN=1`. The cookie is `HttpOnly` (no page script
/// reads it; the device's web view does), `Secure` on https, `Path=/`, and lives as long as the
/// token ([`device::SETUP_TOKEN_TTL_SECS`]); the page is not cached.
async fn embedded_setup(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let query = forms::query(&uri)?;
    let here = super::public_here(&state, &uri);
    let accounts = signed_in(&state, &headers).await?;
    let request = device::setup_request(&state.ctx, query.get("authuser").map(str::to_owned));
    let step = interaction::start(&state.ctx, &request, &accounts, &client.ip).await?;
    let form = ConsentForm {
        action: "/EmbeddedSetup",
        hidden: Vec::new(),
        compact: true,
        lang: Lang::of(&request.asks),
    };
    let approved = match consent::person_step(&state, &headers, step, &here, false, form)? {
        Next::Shown(response) => return Ok(response),
        Next::Approved(approved) => approved,
        Next::Refused => return Err(tessera_domain::Error::Forbidden.into()),
    };
    let token =
        device::issue_setup_token(&state.ctx, &approved.signed.account.id, &approved.grant.id)
            .await?;
    let page = MessagePage {
        brand: &state.brand,
        heading: "Your device is signing in",
        message: format!(
            "You signed in as {}. Your device finishes signing in now; you can close this page.",
            approved.signed.account.email
        ),
        link: "/account".to_owned(),
        link_text: "Go to your account",
    };
    let cookie = cookies::set(
        SETUP_COOKIE,
        &token,
        Life::Seconds(device::SETUP_TOKEN_TTL_SECS),
        state.secure_cookies,
    );
    let mut res = with_cookies(render::page(StatusCode::OK, &page), [cookie]);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
