//! Compact JWS (RS256, ES256): the one place that signs tokens (with our key ring) and verifies
//! them, ours against the ring and clients' assertions against their registered keys ([`Jws`]).
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

/// A compact JWS taken apart, nothing checked yet: see [`Jws::verify`].
#[derive(Debug)]
pub struct Jws<'t> {
    pub header: Value,
    pub claims: Value,
    /// `BASE64URL(header) "." BASE64URL(claims)`, the bytes the signature covers.
    signing_input: &'t [u8],
    signature: Vec<u8>,
}

impl<'t> Jws<'t> {
    /// Three base64url parts, the first two JSON objects; `None` for anything else.
    pub fn parse(token: &'t str) -> Option<Jws<'t>> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let header = decode_object(header_b64)?;
        let claims = decode_object(claims_b64)?;
        let signature = URL_SAFE_NO_PAD.decode(sig_b64).ok()?;
        let signing_input = &token.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];
        Some(Jws { header, claims, signing_input, signature })
    }

    /// The header's `kid`, if it names one.
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// The header's `alg`: for refusing early only, never for choosing how to verify.
    pub fn header_alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    /// Whether `public_der`, a key whose record says `alg`, signed this token. The algorithm is
    /// the key record's; a header naming another one is refused, so a token cannot pick its own.
    pub fn verify(&self, alg: KeyAlg, public_der: &[u8]) -> bool {
        self.header_alg() == Some(alg.as_str())
            && tessera_crypto::keys::verify(alg, public_der, self.signing_input, &self.signature)
    }
}

fn decode_object(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice::<Value>(&bytes).ok().filter(Value::is_object)
}

/// The claims of a token whose signature nobody has checked yet, to find out who claims to have
/// signed it (the service-account grant looks up the client named by `iss` this way, then verifies
/// with that client's keys). Only the middle part is read.
pub fn unverified_claims(token: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    serde_json::from_slice::<Value>(&bytes).ok()
}

/// The header and claims of a token we signed with a published key, unexpired, with our issuer.
pub async fn verify(ctx: &Ctx, token: &str) -> Result<Result<(Value, Value), Rejected>> {
    if token.len() > 8192 {
        return Ok(Err(Rejected::Malformed));
    }
    let Some(jws) = Jws::parse(token) else {
        return Ok(Err(Rejected::Malformed));
    };
    let Some(kid) = jws.kid() else {
        return Ok(Err(Rejected::UnknownKey));
    };
    let now = ctx.now();
    let ring = keys::ring_knowing(ctx, kid).await?;
    let Some(record) = ring.get(kid).filter(|it| jwks::is_published(it, now)) else {
        return Ok(Err(Rejected::UnknownKey));
    };
    let Ok(alg) = KeyAlg::parse(&record.alg) else {
        return Ok(Err(Rejected::UnknownKey));
    };
    let Ok(public) = STANDARD.decode(&record.public_der) else {
        return Ok(Err(Rejected::UnknownKey));
    };
    if !jws.verify(alg, &public) {
        return Ok(Err(Rejected::BadSignature));
    }
    let Jws { header, claims, .. } = jws;
    if claims.get("iss").and_then(Value::as_str) != Some(&*ctx.public_url) {
        return Ok(Err(Rejected::WrongIssuer));
    }
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp > now => Ok(Ok((header, claims))),
        _ => Ok(Err(Rejected::Expired)),
    }
}

#[cfg(test)]
mod tests {
    use tessera_crypto::keys::SigningKey;
    use tessera_crypto::random::{FixedRng, Rng};

    use super::*;
    use crate::testing::TestCtx;

