//! The push credential kinds (`push_api_key`, `push_install`, `push_registration`) at every push
//! endpoint that accepts each: refused once revoked, or once the account they hang from is
//! disabled or deleted. These kinds do not expire (they live until revoked) and projects are
//! never deleted, so those ends have no row here; a registration made through a device that is
//! gone answers `NotRegistered` at `/gcm/send` and `NOT_FOUND` at the Instance ID API.

use tessera_domain::audit::Actor;
use tessera_store::AccountState;

use crate::push_topics::post_json;
use crate::support::TestEnv;

struct Held {
    /// The API key of the project the account owns.
    key: String,
    /// Another account's project key: a sender that stays, to see the registrations die.
    control_key: String,
    install: String,
    install_registration: String,
    master: String,
    master_registration: String,
    /// The sender ids both registrations name: the account's project and the control one.
    senders: String,
}

const APP: &str = "com.example.matrix";
const INSTALL_ID: &str = "9001";

async fn register3(env: &TestEnv, auth: Option<&str>, device: &str, senders: &str) -> String {
    let mut req = reqwest::Client::new()
        .post(env.url("/c2dm/register3"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("app={APP}&device={device}&sender={senders}"));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    req.send().await.unwrap().text().await.unwrap()
}

async fn hold(s: &crate::device::Setup) -> Held {
    let env = &s.env;
    let ctx = env.ctx();
    env.account("control@example.test", "password-1").await;
    let own = tessera_domain::projects::create(ctx, "Owned", &s.account.email, &Actor::Cli)
        .await
        .unwrap()
        .id;
    let control =
        tessera_domain::projects::create(ctx, "Control", "control@example.test", &Actor::Cli)
            .await
            .unwrap()
            .id;
    let key = tessera_domain::push::create_api_key(ctx, &own, "k").await.unwrap();
    let control_key = tessera_domain::push::create_api_key(ctx, &control, "k").await.unwrap();
    let senders = format!("{own},{control}");
    let res = reqwest::Client::new()
        .post(env.url("/c2dm/register3"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("app={APP}&device={INSTALL_ID}&sender={senders}"))
        .send()
        .await
        .unwrap();
    let install = res.headers()["x-install-credential"].to_str().unwrap().to_owned();
    let text = res.text().await.unwrap();
    let install_registration = text.strip_prefix("token=").unwrap().trim_end().to_owned();
    let master = crate::device::master(
        &crate::device::master_login(env, &s.account.email, crate::device::PASSWORD).await,
    );
    let android_id = crate::device::ANDROID_ID;
    let text =
        register3(env, Some(&format!("AidLogin {android_id}:{master}")), android_id, &senders)
            .await;
    let master_registration = text.strip_prefix("token=").unwrap().trim_end().to_owned();
    Held { key, control_key, install, install_registration, master, master_registration, senders }
}

/// Each (kind@endpoint) row: whether the credential works there now.
async fn matrix(env: &TestEnv, h: &Held) -> Vec<(&'static str, bool)> {
    let send_ok = |auth: String, to: String| async move {
        let body = format!(r#"{{"registration_ids":["{to}"]}}"#);
        let (status, body) = post_json(env, "/gcm/send", &auth, &body).await;
        status == 200 && serde_json::from_str::<serde_json::Value>(&body).unwrap()["success"] == 1
    };
    let subscribe_ok = |auth: String, to: String| async move {
        post_json(env, &format!("/iid/v1/{to}/rel/topics/matrix"), &auth, "").await.0 == 200
    };
    let own = format!("key={}", h.key);
    let control = format!("key={}", h.control_key);
    let android_id = crate::device::ANDROID_ID;
    let install = format!("AidLogin {INSTALL_ID}:{}", h.install);
    let master = format!("AidLogin {android_id}:{}", h.master);
    let (a, b) = (&h.install_registration, &h.master_registration);
    vec![
        ("push_api_key@gcm_send", send_ok(own.clone(), a.clone()).await),
        ("push_api_key@iid", subscribe_ok(own, a.clone()).await),
        (
            "push_install@register3",
            register3(env, Some(&install), INSTALL_ID, &h.senders).await == format!("token={a}\n"),
        ),
        ("push_registration(install)@gcm_send", send_ok(control.clone(), a.clone()).await),
        ("push_registration(install)@iid", subscribe_ok(control.clone(), a.clone()).await),
        ("push_registration(master)@gcm_send", send_ok(control.clone(), b.clone()).await),
        ("push_registration(master)@iid", subscribe_ok(control, b.clone()).await),
        (
            "master@register3",
            register3(env, Some(&master), android_id, &h.senders).await == format!("token={b}\n"),
        ),
    ]
}

/// Rows an end does not apply to: an install device hangs from no account.
fn not_applicable(gone: &str, row: &str) -> bool {
    matches!(gone, "disabled" | "deleted")
        && (row.starts_with("push_install") || row.starts_with("push_registration(install)"))
}

#[tokio::test]
async fn push_credentials_die_with_revocation_or_their_account() {
    for gone in ["revoked", "disabled", "deleted"] {
        let s = crate::device::setup().await;
        let held = hold(&s).await;
        let before = matrix(&s.env, &held).await;
        assert!(before.iter().all(|(_, ok)| *ok), "{gone}: before {before:?}");
        let ctx = s.env.ctx();
        match gone {
            "revoked" => {
                assert!(tessera_domain::push::revoke_api_key(ctx, &held.key).await.unwrap());
                assert!(tessera_domain::push::revoke_install(ctx, &held.install).await.unwrap());
                let device = &tessera_domain::device::devices(ctx, &s.account.id).await.unwrap()[0];
                tessera_domain::grants::revoke(
                    ctx,
                    &s.account.id,
                    &device.grant_id,
                    &Actor::Account,
                    "",
                )
                .await
                .unwrap();
            }
            _ => {
                let state =
                    if gone == "disabled" { AccountState::Disabled } else { AccountState::Deleted };
                tessera_domain::accounts::set_state(ctx, &s.account, state, &Actor::Cli, "")
                    .await
                    .unwrap();
            }
        }
        let after = matrix(&s.env, &held).await;
        assert_eq!(after.len(), before.len());
        let working: Vec<_> =
            after.iter().filter(|(row, ok)| *ok && !not_applicable(gone, row)).collect();
        assert!(working.is_empty(), "{gone}: still accepted: {working:?}");
        let control: Vec<_> =
            after.iter().filter(|(row, ok)| !*ok && not_applicable(gone, row)).collect();
        assert!(control.is_empty(), "{gone}: rows without an account died: {control:?}");
    }
}
