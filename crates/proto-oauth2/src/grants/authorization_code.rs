//! `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5).

use crate::{OAuthError, Params, pkce};

pub const GRANT_TYPE: &str = "authorization_code";
pub const PARAMETERS: &[&str] = &["code", "redirect_uri", "code_verifier"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub code: String,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
}

pub fn parse(params: &Params) -> Result<Request, OAuthError> {
    let code = params.require("code")?;
    if code.len() > 512 {
        return Err(OAuthError::invalid_grant("Malformed code."));
    }
    let code_verifier = params.get("code_verifier");
    if code_verifier.is_some_and(|it| !pkce::well_formed(it)) {
        return Err(OAuthError::invalid_request("Malformed code_verifier."));
    }
    Ok(Request {
        code: code.to_owned(),
        redirect_uri: params.get("redirect_uri").map(str::to_owned),
        code_verifier: code_verifier.map(str::to_owned),
    })
}
