//! Android device login (`/auth`): a device signs in once with the person's password (encrypted
//! to our published RSA-1024 key, or an app password for 2-step accounts) and gets a master token
//! bound to its Android ID; with that token it then asks for per-service tokens: ClientLogin
//! `Auth` tokens, OAuth 2.0 access tokens for a registered Android app, cross-client ID tokens and
//! one-time server codes for a back end of the same project.
//!
//! **Devices are grants.** Each master login records (or reuses) one grant per account and Android
//! ID, through [`Protocol::Device`], whose client id names the device. The master token and every
//! credential minted through it (SID/LSID, `Auth` tokens, access tokens, server codes and what
//! those codes buy) carry that grant, so revoking the device (the account page, a password change)
//! kills all of them in one transaction, and [`credentials::find_valid`] refuses each of them once
//! the device grant is gone. Consent per app is remembered separately, as the app's OAuth 2.0 grant
//! (the same memory the browser flow keeps).
//!
//! **Web sign-in** (`EmbeddedSetup`, §1.13 and §2.5 of the reference): a browser page signs the
//! person in through the one interaction flow and sets a one-time `oauth_token` cookie
//! ([`CredentialKind::DeviceSetupToken`], [`SETUP_TOKEN_TTL_SECS`]); the device sends it with
//! `ACCESS_TOKEN=1` and gets the answer of a master login, once.

use base64::Engine as _;
use serde_json::json;
use tessera_crypto::passwd_key::{self, PrivateKeyDer};
use tessera_proto_device::Service;
use tessera_store::{
    AccountRecord, AccountState, CredentialKind, CredentialRecord, KeyRecord, KeyState,
};

use crate::audit::{self, Actor};
use crate::credentials::{self, ClientLoginData, Protocol, Scopes};
use crate::oauth2::clients::{Client, ClientKind};
use crate::oauth2::{ACCESS_TOKEN_TTL_SECS, ID_TOKEN_TTL_SECS, cross_client, tokens};
use crate::password::{self, Checked};
use crate::{Ctx, Error, Result, accounts, captcha, grants, services};

/// The key store's algorithm name for the password-encryption key.
pub const PASSWD_KEY_ALG: &str = "RSA1024-OAEP-SHA1";
/// The master token's prefix, as Google's (clients treat it as opaque).
pub const MASTER_TOKEN_PREFIX: &str = "aas_et/";
/// The web sign-in token's prefix (the `oauth_token` cookie), as Google's.
pub const SETUP_TOKEN_PREFIX: &str = "oauth2_4/";
/// How long a web sign-in token may wait for its device: long enough to type on a phone, short
/// enough that a cookie left behind in a browser is soon worthless.
pub const SETUP_TOKEN_TTL_SECS: i64 = 600;
/// The client id of the grant web sign-in tokens hang from (one per account; not a device).
pub const SETUP_CLIENT_ID: &str = "android-setup";

fn key_aad(kid: &str) -> Vec<u8> {
    format!("device-passwd-key:{kid}").into_bytes()
}

fn new_key_record(ctx: &Ctx) -> Result<KeyRecord> {
    let key = passwd_key::generate().map_err(|err| Error::Internal(err.to_string()))?;
    let public = passwd_key::public_struct(&key).map_err(|err| Error::Internal(err.to_string()))?;
    let kid = tessera_crypto::digest::sha256_hex(&public)[..16].to_owned();
    let now = ctx.now();
    Ok(KeyRecord {
        private_enc: ctx
            .kek
            .seal(ctx.rng.as_ref(), &key_aad(&kid), key.as_bytes())
            .map_err(|err| Error::Internal(err.to_string()))?,
        public_der: base64::engine::general_purpose::STANDARD.encode(&public),
        kid,
        alg: PASSWD_KEY_ALG.to_owned(),
        state: KeyState::Active,
        created_at: now,
        activated_at: Some(now),
        retired_at: None,
    })
}

async fn passwd_keys(ctx: &Ctx) -> Result<Vec<KeyRecord>> {
    let mut keys: Vec<KeyRecord> =
        ctx.store.keys().list().await?.into_iter().filter(|it| it.alg == PASSWD_KEY_ALG).collect();
    // The active key first, then retired keys, most recently retired first.
    keys.sort_by_key(|it| {
        (
            it.state != KeyState::Active,
            std::cmp::Reverse(it.retired_at),
            std::cmp::Reverse(it.activated_at.unwrap_or(it.created_at)),
        )
    });
    Ok(keys)
}

