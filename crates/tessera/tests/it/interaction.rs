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

const WEB_REDIRECT: &str = "https://app.example/cb";
const CAL: &str = "http://www.example.com/calendar/feeds/";

/// A web client of the device client's project, a hosted-domain account `dee@corp.example`, and a
/// calendar service AuthSub may reach.
async fn more_setup(env: &TestEnv) -> String {
    let project = tessera_domain::projects::find_by_name(env.ctx(), "Photo Printer").await.unwrap();
    let new = NewClient {
        kind: ClientKind::Web,
        name: "Photo Printer Web".to_owned(),
        redirect_uris: vec![WEB_REDIRECT.to_owned()],
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    let web = clients::create(env.ctx(), &project, new, &Actor::Cli).await.unwrap();
    tessera_domain::accounts::add_domain(env.ctx(), "corp.example", &Actor::Cli).await.unwrap();
    let dee = tessera_domain::accounts::NewAccount {
        email: "dee@corp.example".to_owned(),
        name: "Dee".to_owned(),
        domain: Some("corp.example".to_owned()),
        password: Some(PASSWORD.to_owned()),
        is_admin: false,
        state: tessera_store::AccountState::Active,
    };
    tessera_domain::accounts::create(env.ctx(), dee, &Actor::Cli, "").await.unwrap();
    let calendar = tessera_domain::services::NewService {
        name: "cl".to_owned(),
        display_name: "Calendar".to_owned(),
        scopes: vec![CAL.to_owned()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    tessera_domain::services::add(env.ctx(), calendar, &Actor::Cli).await.unwrap();
    web.client.record.client_id
}

fn auth_path(client_id: &str, extra: &str) -> String {
    format!(
        "/o/oauth2/auth?response_type=code&client_id={}&redirect_uri={}&scope=email&state=s{extra}",
        urlencode(client_id),
        urlencode(WEB_REDIRECT)
    )
}

fn authsub_path(extra: &str) -> String {
    format!(
        "/accounts/AuthSubRequest?next={}&scope={}&session=1{extra}",
        urlencode("http://app.example.com/cb"),
        urlencode(CAL)
    )
}

fn param(location: &str, name: &str) -> Option<String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The consent page every protocol shows: its form, its buttons, the account; what it says of
/// the application depends on whether a project or a site asks.
fn assert_consent_page(page: &Page, action: &str, email: &str) {
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(&format!("<form method=\"post\" action=\"{action}\">")),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"allow\">Allow</button>"), "{}", page.body);
    assert!(page.body.contains("id=\"deny\">Deny</button>"), "{}", page.body);
    assert!(page.body.contains("Signed in as "), "{}", page.body);
    assert!(page.body.contains(email), "{}", page.body);
    assert!(!page.csrf().is_empty());
}

#[tokio::test]
async fn one_consent_page_for_every_protocol() {
    let (env, mut browser, tv) = device_setup().await;
    let web = more_setup(&env).await;
    let oauth = browser.get(&auth_path(&web, "")).await;
    assert_consent_page(&oauth, "/o/oauth2/approval", "ann@example.test");
    assert!(oauth.body.contains("Photo Printer Web wants to access your account"));
    assert!(oauth.body.contains("See your email address"), "scopes in words");
    assert!(oauth.body.contains("has not been verified"));
    let csp = oauth.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("img-src 'self' data: https:"), "a project's logo may show: {csp}");

    let (_, user_code) = start(&env, &tv).await;
    let csrf = csrf(&mut browser).await;
    let device = browser
        .post("/device", &[("csrf", &csrf), ("authuser", "0"), ("user_code", &user_code)])
        .await;
    assert_consent_page(&device, "/device/approve", "ann@example.test");
    assert!(device.body.contains("Living room TV wants to access your account"));
    assert!(device.body.contains("See your email address"));
    assert_eq!(device.headers["content-security-policy"], oauth.headers["content-security-policy"]);

    let authsub = browser.get(&authsub_path("")).await;
    assert_consent_page(&authsub, "/accounts/AuthSubRequest", "ann@example.test");
    assert!(authsub.body.contains("app.example.com wants access to your account"));
    assert!(authsub.body.contains("This application is not registered."));
    assert!(authsub.body.contains("<li>Calendar</li>"), "the services in words");
    assert!(authsub.body.contains(&format!("<code>{CAL}</code>")), "and the exact scopes");
    assert!(authsub.body.contains("Access lasts until you remove it"));
    let csp = authsub.headers["content-security-policy"].to_str().unwrap();
    assert!(!csp.contains("https:"), "no image from elsewhere on a site's page: {csp}");
}

