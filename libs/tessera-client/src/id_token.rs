//! `IdTokenVerifier`: checks OpenID Connect ID tokens against the issuer's published JWK Set.
//!
//! The verifier fetches the keys (through discovery or from a fixed JWKS URL), caches them for the
//! `Cache-Control: max-age` the server sends, and refetches on an unknown `kid` at most once per
//! refetch interval. The signature algorithm comes from the key, never from the token header alone.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{self, RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer};
use url::Url;

use crate::clock::{Clock, SystemClock};
use crate::discovery::{self, DiscoveryError};

/// Tokens longer than this are rejected as malformed before any decoding.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The claims of a verified ID token (OpenID Connect Core §2), plus any others in [`IdTokenClaims::extra`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IdTokenClaims {
    /// Issuer; equal to the verifier's issuer.
    pub iss: String,
    /// Stable identifier of the account.
    pub sub: String,
    /// Audiences (a JSON string or array on the wire).
    #[serde(deserialize_with = "string_or_array")]
    pub aud: Vec<String>,
    /// Authorized party: the client that asked for the token, when it differs from `aud`.
    #[serde(default)]
    pub azp: Option<String>,
    /// The account's e-mail address, with the `email` scope.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether `email` is verified (accepts the 2012-era string form `"true"` too).
    #[serde(default, deserialize_with = "bool_or_string")]
    pub email_verified: Option<bool>,
    /// Hosted (Google Apps) domain of the account.
    #[serde(default)]
    pub hd: Option<String>,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// The nonce from the authorization request.
    #[serde(default)]
    pub nonce: Option<String>,
    /// Every other claim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl IdTokenClaims {
    /// The authorized party: `azp` when present, otherwise the single audience (OpenID Connect Core §2).
    pub fn authorized_party(&self) -> Option<&str> {
        match &self.azp {
            Some(azp) => Some(azp),
            None if self.aud.len() == 1 => self.aud.first().map(String::as_str),
            None => None,
        }
    }
}

/// Why an ID token was rejected.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Not a compact JWS with JSON header and claims of the expected shape.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// No published key matches the token's `kid` (after the allowed refetch).
    #[error("no published key for kid {kid:?}")]
    UnknownKey {
        /// The `kid` from the token header.
        kid: Option<String>,
    },
    /// The header's `alg` differs from the algorithm of the key it names.
    #[error("token alg {header:?} does not match key alg {key}")]
    AlgorithmMismatch {
        /// The header's `alg`.
        header: String,
        /// The key's algorithm.
        key: &'static str,
    },
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer {found:?}")]
    WrongIssuer {
        /// The token's `iss`.
        found: String,
    },
    /// `exp` (plus leeway) is in the past.
    #[error("token expired at {exp}, now {now}")]
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The verifier's current time, Unix seconds.
        now: u64,
    },
    /// `iat` (minus leeway) is in the future.
    #[error("token issued in the future ({iat}), now {now}")]
    NotYetValid {
        /// The token's `iat`.
        iat: u64,
        /// The verifier's current time, Unix seconds.
        now: u64,
    },
    /// `exp` lies further ahead than the configured maximum lifetime.
    #[error("token expiry {exp} is too far in the future")]
    LifetimeTooLong {
        /// The token's `exp`.
        exp: u64,
    },
    /// No `aud` value is among the allowed audiences.
    #[error("wrong audience {found:?}")]
    WrongAudience {
        /// The token's audiences.
        found: Vec<String>,
    },
    /// The authorized party (`azp`) is not among the allowed ones.
    #[error("wrong authorized party {found:?}")]
    WrongAuthorizedParty {
        /// The token's authorized party, if it names one.
        found: Option<String>,
    },
    /// `nonce` differs from the expected one.
    #[error("nonce mismatch")]
    WrongNonce,
    /// The keys could not be fetched.
    #[error("fetching keys failed")]
    Fetch(#[from] FetchError),
}

