//! Services and scopes. A service owns scope URL prefixes (a scope covers every URL under its
//! prefix) and has a ClientLogin service name; a few short scopes (`openid`, `email`, `profile`)
//! are built in. An unknown scope is an error, never a silent grant.

use serde_json::json;
use tessera_store::ServiceRecord;

use crate::audit::{self, Actor};
use crate::credentials::Protocol;
use crate::{Ctx, Error, Result};

/// Legacy protocols a service can accept.
pub const LEGACY_PROTOCOLS: [&str; 2] =
    [Protocol::SERVICE_PROTOCOLS[0].as_str(), Protocol::SERVICE_PROTOCOLS[1].as_str()];

/// Default lifetime of ClientLogin `Auth` tokens: 14 days.
pub const DEFAULT_CLIENTLOGIN_TTL_SECS: i64 = 14 * 86_400;

/// Short scopes every deployment knows, with what they let an application do.
pub const BUILTIN_SCOPES: [(&str, &str); 3] = [
    ("openid", "Associate you with your personal info"),
    ("email", "See your email address"),
    ("profile", "See your name and public profile"),
];

/// A new service as an administrator describes it.
#[derive(Debug, Clone)]
pub struct NewService {
    pub name: String,
    pub display_name: String,
    pub scopes: Vec<String>,
    pub clientlogin_ttl_secs: Option<i64>,
    /// `None` accepts every legacy protocol.
    pub protocols: Option<Vec<String>>,
}

/// A requested scope, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeInfo {
    pub scope: String,
    /// What the person is asked to allow.
    pub description: String,
    /// The owning service; `None` for built-in scopes.
    pub service: Option<String>,
}

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Checks a scope's shape: an http(s) URL prefix without userinfo, query or fragment, or a short name.
pub fn valid_scope(scope: &str) -> bool {
    if scope.is_empty()
        || scope.len() > 512
        || scope.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return false;
    }
    if scope.contains("://") {
        return match url::Url::parse(scope) {
            Ok(url) => {
                matches!(url.scheme(), "http" | "https")
                    && url.username().is_empty()
                    && url.password().is_none()
                    && url.query().is_none()
                    && url.fragment().is_none()
            }
            Err(_) => false,
        };
    }
    scope.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:/".contains(&b))
}

pub async fn add(ctx: &Ctx, new: NewService, actor: &Actor) -> Result<ServiceRecord> {
    if !valid_name(&new.name) {
        return Err(Error::Invalid(
            "A service name is 1 to 32 lowercase letters, digits, '-' or '_'.".to_owned(),
        ));
    }
    let display_name = new.display_name.trim();
    if display_name.is_empty() || display_name.chars().count() > 100 {
        return Err(Error::Invalid(
            "Give the service a display name of 1 to 100 characters.".to_owned(),
        ));
    }
    if new.scopes.is_empty() {
        return Err(Error::Invalid("A service owns at least one scope.".to_owned()));
    }
    for scope in &new.scopes {
        if !valid_scope(scope) {
            return Err(Error::Invalid(format!(
                "{scope:?} is not a valid scope (an http(s) URL prefix or a short name)."
            )));
        }
        if BUILTIN_SCOPES.iter().any(|(name, _)| name == scope) {
            return Err(Error::Invalid(format!("{scope} is a built-in scope.")));
        }
    }
    let ttl = new.clientlogin_ttl_secs.unwrap_or(DEFAULT_CLIENTLOGIN_TTL_SECS);
    if !(60..=366 * 86_400).contains(&ttl) {
        return Err(Error::Invalid(
            "The ClientLogin token lifetime is between a minute and a year.".to_owned(),
        ));
    }
    let protocols = new
        .protocols
        .unwrap_or_else(|| LEGACY_PROTOCOLS.iter().map(|it| (*it).to_owned()).collect());
    if let Some(bad) = protocols.iter().find(|it| !LEGACY_PROTOCOLS.contains(&it.as_str())) {
        return Err(Error::Invalid(format!(
            "{bad} is not a protocol a service can accept here (accepted: {}).",
            LEGACY_PROTOCOLS.join(", ")
        )));
    }
    let record = ServiceRecord {
        name: new.name.clone(),
        display_name: display_name.to_owned(),
        scopes: new.scopes.join(" "),
        clientlogin_ttl_secs: ttl,
        protocols: protocols.join(" "),
        created_at: ctx.now(),
        web_prefixes: String::new(),
        logout_url: String::new(),
        backchannel_logout_url: String::new(),
    };
    ctx.store.services().add(&record).await.map_err(|err| match err {
        tessera_store::StoreError::Conflict(_) => {
            Error::Conflict(format!("A service named {} already exists.", new.name))
        }
        other => other.into(),
    })?;
    audit::record(ctx, "service.add", None, actor, "", json!({ "service": record.name })).await?;
    Ok(record)
}

