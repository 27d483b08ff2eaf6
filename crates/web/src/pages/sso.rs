//! Web single sign-on: the service hop of `ServiceLogin` (`auth=` tokens), the back-end check a
//! service redeems them at (`ServiceAuthCheck`), `IssueAuthToken`, `TokenAuth`, `MergeSession`,
//! `OAuthLogin` (an ubertoken, or SID/LSID/Auth), and the sign-out notices of `Logout`. Served under `/accounts`
//! and at the root. Programmatic answers are ClientLogin-style text (`Error=<Code>` on `403`).

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tessera_domain::sessions::SignedIn;
use tessera_domain::sso::{self, LogoutNotice, Refusal, Target};
use tessera_proto_clientlogin::{self as wire, ErrorCode, ErrorExtras, error_body};

use super::{Client, redirect, with_cookies};
use crate::error::PageError;
use crate::legacy::text;
use crate::{AppState, render};

pub(crate) fn router() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ["/accounts", ""] {
        router = router
            .route(&format!("{prefix}/ServiceAuthCheck"), post(service_auth_check))
            .route(
                &format!("{prefix}/IssueAuthToken"),
                get(issue_auth_token).post(issue_auth_token),
            )
            .route(&format!("{prefix}/TokenAuth"), get(token_auth).post(token_auth))
            .route(&format!("{prefix}/MergeSession"), get(token_auth).post(token_auth))
            .route(&format!("{prefix}/OAuthLogin"), get(oauth_login).post(oauth_login));
    }
    router
}

/// The request's parameters: the query, and for a POST the urlencoded body first (the body wins
/// when both name one; the first of repeated names counts).
fn parameters(method: &Method, uri: &http::Uri, body: &[u8]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    if method == Method::POST {
        pairs = wire::urlencoded_pairs(body);
    }
    pairs.extend(wire::urlencoded_pairs(uri.query().unwrap_or_default().as_bytes()));
    pairs
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .filter(|it| !it.is_empty())
}

fn failure(code: ErrorCode) -> Response {
    text(StatusCode::FORBIDDEN, None, error_body(code, &ErrorExtras::default()))
}

fn refusal(refusal: &Refusal) -> Response {
    failure(match refusal {
        Refusal::BadAuthentication => ErrorCode::BadAuthentication,
        Refusal::ServiceDisabled => ErrorCode::ServiceDisabled,
        Refusal::Unknown | Refusal::BadContinue => ErrorCode::Unknown,
    })
}

/// A refusal of a browser step (`TokenAuth`, `MergeSession`): a person navigating (`Accept` names
/// `text/html`) gets a page saying what went wrong; a program gets the `Error=` body.
fn browser_refusal(headers: &HeaderMap, it: &Refusal) -> Response {
    let navigating = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|it| it.to_str().ok())
        .any(|it| it.contains("text/html"));
    if !navigating {
        return refusal(it);
    }
    let message = match it {
        Refusal::BadAuthentication => {
            "This sign-in link has already been used or has expired. Sign in again from the application or service that sent you here."
        }
        Refusal::ServiceDisabled => {
            "The service this sign-in link names does not take web sign-in."
        }
        Refusal::Unknown | Refusal::BadContinue => {
            "This sign-in link does not lead back to a registered service."
        }
    };
    axum::response::IntoResponse::into_response(PageError::forbidden(message))
}

fn unavailable(err: tessera_domain::Error, what: &str) -> Response {
    let mut res = failure(ErrorCode::ServiceUnavailable);
    res.extensions_mut().insert(crate::error::Internal(format!("{what}: {err:?}")));
    res
}

/// `ServiceLogin?service=…&continue=…` for a service with web sign-on, once the browser has the
/// accounts it needs: the account named by `authuser`, or the only one, goes back to the service
/// with a one-time `auth=` token; several accounts and no `authuser` show the chooser.
pub(crate) async fn service_hop(
    state: &AppState,
    accounts: &[SignedIn],
    target: &Target,
    authuser: Option<&str>,
) -> Result<Option<Response>, PageError> {
    let chosen = match (authuser, accounts.len()) {
        (Some(index), _) => super::pick(accounts, Some(index)).map(|(_, it)| it),
        (None, 1) => accounts.first().cloned(),
        _ => None,
    };
    match chosen {
        Some(it) => {
            let location = sso::issue_service_auth(&state.ctx, &it, target).await?;
            Ok(Some(redirect(&location, false)))
        }
        None => Ok(None),
    }
}

/// The `ServiceLogin` URL of this server that comes back to `target`.
pub(crate) fn service_login_url(
    state: &AppState,
    target: &Target,
    authuser: Option<usize>,
) -> String {
    let mut url = format!(
        "{}/accounts/ServiceLogin?service={}&continue={}",
        state.ctx.public_url,
        enc(&target.service.name),
        enc(&target.continue_url)
    );
    if let Some(index) = authuser {
        url.push_str(&format!("&authuser={index}"));
    }
    url
}

