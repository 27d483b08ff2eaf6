//! A `tower::Layer` for resource servers: resolves `Authorization: Bearer` and
//! `Authorization: DPoP` tokens through RFC 7662 introspection and hands the handler a typed
//! [`Caller`]. A DPoP-bound token (introspection's `cnf.jkt`) is accepted only with the `DPoP`
//! scheme and a valid proof of its key (RFC 9449 §7), each proof once: its `jti` is kept in a
//! bounded cache for the proof's `iat` window, so a replayed proof is refused here too.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use tower::{Layer, Service};

use crate::clock::{Clock, SystemClock};
use crate::oauth2::{OAuthClient, OAuthError, TokenTypeHint};

/// Who is calling: inserted into the request extensions for every request the layer lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `sub`: the resource owner, absent for client-credentials tokens.
    pub subject: Option<String>,
    /// `client_id`: the client the token was issued to.
    pub client_id: Option<String>,
    /// The granted scopes.
    pub scopes: Vec<String>,
    /// When the token expires, if the server said.
    pub expires_at: Option<SystemTime>,
}

impl Caller {
    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|it| it == scope)
    }
}

#[derive(Debug, Clone)]
enum Resolution {
    /// The caller, and the thumbprint of the key the token is bound to, if any.
    Active(Caller, Option<String>),
    Inactive,
}

#[derive(Debug)]
struct CacheEntry {
    resolution: Resolution,
    until: SystemTime,
}

#[derive(Debug)]
struct Shared {
    client: OAuthClient,
    ttl: Duration,
    max_entries: usize,
    clock: Arc<dyn Clock>,
    /// Keyed by SHA-256 of the token, so the raw token is never kept.
    cache: Mutex<HashMap<[u8; 32], CacheEntry>>,
    /// The accepted DPoP proofs (SHA-256 of key thumbprint and `jti`) until their `iat` window
    /// closes, in Unix seconds: a proof is accepted once. At most `max_entries`.
    proofs: Mutex<HashMap<[u8; 32], u64>>,
}

impl Shared {
    async fn resolve(&self, token: &str) -> Result<Resolution, OAuthError> {
        let key = digest(token);
        let now = self.clock.now();
        {
            let cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(entry) = cache.get(&key)
                && now < entry.until
            {
                return Ok(entry.resolution.clone());
            }
        }
        let introspection = self.client.introspect(token, Some(TokenTypeHint::AccessToken)).await?;
        let expires_at = introspection.exp.map(|exp| UNIX_EPOCH + Duration::from_secs(exp));
        let jkt = introspection
            .extra
            .get("cnf")
            .and_then(|cnf| cnf.get("jkt"))
            .and_then(|jkt| jkt.as_str())
            .map(str::to_owned);
        let resolution = match introspection.active && expires_at.is_none_or(|exp| now < exp) {
            true => Resolution::Active(
                Caller {
                    subject: introspection.sub.clone(),
                    client_id: introspection.client_id.clone(),
                    scopes: introspection.scopes(),
                    expires_at,
                },
                jkt,
            ),
            false => Resolution::Inactive,
        };
        let mut until = now + self.ttl;
        if let (Resolution::Active(..), Some(exp)) = (&resolution, expires_at) {
            until = until.min(exp);
        }
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= self.max_entries {
            cache.retain(|_, entry| now < entry.until);
            if cache.len() >= self.max_entries {
                cache.clear();
            }
        }
        cache.insert(key, CacheEntry { resolution: resolution.clone(), until });
        Ok(resolution)
    }
}

impl Shared {
    /// Records a proof of key `jkt` with `jti` issued at `iat`; false when it was seen before (a
    /// replay), or when the cache is full of proofs still inside their window: a live `jti` is
    /// never forgotten, so at capacity new proofs are refused until old ones expire.
    fn first_use(&self, jkt: &str, jti: &str, iat: u64, now: u64) -> bool {
        let key = digest(&format!("{jkt}\0{jti}"));
        let until = iat.max(now).saturating_add(PROOF_LEEWAY);
        let mut seen = self.proofs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.get(&key).is_some_and(|until| now <= *until) {
            return false;
        }
        if seen.len() >= self.max_entries {
            seen.retain(|_, until| now <= *until);
            if seen.len() >= self.max_entries {
                return false;
            }
        }
        seen.insert(key, until);
        true
    }
}

