//! OpenID 2.0 Key-Value form: parsing never panics, and what parses writes back the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        tessera_proto_openid2::kv_check_round_trip(text);
    }
});
