//! Delivery to connected devices, whatever carries the frames (the web layer's WebSocket or
//! server-sent events): the node's connection registry, the wake-up signal between nodes, and one
//! [`Connection`] per connected device that decides which frames go out.
//!
//! The store is the truth: a message is stored before anyone is woken, and a message leaves the
//! store only when the device acknowledges it. A wake-up says "look again", or carries the message
//! just stored so that the connection sends it without reading it back; a lost one delays a
//! message until the next wake-up, acknowledgement timeout or reconnect, and never loses it. Delivery is at least once: a message not acknowledged within
//! [`DeliveryPolicy::ack_timeout_secs`] is sent again, and every reconnect sends again everything
//! stored; the message id lets the device drop a repeat.
//!
//! Time comes from the `Ctx` clock only: the transport calls [`Connection::tick`] now and then,
//! and the connection decides from the clock whether to ping, close or resend.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tessera_proto_push::frames::{DeviceFrame, PONG, message_frame};
use tessera_store::{PushMessageRecord, PushSignal, PushSignalSink, StoredFrame, Wakeup};
use tokio::sync::Notify;

use super::{Device, Lookup};
use crate::credentials::Recurrence;
use crate::{Ctx, Result};

/// The limits of the delivery connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Connections one device may hold at once (on this node).
    pub max_connections_per_device: u32,
    /// Registration ids one connection may carry.
    pub max_registrations: usize,
    /// A delivered message not acknowledged within this is sent again.
    pub ack_timeout_secs: i64,
    /// The server pings a connection that has been quiet this long.
    pub ping_interval_secs: i64,
    /// A connection the device has not been heard on for this long is closed.
    pub dead_after_secs: i64,
    /// The largest frame a device may send.
    pub max_frame_bytes: usize,
    /// Stored messages read per registration and delivery.
    pub batch: u32,
    /// Now-or-never frames queued for one connection before more are dropped.
    pub max_queued_now: usize,
}

impl Default for DeliveryPolicy {
    fn default() -> DeliveryPolicy {
        DeliveryPolicy {
            max_connections_per_device: 4,
            max_registrations: 100,
            ack_timeout_secs: 60,
            ping_interval_secs: 30,
            dead_after_secs: 90,
            max_frame_bytes: 4096,
            batch: 100,
            max_queued_now: 64,
        }
    }
}

/// What one connection has been signalled and not yet looked at.
#[derive(Debug, Default)]
struct Signals {
    /// Registrations (digests) with newly stored messages to read.
    stored: HashSet<String>,
    /// Messages just stored, carried by their wake-up: registration digest and the message.
    fresh: VecDeque<(String, StoredFrame)>,
    /// Now-or-never frames: registration digest, frame, held while the device is idle.
    now: VecDeque<(String, String, bool)>,
    /// Look at every registration again.
    resync: bool,
    /// The device posted `idle` (true) or `active` (false) outside this connection.
    idle: Option<bool>,
    /// The node's ticker came round ([`Registry::tick`]): time to look at the clock.
    tick: bool,
}

/// One connection's mailbox in the registry.
#[derive(Debug)]
struct Inbox {
    id: u64,
    /// The device's [`Anchor::label`], shared with [`Connections::per_device`]'s key.
    device: Arc<str>,
    /// Registration digests, shared with [`Connections::by_registration`]'s keys and the
    /// connection's own list.
    registrations: Vec<Arc<str>>,
    signals: Mutex<Signals>,
    notify: Notify,
}

impl Inbox {
    fn signals(&self) -> std::sync::MutexGuard<'_, Signals> {
        self.signals.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The registry's indexes. Every connection is held for as long as its device stays connected, so
/// a key names the one copy of its string the connection already holds ([`Arc<str>`]).
#[derive(Debug, Default)]
struct Connections {
    by_registration: HashMap<Arc<str>, Vec<Arc<Inbox>>>,
    per_device: HashMap<Arc<str>, u32>,
    all: HashMap<u64, Arc<Inbox>>,
}

/// The connections this node holds, by registration. One per node; signals from any node reach
/// it through [`PushSignalSink`].
#[derive(Debug)]
pub struct Registry {
    next_id: AtomicU64,
    connections: Mutex<Connections>,
    /// [`DeliveryPolicy::max_queued_now`]: signalled frames a connection holds before it drops
    /// now-or-never ones and reads newly stored ones from the store instead.
    max_queued_now: usize,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::with_max_queued_now(DeliveryPolicy::default().max_queued_now)
    }
}

