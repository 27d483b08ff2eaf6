use std::sync::{Arc, Mutex};

use tessera_store::{AccountState, SessionRecord};

use super::*;
use crate::interaction::Approved;
use crate::testing::{TestAccount, TestCtx};

const API: &str = "https://feeds.example/api/";
const ORIGIN: &str = "https://app.example";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn special_addresses_are_recognised_in_every_form() {
    for blocked in [
        "0.0.0.0",
        "127.0.0.1",
        "127.255.0.9",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "64:ff9b::a00:1",
        "2002:7f00:1::",
        "2001::1",
        "2001:db8::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
    ] {
        assert!(special(ip(blocked)), "{blocked} must be refused");
    }
    for public in [
        "8.8.8.8",
        "1.1.1.1",
        "172.32.0.1",
        "100.128.0.1",
        "192.169.0.1",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::",
        "2606:4700::1111",
        "2a00:1450::1",
    ] {
        assert!(!special(ip(public)), "{public} is public");
    }
}

#[test]
fn the_guard_allows_special_addresses_only_when_told() {
    let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let public: SocketAddr = "93.184.216.34:443".parse().unwrap();
    let strict = AddressGuard { allow_private: false, allowed: Vec::new() };
    assert!(strict.permits(public));
    assert!(!strict.permits(loopback));
    let one = AddressGuard { allow_private: false, allowed: vec![loopback] };
    assert!(one.permits(loopback));
    assert!(!one.permits("127.0.0.1:8081".parse().unwrap()), "only that port");
    assert!(!one.permits("[::1]:8080".parse().unwrap()), "only that address");
    let open = AddressGuard { allow_private: true, allowed: Vec::new() };
    assert!(open.permits(loopback));
}

#[test]
fn origins_and_prefixes_are_registered_in_canonical_form() {
    assert_eq!(check_origin("https://app.example").unwrap(), "https://app.example");
    assert_eq!(check_origin("https://app.example:8443").unwrap(), "https://app.example:8443");
    assert!(check_origin("http://127.0.0.1:5000").is_ok());
    for bad in [
        "http://app.example",
        "https://app.example/",
        "https://app.example/x",
        "https://APP.example",
        "https://app.example:443",
        "app.example",
        "",
        "https://app.example\n",
    ] {
        assert!(check_origin(bad).is_err(), "{bad:?}");
    }
    assert_eq!(check_prefix(API).unwrap(), API);
    assert!(check_prefix("http://localhost:9000/api/").is_ok());
    for bad in [
        "http://feeds.example/api/",
        "https://feeds.example/api",
        "https://u:p@feeds.example/api/",
        "https://feeds.example/api/?q=1",
        "https://feeds.example/a/../api/",
        "https://feeds.example/a%2fb/",
        "ftp://feeds.example/api/",
        "/api/",
    ] {
        assert!(check_prefix(bad).is_err(), "{bad:?}");
    }
}

fn app() -> FrontEnd {
    FrontEnd {
        origins: vec![ORIGIN.to_owned()],
        targets: vec![
            Target {
                prefix: API.to_owned(),
                protocol: TargetProtocol::OAuth2,
                consumer: None,
                scopes: vec![API.to_owned()],
            },
            Target {
                prefix: "https://feeds.example/api/private/".to_owned(),
                protocol: TargetProtocol::OAuth2,
                consumer: None,
                scopes: vec!["email".to_owned(), API.to_owned()],
            },
        ],
    }
}

#[test]
fn only_urls_under_a_registered_prefix_are_called() {
    let app = app();
    let (url, target) = match_target(&app, "https://feeds.example/api/feed?x=1").unwrap();
    assert_eq!(url.as_str(), "https://feeds.example/api/feed?x=1");
    assert_eq!(target.prefix, API);
    let (_, target) = match_target(&app, "https://feeds.example/api/private/x").unwrap();
    assert_eq!(target.prefix, "https://feeds.example/api/private/", "the longest prefix");
    // Dot segments are resolved before the comparison; what is sent is what was checked.
    let (url, _) = match_target(&app, "https://feeds.example/api/a/../feed").unwrap();
    assert_eq!(url.as_str(), "https://feeds.example/api/feed");
    for refused in [
        "https://feeds.example/api/../admin",
        "https://feeds.example/apix",
        "https://feeds.example/",
        "https://feeds.example.evil/api/feed",
        "https://feeds.example:444/api/feed",
        "http://feeds.example/api/feed",
        "https://feeds.example/api/%2e%2e/admin",
        "https://feeds.example/api/..%2fadmin",
        "file:///etc/passwd",
    ] {
        assert!(
            matches!(match_target(&app, refused), Err(Refusal::UrlNotAllowed)),
            "{refused} must be refused"
        );
    }
    for malformed in ["https://u:p@feeds.example/api/x", "https://feeds.example/api/#x", "feed", ""]
    {
        assert!(
            matches!(match_target(&app, malformed), Err(Refusal::BadRequest(_))),
            "{malformed}"
        );
    }
}

