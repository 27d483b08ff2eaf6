//! Credentials of every kind, and the one validator.
//!
//! Every protocol issues credentials into one table (`tessera_store::CredentialRecord`, one `kind`
//! column) and every presented credential — an OAuth 2.0 `Bearer` token (opaque or JWT), a
//! ClientLogin `GoogleLogin auth=` token, an AuthSub token (plain or secure), later OAuth 1.0a
//! tokens and master tokens — is accepted only through [`find_valid`]: the credential, its grant,
//! its client and its account are read in one statement, and the credential works only while all
//! four do and its protocol is switched on.
//!
//! This module also holds the typed data each kind keeps ([`data`], [`encode`]), sealed secrets
//! for the few kinds whose secret the server must read back ([`seal`], [`open`]), the
//! per-account-per-app cap ([`issue_capped`]), the protocols ([`Protocol`]) and scope sets
//! ([`Scopes`]).

use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_store::{AccountRecord, AccountState, CredentialKind, CredentialRecord};

use crate::{Ctx, Error, Result, grants};

/// The wire protocols that create grants and credentials; the one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    OAuth2,
    OAuth1,
    AuthSub,
    ClientLogin,
    ApiKey,
    OpenId2,
    /// Android device login (`/auth`): master tokens and the device grants they hang from.
    Device,
    /// C2DM and GCM push messaging: registration ids.
    Push,
}

impl Protocol {
    pub const ALL: [Protocol; 8] = [
        Protocol::OAuth2,
        Protocol::OAuth1,
        Protocol::AuthSub,
        Protocol::ClientLogin,
        Protocol::ApiKey,
        Protocol::OpenId2,
        Protocol::Device,
        Protocol::Push,
    ];

    /// The legacy protocols a service may accept (`ServiceRecord::protocols`) that exist today.
    pub const SERVICE_PROTOCOLS: [Protocol; 2] = [Protocol::AuthSub, Protocol::ClientLogin];

    /// The name stored in grants and service records.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::OAuth2 => "oauth2",
            Protocol::OAuth1 => "oauth1",
            Protocol::AuthSub => "authsub",
            Protocol::ClientLogin => "clientlogin",
            Protocol::ApiKey => "api_key",
            Protocol::OpenId2 => "openid2",
            Protocol::Device => "device",
            Protocol::Push => "push",
        }
    }

    pub fn parse(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|it| it.as_str() == name)
    }

    /// The protocol whose wire format presents credentials of `kind`; `None` for kinds that only
    /// the server's own pages use (sessions, CSRF nonces, CAPTCHA challenges, …).
    pub fn of_kind(kind: CredentialKind) -> Option<Protocol> {
        match kind {
            CredentialKind::AuthorizationCode
            | CredentialKind::AccessToken
            | CredentialKind::RefreshToken
            | CredentialKind::DeviceCode
            | CredentialKind::ProxyHolding => Some(Protocol::OAuth2),
            CredentialKind::Oauth1RequestToken | CredentialKind::Oauth1AccessToken => {
                Some(Protocol::OAuth1)
            }
            CredentialKind::AuthsubSingleUse | CredentialKind::AuthsubSession => {
                Some(Protocol::AuthSub)
            }
            CredentialKind::ClientLoginAuth
            | CredentialKind::ClientLoginSid
            | CredentialKind::ClientLoginLsid => Some(Protocol::ClientLogin),
            CredentialKind::OpenIdAssociation => Some(Protocol::OpenId2),
            CredentialKind::MasterToken | CredentialKind::DeviceSetupToken => {
                Some(Protocol::Device)
            }
            CredentialKind::PushApiKey => Some(Protocol::ApiKey),
            CredentialKind::PushRegistration | CredentialKind::PushInstall => Some(Protocol::Push),
            _ => None,
        }
    }
}

