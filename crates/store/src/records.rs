//! The rows the store keeps, as plain records. Secrets appear only as digests or encrypted text.

use crate::Timestamp;

/// The life-cycle of an account; later protocols report each state distinctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    Active,
    EmailUnverified,
    Disabled,
    Deleted,
    MustAcceptTerms,
}

impl AccountState {
    pub const ALL: [AccountState; 5] = [
        AccountState::Active,
        AccountState::EmailUnverified,
        AccountState::Disabled,
        AccountState::Deleted,
        AccountState::MustAcceptTerms,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::Active => "active",
            AccountState::EmailUnverified => "email_unverified",
            AccountState::Disabled => "disabled",
            AccountState::Deleted => "deleted",
            AccountState::MustAcceptTerms => "must_accept_terms",
        }
    }

    pub fn parse(s: &str) -> Option<AccountState> {
        AccountState::ALL.into_iter().find(|it| it.as_str() == s)
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: String,
    /// As the person typed it; uniqueness is case-insensitive.
    pub email: String,
    pub name: String,
    /// Hosted domain (`hd`), if the account belongs to one.
    pub domain: Option<String>,
    /// Argon2id PHC string; `None` for accounts that cannot sign in with a password yet.
    pub password_hash: Option<String>,
    pub state: AccountState,
    pub is_admin: bool,
    /// TOTP secret, encrypted with the key-encryption key.
    pub totp_secret_enc: Option<String>,
    pub totp_last_step: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRecord")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("state", &self.state)
            .field("is_admin", &self.is_admin)
            .field("totp", &self.totp_secret_enc.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRecord {
    pub id: String,
    pub name: String,
    pub owner_account_id: String,
    /// Set by an administrator only; unverified apps carry a warning on consent pages.
    pub verified: bool,
    pub created_at: Timestamp,
}

/// What a project's consent screen shows; empty strings are unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectBranding {
    pub project_id: String,
    pub product_name: String,
    pub homepage: String,
    pub support_email: String,
    /// An https URL of the product's logo, or empty.
    pub logo_url: String,
    pub updated_at: Timestamp,
}

/// A registered application. Protocol-specific settings live in `settings` (JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: String,
    pub project_id: String,
    /// `web`, `installed`, `android`, `service_account`, `device`, `oauth1_consumer`, `authsub`.
    pub kind: String,
    pub name: String,
    /// Digest of the client secret, for confidential clients.
    pub secret_digest: Option<String>,
    pub settings: String,
    pub created_at: Timestamp,
}

/// A service that owns scopes: a ClientLogin service name (`cl`, `mail`, …), the URL prefixes it
/// owns, and which legacy protocols may reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    pub name: String,
    pub display_name: String,
    /// Space-separated scope URL prefixes (or short scope names).
    pub scopes: String,
    /// Lifetime of ClientLogin `Auth` tokens for this service.
    pub clientlogin_ttl_secs: i64,
    /// Space-separated legacy protocols it accepts: `authsub clientlogin oauth1`.
    pub protocols: String,
    pub created_at: Timestamp,
    /// Web single sign-on: space-separated URL prefixes a `continue` may start with for this
    /// service (its web base URLs); empty when the service takes no web sign-in.
    pub web_prefixes: String,
    /// Front-channel logout: a URL the sign-out page loads in the browser; empty for none.
    pub logout_url: String,
    /// Back-channel logout: a URL tessera POSTs sign-outs to; empty for none.
    pub backchannel_logout_url: String,
}

/// That account allowed that client those scopes, whatever protocol asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub id: String,
    pub account_id: String,
    pub client_id: String,
    /// Which protocol created it: `oauth2`, `oauth1`, `authsub`, `clientlogin`, …
    pub protocol: String,
    /// Space-separated, sorted, without duplicates.
    pub scopes: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// A domain-wide OAuth 1.0 authorization (two-legged OAuth): the administrator of a hosted domain