fn enc(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `POST ServiceAuthCheck` (`auth`, `service`, `continue`): a service's back end redeems the
/// `auth=` token it was sent, once. `200` lines `subject=`, `email=`, `name=`, `session=`,
/// `expires=`; else `403 Error=BadAuthentication`.
async fn service_auth_check(
    State(state): State<AppState>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Response {
    let pairs = parameters(&method, &uri, &body);
    let (Some(auth), Some(service), Some(continue_url)) =
        (param(&pairs, "auth"), param(&pairs, "service"), param(&pairs, "continue"))
    else {
        return failure(ErrorCode::BadAuthentication);
    };
    match sso::check_service_auth(&state.ctx, auth, service, continue_url).await {
        Ok(Ok(user)) => text(
            StatusCode::OK,
            None,
            format!(
                "subject={}\nemail={}\nname={}\nsession={}\nexpires={}\n",
                user.subject,
                user.email,
                user.name.replace(['\n', '\r'], " "),
                user.session,
                user.session_expires_at
            ),
        ),
        Ok(Err(it)) => refusal(&it),
        Err(err) => unavailable(err, "service auth check"),
    }
}

/// `IssueAuthToken` (`SID`, `LSID`, `service=gaia`): the bare ubertoken, no newline.
async fn issue_auth_token(
    State(state): State<AppState>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    Client(client): Client,
    body: Bytes,
) -> Response {
    let pairs = parameters(&method, &uri, &body);
    let (Some(sid), Some(lsid)) = (param(&pairs, "SID"), param(&pairs, "LSID")) else {
        return failure(ErrorCode::BadAuthentication);
    };
    let service = param(&pairs, "service").unwrap_or(sso::GAIA_SERVICE);
    let source = param(&pairs, "source").unwrap_or_default();
    match sso::issue_from_sid_lsid(&state.ctx, sid, lsid, service, source, &client.ip).await {
        Ok(Ok(token)) => text(StatusCode::OK, None, token),
        Ok(Err(it)) => refusal(&it),
        Err(err) => unavailable(err, "issue auth token"),
    }
}

/// `OAuthLogin` with `Authorization: Bearer <access token>` or `Authorization: OAuth <access
/// token>` (the one parser reads both; scope `<issuer>/accounts/OAuthLogin`): with
/// `issueuberauth=1` the bare ubertoken; otherwise ClientLogin's `SID=`, `LSID=` and `Auth=` lines
/// for `service` (a registered service that takes ClientLogin).
async fn oauth_login(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Client(client): Client,
    body: Bytes,
) -> Response {
    let pairs = parameters(&method, &uri, &body);
    let Some(tessera_domain::caller::Presented::Bearer(token)) = crate::caller::presented(&headers)
    else {
        return text(
            StatusCode::UNAUTHORIZED,
            None,
            error_body(ErrorCode::BadAuthentication, &ErrorExtras::default()),
        );
    };
    let source = param(&pairs, "source").unwrap_or_default();
    if param(&pairs, "issueuberauth") == Some("1") {
        return match sso::issue_from_access_token(&state.ctx, &token, source, &client.ip).await {
            Ok(Ok(token)) => text(StatusCode::OK, None, token),
            Ok(Err(it)) => refusal(&it),
            Err(err) => unavailable(err, "oauth login"),
        };
    }
    let service = param(&pairs, "service").unwrap_or(sso::GAIA_SERVICE);
    match sso::client_login_from_access_token(&state.ctx, &token, service, &client.ip).await {
        Ok(Ok(issued)) => {
            text(StatusCode::OK, None, wire::success_body(&issued.sid, &issued.lsid, &issued.auth))
        }
        Ok(Err(it)) => refusal(&it),
        Err(err) => unavailable(err, "oauth login"),
    }
}

/// `TokenAuth` (`auth`, `continue`, optional `service`) and `MergeSession` (`uberauth`, or
/// `args=service=…&continue=…`): redeems the ubertoken once into a browser session added to this
/// browser's accounts (every other token in the cookie rotated), then goes on to `continue` — with
/// a service hop (`auth=`) when `service` names a service with web sign-on.
async fn token_auth(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Client(client): Client,
    body: Bytes,
) -> Result<Response, PageError> {
    let mut pairs = parameters(&method, &uri, &body);
    if let Some(args) = param(&pairs, "args") {
        let extra = wire::urlencoded_pairs(args.as_bytes());
        pairs.extend(extra);
    }
    let Some(token) = param(&pairs, "uberauth").or_else(|| param(&pairs, "auth")) else {
        return Ok(browser_refusal(&headers, &Refusal::BadAuthentication));
    };
    let Some(continue_input) = param(&pairs, "continue") else {
        return Ok(browser_refusal(&headers, &Refusal::Unknown));
    };
    // Where the browser goes is checked before the token is used up.
    let target = match param(&pairs, "service") {
        Some(service) => match sso::target(&state.ctx, service, continue_input).await? {
            Ok(target) => Some(target),
            Err(Refusal::Unknown | Refusal::ServiceDisabled) => None,
            Err(it) => return Ok(browser_refusal(&headers, &it)),
        },
        None => None,
    };
    let plain = match &target {
        Some(_) => None,
        None => match tessera_domain::redirect::validate_continue(
            &state.ctx.public_url,
            &sso::continue_prefixes(&state.ctx, &state.continue_prefixes).await?,
            continue_input,
        ) {
            Some(url) => Some(url),
            None => return Ok(browser_refusal(&headers, &Refusal::BadContinue)),
        },
    };
    let (account, session_token, session) =
        match sso::sign_in_with_ubertoken(&state.ctx, token, &client).await? {
            Ok(it) => it,
            Err(it) => return Ok(browser_refusal(&headers, &it)),
        };
    let (set, index) =
        super::signin::join_browser(&state, &headers, &account, &session, &session_token).await?;
    let location = match (target, plain) {
        (Some(target), _) => {
            let it = SignedIn { token: session_token, session, account: account.clone() };
            sso::issue_service_auth(&state.ctx, &it, &target).await?
        }
        (None, Some(url)) => url,
        (None, None) => format!("{}/account", state.ctx.public_url),
    };
    let mut res = with_cookies(redirect(&location, method == Method::POST), set);
    super::signin::signin_header(&mut res, &account, index);
    Ok(res)
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage<'a> {
    brand: &'a str,
    images: Vec<String>,
    continue_url: String,
}

/// After a sign-out: back-channel notices are POSTed in the background (best effort, a few
/// seconds each, never holding up the answer); with front-channel notices the answer is a page
/// that loads each service's logout URL and then goes on to `continue`, else a plain redirect.
pub(crate) fn signed_out(state: &AppState, notices: Vec<LogoutNotice>, location: &str) -> Response {
    let back: Vec<(String, String)> = notices.iter().filter_map(|it| it.back.clone()).collect();
    if !back.is_empty() {
        tokio::spawn(notify_back_channel(back));
    }
    let images: Vec<String> = notices.into_iter().filter_map(|it| it.front).collect();
    if images.is_empty() {
        return redirect(location, false);
    }
    let origins: Vec<String> = images
        .iter()
        .filter_map(|it| url::Url::parse(it).ok())
        .map(|it| it.origin().ascii_serialization())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let page = SignedOutPage { brand: &state.brand, images, continue_url: location.to_owned() };
    let mut res = render::page(StatusCode::OK, &page);
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data: {}; base-uri 'none'; frame-ancestors 'none'",
        origins.join(" ")
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    res
}

/// How long one back-channel notice may take.
const BACK_CHANNEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn notify_back_channel(notices: Vec<(String, String)>) {
    let client = match reqwest::Client::builder()
        .timeout(BACK_CHANNEL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            tracing::warn!(target: "tessera::sso", "back-channel client: {err}");
            return;
        }
    };
    let sends = notices.into_iter().map(|(url, handle)| {
        let client = client.clone();
        async move {
            let sent = client.post(&url).form(&[("session", handle.as_str())]).send().await;
            if let Err(err) = sent.and_then(|it| it.error_for_status()) {
                let host = url::Url::parse(&url).ok().and_then(|it| it.host_str().map(str::to_owned));
                tracing::warn!(target: "tessera::sso", host = ?host, "back-channel logout failed: {}", err.without_url());
            }
        }
    });
    futures_join_all(sends).await;
}

/// Runs the notices concurrently.
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) {
    let mut set = tokio::task::JoinSet::new();
    for it in futures {
        set.spawn(it);
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn body_parameters_come_before_the_query() {
        let uri: http::Uri = "/TokenAuth?auth=q&continue=c".parse().unwrap();
        let pairs = parameters(&Method::POST, &uri, b"auth=b");
        assert_eq!(param(&pairs, "auth"), Some("b"));
        assert_eq!(param(&pairs, "continue"), Some("c"));
        let pairs = parameters(&Method::GET, &uri, b"auth=b");
        assert_eq!(param(&pairs, "auth"), Some("q"));
    }

    proptest! {
        #[test]
        fn parameters_never_panic(query in "[ -~]{0,80}", body in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(uri) = format!("/x?{}", query.replace(' ', "+")).parse::<http::Uri>() {
                let pairs = parameters(&Method::POST, &uri, &body);
                let _ = param(&pairs, "auth");
            }
        }
    }
}
