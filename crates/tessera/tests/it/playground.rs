//! The protocol playground (`/playground`) walked in headless Chromium, one walk per protocol:
//! each step is the playground's own request to this server's public endpoints, shown raw.

use fantoccini::Locator;
use tessera_domain::audit::Actor;

use crate::browser::Chrome;
use crate::support::TestEnv;

/// A developer with one project, signed in to Chromium.
async fn developer(env: &TestEnv, email: &str) -> Chrome {
    env.account(email, "password-1").await;
    tessera_domain::projects::create(env.ctx(), "Playthings", email, &Actor::Cli).await.unwrap();
    let chrome = Chrome::start().await;
    chrome.sign_in(&env.base, email, "password-1").await;
    chrome
}

/// A service whose scope the legacy protocols and client credentials can ask for.
async fn service(env: &TestEnv) -> String {
    let scope = "https://calendar.example.test/feeds/".to_owned();
    let new = tessera_domain::services::NewService {
        name: "cl".to_owned(),
        display_name: "Calendar".to_owned(),
        scopes: vec![scope.clone()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    tessera_domain::services::add(env.ctx(), new, &Actor::Cli).await.unwrap();
    scope
}

async fn texts(chrome: &Chrome, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for element in chrome.client.find_all(Locator::Css(css)).await.unwrap() {
        out.push(element.text().await.unwrap());
    }
    out
}

/// The raw requests and responses the page shows, in order.
async fn exchanges(chrome: &Chrome) -> Vec<(String, String)> {
    let requests = texts(chrome, "pre.request").await;
    let responses = texts(chrome, "pre.response").await;
    requests.into_iter().zip(responses).collect()
}

#[tokio::test]
async fn oauth2_code_flow_with_pkce_id_token_userinfo_caller_and_refresh() {
    let env = TestEnv::start().await;
    let scope = service(&env).await;
    let chrome = developer(&env, "dev@example.test").await;
    chrome.client.goto(&env.url("/playground")).await.unwrap();
    chrome.click_link("OAuth 2.0 and OpenID Connect").await;
    assert_eq!(chrome.path().await, "/playground/oauth2");
    chrome.click_button("Build the authorization URL").await;
    let text = chrome.text().await;
    assert!(text.contains("Created the web client \"Playground\""), "{text}");
    let url = chrome.client.find(Locator::Id("visit-url")).await.unwrap().text().await.unwrap();
    let url = url::Url::parse(&url).unwrap();
    assert_eq!(url.path(), "/o/oauth2/auth");
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["redirect_uri"], env.url("/playground/callback"));
    assert_eq!(query["scope"], "openid email profile");

    // The consent page every client gets, then back to the playground with a code.
    chrome.click_link("Open the authorization URL").await;
    assert_eq!(chrome.path().await, "/o/oauth2/auth");
    assert!(chrome.text().await.contains("Playground wants to access your account"));
    chrome.click_button("Allow").await;
    assert_eq!(chrome.path().await, "/playground/callback");
    let text = chrome.text().await;
    assert!(text.contains("The browser came back to") && text.contains("code=4"), "{text}");

    chrome.click_button("Exchange the code for tokens").await;
    let shown = exchanges(&chrome).await;
    let (request, response) = &shown[0];
    assert!(request.starts_with("POST /o/oauth2/token HTTP/1.1"), "{request}");
    assert!(request.contains("authorization: Basic "), "{request}");
    assert!(
        request.contains("grant_type=authorization_code") && request.contains("code_verifier=")
    );
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("\"access_token\"") && response.contains("\"id_token\""));
    assert!(response.contains("\"refresh_token\""), "{response}");
    let (request, response) = &shown[1];
    assert!(request.starts_with("GET /oauth2/v3/certs"), "{request}");
    assert!(response.contains("\"keys\""), "{response}");
    let header = chrome.client.find(Locator::Css("pre.jwt-header")).await.unwrap();
    let header: serde_json::Value = serde_json::from_str(&header.text().await.unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let claims = chrome.client.find(Locator::Css("pre.jwt-claims")).await.unwrap();
    let claims: serde_json::Value = serde_json::from_str(&claims.text().await.unwrap()).unwrap();
    assert_eq!(claims["email"], "dev@example.test");
    assert_eq!(claims["iss"], env.base.as_str());
    let verdict = chrome.client.find(Locator::Id("verdict")).await.unwrap().text().await.unwrap();
    assert!(verdict.starts_with("Signature valid against the key set at"), "{verdict}");

    chrome.click_button("Call userinfo").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.starts_with("GET /oauth2/v3/userinfo"), "{}", shown[0].0);
    assert!(shown[0].0.contains("authorization: Bearer ya29."), "{}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK") && shown[0].1.contains("dev@example.test"));

    chrome.click_button("Ask the caller check").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.starts_with("POST /accounts/caller"), "{}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains("\"protocol\":\"oauth2\""), "{}", shown[0].1);
    assert!(shown[0].1.contains("\"scopes\":[\"email\",\"openid\",\"profile\"]"));

    chrome.click_button("Refresh the access token").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.contains("grant_type=refresh_token"), "{}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK") && shown[0].1.contains("access_token"));
    chrome.click_button("Call userinfo").await;
    assert!(exchanges(&chrome).await[0].1.starts_with("HTTP/1.1 200 OK"));

    // Client credentials with the same client (its secret kept in the sealed flow, not reset).
    chrome.client.goto(&env.url("/playground/oauth2")).await.unwrap();
    chrome.fill("client_credentials-scope", &scope).await;
    chrome.click_button("Get a token with client credentials").await;
    let text = chrome.text().await;
    assert!(!text.contains("has a new secret"), "{text}");
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.contains("grant_type=client_credentials"), "{}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    chrome.click_button("Ask the caller check").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains(&scope), "{}", shown[0].1);
    chrome.close().await;
}

