//! The `push` section: push delivery to many connected devices.
//!
//! tessera is seeded with N push devices (`admin dev seed --push-devices N`: install credentials,
//! each with the bench app registered for the bench project, and a push API key of that project)
//! and started with the per-minute push quotas off and room for N connections from one address.
//! The load generator opens one WebSocket (`GET /push/connect`) per device, one task each, and
//! acknowledges every message frame it receives. Then:
//!
//! - **memory per connected device**: the server's RSS with the N connections open minus its RSS
//!   before they were opened, divided by N; and, to tell memory that grows with devices from memory
//!   that is spent once (caches filling, the first connections' thread-local state), the same over
//!   the second half of the connections alone (the RSS with N open minus the RSS with N/2 open);
//! - **latency at a fixed rate**: multicasts of [`PACED_IDS`] ids every [`PACED_EVERY`] (5,000
//!   messages a second), each message carrying the instant its request was about to be written;
//!   a receiver takes send→deliver from it when the frame arrives (one clock: one process);
//! - the same at 1,000 messages a second ([`LIGHT_IDS`] a tick), to tell the delivery path's
//!   latency from queueing where the server does not keep up with the target rate;
//! - **throughput**: [`SENDERS`] connections post multicasts of up to 1000 ids back to back for the
//!   phase's length ([`FLOOD_IDS`] ids each); delivered frames per second over that window, and
//!   the share of recipients answered with a message id.
//!
//! Each phase is bounded by its length and by a multicast count, then waits (bounded) for the
//! frames still on their way; the connections close when the section ends.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::http;
use super::procs;
use super::stats;

/// Messages per second of the latency phase.
pub(crate) const PACED_RATE: u64 = 5_000;
/// Recipients of each multicast of the latency phase.
pub(crate) const PACED_IDS: usize = 100;
/// The latency phase's pace: [`PACED_IDS`] every this long is [`PACED_RATE`] a second.
pub(crate) const PACED_EVERY: Duration = Duration::from_millis(20);
/// Sender connections of the throughput phase, each posting multicasts back to back.
pub(crate) const SENDERS: usize = 4;
/// Recipients of each multicast of the throughput phase: GCM's most (a body of about 74 KiB with
/// tessera's registration ids, within `/gcm/send`'s 128 KiB limit).
pub(crate) const FLOOD_IDS: usize = 1000;
/// Recipients of each multicast of the second, lighter paced phase (1,000 messages a second):
/// latency where the server keeps up, beside the target rate's.
pub(crate) const LIGHT_IDS: usize = 20;
/// WebSocket handshakes in flight at once while connecting the devices.
const CONNECTING: usize = 64;

/// The targets of issue 15.
pub(crate) const BYTES_PER_DEVICE_GOAL: f64 = 4096.0;
pub(crate) const DELIVERED_PER_SEC_GOAL: f64 = 20_000.0;
pub(crate) const P99_GOAL_US: u32 = 50_000;

/// Why the report has no other push server beside tessera.
pub(crate) const COMPARISON: &str = "No other self-hosted push server ran side by side: the ntfy and \
Gotify servers are not packaged in the registries this harness installs from (the `ntfy` packages \
on npm and PyPI are clients that send to a server), and the one broker that is (Debian's \
Mosquitto) speaks MQTT, with no stored, acknowledged per-device messages to compare with.";

/// Sizes and lengths of the section in one mode.
#[derive(Clone, Debug)]
pub(crate) struct PushMode {
    pub(crate) devices: u64,
    pub(crate) phase: Duration,
    /// The longest a phase waits for the frames still on their way after its last send.
    pub(crate) drain: Duration,
    /// The most multicasts one phase sends.
    pub(crate) max_multicasts: u64,
    pub(crate) connect_timeout: Duration,
}

