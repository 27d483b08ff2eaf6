//! A push sender: sends C2DM (form) and GCM (JSON) messages to registration ids or a topic,
//! parses the answers, and retries a 5xx with backoff, honouring a numeric `Retry-After`.
//!
//! ```no_run
//! # async fn run() -> Result<(), tessera_client::push_sender::SendError> {
//! use tessera_client::push_sender::{Credential, Message, Sender, Target};
//! let sender = Sender::new("https://accounts.example".parse().unwrap(), Credential::api_key("AIza…"));
//! let message = Message { data: vec![("score".into(), "4x8".into())], ..Message::default() };
//! let answer = sender.send(&Target::Ids(vec!["APA91b…".into()]), &message).await?;
//! # let _ = answer; Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use url::Url;

use crate::secret::Secret;

/// The sender's credential.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A project API key: `Authorization: key=<key>` (GCM).
    ApiKey(Secret),
    /// A ClientLogin `Auth` for the `ac2dm` service: `Authorization: GoogleLogin auth=<Auth>`.
    ClientLogin(Secret),
    /// An OAuth 2.0 access token with the push scope.
    Bearer(Secret),
}

impl Credential {
    /// A project API key.
    pub fn api_key(key: impl Into<String>) -> Credential {
        Credential::ApiKey(Secret::new(key))
    }

    fn header(&self) -> String {
        match self {
            Credential::ApiKey(key) => format!("key={}", key.expose()),
            Credential::ClientLogin(auth) => format!("GoogleLogin auth={}", auth.expose()),
            Credential::Bearer(token) => format!("Bearer {}", token.expose()),
        }
    }
}

/// Who a GCM message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One to 1000 registration ids.
    Ids(Vec<String>),
    /// Every registration subscribed to `/topics/<name>`.
    Topic(String),
}

/// A message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// `data` entries, in order.
    pub data: Vec<(String, String)>,
    /// A newer message with the same key replaces a waiting one.
    pub collapse_key: Option<String>,
    /// Seconds to keep it for an offline device (0..2419200); `None`: four weeks.
    pub time_to_live: Option<u32>,
    /// Hold it while the device is idle.
    pub delay_while_idle: bool,
    /// Validate only.
    pub dry_run: bool,
    /// Only the app with this package name may receive it.
    pub restricted_package_name: Option<String>,
}

/// One recipient's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted: its message id, and the id to use from now on if the server named another.
    Sent {
        /// The message id.
        message_id: String,
        /// A canonical registration id replacing the one sent to.
        canonical: Option<String>,
    },
    /// Refused for this recipient: `NotRegistered`, `InvalidRegistration`, `QuotaExceeded`…
    Failed(String),
}

/// A GCM answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A send to ids: one outcome per id, in request order.
    Multicast {
        /// The server's multicast id.
        multicast_id: u64,
        /// How many were accepted.
        success: u64,
        /// How many were refused.
        failure: u64,
        /// The outcomes, in request order.
        results: Vec<Outcome>,
    },
    /// A topic send: the topic message id, or the error code.
    Topic(Result<u64, String>),
}

/// Why a send failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// 401: the credential was refused.
    #[error("the sender credential was refused (401)")]
    Unauthorized,
    /// 400: the request was malformed; the server's one-line explanation.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 5xx on every attempt; the last `Retry-After`, if it was a number of seconds.
    #[error("the server is unavailable (status {status}) after {attempts} attempts")]
    Unavailable {
        /// The last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// The last numeric `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// An answer this library does not understand.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    /// The request could not be sent or its answer read.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
}

/// How the sender waits between attempts: the default sleeps; tests inject one that records.
pub type Wait = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A push sender bound to one server and credential.
#[derive(Clone)]
pub struct Sender {
    base: Url,
    credential: Credential,
    http: reqwest::Client,
    /// Attempts in all (the first included) while the server answers 5xx.
    max_attempts: u32,
    /// The first backoff; doubled after each attempt, capped at `max_backoff`.
    backoff: Duration,
    max_backoff: Duration,
    wait: Wait,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("base", &self.base.as_str()).finish_non_exhaustive()
    }
}

