//! OAuth 1.0a on the wire (RFC 5849, OAuth Core 1.0a as Google served it): the
//! `Authorization: OAuth …` header, the strict form encoding of bodies and queries, the merge of
//! header, query and form parameters into one signed request, the signature base string
//! (RFC 5849 §3.4.1) byte for byte, the token responses and the `oauth_problem` errors.
//! No HTTP framework, no storage and no crypto here.

#[cfg(test)]
mod wire_tests;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but the unreserved characters `A-Z a-z 0-9 - . _ ~` (RFC 5849 §3.6).
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Longest header, query or body this parser looks at.
pub const MAX_INPUT: usize = 16 * 1024;

/// RFC 5849 §3.6 percent-encoding: UTF-8, every byte outside the unreserved set as `%XX` with
/// upper-case hex. Never `+` for a space.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, RESERVED).to_string()
}

/// Why a request was refused, as the `oauth_problem` vocabulary names it (the Problem Reporting
/// extension's words; Google's observed body starts with the word).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A required parameter is missing (400).
    #[error("parameter_absent")]
    ParameterAbsent(&'static str),
    /// A parameter is malformed or repeated (400).
    #[error("parameter_rejected")]
    ParameterRejected(String),
    /// `oauth_version` other than `1.0` (400).
    #[error("version_rejected")]
    VersionRejected,
    /// An unknown `oauth_signature_method`, or PLAINTEXT where it is not allowed (400).
    #[error("signature_method_rejected")]
    SignatureMethodRejected,
    /// The signature does not verify; carries the base string we computed (400, as Google did).
    #[error("signature_invalid")]
    SignatureInvalid { base_string: String },
    /// The timestamp is outside the window (401).
    #[error("timestamp_refused")]
    TimestampRefused,
    /// The nonce was seen before for this consumer, token and timestamp (401).
    #[error("nonce_used")]
    NonceUsed,
    /// No such consumer, or one that cannot sign this way (401).
    #[error("consumer_key_unknown")]
    ConsumerKeyUnknown,
    /// The token is unknown, expired, used, revoked or of the wrong kind (401).
    #[error("token_rejected")]
    TokenRejected,
    /// The verifier does not match the authorized request token (401).
    #[error("verifier_invalid")]
    VerifierInvalid,
    /// The consumer may not do this (two-legged request outside its domain or scopes) (401).
    #[error("permission_denied")]
    PermissionDenied,
    /// The consumer is permanently refused (a protocol switched off for it by date); `advice` is
    /// where to read what to do instead (401, `oauth_problem_advice`).
    #[error("consumer_key_refused")]
    ConsumerKeyRefused { advice: String },
}

impl Problem {
    /// The `oauth_problem` word.
    pub fn word(&self) -> &'static str {
        match self {
            Problem::ParameterAbsent(_) => "parameter_absent",
            Problem::ParameterRejected(_) => "parameter_rejected",
            Problem::VersionRejected => "version_rejected",
            Problem::SignatureMethodRejected => "signature_method_rejected",
            Problem::SignatureInvalid { .. } => "signature_invalid",
            Problem::TimestampRefused => "timestamp_refused",
            Problem::NonceUsed => "nonce_used",
            Problem::ConsumerKeyUnknown => "consumer_key_unknown",
            Problem::TokenRejected => "token_rejected",
            Problem::VerifierInvalid => "verifier_invalid",
            Problem::PermissionDenied => "permission_denied",
            Problem::ConsumerKeyRefused { .. } => "consumer_key_refused",
        }
    }

    /// RFC 5849 §3.2's split, except a bad signature, which Google answered with 400.
    pub fn status(&self) -> u16 {
        match self {
            Problem::ParameterAbsent(_)
            | Problem::ParameterRejected(_)
            | Problem::VersionRejected
            | Problem::SignatureMethodRejected
            | Problem::SignatureInvalid { .. } => 400,
            _ => 401,
        }
    }

    /// The `text/plain` body: the problem word on the first line, then one line for debugging
    /// (`base_string:` and the base string we computed, for a bad signature, as Google did).
    pub fn body(&self) -> String {
        let detail = match self {
            Problem::ParameterAbsent(name) => format!("oauth_parameters_absent:{name}"),
            Problem::ParameterRejected(name) => format!("oauth_parameters_rejected:{name}"),
            Problem::VersionRejected => "oauth_acceptable_versions:1.0-1.0".to_owned(),
            Problem::SignatureMethodRejected => {
                "oauth_acceptable_signature_methods:HMAC-SHA1&RSA-SHA1".to_owned()
            }
            Problem::SignatureInvalid { base_string } => format!("base_string:{base_string}"),
            Problem::TimestampRefused => "The timestamp is too far from our clock.".to_owned(),
            Problem::NonceUsed => "The nonce was used before.".to_owned(),
            Problem::ConsumerKeyUnknown => "The consumer is unknown.".to_owned(),
            Problem::TokenRejected => "The token is invalid.".to_owned(),
            Problem::VerifierInvalid => "The verifier is invalid.".to_owned(),
            Problem::PermissionDenied => "The consumer may not do this.".to_owned(),
            Problem::ConsumerKeyRefused { advice } => {
                format!("oauth_problem_advice:{}", encode(advice))
            }
        };
        format!("{}\n{detail}\n", self.word())
    }
}

