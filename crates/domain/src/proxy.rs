//! The front-end token proxy: a front-end (a single-page app, formerly a gadget) never holds a
//! refresh token or a client secret; it asks tessera to call a resource URL, and tessera attaches
//! the credential the signed-in account granted that app.
//!
//! A front-end app is an OAuth 2.0 client of its project ([`ClientKind::FrontEnd`]) whose settings
//! ([`FrontEnd`]) name the origins it is served from and the resource prefixes ([`Target`]) it may
//! reach, each with the protocol and scopes the proxy uses there. Its grants are ordinary OAuth 2.0
//! grants recorded through the one interaction flow (the approval page is the one consent page);
//! once approved, the proxy mints a refresh token and an access token through the same token
//! functions as the token endpoint (and, for AuthSub targets, an AuthSub session token of the
//! same grant) and keeps them sealed in one `proxy_holding` credential per
//! account, app and grant ([`CredentialKind::ProxyHolding`]), found again through the one
//! validator, so revoking the grant, deleting the app or disabling the account ends it.
//!
//! This module decides which URL may be called ([`match_target`]), which headers pass
//! ([`request_headers`], [`response_headers`]), which resolved addresses may be connected to
//! ([`AddressGuard`]), which credential is attached, and follows redirects hop by hop, checking
//! each again. The outgoing HTTP call itself sits behind [`Fetcher`], implemented by the web
//! crate: it resolves names itself, asks the guard about every address, connects to the checked
//! one, never follows redirects, and caps the response's size.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tessera_store::{CredentialKind, CredentialRecord, CredentialTransition, ProjectRecord};
use url::Url;

use crate::audit::{self, Actor};
use crate::caller::{
    OAuth1Signer, authsub_authorization, bearer_authorization, oauth1_authorization,
};
use crate::credentials::{self, Protocol, Scopes};
use crate::interaction::{Applicant, Approved, Asks, Choosing, Memory, Request};
use crate::oauth2::clients::{self, Client, ClientKind, NewClient};
use crate::oauth2::tokens::{self, Subject};
use crate::services::{self, ScopeInfo};
use crate::sessions::SignedIn;
use crate::{Ctx, Error, Result, grants};

/// The deployment's limits on the proxy's outgoing calls (`[proxy]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPolicy {
    /// Connect to private, loopback, link-local and other special addresses too. Off by default:
    /// only an administrator who knows the network should switch it on.
    pub allow_private_addresses: bool,
    /// Exactly these addresses (`ip:port`) may be connected to although they are special.
    pub allowed_addresses: Vec<SocketAddr>,
    /// The largest response body passed back, in bytes.
    pub max_response_bytes: usize,
    /// The longest a whole proxied request may take, redirects included, in seconds.
    pub timeout_secs: u64,
}

impl Default for ProxyPolicy {
    fn default() -> ProxyPolicy {
        ProxyPolicy {
            allow_private_addresses: false,
            allowed_addresses: Vec::new(),
            max_response_bytes: 1024 * 1024,
            timeout_secs: 10,
        }
    }
}

/// Redirects followed for one proxied request, each checked like the first URL.
pub const MAX_REDIRECTS: usize = 5;

/// The most origins and targets one front-end app registers.
pub const MAX_ORIGINS: usize = 10;
pub const MAX_TARGETS: usize = 20;

/// The credential the proxy attaches at a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetProtocol {
    /// An OAuth 2.0 access token (`Authorization: Bearer`), refreshed when it expires.
    OAuth2,
    /// A plain AuthSub session token (`Authorization: AuthSub token="…"`), for resources that
    /// only take AuthSub; it lives as long as the grant.
    AuthSub,
    /// An OAuth 1.0 signature (`Authorization: OAuth …`, HMAC-SHA1) over each outgoing request,
    /// with the consumer secret of the registered consumer the target names and the secret of an
    /// OAuth 1.0 access token held for the grant; it lives as long as the grant.
    OAuth1,
}

impl TargetProtocol {
    pub fn parse(text: &str) -> Option<TargetProtocol> {
        match text {
            "oauth2" => Some(TargetProtocol::OAuth2),
            "authsub" => Some(TargetProtocol::AuthSub),
            "oauth1" => Some(TargetProtocol::OAuth1),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TargetProtocol::OAuth2 => "oauth2",
            TargetProtocol::AuthSub => "authsub",
            TargetProtocol::OAuth1 => "oauth1",
        }
    }
}

/// One resource prefix a front-end app may reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// An absolute URL prefix: scheme, host, port and a path ending in `/`.
    pub prefix: String,
    pub protocol: TargetProtocol,
    /// The scopes the credential attached here carries.
    pub scopes: Vec<String>,
    /// For an `oauth1` target: the key of the registered OAuth 1.0 consumer the proxy signs as
    /// (a registration owned by the owner of the app's project). `None` for other protocols.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
}

impl Target {
    /// The target as an administrator writes it: `[PROTOCOL [CONSUMER]] PREFIX SCOPE…`.
    pub fn line(&self) -> String {
        let mut words = Vec::new();
        if self.protocol != TargetProtocol::OAuth2 {
            words.push(self.protocol.as_str().to_owned());
        }
        words.extend(self.consumer.iter().cloned());
        words.push(self.prefix.clone());
        words.extend(self.scopes.iter().cloned());
        words.join(" ")
    }
}

/// What a front-end app's client settings hold (`ClientSettings::proxy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontEnd {
    /// The origins the front-end is served from (`https://app.example`): CORS, the `Origin`
    /// check and where the approval page may return to.
    pub origins: Vec<String>,
    pub targets: Vec<Target>,
}

impl FrontEnd {
    /// Every scope the app's targets use, sorted: what the approval page asks for.
    pub fn scopes(&self) -> Scopes {
        Scopes::from_names(self.targets.iter().flat_map(|it| it.scopes.iter().map(String::as_str)))
    }

    /// Whether `origin` (an `Origin` header's value) is one of the app's.
    pub fn has_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|it| it == origin)
    }
}

