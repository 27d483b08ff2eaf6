//! AuthSub: registrations (a domain, its allowed `next` prefix and an optional certificate for
//! secure tokens), the access request, single-use and session tokens, the per-app session-token
//! cap, and verification of secure-token signatures with a store-backed nonce cache.
//!
//! Registrations are clients of kind `authsub` whose `client_id` is the registered domain and whose
//! `settings` JSON holds `next_prefix` and `cert_pem`; unregistered applications are named by the
//! host of their `next` URL.

use serde_json::json;
use tessera_crypto::authsub::{CertKey, parse_cert_pem, verify_rsa_sha1};
use tessera_crypto::digest::{sha256_hex, token_digest};
use tessera_proto_authsub::{
    AuthSubRequest, append_token, host_of, parse_signed_data, same_url, under_prefix,
};
use tessera_store::{
    AccountRecord, ClientRecord, CredentialKind, CredentialRecord, ProjectRecord, Redemption,
};

use crate::audit::{self, Actor};
use crate::caller::{CallerError, RequestFacts};
use crate::credentials::{self, AuthSubData};
use crate::interaction::{Applicant, Approved, Asks, Choosing, Memory, Request};
use crate::services::{self, ScopeInfo};
use crate::{Ctx, Error, Result, accounts, grants};

/// The client kind of AuthSub registrations.
pub const CLIENT_KIND: &str = "authsub";
/// The grant protocol AuthSub grants are recorded under.
pub const PROTOCOL: credentials::Protocol = credentials::Protocol::AuthSub;
/// How long a single-use token waits to be used or upgraded (unconfirmed upstream; our choice).
pub const SINGLE_USE_TTL_SECS: i64 = 10 * 60;
/// Live session tokens one account may hold for one application; issuing one more revokes the
/// oldest, in issue order (the one per-app cap, `credentials::issue_capped`).
pub const MAX_SESSION_TOKENS: u32 = credentials::PER_APP_CAP;
/// A signed request's timestamp may be this far from our clock, either way.
pub const SIGNATURE_WINDOW_SECS: i64 = 300;

/// A registered AuthSub application.
#[derive(Debug, Clone)]
pub struct Registration {
    pub domain: String,
    pub name: String,
    pub next_prefix: String,
    pub cert_pem: Option<String>,
    pub created_at: i64,
}

impl Registration {
    fn from_client(client: ClientRecord) -> Option<Registration> {
        if client.kind != CLIENT_KIND {
            return None;
        }
        let settings: serde_json::Value = serde_json::from_str(&client.settings).ok()?;
        Some(Registration {
            domain: client.client_id,
            name: client.name,
            next_prefix: settings["next_prefix"].as_str()?.to_owned(),
            cert_pem: settings["cert_pem"].as_str().map(str::to_owned),
            created_at: client.created_at,
        })
    }

    fn cert(&self) -> Option<CertKey> {
        self.cert_pem.as_deref().and_then(|pem| parse_cert_pem(pem.as_bytes()).ok())
    }
}

