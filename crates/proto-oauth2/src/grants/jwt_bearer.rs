//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1): a service account
//! signs a JWT with its own key and trades it for an access token.

use crate::{OAuthError, Params};

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const PARAMETERS: &[&str] = &["assertion", "scope"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub assertion: String,
}

pub fn parse(params: &Params) -> Result<Request, OAuthError> {
    let assertion = params.require("assertion")?;
    if assertion.len() > 8192 || assertion.split('.').count() != 3 {
        return Err(OAuthError::invalid_grant("Malformed assertion."));
    }
    Ok(Request { assertion: assertion.to_owned() })
}