/// A front-end app as an administrator or developer registers it.
#[derive(Debug, Clone)]
pub struct NewFrontEnd {
    pub name: String,
    pub origins: Vec<String>,
    pub targets: Vec<Target>,
}

/// Whether `host` is a loopback name or address, where plain http is accepted (development).
fn loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn scheme_fits(url: &Url) -> bool {
    url.scheme() == "https" || (url.scheme() == "http" && loopback_host(url))
}

fn plain(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 2000
        && !text.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\')
}

/// Checks one origin as registered: `https://host[:port]`, exactly as browsers send it (http
/// only on loopback).
pub fn check_origin(text: &str) -> Result<String> {
    let bad = || {
        Error::Invalid(format!(
            "{} is not an origin: use https://host[:port], without a path (http only on loopback).",
            text.chars().take(100).collect::<String>()
        ))
    };
    if !plain(text) {
        return Err(bad());
    }
    let url = Url::parse(text).map_err(|_| bad())?;
    let origin = url.origin().ascii_serialization();
    if !scheme_fits(&url) || origin != text || url.host().is_none() {
        return Err(bad());
    }
    Ok(origin)
}

/// Checks one resource prefix as registered: an absolute https URL (http only on loopback)
/// without user information, query or fragment, whose path ends in `/`, in canonical form.
pub fn check_prefix(text: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::Invalid(format!("{}: {why}", text.chars().take(100).collect::<String>()))
    };
    if !plain(text) {
        return Err(bad("not a URL prefix"));
    }
    let url = Url::parse(text).map_err(|_| bad("not an absolute URL"))?;
    if !scheme_fits(&url) || url.host().is_none() {
        return Err(bad("use https (http only on loopback)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("no user information"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no query or fragment"));
    }
    if !url.path().ends_with('/') {
        return Err(bad("the path must end with /"));
    }
    if url.as_str() != text || encoded_separator(url.path()) {
        return Err(bad("write it in canonical form"));
    }
    Ok(url.to_string())
}

/// A path with a percent-encoded `/`, `\` or `.`: a server that decodes it may see another path
/// than the one the allow-list matched.
fn encoded_separator(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    ["%2f", "%5c", "%2e", "%00"].iter().any(|it| lower.contains(it))
}

/// One target as an administrator writes it (the CLI's `--target`, a line of the console's form):
/// optionally the protocol (`oauth2`, the default, `authsub` or `oauth1`; `oauth1` is followed by
/// the consumer key the proxy signs as), the prefix, then the scopes used there, separated by
/// spaces.
pub fn parse_target(text: &str) -> Result<Target> {
    let mut words = text.split_whitespace().peekable();
    let protocol = match words.peek().and_then(|it| TargetProtocol::parse(it)) {
        Some(protocol) => {
            words.next();
            protocol
        }
        None => TargetProtocol::OAuth2,
    };
    let consumer = match protocol {
        TargetProtocol::OAuth1 => Some(words.next().map(str::to_owned).ok_or_else(|| {
            Error::Invalid("An oauth1 target names its consumer key, then the prefix.".to_owned())
        })?),
        _ => None,
    };
    let prefix = words
        .next()
        .ok_or_else(|| Error::Invalid("Give a resource prefix and its scopes.".to_owned()))?;
    let scopes: Vec<String> = words.map(str::to_owned).collect();
    if scopes.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: name the scopes after the prefix.",
            prefix.chars().take(100).collect::<String>()
        )));
    }
    Ok(Target { prefix: prefix.to_owned(), protocol, scopes, consumer })
}

/// Why an `oauth1` target's consumer may not be signed as for the app of `project`: it is not a
/// registered consumer, its registration is not owned by the project's owner, or it has no HMAC
/// consumer secret. `None` when it may.
async fn consumer_problem(ctx: &Ctx, project: &ProjectRecord, key: &str) -> Result<Option<String>> {
    let owner = crate::oauth1::consumer_owner(ctx, key).await?;
    if owner.as_deref() != Some(project.owner_account_id.as_str()) {
        return Ok(Some(format!(
            "{} is not an OAuth 1.0 consumer registered by the project's owner.",
            key.chars().take(100).collect::<String>()
        )));
    }
    let has_secret = crate::oauth1::consumer(ctx, key)
        .await?
        .is_some_and(|it| it.registered && it.hmac_secret().is_some());
    if !has_secret {
        return Ok(Some(format!(
            "{} has no HMAC-SHA1 consumer secret yet: mint one first.",
            key.chars().take(100).collect::<String>()
        )));
    }
    Ok(None)
}

