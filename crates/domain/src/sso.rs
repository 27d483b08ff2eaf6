//! Web single sign-on across services and domains.
//!
//! A service registers the URL prefixes its pages live under (`services::set_web`). A browser sent
//! to `ServiceLogin?service=…&continue=…` signs in (or reuses its session) and is sent back to
//! `continue` with a one-time `auth=` token ([`CredentialKind::ServiceAuth`]) bound to the
//! service, the `continue` URL and the browser session; the service's back end redeems it once
//! ([`check_service_auth`]) and keeps a session of its own.
//!
//! Ubertokens ([`CredentialKind::Ubertoken`]) sign a browser in from elsewhere: `IssueAuthToken`
//! mints one from a ClientLogin SID + LSID pair ([`issue_from_sid_lsid`]), `OAuthLogin` from an
//! OAuth 2.0 access token; `TokenAuth` and `MergeSession` redeem it once into a browser session
//! ([`sign_in_with_ubertoken`]).
//!
//! Both kinds live seconds, are consumed by one conditional update (exactly one redemption
//! whichever node asks), die with the session or grant they came from, and are checked only
//! through `credentials::find_valid`.

use serde_json::json;
use tessera_store::{
    AccountRecord, CredentialKind, CredentialRecord, ServiceRecord, SessionRecord,
};

use crate::audit::{self, Actor};
use crate::credentials::{self, Valid};
use crate::sessions::{ClientInfo, SignedIn};
use crate::{Ctx, Error, Result, services};

/// How long an `auth=` token lives: one redirect and one back-end call.
pub const SERVICE_AUTH_TTL_SECS: i64 = 60;
/// How long an ubertoken lives: one request from the client that got it.
pub const UBERTOKEN_TTL_SECS: i64 = 120;
/// The service name `IssueAuthToken` mints ubertokens for.
pub const GAIA_SERVICE: &str = "gaia";
/// The query parameter carrying the one-time token to a service.
pub const AUTH_PARAM: &str = "auth";

/// Why a web sign-on step was refused; the web layer maps each to the ClientLogin-style
/// `Error=` code (`BadAuthentication`, `Unknown`, `ServiceDisabled`) or to a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The token is unknown, used, expired, revoked, or bound to another service or URL.
    BadAuthentication,
    /// No such service.
    Unknown,
    /// The service takes no web sign-on (no web prefixes registered).
    ServiceDisabled,
    /// `continue` is missing or not under one of the service's registered prefixes.
    BadContinue,
}

/// An `auth=` token's data: what it is bound to.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceAuthData {
    #[serde(default)]
    pub service: String,
    /// `continue` without any `auth` parameter.
    #[serde(default)]
    pub continue_url: String,
}

/// An ubertoken's data.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UbertokenData {
    /// Who asked for it (`source`), for the audit log.
    #[serde(default)]
    pub source: String,
}

/// Where a web sign-on goes back to: a service with web sign-on and a `continue` under one of its
/// prefixes.
#[derive(Debug, Clone)]
pub struct Target {
    pub service: ServiceRecord,
    pub continue_url: String,
}

/// Checks `service` and `continue` of a web sign-on request.
pub async fn target(
    ctx: &Ctx,
    service: &str,
    continue_url: &str,
) -> Result<Result<Target, Refusal>> {
    let service = match services::get(ctx, service).await {
        Ok(service) => service,
        Err(Error::NotFound) => return Ok(Err(Refusal::Unknown)),
        Err(err) => return Err(err),
    };
    let prefixes = services::web_prefixes(&service);
    if prefixes.is_empty() {
        return Ok(Err(Refusal::ServiceDisabled));
    }
    match continue_under(&ctx.public_url, &prefixes, continue_url) {
        Some(continue_url) => Ok(Ok(Target { service, continue_url })),
        None => Ok(Err(Refusal::BadContinue)),
    }
}

/// `input` validated (`redirect::validate_continue`), under one of `prefixes` (never this server's
/// own pages: a token goes only to the service it is for), without `auth` parameters.
pub fn continue_under(public_url: &str, prefixes: &[String], input: &str) -> Option<String> {
    let valid = crate::redirect::validate_continue(public_url, prefixes, input)?;
    let stripped = without_auth(&valid)?;
    prefixes
        .iter()
        .any(|prefix| crate::redirect::under_registered_prefix(prefix, &stripped))
        .then_some(stripped)
}

