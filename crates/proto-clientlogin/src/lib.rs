//! ClientLogin on the wire: the request parameters (urlencoded body, `multipart/form-data` body or a
//! GET query) and the byte-exact `text/plain` answers: `SID`/`LSID`/`Auth` lines on success,
//! `Error=` first on failure (legacy-auth.md §2). No HTTP framework and no storage here.

#[cfg(test)]
mod wire_tests;

/// `accountType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountType {
    HostedOrGoogle,
    Google,
    Hosted,
}

/// A ClientLogin request, parameters read by their exact names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub account_type: AccountType,
    pub email: String,
    pub passwd: String,
    pub service: String,
    pub source: Option<String>,
    /// `logintoken` and `logincaptcha` (or libgdata's `loginanswer`), when both are present.
    pub captcha: Option<(String, String)>,
}

/// The error codes of legacy-auth.md §2.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadAuthentication,
    NotVerified,
    TermsNotAgreed,
    CaptchaRequired,
    Unknown,
    AccountDeleted,
    AccountDisabled,
    ServiceDisabled,
    ServiceUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadAuthentication => "BadAuthentication",
            ErrorCode::NotVerified => "NotVerified",
            ErrorCode::TermsNotAgreed => "TermsNotAgreed",
            ErrorCode::CaptchaRequired => "CaptchaRequired",
            ErrorCode::Unknown => "Unknown",
            ErrorCode::AccountDeleted => "AccountDeleted",
            ErrorCode::AccountDisabled => "AccountDisabled",
            ErrorCode::ServiceDisabled => "ServiceDisabled",
            ErrorCode::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::BadAuthentication,
        ErrorCode::NotVerified,
        ErrorCode::TermsNotAgreed,
        ErrorCode::CaptchaRequired,
        ErrorCode::Unknown,
        ErrorCode::AccountDeleted,
        ErrorCode::AccountDisabled,
        ErrorCode::ServiceDisabled,
        ErrorCode::ServiceUnavailable,
    ];

    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|it| it.as_str() == text)
    }
}

/// Why the request could not be read at all (answered with `Error=Unknown`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("missing parameter {0}")]
    Missing(&'static str),
    #[error("unknown accountType")]
    BadAccountType,
    #[error("malformed body")]
    Malformed,
}

