//! The configuration file parser and validator: any text is a configuration or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tessera::config::parse_and_validate(text);
    }
});
