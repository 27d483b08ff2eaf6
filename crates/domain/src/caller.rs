//! "Who is calling, for which client, with which scopes?" — the one question every resource
//! server asks, answered here for every `Authorization` scheme: `Bearer` (OAuth 2.0), `OAuth`
//! (1.0a), `AuthSub`, `GoogleLogin auth=` (ClientLogin) and `key=` (API keys).
//!
//! [`parse_authorization`] is the one parser of `Authorization` header values; every credential it
//! yields is checked by the one validator, `credentials::find_valid`.

use tessera_store::{AccountRecord, CredentialKind};

use crate::credentials::{self, ClientLoginData, Valid};
use crate::{Ctx, Result};

pub use crate::credentials::Protocol;

/// The answer: who, through which client, allowed what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub protocol: Protocol,
    pub account_id: Option<String>,
    pub client_id: Option<String>,
    pub grant_id: Option<String>,
    /// Granted scopes (URL prefixes or short names).
    pub scopes: Vec<String>,
    /// The ClientLogin service the credential was issued for, where that is how access is scoped.
    pub service: Option<String>,
    /// The credential presented; `None` for a two-legged OAuth 1.0 call, which presents none
    /// (the consumer acts for `xoauth_requestor_id` under its domain's authorization).
    pub kind: Option<CredentialKind>,
    pub issued_at: i64,
    pub expires_at: Option<i64>,
    /// The account, as read with the credential (it may be used: the validator checked).
    pub account: Option<AccountRecord>,
}

impl Caller {
    /// Whether the caller may reach `scope_or_url`: a granted scope equals it or is a prefix of it.
    pub fn allows(&self, scope_or_url: &str) -> bool {
        self.scopes.iter().any(|granted| crate::services::covers(granted, scope_or_url))
    }

    fn from_valid(protocol: Protocol, valid: Valid, service: Option<String>) -> Caller {
        let scopes = valid.scopes().to_vec();
        let record = valid.record;
        Caller {
            protocol,
            account_id: record.account_id,
            client_id: record.client_id,
            grant_id: record.grant_id,
            scopes,
            service,
            kind: Some(record.kind),
            issued_at: record.created_at,
            expires_at: record.expires_at,
            account: valid.account,
        }
    }
}

/// A credential as presented on the wire, before anything is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    Bearer(String),
    /// `DPoP <access token>` (RFC 9449 §7.1): the request's `DPoP` header must prove its key.
    Dpop(String),
    /// `AuthSub token="…"`, with the secure-token signature fields when present.
    AuthSub {
        token: String,
        sigalg: Option<String>,
        data: Option<String>,
        sig: Option<String>,
    },
    /// `GoogleLogin auth=…`.
    GoogleLogin(String),
    /// `OAuth k="v", …` parameters, percent-decoded.
    OAuth1(Vec<(String, String)>),
    ApiKey(String),
    /// `AidLogin <device id>:<device credential>`: a push device (its Android ID with its master
    /// token, or its install id with its install credential). The credential may be empty: a
    /// device that has none yet.
    AidLogin {
        device: String,
        secret: String,
    },
}

/// Why a caller was not accepted. `Malformed` and `Invalid` are 401s; `BadSignature` is a 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    #[error("no credentials")]
    Missing,
    #[error("malformed credentials")]
    Malformed,
    #[error("invalid, expired or revoked credentials")]
    Invalid,
    #[error("bad signature")]
    BadSignature,
    #[error("this scheme is not accepted here")]
    Unsupported,
    /// An OAuth 1.0 refusal that names its `oauth_problem` word (two-legged calls).
    #[error("refused: {0}")]
    OAuth1Problem(&'static str),
}

/// The `Authorization` value that presents an OAuth 2.0 bearer token (the front-end proxy's
/// outgoing calls); [`parse_authorization`] reads it back as [`Presented::Bearer`].
pub fn bearer_authorization(token: &str) -> String {
    format!("Bearer {token}")
}

/// The `Authorization` value that presents a plain AuthSub token (the front-end proxy's outgoing
/// calls); [`parse_authorization`] reads it back as [`Presented::AuthSub`].
pub fn authsub_authorization(token: &str) -> String {
    format!("AuthSub token=\"{token}\"")
}

