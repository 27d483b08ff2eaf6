use proptest::prelude::*;

use super::*;

/// The §6.4 vector's fields: the token contents must come out byte for byte.
pub(crate) fn vector_message() -> Message {
    let pairs = [
        ("openid.ns", NS_OPENID2),
        ("openid.mode", "id_res"),
        ("openid.op_endpoint", "https://accounts.example.test/accounts/o8/ud"),
        (
            "openid.claimed_id",
            "https://accounts.example.test/accounts/o8/id?id=AItOawkExampleIdentifier0001",
        ),
        (
            "openid.identity",
            "https://accounts.example.test/accounts/o8/id?id=AItOawkExampleIdentifier0001",
        ),
        ("openid.return_to", "https://rp.example.com/openid/return?session=abc"),
        ("openid.response_nonce", "2011-08-14T18:32:16Zq1w2e3r4t5y6u7"),
        ("openid.assoc_handle", "AOQobUexampleHandle0001"),
        ("openid.ns.ext1", NS_AX),
        ("openid.ext1.mode", "fetch_response"),
        ("openid.ext1.type.email", "http://axschema.org/contact/email"),
        ("openid.ext1.value.email", "alice@example.com"),
    ];
    Message::from_pairs(&pairs).unwrap()
}

pub(crate) const VECTOR_SIGNED: &str = "op_endpoint,claimed_id,identity,return_to,response_nonce,assoc_handle,ns.ext1,ext1.mode,ext1.type.email,ext1.value.email";

#[test]
fn token_contents_of_the_reference_vector() {
    let message = vector_message();
    let keys = signed_keys(VECTOR_SIGNED).unwrap();
    let text = token_contents(&keys, &message).unwrap();
    assert_eq!(
        text,
        "op_endpoint:https://accounts.example.test/accounts/o8/ud\n\
claimed_id:https://accounts.example.test/accounts/o8/id?id=AItOawkExampleIdentifier0001\n\
identity:https://accounts.example.test/accounts/o8/id?id=AItOawkExampleIdentifier0001\n\
return_to:https://rp.example.com/openid/return?session=abc\n\
response_nonce:2011-08-14T18:32:16Zq1w2e3r4t5y6u7\n\
assoc_handle:AOQobUexampleHandle0001\n\
ns.ext1:http://openid.net/srv/ax/1.0\n\
ext1.mode:fetch_response\n\
ext1.type.email:http://axschema.org/contact/email\n\
ext1.value.email:alice@example.com\n"
    );
    // A listed field that is missing makes no contents.
    assert_eq!(token_contents(&["op_endpoint", "nope"], &message), None);
    assert_eq!(signed_keys("a,,b"), None);
    assert_eq!(signed_keys("a,b,a"), None);
}

#[test]
fn kv_parse_is_strict() {
    assert_eq!(
        kv_parse("a:b\nc:d:e\n").unwrap(),
        vec![("a".into(), "b".into()), ("c".into(), "d:e".into())]
    );
    assert_eq!(kv_parse("").unwrap(), vec![]);
    assert_eq!(kv_parse("a:b"), Err(KvError::Unterminated(1)));
    assert_eq!(kv_parse("ab\n"), Err(KvError::NoColon(1)));
    assert_eq!(kv_parse(":b\n"), Err(KvError::BadKey));
    assert_eq!(kv_parse("a:b\na:c\n"), Err(KvError::Repeated("a".into())));
    assert_eq!(kv_emit(&[("a:b", "c")]), Err(KvError::BadKey));
    assert_eq!(kv_emit(&[("a", "c\nd")]), Err(KvError::BadValue));
}

