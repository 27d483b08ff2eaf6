//! DPoP (RFC 9449): proofs of possession of a client-held key, checked at the token endpoint and
//! at every endpoint that accepts an access token.
//!
//! A proof is a JWS (`typ: dpop+jwt`, ES256, EdDSA or RS256) whose header carries the public key
//! (`jwk`); it goes through the one verifier ([`super::jwt::Jws::verify`]) with the algorithm the
//! key's type implies. [`check`] verifies it and its claims — `htm`, `htu`, `iat` within
//! [`IAT_WINDOW_SECS`], `ath` when it goes with an access token, the server nonce when asked — and
//! records its `jti` with the store's `insert_once`, so a proof is accepted once whichever node
//! sees it. The answer is the key's RFC 7638 thumbprint (`jkt`), which tokens are bound to.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_crypto::keys::KeyAlg;
use tessera_store::{CredentialKind, CredentialRecord};

use super::jwt;
use crate::{Ctx, Result};

/// How far a proof's `iat` may lie in the past or future.
pub const IAT_WINDOW_SECS: i64 = 300;

/// How long one server nonce is handed out; the previous one is still accepted.
pub const NONCE_PERIOD_SECS: i64 = 300;

/// The algorithms proofs may be signed with (discovery's `dpop_signing_alg_values_supported`).
pub const ALGS: [&str; 3] = ["ES256", "EdDSA", "RS256"];

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Invalid(&'static str),
    /// The server wants its nonce in the proof (`use_dpop_nonce`).
    #[error("A DPoP proof with the server's nonce is required.")]
    NonceRequired,
}

/// What a request must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub method: &'a str,
    /// The request's URL without query and fragment.
    pub url: &'a str,
    /// The access token the proof goes with (resource requests), for `ath`.
    pub access_token: Option<&'a str>,
    /// Whether the proof must carry a server nonce.
    pub nonce: bool,
}

/// The public key of a proof's `jwk` header: the algorithm its type implies, the key in the form
/// the verifier takes, and its RFC 7638 thumbprint.
pub fn public_key(jwk: &Value) -> Option<(KeyAlg, Vec<u8>, String)> {
    let jwk = jwk.as_object()?;
    if ["d", "p", "q", "dp", "dq", "qi", "k"].iter().any(|it| jwk.contains_key(*it)) {
        return None;
    }
    let field = |name: &str| -> Option<(&str, Vec<u8>)> {
        let text = jwk.get(name)?.as_str()?;
        Some((text, URL_SAFE_NO_PAD.decode(text).ok()?))
    };
    match jwk.get("kty")?.as_str()? {
        "EC" if jwk.get("crv")?.as_str()? == "P-256" => {
            let ((x_text, x), (y_text, y)) = (field("x")?, field("y")?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let canonical =
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{x_text}","y":"{y_text}"}}"#);
            Some((KeyAlg::Es256, point, thumbprint(&canonical)))
        }
        "OKP" if jwk.get("crv")?.as_str()? == "Ed25519" => {
            let (x_text, x) = field("x")?;
            if x.len() != 32 {
                return None;
            }
            let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x_text}"}}"#);
            Some((KeyAlg::EdDsa, x, thumbprint(&canonical)))
        }
        "RSA" => {
            let ((n_text, n), (e_text, e)) = (field("n")?, field("e")?);
            if n.len() < 256 || n.len() > 1024 || e.is_empty() || e.len() > 8 {
                return None;
            }
            let canonical = format!(r#"{{"e":"{e_text}","kty":"RSA","n":"{n_text}"}}"#);
            Some((KeyAlg::Rs256, rsa_public_key_der(&n, &e), thumbprint(&canonical)))
        }
        _ => None,
    }
}

fn thumbprint(canonical: &str) -> String {
    URL_SAFE_NO_PAD.encode(tessera_crypto::digest::sha256(canonical.as_bytes()))
}

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn length(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|it| *it == 0).collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend_from_slice(&bytes);
        }
    }
    fn integer(out: &mut Vec<u8>, value: &[u8]) {
        let trimmed: &[u8] = {
            let start = value.iter().position(|it| *it != 0).unwrap_or(value.len());
            &value[start..]
        };
        let pad = trimmed.first().is_none_or(|it| it & 0x80 != 0);
        out.push(0x02);
        length(out, trimmed.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(trimmed);
    }
    let mut body = Vec::new();
    integer(&mut body, n);
    integer(&mut body, e);
    let mut out = vec![0x30];
    length(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

/// `ath`: base64url of the SHA-256 of the access token.
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(tessera_crypto::digest::sha256(access_token.as_bytes()))
}

fn nonce_at(ctx: &Ctx, period: i64) -> String {
    let keyed = ctx.pepper.keyed_digest("dpop-nonce", period.to_string().as_bytes());
    keyed.chars().take(32).collect()
}

/// The nonce the server hands out now (`DPoP-Nonce`); every node computes the same one.
pub fn nonce(ctx: &Ctx) -> String {
    nonce_at(ctx, ctx.now().div_euclid(NONCE_PERIOD_SECS))
}

fn nonce_ok(ctx: &Ctx, presented: &str) -> bool {
    let period = ctx.now().div_euclid(NONCE_PERIOD_SECS);
    [period, period - 1]
        .into_iter()
        .any(|it| tessera_crypto::digest::ct_eq(nonce_at(ctx, it).as_bytes(), presented.as_bytes()))
}

/// What a proof that verified says: its key's thumbprint, `jti`, `iat` and server nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    pub nonce: Option<String>,
}

