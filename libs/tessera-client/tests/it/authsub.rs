//! AuthSub against a mock accounts server: request URL, reply, session upgrade, token info, revoke,
//! and (feature `authsub-secure`) RSA-SHA1 signatures checked with aws-lc-rs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tessera_client::Secret;
use tessera_client::authsub::{AuthSubClient, AuthSubError, AuthSubRequest, token_from_reply};
use url::Url;

use crate::support::serve;

#[derive(Default)]
pub struct Accounts {
    pub base: std::sync::OnceLock<String>,
    /// The RSAPublicKey DER of the registered certificate, for secure tokens.
    pub public_key: Mutex<Option<Vec<u8>>>,
    pub headers: Mutex<Vec<String>>,
    pub revoked: Mutex<Vec<String>>,
}

/// `name="value"` or `name=value` attributes of an AuthSub header (legacy-auth §3.4).
fn attributes(value: &str) -> Option<HashMap<String, String>> {
    let mut rest = value.strip_prefix("AuthSub ")?.trim();
    let mut attrs = HashMap::new();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"')?,
            None => after.split_once(' ').unwrap_or((after, "")),
        };
        attrs.insert(name.trim().to_owned(), value.to_owned());
        rest = after.trim();
    }
    Some(attrs)
}

/// The token of a request, after checking its signature when the header carries one.
fn authenticate(state: &Accounts, headers: &HeaderMap, path: &str) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.to_owned();
    state.headers.lock().unwrap().push(value.clone());
    let attrs = attributes(&value)?;
    if let Some(data) = attrs.get("data") {
        use base64::Engine as _;
        let sig = base64::engine::general_purpose::STANDARD.decode(attrs.get("sig")?).ok()?;
        let key = state.public_key.lock().unwrap().clone()?;
        let verifier = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            key,
        );
        verifier.verify(data.as_bytes(), &sig).ok()?;
        let fields: Vec<&str> = data.split(' ').collect();
        let expected_url = format!("{}{path}", state.base.get().unwrap());
        if attrs.get("sigalg")? != "rsa-sha1"
            || fields.len() != 4
            || fields[0] != "GET"
            || fields[1] != expected_url
        {
            return None;
        }
        fields[2].parse::<u64>().ok()?;
        fields[3].parse::<u64>().ok()?;
    }
    attrs.get("token").cloned()
}

fn invalid() -> Response {
    (StatusCode::FORBIDDEN, "<HTML><TITLE>Invalid AuthSub token</TITLE></HTML>").into_response()
}

async fn session_token(State(state): State<Arc<Accounts>>, headers: HeaderMap) -> Response {
    match authenticate(&state, &headers, "/accounts/AuthSubSessionToken").as_deref() {
        Some("single-1") => (StatusCode::OK, "Token=DQAAAExampleSessionToken01\n").into_response(),
        _ => invalid(),
    }
}

async fn token_info(State(state): State<Arc<Accounts>>, headers: HeaderMap) -> Response {
    match authenticate(&state, &headers, "/accounts/AuthSubTokenInfo").as_deref() {
        Some("DQAAAExampleSessionToken01") => {
            let secure = state.public_key.lock().unwrap().is_some();
            let body = format!(
                "Target=http://app.example.com\nScope=http://www.google.com/calendar/feeds/ http://www.google.com/m8/feeds/\nSecure={secure}\n"
            );
            (StatusCode::OK, body).into_response()
        }
        _ => invalid(),
    }
}

async fn revoke(State(state): State<Arc<Accounts>>, headers: HeaderMap) -> Response {
    match authenticate(&state, &headers, "/accounts/AuthSubRevokeToken") {
        Some(token) => {
            state.revoked.lock().unwrap().push(token);
            StatusCode::OK.into_response()
        }
        None => invalid(),
    }
}

pub async fn start() -> (Url, Arc<Accounts>) {
    let state = Arc::new(Accounts::default());
    let router = axum::Router::new()
        .route("/accounts/AuthSubSessionToken", get(session_token))
        .route("/accounts/AuthSubTokenInfo", get(token_info))
        .route("/accounts/AuthSubRevokeToken", get(revoke))
        .with_state(state.clone());
    let base = serve(router).await;
    state.base.set(base.clone()).unwrap();
    (Url::parse(&base).unwrap(), state)
}

#[tokio::test]
async fn unsigned_flow_from_request_url_to_revocation() {
    let (base, state) = start().await;
    let request = AuthSubRequest::new(
        "http://app.example.com/cb?user=7",
        ["http://www.google.com/calendar/feeds/"],
    );
    let url = request.url(&base).unwrap();
    assert_eq!(url.path(), "/accounts/AuthSubRequest");
    // What the server's redirect would look like (legacy-auth §3.3).
    let next: String = url.query_pairs().find(|(name, _)| name == "next").unwrap().1.into_owned();
    let single_use = token_from_reply(&format!("{next}&token=single-1")).unwrap();

    let client = AuthSubClient::new(base);
    let session = client.session_token(&single_use).await.unwrap();
    assert_eq!(session.expose(), "DQAAAExampleSessionToken01");
    assert_eq!(state.headers.lock().unwrap()[0], "AuthSub token=\"single-1\"");

    let info = client.token_info(&session).await.unwrap();
    assert_eq!(info.target, "http://app.example.com");
    assert_eq!(
        info.scopes,
        vec!["http://www.google.com/calendar/feeds/", "http://www.google.com/m8/feeds/"]
    );
    assert!(!info.secure);

    client.revoke(&session).await.unwrap();
    assert_eq!(*state.revoked.lock().unwrap(), vec!["DQAAAExampleSessionToken01"]);

    let err = client.session_token(&Secret::new("bogus")).await.unwrap_err();
    assert!(matches!(err, AuthSubError::Rejected { status: 403 }), "{err:?}");
}

