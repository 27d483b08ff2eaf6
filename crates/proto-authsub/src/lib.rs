//! AuthSub on the wire: the `AuthSubRequest` query, the redirect back to `next`, the signed `data`
//! string of secure tokens, and the byte-exact bodies of `AuthSubSessionToken`, `AuthSubTokenInfo`
//! and the 401/403 pages. No HTTP framework and no storage here.

#[cfg(test)]
mod wire_tests;

/// Parameters of `AuthSubRequest`, read leniently (see [`parse_request`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSubRequest {
    /// Normalized (the WHATWG URL serialization): what is compared with a registered prefix is
    /// exactly where the person is sent, and it is always safe in a `Location` header.
    pub next: String,
    /// Space-separated in the query (`%20` or `+`), split here; never empty.
    pub scopes: Vec<String>,
    pub session: bool,
    pub secure: bool,
    /// `hd`: `None` or `default` means a consumer account; otherwise a hosted domain.
    pub hd: Option<String>,
    pub hl: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("The request has no `next` address to return to.")]
    MissingNext,
    #[error("The `next` address must be an absolute http or https URL.")]
    BadNext,
    #[error("The `next` address must not contain control characters.")]
    ControlInNext,
    #[error(
        "The `next` address must not contain dot segments (`.` or `..`, also percent-encoded)."
    )]
    DotSegmentInNext,
    #[error("The request names no scope.")]
    MissingScope,
    #[error("`{0}` must be 0 or 1.")]
    BadFlag(&'static str),
}

/// Splits a raw query into decoded pairs. Lenient: `+` is a space, invalid UTF-8 is replaced,
/// and the first of repeated names wins when read through [`get`].
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|it| !it.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// The first value of `name`.
pub fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn flag(pairs: &[(String, String)], name: &'static str) -> Result<bool, RequestError> {
    match get(pairs, name).map(str::trim) {
        None | Some("") | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(_) => Err(RequestError::BadFlag(name)),
    }
}

/// Reads an `AuthSubRequest` query. `session` defaults to 0 (legacy-auth.md §3.2).
pub fn parse_request(query: &str) -> Result<AuthSubRequest, RequestError> {
    let pairs = query_pairs(query);
    let next = get(&pairs, "next").filter(|it| !it.is_empty()).ok_or(RequestError::MissingNext)?;
    // A URL parser drops tabs and line breaks and resolves dot segments: the raw text is checked
    // first, so that what passes is what the parsed URL says.
    if next.chars().any(char::is_control) {
        return Err(RequestError::ControlInNext);
    }
    if has_dot_segment(next) {
        return Err(RequestError::DotSegmentInNext);
    }
    let parsed = url::Url::parse(next).map_err(|_| RequestError::BadNext)?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(RequestError::BadNext);
    }
    let scopes: Vec<String> =
        get(&pairs, "scope").unwrap_or_default().split_whitespace().map(str::to_owned).collect();
    if scopes.is_empty() {
        return Err(RequestError::MissingScope);
    }
    Ok(AuthSubRequest {
        next: parsed.into(),
        scopes,
        session: flag(&pairs, "session")?,
        secure: flag(&pairs, "secure")?,
        hd: get(&pairs, "hd").filter(|it| !it.is_empty()).map(str::to_owned),
        hl: get(&pairs, "hl").filter(|it| !it.is_empty()).map(str::to_owned),
    })
}

/// Whether the path of the raw URL `next` has a `.` or `..` segment, spelled out or
/// percent-encoded, between `/` or `\` (which parsers read as `/` in http(s) URLs), also
/// percent-encoded.
fn has_dot_segment(next: &str) -> bool {
    let after_scheme = next.split_once(':').map_or(next, |(_, rest)| rest);
    let authority_and_path = after_scheme.trim_start_matches(['/', '\\']);
    let end = authority_and_path.find(['?', '#']).unwrap_or(authority_and_path.len());
    let Some(start) = authority_and_path[..end].find(['/', '\\']) else { return false };
    // Decoded before splitting: an application behind `next` may read `%2F` as a separator.
    let path = percent_encoding::percent_decode_str(&authority_and_path[start..end]);
    path.decode_utf8_lossy().split(['/', '\\']).any(|segment| segment == "." || segment == "..")
}

