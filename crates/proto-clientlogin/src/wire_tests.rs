//! The ClientLogin bodies byte for byte, as snapshots. `check` shows each line with its ending
//! escaped (`\n`), so a stray space, a `\r` or a missing final newline shows in the snapshot.
//! After an intended change, `UPDATE_EXPECT=1 cargo test -p tessera-proto-clientlogin` rewrites
//! them.

use expect_test::{Expect, expect};

use super::*;

fn check(body: &str, expect: Expect) {
    let shown: Vec<String> =
        body.split_inclusive('\n').map(|line| line.escape_debug().to_string()).collect();
    expect.assert_eq(&shown.join("\n"));
}

#[test]
fn success_is_sid_lsid_auth_in_that_order() {
    check(
        &success_body("DQAAAGsA-sid", "DQAAAGsA-lsid", "DQAAAGsA-auth_0"),
        expect![[r#"
            SID=DQAAAGsA-sid\n
            LSID=DQAAAGsA-lsid\n
            Auth=DQAAAGsA-auth_0\n"#]],
    );
}

#[test]
fn bad_authentication_has_no_url() {
    check(
        &error_body(ErrorCode::BadAuthentication, &ErrorExtras::default()),
        expect![[r#"Error=BadAuthentication\n"#]],
    );
    let second_factor =
        ErrorExtras { info: Some("InvalidSecondFactor".to_owned()), ..ErrorExtras::default() };
    check(
        &error_body(ErrorCode::BadAuthentication, &second_factor),
        expect![[r#"
            Error=BadAuthentication\n
            Info=InvalidSecondFactor\n"#]],
    );
}

#[test]
fn captcha_required_carries_token_and_image_url() {
    let extras = ErrorExtras {
        url: Some("https://accounts.example.test/accounts/DisplayUnlockCaptcha".to_owned()),
        captcha: Some(("CCAAAAtoken-1".to_owned(), "Captcha?ctoken=CCAAAAtoken-1".to_owned())),
        info: None,
    };
    check(
        &error_body(ErrorCode::CaptchaRequired, &extras),
        expect![[r#"
            Error=CaptchaRequired\n
            Url=https://accounts.example.test/accounts/DisplayUnlockCaptcha\n
            CaptchaToken=CCAAAAtoken-1\n
            CaptchaUrl=Captcha?ctoken=CCAAAAtoken-1\n"#]],
    );
}

#[test]
fn every_error_code_with_its_help_url() {
    let mut bodies = String::new();
    for code in ErrorCode::ALL {
        let extras = ErrorExtras {
            url: Some(format!("https://accounts.example.test/help#{}", code.as_str())),
            ..ErrorExtras::default()
        };
        bodies.push_str(&error_body(code, &extras));
    }
    check(
        &bodies,
        expect![[r#"
            Error=BadAuthentication\n
            Url=https://accounts.example.test/help#BadAuthentication\n
            Error=NotVerified\n
            Url=https://accounts.example.test/help#NotVerified\n
            Error=TermsNotAgreed\n
            Url=https://accounts.example.test/help#TermsNotAgreed\n
            Error=CaptchaRequired\n
            Url=https://accounts.example.test/help#CaptchaRequired\n
            Error=Unknown\n
            Url=https://accounts.example.test/help#Unknown\n
            Error=AccountDeleted\n
            Url=https://accounts.example.test/help#AccountDeleted\n
            Error=AccountDisabled\n
            Url=https://accounts.example.test/help#AccountDisabled\n
            Error=ServiceDisabled\n
            Url=https://accounts.example.test/help#ServiceDisabled\n
            Error=ServiceUnavailable\n
            Url=https://accounts.example.test/help#ServiceUnavailable\n"#]],
    );
}

#[test]
fn every_field_in_its_place() {
    let extras = ErrorExtras {
        url: Some("u".to_owned()),
        captcha: Some(("t".to_owned(), "c".to_owned())),
        info: Some("i".to_owned()),
    };
    check(
        &error_body(ErrorCode::CaptchaRequired, &extras),
        expect![[r#"
            Error=CaptchaRequired\n
            Url=u\n
            CaptchaToken=t\n
            CaptchaUrl=c\n
            Info=i\n"#]],
    );
}
