//! OAuth 2.0 and OpenID Connect: the code flow through the consent page, tokens, tokeninfo,
//! userinfo, refresh, revocation, PKCE, redirect URI rules (RFC 9700 cases), code replay, refresh
//! reuse, `iss` in responses, cross-client identity, and ID tokens checked by an independent
//! JWS verifier against the published key set.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_domain::audit::Actor;
use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};

use crate::support::{Browser, Page, TestEnv, urlencode};

const PASSWORD: &str = "password-1";
const WEB_REDIRECT: &str = "https://app.example/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct App {
    id: String,
    secret: Option<String>,
}

async fn project(env: &TestEnv, name: &str, owner: &str) -> tessera_store::ProjectRecord {
    tessera_domain::projects::create(env.ctx(), name, owner, &Actor::Cli).await.unwrap()
}

async fn client(
    env: &TestEnv,
    project: &tessera_store::ProjectRecord,
    kind: ClientKind,
    name: &str,
    redirect_uris: &[&str],
) -> App {
    let new = NewClient {
        kind,
        name: name.to_owned(),
        redirect_uris: redirect_uris.iter().map(|it| (*it).to_owned()).collect(),
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    let created = clients::create(env.ctx(), project, new, &Actor::Cli).await.unwrap();
    App { id: created.client.record.client_id, secret: created.secret }
}

/// An environment with one account signed in in `browser`, a project and its web client.
async fn setup() -> (TestEnv, Browser, tessera_store::AccountRecord, App) {
    let env = TestEnv::start().await;
    let account = env.account("ann@example.test", PASSWORD).await;
    let p = project(&env, "Photo Printer", "ann@example.test").await;
    let web = client(&env, &p, ClientKind::Web, "Photo Printer Web", &[WEB_REDIRECT]).await;
    let mut browser = env.browser();
    let signed = browser.sign_in("ann@example.test", PASSWORD).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    (env, browser, account, web)
}

fn auth_path(client_id: &str, redirect_uri: &str, scope: &str, extra: &str) -> String {
    format!(
        "/o/oauth2/auth?response_type=code&client_id={}&redirect_uri={}&scope={}&state=xyz{extra}",
        urlencode(client_id),
        urlencode(redirect_uri),
        urlencode(scope)
    )
}

/// The parameters of a URL's query (or fragment).
fn params_of(location: &str) -> Vec<(String, String)> {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn param(location: &str, name: &str) -> Option<String> {
    params_of(location).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Answers the consent page with `decision`.
async fn consent(browser: &mut Browser, page: &Page, decision: &str) -> Page {
    assert_eq!(page.status, 200, "{}", page.body);
    let request = page.input("request").expect("the consent page carries the request");
    browser
        .post(
            "/o/oauth2/approval",
            &[("csrf", &page.csrf()), ("request", &request), ("decision", decision)],
        )
        .await
}

/// Runs the browser part of a code flow through the consent page and returns the redirect.
async fn authorize(browser: &mut Browser, path: &str) -> String {
    let page = browser.get(path).await;
    let answered = consent(browser, &page, "allow").await;
    assert_eq!(answered.status, 303, "{}", answered.body);
    answered.location().to_owned()
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    json: Value,
}

async fn post_form(url: &str, basic: Option<(&str, &str)>, fields: &[(&str, &str)]) -> Reply {
    let mut req = reqwest::Client::new().post(url).form(fields);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Reply { status, headers, json: serde_json::from_str(&text).unwrap_or(Value::Null) }
}

async fn get_json(url: &str, bearer: Option<&str>) -> Reply {
    let mut req = reqwest::Client::new().get(url);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Reply { status, headers, json: serde_json::from_str(&text).unwrap_or(Value::Null) }
}

async fn exchange(
    env: &TestEnv,
    app: &App,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> Reply {
    let mut fields =
        vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect_uri)];
    if let Some(verifier) = verifier {
        fields.push(("code_verifier", verifier));
    }
    match &app.secret {
        Some(secret) => {
            post_form(&env.url("/o/oauth2/token"), Some((&app.id, secret)), &fields).await
        }
        None => {
            fields.push(("client_id", &app.id));
            post_form(&env.url("/o/oauth2/token"), None, &fields).await
        }
    }
}

async fn refresh(env: &TestEnv, app: &App, token: &str) -> Reply {
    let mut fields = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    match &app.secret {
        Some(secret) => post_form(&env.url("/token"), Some((&app.id, secret)), &fields).await,
        None => {
            fields.push(("client_id", &app.id));
            post_form(&env.url("/token"), None, &fields).await
        }
    }
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_else(|| panic!("{key} in {value}")).to_owned()
}

/// An authorization reads its client's project through the answers the node keeps for the
/// current second: a project verified through this node shows on the very next consent page, in
/// the same second of the injected clock.
#[tokio::test]
async fn a_project_verified_meanwhile_shows_on_the_next_consent_page() {
    let (env, mut browser, _, web) = setup().await;
    let path = auth_path(&web.id, WEB_REDIRECT, "openid email", "");
    for _ in 0..2 {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("has not been verified"), "unverified warning");
    }
    tessera_domain::projects::set_verified(env.ctx(), "Photo Printer", true, &Actor::Cli)
        .await
        .unwrap();
    let page = browser.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("has not been verified"), "a kept project outlived its change");
}

/// Whether an authorization needs a consent page is decided from the account's grants, kept for
/// the current second: a grant given through this node skips the page on the very next
/// authorization, and a grant revoked through this node asks again, in the same second of the
/// injected clock.
#[tokio::test]
async fn remembered_consent_follows_a_grant_given_or_revoked_in_the_same_second() {
    let (env, mut browser, account, web) = setup().await;
    let path = auth_path(&web.id, WEB_REDIRECT, "openid email", "");
    let page = browser.get(&path).await;
    assert_eq!(page.status, 200, "no grant yet: the consent page");
    let answered = consent(&mut browser, &page, "allow").await;
    assert_eq!(answered.status, 303, "{}", answered.body);
    let again = browser.get(&path).await;
    assert!(matches!(again.status, 302 | 303), "a grant given meanwhile: no page: {}", again.body);
    assert!(again.location().starts_with("https://app.example/cb?"), "{}", again.location());
    let grants = tessera_domain::grants::connected(env.ctx(), &account.id).await.unwrap();
    let [app] = grants.as_slice() else { panic!("{} grants", grants.len()) };
    tessera_domain::grants::revoke(env.ctx(), &account.id, &app.grant.id, &Actor::Cli, "127.0.0.1")
        .await
        .unwrap();
    let page = browser.get(&path).await;
    assert_eq!(page.status, 200, "a grant revoked meanwhile: the consent page again");
    assert!(page.input("request").is_some(), "{}", page.body);
}