#[tokio::test]
async fn oauth2_device_flow_user_code_approval_and_polling() {
    let env = TestEnv::start().await;
    let chrome = developer(&env, "dev4@example.test").await;
    chrome.client.goto(&env.url("/playground/oauth2")).await.unwrap();
    chrome.click_button("Start the device flow").await;
    let text = chrome.text().await;
    assert!(text.contains("Created the device client \"Playground device\""), "{text}");
    let shown = exchanges(&chrome).await;
    let (request, response) = &shown[0];
    assert!(request.starts_with("POST /o/oauth2/device/code HTTP/1.1"), "{request}");
    assert!(request.contains("scope=openid+email+profile"), "{request}");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    let body: serde_json::Value =
        serde_json::from_str(&response[response.find("\n\n").unwrap()..]).unwrap();
    let user_code = body["user_code"].as_str().unwrap().to_owned();
    assert!(text.contains(&format!("enter the code {user_code}")), "{text}");
    assert!(text.contains(&env.url("/device")), "{text}");

    // Polling before the developer answers: pending, then too soon.
    chrome.click_button("Poll the token endpoint").await;
    let shown = exchanges(&chrome).await;
    assert!(
        shown[0].0.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code")
    );
    assert!(!shown[0].0.contains("authorization: Basic"), "a public client: {}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 400"), "{}", shown[0].1);
    assert!(shown[0].1.contains("authorization_pending"), "{}", shown[0].1);
    chrome.click_button("Poll the token endpoint").await;
    assert!(exchanges(&chrome).await[0].1.contains("slow_down"));

    // The developer approves the device in the browser, as its user would.
    chrome.click_link("Open the verification page").await;
    assert_eq!(chrome.path().await, "/device");
    chrome.click_button("Continue").await;
    assert!(chrome.text().await.contains("Playground device"));
    chrome.click_button("Allow").await;
    assert!(chrome.text().await.contains("Done."), "{}", chrome.text().await);

    // Back in the playground, the pending device code is polled again.
    chrome.client.goto(&env.url("/playground/oauth2")).await.unwrap();
    env.clock.advance(5);
    chrome.click_button("Poll the token endpoint").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains("\"id_token\"") && shown[0].1.contains("\"refresh_token\""));
    assert!(shown[1].0.starts_with("GET /oauth2/v3/certs"), "{}", shown[1].0);
    let claims = chrome.client.find(Locator::Css("pre.jwt-claims")).await.unwrap();
    let claims: serde_json::Value = serde_json::from_str(&claims.text().await.unwrap()).unwrap();
    assert_eq!(claims["email"], "dev4@example.test");
    let verdict = chrome.client.find(Locator::Id("verdict")).await.unwrap().text().await.unwrap();
    assert!(verdict.starts_with("Signature valid against the key set at"), "{verdict}");

    chrome.click_button("Call userinfo").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK") && shown[0].1.contains("dev4@example.test"));
    chrome.click_button("Refresh the access token").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.contains("grant_type=refresh_token") && shown[0].0.contains("client_id="));
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);

    // The device code redeemed once: the flow no longer offers to poll with it.
    chrome.client.goto(&env.url("/playground/oauth2")).await.unwrap();
    assert!(!chrome.text().await.contains("Poll the token endpoint"));
    chrome.close().await;
}

/// The anonymous consumer's client row belongs to the first administrator.
async fn administrator(env: &TestEnv) {
    let new = tessera_domain::accounts::NewAccount {
        email: "admin@example.test".to_owned(),
        name: "Admin".to_owned(),
        domain: None,
        password: Some("password-admin".to_owned()),
        is_admin: true,
        state: tessera_store::AccountState::Active,
    };
    tessera_domain::accounts::create(env.ctx(), new, &Actor::Cli, "").await.unwrap();
}

#[tokio::test]
async fn oauth1_request_token_authorize_access_token_and_signed_call() {
    let env = TestEnv::start().await;
    administrator(&env).await;
    let scope = service(&env).await;
    let chrome = developer(&env, "dev1@example.test").await;
    chrome.client.goto(&env.url("/playground")).await.unwrap();
    chrome.click_link("OAuth 1.0a").await;
    chrome.fill("start-scope", &scope).await;
    chrome.click_button("Get a request token").await;
    let shown = exchanges(&chrome).await;
    let (request, response) = &shown[0];
    assert!(request.starts_with("POST /accounts/OAuthGetRequestToken HTTP/1.1"), "{request}");
    assert!(request.contains("authorization: OAuth oauth_consumer_key=\"anonymous\""));
    assert!(request.contains("oauth_signature_method=\"HMAC-SHA1\""), "{request}");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("oauth_callback_confirmed=true"), "{response}");

    chrome.click_link("Open the authorization page").await;
    assert_eq!(chrome.path().await, "/accounts/OAuthAuthorizeToken");
    assert!(chrome.text().await.contains("tessera playground"));
    chrome.click_button("Allow").await;
    assert_eq!(chrome.path().await, "/playground/oauth1/callback");
    assert!(chrome.text().await.contains("oauth_verifier="));

    chrome.click_button("Get the access token").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.starts_with("POST /accounts/OAuthGetAccessToken"), "{}", shown[0].0);
    assert!(shown[0].0.contains("oauth_verifier=\""), "{}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains("oauth_token_secret="), "{}", shown[0].1);

    chrome.click_button("Make a signed call").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.starts_with("GET /accounts/AuthSubTokenInfo"), "{}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains("Target=anonymous"), "{}", shown[0].1);
    assert!(shown[1].0.starts_with("POST /accounts/caller"), "{}", shown[1].0);
    assert!(shown[1].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[1].1);
    assert!(shown[1].1.contains("\"protocol\":\"oauth1\""), "{}", shown[1].1);
    // A second signed call: a fresh nonce, accepted again.
    chrome.click_button("Make another signed call").await;
    assert!(exchanges(&chrome).await[1].1.starts_with("HTTP/1.1 200 OK"));
    chrome.close().await;
}