#[test]
fn headers_are_filtered_both_ways() {
    let pair = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    let forwarded =
        request_headers(&[pair("Accept", "application/json"), pair("If-None-Match", "\"e1\"")])
            .unwrap();
    assert_eq!(
        forwarded,
        vec![pair("accept", "application/json"), pair("if-none-match", "\"e1\"")]
    );
    for name in
        ["Cookie", "Authorization", "Host", "X-Forwarded-For", "Connection", "Proxy-Authorization"]
    {
        assert!(
            matches!(request_headers(&[pair(name, "x")]), Err(Refusal::BadRequest(_))),
            "{name}"
        );
    }
    assert!(request_headers(&[pair("Accept", "a\r\nCookie: x")]).is_err());
    let many: Vec<_> = (0..21).map(|_| pair("Accept", "*/*")).collect();
    assert!(request_headers(&many).is_err());
    let passed = response_headers(&[
        pair("Content-Type", "text/plain"),
        pair("Set-Cookie", "a=b"),
        pair("ETag", "\"1\""),
        pair("WWW-Authenticate", "Bearer"),
        pair("Location", "https://x/"),
    ]);
    assert_eq!(passed, vec![pair("content-type", "text/plain"), pair("etag", "\"1\"")]);
}

/// A fetcher that answers from a script and remembers every hop.
#[derive(Default)]
struct Script {
    answers: Mutex<Vec<(String, std::result::Result<Fetched, FetchError>)>>,
    hops: Mutex<Vec<Outgoing>>,
}

impl Script {
    fn answer(&self, url: &str, answer: std::result::Result<Fetched, FetchError>) {
        self.answers.lock().unwrap().push((url.to_owned(), answer));
    }

    fn hops(&self) -> Vec<Outgoing> {
        self.hops.lock().unwrap().clone()
    }
}

fn ok(
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
) -> std::result::Result<Fetched, FetchError> {
    Ok(Fetched {
        status,
        headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        body: body.as_bytes().to_vec(),
    })
}

#[async_trait::async_trait]
impl Fetcher for Script {
    async fn fetch(
        &self,
        hop: &Outgoing,
        _guard: &AddressGuard,
        _max_bytes: usize,
    ) -> std::result::Result<Fetched, FetchError> {
        self.hops.lock().unwrap().push(hop.clone());
        let answers = self.answers.lock().unwrap();
        answers
            .iter()
            .rev()
            .find(|(url, _)| url == hop.url.as_str())
            .map(|(_, answer)| answer.clone())
            .unwrap_or(Err(FetchError::Unreachable))
    }
}

struct World {
    t: TestCtx,
    alice: TestAccount,
    client: Client,
    signed: SignedIn,
}

