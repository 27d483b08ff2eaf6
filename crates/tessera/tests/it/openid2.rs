//! OpenID 2.0: discovery, associations (both DH sessions, refused groups and types), checkid
//! through the real sign-in and consent pages, immediate mode, cancel, stateless mode with
//! `check_authentication` (tampering, replay, a parallel burst), `return_to` outside the realm,
//! AX values, a hosted domain's endpoint, the `[legacy] openid2` switch, and python-openid as an
//! independent relying party.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use num_bigint::BigUint;
use tessera_crypto::openid::{Mac, btwoc};
use tessera_proto_openid2::{IDENTIFIER_SELECT, NS_AX, NS_OPENID2, kv_parse, query_pairs};

use crate::support::{Browser, Page, TestEnv};

const P_HEX: &str = "DCF93A0B883972EC0E19989AC5A2CE310E1D37717E8D9571BB7623731866E61EF75A2E27898B057F9891C2E27A639C3F29B60814581CD3B2CA3986D2683705577D45C2E7E52DC81C7A171876E5CEA74B1448BFDFAF18828EFD2519F14E45E3826634AF1949E5B535CC829A483B8A76223E5D490A257F05BDFF16F2FB22C583AB";
pub(crate) const RETURN_TO: &str =
    "https://rp.example.com/openid/return?janrain_nonce=2026-11-21T00%3A00%3A00ZAbC";
pub(crate) const REALM: &str = "https://rp.example.com/";

fn p() -> BigUint {
    BigUint::parse_bytes(P_HEX.as_bytes(), 16).unwrap()
}

async fn direct(env: &TestEnv, fields: &[(&str, &str)]) -> (u16, BTreeMap<String, String>) {
    let res =
        reqwest::Client::new().post(env.url("/accounts/o8/ud")).form(fields).send().await.unwrap();
    let status = res.status().as_u16();
    assert_eq!(res.headers()["content-type"], "text/plain; charset=UTF-8");
    let body = res.text().await.unwrap();
    (status, kv_parse(&body).unwrap_or_else(|err| panic!("{err}: {body:?}")).into_iter().collect())
}

/// An association as a relying party makes it: the MAC key recovered from the DH answer.
struct Assoc {
    handle: String,
    mac: Mac,
    key: Vec<u8>,
}

async fn associate(env: &TestEnv, sha256: bool) -> Assoc {
    let (assoc_type, session_type) =
        if sha256 { ("HMAC-SHA256", "DH-SHA256") } else { ("HMAC-SHA1", "DH-SHA1") };
    let xa = BigUint::from(0x1234_5678_9abc_def0_u64) * BigUint::from(0xfeed_beef_u64);
    let a = BigUint::from(2u32).modpow(&xa, &p());
    let public = STANDARD.encode(btwoc(&a));
    let (status, kv) = direct(
        env,
        &[
            ("openid.ns", NS_OPENID2),
            ("openid.mode", "associate"),
            ("openid.assoc_type", assoc_type),
            ("openid.session_type", session_type),
            ("openid.dh_consumer_public", &public),
        ],
    )
    .await;
    assert_eq!(status, 200, "{kv:?}");
    assert_eq!(kv["ns"], NS_OPENID2);
    assert_eq!(kv["assoc_type"], assoc_type);
    assert_eq!(kv["session_type"], session_type);
    assert_eq!(kv["expires_in"], "46800");
    assert!(!kv.contains_key("mac_key"));
    let b = BigUint::from_bytes_be(&STANDARD.decode(&kv["dh_server_public"]).unwrap());
    let z = btwoc(&b.modpow(&xa, &p()));
    let hashed = if sha256 {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &z)
    } else {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &z)
    };
    let enc = STANDARD.decode(&kv["enc_mac_key"]).unwrap();
    let key: Vec<u8> = hashed.as_ref().iter().zip(&enc).map(|(h, e)| h ^ e).collect();
    assert_eq!(key.len(), if sha256 { 32 } else { 20 });
    let mac = if sha256 { Mac::HmacSha256 } else { Mac::HmacSha1 };
    Assoc { handle: kv["assoc_handle"].clone(), mac, key }
}

