//! `openid.mode=associate`: association and session types, the request's fields (the DH numbers
//! as the big-endian bytes of their btwoc form) and the success body.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::{Message, kv_emit};

/// The MAC an association signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssocType {
    HmacSha1,
    HmacSha256,
}

impl AssocType {
    pub fn as_str(self) -> &'static str {
        match self {
            AssocType::HmacSha1 => "HMAC-SHA1",
            AssocType::HmacSha256 => "HMAC-SHA256",
        }
    }

    pub fn parse(text: &str) -> Option<AssocType> {
        match text {
            "HMAC-SHA1" => Some(AssocType::HmacSha1),
            "HMAC-SHA256" => Some(AssocType::HmacSha256),
            _ => None,
        }
    }

    /// The MAC key's length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            AssocType::HmacSha1 => 20,
            AssocType::HmacSha256 => 32,
        }
    }

    /// The DH session that carries this type's key.
    pub fn dh_session(self) -> SessionType {
        match self {
            AssocType::HmacSha1 => SessionType::DhSha1,
            AssocType::HmacSha256 => SessionType::DhSha256,
        }
    }
}

/// How the MAC key travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionType {
    NoEncryption,
    DhSha1,
    DhSha256,
}

impl SessionType {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::NoEncryption => "no-encryption",
            SessionType::DhSha1 => "DH-SHA1",
            SessionType::DhSha256 => "DH-SHA256",
        }
    }

    pub fn parse(text: &str) -> Option<SessionType> {
        match text {
            "no-encryption" => Some(SessionType::NoEncryption),
            "DH-SHA1" => Some(SessionType::DhSha1),
            "DH-SHA256" => Some(SessionType::DhSha256),
            _ => None,
        }
    }

    /// Whether this session may carry a key of `assoc`: DH-SHA1 only HMAC-SHA1, DH-SHA256 only
    /// HMAC-SHA256, no-encryption either.
    pub fn carries(self, assoc: AssocType) -> bool {
        match self {
            SessionType::NoEncryption => true,
            dh => dh == assoc.dh_session(),
        }
    }
}

/// A well-formed association request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociateRequest {
    pub assoc_type: AssocType,
    pub session_type: SessionType,
    /// `dh_modulus`, decoded; `None` means the default modulus.
    pub dh_modulus: Option<Vec<u8>>,
    /// `dh_gen`, decoded; `None` means 2.
    pub dh_gen: Option<Vec<u8>>,
    /// `dh_consumer_public`, decoded (present for DH sessions).
    pub dh_consumer_public: Option<Vec<u8>>,
}

/// Why an association request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssociateError {
    /// A type or session we do not offer, or a pair that does not go together: the answer names
    /// the pair to retry with.
    #[error("Unsupported association type")]
    Unsupported,
    #[error("{0}")]
    Malformed(&'static str),
}

/// The largest base64 text accepted for a DH number (a 4096-bit number is 684 characters).
const MAX_B64: usize = 1400;

fn number(message: &Message, key: &str) -> Result<Option<Vec<u8>>, AssociateError> {
    let Some(text) = message.get(key) else { return Ok(None) };
    if text.len() > MAX_B64 {
        return Err(AssociateError::Malformed("A Diffie-Hellman number is too large."));
    }
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| AssociateError::Malformed("A Diffie-Hellman number is not base64."))?;
    if bytes.is_empty() {
        return Err(AssociateError::Malformed("A Diffie-Hellman number is empty."));
    }
    Ok(Some(bytes))
}

/// Reads an OpenID 2.0 `associate` request (the caller checked `openid.ns` and the mode).
pub fn parse_associate(message: &Message) -> Result<AssociateRequest, AssociateError> {
    let assoc_type = message
        .get("assoc_type")
        .ok_or(AssociateError::Malformed("openid.assoc_type is missing."))?;
    let session_type = message
        .get("session_type")
        .ok_or(AssociateError::Malformed("openid.session_type is missing."))?;
    let (Some(assoc_type), Some(session_type)) =
        (AssocType::parse(assoc_type), SessionType::parse(session_type))
    else {
        return Err(AssociateError::Unsupported);
    };
    if !session_type.carries(assoc_type) {
        return Err(AssociateError::Unsupported);
    }
    let mut request = AssociateRequest {
        assoc_type,
        session_type,
        dh_modulus: None,
        dh_gen: None,
        dh_consumer_public: None,
    };
    if session_type != SessionType::NoEncryption {
        request.dh_modulus = number(message, "dh_modulus")?;
        request.dh_gen = number(message, "dh_gen")?;
        request.dh_consumer_public = Some(
            number(message, "dh_consumer_public")?
                .ok_or(AssociateError::Malformed("openid.dh_consumer_public is missing."))?,
        );
    }
    Ok(request)
}

/// How the MAC key is sent in a successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyTransport<'a> {
    /// `no-encryption`: the key itself.
    Plain { mac_key: &'a [u8] },
    /// DH: the server's public number (btwoc bytes) and the key XORed with the hashed secret.
    Dh { server_public: &'a [u8], enc_mac_key: &'a [u8] },
}

/// The successful `associate` answer.
pub fn associate_body(
    handle: &str,
    assoc_type: AssocType,
    session_type: SessionType,
    expires_in: i64,
    key: KeyTransport<'_>,
) -> String {
    let expires = expires_in.to_string();
    let mut pairs: Vec<(&str, String)> = vec![
        ("ns", crate::NS_OPENID2.to_owned()),
        ("assoc_handle", handle.to_owned()),
        ("session_type", session_type.as_str().to_owned()),
        ("assoc_type", assoc_type.as_str().to_owned()),
        ("expires_in", expires),
    ];
    match key {
        KeyTransport::Plain { mac_key } => pairs.push(("mac_key", STANDARD.encode(mac_key))),
        KeyTransport::Dh { server_public, enc_mac_key } => {
            pairs.push(("dh_server_public", STANDARD.encode(server_public)));
            pairs.push(("enc_mac_key", STANDARD.encode(enc_mac_key)));
        }
    }
    kv_emit(&pairs).unwrap_or_default()
}

/// The `unsupported-type` answer naming the pair to retry with.
pub fn unsupported_body(error: &str, suggest: AssocType, session: SessionType) -> String {
    crate::direct_error_body(
        error,
        &[
            ("error_code", "unsupported-type"),
            ("session_type", session.as_str()),
            ("assoc_type", suggest.as_str()),
        ],
    )
}
