//! OAuth 2.0 client helpers: authorization URLs with PKCE (RFC 7636), code exchange, refresh,
//! client credentials (RFC 6749), revocation (RFC 7009) and introspection (RFC 7662).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Deserializer};
use url::Url;

use crate::discovery::{self, DiscoveryError, ProviderMetadata};
use crate::secret::Secret;

/// A random URL-safe string carrying `n_bytes` of entropy (state, nonce, PKCE verifier).
///
/// # Panics
///
/// If the operating system's random number generator fails.
pub fn random_token(n_bytes: usize) -> String {
    let mut bytes = vec![0u8; n_bytes];
    // aws-lc-rs reads the OS RNG; failure there is not recoverable for a security library.
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::fill(&mut bytes).expect("operating system RNG failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The `Authorization` header value that presents `access_token` as a bearer token (RFC 6750
/// §2.1), for requests made by hand or handed to a caller check.
pub fn bearer_authorization(access_token: &str) -> String {
    format!("Bearer {access_token}")
}

/// A PKCE code verifier (RFC 7636 §4.1). Keep it until the code exchange.
#[derive(Clone, PartialEq, Eq)]
pub struct PkceVerifier(Secret);

impl PkceVerifier {
    /// A fresh verifier: 32 random bytes, base64url (43 characters).
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails.
    pub fn generate() -> Self {
        Self(Secret::new(random_token(32)))
    }

    /// Wraps a verifier kept from earlier (e.g. in the user's session).
    pub fn from_string(verifier: impl Into<String>) -> Self {
        Self(Secret::new(verifier))
    }

    /// The verifier, for storing and for the token request.
    pub fn secret(&self) -> &str {
        self.0.expose()
    }

    /// The `S256` challenge: `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2).
    pub fn challenge(&self) -> String {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.secret().as_bytes());
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    }
}

impl fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PkceVerifier([redacted])")
    }
}

/// How the client authenticates at the token, revocation and introspection endpoints (RFC 6749 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-encoded id and secret (`client_secret_basic`).
    Basic,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    Post,
    /// A public client: only `client_id` in the form body.
    None,
}

/// The endpoints a client talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// RFC 6749 §3.1.
    pub authorization: Url,
    /// RFC 6749 §3.2.
    pub token: Url,
    /// RFC 7009.
    pub revocation: Option<Url>,
    /// RFC 7662.
    pub introspection: Option<Url>,
}

impl From<&ProviderMetadata> for Endpoints {
    fn from(metadata: &ProviderMetadata) -> Self {
        Self {
            authorization: metadata.authorization_endpoint.clone(),
            token: metadata.token_endpoint.clone(),
            revocation: metadata.revocation_endpoint.clone(),
            introspection: metadata.introspection_endpoint.clone(),
        }
    }
}

/// RFC 6749 §5.2 and RFC 7009 §2.2.1 error codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`
    InvalidClient,
    /// `invalid_grant`
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `invalid_scope`
    InvalidScope,
    /// `unsupported_token_type` (RFC 7009)
    UnsupportedTokenType,
    /// `invalid_token`
    InvalidToken,
    /// Any other code, verbatim.
    Other(String),
}

impl ErrorCode {
    fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "unsupported_token_type" => Self::UnsupportedTokenType,
            "invalid_token" => Self::InvalidToken,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidToken => "invalid_token",
            Self::Other(it) => it,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error response from the server (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    /// The HTTP status.
    pub status: u16,
    /// `error`
    pub error: ErrorCode,
    /// `error_description`
    pub error_description: Option<String>,
    /// `error_uri`
    pub error_uri: Option<String>,
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {})", self.error, self.status)?;
        if let Some(description) = &self.error_description {
            write!(f, ": {description}")?;
        }
        Ok(())
    }
}

