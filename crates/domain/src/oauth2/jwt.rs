//! Compact JWS (RS256, ES256) over our own key ring, the one place that signs and verifies tokens.
//!
//! Hand-rolled on `tessera_crypto::keys` rather than `jsonwebtoken`: the keys already live in
//! aws-lc-rs form (sealed PKCS#8, PKCS#1 public halves), the algorithm always comes from the key
//! record and never from the token header, and no second JOSE stack has to be kept in step with
//! the provider features (STACK.md pitfalls 7 and 8). Tests verify our tokens independently.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tessera_crypto::keys::KeyAlg;

use super::jwks;
use crate::{Ctx, Error, Result, keys};

/// Signs `claims` with the active RS256 key (ID tokens); `typ` goes into the header.
pub async fn sign(ctx: &Ctx, typ: &str, claims: &Value) -> Result<String> {
    sign_with(ctx, KeyAlg::Rs256, typ, claims).await
}

/// Signs `claims` with the active key of `alg`; `typ` goes into the header (`JWT`, `at+jwt`).
pub async fn sign_with(ctx: &Ctx, alg: KeyAlg, typ: &str, claims: &Value) -> Result<String> {
    let ring = keys::ring(ctx).await?;
    let (record, key) = ring.signer(alg)?;
    let header = json!({ "alg": alg.as_str(), "kid": record.kid, "typ": typ });
    let mut input = URL_SAFE_NO_PAD.encode(header.to_string());
    input.push('.');
    input.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = key
        .sign(ctx.rng.as_ref(), input.as_bytes())
        .map_err(|err| Error::Internal(err.to_string()))?;
    input.push('.');
    input.push_str(&URL_SAFE_NO_PAD.encode(sig));
    Ok(input)
}

/// Why a token did not verify; only for logs and tests, clients see one "invalid" answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("not a compact JWS")]
    Malformed,
    #[error("unknown or unpublished key")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("expired")]
    Expired,
}

/// The header and claims of a token we signed with a published key, unexpired, with our issuer.
pub async fn verify(ctx: &Ctx, token: &str) -> Result<Result<(Value, Value), Rejected>> {
    if token.len() > 8192 {
        return Ok(Err(Rejected::Malformed));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(Err(Rejected::Malformed));
    };
    let decode = |part: &str| -> Option<Value> {
        let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
        serde_json::from_slice::<Value>(&bytes).ok().filter(Value::is_object)
    };
    let (Some(header), Some(claims), Ok(sig)) =
        (decode(header_b64), decode(claims_b64), URL_SAFE_NO_PAD.decode(sig_b64))
    else {
        return Ok(Err(Rejected::Malformed));
    };
    let Some(kid) = header.get("kid").and_then(Value::as_str) else {
        return Ok(Err(Rejected::UnknownKey));
    };
    let now = ctx.now();
    let ring = keys::ring_knowing(ctx, kid).await?;
    let Some(record) = ring.get(kid).filter(|it| jwks::is_published(it, now)) else {
        return Ok(Err(Rejected::UnknownKey));
    };
    // The algorithm is the key's, never the header's; a header that disagrees is refused.
    let Ok(alg) = KeyAlg::parse(&record.alg) else {
        return Ok(Err(Rejected::UnknownKey));
    };
    if header.get("alg").and_then(Value::as_str) != Some(alg.as_str()) {
        return Ok(Err(Rejected::BadSignature));
    }
    let Ok(public) = STANDARD.decode(&record.public_der) else {
        return Ok(Err(Rejected::UnknownKey));
    };
    let input_len = header_b64.len() + 1 + claims_b64.len();
    if !tessera_crypto::keys::verify(alg, &public, &token.as_bytes()[..input_len], &sig) {
        return Ok(Err(Rejected::BadSignature));
    }
    if claims.get("iss").and_then(Value::as_str) != Some(&*ctx.public_url) {
        return Ok(Err(Rejected::WrongIssuer));
    }
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp > now => Ok(Ok((header, claims))),
        _ => Ok(Err(Rejected::Expired)),
    }
}
