//! Every `Authorization` scheme through the one parser, and `Basic` client credentials.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data) {
        let _ = tessera_domain::caller::parse_authorization(header);
        let _ = tessera_domain::caller::parse_basic(header);
    }
});
