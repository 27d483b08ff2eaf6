//! AuthSub and ClientLogin end to end: byte-exact wire answers, the browser flow, secure tokens
//! signed by `openssl`, the session-token cap, CAPTCHA and app passwords, raw HTTP/1.0 and
//! absolute-form requests, and the caller check resource servers use.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use serde_json::{Value, json};
use tessera_domain::audit::Actor;
use tessera_domain::services::NewService;
use tessera_store::AccountState;

use crate::support::{Browser, Page, T0, TestEnv, urlencode};

const CAL: &str = "http://www.example.com/calendar/feeds/";

async fn service(env: &TestEnv, name: &str, scope: &str, protocols: Option<&[&str]>) {
    let new = NewService {
        name: name.to_owned(),
        display_name: format!("{name} service"),
        scopes: vec![scope.to_owned()],
        clientlogin_ttl_secs: Some(3600),
        protocols: protocols.map(|it| it.iter().map(|p| (*p).to_owned()).collect()),
    };
    tessera_domain::services::add(env.ctx(), new, &Actor::Cli).await.unwrap();
}

async fn clientlogin(env: &TestEnv, fields: &[(&str, &str)]) -> Page {
    env.browser().post("/accounts/ClientLogin", fields).await
}

fn login<'a>(email: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("accountType", "HOSTED_OR_GOOGLE"),
        ("Email", email),
        ("Passwd", password),
        ("service", "cl"),
        ("source", "Example-CalApp-1.0"),
    ]
}

/// `SID`, `LSID` and `Auth` from a success body, checking its exact shape.
fn tokens(page: &Page) -> (String, String, String) {
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.headers["content-type"], "text/plain; charset=UTF-8");
    let lines: Vec<&str> = page.body.split('\n').collect();
    assert_eq!(lines.len(), 4, "{:?}", page.body);
    assert_eq!(lines[3], "", "the last line ends in LF");
    let value = |i: usize, key: &str| {
        let v =
            lines[i].strip_prefix(&format!("{key}=")).unwrap_or_else(|| panic!("{}", page.body));
        assert!(
            v.len() >= 40 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{v}"
        );
        v.to_owned()
    };
    (value(0, "SID"), value(1, "LSID"), value(2, "Auth"))
}

async fn caller(env: &TestEnv, authorization: &str, method: &str, url: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(env.url("/accounts/caller"))
        .json(&json!({ "authorization": authorization, "method": method, "url": url }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn with_authorization(env: &TestEnv, path: &str, authorization: &str) -> Page {
    let res = reqwest::Client::new()
        .get(env.url(path))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    Page { status, headers, body: res.text().await.unwrap() }
}

fn invalid_authsub_body() -> &'static str {
    "<HTML>\n<HEAD>\n<TITLE>Token invalid - Invalid AuthSub token.</TITLE>\n</HEAD>\n<BODY BGCOLOR=\"#FFFFFF\" TEXT=\"#000000\">\n<H1>Token invalid - Invalid AuthSub token.</H1>\n<H2>Error 401</H2>\n</BODY>\n</HTML>\n"
}

fn assert_unauthorized(env: &TestEnv, page: &Page) {
    assert_eq!(page.status, 401, "{}", page.body);
    assert_eq!(page.body, invalid_authsub_body());
    assert_eq!(page.headers["content-type"], "text/html; charset=UTF-8");
    assert_eq!(
        page.headers["www-authenticate"].to_str().unwrap(),
        format!("AuthSub realm=\"{}/accounts/AuthSubRequest\"", env.base)
    );
}

/// Sends raw bytes and returns the raw answer (the server closes after one response).
async fn raw(env: &TestEnv, request: &[u8]) -> String {
    let addr = env.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn clientlogin_issues_three_lines_and_the_auth_token_resolves() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    let account = env.account("alice@example.com", "north23AZ").await;
    let page = clientlogin(&env, &login("alice@example.com", "north23AZ")).await;
    let (sid, lsid, auth) = tokens(&page);
    assert!(sid != lsid && lsid != auth);
    assert!(page.headers.get("location").is_none());

    let (status, found) = caller(&env, &format!("GoogleLogin auth={auth}"), "GET", CAL).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["protocol"], "clientlogin");
    assert_eq!(found["service"], "cl");
    assert_eq!(found["account_id"], account.id.as_str());
    assert_eq!(found["client_id"], "Example-CalApp-1.0");
    assert_eq!(found["scopes"], json!([CAL]));
    assert_eq!(found["expires_at"], T0 + 3600);
    // Quoted values are accepted too; SID is not an Auth token.
    assert_eq!(caller(&env, &format!("GoogleLogin auth=\"{auth}\""), "GET", CAL).await.0, 200);
    assert_eq!(caller(&env, &format!("GoogleLogin auth={sid}"), "GET", CAL).await.0, 401);
    // Removing the app revokes Auth (and SID/LSID) with the grant.
    let again = tokens(&clientlogin(&env, &login("alice@example.com", "north23AZ")).await).2;
    let grant = tessera_domain::grants::find_live(
        env.ctx(),
        &account.id,
        "Example-CalApp-1.0",
        tessera_domain::credentials::Protocol::ClientLogin,
    )
    .await
    .unwrap()
    .unwrap();
    tessera_domain::grants::revoke(env.ctx(), &account.id, &grant.id, &Actor::Account, "")
        .await
        .unwrap();
    assert_eq!(caller(&env, &format!("GoogleLogin auth={again}"), "GET", CAL).await.0, 401);
    let sid_digest = tessera_crypto::digest::token_digest(&sid);
    assert!(env.ctx().store.credentials().find_live(&sid_digest, T0).await.unwrap().is_none());
    let auth = tokens(&clientlogin(&env, &login("alice@example.com", "north23AZ")).await).2;
    // The service's lifetime, no refresh.
    env.clock.advance(3601);
    let (status, err) = caller(&env, &format!("GoogleLogin auth={auth}"), "GET", CAL).await;
    assert_eq!((status, err["error"].as_str()), (401, Some("invalid_token")));

    // The grant is listed under connected apps, and the admin report counts it.
    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    let page = b.get("/account").await;
    assert!(page.body.contains("Example-CalApp-1.0 (not registered)"), "{}", page.body);
    assert!(page.body.contains("<td>clientlogin</td>"));
    let usage = tessera_domain::legacy::usage(env.ctx()).await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (usage[0].protocol.as_str(), usage[0].client_id.as_str(), usage[0].accounts),
        ("clientlogin", "Example-CalApp-1.0", 1)
    );
}

