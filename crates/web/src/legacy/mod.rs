//! The legacy account protocols over HTTP: AuthSub (`authsub.rs`), ClientLogin with its unlock
//! page and help page (`clientlogin.rs`), and the JSON caller check resource servers ask
//! (`caller.rs`), and the administrators' AuthSub registration page (`registration.rs`).
//! The protocol endpoints answer under `/accounts/<Name>` and `/<Name>`.

mod authsub;
mod caller;
mod clientlogin;
mod registration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tessera_domain::caller::RequestFacts;

use crate::AppState;

/// Which legacy protocols a deployment serves (`[legacy]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Legacy {
    pub authsub: bool,
    pub clientlogin: bool,
}

impl Default for Legacy {
    fn default() -> Legacy {
        Legacy { authsub: true, clientlogin: true }
    }
}

pub(crate) fn router(legacy: Legacy) -> Router<AppState> {
    let mut router = caller::router();
    if legacy.authsub {
        router = router.merge(authsub::router()).merge(registration::router());
    }
    if legacy.clientlogin {
        router = router.merge(clientlogin::router());
    }
    router
}

/// A `text/plain; charset=UTF-8` protocol answer, optionally with a non-canonical reason phrase.
pub(crate) fn text(status: StatusCode, reason: Option<&'static str>, body: String) -> Response {
    let mut res = (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=UTF-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response();
    if let Some(reason) = reason {
        res.extensions_mut().insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
    }
    res
}

/// The method and the full URL the client addressed, as secure AuthSub signatures cover them:
/// this server's public scheme, host and port, and the request's path and query.
pub(crate) fn request_facts(
    state: &AppState,
    method: &http::Method,
    uri: &http::Uri,
) -> RequestFacts {
    let origin = match url::Url::parse(&state.ctx.public_url) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => state.ctx.public_url.to_string(),
    };
    let path = uri.path_and_query().map(|it| it.as_str()).unwrap_or("/");
    RequestFacts { method: method.as_str().to_owned(), url: format!("{origin}{path}") }
}

pub(crate) fn authorization(headers: &HeaderMap) -> &str {
    headers.get(header::AUTHORIZATION).and_then(|it| it.to_str().ok()).unwrap_or_default()
}
