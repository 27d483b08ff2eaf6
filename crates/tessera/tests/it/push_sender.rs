//! The sender tools against the real server: `tessera_client::push_sender` (GCM JSON to ids and
//! topics, C2DM with a ClientLogin `ac2dm` token, 401s, 5xx retried as `Retry-After` says) and the
//! `tessera push send` command.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_client::push_sender::{
    Answer, Credential, Message, Outcome, SendError, Sender, Target,
};
use tessera_domain::audit::Actor;

use crate::push_limits::flaky_fixture;
use crate::push_topics::{fixture, post_json, register};

fn base(env: &crate::support::TestEnv) -> url::Url {
    url::Url::parse(&format!("{}/", env.base)).unwrap()
}

fn data(text: &str) -> Message {
    Message { data: vec![("text".into(), text.into())], ..Message::default() }
}

#[tokio::test]
async fn the_sender_sends_to_ids_and_topics_and_reports_refusals() {
    let f = fixture().await;
    let env = &f.env;
    let (a, _) = register(env, "com.example.a", &f.project).await;
    let key = f.auth.strip_prefix("key=").unwrap();
    let sender = Sender::new(base(env), Credential::api_key(key));

    let answer = sender.send(&Target::Ids(vec![a.clone(), "nope".into()]), &data("hi")).await;
    let Answer::Multicast { success, failure, results, .. } = answer.unwrap() else {
        panic!("a multicast answer")
    };
    assert_eq!((success, failure), (1, 1));
    let stored = tessera_domain::push::pending(env.ctx(), &a, 10).await.unwrap();
    assert_eq!(
        results[0],
        Outcome::Sent { message_id: stored[0].message_id.clone(), canonical: None }
    );
    assert_eq!(results[1], Outcome::Failed("InvalidRegistration".into()));

    let (status, _) = post_json(env, &format!("/iid/v1/{a}/rel/topics/news"), &f.auth, "").await;
    assert_eq!(status, 200);
    let answer = sender.send(&Target::Topic("news".into()), &data("all")).await.unwrap();
    assert!(matches!(answer, Answer::Topic(Ok(id)) if id > 0), "{answer:?}");
    assert_eq!(tessera_domain::push::pending(env.ctx(), &a, 10).await.unwrap().len(), 2);
    let bad = Message { data: vec![("from".into(), "x".into())], ..Message::default() };
    let answer = sender.send(&Target::Topic("news".into()), &bad).await.unwrap();
    assert_eq!(answer, Answer::Topic(Err("InvalidDataKey".into())));

    let too_many = Target::Ids((0..1001).map(|i| format!("r{i}")).collect());
    assert!(matches!(
        sender.send(&too_many, &data("x")).await,
        Err(SendError::BadRequest(text)) if text.contains("1001")
    ));
    let stranger = Sender::new(base(env), Credential::api_key("AIzaNotAKey"));
    let refused = stranger.send(&Target::Ids(vec![a.clone()]), &data("x")).await;
    assert!(matches!(refused, Err(SendError::Unauthorized)), "{refused:?}");
    // An API key is no C2DM credential.
    let keyed = Message { collapse_key: Some("k".into()), ..data("x") };
    let refused = sender.send_c2dm(&a, &keyed).await;
    assert!(matches!(refused, Err(SendError::Unauthorized)), "{refused:?}");
}

