//! The revocation endpoint's request: RFC 7009 (`token`, `token_type_hint`) and Google's form
//! (`?token=` on GET or POST, no client authentication).

use crate::{OAuthError, Params};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub token: String,
}

pub fn parse(params: &Params) -> Result<Request, OAuthError> {
    let token = params.require("token")?;
    if token.len() > 4096 {
        return Err(OAuthError::invalid_request("The token is too long."));
    }
    // `token_type_hint` is only a hint (RFC 7009 §2.1): every kind is looked up anyway.
    Ok(Request { token: token.to_owned() })
}
