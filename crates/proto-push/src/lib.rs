//! The push wire formats, C2DM and GCM: the device registration form (`register3`), the C2DM send
//! form, the GCM send request (JSON and plain text) and the byte-exact bodies they answer.
//!
//! No HTTP framework, no storage, no crypto: decoded form pairs or JSON bytes in, typed requests or
//! protocol errors out. `docs/push.md` lists every decision taken where the reference is unconfirmed.

use std::collections::BTreeSet;

use serde_json::Value;

pub mod frames;

/// C2DM payload limit: `data.` keys and values, in bytes.
pub const C2DM_MAX_PAYLOAD: usize = 1024;
/// GCM payload limit: `data` keys and values (and the notification's), in bytes.
pub const GCM_MAX_PAYLOAD: usize = 4096;
/// Default and maximum `time_to_live`: four weeks.
pub const MAX_TTL_SECS: u32 = 2_419_200;
/// Recipients of one GCM JSON request.
pub const MAX_REGISTRATION_IDS: usize = 1000;
/// Sender ids one registration may name.
pub const MAX_SENDERS: usize = 100;
/// Longest registration id, field value or key accepted before it is even looked at.
pub const MAX_FIELD_LEN: usize = 4096;

/// The per-message (C2DM `Error=`) and per-recipient (GCM `error`) codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendError {
    QuotaExceeded,
    DeviceQuotaExceeded,
    MissingRegistration,
    InvalidRegistration,
    MismatchSenderId,
    NotRegistered,
    MessageTooBig,
    MissingCollapseKey,
    InvalidDataKey,
    InvalidTtl,
    Unavailable,
    InternalServerError,
    InvalidPackageName,
    DeviceMessageRateExceeded,
    TopicsMessageRateExceeded,
}

impl SendError {
    pub const ALL: [SendError; 15] = [
        SendError::QuotaExceeded,
        SendError::DeviceQuotaExceeded,
        SendError::MissingRegistration,
        SendError::InvalidRegistration,
        SendError::MismatchSenderId,
        SendError::NotRegistered,
        SendError::MessageTooBig,
        SendError::MissingCollapseKey,
        SendError::InvalidDataKey,
        SendError::InvalidTtl,
        SendError::Unavailable,
        SendError::InternalServerError,
        SendError::InvalidPackageName,
        SendError::DeviceMessageRateExceeded,
        SendError::TopicsMessageRateExceeded,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            SendError::QuotaExceeded => "QuotaExceeded",
            SendError::DeviceQuotaExceeded => "DeviceQuotaExceeded",
            SendError::MissingRegistration => "MissingRegistration",
            SendError::InvalidRegistration => "InvalidRegistration",
            SendError::MismatchSenderId => "MismatchSenderId",
            SendError::NotRegistered => "NotRegistered",
            SendError::MessageTooBig => "MessageTooBig",
            SendError::MissingCollapseKey => "MissingCollapseKey",
            SendError::InvalidDataKey => "InvalidDataKey",
            SendError::InvalidTtl => "InvalidTtl",
            SendError::Unavailable => "Unavailable",
            SendError::InternalServerError => "InternalServerError",
            SendError::InvalidPackageName => "InvalidPackageName",
            SendError::DeviceMessageRateExceeded => "DeviceMessageRateExceeded",
            SendError::TopicsMessageRateExceeded => "TopicsMessageRateExceeded",
        }
    }

    pub fn parse(text: &str) -> Option<SendError> {
        SendError::ALL.into_iter().find(|it| it.as_str() == text)
    }
}

/// A request the wire format itself refuses (HTTP 400 with a plain-text explanation), before any
/// recipient is looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    #[error("JSON_PARSING_ERROR: Unexpected character or end of input.")]
    Json,
    #[error("JSON_PARSING_ERROR: The request must be a JSON object.")]
    NotAnObject,
    #[error("Field \"{0}\" must be a JSON {1}")]
    FieldType(&'static str, &'static str),
    #[error("Missing \"registration_ids\" or \"to\" field")]
    MissingRecipients,
    #[error("Must use either \"registration_ids\" field or \"to\", not both")]
    BothRecipients,
    #[error("Number of messages on bulk ({0}) exceeds maximum allowed ({MAX_REGISTRATION_IDS})")]
    TooManyRecipients(usize),
    #[error("Invalid \"to\" field: {0}")]
    InvalidTo(String),
    #[error("Field \"priority\" must be \"normal\" or \"high\"")]
    Priority,
    #[error("Field \"{0}\" is repeated")]
    Repeated(String),
    #[error("Field \"{0}\" is too long")]
    TooLong(&'static str),
}

impl BadRequest {
    /// The 400 response body: the explanation on one line.
    pub fn body(&self) -> String {
        format!("{self}\n")
    }
}

/// How urgently to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    #[default]
    Normal,
    High,
}

