//! OAuth 1.0a end to end on a real server: the three-legged dance with HMAC-SHA1 (header, query
//! and form parameters), the consent page, the exchange once (also under a parallel burst),
//! resource calls through the caller check, OAuth-signed revocation, and the refusals (replayed
//! nonce, stale timestamp, wrong signature, unknown consumer), oauthlib as an independent
//! consumer (HMAC-SHA1 and RSA-SHA1), and the dance driven by `tessera-client`
//! with its tower layer in front of a resource server.

use serde_json::{Value, json};
use tessera_domain::audit::Actor;
use tessera_domain::services::NewService;

use crate::support::{Browser, Page, TestEnv, urlencode};

const CAL: &str = "http://www.example.com/calendar/feeds/";
const CONSUMER: &str = "app.example.com";
const CALLBACK: &str = "http://app.example.com/cb?x=1";

pub(crate) struct Consumer {
    pub(crate) key: String,
    pub(crate) secret: String,
}

/// A service whose scope OAuth 1.0 may grant, an administrator, and a registered consumer with an
/// HMAC secret.
pub(crate) async fn setup(env: &TestEnv) -> Consumer {
    let new = NewService {
        name: "cl".to_owned(),
        display_name: "cl service".to_owned(),
        scopes: vec![CAL.to_owned()],
        clientlogin_ttl_secs: Some(3600),
        protocols: None,
    };
    tessera_domain::services::add(env.ctx(), new, &Actor::Cli).await.unwrap();
    env.account("alice@example.com", "north23AZ").await;
    tessera_domain::authsub::register(
        env.ctx(),
        CONSUMER,
        "http://app.example.com/",
        None,
        Some("alice@example.com"),
        &Actor::Cli,
    )
    .await
    .unwrap();
    let secret = tessera_domain::oauth1::mint_consumer_secret(env.ctx(), CONSUMER, &Actor::Cli)
        .await
        .unwrap();
    Consumer { key: CONSUMER.to_owned(), secret }
}

/// The `Authorization: OAuth …` header for a request: `oauth` are the protocol parameters (without
/// the signature), `extra` the query and form pairs the signature also covers.
pub(crate) fn sign(
    method: &str,
    url: &str,
    oauth: &[(&str, &str)],
    extra: &[(&str, &str)],
    consumer_secret: &str,
    token_secret: &str,
) -> String {
    let (scheme, authority, path, query) = tessera_proto_oauth1::split_url(url).unwrap();
    let mut all: Vec<(String, String)> =
        oauth.iter().chain(extra).map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    all.extend(tessera_proto_oauth1::parse_form(query).unwrap());
    let uri = tessera_proto_oauth1::base_string_uri(scheme, authority, path);
    let base = tessera_proto_oauth1::base_string(method, &uri, &all);
    let key = format!(
        "{}&{}",
        tessera_proto_oauth1::encode(consumer_secret),
        tessera_proto_oauth1::encode(token_secret)
    );
    let signature = tessera_crypto::oauth1::hmac_sha1_base64(&key, &base);
    let mut header = String::from("OAuth realm=\"\"");
    for (k, v) in oauth.iter().copied().chain([("oauth_signature", signature.as_str())]) {
        header.push_str(&format!(
            ", {}=\"{}\"",
            tessera_proto_oauth1::encode(k),
            tessera_proto_oauth1::encode(v)
        ));
    }
    header
}

pub(crate) async fn send(method: &str, url: &str, authorization: &str, form: Option<&str>) -> Page {
    let client = reqwest::Client::new();
    let mut req = match method {
        "POST" => client.post(url),
        _ => client.get(url),
    }
    .header("authorization", authorization);
    if let Some(form) = form {
        req = req
            .header("content-type", "application/x-www-form-urlencoded; charset=UTF-8;")
            .body(form.to_owned());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    Page { status, headers, body: res.text().await.unwrap() }
}

pub(crate) fn form_value(body: &str, name: &str) -> String {
    tessera_proto_oauth1::parse_form(body)
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("{name} in {body}"))
}

async fn request_token(env: &TestEnv, consumer: &Consumer, nonce: &str) -> (String, String) {
    let url = env.url(&format!("/accounts/OAuthGetRequestToken?scope={}", urlencode(CAL)));
    let now = env.clock.now_secs().to_string();
    let header = sign(
        "GET",
        &url,
        &[
            ("oauth_callback", CALLBACK),
            ("oauth_consumer_key", &consumer.key),
            ("oauth_nonce", nonce),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", &now),
            ("oauth_version", "1.0"),
        ],
        &[],
        &consumer.secret,
        "",
    );
    let page = send("GET", &url, &header, None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.headers["content-type"], "text/plain; charset=UTF-8");
    let keys: Vec<String> =
        tessera_proto_oauth1::parse_form(&page.body).unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["oauth_token", "oauth_token_secret", "oauth_callback_confirmed"]);
    assert!(page.body.ends_with("&oauth_callback_confirmed=true"), "{}", page.body);
    (form_value(&page.body, "oauth_token"), form_value(&page.body, "oauth_token_secret"))
}

/// Signs in, allows on the consent page, and returns the verifier from the callback.
async fn authorize(env: &TestEnv, b: &mut Browser, token: &str) -> String {
    let path = format!("/accounts/OAuthAuthorizeToken?oauth_token={}&hd=default", urlencode(token));
    let page = b.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("app.example.com"), "{}", page.body);
    let query = page
        .input("query")
        .unwrap()
        .replace("&#38;", "&")
        .replace("&#61;", "=")
        .replace("&#37;", "%");
    let res = b
        .post(
            "/accounts/OAuthAuthorizeToken",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("query", &query), ("action", "allow")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let location = res.location().to_owned();
    let prefix =
        format!("{CALLBACK}&oauth_token={}&oauth_verifier=", tessera_proto_oauth1::encode(token));
    assert!(location.starts_with(&prefix), "{location}");
    let _ = env;
    form_value(location.split_once('?').unwrap().1, "oauth_verifier")
}

fn exchange_request(
    env: &TestEnv,
    consumer: &Consumer,
    token: &str,
    secret: &str,
    verifier: &str,
    nonce: &str,
) -> (String, String, String) {
    let url = env.url("/accounts/OAuthGetAccessToken");
    let now = env.clock.now_secs().to_string();
    let header = sign(
        "POST",
        &url,
        &[
            ("oauth_consumer_key", &consumer.key),
            ("oauth_nonce", nonce),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", &now),
            ("oauth_token", token),
        ],
        &[("oauth_verifier", verifier)],
        &consumer.secret,
        secret,
    );
    (url, header, format!("oauth_verifier={}", urlencode(verifier)))
}