/// Why an OAuth 2.0 request failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The server answered with an RFC 6749 §5.2 error.
    #[error("server error: {0}")]
    Server(ErrorResponse),
    /// The request failed or the success body was not the expected JSON.
    #[error("HTTP request failed")]
    Http(#[from] reqwest::Error),
    /// A non-success status without an RFC 6749 error body.
    #[error("unexpected HTTP {status} response")]
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
    },
    /// The provider does not publish the endpoint this call needs.
    #[error("the provider has no {0} endpoint")]
    MissingEndpoint(&'static str),
    /// Discovery failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: Secret,
    /// Usually `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds (accepts a JSON string too).
    #[serde(default, deserialize_with = "opt_u64_or_string")]
    pub expires_in: Option<u64>,
    /// Present on the first offline exchange; refresh responses usually omit it.
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    /// The ID token, when `openid` was requested. Verify it with [`crate::id_token::IdTokenVerifier`].
    #[serde(default)]
    pub id_token: Option<String>,
    /// Granted scopes, space-separated, when they differ from the requested ones.
    #[serde(default)]
    pub scope: Option<String>,
    /// Every other member.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// An introspection response (RFC 7662 §2.2).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Introspection {
    /// Whether the token is currently active.
    pub active: bool,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Human-readable identifier of the resource owner.
    #[serde(default)]
    pub username: Option<String>,
    /// The token type.
    #[serde(default)]
    pub token_type: Option<String>,
    /// Expiry, Unix seconds.
    #[serde(default, deserialize_with = "opt_u64_or_string")]
    pub exp: Option<u64>,
    /// Issued at, Unix seconds.
    #[serde(default, deserialize_with = "opt_u64_or_string")]
    pub iat: Option<u64>,
    /// The resource owner.
    #[serde(default)]
    pub sub: Option<String>,
    /// The issuer.
    #[serde(default)]
    pub iss: Option<String>,
    /// Every other member.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Introspection {
    /// The scopes as a list.
    pub fn scopes(&self) -> Vec<String> {
        self.scope.as_deref().unwrap_or("").split_ascii_whitespace().map(str::to_owned).collect()
    }
}

/// `token_type_hint` for revocation and introspection (RFC 7009 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    /// `access_token`
    AccessToken,
    /// `refresh_token`
    RefreshToken,
}

impl TokenTypeHint {
    fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// `access_type` (Google extension): `offline` asks for a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessType {
    /// `online` (the default).
    Online,
    /// `offline`: a refresh token on the first code exchange.
    Offline,
}

/// An OAuth 2.0 client: one client id at one provider.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    endpoints: Endpoints,
    client_id: String,
    client_secret: Option<Secret>,
    auth_method: ClientAuthMethod,
}

impl OAuthClient {
    /// A public client (no secret) for `endpoints`.
    pub fn new(endpoints: Endpoints, client_id: impl Into<String>) -> Self {
        Self {
            http: crate::default_http_client(),
            endpoints,
            client_id: client_id.into(),
            client_secret: None,
            auth_method: ClientAuthMethod::None,
        }
    }

    /// A client whose endpoints come from `issuer`'s discovery document.
    pub async fn discover(
        http: reqwest::Client,
        issuer: &str,
        client_id: impl Into<String>,
    ) -> Result<Self, OAuthError> {
        let metadata = discovery::discover(&http, issuer).await?;
        Ok(Self::new(Endpoints::from(&metadata), client_id).with_http_client(http))
    }

    /// Authenticates with `secret` using `method` (use [`ClientAuthMethod::Basic`] unless the client is registered otherwise).
    #[must_use]
    pub fn with_secret(mut self, secret: impl Into<Secret>, method: ClientAuthMethod) -> Self {
        self.client_secret = Some(secret.into());
        self.auth_method = method;
        self
    }

