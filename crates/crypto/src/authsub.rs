//! AuthSub secure tokens: the registered application's X.509 certificate (PEM, RSA, at least 1024
//! bits) and RSASSA-PKCS1-v1_5 SHA-1 verification of the `data` string it signs.
//!
//! Verification only: the server never signs with SHA-1 (aws-lc-rs cannot), clients do.

use aws_lc_rs::signature::{RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY, UnparsedPublicKey};
use base64::Engine as _;
use x509_parser::public_key::PublicKey;

use crate::CryptoError;

/// PEM files larger than this are refused before parsing.
pub const MAX_PEM_LEN: usize = 16 * 1024;

/// Smallest RSA modulus accepted at registration.
pub const MIN_RSA_BITS: usize = 1024;

/// The parts of a registered certificate the server keeps using.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertKey {
    /// The DER `RSAPublicKey` (PKCS#1) that aws-lc-rs verifies with.
    pub rsa_public_key: Vec<u8>,
    pub bits: usize,
}

/// Parses a PEM certificate and returns its RSA public key. Refuses oversize input, anything that
/// is not one `CERTIFICATE` block, non-RSA keys and keys under [`MIN_RSA_BITS`].
pub fn parse_cert_pem(pem: &[u8]) -> Result<CertKey, CryptoError> {
    if pem.len() > MAX_PEM_LEN {
        return Err(CryptoError::InvalidKey("certificate too large"));
    }
    let (_, block) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|_| CryptoError::InvalidKey("not a PEM certificate"))?;
    if block.label != "CERTIFICATE" {
        return Err(CryptoError::InvalidKey("not a PEM certificate"));
    }
    let cert = block.parse_x509().map_err(|_| CryptoError::InvalidKey("malformed certificate"))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err(CryptoError::InvalidKey("certificate key is not RSA"));
    }
    let bits = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => rsa.key_size(),
        _ => return Err(CryptoError::InvalidKey("certificate key is not RSA")),
    };
    if bits < MIN_RSA_BITS {
        return Err(CryptoError::InvalidKey("RSA key shorter than 1024 bits"));
    }
    Ok(CertKey { rsa_public_key: spki.subject_public_key.data.to_vec(), bits })
}

/// Decodes a `sig` attribute: standard base64, padded, whitespace and newlines ignored (gdata-python
/// v1 wraps it every 76 characters).
pub fn decode_sig(sig: &str) -> Option<Vec<u8>> {
    let compact: String = sig.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() > 4096 {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(compact).ok()
}

/// Whether `sig` (base64) is an RSA-SHA1 signature of exactly `data` by `key`.
pub fn verify_rsa_sha1(key: &CertKey, data: &[u8], sig: &str) -> bool {
    let Some(sig) = decode_sig(sig) else { return false };
    UnparsedPublicKey::new(&RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY, &key.rsa_public_key)
        .verify(data, &sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = include_str!("../tests/fixtures/authsub-1024.cert.pem");
    // Made with `openssl dgst -sha1 -sign authsub-1024.key.pem` over the bytes `GET http://x/ 1 2`.
    const SIG: &str = "D0QAVQI4GyoqFluQSLz6fwqKUrYNh07H09RVohvDZxcMaAVtRmV2jMJpEwXXz9y+bPQUJGMixYf50U2SyOSWozK58tBmgAaQ1im6zCkBMkuN/kAPsvDXHK1wMZ0e2w2el7dfTjl8XTSCCB8GFF9N9uGEH8B3VCZjBgOEf5JnBWA=";

    #[test]
    fn verifies_an_openssl_signature_and_refuses_tampering() {
        let key = parse_cert_pem(CERT.as_bytes()).unwrap();
        assert_eq!(key.bits, 1024);
        assert!(verify_rsa_sha1(&key, b"GET http://x/ 1 2", SIG));
        let wrapped = format!("{}\n{}", &SIG[..76], &SIG[76..]);
        assert!(verify_rsa_sha1(&key, b"GET http://x/ 1 2", &wrapped));
        assert!(!verify_rsa_sha1(&key, b"GET http://x/ 1 3", SIG));
        assert!(!verify_rsa_sha1(&key, b"GET http://x/ 1 2", "bm90IGEgc2lnbmF0dXJl"));
        assert!(!verify_rsa_sha1(&key, b"GET http://x/ 1 2", "%%%"));
    }

    #[test]
    fn refuses_what_is_not_an_rsa_certificate() {
        assert!(parse_cert_pem(b"hello").is_err());
        let key_pem = include_str!("../tests/fixtures/authsub-1024.key.pem");
        assert!(parse_cert_pem(key_pem.as_bytes()).is_err());
        assert!(parse_cert_pem(&vec![b'a'; MAX_PEM_LEN + 1]).is_err());
    }
}