/// Registers `domain`. `next_prefix` must be an http(s) URL on that domain (or a subdomain); the
/// optional PEM certificate (RSA, at least 1024 bits) enables `secure=1`. The registration's
/// project belongs to `owner_email`, or to the first administrator.
pub async fn register(
    ctx: &Ctx,
    domain: &str,
    next_prefix: &str,
    cert_pem: Option<&str>,
    owner_email: Option<&str>,
    actor: &Actor,
) -> Result<Registration> {
    let domain = accounts::normalize_domain(domain)?;
    let host = host_of(next_prefix)
        .filter(|_| next_prefix.starts_with("https://") || next_prefix.starts_with("http://"))
        .ok_or_else(|| Error::Invalid("--next-prefix must be an http or https URL.".to_owned()))?;
    if !within(&host, &domain) {
        return Err(Error::Invalid(format!("--next-prefix must be on {domain}.")));
    }
    if let Some(pem) = cert_pem {
        parse_cert_pem(pem.as_bytes())
            .map_err(|err| Error::Invalid(format!("The certificate was refused: {err}.")))?;
    }
    if ctx.store.projects().get_client(&domain).await?.is_some() {
        return Err(Error::Conflict(format!("{domain} is already registered.")));
    }
    let owner = match owner_email {
        Some(email) => accounts::find_by_email(ctx, email)
            .await
            .map_err(|_| Error::Invalid(format!("No account {email}.")))?,
        None => first_admin(ctx).await?,
    };
    let now = ctx.now();
    let project = ProjectRecord {
        id: ctx.new_id(),
        name: format!("AuthSub: {domain}"),
        owner_account_id: owner.id.clone(),
        verified: false,
        created_at: now,
    };
    ctx.store.projects().add(&project).await?;
    let client = ClientRecord {
        client_id: domain.clone(),
        project_id: project.id.clone(),
        kind: CLIENT_KIND.to_owned(),
        name: domain.clone(),
        secret_digest: None,
        settings: json!({ "next_prefix": next_prefix, "cert_pem": cert_pem }).to_string(),
        created_at: now,
    };
    ctx.store.projects().add_client(&client).await?;
    audit::record(
        ctx,
        "authsub.register",
        Some(&owner.id),
        actor,
        "",
        json!({ "domain": domain, "next_prefix": next_prefix, "secure": cert_pem.is_some() }),
    )
    .await?;
    Registration::from_client(client).ok_or_else(|| Error::Internal("registration".into()))
}

/// Removes the registration of `domain` and revokes every grant to it, so every token it holds
/// stops at once.
pub async fn unregister(ctx: &Ctx, domain: &str, actor: &Actor) -> Result<()> {
    registration(ctx, domain).await?.ok_or(Error::NotFound)?;
    for grant in ctx.store.grants().list_live_by_client(domain).await? {
        ctx.store.grants().revoke(&grant.id, ctx.now()).await?;
    }
    ctx.store.projects().delete_client(domain).await?;
    audit::record(ctx, "authsub.unregister", None, actor, "", json!({ "domain": domain })).await
}

pub(crate) async fn first_admin(ctx: &Ctx) -> Result<AccountRecord> {
    let mut offset = 0;
    loop {
        let page = accounts::list(ctx, offset, 100).await?;
        if let Some(admin) = page.iter().find(|it| it.is_admin) {
            return Ok(admin.clone());
        }
        if page.len() < 100 {
            return Err(Error::Invalid(
                "Name an owner with --owner (there is no administrator).".to_owned(),
            ));
        }
        offset += 100;
    }
}

/// `host` is `domain` or one of its subdomains.
fn within(host: &str, domain: &str) -> bool {
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// Every AuthSub registration, sorted by domain.
pub async fn list_registrations(ctx: &Ctx) -> Result<Vec<Registration>> {
    let mut out = Vec::new();
    for project in ctx.store.projects().list().await? {
        for client in ctx.store.projects().list_clients(&project.id).await? {
            out.extend(Registration::from_client(client));
        }
    }
    out.sort_by(|a, b| a.domain.cmp(&b.domain));
    Ok(out)
}

pub async fn registration(ctx: &Ctx, domain: &str) -> Result<Option<Registration>> {
    Ok(ctx.store.projects().get_client(domain).await?.and_then(Registration::from_client))
}

/// The registration covering `host`: the host itself or its closest registered parent domain.
async fn registration_for_host(ctx: &Ctx, host: &str) -> Result<Option<Registration>> {
    let mut candidate = host;
    loop {
        if let Some(found) = registration(ctx, candidate).await? {
            return Ok(Some(found));
        }
        match candidate.split_once('.') {
            Some((_, parent)) if parent.contains('.') => candidate = parent,
            _ => return Ok(None),
        }
    }
}

/// An `AuthSubRequest` that passed every check, ready for the access page.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub request: AuthSubRequest,
    /// The registered domain, or the host of `next` for an unregistered application.
    pub client_id: String,
    pub name: String,
    pub registered: bool,
    pub scopes: Vec<ScopeInfo>,
    /// Display names of the services the scopes belong to.
    pub services: Vec<String>,
}

