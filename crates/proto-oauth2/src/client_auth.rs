//! Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3):
//! `client_secret_basic` (the Basic credentials are form-encoded before base64, so they are
//! decoded again here), `client_secret_post`, `private_key_jwt` (RFC 7523) and public clients that
//! only name themselves. Using two methods at once is refused.

use crate::params::form_decode;
use crate::{OAuthError, Params};

pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Basic {
        secret: String,
    },
    Post {
        secret: String,
    },
    PrivateKeyJwt {
        assertion: String,
    },
    /// A public client: only its id.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub client_id: String,
    pub method: Method,
}

/// `Basic` credentials as the one `Authorization` parser split them, still form-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub user: String,
    pub password: String,
}

/// The error for a `Basic` header that is not base64 of `id:secret`.
pub fn malformed_basic() -> OAuthError {
    OAuthError::invalid_client("Malformed Basic credentials.")
}

/// The client's credentials from `Basic` authentication and the body, if it sent any.
pub fn extract(
    basic: Option<BasicCredentials>,
    params: &Params,
) -> Result<Option<Presented>, OAuthError> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let assertion = match (params.get("client_assertion_type"), params.get("client_assertion")) {
        (None, None) => None,
        (Some(JWT_BEARER_ASSERTION), Some(assertion)) => Some(assertion.to_owned()),
        _ => return Err(OAuthError::invalid_client("Unsupported client assertion.")),
    };
    if let Some(credentials) = basic {
        if body_secret.is_some() || assertion.is_some() {
            return Err(OAuthError::invalid_request(
                "Use one client authentication method, not several.",
            ));
        }
        let (client_id, secret) = form_decoded(&credentials)?;
        if body_id.is_some_and(|it| it != client_id) {
            return Err(OAuthError::invalid_client("The client_id values disagree."));
        }
        return Ok(Some(Presented { client_id, method: Method::Basic { secret } }));
    }
    let Some(client_id) = body_id else {
        return if assertion.is_some() || body_secret.is_some() {
            Err(OAuthError::invalid_request("Missing required parameter: client_id"))
        } else {
            Ok(None)
        };
    };
    let method = match (body_secret, assertion) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "Use one client authentication method, not several.",
            ));
        }
        (Some(secret), None) => Method::Post { secret: secret.to_owned() },
        (None, Some(assertion)) => Method::PrivateKeyJwt { assertion },
        (None, None) => Method::None,
    };
    Ok(Some(Presented { client_id: client_id.to_owned(), method }))
}

/// Form-decodes `form(client_id)` and `form(secret)` (RFC 6749 §2.3.1).
fn form_decoded(credentials: &BasicCredentials) -> Result<(String, String), OAuthError> {
    let client_id = form_decode(credentials.user.as_bytes()).ok_or_else(malformed_basic)?;
    let secret = form_decode(credentials.password.as_bytes()).ok_or_else(malformed_basic)?;
    if client_id.is_empty() {
        return Err(malformed_basic());
    }
    Ok((client_id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(id: &str, secret: &str) -> Option<BasicCredentials> {
        Some(BasicCredentials { user: id.to_owned(), password: secret.to_owned() })
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let found = extract(header("a%3Ab", "s%2Bt+u%25"), &Params::default()).unwrap().unwrap();
        assert_eq!(found.client_id, "a:b");
        assert_eq!(found.method, Method::Basic { secret: "s+t u%".to_owned() });
    }

    #[test]
    fn post_public_and_conflicts() {
        let post = Params::from_pairs([("client_id", "c"), ("client_secret", "s")]);
        assert_eq!(
            extract(None, &post).unwrap().unwrap().method,
            Method::Post { secret: "s".to_owned() }
        );
        let public = Params::from_pairs([("client_id", "c")]);
        assert_eq!(extract(None, &public).unwrap().unwrap().method, Method::None);
        assert_eq!(extract(None, &Params::default()).unwrap(), None);
        assert!(extract(header("c", "s"), &post).is_err());
        let other = Params::from_pairs([("client_id", "d")]);
        assert_eq!(
            extract(header("c", "s"), &other).unwrap_err().code,
            crate::ErrorCode::InvalidClient
        );
        assert!(extract(header("", "s"), &Params::default()).is_err(), "an empty client id");
    }
}