async fn checked(ctx: &Ctx, project: &ProjectRecord, new: &NewFrontEnd) -> Result<FrontEnd> {
    if new.origins.is_empty() || new.origins.len() > MAX_ORIGINS {
        return Err(Error::Invalid(format!("Register 1 to {MAX_ORIGINS} origins.")));
    }
    if new.targets.is_empty() || new.targets.len() > MAX_TARGETS {
        return Err(Error::Invalid(format!("Register 1 to {MAX_TARGETS} resource prefixes.")));
    }
    let mut origins = Vec::new();
    for origin in &new.origins {
        let origin = check_origin(origin)?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    let mut targets: Vec<Target> = Vec::new();
    for target in &new.targets {
        let prefix = check_prefix(&target.prefix)?;
        if targets.iter().any(|it| it.prefix == prefix) {
            return Err(Error::Invalid(format!("{prefix} is registered twice.")));
        }
        let scopes = Scopes::from_names(target.scopes.iter().map(String::as_str)).to_vec();
        if scopes.is_empty() {
            return Err(Error::Invalid(format!("Name the scopes the proxy uses at {prefix}.")));
        }
        services::resolve(ctx, &scopes).await?;
        let consumer = match (target.protocol, &target.consumer) {
            (TargetProtocol::OAuth1, Some(key)) => {
                if let Some(problem) = consumer_problem(ctx, project, key).await? {
                    return Err(Error::Invalid(problem));
                }
                if !crate::oauth1::may_grant(ctx, &scopes).await? {
                    return Err(Error::Invalid(format!(
                        "The scopes at {prefix} must be of services that accept OAuth 1.0."
                    )));
                }
                Some(key.clone())
            }
            (TargetProtocol::OAuth1, None) => {
                return Err(Error::Invalid(format!("Name the OAuth 1.0 consumer for {prefix}.")));
            }
            (_, None) => None,
            (_, Some(_)) => {
                return Err(Error::Invalid(format!(
                    "Only an oauth1 target names a consumer ({prefix})."
                )));
            }
        };
        targets.push(Target { prefix, protocol: target.protocol, scopes, consumer });
    }
    Ok(FrontEnd { origins, targets })
}

/// Registers a front-end app in `project`.
pub async fn register(
    ctx: &Ctx,
    project: &ProjectRecord,
    new: NewFrontEnd,
    actor: &Actor,
) -> Result<Client> {
    let settings = checked(ctx, project, &new).await?;
    let client = NewClient {
        kind: ClientKind::FrontEnd,
        name: new.name.clone(),
        redirect_uris: Vec::new(),
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    let created = clients::create_with(ctx, project, client, Some(settings), actor).await?;
    audit::record(
        ctx,
        "proxy.app.register",
        None,
        actor,
        "",
        json!({ "client": created.client.id(), "project": project.id }),
    )
    .await?;
    Ok(created.client)
}

/// The front-end apps of a project.
pub async fn list(ctx: &Ctx, project_id: &str) -> Result<Vec<(Client, FrontEnd)>> {
    Ok(clients::list(ctx, project_id).await?.into_iter().filter_map(front_end).collect())
}

fn front_end(client: Client) -> Option<(Client, FrontEnd)> {
    if client.kind != ClientKind::FrontEnd {
        return None;
    }
    let settings = client.settings.proxy.clone()?;
    Some((client, settings))
}

/// The front-end app with this client id.
pub async fn load(ctx: &Ctx, client_id: &str) -> Result<Option<(Client, FrontEnd)>> {
    Ok(clients::load(ctx, client_id).await?.and_then(front_end))
}

/// Removes a front-end app: its grants, and with them the tokens the proxy held, are revoked.
pub async fn remove(ctx: &Ctx, client_id: &str, actor: &Actor) -> Result<()> {
    if load(ctx, client_id).await?.is_none() {
        return Err(Error::NotFound);
    }
    clients::delete(ctx, client_id, actor).await
}

/// Why a proxied request got no resource answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No front-end app has this id.
    UnknownApp,
    /// The request itself is malformed: the text says what.
    BadRequest(String),
    /// The URL is not under one of the app's registered prefixes.
    UrlNotAllowed,
    /// A redirect pointed outside the app's registered prefixes.
    RedirectNotAllowed,
    /// More than [`MAX_REDIRECTS`] redirects.
    TooManyRedirects,
    /// The host resolved to an address the proxy does not connect to.
    AddressNotAllowed,
    /// The host did not resolve.
    Unresolvable,
    /// The response was larger than the deployment allows.
    ResponseTooLarge,
    /// The whole request took longer than the deployment allows.
    Timeout,
    /// The resource server could not be reached, or broke the connection.
    Unreachable,
    /// The target's protocol is switched off on this server (`[legacy] authsub = false`).
    ProtocolOff,
    /// An `oauth1` target's consumer is no longer registered by the project's owner, or has no
    /// consumer secret: nothing can be signed as it.
    ConsumerUnavailable,
}

impl Refusal {
    /// The JSON `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownApp => "unknown_app",
            Refusal::BadRequest(_) => "invalid_request",
            Refusal::UrlNotAllowed => "url_not_allowed",
            Refusal::RedirectNotAllowed => "redirect_not_allowed",
            Refusal::TooManyRedirects => "too_many_redirects",
            Refusal::AddressNotAllowed => "address_not_allowed",
            Refusal::Unresolvable => "unresolvable_host",
            Refusal::ResponseTooLarge => "response_too_large",
            Refusal::Timeout => "timeout",
            Refusal::Unreachable => "unreachable",
            Refusal::ProtocolOff => "protocol_disabled",
            Refusal::ConsumerUnavailable => "consumer_unavailable",
        }
    }

    /// The JSON `error_description`.
    pub fn description(&self) -> String {
        match self {
            Refusal::UnknownApp => "No front-end app has this id.".to_owned(),
            Refusal::BadRequest(why) => why.clone(),
            Refusal::UrlNotAllowed => {
                "The URL is not under a resource prefix registered for this app.".to_owned()
            }
            Refusal::RedirectNotAllowed => {
                "The resource redirected outside the prefixes registered for this app.".to_owned()
            }
            Refusal::TooManyRedirects => format!("More than {MAX_REDIRECTS} redirects."),
            Refusal::AddressNotAllowed => {
                "The host resolves to a private, loopback, link-local or otherwise special address."
                    .to_owned()
            }
            Refusal::Unresolvable => "The host name does not resolve.".to_owned(),
            Refusal::ResponseTooLarge => "The response is larger than the proxy passes.".to_owned(),
            Refusal::Timeout => "The resource did not answer in time.".to_owned(),
            Refusal::Unreachable => "The resource server could not be reached.".to_owned(),
            Refusal::ProtocolOff => {
                "The protocol this resource is called with is switched off on this server."
                    .to_owned()
            }
            Refusal::ConsumerUnavailable => {
                "The OAuth 1.0 consumer this resource is signed as is no longer registered for \
                 this app."
                    .to_owned()
            }
        }
    }
}

/// The URL as it will be sent and the target it falls under, or why it may not be called.
/// The URL is parsed (dot segments resolved) before it is compared, so what was checked is what
/// is sent; user information, fragments and percent-encoded separators are refused.
pub fn match_target<'a>(app: &'a FrontEnd, text: &str) -> Result<(Url, &'a Target), Refusal> {
    if !plain(text) {
        return Err(Refusal::BadRequest("Give an absolute URL.".to_owned()));
    }
    let url = Url::parse(text).map_err(|_| Refusal::BadRequest("Give an absolute URL.".into()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::UrlNotAllowed);
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(Refusal::BadRequest(
            "The URL must not carry user information or a fragment.".to_owned(),
        ));
    }
    if encoded_separator(url.path()) {
        return Err(Refusal::UrlNotAllowed);
    }
    let target = app
        .targets
        .iter()
        .filter(|it| crate::redirect::under_registered_prefix(&it.prefix, url.as_str()))
        .max_by_key(|it| it.prefix.len())
        .ok_or(Refusal::UrlNotAllowed)?;
    Ok((url, target))
}

