//! Bad input: malformed, oversized, non-UTF-8 and random requests get clear 4xx answers, change
//! nothing, and never a 500.

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;

use crate::support::TestEnv;

#[tokio::test]
async fn malformed_forms_get_clear_errors() {
    let env = TestEnv::start().await;
    let mut b = env.browser();
    let csrf = b.get("/accounts/ServiceLogin").await.csrf();
    let res = b
        .post_raw(
            "/accounts/ServiceLoginAuth",
            "application/x-www-form-urlencoded",
            format!("csrf={csrf}&Email=%ff%fe&Passwd=x").into_bytes(),
        )
        .await;
    assert_eq!(res.status, 400);
    assert!(res.body.contains("not valid UTF-8"));
    let res = b
        .post_raw(
            "/accounts/ServiceLoginAuth",
            "application/x-www-form-urlencoded",
            b"Email=a&Email=b".to_vec(),
        )
        .await;
    assert_eq!(res.status, 400);
    assert!(res.body.contains("repeats a field"));
    let res = b.post_raw("/accounts/ServiceLoginAuth", "application/json", b"{}".to_vec()).await;
    assert_eq!(res.status, 400);
    let big = vec![b'a'; 100 * 1024];
    let res =
        b.post_raw("/accounts/ServiceLoginAuth", "application/x-www-form-urlencoded", big).await;
    assert_eq!(res.status, 413);
    let res = b.get("/accounts/ServiceLogin?continue=%ff").await;
    assert_eq!(res.status, 400);
    let res = b.get("/no/such/page").await;
    assert_eq!(res.status, 404);
    let res = b.get("/accounts/Captcha?ctoken=nope").await;
    assert_eq!(res.status, 404);
}

#[tokio::test]
async fn random_requests_never_cause_a_server_error() {
    let env = TestEnv::start().await;
    env.account("pat@example.test", "password-1").await;
    let mut b = env.browser();
    b.sign_in("pat@example.test", "password-1").await;
    let paths = [
        "/accounts/ServiceLoginAuth",
        "/accounts/SecondFactor",
        "/account/profile",
        "/account/password",
        "/account/2sv/confirm",
        "/account/app-passwords",
        "/account/app-passwords/revoke",
        "/account/sessions/revoke",
        "/setup",
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    let strategy = (0..paths.len(), proptest::collection::vec(any::<u8>(), 0..200), "[ -~]{0,80}");
    let mut cases = Vec::new();
    for _ in 0..64 {
        let tree = strategy.new_tree(&mut runner).unwrap();
        cases.push(tree.current());
    }
    for (i, body, query) in cases {
        let page = b.get("/account").await;
        let mut body = body;
        if i % 2 == 0 {
            body.extend_from_slice(format!("&csrf={}", page.csrf()).as_bytes());
        }
        let res = b.post_raw(paths[i], "application/x-www-form-urlencoded", body).await;
        assert!(res.status < 500, "{} -> {}", paths[i], res.status);
        let res =
            b.get(&format!("/accounts/ServiceLogin?{}", crate::support::urlencode(&query))).await;
        assert!(res.status < 500);
        let res = b.get(&format!("/account?authuser={}", crate::support::urlencode(&query))).await;
        assert!(res.status < 500);
        let res =
            b.get(&format!("/accounts/Captcha?ctoken={}", crate::support::urlencode(&query))).await;
        assert!(res.status < 500);
    }
    assert_eq!(b.get("/account").await.status, 200, "the session survived the noise");
}