/// The parameter list of an `Authorization: OAuth` header, after the scheme (the one
/// `Authorization` parser, `domain::caller::parse_authorization`, recognises the scheme and hands
/// the rest here): `name="value"` pairs separated by commas with optional whitespace (bare values
/// are accepted too). Names and values are percent-decoded; `realm` is dropped; a repeated name is
/// refused.
pub fn parse_header_params(text: &str) -> Result<Vec<(String, String)>, Problem> {
    let malformed = || Problem::ParameterRejected("Authorization".to_owned());
    if text.len() > MAX_INPUT {
        return Err(malformed());
    }
    let separators: &[char] = &[' ', '\t', ','];
    let mut out: Vec<(String, String)> = Vec::new();
    let mut rest = text.trim_start_matches(separators);
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or_else(malformed)?;
        let name = rest[..eq].trim_matches([' ', '\t']);
        if name.is_empty() || name.contains([' ', '\t', ',', '"']) {
            return Err(malformed());
        }
        let after = rest[eq + 1..].trim_start_matches([' ', '\t']);
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').ok_or_else(malformed)?;
                let remaining = &quoted[end + 1..];
                if !remaining.is_empty() && !remaining.starts_with(separators) {
                    return Err(malformed());
                }
                (&quoted[..end], remaining)
            }
            None => {
                let end = after.find(separators).unwrap_or(after.len());
                if after[..end].contains('"') {
                    return Err(malformed());
                }
                (&after[..end], &after[end..])
            }
        };
        let name = percent_decode_strict(name).ok_or_else(malformed)?;
        let value = percent_decode_strict(value).ok_or_else(malformed)?;
        if out.iter().any(|(k, _)| *k == name) {
            return Err(Problem::ParameterRejected(name));
        }
        if name != "realm" {
            out.push((name, value));
        }
        rest = remaining.trim_start_matches(separators);
    }
    Ok(out)
}

/// Percent-decodes `%XX` escapes (no `+` rule); `None` for a broken escape or bytes that are not
/// UTF-8.
fn percent_decode_strict(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hi = (hex[0] as char).to_digit(16)?;
                let lo = (hex[1] as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Parses an `application/x-www-form-urlencoded` body or a query string strictly: pairs split on
/// `&` (empty pieces skipped), `+` is a space, `%XX` escapes must be well formed and the result
/// UTF-8. Repeated names are kept in order (the signature covers every pair).
pub fn parse_form(text: &str) -> Result<Vec<(String, String)>, Problem> {
    if text.len() > MAX_INPUT {
        return Err(Problem::ParameterRejected("body".to_owned()));
    }
    let mut out = Vec::new();
    for piece in text.split('&').filter(|it| !it.is_empty()) {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        let decode = |raw: &str| {
            percent_decode_strict(&raw.replace('+', " "))
                .ok_or_else(|| Problem::ParameterRejected(raw.chars().take(40).collect()))
        };
        out.push((decode(name)?, decode(value)?));
    }
    Ok(out)
}

/// Form-encodes pairs for a response body: RFC 5849 encoding of names and values, joined by `&`,
/// with no trailing newline (Google's token responses had none).
pub fn encode_form(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&encode(name));
        out.push('=');
        out.push_str(&encode(value));
    }
    out
}

/// The `OAuthGetRequestToken` body: exactly these three keys, in this order.
pub fn request_token_body(token: &str, secret: &str) -> String {
    encode_form(&[
        ("oauth_token", token),
        ("oauth_token_secret", secret),
        ("oauth_callback_confirmed", "true"),
    ])
}

