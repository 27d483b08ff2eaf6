//! ClientLogin bodies: urlencoded, and multipart (the first line is the content type).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
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
});