impl Registry {
    pub fn with_max_queued_now(max_queued_now: usize) -> Registry {
        Registry {
            next_id: AtomicU64::new(0),
            connections: Mutex::new(Connections::default()),
            max_queued_now,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.connections.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a connection unless the device holds `limit` already.
    fn attach(&self, device: &str, registrations: Vec<Arc<str>>, limit: u32) -> Option<Arc<Inbox>> {
        let mut connections = self.lock();
        let held = connections.per_device.get(device).copied().unwrap_or(0);
        if held >= limit {
            return None;
        }
        let device: Arc<str> = match connections.per_device.get_key_value(device) {
            Some((label, _)) => label.clone(),
            None => Arc::from(device),
        };
        let inbox = Arc::new(Inbox {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            device: device.clone(),
            registrations,
            signals: Mutex::new(Signals { resync: true, ..Signals::default() }),
            notify: Notify::new(),
        });
        connections.per_device.insert(device, held + 1);
        for registration in &inbox.registrations {
            connections
                .by_registration
                .entry(registration.clone())
                .or_default()
                .push(inbox.clone());
        }
        connections.all.insert(inbox.id, inbox.clone());
        Some(inbox)
    }

    fn detach(&self, inbox: &Inbox) {
        let mut connections = self.lock();
        if connections.all.remove(&inbox.id).is_none() {
            return;
        }
        for registration in &inbox.registrations {
            if let Some(list) = connections.by_registration.get_mut(registration) {
                list.retain(|it| it.id != inbox.id);
                if list.is_empty() {
                    connections.by_registration.remove(registration);
                }
            }
        }
        if let Some(held) = connections.per_device.get_mut(&inbox.device) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                connections.per_device.remove(&inbox.device);
            }
        }
    }

    /// Tells this node's connections of the device (by [`Anchor::label`]) that it went idle or
    /// active.
    fn set_idle(&self, device: &str, idle: bool) {
        let inboxes: Vec<Arc<Inbox>> =
            self.lock().all.values().filter(|it| &*it.device == device).cloned().collect();
        for inbox in inboxes {
            inbox.signals().idle = Some(idle);
            inbox.notify.notify_one();
        }
    }

    /// Asks every connection of this node to look at the clock ([`Connection::take_tick`], then
    /// [`Connection::tick`]). One ticker per node calls it, instead of a timer per connection:
    /// a connection lasts as long as its device stays connected, so a timer of its own would be
    /// memory held for every connected device.
    pub fn tick(&self) {
        let inboxes: Vec<Arc<Inbox>> = self.lock().all.values().cloned().collect();
        for inbox in inboxes {
            inbox.signals().tick = true;
            inbox.notify.notify_one();
        }
    }

    /// Connections open on this node.
    pub fn len(&self) -> usize {
        self.lock().all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PushSignalSink for Registry {
    fn dispatch(&self, signal: PushSignal) {
        self.dispatch_all(std::slice::from_ref(&signal));
    }

    /// Looks every signal's registration up under one lock; a signal for a registration with no
    /// connection on this node (most of a multicast's, on the node that sent it) costs the look-up
    /// alone.
    fn dispatch_all(&self, signals: &[PushSignal]) {
        let found: Vec<(Vec<Arc<Inbox>>, &PushSignal)> = {
            let connections = self.lock();
            signals
                .iter()
                .filter_map(|signal| {
                    let inboxes = connections.by_registration.get(signal.registration())?;
                    Some((inboxes.clone(), signal))
                })
                .collect()
        };
        let limit = self.max_queued_now;
        for (inboxes, signal) in found {
            let registration = signal.registration();
            for inbox in inboxes {
                {
                    let mut signals = inbox.signals();
                    match signal {
                        PushSignal::Stored { message: Some(message), .. }
                            if signals.fresh.len() < limit =>
                        {
                            signals.fresh.push_back((registration.to_owned(), message.clone()));
                        }
                        // Too many waiting: the connection reads the store instead.
                        PushSignal::Stored { .. } => {
                            signals.stored.insert(registration.to_owned());
                        }
                        PushSignal::Now { frame, hold_while_idle, .. } => {
                            if signals.now.len() >= limit {
                                continue;
                            }
                            signals.now.push_back((
                                registration.to_owned(),
                                frame.clone(),
                                *hold_while_idle,
                            ));
                        }
                    }
                }
                inbox.notify.notify_one();
            }
        }
    }

    fn resync(&self) {
        let inboxes: Vec<Arc<Inbox>> = self.lock().all.values().cloned().collect();
        for inbox in inboxes {
            inbox.signals().resync = true;
            inbox.notify.notify_one();
        }
    }
}

/// The wake-up of one node alone: signals go straight to its own registry.
#[derive(Debug)]
pub struct InProcessWakeup {
    registry: Arc<Registry>,
}

impl InProcessWakeup {
    pub fn new(registry: Arc<Registry>) -> InProcessWakeup {
        InProcessWakeup { registry }
    }
}

#[async_trait::async_trait]
impl Wakeup for InProcessWakeup {
    async fn signal(&self, signal: &PushSignal) -> tessera_store::Result<()> {
        self.registry.dispatch(signal.clone());
        Ok(())
    }

    async fn signal_many(&self, signals: &[PushSignal]) -> tessera_store::Result<()> {
        self.registry.dispatch_all(signals);
        Ok(())
    }
}

/// The node's delivery state: its registry and how it wakes the node holding a connection.
pub struct Hub {
    pub registry: Arc<Registry>,
    wakeup: RwLock<Arc<dyn Wakeup>>,
    pub policy: DeliveryPolicy,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("registry", &self.registry).finish_non_exhaustive()
    }
}

impl Default for Hub {
    /// One node: the in-process wake-up.
    fn default() -> Hub {
        Hub::with_policy(DeliveryPolicy::default())
    }
}

impl Hub {
    /// One node (the in-process wake-up), with these connection limits.
    pub fn with_policy(policy: DeliveryPolicy) -> Hub {
        let registry = Arc::new(Registry::with_max_queued_now(policy.max_queued_now));
        Hub {
            wakeup: RwLock::new(Arc::new(InProcessWakeup::new(registry.clone()))),
            registry,
            policy,
        }
    }

