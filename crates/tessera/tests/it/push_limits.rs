//! Push limits over HTTP: the per-sender and per-registration quotas and the per-address limit on
//! first registrations, each hit exactly by a parallel burst; the storage limits (collapse keys,
//! time to live, the 100-message cap) with the injected clock; 503 with a numeric `Retry-After`
//! when the store fails; the `[push]` configuration reaching the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tessera_store::{Store, StoreError, Timestamp};

use crate::push_topics::{Fixture, fixture, post_json, register};
use crate::support::{TestEnv, test_config};

async fn configured(edit: impl FnOnce(&mut tessera::RawConfig)) -> Fixture {
    let env = TestEnv::with_config(edit).await;
    fixture_on(env).await
}

async fn fixture_on(env: TestEnv) -> Fixture {
    env.account("sender@example.test", "password-1").await;
    let project = tessera_domain::projects::create(
        env.ctx(),
        "Pushy",
        "sender@example.test",
        &tessera_domain::audit::Actor::Cli,
    )
    .await
    .unwrap()
    .id;
    let key = tessera_domain::push::create_api_key(env.ctx(), &project, "server").await.unwrap();
    Fixture { env, project, auth: format!("key={key}") }
}

/// Sends `n` single messages to `to` at once; answers the `error` or `"ok"` of each.
async fn burst(f: &Fixture, to: &str, n: usize) -> Vec<String> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let url = f.env.url("/gcm/send");
            let auth = f.auth.clone();
            let body = format!(r#"{{"to":"{to}","data":{{"n":"{i}"}}}}"#);
            tokio::spawn(async move {
                let res = reqwest::Client::new()
                    .post(url)
                    .header("authorization", auth)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                let json: serde_json::Value = res.json().await.unwrap();
                match json["results"][0]["error"].as_str() {
                    Some(code) => code.to_owned(),
                    None => "ok".to_owned(),
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

fn count(results: &[String], what: &str) -> usize {
    results.iter().filter(|it| *it == what).count()
}

#[tokio::test]
async fn a_burst_gets_exactly_the_sender_quota() {
    let f = configured(|c| {
        c.push.sender_per_minute = 12;
        c.push.device_per_minute = 0;
    })
    .await;
    let (id, _) = register(&f.env, "com.example.a", &f.project).await;
    let results = burst(&f, &id, 40).await;
    assert_eq!(count(&results, "ok"), 12, "{results:?}");
    assert_eq!(count(&results, "QuotaExceeded"), 28, "{results:?}");
    assert_eq!(tessera_domain::push::pending(f.env.ctx(), &id, 100).await.unwrap().len(), 12);
    // A new minute, a new quota.
    f.env.clock.advance(60);
    assert_eq!(burst(&f, &id, 1).await, ["ok"]);
}

#[tokio::test]
async fn a_burst_gets_exactly_the_registration_quota() {
    let f = configured(|c| {
        c.push.sender_per_minute = 0;
        c.push.device_per_minute = 9;
    })
    .await;
    let (id, _) = register(&f.env, "com.example.a", &f.project).await;
    let (other, _) = register(&f.env, "com.example.b", &f.project).await;
    let results = burst(&f, &id, 30).await;
    assert_eq!(count(&results, "ok"), 9, "{results:?}");
    assert_eq!(count(&results, "DeviceQuotaExceeded"), 21, "{results:?}");
    assert_eq!(burst(&f, &other, 1).await, ["ok"], "another registration has its own");
}

#[tokio::test]
async fn a_burst_of_first_registrations_gets_exactly_the_address_limit() {
    let f = configured(|c| c.push.new_installs_per_minute = 5).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let url = f.env.url("/c2dm/register3");
            let body = format!("app=com.example.a&device={i}&sender={}", f.project);
            tokio::spawn(async move {
                let res = reqwest::Client::new()
                    .post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let retry =
                    res.headers().get("retry-after").map(|it| it.to_str().unwrap().to_owned());
                let installed = res.headers().contains_key("x-install-credential");
                (res.text().await.unwrap(), retry, installed)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let made =
        answers.iter().filter(|(body, _, installed)| body.starts_with("token=") && *installed);
    assert_eq!(made.count(), 5, "{answers:?}");
    let refused: Vec<_> =
        answers.iter().filter(|(body, _, _)| body == "Error=QUOTA_EXCEEDED\n").collect();
    assert_eq!(refused.len(), 11, "{answers:?}");
    assert!(
        refused.iter().all(|(_, retry, installed)| retry.as_deref() == Some("60") && !installed)
    );
    // A device with its credential is not limited.
    f.env.clock.advance(60);
    assert!(register(&f.env, "com.example.b", &f.project).await.0.starts_with("APA91b"));
}

#[tokio::test]
async fn collapse_keys_time_to_live_and_the_100_message_cap_follow_the_clock() {
    let f = fixture().await;
    let (id, _) = register(&f.env, "com.example.a", &f.project).await;
    let (env, auth) = (&f.env, f.auth.as_str());
    let send = |body: String| async move { post_json(env, "/gcm/send", auth, &body).await };
    let pending = || tessera_domain::push::pending(env.ctx(), &id, 1000);
    for score in ["1-0", "2-0"] {
        let body = format!(r#"{{"to":"{id}","collapse_key":"score","data":{{"s":"{score}"}}}}"#);
        assert_eq!(send(body).await.0, 200);
    }
    let waiting = pending().await.unwrap();
    assert_eq!(waiting.len(), 1, "the newer message with the same key replaced the older");
    assert!(waiting[0].payload.contains("2-0"));
    let body = format!(r#"{{"to":"{id}","time_to_live":30,"data":{{"short":"1"}}}}"#);
    assert_eq!(send(body).await.0, 200);
    assert_eq!(pending().await.unwrap().len(), 2);
    f.env.clock.advance(30);
    assert_eq!(pending().await.unwrap().len(), 1, "expired after its time to live");

    for i in 0..100 {
        let body = format!(r#"{{"to":"{id}","data":{{"n":"{i}"}}}}"#);
        assert_eq!(send(body).await.0, 200);
    }
    assert_eq!(pending().await.unwrap().len(), 101);
    let body = format!(r#"{{"to":"{id}","data":{{"n":"one too many"}}}}"#);
    let (status, text) = send(body).await;
    assert_eq!(status, 200);
    assert!(text.contains("\"success\":1"), "the sender is not told: {text}");
    let waiting = pending().await.unwrap();
    assert_eq!(waiting.len(), 1, "one notice stands for everything");
    let notice: serde_json::Value = serde_json::from_str(&waiting[0].payload).unwrap();
    assert_eq!(notice["message_type"], "deleted_messages");
    assert_eq!(notice["total_deleted"], "102");
}

#[tokio::test]
async fn the_sweeper_removes_messages_whose_time_to_live_passed() {
    let f = fixture().await;
    let (id, _) = register(&f.env, "com.example.a", &f.project).await;
    let (env, auth) = (&f.env, f.auth.as_str());
    for body in [
        format!(r#"{{"to":"{id}","time_to_live":30,"data":{{"short":"1"}}}}"#),
        format!(r#"{{"to":"{id}","data":{{"long":"1"}}}}"#),
    ] {
        assert_eq!(post_json(env, "/gcm/send", auth, &body).await.0, 200);
    }
    let sweep = || tessera_domain::sweep::run_once(env.ctx(), 10);
    assert_eq!(sweep().await.unwrap(), 0, "nothing has expired");
    f.env.clock.advance(31);
    assert_eq!(sweep().await.unwrap(), 1, "the message whose time to live passed");
    assert_eq!(sweep().await.unwrap(), 0, "removed once");
    let waiting = tessera_domain::push::pending(env.ctx(), &id, 10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert!(waiting[0].payload.contains("long"), "{}", waiting[0].payload);
}

/// A store whose counters fail (the next `failures_left` counts), as when the database is
/// unreachable or its pool is exhausted.
pub(crate) struct Flaky {
    inner: Arc<dyn Store>,
    failures_left: AtomicU32,
}

impl Flaky {
    /// Fails while failures are left.
    fn take_failure(&self) -> tessera_store::Result<()> {
        let take = |left: u32| left.checked_sub(1);
        if self.failures_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, take).is_ok() {
            return Err(StoreError::Backend("pool timed out while waiting".to_owned()));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl tessera_store::CounterStore for Flaky {
    async fn hit(&self, key: &str, window: i64, now: Timestamp) -> tessera_store::Result<u32> {
        self.take_failure()?;
        self.inner.counters().hit(key, window, now).await
    }
    async fn hit_many(
        &self,
        hits: &[(String, u32)],
        window: i64,
        now: Timestamp,
    ) -> tessera_store::Result<Vec<u32>> {
        self.take_failure()?;
        self.inner.counters().hit_many(hits, window, now).await
    }
    async fn peek(&self, key: &str, now: Timestamp) -> tessera_store::Result<u32> {
        self.inner.counters().peek(key, now).await
    }
    async fn clear(&self, key: &str) -> tessera_store::Result<()> {
        self.inner.counters().clear(key).await
    }
}

#[async_trait::async_trait]
impl Store for Flaky {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn ping(&self) -> tessera_store::Result<()> {
        self.inner.ping().await
    }
    fn accounts(&self) -> &dyn tessera_store::AccountStore {
        self.inner.accounts()
    }
    fn domains(&self) -> &dyn tessera_store::DomainStore {
        self.inner.domains()
    }
    fn projects(&self) -> &dyn tessera_store::ProjectStore {
        self.inner.projects()
    }
    fn grants(&self) -> &dyn tessera_store::GrantStore {
        self.inner.grants()
    }
    fn credentials(&self) -> &dyn tessera_store::CredentialStore {
        self.inner.credentials()
    }
    fn sessions(&self) -> &dyn tessera_store::SessionStore {
        self.inner.sessions()
    }
    fn keys(&self) -> &dyn tessera_store::KeyStore {
        self.inner.keys()
    }
    fn push(&self) -> &dyn tessera_store::PushStore {
        self.inner.push()
    }
    fn legacy(&self) -> &dyn tessera_store::LegacyStore {
        self.inner.legacy()
    }
    fn audit(&self) -> &dyn tessera_store::AuditStore {
        self.inner.audit()
    }
    fn counters(&self) -> &dyn tessera_store::CounterStore {
        self
    }
    fn services(&self) -> &dyn tessera_store::ServiceStore {
        self.inner.services()
    }
    async fn heartbeat(&self, now: Timestamp) -> tessera_store::Result<()> {
        self.inner.heartbeat(now).await
    }
    async fn kek_check(&self) -> tessera_store::Result<Option<String>> {
        self.inner.kek_check().await
    }
    async fn init_kek_check(&self, sealed: &str, now: Timestamp) -> tessera_store::Result<String> {
        self.inner.init_kek_check(sealed, now).await
    }
}

/// Starts a server on a store that can be made to fail; answers the fixture and the switch.
pub(crate) async fn flaky_fixture(
    edit: impl FnOnce(&mut tessera::RawConfig),
) -> (Fixture, Arc<Flaky>) {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = test_config(dir.path());
    edit(&mut raw);
    let config = raw.validate().unwrap();
    let inner: Arc<dyn Store> = Arc::new(tessera::open_store(&config).await.unwrap());
    let flaky = Arc::new(Flaky { inner, failures_left: AtomicU32::new(0) });
    let opts = tessera::StartOptions { store: Some(flaky.clone()), ..Default::default() };
    let env = TestEnv::start_raw(raw, dir, opts).await;
    (fixture_on(env).await, flaky)
}

impl Flaky {
    /// Fails every counter from now on (`true`) or none (`false`).
    pub(crate) fn fail(&self, on: bool) {
        self.fail_next(if on { u32::MAX } else { 0 });
    }

    /// Fails the next `n` counter hits.
    pub(crate) fn fail_next(&self, n: u32) {
        self.failures_left.store(n, Ordering::SeqCst);
    }
}

async fn raw_post(
    env: &TestEnv,
    path: &str,
    auth: Option<&str>,
    content_type: &str,
    body: String,
) -> (u16, Option<String>, String) {
    let mut req =
        reqwest::Client::new().post(env.url(path)).header("content-type", content_type).body(body);
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let retry = res.headers().get("retry-after").map(|it| it.to_str().unwrap().to_owned());
    (status, retry, res.text().await.unwrap())
}

#[tokio::test]
async fn a_failing_store_answers_503_with_a_numeric_retry_after() {
    let (f, flaky) = flaky_fixture(|c| c.push.retry_after_secs = 7).await;
    let env = &f.env;
    let (id, _) = register(env, "com.example.a", &f.project).await;
    let form = "application/x-www-form-urlencoded";
    let json = "application/json";
    flaky.fail(true);
    let unavailable = (503, Some("7".to_owned()), String::new());
    assert_eq!(
        raw_post(
            env,
            "/gcm/send",
            Some(&f.auth),
            json,
            format!(r#"{{"registration_ids":["{id}"]}}"#)
        )
        .await,
        unavailable
    );
    assert_eq!(
        raw_post(env, "/gcm/send", Some(&f.auth), form, format!("registration_id={id}")).await,
        unavailable
    );
    assert_eq!(
        raw_post(
            env,
            "/c2dm/register3",
            None,
            form,
            format!("app=a&device=1&sender={}", f.project)
        )
        .await,
        unavailable
    );
    assert!(tessera_domain::push::pending(env.ctx(), &id, 10).await.unwrap().is_empty());
    // Bad input is still answered as bad input, not as unavailable.
    let (status, _, _) = raw_post(env, "/gcm/send", Some(&f.auth), json, "{".to_owned()).await;
    assert_eq!(status, 400);

    flaky.fail(false);
    let (status, retry, body) = raw_post(
        env,
        "/gcm/send",
        Some(&f.auth),
        json,
        format!(r#"{{"registration_ids":["{id}"]}}"#),
    )
    .await;
    assert_eq!((status, retry), (200, None));
    assert!(body.contains("\"success\":1"), "{body}");
}

#[test]
fn the_push_section_configures_quotas_and_delivery_and_is_checked() {
    let mut raw = tessera::RawConfig::default();
    raw.push.sender_per_minute = 5;
    raw.push.device_per_minute = 6;
    raw.push.max_topics_per_registration = 7;
    raw.push.ack_timeout_secs = 20;
    raw.push.max_connections_per_device = 2;
    let config = raw.validate().unwrap();
    let push = config.policy.push;
    assert_eq!((push.sender_per_minute, push.device_per_minute), (5, 6));
    assert_eq!(push.max_topics_per_registration, 7);
    assert_eq!(push.delivery.ack_timeout_secs, 20);
    assert_eq!(push.delivery.max_connections_per_device, 2);
    for (edit, key) in [
        (
            (|c: &mut tessera::RawConfig| c.push.max_collapse_keys = 0) as fn(&mut _),
            "push.max_collapse_keys",
        ),
        (|c| c.push.retry_after_secs = 0, "push.retry_after_secs"),
        (|c| c.push.dead_after_secs = 10, "push.dead_after_secs"),
        (|c| c.push.max_frame_bytes = 0, "push.max_frame_bytes"),
    ] {
        let mut raw = tessera::RawConfig::default();
        edit(&mut raw);
        let err = raw.validate().unwrap_err().to_string();
        assert!(err.contains(key), "{err}");
    }
}

/// Malformed and oversize input gets its exact answer and stores nothing.
/// GCM's largest multicast, 1000 registration ids in one JSON body (over 64 KiB with tessera's
/// ids), is accepted: one result per id, in request order.
#[tokio::test]
async fn a_multicast_to_1000_ids_is_accepted() {
    let f = fixture().await;
    let env = &f.env;
    let ctx = env.ctx();
    let devices: Vec<String> = (0..1000).map(|n| format!("{}", 5000 + n)).collect();
    let made = tessera_domain::push::register_new_installs(
        ctx,
        "com.example.a",
        std::slice::from_ref(&f.project),
        &devices,
    )
    .await
    .unwrap()
    .unwrap();
    let ids: Vec<String> = made.into_iter().map(|(_, id)| id).collect();
    let body = serde_json::json!({ "registration_ids": ids, "data": { "k": "v" } }).to_string();
    assert!(body.len() > 64 * 1024, "{}", body.len());
    let (status, text) = post_json(env, "/gcm/send", &f.auth, &body).await;
    assert_eq!(status, 200, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["success"], 1000, "{text}");
    assert_eq!(json["results"].as_array().unwrap().len(), 1000);
}

#[tokio::test]
async fn malformed_json_oversize_payloads_and_unknown_ids_are_answered_exactly() {
    let f = fixture().await;
    let env = &f.env;
    let (id, _) = register(env, "com.example.a", &f.project).await;
    for bad in ["{", "[]", "\"x\"", r#"{"registration_ids":"x"}"#, r#"{"to":1}"#, "{}"] {
        let (status, body) = post_json(env, "/gcm/send", &f.auth, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.ends_with('\n') && body.lines().count() == 1, "{bad}: {body:?}");
    }
    let big = "x".repeat(4097);
    let body = format!(r#"{{"registration_ids":["{id}","APA91bnope"],"data":{{"k":"{big}"}}}}"#);
    let (status, text) = post_json(env, "/gcm/send", &f.auth, &body).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["failure"], 2, "a message-level problem is every recipient's: {text}");
    assert_eq!(json["results"][0]["error"], "MessageTooBig");
    let body = format!(r#"{{"to":"/topics/news","data":{{"k":"{big}"}}}}"#);
    assert_eq!(
        post_json(env, "/gcm/send", &f.auth, &body).await,
        (200, r#"{"error":"MessageTooBig"}"#.to_owned())
    );
    // The bulk endpoints take bodies up to 128 KiB (a 1000-id multicast needs about 73 KiB): a
    // 70 KiB payload is read and answered MessageTooBig; beyond 128 KiB the body is refused
    // before it is read, and every other endpoint keeps 64 KiB.
    let large = format!(r#"{{"to":"{id}","data":{{"k":"{}"}}}}"#, "x".repeat(70 * 1024));
    let (status, text) = post_json(env, "/gcm/send", &f.auth, &large).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("MessageTooBig"), "{text}");
    let huge = format!(r#"{{"to":"{id}","data":{{"k":"{}"}}}}"#, "x".repeat(129 * 1024));
    assert_eq!(post_json(env, "/gcm/send", &f.auth, &huge).await.0, 413);
    let form = format!("registration_id={id}&collapse_key=k&data.k={}", "x".repeat(70 * 1024));
    let res = reqwest::Client::new()
        .post(env.url("/c2dm/send"))
        .header("authorization", format!("Bearer {}", "t".repeat(20)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let (status, text) =
        post_json(env, "/gcm/send", &f.auth, r#"{"registration_ids":["APA91bnope","junk",""]}"#)
            .await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let errors: Vec<_> =
        json["results"].as_array().unwrap().iter().map(|it| it["error"].clone()).collect();
    assert_eq!(errors, ["InvalidRegistration", "InvalidRegistration", "InvalidRegistration"]);
    assert!(tessera_domain::push::pending(env.ctx(), &id, 10).await.unwrap().is_empty());
}