/// let a consumer act, within `scopes`, for any account of the domain (`xoauth_requestor_id`).
/// Its subject is the domain, not one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainGrantRecord {
    pub id: String,
    /// The hosted domain, lowercase.
    pub domain: String,
    /// The consumer key (a registered consumer's client id).
    pub client_id: String,
    /// Space-separated, sorted, without duplicates.
    pub scopes: String,
    /// The administrator's account id, or empty when the command line authorized it.
    pub granted_by: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// What a credential is. One table holds them all; the kind says which protocol reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// Browser session cookie.
    Session,
    /// One-time administrator setup link.
    Setup,
    /// CAPTCHA challenge; its `data` holds the answer digest.
    Captcha,
    /// A used CSRF token nonce (replay cache).
    CsrfNonce,
    /// Application-specific password.
    AppPassword,
    /// A 2-step sign-in in progress (password checked, code pending).
    PendingSignIn,
    AuthorizationCode,
    AccessToken,
    RefreshToken,
    DeviceCode,
    Oauth1RequestToken,
    Oauth1AccessToken,
    AuthsubSingleUse,
    AuthsubSession,
    ClientLoginAuth,
    ClientLoginSid,
    ClientLoginLsid,
    /// Web single sign-on: a one-time token that signs a browser in (`TokenAuth`, `MergeSession`).
    Ubertoken,
    /// Web single sign-on: the one-time `auth=` token a service receives after `ServiceLogin`.
    ServiceAuth,
    MasterToken,
    /// Android device sign-in on the web (`EmbeddedSetup`): the one-time `oauth_token` cookie a
    /// device exchanges for a master token (`ACCESS_TOKEN=1`).
    DeviceSetupToken,
    /// A push registration id: one app on one device, and the senders that may reach it.
    PushRegistration,
    /// A project's API key for sending push messages (`Authorization: key=…`).
    PushApiKey,
    /// A push install credential: the device credential of an app without an account, handed
    /// out once by its first registration; revoking it is revoking the device.
    PushInstall,
    /// An OpenID 2.0 association; its MAC key is a sealed secret.
    OpenIdAssociation,
    /// Any other replay-cache entry (signature nonces, JWT `jti`).
    Nonce,
    /// A pushed authorization request (RFC 9126): its parameters, for one use by its client.
    PushedAuthorizationRequest,
    /// The OAuth 2.0 tokens the front-end token proxy holds for one account, one front-end app
    /// and one grant: its refresh and access tokens sealed, never handed to the browser.
    ProxyHolding,
}

impl CredentialKind {
    pub const ALL: [CredentialKind; 28] = [
        CredentialKind::Session,
        CredentialKind::Setup,
        CredentialKind::Captcha,
        CredentialKind::CsrfNonce,
        CredentialKind::AppPassword,
        CredentialKind::PendingSignIn,
        CredentialKind::AuthorizationCode,
        CredentialKind::AccessToken,
        CredentialKind::RefreshToken,
        CredentialKind::DeviceCode,
        CredentialKind::Oauth1RequestToken,
        CredentialKind::Oauth1AccessToken,
        CredentialKind::AuthsubSingleUse,
        CredentialKind::AuthsubSession,
        CredentialKind::ClientLoginAuth,
        CredentialKind::ClientLoginSid,
        CredentialKind::ClientLoginLsid,
        CredentialKind::Ubertoken,
        CredentialKind::ServiceAuth,
        CredentialKind::MasterToken,
        CredentialKind::DeviceSetupToken,
        CredentialKind::PushRegistration,
        CredentialKind::PushApiKey,
        CredentialKind::PushInstall,
        CredentialKind::OpenIdAssociation,
        CredentialKind::Nonce,
        CredentialKind::PushedAuthorizationRequest,
        CredentialKind::ProxyHolding,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Session => "session",
            CredentialKind::Setup => "setup",
            CredentialKind::Captcha => "captcha",
            CredentialKind::CsrfNonce => "csrf_nonce",
            CredentialKind::AppPassword => "app_password",
            CredentialKind::PendingSignIn => "pending_sign_in",
            CredentialKind::AuthorizationCode => "authorization_code",
            CredentialKind::AccessToken => "access_token",
            CredentialKind::RefreshToken => "refresh_token",
            CredentialKind::DeviceCode => "device_code",
            CredentialKind::Oauth1RequestToken => "oauth1_request_token",
            CredentialKind::Oauth1AccessToken => "oauth1_access_token",
            CredentialKind::AuthsubSingleUse => "authsub_single_use",
            CredentialKind::AuthsubSession => "authsub_session",
            CredentialKind::ClientLoginAuth => "clientlogin_auth",
            CredentialKind::ClientLoginSid => "clientlogin_sid",
            CredentialKind::ClientLoginLsid => "clientlogin_lsid",
            CredentialKind::Ubertoken => "ubertoken",
            CredentialKind::ServiceAuth => "service_auth",
            CredentialKind::MasterToken => "master_token",
            CredentialKind::DeviceSetupToken => "device_setup_token",
            CredentialKind::PushRegistration => "push_registration",
            CredentialKind::PushApiKey => "push_api_key",
            CredentialKind::PushInstall => "push_install",
            CredentialKind::OpenIdAssociation => "openid_association",
            CredentialKind::Nonce => "nonce",
            CredentialKind::PushedAuthorizationRequest => "pushed_authorization_request",
            CredentialKind::ProxyHolding => "proxy_holding",
        }
    }

    pub fn parse(s: &str) -> Option<CredentialKind> {
        CredentialKind::ALL.into_iter().find(|it| it.as_str() == s)
    }
}

