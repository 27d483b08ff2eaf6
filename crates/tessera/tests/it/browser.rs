//! Page tests in headless Chromium (Debian's `chromium` and `chromium-driver`), driven over
//! WebDriver: sign-in, 2-step, the account chooser, the CAPTCHA and the account page, as a person
//! clicks through them; the consent steps of OAuth 2.0, AuthSub, OpenID 2.0 and OAuth 1.0a; and web
//! single sign-on across two example feeds services on two host names.

use std::process::Stdio;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::support::TestEnv;

/// A chromedriver process and a headless Chromium session with a fresh profile.
pub(crate) struct Chrome {
    pub(crate) client: Client,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Chrome {
    pub(crate) async fn start() -> Chrome {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver is installed (cargo xtask ci installs Debian's chromium-driver)");
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.path().display())
                ]
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver takes a moment to listen; retry the session request until it answers.
        let mut last_err = None;
        for _ in 0..200 {
            match ClientBuilder::rustls().unwrap().capabilities(caps.clone()).connect(&url).await {
                Ok(client) => return Chrome { client, _driver: driver, _profile: profile },
                Err(err) => {
                    last_err = Some(err);
                    if let Ok(Some(status)) = driver.try_wait() {
                        panic!("chromedriver exited: {status}");
                    }
                    tokio::task::yield_now().await;
                    let _ = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
                }
            }
        }
        panic!("no WebDriver session: {last_err:?}");
    }