#[tokio::test]
async fn clientlogin_accepts_every_request_shape() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    env.account("alice@example.com", "north23AZ").await;
    let mut b = env.browser();
    // Without the /accounts prefix, Content-Type with extra parameters and a trailing `;`.
    let body = b"Email=alice%40example.com&Passwd=north23AZ&service=cl".to_vec();
    tokens(
        &b.post_raw("/ClientLogin", "application/x-www-form-urlencoded; charset=UTF-8;", body)
            .await,
    );
    // GET with a query.
    tokens(
        &b.get(
            "/accounts/ClientLogin?Email=alice%40example.com&Passwd=north23AZ&service=cl&source=x",
        )
        .await,
    );
    // multipart/form-data, as Zend_Gdata sends it.
    let mut body = Vec::new();
    for (k, v) in login("alice@example.com", "north23AZ") {
        body.extend_from_slice(
            format!(
                "--ZendBoundary\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(b"--ZendBoundary--\r\n");
    tokens(
        &b.post_raw("/accounts/ClientLogin", "multipart/form-data; boundary=ZendBoundary", body)
            .await,
    );
}

#[tokio::test]
async fn clientlogin_failures_are_byte_exact() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    service(&env, "oauthonly", "http://only.example.com/", Some(&["authsub"])).await;
    let account = env.account("alice@example.com", "north23AZ").await;
    let help = |code: &str| format!("{}/accounts/ClientLoginHelp?Error={code}", env.base);

    let wrong = clientlogin(&env, &login("alice@example.com", "wrong-password")).await;
    let unknown = clientlogin(&env, &login("nobody@example.com", "north23AZ")).await;
    for page in [&wrong, &unknown] {
        assert_eq!(page.status, 403);
        assert_eq!(page.headers["content-type"], "text/plain; charset=UTF-8");
        assert_eq!(page.body, "Error=BadAuthentication\n");
    }
    let missing = clientlogin(&env, &[("Email", "alice@example.com"), ("service", "cl")]).await;
    assert_eq!(missing.status, 403);
    assert_eq!(missing.body, format!("Error=Unknown\nUrl={}\n", help("Unknown")));
    let mut fields = login("alice@example.com", "north23AZ");
    fields[3] = ("service", "nosuch");
    assert_eq!(
        clientlogin(&env, &fields).await.body,
        format!("Error=Unknown\nUrl={}\n", help("Unknown"))
    );
    fields[3] = ("service", "oauthonly");
    assert_eq!(
        clientlogin(&env, &fields).await.body,
        format!("Error=ServiceDisabled\nUrl={}\n", help("ServiceDisabled"))
    );
    // accountType=HOSTED does not match a consumer account.
    let mut fields = login("alice@example.com", "north23AZ");
    fields[0] = ("accountType", "HOSTED");
    assert_eq!(clientlogin(&env, &fields).await.body, "Error=BadAuthentication\n");

    for (state, code) in [
        (AccountState::EmailUnverified, "NotVerified"),
        (AccountState::MustAcceptTerms, "TermsNotAgreed"),
        (AccountState::Disabled, "AccountDisabled"),
        (AccountState::Deleted, "AccountDeleted"),
    ] {
        env.ctx().store.accounts().set_state(&account.id, state, T0).await.unwrap();
        let page = clientlogin(&env, &login("alice@example.com", "north23AZ")).await;
        assert_eq!(page.status, 403);
        assert_eq!(page.body, format!("Error={code}\nUrl={}\n", help(code)));
        // A wrong password still says only BadAuthentication.
        assert_eq!(
            clientlogin(&env, &login("alice@example.com", "nope-nope")).await.body,
            "Error=BadAuthentication\n"
        );
        tessera_domain::password::clear_failures(env.ctx(), "alice@example.com").await.unwrap();
    }
    let help_page = env.browser().get("/accounts/ClientLoginHelp?Error=NotVerified").await;
    assert_eq!(help_page.status, 200);
    assert!(help_page.body.contains("has not been verified"));

    // An internal failure (here: no password hashing possible) is text a client understands.
    env.ctx().hash_permits.close();
    let page = clientlogin(&env, &login("alice@example.com", "north23AZ")).await;
    assert_eq!(page.status, 403);
    assert_eq!(
        page.body,
        format!("Error=ServiceUnavailable\nUrl={}\n", help("ServiceUnavailable"))
    );
}

#[tokio::test]
async fn two_step_accounts_sign_in_with_app_passwords_only() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    let account = env.account("alice@example.com", "north23AZ").await;
    env.ctx().store.accounts().set_totp(&account.id, Some("sealed-secret"), T0).await.unwrap();
    let account = env.ctx().store.accounts().get(&account.id).await.unwrap().unwrap();
    let page = clientlogin(&env, &login("alice@example.com", "north23AZ")).await;
    assert_eq!(page.status, 403);
    assert_eq!(page.body, "Error=BadAuthentication\nInfo=InvalidSecondFactor\n");
    assert_eq!(
        clientlogin(&env, &login("alice@example.com", "wrong-one")).await.body,
        "Error=BadAuthentication\n"
    );
    let asp = tessera_domain::app_passwords::create(env.ctx(), &account, "calendar sync", "")
        .await
        .unwrap();
    tokens(&clientlogin(&env, &login("alice@example.com", &asp)).await);
    tokens(&clientlogin(&env, &login("alice@example.com", &asp.replace(' ', ""))).await);
}

fn captcha_token(env: &TestEnv, page: &Page) -> String {
    assert_eq!(page.status, 403);
    let lines: Vec<&str> = page.body.split('\n').collect();
    assert_eq!(lines[0], "Error=CaptchaRequired");
    assert_eq!(lines[1], format!("Url={}/accounts/DisplayUnlockCaptcha", env.base));
    let token = lines[2].strip_prefix("CaptchaToken=").unwrap().to_owned();
    assert_eq!(lines[3], format!("CaptchaUrl=Captcha?ctoken={token}"));
    assert_eq!(lines[4], "");
    assert_eq!(lines.len(), 5);
    token
}