#[tokio::test]
async fn authsub_request_session_token_token_info_and_caller_check() {
    let env = TestEnv::start().await;
    let scope = service(&env).await;
    let chrome = developer(&env, "dev2@example.test").await;
    chrome.client.goto(&env.url("/playground")).await.unwrap();
    chrome.click_link("AuthSub").await;
    chrome.fill("start-scope", &scope).await;
    chrome.click_button("Build the AuthSubRequest URL").await;
    let url = chrome.client.find(Locator::Id("visit-url")).await.unwrap().text().await.unwrap();
    let url = url::Url::parse(&url).unwrap();
    assert_eq!(url.path(), "/accounts/AuthSubRequest");
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["next"], env.url("/playground/authsub/callback"));
    assert_eq!(query["session"], "1");

    chrome.click_link("Open the AuthSubRequest URL").await;
    assert_eq!(chrome.path().await, "/accounts/AuthSubRequest");
    chrome.click_button("Allow").await;
    assert_eq!(chrome.path().await, "/playground/authsub/callback");
    assert!(chrome.text().await.contains("token="));

    chrome.click_button("Exchange for a session token").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.starts_with("GET /accounts/AuthSubSessionToken"), "{}", shown[0].0);
    assert!(shown[0].0.contains("authorization: AuthSub token=\""), "{}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains("Token="), "{}", shown[0].1);

    chrome.click_button("Ask AuthSubTokenInfo").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains(&format!("Scope={scope}")), "{}", shown[0].1);
    assert!(shown[0].1.contains("Secure=false"), "{}", shown[0].1);

    chrome.click_button("Ask the caller check").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains("\"protocol\":\"authsub\""), "{}", shown[0].1);

    // The single-use token went with the exchange: the flow no longer offers it.
    let mut browser = crate::support::Browser::new(&env.base);
    let page = browser.get("/playground/authsub/callback?token=x").await;
    assert_eq!(page.status, 302, "not signed in: to the sign-in page");
    chrome.close().await;
}

#[tokio::test]
async fn clientlogin_form_auth_token_and_caller_check() {
    let env = TestEnv::start().await;
    service(&env).await;
    let chrome = developer(&env, "dev3@example.test").await;
    chrome.client.goto(&env.url("/playground")).await.unwrap();
    chrome.click_link("ClientLogin").await;
    chrome.fill("start-Email", "dev3@example.test").await;
    chrome.fill("start-Passwd", "wrong-password").await;
    chrome.fill("start-service", "cl").await;
    chrome.click_button("Sign in with ClientLogin").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].1.starts_with("HTTP/1.1 403"), "{}", shown[0].1);
    assert!(shown[0].1.contains("Error=BadAuthentication"), "{}", shown[0].1);
    assert!(chrome.text().await.contains("ClientLogin refused"));

    chrome.fill("start-Email", "dev3@example.test").await;
    chrome.fill("start-Passwd", "password-1").await;
    chrome.fill("start-service", "cl").await;
    chrome.click_button("Sign in with ClientLogin").await;
    let shown = exchanges(&chrome).await;
    let (request, response) = &shown[0];
    assert!(request.starts_with("POST /accounts/ClientLogin HTTP/1.1"), "{request}");
    assert!(request.contains("Passwd=********") && !request.contains("password-1"), "{request}");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("SID=") && response.contains("Auth="), "{response}");

    chrome.click_button("Ask the caller check").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.contains("GoogleLogin auth="), "{}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains("\"protocol\":\"clientlogin\""), "{}", shown[0].1);
    assert!(!chrome.client.source().await.unwrap().contains("password-1"));
    chrome.close().await;
}

#[tokio::test]
async fn openid2_checkid_setup_assertion_and_check_authentication() {
    let env = TestEnv::start().await;
    let chrome = developer(&env, "dev5@example.test").await;
    chrome.client.goto(&env.url("/playground")).await.unwrap();
    chrome.click_link("OpenID 2.0").await;
    chrome.click_button("Discover the provider and build checkid_setup").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.starts_with("GET /accounts/o8/id HTTP/1.1"), "{}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK") && shown[0].1.contains("<URI>"));
    let url = chrome.client.find(Locator::Id("visit-url")).await.unwrap().text().await.unwrap();
    let url = url::Url::parse(&url).unwrap();
    assert_eq!(url.path(), "/accounts/o8/ud");
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["openid.mode"], "checkid_setup");
    assert_eq!(query["openid.realm"], env.url("/playground/"));
    assert!(query["openid.return_to"].starts_with(&env.url("/playground/openid2/callback?flow=")));
    assert!(!query.contains_key("openid.assoc_handle"), "stateless");

    chrome.click_link("Open the checkid_setup URL").await;
    assert_eq!(chrome.path().await, "/accounts/o8/ud");
    let text = chrome.text().await;
    assert!(text.contains(&format!("Sign in to {}", env.url("/playground/"))), "{text}");
    chrome.click_button("Allow").await;
    assert_eq!(chrome.path().await, "/playground/openid2/callback");
    let text = chrome.text().await;
    assert!(text.contains("openid.mode:id_res"), "{text}");
    assert!(text.contains("openid.ext1.value.email:dev5@example.test"), "{text}");
    assert!(text.contains(&format!("openid.claimed_id:{}", env.url("/accounts/o8/id?id="))));

    chrome.click_button("Verify with check_authentication").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.starts_with("POST /accounts/o8/ud HTTP/1.1"), "{}", shown[0].0);
    assert!(shown[0].0.contains("openid.mode=check_authentication"), "{}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains("is_valid:true"), "{}", shown[0].1);
    // The provider vouches once: the same assertion checked again is refused.
    chrome.click_button("Verify again").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].1.contains("is_valid:false"), "{}", shown[0].1);
    assert!(chrome.text().await.contains("does not vouch"));
    chrome.close().await;
}

