//! `openid.*` messages from a query string or a form body, and indirect responses appended to
//! `return_to`.

use std::collections::BTreeMap;

use crate::NS_OPENID2;

/// Most fields a message may carry (a checkid request with AX and every extension stays well
/// under it).
pub const MAX_FIELDS: usize = 200;

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the field openid.{0} appears twice")]
    Repeated(String),
    #[error("too many openid fields")]
    TooMany,
    #[error("this is not an OpenID 2.0 message")]
    NotOpenId2,
    #[error("openid.mode is missing")]
    NoMode,
}

/// The `openid.` fields of a request, without the prefix. Other parameters are not part of the
/// message and are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    fields: BTreeMap<String, String>,
}

/// The pairs of a query string or form body, decoded (`+` is a space, invalid UTF-8 is replaced).
pub fn query_pairs(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

impl Message {
    /// Reads the `openid.*` fields of decoded pairs; a field named twice is refused.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: &[(K, V)],
    ) -> Result<Message, MessageError> {
        let mut fields = BTreeMap::new();
        for (key, value) in pairs {
            let Some(key) = key.as_ref().strip_prefix("openid.") else { continue };
            if fields.len() >= MAX_FIELDS {
                return Err(MessageError::TooMany);
            }
            if fields.insert(key.to_owned(), value.as_ref().to_owned()).is_some() {
                return Err(MessageError::Repeated(key.to_owned()));
            }
        }
        Ok(Message { fields })
    }

    /// A message from fields without the prefix, in any order.
    pub fn from_fields(fields: impl IntoIterator<Item = (String, String)>) -> Message {
        Message { fields: fields.into_iter().collect() }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.fields.insert(key.to_owned(), value.to_owned());
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.fields.remove(key)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether `openid.ns` says OpenID 2.0.
    pub fn is_openid2(&self) -> bool {
        self.get("ns") == Some(NS_OPENID2)
    }

    /// `openid.mode` of an OpenID 2.0 message.
    pub fn mode(&self) -> Result<&str, MessageError> {
        if !self.is_openid2() {
            return Err(MessageError::NotOpenId2);
        }
        self.get("mode").filter(|it| !it.is_empty()).ok_or(MessageError::NoMode)
    }

    /// The alias an extension's namespace URI is declared under (`openid.ns.<alias>=<uri>`),
    /// found by the URI, never by the alias's name. The first alias in name order wins if the
    /// URI is declared twice.
    pub fn alias_of(&self, namespace: &str) -> Option<&str> {
        self.fields.iter().find_map(|(key, value)| {
            let alias = key.strip_prefix("ns.")?;
            (value == namespace && valid_alias(alias)).then_some(alias)
        })
    }

    /// The fields of the extension declared under `alias`, without `<alias>.`.
    pub fn extension(&self, alias: &str) -> BTreeMap<&str, &str> {
        let prefix = format!("{alias}.");
        self.fields
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix.as_str()).map(|k| (k, v.as_str())))
            .collect()
    }
}

/// An alias is a non-empty name without `.` or `,` that is not one the protocol reserves.
pub fn valid_alias(alias: &str) -> bool {
    !alias.is_empty()
        && !alias.contains(['.', ',', ':', '\n'])
        && !matches!(
            alias,
            "assoc_handle"
                | "assoc_type"
                | "claimed_id"
                | "contact"
                | "delegate"
                | "dh_consumer_public"
                | "dh_gen"
                | "dh_modulus"
                | "error"
                | "identity"
                | "invalidate_handle"
                | "mode"
                | "ns"
                | "op_endpoint"
                | "openid"
                | "realm"
                | "reference"
                | "response_nonce"
                | "return_to"
                | "server"
                | "session_type"
                | "sig"
                | "signed"
                | "trust_root"
        )
}

/// `return_to` with the fields appended as `openid.<key>=<value>` (form-encoded), after `&` when
/// it already has a query. `return_to`'s own text, query included, is kept verbatim.
pub fn indirect_url<K: AsRef<str>, V: AsRef<str>>(return_to: &str, fields: &[(K, V)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in fields {
        query.append_pair(&format!("openid.{}", key.as_ref()), value.as_ref());
    }
    let query = query.finish();
    let (base, fragment) = match return_to.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (return_to, None),
    };
    let separator = match base.split_once('?') {
        None => "?",
        Some((_, q)) if q.is_empty() || q.ends_with('&') => "",
        Some(_) => "&",
    };
    let mut out = format!("{base}{separator}{query}");
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}