#[tokio::test]
async fn captcha_after_repeated_failures_then_solved() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    env.account("alice@example.com", "north23AZ").await;
    for _ in 0..5 {
        assert_eq!(
            clientlogin(&env, &login("alice@example.com", "bad-guess")).await.body,
            "Error=BadAuthentication\n"
        );
    }
    // The right password is not even checked now.
    let page = clientlogin(&env, &login("alice@example.com", "north23AZ")).await;
    let token = captcha_token(&env, &page);
    // The image is served relative to /accounts/.
    let png = env.browser().get(&format!("/accounts/Captcha?ctoken={token}")).await;
    assert_eq!(png.headers["content-type"], "image/png");
    // A wrong answer uses the challenge up and brings a new one.
    let mut fields = login("alice@example.com", "north23AZ");
    fields.push(("logintoken", &token));
    fields.push(("logincaptcha", "wrong"));
    let next = captcha_token(&env, &clientlogin(&env, &fields).await);
    assert_ne!(next, token);
    let audio = env.browser().get(&format!("/accounts/Captcha?ctoken={next}&format=audio")).await;
    assert_eq!(audio.headers["content-type"], "audio/wav");
    // The answer is in the picture and the recording only; answer one the test issued instead.
    let (next, answer) = crate::captcha::known_challenge(&env).await;
    let mut fields = login("alice@example.com", "north23AZ");
    fields.push(("logintoken", &next));
    fields.push(("loginanswer", &answer));
    tokens(&clientlogin(&env, &fields).await);
}

#[tokio::test]
async fn display_unlock_captcha_lets_the_next_clientlogin_through_once() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    env.account("alice@example.com", "north23AZ").await;
    for _ in 0..5 {
        clientlogin(&env, &login("alice@example.com", "bad-guess")).await;
    }
    captcha_token(&env, &clientlogin(&env, &login("alice@example.com", "north23AZ")).await);

    let mut b = env.browser();
    let first = b.get("/accounts/DisplayUnlockCaptcha").await;
    assert_eq!(first.status, 302);
    assert!(
        first.location().starts_with("/accounts/ServiceLogin?continue="),
        "{}",
        first.location()
    );
    // The browser sign-in is CAPTCHA-gated too (same counters): solve it there.
    let form = b.get("/accounts/ServiceLogin").await;
    let csrf = form.csrf();
    let res = b
        .post(
            "/accounts/ServiceLoginAuth",
            &[("csrf", &csrf), ("Email", "alice@example.com"), ("Passwd", "north23AZ")],
        )
        .await;
    res.input("logintoken").expect("captcha on the sign-in form");
    let (token, answer) = crate::captcha::known_challenge(&env).await;
    let res = b
        .post(
            "/accounts/ServiceLoginAuth",
            &[
                ("csrf", &res.csrf()),
                ("Email", "alice@example.com"),
                ("Passwd", "north23AZ"),
                ("logintoken", &token),
                ("logincaptcha", &answer),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    // Signing in cleared the account's failures; fail again so ClientLogin wants a CAPTCHA.
    for _ in 0..5 {
        clientlogin(&env, &login("alice@example.com", "bad-guess")).await;
    }
    captcha_token(&env, &clientlogin(&env, &login("alice@example.com", "north23AZ")).await);

    let page = b.get("/accounts/DisplayUnlockCaptcha").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let token = page.input("logintoken").unwrap();
    let wrong = b
        .post(
            "/accounts/DisplayUnlockCaptcha",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("logintoken", &token),
                ("logincaptcha", "nope"),
            ],
        )
        .await;
    assert!(wrong.body.contains("were not the characters"), "{}", wrong.body);
    wrong.input("logintoken").unwrap();
    let (token, answer) = crate::captcha::known_challenge(&env).await;
    let done = b
        .post(
            "/accounts/DisplayUnlockCaptcha",
            &[
                ("csrf", &wrong.csrf()),
                ("authuser", "0"),
                ("logintoken", &token),
                ("logincaptcha", &answer),
            ],
        )
        .await;
    assert!(done.body.contains("within the next 10 minutes"), "{}", done.body);

    tokens(&clientlogin(&env, &login("alice@example.com", "north23AZ")).await);
    // Used once: more failures bring the CAPTCHA back.
    for _ in 0..5 {
        clientlogin(&env, &login("alice@example.com", "bad-guess")).await;
    }
    captcha_token(&env, &clientlogin(&env, &login("alice@example.com", "north23AZ")).await);
}

/// The access form's hidden `query` (askama writes `&` as `&#38;`).
fn query_field(page: &Page) -> String {
    page.input("query").unwrap().replace("&#38;", "&").replace("&#61;", "=").replace("&#37;", "%")
}

