//! The body of every fuzz target: one function per target, taking the fuzzer's bytes. The
//! libFuzzer binaries in `fuzz/fuzz_targets/<name>.rs` are one call each into this crate, and the
//! normal test suite runs every function of [`TARGETS`] over its kept corpus
//! (`fuzz/corpus/<name>/`) and a seeded mutation smoke (`tests/smoke.rs`), so there is one copy of
//! each target's body.
//!
//! A target feeds the bytes to the parsers of one wire format, the way the server reads them, and
//! ignores the result: what it looks for is a panic (overflow, slicing, `unwrap`), a hang or
//! unbounded growth. Inputs that must be text are skipped when they are not UTF-8, as the server
//! refuses them before parsing.

use tessera_proto_openid2 as openid2;

/// A target's body: the fuzzer's bytes in, nothing out; a panic is a finding.
pub type Target = fn(&[u8]);

/// Every target by its name in `fuzz/Cargo.toml` (`[[bin]]` name = the file name under
/// `fuzz/fuzz_targets/` = the corpus directory under `fuzz/corpus/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("oauth2_params", oauth2_params),
    ("authorization_header", authorization_header),
    ("jws", jws),
    ("dpop_proof", dpop_proof),
    ("authsub_signed_data", authsub_signed_data),
    ("clientlogin_body", clientlogin_body),
    ("pem_upload", pem_upload),
    ("oauth1_header", oauth1_header),
    ("oauth1_base_string", oauth1_base_string),
    ("oauth1_form", oauth1_form),
    ("oauth1_request", oauth1_request),
    ("openid2_kv", openid2_kv),
    ("openid2_message", openid2_message),
    ("openid2_realm", openid2_realm),
    ("device_form", device_form),
    ("push", push),
    ("push_delivery", push_delivery),
    ("sso", sso),
    ("config_toml", config_toml),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// The first `n - 1` lines of `text` and the rest (missing parts are empty).
fn lines<const N: usize>(text: &str) -> [&str; N] {
    let mut parts = text.splitn(N, '\n');
    std::array::from_fn(|_| parts.next().unwrap_or_default())
}

/// The strict form/query parser and the endpoint parsers that read its parameters.
pub fn oauth2_params(data: &[u8]) {
    if let Ok(params) = tessera_proto_oauth2::Params::parse(data) {
        let _ = tessera_proto_oauth2::authorize::parse(&params);
        let _ = tessera_proto_oauth2::token::parse(&params);
        let _ = tessera_proto_oauth2::client_auth::extract(None, &params);
    }
}

/// Every `Authorization` scheme through the one parser, and `Basic` client credentials.
pub fn authorization_header(data: &[u8]) {
    if let Some(header) = text(data) {
        let _ = tessera_domain::caller::parse_authorization(header);
        let _ = tessera_domain::caller::parse_basic(header);
    }
}

/// Compact JWS / JWT parsing (ID tokens, access tokens, assertions, request objects) and a JWK as
/// a DPoP proof's `jwk` header carries it.
pub fn jws(data: &[u8]) {
    if let Some(token) = text(data) {
        if let Some(jws) = tessera_domain::oauth2::jwt::Jws::parse(token) {
            let _ = jws.kid();
            if let Some(jwk) = jws.header.get("jwk") {
                let _ = tessera_domain::oauth2::dpop::public_key(jwk);
            }
        }
        let _ = tessera_domain::oauth2::jwt::unverified_claims(token);
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = tessera_domain::oauth2::dpop::public_key(&value);
    }
}

/// A `DPoP` header value through the stateless part of the server's proof check (JWS, key,
/// signature, `htm`, `htu`, `iat`, `ath`), as the token endpoint and a resource request see it.
pub fn dpop_proof(data: &[u8]) {
    use tessera_domain::oauth2::dpop;
    let Some(proof) = text(data) else { return };
    const NOW: i64 = 1_700_000_000;
    for (method, url, access_token) in [
        ("POST", "https://accounts.example/token", None),
        ("GET", "https://accounts.example/oauth2/v3/userinfo", Some("ya29.token")),
    ] {
        let expected = dpop::Expected { method, url, access_token, nonce: false };
        let _ = dpop::verify_proof(proof, &expected, NOW);
    }
}