/// A live credential and the state of what it hangs from, as [`crate::CredentialStore::find_live_token`]
/// reads them together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCredential {
    pub credential: CredentialRecord,
    /// The credential names a grant and that grant is missing or revoked.
    pub grant_revoked: bool,
    /// When the credential's grant was last used, if it names a live grant.
    pub grant_last_used_at: Option<Timestamp>,
    /// The client the credential names exists (false when it names none).
    pub client_exists: bool,
    /// The account the credential names, when it exists.
    pub account: Option<AccountRecord>,
}

/// One issued credential. `digest` is the SHA-256 (keyed where the value is short) of the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    pub digest: String,
    pub kind: CredentialKind,
    pub account_id: Option<String>,
    pub grant_id: Option<String>,
    pub session_id: Option<String>,
    pub client_id: Option<String>,
    /// Space-separated scopes, or empty.
    pub scopes: String,
    /// Kind-specific JSON (never a secret in the clear).
    pub data: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub consumed_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

impl CredentialRecord {
    /// A fresh credential with everything optional left empty.
    pub fn new(digest: String, kind: CredentialKind, now: Timestamp) -> CredentialRecord {
        CredentialRecord {
            digest,
            kind,
            account_id: None,
            grant_id: None,
            session_id: None,
            client_id: None,
            scopes: String::new(),
            data: String::new(),
            created_at: now,
            expires_at: None,
            consumed_at: None,
            revoked_at: None,
            last_used_at: None,
        }
    }
}

/// Redeeming a single-use credential (an authorization code, a rotated refresh token) together with
/// the credentials it buys, as [`crate::CredentialStore::redeem`] writes them in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct Redemption<'a> {
    pub digest: &'a str,
    pub kind: CredentialKind,
    /// The client the credential must have been issued to.
    pub client_id: &'a str,
    /// Written only if the credential was consumed.
    pub issue: &'a [CredentialRecord],
    /// Applies the per-account-per-client cap to the issued credentials of this kind.
    pub cap: Option<(CredentialKind, u32)>,
    /// A grant the redemption itself gives (a migration records the person's permission as it
    /// trades the legacy credential): upserted like [`crate::GrantStore::upsert`] in the same
    /// transaction, only if the credential was consumed. When a live grant of the same account,
    /// client and protocol already exists it is widened instead, and the issued credentials that
    /// name this grant's id are written naming the live grant's.
    pub grant: Option<&'a GrantRecord>,
}

/// What a [`Redemption`] consumed, and the grant it stored if it carried one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    pub consumed: CredentialRecord,
    pub grant: Option<GrantRecord>,
}

/// One signed-in account in one browser (or one device login later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub account_id: String,
    pub created_at: Timestamp,
    /// When the password (and code) were last checked.
    pub auth_time: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// "Stay signed in": the cookie outlives the browser.
    pub persistent: bool,
    /// Whether a second factor was checked in this session.
    pub second_factor: bool,
    pub user_agent: String,
    pub ip: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing.
    Active,
    /// Published until the tokens it signed expire, no longer signing.
    Retired,
    /// Gone from the key set.
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<KeyState> {
        [KeyState::Next, KeyState::Active, KeyState::Retired, KeyState::Revoked]
            .into_iter()
            .find(|it| it.as_str() == s)
    }
}

