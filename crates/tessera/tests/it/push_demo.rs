//! `serve --demo` prints a push `curl` send and a `tessera push listen` command; their values work:
//! the send with the printed key to the printed registration id is accepted, and the printed
//! install credential is the demo device's.

#[tokio::test]
async fn the_demo_prints_a_push_send_and_listen_that_work() {
    let mut demo = crate::cli::Demo::start().await;
    let line = |needle: &str| demo.line(needle);
    let base = demo.base.clone();

    // curl -H 'Authorization: key=K' -H 'Content-Type: application/json' -d 'JSON' URL
    let curl = line("/gcm/send");
    let quoted: Vec<&str> = curl.split('\'').skip(1).step_by(2).collect();
    assert_eq!(quoted.len(), 3, "{curl}");
    let key = quoted[0].strip_prefix("Authorization: key=").unwrap();
    assert!(key.starts_with("AIza"), "{curl}");
    assert!(curl.starts_with("curl ") && curl.ends_with(&format!("{base}/gcm/send")), "{curl}");
    let body: serde_json::Value = serde_json::from_str(quoted[2]).unwrap();
    let registration = body["to"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{base}/gcm/send"))
        .header("authorization", format!("key={key}"))
        .header("content-type", quoted[1].strip_prefix("Content-Type: ").unwrap())
        .body(quoted[2].to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer: serde_json::Value = res.json().await.unwrap();
    assert_eq!(answer["success"], 1, "{answer}");

    // tessera push listen --server URL --device ID --credential CRED --registration REGID
    let listen = line("tessera push listen");
    let words: Vec<&str> = listen.split_whitespace().collect();
    let flag = |name: &str| words[words.iter().position(|it| *it == name).unwrap() + 1];
    assert_eq!(flag("--server"), base);
    assert_eq!(flag("--registration"), registration);
    let (device, credential) = (flag("--device"), flag("--credential"));
    assert!(credential.starts_with("pi/"), "{listen}");
    // The printed credential is the device's: registering the demo app with it again answers
    // the printed registration id.
    let sender = line("Push messaging (C2DM/GCM) as sender id");
    let sender = sender.trim_end_matches(':').rsplit(' ').next().unwrap();
    let res = http
        .post(format!("{base}/c2dm/register3"))
        .header("authorization", format!("AidLogin {device}:{credential}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "app={}&device={device}&sender={sender}",
            tessera::demo::DEMO_ANDROID_PACKAGE
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), format!("token={registration}\n"));
    demo.child.kill().await.unwrap();
}