/// `url` with every `auth` query parameter removed (the form an `auth=` token is bound to).
pub fn without_auth(url: &str) -> Option<String> {
    let mut parsed = url::Url::parse(url).ok()?;
    if parsed.query().is_none() {
        return Some(parsed.to_string());
    }
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(key, _)| key != AUTH_PARAM)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Some(parsed.to_string())
}

/// `continue_url` with `auth=<token>` appended as its last query parameter.
pub fn with_auth(continue_url: &str, token: &str) -> String {
    match url::Url::parse(continue_url) {
        Ok(mut url) => {
            url.query_pairs_mut().append_pair(AUTH_PARAM, token);
            url.to_string()
        }
        Err(_) => continue_url.to_owned(),
    }
}

/// Mints the one-time `auth=` token for a signed-in browser session and answers where to send the
/// browser: `continue` with `auth=` appended.
pub async fn issue_service_auth(
    ctx: &Ctx,
    signed_in: &SignedIn,
    target: &Target,
) -> Result<String> {
    let now = ctx.now();
    let (token, digest) = ctx.new_token();
    let mut record = CredentialRecord::new(digest, CredentialKind::ServiceAuth, now);
    record.account_id = Some(signed_in.account.id.clone());
    record.session_id = Some(signed_in.session.id.clone());
    record.data = credentials::encode(&ServiceAuthData {
        service: target.service.name.clone(),
        continue_url: target.continue_url.clone(),
    })?;
    record.expires_at = Some(now + SERVICE_AUTH_TTL_SECS);
    ctx.store.credentials().insert(&record).await?;
    metrics::counter!("tessera_sso_service_auth_total", "service" => target.service.name.clone())
        .increment(1);
    Ok(with_auth(&target.continue_url, &token))
}

/// `passive` on `ServiceLogin` (and `CheckCookie`, which is always passive): answer without
/// showing a page. `true` takes a session of any age; a number of seconds takes one whose password
/// was checked no longer ago than that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passive {
    Any,
    MaxAge(i64),
}

impl Passive {
    /// `true` or a number of seconds; anything else (`false`, empty, garbage) is not passive.
    pub fn parse(value: &str) -> Option<Passive> {
        match value {
            "true" => Some(Passive::Any),
            digits if !digits.is_empty() && digits.len() <= 10 => {
                digits.parse::<u32>().ok().map(|it| Passive::MaxAge(i64::from(it)))
            }
            _ => None,
        }
    }

    /// Whether a signed-in browser session is recent enough to be used without a page.
    pub fn allows(self, ctx: &Ctx, session: &SessionRecord) -> bool {
        match self {
            Passive::Any => true,
            Passive::MaxAge(secs) => ctx.now() - session.auth_time <= secs,
        }
    }
}

/// Who a redeemed `auth=` token signs in at a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUser {
    /// The account's stable public identifier.
    pub subject: String,
    pub email: String,
    pub name: String,
    /// An opaque handle of the browser session, the same for this service each time and different
    /// for every service; sign-outs name it.
    pub session: String,
    /// When the browser session ends at the latest.
    pub session_expires_at: i64,
}

/// The handle a service knows a browser session by.
pub fn session_handle(ctx: &Ctx, session_id: &str, service: &str) -> String {
    ctx.pepper.keyed_digest("sso-session", format!("{service}\n{session_id}").as_bytes())
}

/// Redeems an `auth=` token, exactly once, for the service and `continue` URL it was minted for.
/// A token presented with the wrong service or URL is used up all the same.
pub async fn check_service_auth(
    ctx: &Ctx,
    token: &str,
    service: &str,
    continue_url: &str,
) -> Result<Result<ServiceUser, Refusal>> {
    let Some(Valid { record, account }) =
        credentials::find_valid(ctx, token, &[CredentialKind::ServiceAuth]).await?
    else {
        return Ok(Err(Refusal::BadAuthentication));
    };
    let consumed = ctx.store.credentials().consume(&record.digest, record.kind, ctx.now()).await?;
    let (Some(_), Some(account), Some(session_id)) = (consumed, account, record.session_id.clone())
    else {
        return Ok(Err(Refusal::BadAuthentication));
    };
    let bound: ServiceAuthData = credentials::data(&record);
    if bound.service != service
        || Some(bound.continue_url.as_str()) != without_auth(continue_url).as_deref()
    {
        return Ok(Err(Refusal::BadAuthentication));
    }
    // The service must still take web sign-on at that URL (its prefixes may have changed).
    if target(ctx, service, &bound.continue_url).await?.is_err() {
        return Ok(Err(Refusal::BadAuthentication));
    }
    let Some(session) = ctx.store.sessions().get(&session_id).await? else {
        return Ok(Err(Refusal::BadAuthentication));
    };
    audit::record(
        ctx,
        "sso.service_auth",
        Some(&account.id),
        &Actor::Account,
        "",
        json!({ "service": service, "session": session_id }),
    )
    .await?;
    Ok(Ok(ServiceUser {
        subject: crate::accounts::subject(&account.id),
        email: account.email.clone(),
        name: account.name.clone(),
        session: session_handle(ctx, &session_id, service),
        session_expires_at: session.expires_at,
    }))
}

