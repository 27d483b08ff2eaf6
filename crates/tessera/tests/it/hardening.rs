//! Modern OAuth hardening: pushed authorization requests (RFC 9126), signed request objects
//! (RFC 9101) and DPoP (RFC 9449), each with its refusals: a `request_uri` used twice, by another
//! client or late, parameters beside it, unsigned or tampered request objects.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera_domain::audit::Actor;
use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};

use crate::support::{Browser, Page, TestEnv, urlencode};

const PASSWORD: &str = "password-1";
const REDIRECT: &str = "https://app.example/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub struct App {
    pub id: String,
    pub secret: String,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
}

async fn reply(res: reqwest::Response) -> Reply {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Reply { status, headers, json: serde_json::from_str(&text).unwrap_or(Value::Null) }
}

pub async fn post_form(url: &str, basic: Option<(&str, &str)>, fields: &[(&str, &str)]) -> Reply {
    let mut req = reqwest::Client::new().post(url).form(fields);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    reply(req.send().await.unwrap()).await
}

/// A signed-in browser, and two web clients of one project.
pub async fn setup_with(
    edit: impl FnOnce(&mut tessera::config::RawConfig),
) -> (TestEnv, Browser, App, App) {
    let env = TestEnv::with_config(edit).await;
    env.account("ann@example.test", PASSWORD).await;
    let project =
        tessera_domain::projects::create(env.ctx(), "Printer", "ann@example.test", &Actor::Cli)
            .await
            .unwrap();
    let mut apps = Vec::new();
    for name in ["Printer Web", "Other Web"] {
        let new = NewClient {
            kind: ClientKind::Web,
            name: name.to_owned(),
            redirect_uris: vec![REDIRECT.to_owned()],
            android_package: None,
            android_cert_sha1: None,
            allow_implicit: false,
            jwt_access_tokens: false,
        };
        let created = clients::create(env.ctx(), &project, new, &Actor::Cli).await.unwrap();
        apps.push(App { id: created.client.record.client_id, secret: created.secret.unwrap() });
    }
    let mut browser = env.browser();
    let signed = browser.sign_in("ann@example.test", PASSWORD).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let other = apps.pop().unwrap();
    let app = apps.pop().unwrap();
    (env, browser, app, other)
}

pub async fn setup() -> (TestEnv, Browser, App, App) {
    setup_with(|_| ()).await
}

fn request_fields<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email"),
        ("state", "st-1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    fields.extend_from_slice(extra);
    fields
}

async fn push(env: &TestEnv, app: &App, extra: &[(&str, &str)]) -> Reply {
    post_form(&env.url("/oauth2/par"), Some((&app.id, &app.secret)), &request_fields(extra)).await
}