    /// Uses `http` for every request.
    #[must_use]
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Starts an authorization request (RFC 6749 §4.1.1) that returns to `redirect_uri`.
    pub fn authorize(&self, redirect_uri: impl Into<String>) -> AuthorizationRequestBuilder<'_> {
        AuthorizationRequestBuilder {
            client: self,
            redirect_uri: redirect_uri.into(),
            scopes: Vec::new(),
            state: None,
            nonce: None,
            extra: Vec::new(),
        }
    }

    /// Exchanges an authorization code (RFC 6749 §4.1.3, RFC 7636 §4.5).
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &PkceVerifier,
    ) -> Result<TokenResponse, OAuthError> {
        let form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", pkce_verifier.secret()),
        ];
        self.token_request(form).await
    }

    /// Gets a new access token with a refresh token (RFC 6749 §6). An empty `scopes` keeps the granted ones.
    pub async fn refresh(
        &self,
        refresh_token: &Secret,
        scopes: &[&str],
    ) -> Result<TokenResponse, OAuthError> {
        let scope = scopes.join(" ");
        let mut form =
            vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose())];
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        self.token_request(form).await
    }

    /// Gets a token for the client itself (RFC 6749 §4.4).
    pub async fn client_credentials(&self, scopes: &[&str]) -> Result<TokenResponse, OAuthError> {
        let scope = scopes.join(" ");
        let mut form = vec![("grant_type", "client_credentials")];
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        self.token_request(form).await
    }

    /// Revokes an access or refresh token (RFC 7009 §2.1).
    pub async fn revoke(
        &self,
        token: &Secret,
        hint: Option<TokenTypeHint>,
    ) -> Result<(), OAuthError> {
        let url =
            self.endpoints.revocation.clone().ok_or(OAuthError::MissingEndpoint("revocation"))?;
        let mut form = vec![("token", token.expose())];
        if let Some(hint) = hint {
            form.push(("token_type_hint", hint.as_str()));
        }
        let res = self.authenticated_post(url, form).send().await?;
        match res.status().is_success() {
            true => Ok(()),
            false => Err(error_from_response(res).await),
        }
    }

    /// Asks the server about a token (RFC 7662 §2.1).
    pub async fn introspect(
        &self,
        token: &str,
        hint: Option<TokenTypeHint>,
    ) -> Result<Introspection, OAuthError> {
        let url = self
            .endpoints
            .introspection
            .clone()
            .ok_or(OAuthError::MissingEndpoint("introspection"))?;
        let mut form = vec![("token", token)];
        if let Some(hint) = hint {
            form.push(("token_type_hint", hint.as_str()));
        }
        let res = self.authenticated_post(url, form).send().await?;
        match res.status().is_success() {
            true => Ok(res.json().await?),
            false => Err(error_from_response(res).await),
        }
    }

    async fn token_request(&self, form: Vec<(&str, &str)>) -> Result<TokenResponse, OAuthError> {
        let res = self.authenticated_post(self.endpoints.token.clone(), form).send().await?;
        match res.status().is_success() {
            true => Ok(res.json().await?),
            false => Err(error_from_response(res).await),
        }
    }

    /// A form POST carrying the client's credentials per its [`ClientAuthMethod`].
    fn authenticated_post<'a>(
        &'a self,
        url: Url,
        mut form: Vec<(&'a str, &'a str)>,
    ) -> reqwest::RequestBuilder {
        let mut req = self.http.post(url).header(http::header::ACCEPT, "application/json");
        match (self.auth_method, &self.client_secret) {
            (ClientAuthMethod::Basic, Some(secret)) => {
                req = req.header(
                    http::header::AUTHORIZATION,
                    basic_authorization(&self.client_id, secret.expose()),
                );
            }
            (ClientAuthMethod::Post, Some(secret)) => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", secret.expose()));
            }
            _ => form.push(("client_id", &self.client_id)),
        }
        req.form(&form)
    }
}

/// `Basic` credentials per RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
fn basic_authorization(client_id: &str, secret: &str) -> String {
    let encode = |it: &str| url::form_urlencoded::byte_serialize(it.as_bytes()).collect::<String>();
    format!("Basic {}", STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret))))
}

async fn error_from_response(res: reqwest::Response) -> OAuthError {
    #[derive(Deserialize)]
    struct Body {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
        #[serde(default)]
        error_uri: Option<String>,
    }
    let status = res.status().as_u16();
    let body = match res.bytes().await {
        Ok(body) => body,
        Err(err) => return OAuthError::Http(err),
    };
    match serde_json::from_slice::<Body>(&body) {
        Ok(body) => OAuthError::Server(ErrorResponse {
            status,
            error: ErrorCode::parse(&body.error),
            error_description: body.error_description,
            error_uri: body.error_uri,
        }),
        Err(_) => OAuthError::UnexpectedStatus { status },
    }
}

/// Builds an authorization URL; state, nonce and a PKCE S256 pair are generated unless given.
#[derive(Debug)]
#[must_use]
pub struct AuthorizationRequestBuilder<'a> {
    client: &'a OAuthClient,
    redirect_uri: String,
    scopes: Vec<String>,
    state: Option<String>,
    nonce: Option<String>,
    extra: Vec<(String, String)>,
}

/// A ready authorization request: send the user to `url`, keep the rest for the callback.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The URL to send the browser to.
    pub url: Url,
    /// `state`: compare with the callback's before exchanging the code.
    pub state: String,
    /// `nonce`: pass to [`crate::id_token::IdTokenVerifier::verify_with_nonce`].
    pub nonce: String,
    /// The PKCE verifier for [`OAuthClient::exchange_code`].
    pub pkce_verifier: PkceVerifier,
}

