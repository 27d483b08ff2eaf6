//! Android device login: `POST /auth` (also `/accounts/auth`), form in, LF-terminated `Key=Value`
//! lines out, and `GET /auth/passwd_key`, the published password-encryption key. Clients read the
//! body, not the status; errors still carry `403` as Google's did, a consent request `200`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use http::StatusCode;
use tessera_domain::device::{self, Input, Refusal};
use tessera_proto_device::{self as wire, ErrorCode, ErrorExtras, error_body};

use super::text;
use crate::AppState;
use crate::error::PageError;
use crate::pages::Client;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/auth", post(auth))
        .route("/accounts/auth", post(auth))
        .route("/auth/passwd_key", get(passwd_key))
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
                            "To access your account, you must sign in on the web and create an \
                             app password."
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
                Refusal::ServiceUnavailable => {
                    (ErrorCode::ServiceUnavailable, ErrorExtras::default())
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
