//! Web single sign-on for a relying service: a `tower::Layer` that sends anonymous browsers to
//! tessera's `ServiceLogin`, redeems the one-time `auth=` token they come back with (once, at
//! `ServiceAuthCheck`), keeps a session cookie of the service's own, hands handlers the signed-in
//! [`SsoUser`], and ends sessions when tessera says so (front channel: a `GET` of the logout path
//! with `session=`; back channel: a `POST` of `session=` to the back-channel path). Sessions live in
//! an [`SsoSessionStore`]: in memory by default, or the service's own.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use tower::{Layer, Service};

/// How the service is registered at tessera and where it lives.
#[derive(Debug, Clone)]
pub struct SsoConfig {
    /// tessera's public URL (`https://accounts.example`).
    pub accounts_url: String,
    /// The service name registered at tessera.
    pub service: String,
    /// This service's public origin (`https://feeds.example`), under a registered web prefix.
    pub public_url: String,
    /// The service's session cookie.
    pub cookie_name: String,
    /// Front-channel logout path (registered as the service's logout URL).
    pub logout_path: String,
    /// Back-channel logout path (registered as its back-channel logout URL).
    pub backchannel_path: String,
}

impl SsoConfig {
    /// Defaults: cookie `SSOSID`, logout paths `/sso/logout` and `/sso/backchannel`.
    pub fn new(accounts_url: &str, service: &str, public_url: &str) -> SsoConfig {
        SsoConfig {
            accounts_url: accounts_url.trim_end_matches('/').to_owned(),
            service: service.to_owned(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            cookie_name: "SSOSID".to_owned(),
            logout_path: "/sso/logout".to_owned(),
            backchannel_path: "/sso/backchannel".to_owned(),
        }
    }

    fn secure(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// The signed-in account, in the request extensions of every request the layer lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoUser {
    /// The account's stable identifier.
    pub subject: String,
    /// Its email address.
    pub email: String,
    /// Its display name.
    pub name: String,
    /// tessera's handle of the browser session; sign-outs name it.
    pub session: String,
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// tessera answered with this `Error=` code.
    #[error("tessera refused the token: {0}")]
    Refused(String),
    /// tessera could not be reached.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
}

/// What a session store answers: its own failure (the layer then answers `503`).
pub type StoreResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;
/// The future a session store's methods return.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'a>>;

/// Where [`SsoLayer`] keeps the service's sessions. [`MemorySessions`] (the default) keeps them in
/// the process's memory, so a restart signs everyone out of the service and two instances behind
/// one host name do not share them; a service that needs either implements this over its own
/// database and passes it to [`SsoLayer::with_store`].
///
/// Sessions are keyed by the SHA-256 digest of the session cookie (base64url), never by the cookie
/// itself, so a copy of the store signs nobody in.
pub trait SsoSessionStore: std::fmt::Debug + Send + Sync + 'static {
    /// Keeps `user` under `key`.
    fn insert<'a>(&'a self, key: &'a str, user: &'a SsoUser) -> StoreFuture<'a, ()>;
    /// The user kept under `key`, if any.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<SsoUser>>;
    /// Ends every session whose tessera handle ([`SsoUser::session`]) is `handle` (a sign-out).
    fn end_handle<'a>(&'a self, handle: &'a str) -> StoreFuture<'a, ()>;
}

/// The in-memory [`SsoSessionStore`].
#[derive(Debug, Default)]
pub struct MemorySessions {
    sessions: Mutex<HashMap<String, SsoUser>>,
}

impl SsoSessionStore for MemorySessions {
    fn insert<'a>(&'a self, key: &'a str, user: &'a SsoUser) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.sessions.lock().map_err(|_| "poisoned")?.insert(key.to_owned(), user.clone());
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<SsoUser>> {
        Box::pin(async move { Ok(self.sessions.lock().map_err(|_| "poisoned")?.get(key).cloned()) })
    }

    fn end_handle<'a>(&'a self, handle: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.sessions.lock().map_err(|_| "poisoned")?.retain(|_, user| user.session != handle);
            Ok(())
        })
    }
}