#[tokio::test]
async fn code_flow_with_consent_userinfo_tokeninfo_refresh_and_revoke() {
    let (env, mut browser, account, web) = setup().await;
    let path = auth_path(
        &web.id,
        WEB_REDIRECT,
        "openid email profile",
        "&nonce=n-0S6&access_type=offline",
    );
    let page = browser.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Photo Printer Web"), "the app's name");
    assert!(page.body.contains("ann@example.test"), "the signed-in account");
    assert!(page.body.contains("has not been verified"), "unverified warning");
    assert!(page.body.contains("See your email address"), "scopes in words");

    let answered = consent(&mut browser, &page, "allow").await;
    assert_eq!(answered.status, 303);
    let location = answered.location().to_owned();
    assert!(location.starts_with("https://app.example/cb?"), "{location}");
    assert_eq!(param(&location, "state").as_deref(), Some("xyz"));
    assert_eq!(param(&location, "iss").as_deref(), Some(env.base.as_str()), "RFC 9207 iss");
    let code = param(&location, "code").unwrap();

    let tokens = exchange(&env, &web, &code, WEB_REDIRECT, None).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert_eq!(tokens.headers["cache-control"], "no-store");
    assert_eq!(tokens.json["token_type"], "Bearer");
    assert_eq!(tokens.json["expires_in"], 3600);
    assert_eq!(tokens.json["scope"], "email openid profile");
    let access = text(&tokens.json, "access_token");
    let refresh_token = text(&tokens.json, "refresh_token");
    assert!(tokens.json["id_token"].is_string());

    let me = get_json(&env.url("/oauth2/v3/userinfo"), Some(&access)).await;
    assert_eq!(me.status, 200, "{}", me.json);
    assert_eq!(me.json["sub"], tessera_domain::accounts::subject(&account.id));
    assert_eq!(me.json["email"], "ann@example.test");
    assert_eq!(me.json["email_verified"], true);
    assert_eq!(me.json["name"], "ann");
    let v2 = get_json(&env.url("/oauth2/v2/userinfo"), Some(&access)).await;
    assert_eq!(v2.json["id"], me.json["sub"]);
    assert_eq!(v2.json["verified_email"], true);
    let me_v2 = get_json(&env.url("/userinfo/v2/me"), Some(&access)).await;
    assert_eq!(me_v2.json, v2.json);

    let info = get_json(
        &env.url(&format!("/oauth2/v1/tokeninfo?access_token={}", urlencode(&access))),
        None,
    )
    .await;
    assert_eq!(info.status, 200, "{}", info.json);
    assert_eq!(info.json["issued_to"], web.id.as_str());
    assert_eq!(info.json["audience"], web.id.as_str());
    assert_eq!(info.json["scope"], "email openid profile");
    assert_eq!(info.json["expires_in"], 3600);
    assert_eq!(info.json["access_type"], "offline");
    assert_eq!(info.json["email"], "ann@example.test");
    assert_eq!(info.json["user_id"], me.json["sub"]);
    env.clock.advance(600);
    let later =
        post_form(&env.url("/oauth2/v3/tokeninfo"), None, &[("access_token", &access)]).await;
    assert_eq!(later.json["expires_in"], 3000, "seconds remaining");

    // A confidential client's refresh token is not rotated: the response has no new one.
    let refreshed = refresh(&env, &web, &refresh_token).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.json);
    assert!(refreshed.json.get("refresh_token").is_none());
    let access2 = text(&refreshed.json, "access_token");
    assert_ne!(access2, access);

    // The grant is remembered: the next request for the same scopes skips the page.
    let again = browser.get(&path).await;
    assert_eq!(again.status, 302, "{}", again.body);
    assert!(param(again.location(), "code").is_some());
    // ... unless consent is forced.
    let forced = browser.get(&format!("{path}&prompt=consent")).await;
    assert_eq!(forced.status, 200);
    assert!(forced.body.contains("Allow"));

    // Google's revoke: GET with the token, no client authentication; the grant goes.
    let revoked =
        get_json(&env.url(&format!("/o/oauth2/revoke?token={}", urlencode(&refresh_token))), None)
            .await;
    assert_eq!(revoked.status, 200, "{}", revoked.json);
    let gone = get_json(&env.url("/oauth2/v3/userinfo"), Some(&access2)).await;
    assert_eq!(gone.status, 401);
    assert!(gone.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let info =
        get_json(&env.url(&format!("/tokeninfo?access_token={}", urlencode(&access2))), None).await;
    assert_eq!(info.status, 400);
    assert_eq!(info.json["error_description"], "Invalid Value");
    let dead = refresh(&env, &web, &refresh_token).await;
    assert_eq!(dead.status, 400);
    assert_eq!(dead.json["error"], "invalid_grant");
    let missing = get_json(&env.url("/oauth2/v3/userinfo"), None).await;
    assert_eq!(missing.status, 401);
    assert!(missing.headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn denying_consent_redirects_access_denied_with_state_and_iss() {
    let (env, mut browser, _, web) = setup().await;
    let page = browser.get(&auth_path(&web.id, WEB_REDIRECT, "email", "")).await;
    let denied = consent(&mut browser, &page, "deny").await;
    assert_eq!(denied.status, 303);
    let location = denied.location();
    assert_eq!(param(location, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(location, "state").as_deref(), Some("xyz"));
    assert_eq!(param(location, "iss").as_deref(), Some(env.base.as_str()));
    assert!(param(location, "code").is_none());
}

#[tokio::test]
async fn consent_post_needs_csrf() {
    let (_env, mut browser, _, web) = setup().await;
    let page = browser.get(&auth_path(&web.id, WEB_REDIRECT, "email", "")).await;
    let request = page.input("request").unwrap();
    let res = browser
        .post(
            "/o/oauth2/approval",
            &[("csrf", "forged"), ("request", &request), ("decision", "allow")],
        )
        .await;
    assert_eq!(res.status, 400);
    assert!(res.location().is_empty());
}

#[tokio::test]
async fn unsigned_browsers_go_to_sign_in_and_come_back() {
    let env = TestEnv::start().await;
    env.account("bo@example.test", PASSWORD).await;
    let p = project(&env, "P", "bo@example.test").await;
    let web = client(&env, &p, ClientKind::Web, "App", &[WEB_REDIRECT]).await;
    let mut browser = env.browser();
    let path = auth_path(&web.id, WEB_REDIRECT, "openid", "");
    let first = browser.get(&path).await;
    assert_eq!(first.status, 302);
    let to = first.location().to_owned();
    assert!(to.starts_with("/accounts/ServiceLogin?continue="), "{to}");
    let continue_url = param(&format!("http://x{to}"), "continue").unwrap();
    assert!(continue_url.starts_with(&format!("{}/o/oauth2/auth?", env.base)));
    let signed = browser.sign_in_to("bo@example.test", PASSWORD, &continue_url).await;
    assert_eq!(signed.status, 303);
    assert!(signed.location().starts_with(&continue_url), "{}", signed.location());
    let consent_page = browser.get(&continue_url).await;
    assert_eq!(consent_page.status, 200);
    assert!(consent_page.body.contains("bo@example.test"));
    // prompt=none never shows a page: without a session it answers login_required.
    let mut stranger = env.browser();
    let none = stranger.get(&format!("{path}&prompt=none")).await;
    assert_eq!(none.status, 302);
    assert_eq!(param(none.location(), "error").as_deref(), Some("login_required"));
    // Signed in but without a grant, prompt=none answers consent_required.
    let none = browser.get(&format!("{path}&prompt=none")).await;
    assert_eq!(param(none.location(), "error").as_deref(), Some("consent_required"));
}

#[tokio::test]
async fn oob_shows_the_code_in_the_title() {
    let (env, mut browser, _, _) = setup().await;
    let p = tessera_domain::projects::find_by_name(env.ctx(), "Photo Printer").await.unwrap();
    let desktop =
        client(&env, &p, ClientKind::Installed, "Desktop", &["urn:ietf:wg:oauth:2.0:oob"]).await;
    assert!(desktop.secret.is_none());
    let path = auth_path(
        &desktop.id,
        "urn:ietf:wg:oauth:2.0:oob",
        "email",
        &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"),
    );
    let page = browser.get(&path).await;
    let shown = consent(&mut browser, &page, "allow").await;
    assert_eq!(shown.status, 200, "no redirect for oob");
    let start =
        shown.body.find("<title>Success code=").expect("title") + "<title>Success code=".len();
    let end = shown.body[start..].find("</title>").unwrap() + start;
    let code = crate::support::html_unescape(&shown.body[start..end]);
    assert_eq!(shown.input("code").as_deref(), Some(code.as_str()));
    let tokens = exchange(&env, &desktop, &code, "urn:ietf:wg:oauth:2.0:oob", Some(VERIFIER)).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert_eq!(tokens.json["scope"], "email");
    // Denied: the title says so.
    let page = browser.get(&format!("{path}&prompt=consent")).await;
    let denied = consent(&mut browser, &page, "deny").await;
    assert!(denied.body.contains("<title>Denied error=access_denied</title>"), "{}", denied.body);
}

#[tokio::test]
async fn public_clients_need_pkce_s256_is_verified_and_downgrades_fail() {
    let (env, mut browser, _, web) = setup().await;
    let p = tessera_domain::projects::find_by_name(env.ctx(), "Photo Printer").await.unwrap();
    let native = client(&env, &p, ClientKind::Installed, "Native", &["http://127.0.0.1/cb"]).await;
    let redirect = "http://127.0.0.1:51234/cb";

    let none = browser.get(&auth_path(&native.id, redirect, "email", "")).await;
    assert_eq!(none.status, 302, "errors after the redirect check go back to the client");
    assert!(none.location().starts_with(redirect));
    assert_eq!(param(none.location(), "error").as_deref(), Some("invalid_request"));
    assert_eq!(param(none.location(), "iss").as_deref(), Some(env.base.as_str()));
    let plain = browser
        .get(&auth_path(
            &native.id,
            redirect,
            "email",
            &format!("&code_challenge={VERIFIER}&code_challenge_method=plain"),
        ))
        .await;
    assert_eq!(param(plain.location(), "error").as_deref(), Some("invalid_request"));

    let s256 = auth_path(
        &native.id,
        redirect,
        "email",
        &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"),
    );
    let location = authorize(&mut browser, &s256).await;
    assert!(location.starts_with(redirect), "{location}");
    let code = param(&location, "code").unwrap();
    let wrong = exchange(
        &env,
        &native,
        &code,
        redirect,
        Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl"),
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.json["error"], "invalid_grant");

    let location = browser.get(&s256).await.location().to_owned();
    let code = param(&location, "code").expect("granted before: no consent page");
    let missing = exchange(&env, &native, &code, redirect, None).await;
    assert_eq!(missing.json["error"], "invalid_grant");

    let location = browser.get(&s256).await.location().to_owned();
    let code = param(&location, "code").unwrap();
    let ok = exchange(&env, &native, &code, redirect, Some(VERIFIER)).await;
    assert_eq!(ok.status, 200, "{}", ok.json);

    // PKCE downgrade: a code issued without a challenge refuses a verifier. (The grant to the
    // native client counts for its sibling in the same project: no consent page.)
    let direct = browser.get(&auth_path(&web.id, WEB_REDIRECT, "email", "")).await;
    assert_eq!(direct.status, 302, "{}", direct.body);
    let location = direct.location().to_owned();
    let code = param(&location, "code").unwrap();
    let downgraded = exchange(&env, &web, &code, WEB_REDIRECT, Some(VERIFIER)).await;
    assert_eq!(downgraded.status, 400);
    assert_eq!(downgraded.json["error"], "invalid_grant");
}

#[tokio::test]
async fn redirect_uris_match_exactly_and_mismatches_never_redirect() {
    let env = TestEnv::start().await;
    env.account("cy@example.test", PASSWORD).await;
    let p = project(&env, "P", "cy@example.test").await;
    let web = client(&env, &p, ClientKind::Web, "App", &[WEB_REDIRECT]).await;
    let native = client(&env, &p, ClientKind::Installed, "Native", &["http://localhost/cb"]).await;
    let mut browser = env.browser();
    for bad in [
        "https://app.example/cb/",
        "https://app.example/cb?x=1",
        "https://app.example/cbx",
        "https://app.example.evil.test/cb",
        "https://app.example@evil.test/cb",
        "https://evil.test/cb",
        "https://app.example/x/%2e%2e/cb",
        "https://APP.example/cb",
        "https://*.example/cb",
        "http://app.example/cb",
    ] {
        let page = browser.get(&auth_path(&web.id, bad, "email", "&prompt=none")).await;
        assert_eq!(page.status, 400, "{bad}");
        assert!(page.location().is_empty(), "{bad} must not redirect");
        assert!(page.body.contains("redirect_uri_mismatch"), "{bad}");
    }
    for bad in [
        "http://localhost@evil.test:8080/cb",
        "http://localhost.evil.test:8080/cb",
        "http://localhost:8080/other",
        "http://localhost:8080/x/%2e%2e/cb",
        "https://localhost:8080/cb",
        "http://127.0.0.1:8080/cb",
    ] {
        let page = browser
            .get(&auth_path(
                &native.id,
                bad,
                "email",
                &format!("&prompt=none&code_challenge={CHALLENGE}&code_challenge_method=S256"),
            ))
            .await;
        assert_eq!(page.status, 400, "{bad}");
        assert!(page.location().is_empty(), "{bad}");
    }
    // Loopback: any port, same host and path (RFC 8252 §7.3).
    let ok = browser
        .get(&auth_path(
            &native.id,
            "http://localhost:61000/cb",
            "email",
            &format!("&prompt=none&code_challenge={CHALLENGE}&code_challenge_method=S256"),
        ))
        .await;
    assert_eq!(ok.status, 302);
    assert!(ok.location().starts_with("http://localhost:61000/cb?"));
    // Unknown client: a page, not a redirect.
    let unknown = browser.get(&auth_path("nobody", WEB_REDIRECT, "email", "")).await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.location().is_empty());
    // Repeated parameters are refused on a page.
    let repeated = browser
        .get(&format!(
            "{}&redirect_uri={}",
            auth_path(&web.id, WEB_REDIRECT, "email", ""),
            urlencode("https://evil.test/")
        ))
        .await;
    assert_eq!(repeated.status, 400);
    assert!(repeated.location().is_empty());
    // The token endpoint insists on the redirect URI the code was sent to.
    let mut signed = env.browser();
    signed.sign_in("cy@example.test", PASSWORD).await;
    let location = authorize(&mut signed, &auth_path(&web.id, WEB_REDIRECT, "email", "")).await;
    let code = param(&location, "code").unwrap();
    let other = exchange(&env, &web, &code, "https://app.example/other", None).await;
    assert_eq!(other.json["error"], "invalid_grant");
}

#[tokio::test]
async fn a_replayed_code_revokes_what_it_issued() {
    let (env, mut browser, _, web) = setup().await;
    let location =
        authorize(&mut browser, &auth_path(&web.id, WEB_REDIRECT, "email", "&access_type=offline"))
            .await;
    let code = param(&location, "code").unwrap();
    let first = exchange(&env, &web, &code, WEB_REDIRECT, None).await;
    assert_eq!(first.status, 200);
    let access = text(&first.json, "access_token");
    let refresh_token = text(&first.json, "refresh_token");
    assert_eq!(get_json(&env.url("/oauth2/v3/userinfo"), Some(&access)).await.status, 200);

    let replay = exchange(&env, &web, &code, WEB_REDIRECT, None).await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json["error"], "invalid_grant");
    assert_eq!(replay.json["error_description"], "Code was already redeemed.");
    assert_eq!(get_json(&env.url("/oauth2/v3/userinfo"), Some(&access)).await.status, 401);
    assert_eq!(refresh(&env, &web, &refresh_token).await.json["error"], "invalid_grant");

    // Codes live ten minutes.
    let location =
        authorize(&mut browser, &auth_path(&web.id, WEB_REDIRECT, "email", "&prompt=consent"))
            .await;
    let code = param(&location, "code").unwrap();
    env.clock.advance(601);
    assert_eq!(
        exchange(&env, &web, &code, WEB_REDIRECT, None).await.json["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn public_refresh_tokens_rotate_and_reuse_revokes_the_grant() {
    let (env, mut browser, _, _) = setup().await;
    let p = tessera_domain::projects::find_by_name(env.ctx(), "Photo Printer").await.unwrap();
    let native = client(&env, &p, ClientKind::Installed, "Native", &["http://127.0.0.1/cb"]).await;
    let redirect = "http://127.0.0.1:40000/cb";
    let path = auth_path(
        &native.id,
        redirect,
        "email",
        &format!("&access_type=offline&code_challenge={CHALLENGE}&code_challenge_method=S256"),
    );
    let code = param(&authorize(&mut browser, &path).await, "code").unwrap();
    let tokens = exchange(&env, &native, &code, redirect, Some(VERIFIER)).await;
    let rt0 = text(&tokens.json, "refresh_token");

    let rotated = refresh(&env, &native, &rt0).await;
    assert_eq!(rotated.status, 200, "{}", rotated.json);
    let rt1 = text(&rotated.json, "refresh_token");
    assert_ne!(rt1, rt0);
    // The old one again: someone else holds it. The whole grant goes, rt1 included.
    let reused = refresh(&env, &native, &rt0).await;
    assert_eq!(reused.json["error"], "invalid_grant");
    assert_eq!(refresh(&env, &native, &rt1).await.json["error"], "invalid_grant");
    let access = text(&rotated.json, "access_token");
    assert_eq!(get_json(&env.url("/oauth2/v3/userinfo"), Some(&access)).await.status, 401);

    // Two refreshes racing with one token: never both succeed.
    // The grant was revoked, so the person is asked again.
    let code = param(&authorize(&mut browser, &path).await, "code").unwrap();
    let rt =
        text(&exchange(&env, &native, &code, redirect, Some(VERIFIER)).await.json, "refresh_token");
    for _ in 0..3 {
        let (a, b) = tokio::join!(refresh(&env, &native, &rt), refresh(&env, &native, &rt));
        assert!(!(a.status == 200 && b.status == 200), "both refreshes succeeded");
    }
}

/// Sixteen refreshes racing with one rotating refresh token: exactly one is answered, and since
/// the others show that two parties hold it, the whole grant goes, the winner's new token too.
#[tokio::test]
async fn a_burst_of_refreshes_with_one_rotating_token_has_one_winner_and_revokes_the_grant() {
    let (env, mut browser, _, _) = setup().await;
    let p = tessera_domain::projects::find_by_name(env.ctx(), "Photo Printer").await.unwrap();
    let native = client(&env, &p, ClientKind::Installed, "Native", &["http://127.0.0.1/cb"]).await;
    let redirect = "http://127.0.0.1:40000/cb";
    let path = auth_path(
        &native.id,
        redirect,
        "email",
        &format!("&access_type=offline&code_challenge={CHALLENGE}&code_challenge_method=S256"),
    );
    let code = param(&authorize(&mut browser, &path).await, "code").unwrap();
    let tokens = exchange(&env, &native, &code, redirect, Some(VERIFIER)).await;
    let rt = text(&tokens.json, "refresh_token");
    let mut racing = Vec::new();
    for _ in 0..16 {
        let (url, id, rt) = (env.url("/token"), native.id.clone(), rt.clone());
        racing.push(tokio::spawn(async move {
            let fields =
                [("grant_type", "refresh_token"), ("refresh_token", &rt), ("client_id", &id)];
            post_form(&url, None, &fields).await
        }));
    }
    let mut winners = Vec::new();
    for race in racing {
        let done = race.await.unwrap();
        match done.status {
            200 => winners.push(text(&done.json, "refresh_token")),
            _ => assert_eq!(done.json["error"], "invalid_grant", "{}", done.json),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one refresh wins");
    assert_eq!(refresh(&env, &native, &winners[0]).await.json["error"], "invalid_grant");
}

#[tokio::test]
async fn id_tokens_verify_independently_against_the_published_keys() {
    let (env, mut browser, account, web) = setup().await;
    let discovery = get_json(&env.url("/.well-known/openid-configuration"), None).await;
    assert_eq!(discovery.json["issuer"], env.base.as_str());
    assert!(!env.base.ends_with('/'));
    assert_eq!(discovery.json["jwks_uri"], env.url("/oauth2/v3/certs"));
    assert_eq!(discovery.json["token_endpoint"], env.url("/token"));
    assert_eq!(discovery.json["authorization_response_iss_parameter_supported"], true);
    let as_meta = get_json(&env.url("/.well-known/oauth-authorization-server"), None).await;
    assert_eq!(as_meta.json["issuer"], env.base.as_str());

    let certs = get_json(&env.url("/oauth2/v3/certs"), None).await;
    let cache = certs.headers["cache-control"].to_str().unwrap().to_owned();
    assert!(cache.contains("max-age=3600"), "{cache}");
    let keys = certs.json["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 4, "the active key and the next one of each algorithm: {keys:?}");
    let rsa: Vec<Value> = keys.iter().filter(|it| it["kty"] == "RSA").cloned().collect();
    assert_eq!(rsa.len(), 2, "{keys:?}");
    for key in &keys {
        assert_eq!(key["use"], "sig");
        if key["kty"] == "RSA" {
            assert_eq!(key["alg"], "RS256");
            assert_eq!(key["e"], "AQAB");
        } else {
            assert_eq!(key["kty"], "EC", "{key}");
            assert_eq!(key["alg"], "ES256");
            assert_eq!(key["crv"], "P-256");
            for coordinate in ["x", "y"] {
                let bytes = URL_SAFE_NO_PAD.decode(key[coordinate].as_str().unwrap()).unwrap();
                assert_eq!(bytes.len(), 32, "{key}");
            }
        }
    }

    let path = auth_path(&web.id, WEB_REDIRECT, "openid email", "&nonce=n-0S6_WzA2Mj");
    let code = param(&authorize(&mut browser, &path).await, "code").unwrap();
    let tokens = exchange(&env, &web, &code, WEB_REDIRECT, None).await;
    let id_token = text(&tokens.json, "id_token");
    let access = text(&tokens.json, "access_token");
    let (header, claims) = verify_rs256(&id_token, &keys);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], env.base.as_str());
    assert_eq!(claims["aud"], web.id.as_str());
    assert_eq!(claims["azp"], web.id.as_str());
    assert_eq!(claims["sub"], tessera_domain::accounts::subject(&account.id));
    assert_eq!(claims["email"], "ann@example.test");
    assert_eq!(claims["email_verified"], true, "a JSON boolean");
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["iat"], crate::support::T0);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    assert!(claims["auth_time"].is_i64());
    assert!(claims.get("hd").is_none());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access.as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]));

    // Tokeninfo decodes it too, with the header's kid.
    let info = get_json(&env.url(&format!("/oauth2/v3/tokeninfo?id_token={id_token}")), None).await;
    assert_eq!(info.status, 200, "{}", info.json);
    assert_eq!(info.json["aud"], web.id.as_str());
    assert_eq!(info.json["kid"], header["kid"]);
    // A tampered token is refused.
    let mut parts: Vec<&str> = id_token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(
            &serde_json::json!({"iss": env.base, "aud": "x", "exp": crate::support::T0 + 100}),
        )
        .unwrap(),
    );
    parts[1] = &forged;
    let bad =
        get_json(&env.url(&format!("/oauth2/v3/tokeninfo?id_token={}", parts.join("."))), None)
            .await;
    assert_eq!(bad.status, 400);

    // Google's X.509 map: the RSA kids (what ID tokens are signed with), each a self-signed
    // certificate over the same modulus.
    let v1 = get_json(&env.url("/oauth2/v1/certs"), None).await;
    assert_eq!(v1.status, 200);
    assert!(v1.headers["cache-control"].to_str().unwrap().contains("max-age=3600"));
    let map = v1.json.as_object().unwrap();
    assert_eq!(map.len(), rsa.len());
    for key in &rsa {
        let pem = map[key["kid"].as_str().unwrap()].as_str().unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
        let body: String = pem.lines().filter(|it| !it.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
        let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
        assert!(
            der.windows(n.len()).any(|w| w == n.as_slice()),
            "the certificate holds the JWK's key"
        );
    }

    // After a rotation the old key stays published and the new next key is there before it signs.
    tessera_domain::keys::rotate(env.ctx(), &Actor::Cli).await.unwrap();
    let rotated = get_json(&env.url("/oauth2/v3/certs"), None).await;
    let kids: Vec<&str> = rotated.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|it| it["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 6, "each algorithm: retired, active, next");
    assert!(kids.contains(&header["kid"].as_str().unwrap()), "retired key still published");
    let info = get_json(&env.url(&format!("/oauth2/v3/tokeninfo?id_token={id_token}")), None).await;
    assert_eq!(info.status, 200, "tokens signed before the rotation still verify");
}

/// A compact JWS taken apart for a check that shares nothing with the server's code: its header
/// and claims, the published key its `kid` names, the signed bytes and the signature.
fn split_jws<'k>(token: &str, keys: &'k [Value]) -> (Value, Value, &'k Value, String, Vec<u8>) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let kid = header["kid"].as_str().expect("kid in the header");
    let key = keys.iter().find(|it| it["kid"] == kid).expect("kid is published");
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    (header, claims, key, format!("{}.{}", parts[0], parts[1]), sig)
}

