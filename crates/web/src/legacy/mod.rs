//! The legacy account protocols over HTTP: AuthSub (`authsub.rs`), ClientLogin with its unlock
//! page and help page (`clientlogin.rs`), OAuth 1.0a (`oauth1.rs`), the OpenID 2.0 provider
//! (`openid2.rs`), Android device login (`device.rs`), the JSON caller check resource servers
//! ask (`caller.rs`), and the administrators' registration page (`registration.rs`).
//! The protocol endpoints answer under `/accounts/<Name>` and `/<Name>`.

mod authsub;
mod caller;
mod clientlogin;
mod deprecation;
mod device;
mod oauth1;
mod openid2;
mod registration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tessera_domain::caller::RequestFacts;

use crate::AppState;

/// A request read as OAuth 1.0 signed (the token endpoint's OAuth 1.0 migration grant).
pub(crate) use oauth1::incoming as oauth1_incoming;

/// Which legacy protocols a deployment serves (`[legacy]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Legacy {
    pub authsub: bool,
    pub clientlogin: bool,
    pub oauth1: bool,
    pub openid2: bool,
    /// Android device login (`[device] enabled`).
    pub device: bool,
}

impl Default for Legacy {
    fn default() -> Legacy {
        Legacy { authsub: true, clientlogin: true, oauth1: true, openid2: true, device: true }
    }
}

/// The default migration page warned and refused legacy answers link to (`[legacy]
/// migration_url` points elsewhere when set).
async fn migration_page() -> Response {
    text(
        StatusCode::OK,
        None,
        "Moving off AuthSub, ClientLogin, OAuth 1.0 and OpenID 2.0\n\n\
         Applications exchange each legacy credential they hold, once, for an OAuth 2.0 refresh\n\
         token at the token endpoint (/o/oauth2/token), without asking people again:\n\n\
         grant_type=urn:ietf:params:oauth:grant-type:migration:oauth1 (the request signed with\n\
         OAuth 1.0 by the consumer with the access token), or\n\
         grant_type=urn:tessera:params:oauth:grant-type:migration:legacy with legacy_token=<an\n\
         AuthSub session token or ClientLogin Auth token>,\n\n\
         authenticated as a web OAuth 2.0 client of the legacy registration's project\n\
         (client_id and client_secret in the body). Sign-in moves to OpenID Connect.\n"
            .to_owned(),
    )
}

pub(crate) fn router(legacy: Legacy) -> Router<AppState> {
    let mut router =
        caller::router().route("/accounts/LegacyMigration", axum::routing::get(migration_page));
    if legacy.authsub {
        router = router.merge(authsub::router()).merge(registration::router());
    }
    if legacy.clientlogin {
        router = router.merge(clientlogin::router());
    }
    if legacy.oauth1 {
        router = router.merge(oauth1::router());
    }
    if legacy.openid2 {
        router = router.merge(openid2::router());
    }
    if legacy.device {
        router = router.merge(device::router());
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

/// This request's address under the public URL: where a browser step comes back to after sign-in.
pub(crate) fn public_here(state: &AppState, uri: &http::Uri) -> String {
    let path = uri.path_and_query().map(|it| it.as_str()).unwrap_or("/");
    format!("{}{path}", state.ctx.public_url)
}

/// The method and the full URL the client addressed, as secure AuthSub signatures cover them:
/// this server's public scheme, the authority the client named (absolute-form target, else the
/// `Host` header, else the public host: clients hard-coded to another host name reach us by DNS),
/// and the request's path and query.
pub(crate) fn request_facts(
    state: &AppState,
    method: &http::Method,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> RequestFacts {
    let public = url::Url::parse(&state.ctx.public_url).ok();
    let scheme =
        public.as_ref().map(|it| it.scheme().to_owned()).unwrap_or_else(|| "http".to_owned());
    let public_host = public
        .as_ref()
        .map(|it| it.origin().ascii_serialization())
        .and_then(|origin| origin.split_once("://").map(|(_, host)| host.to_owned()))
        .unwrap_or_default();
    let host = uri
        .authority()
        .map(|it| it.as_str().to_owned())
        .or_else(|| headers.get(header::HOST).and_then(|it| it.to_str().ok()).map(str::to_owned))
        .filter(|it| !it.is_empty() && !it.contains(['/', ' ', '@']))
        .unwrap_or(public_host);
    let path = uri.path_and_query().map(|it| it.as_str()).unwrap_or("/");
    RequestFacts {
        method: method.as_str().to_owned(),
        url: format!("{scheme}://{host}{path}"),
        dpop_proof: crate::caller::dpop_proof(headers).ok().flatten(),
        form: Vec::new(),
    }
}

pub(crate) fn authorization(headers: &HeaderMap) -> &str {
    crate::caller::authorization(headers).unwrap_or_default()
}
