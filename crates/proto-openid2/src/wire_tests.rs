//! The OpenID 2.0 bodies byte for byte, as snapshots. `check` shows each line with its ending
//! escaped (`\n`), so a stray space, a `\r` or a missing final newline shows in the snapshot.
//! After an intended change, `UPDATE_EXPECT=1 cargo test -p tessera-proto-openid2` rewrites them.

use expect_test::{Expect, expect};

use super::*;

fn check(body: &str, expect: Expect) {
    let shown: Vec<String> =
        body.split_inclusive('\n').map(|line| line.escape_debug().to_string()).collect();
    expect.assert_eq(&shown.join("\n"));
}

const ENDPOINT: &str = "https://accounts.example.test/accounts/o8/ud";

#[test]
fn op_identifier_xrds_is_one_server_service() {
    check(
        &op_identifier_xrds(ENDPOINT),
        expect![[r#"
        <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n
        <xrds:XRDS xmlns:xrds=\"xri://$xrds\" xmlns=\"xri://$xrd*($v*2.0)\">\n
          <XRD>\n
          <Service priority=\"0\">\n
          <Type>http://specs.openid.net/auth/2.0/server</Type>\n
          <Type>http://openid.net/srv/ax/1.0</Type>\n
          <Type>http://specs.openid.net/extensions/ui/1.0/mode/popup</Type>\n
          <Type>http://specs.openid.net/extensions/ui/1.0/icon</Type>\n
          <Type>http://specs.openid.net/extensions/pape/1.0</Type>\n
          <Type>http://specs.openid.net/extensions/oauth/1.0</Type>\n
          <URI>https://accounts.example.test/accounts/o8/ud</URI>\n
          </Service>\n
          </XRD>\n
        </xrds:XRDS>\n"#]],
    );
}

#[test]
fn claimed_id_xrds_names_the_endpoint() {
    check(
        &claimed_id_xrds(ENDPOINT),
        expect![[r#"
        <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n
        <xrds:XRDS xmlns:xrds=\"xri://$xrds\" xmlns=\"xri://$xrd*($v*2.0)\">\n
          <XRD>\n
          <Service priority=\"0\">\n
          <Type>http://specs.openid.net/auth/2.0/signon</Type>\n
          <Type>http://openid.net/srv/ax/1.0</Type>\n
          <Type>http://specs.openid.net/extensions/ui/1.0/mode/popup</Type>\n
          <Type>http://specs.openid.net/extensions/ui/1.0/icon</Type>\n
          <Type>http://specs.openid.net/extensions/pape/1.0</Type>\n
          <Type>http://specs.openid.net/extensions/oauth/1.0</Type>\n
          <URI>https://accounts.example.test/accounts/o8/ud</URI>\n
          </Service>\n
          </XRD>\n
        </xrds:XRDS>\n"#]],
    );
}

#[test]
fn site_xrds_and_host_meta() {
    check(
        &site_xrds(
            "example.com",
            "https://accounts.example.test/a/example.com/o8/ud?be=o8",
            "https://accounts.example.test/accounts/o8/user-xrds?uri={%uri}",
        ),
        expect![[r#"
            <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n
            <xrds:XRDS xmlns:xrds=\"xri://$xrds\" xmlns=\"xri://$xrd*($v*2.0)\" xmlns:openid=\"http://namespace.google.com/openid/xmlns\">\n
              <XRD>\n
              <CanonicalID>example.com</CanonicalID>\n
              <Service priority=\"0\">\n
              <Type>http://specs.openid.net/auth/2.0/server</Type>\n
              <Type>http://openid.net/srv/ax/1.0</Type>\n
              <Type>http://specs.openid.net/extensions/ui/1.0/mode/popup</Type>\n
              <Type>http://specs.openid.net/extensions/ui/1.0/icon</Type>\n
              <Type>http://specs.openid.net/extensions/pape/1.0</Type>\n
              <Type>http://specs.openid.net/extensions/oauth/1.0</Type>\n
              <URI>https://accounts.example.test/a/example.com/o8/ud?be=o8</URI>\n
              </Service>\n
              <Service priority=\"0\">\n
              <Type>http://www.iana.org/assignments/relation/describedby</Type>\n
              <MediaType>application/xrds+xml</MediaType>\n
              <openid:URITemplate>https://accounts.example.test/accounts/o8/user-xrds?uri={%uri}</openid:URITemplate>\n
              </Service>\n
              </XRD>\n
            </xrds:XRDS>\n"#]],
    );
    check(
        &host_meta("https://accounts.example.test/accounts/o8/site-xrds?ns=2&hd=example.com"),
        expect![[
            r#"Link: <https://accounts.example.test/accounts/o8/site-xrds?ns=2&hd=example.com>; rel=\"describedby http://reltype.google.com/openid/xrd-op\"; type=\"application/xrds+xml\"\n"#
        ]],
    );
}

#[test]
fn associate_answers() {
    check(
        &associate_body(
            "AOQobUexampleHandle0001",
            AssocType::HmacSha1,
            SessionType::DhSha1,
            46800,
            KeyTransport::Dh { server_public: &[0, 0x80, 1], enc_mac_key: &[1; 20] },
        ),
        expect![[r#"
            ns:http://specs.openid.net/auth/2.0\n
            assoc_handle:AOQobUexampleHandle0001\n
            session_type:DH-SHA1\n
            assoc_type:HMAC-SHA1\n
            expires_in:46800\n
            dh_server_public:AIAB\n
            enc_mac_key:AQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"#]],
    );
    check(
        &associate_body(
            "h",
            AssocType::HmacSha256,
            SessionType::NoEncryption,
            60,
            KeyTransport::Plain { mac_key: &[2; 32] },
        ),
        expect![[r#"
            ns:http://specs.openid.net/auth/2.0\n
            assoc_handle:h\n
            session_type:no-encryption\n
            assoc_type:HMAC-SHA256\n
            expires_in:60\n
            mac_key:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n"#]],
    );
    check(
        &unsupported_body(
            "Unsupported association type",
            AssocType::HmacSha256,
            SessionType::DhSha256,
        ),
        expect![[r#"
            ns:http://specs.openid.net/auth/2.0\n
            error:Unsupported association type\n
            error_code:unsupported-type\n
            session_type:DH-SHA256\n
            assoc_type:HMAC-SHA256\n"#]],
    );
}

#[test]
fn direct_errors_and_check_authentication() {
    check(
        &direct_error_body("bad\nrequest", &[]),
        expect![[r#"
        ns:http://specs.openid.net/auth/2.0\n
        error:bad request\n"#]],
    );
    check(
        &check_authentication_body(true, None),
        expect![[r#"
        ns:http://specs.openid.net/auth/2.0\n
        is_valid:true\n"#]],
    );
    check(
        &check_authentication_body(false, Some("AOQobUold")),
        expect![[r#"
        ns:http://specs.openid.net/auth/2.0\n
        is_valid:false\n
        invalidate_handle:AOQobUold\n"#]],
    );
}

#[test]
fn ax_fetch_response_fields() {
    let email = AxAttribute {
        alias: "email".into(),
        type_uri: "http://axschema.org/contact/email".into(),
        required: true,
        counted: false,
    };
    let first = AxAttribute {
        alias: "first".into(),
        type_uri: "http://axschema.org/namePerson/first".into(),
        required: false,
        counted: true,
    };
    let fields = ax_fetch_response(&[(&email, "alice@example.com"), (&first, "Alice")]);
    check(
        &kv_emit(&fields).unwrap(),
        expect![[r#"
        ns.ext1:http://openid.net/srv/ax/1.0\n
        ext1.mode:fetch_response\n
        ext1.type.email:http://axschema.org/contact/email\n
        ext1.value.email:alice@example.com\n
        ext1.type.first:http://axschema.org/namePerson/first\n
        ext1.count.first:1\n
        ext1.value.first.1:Alice\n"#]],
    );
}