/// An OpenID 2.0 answer that is not to this flow's request is refused and kept nowhere.
#[tokio::test]
async fn openid2_answer_to_another_request_is_refused() {
    let env = TestEnv::start().await;
    env.account("rp@example.test", "password-1").await;
    let mut browser = env.browser();
    browser.sign_in("rp@example.test", "password-1").await;
    let csrf = browser.get("/playground/openid2").await.csrf();
    let page = browser.post("/playground/openid2/start", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let forged = format!(
        "/playground/openid2/callback?flow=other&openid.mode=id_res&openid.return_to={}",
        crate::support::urlencode(&env.url("/playground/openid2/callback?flow=other"))
    );
    let page = browser.get(&forged).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("return_to is not the one the playground sent"), "{}", page.body);
    let page = browser.post("/playground/openid2/verify", &[("csrf", &page.csrf())]).await;
    assert!(page.body.contains("There is no assertion to verify"), "{}", page.body);
    assert!(!page.body.contains("check_authentication (direct"), "{}", page.body);
}

#[tokio::test]
async fn push_register_send_read_the_stream_and_acknowledge() {
    let env = TestEnv::start().await;
    let chrome = developer(&env, "dev6@example.test").await;
    let account = env_account(&env, "dev6@example.test").await;
    let project = tessera_domain::projects::owned_by(env.ctx(), &account).await.unwrap().remove(0);
    chrome.client.goto(&env.url("/playground")).await.unwrap();
    chrome.click_link("Push (C2DM and GCM)").await;
    chrome.click_button("Register an app install").await;
    let shown = exchanges(&chrome).await;
    let (request, response) = &shown[0];
    assert!(request.starts_with("POST /c2dm/register3 HTTP/1.1"), "{request}");
    assert!(!request.contains("authorization"), "no account, no credential: {request}");
    assert!(request.contains(&format!("sender={}", project.id)), "{request}");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("x-install-credential: pi/") && response.contains("token=APA91b"));

    chrome.fill("send-message", "first message").await;
    chrome.click_button("Send a message with /gcm/send").await;
    assert!(chrome.text().await.contains("Created the push API key \"Playground\""));
    let keys = tessera_domain::push::list_api_keys(env.ctx(), &project.id).await.unwrap();
    assert_eq!(keys.len(), 1, "the console's function made one key");
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.starts_with("POST /gcm/send HTTP/1.1"), "{}", shown[0].0);
    assert!(shown[0].0.contains("authorization: key=AIza"), "{}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains("\"success\":1"), "{}", shown[0].1);

    chrome.click_button("Read the device event stream").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.starts_with("GET /push/events?registration_id=APA91b"), "{}", shown[0].0);
    assert!(shown[0].0.contains("authorization: AidLogin playground-"), "{}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains("text/event-stream"), "{}", shown[0].1);
    assert!(shown[0].1.contains("\"message\":\"first message\""), "{}", shown[0].1);
    assert!(shown[0].1.contains("closed the stream after the first event"), "{}", shown[0].1);

    chrome.click_button("Acknowledge the message").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.starts_with("POST /push/device HTTP/1.1"), "{}", shown[0].0);
    assert!(shown[0].0.contains("\"type\":\"ack\""), "{}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 204"), "{}", shown[0].1);
    chrome.click_button("Read the device event stream").await;
    assert!(chrome.text().await.contains("Nothing is stored for the device."));

    // A second send reuses the flow's key: no new one.
    chrome.fill("send-message", "second message").await;
    chrome.click_button("Send a message with /gcm/send").await;
    assert!(!chrome.text().await.contains("Created the push API key"));
    assert!(exchanges(&chrome).await[0].1.contains("\"success\":1"));
    assert_eq!(tessera_domain::push::list_api_keys(env.ctx(), &project.id).await.unwrap().len(), 1);
    // The playground closes each stream it reads: reading again and again holds no connection
    // against the device's limit of four.
    for _ in 0..5 {
        chrome.click_button("Read the device event stream").await;
        let shown = exchanges(&chrome).await;
        assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
        assert!(shown[0].1.contains("second message"), "{}", shown[0].1);
    }
    chrome.close().await;
}

async fn env_account(env: &TestEnv, email: &str) -> String {
    tessera_domain::accounts::find_by_email(env.ctx(), email).await.unwrap().id
}

