//! Push wake-ups between nodes on PostgreSQL: `NOTIFY` on one channel (signals packed a few dozen
//! to a notification), and one `LISTEN`ing connection per node that hands every signal to the
//! node's registry. A node hands its own signals to its registry at once, and skips them when
//! they come back from PostgreSQL.
//!
//! The sending node has stored the message before it notifies, so a notification only says "look
//! again". Notifications are not kept while a listener is disconnected; after every (re)connect
//! the listener asks its registry to resync, so every connection reads the store again and nothing
//! sent during the gap waits longer than that.

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
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
    /// How this node's notifications begin (its random node id), so that its listener knows them.
    own: Arc<str>,
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
        // A random id (the standard library's hasher keys come from the system's randomness).
        let node = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        let own: Arc<str> = packed_prefix(&format!("{node:016x}")).into();
        let task = tokio::spawn(run(url.to_owned(), listener, sink.clone(), own.clone()));
        Ok(PgWakeup { pool, sink, own, listener: task })
    }
}

async fn listen(url: &str) -> std::result::Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(PUSH_CHANNEL).await?;
    Ok(listener)
}

/// The listener's life: hand over signals; after a lost connection (reconnected by the listener
/// itself, or anew here with a growing pause) resync every connection.
async fn run(url: String, mut listener: PgListener, sink: Arc<dyn PushSignalSink>, own: Arc<str>) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                backoff = BACKOFF_FIRST;
                // This node's own, handed to its registry when sent.
                if notification.payload().starts_with(&*own) {
                    continue;
                }
                match decode(notification.payload()) {
                    Some(signals) => sink.dispatch_all(&signals),
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

/// A signal as JSON: the registration digest (`r`); for a message just stored its id (`i`),
/// frame (`f`) and whether an idle device holds it (`h`); for a now-or-never message its frame and
/// whether an idle device drops it.
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    r: Cow<'a, str>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    i: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    f: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    h: Option<bool>,
}

/// A notification of packed signals: the sending node's id (`n`, first, so that a node knows its
/// own by their first bytes) and the signals (`s`).
#[derive(Deserialize)]
struct Packed<'a> {
    #[serde(borrow)]
    s: Vec<Wire<'a>>,
}

