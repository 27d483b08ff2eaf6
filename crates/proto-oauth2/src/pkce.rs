//! Proof Key for Code Exchange (RFC 7636): challenge and verifier shapes and the S256 check.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::OAuthError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    S256,
    Plain,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::S256 => "S256",
            Method::Plain => "plain",
        }
    }

    /// `None` means `plain`, the RFC 7636 default.
    pub fn parse(value: Option<&str>) -> Result<Method, OAuthError> {
        match value {
            None | Some("plain") => Ok(Method::Plain),
            Some("S256") => Ok(Method::S256),
            Some(_) => Err(OAuthError::invalid_request("Unsupported code_challenge_method.")),
        }
    }
}

/// 43 to 128 characters of `[A-Za-z0-9-._~]`: the shape of verifiers and challenges alike.
pub fn well_formed(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(tessera_crypto::digest::sha256(verifier.as_bytes()))
}

/// Whether `verifier` answers `challenge` under `method`, in constant time.
pub fn verify(method: Method, challenge: &str, verifier: &str) -> bool {
    if !well_formed(verifier) {
        return false;
    }
    let expected = match method {
        Method::S256 => s256(verifier),
        Method::Plain => verifier.to_owned(),
    };
    tessera_crypto::digest::ct_eq(expected.as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256(verifier), challenge);
        assert!(verify(Method::S256, challenge, verifier));
        assert!(!verify(Method::S256, challenge, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl"));
        assert!(!verify(Method::Plain, challenge, verifier));
        assert!(verify(Method::Plain, verifier, verifier));
        assert!(!verify(Method::Plain, "short", "short"));
    }

    #[test]
    fn methods() {
        assert_eq!(Method::parse(None).unwrap(), Method::Plain);
        assert_eq!(Method::parse(Some("S256")).unwrap(), Method::S256);
        assert!(Method::parse(Some("s256")).is_err());
    }
}