/// Makes sure a password-encryption key exists (first start). Returns true when it made one.
pub async fn ensure_key(ctx: &Ctx) -> Result<bool> {
    if passwd_keys(ctx).await?.iter().any(|it| it.state == KeyState::Active) {
        return Ok(false);
    }
    ctx.store.keys().insert(&new_key_record(ctx)?).await?;
    audit::record(ctx, "device.key_generate", None, &Actor::System, "", json!({})).await?;
    Ok(true)
}

/// Publishes a new key; the previous one is retired but still accepted, so devices that read the
/// old key keep signing in until they fetch the new one. Older keys stop being accepted.
pub async fn rotate_key(ctx: &Ctx, actor: &Actor) -> Result<()> {
    let now = ctx.now();
    for key in passwd_keys(ctx).await?.iter().filter(|it| it.state == KeyState::Active) {
        ctx.store.keys().set_state(&key.kid, KeyState::Retired, now).await?;
    }
    ctx.store.keys().insert(&new_key_record(ctx)?).await?;
    audit::record(ctx, "device.key_rotate", None, actor, "", json!({})).await
}

/// The published key: base64 of the 139-byte struct clients embed (§2.4), the newest key.
pub async fn published_key(ctx: &Ctx) -> Result<String> {
    ensure_key(ctx).await?;
    passwd_keys(ctx)
        .await?
        .into_iter()
        .find(|it| it.state == KeyState::Active)
        .map(|it| it.public_der)
        .ok_or(Error::NotFound)
}

/// The keys a blob may be encrypted to: the newest and the one before it.
async fn accepted_keys(ctx: &Ctx) -> Result<Vec<KeyRecord>> {
    Ok(passwd_keys(ctx).await?.into_iter().take(2).collect())
}

/// Decrypts an `EncryptedPasswd` blob to `(email, password)`; `None` for a blob no accepted key
/// opens.
async fn decrypt_blob(ctx: &Ctx, blob: &[u8]) -> Result<Option<(String, String)>> {
    let Some((fingerprint, ciphertext)) = passwd_key::split_blob(blob) else {
        return Ok(None);
    };
    for record in accepted_keys(ctx).await? {
        let Ok(public) = base64::engine::general_purpose::STANDARD.decode(&record.public_der)
        else {
            continue;
        };
        if passwd_key::fingerprint(&public) != fingerprint {
            continue;
        }
        let der = ctx
            .kek
            .open(&key_aad(&record.kid), &record.private_enc)
            .map_err(|_| Error::Internal("device key does not open".to_owned()))?;
        let key = PrivateKeyDer::from_bytes(der);
        let Ok(plain) = passwd_key::decrypt(&key, ciphertext) else {
            return Ok(None);
        };
        let Some(split) = plain.iter().position(|b| *b == 0) else {
            return Ok(None);
        };
        let (Ok(email), Ok(password)) = (
            String::from_utf8(plain[..split].to_vec()),
            String::from_utf8(plain[split + 1..].to_vec()),
        ) else {
            return Ok(None);
        };
        return Ok(Some((email, password)));
    }
    Ok(None)
}

/// What a master token keeps besides its row.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MasterTokenData {
    #[serde(default)]
    pub android_id: String,
    #[serde(default)]
    pub device_country: String,
    #[serde(default)]
    pub lang: String,
    #[serde(default)]
    pub sdk_version: String,
}

/// The device grant's client id for an Android ID.
pub fn device_client_id(android_id: &str) -> String {
    format!("Android device {android_id}")
}

/// Why a request was refused; `web` writes each as its `Error=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    BadAuthentication,
    /// A 2-step account sent its password: sign in on the web (`EmbeddedSetup`), then exchange
    /// the token it sets (`ACCESS_TOKEN=1`).
    NeedsBrowser {
        url: String,
    },
    CaptchaRequired {
        token: String,
    },
    NotVerified,
    TermsNotAgreed,
    AccountDeleted,
    AccountDisabled,
    ServiceDisabled,
    BadRequest,
    InvalidScope,
    InvalidAudience,
    /// The app (package and certificate) is not a registered Android client.
    Unregistered,
}

/// An answer: the lines after the status, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub lines: Vec<(&'static str, String)>,
}