/// Runs the browser part of AuthSub for `query` and returns where Allow sends the browser.
async fn allow(env: &TestEnv, b: &mut Browser, query: &str) -> String {
    let page = b.get(&format!("/accounts/AuthSubRequest?{query}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let res = b
        .post(
            "/accounts/AuthSubRequest",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("query", &query_field(&page)),
                ("action", "allow"),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let _ = env;
    res.location().to_owned()
}

fn token_of(location: &str) -> String {
    let token = location.rsplit_once("token=").unwrap().1.to_owned();
    assert!(
        token.len() >= 40
            && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "{token}"
    );
    token
}

#[tokio::test]
async fn authsub_full_flow_through_the_browser() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    env.account("alice@example.com", "north23AZ").await;
    let next = "http://app.example.com/cb?auth_sub_scopes=http%3A%2F%2Fwww.example.com%2Fcalendar%2Ffeeds%2F";
    let query =
        format!("next={}&scope={}&session=1&secure=0&hd=default", urlencode(next), urlencode(CAL));
    let mut b = env.browser();
    let first = b.get(&format!("/AuthSubRequest?{query}")).await;
    assert_eq!(first.status, 302);
    let continue_url = format!("{}/accounts/AuthSubRequest?{query}", env.base);
    assert_eq!(
        first.location(),
        format!("/accounts/ServiceLogin?continue={}", urlencode(&continue_url))
    );
    let signed = b.sign_in_to("alice@example.com", "north23AZ", &continue_url).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let back = signed.location().to_owned();
    assert!(back.starts_with(&format!("{}/accounts/AuthSubRequest?", env.base)), "{back}");
    let page = b.get(&back).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("app.example.com wants access to your account"));
    assert!(page.body.contains("This application is not registered."));
    assert!(page.body.contains("<li>cl service</li>"));
    // Allow needs the CSRF token.
    let forged = b
        .post(
            "/accounts/AuthSubRequest",
            &[
                ("csrf", "x"),
                ("authuser", "0"),
                ("query", &query_field(&page)),
                ("action", "allow"),
            ],
        )
        .await;
    assert_eq!(forged.status, 400);
    let res = b
        .post(
            "/accounts/AuthSubRequest",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("query", &query_field(&page)),
                ("action", "allow"),
            ],
        )
        .await;
    assert_eq!(res.status, 303);
    let location = res.location();
    assert!(location.starts_with(&format!("{next}&token=")), "{location}");
    let single = token_of(location);

    let info = with_authorization(
        &env,
        "/accounts/AuthSubTokenInfo",
        &format!("AuthSub token=\"{single}\""),
    )
    .await;
    assert_eq!(info.status, 200);
    assert_eq!(info.headers["content-type"], "text/plain; charset=UTF-8");
    assert_eq!(info.body, format!("Target=http://app.example.com\nScope={CAL}\nSecure=false\n"));
    let upgraded = with_authorization(
        &env,
        "/accounts/AuthSubSessionToken",
        &format!("AuthSub token={single}"),
    )
    .await;
    assert_eq!(upgraded.status, 200, "{}", upgraded.body);
    let session =
        upgraded.body.strip_prefix("Token=").unwrap().strip_suffix('\n').unwrap().to_owned();
    assert_eq!(upgraded.body, format!("Token={session}\n"));
    assert!(
        !upgraded.headers.iter().any(|(_, v)| v
            .to_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("token="))
    );
    // The single-use token is dead now.
    assert_unauthorized(
        &env,
        &with_authorization(
            &env,
            "/accounts/AuthSubSessionToken",
            &format!("AuthSub token={single}"),
        )
        .await,
    );
    assert_unauthorized(
        &env,
        &with_authorization(&env, "/accounts/AuthSubTokenInfo", &format!("AuthSub token={single}"))
            .await,
    );

    let (status, found) = caller(&env, &format!("AuthSub token=\"{session}\""), "GET", CAL).await;
    assert_eq!(status, 200);
    assert_eq!(found["protocol"], "authsub");
    assert_eq!(found["client_id"], "app.example.com");
    assert_eq!(found["kind"], "authsub_session");
    assert_eq!(found["scopes"], json!([CAL]));
    let account_page = b.get("/account").await;
    assert!(account_page.body.contains("app.example.com (not registered)"));
    assert!(account_page.body.contains("<td>authsub</td>"));

    let revoked =
        with_authorization(&env, "/AuthSubRevokeToken", &format!("AuthSub token=\"{session}\""))
            .await;
    assert_eq!((revoked.status, revoked.body.as_str()), (200, ""));
    assert_unauthorized(
        &env,
        &with_authorization(
            &env,
            "/accounts/AuthSubTokenInfo",
            &format!("AuthSub token=\"{session}\""),
        )
        .await,
    );
    assert_eq!(caller(&env, &format!("AuthSub token={session}"), "GET", CAL).await.0, 401);
}

#[tokio::test]
async fn authsub_deny_unknown_scopes_and_single_use_tokens() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    env.account("alice@example.com", "north23AZ").await;
    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    let query = format!("next={}&scope={}", urlencode("http://app.example.com/cb"), urlencode(CAL));
    let page = b.get(&format!("/accounts/AuthSubRequest?{query}")).await;
    let denied = b
        .post(
            "/accounts/AuthSubRequest",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("query", &query_field(&page)),
                ("action", "deny"),
            ],
        )
        .await;
    assert_eq!(denied.status, 200);
    assert!(denied.headers.get("location").is_none());
    assert!(denied.body.contains("app.example.com was not given access"));
    assert!(
        tessera_domain::grants::connected(
            env.ctx(),
            &env.ctx()
                .store
                .accounts()
                .find_by_email("alice@example.com")
                .await
                .unwrap()
                .unwrap()
                .id
        )
        .await
        .unwrap()
        .is_empty()
    );

    let unknown = b
        .get(&format!(
            "/accounts/AuthSubRequest?next={}&scope={}",
            urlencode("http://app.example.com/cb"),
            urlencode("http://evil.example.com/")
        ))
        .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.body.contains("Unknown scope"), "{}", unknown.body);
    // hd names a hosted domain: a consumer account cannot answer.
    let hosted = b.get(&format!("/accounts/AuthSubRequest?{query}&hd=corp.example")).await;
    assert_eq!(hosted.status, 403);
    assert!(
        hosted.body.contains("asked for an account of corp.example; alice@example.com is not one."),
        "{}",
        hosted.body
    );
    assert!(hosted.body.contains("Sign in with another account"));
    assert_eq!(b.get(&format!("/accounts/AuthSubRequest?{query}&hd=default")).await.status, 200);
    // Unregistered apps cannot ask for secure tokens.
    let secure = b.get(&format!("/accounts/AuthSubRequest?{query}&secure=1")).await;
    assert_eq!(secure.status, 400);

    // session=0: one use, no upgrade.
    let location = allow(&env, &mut b, &query).await;
    assert_eq!(location, format!("http://app.example.com/cb?token={}", token_of(&location)));
    let single = token_of(&location);
    let refused = with_authorization(
        &env,
        "/accounts/AuthSubSessionToken",
        &format!("AuthSub token={single}"),
    )
    .await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains(
        "<TITLE>Invalid AuthSub token - this token cannot be exchanged for a session token.</TITLE>"
    ));
    assert_eq!(caller(&env, &format!("AuthSub token={single}"), "GET", CAL).await.0, 200);
    assert_eq!(caller(&env, &format!("AuthSub token={single}"), "GET", CAL).await.0, 401);
}

