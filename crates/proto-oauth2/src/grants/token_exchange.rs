//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693), used here for
//! cross-client identity: a client trades its access token for an ID token whose audience is
//! another client of the same project.

use crate::{ErrorCode, OAuthError, Params};

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const PARAMETERS: &[&str] =
    &["subject_token", "subject_token_type", "requested_token_type", "audience"];

pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// An access token the calling client holds.
    pub subject_token: String,
    /// The client id the ID token is for.
    pub audience: String,
}

pub fn parse(params: &Params) -> Result<Request, OAuthError> {
    let subject_token = params.require("subject_token")?;
    if params.require("subject_token_type")? != ACCESS_TOKEN_TYPE {
        return Err(OAuthError::invalid_request("subject_token_type must be an access token."));
    }
    match params.get("requested_token_type") {
        None | Some(ID_TOKEN_TYPE) => {}
        Some(_) => {
            return Err(OAuthError::invalid_request("Only ID tokens can be requested."));
        }
    }
    let audience = params
        .get("audience")
        .ok_or_else(|| OAuthError::new(ErrorCode::InvalidTarget, "An audience is required."))?;
    Ok(Request { subject_token: subject_token.to_owned(), audience: audience.to_owned() })
}