fn digest(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// Requires a valid bearer token on every request (RFC 6750), checked by introspection (RFC 7662).
///
/// * No bearer token: `401` with `WWW-Authenticate: Bearer`.
/// * Inactive or unknown token: `401` with `WWW-Authenticate: Bearer error="invalid_token"`.
/// * Valid token lacking a scope set with [`IntrospectionLayer::require_scopes`]: `403` with
///   `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"`.
/// * Introspection unavailable: `503`.
/// * Otherwise the request goes on with a [`Caller`] in its extensions.
///
/// Results are cached for a short TTL (default 30 s, never past the token's `exp`), keyed by the
/// token's SHA-256 digest. The layer never logs tokens.
///
/// A DPoP proof is accepted once: its key and `jti` are remembered (as a digest) until its `iat`
/// leaves the five-minute window, in a cache of at most `max_entries` proofs; when it is full of
/// live proofs, new ones are refused (`invalid_dpop_proof`) rather than a live one forgotten.
#[derive(Debug, Clone)]
pub struct IntrospectionLayer {
    shared: Arc<Shared>,
    required_scopes: Arc<[String]>,
}

impl IntrospectionLayer {
    /// A layer that introspects with `client`, which needs an introspection endpoint and a secret.
    pub fn new(client: OAuthClient) -> Self {
        Self::with_options(client, Duration::from_secs(30), 10_000, Arc::new(SystemClock))
    }

    /// A layer with an explicit cache TTL, cache size bound and clock.
    pub fn with_options(
        client: OAuthClient,
        ttl: Duration,
        max_entries: usize,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let shared = Shared {
            client,
            ttl,
            max_entries: max_entries.max(1),
            clock,
            cache: Mutex::new(HashMap::new()),
            proofs: Mutex::new(HashMap::new()),
        };
        Self { shared: Arc::new(shared), required_scopes: Arc::from([]) }
    }

    /// Also requires every scope in `scopes`; a valid token without them gets `403` with
    /// `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` (RFC 6750 §3.1).
    #[must_use]
    pub fn require_scopes(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.required_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }
}

impl<S> Layer<S> for IntrospectionLayer {
    type Service = RequireBearer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireBearer {
            inner,
            shared: self.shared.clone(),
            required_scopes: self.required_scopes.clone(),
        }
    }
}