impl Priority {
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

/// What one send carries to each recipient, whichever wire format it came in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub collapse_key: Option<String>,
    /// `data` entries in the order sent, values as strings.
    pub data: Vec<(String, String)>,
    /// The `notification` object as compact JSON text (GCM JSON only).
    pub notification: Option<String>,
    pub delay_while_idle: bool,
    /// Seconds; `None` is the default (four weeks). `Some(0)`: now or never.
    pub time_to_live: Option<u32>,
    pub restricted_package_name: Option<String>,
    /// Validate only: nothing is stored or delivered.
    pub dry_run: bool,
    pub priority: Priority,
}

impl Message {
    /// Bytes counted against the payload limit: data keys and values, and the notification text.
    pub fn payload_len(&self) -> usize {
        self.data.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + self.notification.as_ref().map_or(0, String::len)
    }

    /// The time to live in effect.
    pub fn ttl(&self) -> u32 {
        self.time_to_live.unwrap_or(MAX_TTL_SECS)
    }
}

/// Who a GCM send goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Registration ids in request order (duplicates kept: each gets its own result).
    Registrations(Vec<String>),
    /// `/topics/<name>`.
    Topic(String),
}

/// A parsed send: its recipients, the message, and the per-message problem, if any, that every
/// recipient's result reports (GCM answers these in `results`, not with a 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub target: Target,
    pub message: Message,
    pub problem: Option<SendError>,
}

/// Decodes `application/x-www-form-urlencoded` bytes leniently (`+` is a space, bad UTF-8
/// replaced), as C2DM and GCM plain-text senders write them: the same lenient reading as
/// ClientLogin's, so it is that crate's one decoder.
pub use tessera_proto_clientlogin::urlencoded_pairs;

/// The fields of a form send, each at most once.
struct FormFields {
    registration_id: Option<String>,
    collapse_key: Option<String>,
    data: Vec<(String, String)>,
    delay_while_idle: Option<String>,
    time_to_live: Option<String>,
    dry_run: Option<String>,
    restricted_package_name: Option<String>,
}

fn form_fields(pairs: &[(String, String)]) -> Result<FormFields, BadRequest> {
    let mut fields = FormFields {
        registration_id: None,
        collapse_key: None,
        data: Vec::new(),
        delay_while_idle: None,
        time_to_live: None,
        dry_run: None,
        restricted_package_name: None,
    };
    let mut seen = BTreeSet::new();
    for (name, value) in pairs {
        if !seen.insert(name.as_str()) {
            return Err(BadRequest::Repeated(truncated(name)));
        }
        if value.len() > MAX_FIELD_LEN {
            return Err(BadRequest::TooLong("value"));
        }
        let slot = match name.as_str() {
            "registration_id" => &mut fields.registration_id,
            "collapse_key" => &mut fields.collapse_key,
            "delay_while_idle" => &mut fields.delay_while_idle,
            "time_to_live" => &mut fields.time_to_live,
            "dry_run" => &mut fields.dry_run,
            "restricted_package_name" => &mut fields.restricted_package_name,
            other => {
                if let Some(key) = other.strip_prefix("data.") {
                    fields.data.push((key.to_owned(), value.clone()));
                }
                continue;
            }
        };
        *slot = Some(value.clone());
    }
    Ok(fields)
}

fn truncated(name: &str) -> String {
    name.chars().take(64).collect()
}

/// `1` or `true` (any case) is true; anything else, or absence, false.
fn form_flag(value: Option<&str>) -> bool {
    value.is_some_and(|it| it == "1" || it.eq_ignore_ascii_case("true"))
}

/// A data key the server reserves (`from`, `google.*`): GCM's `InvalidDataKey`.
pub fn reserved_data_key(key: &str) -> bool {
    key == "from" || key.starts_with("google.")
}

/// A C2DM send (`POST /c2dm/send`): `registration_id`, `collapse_key` (required), `data.<key>`,
/// `delay_while_idle`. `Err(Ok(code))` is answered `200 Error=<code>`, `Err(Err(_))` with a 400.
pub fn parse_c2dm_send(
    pairs: &[(String, String)],
) -> Result<(String, Message), Result<SendError, BadRequest>> {
    let fields = form_fields(pairs).map_err(Err)?;
    let registration_id = fields
        .registration_id
        .filter(|it| !it.is_empty())
        .ok_or(Ok(SendError::MissingRegistration))?;
    let collapse_key =
        fields.collapse_key.filter(|it| !it.is_empty()).ok_or(Ok(SendError::MissingCollapseKey))?;
    let message = Message {
        collapse_key: Some(collapse_key),
        data: fields.data,
        delay_while_idle: form_flag(fields.delay_while_idle.as_deref()),
        ..Message::default()
    };
    if message.payload_len() > C2DM_MAX_PAYLOAD {
        return Err(Ok(SendError::MessageTooBig));
    }
    Ok((registration_id, message))
}