#[tokio::test]
async fn the_sender_sends_c2dm_with_a_clientlogin_token() {
    let f = fixture().await;
    let env = &f.env;
    let service = tessera_domain::services::NewService {
        name: "ac2dm".into(),
        display_name: "Push".into(),
        scopes: vec![tessera_domain::push::PUSH_SCOPE.into()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    tessera_domain::services::add(env.ctx(), service, &Actor::Cli).await.unwrap();
    let tokens = tessera_client::client_login::ClientLogin::new(base(env))
        .login("sender@example.test", &"password-1".into(), "ac2dm", "example-sender-1")
        .await
        .unwrap();
    let (a, _) = register(env, "com.example.a", &f.project).await;
    let sender = Sender::new(base(env), Credential::ClientLogin(tokens.auth.clone()));
    let message = Message { collapse_key: Some("k".into()), ..data("c2dm") };
    let outcome = sender.send_c2dm(&a, &message).await.unwrap();
    let stored = tessera_domain::push::pending(env.ctx(), &a, 10).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Sent { message_id: stored[0].message_id.clone(), canonical: None }
    );
    assert_eq!(
        sender.send_c2dm("APA91bnope", &message).await.unwrap(),
        Outcome::Failed("InvalidRegistration".into())
    );
    let no_key = Message { collapse_key: None, ..data("c2dm") };
    assert_eq!(
        sender.send_c2dm(&a, &no_key).await.unwrap(),
        Outcome::Failed("MissingCollapseKey".into())
    );
}

#[tokio::test]
async fn the_sender_waits_as_retry_after_says_and_gives_up_after_its_attempts() {
    let (f, flaky) = flaky_fixture(|c| c.push.retry_after_secs = 7).await;
    let env = &f.env;
    let (a, _) = register(env, "com.example.a", &f.project).await;
    let waits = Arc::new(Mutex::new(Vec::new()));
    let recorded = waits.clone();
    let key = f.auth.strip_prefix("key=").unwrap();
    let sender =
        Sender::new(base(env), Credential::api_key(key)).with_wait(Arc::new(move |duration| {
            recorded.lock().unwrap().push(duration);
            Box::pin(async {})
        }));
    // Each send counts the sender quota first: two failed counts are two 503s.
    flaky.fail_next(2);
    let answer = sender.send(&Target::Ids(vec![a.clone()]), &data("late")).await.unwrap();
    assert!(matches!(answer, Answer::Multicast { success: 1, .. }), "{answer:?}");
    assert_eq!(*waits.lock().unwrap(), [Duration::from_secs(7), Duration::from_secs(7)]);

    flaky.fail(true);
    let sender = sender.with_max_attempts(3);
    let err = sender.send(&Target::Ids(vec![a.clone()]), &data("never")).await.unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Unavailable { status: 503, attempts: 3, retry_after: Some(d) }
                if d == Duration::from_secs(7)
        ),
        "{err:?}"
    );
    assert_eq!(waits.lock().unwrap().len(), 4, "two more waits between three attempts");
    assert_eq!(tessera_domain::push::pending(env.ctx(), &a, 10).await.unwrap().len(), 1);
}

fn push_send(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("push")
        .arg("send")
        .args(args)
        .env_remove("TESSERA_PUSH_KEY")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn tessera_push_send_sends_and_prints_the_outcome() {
    let f = fixture().await;
    let env = &f.env;
    let (a, _) = register(env, "com.example.a", &f.project).await;
    let key = f.auth.strip_prefix("key=").unwrap().to_owned();
    let server = env.base.clone();
    let (code, out, err) = {
        let (server, key, a) = (server.clone(), key.clone(), a.clone());
        tokio::task::spawn_blocking(move || {
            push_send(&[
                "--server",
                &server,
                "--key",
                &key,
                "--to",
                &a,
                "--data",
                "score=4x8",
                "--data",
                "who=me",
                "--collapse-key",
                "score",
                "--ttl",
                "600",
            ])
        })
        .await
        .unwrap()
    };
    assert_eq!(code, 0, "{err}");
    let printed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed["success"], 1);
    let stored = tessera_domain::push::pending(env.ctx(), &a, 10).await.unwrap();
    assert_eq!(printed["results"][0]["message_id"], stored[0].message_id.as_str());
    let payload: serde_json::Value = serde_json::from_str(&stored[0].payload).unwrap();
    assert_eq!(payload["data"]["score"], "4x8");
    assert_eq!(payload["collapse_key"], "score");

    let (code, out, _) = {
        let (server, key) = (server.clone(), key.clone());
        tokio::task::spawn_blocking(move || {
            push_send(&["--server", &server, "--key", &key, "--topic", "news", "--dry-run"])
        })
        .await
        .unwrap()
    };
    assert_eq!(code, 0);
    assert!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["message_id"].is_u64());

    let (code, out, _) = {
        let (server, key) = (server.clone(), key.clone());
        tokio::task::spawn_blocking(move || {
            push_send(&["--server", &server, "--key", &key, "--to", "APA91bnope"])
        })
        .await
        .unwrap()
    };
    assert_eq!(code, 1, "nothing accepted");
    assert!(out.contains("InvalidRegistration"), "{out}");

    let (code, _, err) = tokio::task::spawn_blocking(move || {
        push_send(&["--server", &server, "--key", "AIzaWrong", "--to", "x"])
    })
    .await
    .unwrap();
    assert_ne!(code, 0);
    assert!(err.contains("401"), "{err}");
    let (code, _, err) = push_send(&["--server", "http://127.0.0.1:1", "--key", "k"]);
    assert_ne!(code, 0);
    assert!(err.contains("--to") || err.contains("--topic"), "{err}");
}