/// Mints an ubertoken for an account, hanging from `grant_id` (it dies with the grant).
pub async fn issue_ubertoken(
    ctx: &Ctx,
    account_id: &str,
    grant_id: Option<&str>,
    source: &str,
) -> Result<String> {
    let now = ctx.now();
    let (token, digest) = ctx.new_token();
    let mut record = CredentialRecord::new(digest, CredentialKind::Ubertoken, now);
    record.account_id = Some(account_id.to_owned());
    record.grant_id = grant_id.map(str::to_owned);
    record.data =
        credentials::encode(&UbertokenData { source: source.chars().take(100).collect() })?;
    record.expires_at = Some(now + UBERTOKEN_TTL_SECS);
    ctx.store.credentials().insert(&record).await?;
    metrics::counter!("tessera_sso_ubertoken_total").increment(1);
    Ok(token)
}

/// `IssueAuthToken`: a ClientLogin SID and LSID of the same login buy one ubertoken (for
/// `service=gaia`). The SID alone is not enough; the LSID is used up, and the SID with it.
pub async fn issue_from_sid_lsid(
    ctx: &Ctx,
    sid: &str,
    lsid: &str,
    service: &str,
    source: &str,
    ip: &str,
) -> Result<Result<String, Refusal>> {
    if !service.is_empty() && service != GAIA_SERVICE {
        return Ok(Err(Refusal::Unknown));
    }
    let sid = credentials::find_valid(ctx, sid, &[CredentialKind::ClientLoginSid]).await?;
    let lsid = credentials::find_valid(ctx, lsid, &[CredentialKind::ClientLoginLsid]).await?;
    let (Some(sid), Some(lsid)) = (sid, lsid) else {
        return Ok(Err(Refusal::BadAuthentication));
    };
    let sid_login = credentials::data::<credentials::ClientLoginData>(&sid.record).login;
    let lsid_login = credentials::data::<credentials::ClientLoginData>(&lsid.record).login;
    let same_login = sid.record.account_id.is_some()
        && sid.record.account_id == lsid.record.account_id
        && !sid_login.is_empty()
        && sid_login == lsid_login;
    if !same_login {
        return Ok(Err(Refusal::BadAuthentication));
    }
    let now = ctx.now();
    if ctx.store.credentials().consume(&lsid.record.digest, lsid.record.kind, now).await?.is_none()
    {
        return Ok(Err(Refusal::BadAuthentication));
    }
    ctx.store.credentials().revoke(&sid.record.digest, now).await?;
    let account_id = sid.record.account_id.clone().unwrap_or_default();
    let token = issue_ubertoken(ctx, &account_id, sid.record.grant_id.as_deref(), source).await?;
    audit::record(
        ctx,
        "sso.issue_auth_token",
        Some(&account_id),
        &Actor::Account,
        ip,
        json!({ "source": source.chars().take(100).collect::<String>() }),
    )
    .await?;
    Ok(Ok(token))
}

/// The account, grant and client of an OAuth 2.0 access token that carries the `OAuthLogin`
/// scope (checked through the one validator: its grant, client and account must be live).
async fn oauth_login_holder(
    ctx: &Ctx,
    access_token: &str,
) -> Result<Option<(String, Option<String>, Option<String>)>> {
    let Some(valid) = crate::oauth2::tokens::validate_access_token(
        ctx,
        access_token,
        false,
        crate::oauth2::tokens::Presentation::Bearer,
    )
    .await?
    else {
        return Ok(None);
    };
    match (valid.record.account_id.clone(), valid.scopes().covers(&oauth_login_scope(ctx))) {
        (Some(account_id), true) => {
            Ok(Some((account_id, valid.record.grant_id.clone(), valid.record.client_id.clone())))
        }
        _ => Ok(None),
    }
}

