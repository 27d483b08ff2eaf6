//! Push topics over HTTP: Instance ID subscriptions (one id, batches), `/gcm/send` to
//! `/topics/<name>` and the exact bodies both answer.

use tessera_domain::audit::Actor;

use crate::support::TestEnv;

pub(crate) struct Fixture {
    pub env: TestEnv,
    pub project: String,
    pub auth: String,
}

pub(crate) async fn fixture() -> Fixture {
    let env = TestEnv::start().await;
    env.account("sender@example.test", "password-1").await;
    let project =
        tessera_domain::projects::create(env.ctx(), "Pushy", "sender@example.test", &Actor::Cli)
            .await
            .unwrap()
            .id;
    let key = tessera_domain::push::create_api_key(env.ctx(), &project, "server").await.unwrap();
    Fixture { env, project, auth: format!("key={key}") }
}

/// Registers `app` as a new install; answers the registration id and the install credential.
pub(crate) async fn register(env: &TestEnv, app: &str, sender: &str) -> (String, String) {
    let res = reqwest::Client::new()
        .post(env.url("/c2dm/register3"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("app={app}&device=77&sender={sender}"))
        .send()
        .await
        .unwrap();
    let install = res.headers()["x-install-credential"].to_str().unwrap().to_owned();
    let text = res.text().await.unwrap();
    (text.strip_prefix("token=").unwrap().trim_end().to_owned(), install)
}

pub(crate) async fn post_json(env: &TestEnv, path: &str, auth: &str, body: &str) -> (u16, String) {
    let res = reqwest::Client::new()
        .post(env.url(path))
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn pending(f: &Fixture, id: &str) -> impl Future<Output = Vec<tessera_domain::push::Pending>> {
    let ctx = f.env.ctx().clone();
    let id = id.to_owned();
    async move { tessera_domain::push::pending(&ctx, &id, 100).await.unwrap() }
}

#[tokio::test]
async fn subscribe_send_to_a_topic_and_unsubscribe() {
    let f = fixture().await;
    let env = &f.env;
    let (a, _) = register(env, "com.example.a", &f.project).await;
    let (b, install_b) = register(env, "com.example.b", &f.project).await;
    let (c, _) = register(env, "com.example.c", &f.project).await;

    let (status, body) = post_json(env, &format!("/iid/v1/{a}/rel/topics/news"), &f.auth, "").await;
    assert_eq!((status, body.as_str()), (200, "{}"));
    let batch =
        format!(r#"{{"to":"/topics/news","registration_tokens":["{b}","APA91bnope","{c}"]}}"#);
    let (status, body) = post_json(env, "/iid/v1:batchAdd", &f.auth, &batch).await;
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"results":[{},{"error":"NOT_FOUND"},{}]}"#);
    let remove = format!(r#"{{"to":"/topics/news","registration_tokens":["{c}"]}}"#);
    let (status, body) = post_json(env, "/iid/v1:batchRemove", &f.auth, &remove).await;
    assert_eq!((status, body.as_str()), (200, r#"{"results":[{}]}"#));

    let send = r#"{"to":"/topics/news","data":{"headline":"hello"}}"#;
    let (status, body) = post_json(env, "/gcm/send", &f.auth, send).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(json["message_id"].is_u64(), "{body}");
    assert_eq!(json.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(pending(&f, &a).await.len(), 1);
    assert_eq!(pending(&f, &b).await.len(), 1);
    assert!(pending(&f, &c).await.is_empty(), "unsubscribed");
    let payload: serde_json::Value =
        serde_json::from_str(&pending(&f, &a).await[0].payload).unwrap();
    assert_eq!(payload["from"], "/topics/news");
    assert_eq!(payload["data"]["headline"], "hello");

    // A revoked install leaves the fan-out.
    assert!(tessera_domain::push::revoke_install(env.ctx(), &install_b).await.unwrap());
    let (status, _) = post_json(env, "/gcm/send", &f.auth, send).await;
    assert_eq!(status, 200);
    assert_eq!(pending(&f, &a).await.len(), 2);
    assert_eq!(pending(&f, &b).await.len(), 1);

    // A message-level problem is the topic's answer; nothing is stored.
    let bad = r#"{"to":"/topics/news","data":{"from":"x"}}"#;
    assert_eq!(
        post_json(env, "/gcm/send", &f.auth, bad).await,
        (200, r#"{"error":"InvalidDataKey"}"#.to_owned())
    );
    assert_eq!(pending(&f, &a).await.len(), 2);
}

#[tokio::test]
async fn bad_subscriptions_are_refused_exactly_and_change_nothing() {
    let f = fixture().await;
    let env = &f.env;
    let (a, _) = register(env, "com.example.a", &f.project).await;
    let not_found = r#"{"error":"NOT_FOUND"}"#.to_owned();
    let invalid = r#"{"error":"INVALID_ARGUMENT"}"#.to_owned();
    assert_eq!(
        post_json(env, "/iid/v1/APA91bnope/rel/topics/news", &f.auth, "").await,
        (404, not_found)
    );
    assert_eq!(
        post_json(env, &format!("/iid/v1/{a}/rel/topics/a%20b"), &f.auth, "").await,
        (400, invalid.clone())
    );
    let long = "n".repeat(901);
    assert_eq!(
        post_json(env, &format!("/iid/v1/{a}/rel/topics/{long}"), &f.auth, "").await,
        (400, invalid.clone())
    );
    let (status, body) =
        post_json(env, &format!("/iid/v1/{a}/rel/topics/news"), "key=AIzaWrong", "").await;
    assert_eq!(status, 401);
    assert!(body.contains("<H2>Error 401</H2>"));
    for bad in [
        "",
        "[]",
        "{",
        r#"{"to":"/topics/news"}"#,
        r#"{"to":"news","registration_tokens":["x"]}"#,
        r#"{"to":"/topics/news","registration_tokens":[]}"#,
        r#"{"to":"/topics/news","registration_tokens":[1]}"#,
        r#"{"to":"/topics/a b","registration_tokens":["x"]}"#,
    ] {
        assert_eq!(
            post_json(env, "/iid/v1:batchAdd", &f.auth, bad).await,
            (400, invalid.clone()),
            "{bad}"
        );
    }
    let ids: Vec<String> = (0..1001).map(|i| format!("\"r{i}\"")).collect();
    let batch = format!(r#"{{"to":"/topics/news","registration_tokens":[{}]}}"#, ids.join(","));
    assert_eq!(post_json(env, "/iid/v1:batchAdd", &f.auth, &batch).await, (400, invalid));
    let subscribed = env.ctx().store.push().subscribers(&f.project, "news", "", 10).await.unwrap();
    assert!(subscribed.is_empty(), "nothing was subscribed");
    // A bad topic in a send is a 400, as before.
    let (status, _) = post_json(env, "/gcm/send", &f.auth, r#"{"to":"/topics/a b"}"#).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_burst_of_subscriptions_gets_exactly_the_topic_cap() {
    let env = TestEnv::with_config(|c| c.push.max_topics_per_registration = 5).await;
    env.account("sender@example.test", "password-1").await;
    let project =
        tessera_domain::projects::create(env.ctx(), "Pushy", "sender@example.test", &Actor::Cli)
            .await
            .unwrap()
            .id;
    let key = tessera_domain::push::create_api_key(env.ctx(), &project, "server").await.unwrap();
    let (id, _) = register(&env, "com.example.a", &project).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let url = env.url(&format!("/iid/v1/{id}/rel/topics/t{i}"));
            let auth = format!("key={key}");
            tokio::spawn(async move {
                let res = reqwest::Client::new()
                    .post(url)
                    .header("authorization", auth)
                    .send()
                    .await
                    .unwrap();
                (res.status().as_u16(), res.text().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let added = answers.iter().filter(|it| *it == &(200, "{}".to_owned())).count();
    let refused = (400, r#"{"error":"TOO_MANY_TOPICS"}"#.to_owned());
    assert_eq!(added, 5, "{answers:?}");
    assert_eq!(answers.iter().filter(|it| **it == refused).count(), 15, "{answers:?}");
}

/// Posts a device's topic form to `register3` as install `77` with `credential`; answers the
/// body.
async fn device_topic(env: &TestEnv, credential: &str, form: &[(&str, &str)]) -> String {
    let res = reqwest::Client::new()
        .post(env.url("/c2dm/register3"))
        .header("authorization", format!("AidLogin 77:{credential}"))
        .form(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// The form Android's messaging library posts to subscribe registration `id` of `app` to `news`.
fn topic_form<'a>(app: &'a str, id: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("app", app),
        ("device", "77"),
        ("sender", id),
        ("X-gcm.topic", "/topics/news"),
        ("X-scope", "/topics/news"),
        ("X-subtype", id),
    ]
}

/// The device side of topics: the form Android's messaging library posts to `register3`
/// (`sender` the registration id, `X-gcm.topic` and `X-scope` the topic, `delete` to leave)
/// subscribes the device's own registration, answered `token=<id>`; a sender's topic send then
/// reaches it. Refusals are `Error=` lines that change nothing.
#[tokio::test]
async fn a_device_subscribes_itself_through_register3() {
    let f = fixture().await;
    let env = &f.env;
    let (a, install_a) = register(env, "com.example.a", &f.project).await;
    let (b, _) = register(env, "com.example.b", &f.project).await;
    let subscribe = topic_form("com.example.a", &a);
    let body = device_topic(env, &install_a, &subscribe).await;
    assert_eq!(body, format!("token={a}\n"));
    let send = r#"{"to":"/topics/news","data":{"headline":"hello"}}"#;
    let (status, _) = post_json(env, "/gcm/send", &f.auth, send).await;
    assert_eq!(status, 200);
    let waiting = pending(&f, &a).await;
    assert_eq!(waiting.len(), 1);
    assert!(waiting[0].payload.contains(r#""from":"/topics/news""#), "{}", waiting[0].payload);

    // Another install's registration, a wrong credential, no credential, a bad topic.
    let body = device_topic(env, &install_a, &topic_form("com.example.b", &b)).await;
    assert_eq!(body, "Error=INVALID_SENDER\n");
    let body = device_topic(env, "pi/wrong", &subscribe).await;
    assert_eq!(body, "Error=AUTHENTICATION_FAILED\n");
    let res = reqwest::Client::new()
        .post(env.url("/c2dm/register3"))
        .form(&subscribe)
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "Error=AUTHENTICATION_FAILED\n");
    let mut bad = subscribe.clone();
    bad.retain(|(k, _)| *k != "X-scope");
    bad.iter_mut().filter(|(k, _)| *k == "X-gcm.topic").for_each(|it| it.1 = "/topics/a b");
    assert_eq!(device_topic(env, &install_a, &bad).await, "Error=INVALID_PARAMETERS\n");
    let subscribers = env.ctx().store.push().subscribers(&f.project, "news", "", 10).await;
    assert_eq!(subscribers.unwrap().len(), 1, "only the device's own subscription");

    // Leaving: `delete=1`, as the library sends it, answered with the same token line.
    let mut leave = subscribe.clone();
    leave.extend([("delete", "1"), ("X-delete", "1")]);
    assert_eq!(device_topic(env, &install_a, &leave).await, format!("token={a}\n"));
    let (status, _) = post_json(env, "/gcm/send", &f.auth, send).await;
    assert_eq!(status, 200);
    assert_eq!(pending(&f, &a).await.len(), 1, "no longer on the topic");
}