    /// Replaces the wake-up (several nodes: one that reaches every node's registry).
    pub fn set_wakeup(&self, wakeup: Arc<dyn Wakeup>) {
        *self.wakeup.write().unwrap_or_else(std::sync::PoisonError::into_inner) = wakeup;
    }

    /// Sends a signal; a failure is logged, not returned: what was stored stays stored and is
    /// delivered at the next wake-up, acknowledgement timeout or reconnect.
    pub async fn signal(&self, signal: &PushSignal) {
        self.signal_many(std::slice::from_ref(signal)).await;
    }

    /// [`Hub::signal`] for many (a multicast's), sent together where the wake-up can.
    pub async fn signal_many(&self, signals: &[PushSignal]) {
        if signals.is_empty() {
            return;
        }
        let wakeup = self.wakeup.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Err(err) = wakeup.signal_many(signals).await {
            tracing::warn!(target: "tessera::push", error = %err, "push wake-up failed");
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The device credential was refused.
    Unauthorized,
    /// No registration ids, or more than [`DeliveryPolicy::max_registrations`].
    BadRequest,
    /// A registration id that is not live or not this device's.
    NotRegistered(String),
    /// The device holds [`DeliveryPolicy::max_connections_per_device`] connections already.
    TooManyConnections,
}

/// What the transport should do after [`Connection::tick`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    Nothing,
    /// Send a ping (the device answers with anything: a pong, a frame).
    Ping,
    /// The device has not been heard for too long: close.
    Close,
}

/// What a frame from the device asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Send this frame back.
    Reply(String),
    Nothing,
    /// Not a frame of the protocol (or too large): close.
    Malformed,
}

/// One connected device. Dropping it leaves the registry.
pub struct Connection {
    ctx: Ctx,
    device: Device,
    /// Registration id and digest, in the order the device named them.
    registrations: Vec<(String, Arc<str>)>,
    inbox: Arc<Inbox>,
    /// Delivered, not yet acknowledged: message id → (registration digest, when sent).
    sent: HashMap<String, (String, i64)>,
    idle: bool,
    last_heard: i64,
    last_ping: i64,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.ctx.push.registry.detach(&self.inbox);
    }
}

/// Opens a connection for the device `device_id` proving itself with `secret`, carrying
/// `registration_ids` (each live and made by this device). What is stored for them goes out
/// first, at the first [`Connection::pump`].
pub async fn connect(
    ctx: &Ctx,
    device_id: &str,
    secret: &str,
    registration_ids: &[String],
) -> Result<std::result::Result<Connection, Refusal>> {
    let policy = ctx.push.policy;
    if registration_ids.is_empty() || registration_ids.len() > policy.max_registrations {
        return Ok(Err(Refusal::BadRequest));
    }
    let Some(device) = super::authenticate_device(ctx, device_id, secret, Recurrence::Once).await?
    else {
        return Ok(Err(Refusal::Unauthorized));
    };
    let mut registrations: Vec<(String, Arc<str>)> = Vec::with_capacity(registration_ids.len());
    for id in registration_ids {
        let Lookup::Live { record, data } = super::lookup(ctx, id).await? else {
            return Ok(Err(Refusal::NotRegistered(id.clone())));
        };
        if !super::owns(&device, &record, &data) {
            return Ok(Err(Refusal::NotRegistered(id.clone())));
        }
        if !registrations.iter().any(|(_, digest)| **digest == *record.digest) {
            registrations.push((id.clone(), Arc::from(record.digest)));
        }
    }
    let digests = registrations.iter().map(|(_, digest)| digest.clone()).collect();
    let Some(inbox) = ctx.push.registry.attach(
        &device.anchor.label(),
        digests,
        policy.max_connections_per_device,
    ) else {
        return Ok(Err(Refusal::TooManyConnections));
    };
    let now = ctx.now();
    Ok(Ok(Connection {
        ctx: ctx.clone(),
        device,
        registrations,
        inbox,
        sent: HashMap::new(),
        idle: false,
        last_heard: now,
        last_ping: now,
    }))
}