/// RS256: the key comes from the JWKS as modulus and exponent and aws-lc-rs checks the PKCS#1
/// v1.5 signature.
fn verify_rs256(token: &str, keys: &[Value]) -> (Value, Value) {
    let (header, claims, key, signed, sig) = split_jws(token, keys);
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(key["e"].as_str().unwrap()).unwrap();
    let public = aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e };
    public
        .verify(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &sig)
        .expect("signature verifies against the published key");
    (header, claims)
}

/// ES256: the point comes from the JWK's `x` and `y` and aws-lc-rs checks the fixed-length ECDSA
/// signature.
fn verify_es256(token: &str, keys: &[Value]) -> (Value, Value) {
    let (header, claims, key, signed, sig) = split_jws(token, keys);
    assert_eq!(key["crv"], "P-256");
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(key["y"].as_str().unwrap()).unwrap());
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        &point,
    )
    .verify(signed.as_bytes(), &sig)
    .expect("signature verifies against the published key");
    (header, claims)
}

#[tokio::test]
async fn client_secret_basic_is_form_decoded_and_wrong_secrets_are_401() {
    let (env, mut browser, _, web) = setup().await;
    let secret = web.secret.clone().unwrap();
    let code = param(
        &authorize(&mut browser, &auth_path(&web.id, WEB_REDIRECT, "email", "")).await,
        "code",
    )
    .unwrap();
    // Every character percent-encoded, as RFC 6749 §2.3.1 allows.
    let id = urlencode(&web.id);
    let encoded = urlencode(&secret);
    assert_ne!(id, web.id);
    let ok = post_form(
        &env.url("/o/oauth2/token"),
        Some((&id, &encoded)),
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", WEB_REDIRECT)],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.json);
    // client_secret_post works as well; a wrong secret is a 401 with a challenge.
    let wrong = post_form(
        &env.url("/o/oauth2/token"),
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "1/x"),
            ("client_id", &web.id),
            ("client_secret", "nope"),
        ],
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json["error"], "invalid_client");
    assert!(wrong.headers.contains_key("www-authenticate"));
    // Two methods at once are refused.
    let both = post_form(
        &env.url("/o/oauth2/token"),
        Some((&web.id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", "1/x"), ("client_secret", &secret)],
    )
    .await;
    assert_eq!(both.json["error"], "invalid_request");
    let unsupported = post_form(
        &env.url("/o/oauth2/token"),
        Some((&web.id, &secret)),
        &[("grant_type", "password")],
    )
    .await;
    assert_eq!(unsupported.json["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn cross_client_id_tokens_stay_inside_the_project() {
    let (env, mut browser, account, backend) = setup().await;
    let p = tessera_domain::projects::find_by_name(env.ctx(), "Photo Printer").await.unwrap();
    let app = client(&env, &p, ClientKind::Installed, "Phone app", &["http://127.0.0.1/cb"]).await;
    let other_project = project(&env, "Elsewhere", "ann@example.test").await;
    let stranger =
        client(&env, &other_project, ClientKind::Web, "Stranger", &["https://other.example/cb"])
            .await;
    let redirect = "http://127.0.0.1:40001/cb";
    let path = auth_path(
        &app.id,
        redirect,
        "openid email",
        &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"),
    );
    let code = param(&authorize(&mut browser, &path).await, "code").unwrap();
    let access =
        text(&exchange(&env, &app, &code, redirect, Some(VERIFIER)).await.json, "access_token");

    let trade = |audience: String| {
        let env_url = env.url("/token");
        let app_id = app.id.clone();
        let access = access.clone();
        async move {
            post_form(
                &env_url,
                None,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                    ("client_id", &app_id),
                    ("subject_token", &access),
                    ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
                    ("requested_token_type", "urn:ietf:params:oauth:token-type:id_token"),
                    ("audience", &audience),
                ],
            )
            .await
        }
    };
    let same = trade(backend.id.clone()).await;
    assert_eq!(same.status, 200, "{}", same.json);
    assert_eq!(same.json["issued_token_type"], "urn:ietf:params:oauth:token-type:id_token");
    let keys =
        get_json(&env.url("/oauth2/v3/certs"), None).await.json["keys"].as_array().unwrap().clone();
    let (_, claims) = verify_rs256(&text(&same.json, "id_token"), &keys);
    assert_eq!(claims["aud"], backend.id.as_str());
    assert_eq!(claims["azp"], app.id.as_str());
    assert_eq!(claims["sub"], tessera_domain::accounts::subject(&account.id));
    assert_eq!(claims["email"], "ann@example.test");

    let refused = trade(stranger.id.clone()).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json["error"], "invalid_target");
    let unknown = trade("nobody.apps.tessera".to_owned()).await;
    assert_eq!(unknown.json["error"], "invalid_target");

    // A grant to one client of the project counts for its siblings: no second consent page.
    let again = browser.get(&auth_path(&backend.id, WEB_REDIRECT, "openid email", "")).await;
    assert_eq!(again.status, 302, "{}", again.body);
    // ... but not for another project's clients.
    let other =
        browser.get(&auth_path(&stranger.id, "https://other.example/cb", "openid email", "")).await;
    assert_eq!(other.status, 200);
}

#[tokio::test]
async fn introspection_and_rfc7009_revocation_for_authenticated_clients() {
    let (env, mut browser, _, web) = setup().await;
    let secret = web.secret.clone().unwrap();
    let code = param(
        &authorize(
            &mut browser,
            &auth_path(&web.id, WEB_REDIRECT, "openid email", "&access_type=offline"),
        )
        .await,
        "code",
    )
    .unwrap();
    let tokens = exchange(&env, &web, &code, WEB_REDIRECT, None).await;
    let access = text(&tokens.json, "access_token");
    let refresh_token = text(&tokens.json, "refresh_token");

    let active =
        post_form(&env.url("/oauth2/introspect"), Some((&web.id, &secret)), &[("token", &access)])
            .await;
    assert_eq!(active.status, 200);
    assert_eq!(active.json["active"], true);
    assert_eq!(active.json["client_id"], web.id.as_str());
    assert_eq!(active.json["scope"], "email openid");
    assert_eq!(active.json["username"], "ann@example.test");
    let rt = post_form(
        &env.url("/oauth2/introspect"),
        Some((&web.id, &secret)),
        &[("token", &refresh_token)],
    )
    .await;
    assert_eq!(rt.json["token_type"], "refresh_token");
    let anonymous = post_form(&env.url("/oauth2/introspect"), None, &[("token", &access)]).await;
    assert_eq!(anonymous.status, 401);
    let other_project = project(&env, "Elsewhere", "ann@example.test").await;
    let stranger =
        client(&env, &other_project, ClientKind::Web, "Stranger", &["https://other.example/cb"])
            .await;
    let foreign = post_form(
        &env.url("/oauth2/introspect"),
        Some((&stranger.id, stranger.secret.as_deref().unwrap())),
        &[("token", &access)],
    )
    .await;
    assert_eq!(foreign.json, serde_json::json!({ "active": false }));
    // Another client may not revoke this client's token.
    let not_yours = post_form(
        &env.url("/revoke"),
        Some((&stranger.id, stranger.secret.as_deref().unwrap())),
        &[("token", &access)],
    )
    .await;
    assert_eq!(not_yours.status, 400);
    assert_eq!(get_json(&env.url("/oauth2/v3/userinfo"), Some(&access)).await.status, 200);

    let revoked = post_form(
        &env.url("/revoke"),
        Some((&web.id, &secret)),
        &[("token", &access), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(revoked.status, 200);
    let after =
        post_form(&env.url("/oauth2/introspect"), Some((&web.id, &secret)), &[("token", &access)])
            .await;
    assert_eq!(after.json, serde_json::json!({ "active": false }));
    let rt = post_form(
        &env.url("/oauth2/introspect"),
        Some((&web.id, &secret)),
        &[("token", &refresh_token)],
    )
    .await;
    assert_eq!(rt.json["active"], false, "revoking the access token revoked the grant");
    // RFC 7009: an authenticated client hears 200 for an already-invalid token.
    let again =
        post_form(&env.url("/revoke"), Some((&web.id, &secret)), &[("token", &access)]).await;
    assert_eq!(again.status, 200);
    // Google's form without client authentication: 400 for an unknown token.
    let google = post_form(&env.url("/o/oauth2/revoke"), None, &[("token", "ya29.unknown")]).await;
    assert_eq!(google.status, 400);
    assert_eq!(google.json["error"], "invalid_token");
}

#[tokio::test]
async fn account_page_revoke_invalidates_tokens_at_once() {
    let (env, mut browser, _, web) = setup().await;
    let secret = web.secret.clone().unwrap();
    let code = param(
        &authorize(&mut browser, &auth_path(&web.id, WEB_REDIRECT, "email", "")).await,
        "code",
    )
    .unwrap();
    let access = text(&exchange(&env, &web, &code, WEB_REDIRECT, None).await.json, "access_token");
    let page = browser.get("/account").await;
    assert!(page.body.contains("Photo Printer Web"), "connected apps show the client's name");
    let start = page.body.find("action=\"/account/apps/revoke\"").expect("a revoke form");
    let form = &page.body[start..];
    let id_start = form.find("name=\"grant\" value=\"").unwrap() + "name=\"grant\" value=\"".len();
    let grant_id = form[id_start..id_start + form[id_start..].find('"').unwrap()].to_owned();
    let res = browser
        .post(
            "/account/apps/revoke",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("grant", &grant_id)],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(get_json(&env.url("/oauth2/v3/userinfo"), Some(&access)).await.status, 401);
    let info = get_json(
        &env.url(&format!("/oauth2/v1/tokeninfo?access_token={}", urlencode(&access))),
        None,
    )
    .await;
    assert_eq!(info.status, 400);
    let intro =
        post_form(&env.url("/oauth2/introspect"), Some((&web.id, &secret)), &[("token", &access)])
            .await;
    assert_eq!(intro.json["active"], false);
}

#[tokio::test]
async fn hosted_domain_restricts_the_account_and_reaches_the_id_token() {
    let env = TestEnv::start().await;
    tessera_domain::accounts::add_domain(env.ctx(), "corp.example", &Actor::Cli).await.unwrap();
    let new = tessera_domain::accounts::NewAccount {
        email: "dee@corp.example".to_owned(),
        name: "Dee".to_owned(),
        domain: Some("corp.example".to_owned()),
        password: Some(PASSWORD.to_owned()),
        is_admin: false,
        state: tessera_store::AccountState::Active,
    };
    tessera_domain::accounts::create(env.ctx(), new, &Actor::Cli, "").await.unwrap();
    env.account("eve@example.test", PASSWORD).await;
    let p = project(&env, "P", "eve@example.test").await;
    let web = client(&env, &p, ClientKind::Web, "Corp tool", &[WEB_REDIRECT]).await;
    let mut browser = env.browser();
    browser.sign_in("eve@example.test", PASSWORD).await;
    let path = auth_path(&web.id, WEB_REDIRECT, "openid email", "&hd=corp.example");
    // Only a personal account is signed in: sign in with a corp account first.
    let first = browser.get(&path).await;
    assert_eq!(first.status, 302);
    assert!(
        first.location().starts_with("/accounts/ServiceLogin?add=1&continue="),
        "{}",
        first.location()
    );
    browser.sign_in("dee@corp.example", PASSWORD).await;
    let page = browser.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("dee@corp.example"));
    let answered = consent(&mut browser, &page, "allow").await;
    let code = param(answered.location(), "code").unwrap();
    let tokens = exchange(&env, &web, &code, WEB_REDIRECT, None).await;
    let keys =
        get_json(&env.url("/oauth2/v3/certs"), None).await.json["keys"].as_array().unwrap().clone();
    let (_, claims) = verify_rs256(&text(&tokens.json, "id_token"), &keys);
    assert_eq!(claims["hd"], "corp.example");
    assert_eq!(claims["email"], "dee@corp.example");
}

#[tokio::test]
async fn device_flow_polls_until_the_person_answers() {
    let (env, mut browser, account, web) = setup().await;
    let p = tessera_domain::projects::find_by_name(env.ctx(), "Photo Printer").await.unwrap();
    let tv = client(&env, &p, ClientKind::Device, "Living room TV", &[]).await;
    let start = |scope: &'static str| {
        let url = env.url("/o/oauth2/device/code");
        let id = tv.id.clone();
        async move { post_form(&url, None, &[("client_id", &id), ("scope", scope)]).await }
    };
    let poll = |device_code: String| {
        let url = env.url("/token");
        let id = tv.id.clone();
        async move {
            post_form(
                &url,
                None,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("client_id", &id),
                    ("device_code", &device_code),
                ],
            )
            .await
        }
    };
    let started = start("openid email").await;
    assert_eq!(started.status, 200, "{}", started.json);
    let device_code = text(&started.json, "device_code");
    let user_code = text(&started.json, "user_code");
    assert_eq!(user_code.len(), 9);
    assert!(user_code.chars().enumerate().all(|(i, c)| if i == 4 {
        c == '-'
    } else {
        c.is_ascii_uppercase()
    }));
    assert_eq!(started.json["verification_url"], env.url("/device"));
    assert_eq!(started.json["interval"], 5);
    assert_eq!(started.json["expires_in"], 1800);

    let pending = poll(device_code.clone()).await;
    assert_eq!(pending.status, 400);
    assert_eq!(pending.json["error"], "authorization_pending");
    assert_eq!(poll(device_code.clone()).await.json["error"], "slow_down");

    // The person: a wrong code first, then the right one typed in lower case.
    let page = browser.get(&format!("/device?user_code={}", user_code.to_lowercase())).await;
    assert_eq!(page.status, 200);
    let wrong = browser
        .post("/device", &[("csrf", &page.csrf()), ("authuser", "0"), ("user_code", "BBBB-BBBB")])
        .await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.body.contains("not valid"));
    let shown = browser
        .post(
            "/device",
            &[("csrf", &wrong.csrf()), ("authuser", "0"), ("user_code", &user_code.to_lowercase())],
        )
        .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.body.contains("Living room TV"));
    assert!(shown.body.contains("See your email address"));
    let allowed = browser
        .post(
            "/device/approve",
            &[
                ("csrf", &shown.csrf()),
                ("request", &shown.input("request").unwrap()),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(allowed.status, 200);
    assert!(allowed.body.contains("Done."), "{}", allowed.body);

    env.clock.advance(5);
    let tokens = poll(device_code.clone()).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert!(tokens.json["refresh_token"].is_string());
    let keys =
        get_json(&env.url("/oauth2/v3/certs"), None).await.json["keys"].as_array().unwrap().clone();
    let (_, claims) = verify_rs256(&text(&tokens.json, "id_token"), &keys);
    assert_eq!(claims["aud"], tv.id.as_str());
    assert_eq!(claims["sub"], tessera_domain::accounts::subject(&account.id));
    let me =
        get_json(&env.url("/oauth2/v3/userinfo"), Some(&text(&tokens.json, "access_token"))).await;
    assert_eq!(me.json["email"], "ann@example.test");
    env.clock.advance(5);
    assert_eq!(
        poll(device_code).await.json["error"],
        "invalid_grant",
        "a device code redeems once"
    );
    // The user code is spent too.
    let page = browser.get("/device").await;
    let again = browser
        .post("/device", &[("csrf", &page.csrf()), ("authuser", "0"), ("user_code", &user_code)])
        .await;
    assert_eq!(again.status, 400);

    // Denied.
    let denied_start = start("email").await;
    let denied_code = text(&denied_start.json, "device_code");
    let page = browser.get("/device").await;
    let shown = browser
        .post(
            "/device",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("user_code", &text(&denied_start.json, "user_code")),
            ],
        )
        .await;
    browser
        .post(
            "/device/approve",
            &[
                ("csrf", &shown.csrf()),
                ("request", &shown.input("request").unwrap()),
                ("decision", "deny"),
            ],
        )
        .await;
    env.clock.advance(5);
    assert_eq!(poll(denied_code).await.json["error"], "access_denied");

    // Expired.
    let late = text(&start("email").await.json, "device_code");
    env.clock.advance(1801);
    assert_eq!(poll(late).await.json["error"], "expired_token");

    // Only device clients start the flow.
    let refused = post_form(
        &env.url("/o/oauth2/device/code"),
        Some((&web.id, web.secret.as_deref().unwrap())),
        &[("scope", "email")],
    )
    .await;
    assert_eq!(refused.json["error"], "unauthorized_client");
}