/// The store key of a session cookie value.
fn session_key(cookie: &str) -> String {
    use base64::Engine as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cookie.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

#[derive(Debug)]
struct Shared {
    config: SsoConfig,
    http: reqwest::Client,
    sessions: Arc<dyn SsoSessionStore>,
}

impl Shared {
    /// Redeems `auth` (received at `at`, the full URL) at tessera.
    async fn redeem(&self, auth: &str, at: &str) -> Result<SsoUser, SsoError> {
        let url = format!("{}/accounts/ServiceAuthCheck", self.config.accounts_url);
        let form = [("auth", auth), ("service", self.config.service.as_str()), ("continue", at)];
        let res = self.http.post(url).form(&form).send().await?;
        let ok = res.status().is_success();
        let body = res.text().await?;
        let get = |key: &str| {
            body.lines()
                .find_map(|it| it.strip_prefix(key).and_then(|it| it.strip_prefix('=')))
                .unwrap_or_default()
                .to_owned()
        };
        if !ok {
            return Err(SsoError::Refused(get("Error")));
        }
        Ok(SsoUser {
            subject: get("subject"),
            email: get("email"),
            name: get("name"),
            session: get("session"),
        })
    }

    async fn end_session(&self, handle: &str) -> StoreResult<()> {
        if handle.is_empty() {
            return Ok(());
        }
        self.sessions.end_handle(handle).await
    }

    async fn user(&self, headers: &HeaderMap) -> StoreResult<Option<SsoUser>> {
        let Some(value) = cookie(headers, &self.config.cookie_name) else { return Ok(None) };
        self.sessions.get(&session_key(value)).await
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|it| it.to_str().ok())
        .flat_map(|it| it.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn random_token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    // The OS generator; a failure leaves no usable session rather than a weak one.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Requires a signed-in browser on every request of the wrapped service.
#[derive(Debug, Clone)]
pub struct SsoLayer {
    shared: Arc<Shared>,
}

impl SsoLayer {
    /// A layer for the service `config` describes, keeping its sessions in memory.
    pub fn new(config: SsoConfig) -> SsoLayer {
        SsoLayer::with_store(config, Arc::new(MemorySessions::default()))
    }

    /// A layer keeping its sessions in `store`.
    pub fn with_store(config: SsoConfig, store: Arc<dyn SsoSessionStore>) -> SsoLayer {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        SsoLayer { shared: Arc::new(Shared { config, http, sessions: store }) }
    }

    /// Where tessera's sign-out should send the browser back to, e.g. after the service's own
    /// "Sign out" link: `<accounts>/accounts/Logout?continue=<public_url>/`.
    pub fn logout_url(&self) -> String {
        let back = format!("{}/", self.shared.config.public_url);
        format!(
            "{}/accounts/Logout?continue={}",
            self.shared.config.accounts_url,
            url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
        )
    }
}

impl<S> Layer<S> for SsoLayer {
    type Service = RequireSso<S>;

    fn layer(&self, inner: S) -> RequireSso<S> {
        RequireSso { inner, shared: self.shared.clone() }
    }
}

/// The service [`SsoLayer`] wraps.
#[derive(Debug, Clone)]
pub struct RequireSso<S> {
    inner: S,
    shared: Arc<Shared>,
}

fn respond<B: Default>(
    status: StatusCode,
    headers: &[(header::HeaderName, String)],
) -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = status;
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            res.headers_mut().append(name.clone(), value);
        }
    }
    res.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireSso<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = self.shared.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let config = &shared.config;
            let path = req.uri().path().to_owned();
            let query = req.uri().query().unwrap_or_default().to_owned();
            // Back channel: tessera POSTs `session=<handle>`.
            if path == config.backchannel_path && req.method() == Method::POST {
                let body = http_body_util::Limited::new(req.into_body(), 4096).collect().await;
                if let Ok(body) = body {
                    let body = body.to_bytes();
                    let text = String::from_utf8_lossy(&body);
                    let handle = query_param(&text, "session").unwrap_or_default();
                    if shared.end_session(&handle).await.is_err() {
                        return Ok(respond(StatusCode::SERVICE_UNAVAILABLE, &[]));
                    }
                }
                return Ok(respond(StatusCode::OK, &[]));
            }
            // Front channel: the sign-out page loads `logout_path?session=<handle>`.
            if path == config.logout_path {
                let handle = query_param(&query, "session").unwrap_or_default();
                if shared.end_session(&handle).await.is_err() {
                    return Ok(respond(StatusCode::SERVICE_UNAVAILABLE, &[]));
                }
                let expired = format!("{}=; Path=/; Max-Age=0; HttpOnly", config.cookie_name);
                return Ok(respond(StatusCode::OK, &[(header::SET_COOKIE, expired)]));
            }
            let here = format!("{}{}", config.public_url, req.uri());
            if let Some(auth) = query_param(&query, "auth") {
                let user = match shared.redeem(&auth, &here).await {
                    Ok(user) => user,
                    Err(_) => return Ok(respond(StatusCode::FORBIDDEN, &[])),
                };
                let value = random_token();
                if value.is_empty() {
                    return Ok(respond(StatusCode::SERVICE_UNAVAILABLE, &[]));
                }
                if shared.sessions.insert(&session_key(&value), &user).await.is_err() {
                    return Ok(respond(StatusCode::SERVICE_UNAVAILABLE, &[]));
                }
                let mut set =
                    format!("{}={value}; Path=/; HttpOnly; SameSite=Lax", config.cookie_name);
                if config.secure() {
                    set.push_str("; Secure");
                }
                let clean = strip_auth(&here);
                return Ok(respond(
                    StatusCode::FOUND,
                    &[(header::SET_COOKIE, set), (header::LOCATION, clean)],
                ));
            }
            match shared.user(req.headers()).await {
                Err(_) => Ok(respond(StatusCode::SERVICE_UNAVAILABLE, &[])),
                Ok(Some(user)) => {
                    req.extensions_mut().insert(user);
                    inner.call(req).await
                }
                Ok(None) => {
                    let login = format!(
                        "{}/accounts/ServiceLogin?service={}&continue={}",
                        config.accounts_url,
                        url::form_urlencoded::byte_serialize(config.service.as_bytes())
                            .collect::<String>(),
                        url::form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
                    );
                    Ok(respond(StatusCode::FOUND, &[(header::LOCATION, login)]))
                }
            }
        })
    }
}

