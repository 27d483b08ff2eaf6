//! Receiving push messages as a device (feature `push`): one WebSocket to the server's
//! `/push/connect`, authenticated with the device credential (`AidLogin`), carrying the device's
//! registration ids. `https://` (and `wss://`) base URLs connect over TLS with rustls, trusting the
//! platform's roots as reqwest does, plus any [`ReceiverConfig::extra_roots`].
//!
//! Delivery is at least once: the server sends a message again until it is acknowledged, and after
//! every reconnect. [`Receiver::next`] yields each message id once (it remembers the most recent
//! ids), reconnects by itself with exponential backoff and jitter, and gives up only when the
//! server refuses the device (a refused credential, a registration id that is not the device's).
//! Acknowledge a message with [`Receiver::ack`] once it is handled; a repeat of a message already
//! acknowledged is acknowledged again without being yielded.
//!
//! ```no_run
//! # async fn run() -> Result<(), tessera_client::push::PushError> {
//! use tessera_client::push::{Receiver, ReceiverConfig};
//! let config = ReceiverConfig::new(
//!     "http://127.0.0.1:8080",
//!     "3864729817263546172",
//!     "pi/…".into(),
//!     vec!["APA91b…".to_owned()],
//! );
//! let mut receiver = Receiver::new(config);
//! loop {
//!     let message = receiver.next().await?;
//!     println!("{}", message.raw);
//!     receiver.ack(&message.message_id).await;
//! }
//! # }
//! ```

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::Secret;

/// The socket's read buffer: a frame of the largest payload with its JSON fits.
const READ_BUFFER: usize = 8192;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Where to connect and as whom, and how to retry.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// The server's base URL (`http://…`, `https://…`, `ws://…` or `wss://…`).
    pub server: String,
    /// The device id of the `AidLogin` credential (the Android ID, or the install id).
    pub device_id: String,
    /// The device credential: a master token or an install credential.
    pub credential: Secret,
    /// The registration ids to receive for (1 to 100).
    pub registration_ids: Vec<String>,
    /// The first pause before reconnecting; it doubles with every failed attempt.
    pub backoff_initial: Duration,
    /// The longest pause before reconnecting.
    pub backoff_max: Duration,
    /// A connection on which nothing (not even the server's ping) arrived for this long is
    /// considered dead and replaced; the server pings a quiet connection every 30 seconds.
    pub dead_after: Duration,
    /// Message ids remembered to drop repeats.
    pub remember: usize,
    /// DER certificates trusted as roots for `wss://` beside the platform's (a private CA).
    pub extra_roots: Vec<Vec<u8>>,
}

impl ReceiverConfig {
    /// A configuration with the default retry and liveness settings.
    pub fn new(
        server: impl Into<String>,
        device_id: impl Into<String>,
        credential: Secret,
        registration_ids: Vec<String>,
    ) -> ReceiverConfig {
        ReceiverConfig {
            server: server.into(),
            device_id: device_id.into(),
            credential,
            registration_ids,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            dead_after: Duration::from_secs(95),
            remember: 10_000,
            extra_roots: Vec::new(),
        }
    }
}

/// A message delivered to the device.
#[derive(Debug, Clone, PartialEq)]
pub struct PushMessage {
    /// The id to acknowledge and to drop repeats by.
    pub message_id: String,
    /// The registration it was sent to.
    pub registration_id: String,
    /// The sender id (project), when the frame carries one.
    pub from: Option<String>,
    /// The collapse key, when the message had one.
    pub collapse_key: Option<String>,
    /// `deleted_messages` for the notice that replaced too many stored messages.
    pub message_type: Option<String>,
    /// The frame as the server sent it (a JSON object).
    pub raw: serde_json::Value,
}

impl PushMessage {
    /// The message's `data` object (empty for a notice).
    pub fn data(&self) -> serde_json::Map<String, serde_json::Value> {
        self.raw.get("data").and_then(|it| it.as_object()).cloned().unwrap_or_default()
    }

