//! Browser sign-in over HTTP: password, CSRF, CAPTCHA, 2-step, chooser, sign-out, redirects, restarts.

use crate::support::{TestEnv, urlencode};

#[tokio::test]
async fn health_ready_and_metrics() {
    let env =
        TestEnv::with_config(|raw| raw.metrics.token = "scrape-token-0123456789".to_owned()).await;
    let mut b = env.browser();
    assert_eq!(b.get("/healthz").await.status, 200);
    assert_eq!(b.get("/readyz").await.status, 200);
    b.get("/accounts/ServiceLogin").await;
    let res = reqwest::Client::new()
        .get(env.url("/metrics"))
        .bearer_auth("scrape-token-0123456789")
        .send()
        .await
        .unwrap();
    let metrics = crate::support::Page {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap(),
    };
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("tessera_http_requests_total"), "{}", metrics.body);
    assert!(metrics.body.contains("route=\"/accounts/ServiceLogin\""), "{}", metrics.body);
}

#[tokio::test]
async fn password_sign_in_sets_a_session_and_reports_the_account() {
    let env = TestEnv::start().await;
    let account = env.account("alice@example.test", "correct horse").await;
    let mut b = env.browser();
    let form = b.get("/accounts/ServiceLogin").await;
    assert!(form.body.contains("<label for=\"Email\">Email</label>"));
    assert!(form.body.contains("<label for=\"Passwd\">Password</label>"));
    assert!(form.body.contains(">Sign in</button>"));
    let csp = form.headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(form.headers.get("referrer-policy").unwrap(), "no-referrer");

    let res = b
        .post(
            "/accounts/ServiceLoginAuth",
            &[("csrf", &form.csrf()), ("Email", "Alice@Example.test"), ("Passwd", "correct horse")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), format!("{}/account?authuser=0", env.base));
    let signin = res.headers.get("google-accounts-signin").unwrap().to_str().unwrap();
    assert_eq!(
        signin,
        format!(
            "email=\"alice@example.test\", obfuscatedid=\"{}\", sessionindex=0",
            tessera_domain::accounts::subject(&account.id)
        )
    );
    let set_cookie: Vec<_> = res
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|it| it.to_str().unwrap().to_owned())
        .collect();
    let session_cookie = set_cookie.iter().find(|it| it.starts_with("TSID=")).unwrap();
    assert!(
        session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"),
        "{session_cookie}"
    );
    assert!(!session_cookie.contains("Max-Age"), "not persistent: {session_cookie}");

    let page = b.get("/account").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("alice@example.test"));
    // The store holds only a digest of the cookie.
    let token = b.jar["TSID"].clone();
    let digest = tessera_crypto::digest::token_digest(&token);
    assert!(
        env.ctx()
            .store
            .credentials()
            .find_live(&digest, crate::support::T0)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        env.ctx()
            .store
            .credentials()
            .find_live(&token, crate::support::T0)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn stay_signed_in_makes_a_persistent_cookie() {
    let env = TestEnv::start().await;
    env.account("p@example.test", "password-1").await;
    let mut b = env.browser();
    let form = b.get("/accounts/ServiceLogin").await;
    let res = b
        .post(
            "/accounts/ServiceLoginAuth",
            &[
                ("csrf", &form.csrf()),
                ("Email", "p@example.test"),
                ("Passwd", "password-1"),
                ("PersistentCookie", "yes"),
            ],
        )
        .await;
    let cookie = res
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|it| it.to_str().unwrap())
        .find(|it| it.starts_with("TSID="))
        .unwrap()
        .to_owned();
    assert!(cookie.contains("Max-Age=2592000"), "{cookie}");
}

