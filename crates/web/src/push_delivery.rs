//! Push delivery to devices over HTTP: a WebSocket (`GET /push/connect`) and, for devices that
//! cannot keep one, server-sent events (`GET /push/events`) with the device's frames posted to
//! `POST /push/device`. Both carry the frames `domain::push::delivery` makes and parses; this
//! module only moves them, and drives each connection from its own task: it pumps what the
//! connection has to send, hands it what the device sends, and ticks it so that the domain decides
//! by its clock when to ping, resend or close.
//!
//! Every request proves the device with `Authorization: AidLogin <device id>:<credential>`; the
//! two streams name the registration ids they carry as repeated `registration_id` query
//! parameters.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use tessera_domain::caller::Presented;
use tessera_domain::credentials::Recurrence;
use tessera_domain::push::delivery::{self, Connection, Received, Refusal, Registry, Tick};
use tessera_domain::push::{self, Device};

use crate::AppState;
use crate::error::PageError;

/// How often (in real time) every connection asks its domain side whether to ping, resend or
/// close; the decision itself follows the server's clock.
const TICK_EVERY: Duration = Duration::from_secs(5);

/// The read buffer a WebSocket starts with. A device's frames are acknowledgements of a few dozen
/// bytes, and every idle connection holds its buffer, so it starts small (a larger frame, up to
/// the frame limit, grows it).
const READ_BUFFER: usize = 256;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/push/connect", get(connect_websocket))
        .route("/push/events", get(connect_events))
        .route("/push/device", post(device_frame))
}

/// The node's one ticker: every [`TICK_EVERY`] it wakes each connection of `registry` to look at
/// the clock ([`Registry::tick`]), until `stop` resolves. Runs beside the server.
pub async fn tick_connections(registry: Arc<Registry>, stop: impl Future<Output = ()>) {
    let mut ticks = tokio::time::interval(TICK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick of an interval is at once: connections made since start wait a whole period.
    ticks.tick().await;
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = stop.as_mut() => return,
            _ = ticks.tick() => registry.tick(),
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=UTF-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        format!("{body}\n"),
    )
        .into_response()
}

fn unauthorized() -> Response {
    let mut response = text(StatusCode::UNAUTHORIZED, "the device credential was refused");
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("AidLogin"));
    response
}

/// The `AidLogin` device id and credential, if the request has them.
fn device_credential(headers: &HeaderMap) -> Option<(String, String)> {
    match crate::caller::presented(headers)? {
        Presented::AidLogin { device, secret } if !secret.is_empty() => Some((device, secret)),
        _ => None,
    }
}

/// The `registration_id` query parameters, in order.
fn registration_ids(uri: &Uri) -> Vec<String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(name, _)| name == "registration_id")
        .map(|(_, value)| value.into_owned())
        .collect()
}

/// Opens the domain side of a connection, or the answer that refuses it.
async fn open(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Result<Connection, Response>, PageError> {
    let Some((device, secret)) = device_credential(headers) else { return Ok(Err(unauthorized())) };
    let ids = registration_ids(uri);
    Ok(match delivery::connect(&state.ctx, &device, &secret, &ids).await? {
        Ok(connection) => Ok(connection),
        Err(Refusal::Unauthorized) => Err(unauthorized()),
        Err(Refusal::BadRequest) => Err(text(
            StatusCode::BAD_REQUEST,
            &format!(
                "name 1 to {} registration ids as registration_id query parameters",
                state.ctx.push.policy.max_registrations
            ),
        )),
        Err(Refusal::NotRegistered(id)) => Err(text(
            StatusCode::FORBIDDEN,
            &format!("registration id {id} is not registered to this device"),
        )),
        Err(Refusal::TooManyConnections) => Err(text(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "this device holds {} connections already",
                state.ctx.push.policy.max_connections_per_device
            ),
        )),
    })
}

// ---------------------------------------------------------------------------------------------
// WebSocket

async fn connect_websocket(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, PageError> {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let connection = match open(&state, &headers, &uri).await? {
        Ok(connection) => Box::new(connection),
        Err(refused) => return Ok(refused),
    };
    let limit = state.ctx.push.policy.max_frame_bytes;
    Ok(upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| websocket(socket, connection)))
}

