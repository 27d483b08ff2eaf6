//! CSRF tokens for every POST form: bound to the browser's CSRF cookie, expiring, and single-use
//! (a used token's nonce is remembered in the store until it would have expired anyway).

use base64::Engine as _;
use tessera_store::{CredentialKind, CredentialRecord};

use crate::{Ctx, Result};

const NONCE_LEN: usize = 16;

/// Why a CSRF token was refused; the page says the same thing for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    WrongBrowser,
    Expired,
    Replayed,
}

/// A new token for forms shown to the browser whose CSRF cookie is `binding`.
pub fn issue(ctx: &Ctx, binding: &str) -> String {
    let expires = ctx.now() + ctx.policy.csrf_ttl_secs;
    let mut nonce = [0u8; NONCE_LEN];
    ctx.rng.fill(&mut nonce);
    let mac = mac(ctx, binding, expires, &nonce);
    let mut raw = Vec::with_capacity(8 + NONCE_LEN + mac.len());
    raw.extend_from_slice(&expires.to_be_bytes());
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(mac.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn mac(ctx: &Ctx, binding: &str, expires: i64, nonce: &[u8]) -> String {
    let pepper = tessera_crypto::digest::Pepper::from_bytes(*ctx.csrf_key);
    let mut msg = Vec::with_capacity(binding.len() + 8 + nonce.len());
    msg.extend_from_slice(binding.as_bytes());
    msg.push(0);
    msg.extend_from_slice(&expires.to_be_bytes());
    msg.extend_from_slice(nonce);
    pepper.keyed_digest("csrf", &msg)
}

/// Accepts a token once. `binding` is the CSRF cookie the request carried.
pub async fn check(ctx: &Ctx, binding: &str, token: &str) -> Result<Result<(), Refusal>> {
    if binding.is_empty() || token.len() > 200 {
        return Ok(Err(Refusal::Malformed));
    }
    let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token) else {
        return Ok(Err(Refusal::Malformed));
    };
    if raw.len() != 8 + NONCE_LEN + 64 {
        return Ok(Err(Refusal::Malformed));
    }
    let mut expires_bytes = [0u8; 8];
    expires_bytes.copy_from_slice(&raw[..8]);
    let expires = i64::from_be_bytes(expires_bytes);
    let nonce = &raw[8..8 + NONCE_LEN];
    let expected = mac(ctx, binding, expires, nonce);
    if !tessera_crypto::digest::ct_eq(expected.as_bytes(), &raw[8 + NONCE_LEN..]) {
        return Ok(Err(Refusal::WrongBrowser));
    }
    let now = ctx.now();
    if expires <= now {
        return Ok(Err(Refusal::Expired));
    }
    let mut seen = CredentialRecord::new(
        tessera_crypto::digest::sha256_hex(nonce),
        CredentialKind::CsrfNonce,
        now,
    );
    seen.expires_at = Some(expires);
    if !ctx.store.credentials().insert_once(&seen).await? {
        return Ok(Err(Refusal::Replayed));
    }
    Ok(Ok(()))
}