impl Connection {
    /// The device this connection is for.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Waits until something was signalled for this connection (call [`Connection::pump`] then).
    pub async fn signalled(&self) {
        self.inbox.notify.notified().await;
    }

    /// The frames to send now: now-or-never messages signalled, newly stored messages, messages
    /// whose acknowledgement is overdue, and (after connecting, a resync or the device turning
    /// active) everything stored.
    pub async fn pump(&mut self) -> Result<Vec<String>> {
        let (mut stored, fresh, now_frames, mut resync, idle) = {
            let mut signals = self.inbox.signals();
            // A tick is the transport's to take ([`Connection::take_tick`]).
            let tick = signals.tick;
            let taken = std::mem::replace(&mut *signals, Signals { tick, ..Signals::default() });
            (taken.stored, taken.fresh, taken.now, taken.resync, taken.idle)
        };
        match idle {
            Some(true) => self.idle = true,
            Some(false) if self.idle => {
                self.idle = false;
                resync = true;
            }
            _ => {}
        }
        let now = self.ctx.now();
        let timeout = self.ctx.push.policy.ack_timeout_secs;
        if resync {
            stored.extend(self.registrations.iter().map(|(_, digest)| digest.to_string()));
        }
        stored.extend(
            self.sent
                .values()
                .filter(|(_, at)| now - *at >= timeout)
                .map(|(digest, _)| digest.clone()),
        );
        let mut frames = Vec::new();
        for (_, frame, hold) in now_frames {
            if !(hold && self.idle) {
                frames.push(frame);
            }
        }
        let order: Vec<(String, Arc<str>)> = self
            .registrations
            .iter()
            .filter(|(_, digest)| stored.contains(&**digest))
            .cloned()
            .collect();
        for (id, digest) in order {
            self.deliver(&id, &digest, now, &mut frames).await?;
        }
        // Messages just stored, after what was read (which holds any of them it found): sent as
        // the store holds them, unless held while idle (they stay stored for the next read).
        for (digest, message) in fresh {
            if (message.hold_while_idle && self.idle) || self.sent.contains_key(&message.id) {
                continue;
            }
            frames.push(message.frame);
            self.sent.insert(message.id, (digest, now));
        }
        Ok(frames)
    }

    async fn deliver(
        &mut self,
        id: &str,
        digest: &str,
        now: i64,
        frames: &mut Vec<String>,
    ) -> Result<()> {
        let policy = self.ctx.push.policy;
        let records: Vec<PushMessageRecord> =
            self.ctx.store.push().pending(digest, now, policy.batch).await?;
        // What was acknowledged elsewhere or expired is no longer waited for.
        let waiting: HashSet<&str> = records.iter().map(|it| it.id.as_str()).collect();
        self.sent.retain(|message, (of, _)| of != digest || waiting.contains(message.as_str()));
        for record in &records {
            if record.delay_while_idle && self.idle {
                continue;
            }
            if self.sent.get(&record.id).is_some_and(|(_, at)| now - at < policy.ack_timeout_secs) {
                continue;
            }
            frames.push(message_frame(id, &record.id, &super::device_payload(record)));
            self.sent.insert(record.id.clone(), (digest.to_owned(), now));
        }
        Ok(())
    }

    /// The device was heard from (any frame, a pong).
    pub fn heard(&mut self) {
        self.last_heard = self.ctx.now();
    }

    /// A text frame from the device: `{"type":"ack","message_id":"…"}`, `{"type":"idle"}`,
    /// `{"type":"active"}` or `{"type":"ping"}`.
    pub async fn receive(&mut self, text: &str) -> Result<Received> {
        self.heard();
        let Some(frame) = DeviceFrame::parse(text, self.ctx.push.policy.max_frame_bytes) else {
            return Ok(Received::Malformed);
        };
        match frame {
            DeviceFrame::Ack { message_id, .. } => {
                if let Some((digest, _)) = self.sent.remove(&message_id) {
                    self.ctx.store.push().ack(&digest, &message_id).await?;
                }
                Ok(Received::Nothing)
            }
            DeviceFrame::Idle => {
                self.idle = true;
                Ok(Received::Nothing)
            }
            DeviceFrame::Active => {
                if self.idle {
                    self.idle = false;
                    self.inbox.signals().resync = true;
                    self.inbox.notify.notify_one();
                }
                Ok(Received::Nothing)
            }
            DeviceFrame::Ping => Ok(Received::Reply(PONG.to_owned())),
        }
    }