async fn caller(env: &TestEnv, authorization: &str, url: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(env.url("/accounts/caller"))
        .json(&json!({ "authorization": authorization, "method": "GET", "url": url }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

fn resource_header(
    consumer: &Consumer,
    url: &str,
    token: &str,
    secret: &str,
    nonce: &str,
    now: i64,
) -> String {
    sign(
        "GET",
        url,
        &[
            ("oauth_consumer_key", &consumer.key),
            ("oauth_nonce", nonce),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", &now.to_string()),
            ("oauth_token", token),
            ("oauth_version", "1.0"),
        ],
        &[],
        &consumer.secret,
        secret,
    )
}

trait NowSecs {
    fn now_secs(&self) -> i64;
}

impl NowSecs for tessera_domain::FixedClock {
    fn now_secs(&self) -> i64 {
        tessera_domain::Clock::now(self)
    }
}

#[tokio::test]
async fn three_legged_flow_with_hmac_sha1() {
    let env = TestEnv::start().await;
    let consumer = setup(&env).await;
    let (token, secret) = request_token(&env, &consumer, "n-request").await;
    assert!(token.starts_with("4/"), "{token}");
    assert_eq!(secret.len(), 24);

    let mut b = env.browser();
    // Not signed in: the sign-in page first, then back here.
    let first = b.get(&format!("/OAuthAuthorizeToken?oauth_token={}", urlencode(&token))).await;
    assert_eq!(first.status, 302);
    assert!(first.location().starts_with("/accounts/ServiceLogin?continue="));
    b.sign_in("alice@example.com", "north23AZ").await;
    let verifier = authorize(&env, &mut b, &token).await;

    // A wrong verifier is refused and spends nothing.
    let (url, header, _) = exchange_request(&env, &consumer, &token, &secret, "wrong", "n-x0");
    let refused = send("POST", &url, &header, Some("oauth_verifier=wrong")).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.starts_with("verifier_invalid\n"));
    assert!(refused.headers["www-authenticate"].to_str().unwrap().starts_with("OAuth realm="));

    let (url, header, form) = exchange_request(&env, &consumer, &token, &secret, &verifier, "n-x1");
    let page = send("POST", &url, &header, Some(&form)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let keys: Vec<String> =
        tessera_proto_oauth1::parse_form(&page.body).unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["oauth_token", "oauth_token_secret"]);
    let access = form_value(&page.body, "oauth_token");
    let access_secret = form_value(&page.body, "oauth_token_secret");
    assert!(access.starts_with("1/"));

    // The request token is spent.
    let (url, header, form) = exchange_request(&env, &consumer, &token, &secret, &verifier, "n-x2");
    let again = send("POST", &url, &header, Some(&form)).await;
    assert_eq!(again.status, 401, "{}", again.body);
    assert!(again.body.starts_with("token_rejected\n"));

    // Resource calls through the caller check.
    let feed = format!("{CAL}default/private/full?max-results=5");
    let now = env.clock.now_secs();
    let header = resource_header(&consumer, &feed, &access, &access_secret, "r1", now);
    let (status, found) = caller(&env, &header, &feed).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["protocol"], "oauth1");
    assert_eq!(found["client_id"], CONSUMER);
    assert_eq!(found["kind"], "oauth1_access_token");
    assert_eq!(found["scopes"], json!([CAL]));
    // Replayed nonce.
    assert_eq!(caller(&env, &header, &feed).await.0, 401);
    // Wrong token secret: a bad signature.
    let header = resource_header(&consumer, &feed, &access, "nope", "r2", now);
    assert_eq!(caller(&env, &header, &feed).await.0, 403);
    // Signed for another URL.
    let header = resource_header(&consumer, &feed, &access, &access_secret, "r3", now);
    assert_eq!(caller(&env, &header, &format!("{CAL}other")).await.0, 403);
    // A stale timestamp.
    let header = resource_header(&consumer, &feed, &access, &access_secret, "r4", now - 301);
    assert_eq!(caller(&env, &header, &feed).await.0, 401);

    // The account page lists the grant.
    let account_page = b.get("/account").await;
    assert!(account_page.body.contains("<td>oauth1</td>"), "{}", account_page.body);

    // AuthSubTokenInfo and AuthSubRevokeToken signed with OAuth.
    let info_url = env.url("/accounts/AuthSubTokenInfo");
    let header = resource_header(&consumer, &info_url, &access, &access_secret, "r5", now);
    let info = send("GET", &info_url, &header, None).await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.body, format!("Target={CONSUMER}\nScope={CAL}\nSecure=false\n"));
    let revoke_url = env.url("/accounts/AuthSubRevokeToken");
    let header = resource_header(&consumer, &revoke_url, &access, &access_secret, "r6", now);
    let revoked = send("GET", &revoke_url, &header, None).await;
    assert_eq!((revoked.status, revoked.body.as_str()), (200, ""));
    let header = resource_header(&consumer, &feed, &access, &access_secret, "r7", now);
    assert_eq!(caller(&env, &header, &feed).await.0, 401);
}

#[tokio::test]
async fn refusals_carry_the_problem_word() {
    let env = TestEnv::start().await;
    let consumer = setup(&env).await;
    let url = env.url(&format!("/OAuthGetRequestToken?scope={}", urlencode(CAL)));
    let now = env.clock.now_secs();
    let params = |nonce: &'static str, key: &'static str, at: i64| {
        vec![
            ("oauth_callback".to_owned(), "oob".to_owned()),
            ("oauth_consumer_key".to_owned(), key.to_owned()),
            ("oauth_nonce".to_owned(), nonce.to_owned()),
            ("oauth_signature_method".to_owned(), "HMAC-SHA1".to_owned()),
            ("oauth_timestamp".to_owned(), at.to_string()),
        ]
    };
    let header_for = |params: &[(String, String)], secret: &str| {
        let borrowed: Vec<(&str, &str)> =
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        sign("GET", &url, &borrowed, &[], secret, "")
    };
    // Wrong secret: 400 signature_invalid with our base string.
    let page = send("GET", &url, &header_for(&params("a", CONSUMER, now), "wrong"), None).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.starts_with("signature_invalid\nbase_string:GET&http%3A%2F%2F127.0.0.1"));
    // Stale.
    let stale = header_for(&params("b", CONSUMER, now - 301), &consumer.secret);
    let page = send("GET", &url, &stale, None).await;
    assert_eq!(page.status, 401);
    assert!(page.body.starts_with("timestamp_refused\n"));
    // Unknown consumer.
    let page = send("GET", &url, &header_for(&params("c", "nobody.example", now), "x"), None).await;
    assert_eq!(page.status, 401);
    assert!(page.body.starts_with("consumer_key_unknown\n"));
    // Replay.
    let good = header_for(&params("d", CONSUMER, now), &consumer.secret);
    assert_eq!(send("GET", &url, &good, None).await.status, 200);
    let page = send("GET", &url, &good, None).await;
    assert_eq!(page.status, 401);
    assert!(page.body.starts_with("nonce_used\n"));
    // No scope.
    let bare = env.url("/OAuthGetRequestToken");
    let borrowed: Vec<(String, String)> = params("e", CONSUMER, now);
    let borrowed: Vec<(&str, &str)> =
        borrowed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let page =
        send("GET", &bare, &sign("GET", &bare, &borrowed, &[], &consumer.secret, ""), None).await;
    assert_eq!(page.status, 400);
    assert!(page.body.starts_with("parameter_absent\n"), "{}", page.body);
    // A protocol parameter twice (header and query).
    let twice = format!("{url}&oauth_nonce=f");
    let page = send("GET", &twice, &good, None).await;
    assert_eq!(page.status, 400);
    assert!(page.body.starts_with("parameter_rejected\n"), "{}", page.body);
}