/// A numeric `Retry-After` (seconds); an HTTP-date or anything else is ignored (then the backoff
/// applies).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl Sender {
    /// A sender for the server at `base` (its root URL). Retries a 5xx up to 5 attempts in all,
    /// waiting the `Retry-After` or 1, 2, 4… seconds (at most 64).
    pub fn new(base: Url, credential: Credential) -> Sender {
        Sender {
            base,
            credential,
            http: crate::default_http_client(),
            max_attempts: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(64),
            wait: Arc::new(|duration| Box::pin(tokio::time::sleep(duration))),
        }
    }

    /// Attempts in all while the server answers 5xx (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Sender {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Replaces how the sender waits between attempts (tests: record instead of sleeping).
    pub fn with_wait(mut self, wait: Wait) -> Sender {
        self.wait = wait;
        self
    }

    /// Uses this HTTP client.
    pub fn with_http_client(mut self, http: reqwest::Client) -> Sender {
        self.http = http;
        self
    }

    fn url(&self, path: &str) -> Result<Url, SendError> {
        self.base.join(path).map_err(|err| SendError::Unexpected(format!("bad server URL: {err}")))
    }

    /// Posts `body`, retrying a 5xx; answers the first non-5xx status and body.
    async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: String,
    ) -> Result<(u16, String), SendError> {
        let url = self.url(path)?;
        let mut backoff = self.backoff;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let res = self
                .http
                .post(url.clone())
                .header(http::header::AUTHORIZATION, self.credential.header())
                .header(http::header::CONTENT_TYPE, content_type)
                .body(body.clone())
                .send()
                .await?;
            let status = res.status().as_u16();
            if status < 500 {
                return Ok((status, res.text().await?));
            }
            let retry_after = res
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|it| it.to_str().ok())
                .and_then(parse_retry_after);
            if attempts >= self.max_attempts {
                return Err(SendError::Unavailable { status, attempts, retry_after });
            }
            (self.wait)(retry_after.unwrap_or(backoff)).await;
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    /// Sends a GCM JSON message to ids or a topic.
    pub async fn send(&self, target: &Target, message: &Message) -> Result<Answer, SendError> {
        let mut body = Map::new();
        match target {
            Target::Ids(ids) => {
                body.insert("registration_ids".into(), ids.clone().into());
            }
            Target::Topic(name) => {
                body.insert("to".into(), format!("/topics/{name}").into());
            }
        }
        if !message.data.is_empty() {
            let data: Map<String, Value> =
                message.data.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
            body.insert("data".into(), data.into());
        }
        if let Some(key) = &message.collapse_key {
            body.insert("collapse_key".into(), key.as_str().into());
        }
        if let Some(ttl) = message.time_to_live {
            body.insert("time_to_live".into(), ttl.into());
        }
        if message.delay_while_idle {
            body.insert("delay_while_idle".into(), true.into());
        }
        if message.dry_run {
            body.insert("dry_run".into(), true.into());
        }
        if let Some(name) = &message.restricted_package_name {
            body.insert("restricted_package_name".into(), name.as_str().into());
        }
        let text = Value::Object(body).to_string();
        let (status, answer) = self.post("gcm/send", "application/json", text).await?;
        match status {
            200 => parse_gcm_answer(&answer),
            401 => Err(SendError::Unauthorized),
            400 => Err(SendError::BadRequest(answer.trim_end().to_owned())),
            other => Err(SendError::Unexpected(format!("status {other}"))),
        }
    }

    /// Sends a C2DM message (form) to one registration id; C2DM requires a collapse key.
    pub async fn send_c2dm(
        &self,
        registration_id: &str,
        message: &Message,
    ) -> Result<Outcome, SendError> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("registration_id", registration_id);
        if let Some(key) = &message.collapse_key {
            form.append_pair("collapse_key", key);
        }
        for (key, value) in &message.data {
            form.append_pair(&format!("data.{key}"), value);
        }
        if message.delay_while_idle {
            form.append_pair("delay_while_idle", "1");
        }
        let (status, answer) =
            self.post("c2dm/send", "application/x-www-form-urlencoded", form.finish()).await?;
        match status {
            200 => parse_text_answer(&answer),
            401 => Err(SendError::Unauthorized),
            400 => Err(SendError::BadRequest(answer.trim_end().to_owned())),
            other => Err(SendError::Unexpected(format!("status {other}"))),
        }
    }
}