/// Signs an RS256 JWT with a PKCS#8 PEM key, independently of the server's code.
fn sign_assertion(pem: &str, kid: Option<&str>, claims: &Value) -> String {
    let body: String = pem.lines().filter(|it| !it.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
    let pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    let header = match kid {
        Some(kid) => serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": kid }),
        None => serde_json::json!({ "alg": "RS256", "typ": "JWT" }),
    };
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0u8; pair.public_modulus_len()];
    pair.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[tokio::test]
async fn service_accounts_trade_signed_assertions_once() {
    let env = TestEnv::start().await;
    env.account("ops@example.test", PASSWORD).await;
    let service = tessera_domain::services::NewService {
        name: "push".to_owned(),
        display_name: "Push".to_owned(),
        scopes: vec!["https://push.example/".to_owned()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    tessera_domain::services::add(env.ctx(), service, &Actor::Cli).await.unwrap();
    let p = project(&env, "Backend", "ops@example.test").await;
    let sa = client(&env, &p, ClientKind::ServiceAccount, "Sender", &[]).await;
    assert!(sa.secret.is_none());
    let (kid, pem) = clients::add_key(env.ctx(), &sa.id, &Actor::Cli).await.unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let t0 = crate::support::T0;
    let claims = |jti: &str, aud: &str, exp: i64| {
        serde_json::json!({
            "iss": sa.id, "scope": "https://push.example/", "aud": aud,
            "iat": t0, "exp": exp, "jti": jti,
        })
    };
    let grant = |assertion: String| {
        let url = env.url("/o/oauth2/token");
        async move {
            post_form(
                &url,
                None,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &assertion),
                ],
            )
            .await
        }
    };
    let google_aud = "https://oauth2.googleapis.com/token";
    let first = sign_assertion(&pem, Some(&kid), &claims("j1", google_aud, t0 + 3600));
    let ok = grant(first.clone()).await;
    assert_eq!(ok.status, 200, "{}", ok.json);
    assert_eq!(ok.json["token_type"], "Bearer");
    assert_eq!(ok.json["scope"], "https://push.example/");
    assert!(ok.json.get("refresh_token").is_none());
    let access = text(&ok.json, "access_token");
    let info = get_json(
        &env.url(&format!("/oauth2/v1/tokeninfo?access_token={}", urlencode(&access))),
        None,
    )
    .await;
    assert_eq!(info.json["issued_to"], sa.id.as_str());
    assert!(info.json.get("email").is_none(), "no person behind it");

    // The same assertion (same jti) again: refused.
    let replay = grant(first).await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json["error"], "invalid_grant");
    assert_eq!(replay.json["error_description"], "The assertion was already used.");
    let replay_new_signature =
        grant(sign_assertion(&pem, None, &claims("j1", google_aud, t0 + 3600))).await;
    assert_eq!(replay_new_signature.json["error"], "invalid_grant", "the jti is what counts");
    // Our own token URL is a fine audience too; a foreign one is not.
    let ours =
        grant(sign_assertion(&pem, None, &claims("j2", &env.url("/token"), t0 + 3600))).await;
    assert_eq!(ours.status, 200, "{}", ours.json);
    let foreign =
        grant(sign_assertion(&pem, None, &claims("j3", "https://evil.example/token", t0 + 3600)))
            .await;
    assert_eq!(foreign.json["error"], "invalid_grant");
    let too_long = grant(sign_assertion(&pem, None, &claims("j4", google_aud, t0 + 3601))).await;
    assert_eq!(too_long.json["error"], "invalid_grant");
    // Another key signs nothing for this account.
    let (_, other_pem) = {
        let other = client(&env, &p, ClientKind::ServiceAccount, "Other", &[]).await;
        clients::add_key(env.ctx(), &other.id, &Actor::Cli).await.unwrap()
    };
    let forged =
        grant(sign_assertion(&other_pem, None, &claims("j5", google_aud, t0 + 3600))).await;
    assert_eq!(forged.json["error"], "invalid_grant");
    env.clock.advance(3601);
    let expired = grant(sign_assertion(&pem, None, &claims("j6", google_aud, t0 + 3600))).await;
    assert_eq!(expired.json["error"], "invalid_grant");

    // private_key_jwt client authentication with the same key, for client_credentials.
    let now = t0 + 3601;
    let client_assertion = |jti: &str| {
        sign_assertion(
            &pem,
            Some(&kid),
            &serde_json::json!({ "iss": sa.id, "sub": sa.id, "aud": env.url("/token"), "iat": now, "exp": now + 300, "jti": jti }),
        )
    };
    let form = |assertion: String| {
        let url = env.url("/token");
        let id = sa.id.clone();
        async move {
            post_form(
                &url,
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "https://push.example/"),
                    ("client_id", &id),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                ],
            )
            .await
        }
    };
    let assertion = client_assertion("c1");
    let cc = form(assertion.clone()).await;
    assert_eq!(cc.status, 200, "{}", cc.json);
    let cc_token = text(&cc.json, "access_token");
    let replayed = form(assertion).await;
    assert_eq!(replayed.status, 401);
    assert_eq!(replayed.json["error"], "invalid_client");
    // A service account cannot skip authentication by naming itself.
    let bare = post_form(
        &env.url("/token"),
        None,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "https://push.example/"),
            ("client_id", &sa.id),
        ],
    )
    .await;
    assert_eq!(bare.status, 401);
    // Deleting the service account ends its grant-less tokens at once.
    let live =
        get_json(&env.url(&format!("/tokeninfo?access_token={}", urlencode(&cc_token))), None)
            .await;
    assert_eq!(live.status, 200);
    clients::delete(env.ctx(), &sa.id, &Actor::Cli).await.unwrap();
    let dead =
        get_json(&env.url(&format!("/tokeninfo?access_token={}", urlencode(&cc_token))), None)
            .await;
    assert_eq!(dead.status, 400);
}

