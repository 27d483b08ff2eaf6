//! Redirect URI rules (RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §4.1): registered URIs are compared
//! as exact strings; the only relaxation is the port of a loopback `http` URI for native apps.
//! Out-of-band values show the code on a page instead of redirecting.

use url::Url;

/// Show the code on a page to copy.
pub const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";
/// Show the code in the page title and ask the person to close the window.
pub const OOB_AUTO: &str = "urn:ietf:wg:oauth:2.0:oob:auto";

/// Where an authorization response goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Oob { auto: bool },
    Uri(String),
}

pub fn destination(uri: &str) -> Destination {
    match uri {
        OOB => Destination::Oob { auto: false },
        OOB_AUTO => Destination::Oob { auto: true },
        _ => Destination::Uri(uri.to_owned()),
    }
}

const LOOPBACK_HOSTS: [&str; 3] = ["127.0.0.1", "[::1]", "localhost"];

/// Checks a URI a developer registers. `public` clients (installed apps) may also register
/// out-of-band values and private-use schemes (`com.example.app:/cb`, RFC 8252 §7.1).
pub fn validate_registration(uri: &str, public: bool) -> Result<(), String> {
    if uri == OOB || uri == OOB_AUTO {
        return if public {
            Ok(())
        } else {
            Err("Out-of-band redirects are for installed applications.".to_owned())
        };
    }
    if uri.len() > 2000 || uri.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return Err("The redirect URI has characters it must not have.".to_owned());
    }
    let url = canonical(uri).ok_or("Enter an absolute URI in canonical form.")?;
    if url.fragment().is_some() {
        return Err("A redirect URI must not have a fragment.".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("A redirect URI must not carry user information.".to_owned());
    }
    // A host is a DNS name or an IP literal: no wildcards, no other punctuation.
    let plain_host = url.host_str().is_none_or(|host| {
        host.starts_with('[')
            || host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    });
    if !plain_host {
        return Err("A redirect URI's host is a plain name, without wildcards.".to_owned());
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err("Use https, or http only on a loopback address.".to_owned()),
        scheme if public && scheme.contains('.') => Ok(()),
        _ => Err("Use https (or a reverse-domain scheme for installed apps).".to_owned()),
    }
}

/// Whether `requested` may receive the response, given the client's registered URIs.
pub fn matches(registered: &[String], requested: &str) -> bool {
    if registered.iter().any(|it| it == requested) {
        return true;
    }
    // RFC 8252 §7.3: a loopback redirect may use any port; everything else must still be equal.
    let Some(url) = canonical(requested) else { return false };
    if url.scheme() != "http" || !is_loopback(&url) || url.fragment().is_some() {
        return false;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    registered.iter().filter_map(|it| canonical(it)).any(|reg| {
        reg.scheme() == "http"
            && is_loopback(&reg)
            && reg.host_str() == url.host_str()
            && reg.path() == url.path()
            && reg.query() == url.query()
    })
}

fn is_loopback(url: &Url) -> bool {
    url.host_str().is_some_and(|host| LOOPBACK_HOSTS.contains(&host))
}

/// The URI parsed, but only if parsing did not change it: percent-encoded dots, upper-case hosts,
/// default ports, `..` segments and backslashes all make a URI that another parser may read
/// differently, so they never match.
fn canonical(uri: &str) -> Option<Url> {
    let url = Url::parse(uri).ok()?;
    let text = url.as_str();
    let same = text == uri || (url.path() == "/" && text.strip_suffix('/') == Some(uri));
    let dots = uri.to_ascii_lowercase().contains("%2e");
    (same && !dots).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(uris: &[&str]) -> Vec<String> {
        uris.iter().map(|it| (*it).to_owned()).collect()
    }

    #[test]
    fn exact_match_only_for_web_uris() {
        let registered = reg(&["https://app.example/cb"]);
        assert!(matches(&registered, "https://app.example/cb"));
        for bad in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://app.example/cb#x",
            "https://app.example/cbx",
            "https://app.example/CB",
            "https://APP.example/cb",
            "https://app.example:443/cb",
            "https://app.example/cb/../cb",
            "https://app.example/x/%2e%2e/cb",
            "https://app.example.evil/cb",
            "https://app.example@evil.example/cb",
            "https://evil.example/?https://app.example/cb",
            "http://app.example/cb",
            "https://app.example\\@evil.example/cb",
        ] {
            assert!(!matches(&registered, bad), "{bad}");
        }
    }

    #[test]
    fn wildcards_are_not_patterns() {
        let registered = reg(&["https://*.app.example/cb"]);
        assert!(!matches(&registered, "https://evil.app.example/cb"));
        assert!(validate_registration("https://*.app.example/cb", false).is_err());
    }

    #[test]
    fn loopback_allows_any_port_but_nothing_else() {
        let registered = reg(&["http://127.0.0.1/cb", "http://localhost/"]);
        assert!(matches(&registered, "http://127.0.0.1:53124/cb"));
        assert!(matches(&registered, "http://127.0.0.1/cb"));
        assert!(matches(&registered, "http://localhost:8080/"));
        assert!(matches(&registered, "http://localhost:8080"));
        for bad in [
            "http://127.0.0.1:53124/cb/x",
            "http://127.0.0.1:53124/other",
            "http://localhost:8080/cb",
            "http://localhost@evil.example:8080/",
            "http://localhost:8080@evil.example/",
            "http://localhost.evil.example:8080/",
            "http://127.0.0.1.evil.example:5/cb",
            "http://[::1]:5/cb",
            "https://127.0.0.1:5/cb",
            "http://127.0.0.1:5/x/%2e%2e/cb",
            "http://127.0.0.1:5/x/../cb",
            "http://127.0.0.1:5/cb#frag",
        ] {
            assert!(!matches(&registered, bad), "{bad}");
        }
        // A web URI on a non-loopback host gets no port relaxation.
        assert!(!matches(&reg(&["https://app.example/cb"]), "https://app.example:8443/cb"));
    }

    #[test]
    fn registration_rules() {
        assert!(validate_registration("https://app.example/cb", false).is_ok());
        assert!(validate_registration("http://127.0.0.1/cb", true).is_ok());
        assert!(validate_registration("http://app.example/cb", false).is_err());
        assert!(validate_registration("https://app.example/cb#x", false).is_err());
        assert!(validate_registration("https://u:p@app.example/cb", false).is_err());
        assert!(validate_registration(OOB, true).is_ok());
        assert!(validate_registration(OOB, false).is_err());
        assert!(validate_registration("com.example.app:/oauth2redirect", true).is_ok());
        assert!(validate_registration("com.example.app:/oauth2redirect", false).is_err());
        assert!(validate_registration("javascript:alert(1)", true).is_err());
        assert_eq!(destination(OOB_AUTO), Destination::Oob { auto: true });
    }
}