#[tokio::test]
async fn at_most_ten_session_tokens_per_account_and_app() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    env.account("alice@example.com", "north23AZ").await;
    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    let query = format!(
        "next={}&scope={}&session=1",
        urlencode("http://app.example.com/cb"),
        urlencode(CAL)
    );
    let other = format!(
        "next={}&scope={}&session=1",
        urlencode("http://other.example.com/cb"),
        urlencode(CAL)
    );
    let mut sessions = Vec::new();
    for i in 0..11 {
        env.clock.advance(1);
        let single = token_of(&allow(&env, &mut b, &query).await);
        let page = with_authorization(
            &env,
            "/accounts/AuthSubSessionToken",
            &format!("AuthSub token={single}"),
        )
        .await;
        sessions.push(page.body.trim_end().strip_prefix("Token=").unwrap().to_owned());
        if i == 0 {
            // Another app's tokens do not count against this one.
            let single = token_of(&allow(&env, &mut b, &other).await);
            let page = with_authorization(
                &env,
                "/accounts/AuthSubSessionToken",
                &format!("AuthSub token={single}"),
            )
            .await;
            sessions.push(page.body.trim_end().strip_prefix("Token=").unwrap().to_owned());
        }
    }
    let other_token = sessions.remove(1);
    assert_unauthorized(
        &env,
        &with_authorization(
            &env,
            "/accounts/AuthSubTokenInfo",
            &format!("AuthSub token={}", sessions[0]),
        )
        .await,
    );
    for token in &sessions[1..] {
        assert_eq!(
            with_authorization(
                &env,
                "/accounts/AuthSubTokenInfo",
                &format!("AuthSub token={token}")
            )
            .await
            .status,
            200
        );
    }
    assert_eq!(
        with_authorization(
            &env,
            "/accounts/AuthSubTokenInfo",
            &format!("AuthSub token={other_token}")
        )
        .await
        .status,
        200
    );

    // Removing the app on the account page kills all of its tokens.
    let page = b.get("/account").await;
    let account =
        env.ctx().store.accounts().find_by_email("alice@example.com").await.unwrap().unwrap();
    let grant = tessera_domain::grants::find_live(
        env.ctx(),
        &account.id,
        "app.example.com",
        tessera_domain::credentials::Protocol::AuthSub,
    )
    .await
    .unwrap()
    .unwrap();
    let res = b
        .post(
            "/account/apps/revoke",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("grant", &grant.id)],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    for token in &sessions[1..] {
        assert_eq!(
            with_authorization(
                &env,
                "/accounts/AuthSubTokenInfo",
                &format!("AuthSub token={token}")
            )
            .await
            .status,
            401
        );
    }
    assert_eq!(
        with_authorization(
            &env,
            "/accounts/AuthSubTokenInfo",
            &format!("AuthSub token={other_token}")
        )
        .await
        .status,
        200
    );
}

