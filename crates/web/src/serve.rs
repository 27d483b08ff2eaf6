//! The HTTP/1 server loop: accepts connections under a global and a per-address cap, and closes
//! connections that take too long to send a request head or that sit idle between requests.
//!
//! A connection is in one of three phases, and a watchdog beside hyper's connection future
//! enforces the deadline of the phase it is in:
//! - waiting for its first request: the whole head must arrive within `header_read_timeout` of the
//!   accept (a socket that sends nothing, or a request line a byte at a time, is closed);
//! - a request in flight: bounded by the router's request timeout, not here;
//! - idle after a response (keep-alive): closed after `idle_timeout` without a byte, and once the
//!   next request's first byte arrives its head must be complete within `header_read_timeout`.
//!
//! Connections over either cap are closed as soon as they are accepted, so they neither wait in
//! the kernel's backlog nor hold a file descriptor.
//!
//! Two kinds of answer make a connection long-lived, and the watchdog leaves it alone from then on:
//! a `101 Switching Protocols` (a WebSocket: the socket is handed to the handler's task) and a
//! `text/event-stream` body (server-sent events). Only handlers that authenticated the request give
//! either answer, so the deadlines above still hold for everyone else; a long-lived connection's
//! own protocol decides when it is dead (push delivery pings and closes by the clock). It keeps
//! its place under both caps while it lasts, wherever its socket went, and ends when the server
//! stops: an event stream is closed with its connection, an upgraded socket reads end of stream
//! and a write it is blocked in fails (a device that does not read cannot hold up the stop).
//!
//! The watchdog costs nothing per request: requests and reads only note the time in atomics, and
//! the watchdog wakes at most every `min(header_read_timeout, idle_timeout)` to look. Every event
//! moves the deadline to at least that far after the event, so sleeping that long at most never
//! oversleeps a deadline.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;
use tower::ServiceExt as _;

/// How long accepting pauses after an error that is not about one connection (out of file
/// descriptors, out of memory), so that the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connection limits and timeouts of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// How long a client has to send a whole request head: from the accept for the first request,
    /// from its first byte for a request on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may wait for the next request's first byte.
    pub idle_timeout: Duration,
    /// Connections open at once; more are closed when accepted.
    pub max_connections: usize,
    /// Connections open at once from one IPv4 address or one IPv6 /64 network.
    pub max_connections_per_address: usize,
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, closes the
/// connections that have no request in flight, lets the others finish their request, and returns
/// once every connection has ended.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(AddressCounts::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; `recv` answers `None` once all of them are gone.
    let (done_tx, mut done_rx) = mpsc::channel::<Infallible>(1);
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) if is_about_one_connection(&err) => continue,
            Err(err) => {
                tracing::warn!(target: "tessera::http", error = %err, "accepting connections failed; pausing");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refuse(stream, peer, "max_connections");
            continue;
        };
        let Some(slot) = per_address.take(peer.ip(), limits.max_connections_per_address) else {
            refuse(stream, peer, "max_connections_per_address");
            continue;
        };
        let held = Held { _permit: permit, _slot: slot, _done: done_tx.clone() };
        metrics::gauge!("tessera_http_connections_open").increment(1.0);
        tokio::spawn(connection(stream, peer, app.clone(), limits, stop_rx.clone(), held));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_tx);
    let _ = done_rx.recv().await;
}

/// Errors of `accept` that concern only the connection being accepted.
fn is_about_one_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

fn refuse(stream: TcpStream, peer: SocketAddr, reason: &'static str) {
    drop(stream);
    metrics::counter!("tessera_http_connections_refused_total", "reason" => reason).increment(1);
    tracing::debug!(target: "tessera::http", %peer, reason, "connection refused");
}

/// What a connection holds while it is open: its share of both caps and of the shutdown wait.
struct Held {
    _permit: OwnedSemaphorePermit,
    _slot: AddressSlot,
    _done: mpsc::Sender<Infallible>,
}

