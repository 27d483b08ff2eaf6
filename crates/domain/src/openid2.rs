//! The OpenID 2.0 provider: associations (DH-SHA1, DH-SHA256, `no-encryption` over https only),
//! `checkid_setup` / `checkid_immediate` through the one interaction flow, signed positive
//! assertions with Attribute Exchange values released by `claims`, stateless mode (private
//! associations checked once through `check_authentication`), and the OpenID side of the
//! OpenID+OAuth hybrid.
//!
//! Associations are `OpenIdAssociation` credential rows: the handle is the row's token (the store
//! keeps its digest) and the MAC key is sealed in the row (`credentials::seal`). Approval is
//! remembered per realm as an `openid2` grant whose client is the realm. A person's claimed
//! identifier is a keyed digest of (account, realm): stable for one site, unlinkable across sites.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tessera_crypto::digest::sha256_hex;
use tessera_crypto::openid::{DhGroup, DhHash, Mac};
use tessera_proto_openid2::{
    self as wire, AssocType, AssociateError, CheckIdRequest, KeyTransport, Message, SessionType,
};
use tessera_store::{AccountRecord, CredentialKind, CredentialRecord};

use crate::claims::{self, Released};
use crate::credentials::{self, OpenIdAssociationData, Protocol, Scopes};
use crate::interaction::{Applicant, Approved, Asks, Choosing, Memory, Request};
use crate::services::{self, ScopeInfo};
use crate::{Ctx, Error, Result};

/// The grant protocol OpenID 2.0 approvals are recorded under.
pub const PROTOCOL: Protocol = Protocol::OpenId2;
/// How long a shared association lives (Google's observed value was about 13 hours; ours).
pub const SHARED_LIFETIME_SECS: i64 = 46_800;
/// How long a private association (stateless mode) waits for its one `check_authentication`.
pub const PRIVATE_LIFETIME_SECS: i64 = 600;

/// Where this provider answers: the main endpoint, or a hosted domain's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The `op_endpoint` of assertions.
    pub op_endpoint: String,
    /// Claimed identifiers are this followed by the opaque id.
    pub id_base: String,
    /// Only accounts of this hosted domain answer.
    pub hd: Option<String>,
}

impl Endpoint {
    /// `/accounts/o8/ud`, identifiers `/accounts/o8/id?id=…`.
    pub fn main(ctx: &Ctx) -> Endpoint {
        Endpoint {
            op_endpoint: format!("{}/accounts/o8/ud", ctx.public_url),
            id_base: format!("{}/accounts/o8/id?id=", ctx.public_url),
            hd: None,
        }
    }

    /// `/a/<domain>/o8/ud?be=o8`, identifiers `/a/<domain>/o8/id?id=…`, for a hosted domain
    /// this server knows.
    pub async fn for_domain(ctx: &Ctx, domain: &str) -> Result<Option<Endpoint>> {
        let domain = domain.to_ascii_lowercase();
        if ctx.store.domains().get(&domain).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(Endpoint {
            op_endpoint: format!("{}/a/{domain}/o8/ud?be=o8", ctx.public_url),
            id_base: format!("{}/a/{domain}/o8/id?id=", ctx.public_url),
            hd: Some(domain),
        }))
    }

    /// The endpoint whose identifiers `claimed_id` is one of.
    pub async fn of_identifier(ctx: &Ctx, claimed_id: &str) -> Result<Option<Endpoint>> {
        let main = Endpoint::main(ctx);
        if claimed_id.starts_with(&main.id_base) {
            return Ok(Some(main));
        }
        let prefix = format!("{}/a/", ctx.public_url);
        let Some((domain, _)) = claimed_id.strip_prefix(&prefix).and_then(|it| it.split_once('/'))
        else {
            return Ok(None);
        };
        let endpoint = Endpoint::for_domain(ctx, domain).await?;
        Ok(endpoint.filter(|it| claimed_id.starts_with(&it.id_base)))
    }

    /// The XRDS of this endpoint's OP identifier.
    pub fn op_xrds(&self) -> String {
        wire::op_identifier_xrds(&self.op_endpoint)
    }

    /// The XRDS of one of this endpoint's claimed identifiers.
    pub fn claimed_id_xrds(&self) -> String {
        wire::claimed_id_xrds(&self.op_endpoint)
    }
}