#[tokio::test]
async fn device_login_encrypted_password_master_token_and_service_token() {
    let env = TestEnv::start().await;
    service(&env).await;
    let chrome = developer(&env, "dev7@example.test").await;
    chrome.client.goto(&env.url("/playground")).await.unwrap();
    chrome.click_link("Android device login").await;
    chrome.fill("start-Email", "dev7@example.test").await;
    chrome.fill("start-Passwd", "password-1").await;
    chrome.click_button("Sign the device in").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.starts_with("GET /auth/passwd_key HTTP/1.1"), "{}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    let (request, response) = &shown[1];
    assert!(request.starts_with("POST /auth HTTP/1.1"), "{request}");
    assert!(request.contains("EncryptedPasswd=********"), "{request}");
    assert!(!request.contains("Passwd=password") && !request.contains("password-1"), "{request}");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("Token=aas_et/"), "{response}");

    chrome.fill("service-service", "cl").await;
    chrome.click_button("Ask for a per-service token").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.contains("Token=aas_et%2F") && shown[0].0.contains("service=cl"));
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains("Auth="), "{}", shown[0].1);
    chrome.click_button("Ask the caller check").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.contains("GoogleLogin auth="), "{}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains("\"protocol\":\"clientlogin\""), "{}", shown[0].1);
    assert!(!chrome.client.source().await.unwrap().contains("password-1"));

    // A wrong password: refused, and nothing is kept.
    chrome.client.goto(&env.url("/playground/device")).await.unwrap();
    chrome.fill("start-Email", "dev7@example.test").await;
    chrome.fill("start-Passwd", "wrong-password").await;
    chrome.click_button("Sign the device in").await;
    assert!(exchanges(&chrome).await[1].1.contains("Error=BadAuthentication"));
    assert!(chrome.text().await.contains("The master login was refused: BadAuthentication"));
    chrome.close().await;
}

/// Android device login is hidden when `[device]` is off.
#[tokio::test]
async fn device_login_is_hidden_when_device_is_off() {
    let env = TestEnv::with_config(|raw| raw.device.enabled = false).await;
    env.account("nodev@example.test", "password-1").await;
    let mut browser = env.browser();
    browser.sign_in("nodev@example.test", "password-1").await;
    let page = browser.get("/playground").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("/playground/device\""), "{}", page.body);
    assert!(page.body.contains("href=\"/playground/push\""), "{}", page.body);
    assert_eq!(browser.get("/playground/device").await.status, 404);
    let csrf = browser.get("/playground/push").await.csrf();
    let page = browser.post("/playground/device/start", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 404);
}

/// The protocols a configuration switches off are neither listed nor served by the playground.
#[tokio::test]
async fn switched_off_protocols_are_hidden() {
    let env = TestEnv::with_config(|raw| {
        raw.legacy.authsub = false;
        raw.legacy.oauth1 = false;
        raw.legacy.openid2 = false;
    })
    .await;
    env.account("off@example.test", "password-1").await;
    let mut browser = env.browser();
    browser.sign_in("off@example.test", "password-1").await;
    let page = browser.get("/playground").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("href=\"/playground/oauth2\""), "{}", page.body);
    assert!(page.body.contains("href=\"/playground/clientlogin\""), "{}", page.body);
    assert!(!page.body.contains("/playground/authsub"), "{}", page.body);
    assert!(!page.body.contains("/playground/oauth1"), "{}", page.body);
    assert!(!page.body.contains("/playground/openid2"), "{}", page.body);
    assert_eq!(browser.get("/playground/authsub").await.status, 404);
    assert_eq!(browser.get("/playground/openid2").await.status, 404);
    assert_eq!(browser.get("/playground/openid2/callback?openid.mode=id_res").await.status, 404);
    assert_eq!(browser.get("/playground/oauth1").await.status, 404);
    let csrf = browser.get("/playground/oauth2").await.csrf();
    let page = browser.post("/playground/oauth1/start", &[("csrf", &csrf), ("scope", "x")]).await;
    assert_eq!(page.status, 404);
}

/// Bad input changes nothing: no sign-in, a missing CSRF token, another developer's project, a
/// callback whose state is not the flow's, and a flow cookie that does not open.
#[tokio::test]
async fn refusals_change_nothing() {
    let env = TestEnv::start().await;
    env.account("one@example.test", "password-1").await;
    env.account("two@example.test", "password-2").await;
    let theirs =
        tessera_domain::projects::create(env.ctx(), "Theirs", "two@example.test", &Actor::Cli)
            .await
            .unwrap();
    let mine = tessera_domain::projects::create(env.ctx(), "Mine", "one@example.test", &Actor::Cli)
        .await
        .unwrap();
    let mut browser = env.browser();
    let page = browser.get("/playground").await;
    assert_eq!(page.status, 302);
    assert!(page.location().starts_with("/accounts/ServiceLogin?continue="), "{}", page.location());

    browser.sign_in("one@example.test", "password-1").await;
    let page = browser.post("/playground/oauth2/start", &[("project", &mine.id)]).await;
    assert_eq!(page.status, 400, "no CSRF token");

    let csrf = browser.get("/playground/oauth2").await.csrf();
    let fields = [("csrf", csrf.as_str()), ("project", &theirs.id), ("scope", "openid")];
    let page = browser.post("/playground/oauth2/start", &fields).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("Choose one of your projects."), "{}", page.body);
    let clients = tessera_domain::oauth2::clients::list(env.ctx(), &theirs.id).await.unwrap();
    assert!(clients.is_empty(), "nothing was created in another developer's project");

    let csrf = browser.get("/playground/oauth2").await.csrf();
    let fields = [("csrf", csrf.as_str()), ("project", &mine.id), ("scope", "openid")];
    let page = browser.post("/playground/oauth2/start", &fields).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let needle = "id=\"visit\" href=\"";
    let start = page.body.find(needle).unwrap() + needle.len();
    let visit =
        crate::support::html_unescape(&page.body[start..][..page.body[start..].find('"').unwrap()]);
    let visit = url::Url::parse(&visit).unwrap();
    let state = visit.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let page = browser.get("/playground/callback?code=4%2Fforged&state=not-the-state").await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("state is not the one the playground sent"), "{}", page.body);
    let csrf = page.csrf();
    let page = browser.post("/playground/oauth2/exchange", &[("csrf", &csrf)]).await;
    assert!(page.body.contains("There is no code to exchange"), "{}", page.body);
    assert!(!page.body.contains("/o/oauth2/token"), "no request was made: {}", page.body);

    // A flow cookie that does not open (edited, or another account's) is a fresh flow: the
    // state it carried is gone.
    let sealed = browser.jar.get("TPLAY").unwrap().clone();
    let last = if sealed.ends_with('A') { 'B' } else { 'A' };
    browser.jar.insert("TPLAY".to_owned(), format!("{}{last}", &sealed[..sealed.len() - 1]));
    let callback = format!("/playground/callback?code=4%2Fx&state={state}");
    let page = browser.get(&callback).await;
    assert_eq!(page.status, 400, "{}", page.body);
    browser.jar.insert("TPLAY".to_owned(), sealed);
    let page = browser.get(&callback).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Exchange the code for tokens"), "{}", page.body);
}