#[test]
fn messages_keep_openid_fields_and_find_aliases_by_namespace() {
    let pairs = query_pairs(
        "openid.ns=http%3A%2F%2Fspecs.openid.net%2Fauth%2F2.0&openid.mode=checkid_setup&be=o8&openid.ns.oauth=http%3A%2F%2Fspecs.openid.net%2Fextensions%2Foauth%2F1.0&openid.oauth.consumer=www.example.com&openid.ns.ax=http%3A%2F%2Fopenid.net%2Fsrv%2Fax%2F1.0",
    );
    let message = Message::from_pairs(&pairs).unwrap();
    assert_eq!(message.mode(), Ok("checkid_setup"));
    assert_eq!(message.get("be"), None);
    assert_eq!(message.alias_of(NS_OAUTH), Some("oauth"));
    assert_eq!(message.alias_of(NS_AX), Some("ax"));
    assert_eq!(message.extension("oauth").get("consumer"), Some(&"www.example.com"));
    let twice = [("openid.mode", "a"), ("openid.mode", "b")];
    assert_eq!(Message::from_pairs(&twice), Err(MessageError::Repeated("mode".into())));
    let v1 = Message::from_pairs(&[("openid.mode", "checkid_setup")]).unwrap();
    assert_eq!(v1.mode(), Err(MessageError::NotOpenId2));
}

#[test]
fn indirect_urls_keep_return_to_verbatim() {
    let fields = [("mode", "cancel"), ("ns", NS_OPENID2)];
    assert_eq!(
        indirect_url("https://rp.example/cb?janrain_nonce=2011-01-01T00%3A00%3A00Zabc", &fields),
        "https://rp.example/cb?janrain_nonce=2011-01-01T00%3A00%3A00Zabc&openid.mode=cancel&openid.ns=http%3A%2F%2Fspecs.openid.net%2Fauth%2F2.0"
    );
    assert_eq!(
        indirect_url("https://rp.example/cb", &[("mode", "x")]),
        "https://rp.example/cb?openid.mode=x"
    );
    assert_eq!(
        indirect_url("https://rp.example/cb?", &[("mode", "x")]),
        "https://rp.example/cb?openid.mode=x"
    );
    assert_eq!(
        indirect_url("https://rp.example/cb#top", &[("mode", "x")]),
        "https://rp.example/cb?openid.mode=x#top"
    );
}

#[test]
fn nonces_carry_their_time() {
    assert_eq!(format_utc(1_313_346_736), "2011-08-14T18:32:16Z");
    let nonce = response_nonce(1_313_346_736, "K6OJS_-J3hCSg");
    assert_eq!(nonce, "2011-08-14T18:32:16ZK6OJS_-J3hCSg");
    assert_eq!(nonce_time(&nonce), Some(1_313_346_736));
    assert_eq!(nonce_time("2011-02-30T00:00:00Zx"), None);
    assert_eq!(nonce_time("2011-08-14 18:32:16Zx"), None);
    assert_eq!(nonce_time("short"), None);
    assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
    assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
}

#[test]
fn realms_and_return_to() {
    let ok = |realm: &str, rt: &str| Realm::parse(realm).unwrap().check(rt).is_ok();
    assert!(ok("https://rp.example.com/", "https://rp.example.com/openid/return?x=1"));
    assert!(ok("https://rp.example.com", "https://rp.example.com/cb"));
    assert!(ok("https://*.example.com/", "https://www.example.com/cb"));
    assert!(ok("https://*.example.com/", "https://a.b.example.com/cb"));
    assert!(ok("https://*.example.com/", "https://example.com/cb"));
    assert!(ok("https://rp.example.com/app", "https://rp.example.com/app/cb"));
    assert!(ok("https://rp.example.com/app", "https://rp.example.com/app?x"));
    assert!(ok("https://RP.example.com:443/", "https://rp.example.com/"));
    assert!(!ok("https://rp.example.com/app", "https://rp.example.com/apple"));
    assert!(!ok("https://rp.example.com/app/", "https://rp.example.com/app/../x"));
    assert!(!ok("https://rp.example.com/", "http://rp.example.com/"));
    assert!(!ok("https://rp.example.com/", "https://rp.example.com:8443/"));
    assert!(!ok("https://rp.example.com/", "https://evil.example/"));
    assert!(!ok("https://rp.example.com/", "https://rp.example.com.evil.example/"));
    assert!(!ok("https://*.example.com/", "https://badexample.com/"));
    assert!(!ok("https://rp.example.com/", "https://rp.example.com@evil.example/"));
    assert!(!ok("https://rp.example.com/", "javascript:alert(1)"));
    for bad in [
        "https://*.com/",
        "https://*/",
        "ftp://x.example/",
        "https://a.*.example/",
        "https://x.example/#f",
        "https://u@x.example/",
        "not a url",
        "https://*.127.0.0.1/",
    ] {
        assert!(Realm::parse(bad).is_err(), "{bad}");
    }
    let realm = Realm::parse("https://*.Example.com/app").unwrap();
    assert_eq!(realm.normalized(), "https://*.example.com:443/app");
    assert_eq!(realm.display(), "https://*.example.com/app");
}