/// Why the JWK Set could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Discovery of the `jwks_uri` failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The request failed.
    #[error("JWKS request failed")]
    Http(#[from] reqwest::Error),
    /// The server answered with a non-success status.
    #[error("JWKS request returned HTTP {0}")]
    Status(u16),
    /// The body is not a JWK Set.
    #[error("JWKS body is invalid")]
    InvalidJwks(#[from] serde_json::Error),
    /// A fetch failed recently; the next attempt waits for the refetch interval.
    #[error("a recent JWKS fetch failed; waiting before retrying")]
    Backoff,
}

/// Signature algorithms the verifier accepts (RFC 7518 §3.1 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Algorithm {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "EdDSA" => Self::EdDsa,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }

    fn rsa_parameters(self) -> Option<&'static RsaParameters> {
        Some(match self {
            Self::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Self::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Self::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Self::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Self::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            Self::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            Self::Es256 | Self::Es384 | Self::EdDsa => return None,
        })
    }
}

/// The public part of a JWK, decoded.
#[derive(Debug)]
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed SEC1 point (0x04 || x || y).
    Ec {
        point: Vec<u8>,
    },
    Ed25519 {
        public: Vec<u8>,
    },
}

#[derive(Debug)]
struct CachedKey {
    kid: Option<String>,
    alg: Algorithm,
    material: KeyMaterial,
}

impl CachedKey {
    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            KeyMaterial::Rsa { n, e } => match self.alg.rsa_parameters() {
                Some(params) => RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }
                    .verify(params, message, sig)
                    .is_ok(),
                None => false,
            },
            KeyMaterial::Ec { point } => {
                let alg: &'static dyn signature::VerificationAlgorithm = match self.alg {
                    Algorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Algorithm::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => return false,
                };
                UnparsedPublicKey::new(alg, point).verify(message, sig).is_ok()
            }
            KeyMaterial::Ed25519 { public } => {
                self.alg == Algorithm::EdDsa
                    && UnparsedPublicKey::new(&signature::ED25519, public)
                        .verify(message, sig)
                        .is_ok()
            }
        }
    }
}

/// One JWK as published (RFC 7517 §4, RFC 7518 §6).
#[derive(Debug, Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

/// Decodes one JWK; keys that are not for signatures or that this verifier cannot use yield `None`.
fn decode_jwk(raw: RawJwk) -> Option<CachedKey> {
    if raw.use_.as_deref().is_some_and(|it| it != "sig") {
        return None;
    }
    let b64 =
        |value: &Option<String>| value.as_deref().and_then(|it| URL_SAFE_NO_PAD.decode(it).ok());
    let (default_alg, material) = match (raw.kty.as_str(), raw.crv.as_deref()) {
        ("RSA", _) => (Algorithm::Rs256, KeyMaterial::Rsa { n: b64(&raw.n)?, e: b64(&raw.e)? }),
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (alg, len) = match crv {
                "P-256" => (Algorithm::Es256, 32),
                _ => (Algorithm::Es384, 48),
            };
            let (x, y) = (b64(&raw.x)?, b64(&raw.y)?);
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (alg, KeyMaterial::Ec { point })
        }
        ("OKP", Some("Ed25519")) => {
            (Algorithm::EdDsa, KeyMaterial::Ed25519 { public: b64(&raw.x)? })
        }
        _ => return None,
    };
    let alg = match raw.alg.as_deref() {
        Some(name) => Algorithm::from_name(name)?,
        None => default_alg,
    };
    let compatible = match &material {
        KeyMaterial::Rsa { .. } => alg.rsa_parameters().is_some(),
        KeyMaterial::Ec { .. } => alg == default_alg,
        KeyMaterial::Ed25519 { .. } => alg == Algorithm::EdDsa,
    };
    compatible.then_some(CachedKey { kid: raw.kid, alg, material })
}

fn parse_jwks(body: &[u8]) -> Result<Vec<CachedKey>, serde_json::Error> {
    let set: RawJwkSet = serde_json::from_slice(body)?;
    Ok(set
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<RawJwk>(value).ok())
        .filter_map(decode_jwk)
        .collect())
}