/// A set of scopes (URL prefixes or short names): sorted, without duplicates or empty entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// From a space-separated string, as the store and most wire formats carry them.
    pub fn parse(text: &str) -> Scopes {
        Scopes::from_names(text.split(' '))
    }

    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Scopes {
        let mut scopes: Vec<String> =
            names.into_iter().filter(|it| !it.is_empty()).map(str::to_owned).collect();
        scopes.sort_unstable();
        scopes.dedup();
        Scopes(scopes)
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.binary_search_by(|it| it.as_str().cmp(scope)).is_ok()
    }

    /// Whether a granted scope equals `scope_or_url` or is a URL prefix of it.
    pub fn covers(&self, scope_or_url: &str) -> bool {
        self.0.iter().any(|granted| crate::services::covers(granted, scope_or_url))
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.clone()
    }

    /// Space-separated, as stored.
    pub fn joined(&self) -> String {
        self.0.join(" ")
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.joined())
    }
}

/// What a kind keeps besides its row's columns, read back as a typed value: a row with no data or
/// data of another shape reads as the default (every field of these types has one).
pub fn data<T: DeserializeOwned + Default>(record: &CredentialRecord) -> T {
    if record.data.is_empty() {
        return T::default();
    }
    serde_json::from_str(&record.data).unwrap_or_default()
}

/// The data column's text for `value`.
pub fn encode<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|err| Error::Internal(format!("credential data: {err}")))
}

/// An AuthSub token's data.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthSubData {
    /// A single-use token that may be upgraded to a session token (`session=1`).
    #[serde(default)]
    pub session: bool,
    /// Requests with it must be signed (`secure=1`).
    #[serde(default)]
    pub secure: bool,
    /// Scheme, host and port of `next`, shown by `AuthSubTokenInfo` as `Target=`.
    #[serde(default)]
    pub target: String,
}

/// A ClientLogin token's data.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientLoginData {
    /// The service the `Auth` token is good for.
    #[serde(default)]
    pub service: String,
    /// Which login issued it: the SID, LSID and Auth of one ClientLogin answer share it (web
    /// sign-on's `IssueAuthToken` wants a SID and LSID of the same login).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub login: String,
}

/// A pending 2-step sign-in's data.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingSignInData {
    #[serde(default)]
    pub persistent: bool,
}

/// An app password's data.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppPasswordData {
    #[serde(default)]
    pub name: String,
}

/// A push registration's data: which app on which device, and who may send to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PushRegistrationData {
    /// The device id the device registered with (its Android ID or install id).
    #[serde(default)]
    pub device: String,
    /// The app's package name.
    #[serde(default)]
    pub app: String,
    /// Lowercase hex SHA-1 of the app's signing certificate, or empty.
    #[serde(default)]
    pub cert: String,
    /// The sender ids (project ids) allowed to send, sorted.
    #[serde(default)]
    pub senders: Vec<String>,
    /// False once the app unregistered: sends answer `NotRegistered` until it registers again.
    #[serde(default)]
    pub registered: bool,
    /// For a device without an account: the digest of its install credential, which must be
    /// live for the registration to be (a master-token device's registrations carry its grant).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub install: String,
}

/// A push API key's data.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PushApiKeyData {
    /// The project whose sender id the key sends as.
    #[serde(default)]
    pub project_id: String,
    /// What the key's owner called it.
    #[serde(default)]
    pub name: String,
}

/// The data of credentials that carry a secret the server must read back: an OAuth 1.0a token
/// secret (HMAC-SHA1 keys are the consumer secret and the token secret), an OpenID 2.0
/// association's MAC key, or the tokens the front-end proxy holds (`proxy::Holding`). Only these kinds keep a sealed secret; every other kind is stored as a
/// digest alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SealedSecretData {
    /// The secret sealed by [`seal`] under the key-encryption key, bound to the row's digest.
    #[serde(default)]
    pub sealed_secret: String,
}

/// An OpenID 2.0 association's data: its MAC key sealed (read by [`open`] like any
/// [`SealedSecretData`]), its MAC and whether it is private (made by us for a relying party
/// without an association, checked only through `check_authentication`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpenIdAssociationData {
    #[serde(default)]
    pub sealed_secret: String,
    /// `HMAC-SHA1` or `HMAC-SHA256`.
    #[serde(default)]
    pub assoc_type: String,
    #[serde(default)]
    pub private: bool,
}

