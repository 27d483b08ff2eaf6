//! The AuthSub bodies byte for byte, as snapshots. `check` shows each line with its ending
//! escaped (`\n`), so a stray space, a `\r` or a missing final newline shows in the snapshot.
//! After an intended change, `UPDATE_EXPECT=1 cargo test -p tessera-proto-authsub` rewrites them.

use expect_test::{Expect, expect};

use super::*;

fn check(body: &str, expect: Expect) {
    let shown: Vec<String> =
        body.split_inclusive('\n').map(|line| line.escape_debug().to_string()).collect();
    expect.assert_eq(&shown.join("\n"));
}

#[test]
fn session_token_is_one_token_line() {
    check(&session_token_body("CKF50YzIHxCT85KMAg"), expect![[r#"Token=CKF50YzIHxCT85KMAg\n"#]]);
}

#[test]
fn token_info_is_target_scope_secure() {
    let scopes = ["http://www.example.com/calendar/feeds/".to_owned()];
    check(
        &token_info_body(&target_of("http://App.example.com/cb?x=1"), &scopes, false),
        expect![[r#"
            Target=http://app.example.com\n
            Scope=http://www.example.com/calendar/feeds/\n
            Secure=false\n"#]],
    );
    let scopes = [
        "http://www.example.com/calendar/feeds/".to_owned(),
        "http://www.example.com/m8/feeds/".to_owned(),
    ];
    check(
        &token_info_body(&target_of("https://app.example.com:8443/cb"), &scopes, true),
        expect![[r#"
            Target=https://app.example.com:8443\n
            Scope=http://www.example.com/calendar/feeds/ http://www.example.com/m8/feeds/\n
            Secure=true\n"#]],
    );
}

#[test]
fn the_401_and_403_pages() {
    check(
        &error_page("Token invalid - Invalid AuthSub token.", 401),
        expect![[r##"
            <HTML>\n
            <HEAD>\n
            <TITLE>Token invalid - Invalid AuthSub token.</TITLE>\n
            </HEAD>\n
            <BODY BGCOLOR=\"#FFFFFF\" TEXT=\"#000000\">\n
            <H1>Token invalid - Invalid AuthSub token.</H1>\n
            <H2>Error 401</H2>\n
            </BODY>\n
            </HTML>\n"##]],
    );
    check(
        &error_page("Token invalid - Invalid AuthSub signature.", 403),
        expect![[r##"
            <HTML>\n
            <HEAD>\n
            <TITLE>Token invalid - Invalid AuthSub signature.</TITLE>\n
            </HEAD>\n
            <BODY BGCOLOR=\"#FFFFFF\" TEXT=\"#000000\">\n
            <H1>Token invalid - Invalid AuthSub signature.</H1>\n
            <H2>Error 403</H2>\n
            </BODY>\n
            </HTML>\n"##]],
    );
}

#[test]
fn the_redirect_back_to_next() {
    let next = "http://app.example.com/cb?auth_sub_scopes=http%3A%2F%2Fx%2F#done";
    check(
        &append_token(next, "CKF50YzIHxCT85KMAg"),
        expect![[
            r#"http://app.example.com/cb?auth_sub_scopes=http%3A%2F%2Fx%2F&token=CKF50YzIHxCT85KMAg#done"#
        ]],
    );
}