/// What the web layer passes in.
#[derive(Debug, Clone)]
pub struct Input {
    pub request: tessera_proto_device::Request,
    pub ip: String,
    /// Whether the request came over https (plain `Passwd` is refused otherwise, unless allowed).
    pub secure: bool,
}

/// Handles one `/auth` request.
pub async fn auth(ctx: &Ctx, input: Input) -> Result<std::result::Result<Answer, Refusal>> {
    let request = &input.request;
    let Ok(service) = tessera_proto_device::parse_service(&request.service) else {
        return Ok(Err(Refusal::BadRequest));
    };
    if request.access_token {
        return setup_exchange(ctx, &input, service).await;
    }
    // A master token in `Token`, or (gpsoauth) in `EncryptedPasswd` when that is no blob.
    let blob = request.encrypted_passwd.as_deref().and_then(tessera_proto_device::encrypted_blob);
    let master = request.token.clone().or_else(|| {
        request.encrypted_passwd.clone().filter(|_| blob.is_none() && request.passwd.is_none())
    });
    match master {
        Some(token) if token.starts_with(MASTER_TOKEN_PREFIX) => {
            service_token(ctx, &input, &token, service).await
        }
        Some(_) => Ok(Err(Refusal::BadAuthentication)),
        None => master_login(ctx, &input, blob, service).await,
    }
}

async fn master_login(
    ctx: &Ctx,
    input: &Input,
    blob: Option<Vec<u8>>,
    service: Service,
) -> Result<std::result::Result<Answer, Refusal>> {
    let request = &input.request;
    let ip = input.ip.as_str();
    let Some(email) = request.email.clone() else {
        return Ok(Err(Refusal::BadAuthentication));
    };
    let password = match (&blob, &request.passwd) {
        (Some(blob), _) => match decrypt_blob(ctx, blob).await? {
            Some((inner_email, password)) if inner_email.eq_ignore_ascii_case(email.trim()) => {
                password
            }
            _ => return Ok(Err(Refusal::BadAuthentication)),
        },
        (None, Some(plain)) if input.secure || ctx.policy.device_plain_passwd => plain.clone(),
        _ => return Ok(Err(Refusal::BadAuthentication)),
    };
    let checked = password::check(
        ctx,
        password::Attempt {
            email: &email,
            password: &password,
            captcha: None,
            ip,
            accept: password::Accept::PasswordOrAppPassword,
            fits: |_| true,
            unlockable: true,
            event: "device",
        },
    )
    .await?;
    let account = match checked {
        Checked::Ok { account, .. } => account,
        Checked::CaptchaRequired { .. } => {
            let token = captcha::issue(ctx).await?.token;
            return Ok(Err(Refusal::CaptchaRequired { token }));
        }
        Checked::Throttled | Checked::BadCredentials { second_factor: false } => {
            return Ok(Err(Refusal::BadAuthentication));
        }
        Checked::BadCredentials { second_factor: true } => {
            let url = needs_browser_url(ctx, &email);
            return Ok(Err(Refusal::NeedsBrowser { url }));
        }
        Checked::Refused { account } => {
            return Ok(Err(match account.state {
                AccountState::Deleted => Refusal::AccountDeleted,
                _ => Refusal::AccountDisabled,
            }));
        }
    };
    sign_device_in(ctx, input, &account, service, None).await
}

/// `ACCESS_TOKEN=1`: the `oauth_token` a web sign-in set (§2.5) signs the device in, exactly once:
/// the validator checks its grant and account, the store's atomic consume picks one winner.
async fn setup_exchange(
    ctx: &Ctx,
    input: &Input,
    service: Service,
) -> Result<std::result::Result<Answer, Refusal>> {
    let request = &input.request;
    let Some(token) = request.token.as_deref().filter(|it| it.starts_with(SETUP_TOKEN_PREFIX))
    else {
        return Ok(Err(Refusal::BadAuthentication));
    };
    let Some(valid) =
        credentials::find_valid(ctx, token, &[CredentialKind::DeviceSetupToken]).await?
    else {
        return Ok(Err(Refusal::BadAuthentication));
    };
    let Some(account) = valid.account else {
        return Ok(Err(Refusal::BadAuthentication));
    };
    // microG sends no `Email` and reads it from the answer; gpsoauth sends the one it was given.
    if request.email.as_deref().is_some_and(|it| !it.trim().eq_ignore_ascii_case(&account.email)) {
        return Ok(Err(Refusal::BadAuthentication));
    }
    let consumed = ctx
        .store
        .credentials()
        .consume(&valid.record.digest, CredentialKind::DeviceSetupToken, ctx.now())
        .await?;
    if consumed.is_none() {
        return Ok(Err(Refusal::BadAuthentication));
    }
    sign_device_in(ctx, input, &account, service, valid.record.grant_id.as_deref()).await
}