/// The `OAuthGetAccessToken` body: exactly these two keys.
pub fn access_token_body(token: &str, secret: &str) -> String {
    encode_form(&[("oauth_token", token), ("oauth_token_secret", secret)])
}

/// The callback with `oauth_token` and (1.0a) `oauth_verifier` appended to its own query, which is
/// kept untouched; a fragment stays at the end.
pub fn callback_url(callback: &str, token: &str, verifier: Option<&str>) -> String {
    let (base, fragment) = match callback.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (callback, None),
    };
    let mut out = base.to_owned();
    out.push(if base.contains('?') { '&' } else { '?' });
    out.push_str("oauth_token=");
    out.push_str(&encode(token));
    if let Some(verifier) = verifier {
        out.push_str("&oauth_verifier=");
        out.push_str(&encode(verifier));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// `oauth_signature_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureMethod {
    HmacSha1,
    RsaSha1,
    Plaintext,
}

impl SignatureMethod {
    pub fn parse(name: &str) -> Option<SignatureMethod> {
        match name {
            "HMAC-SHA1" => Some(SignatureMethod::HmacSha1),
            "RSA-SHA1" => Some(SignatureMethod::RsaSha1),
            "PLAINTEXT" => Some(SignatureMethod::Plaintext),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SignatureMethod::HmacSha1 => "HMAC-SHA1",
            SignatureMethod::RsaSha1 => "RSA-SHA1",
            SignatureMethod::Plaintext => "PLAINTEXT",
        }
    }
}

/// A signed request's parameters, merged from the three places they may arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Every pair the signature covers (header pairs but `realm`, query pairs, form pairs), without
    /// `oauth_signature`, in arrival order.
    pub params: Vec<(String, String)>,
    pub consumer_key: String,
    /// Absent for request-token requests and two-legged calls.
    pub token: Option<String>,
    pub signature_method: SignatureMethod,
    /// Decoded from transport; base64 for HMAC-SHA1 and RSA-SHA1.
    pub signature: String,
    pub timestamp: i64,
    pub nonce: String,
    pub callback: Option<String>,
    pub verifier: Option<String>,
}

impl Signed {
    /// The first value of a (non-protocol) parameter such as `scope`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Merges the header, query and form parameters of a request and reads the protocol parameters.
/// An `oauth_*` parameter given twice, anywhere, is refused (RFC 5849 §3.2 "duplicated protocol
/// parameter"); other parameters may repeat. `oauth_version` may be absent, else it is `1.0`.
pub fn collect(
    header: &[(String, String)],
    query: &[(String, String)],
    form: &[(String, String)],
) -> Result<Signed, Problem> {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut signature = None;
    for (name, value) in header.iter().chain(query).chain(form) {
        if name.starts_with("oauth_")
            && (params.iter().any(|(k, _)| k == name)
                || (name == "oauth_signature" && signature.is_some()))
        {
            return Err(Problem::ParameterRejected(name.clone()));
        }
        if name == "oauth_signature" {
            signature = Some(value.clone());
        } else {
            params.push((name.clone(), value.clone()));
        }
    }
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let required = |name: &'static str| {
        get(name).filter(|it| !it.is_empty()).ok_or(Problem::ParameterAbsent(name))
    };
    let consumer_key = required("oauth_consumer_key")?;
    let method = required("oauth_signature_method")?;
    let signature_method =
        SignatureMethod::parse(&method).ok_or(Problem::SignatureMethodRejected)?;
    let signature =
        signature.filter(|it| !it.is_empty()).ok_or(Problem::ParameterAbsent("oauth_signature"))?;
    let (timestamp, nonce) = if signature_method == SignatureMethod::Plaintext {
        // RFC 5849 §3.3: PLAINTEXT may omit both.
        (get("oauth_timestamp"), get("oauth_nonce"))
    } else {
        (Some(required("oauth_timestamp")?), Some(required("oauth_nonce")?))
    };
    let timestamp = match timestamp {
        None => 0,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|it| *it > 0 && text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| Problem::ParameterRejected("oauth_timestamp".to_owned()))?,
    };
    if let Some(version) = get("oauth_version")
        && version != "1.0"
    {
        return Err(Problem::VersionRejected);
    }
    let token = get("oauth_token").filter(|it| !it.is_empty());
    let callback = get("oauth_callback").filter(|it| !it.is_empty());
    let verifier = get("oauth_verifier").filter(|it| !it.is_empty());
    Ok(Signed {
        consumer_key,
        token,
        signature_method,
        signature,
        timestamp,
        nonce: nonce.unwrap_or_default(),
        callback,
        verifier,
        params,
    })
}