impl PushMode {
    pub(crate) fn new(quick: bool) -> PushMode {
        if quick {
            PushMode {
                devices: 1_000,
                phase: Duration::from_secs(2),
                drain: Duration::from_secs(5),
                max_multicasts: 20_000,
                connect_timeout: Duration::from_secs(60),
            }
        } else {
            PushMode {
                devices: 10_000,
                phase: Duration::from_secs(10),
                drain: Duration::from_secs(10),
                max_multicasts: 200_000,
                connect_timeout: Duration::from_secs(180),
            }
        }
    }
}

/// The `push` part of the `admin dev seed` output.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct PushSeed {
    pub(crate) api_key: String,
    pub(crate) devices: Vec<PushDevice>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct PushDevice {
    pub(crate) device: String,
    pub(crate) credential: String,
    pub(crate) registration_id: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct PushReport {
    pub(crate) backend: String,
    pub(crate) devices: u64,
    pub(crate) seed_s: f64,
    /// Connections open when measuring.
    pub(crate) connected: u64,
    pub(crate) connect_s: f64,
    pub(crate) rss_before_bytes: Option<u64>,
    pub(crate) rss_connected_bytes: Option<u64>,
    pub(crate) bytes_per_device: Option<f64>,
    /// RSS with the first half of the connections open.
    pub(crate) rss_half_bytes: Option<u64>,
    /// Per connection of the second half: what each further device costs.
    pub(crate) bytes_per_further_device: Option<f64>,
    pub(crate) latency: Option<Phase>,
    /// The same at [`LIGHT_IDS`] recipients a tick.
    pub(crate) latency_light: Option<Phase>,
    pub(crate) throughput: Option<Phase>,
    /// Connections that closed or failed before the section ended.
    pub(crate) dropped_connections: u64,
    /// What the figures can be compared with (another push server run side by side), or why
    /// there is no such comparison.
    pub(crate) comparison: String,
}

/// One sending phase.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Phase {
    /// How long the sender sent.
    pub(crate) duration_s: f64,
    pub(crate) multicasts: u64,
    /// Recipients named in all multicasts.
    pub(crate) recipients: u64,
    /// Recipients answered with a message id.
    pub(crate) accepted: u64,
    /// Multicasts answered other than 200, or not answered.
    pub(crate) failed_requests: u64,
    /// The first of those failures.
    pub(crate) first_error: Option<String>,
    /// Message frames received while the sender sent.
    pub(crate) delivered_in_window: u64,
    /// Message frames received in all (the window and the drain after it).
    pub(crate) delivered: u64,
    /// Frames received per second while the sender sent.
    pub(crate) delivered_per_sec: f64,
    pub(crate) p50_us: Option<u32>,
    pub(crate) p99_us: Option<u32>,
    pub(crate) max_us: Option<u32>,
    /// The server's CPU time (user + system) per delivered message, over the window.
    pub(crate) server_cpu_us_per_message: Option<f64>,
    /// The load generator's CPU time per delivered message (devices and sender), over the window.
    pub(crate) loadgen_cpu_us_per_message: Option<f64>,
}

impl Phase {
    pub(crate) fn accepted_share(&self) -> Option<f64> {
        stats::ratio(self.accepted as f64, self.recipients as f64)
    }
}

/// What the device tasks share: counters, and the latencies of the paced phase.
struct Devices {
    base: Instant,
    delivered: AtomicU64,
    dropped: AtomicU64,
    latencies: Mutex<Vec<u32>>,
}

