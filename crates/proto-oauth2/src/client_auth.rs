//! Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3):
//! `client_secret_basic` (the Basic credentials are form-encoded before base64, so they are
//! decoded again here), `client_secret_post`, `private_key_jwt` (RFC 7523) and public clients that
//! only name themselves. Using two methods at once is refused.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

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

/// The client's credentials from the `Authorization` header and the body, if it sent any.
pub fn extract(
    authorization: Option<&str>,
    params: &Params,
) -> Result<Option<Presented>, OAuthError> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let assertion = match (params.get("client_assertion_type"), params.get("client_assertion")) {
        (None, None) => None,
        (Some(JWT_BEARER_ASSERTION), Some(assertion)) => Some(assertion.to_owned()),
        _ => return Err(OAuthError::invalid_client("Unsupported client assertion.")),
    };
    if let Some(header) = authorization {
        let (scheme, value) = header.trim().split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            if body_secret.is_some() || assertion.is_some() {
                return Err(OAuthError::invalid_request(
                    "Use one client authentication method, not several.",
                ));
            }
            let (client_id, secret) = basic(value.trim())?;
            if body_id.is_some_and(|it| it != client_id) {
                return Err(OAuthError::invalid_client("The client_id values disagree."));
            }
            return Ok(Some(Presented { client_id, method: Method::Basic { secret } }));
        }
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

/// Decodes `base64(form(client_id) ":" form(secret))`.
fn basic(value: &str) -> Result<(String, String), OAuthError> {
    let bad = || OAuthError::invalid_client("Malformed Basic credentials.");
    let raw = STANDARD.decode(value).map_err(|_| bad())?;
    let colon = raw.iter().position(|b| *b == b':').ok_or_else(bad)?;
    let client_id = form_decode(&raw[..colon]).ok_or_else(bad)?;
    let secret = form_decode(&raw[colon + 1..]).ok_or_else(bad)?;
    if client_id.is_empty() {
        return Err(bad());
    }
    Ok((client_id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let found =
            extract(Some(&header("a%3Ab", "s%2Bt+u%25")), &Params::default()).unwrap().unwrap();
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
        assert!(extract(Some(&header("c", "s")), &post).is_err());
        let other = Params::from_pairs([("client_id", "d")]);
        assert_eq!(
            extract(Some(&header("c", "s")), &other).unwrap_err().code,
            crate::ErrorCode::InvalidClient
        );
        assert!(extract(Some("Basic !!!"), &Params::default()).is_err());
    }
}