/// What signing one outgoing OAuth 1.0 request needs besides the request: the consumer and the
/// access token, each with its secret.
pub struct OAuth1Signer<'a> {
    pub consumer_key: &'a str,
    pub consumer_secret: &'a str,
    pub token: &'a str,
    pub token_secret: &'a str,
}

/// The `Authorization: OAuth …` value that signs `method` on `url` (absolute; its query is
/// covered) with the form body's pairs `form` (empty for any other body), stamped `timestamp` and
/// `nonce`: HMAC-SHA1 over the RFC 5849 base string, keyed `enc(consumer secret)&enc(token
/// secret)` (the front-end proxy's outgoing calls). The base string and encodings are
/// `tessera-proto-oauth1`'s, the verifier's own; [`parse_authorization`] reads the value back as
/// [`Presented::OAuth1`]. `None` when the URL is not absolute or its query is not form-encoded.
pub fn oauth1_authorization(
    signer: &OAuth1Signer<'_>,
    method: &str,
    url: &str,
    form: &[(String, String)],
    timestamp: i64,
    nonce: &str,
) -> Option<String> {
    use tessera_proto_oauth1::{base_string, base_string_uri, encode, parse_form, split_url};
    let (scheme, authority, path, query) = split_url(url)?;
    let query = parse_form(query).ok()?;
    let mut oauth: Vec<(String, String)> = [
        ("oauth_consumer_key", signer.consumer_key),
        ("oauth_nonce", nonce),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", &timestamp.to_string()),
        ("oauth_token", signer.token),
        ("oauth_version", "1.0"),
    ]
    .iter()
    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
    .collect();
    let covered: Vec<(String, String)> = oauth.iter().chain(&query).chain(form).cloned().collect();
    let base = base_string(method, &base_string_uri(scheme, authority, path), &covered);
    let key = format!("{}&{}", encode(signer.consumer_secret), encode(signer.token_secret));
    oauth.push((
        "oauth_signature".to_owned(),
        tessera_crypto::oauth1::hmac_sha1_base64(&key, &base),
    ));
    let fields: Vec<String> = oauth
        .iter()
        .map(|(name, value)| format!("{}=\"{}\"", encode(name), encode(value)))
        .collect();
    Some(format!("OAuth {}", fields.join(", ")))
}

/// Parses an `Authorization` header value. Parameter values may be quoted or bare.
pub fn parse_authorization(header: &str) -> Result<Presented, CallerError> {
    let header = header.trim();
    if header.is_empty() || header.len() > 8192 {
        return Err(if header.is_empty() { CallerError::Missing } else { CallerError::Malformed });
    }
    // GCM senders: `Authorization: key=<API key>` (no scheme word).
    if let Some(key) =
        header.get(..4).filter(|it| it.eq_ignore_ascii_case("key=")).map(|_| &header[4..])
    {
        if key.is_empty() || key.contains([' ', ',', '"']) {
            return Err(CallerError::Malformed);
        }
        return Ok(Presented::ApiKey(key.to_owned()));
    }
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let rest = rest.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => {
            if rest.is_empty() || rest.contains(' ') {
                return Err(CallerError::Malformed);
            }
            Ok(Presented::Bearer(rest.to_owned()))
        }
        "dpop" => {
            if rest.is_empty() || rest.contains(' ') {
                return Err(CallerError::Malformed);
            }
            Ok(Presented::Dpop(rest.to_owned()))
        }
        "authsub" => {
            let params = parse_params(rest)?;
            let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let token = get("token").filter(|it| !it.is_empty()).ok_or(CallerError::Malformed)?;
            Ok(Presented::AuthSub {
                token,
                sigalg: get("sigalg"),
                data: get("data"),
                sig: get("sig"),
            })
        }
        "googlelogin" => {
            let params = parse_params(rest)?;
            let auth = params
                .into_iter()
                .find(|(k, _)| k == "auth")
                .map(|(_, v)| v)
                .filter(|it| !it.is_empty())
                .ok_or(CallerError::Malformed)?;
            Ok(Presented::GoogleLogin(auth))
        }
        // Chromium and some old clients send `OAuth <access token>`: a bearer token by another name.
        "oauth" if !rest.is_empty() && !rest.contains([' ', '=', ',']) => {
            Ok(Presented::Bearer(rest.to_owned()))
        }
        "aidlogin" => {
            let (device, secret) = rest.split_once(':').ok_or(CallerError::Malformed)?;
            let device_ok = !device.is_empty()
                && device.len() <= 64
                && device.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !device_ok || secret.contains([' ', ',', '"']) {
                return Err(CallerError::Malformed);
            }
            Ok(Presented::AidLogin { device: device.to_owned(), secret: secret.to_owned() })
        }
        "oauth" => tessera_proto_oauth1::parse_header_params(rest)
            .map(Presented::OAuth1)
            .map_err(|_| CallerError::Malformed),
        _ => Err(CallerError::Unsupported),
    }
}

