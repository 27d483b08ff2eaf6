//! The fuzz targets' kept corpora (`fuzz/corpus/<target>/`, seeds and every regression a fuzzing
//! run found) replayed through the same parser calls as `fuzz/fuzz_targets/<target>.rs`, in the
//! normal suite: a short smoke that needs no fuzzing build. `cargo xtask fuzz` is the fuzzer.

use std::path::Path;

/// Runs `target` on every file of its corpus; a panic names the file.
fn replay(target: &str, run: impl Fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&data)));
        assert!(outcome.is_ok(), "{target}: {} panicked", path.display());
        count += 1;
    }
    count
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

#[test]
fn every_kept_corpus_replays_without_a_panic() {
    let mut seen = Vec::new();
    seen.push(replay("authorization_header", |data| {
        if let Some(header) = text(data) {
            let _ = tessera_domain::caller::parse_authorization(header);
            let _ = tessera_domain::caller::parse_basic(header);
        }
    }));
    seen.push(replay("authsub_signed_data", |data| {
        if let Some(it) = text(data) {
            let _ = tessera_proto_authsub::parse_signed_data(it);
            let _ = tessera_proto_authsub::parse_request(it);
            let _ = tessera_proto_authsub::same_url(it, "https://a.example/feeds?x=1");
        }
    }));
    seen.push(replay("clientlogin_body", |data| {
        let pairs = tessera_proto_clientlogin::urlencoded_pairs(data);
        let _ = tessera_proto_clientlogin::parse_request(&pairs);
        let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
        let (head, body) = data.split_at(split);
        if let Ok(content_type) = std::str::from_utf8(head)
            && let Some(boundary) = tessera_proto_clientlogin::multipart_boundary(content_type)
            && let Ok(pairs) = tessera_proto_clientlogin::multipart_pairs(body, &boundary)
        {
            let _ = tessera_proto_clientlogin::parse_request(&pairs);
        }
    }));
    seen.push(replay("config_toml", |data| {
        if let Some(it) = text(data) {
            let _ = tessera::config::parse_and_validate(it);
        }
    }));
    seen.push(replay("jws", |data| {
        if let Some(token) = text(data) {
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
    }));
    seen.push(replay("oauth2_params", |data| {
        if let Ok(params) = tessera_proto_oauth2::Params::parse(data) {
            let _ = tessera_proto_oauth2::authorize::parse(&params);
            let _ = tessera_proto_oauth2::token::parse(&params);
            let _ = tessera_proto_oauth2::client_auth::extract(None, &params);
        }
    }));
    seen.push(replay("pem_upload", |data| {
        let _ = tessera_crypto::authsub::parse_cert_pem(data);
        let _ = tessera_crypto::authsub::parse_rsa_public_pem(data, 1024);
    }));
    assert!(seen.iter().all(|it| *it > 0), "an empty corpus: {seen:?}");
}