/// Checks an access request: known scopes whose services accept AuthSub, `next` (normalized, free
/// of dot segments and control characters: the parser saw to that) inside the registered prefix
/// for registered domains, and `secure=1` only for registrations with a
/// certificate.
pub async fn prepare(ctx: &Ctx, request: AuthSubRequest) -> Result<Prepared> {
    let scopes = services::resolve(ctx, &request.scopes).await?;
    let mut service_names = Vec::new();
    for info in &scopes {
        let Some(name) = &info.service else {
            return Err(Error::Invalid(format!("AuthSub cannot grant the scope {}.", info.scope)));
        };
        let service = services::get(ctx, name).await?;
        if !services::accepts(&service, credentials::Protocol::AuthSub) {
            return Err(Error::Invalid(format!(
                "{} does not accept AuthSub.",
                service.display_name
            )));
        }
        if !service_names.contains(&service.display_name) {
            service_names.push(service.display_name);
        }
    }
    let host = host_of(&request.next).ok_or_else(|| Error::Invalid("Bad next URL.".to_owned()))?;
    let registered = registration_for_host(ctx, &host).await?;
    let (client_id, name) = match &registered {
        Some(reg) => {
            if !under_prefix(&request.next, &reg.next_prefix) {
                return Err(Error::Invalid(format!(
                    "{} may only return to addresses under {}.",
                    reg.domain, reg.next_prefix
                )));
            }
            if request.secure && reg.cert().is_none() {
                return Err(Error::Invalid(format!(
                    "{} has no certificate registered, so it cannot ask for secure tokens.",
                    reg.domain
                )));
            }
            (reg.domain.clone(), reg.name.clone())
        }
        None => {
            if request.secure {
                return Err(Error::Invalid(
                    "Only registered applications may ask for secure tokens.".to_owned(),
                ));
            }
            (host.clone(), host)
        }
    };
    Ok(Prepared {
        request,
        client_id,
        name,
        registered: registered.is_some(),
        scopes,
        services: service_names,
    })
}

/// The request as the interaction flow sees it: consent is asked every time, several signed-in
/// accounts without `authuser` go to the chooser, and `hd` (other than `default`) names the hosted
/// domain the account must be in.
pub fn interaction(prepared: &Prepared, authuser: Option<String>) -> Request {
    let request = &prepared.request;
    Request {
        protocol: PROTOCOL,
        client_id: prepared.client_id.clone(),
        applicant: Applicant::Site {
            name: prepared.name.clone(),
            registered: prepared.registered,
            return_host: host_of(&request.next).unwrap_or_default(),
            services: prepared.services.clone(),
            lasting: request.session,
            signed: request.secure,
            realm: None,
        },
        scopes: prepared.scopes.clone(),
        asks: Asks {
            authuser,
            hd: request.hd.clone().filter(|it| it != "default"),
            ui_lang: request.hl.clone(),
            ..Asks::default()
        },
        choosing: Choosing::Named,
        memory: Memory::Never,
    }
}

/// The person allowed access (the flow recorded the grant): issues a single-use token, and returns
/// `next` with `token=` appended.
pub async fn approve(ctx: &Ctx, approved: &Approved, prepared: &Prepared) -> Result<String> {
    let now = ctx.now();
    let (token, digest) = ctx.new_token();
    let mut record = CredentialRecord::new(digest, CredentialKind::AuthsubSingleUse, now);
    record.account_id = Some(approved.signed.account.id.clone());
    record.grant_id = Some(approved.grant.id.clone());
    record.client_id = Some(prepared.client_id.clone());
    let scopes = prepared.scopes.iter().map(|it| it.scope.as_str());
    record.scopes = grants::normalize_scopes(scopes);
    record.expires_at = Some(now + SINGLE_USE_TTL_SECS);
    record.data = credentials::encode(&AuthSubData {
        session: prepared.request.session,
        secure: prepared.request.secure,
        target: tessera_proto_authsub::target_of(&prepared.request.next),
    })?;
    ctx.store.credentials().insert(&record).await?;
    Ok(append_token(&prepared.request.next, &token))
}