/// Parses a `DPoP` header value and checks all that needs no state: the JWS and its key, `htm`,
/// `htu`, `iat` within [`IAT_WINDOW_SECS`] of `now`, `ath`. The nonce and the `jti` replay check
/// are [`check`]'s.
pub fn verify_proof(
    proof: &str,
    expected: &Expected<'_>,
    now: i64,
) -> std::result::Result<Proof, Refusal> {
    use Refusal::Invalid;
    if proof.len() > 8192 {
        return Err(Invalid("The DPoP proof is too large."));
    }
    let Some(jws) = jwt::Jws::parse(proof) else {
        return Err(Invalid("The DPoP proof is not a compact JWS."));
    };
    if jws.header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(Invalid("The DPoP proof's typ must be dpop+jwt."));
    }
    let Some((alg, public, jkt)) = jws.header.get("jwk").and_then(public_key) else {
        return Err(Invalid("The DPoP proof's jwk is not a supported public key."));
    };
    if !jws.verify(alg, &public) {
        return Err(Invalid("The DPoP proof's signature does not verify."));
    }
    let claims = &jws.claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let Some(jti) = text("jti").filter(|it| !it.is_empty() && it.len() <= 256) else {
        return Err(Invalid("The DPoP proof needs a jti."));
    };
    if text("htm") != Some(expected.method) {
        return Err(Invalid("The DPoP proof's htm is not this request's method."));
    }
    let htu = text("htu").map(|it| it.split(['?', '#']).next().unwrap_or_default());
    if htu != Some(expected.url) {
        return Err(Invalid("The DPoP proof's htu is not this request's URL."));
    }
    let Some(iat) = claims.get("iat").and_then(Value::as_i64) else {
        return Err(Invalid("The DPoP proof needs an iat."));
    };
    if iat.abs_diff(now) > IAT_WINDOW_SECS.unsigned_abs() {
        return Err(Invalid("The DPoP proof's iat is too far from now."));
    }
    match (expected.access_token, text("ath")) {
        (Some(token), Some(ath_claim)) if ath_claim == ath(token) => {}
        (Some(_), _) => return Err(Invalid("The DPoP proof's ath is not this token's.")),
        (None, _) => {}
    }
    Ok(Proof { jkt, jti: jti.to_owned(), iat, nonce: text("nonce").map(str::to_owned) })
}