/// The freshness lifetime from a `Cache-Control` header: `max-age=N`, or zero for `no-store`/`no-cache`.
fn cache_lifetime(header: Option<&str>) -> Option<Duration> {
    let header = header?;
    let mut lifetime = None;
    for directive in header.split(',') {
        let directive = directive.trim();
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (directive, None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age") {
            lifetime = value.and_then(|it| it.parse::<u64>().ok()).map(Duration::from_secs);
        }
    }
    lifetime
}

#[derive(Debug, Deserialize)]
struct JwsHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

#[derive(Debug, Default)]
struct KeyCache {
    keys: Arc<Vec<CachedKey>>,
    /// When the cached set goes stale; `None` before the first successful fetch.
    fresh_until: Option<SystemTime>,
    /// When the last refetch caused by an unknown key was started; such refetches are rate-limited.
    last_refetch: Option<SystemTime>,
    /// Set after a failed fetch: no new attempt before this time.
    backoff_until: Option<SystemTime>,
    /// A fetch is under way; meanwhile stale keys that match are used instead of fetching again.
    fetching: bool,
    /// The JWKS URL, once known (given, or found through discovery).
    jwks_uri: Option<Url>,
}

#[derive(Debug)]
struct Config {
    issuer: String,
    audiences: HashSet<String>,
    authorized_parties: Option<HashSet<String>>,
    leeway: Duration,
    refetch_interval: Duration,
    default_cache_ttl: Duration,
    max_cache_ttl: Duration,
    max_lifetime: Option<Duration>,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    cache: Mutex<KeyCache>,
}

/// Verifies ID tokens from one issuer. Cheap to clone; clones share the key cache.
///
/// Built with [`IdTokenVerifier::for_issuer`] (keys found through discovery) or
/// [`IdTokenVerifier::with_jwks_uri`] (a fixed JWKS URL), then configured through the builder.
#[derive(Debug, Clone)]
pub struct IdTokenVerifier {
    inner: Arc<Inner>,
}

/// Configures an [`IdTokenVerifier`].
#[derive(Debug)]
#[must_use]
pub struct IdTokenVerifierBuilder {
    config: Config,
    jwks_uri: Option<Url>,
}

impl IdTokenVerifier {
    /// A verifier for tokens from `issuer` meant for `audience` (your client id); the keys are found
    /// through `{issuer}/.well-known/openid-configuration`.
    pub fn for_issuer(
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> IdTokenVerifierBuilder {
        IdTokenVerifierBuilder::new(issuer.into(), audience.into(), None)
    }

    /// A verifier for tokens from `issuer` meant for `audience`, with keys fetched from `jwks_uri`.
    pub fn with_jwks_uri(
        jwks_uri: Url,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> IdTokenVerifierBuilder {
        IdTokenVerifierBuilder::new(issuer.into(), audience.into(), Some(jwks_uri))
    }

    /// Verifies `token` and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<IdTokenClaims, VerifyError> {
        self.verify_inner(token, None).await
    }

    /// Verifies `token` and also checks that its `nonce` equals `nonce` (OpenID Connect Core §3.1.3.7).
    pub async fn verify_with_nonce(
        &self,
        token: &str,
        nonce: &str,
    ) -> Result<IdTokenClaims, VerifyError> {
        self.verify_inner(token, Some(nonce)).await
    }

    async fn verify_inner(
        &self,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<IdTokenClaims, VerifyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::Malformed("token too long"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed("not three dot-separated parts"));
        };
        let header: JwsHeader =
            decode_json(header_b64).ok_or(VerifyError::Malformed("header is not JSON"))?;
        if header.crit.is_some() {
            return Err(VerifyError::Malformed("unsupported critical header"));
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| VerifyError::Malformed("signature is not base64url"))?;
        let signed = &token.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];

