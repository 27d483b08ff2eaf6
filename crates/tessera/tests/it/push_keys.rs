//! Push API keys in the developer console and the admin CLI (`tessera admin push …`): created
//! (shown once), listed without the key, revoked; an install credential revoked from the CLI.
//! Both go through the same domain functions.

use crate::cli::tessera;
use crate::push_topics::{post_json, register};
use crate::support::TestEnv;

const PASSWORD: &str = "correct horse 1";

fn revealed(body: &str) -> String {
    let start = body.find("<pre id=\"revealed\">").unwrap() + "<pre id=\"revealed\">".len();
    body[start..start + body[start..].find('<').unwrap()].to_owned()
}

async fn send_status(env: &TestEnv, key: &str, to: &str) -> (u16, String) {
    post_json(env, "/gcm/send", &format!("key={key}"), &format!(r#"{{"to":"{to}"}}"#)).await
}

#[tokio::test]
async fn the_console_creates_lists_and_revokes_push_api_keys() {
    let env = TestEnv::start().await;
    env.account("dev@example.test", PASSWORD).await;
    env.account("other@example.test", PASSWORD).await;
    let mut browser = env.browser();
    browser.sign_in("dev@example.test", PASSWORD).await;
    let page = browser.get("/console").await;
    let made = browser
        .post("/console/projects", &[("csrf", &page.csrf()), ("authuser", "0"), ("name", "Pushy")])
        .await;
    assert_eq!(made.status, 303);
    let page = browser.get("/console").await;
    assert!(page.body.contains("No API keys."));
    let project = page.input("project").unwrap();
    let (id, _) = register(&env, "com.example.a", &project).await;

    let forged = browser
        .post(
            "/console/projects/push-keys",
            &[("csrf", "x"), ("authuser", "0"), ("project", &project), ("name", "server")],
        )
        .await;
    assert_eq!(forged.status, 400, "CSRF is checked");
    assert!(tessera_domain::push::list_api_keys(env.ctx(), &project).await.unwrap().is_empty());

    let created = browser
        .post(
            "/console/projects/push-keys",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("project", &project), ("name", "server")],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(created.body.contains("Push API key"));
    let key = revealed(&created.body);
    assert!(key.starts_with("AIza"), "{key}");
    let (status, body) = send_status(&env, &key, &id).await;
    assert_eq!(status, 200, "the shown key sends: {body}");

    let page = browser.get("/console").await;
    assert!(!page.body.contains(&key), "the key is shown once");
    let listed = tessera_domain::push::list_api_keys(env.ctx(), &project).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "server");
    assert!(listed[0].last_used_at.is_some(), "the send recorded its use");
    assert!(page.body.contains(&listed[0].id));
    assert_eq!(page.input("key").as_deref(), Some(listed[0].id.as_str()));

    // Someone else can neither see nor revoke it.
    let mut other = env.browser();
    other.sign_in("other@example.test", PASSWORD).await;
    let theirs = other.get("/console").await;
    assert!(!theirs.body.contains(&listed[0].id));
    let denied = other
        .post(
            "/console/projects/push-keys/revoke",
            &[
                ("csrf", &theirs.csrf()),
                ("authuser", "0"),
                ("project", &project),
                ("key", &listed[0].id),
            ],
        )
        .await;
    assert_eq!(denied.status, 404);
    let theirs = other.get("/console").await;
    let denied = other
        .post(
            "/console/projects/push-keys",
            &[("csrf", &theirs.csrf()), ("authuser", "0"), ("project", &project), ("name", "x")],
        )
        .await;
    assert_eq!(denied.status, 404);
    assert_eq!(send_status(&env, &key, &id).await.0, 200);

    let unknown = browser
        .post(
            "/console/projects/push-keys/revoke",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("project", &project), ("key", "nope")],
        )
        .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.body.contains("No such API key."));
    let page = browser.get("/console").await;
    let revoked = browser
        .post(
            "/console/projects/push-keys/revoke",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("project", &project),
                ("key", &listed[0].id),
            ],
        )
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    assert_eq!(send_status(&env, &key, &id).await.0, 401, "a revoked key stops");
    assert!(browser.get("/console").await.body.contains("No API keys."));
}

#[tokio::test]
async fn the_admin_cli_manages_api_keys_and_revokes_installs() {
    let env = TestEnv::start().await;
    let d = env.dir.path();
    env.account("owner@example.test", PASSWORD).await;
    let (code, _, err) =
        tessera(d, &["admin", "project", "add", "Pushy", "--owner", "owner@example.test"], None);
    assert_eq!(code, 0, "{err}");
    let project = tessera_domain::projects::find_by_name(env.ctx(), "Pushy").await.unwrap().id;
    let (id, install) = register(&env, "com.example.a", &project).await;

    let args =
        ["admin", "push", "api-key", "create", "--project", "Pushy", "--name", "ci", "--json"];
    let (code, out, err) = tessera(d, &args, None);
    assert_eq!(code, 0, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(send_status(&env, &key, &id).await.0, 200);

    let (code, out, err) =
        tessera(d, &["admin", "push", "api-key", "list", "--project", &project, "--json"], None);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["id"], key_id.as_str());
    assert_eq!(listed[0]["name"], "ci");
    assert!(!out.contains(&key), "a list never shows the key");

    let (code, _, err) =
        tessera(d, &["admin", "push", "api-key", "revoke", "--project", "Pushy", "nope"], None);
    assert_ne!(code, 0);
    assert!(err.contains("no live API key"), "{err}");
    let (code, _, err) =
        tessera(d, &["admin", "push", "api-key", "list", "--project", "Nope"], None);
    assert_ne!(code, 0);
    assert!(err.contains("no project"), "{err}");
    let (code, _, err) =
        tessera(d, &["admin", "push", "api-key", "revoke", "--project", "Pushy", &key_id], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(send_status(&env, &key, &id).await.0, 401);

    let key = tessera_domain::push::create_api_key(env.ctx(), &project, "server").await.unwrap();
    assert_eq!(send_status(&env, &key, &id).await.0, 200);
    let (code, _, err) = tessera(d, &["admin", "push", "revoke-install"], Some("pi/forged\n"));
    assert_ne!(code, 0);
    assert!(err.contains("not a live install credential"), "{err}");
    let (code, _, err) =
        tessera(d, &["admin", "push", "revoke-install"], Some(&format!("{install}\n")));
    assert_eq!(code, 0, "{err}");
    let (status, body) = send_status(&env, &key, &id).await;
    assert_eq!(status, 200);
    assert!(body.contains("NotRegistered"), "{body}");
}