/// Decodes `application/x-www-form-urlencoded` text leniently (`+` is a space, bad UTF-8 replaced).
pub fn urlencoded_pairs(raw: &[u8]) -> Vec<(String, String)> {
    raw.split(|b| *b == b'&')
        .filter(|it| !it.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(raw: &[u8]) -> String {
    let spaced: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    String::from_utf8_lossy(&percent_encoding::percent_decode(&spaced).collect::<Vec<u8>>())
        .into_owned()
}

/// The `boundary` parameter of a `multipart/form-data` Content-Type, quoted or not.
pub fn multipart_boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    if !parts.next()?.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parts.find_map(|param| {
        let (k, v) = param.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        (!v.is_empty() && v.len() <= 70).then(|| v.to_owned())
    })
}

/// The text fields of a `multipart/form-data` body (Zend_Gdata sends ClientLogin this way).
pub fn multipart_pairs(body: &[u8], boundary: &str) -> Result<Vec<(String, String)>, ParseError> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut out = Vec::new();
    let mut rest = match find(body, delimiter) {
        Some(i) => &body[i + delimiter.len()..],
        None => return Err(ParseError::Malformed),
    };
    loop {
        if rest.starts_with(b"--") {
            return Ok(out);
        }
        let rest_after_eol = rest
            .strip_prefix(b"\r\n")
            .or_else(|| rest.strip_prefix(b"\n"))
            .ok_or(ParseError::Malformed)?;
        let end = find(rest_after_eol, delimiter).ok_or(ParseError::Malformed)?;
        let part = &rest_after_eol[..end];
        let part = part
            .strip_suffix(b"\r\n")
            .or_else(|| part.strip_suffix(b"\n"))
            .ok_or(ParseError::Malformed)?;
        let (head, value) = match find(part, b"\r\n\r\n") {
            Some(i) => (&part[..i], &part[i + 4..]),
            None => {
                let i = find(part, b"\n\n").ok_or(ParseError::Malformed)?;
                (&part[..i], &part[i + 2..])
            }
        };
        let head = String::from_utf8_lossy(head);
        let name = head
            .lines()
            .find(|line| line.to_ascii_lowercase().starts_with("content-disposition:"))
            .and_then(|line| {
                line.split(';').find_map(|param| {
                    let (k, v) = param.split_once('=')?;
                    (k.trim().eq_ignore_ascii_case("name"))
                        .then(|| v.trim().trim_matches('"').to_owned())
                })
            })
            .ok_or(ParseError::Malformed)?;
        out.push((name, String::from_utf8_lossy(value).into_owned()));
        if out.len() > 64 {
            return Err(ParseError::Malformed);
        }
        rest = &rest_after_eol[end + delimiter.len()..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Reads the parameters, in any order; the first of repeated names wins.
pub fn parse_request(pairs: &[(String, String)]) -> Result<Request, ParseError> {
    let account_type = match first(pairs, "accountType").unwrap_or("") {
        "" | "HOSTED_OR_GOOGLE" => AccountType::HostedOrGoogle,
        "GOOGLE" => AccountType::Google,
        "HOSTED" => AccountType::Hosted,
        _ => return Err(ParseError::BadAccountType),
    };
    let required = |name: &'static str| {
        first(pairs, name)
            .filter(|it| !it.is_empty())
            .map(str::to_owned)
            .ok_or(ParseError::Missing(name))
    };
    let email = required("Email")?;
    let passwd = required("Passwd")?;
    let service = required("service")?;
    let source = first(pairs, "source").filter(|it| !it.is_empty()).map(str::to_owned);
    let token = first(pairs, "logintoken").filter(|it| !it.is_empty());
    let answer = first(pairs, "logincaptcha").or_else(|| first(pairs, "loginanswer"));
    let captcha = match (token, answer) {
        (Some(token), Some(answer)) => Some((token.to_owned(), answer.to_owned())),
        _ => None,
    };
    Ok(Request { account_type, email, passwd, service, source, captcha })
}

/// `SID=…\nLSID=…\nAuth=…\n`, in that order.
pub fn success_body(sid: &str, lsid: &str, auth: &str) -> String {
    format!("SID={sid}\nLSID={lsid}\nAuth={auth}\n")
}

/// What a failure carries besides its code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorExtras {
    /// Help page; left out for `BadAuthentication`, which Google sent without one.
    pub url: Option<String>,
    /// `(CaptchaToken, CaptchaUrl)` for `CaptchaRequired`.
    pub captcha: Option<(String, String)>,
    /// `Info=`, e.g. `InvalidSecondFactor`.
    pub info: Option<String>,
}

/// `Error=<code>\n` first, then `Url=`, `CaptchaToken=`, `CaptchaUrl=`, `Info=` where present.
pub fn error_body(code: ErrorCode, extras: &ErrorExtras) -> String {
    let mut out = format!("Error={}\n", code.as_str());
    if let Some(url) = &extras.url {
        out.push_str(&format!("Url={url}\n"));
    }
    if let Some((token, url)) = &extras.captcha {
        out.push_str(&format!("CaptchaToken={token}\nCaptchaUrl={url}\n"));
    }
    if let Some(info) = &extras.info {
        out.push_str(&format!("Info={info}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(raw: &str) -> Vec<(String, String)> {
        urlencoded_pairs(raw.as_bytes())
    }

    #[test]
    fn reads_every_client_shape() {
        let req = parse_request(&pairs("accountType=HOSTED_OR_GOOGLE&Email=alice%40example.com&Passwd=north23AZ&service=cl&source=Example-CalApp-1.0")).unwrap();
        assert_eq!(req.email, "alice@example.com");
        assert_eq!(req.account_type, AccountType::HostedOrGoogle);
        assert_eq!(req.source.as_deref(), Some("Example-CalApp-1.0"));
        let req = parse_request(&pairs(
            "service=cl&Passwd=a+b&Email=x&logintoken=t&loginanswer=ans&accountType=GOOGLE",
        ))
        .unwrap();
        assert_eq!(req.passwd, "a b");
        assert_eq!(req.account_type, AccountType::Google);
        assert_eq!(req.captcha, Some(("t".to_owned(), "ans".to_owned())));
        assert_eq!(parse_request(&pairs("Email=x&Passwd=y")), Err(ParseError::Missing("service")));
        assert_eq!(
            parse_request(&pairs("Email=x&Passwd=y&service=cl&accountType=OTHER")),
            Err(ParseError::BadAccountType)
        );
    }

    #[test]
    fn reads_multipart_as_zend_sends_it() {
        let ct = "multipart/form-data; boundary=\"---ZENDBOUNDARY\"";
        let boundary = multipart_boundary(ct).unwrap();
        let body = b"-----ZENDBOUNDARY\r\nContent-Disposition: form-data; name=\"Email\"\r\n\r\nalice@example.com\r\n-----ZENDBOUNDARY\r\nContent-Disposition: form-data; name=\"Passwd\"\r\n\r\npass word\r\n-----ZENDBOUNDARY--\r\n";
        let got = multipart_pairs(body, &boundary).unwrap();
        assert_eq!(
            got,
            vec![
                ("Email".to_owned(), "alice@example.com".to_owned()),
                ("Passwd".to_owned(), "pass word".to_owned())
            ]
        );
        assert!(multipart_boundary("application/x-www-form-urlencoded").is_none());
        assert!(multipart_pairs(b"garbage", "b").is_err());
    }

    #[test]
    fn bodies_are_byte_exact() {
        assert_eq!(success_body("s", "l", "a"), "SID=s\nLSID=l\nAuth=a\n");
        assert_eq!(
            error_body(
                ErrorCode::BadAuthentication,
                &ErrorExtras { info: Some("InvalidSecondFactor".to_owned()), ..Default::default() }
            ),
            "Error=BadAuthentication\nInfo=InvalidSecondFactor\n"
        );
        assert_eq!(
            error_body(
                ErrorCode::CaptchaRequired,
                &ErrorExtras {
                    url: Some("https://h/u".to_owned()),
                    captcha: Some(("T".to_owned(), "Captcha?ctoken=T".to_owned())),
                    info: None
                }
            ),
            "Error=CaptchaRequired\nUrl=https://h/u\nCaptchaToken=T\nCaptchaUrl=Captcha?ctoken=T\n"
        );
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..300), b in "[a-zA-Z0-9'-]{1,20}") {
            let _ = parse_request(&urlencoded_pairs(&raw));
            let _ = multipart_pairs(&raw, &b);
        }

        #[test]
        fn multipart_round_trips(fields in proptest::collection::btree_map("[A-Za-z]{1,8}", "[ -~]{0,20}", 0..6)) {
            let boundary = "xYzBoUnDaRy42";
            let mut body = Vec::new();
            for (k, v) in &fields {
                body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes());
            }
            body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            let got = multipart_pairs(&body, boundary).unwrap();
            let want: Vec<(String, String)> = fields.into_iter().collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn error_line_is_always_first(i in 0usize..9, info in proptest::option::of("[A-Za-z]{1,20}")) {
            let body = error_body(ErrorCode::ALL[i], &ErrorExtras { url: Some("u".to_owned()), captcha: None, info });
            let first = format!("Error={}\n", ErrorCode::ALL[i].as_str());
            prop_assert!(body.starts_with(&first));
            prop_assert!(body.ends_with('\n'));
        }
    }
}