/// Issues a web sign-in token for the account that just signed in on the web (`EmbeddedSetup`),
/// hanging from the setup grant the interaction flow recorded, so that revoking it (signing out
/// everywhere) kills an unused token.
pub async fn issue_setup_token(ctx: &Ctx, account_id: &str, grant_id: &str) -> Result<String> {
    let now = ctx.now();
    let token = format!("{SETUP_TOKEN_PREFIX}{}", ctx.new_token().0);
    let mut record = CredentialRecord::new(
        tessera_crypto::digest::token_digest(&token),
        CredentialKind::DeviceSetupToken,
        now,
    );
    record.account_id = Some(account_id.to_owned());
    record.grant_id = Some(grant_id.to_owned());
    record.expires_at = Some(now + SETUP_TOKEN_TTL_SECS);
    ctx.store.credentials().insert(&record).await?;
    Ok(token)
}

/// The interaction-flow request of a web sign-in: the person signs in (or picks an account) and
/// must have entered the password within the re-authentication window, since what follows is a
/// token that never expires; nothing is asked beyond that (no scopes, so no consent page).
pub fn setup_request(ctx: &Ctx, authuser: Option<String>) -> crate::interaction::Request {
    use crate::interaction::{Applicant, Asks, Choosing, Memory, Request};
    Request {
        protocol: Protocol::Device,
        client_id: SETUP_CLIENT_ID.to_owned(),
        applicant: Applicant::Site {
            name: "Android device sign-in".to_owned(),
            registered: true,
            return_host: String::new(),
            services: Vec::new(),
            lasting: true,
            signed: false,
            realm: None,
        },
        scopes: Vec::new(),
        asks: Asks { authuser, max_age: Some(ctx.policy.reauth_window_secs), ..Asks::default() },
        choosing: Choosing::Named,
        memory: Memory::PerClient,
    }
}

