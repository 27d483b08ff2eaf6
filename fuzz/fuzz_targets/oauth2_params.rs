//! The strict form/query parser and the endpoint parsers that read its parameters.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(params) = tessera_proto_oauth2::Params::parse(data) {
        let _ = tessera_proto_oauth2::authorize::parse(&params);
        let _ = tessera_proto_oauth2::token::parse(&params);
        let _ = tessera_proto_oauth2::client_auth::extract(None, &params);
    }
});