/// A plain AuthSub session token for the account's grant `grant_id` to `client_id`, issued under
/// the per-app cap: the token the front-end proxy holds for an AuthSub resource (`proxy`), never
/// handed out. `target` is what `AuthSubTokenInfo` shows as `Target=`.
pub async fn issue_session(
    ctx: &Ctx,
    account_id: &str,
    client_id: &str,
    grant_id: &str,
    scopes: &str,
    target: &str,
) -> Result<String> {
    let (token, digest) = ctx.new_token();
    let mut record = CredentialRecord::new(digest, CredentialKind::AuthsubSession, ctx.now());
    record.account_id = Some(account_id.to_owned());
    record.grant_id = Some(grant_id.to_owned());
    record.client_id = Some(client_id.to_owned());
    record.scopes = scopes.to_owned();
    record.data = credentials::encode(&AuthSubData {
        session: false,
        secure: false,
        target: target.to_owned(),
    })?;
    credentials::issue_capped(ctx, &record).await?;
    Ok(token)
}

/// A live AuthSub token whose signature (for secure tokens) checked out.
#[derive(Debug, Clone)]
pub struct Checked {
    pub record: CredentialRecord,
    /// The token's account, read with it by the one validator.
    pub account: Option<AccountRecord>,
    pub secure: bool,
    pub session_allowed: bool,
    pub target: String,
}

impl Checked {
    pub fn scopes(&self) -> Vec<String> {
        credentials::Scopes::parse(&self.record.scopes).to_vec()
    }
}

/// The `Authorization: AuthSub …` fields.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    pub token: &'a str,
    pub sigalg: Option<&'a str>,
    pub data: Option<&'a str>,
    pub sig: Option<&'a str>,
}

/// Finds a live AuthSub token (single-use or session) without using it up, and for secure tokens
/// verifies the signature: RSA-SHA1 by the registered certificate over `data` exactly as sent,
/// `METHOD` and URL equal to the request's, timestamp within ±300 s, nonce unseen for this token.
/// A bad signature is `BadSignature` (403); an unknown, expired or revoked token is `Invalid`.
pub async fn check(
    ctx: &Ctx,
    presented: Presented<'_>,
    request: &RequestFacts,
) -> Result<Result<Checked, CallerError>> {
    if presented.token.len() > 200 {
        return Ok(Err(CallerError::Invalid));
    }
    let digest = token_digest(presented.token);
    let kinds = [CredentialKind::AuthsubSingleUse, CredentialKind::AuthsubSession];
    let Some(valid) = credentials::find_valid(ctx, presented.token, &kinds).await? else {
        return Ok(Err(CallerError::Invalid));
    };
    let data: AuthSubData = credentials::data(&valid.record);
    let checked = Checked {
        secure: data.secure,
        session_allowed: data.session,
        target: data.target,
        record: valid.record,
        account: valid.account,
    };
    if checked.secure
        && let Err(err) =
            verify_signature(ctx, &checked.record, &digest, presented, request).await?
    {
        return Ok(Err(err));
    }
    Ok(Ok(checked))
}

async fn verify_signature(
    ctx: &Ctx,
    record: &CredentialRecord,
    digest: &str,
    presented: Presented<'_>,
    request: &RequestFacts,
) -> Result<Result<(), CallerError>> {
    let (Some(sigalg), Some(data), Some(sig)) = (presented.sigalg, presented.data, presented.sig)
    else {
        return Ok(Err(CallerError::BadSignature));
    };
    if !sigalg.eq_ignore_ascii_case("rsa-sha1") {
        return Ok(Err(CallerError::BadSignature));
    }
    let client_id = record.client_id.as_deref().unwrap_or_default();
    let Some(key) = registration(ctx, client_id).await?.and_then(|it| it.cert()) else {
        return Ok(Err(CallerError::BadSignature));
    };
    if !verify_rsa_sha1(&key, data.as_bytes(), sig) {
        return Ok(Err(CallerError::BadSignature));
    }
    let Some(signed) = parse_signed_data(data) else {
        return Ok(Err(CallerError::BadSignature));
    };
    let now = ctx.now();
    if signed.method != request.method
        || !same_url(&signed.url, &request.url)
        || (signed.timestamp - now).abs() > SIGNATURE_WINDOW_SECS
    {
        return Ok(Err(CallerError::BadSignature));
    }
    let nonce_digest = sha256_hex(format!("authsub-nonce\n{digest}\n{}", signed.nonce).as_bytes());
    let mut nonce = CredentialRecord::new(nonce_digest, CredentialKind::Nonce, now);
    nonce.expires_at = Some(signed.timestamp + SIGNATURE_WINDOW_SECS + 1);
    if !ctx.store.credentials().insert_once(&nonce).await? {
        return Ok(Err(CallerError::BadSignature));
    }
    Ok(Ok(()))
}

