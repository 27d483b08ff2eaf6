//! DPoP proofs (RFC 9449) for the requests a client makes with a sender-constrained token: one key
//! pair per client instance (ES256), a fresh proof per request.
//!
//! ```no_run
//! # fn main() -> Result<(), tessera_client::dpop::DpopError> {
//! let signer = tessera_client::dpop::DpopSigner::generate()?;
//! let proof = signer.proof("POST", "https://accounts.example/token", None, None, 1_700_000_000)?;
//! // send `DPoP: <proof>` with the token request; later, with the access token:
//! let proof = signer.proof("GET", "https://api.example/r", Some("the token"), None, 1_700_000_000)?;
//! # let _ = proof; Ok(()) }
//! ```

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

/// Making or using the key failed.
#[derive(Debug, thiserror::Error)]
#[error("DPoP key error")]
pub struct DpopError;

/// An ES256 key pair that signs DPoP proofs.
pub struct DpopSigner {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for DpopSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopSigner").field("jkt", &self.jkt()).finish_non_exhaustive()
    }
}

impl DpopSigner {
    /// A new P-256 key pair.
    pub fn generate() -> Result<DpopSigner, DpopError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| DpopError)?;
        DpopSigner::from_pkcs8(pkcs8.as_ref())
    }

    /// A key pair kept from before (PKCS#8 DER).
    pub fn from_pkcs8(der: &[u8]) -> Result<DpopSigner, DpopError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| DpopError)?;
        Ok(DpopSigner { pair, rng: SystemRandom::new() })
    }

    fn coordinates(&self) -> (String, String) {
        let point = self.pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y))
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> serde_json::Value {
        let (x, y) = self.coordinates();
        json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y })
    }

    /// The key's RFC 7638 thumbprint, which bound tokens carry as `cnf.jkt`.
    pub fn jkt(&self) -> String {
        let (x, y) = self.coordinates();
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    }

    /// A proof for one request: `method` and `url` (query and fragment are dropped), the access
    /// token it goes with (`ath`), the server's last `DPoP-Nonce`, and the time of signing.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        iat: u64,
    ) -> Result<String, DpopError> {
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| DpopError)?;
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk() });
        let htu = url.split(['?', '#']).next().unwrap_or_default();
        let mut claims = json!({
            "jti": URL_SAFE_NO_PAD.encode(jti), "htm": method, "htu": htu, "iat": iat,
        });
        if let Some(token) = access_token {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(digest.as_ref()));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.pair.sign(&self.rng, input.as_bytes()).map_err(|_| DpopError)?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }
}