    /// Whether the node's ticker came round since this was last asked ([`Registry::tick`]); the
    /// transport then calls [`Connection::tick`].
    pub fn take_tick(&self) -> bool {
        std::mem::take(&mut self.inbox.signals().tick)
    }

    /// Liveness and redelivery by the clock: close a connection not heard from for
    /// [`DeliveryPolicy::dead_after_secs`], ping a quiet one, and wake this connection when an
    /// acknowledgement is overdue.
    pub fn tick(&mut self) -> Tick {
        let now = self.ctx.now();
        let policy = self.ctx.push.policy;
        if now - self.last_heard >= policy.dead_after_secs {
            return Tick::Close;
        }
        if self.sent.values().any(|(_, at)| now - at >= policy.ack_timeout_secs) {
            self.inbox.notify.notify_one();
        }
        if now - self.last_heard >= policy.ping_interval_secs
            && now - self.last_ping >= policy.ping_interval_secs
        {
            self.last_ping = now;
            return Tick::Ping;
        }
        Tick::Nothing
    }
}

/// A frame the device posted outside its connection (the server-sent events fallback, whose
/// stream carries frames one way): `{"type":"ack","registration_id":"…","message_id":"…"}`
/// removes the message when the registration is live and the device's (an unknown or repeated
/// acknowledgement changes nothing); `idle` and `active` reach the device's connections on this
/// node; `ping` is answered `pong`. Anything else is [`Received::Malformed`].
pub async fn posted(ctx: &Ctx, device: &Device, text: &str) -> Result<Received> {
    let Some(frame) = DeviceFrame::parse(text, ctx.push.policy.max_frame_bytes) else {
        return Ok(Received::Malformed);
    };
    match frame {
        DeviceFrame::Ack { message_id, registration_id: Some(registration_id) } => {
            ack(ctx, device, &registration_id, &message_id).await?;
            Ok(Received::Nothing)
        }
        DeviceFrame::Ack { registration_id: None, .. } => Ok(Received::Malformed),
        DeviceFrame::Idle | DeviceFrame::Active => {
            let idle = frame == DeviceFrame::Idle;
            ctx.push.registry.set_idle(&device.anchor.label(), idle);
            Ok(Received::Nothing)
        }
        DeviceFrame::Ping => Ok(Received::Reply(PONG.to_owned())),
    }
}

/// Acknowledges a message for a device outside a connection (the server-sent events fallback
/// posts its acknowledgements): the registration must be live and the device's.
pub async fn ack(
    ctx: &Ctx,
    device: &Device,
    registration_id: &str,
    message_id: &str,
) -> Result<bool> {
    let Lookup::Live { record, data } = super::lookup(ctx, registration_id).await? else {
        return Ok(false);
    };
    if !super::owns(device, &record, &data) {
        return Ok(false);
    }
    Ok(ctx.store.push().ack(&record.digest, message_id).await?)
}

#[cfg(test)]
mod tests {
    use tessera_proto_push::{Message, Outcome};

    use super::*;
    use crate::push::{self, Api, Sender};
    use crate::testing::TestCtx;

    #[test]
    fn a_parallel_burst_of_signals_queues_at_most_the_configured_frames() {
        let hub =
            Hub::with_policy(DeliveryPolicy { max_queued_now: 3, ..DeliveryPolicy::default() });
        let inbox = hub.registry.attach("device", vec![Arc::from("reg")], 4).expect("attached");
        let now = PushSignal::Now {
            registration: "reg".to_owned(),
            frame: "{}".to_owned(),
            hold_while_idle: false,
        };
        let stored = |n: usize| PushSignal::Stored {
            registration: "reg".to_owned(),
            message: Some(StoredFrame {
                id: format!("m{n}"),
                frame: "{}".to_owned(),
                hold_while_idle: false,
            }),
        };
        // Eight senders at once, each a multicast naming the registration four times over, and
        // one signal for a registration no connection here carries.
        std::thread::scope(|scope| {
            for sender in 0..8 {
                let (hub, now) = (&hub, &now);
                scope.spawn(move || {
                    let mut signals: Vec<PushSignal> =
                        (0..4).flat_map(|n| [now.clone(), stored(sender * 4 + n)]).collect();
                    signals.push(PushSignal::Now {
                        registration: "elsewhere".to_owned(),
                        frame: "{}".to_owned(),
                        hold_while_idle: false,
                    });
                    hub.registry.dispatch_all(&signals);
                });
            }
        });
        let signals = inbox.signals();
        assert_eq!(signals.now.len(), 3, "the configured limit, not the default");
        assert_eq!(signals.fresh.len(), 3);
        // The stored messages beyond it are read from the store instead.
        assert!(signals.stored.contains("reg"));
        assert!(signals.now.iter().all(|it| it.0 == "reg"));
        assert!(signals.fresh.iter().all(|it| it.0 == "reg"));
    }

