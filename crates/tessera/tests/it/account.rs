//! The account page: profile, password, app passwords, sessions, security events.

use crate::support::TestEnv;

#[tokio::test]
async fn app_passwords_are_shown_once_listed_verified_and_revoked() {
    let env = TestEnv::start().await;
    let account = env.account("kim@example.test", "password-1").await;
    let mut b = env.browser();
    b.sign_in("kim@example.test", "password-1").await;
    let page = b.get("/account").await;
    let created = b
        .post(
            "/account/app-passwords",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("name", "Mail on laptop")],
        )
        .await;
    assert_eq!(created.status, 200);
    let start = created.body.find("id=\"app-password\">").unwrap() + 18;
    let shown = created.body[start..start + 19].to_owned();
    assert_eq!(shown.len(), 19);
    assert!(shown.chars().all(|c| c.is_ascii_lowercase() || c == ' '), "{shown}");
    assert!(crate::support::app_password_works(&env, &account, &shown).await);
    assert!(
        crate::support::app_password_works(&env, &account, &shown.replace(' ', "").to_uppercase())
            .await
    );
    assert!(!crate::support::app_password_works(&env, &account, "aaaabbbbccccdddd").await);

    let page = b.get("/account").await;
    assert!(page.body.contains("Mail on laptop"));
    assert!(!page.body.contains(&shown), "the password is never shown again");
    let id = page.input("id").unwrap();
    let res = b
        .post(
            "/account/app-passwords/revoke",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("id", &id)],
        )
        .await;
    assert_eq!(res.status, 303);
    assert!(!crate::support::app_password_works(&env, &account, &shown).await);
    let events = b.get("/account").await;
    assert!(events.body.contains("App password revoked"));
}