/// After the person proved who they are (password, app password, or a web sign-in token): the
/// device grant, the master token, SID/LSID and the answer of a master login.
///
/// `setup_grant`: the grant of the web sign-in token spent. Once everything is written it is read
/// again: if it was revoked meanwhile ("sign out everywhere" racing the exchange), the new device
/// is revoked too and the answer is `BadAuthentication`. With [`revoke_all`]'s second pass, which
/// lists the grants again after it revoked the setup grant, no device born of a token issued
/// before the sign-out survives it.
async fn sign_device_in(
    ctx: &Ctx,
    input: &Input,
    account: &AccountRecord,
    service: Service,
    setup_grant: Option<&str>,
) -> Result<std::result::Result<Answer, Refusal>> {
    let request = &input.request;
    let ip = input.ip.as_str();
    match account.state {
        AccountState::EmailUnverified => return Ok(Err(Refusal::NotVerified)),
        AccountState::MustAcceptTerms => return Ok(Err(Refusal::TermsNotAgreed)),
        AccountState::Disabled => return Ok(Err(Refusal::AccountDisabled)),
        AccountState::Deleted => return Ok(Err(Refusal::AccountDeleted)),
        _ => {}
    }
    let account = account.clone();
    let android_id = request.android_id.clone().unwrap_or_default();
    let device =
        grants::grant(ctx, &account.id, &device_client_id(&android_id), Protocol::Device, &[], ip)
            .await?;
    let now = ctx.now();
    let token = format!("{MASTER_TOKEN_PREFIX}{}", ctx.new_token().0);
    let digest = tessera_crypto::digest::token_digest(&token);
    let mut record = CredentialRecord::new(digest, CredentialKind::MasterToken, now);
    record.account_id = Some(account.id.clone());
    record.grant_id = Some(device.id.clone());
    record.data = credentials::encode(&MasterTokenData {
        android_id: android_id.clone(),
        device_country: request.device_country.clone().unwrap_or_default(),
        lang: request.lang.clone().unwrap_or_default(),
        sdk_version: request.sdk_version.clone().unwrap_or_default(),
    })?;
    record.last_used_at = Some(now);
    ctx.store.credentials().insert(&record).await?;

    let session_ttl = ctx.policy.persistent_session_ttl_secs;
    // SID, LSID and Auth of one answer share a login, as ClientLogin's do.
    let login = ctx.new_id();
    let sid = issue_clientlogin(
        ctx,
        &account,
        &device.id,
        CredentialKind::ClientLoginSid,
        "",
        &login,
        session_ttl,
    )
    .await?;
    let lsid = issue_clientlogin(
        ctx,
        &account,
        &device.id,
        CredentialKind::ClientLoginLsid,
        "",
        &login,
        session_ttl,
    )
    .await?;
    let all = services::list(ctx).await?;
    let names: Vec<&str> = all
        .iter()
        .filter(|it| services::accepts(it, Protocol::ClientLogin))
        .map(|it| it.name.as_str())
        .collect();
    let (first, last) = account.name.split_once(' ').unwrap_or((account.name.as_str(), ""));
    let mut lines = vec![
        ("SID", sid),
        ("LSID", lsid),
        ("Token", token),
        ("services", names.join(",")),
        ("Email", account.email.clone()),
        ("GooglePlusUpgrade", "0".to_owned()),
        ("firstName", first.to_owned()),
        ("lastName", last.to_owned()),
        ("accountId", accounts::subject(&account.id)),
    ];
    if let Service::ClientLogin(name) = &service
        && let Some(found) = all.iter().find(|it| it.name == *name)
        && services::accepts(found, Protocol::ClientLogin)
    {
        let auth = issue_clientlogin(
            ctx,
            &account,
            &device.id,
            CredentialKind::ClientLoginAuth,
            &found.name,
            &login,
            found.clientlogin_ttl_secs,
        )
        .await?;
        lines.push(("Auth", auth));
    }
    if let Some(setup_grant) = setup_grant {
        let live =
            ctx.store.grants().get(setup_grant).await?.is_some_and(|it| it.revoked_at.is_none());
        if !live {
            ctx.store.grants().revoke(&device.id, ctx.now()).await?;
            return Ok(Err(Refusal::BadAuthentication));
        }
    }
    metrics::counter!("tessera_device_login_total").increment(1);
    let via = if setup_grant.is_some() { "web" } else { "password" };
    audit::record(
        ctx,
        "device.login",
        Some(&account.id),
        &Actor::Account,
        ip,
        json!({ "device": android_id, "grant": device.id, "via": via }),
    )
    .await?;
    Ok(Ok(Answer { lines }))
}