/// A hosted domain's `site-xrds`, and its `host-meta` line; `None` for a domain we do not host.
pub async fn site_discovery(ctx: &Ctx, domain: &str) -> Result<Option<(String, String)>> {
    let Some(endpoint) = Endpoint::for_domain(ctx, domain).await? else { return Ok(None) };
    let domain = endpoint.hd.clone().unwrap_or_default();
    let template = format!("{}/accounts/o8/user-xrds?uri={{%uri}}", ctx.public_url);
    let site_url = format!(
        "{}/accounts/o8/site-xrds?ns=2&hd={}",
        ctx.public_url,
        percent_encoding::utf8_percent_encode(&domain, percent_encoding::NON_ALPHANUMERIC)
    );
    Ok(Some((
        wire::site_xrds(&domain, &endpoint.op_endpoint, &template),
        wire::host_meta(&site_url),
    )))
}

/// The opaque identifier of `account` at `realm` (a keyed digest: stable, unlinkable across
/// realms, meaningless without the key-encryption key).
pub fn identifier(ctx: &Ctx, account_id: &str, realm: &str) -> String {
    let digest =
        ctx.pepper.keyed_digest("openid2-identifier", format!("{account_id}\n{realm}").as_bytes());
    digest[..40].to_owned()
}

/// A direct answer: Key-Value body, HTTP 200 or 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Direct {
    pub ok: bool,
    pub body: String,
}

fn direct_error(text: &str) -> Direct {
    Direct { ok: false, body: wire::direct_error_body(text, &[]) }
}

/// Answers a direct request (`associate`, `check_authentication`). `https`: the request came
/// over https (only then is `no-encryption` offered).
pub async fn direct(ctx: &Ctx, message: &Message, https: bool) -> Result<Direct> {
    match message.mode() {
        Ok("associate") => associate(ctx, message, https).await,
        Ok("check_authentication") => check_authentication(ctx, message).await,
        Ok(_) => Ok(direct_error("This openid.mode is not a direct request.")),
        Err(err) => Ok(direct_error(&format!("{err}."))),
    }
}

fn mac_of(assoc: AssocType) -> Mac {
    match assoc {
        AssocType::HmacSha1 => Mac::HmacSha1,
        AssocType::HmacSha256 => Mac::HmacSha256,
    }
}

/// The pair we suggest when a request's pair is not offered.
fn unsupported() -> Direct {
    Direct {
        ok: false,
        body: wire::unsupported_body(
            "Unsupported association type",
            AssocType::HmacSha256,
            SessionType::DhSha256,
        ),
    }
}

async fn associate(ctx: &Ctx, message: &Message, https: bool) -> Result<Direct> {
    let request = match wire::parse_associate(message) {
        Ok(request) => request,
        Err(AssociateError::Unsupported) => return Ok(unsupported()),
        Err(AssociateError::Malformed(text)) => return Ok(direct_error(text)),
    };
    if request.session_type == SessionType::NoEncryption && !https {
        return Ok(unsupported());
    }
    let mut mac_key = vec![0u8; request.assoc_type.key_len()];
    ctx.rng.fill(&mut mac_key);
    let transport_answer = match request.session_type {
        SessionType::NoEncryption => None,
        session => {
            let group = match DhGroup::from_btwoc(
                request.dh_modulus.as_deref(),
                request.dh_gen.as_deref(),
            ) {
                Ok(group) => group,
                Err(_) => {
                    return Ok(direct_error(
                        "openid.dh_modulus must be an odd number of 1024 to 4096 bits and openid.dh_gen lie between 1 and the modulus minus 1.",
                    ));
                }
            };
            let hash = if session == SessionType::DhSha1 { DhHash::Sha1 } else { DhHash::Sha256 };
            let public = request.dh_consumer_public.as_deref().unwrap_or_default();
            match group.exchange(ctx.rng.as_ref(), public, hash, &mac_key) {
                Ok(answer) => Some(answer),
                Err(_) => {
                    return Ok(direct_error(
                        "openid.dh_consumer_public must lie between 1 and the modulus minus 1.",
                    ));
                }
            }
        }
    };
    let handle =
        store_association(ctx, request.assoc_type, false, &mac_key, SHARED_LIFETIME_SECS).await?;
    let transport = match &transport_answer {
        None => KeyTransport::Plain { mac_key: &mac_key },
        Some(answer) => KeyTransport::Dh {
            server_public: &answer.server_public,
            enc_mac_key: &answer.enc_mac_key,
        },
    };
    let body = wire::associate_body(
        &handle,
        request.assoc_type,
        request.session_type,
        SHARED_LIFETIME_SECS,
        transport,
    );
    Ok(Direct { ok: true, body })
}