/// AuthSub: the signed `data` string of secure tokens and `AuthSubRequest` queries.
pub fn authsub_signed_data(data: &[u8]) {
    if let Some(it) = text(data) {
        let _ = tessera_proto_authsub::parse_signed_data(it);
        let _ = tessera_proto_authsub::parse_request(it);
        let _ = tessera_proto_authsub::same_url(it, "https://a.example/feeds?x=1");
    }
}

/// ClientLogin bodies: urlencoded, and multipart (the first line is the content type).
pub fn clientlogin_body(data: &[u8]) {
    let pairs = tessera_proto_clientlogin::urlencoded_pairs(data);
    let _ = tessera_proto_clientlogin::parse_request(&pairs);
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (head, body) = data.split_at(split);
    if let Some(content_type) = text(head)
        && let Some(boundary) = tessera_proto_clientlogin::multipart_boundary(content_type)
        && let Ok(pairs) = tessera_proto_clientlogin::multipart_pairs(body, &boundary)
    {
        let _ = tessera_proto_clientlogin::parse_request(&pairs);
    }
}

/// X.509 certificate and public-key PEM uploads (AuthSub registrations, service-account keys).
pub fn pem_upload(data: &[u8]) {
    let _ = tessera_crypto::authsub::parse_cert_pem(data);
    let _ = tessera_crypto::authsub::parse_rsa_public_pem(data, 1024);
}

/// The OAuth 1.0a `Authorization: OAuth …` parameters.
pub fn oauth1_header(data: &[u8]) {
    if let Some(it) = text(data) {
        let _ = tessera_proto_oauth1::parse_header_params(it);
    }
}

/// The signature base string: method, scheme, authority, path and a form of parameters, one a line.
pub fn oauth1_base_string(data: &[u8]) {
    let Some(it) = text(data) else { return };
    let [method, scheme, authority, path, form] = lines::<5>(it);
    let params = tessera_proto_oauth1::parse_form(form).unwrap_or_default();
    let uri = tessera_proto_oauth1::base_string_uri(scheme, authority, path);
    let _ = tessera_proto_oauth1::base_string(method, &uri, &params);
    let _ = tessera_proto_oauth1::param_variants(&params);
    if let Some((scheme, authority, path, _)) = tessera_proto_oauth1::split_url(it) {
        let _ = tessera_proto_oauth1::base_string_uri(scheme, authority, path);
    }
}

/// OAuth 1.0a forms and queries.
pub fn oauth1_form(data: &[u8]) {
    if let Some(it) = text(data) {
        let _ = tessera_proto_oauth1::parse_form(it);
    }
}

/// A signed OAuth 1.0a request as the request-token, authorize and access-token endpoints read it:
/// the header's parameters, the query and the form (one a line) merged, then the callback checked
/// and written back with a token and verifier, and the scopes.
pub fn oauth1_request(data: &[u8]) {
    let Some(it) = text(data) else { return };
    let [header, query, form] = lines::<3>(it);
    let header = tessera_proto_oauth1::parse_header_params(header).unwrap_or_default();
    let query = tessera_proto_oauth1::parse_form(query).unwrap_or_default();
    let form = tessera_proto_oauth1::parse_form(form).unwrap_or_default();
    if let Ok(signed) = tessera_proto_oauth1::collect(&header, &query, &form) {
        if let Some(callback) = &signed.callback
            && tessera_proto_oauth1::valid_callback(callback)
        {
            let _ = tessera_proto_oauth1::callback_url(callback, "token", Some("verifier"));
        }
        let _ = tessera_proto_oauth1::scopes(signed.get("scope").unwrap_or_default());
    }
}

/// OpenID 2.0 Key-Value form: parsing never panics, and what parses writes back the same bytes.
pub fn openid2_kv(data: &[u8]) {
    if let Some(it) = text(data) {
        openid2::kv_check_round_trip(it);
    }
}

