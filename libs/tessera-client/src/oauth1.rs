//! OAuth 1.0a (legacy-auth §4): a request signer (HMAC-SHA1; RSA-SHA1 behind the
//! `authsub-secure` feature) and the three-legged dance (request token, authorization URL,
//! access token).

use std::sync::Arc;

use url::Url;

use crate::clock::{Clock, SystemClock};
use crate::secret::Secret;

/// Percent-encodes `text` as OAuth 1.0 requires (RFC 5849 §3.6): everything but
/// `A-Z a-z 0-9 - . _ ~` becomes `%XX` with upper-case hex digits.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The signature base string (RFC 5849 §3.4.1): the method, the base string URI (the URL without
/// query and fragment, default port dropped) and the sorted, encoded parameters — `params` plus
/// the URL's own query pairs.
pub fn base_string(method: &str, url: &Url, params: &[(String, String)]) -> String {
    let mut uri = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        uri.push_str(&format!(":{port}"));
    }
    uri.push_str(url.path());
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())))
        .map(|(k, v)| (encode(&k), encode(&v)))
        .collect();
    pairs.sort();
    let normalized: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{}&{}&{}", method.to_ascii_uppercase(), encode(&uri), encode(&normalized.join("&")))
}

/// How a consumer signs.
#[derive(Clone)]
pub enum SignatureMethod {
    /// `HMAC-SHA1` with the consumer secret (and the token secret).
    HmacSha1(Secret),
    /// `RSA-SHA1` with the private key whose certificate the consumer registered.
    #[cfg(feature = "authsub-secure")]
    RsaSha1(Box<crate::authsub::AuthSubSigner>),
}

impl std::fmt::Debug for SignatureMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl SignatureMethod {
    /// The `oauth_signature_method` value.
    pub fn name(&self) -> &'static str {
        match self {
            Self::HmacSha1(_) => "HMAC-SHA1",
            #[cfg(feature = "authsub-secure")]
            Self::RsaSha1(_) => "RSA-SHA1",
        }
    }

    /// The base64 signature of `base` (`token_secret` is empty for calls without a token).
    pub fn sign(&self, base: &str, token_secret: &str) -> Result<String, OAuth1Error> {
        use base64::Engine as _;
        match self {
            Self::HmacSha1(secret) => {
                let key = format!("{}&{}", encode(secret.expose()), encode(token_secret));
                let key = aws_lc_rs::hmac::Key::new(
                    aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                    key.as_bytes(),
                );
                let tag = aws_lc_rs::hmac::sign(&key, base.as_bytes());
                Ok(base64::engine::general_purpose::STANDARD.encode(tag.as_ref()))
            }
            #[cfg(feature = "authsub-secure")]
            Self::RsaSha1(signer) => signer.sign(base).map_err(|_| OAuth1Error::Signing),
        }
    }
}

/// A registered consumer: its key (the registered domain, or `anonymous`) and how it signs.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// `oauth_consumer_key`.
    pub key: String,
    /// The signature method and its secret.
    pub method: SignatureMethod,
}

/// A token and its secret (a request token or an access token).
#[derive(Debug, Clone)]
pub struct Token {
    /// `oauth_token`.
    pub token: Secret,
    /// `oauth_token_secret`.
    pub secret: Secret,
}

/// What one signed request needs besides the consumer.
#[derive(Debug, Clone, Default)]
pub struct SignRequest<'a> {
    /// The token and its secret, if any.
    pub token: Option<&'a Token>,
    /// Further `oauth_*` parameters for the header (`oauth_callback`, `oauth_verifier`).
    pub oauth: Vec<(&'a str, &'a str)>,
    /// Form body pairs (`application/x-www-form-urlencoded`), which the signature covers.
    pub form: Vec<(&'a str, &'a str)>,
}