        let now = self.inner.config.clock.now();
        let candidates = self.keys_for(header.kid.as_deref(), &header.alg, now).await?;
        let named: Vec<&CachedKey> = candidates
            .iter()
            .filter(|key| key_matches(key, header.kid.as_deref(), &header.alg))
            .collect();
        let usable: Vec<&CachedKey> =
            named.iter().copied().filter(|key| key.alg.name() == header.alg).collect();
        if usable.is_empty()
            && let Some(key) = named.first()
        {
            return Err(VerifyError::AlgorithmMismatch { header: header.alg, key: key.alg.name() });
        }
        if !usable.iter().any(|key| key.verify(signed, &sig)) {
            return Err(VerifyError::BadSignature);
        }

        let claims: IdTokenClaims = decode_json(claims_b64)
            .ok_or(VerifyError::Malformed("claims are not the expected JSON"))?;
        self.check_claims(&claims, now, nonce)?;
        Ok(claims)
    }

    fn check_claims(
        &self,
        claims: &IdTokenClaims,
        now: SystemTime,
        nonce: Option<&str>,
    ) -> Result<(), VerifyError> {
        let config = &self.inner.config;
        let now = now.duration_since(SystemTime::UNIX_EPOCH).map(|it| it.as_secs()).unwrap_or(0);
        let leeway = config.leeway.as_secs();
        if claims.iss != config.issuer {
            return Err(VerifyError::WrongIssuer { found: claims.iss.clone() });
        }
        if now > claims.exp.saturating_add(leeway) {
            return Err(VerifyError::Expired { exp: claims.exp, now });
        }
        if claims.iat > now.saturating_add(leeway) {
            return Err(VerifyError::NotYetValid { iat: claims.iat, now });
        }
        if let Some(max) = config.max_lifetime
            && claims.exp > now.saturating_add(max.as_secs()).saturating_add(leeway)
        {
            return Err(VerifyError::LifetimeTooLong { exp: claims.exp });
        }
        if !claims.aud.iter().any(|aud| config.audiences.contains(aud)) {
            return Err(VerifyError::WrongAudience { found: claims.aud.clone() });
        }
        if let Some(allowed) = &config.authorized_parties {
            let azp = claims.authorized_party();
            if !azp.is_some_and(|azp| allowed.contains(azp)) {
                return Err(VerifyError::WrongAuthorizedParty { found: azp.map(str::to_owned) });
            }
        }
        if let Some(expected) = nonce
            && claims.nonce.as_deref() != Some(expected)
        {
            return Err(VerifyError::WrongNonce);
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, KeyCache> {
        self.inner.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached keys, fetched first when the cache is stale, or refetched (rate-limited) when no key matches.
    async fn keys_for(
        &self,
        kid: Option<&str>,
        alg: &str,
        now: SystemTime,
    ) -> Result<Arc<Vec<CachedKey>>, VerifyError> {
        let config = &self.inner.config;
        let (keys, fresh) = {
            let cache = self.lock();
            (cache.keys.clone(), cache.fresh_until.is_some_and(|until| now < until))
        };
        if fresh {
            if keys.iter().any(|key| key_matches(key, kid, alg)) {
                return Ok(keys);
            }
            let allowed = {
                let mut cache = self.lock();
                let allowed =
                    cache.last_refetch.is_none_or(|last| now >= last + config.refetch_interval);
                if allowed {
                    cache.last_refetch = Some(now);
                }
                allowed
            };
            if !allowed {
                return Err(VerifyError::UnknownKey { kid: kid.map(str::to_owned) });
            }
        } else {
            let cache = self.lock();
            if cache.backoff_until.is_some_and(|until| now < until) {
                return Err(VerifyError::Fetch(FetchError::Backoff));
            }
            // Stale-while-revalidate: while another caller refreshes the set, a matching stale key
            // is good enough, so that a cache expiry under load costs one fetch, not one per request.
            if cache.fetching && cache.keys.iter().any(|key| key_matches(key, kid, alg)) {
                return Ok(cache.keys.clone());
            }
        }
        let keys = self.fetch(now).await?;
        if keys.iter().any(|key| key_matches(key, kid, alg)) {
            Ok(keys)
        } else {
            Err(VerifyError::UnknownKey { kid: kid.map(str::to_owned) })
        }
    }

    async fn fetch(&self, now: SystemTime) -> Result<Arc<Vec<CachedKey>>, FetchError> {
        let _fetching = FetchingGuard::start(self);
        let result = self.fetch_uncached(now).await;
        let mut cache = self.lock();
        match result {
            Ok((keys, jwks_uri, ttl)) => {
                let keys = Arc::new(keys);
                cache.keys = keys.clone();
                cache.fresh_until = Some(now + ttl);
                cache.backoff_until = None;
                cache.jwks_uri = Some(jwks_uri);
                Ok(keys)
            }
            Err(err) => {
                cache.backoff_until = Some(now + self.inner.config.refetch_interval);
                Err(err)
            }
        }
    }

    async fn fetch_uncached(
        &self,
        _now: SystemTime,
    ) -> Result<(Vec<CachedKey>, Url, Duration), FetchError> {
        let config = &self.inner.config;
        let known = self.lock().jwks_uri.clone();
        let jwks_uri = match known {
            Some(uri) => uri,
            None => discovery::discover(&config.http, &config.issuer).await?.jwks_uri,
        };
        let res = config
            .http
            .get(jwks_uri.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(FetchError::Status(res.status().as_u16()));
        }
        let cache_control = res
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|it| it.to_str().ok())
            .map(str::to_owned);
        let body = res.bytes().await?;
        let keys = parse_jwks(&body)?;
        let ttl = cache_lifetime(cache_control.as_deref())
            .unwrap_or(config.default_cache_ttl)
            .min(config.max_cache_ttl);
        Ok((keys, jwks_uri, ttl))
    }
}

/// Marks a fetch as under way; clears the mark when the fetch ends or its future is dropped.
struct FetchingGuard<'a> {
    verifier: &'a IdTokenVerifier,
}