/// Request headers a front-end may have forwarded (lowercase). Anything else — `Cookie`,
/// `Authorization`, `Host`, hop-by-hop headers — is refused rather than dropped silently.
pub const REQUEST_HEADERS: [&str; 9] = [
    "accept",
    "accept-language",
    "content-language",
    "content-type",
    "gdata-version",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-unmodified-since",
];

/// Response headers passed back to the front-end (lowercase); every other one is left out.
pub const RESPONSE_HEADERS: [&str; 7] = [
    "cache-control",
    "content-language",
    "content-type",
    "etag",
    "expires",
    "last-modified",
    "retry-after",
];

/// The most headers one proxied request forwards.
pub const MAX_REQUEST_HEADERS: usize = 20;

/// The request headers to forward, names lowercased, or why the request is refused.
pub fn request_headers(given: &[(String, String)]) -> Result<Vec<(String, String)>, Refusal> {
    if given.len() > MAX_REQUEST_HEADERS {
        return Err(Refusal::BadRequest(format!(
            "At most {MAX_REQUEST_HEADERS} headers are forwarded."
        )));
    }
    let mut out = Vec::with_capacity(given.len());
    for (name, value) in given {
        let lower = name.to_ascii_lowercase();
        if !REQUEST_HEADERS.contains(&lower.as_str()) {
            return Err(Refusal::BadRequest(format!(
                "The header {} is not forwarded.",
                name.chars().take(60).collect::<String>()
            )));
        }
        if value.len() > 1024 || value.chars().any(|c| c.is_control() || !c.is_ascii()) {
            return Err(Refusal::BadRequest(format!("The {lower} header's value is not usable.")));
        }
        out.push((lower, value.clone()));
    }
    Ok(out)
}

/// The response headers passed back, names lowercased.
pub fn response_headers(got: &[(String, String)]) -> Vec<(String, String)> {
    got.iter()
        .filter_map(|(name, value)| {
            let lower = name.to_ascii_lowercase();
            RESPONSE_HEADERS.contains(&lower.as_str()).then(|| (lower, value.clone()))
        })
        .collect()
}

/// The methods a front-end may ask for.
pub const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// Which addresses the proxy connects to: public unicast ones, and special ones only when the
/// administrator allowed private addresses or named exactly that address and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressGuard {
    pub allow_private: bool,
    pub allowed: Vec<SocketAddr>,
}

impl AddressGuard {
    pub fn of(policy: &ProxyPolicy) -> AddressGuard {
        AddressGuard {
            allow_private: policy.allow_private_addresses,
            allowed: policy.allowed_addresses.clone(),
        }
    }

    /// Whether the proxy may connect to `addr`.
    pub fn permits(&self, addr: SocketAddr) -> bool {
        !special(addr.ip()) || self.allow_private || self.allowed.contains(&addr)
    }
}

/// Whether an address is anything but public unicast: unspecified, loopback, private, shared
/// (CGNAT), link-local, unique-local, site-local, multicast, broadcast, reserved, documentation
/// and benchmarking ranges; IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64,
/// 6to4) are judged by that address, and Teredo is refused.
pub fn special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0                                   // "this network", unspecified
        || a == 10                           // private
        || a == 127                          // loopback
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)            // link-local
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)    // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)    // documentation
        || (a == 192 && b == 88 && c == 99)  // 6to4 relay anycast
        || (a == 192 && b == 168)            // private
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113)  // documentation
        || a >= 224 // multicast, reserved, broadcast
}

fn special_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        let [h1, h2] = hi.to_be_bytes();
        let [l1, l2] = lo.to_be_bytes();
        special_v4(Ipv4Addr::new(h1, h2, l1, l2))
    };
    if ip.is_unspecified() || ip.is_loopback() {
        return true;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return special_v4(v4);
    }
    match segments {
        // IPv4-compatible (deprecated): ::a.b.c.d
        [0, 0, 0, 0, 0, 0, _, _] => true,
        // NAT64 well-known prefix 64:ff9b::/96 (and the local-use 64:ff9b:1::/48)
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => embedded(hi, lo),
        [0x64, 0xff9b, 1, ..] => true,
        // 6to4: 2002:a.b.c.d::/48
        [0x2002, hi, lo, ..] => embedded(hi, lo),
        // Teredo 2001::/32, documentation 2001:db8::/32, ORCHID and benchmarking 2001:2::/48
        [0x2001, 0, ..] | [0x2001, 0xdb8, ..] | [0x2001, 2, 0, ..] => true,
        [0x2001, 0x10..=0x2f, ..] => true,
        // discard-only 100::/64
        [0x100, 0, 0, 0, ..] => true,
        [first, ..] => {
            (first & 0xfe00) == 0xfc00       // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (first & 0xff00) == 0xff00 // multicast
        }
    }
}

/// One outgoing request, as the proxy decided it.
#[derive(Clone)]
pub struct Outgoing {
    pub method: String,
    pub url: Url,
    /// Lowercase names; the credential's header among them.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credential header stays out of logs.
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Outgoing")
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .field("headers", &names)
            .finish_non_exhaustive()
    }
}

/// What one hop answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub status: u16,
    /// Every header as received (names lowercase); [`response_headers`] filters them.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(it, _)| it == name).map(|(_, value)| value.as_str())
    }
}

/// Why one hop failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchError {
    /// Every address, or one of the addresses, the host resolved to is refused by the guard.
    AddressNotAllowed,
    Unresolvable,
    ResponseTooLarge,
    Timeout,
    Unreachable,
}

