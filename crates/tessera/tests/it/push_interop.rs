//! Independent GCM senders against the real server: python-gcm (PyPI) and node-gcm (npm), each
//! installed into `target/py` / `target/node` by `cargo xtask ci` or here when missing. JSON
//! multicast with mixed results, plain text (python-gcm), a topic send, a 401, and a 503 with a
//! numeric `Retry-After`, which python-gcm cannot read (it parses HTTP-dates only) and so backs
//! off by itself and reports, and node-gcm reports as the status.

use serde_json::Value;

use crate::push_limits::flaky_fixture;
use crate::push_topics::{Fixture, fixture, post_json, register};

/// `target/py` with python-gcm; `None`, said loudly, when python3 is absent.
#[allow(clippy::print_stderr)]
async fn python_gcm() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/py");
    if tokio::process::Command::new("python3").arg("--version").output().await.is_err() {
        eprintln!("SKIPPED: python-gcm interop (python3 is absent)");
        return None;
    }
    if !dir.join("gcm").exists() {
        let out = tokio::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target"])
            .arg(&dir)
            .arg("python-gcm")
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    Some(dir)
}

/// node-gcm's directory in `target/node`; `None`, said loudly, when node or npm is absent.
#[allow(clippy::print_stderr)]
async fn node_gcm() -> Option<std::path::PathBuf> {
    let prefix = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/node");
    let dir = prefix.join("node_modules/node-gcm");
    if tokio::process::Command::new("node").arg("--version").output().await.is_err() {
        eprintln!("SKIPPED: node-gcm interop (node is absent)");
        return None;
    }
    if !dir.exists() {
        let out = tokio::process::Command::new("npm")
            .args(["install", "--silent", "--prefix"])
            .arg(&prefix)
            .arg("node-gcm")
            .output()
            .await;
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!("npm install node-gcm: {}", String::from_utf8_lossy(&out.stderr)),
            Err(_) => {
                eprintln!("SKIPPED: node-gcm interop (npm is absent)");
                return None;
            }
        }
    }
    Some(dir)
}

fn script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/interop").join(name)
}

/// A server with a registration subscribed to `news`, one that is gone, and a second server whose
/// store fails (after its own registration was made).
struct Scene {
    f: Fixture,
    _down: Fixture,
    config: Value,
    good: String,
}

async fn scene() -> Scene {
    let f = fixture().await;
    let (good, _) = register(&f.env, "com.example.a", &f.project).await;
    let (gone, install) = register(&f.env, "com.example.b", &f.project).await;
    assert!(tessera_domain::push::revoke_install(f.env.ctx(), &install).await.unwrap());
    let (status, _) =
        post_json(&f.env, &format!("/iid/v1/{good}/rel/topics/news"), &f.auth, "").await;
    assert_eq!(status, 200);
    let (down, flaky) = flaky_fixture(|c| c.push.retry_after_secs = 7).await;
    let (down_good, _) = register(&down.env, "com.example.a", &down.project).await;
    flaky.fail(true);
    let config = serde_json::json!({
        "base": f.env.base,
        "key": f.auth.strip_prefix("key=").unwrap(),
        "good": good,
        "bad": "APA91bnot-one-of-ours",
        "gone": gone,
        "down_base": down.env.base,
        "down_key": down.auth.strip_prefix("key=").unwrap(),
        "down_good": down_good,
    });
    Scene { f, _down: down, config, good }
}

async fn stored_texts(f: &Fixture, id: &str) -> Vec<String> {
    let pending = tessera_domain::push::pending(f.env.ctx(), id, 100).await.unwrap();
    pending
        .iter()
        .map(|it| {
            let payload: Value = serde_json::from_str(&it.payload).unwrap();
            payload["data"]["text"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn python_gcm_sends_through_the_real_server() {
    let Some(py) = python_gcm().await else { return };
    let s = scene().await;
    let out = tokio::process::Command::new("python3")
        .arg(script("push_python_gcm.py"))
        .arg(s.config.to_string())
        .env("PYTHONPATH", &py)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stored = tessera_domain::push::pending(s.f.env.ctx(), &s.good, 100).await.unwrap();
    assert_eq!(
        got["multicast"],
        serde_json::json!({
            "errors": { "InvalidRegistration": ["APA91bnot-one-of-ours"] },
            "success": { s.good.clone(): stored[0].message_id },
        })
    );
    assert_eq!(got["plain"], Value::Null, "no canonical id");
    assert_eq!(got["plain_gone"], "NotRegistered");
    assert!(got["topic"].is_u64(), "{got}");
    assert_eq!(got["unauthorized"], true);
    assert_eq!(got["unavailable"], "Could not make request after 2 attempts");
    // python-gcm reads only HTTP-date Retry-Afters; with our number it backs off on its own
    // (between 0.5 and 1.5 seconds first), never for the bogus absolute time it would compute
    // from a date.
    let sleeps = got["sleeps"].as_array().unwrap();
    assert_eq!(sleeps.len(), 2, "{got}");
    assert!(sleeps.iter().all(|it| it.as_f64().unwrap() < 5.0), "{got}");
    assert_eq!(stored_texts(&s.f, &s.good).await, ["multicast", "plain", "topic"]);
}

#[tokio::test]
async fn node_gcm_sends_through_the_real_server() {
    let Some(dir) = node_gcm().await else { return };
    let s = scene().await;
    let out = tokio::process::Command::new("node")
        .arg(script("push_node_gcm.js"))
        .arg(&dir)
        .arg(s.config.to_string())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let multicast = &got["multicast"]["body"];
    assert_eq!(got["multicast"]["err"], Value::Null, "{got}");
    assert_eq!((multicast["success"].as_u64(), multicast["failure"].as_u64()), (Some(1), Some(1)));
    assert_eq!(multicast["results"][1]["error"], "InvalidRegistration");
    assert!(multicast["results"][0]["message_id"].as_str().unwrap().starts_with("0:"));
    assert_eq!(got["single"]["body"]["success"], 1, "{got}");
    assert!(got["topic"]["body"]["message_id"].is_u64(), "{got}");
    assert_eq!(got["unauthorized"]["err"], 401);
    assert_eq!(got["unavailable"]["err"], 503);
    assert_eq!(stored_texts(&s.f, &s.good).await, ["multicast", "single", "topic"]);
}