impl Drop for Held {
    fn drop(&mut self) {
        metrics::gauge!("tessera_http_connections_open").decrement(1.0);
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
    held: Held,
) {
    let activity = Arc::new(Activity::new());
    let stopped = {
        let mut stop = stop.clone();
        Box::pin(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        })
    };
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
        stopped: Some(stopped),
        _held: held,
    });
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |req: hyper::Request<Incoming>| {
            let in_flight = activity.start_request();
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            let activity = activity.clone();
            async move {
                let res = app.oneshot(req).await;
                if let Ok(res) = &res
                    && is_long_lived(res)
                {
                    activity.long_lived.store(true, Relaxed);
                }
                drop(in_flight);
                res
            }
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io, service)
        .with_upgrades();
    let mut conn = pin!(conn);
    let look_every = limits.header_read_timeout.min(limits.idle_timeout);
    let watchdog = tokio::time::sleep_until(Instant::now());
    let mut watchdog = pin!(watchdog);
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = watchdog.as_mut() => {
                let now = Instant::now();
                let deadline = activity.deadline(&limits);
                if let Some((at, wait)) = deadline
                    && at <= now
                {
                    metrics::counter!("tessera_http_connections_closed_total", "reason" => wait.reason()).increment(1);
                    tracing::debug!(target: "tessera::http", %peer, reason = wait.reason(), "connection closed");
                    return;
                }
                let next = now + look_every;
                watchdog.as_mut().reset(deadline.map_or(next, |(at, _)| at.min(next)));
            }
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                if !activity.in_flight() {
                    return;
                }
                // Answers the request in flight, then closes.
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Whether an answer keeps its connection open beyond the watchdog: a switch to another protocol
/// (WebSocket) or an event stream.
fn is_long_lived(res: &http::Response<Body>) -> bool {
    res.status() == http::StatusCode::SWITCHING_PROTOCOLS
        || res
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|it| it.to_str().ok())
            .is_some_and(|it| it.starts_with("text/event-stream"))
}

/// What a connection without a request in flight is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// The rest of a request head.
    Header,
    /// The first byte of the next request on a kept-alive connection.
    Idle,
}

impl Wait {
    fn reason(self) -> &'static str {
        match self {
            Wait::Header => "header_read_timeout",
            Wait::Idle => "idle_timeout",
        }
    }
}

/// Where one connection is in its life, noted by its reader and its service and read by its
/// watchdog. All three run in the connection's one task, so the atomics are never contended;
/// times are nanoseconds since `origin`.
struct Activity {
    origin: Instant,
    in_flight: AtomicBool,
    /// Whether a request has been answered on this connection.
    answered: AtomicBool,
    /// The accept, or the end of the last request.
    waiting_since: AtomicU64,
    /// One more than the time of the first byte read since `waiting_since` once a request has been
    /// answered; 0 while there was none.
    first_byte: AtomicU64,
    /// An answer switched protocols or streams events: no deadline any more.
    long_lived: AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            in_flight: AtomicBool::new(false),
            answered: AtomicBool::new(false),
            waiting_since: AtomicU64::new(0),
            first_byte: AtomicU64::new(0),
            long_lived: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn at(&self, nanos: u64) -> Instant {
        self.origin + Duration::from_nanos(nanos)
    }

    fn in_flight(&self) -> bool {
        self.in_flight.load(Relaxed)
    }

    fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.store(true, Relaxed);
        InFlight(self.clone())
    }

    fn read_some(&self) {
        if self.answered.load(Relaxed)
            && !self.in_flight.load(Relaxed)
            && self.first_byte.load(Relaxed) == 0
        {
            self.first_byte.store(self.now().saturating_add(1), Relaxed);
        }
    }

    /// When the connection is to be closed unless something happens first, and why.
    fn deadline(&self, limits: &ConnLimits) -> Option<(Instant, Wait)> {
        if self.in_flight.load(Relaxed) || self.long_lived.load(Relaxed) {
            return None;
        }
        let waiting_since = self.at(self.waiting_since.load(Relaxed));
        if !self.answered.load(Relaxed) {
            return Some((waiting_since + limits.header_read_timeout, Wait::Header));
        }
        match self.first_byte.load(Relaxed) {
            0 => Some((waiting_since + limits.idle_timeout, Wait::Idle)),
            first_byte => {
                Some((self.at(first_byte - 1) + limits.header_read_timeout, Wait::Header))
            }
        }
    }
}

/// Marks a request in flight until it is answered (or its future is dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.waiting_since.store(activity.now(), Relaxed);
        activity.first_byte.store(0, Relaxed);
        activity.answered.store(true, Relaxed);
        activity.in_flight.store(false, Relaxed);
    }
}

/// The socket, telling the connection's [`Activity`] when bytes arrive. It holds the connection's
/// share of the caps, so an upgraded socket keeps it wherever it goes, and reads end of stream once
/// the server stops if its connection was long-lived (an upgraded socket has no other way to
/// learn it).
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    /// Resolves when the server stops; `None` once it has (a finished future is never polled again).
    stopped: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    _held: Held,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.long_lived_and_stopped(cx) {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        res
    }
}