/// Parses a GCM JSON 200 answer: a multicast result or a topic result.
pub fn parse_gcm_answer(text: &str) -> Result<Answer, SendError> {
    let bad = || SendError::Unexpected(text.chars().take(200).collect());
    let value: Value = serde_json::from_str(text).map_err(|_| bad())?;
    let object = value.as_object().ok_or_else(bad)?;
    if let Some(results) = object.get("results") {
        let number = |name: &str| object.get(name).and_then(Value::as_u64).ok_or_else(bad);
        let results = results
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|it| {
                if let Some(id) = it.get("message_id").and_then(Value::as_str) {
                    let canonical =
                        it.get("registration_id").and_then(Value::as_str).map(str::to_owned);
                    Ok(Outcome::Sent { message_id: id.to_owned(), canonical })
                } else if let Some(code) = it.get("error").and_then(Value::as_str) {
                    Ok(Outcome::Failed(code.to_owned()))
                } else {
                    Err(bad())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Answer::Multicast {
            multicast_id: number("multicast_id")?,
            success: number("success")?,
            failure: number("failure")?,
            results,
        });
    }
    if let Some(id) = object.get("message_id").and_then(Value::as_u64) {
        return Ok(Answer::Topic(Ok(id)));
    }
    if let Some(code) = object.get("error").and_then(Value::as_str) {
        return Ok(Answer::Topic(Err(code.to_owned())));
    }
    Err(bad())
}

/// Parses a plain-text 200 answer: `id=<message id>` (then perhaps `registration_id=<id>`) or
/// `Error=<code>`.
pub fn parse_text_answer(text: &str) -> Result<Outcome, SendError> {
    let mut message_id = None;
    let mut canonical = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("id", id)) => message_id = Some(id.to_owned()),
            Some(("registration_id", id)) => canonical = Some(id.to_owned()),
            Some(("Error", code)) => return Ok(Outcome::Failed(code.to_owned())),
            _ => {}
        }
    }
    match message_id {
        Some(message_id) => Ok(Outcome::Sent { message_id, canonical }),
        None => Err(SendError::Unexpected(text.chars().take(200).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse() {
        let multicast = r#"{"multicast_id":5,"success":1,"failure":1,"canonical_ids":0,"results":[{"message_id":"0:1%ab"},{"error":"NotRegistered"}]}"#;
        assert_eq!(
            parse_gcm_answer(multicast).unwrap(),
            Answer::Multicast {
                multicast_id: 5,
                success: 1,
                failure: 1,
                results: vec![
                    Outcome::Sent { message_id: "0:1%ab".into(), canonical: None },
                    Outcome::Failed("NotRegistered".into()),
                ],
            }
        );
        assert_eq!(parse_gcm_answer(r#"{"message_id":77}"#).unwrap(), Answer::Topic(Ok(77)));
        assert_eq!(
            parse_gcm_answer(r#"{"error":"TopicsMessageRateExceeded"}"#).unwrap(),
            Answer::Topic(Err("TopicsMessageRateExceeded".into()))
        );
        for bad in ["", "[]", "{}", r#"{"results":[{}],"multicast_id":1,"success":0,"failure":0}"#]
        {
            assert!(parse_gcm_answer(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_text_answer("id=0:1%ab\nregistration_id=APA91bx\n").unwrap(),
            Outcome::Sent { message_id: "0:1%ab".into(), canonical: Some("APA91bx".into()) }
        );
        assert_eq!(
            parse_text_answer("Error=QuotaExceeded\n").unwrap(),
            Outcome::Failed("QuotaExceeded".into())
        );
        assert!(parse_text_answer("nonsense").is_err());
        assert_eq!(parse_retry_after(" 12 "), Some(Duration::from_secs(12)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
