//! OAuth 1.0a on the wire byte for byte: the reference's base-string vectors and the response
//! bodies as snapshots. `check` shows each line with its ending escaped (`\n`), so a stray space
//! or a missing (or extra) final newline shows in the snapshot. After an intended change,
//! `UPDATE_EXPECT=1 cargo test -p tessera-proto-oauth1` rewrites them.

use expect_test::{Expect, expect};

use super::*;

fn check(body: &str, expect: Expect) {
    let shown: Vec<String> =
        body.split_inclusive('\n').map(|line| line.escape_debug().to_string()).collect();
    expect.assert_eq(&shown.join("\n"));
}

fn parse_header(header: &str) -> Option<Result<Vec<(String, String)>, Problem>> {
    Some(parse_header_params(header.strip_prefix("OAuth")?))
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Reference §6.1: request token, anonymous consumer, GET, OAuth parameters in the header and
/// `scope`/`xoauth_displayname` in the query.
#[test]
fn request_token_base_string_from_header_and_query() {
    let header = parse_header(concat!(
        r#"OAuth realm="", oauth_consumer_key="anonymous", oauth_nonce="1234567890abcdef", "#,
        r#"oauth_signature_method="HMAC-SHA1", oauth_timestamp="1300000000", oauth_version="1.0", "#,
        r#"oauth_callback="http%3A%2F%2Fapp.example.com%2Fcb%3Fx%3D1", "#,
        r#"oauth_signature="GFTTAuOk48VXj2pGRq4W5xbx4hU%3D""#
    ))
    .unwrap()
    .unwrap();
    let query = parse_form(concat!(
        "scope=https%3A%2F%2Fwww.google.com%2Fcalendar%2Ffeeds%2F+https%3A%2F%2Fwww.google.com%2Fm8%2Ffeeds%2F",
        "&xoauth_displayname=Example%20App"
    ))
    .unwrap();
    let signed = collect(&header, &query, &[]).unwrap();
    assert_eq!(signed.signature, "GFTTAuOk48VXj2pGRq4W5xbx4hU=");
    assert_eq!(signed.callback.as_deref(), Some("http://app.example.com/cb?x=1"));
    let uri = base_string_uri("https", "accounts.example.test", "/accounts/OAuthGetRequestToken");
    check(
        &base_string("GET", &uri, &signed.params),
        expect![[
            r#"GET&https%3A%2F%2Faccounts.example.test%2Faccounts%2FOAuthGetRequestToken&oauth_callback%3Dhttp%253A%252F%252Fapp.example.com%252Fcb%253Fx%253D1%26oauth_consumer_key%3Danonymous%26oauth_nonce%3D1234567890abcdef%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1300000000%26oauth_version%3D1.0%26scope%3Dhttps%253A%252F%252Fwww.google.com%252Fcalendar%252Ffeeds%252F%2520https%253A%252F%252Fwww.google.com%252Fm8%252Ffeeds%252F%26xoauth_displayname%3DExample%2520App"#
        ]],
    );
}

/// Reference §6.2: the hybrid exchange, POST with a form body, no verifier.
#[test]
fn hybrid_access_token_base_string_from_a_form_body() {
    let form = parse_form(concat!(
        "oauth_consumer_key=www.example.com&oauth_nonce=9f8e7d6c5b4a&oauth_signature_method=HMAC-SHA1",
        "&oauth_timestamp=1300000100&oauth_token=4%2FAbCdEfGhIjKlMnOpQrStUvWxYz01&oauth_version=1.0",
        "&oauth_signature=0%2FakfxmDyWPJUmiF70vBEXIx0Jc%3D"
    ))
    .unwrap();
    let signed = collect(&[], &[], &form).unwrap();
    assert_eq!(signed.token.as_deref(), Some("4/AbCdEfGhIjKlMnOpQrStUvWxYz01"));
    assert_eq!(signed.verifier, None);
    let uri = base_string_uri("https", "accounts.example.test", "/accounts/OAuthGetAccessToken");
    check(
        &base_string("post", &uri, &signed.params),
        expect![[
            r#"POST&https%3A%2F%2Faccounts.example.test%2Faccounts%2FOAuthGetAccessToken&oauth_consumer_key%3Dwww.example.com%26oauth_nonce%3D9f8e7d6c5b4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1300000100%26oauth_token%3D4%252FAbCdEfGhIjKlMnOpQrStUvWxYz01%26oauth_version%3D1.0"#
        ]],
    );
}

/// Reference §6.3: a two-legged call with `xoauth_requestor_id` in the resource URL.
#[test]
fn two_legged_base_string_keeps_the_requestor_id() {
    let query = parse_form("max-results=25&xoauth_requestor_id=alice%40example.com").unwrap();
    let header = pairs(&[
        ("oauth_consumer_key", "example.com"),
        ("oauth_nonce", "42424242"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "1300000200"),
        ("oauth_version", "1.0"),
        ("oauth_signature", "yxWYSl8t4uMx4j5wEKllt6DfhAI="),
    ]);
    let signed = collect(&header, &query, &[]).unwrap();
    assert_eq!(signed.token, None);
    assert_eq!(signed.get("xoauth_requestor_id"), Some("alice@example.com"));
    let uri = base_string_uri("https", "www.google.com", "/m8/feeds/contacts/default/full");
    check(
        &base_string("GET", &uri, &signed.params),
        expect![[
            r#"GET&https%3A%2F%2Fwww.google.com%2Fm8%2Ffeeds%2Fcontacts%2Fdefault%2Ffull&max-results%3D25%26oauth_consumer_key%3Dexample.com%26oauth_nonce%3D42424242%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1300000200%26oauth_version%3D1.0%26xoauth_requestor_id%3Dalice%2540example.com"#
        ]],
    );
}

/// Reference §6.5: the specification's own example (OAuth Core 1.0 Appendix A).
#[test]
fn specification_example_base_string() {
    let query = parse_form("file=vacation.jpg&size=original").unwrap();
    let header = parse_header(concat!(
        r#"OAuth realm="http://photos.example.net/",oauth_consumer_key="dpf43f3p2l4k3l03","#,
        r#"oauth_token="nnch734d00sl2jdk",oauth_signature_method="HMAC-SHA1","#,
        r#"oauth_signature="tR3%2BTy81lMeYAr%2FFid0kMTYa%2FWM%3D",oauth_timestamp="1191242096","#,
        r#"oauth_nonce="kllo9940pd9333jh",oauth_version="1.0""#
    ))
    .unwrap()
    .unwrap();
    let signed = collect(&header, &query, &[]).unwrap();
    assert_eq!(signed.signature, "tR3+Ty81lMeYAr/Fid0kMTYa/WM=");
    let uri = base_string_uri("http", "photos.example.net:80", "/photos");
    check(
        &base_string("GET", &uri, &signed.params),
        expect![[
            r#"GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacation.jpg%26oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3Dkllo9940pd9333jh%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1191242096%26oauth_token%3Dnnch734d00sl2jdk%26oauth_version%3D1.0%26size%3Doriginal"#
        ]],
    );
}

#[test]
fn request_token_body_is_three_keys_without_newline() {
    check(
        &request_token_body("4/3FAYotcYVwZV2JatqshLb9BFFpcy", "ZIc8siSfgwV8iqO7MQkFrpYY"),
        expect![[
            r#"oauth_token=4%2F3FAYotcYVwZV2JatqshLb9BFFpcy&oauth_token_secret=ZIc8siSfgwV8iqO7MQkFrpYY&oauth_callback_confirmed=true"#
        ]],
    );
}

#[test]
fn access_token_body_is_two_keys() {
    check(
        &access_token_body("1/ExampleAccessToken", "ExampleAccessSecret01234"),
        expect![[
            r#"oauth_token=1%2FExampleAccessToken&oauth_token_secret=ExampleAccessSecret01234"#
        ]],
    );
}

#[test]
fn problem_bodies_start_with_the_word() {
    check(
        &Problem::SignatureInvalid { base_string: "GET&x&y".to_owned() }.body(),
        expect![[r#"
            signature_invalid\n
            base_string:GET&x&y\n"#]],
    );
    check(
        &Problem::ParameterAbsent("oauth_nonce").body(),
        expect![[r#"
            parameter_absent\n
            oauth_parameters_absent:oauth_nonce\n"#]],
    );
    check(
        &Problem::TokenRejected.body(),
        expect![[r#"
            token_rejected\n
            The token is invalid.\n"#]],
    );
    check(
        &Problem::ConsumerKeyRefused {
            advice: "https://id.example/accounts/LegacyMigration?x=1&y=2".to_owned(),
        }
        .body(),
        expect![[r#"
            consumer_key_refused\n
            oauth_problem_advice:https%3A%2F%2Fid.example%2Faccounts%2FLegacyMigration%3Fx%3D1%26y%3D2\n"#]],
    );
    assert_eq!(Problem::ConsumerKeyRefused { advice: String::new() }.status(), 401);
    assert_eq!(Problem::SignatureInvalid { base_string: String::new() }.status(), 400);
    assert_eq!(Problem::NonceUsed.status(), 401);
    assert_eq!(Problem::ConsumerKeyUnknown.status(), 401);
}