/// A checkid request's query.
pub(crate) fn checkid(
    mode: &str,
    assoc_handle: Option<&str>,
    return_to: &str,
    realm: &str,
) -> String {
    let mut fields = vec![
        ("openid.ns", NS_OPENID2),
        ("openid.mode", mode),
        ("openid.claimed_id", IDENTIFIER_SELECT),
        ("openid.identity", IDENTIFIER_SELECT),
        ("openid.return_to", return_to),
        ("openid.realm", realm),
        ("openid.ns.ax", NS_AX),
        ("openid.ax.mode", "fetch_request"),
        ("openid.ax.type.email", "http://axschema.org/contact/email"),
        ("openid.ax.type.firstname", "http://axschema.org/namePerson/first"),
        ("openid.ax.type.lastname", "http://axschema.org/namePerson/last"),
        ("openid.ax.type.language", "http://axschema.org/pref/language"),
        ("openid.ax.type.country", "http://axschema.org/contact/country/home"),
        ("openid.ax.required", "email,firstname,lastname"),
        ("openid.ax.if_available", "language,country"),
    ];
    if let Some(handle) = assoc_handle {
        fields.push(("openid.assoc_handle", handle));
    }
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        out.append_pair(k, v);
    }
    out.finish()
}

/// The `openid.*` fields of a redirect to `return_to`.
pub(crate) fn response_fields(location: &str) -> BTreeMap<String, String> {
    assert!(location.starts_with(RETURN_TO), "{location}");
    let query = &location[RETURN_TO.len() + 1..];
    query_pairs(query)
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("openid.").map(|k| (k.to_owned(), v)))
        .collect()
}

/// Whether the assertion's signature checks with `assoc`.
fn signature_checks(fields: &BTreeMap<String, String>, assoc: &Assoc) -> bool {
    let mut text = String::new();
    for key in fields["signed"].split(',') {
        text.push_str(&format!("{key}:{}\n", fields[key]));
    }
    let sig = STANDARD.decode(&fields["sig"]).unwrap();
    tessera_crypto::openid::verify(assoc.mac, &assoc.key, text.as_bytes(), &sig)
}

/// Signs in through the sign-in page the endpoint sends the browser to, and allows on the
/// consent page; returns the final redirect to the relying party.
async fn sign_in_and_allow(env: &TestEnv, b: &mut Browser, query: &str, email: &str) -> Page {
    let first = b.get(&format!("/accounts/o8/ud?{query}")).await;
    assert_eq!(first.status, 302, "{}", first.body);
    let sent = first.location().strip_prefix("/accounts/ServiceLogin?continue=").unwrap();
    let here = query_pairs(&format!("c={sent}")).remove(0).1;
    assert!(here.starts_with(&format!("{}/accounts/o8/ud?openid.", env.base)), "{here}");
    let signed = b.sign_in_to(email, "north23AZ", &here).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let consent = b.get(signed.location()).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Sign in to <span id=\"realm\">https://rp.example.com/</span>"));
    assert!(consent.body.contains("See your email address"));
    assert!(consent.body.contains("See your name"));
    let allowed = b
        .post(
            "/accounts/o8/approve",
            &[
                ("csrf", &consent.csrf()),
                ("authuser", "0"),
                ("hd", ""),
                ("query", &consent.input("query").unwrap()),
                ("action", "allow"),
            ],
        )
        .await;
    assert_eq!(allowed.status, 303, "{}", allowed.body);
    allowed
}

