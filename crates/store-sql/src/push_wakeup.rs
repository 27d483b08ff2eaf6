//! Push wake-ups between nodes on PostgreSQL: `NOTIFY` on one channel (signals packed a few dozen
//! to a notification), and one `LISTEN`ing connection per node that hands every signal to the
//! node's registry.
//!
//! The sending node has stored the message before it notifies, so a notification only says "look
//! again". Notifications are not kept while a listener is disconnected; after every (re)connect
//! the listener asks its registry to resync, so every connection reads the store again and nothing
//! sent during the gap waits longer than that.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tessera_store::{PushSignal, PushSignalSink, Result, StoreError, StoredFrame, Wakeup};

/// The notification channel.
pub const PUSH_CHANNEL: &str = "tessera_push";

/// The largest payload PostgreSQL takes (under 8000 bytes); a now-or-never frame too large for it
/// is handed to this node's connections only.
const MAX_PAYLOAD: usize = 7999;

/// Connections for `NOTIFY`; each send notifies once, after its commit.
const NOTIFY_CONNECTIONS: u32 = 4;

/// Waits between attempts to listen again after the listener failed.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The wake-up of nodes sharing one PostgreSQL database. Dropping it stops its listener.
pub struct PgWakeup {
    pool: PgPool,
    sink: Arc<dyn PushSignalSink>,
    listener: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for PgWakeup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWakeup").finish_non_exhaustive()
    }
}

impl Drop for PgWakeup {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn backend(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |err| StoreError::Backend(format!("{what}: {err}"))
}

impl PgWakeup {
    /// Connects to `url` (a `postgres://` URL), listens, and hands every signal from any node to
    /// `sink` from then on. Returns once the listener listens.
    pub async fn start(url: &str, sink: Arc<dyn PushSignalSink>) -> Result<PgWakeup> {
        let pool = PgPoolOptions::new()
            .max_connections(NOTIFY_CONNECTIONS)
            .connect(url)
            .await
            .map_err(backend("connect push notifier"))?;
        let listener = listen(url).await.map_err(backend("listen for push signals"))?;
        let task = tokio::spawn(run(url.to_owned(), listener, sink.clone()));
        Ok(PgWakeup { pool, sink, listener: task })
    }
}

async fn listen(url: &str) -> std::result::Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(PUSH_CHANNEL).await?;
    Ok(listener)
}

/// The listener's life: hand over signals; after a lost connection (reconnected by the listener
/// itself, or anew here with a growing pause) resync every connection.
async fn run(url: String, mut listener: PgListener, sink: Arc<dyn PushSignalSink>) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                backoff = BACKOFF_FIRST;
                match decode(notification.payload()) {
                    Some(signals) => {
                        for signal in signals {
                            sink.dispatch(signal);
                        }
                    }
                    None => tracing::warn!(target: "tessera::push", "unreadable push notification"),
                }
            }
            Ok(None) => {
                tracing::info!(target: "tessera::push", "push listener reconnected; resyncing");
                sink.resync();
            }
            Err(err) => {
                tracing::warn!(target: "tessera::push", error = %err, "push listener failed; listening again");
                loop {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    match listen(&url).await {
                        Ok(again) => {
                            listener = again;
                            break;
                        }
                        Err(err) => {
                            tracing::warn!(target: "tessera::push", error = %err, "push listener cannot listen");
                        }
                    }
                }
                sink.resync();
            }
        }
    }
}

/// A signal as JSON: the registration digest; for a message just stored its id (`i`), frame and
/// whether an idle device holds it; for a now-or-never message its frame and whether an idle
/// device drops it.
fn encode(signal: &PushSignal) -> String {
    match signal {
        PushSignal::Stored { registration, message: None } => {
            json!({ "r": registration }).to_string()
        }
        PushSignal::Stored { registration, message: Some(message) } => json!({
            "r": registration,
            "i": message.id,
            "f": message.frame,
            "h": message.hold_while_idle,
        })
        .to_string(),
        PushSignal::Now { registration, frame, hold_while_idle } => {
            json!({ "r": registration, "f": frame, "h": hold_while_idle }).to_string()
        }
    }
}

/// Packs encoded signals into as few notification payloads as fit: each a JSON array of
/// signals, at most [`MAX_PAYLOAD`] bytes. A multicast's signals then cost PostgreSQL and every
/// listening node one notification per few dozen recipients instead of one each.
fn pack(encoded: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::new();
    for signal in encoded {
        // `[` + signals joined by `,` + `]`.
        if !current.is_empty() && current.len() + 1 + signal.len() + 1 > MAX_PAYLOAD {
            current.push(']');
            payloads.push(std::mem::take(&mut current));
        }
        current.push(if current.is_empty() { '[' } else { ',' });
        current.push_str(&signal);
    }
    if !current.is_empty() {
        current.push(']');
        payloads.push(current);
    }
    payloads
}

/// The signals of a notification payload: an array of signals, or one signal alone (as nodes
/// sent before signals were packed, so that nodes of both versions can share a database).
fn decode(payload: &str) -> Option<Vec<PushSignal>> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    match value {
        serde_json::Value::Array(items) => items.iter().map(decode_one).collect(),
        one => Some(vec![decode_one(&one)?]),
    }
}