impl AuthorizationRequestBuilder<'_> {
    /// Adds a scope (e.g. `openid`, `email`).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Uses `state` instead of a random one.
    pub fn state(mut self, state: impl Into<String>) -> Self {
        self.state = Some(state.into());
        self
    }

    /// Uses `nonce` instead of a random one.
    pub fn nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// `access_type=online|offline`.
    pub fn access_type(self, access_type: AccessType) -> Self {
        let value = match access_type {
            AccessType::Online => "online",
            AccessType::Offline => "offline",
        };
        self.param("access_type", value)
    }

    /// `prompt` (space-separated `none`, `consent`, `select_account`).
    pub fn prompt(self, prompt: impl Into<String>) -> Self {
        self.param("prompt", prompt)
    }

    /// `login_hint`: an e-mail address or `sub` to pre-select.
    pub fn login_hint(self, hint: impl Into<String>) -> Self {
        self.param("login_hint", hint)
    }

    /// `hd`: restrict to a hosted domain (`*` for any).
    pub fn hd(self, domain: impl Into<String>) -> Self {
        self.param("hd", domain)
    }

    /// Any other parameter, e.g. `include_granted_scopes=true`.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }

    /// Builds the URL.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails.
    pub fn build(self) -> AuthorizationRequest {
        let state = self.state.unwrap_or_else(|| random_token(16));
        let nonce = self.nonce.unwrap_or_else(|| random_token(16));
        let pkce_verifier = PkceVerifier::generate();
        let mut url = self.client.endpoints.authorization.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client.client_id)
                .append_pair("redirect_uri", &self.redirect_uri);
            if !self.scopes.is_empty() {
                query.append_pair("scope", &self.scopes.join(" "));
            }
            query
                .append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &pkce_verifier.challenge())
                .append_pair("code_challenge_method", "S256");
            for (name, value) in &self.extra {
                query.append_pair(name, value);
            }
        }
        AuthorizationRequest { url, state, nonce, pkce_verifier }
    }
}

fn opt_u64_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrString {
        Number(u64),
        String(String),
    }
    match Option::<NumberOrString>::deserialize(deserializer)? {
        None => Ok(None),
        Some(NumberOrString::Number(it)) => Ok(Some(it)),
        Some(NumberOrString::String(it)) => it.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn client() -> OAuthClient {
        let endpoints = Endpoints {
            authorization: Url::parse("https://accounts.example.test/o/oauth2/auth").unwrap(),
            token: Url::parse("https://accounts.example.test/o/oauth2/token").unwrap(),
            revocation: None,
            introspection: None,
        };
        OAuthClient::new(endpoints, "123.apps.example.test")
    }

    #[test]
    fn bearer_authorization_is_rfc6750_form() {
        assert_eq!(bearer_authorization("ya29.abc"), "Bearer ya29.abc");
    }

    #[test]
    fn pkce_challenge_matches_rfc7636_appendix_b() {
        let verifier = PkceVerifier::from_string("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(verifier.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn generated_verifiers_are_43_chars_and_distinct() {
        let (a, b) = (PkceVerifier::generate(), PkceVerifier::generate());
        assert_eq!(a.secret().len(), 43);
        assert_ne!(a.secret(), b.secret());
        assert_eq!(format!("{a:?}"), "PkceVerifier([redacted])");
    }

    #[test]
    fn authorization_url_carries_every_parameter() {
        let client = client();
        let req = client
            .authorize("https://app.example.test/cb")
            .scope("openid")
            .scope("email")
            .access_type(AccessType::Offline)
            .prompt("consent")
            .login_hint("alice@example.com")
            .hd("example.com")
            .state("xyz")
            .build();
        let query: HashMap<_, _> = req.url.query_pairs().into_owned().collect();
        assert_eq!(req.url.path(), "/o/oauth2/auth");
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["client_id"], "123.apps.example.test");
        assert_eq!(query["redirect_uri"], "https://app.example.test/cb");
        assert_eq!(query["scope"], "openid email");
        assert_eq!(query["state"], "xyz");
        assert_eq!(req.state, "xyz");
        assert_eq!(query["nonce"], req.nonce);
        assert_eq!(query["code_challenge"], req.pkce_verifier.challenge());
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["access_type"], "offline");
        assert_eq!(query["prompt"], "consent");
        assert_eq!(query["login_hint"], "alice@example.com");
        assert_eq!(query["hd"], "example.com");
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        let header = basic_authorization("a b", "p:ss");
        let decoded = STANDARD.decode(header.trim_start_matches("Basic ")).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "a+b:p%3Ass");
    }

    #[test]
    fn token_response_accepts_string_expires_in() {
        let json = r#"{"access_token":"ya29.x","token_type":"Bearer","expires_in":"3600","id_token":"a.b.c"}"#;
        let res: TokenResponse = serde_json::from_str(json).unwrap();
        assert_eq!(res.expires_in, Some(3600));
        assert_eq!(res.access_token.expose(), "ya29.x");
        assert!(res.refresh_token.is_none());
        assert!(!format!("{res:?}").contains("ya29"));
    }

    #[test]
    fn error_codes_round_trip() {
        for code in [
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "invalid_scope",
            "unsupported_token_type",
            "slow_down",
        ] {
            assert_eq!(ErrorCode::parse(code).as_str(), code);
        }
        assert_eq!(ErrorCode::parse("invalid_grant"), ErrorCode::InvalidGrant);
    }
}
