//! The token endpoint's error answers as snapshots: what a bad request turns into, as the
//! RFC 6749 §5.2 JSON body with its HTTP status. `check` takes the request as
//! `[Authorization: VALUE\n]FORM-BODY`, runs it through parameter parsing, client authentication
//! and the grant parsers as the endpoint does, and shows `STATUS BODY` (or what was accepted).
//! After an intended change, `UPDATE_EXPECT=1 cargo test -p tessera-proto-oauth2` rewrites them.

use expect_test::{Expect, expect};

use crate::{OAuthError, Params, client_auth, token};

fn check(request: &str, expect: Expect) {
    let (authorization, body) = match request.strip_prefix("Authorization: ") {
        Some(rest) => match rest.split_once('\n') {
            Some((value, body)) => (Some(value), body),
            None => (Some(rest), ""),
        },
        None => (None, request),
    };
    let outcome = Params::parse(body.as_bytes()).and_then(|params| {
        let basic = authorization.map(basic_credentials).transpose()?;
        let client = client_auth::extract(basic, &params)?;
        let grant = token::parse(&params)?;
        Ok((client, grant))
    });
    let shown = match outcome {
        Ok((client, grant)) => format!("accepted {grant:?} from {client:?}"),
        Err(err) => error_response(&err),
    };
    expect.assert_eq(&shown);
}

/// What the web layer hands the engine for `Basic VALUE`: the split, still form-encoded parts (the
/// one `Authorization` parser lives in the domain; this stands in for it here).
fn basic_credentials(value: &str) -> Result<client_auth::BasicCredentials, OAuthError> {
    use base64::Engine as _;
    let encoded = value.strip_prefix("Basic ").ok_or_else(client_auth::malformed_basic)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| client_auth::malformed_basic())?;
    let text = String::from_utf8(raw).map_err(|_| client_auth::malformed_basic())?;
    let (user, password) = text.split_once(':').ok_or_else(client_auth::malformed_basic)?;
    Ok(client_auth::BasicCredentials { user: user.to_owned(), password: password.to_owned() })
}

/// The status line's code and the JSON body, the two members in this order and nothing else.
fn error_response(err: &OAuthError) -> String {
    let body =
        serde_json::json!({ "error": err.code.as_str(), "error_description": err.description });
    format!("{} {body}", err.code.status())
}

#[test]
fn request_shape_errors() {
    check(
        "",
        expect![[
            r#"400 {"error":"invalid_request","error_description":"Missing required parameter: grant_type"}"#
        ]],
    );
    check(
        "grant_type=authorization_code&grant_type=refresh_token",
        expect![[
            r#"400 {"error":"invalid_request","error_description":"Parameter grant_type is repeated."}"#
        ]],
    );
    check(
        "grant_type=authorization_code&code=%FF",
        expect![[
            r#"400 {"error":"invalid_request","error_description":"Parameters must be UTF-8."}"#
        ]],
    );
    check(
        "grant_type=password&username=a&password=b",
        expect![[
            r#"400 {"error":"unsupported_grant_type","error_description":"Unsupported grant_type."}"#
        ]],
    );
    check(
        "grant_type=authorization_code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
        expect![[
            r#"400 {"error":"invalid_request","error_description":"Missing required parameter: code"}"#
        ]],
    );
    check(
        "grant_type=authorization_code&code=4%2Fabc&code_verifier=short",
        expect![[
            r#"400 {"error":"invalid_request","error_description":"Malformed code_verifier."}"#
        ]],
    );
}

#[test]
fn client_authentication_errors_are_401() {
    check(
        "Authorization: Basic !!!\ngrant_type=client_credentials",
        expect![[
            r#"401 {"error":"invalid_client","error_description":"Malformed Basic credentials."}"#
        ]],
    );
    check(
        "Authorization: Basic Yzpz\nclient_id=d&grant_type=client_credentials",
        expect![[
            r#"401 {"error":"invalid_client","error_description":"The client_id values disagree."}"#
        ]],
    );
    check(
        "client_id=c&client_assertion_type=urn%3Aother&client_assertion=a.b.c&grant_type=client_credentials",
        expect![[
            r#"401 {"error":"invalid_client","error_description":"Unsupported client assertion."}"#
        ]],
    );
    check(
        "Authorization: Basic Yzpz\nclient_secret=s&grant_type=client_credentials",
        expect![[
            r#"400 {"error":"invalid_request","error_description":"Use one client authentication method, not several."}"#
        ]],
    );
}

#[test]
fn every_code_has_its_status() {
    let table: Vec<String> = [
        crate::ErrorCode::InvalidRequest,
        crate::ErrorCode::InvalidClient,
        crate::ErrorCode::InvalidGrant,
        crate::ErrorCode::UnauthorizedClient,
        crate::ErrorCode::UnsupportedGrantType,
        crate::ErrorCode::InvalidScope,
        crate::ErrorCode::ServerError,
        crate::ErrorCode::InvalidTarget,
        crate::ErrorCode::AuthorizationPending,
        crate::ErrorCode::SlowDown,
        crate::ErrorCode::ExpiredToken,
    ]
    .into_iter()
    .map(|code| error_response(&OAuthError::new(code, "…")))
    .collect();
    expect![[r#"
        400 {"error":"invalid_request","error_description":"…"}
        401 {"error":"invalid_client","error_description":"…"}
        400 {"error":"invalid_grant","error_description":"…"}
        400 {"error":"unauthorized_client","error_description":"…"}
        400 {"error":"unsupported_grant_type","error_description":"…"}
        400 {"error":"invalid_scope","error_description":"…"}
        500 {"error":"server_error","error_description":"…"}
        400 {"error":"invalid_target","error_description":"…"}
        400 {"error":"authorization_pending","error_description":"…"}
        400 {"error":"slow_down","error_description":"…"}
        400 {"error":"expired_token","error_description":"…"}"#]]
    .assert_eq(&table.join("\n"));
}

#[test]
fn a_good_request_is_accepted() {
    check(
        "Authorization: Basic Yzpz\ngrant_type=authorization_code&code=4%2Fabc&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
        expect![[
            r#"accepted AuthorizationCode(Request { code: "4/abc", redirect_uri: Some("https://app.example/cb"), code_verifier: None }) from Some(Presented { client_id: "c", method: Basic { secret: "s" } })"#
        ]],
    );
}