#[tokio::test]
async fn discovery_documents() {
    let env = TestEnv::start().await;
    let res = reqwest::get(env.url("/accounts/o8/id")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/xrds+xml");
    assert_eq!(res.headers()["x-xrds-location"].to_str().unwrap(), env.url("/accounts/o8/id"));
    let body = res.text().await.unwrap();
    assert!(body.contains("<Type>http://specs.openid.net/auth/2.0/server</Type>"));
    assert!(body.contains(&format!("<URI>{}</URI>", env.url("/accounts/o8/ud"))));
    let person = reqwest::get(env.url("/accounts/o8/id?id=abc")).await.unwrap();
    assert_eq!(person.headers()["content-type"], "application/xrds+xml");
    let body = person.text().await.unwrap();
    assert!(body.contains("<Type>http://specs.openid.net/auth/2.0/signon</Type>"));
    assert!(body.contains(&format!("<URI>{}</URI>", env.url("/accounts/o8/ud"))));
    // Unknown hosted domains have no documents.
    let none = reqwest::get(env.url("/accounts/o8/site-xrds?hd=nowhere.example")).await.unwrap();
    assert_eq!(none.status(), 404);
}

#[tokio::test]
async fn associations_both_dh_types_and_refusals() {
    let env = TestEnv::start().await;
    associate(&env, false).await;
    associate(&env, true).await;
    let public = STANDARD.encode(btwoc(&BigUint::from(12345u32)));
    let base = [("openid.ns", NS_OPENID2), ("openid.mode", "associate")];
    let with = |extra: &[(&'static str, String)]| {
        let mut all: Vec<(&str, String)> =
            base.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        all.extend(extra.iter().cloned());
        all
    };
    let ask = async |fields: Vec<(&str, String)>| {
        let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        direct(&env, &refs).await
    };
    // A pair that does not go together, and no-encryption over plain http: unsupported-type.
    for (assoc, session) in
        [("HMAC-SHA256", "DH-SHA1"), ("HMAC-MD5", "DH-SHA1"), ("HMAC-SHA1", "no-encryption")]
    {
        let (status, kv) = ask(with(&[
            ("openid.assoc_type", assoc.into()),
            ("openid.session_type", session.into()),
            ("openid.dh_consumer_public", public.clone()),
        ]))
        .await;
        assert_eq!(status, 400);
        assert_eq!(kv["error_code"], "unsupported-type", "{assoc} {session}");
        assert_eq!(kv["assoc_type"], "HMAC-SHA256");
        assert_eq!(kv["session_type"], "DH-SHA256");
    }
    let dh = |modulus: Vec<u8>, generator: Vec<u8>, public: Vec<u8>| {
        with(&[
            ("openid.assoc_type", "HMAC-SHA1".into()),
            ("openid.session_type", "DH-SHA1".into()),
            ("openid.dh_modulus", STANDARD.encode(modulus)),
            ("openid.dh_gen", STANDARD.encode(generator)),
            ("openid.dh_consumer_public", STANDARD.encode(public)),
        ])
    };
    let p = btwoc(&p());
    let small = vec![0x7f; 32];
    let mut even = p.clone();
    *even.last_mut().unwrap() &= 0xfe;
    let huge = vec![0x7f; 600];
    for (what, fields) in [
        ("small modulus", dh(small, vec![2], vec![5])),
        ("even modulus", dh(even, vec![2], vec![5])),
        ("huge modulus", dh(huge, vec![2], vec![5])),
        ("generator 1", dh(p.clone(), vec![1], vec![5])),
        ("public 1", dh(p.clone(), vec![2], vec![1])),
        ("public p", dh(p.clone(), vec![2], p.clone())),
    ] {
        let (status, kv) = ask(fields).await;
        assert_eq!(status, 400, "{what}");
        assert!(kv.contains_key("error") && !kv.contains_key("error_code"), "{what}: {kv:?}");
        assert!(!kv.contains_key("assoc_handle"));
    }
    let (status, kv) = ask(with(&[("openid.assoc_type", "HMAC-SHA1".into())])).await;
    assert_eq!(status, 400);
    assert!(kv["error"].contains("session_type"));
    // Not an OpenID 2.0 message at all.
    let (status, _) = direct(&env, &[("openid.mode", "associate")]).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn checkid_setup_through_sign_in_and_consent_with_ax() {
    let env = TestEnv::start().await;
    run_setup_flow(&env).await;
}

#[tokio::test]
async fn checkid_setup_on_postgres() {
    let Some((url, name)) = crate::cluster::fresh_database().await else { return };
    let env = TestEnv::with_config(|c| c.database_url = url.clone()).await;
    run_setup_flow(&env).await;
    stateless_burst(&env).await;
    drop(env);
    crate::cluster::drop_database(&name).await;
}

async fn run_setup_flow(env: &TestEnv) {
    let account = env.account("alice@example.com", "north23AZ").await;
    let actor = tessera_domain::audit::Actor::Cli;
    tessera_domain::accounts::set_name(env.ctx(), &account, "Alice Liddell", &actor, "")
        .await
        .unwrap();
    let assoc = associate(env, true).await;
    let query = checkid("checkid_setup", Some(&assoc.handle), RETURN_TO, REALM);
    let mut b = env.browser();
    let allowed = sign_in_and_allow(env, &mut b, &query, "alice@example.com").await;
    let fields = response_fields(allowed.location());
    assert_eq!(fields["mode"], "id_res");
    assert_eq!(fields["ns"], NS_OPENID2);
    assert_eq!(fields["return_to"], RETURN_TO);
    assert_eq!(fields["op_endpoint"], env.url("/accounts/o8/ud"));
    assert_eq!(fields["assoc_handle"], assoc.handle);
    assert!(!fields.contains_key("invalidate_handle"));
    let claimed = fields["claimed_id"].clone();
    assert_eq!(fields["identity"], claimed);
    assert!(claimed.starts_with(&env.url("/accounts/o8/id?id=")));
    assert!(fields["response_nonce"].starts_with("2026-11-21T00:00:00Z"));
    let signed: Vec<&str> = fields["signed"].split(',').collect();
    for key in [
        "op_endpoint",
        "claimed_id",
        "identity",
        "return_to",
        "response_nonce",
        "assoc_handle",
        "ns.ext1",
        "ext1.mode",
        "ext1.value.email",
    ] {
        assert!(signed.contains(&key), "{key} unsigned");
    }
    assert!(signature_checks(&fields, &assoc));
    // AX: e-mail and names from the one claim rule; no language or country.
    assert_eq!(fields["ns.ext1"], NS_AX);
    assert_eq!(fields["ext1.mode"], "fetch_response");
    assert_eq!(fields["ext1.value.email"], "alice@example.com");
    assert_eq!(fields["ext1.type.email"], "http://axschema.org/contact/email");
    assert_eq!(fields["ext1.value.firstname"], "Alice");
    assert_eq!(fields["ext1.value.lastname"], "Liddell");
    assert!(!fields.contains_key("ext1.value.language"));
    assert!(!fields.contains_key("ext1.value.country"));
    // A shared association is never checked through check_authentication.
    let mut check: Vec<(String, String)> =
        fields.iter().map(|(k, v)| (format!("openid.{k}"), v.clone())).collect();
    check.retain(|(k, _)| k != "openid.mode");
    check.push(("openid.mode".into(), "check_authentication".into()));
    let refs: Vec<(&str, &str)> = check.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, kv) = direct(env, &refs).await;
    assert_eq!(status, 200);
    assert_eq!(kv["is_valid"], "false");
    // The claimed identifier re-discovers to the same endpoint.
    let xrds = reqwest::get(&claimed).await.unwrap().text().await.unwrap();
    assert!(xrds.contains(&format!("<URI>{}</URI>", fields["op_endpoint"])));

    // The approval is remembered for the realm: the next request (immediate, too) is answered at
    // once, with the same identifier; another realm gets another identifier and asks again.
    let again = b
        .get(&format!(
            "/accounts/o8/ud?{}",
            checkid("checkid_immediate", Some(&assoc.handle), RETURN_TO, REALM)
        ))
        .await;
    assert_eq!(again.status, 302, "{}", again.body);
    let again = response_fields(again.location());
    assert_eq!(again["mode"], "id_res");
    assert_eq!(again["claimed_id"], claimed);
    assert_ne!(again["response_nonce"], fields["response_nonce"]);
    assert!(signature_checks(&again, &assoc));
    let other_realm = "https://*.example.com/";
    let other = b
        .get(&format!("/accounts/o8/ud?{}", checkid("checkid_setup", None, RETURN_TO, other_realm)))
        .await;
    assert_eq!(other.status, 200, "consent again: {}", other.body);
    assert!(other.body.contains("https://*.example.com/"));
}

#[tokio::test]
async fn immediate_without_session_is_setup_needed_and_deny_is_cancel() {
    let env = TestEnv::start().await;
    env.account("alice@example.com", "north23AZ").await;
    let mut b = env.browser();
    let res = b
        .get(&format!("/accounts/o8/ud?{}", checkid("checkid_immediate", None, RETURN_TO, REALM)))
        .await;
    assert_eq!(res.status, 302);
    let fields = response_fields(res.location());
    assert_eq!(fields.get("mode").map(String::as_str), Some("setup_needed"));
    assert!(!fields.keys().any(|k| k.starts_with("ext") || k.starts_with("ns.")), "{fields:?}");

    let query = checkid("checkid_setup", None, RETURN_TO, REALM);
    let here = format!("{}/accounts/o8/ud?{query}", env.base);
    b.sign_in_to("alice@example.com", "north23AZ", &here).await;
    let consent = b.get(&format!("/accounts/o8/ud?{query}")).await;
    assert_eq!(consent.status, 200);
    let denied = b
        .post(
            "/accounts/o8/approve",
            &[
                ("csrf", &consent.csrf()),
                ("authuser", "0"),
                ("hd", ""),
                ("query", &consent.input("query").unwrap()),
                ("action", "deny"),
            ],
        )
        .await;
    assert_eq!(denied.status, 303);
    let fields = response_fields(denied.location());
    assert_eq!(fields["mode"], "cancel");
    assert_eq!(fields.len(), 2, "{fields:?}");
    // Immediate with a session but no approval: setup_needed, still no page.
    let res = b
        .get(&format!("/accounts/o8/ud?{}", checkid("checkid_immediate", None, RETURN_TO, REALM)))
        .await;
    assert_eq!(response_fields(res.location())["mode"], "setup_needed");
}

/// The UI extension's `lang` names the language of the sign-in and realm pages, as `hl` does.
#[tokio::test]
async fn ui_lang_sets_the_language_of_sign_in_and_the_realm_page() {
    let env = TestEnv::start().await;
    env.account("alice@example.com", "north23AZ").await;
    let mut b = env.browser();
    let query = format!(
        "{}&openid.ns.ui={}&openid.ui.lang=de-DE",
        checkid("checkid_setup", None, RETURN_TO, REALM),
        urlencode_all("http://specs.openid.net/extensions/ui/1.0")
    );
    let first = b.get(&format!("/accounts/o8/ud?{query}")).await;
    assert_eq!(first.status, 302, "{}", first.body);
    assert!(first.location().starts_with("/accounts/ServiceLogin?hl=de&"), "{}", first.location());
    let form = b.get(first.location()).await;
    assert!(form.body.contains("<html lang=\"de\">"), "{}", form.body);
    let here = format!("{}/accounts/o8/ud?{query}", env.base);
    b.sign_in_to("alice@example.com", "north23AZ", &here).await;
    let consent = b.get(&format!("/accounts/o8/ud?{query}")).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("<html lang=\"de\">"), "{}", consent.body);
    assert!(consent.body.contains("Anmelden bei"), "{}", consent.body);
    assert!(consent.body.contains(">Zulassen</button>"), "{}", consent.body);
    // Without the extension: English.
    let plain = b
        .get(&format!("/accounts/o8/ud?{}", checkid("checkid_setup", None, RETURN_TO, REALM)))
        .await;
    assert!(plain.body.contains("<html lang=\"en\">"), "{}", plain.body);
}

#[tokio::test]
async fn return_to_outside_the_realm_is_refused_without_redirect() {
    let env = TestEnv::start().await;
    let mut b = env.browser();
    for (return_to, realm) in [
        ("https://evil.example/cb", REALM),
        ("https://rp.example.com.evil.example/cb", REALM),
        ("http://rp.example.com/cb", REALM),
        ("https://rp.example.com/cb", "https://*.com/"),
        ("javascript:alert(1)", "javascript:alert(1)"),
    ] {
        let res = b
            .get(&format!("/accounts/o8/ud?{}", checkid("checkid_setup", None, return_to, realm)))
            .await;
        assert_eq!(res.status, 400, "{return_to} {realm}");
        assert!(res.headers.get("location").is_none());
        assert!(res.body.contains("cannot be answered"));
    }
    // A bad request whose return_to is under the realm gets an indirect error there.
    let query = "openid.ns=http%3A%2F%2Fspecs.openid.net%2Fauth%2F2.0&openid.mode=checkid_setup&openid.identity=x&openid.return_to=https%3A%2F%2Frp.example.com%2Fcb&openid.realm=https%3A%2F%2Frp.example.com%2F";
    let res = b.get(&format!("/accounts/o8/ud?{query}")).await;
    assert_eq!(res.status, 302);
    assert!(
        res.location().starts_with("https://rp.example.com/cb?openid.ns="),
        "{}",
        res.location()
    );
    assert!(res.location().contains("openid.mode=error"));
}

/// Signs alice in, approves once, and returns a stateless assertion's fields.
async fn stateless_assertion(env: &TestEnv, b: &mut Browser) -> BTreeMap<String, String> {
    let query = checkid("checkid_setup", Some("no-such-handle"), RETURN_TO, REALM);
    let here = format!("{}/accounts/o8/ud?{query}", env.base);
    b.sign_in_to("alice@example.com", "north23AZ", &here).await;
    let page = b.get(&format!("/accounts/o8/ud?{query}")).await;
    let res = if page.status == 200 {
        b.post(
            "/accounts/o8/approve",
            &[
                ("csrf", &page.csrf()),
                ("authuser", "0"),
                ("hd", ""),
                ("query", &page.input("query").unwrap()),
                ("action", "allow"),
            ],
        )
        .await
    } else {
        page
    };
    let fields = response_fields(res.location());
    assert_eq!(fields["mode"], "id_res");
    assert_eq!(fields["invalidate_handle"], "no-such-handle");
    fields
}

fn check_fields(fields: &BTreeMap<String, String>) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| {
            let v = if k == "mode" { "check_authentication".to_owned() } else { v.clone() };
            (format!("openid.{k}"), v)
        })
        .collect()
}