#[tokio::test]
async fn developer_console_manages_projects_and_clients() {
    let env = TestEnv::start().await;
    env.account("dev@example.test", PASSWORD).await;
    env.account("other@example.test", PASSWORD).await;
    let mut browser = env.browser();
    let unsigned = browser.get("/console").await;
    assert_eq!(unsigned.status, 302);
    assert!(unsigned.location().starts_with("/accounts/ServiceLogin?continue="));
    browser.sign_in("dev@example.test", PASSWORD).await;
    let page = browser.get("/console").await;
    assert_eq!(page.status, 200);
    let created = browser
        .post(
            "/console/projects",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("name", "Gallery")],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let page = browser.get("/console").await;
    assert!(page.body.contains("Gallery (not verified)"));
    let project = page.input("project").expect("a new-client form for the project");
    let forged = browser
        .post(
            "/console/clients",
            &[
                ("csrf", "x"),
                ("authuser", "0"),
                ("project", &project),
                ("kind", "web"),
                ("name", "Web"),
            ],
        )
        .await;
    assert_eq!(forged.status, 400, "CSRF is checked");
    let bad = browser
        .post(
            "/console/clients",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("project", &project),
                ("kind", "web"),
                ("name", "Web"),
                ("redirect_uris", "http://evil.example/cb"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("https"), "{}", bad.body);
    let made = browser
        .post(
            "/console/clients",
            &[
                ("csrf", &bad.csrf()),
                ("authuser", "0"),
                ("project", &project),
                ("kind", "web"),
                ("name", "Gallery web"),
                ("redirect_uris", "https://gallery.example/cb\nhttps://gallery.example/cb2"),
            ],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let start = made.body.find("<pre id=\"revealed\">").unwrap() + "<pre id=\"revealed\">".len();
    let secret = made.body[start..start + made.body[start..].find('<').unwrap()].to_owned();
    let client_id = made.input("client").unwrap();
    let stored = clients::load(env.ctx(), &client_id).await.unwrap().unwrap();
    assert_eq!(
        stored.settings.redirect_uris,
        ["https://gallery.example/cb", "https://gallery.example/cb2"]
    );
    let presented = tessera_proto_oauth2::client_auth::Presented {
        client_id: client_id.clone(),
        method: tessera_proto_oauth2::client_auth::Method::Post { secret: secret.clone() },
    };
    assert!(
        clients::authenticate(env.ctx(), Some(&presented)).await.is_ok(),
        "the shown secret works"
    );
    let page = browser.get("/console").await;
    assert!(page.body.contains(&client_id));
    assert!(!page.body.contains(&secret), "the secret is shown once");

    let rotated = browser
        .post(
            "/console/clients/rotate",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("client", &client_id)],
        )
        .await;
    assert_eq!(rotated.status, 200);
    assert!(rotated.body.contains("New client secret"));
    assert!(
        clients::authenticate(env.ctx(), Some(&presented)).await.is_err(),
        "the old secret stops"
    );
    let saved = browser
        .post(
            "/console/clients/redirects",
            &[
                ("csrf", &rotated.csrf()),
                ("authuser", "0"),
                ("client", &client_id),
                ("redirect_uris", "https://gallery.example/only"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303);
    let stored = clients::load(env.ctx(), &client_id).await.unwrap().unwrap();
    assert_eq!(stored.settings.redirect_uris, ["https://gallery.example/only"]);

    // Someone else cannot touch it.
    let mut other = env.browser();
    other.sign_in("other@example.test", PASSWORD).await;
    let theirs = other.get("/console").await;
    assert!(!theirs.body.contains(&client_id));
    let denied = other
        .post(
            "/console/clients/delete",
            &[("csrf", &theirs.csrf()), ("authuser", "0"), ("client", &client_id)],
        )
        .await;
    assert_eq!(denied.status, 404);
    assert!(clients::load(env.ctx(), &client_id).await.unwrap().is_some());

    // Consent-screen branding: the product name, homepage and support address reach the consent page.
    let page = browser.get("/console").await;
    let bad_home = browser
        .post(
            "/console/projects/branding",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("project", &project),
                ("product_name", "Gallery"),
                ("homepage", "javascript:alert(1)"),
                ("support_email", ""),
                ("logo_url", ""),
            ],
        )
        .await;
    assert_eq!(bad_home.status, 400);
    let branded = browser
        .post(
            "/console/projects/branding",
            &[
                ("csrf", &bad_home.csrf()),
                ("authuser", "0"),
                ("project", &project),
                ("product_name", "Gallery Deluxe"),
                ("homepage", "https://gallery.example/about"),
                ("support_email", "help@gallery.example"),
                ("logo_url", "https://gallery.example/logo.png"),
            ],
        )
        .await;
    assert_eq!(branded.status, 303, "{}", branded.body);
    let consent_page =
        browser.get(&auth_path(&client_id, "https://gallery.example/only", "email", "")).await;
    assert_eq!(consent_page.status, 200, "{}", consent_page.body);
    assert!(consent_page.body.contains("Gallery Deluxe wants to access your account"));
    assert!(consent_page.body.contains("href=\"https://gallery.example/about\""));
    assert!(consent_page.body.contains("help@gallery.example"));
    assert!(
        consent_page.body.contains("src=\"https://gallery.example/logo.png\""),
        "{}",
        consent_page.body
    );
    let csp = consent_page.headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(
        csp.contains("img-src 'self' data: https:") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(consent_page.body.contains("has not been verified"));
    tessera_domain::projects::set_verified(env.ctx(), "Gallery", true, &Actor::Cli).await.unwrap();
    let verified =
        browser.get(&auth_path(&client_id, "https://gallery.example/only", "email", "")).await;
    assert!(!verified.body.contains("has not been verified"));
    assert!(verified.body.contains("verified project Gallery"));

    let page = browser.get("/console").await;
    let deleted = browser
        .post(
            "/console/clients/delete",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("client", &client_id)],
        )
        .await;
    assert_eq!(deleted.status, 303);
    assert!(clients::load(env.ctx(), &client_id).await.unwrap().is_none());
}

#[tokio::test]
async fn jwt_access_tokens_verify_offline_and_still_die_with_their_grant() {
    let (env, mut browser, account, _) = setup().await;
    let p = tessera_domain::projects::find_by_name(env.ctx(), "Photo Printer").await.unwrap();
    let new = NewClient {
        kind: ClientKind::Web,
        name: "API gateway".to_owned(),
        redirect_uris: vec!["https://gw.example/cb".to_owned()],
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: true,
    };
    let created = clients::create(env.ctx(), &p, new, &Actor::Cli).await.unwrap();
    let gw = App { id: created.client.record.client_id, secret: created.secret };
    let code = param(
        &authorize(&mut browser, &auth_path(&gw.id, "https://gw.example/cb", "openid email", ""))
            .await,
        "code",
    )
    .unwrap();
    let tokens = exchange(&env, &gw, &code, "https://gw.example/cb", None).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    let access = text(&tokens.json, "access_token");
    let keys =
        get_json(&env.url("/oauth2/v3/certs"), None).await.json["keys"].as_array().unwrap().clone();
    let (header, claims) = verify_es256(&access, &keys);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(claims["iss"], env.base.as_str());
    assert_eq!(claims["client_id"], gw.id.as_str());
    assert_eq!(claims["sub"], tessera_domain::accounts::subject(&account.id));
    assert_eq!(claims["scope"], "email openid");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    let (_, id_claims) = verify_rs256(&text(&tokens.json, "id_token"), &keys);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access.as_bytes());
    assert_eq!(id_claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]));

    assert_eq!(get_json(&env.url("/oauth2/v3/userinfo"), Some(&access)).await.status, 200);
    let caller = tessera_domain::caller::resolve(
        env.ctx(),
        &tessera_domain::caller::Presented::Bearer(access.clone()),
        &tessera_domain::caller::RequestFacts::default(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(caller.account_id.as_deref(), Some(account.id.as_str()));
    assert_eq!(caller.client_id.as_deref(), Some(gw.id.as_str()));
    // A token with a forged payload never resolves.
    let mut parts: Vec<String> = access.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD
        .encode(serde_json::json!({"iss": env.base, "exp": crate::support::T0 + 60}).to_string());
    let forged = tessera_domain::caller::resolve(
        env.ctx(),
        &tessera_domain::caller::Presented::Bearer(parts.join(".")),
        &tessera_domain::caller::RequestFacts::default(),
    )
    .await
    .unwrap();
    assert!(forged.is_err());

    // Revoked: our endpoints refuse at once, though the signature stays valid until exp.
    let revoked =
        get_json(&env.url(&format!("/o/oauth2/revoke?token={}", urlencode(&access))), None).await;
    assert_eq!(revoked.status, 200);
    assert_eq!(get_json(&env.url("/oauth2/v3/userinfo"), Some(&access)).await.status, 401);
    let info =
        get_json(&env.url(&format!("/tokeninfo?access_token={}", urlencode(&access))), None).await;
    assert_eq!(info.status, 400);
    verify_es256(&access, &keys);
}

#[tokio::test]
async fn implicit_and_form_post_only_for_clients_that_allow_them() {
    let (env, mut browser, account, web) = setup().await;
    let p = tessera_domain::projects::find_by_name(env.ctx(), "Photo Printer").await.unwrap();
    let new = NewClient {
        kind: ClientKind::Web,
        name: "Single page".to_owned(),
        redirect_uris: vec!["https://spa.example/cb".to_owned()],
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: true,
        jwt_access_tokens: false,
    };
    let spa =
        clients::create(env.ctx(), &p, new, &Actor::Cli).await.unwrap().client.record.client_id;
    // A client without the setting is refused, in the fragment.
    let refused = browser
        .get(&format!(
            "/o/oauth2/auth?response_type=token&client_id={}&redirect_uri={}&scope=email&state=s1",
            urlencode(&web.id),
            urlencode(WEB_REDIRECT)
        ))
        .await;
    assert_eq!(refused.status, 302);
    assert!(
        refused.location().starts_with("https://app.example/cb#error=unauthorized_client"),
        "{}",
        refused.location()
    );

    let path = format!(
        "/o/oauth2/auth?response_type={}&client_id={}&redirect_uri={}&scope={}&state=s2&nonce=abc",
        urlencode("id_token token"),
        urlencode(&spa),
        urlencode("https://spa.example/cb"),
        urlencode("openid email")
    );
    let location = authorize(&mut browser, &path).await;
    let (base, fragment) = location.split_once('#').expect("tokens travel in the fragment");
    assert_eq!(base, "https://spa.example/cb");
    assert!(!base.contains("access_token"));
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(fragment.as_bytes()).into_owned().collect();
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("token_type"), "Bearer");
    assert_eq!(get("expires_in"), "3600");
    assert_eq!(get("state"), "s2");
    assert_eq!(get("iss"), env.base);
    let access = get("access_token");
    let keys =
        get_json(&env.url("/oauth2/v3/certs"), None).await.json["keys"].as_array().unwrap().clone();
    let (_, claims) = verify_rs256(&get("id_token"), &keys);
    assert_eq!(claims["nonce"], "abc");
    assert_eq!(claims["sub"], tessera_domain::accounts::subject(&account.id));
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access.as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]));
    assert_eq!(get_json(&env.url("/oauth2/v3/userinfo"), Some(&access)).await.status, 200);
    // Never in the query.
    let query = browser.get(&format!("{path}&response_mode=query")).await;
    assert_eq!(query.status, 302);
    assert!(query.location().contains("error=invalid_request"));

    // form_post: a page that posts the code to the redirect URI.
    let posted = browser
        .get(&format!("{}&response_mode=form_post", auth_path(&web.id, WEB_REDIRECT, "email", "")))
        .await;
    let page = if posted.status == 200 && posted.body.contains("/o/oauth2/approval") {
        consent(&mut browser, &posted, "allow").await
    } else {
        posted
    };
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("<form method=\"post\" action=\"https://app.example/cb\">"),
        "{}",
        page.body
    );
    // The page submits itself: its one script is allowed by hash, and no other script is.
    assert!(page.body.contains("<script>document.forms[0].submit();</script>"));
    let csp = page.headers.get("content-security-policy").unwrap().to_str().unwrap();
    let allowed = base64::engine::general_purpose::STANDARD
        .encode(tessera_crypto::digest::sha256(b"document.forms[0].submit();"));
    assert!(csp.contains(&format!("script-src 'sha256-{allowed}'")), "{csp}");
    let code = page.input("code").expect("the code is a hidden field");
    assert_eq!(page.input("state").as_deref(), Some("xyz"));
    assert_eq!(page.input("iss").as_deref(), Some(env.base.as_str()));
    assert_eq!(exchange(&env, &web, &code, WEB_REDIRECT, None).await.status, 200);
}