fn param(location: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

async fn consent(browser: &mut Browser, page: &Page) -> Page {
    assert_eq!(page.status, 200, "{}", page.body);
    let request = page.input("request").expect("the consent page carries the request");
    browser
        .post(
            "/o/oauth2/approval",
            &[("csrf", &page.csrf()), ("request", &request), ("decision", "allow")],
        )
        .await
}

fn by_uri(client_id: &str, request_uri: &str) -> String {
    format!(
        "/o/oauth2/auth?client_id={}&request_uri={}",
        urlencode(client_id),
        urlencode(request_uri)
    )
}

pub async fn exchange(env: &TestEnv, app: &App, code: &str, dpop: Option<&str>) -> Reply {
    let mut req = reqwest::Client::new()
        .post(env.url("/token"))
        .basic_auth(&app.id, Some(&app.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ]);
    if let Some(proof) = dpop {
        req = req.header("DPoP", proof);
    }
    reply(req.send().await.unwrap()).await
}

/// Runs a pushed request through the consent page; the code.
pub async fn pushed_code(env: &TestEnv, browser: &mut Browser, app: &App) -> String {
    let pushed = push(env, app, &[]).await;
    assert_eq!(pushed.status, 201, "{}", pushed.json);
    let request_uri = pushed.json["request_uri"].as_str().unwrap().to_owned();
    let page = browser.get(&by_uri(&app.id, &request_uri)).await;
    if page.status == 302 {
        // Consent remembered from an earlier run.
        return param(page.location(), "code").unwrap();
    }
    let answered = consent(browser, &page).await;
    assert_eq!(answered.status, 303, "{}", answered.body);
    param(answered.location(), "code").unwrap()
}

#[tokio::test]
async fn a_pushed_request_runs_once_for_its_own_client_only() {
    let (env, mut browser, app, other) = setup().await;
    let discovery = reqwest::get(env.url("/.well-known/openid-configuration")).await.unwrap();
    let discovery: Value = discovery.json().await.unwrap();
    assert_eq!(discovery["pushed_authorization_request_endpoint"], env.url("/oauth2/par"));

    let pushed = push(&env, &app, &[]).await;
    assert_eq!(pushed.status, 201, "{}", pushed.json);
    assert_eq!(pushed.json["expires_in"], 60);
    assert_eq!(pushed.headers["cache-control"], "no-store");
    let request_uri = pushed.json["request_uri"].as_str().unwrap().to_owned();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));

    // Another client cannot run it, and nothing may be sent beside it.
    let stolen = browser.get(&by_uri(&other.id, &request_uri)).await;
    assert_eq!(stolen.status, 400, "{}", stolen.body);
    assert!(stolen.body.contains("invalid_request_uri"), "{}", stolen.body);
    let extra = browser.get(&format!("{}&scope=profile", by_uri(&app.id, &request_uri))).await;
    assert_eq!(extra.status, 400);
    assert!(extra.body.contains("scope"), "{}", extra.body);

    let page = browser.get(&by_uri(&app.id, &request_uri)).await;
    let answered = consent(&mut browser, &page).await;
    assert_eq!(answered.status, 303, "{}", answered.body);
    let location = answered.location().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(param(&location, "state").as_deref(), Some("st-1"));
    let code = param(&location, "code").unwrap();
    let tokens = exchange(&env, &app, &code, None).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);

    // Used once: the second run is refused.
    let again = browser.get(&by_uri(&app.id, &request_uri)).await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("invalid_request_uri"), "{}", again.body);
}

#[tokio::test]
async fn a_pushed_request_lives_sixty_seconds() {
    let (env, mut browser, app, _) = setup().await;
    let pushed = push(&env, &app, &[]).await;
    let request_uri = pushed.json["request_uri"].as_str().unwrap().to_owned();
    env.clock.advance(61);
    let late = browser.get(&by_uri(&app.id, &request_uri)).await;
    assert_eq!(late.status, 400);
    assert!(late.body.contains("invalid_request_uri"), "{}", late.body);
}

#[tokio::test]
async fn the_par_endpoint_authenticates_and_checks_like_the_others() {
    let (env, _browser, app, other) = setup().await;
    let url = env.url("/oauth2/par");
    let wrong = post_form(&url, Some((&app.id, "wrong")), &request_fields(&[])).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json["error"], "invalid_client");
    let anonymous = post_form(&url, None, &request_fields(&[])).await;
    assert_eq!(anonymous.status, 401);
    let nested = push(&env, &app, &[("request_uri", "urn:x")]).await;
    assert_eq!(nested.status, 400);
    assert_eq!(nested.json["error"], "invalid_request");
    let mut bad_redirect = request_fields(&[]);
    bad_redirect[1] = ("redirect_uri", "https://evil.example/cb");
    let refused = post_form(&url, Some((&app.id, &app.secret)), &bad_redirect).await;
    assert_eq!(refused.status, 400, "{}", refused.json);
    assert_eq!(refused.json["error"], "invalid_request");
    let disagree = push(&env, &app, &[("client_id", &other.id)]).await;
    assert_eq!(disagree.status, 401, "{}", disagree.json);
    let scope = push(&env, &app, &[("response_type", "code")]).await;
    assert_eq!(scope.status, 400, "a repeated parameter: {}", scope.json);
    for reply in [wrong, anonymous, nested, refused, disagree, scope] {
        assert_ne!(reply.status, 500);
    }
}

