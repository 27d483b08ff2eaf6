//! Realms (`openid.realm`, OpenID 1's `trust_root`) and the rule that `return_to` lies under one:
//! same scheme, same port, the same host (or, for `*.example.com`, any host under it) and a path
//! equal to or below the realm's path.

use url::{Host, Url};

/// Why a realm or `return_to` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RealmError {
    #[error("the realm is not an http or https URL")]
    NotHttp,
    #[error("the realm may not have a fragment or user information")]
    Extra,
    #[error("a wildcard realm must name a domain of two labels or more, as in *.example.com")]
    BadWildcard,
    #[error("return_to is not under the realm")]
    Outside,
    #[error("return_to is not an http or https URL")]
    BadReturnTo,
}

/// A parsed realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Realm {
    scheme: String,
    wildcard: bool,
    host: String,
    port: u16,
    path: String,
}

const MAX_LEN: usize = 2047;

fn parse_http(text: &str) -> Option<Url> {
    if text.len() > MAX_LEN || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    let url = Url::parse(text).ok()?;
    let http = matches!(url.scheme(), "http" | "https");
    (http && url.host().is_some()).then_some(url)
}

impl Realm {
    /// Reads a realm. A query is allowed (a realm defaulting to `return_to` may have one) and
    /// plays no part in matching.
    pub fn parse(text: &str) -> Result<Realm, RealmError> {
        let (wildcard, rest) = match text.split_once("://*.") {
            Some((scheme, rest)) => (true, format!("{scheme}://{rest}")),
            None => (false, text.to_owned()),
        };
        if rest.contains('*') {
            return Err(RealmError::BadWildcard);
        }
        let url = parse_http(&rest).ok_or(RealmError::NotHttp)?;
        if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err(RealmError::Extra);
        }
        let host = match url.host() {
            Some(Host::Domain(domain)) => domain.trim_end_matches('.').to_owned(),
            Some(_) if wildcard => return Err(RealmError::BadWildcard),
            Some(other) => other.to_string(),
            None => return Err(RealmError::NotHttp),
        };
        if wildcard && host.split('.').filter(|it| !it.is_empty()).count() < 2 {
            return Err(RealmError::BadWildcard);
        }
        Ok(Realm {
            scheme: url.scheme().to_owned(),
            wildcard,
            host,
            port: url.port_or_known_default().unwrap_or(0),
            path: url.path().to_owned(),
        })
    }

    /// Whether `return_to` lies under this realm.
    pub fn check(&self, return_to: &str) -> Result<(), RealmError> {
        let url = parse_http(return_to).ok_or(RealmError::BadReturnTo)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RealmError::BadReturnTo);
        }
        let host = match url.host() {
            Some(Host::Domain(domain)) => domain.trim_end_matches('.').to_owned(),
            Some(other) => other.to_string(),
            None => return Err(RealmError::BadReturnTo),
        };
        let host_ok = host == self.host
            || (self.wildcard && host.len() > self.host.len() + 1 && {
                let (sub, parent) = host.split_at(host.len() - self.host.len());
                parent == self.host && sub.ends_with('.')
            });
        let path = url.path();
        let path_ok = path.starts_with(&self.path)
            && (path.len() == self.path.len()
                || self.path.ends_with('/')
                || path.as_bytes()[self.path.len()] == b'/');
        let same = url.scheme() == self.scheme
            && url.port_or_known_default() == Some(self.port)
            && host_ok
            && path_ok;
        if same { Ok(()) } else { Err(RealmError::Outside) }
    }

    /// The realm in one normal form (`https://*.example.com:443/path`): the unit remembered
    /// approvals and per-realm identifiers are keyed by.
    pub fn normalized(&self) -> String {
        let star = if self.wildcard { "*." } else { "" };
        format!("{}://{star}{}:{}{}", self.scheme, self.host, self.port, self.path)
    }

    /// The realm as people read it (`https://*.example.com/`).
    pub fn display(&self) -> String {
        let star = if self.wildcard { "*." } else { "" };
        let default = (self.scheme == "https" && self.port == 443)
            || (self.scheme == "http" && self.port == 80);
        let port = if default { String::new() } else { format!(":{}", self.port) };
        format!("{}://{star}{}{port}{}", self.scheme, self.host, self.path)
    }

    /// The realm's host (without the wildcard).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }
}