/// Steps that need what an earlier step got refuse without it and change nothing: no API key is
/// made for a send without a registration, no request goes out.
#[tokio::test]
async fn later_steps_without_earlier_ones_change_nothing() {
    let env = TestEnv::start().await;
    env.account("early@example.test", "password-1").await;
    let project =
        tessera_domain::projects::create(env.ctx(), "Early", "early@example.test", &Actor::Cli)
            .await
            .unwrap();
    let mut browser = env.browser();
    browser.sign_in("early@example.test", "password-1").await;
    let csrf = browser.get("/playground/push").await.csrf();
    let page = browser.post("/playground/push/send", &[("csrf", &csrf), ("message", "x")]).await;
    assert!(page.body.contains("There is no registration yet"), "{}", page.body);
    assert!(!page.body.contains("/gcm/send HTTP"), "no request was made: {}", page.body);
    assert!(tessera_domain::push::list_api_keys(env.ctx(), &project.id).await.unwrap().is_empty());
    let page = browser.post("/playground/push/ack", &[("csrf", &page.csrf())]).await;
    assert!(page.body.contains("There is no message to acknowledge"), "{}", page.body);

    let page = browser.post("/playground/device/service", &[("csrf", &page.csrf())]).await;
    assert!(page.body.contains("There is no master token yet"), "{}", page.body);
    assert!(!page.body.contains("POST /auth HTTP"), "no request was made: {}", page.body);

    let page = browser.post("/playground/oauth2/device_poll", &[("csrf", &page.csrf())]).await;
    assert!(page.body.contains("There is no device code to poll with"), "{}", page.body);
    let clients = tessera_domain::oauth2::clients::list(env.ctx(), &project.id).await.unwrap();
    assert!(clients.is_empty(), "{} clients", clients.len());

    // A project of someone else's is refused for the push registration and the device flow.
    env.account("other@example.test", "password-2").await;
    let theirs =
        tessera_domain::projects::create(env.ctx(), "Theirs", "other@example.test", &Actor::Cli)
            .await
            .unwrap();
    let csrf = browser.get("/playground/push").await.csrf();
    let fields = [("csrf", csrf.as_str()), ("project", &theirs.id), ("app", "com.example.x")];
    let page = browser.post("/playground/push/start", &fields).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("Choose one of your projects."), "{}", page.body);
    let fields = [("csrf", csrf.as_str()), ("project", &theirs.id), ("scope", "openid")];
    let page = browser.post("/playground/oauth2/device_start", &fields).await;
    assert_eq!(page.status, 400, "{}", page.body);
    let clients = tessera_domain::oauth2::clients::list(env.ctx(), &theirs.id).await.unwrap();
    assert!(clients.is_empty(), "nothing was created in another developer's project");
}

#[tokio::test]
async fn jwt_bearer_service_account_key_assertion_token_and_caller_check() {
    let env = TestEnv::start().await;
    let scope = service(&env).await;
    let chrome = developer(&env, "dev6@example.test").await;
    chrome.client.goto(&env.url("/playground/oauth2")).await.unwrap();
    chrome.fill("jwt_bearer-scope", "openid").await;
    chrome.click_button("Get a token as a service account (JWT bearer)").await;
    let text = chrome.text().await;
    assert!(text.contains("Created the service account \"Playground service account\""), "{text}");
    assert!(text.contains("the private key is handed out once"), "{text}");
    let shown = exchanges(&chrome).await;
    assert!(
        shown[0].0.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
    );
    assert!(!shown[0].0.contains("authorization:"), "no client authentication: {}", shown[0].0);
    assert!(shown[0].1.starts_with("HTTP/1.1 400") && shown[0].1.contains("invalid_scope"));
    // Neither the page nor the database holds the private key.
    let source = chrome.client.source().await.unwrap();
    assert!(!source.contains("PRIVATE KEY"), "the key stays in the sealed flow");

    chrome.client.goto(&env.url("/playground/oauth2")).await.unwrap();
    chrome.fill("jwt_bearer-scope", &scope).await;
    chrome.click_button("Get a token as a service account (JWT bearer)").await;
    let text = chrome.text().await;
    assert!(!text.contains("Created the"), "the flow's key is used again: {text}");
    let header = chrome.client.find(Locator::Css("pre.jwt-header")).await.unwrap();
    let header: serde_json::Value = serde_json::from_str(&header.text().await.unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let claims = chrome.client.find(Locator::Css("pre.jwt-claims")).await.unwrap();
    let claims: serde_json::Value = serde_json::from_str(&claims.text().await.unwrap()).unwrap();
    assert_eq!(claims["aud"], env.url("/o/oauth2/token"));
    assert_eq!(claims["scope"], scope.as_str());
    assert!(claims["iss"].as_str().unwrap().ends_with(".apps.tessera"));
    let shown = exchanges(&chrome).await;
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains("\"access_token\"") && !shown[0].1.contains("refresh_token"));
    assert!(!text.contains("Call userinfo"), "a service account's token names no person");

    chrome.click_button("Ask the caller check").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains(&scope), "{}", shown[0].1);
    assert!(shown[0].1.contains(claims["iss"].as_str().unwrap()), "{}", shown[0].1);
    chrome.close().await;
}