/// The kinds allowed to keep a sealed secret.
pub fn keeps_sealed_secret(kind: CredentialKind) -> bool {
    matches!(
        kind,
        CredentialKind::Oauth1RequestToken
            | CredentialKind::Oauth1AccessToken
            | CredentialKind::OpenIdAssociation
            | CredentialKind::ProxyHolding
    )
}

fn sealed_aad(kind: CredentialKind, digest: &str) -> Vec<u8> {
    format!("credential-secret\n{}\n{digest}", kind.as_str()).into_bytes()
}

/// Seals `secret` for the credential row `digest` of `kind` (AES-256-GCM under the key-encryption
/// key, the row's kind and digest as associated data, so a sealed value moved to another row does
/// not open). A copy of the database alone opens nothing.
pub fn seal(ctx: &Ctx, kind: CredentialKind, digest: &str, secret: &[u8]) -> Result<String> {
    if !keeps_sealed_secret(kind) {
        return Err(Error::Internal(format!("{} keeps no sealed secret", kind.as_str())));
    }
    ctx.kek
        .seal(ctx.rng.as_ref(), &sealed_aad(kind, digest), secret)
        .map_err(|err| Error::Internal(err.to_string()))
}

/// Opens the sealed secret of a credential row written by [`seal`].
pub fn open(ctx: &Ctx, record: &CredentialRecord) -> Result<Vec<u8>> {
    let sealed: SealedSecretData = data(record);
    if !keeps_sealed_secret(record.kind) || sealed.sealed_secret.is_empty() {
        return Err(Error::NotFound);
    }
    ctx.kek
        .open(&sealed_aad(record.kind, &record.digest), &sealed.sealed_secret)
        .map_err(|err| Error::Internal(err.to_string()))
}

/// Live credentials of one kind one account may hold for one application (Google's rule for
/// refresh tokens, AuthSub session tokens and OAuth 1.0 access tokens).
pub const PER_APP_CAP: u32 = 10;

/// Issues `record` and revokes the account's oldest live credentials of its kind for its client
/// beyond [`PER_APP_CAP`], in insertion order, before it answers (under concurrency, as
/// [`tessera_store::CredentialStore::insert_capped`] says).
pub async fn issue_capped(ctx: &Ctx, record: &CredentialRecord) -> Result<()> {
    ctx.store.credentials().insert_capped(record, PER_APP_CAP).await?;
    Ok(())
}

/// Whether credentials of this account may still be used.
pub fn account_usable(account: &AccountRecord) -> bool {
    matches!(account.state, AccountState::Active | AccountState::EmailUnverified)
}

/// Kinds whose client must be registered and still exist: a deleted client's credentials stop at
/// once, grant or not (client credentials and service accounts have no grant). AuthSub and
/// ClientLogin also serve unregistered applications (named by host or `source`); their
/// credentials always carry a grant, which deleting a registration revokes.
fn needs_registered_client(kind: CredentialKind) -> bool {
    matches!(
        kind,
        CredentialKind::AuthorizationCode
            | CredentialKind::AccessToken
            | CredentialKind::RefreshToken
            | CredentialKind::DeviceCode
            | CredentialKind::Oauth1RequestToken
            | CredentialKind::Oauth1AccessToken
            | CredentialKind::ProxyHolding
    )
}

/// A credential that passed [`find_valid`], with its account when it names one.
#[derive(Debug, Clone)]
pub struct Valid {
    pub record: CredentialRecord,
    pub account: Option<AccountRecord>,
}

impl Valid {
    pub fn scopes(&self) -> Scopes {
        Scopes::parse(&self.record.scopes)
    }
}

/// Whether the deployment serves `protocol` (the `[legacy]` switches): a switched-off protocol's
/// credentials stop working everywhere, not only at its own endpoints.
pub fn protocol_enabled(ctx: &Ctx, protocol: Protocol) -> bool {
    !ctx.policy.disabled_protocols.contains(&protocol)
}

