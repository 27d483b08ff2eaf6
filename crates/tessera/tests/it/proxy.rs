//! The front-end token proxy end to end over HTTP: a front-end origin asks `POST /proxy/request`,
//! gets the approval page's URL, the person approves on the one consent page, and the proxy calls
//! a local resource server with the held access token; CORS and the CSRF header; and the SSRF
//! guard: private and loopback addresses, names resolving to loopback, redirects to them,
//! oversized and hanging responses, each refused with a clear error.

use axum::response::IntoResponse;
use http::HeaderMap;
use serde_json::{Value, json};
use tessera_domain::audit::Actor;
use tessera_domain::proxy::{NewFrontEnd, Target, TargetProtocol};

use crate::support::{Browser, TestEnv};

const ORIGIN: &str = "https://reader.example";

/// A resource server on loopback: `/api/echo` tells what it received, `/api/big` answers 2 MiB,
/// `/api/hang` never answers, `/api/to?u=URL` redirects to `URL`.
async fn resource_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = |headers: HeaderMap| async move {
        let get = |name: &str| headers.get(name).and_then(|it| it.to_str().ok()).unwrap_or("");
        let body = json!({
            "authorization": get("authorization"),
            "cookie": get("cookie"),
            "origin": get("origin"),
            "accept": get("accept"),
        });
        (
            [("content-type", "application/json"), ("set-cookie", "rs=1"), ("x-internal", "1")],
            body.to_string(),
        )
    };
    let app = axum::Router::new()
        .route("/api/echo", axum::routing::get(echo))
        .route("/api/big", axum::routing::get(|| async { "x".repeat(2 * 1024 * 1024) }))
        .route("/api/hang", axum::routing::get(std::future::pending::<String>))
        .route(
            "/api/to",
            axum::routing::get(
                |axum::extract::RawQuery(query): axum::extract::RawQuery| async move {
                    let to = query.unwrap_or_default();
                    let to = to.strip_prefix("u=").unwrap_or_default();
                    let to =
                        percent_encoding::percent_decode_str(to).decode_utf8_lossy().into_owned();
                    (http::StatusCode::FOUND, [("location", to)]).into_response()
                },
            ),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

struct Setup {
    env: TestEnv,
    resource: std::net::SocketAddr,
    /// A second resource server, registered as `localhost`, whose address is not allowed.
    other: std::net::SocketAddr,
    app: String,
    browser: Browser,
    http: reqwest::Client,
}

/// A server whose proxy may reach exactly the resource server's address (unless `strict`), a
/// service owning `http://127.0.0.1:PORT/api/`, a front-end app with prefixes on that server, on
/// a second one named `localhost` and on two special addresses, and a signed-in browser.
async fn setup(strict: bool, edit: impl FnOnce(&mut tessera::RawConfig)) -> Setup {
    let resource = resource_server().await;
    let other = resource_server().await;
    let env = TestEnv::with_config(|raw| {
        if !strict {
            raw.proxy.allowed_addresses = vec![resource.to_string()];
        }
        edit(raw);
    })
    .await;
    let ctx = env.ctx();
    env.account("ann@example.test", "correct horse battery").await;
    let project = tessera_domain::projects::create(ctx, "Reader", "ann@example.test", &Actor::Cli)
        .await
        .unwrap();
    let api = format!("http://127.0.0.1:{}/api/", resource.port());
    let service = tessera_domain::services::NewService {
        name: "reader".to_owned(),
        display_name: "Reader".to_owned(),
        scopes: vec![api.clone()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    tessera_domain::services::add(ctx, service, &Actor::Cli).await.unwrap();
    let target = |prefix: String| Target {
        prefix,
        protocol: TargetProtocol::OAuth2,
        consumer: None,
        scopes: vec![api.clone()],
    };
    let new = NewFrontEnd {
        name: "Feed Reader".to_owned(),
        origins: vec![ORIGIN.to_owned()],
        targets: vec![
            target(api.clone()),
            target(format!("http://localhost:{}/api/", other.port())),
            target("https://169.254.169.254/latest/".to_owned()),
            target("https://10.0.0.1/".to_owned()),
        ],
    };
    let app = tessera_domain::proxy::register(ctx, &project, new, &Actor::Cli).await.unwrap();
    let mut browser = env.browser();
    let signed = browser.sign_in("ann@example.test", "correct horse battery").await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Setup { env, resource, other, app: app.id().to_owned(), browser, http }
}

impl Setup {
    fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/api/{path}", self.resource.port())
    }

    fn cookies(&self) -> String {
        self.browser.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// `POST /proxy/request` as the front-end's page would send it.
    async fn ask(&self, body: &Value) -> (u16, HeaderMap, Value) {
        let res = self
            .http
            .post(self.env.url(&format!("/proxy/request?app={}", self.app)))
            .header("origin", ORIGIN)
            .header("x-tessera-proxy", "1")
            .header("cookie", self.cookies())
            .json(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Approves the app on the consent page reached through `approval_url`.
    async fn approve(&mut self, approval_url: &str) {
        let page = self.browser.get(approval_url).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("Feed Reader"), "{}", page.body);
        let csrf = page.csrf();
        let fields = [
            ("csrf", csrf.as_str()),
            ("authuser", "0"),
            ("app", &page.input("app").unwrap()),
            ("return_to", &page.input("return_to").unwrap()),
            ("action", "allow"),
        ];
        let done = self.browser.post("/proxy/approve", &fields).await;
        assert_eq!(done.status, 303, "{}", done.body);
        assert_eq!(done.location(), format!("{ORIGIN}/reader"));
    }

    async fn approved() -> Setup {
        let mut s = setup(false, |_| ()).await;
        let (_, _, first) =
            s.ask(&json!({ "url": s.api("echo"), "returnTo": format!("{ORIGIN}/reader") })).await;
        let url = first["oauthApprovalUrl"].as_str().unwrap().to_owned();
        s.approve(&url).await;
        s
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_end_gets_an_approval_url_then_the_resource_through_the_proxy() {
    let mut s = setup(false, |_| ()).await;
    let ask = json!({
        "url": s.api("echo"),
        "headers": { "Accept": "application/json" },
        "returnTo": format!("{ORIGIN}/reader"),
    });
    let (status, headers, first) = s.ask(&ask).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(headers["access-control-allow-origin"], ORIGIN);
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let url = first["oauthApprovalUrl"].as_str().expect("an approval URL").to_owned();
    assert!(url.starts_with(&s.env.url("/proxy/approve?app=")), "{url}");
    s.approve(&url).await;

    let (status, _, answer) = s.ask(&ask).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 200);
    // Only allow-listed response headers come back.
    assert_eq!(answer["headers"], json!({ "content-type": "application/json" }));
    let seen: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(seen["cookie"], "", "no cookie reaches the resource");
    assert_eq!(seen["origin"], "");
    assert_eq!(seen["accept"], "application/json");
    let token = seen["authorization"].as_str().unwrap().strip_prefix("Bearer ").unwrap();
    let info = tessera_domain::oauth2::tokens::inspect(s.env.ctx(), token, false)
        .await
        .unwrap()
        .expect("a live access token");
    assert_eq!(info.client_id, s.app);
    assert_eq!(info.account.unwrap().email, "ann@example.test");
    // The browser's answers never carry the token.
    assert!(!first.to_string().contains(token));

    // A second visit to the approval page is answered at once from the remembered consent.
    let again = s.browser.get(&url).await;
    assert_eq!(again.status, 302, "{}", again.body);
    assert_eq!(again.location(), format!("{ORIGIN}/reader"));

    // Not signed in: the approval URL again, nothing called.
    let anonymous = s
        .http
        .post(s.env.url(&format!("/proxy/request?app={}", s.app)))
        .header("origin", ORIGIN)
        .header("x-tessera-proxy", "1")
        .json(&ask)
        .send()
        .await
        .unwrap();
    let anonymous: Value = anonymous.json().await.unwrap();
    assert!(anonymous["oauthApprovalUrl"].is_string(), "{anonymous}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_registered_origins_pass_cors_and_the_proxy_header_is_required() {
    let s = setup(false, |_| ()).await;
    let url = s.env.url(&format!("/proxy/request?app={}", s.app));
    let preflight = |origin: &'static str| {
        s.http
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-tessera-proxy")
            .send()
    };
    let ok = preflight(ORIGIN).await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], ORIGIN);
    assert!(
        ok.headers()["access-control-allow-headers"].to_str().unwrap().contains("x-tessera-proxy")
    );
    let foreign = preflight("https://evil.example").await.unwrap();
    assert_eq!(foreign.status(), 403);
    assert!(foreign.headers().get("access-control-allow-origin").is_none());

    let ask = json!({ "url": s.api("echo") });
    let send = |origin: Option<&'static str>, header: bool| {
        let mut req = s.http.post(&url).header("cookie", s.cookies()).json(&ask);
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        if header {
            req = req.header("x-tessera-proxy", "1");
        }
        req.send()
    };
    let no_header = send(Some(ORIGIN), false).await.unwrap();
    assert_eq!(no_header.status(), 403);
    assert_eq!(no_header.json::<Value>().await.unwrap()["error"], "missing_proxy_header");
    let foreign = send(Some("https://evil.example"), true).await.unwrap();
    assert_eq!(foreign.status(), 403);
    assert!(foreign.headers().get("access-control-allow-origin").is_none());
    assert_eq!(foreign.json::<Value>().await.unwrap()["error"], "origin_not_allowed");
    let no_origin = send(None, true).await.unwrap();
    assert_eq!(no_origin.status(), 403);
    let unknown = s
        .http
        .post(s.env.url("/proxy/request?app=nope"))
        .header("origin", ORIGIN)
        .header("x-tessera-proxy", "1")
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    // Malformed bodies are a clear 400.
    for (content_type, body) in [
        ("application/json", "{"),
        ("application/json", "{\"url\": 1}"),
        ("application/json", "{\"url\": \"x\", \"extra\": 1}"),
        ("text/plain", "url=x"),
    ] {
        let res = s
            .http
            .post(&url)
            .header("origin", ORIGIN)
            .header("x-tessera-proxy", "1")
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{content_type} {body}");
        assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_body_works_like_the_json_one() {
    let s = Setup::approved().await;
    let res = s
        .http
        .post(s.env.url(&format!("/proxy/request?app={}", s.app)))
        .header("origin", ORIGIN)
        .header("x-tessera-proxy", "1")
        .header("cookie", s.cookies())
        .form(&[("url", s.api("echo").as_str()), ("method", "GET")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["status"], 200, "{answer}");
}

async fn refused(s: &Setup, url: &str) -> (u16, String) {
    let (status, _, answer) = s.ask(&json!({ "url": url })).await;
    (status, answer["error"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssrf_attempts_are_refused_with_a_clear_error() {
    // The resource server's address is allowed exactly; nothing else special is.
    let s = Setup::approved().await;
    let port = s.other.port();
    assert_eq!(refused(&s, &s.api("echo")).await.0, 200);
    // Link-local metadata and private addresses, even though registered as prefixes.
    let not_allowed = (403, "address_not_allowed".to_owned());
    assert_eq!(refused(&s, "https://169.254.169.254/latest/meta-data/").await, not_allowed);
    assert_eq!(refused(&s, "https://10.0.0.1/x").await, not_allowed);
    // A name that resolves to loopback (`localhost`): its addresses are checked, not its name.
    assert_eq!(refused(&s, &format!("http://localhost:{port}/api/echo")).await, not_allowed);
    // A redirect to it, or to a special address outside the prefixes, is checked again.
    let to = |target: &str| format!("{}?u={}", s.api("to"), crate::support::urlencode(target));
    let via = to(&format!("http://localhost:{port}/api/echo"));
    assert_eq!(refused(&s, &via).await, not_allowed);
    let outside = to("http://127.0.0.1:1/admin");
    assert_eq!(refused(&s, &outside).await, (502, "redirect_not_allowed".to_owned()));
    let metadata = to("https://169.254.169.254/latest/meta-data/");
    assert_eq!(refused(&s, &metadata).await, not_allowed);
    // URLs outside the prefixes are never called.
    assert_eq!(refused(&s, "http://127.0.0.1:1/api/echo").await, (403, "url_not_allowed".into()));
    assert_eq!(refused(&s, "file:///etc/passwd").await, (403, "url_not_allowed".into()));
    // Oversized responses are cut off.
    assert_eq!(refused(&s, &s.api("big")).await, (502, "response_too_large".into()));
    // Too many redirects.
    let mut looped = s.api("echo");
    for _ in 0..6 {
        looped = to(&looped);
    }
    assert_eq!(refused(&s, &looped).await, (502, "too_many_redirects".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_allowance_loopback_resources_are_refused() {
    let mut s = setup(true, |_| ()).await;
    let (_, _, first) =
        s.ask(&json!({ "url": s.api("echo"), "returnTo": format!("{ORIGIN}/reader") })).await;
    let url = first["oauthApprovalUrl"].as_str().unwrap().to_owned();
    s.approve(&url).await;
    assert_eq!(refused(&s, &s.api("echo")).await, (403, "address_not_allowed".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_that_never_answers_times_out() {
    let mut s = setup(false, |raw| raw.proxy.timeout_secs = 1).await;
    let (_, _, first) =
        s.ask(&json!({ "url": s.api("echo"), "returnTo": format!("{ORIGIN}/reader") })).await;
    let url = first["oauthApprovalUrl"].as_str().unwrap().to_owned();
    s.approve(&url).await;
    assert_eq!(refused(&s, &s.api("hang")).await, (504, "timeout".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_cap_refuses_smaller_responses() {
    let mut s = setup(false, |raw| raw.proxy.max_response_bytes = 100).await;
    let (_, _, first) =
        s.ask(&json!({ "url": s.api("echo"), "returnTo": format!("{ORIGIN}/reader") })).await;
    s.approve(first["oauthApprovalUrl"].as_str().unwrap()).await;
    // The echo's JSON (with the token in it) is over 100 bytes.
    assert_eq!(refused(&s, &s.api("echo")).await, (502, "response_too_large".into()));
}

#[test]
fn the_admin_cli_registers_lists_and_removes_front_end_apps() {
    use crate::cli::tessera;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = |args: &[&str], stdin: Option<&str>| {
        let (code, out, err) = tessera(d, args, stdin);
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    };
    ok(
        &["admin", "account", "add", "dev@example.test", "--password-stdin"],
        Some("dev-password-1\n"),
    );
    ok(&["admin", "project", "add", "Reader", "--owner", "dev@example.test"], None);
    let api = "https://api.example/feeds/";
    ok(&["admin", "service", "add", "feeds", "--display-name", "Feeds", "--scope", api], None);
    let target = format!("{api} {api}");
    let add = [
        "admin",
        "proxy",
        "app",
        "add",
        "--project",
        "Reader",
        "--name",
        "Feed Reader",
        "--origin",
        ORIGIN,
        "--target",
        &target,
        "--json",
    ];
    let added: Value = serde_json::from_str(&ok(&add, None)).unwrap();
    let id = added["client_id"].as_str().unwrap().to_owned();
    let listed: Value = serde_json::from_str(&ok(
        &["admin", "proxy", "app", "list", "--project", "Reader", "--json"],
        None,
    ))
    .unwrap();
    assert_eq!(
        listed,
        json!([{
            "client_id": id,
            "name": "Feed Reader",
            "origins": [ORIGIN],
            "targets": [{ "prefix": api, "protocol": "oauth2", "scopes": [api] }],
        }])
    );
    // Refusals name what is wrong and change nothing.
    for (origin, target, says) in [
        ("http://reader.example", target.as_str(), "not an origin"),
        (ORIGIN, "http://api.example/feeds/ x", "use https"),
        (ORIGIN, api, "name the scopes"),
        (ORIGIN, "https://api.example/other/ https://api.example/other/", "Unknown scope"),
    ] {
        let args = [
            "admin",
            "proxy",
            "app",
            "add",
            "--project",
            "Reader",
            "--name",
            "X",
            "--origin",
            origin,
            "--target",
            target,
        ];
        let (code, _, err) = tessera(d, &args, None);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(says), "{says}: {err}");
    }
    ok(&["admin", "proxy", "app", "remove", &id], None);
    let listed = ok(&["admin", "proxy", "app", "list", "--project", "Reader", "--json"], None);
    assert_eq!(serde_json::from_str::<Value>(&listed).unwrap(), json!([]));
    let (code, _, err) = tessera(d, &["admin", "proxy", "app", "remove", &id], None);
    assert_ne!(code, 0);
    assert!(err.contains("no front-end app"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_speaks_the_proxy_wire_form() {
    use tessera_client::proxy::{ProxyAnswer, ProxyRequest};
    let s = Setup::approved().await;
    let accounts = url::Url::parse(&s.env.base).unwrap();
    let mut cookie = reqwest::header::HeaderMap::new();
    cookie.insert("cookie", s.cookies().parse().unwrap());
    let signed = reqwest::Client::builder().default_headers(cookie).build().unwrap();
    let request = ProxyRequest::get(&s.api("echo")).header("Accept", "application/json");
    let answer = request.send(&signed, &accounts, &s.app, ORIGIN).await.unwrap();
    let ProxyAnswer::Resource { status, headers, body } = answer else { panic!("{answer:?}") };
    assert_eq!((status, headers["content-type"].as_str()), (200, "application/json"));
    let seen: Value = serde_json::from_slice(&body).unwrap();
    assert!(seen["authorization"].as_str().unwrap().len() > 20);
    let anonymous = request.send(&reqwest::Client::new(), &accounts, &s.app, ORIGIN).await.unwrap();
    assert!(matches!(anonymous, ProxyAnswer::Approval { .. }), "{anonymous:?}");
    let outside = ProxyRequest::get("http://127.0.0.1:1/x");
    let refused = outside.send(&signed, &accounts, &s.app, ORIGIN).await.unwrap();
    assert_eq!(
        refused,
        ProxyAnswer::Refused {
            http_status: 403,
            error: "url_not_allowed".to_owned(),
            description: "The URL is not under a resource prefix registered for this app."
                .to_owned(),
        }
    );
}

/// Posts the console's "New front-end app" form.
async fn console_add(browser: &mut Browser, project: &str, origins: &str, targets: &str) -> u16 {
    let page = browser.get("/console").await;
    let fields = [
        ("csrf", page.csrf()),
        ("authuser", "0".to_owned()),
        ("project", project.to_owned()),
        ("name", "Feed Reader".to_owned()),
        ("origins", origins.to_owned()),
        ("targets", targets.to_owned()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = browser.post("/console/projects/proxy-apps", &fields).await;
    if done.status == 400 {
        assert!(done.body.contains("role=\"alert\""), "{}", done.body);
    }
    done.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_registers_front_end_apps_for_their_project_owner_only() {
    let env = TestEnv::start().await;
    let ctx = env.ctx();
    env.account("dev@example.test", "correct horse battery").await;
    env.account("other@example.test", "correct horse battery").await;
    let project = tessera_domain::projects::create(ctx, "Reader", "dev@example.test", &Actor::Cli)
        .await
        .unwrap();
    let api = "https://api.example/feeds/";
    let service = tessera_domain::services::NewService {
        name: "feeds".to_owned(),
        display_name: "Feeds".to_owned(),
        scopes: vec![api.to_owned()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    tessera_domain::services::add(ctx, service, &Actor::Cli).await.unwrap();
    let mut browser = env.browser();
    browser.sign_in("dev@example.test", "correct horse battery").await;
    let targets = format!("{api} {api}\n");
    // Bad input is shown on the console and registers nothing.
    assert_eq!(
        console_add(&mut browser, &project.id, "http://reader.example", &targets).await,
        400
    );
    assert_eq!(console_add(&mut browser, &project.id, ORIGIN, api).await, 400);
    assert_eq!(console_add(&mut browser, &project.id, ORIGIN, "").await, 400);
    assert!(tessera_domain::proxy::list(ctx, &project.id).await.unwrap().is_empty());
    // Another account cannot register into this project.
    let mut other = env.browser();
    other.sign_in("other@example.test", "correct horse battery").await;
    assert_eq!(console_add(&mut other, &project.id, ORIGIN, &targets).await, 404);
    assert!(tessera_domain::proxy::list(ctx, &project.id).await.unwrap().is_empty());

    assert_eq!(console_add(&mut browser, &project.id, ORIGIN, &targets).await, 303);
    let apps = tessera_domain::proxy::list(ctx, &project.id).await.unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].1.origins, vec![ORIGIN.to_owned()]);
    assert_eq!(apps[0].1.targets[0].prefix, api);
    let page = browser.get("/console").await;
    assert!(page.body.contains(apps[0].0.id()), "{}", page.body);
    assert!(
        page.body.contains(&format!("<code class=\"origins\">{ORIGIN}</code>")),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!("{api} {api}")));
}

/// An AuthSub-only resource: the example feeds API checks the AuthSub session token the proxy
/// holds through tessera's one caller check, and answers the feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authsub_target_reaches_the_feeds_api_with_a_held_authsub_token() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let feeds_addr = listener.local_addr().unwrap();
    let public = format!("http://{feeds_addr}");
    let env =
        TestEnv::with_config(|raw| raw.proxy.allowed_addresses = vec![feeds_addr.to_string()])
            .await;
    let ctx = env.ctx();
    let account = env.account("ann@example.test", "correct horse battery").await;
    let project = tessera_domain::projects::create(ctx, "Legacy", "ann@example.test", &Actor::Cli)
        .await
        .unwrap();
    let api = tessera_example_feeds::api_scope(&public);
    let service = tessera_domain::services::NewService {
        name: "legacy".to_owned(),
        display_name: "Legacy".to_owned(),
        scopes: vec![api.clone()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    tessera_domain::services::add(ctx, service, &Actor::Cli).await.unwrap();
    let target = tessera_domain::proxy::parse_target(&format!("authsub {api} {api}")).unwrap();
    let new = NewFrontEnd {
        name: "Feed Reader".to_owned(),
        origins: vec![ORIGIN.to_owned()],
        targets: vec![target],
    };
    let app = tessera_domain::proxy::register(ctx, &project, new, &Actor::Cli).await.unwrap();
    let config = tessera_example_feeds::FeedsConfig {
        accounts: env.base.clone(),
        service: "legacy".to_owned(),
        public: public.clone(),
        cookie_name: None,
        api_scope: None,
        proxy_app: None,
    };
    let feeds = tessera_example_feeds::router(&config).unwrap();
    tokio::spawn(async move { axum::serve(listener, feeds).await });
    let mut browser = env.browser();
    browser.sign_in("ann@example.test", "correct horse battery").await;
    let http = reqwest::Client::new();
    let mut s = Setup {
        env,
        resource: feeds_addr,
        other: feeds_addr,
        app: app.id().to_owned(),
        browser,
        http,
    };
    let ask =
        json!({ "url": format!("{public}/api/feed"), "returnTo": format!("{ORIGIN}/reader") });
    let (_, _, first) = s.ask(&ask).await;
    s.approve(first["oauthApprovalUrl"].as_str().unwrap()).await;
    let (status, _, answer) = s.ask(&ask).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 200, "{answer}");
    let subject = tessera_domain::accounts::subject(&account.id);
    assert_eq!(answer["body"], format!("feed for {subject}\n"));
}

/// An OAuth 1.0 resource: the example feeds API checks each call the proxy signs (HMAC-SHA1 with
/// the consumer secret of a registration the project's owner holds and the secret of the held
/// access token) through tessera's one caller check, and answers the feed; a burst of calls each
/// verifies (fresh nonces), and switching the registration off ends the signing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth1_target_reaches_the_feeds_api_with_signed_calls() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let feeds_addr = listener.local_addr().unwrap();
    let public = format!("http://{feeds_addr}");
    let env =
        TestEnv::with_config(|raw| raw.proxy.allowed_addresses = vec![feeds_addr.to_string()])
            .await;
    let ctx = env.ctx();
    let account = env.account("ann@example.test", "correct horse battery").await;
    let project = tessera_domain::projects::create(ctx, "Legacy", "ann@example.test", &Actor::Cli)
        .await
        .unwrap();
    let api = tessera_example_feeds::api_scope(&public);
    let service = tessera_domain::services::NewService {
        name: "legacy".to_owned(),
        display_name: "Legacy".to_owned(),
        scopes: vec![api.clone()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    tessera_domain::services::add(ctx, service, &Actor::Cli).await.unwrap();
    tessera_domain::authsub::register(
        ctx,
        "feeds.example",
        "https://feeds.example/",
        None,
        Some("ann@example.test"),
        &Actor::Cli,
    )
    .await
    .unwrap();
    tessera_domain::oauth1::mint_consumer_secret(ctx, "feeds.example", &Actor::Cli).await.unwrap();
    let target =
        tessera_domain::proxy::parse_target(&format!("oauth1 feeds.example {api} {api}")).unwrap();
    let new = NewFrontEnd {
        name: "Feed Reader".to_owned(),
        origins: vec![ORIGIN.to_owned()],
        targets: vec![target],
    };
    let app = tessera_domain::proxy::register(ctx, &project, new, &Actor::Cli).await.unwrap();
    let config = tessera_example_feeds::FeedsConfig {
        accounts: env.base.clone(),
        service: "legacy".to_owned(),
        public: public.clone(),
        cookie_name: None,
        api_scope: None,
        proxy_app: None,
    };
    let feeds = tessera_example_feeds::router(&config).unwrap();
    tokio::spawn(async move { axum::serve(listener, feeds).await });
    let mut browser = env.browser();
    browser.sign_in("ann@example.test", "correct horse battery").await;
    let http = reqwest::Client::new();
    let mut s = Setup {
        env,
        resource: feeds_addr,
        other: feeds_addr,
        app: app.id().to_owned(),
        browser,
        http,
    };
    let ask =
        json!({ "url": format!("{public}/api/feed"), "returnTo": format!("{ORIGIN}/reader") });
    let (_, _, first) = s.ask(&ask).await;
    s.approve(first["oauthApprovalUrl"].as_str().unwrap()).await;
    let subject = tessera_domain::accounts::subject(&account.id);
    let (status, _, answer) = s.ask(&ask).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"], format!("feed for {subject}\n"));

    // A parallel burst: every call is signed with its own nonce, none refused as a replay.
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, ask) = (s.clone(), ask.clone());
        tasks.push(tokio::spawn(async move { s.ask(&ask).await }));
    }
    for task in tasks {
        let (status, _, answer) = task.await.unwrap();
        assert_eq!((status, answer["status"].as_u64()), (200, Some(200)), "{answer}");
        assert_eq!(answer["body"], format!("feed for {subject}\n"));
    }

    // The registration removed: a clear refusal, nothing signed.
    tessera_domain::authsub::unregister(s.env.ctx(), "feeds.example", &Actor::Cli).await.unwrap();
    let (status, _, answer) = s.ask(&ask).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"], "consumer_unavailable");
}
