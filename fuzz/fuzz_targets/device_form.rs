//! The `/auth` form parser and the `service` classifier on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(request) = tessera_proto_device::parse(data) {
        let _ = tessera_proto_device::parse_service(&request.service);
        if let Some(value) = request.encrypted_passwd {
            let _ = tessera_proto_device::encrypted_blob(&value);
        }
    }
});