impl Devices {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Counts a message frame, records its latency when it is the paced phase's, and answers the
    /// acknowledgement to send. The frame is read into borrowed fields, not a JSON tree: this
    /// runs for every message on the cores the server shares.
    fn received(&self, frame: &str) -> Option<String> {
        let frame: Frame<'_> = serde_json::from_str(frame).ok()?;
        if frame.kind != "message" {
            return None;
        }
        let id = serde_json::to_string(&frame.message_id?).ok()?;
        let ack = format!(r#"{{"type":"ack","message_id":{id}}}"#);
        let data = frame.data.unwrap_or_default();
        if let Some(sent) = data.t.and_then(|t| t.parse::<u64>().ok()) {
            self.delivered.fetch_add(1, Ordering::Relaxed);
            if data.p.as_deref() == Some("l") {
                let us = self.now_ns().saturating_sub(sent) / 1000;
                if let Ok(mut all) = self.latencies.lock() {
                    all.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
        }
        Some(ack)
    }
}

/// What the load generator reads of a frame: its type, its message id, and the phase (`p`) and
/// send instant (`t`) the harness put in its data.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    message_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<FrameData<'a>>,
}

#[derive(Deserialize, Default)]
struct FrameData<'a> {
    #[serde(borrow, default)]
    p: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    t: Option<Cow<'a, str>>,
}

/// Where the section's load goes: the node the devices connect to, the node the sender posts to
/// (the same one on SQLite; the other of two on PostgreSQL), and every node's process id (their
/// CPU time is summed; the memory per device is the devices' node's).
pub(crate) struct Nodes {
    pub(crate) devices: SocketAddr,
    pub(crate) devices_pid: u32,
    pub(crate) sender: SocketAddr,
    pub(crate) pids: Vec<u32>,
}

/// Runs the section against started servers.
pub(crate) async fn measure(
    nodes: &Nodes,
    seed: &PushSeed,
    mode: &PushMode,
    report: &mut PushReport,
    say: &dyn Fn(&str),
) -> anyhow::Result<()> {
    let devices = Arc::new(Devices {
        base: Instant::now(),
        delivered: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        latencies: Mutex::new(Vec::new()),
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    report.rss_before_bytes = procs::rss_bytes(nodes.devices_pid);
    let (stop_tx, stop_rx) = watch::channel(false);
    say(&format!("push: connecting {} devices", seed.devices.len()));
    let started = Instant::now();
    // Half of the devices, then the other half: the RSS between tells what each further device
    // costs from what the first connections spend once.
    let connect = async |part: &[PushDevice]| {
        let opened =
            connect_all(nodes.devices, part, &devices, &stop_rx, mode.connect_timeout).await;
        if opened.is_err() {
            let _ = stop_tx.send(true);
        }
        opened
    };
    let (first, second) = seed.devices.split_at(seed.devices.len() / 2);
    let mut tasks = connect(first).await?;
    let half = tasks.len() as u64;
    tokio::time::sleep(Duration::from_millis(500)).await;
    report.rss_half_bytes = procs::rss_bytes(nodes.devices_pid);
    tasks.extend(connect(second).await?);
    report.connect_s = started.elapsed().as_secs_f64();
    report.connected = tasks.len() as u64;
    tokio::time::sleep(Duration::from_millis(500)).await;
    report.rss_connected_bytes = procs::rss_bytes(nodes.devices_pid);
    if let (Some(before), Some(after)) = (report.rss_before_bytes, report.rss_connected_bytes) {
        report.bytes_per_device =
            Some(after.saturating_sub(before) as f64 / report.connected.max(1) as f64);
    }
    if let (Some(at_half), Some(after)) = (report.rss_half_bytes, report.rss_connected_bytes) {
        let further = report.connected.saturating_sub(half).max(1);
        report.bytes_per_further_device =
            Some(after.saturating_sub(at_half) as f64 / further as f64);
    }

    let ids: Vec<String> = seed.devices.iter().map(|d| d.registration_id.clone()).collect();
    say("push: latency at 5,000 messages/s");
    report.latency = Some(paced(nodes, &seed.api_key, &ids, &devices, mode, PACED_IDS).await);
    say("push: latency at 1,000 messages/s");
    report.latency_light = Some(paced(nodes, &seed.api_key, &ids, &devices, mode, LIGHT_IDS).await);
    say("push: throughput");
    report.throughput = Some(flood(nodes, &seed.api_key, &ids, &devices, mode).await);
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    report.dropped_connections = devices.dropped.load(Ordering::Relaxed);
    Ok(())
}

/// Opens one WebSocket per device, [`CONNECTING`] handshakes at a time, and starts its task.
async fn connect_all(
    addr: SocketAddr,
    seed: &[PushDevice],
    devices: &Arc<Devices>,
    stop: &watch::Receiver<bool>,
    limit: Duration,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let mut handshakes = Vec::with_capacity(seed.len());
    for device in seed {
        let url = format!("ws://{addr}/push/connect?registration_id={}", device.registration_id);
        let mut request = url.into_client_request().context("the connect URL")?;
        let authorization = format!("AidLogin {}:{}", device.device, device.credential);
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&authorization).context("the device's credential")?,
        );
        let gate = Arc::clone(&gate);
        handshakes.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            match tokio_tungstenite::connect_async_with_config(
                request,
                Some(socket_config()),
                false,
            )
            .await
            {
                Ok((ws, _)) => Ok(ws),
                Err(e) => Err(e.to_string()),
            }
        }));
    }
    let deadline = Instant::now() + limit;
    let mut tasks = Vec::with_capacity(handshakes.len());
    let mut first_error = None;
    let mut failed = 0u64;
    for handshake in handshakes {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, handshake).await {
            Ok(Ok(Ok(ws))) => {
                tasks.push(tokio::spawn(device_task(ws, Arc::clone(devices), stop.clone())));
            }
            Ok(Ok(Err(e))) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
            Err(_) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("not connected within {limit:?}"));
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} device connections failed (first: {})",
            seed.len(),
            first_error.unwrap_or_default()
        );
    }
    Ok(tasks)
}

