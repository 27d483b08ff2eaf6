//! X.509 certificate and public-key PEM uploads (AuthSub registrations, service-account keys).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tessera_crypto::authsub::parse_cert_pem(data);
    let _ = tessera_crypto::authsub::parse_rsa_public_pem(data, 1024);
});
