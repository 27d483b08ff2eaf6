//! The `/auth` bodies byte for byte, as snapshots. `check` shows each line with its ending
//! escaped (`\n`). After an intended change, `UPDATE_EXPECT=1 cargo test -p tessera-proto-device`
//! rewrites them.

use expect_test::{Expect, expect};

use super::*;

fn check(body: &str, expect: Expect) {
    let shown: Vec<String> =
        body.split_inclusive('\n').map(|line| line.escape_debug().to_string()).collect();
    expect.assert_eq(&shown.join("\n"));
}

#[test]
fn master_login_success() {
    check(
        &body(&[
            ("SID", "sid-1".to_owned()),
            ("LSID", "lsid-1".to_owned()),
            ("Token", "aas_et/abc".to_owned()),
            ("services", "mail,cl".to_owned()),
            ("Email", "alice@example.com".to_owned()),
            ("firstName", "Alice".to_owned()),
            ("lastName", "Example".to_owned()),
        ]),
        expect![[r#"
            SID=sid-1\n
            LSID=lsid-1\n
            Token=aas_et/abc\n
            services=mail,cl\n
            Email=alice@example.com\n
            firstName=Alice\n
            lastName=Example\n"#]],
    );
}

#[test]
fn token_response() {
    check(
        &body(&[
            ("issueAdvice", "auto".to_owned()),
            ("Expiry", "1420070400".to_owned()),
            ("ExpiresInDurationSec", "3600".to_owned()),
            ("storeConsentRemotely", "1".to_owned()),
            ("grantedScopes", "email https://a.example/x".to_owned()),
            ("Auth", "ya29.token".to_owned()),
        ]),
        expect![[r#"
            issueAdvice=auto\n
            Expiry=1420070400\n
            ExpiresInDurationSec=3600\n
            storeConsentRemotely=1\n
            grantedScopes=email https://a.example/x\n
            Auth=ya29.token\n"#]],
    );
}

#[test]
fn errors_put_error_first_and_never_break_lines() {
    check(
        &error_body(ErrorCode::BadAuthentication, &ErrorExtras::default()),
        expect![[r#"Error=BadAuthentication\n"#]],
    );
    check(
        &error_body(
            ErrorCode::NeedsBrowser,
            &ErrorExtras {
                url: Some("https://id.example/ServiceLogin?continue=x".to_owned()),
                detail: Some("Sign in on the web.\nNext line".to_owned()),
                ..ErrorExtras::default()
            },
        ),
        expect![[r#"
            Error=NeedsBrowser\n
            Url=https://id.example/ServiceLogin?continue=x\n
            ErrorDetail=Sign in on the web. Next line\n"#]],
    );
    check(
        &error_body(
            ErrorCode::CaptchaRequired,
            &ErrorExtras {
                captcha: Some(("tok".to_owned(), "Captcha?ctoken=tok".to_owned())),
                url: Some("https://id.example/accounts/DisplayUnlockCaptcha".to_owned()),
                ..ErrorExtras::default()
            },
        ),
        expect![[r#"
            Error=CaptchaRequired\n
            Url=https://id.example/accounts/DisplayUnlockCaptcha\n
            CaptchaToken=tok\n
            CaptchaUrl=Captcha?ctoken=tok\n"#]],
    );
    check(
        &error_body(ErrorCode::InvalidAudience, &ErrorExtras::default()),
        expect![[r#"Error=INVALID_AUDIENCE\n"#]],
    );
}