/// A GCM plain-text send (`application/x-www-form-urlencoded`, or no Content-Type): one
/// `registration_id`, `collapse_key`, `data.<key>`, `delay_while_idle`, `time_to_live`, `dry_run`,
/// `restricted_package_name`.
pub fn parse_gcm_form(pairs: &[(String, String)]) -> Result<Send, BadRequest> {
    let fields = form_fields(pairs)?;
    let mut problem = None;
    let time_to_live = match fields.time_to_live.as_deref() {
        None => None,
        Some(text) => match parse_ttl_text(text) {
            Some(ttl) => Some(ttl),
            None => {
                problem = Some(SendError::InvalidTtl);
                None
            }
        },
    };
    let message = Message {
        collapse_key: fields.collapse_key.filter(|it| !it.is_empty()),
        data: fields.data,
        notification: None,
        delay_while_idle: form_flag(fields.delay_while_idle.as_deref()),
        time_to_live,
        restricted_package_name: fields.restricted_package_name.filter(|it| !it.is_empty()),
        dry_run: form_flag(fields.dry_run.as_deref()),
        priority: Priority::Normal,
    };
    let registration_id = fields.registration_id.filter(|it| !it.is_empty());
    let problem = match registration_id {
        None => Some(SendError::MissingRegistration),
        Some(_) => problem.or_else(|| message_problem(&message)),
    };
    Ok(Send {
        target: Target::Registrations(registration_id.into_iter().collect()),
        message,
        problem,
    })
}

fn parse_ttl_text(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u32>().ok().filter(|it| *it <= MAX_TTL_SECS)
}

fn message_problem(message: &Message) -> Option<SendError> {
    if message.data.iter().any(|(k, _)| reserved_data_key(k)) {
        Some(SendError::InvalidDataKey)
    } else if message.payload_len() > GCM_MAX_PAYLOAD {
        Some(SendError::MessageTooBig)
    } else {
        None
    }
}

/// A topic name after `/topics/`: `[A-Za-z0-9-_.~%]{1,900}`.
pub fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 900
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b))
}

fn string_field(
    object: &serde_json::Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, BadRequest> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.len() > MAX_FIELD_LEN => Err(BadRequest::TooLong(name)),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(BadRequest::FieldType(name, "string")),
    }
}

fn bool_field(
    object: &serde_json::Map<String, Value>,
    name: &'static str,
) -> Result<bool, BadRequest> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(_) => Err(BadRequest::FieldType(name, "boolean")),
    }
}

/// A GCM JSON send (`Content-Type: application/json`).
pub fn parse_gcm_json(body: &[u8]) -> Result<Send, BadRequest> {
    let value: Value = serde_json::from_slice(body).map_err(|_| BadRequest::Json)?;
    let Value::Object(object) = value else {
        return Err(BadRequest::NotAnObject);
    };
    let target = match (object.get("registration_ids"), object.get("to")) {
        (Some(_), Some(_)) => return Err(BadRequest::BothRecipients),
        (None, None) => return Err(BadRequest::MissingRecipients),
        (Some(Value::Array(ids)), None) => {
            if ids.len() > MAX_REGISTRATION_IDS {
                return Err(BadRequest::TooManyRecipients(ids.len()));
            }
            if ids.is_empty() {
                return Err(BadRequest::MissingRecipients);
            }
            let ids = ids
                .iter()
                .map(|id| match id {
                    Value::String(text) if text.len() <= MAX_FIELD_LEN => Ok(text.clone()),
                    Value::String(_) => Err(BadRequest::TooLong("registration_ids")),
                    _ => Err(BadRequest::FieldType("registration_ids", "array of strings")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Target::Registrations(ids)
        }
        (Some(_), None) => return Err(BadRequest::FieldType("registration_ids", "array")),
        (None, Some(_)) => {
            let to = string_field(&object, "to")?.unwrap_or_default();
            match to.strip_prefix("/topics/") {
                Some(name) if valid_topic(name) => Target::Topic(name.to_owned()),
                Some(_) => return Err(BadRequest::InvalidTo("bad topic name".to_owned())),
                None if to.is_empty() => return Err(BadRequest::InvalidTo("empty".to_owned())),
                None => Target::Registrations(vec![to]),
            }
        }
    };
    let mut problem = None;
    let data = match object.get("data") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(entries)) => entries
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect(),
        Some(_) => return Err(BadRequest::FieldType("data", "object")),
    };
    let notification = match object.get("notification") {
        None | Some(Value::Null) => None,
        Some(value @ Value::Object(_)) => Some(value.to_string()),
        Some(_) => return Err(BadRequest::FieldType("notification", "object")),
    };
    let time_to_live = match object.get("time_to_live") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => {
            match number.as_u64().filter(|it| *it <= u64::from(MAX_TTL_SECS)) {
                Some(ttl) => u32::try_from(ttl).ok(),
                None => {
                    problem = Some(SendError::InvalidTtl);
                    None
                }
            }
        }
        Some(_) => return Err(BadRequest::FieldType("time_to_live", "number")),
    };
    let priority = match object.get("priority") {
        None | Some(Value::Null) => Priority::Normal,
        Some(Value::String(text)) if text == "normal" => Priority::Normal,
        Some(Value::String(text)) if text == "high" => Priority::High,
        Some(Value::Number(number)) if number.as_u64() == Some(5) => Priority::Normal,
        Some(Value::Number(number)) if number.as_u64() == Some(10) => Priority::High,
        Some(_) => return Err(BadRequest::Priority),
    };
    let message = Message {
        collapse_key: string_field(&object, "collapse_key")?.filter(|it| !it.is_empty()),
        data,
        notification,
        delay_while_idle: bool_field(&object, "delay_while_idle")?,
        time_to_live,
        restricted_package_name: string_field(&object, "restricted_package_name")?
            .filter(|it| !it.is_empty()),
        dry_run: bool_field(&object, "dry_run")?,
        priority,
    };
    let problem = problem.or_else(|| message_problem(&message));
    Ok(Send { target, message, problem })
}

