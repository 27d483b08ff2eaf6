//! The interaction flow every browser-facing protocol shares (`domain::interaction`), seen from
//! the browser: the device flow's user-code limit under a parallel burst, its state moving in
//! place, and one consent page for OAuth 2.0, the device flow and AuthSub.

use serde_json::Value;
use tessera_domain::audit::Actor;
use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};

use crate::support::{Browser, Page, TestEnv, urlencode};

const PASSWORD: &str = "password-1";

/// A signed-in browser, and a device client ("Living room TV") of the project "Photo Printer".
async fn device_setup() -> (TestEnv, Browser, String) {
    let env = TestEnv::start().await;
    env.account("ann@example.test", PASSWORD).await;
    let project = tessera_domain::projects::create(
        env.ctx(),
        "Photo Printer",
        "ann@example.test",
        &Actor::Cli,
    )
    .await
    .unwrap();
    let new = NewClient {
        kind: ClientKind::Device,
        name: "Living room TV".to_owned(),
        redirect_uris: Vec::new(),
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    let tv = clients::create(env.ctx(), &project, new, &Actor::Cli).await.unwrap();
    let mut browser = env.browser();
    assert_eq!(browser.sign_in("ann@example.test", PASSWORD).await.status, 303);
    (env, browser, tv.client.record.client_id)
}

async fn post_json(url: &str, fields: &[(&str, &str)]) -> (u16, Value) {
    let res = reqwest::Client::new().post(url).form(fields).send().await.unwrap();
    let status = res.status().as_u16();
    (status, serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null))
}

/// Starts a device flow: `(device_code, user_code)`.
async fn start(env: &TestEnv, client_id: &str) -> (String, String) {
    let (status, json) = post_json(
        &env.url("/o/oauth2/device/code"),
        &[("client_id", client_id), ("scope", "email")],
    )
    .await;
    assert_eq!(status, 200, "{json}");
    (
        json["device_code"].as_str().unwrap().to_owned(),
        json["user_code"].as_str().unwrap().to_owned(),
    )
}

async fn poll(env: &TestEnv, client_id: &str, device_code: &str) -> (u16, Value) {
    post_json(
        &env.url("/token"),
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", client_id),
            ("device_code", device_code),
        ],
    )
    .await
}

/// A fresh CSRF token from the `/device` page.
async fn csrf(browser: &mut Browser) -> String {
    let page = browser.get("/device").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.csrf()
}

fn cookie_header(browser: &Browser) -> String {
    browser.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
}

/// What the consent page posts to `/device/approve` for `user_code`.
fn approve_request(user_code: &str) -> String {
    format!("authuser=0&user_code={}", urlencode(user_code))
}