impl<'a> FetchingGuard<'a> {
    fn start(verifier: &'a IdTokenVerifier) -> Self {
        verifier.lock().fetching = true;
        Self { verifier }
    }
}

impl Drop for FetchingGuard<'_> {
    fn drop(&mut self) {
        self.verifier.lock().fetching = false;
    }
}

/// Whether `key` may have signed a token with this header: same `kid` when the header names one,
/// otherwise same algorithm.
fn key_matches(key: &CachedKey, kid: Option<&str>, alg: &str) -> bool {
    match kid {
        Some(kid) => key.kid.as_deref() == Some(kid),
        None => key.alg.name() == alg,
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl IdTokenVerifierBuilder {
    fn new(issuer: String, audience: String, jwks_uri: Option<Url>) -> Self {
        Self {
            config: Config {
                issuer,
                audiences: HashSet::from([audience]),
                authorized_parties: None,
                leeway: Duration::from_secs(60),
                refetch_interval: Duration::from_secs(60),
                default_cache_ttl: Duration::from_secs(300),
                max_cache_ttl: Duration::from_secs(24 * 3600),
                max_lifetime: Some(Duration::from_secs(24 * 3600)),
                clock: Arc::new(SystemClock),
                http: crate::default_http_client(),
            },
            jwks_uri,
        }
    }

    /// Also accepts tokens whose `aud` is `audience`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.config.audiences.insert(audience.into());
        self
    }

    /// Requires the authorized party (`azp`, or the sole `aud` when `azp` is absent) to be one of the
    /// parties allowed through this method, e.g. your Android client ids. Call once per client id.
    pub fn authorized_party(mut self, client_id: impl Into<String>) -> Self {
        self.config.authorized_parties.get_or_insert_with(HashSet::new).insert(client_id.into());
        self
    }

    /// Clock skew tolerated on `exp` and `iat` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.config.leeway = leeway;
        self
    }

    /// Minimum time between two JWKS fetches caused by unknown keys, and the wait after a failed fetch (default 60 s).
    pub fn refetch_interval(mut self, interval: Duration) -> Self {
        self.config.refetch_interval = interval;
        self
    }

    /// How long to cache keys when the response has no `Cache-Control: max-age` (default 300 s).
    pub fn default_cache_ttl(mut self, ttl: Duration) -> Self {
        self.config.default_cache_ttl = ttl;
        self
    }

    /// Upper bound on any cache lifetime (default 24 h).
    pub fn max_cache_ttl(mut self, ttl: Duration) -> Self {
        self.config.max_cache_ttl = ttl;
        self
    }

    /// Rejects tokens whose `exp` is more than `max` ahead of now (default 24 h); `None` disables the check.
    pub fn max_lifetime(mut self, max: Option<Duration>) -> Self {
        self.config.max_lifetime = max;
        self
    }

    /// The clock used for expiry and caching (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.config.clock = clock;
        self
    }

    /// The HTTP client used for discovery and key fetches.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.config.http = http;
        self
    }

    /// Builds the verifier. No request is made until the first verification.
    pub fn build(self) -> IdTokenVerifier {
        let cache = KeyCache { jwks_uri: self.jwks_uri, ..KeyCache::default() };
        IdTokenVerifier { inner: Arc::new(Inner { config: self.config, cache: Mutex::new(cache) }) }
    }
}