/// A relying party written in the Python standard library (tests/it/interop/oidc_client.py) runs
/// the whole code flow against a live server and checks the ID token with its own RS256 code.
#[tokio::test]
async fn python_stdlib_relying_party_completes_the_code_flow() {
    let (env, _browser, account, web) = setup().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/interop/oidc_client.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args([
            &env.base,
            &web.id,
            web.secret.as_deref().unwrap(),
            WEB_REDIRECT,
            "ann@example.test",
            PASSWORD,
        ])
        .output()
        .await
        .expect("python3 runs the interop client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["ok"], true);
    assert_eq!(result["sub"], tessera_domain::accounts::subject(&account.id));
    assert_eq!(result["email"], "ann@example.test");
}

#[tokio::test]
async fn an_eleventh_refresh_token_retires_the_oldest() {
    let (env, mut browser, _, web) = setup().await;
    let path = auth_path(&web.id, WEB_REDIRECT, "email", "&access_type=offline");
    let mut refresh_tokens = Vec::new();
    for i in 0..11 {
        let location = if i == 0 {
            authorize(&mut browser, &path).await
        } else {
            browser.get(&path).await.location().to_owned()
        };
        let code = param(&location, "code").unwrap();
        let tokens = exchange(&env, &web, &code, WEB_REDIRECT, None).await;
        refresh_tokens.push(text(&tokens.json, "refresh_token"));
        env.clock.advance(1);
    }
    assert_eq!(refresh(&env, &web, &refresh_tokens[0]).await.json["error"], "invalid_grant");
    for token in &refresh_tokens[1..] {
        assert_eq!(refresh(&env, &web, token).await.status, 200);
    }
}

#[tokio::test]
async fn prompt_login_and_max_age_ask_for_a_fresh_sign_in() {
    let (env, mut browser, _, web) = setup().await;
    let first = authorize(&mut browser, &auth_path(&web.id, WEB_REDIRECT, "openid", "")).await;
    assert!(param(&first, "code").is_some());
    env.clock.advance(1000);
    let path = auth_path(&web.id, WEB_REDIRECT, "openid", "&max_age=600");
    let none = browser.get(&format!("{path}&prompt=none")).await;
    assert_eq!(param(none.location(), "error").as_deref(), Some("login_required"));
    let stale = browser.get(&path).await;
    assert_eq!(stale.status, 302);
    let to = stale.location().to_owned();
    assert!(
        to.starts_with("/accounts/ServiceLogin?add=1&Email=ann%40example%2Etest&continue="),
        "{to}"
    );
    let continue_url = param(&format!("http://x{to}"), "continue").unwrap();
    assert!(!continue_url.contains("max_age"), "{continue_url}");
    let signed = browser.sign_in_to("ann@example.test", PASSWORD, &continue_url).await;
    assert_eq!(signed.status, 303);
    let back = browser.get(signed.location()).await;
    assert_eq!(back.status, 302, "granted before: straight back with a code");
    let code = param(back.location(), "code").unwrap();
    let tokens = exchange(&env, &web, &code, WEB_REDIRECT, None).await;
    let keys =
        get_json(&env.url("/oauth2/v3/certs"), None).await.json["keys"].as_array().unwrap().clone();
    let (_, claims) = verify_rs256(&text(&tokens.json, "id_token"), &keys);
    assert_eq!(claims["auth_time"], crate::support::T0 + 1000, "the fresh sign-in");
    // A recent enough sign-in passes max_age; prompt=login always asks.
    assert_eq!(browser.get(&path).await.status, 302);
    assert!(param(browser.get(&path).await.location(), "code").is_some());
    let login = browser.get(&auth_path(&web.id, WEB_REDIRECT, "openid", "&prompt=login")).await;
    assert!(login.location().starts_with("/accounts/ServiceLogin?add=1"), "{}", login.location());
}

#[test]
fn admin_cli_adds_lists_rotates_and_deletes_clients() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("TESSERA_DATABASE_URL")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str::<Value>(&stdout).unwrap_or(Value::String(stdout))
    };
    run(
        &["admin", "account", "add", "dev@example.test", "--password-stdin"],
        Some("password-123\n"),
    );
    run(&["admin", "project", "add", "Demo", "--owner", "dev@example.test"], None);
    let added = run(
        &[
            "admin",
            "client",
            "add",
            "--project",
            "Demo",
            "--kind",
            "web",
            "--name",
            "Demo web",
            "--redirect-uri",
            "https://demo.example/cb",
            "--redirect-uri",
            "https://demo.example/cb2",
            "--json",
        ],
        None,
    );
    let client_id = added["client_id"].as_str().unwrap().to_owned();
    let secret = added["client_secret"].as_str().unwrap().to_owned();
    assert!(tessera_proto_oauth2::is_unreserved(&client_id), "{client_id}");
    assert!(tessera_proto_oauth2::is_unreserved(&secret));
    assert_eq!(added["redirect_uris"].as_array().unwrap().len(), 2);
    let native = run(
        &[
            "admin",
            "client",
            "add",
            "--project",
            "Demo",
            "--kind",
            "installed",
            "--name",
            "CLI",
            "--redirect-uri",
            "urn:ietf:wg:oauth:2.0:oob",
            "--json",
        ],
        None,
    );
    assert!(native.get("client_secret").is_none(), "installed clients are public");
    let listed = run(&["admin", "client", "list", "--project", "Demo", "--json"], None);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let shown = run(&["admin", "client", "show", &client_id, "--json"], None);
    assert_eq!(shown["name"], "Demo web");
    assert!(shown.get("client_secret").is_none(), "the secret is never shown again");
    let sa = run(
        &[
            "admin",
            "client",
            "add",
            "--project",
            "Demo",
            "--kind",
            "service_account",
            "--name",
            "Robot",
            "--json",
        ],
        None,
    );
    let key =
        run(&["admin", "client", "add-key", sa["client_id"].as_str().unwrap(), "--json"], None);
    assert!(key["private_key"].as_str().unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
    let shown_sa =
        run(&["admin", "client", "show", sa["client_id"].as_str().unwrap(), "--json"], None);
    assert_eq!(shown_sa["key_ids"][0], key["private_key_id"]);
    assert!(!shown_sa.to_string().contains("PRIVATE KEY"), "the private key is not kept");
    run(&["admin", "client", "delete", sa["client_id"].as_str().unwrap(), "--json"], None);
    let rotated = run(&["admin", "client", "rotate-secret", &client_id, "--json"], None);
    assert_ne!(rotated["client_secret"].as_str().unwrap(), secret);
    run(&["admin", "project", "verify", "Demo", "--json"], None);
    run(&["admin", "client", "delete", &client_id, "--json"], None);
    let listed = run(&["admin", "client", "list", "--project", "Demo", "--json"], None);
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

/// The demo's web client completes a code flow, and `tessera token verify` (the client library's
/// verifier, fetching keys over HTTP) accepts the ID token for that audience and refuses others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_client_flow_and_token_verify_command() {
    let dir = tempfile::tempdir().unwrap();
    let raw = crate::support::test_config(dir.path());
    let env =
        TestEnv::start_raw(raw, dir, tessera::StartOptions { demo: true, ..Default::default() })
            .await;
    let demo = env.server.as_ref().unwrap().report.demo.clone().unwrap();
    // The command checks expiry against the wall clock, so the server's clock is set to it.
    #[allow(clippy::disallowed_methods)]
    let wall =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    env.clock.set(wall as i64);
    let secret = demo.web_client_secret.clone().expect("the first seeding shows the secret");
    let mut browser = env.browser();
    assert_eq!(browser.sign_in(&demo.email, &demo.password).await.status, 303);
    let location = authorize(
        &mut browser,
        &auth_path(&demo.web_client_id, &demo.web_redirect_uri, "openid email", "&nonce=n-1"),
    )
    .await;
    let code = param(&location, "code").unwrap();
    let app = App { id: demo.web_client_id.clone(), secret: Some(secret) };
    let reply = exchange(&env, &app, &code, &demo.web_redirect_uri, None).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let id_token = text(&reply.json, "id_token");

    let verify = |audience: String| {
        let base = env.base.clone();
        let id_token = id_token.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
                .args(["token", "verify", &id_token, "--audience", &audience, "--issuer", &base])
                .output()
                .unwrap()
        })
    };
    let ok = verify(demo.web_client_id.clone()).await.unwrap();
    assert!(
        ok.status.success(),
        "{} {}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    let claims: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(claims["valid"], true);
    assert_eq!(claims["email"], demo.email.as_str());
    assert_eq!(claims["aud"][0], demo.web_client_id.as_str());
    let wrong = verify("someone-else".to_owned()).await.unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    let answer: Value = serde_json::from_slice(&wrong.stdout).unwrap();
    assert_eq!(answer["valid"], false);

    // Seeding again finds the same clients and shows no secret.
    let again = tessera::demo::seed(env.ctx()).await.unwrap();
    assert_eq!(again.web_client_id, demo.web_client_id);
    assert_eq!(again.device_client_id, demo.device_client_id);
    assert!(again.web_client_secret.is_none());
}