/// An OpenID 2.0 indirect or direct message (a query string or form body) and the requests read
/// from it: `checkid_*` (with its realm and `return_to` checks), `associate`, and the signed list.
pub fn openid2_message(data: &[u8]) {
    let Some(it) = text(data) else { return };
    let Ok(message) = openid2::Message::from_pairs(&openid2::query_pairs(it)) else { return };
    let _ = message.mode();
    let _ = message.is_openid2();
    if let Some(alias) = message.alias_of("http://openid.net/srv/ax/1.0") {
        let _ = message.extension(alias);
    }
    let _ = openid2::parse_checkid(&message);
    let _ = openid2::safe_return_to(&message);
    let _ = openid2::parse_associate(&message);
    if let Some(signed) = message.get("signed")
        && let Some(keys) = openid2::signed_keys(signed)
    {
        let _ = openid2::token_contents(&keys, &message);
    }
    if let Some(nonce) = message.get("response_nonce") {
        let _ = openid2::nonce_time(nonce);
    }
}

/// An OpenID 2.0 realm (first line) and a `return_to` checked against it (second line).
pub fn openid2_realm(data: &[u8]) {
    let Some(it) = text(data) else { return };
    let [realm, return_to] = lines::<2>(it);
    if let Ok(realm) = openid2::Realm::parse(realm) {
        let _ = realm.check(return_to);
        let _ = realm.normalized();
        let _ = realm.display();
    }
}

/// The device `/auth` form parser and the `service` classifier.
pub fn device_form(data: &[u8]) {
    if let Ok(request) = tessera_proto_device::parse(data) {
        let _ = tessera_proto_device::parse_service(&request.service);
        if let Some(value) = request.encrypted_passwd {
            let _ = tessera_proto_device::encrypted_blob(&value);
        }
    }
}

/// Push: the registration form (an app's, or a device's topic subscription), the C2DM send form, GCM's plain-text (form) and JSON sends, and
/// the one-line error answers a client reads back.
pub fn push(data: &[u8]) {
    use tessera_proto_push as wire;
    let pairs = wire::urlencoded_pairs(data);
    let _ = wire::parse_register(&pairs);
    if let Some(Ok(change)) = wire::parse_topic_change(&pairs) {
        assert!(wire::valid_topic(&change.topic), "a topic change names a valid topic");
    }
    let _ = wire::parse_c2dm_send(&pairs);
    if let Ok(send) = wire::parse_gcm_form(&pairs) {
        let _ = send.message.payload_len();
    }
    if let Ok(send) = wire::parse_gcm_json(data) {
        let _ = send.message.payload_len();
        let _ = send.message.ttl();
    }
    if let Some(it) = text(data) {
        let _ = wire::SendError::parse(it);
        let _ = wire::RegisterError::parse(it);
        let _ = wire::valid_topic(it);
    }
}

/// Push delivery: a device's frame (WebSocket text frame or posted beside the event stream) under
/// a few size limits, the message frame built around a stored payload and the event id read back
/// from it, and the Instance ID batch body.
pub fn push_delivery(data: &[u8]) {
    use tessera_proto_push::frames;
    let _ = frames::parse_iid_batch(data);
    let Some(it) = text(data) else { return };
    for limit in [16, 4096, usize::MAX] {
        let _ = frames::DeviceFrame::parse(it, limit);
    }
    let [registration, message_id, payload] = lines::<3>(it);
    let frame = frames::message_frame(registration, message_id, payload);
    let read_back = frames::frame_message_id(&frame);
    assert_eq!(read_back.as_deref(), Some(message_id), "a message frame keeps its id");
    let _ = frames::frame_message_id(it);
}

/// Web SSO: the request's parameters (the lenient form decoder), and the `continue` URL checks —
/// under a registered service prefix (first line), never this server, `auth` stripped and added.
pub fn sso(data: &[u8]) {
    let _ = tessera_proto_clientlogin::urlencoded_pairs(data);
    let Some(it) = text(data) else { return };
    let [prefix, input] = lines::<2>(it);
    let public_url = "https://accounts.example";
    let prefixes = [prefix.to_owned(), "https://mail.example/mail/".to_owned()];
    if let Some(url) = tessera_domain::sso::continue_under(public_url, &prefixes, input) {
        let _ = tessera_domain::sso::with_auth(&url, "token");
    }
    let _ = tessera_domain::redirect::validate_continue(public_url, &prefixes, input);
    let _ = tessera_domain::redirect::under_registered_prefix(prefix, input);
    let _ = tessera_domain::sso::without_auth(input);
}

/// The configuration file parser and validator: any text is a configuration or an error.
pub fn config_toml(data: &[u8]) {
    if let Some(it) = text(data) {
        let _ = tessera::config::parse_and_validate(it);
    }
}