async fn store_association(
    ctx: &Ctx,
    assoc_type: AssocType,
    private: bool,
    mac_key: &[u8],
    lifetime: i64,
) -> Result<String> {
    let now = ctx.now();
    let (handle, digest) = ctx.new_token();
    let kind = CredentialKind::OpenIdAssociation;
    let mut record = CredentialRecord::new(digest.clone(), kind, now);
    record.expires_at = Some(now + lifetime);
    record.data = credentials::encode(&OpenIdAssociationData {
        sealed_secret: credentials::seal(ctx, kind, &digest, mac_key)?,
        assoc_type: assoc_type.as_str().to_owned(),
        private,
    })?;
    ctx.store.credentials().insert(&record).await?;
    Ok(handle)
}

/// A live association.
struct Association {
    handle: String,
    assoc_type: AssocType,
    private: bool,
    key: Vec<u8>,
    expires_at: i64,
}

async fn find_association(ctx: &Ctx, handle: &str) -> Result<Option<Association>> {
    if !wire::valid_handle(handle) {
        return Ok(None);
    }
    let kinds = [CredentialKind::OpenIdAssociation];
    let Some(valid) = credentials::find_valid(ctx, handle, &kinds).await? else {
        return Ok(None);
    };
    let data: OpenIdAssociationData = credentials::data(&valid.record);
    let Some(assoc_type) = AssocType::parse(&data.assoc_type) else { return Ok(None) };
    let key = credentials::open(ctx, &valid.record)?;
    Ok(Some(Association {
        handle: handle.to_owned(),
        assoc_type,
        private: data.private,
        key,
        expires_at: valid.record.expires_at.unwrap_or_else(|| ctx.now()),
    }))
}

/// `check_authentication`: the assertion's signature checked with the private association it
/// names, at most once (a store-backed `insert_once` row per association and response nonce, so
/// a replay is refused whichever node sees it).
async fn check_authentication(ctx: &Ctx, message: &Message) -> Result<Direct> {
    let invalidate = match message.get("invalidate_handle") {
        Some(handle) if find_association(ctx, handle).await?.is_none_or(|it| it.private) => {
            Some(handle.to_owned())
        }
        _ => None,
    };
    let valid = verify_once(ctx, message).await?;
    Ok(Direct { ok: true, body: wire::check_authentication_body(valid, invalidate.as_deref()) })
}

async fn verify_once(ctx: &Ctx, message: &Message) -> Result<bool> {
    let (Some(handle), Some(sig), Some(signed), Some(nonce)) = (
        message.get("assoc_handle"),
        message.get("sig"),
        message.get("signed"),
        message.get("response_nonce"),
    ) else {
        return Ok(false);
    };
    let Some(keys) = wire::signed_keys(signed) else { return Ok(false) };
    if !keys.contains(&"response_nonce") || !keys.contains(&"return_to") {
        return Ok(false);
    }
    let Some(association) = find_association(ctx, handle).await? else { return Ok(false) };
    if !association.private {
        return Ok(false);
    }
    let mut copy = message.clone();
    copy.set("mode", "id_res");
    let Some(contents) = wire::token_contents(&keys, &copy) else { return Ok(false) };
    let Ok(sig) = STANDARD.decode(sig) else { return Ok(false) };
    let mac = mac_of(association.assoc_type);
    if !tessera_crypto::openid::verify(mac, &association.key, contents.as_bytes(), &sig) {
        return Ok(false);
    }
    let digest = sha256_hex(format!("openid2-check\n{}\n{nonce}", association.handle).as_bytes());
    let mut row = CredentialRecord::new(digest, CredentialKind::Nonce, ctx.now());
    row.expires_at = Some(association.expires_at.max(ctx.now()) + 1);
    Ok(ctx.store.credentials().insert_once(&row).await?)
}

