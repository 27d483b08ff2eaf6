//! AuthSub: the signed `data` string of secure tokens and `AuthSubRequest` queries.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tessera_proto_authsub::parse_signed_data(text);
        let _ = tessera_proto_authsub::parse_request(text);
        let _ = tessera_proto_authsub::same_url(text, "https://a.example/feeds?x=1");
    }
});
