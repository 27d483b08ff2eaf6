//! AuthSub (legacy-auth §3): request URLs, the single-use token from the reply, session upgrade,
//! token info, revocation and (feature `authsub-secure`) RSA-SHA1 signed requests.

#[cfg(feature = "authsub-secure")]
use std::sync::Arc;

use url::Url;

use crate::client_login::key_values;
#[cfg(feature = "authsub-secure")]
use crate::clock::{Clock, SystemClock};
use crate::secret::Secret;

/// The parameters of an `AuthSubRequest` browser redirect (legacy-auth §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSubRequest {
    /// Absolute URL the browser returns to; the server appends `token=`.
    pub next: String,
    /// Scope URL prefixes.
    pub scopes: Vec<String>,
    /// `session=1`: the single-use token may be upgraded to a session token.
    pub session: bool,
    /// `secure=1`: every request must be signed (needs a registered certificate).
    pub secure: bool,
    /// `hd`: `default` or a hosted domain; omitted when `None`.
    pub hosted_domain: Option<String>,
}

impl AuthSubRequest {
    /// A session, non-secure request for `scopes`, returning to `next`.
    pub fn new(
        next: impl Into<String>,
        scopes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            next: next.into(),
            scopes: scopes.into_iter().map(Into::into).collect(),
            session: true,
            secure: false,
            hosted_domain: None,
        }
    }

    /// The `{base}accounts/AuthSubRequest?…` URL to send the browser to.
    pub fn url(&self, base: &Url) -> Result<Url, url::ParseError> {
        let mut url = directory(base).join("accounts/AuthSubRequest")?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("next", &self.next)
                .append_pair("scope", &self.scopes.join(" "))
                .append_pair("session", if self.session { "1" } else { "0" })
                .append_pair("secure", if self.secure { "1" } else { "0" });
            if let Some(hd) = &self.hosted_domain {
                query.append_pair("hd", hd);
            }
        }
        Ok(url)
    }
}

/// The single-use token from the URL the browser came back to: a full URL or just its query string.
/// `None` when there is no `token` parameter (for instance when the user denied access).
pub fn token_from_reply(reply: &str) -> Option<Secret> {
    let query = match Url::parse(reply) {
        Ok(url) => url.query().unwrap_or("").to_owned(),
        Err(_) => reply.trim_start_matches('?').to_owned(),
    };
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| Secret::new(value.into_owned()))
        .filter(|token| !token.expose().is_empty())
}

/// What `AuthSubTokenInfo` says about a token (legacy-auth §3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// `Target`: the application the token was issued to.
    pub target: String,
    /// `Scope`, split at spaces.
    pub scopes: Vec<String>,
    /// `Secure`: whether requests with this token must be signed.
    pub secure: bool,
}

/// Parses an `AuthSubTokenInfo` body (`Target=…\nScope=…\nSecure=…\n`).
pub fn parse_token_info(body: &str) -> Result<TokenInfo, AuthSubError> {
    let find = |key: &str| key_values(body).find(|(name, _)| *name == key).map(|(_, value)| value);
    let target = find("Target").ok_or(AuthSubError::Malformed("no Target line"))?;
    let scope = find("Scope").ok_or(AuthSubError::Malformed("no Scope line"))?;
    let secure = match find("Secure") {
        Some(value) if value.eq_ignore_ascii_case("true") => true,
        Some(value) if value.eq_ignore_ascii_case("false") => false,
        _ => return Err(AuthSubError::Malformed("Secure is not true or false")),
    };
    Ok(TokenInfo {
        target: target.to_owned(),
        scopes: scope.split_ascii_whitespace().map(str::to_owned).collect(),
        secure,
    })
}

/// Why an AuthSub call failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthSubError {
    /// The request failed.
    #[error("AuthSub request failed")]
    Http(#[from] reqwest::Error),
    /// The server refused (e.g. 403 `Invalid AuthSub token`).
    #[error("AuthSub server answered HTTP {status}")]
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// The response did not follow the wire format.
    #[error("malformed AuthSub response: {0}")]
    Malformed(&'static str),
    /// The base URL could not be joined with an endpoint path.
    #[error("invalid base URL")]
    InvalidBase(#[from] url::ParseError),
}

/// The `data` string a secure request signs: `"METHOD URL TIMESTAMP NONCE"` (legacy-auth §3.5).
pub fn signed_data(method: &str, url: &str, timestamp: u64, nonce: u64) -> String {
    format!("{} {url} {timestamp} {nonce}", method.to_ascii_uppercase())
}

/// A random nonce: a decimal unsigned 64-bit number.
#[cfg(feature = "authsub-secure")]
fn random_nonce() -> u64 {
    let mut bytes = [0u8; 8];
    // aws-lc-rs reads the OS RNG; failure there is not recoverable for a security library.
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::fill(&mut bytes).expect("operating system RNG failed");
    u64::from_be_bytes(bytes)
}

/// Signs AuthSub secure requests with RSA-SHA1 (RSASSA-PKCS1-v1_5, legacy-auth §3.5).
///
/// Uses the `rsa` crate, which carries advisory RUSTSEC-2023-0071 (a timing side channel in
/// *decryption*); this type only signs, with a key the application already holds.
#[cfg(feature = "authsub-secure")]
#[derive(Clone)]
pub struct AuthSubSigner {
    key: rsa::pkcs1v15::SigningKey<sha1::Sha1>,
}

#[cfg(feature = "authsub-secure")]
impl std::fmt::Debug for AuthSubSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthSubSigner([redacted])")
    }
}