    /// `header` and `claims` signed with `key` (whatever the header says).
    fn signed(rng: &dyn Rng, key: &SigningKey, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = key.sign(rng, input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    #[test]
    fn only_three_parts_with_json_objects_parse() {
        let e30 = URL_SAFE_NO_PAD.encode("{}");
        assert!(Jws::parse(&format!("{e30}.{e30}.")).is_some(), "an empty signature parses");
        for bad in [
            String::new(),
            format!("{e30}.{e30}"),
            format!("{e30}.{e30}.AA.AA"),
            format!("{e30}.{}.AA", URL_SAFE_NO_PAD.encode("[1]")),
            format!("{}.{e30}.AA", URL_SAFE_NO_PAD.encode("not json")),
            format!("{e30}.{e30}.!!"),
        ] {
            assert!(Jws::parse(&bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_key_records_algorithm_decides_never_the_header() {
        let rng = FixedRng::new(b"jws");
        let rsa = SigningKey::generate(KeyAlg::Rs256).unwrap();
        let ec = SigningKey::generate(KeyAlg::Es256).unwrap();
        let claims = json!({ "sub": "x" });
        let token = signed(&rng, &rsa, &json!({ "alg": "RS256" }), &claims);
        let jws = Jws::parse(&token).unwrap();
        assert!(jws.verify(KeyAlg::Rs256, &rsa.public_key_der()));
        assert!(
            !jws.verify(
                KeyAlg::Rs256,
                &SigningKey::generate(KeyAlg::Rs256).unwrap().public_key_der()
            )
        );
        // The same signature under a header naming another algorithm is refused.
        let relabelled = signed(&rng, &rsa, &json!({ "alg": "ES256" }), &claims);
        assert!(!Jws::parse(&relabelled).unwrap().verify(KeyAlg::Rs256, &rsa.public_key_der()));
        for alg in ["none", "HS256", "rs256"] {
            let token = signed(&rng, &rsa, &json!({ "alg": alg }), &claims);
            assert!(!Jws::parse(&token).unwrap().verify(KeyAlg::Rs256, &rsa.public_key_der()));
        }
        let es = signed(&rng, &ec, &json!({ "alg": "ES256" }), &claims);
        assert!(Jws::parse(&es).unwrap().verify(KeyAlg::Es256, &ec.public_key_der()));
        assert!(!Jws::parse(&es).unwrap().verify(KeyAlg::Rs256, &ec.public_key_der()));
    }

    #[tokio::test]
    async fn our_tokens_verify_until_they_expire() {
        let t = TestCtx::new().await;
        keys::ensure(&t.ctx).await.unwrap();
        let claims = json!({ "iss": crate::testing::PUBLIC_URL, "exp": t.now() + 60, "sub": "1" });
        for alg in keys::RING_ALGS {
            let token = sign_with(&t.ctx, alg, "JWT", &claims).await.unwrap();
            let (header, got) = verify(&t.ctx, &token).await.unwrap().unwrap();
            assert_eq!(header["alg"], alg.as_str());
            assert_eq!(got, claims);
        }
        let token = sign(&t.ctx, "JWT", &claims).await.unwrap();
        let mut tampered = token.clone();
        tampered.replace_range(tampered.len() - 4.., "AAAA");
        assert_eq!(verify(&t.ctx, &tampered).await.unwrap(), Err(Rejected::BadSignature));
        let elsewhere = json!({ "iss": "https://evil.example", "exp": t.now() + 60 });
        let foreign = sign(&t.ctx, "JWT", &elsewhere).await.unwrap();
        assert_eq!(verify(&t.ctx, &foreign).await.unwrap(), Err(Rejected::WrongIssuer));
        assert_eq!(verify(&t.ctx, "a.b").await.unwrap(), Err(Rejected::Malformed));
        let long = "a".repeat(8193);
        assert_eq!(verify(&t.ctx, &long).await.unwrap(), Err(Rejected::Malformed));
        t.advance(60);
        assert_eq!(verify(&t.ctx, &token).await.unwrap(), Err(Rejected::Expired));
    }

    #[tokio::test]
    async fn a_token_from_a_key_not_in_the_ring_is_refused() {
        let t = TestCtx::new().await;
        keys::ensure(&t.ctx).await.unwrap();
        let stranger = SigningKey::generate(KeyAlg::Rs256).unwrap();
        let claims = json!({ "iss": crate::testing::PUBLIC_URL, "exp": t.now() + 60 });
        let rng = t.ctx.rng.as_ref();
        let token = signed(rng, &stranger, &json!({ "alg": "RS256", "kid": "stranger" }), &claims);
        assert_eq!(verify(&t.ctx, &token).await.unwrap(), Err(Rejected::UnknownKey));
        let no_kid = signed(rng, &stranger, &json!({ "alg": "RS256" }), &claims);
        assert_eq!(verify(&t.ctx, &no_kid).await.unwrap(), Err(Rejected::UnknownKey));
        // A real kid on a stranger's signature: the ring's key does not match it.
        let ring = keys::ring(&t.ctx).await.unwrap();
        let (record, _) = ring.signer(KeyAlg::Rs256).unwrap();
        let header = json!({ "alg": "RS256", "kid": record.kid });
        let forged = signed(rng, &stranger, &header, &claims);
        assert_eq!(verify(&t.ctx, &forged).await.unwrap(), Err(Rejected::BadSignature));
    }
}