fn openssl(args: &[&str], dir: &std::path::Path) {
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// An RSA-SHA1 signature made by the `openssl` CLI, not by our code.
fn openssl_sign(dir: &std::path::Path, data: &str) -> String {
    use base64::Engine as _;
    std::fs::write(dir.join("data.txt"), data).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha1", "-sign", "key.pem", "data.txt"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    base64::engine::general_purpose::STANDARD.encode(out.stdout)
}

#[tokio::test]
async fn secure_tokens_need_an_openssl_signature_of_this_request() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    env.account("alice@example.com", "north23AZ").await;
    let dir = env.dir.path();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "30",
            "-subj",
            "/CN=app.example.com",
        ],
        dir,
    );
    let pem = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    let ctx = env.ctx();
    // The next prefix must be on the domain; the certificate must be one.
    assert!(
        tessera_domain::authsub::register(
            ctx,
            "app.example.com",
            "https://evil.example.net/",
            Some(&pem),
            Some("alice@example.com"),
            &Actor::Cli
        )
        .await
        .is_err()
    );
    assert!(
        tessera_domain::authsub::register(
            ctx,
            "app.example.com",
            "https://app.example.com/",
            Some("junk"),
            Some("alice@example.com"),
            &Actor::Cli
        )
        .await
        .is_err()
    );
    tessera_domain::authsub::register(
        ctx,
        "app.example.com",
        "https://app.example.com/authsub/",
        Some(&pem),
        Some("alice@example.com"),
        &Actor::Cli,
    )
    .await
    .unwrap();

    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    // A registered domain must return under its prefix.
    let outside = b
        .get(&format!(
            "/accounts/AuthSubRequest?next={}&scope={}",
            urlencode("https://app.example.com/elsewhere"),
            urlencode(CAL)
        ))
        .await;
    assert_eq!(outside.status, 400);
    let query = format!(
        "next={}&scope={}&session=1&secure=1",
        urlencode("https://www.app.example.com/authsub/cb"),
        urlencode(CAL)
    );
    let page = b.get(&format!("/accounts/AuthSubRequest?{query}")).await;
    assert_eq!(
        page.status, 400,
        "www.app.example.com is under app.example.com but outside the prefix"
    );
    let query = format!(
        "next={}&scope={}&session=1&secure=1",
        urlencode("https://app.example.com/authsub/cb"),
        urlencode(CAL)
    );
    let page = b.get(&format!("/accounts/AuthSubRequest?{query}")).await;
    assert!(!page.body.contains("not registered"));
    let single = token_of(&allow(&env, &mut b, &query).await);

    let upgrade_url = env.url("/accounts/AuthSubSessionToken");
    let signed = |method: &str, url: &str, ts: i64, nonce: &str| {
        let data = format!("{method} {url} {ts} {nonce}");
        let sig = openssl_sign(dir, &data);
        format!("AuthSub token=\"{single}\" data=\"{data}\" sig=\"{sig}\" sigalg=\"rsa-sha1\"")
    };
    // Unsigned, wrongly signed, wrong URL, wrong method, stale: 403, and the token survives.
    let forbidden = |page: &Page| {
        assert_eq!(page.status, 403, "{}", page.body);
        assert!(
            page.body.contains("<TITLE>Token invalid - Invalid AuthSub signature.</TITLE>"),
            "{}",
            page.body
        );
    };
    forbidden(
        &with_authorization(
            &env,
            "/accounts/AuthSubSessionToken",
            &format!("AuthSub token=\"{single}\""),
        )
        .await,
    );
    let tampered =
        signed("GET", &upgrade_url, T0, "1").replace(&format!("{T0} 1\""), &format!("{T0} 2\""));
    forbidden(&with_authorization(&env, "/accounts/AuthSubSessionToken", &tampered).await);
    forbidden(
        &with_authorization(
            &env,
            "/accounts/AuthSubSessionToken",
            &signed("GET", &env.url("/accounts/AuthSubTokenInfo"), T0, "3"),
        )
        .await,
    );
    forbidden(
        &with_authorization(
            &env,
            "/accounts/AuthSubSessionToken",
            &signed("POST", &upgrade_url, T0, "4"),
        )
        .await,
    );
    forbidden(
        &with_authorization(
            &env,
            "/accounts/AuthSubSessionToken",
            &signed("GET", &upgrade_url, T0 - 301, "5"),
        )
        .await,
    );
    forbidden(
        &with_authorization(
            &env,
            "/accounts/AuthSubSessionToken",
            &signed("GET", &upgrade_url, T0 + 301, "6"),
        )
        .await,
    );

    // gdata-python v2's attribute order, bare token, within the window.
    let data = format!("GET {upgrade_url} {} 151135596308045", T0 + 200);
    let sig = openssl_sign(dir, &data);
    let header =
        format!("AuthSub token={single} sigalg=\"rsa-sha1\" data=\"{data}\" sig=\"{sig}\"");
    let upgraded = with_authorization(&env, "/accounts/AuthSubSessionToken", &header).await;
    assert_eq!(upgraded.status, 200, "{}", upgraded.body);
    let session = upgraded.body.trim_end().strip_prefix("Token=").unwrap().to_owned();

    let info_url = env.url("/accounts/AuthSubTokenInfo");
    let header = |nonce: &str| {
        let data = format!("GET {info_url} {T0} {nonce}");
        let sig = openssl_sign(dir, &data);
        format!("AuthSub token=\"{session}\" data=\"{data}\" sig=\"{sig}\" sigalg=\"rsa-sha1\"")
    };
    let first = header("42");
    let info = with_authorization(&env, "/accounts/AuthSubTokenInfo", &first).await;
    assert_eq!(info.body, format!("Target=https://app.example.com\nScope={CAL}\nSecure=true\n"));
    // The same nonce again is a replay.
    forbidden(&with_authorization(&env, "/accounts/AuthSubTokenInfo", &first).await);
    // A client hard-coded to another host name, sent to us by DNS, signs that host.
    let data = format!("GET http://www.google.com/accounts/AuthSubTokenInfo {T0} 43");
    let sig = openssl_sign(dir, &data);
    let res = reqwest::Client::new()
        .get(env.url("/accounts/AuthSubTokenInfo"))
        .header("host", "www.google.com")
        .header(
            "authorization",
            format!(
                "AuthSub token=\"{session}\" data=\"{data}\" sig=\"{sig}\" sigalg=\"rsa-sha1\""
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Resource servers ask with the URL they were called on.
    let feed = "http://www.example.com/calendar/feeds/default/private/full?max-results=5&q=a%20b";
    let data = format!("GET {feed} {T0} 7");
    let sig = openssl_sign(dir, &data);
    let auth =
        format!("AuthSub token=\"{session}\" data=\"{data}\" sig=\"{sig}\" sigalg=\"rsa-sha1\"");
    let (status, found) = caller(
        &env,
        &auth,
        "GET",
        "http://www.example.com:80/calendar/feeds/default/private/full?q=a+b&max-results=5",
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["client_id"], "app.example.com");
    let (status, err) = caller(&env, &auth, "GET", feed).await;
    assert_eq!((status, err["error"].as_str()), (403, Some("bad_signature")));
    let revoke = {
        let data = format!("GET {} {T0} 8", env.url("/accounts/AuthSubRevokeToken"));
        let sig = openssl_sign(dir, &data);
        format!("AuthSub token=\"{session}\" data=\"{data}\" sig=\"{sig}\" sigalg=\"rsa-sha1\"")
    };
    assert_eq!(with_authorization(&env, "/accounts/AuthSubRevokeToken", &revoke).await.status, 200);
    assert_unauthorized(
        &env,
        &with_authorization(&env, "/accounts/AuthSubTokenInfo", &header("9")).await,
    );
}

#[tokio::test]
async fn raw_http10_without_host_and_absolute_form_targets() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    env.account("alice@example.com", "north23AZ").await;
    let body = "accountType=HOSTED_OR_GOOGLE&Email=alice%40example.com&Passwd=north23AZ&service=cl&source=raw";
    let host = env.base.trim_start_matches("http://");
    let answer = raw(&env, format!("POST {}/accounts/ClientLogin HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded; charset=UTF-8;\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", env.base, body.len()).as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let (head, payload) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_lowercase().contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"),
        "{head}"
    );
    assert!(
        payload.starts_with("SID=")
            && payload.contains("\nLSID=")
            && payload.contains("\nAuth=")
            && payload.ends_with('\n'),
        "{payload}"
    );

    // HTTP/1.0 with no Host header (the WordPress Blogger importer).
    let answer = raw(&env, format!("POST /accounts/ClientLogin HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.0 200 OK\r\n"), "{answer}");
    let answer = raw(&env, b"GET /accounts/AuthSubSessionToken HTTP/1.0\r\nAuthorization: AuthSub token=\"nope\"\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.0 401 Unauthorized\r\n"), "{answer}");
    assert!(
        answer.contains(&format!(
            "www-authenticate: AuthSub realm=\"{}/accounts/AuthSubRequest\"\r\n",
            env.base
        )),
        "{answer}"
    );
    assert!(answer.ends_with(invalid_authsub_body()));

    // The reason phrase the gdata mocks use, and the body with Error= first.
    let bad = "Email=alice%40example.com&Passwd=wrong&service=cl";
    let answer = raw(&env, format!("POST http://{host}/ClientLogin HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{bad}", bad.len()).as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.0 403 Access Forbidden\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nError=BadAuthentication\n"), "{answer}");
}

