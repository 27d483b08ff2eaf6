//! `grant_type=refresh_token` (RFC 6749 §6).

use crate::{OAuthError, Params, split_scopes};

pub const GRANT_TYPE: &str = "refresh_token";
pub const PARAMETERS: &[&str] = &["refresh_token", "scope"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub refresh_token: String,
    /// A subset of the granted scopes, or `None` for all of them.
    pub scopes: Option<Vec<String>>,
}

pub fn parse(params: &Params) -> Result<Request, OAuthError> {
    let refresh_token = params.require("refresh_token")?;
    if refresh_token.len() > 512 {
        return Err(OAuthError::invalid_grant("Malformed refresh token."));
    }
    Ok(Request {
        refresh_token: refresh_token.to_owned(),
        scopes: params.get("scope").map(split_scopes),
    })
}
