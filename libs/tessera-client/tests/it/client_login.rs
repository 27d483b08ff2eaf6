//! `ClientLogin` against a mock `/accounts/ClientLogin`: success, failures and the CAPTCHA retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tessera_client::Secret;
use tessera_client::client_login::{AccountType, ClientLogin, ClientLoginError};
use url::Url;

use crate::support::serve;

const SUCCESS: &str =
    "SID=DQAAAGgAExampleSid0001\nLSID=DQAAAGsAExampleLsid0001\nAuth=DQAAAGgAExampleAuth0001_-xyz\n";

#[derive(Default)]
struct Seen {
    forms: Mutex<Vec<HashMap<String, String>>>,
}

async fn client_login(
    State(seen): State<Arc<Seen>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    seen.forms.lock().unwrap().push(form.clone());
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let forbidden = |body: &'static str| (StatusCode::FORBIDDEN, body).into_response();
    match (field("Email"), field("Passwd")) {
        ("alice@example.com", "north23AZ") => (StatusCode::OK, SUCCESS).into_response(),
        ("captcha@example.com", "north23AZ") => {
            if field("logintoken") == "DQAAAGgAExampleCaptcha01" && field("logincaptcha") == "mydog"
            {
                (StatusCode::OK, SUCCESS).into_response()
            } else {
                forbidden(
                    "Error=CaptchaRequired\nUrl=https://accounts.example.test/accounts/DisplayUnlockCaptcha\nCaptchaToken=DQAAAGgAExampleCaptcha01\nCaptchaUrl=Captcha?ctoken=HiteExampleCtoken0001\n",
                )
            }
        }
        ("2sv@example.com", _) => forbidden("Error=BadAuthentication\nInfo=InvalidSecondFactor\n"),
        ("gone@example.com", _) => {
            forbidden("Error=AccountDeleted\nUrl=https://accounts.example.test/help\n")
        }
        _ => forbidden("Error=BadAuthentication\n"),
    }
}

async fn captcha() -> impl IntoResponse {
    ([("content-type", "image/png")], "\u{89}PNG")
}

async fn start() -> (ClientLogin, String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let router = axum::Router::new()
        .route("/accounts/ClientLogin", post(client_login))
        .route("/accounts/Captcha", get(captcha))
        .with_state(seen.clone());
    let base = serve(router).await;
    (ClientLogin::new(Url::parse(&base).unwrap()), base, seen)
}

#[tokio::test]
async fn login_returns_tokens_and_sends_every_field() {
    let (client, _, seen) = start().await;
    let tokens = client
        .login("alice@example.com", &Secret::new("north23AZ"), "cl", "Example-CalApp-1.0")
        .await
        .unwrap();
    assert_eq!(tokens.auth.expose(), "DQAAAGgAExampleAuth0001_-xyz");
    assert_eq!(tokens.sid.expose(), "DQAAAGgAExampleSid0001");
    assert_eq!(tokens.lsid.expose(), "DQAAAGsAExampleLsid0001");
    assert_eq!(tokens.authorization_header(), "GoogleLogin auth=DQAAAGgAExampleAuth0001_-xyz");
    let form = seen.forms.lock().unwrap()[0].clone();
    assert_eq!(form["accountType"], "HOSTED_OR_GOOGLE");
    assert_eq!(form["service"], "cl");
    assert_eq!(form["source"], "Example-CalApp-1.0");
    assert!(!form.contains_key("logintoken"));

    let google = client.clone().with_account_type(AccountType::Google);
    google.login("alice@example.com", &Secret::new("north23AZ"), "cl", "x").await.unwrap();
    assert_eq!(seen.forms.lock().unwrap()[1]["accountType"], "GOOGLE");
}

#[tokio::test]
async fn captcha_challenge_then_retry() {
    let (client, base, seen) = start().await;
    let password = Secret::new("north23AZ");
    let err = client.login("captcha@example.com", &password, "cl", "app").await.unwrap_err();
    let ClientLoginError::CaptchaRequired(challenge) = err else { panic!("unexpected {err:?}") };
    let (token, url, failure) = (challenge.token, challenge.url, challenge.failure);
    assert_eq!(token, "DQAAAGgAExampleCaptcha01");
    assert_eq!(url.as_str(), format!("{base}/accounts/Captcha?ctoken=HiteExampleCtoken0001"));
    assert_eq!(
        failure.url.as_deref(),
        Some("https://accounts.example.test/accounts/DisplayUnlockCaptcha")
    );
    // The image URL is absolute and servable.
    let image = reqwest::get(url).await.unwrap();
    assert_eq!(image.status(), 200);

    let tokens = client
        .login_with_captcha("captcha@example.com", &password, "cl", "app", &token, "mydog")
        .await
        .unwrap();
    assert_eq!(tokens.auth.expose(), "DQAAAGgAExampleAuth0001_-xyz");
    let form = seen.forms.lock().unwrap()[1].clone();
    assert_eq!(form["logintoken"], "DQAAAGgAExampleCaptcha01");
    assert_eq!(form["logincaptcha"], "mydog");

    let err = client
        .login_with_captcha("captcha@example.com", &password, "cl", "app", &token, "wrong")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientLoginError::CaptchaRequired(_)), "{err:?}");
}

#[tokio::test]
async fn failures_map_to_variants_with_info() {
    let (client, _, _) = start().await;
    let err = client.login("2sv@example.com", &Secret::new("x"), "cl", "app").await.unwrap_err();
    assert!(err.is_second_factor_required(), "{err:?}");
    let err =
        client.login("alice@example.com", &Secret::new("wrong"), "cl", "app").await.unwrap_err();
    assert!(
        matches!(err, ClientLoginError::BadAuthentication(ref f) if f.info.is_none() && f.url.is_none()),
        "{err:?}"
    );
    assert!(!err.is_second_factor_required());
    let err = client.login("gone@example.com", &Secret::new("x"), "cl", "app").await.unwrap_err();
    assert!(
        matches!(err, ClientLoginError::AccountDeleted(ref f) if f.url.as_deref() == Some("https://accounts.example.test/help")),
        "{err:?}"
    );
}
