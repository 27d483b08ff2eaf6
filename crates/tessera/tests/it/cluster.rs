//! Two server nodes on one PostgreSQL database behave as one service: a session, a CSRF token, a
//! failure counter or a CAPTCHA made on one node is honoured by the other. Runs when
//! `TESSERA_TEST_DATABASE_URL` is set (the test command sets it when PostgreSQL answers).

use sqlx::{AssertSqlSafe, Connection as _};

use crate::support::{TestEnv, test_config};

/// A fresh database on the test server, dropped by the caller.
async fn fresh_database() -> Option<(String, String)> {
    let Ok(admin_url) = std::env::var("TESSERA_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: two-node PostgreSQL tests (TESSERA_TEST_DATABASE_URL unset)");
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!("tessera_it_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').unwrap().0.to_owned();
    Some((format!("{base}/{name}"), name))
}

async fn drop_database(name: &str) {
    let admin_url = std::env::var("TESSERA_TEST_DATABASE_URL").unwrap();
    let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
    let _ = sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&mut admin)
        .await;
}

async fn node(database_url: &str, kek: &str) -> TestEnv {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = test_config(dir.path());
    raw.database_url = database_url.to_owned();
    raw.kek = kek.to_owned();
    raw.signin.captcha_after_account_failures = 2;
    TestEnv::start_raw(raw, dir, tessera::StartOptions::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_share_sessions_csrf_and_counters() {
    let Some((url, name)) = fresh_database().await else { return };
    let kek =
        tessera_crypto::kek::Kek::generate(&tessera_crypto::random::SystemRng::new()).to_base64();
    let a = node(&url, &kek).await;
    let b = node(&url, &kek).await;
    assert_eq!(a.ctx().store.backend(), "postgres");
    a.account("pg@example.test", "password-1").await;

    // A form from node A is posted to node B; the session made there works on node A.
    let mut browser = a.browser();
    let form = browser.get("/accounts/ServiceLogin").await;
    browser.base = b.base.clone();
    let res = browser
        .post(
            "/accounts/ServiceLoginAuth",
            &[("csrf", &form.csrf()), ("Email", "pg@example.test"), ("Passwd", "password-1")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    browser.base = a.base.clone();
    assert_eq!(browser.get("/account").await.status, 200);
    // The CSRF token was used on B, so A refuses it too.
    let replay = browser
        .post(
            "/accounts/ServiceLoginAuth",
            &[("csrf", &form.csrf()), ("Email", "pg@example.test"), ("Passwd", "password-1")],
        )
        .await;
    assert_eq!(replay.status, 400);

    // Failures counted on A make B ask for a CAPTCHA.
    let mut attacker = a.browser();
    attacker.sign_in("pg@example.test", "wrong-1").await;
    attacker.sign_in("pg@example.test", "wrong-2").await;
    let mut elsewhere = b.browser();
    let res = elsewhere.sign_in("pg@example.test", "password-1").await;
    assert!(res.body.contains("Type the characters you see in the picture"), "{}", res.body);

    // Signing out on B ends the session for A.
    browser.base = b.base.clone();
    browser.get("/accounts/Logout").await;
    let mut stale = a.browser();
    stale.jar = browser.jar.clone();
    assert_eq!(stale.get("/account").await.status, 302);

    drop(a);
    drop(b);
    drop_database(&name).await;
}
