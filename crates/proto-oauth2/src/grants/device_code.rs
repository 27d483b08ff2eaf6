//! `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4).

use crate::{OAuthError, Params};

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Google's older name for the same grant.
pub const GOOGLE_GRANT_TYPE: &str = "http://oauth.net/grant_type/device/1.0";
pub const PARAMETERS: &[&str] = &["device_code"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub device_code: String,
}

pub fn parse(params: &Params) -> Result<Request, OAuthError> {
    let device_code = params.get("device_code").or_else(|| params.get("code"));
    let device_code = device_code
        .ok_or_else(|| OAuthError::invalid_request("Missing required parameter: device_code"))?;
    Ok(Request { device_code: device_code.to_owned() })
}