#[tokio::test]
async fn par_can_be_required_per_client_and_per_server() {
    let (env, mut browser, app, other) = setup().await;
    let mut client = clients::load(env.ctx(), &app.id).await.unwrap().unwrap();
    client.settings.require_pushed_authorization_requests = true;
    client.record.settings = serde_json::to_string(&client.settings).unwrap();
    env.ctx().store.projects().update_client(&client.record).await.unwrap();
    let plain = |id: &str| {
        format!(
            "/o/oauth2/auth?response_type=code&client_id={}&redirect_uri={}&scope=email&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256",
            urlencode(id),
            urlencode(REDIRECT)
        )
    };
    let refused = browser.get(&plain(&app.id)).await;
    assert_eq!(refused.status, 302, "{}", refused.body);
    assert_eq!(param(refused.location(), "error").as_deref(), Some("invalid_request"));
    let allowed = browser.get(&plain(&other.id)).await;
    assert_eq!(allowed.status, 200, "the other client may still send plain requests");
    pushed_code(&env, &mut browser, &app).await;

    let (env, mut browser, _, other) = setup_with(|raw| raw.oauth2.require_par = true).await;
    let refused = browser.get(&plain(&other.id)).await;
    assert_eq!(refused.status, 302, "{}", refused.body);
    assert_eq!(param(refused.location(), "error").as_deref(), Some("invalid_request"));
    let discovery = reqwest::get(env.url("/.well-known/openid-configuration")).await.unwrap();
    let discovery: Value = discovery.json().await.unwrap();
    assert_eq!(discovery["require_pushed_authorization_requests"], true);
}