#[tokio::test]
async fn password_change_signs_out_other_sessions_and_needs_the_current_password() {
    let env = TestEnv::start().await;
    env.account("lee@example.test", "password-1").await;
    let mut here = env.browser();
    let mut there = env.browser();
    here.sign_in("lee@example.test", "password-1").await;
    there.sign_in("lee@example.test", "password-1").await;
    let page = here.get("/account").await;
    let wrong = here
        .post(
            "/account/password",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("current", "nope"),
                ("new", "password-2"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.body.contains("current password is not right"));
    let short = here
        .post(
            "/account/password",
            &[
                ("csrf", &wrong.csrf()),
                ("authuser", "0"),
                ("current", "password-1"),
                ("new", "short"),
            ],
        )
        .await;
    assert!(short.body.contains("at least 8 characters"));
    let ok = here
        .post(
            "/account/password",
            &[
                ("csrf", &short.csrf()),
                ("authuser", "0"),
                ("current", "password-1"),
                ("new", "password-2"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303);
    assert_eq!(here.get("/account").await.status, 200);
    assert_eq!(there.get("/account").await.status, 302);
    assert_eq!(env.browser().sign_in("lee@example.test", "password-2").await.status, 303);
    assert_eq!(env.browser().sign_in("lee@example.test", "password-1").await.status, 200);
}

#[tokio::test]
async fn sessions_are_listed_and_can_be_signed_out_remotely() {
    let env = TestEnv::start().await;
    env.account("max@example.test", "password-1").await;
    let mut here = env.browser();
    let mut there = env.browser();
    here.sign_in("max@example.test", "password-1").await;
    there.sign_in("max@example.test", "password-1").await;
    let page = here.get("/account").await;
    assert!(page.body.contains("(this browser)"));
    let id = page.input("id").expect("the other session has a sign-out button");
    let res = here
        .post("/account/sessions/revoke", &[("csrf", &page.csrf()), ("authuser", "0"), ("id", &id)])
        .await;
    assert_eq!(res.status, 303);
    assert_eq!(there.get("/account").await.status, 302);
    assert_eq!(here.get("/account").await.status, 200);
    let events = tessera_domain::audit::list(env.ctx(), None, None, 50).await.unwrap();
    assert!(events.iter().any(|it| it.event == "session.revoke"));
}

#[tokio::test]
async fn profile_changes_and_the_page_escapes_what_people_type() {
    let env = TestEnv::start().await;
    env.account("nia@example.test", "password-1").await;
    let mut b = env.browser();
    b.sign_in("nia@example.test", "password-1").await;
    let page = b.get("/account").await;
    let res = b
        .post(
            "/account/profile",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("name", "<script>alert(1)</script>")],
        )
        .await;
    assert_eq!(res.status, 303);
    let page = b.get("/account").await;
    assert!(!page.body.contains("<script>alert(1)"));
    assert!(
        page.body.contains("&lt;script&gt;") || page.body.contains("&#60;script&#62;"),
        "the name is shown, escaped"
    );
    assert!(page.body.contains("Profile changed"));
}

#[tokio::test]
async fn account_pages_need_a_session_and_a_csrf_token() {
    let env = TestEnv::start().await;
    env.account("oz@example.test", "password-1").await;
    let mut anonymous = env.browser();
    let res = anonymous.get("/account").await;
    assert_eq!(res.status, 302);
    assert_eq!(res.location(), "/accounts/ServiceLogin?continue=%2Faccount");
    let mut b = env.browser();
    b.sign_in("oz@example.test", "password-1").await;
    let res = b.post("/account/profile", &[("authuser", "0"), ("name", "x")]).await;
    assert_eq!(res.status, 400);
    let account =
        tessera_domain::accounts::find_by_email(env.ctx(), "oz@example.test").await.unwrap();
    assert_eq!(account.name, "oz");
}

#[tokio::test]
async fn connected_apps_are_listed_and_removing_one_kills_its_credentials() {
    let env = TestEnv::start().await;
    let account = env.account("una@example.test", "password-1").await;
    let ctx = env.ctx();
    let grant = tessera_domain::grants::grant(
        ctx,
        &account.id,
        "calendar-sync.example",
        tessera_domain::credentials::Protocol::AuthSub,
        &["https://cal.example/feeds/".to_owned()],
        "",
    )
    .await
    .unwrap();
    let (_, digest) = ctx.new_token();
    let mut token = tessera_store::CredentialRecord::new(
        digest.clone(),
        tessera_store::CredentialKind::AuthsubSession,
        crate::support::T0,
    );
    token.account_id = Some(account.id.clone());
    token.grant_id = Some(grant.id.clone());
    ctx.store.credentials().insert(&token).await.unwrap();

    let mut b = env.browser();
    b.sign_in("una@example.test", "password-1").await;
    let page = b.get("/account").await;
    assert!(page.body.contains("calendar-sync.example (not registered)"), "{}", page.body);
    assert!(page.body.contains("https://cal.example/feeds/"));
    let res = b
        .post(
            "/account/apps/revoke",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("grant", &grant.id)],
        )
        .await;
    assert_eq!(res.status, 303);
    assert!(
        ctx.store.credentials().find_live(&digest, crate::support::T0).await.unwrap().is_none()
    );
    let page = b.get("/account").await;
    assert!(page.body.contains("No app has access to your account."));
    assert!(page.body.contains("Access removed from an app"));
    // Someone else's grant id is not found.
    let other = env.account("vic@example.test", "password-1").await;
    let theirs = tessera_domain::grants::grant(
        ctx,
        &other.id,
        "x",
        tessera_domain::credentials::Protocol::OAuth2,
        &["openid".to_owned()],
        "",
    )
    .await
    .unwrap();
    let res = b
        .post(
            "/account/apps/revoke",
            &[("csrf", &page.csrf()), ("authuser", "0"), ("grant", &theirs.id)],
        )
        .await;
    assert_eq!(res.status, 404);
    assert!(ctx.store.grants().get(&theirs.id).await.unwrap().unwrap().revoked_at.is_none());
}