/// One recipient's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (not yet delivered), with the canonical registration id when the one used is not.
    Accepted {
        message_id: String,
        canonical: Option<String>,
    },
    Failed(SendError),
}

/// C2DM's 200 body: `id=<message id>` or `Error=<code>`, one line.
pub fn c2dm_body(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Accepted { message_id, .. } => format!("id={message_id}\n"),
        Outcome::Failed(code) => format!("Error={}\n", code.as_str()),
    }
}

/// GCM plain text's 200 body: `id=` (then `registration_id=` when canonical) or `Error=`.
pub fn gcm_text_body(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Accepted { message_id, canonical: Some(canonical) } => {
            format!("id={message_id}\nregistration_id={canonical}\n")
        }
        other => c2dm_body(other),
    }
}

/// GCM JSON's 200 body: counts, then one result per recipient in request order. Key order is
/// fixed (`multicast_id`, `success`, `failure`, `canonical_ids`, `results`).
pub fn gcm_json_body(multicast_id: u64, outcomes: &[Outcome]) -> String {
    let success = outcomes.iter().filter(|it| matches!(it, Outcome::Accepted { .. })).count();
    let canonical = outcomes
        .iter()
        .filter(|it| matches!(it, Outcome::Accepted { canonical: Some(_), .. }))
        .count();
    let failure = outcomes.len() - success;
    let results: Vec<String> = outcomes
        .iter()
        .map(|outcome| match outcome {
            Outcome::Accepted { message_id, canonical: None } => {
                format!("{{\"message_id\":{}}}", Value::from(message_id.as_str()))
            }
            Outcome::Accepted { message_id, canonical: Some(canonical) } => format!(
                "{{\"message_id\":{},\"registration_id\":{}}}",
                Value::from(message_id.as_str()),
                Value::from(canonical.as_str())
            ),
            Outcome::Failed(code) => format!("{{\"error\":\"{}\"}}", code.as_str()),
        })
        .collect();
    format!(
        "{{\"multicast_id\":{multicast_id},\"success\":{success},\"failure\":{failure},\"canonical_ids\":{canonical},\"results\":[{}]}}",
        results.join(",")
    )
}

/// A topic send's 200 body: `{"message_id":<n>}` or `{"error":"<code>"}`.
pub fn gcm_topic_body(outcome: &Result<u64, SendError>) -> String {
    match outcome {
        Ok(id) => format!("{{\"message_id\":{id}}}"),
        Err(code) => format!("{{\"error\":\"{}\"}}", code.as_str()),
    }
}

/// The 401 page for a refused sender credential, as the reference shows it.
pub const UNAUTHORIZED_BODY: &str = "<HTML>\n<HEAD>\n<TITLE>Unauthorized</TITLE>\n</HEAD>\n<BODY BGCOLOR=\"#FFFFFF\" TEXT=\"#000000\">\n<H1>Unauthorized</H1>\n<H2>Error 401</H2>\n</BODY>\n</HTML>\n";

/// The device registration errors (`Error=<code>`, answered with HTTP 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    PhoneRegistrationError,
    AuthenticationFailed,
    InvalidSender,
    InvalidParameters,
    InternalServerError,
    QuotaExceeded,
    TooManyRegistrations,
    /// A topic subscription from the device: the registration is on as many topics as allowed
    /// (the Instance ID API's code for the same cap).
    TooManyTopics,
}