/// What the request asked the hybrid extension for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hybrid {
    /// The OAuth consumer key.
    pub consumer: String,
    /// The scopes asked for, resolved.
    pub scopes: Vec<ScopeInfo>,
}

/// A `checkid_*` request that passed every check.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub request: CheckIdRequest,
    pub endpoint: Endpoint,
    /// The realm as the grant's client and the page name it.
    pub realm: String,
    /// `openid`, plus `email` / `profile` for the AX attributes asked, plus the hybrid's scopes.
    pub scopes: Vec<ScopeInfo>,
    /// What the consent page lists, in words.
    pub services: Vec<String>,
    /// A valid hybrid part (an invalid one is answered with `ns.ext2` alone).
    pub hybrid: Option<Hybrid>,
    /// The request carried the hybrid extension.
    pub hybrid_asked: bool,
}

/// Why a `checkid_*` request gets no sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Nothing may be sent back to the relying party: an error page says this.
    Page(String),
    /// An indirect error to a `return_to` that lies under the realm: redirect here.
    Indirect(String),
}

/// The indirect error answering a request refused by the deprecation switch (`legacy::gate`):
/// the relying party reads `openid.error`, which names the migration page `link`, also given as
/// `openid.reference` (OpenID 2.0 §5.2.3).
pub fn deprecated(prepared: &Prepared, link: &str) -> Refused {
    let text = format!("OpenID 2.0 is no longer available for this site; see {link}");
    let fields = [
        ("ns", wire::NS_OPENID2),
        ("mode", "error"),
        ("error", text.as_str()),
        ("reference", link),
    ];
    Refused::Indirect(wire::indirect_url(&prepared.request.return_to, &fields))
}

fn indirect_error(return_to: &str, text: &str) -> Refused {
    let fields = [("ns", wire::NS_OPENID2), ("mode", "error"), ("error", text)];
    Refused::Indirect(wire::indirect_url(return_to, &fields))
}

/// AX type URIs we answer, and the scope that releases each.
fn ax_scope(type_uri: &str) -> Option<&'static str> {
    match type_uri {
        "http://axschema.org/contact/email" | "http://schema.openid.net/contact/email" => {
            Some("email")
        }
        "http://axschema.org/namePerson/first"
        | "http://axschema.org/namePerson/last"
        | "http://axschema.org/namePerson"
        | "http://schema.openid.net/namePerson/first"
        | "http://schema.openid.net/namePerson/last" => Some("profile"),
        _ => None,
    }
}

/// The value of one AX attribute from what the account releases.
fn ax_value(released: &Released, type_uri: &str) -> Option<String> {
    let name = released.name.as_deref().map(str::trim).filter(|it| !it.is_empty());
    match type_uri {
        "http://axschema.org/contact/email" | "http://schema.openid.net/contact/email" => {
            released.email.as_ref().map(|(email, _)| email.clone())
        }
        "http://axschema.org/namePerson" => name.map(str::to_owned),
        "http://axschema.org/namePerson/first" | "http://schema.openid.net/namePerson/first" => {
            name.map(|it| it.split_whitespace().next().unwrap_or(it).to_owned())
        }
        "http://axschema.org/namePerson/last" | "http://schema.openid.net/namePerson/last" => name
            .and_then(|it| it.split_once(char::is_whitespace))
            .map(|(_, last)| last.trim().to_owned())
            .filter(|it| !it.is_empty()),
        _ => None,
    }
}