/// A consumer is read through the answers the node keeps for the current second; a secret minted
/// anew (or a registration removed) through this node is seen by the very next signed call, in
/// the same second of the injected clock.
#[tokio::test]
async fn a_new_consumer_secret_refuses_the_old_one_at_once() {
    let env = TestEnv::start().await;
    let consumer = setup(&env).await;
    let url = env.url(&format!("/OAuthGetRequestToken?scope={}", urlencode(CAL)));
    let now = env.clock.now_secs().to_string();
    let header_for = |nonce: &str, secret: &str| {
        let params = [
            ("oauth_callback", "oob"),
            ("oauth_consumer_key", CONSUMER),
            ("oauth_nonce", nonce),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", now.as_str()),
        ];
        sign("GET", &url, &params, &[], secret, "")
    };
    for nonce in ["kept-1", "kept-2"] {
        let page = send("GET", &url, &header_for(nonce, &consumer.secret), None).await;
        assert_eq!(page.status, 200, "{}", page.body);
    }
    let fresh = tessera_domain::oauth1::mint_consumer_secret(env.ctx(), CONSUMER, &Actor::Cli)
        .await
        .unwrap();
    let page = send("GET", &url, &header_for("old", &consumer.secret), None).await;
    assert_eq!(page.status, 400, "the old secret still worked: {}", page.body);
    assert!(page.body.starts_with("signature_invalid\n"), "{}", page.body);
    let page = send("GET", &url, &header_for("new", &fresh), None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    tessera_domain::authsub::unregister(env.ctx(), CONSUMER, &Actor::Cli).await.unwrap();
    let page = send("GET", &url, &header_for("gone", &fresh), None).await;
    assert_eq!(page.status, 401, "a removed registration still signed: {}", page.body);
    assert!(page.body.starts_with("consumer_key_unknown\n"), "{}", page.body);
}

#[tokio::test]
async fn the_access_exchange_happens_once_under_a_parallel_burst() {
    let env = TestEnv::start().await;
    let consumer = setup(&env).await;
    let (token, secret) = request_token(&env, &consumer, "n-request").await;
    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    let verifier = authorize(&env, &mut b, &token).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (url, header, form) =
            exchange_request(&env, &consumer, &token, &secret, &verifier, &format!("burst-{i}"));
        tasks.push(tokio::spawn(async move { send("POST", &url, &header, Some(&form)).await }));
    }
    let mut ok = 0;
    for task in tasks {
        let page = task.await.unwrap();
        match page.status {
            200 => ok += 1,
            401 => assert!(page.body.starts_with("token_rejected\n"), "{}", page.body),
            other => panic!("{other}: {}", page.body),
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn deny_returns_the_token_alone_and_kills_it() {
    let env = TestEnv::start().await;
    let consumer = setup(&env).await;
    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    // Deny: back to the callback with the token only; the token is dead.
    let (token, _) = request_token(&env, &consumer, "n1").await;
    let page =
        b.get(&format!("/accounts/OAuthAuthorizeToken?oauth_token={}", urlencode(&token))).await;
    let query = page
        .input("query")
        .unwrap()
        .replace("&#38;", "&")
        .replace("&#61;", "=")
        .replace("&#37;", "%");
    let res = b
        .post(
            "/accounts/OAuthAuthorizeToken",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("query", &query), ("action", "deny")],
        )
        .await;
    assert_eq!(res.status, 303);
    assert_eq!(
        res.location(),
        format!("{CALLBACK}&oauth_token={}", tessera_proto_oauth1::encode(&token))
    );
    let again =
        b.get(&format!("/accounts/OAuthAuthorizeToken?oauth_token={}", urlencode(&token))).await;
    assert_eq!(again.status, 400);
}

#[tokio::test]
async fn administrators_mint_a_consumer_secret_on_the_domains_page() {
    let env = TestEnv::start().await;
    let new = NewService {
        name: "cl".to_owned(),
        display_name: "cl service".to_owned(),
        scopes: vec![CAL.to_owned()],
        clientlogin_ttl_secs: Some(3600),
        protocols: None,
    };
    tessera_domain::services::add(env.ctx(), new, &Actor::Cli).await.unwrap();
    let root = env.account("root@example.com", "root-password-1").await;
    tessera_domain::accounts::set_admin(env.ctx(), &root, true, &Actor::Cli, "").await.unwrap();
    let mut b = env.browser();
    b.sign_in("root@example.com", "root-password-1").await;
    let page = b.get("/accounts/ManageDomains").await;
    assert!(page.body.contains("name=\"hmac\""));
    let ok = b
        .post(
            "/accounts/ManageDomains",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("domain", CONSUMER),
                ("next_prefix", "http://app.example.com/"),
                ("cert", ""),
                ("hmac", "1"),
            ],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let secret = ok
        .body
        .split_once("consumer secret (shown once): ")
        .unwrap()
        .1
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect::<String>();
    assert_eq!(secret.len(), 24, "{}", ok.body);
    let consumer = Consumer { key: CONSUMER.to_owned(), secret };
    request_token(&env, &consumer, "n1").await;
}

#[tokio::test]
async fn oob_shows_the_verifier_and_the_anonymous_consumer_signs_with_anonymous() {
    let env = TestEnv::start().await;
    setup(&env).await;
    // The anonymous consumer's row belongs to an administrator.
    let alice =
        tessera_domain::accounts::find_by_email(env.ctx(), "alice@example.com").await.unwrap();
    tessera_domain::accounts::set_admin(env.ctx(), &alice, true, &Actor::Cli, "").await.unwrap();
    let anonymous = Consumer { key: "anonymous".to_owned(), secret: "anonymous".to_owned() };
    let url = env.url(&format!(
        "/accounts/OAuthGetRequestToken?scope={}&xoauth_displayname=Example%20App",
        urlencode(CAL)
    ));
    let now = env.clock.now_secs().to_string();
    let header = sign(
        "GET",
        &url,
        &[
            ("oauth_callback", "oob"),
            ("oauth_consumer_key", "anonymous"),
            ("oauth_nonce", "n1"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", &now),
        ],
        &[],
        &anonymous.secret,
        "",
    );
    let page = send("GET", &url, &header, None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let token = form_value(&page.body, "oauth_token");
    let secret = form_value(&page.body, "oauth_token_secret");
    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    let page =
        b.get(&format!("/accounts/OAuthAuthorizeToken?oauth_token={}", urlencode(&token))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Example App"), "{}", page.body);
    assert!(page.body.contains("This application is not registered."), "{}", page.body);
    let query = page
        .input("query")
        .unwrap()
        .replace("&#38;", "&")
        .replace("&#61;", "=")
        .replace("&#37;", "%");
    let res = b
        .post(
            "/accounts/OAuthAuthorizeToken",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("query", &query), ("action", "allow")],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let verifier = res
        .body
        .split_once("Example App: ")
        .unwrap()
        .1
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect::<String>();
    assert_eq!(verifier.len(), 24, "{}", res.body);
    let (url, header, form) = exchange_request(&env, &anonymous, &token, &secret, &verifier, "n2");
    let page = send("POST", &url, &header, Some(&form)).await;
    assert_eq!(page.status, 200, "{}", page.body);
}

/// Runs `tests/interop/oauth1_client.py` (oauthlib's `Client`) through the three-legged dance
/// with `method`; this side approves on the consent page in between.
async fn oauthlib_dance(env: &TestEnv, py: &std::path::Path, method: &str, secret: &str) -> Value {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let feed = format!("{CAL}default/private/full");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/oauth1_client.py");
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .args([env.base.as_str(), method, CONSUMER, secret, CAL, feed.as_str()])
        .env("PYTHONPATH", py)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let token = lines.next_line().await.unwrap().unwrap_or_default();
    if !token.starts_with("4/") {
        let out = child.wait_with_output().await.unwrap();
        panic!("{token} {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    let verifier = authorize(env, &mut b, &token).await;
    stdin.write_all(format!("{verifier}\n").as_bytes()).await.unwrap();
    stdin.flush().await.unwrap();
    let access = lines.next_line().await.unwrap().unwrap_or_default();
    let checked = lines.next_line().await.unwrap().unwrap_or_default();
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(access.starts_with("1/"), "{access} {stderr}");
    let (status, body) = checked.split_once(' ').unwrap_or_else(|| panic!("{checked} {stderr}"));
    assert_eq!(status, "200", "{body}");
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn oauthlib_consumer_completes_the_dance_with_hmac_sha1_and_rsa_sha1() {
    let Some(py) = crate::support::python_packages("oauthlib").await else { return };
    let env = TestEnv::start().await;
    // oauthlib stamps requests with its own (real) clock: the server's fixed clock is set to the
    // real time for this test only.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    env.clock.set(now.as_secs() as i64);
    let dir = env.dir.path();
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem"])
        .args(["-out", "cert.pem", "-days", "30", "-subj", "/CN=app.example.com"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let new = NewService {
        name: "cl".to_owned(),
        display_name: "cl service".to_owned(),
        scopes: vec![CAL.to_owned()],
        clientlogin_ttl_secs: Some(3600),
        protocols: None,
    };
    tessera_domain::services::add(env.ctx(), new, &Actor::Cli).await.unwrap();
    env.account("alice@example.com", "north23AZ").await;
    let pem = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    tessera_domain::authsub::register(
        env.ctx(),
        CONSUMER,
        "http://app.example.com/",
        Some(&pem),
        Some("alice@example.com"),
        &Actor::Cli,
    )
    .await
    .unwrap();
    let secret = tessera_domain::oauth1::mint_consumer_secret(env.ctx(), CONSUMER, &Actor::Cli)
        .await
        .unwrap();

    let key = dir.join("key.pem").to_string_lossy().into_owned();
    for (method, secret) in [("HMAC-SHA1", secret.as_str()), ("RSA-SHA1", key.as_str())] {
        let found = oauthlib_dance(&env, &py, method, secret).await;
        assert_eq!(found["protocol"], "oauth1", "{method}");
        assert_eq!(found["client_id"], CONSUMER);
        assert_eq!(found["kind"], "oauth1_access_token");
        assert_eq!(found["scopes"], json!([CAL]));
    }
}

#[tokio::test]
async fn tessera_client_drives_the_three_legged_dance() {
    use tessera_client::oauth1::{
        Consumer as ClientConsumer, OAuth1Client, OAuth1Error, SignatureMethod,
    };
    let env = TestEnv::start().await;
    let consumer = setup(&env).await;
    let clock = std::sync::Arc::new(tessera_client::ManualClock::at_unix(
        u64::try_from(env.clock.now_secs()).unwrap(),
    ));
    let client = OAuth1Client::new(
        url::Url::parse(&env.base).unwrap(),
        ClientConsumer {
            key: consumer.key.clone(),
            method: SignatureMethod::HmacSha1(tessera_client::Secret::new(consumer.secret.clone())),
        },
    )
    .with_clock(clock);
    let request = client.request_token(&[CAL], CALLBACK).await.unwrap();
    assert!(request.token.expose().starts_with("4/"));
    let authorize_url = client.authorize_url(&request, Some("default")).unwrap();
    assert_eq!(
        authorize_url.as_str().split_once('?').unwrap().0,
        env.url("/accounts/OAuthAuthorizeToken")
    );
    let query: Vec<(String, String)> = authorize_url.query_pairs().into_owned().collect();
    assert_eq!(
        query,
        [
            ("oauth_token".to_owned(), request.token.expose().to_owned()),
            ("hd".to_owned(), "default".to_owned())
        ]
    );
    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    let verifier = authorize(&env, &mut b, request.token.expose()).await;
    let access = client.access_token(&request, Some(&verifier)).await.unwrap();
    assert!(access.token.expose().starts_with("1/"));
    match client.access_token(&request, Some(&verifier)).await {
        Err(OAuth1Error::Rejected { status: 401, problem }) => {
            assert_eq!(problem, "token_rejected")
        }
        other => panic!("{other:?}"),
    }
    let feed = format!("{CAL}default/private/full?max-results=5");
    let header =
        client.authorization_header("GET", &url::Url::parse(&feed).unwrap(), &access).unwrap();
    let (status, found) = caller(&env, &header, &feed).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["client_id"], CONSUMER);
    assert_eq!(found["kind"], "oauth1_access_token");

    // A resource server behind the tower layer, published as www.example.com.
    let layer = tessera_client::caller_check::OAuth1CallerLayer::new(
        &url::Url::parse(&env.base).unwrap(),
        url::Url::parse("http://www.example.com/").unwrap(),
    )
    .unwrap();
    let app = axum::Router::new()
        .route(
            "/calendar/feeds/default/private/full",
            axum::routing::get(
                |axum::Extension(who): axum::Extension<tessera_client::layer::Caller>| async move {
                    format!("{} {}", who.client_id.unwrap_or_default(), who.scopes.join(" "))
                },
            ),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let path = "/calendar/feeds/default/private/full?max-results=5";
    let header =
        client.authorization_header("GET", &url::Url::parse(&feed).unwrap(), &access).unwrap();
    let served = send("GET", &format!("{resource}{path}"), &header, None).await;
    assert_eq!((served.status, served.body.as_str()), (200, format!("{CONSUMER} {CAL}").as_str()));
    // The same signed request again: its nonce is spent.
    let replayed = send("GET", &format!("{resource}{path}"), &header, None).await;
    assert_eq!(replayed.status, 401);
    assert_eq!(replayed.headers["www-authenticate"], "OAuth realm=\"\"");
    // Signed for another URL.
    let other = url::Url::parse(&format!("{CAL}other")).unwrap();
    let header = client.authorization_header("GET", &other, &access).unwrap();
    assert_eq!(send("GET", &format!("{resource}{path}"), &header, None).await.status, 401);
    // No OAuth header at all.
    let bare = reqwest::get(format!("{resource}{path}")).await.unwrap();
    assert_eq!(bare.status(), 401);
}

/// `/accounts/caller` with the resource request's form body.
async fn caller_with_form(
    env: &TestEnv,
    authorization: &str,
    url: &str,
    form: &str,
) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(env.url("/accounts/caller"))
        .json(
            &json!({ "authorization": authorization, "method": "POST", "url": url, "form": form }),
        )
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn resource_calls_with_oauth_parameters_in_the_form_body() {
    let env = TestEnv::start().await;
    let consumer = setup(&env).await;
    let (token, secret) = request_token(&env, &consumer, "n-request").await;
    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    let verifier = authorize(&env, &mut b, &token).await;
    let (url, header, form) = exchange_request(&env, &consumer, &token, &secret, &verifier, "n-x");
    let page = send("POST", &url, &header, Some(&form)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let access = form_value(&page.body, "oauth_token");
    let access_secret = form_value(&page.body, "oauth_token_secret");
    let feed = format!("{CAL}default/private/full");
    let now = env.clock.now_secs().to_string();
    let body_form = |nonce: &str, extra: &[(&str, &str)]| {
        let oauth = [
            ("oauth_consumer_key", consumer.key.as_str()),
            ("oauth_nonce", nonce),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", now.as_str()),
            ("oauth_token", access.as_str()),
            ("oauth_version", "1.0"),
        ];
        let signed = sign("POST", &feed, &oauth, extra, &consumer.secret, &access_secret);
        let signature = signed.rsplit_once("oauth_signature=\"").unwrap().1.trim_end_matches('"');
        let signature = tessera_proto_oauth1::parse_form(&format!("s={signature}")).unwrap();
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in oauth.iter().chain(extra) {
            out.append_pair(k, v);
        }
        out.append_pair("oauth_signature", &signature[0].1);
        out.finish()
    };

    // Every OAuth parameter in the body, no Authorization header.
    let body = body_form("f1", &[("title", "New event")]);
    let (status, found) = caller_with_form(&env, "", &feed, &body).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["kind"], "oauth1_access_token");
    assert_eq!(found["client_id"], CONSUMER);
    // Replayed.
    assert_eq!(caller_with_form(&env, "", &feed, &body).await.0, 401);
    // A body pair changed after signing.
    let tampered = body_form("f2", &[("title", "New event")]).replace("New+event", "Other");
    assert_eq!(caller_with_form(&env, "", &feed, &tampered).await.0, 403);
    // Neither a header nor OAuth parameters.
    let (status, found) = caller_with_form(&env, "", &feed, "title=x").await;
    assert_eq!((status, found["error"].as_str()), (401, Some("missing_credentials")));
    // A malformed body.
    assert_eq!(caller_with_form(&env, "", &feed, "a=%zz").await.0, 401);

    // A header signature that covers the form body: the body must be forwarded.
    let header = sign(
        "POST",
        &feed,
        &[
            ("oauth_consumer_key", &consumer.key),
            ("oauth_nonce", "h1"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", &now),
            ("oauth_token", &access),
            ("oauth_version", "1.0"),
        ],
        &[("title", "New event")],
        &consumer.secret,
        &access_secret,
    );
    assert_eq!(caller_with_form(&env, &header, &feed, "title=New+event").await.0, 200);
}

#[tokio::test]
async fn btmpl_mobile_shows_the_compact_consent_page() {
    let env = TestEnv::start().await;
    let consumer = setup(&env).await;
    let (token, _) = request_token(&env, &consumer, "n-request").await;
    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    let base =
        format!("/accounts/OAuthAuthorizeToken?oauth_token={}&hd=default", urlencode(&token));
    let full = b.get(&base).await;
    assert_eq!(full.status, 200, "{}", full.body);
    assert!(!full.body.contains("id=\"compact\""), "{}", full.body);
    assert!(full.body.contains("Exact scopes"), "{}", full.body);
    let mobile = b.get(&format!("{base}&btmpl=mobile")).await;
    assert_eq!(mobile.status, 200, "{}", mobile.body);
    assert!(mobile.body.contains("<div class=\"compact\" id=\"compact\">"), "{}", mobile.body);
    assert!(!mobile.body.contains("Exact scopes"), "{}", mobile.body);
    assert!(mobile.body.contains("app.example.com") && mobile.body.contains("id=\"allow\""));
    // The same one consent flow: allowing from the compact page reaches the callback.
    let verifier = authorize(&env, &mut b, &token).await;
    assert!(!verifier.is_empty());
}

const CORP: &str = "corp.example";

/// The two-legged fixture: `setup`'s consumer and service, the hosted domains `corp.example` and
/// `other.example`, their accounts (administrators and users), and `corp.example`'s authorization
/// of the consumer for the calendar scope.
struct TwoLegged {
    consumer: Consumer,
    bob: tessera_store::AccountRecord,
    carol: tessera_store::AccountRecord,
}

async fn domain_account(
    env: &TestEnv,
    email: &str,
    domain: &str,
    is_admin: bool,
) -> tessera_store::AccountRecord {
    let new = tessera_domain::accounts::NewAccount {
        email: email.to_owned(),
        name: email.split('@').next().unwrap().to_owned(),
        domain: Some(domain.to_owned()),
        password: Some("domain-pass-77".to_owned()),
        is_admin,
        state: tessera_store::AccountState::Active,
    };
    tessera_domain::accounts::create(env.ctx(), new, &Actor::Cli, "").await.unwrap()
}

async fn setup_two_legged(env: &TestEnv) -> TwoLegged {
    let consumer = setup(env).await;
    for domain in [CORP, "other.example"] {
        tessera_domain::accounts::add_domain(env.ctx(), domain, &Actor::Cli).await.unwrap();
    }
    domain_account(env, "admin@corp.example", CORP, true).await;
    let bob = domain_account(env, "bob@corp.example", CORP, false).await;
    let carol = domain_account(env, "carol@corp.example", CORP, false).await;
    domain_account(env, "eve@other.example", "other.example", false).await;
    tessera_domain::oauth1::authorize_domain(
        env.ctx(),
        CORP,
        CONSUMER,
        &[CAL.to_owned()],
        None,
        &Actor::Cli,
    )
    .await
    .unwrap();
    TwoLegged { consumer, bob, carol }
}

/// A two-legged request for `requestor` at `resource` (the requestor id in the query), signed by
/// the consumer alone (no token, empty token secret).
fn two_legged(
    env: &TestEnv,
    consumer: &Consumer,
    resource: &str,
    requestor: &str,
    nonce: &str,
) -> (String, String) {
    let url = format!("{resource}?xoauth_requestor_id={}", urlencode(requestor));
    let now = env.clock.now_secs().to_string();
    let header = sign(
        "GET",
        &url,
        &[
            ("oauth_consumer_key", &consumer.key),
            ("oauth_nonce", nonce),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", &now),
            ("oauth_version", "1.0"),
        ],
        &[],
        &consumer.secret,
        "",
    );
    (url, header)
}

async fn refused_with(env: &TestEnv, header: &str, url: &str, problem: &str) {
    let (status, found) = caller(env, header, url).await;
    assert_eq!(status, 401, "{found}");
    assert_eq!(found["oauth_problem"], problem, "{found}");
}

async fn two_legged_rules(env: &TestEnv) {
    let fixture = setup_two_legged(env).await;
    let consumer = &fixture.consumer;
    let feed = format!("{CAL}default/private/full");

    let (url, header) = two_legged(env, consumer, &feed, "bob@corp.example", "2l-1");
    let (status, found) = caller(env, &header, &url).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["protocol"], "oauth1");
    assert_eq!(found["account_id"], fixture.bob.id.as_str());
    assert_eq!(found["client_id"], CONSUMER);
    assert_eq!(found["scopes"], json!([CAL]));
    assert_eq!(found["kind"], Value::Null);
    // The same request again: its nonce is spent.
    refused_with(env, &header, &url, "nonce_used").await;

    // Another domain's user, an unknown user, a malformed requestor id.
    let (url, header) = two_legged(env, consumer, &feed, "eve@other.example", "2l-2");
    refused_with(env, &header, &url, "permission_denied").await;
    let (url, header) = two_legged(env, consumer, &feed, "nobody@corp.example", "2l-3");
    refused_with(env, &header, &url, "permission_denied").await;
    let (url, header) = two_legged(env, consumer, &feed, "corp.example", "2l-4");
    refused_with(env, &header, &url, "parameter_rejected").await;
    // A resource outside the authorized scopes.
    let (url, header) =
        two_legged(env, consumer, "http://www.example.com/mail/feeds/", "bob@corp.example", "2l-5");
    refused_with(env, &header, &url, "permission_denied").await;
    // A wrong signature.
    let (url, _) = two_legged(env, consumer, &feed, "bob@corp.example", "2l-6");
    let forged = Consumer { key: CONSUMER.to_owned(), secret: "not-the-secret".to_owned() };
    let (_, header) = two_legged(env, &forged, &feed, "bob@corp.example", "2l-6");
    refused_with(env, &header, &url, "signature_invalid").await;
    // No requestor and no token: refused as before.
    let now = env.clock.now_secs().to_string();
    let header = sign(
        "GET",
        &feed,
        &[
            ("oauth_consumer_key", CONSUMER),
            ("oauth_nonce", "2l-7"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", &now),
        ],
        &[],
        &consumer.secret,
        "",
    );
    assert_eq!(caller(env, &header, &feed).await.0, 401);

    // A disabled, then a deleted account.
    let actor = Actor::Cli;
    let disabled = tessera_store::AccountState::Disabled;
    tessera_domain::accounts::set_state(env.ctx(), &fixture.carol, disabled, &actor, "")
        .await
        .unwrap();
    let (url, header) = two_legged(env, consumer, &feed, "carol@corp.example", "2l-8");
    refused_with(env, &header, &url, "permission_denied").await;
    let deleted = tessera_store::AccountState::Deleted;
    tessera_domain::accounts::set_state(env.ctx(), &fixture.carol, deleted, &actor, "")
        .await
        .unwrap();
    let (url, header) = two_legged(env, consumer, &feed, "carol@corp.example", "2l-9");
    refused_with(env, &header, &url, "permission_denied").await;

    // Revoked: refused; authorized again: accepted.
    assert!(
        tessera_domain::oauth1::deauthorize_domain(env.ctx(), CORP, CONSUMER, None, &actor)
            .await
            .unwrap()
    );
    let (url, header) = two_legged(env, consumer, &feed, "bob@corp.example", "2l-10");
    refused_with(env, &header, &url, "permission_denied").await;
    let listed = tessera_domain::oauth1::domain_grants(env.ctx(), Some(CORP)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked_at.is_some());
    tessera_domain::oauth1::authorize_domain(
        env.ctx(),
        CORP,
        CONSUMER,
        &[CAL.to_owned()],
        None,
        &actor,
    )
    .await
    .unwrap();
    let (url, header) = two_legged(env, consumer, &feed, "bob@corp.example", "2l-11");
    assert_eq!(caller(env, &header, &url).await.0, 200);

    // The consumer is no longer registered.
    env.ctx().store.projects().delete_client(CONSUMER).await.unwrap();
    let (url, header) = two_legged(env, consumer, &feed, "bob@corp.example", "2l-12");
    let (status, found) = caller(env, &header, &url).await;
    assert_eq!(status, 401, "{found}");
    assert_eq!(found["oauth_problem"], "consumer_key_unknown", "{found}");
}

#[tokio::test]
async fn two_legged_requests_act_for_accounts_of_the_authorized_domain() {
    let env = TestEnv::start().await;
    two_legged_rules(&env).await;
}

#[tokio::test]
async fn two_legged_requests_on_postgres() {
    let Some((url, name)) = crate::cluster::fresh_database().await else { return };
    let env = TestEnv::with_config(|c| c.database_url = url.clone()).await;
    two_legged_rules(&env).await;
    drop(env);
    crate::cluster::drop_database(&name).await;
}

#[tokio::test]
async fn a_replayed_two_legged_nonce_wins_once_under_a_parallel_burst() {
    let env = TestEnv::start().await;
    let fixture = setup_two_legged(&env).await;
    let feed = format!("{CAL}default/private/full");
    let (url, header) = two_legged(&env, &fixture.consumer, &feed, "bob@corp.example", "burst");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (check, header, url) = (env.url("/accounts/caller"), header.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let res = reqwest::Client::new()
                .post(check)
                .json(&json!({ "authorization": header, "method": "GET", "url": url }))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            (status, body)
        }));
    }
    let mut ok = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            200 => ok += 1,
            _ => {
                assert_eq!(status, 401, "{body}");
                assert_eq!(body["oauth_problem"], "nonce_used", "{body}");
            }
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn tessera_client_signs_two_legged_requests_through_the_tower_layer() {
    use tessera_client::oauth1::{Consumer as ClientConsumer, SignRequest, SignatureMethod};
    let env = TestEnv::start().await;
    let fixture = setup_two_legged(&env).await;
    let signer = ClientConsumer {
        key: CONSUMER.to_owned(),
        method: SignatureMethod::HmacSha1(tessera_client::Secret::new(
            fixture.consumer.secret.clone(),
        )),
    };
    let layer = tessera_client::caller_check::OAuth1CallerLayer::new(
        &url::Url::parse(&env.base).unwrap(),
        url::Url::parse("http://www.example.com/").unwrap(),
    )
    .unwrap();
    let app = axum::Router::new()
        .route(
            "/calendar/feeds/default/private/full",
            axum::routing::get(
                |axum::Extension(who): axum::Extension<tessera_client::layer::Caller>| async move {
                    format!(
                        "{} {}",
                        who.client_id.unwrap_or_default(),
                        who.subject.unwrap_or_default()
                    )
                },
            ),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let path = "/calendar/feeds/default/private/full?xoauth_requestor_id=bob%40corp.example";
    let published = url::Url::parse(&format!("http://www.example.com{path}")).unwrap();
    let now = u64::try_from(env.clock.now_secs()).unwrap();
    let header = signer
        .authorization_header("GET", &published, &SignRequest::default(), now, "tc-1")
        .unwrap();
    let served = send("GET", &format!("{resource}{path}"), &header, None).await;
    let subject = tessera_domain::accounts::subject(&fixture.bob.id);
    assert_eq!(
        (served.status, served.body.as_str()),
        (200, format!("{CONSUMER} {subject}").as_str())
    );
    let other = "/calendar/feeds/default/private/full?xoauth_requestor_id=eve%40other.example";
    let published = url::Url::parse(&format!("http://www.example.com{other}")).unwrap();
    let header = signer
        .authorization_header("GET", &published, &SignRequest::default(), now, "tc-2")
        .unwrap();
    let refused = send("GET", &format!("{resource}{other}"), &header, None).await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.headers["www-authenticate"],
        "OAuth realm=\"\", oauth_problem=\"permission_denied\""
    );
}

#[tokio::test]
async fn only_the_domains_administrator_authorizes_two_legged_consumers() {
    let env = TestEnv::start().await;
    let fixture = setup_two_legged(&env).await;
    tessera_domain::oauth1::deauthorize_domain(env.ctx(), CORP, CONSUMER, None, &Actor::Cli)
        .await
        .unwrap();
    // The engine: a user of the domain, and another domain's administrator, may not.
    let other_admin = domain_account(&env, "root@other.example", "other.example", true).await;
    for by in [&fixture.bob, &other_admin] {
        let res = tessera_domain::oauth1::authorize_domain(
            env.ctx(),
            CORP,
            CONSUMER,
            &[CAL.to_owned()],
            Some(by),
            &Actor::Admin(by.id.clone()),
        )
        .await;
        assert!(matches!(res, Err(tessera_domain::Error::Forbidden)), "{res:?}");
    }
    // The page: a user who is no administrator is turned away.
    let mut b = env.browser();
    b.sign_in("bob@corp.example", "domain-pass-77").await;
    assert_eq!(b.get("/accounts/ManageDomains").await.status, 403);
    let csrf = b.get("/account").await.csrf();
    let refused = b
        .post(
            "/accounts/ManageDomains/two-legged",
            &[
                ("csrf", &csrf),
                ("authuser", "0"),
                ("action", "authorize"),
                ("consumer", CONSUMER),
                ("scopes", CAL),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let feed = format!("{CAL}default/private/full");
    let (url, header) = two_legged(&env, &fixture.consumer, &feed, "bob@corp.example", "p-1");
    refused_with(&env, &header, &url, "permission_denied").await;

    // The domain's administrator authorizes on the page, then revokes.
    let mut admin = env.browser();
    admin.sign_in("admin@corp.example", "domain-pass-77").await;
    let page = admin.get("/accounts/ManageDomains").await;
    assert!(page.body.contains("Two-legged OAuth for corp.example"), "{}", page.body);
    let fields = |csrf: String, action: &'static str| {
        vec![
            ("csrf".to_owned(), csrf),
            ("authuser".to_owned(), "0".to_owned()),
            ("action".to_owned(), action.to_owned()),
            ("consumer".to_owned(), CONSUMER.to_owned()),
            ("scopes".to_owned(), CAL.to_owned()),
        ]
    };
    let authorize = fields(page.csrf(), "authorize");
    let pairs: Vec<(&str, &str)> =
        authorize.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let done = admin.post("/accounts/ManageDomains/two-legged", &pairs).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("may act for accounts of corp.example"), "{}", done.body);
    assert!(done.body.contains(&format!("<td>{CONSUMER}</td>")), "{}", done.body);
    let (url, header) = two_legged(&env, &fixture.consumer, &feed, "bob@corp.example", "p-2");
    assert_eq!(caller(&env, &header, &url).await.0, 200);

    // Later, revoking needs the password again.
    env.clock.advance(3600);
    let page = admin.get("/accounts/ManageDomains").await;
    let revoke = fields(page.csrf(), "revoke");
    let pairs: Vec<(&str, &str)> = revoke.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let asked = admin.post("/accounts/ManageDomains/two-legged", &pairs).await;
    assert_eq!(asked.status, 400, "{}", asked.body);
    assert!(asked.body.contains("Enter your password"), "{}", asked.body);
    let mut with_password = fields(asked.csrf(), "revoke");
    with_password.push(("confirm".to_owned(), "domain-pass-77".to_owned()));
    let pairs: Vec<(&str, &str)> =
        with_password.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let revoked = admin.post("/accounts/ManageDomains/two-legged", &pairs).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert!(revoked.body.contains("no longer acts"), "{}", revoked.body);
    let (url, header) = two_legged(&env, &fixture.consumer, &feed, "bob@corp.example", "p-3");
    refused_with(&env, &header, &url, "permission_denied").await;
}

/// The request's `query` field of a consent page, unescaped.
fn consent_query(page: &Page) -> String {
    page.input("query").unwrap()
}

#[tokio::test]
async fn hl_carries_the_page_language_through_sign_in_and_consent() {
    let env = TestEnv::start().await;
    let consumer = setup(&env).await;
    let (token, _) = request_token(&env, &consumer, "n-hl-de").await;
    let mut b = env.browser();
    let path =
        format!("/accounts/OAuthAuthorizeToken?oauth_token={}&hd=default&hl=de", urlencode(&token));
    // Nobody signed in: the sign-in page, in German, and back to the authorization page.
    let first = b.get(&path).await;
    assert_eq!(first.status, 302, "{}", first.body);
    assert!(first.location().starts_with("/accounts/ServiceLogin?hl=de&"), "{}", first.location());
    let form = b.get(first.location()).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("<html lang=\"de\">"), "{}", form.body);
    assert!(form.body.contains("<h1>Anmelden</h1>"), "{}", form.body);
    assert!(form.body.contains("Passwort") && form.body.contains("Angemeldet bleiben"));
    assert_eq!(form.input("hl").as_deref(), Some("de"));
    let continue_url = form.input("continue").unwrap();
    assert!(continue_url.contains("hl=de"), "{continue_url}");
    // A wrong password answers in German too (the form sends `hl` back).
    let wrong = b
        .post(
            "/accounts/ServiceLoginAuth",
            &[
                ("csrf", &form.csrf()),
                ("continue", &continue_url),
                ("hl", "de"),
                ("Email", "alice@example.com"),
                ("Passwd", "wrong-password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 200, "{}", wrong.body);
    assert!(wrong.body.contains("<html lang=\"de\">"), "{}", wrong.body);
    assert!(wrong.body.contains("E-Mail-Adresse oder Passwort ist falsch"), "{}", wrong.body);
    let signed = b
        .post(
            "/accounts/ServiceLoginAuth",
            &[
                ("csrf", &wrong.csrf()),
                ("continue", &continue_url),
                ("hl", "de"),
                ("Email", "alice@example.com"),
                ("Passwd", "north23AZ"),
            ],
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let back = signed.location().to_owned();
    assert!(back.starts_with(&format!("{}/accounts/OAuthAuthorizeToken?", env.base)), "{back}");
    // The consent page after sign-in is still German.
    let consent = b.get(back.strip_prefix(&env.base).unwrap()).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("<html lang=\"de\">"), "{}", consent.body);
    assert!(consent.body.contains("möchte auf Ihr Konto zugreifen"), "{}", consent.body);
    assert!(consent.body.contains("Angemeldet als alice@example.com"), "{}", consent.body);
    assert!(consent.body.contains(">Zulassen</button>"), "{}", consent.body);
    assert!(consent.body.contains(">Ablehnen</button>"), "{}", consent.body);
    assert!(!consent.body.contains(">Allow</button>"), "{}", consent.body);
    // Allowing from the German page reaches the callback like any other.
    let res = b
        .post(
            "/accounts/OAuthAuthorizeToken",
            &[
                ("csrf", &consent.csrf()),
                ("authuser", "0"),
                ("query", &consent_query(&consent)),
                ("action", "allow"),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(res.location().starts_with(CALLBACK), "{}", res.location());
}

#[tokio::test]
async fn hl_picks_the_base_language_and_unknown_languages_are_english() {
    let env = TestEnv::start().await;
    let consumer = setup(&env).await;
    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    let cases = [
        ("fr-CA", "fr", ">Autoriser</button>", "souhaite accéder à votre compte"),
        ("de_AT", "de", ">Zulassen</button>", "möchte auf Ihr Konto zugreifen"),
        ("xx", "en", ">Allow</button>", "wants access to your account"),
    ];
    for (index, (hl, lang, button, heading)) in cases.into_iter().enumerate() {
        let (token, _) = request_token(&env, &consumer, &format!("n-hl-{index}")).await;
        let page = b
            .get(&format!(
                "/accounts/OAuthAuthorizeToken?oauth_token={}&hd=default&hl={hl}",
                urlencode(&token)
            ))
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains(&format!("<html lang=\"{lang}\">")), "{hl}: {}", page.body);
        assert!(page.body.contains(button), "{hl}: {}", page.body);
        assert!(page.body.contains(heading), "{hl}: {}", page.body);
    }
}

#[tokio::test]
async fn oob_verifier_page_speaks_the_requests_language() {
    let env = TestEnv::start().await;
    setup(&env).await;
    let alice =
        tessera_domain::accounts::find_by_email(env.ctx(), "alice@example.com").await.unwrap();
    tessera_domain::accounts::set_admin(env.ctx(), &alice, true, &Actor::Cli, "").await.unwrap();
    let url = env.url(&format!(
        "/accounts/OAuthGetRequestToken?scope={}&xoauth_displayname=Example%20App",
        urlencode(CAL)
    ));
    let now = env.clock.now_secs().to_string();
    let header = sign(
        "GET",
        &url,
        &[
            ("oauth_callback", "oob"),
            ("oauth_consumer_key", "anonymous"),
            ("oauth_nonce", "n-oob-de"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", &now),
        ],
        &[],
        "anonymous",
        "",
    );
    let page = send("GET", &url, &header, None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let token = form_value(&page.body, "oauth_token");
    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    let page = b
        .get(&format!("/accounts/OAuthAuthorizeToken?oauth_token={}&hl=de", urlencode(&token)))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    // The display name comes with the German "not registered" warning.
    assert!(page.body.contains("Example App möchte auf Ihr Konto zugreifen"), "{}", page.body);
    assert!(page.body.contains("Diese Anwendung ist nicht registriert."), "{}", page.body);
    let res = b
        .post(
            "/accounts/OAuthAuthorizeToken",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("query", &consent_query(&page)),
                ("action", "allow"),
            ],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.body.contains("<html lang=\"de\">"), "{}", res.body);
    assert!(res.body.contains("<h1>Zugriff gewährt</h1>"), "{}", res.body);
    let verifier = res
        .body
        .split_once("Geben Sie diesen Bestätigungscode in Example App ein: ")
        .unwrap_or_else(|| panic!("{}", res.body))
        .1
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .count();
    assert_eq!(verifier, 24, "{}", res.body);
}