    fn parse(frame: &str) -> Option<PushMessage> {
        let raw: serde_json::Value = serde_json::from_str(frame).ok()?;
        if raw.get("type")?.as_str()? != "message" {
            return None;
        }
        let text = |name: &str| raw.get(name).and_then(|it| it.as_str()).map(str::to_owned);
        Some(PushMessage {
            message_id: text("message_id")?,
            registration_id: text("registration_id")?,
            from: text("from"),
            collapse_key: text("collapse_key"),
            message_type: text("message_type"),
            raw,
        })
    }
}

/// Why receiving stopped.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The server refused the device: the credential, a registration id, or the request. Retrying
    /// would not help.
    #[error("the server refused the connection ({status}): {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's one-line explanation.
        body: String,
    },
    /// The server URL or the credential cannot make a request.
    #[error("bad receiver configuration: {0}")]
    Config(String),
    /// The server's TLS certificate was refused (untrusted, expired, for another name). Retrying
    /// would not help until the certificate or [`ReceiverConfig::extra_roots`] changes.
    #[error("the server's certificate was refused: {0}")]
    Certificate(String),
}

/// Message ids seen lately, oldest forgotten first.
#[derive(Debug, Default)]
struct Seen {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl Seen {
    fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    fn insert(&mut self, id: &str, limit: usize) {
        if self.ids.insert(id.to_owned()) {
            self.order.push_back(id.to_owned());
            while self.order.len() > limit.max(1) {
                if let Some(old) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
        }
    }
}

/// A device's receiver: connects on first use and after every lost connection.
pub struct Receiver {
    config: ReceiverConfig,
    socket: Option<Socket>,
    /// Failed connection attempts in a row.
    failures: u32,
    /// Yielded (acknowledged or not).
    yielded: Seen,
    /// Acknowledged: a repeat is acknowledged again.
    acked: Seen,
    /// The TLS configuration, made at the first `wss://` attempt.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("server", &self.config.server)
            .field("device_id", &self.config.device_id)
            .field("connected", &self.socket.is_some())
            .finish_non_exhaustive()
    }
}

/// How one connection attempt ended.
enum Attempt {
    Connected(Box<Socket>),
    /// Worth another try (network, 429, 5xx).
    Retry,
    Refused(PushError),
}

impl Receiver {
    /// A receiver that connects when [`Receiver::next`] is first called.
    pub fn new(config: ReceiverConfig) -> Receiver {
        Receiver {
            config,
            socket: None,
            failures: 0,
            yielded: Seen::default(),
            acked: Seen::default(),
            tls: None,
        }
    }

    /// Whether a connection is open now.
    pub fn is_connected(&self) -> bool {
        self.socket.is_some()
    }

    /// The next message not yielded before, connecting (and reconnecting) as needed. Fails only
    /// when the server refuses the device.
    pub async fn next(&mut self) -> Result<PushMessage, PushError> {
        loop {
            let Some(socket) = self.socket.as_mut() else {
                self.connect().await?;
                continue;
            };
            let frame = match tokio::time::timeout(self.config.dead_after, socket.next()).await {
                Ok(Some(Ok(frame))) => frame,
                // Closed, failed, or silent for too long: connect again, after a first pause so
                // that devices cut off together (a server restart) do not all come back at once.
                Ok(Some(Err(_)) | None) | Err(_) => {
                    self.socket = None;
                    self.failures = 1;
                    continue;
                }
            };
            let Message::Text(text) = frame else { continue };
            let Some(message) = PushMessage::parse(text.as_str()) else { continue };
            if self.acked.contains(&message.message_id) {
                self.ack(&message.message_id).await;
                continue;
            }
            if self.yielded.contains(&message.message_id) {
                continue;
            }
            self.yielded.insert(&message.message_id, self.config.remember);
            return Ok(message);
        }
    }

