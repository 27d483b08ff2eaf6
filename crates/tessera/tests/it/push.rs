//! Push messaging over HTTP: registration, GCM and C2DM sends, their errors and the stored message.

use tessera_domain::audit::Actor;

use crate::support::TestEnv;

async fn form(env: &TestEnv, path: &str, auth: Option<&str>, body: &str) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(env.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn gcm_json(env: &TestEnv, auth: &str, body: String) -> (u16, String) {
    let res = reqwest::Client::new()
        .post(env.url("/gcm/send"))
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// A `register3` request: the body, and the install credential header when one was handed out.
async fn register(env: &TestEnv, auth: Option<&str>, body: &str) -> (String, Option<String>) {
    let mut req = reqwest::Client::new()
        .post(env.url("/c2dm/register3"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let install =
        res.headers().get("x-install-credential").map(|it| it.to_str().unwrap().to_owned());
    (res.text().await.unwrap(), install)
}

#[tokio::test]
async fn register_send_and_errors() {
    let env = TestEnv::start().await;
    env.account("sender@example.test", "password-1").await;
    let project =
        tessera_domain::projects::create(env.ctx(), "Pushy", "sender@example.test", &Actor::Cli)
            .await
            .unwrap();
    let key = tessera_domain::push::create_api_key(env.ctx(), &project.id, "server").await.unwrap();
    let auth = format!("key={key}");

    let body = format!("app=com.example.notes&device=3864729817263546172&sender={}", project.id);
    let (text, install) = register(&env, None, &body).await;
    let id = text.strip_prefix("token=").unwrap().trim_end().to_owned();
    assert!(id.starts_with("APA91b") && !id.contains('='));
    let install = install.expect("a first registration hands out an install credential");
    let device = format!("AidLogin 3864729817263546172:{install}");
    assert_eq!(register(&env, Some(&device), &body).await, (text.clone(), None), "same id again");
    // The credential is bound to its install id, and nothing else proves a device.
    let other = body.replace("device=3864729817263546172", "device=42");
    let refused = ("Error=AUTHENTICATION_FAILED\n".to_owned(), None);
    assert_eq!(register(&env, Some(&format!("AidLogin 42:{install}")), &other).await, refused);
    assert_eq!(register(&env, Some(&device), &other).await, refused, "device field and header");
    assert_eq!(register(&env, Some("AidLogin 42:pi/forged"), &other).await, refused);
    assert_eq!(register(&env, Some("Bearer abc"), &other).await, refused);
    let (_, text) =
        form(&env, "/c2dm/register3", None, "app=a&device=1&sender=no-such-project").await;
    assert_eq!(text, "Error=INVALID_SENDER\n");

    let (status, text) = gcm_json(
        &env,
        &auth,
        format!(r#"{{"registration_ids":["{id}","ABC"],"collapse_key":"k","data":{{"a":"1"}}}}"#),
    )
    .await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["success"], 1);
    assert_eq!(json["failure"], 1);
    assert_eq!(json["results"][1]["error"], "InvalidRegistration");
    let pending = tessera_domain::push::pending(env.ctx(), &id, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(json["results"][0]["message_id"], pending[0].message_id.as_str());

    let ids: Vec<String> = (0..1001).map(|i| format!("\"r{i}\"")).collect();
    let (status, text) =
        gcm_json(&env, &auth, format!("{{\"registration_ids\":[{}]}}", ids.join(","))).await;
    assert_eq!(
        (status, text.as_str()),
        (400, "Number of messages on bulk (1001) exceeds maximum allowed (1000)\n")
    );

    let (status, text) = gcm_json(&env, "key=AIzaWrong", r#"{"to":"x"}"#.to_owned()).await;
    assert_eq!(status, 401);
    assert!(text.contains("<H2>Error 401</H2>"));
    // An API key is not a C2DM credential.
    let (status, _) =
        form(&env, "/c2dm/send", Some(&auth), &format!("registration_id={id}&collapse_key=k"))
            .await;
    assert_eq!(status, 401);

    let (status, text) =
        form(&env, "/gcm/send", Some(&auth), &format!("registration_id={id}&data.b=2")).await;
    assert_eq!(status, 200);
    assert!(text.starts_with("id=0:"), "{text}");

    let body = "app=com.example.notes&device=3864729817263546172&delete=true";
    assert_eq!(register(&env, None, body).await.0, "Error=AUTHENTICATION_FAILED\n");
    assert_eq!(register(&env, Some(&device), body).await.0, "deleted=com.example.notes\n");
    let (_, text) = form(&env, "/gcm/send", Some(&auth), &format!("registration_id={id}")).await;
    assert_eq!(text, "Error=NotRegistered\n");
}

#[tokio::test]
async fn a_device_registers_with_its_master_token_and_dies_with_its_grant() {
    let s = crate::device::setup().await;
    let env = &s.env;
    let project =
        tessera_domain::projects::create(env.ctx(), "Pushy", "alice@example.com", &Actor::Cli)
            .await
            .unwrap();
    let key = tessera_domain::push::create_api_key(env.ctx(), &project.id, "server").await.unwrap();
    let master = crate::device::master(
        &crate::device::master_login(env, "alice@example.com", crate::device::PASSWORD).await,
    );
    let android_id = crate::device::ANDROID_ID;
    let device = format!("AidLogin {android_id}:{master}");
    let body = format!("app=com.example.notes&device={android_id}&sender={}", project.id);
    let (text, install) = register(env, Some(&device), &body).await;
    assert_eq!(install, None, "a master-token device needs no install credential");
    let id = text.strip_prefix("token=").unwrap().trim_end().to_owned();
    assert_eq!(register(env, Some(&device), &body).await.0, text);
    let send = format!("registration_id={id}&data.a=1");
    let auth = format!("key={key}");
    let (status, text) = form(env, "/gcm/send", Some(&auth), &send).await;
    assert_eq!(status, 200);
    assert!(text.starts_with("id=0:"), "{text}");

    let grant = &tessera_domain::device::devices(env.ctx(), &s.account.id).await.unwrap()[0];
    tessera_domain::grants::revoke(env.ctx(), &s.account.id, &grant.grant_id, &Actor::Account, "")
        .await
        .unwrap();
    assert_eq!(form(env, "/gcm/send", Some(&auth), &send).await.1, "Error=NotRegistered\n");
    assert_eq!(register(env, Some(&device), &body).await.0, "Error=AUTHENTICATION_FAILED\n");
}