/// The private key could not be read.
#[cfg(feature = "authsub-secure")]
#[derive(Debug, thiserror::Error)]
#[error("not an RSA private key in PKCS#8 (PRIVATE KEY) or PKCS#1 (RSA PRIVATE KEY) PEM")]
pub struct KeyError;

/// Signing failed.
#[cfg(feature = "authsub-secure")]
#[derive(Debug, thiserror::Error)]
#[error("RSA-SHA1 signing failed")]
pub struct SignError;

#[cfg(feature = "authsub-secure")]
impl AuthSubSigner {
    /// Reads an RSA private key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        use rsa::pkcs8::DecodePrivateKey as _;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|_| KeyError)?;
        Ok(Self { key: rsa::pkcs1v15::SigningKey::new(key) })
    }

    /// The base64 RSA-SHA1 signature of `data`.
    pub fn sign(&self, data: &str) -> Result<String, SignError> {
        use base64::Engine as _;
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        let signature = self.key.try_sign(data.as_bytes()).map_err(|_| SignError)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()))
    }

    /// The full signed header value:
    /// `AuthSub token="T" data="METHOD URL TIMESTAMP NONCE" sig="…" sigalg="rsa-sha1"`.
    pub fn authorization_header(
        &self,
        token: &Secret,
        method: &str,
        url: &str,
        timestamp: u64,
        nonce: u64,
    ) -> Result<String, SignError> {
        let data = signed_data(method, url, timestamp, nonce);
        let sig = self.sign(&data)?;
        Ok(format!(
            "AuthSub token=\"{}\" data=\"{data}\" sig=\"{sig}\" sigalg=\"rsa-sha1\"",
            token.expose()
        ))
    }
}

/// An AuthSub client for one server: the server-to-server calls, signed when a signer is set.
#[derive(Debug, Clone)]
pub struct AuthSubClient {
    http: reqwest::Client,
    base: Url,
    deprecation: crate::deprecation::LastNotice,
    #[cfg(feature = "authsub-secure")]
    clock: Arc<dyn Clock>,
    #[cfg(feature = "authsub-secure")]
    signer: Option<AuthSubSigner>,
}

impl AuthSubClient {
    /// A client for the server at `base` (e.g. `https://accounts.example.test/`).
    pub fn new(base: Url) -> Self {
        Self {
            http: crate::default_http_client(),
            base: directory(&base),
            deprecation: Default::default(),
            #[cfg(feature = "authsub-secure")]
            clock: Arc::new(SystemClock),
            #[cfg(feature = "authsub-secure")]
            signer: None,
        }
    }

    /// The last retirement notice an answer carried (it is also logged when it arrives): see
    /// [`crate::deprecation`].
    pub fn last_deprecation(&self) -> Option<crate::deprecation::Deprecation> {
        self.deprecation.get()
    }

