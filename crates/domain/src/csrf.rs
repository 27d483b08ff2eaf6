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

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::testing::TestCtx;

    const BROWSER: &str = "csrf-cookie-of-this-browser";

    #[tokio::test]
    async fn a_token_works_once_in_its_browser_until_it_expires() {
        let t = TestCtx::new().await;
        let token = issue(&t.ctx, BROWSER);
        assert_eq!(
            check(&t.ctx, "another-browser", &token).await.unwrap(),
            Err(Refusal::WrongBrowser)
        );
        assert_eq!(check(&t.ctx, BROWSER, &token).await.unwrap(), Ok(()));
        assert_eq!(check(&t.ctx, BROWSER, &token).await.unwrap(), Err(Refusal::Replayed));

        let late = issue(&t.ctx, BROWSER);
        t.advance(t.ctx.policy.csrf_ttl_secs - 1);
        let in_time = issue(&t.ctx, BROWSER);
        assert_eq!(check(&t.ctx, BROWSER, &in_time).await.unwrap(), Ok(()));
        t.advance(1);
        assert_eq!(check(&t.ctx, BROWSER, &late).await.unwrap(), Err(Refusal::Expired));
    }

    #[tokio::test]
    async fn tampered_and_malformed_tokens_are_refused() {
        let t = TestCtx::new().await;
        let token = issue(&t.ctx, BROWSER);
        assert_eq!(check(&t.ctx, "", &token).await.unwrap(), Err(Refusal::Malformed));
        for junk in ["", "!!!", "AAAA", &"A".repeat(201)] {
            assert_eq!(check(&t.ctx, BROWSER, junk).await.unwrap(), Err(Refusal::Malformed));
        }
        // Pushing the expiry out breaks the MAC.
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&token).unwrap();
        raw[7] ^= 0x01;
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(check(&t.ctx, BROWSER, &forged).await.unwrap(), Err(Refusal::WrongBrowser));
        assert_eq!(
            check(&t.ctx, BROWSER, &token).await.unwrap(),
            Ok(()),
            "the real one still works"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_the_same_token_passes_once() {
        let t = TestCtx::new().await;
        let token = issue(&t.ctx, BROWSER);
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let (ctx, token) = (t.ctx.clone(), token.clone());
            burst.spawn(async move { check(&ctx, BROWSER, &token).await.unwrap() });
        }
        let answers = burst.join_all().await;
        assert_eq!(answers.iter().filter(|it| it.is_ok()).count(), 1);
        assert!(answers.iter().filter(|it| it.is_err()).all(|it| *it == Err(Refusal::Replayed)));
    }
}