async fn check_authentication(
    env: &TestEnv,
    fields: &[(String, String)],
) -> BTreeMap<String, String> {
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, kv) = direct(env, &refs).await;
    assert_eq!(status, 200);
    kv
}

#[tokio::test]
async fn stateless_mode_checks_each_signature_once() {
    let env = TestEnv::start().await;
    env.account("alice@example.com", "north23AZ").await;
    let mut b = env.browser();
    let fields = stateless_assertion(&env, &mut b).await;
    // Tampered: is_valid false, and the untampered one still checks once.
    let mut tampered = fields.clone();
    tampered.insert("ext1.value.email".into(), "mallory@example.com".into());
    let kv = check_authentication(&env, &check_fields(&tampered)).await;
    assert_eq!(kv["is_valid"], "false");
    assert_eq!(kv["invalidate_handle"], "no-such-handle");
    let kv = check_authentication(&env, &check_fields(&fields)).await;
    assert_eq!(kv["is_valid"], "true");
    assert_eq!(kv["ns"], NS_OPENID2);
    // Replayed: no.
    let kv = check_authentication(&env, &check_fields(&fields)).await;
    assert_eq!(kv["is_valid"], "false");
    // By GET too (older clients), still no.
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(check_fields(&fields))
        .finish();
    let got = b.get(&format!("/accounts/o8/ud?{query}")).await;
    assert_eq!(got.status, 200);
    assert!(got.body.contains("is_valid:false\n"));
    stateless_burst(&env).await;
}