impl RegisterError {
    pub const ALL: [RegisterError; 8] = [
        RegisterError::PhoneRegistrationError,
        RegisterError::AuthenticationFailed,
        RegisterError::InvalidSender,
        RegisterError::InvalidParameters,
        RegisterError::InternalServerError,
        RegisterError::QuotaExceeded,
        RegisterError::TooManyRegistrations,
        RegisterError::TooManyTopics,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            RegisterError::PhoneRegistrationError => "PHONE_REGISTRATION_ERROR",
            RegisterError::AuthenticationFailed => "AUTHENTICATION_FAILED",
            RegisterError::InvalidSender => "INVALID_SENDER",
            RegisterError::InvalidParameters => "INVALID_PARAMETERS",
            RegisterError::InternalServerError => "InternalServerError",
            RegisterError::QuotaExceeded => "QUOTA_EXCEEDED",
            RegisterError::TooManyRegistrations => "TOO_MANY_REGISTRATIONS",
            RegisterError::TooManyTopics => "TOO_MANY_TOPICS",
        }
    }

    pub fn parse(text: &str) -> Option<RegisterError> {
        RegisterError::ALL.into_iter().find(|it| it.as_str() == text)
    }
}

/// A device's registration request (`POST /c2dm/register3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// The app's package name.
    pub app: String,
    /// The install id the device names itself by (`device`).
    pub device: String,
    /// Sender ids, sorted, without duplicates; empty when unregistering.
    pub senders: Vec<String>,
    /// Lowercase hex SHA-1 of the app's signing certificate, or empty when not sent.
    pub cert: String,
    /// `delete=true`/`1`: unregister.
    pub delete: bool,
}

fn token_like(text: &str, max: usize, extra: &[u8]) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// Parses a registration form. Unknown fields (`app_ver`, `X-…`, `info`, …) are ignored; a field
/// sent twice, a missing or malformed `app` or `device`, or a `cert` that is not 40 hex digits is
/// `INVALID_PARAMETERS`; a missing, malformed or too long `sender` list is `INVALID_SENDER`.
pub fn parse_register(pairs: &[(String, String)]) -> Result<Register, RegisterError> {
    let mut seen = BTreeSet::new();
    for (name, _) in pairs {
        if !seen.insert(name.as_str()) {
            return Err(RegisterError::InvalidParameters);
        }
    }
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let app = get("app").unwrap_or_default();
    if !token_like(app, 256, b"._-:/") {
        return Err(RegisterError::InvalidParameters);
    }
    let device = get("device").unwrap_or_default();
    if !token_like(device, 64, b"_-") {
        return Err(RegisterError::InvalidParameters);
    }
    let cert = get("cert").unwrap_or_default().to_ascii_lowercase();
    if !cert.is_empty() && (cert.len() != 40 || !cert.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(RegisterError::InvalidParameters);
    }
    let delete = form_flag(get("delete"));
    let senders = match get("sender") {
        None | Some("") if delete => Vec::new(),
        None | Some("") => return Err(RegisterError::InvalidSender),
        Some(list) => {
            let senders: BTreeSet<&str> = list.split(',').collect();
            if senders.len() > MAX_SENDERS || !senders.iter().all(|it| token_like(it, 128, b"._@-"))
            {
                return Err(RegisterError::InvalidSender);
            }
            senders.into_iter().map(str::to_owned).collect()
        }
    };
    Ok(Register { app: app.to_owned(), device: device.to_owned(), senders, cert, delete })
}

/// A device's topic subscription through `register3` (the form Android's and iOS's messaging
/// libraries post): `sender` is the registration id, `X-gcm.topic` (or `X-scope`) is
/// `/topics/<name>`, and `delete` (or `X-delete`) unsubscribes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicChange {
    /// The app's package name; the registration must be this app's.
    pub app: String,
    /// The install id the device names itself by (`device`).
    pub device: String,
    /// The registration id being subscribed (`sender`).
    pub registration_id: String,
    /// The topic's name, without `/topics/`.
    pub topic: String,
    /// Unsubscribe instead.
    pub delete: bool,
}

/// Reads a `register3` form as a topic subscription: `None` when it names no topic (`X-gcm.topic`,
/// `gcm.topic`, or an `X-scope` of `/topics/…`), so it is an app registration for
/// [`parse_register`]. A field sent twice, a malformed `app` or `device`, a topic that is not
/// `/topics/<name>` with a valid name, or two topic fields that disagree is `INVALID_PARAMETERS`;
/// a missing or malformed registration id in `sender` is `INVALID_SENDER`.
pub fn parse_topic_change(
    pairs: &[(String, String)],
) -> Option<Result<TopicChange, RegisterError>> {
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let named = ["X-gcm.topic", "gcm.topic"].into_iter().filter_map(get);
    let scope = get("X-scope").filter(|it| it.starts_with("/topics/"));
    let topics: BTreeSet<&str> = named.chain(scope).collect();
    if topics.is_empty() {
        return None;
    }
    Some(topic_change(pairs, &topics))
}

