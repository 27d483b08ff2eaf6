//! Push delivery over HTTP: the WebSocket (`/push/connect`) and the server-sent events fallback
//! (`/push/events` with `POST /push/device`), their refusals, their frames, their guarantees, and
//! the accept loop's treatment of long-lived connections.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tessera_domain::audit::Actor;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::TestEnv;

/// The failure guard of every wait below: a passing test never comes near it.
const GUARD: Duration = Duration::from_secs(30);

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A project with an API key and one registered install (device `77`).
pub(crate) struct Device {
    /// `key=<API key>` for `/gcm/send`.
    pub key: String,
    pub project: String,
    /// The registration id.
    pub id: String,
    /// `AidLogin 77:<install credential>`.
    pub auth: String,
}

pub(crate) async fn project(env: &TestEnv) -> (String, String) {
    env.account("sender@example.test", "password-1").await;
    let project =
        tessera_domain::projects::create(env.ctx(), "Pushy", "sender@example.test", &Actor::Cli)
            .await
            .unwrap();
    let key = tessera_domain::push::create_api_key(env.ctx(), &project.id, "server").await.unwrap();
    (project.id, format!("key={key}"))
}

/// Registers an app on a new install `device` over HTTP: the registration id and the
/// `AidLogin` header value.
pub(crate) async fn register(base: &str, project: &str, device: &str) -> (String, String) {
    let res = reqwest::Client::new()
        .post(format!("{base}/c2dm/register3"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("app=com.example.notes&device={device}&sender={project}"))
        .send()
        .await
        .unwrap();
    let install = res.headers()["x-install-credential"].to_str().unwrap().to_owned();
    let text = res.text().await.unwrap();
    let id = text.strip_prefix("token=").unwrap().trim_end().to_owned();
    (id, format!("AidLogin {device}:{install}"))
}

pub(crate) async fn device(env: &TestEnv) -> Device {
    let (project, key) = project(env).await;
    let (id, auth) = register(&env.base, &project, "77").await;
    Device { key, project, id, auth }
}

/// Sends one GCM JSON message (`fields` are added to `to` and `data.text`); its message id.
pub(crate) async fn send(base: &str, key: &str, to: &str, text: &str, fields: &str) -> String {
    let mut body = serde_json::json!({ "to": to, "data": { "text": text } });
    if !fields.is_empty() {
        let extra: serde_json::Value = serde_json::from_str(fields).unwrap();
        for (name, value) in extra.as_object().unwrap() {
            body[name] = value.clone();
        }
    }
    let res = reqwest::Client::new()
        .post(format!("{base}/gcm/send"))
        .header("authorization", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let json: serde_json::Value = res.json().await.unwrap();
    json["results"][0]["message_id"].as_str().unwrap_or_else(|| panic!("{json}")).to_owned()
}

fn query(ids: &[&str]) -> String {
    ids.iter().map(|id| format!("registration_id={id}")).collect::<Vec<_>>().join("&")
}

/// Opens the WebSocket, or answers the refusal's status and body.
pub(crate) async fn ws(base: &str, auth: Option<&str>, ids: &[&str]) -> Result<Ws, (u16, String)> {
    let url = format!("{}/push/connect?{}", base.replacen("http://", "ws://", 1), query(ids));
    let mut req = url.into_client_request().unwrap();
    if let Some(auth) = auth {
        req.headers_mut().insert("authorization", auth.parse().unwrap());
    }
    match timeout(GUARD, tokio_tungstenite::connect_async(req)).await.expect("an answer") {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            let body = res.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            Err((res.status().as_u16(), body.into_owned()))
        }
        Err(err) => panic!("{err}"),
    }
}

/// The next text frame, as JSON (pings and pongs of the WebSocket itself are skipped).
pub(crate) async fn next(socket: &mut Ws) -> serde_json::Value {
    loop {
        match timeout(GUARD, socket.next()).await.expect("a frame") {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(text.as_str()).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("not a frame: {other:?}"),
        }
    }
}

async fn say(socket: &mut Ws, frame: serde_json::Value) {
    socket.send(Message::Text(frame.to_string().into())).await.unwrap();
}

async fn ack(socket: &mut Ws, frame: &serde_json::Value) {
    say(socket, serde_json::json!({ "type": "ack", "message_id": frame["message_id"] })).await;
}

/// Pings and waits for the pong: every frame the server had to send before it has arrived (and is
/// returned), and every frame sent before the ping has been handled.
pub(crate) async fn settle(socket: &mut Ws) -> Vec<serde_json::Value> {
    say(socket, serde_json::json!({ "type": "ping" })).await;
    let mut before = Vec::new();
    loop {
        let frame = next(socket).await;
        if frame["type"] == "pong" {
            return before;
        }
        before.push(frame);
    }
}

fn text(frame: &serde_json::Value) -> &str {
    frame["data"]["text"].as_str().unwrap_or_else(|| panic!("{frame}"))
}

async fn pending(env: &TestEnv, id: &str) -> usize {
    tessera_domain::push::pending(env.ctx(), id, 1000).await.unwrap().len()
}

#[tokio::test]
async fn websocket_delivers_and_redelivers_until_acknowledged() {
    let env = TestEnv::start().await;
    let d = device(&env).await;
    // Stored before the device connects: the collapsible pair leaves one message.
    let first = send(&env.base, &d.key, &d.id, "one", "").await;
    send(&env.base, &d.key, &d.id, "old", r#"{"collapse_key":"k"}"#).await;
    let newest = send(&env.base, &d.key, &d.id, "new", r#"{"collapse_key":"k"}"#).await;

    let mut socket = ws(&env.base, Some(&d.auth), &[&d.id]).await.unwrap();
    let frame = next(&mut socket).await;
    assert_eq!((frame["type"].as_str(), text(&frame)), (Some("message"), "one"));
    assert_eq!(frame["message_id"], first.as_str());
    assert_eq!(frame["registration_id"], d.id.as_str());
    assert_eq!(frame["from"], d.project.as_str());
    let collapsed = next(&mut socket).await;
    assert_eq!((text(&collapsed), collapsed["collapse_key"].as_str()), ("new", Some("k")));
    assert_eq!(collapsed["message_id"], newest.as_str());
    assert!(settle(&mut socket).await.is_empty(), "the replaced message is gone");

    // Acknowledged: gone from the store. Not acknowledged: sent again after 60 s of the clock.
    ack(&mut socket, &frame).await;
    assert!(settle(&mut socket).await.is_empty());
    assert_eq!(pending(&env, &d.id).await, 1);
    env.clock.advance(env.ctx().push.policy.ack_timeout_secs);
    let again = settle(&mut socket).await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["message_id"], newest.as_str());

    // A message sent while connected arrives at once.
    let live = send(&env.base, &d.key, &d.id, "live", "").await;
    let frame = next(&mut socket).await;
    assert_eq!(frame["message_id"], live.as_str());

    // A reconnect sends again everything stored, and nothing acknowledged.
    socket.close(None).await.unwrap();
    drop(socket);
    let mut socket = ws(&env.base, Some(&d.auth), &[&d.id]).await.unwrap();
    let frames = [next(&mut socket).await, next(&mut socket).await];
    assert_eq!([text(&frames[0]), text(&frames[1])], ["new", "live"]);
    for frame in &frames {
        ack(&mut socket, frame).await;
    }
    assert!(settle(&mut socket).await.is_empty());
    assert_eq!(pending(&env, &d.id).await, 0);
}

#[tokio::test]
async fn websocket_holds_delay_while_idle_until_active() {
    let env = TestEnv::start().await;
    let d = device(&env).await;
    let mut socket = ws(&env.base, Some(&d.auth), &[&d.id]).await.unwrap();
    say(&mut socket, serde_json::json!({ "type": "idle" })).await;
    assert!(settle(&mut socket).await.is_empty());
    send(&env.base, &d.key, &d.id, "held", r#"{"delay_while_idle":true}"#).await;
    send(&env.base, &d.key, &d.id, "now-or-never", r#"{"delay_while_idle":true,"time_to_live":0}"#)
        .await;
    send(&env.base, &d.key, &d.id, "urgent", "").await;
    let frame = next(&mut socket).await;
    assert_eq!(text(&frame), "urgent", "held messages do not go out while idle");
    assert!(settle(&mut socket).await.is_empty());
    say(&mut socket, serde_json::json!({ "type": "active" })).await;
    let frame = next(&mut socket).await;
    assert_eq!(text(&frame), "held", "a held time-to-live-0 message is dropped");
    assert!(settle(&mut socket).await.is_empty());

    // Time to live 0 reaches an active connection without being stored.
    send(&env.base, &d.key, &d.id, "instant", r#"{"time_to_live":0}"#).await;
    assert_eq!(text(&next(&mut socket).await), "instant");
    assert_eq!(pending(&env, &d.id).await, 2, "urgent and held wait for their acks");
}

#[tokio::test]
async fn connections_are_refused_with_a_clear_status() {
    let env = TestEnv::start().await;
    let d = device(&env).await;
    let (other, other_auth) = register(&env.base, &d.project, "78").await;
    let base = env.base.as_str();
    let refused = |res: Result<Ws, (u16, String)>| res.expect_err("refused");
    assert_eq!(refused(ws(base, None, &[&d.id]).await).0, 401);
    assert_eq!(refused(ws(base, Some("AidLogin 77:pi/forged"), &[&d.id]).await).0, 401);
    assert_eq!(refused(ws(base, Some(&d.auth.replace("77:", "78:")), &[&d.id]).await).0, 401);
    assert_eq!(refused(ws(base, Some("Bearer abc"), &[&d.id]).await).0, 401);
    let (status, body) = refused(ws(base, Some(&d.auth), &[]).await);
    assert_eq!(status, 400, "{body}");
    let (status, body) = refused(ws(base, Some(&d.auth), &[&d.id, &other]).await);
    assert_eq!(status, 403);
    assert_eq!(body, format!("registration id {other} is not registered to this device\n"));
    assert_eq!(refused(ws(base, Some(&other_auth), &["APA91bnot-issued"]).await).0, 403);

    // Not a WebSocket request at all.
    let res = reqwest::Client::new()
        .get(format!("{base}/push/connect?{}", query(&[&d.id])))
        .header("authorization", &d.auth)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());

    // A parallel burst of connections: exactly the limit gets through, the rest are told why.
    let limit = env.ctx().push.policy.max_connections_per_device as usize;
    let mut tasks = Vec::new();
    for _ in 0..(limit + 6) {
        let (base, auth, id) = (env.base.clone(), d.auth.clone(), d.id.clone());
        tasks.push(tokio::spawn(async move { ws(&base, Some(&auth), &[&id]).await }));
    }
    let mut held = Vec::new();
    let mut too_many = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(socket) => held.push(socket),
            Err((status, body)) => {
                assert_eq!(status, 429, "{body}");
                too_many += 1;
            }
        }
    }
    assert_eq!((held.len(), too_many), (limit, 6));
    // The other device is not affected, and a closed connection frees its place.
    let mut theirs = ws(base, Some(&other_auth), &[&other]).await.unwrap();
    assert!(settle(&mut theirs).await.is_empty());
    let mut first = held.pop().unwrap();
    first.close(None).await.unwrap();
    while timeout(GUARD, first.next()).await.expect("closed").is_some() {}
    let mut again = ws(base, Some(&d.auth), &[&d.id]).await.unwrap();
    assert!(settle(&mut again).await.is_empty());
}

#[tokio::test]
async fn malformed_frames_close_the_websocket_cleanly() {
    let env = TestEnv::start().await;
    let d = device(&env).await;
    let oversized = serde_json::json!({ "type": "ping", "pad": "x".repeat(5000) }).to_string();
    let cases = [
        Message::Text("not json".into()),
        Message::Text(r#"{"type":"dance"}"#.into()),
        Message::Text(r#"{"type":"ack"}"#.into()),
        Message::Text("[]".into()),
        Message::Binary(vec![0, 1, 2].into()),
        Message::Text(oversized.into()),
    ];
    for case in cases {
        let mut socket = ws(&env.base, Some(&d.auth), &[&d.id]).await.unwrap();
        let shown = format!("{case:?}");
        socket.send(case).await.unwrap();
        let mut closed_with = None;
        loop {
            match timeout(GUARD, socket.next()).await.expect("an end") {
                Some(Ok(Message::Close(frame))) => closed_with = frame.map(|it| it.code),
                Some(Ok(other)) => panic!("{shown}: {other:?}"),
                Some(Err(_)) | None => break,
            }
        }
        if !shown.contains("pad") {
            let expected = if shown.starts_with("Binary") {
                CloseCode::Unsupported
            } else {
                CloseCode::Policy
            };
            assert_eq!(closed_with, Some(expected), "{shown}");
        }
    }
    // Every one of them left the registry; the device connects as before.
    let mut socket = ws(&env.base, Some(&d.auth), &[&d.id]).await.unwrap();
    assert!(settle(&mut socket).await.is_empty());
    assert_eq!(env.ctx().push.registry.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parallel_burst_of_sends_is_delivered_once_each_after_acks() {
    let env = TestEnv::start().await;
    let d = device(&env).await;
    let mut socket = ws(&env.base, Some(&d.auth), &[&d.id]).await.unwrap();
    const BURST: usize = 60;
    let mut tasks = Vec::new();
    for i in 0..BURST {
        let (base, key, id) = (env.base.clone(), d.key.clone(), d.id.clone());
        tasks.push(tokio::spawn(async move { send(&base, &key, &id, &format!("m{i}"), "").await }));
    }
    let mut sent = BTreeSet::new();
    for task in tasks {
        assert!(sent.insert(task.await.unwrap()), "message ids are unique");
    }
    let mut seen = HashSet::new();
    let mut received = BTreeSet::new();
    while received.len() < BURST {
        let frame = next(&mut socket).await;
        let id = frame["message_id"].as_str().unwrap().to_owned();
        if seen.insert(id.clone()) {
            ack(&mut socket, &frame).await;
            received.insert(id);
        }
    }
    assert_eq!(received, sent);
    assert!(
        settle(&mut socket)
            .await
            .iter()
            .all(|it| seen.contains(it["message_id"].as_str().unwrap()))
    );
    assert_eq!(pending(&env, &d.id).await, 0);
    drop(socket);
    let mut socket = ws(&env.base, Some(&d.auth), &[&d.id]).await.unwrap();
    assert!(settle(&mut socket).await.is_empty(), "nothing acknowledged comes back");
}

// ---------------------------------------------------------------------------------------------
// Server-sent events

/// One event of the stream: its `id:` and its `data:`.
#[derive(Debug)]
struct Event {
    id: Option<String>,
    data: serde_json::Value,
}

struct Events {
    res: reqwest::Response,
    buffer: String,
}

async fn events(base: &str, auth: Option<&str>, ids: &[&str]) -> Result<Events, (u16, String)> {
    let mut req = reqwest::Client::new().get(format!("{base}/push/events?{}", query(ids)));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let res = timeout(GUARD, req.send()).await.expect("an answer").unwrap();
    if res.status() != 200 {
        return Err((res.status().as_u16(), res.text().await.unwrap()));
    }
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    Ok(Events { res, buffer: String::new() })
}

impl Events {
    async fn next(&mut self) -> Event {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut data) = (None, None);
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id:") {
                        id = Some(value.trim_start().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str(value.trim_start()).unwrap());
                    }
                }
                match data {
                    Some(data) => return Event { id, data },
                    None => continue, // a keep-alive comment
                }
            }
            let chunk = timeout(GUARD, self.res.chunk()).await.expect("an event").unwrap();
            let chunk = chunk.expect("the stream goes on");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

async fn post_frame(base: &str, auth: &str, frame: serde_json::Value) -> (u16, String) {
    let res = reqwest::Client::new()
        .post(format!("{base}/push/device"))
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(frame.to_string())
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn server_sent_events_deliver_and_acknowledge_by_post() {
    let env = TestEnv::start().await;
    let d = device(&env).await;
    let base = env.base.as_str();
    let first = send(base, &d.key, &d.id, "one", "").await;
    send(base, &d.key, &d.id, "old", r#"{"collapse_key":"k"}"#).await;
    send(base, &d.key, &d.id, "new", r#"{"collapse_key":"k"}"#).await;

    let mut stream = events(base, Some(&d.auth), &[&d.id]).await.unwrap();
    let event = stream.next().await;
    assert_eq!(event.id.as_deref(), Some(first.as_str()), "id: is the message id");
    assert_eq!((event.data["type"].as_str(), text(&event.data)), (Some("message"), "one"));
    assert_eq!(event.data["registration_id"], d.id.as_str());
    let collapsed = stream.next().await;
    assert_eq!(text(&collapsed.data), "new");

    let ack = |event: &Event| {
        serde_json::json!({
            "type": "ack", "registration_id": event.data["registration_id"],
            "message_id": event.data["message_id"],
        })
    };
    assert_eq!(post_frame(base, &d.auth, ack(&event)).await, (204, String::new()));
    assert_eq!(post_frame(base, &d.auth, ack(&event)).await.0, 204, "a repeat changes nothing");
    assert_eq!(pending(&env, &d.id).await, 1);
    assert_eq!(
        post_frame(base, &d.auth, serde_json::json!({ "type": "ping" })).await,
        (200, r#"{"type":"pong"}"#.to_owned())
    );
    // Unacknowledged: sent again once overdue (a new message wakes the stream), and on reconnect.
    env.clock.advance(env.ctx().push.policy.ack_timeout_secs);
    send(base, &d.key, &d.id, "later", "").await;
    let mut texts = vec![text(&stream.next().await.data).to_owned()];
    texts.push(text(&stream.next().await.data).to_owned());
    texts.sort();
    assert_eq!(texts, ["later", "new"]);
    drop(stream);
    let mut stream = events(base, Some(&d.auth), &[&d.id]).await.unwrap();
    let a = stream.next().await;
    let b = stream.next().await;
    assert_eq!([text(&a.data), text(&b.data)], ["new", "later"]);
    for event in [&a, &b] {
        assert_eq!(post_frame(base, &d.auth, ack(event)).await.0, 204);
    }
    assert_eq!(pending(&env, &d.id).await, 0);

    // Idle and active are posted; delay_while_idle waits for active.
    assert_eq!(post_frame(base, &d.auth, serde_json::json!({ "type": "idle" })).await.0, 204);
    send(base, &d.key, &d.id, "held", r#"{"delay_while_idle":true}"#).await;
    send(base, &d.key, &d.id, "urgent", "").await;
    assert_eq!(text(&stream.next().await.data), "urgent");
    assert_eq!(post_frame(base, &d.auth, serde_json::json!({ "type": "active" })).await.0, 204);
    assert_eq!(text(&stream.next().await.data), "held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_deliver_a_parallel_burst_once_each_and_take_racing_acks_once() {
    let env = TestEnv::start().await;
    let d = device(&env).await;
    let base = env.base.as_str();
    let mut stream = events(base, Some(&d.auth), &[&d.id]).await.unwrap();
    const BURST: usize = 40;
    let mut tasks = Vec::new();
    for i in 0..BURST {
        let (base, key, id) = (env.base.clone(), d.key.clone(), d.id.clone());
        tasks.push(tokio::spawn(async move { send(&base, &key, &id, &format!("m{i}"), "").await }));
    }
    let mut sent = BTreeSet::new();
    for task in tasks {
        assert!(sent.insert(task.await.unwrap()), "message ids are unique");
    }
    let mut received = Vec::new();
    while received.len() < BURST {
        let event = stream.next().await;
        assert_eq!(event.id.as_deref(), event.data["message_id"].as_str());
        received.push(event);
    }
    let ids: BTreeSet<String> =
        received.iter().map(|it| it.data["message_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, sent, "each message once, none missing");
    // Every acknowledgement posted three times at once: each message leaves the store once, and
    // the repeats change nothing.
    let mut acks = Vec::new();
    for event in &received {
        let frame = serde_json::json!({
            "type": "ack", "registration_id": d.id, "message_id": event.data["message_id"],
        });
        for _ in 0..3 {
            let (base, auth, frame) = (env.base.clone(), d.auth.clone(), frame.clone());
            acks.push(tokio::spawn(async move { post_frame(&base, &auth, frame).await }));
        }
    }
    for ack in acks {
        assert_eq!(ack.await.unwrap(), (204, String::new()));
    }
    assert_eq!(pending(&env, &d.id).await, 0);
    drop(stream);
    let mut stream = events(base, Some(&d.auth), &[&d.id]).await.unwrap();
    send(base, &d.key, &d.id, "after", "").await;
    assert_eq!(text(&stream.next().await.data), "after", "nothing acknowledged comes back");
}

#[tokio::test]
async fn server_sent_events_refuse_strangers_and_bad_frames() {
    let env = TestEnv::start().await;
    let d = device(&env).await;
    let (other, other_auth) = register(&env.base, &d.project, "78").await;
    let base = env.base.as_str();
    assert_eq!(events(base, None, &[&d.id]).await.err().unwrap().0, 401);
    assert_eq!(events(base, Some("AidLogin 77:pi/forged"), &[&d.id]).await.err().unwrap().0, 401);
    assert_eq!(events(base, Some(&d.auth), &[]).await.err().unwrap().0, 400);
    assert_eq!(events(base, Some(&d.auth), &[&other]).await.err().unwrap().0, 403);
    let limit = env.ctx().push.policy.max_connections_per_device as usize;
    let mut held = Vec::new();
    for _ in 0..limit {
        held.push(events(base, Some(&d.auth), &[&d.id]).await.unwrap());
    }
    assert_eq!(events(base, Some(&d.auth), &[&d.id]).await.err().unwrap().0, 429);
    assert_eq!(ws(base, Some(&d.auth), &[&d.id]).await.err().unwrap().0, 429, "one limit for both");

    let message = send(base, &d.key, &d.id, "mine", "").await;
    for stream in &mut held {
        assert_eq!(stream.next().await.id.as_deref(), Some(message.as_str()));
    }
    // Another device cannot acknowledge it; malformed frames are 400s; no credential is a 401.
    let foreign =
        serde_json::json!({ "type": "ack", "registration_id": d.id, "message_id": message });
    assert_eq!(post_frame(base, &other_auth, foreign.clone()).await.0, 204);
    assert_eq!(pending(&env, &d.id).await, 1, "not the other device's to acknowledge");
    let bad = serde_json::json!({ "type": "ack", "message_id": message });
    assert_eq!(post_frame(base, &d.auth, bad).await.0, 400);
    assert_eq!(post_frame(base, &d.auth, serde_json::json!({ "type": "dance" })).await.0, 400);
    assert_eq!(post_frame(base, &d.auth, serde_json::json!([])).await.0, 400);
    assert_eq!(post_frame(base, "AidLogin 77:pi/forged", foreign.clone()).await.0, 401);
    let res = reqwest::Client::new()
        .post(format!("{base}/push/device"))
        .header("authorization", &d.auth)
        .body(vec![0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(post_frame(base, &d.auth, foreign).await.0, 204);
    assert_eq!(pending(&env, &d.id).await, 0);
}

// ---------------------------------------------------------------------------------------------
// The accept loop and long-lived connections

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: tessera.test\r\n\r\n";

#[tokio::test]
async fn long_lived_connections_outlive_the_idle_timeout_and_end_with_the_server() {
    let mut env = TestEnv::with_config(|raw| raw.http.idle_timeout_ms = 100).await;
    let d = device(&env).await;
    let mut socket = ws(&env.base, Some(&d.auth), &[&d.id]).await.unwrap();
    let (id2, auth2) = register(&env.base, &d.project, "78").await;
    let mut stream = events(&env.base, Some(&auth2), &[&id2]).await.unwrap();

    // An ordinary connection left idle after its answer is still closed.
    let addr = env.base.trim_start_matches("http://");
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(HEALTHZ).await.unwrap();
    let mut out = Vec::new();
    timeout(GUARD, kept.read_to_end(&mut out)).await.expect("closed when idle").unwrap();
    assert!(String::from_utf8_lossy(&out).ends_with("\r\n\r\nok\n"));

    // Both long-lived connections, idle as long, still deliver.
    assert!(settle(&mut socket).await.is_empty());
    send(&env.base, &d.key, &d.id, "ws", "").await;
    assert_eq!(text(&next(&mut socket).await), "ws");
    send(&env.base, &d.key, &id2, "sse", "").await;
    assert_eq!(text(&stream.next().await.data), "sse");

    // Stopping the server ends them instead of waiting for them.
    let server = env.server.take().unwrap();
    timeout(GUARD, server.stop()).await.expect("stopped").unwrap();
    while let Some(Ok(_)) = timeout(GUARD, socket.next()).await.expect("the socket ends") {}
    let end = timeout(GUARD, stream.res.chunk()).await.expect("the stream ends");
    assert!(!matches!(end, Ok(Some(_))), "{end:?}");
}

// ---------------------------------------------------------------------------------------------
// Several nodes on PostgreSQL

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_deliver_to_the_node_holding_the_device() {
    let Some((url, name)) = crate::cluster::fresh_database().await else { return };
    let kek =
        tessera_crypto::kek::Kek::generate(&tessera_crypto::random::SystemRng::new()).to_base64();
    let a = crate::cluster::node(&url, &kek).await;
    let b = crate::cluster::node(&url, &kek).await;
    assert_eq!(b.ctx().store.backend(), "postgres");
    let d = device(&a).await;

    // The device is connected to node B; the sender posts to node A.
    let mut socket = ws(&b.base, Some(&d.auth), &[&d.id]).await.unwrap();
    assert!(settle(&mut socket).await.is_empty());
    let sent = send(&a.base, &d.key, &d.id, "across", "").await;
    let frame = next(&mut socket).await;
    assert_eq!((frame["message_id"].as_str(), text(&frame)), (Some(sent.as_str()), "across"));
    ack(&mut socket, &frame).await;
    assert!(settle(&mut socket).await.is_empty());
    assert_eq!(pending(&a, &d.id).await, 0, "acknowledged on B, gone for A too");
    // A now-or-never message crosses without being stored.
    send(&a.base, &d.key, &d.id, "instant", r#"{"time_to_live":0}"#).await;
    assert_eq!(text(&next(&mut socket).await), "instant");
    // A send to the node holding the device reaches it without crossing, once.
    let sent = send(&b.base, &d.key, &d.id, "local", "").await;
    let frame = next(&mut socket).await;
    assert_eq!((frame["message_id"].as_str(), text(&frame)), (Some(sent.as_str()), "local"));
    ack(&mut socket, &frame).await;
    assert!(
        settle(&mut socket).await.is_empty(),
        "no second copy from the node's own notification"
    );
    drop(socket);
    let mut socket = ws(&b.base, Some(&d.auth), &[&d.id]).await.unwrap();
    assert!(settle(&mut socket).await.is_empty(), "nothing comes back after the ack");

    // The other way round, over server-sent events: the device on A, the sender on B.
    let mut stream = events(&a.base, Some(&d.auth), &[&d.id]).await.unwrap();
    let sent = send(&b.base, &d.key, &d.id, "back", "").await;
    assert_eq!(stream.next().await.id.as_deref(), Some(sent.as_str()));
    drop((socket, stream, a, b));
    crate::cluster::drop_database(&name).await;
}

/// Records what a node's listener hands over.
#[derive(Default)]
struct Recorder {
    signals: std::sync::Mutex<Vec<tessera_store::PushSignal>>,
    resyncs: std::sync::atomic::AtomicUsize,
    changed: tokio::sync::Notify,
}

impl tessera_store::PushSignalSink for Recorder {
    fn dispatch(&self, signal: tessera_store::PushSignal) {
        self.signals.lock().unwrap().push(signal);
        self.changed.notify_one();
    }

    fn resync(&self) {
        self.resyncs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.changed.notify_one();
    }
}

impl Recorder {
    async fn until(&self, done: impl Fn(&Recorder) -> bool) {
        while !done(self) {
            timeout(GUARD, self.changed.notified()).await.expect("the listener hands it over");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_listener_resyncs_after_losing_its_connection() {
    use sqlx::Connection as _;
    use tessera_store::{PushSignal, Wakeup as _};
    let Some((url, name)) = crate::cluster::fresh_database().await else { return };
    let recorder = std::sync::Arc::new(Recorder::default());
    let wakeup = tessera_store_sql::PgWakeup::start(&url, recorder.clone()).await.unwrap();
    // Signals come from another node: a node's own reach its registry without its listener.
    let other = tessera_store_sql::PgWakeup::start(&url, std::sync::Arc::new(Recorder::default()))
        .await
        .unwrap();
    let first = PushSignal::Stored { registration: "first".to_owned(), message: None };
    other.signal(&first).await.unwrap();
    recorder.until(|it| it.signals.lock().unwrap().len() == 1).await;
    assert_eq!(recorder.signals.lock().unwrap()[0], first);
    assert_eq!(recorder.resyncs.load(std::sync::atomic::Ordering::SeqCst), 0);

    // The listener's connection is cut: once it listens again, every connection reads the store.
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    recorder.until(|it| it.resyncs.load(std::sync::atomic::Ordering::SeqCst) >= 1).await;
    let second = PushSignal::Now {
        registration: "second".to_owned(),
        frame: r#"{"type":"message"}"#.to_owned(),
        hold_while_idle: false,
    };
    other.signal(&second).await.unwrap();
    recorder.until(|it| it.signals.lock().unwrap().len() == 2).await;
    assert_eq!(recorder.signals.lock().unwrap()[1], second);
    drop((wakeup, other, admin));
    crate::cluster::drop_database(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multicast_s_signals_cross_packed_and_each_arrives_once_in_order() {
    use tessera_store::{PushSignal, StoredFrame, Wakeup as _};
    let Some((url, name)) = crate::cluster::fresh_database().await else { return };
    // Two nodes' wake-ups, and a bystander listening on the channel.
    let here = std::sync::Arc::new(Recorder::default());
    let there = std::sync::Arc::new(Recorder::default());
    let sender = tessera_store_sql::PgWakeup::start(&url, here.clone()).await.unwrap();
    let other = tessera_store_sql::PgWakeup::start(&url, there.clone()).await.unwrap();
    let mut watcher = sqlx::postgres::PgListener::connect(&url).await.unwrap();
    watcher.listen(tessera_store_sql::PUSH_CHANNEL).await.unwrap();
    let stored = |n: usize, frame: String| PushSignal::Stored {
        registration: format!("r{n}"),
        message: Some(StoredFrame {
            id: format!("m{n}"),
            frame,
            hold_while_idle: n.is_multiple_of(3),
        }),
    };
    // A multicast of 1000, one of whose frames is too large for any notification: its signal
    // crosses without the frame (the device's node reads it from the store).
    let mut signals: Vec<PushSignal> =
        (0..1000).map(|n| stored(n, format!(r#"{{"type":"message","n":{n}}}"#))).collect();
    signals[400] = stored(400, "x".repeat(9000));
    sender.signal_many(&signals).await.unwrap();
    // The sending node's registry has them at once, frames and all.
    assert_eq!(*here.signals.lock().unwrap(), signals);
    there.until(|it| it.signals.lock().unwrap().len() == 1000).await;
    let mut crossed = signals.clone();
    crossed[400] = PushSignal::Stored { registration: "r400".to_owned(), message: None };
    assert_eq!(*there.signals.lock().unwrap(), crossed);

    // They crossed packed: far fewer notifications than signals.
    let mut notifications = 0;
    let mut carried = 0;
    while carried < 1000 {
        let notification =
            timeout(GUARD, watcher.recv()).await.expect("a notification").expect("listening");
        assert!(notification.payload().len() < 8000);
        let payload: serde_json::Value = serde_json::from_str(notification.payload()).unwrap();
        notifications += 1;
        carried += payload["s"].as_array().expect("packed signals").len();
    }
    assert_eq!(carried, 1000);
    assert!(notifications <= 50, "{notifications} notifications for 1000 signals");

    // The sender skipped its own notifications when they came back: a signal from the other
    // node, sent after them, reaches it as the only other one.
    let back = PushSignal::Stored { registration: "back".to_owned(), message: None };
    other.signal(&back).await.unwrap();
    here.until(|it| it.signals.lock().unwrap().len() > 1000).await;
    assert_eq!(here.signals.lock().unwrap()[1000..], [back]);
    drop((sender, other));
    crate::cluster::drop_database(&name).await;
}

// ---------------------------------------------------------------------------------------------
// The device side: the client library's receiver and `tessera push listen`

fn receiver(base: &str, d: &Device) -> tessera_client::push::Receiver {
    receiver_with(base, d, |config| {
        config.backoff_initial = Duration::from_millis(5);
        config.backoff_max = Duration::from_millis(50);
    })
}

/// A receiver for device `d` at `base`, its configuration changed by `change`.
fn receiver_with(
    base: &str,
    d: &Device,
    change: impl FnOnce(&mut tessera_client::push::ReceiverConfig),
) -> tessera_client::push::Receiver {
    let (device, credential) = d.auth.trim_start_matches("AidLogin ").split_once(':').unwrap();
    let mut config = tessera_client::push::ReceiverConfig::new(
        base,
        device,
        credential.into(),
        vec![d.id.clone()],
    );
    change(&mut config);
    tessera_client::push::Receiver::new(config)
}

async fn next_message(
    receiver: &mut tessera_client::push::Receiver,
) -> tessera_client::push::PushMessage {
    timeout(GUARD, receiver.next()).await.expect("a message").expect("received")
}

/// How many WebSocket openings this process's servers have answered 429.
fn too_many_answered() -> u64 {
    let text = tessera::metrics_handle().expect("metrics").render();
    text.lines()
        .filter(|it| it.starts_with("tessera_http_requests_total{"))
        .filter(|it| it.contains(r#"route="/push/connect""#) && it.contains(r#"status="429""#))
        .filter_map(|it| it.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A certificate authority made for one test, and a server certificate for `localhost` it
/// issued: the authority's certificate (DER) and the server's TLS configuration.
fn localhost_pki() -> (Vec<u8>, rustls::ServerConfig) {
    static AUTHORITIES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = AUTHORITIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("Test authority {n}"));
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], der.into())
        .unwrap();
    (ca.der().to_vec(), config)
}

/// A TLS terminator for `localhost` in front of `env`, as a reverse proxy in front of tessera
/// would be: answers its `https://localhost:<port>` base and the authority that issued its
/// certificate (DER). It serves until the test ends.
async fn tls_front(env: &TestEnv) -> (String, Vec<u8>) {
    let (ca, config) = localhost_pki();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = env.base.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut plain) = TcpStream::connect(&upstream).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (format!("https://localhost:{port}"), ca)
}

struct TlsFixture {
    env: TestEnv,
    d: Device,
    /// The TLS terminator's `https://localhost:<port>`.
    front: String,
    /// The authority that issued its certificate (DER).
    ca: Vec<u8>,
    /// The message id of one message sent to `d`, "over tls".
    sent: String,
}

/// A server with a device, a TLS terminator in front of it, and one message waiting.
async fn tls_fixture() -> TlsFixture {
    let env = TestEnv::start().await;
    let d = device(&env).await;
    let (front, ca) = tls_front(&env).await;
    let sent = send(&env.base, &d.key, &d.id, "over tls", "").await;
    TlsFixture { env, d, front, ca, sent }
}

/// `wss://`: behind a TLS terminator the receiver connects with the platform's verifier and the
/// extra root it is given, receives and acknowledges; a server certificate it cannot trust is a
/// final refusal (`PushError::Certificate`), not a reconnect loop.
#[tokio::test]
async fn the_client_receiver_speaks_wss_and_refuses_an_untrusted_certificate() {
    let TlsFixture { env, d, front, ca, sent } = tls_fixture().await;
    for base in [front.clone(), front.replacen("https://", "wss://", 1)] {
        let mut receiver = receiver_trusting(&base, &d, vec![ca.clone()]);
        let message = next_message(&mut receiver).await;
        assert_eq!(message.message_id, sent, "{base}");
        assert_eq!(message.data()["text"], "over tls");
        receiver.close().await;
    }
    let mut receiver = receiver_trusting(&front, &d, vec![ca]);
    let message = next_message(&mut receiver).await;
    receiver.ack(&message.message_id).await;
    receiver.close().await;
    assert_eq!(pending(&env, &d.id).await, 0);

    // Another authority's root only: the certificate is refused at once.
    let (stranger, _) = localhost_pki();
    let mut receiver = receiver_trusting(&front, &d, vec![stranger]);
    match timeout(GUARD, receiver.next()).await.expect("an answer") {
        Err(tessera_client::push::PushError::Certificate(reason)) => {
            assert!(reason.to_lowercase().contains("issuer"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

fn receiver_trusting(
    base: &str,
    d: &Device,
    roots: Vec<Vec<u8>>,
) -> tessera_client::push::Receiver {
    receiver_with(base, d, |config| config.extra_roots = roots)
}

#[tokio::test]
async fn the_client_receiver_drops_repeats_retries_and_gives_up_on_refusal() {
    let env = TestEnv::start().await;
    let d = device(&env).await;
    let base = env.base.as_str();
    let first = send(base, &d.key, &d.id, "one", "").await;
    let mut receiver = receiver(base, &d);
    let message = next_message(&mut receiver).await;
    assert_eq!(
        (message.message_id.as_str(), message.data()["text"].as_str()),
        (first.as_str(), Some("one"))
    );
    assert_eq!(message.from.as_deref(), Some(d.project.as_str()));

    // Not acknowledged in time, "one" comes again beside "two": only "two" is yielded.
    env.clock.advance(env.ctx().push.policy.ack_timeout_secs);
    let second = send(base, &d.key, &d.id, "two", "").await;
    let message = next_message(&mut receiver).await;
    assert_eq!(message.message_id, second);
    receiver.ack(&first).await;
    receiver.ack(&second).await;
    receiver.close().await;
    assert_eq!(pending(&env, &d.id).await, 0);

    // While the device's connections are all taken (429) the receiver keeps trying (how soon it
    // tries is the unit tests' matter); once one is free it connects and receives.
    let limit = env.ctx().push.policy.max_connections_per_device as usize;
    let mut held = Vec::new();
    for _ in 0..limit {
        held.push(ws(base, Some(&d.auth), &[&d.id]).await.unwrap());
    }
    let third = send(base, &d.key, &d.id, "three", "").await;
    for socket in &mut held {
        assert_eq!(next(socket).await["message_id"], third.as_str());
    }
    let before = too_many_answered();
    let mut receiver = self::receiver(base, &d);
    let waiting = tokio::spawn(async move {
        let message = receiver.next().await.expect("received");
        (receiver, message)
    });
    // Refused twice: it came back after a 429.
    let retried = async {
        while too_many_answered() < before + 2 {
            tokio::task::yield_now().await;
        }
    };
    timeout(GUARD, retried).await.expect("the receiver tries again");
    let mut freed = held.pop().unwrap();
    freed.close(None).await.unwrap();
    while timeout(GUARD, freed.next()).await.expect("closed").is_some() {}
    let (mut receiver, message) = timeout(GUARD, waiting).await.expect("connected").unwrap();
    assert_eq!(message.message_id, third);
    receiver.ack(&third).await;
    receiver.close().await;
    assert_eq!(pending(&env, &d.id).await, 0);

    // A refused credential is final.
    let stranger = Device { auth: "AidLogin 77:pi/forged".to_owned(), ..d };
    let refused = timeout(GUARD, self::receiver(base, &stranger).next()).await.expect("an answer");
    match refused {
        Err(tessera_client::push::PushError::Refused { status: 401, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn push_listen_prints_each_message_and_acknowledges_it() {
    use tokio::io::AsyncBufReadExt as _;
    let env = TestEnv::start().await;
    let d = device(&env).await;
    let base = env.base.as_str();
    let first = send(base, &d.key, &d.id, "one", "").await;
    let (device, credential) = d.auth.trim_start_matches("AidLogin ").split_once(':').unwrap();
    let listen = |device: &str, credential: &str| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
        command
            .args(["push", "listen", "--server", base, "--device", device, "--count", "2"])
            .args(["--registration", &d.id])
            .env("TESSERA_PUSH_CREDENTIAL", credential)
            .env_remove("TESSERA_DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        command
    };
    let mut child = listen(device, credential).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = timeout(GUARD, lines.next_line()).await.expect("a line").unwrap().unwrap();
    let frame: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!((frame["message_id"].as_str(), text(&frame)), (Some(first.as_str()), "one"));
    let second = send(base, &d.key, &d.id, "two", r#"{"collapse_key":"k"}"#).await;
    let line = timeout(GUARD, lines.next_line()).await.expect("a line").unwrap().unwrap();
    let frame: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (frame["message_id"].as_str(), frame["collapse_key"].as_str()),
        (Some(second.as_str()), Some("k"))
    );
    let status = timeout(GUARD, child.wait()).await.expect("it stops after --count").unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(timeout(GUARD, lines.next_line()).await.unwrap().unwrap(), None, "one line each");
    assert_eq!(pending(&env, &d.id).await, 0, "both acknowledged");

    let out =
        timeout(GUARD, listen(device, "pi/forged").output()).await.expect("it stops").unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused the connection (401)"), "{stderr}");
    assert!(!stderr.contains("pi/forged"), "the credential is not echoed: {stderr}");
}

/// `tessera push listen` against an `https://` server behind a private authority: `--ca-cert`
/// (a PEM file) makes it trusted; without it the command stops on the refused certificate.
#[tokio::test]
async fn push_listen_trusts_a_ca_cert_file_over_wss() {
    use base64::Engine as _;
    let TlsFixture { env, d, front, ca, sent } = tls_fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let pem_path = dir.path().join("ca.pem");
    let body = base64::engine::general_purpose::STANDARD.encode(&ca);
    std::fs::write(
        &pem_path,
        format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"),
    )
    .unwrap();
    let (device, credential) = d.auth.trim_start_matches("AidLogin ").split_once(':').unwrap();
    let listen = |extra: &[&std::ffi::OsStr]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
        command
            .args(["push", "listen", "--server", &front, "--device", device, "--count", "1"])
            .args(["--registration", &d.id])
            .args(extra)
            .env("TESSERA_PUSH_CREDENTIAL", credential)
            .env_remove("TESSERA_DATABASE_URL")
            .kill_on_drop(true);
        command
    };
    let out = listen(&["--ca-cert".as_ref(), pem_path.as_os_str()]).output();
    let out = timeout(GUARD, out).await.expect("it stops after --count").unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let frame: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(frame["message_id"].as_str(), Some(sent.as_str()));
    assert_eq!(pending(&env, &d.id).await, 0, "acknowledged");

    // A stranger's root (the platform's roots know neither): refused, once.
    let (stranger, _) = localhost_pki();
    let stranger_path = dir.path().join("stranger.der");
    std::fs::write(&stranger_path, stranger).unwrap();
    let out = listen(&["--ca-cert".as_ref(), stranger_path.as_os_str()]).output();
    let out = timeout(GUARD, out).await.expect("it stops").unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate was refused"), "{stderr}");
}

/// A device that stops reading holds its connection's handler in a write; stopping the server
/// still ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_does_not_read_does_not_hold_up_the_stop() {
    const APPS: usize = 16;
    const EACH: usize = 100;
    let mut env = TestEnv::start().await;
    let d = device(&env).await;
    let mut ids = vec![d.id.clone()];
    for n in 1..APPS {
        let res = reqwest::Client::new()
            .post(env.url("/c2dm/register3"))
            .header("authorization", &d.auth)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("app=com.example.a{n}&device=77&sender={}", d.project))
            .send()
            .await
            .unwrap();
        let text = res.text().await.unwrap();
        ids.push(text.strip_prefix("token=").unwrap().trim_end().to_owned());
    }
    // A socket with a small receive buffer, never read from.
    let addr: std::net::SocketAddr = env.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let query = ids.iter().map(|id| format!("registration_id={id}")).collect::<Vec<_>>().join("&");
    let url = format!("ws://{addr}/push/connect?{query}");
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("authorization", d.auth.parse().unwrap());
    let (_silent, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();

    // Far more than the socket buffers hold: 16 × 100 messages of 4000 bytes.
    let payload = "x".repeat(4000);
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let (base, key, payload) = (env.base.clone(), d.key.clone(), payload.clone());
        tasks.spawn(async move {
            for _ in 0..EACH {
                send(&base, &key, &id, &payload, "").await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let server = env.server.take().unwrap();
    timeout(GUARD, server.stop()).await.expect("stopped").unwrap();
}