/// Sends `fields` to `path` with the browser's cookies, without borrowing the browser: many of
/// these run at once.
async fn post_as(
    base: &str,
    cookies: &str,
    path: &str,
    fields: Vec<(&'static str, String)>,
) -> Page {
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{base}{path}"))
        .header("cookie", cookies)
        .form(&fields)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    Page { status, headers, body: res.text().await.unwrap_or_default() }
}

const TOO_MANY: &str = "Too many codes were entered. Try again later.";
const NOT_VALID: &str = "not valid";

/// `/device` and `/device/approve` both check user codes; both count, before they look, in one
/// counter per account. A hundred wrong codes at once: twenty are looked at, eighty refused, and
/// then the right code is refused too until the window passes.
#[tokio::test]
async fn a_parallel_burst_of_wrong_user_codes_stops_at_the_limit_on_every_path() {
    let (env, mut browser, tv) = device_setup().await;
    let (device_code, user_code) = start(&env, &tv).await;
    let mut tokens = Vec::new();
    for _ in 0..102 {
        tokens.push(csrf(&mut browser).await);
    }
    let cookies = cookie_header(&browser);
    let mut tasks = Vec::new();
    for (i, csrf) in tokens.drain(..100).enumerate() {
        let (base, cookies) = (env.base.clone(), cookies.clone());
        // Wrong codes of the right shape, different each time.
        let wrong = format!("BCDF-{}", ["GHJK", "GHJL", "GHJM", "GHJN"][i % 4]);
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let fields =
                    vec![("csrf", csrf), ("authuser", "0".to_owned()), ("user_code", wrong)];
                post_as(&base, &cookies, "/device", fields).await
            } else {
                let fields = vec![
                    ("csrf", csrf),
                    ("request", approve_request(&wrong)),
                    ("decision", "allow".to_owned()),
                ];
                post_as(&base, &cookies, "/device/approve", fields).await
            }
        }));
    }
    let (mut looked, mut refused) = (0, 0);
    for task in tasks {
        let page = task.await.unwrap();
        assert!(page.status < 500, "{}", page.body);
        assert!(!page.body.contains("device-done"), "a wrong code is never accepted");
        match (page.body.contains(NOT_VALID), page.body.contains(TOO_MANY)) {
            (true, false) => looked += 1,
            (false, true) => refused += 1,
            _ => panic!("{} {}", page.status, page.body),
        }
    }
    assert_eq!((looked, refused), (20, 80), "the limit holds under a burst");

    // The right code is refused now, on both paths, and the device is still waiting.
    let shown = post_as(
        &env.base,
        &cookies,
        "/device",
        vec![
            ("csrf", tokens.remove(0)),
            ("authuser", "0".to_owned()),
            ("user_code", user_code.clone()),
        ],
    )
    .await;
    assert_eq!(shown.status, 400);
    assert!(shown.body.contains(TOO_MANY), "{}", shown.body);
    assert!(shown.input("request").is_none(), "no consent page");
    let approved = post_as(
        &env.base,
        &cookies,
        "/device/approve",
        vec![
            ("csrf", tokens.remove(0)),
            ("request", approve_request(&user_code)),
            ("decision", "allow".to_owned()),
        ],
    )
    .await;
    assert!(approved.body.contains(TOO_MANY), "{}", approved.body);
    assert!(!approved.body.contains("device-done"));
    let (_, pending) = poll(&env, &tv, &device_code).await;
    assert_eq!(pending["error"], "authorization_pending");

    // A quarter hour later the count starts again.
    env.clock.advance(900);
    let csrf = csrf(&mut browser).await;
    let shown = browser
        .post("/device", &[("csrf", &csrf), ("authuser", "0"), ("user_code", &user_code)])
        .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.input("request").is_some(), "the consent page");
}

/// The request is one row whose state moves in place: approving and redeeming add no rows, and
/// of several answers sent at once exactly one is recorded.
#[tokio::test]
async fn a_device_request_is_one_row_answered_once() {
    let (env, mut browser, tv) = device_setup().await;
    let (device_code, user_code) = start(&env, &tv).await;
    let rows = env.ctx().store.credentials().count().await.unwrap();
    let mut tokens = Vec::new();
    for _ in 0..10 {
        tokens.push(csrf(&mut browser).await);
    }
    assert_eq!(env.ctx().store.credentials().count().await.unwrap(), rows, "pages add no row");
    let cookies = cookie_header(&browser);
    let mut tasks = Vec::new();
    for (i, csrf) in tokens.into_iter().enumerate() {
        let (base, cookies, request) =
            (env.base.clone(), cookies.clone(), approve_request(&user_code));
        let decision = if i % 2 == 0 { "allow" } else { "deny" };
        tasks.push(tokio::spawn(async move {
            let fields =
                vec![("csrf", csrf), ("request", request), ("decision", decision.to_owned())];
            (decision, post_as(&base, &cookies, "/device/approve", fields).await)
        }));
    }
    let mut recorded = Vec::new();
    for task in tasks {
        let (decision, page) = task.await.unwrap();
        assert_eq!(page.status, 200, "{}", page.body);
        if page.body.contains("device-done") {
            recorded.push(decision);
        } else {
            assert!(page.body.contains(NOT_VALID), "{}", page.body);
        }
    }
    assert_eq!(recorded.len(), 1, "exactly one answer is recorded: {recorded:?}");
    let credentials = env.ctx().store.credentials();
    // Each form sent leaves its CSRF nonce; the answer itself added no row.
    assert_eq!(credentials.count().await.unwrap(), rows + 10);

    env.clock.advance(5);
    let (status, answer) = poll(&env, &tv, &device_code).await;
    if recorded[0] == "allow" {
        assert_eq!(status, 200, "{answer}");
        assert!(answer["access_token"].is_string());
    } else {
        assert_eq!(answer["error"], "access_denied");
    }
    let after = credentials.count().await.unwrap();
    env.clock.advance(5);
    let (_, again) = poll(&env, &tv, &device_code).await;
    assert_eq!(again["error"], "invalid_grant", "the device hears the answer once");
    assert_eq!(credentials.count().await.unwrap(), after, "a poll adds no row");
}