fn topic_change(
    pairs: &[(String, String)],
    topics: &BTreeSet<&str>,
) -> Result<TopicChange, RegisterError> {
    let mut seen = BTreeSet::new();
    if !pairs.iter().all(|(name, _)| seen.insert(name.as_str())) {
        return Err(RegisterError::InvalidParameters);
    }
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let [topic] = topics.iter().collect::<Vec<_>>()[..] else {
        return Err(RegisterError::InvalidParameters);
    };
    let topic = match topic.strip_prefix("/topics/") {
        Some(name) if valid_topic(name) => name,
        _ => return Err(RegisterError::InvalidParameters),
    };
    let app = get("app").unwrap_or_default();
    let device = get("device").unwrap_or_default();
    if !token_like(app, 256, b"._-:/") || !token_like(device, 64, b"_-") {
        return Err(RegisterError::InvalidParameters);
    }
    let registration_id = get("sender").unwrap_or_default();
    if !token_like(registration_id, 512, b"-_:.") {
        return Err(RegisterError::InvalidSender);
    }
    Ok(TopicChange {
        app: app.to_owned(),
        device: device.to_owned(),
        registration_id: registration_id.to_owned(),
        topic: topic.to_owned(),
        delete: form_flag(get("delete")) || form_flag(get("X-delete")),
    })
}

/// A registration's 200 body: `token=<registration id>`.
pub fn register_body(registration_id: &str) -> String {
    format!("token={registration_id}\n")
}

/// An unregistration's 200 body: `deleted=<app>`.
pub fn unregister_body(app: &str) -> String {
    format!("deleted={app}\n")
}

/// A registration error's body: `Error=<code>`.
pub fn register_error_body(code: RegisterError) -> String {
    format!("Error={}\n", code.as_str())
}