impl From<FetchError> for Refusal {
    fn from(err: FetchError) -> Refusal {
        match err {
            FetchError::AddressNotAllowed => Refusal::AddressNotAllowed,
            FetchError::Unresolvable => Refusal::Unresolvable,
            FetchError::ResponseTooLarge => Refusal::ResponseTooLarge,
            FetchError::Timeout => Refusal::Timeout,
            FetchError::Unreachable => Refusal::Unreachable,
        }
    }
}

/// Makes one outgoing HTTP request. An implementation resolves the host itself, refuses the hop
/// unless `guard` permits every address it resolved to, connects only to a checked address,
/// never follows a redirect, sends no cookie, and stops reading past `max_bytes` of body.
#[async_trait::async_trait]
pub trait Fetcher: Send + Sync {
    async fn fetch(
        &self,
        hop: &Outgoing,
        guard: &AddressGuard,
        max_bytes: usize,
    ) -> std::result::Result<Fetched, FetchError>;
}

/// What a front-end asks the proxy for.
#[derive(Debug, Clone)]
pub struct ProxyRequest {
    /// The front-end app's client id.
    pub app: String,
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Where the approval page returns to, if the front-end named it; else its origin's root.
    pub return_to: Option<String>,
    /// The `Origin` the request came from (checked by the web layer against the app's).
    pub origin: String,
    /// Which signed-in account asks (`authuser`).
    pub authuser: Option<String>,
}

/// The proxy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The resource's answer, its headers filtered.
    Resource(Fetched),
    /// No grant yet (or no one signed in, or the grant no longer covers the target): the
    /// approval page's URL, which returns to the front-end.
    Approval {
        url: String,
    },
    Refused(Refusal),
}