/// Checks a `checkid_*` request at `endpoint`: an OpenID 2.0 message, `return_to` under the
/// realm, an identifier that is directed identity or one of this endpoint's.
pub async fn prepare(
    ctx: &Ctx,
    endpoint: Endpoint,
    message: &Message,
) -> Result<std::result::Result<Prepared, Refused>> {
    let safe = wire::safe_return_to(message);
    let refuse = |text: &str| match &safe {
        Some(return_to) => indirect_error(return_to, text),
        None => Refused::Page(text.to_owned()),
    };
    match message.mode() {
        Ok("checkid_setup" | "checkid_immediate") => {}
        Ok(_) => return Ok(Err(refuse("This openid.mode is not a browser request."))),
        Err(err) => return Ok(Err(Refused::Page(format!("{err}.")))),
    }
    let request = match wire::parse_checkid(message) {
        Ok(request) => request,
        Err(err) => return Ok(Err(refuse(&format!("{err}.")))),
    };
    if let Some(identity) = &request.identity
        && !request.identifier_select()
        && (request.claimed_id.as_deref() != Some(identity.as_str())
            || !identity.starts_with(&endpoint.id_base))
    {
        return Ok(Err(refuse("This provider does not assert that identifier.")));
    }
    let mut names = vec!["openid".to_owned()];
    let mut services = vec!["Know who you are (an identifier for this site only)".to_owned()];
    for attribute in request.ax.iter().flat_map(|it| &it.attributes) {
        if let Some(scope) = ax_scope(&attribute.type_uri)
            && !names.iter().any(|it| it == scope)
        {
            names.push(scope.to_owned());
            services.push(match scope {
                "email" => "See your email address".to_owned(),
                _ => "See your name".to_owned(),
            });
        }
    }
    let mut hybrid = None;
    if let Some(asked) = &request.hybrid
        && let Some(consumer) = &asked.consumer
        && hybrid_consumer_allowed(ctx, consumer, &request.realm).await?
    {
        let requested: Vec<String> =
            Scopes::parse(&asked.scope).iter().map(str::to_owned).collect();
        // Scopes nobody serves make the hybrid part invalid, not the sign-in.
        if let Ok(scopes) = services::resolve(ctx, &requested).await
            && !scopes.is_empty()
            && oauth1_serves(ctx, &scopes).await?
        {
            for info in &scopes {
                let words = match &info.service {
                    Some(name) => services::get(ctx, name)
                        .await
                        .map(|it| it.display_name)
                        .unwrap_or_else(|_| info.scope.clone()),
                    None => info.description.clone(),
                };
                if !services.contains(&words) {
                    services.push(words);
                }
            }
            hybrid = Some(Hybrid { consumer: consumer.clone(), scopes });
        }
    }
    let mut scopes = services::resolve(ctx, &names).await?;
    if let Some(hybrid) = &hybrid {
        scopes.extend(hybrid.scopes.iter().cloned());
    }
    Ok(Ok(Prepared {
        realm: request.realm.display(),
        hybrid_asked: request.hybrid.is_some(),
        request,
        endpoint,
        scopes,
        services,
        hybrid,
    }))
}

/// The request as the interaction flow sees it: the realm is the client and approval is
/// remembered per realm; the first signed-in account that fits answers (of the endpoint's hosted
/// domain, if it has one); `checkid_immediate` never shows a page.
pub fn interaction(prepared: &Prepared, authuser: Option<String>) -> Request {
    let return_host = url::Url::parse(&prepared.request.return_to)
        .ok()
        .and_then(|it| it.host_str().map(str::to_owned))
        .unwrap_or_default();
    Request {
        protocol: PROTOCOL,
        client_id: prepared.realm.clone(),
        applicant: Applicant::Site {
            name: prepared.realm.clone(),
            registered: false,
            return_host,
            services: prepared.services.clone(),
            lasting: false,
            signed: false,
            realm: Some(prepared.realm.clone()),
        },
        scopes: prepared.scopes.clone(),
        asks: Asks {
            authuser,
            hd: prepared.endpoint.hd.clone(),
            immediate: prepared.request.immediate,
            ui_lang: prepared.request.ui_lang.clone(),
            ..Asks::default()
        },
        choosing: Choosing::Fitting,
        memory: Memory::PerClient,
    }
}