#[tokio::test]
async fn legacy_protocols_can_be_switched_off() {
    let env = TestEnv::with_config(|raw| raw.legacy.clientlogin = false).await;
    service(&env, "cl", CAL, None).await;
    env.account("alice@example.com", "north23AZ").await;
    assert_eq!(clientlogin(&env, &login("alice@example.com", "north23AZ")).await.status, 404);
    assert_eq!(
        with_authorization(&env, "/accounts/AuthSubTokenInfo", "AuthSub token=x").await.status,
        401
    );
    let env = TestEnv::with_config(|raw| raw.legacy.authsub = false).await;
    assert_eq!(
        with_authorization(&env, "/accounts/AuthSubTokenInfo", "AuthSub token=x").await.status,
        404
    );
}

#[tokio::test]
async fn python_stdlib_client_interoperates() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    env.account("alice@example.com", "north23AZ").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/clientlogin_authsub.py");
    let out = tokio::process::Command::new("python3")
        .args([script, &env.base, "alice@example.com", "north23AZ", CAL])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n", "{stderr}");
}

fn tessera_cli(dir: &std::path::Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("TESSERA_DATABASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn admin_registers_authsub_apps_and_reports_legacy_usage() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "30",
            "-subj",
            "/CN=app.example.com",
        ],
        d,
    );
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:512",
            "-nodes",
            "-keyout",
            "small.pem",
            "-out",
            "small-cert.pem",
            "-days",
            "30",
            "-subj",
            "/CN=app.example.com",
        ],
        d,
    );
    let cert = d.join("cert.pem").to_string_lossy().into_owned();
    let add = [
        "admin",
        "authsub",
        "add",
        "app.example.com",
        "--next-prefix",
        "https://app.example.com/cb",
        "--cert",
        &cert,
        "--json",
    ];
    // No administrator yet and no --owner.
    let (code, _, err) = tessera_cli(d, &add, "");
    assert_ne!(code, 0);
    assert!(err.contains("--owner"), "{err}");
    let (code, _, err) = tessera_cli(
        d,
        &["admin", "account", "add", "root@example.com", "--admin", "--password-stdin"],
        "root-password-1\n",
    );
    assert_eq!(code, 0, "{err}");
    let small = d.join("small-cert.pem").to_string_lossy().into_owned();
    let (code, _, err) = tessera_cli(
        d,
        &[
            "admin",
            "authsub",
            "add",
            "app.example.com",
            "--next-prefix",
            "https://app.example.com/cb",
            "--cert",
            &small,
        ],
        "",
    );
    assert_ne!(code, 0, "a 512-bit key is refused");
    assert!(err.contains("1024"), "{err}");
    let (code, out, err) = tessera_cli(d, &add, "");
    assert_eq!(code, 0, "{err}");
    let reg: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reg["domain"], "app.example.com");
    assert_eq!(reg["next_prefix"], "https://app.example.com/cb");
    assert_eq!(reg["secure"], true);
    let (code, _, err) = tessera_cli(d, &add, "");
    assert_ne!(code, 0);
    assert!(err.contains("already registered"), "{err}");
    let (code, out, err) = tessera_cli(d, &["admin", "legacy", "usage", "--json"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([]));
}

#[tokio::test]
async fn administrators_register_authsub_apps_on_a_page() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    env.account("bob@example.com", "bob-password-1").await;
    let new = tessera_domain::accounts::NewAccount {
        email: "root@example.com".to_owned(),
        name: "Root".to_owned(),
        domain: None,
        password: Some("root-password-1".to_owned()),
        is_admin: true,
        state: AccountState::Active,
    };
    tessera_domain::accounts::create(env.ctx(), new, &Actor::Cli, "").await.unwrap();
    let mut bob = env.browser();
    assert_eq!(bob.get("/accounts/ManageDomains").await.status, 302);
    bob.sign_in("bob@example.com", "bob-password-1").await;
    assert_eq!(bob.get("/accounts/ManageDomains").await.status, 403);

    let mut b = env.browser();
    b.sign_in("root@example.com", "root-password-1").await;
    let page = b.get("/accounts/ManageDomains").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("No application is registered."));
    let bad = b
        .post(
            "/accounts/ManageDomains",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("domain", "app.example.com"),
                ("next_prefix", "https://evil.example.net/"),
                ("cert", ""),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("--next-prefix must be on app.example.com."), "{}", bad.body);
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crypto/tests/fixtures/authsub-1024.cert.pem"
    ))
    .unwrap();
    let ok = b
        .post(
            "/accounts/ManageDomains",
            &[
                ("csrf", &bad.csrf()),
                ("authuser", "0"),
                ("domain", "app.example.com"),
                ("next_prefix", "https://app.example.com/cb"),
                ("cert", &pem),
            ],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("Registered app.example.com."));
    assert!(
        ok.body.contains(
            "<tr><td>app.example.com</td><td>https://app.example.com/cb</td><td>yes</td></tr>"
        ),
        "{}",
        ok.body
    );

    let query = format!(
        "next={}&scope={}&secure=1",
        urlencode("https://app.example.com/cb"),
        urlencode(CAL)
    );
    let access = bob.get(&format!("/accounts/AuthSubRequest?{query}")).await;
    assert_eq!(access.status, 200, "{}", access.body);
    assert!(access.body.contains("app.example.com wants access"));
    assert!(!access.body.contains("not registered"));
    assert!(access.body.contains("signs every request with its registered key"));
}