    /// Acknowledges a message: the server deletes it. If the connection is gone the
    /// acknowledgement is lost, the server sends the message again after the reconnect, and the
    /// receiver acknowledges that repeat itself.
    pub async fn ack(&mut self, message_id: &str) {
        self.acked.insert(message_id, self.config.remember);
        let frame = serde_json::json!({ "type": "ack", "message_id": message_id }).to_string();
        self.send(frame).await;
    }

    /// Tells the server the device is idle (`true`: messages sent with `delay_while_idle` wait)
    /// or active again.
    pub async fn set_idle(&mut self, idle: bool) {
        let kind = if idle { "idle" } else { "active" };
        self.send(serde_json::json!({ "type": kind }).to_string()).await;
    }

    async fn send(&mut self, frame: String) {
        if let Some(socket) = self.socket.as_mut()
            && socket.send(Message::Text(frame.into())).await.is_err()
        {
            self.socket = None;
            self.failures = 1;
        }
    }

    /// Closes the connection cleanly, after the server has read everything sent on it (every
    /// acknowledgement included).
    pub async fn close(&mut self) {
        if let Some(mut socket) = self.socket.take() {
            let _ = socket.close(None).await;
            let drain = async { while let Some(Ok(_)) = socket.next().await {} };
            let _ = tokio::time::timeout(Duration::from_secs(10), drain).await;
        }
    }

    /// Connects, pausing before each attempt after a failure.
    async fn connect(&mut self) -> Result<(), PushError> {
        loop {
            if self.failures > 0 {
                tokio::time::sleep(self.backoff()).await;
            }
            match self.attempt().await {
                Attempt::Connected(socket) => {
                    self.failures = 0;
                    self.socket = Some(*socket);
                    return Ok(());
                }
                Attempt::Retry => self.failures = self.failures.saturating_add(1),
                Attempt::Refused(err) => return Err(err),
            }
        }
    }

    /// The pause before the next attempt: `backoff_initial` doubled per failure beyond the first,
    /// at most `backoff_max`, then a random half to all of it so that devices cut off together
    /// do not come back together.
    fn backoff(&self) -> Duration {
        let exponent = self.failures.saturating_sub(1).min(20);
        let full =
            self.config.backoff_initial.saturating_mul(1 << exponent).min(self.config.backoff_max);
        let mut byte = [0u8; 1];
        let _ = aws_lc_rs::rand::fill(&mut byte);
        full / 2 + full / 2 * u32::from(byte[0]) / 255
    }

    /// The connector for `url`: rustls for `wss://` (the configuration made once), plain TCP
    /// otherwise.
    fn connector(&mut self, url: &url::Url) -> Result<tokio_tungstenite::Connector, PushError> {
        if url.scheme() != "wss" {
            return Ok(tokio_tungstenite::Connector::Plain);
        }
        if let Some(config) = &self.tls {
            return Ok(tokio_tungstenite::Connector::Rustls(config.clone()));
        }
        let config = Arc::new(tls_config(&self.config.extra_roots)?);
        self.tls = Some(config.clone());
        Ok(tokio_tungstenite::Connector::Rustls(config))
    }