/// A negative answer: `cancel` (the person said no) or `setup_needed` (immediate mode could not
/// answer). No extension fields.
pub fn negative(prepared: &Prepared) -> String {
    let mode = if prepared.request.immediate { "setup_needed" } else { "cancel" };
    wire::indirect_url(&prepared.request.return_to, &[("ns", wire::NS_OPENID2), ("mode", mode)])
}

/// The hybrid's consumer must be a registered OAuth consumer (its key is its domain) whose
/// domain covers the realm's host (the hybrid spec: authorised for `openid.realm`).
async fn hybrid_consumer_allowed(ctx: &Ctx, consumer: &str, realm: &wire::Realm) -> Result<bool> {
    if !credentials::protocol_enabled(ctx, Protocol::OAuth1) {
        return Ok(false);
    }
    let Some(found) = crate::oauth1::consumer(ctx, consumer).await? else { return Ok(false) };
    let host = realm.host();
    Ok(found.registered && (host == found.key || host.ends_with(&format!(".{}", found.key))))
}

/// Every scope belongs to a service OAuth 1.0 may be granted for: one that accepts OAuth 1.0 or
/// AuthSub (the OAuth 1.0a engine's rule for its own request tokens).
async fn oauth1_serves(ctx: &Ctx, scopes: &[ScopeInfo]) -> Result<bool> {
    for info in scopes {
        let Some(name) = &info.service else { return Ok(false) };
        let service = services::get(ctx, name).await?;
        if !services::accepts(&service, Protocol::OAuth1)
            && !services::accepts(&service, Protocol::AuthSub)
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The OAuth 1.0a side of the hybrid: an OAuth 1.0a grant to the consumer for the approved
/// scopes (so "Remove access" names the consumer) and a request token already authorized through
/// it, with an empty secret and no verifier, exchanged once at `OAuthGetAccessToken`.
async fn hybrid_request_token(
    ctx: &Ctx,
    account: &AccountRecord,
    hybrid: &Hybrid,
) -> Result<Option<String>> {
    let scopes: Vec<String> = hybrid.scopes.iter().map(|it| it.scope.clone()).collect();
    let grant =
        crate::grants::grant(ctx, &account.id, &hybrid.consumer, Protocol::OAuth1, &scopes, "")
            .await?;
    let scopes = Scopes::from_names(scopes.iter().map(String::as_str));
    let token = crate::oauth1::authorized_request_token(
        ctx,
        &hybrid.consumer,
        &scopes,
        &account.id,
        &grant.id,
    )
    .await?;
    Ok(Some(token))
}

/// The person allowed (now or earlier; the flow recorded the grant): the signed positive
/// assertion, as the URL to send the browser to. An identifier the RP named that is not this
/// account's gets the negative answer instead.
pub async fn assert(ctx: &Ctx, approved: &Approved, prepared: &Prepared) -> Result<String> {
    let account = &approved.signed.account;
    let request = &prepared.request;
    let claimed =
        format!("{}{}", prepared.endpoint.id_base, identifier(ctx, &account.id, &prepared.realm));
    if !request.identifier_select() && request.identity.as_deref().is_some_and(|it| it != claimed) {
        return Ok(negative(prepared));
    }
    let now = ctx.now();
    let nonce = wire::response_nonce(now, &tessera_crypto::random::token(ctx.rng.as_ref(), 9));
    let (association, invalidate) = match &request.assoc_handle {
        Some(handle) => match find_association(ctx, handle).await? {
            Some(found) if !found.private => (found, None),
            _ => (private_association(ctx).await?, Some(handle.clone())),
        },
        None => (private_association(ctx).await?, None),
    };
    let mut fields: Vec<(String, String)> = vec![
        ("ns".into(), wire::NS_OPENID2.into()),
        ("mode".into(), "id_res".into()),
        ("op_endpoint".into(), prepared.endpoint.op_endpoint.clone()),
    ];
    if request.identity.is_some() {
        fields.push(("claimed_id".into(), claimed.clone()));
        fields.push(("identity".into(), claimed));
    }
    fields.push(("return_to".into(), request.return_to.clone()));
    fields.push(("response_nonce".into(), nonce));
    fields.push(("assoc_handle".into(), association.handle.clone()));
    if let Some(handle) = invalidate {
        fields.push(("invalidate_handle".into(), handle));
    }
    let mut signed: Vec<String> = wire::SIGNED_BASE
        .iter()
        .filter(|key| fields.iter().any(|(k, _)| k == *key))
        .map(|it| (*it).to_owned())
        .collect();
    let mut extensions: Vec<(String, String)> = Vec::new();
    if let Some(ax) = &request.ax {
        let released = claims::release(account, &Scopes::parse(&approved.grant.scopes));
        let values: Vec<(&wire::AxAttribute, String)> = ax
            .attributes
            .iter()
            .filter_map(|it| ax_value(&released, &it.type_uri).map(|value| (it, value)))
            .collect();
        let pairs: Vec<(&wire::AxAttribute, &str)> =
            values.iter().map(|(it, value)| (*it, value.as_str())).collect();
        extensions.extend(wire::ax_fetch_response(&pairs));
    }
    if prepared.hybrid_asked {
        let a = wire::OAUTH_ALIAS;
        extensions.push((format!("ns.{a}"), wire::NS_OAUTH.to_owned()));
        if let Some(hybrid) = &prepared.hybrid
            && let Some(token) = hybrid_request_token(ctx, account, hybrid).await?
        {
            let scope: Vec<&str> = hybrid.scopes.iter().map(|it| it.scope.as_str()).collect();
            extensions.push((format!("{a}.request_token"), token));
            extensions.push((format!("{a}.scope"), scope.join(" ")));
        }
    }
    signed.extend(extensions.iter().map(|(k, _)| k.clone()));
    fields.extend(extensions);
    let message = Message::from_fields(fields.iter().cloned());
    let keys: Vec<&str> = signed.iter().map(String::as_str).collect();
    let contents = wire::token_contents(&keys, &message)
        .ok_or_else(|| Error::Invalid("A value cannot be signed.".to_owned()))?;
    let sig = tessera_crypto::openid::sign(
        mac_of(association.assoc_type),
        &association.key,
        contents.as_bytes(),
    );
    fields.push(("signed".into(), signed.join(",")));
    fields.push(("sig".into(), STANDARD.encode(sig)));
    Ok(wire::indirect_url(&request.return_to, &fields))
}

async fn private_association(ctx: &Ctx) -> Result<Association> {
    let assoc_type = AssocType::HmacSha256;
    let mut key = vec![0u8; assoc_type.key_len()];
    ctx.rng.fill(&mut key);
    let handle = store_association(ctx, assoc_type, true, &key, PRIVATE_LIFETIME_SECS).await?;
    Ok(Association {
        handle,
        assoc_type,
        private: true,
        key,
        expires_at: ctx.now() + PRIVATE_LIFETIME_SECS,
    })
}

#[cfg(test)]
mod tests {
    use tessera_store::AccountState;

    use super::*;

    fn released(name: Option<&str>) -> Released {
        let account = AccountRecord {
            id: "a".into(),
            email: "ann@example.com".into(),
            name: name.unwrap_or_default().into(),
            domain: None,
            password_hash: None,
            state: AccountState::Active,
            is_admin: false,
            totp_secret_enc: None,
            totp_last_step: None,
            created_at: 0,
            updated_at: 0,
        };
        claims::release(&account, &Scopes::parse("openid email profile"))
    }

    #[test]
    fn ax_names_split_the_released_name() {
        let r = released(Some("Ann Marie Lee"));
        assert_eq!(ax_value(&r, "http://axschema.org/namePerson/first").as_deref(), Some("Ann"));
        assert_eq!(
            ax_value(&r, "http://axschema.org/namePerson/last").as_deref(),
            Some("Marie Lee")
        );
        assert_eq!(
            ax_value(&r, "http://axschema.org/contact/email").as_deref(),
            Some("ann@example.com")
        );
        assert_eq!(ax_value(&r, "http://axschema.org/pref/language"), None);
        let single = released(Some("Ann"));
        assert_eq!(ax_value(&single, "http://axschema.org/namePerson/last"), None);
        assert_eq!(ax_value(&released(None), "http://axschema.org/namePerson/first"), None);
    }
}