#[test]
fn associate_requests() {
    let msg = |pairs: &[(&str, &str)]| Message::from_pairs(pairs).unwrap();
    let dh = msg(&[
        ("openid.assoc_type", "HMAC-SHA1"),
        ("openid.session_type", "DH-SHA1"),
        ("openid.dh_consumer_public", "Ag=="),
    ]);
    let req = parse_associate(&dh).unwrap();
    assert_eq!(req.dh_consumer_public, Some(vec![2]));
    assert_eq!(req.dh_modulus, None);
    let mismatch = msg(&[
        ("openid.assoc_type", "HMAC-SHA256"),
        ("openid.session_type", "DH-SHA1"),
        ("openid.dh_consumer_public", "Ag=="),
    ]);
    assert_eq!(parse_associate(&mismatch), Err(AssociateError::Unsupported));
    let unknown = msg(&[("openid.assoc_type", "HMAC-MD5"), ("openid.session_type", "DH-SHA1")]);
    assert_eq!(parse_associate(&unknown), Err(AssociateError::Unsupported));
    let no_public = msg(&[("openid.assoc_type", "HMAC-SHA1"), ("openid.session_type", "DH-SHA1")]);
    assert!(matches!(parse_associate(&no_public), Err(AssociateError::Malformed(_))));
    let bad_b64 = msg(&[
        ("openid.assoc_type", "HMAC-SHA1"),
        ("openid.session_type", "DH-SHA1"),
        ("openid.dh_consumer_public", "!!"),
    ]);
    assert!(matches!(parse_associate(&bad_b64), Err(AssociateError::Malformed(_))));
    let huge = "A".repeat(4000);
    let too_big = msg(&[
        ("openid.assoc_type", "HMAC-SHA1"),
        ("openid.session_type", "DH-SHA1"),
        ("openid.dh_consumer_public", "Ag=="),
        ("openid.dh_modulus", &huge),
    ]);
    assert!(matches!(parse_associate(&too_big), Err(AssociateError::Malformed(_))));
}