pub async fn list(ctx: &Ctx) -> Result<Vec<ServiceRecord>> {
    Ok(ctx.store.services().list().await?)
}

pub async fn get(ctx: &Ctx, name: &str) -> Result<ServiceRecord> {
    ctx.store.services().get(name).await?.ok_or(Error::NotFound)
}

/// A service's web sign-on settings as an administrator gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceWeb {
    /// URL prefixes a `continue` may start with (`https://feeds.example/`); empty: no web sign-on.
    pub prefixes: Vec<String>,
    /// Front-channel logout: loaded by the browser on the sign-out page.
    pub logout_url: Option<String>,
    /// Back-channel logout: tessera POSTs each sign-out to it.
    pub backchannel_logout_url: Option<String>,
}

/// An absolute http(s) URL without userinfo or fragment (a logout endpoint).
fn valid_endpoint(url: &str) -> bool {
    url.len() <= 512
        && !url.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        && url::Url::parse(url).is_ok_and(|it| {
            matches!(it.scheme(), "http" | "https")
                && it.host_str().is_some()
                && it.username().is_empty()
                && it.password().is_none()
                && it.fragment().is_none()
        })
}

/// A web prefix: an endpoint URL without query whose path ends with `/`, so that a prefix never
/// covers a sibling path (`https://a.example/app/` does not cover `https://a.example/appx`).
pub fn valid_web_prefix(prefix: &str) -> bool {
    valid_endpoint(prefix)
        && url::Url::parse(prefix).is_ok_and(|it| {
            it.query().is_none() && it.path().ends_with('/') && it.as_str() == prefix
        })
}

/// Sets where a service's web sign-on may return to and where its sign-outs go.
pub async fn set_web(
    ctx: &Ctx,
    name: &str,
    web: ServiceWeb,
    actor: &Actor,
) -> Result<ServiceRecord> {
    get(ctx, name).await?;
    if web.prefixes.len() > 20 {
        return Err(Error::Invalid("A service has at most 20 web prefixes.".to_owned()));
    }
    for prefix in &web.prefixes {
        if !valid_web_prefix(prefix) {
            return Err(Error::Invalid(format!(
                "{:?} is not a web prefix: an absolute http(s) URL ending in '/', without query, fragment or userinfo, written as it normalizes (e.g. https://feeds.example/).",
                prefix.chars().take(200).collect::<String>()
            )));
        }
    }
    for url in [&web.logout_url, &web.backchannel_logout_url].into_iter().flatten() {
        if !valid_endpoint(url) {
            return Err(Error::Invalid(format!(
                "{:?} is not a logout URL: an absolute http(s) URL without fragment or userinfo.",
                url.chars().take(200).collect::<String>()
            )));
        }
    }
    let prefixes = web.prefixes.join(" ");
    let logout = web.logout_url.unwrap_or_default();
    let backchannel = web.backchannel_logout_url.unwrap_or_default();
    ctx.store.services().set_web(name, &prefixes, &logout, &backchannel).await?;
    audit::record(
        ctx,
        "service.web",
        None,
        actor,
        "",
        json!({ "service": name, "prefixes": prefixes, "logout_url": logout, "backchannel_logout_url": backchannel }),
    )
    .await?;
    get(ctx, name).await
}

/// The service's web prefixes.
pub fn web_prefixes(service: &ServiceRecord) -> Vec<String> {
    service.web_prefixes.split(' ').filter(|it| !it.is_empty()).map(str::to_owned).collect()
}

/// Whether the service accepts a legacy protocol.
pub fn accepts(service: &ServiceRecord, protocol: Protocol) -> bool {
    service.protocols.split(' ').any(|it| it == protocol.as_str())
}

/// The service owning `scope` (the longest matching prefix), if any.
pub fn owner<'a>(services: &'a [ServiceRecord], scope: &str) -> Option<&'a ServiceRecord> {
    services
        .iter()
        .filter_map(|service| {
            crate::credentials::Scopes::parse(&service.scopes)
                .iter()
                .filter(|prefix| covers(prefix, scope))
                .map(str::len)
                .max()
                .map(|n| (n, service))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, service)| service)
}

/// Whether a registered scope covers a requested one: equal, or a URL under the prefix.
pub fn covers(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    if !registered.contains("://") || !requested.starts_with(registered) {
        return false;
    }
    // `https://x/feeds` covers `https://x/feeds/a` but not `https://x/feedsevil`.
    registered.ends_with('/') || requested[registered.len()..].starts_with('/')
}

