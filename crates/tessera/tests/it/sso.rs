//! Web single sign-on: `ServiceLogin` with `service=` hops to the service with a one-time `auth=`
//! token its back end redeems once at `ServiceAuthCheck`; `IssueAuthToken`, `TokenAuth` and
//! `MergeSession` move a sign-in into a browser with a one-time ubertoken; `Logout` tells every
//! service. The services here are played by the test: two host names (127.0.0.2, 127.0.0.3).

use tessera_domain::audit::Actor;
use tessera_domain::services::{self, NewService, ServiceWeb};

use crate::support::{Browser, Page, TestEnv, urlencode};

const A: &str = "http://127.0.0.2:9/app/";
const B: &str = "http://127.0.0.3:9/";

async fn web_service(env: &TestEnv, name: &str, prefix: &str, web: ServiceWeb) {
    let new = NewService {
        name: name.to_owned(),
        display_name: name.to_uppercase(),
        scopes: vec![format!("{prefix}api/")],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    services::add(env.ctx(), new, &Actor::Cli).await.unwrap();
    let web = ServiceWeb { prefixes: vec![prefix.to_owned()], ..web };
    services::set_web(env.ctx(), name, web, &Actor::Cli).await.unwrap();
}

async fn two_services(env: &TestEnv) {
    web_service(env, "feeds-a", A, ServiceWeb::default()).await;
    web_service(env, "feeds-b", B, ServiceWeb::default()).await;
}

fn service_login(service: &str, continue_url: &str) -> String {
    format!("/accounts/ServiceLogin?service={service}&continue={}", urlencode(continue_url))
}

fn auth_of(location: &str) -> String {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "auth")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no auth= in {location}"))
}

/// What a service's back end does with the `auth=` it got at `location`.
async fn check(env: &TestEnv, service: &str, location: &str) -> Page {
    let mut backend = Browser::new(&env.base);
    backend
        .post(
            "/accounts/ServiceAuthCheck",
            &[("auth", &auth_of(location)), ("service", service), ("continue", location)],
        )
        .await
}

fn line<'a>(body: &'a str, key: &str) -> &'a str {
    body.lines().find_map(|it| it.strip_prefix(&format!("{key}="))).unwrap_or_default()
}