/// `OAuthLogin?issueuberauth=1`: an OAuth 2.0 access token that carries the `OAuthLogin` scope
/// buys one ubertoken hanging from the token's grant.
pub async fn issue_from_access_token(
    ctx: &Ctx,
    access_token: &str,
    source: &str,
    ip: &str,
) -> Result<Result<String, Refusal>> {
    let Some((account_id, grant_id, client_id)) = oauth_login_holder(ctx, access_token).await?
    else {
        return Ok(Err(Refusal::BadAuthentication));
    };
    let token = issue_ubertoken(ctx, &account_id, grant_id.as_deref(), source).await?;
    audit::record(
        ctx,
        "sso.oauth_login",
        Some(&account_id),
        &Actor::Account,
        ip,
        json!({ "client": client_id }),
    )
    .await?;
    Ok(Ok(token))
}

/// `OAuthLogin` without `issueuberauth`: an OAuth 2.0 access token that carries the `OAuthLogin`
/// scope buys ClientLogin's SID, LSID and `Auth` for `service` (a registered service that takes
/// ClientLogin), all three hanging from the token's grant and client, so removing that access
/// ends them.
pub async fn client_login_from_access_token(
    ctx: &Ctx,
    access_token: &str,
    service: &str,
    ip: &str,
) -> Result<Result<crate::clientlogin::Issued, Refusal>> {
    let Some((account_id, Some(grant_id), Some(client_id))) =
        oauth_login_holder(ctx, access_token).await?
    else {
        return Ok(Err(Refusal::BadAuthentication));
    };
    let service = match services::get(ctx, service).await {
        Ok(service) => service,
        Err(Error::NotFound) => return Ok(Err(Refusal::Unknown)),
        Err(err) => return Err(err),
    };
    if !services::accepts(&service, credentials::Protocol::ClientLogin)
        || !credentials::protocol_enabled(ctx, credentials::Protocol::ClientLogin)
    {
        return Ok(Err(Refusal::ServiceDisabled));
    }
    let Some(grant) = ctx.store.grants().get(&grant_id).await? else {
        return Ok(Err(Refusal::BadAuthentication));
    };
    let issued =
        crate::clientlogin::issue(ctx, &account_id, &service, &grant_id, &client_id, &grant.scopes)
            .await?;
    audit::record(
        ctx,
        "sso.oauth_login",
        Some(&account_id),
        &Actor::Account,
        ip,
        json!({ "client": client_id, "service": service.name }),
    )
    .await?;
    Ok(Ok(issued))
}

/// The scope an access token needs for `OAuthLogin`: this server's `/accounts/OAuthLogin` URL
/// (a service must own it for clients to be granted it).
pub fn oauth_login_scope(ctx: &Ctx) -> String {
    format!("{}/accounts/OAuthLogin", ctx.public_url)
}

/// `TokenAuth` / `MergeSession`: redeems an ubertoken, exactly once, into a new browser session of
/// its account. The web layer puts the session into the browser's cookie, rotating the others.
pub async fn sign_in_with_ubertoken(
    ctx: &Ctx,
    token: &str,
    client: &ClientInfo,
) -> Result<Result<(AccountRecord, String, SessionRecord), Refusal>> {
    let Some(Valid { record, account }) =
        credentials::find_valid(ctx, token, &[CredentialKind::Ubertoken]).await?
    else {
        return Ok(Err(Refusal::BadAuthentication));
    };
    let Some(account) = account else {
        return Ok(Err(Refusal::BadAuthentication));
    };
    if ctx.store.credentials().consume(&record.digest, record.kind, ctx.now()).await?.is_none() {
        return Ok(Err(Refusal::BadAuthentication));
    }
    let (session_token, session) =
        crate::sessions::create(ctx, &account, false, false, client).await?;
    let source = credentials::data::<UbertokenData>(&record).source;
    audit::record(
        ctx,
        "sso.ubertoken_sign_in",
        Some(&account.id),
        &Actor::Account,
        &client.ip,
        json!({ "source": source, "session": session.id }),
    )
    .await?;
    Ok(Ok((account, session_token, session)))
}

