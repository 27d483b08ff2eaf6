#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let _ = tessera_proto_oauth1::parse_form(data);
});