    struct Fixture {
        t: TestCtx,
        sender: Sender,
        /// The registration that made `id`, as the device sent it.
        register: tessera_proto_push::Register,
        id: String,
        secret: String,
    }

    async fn fixture() -> Fixture {
        let t = TestCtx::new().await;
        t.account("owner@example.com").create().await;
        let project = t.project("Pushy", "owner@example.com").await.id;
        let register = tessera_proto_push::Register {
            app: "com.example.a".to_owned(),
            device: "77".to_owned(),
            senders: vec![project.clone()],
            cert: String::new(),
            delete: false,
        };
        let (id, secret) = push::register_new_install(&t.ctx, &register)
            .await
            .expect("register")
            .expect("registered");
        let key = push::create_api_key(&t.ctx, &project, "server").await.expect("key");
        let sender =
            push::authenticate_sender(&t.ctx, Api::Gcm, &crate::caller::Presented::ApiKey(key))
                .await
                .expect("auth")
                .expect("sender");
        Fixture { t, sender, register, id, secret }
    }

    fn message(data: &str, ttl: Option<u32>, delay_while_idle: bool) -> Message {
        Message {
            data: vec![("text".to_owned(), data.to_owned())],
            time_to_live: ttl,
            delay_while_idle,
            ..Message::default()
        }
    }

    impl Fixture {
        async fn send(&self, message: &Message) -> String {
            let sent = push::send(
                &self.t.ctx,
                &self.sender,
                std::slice::from_ref(&self.id),
                message,
                None,
            )
            .await
            .expect("send");
            match &sent[0] {
                Outcome::Accepted { message_id, .. } => message_id.clone(),
                other => panic!("{other:?}"),
            }
        }

        async fn connect(&self) -> Connection {
            connect(&self.t.ctx, "77", &self.secret, std::slice::from_ref(&self.id))
                .await
                .expect("connect")
                .expect("connected")
        }
    }

    fn texts(frames: &[String]) -> Vec<String> {
        frames
            .iter()
            .map(|it| {
                let frame: serde_json::Value = serde_json::from_str(it).expect("json");
                frame["data"]["text"].as_str().expect("text").to_owned()
            })
            .collect()
    }

    async fn ack(connection: &mut Connection, frame: &str) {
        let frame: serde_json::Value = serde_json::from_str(frame).expect("json");
        let text =
            serde_json::json!({ "type": "ack", "message_id": frame["message_id"] }).to_string();
        assert_eq!(connection.receive(&text).await.expect("ack"), Received::Nothing);
    }

    #[tokio::test]
    async fn stored_messages_go_first_and_stay_until_acknowledged() {
        let f = fixture().await;
        let first = f.send(&message("one", None, false)).await;
        f.send(&message("two", None, true)).await;
        let mut connection = f.connect().await;
        let frames = connection.pump().await.expect("pump");
        assert_eq!(texts(&frames), ["one", "two"], "delay_while_idle does not hold on connect");
        let frame: serde_json::Value = serde_json::from_str(&frames[0]).expect("json");
        assert_eq!(frame["type"], "message");
        assert_eq!(frame["message_id"], first.as_str());
        assert_eq!(frame["registration_id"], f.id.as_str());
        assert!(frame["from"].is_string());
        ack(&mut connection, &frames[0]).await;
        assert!(connection.pump().await.expect("pump").is_empty(), "nothing new");

        // Not acknowledged in time: sent again.
        f.t.advance(f.t.ctx.push.policy.ack_timeout_secs);
        connection.heard();
        assert_eq!(connection.tick(), Tick::Nothing, "heard from just now: no ping");
        assert_eq!(texts(&connection.pump().await.expect("pump")), ["two"]);
        // A reconnect sends again whatever is stored.
        drop(connection);
        assert!(f.t.ctx.push.registry.is_empty());
        let mut connection = f.connect().await;
        let frames = connection.pump().await.expect("pump");
        assert_eq!(texts(&frames), ["two"]);
        ack(&mut connection, &frames[0]).await;
        assert!(push::pending(&f.t.ctx, &f.id, 10).await.expect("pending").is_empty());
    }