/// Every registered service's web prefixes, with `extra` (the configured `continue` prefixes):
/// where a plain `continue` (`Logout`, `TokenAuth` without `service`) may go.
pub async fn continue_prefixes(ctx: &Ctx, extra: &[String]) -> Result<Vec<String>> {
    let mut out = extra.to_vec();
    for service in services::list(ctx).await? {
        out.extend(services::web_prefixes(&service));
    }
    Ok(out)
}

/// Where a service hears of a sign-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutNotice {
    pub service: String,
    /// Front channel: the URL the sign-out page loads in the browser (`session=<handle>` added).
    pub front: Option<String>,
    /// Back channel: the URL to POST `session=<handle>` to, and the handle.
    pub back: Option<(String, String)>,
}

/// The notices for the browser sessions just signed out: every service with web sign-on and a
/// logout URL hears of every session, by the handle it knows it by (a service that never saw a
/// handle ignores it).
pub async fn logout_notices(ctx: &Ctx, sessions: &[SessionRecord]) -> Result<Vec<LogoutNotice>> {
    if sessions.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for service in services::list(ctx).await? {
        if service.web_prefixes.is_empty()
            || (service.logout_url.is_empty() && service.backchannel_logout_url.is_empty())
        {
            continue;
        }
        for session in sessions {
            let handle = session_handle(ctx, &session.id, &service.name);
            let front = (!service.logout_url.is_empty()).then(|| {
                let mut url = url::Url::parse(&service.logout_url).ok()?;
                url.query_pairs_mut().append_pair("session", &handle);
                Some(url.to_string())
            });
            let back = (!service.backchannel_logout_url.is_empty())
                .then(|| (service.backchannel_logout_url.clone(), handle.clone()));
            out.push(LogoutNotice { service: service.name.clone(), front: front.flatten(), back });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestCtx;
    use proptest::prelude::*;

    const PUBLIC: &str = "http://accounts.example";

    fn prefixes() -> Vec<String> {
        vec!["https://feeds.example/app/".to_owned()]
    }

    #[test]
    fn continue_goes_only_under_the_service_prefixes() {
        assert_eq!(
            continue_under(PUBLIC, &prefixes(), "https://feeds.example/app/x?a=1&auth=old")
                .as_deref(),
            Some("https://feeds.example/app/x?a=1")
        );
        for bad in [
            "/account",
            "http://accounts.example/account",
            "https://feeds.example/appx",
            "https://feeds.example/",
            "https://feeds.example.evil/app/",
            "https://feeds.example@evil.example/app/",
            "//evil.example/app/",
            "javascript:alert(1)",
            "https://feeds.example/app/../../x",
            "",
        ] {
            assert_eq!(continue_under(PUBLIC, &prefixes(), bad), None, "{bad:?}");
        }
    }

    #[test]
    fn auth_is_appended_last_and_stripped_for_binding() {
        let url = with_auth("https://feeds.example/app/x?a=1", "T0k");
        assert_eq!(url, "https://feeds.example/app/x?a=1&auth=T0k");
        assert_eq!(without_auth(&url).as_deref(), Some("https://feeds.example/app/x?a=1"));
        assert_eq!(
            without_auth("https://feeds.example/app/?auth=x").as_deref(),
            Some("https://feeds.example/app/")
        );
    }

    proptest! {
        #[test]
        fn continue_never_leaves_the_prefixes(s in "\\PC{0,60}") {
            if let Some(url) = continue_under(PUBLIC, &prefixes(), &s) {
                prop_assert!(url.starts_with("https://feeds.example/app/"), "{}", url);
            }
        }
    }

    async fn web_service(t: &TestCtx) -> Target {
        services::add(
            &t.ctx,
            services::NewService {
                name: "feeds".to_owned(),
                display_name: "Feeds".to_owned(),
                scopes: vec!["https://feeds.example/api/".to_owned()],
                clientlogin_ttl_secs: None,
                protocols: None,
            },
            &Actor::Cli,
        )
        .await
        .unwrap();
        let web = services::ServiceWeb { prefixes: prefixes(), ..Default::default() };
        services::set_web(&t.ctx, "feeds", web, &Actor::Cli).await.unwrap();
        target(&t.ctx, "feeds", "https://feeds.example/app/home").await.unwrap().unwrap()
    }

    fn token_of(url: &str) -> String {
        url::Url::parse(url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == AUTH_PARAM)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    }

    #[test]
    fn passive_is_true_or_a_number_of_seconds() {
        assert_eq!(Passive::parse("true"), Some(Passive::Any));
        assert_eq!(Passive::parse("300"), Some(Passive::MaxAge(300)));
        assert_eq!(Passive::parse("0"), Some(Passive::MaxAge(0)));
        for not in ["", "false", "TRUE", "-5", "1e3", "99999999999", " 5"] {
            assert_eq!(Passive::parse(not), None, "{not:?}");
        }
    }

    #[tokio::test]
    async fn an_auth_token_redeems_once_for_its_service_and_url() {
        let t = TestCtx::new().await;
        let target = web_service(&t).await;
        let alice = t.account("alice@example.test").create().await;
        let client = ClientInfo::default();
        let (cookie, _) =
            crate::sessions::create(&t.ctx, &alice.record, false, false, &client).await.unwrap();
        let browser = crate::sessions::load(&t.ctx, &cookie).await.unwrap().remove(0);
        let url = issue_service_auth(&t.ctx, &browser, &target).await.unwrap();
        let token = token_of(&url);
        let user = check_service_auth(&t.ctx, &token, "feeds", &url).await.unwrap().unwrap();
        assert_eq!(user.email, "alice@example.test");
        assert_eq!(user.session, session_handle(&t.ctx, &browser.session.id, "feeds"));
        assert_eq!(
            check_service_auth(&t.ctx, &token, "feeds", &url).await.unwrap(),
            Err(Refusal::BadAuthentication),
            "replayed"
        );
        // Bound to the service and the URL; a wrong presentation uses it up.
        for (service, at) in [("other", url.as_str()), ("feeds", "https://feeds.example/app/else")]
        {
            let url = issue_service_auth(&t.ctx, &browser, &target).await.unwrap();
            let token = token_of(&url);
            assert_eq!(
                check_service_auth(&t.ctx, &token, service, at).await.unwrap(),
                Err(Refusal::BadAuthentication)
            );
            assert!(check_service_auth(&t.ctx, &token, "feeds", &url).await.unwrap().is_err());
        }
        // Seconds-long.
        let url = issue_service_auth(&t.ctx, &browser, &target).await.unwrap();
        t.advance(SERVICE_AUTH_TTL_SECS);
        assert!(check_service_auth(&t.ctx, &token_of(&url), "feeds", &url).await.unwrap().is_err());
        // Dies with the session.
        let url = issue_service_auth(&t.ctx, &browser, &target).await.unwrap();
        crate::sessions::sign_out(&t.ctx, std::slice::from_ref(&browser), "").await.unwrap();
        assert!(check_service_auth(&t.ctx, &token_of(&url), "feeds", &url).await.unwrap().is_err());
    }

    #[tokio::test]
    async fn unknown_services_and_hostile_continues_are_refused() {
        let t = TestCtx::new().await;
        web_service(&t).await;
        assert_eq!(
            target(&t.ctx, "nope", "https://feeds.example/app/").await.unwrap().err(),
            Some(Refusal::Unknown)
        );
        assert_eq!(
            target(&t.ctx, "feeds", "https://evil.example/app/").await.unwrap().err(),
            Some(Refusal::BadContinue)
        );
    }

    #[tokio::test]
    async fn an_ubertoken_signs_in_once() {
        let t = TestCtx::new().await;
        let alice = t.account("alice@example.test").create().await;
        let token = issue_ubertoken(&t.ctx, alice.id(), None, "test").await.unwrap();
        let client = ClientInfo::default();
        let (account, cookie, _) =
            sign_in_with_ubertoken(&t.ctx, &token, &client).await.unwrap().unwrap();
        assert_eq!(account.id, alice.record.id);
        assert_eq!(crate::sessions::load(&t.ctx, &cookie).await.unwrap().len(), 1);
        assert_eq!(
            sign_in_with_ubertoken(&t.ctx, &token, &client).await.unwrap().err(),
            Some(Refusal::BadAuthentication)
        );
        let late = issue_ubertoken(&t.ctx, alice.id(), None, "test").await.unwrap();
        t.advance(UBERTOKEN_TTL_SECS);
        assert!(sign_in_with_ubertoken(&t.ctx, &late, &client).await.unwrap().is_err());
    }
}