/// A service account's own key (made by `openssl`, uploaded as a public key) signs assertions;
/// once removed, it no longer does.
#[tokio::test]
async fn service_accounts_upload_and_remove_their_own_keys() {
    let env = TestEnv::start().await;
    env.account("keys@example.test", PASSWORD).await;
    let service = tessera_domain::services::NewService {
        name: "store".to_owned(),
        display_name: "Store".to_owned(),
        scopes: vec!["https://store.example/".to_owned()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    tessera_domain::services::add(env.ctx(), service, &Actor::Cli).await.unwrap();
    let p = project(&env, "Keys", "keys@example.test").await;
    let sa = client(&env, &p, ClientKind::ServiceAccount, "Uploader", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("key.pem");
    let public = dir.path().join("pub.pem");
    let ok = |status: std::process::ExitStatus| assert!(status.success());
    ok(std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&private)
        .status()
        .expect("the openssl command"));
    ok(std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap());
    let public_pem = std::fs::read_to_string(&public).unwrap();
    let private_pem = std::fs::read_to_string(&private).unwrap();
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));

    let kid = clients::upload_key(env.ctx(), &sa.id, &public_pem, &Actor::Cli).await.unwrap();
    assert!(matches!(
        clients::upload_key(env.ctx(), &sa.id, &public_pem, &Actor::Cli).await,
        Err(tessera_domain::Error::Conflict(_))
    ));
    assert!(
        matches!(
            clients::upload_key(env.ctx(), &sa.id, &private_pem, &Actor::Cli).await,
            Err(tessera_domain::Error::Invalid(_))
        ),
        "a private key is refused"
    );

    let t0 = crate::support::T0;
    let claims = |jti: &str| serde_json::json!({ "iss": sa.id, "scope": "https://store.example/", "aud": env.url("/o/oauth2/token"), "iat": t0, "exp": t0 + 600, "jti": jti });
    let grant = |assertion: String| {
        let url = env.url("/o/oauth2/token");
        async move {
            post_form(
                &url,
                None,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &assertion),
                ],
            )
            .await
        }
    };
    let accepted = grant(sign_assertion(&private_pem, Some(&kid), &claims("u1"))).await;
    assert_eq!(accepted.status, 200, "{}", accepted.json);

    clients::remove_key(env.ctx(), &sa.id, &kid, &Actor::Cli).await.unwrap();
    let refused = grant(sign_assertion(&private_pem, Some(&kid), &claims("u2"))).await;
    assert_eq!(refused.status, 400, "{}", refused.json);
    assert_eq!(refused.json["error"], "invalid_grant");
    assert!(matches!(
        clients::remove_key(env.ctx(), &sa.id, &kid, &Actor::Cli).await,
        Err(tessera_domain::Error::NotFound)
    ));
}