/// A signing key; the private part is encrypted with the key-encryption key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub kid: String,
    /// `RS256`, `ES256`, `EdDSA`.
    pub alg: String,
    pub state: KeyState,
    pub private_enc: String,
    /// Public key, DER (SubjectPublicKeyInfo or the algorithm's raw form), base64.
    pub public_der: String,
    pub created_at: Timestamp,
    pub activated_at: Option<Timestamp>,
    pub retired_at: Option<Timestamp>,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: String,
    pub at: Timestamp,
    /// Dotted event name, e.g. `signin.failure`, `password.change`, `admin.account.disable`.
    pub event: String,
    pub account_id: Option<String>,
    /// Who acted: `self`, `admin:<id>`, `cli`, `system`.
    pub actor: String,
    pub ip: String,
    /// JSON details; never a secret.
    pub detail: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub account_id: Option<String>,
    pub since: Option<Timestamp>,
    pub limit: u32,
}

/// Where [`crate::CredentialStore::transition`] moves a credential whose state changes in place
/// (a device code: pending, then approved or denied, then redeemed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialTransition {
    /// The kind-specific data of the new state.
    pub data: String,
    /// The account the credential names from now on; `None` keeps the one it names.
    pub account_id: Option<String>,
    /// The grant the credential names from now on; `None` keeps the one it names.
    pub grant_id: Option<String>,
    /// Marks the credential consumed: the state is final and the credential no longer live.
    pub consume: bool,
}

/// What a stored push message is: a message from a sender, or the notice that replaced every
/// stored message of a device when too many waited (`message_type=deleted_messages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushMessageKind {
    Message,
    DeletedMessages,
}

impl PushMessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PushMessageKind::Message => "message",
            PushMessageKind::DeletedMessages => "deleted_messages",
        }
    }

    pub fn parse(s: &str) -> Option<PushMessageKind> {
        [PushMessageKind::Message, PushMessageKind::DeletedMessages]
            .into_iter()
            .find(|it| it.as_str() == s)
    }
}

/// A push message stored for one registration until its device acknowledges it or it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushMessageRecord {
    /// The message id the sender was answered with; the device de-duplicates by it.
    pub id: String,
    /// The digest of the registration id it goes to.
    pub registration: String,
    /// The sender id (project id) it came from.
    pub sender: String,
    pub kind: PushMessageKind,
    /// A newer message with the same key replaces this one while both wait.
    pub collapse_key: Option<String>,
    /// What the device receives (JSON text; never a credential).
    pub payload: String,
    pub delay_while_idle: bool,
    /// For a `DeletedMessages` notice: how many messages it stands for.
    pub total_deleted: u64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// The storage limits per registration that [`crate::PushStore::enqueue`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushLimits {
    /// Distinct collapse keys stored at once; a new key beyond them drops the oldest key's message.
    pub max_collapse_keys: u32,
    /// Messages without a collapse key stored at once; one more discards everything stored and
    /// leaves one `DeletedMessages` notice.
    pub max_non_collapsible: u32,
}

/// What [`crate::PushStore::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored; `replaced` messages with the same collapse key (or the oldest collapse key, over
    /// the limit) were dropped.
    Stored { replaced: u64 },
    /// Too many non-collapsible messages: all stored messages and this one were discarded and one
    /// notice now stands for `total_deleted` of them.
    Overflowed { total_deleted: u64 },
}

/// A registration subscribed to a topic of one sender project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTopicRecord {
    /// The sender id (project id) whose topic it is.
    pub project_id: String,
    /// The topic name (after `/topics/`).
    pub topic: String,
    /// The digest of the registration id.
    pub registration: String,
    /// The registration id sealed under the key-encryption key (a fan-out sends to the id, so
    /// that every recipient goes through the one validator); never the id in the clear.
    pub sealed_id: String,
    pub created_at: Timestamp,
}

/// What [`crate::PushStore::subscribe`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribed {
    Added,
    /// It was subscribed already.
    Already,
    /// The registration is subscribed to as many topics as allowed.
    TooMany,
}

/// One application's deprecation dates for one legacy protocol (unix seconds): from `warn_from`
/// its responses carry deprecation headers, from `refuse_from` it is refused. They override the
/// protocol's dates from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeprecationRecord {
    /// `authsub`, `clientlogin`, `oauth1` or `openid2`.
    pub protocol: String,
    pub client_id: String,
    pub warn_from: Option<Timestamp>,
    pub refuse_from: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// Legacy requests of one application through one protocol on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCount {
    pub protocol: String,
    pub client_id: String,
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub requests: u64,
}