/// Checks a `DPoP` header value against the request ([`verify_proof`]), the server nonce when
/// asked, and records the `jti`; the key's thumbprint when it holds.
pub async fn check(
    ctx: &Ctx,
    proof: &str,
    expected: &Expected<'_>,
) -> Result<std::result::Result<String, Refusal>> {
    let now = ctx.now();
    let proof = match verify_proof(proof, expected, now) {
        Ok(proof) => proof,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if expected.nonce && !proof.nonce.as_deref().is_some_and(|it| nonce_ok(ctx, it)) {
        return Ok(Err(Refusal::NonceRequired));
    }
    let digest =
        tessera_crypto::digest::sha256_hex(format!("{}\0{}", proof.jkt, proof.jti).as_bytes());
    let mut seen = CredentialRecord::new(format!("dpop-jti:{digest}"), CredentialKind::Nonce, now);
    seen.expires_at = Some(now.max(proof.iat) + IAT_WINDOW_SECS + 1);
    if !ctx.store.credentials().insert_once(&seen).await? {
        return Ok(Err(Refusal::Invalid("The DPoP proof was already used.")));
    }
    Ok(Ok(proof.jkt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_7638_thumbprint_of_the_example_key() {
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let (alg, _, jkt) = public_key(&jwk).unwrap();
        assert_eq!(alg, KeyAlg::Rs256);
        assert_eq!(jkt, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn private_members_and_unknown_types_are_refused() {
        let x = URL_SAFE_NO_PAD.encode([1u8; 32]);
        assert!(
            public_key(&serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": x })).is_some()
        );
        assert!(
            public_key(&serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "d": x }))
                .is_none()
        );
        assert!(public_key(&serde_json::json!({ "kty": "oct", "k": x })).is_none());
        assert!(
            public_key(&serde_json::json!({ "kty": "EC", "crv": "P-384", "x": x, "y": x }))
                .is_none()
        );
    }

    /// A proof signed by a fresh ES256 key with `claims`.
    fn signed(claims: &Value) -> String {
        let key = tessera_crypto::keys::SigningKey::generate(KeyAlg::Es256).unwrap();
        let point = key.ec_public_point().unwrap();
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        let header = serde_json::json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": jwk });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = tessera_crypto::random::FixedRng::new(b"dpop");
        let sig = key.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    const URL: &str = "https://accounts.example/token";

    fn post(iat: Value) -> Value {
        serde_json::json!({ "jti": "j", "htm": "POST", "htu": URL, "iat": iat })
    }

    #[test]
    fn the_stateless_checks_read_every_claim() {
        let expected = Expected { method: "POST", url: URL, access_token: None, nonce: false };
        let now = 1_700_000_000;
        let proof = verify_proof(&signed(&post(now.into())), &expected, now).unwrap();
        assert_eq!((proof.jti.as_str(), proof.iat, proof.nonce), ("j", now, None));
        assert_eq!(proof.jkt.len(), 43);
        let late = verify_proof(&signed(&post((now - IAT_WINDOW_SECS - 1).into())), &expected, now);
        assert_eq!(late, Err(Refusal::Invalid("The DPoP proof's iat is too far from now.")));
        let bound = Expected { access_token: Some("token"), ..expected };
        assert!(verify_proof(&signed(&post(now.into())), &bound, now).is_err(), "ath is needed");
    }

    /// Regression: an `iat` at the ends of `i64` once overflowed `iat - now` (a panic in debug
    /// builds) after the signature had verified.
    #[test]
    fn extreme_iats_are_refused_without_overflow() {
        let expected = Expected { method: "POST", url: URL, access_token: None, nonce: false };
        for (iat, now) in [(i64::MIN, 1_700_000_000), (i64::MAX, -1), (i64::MIN, i64::MAX)] {
            let refused = verify_proof(&signed(&post(iat.into())), &expected, now);
            assert_eq!(refused, Err(Refusal::Invalid("The DPoP proof's iat is too far from now.")));
        }
    }

    proptest! {
        #[test]
        fn any_jwk_shape_is_handled(text in "\\PC{0,300}") {
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                let _ = public_key(&value);
            }
        }

        #[test]
        fn rsa_der_integers_are_positive(n in proptest::collection::vec(any::<u8>(), 1..600)) {
            let der = rsa_public_key_der(&n, &[1, 0, 1]);
            prop_assert_eq!(der[0], 0x30);
        }
    }
}