/// How a packed notification of node `node` begins.
fn packed_prefix(node: &str) -> String {
    format!(r#"{{"n":"{node}","s":["#)
}

fn encode(signal: &PushSignal) -> String {
    let wire = match signal {
        PushSignal::Stored { registration, message: None } => {
            Wire { r: registration.into(), i: None, f: None, h: None }
        }
        PushSignal::Stored { registration, message: Some(message) } => Wire {
            r: registration.into(),
            i: Some((&message.id).into()),
            f: Some((&message.frame).into()),
            h: Some(message.hold_while_idle),
        },
        PushSignal::Now { registration, frame, hold_while_idle } => Wire {
            r: registration.into(),
            i: None,
            f: Some(frame.into()),
            h: Some(*hold_while_idle),
        },
    };
    serde_json::to_string(&wire).unwrap_or_default()
}

/// Packs encoded signals into as few notification payloads as fit: each `prefix` (see
/// [`packed_prefix`]), the signals joined by commas, and `]}`, at most [`MAX_PAYLOAD`] bytes. A
/// multicast's signals then cost PostgreSQL and every listening node one notification per few
/// dozen recipients instead of one each.
fn pack(prefix: &str, encoded: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::new();
    for signal in encoded {
        if !current.is_empty() && current.len() + 1 + signal.len() + PACKED_END.len() > MAX_PAYLOAD
        {
            current.push_str(PACKED_END);
            payloads.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current.push_str(prefix);
        } else {
            current.push(',');
        }
        current.push_str(&signal);
    }
    if !current.is_empty() {
        current.push_str(PACKED_END);
        payloads.push(current);
    }
    payloads
}

const PACKED_END: &str = "]}";

/// The most a packed notification spends around its signals: its prefix with a node id of 16
/// characters, and its end.
const PACKING: usize = r#"{"n":"","s":["#.len() + 16 + PACKED_END.len();

/// The signals of a notification payload: packed ones, or one signal alone (as nodes sent before
/// signals were packed, so that nodes of both versions can share a database).
fn decode(payload: &str) -> Option<Vec<PushSignal>> {
    if payload.starts_with(r#"{"n":"#) {
        let packed: Packed<'_> = serde_json::from_str(payload).ok()?;
        packed.s.into_iter().map(signal_of).collect()
    } else {
        Some(vec![signal_of(serde_json::from_str(payload).ok()?)?])
    }
}

fn signal_of(wire: Wire<'_>) -> Option<PushSignal> {
    let registration = wire.r.into_owned();
    let Some(frame) = wire.f else {
        return Some(PushSignal::Stored { registration, message: None });
    };
    let frame = frame.into_owned();
    let hold_while_idle = wire.h?;
    Some(match wire.i {
        None => PushSignal::Now { registration, frame, hold_while_idle },
        Some(id) => PushSignal::Stored {
            registration,
            message: Some(StoredFrame { id: id.into_owned(), frame, hold_while_idle }),
        },
    })
}

#[async_trait::async_trait]
impl Wakeup for PgWakeup {
    async fn signal(&self, signal: &PushSignal) -> Result<()> {
        self.signal_many(std::slice::from_ref(signal)).await
    }

    /// Hands the signals to this node's registry, then notifies the other nodes: packed into as
    /// few notifications as fit, sent in one statement per [`NOTIFY_CHUNK`] notifications.
    async fn signal_many(&self, signals: &[PushSignal]) -> Result<()> {
        self.sink.dispatch_all(signals);
        let payloads = pack(&self.own, signals.iter().filter_map(payload));
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

/// The encoded signal for other nodes: a stored message's frame is left out when the signal would
/// not fit a notification (the connection reads it from the store); a now-or-never message that
/// large is not notified (it reached this node's connections alone).
fn payload(signal: &PushSignal) -> Option<String> {
    let payload = encode(signal);
    if payload.len() + PACKING <= MAX_PAYLOAD {
        return Some(payload);
    }
    match signal {
        PushSignal::Stored { registration, message: Some(_) } => {
            Some(encode(&PushSignal::Stored { registration: registration.clone(), message: None }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packed notification's beginning, for a node id of the usual length.
    const PREFIX: &str = r#"{"n":"0123456789abcdef","s":["#;

    #[test]
    fn the_packing_allowance_covers_a_node_s_prefix_and_end() {
        assert_eq!(packed_prefix("0123456789abcdef"), PREFIX);
        assert_eq!(PREFIX.len() + PACKED_END.len(), PACKING);
    }

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
            assert_eq!(decode(&pack(PREFIX, [encode(&signal)])[0]), Some(vec![signal]));
        }
        assert_eq!(decode(&pack(PREFIX, signals().iter().map(encode))[0]), Some(signals()));
        for bad in [
            "",
            "[",
            "{}",
            r#"{"r":1}"#,
            r#"{"r":"a","f":"x"}"#,
            r#"{"r":"a","f":1,"h":true}"#,
            r#"{"r":"a","i":1,"f":"x","h":true}"#,
            r#"{"n":"a","s":[{"r":"a"},{}]}"#,
            r#"{"n":"a","s":[{"r":"a"},1]}"#,
            r#"{"n":"a","s":{"r":"a"}}"#,
            r#"{"n":"a"}"#,
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert_eq!(decode(r#"{"n":"a","s":[]}"#), Some(vec![]));
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
                    frame: "x".repeat(if n == 500 { MAX_PAYLOAD - 90 } else { n * 7 % 900 }),
                    hold_while_idle: n.is_multiple_of(2),
                }),
            })
            .collect();
        let encoded: Vec<String> = many.iter().map(|it| payload(it).unwrap()).collect();
        assert_eq!(encoded[500], encode(&many[500]), "the largest still carries its frame");
        let payloads = pack(PREFIX, encoded);
        assert!(payloads.iter().all(|it| it.len() <= MAX_PAYLOAD && it.starts_with(PREFIX)));
        // Far fewer notifications than signals.
        assert!(payloads.len() < many.len() / 10, "{} payloads", payloads.len());
        let decoded: Vec<PushSignal> =
            payloads.iter().flat_map(|it| decode(it).expect("a packed payload decodes")).collect();
        assert_eq!(decoded, many);
        assert!(pack(PREFIX, Vec::<String>::new()).is_empty());
    }

    #[test]
    fn a_signal_too_large_to_notify_loses_its_frame_or_stays_on_its_node() {
        let frame = "x".repeat(MAX_PAYLOAD);
        let stored = PushSignal::Stored {
            registration: "abc".to_owned(),
            message: Some(StoredFrame {
                id: "m1".to_owned(),
                frame: frame.clone(),
                hold_while_idle: false,
            }),
        };
        assert_eq!(
            decode(&payload(&stored).unwrap()),
            Some(vec![PushSignal::Stored { registration: "abc".to_owned(), message: None }])
        );
        let now = PushSignal::Now { registration: "abc".to_owned(), frame, hold_while_idle: false };
        assert_eq!(payload(&now), None);
    }
}
