//! The OAuth 2.0 and OpenID Connect wire protocol: strict parameter parsing, one module per endpoint
//! (`authorize`, `token`, `revocation`, `introspection`) and per grant (`grants::*`), client
//! authentication, PKCE, redirect URI rules and response encoding.
//!
//! Nothing here knows HTTP frameworks, storage or time: it turns parameters into typed requests
//! (or RFC 6749 errors) and typed answers back into parameters. The domain decides.

#[cfg(test)]
mod wire_tests;

pub mod authorize;
pub mod client_auth;
pub mod error;
pub mod grants;
pub mod introspection;
pub mod params;
pub mod pkce;
pub mod redirect_uri;
pub mod response;
pub mod revocation;
pub mod token;

pub use error::{ErrorCode, OAuthError};
pub use params::Params;

/// Splits a space-delimited `scope` value, dropping empty entries and repeats (first one wins).
pub fn split_scopes(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for scope in value.split(' ').filter(|it| !it.is_empty()) {
        if !out.iter().any(|it| it == scope) {
            out.push(scope.to_owned());
        }
    }
    out
}

/// Whether every character of a client id or secret is an RFC 3986 unreserved character.
pub fn is_unreserved(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_split_on_spaces_without_repeats() {
        assert_eq!(split_scopes(" openid  email openid "), ["openid", "email"]);
        assert!(split_scopes("").is_empty());
    }

    #[test]
    fn unreserved_characters_only() {
        assert!(is_unreserved("123-abc.apps_x~y"));
        assert!(!is_unreserved("a b"));
        assert!(!is_unreserved("a:b"));
        assert!(!is_unreserved(""));
    }
}