/// A parallel burst of approvals of one pushed request: exactly one gets a code.
#[tokio::test]
async fn a_pushed_request_buys_one_answer_under_a_burst() {
    let (env, _browser, app, _) = setup().await;
    let pushed = push(&env, &app, &[]).await;
    let request_uri = pushed.json["request_uri"].as_str().unwrap().to_owned();
    let secret = request_uri.strip_prefix("urn:ietf:params:oauth:request_uri:").unwrap();
    let digest = tessera_crypto::digest::token_digest(secret);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let ctx = env.ctx().clone();
            let digest = digest.clone();
            tokio::spawn(async move {
                tessera_domain::oauth2::par::consume(&ctx, &digest).await.unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 1);
}

// ---------------------------------------------------------------------------------------------
// Signed request objects (RFC 9101)
// ---------------------------------------------------------------------------------------------

/// Registers a fresh RS256 key on `app`; its PKCS#8 DER and kid.
async fn register_key(env: &TestEnv, app: &App) -> (aws_lc_rs::signature::RsaKeyPair, String) {
    let key =
        tessera_crypto::keys::SigningKey::generate(tessera_crypto::keys::KeyAlg::Rs256).unwrap();
    let public = key.public_key_der();
    let kid = "request-key-1".to_owned();
    let mut client = clients::load(env.ctx(), &app.id).await.unwrap().unwrap();
    client.settings.keys.push(clients::ClientKey {
        kid: kid.clone(),
        alg: "RS256".to_owned(),
        public_der: base64::engine::general_purpose::STANDARD.encode(&public),
        created_at: crate::support::T0,
    });
    client.record.settings = serde_json::to_string(&client.settings).unwrap();
    env.ctx().store.projects().update_client(&client.record).await.unwrap();
    let pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(key.pkcs8_der()).unwrap();
    (pair, kid)
}

fn sign_rs256(pair: &aws_lc_rs::signature::RsaKeyPair, header: &Value, claims: &Value) -> String {
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
async fn signed_request_objects_are_the_request_and_unsigned_ones_are_refused() {
    let (env, mut browser, app, _) = setup().await;
    let (pair, kid) = register_key(&env, &app).await;
    let claims = json!({
        "iss": app.id, "aud": env.base, "client_id": app.id,
        "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid email",
        "state": "from-object", "code_challenge": CHALLENGE, "code_challenge_method": "S256",
        "exp": crate::support::T0 + 300,
    });
    let object = sign_rs256(&pair, &json!({ "alg": "RS256", "kid": kid }), &claims);
    // The object's state wins over the one sent beside it.
    let path = format!(
        "/o/oauth2/auth?client_id={}&state=outside&request={}",
        urlencode(&app.id),
        urlencode(&object)
    );
    let page = browser.get(&path).await;
    let answered = consent(&mut browser, &page).await;
    assert_eq!(answered.status, 303, "{}", answered.body);
    assert_eq!(param(answered.location(), "state").as_deref(), Some("from-object"));

    // Inside a pushed request too.
    let pushed =
        post_form(&env.url("/oauth2/par"), Some((&app.id, &app.secret)), &[("request", &object)])
            .await;
    assert_eq!(pushed.status, 201, "{}", pushed.json);

    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({ "alg": "none" }).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut tampered = object.clone();
    let dot = tampered.rfind('.').unwrap();
    tampered.replace_range(dot + 1..dot + 5, "AAAA");
    let stranger =
        tessera_crypto::keys::SigningKey::generate(tessera_crypto::keys::KeyAlg::Rs256).unwrap();
    let stranger = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(stranger.pkcs8_der()).unwrap();
    let foreign = sign_rs256(&stranger, &json!({ "alg": "RS256" }), &claims);
    let expired = sign_rs256(
        &pair,
        &json!({ "alg": "RS256", "kid": kid }),
        &json!({ "response_type": "code", "exp": crate::support::T0 - 1 }),
    );
    for bad in [unsigned, tampered, foreign, expired] {
        let path =
            format!("/o/oauth2/auth?client_id={}&request={}", urlencode(&app.id), urlencode(&bad));
        let page = browser.get(&path).await;
        assert_eq!(page.status, 400, "{}", page.body);
        assert!(page.body.contains("invalid_request_object"), "{}", page.body);
        let pushed =
            post_form(&env.url("/oauth2/par"), Some((&app.id, &app.secret)), &[("request", &bad)])
                .await;
        assert_eq!(pushed.status, 400, "{}", pushed.json);
        assert_eq!(pushed.json["error"], "invalid_request_object");
    }
}

// ---------------------------------------------------------------------------------------------
// DPoP (RFC 9449)
// ---------------------------------------------------------------------------------------------

use tessera_client::dpop::DpopSigner;

const NOW: u64 = crate::support::T0 as u64;

async fn get_with(url: &str, authorization: &str, proof: Option<&str>) -> Reply {
    let mut req = reqwest::Client::new().get(url).header("Authorization", authorization);
    if let Some(proof) = proof {
        req = req.header("DPoP", proof);
    }
    reply(req.send().await.unwrap()).await
}

#[tokio::test]
async fn dpop_bound_tokens_need_their_proof_at_every_endpoint() {
    let (env, mut browser, app, _) = setup().await;
    let discovery = reqwest::get(env.url("/.well-known/openid-configuration")).await.unwrap();
    let discovery: Value = discovery.json().await.unwrap();
    assert_eq!(discovery["dpop_signing_alg_values_supported"], json!(["ES256", "EdDSA", "RS256"]));

    let key = DpopSigner::generate().unwrap();
    let code = pushed_code(&env, &mut browser, &app).await;
    let proof = key.proof("POST", &env.url("/token"), None, None, NOW).unwrap();
    let tokens = exchange(&env, &app, &code, Some(&proof)).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert_eq!(tokens.json["token_type"], "DPoP");
    let token = tokens.json["access_token"].as_str().unwrap().to_owned();

    // userinfo: the proof with ath, never as a plain bearer token, never a proof used twice.
    let userinfo = env.url("/oauth2/v3/userinfo");
    let bearer = get_with(&userinfo, &format!("Bearer {token}"), None).await;
    assert_eq!(bearer.status, 401);
    let proof = key.proof("GET", &userinfo, Some(&token), None, NOW).unwrap();
    let ok = get_with(&userinfo, &format!("DPoP {token}"), Some(&proof)).await;
    assert_eq!(ok.status, 200, "{}", ok.json);
    assert_eq!(ok.json["email"], "ann@example.test");
    let replayed = get_with(&userinfo, &format!("DPoP {token}"), Some(&proof)).await;
    assert_eq!(replayed.status, 401, "a proof is accepted once");
    let no_ath = key.proof("GET", &userinfo, None, None, NOW).unwrap();
    assert_eq!(get_with(&userinfo, &format!("DPoP {token}"), Some(&no_ath)).await.status, 401);
    let stranger = DpopSigner::generate().unwrap();
    let foreign = stranger.proof("GET", &userinfo, Some(&token), None, NOW).unwrap();
    assert_eq!(get_with(&userinfo, &format!("DPoP {token}"), Some(&foreign)).await.status, 401);
    let wrong_url = key.proof("GET", &env.url("/oauth2/v2/userinfo"), Some(&token), None, NOW);
    let wrong_url = get_with(&userinfo, &format!("DPoP {token}"), Some(&wrong_url.unwrap())).await;
    assert_eq!(wrong_url.status, 401);

    // tokeninfo answers the binding; as a bearer token it is refused.
    let tokeninfo = env.url("/oauth2/v3/tokeninfo");
    let proof = key.proof("GET", &tokeninfo, Some(&token), None, NOW).unwrap();
    let info = get_with(&tokeninfo, &format!("DPoP {token}"), Some(&proof)).await;
    assert_eq!(info.status, 200, "{}", info.json);
    assert_eq!(info.json["cnf"]["jkt"], key.jkt());
    assert_eq!(get_with(&tokeninfo, &format!("Bearer {token}"), None).await.status, 400);

    // Introspection tells the resource server the binding.
    let introspected = post_form(
        &env.url("/oauth2/introspect"),
        Some((&app.id, &app.secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!(introspected.json["active"], true, "{}", introspected.json);
    assert_eq!(introspected.json["token_type"], "DPoP");
    assert_eq!(introspected.json["cnf"]["jkt"], key.jkt());

    // The caller check for resource servers.
    let api = "https://api.example/photos?page=2";
    let ask = |authorization: String, dpop: Option<String>| {
        let url = env.url("/accounts/caller");
        async move {
            let body = json!({ "authorization": authorization, "method": "GET", "url": api, "dpop": dpop });
            reply(reqwest::Client::new().post(url).json(&body).send().await.unwrap()).await
        }
    };
    let proof = key.proof("GET", api, Some(&token), None, NOW).unwrap();
    let found = ask(format!("DPoP {token}"), Some(proof)).await;
    assert_eq!(found.status, 200, "{}", found.json);
    assert_eq!(found.json["client_id"], app.id);
    assert_eq!(ask(format!("Bearer {token}"), None).await.status, 401);
    assert_eq!(ask(format!("DPoP {token}"), None).await.status, 401);
}

/// A token request carrying a fresh proof of `key` (the form is the grant's).
async fn token_with_proof(env: &TestEnv, key: &DpopSigner, fields: &[(&str, &str)]) -> Reply {
    let proof = key.proof("POST", &env.url("/token"), None, None, NOW).unwrap();
    let req = reqwest::Client::new().post(env.url("/token")).header("DPoP", proof).form(fields);
    reply(req.send().await.unwrap()).await
}

/// A DPoP-bound token at tokeninfo and the caller check: refused as a plain bearer token,
/// accepted with the `DPoP` scheme and a proof carrying `ath`.
async fn bound_to(env: &TestEnv, key: &DpopSigner, token: &str) {
    let tokeninfo = env.url("/oauth2/v3/tokeninfo");
    assert_eq!(get_with(&tokeninfo, &format!("Bearer {token}"), None).await.status, 400);
    let proof = key.proof("GET", &tokeninfo, Some(token), None, NOW).unwrap();
    let info = get_with(&tokeninfo, &format!("DPoP {token}"), Some(&proof)).await;
    assert_eq!(info.status, 200, "{}", info.json);
    assert_eq!(info.json["cnf"]["jkt"], key.jkt());
    let api = "https://api.example/v1/things";
    let ask = |authorization: String, dpop: Option<String>| {
        let url = env.url("/accounts/caller");
        async move {
            let body = json!({ "authorization": authorization, "method": "GET", "url": api, "dpop": dpop });
            reply(reqwest::Client::new().post(url).json(&body).send().await.unwrap()).await
        }
    };
    assert_eq!(ask(format!("Bearer {token}"), None).await.status, 401);
    let proof = key.proof("GET", api, Some(token), None, NOW).unwrap();
    assert_eq!(ask(format!("DPoP {token}"), Some(proof)).await.status, 200);
}

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The device-code grant binds what it issues to the key of the redeeming poll's proof.
#[tokio::test]
async fn the_device_code_grant_binds_its_tokens_to_the_dpop_key() {
    let (env, mut browser, _, _) = setup().await;
    let project = tessera_domain::projects::find_by_name(env.ctx(), "Printer").await.unwrap();
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
    let tv = tv.client.record.client_id;
    let started = post_form(
        &env.url("/o/oauth2/device/code"),
        None,
        &[("client_id", &tv), ("scope", "email")],
    )
    .await;
    assert_eq!(started.status, 200, "{}", started.json);
    let device_code = started.json["device_code"].as_str().unwrap().to_owned();
    let user_code = started.json["user_code"].as_str().unwrap().to_owned();
    let page = browser.get(&format!("/device?user_code={user_code}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let shown = browser
        .post("/device", &[("csrf", &page.csrf()), ("authuser", "0"), ("user_code", &user_code)])
        .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let request = shown.input("request").unwrap();
    let allowed = browser
        .post(
            "/device/approve",
            &[("csrf", &shown.csrf()), ("request", &request), ("decision", "allow")],
        )
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);

    let key = DpopSigner::generate().unwrap();
    let fields = [("grant_type", DEVICE_GRANT), ("client_id", &tv), ("device_code", &device_code)];
    let tokens = token_with_proof(&env, &key, &fields).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert_eq!(tokens.json["token_type"], "DPoP");
    let token = tokens.json["access_token"].as_str().unwrap().to_owned();
    let userinfo = env.url("/oauth2/v3/userinfo");
    assert_eq!(get_with(&userinfo, &format!("Bearer {token}"), None).await.status, 401);
    let proof = key.proof("GET", &userinfo, Some(&token), None, NOW).unwrap();
    let me = get_with(&userinfo, &format!("DPoP {token}"), Some(&proof)).await;
    assert_eq!(me.status, 200, "{}", me.json);
    assert_eq!(me.json["email"], "ann@example.test");
    bound_to(&env, &key, &token).await;

    // The device is a public client: its refresh token is bound to the key as well.
    let refresh = tokens.json["refresh_token"].as_str().unwrap().to_owned();
    let fields = [("grant_type", "refresh_token"), ("client_id", &tv), ("refresh_token", &refresh)];
    let plain = post_form(&env.url("/token"), None, &fields).await;
    assert_eq!(plain.status, 400, "{}", plain.json);
    let stranger = DpopSigner::generate().unwrap();
    assert_eq!(token_with_proof(&env, &stranger, &fields).await.status, 400);
    let renewed = token_with_proof(&env, &key, &fields).await;
    assert_eq!(renewed.status, 200, "{}", renewed.json);
    assert_eq!(renewed.json["token_type"], "DPoP");
}

/// The service-account grant (RFC 7523) binds its access token to the proof's key.
#[tokio::test]
async fn the_jwt_bearer_grant_binds_its_token_to_the_dpop_key() {
    let (env, _, _, _) = setup().await;
    let service = tessera_domain::services::NewService {
        name: "push".to_owned(),
        display_name: "Push".to_owned(),
        scopes: vec!["https://push.example/".to_owned()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    tessera_domain::services::add(env.ctx(), service, &Actor::Cli).await.unwrap();
    let project = tessera_domain::projects::find_by_name(env.ctx(), "Printer").await.unwrap();
    let new = NewClient {
        kind: ClientKind::ServiceAccount,
        name: "Sender".to_owned(),
        redirect_uris: Vec::new(),
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    let sa = clients::create(env.ctx(), &project, new, &Actor::Cli).await.unwrap();
    let sa = sa.client.record.client_id;
    let (kid, pem) = clients::add_key(env.ctx(), &sa, &Actor::Cli).await.unwrap();
    let der: String = pem.lines().filter(|it| !it.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(der).unwrap();
    let pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    let t0 = crate::support::T0;
    let assertion = |jti: &str| {
        let claims = json!({
            "iss": sa, "scope": "https://push.example/", "aud": env.url("/token"),
            "iat": t0, "exp": t0 + 3600, "jti": jti,
        });
        sign_rs256(&pair, &json!({ "alg": "RS256", "typ": "JWT", "kid": kid }), &claims)
    };
    let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    let key = DpopSigner::generate().unwrap();
    let first = assertion("j1");
    let tokens =
        token_with_proof(&env, &key, &[("grant_type", grant), ("assertion", &first)]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert_eq!(tokens.json["token_type"], "DPoP");
    let token = tokens.json["access_token"].as_str().unwrap().to_owned();
    bound_to(&env, &key, &token).await;
    // Without a proof the grant still answers a bearer token, unbound.
    let plain = post_form(
        &env.url("/token"),
        None,
        &[("grant_type", grant), ("assertion", &assertion("j2"))],
    )
    .await;
    assert_eq!(plain.status, 200, "{}", plain.json);
    assert_eq!(plain.json["token_type"], "Bearer");
}

/// Sixteen userinfo calls carrying one proof at once: exactly one is answered (the store's
/// `insert_once` of the proof's `jti`), the others are refused.
#[tokio::test]
async fn a_burst_of_one_dpop_proof_is_accepted_exactly_once() {
    let (env, mut browser, app, _) = setup().await;
    let key = DpopSigner::generate().unwrap();
    let code = pushed_code(&env, &mut browser, &app).await;
    let proof = key.proof("POST", &env.url("/token"), None, None, NOW).unwrap();
    let tokens = exchange(&env, &app, &code, Some(&proof)).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    let token = tokens.json["access_token"].as_str().unwrap().to_owned();
    let userinfo = env.url("/oauth2/v3/userinfo");
    let proof = key.proof("GET", &userinfo, Some(&token), None, NOW).unwrap();
    let mut calls = Vec::new();
    for _ in 0..16 {
        let (url, authorization, proof) =
            (userinfo.clone(), format!("DPoP {token}"), proof.clone());
        calls.push(tokio::spawn(async move { get_with(&url, &authorization, Some(&proof)).await }));
    }
    let mut answered = 0;
    for call in calls {
        let done = call.await.unwrap();
        assert!(matches!(done.status, 200 | 401), "{}: {}", done.status, done.json);
        answered += usize::from(done.status == 200);
    }
    assert_eq!(answered, 1);
}

#[tokio::test]
async fn the_token_endpoint_refuses_bad_proofs_with_protocol_errors() {
    let (env, mut browser, app, _) = setup().await;
    let key = DpopSigner::generate().unwrap();
    let code = pushed_code(&env, &mut browser, &app).await;
    let url = env.url("/token");
    let bad = [
        key.proof("GET", &url, None, None, NOW).unwrap(),
        key.proof("POST", &env.url("/o/oauth2/token"), None, None, NOW).unwrap(),
        key.proof("POST", &url, None, None, NOW - 3600).unwrap(),
        key.proof("POST", &url, None, None, NOW + 3600).unwrap(),
        "not.a.proof".to_owned(),
        "e30.e30.".to_owned(),
    ];
    for proof in bad {
        let refused = exchange(&env, &app, &code, Some(&proof)).await;
        assert_eq!(refused.status, 400, "{proof}: {}", refused.json);
        assert_eq!(refused.json["error"], "invalid_dpop_proof", "{proof}");
    }
    // The code was left alone; a proof used once is not accepted again.
    let proof = key.proof("POST", &url, None, None, NOW).unwrap();
    assert_eq!(exchange(&env, &app, &code, Some(&proof)).await.status, 200);
    let code = pushed_code(&env, &mut browser, &app).await;
    let replayed = exchange(&env, &app, &code, Some(&proof)).await;
    assert_eq!(replayed.status, 400);
    assert_eq!(replayed.json["error"], "invalid_dpop_proof");
}

#[tokio::test]
async fn server_nonces_are_asked_for_and_accepted_on_any_node() {
    let (env, mut browser, app, _) = setup_with(|raw| raw.oauth2.dpop_nonce = true).await;
    let key = DpopSigner::generate().unwrap();
    let code = pushed_code(&env, &mut browser, &app).await;
    let url = env.url("/token");
    let first = key.proof("POST", &url, None, None, NOW).unwrap();
    let asked = exchange(&env, &app, &code, Some(&first)).await;
    assert_eq!(asked.status, 400, "{}", asked.json);
    assert_eq!(asked.json["error"], "use_dpop_nonce");
    let nonce = asked.headers["dpop-nonce"].to_str().unwrap().to_owned();
    let wrong = key.proof("POST", &url, None, Some("made-up"), NOW).unwrap();
    assert_eq!(exchange(&env, &app, &code, Some(&wrong)).await.json["error"], "use_dpop_nonce");
    let proof = key.proof("POST", &url, None, Some(&nonce), NOW).unwrap();
    let tokens = exchange(&env, &app, &code, Some(&proof)).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert_eq!(tokens.json["token_type"], "DPoP");
    // The nonce is derived from the shared key and the time: still good in the next period.
    env.clock.advance(tessera_domain::oauth2::dpop::NONCE_PERIOD_SECS);
    let late = crate::support::T0 as u64 + tessera_domain::oauth2::dpop::NONCE_PERIOD_SECS as u64;
    let code = pushed_code(&env, &mut browser, &app).await;
    let proof = key.proof("POST", &url, None, Some(&nonce), late).unwrap();
    assert_eq!(exchange(&env, &app, &code, Some(&proof)).await.status, 200);
}

/// A `request_uri` naming an address (RFC 9101 by reference) is never fetched: it is refused
/// before anything connects, so it cannot reach internal services; request objects naming key
/// URLs (`jku`, `x5u`) are verified with registered keys only.
#[tokio::test]
async fn request_uris_and_key_urls_never_make_the_server_fetch() {
    let (env, mut browser, app, _) = setup().await;
    let internal = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    internal.set_nonblocking(true).unwrap();
    let target = format!("http://{}/secret", internal.local_addr().unwrap());
    let page = browser.get(&by_uri(&app.id, &target)).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("invalid_request_uri"), "{}", page.body);
    let (pair, _) = register_key(&env, &app).await;
    let header = json!({ "alg": "RS256", "kid": "elsewhere", "jku": target, "x5u": target });
    let object = sign_rs256(&pair, &header, &json!({ "response_type": "code" }));
    let path =
        format!("/o/oauth2/auth?client_id={}&request={}", urlencode(&app.id), urlencode(&object));
    let page = browser.get(&path).await;
    assert_eq!(page.status, 400, "{}", page.body);
    let accepted = internal.accept();
    assert!(
        matches!(&accepted, Err(err) if err.kind() == std::io::ErrorKind::WouldBlock),
        "the server connected to {target}"
    );
}

/// oauth4webapi's entry file in `target/node` (installed by `cargo xtask ci`, or here when
/// missing); `None` when node or npm is absent.
#[allow(clippy::print_stderr)]
async fn oauth4webapi() -> Option<std::path::PathBuf> {
    let prefix = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/node");
    let entry = prefix.join("node_modules/oauth4webapi/build/index.js");
    if tokio::process::Command::new("node").arg("--version").output().await.is_err() {
        eprintln!("SKIPPED: oauth4webapi interop (node is absent)");
        return None;
    }
    if !entry.exists() {
        let out = tokio::process::Command::new("npm")
            .args(["install", "--silent", "--prefix"])
            .arg(&prefix)
            .arg("oauth4webapi")
            .output()
            .await;
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!("npm install oauth4webapi: {}", String::from_utf8_lossy(&out.stderr)),
            Err(_) => {
                eprintln!("SKIPPED: oauth4webapi interop (npm is absent)");
                return None;
            }
        }
    }
    Some(entry)
}

async fn run_node(entry: &std::path::Path, args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/par_dpop.mjs");
    let out = tokio::process::Command::new("node")
        .arg(script)
        .args(args)
        .env("OAUTH4WEBAPI", entry)
        .output()
        .await
        .expect("node runs the interop client");
    assert!(
        out.status.success(),
        "oauth4webapi {}: {}{}",
        args[0],
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An independent client (oauth4webapi) discovers the issuer, pushes a PKCE request, exchanges
/// the code with a DPoP proof and calls userinfo with the bound token.
#[tokio::test]
async fn oauth4webapi_runs_par_pkce_and_dpop() {
    let Some(entry) = oauth4webapi().await else { return };
    let (env, mut browser, app, _) = setup().await;
    // The library stamps its DPoP proofs and checks the ID token with the wall clock, so the
    // server's clock is set to it (and the browser signs in again at that time).
    #[allow(clippy::disallowed_methods)]
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    env.clock.set(wall.as_secs() as i64);
    let signed = browser.sign_in("ann@example.test", PASSWORD).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let issuer = env.url("");
    let common = [issuer.as_str(), app.id.as_str(), app.secret.as_str(), REDIRECT];
    let mut args = vec!["push"];
    args.extend_from_slice(&common);
    let pushed = run_node(&entry, &args).await;
    let authorize = pushed["authorize"].as_str().unwrap();
    let path = authorize.strip_prefix(issuer.trim_end_matches('/')).unwrap();
    let page = browser.get(path).await;
    let answered = consent(&mut browser, &page).await;
    assert_eq!(answered.status, 303, "{}", answered.body);
    let callback = answered.location().to_owned();

    let mut args = vec!["exchange"];
    args.extend_from_slice(&common);
    for field in ["verifier", "state", "nonce"] {
        args.push(pushed[field].as_str().unwrap());
    }
    args.insert(5, &callback);
    let done = run_node(&entry, &args).await;
    assert_eq!(done["token_type"].as_str().map(str::to_ascii_lowercase).as_deref(), Some("dpop"));
    assert_eq!(done["userinfo"]["email"], "ann@example.test", "{done}");
    assert_eq!(done["userinfo"]["sub"], done["sub"]);
}