/// `a="b", c=d e="f"`: comma- or space-separated `name=value` pairs, values quoted or bare.
fn parse_params(text: &str) -> Result<Vec<(String, String)>, CallerError> {
    let mut out = Vec::new();
    let mut rest = text.trim_start_matches([' ', ',']);
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or(CallerError::Malformed)?;
        let name = rest[..eq].trim();
        if name.is_empty() || name.contains([' ', ',', '"']) {
            return Err(CallerError::Malformed);
        }
        let after = &rest[eq + 1..];
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').ok_or(CallerError::Malformed)?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => {
                let end = after.find([',', ' ']).unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if out.iter().any(|(k, _): &(String, String)| k == name) {
            return Err(CallerError::Malformed);
        }
        out.push((name.to_owned(), value.to_owned()));
        rest = remaining.trim_start_matches([' ', ',']);
    }
    Ok(out)
}

/// `Basic` credentials (RFC 7617): `Ok(None)` when the header names another scheme, `Err` when it
/// says `Basic` but is not base64 of `user:password` in UTF-8. The parts are returned as sent;
/// OAuth 2.0 form-decodes them (RFC 6749 §2.3.1).
pub fn parse_basic(header: &str) -> Result<Option<(String, String)>, CallerError> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| CallerError::Malformed)?;
    let text = String::from_utf8(raw).map_err(|_| CallerError::Malformed)?;
    let (user, password) = text.split_once(':').ok_or(CallerError::Malformed)?;
    Ok(Some((user.to_owned(), password.to_owned())))
}

/// Facts about the request that some schemes sign (AuthSub secure tokens, OAuth 1.0a).
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    pub method: String,
    /// The full request URL as the client addressed it (scheme, host, port, path, query).
    pub url: String,
    /// The `DPoP` header's proof, if the request carried exactly one.
    pub dpop_proof: Option<String>,
    /// The request's `application/x-www-form-urlencoded` body pairs, which an OAuth 1.0a
    /// signature covers (and which may carry the OAuth parameters themselves); empty otherwise.
    pub form: Vec<(String, String)>,
}

/// The presented credential of a request without an `Authorization` header whose OAuth 1.0a
/// parameters travel in its form body or query (RFC 5849 §3.5.2, §3.5.3): `None` when neither
/// carries `oauth_signature`.
pub fn oauth1_without_header(request: &RequestFacts) -> Option<Presented> {
    let query = request.url.split_once('?').map(|(_, query)| query).unwrap_or_default();
    let in_query = tessera_proto_oauth1::parse_form(query)
        .is_ok_and(|pairs| pairs.iter().any(|(k, _)| k == "oauth_signature"));
    let in_form = request.form.iter().any(|(k, _)| k == "oauth_signature");
    (in_query || in_form).then(|| Presented::OAuth1(Vec::new()))
}

/// Resolves a presented credential to its caller through the one validator
/// ([`credentials::find_valid`]): a disabled or deleted account, a revoked grant, a deleted
/// client or a switched-off protocol refuse it here as everywhere. Schemes a deployment does not
/// serve yet answer `Unsupported`.
pub async fn resolve(
    ctx: &Ctx,
    presented: &Presented,
    request: &RequestFacts,
) -> Result<Result<Caller, CallerError>> {
    match presented {
        Presented::Bearer(token) => bearer(ctx, token).await,
        Presented::Dpop(token) => dpop(ctx, token, request).await,
        Presented::AuthSub { token, sigalg, data, sig } => {
            let presented = crate::authsub::Presented {
                token,
                sigalg: sigalg.as_deref(),
                data: data.as_deref(),
                sig: sig.as_deref(),
            };
            authsub(ctx, presented, request).await
        }
        Presented::GoogleLogin(auth) => google_login(ctx, auth).await,
        Presented::OAuth1(params) => oauth1(ctx, params, request).await,
        _ => Ok(Err(CallerError::Unsupported)),
    }
}