/// The device flow always asks (the person typed a code and confirms what the device gets), and
/// what they allowed counts for the whole project afterwards, as any OAuth 2.0 consent does.
#[tokio::test]
async fn device_consent_is_always_asked_and_remembered_for_the_project() {
    let (env, mut browser, tv) = device_setup().await;
    let web = more_setup(&env).await;
    // Consent to the web client first.
    let page = browser.get(&auth_path(&web, "")).await;
    let answered = browser
        .post(
            "/o/oauth2/approval",
            &[
                ("csrf", &page.csrf()),
                ("request", &page.input("request").unwrap()),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(answered.status, 303);
    assert!(param(answered.location(), "code").is_some());
    // The device of the same project still asks.
    let (device_code, user_code) = start(&env, &tv).await;
    let csrf = csrf(&mut browser).await;
    let shown = browser
        .post("/device", &[("csrf", &csrf), ("authuser", "0"), ("user_code", &user_code)])
        .await;
    assert_consent_page(&shown, "/device/approve", "ann@example.test");
    let done = browser
        .post(
            "/device/approve",
            &[
                ("csrf", &shown.csrf()),
                ("request", &shown.input("request").unwrap()),
                ("decision", "allow"),
            ],
        )
        .await;
    assert!(done.body.contains("device-done"), "{}", done.body);
    env.clock.advance(5);
    assert_eq!(poll(&env, &tv, &device_code).await.0, 200);
    // prompt=none: the web client answers at once; prompt=consent asks again.
    let none = browser.get(&auth_path(&web, "&prompt=none")).await;
    assert_eq!(none.status, 302);
    assert!(param(none.location(), "code").is_some(), "{}", none.location());
    let forced = browser.get(&auth_path(&web, "&prompt=consent")).await;
    assert_consent_page(&forced, "/o/oauth2/approval", "ann@example.test");
}

/// Several accounts in one browser: `login_hint` and `authuser` pick one, `hd` passes over the
/// others (or, for AuthSub, refuses the one named), `prompt=select_account` and AuthSub without
/// `authuser` go to the chooser, and immediate mode answers without a page.
#[tokio::test]
async fn the_answering_account_is_chosen_the_same_way_everywhere() {
    let (env, mut browser, _) = device_setup().await;
    let web = more_setup(&env).await;
    let mut stranger = env.browser();
    let none = stranger.get(&auth_path(&web, "&prompt=none")).await;
    assert_eq!(param(none.location(), "error").as_deref(), Some("login_required"));
    // Only ann (no hosted domain) is signed in: hd=corp.example needs another account.
    let corp = browser.get(&auth_path(&web, "&hd=corp.example")).await;
    assert!(
        corp.location().starts_with("/accounts/ServiceLogin?add=1&continue="),
        "{}",
        corp.location()
    );
    let corp_none = browser.get(&auth_path(&web, "&hd=corp.example&prompt=none")).await;
    assert_eq!(param(corp_none.location(), "error").as_deref(), Some("interaction_required"));
    let consent_none = browser.get(&auth_path(&web, "&prompt=none")).await;
    assert_eq!(param(consent_none.location(), "error").as_deref(), Some("consent_required"));

    assert_eq!(browser.sign_in("dee@corp.example", PASSWORD).await.status, 303);
    let hinted = browser.get(&auth_path(&web, "&login_hint=dee%40corp.example")).await;
    assert_consent_page(&hinted, "/o/oauth2/approval", "dee@corp.example");
    assert!(hinted.input("request").unwrap().contains("authuser=1"));
    let first = browser.get(&auth_path(&web, "")).await;
    assert_consent_page(&first, "/o/oauth2/approval", "ann@example.test");
    let corp = browser.get(&auth_path(&web, "&hd=corp.example")).await;
    assert_consent_page(&corp, "/o/oauth2/approval", "dee@corp.example");
    let choose = browser.get(&auth_path(&web, "&prompt=select_account")).await;
    assert_eq!(choose.status, 302);
    assert!(
        choose.location().starts_with("/accounts/ServiceLogin?continue="),
        "{}",
        choose.location()
    );

    // AuthSub: two accounts and no authuser go to the chooser; authuser picks.
    let chooser = browser.get(&authsub_path("")).await;
    assert_eq!(chooser.status, 302);
    assert!(chooser.location().starts_with("/accounts/ServiceLogin?continue="));
    let second = browser.get(&authsub_path("&authuser=1")).await;
    assert_consent_page(&second, "/accounts/AuthSubRequest", "dee@corp.example");
    // The account named is outside hd: a page offering another, and Allow is refused; Deny is
    // always possible and grants nothing.
    let wrong = browser.get(&authsub_path("&hd=corp.example&authuser=0")).await;
    assert_eq!(wrong.status, 403);
    assert!(
        wrong.body.contains("asked for an account of corp.example; ann@example.test is not one.")
    );
    let query = format!(
        "next={}&scope={}&session=1&hd=corp.example",
        urlencode("http://app.example.com/cb"),
        urlencode(CAL)
    );
    for (action, status) in [("allow", 403), ("deny", 200)] {
        let csrf = csrf(&mut browser).await;
        let res = browser
            .post(
                "/accounts/AuthSubRequest",
                &[("csrf", &csrf), ("authuser", "0"), ("query", &query), ("action", action)],
            )
            .await;
        assert_eq!(res.status, status, "{action}: {}", res.body);
        assert!(res.location().is_empty());
    }
    let ann = env.ctx().store.accounts().find_by_email("ann@example.test").await.unwrap().unwrap();
    assert!(tessera_domain::grants::connected(env.ctx(), &ann.id).await.unwrap().is_empty());
    let csrf = csrf(&mut browser).await;
    let allowed = browser
        .post(
            "/accounts/AuthSubRequest",
            &[("csrf", &csrf), ("authuser", "1"), ("query", &query), ("action", "allow")],
        )
        .await;
    assert_eq!(allowed.status, 303, "{}", allowed.body);
    assert!(allowed.location().starts_with("http://app.example.com/cb?token="));
}
