//! An independent OpenID Connect implementation (the `openidconnect` crate: its own discovery,
//! PKCE, token parsing and RS256 verification) signs in against tessera by its issuer URL alone.

use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge, RedirectUrl, Scope,
    TokenResponse as _,
};

use crate::support::TestEnv;

/// The HTTP client the library calls, on this workspace's reqwest.
async fn http(
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let (parts, body) = request.into_parts();
    let res = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut builder = http::Response::builder().status(res.status());
    for (name, value) in res.headers() {
        builder = builder.header(name, value);
    }
    Ok(builder.body(res.bytes().await?.to_vec()).expect("a response"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openidconnect_crate_completes_a_code_flow() {
    let env = TestEnv::start().await;
    // The library checks expiry against the wall clock.
    #[allow(clippy::disallowed_methods)]
    let wall =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    env.clock.set(wall as i64);
    env.account("oidc@example.test", "password-1").await;
    let project = tessera_domain::projects::create(
        env.ctx(),
        "Interop",
        "oidc@example.test",
        &tessera_domain::audit::Actor::Cli,
    )
    .await
    .unwrap();
    let redirect = "https://rp.example/callback";
    let new = tessera_domain::oauth2::clients::NewClient {
        kind: tessera_domain::oauth2::clients::ClientKind::Web,
        name: "Interop RP".to_owned(),
        redirect_uris: vec![redirect.to_owned()],
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    let created = tessera_domain::oauth2::clients::create(
        env.ctx(),
        &project,
        new,
        &tessera_domain::audit::Actor::Cli,
    )
    .await
    .unwrap();
    let client_id = created.client.record.client_id.clone();

    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(env.base.clone()).unwrap(), &http)
            .await
            .unwrap();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.clone()),
        Some(ClientSecret::new(created.secret.unwrap())),
    )
    .set_redirect_uri(RedirectUrl::new(redirect.to_owned()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".to_owned()))
        .add_scope(Scope::new("profile".to_owned()))
        .add_extra_param("access_type", "offline")
        .set_pkce_challenge(challenge)
        .url();

    // A person signs in and allows.
    let mut browser = env.browser();
    browser.sign_in("oidc@example.test", "password-1").await;
    let consent = browser.get(auth_url.as_str()).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let answered = browser
        .post(
            "/o/oauth2/approval",
            &[
                ("csrf", &consent.csrf()),
                ("request", &consent.input("request").unwrap()),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(answered.status, 303, "{}", answered.body);
    let back = url::Url::parse(answered.location()).unwrap();
    let query: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(query["state"], *state.secret());
    assert_eq!(query["iss"], env.base);

    let tokens = client
        .exchange_code(AuthorizationCode::new(query["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .expect("the library accepts the ID token");
    assert_eq!(claims.issuer().as_str(), env.base);
    assert_eq!(claims.email().map(|it| it.as_str()), Some("oidc@example.test"));
    assert_eq!(claims.email_verified(), Some(true));
    let hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&client.id_token_verifier()).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&hash), "at_hash matches");

    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(info.subject(), claims.subject());

    let refreshed = client
        .exchange_refresh_token(tokens.refresh_token().expect("offline access"))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert!(!refreshed.access_token().secret().is_empty());
}