async fn world() -> World {
    let t = TestCtx::new().await;
    let alice = t.account("alice@example.test").create().await;
    let project = t.project("Feeds", "alice@example.test").await;
    let service = services::NewService {
        name: "feeds".to_owned(),
        display_name: "Feeds".to_owned(),
        scopes: vec![API.to_owned()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    services::add(&t.ctx, service, &Actor::Cli).await.unwrap();
    let new = NewFrontEnd {
        name: "Feed reader".to_owned(),
        origins: app().origins,
        targets: app().targets,
    };
    let client = register(&t.ctx, &project, new, &Actor::Cli).await.unwrap();
    let session = SessionRecord {
        id: "s-alice".to_owned(),
        account_id: alice.id().to_owned(),
        created_at: t.now(),
        auth_time: t.now(),
        last_seen_at: t.now(),
        expires_at: t.now() + 3600,
        revoked_at: None,
        persistent: false,
        second_factor: false,
        user_agent: String::new(),
        ip: String::new(),
    };
    let signed = SignedIn { token: String::new(), session, account: alice.record.clone() };
    World { t, alice, client, signed }
}

impl World {
    fn request(&self, url: &str) -> ProxyRequest {
        ProxyRequest {
            app: self.client.id().to_owned(),
            url: url.to_owned(),
            method: "GET".to_owned(),
            headers: vec![("Accept".to_owned(), "text/plain".to_owned())],
            body: Vec::new(),
            return_to: Some(format!("{ORIGIN}/reader")),
            origin: ORIGIN.to_owned(),
            authuser: None,
        }
    }

    async fn ask(&self, fetcher: &Script, req: &ProxyRequest) -> Answer {
        request(&self.t.ctx, fetcher, std::slice::from_ref(&self.signed), req).await.unwrap()
    }

    /// Runs the approval page's flow to its end, as a person who clicked Allow.
    async fn approve(&self) {
        let approval = prepare_approval(&self.t.ctx, self.client.id(), &format!("{ORIGIN}/reader"))
            .await
            .unwrap();
        let req = interaction(&approval, None);
        let step = crate::interaction::decide(
            &self.t.ctx,
            &req,
            std::slice::from_ref(&self.signed),
            crate::interaction::Decision::Allow,
            "",
        )
        .await
        .unwrap();
        let crate::interaction::Step::Approved(approved) = step else { panic!("{step:?}") };
        let approved: Approved = *approved;
        let back = super::approve(&self.t.ctx, &approved, &approval).await.unwrap();
        assert_eq!(back, format!("{ORIGIN}/reader"));
    }
}

fn bearer(hop: &Outgoing) -> String {
    let value = hop.headers.iter().find(|(name, _)| name == "authorization").unwrap().1.clone();
    value.split_once(' ').unwrap().1.to_owned()
}

#[tokio::test]
async fn without_a_grant_the_answer_is_the_approval_page() {
    let w = world().await;
    let script = Script::default();
    let answer = w.ask(&script, &w.request("https://feeds.example/api/feed")).await;
    let Answer::Approval { url } = answer else { panic!("{answer:?}") };
    assert!(url.starts_with("https://accounts.example.test/proxy/approve?app="), "{url}");
    assert!(url.contains("return_to=https%3A%2F%2Fapp%2Eexample%2Freader"), "{url}");
    assert!(script.hops().is_empty(), "nothing is called before the approval");
    // Nobody signed in: the same page, which signs in first.
    let nobody = request(&w.t.ctx, &script, &[], &w.request("https://feeds.example/api/feed"))
        .await
        .unwrap();
    assert!(matches!(nobody, Answer::Approval { .. }));
    // A return address outside the app's origins is refused, here and on the page.
    let mut elsewhere = w.request("https://feeds.example/api/feed");
    elsewhere.return_to = Some("https://evil.example/".to_owned());
    assert!(matches!(w.ask(&script, &elsewhere).await, Answer::Refused(Refusal::BadRequest(_))));
    assert!(prepare_approval(&w.t.ctx, w.client.id(), "https://evil.example/").await.is_err());
    assert!(prepare_approval(&w.t.ctx, w.client.id(), "/account").await.is_err());
    assert!(prepare_approval(&w.t.ctx, "nope", &format!("{ORIGIN}/")).await.is_err());
}

#[tokio::test]
async fn after_approval_the_call_carries_a_valid_token_the_browser_never_sees() {
    let w = world().await;
    w.approve().await;
    let script = Script::default();
    script.answer(
        "https://feeds.example/api/feed",
        ok(200, &[("content-type", "text/plain"), ("set-cookie", "sid=1")], "feed\n"),
    );
    let answer = w.ask(&script, &w.request("https://feeds.example/api/feed")).await;
    let Answer::Resource(fetched) = answer else { panic!("{answer:?}") };
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, b"feed\n");
    assert_eq!(fetched.headers, vec![("content-type".to_owned(), "text/plain".to_owned())]);
    let hop = &script.hops()[0];
    assert_eq!(hop.method, "GET");
    assert!(hop.headers.iter().all(|(name, _)| name != "cookie"));
    assert!(!format!("{hop:?}").contains(&bearer(hop)), "the token stays out of Debug");
    let info = tokens::inspect(&w.t.ctx, &bearer(hop), false).await.unwrap().unwrap();
    assert_eq!(info.client_id, w.client.id());
    assert_eq!(info.account.unwrap().id, w.alice.id());
    assert!(info.scopes.contains(&API.to_owned()));
    // The second call reuses the held token.
    w.ask(&script, &w.request("https://feeds.example/api/feed")).await;
    assert_eq!(bearer(&script.hops()[1]), bearer(hop));
    // Unknown apps and URLs outside the prefixes call nothing.
    let mut unknown = w.request("https://feeds.example/api/feed");
    unknown.app = "nope".to_owned();
    assert_eq!(w.ask(&script, &unknown).await, Answer::Refused(Refusal::UnknownApp));
    let outside = w.ask(&script, &w.request("https://feeds.example/admin")).await;
    assert_eq!(outside, Answer::Refused(Refusal::UrlNotAllowed));
    let mut cookie = w.request("https://feeds.example/api/feed");
    cookie.headers.push(("Cookie".to_owned(), "x=1".to_owned()));
    assert!(matches!(w.ask(&script, &cookie).await, Answer::Refused(Refusal::BadRequest(_))));
    let mut trace = w.request("https://feeds.example/api/feed");
    trace.method = "TRACE".to_owned();
    assert!(matches!(w.ask(&script, &trace).await, Answer::Refused(Refusal::BadRequest(_))));
    assert_eq!(script.hops().len(), 2);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_and_a_revoked_grant_asks_again() {
    let w = world().await;
    w.approve().await;
    let script = Script::default();
    script.answer("https://feeds.example/api/feed", ok(200, &[], "feed"));
    let url = "https://feeds.example/api/feed";
    w.ask(&script, &w.request(url)).await;
    let first = bearer(&script.hops()[0]);
    w.t.advance(crate::oauth2::ACCESS_TOKEN_TTL_SECS + 1);
    assert!(tokens::inspect(&w.t.ctx, &first, false).await.unwrap().is_none(), "expired");
    w.ask(&script, &w.request(url)).await;
    let second = bearer(&script.hops()[1]);
    assert_ne!(first, second);
    assert!(tokens::inspect(&w.t.ctx, &second, false).await.unwrap().is_some());
    // Revoking the grant (the account page's "Remove access") ends the holding too.
    let grant = grants::find_live(&w.t.ctx, w.alice.id(), w.client.id(), Protocol::OAuth2)
        .await
        .unwrap()
        .unwrap();
    grants::revoke(&w.t.ctx, w.alice.id(), &grant.id, &Actor::Account, "").await.unwrap();
    assert!(matches!(w.ask(&script, &w.request(url)).await, Answer::Approval { .. }));
    assert!(tokens::inspect(&w.t.ctx, &second, false).await.unwrap().is_none());
    // Approving again works from a fresh grant.
    w.approve().await;
    assert!(matches!(w.ask(&script, &w.request(url)).await, Answer::Resource(_)));
    // A disabled account's holding no longer works.
    crate::accounts::set_state(&w.t.ctx, &w.alice.record, AccountState::Disabled, &Actor::Cli, "")
        .await
        .unwrap();
    assert!(matches!(w.ask(&script, &w.request(url)).await, Answer::Approval { .. }));
}

#[tokio::test]
async fn a_target_needing_more_than_was_granted_asks_again() {
    let w = world().await;
    // A grant recorded for fewer scopes than the private prefix needs (an older registration).
    let grant = grants::grant(
        &w.t.ctx,
        w.alice.id(),
        w.client.id(),
        Protocol::OAuth2,
        &[API.to_owned()],
        "",
    )
    .await
    .unwrap();
    let approval = prepare_approval(&w.t.ctx, w.client.id(), &format!("{ORIGIN}/")).await.unwrap();
    let narrow =
        Approval { app: FrontEnd { targets: vec![app().targets[0].clone()], ..app() }, ..approval };
    let approved = Approved { authuser: 0, signed: w.signed.clone(), grant };
    super::approve(&w.t.ctx, &approved, &narrow).await.unwrap();
    let script = Script::default();
    script.answer("https://feeds.example/api/feed", ok(200, &[], "feed"));
    assert!(matches!(
        w.ask(&script, &w.request("https://feeds.example/api/feed")).await,
        Answer::Resource(_)
    ));
    let private = w.ask(&script, &w.request("https://feeds.example/api/private/x")).await;
    assert!(matches!(private, Answer::Approval { .. }), "{private:?}");
}

#[tokio::test]
async fn redirects_are_checked_hop_by_hop() {
    let w = world().await;
    w.approve().await;
    let script = Script::default();
    let moved = |to: &str| ok(302, &[("location", to)], "");
    script.answer("https://feeds.example/api/a", moved("/api/b"));
    script.answer("https://feeds.example/api/b", ok(200, &[], "b"));
    script.answer("https://feeds.example/api/out", moved("https://metadata.internal/latest"));
    script.answer("https://feeds.example/api/up", moved("../admin"));
    for i in 0..7 {
        script.answer(
            &format!("https://feeds.example/api/loop{i}"),
            moved(&format!("loop{}", i + 1)),
        );
    }
    let mut post = w.request("https://feeds.example/api/a");
    post.method = "POST".to_owned();
    post.body = b"x".to_vec();
    let Answer::Resource(fetched) = w.ask(&script, &post).await else { panic!() };
    assert_eq!(fetched.body, b"b");
    let hops = script.hops();
    assert_eq!(hops[1].url.as_str(), "https://feeds.example/api/b");
    assert_eq!(hops[1].method, "GET", "a 302 continues with a GET");
    assert!(hops[1].body.is_empty());
    assert_eq!(bearer(&hops[1]), bearer(&hops[0]));
    let out = w.ask(&script, &w.request("https://feeds.example/api/out")).await;
    assert_eq!(out, Answer::Refused(Refusal::RedirectNotAllowed));
    let up = w.ask(&script, &w.request("https://feeds.example/api/up")).await;
    assert_eq!(up, Answer::Refused(Refusal::RedirectNotAllowed));
    let before = script.hops().len();
    let looped = w.ask(&script, &w.request("https://feeds.example/api/loop0")).await;
    assert_eq!(looped, Answer::Refused(Refusal::TooManyRedirects));
    assert_eq!(script.hops().len() - before, MAX_REDIRECTS + 1);
}

#[tokio::test]
async fn fetch_failures_become_clear_refusals() {
    let w = world().await;
    w.approve().await;
    let script = Script::default();
    for (path, err, refusal) in [
        ("private", FetchError::AddressNotAllowed, Refusal::AddressNotAllowed),
        ("big", FetchError::ResponseTooLarge, Refusal::ResponseTooLarge),
        ("slow", FetchError::Timeout, Refusal::Timeout),
        ("nx", FetchError::Unresolvable, Refusal::Unresolvable),
    ] {
        let url = format!("{API}{path}");
        script.answer(&url, Err(err));
        assert_eq!(w.ask(&script, &w.request(&url)).await, Answer::Refused(refusal));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_after_expiry_refreshes_without_losing_the_holding() {
    let w = Arc::new(world().await);
    w.approve().await;
    let script = Arc::new(Script::default());
    script.answer("https://feeds.example/api/feed", ok(200, &[], "feed"));
    w.t.advance(crate::oauth2::ACCESS_TOKEN_TTL_SECS + 1);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (w, script) = (w.clone(), script.clone());
        tasks.push(tokio::spawn(async move {
            w.ask(&script, &w.request("https://feeds.example/api/feed")).await
        }));
    }
    for task in tasks {
        assert!(matches!(task.await.unwrap(), Answer::Resource(_)));
    }
    for hop in script.hops() {
        let token = bearer(&hop);
        assert!(tokens::inspect(&w.t.ctx, &token, false).await.unwrap().is_some());
    }
    // Afterwards one token is held and reused.
    let before = script.hops().len();
    w.ask(&script, &w.request("https://feeds.example/api/feed")).await;
    w.ask(&script, &w.request("https://feeds.example/api/feed")).await;
    let hops = script.hops();
    assert_eq!(bearer(&hops[before]), bearer(&hops[before + 1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_approvals_leave_one_working_holding() {
    let w = Arc::new(world().await);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move { w.approve().await }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let script = Script::default();
    script.answer("https://feeds.example/api/feed", ok(200, &[], "feed"));
    let answer = w.ask(&script, &w.request("https://feeds.example/api/feed")).await;
    assert!(matches!(answer, Answer::Resource(_)), "{answer:?}");
    assert!(tokens::inspect(&w.t.ctx, &bearer(&script.hops()[0]), false).await.unwrap().is_some());
}

#[tokio::test]
async fn front_end_apps_are_registered_checked_and_removed() {
    let w = world().await;
    let project = w.t.project("Other", "alice@example.test").await;
    let bad_scope = NewFrontEnd {
        name: "x".to_owned(),
        origins: vec![ORIGIN.to_owned()],
        targets: vec![Target {
            prefix: API.to_owned(),
            protocol: TargetProtocol::OAuth2,
            consumer: None,
            scopes: vec!["https://unknown.example/".to_owned()],
        }],
    };
    assert!(register(&w.t.ctx, &project, bad_scope, &Actor::Cli).await.is_err());
    let no_origin =
        NewFrontEnd { name: "x".to_owned(), origins: Vec::new(), targets: app().targets };
    assert!(register(&w.t.ctx, &project, no_origin, &Actor::Cli).await.is_err());
    // The generic client form does not make front-end apps.
    let new = NewClient {
        kind: ClientKind::FrontEnd,
        name: "x".to_owned(),
        redirect_uris: Vec::new(),
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    assert!(clients::create(&w.t.ctx, &project, new, &Actor::Cli).await.is_err());
    let listed = list(&w.t.ctx, &w.client.record.project_id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1, app());
    // A front-end app cannot use the token endpoint: it has no secret and is not public.
    assert!(!w.client.is_public() && !w.client.kind.confidential());
    w.approve().await;
    remove(&w.t.ctx, w.client.id(), &Actor::Cli).await.unwrap();
    let script = Script::default();
    let gone = w.ask(&script, &w.request("https://feeds.example/api/feed")).await;
    assert_eq!(gone, Answer::Refused(Refusal::UnknownApp));
    assert!(remove(&w.t.ctx, w.client.id(), &Actor::Cli).await.is_err());
}

#[tokio::test]
async fn head_requests_pass_no_body_and_other_methods_keep_theirs() {
    let w = world().await;
    w.approve().await;
    let script = Script::default();
    script.answer(
        "https://feeds.example/api/feed",
        ok(200, &[("content-type", "text/plain")], "feed"),
    );
    let mut head = w.request("https://feeds.example/api/feed");
    head.method = "head".to_owned();
    let Answer::Resource(fetched) = w.ask(&script, &head).await else { panic!() };
    assert!(fetched.body.is_empty());
    assert_eq!(script.hops()[0].method, "HEAD");
    let mut put = w.request("https://feeds.example/api/feed");
    put.method = "PUT".to_owned();
    put.body = b"new".to_vec();
    put.headers.push(("Content-Type".to_owned(), "text/plain".to_owned()));
    assert!(matches!(w.ask(&script, &put).await, Answer::Resource(_)));
    let hop = &script.hops()[1];
    assert_eq!((hop.method.as_str(), hop.body.as_slice()), ("PUT", &b"new"[..]));
    assert!(hop.headers.contains(&("content-type".to_owned(), "text/plain".to_owned())));
}

const LEGACY: &str = "https://legacy.example/feeds/";

/// A world whose app also reaches an AuthSub-only resource.
async fn legacy_world(edit: impl FnOnce(&mut crate::Policy)) -> World {
    let t = TestCtx::with_policy(edit).await;
    let alice = t.account("alice@example.test").create().await;
    let project = t.project("Feeds", "alice@example.test").await;
    let service = services::NewService {
        name: "legacy".to_owned(),
        display_name: "Legacy".to_owned(),
        scopes: vec![API.to_owned(), LEGACY.to_owned()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    services::add(&t.ctx, service, &Actor::Cli).await.unwrap();
    let targets = vec![
        parse_target(&format!("{API} {API}")).unwrap(),
        parse_target(&format!("authsub {LEGACY} {LEGACY}")).unwrap(),
    ];
    assert_eq!(targets[1].protocol, TargetProtocol::AuthSub);
    let new = NewFrontEnd { name: "Reader".to_owned(), origins: vec![ORIGIN.to_owned()], targets };
    let client = register(&t.ctx, &project, new, &Actor::Cli).await.unwrap();
    let signed = world_signed(&t, &alice);
    World { t, alice, client, signed }
}

fn world_signed(t: &TestCtx, alice: &TestAccount) -> SignedIn {
    let session = SessionRecord {
        id: "s-alice".to_owned(),
        account_id: alice.id().to_owned(),
        created_at: t.now(),
        auth_time: t.now(),
        last_seen_at: t.now(),
        expires_at: t.now() + 3600,
        revoked_at: None,
        persistent: false,
        second_factor: false,
        user_agent: String::new(),
        ip: String::new(),
    };
    SignedIn { token: String::new(), session, account: alice.record.clone() }
}

#[test]
fn targets_are_written_with_an_optional_protocol() {
    let plain = parse_target("https://a.example/x/ s1 s2").unwrap();
    assert_eq!(
        (plain.protocol, plain.prefix.as_str()),
        (TargetProtocol::OAuth2, "https://a.example/x/")
    );
    assert_eq!(plain.scopes, vec!["s1".to_owned(), "s2".to_owned()]);
    let authsub = parse_target("authsub https://a.example/x/ s1").unwrap();
    assert_eq!(authsub.protocol, TargetProtocol::AuthSub);
    assert!(parse_target("oauth2 https://a.example/x/").is_err(), "no scopes");
    assert!(parse_target("").is_err());
}

#[tokio::test]
async fn authsub_targets_get_a_held_authsub_session_token_of_the_same_grant() {
    let w = legacy_world(|_| ()).await;
    w.approve().await;
    let script = Script::default();
    script.answer(&format!("{LEGACY}default"), ok(200, &[], "legacy feed"));
    script.answer(&format!("{API}feed"), ok(200, &[], "feed"));
    let Answer::Resource(fetched) = w.ask(&script, &w.request(&format!("{LEGACY}default"))).await
    else {
        panic!()
    };
    assert_eq!(fetched.body, b"legacy feed");
    let header =
        script.hops()[0].headers.iter().find(|(n, _)| n == "authorization").unwrap().1.clone();
    let token = header.strip_prefix("AuthSub token=\"").unwrap().strip_suffix('"').unwrap();
    let presented = crate::authsub::Presented { token, sigalg: None, data: None, sig: None };
    let facts = crate::caller::RequestFacts::default();
    let checked = crate::authsub::check(&w.t.ctx, presented, &facts).await.unwrap().unwrap();
    assert_eq!(checked.record.kind, CredentialKind::AuthsubSession);
    assert_eq!(checked.record.client_id.as_deref(), Some(w.client.id()));
    assert_eq!(checked.scopes(), vec![LEGACY.to_owned()]);
    // The OAuth 2.0 target of the same app still gets its bearer token.
    w.ask(&script, &w.request(&format!("{API}feed"))).await;
    assert!(
        script.hops()[1]
            .headers
            .iter()
            .any(|(n, v)| n == "authorization" && v.starts_with("Bearer "))
    );
    // Revoking the grant ends the AuthSub token too.
    let grant = grants::find_live(&w.t.ctx, w.alice.id(), w.client.id(), Protocol::OAuth2)
        .await
        .unwrap()
        .unwrap();
    grants::revoke(&w.t.ctx, w.alice.id(), &grant.id, &Actor::Account, "").await.unwrap();
    assert!(crate::authsub::check(&w.t.ctx, presented, &facts).await.unwrap().is_err());
    let again = w.ask(&script, &w.request(&format!("{LEGACY}default"))).await;
    assert!(matches!(again, Answer::Approval { .. }), "{again:?}");
}

#[tokio::test]
async fn a_switched_off_authsub_refuses_authsub_targets_clearly() {
    let w = legacy_world(|policy| policy.disabled_protocols = vec![Protocol::AuthSub]).await;
    w.approve().await;
    let script = Script::default();
    script.answer(&format!("{API}feed"), ok(200, &[], "feed"));
    let refused = w.ask(&script, &w.request(&format!("{LEGACY}default"))).await;
    assert_eq!(refused, Answer::Refused(Refusal::ProtocolOff));
    assert!(matches!(w.ask(&script, &w.request(&format!("{API}feed"))).await, Answer::Resource(_)));
    assert_eq!(script.hops().len(), 1);
}

const SIGNED: &str = "https://signed.example/feeds/";
const CONSUMER: &str = "signed.example";

/// A world whose app also reaches a resource that takes OAuth 1.0: the consumer `signed.example`
/// is registered by the project's owner, with an HMAC consumer secret.
async fn oauth1_world(edit: impl FnOnce(&mut crate::Policy)) -> World {
    let t = TestCtx::with_policy(edit).await;
    let alice = t.account("alice@example.test").admin().create().await;
    let project = t.project("Feeds", "alice@example.test").await;
    let service = services::NewService {
        name: "signed".to_owned(),
        display_name: "Signed".to_owned(),
        scopes: vec![API.to_owned(), SIGNED.to_owned()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    services::add(&t.ctx, service, &Actor::Cli).await.unwrap();
    crate::authsub::register(
        &t.ctx,
        CONSUMER,
        "https://signed.example/",
        None,
        Some("alice@example.test"),
        &Actor::Cli,
    )
    .await
    .unwrap();
    let line = format!("oauth1 {CONSUMER} {SIGNED} {SIGNED}");
    let new = || NewFrontEnd {
        name: "Reader".to_owned(),
        origins: vec![ORIGIN.to_owned()],
        targets: vec![parse_target(&format!("{API} {API}")).unwrap(), parse_target(&line).unwrap()],
    };
    // No consumer secret yet: nothing could be signed.
    assert!(matches!(register(&t.ctx, &project, new(), &Actor::Cli).await, Err(Error::Invalid(_))));
    crate::oauth1::mint_consumer_secret(&t.ctx, CONSUMER, &Actor::Cli).await.unwrap();
    let client = register(&t.ctx, &project, new(), &Actor::Cli).await.unwrap();
    let signed = world_signed(&t, &alice);
    World { t, alice, client, signed }
}

fn authorization(hop: &Outgoing) -> String {
    hop.headers.iter().find(|(name, _)| name == "authorization").unwrap().1.clone()
}

/// The server's own verifier over a hop the proxy sent, as a resource server would present it
/// through the caller check.
async fn verify_hop(
    ctx: &Ctx,
    hop: &Outgoing,
    form: &[(&str, &str)],
) -> Result<crate::caller::Caller, crate::caller::CallerError> {
    let presented = crate::caller::parse_authorization(&authorization(hop))?;
    let facts = crate::caller::RequestFacts {
        method: hop.method.clone(),
        url: hop.url.to_string(),
        dpop_proof: None,
        form: form.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    };
    crate::caller::resolve(ctx, &presented, &facts).await.unwrap()
}

#[test]
fn oauth1_targets_name_their_consumer() {
    let target = parse_target("oauth1 feeds.example https://a.example/x/ s1").unwrap();
    assert_eq!(target.protocol, TargetProtocol::OAuth1);
    assert_eq!(target.consumer.as_deref(), Some("feeds.example"));
    assert_eq!(target.prefix, "https://a.example/x/");
    assert_eq!(target.line(), "oauth1 feeds.example https://a.example/x/ s1");
    assert!(parse_target("oauth1 feeds.example https://a.example/x/").is_err(), "no scopes");
    assert!(parse_target("oauth1").is_err());
}

#[tokio::test]
async fn oauth1_targets_are_signed_for_the_servers_own_verifier() {
    let w = oauth1_world(|_| ()).await;
    w.approve().await;
    let script = Script::default();
    let feed = format!("{SIGNED}default?max-results=5&q=a%20b");
    script.answer(&feed, ok(200, &[], "signed feed"));
    let Answer::Resource(fetched) = w.ask(&script, &w.request(&feed)).await else { panic!() };
    assert_eq!(fetched.body, b"signed feed");
    let hop = &script.hops()[0];
    assert!(authorization(hop).starts_with("OAuth "));
    let caller = verify_hop(&w.t.ctx, hop, &[]).await.unwrap();
    let grant = grants::find_live(&w.t.ctx, w.alice.id(), w.client.id(), Protocol::OAuth2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(caller.protocol, Protocol::OAuth1);
    assert_eq!(caller.client_id.as_deref(), Some(CONSUMER));
    assert_eq!(caller.grant_id.as_deref(), Some(grant.id.as_str()));
    assert_eq!(caller.account_id.as_deref(), Some(w.alice.id()));
    assert_eq!(caller.scopes, vec![SIGNED.to_owned()]);
    // The same signed request again is a replay.
    assert!(verify_hop(&w.t.ctx, hop, &[]).await.is_err());

    // A form body is covered by the signature.
    let post_url = format!("{SIGNED}default");
    script.answer(&post_url, ok(201, &[], "made"));
    let mut post = w.request(&post_url);
    post.method = "POST".to_owned();
    post.body = b"title=a+b&n=1".to_vec();
    post.headers.push(("Content-Type".to_owned(), "application/x-www-form-urlencoded".to_owned()));
    assert!(matches!(w.ask(&script, &post).await, Answer::Resource(_)));
    let hop = &script.hops()[1];
    assert!(verify_hop(&w.t.ctx, hop, &[("title", "a b"), ("n", "2")]).await.is_err());
    assert!(verify_hop(&w.t.ctx, hop, &[("title", "a b"), ("n", "1")]).await.is_ok());
    // A body that claims to be a form but is not one is refused, not signed.
    let mut bad = post.clone();
    bad.body = b"a=%zz".to_vec();
    assert!(matches!(w.ask(&script, &bad).await, Answer::Refused(Refusal::BadRequest(_))));
    assert_eq!(script.hops().len(), 2);
    // The OAuth 2.0 target of the same app still gets its bearer token.
    script.answer(&format!("{API}feed"), ok(200, &[], "feed"));
    w.ask(&script, &w.request(&format!("{API}feed"))).await;
    assert!(authorization(&script.hops()[2]).starts_with("Bearer "));
}

#[tokio::test]
async fn a_burst_of_oauth1_calls_is_signed_with_fresh_nonces() {
    let w = Arc::new(oauth1_world(|_| ()).await);
    w.approve().await;
    let script = Arc::new(Script::default());
    let feed = format!("{SIGNED}default");
    script.answer(&feed, ok(200, &[], "signed feed"));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (w, script, feed) = (w.clone(), script.clone(), feed.clone());
        tasks.push(tokio::spawn(async move { w.ask(&script, &w.request(&feed)).await }));
    }
    for task in tasks {
        assert!(matches!(task.await.unwrap(), Answer::Resource(_)));
    }
    let hops = script.hops();
    assert_eq!(hops.len(), 16);
    let mut checks = Vec::new();
    for hop in hops {
        let ctx = w.t.ctx.clone();
        checks.push(tokio::spawn(async move { verify_hop(&ctx, &hop, &[]).await.is_ok() }));
    }
    for check in checks {
        assert!(check.await.unwrap(), "every call verifies: none is a replay");
    }
    // The holding survived the burst.
    assert!(matches!(w.ask(&script, &w.request(&feed)).await, Answer::Resource(_)));
}

#[tokio::test]
async fn a_revoked_grant_or_a_removed_consumer_stops_the_signing() {
    let w = oauth1_world(|_| ()).await;
    w.approve().await;
    let script = Script::default();
    let feed = format!("{SIGNED}default");
    script.answer(&feed, ok(200, &[], "signed feed"));
    assert!(matches!(w.ask(&script, &w.request(&feed)).await, Answer::Resource(_)));
    let held = script.hops()[0].clone();
    let grant = grants::find_live(&w.t.ctx, w.alice.id(), w.client.id(), Protocol::OAuth2)
        .await
        .unwrap()
        .unwrap();
    grants::revoke(&w.t.ctx, w.alice.id(), &grant.id, &Actor::Account, "").await.unwrap();
    let again = w.ask(&script, &w.request(&feed)).await;
    assert!(matches!(again, Answer::Approval { .. }), "{again:?}");
    assert_eq!(script.hops().len(), 1, "nothing signed with a dead token");
    // The token the proxy held is dead for the verifier too (a fresh nonce, same token).
    let crate::caller::Presented::OAuth1(params) =
        crate::caller::parse_authorization(&authorization(&held)).unwrap()
    else {
        panic!()
    };
    let token = params.iter().find(|(name, _)| name == "oauth_token").unwrap().1.clone();
    let kinds = [CredentialKind::Oauth1AccessToken];
    assert!(credentials::find_valid(&w.t.ctx, &token, &kinds).await.unwrap().is_none());

    // Approved again, then the consumer's registration is removed: a clear refusal.
    w.approve().await;
    assert!(matches!(w.ask(&script, &w.request(&feed)).await, Answer::Resource(_)));
    crate::authsub::unregister(&w.t.ctx, CONSUMER, &Actor::Cli).await.unwrap();
    let refused = w.ask(&script, &w.request(&feed)).await;
    assert_eq!(refused, Answer::Refused(Refusal::ConsumerUnavailable));
    assert_eq!(script.hops().len(), 2);
}

#[tokio::test]
async fn a_switched_off_oauth1_refuses_oauth1_targets_clearly() {
    let w = oauth1_world(|policy| policy.disabled_protocols = vec![Protocol::OAuth1]).await;
    w.approve().await;
    let script = Script::default();
    script.answer(&format!("{API}feed"), ok(200, &[], "feed"));
    let refused = w.ask(&script, &w.request(&format!("{SIGNED}default"))).await;
    assert_eq!(refused, Answer::Refused(Refusal::ProtocolOff));
    assert!(matches!(w.ask(&script, &w.request(&format!("{API}feed"))).await, Answer::Resource(_)));
    assert_eq!(script.hops().len(), 1);
}

#[tokio::test]
async fn only_consumers_of_the_projects_owner_may_be_signed_as() {
    let w = oauth1_world(|_| ()).await;
    w.t.account("bob@example.test").create().await;
    let bobs = w.t.project("Bob's", "bob@example.test").await;
    let new = NewFrontEnd {
        name: "Other".to_owned(),
        origins: vec![ORIGIN.to_owned()],
        targets: vec![parse_target(&format!("oauth1 {CONSUMER} {SIGNED} {SIGNED}")).unwrap()],
    };
    assert!(matches!(
        register(&w.t.ctx, &bobs, new.clone(), &Actor::Cli).await,
        Err(Error::Invalid(_))
    ));
    let mut unknown = new.clone();
    unknown.targets[0].consumer = Some("nobody.example".to_owned());
    let project = w.t.project("More", "alice@example.test").await;
    assert!(register(&w.t.ctx, &project, unknown, &Actor::Cli).await.is_err());
    let mut built_in = new.clone();
    built_in.targets[0].scopes = vec!["email".to_owned()];
    assert!(register(&w.t.ctx, &project, built_in, &Actor::Cli).await.is_err(), "OAuth 2.0 scope");
    let mut stray = new.clone();
    stray.targets[0].protocol = TargetProtocol::OAuth2;
    assert!(register(&w.t.ctx, &project, stray, &Actor::Cli).await.is_err(), "a stray consumer");
    assert!(register(&w.t.ctx, &project, new, &Actor::Cli).await.is_ok());
}
