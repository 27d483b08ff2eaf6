//! Service-account assertions (RFC 7523 §2.1, the `jwt-bearer` grant): a service account signs a
//! short-lived RS256 JWT with its private key (the PKCS#8 PEM the console shows once) and trades
//! it at the token endpoint for an access token.
//!
//! ```no_run
//! # fn main() -> Result<(), tessera_client::service_account::AssertionError> {
//! # let pem = "";
//! use tessera_client::service_account::{AssertionSigner, JWT_BEARER};
//! let signer = AssertionSigner::from_pem("123-abc.apps.tessera", Some("kid"), pem)?;
//! let assertion = signer.assertion(
//!     "https://accounts.example/o/oauth2/token",
//!     "https://calendar.example/feeds/",
//!     1_700_000_000,
//!     "a-unique-id",
//! )?;
//! // POST grant_type=JWT_BEARER&assertion=<assertion> to the token endpoint
//! # let _ = (assertion, JWT_BEARER); Ok(()) }
//! ```

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

/// The grant type a signed assertion is exchanged with.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How long an assertion made here is valid: the most the server accepts (one hour).
pub const ASSERTION_LIFETIME_SECS: u64 = 3600;

/// The key could not be read, or signing failed.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// The PEM or DER is not an RSA private key in PKCS#8.
    #[error("not an RSA private key in PKCS#8")]
    Key,
    /// Signing failed.
    #[error("signing failed")]
    Sign,
}

/// A service account's RSA key, signing its assertions.
pub struct AssertionSigner {
    client_id: String,
    kid: Option<String>,
    pair: RsaKeyPair,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("client_id", &self.client_id)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl AssertionSigner {
    /// The service account `client_id`'s key `kid` (named in the header when given), from the
    /// `PRIVATE KEY` PEM.
    pub fn from_pem(
        client_id: &str,
        kid: Option<&str>,
        pem: &str,
    ) -> Result<AssertionSigner, AssertionError> {
        AssertionSigner::from_pkcs8_der(client_id, kid, &private_key_der(pem)?)
    }

    /// As [`AssertionSigner::from_pem`], from the PKCS#8 DER.
    pub fn from_pkcs8_der(
        client_id: &str,
        kid: Option<&str>,
        der: &[u8],
    ) -> Result<AssertionSigner, AssertionError> {
        let pair = RsaKeyPair::from_pkcs8(der).map_err(|_| AssertionError::Key)?;
        Ok(AssertionSigner { client_id: client_id.to_owned(), kid: kid.map(str::to_owned), pair })
    }

    /// A signed assertion for `audience` (the token endpoint's URL) asking for `scope`: `iss` the
    /// service account, issued at `iat` (Unix seconds), expiring an hour later, with `jti` (the
    /// server accepts each assertion once).
    pub fn assertion(
        &self,
        audience: &str,
        scope: &str,
        iat: u64,
        jti: &str,
    ) -> Result<String, AssertionError> {
        let mut header = json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = &self.kid {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.client_id,
            "scope": scope,
            "aud": audience,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME_SECS,
            "jti": jti,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut signature)
            .map_err(|_| AssertionError::Sign)?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The PKCS#8 DER inside a `PRIVATE KEY` PEM, to keep the key in a smaller form.
pub fn private_key_der(pem: &str) -> Result<Vec<u8>, AssertionError> {
    let text = pem.trim();
    let body = text
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|it| it.strip_suffix("-----END PRIVATE KEY-----"))
        .ok_or(AssertionError::Key)?;
    let joined: String = body.chars().filter(|it| !it.is_whitespace()).collect();
    STANDARD.decode(joined).map_err(|_| AssertionError::Key)
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    use super::*;

    fn pem_of(der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|it| std::str::from_utf8(it).unwrap_or_default())
            .collect();
        format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
    }

    #[test]
    fn assertion_is_an_rs256_jwt_the_public_key_verifies() {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let der = pair.as_der().unwrap();
        let signer =
            AssertionSigner::from_pem("sa.apps.tessera", Some("k1"), &pem_of(der.as_ref()))
                .unwrap();
        let jwt = signer.assertion("https://as.example/token", "s1 s2", 1000, "j1").unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({ "alg": "RS256", "typ": "JWT", "kid": "k1" }));
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "sa.apps.tessera");
        assert_eq!(claims["aud"], "https://as.example/token");
        assert_eq!(claims["scope"], "s1 s2");
        assert_eq!(claims["iat"], 1000);
        assert_eq!(claims["exp"], 4600);
        assert_eq!(claims["jti"], "j1");
        let public =
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref());
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(public.verify(input.as_bytes(), &signature).is_ok());
        assert!(public.verify(b"something else", &signature).is_err());
    }

    #[test]
    fn keys_that_are_not_pkcs8_rsa_are_refused() {
        assert!(matches!(
            AssertionSigner::from_pem("sa", None, "not a pem"),
            Err(AssertionError::Key)
        ));
        let garbage = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----";
        assert!(matches!(AssertionSigner::from_pem("sa", None, garbage), Err(AssertionError::Key)));
    }
}
