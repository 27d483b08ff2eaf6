#![no_main]

use libfuzzer_sys::fuzz_target;

// Splits the input into method, scheme, authority, path and a form of parameters.
fuzz_target!(|data: &str| {
    let mut parts = data.splitn(5, '\n');
    let method = parts.next().unwrap_or_default();
    let scheme = parts.next().unwrap_or_default();
    let authority = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let params = tessera_proto_oauth1::parse_form(parts.next().unwrap_or_default()).unwrap_or_default();
    let uri = tessera_proto_oauth1::base_string_uri(scheme, authority, path);
    let _ = tessera_proto_oauth1::base_string(method, &uri, &params);
});