    pub(crate) async fn fill(&self, id: &str, text: &str) {
        let field = self.client.find(Locator::Id(id)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub(crate) async fn click_button(&self, label: &str) {
        let xpath = format!("//button[normalize-space(.)='{label}']");
        let button = self.client.find(Locator::XPath(&xpath)).await.unwrap();
        self.click_and_wait(button).await;
    }

    pub(crate) async fn click_link(&self, text: &str) {
        let link = self.client.find(Locator::LinkText(text)).await.unwrap();
        self.click_and_wait(link).await;
    }

    /// Clicks something that loads a new page and waits until the new page has loaded: the old
    /// document's root element goes stale, then the new document is complete. Each step asks the
    /// browser; the loop is bounded.
    pub(crate) async fn click_and_wait(&self, element: fantoccini::elements::Element) {
        let old_root = self.client.find(Locator::Css("html")).await.unwrap();
        element.click().await.unwrap();
        for _ in 0..10_000 {
            if old_root.tag_name().await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
        for _ in 0..10_000 {
            let state = self.client.execute("return document.readyState", vec![]).await.unwrap();
            if state == "complete" {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the page did not finish loading");
    }

    /// Waits until the browser shows a complete document at a URL `done` accepts (a meta refresh,
    /// say). Each step asks the browser; the loop is bounded.
    pub(crate) async fn wait_for_url(&self, done: impl Fn(&url::Url) -> bool) -> url::Url {
        for _ in 0..100_000 {
            let url = self.client.current_url().await.unwrap();
            if done(&url) {
                let state =
                    self.client.execute("return document.readyState", vec![]).await.unwrap();
                if state == "complete" {
                    return url;
                }
            }
            tokio::task::yield_now().await;
        }
        panic!("the browser never got there");
    }

    /// Waits until every image of the page has finished loading (or failed to).
    pub(crate) async fn wait_for_images(&self) {
        for _ in 0..100_000 {
            let done = self
                .client
                .execute("return Array.from(document.images).every((it) => it.complete)", vec![])
                .await
                .unwrap();
            if done == serde_json::json!(true) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the images never finished loading");
    }

    /// Waits until the script `condition` (an expression) is true on the page, as a page's own
    /// script changes it. Each step asks the browser; the loop is bounded.
    async fn wait_until(&self, condition: &str) {
        let script = format!("return Boolean({condition})");
        for _ in 0..100_000 {
            let done = self.client.execute(&script, vec![]).await.unwrap();
            if done == serde_json::json!(true) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("never true: {condition}");
    }

    pub(crate) async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    pub(crate) async fn text(&self) -> String {
        self.client.find(Locator::Css("body")).await.unwrap().text().await.unwrap()
    }

    pub(crate) async fn sign_in(&self, base: &str, email: &str, password: &str) {
        self.client.goto(&format!("{base}/accounts/ServiceLogin?add=1")).await.unwrap();
        self.fill("Email", email).await;
        self.fill("Passwd", password).await;
        self.click_button("Sign in").await;
    }

    pub(crate) async fn close(self) {
        self.client.close().await.unwrap();
    }
}

#[tokio::test]
async fn sign_in_account_page_and_app_password() {
    let env = TestEnv::start().await;
    env.account("web@example.test", "password-1").await;
    let chrome = Chrome::start().await;
    chrome.sign_in(&env.base, "web@example.test", "password-1").await;
    assert_eq!(chrome.client.current_url().await.unwrap().path(), "/account");
    let text = chrome.text().await;
    assert!(text.contains("Your account") && text.contains("web@example.test"), "{text}");
    // The stylesheet loaded under the CSP (a styled page has its header border).
    let header = chrome.client.find(Locator::Css("header")).await.unwrap();
    assert_eq!(header.css_value("border-bottom-style").await.unwrap(), "solid");

    chrome.fill("asp_name", "Phone mail").await;
    chrome.click_button("Create app password").await;
    let shown =
        chrome.client.find(Locator::Id("app-password")).await.unwrap().text().await.unwrap();
    assert_eq!(shown.replace(' ', "").len(), 16);
    chrome.click_link("Done").await;
    assert!(chrome.text().await.contains("Phone mail"));
    chrome.close().await;
}

#[tokio::test]
async fn two_step_setup_and_sign_in() {
    let env = TestEnv::start().await;
    env.account("totp@example.test", "password-1").await;
    let chrome = Chrome::start().await;
    chrome.sign_in(&env.base, "totp@example.test", "password-1").await;
    chrome.click_button("Set up 2-step verification").await;
    let qr = chrome.client.find(Locator::Css(".qr svg")).await.unwrap();
    assert!(qr.rectangle().await.unwrap().2 > 100.0, "the QR code is drawn");
    let secret_text =
        chrome.client.find(Locator::Css("code.secret")).await.unwrap().text().await.unwrap();
    let secret = tessera_crypto::totp::TotpSecret::from_base32(&secret_text).unwrap();
    chrome.fill("code", &secret.code_at_time(crate::support::T0)).await;
    chrome.click_button("Turn on").await;
    assert!(chrome.text().await.contains("2-step verification is on."));

    chrome.click_link("Sign out").await;
    env.clock.advance(30);
    chrome.sign_in(&env.base, "totp@example.test", "password-1").await;
    assert!(chrome.text().await.contains("2-step verification"));
    chrome.fill("code", &secret.code_at_time(crate::support::T0 + 30)).await;
    chrome.click_button("Verify").await;
    assert_eq!(chrome.client.current_url().await.unwrap().path(), "/account");
    chrome.close().await;
}

#[tokio::test]
async fn account_chooser_switches_between_accounts() {
    let env = TestEnv::start().await;
    env.account("one@example.test", "password-1").await;
    env.account("two@example.test", "password-2").await;
    let chrome = Chrome::start().await;
    chrome.sign_in(&env.base, "one@example.test", "password-1").await;
    chrome
        .client
        .goto(&format!("{}/accounts/ServiceLogin?continue=%2Faccount", env.base))
        .await
        .unwrap();
    assert!(chrome.text().await.contains("Choose an account"));
    chrome.click_link("Use another account").await;
    chrome.fill("Email", "two@example.test").await;
    chrome.fill("Passwd", "password-2").await;
    chrome.click_button("Sign in").await;
    assert!(chrome.text().await.contains("Signed in as two@example.test"));
    chrome
        .client
        .goto(&format!("{}/accounts/ServiceLogin?continue=%2Faccount", env.base))
        .await
        .unwrap();
    let links = chrome.client.find_all(Locator::Css(".chooser a")).await.unwrap();
    assert_eq!(links.len(), 2);
    chrome.click_and_wait(links.into_iter().next().unwrap()).await;
    assert!(chrome.text().await.contains("Signed in as one@example.test"));
    chrome.close().await;
}

#[tokio::test]
async fn captcha_appears_with_a_loaded_image_and_recording() {
    let env = TestEnv::with_config(|c| c.signin.captcha_after_account_failures = 2).await;
    env.account("cap@example.test", "password-1").await;
    let chrome = Chrome::start().await;
    for _ in 0..2 {
        chrome.sign_in(&env.base, "cap@example.test", "wrong-password").await;
        assert!(chrome.text().await.contains("Wrong email or password"));
    }
    chrome.sign_in(&env.base, "cap@example.test", "password-1").await;
    assert!(chrome.text().await.contains("Type the characters you see in the picture"));
    chrome.client.find(Locator::Css("fieldset img")).await.unwrap();
    let width = chrome
        .client
        .execute("return document.querySelector('fieldset img').naturalWidth", vec![])
        .await
        .unwrap();
    assert_eq!(width, serde_json::json!(220), "the CAPTCHA image loaded");
    // The recording loads and decodes in the page: its policy lets media in, and Chromium reads
    // the WAV.
    let label = chrome
        .client
        .execute(
            "return document.querySelector('fieldset audio').getAttribute('aria-label')",
            vec![],
        )
        .await
        .unwrap();
    assert!(label.as_str().unwrap().starts_with("CAPTCHA recording"), "{label}");
    let duration = chrome
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const audio = document.querySelector('fieldset audio');
             audio.addEventListener('loadedmetadata', () => done(audio.duration));
             audio.addEventListener('error', () => done('error ' + audio.error.code));
             audio.load();",
            vec![],
        )
        .await
        .unwrap();
    let secs =
        duration.as_f64().unwrap_or_else(|| panic!("the recording did not load: {duration}"));
    assert!((2.5..8.0).contains(&secs), "{secs} s");
    chrome
        .client
        .find(Locator::LinkText("Listen to the characters (WAV recording)"))
        .await
        .unwrap();
    chrome.close().await;
}

#[tokio::test]
async fn oauth2_consent_and_oob_title_in_a_real_browser() {
    use tessera_domain::audit::Actor;
    use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};

    let env = TestEnv::start().await;
    env.account("app@example.test", "password-1").await;
    let project =
        tessera_domain::projects::create(env.ctx(), "Desk Tools", "app@example.test", &Actor::Cli)
            .await
            .unwrap();
    let new = NewClient {
        kind: ClientKind::Installed,
        name: "Desk Sync".to_owned(),
        redirect_uris: vec!["urn:ietf:wg:oauth:2.0:oob".to_owned()],
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    let client = clients::create(env.ctx(), &project, new, &Actor::Cli).await.unwrap();
    let chrome = Chrome::start().await;
    chrome.sign_in(&env.base, "app@example.test", "password-1").await;
    let url = format!(
        "{}/o/oauth2/auth?response_type=code&client_id={}&redirect_uri=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob\
         &scope=openid+email&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        env.base, client.client.record.client_id
    );
    chrome.client.goto(&url).await.unwrap();
    let text = chrome.text().await;
    assert!(text.contains("Desk Sync wants to access your account"), "{text}");
    assert!(text.contains("has not been verified"), "{text}");
    assert!(text.contains("See your email address"), "{text}");
    assert!(text.contains("app@example.test"), "{text}");
    chrome.click_button("Allow").await;
    // Desktop apps read the code from the window title.
    let title = chrome.client.title().await.unwrap();
    assert!(title.starts_with("Success code=4/"), "{title}");
    let shown = chrome.client.find(Locator::Id("code")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(shown.as_deref(), title.strip_prefix("Success code="));
    chrome.close().await;
}

#[tokio::test]
async fn authsub_sign_in_and_allow() {
    let env = TestEnv::start().await;
    env.account("authsub@example.test", "password-1").await;
    let scope = "http://www.example.com/calendar/feeds/";
    let new = tessera_domain::services::NewService {
        name: "cl".to_owned(),
        display_name: "Calendar".to_owned(),
        scopes: vec![scope.to_owned()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    tessera_domain::services::add(env.ctx(), new, &tessera_domain::audit::Actor::Cli)
        .await
        .unwrap();
    let next = format!("{}/account?from=app", env.base);
    let request = format!(
        "{}/accounts/AuthSubRequest?next={}&scope={}&session=1",
        env.base,
        crate::support::urlencode(&next),
        crate::support::urlencode(scope)
    );
    let chrome = Chrome::start().await;
    chrome.client.goto(&request).await.unwrap();
    assert_eq!(chrome.client.current_url().await.unwrap().path(), "/accounts/ServiceLogin");
    chrome.fill("Email", "authsub@example.test").await;
    chrome.fill("Passwd", "password-1").await;
    chrome.click_button("Sign in").await;
    assert_eq!(chrome.client.current_url().await.unwrap().path(), "/accounts/AuthSubRequest");
    let text = chrome.text().await;
    assert!(text.contains("127.0.0.1 wants access to your account"), "{text}");
    assert!(text.contains("This application is not registered."), "{text}");
    assert!(text.contains("Calendar"), "{text}");
    chrome.click_button("Allow").await;
    let landed = chrome.client.current_url().await.unwrap();
    assert_eq!(landed.path(), "/account");
    let query = landed.query().unwrap_or_default().to_owned();
    assert!(query.starts_with("from=app&token="), "{query}");
    let token = query.trim_start_matches("from=app&token=");
    let checked = tessera_domain::authsub::check(
        env.ctx(),
        tessera_domain::authsub::Presented { token, sigalg: None, data: None, sig: None },
        &tessera_domain::caller::RequestFacts::default(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(checked.scopes(), [scope]);
    assert!(chrome.text().await.contains("127.0.0.1 (not registered)"));
    chrome.close().await;
}

#[tokio::test]
async fn openid2_sign_in_and_allow() {
    let env = TestEnv::start().await;
    env.account("openid@example.test", "password-1").await;
    let return_to = format!("{}/account?from=rp", env.base);
    let realm = format!("{}/", env.base);
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("openid.ns", tessera_proto_openid2::NS_OPENID2)
        .append_pair("openid.mode", "checkid_setup")
        .append_pair("openid.claimed_id", tessera_proto_openid2::IDENTIFIER_SELECT)
        .append_pair("openid.identity", tessera_proto_openid2::IDENTIFIER_SELECT)
        .append_pair("openid.return_to", &return_to)
        .append_pair("openid.realm", &realm)
        .append_pair("openid.ns.ax", tessera_proto_openid2::NS_AX)
        .append_pair("openid.ax.mode", "fetch_request")
        .append_pair("openid.ax.type.email", "http://axschema.org/contact/email")
        .append_pair("openid.ax.required", "email");
    let chrome = Chrome::start().await;
    chrome.client.goto(&format!("{}/accounts/o8/ud?{}", env.base, query.finish())).await.unwrap();
    assert_eq!(chrome.client.current_url().await.unwrap().path(), "/accounts/ServiceLogin");
    chrome.fill("Email", "openid@example.test").await;
    chrome.fill("Passwd", "password-1").await;
    chrome.click_button("Sign in").await;
    assert_eq!(chrome.client.current_url().await.unwrap().path(), "/accounts/o8/ud");
    let text = chrome.text().await;
    assert!(text.contains(&format!("Sign in to {realm}")), "{text}");
    assert!(text.contains("See your email address"), "{text}");
    chrome.click_button("Allow").await;
    let landed = chrome.client.current_url().await.unwrap();
    assert_eq!(landed.path(), "/account");
    let fields: std::collections::BTreeMap<String, String> =
        landed.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    assert_eq!(fields["from"], "rp");
    assert_eq!(fields["openid.mode"], "id_res");
    assert_eq!(fields["openid.ext1.value.email"], "openid@example.test");
    assert!(fields["openid.claimed_id"].starts_with(&format!("{}/accounts/o8/id?id=", env.base)));
    chrome.close().await;
}

#[tokio::test]
async fn oauth1_authorize_step_in_a_real_browser() {
    use crate::oauth1::{form_value, send, setup, sign};
    let env = TestEnv::start().await;
    let consumer = setup(&env).await;
    let cal = "http://www.example.com/calendar/feeds/";
    let url = env
        .url(&format!("/accounts/OAuthGetRequestToken?scope={}", crate::support::urlencode(cal)));
    let now = tessera_domain::Clock::now(&*env.clock).to_string();
    let header = sign(
        "GET",
        &url,
        &[
            ("oauth_callback", "oob"),
            ("oauth_consumer_key", &consumer.key),
            ("oauth_nonce", "b1"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", &now),
        ],
        &[],
        &consumer.secret,
        "",
    );
    let page = send("GET", &url, &header, None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let token = form_value(&page.body, "oauth_token");
    let chrome = Chrome::start().await;
    let authorize = format!(
        "{}/accounts/OAuthAuthorizeToken?oauth_token={}",
        env.base,
        crate::support::urlencode(&token)
    );
    chrome.client.goto(&authorize).await.unwrap();
    assert_eq!(chrome.client.current_url().await.unwrap().path(), "/accounts/ServiceLogin");
    chrome.fill("Email", "alice@example.com").await;
    chrome.fill("Passwd", "north23AZ").await;
    chrome.click_button("Sign in").await;
    assert_eq!(chrome.client.current_url().await.unwrap().path(), "/accounts/OAuthAuthorizeToken");
    let text = chrome.text().await;
    assert!(text.contains("app.example.com wants access to your account"), "{text}");
    assert!(text.contains("cl service"), "{text}");
    chrome.click_button("Allow").await;
    let text = chrome.text().await;
    let verifier: String = text
        .split_once("app.example.com: ")
        .unwrap_or_else(|| panic!("{text}"))
        .1
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(verifier.len(), 24, "{text}");
    chrome.close().await;
}

#[tokio::test]
async fn a_device_weblogin_url_signs_chromium_in() {
    let s = crate::device::setup().await;
    let url = crate::device::weblogin_url(&s).await;
    let chrome = Chrome::start().await;
    chrome.client.goto(&url).await.unwrap();
    assert_eq!(chrome.client.current_url().await.unwrap().path(), "/account");
    let text = chrome.text().await;
    assert!(text.contains("Your account") && text.contains("alice@example.com"), "{text}");
    chrome.close().await;
}

/// The web sign-in for a device: `/EmbeddedSetup` sends Chromium through the sign-in page and
/// back, and ends with the `oauth_token` cookie, which `/auth` exchanges for a master token once.
#[tokio::test]
async fn embedded_setup_signs_chromium_in_and_leaves_the_device_token() {
    let s = crate::device::setup().await;
    let chrome = Chrome::start().await;
    chrome.client.goto(&s.env.url("/EmbeddedSetup")).await.unwrap();
    assert_eq!(chrome.client.current_url().await.unwrap().path(), "/accounts/ServiceLogin");
    chrome.fill("Email", "alice@example.com").await;
    chrome.fill("Passwd", "north23AZ").await;
    chrome.click_button("Sign in").await;
    assert_eq!(chrome.client.current_url().await.unwrap().path(), "/EmbeddedSetup");
    let text = chrome.text().await;
    assert!(
        text.contains("Your device is signing in") && text.contains("alice@example.com"),
        "{text}"
    );
    let cookie = chrome.client.get_named_cookie("oauth_token").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    let token = cookie.value().to_owned();
    chrome.close().await;
    let answer = crate::device::exchange(&s.env, &token, crate::device::ANDROID_ID_WEB).await;
    assert_eq!(answer.get("Email"), Some("alice@example.com"));
    assert!(answer.get("Token").is_some_and(|it| it.starts_with("aas_et/")));
    let again = crate::device::exchange(&s.env, &token, crate::device::ANDROID_ID_WEB).await;
    assert_eq!(again.get("Error"), Some("BadAuthentication"));
}

/// Two example feeds services on two loopback host names (127.0.0.2, 127.0.0.3, cross-site to
/// each other and to the accounts server on 127.0.0.1), each behind the client library's layer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_sign_on_across_two_hosts_and_sign_out_everywhere() {
    let env = TestEnv::start().await;
    env.account("alice@example.test", "password-1").await;
    env.account("bob@example.test", "password-2").await;
    let a = crate::feeds::start(&env, "feeds-a", "127.0.0.2", None).await;
    let b = crate::feeds::start(&env, "feeds-b", "127.0.0.3", None).await;
    let chrome = Chrome::start().await;

    // At A, anonymous: tessera asks for a password, then A has a session of its own.
    chrome.client.goto(&format!("{a}/")).await.unwrap();
    assert_eq!(chrome.path().await, "/accounts/ServiceLogin");
    chrome.fill("Email", "alice@example.test").await;
    chrome.fill("Passwd", "password-1").await;
    chrome.click_button("Sign in").await;
    assert_eq!(chrome.client.current_url().await.unwrap().as_str(), format!("{a}/"));
    assert!(chrome.text().await.contains("Signed in as alice@example.test"));

    // At B, another host: signed in without a password, and no auth= left in the address.
    chrome.client.goto(&format!("{b}/")).await.unwrap();
    assert_eq!(chrome.client.current_url().await.unwrap().as_str(), format!("{b}/"));
    assert!(chrome.text().await.contains("Signed in as alice@example.test"));

    // Sign out at B: tessera's page tells every service (front channel), then goes back to B,
    // which sends the browser to sign in again.
    chrome.click_link("Sign out everywhere").await;
    assert_eq!(chrome.path().await, "/accounts/Logout");
    assert!(chrome.text().await.contains("You are signed out"));
    chrome.wait_for_images().await;
    let back = chrome.wait_for_url(|url| url.path() == "/accounts/ServiceLogin").await;
    assert!(back.query().unwrap_or_default().contains("service=feeds-b"), "{back}");
    chrome.client.find(Locator::Id("Passwd")).await.unwrap();
    // Signed out at A too.
    chrome.client.goto(&format!("{a}/")).await.unwrap();
    assert_eq!(chrome.path().await, "/accounts/ServiceLogin");
    assert!(!chrome.text().await.contains("Choose an account"));

    // Alice signs in again at A; bob's sign-in from an installed application (ClientLogin, then
    // IssueAuthToken) joins the browser through MergeSession and lands at A as bob.
    chrome.fill("Email", "alice@example.test").await;
    chrome.fill("Passwd", "password-1").await;
    chrome.click_button("Sign in").await;
    assert!(chrome.text().await.contains("Signed in as alice@example.test"));
    let uber = ubertoken(&env, "bob@example.test", "password-2").await;
    let merge = format!(
        "{}/accounts/MergeSession?source=test&uberauth={uber}&service=feeds-a&continue={}",
        env.base,
        crate::support::urlencode(&format!("{a}/"))
    );
    chrome.client.goto(&merge).await.unwrap();
    assert_eq!(chrome.client.current_url().await.unwrap().as_str(), format!("{a}/"));
    assert!(chrome.text().await.contains("Signed in as bob@example.test"));

    // At B with two accounts: the chooser; alice is picked there.
    chrome.client.goto(&format!("{b}/")).await.unwrap();
    assert!(chrome.text().await.contains("Choose an account"));
    let mut alice = None;
    for link in chrome.client.find_all(Locator::Css(".chooser a")).await.unwrap() {
        if link.text().await.unwrap().contains("alice@example.test") {
            alice = Some(link);
        }
    }
    chrome.click_and_wait(alice.expect("alice in the chooser")).await;
    assert_eq!(chrome.client.current_url().await.unwrap().as_str(), format!("{b}/"));
    assert!(chrome.text().await.contains("Signed in as alice@example.test"));

    // The same ubertoken again: a page that says so, no redirect, no server error.
    chrome.client.goto(&merge).await.unwrap();
    assert_eq!(chrome.path().await, "/accounts/MergeSession");
    let text = chrome.text().await;
    assert!(text.contains("already been used or has expired"), "{text}");

    // Hostile continue URLs: refused on a page, never followed, and the ubertoken not used up.
    let fresh = ubertoken(&env, "bob@example.test", "password-2").await;
    for hostile in ["http://evil.example/", &format!("{b}/"), "javascript:alert(1)"] {
        let url = format!(
            "{}/accounts/MergeSession?uberauth={fresh}&service=feeds-a&continue={}",
            env.base,
            crate::support::urlencode(hostile)
        );
        chrome.client.goto(&url).await.unwrap();
        assert_eq!(chrome.path().await, "/accounts/MergeSession", "{hostile}");
        let text = chrome.text().await;
        assert!(text.contains("does not lead back to a registered service"), "{hostile}: {text}");
        let url = format!(
            "{}/accounts/ServiceLogin?service=feeds-a&continue={}",
            env.base,
            crate::support::urlencode(hostile)
        );
        chrome.client.goto(&url).await.unwrap();
        assert_eq!(chrome.path().await, "/accounts/ServiceLogin", "{hostile}");
        let text = chrome.text().await;
        assert!(text.contains("does not lead back to the service it names"), "{hostile}: {text}");
    }
    let merge = format!(
        "{}/accounts/MergeSession?uberauth={fresh}&service=feeds-a&continue={}",
        env.base,
        crate::support::urlencode(&format!("{a}/"))
    );
    chrome.client.goto(&merge).await.unwrap();
    assert_eq!(chrome.client.current_url().await.unwrap().as_str(), format!("{a}/"));
    assert!(chrome.text().await.contains("Signed in as bob@example.test"));
    chrome.close().await;
}

/// An ubertoken of `email`, as an installed application gets one: ClientLogin's SID and LSID
/// traded at `IssueAuthToken`.
async fn ubertoken(env: &TestEnv, email: &str, password: &str) -> String {
    let (sid, lsid) = crate::sso::client_login(env, email, password).await;
    let mut app = crate::support::Browser::new(&env.base);
    let res = app.post("/accounts/IssueAuthToken", &[("SID", &sid), ("LSID", &lsid)]).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.body
}

/// The front-end token proxy end to end: the example feeds service's single-page reader (plain
/// HTML and JavaScript on another origin) asks `POST /proxy/request` with the browser's tessera
/// session, gets the approval page's URL, the person allows on the one consent page and comes
/// back, and the reader shows the feed the proxy fetched with the held access token.
#[tokio::test]
async fn the_feed_reader_reaches_its_feed_through_the_token_proxy() {
    use tessera_domain::audit::Actor;
    use tessera_domain::proxy::{NewFrontEnd, Target, TargetProtocol};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let feeds_addr = listener.local_addr().unwrap();
    let public = format!("http://{feeds_addr}");
    // The proxy may reach exactly the example server's loopback address.
    let env =
        TestEnv::with_config(|raw| raw.proxy.allowed_addresses = vec![feeds_addr.to_string()])
            .await;
    let ctx = env.ctx();
    let account = env.account("reader@example.test", "password-1").await;
    let project =
        tessera_domain::projects::create(ctx, "Reader", "reader@example.test", &Actor::Cli)
            .await
            .unwrap();
    let api = tessera_example_feeds::api_scope(&public);
    let service = tessera_domain::services::NewService {
        name: "reader".to_owned(),
        display_name: "Reader Feeds".to_owned(),
        scopes: vec![api.clone()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    tessera_domain::services::add(ctx, service, &Actor::Cli).await.unwrap();
    let new = NewFrontEnd {
        name: "Feed Reader".to_owned(),
        origins: vec![public.clone()],
        targets: vec![Target {
            prefix: api.clone(),
            protocol: TargetProtocol::OAuth2,
            consumer: None,
            scopes: vec![api],
        }],
    };
    let app = tessera_domain::proxy::register(ctx, &project, new, &Actor::Cli).await.unwrap();
    let config = tessera_example_feeds::FeedsConfig {
        accounts: env.base.clone(),
        service: "reader".to_owned(),
        public: public.clone(),
        cookie_name: Some("READERSID".to_owned()),
        api_scope: None,
        proxy_app: Some(app.id().to_owned()),
    };
    let feeds = tessera_example_feeds::router(&config).unwrap();
    tokio::spawn(async move { axum::serve(listener, feeds).await });

    let chrome = Chrome::start().await;
    chrome.sign_in(&env.base, "reader@example.test", "password-1").await;
    chrome.client.goto(&format!("{public}/reader")).await.unwrap();
    // The reader's script asks the proxy and, without a grant, links to the approval page.
    chrome.wait_until("!document.getElementById('approve').hidden").await;
    let approve = chrome.client.find(Locator::Id("approve")).await.unwrap();
    let href = approve.attr("href").await.unwrap().unwrap();
    assert!(href.starts_with(&format!("{}/proxy/approve?app=", env.base)), "{href}");
    chrome.click_and_wait(approve).await;
    let text = chrome.text().await;
    assert!(text.contains("Feed Reader wants to access your account"), "{text}");
    assert!(text.contains("Manage your Reader Feeds data"), "{text}");
    chrome.click_button("Allow").await;
    // Back on the reader, which now shows the feed the proxy fetched.
    let url = chrome.wait_for_url(|url| url.path() == "/reader").await;
    assert_eq!(url.origin().ascii_serialization(), public);
    chrome.wait_until("document.getElementById('feed').textContent !== ''").await;
    let feed = chrome.client.find(Locator::Id("feed")).await.unwrap();
    let subject = tessera_domain::accounts::subject(&account.id);
    assert_eq!(feed.text().await.unwrap().trim(), format!("feed for {subject}"));
    let status = chrome.client.find(Locator::Id("status")).await.unwrap().text().await.unwrap();
    assert_eq!(status, "The feed answered 200.");
    // The page's own view of the exchange carries no token.
    let html = chrome.client.source().await.unwrap();
    assert!(!html.contains("ya29."), "{html}");
    chrome.close().await;
}