/// The approval page's address for `app`, returning to `return_to`.
pub fn approval_url(ctx: &Ctx, app: &str, return_to: &str, authuser: Option<&str>) -> String {
    let encode = |it: &str| {
        percent_encoding::utf8_percent_encode(it, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut url = format!(
        "{}/proxy/approve?app={}&return_to={}",
        ctx.public_url,
        encode(app),
        encode(return_to)
    );
    if let Some(authuser) = authuser {
        url.push_str(&format!("&authuser={}", encode(authuser)));
    }
    url
}

/// Where an approval returns to: `wanted`, or the origin's root, if it lies under one of the
/// app's origins (checked by `redirect::validate_continue`).
pub fn return_to(ctx: &Ctx, app: &FrontEnd, wanted: Option<&str>, origin: &str) -> Option<String> {
    let registered: Vec<String> = app.origins.iter().map(|it| format!("{it}/")).collect();
    let wanted = match wanted {
        Some(it) if !it.is_empty() => it.to_owned(),
        _ => format!("{origin}/"),
    };
    // Only the app's origins: a path on tessera itself is no front-end.
    if !registered.iter().any(|it| crate::redirect::under_registered_prefix(it, &wanted)) {
        return None;
    }
    crate::redirect::validate_continue(&ctx.public_url, &registered, &wanted)
}

/// Answers a proxied request for the signed-in accounts `signed_in`.
pub async fn request(
    ctx: &Ctx,
    fetcher: &dyn Fetcher,
    signed_in: &[SignedIn],
    req: &ProxyRequest,
) -> Result<Answer> {
    let Some((client, app)) = load(ctx, &req.app).await? else {
        return Ok(Answer::Refused(Refusal::UnknownApp));
    };
    let method = req.method.to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Ok(Answer::Refused(Refusal::BadRequest(format!(
            "The method must be one of {}.",
            METHODS.join(", ")
        ))));
    }
    let (mut url, mut target) = match match_target(&app, &req.url) {
        Ok(found) => found,
        Err(refusal) => return Ok(Answer::Refused(refusal)),
    };
    let headers = match request_headers(&req.headers) {
        Ok(headers) => headers,
        Err(refusal) => return Ok(Answer::Refused(refusal)),
    };
    let Some(back) = return_to(ctx, &app, req.return_to.as_deref(), &req.origin) else {
        return Ok(Answer::Refused(Refusal::BadRequest(
            "returnTo must lie under one of the app's origins.".to_owned(),
        )));
    };
    let approval =
        Answer::Approval { url: approval_url(ctx, client.id(), &back, req.authuser.as_deref()) };
    let index = req.authuser.as_deref().map_or(Some(0), |it| it.parse::<usize>().ok());
    let Some(signed) = index.and_then(|it| signed_in.get(it)) else { return Ok(approval) };
    let Some(grant) =
        grants::find_live(ctx, &signed.account.id, client.id(), Protocol::OAuth2).await?
    else {
        return Ok(approval);
    };
    let Some(mut held) = Held::find(ctx, &signed.account.id, client.id(), &grant.id).await? else {
        return Ok(approval);
    };
    let guard = AddressGuard::of(&ctx.policy.proxy);
    let max_bytes = ctx.policy.proxy.max_response_bytes;
    let mut method = method;
    let mut body = req.body.clone();
    for _ in 0..=MAX_REDIRECTS {
        if !held.covers(target) {
            return Ok(approval);
        }
        let credential = match target.protocol {
            TargetProtocol::OAuth2 => held.access_token(ctx, &client).await?,
            TargetProtocol::AuthSub if !credentials::protocol_enabled(ctx, Protocol::AuthSub) => {
                return Ok(Answer::Refused(Refusal::ProtocolOff));
            }
            TargetProtocol::AuthSub => held.authsub_token(ctx).await?,
            TargetProtocol::OAuth1 if !credentials::protocol_enabled(ctx, Protocol::OAuth1) => {
                return Ok(Answer::Refused(Refusal::ProtocolOff));
            }
            TargetProtocol::OAuth1 => {
                let project = ctx.store.projects().get(&client.record.project_id).await?;
                let Some(project) = project else {
                    return Ok(Answer::Refused(Refusal::UnknownApp));
                };
                let request =
                    Signing { method: &method, url: &url, headers: &headers, body: &body };
                match held.oauth1_signature(ctx, &project, target, &request).await? {
                    Ok(signed) => signed,
                    Err(refusal) => return Ok(Answer::Refused(refusal)),
                }
            }
        };
        let Some(credential) = credential else { return Ok(approval) };
        let mut hop_headers = headers.clone();
        hop_headers.push(("authorization".to_owned(), credential));
        let hop = Outgoing { method: method.clone(), url: url.clone(), headers: hop_headers, body };
        let fetched = match fetcher.fetch(&hop, &guard, max_bytes).await {
            Ok(fetched) => fetched,
            Err(err) => return Ok(Answer::Refused(err.into())),
        };
        let location = fetched.header("location").map(str::to_owned);
        let redirect = matches!(fetched.status, 301 | 302 | 303 | 307 | 308);
        let Some(location) = location.filter(|_| redirect) else {
            let headers = response_headers(&fetched.headers);
            let body = if method == "HEAD" { Vec::new() } else { fetched.body };
            return Ok(Answer::Resource(Fetched { status: fetched.status, headers, body }));
        };
        let Ok(next) = url.join(&location) else {
            return Ok(Answer::Refused(Refusal::RedirectNotAllowed));
        };
        (url, target) = match match_target(&app, next.as_str()) {
            Ok(found) => found,
            Err(_) => return Ok(Answer::Refused(Refusal::RedirectNotAllowed)),
        };
        // 307 and 308 repeat the request; the others (as browsers do) continue with a GET.
        body = if matches!(fetched.status, 307 | 308) {
            hop.body
        } else {
            if method != "HEAD" {
                method = "GET".to_owned();
            }
            Vec::new()
        };
    }
    Ok(Answer::Refused(Refusal::TooManyRedirects))
}

/// A front-end approval in progress: the app, where the page returns, the scopes asked for.
#[derive(Debug, Clone)]
pub struct Approval {
    pub client: Client,
    pub app: FrontEnd,
    pub project: ProjectRecord,
    pub return_to: String,
    pub scopes: Vec<ScopeInfo>,
}

/// Checks an approval page's request: a front-end app, and a return address under its origins.
pub async fn prepare_approval(ctx: &Ctx, app_id: &str, return_to_text: &str) -> Result<Approval> {
    let (client, app) = load(ctx, app_id)
        .await?
        .ok_or_else(|| Error::Invalid("No front-end app has this id.".to_owned()))?;
    let back = return_to(ctx, &app, Some(return_to_text), "")
        .ok_or_else(|| Error::Invalid("The return address is not one of the app's.".to_owned()))?;
    let project =
        ctx.store.projects().get(&client.record.project_id).await?.ok_or(Error::NotFound)?;
    let scopes = services::resolve(ctx, &app.scopes().to_vec()).await?;
    Ok(Approval { client, app, project, return_to: back, scopes })
}

/// The approval as the one interaction flow sees it: an OAuth 2.0 grant to the app, consent
/// remembered per project like the authorization endpoint's.
pub fn interaction(approval: &Approval, authuser: Option<String>) -> Request {
    Request {
        protocol: Protocol::OAuth2,
        client_id: approval.client.id().to_owned(),
        applicant: Applicant::Client {
            name: approval.client.record.name.clone(),
            project: approval.project.clone(),
        },
        scopes: approval.scopes.clone(),
        asks: Asks { authuser, ..Asks::default() },
        choosing: Choosing::Fitting,
        memory: Memory::PerProject,
    }
}

/// After the person allowed (now or before): mints the refresh and access tokens the proxy holds
/// for this grant, replacing what it held before, and answers where the browser goes back to.
pub async fn approve(ctx: &Ctx, approved: &Approved, approval: &Approval) -> Result<String> {
    let account_id = &approved.signed.account.id;
    let scopes = approval.app.scopes().joined();
    let subject = Subject {
        account_id: Some(account_id),
        client_id: approval.client.id(),
        grant_id: Some(&approved.grant.id),
    };
    let refresh =
        tokens::refresh_token(ctx, subject, &scopes, Some(approved.signed.session.auth_time))
            .await?;
    let access = tokens::access_token(ctx, &approval.client, subject, &scopes, true).await?;
    let authsub_scopes = Scopes::from_names(
        approval
            .app
            .targets
            .iter()
            .filter(|it| it.protocol == TargetProtocol::AuthSub)
            .flat_map(|it| it.scopes.iter().map(String::as_str)),
    );
    let authsub_token =
        match authsub_scopes.is_empty() || !credentials::protocol_enabled(ctx, Protocol::AuthSub) {
            true => None,
            false => {
                let target = approval.app.origins.first().cloned().unwrap_or_default();
                let issued = crate::authsub::issue_session(
                    ctx,
                    account_id,
                    approval.client.id(),
                    &approved.grant.id,
                    &authsub_scopes.joined(),
                    &target,
                )
                .await?;
                Some(issued)
            }
        };
    let oauth1 = held_oauth1_tokens(ctx, approved, approval).await?;
    let tokens = HeldTokens { refresh_token: refresh, access_token: access, authsub_token, oauth1 };
    Held::store(ctx, account_id, &approval.client, &approved.grant.id, &scopes, &tokens).await?;
    Ok(approval.return_to.clone())
}

/// For an app's `oauth1` targets: one OAuth 1.0 access token of the grant per consumer the
/// targets name, for the scopes of that consumer's targets (`oauth1::issue_held`, under the
/// consumer's per-app cap). Consumers that may no longer be signed as, and every one while OAuth
/// 1.0 is switched off, get none: the proxy refuses their targets.
async fn held_oauth1_tokens(
    ctx: &Ctx,
    approved: &Approved,
    approval: &Approval,
) -> Result<Vec<HeldOAuth1>> {
    let mut out: Vec<HeldOAuth1> = Vec::new();
    if !credentials::protocol_enabled(ctx, Protocol::OAuth1) {
        return Ok(out);
    }
    let targets = || approval.app.targets.iter().filter(|it| it.protocol == TargetProtocol::OAuth1);
    for consumer in targets().filter_map(|it| it.consumer.as_deref()) {
        if out.iter().any(|it| it.consumer == consumer)
            || consumer_problem(ctx, &approval.project, consumer).await?.is_some()
        {
            continue;
        }
        let scopes = Scopes::from_names(
            targets()
                .filter(|it| it.consumer.as_deref() == Some(consumer))
                .flat_map(|it| it.scopes.iter().map(String::as_str)),
        );
        let (token, secret) = crate::oauth1::issue_held(
            ctx,
            consumer,
            &approved.signed.account.id,
            &approved.grant.id,
            &scopes.joined(),
        )
        .await?;
        out.push(HeldOAuth1 { consumer: consumer.to_owned(), token, secret });
    }
    Ok(out)
}

/// The tokens a holding keeps, sealed as one secret.
#[derive(Clone, Serialize, Deserialize)]
struct HeldTokens {
    refresh_token: String,
    access_token: String,
    /// For apps with AuthSub targets: a session token of the same grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authsub_token: Option<String>,
    /// For apps with OAuth 1.0 targets: an access token and its secret per consumer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    oauth1: Vec<HeldOAuth1>,
}

/// An OAuth 1.0 access token of the grant, issued to `consumer`, and its token secret.
#[derive(Clone, Serialize, Deserialize)]
struct HeldOAuth1 {
    consumer: String,
    token: String,
    secret: String,
}

/// One outgoing request as an OAuth 1.0 signature covers it.
struct Signing<'a> {
    method: &'a str,
    url: &'a Url,
    /// The forwarded headers (lowercase names): their `content-type` says whether the body is a
    /// form the signature covers.
    headers: &'a [(String, String)],
    body: &'a [u8],
}