/// An AuthSub token: a session token, or a single-use token, which this request uses up (it is
/// good for one request). Secure tokens must carry a valid signature of this very request.
async fn authsub(
    ctx: &Ctx,
    presented: crate::authsub::Presented<'_>,
    request: &RequestFacts,
) -> Result<Result<Caller, CallerError>> {
    let checked = match crate::authsub::check(ctx, presented, request).await? {
        Ok(checked) => checked,
        Err(err) => return Ok(Err(err)),
    };
    let record = &checked.record;
    if record.kind == CredentialKind::AuthsubSingleUse
        && ctx.store.credentials().consume(&record.digest, record.kind, ctx.now()).await?.is_none()
    {
        return Ok(Err(CallerError::Invalid));
    }
    let valid = Valid { record: checked.record, account: checked.account };
    Ok(Ok(Caller::from_valid(Protocol::AuthSub, valid, None)))
}

/// An OAuth 1.0a access token: the request the resource server saw (method, URL with its query,
/// the header's parameters) must carry a valid signature by its consumer and token secret.
async fn oauth1(
    ctx: &Ctx,
    params: &[(String, String)],
    request: &RequestFacts,
) -> Result<Result<Caller, CallerError>> {
    let incoming = crate::oauth1::Incoming {
        facts: request.clone(),
        header: params.to_vec(),
        form: request.form.clone(),
    };
    Ok(crate::oauth1::resolve(ctx, &incoming).await?.map(|resolved| match resolved {
        crate::oauth1::Resolved::Token(valid) => Caller::from_valid(Protocol::OAuth1, valid, None),
        crate::oauth1::Resolved::Requestor { grant, account } => Caller {
            protocol: Protocol::OAuth1,
            account_id: Some(account.id.clone()),
            client_id: Some(grant.client_id),
            grant_id: None,
            scopes: credentials::Scopes::parse(&grant.scopes).to_vec(),
            service: None,
            kind: None,
            issued_at: grant.created_at,
            expires_at: None,
            account: Some(account),
        },
    }))
}

/// A ClientLogin `Auth` token, valid for the one service it was issued for.
async fn google_login(ctx: &Ctx, auth: &str) -> Result<Result<Caller, CallerError>> {
    if auth.len() > 4096 {
        return Ok(Err(CallerError::Malformed));
    }
    let Some(valid) =
        credentials::find_valid(ctx, auth, &[CredentialKind::ClientLoginAuth]).await?
    else {
        return Ok(Err(CallerError::Invalid));
    };
    let service = credentials::data::<ClientLoginData>(&valid.record).service;
    Ok(Ok(Caller::from_valid(Protocol::ClientLogin, valid, Some(service))))
}

/// An OAuth 2.0 access token, opaque or JWT: a live `access_token` credential.
async fn bearer(ctx: &Ctx, token: &str) -> Result<Result<Caller, CallerError>> {
    if token.len() > 4096 {
        return Ok(Err(CallerError::Malformed));
    }
    let presentation = crate::oauth2::tokens::Presentation::Bearer;
    match crate::oauth2::tokens::validate_access_token(ctx, token, false, presentation).await? {
        Some(valid) => Ok(Ok(Caller::from_valid(Protocol::OAuth2, valid, None))),
        None => Ok(Err(CallerError::Invalid)),
    }
}