/// The base string URI (RFC 5849 §3.4.1.2): scheme and host in lower case, the port only when it
/// is not the scheme's default, the path as requested (`/` when empty), no query or fragment.
/// `authority` is the `Host` header (`host` or `host:port`).
pub fn base_string_uri(scheme: &str, authority: &str, path: &str) -> String {
    let scheme = scheme.to_ascii_lowercase();
    let authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => Some("80"),
        "https" => Some("443"),
        _ => None,
    };
    // The port follows the last `:` that is not inside an IPv6 literal.
    let port_at = authority.rfind(':').filter(|at| !authority[*at..].contains(']'));
    let host = match port_at {
        Some(at)
            if authority[at + 1..].is_empty() || Some(&authority[at + 1..]) == default_port =>
        {
            &authority[..at]
        }
        _ => authority.as_str(),
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = if path.is_empty() { "/" } else { path };
    format!("{scheme}://{host}{path}")
}

/// Splits an absolute URL as the client addressed it into scheme, authority, path and raw query,
/// without normalizing anything (the base string covers the path exactly as requested).
pub fn split_url(url: &str) -> Option<(&str, &str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let rest = rest.split('#').next().unwrap_or_default();
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = match before_query.find('/') {
        Some(at) => (&before_query[..at], &before_query[at..]),
        None => (before_query, ""),
    };
    if scheme.is_empty() || authority.is_empty() {
        return None;
    }
    Some((scheme, authority, path, query))
}

/// The normalized request parameters (RFC 5849 §3.4.1.3.2): names and values encoded, sorted by
/// name then value in byte order, joined as `name=value` with `&` (`=` kept for empty values).
pub fn normalized_params(params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .filter(|(name, _)| name != "oauth_signature")
        .map(|(name, value)| (encode(name), encode(value)))
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (name, value)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// The signature base string (RFC 5849 §3.4.1.1): `enc(METHOD)&enc(base URI)&enc(normalized)`.
pub fn base_string(method: &str, base_uri: &str, params: &[(String, String)]) -> String {
    format!(
        "{}&{}&{}",
        encode(&method.to_ascii_uppercase()),
        encode(base_uri),
        encode(&normalized_params(params))
    )
}

/// The parameter lists a lenient verifier also tries after the exact one fails, for clients known
/// to sign differently (reference §4.3): without empty-valued non-protocol pairs (gdata-java), and
/// with only the last value of repeated names (Java, gdata-python v2, .NET). Only lists that differ
/// from the exact one are returned.
pub fn param_variants(params: &[(String, String)]) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = Vec::new();
    let without_empty: Vec<(String, String)> = params
        .iter()
        .filter(|(name, value)| !value.is_empty() || name.starts_with("oauth_"))
        .cloned()
        .collect();
    // Each name at its last occurrence, in the order of those occurrences: one pass to find them
    // (linear: a request may carry thousands of pairs, and every failed signature comes here).
    let mut last: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(params.len());
    for (index, (name, _)) in params.iter().enumerate() {
        last.insert(name.as_str(), index);
    }
    let last_only: Vec<(String, String)> = params
        .iter()
        .enumerate()
        .filter(|(index, (name, _))| last.get(name.as_str()) == Some(index))
        .map(|(_, pair)| pair.clone())
        .collect();
    for variant in [without_empty, last_only] {
        if variant.len() != params.len() && !out.contains(&variant) {
            out.push(variant);
        }
    }
    out
}

/// The scopes of `scope`: space-separated (clients send `%20` or `+`, both decode to a space).
pub fn scopes(value: &str) -> Vec<String> {
    value.split([' ', ',']).filter(|it| !it.is_empty()).map(str::to_owned).collect()
}

