//! `checkid_setup` / `checkid_immediate` requests with their Attribute Exchange and hybrid
//! extensions, and the AX fetch response.

use crate::{IDENTIFIER_SELECT, Message, NS_AX, NS_OAUTH, NS_UI, Realm, RealmError};

/// Why a `checkid_*` request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckIdError {
    #[error("{0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Realm(#[from] RealmError),
}

/// An AX attribute asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxAttribute {
    /// The request's alias for it (`email`), used again in the answer.
    pub alias: String,
    pub type_uri: String,
    pub required: bool,
    /// The request asked for a count (`count.<alias>`): the answer uses indexed values.
    pub counted: bool,
}

/// An AX `fetch_request`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AxRequest {
    pub attributes: Vec<AxAttribute>,
}

/// The hybrid extension of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HybridRequest {
    /// The OAuth consumer key; `None` when missing (the hybrid part is then invalid).
    pub consumer: Option<String>,
    /// The scopes, space-separated as sent.
    pub scope: String,
}

/// A well-formed `checkid_*` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckIdRequest {
    pub immediate: bool,
    /// `claimed_id` and `identity`, both present (or both absent: no identifier asserted).
    pub claimed_id: Option<String>,
    pub identity: Option<String>,
    pub assoc_handle: Option<String>,
    pub return_to: String,
    /// The realm as sent (or `return_to` when absent).
    pub realm_text: String,
    pub realm: Realm,
    pub ax: Option<AxRequest>,
    pub hybrid: Option<HybridRequest>,
    /// The user-interface extension's `lang` (a language tag such as `fr-FR`), as sent.
    pub ui_lang: Option<String>,
}

impl CheckIdRequest {
    /// The RP lets us choose the identifier (directed identity).
    pub fn identifier_select(&self) -> bool {
        self.identity.as_deref() == Some(IDENTIFIER_SELECT)
    }
}

fn realm_text(message: &Message) -> Option<&str> {
    message.get("realm").or_else(|| message.get("return_to"))
}

/// `return_to`, when it lies under the request's realm (so an indirect error may go there).
pub fn safe_return_to(message: &Message) -> Option<String> {
    let return_to = message.get("return_to")?;
    let realm = Realm::parse(realm_text(message)?).ok()?;
    realm.check(return_to).ok()?;
    Some(return_to.to_owned())
}

/// Reads an OpenID 2.0 `checkid_setup` or `checkid_immediate` request (the caller checked
/// `openid.ns` and the mode).
pub fn parse_checkid(message: &Message) -> Result<CheckIdRequest, CheckIdError> {
    let immediate = match message.get("mode") {
        Some("checkid_immediate") => true,
        Some("checkid_setup") => false,
        _ => return Err(CheckIdError::Malformed("openid.mode is not checkid_setup.")),
    };
    let claimed_id = message.get("claimed_id").map(str::to_owned);
    let identity = message.get("identity").map(str::to_owned);
    if claimed_id.is_some() != identity.is_some() {
        return Err(CheckIdError::Malformed(
            "openid.claimed_id and openid.identity must be sent together.",
        ));
    }
    let Some(return_to) = message.get("return_to") else {
        return Err(CheckIdError::Malformed("openid.return_to is missing."));
    };
    let realm_text = realm_text(message).unwrap_or(return_to).to_owned();
    let realm = Realm::parse(&realm_text)?;
    realm.check(return_to)?;
    let assoc_handle = message.get("assoc_handle").filter(|it| !it.is_empty()).map(str::to_owned);
    Ok(CheckIdRequest {
        immediate,
        claimed_id,
        identity,
        assoc_handle,
        return_to: return_to.to_owned(),
        realm_text,
        realm,
        ax: parse_ax(message),
        hybrid: parse_hybrid(message),
        ui_lang: parse_ui_lang(message),
    })
}

/// The user-interface extension's `lang`: a short language tag (letters, digits, `-`, `_`);
/// anything else is ignored, as an RP's preference that cannot be honoured.
fn parse_ui_lang(message: &Message) -> Option<String> {
    let alias = message.alias_of(NS_UI)?;
    let lang = *message.extension(alias).get("lang")?;
    let plausible = !lang.is_empty()
        && lang.len() <= 35
        && lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plausible.then(|| lang.to_owned())
}

fn list(value: Option<&&str>) -> Vec<String> {
    value
        .map(|it| it.split(',').filter(|a| !a.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn parse_ax(message: &Message) -> Option<AxRequest> {
    let alias = message.alias_of(NS_AX)?;
    let fields = message.extension(alias);
    if fields.get("mode") != Some(&"fetch_request") {
        return None;
    }
    let required = list(fields.get("required"));
    let if_available = list(fields.get("if_available"));
    let mut attributes = Vec::new();
    for name in required.iter().chain(&if_available) {
        if attributes.iter().any(|it: &AxAttribute| &it.alias == name)
            || !crate::message::valid_alias(name)
        {
            continue;
        }
        let Some(type_uri) = fields.get(format!("type.{name}").as_str()) else { continue };
        attributes.push(AxAttribute {
            alias: name.clone(),
            type_uri: (*type_uri).to_owned(),
            required: required.contains(name),
            counted: fields.contains_key(format!("count.{name}").as_str()),
        });
    }
    Some(AxRequest { attributes })
}

fn parse_hybrid(message: &Message) -> Option<HybridRequest> {
    let alias = message.alias_of(NS_OAUTH)?;
    let fields = message.extension(alias);
    Some(HybridRequest {
        consumer: fields.get("consumer").filter(|it| !it.is_empty()).map(|it| (*it).to_owned()),
        scope: fields.get("scope").map(|it| (*it).to_owned()).unwrap_or_default(),
    })
}

/// The AX `fetch_response` fields (alias [`crate::AX_ALIAS`]) for the attributes released, each
/// with its value: `value.<alias>`, or `count.<alias>=1` and `value.<alias>.1` when the request
/// asked for a count. Attributes without a value are left out.
pub fn ax_fetch_response(released: &[(&AxAttribute, &str)]) -> Vec<(String, String)> {
    let a = crate::AX_ALIAS;
    let mut out = vec![
        (format!("ns.{a}"), NS_AX.to_owned()),
        (format!("{a}.mode"), "fetch_response".to_owned()),
    ];
    for (attribute, value) in released {
        let name = &attribute.alias;
        out.push((format!("{a}.type.{name}"), attribute.type_uri.clone()));
        if attribute.counted {
            out.push((format!("{a}.count.{name}"), "1".to_owned()));
            out.push((format!("{a}.value.{name}.1"), (*value).to_owned()));
        } else {
            out.push((format!("{a}.value.{name}"), (*value).to_owned()));
        }
    }
    out
}