fn decode_one(value: &serde_json::Value) -> Option<PushSignal> {
    let registration = value.get("r")?.as_str()?.to_owned();
    let Some(frame) = value.get("f") else {
        return Some(PushSignal::Stored { registration, message: None });
    };
    let frame = frame.as_str()?.to_owned();
    let hold_while_idle = value.get("h")?.as_bool()?;
    Some(match value.get("i") {
        None => PushSignal::Now { registration, frame, hold_while_idle },
        Some(id) => PushSignal::Stored {
            registration,
            message: Some(StoredFrame { id: id.as_str()?.to_owned(), frame, hold_while_idle }),
        },
    })
}

#[async_trait::async_trait]
impl Wakeup for PgWakeup {
    async fn signal(&self, signal: &PushSignal) -> Result<()> {
        self.signal_many(std::slice::from_ref(signal)).await
    }

    /// Packs the signals into as few notifications as fit, sent in one statement per
    /// [`NOTIFY_CHUNK`] notifications.
    async fn signal_many(&self, signals: &[PushSignal]) -> Result<()> {
        let payloads = pack(signals.iter().filter_map(|signal| self.payload(signal)));
        for chunk in payloads.chunks(NOTIFY_CHUNK) {
            let values = (2..=chunk.len() + 1).map(|i| format!("(${i})")).collect::<Vec<_>>();
            let sql =
                format!("SELECT pg_notify($1, p) FROM (VALUES {}) AS v (p)", values.join(", "));
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(PUSH_CHANNEL);
            for payload in chunk {
                query = query.bind(payload.as_str());
            }
            query.execute(&self.pool).await.map_err(backend("notify push signal"))?;
        }
        Ok(())
    }
}

/// Notifications sent by one statement.
const NOTIFY_CHUNK: usize = 100;

impl PgWakeup {
    /// The notification payload of `signal`, or `None` when it is too large to notify and went to
    /// this node's own connections instead.
    fn payload(&self, signal: &PushSignal) -> Option<String> {
        let payload = encode(signal);
        // Room for the brackets of a payload that packs it alone.
        if payload.len() + 2 <= MAX_PAYLOAD {
            return Some(payload);
        }
        match signal {
            // A stored message's frame is left behind: the connection reads it from the store.
            PushSignal::Stored { registration, message: Some(_) } => {
                Some(encode(&PushSignal::Stored {
                    registration: registration.clone(),
                    message: None,
                }))
            }
            // A now-or-never frame is never stored, so it reaches the connections open on this
            // node alone.
            _ => {
                self.sink.dispatch(signal.clone());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals() -> Vec<PushSignal> {
        vec![
            PushSignal::Stored { registration: "abc".to_owned(), message: None },
            PushSignal::Stored {
                registration: "abc".to_owned(),
                message: Some(StoredFrame {
                    id: "m1".to_owned(),
                    frame: r#"{"type":"message"}"#.to_owned(),
                    hold_while_idle: true,
                }),
            },
            PushSignal::Now {
                registration: "abc".to_owned(),
                frame: r#"{"data":{"a":"\"1\""}}"#.to_owned(),
                hold_while_idle: true,
            },
        ]
    }

    #[test]
    fn signals_survive_the_payload() {
        for signal in signals() {
            // One alone, as an older node sends it, and packed.
            assert_eq!(decode(&encode(&signal)), Some(vec![signal.clone()]));
            assert_eq!(decode(&pack([encode(&signal)])[0]), Some(vec![signal]));
        }
        assert_eq!(decode(&pack(signals().iter().map(encode))[0]), Some(signals()));
        for bad in [
            "",
            "[",
            "{}",
            r#"{"r":1}"#,
            r#"{"r":"a","f":"x"}"#,
            r#"{"r":"a","f":1,"h":true}"#,
            r#"[{"r":"a"},{}]"#,
            r#"[{"r":"a"},1]"#,
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert_eq!(decode("[]"), Some(vec![]));
    }

    #[test]
    fn packed_payloads_fit_a_notification_and_keep_every_signal_in_order() {
        // A multicast's worth of signals with frames of varied lengths, up to one that fills a
        // payload alone.
        let many: Vec<PushSignal> = (0..1000)
            .map(|n| PushSignal::Stored {
                registration: format!("registration-{n}"),
                message: Some(StoredFrame {
                    id: format!("m{n}"),
                    frame: "x".repeat(if n == 500 { MAX_PAYLOAD - 60 } else { n * 7 % 900 }),
                    hold_while_idle: n.is_multiple_of(2),
                }),
            })
            .collect();
        let encoded: Vec<String> = many.iter().map(encode).collect();
        assert!(encoded.iter().all(|it| it.len() + 2 <= MAX_PAYLOAD));
        let payloads = pack(encoded);
        assert!(payloads.iter().all(|it| it.len() <= MAX_PAYLOAD));
        // Far fewer notifications than signals.
        assert!(payloads.len() < many.len() / 10, "{} payloads", payloads.len());
        let decoded: Vec<PushSignal> =
            payloads.iter().flat_map(|it| decode(it).expect("a packed payload decodes")).collect();
        assert_eq!(decoded, many);
        assert!(pack(Vec::<String>::new()).is_empty());
    }
}