#[tokio::test]
async fn signed_in_at_one_service_is_signed_in_at_another_host_without_a_password() {
    let env = TestEnv::start().await;
    two_services(&env).await;
    env.account("alice@example.test", "password-1").await;
    let mut browser = env.browser();

    // Service A sends the anonymous browser to ServiceLogin: a sign-in form coming back here.
    let form = browser.get(&service_login("feeds-a", &format!("{A}inbox?x=1"))).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let back = form.input("continue").unwrap();
    assert!(back.contains("/accounts/ServiceLogin?service=feeds%2Da&continue="), "{back}");
    let signed = browser
        .post(
            "/accounts/ServiceLoginAuth",
            &[
                ("csrf", &form.csrf()),
                ("continue", &back),
                ("Email", "alice@example.test"),
                ("Passwd", "password-1"),
            ],
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let hop = browser.get(signed.location()).await;
    assert_eq!(hop.status, 302, "{}", hop.body);
    let location = hop.location().to_owned();
    assert!(location.starts_with(&format!("{A}inbox?x=1&auth=")), "{location}");
    assert_eq!(hop.headers.get("referrer-policy").unwrap(), "no-referrer");

    // A's back end redeems it once.
    let user = check(&env, "feeds-a", &location).await;
    assert_eq!(user.status, 200, "{}", user.body);
    assert_eq!(line(&user.body, "email"), "alice@example.test");
    let session_a = line(&user.body, "session").to_owned();
    let replay = check(&env, "feeds-a", &location).await;
    assert_eq!((replay.status, replay.body.as_str()), (403, "Error=BadAuthentication\n"));

    // Service B on another host: straight back with a token, no password asked.
    let hop = browser.get(&service_login("feeds-b", B)).await;
    assert_eq!(hop.status, 302, "{}", hop.body);
    let location = hop.location().to_owned();
    assert!(location.starts_with(&format!("{B}?auth=")), "{location}");
    let user = check(&env, "feeds-b", &location).await;
    assert_eq!(line(&user.body, "email"), "alice@example.test");
    let session_b = line(&user.body, "session");
    assert!(!session_b.is_empty() && session_b != session_a, "a handle per service");

    // A token is bound to its service: B's token does not work for A.
    let hop = browser.get(&service_login("feeds-b", B)).await;
    let stolen = check(&env, "feeds-a", hop.location()).await;
    assert_eq!(stolen.status, 403);
    assert_eq!(check(&env, "feeds-b", hop.location()).await.status, 403, "used up");

    // Expired after a minute.
    let hop = browser.get(&service_login("feeds-b", B)).await;
    env.clock.advance(tessera_domain::sso::SERVICE_AUTH_TTL_SECS);
    assert_eq!(check(&env, "feeds-b", hop.location()).await.status, 403);
}

#[tokio::test]
async fn hostile_continue_urls_are_refused() {
    let env = TestEnv::start().await;
    two_services(&env).await;
    env.account("alice@example.test", "password-1").await;
    let mut browser = env.browser();
    browser.sign_in("alice@example.test", "password-1").await;
    for bad in [
        "http://evil.example/",
        "http://127.0.0.2:9/appx",
        "http://127.0.0.2:9/",
        "http://127.0.0.2:9@evil.example/app/",
        "http://127.0.0.2:9/app/../../x",
        "//evil.example/app/",
        "javascript:alert(1)",
        "http://127.0.0.3:9/",
        "/account",
        &env.url("/account"),
        "",
    ] {
        let res = browser.get(&service_login("feeds-a", bad)).await;
        assert_eq!(res.status, 400, "{bad:?}: {}", res.body);
        assert!(res.location().is_empty());
    }
    // TokenAuth checks `continue` before it uses the ubertoken up.
    let account = env.ctx().store.accounts().find_by_email("alice@example.test").await.unwrap();
    let token = tessera_domain::sso::issue_ubertoken(env.ctx(), &account.unwrap().id, None, "t")
        .await
        .unwrap();
    let mut fresh = env.browser();
    for bad in ["http://evil.example/", "//evil.example/"] {
        let res = fresh
            .get(&format!("/accounts/TokenAuth?auth={token}&continue={}", urlencode(bad)))
            .await;
        assert_eq!((res.status, res.body.as_str()), (403, "Error=Unknown\n"), "{bad}");
    }
    let res = fresh
        .get(&format!(
            "/accounts/TokenAuth?auth={token}&service=feeds-a&continue={}",
            urlencode("http://evil.example/app/")
        ))
        .await;
    assert_eq!(res.status, 403);
    let res = fresh.get(&format!("/accounts/TokenAuth?auth={token}&continue=%2Faccount")).await;
    assert_eq!(res.status, 302, "{}", res.body);
    assert!(fresh.jar.contains_key("TSID"));
}

/// A ClientLogin SID + LSID pair of `email`, for service `cl`.
pub(crate) async fn client_login(env: &TestEnv, email: &str, password: &str) -> (String, String) {
    if services::get(env.ctx(), "cl").await.is_err() {
        let new = NewService {
            name: "cl".to_owned(),
            display_name: "Calendar".to_owned(),
            scopes: vec!["https://calendar.example.test/feeds/".to_owned()],
            clientlogin_ttl_secs: None,
            protocols: None,
        };
        services::add(env.ctx(), new, &Actor::Cli).await.unwrap();
    }
    let mut app = Browser::new(&env.base);
    let res = app
        .post(
            "/accounts/ClientLogin",
            &[("Email", email), ("Passwd", password), ("service", "cl"), ("source", "test")],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    (line(&res.body, "SID").to_owned(), line(&res.body, "LSID").to_owned())
}

#[tokio::test]
async fn a_second_account_joins_through_issue_auth_token_and_merge_session() {
    let env = TestEnv::start().await;
    two_services(&env).await;
    env.account("alice@example.test", "password-1").await;
    env.account("bob@example.test", "password-2").await;
    let mut browser = env.browser();
    browser.sign_in("alice@example.test", "password-1").await;
    let before = browser.jar.get("TSID").cloned().unwrap();

    // The SID alone buys nothing, nor two halves of different logins.
    let (sid, lsid) = client_login(&env, "bob@example.test", "password-2").await;
    let (other_sid, _) = client_login(&env, "bob@example.test", "password-2").await;
    let mut app = Browser::new(&env.base);
    let res = app.post("/accounts/IssueAuthToken", &[("SID", &sid), ("service", "gaia")]).await;
    assert_eq!((res.status, res.body.as_str()), (403, "Error=BadAuthentication\n"));
    let res = app.post("/accounts/IssueAuthToken", &[("SID", &other_sid), ("LSID", &lsid)]).await;
    assert_eq!(res.status, 403);
    let res = app
        .post(
            "/IssueAuthToken",
            &[("SID", &sid), ("LSID", &lsid), ("service", "gaia"), ("Session", "false")],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let uber = res.body.clone();
    assert!(!uber.contains('\n') && !uber.contains('='), "a bare token: {uber:?}");
    let again = app.post("/accounts/IssueAuthToken", &[("SID", &sid), ("LSID", &lsid)]).await;
    assert_eq!(again.status, 403, "the pair is used up");

    // MergeSession adds bob to alice's browser; every token in the cookie is new.
    let merged = browser
        .get(&format!(
            "/MergeSession?source=test&uberauth={uber}&continue={}",
            urlencode(&env.url("/account"))
        ))
        .await;
    assert_eq!(merged.status, 302, "{}", merged.body);
    let after = browser.jar.get("TSID").cloned().unwrap();
    assert_eq!(after.split('.').count(), 2);
    assert!(!after.contains(before.as_str()), "rotated: no fixation");
    assert!(
        merged
            .headers
            .get("google-accounts-signin")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("sessionindex=1")
    );
    let list = browser.post("/ListAccounts?json=standard", &[]).await;
    assert!(list.body.contains("alice@example.test") && list.body.contains("bob@example.test"));
    let replay =
        env.browser().get(&format!("/MergeSession?uberauth={uber}&continue=%2Faccount")).await;
    assert_eq!(replay.status, 403, "an ubertoken signs in once");

    // Two accounts: ServiceLogin shows the chooser; the choice goes to the service.
    let chooser = browser.get(&service_login("feeds-a", A)).await;
    assert_eq!(chooser.status, 200);
    assert!(chooser.body.contains("bob@example.test") && chooser.body.contains("authuser=1"));
    let hop = browser.get(&format!("{}&authuser=1", service_login("feeds-a", A))).await;
    assert_eq!(hop.status, 302, "{}", hop.body);
    let user = check(&env, "feeds-a", hop.location()).await;
    assert_eq!(line(&user.body, "email"), "bob@example.test");

    // MergeSession with args= and a service: the hop carries an auth= token for the service.
    let (sid, lsid) = client_login(&env, "alice@example.test", "password-1").await;
    let uber = app.post("/accounts/IssueAuthToken", &[("SID", &sid), ("LSID", &lsid)]).await.body;
    let args = urlencode(&format!("service=feeds-b&continue={}", urlencode(B)));
    let mut fresh = env.browser();
    let hop = fresh.get(&format!("/accounts/MergeSession?uberauth={uber}&args={args}")).await;
    assert_eq!(hop.status, 302, "{}", hop.body);
    let user = check(&env, "feeds-b", hop.location()).await;
    assert_eq!(line(&user.body, "email"), "alice@example.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parallel_burst_redeems_each_token_once() {
    let env = TestEnv::start().await;
    two_services(&env).await;
    let alice = env.account("alice@example.test", "password-1").await;
    let token =
        tessera_domain::sso::issue_ubertoken(env.ctx(), &alice.id, None, "t").await.unwrap();
    let url = env.url(&format!("/accounts/TokenAuth?auth={token}&continue=%2Faccount"));
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let burst = (0..16).map(|_| {
        let http = http.clone();
        let url = url.clone();
        tokio::spawn(async move { http.get(url).send().await.unwrap().status().as_u16() })
    });
    let statuses: Vec<u16> = futures_statuses(burst).await;
    assert_eq!(statuses.iter().filter(|it| **it == 302).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|it| **it == 403).count(), 15, "{statuses:?}");

    let mut browser = env.browser();
    browser.sign_in("alice@example.test", "password-1").await;
    let hop = browser.get(&service_login("feeds-a", A)).await;
    let form = [
        ("auth".to_owned(), auth_of(hop.location())),
        ("service".to_owned(), "feeds-a".to_owned()),
        ("continue".to_owned(), hop.location().to_owned()),
    ];
    let check_url = env.url("/accounts/ServiceAuthCheck");
    let burst = (0..16).map(|_| {
        let http = http.clone();
        let url = check_url.clone();
        let form = form.clone();
        tokio::spawn(
            async move { http.post(url).form(&form).send().await.unwrap().status().as_u16() },
        )
    });
    let statuses = futures_statuses(burst).await;
    assert_eq!(statuses.iter().filter(|it| **it == 200).count(), 1, "{statuses:?}");
}

async fn futures_statuses(
    handles: impl IntoIterator<Item = tokio::task::JoinHandle<u16>>,
) -> Vec<u16> {
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

/// A service's back-channel logout endpoint, played by the test: each POST body on a channel.
async fn backchannel_endpoint() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/logout",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.3:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://127.0.0.3:{port}/logout"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_tells_every_service_front_and_back_channel() {
    let env = TestEnv::start().await;
    let (backchannel, mut notices) = backchannel_endpoint().await;
    let front = ServiceWeb { logout_url: Some(format!("{A}logout")), ..ServiceWeb::default() };
    web_service(&env, "feeds-a", A, front).await;
    let back = ServiceWeb { backchannel_logout_url: Some(backchannel), ..ServiceWeb::default() };
    web_service(&env, "feeds-b", B, back).await;
    env.account("alice@example.test", "password-1").await;
    let mut browser = env.browser();
    browser.sign_in("alice@example.test", "password-1").await;
    let at_a =
        check(&env, "feeds-a", browser.get(&service_login("feeds-a", A)).await.location()).await;
    let at_b =
        check(&env, "feeds-b", browser.get(&service_login("feeds-b", B)).await.location()).await;

    // Sign-out (started at B, which sends the browser to Logout with its continue).
    let page = browser.get(&format!("/accounts/Logout?continue={}", urlencode(B))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let img = format!("{A}logout?session={}", line(&at_a.body, "session"));
    assert!(
        page.body.contains(&img.replace('&', "&amp;")) || page.body.contains(&img),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!("url={B}")), "{}", page.body);
    let csp = page.headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("img-src 'self' data: http://127.0.0.2:9;"), "{csp}");
    assert!(!browser.jar.contains_key("TSID"));
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), notices.recv())
        .await
        .expect("a back-channel notice")
        .unwrap();
    assert_eq!(body, format!("session={}", line(&at_b.body, "session")));

    // Signed out everywhere: a service sending the browser back gets the sign-in form.
    let again = browser.get(&service_login("feeds-a", A)).await;
    assert_eq!(again.status, 200);
    assert!(again.body.contains("Passwd") || again.body.contains("password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_redeem_an_ubertoken_once() {
    let Some((url, name)) = crate::cluster::fresh_database().await else { return };
    let kek =
        tessera_crypto::kek::Kek::generate(&tessera_crypto::random::SystemRng::new()).to_base64();
    let a = crate::cluster::node(&url, &kek).await;
    let b = crate::cluster::node(&url, &kek).await;
    a.account("pg@example.test", "password-1").await;
    let (sid, lsid) = client_login(&a, "pg@example.test", "password-1").await;
    let mut app = Browser::new(&a.base);
    let uber = app.post("/accounts/IssueAuthToken", &[("SID", &sid), ("LSID", &lsid)]).await.body;
    // Minted on A, redeemed on B; then a replay on A fails.
    let mut browser = b.browser();
    let res = browser.get(&format!("/accounts/TokenAuth?auth={uber}&continue=%2Faccount")).await;
    assert_eq!(res.status, 302, "{}", res.body);
    let replay =
        a.browser().get(&format!("/accounts/TokenAuth?auth={uber}&continue=%2Faccount")).await;
    assert_eq!(replay.status, 403);

    // A race on both nodes: one winner.
    let account = a.ctx().store.accounts().find_by_email("pg@example.test").await.unwrap().unwrap();
    let token =
        tessera_domain::sso::issue_ubertoken(a.ctx(), &account.id, None, "t").await.unwrap();
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let burst = (0..16).map(|i| {
        let base = if i % 2 == 0 { a.base.clone() } else { b.base.clone() };
        let url = format!("{base}/accounts/TokenAuth?auth={token}&continue=%2Faccount");
        let http = http.clone();
        tokio::spawn(async move { http.get(url).send().await.unwrap().status().as_u16() })
    });
    let statuses = futures_statuses(burst).await;
    assert_eq!(statuses.iter().filter(|it| **it == 302).count(), 1, "{statuses:?}");
    drop(a);
    drop(b);
    crate::cluster::drop_database(&name).await;
}

/// A small "feeds" service on `host` behind the client library's layer: its one page greets the
/// signed-in account.
async fn feeds_service(env: &TestEnv, name: &str, host: &str) -> String {
    use tessera_client::sso::{SsoConfig, SsoLayer, SsoUser};
    let listener = tokio::net::TcpListener::bind(format!("{host}:0")).await.unwrap();
    let public = format!("http://{host}:{}", listener.local_addr().unwrap().port());
    let web = ServiceWeb {
        logout_url: Some(format!("{public}/sso/logout")),
        backchannel_logout_url: Some(format!("{public}/sso/backchannel")),
        ..ServiceWeb::default()
    };
    web_service(env, name, &format!("{public}/"), web).await;
    let mut config = SsoConfig::new(&env.base, name, &public);
    config.cookie_name = format!("{}SID", name.replace('-', "").to_uppercase());
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|axum::Extension(user): axum::Extension<SsoUser>| async move {
                format!("feeds for {}", user.email)
            }),
        )
        .route("/sso/logout", axum::routing::get(|| async { "" }))
        .route("/sso/backchannel", axum::routing::post(|| async { "" }))
        .layer(SsoLayer::new(config));
    tokio::spawn(async move { axum::serve(listener, app).await });
    public
}

/// Follows redirects across hosts the way a browser does, returning the last page.
async fn follow(browser: &mut Browser, mut url: String) -> (Page, usize) {
    let mut hops = 0;
    loop {
        let page = browser.get(&url).await;
        if !matches!(page.status, 302 | 303) || hops > 10 {
            return (page, hops);
        }
        let next = page.location().to_owned();
        url = if next.starts_with('/') { env_join(&browser.base, &next) } else { next };
        hops += 1;
    }
}

fn env_join(base: &str, path: &str) -> String {
    format!("{base}{path}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_feeds_services_on_two_hosts_share_one_sign_in_and_one_sign_out() {
    let env = TestEnv::start().await;
    env.account("alice@example.test", "password-1").await;
    let a = feeds_service(&env, "feeds-a", "127.0.0.2").await;
    let b = feeds_service(&env, "feeds-b", "127.0.0.3").await;
    let mut browser = env.browser();

    // At A: sent to sign in, then back with a session of A's own.
    let (form, _) = follow(&mut browser, format!("{a}/")).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let back = form.input("continue").unwrap();
    let signed = browser
        .post(
            "/accounts/ServiceLoginAuth",
            &[
                ("csrf", &form.csrf()),
                ("continue", &back),
                ("Email", "alice@example.test"),
                ("Passwd", "password-1"),
            ],
        )
        .await;
    assert_eq!(signed.status, 303);
    let (page, _) = follow(&mut browser, signed.location().to_owned()).await;
    assert_eq!(page.body, "feeds for alice@example.test");
    assert!(browser.jar.contains_key("FEEDSASID"));

    // At B, another host: signed in without a password.
    let (page, hops) = follow(&mut browser, format!("{b}/")).await;
    assert_eq!(page.body, "feeds for alice@example.test");
    assert_eq!(hops, 3, "B → ServiceLogin → B?auth= → B");

    // Sign out at B: tessera's sign-out page loads each service's logout URL.
    let (out, _) = follow(
        &mut browser,
        format!("{}/accounts/Logout?continue={}", env.base, urlencode(&format!("{b}/"))),
    )
    .await;
    assert_eq!(out.status, 200, "{}", out.body);
    let images: Vec<String> = out
        .body
        .split("src=\"")
        .skip(1)
        .filter_map(|it| it.split('"').next())
        .map(crate::support::html_unescape)
        .filter(|it| it.contains("/sso/logout"))
        .collect();
    assert_eq!(images.len(), 2, "{}", out.body);
    for image in images {
        assert_eq!(browser.get(&image).await.status, 200);
    }
    // Signed out at A as well: A sends the browser to sign in, and tessera asks for a password.
    let (page, _) = follow(&mut browser, format!("{a}/")).await;
    assert_eq!(page.status, 200);
    assert!(page.input("continue").is_some_and(|it| it.contains("ServiceLogin")), "{}", page.body);
}

#[tokio::test]
async fn check_cookie_and_passive_sign_in_answer_without_a_page() {
    let env = TestEnv::start().await;
    two_services(&env).await;
    env.account("alice@example.test", "password-1").await;
    env.account("bob@example.test", "password-2").await;
    let mut browser = env.browser();
    let here = format!("{A}x?y=1");
    let passive = |value: &str| format!("{}&passive={value}", service_login("feeds-a", &here));
    let check_cookie =
        format!("/accounts/CheckCookie?service=feeds-a&continue={}", urlencode(&here));

    // Anonymous: straight back to the service, without a token and without a page.
    for path in [passive("true"), passive("300"), check_cookie.clone()] {
        let res = browser.get(&path).await;
        assert_eq!((res.status, res.location()), (302, here.as_str()), "{path}");
    }
    // `false` or garbage is not passive: the sign-in form.
    for value in ["false", "soon"] {
        let res = browser.get(&passive(value)).await;
        assert_eq!(res.status, 200, "{value}");
        assert!(res.input("csrf").is_some());
    }
    // A hostile continue is refused on a page, passive or not.
    let hostile =
        format!("/CheckCookie?service=feeds-a&continue={}", urlencode("http://evil.example/"));
    let res = browser.get(&hostile).await;
    assert_eq!(res.status, 400);
    assert!(res.location().is_empty());
    // Without a service: `continue` either way (this server or a registered prefix), else the
    // account page.
    let res = browser.get("/CheckCookie?continue=%2Faccount").await;
    assert_eq!((res.status, res.location()), (302, env.url("/account").as_str()));
    let res =
        browser.get(&format!("/CheckCookie?continue={}", urlencode("http://evil.example/"))).await;
    assert_eq!((res.status, res.location()), (302, env.url("/account").as_str()));

    // Signed in: the service gets an `auth=` token for the account, no page shown.
    browser.sign_in("alice@example.test", "password-1").await;
    for path in [check_cookie.clone(), passive("true"), passive("60")] {
        let res = browser.get(&path).await;
        assert_eq!(res.status, 302, "{path}: {}", res.body);
        assert!(res.location().starts_with(&format!("{here}&auth=")), "{}", res.location());
        let user = check(&env, "feeds-a", res.location()).await;
        assert_eq!(line(&user.body, "email"), "alice@example.test");
    }
    let res = browser.get("/accounts/CheckCookie?continue=%2Faccount").await;
    assert_eq!(res.location(), env.url("/account?authuser=0"));

    // A number of seconds: a sign-in older than that is not used.
    env.clock.advance(600);
    let res = browser.get(&passive("300")).await;
    assert_eq!((res.status, res.location()), (302, here.as_str()));
    let res = browser.get(&passive("900")).await;
    assert!(res.location().contains("&auth="), "{}", res.location());

    // Two accounts: the first unless `authuser` names another; never the chooser.
    browser.sign_in("bob@example.test", "password-2").await;
    let res = browser.get(&check_cookie).await;
    assert_eq!(
        line(&check(&env, "feeds-a", res.location()).await.body, "email"),
        "alice@example.test"
    );
    let res = browser.get(&format!("{check_cookie}&authuser=1")).await;
    assert_eq!(
        line(&check(&env, "feeds-a", res.location()).await.body, "email"),
        "bob@example.test"
    );
    let res = browser.get(&format!("{check_cookie}&authuser=7")).await;
    assert_eq!((res.status, res.location()), (302, here.as_str()));
}

/// An OAuth 2.0 access token of `account` for a fresh client, carrying `scope`; and its grant.
pub(crate) async fn access_token_with(
    env: &TestEnv,
    account: &tessera_store::AccountRecord,
    scope: &str,
) -> (String, tessera_store::GrantRecord) {
    use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};
    let ctx = env.ctx();
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!("Browser {}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let project =
        tessera_domain::projects::create(ctx, &name, &account.email, &Actor::Cli).await.unwrap();
    let new = NewClient {
        kind: ClientKind::Installed,
        name: "Browser".to_owned(),
        redirect_uris: vec!["urn:ietf:wg:oauth:2.0:oob".to_owned()],
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    let created = clients::create(ctx, &project, new, &Actor::Cli).await.unwrap();
    let grant = tessera_domain::grants::grant(
        ctx,
        &account.id,
        created.client.id(),
        tessera_domain::credentials::Protocol::OAuth2,
        &[scope.to_owned()],
        "",
    )
    .await
    .unwrap();
    let subject = tessera_domain::oauth2::tokens::Subject {
        account_id: Some(&account.id),
        client_id: created.client.id(),
        grant_id: Some(&grant.id),
    };
    let token =
        tessera_domain::oauth2::tokens::access_token(ctx, &created.client, subject, scope, false)
            .await
            .unwrap();
    (token, grant)
}

async fn oauth_login(
    env: &TestEnv,
    query: &str,
    authorization: Option<&str>,
    form: &[(&str, &str)],
) -> Page {
    let mut req = reqwest::Client::new().post(env.url(&format!("/accounts/OAuthLogin?{query}")));
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    let res = req.form(form).send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    Page { status, headers, body: res.text().await.unwrap() }
}

async fn caller_status(env: &TestEnv, authorization: &str) -> u16 {
    reqwest::Client::new()
        .post(env.url("/accounts/caller"))
        .json(&serde_json::json!({ "authorization": authorization, "method": "GET", "url": "http://www.example.com/" }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn oauth_login_answers_an_ubertoken_or_sid_lsid_auth_for_either_spelling() {
    let env = TestEnv::start().await;
    let alice = env.account("alice@example.test", "password-1").await;
    let scope = tessera_domain::sso::oauth_login_scope(env.ctx());
    let (token, grant) = access_token_with(&env, &alice, &scope).await;
    let (narrow, _) = access_token_with(&env, &alice, "email").await;
    // The ClientLogin service the SID/LSID/Auth lines are for.
    client_login(&env, "alice@example.test", "password-1").await;

    assert_eq!(oauth_login(&env, "issueuberauth=1", None, &[]).await.status, 401);
    for spelling in ["Bearer", "OAuth"] {
        let header = format!("{spelling} {token}");
        // Ubertoken, which signs a browser in once.
        let uber = oauth_login(&env, "issueuberauth=1&source=test", Some(&header), &[]).await;
        assert_eq!(uber.status, 200, "{spelling}: {}", uber.body);
        assert!(!uber.body.contains('\n'));
        let mut browser = env.browser();
        let res = browser
            .get(&format!("/accounts/TokenAuth?auth={}&continue=%2Faccount", uber.body))
            .await;
        assert_eq!(res.status, 302, "{}", res.body);
        // SID/LSID/Auth for a service: the Auth works at the caller check, and the pair buys an
        // ubertoken at IssueAuthToken.
        let lines =
            oauth_login(&env, "", Some(&header), &[("service", "cl"), ("source", "test")]).await;
        assert_eq!(lines.status, 200, "{spelling}: {}", lines.body);
        let (sid, lsid, auth) =
            (line(&lines.body, "SID"), line(&lines.body, "LSID"), line(&lines.body, "Auth"));
        assert!(!sid.is_empty() && !lsid.is_empty() && !auth.is_empty(), "{}", lines.body);
        assert_eq!(caller_status(&env, &format!("GoogleLogin auth={auth}")).await, 200);
        let mut app = Browser::new(&env.base);
        let res = app.post("/accounts/IssueAuthToken", &[("SID", sid), ("LSID", lsid)]).await;
        assert_eq!(res.status, 200, "{}", res.body);
    }
    let header = format!("Bearer {token}");
    // Services: `gaia` (the default), unknown ones: Error=Unknown.
    for service in [None, Some("gaia"), Some("nope")] {
        let form: Vec<(&str, &str)> = service.map(|it| ("service", it)).into_iter().collect();
        let res = oauth_login(&env, "", Some(&header), &form).await;
        assert_eq!((res.status, res.body.as_str()), (403, "Error=Unknown\n"), "{service:?}");
    }
    // A token without the OAuthLogin scope, a garbage token, an OAuth 1.0a header.
    for bad in [format!("Bearer {narrow}"), "Bearer nope".to_owned(), format!("OAuth {narrow}")] {
        for query in ["issueuberauth=1", "service=cl"] {
            let res = oauth_login(&env, query, Some(&bad), &[]).await;
            assert_eq!(
                (res.status, res.body.as_str()),
                (403, "Error=BadAuthentication\n"),
                "{bad}"
            );
        }
    }
    let res =
        oauth_login(&env, "issueuberauth=1", Some("OAuth oauth_consumer_key=\"a\""), &[]).await;
    assert_eq!(res.status, 401);

    // What it minted hangs from the token's grant: removing the access ends them all.
    let lines = oauth_login(&env, "service=cl", Some(&header), &[]).await;
    let auth = line(&lines.body, "Auth").to_owned();
    let uber = oauth_login(&env, "issueuberauth=1", Some(&header), &[]).await.body;
    tessera_domain::grants::revoke(env.ctx(), &alice.id, &grant.id, &Actor::Account, "")
        .await
        .unwrap();
    assert_eq!(caller_status(&env, &format!("GoogleLogin auth={auth}")).await, 401);
    let res =
        env.browser().get(&format!("/accounts/TokenAuth?auth={uber}&continue=%2Faccount")).await;
    assert_eq!(res.status, 403);
    for query in ["issueuberauth=1", "service=cl"] {
        let res = oauth_login(&env, query, Some(&header), &[]).await;
        assert_eq!((res.status, res.body.as_str()), (403, "Error=BadAuthentication\n"), "{query}");
    }

    // A disabled account: refused, and what it had minted is dead.
    let (token, _) = access_token_with(&env, &alice, &scope).await;
    let header = format!("OAuth {token}");
    let lines = oauth_login(&env, "service=cl", Some(&header), &[]).await;
    let auth = line(&lines.body, "Auth").to_owned();
    tessera_domain::accounts::set_state(
        env.ctx(),
        &alice,
        tessera_store::AccountState::Disabled,
        &Actor::Cli,
        "",
    )
    .await
    .unwrap();
    assert_eq!(caller_status(&env, &format!("GoogleLogin auth={auth}")).await, 401);
    for query in ["issueuberauth=1", "service=cl"] {
        let res = oauth_login(&env, query, Some(&header), &[]).await;
        assert_eq!((res.status, res.body.as_str()), (403, "Error=BadAuthentication\n"), "{query}");
    }
}

#[tokio::test]
async fn administrators_set_a_services_web_sign_on_in_the_console() {
    let env = TestEnv::start().await;
    let admin = env.account("admin@example.test", "password-1").await;
    tessera_domain::accounts::set_admin(env.ctx(), &admin, true, &Actor::Cli, "").await.unwrap();
    env.account("dev@example.test", "password-2").await;
    let new = NewService {
        name: "feeds-a".to_owned(),
        display_name: "Feeds A".to_owned(),
        scopes: vec![format!("{A}api/")],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    services::add(env.ctx(), new, &Actor::Cli).await.unwrap();
    let mut browser = env.browser();
    browser.sign_in("admin@example.test", "password-1").await;
    let page = browser.get("/console").await;
    assert!(page.body.contains("Web sign-on of services") && page.body.contains("feeds-a"));
    let save = |csrf: String, prefixes: &str, logout: &str, back: &str| {
        vec![
            ("csrf".to_owned(), csrf),
            ("authuser".to_owned(), "0".to_owned()),
            ("service".to_owned(), "feeds-a".to_owned()),
            ("prefixes".to_owned(), prefixes.to_owned()),
            ("logout_url".to_owned(), logout.to_owned()),
            ("backchannel_logout_url".to_owned(), back.to_owned()),
        ]
    };

    // Created: two prefixes and both logout URLs, checked as the CLI checks them.
    let fields = save(
        page.csrf(),
        &format!("{A}\r\n{B}\r\n"),
        &format!("{A}sso/logout"),
        &format!("{A}sso/backchannel"),
    );
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = browser.post("/console/services/web", &pairs).await;
    assert_eq!(res.status, 303, "{}", res.body);
    let service = services::get(env.ctx(), "feeds-a").await.unwrap();
    assert_eq!(services::web_prefixes(&service), [A, B]);
    assert_eq!(service.logout_url, format!("{A}sso/logout"));
    assert_eq!(service.backchannel_logout_url, format!("{A}sso/backchannel"));
    let hop = browser.get(&service_login("feeds-a", &format!("{B}x"))).await;
    assert_eq!(hop.status, 302, "{}", hop.body);
    assert!(hop.location().starts_with(&format!("{B}x?auth=")));
    let page = browser.get("/console").await;
    assert!(page.body.contains(&format!("{A}sso/backchannel")), "{}", page.body);

    // Edited with bad values: the CLI's messages, nothing changed.
    for (prefixes, logout, message) in [
        ("https://feeds.example/app", "", "is not a web prefix"),
        ("https://user@feeds.example/", "", "is not a web prefix"),
        (A, "javascript:alert(1)", "is not a logout URL"),
    ] {
        let csrf = browser.get("/console").await.csrf();
        let fields = save(csrf, prefixes, logout, "");
        let pairs: Vec<(&str, &str)> =
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let res = browser.post("/console/services/web", &pairs).await;
        assert_eq!(res.status, 400, "{prefixes}");
        assert!(res.body.contains(message), "{}", res.body);
    }
    assert_eq!(services::web_prefixes(&services::get(env.ctx(), "feeds-a").await.unwrap()), [A, B]);
    // A forged form is refused.
    let mut fields = save(String::new(), A, "", "");
    fields[0].1 = "forged".to_owned();
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(browser.post("/console/services/web", &pairs).await.status, 400);

    // No prefix: web sign-on off, and ServiceLogin falls back to the plain sign-in.
    let csrf = browser.get("/console").await.csrf();
    let fields = save(csrf, "", "", "");
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(browser.post("/console/services/web", &pairs).await.status, 303);
    let service = services::get(env.ctx(), "feeds-a").await.unwrap();
    assert!(service.web_prefixes.is_empty() && service.logout_url.is_empty());
    let res = browser.get(&service_login("feeds-a", &format!("{B}x"))).await;
    assert!(!res.location().contains("auth="), "{}", res.location());

    // Not an administrator: no such section, and the form is refused.
    let mut dev = env.browser();
    dev.sign_in("dev@example.test", "password-2").await;
    let page = dev.get("/console").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("Web sign-on of services"));
    let res = dev
        .post(
            "/console/services/web",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("service", "feeds-a"), ("prefixes", A)],
        )
        .await;
    assert_eq!(res.status, 403);
    assert!(services::get(env.ctx(), "feeds-a").await.unwrap().web_prefixes.is_empty());
}

#[tokio::test]
async fn oauth_login_mints_no_clientlogin_lines_when_clientlogin_is_switched_off() {
    let env = TestEnv::with_config(|raw| raw.legacy.clientlogin = false).await;
    let alice = env.account("alice@example.test", "password-1").await;
    let new = NewService {
        name: "cl".to_owned(),
        display_name: "Calendar".to_owned(),
        scopes: vec!["https://calendar.example.test/feeds/".to_owned()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    services::add(env.ctx(), new, &Actor::Cli).await.unwrap();
    let scope = tessera_domain::sso::oauth_login_scope(env.ctx());
    let (token, _) = access_token_with(&env, &alice, &scope).await;
    let header = format!("Bearer {token}");
    let res = oauth_login(&env, "service=cl", Some(&header), &[]).await;
    assert_eq!((res.status, res.body.as_str()), (403, "Error=ServiceDisabled\n"));
    // The ubertoken answer does not depend on ClientLogin.
    assert_eq!(oauth_login(&env, "issueuberauth=1", Some(&header), &[]).await.status, 200);
}