#[tokio::test]
async fn ui_locales_picks_the_first_supported_language_for_sign_in_and_consent() {
    let env = TestEnv::start().await;
    env.account("bo@example.test", PASSWORD).await;
    let p = project(&env, "P", "bo@example.test").await;
    let web = client(&env, &p, ClientKind::Web, "App", &[WEB_REDIRECT]).await;
    let mut browser = env.browser();
    // Spanish is not served; German is the first language that is.
    let path = auth_path(&web.id, WEB_REDIRECT, "openid", "&ui_locales=es%20de");
    let first = browser.get(&path).await;
    assert_eq!(first.status, 302);
    let to = first.location().to_owned();
    assert!(to.starts_with("/accounts/ServiceLogin?hl=de&continue="), "{to}");
    let form = browser.get(&to).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("<html lang=\"de\">"), "{}", form.body);
    assert!(form.body.contains("<h1>Anmelden</h1>"), "{}", form.body);
    let continue_url = form.input("continue").unwrap();
    let signed = browser
        .post(
            "/accounts/ServiceLoginAuth",
            &[
                ("csrf", &form.csrf()),
                ("continue", &continue_url),
                ("hl", &form.input("hl").unwrap()),
                ("Email", "bo@example.test"),
                ("Passwd", PASSWORD),
            ],
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let back = signed.location().strip_prefix(&env.base).unwrap().to_owned();
    let page = browser.get(&back).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<html lang=\"de\">"), "{}", page.body);
    assert!(page.body.contains("App möchte auf Ihr Konto zugreifen"), "{}", page.body);
    assert!(page.body.contains("Diese App wurde nicht verifiziert"), "{}", page.body);
    assert!(page.body.contains(">Zulassen</button>"), "{}", page.body);
    let answered = consent(&mut browser, &page, "allow").await;
    assert_eq!(answered.status, 303, "{}", answered.body);
    assert!(param(answered.location(), "code").is_some(), "{}", answered.location());
    // Without `ui_locales` the same page is English.
    let english = browser.get(&auth_path(&web.id, WEB_REDIRECT, "openid", "&prompt=consent")).await;
    assert!(english.body.contains("<html lang=\"en\">"), "{}", english.body);
    assert!(english.body.contains(">Allow</button>"), "{}", english.body);
}