/// The one validator: the live credential whose secret is `secret`, if it is of one of `kinds`,
/// its protocol is switched on, its grant (if it names one) is live, its client exists (for
/// kinds with registered clients) and its account (if it names one) may be used. Credential,
/// grant, client and account are read in one statement, or taken from the answers this process
/// keeps for the current second while nothing that could change them was written
/// ([`crate::answers`]). Using it records the grant's last use (at most every few minutes).
pub async fn find_valid(
    ctx: &Ctx,
    secret: &str,
    kinds: &[CredentialKind],
) -> Result<Option<Valid>> {
    find_valid_as(ctx, secret, kinds, Recurrence::Often).await
}

/// How often a secret is expected to come back. The store's answer for a secret presented
/// [`Recurrence::Often`] (a bearer token, an API key) is kept for the rest of the second; one
/// presented [`Recurrence::Once`] a connection (a push device opening its stream) is read and
/// judged the same way, but not kept: it would not be asked for again, and ten thousand devices
/// connecting would otherwise hold a second's worth of answers nobody uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recurrence {
    Often,
    Once,
}

/// [`find_valid`], saying how often the secret is expected to come back.
pub async fn find_valid_as(
    ctx: &Ctx,
    secret: &str,
    kinds: &[CredentialKind],
    recurrence: Recurrence,
) -> Result<Option<Valid>> {
    let Some(digest) = presented_digest(secret) else { return Ok(None) };
    let keep = recurrence == Recurrence::Often;
    let Some(live) = crate::answers::find_live_token(ctx, &digest, keep).await? else {
        return Ok(None);
    };
    judge(ctx, live, kinds).await
}

/// [`find_valid`] for many secrets at once (a multicast's recipients): one read per 1000, the same
/// rules for each. Answers one entry per secret, in order.
pub async fn find_valid_many(
    ctx: &Ctx,
    secrets: &[String],
    kinds: &[CredentialKind],
) -> Result<Vec<Option<Valid>>> {
    let digests: Vec<Option<String>> = secrets.iter().map(|it| presented_digest(it)).collect();
    let mut wanted: Vec<String> = digests.iter().flatten().cloned().collect();
    wanted.sort();
    wanted.dedup();
    let mut live: Vec<Option<tessera_store::LiveCredential>> = ctx
        .store
        .credentials()
        .find_live_tokens(&wanted, ctx.now())
        .await?
        .into_iter()
        .map(Some)
        .collect();
    // Where each digest's row is, and how many of the secrets name it: a row named once is moved
    // out, not copied (a multicast names a thousand, each with its account).
    let at: std::collections::HashMap<&str, usize> = live
        .iter()
        .enumerate()
        .filter_map(|(i, it)| Some((it.as_ref()?.credential.digest.as_str(), i)))
        .collect();
    let slots: Vec<Option<usize>> =
        digests.iter().map(|it| it.as_deref().and_then(|d| at.get(d).copied())).collect();
    drop(at);
    let mut uses = vec![0usize; live.len()];
    for slot in slots.iter().flatten() {
        uses[*slot] += 1;
    }
    let mut out = Vec::with_capacity(secrets.len());
    for slot in slots {
        let found = slot.and_then(|i| {
            uses[i] -= 1;
            if uses[i] == 0 { live[i].take() } else { live[i].clone() }
        });
        out.push(match found {
            Some(found) => judge(ctx, found, kinds).await?,
            None => None,
        });
    }
    Ok(out)
}

/// The digest a presented secret is looked up by; `None` for one no credential can have (empty,
/// or longer than any the server issues).
fn presented_digest(secret: &str) -> Option<String> {
    (!secret.is_empty() && secret.len() <= 4096)
        .then(|| tessera_crypto::digest::token_digest(secret))
}

