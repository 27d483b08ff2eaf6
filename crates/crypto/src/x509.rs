//! Minimal self-signed X.509 v3 certificates (DER and PEM) for published RS256 keys: Google's
//! `/oauth2/v1/certs` serves each signing key as a certificate. Hand-written DER keeps rcgen (and a
//! second ASN.1 stack) out of the server; the structure is fixed and tiny.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::CryptoError;
use crate::keys::{KeyAlg, SigningKey};
use crate::random::Rng;

const SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn algorithm(oid: &[u8]) -> Vec<u8> {
    seq(&[&tlv(0x06, oid), &[0x05, 0x00]])
}

/// A positive INTEGER from big-endian bytes.
fn integer(bytes: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match bytes.iter().position(|b| *b != 0) {
        Some(i) => &bytes[i..],
        None => &[0],
    };
    let mut body = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        body.push(0);
    }
    body.extend_from_slice(trimmed);
    tlv(0x02, &body)
}

fn name(common_name: &str) -> Vec<u8> {
    let attribute = seq(&[&tlv(0x06, COMMON_NAME), &tlv(0x0c, common_name.as_bytes())]);
    seq(&[&tlv(0x31, &attribute)])
}

/// UTCTime until 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5).
fn time(unix: i64) -> Vec<u8> {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = crate::civil::civil_from_days(days);
    let clock =
        format!("{month:02}{day:02}{:02}{:02}{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60);
    if (1950..2050).contains(&year) {
        tlv(0x17, format!("{:02}{clock}", year % 100).as_bytes())
    } else {
        tlv(0x18, format!("{year:04}{clock}").as_bytes())
    }
}

/// A self-signed certificate for an RS256 key, subject and issuer `CN=<common_name>`, valid from
/// `not_before` to `not_after` (unix seconds), serial number from `serial`.
///
/// # Errors
///
/// [`CryptoError::Signing`] for keys that are not RS256 or when signing fails.
pub fn self_signed_der(
    key: &SigningKey,
    rng: &dyn Rng,
    common_name: &str,
    serial: &[u8],
    not_before: i64,
    not_after: i64,
) -> Result<Vec<u8>, CryptoError> {
    if key.alg() != KeyAlg::Rs256 {
        return Err(CryptoError::Signing);
    }
    let mut spki_bits = vec![0u8];
    spki_bits.extend_from_slice(&key.public_key_der());
    let spki = seq(&[&algorithm(RSA_ENCRYPTION), &tlv(0x03, &spki_bits)]);
    let version = tlv(0xa0, &integer(&[2]));
    let tbs = seq(&[
        &version,
        &integer(serial),
        &algorithm(SHA256_WITH_RSA),
        &name(common_name),
        &seq(&[&time(not_before), &time(not_after)]),
        &name(common_name),
        &spki,
    ]);
    let signature = key.sign(rng, &tbs)?;
    let mut bits = vec![0u8];
    bits.extend_from_slice(&signature);
    Ok(seq(&[&tbs, &algorithm(SHA256_WITH_RSA), &tlv(0x03, &bits)]))
}

/// PEM text with 64-character lines and a final newline.
#[must_use]
pub fn pem(label: &str, der: &[u8]) -> String {
    let text = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SystemRng;

    #[test]
    fn certificate_carries_the_key_and_verifies_itself() {
        let key = SigningKey::generate(KeyAlg::Rs256).unwrap();
        let der = self_signed_der(
            &key,
            &SystemRng::new(),
            "k1",
            &[0x9f, 1],
            1_795_219_200,
            1_900_000_000,
        )
        .unwrap();
        // Outer SEQUENCE → tbs SEQUENCE, algorithm, BIT STRING signature.
        assert_eq!(der[0], 0x30);
        let public = key.public_key_der();
        assert!(der.windows(public.len()).any(|w| w == public.as_slice()), "SPKI holds the key");
        let tbs_start = match der[1] {
            0x82 => 4,
            0x81 => 3,
            _ => 2,
        };
        assert_eq!(der[tbs_start], 0x30);
        let tbs_len = match der[tbs_start + 1] {
            0x82 => usize::from(u16::from_be_bytes([der[tbs_start + 2], der[tbs_start + 3]])) + 4,
            0x81 => usize::from(der[tbs_start + 2]) + 3,
            n => usize::from(n) + 2,
        };
        let tbs = &der[tbs_start..tbs_start + tbs_len];
        let sig = &der[der.len() - 256..];
        assert!(crate::keys::verify(KeyAlg::Rs256, &public, tbs, sig));
        assert!(der.windows(13).any(|w| w == b"261121000000Z".as_slice()), "notBefore");
        let text = pem("CERTIFICATE", &der);
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(text.ends_with("-----END CERTIFICATE-----\n"));
        assert!(text.lines().all(|line| line.len() <= 64));
    }

    #[test]
    fn times_switch_to_generalized_in_2050() {
        assert_eq!(time(0), tlv(0x17, b"700101000000Z"));
        assert_eq!(time(2_524_608_000), tlv(0x18, b"20500101000000Z"));
        assert_eq!(integer(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(&[0, 0, 5]), vec![0x02, 0x01, 0x05]);
    }
}