/// The service produced by [`IntrospectionLayer`].
#[derive(Debug, Clone)]
pub struct RequireBearer<S> {
    inner: S,
    shared: Arc<Shared>,
    required_scopes: Arc<[String]>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireBearer<S>
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
        // The clone may not be ready; use the instance poll_ready was called on (tower's documented pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let required_scopes = self.required_scopes.clone();
        Box::pin(async move {
            let Some((scheme, token)) = access_token(req.headers()) else {
                return Ok(challenge(None));
            };
            let now = shared.clock.now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            let proof = match scheme {
                Scheme::Bearer => None,
                Scheme::Dpop => match dpop_proof(&req, &token, now) {
                    Some(proof) => Some(proof),
                    None => return Ok(challenge(Some("invalid_dpop_proof"))),
                },
            };
            let jkt = proof.as_ref().map(|it| it.jkt.clone());
            match shared.resolve(&token).await {
                // A bound token needs the proof of its key; an unbound one is no DPoP token.
                Ok(Resolution::Active(_, bound)) if bound != jkt => match scheme {
                    Scheme::Bearer => Ok(challenge(Some("invalid_token"))),
                    Scheme::Dpop => Ok(challenge(Some("invalid_dpop_token"))),
                },
                // Recorded only for a live token of that key, so strangers cannot fill the cache.
                Ok(Resolution::Active(..))
                    if proof
                        .as_ref()
                        .is_some_and(|it| !shared.first_use(&it.jkt, &it.jti, it.iat, now)) =>
                {
                    Ok(challenge(Some("invalid_dpop_proof")))
                }
                Ok(Resolution::Active(caller, _))
                    if !required_scopes.iter().all(|scope| caller.has_scope(scope)) =>
                {
                    Ok(insufficient_scope(&required_scopes))
                }
                Ok(Resolution::Active(caller, _)) => {
                    req.extensions_mut().insert(caller);
                    inner.call(req).await
                }
                Ok(Resolution::Inactive) => Ok(challenge(Some("invalid_token"))),
                Err(_) => {
                    let mut res = Response::new(ResBody::default());
                    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    Ok(res)
                }
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

/// The token of an `Authorization: Bearer <token>` or `Authorization: DPoP <token>` header
/// (scheme matched case-insensitively, RFC 6750 §2.1, RFC 9449 §7.1).
fn access_token(headers: &HeaderMap) -> Option<(Scheme, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    let scheme = match scheme {
        it if it.eq_ignore_ascii_case("bearer") => Scheme::Bearer,
        it if it.eq_ignore_ascii_case("dpop") => Scheme::Dpop,
        _ => return None,
    };
    (!token.is_empty()).then(|| (scheme, token.to_owned()))
}

#[cfg(test)]
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    access_token(headers).filter(|(scheme, _)| *scheme == Scheme::Bearer).map(|(_, token)| token)
}

/// How far a proof's `iat` may be from the layer's clock, seconds.
const PROOF_LEEWAY: u64 = 300;

fn b64_json(part: &str) -> Option<serde_json::Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

fn sha256_b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

/// A proof that verified: its key's RFC 7638 thumbprint, `jti` and `iat`.
struct Proof {
    jkt: String,
    jti: String,
    iat: u64,
}

/// Checks the request's single `DPoP` header as a resource server must (RFC 9449 §4.3, §7.1): an
/// ES256 `dpop+jwt` signed by the key in its header, `htm` and `htu` naming this request, a
/// recent `iat` and `ath` the digest of `token`. Whether its `jti` is new is [`Shared::first_use`]'s.
fn dpop_proof<B>(req: &Request<B>, token: &str, now: u64) -> Option<Proof> {
    let mut values = req.headers().get_all("dpop").iter();
    let proof = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let mut parts = proof.split('.');
    let (head, body, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header = b64_json(head)?;
    let claims = b64_json(body)?;
    if header["typ"] != "dpop+jwt" || header["alg"] != "ES256" {
        return None;
    }
    let jwk = &header["jwk"];
    if jwk["kty"] != "EC" || jwk["crv"] != "P-256" {
        return None;
    }
    let (x, y) = (jwk["x"].as_str()?, jwk["y"].as_str()?);
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(x).ok()?);
    point.extend(URL_SAFE_NO_PAD.decode(y).ok()?);
    if point.len() != 65 {
        return None;
    }
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        &point,
    );
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    key.verify(format!("{head}.{body}").as_bytes(), &sig).ok()?;
    let jti = claims["jti"].as_str()?;
    if claims["htm"].as_str()? != req.method().as_str() || jti.is_empty() || jti.len() > 256 {
        return None;
    }
    let iat = claims["iat"].as_u64()?;
    if iat.abs_diff(now) > PROOF_LEEWAY || claims["ath"].as_str()? != sha256_b64(token.as_bytes()) {
        return None;
    }
    if !htu_matches(claims["htu"].as_str()?, req) {
        return None;
    }
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    Some(Proof { jkt: sha256_b64(canonical.as_bytes()), jti: jti.to_owned(), iat })
}

/// Whether `htu` names this request's URL without query and fragment. Behind a tower stack the
/// request usually carries only a path, so then the path must match and the authority must be
/// the `Host` header's.
fn htu_matches<B>(htu: &str, req: &Request<B>) -> bool {
    let Ok(htu) = htu.parse::<http::Uri>() else { return false };
    let uri = req.uri();
    if htu.path() != uri.path() {
        return false;
    }
    let authority = match uri.authority() {
        Some(it) => it.as_str().to_owned(),
        None => match req.headers().get(header::HOST).and_then(|it| it.to_str().ok()) {
            Some(host) => host.to_owned(),
            None => return false,
        },
    };
    htu.authority().is_some_and(|it| it.as_str().eq_ignore_ascii_case(&authority))
        && uri.scheme().is_none_or(|scheme| htu.scheme() == Some(scheme))
}

fn challenge<B: Default>(error: Option<&'static str>) -> Response<B> {
    let value = match error {
        Some("invalid_token") => HeaderValue::from_static("Bearer error=\"invalid_token\""),
        Some("invalid_dpop_token") => {
            HeaderValue::from_static("DPoP algs=\"ES256\", error=\"invalid_token\"")
        }
        Some("invalid_dpop_proof") => {
            HeaderValue::from_static("DPoP algs=\"ES256\", error=\"invalid_dpop_proof\"")
        }
        _ => HeaderValue::from_static("Bearer"),
    };
    let mut res = Response::new(B::default());
    *res.status_mut() = StatusCode::UNAUTHORIZED;
    res.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    res
}

fn insufficient_scope<B: Default>(required: &[String]) -> Response<B> {
    let value = HeaderValue::from_str(&format!(
        "Bearer error=\"insufficient_scope\", scope=\"{}\"",
        required.join(" ")
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"insufficient_scope\""));
    let mut res = Response::new(B::default());
    *res.status_mut() = StatusCode::FORBIDDEN;
    res.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_is_extracted() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  ya29.abc "));
        assert_eq!(bearer_token(&headers).as_deref(), Some("ya29.abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("GoogleLogin auth=x"));
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn challenge_headers() {
        let res: Response<()> = challenge(Some("invalid_token"));
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer error=\"invalid_token\"");
        let res: Response<()> = challenge(None);
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
