//! Compact JWS / JWT parsing (ID tokens, access tokens, assertions, request objects, DPoP proofs)
//! and the DPoP `jwk` header.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        if let Some(jws) = tessera_domain::oauth2::jwt::Jws::parse(token) {
            let _ = jws.kid();
            if let Some(jwk) = jws.header.get("jwk") {
                let _ = tessera_domain::oauth2::dpop::public_key(jwk);
            }
        }
        let _ = tessera_domain::oauth2::jwt::unverified_claims(token);
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = tessera_domain::oauth2::dpop::public_key(&value);
    }
});