    async fn attempt(&mut self) -> Attempt {
        let base = self.config.server.trim_end_matches('/');
        let base = match base.split_once("://") {
            Some(("http", rest)) => format!("ws://{rest}"),
            Some(("https", rest)) => format!("wss://{rest}"),
            _ => base.to_owned(),
        };
        let mut url = match url::Url::parse(&format!("{base}/push/connect")) {
            Ok(url) => url,
            Err(err) => return Attempt::Refused(PushError::Config(err.to_string())),
        };
        for id in &self.config.registration_ids {
            url.query_pairs_mut().append_pair("registration_id", id);
        }
        let mut request = match url.as_str().into_client_request() {
            Ok(request) => request,
            Err(err) => return Attempt::Refused(PushError::Config(err.to_string())),
        };
        let auth =
            format!("AidLogin {}:{}", self.config.device_id, self.config.credential.expose());
        let Ok(value) = http::HeaderValue::from_str(&auth) else {
            return Attempt::Refused(PushError::Config("the credential is not header text".into()));
        };
        request.headers_mut().insert(http::header::AUTHORIZATION, value);
        let connector = match self.connector(&url) {
            Ok(connector) => connector,
            Err(err) => return Attempt::Refused(err),
        };
        // tungstenite zero-fills its whole read buffer before each read (128 KiB by default); a
        // device's frames are a few KiB at most, and a larger one grows the buffer.
        let settings =
            tungstenite::protocol::WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(settings),
            false,
            Some(connector),
        );
        match connecting.await {
            Ok((socket, _)) => Attempt::Connected(Box::new(socket)),
            Err(tungstenite::Error::Http(res)) => {
                let status = res.status().as_u16();
                let body = res.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                let body = body.trim_end().to_owned();
                if status == 429 || status >= 500 {
                    Attempt::Retry
                } else {
                    Attempt::Refused(PushError::Refused { status, body })
                }
            }
            Err(tungstenite::Error::Url(err)) => {
                Attempt::Refused(PushError::Config(err.to_string()))
            }
            Err(tungstenite::Error::Io(err)) => match refused_certificate(&err) {
                Some(reason) => Attempt::Refused(PushError::Certificate(reason)),
                None => Attempt::Retry,
            },
            Err(_) => Attempt::Retry,
        }
    }
}

/// rustls on aws-lc-rs with the platform's verifier (its roots, and `extra_roots` beside them),
/// speaking HTTP/1.1, which the WebSocket upgrade needs.
fn tls_config(extra_roots: &[Vec<u8>]) -> Result<rustls::ClientConfig, PushError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = extra_roots.iter().map(|der| rustls::pki_types::CertificateDer::from(der.clone()));
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider.clone())
            .map_err(|err| PushError::Config(format!("TLS roots: {err}")))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| PushError::Config(format!("TLS: {err}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The reason when a connection failed because the server's certificate was refused: a
/// configuration problem, not a network one, so it is reported instead of retried.
fn refused_certificate(err: &std::io::Error) -> Option<String> {
    let inner = err.get_ref()?.downcast_ref::<rustls::Error>()?;
    matches!(inner, rustls::Error::InvalidCertificate(_)).then(|| inner.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut config = ReceiverConfig::new("http://x", "1", Secret::from("s"), vec![]);
        config.backoff_initial = Duration::from_millis(100);
        config.backoff_max = Duration::from_secs(1);
        let mut receiver = Receiver::new(config);
        for (failures, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (40, 1000)] {
            receiver.failures = failures;
            let pause = receiver.backoff();
            let full = Duration::from_millis(full);
            assert!(pause >= full / 2 && pause <= full, "{failures}: {pause:?}");
        }
    }

    #[test]
    fn repeats_are_remembered_up_to_the_limit() {
        let mut seen = Seen::default();
        for id in ["a", "b", "a", "c"] {
            seen.insert(id, 2);
        }
        assert!(!seen.contains("a") && seen.contains("b") && seen.contains("c"));
    }

    #[test]
    fn frames_become_messages() {
        let frame = r#"{"collapse_key":null,"data":{"k":"v"},"from":"p1","message_id":"0:1%ab","notification":null,"registration_id":"APA91bx","type":"message"}"#;
        let message = PushMessage::parse(frame).unwrap();
        assert_eq!(message.message_id, "0:1%ab");
        assert_eq!(message.from.as_deref(), Some("p1"));
        assert_eq!(message.collapse_key, None);
        assert_eq!(message.data()["k"], "v");
        assert!(PushMessage::parse(r#"{"type":"pong"}"#).is_none());
        assert!(PushMessage::parse("nope").is_none());
    }
}
