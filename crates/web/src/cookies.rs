//! Reading the `Cookie` header and writing `Set-Cookie` lines for the cookies tessera uses.

use http::HeaderMap;

/// Browser sessions (every signed-in account's token).
pub(crate) const SESSION: &str = "TSID";
/// The CSRF binding of this browser.
pub(crate) const CSRF: &str = "TCSRF";
/// A sign-in waiting for its 2-step code.
pub(crate) const PENDING: &str = "TPEND";

/// The value of cookie `name`, if the request carries exactly a well-formed one.
pub(crate) fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|it| it.to_str().ok())
        .flat_map(|it| it.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| value.len() <= 4096)
}

/// How long a cookie lives.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Life {
    /// Until the browser closes.
    Browser,
    Seconds(i64),
    /// Delete it now.
    Expired,
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure on https.
pub(crate) fn set(name: &str, value: &str, life: Life, secure: bool) -> String {
    let mut out = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    match life {
        Life::Browser => (),
        Life::Seconds(secs) => out.push_str(&format!("; Max-Age={secs}")),
        Life::Expired => out.push_str("; Max-Age=0"),
    }
    if secure {
        out.push_str("; Secure");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, "a=1; TSID=abc.def; b=\"q\"".parse().unwrap());
        assert_eq!(get(&headers, "TSID"), Some("abc.def"));
        assert_eq!(get(&headers, "b"), Some("q"));
        assert_eq!(get(&headers, "c"), None);
        assert_eq!(
            set("X", "v", Life::Seconds(10), true),
            "X=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=10; Secure"
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in "[ -~]{0,200}") {
            let mut headers = HeaderMap::new();
            if let Ok(value) = s.parse() {
                headers.insert(http::header::COOKIE, value);
                let _ = get(&headers, "TSID");
            }
        }
    }
}