/// Where a 2-step account signs its device in: the web sign-in page, whose token the device then
/// exchanges (`ACCESS_TOKEN=1`), as clients do after `NeedsBrowser`.
fn needs_browser_url(ctx: &Ctx, email: &str) -> String {
    let enc = |it: &str| {
        percent_encoding::utf8_percent_encode(it, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!("{}/EmbeddedSetup?Email={}", ctx.public_url, enc(email))
}

async fn issue_clientlogin(
    ctx: &Ctx,
    account: &AccountRecord,
    device_grant: &str,
    kind: CredentialKind,
    service: &str,
    login: &str,
    ttl: i64,
) -> Result<String> {
    let now = ctx.now();
    let (token, digest) = ctx.new_token();
    let mut record = CredentialRecord::new(digest, kind, now);
    record.account_id = Some(account.id.clone());
    record.grant_id = Some(device_grant.to_owned());
    record.client_id = Some("android".to_owned());
    record.data = credentials::encode(&ClientLoginData {
        service: service.to_owned(),
        login: login.to_owned(),
    })?;
    record.expires_at = Some(now + ttl);
    if !service.is_empty() {
        let found = services::get(ctx, service).await?;
        record.scopes = Scopes::parse(&found.scopes).joined();
    }
    ctx.store.credentials().insert(&record).await?;
    Ok(token)
}

/// The registered Android client with this package and signing-certificate SHA-1.
async fn android_client(ctx: &Ctx, package: &str, sig: &str) -> Result<Option<Client>> {
    let normal = |it: &str| it.replace(':', "").to_ascii_lowercase();
    let wanted = normal(sig);
    for project in ctx.store.projects().list().await? {
        for record in ctx.store.projects().list_clients(&project.id).await? {
            let Some(client) = Client::from_record(record) else { continue };
            if client.kind == ClientKind::Android
                && client.settings.android_package.as_deref() == Some(package)
                && client.settings.android_cert_sha1.as_deref().map(normal).as_deref()
                    == Some(wanted.as_str())
            {
                return Ok(Some(client));
            }
        }
    }
    Ok(None)
}

async fn service_token(
    ctx: &Ctx,
    input: &Input,
    token: &str,
    service: Service,
) -> Result<std::result::Result<Answer, Refusal>> {
    let request = &input.request;
    let ip = input.ip.as_str();
    let Some(valid) = credentials::find_valid(ctx, token, &[CredentialKind::MasterToken]).await?
    else {
        return Ok(Err(Refusal::BadAuthentication));
    };
    let (Some(account), Some(device_grant)) =
        (valid.account.clone(), valid.record.grant_id.clone())
    else {
        return Ok(Err(Refusal::BadAuthentication));
    };
    let bound: MasterTokenData = credentials::data(&valid.record);
    if request.android_id.as_deref().is_some_and(|it| it != bound.android_id) {
        return Ok(Err(Refusal::BadAuthentication));
    }
    if request.email.as_deref().is_some_and(|it| !it.trim().eq_ignore_ascii_case(&account.email)) {
        return Ok(Err(Refusal::BadAuthentication));
    }
    // The device's "last use" is its grant's, which the validator above keeps (at most one write
    // per [`grants::TOUCH_AFTER_SECS`]); nothing more is written per request.
    let now = ctx.now();
    match service {
        Service::ClientLogin(name) => {
            let found = match services::get(ctx, &name).await {
                Ok(found) => found,
                Err(Error::NotFound) => return Ok(Err(Refusal::ServiceDisabled)),
                Err(err) => return Err(err),
            };
            if !services::accepts(&found, Protocol::ClientLogin)
                || !credentials::protocol_enabled(ctx, Protocol::ClientLogin)
            {
                return Ok(Err(Refusal::ServiceDisabled));
            }
            let auth = issue_clientlogin(
                ctx,
                &account,
                &device_grant,
                CredentialKind::ClientLoginAuth,
                &found.name,
                &ctx.new_id(),
                found.clientlogin_ttl_secs,
            )
            .await?;
            Ok(Ok(Answer {
                lines: vec![
                    ("issueAdvice", "auto".to_owned()),
                    ("Expiry", (now + found.clientlogin_ttl_secs).to_string()),
                    ("Auth", auth),
                ],
            }))
        }
        Service::OAuth2(scopes) => {
            let Some(client) = app_client(ctx, request).await? else {
                return Ok(Err(Refusal::Unregistered));
            };
            if services::resolve(ctx, &scopes).await.is_err() {
                return Ok(Err(Refusal::InvalidScope));
            }
            if !consented(ctx, &account, client.id(), &scopes, request.has_permission, ip).await? {
                return Ok(Ok(consent_answer(&client)));
            }
            let granted = Scopes::from_names(scopes.iter().map(String::as_str)).joined();
            let subject = tokens::Subject {
                account_id: Some(&account.id),
                client_id: client.id(),
                grant_id: Some(&device_grant),
            };
            let auth = tokens::access_token(ctx, &client, subject, &granted, false).await?;
            audit_token(ctx, &account, ip, "oauth2", client.id()).await?;
            Ok(Ok(Answer {
                lines: vec![
                    ("issueAdvice", "auto".to_owned()),
                    ("Expiry", (now + ACCESS_TOKEN_TTL_SECS).to_string()),
                    ("ExpiresInDurationSec", ACCESS_TOKEN_TTL_SECS.to_string()),
                    ("storeConsentRemotely", "1".to_owned()),
                    ("grantedScopes", granted),
                    ("Auth", auth),
                ],
            }))
        }
        Service::Audience(audience) => {
            let Some(client) = app_client(ctx, request).await? else {
                return Ok(Err(Refusal::Unregistered));
            };
            let audience = match cross_client::audience(ctx, &client, &audience).await? {
                Ok(audience) => audience,
                Err(cross_client::Refused::UnknownAudience) => {
                    return Ok(Err(Refusal::Unregistered));
                }
                Err(cross_client::Refused::OtherProject) => {
                    return Ok(Err(Refusal::InvalidAudience));
                }
            };
            let mut scopes = vec!["openid".to_owned(), "email".to_owned()];
            if request.include_profile {
                scopes.push("profile".to_owned());
            }
            let auth = tokens::id_token(
                ctx,
                &tokens::IdTokenClaims {
                    account: &account,
                    audience: audience.id(),
                    authorized_party: client.id(),
                    scopes: &scopes,
                    nonce: None,
                    auth_time: None,
                    access_token: None,
                    code: None,
                },
            )
            .await?;
            audit_token(ctx, &account, ip, "id_token", audience.id()).await?;
            Ok(Ok(Answer {
                lines: vec![
                    ("issueAdvice", "auto".to_owned()),
                    ("Expiry", (now + ID_TOKEN_TTL_SECS).to_string()),
                    ("Auth", auth),
                ],
            }))
        }
        Service::ServerCode { client_id, scopes } => {
            let Some(client) = app_client(ctx, request).await? else {
                return Ok(Err(Refusal::Unregistered));
            };
            let backend = match cross_client::audience(ctx, &client, &client_id).await? {
                Ok(backend) => backend,
                Err(cross_client::Refused::UnknownAudience) => {
                    return Ok(Err(Refusal::Unregistered));
                }
                Err(cross_client::Refused::OtherProject) => {
                    return Ok(Err(Refusal::InvalidAudience));
                }
            };
            if services::resolve(ctx, &scopes).await.is_err() {
                return Ok(Err(Refusal::InvalidScope));
            }
            if !consented(ctx, &account, backend.id(), &scopes, request.has_permission, ip).await? {
                return Ok(Ok(consent_answer(&client)));
            }
            let granted = Scopes::from_names(scopes.iter().map(String::as_str)).joined();
            let subject = tokens::Subject {
                account_id: Some(&account.id),
                client_id: backend.id(),
                grant_id: Some(&device_grant),
            };
            let remembered = tokens::Remembered {
                redirect_uri: Some(String::new()),
                redirect_sent: false,
                offline: true,
                auth_time: Some(valid.record.created_at),
                ..tokens::Remembered::default()
            };
            let code = tokens::code(ctx, subject, &granted, &remembered).await?;
            audit_token(ctx, &account, ip, "server_code", backend.id()).await?;
            Ok(Ok(Answer {
                lines: vec![
                    ("issueAdvice", "auto".to_owned()),
                    ("Expiry", (now + crate::oauth2::CODE_TTL_SECS).to_string()),
                    ("grantedScopes", granted),
                    ("Auth", code),
                ],
            }))
        }
        Service::WebLogin(args) => {
            let ubertoken =
                crate::sso::issue_ubertoken(ctx, &account.id, Some(&device_grant), WEBLOGIN_SOURCE)
                    .await?;
            let url = weblogin_url(ctx, &ubertoken, &args);
            audit_token(ctx, &account, ip, "weblogin", WEBLOGIN_SOURCE).await?;
            Ok(Ok(Answer { lines: vec![("issueAdvice", "auto".to_owned()), ("Auth", url)] }))
        }
    }
}

/// The `source` of ubertokens minted for `weblogin:` URLs.
pub const WEBLOGIN_SOURCE: &str = "AndroidWeblogin";

/// `<public>/accounts/MergeSession?uberauth=…&source=AndroidWeblogin&<args>`: loaded in a browser,
/// it signs the account in and goes on to `continue` (microG's `url=` names the page instead;
/// without either, the account page). `MergeSession` validates `continue` as always.
fn weblogin_url(ctx: &Ctx, ubertoken: &str, args: &str) -> String {
    let enc = |it: &str| {
        percent_encoding::utf8_percent_encode(it, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut extra: Vec<String> = Vec::new();
    let mut has_continue = false;
    for pair in args.split('&').filter(|it| !it.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "continue" => {
                has_continue = true;
                extra.push(pair.to_owned());
            }
            "service" => extra.push(pair.to_owned()),
            "url" if !value.is_empty() => {
                let decoded = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
                has_continue = true;
                extra.push(format!("continue={}", enc(&decoded)));
            }
            _ => {}
        }
    }
    if !has_continue {
        extra.push(format!("continue={}", enc(&format!("{}/account", ctx.public_url))));
    }
    format!(
        "{}/accounts/MergeSession?uberauth={}&source={WEBLOGIN_SOURCE}&{}",
        ctx.public_url,
        enc(ubertoken),
        extra.join("&")
    )
}

async fn app_client(ctx: &Ctx, request: &tessera_proto_device::Request) -> Result<Option<Client>> {
    let (Some(app), Some(sig)) = (request.app.as_deref(), request.client_sig.as_deref()) else {
        return Ok(None);
    };
    android_client(ctx, app, sig).await
}

/// Whether the account allowed these scopes to this client's project: remembered from an earlier
/// grant, or given now on the device (`has_permission=1`), which is then recorded.
async fn consented(
    ctx: &Ctx,
    account: &AccountRecord,
    client_id: &str,
    scopes: &[String],
    has_permission: bool,
    ip: &str,
) -> Result<bool> {
    if let Some(live) = grants::find_live(ctx, &account.id, client_id, Protocol::OAuth2).await?
        && scopes.iter().all(|it| Scopes::parse(&live.scopes).contains(it))
    {
        return Ok(true);
    }
    if !has_permission {
        return Ok(false);
    }
    grants::grant(ctx, &account.id, client_id, Protocol::OAuth2, scopes, ip).await?;
    Ok(true)
}

fn consent_answer(client: &Client) -> Answer {
    Answer {
        lines: vec![
            ("issueAdvice", "consent".to_owned()),
            ("Permission", client.record.name.clone()),
            ("storeConsentRemotely", "1".to_owned()),
        ],
    }
}

async fn audit_token(
    ctx: &Ctx,
    account: &AccountRecord,
    ip: &str,
    kind: &str,
    client: &str,
) -> Result<()> {
    audit::record(
        ctx,
        "device.token",
        Some(&account.id),
        &Actor::Account,
        ip,
        json!({ "type": kind, "client": client }),
    )
    .await
}

/// One signed-in device on the account page.
#[derive(Debug, Clone)]
pub struct Device {
    pub grant_id: String,
    pub android_id: String,
    /// What the newest master token of the device recorded at its login (empty when not sent).
    pub country: String,
    pub lang: String,
    pub sdk_version: String,
    /// The first sign-in of the device.
    pub first_used: i64,
    /// The last use of the device or of a token minted through it, to [`grants::TOUCH_AFTER_SECS`]:
    /// the validator's grant touch, no write of its own.
    pub last_used: Option<i64>,
}

/// The account's devices: each live device grant, oldest first.
pub async fn devices(ctx: &Ctx, account_id: &str) -> Result<Vec<Device>> {
    let prefix = device_client_id("");
    let masters = ctx
        .store
        .credentials()
        .list_live_by_account(account_id, CredentialKind::MasterToken, ctx.now())
        .await?;
    let mut out: Vec<Device> = ctx
        .store
        .grants()
        .list_by_account(account_id)
        .await?
        .into_iter()
        .filter(|it| it.revoked_at.is_none() && it.protocol == Protocol::Device.as_str())
        .filter_map(|it| {
            let android_id = it.client_id.strip_prefix(&prefix)?.to_owned();
            let bound: MasterTokenData = masters
                .iter()
                .rev()
                .find(|m| m.grant_id.as_deref() == Some(it.id.as_str()))
                .map(credentials::data)
                .unwrap_or_default();
            Some(Device {
                android_id,
                country: bound.device_country,
                lang: bound.lang,
                sdk_version: bound.sdk_version,
                grant_id: it.id,
                first_used: it.created_at,
                last_used: it.last_used_at,
            })
        })
        .collect();
    out.sort_by_key(|it| it.first_used);
    Ok(out)
}

/// "Sign out this device": revokes the device grant of the account and so every token minted
/// through it. `NotFound` for a grant that is not one of the account's devices.
pub async fn revoke(ctx: &Ctx, account_id: &str, grant_id: &str, ip: &str) -> Result<()> {
    if !devices(ctx, account_id).await?.iter().any(|it| it.grant_id == grant_id) {
        return Err(Error::NotFound);
    }
    grants::revoke(ctx, account_id, grant_id, &Actor::Account, ip).await
}

/// Signs every device of the account out: each device grant (and the web sign-in grant) and
/// everything minted through them. Two passes: the second lists the grants again, after the
/// first revoked the web sign-in grant, and so catches a device an exchange created meanwhile
/// (see [`sign_device_in`]).
pub async fn revoke_all(ctx: &Ctx, account_id: &str) -> Result<u64> {
    let now = ctx.now();
    let mut revoked = 0;
    for _pass in 0..2 {
        for grant in ctx.store.grants().list_by_account(account_id).await? {
            if grant.revoked_at.is_none()
                && grant.protocol == Protocol::Device.as_str()
                && ctx.store.grants().revoke(&grant.id, now).await?
            {
                revoked += 1;
            }
        }
    }
    Ok(revoked)
}