/// Sixteen parallel check_authentication requests for one fresh assertion: exactly one true.
async fn stateless_burst(env: &TestEnv) {
    if env.ctx().store.accounts().find_by_email("alice@example.com").await.unwrap().is_none() {
        env.account("alice@example.com", "north23AZ").await;
    }
    let mut b = env.browser();
    let fields = stateless_assertion(env, &mut b).await;
    let check = check_fields(&fields);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let url = env.url("/accounts/o8/ud");
        let check = check.clone();
        tasks.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .form(&check)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }));
    }
    let mut valid = 0;
    for task in tasks {
        if task.await.unwrap().contains("is_valid:true\n") {
            valid += 1;
        }
    }
    assert_eq!(valid, 1);
}

#[tokio::test]
async fn switched_off_by_configuration() {
    let env = TestEnv::with_config(|raw| raw.legacy.openid2 = false).await;
    assert_eq!(reqwest::get(env.url("/accounts/o8/id")).await.unwrap().status(), 404);
}

#[tokio::test]
async fn python_openid_relying_party_verifies_a_real_assertion() {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let Some(py) = crate::support::python_packages("python-openid").await else { return };
    let env = TestEnv::start().await;
    // The relying party checks response nonces against its own (real) clock, ±5 h: the server's
    // fixed clock is set to the real time for this test only.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    env.clock.set(now.as_secs() as i64);
    env.account("alice@example.com", "north23AZ").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/openid2_rp.py");
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&env.base)
        .env("PYTHONPATH", &py)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next_line().await.unwrap().unwrap_or_default();
    assert!(url.starts_with(&env.url("/accounts/o8/ud?")), "{url}");
    let query = url.split_once('?').unwrap().1.to_owned();
    let mut b = env.browser();
    let here = format!("{}/accounts/o8/ud?{query}", env.base);
    let signed = b.sign_in_to("alice@example.com", "north23AZ", &here).await;
    assert_eq!(signed.status, 303);
    let consent = b.get(&format!("/accounts/o8/ud?{query}")).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let allowed = b
        .post(
            "/accounts/o8/approve",
            &[
                ("csrf", &consent.csrf()),
                ("authuser", "0"),
                ("hd", ""),
                ("query", &consent.input("query").unwrap()),
                ("action", "allow"),
            ],
        )
        .await;
    assert_eq!(allowed.status, 303, "{}", allowed.body);
    let back = allowed.location().to_owned();
    assert!(back.starts_with("http://rp.example.test/return?session=abc&"), "{back}");
    assert!(back.contains("&openid.mode=id_res&"), "{back}");
    stdin.write_all(format!("{back}\n").as_bytes()).await.unwrap();
    stdin.flush().await.unwrap();
    let verdict = lines.next_line().await.unwrap().unwrap_or_default();
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("ok {}", env.url("/accounts/o8/id?id="));
    assert!(verdict.starts_with(&expected), "{verdict} {stderr}");
    assert!(verdict.ends_with(" alice@example.com"), "{verdict}");
}