/// The one validator's rules for a credential read live from the store.
async fn judge(
    ctx: &Ctx,
    live: tessera_store::LiveCredential,
    kinds: &[CredentialKind],
) -> Result<Option<Valid>> {
    let kind = live.credential.kind;
    if !kinds.contains(&kind) {
        return Ok(None);
    }
    if Protocol::of_kind(kind).is_some_and(|it| !protocol_enabled(ctx, it)) {
        return Ok(None);
    }
    if live.grant_revoked || (needs_registered_client(kind) && !live.client_exists) {
        return Ok(None);
    }
    let account = match (&live.credential.account_id, live.account) {
        (None, _) => None,
        (Some(_), Some(account)) if account_usable(&account) => Some(account),
        (Some(_), _) => return Ok(None),
    };
    if let (Some(grant_id), Some(last_used)) = (&live.credential.grant_id, live.grant_last_used_at)
        && ctx.now() - last_used >= grants::TOUCH_AFTER_SECS
    {
        ctx.store.grants().touch(grant_id, ctx.now()).await?;
    }
    Ok(Some(Valid { record: live.credential, account }))
}

/// Why a two-legged OAuth 1.0 request may not act for its requestor (see
/// [`find_valid_requestor`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestorRefused {
    /// OAuth 1.0 is switched off.
    ProtocolOff,
    /// `xoauth_requestor_id` is not `user@domain`.
    Malformed,
    /// The domain's administrator has not authorized this consumer, or revoked it.
    NotAuthorized,
    /// The consumer is no longer registered.
    ConsumerGone,
    /// No such account, or it is disabled or deleted, or not of that domain.
    Account,
}

/// The one validator's two-legged case: a domain-wide OAuth 1.0 authorization has no credential
/// to present, so what [`find_valid`] checks for a token is checked here for the requestor
/// (`user@domain`) and consumer of a signed request: the protocol is switched on, the domain's
/// authorization of the consumer is live, the consumer is still registered, and the account
/// exists, may be used and belongs to that domain.
pub async fn find_valid_requestor(
    ctx: &Ctx,
    consumer_key: &str,
    requestor: &str,
) -> Result<Result<(tessera_store::DomainGrantRecord, AccountRecord), RequestorRefused>> {
    if !protocol_enabled(ctx, Protocol::OAuth1) {
        return Ok(Err(RequestorRefused::ProtocolOff));
    }
    let Some((local, domain)) = requestor.rsplit_once('@') else {
        return Ok(Err(RequestorRefused::Malformed));
    };
    if local.is_empty() || domain.is_empty() || requestor.len() > 320 {
        return Ok(Err(RequestorRefused::Malformed));
    }
    let domain = domain.to_ascii_lowercase();
    let Some(grant) = ctx.store.grants().find_live_domain(&domain, consumer_key).await? else {
        return Ok(Err(RequestorRefused::NotAuthorized));
    };
    if ctx.store.projects().get_client(consumer_key).await?.is_none() {
        return Ok(Err(RequestorRefused::ConsumerGone));
    }
    let Some(account) = ctx.store.accounts().find_by_email(requestor).await? else {
        return Ok(Err(RequestorRefused::Account));
    };
    let of_domain = account.domain.as_deref().is_some_and(|it| it.eq_ignore_ascii_case(&domain));
    if !account_usable(&account) || !of_domain {
        return Ok(Err(RequestorRefused::Account));
    }
    Ok(Ok((grant, account)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_sorted_and_unique() {
        let scopes = Scopes::parse("profile  email profile https://a.example/feeds/");
        assert_eq!(scopes.joined(), "email https://a.example/feeds/ profile");
        assert!(scopes.contains("email"));
        assert!(!scopes.contains("openid"));
        assert!(scopes.covers("https://a.example/feeds/default"));
        assert!(Scopes::parse("").is_empty());
    }

    #[test]
    fn every_protocol_round_trips_by_name() {
        for protocol in Protocol::ALL {
            assert_eq!(Protocol::parse(protocol.as_str()), Some(protocol));
        }
        assert_eq!(Protocol::parse("oauth3"), None);
    }

    #[test]
    fn typed_data_reads_defaults_from_foreign_shapes() {
        let mut record = CredentialRecord::new("d".into(), CredentialKind::AuthsubSession, 0);
        record.data = r#"{"secure":true,"target":"https://a.example"}"#.to_owned();
        let read: AuthSubData = data(&record);
        assert_eq!(
            read,
            AuthSubData { session: false, secure: true, target: "https://a.example".to_owned() }
        );
        record.data = "not json".to_owned();
        assert_eq!(data::<AuthSubData>(&record), AuthSubData::default());
    }
}