/// Why a WebSocket ends.
enum End {
    /// The device closed it, or the socket failed: nothing more to say.
    Gone,
    /// Close with this code and reason.
    Close(u16, &'static str),
}

/// One device's WebSocket, until either side ends it.
///
/// Its task lives as long as the device stays connected, so its size is memory per device. The
/// connection is boxed, so the upgrade's callback that carries it into the task holds a pointer
/// instead of a second copy for the task's whole life; and the body is an `async move` block that
/// works on what it captured, where an `async fn` would keep its arguments twice (as arguments and
/// as the locals they are moved into).
#[expect(clippy::manual_async_fn, reason = "an `async fn` holds its arguments twice")]
fn websocket(
    mut socket: WebSocket,
    mut connection: Box<Connection>,
) -> impl Future<Output = ()> + Send {
    async move {
        let end = drive_websocket(&mut socket, &mut connection).await;
        if let End::Close(code, reason) = end {
            let frame = CloseFrame { code, reason: reason.into() };
            let _ = socket.send(Message::Close(Some(frame))).await;
        }
        // Out of the registry before the socket closes: a device that reconnects at once finds
        // its place free.
        drop(connection);
        drop(socket);
    }
}

async fn drive_websocket(socket: &mut WebSocket, connection: &mut Connection) -> End {
    // A reply (a pong) goes out after whatever was due when its frame arrived, so a pong tells the
    // device it has everything sent so far.
    let mut reply: Option<String> = None;
    loop {
        if connection.take_tick() {
            match connection.tick() {
                Tick::Nothing => {}
                Tick::Ping => {
                    if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                        return End::Gone;
                    }
                }
                Tick::Close => return End::Close(close_code::AWAY, "not heard from"),
            }
        }
        // The store's futures are boxed while they run: held inline they would size the state
        // this task keeps for as long as the device stays connected, idle nearly all of it.
        match Box::pin(connection.pump()).await {
            Ok(frames) => {
                for frame in frames.into_iter().chain(reply.take()) {
                    if socket.send(Message::Text(frame.into())).await.is_err() {
                        return End::Gone;
                    }
                }
            }
            Err(err) => {
                tracing::warn!(target: "tessera::push", error = %err, "push delivery failed");
                return End::Close(close_code::ERROR, "try again");
            }
        }
        tokio::select! {
            () = connection.signalled() => {}
            received = socket.recv() => match received {
                Some(Ok(Message::Text(text))) => match Box::pin(connection.receive(&text)).await {
                    Ok(Received::Nothing) => {}
                    Ok(Received::Reply(text)) => reply = Some(text),
                    Ok(Received::Malformed) => {
                        return End::Close(close_code::POLICY, "not a frame of the protocol");
                    }
                    Err(err) => {
                        tracing::warn!(target: "tessera::push", error = %err, "push acknowledgement failed");
                        return End::Close(close_code::ERROR, "try again");
                    }
                },
                Some(Ok(Message::Binary(_))) => {
                    return End::Close(close_code::UNSUPPORTED, "frames are text");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => connection.heard(),
                Some(Ok(Message::Close(_)) | Err(_)) | None => return End::Gone,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server-sent events

async fn connect_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, PageError> {
    let connection = match open(&state, &headers, &uri).await? {
        Ok(connection) => connection,
        Err(refused) => return Ok(refused),
    };
    let every = u64::try_from(state.ctx.push.policy.ping_interval_secs).unwrap_or(30).max(1);
    let keep_alive = KeepAlive::new().interval(Duration::from_secs(every)).text("ping");
    let mut response = Sse::new(events(connection)).keep_alive(keep_alive).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The event stream of one connection: one event per frame (`id:` its message id, `data:` the
/// frame). The stream owns the connection, so the device going away (the response body dropped)
/// leaves the registry at once. The device's frames come by `POST /push/device`, so the domain's
/// "not heard from" rule does not apply to a stream the device cannot speak on: a keep-alive
/// comment every ping interval, whose write fails once the device is gone, ends it instead.
fn events(connection: Connection) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    struct Events {
        connection: Connection,
        queued: VecDeque<Event>,
        failed: bool,
    }
    let start = Events { connection, queued: VecDeque::new(), failed: false };
    futures_util::stream::unfold(start, |mut events| async move {
        loop {
            if let Some(event) = events.queued.pop_front() {
                return Some((Ok(event), events));
            }
            if events.failed {
                return None;
            }
            if events.connection.take_tick() {
                // Liveness is the keep-alive comments' failing writes; the tick only wakes the
                // connection for overdue acknowledgements.
                events.connection.heard();
                let _ = events.connection.tick();
            }
            match Box::pin(events.connection.pump()).await {
                Ok(frames) => events.queued.extend(frames.into_iter().map(|frame| event(&frame))),
                Err(err) => {
                    tracing::warn!(target: "tessera::push", error = %err, "push delivery failed");
                    events.failed = true;
                    events.queued.push_back(Event::default().comment("try again"));
                }
            }
            if !events.queued.is_empty() {
                continue;
            }
            events.connection.signalled().await;
        }
    })
}

fn event(frame: &str) -> Event {
    let id = tessera_proto_push::frames::frame_message_id(frame);
    let event = Event::default().data(frame);
    match id {
        Some(id) => event.id(id),
        None => event,
    }
}

/// A device frame for the event stream's side: an acknowledgement (with its `registration_id`),
/// `idle`, `active` or `ping`, as JSON in the body.
async fn device_frame(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let Some((device, secret)) = device_credential(&headers) else { return Ok(unauthorized()) };
    let Some(device): Option<Device> =
        push::authenticate_device(&state.ctx, &device, &secret, Recurrence::Often).await?
    else {
        return Ok(unauthorized());
    };
    let Ok(frame) = std::str::from_utf8(&body) else {
        return Ok(text(StatusCode::BAD_REQUEST, "not a frame of the protocol"));
    };
    Ok(match delivery::posted(&state.ctx, &device, frame).await? {
        Received::Nothing => StatusCode::NO_CONTENT.into_response(),
        Received::Reply(reply) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            reply,
        )
            .into_response(),
        Received::Malformed => text(StatusCode::BAD_REQUEST, "not a frame of the protocol"),
    })
}
