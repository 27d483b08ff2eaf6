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

/// Parses an uploaded RSA public key: a `PUBLIC KEY` (SubjectPublicKeyInfo, as `openssl rsa
/// -pubout` writes) or a `CERTIFICATE` block. Refuses oversize input, other key types and moduli
/// under `min_bits`. Used for service-account keys, which sign assertions with RS256.
pub fn parse_rsa_public_pem(pem: &[u8], min_bits: usize) -> Result<CertKey, CryptoError> {
    use x509_parser::prelude::FromDer as _;
    if pem.len() > MAX_PEM_LEN {
        return Err(CryptoError::InvalidKey("key too large"));
    }
    let (_, block) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|_| CryptoError::InvalidKey("not a PEM block"))?;
    let key = match block.label.as_str() {
        "CERTIFICATE" => parse_cert_pem(pem)?,
        "PUBLIC KEY" => {
            let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&block.contents)
                .map_err(|_| CryptoError::InvalidKey("malformed public key"))?;
            if !rest.is_empty()
                || spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION
            {
                return Err(CryptoError::InvalidKey("the key is not RSA"));
            }
            let bits = match spki.parsed() {
                Ok(PublicKey::RSA(rsa)) => rsa.key_size(),
                _ => return Err(CryptoError::InvalidKey("the key is not RSA")),
            };
            CertKey { rsa_public_key: spki.subject_public_key.data.to_vec(), bits }
        }
        _ => return Err(CryptoError::InvalidKey("expected a PUBLIC KEY or CERTIFICATE block")),
    };
    if key.bits < min_bits {
        return Err(CryptoError::InvalidKey("RSA key too short"));
    }
    Ok(key)
}

#[cfg(test)]
mod upload_tests {
    use super::*;

    #[test]
    fn public_keys_upload_as_spki_or_certificate() {
        let key = crate::keys::SigningKey::generate(crate::keys::KeyAlg::Rs256).unwrap();
        let pkcs1 = key.public_key_der();
        // SPKI = SEQUENCE { AlgorithmIdentifier rsaEncryption NULL, BIT STRING pkcs1 }.
        let alg: &[u8] = &[
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        let mut bits = vec![0x00];
        bits.extend_from_slice(&pkcs1);
        let der = |tag: u8, body: &[u8]| {
            let mut out = vec![tag];
            let len = body.len();
            if len < 0x80 {
                out.push(len as u8);
            } else if len < 0x100 {
                out.extend([0x81, len as u8]);
            } else {
                out.extend([0x82, (len >> 8) as u8, len as u8]);
            }
            out.extend_from_slice(body);
            out
        };
        let bit_string = der(0x03, &bits);
        let spki = der(0x30, &[alg, &bit_string].concat());
        let pem = crate::x509::pem("PUBLIC KEY", &spki);
        let parsed = parse_rsa_public_pem(pem.as_bytes(), 2048).unwrap();
        assert_eq!(parsed.rsa_public_key, pkcs1);
        assert_eq!(parsed.bits, 2048);
        assert!(parse_rsa_public_pem(pem.as_bytes(), 4096).is_err(), "too short for 4096");
        let cert = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/authsub-1024.cert.pem"
        ))
        .unwrap();
        assert_eq!(parse_rsa_public_pem(&cert, 1024).unwrap().bits, 1024);
        assert!(parse_rsa_public_pem(&cert, 2048).is_err());
        assert!(
            parse_rsa_public_pem(
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                1024
            )
            .is_err()
        );
        assert!(parse_rsa_public_pem(b"garbage", 1024).is_err());
    }
}