#[tokio::test]
async fn wrong_password_and_unknown_account_look_the_same() {
    let env = TestEnv::start().await;
    env.account("bob@example.test", "right password").await;
    let mut b = env.browser();
    let wrong = b.sign_in("bob@example.test", "wrong password").await;
    let unknown = b.sign_in("nobody@example.test", "wrong password").await;
    assert_eq!(wrong.status, 200);
    assert_eq!(unknown.status, 200);
    let strip = |body: &str, email: &str| {
        let body = body.replace(email, "EMAIL");
        let start = body.find("name=\"csrf\" value=\"").unwrap();
        let end = body[start + 19..].find('"').unwrap() + start + 19;
        format!("{}{}", &body[..start], &body[end..])
    };
    assert_eq!(strip(&wrong.body, "bob@example.test"), strip(&unknown.body, "nobody@example.test"));
    assert!(wrong.body.contains("Wrong email or password"));
    assert!(!b.jar.contains_key("TSID"));
    let events = tessera_domain::audit::list(env.ctx(), None, None, 10).await.unwrap();
    let reasons: Vec<_> = events
        .iter()
        .filter(|it| it.event == "signin.failure")
        .map(|it| it.detail.clone())
        .collect();
    assert!(
        reasons.iter().any(|it| it.contains("bad_password"))
            && reasons.iter().any(|it| it.contains("unknown_account")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn csrf_is_required_bound_to_the_browser_and_single_use() {
    let env = TestEnv::start().await;
    env.account("carol@example.test", "password-1").await;
    let mut b = env.browser();
    let form = b.get("/accounts/ServiceLogin").await;
    let csrf = form.csrf();
    let fields = |csrf: &str| {
        vec![
            ("csrf".to_owned(), csrf.to_owned()),
            ("Email".to_owned(), "carol@example.test".to_owned()),
            ("Passwd".to_owned(), "password-1".to_owned()),
        ]
    };
    let as_refs = |v: &Vec<(String, String)>| {
        v.iter().map(|(a, b)| (a.clone(), b.clone())).collect::<Vec<_>>()
    };

    // Missing token.
    let res = b
        .post(
            "/accounts/ServiceLoginAuth",
            &[("Email", "carol@example.test"), ("Passwd", "password-1")],
        )
        .await;
    assert_eq!(res.status, 400);
    // Another browser's token.
    let mut other = env.browser();
    let foreign = other.get("/accounts/ServiceLogin").await.csrf();
    let f = as_refs(&fields(&foreign));
    let res = b
        .post(
            "/accounts/ServiceLoginAuth",
            &f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect::<Vec<_>>(),
        )
        .await;
    assert_eq!(res.status, 400);
    assert!(!b.jar.contains_key("TSID"));
    // The right token works once.
    let f = as_refs(&fields(&csrf));
    let f: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(b.post("/accounts/ServiceLoginAuth", &f).await.status, 303);
    b.jar.remove("TSID");
    let replay = b.post("/accounts/ServiceLoginAuth", &f).await;
    assert_eq!(replay.status, 400);
    assert!(replay.body.contains("expired or was already sent"));
    assert!(!b.jar.contains_key("TSID"));
    // An expired token.
    let csrf = b.get("/accounts/ServiceLogin").await.csrf();
    env.clock.advance(3 * 3600);
    let res = b
        .post(
            "/accounts/ServiceLoginAuth",
            &[("csrf", &csrf), ("Email", "carol@example.test"), ("Passwd", "password-1")],
        )
        .await;
    assert_eq!(res.status, 400);
}

#[tokio::test]
async fn captcha_appears_after_repeated_failures_and_gates_the_password() {
    let env = TestEnv::with_config(|c| c.signin.captcha_after_account_failures = 3).await;
    env.account("dave@example.test", "right password").await;
    let mut b = env.browser();
    for _ in 0..3 {
        let res = b.sign_in("dave@example.test", "wrong").await;
        assert!(res.body.contains("Wrong email or password"));
    }
    // The right password alone is no longer enough.
    let res = b.sign_in("dave@example.test", "right password").await;
    assert_eq!(res.status, 200);
    assert!(res.body.contains("Type the characters you see in the picture"), "{}", res.body);
    assert!(!b.jar.contains_key("TSID"));
    let token = res.input("logintoken").unwrap();
    let image = b.get(&format!("/accounts/Captcha?ctoken={token}")).await;
    assert_eq!(image.status, 200);
    assert_eq!(image.headers.get("content-type").unwrap(), "image/png");
    let audio = b.get(&format!("/accounts/Captcha?ctoken={token}&format=audio")).await;
    assert_eq!(audio.status, 200);
    assert_eq!(audio.headers.get("content-type").unwrap(), "audio/wav");

    // A wrong answer uses the challenge up (the page's, and one whose answer the test knows).
    let (known, answer) = crate::captcha::known_challenge(&env).await;
    let csrf = res.csrf();
    let wrong = b
        .post(
            "/accounts/ServiceLoginAuth",
            &[
                ("csrf", &csrf),
                ("Email", "dave@example.test"),
                ("Passwd", "right password"),
                ("logintoken", &token),
                ("logincaptcha", "zzzzzz"),
            ],
        )
        .await;
    assert!(wrong.body.contains("did not match"), "{}", wrong.body);
    assert_eq!(b.get(&format!("/accounts/Captcha?ctoken={token}")).await.status, 404);
    let token = known;
    let csrf = wrong.csrf();
    let wrong = b
        .post(
            "/accounts/ServiceLoginAuth",
            &[
                ("csrf", &csrf),
                ("Email", "dave@example.test"),
                ("Passwd", "right password"),
                ("logintoken", &token),
                ("logincaptcha", "zzzzzz"),
            ],
        )
        .await;
    assert!(wrong.body.contains("did not match"), "{}", wrong.body);
    let reuse = b
        .post(
            "/accounts/ServiceLoginAuth",
            &[
                ("csrf", &wrong.csrf()),
                ("Email", "dave@example.test"),
                ("Passwd", "right password"),
                ("logintoken", &token),
                ("logincaptcha", &answer),
            ],
        )
        .await;
    assert!(reuse.body.contains("did not match"), "a challenge is answered once");
    assert_eq!(b.get(&format!("/accounts/Captcha?ctoken={token}")).await.status, 404);

    // A fresh challenge answered right lets the password through.
    assert!(reuse.input("logintoken").is_some());
    let (token, answer) = crate::captcha::known_challenge(&env).await;
    let ok = b
        .post(
            "/accounts/ServiceLoginAuth",
            &[
                ("csrf", &reuse.csrf()),
                ("Email", "dave@example.test"),
                ("Passwd", "right password"),
                ("logintoken", &token),
                ("logincaptcha", &answer),
            ],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);

    // The window passes and the CAPTCHA goes away.
    env.clock.advance(3600);
    let mut fresh = env.browser();
    let form = fresh.get("/accounts/ServiceLogin").await;
    assert!(form.input("logintoken").is_none());
}

#[tokio::test]
async fn two_step_sign_in_with_totp_and_no_code_replay() {
    let env = TestEnv::start().await;
    env.account("erin@example.test", "password-1").await;
    let mut b = env.browser();
    b.sign_in("erin@example.test", "password-1").await;
    let account = b.get("/account").await;
    let setup = b.post("/account/2sv/start", &[("csrf", &account.csrf()), ("authuser", "0")]).await;
    assert_eq!(setup.status, 200);
    assert!(setup.body.contains("<svg"), "QR code is shown");
    let secret_text = {
        let start = setup.body.find("<code class=\"secret\">").unwrap() + 21;
        let end = setup.body[start..].find('<').unwrap() + start;
        setup.body[start..end].to_owned()
    };
    let secret = tessera_crypto::totp::TotpSecret::from_base32(&secret_text).unwrap();
    let wrong = b
        .post(
            "/account/2sv/confirm",
            &[
                ("csrf", &setup.csrf()),
                ("authuser", "0"),
                ("sealed", &setup.input("sealed").unwrap()),
                ("code", "000000"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 400);
    let code = secret.code_at_time(crate::support::T0);
    let on = b
        .post(
            "/account/2sv/confirm",
            &[
                ("csrf", &wrong.csrf()),
                ("authuser", "0"),
                ("sealed", &wrong.input("sealed").unwrap()),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(on.status, 303, "{}", on.body);

    // A new browser now needs a code after the password.
    env.clock.advance(30);
    let mut b2 = env.browser();
    let res = b2.sign_in("erin@example.test", "password-1").await;
    assert_eq!(res.status, 303);
    assert!(res.location().starts_with("/accounts/SecondFactor"));
    assert!(!b2.jar.contains_key("TSID"));
    let page = b2.get(res.location()).await;
    assert!(page.body.contains("<label for=\"code\">Code</label>"));
    let bad =
        b2.post("/accounts/SecondFactor", &[("csrf", &page.csrf()), ("code", "123456")]).await;
    assert!(bad.body.contains("Wrong code"));
    let code = secret.code_at_time(crate::support::T0 + 30);
    let ok = b2.post("/accounts/SecondFactor", &[("csrf", &bad.csrf()), ("code", &code)]).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert!(b2.jar.contains_key("TSID"));

    // The same code cannot finish a second sign-in.
    let mut b3 = env.browser();
    let res = b3.sign_in("erin@example.test", "password-1").await;
    let page = b3.get(res.location()).await;
    let replay =
        b3.post("/accounts/SecondFactor", &[("csrf", &page.csrf()), ("code", &code)]).await;
    assert!(replay.body.contains("Wrong code"), "{}", replay.body);
    assert!(!b3.jar.contains_key("TSID"));
}

/// `hl` reaches the 2-step page of a sign-in: the redirect carries it, the page and its wrong-code
/// answer speak the language, and the form sends it back.
#[tokio::test]
async fn the_two_step_page_speaks_the_sign_in_language() {
    let env = TestEnv::start().await;
    let ctx = env.ctx();
    let account = env.account("fleur@example.test", "password-1").await;
    let enrollment = tessera_domain::totp::start(ctx, &account, "tessera").unwrap();
    let secret = tessera_crypto::totp::TotpSecret::from_base32(&enrollment.secret_base32).unwrap();
    let code = secret.code_at_time(crate::support::T0);
    tessera_domain::totp::confirm(ctx, &account, &enrollment.sealed, &code, "").await.unwrap();
    env.clock.advance(30);

    let mut b = env.browser();
    let form = b.get("/accounts/ServiceLogin?hl=fr&continue=%2Faccount").await;
    let res = b
        .post(
            "/accounts/ServiceLoginAuth",
            &[
                ("csrf", &form.csrf()),
                ("continue", "/account"),
                ("hl", "fr"),
                ("Email", "fleur@example.test"),
                ("Passwd", "password-1"),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(
        res.location().starts_with("/accounts/SecondFactor?hl=fr&continue="),
        "{}",
        res.location()
    );
    let page = b.get(res.location()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<html lang=\"fr\">"), "{}", page.body);
    assert!(page.body.contains("<h1>Validation en deux étapes</h1>"), "{}", page.body);
    assert!(page.body.contains("pour fleur@example.test."), "{}", page.body);
    assert!(page.body.contains(">Valider</button>"), "{}", page.body);
    assert!(page.body.contains("href=\"/accounts/ServiceLogin?hl=fr\""), "{}", page.body);
    assert_eq!(page.input("hl").as_deref(), Some("fr"));
    let bad = b
        .post(
            "/accounts/SecondFactor",
            &[("csrf", &page.csrf()), ("hl", "fr"), ("continue", "/account"), ("code", "123456")],
        )
        .await;
    assert!(bad.body.contains("Code incorrect. Réessayez."), "{}", bad.body);
    assert!(!bad.body.contains("Wrong code"), "{}", bad.body);
    let code = secret.code_at_time(crate::support::T0 + 30);
    let ok = b
        .post(
            "/accounts/SecondFactor",
            &[("csrf", &bad.csrf()), ("hl", "fr"), ("continue", "/account"), ("code", &code)],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert!(b.jar.contains_key("TSID"));
}

#[tokio::test]
async fn account_chooser_authuser_and_list_accounts() {
    let env = TestEnv::start().await;
    env.account("first@example.test", "password-1").await;
    env.account("second@example.test", "password-2").await;
    let mut b = env.browser();
    b.sign_in("first@example.test", "password-1").await;
    let res = b.sign_in("second@example.test", "password-2").await;
    assert_eq!(res.location(), format!("{}/account?authuser=1", env.base));
    let chooser = b.get("/accounts/ServiceLogin?continue=%2Faccount").await;
    assert!(chooser.body.contains("Choose an account"));
    assert!(
        chooser.body.contains("first@example.test") && chooser.body.contains("second@example.test")
    );
    assert!(chooser.body.contains("Use another account"));
    assert!(chooser.body.contains("/account?authuser=1"));
    let list = b.post("/accounts/ListAccounts?json=standard", &[]).await;
    let value: serde_json::Value = serde_json::from_str(&list.body).unwrap();
    assert_eq!(value[0], "gaia.l.a.r");
    assert_eq!(value[1][0][3], "first@example.test");
    assert_eq!(value[1][1][3], "second@example.test");
    assert_eq!(value[1][1][9], 1);
    let page = b.get("/account?authuser=1").await;
    assert!(page.body.contains("Signed in as <strong>second@example.test</strong>"));
}

#[tokio::test]
async fn sign_in_rotates_tokens_so_planted_ones_die() {
    let env = TestEnv::start().await;
    env.account("mallory@example.test", "password-1").await;
    env.account("victim@example.test", "password-2").await;
    let mut attacker = env.browser();
    attacker.sign_in("mallory@example.test", "password-1").await;
    let planted = attacker.jar["TSID"].clone();
    let mut victim = env.browser();
    victim.jar.insert("TSID".to_owned(), planted.clone());
    victim.sign_in("victim@example.test", "password-2").await;
    assert!(!victim.jar["TSID"].contains(&planted));
    // The attacker's copy of the token no longer signs anyone in.
    let list = attacker.post("/accounts/ListAccounts", &[]).await;
    assert_eq!(list.body, "[\"gaia.l.a.r\",[]]");
}

#[tokio::test]
async fn logout_ends_sessions_and_follows_only_safe_continue() {
    let env = TestEnv::start().await;
    env.account("frank@example.test", "password-1").await;
    let mut b = env.browser();
    b.sign_in("frank@example.test", "password-1").await;
    let token = b.jar["TSID"].clone();
    let res = b.get("/accounts/Logout?continue=http%3A%2F%2Fevil.example%2F").await;
    assert_eq!(res.status, 302);
    assert_eq!(res.location(), "/accounts/ServiceLogin");
    assert!(!b.jar.contains_key("TSID"));
    let mut thief = env.browser();
    thief.jar.insert("TSID".to_owned(), token);
    assert_eq!(thief.get("/account").await.status, 302);
    let res = b.get(&format!("/Logout?continue={}", urlencode(&env.url("/account")))).await;
    assert_eq!(res.location(), env.url("/account"));
}

#[tokio::test]
async fn hostile_continue_urls_fall_back_to_the_account_page() {
    let env = TestEnv::start().await;
    env.account("gina@example.test", "password-1").await;
    for hostile in [
        "//evil.example/",
        "javascript:alert(1)",
        "http://localhost@evil.example/",
        "/%2F%2Fevil.example",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let mut b = env.browser();
        let res = b.sign_in_to("gina@example.test", "password-1", hostile).await;
        assert_eq!(res.status, 303);
        assert_eq!(res.location(), env.url("/account?authuser=0"), "{hostile}");
    }
    let mut b = env.browser();
    let res = b.sign_in_to("gina@example.test", "password-1", "/account?tab=security").await;
    assert_eq!(res.location(), env.url("/account?tab=security&authuser=0"));
}

#[tokio::test]
async fn disabled_accounts_cannot_sign_in_and_lose_their_sessions() {
    let env = TestEnv::start().await;
    let account = env.account("hank@example.test", "password-1").await;
    let mut b = env.browser();
    b.sign_in("hank@example.test", "password-1").await;
    tessera_domain::accounts::set_state(
        env.ctx(),
        &account,
        tessera_store::AccountState::Disabled,
        &tessera_domain::audit::Actor::Cli,
        "",
    )
    .await
    .unwrap();
    assert_eq!(b.get("/account").await.status, 302);
    let res = b.sign_in("hank@example.test", "password-1").await;
    assert!(res.body.contains("This account has been disabled."));
    let res = b.sign_in("hank@example.test", "wrong-password").await;
    assert!(res.body.contains("Wrong email or password"), "no state leaks without the password");
    tessera_domain::accounts::set_state(
        env.ctx(),
        &account,
        tessera_store::AccountState::Active,
        &tessera_domain::audit::Actor::Cli,
        "",
    )
    .await
    .unwrap();
    assert_eq!(b.sign_in("hank@example.test", "password-1").await.status, 303);
}

#[tokio::test]
async fn sessions_survive_a_restart_and_expire_on_time() {
    let env = TestEnv::start().await;
    env.account("ivy@example.test", "password-1").await;
    let mut b = env.browser();
    b.sign_in("ivy@example.test", "password-1").await;
    let cookie = b.jar["TSID"].clone();
    let env = env.restart(|_| ()).await;
    let mut b = env.browser();
    b.jar.insert("TSID".to_owned(), cookie);
    assert_eq!(b.get("/account").await.status, 200);
    env.clock.advance(24 * 3600 + 1);
    assert_eq!(b.get("/account").await.status, 302);
}

#[tokio::test]
async fn password_hashes_are_upgraded_when_the_cost_changes() {
    let env = TestEnv::start().await;
    let account = env.account("jo@example.test", "password-1").await;
    assert!(account.password_hash.as_deref().unwrap().contains("m=256,t=1"));
    let env = env.restart(|c| c.password.iterations = 2).await;
    let mut b = env.browser();
    assert_eq!(b.sign_in("jo@example.test", "password-1").await.status, 303);
    let stored = env.ctx().store.accounts().get(&account.id).await.unwrap().unwrap();
    assert!(
        stored.password_hash.as_deref().unwrap().contains("m=256,t=2"),
        "{:?}",
        stored.password_hash
    );
    assert_eq!(env.browser().sign_in("jo@example.test", "password-1").await.status, 303);
}

#[tokio::test]
async fn first_run_setup_link_creates_one_administrator_once() {
    let env = TestEnv::start().await;
    let link = env.server.as_ref().unwrap().report.setup_link.clone().unwrap();
    let path = link.strip_prefix(&env.base).unwrap().to_owned();
    let mut b = env.browser();
    let form = b.get(&path).await;
    assert_eq!(form.status, 200);
    let token = form.input("token").unwrap();
    let res = b
        .post(
            "/setup",
            &[
                ("csrf", &form.csrf()),
                ("token", &token),
                ("name", "Admin"),
                ("Email", "admin@example.test"),
                ("Passwd", "admin-password"),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let admin =
        tessera_domain::accounts::find_by_email(env.ctx(), "admin@example.test").await.unwrap();
    assert!(admin.is_admin);
    assert_eq!(b.get(&path).await.status, 403);
    let again = b.get("/accounts/ServiceLogin").await;
    let res = b
        .post(
            "/setup",
            &[
                ("csrf", &again.csrf()),
                ("token", &token),
                ("name", "Evil"),
                ("Email", "evil@example.test"),
                ("Passwd", "admin-password"),
            ],
        )
        .await;
    assert_eq!(res.status, 400);
    assert!(tessera_domain::accounts::find_by_email(env.ctx(), "evil@example.test").await.is_err());
    assert!(tessera_domain::setup::link_if_needed(env.ctx()).await.unwrap().is_none());
}

#[tokio::test]
async fn demo_mode_seeds_an_account_that_signs_in() {
    let dir = tempfile::tempdir().unwrap();
    let raw = crate::support::test_config(dir.path());
    let env =
        TestEnv::start_raw(raw, dir, tessera::StartOptions { demo: true, ..Default::default() })
            .await;
    let demo = env.server.as_ref().unwrap().report.demo.clone().unwrap();
    let mut b = env.browser();
    assert_eq!(b.sign_in(&demo.email, &demo.password).await.status, 303);
    let account = tessera_domain::accounts::find_by_email(env.ctx(), &demo.email).await.unwrap();
    assert_eq!(account.domain.as_deref(), Some("example.test"));
    // The demo project, and the project of the demo OAuth 1.0 consumer's registration.
    assert_eq!(tessera_domain::projects::list(env.ctx()).await.unwrap().len(), 2);
    assert_eq!(demo.oauth1_secret.as_deref().map(str::len), Some(24));
    assert!(
        tessera_domain::authsub::registration(env.ctx(), &demo.oauth1_consumer)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn the_sweeper_removes_dead_sessions_and_credentials_in_batches() {
    let env = TestEnv::start().await;
    env.account("sw@example.test", "password-1").await;
    for _ in 0..5 {
        env.browser().sign_in("sw@example.test", "password-1").await;
    }
    let ctx = env.ctx();
    let before = ctx.store.credentials().count().await.unwrap();
    assert!(before >= 10, "sessions and used CSRF nonces: {before}");
    assert_eq!(tessera_domain::sweep::run_once(ctx, 2).await.unwrap(), 0, "nothing is dead yet");
    env.clock.advance(24 * 3600 + tessera_domain::sweep::RETAIN_SECS + 1);
    let swept = tessera_domain::sweep::run_once(ctx, 2).await.unwrap();
    assert!(swept >= 5, "{swept}");
    assert_eq!(ctx.store.credentials().count().await.unwrap(), 0);
    assert_eq!(ctx.store.sessions().count_live(crate::support::T0).await.unwrap(), 0);
}