#[test]
fn checkid_requests_with_extensions() {
    let pairs = [
        ("openid.ns", NS_OPENID2),
        ("openid.mode", "checkid_setup"),
        ("openid.claimed_id", IDENTIFIER_SELECT),
        ("openid.identity", IDENTIFIER_SELECT),
        ("openid.return_to", "https://rp.example.com/cb?janrain_nonce=x"),
        ("openid.realm", "https://rp.example.com/"),
        ("openid.ns.ax", NS_AX),
        ("openid.ax.mode", "fetch_request"),
        ("openid.ax.type.email", "http://axschema.org/contact/email"),
        ("openid.ax.type.first", "http://axschema.org/namePerson/first"),
        ("openid.ax.type.country", "http://axschema.org/contact/country/home"),
        ("openid.ax.count.first", "1"),
        ("openid.ax.required", "email,first"),
        ("openid.ax.if_available", "country,missing"),
        ("openid.ns.oauth", NS_OAUTH),
        ("openid.oauth.consumer", "www.example.com"),
        (
            "openid.oauth.scope",
            "http://docs.google.com/feeds/ http://spreadsheets.google.com/feeds/",
        ),
    ];
    let req = parse_checkid(&Message::from_pairs(&pairs).unwrap()).unwrap();
    assert!(req.identifier_select() && !req.immediate);
    let ax = req.ax.clone().unwrap();
    let names: Vec<(&str, bool, bool)> =
        ax.attributes.iter().map(|a| (a.alias.as_str(), a.required, a.counted)).collect();
    assert_eq!(
        names,
        vec![("email", true, false), ("first", true, true), ("country", false, false)]
    );
    let hybrid = req.hybrid.unwrap();
    assert_eq!(hybrid.consumer.as_deref(), Some("www.example.com"));
    assert_eq!(req.ui_lang, None);

    // The UI extension's language, under any alias; an implausible tag is dropped.
    let with_ui = |lang: &'static str| {
        let mut pairs = pairs.to_vec();
        pairs.extend([("openid.ns.u", NS_UI), ("openid.u.lang", lang)]);
        parse_checkid(&Message::from_pairs(&pairs).unwrap()).unwrap().ui_lang
    };
    assert_eq!(with_ui("fr-FR").as_deref(), Some("fr-FR"));
    assert_eq!(with_ui("de_AT").as_deref(), Some("de_AT"));
    assert_eq!(with_ui(""), None);
    assert_eq!(with_ui("fr\"><script>"), None);

    let mut outside = pairs.to_vec();
    outside[4] = ("openid.return_to", "https://evil.example/cb");
    let message = Message::from_pairs(&outside).unwrap();
    assert_eq!(parse_checkid(&message), Err(CheckIdError::Realm(RealmError::Outside)));
    assert_eq!(safe_return_to(&message), None);
    let lonely = [
        ("openid.ns", NS_OPENID2),
        ("openid.mode", "checkid_setup"),
        ("openid.identity", "x"),
        ("openid.return_to", "https://rp.example.com/"),
    ];
    assert!(matches!(
        parse_checkid(&Message::from_pairs(&lonely).unwrap()),
        Err(CheckIdError::Malformed(_))
    ));
}

proptest! {
    #[test]
    fn kv_round_trips(pairs in proptest::collection::btree_map("[a-z.]{1,8}", "[^\n]{0,20}", 0..8)) {
        let pairs: Vec<(String, String)> = pairs.into_iter().collect();
        let text = kv_emit(&pairs).unwrap();
        prop_assert!(text.is_empty() || text.ends_with('\n'));
        prop_assert_eq!(kv_parse(&text).unwrap(), pairs);
    }

    #[test]
    fn kv_parse_never_panics_and_accepts_only_terminated_lines(text in "\\PC{0,60}|[a-z:\n]{0,40}") {
        if let Ok(pairs) = kv_parse(&text) {
            prop_assert_eq!(kv_emit(&pairs).unwrap(), text);
        }
    }

    #[test]
    fn nonces_round_trip(t in 0i64..4_102_444_800, unique in "[!-~]{0,40}") {
        let nonce = response_nonce(t, &unique);
        prop_assert_eq!(nonce_time(&nonce), Some(t));
    }

    #[test]
    fn nonce_time_never_panics(text in "\\PC{0,40}") {
        let _ = nonce_time(&text);
    }

    #[test]
    fn accepted_return_to_keeps_the_realm_host(host in "[a-z]{1,6}(\\.[a-z]{1,6}){0,2}", path in "[/a-z.%]{0,12}") {
        let realm = Realm::parse("https://*.example.com/app/").unwrap();
        let rt = format!("https://{host}{path}");
        if realm.check(&rt).is_ok() {
            let url = url::Url::parse(&rt).unwrap();
            let h = url.host_str().unwrap();
            prop_assert!(h == "example.com" || h.ends_with(".example.com"));
            prop_assert!(url.path().starts_with("/app/"));
        }
    }

    #[test]
    fn realm_parsing_never_panics(text in "\\PC{0,40}", rt in "\\PC{0,40}") {
        if let Ok(realm) = Realm::parse(&text) {
            let _ = realm.check(&rt);
        }
    }

    #[test]
    fn indirect_urls_start_with_return_to(rt in "https://rp\\.example/[a-z?=&]{0,10}", v in "\\PC{0,10}") {
        let url = indirect_url(&rt, &[("mode", v.as_str())]);
        prop_assert!(url.starts_with(&rt));
        let query = url.split_once('?').unwrap().1;
        let found = query_pairs(query).into_iter().find(|(k, _)| k == "openid.mode").map(|(_, v)| v);
        prop_assert_eq!(found, Some(v));
    }
}