/// `POST /accounts/OAuthGetAccessToken` with the hybrid's token, signed with `consumer_secret&`
/// (an empty token secret) and without `oauth_verifier`: the status and body.
async fn exchange_over_http(
    env: &TestEnv,
    token: &str,
    consumer_secret: &str,
    nonce: &str,
) -> (u16, String) {
    let url = env.url("/accounts/OAuthGetAccessToken");
    let now = env.ctx().now().to_string();
    let header = crate::oauth1::sign(
        "POST",
        &url,
        &[
            ("oauth_consumer_key", "rp.example.com"),
            ("oauth_nonce", nonce),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", now.as_str()),
            ("oauth_token", token),
            ("oauth_version", "1.0"),
        ],
        &[],
        consumer_secret,
        "",
    );
    let res =
        reqwest::Client::new().post(&url).header("authorization", header).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

#[tokio::test]
async fn hybrid_assertion_carries_an_authorized_request_token_exchanged_once() {
    let env = TestEnv::start().await;
    let actor = tessera_domain::audit::Actor::Cli;
    env.account("alice@example.com", "north23AZ").await;
    let scope = "https://docs.example.com/feeds/";
    let new = tessera_domain::services::NewService {
        name: "docs".to_owned(),
        display_name: "Documents".to_owned(),
        scopes: vec![scope.to_owned()],
        clientlogin_ttl_secs: None,
        protocols: None,
    };
    tessera_domain::services::add(env.ctx(), new, &actor).await.unwrap();
    tessera_domain::authsub::register(
        env.ctx(),
        "rp.example.com",
        "https://rp.example.com/",
        None,
        Some("alice@example.com"),
        &actor,
    )
    .await
    .unwrap();
    let secret = tessera_domain::oauth1::mint_consumer_secret(env.ctx(), "rp.example.com", &actor)
        .await
        .unwrap();
    let assoc = associate(&env, false).await;
    let mut query = checkid("checkid_setup", Some(&assoc.handle), RETURN_TO, REALM);
    query.push_str(&format!(
        "&openid.ns.oauth={}&openid.oauth.consumer=rp.example.com&openid.oauth.scope={}",
        urlencode_all(tessera_proto_openid2::NS_OAUTH),
        urlencode_all(scope)
    ));
    let mut b = env.browser();
    let here = format!("{}/accounts/o8/ud?{query}", env.base);
    b.sign_in_to("alice@example.com", "north23AZ", &here).await;
    let consent = b.get(&format!("/accounts/o8/ud?{query}")).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("<li>Documents</li>"), "{}", consent.body);
    let allowed = b
        .post(
            "/accounts/o8/approve",
            &[
                ("csrf", &consent.csrf()),
                ("authuser", "0"),
                ("hd", ""),
                ("query", &consent.input("query").unwrap()),
                ("action", "allow"),
            ],
        )
        .await;
    let fields = response_fields(allowed.location());
    assert_eq!(fields["ns.ext2"], tessera_proto_openid2::NS_OAUTH);
    assert_eq!(fields["ext2.scope"], scope);
    let token = fields["ext2.request_token"].clone();
    let signed: Vec<&str> = fields["signed"].split(',').collect();
    for key in ["ns.ext2", "ext2.request_token", "ext2.scope"] {
        assert!(signed.contains(&key), "{key} unsigned");
    }
    assert!(signature_checks(&fields, &assoc));

    // The consumer exchanges it once over HTTP, with an empty token secret and no verifier.
    let (status, body) = exchange_over_http(&env, &token, &secret, "n1").await;
    assert_eq!(status, 200, "{body}");
    let answer = tessera_proto_oauth1::parse_form(&body).unwrap();
    let keys: Vec<&str> = answer.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["oauth_token", "oauth_token_secret"]);
    assert!(answer[0].1.starts_with("1/") && !answer[1].1.is_empty(), "{body}");
    let (status, body) = exchange_over_http(&env, &token, &secret, "n2").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.starts_with("token_rejected\n"), "{body}");

    // An unknown consumer: the assertion says the OAuth part was declined (ns.ext2 alone).
    let mut query = checkid("checkid_immediate", Some(&assoc.handle), RETURN_TO, REALM);
    query.push_str(&format!(
        "&openid.ns.oauth={}&openid.oauth.consumer=evil.example&openid.oauth.scope={}",
        urlencode_all(tessera_proto_openid2::NS_OAUTH),
        urlencode_all(scope)
    ));
    let res = b.get(&format!("/accounts/o8/ud?{query}")).await;
    let fields = response_fields(res.location());
    assert_eq!(fields["mode"], "id_res");
    assert_eq!(fields["ns.ext2"], tessera_proto_openid2::NS_OAUTH);
    assert!(!fields.contains_key("ext2.request_token"));
    assert!(signature_checks(&fields, &assoc));
}

fn urlencode_all(text: &str) -> String {
    crate::support::urlencode(text)
}