    #[tokio::test]
    async fn a_connected_device_is_woken_and_now_or_never_needs_a_connection() {
        let f = fixture().await;
        // TTL 0 with nobody connected: accepted, never stored, never delivered.
        f.send(&message("never", Some(0), false)).await;
        assert!(push::pending(&f.t.ctx, &f.id, 10).await.expect("pending").is_empty());
        let mut connection = f.connect().await;
        assert!(connection.pump().await.expect("pump").is_empty());

        f.send(&message("live", None, false)).await;
        connection.signalled().await;
        assert_eq!(texts(&connection.pump().await.expect("pump")), ["live"]);
        f.send(&message("now", Some(0), false)).await;
        connection.signalled().await;
        let frames = connection.pump().await.expect("pump");
        assert_eq!(texts(&frames), ["now"]);
        let frame: serde_json::Value = serde_json::from_str(&frames[0]).expect("json");
        assert_eq!(frame["registration_id"], f.id.as_str());
        assert_eq!(
            push::pending(&f.t.ctx, &f.id, 10).await.expect("pending").len(),
            1,
            "only `live`"
        );
    }

    #[tokio::test]
    async fn delay_while_idle_holds_until_the_device_is_active() {
        let f = fixture().await;
        let mut connection = f.connect().await;
        assert!(connection.pump().await.expect("pump").is_empty());
        assert_eq!(
            connection.receive(r#"{"type":"idle"}"#).await.expect("idle"),
            Received::Nothing
        );
        f.send(&message("held", None, true)).await;
        f.send(&message("now-held", Some(0), true)).await;
        f.send(&message("urgent", None, false)).await;
        assert_eq!(texts(&connection.pump().await.expect("pump")), ["urgent"]);
        assert_eq!(
            connection.receive(r#"{"type":"active"}"#).await.expect("active"),
            Received::Nothing
        );
        connection.signalled().await;
        assert_eq!(
            texts(&connection.pump().await.expect("pump")),
            ["held"],
            "a TTL 0 message held is gone"
        );
        assert_eq!(
            connection.receive(r#"{"type":"ping"}"#).await.expect("ping"),
            Received::Reply(r#"{"type":"pong"}"#.to_owned())
        );
        for bad in ["", "[]", r#"{"type":"ack"}"#, r#"{"type":"dance"}"#, &"x".repeat(5000)] {
            assert_eq!(connection.receive(bad).await.expect("frame"), Received::Malformed, "{bad}");
        }
    }

    #[tokio::test]
    async fn a_connection_s_device_check_is_not_kept_a_posted_frame_s_is() {
        let f = fixture().await;
        let other = tessera_proto_push::Register { device: "78".to_owned(), ..f.register.clone() };
        let (_, other_secret) =
            push::register_new_install(&f.t.ctx, &other).await.expect("register").expect("new");
        let check = |device: &'static str, secret: String| {
            let ctx = f.t.ctx.clone();
            async move {
                push::authenticate_device(&ctx, device, &secret, Recurrence::Often)
                    .await
                    .expect("auth")
                    .expect("device")
            }
        };
        // A second of its own, with one answer kept in it.
        f.t.advance(1);
        check("78", other_secret).await;
        assert_eq!(f.t.ctx.answers.len(), 1);
        let _connection = f.connect().await;
        assert_eq!(f.t.ctx.answers.len(), 1, "a device connects once: its check is not kept");
        check("77", f.secret.clone()).await;
        assert_eq!(f.t.ctx.answers.len(), 2, "a posted frame's check recurs: kept");
        let _again = f.connect().await;
        assert_eq!(f.t.ctx.answers.len(), 2);
    }

    #[tokio::test]
    async fn frames_posted_outside_the_connection_ack_and_reach_it() {
        let f = fixture().await;
        let device = push::authenticate_device(&f.t.ctx, "77", &f.secret, Recurrence::Often)
            .await
            .expect("auth")
            .expect("device");
        let mut connection = f.connect().await;
        assert!(connection.pump().await.expect("pump").is_empty());
        assert_eq!(
            posted(&f.t.ctx, &device, r#"{"type":"idle"}"#).await.expect("idle"),
            Received::Nothing
        );
        connection.signalled().await;
        assert!(connection.pump().await.expect("pump").is_empty());
        f.send(&message("held", None, true)).await;
        connection.signalled().await;
        assert!(connection.pump().await.expect("pump").is_empty(), "held while idle");
        posted(&f.t.ctx, &device, r#"{"type":"active"}"#).await.expect("active");
        connection.signalled().await;
        let frames = connection.pump().await.expect("pump");
        assert_eq!(texts(&frames), ["held"]);
        let frame: serde_json::Value = serde_json::from_str(&frames[0]).expect("json");
        let ack = serde_json::json!({
            "type": "ack", "registration_id": f.id, "message_id": frame["message_id"],
        })
        .to_string();
        assert_eq!(posted(&f.t.ctx, &device, &ack).await.expect("ack"), Received::Nothing);
        assert!(push::pending(&f.t.ctx, &f.id, 10).await.expect("pending").is_empty());
        assert_eq!(
            posted(&f.t.ctx, &device, r#"{"type":"ping"}"#).await.expect("ping"),
            Received::Reply(r#"{"type":"pong"}"#.to_owned())
        );
        for bad in ["", "{}", r#"{"type":"ack","message_id":"0:1%00"}"#, &"x".repeat(5000)] {
            assert_eq!(posted(&f.t.ctx, &device, bad).await.expect("frame"), Received::Malformed);
        }
    }

    #[tokio::test]
    async fn liveness_follows_the_clock() {
        let f = fixture().await;
        let mut connection = f.connect().await;
        let policy = f.t.ctx.push.policy;
        assert_eq!(connection.tick(), Tick::Nothing);
        f.t.advance(policy.ping_interval_secs);
        assert_eq!(connection.tick(), Tick::Ping);
        assert_eq!(connection.tick(), Tick::Nothing, "one ping per interval");
        connection.heard();
        f.t.advance(policy.dead_after_secs - 1);
        assert_eq!(connection.tick(), Tick::Ping);
        f.t.advance(1);
        assert_eq!(connection.tick(), Tick::Close);
    }

    /// The node's one ticker reaches every connection: each is woken and takes its tick once, and
    /// a pump in between leaves the tick for the transport to take.
    #[tokio::test]
    async fn the_node_s_ticker_wakes_every_connection_once() {
        let f = fixture().await;
        let mut first = f.connect().await;
        let second = f.connect().await;
        first.pump().await.expect("pump");
        assert!(!first.take_tick() && !second.take_tick(), "no tick yet");
        f.t.ctx.push.registry.tick();
        first.signalled().await;
        second.signalled().await;
        assert!(first.pump().await.expect("pump").is_empty());
        assert!(first.take_tick(), "the pump left the tick");
        assert!(!first.take_tick(), "taken once");
        assert!(second.take_tick());
        drop(second);
        f.t.ctx.push.registry.tick();
        assert!(first.take_tick(), "the ticker skips a closed connection");
    }

    #[tokio::test]
    async fn connections_are_refused_for_strangers_and_beyond_the_limit() {
        let f = fixture().await;
        let ctx = &f.t.ctx;
        let ids = std::slice::from_ref(&f.id);
        assert_eq!(
            connect(ctx, "77", "pi/forged", ids).await.expect("connect").err(),
            Some(Refusal::Unauthorized)
        );
        assert_eq!(
            connect(ctx, "78", &f.secret, ids).await.expect("connect").err(),
            Some(Refusal::Unauthorized)
        );
        assert_eq!(
            connect(ctx, "77", &f.secret, &[]).await.expect("connect").err(),
            Some(Refusal::BadRequest)
        );
        // Another install's registration is not this device's.
        let register = tessera_proto_push::Register {
            app: "com.example.a".to_owned(),
            device: "77".to_owned(),
            senders: f.sender.sender_ids.clone(),
            cert: String::new(),
            delete: false,
        };
        let (other, _) = push::register_new_install(ctx, &register)
            .await
            .expect("register")
            .expect("registered");
        assert_eq!(
            connect(ctx, "77", &f.secret, std::slice::from_ref(&other))
                .await
                .expect("connect")
                .err(),
            Some(Refusal::NotRegistered(other))
        );
        let limit = ctx.push.policy.max_connections_per_device as usize;
        let mut held = Vec::new();
        for _ in 0..limit {
            held.push(f.connect().await);
        }
        assert_eq!(
            connect(ctx, "77", &f.secret, ids).await.expect("connect").err(),
            Some(Refusal::TooManyConnections)
        );
        held.pop();
        held.push(f.connect().await);
        // A revoked install is refused, and its connections stop being fed.
        assert!(push::revoke_install(ctx, &f.secret).await.expect("revoke"));
        assert_eq!(
            connect(ctx, "77", &f.secret, ids).await.expect("connect").err(),
            Some(Refusal::Unauthorized)
        );
    }

    #[tokio::test]
    async fn a_parallel_burst_of_connections_gets_exactly_the_limit() {
        let f = Arc::new(fixture().await);
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let f = f.clone();
            tasks.push(tokio::spawn(async move {
                connect(&f.t.ctx, "77", &f.secret, std::slice::from_ref(&f.id))
                    .await
                    .expect("connect")
            }));
        }
        let mut held = Vec::new();
        let mut refused = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(connection) => held.push(connection),
                Err(refusal) => {
                    assert_eq!(refusal, Refusal::TooManyConnections);
                    refused += 1;
                }
            }
        }
        let limit = f.t.ctx.push.policy.max_connections_per_device as usize;
        assert_eq!((held.len(), refused), (limit, 16 - limit));
        assert_eq!(f.t.ctx.push.registry.len(), limit);
        held.clear();
        assert!(f.t.ctx.push.registry.is_empty());
    }
}