/// Why `AuthSubSessionToken` refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeRefused {
    /// The token itself was not accepted (unknown, used, revoked, or a bad signature).
    Caller(CallerError),
    /// A live token that cannot be upgraded: a session token, or one issued with `session=0`.
    NotUpgradeable,
    /// Its application's AuthSub is past the refuse-from date (`legacy::gate`).
    Retired(crate::legacy::Notice),
}

/// A session token, and whether its application's use of AuthSub is deprecated.
#[derive(Debug)]
pub struct Upgraded {
    pub token: String,
    pub verdict: crate::legacy::Verdict,
}

/// `AuthSubSessionToken`: exchanges a single-use token obtained with `session=1`, once, for a
/// session token. Then at most [`MAX_SESSION_TOKENS`] live session tokens remain for this account
/// and application: the oldest beyond that are revoked.
pub async fn upgrade(
    ctx: &Ctx,
    presented: Presented<'_>,
    request: &RequestFacts,
) -> Result<Result<Upgraded, UpgradeRefused>> {
    let checked = match check(ctx, presented, request).await? {
        Ok(checked) => checked,
        Err(err) => return Ok(Err(UpgradeRefused::Caller(err))),
    };
    if checked.record.kind != CredentialKind::AuthsubSingleUse || !checked.session_allowed {
        return Ok(Err(UpgradeRefused::NotUpgradeable));
    }
    let single = &checked.record;
    let Some(client_id) = single.client_id.as_deref() else {
        return Ok(Err(UpgradeRefused::Caller(CallerError::Invalid)));
    };
    // The deprecation switch, as at `AuthSubRequest`, for the application the token was issued to.
    let verdict =
        crate::legacy::gate(ctx, crate::credentials::Protocol::AuthSub, Some(client_id)).await?;
    if let crate::legacy::Verdict::Refused(notice) = verdict {
        return Ok(Err(UpgradeRefused::Retired(notice)));
    }
    let (token, digest) = ctx.new_token();
    let mut record = CredentialRecord::new(digest, CredentialKind::AuthsubSession, ctx.now());
    record.account_id = single.account_id.clone();
    record.grant_id = single.grant_id.clone();
    record.client_id = single.client_id.clone();
    record.scopes = single.scopes.clone();
    record.data = credentials::encode(&AuthSubData {
        session: false,
        secure: checked.secure,
        target: checked.target.clone(),
    })?;
    // The single-use token is spent and the session token written (with the cap) together.
    let redemption = Redemption {
        digest: &single.digest,
        kind: CredentialKind::AuthsubSingleUse,
        client_id,
        issue: std::slice::from_ref(&record),
        cap: Some((CredentialKind::AuthsubSession, MAX_SESSION_TOKENS)),
        grant: None,
    };
    if ctx.store.credentials().redeem(&redemption, ctx.now()).await?.is_none() {
        return Ok(Err(UpgradeRefused::Caller(CallerError::Invalid)));
    }
    Ok(Ok(Upgraded { token, verdict }))
}

/// `AuthSubRevokeToken`: revokes the presented token (signed, if it is secure).
pub async fn revoke(
    ctx: &Ctx,
    presented: Presented<'_>,
    request: &RequestFacts,
    ip: &str,
) -> Result<Result<(), CallerError>> {
    let checked = match check(ctx, presented, request).await? {
        Ok(checked) => checked,
        Err(err) => return Ok(Err(err)),
    };
    ctx.store.credentials().revoke(&checked.record.digest, ctx.now()).await?;
    audit::record(
        ctx,
        "authsub.revoke_token",
        checked.record.account_id.as_deref(),
        &Actor::System,
        ip,
        json!({ "client": checked.record.client_id }),
    )
    .await?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_are_within_their_domain_only() {
        assert!(within("app.example.com", "app.example.com"));
        assert!(within("www.app.example.com", "app.example.com"));
        assert!(!within("evilapp.example.com", "app.example.com"));
        assert!(!within("app.example.com.evil", "app.example.com"));
    }
}