/// A device socket's settings. tungstenite zero-fills its whole read buffer before every read (128
/// KiB by default), which for 10,000 sockets reading a frame of a few hundred bytes at a time was
/// about a tenth of the machine's CPU in the throughput phase; the frames fit a few KiB.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(DEVICE_READ_BUFFER)
}

/// A device socket's read buffer.
const DEVICE_READ_BUFFER: usize = 4096;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One device: reads frames until told to stop, acknowledging every message.
async fn device_task(mut ws: Socket, devices: Arc<Devices>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if let Some(ack) = devices.received(text.as_str())
                        && ws.send(Message::text(ack)).await.is_err()
                    {
                        devices.dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    devices.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = ws.close(None).await;
}

/// The JSON array of each chunk of `ids` (`size` ids each), made once.
fn chunks(ids: &[String], size: usize) -> Vec<String> {
    ids.chunks(size.max(1)).map(|c| serde_json::to_string(c).unwrap_or_default()).collect()
}

/// Posts one multicast to the ids of `ids_json` (a JSON array); the message's data carries the
/// phase and the instant the request is written. Answers the recipients accepted.
async fn multicast(
    conn: &mut http::Conn,
    host: &str,
    authorization: &(String, String),
    ids_json: &str,
    phase: &str,
    devices: &Devices,
) -> Result<u64, String> {
    let sent = devices.now_ns();
    let body =
        format!(r#"{{"data":{{"p":"{phase}","t":"{sent}"}},"registration_ids":{ids_json}}}"#);
    let request = http::request(
        "POST",
        "/gcm/send",
        host,
        std::slice::from_ref(authorization),
        Some(("application/json", body.as_bytes())),
    );
    let response = conn.send(&request).await.map_err(|e| format!("{e:?}"))?;
    if response.status != 200 {
        return Err(format!("/gcm/send answered {}: {}", response.status, response.snippet()));
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&response.body).map_err(|e| format!("the answer: {e}"))?;
    Ok(answer["success"].as_u64().unwrap_or(0))
}

/// Counters of one phase's senders.
#[derive(Default)]
struct Sent {
    multicasts: AtomicU64,
    recipients: AtomicU64,
    accepted: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Sent {
    fn failed(&self, error: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(error);
        }
    }
}

/// CPU ticks of the server and of this process.
type Ticks = (Option<u64>, Option<u64>);

fn ticks(pids: &[u32]) -> Ticks {
    (procs::cpu_ticks_sum(pids), procs::cpu_ticks(std::process::id()))
}

/// Waits (bounded by the mode's drain) until the devices have received `expected` frames.
async fn drain(devices: &Devices, expected: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while devices.delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fills a phase's figures from its counters and the CPU ticks around its window.
fn finish(
    sent: &Sent,
    window: Duration,
    delivered_in_window: u64,
    delivered: u64,
    cpu: (Ticks, Ticks),
) -> Phase {
    let per_message = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if delivered_in_window > 0 => {
            Some(b.saturating_sub(a) as f64 * procs::tick_us() / delivered_in_window as f64)
        }
        _ => None,
    };
    let ((server_a, gen_a), (server_b, gen_b)) = cpu;
    Phase {
        duration_s: window.as_secs_f64(),
        multicasts: sent.multicasts.load(Ordering::Relaxed),
        recipients: sent.recipients.load(Ordering::Relaxed),
        accepted: sent.accepted.load(Ordering::Relaxed),
        failed_requests: sent.failed.load(Ordering::Relaxed),
        first_error: sent.first_error.lock().ok().and_then(|e| e.clone()),
        delivered_in_window,
        delivered,
        delivered_per_sec: delivered_in_window as f64 / window.as_secs_f64().max(1e-9),
        server_cpu_us_per_message: per_message(server_a, server_b),
        loadgen_cpu_us_per_message: per_message(gen_a, gen_b),
        ..Phase::default()
    }
}

/// A latency phase: `per_tick` recipients every [`PACED_EVERY`], one request after another
/// on one connection per tick in flight (a slow answer does not hold the next tick back).
async fn paced(
    nodes: &Nodes,
    key: &str,
    ids: &[String],
    devices: &Arc<Devices>,
    mode: &PushMode,
    per_tick: usize,
) -> Phase {
    let addr = nodes.sender;
    let chunks = Arc::new(chunks(ids, per_tick));
    let sizes: Vec<u64> = ids.chunks(per_tick).map(|c| c.len() as u64).collect();
    let sent = Arc::new(Sent::default());
    let authorization = ("authorization".to_owned(), format!("key={key}"));
    let host = addr.to_string();
    if let Ok(mut all) = devices.latencies.lock() {
        all.clear();
    }
    let delivered_before = devices.delivered.load(Ordering::Relaxed);
    let cpu_before = ticks(&nodes.pids);
    let started = Instant::now();
    let mut pace = tokio::time::interval(PACED_EVERY);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    // Idle connections, reused by the ticks; a tick whose request is still out takes a new one.
    let pool: Arc<Mutex<Vec<http::Conn>>> = Arc::new(Mutex::new(Vec::new()));
    let mut inflight = Vec::new();
    let mut n = 0usize;
    while started.elapsed() < mode.phase && (n as u64) < mode.max_multicasts {
        pace.tick().await;
        let chunk = n % chunks.len().max(1);
        n += 1;
        let (chunks, sent, pool, devices) =
            (Arc::clone(&chunks), Arc::clone(&sent), Arc::clone(&pool), Arc::clone(devices));
        let (authorization, host, size) = (authorization.clone(), host.clone(), sizes[chunk]);
        inflight.push(tokio::spawn(async move {
            let taken = pool.lock().ok().and_then(|mut p| p.pop());
            let mut conn = taken.unwrap_or_else(|| http::Conn::new(addr));
            sent.multicasts.fetch_add(1, Ordering::Relaxed);
            sent.recipients.fetch_add(size, Ordering::Relaxed);
            match multicast(&mut conn, &host, &authorization, &chunks[chunk], "l", &devices).await {
                Ok(accepted) => {
                    sent.accepted.fetch_add(accepted, Ordering::Relaxed);
                }
                Err(e) => sent.failed(e),
            }
            if let Ok(mut p) = pool.lock() {
                p.push(conn);
            }
        }));
        inflight.retain(|t: &tokio::task::JoinHandle<()>| !t.is_finished());
    }
    for task in inflight {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    let window = started.elapsed();
    let cpu_after = ticks(&nodes.pids);
    let in_window = devices.delivered.load(Ordering::Relaxed) - delivered_before;
    let accepted = sent.accepted.load(Ordering::Relaxed);
    drain(devices, delivered_before + accepted, mode.drain).await;
    let delivered = devices.delivered.load(Ordering::Relaxed) - delivered_before;
    let mut phase = finish(&sent, window, in_window, delivered, (cpu_before, cpu_after));
    let mut latencies = devices.latencies.lock().map(|l| l.clone()).unwrap_or_default();
    latencies.sort_unstable();
    phase.p50_us = stats::percentile(&latencies, 50.0);
    phase.p99_us = stats::percentile(&latencies, 99.0);
    phase.max_us = latencies.last().copied();
    phase
}

/// The throughput phase: [`SENDERS`] connections post multicasts of up to [`FLOOD_IDS`] ids
/// back to back until the phase's length or multicast count is reached.
async fn flood(
    nodes: &Nodes,
    key: &str,
    ids: &[String],
    devices: &Arc<Devices>,
    mode: &PushMode,
) -> Phase {
    let addr = nodes.sender;
    let chunks = Arc::new(chunks(ids, FLOOD_IDS));
    let sizes: Arc<Vec<u64>> = Arc::new(ids.chunks(FLOOD_IDS).map(|c| c.len() as u64).collect());
    let sent = Arc::new(Sent::default());
    let next = Arc::new(AtomicU64::new(0));
    let authorization = ("authorization".to_owned(), format!("key={key}"));
    let delivered_before = devices.delivered.load(Ordering::Relaxed);
    let cpu_before = ticks(&nodes.pids);
    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (chunks, sizes, sent, next, devices) = (
            Arc::clone(&chunks),
            Arc::clone(&sizes),
            Arc::clone(&sent),
            Arc::clone(&next),
            Arc::clone(devices),
        );
        let (authorization, phase, max) = (authorization.clone(), mode.phase, mode.max_multicasts);
        senders.push(tokio::spawn(async move {
            let mut conn = http::Conn::new(addr);
            let host = addr.to_string();
            while started.elapsed() < phase {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= max {
                    break;
                }
                let chunk = (n as usize) % chunks.len().max(1);
                sent.multicasts.fetch_add(1, Ordering::Relaxed);
                sent.recipients.fetch_add(sizes[chunk], Ordering::Relaxed);
                match multicast(&mut conn, &host, &authorization, &chunks[chunk], "t", &devices)
                    .await
                {
                    Ok(accepted) => {
                        sent.accepted.fetch_add(accepted, Ordering::Relaxed);
                    }
                    Err(e) => {
                        sent.failed(e);
                        conn.reset();
                    }
                }
            }
        }));
    }
    for task in senders {
        let _ = tokio::time::timeout(mode.phase + Duration::from_secs(30), task).await;
    }
    let window = started.elapsed();
    let cpu_after = ticks(&nodes.pids);
    let in_window = devices.delivered.load(Ordering::Relaxed) - delivered_before;
    drain(devices, delivered_before + sent.accepted.load(Ordering::Relaxed), mode.drain).await;
    let delivered = devices.delivered.load(Ordering::Relaxed) - delivered_before;
    finish(&sent, window, in_window, delivered, (cpu_before, cpu_after))
}

/// The soft limit on open files of this process (which the server inherits), from
/// `/proc/self/limits`; `None` when unlimited or unknown.
pub(crate) fn open_file_limit() -> Option<u64> {
    parse_open_file_limit(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

fn parse_open_file_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// Open files each side needs for `devices` connections, with room for everything else.
pub(crate) fn files_needed(devices: u64) -> u64 {
    devices + 512
}

/// Reads the `push` part of a seed file.
pub(crate) fn read_seed(path: &Path) -> anyhow::Result<PushSeed> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    let push = value.get("push").filter(|p| !p.is_null()).with_context(|| {
        format!(
            "{} has no `push` fixtures (a tessera build without `--push-devices`)",
            path.display()
        )
    })?;
    Ok(serde_json::from_value(push.clone())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices() -> Devices {
        Devices {
            base: Instant::now(),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            latencies: Mutex::new(Vec::new()),
        }
    }

    #[test]
    fn message_frames_are_counted_acknowledged_and_timed() {
        let d = devices();
        let frame = r#"{"data":{"p":"l","t":"0"},"from":"p","message_id":"0:1%ab","registration_id":"APA91bx","type":"message"}"#;
        let ack = d.received(frame).expect("an ack");
        let ack: serde_json::Value = serde_json::from_str(&ack).expect("json");
        assert_eq!(ack, serde_json::json!({"type": "ack", "message_id": "0:1%ab"}));
        assert_eq!(d.delivered.load(Ordering::Relaxed), 1);
        assert_eq!(d.latencies.lock().expect("lock").len(), 1);
        // The throughput phase's messages are counted, not timed.
        let frame = r#"{"data":{"p":"t","t":"5"},"message_id":"m2","type":"message"}"#;
        assert!(d.received(frame).is_some());
        assert_eq!(d.delivered.load(Ordering::Relaxed), 2);
        assert_eq!(d.latencies.lock().expect("lock").len(), 1);
        // A deleted_messages notice is acknowledged but is no delivered message; a pong is
        // neither.
        let notice = r#"{"message_id":"m3","message_type":"deleted_messages","total_deleted":"3","type":"message"}"#;
        assert!(d.received(notice).is_some());
        assert!(d.received(r#"{"type":"pong"}"#).is_none());
        assert!(d.received("not json").is_none());
        assert_eq!(d.delivered.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn id_chunks_are_json_arrays_of_at_most_the_size() {
        let ids: Vec<String> = (0..2500).map(|i| format!("APA91b{i}")).collect();
        let c = chunks(&ids, 1000);
        assert_eq!(c.len(), 3);
        let last: Vec<String> = serde_json::from_str(&c[2]).expect("json");
        assert_eq!((last.len(), last[0].as_str()), (500, "APA91b2000"));
        assert_eq!(PACED_IDS as f64 / PACED_EVERY.as_secs_f64(), PACED_RATE as f64);
    }

    #[test]
    fn the_open_file_limit_is_read_from_proc() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_file_limit(limits), Some(1024));
        assert_eq!(parse_open_file_limit("Max open files  unlimited unlimited files"), None);
        assert!(files_needed(10_000) > 10_000);
    }

    #[test]
    fn a_phase_reports_rates_and_shares() {
        let sent = Sent::default();
        sent.recipients.store(1000, Ordering::Relaxed);
        sent.accepted.store(990, Ordering::Relaxed);
        let phase = finish(
            &sent,
            Duration::from_secs(2),
            800,
            990,
            ((Some(0), Some(0)), (Some(100), None)),
        );
        assert_eq!(phase.delivered_per_sec, 400.0);
        assert_eq!(phase.accepted_share(), Some(0.99));
        let per = phase.server_cpu_us_per_message.expect("server cpu");
        assert!((per - 100.0 * procs::tick_us() / 800.0).abs() < 1e-6);
        assert_eq!(phase.loadgen_cpu_us_per_message, None);
    }
}