impl Consumer {
    /// The `Authorization: OAuth …` value for `method` on `url`, stamped `timestamp` and `nonce`.
    pub fn authorization_header(
        &self,
        method: &str,
        url: &Url,
        request: &SignRequest<'_>,
        timestamp: u64,
        nonce: &str,
    ) -> Result<String, OAuth1Error> {
        let timestamp = timestamp.to_string();
        let mut oauth: Vec<(String, String)> = vec![
            ("oauth_consumer_key".to_owned(), self.key.clone()),
            ("oauth_nonce".to_owned(), nonce.to_owned()),
            ("oauth_signature_method".to_owned(), self.method.name().to_owned()),
            ("oauth_timestamp".to_owned(), timestamp),
            ("oauth_version".to_owned(), "1.0".to_owned()),
        ];
        if let Some(token) = request.token {
            oauth.push(("oauth_token".to_owned(), token.token.expose().to_owned()));
        }
        oauth.extend(request.oauth.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut covered = oauth.clone();
        covered.extend(request.form.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let base = base_string(method, url, &covered);
        let token_secret = request.token.map(|token| token.secret.expose()).unwrap_or_default();
        let signature = self.method.sign(&base, token_secret)?;
        oauth.push(("oauth_signature".to_owned(), signature));
        let fields: Vec<String> =
            oauth.iter().map(|(k, v)| format!("{}=\"{}\"", encode(k), encode(v))).collect();
        Ok(format!("OAuth {}", fields.join(", ")))
    }
}

/// Why an OAuth 1.0a call failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuth1Error {
    /// The request failed.
    #[error("OAuth 1.0 request failed")]
    Http(#[from] reqwest::Error),
    /// The server refused; `problem` is its `oauth_problem` word (e.g. `token_rejected`).
    #[error("OAuth 1.0 server answered HTTP {status}: {problem}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The first line of the body.
        problem: String,
    },
    /// The response did not follow the wire format.
    #[error("malformed OAuth 1.0 response: {0}")]
    Malformed(&'static str),
    /// Signing failed.
    #[error("OAuth 1.0 signing failed")]
    Signing,
    /// The base URL could not be joined with an endpoint path.
    #[error("invalid base URL")]
    InvalidBase(#[from] url::ParseError),
}

/// A random nonce: 32 hex digits.
///
/// # Panics
///
/// If the operating system's random number generator fails.
fn random_nonce() -> String {
    let mut bytes = [0u8; 16];
    // aws-lc-rs reads the OS RNG; failure there is not recoverable for a security library.
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::fill(&mut bytes).expect("operating system RNG failed");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The three-legged dance with one server for one consumer.
#[derive(Debug, Clone)]
pub struct OAuth1Client {
    http: reqwest::Client,
    base: Url,
    consumer: Consumer,
    clock: Arc<dyn Clock>,
    deprecation: crate::deprecation::LastNotice,
}

impl OAuth1Client {
    /// A client of the server at `base` (e.g. `https://accounts.example.test/`) for `consumer`.
    pub fn new(base: Url, consumer: Consumer) -> Self {
        let mut base = base;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Self {
            http: crate::default_http_client(),
            base,
            consumer,
            clock: Arc::new(SystemClock),
            deprecation: Default::default(),
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

    /// Uses `clock` for `oauth_timestamp`.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The signed `Authorization` value for a resource request with an access token.
    pub fn authorization_header(
        &self,
        method: &str,
        url: &Url,
        access: &Token,
    ) -> Result<String, OAuth1Error> {
        let request = SignRequest { token: Some(access), ..SignRequest::default() };
        self.consumer.authorization_header(
            method,
            url,
            &request,
            self.clock.unix_seconds(),
            &random_nonce(),
        )
    }

    async fn post(&self, url: Url, request: &SignRequest<'_>) -> Result<String, OAuth1Error> {
        let header = self.consumer.authorization_header(
            "POST",
            &url,
            request,
            self.clock.unix_seconds(),
            &random_nonce(),
        )?;
        let res =
            self.http.post(url.clone()).header(http::header::AUTHORIZATION, header).send().await?;
        self.deprecation.observe(&url, res.headers());
        let status = res.status().as_u16();
        let body = res.text().await?;
        if status != 200 {
            let problem = body.lines().next().unwrap_or_default().to_owned();
            return Err(OAuth1Error::Rejected { status, problem });
        }
        Ok(body)
    }

    /// `OAuthGetRequestToken` for `scopes`; `callback` is an absolute URL or `oob`.
    pub async fn request_token(
        &self,
        scopes: &[&str],
        callback: &str,
    ) -> Result<Token, OAuth1Error> {
        let mut url = self.base.join("accounts/OAuthGetRequestToken")?;
        url.query_pairs_mut().append_pair("scope", &scopes.join(" "));
        let request =
            SignRequest { oauth: vec![("oauth_callback", callback)], ..SignRequest::default() };
        token_from(&self.post(url, &request).await?)
    }

    /// The `OAuthAuthorizeToken` URL to send the browser to; `hosted_domain` is `hd`.
    pub fn authorize_url(
        &self,
        request_token: &Token,
        hosted_domain: Option<&str>,
    ) -> Result<Url, OAuth1Error> {
        let mut url = self.base.join("accounts/OAuthAuthorizeToken")?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("oauth_token", request_token.token.expose());
            if let Some(hd) = hosted_domain {
                query.append_pair("hd", hd);
            }
        }
        Ok(url)
    }

    /// `OAuthGetAccessToken`: exchanges an authorized request token (with the verifier the
    /// callback carried; `None` for the OpenID hybrid's token) for an access token.
    pub async fn access_token(
        &self,
        request_token: &Token,
        verifier: Option<&str>,
    ) -> Result<Token, OAuth1Error> {
        let url = self.base.join("accounts/OAuthGetAccessToken")?;
        let mut request = SignRequest { token: Some(request_token), ..SignRequest::default() };
        if let Some(verifier) = verifier {
            request.oauth.push(("oauth_verifier", verifier));
        }
        token_from(&self.post(url, &request).await?)
    }
}

/// The verifier from the URL the browser came back to (a full URL or its query string).
pub fn verifier_from_callback(reply: &str) -> Option<String> {
    let query = match Url::parse(reply) {
        Ok(url) => url.query().unwrap_or("").to_owned(),
        Err(_) => reply.trim_start_matches('?').to_owned(),
    };
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "oauth_verifier")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

/// `oauth_token` and `oauth_token_secret` from a token endpoint's form-encoded body.
fn token_from(body: &str) -> Result<Token, OAuth1Error> {
    let find = |key: &str| {
        url::form_urlencoded::parse(body.trim().as_bytes())
            .find(|(name, _)| name == key)
            .map(|(_, value)| Secret::new(value.into_owned()))
    };
    let token = find("oauth_token").ok_or(OAuth1Error::Malformed("no oauth_token"))?;
    let secret =
        find("oauth_token_secret").ok_or(OAuth1Error::Malformed("no oauth_token_secret"))?;
    Ok(Token { token, secret })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac(secret: &str) -> SignatureMethod {
        SignatureMethod::HmacSha1(Secret::new(secret))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn vector_6_1_request_token_for_the_anonymous_consumer() {
        let scope = "https://www.google.com/calendar/feeds/ https://www.google.com/m8/feeds/";
        let mut url =
            Url::parse("https://accounts.example.test/accounts/OAuthGetRequestToken").unwrap();
        url.query_pairs_mut()
            .append_pair("scope", scope)
            .append_pair("xoauth_displayname", "Example App");
        let params = pairs(&[
            ("oauth_consumer_key", "anonymous"),
            ("oauth_nonce", "1234567890abcdef"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "1300000000"),
            ("oauth_version", "1.0"),
            ("oauth_callback", "http://app.example.com/cb?x=1"),
        ]);
        let base = base_string("GET", &url, &params);
        assert_eq!(
            base,
            "GET&https%3A%2F%2Faccounts.example.test%2Faccounts%2FOAuthGetRequestToken&oauth_callback%3Dhttp%253A%252F%252Fapp.example.com%252Fcb%253Fx%253D1%26oauth_consumer_key%3Danonymous%26oauth_nonce%3D1234567890abcdef%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1300000000%26oauth_version%3D1.0%26scope%3Dhttps%253A%252F%252Fwww.google.com%252Fcalendar%252Ffeeds%252F%2520https%253A%252F%252Fwww.google.com%252Fm8%252Ffeeds%252F%26xoauth_displayname%3DExample%2520App"
        );
        assert_eq!(hmac("anonymous").sign(&base, "").unwrap(), "GFTTAuOk48VXj2pGRq4W5xbx4hU=");
        // The same through the header builder.
        let consumer = Consumer { key: "anonymous".to_owned(), method: hmac("anonymous") };
        let request = SignRequest {
            oauth: vec![("oauth_callback", "http://app.example.com/cb?x=1")],
            ..SignRequest::default()
        };
        let header = consumer
            .authorization_header("GET", &url, &request, 1_300_000_000, "1234567890abcdef")
            .unwrap();
        assert!(header.starts_with("OAuth oauth_consumer_key=\"anonymous\", "), "{header}");
        assert!(header.ends_with("oauth_signature=\"GFTTAuOk48VXj2pGRq4W5xbx4hU%3D\""), "{header}");
    }

    #[test]
    fn vector_6_2_hybrid_access_token_with_an_empty_token_secret() {
        let url = Url::parse("https://accounts.example.test/accounts/OAuthGetAccessToken").unwrap();
        let consumer =
            Consumer { key: "www.example.com".to_owned(), method: hmac("s3cr3tConsumerSecret") };
        let token =
            Token { token: Secret::new("4/AbCdEfGhIjKlMnOpQrStUvWxYz01"), secret: Secret::new("") };
        let request = SignRequest { token: Some(&token), ..SignRequest::default() };
        let header = consumer
            .authorization_header("POST", &url, &request, 1_300_000_100, "9f8e7d6c5b4a")
            .unwrap();
        assert!(
            header.ends_with("oauth_signature=\"0%2FakfxmDyWPJUmiF70vBEXIx0Jc%3D\""),
            "{header}"
        );
    }

    #[test]
    fn vector_6_3_two_legged_with_a_requestor_id() {
        let url = Url::parse("https://www.google.com/m8/feeds/contacts/default/full?max-results=25&xoauth_requestor_id=alice%40example.com").unwrap();
        let params = pairs(&[
            ("oauth_consumer_key", "example.com"),
            ("oauth_nonce", "42424242"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "1300000200"),
            ("oauth_version", "1.0"),
        ]);
        let base = base_string("GET", &url, &params);
        assert_eq!(
            base,
            "GET&https%3A%2F%2Fwww.google.com%2Fm8%2Ffeeds%2Fcontacts%2Fdefault%2Ffull&max-results%3D25%26oauth_consumer_key%3Dexample.com%26oauth_nonce%3D42424242%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1300000200%26oauth_version%3D1.0%26xoauth_requestor_id%3Dalice%2540example.com"
        );
        assert_eq!(
            hmac("DomainConsumerSecret").sign(&base, "").unwrap(),
            "yxWYSl8t4uMx4j5wEKllt6DfhAI="
        );
    }

    #[test]
    fn vector_6_5_the_specifications_example() {
        let url =
            Url::parse("http://photos.example.net/photos?file=vacation.jpg&size=original").unwrap();
        let params = pairs(&[
            ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
            ("oauth_token", "nnch734d00sl2jdk"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "1191242096"),
            ("oauth_nonce", "kllo9940pd9333jh"),
            ("oauth_version", "1.0"),
        ]);
        let base = base_string("GET", &url, &params);
        let signature = hmac("kd94hf93k423kf44").sign(&base, "pfkkdhi9sl3r4s00").unwrap();
        assert_eq!(signature, "tR3+Ty81lMeYAr/Fid0kMTYa/WM=");
    }

    #[test]
    fn encoding_and_the_base_string_uri() {
        assert_eq!(encode("a b+c~d/é"), "a%20b%2Bc~d%2F%C3%A9");
        let url = Url::parse("HTTP://Example.COM:8080/a%20b?x=1#frag").unwrap();
        assert_eq!(
            base_string("get", &url, &[]),
            "GET&http%3A%2F%2Fexample.com%3A8080%2Fa%2520b&x%3D1"
        );
        let url = Url::parse("https://example.com:443/").unwrap();
        assert_eq!(base_string("POST", &url, &[]), "POST&https%3A%2F%2Fexample.com%2F&");
    }

    #[test]
    fn verifier_and_token_bodies() {
        assert_eq!(
            verifier_from_callback(
                "http://app.example.com/cb?x=1&oauth_token=4%2Fab&oauth_verifier=v-1"
            )
            .as_deref(),
            Some("v-1")
        );
        assert_eq!(verifier_from_callback("?oauth_token=4%2Fab"), None);
        let token = token_from("oauth_token=1%2Fx&oauth_token_secret=s").unwrap();
        assert_eq!((token.token.expose(), token.secret.expose()), ("1/x", "s"));
        assert!(token_from("oauth_token=1").is_err());
    }
}
