//! Where a browser may be sent after sign-in or sign-out: only to this server's own origin or to a
//! URL registered in advance. Everything else falls back to a safe default page.

use url::Url;

/// Returns the absolute URL to follow for `input`, or `None` when it must not be followed.
///
/// Accepted: a path on this server (`/account?x=1`), an absolute URL with this server's origin, or
/// an absolute URL that starts with one of `registered` (exact prefixes such as
/// `https://app.example/`). Userinfo, backslashes, control characters, protocol-relative paths and
/// any scheme but http/https are refused, in raw or percent-encoded form.
pub fn validate_continue(public_url: &str, registered: &[String], input: &str) -> Option<String> {
    let public = Url::parse(public_url).ok()?;
    if input.is_empty() || input.len() > 2048 {
        return None;
    }
    if input.chars().any(|c| c.is_control() || c == '\\' || c.is_whitespace()) {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(input).decode_utf8_lossy();
    if decoded.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    if input.starts_with('/') {
        // A path on this server; `//host` and `/\host` are other hosts to a browser.
        if input.starts_with("//") || decoded.starts_with("//") {
            return None;
        }
        let joined = public.join(input).ok()?;
        return same_origin(&public, &joined).then(|| joined.to_string());
    }
    let url = Url::parse(input).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    if same_origin(&public, &url) {
        return Some(url.to_string());
    }
    let text = url.to_string();
    registered.iter().any(|prefix| registered_prefix_matches(prefix, &url, &text)).then_some(text)
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Whether the absolute URL `url` lies under the registered `prefix` (same origin, the path
/// continues the prefix's).
pub fn under_registered_prefix(prefix: &str, url: &str) -> bool {
    Url::parse(url).is_ok_and(|parsed| registered_prefix_matches(prefix, &parsed, parsed.as_str()))
}

fn registered_prefix_matches(prefix: &str, url: &Url, text: &str) -> bool {
    let Ok(registered) = Url::parse(prefix) else { return false };
    // The origin must match exactly, and the path must continue the registered path.
    same_origin(&registered, url) && text.starts_with(registered.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PUBLIC: &str = "http://localhost:8080";

    fn check(input: &str) -> Option<String> {
        validate_continue(PUBLIC, &["https://app.example/cb/".to_owned()], input)
    }

    #[test]
    fn accepts_own_paths_and_registered_urls() {
        assert_eq!(check("/account").as_deref(), Some("http://localhost:8080/account"));
        assert_eq!(
            check("/account?x=1&y=%2F").as_deref(),
            Some("http://localhost:8080/account?x=1&y=%2F")
        );
        assert_eq!(check("http://localhost:8080/x").as_deref(), Some("http://localhost:8080/x"));
        assert_eq!(
            check("https://app.example/cb/done").as_deref(),
            Some("https://app.example/cb/done")
        );
    }

    #[test]
    fn refuses_hostile_urls() {
        for bad in [
            "//evil.example",
            "/%2Fevil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,x",
            "http://localhost@evil.example",
            "http://localhost:8080@evil.example/",
            "http://evil.example/",
            "https://localhost:8080/",
            "http://localhost:8081/",
            "https://app.example/cbx",
            "https://app.example/cb/../../x",
            "https://app.example.evil.example/cb/",
            "https://app.example:444/cb/",
            "http%3A%2F%2Fevil.example",
            "/\tevil",
            " /account",
            "",
        ] {
            assert_eq!(check(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn only_ever_returns_this_origin_or_a_registered_prefix(s in "\\PC{0,60}") {
            if let Some(url) = check(&s) {
                prop_assert!(url.starts_with("http://localhost:8080/") || url.starts_with("https://app.example/cb/"), "{}", url);
            }
        }

        #[test]
        fn path_like_inputs_never_escape(s in "[/\\\\%.a-z:@2Ff]{0,20}") {
            if let Some(url) = check(&s) {
                let parsed = Url::parse(&url).unwrap();
                prop_assert!(parsed.host_str() == Some("localhost") || parsed.host_str() == Some("app.example"));
            }
        }
    }
}