    /// Uses `http` for requests.
    #[must_use]
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// Uses `clock` for signature timestamps.
    #[cfg(feature = "authsub-secure")]
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Signs every request (secure tokens) with `signer`.
    #[cfg(feature = "authsub-secure")]
    #[must_use]
    pub fn with_signer(mut self, signer: AuthSubSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The `Authorization` value for a request with `token`: signed with the current time and a random
    /// nonce when a signer is set, otherwise `AuthSub token="T"`.
    ///
    /// # Panics
    ///
    /// When signing, if the operating system's random number generator fails.
    pub fn authorization_header(
        &self,
        token: &Secret,
        method: &str,
        url: &Url,
    ) -> Result<String, AuthSubError> {
        #[cfg(feature = "authsub-secure")]
        if let Some(signer) = &self.signer {
            return signer
                .authorization_header(
                    token,
                    method,
                    url.as_str(),
                    self.clock.unix_seconds(),
                    random_nonce(),
                )
                .map_err(|_| AuthSubError::Malformed("signing failed"));
        }
        #[cfg(not(feature = "authsub-secure"))]
        let _ = (method, url); // Only a signed header covers the method and URL.
        Ok(format!("AuthSub token=\"{}\"", token.expose()))
    }

    /// Exchanges a single-use token (issued with `session=1`) for a session token (legacy-auth §3.7).
    pub async fn session_token(&self, single_use: &Secret) -> Result<Secret, AuthSubError> {
        let body = self.get("accounts/AuthSubSessionToken", single_use).await?;
        key_values(&body)
            .find(|(name, _)| name.eq_ignore_ascii_case("Token"))
            .map(|(_, value)| Secret::new(value.trim()))
            .filter(|token| !token.expose().is_empty())
            .ok_or(AuthSubError::Malformed("no Token line"))
    }

    /// Asks the server about `token` (legacy-auth §3.8).
    pub async fn token_info(&self, token: &Secret) -> Result<TokenInfo, AuthSubError> {
        let body = self.get("accounts/AuthSubTokenInfo", token).await?;
        parse_token_info(&body)
    }

    /// Revokes `token` (legacy-auth §3.9).
    pub async fn revoke(&self, token: &Secret) -> Result<(), AuthSubError> {
        self.get("accounts/AuthSubRevokeToken", token).await.map(drop)
    }

    async fn get(&self, path: &str, token: &Secret) -> Result<String, AuthSubError> {
        let url = self.base.join(path)?;
        let header = self.authorization_header(token, "GET", &url)?;
        let res =
            self.http.get(url.clone()).header(http::header::AUTHORIZATION, header).send().await?;
        self.deprecation.observe(&url, res.headers());
        if !res.status().is_success() {
            return Err(AuthSubError::Rejected { status: res.status().as_u16() });
        }
        Ok(res.text().await?)
    }
}

/// `url` with a path ending in `/`, so that relative joins stay below it.
fn directory(url: &Url) -> Url {
    let mut url = url.clone();
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn request_url_has_every_parameter() {
        let mut req = AuthSubRequest::new(
            "http://app.example.com/cb?x=1",
            ["http://www.google.com/calendar/feeds/", "http://www.google.com/m8/feeds/"],
        );
        req.secure = true;
        req.hosted_domain = Some("example.com".into());
        let url = req.url(&Url::parse("https://accounts.example.test").unwrap()).unwrap();
        assert_eq!(url.path(), "/accounts/AuthSubRequest");
        let query: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["next"], "http://app.example.com/cb?x=1");
        assert_eq!(
            query["scope"],
            "http://www.google.com/calendar/feeds/ http://www.google.com/m8/feeds/"
        );
        assert_eq!(query["session"], "1");
        assert_eq!(query["secure"], "1");
        assert_eq!(query["hd"], "example.com");
    }

    #[test]
    fn token_is_read_from_reply_url_or_query() {
        let reply = "http://app.example.com/cb?auth_sub_scopes=http%3A%2F%2Fwww.google.com%2Fcalendar%2Ffeeds%2F&token=CKF50YzIHxCT85KMAg";
        assert_eq!(token_from_reply(reply).unwrap().expose(), "CKF50YzIHxCT85KMAg");
        assert_eq!(token_from_reply("?token=a%2Fb").unwrap().expose(), "a/b");
        assert!(token_from_reply("http://app.example.com/cb?x=1").is_none());
        assert!(token_from_reply("http://app.example.com/cb?token=").is_none());
    }

    #[test]
    fn token_info_is_parsed() {
        let info = parse_token_info(
            "Target=http://www.yourwebapp.example\nScope=http://a/ http://b/\nSecure=true\n",
        )
        .unwrap();
        assert_eq!(info.target, "http://www.yourwebapp.example");
        assert_eq!(info.scopes, vec!["http://a/", "http://b/"]);
        assert!(info.secure);
        assert!(matches!(
            parse_token_info("Target=x\nScope=y\nSecure=maybe\n"),
            Err(AuthSubError::Malformed(_))
        ));
        assert!(matches!(
            parse_token_info("Scope=y\nSecure=false\n"),
            Err(AuthSubError::Malformed(_))
        ));
    }

    #[test]
    fn signed_data_layout() {
        let data = signed_data(
            "get",
            "https://www.google.com/calendar/feeds/default/private/full",
            1300000000,
            15113559630804518020,
        );
        assert_eq!(
            data,
            "GET https://www.google.com/calendar/feeds/default/private/full 1300000000 15113559630804518020"
        );
    }

    #[test]
    fn unsigned_header_quotes_the_token() {
        let client = AuthSubClient::new(Url::parse("https://accounts.example.test").unwrap());
        let header = client
            .authorization_header(
                &Secret::new("CKF50"),
                "GET",
                &Url::parse("https://x.test/feed").unwrap(),
            )
            .unwrap();
        assert_eq!(header, "AuthSub token=\"CKF50\"");
    }
}