impl Watched {
    /// Whether the connection is long-lived and the server stops: its reads then end and its
    /// blocked writes fail. A device that does not read would otherwise hold its handler in a
    /// write, and the server's stop with it.
    fn long_lived_and_stopped(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.activity.long_lived.load(Relaxed) {
            return false;
        }
        let Some(stopped) = self.stopped.as_mut() else { return true };
        if stopped.as_mut().poll(cx).is_ready() {
            self.stopped = None;
            return true;
        }
        false
    }
}

fn server_stopped() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the server stopped")
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.stream).poll_write(cx, buf);
        if res.is_pending() && self.long_lived_and_stopped(cx) {
            return Poll::Ready(Err(server_stopped()));
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if res.is_pending() && self.long_lived_and_stopped(cx) {
            return Poll::Ready(Err(server_stopped()));
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.stream).poll_flush(cx);
        if res.is_pending() && self.long_lived_and_stopped(cx) {
            return Poll::Ready(Err(server_stopped()));
        }
        res
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Open connections per address key.
#[derive(Default)]
struct AddressCounts(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in its address's count, given back when dropped.
struct AddressSlot {
    counts: Arc<AddressCounts>,
    key: IpAddr,
}

impl AddressCounts {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let key = address_key(ip);
        let mut counts = self.lock();
        let count = counts.entry(key).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot { counts: self.clone(), key })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// What the per-address cap counts by: an IPv4 address (also when written as an IPv4-mapped IPv6
/// address), or the /64 network of an IPv6 address, since one host usually has a whole /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Once the server stops, a long-lived socket reads end of stream every time it is read (the
    /// stop future, finished, is not polled again), and an ordinary one is left alone.
    #[tokio::test]
    async fn a_stopped_long_lived_socket_reads_end_of_stream_again_and_again() {
        use tokio::io::AsyncReadExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let (stop_tx, mut stop) = watch::channel(false);
        let (done, _done_rx) = mpsc::channel(1);
        let held = Held {
            _permit: Arc::new(tokio::sync::Semaphore::new(1)).try_acquire_owned().unwrap(),
            _slot: Arc::new(AddressCounts::default()).take(peer.ip(), 1).unwrap(),
            _done: done,
        };
        let activity = Arc::new(Activity::new());
        let mut socket = Watched {
            stream,
            activity: activity.clone(),
            stopped: Some(Box::pin(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            })),
            _held: held,
        };
        activity.long_lived.store(true, Relaxed);
        stop_tx.send(true).unwrap();
        let mut buf = [0u8; 8];
        for _ in 0..3 {
            assert_eq!(socket.read(&mut buf).await.unwrap(), 0);
        }
        assert!(socket.stopped.is_none());
    }

    #[test]
    fn addresses_are_counted_by_ipv4_address_or_ipv6_network() {
        let key = |text: &str| address_key(text.parse().unwrap());
        assert_eq!(key("192.0.2.7"), key("::ffff:192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn address_slots_count_and_give_back() {
        let counts = Arc::new(AddressCounts::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = counts.take(ip, 2).unwrap();
        let second = counts.take(ip, 2).unwrap();
        assert!(counts.take(ip, 2).is_none());
        assert!(counts.take("192.0.2.2".parse().unwrap(), 2).is_some());
        drop(first);
        let third = counts.take(ip, 2).unwrap();
        drop((second, third));
        assert!(counts.lock().is_empty(), "an address with no connection is forgotten");
    }

    #[test]
    fn deadlines_follow_the_phase() {
        let limits = ConnLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_connections: 1,
            max_connections_per_address: 1,
        };
        let activity = Arc::new(Activity::new());
        let accepted = activity.origin;
        assert_eq!(
            activity.deadline(&limits),
            Some((accepted + limits.header_read_timeout, Wait::Header))
        );
        activity.read_some();
        assert_eq!(
            activity.deadline(&limits),
            Some((accepted + limits.header_read_timeout, Wait::Header)),
            "the first request's bytes do not restart its clock"
        );
        let in_flight = activity.start_request();
        activity.read_some();
        assert_eq!(activity.deadline(&limits), None);
        drop(in_flight);
        let answered = activity.at(activity.waiting_since.load(Relaxed));
        assert!(answered >= accepted);
        assert_eq!(activity.deadline(&limits), Some((answered + limits.idle_timeout, Wait::Idle)));
        activity.read_some();
        let first_byte = activity.at(activity.first_byte.load(Relaxed) - 1);
        assert!(first_byte >= answered);
        assert_eq!(
            activity.deadline(&limits),
            Some((first_byte + limits.header_read_timeout, Wait::Header))
        );
        activity.read_some();
        assert_eq!(
            activity.deadline(&limits),
            Some((first_byte + limits.header_read_timeout, Wait::Header)),
            "later bytes of the same head do not restart its clock"
        );
    }
}