#[tokio::test]
async fn token_exchange_for_another_clients_id_token_and_refusal() {
    let env = TestEnv::start().await;
    let chrome = developer(&env, "dev7@example.test").await;
    // Another client of the same project, the audience.
    let project = tessera_domain::projects::owned_by(
        env.ctx(),
        &env_account(&env, "dev7@example.test").await,
    )
    .await
    .unwrap()
    .remove(0);
    let new = tessera_domain::oauth2::clients::NewClient {
        kind: tessera_domain::oauth2::clients::ClientKind::Android,
        name: "Phone app".to_owned(),
        redirect_uris: Vec::new(),
        android_package: Some("com.example.app".to_owned()),
        android_cert_sha1: Some("AB".repeat(20)),
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    let phone = tessera_domain::oauth2::clients::create(env.ctx(), &project, new, &Actor::Cli)
        .await
        .unwrap();
    let phone = phone.client.id().to_owned();

    chrome.client.goto(&env.url("/playground/oauth2")).await.unwrap();
    chrome.click_button("Build the authorization URL").await;
    chrome.click_link("Open the authorization URL").await;
    chrome.click_button("Allow").await;
    chrome.click_button("Exchange the code for tokens").await;
    assert!(exchanges(&chrome).await[0].1.starts_with("HTTP/1.1 200 OK"));

    // An audience that is no client of the project: refused, nothing issued.
    chrome.fill("token_exchange-audience", "000000000000-nosuchclient.apps.tessera").await;
    chrome.click_button("Exchange the access token for an ID token of another client").await;
    let shown = exchanges(&chrome).await;
    assert!(
        shown[0].0.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange")
    );
    assert!(shown[0].1.starts_with("HTTP/1.1 400") && shown[0].1.contains("invalid_target"));
    assert!(chrome.text().await.contains("The token endpoint refused: invalid_target"));

    let field = chrome.client.find(Locator::Id("token_exchange-audience")).await.unwrap();
    assert_eq!(field.prop("value").await.unwrap().as_deref(), Some(phone.as_str()));
    chrome.click_button("Exchange the access token for an ID token of another client").await;
    let shown = exchanges(&chrome).await;
    assert!(
        shown[0]
            .0
            .contains("subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token")
    );
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains("\"token_type\":\"N_A\""), "{}", shown[0].1);
    let claims = chrome.client.find(Locator::Css("pre.jwt-claims")).await.unwrap();
    let claims: serde_json::Value = serde_json::from_str(&claims.text().await.unwrap()).unwrap();
    assert_eq!(claims["aud"], phone.as_str());
    assert_eq!(claims["email"], "dev7@example.test");
    assert!(claims["azp"].as_str().unwrap() != phone);
    let verdict = chrome.client.find(Locator::Id("verdict")).await.unwrap().text().await.unwrap();
    assert!(verdict.starts_with("Signature valid against the key set at"), "{verdict}");
    // The playground's own access token still works.
    chrome.click_button("Call userinfo").await;
    assert!(exchanges(&chrome).await[0].1.starts_with("HTTP/1.1 200 OK"));
    chrome.close().await;
}

