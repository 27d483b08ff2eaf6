//! A `tower::Layer` for resource servers whose callers sign with OAuth 1.0a: it forwards the
//! request's method, full URL and `Authorization: OAuth …` header to the server's caller check
//! (`POST /accounts/caller`) and hands the handler a typed [`Caller`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use tower::{Layer, Service};
use url::Url;

use crate::layer::Caller;

#[derive(Debug)]
struct Shared {
    http: reqwest::Client,
    check: Url,
    public_base: Url,
    /// Forward every `Authorization` scheme, not only `OAuth`.
    every_scheme: bool,
}

/// What the caller check says.
#[derive(Debug, serde::Deserialize)]
struct Found {
    sub: Option<String>,
    client_id: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    expires_at: Option<u64>,
}

enum Resolution {
    Active(Caller),
    /// Refused, with the `oauth_problem` word the caller check named, if it named one.
    Refused(Option<String>),
}

/// A refusal's body: the `oauth_problem` word of a two-legged refusal.
#[derive(Debug, Default, serde::Deserialize)]
struct Refusal {
    #[serde(default)]
    oauth_problem: Option<String>,
}

impl Shared {
    async fn resolve(
        &self,
        authorization: &str,
        method: &str,
        url: &str,
    ) -> Result<Resolution, reqwest::Error> {
        let question =
            serde_json::json!({ "authorization": authorization, "method": method, "url": url });
        let res = self.http.post(self.check.clone()).json(&question).send().await?;
        let status = res.status().as_u16();
        if matches!(status, 400 | 401 | 403) {
            let refusal: Refusal = res.json().await.unwrap_or_default();
            // Only a plain word goes into the challenge.
            let problem = refusal.oauth_problem.filter(|it| {
                !it.is_empty() && it.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            });
            return Ok(Resolution::Refused(problem));
        }
        let found: Found = res.error_for_status()?.json().await?;
        Ok(Resolution::Active(Caller {
            subject: found.sub,
            client_id: found.client_id,
            scopes: found.scopes,
            expires_at: found.expires_at.map(|at| UNIX_EPOCH + Duration::from_secs(at)),
        }))
    }
}

/// Requires an OAuth 1.0a signed request (`Authorization: OAuth …`, legacy-auth §4), checked by the
/// server's caller check, which verifies the signature over this request's method and URL and
/// spends its nonce.
///
/// * No `OAuth` authorization: `401` with `WWW-Authenticate: OAuth realm=""`.
/// * Refused (bad signature, unknown or revoked token, replayed nonce, stale timestamp, a
///   two-legged call the domain did not authorize): `401` with the same challenge, plus
///   `oauth_problem="…"` when the caller check named one.
/// * Caller check unavailable: `503`.
/// * Otherwise the request goes on with a [`Caller`] in its extensions.
///
/// Nothing is cached: every signed request carries a fresh nonce. The full URL is the configured
/// public base joined with the request's path and query; OAuth parameters in a form body are not
/// forwarded (sign with the header).
#[derive(Debug, Clone)]
pub struct OAuth1CallerLayer {
    shared: Arc<Shared>,
}

impl OAuth1CallerLayer {
    /// A layer asking the tessera server at `server` (e.g. `https://accounts.example.test/`) about
    /// requests that arrive at `public_base` (e.g. `https://api.example.com/`, the origin clients
    /// sign for).
    pub fn new(server: &Url, public_base: Url) -> Result<Self, url::ParseError> {
        Self::with_http_client(crate::default_http_client(), server, public_base)
    }

    /// The same with `http` for the caller check calls.
    pub fn with_http_client(
        http: reqwest::Client,
        server: &Url,
        public_base: Url,
    ) -> Result<Self, url::ParseError> {
        let mut server = server.clone();
        if !server.path().ends_with('/') {
            let path = format!("{}/", server.path());
            server.set_path(&path);
        }
        let check = server.join("accounts/caller")?;
        Ok(Self { shared: Arc::new(Shared { http, check, public_base, every_scheme: false }) })
    }

    /// The same layer forwarding every `Authorization` scheme the caller check knows, not only
    /// `OAuth`: ClientLogin's `GoogleLogin auth=`, `AuthSub token=` (secure tokens sign the
    /// forwarded method and URL), OAuth 1.0a and OAuth 2.0 `Bearer`. A resource server that still
    /// serves legacy clients checks all of them through the one caller check with this layer.
    pub fn accepting_every_scheme(self) -> Self {
        let shared = Shared {
            http: self.shared.http.clone(),
            check: self.shared.check.clone(),
            public_base: self.shared.public_base.clone(),
            every_scheme: true,
        };
        Self { shared: Arc::new(shared) }
    }
}

impl<S> Layer<S> for OAuth1CallerLayer {
    type Service = RequireOAuth1<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireOAuth1 { inner, shared: self.shared.clone() }
    }
}

/// The service produced by [`OAuth1CallerLayer`].
#[derive(Debug, Clone)]
pub struct RequireOAuth1<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireOAuth1<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clone may not be ready; use the instance poll_ready was called on.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let authorization = match shared.every_scheme {
                true => any_authorization(req.headers()),
                false => oauth_authorization(req.headers()),
            };
            let Some(authorization) = authorization else {
                return Ok(challenge(None));
            };
            let path = req.uri().path_and_query().map_or("/", |it| it.as_str());
            let Ok(url) = shared.public_base.join(path.trim_start_matches('/')) else {
                return Ok(challenge(None));
            };
            let method = req.method().as_str().to_owned();
            match shared.resolve(&authorization, &method, url.as_str()).await {
                Ok(Resolution::Active(caller)) => {
                    req.extensions_mut().insert(caller);
                    inner.call(req).await
                }
                Ok(Resolution::Refused(problem)) => Ok(challenge(problem.as_deref())),
                Err(_) => {
                    let mut res = Response::new(ResBody::default());
                    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    Ok(res)
                }
            }
        })
    }
}

/// The whole `Authorization` value when its scheme is `OAuth` (matched case-insensitively).
fn oauth_authorization(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("oauth") && !rest.trim().is_empty()).then(|| value.to_owned())
}

/// The whole `Authorization` value, whatever its scheme, when it has credentials after it.
fn any_authorization(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (_, rest) = value.split_once(' ')?;
    (!rest.trim().is_empty()).then(|| value.to_owned())
}

fn challenge<B: Default>(problem: Option<&str>) -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = StatusCode::UNAUTHORIZED;
    let value = match problem {
        Some(problem) => format!("OAuth realm=\"\", oauth_problem=\"{problem}\""),
        None => "OAuth realm=\"\"".to_owned(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_oauth_scheme_is_forwarded() {
        let mut headers = HeaderMap::new();
        assert_eq!(oauth_authorization(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer ya29.abc"));
        assert_eq!(oauth_authorization(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("OAuth "));
        assert_eq!(oauth_authorization(&headers), None);
        let signed = "oauth oauth_consumer_key=\"a\", oauth_signature=\"b\"";
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static(signed));
        assert_eq!(oauth_authorization(&headers).as_deref(), Some(signed));
        assert_eq!(any_authorization(&headers).as_deref(), Some(signed));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("GoogleLogin auth=x"));
        assert_eq!(any_authorization(&headers).as_deref(), Some("GoogleLogin auth=x"));
        assert_eq!(oauth_authorization(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer  "));
        assert_eq!(any_authorization(&headers), None);
        let res: Response<()> = challenge(None);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "OAuth realm=\"\"");
        let res: Response<()> = challenge(Some("permission_denied"));
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            "OAuth realm=\"\", oauth_problem=\"permission_denied\""
        );
    }
}
