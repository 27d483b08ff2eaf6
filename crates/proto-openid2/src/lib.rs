//! The OpenID 2.0 wire vocabulary, provider side: Key-Value form (`key:value\n`), `openid.*`
//! messages with their extension aliases, the XRDS discovery documents, response nonces, realms
//! and the "return_to under realm" rule, the signed-fields token contents, the association and
//! `checkid_*` requests, Attribute Exchange and the OpenID+OAuth hybrid extension.
//!
//! No HTTP framework, no storage, no crypto: text in, typed requests or protocol errors out.

mod assoc;
mod checkid;
mod kv;
mod message;
mod nonce;
mod realm;
mod xrds;

pub use assoc::{
    AssocType, AssociateError, AssociateRequest, KeyTransport, SessionType, associate_body,
    parse_associate, unsupported_body,
};
pub use checkid::{
    AxAttribute, AxRequest, CheckIdError, CheckIdRequest, HybridRequest, ax_fetch_response,
    parse_checkid, safe_return_to,
};
pub use kv::{KvError, kv_emit, kv_parse};
pub use message::{Message, MessageError, indirect_url, query_pairs, valid_alias};
pub use nonce::{format_utc, nonce_time, response_nonce};
pub use realm::{Realm, RealmError};
pub use xrds::{claimed_id_xrds, host_meta, op_identifier_xrds, site_xrds};

/// `openid.ns` of OpenID 2.0 messages.
pub const NS_OPENID2: &str = "http://specs.openid.net/auth/2.0";
/// The identifier an RP sends when the provider chooses the identity (directed identity).
pub const IDENTIFIER_SELECT: &str = "http://specs.openid.net/auth/2.0/identifier_select";
/// The XRDS service type of an OP identifier.
pub const TYPE_SERVER: &str = "http://specs.openid.net/auth/2.0/server";
/// The XRDS service type of a claimed identifier.
pub const TYPE_SIGNON: &str = "http://specs.openid.net/auth/2.0/signon";
/// Attribute Exchange 1.0.
pub const NS_AX: &str = "http://openid.net/srv/ax/1.0";
/// The OpenID+OAuth hybrid extension.
pub const NS_OAUTH: &str = "http://specs.openid.net/extensions/oauth/1.0";
/// The UI extension (popup mode, icon).
pub const NS_UI: &str = "http://specs.openid.net/extensions/ui/1.0";
/// Provider Authentication Policy Extension.
pub const NS_PAPE: &str = "http://specs.openid.net/extensions/pape/1.0";

/// The alias our assertions use for AX, whatever alias the request used (Google did the same,
/// and naive relying parties read `openid.ext1.value.email` literally).
pub const AX_ALIAS: &str = "ext1";
/// The alias our assertions use for the hybrid extension.
pub const OAUTH_ALIAS: &str = "ext2";

/// Fields every positive assertion signs (`claimed_id` and `identity` when present), in the
/// order we sign them.
pub const SIGNED_BASE: [&str; 6] =
    ["op_endpoint", "claimed_id", "identity", "return_to", "response_nonce", "assoc_handle"];

/// The token contents a signature covers: each key of `signed` (without `openid.`), in its
/// order, as `key:value\n` with the field's value; `None` when a listed field is missing or a
/// line cannot be written in Key-Value form.
pub fn token_contents(signed: &[&str], message: &Message) -> Option<String> {
    let mut pairs = Vec::with_capacity(signed.len());
    for key in signed {
        pairs.push((*key, message.get(key)?));
    }
    kv_emit(&pairs).ok()
}

/// The `openid.signed` value's keys; `None` when it is empty or names a key twice.
pub fn signed_keys(signed: &str) -> Option<Vec<&str>> {
    let keys: Vec<&str> = signed.split(',').collect();
    if keys.iter().any(|it| it.is_empty()) {
        return None;
    }
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    sorted.dedup();
    (sorted.len() == keys.len()).then_some(keys)
}

/// A direct error (HTTP 400, Key-Value): `ns`, `error`, and the extra lines given.
pub fn direct_error_body(error: &str, extra: &[(&str, &str)]) -> String {
    let error = one_line(error);
    let mut pairs = vec![("ns", NS_OPENID2), ("error", error.as_str())];
    pairs.extend_from_slice(extra);
    kv_emit(&pairs).unwrap_or_else(|_| format!("ns:{NS_OPENID2}\nerror:bad request\n"))
}

/// `check_authentication`'s answer.
pub fn check_authentication_body(valid: bool, invalidate_handle: Option<&str>) -> String {
    let mut pairs = vec![("ns", NS_OPENID2), ("is_valid", if valid { "true" } else { "false" })];
    if let Some(handle) = invalidate_handle {
        pairs.push(("invalidate_handle", handle));
    }
    kv_emit(&pairs).unwrap_or_default()
}

/// The fuzz target's property: parsing Key-Value text never panics, and text that parses is
/// exactly what emitting its pairs writes.
pub fn kv_check_round_trip(text: &str) {
    if let Ok(pairs) = kv_parse(text) {
        assert_eq!(kv_emit(&pairs).as_deref(), Ok(text));
    }
}

/// Text made safe for a Key-Value value: no line breaks.
pub fn one_line(text: &str) -> String {
    text.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect()
}

/// Whether `handle` is a valid association handle: 1–255 characters of ASCII 33–126.
pub fn valid_handle(handle: &str) -> bool {
    !handle.is_empty() && handle.len() <= 255 && handle.bytes().all(|b| (33..=126).contains(&b))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wire_tests;