/// Whether the normalized `next` lies under a registration's `prefix`, itself compared in its
/// normalized form (so `https://app.example` means `https://app.example/`, not
/// `https://app.example.evil/`).
pub fn under_prefix(next: &str, prefix: &str) -> bool {
    match url::Url::parse(prefix) {
        Ok(prefix) => next.starts_with(prefix.as_str()),
        Err(_) => false,
    }
}

/// `next` with `token=<token>` appended: `&` when it already has a query, else `?`; inserted before
/// any `#fragment`. Everything else in `next` is kept byte for byte.
pub fn append_token(next: &str, token: &str) -> String {
    let (head, fragment) = match next.find('#') {
        Some(i) => (&next[..i], &next[i..]),
        None => (next, ""),
    };
    let sep = match head.contains('?') {
        true if head.ends_with('?') || head.ends_with('&') => "",
        true => "&",
        false => "?",
    };
    format!("{head}{sep}token={token}{fragment}")
}

/// `Target=` of `AuthSubTokenInfo`: the origin (`scheme://host[:port]`) of `next`.
pub fn target_of(next: &str) -> String {
    match url::Url::parse(next) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => String::new(),
    }
}

/// The host of `next`, which names an unregistered application.
pub fn host_of(next: &str) -> Option<String> {
    url::Url::parse(next).ok().and_then(|it| it.host_str().map(str::to_ascii_lowercase))
}

/// The `data` attribute of a secure request: `METHOD URL TIMESTAMP NONCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedData {
    pub method: String,
    pub url: String,
    pub timestamp: i64,
    pub nonce: String,
}

/// Parses `data`: exactly four fields separated by single spaces; decimal timestamp and nonce.
pub fn parse_signed_data(data: &str) -> Option<SignedData> {
    let mut parts = data.split(' ');
    let method = parts.next()?;
    let url = parts.next()?;
    let timestamp = parts.next()?;
    let nonce = parts.next()?;
    if parts.next().is_some()
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || url.is_empty()
        || timestamp.is_empty()
        || timestamp.len() > 12
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
        || nonce.is_empty()
        || nonce.len() > 40
        || !nonce.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(SignedData {
        method: method.to_owned(),
        url: url.to_owned(),
        timestamp: timestamp.parse().ok()?,
        nonce: nonce.to_owned(),
    })
}

/// Whether the signed URL denotes the request URL: scheme, host, port and path equal, and the query
/// equal as a multiset of decoded pairs (clients encode queries differently).
pub fn same_url(signed: &str, request: &str) -> bool {
    let (Ok(a), Ok(b)) = (url::Url::parse(signed), url::Url::parse(request)) else {
        return false;
    };
    let pairs = |u: &url::Url| {
        let mut v = query_pairs(u.query().unwrap_or_default());
        v.sort();
        v
    };
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path() == b.path()
        && pairs(&a) == pairs(&b)
}

/// The `AuthSubSessionToken` body: one `Token=` line, no `Expiration` (legacy-auth.md §3.7).
pub fn session_token_body(token: &str) -> String {
    format!("Token={token}\n")
}

/// The `AuthSubTokenInfo` body: exactly `Target`, `Scope` (space-separated) and `Secure`.
pub fn token_info_body(target: &str, scopes: &[String], secure: bool) -> String {
    format!("Target={target}\nScope={}\nSecure={secure}\n", scopes.join(" "))
}

