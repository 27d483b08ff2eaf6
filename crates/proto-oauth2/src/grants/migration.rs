//! The migration grants: an application trades a legacy credential it holds for an OAuth 2.0
//! refresh token on the same scopes, without asking the person again.
//!
//! * `urn:ietf:params:oauth:grant-type:migration:oauth1` (the grant type Google used for OAuth 1.0
//!   → 2.0 migration): the request itself is signed with OAuth 1.0 by the consumer, with the access
//!   token being migrated; the signature lives in the `Authorization: OAuth` header (or the body),
//!   so this module reads no token parameter.
//! * `urn:tessera:params:oauth:grant-type:migration:legacy`: `legacy_token` is an AuthSub session
//!   token or a ClientLogin `Auth` token.

use crate::{OAuthError, Params};

pub const OAUTH1_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:migration:oauth1";
pub const LEGACY_GRANT_TYPE: &str = "urn:tessera:params:oauth:grant-type:migration:legacy";
pub const PARAMETERS: &[&str] = &["legacy_token"];

/// Which legacy credential the request presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The OAuth 1.0 access token the request is signed with.
    OAuth1,
    /// An AuthSub session token or a ClientLogin `Auth` token.
    LegacyToken(String),
}

pub fn parse_oauth1(params: &Params) -> Result<Request, OAuthError> {
    if params.contains("legacy_token") {
        return Err(OAuthError::invalid_request(
            "legacy_token is not used with the oauth1 migration grant; sign the request instead.",
        ));
    }
    Ok(Request::OAuth1)
}

pub fn parse_legacy(params: &Params) -> Result<Request, OAuthError> {
    let token = params.require("legacy_token")?;
    if token.len() > 512 {
        return Err(OAuthError::invalid_grant("Malformed legacy_token."));
    }
    Ok(Request::LegacyToken(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn legacy_token_is_required_and_bounded() {
        let ok = Params::from_pairs([("legacy_token", "abc")]);
        assert_eq!(parse_legacy(&ok).unwrap(), Request::LegacyToken("abc".to_owned()));
        let missing = Params::from_pairs([("grant_type", LEGACY_GRANT_TYPE)]);
        assert_eq!(parse_legacy(&missing).unwrap_err().code, ErrorCode::InvalidRequest);
        let long = "a".repeat(513);
        let long = Params::from_pairs([("legacy_token", long.as_str())]);
        assert_eq!(parse_legacy(&long).unwrap_err().code, ErrorCode::InvalidGrant);
        let stray = Params::from_pairs([("legacy_token", "abc")]);
        assert_eq!(parse_oauth1(&stray).unwrap_err().code, ErrorCode::InvalidRequest);
        let signed = Params::from_pairs([("grant_type", OAUTH1_GRANT_TYPE)]);
        assert_eq!(parse_oauth1(&signed).unwrap(), Request::OAuth1);
    }
}