/// `url` without its `auth` parameters.
fn strip_auth(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else { return url.to_owned() };
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(key, _)| key != "auth")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_is_stripped_and_params_read() {
        assert_eq!(strip_auth("http://a.example/x?y=1&auth=T"), "http://a.example/x?y=1");
        assert_eq!(strip_auth("http://a.example/?auth=T"), "http://a.example/");
        assert_eq!(query_param("a=1&session=h%2B", "session").as_deref(), Some("h+"));
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; SSOSID=v"));
        assert_eq!(cookie(&headers, "SSOSID"), Some("v"));
    }

    #[tokio::test]
    async fn memory_sessions_are_keyed_by_digest_and_end_by_handle() {
        let store = MemorySessions::default();
        let user = |email: &str, session: &str| SsoUser {
            subject: "s".to_owned(),
            email: email.to_owned(),
            name: String::new(),
            session: session.to_owned(),
        };
        let key = session_key("cookie-1");
        assert_ne!(key, "cookie-1");
        assert_eq!(key, session_key("cookie-1"));
        store.insert(&key, &user("a@x", "h1")).await.unwrap();
        store.insert(&session_key("cookie-2"), &user("b@x", "h2")).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap().unwrap().email, "a@x");
        assert!(store.get("cookie-1").await.unwrap().is_none(), "not by the cookie itself");
        store.end_handle("h1").await.unwrap();
        assert!(store.get(&key).await.unwrap().is_none());
        assert!(store.get(&session_key("cookie-2")).await.unwrap().is_some());
    }
}