#[tokio::test]
async fn clientlogin_token_migrates_to_oauth2_only_from_a_client_of_the_project() {
    let env = TestEnv::start().await;
    let scope = service(&env).await;
    let chrome = developer(&env, "dev8@example.test").await;
    // The playground's web client, through client credentials.
    chrome.client.goto(&env.url("/playground/oauth2")).await.unwrap();
    chrome.fill("client_credentials-scope", &scope).await;
    chrome.click_button("Get a token with client credentials").await;
    assert!(exchanges(&chrome).await[0].1.starts_with("HTTP/1.1 200 OK"));

    let sign_in = async |source_is_web_client: bool| {
        chrome.client.goto(&env.url("/playground/clientlogin")).await.unwrap();
        chrome.fill("start-Email", "dev8@example.test").await;
        chrome.fill("start-Passwd", "password-1").await;
        chrome.fill("start-service", "cl").await;
        let select = chrome.client.find(Locator::Id("start-source")).await.unwrap();
        let options = select.find_all(Locator::Css("option")).await.unwrap();
        let index = if source_is_web_client { 1 } else { 0 };
        let value = options[index].attr("value").await.unwrap().unwrap();
        select.select_by_value(&value).await.unwrap();
        chrome.click_button("Sign in with ClientLogin").await;
        assert!(exchanges(&chrome).await[0].1.starts_with("HTTP/1.1 200 OK"));
        assert!(chrome.text().await.contains("The OAuth 2.0 page offers to move this token"));
        value
    };

    // An unregistered source: the server refuses to move the token; it stays usable.
    assert_eq!(sign_in(false).await, "tessera-playground");
    chrome.client.goto(&env.url("/playground/oauth2")).await.unwrap();
    chrome.click_button("Move the legacy token to OAuth 2.0").await;
    let shown = exchanges(&chrome).await;
    assert!(
        shown[0].0.contains(
            "grant_type=urn%3Atessera%3Aparams%3Aoauth%3Agrant-type%3Amigration%3Alegacy"
        )
    );
    assert!(shown[0].0.contains("legacy_token=") && shown[0].0.contains("authorization: Basic "));
    assert!(shown[0].1.starts_with("HTTP/1.1 400") && shown[0].1.contains("invalid_grant"));
    assert!(
        chrome.text().await.contains("A legacy token moves only to a web client of the project")
    );
    chrome.client.goto(&env.url("/playground/clientlogin")).await.unwrap();
    chrome.click_button("Ask the caller check").await;
    assert!(exchanges(&chrome).await[0].1.starts_with("HTTP/1.1 200 OK"));

    // The playground's web client as the source: the token moves to it, once.
    let web_client = sign_in(true).await;
    assert!(web_client.ends_with(".apps.tessera"), "{web_client}");
    chrome.client.goto(&env.url("/playground/oauth2")).await.unwrap();
    chrome.click_button("Move the legacy token to OAuth 2.0").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    assert!(shown[0].1.contains("\"refresh_token\""), "{}", shown[0].1);
    assert!(chrome.text().await.contains("The legacy token bought these OAuth 2.0 tokens"));
    chrome.click_button("Ask the caller check").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK") && shown[0].1.contains(&scope));
    assert!(shown[0].1.contains("\"protocol\":\"oauth2\""), "{}", shown[0].1);
    chrome.click_button("Refresh the access token").await;
    assert!(exchanges(&chrome).await[0].1.starts_with("HTTP/1.1 200 OK"));
    // Used up: the flow no longer offers it.
    chrome.client.goto(&env.url("/playground/oauth2")).await.unwrap();
    assert!(!chrome.text().await.contains("Move the legacy token"));
    chrome.close().await;
}

/// The OAuth 1.0 migration grant: the OAuth 1.0a walk run as a consumer registered in the
/// developer's project, then its access token moved to the playground's web client of that
/// project with the token request signed by the consumer; the OAuth 1.0 token is spent.
#[tokio::test]
async fn oauth1_access_token_migrates_to_oauth2_with_a_signed_token_request() {
    let env = TestEnv::start().await;
    administrator(&env).await;
    let scope = service(&env).await;
    let chrome = developer(&env, "dev10@example.test").await;
    let ctx = env.ctx();
    let domain = "playapp.example.test";
    tessera_domain::authsub::register(
        ctx,
        domain,
        "https://playapp.example.test/",
        None,
        Some("dev10@example.test"),
        &Actor::Cli,
    )
    .await
    .unwrap();
    let secret =
        tessera_domain::oauth1::mint_consumer_secret(ctx, domain, &Actor::Cli).await.unwrap();
    let project = ctx.store.projects().get_client(domain).await.unwrap().unwrap().project_id;

    chrome.client.goto(&env.url("/playground/oauth1")).await.unwrap();
    chrome.fill("start-scope", &scope).await;
    chrome.fill("start-consumer", domain).await;
    chrome.fill("start-consumer_secret", &secret).await;
    chrome.click_button("Get a request token").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].0.contains(&format!("oauth_consumer_key=\"{domain}\"")), "{}", shown[0].0);
    assert!(!shown[0].0.contains(&secret), "the consumer secret is never sent");
    assert!(shown[0].1.starts_with("HTTP/1.1 200 OK"), "{}", shown[0].1);
    chrome.click_link("Open the authorization page").await;
    chrome.click_button("Allow").await;
    assert_eq!(chrome.path().await, "/playground/oauth1/callback");
    chrome.click_button("Get the access token").await;
    assert!(exchanges(&chrome).await[0].1.starts_with("HTTP/1.1 200 OK"));
    let access = tessera_store::CredentialKind::Oauth1AccessToken;
    let account = ctx.store.accounts().find_by_email("dev10@example.test").await.unwrap().unwrap();
    let now = tessera_domain::Clock::now(env.clock.as_ref());
    let live =
        ctx.store.credentials().list_live_by_account(&account.id, access, now).await.unwrap();
    assert_eq!(live.len(), 1);

    chrome.client.goto(&env.url("/playground/oauth2")).await.unwrap();
    let select = chrome.client.find(Locator::Id("migrate-project")).await.unwrap();
    select.select_by_value(&project).await.unwrap();
    let select = chrome.client.find(Locator::Id("migrate-legacy")).await.unwrap();
    select.select_by_value("oauth1").await.unwrap();
    chrome.click_button("Move the legacy token to OAuth 2.0").await;
    let shown = exchanges(&chrome).await;
    let (request, response) = &shown[0];
    assert!(request.starts_with("POST /o/oauth2/token HTTP/1.1"), "{request}");
    assert!(
        request
            .contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Amigration%3Aoauth1"),
        "{request}"
    );
    assert!(request.contains("authorization: OAuth "), "{request}");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("\"refresh_token\""), "{response}");
    assert!(
        chrome.text().await.contains("The OAuth 1.0 access token bought these OAuth 2.0 tokens")
    );
    chrome.click_button("Ask the caller check").await;
    let shown = exchanges(&chrome).await;
    assert!(shown[0].1.contains("\"protocol\":\"oauth2\""), "{}", shown[0].1);
    let now = tessera_domain::Clock::now(env.clock.as_ref());
    let live =
        ctx.store.credentials().list_live_by_account(&account.id, access, now).await.unwrap();
    assert!(live.is_empty(), "the OAuth 1.0 access token was spent");
    chrome.close().await;
}