impl Signing<'_> {
    /// The form body's pairs the signature covers: those of an
    /// `application/x-www-form-urlencoded` body, none for any other body.
    fn form(&self) -> Result<Vec<(String, String)>, Refusal> {
        let form = self.headers.iter().any(|(name, value)| {
            name == "content-type"
                && value
                    .split(';')
                    .next()
                    .is_some_and(|it| it.trim().eq_ignore_ascii_case(FORM_CONTENT_TYPE))
        });
        if !form || self.body.is_empty() {
            return Ok(Vec::new());
        }
        let refused = || {
            Refusal::BadRequest("The form body is not application/x-www-form-urlencoded.".into())
        };
        let text = std::str::from_utf8(self.body).map_err(|_| refused())?;
        tessera_proto_oauth1::parse_form(text).map_err(|_| refused())
    }
}

const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// A holding's data column: the sealed tokens and when the access token expires.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HoldingData {
    #[serde(default)]
    pub sealed_secret: String,
    #[serde(default)]
    pub access_expires_at: i64,
}

/// Refresh this long before the access token expires, so it never expires on the way.
const REFRESH_MARGIN_SECS: i64 = 60;

/// A live holding, read through the one validator.
struct Held {
    record: CredentialRecord,
    tokens: HeldTokens,
}

impl Held {
    /// The holding's lookup secret: a keyed digest of account, app and grant, so each has one
    /// row and a copy of the database alone cannot name it.
    fn handle(ctx: &Ctx, account_id: &str, client_id: &str, grant_id: &str) -> String {
        let value = format!("{account_id}\n{client_id}\n{grant_id}");
        ctx.pepper.keyed_digest("proxy-holding", value.as_bytes())
    }

    async fn find(
        ctx: &Ctx,
        account_id: &str,
        client_id: &str,
        grant_id: &str,
    ) -> Result<Option<Held>> {
        let handle = Held::handle(ctx, account_id, client_id, grant_id);
        Held::read(ctx, &handle).await
    }

    async fn read(ctx: &Ctx, handle: &str) -> Result<Option<Held>> {
        let kinds = [CredentialKind::ProxyHolding];
        let Some(valid) = credentials::find_valid(ctx, handle, &kinds).await? else {
            return Ok(None);
        };
        let opened = credentials::open(ctx, &valid.record)?;
        let tokens: HeldTokens = serde_json::from_slice(&opened)
            .map_err(|err| Error::Internal(format!("proxy holding: {err}")))?;
        Ok(Some(Held { record: valid.record, tokens }))
    }

    fn data(ctx: &Ctx, digest: &str, tokens: &HeldTokens, expires_at: i64) -> Result<String> {
        let secret = serde_json::to_vec(tokens).map_err(|err| Error::Internal(err.to_string()))?;
        let sealed = credentials::seal(ctx, CredentialKind::ProxyHolding, digest, &secret)?;
        credentials::encode(&HoldingData { sealed_secret: sealed, access_expires_at: expires_at })
    }