fn string_or_array<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(it) => vec![it],
        OneOrMany::Many(it) => it,
    })
}

fn bool_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrString {
        Bool(bool),
        String(String),
    }
    Ok(match Option::<BoolOrString>::deserialize(deserializer)? {
        None => None,
        Some(BoolOrString::Bool(it)) => Some(it),
        Some(BoolOrString::String(it)) => match it.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => return Err(serde::de::Error::custom("email_verified must be a boolean")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lifetime_reads_max_age() {
        let header = "public, max-age=21600, must-revalidate, no-transform";
        assert_eq!(cache_lifetime(Some(header)), Some(Duration::from_secs(21600)));
        assert_eq!(cache_lifetime(Some("no-store")), Some(Duration::ZERO));
        assert_eq!(cache_lifetime(Some("public")), None);
        assert_eq!(cache_lifetime(Some("max-age=abc")), None);
        assert_eq!(cache_lifetime(None), None);
    }

    #[test]
    fn claims_accept_string_email_verified_and_aud_array() {
        let json = r#"{"iss":"i","sub":"s","aud":["a","b"],"email_verified":"true","iat":1,"exp":2,"name":"Al"}"#;
        let claims: IdTokenClaims = serde_json::from_str(json).unwrap();
        assert_eq!(claims.aud, vec!["a", "b"]);
        assert_eq!(claims.email_verified, Some(true));
        assert_eq!(claims.extra.get("name"), Some(&serde_json::json!("Al")));
        assert_eq!(claims.authorized_party(), None);

        let json = r#"{"iss":"i","sub":"s","aud":"a","email_verified":false,"iat":1,"exp":2}"#;
        let claims: IdTokenClaims = serde_json::from_str(json).unwrap();
        assert_eq!(claims.aud, vec!["a"]);
        assert_eq!(claims.email_verified, Some(false));
        assert_eq!(claims.authorized_party(), Some("a"));
    }

    #[test]
    fn jwks_skips_encryption_and_unusable_keys() {
        let body = br#"{"keys":[
            {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"ok","alg":"RS256","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"hs","alg":"HS256","n":"AQAB","e":"AQAB"},
            {"kty":"EC","kid":"short","crv":"P-256","x":"AQAB","y":"AQAB"},
            {"kty":"oct","kid":"sym","k":"AQAB"},
            "garbage"
        ]}"#;
        let keys = parse_jwks(body).unwrap();
        let kids: Vec<_> = keys.iter().map(|key| key.kid.as_deref()).collect();
        assert_eq!(kids, vec![Some("ok")]);
        assert!(parse_jwks(b"{}").is_err());
    }
}
