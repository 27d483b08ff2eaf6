//! The introspection endpoint's request (RFC 7662 §2.1).

use crate::{OAuthError, Params};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub token: String,
}

pub fn parse(params: &Params) -> Result<Request, OAuthError> {
    let token = params.require("token")?;
    if token.len() > 8192 {
        return Err(OAuthError::invalid_request("The token is too long."));
    }
    Ok(Request { token: token.to_owned() })
}
