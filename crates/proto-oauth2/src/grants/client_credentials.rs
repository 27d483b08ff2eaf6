//! `grant_type=client_credentials` (RFC 6749 §4.4): a confidential client acting for itself.

use crate::{OAuthError, Params, split_scopes};

pub const GRANT_TYPE: &str = "client_credentials";
pub const PARAMETERS: &[&str] = &["scope"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub scopes: Vec<String>,
}

/// `scope` is optional (RFC 6749 §4.4.2); without it the token carries no scopes.
pub fn parse(params: &Params) -> Result<Request, OAuthError> {
    Ok(Request { scopes: split_scopes(params.get("scope").unwrap_or_default()) })
}