    /// Keeps `tokens` for account, app and grant: a new row, or the live one moved to them (the
    /// tokens it held before are revoked). When another approval of the same grant stores its
    /// tokens at the same moment, one of the two wins and the loser's tokens are revoked: both
    /// were minted just now for the same grant and scopes.
    async fn store(
        ctx: &Ctx,
        account_id: &str,
        client: &Client,
        grant_id: &str,
        scopes: &str,
        tokens: &HeldTokens,
    ) -> Result<()> {
        let handle = Held::handle(ctx, account_id, client.id(), grant_id);
        let digest = tessera_crypto::digest::token_digest(&handle);
        let expires_at = ctx.now() + crate::oauth2::ACCESS_TOKEN_TTL_SECS;
        let data = Held::data(ctx, &digest, tokens, expires_at)?;
        let kind = CredentialKind::ProxyHolding;
        if let Some(old) = Held::read(ctx, &handle).await? {
            let to =
                CredentialTransition { data, account_id: None, grant_id: None, consume: false };
            let moved = ctx
                .store
                .credentials()
                .transition(&digest, kind, &old.record.data, &to, ctx.now())
                .await?;
            let replaced = if moved.is_some() { &old.tokens } else { tokens };
            return Held::revoke_tokens(ctx, replaced).await;
        }
        let mut record = CredentialRecord::new(digest, kind, ctx.now());
        record.account_id = Some(account_id.to_owned());
        record.client_id = Some(client.id().to_owned());
        record.grant_id = Some(grant_id.to_owned());
        record.scopes = scopes.to_owned();
        record.data = data;
        match ctx.store.credentials().insert(&record).await {
            Ok(()) => Ok(()),
            // Another approval stored its tokens first: keep those.
            Err(tessera_store::StoreError::Conflict(_)) => {
                Held::revoke_tokens(ctx, tokens).await?;
                match Held::read(ctx, &handle).await? {
                    Some(_) => Ok(()),
                    None => Err(Error::Conflict("The approval could not be stored.".to_owned())),
                }
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn revoke_tokens(ctx: &Ctx, tokens: &HeldTokens) -> Result<()> {
        let authsub = tokens.authsub_token.iter();
        let oauth1 = tokens.oauth1.iter().map(|it| &it.token);
        let held = [&tokens.refresh_token, &tokens.access_token].into_iter();
        for token in held.chain(authsub).chain(oauth1) {
            let digest = tessera_crypto::digest::token_digest(token);
            ctx.store.credentials().revoke(&digest, ctx.now()).await?;
        }
        Ok(())
    }

    /// Whether the held tokens carry every scope `target` needs.
    fn covers(&self, target: &Target) -> bool {
        let held = Scopes::parse(&self.record.scopes);
        target.scopes.iter().all(|it| held.contains(it))
    }

    /// The `Authorization` value of a live AuthSub session token held for the grant; `None` when
    /// there is none (approved before the app had an AuthSub target) or it no longer works.
    async fn authsub_token(&self, ctx: &Ctx) -> Result<Option<String>> {
        let Some(token) = &self.tokens.authsub_token else { return Ok(None) };
        let kinds = [CredentialKind::AuthsubSession];
        let valid = credentials::find_valid(ctx, token, &kinds).await?;
        Ok(valid.map(|_| authsub_authorization(token)))
    }

    /// The `Authorization: OAuth …` value signing `request` for an `oauth1` target, with a fresh
    /// nonce: HMAC-SHA1 with the consumer's secret and the held access token's secret. `Ok(None)`
    /// when no live token is held for the consumer (approve again); refused when the consumer may
    /// no longer be signed as.
    async fn oauth1_signature(
        &self,
        ctx: &Ctx,
        project: &ProjectRecord,
        target: &Target,
        request: &Signing<'_>,
    ) -> Result<Result<Option<String>, Refusal>> {
        let Some(key) = target.consumer.as_deref() else {
            return Ok(Err(Refusal::ConsumerUnavailable));
        };
        if consumer_problem(ctx, project, key).await?.is_some() {
            return Ok(Err(Refusal::ConsumerUnavailable));
        }
        let Some(consumer) = crate::oauth1::consumer(ctx, key).await? else {
            return Ok(Err(Refusal::ConsumerUnavailable));
        };
        let Some(consumer_secret) = consumer.hmac_secret() else {
            return Ok(Err(Refusal::ConsumerUnavailable));
        };
        let Some(held) = self.tokens.oauth1.iter().find(|it| it.consumer == key) else {
            return Ok(Ok(None));
        };
        let kinds = [CredentialKind::Oauth1AccessToken];
        let Some(valid) = credentials::find_valid(ctx, &held.token, &kinds).await? else {
            return Ok(Ok(None));
        };
        if valid.record.client_id.as_deref() != Some(key) {
            return Ok(Ok(None));
        }
        let form = match request.form() {
            Ok(form) => form,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let signer = OAuth1Signer {
            consumer_key: key,
            consumer_secret,
            token: &held.token,
            token_secret: &held.secret,
        };
        let nonce = tessera_crypto::random::token(ctx.rng.as_ref(), 16);
        let signed = oauth1_authorization(
            &signer,
            request.method,
            request.url.as_str(),
            &form,
            ctx.now(),
            &nonce,
        );
        match signed {
            Some(value) => Ok(Ok(Some(value))),
            None => Ok(Err(Refusal::BadRequest(
                "The URL's query cannot be signed with OAuth 1.0.".to_owned(),
            ))),
        }
    }

    /// The `Authorization` value of a live access token: the held one, or a new one minted with
    /// the held refresh token once it is about to expire. `None` when the refresh token no longer
    /// works.
    async fn access_token(&mut self, ctx: &Ctx, client: &Client) -> Result<Option<String>> {
        let data: HoldingData = credentials::data(&self.record);
        if data.access_expires_at - REFRESH_MARGIN_SECS > ctx.now() {
            return Ok(Some(bearer_authorization(&self.tokens.access_token)));
        }
        let kinds = [CredentialKind::RefreshToken];
        let Some(refresh) =
            credentials::find_valid(ctx, &self.tokens.refresh_token, &kinds).await?
        else {
            return Ok(None);
        };
        let subject = Subject {
            account_id: refresh.record.account_id.as_deref(),
            client_id: client.id(),
            grant_id: refresh.record.grant_id.as_deref(),
        };
        let scopes = refresh.record.scopes.clone();
        let access = tokens::access_token(ctx, client, subject, &scopes, true).await?;
        let tokens = HeldTokens { access_token: access, ..self.tokens.clone() };
        let expires_at = ctx.now() + crate::oauth2::ACCESS_TOKEN_TTL_SECS;
        let to = CredentialTransition {
            data: Held::data(ctx, &self.record.digest, &tokens, expires_at)?,
            account_id: None,
            grant_id: None,
            consume: false,
        };
        let moved = ctx
            .store
            .credentials()
            .transition(
                &self.record.digest,
                CredentialKind::ProxyHolding,
                &self.record.data,
                &to,
                ctx.now(),
            )
            .await?;
        match moved {
            Some(record) => {
                *self = Held { record, tokens };
                Ok(Some(bearer_authorization(&self.tokens.access_token)))
            }
            // Another request refreshed first: the token it minted is as good, and the one
            // minted here simply expires unused.
            None => Ok(Some(bearer_authorization(&tokens.access_token))),
        }
    }
}

#[cfg(test)]
mod tests;