/// Whether `callback` is usable: `oob`, or an absolute http(s) URL without control characters.
pub fn valid_callback(callback: &str) -> bool {
    if callback == "oob" {
        return true;
    }
    if callback.chars().any(char::is_control) || callback.len() > 2048 {
        return false;
    }
    match url::Url::parse(callback) {
        Ok(url) => matches!(url.scheme(), "http" | "https") && url.host_str().is_some(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The header's parameters after its scheme, as the one parser hands them over.
    fn parse_header(header: &str) -> Option<Result<Vec<(String, String)>, Problem>> {
        let rest = header.strip_prefix("OAuth").or_else(|| header.strip_prefix("oauth"))?;
        Some(parse_header_params(rest))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn header_forms_seen_in_clients_parse_alike() {
        let expected = pairs(&[("oauth_consumer_key", "anonymous"), ("oauth_nonce", "a b+")]);
        for header in [
            r#"OAuth realm="", oauth_consumer_key="anonymous", oauth_nonce="a%20b%2B""#,
            r#"OAuth oauth_consumer_key="anonymous",oauth_nonce="a%20b%2B""#,
            r#"oauth oauth_consumer_key="anonymous",  oauth_nonce="a%20b%2B", realm="x""#,
            r#"OAuth oauth_consumer_key=anonymous,oauth_nonce=a%20b%2B"#,
        ] {
            assert_eq!(parse_header(header), Some(Ok(expected.clone())), "{header}");
        }
        assert!(matches!(parse_header(r#"OAuth a="1", a="2""#), Some(Err(_))));
        assert!(matches!(parse_header(r#"OAuth a="1"b="2""#), Some(Err(_))));
        assert!(matches!(parse_header(r#"OAuth a="%zz""#), Some(Err(_))));
        assert!(matches!(parse_header(r#"OAuth a="unterminated"#), Some(Err(_))));
        assert_eq!(parse_header("OAuth"), Some(Ok(vec![])));
    }

    #[test]
    fn forms_decode_plus_and_refuse_broken_escapes() {
        assert_eq!(
            parse_form("scope=a+b%20c&x=&y&&z=%2B").unwrap(),
            pairs(&[("scope", "a b c"), ("x", ""), ("y", ""), ("z", "+")])
        );
        assert!(parse_form("a=%4").is_err());
        assert!(parse_form("a=%ff").is_err());
    }

    #[test]
    fn protocol_parameters_may_not_repeat_across_places() {
        let header = pairs(&[
            ("oauth_consumer_key", "c"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_signature", "s"),
            ("oauth_timestamp", "1"),
            ("oauth_nonce", "n"),
        ]);
        assert!(collect(&header, &[], &[]).is_ok());
        assert_eq!(
            collect(&header, &pairs(&[("oauth_nonce", "m")]), &[]),
            Err(Problem::ParameterRejected("oauth_nonce".to_owned()))
        );
        assert_eq!(
            collect(&header, &[], &pairs(&[("oauth_signature", "t")])),
            Err(Problem::ParameterRejected("oauth_signature".to_owned()))
        );
        // Other parameters may repeat.
        let signed = collect(&header, &pairs(&[("q", "1"), ("q", "2")]), &[]).unwrap();
        assert_eq!(signed.params.len(), 6);
        assert_eq!(
            collect(&header, &pairs(&[("oauth_version", "2.0")]), &[]),
            Err(Problem::VersionRejected)
        );
        assert_eq!(collect(&header[..4], &[], &[]), Err(Problem::ParameterAbsent("oauth_nonce")));
    }

    #[test]
    fn base_string_uri_normalizes_scheme_host_and_default_ports() {
        assert_eq!(
            base_string_uri("HTTPS", "Example.COM:443", "/a%2Fb"),
            "https://example.com/a%2Fb"
        );
        assert_eq!(base_string_uri("http", "example.com:80", ""), "http://example.com/");
        assert_eq!(
            base_string_uri("http", "example.com:8080", "/x?y=1"),
            "http://example.com:8080/x"
        );
        assert_eq!(base_string_uri("https", "example.com:80", "/"), "https://example.com:80/");
        assert_eq!(base_string_uri("https", "[::1]:443", "/"), "https://[::1]/");
        assert_eq!(base_string_uri("https", "[::1]:8443", "/"), "https://[::1]:8443/");
    }

    #[test]
    fn urls_split_without_normalizing() {
        assert_eq!(
            split_url("https://H.example:8443/a%2Fb/../c?x=1&y#f"),
            Some(("https", "H.example:8443", "/a%2Fb/../c", "x=1&y"))
        );
        assert_eq!(split_url("http://h.example"), Some(("http", "h.example", "", "")));
        assert_eq!(split_url("/relative"), None);
    }

    #[test]
    fn callbacks_keep_their_query_and_fragment() {
        assert_eq!(
            callback_url("http://app.example.com/cb?x=1#top", "4/ab", Some("v")),
            "http://app.example.com/cb?x=1&oauth_token=4%2Fab&oauth_verifier=v#top"
        );
        assert_eq!(
            callback_url("https://a.example/", "t", None),
            "https://a.example/?oauth_token=t"
        );
        assert!(valid_callback("oob"));
        assert!(valid_callback("http://app.example.com/cb?x=1"));
        assert!(!valid_callback("javascript:alert(1)"));
        assert!(!valid_callback("OOB"));
    }

    #[test]
    fn variants_drop_empty_values_and_keep_the_last_repeat() {
        let params = pairs(&[("q", ""), ("a", "1"), ("a", "2"), ("oauth_token", "")]);
        let variants = param_variants(&params);
        assert_eq!(variants[0], pairs(&[("a", "1"), ("a", "2"), ("oauth_token", "")]));
        assert_eq!(variants[1], pairs(&[("q", ""), ("a", "2"), ("oauth_token", "")]));
        assert!(param_variants(&pairs(&[("a", "1")])).is_empty());
    }

    fn unencode(text: &str) -> Option<String> {
        percent_decode_strict(text)
    }

    /// The last-repeat variant as first written: each pair removes the earlier one of its name and
    /// goes to the end (quadratic, kept here as the model the linear version must match).
    fn last_only_model(params: &[(String, String)]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (name, value) in params {
            out.retain(|(k, _)| k != name);
            out.push((name.clone(), value.clone()));
        }
        out
    }

    #[test]
    fn thousands_of_repeated_pairs_make_two_variants() {
        let params: Vec<(String, String)> =
            (0..20_000).map(|n| (format!("p{}", n % 7), String::new())).collect();
        let variants = param_variants(&params);
        assert_eq!(variants.len(), 2);
        assert!(variants[0].is_empty());
        assert_eq!(variants[1], last_only_model(&params));
        assert_eq!(variants[1].len(), 7);
    }

    proptest! {
        #[test]
        fn the_last_repeat_variant_matches_its_model(
            params in proptest::collection::vec(("[a-c]{1,2}", "[xy]{0,1}"), 0..24),
        ) {
            let params: Vec<(String, String)> = params;
            let model = last_only_model(&params);
            let variants = param_variants(&params);
            if model.len() != params.len() {
                prop_assert!(variants.contains(&model), "{variants:?} lacks {model:?}");
            } else {
                prop_assert!(!variants.iter().any(|it| it.len() == params.len()));
            }
        }

        #[test]
        fn header_parser_never_panics(s in "\\PC{0,300}") {
            let _ = parse_header(&s);
            let _ = parse_header_params(&s);
        }

        #[test]
        fn form_parser_never_panics(s in "\\PC{0,300}") {
            let _ = parse_form(&s);
        }

        #[test]
        fn base_string_builder_never_panics(
            method in "\\PC{0,10}",
            scheme in "\\PC{0,8}",
            authority in "\\PC{0,40}",
            path in "\\PC{0,40}",
            params in proptest::collection::vec(("\\PC{0,12}", "\\PC{0,12}"), 0..8),
        ) {
            let uri = base_string_uri(&scheme, &authority, &path);
            let base = base_string(&method, &uri, &params);
            prop_assert_eq!(base.matches('&').count(), 2);
        }

        #[test]
        fn encoding_round_trips_and_uses_only_safe_bytes(s in "\\PC{0,100}") {
            let encoded = encode(&s);
            prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
            prop_assert_eq!(unencode(&encoded), Some(s));
        }

        #[test]
        fn encoded_headers_round_trip(
            list in proptest::collection::btree_map("[a-z_]{1,12}", "\\PC{0,20}", 0..6),
            spaces in proptest::bool::ANY,
        ) {
            let list: Vec<(String, String)> =
                list.into_iter().filter(|(k, _)| k != "realm").collect();
            let sep = if spaces { ", " } else { "," };
            let header = list
                .iter()
                .map(|(k, v)| format!("{}=\"{}\"", encode(k), encode(v)))
                .collect::<Vec<_>>()
                .join(sep);
            prop_assert_eq!(parse_header(&format!("OAuth realm=\"r\"{sep}{header}")), Some(Ok(list)));
        }

        #[test]
        fn encoded_forms_round_trip(list in proptest::collection::vec(("\\PC{1,12}", "\\PC{0,20}"), 0..6)) {
            let borrowed: Vec<(&str, &str)> = list.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(parse_form(&encode_form(&borrowed)), Ok(list));
        }

        #[test]
        fn normalization_ignores_arrival_order(
            mut list in proptest::collection::vec(("[a-z_]{1,6}", "\\PC{0,6}"), 0..8),
        ) {
            let first = normalized_params(&list);
            list.reverse();
            prop_assert_eq!(first, normalized_params(&list));
        }
    }
}