#[test]
fn legacy_switches_come_from_the_file_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.toml");
    std::fs::write(&path, "[legacy]\nauthsub = false\n").unwrap();
    let raw = tessera::RawConfig::load(Some(&path), std::iter::empty()).unwrap();
    assert!(!raw.legacy.authsub && raw.legacy.clientlogin);
    let env = [("TESSERA_LEGACY_CLIENTLOGIN".to_owned(), "false".to_owned())];
    let raw = tessera::RawConfig::load(None, env.into_iter()).unwrap();
    assert!(raw.legacy.authsub && !raw.legacy.clientlogin);
    std::fs::write(&path, "[legacy]\noauth1 = false\n").unwrap();
    let raw = tessera::RawConfig::load(Some(&path), std::iter::empty()).unwrap();
    assert!(raw.legacy.authsub && raw.legacy.clientlogin && !raw.legacy.oauth1);
    let env = [("TESSERA_LEGACY_OAUTH1".to_owned(), "false".to_owned())];
    assert!(!tessera::RawConfig::load(None, env.into_iter()).unwrap().legacy.oauth1);
    // Unknown switches are still refused.
    std::fs::write(&path, "[legacy]\nopenid9 = false\n").unwrap();
    assert!(tessera::RawConfig::load(Some(&path), std::iter::empty()).is_err());
}

/// A registered `next` prefix held against `..`: the raw `next` started with the prefix while the
/// URL it named (after the browser resolved the dot segments) was outside it.
#[tokio::test]
async fn authsub_next_with_dot_segments_is_refused() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    env.account("alice@example.com", "north23AZ").await;
    tessera_domain::authsub::register(
        env.ctx(),
        "app.example.com",
        "https://app.example.com/cb/",
        None,
        Some("alice@example.com"),
        &Actor::Cli,
    )
    .await
    .unwrap();
    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    let request = |next: &str| {
        format!("/accounts/AuthSubRequest?next={}&scope={}", urlencode(next), urlencode(CAL))
    };
    for next in [
        "https://app.example.com/cb/../../other",
        "https://app.example.com/cb/%2e%2e/%2E%2E/other",
        "https://app.example.com/cb/.%2e/other",
        "https://app.example.com/cb/..\\..\\other",
        "https://app.example.com/cb/./x",
        "http://unregistered.example.net/a/../b",
    ] {
        let page = b.get(&request(next)).await;
        assert_eq!(page.status, 400, "{next}: {}", page.body);
        assert!(page.body.contains("dot segments"), "{next}: {}", page.body);
        assert!(page.location().is_empty());
    }
    // The prefix is compared with the normalized URL: case and default ports do not matter.
    let query = format!(
        "next={}&scope={}",
        urlencode("HTTPS://App.Example.com:443/cb/done?x=%41"),
        urlencode(CAL)
    );
    let location = allow(&env, &mut b, &query).await;
    assert!(location.starts_with("https://app.example.com/cb/done?x=%41&token="), "{location}");
    // Outside the prefix once normalized: refused.
    let page = b.get(&request("https://app.example.com/cbx")).await;
    assert_eq!(page.status, 400);
}

/// A raw LF or DEL in `next` passed the parsed-URL check, then went into `Location` raw: a 500
/// after Allow. Control characters are refused with a page, on the GET and on the POST.
#[tokio::test]
async fn authsub_next_with_control_characters_is_refused() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    env.account("alice@example.com", "north23AZ").await;
    let mut b = env.browser();
    b.sign_in("alice@example.com", "north23AZ").await;
    let good = format!("next={}&scope={}", urlencode("http://app.example.com/cb"), urlencode(CAL));
    for next in [
        "http://app.example.com/cb\nSet-Cookie: x=1",
        "http://app.example.com/cb\u{7f}",
        "http://app.example.com/c\tb",
        "http://app.example.com/cb\r",
    ] {
        let query = format!("next={}&scope={}", urlencode(next), urlencode(CAL));
        let page = b.get(&format!("/accounts/AuthSubRequest?{query}")).await;
        assert_eq!(page.status, 400, "{next:?}: {}", page.body);
        assert!(page.body.contains("control characters"), "{next:?}: {}", page.body);
        // A forged POST with the same query: the same page, never a 500 or a redirect.
        let form = b.get(&format!("/accounts/AuthSubRequest?{good}")).await;
        let res = b
            .post(
                "/accounts/AuthSubRequest",
                &[
                    ("csrf", &form.csrf()),
                    ("authuser", "0"),
                    ("query", &query),
                    ("action", "allow"),
                ],
            )
            .await;
        assert_eq!(res.status, 400, "{next:?}: {}", res.body);
        assert!(res.location().is_empty());
    }
    let account =
        env.ctx().store.accounts().find_by_email("alice@example.com").await.unwrap().unwrap();
    assert!(
        tessera_domain::grants::connected(env.ctx(), &account.id).await.unwrap().is_empty(),
        "nothing was granted"
    );
}

#[tokio::test]
async fn authsub_hl_sets_the_language_of_sign_in_and_consent() {
    let env = TestEnv::start().await;
    service(&env, "cl", CAL, None).await;
    env.account("alice@example.com", "north23AZ").await;
    let next = "http://app.example.com/cb";
    let query = format!(
        "next={}&scope={}&session=1&secure=0&hd=default&hl=fr",
        urlencode(next),
        urlencode(CAL)
    );
    let mut b = env.browser();
    let first = b.get(&format!("/accounts/AuthSubRequest?{query}")).await;
    assert_eq!(first.status, 302);
    let continue_url = format!("{}/accounts/AuthSubRequest?{query}", env.base);
    assert_eq!(
        first.location(),
        format!("/accounts/ServiceLogin?hl=fr&continue={}", urlencode(&continue_url))
    );
    let form = b.get(first.location()).await;
    assert!(form.body.contains("<html lang=\"fr\">"), "{}", form.body);
    assert!(form.body.contains("<h1>Connexion</h1>") && form.body.contains("Mot de passe"));
    let signed = b.sign_in_to("alice@example.com", "north23AZ", &continue_url).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let page = b.get(signed.location()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<html lang=\"fr\">"), "{}", page.body);
    assert!(page.body.contains("app.example.com souhaite accéder à votre compte"), "{}", page.body);
    assert!(page.body.contains("Cette application n’est pas enregistrée."), "{}", page.body);
    assert!(page.body.contains(">Autoriser</button>"), "{}", page.body);
}