/// The HTML page Google sent with AuthSub token errors, with `title` such as
/// `Token invalid - Invalid AuthSub token.` and the status code.
pub fn error_page(title: &str, status: u16) -> String {
    format!(
        "<HTML>\n<HEAD>\n<TITLE>{title}</TITLE>\n</HEAD>\n<BODY BGCOLOR=\"#FFFFFF\" TEXT=\"#000000\">\n<H1>{title}</H1>\n<H2>Error {status}</H2>\n</BODY>\n</HTML>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_requests_as_clients_send_them() {
        // gdata-python: encoded everything, hd=default.
        let req = parse_request("next=http%3A%2F%2Fapp.example.com%2Fcb%3Fa%3D1&scope=http%3A%2F%2Fwww.example.com%2Fcalendar%2Ffeeds%2F+http%3A%2F%2Fwww.example.com%2Fm8%2Ffeeds%2F&session=1&secure=0&hd=default").unwrap();
        assert_eq!(req.next, "http://app.example.com/cb?a=1");
        assert_eq!(
            req.scopes,
            ["http://www.example.com/calendar/feeds/", "http://www.example.com/m8/feeds/"]
        );
        assert!(req.session && !req.secure);
        assert_eq!(req.hd.as_deref(), Some("default"));
        // Zend: scope unescaped; session absent means 0.
        let req =
            parse_request("next=http%3A%2F%2Fa.example%2F&scope=http://www.example.com/feeds/")
                .unwrap();
        assert_eq!(req.scopes, ["http://www.example.com/feeds/"]);
        assert!(!req.session);
        assert_eq!(parse_request("scope=x"), Err(RequestError::MissingNext));
        assert_eq!(parse_request("next=javascript:alert(1)&scope=x"), Err(RequestError::BadNext));
        assert_eq!(parse_request("next=http://a.example/"), Err(RequestError::MissingScope));
        assert_eq!(
            parse_request("next=http://a.example/&scope=x&session=2"),
            Err(RequestError::BadFlag("session"))
        );
    }

    #[test]
    fn next_is_normalized_and_refused_with_dot_segments_or_control_characters() {
        let next = |raw: &str| {
            let encoded =
                percent_encoding::utf8_percent_encode(raw, percent_encoding::NON_ALPHANUMERIC);
            parse_request(&format!("scope=x&next={encoded}")).map(|it| it.next)
        };
        assert_eq!(
            next("HTTP://App.Example:80/cb?q=%41#f").unwrap(),
            "http://app.example/cb?q=%41#f"
        );
        assert_eq!(next("https://app.example").unwrap(), "https://app.example/");
        for bad in [
            "https://app.example/cb/../../other",
            "https://app.example/cb/%2e%2e/other",
            "https://app.example/cb/%2E./other",
            "https://app.example/cb/.%2E",
            "https://app.example/cb/./other",
            "https://app.example/cb/..%5Cother",
            "https://app.example/cb%2F..%2Fother",
            "https:app.example/..",
            "https://app.example\\cb\\..\\other",
        ] {
            assert_eq!(next(bad), Err(RequestError::DotSegmentInNext), "{bad}");
        }
        // Dots elsewhere are no path segments.
        assert!(next("https://app.example/a..b/.x/?p=/../#/..").is_ok());
        for bad in [
            "https://app.example/cb\n",
            "https://app.example/cb\u{7f}",
            "https://app.example/\tcb",
            "https://app.example/cb\r\nSet-Cookie:x",
            "https://app.example/\u{85}",
        ] {
            assert_eq!(next(bad), Err(RequestError::ControlInNext), "{bad}");
        }
    }

    #[test]
    fn prefixes_are_compared_normalized() {
        assert!(under_prefix("https://app.example/cb/x", "https://app.example/cb/"));
        assert!(under_prefix("https://app.example/cb/x", "HTTPS://APP.example:443/cb/"));
        assert!(under_prefix("https://app.example/x", "https://app.example"));
        assert!(!under_prefix("https://app.example.evil/x", "https://app.example"));
        assert!(!under_prefix("https://app.example/other", "https://app.example/cb/"));
        assert!(!under_prefix("https://app.example/cb/x", "not a url"));
    }

    #[test]
    fn appends_the_token_keeping_next_intact() {
        assert_eq!(append_token("http://a.example/cb", "T"), "http://a.example/cb?token=T");
        assert_eq!(
            append_token("http://a.example/cb?auth_sub_scopes=http%3A%2F%2Fx%2F", "T"),
            "http://a.example/cb?auth_sub_scopes=http%3A%2F%2Fx%2F&token=T"
        );
        assert_eq!(
            append_token("http://a.example/cb?x=1#frag", "T"),
            "http://a.example/cb?x=1&token=T#frag"
        );
        assert_eq!(append_token("http://a.example/cb?", "T"), "http://a.example/cb?token=T");
    }

    #[test]
    fn signed_data_and_url_equivalence() {
        let data = parse_signed_data("GET https://www.example.com/calendar/feeds/default/private/full 1300000000 15113559630804518020").unwrap();
        assert_eq!(data.method, "GET");
        assert_eq!(data.timestamp, 1_300_000_000);
        assert_eq!(data.nonce, "15113559630804518020");
        assert!(parse_signed_data("GET  https://x/ 1 2").is_none());
        assert!(parse_signed_data("GET https://x/ 1 2 3").is_none());
        assert!(parse_signed_data("get https://x/ 1 2").is_none());
        assert!(parse_signed_data("GET https://x/ -1 2").is_none());
        assert!(same_url("http://h:80/p?a=1&b=x%20y", "http://h/p?b=x+y&a=1"));
        assert!(!same_url("http://h:81/p", "http://h/p"));
        assert!(!same_url("https://h/p", "http://h/p"));
        assert!(!same_url("http://h/p?a=1", "http://h/p?a=1&a=1"));
        assert!(!same_url("http://h/q", "http://h/p"));
    }

    #[test]
    fn bodies_are_byte_exact() {
        assert_eq!(session_token_body("abc"), "Token=abc\n");
        assert_eq!(
            token_info_body(
                "http://a.example",
                &["http://x/feeds/".to_owned(), "http://y/".to_owned()],
                true
            ),
            "Target=http://a.example\nScope=http://x/feeds/ http://y/\nSecure=true\n"
        );
        assert_eq!(target_of("http://App.example.com:8080/cb?x"), "http://app.example.com:8080");
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,200}") {
            let _ = parse_request(&s);
            let _ = parse_signed_data(&s);
            let _ = same_url(&s, "http://h/");
        }

        #[test]
        fn token_is_appended_once_and_next_kept(path in "[a-z/]{0,20}", q in proptest::option::of("[a-z0-9=&%]{0,20}"), token in "[A-Za-z0-9_-]{1,40}") {
            let next = match &q { Some(q) => format!("https://a.example/{path}?{q}"), None => format!("https://a.example/{path}") };
            let out = append_token(&next, &token);
            prop_assert!(out.starts_with(next.trim_end_matches(['?', '&'])));
            let suffix = format!("token={token}");
            prop_assert!(out.ends_with(&suffix));
            prop_assert_eq!(out.matches('?').count(), 1);
        }

        #[test]
        fn an_accepted_next_is_normalized_header_safe_and_free_of_dot_segments(raw in "\\PC{0,60}", path in "[a-zA-Z0-9%./\\\\]{0,30}") {
            for next in [raw.clone(), format!("https://app.example/{path}")] {
                let query = format!("scope=x&next={}", percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC));
                if let Ok(req) = parse_request(&query) {
                    let reparsed = url::Url::parse(&req.next).unwrap();
                    prop_assert_eq!(reparsed.as_str(), req.next.as_str());
                    prop_assert!(req.next.bytes().all(|b| b.is_ascii_graphic()));
                    prop_assert!(!has_dot_segment(&req.next));
                    prop_assert!(!has_dot_segment(&next));
                    let resolved = url::Url::parse(&next).unwrap();
                    prop_assert_eq!(resolved.as_str(), req.next.as_str(), "the raw next names the URL it is normalized to");
                }
            }
        }

        #[test]
        fn dot_segments_are_refused_however_spelled(before in "[a-z]{1,8}", dots in prop::sample::select(vec![".", "..", "%2e", "%2E", "%2e%2e", ".%2E", "%2E.", "%2e%2E"]), sep in prop::sample::select(vec!["/", "\\", "%2F", "%5c"]), after in "[a-z]{0,8}", query in "(\\?[a-z=/.]{0,10})?") {
            let next = format!("https://app.example/{before}{sep}{dots}{sep}{after}{query}");
            let encoded = percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC).to_string();
            prop_assert_eq!(parse_request(&format!("next={encoded}&scope=x")), Err(RequestError::DotSegmentInNext));
        }

        #[test]
        fn signed_data_round_trips(method in "[A-Z]{1,7}", path in "[a-z]{0,10}", ts in 0i64..4_000_000_000, nonce in "[0-9]{1,20}") {
            let text = format!("{method} https://h.example/{path} {ts} {nonce}");
            let data = parse_signed_data(&text).unwrap();
            prop_assert_eq!(format!("{} {} {} {}", data.method, data.url, data.timestamp, data.nonce), text);
        }
    }
}
