//! The published key set: next keys (published before they sign), the active key, and retired keys
//! until every token they signed has expired. Served as a JWKS and as Google's X.509-free
//! `{kid: PEM}` map's JWKS twin.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tessera_store::{KeyRecord, KeyState};

use super::ID_TOKEN_TTL_SECS;
use crate::{Ctx, Result, keys};

/// How long verifiers may cache the key set. A next key is published one rotation ahead of
/// signing, so rotations at least this far apart never leave a cache without the signing key.
pub const MAX_AGE_SECS: i64 = 3600;

/// One public key as a JWK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    pub kid: String,
    pub alg: String,
    pub material: KeyMaterial,
}

/// The key-type members of a JWK, base64url.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// `kty: RSA`: modulus and exponent.
    Rsa { n: String, e: String },
    /// `kty: EC`, `crv: P-256`: the point's coordinates.
    P256 { x: String, y: String },
}

/// Whether a key belongs in the published set at `now`.
pub(crate) fn is_published(record: &KeyRecord, now: i64) -> bool {
    match record.state {
        KeyState::Next | KeyState::Active => true,
        KeyState::Retired => {
            record.retired_at.is_none_or(|at| at + ID_TOKEN_TTL_SECS + MAX_AGE_SECS > now)
        }
        KeyState::Revoked => false,
    }
}

async fn published_records(ctx: &Ctx, now: i64) -> Result<Vec<KeyRecord>> {
    let ring = keys::ring(ctx).await?;
    Ok(ring.records.iter().filter(|it| is_published(it, now)).cloned().collect())
}

/// The keys to publish, in a stable order (active first, then next, then retired).
pub async fn published(ctx: &Ctx) -> Result<Vec<PublishedKey>> {
    let mut records = published_records(ctx, ctx.now()).await?;
    records.sort_by_key(|it| match it.state {
        KeyState::Active => 0,
        KeyState::Next => 1,
        _ => 2,
    });
    Ok(records
        .iter()
        .filter_map(|it| {
            let der = STANDARD.decode(&it.public_der).ok()?;
            let material = match it.alg.as_str() {
                "RS256" => {
                    let (n, e) = rsa_components(&der)?;
                    KeyMaterial::Rsa { n: URL_SAFE_NO_PAD.encode(n), e: URL_SAFE_NO_PAD.encode(e) }
                }
                // The uncompressed SEC1 point: 0x04 || x || y.
                "ES256" if der.len() == 65 && der[0] == 4 => KeyMaterial::P256 {
                    x: URL_SAFE_NO_PAD.encode(&der[1..33]),
                    y: URL_SAFE_NO_PAD.encode(&der[33..65]),
                },
                _ => return None,
            };
            Some(PublishedKey { kid: it.kid.clone(), alg: it.alg.clone(), material })
        })
        .collect())
}

/// The published keys as Google's `/oauth2/v1/certs` map: kid → self-signed PEM certificate.
/// Certificates are deterministic (RSA PKCS#1 v1.5), valid from the key's creation for ten years.
pub async fn certificates(ctx: &Ctx) -> Result<Vec<(String, String)>> {
    let mut records = published_records(ctx, ctx.now()).await?;
    records.sort_by_key(|it| match it.state {
        KeyState::Active => 0,
        KeyState::Next => 1,
        _ => 2,
    });
    let mut out = Vec::new();
    for record in records.iter().filter(|it| it.alg == "RS256") {
        out.push((record.kid.clone(), certificate(ctx, record)?));
    }
    Ok(out)
}

/// A key's self-signed certificate. It depends only on the key and its creation time (RSA PKCS#1
/// v1.5 signatures are deterministic), so each is made once per process and kept: the store is
/// still asked which keys to publish on every request, and the cache holds only derived bytes.
fn certificate(ctx: &Ctx, record: &KeyRecord) -> Result<String> {
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<(String, String), String>>,
    > = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let cache_key = (record.kid.clone(), record.public_der.clone());
    if let Some(pem) = cache.lock().ok().and_then(|it| it.get(&cache_key).cloned()) {
        return Ok(pem);
    }
    let key = keys::open(ctx, record)?;
    let serial = tessera_crypto::digest::sha256(record.kid.as_bytes());
    let der = tessera_crypto::x509::self_signed_der(
        &key,
        ctx.rng.as_ref(),
        &record.kid,
        &serial[..16],
        record.created_at,
        record.created_at + 10 * 365 * 86_400,
    )
    .map_err(|err| crate::Error::Internal(err.to_string()))?;
    let pem = tessera_crypto::x509::pem("CERTIFICATE", &der);
    if let Ok(mut map) = cache.lock() {
        if map.len() > 64 {
            map.clear();
        }
        map.insert(cache_key, pem.clone());
    }
    Ok(pem)
}

/// `n` and `e` from a PKCS#1 `RSAPublicKey ::= SEQUENCE { INTEGER, INTEGER }`, leading zeros off.
fn rsa_components(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (tag, body, rest) = tlv(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let (tag_n, n, rest) = tlv(body)?;
    let (tag_e, e, rest) = tlv(rest)?;
    if tag_n != 0x02 || tag_e != 0x02 || !rest.is_empty() {
        return None;
    }
    let strip = |v: &[u8]| v.iter().position(|b| *b != 0).map(|i| v[i..].to_vec());
    Some((strip(n)?, strip(e)?))
}

/// One DER tag-length-value: (tag, value, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2 + count)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + count)
    };
    let value = input.get(header..header.checked_add(len)?)?;
    Some((tag, value, &input[header + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_crypto::keys::{KeyAlg, SigningKey};

    #[test]
    fn pkcs1_components_match_the_key() {
        let key = SigningKey::generate(KeyAlg::Rs256).unwrap();
        let (n, e) = key.rsa_public_components().unwrap();
        assert_eq!(rsa_components(&key.public_key_der()), Some((n, e)));
        assert_eq!(rsa_components(&[0x30, 0x01]), None);
        assert_eq!(rsa_components(&[]), None);
    }
}