#[cfg(test)]
mod wire_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn c2dm_requires_registration_then_collapse_key() {
        assert_eq!(parse_c2dm_send(&[]), Err(Ok(SendError::MissingRegistration)));
        assert_eq!(
            parse_c2dm_send(&pairs(&[("registration_id", "r")])),
            Err(Ok(SendError::MissingCollapseKey))
        );
        let (id, message) = parse_c2dm_send(&pairs(&[
            ("registration_id", "r"),
            ("collapse_key", "score"),
            ("delay_while_idle", "1"),
            ("data.score", "4x8"),
            ("data.time", "15:16"),
        ]))
        .unwrap();
        assert_eq!(id, "r");
        assert_eq!(message.collapse_key.as_deref(), Some("score"));
        assert!(message.delay_while_idle);
        assert_eq!(message.data, pairs(&[("score", "4x8"), ("time", "15:16")]));
        let big = "x".repeat(1022);
        assert_eq!(
            parse_c2dm_send(&pairs(&[
                ("registration_id", "r"),
                ("collapse_key", "k"),
                ("data.big", &big)
            ])),
            Err(Ok(SendError::MessageTooBig))
        );
        assert_eq!(
            parse_c2dm_send(&pairs(&[("registration_id", "r"), ("registration_id", "s")])),
            Err(Err(BadRequest::Repeated("registration_id".to_owned())))
        );
    }

    #[test]
    fn gcm_json_fields_are_typed() {
        let send = parse_gcm_json(br#"{"registration_ids":["a","b","a"],"collapse_key":"k","time_to_live":108,"delay_while_idle":true,"data":{"score":"4x8","n":3}}"#).unwrap();
        assert_eq!(send.target, Target::Registrations(vec!["a".into(), "b".into(), "a".into()]));
        assert_eq!(send.message.data, pairs(&[("n", "3"), ("score", "4x8")]));
        assert_eq!(send.message.time_to_live, Some(108));
        assert!(send.message.delay_while_idle);
        assert_eq!(send.problem, None);
        assert_eq!(parse_gcm_json(b"{"), Err(BadRequest::Json));
        assert_eq!(parse_gcm_json(b"[]"), Err(BadRequest::NotAnObject));
        assert_eq!(parse_gcm_json(b"{}"), Err(BadRequest::MissingRecipients));
        assert_eq!(
            parse_gcm_json(br#"{"to":"a","registration_ids":["b"]}"#),
            Err(BadRequest::BothRecipients)
        );
        assert_eq!(
            parse_gcm_json(br#"{"to":"a","dry_run":1}"#),
            Err(BadRequest::FieldType("dry_run", "boolean"))
        );
        assert_eq!(
            parse_gcm_json(br#"{"to":"a","time_to_live":"1"}"#),
            Err(BadRequest::FieldType("time_to_live", "number"))
        );
        let ids: Vec<String> = (0..1001).map(|i| format!("\"r{i}\"")).collect();
        let body = format!("{{\"registration_ids\":[{}]}}", ids.join(","));
        assert_eq!(parse_gcm_json(body.as_bytes()), Err(BadRequest::TooManyRecipients(1001)));
        assert_eq!(
            parse_gcm_json(br#"{"to":"a","time_to_live":2419201}"#).unwrap().problem,
            Some(SendError::InvalidTtl)
        );
        assert_eq!(
            parse_gcm_json(br#"{"to":"a","time_to_live":-1}"#).unwrap().problem,
            Some(SendError::InvalidTtl)
        );
        assert_eq!(
            parse_gcm_json(br#"{"to":"a","data":{"google.x":"1"}}"#).unwrap().problem,
            Some(SendError::InvalidDataKey)
        );
        assert_eq!(
            parse_gcm_json(br#"{"to":"/topics/news"}"#).unwrap().target,
            Target::Topic("news".into())
        );
        assert!(matches!(
            parse_gcm_json(br#"{"to":"/topics/a b"}"#),
            Err(BadRequest::InvalidTo(_))
        ));
    }

    #[test]
    fn gcm_payload_limit_is_4096_bytes() {
        let at = format!(r#"{{"to":"a","data":{{"k":"{}"}}}}"#, "x".repeat(4095));
        assert_eq!(parse_gcm_json(at.as_bytes()).unwrap().problem, None);
        let over = format!(r#"{{"to":"a","data":{{"k":"{}"}}}}"#, "x".repeat(4096));
        assert_eq!(
            parse_gcm_json(over.as_bytes()).unwrap().problem,
            Some(SendError::MessageTooBig)
        );
    }

    #[test]
    fn gcm_form_has_one_recipient() {
        let send = parse_gcm_form(&pairs(&[
            ("registration_id", "r"),
            ("time_to_live", "0"),
            ("dry_run", "true"),
        ]))
        .unwrap();
        assert_eq!(send.target, Target::Registrations(vec!["r".into()]));
        assert_eq!(send.message.time_to_live, Some(0));
        assert!(send.message.dry_run);
        assert_eq!(parse_gcm_form(&[]).unwrap().problem, Some(SendError::MissingRegistration));
        assert_eq!(
            parse_gcm_form(&pairs(&[("registration_id", "r"), ("time_to_live", "+5")]))
                .unwrap()
                .problem,
            Some(SendError::InvalidTtl)
        );
    }

    #[test]
    fn registration_fields() {
        let reg = parse_register(&pairs(&[
            ("app", "com.example.notes"),
            ("device", "3864729817263546172"),
            ("sender", "2,1,2"),
            ("cert", "0A1B2C3D4E5F60718293A4B5C6D7E8F901234567"),
            ("X-app_ver_name", "1.4.2"),
        ]))
        .unwrap();
        assert_eq!(reg.senders, vec!["1".to_owned(), "2".to_owned()]);
        assert_eq!(reg.cert, "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567");
        assert!(!reg.delete);
        assert_eq!(
            parse_register(&pairs(&[("app", "a"), ("device", "1")])),
            Err(RegisterError::InvalidSender)
        );
        assert!(
            parse_register(&pairs(&[("app", "a"), ("device", "1"), ("delete", "true")]))
                .unwrap()
                .delete
        );
        assert_eq!(
            parse_register(&pairs(&[
                ("app", "a"),
                ("device", "1"),
                ("sender", "1"),
                ("cert", "zz")
            ])),
            Err(RegisterError::InvalidParameters)
        );
        let many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
        assert_eq!(
            parse_register(&pairs(&[("app", "a"), ("device", "1"), ("sender", &many.join(","))])),
            Err(RegisterError::InvalidSender)
        );
    }

    /// The form Android's and iOS's messaging libraries post to subscribe a registration to a
    /// topic: the registration id as `sender`, the topic in `X-gcm.topic` and `X-scope`.
    #[test]
    fn topic_changes_from_the_device() {
        let form = [
            ("app", "com.example.notes"),
            ("device", "3864729817263546172"),
            ("sender", "APA91b-x_y:z"),
            ("X-gcm.topic", "/topics/news"),
            ("X-scope", "/topics/news"),
            ("X-subtype", "APA91b-x_y:z"),
        ];
        let change = parse_topic_change(&pairs(&form)).unwrap().unwrap();
        assert_eq!(change.registration_id, "APA91b-x_y:z");
        assert_eq!(change.topic, "news");
        assert!(!change.delete);
        let mut delete = form.to_vec();
        delete.push(("X-delete", "1"));
        assert!(parse_topic_change(&pairs(&delete)).unwrap().unwrap().delete);
        // iOS's form: `gcm.topic` only under its `X-` name, and `delete=true`.
        let ios =
            [("app", "a"), ("device", "1"), ("sender", "r"), ("X-gcm.topic", "/topics/a%2Fb")];
        let mut ios = ios.to_vec();
        ios.push(("delete", "true"));
        let change = parse_topic_change(&pairs(&ios)).unwrap().unwrap();
        assert_eq!((change.topic.as_str(), change.delete), ("a%2Fb", true));

        // No topic: an app registration, for `parse_register`.
        let app = [("app", "a"), ("device", "1"), ("sender", "1"), ("X-scope", "*")];
        assert_eq!(parse_topic_change(&pairs(&app)), None);
        let refused =
            |form: &[(&str, &str)]| parse_topic_change(&pairs(form)).unwrap().unwrap_err();
        let base = [("app", "a"), ("device", "1"), ("sender", "r")];
        for topic in ["news", "/topics/", "/topics/a b", "/topic/news"] {
            let mut form = base.to_vec();
            form.push(("X-gcm.topic", topic));
            assert_eq!(refused(&form), RegisterError::InvalidParameters, "{topic:?}");
        }
        let mut disagree = base.to_vec();
        disagree.extend([("X-gcm.topic", "/topics/a"), ("X-scope", "/topics/b")]);
        assert_eq!(refused(&disagree), RegisterError::InvalidParameters);
        let mut twice = base.to_vec();
        twice.extend([("X-gcm.topic", "/topics/a"), ("sender", "s")]);
        assert_eq!(refused(&twice), RegisterError::InvalidParameters);
        let no_sender = [("app", "a"), ("device", "1"), ("X-gcm.topic", "/topics/a")];
        assert_eq!(refused(&no_sender), RegisterError::InvalidSender);
        let bad_sender =
            [("app", "a"), ("device", "1"), ("sender", "a=b"), ("X-gcm.topic", "/topics/a")];
        assert_eq!(refused(&bad_sender), RegisterError::InvalidSender);
        let no_app = [("device", "1"), ("sender", "r"), ("X-gcm.topic", "/topics/a")];
        assert_eq!(refused(&no_app), RegisterError::InvalidParameters);
    }

    #[test]
    fn codes_round_trip() {
        for code in SendError::ALL {
            assert_eq!(SendError::parse(code.as_str()), Some(code));
        }
        for code in RegisterError::ALL {
            assert_eq!(RegisterError::parse(code.as_str()), Some(code));
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
            let pairs = urlencoded_pairs(&raw);
            let _ = parse_c2dm_send(&pairs);
            let _ = parse_gcm_form(&pairs);
            let _ = parse_register(&pairs);
            let _ = parse_topic_change(&pairs);
            let _ = parse_gcm_json(&raw);
        }

        #[test]
        fn json_results_match_recipients_in_order(codes in proptest::collection::vec(proptest::option::of(0usize..15), 0..40)) {
            let outcomes: Vec<Outcome> = codes.iter().enumerate().map(|(i, code)| match code {
                Some(c) => Outcome::Failed(SendError::ALL[*c]),
                None => Outcome::Accepted { message_id: format!("0:{i}"), canonical: None },
            }).collect();
            let body: Value = serde_json::from_str(&gcm_json_body(7, &outcomes)).unwrap();
            let results = body["results"].as_array().unwrap();
            prop_assert_eq!(results.len(), outcomes.len());
            for (result, outcome) in results.iter().zip(&outcomes) {
                match outcome {
                    Outcome::Failed(code) => prop_assert_eq!(result["error"].as_str(), Some(code.as_str())),
                    Outcome::Accepted { message_id, .. } => prop_assert_eq!(result["message_id"].as_str(), Some(message_id.as_str())),
                }
            }
            let failures = codes.iter().filter(|it| it.is_some()).count() as u64;
            prop_assert_eq!(body["failure"].as_u64(), Some(failures));
            prop_assert_eq!(body["success"].as_u64(), Some(outcomes.len() as u64 - failures));
        }

        #[test]
        fn json_registration_ids_round_trip(ids in proptest::collection::vec("\\PC{1,30}", 1..20)) {
            let body = serde_json::json!({"registration_ids": ids}).to_string();
            let send = parse_gcm_json(body.as_bytes()).unwrap();
            prop_assert_eq!(send.target, Target::Registrations(ids));
        }

        #[test]
        fn valid_topic_changes_read_back(name in "[A-Za-z0-9._~%-]{1,64}", id in "[A-Za-z0-9_:-]{1,80}", delete in proptest::bool::ANY) {
            let mut form = vec![
                ("app".to_owned(), "a".to_owned()),
                ("device".to_owned(), "1".to_owned()),
                ("sender".to_owned(), id.clone()),
                ("X-gcm.topic".to_owned(), format!("/topics/{name}")),
            ];
            if delete {
                form.push(("delete".to_owned(), "1".to_owned()));
            }
            let change = parse_topic_change(&form).unwrap().unwrap();
            prop_assert_eq!(change.topic, name);
            prop_assert_eq!(change.registration_id, id);
            prop_assert_eq!(change.delete, delete);
        }

        #[test]
        fn senders_are_sorted_and_unique(senders in proptest::collection::vec("[0-9]{1,12}", 1..20)) {
            let list = senders.join(",");
            let reg = parse_register(&[("app".to_owned(), "a".to_owned()), ("device".to_owned(), "1".to_owned()), ("sender".to_owned(), list)]).unwrap();
            let mut want = senders.clone();
            want.sort();
            want.dedup();
            prop_assert_eq!(reg.senders, want);
        }
    }
}