/// Resolves requested scopes (deduplicated, in request order); any unknown scope fails the whole
/// request, naming it.
pub async fn resolve(ctx: &Ctx, requested: &[String]) -> Result<Vec<ScopeInfo>> {
    if requested.iter().all(|scope| BUILTIN_SCOPES.iter().any(|(name, _)| name == scope)) {
        return resolve_with(&[], requested);
    }
    let services = ctx.store.services().list().await?;
    resolve_with(&services, requested)
}

pub fn resolve_with(services: &[ServiceRecord], requested: &[String]) -> Result<Vec<ScopeInfo>> {
    let mut out: Vec<ScopeInfo> = Vec::new();
    for scope in requested {
        if out.iter().any(|it| it.scope == *scope) {
            continue;
        }
        if let Some((_, description)) = BUILTIN_SCOPES.iter().find(|(name, _)| name == scope) {
            out.push(ScopeInfo {
                scope: scope.clone(),
                description: (*description).to_owned(),
                service: None,
            });
            continue;
        }
        if !valid_scope(scope) {
            return Err(Error::Invalid(format!(
                "Unknown scope: {}",
                scope.chars().take(100).collect::<String>()
            )));
        }
        let Some(service) = owner(services, scope) else {
            return Err(Error::Invalid(format!("Unknown scope: {scope}")));
        };
        out.push(ScopeInfo {
            scope: scope.clone(),
            description: format!("Manage your {} data", service.display_name),
            service: Some(service.name.clone()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn service(name: &str, scopes: &str) -> ServiceRecord {
        ServiceRecord {
            name: name.to_owned(),
            display_name: name.to_uppercase(),
            scopes: scopes.to_owned(),
            clientlogin_ttl_secs: DEFAULT_CLIENTLOGIN_TTL_SECS,
            protocols: "authsub clientlogin oauth1".to_owned(),
            created_at: 0,
            web_prefixes: String::new(),
            logout_url: String::new(),
            backchannel_logout_url: String::new(),
        }
    }

    #[test]
    fn prefixes_cover_urls_under_them_only() {
        assert!(covers("https://cal.example/feeds/", "https://cal.example/feeds/default/private"));
        assert!(covers("https://cal.example/feeds", "https://cal.example/feeds/x"));
        assert!(covers("https://cal.example/feeds", "https://cal.example/feeds"));
        assert!(!covers("https://cal.example/feeds", "https://cal.example/feedsevil"));
        assert!(!covers("https://cal.example/feeds/", "https://cal.example.evil/feeds/"));
        assert!(!covers("cl", "clx"));
    }

    #[test]
    fn resolves_known_and_refuses_unknown() {
        let services = [
            service("cl", "https://cal.example/feeds/"),
            service("mail", "https://mail.example/ https://mail.example/atom/"),
        ];
        let got = resolve_with(
            &services,
            &[
                "openid".to_owned(),
                "https://cal.example/feeds/default".to_owned(),
                "https://mail.example/atom/x".to_owned(),
                "openid".to_owned(),
            ],
        )
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].service.as_deref(), Some("cl"));
        assert_eq!(got[2].service.as_deref(), Some("mail"));
        let err = resolve_with(&services, &["https://evil.example/".to_owned()]).unwrap_err();
        assert!(err.to_string().contains("Unknown scope"));
    }

    #[test]
    fn web_prefixes_are_normalized_directories() {
        assert!(valid_web_prefix("https://feeds.example/"));
        assert!(valid_web_prefix("http://127.0.0.2:8080/app/"));
        for bad in [
            "https://feeds.example",
            "https://feeds.example/app",
            "https://feeds.example/?q=1",
            "https://feeds.example/#x",
            "https://u@feeds.example/",
            "ftp://feeds.example/",
            "https://FEEDS.example/",
            "/app/",
            "",
        ] {
            assert!(!valid_web_prefix(bad), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn web_prefix_check_never_panics(s in "\\PC{0,60}") {
            if valid_web_prefix(&s) {
                prop_assert!(s.ends_with('/'));
            }
        }

        #[test]
        fn resolve_never_panics(scopes in proptest::collection::vec("\\PC{0,40}", 0..5)) {
            let services = [service("cl", "https://cal.example/feeds/")];
            if let Ok(resolved) = resolve_with(&services, &scopes) {
                for it in resolved {
                    prop_assert!(it.service.is_none() || it.scope.starts_with("https://cal.example/feeds"));
                }
            }
        }
    }
}