#[cfg(feature = "authsub-secure")]
mod secure {
    use std::sync::Arc;

    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::{self, KeyPair as _, UnparsedPublicKey};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::pkcs8::DecodePrivateKey as _;
    use tessera_client::authsub::{AuthSubClient, AuthSubSigner, signed_data};
    use tessera_client::{ManualClock, Secret};

    const T0: u64 = 1_300_000_000;

    /// A fresh RSA-2048 key as (PKCS#8 PEM, PKCS#1 PEM, RSAPublicKey DER).
    fn key() -> (String, String, Vec<u8>) {
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = pair.as_der().unwrap();
        let body = STANDARD.encode(pkcs8.as_ref());
        let lines: Vec<&str> =
            body.as_bytes().chunks(64).map(|it| std::str::from_utf8(it).unwrap()).collect();
        let pkcs8_pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        let pkcs1_pem = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8.as_ref())
            .unwrap()
            .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
            .unwrap();
        (pkcs8_pem, pkcs1_pem.to_string(), pair.public_key().as_ref().to_vec())
    }

    fn verify(public: &[u8], data: &str, sig_b64: &str) -> bool {
        let sig = STANDARD.decode(sig_b64).unwrap();
        UnparsedPublicKey::new(&signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY, public)
            .verify(data.as_bytes(), &sig)
            .is_ok()
    }

    #[test]
    fn signatures_verify_with_an_independent_verifier() {
        let (pkcs8, pkcs1, public) = key();
        for pem in [&pkcs8, &pkcs1] {
            let signer = AuthSubSigner::from_pem(pem).unwrap();
            let data = signed_data(
                "GET",
                "https://www.google.com/calendar/feeds/default/private/full",
                T0,
                15113559630804518020,
            );
            let sig = signer.sign(&data).unwrap();
            assert!(verify(&public, &data, &sig));
            assert!(!verify(&public, &data.replace("GET", "PUT"), &sig), "tampered data must fail");
        }
        assert!(
            AuthSubSigner::from_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .is_err()
        );
    }

    #[test]
    fn header_layout() {
        let (pkcs8, _, public) = key();
        let signer = AuthSubSigner::from_pem(&pkcs8).unwrap();
        let header = signer
            .authorization_header(
                &Secret::new("CKF50YzIHxCT85KMAg"),
                "get",
                "https://x.test/feeds?a=b",
                T0,
                42,
            )
            .unwrap();
        let data = "GET https://x.test/feeds?a=b 1300000000 42";
        let prefix = format!("AuthSub token=\"CKF50YzIHxCT85KMAg\" data=\"{data}\" sig=\"");
        assert!(header.starts_with(&prefix), "{header}");
        assert!(header.ends_with("\" sigalg=\"rsa-sha1\""), "{header}");
        let sig = &header[prefix.len()..header.len() - "\" sigalg=\"rsa-sha1\"".len()];
        assert!(verify(&public, data, sig));
    }

    #[tokio::test]
    async fn secure_client_signs_every_call() {
        let (base, state) = super::start().await;
        let (pkcs8, _, public) = key();
        *state.public_key.lock().unwrap() = Some(public);
        let client = AuthSubClient::new(base)
            .with_signer(AuthSubSigner::from_pem(&pkcs8).unwrap())
            .with_clock(Arc::new(ManualClock::at_unix(T0)));
        let session = client.session_token(&Secret::new("single-1")).await.unwrap();
        let info = client.token_info(&session).await.unwrap();
        assert!(info.secure);
        client.revoke(&session).await.unwrap();
        let headers = state.headers.lock().unwrap().clone();
        assert_eq!(headers.len(), 3);
        let nonces: Vec<&str> = headers.iter().map(|it| it.split(' ').nth(5).unwrap()).collect();
        for header in &headers {
            assert!(header.contains(&format!(" {T0} ")), "{header}");
        }
        assert!(
            nonces[0] != nonces[1] && nonces[1] != nonces[2],
            "fresh nonce per request: {nonces:?}"
        );

        // Signed with a key the server does not hold: the server's RSA-SHA1 check refuses it.
        let (other, _, _) = key();
        let impostor = AuthSubClient::new(url::Url::parse(state.base.get().unwrap()).unwrap())
            .with_signer(AuthSubSigner::from_pem(&other).unwrap());
        let err = impostor.session_token(&Secret::new("single-1")).await.unwrap_err();
        assert!(
            matches!(err, tessera_client::authsub::AuthSubError::Rejected { status: 403 }),
            "{err:?}"
        );
    }
}