/// A DPoP-bound access token with its proof: the proof must be of this request and token, and the
/// token bound to the proof's key (the validator's binding check).
async fn dpop(
    ctx: &Ctx,
    token: &str,
    request: &RequestFacts,
) -> Result<Result<Caller, CallerError>> {
    if token.len() > 4096 {
        return Ok(Err(CallerError::Malformed));
    }
    let Some(proof) = request.dpop_proof.as_deref() else {
        return Ok(Err(CallerError::Invalid));
    };
    let url = request.url.split(['?', '#']).next().unwrap_or_default();
    let expected = crate::oauth2::dpop::Expected {
        method: &request.method,
        url,
        access_token: Some(token),
        nonce: false,
    };
    let Ok(jkt) = crate::oauth2::dpop::check(ctx, proof, &expected).await? else {
        return Ok(Err(CallerError::Invalid));
    };
    let presentation = crate::oauth2::tokens::Presentation::Dpop(&jkt);
    match crate::oauth2::tokens::validate_access_token(ctx, token, false, presentation).await? {
        Some(valid) => Ok(Ok(Caller::from_valid(Protocol::OAuth2, valid, None))),
        None => Ok(Err(CallerError::Invalid)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5849's example (§1.2, the same as OAuth Core 1.0 Appendix A.5): the signer's
    /// `Authorization` value carries the reference's signature, and parses back to the parameters
    /// it signed.
    #[test]
    fn the_oauth1_signer_gives_rfc_5849s_example_signature() {
        let signer = OAuth1Signer {
            consumer_key: "dpf43f3p2l4k3l03",
            consumer_secret: "kd94hf93k423kf44",
            token: "nnch734d00sl2jdk",
            token_secret: "pfkkdhi9sl3r4s00",
        };
        let url = "http://photos.example.net/photos?file=vacation.jpg&size=original";
        let value =
            oauth1_authorization(&signer, "GET", url, &[], 1191242096, "kllo9940pd9333jh").unwrap();
        let Presented::OAuth1(params) = parse_authorization(&value).unwrap() else {
            panic!("{value}")
        };
        let get = |name: &str| {
            params.iter().find(|(it, _)| it == name).map(|(_, value)| value.as_str()).unwrap()
        };
        assert_eq!(get("oauth_signature"), "tR3+Ty81lMeYAr/Fid0kMTYa/WM=");
        assert_eq!(get("oauth_consumer_key"), "dpf43f3p2l4k3l03");
        assert_eq!(get("oauth_token"), "nnch734d00sl2jdk");
        assert_eq!(get("oauth_signature_method"), "HMAC-SHA1");
        assert_eq!(get("oauth_timestamp"), "1191242096");
        assert_eq!(get("oauth_nonce"), "kllo9940pd9333jh");
        assert_eq!(get("oauth_version"), "1.0");
        assert!(value.contains("oauth_signature=\"tR3%2BTy81lMeYAr%2FFid0kMTYa%2FWM%3D\""));
    }

    /// A form body is covered: the same request with another body, method or URL signs
    /// differently; a query that is not form-encoded cannot be signed.
    #[test]
    fn the_oauth1_signer_covers_method_url_and_form_body() {
        let signer = OAuth1Signer {
            consumer_key: "feeds.example",
            consumer_secret: "c&s",
            token: "1/abc",
            token_secret: "t s",
        };
        let sign = |method: &str, url: &str, form: &[(&str, &str)]| {
            let form: Vec<(String, String)> =
                form.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            let value = oauth1_authorization(&signer, method, url, &form, 1_300_000_000, "n1");
            let Presented::OAuth1(params) = parse_authorization(&value.unwrap()).unwrap() else {
                panic!()
            };
            params.into_iter().find(|(name, _)| name == "oauth_signature").unwrap().1
        };
        let url = "https://api.example/feeds/default?max-results=5";
        let base = sign("POST", url, &[("title", "a b")]);
        assert_ne!(base, sign("POST", url, &[("title", "a c")]));
        assert_ne!(base, sign("PUT", url, &[("title", "a b")]));
        assert_ne!(base, sign("POST", "https://api.example/feeds/other", &[("title", "a b")]));
        assert_eq!(base, sign("post", url, &[("title", "a b")]), "the method is upper-cased");
        assert!(oauth1_authorization(&signer, "GET", "/relative", &[], 0, "n").is_none());
        assert!(
            oauth1_authorization(&signer, "GET", "https://api.example/x?a=%zz", &[], 0, "n")
                .is_none()
        );
    }

    #[test]
    fn the_values_the_proxy_sends_parse_back_to_what_they_present() {
        let token = "ya29.AbC-_~x";
        assert_eq!(
            parse_authorization(&bearer_authorization(token)).unwrap(),
            Presented::Bearer(token.to_owned())
        );
        assert_eq!(
            parse_authorization(&authsub_authorization("CKF50YzIHxCT85KMAg")).unwrap(),
            Presented::AuthSub {
                token: "CKF50YzIHxCT85KMAg".to_owned(),
                sigalg: None,
                data: None,
                sig: None
            }
        );
    }
    use proptest::prelude::*;

    #[test]
    fn basic_credentials_are_split_once() {
        assert_eq!(
            parse_basic("Basic YTpiOmM=").unwrap(),
            Some(("a".to_owned(), "b:c".to_owned()))
        );
        assert_eq!(parse_basic("Bearer x").unwrap(), None);
        assert_eq!(parse_basic("basic !!!"), Err(CallerError::Malformed));
        assert_eq!(parse_basic("Basic bm9jb2xvbg=="), Err(CallerError::Malformed));
    }

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            parse_authorization("Bearer abc.def").unwrap(),
            Presented::Bearer("abc.def".to_owned())
        );
        assert_eq!(
            parse_authorization("AuthSub token=\"CKF50YzIHxCT85KMAg\"").unwrap(),
            Presented::AuthSub {
                token: "CKF50YzIHxCT85KMAg".to_owned(),
                sigalg: None,
                data: None,
                sig: None
            }
        );
        assert_eq!(
            parse_authorization("AuthSub token=CKF50YzIHxCT85KMAg").unwrap(),
            Presented::AuthSub {
                token: "CKF50YzIHxCT85KMAg".to_owned(),
                sigalg: None,
                data: None,
                sig: None
            }
        );
        let secure = parse_authorization("AuthSub token=\"t\" data=\"GET https://x/feeds 1300000000 151135\" sig=\"c2ln\" sigalg=\"rsa-sha1\"").unwrap();
        assert_eq!(
            secure,
            Presented::AuthSub {
                token: "t".to_owned(),
                sigalg: Some("rsa-sha1".to_owned()),
                data: Some("GET https://x/feeds 1300000000 151135".to_owned()),
                sig: Some("c2ln".to_owned())
            }
        );
        assert_eq!(
            parse_authorization("GoogleLogin auth=DQAAAG").unwrap(),
            Presented::GoogleLogin("DQAAAG".to_owned())
        );
        let oauth = parse_authorization(
            "OAuth oauth_consumer_key=\"example.com\", oauth_signature=\"a%2Bb%3D\"",
        )
        .unwrap();
        assert_eq!(
            oauth,
            Presented::OAuth1(vec![
                ("oauth_consumer_key".to_owned(), "example.com".to_owned()),
                ("oauth_signature".to_owned(), "a+b=".to_owned())
            ])
        );
        assert_eq!(
            parse_authorization("OAuth ya29.abc").unwrap(),
            Presented::Bearer("ya29.abc".to_owned())
        );
        assert_eq!(
            parse_authorization("DPoP Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU").unwrap(),
            Presented::Dpop("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU".to_owned())
        );
        assert_eq!(parse_authorization("DPoP a b"), Err(CallerError::Malformed));
        assert_eq!(
            parse_authorization("key=AIzaSyExample").unwrap(),
            Presented::ApiKey("AIzaSyExample".to_owned())
        );
        assert_eq!(
            parse_authorization("AidLogin 3864729817263546172:aas_et/AKpp:x").unwrap(),
            Presented::AidLogin {
                device: "3864729817263546172".to_owned(),
                secret: "aas_et/AKpp:x".to_owned()
            }
        );
        assert_eq!(
            parse_authorization("AidLogin 42:").unwrap(),
            Presented::AidLogin { device: "42".to_owned(), secret: String::new() }
        );
        assert_eq!(parse_authorization("AidLogin :x"), Err(CallerError::Malformed));
        assert_eq!(parse_authorization("AidLogin 42"), Err(CallerError::Malformed));
        assert_eq!(
            parse_authorization("AidLogin 4 2:x"),
            Err(CallerError::Malformed),
            "the device id is one word"
        );
        assert_eq!(parse_authorization("key="), Err(CallerError::Malformed));
        assert_eq!(parse_authorization(""), Err(CallerError::Missing));
        assert_eq!(parse_authorization("Basic abc"), Err(CallerError::Unsupported));
        assert_eq!(
            parse_authorization("AuthSub token=\"unterminated"),
            Err(CallerError::Malformed)
        );
        assert_eq!(parse_authorization("AuthSub token=a token=b"), Err(CallerError::Malformed));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parse_authorization(&s);
        }

        #[test]
        fn quoted_and_bare_agree(token in "[A-Za-z0-9_-]{1,40}") {
            let quoted = parse_authorization(&format!("AuthSub token=\"{token}\"")).unwrap();
            let bare = parse_authorization(&format!("AuthSub token={token}")).unwrap();
            prop_assert_eq!(quoted, bare);
        }
    }
}
