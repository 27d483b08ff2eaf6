//! Push messaging, C2DM and GCM compatible: device registrations, the senders' credentials
//! (per-project API keys, ClientLogin `ac2dm` tokens, OAuth 2.0 tokens with the push scope), and
//! sending, which stores every accepted message before the sender is answered.
//!
//! A registration id is a `push_registration` credential: the store keeps its digest and, as
//! typed data, the device's install id, the app, its signing certificate and the allowed senders.
//! The id itself is derived from the install id and the app with the pepper, so the same app on
//! the same device gets the same id again without the id ever being stored in the clear.
//! Sender ids are project ids.

use tessera_proto_push::frames::message_frame;
use tessera_proto_push::{self as wire, Message, Outcome, RegisterError, SendError};
use tessera_store::{
    CredentialKind, CredentialRecord, CredentialTransition, Enqueued, PushLimits, PushMessageKind,
    PushMessageRecord, PushSignal, StoredFrame,
};

use crate::caller::{self, Presented, RequestFacts};

pub mod delivery;
pub mod topics;
use crate::credentials::{self, PushApiKeyData, PushRegistrationData, Recurrence};
use crate::{Ctx, Result, projects};

/// Registration ids start with this, as the ids senders already handle do.
pub const REGISTRATION_PREFIX: &str = "APA91b";
/// API keys start with this.
pub const API_KEY_PREFIX: &str = "AIza";
/// The ClientLogin service a C2DM sender's `Auth` token must be issued for.
pub const C2DM_SERVICE: &str = "ac2dm";
/// The OAuth 2.0 scope a sender's `Bearer` token must cover.
pub const PUSH_SCOPE: &str = "https://android.apis.google.com/c2dm";

/// Quotas and storage limits a deployment may tune (`[push]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushPolicy {
    /// Messages one sender may send per minute (`QuotaExceeded` beyond); 0: no limit.
    pub sender_per_minute: u32,
    /// Messages one registration may be sent per minute (`DeviceQuotaExceeded` beyond); 0: no limit.
    pub device_per_minute: u32,
    /// Distinct collapse keys stored per registration.
    pub max_collapse_keys: u32,
    /// Non-collapsible messages stored per registration before they are replaced by one
    /// `deleted_messages` notice.
    pub max_non_collapsible: u32,
    /// Topics one registration may be subscribed to (`TOO_MANY_TOPICS` beyond).
    pub max_topics_per_registration: u32,
    /// First registrations without a credential (each makes a new install) one client address
    /// (IPv4, or IPv6 /64) may make per minute (`QUOTA_EXCEEDED` beyond); 0: no limit.
    pub new_installs_per_minute: u32,
    /// The `Retry-After` (seconds) of a 503 answered when the store fails or is overloaded.
    pub retry_after_secs: u32,
    /// The delivery connections' limits.
    pub delivery: delivery::DeliveryPolicy,
}

impl Default for PushPolicy {
    fn default() -> PushPolicy {
        PushPolicy {
            sender_per_minute: 60_000,
            device_per_minute: 120,
            max_collapse_keys: 4,
            max_non_collapsible: 100,
            max_topics_per_registration: 2000,
            new_installs_per_minute: 30,
            retry_after_secs: 10,
            delivery: delivery::DeliveryPolicy::default(),
        }
    }
}

/// Install credentials start with this.
pub const INSTALL_PREFIX: &str = "pi/";

/// What a device's registrations hang from: revoking it is revoking the device, and every
/// registration id made through it then answers `NotRegistered`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// The device grant of an Android device login (its master token's grant).
    Grant { grant_id: String, account_id: String },
    /// The digest of an install credential (an app without an account).
    Install { digest: String },
}

impl Anchor {
    fn label(&self) -> String {
        match self {
            Anchor::Grant { grant_id, .. } => format!("grant:{grant_id}"),
            Anchor::Install { digest } => format!("install:{digest}"),
        }
    }
}

/// An authenticated device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The device id it presented (`AidLogin <device id>:…`): its Android ID or install id.
    pub id: String,
    pub anchor: Anchor,
}

/// An install credential's data.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PushInstallData {
    /// The install id the credential was handed out for; the device presents it with the secret.
    #[serde(default)]
    pub install_id: String,
}

/// The one place a push device proves itself: `device` with its master token (Android device
/// login; the token's Android ID must be `device`) or with its install credential (handed out by
/// [`new_install`] for `device`). Both go through the one validator, so a revoked device grant,
/// a disabled account or a revoked install credential refuse here. `recurrence` says whether the
/// check recurs (a frame posted beside a server-sent-event stream) or comes once a connection.
pub async fn authenticate_device(
    ctx: &Ctx,
    device: &str,
    secret: &str,
    recurrence: Recurrence,
) -> Result<Option<Device>> {
    if secret.starts_with(crate::device::MASTER_TOKEN_PREFIX) {
        let Some(valid) =
            credentials::find_valid_as(ctx, secret, &[CredentialKind::MasterToken], recurrence)
                .await?
        else {
            return Ok(None);
        };
        let bound: crate::device::MasterTokenData = credentials::data(&valid.record);
        let (Some(grant_id), Some(account_id)) = (valid.record.grant_id, valid.record.account_id)
        else {
            return Ok(None);
        };
        if bound.android_id != device {
            return Ok(None);
        }
        return Ok(Some(Device {
            id: device.to_owned(),
            anchor: Anchor::Grant { grant_id, account_id },
        }));
    }
    if secret.starts_with(INSTALL_PREFIX) {
        let Some(valid) =
            credentials::find_valid_as(ctx, secret, &[CredentialKind::PushInstall], recurrence)
                .await?
        else {
            return Ok(None);
        };
        let bound: PushInstallData = credentials::data(&valid.record);
        if bound.install_id != device {
            return Ok(None);
        }
        return Ok(Some(Device {
            id: device.to_owned(),
            anchor: Anchor::Install { digest: valid.record.digest },
        }));
    }
    Ok(None)
}

/// Hands out an install credential for `install_id` (an app without an account, registering for
/// the first time). It is shown once; the store keeps its digest.
pub async fn new_install(ctx: &Ctx, install_id: &str) -> Result<(Device, String)> {
    let (token, _) = ctx.new_token();
    let secret = format!("{INSTALL_PREFIX}{token}");
    let digest = tessera_crypto::digest::token_digest(&secret);
    let mut record = CredentialRecord::new(digest.clone(), CredentialKind::PushInstall, ctx.now());
    record.data = credentials::encode(&PushInstallData { install_id: install_id.to_owned() })?;
    ctx.store.credentials().insert(&record).await?;
    Ok((Device { id: install_id.to_owned(), anchor: Anchor::Install { digest } }, secret))
}

/// Revokes an install credential, and with it the device: its registration ids answer
/// `NotRegistered` and its connections are refused. False when it was not a live install.
pub async fn revoke_install(ctx: &Ctx, secret: &str) -> Result<bool> {
    let digest = tessera_crypto::digest::token_digest(secret);
    match ctx.store.credentials().find_live(&digest, ctx.now()).await? {
        Some(record) if record.kind == CredentialKind::PushInstall => {
            Ok(ctx.store.credentials().revoke(&digest, ctx.now()).await?)
        }
        _ => Ok(false),
    }
}

/// The registration id of `app` on `device`: the same every time they register through the
/// same device grant or install credential.
fn registration_id(ctx: &Ctx, device: &Device, app: &str) -> String {
    let input = format!("{}\n{app}", device.anchor.label());
    let digest = ctx.pepper.keyed_digest("push-registration", input.as_bytes());
    format!("{REGISTRATION_PREFIX}{digest}")
}

/// What a registration id names.
#[derive(Debug, Clone)]
pub(crate) enum Lookup {
    /// Registered, and its device is live.
    Live { record: Box<CredentialRecord>, data: Box<PushRegistrationData> },
    /// Known, but unregistered or its device was revoked.
    NotRegistered,
    /// Not a registration id of ours.
    Unknown,
}

/// Whether a registration was made by `device`: by its device grant (master-token devices) or its
/// install credential, not only under the same device id.
pub(crate) fn owns(
    device: &Device,
    record: &CredentialRecord,
    data: &PushRegistrationData,
) -> bool {
    match &device.anchor {
        Anchor::Grant { grant_id, .. } => record.grant_id.as_deref() == Some(grant_id.as_str()),
        Anchor::Install { digest } => data.install == *digest,
    }
}

/// Looks a registration id up through the one validator: its device grant (master-token devices)
/// is checked with it, and an install device's credential must still be live.
pub(crate) async fn lookup(ctx: &Ctx, id: &str) -> Result<Lookup> {
    Ok(lookup_many(ctx, std::slice::from_ref(&id.to_owned()))
        .await?
        .pop()
        .unwrap_or(Lookup::Unknown))
}

/// [`lookup`] for many ids (a multicast's recipients): the registrations are read in one
/// statement per 1000 through [`credentials::find_valid_many`], and the install credentials of
/// the install devices among them in one more. One answer per id, in order.
pub(crate) async fn lookup_many(ctx: &Ctx, ids: &[String]) -> Result<Vec<Lookup>> {
    let shaped = |id: &String| id.starts_with(REGISTRATION_PREFIX) && id.len() <= 256;
    let candidates: Vec<String> = ids.iter().filter(|id| shaped(id)).cloned().collect();
    let mut valid =
        credentials::find_valid_many(ctx, &candidates, &[CredentialKind::PushRegistration])
            .await?
            .into_iter();
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        found.push(if shaped(id) { valid.next().flatten() } else { None });
    }
    let registrations: Vec<Option<PushRegistrationData>> =
        found.iter().map(|it| it.as_ref().map(|valid| credentials::data(&valid.record))).collect();
    let installs: Vec<String> = registrations
        .iter()
        .flatten()
        .filter(|data| data.registered && !data.install.is_empty())
        .map(|data| data.install.clone())
        .collect();
    let live_installs: std::collections::HashSet<String> = ctx
        .store
        .credentials()
        .find_live_tokens(&installs, ctx.now())
        .await?
        .into_iter()
        .filter(|it| it.credential.kind == CredentialKind::PushInstall)
        .map(|it| it.credential.digest)
        .collect();
    let mut out = Vec::with_capacity(ids.len());
    for ((id, valid), data) in ids.iter().zip(found).zip(registrations) {
        let (Some(valid), Some(data)) = (valid, data) else {
            if !shaped(id) {
                out.push(Lookup::Unknown);
                continue;
            }
            let digest = tessera_crypto::digest::token_digest(id);
            out.push(match ctx.store.credentials().get(&digest).await? {
                Some(record) if record.kind == CredentialKind::PushRegistration => {
                    Lookup::NotRegistered
                }
                _ => Lookup::Unknown,
            });
            continue;
        };
        if !data.registered || (!data.install.is_empty() && !live_installs.contains(&data.install))
        {
            out.push(Lookup::NotRegistered);
            continue;
        }
        out.push(Lookup::Live { record: Box::new(valid.record), data: Box::new(data) });
    }
    Ok(out)
}

/// The window of [`PushPolicy::new_installs_per_minute`], in seconds.
pub const NEW_INSTALL_WINDOW_SECS: i64 = 60;

/// Counts a first registration without a credential from `ip` (its IPv6 /64 for IPv6) and
/// answers whether it is within [`PushPolicy::new_installs_per_minute`]. Counted before the
/// install is made, in one atomic counter, so a parallel burst gets exactly the limit.
pub async fn new_install_allowed(ctx: &Ctx, ip: &str) -> Result<bool> {
    let limit = ctx.policy.push.new_installs_per_minute;
    if limit == 0 {
        return Ok(true);
    }
    let address = match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(_)) => crate::password::network_of(ip),
        _ => ip.to_owned(),
    };
    let key = format!("push:install:{address}");
    Ok(ctx.store.counters().hit(&key, NEW_INSTALL_WINDOW_SECS, ctx.now()).await? <= limit)
}

/// A first registration from a device without a credential: hands out an install credential for
/// the request's `device` field (after the senders are checked, so a refused registration leaves
/// nothing behind) and registers with it. Answers the registration id and the credential.
pub async fn register_new_install(
    ctx: &Ctx,
    request: &wire::Register,
) -> Result<Result<(String, String), RegisterError>> {
    if request.delete {
        return Ok(Err(RegisterError::AuthenticationFailed));
    }
    if let Err(code) = check_senders(ctx, &request.senders).await? {
        return Ok(Err(code));
    }
    let (device, secret) = new_install(ctx, &request.device).await?;
    Ok(register(ctx, &device, request).await?.map(|id| (id, secret)))
}

/// Makes an install credential for each of `devices` (install ids) and registers `app` on it
/// for `senders`, as [`register_new_install`] does one at a time, but written in one batch of
/// inserts (load-test fixtures: thousands of devices in seconds). Answers, per device in order,
/// the install credential and the registration id. Nothing is written when a sender is unknown.
pub async fn register_new_installs(
    ctx: &Ctx,
    app: &str,
    senders: &[String],
    devices: &[String],
) -> Result<Result<Vec<(String, String)>, RegisterError>> {
    if let Err(code) = check_senders(ctx, senders).await? {
        return Ok(Err(code));
    }
    let mut senders = senders.to_vec();
    senders.sort();
    senders.dedup();
    let now = ctx.now();
    let mut records = Vec::with_capacity(devices.len() * 2);
    let mut made = Vec::with_capacity(devices.len());
    for install_id in devices {
        let (token, _) = ctx.new_token();
        let secret = format!("{INSTALL_PREFIX}{token}");
        let digest = tessera_crypto::digest::token_digest(&secret);
        let mut install = CredentialRecord::new(digest.clone(), CredentialKind::PushInstall, now);
        install.data = credentials::encode(&PushInstallData { install_id: install_id.to_owned() })?;
        let device = Device {
            id: install_id.to_owned(),
            anchor: Anchor::Install { digest: digest.clone() },
        };
        let id = registration_id(ctx, &device, app);
        let mut registration = CredentialRecord::new(
            tessera_crypto::digest::token_digest(&id),
            CredentialKind::PushRegistration,
            now,
        );
        registration.data = credentials::encode(&PushRegistrationData {
            device: install_id.to_owned(),
            app: app.to_owned(),
            cert: String::new(),
            senders: senders.clone(),
            registered: true,
            install: digest,
        })?;
        records.push(install);
        records.push(registration);
        made.push((secret, id));
    }
    ctx.store.credentials().insert_many(&records).await?;
    Ok(Ok(made))
}

async fn check_senders(ctx: &Ctx, senders: &[String]) -> Result<Result<(), RegisterError>> {
    for sender in senders {
        if ctx.store.projects().get(sender).await?.is_none() {
            return Ok(Err(RegisterError::InvalidSender));
        }
    }
    Ok(Ok(()))
}

/// Registers (or, with `delete`, unregisters) an app on a device. Answers the registration id;
/// registering again, with the same or other senders, answers the same id.
pub async fn register(
    ctx: &Ctx,
    device: &Device,
    request: &wire::Register,
) -> Result<Result<String, RegisterError>> {
    if request.delete {
        unregister(ctx, device, &request.app).await?;
        return Ok(Ok(String::new()));
    }
    if let Err(code) = check_senders(ctx, &request.senders).await? {
        return Ok(Err(code));
    }
    let id = registration_id(ctx, device, &request.app);
    let digest = tessera_crypto::digest::token_digest(&id);
    let wanted = PushRegistrationData {
        device: device.id.clone(),
        app: request.app.clone(),
        cert: request.cert.clone(),
        senders: request.senders.clone(),
        registered: true,
        install: match &device.anchor {
            Anchor::Install { digest } => digest.clone(),
            Anchor::Grant { .. } => String::new(),
        },
    };
    let text = credentials::encode(&wanted)?;
    let mut record =
        CredentialRecord::new(digest.clone(), CredentialKind::PushRegistration, ctx.now());
    record.data = text.clone();
    if let Anchor::Grant { grant_id, account_id } = &device.anchor {
        record.grant_id = Some(grant_id.clone());
        record.account_id = Some(account_id.clone());
    }
    // A concurrent registration of the same app may move the row between our read and our write;
    // each round either finds it as wanted or moves it there from the state it read.
    for _ in 0..4 {
        if ctx.store.credentials().insert_once(&record).await? {
            return Ok(Ok(id));
        }
        let Some(stored) = ctx.store.credentials().find_live(&digest, ctx.now()).await? else {
            return Ok(Err(RegisterError::PhoneRegistrationError));
        };
        if stored.data == text {
            return Ok(Ok(id));
        }
        let to = CredentialTransition {
            data: text.clone(),
            account_id: None,
            grant_id: None,
            consume: false,
        };
        let moved = ctx
            .store
            .credentials()
            .transition(&digest, CredentialKind::PushRegistration, &stored.data, &to, ctx.now())
            .await?;
        if moved.is_some() {
            return Ok(Ok(id));
        }
    }
    Ok(Err(RegisterError::InternalServerError))
}

/// Unregisters `app` on `device`: sends to its id answer `NotRegistered` until it registers
/// again, and what was stored for it is dropped. Unregistering what is not registered is no error.
pub async fn unregister(ctx: &Ctx, device: &Device, app: &str) -> Result<()> {
    let id = registration_id(ctx, device, app);
    let digest = tessera_crypto::digest::token_digest(&id);
    for _ in 0..4 {
        let Some(stored) = ctx.store.credentials().find_live(&digest, ctx.now()).await? else {
            break;
        };
        let mut data: PushRegistrationData = credentials::data(&stored);
        if !data.registered {
            break;
        }
        data.registered = false;
        let to = CredentialTransition {
            data: credentials::encode(&data)?,
            account_id: None,
            grant_id: None,
            consume: false,
        };
        let moved = ctx
            .store
            .credentials()
            .transition(&digest, CredentialKind::PushRegistration, &stored.data, &to, ctx.now())
            .await?;
        if moved.is_some() {
            break;
        }
    }
    ctx.store.push().clear(&digest).await?;
    ctx.store.push().unsubscribe_all(&digest).await?;
    Ok(())
}

/// Creates an API key for `project_id`; the key is shown once, the store keeps its digest. The
/// key names the project's owner as its account, so the validator refuses it once that account
/// is disabled or deleted.
pub async fn create_api_key(ctx: &Ctx, project_id: &str, name: &str) -> Result<String> {
    let Some(project) = ctx.store.projects().get(project_id).await? else {
        return Err(crate::Error::NotFound);
    };
    let name = name.trim();
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(crate::Error::Invalid(
            "An API key's name is at most 100 characters, on one line.".to_owned(),
        ));
    }
    let (token, _) = ctx.new_token();
    let key = format!("{API_KEY_PREFIX}{token}");
    let digest = tessera_crypto::digest::token_digest(&key);
    let mut record = CredentialRecord::new(digest, CredentialKind::PushApiKey, ctx.now());
    record.account_id = Some(project.owner_account_id);
    record.data = credentials::encode(&PushApiKeyData {
        project_id: project_id.to_owned(),
        name: name.to_owned(),
    })?;
    ctx.store.credentials().insert(&record).await?;
    Ok(key)
}

/// Creates an API key as [`create_api_key`] does, and records who did (console, CLI).
pub async fn create_api_key_by(
    ctx: &Ctx,
    project_id: &str,
    name: &str,
    actor: &crate::audit::Actor,
) -> Result<(ApiKeyInfo, String)> {
    let key = create_api_key(ctx, project_id, name).await?;
    let id = api_key_id(&tessera_crypto::digest::token_digest(&key));
    crate::audit::record(
        ctx,
        "push.api_key.create",
        None,
        actor,
        "",
        serde_json::json!({ "project": project_id, "key": id }),
    )
    .await?;
    let info = list_api_keys(ctx, project_id)
        .await?
        .into_iter()
        .find(|it| it.id == id)
        .ok_or(crate::Error::NotFound)?;
    Ok((info, key))
}

/// A live API key as the console and the CLI list it; never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// The key's public id: the start of its digest, enough to name it for revocation.
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// When a send last used it (recorded at most every few minutes).
    pub last_used_at: Option<i64>,
}

const API_KEY_ID_LEN: usize = 16;

fn api_key_id(digest: &str) -> String {
    digest.chars().take(API_KEY_ID_LEN).collect()
}

/// The project's live API keys, oldest first.
pub async fn list_api_keys(ctx: &Ctx, project_id: &str) -> Result<Vec<ApiKeyInfo>> {
    let Some(project) = ctx.store.projects().get(project_id).await? else {
        return Err(crate::Error::NotFound);
    };
    let records = ctx
        .store
        .credentials()
        .list_live_by_account(&project.owner_account_id, CredentialKind::PushApiKey, ctx.now())
        .await?;
    Ok(records
        .into_iter()
        .filter_map(|record| {
            let data: PushApiKeyData = credentials::data(&record);
            (data.project_id == project_id).then(|| ApiKeyInfo {
                id: api_key_id(&record.digest),
                name: data.name,
                created_at: record.created_at,
                last_used_at: record.last_used_at,
            })
        })
        .collect())
}

/// Revokes the project's live API key whose id is `key_id`; false when there is none.
pub async fn revoke_api_key_by_id(
    ctx: &Ctx,
    project_id: &str,
    key_id: &str,
    actor: &crate::audit::Actor,
) -> Result<bool> {
    let Some(project) = ctx.store.projects().get(project_id).await? else {
        return Err(crate::Error::NotFound);
    };
    if key_id.len() != API_KEY_ID_LEN {
        return Ok(false);
    }
    let records = ctx
        .store
        .credentials()
        .list_live_by_account(&project.owner_account_id, CredentialKind::PushApiKey, ctx.now())
        .await?;
    let Some(record) = records.into_iter().find(|record| {
        credentials::data::<PushApiKeyData>(record).project_id == project_id
            && api_key_id(&record.digest) == key_id
    }) else {
        return Ok(false);
    };
    let revoked = ctx.store.credentials().revoke(&record.digest, ctx.now()).await?;
    if revoked {
        crate::audit::record(
            ctx,
            "push.api_key.revoke",
            None,
            actor,
            "",
            serde_json::json!({ "project": project_id, "key": key_id }),
        )
        .await?;
    }
    Ok(revoked)
}

/// Revokes an API key; false when it was not live.
pub async fn revoke_api_key(ctx: &Ctx, key: &str) -> Result<bool> {
    let digest = tessera_crypto::digest::token_digest(key);
    match ctx.store.credentials().find_live(&digest, ctx.now()).await? {
        Some(record) if record.kind == CredentialKind::PushApiKey => {
            Ok(ctx.store.credentials().revoke(&digest, ctx.now()).await?)
        }
        _ => Ok(false),
    }
}

/// Which wire API a sender speaks: C2DM accepts ClientLogin `ac2dm` tokens and OAuth 2.0 tokens,
/// GCM API keys and OAuth 2.0 tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    C2dm,
    Gcm,
}

/// An authenticated sender: the sender ids (project ids) it may send as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub sender_ids: Vec<String>,
    /// What its quota is counted against.
    pub quota_key: String,
}

/// Checks a sender's credential through the one validator; `None` is answered 401.
pub async fn authenticate_sender(
    ctx: &Ctx,
    api: Api,
    presented: &Presented,
) -> Result<Option<Sender>> {
    let account_id = match (api, presented) {
        (Api::Gcm, Presented::ApiKey(key)) => {
            let Some(valid) =
                credentials::find_valid(ctx, key, &[CredentialKind::PushApiKey]).await?
            else {
                return Ok(None);
            };
            let data: PushApiKeyData = credentials::data(&valid.record);
            if ctx.store.projects().get(&data.project_id).await?.is_none() {
                return Ok(None);
            }
            let stale = valid
                .record
                .last_used_at
                .is_none_or(|at| ctx.now() - at >= crate::grants::TOUCH_AFTER_SECS);
            if stale {
                ctx.store.credentials().touch(&valid.record.digest, ctx.now()).await?;
            }
            return Ok(Some(Sender {
                quota_key: format!("project:{}", data.project_id),
                sender_ids: vec![data.project_id],
            }));
        }
        (Api::C2dm, Presented::GoogleLogin(_)) | (_, Presented::Bearer(_)) => {
            match caller::resolve(ctx, presented, &RequestFacts::default()).await? {
                Ok(found)
                    if found.service.as_deref() == Some(C2DM_SERVICE)
                        || (found.protocol == caller::Protocol::OAuth2
                            && found.allows(PUSH_SCOPE)) =>
                {
                    match found.account_id {
                        Some(account_id) => account_id,
                        None => return Ok(None),
                    }
                }
                _ => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    let sender_ids =
        projects::owned_by(ctx, &account_id).await?.into_iter().map(|it| it.id).collect();
    Ok(Some(Sender { sender_ids, quota_key: format!("account:{account_id}") }))
}

/// A fresh message id: `0:<unix millis>%<16 hex digits>`, with no `=` (clients split lines at
/// every `=`).
fn message_id(ctx: &Ctx) -> String {
    let tag = tessera_crypto::random::from_alphabet(ctx.rng.as_ref(), b"0123456789abcdef", 16);
    format!("0:{}%{tag}", ctx.now().max(0).saturating_mul(1000))
}

/// A fresh multicast id (63 bits, so that every JSON reader takes it as a plain integer).
pub fn multicast_id(ctx: &Ctx) -> u64 {
    let mut bytes = [0u8; 8];
    ctx.rng.fill(&mut bytes);
    u64::from_be_bytes(bytes) >> 1
}

/// What the device receives, as JSON text: `from`, `collapse_key`, the data entries and the
/// notification. Built from the message alone; never a credential.
fn payload(from: &str, message: &Message) -> String {
    let data: serde_json::Map<String, serde_json::Value> = message
        .data
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
        .collect();
    let notification = message
        .notification
        .as_deref()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok());
    serde_json::json!({
        "from": from,
        "collapse_key": message.collapse_key,
        "data": data,
        "notification": notification,
    })
    .to_string()
}

/// Sends `message` to each registration id in order and answers one outcome per id. A
/// `problem` found while parsing is every recipient's answer. Every accepted message is stored
/// before this returns (except a `dry_run`, and a `time_to_live` of 0, which is delivered now or
/// never: with no device connection yet, never).
pub async fn send(
    ctx: &Ctx,
    sender: &Sender,
    registration_ids: &[String],
    message: &Message,
    problem: Option<SendError>,
) -> Result<Vec<Outcome>> {
    if let Some(code) = problem {
        return Ok(vec![Outcome::Failed(code); registration_ids.len()]);
    }
    let found = lookup_many(ctx, registration_ids).await?;
    let recipients: Vec<(&str, Lookup)> =
        registration_ids.iter().map(String::as_str).zip(found).collect();
    deliver(ctx, sender, recipients, message, None).await
}

/// One recipient that passed the per-recipient checks.
struct Ready<'a> {
    index: usize,
    id: &'a str,
    digest: String,
    from: String,
    message_id: String,
}

/// Sends `message` to registration ids once they are looked up (through the one validator), and
/// answers one outcome per recipient, in order: the sender check, the quotas (the sender's and
/// each device's, counted before anything is stored, in one write each for all recipients), then
/// every accepted message stored in one transaction (or, with a time to live of 0, handed to open
/// connections) and the devices woken. The outcomes are those of sending to each recipient one
/// after the other. `origin` is the device's `from` when it is not the sender id (a topic,
/// `/topics/<name>`).
pub(crate) async fn deliver(
    ctx: &Ctx,
    sender: &Sender,
    recipients: Vec<(&str, Lookup)>,
    message: &Message,
    origin: Option<&str>,
) -> Result<Vec<Outcome>> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; recipients.len()];
    let mut ready: Vec<Ready<'_>> = Vec::with_capacity(recipients.len());
    for (index, (id, found)) in recipients.into_iter().enumerate() {
        let (record, registration) = match found {
            Lookup::Live { record, data } => (*record, *data),
            Lookup::NotRegistered => {
                outcomes[index] = Some(Outcome::Failed(SendError::NotRegistered));
                continue;
            }
            Lookup::Unknown => {
                outcomes[index] = Some(Outcome::Failed(SendError::InvalidRegistration));
                continue;
            }
        };
        let Some(from) = registration.senders.iter().find(|it| sender.sender_ids.contains(it))
        else {
            outcomes[index] = Some(Outcome::Failed(SendError::MismatchSenderId));
            continue;
        };
        if message.restricted_package_name.as_ref().is_some_and(|it| *it != registration.app) {
            outcomes[index] = Some(Outcome::Failed(SendError::InvalidPackageName));
            continue;
        }
        let message_id = message_id(ctx);
        ready.push(Ready { index, id, digest: record.digest, from: from.clone(), message_id });
    }
    if !message.dry_run {
        ready = within_quotas(ctx, sender, ready, &mut outcomes).await?;
        store_and_wake(ctx, &ready, message, origin).await?;
    }
    for it in ready {
        outcomes[it.index] = Some(Outcome::Accepted { message_id: it.message_id, canonical: None });
    }
    Ok(outcomes
        .into_iter()
        .map(|it| it.unwrap_or(Outcome::Failed(SendError::Unavailable)))
        .collect())
}

/// Counts the recipients against the sender's per-minute quota, then those within it against
/// their devices' quotas, as if each were sent alone in order; answers the ones within both and
/// records the others' outcomes.
async fn within_quotas<'a>(
    ctx: &Ctx,
    sender: &Sender,
    ready: Vec<Ready<'a>>,
    outcomes: &mut [Option<Outcome>],
) -> Result<Vec<Ready<'a>>> {
    let policy = ctx.policy.push;
    let mut ready = ready;
    if policy.sender_per_minute > 0 && !ready.is_empty() {
        let key = format!("push:sender:{}", sender.quota_key);
        let amount = u32::try_from(ready.len()).unwrap_or(u32::MAX);
        let counts = ctx.store.counters().hit_many(&[(key, amount)], 60, ctx.now()).await?;
        let last = counts.first().copied().unwrap_or(u32::MAX);
        // The i-th recipient's hit counted `last - amount + 1 + i`.
        let first = last.saturating_sub(amount).saturating_add(1);
        let within = match policy.sender_per_minute.checked_sub(first) {
            Some(room) => usize::try_from(room).unwrap_or(usize::MAX).saturating_add(1),
            None => 0,
        }
        .min(ready.len());
        for over in ready.drain(within..) {
            outcomes[over.index] = Some(Outcome::Failed(SendError::QuotaExceeded));
        }
    }
    if policy.device_per_minute > 0 && !ready.is_empty() {
        let hits: Vec<(String, u32)> =
            ready.iter().map(|it| (format!("push:device:{}", it.digest), 1)).collect();
        let counts = ctx.store.counters().hit_many(&hits, 60, ctx.now()).await?;
        let mut kept = Vec::with_capacity(ready.len());
        for (it, count) in ready.into_iter().zip(counts) {
            if count > policy.device_per_minute {
                outcomes[it.index] = Some(Outcome::Failed(SendError::DeviceQuotaExceeded));
            } else {
                kept.push(it);
            }
        }
        ready = kept;
    }
    Ok(ready)
}

/// Stores a message for each recipient in one transaction (a time to live of 0: none, the frame
/// goes to the connections open now), then wakes their connections, each signal carrying the
/// frame just stored so that the connection need not read it back.
async fn store_and_wake(
    ctx: &Ctx,
    ready: &[Ready<'_>],
    message: &Message,
    origin: Option<&str>,
) -> Result<()> {
    if ready.is_empty() {
        return Ok(());
    }
    let payload_of = |it: &Ready<'_>| payload(origin.unwrap_or(&it.from), message);
    if message.ttl() == 0 {
        // Now or never: handed to the connections open right now, never stored.
        let signals: Vec<PushSignal> = ready
            .iter()
            .map(|it| PushSignal::Now {
                registration: it.digest.clone(),
                frame: message_frame(it.id, &it.message_id, &payload_of(it)),
                hold_while_idle: message.delay_while_idle,
            })
            .collect();
        ctx.push.signal_many(&signals).await;
        return Ok(());
    }
    let policy = ctx.policy.push;
    let now = ctx.now();
    let records: Vec<PushMessageRecord> = ready
        .iter()
        .map(|it| PushMessageRecord {
            id: it.message_id.clone(),
            registration: it.digest.clone(),
            sender: it.from.clone(),
            kind: PushMessageKind::Message,
            collapse_key: message.collapse_key.clone(),
            payload: payload_of(it),
            delay_while_idle: message.delay_while_idle,
            total_deleted: 0,
            created_at: now,
            expires_at: now + i64::from(message.ttl()),
        })
        .collect();
    let limits = PushLimits {
        max_collapse_keys: policy.max_collapse_keys,
        max_non_collapsible: policy.max_non_collapsible,
    };
    let stored = ctx.store.push().enqueue_many(&records, limits, now).await?;
    // Stored first; then the nodes holding the devices' connections are woken.
    let signals: Vec<PushSignal> = ready
        .iter()
        .zip(records)
        .zip(stored)
        .map(|((it, record), stored)| PushSignal::Stored {
            registration: record.registration,
            // After an overflow the notice stands in the message's place: read it.
            message: matches!(stored, Enqueued::Stored { .. }).then(|| StoredFrame {
                frame: message_frame(it.id, &record.id, &record.payload),
                id: record.id,
                hold_while_idle: record.delay_while_idle,
            }),
        })
        .collect();
    ctx.push.signal_many(&signals).await;
    Ok(())
}

/// A message waiting for a device, as the device receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub message_id: String,
    /// JSON text: `from`, `collapse_key`, `data`, `notification`; or, for the notice that
    /// replaced too many stored messages, `message_type` and `total_deleted`.
    pub payload: String,
}

/// The messages stored for a registration id, oldest first; each stays until [`ack`].
pub async fn pending(ctx: &Ctx, registration_id: &str, limit: u32) -> Result<Vec<Pending>> {
    let digest = tessera_crypto::digest::token_digest(registration_id);
    let stored = ctx.store.push().pending(&digest, ctx.now(), limit).await?;
    Ok(stored
        .into_iter()
        .map(|it| Pending { payload: device_payload(&it), message_id: it.id })
        .collect())
}

/// What the device receives for a stored message, as JSON text.
fn device_payload(record: &PushMessageRecord) -> String {
    match record.kind {
        PushMessageKind::Message => record.payload.clone(),
        PushMessageKind::DeletedMessages => serde_json::json!({
            "from": record.sender,
            "message_type": "deleted_messages",
            "total_deleted": record.total_deleted.to_string(),
        })
        .to_string(),
    }
}

/// Acknowledges a delivered message; false when it was not waiting (acknowledged already).
pub async fn ack(ctx: &Ctx, registration_id: &str, message_id: &str) -> Result<bool> {
    let digest = tessera_crypto::digest::token_digest(registration_id);
    Ok(ctx.store.push().ack(&digest, message_id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestCtx;

    fn request(app: &str, device: &str, senders: &[&str]) -> wire::Register {
        wire::Register {
            app: app.to_owned(),
            device: device.to_owned(),
            senders: senders.iter().map(|it| (*it).to_owned()).collect(),
            cert: String::new(),
            delete: false,
        }
    }

    async fn project(t: &TestCtx) -> String {
        t.account("owner@example.com").create().await;
        t.project("Pushy", "owner@example.com").await.id
    }

    /// A multicast naming the same registrations more than once, between ids that are not
    /// registrations, answers every position as it would alone.
    #[tokio::test]
    async fn a_multicast_answers_each_position_of_a_repeated_id() {
        let t = TestCtx::new().await;
        let sender_id = project(&t).await;
        let (device, _) = new_install(&t.ctx, "3864729817263546173").await.expect("install");
        let mut registrations = Vec::new();
        for app in ["com.example.a", "com.example.b"] {
            let id = register(&t.ctx, &device, &request(app, "d", &[&sender_id]))
                .await
                .expect("register")
                .expect("registered");
            registrations.push(id);
        }
        let key = create_api_key(&t.ctx, &sender_id, "server").await.expect("key");
        let sender = authenticate_sender(&t.ctx, Api::Gcm, &Presented::ApiKey(key))
            .await
            .expect("auth")
            .expect("sender");
        let (a, b) = (registrations[0].clone(), registrations[1].clone());
        let ids =
            vec![a.clone(), "junk".to_owned(), b.clone(), a.clone(), String::new(), a.clone()];
        let outcomes = send(&t.ctx, &sender, &ids, &Message::default(), None).await.expect("send");
        let accepted: Vec<bool> =
            outcomes.iter().map(|it| matches!(it, Outcome::Accepted { .. })).collect();
        assert_eq!(accepted, [true, false, true, true, false, true], "{outcomes:?}");
        assert_eq!(pending(&t.ctx, &a, 10).await.expect("pending").len(), 3);
        assert_eq!(pending(&t.ctx, &b, 10).await.expect("pending").len(), 1);
    }

    #[tokio::test]
    async fn registration_is_stable_and_unregistration_answers_not_registered() {
        let t = TestCtx::new().await;
        let sender_id = project(&t).await;
        let (device, _) = new_install(&t.ctx, "3864729817263546172").await.expect("install");
        let first = register(&t.ctx, &device, &request("com.example.a", "d", &[&sender_id]))
            .await
            .expect("register")
            .expect("registered");
        assert!(first.starts_with(REGISTRATION_PREFIX));
        assert!(first.bytes().all(|b| b.is_ascii_alphanumeric()));
        let again = register(&t.ctx, &device, &request("com.example.a", "d", &[&sender_id]))
            .await
            .expect("register")
            .expect("registered");
        assert_eq!(first, again);
        let other_app = register(&t.ctx, &device, &request("com.example.b", "d", &[&sender_id]))
            .await
            .expect("register")
            .expect("registered");
        assert_ne!(first, other_app);
        assert_eq!(
            register(&t.ctx, &device, &request("com.example.a", "d", &["no-such-project"]))
                .await
                .expect("register"),
            Err(RegisterError::InvalidSender)
        );

        let key = create_api_key(&t.ctx, &sender_id, "server").await.expect("key");
        let sender = authenticate_sender(&t.ctx, Api::Gcm, &Presented::ApiKey(key.clone()))
            .await
            .expect("auth")
            .expect("sender");
        let message = Message { collapse_key: Some("k".into()), ..Message::default() };
        let ids = vec![first.clone(), "APA91bnope".to_owned(), "junk".to_owned()];
        let outcomes = send(&t.ctx, &sender, &ids, &message, None).await.expect("send");
        assert!(matches!(outcomes[0], Outcome::Accepted { .. }));
        assert_eq!(outcomes[1], Outcome::Failed(SendError::InvalidRegistration));
        assert_eq!(outcomes[2], Outcome::Failed(SendError::InvalidRegistration));
        assert_eq!(pending(&t.ctx, &first, 10).await.expect("pending").len(), 1);

        unregister(&t.ctx, &device, "com.example.a").await.expect("unregister");
        let outcomes = send(&t.ctx, &sender, &ids[..1], &message, None).await.expect("send");
        assert_eq!(outcomes[0], Outcome::Failed(SendError::NotRegistered));
        assert!(pending(&t.ctx, &first, 10).await.expect("pending").is_empty());

        assert!(revoke_api_key(&t.ctx, &key).await.expect("revoke"));
        assert!(
            authenticate_sender(&t.ctx, Api::Gcm, &Presented::ApiKey(key))
                .await
                .expect("auth")
                .is_none()
        );
    }

    #[tokio::test]
    async fn another_senders_registration_is_a_mismatch() {
        let t = TestCtx::new().await;
        let mine = project(&t).await;
        t.account("other@example.com").create().await;
        let theirs = t.project("Theirs", "other@example.com").await.id;
        let (device, _) = new_install(&t.ctx, "1").await.expect("install");
        let id = register(&t.ctx, &device, &request("com.example.a", "1", &[&theirs]))
            .await
            .expect("register")
            .expect("registered");
        let key = create_api_key(&t.ctx, &mine, "server").await.expect("key");
        let sender = authenticate_sender(&t.ctx, Api::Gcm, &Presented::ApiKey(key.clone()))
            .await
            .expect("auth")
            .expect("sender");
        let outcomes = send(&t.ctx, &sender, &[id], &Message::default(), None).await.expect("send");
        assert_eq!(outcomes, [Outcome::Failed(SendError::MismatchSenderId)]);
        // A GCM API key is no C2DM credential.
        assert!(
            authenticate_sender(&t.ctx, Api::C2dm, &Presented::ApiKey(key))
                .await
                .expect("auth")
                .is_none()
        );
    }

    /// A master token as Android device login issues it: on the device grant of `android_id`.
    async fn master_token(t: &TestCtx, email: &str, android_id: &str) -> (String, String) {
        let account = t.account(email).create().await;
        let grant = crate::grants::grant(
            &t.ctx,
            account.id(),
            &crate::device::device_client_id(android_id),
            crate::credentials::Protocol::Device,
            &[],
            "",
        )
        .await
        .expect("grant");
        let token = format!("{}{}", crate::device::MASTER_TOKEN_PREFIX, t.ctx.new_token().0);
        let mut record = CredentialRecord::new(
            tessera_crypto::digest::token_digest(&token),
            CredentialKind::MasterToken,
            t.now(),
        );
        record.account_id = Some(account.id().to_owned());
        record.grant_id = Some(grant.id.clone());
        record.data = credentials::encode(&crate::device::MasterTokenData {
            android_id: android_id.to_owned(),
            ..Default::default()
        })
        .expect("data");
        t.ctx.store.credentials().insert(&record).await.expect("insert");
        (token, grant.id)
    }

    async fn api_sender(t: &TestCtx, project_id: &str) -> Sender {
        let key = create_api_key(&t.ctx, project_id, "server").await.expect("key");
        authenticate_sender(&t.ctx, Api::Gcm, &Presented::ApiKey(key))
            .await
            .expect("auth")
            .expect("sender")
    }

    #[tokio::test]
    async fn a_master_token_device_registers_and_its_revocation_answers_not_registered() {
        let t = TestCtx::new().await;
        let sender_id = project(&t).await;
        let (token, grant_id) = master_token(&t, "phone@example.com", "3864729817263546172").await;
        assert_eq!(
            authenticate_device(&t.ctx, "1111", &token, Recurrence::Often).await.expect("auth"),
            None,
            "another Android ID"
        );
        assert_eq!(
            authenticate_device(&t.ctx, "3864729817263546172", "aas_et/nope", Recurrence::Often)
                .await
                .expect("auth"),
            None
        );
        let device = authenticate_device(&t.ctx, "3864729817263546172", &token, Recurrence::Often)
            .await
            .expect("auth")
            .expect("device");
        let id = register(&t.ctx, &device, &request("com.example.a", "d", &[&sender_id]))
            .await
            .expect("register")
            .expect("registered");
        let sender = api_sender(&t, &sender_id).await;
        let message = Message::default();
        let sent =
            send(&t.ctx, &sender, std::slice::from_ref(&id), &message, None).await.expect("send");
        assert!(matches!(sent[0], Outcome::Accepted { .. }));

        let account = t.ctx.store.grants().get(&grant_id).await.expect("get").expect("grant");
        crate::grants::revoke(
            &t.ctx,
            &account.account_id,
            &grant_id,
            &crate::audit::Actor::Account,
            "",
        )
        .await
        .expect("revoke");
        assert_eq!(
            authenticate_device(&t.ctx, "3864729817263546172", &token, Recurrence::Often)
                .await
                .expect("auth"),
            None
        );
        let sent = send(&t.ctx, &sender, &[id], &message, None).await.expect("send");
        assert_eq!(sent, [Outcome::Failed(SendError::NotRegistered)]);
    }

    /// A batch of new installs gives each device a working credential and the registration id
    /// registering one at a time would: sends to them are accepted, and an unknown sender writes
    /// nothing.
    #[tokio::test]
    async fn a_batch_of_new_installs_registers_each_device_as_one_at_a_time_would() {
        let t = TestCtx::new().await;
        let sender_id = project(&t).await;
        let devices: Vec<String> = (0..3).map(|it| format!("bench-{it}")).collect();
        let before = t.ctx.store.credentials().count().await.expect("count");
        let refused =
            register_new_installs(&t.ctx, "com.example.a", &["nope".to_owned()], &devices)
                .await
                .expect("batch");
        assert_eq!(refused, Err(RegisterError::InvalidSender));
        assert_eq!(t.ctx.store.credentials().count().await.expect("count"), before);
        let made = register_new_installs(
            &t.ctx,
            "com.example.a",
            std::slice::from_ref(&sender_id),
            &devices,
        )
        .await
        .expect("batch")
        .expect("ok");
        assert_eq!(made.len(), 3);
        let sender = api_sender(&t, &sender_id).await;
        for (device_id, (secret, id)) in devices.iter().zip(&made) {
            let device = authenticate_device(&t.ctx, device_id, secret, Recurrence::Often)
                .await
                .expect("auth")
                .expect("device");
            let again =
                register(&t.ctx, &device, &request("com.example.a", device_id, &[&sender_id]))
                    .await
                    .expect("register")
                    .expect("ok");
            assert_eq!(&again, id);
        }
        let ids: Vec<String> = made.iter().map(|it| it.1.clone()).collect();
        let sent = send(&t.ctx, &sender, &ids, &Message::default(), None).await.expect("send");
        assert!(sent.iter().all(|it| matches!(it, Outcome::Accepted { .. })), "{sent:?}");
    }

    /// A multicast's recipients are read together and answered each by the validator's rules,
    /// in request order, duplicates included.
    #[tokio::test]
    async fn a_multicast_reads_its_recipients_together_and_answers_each_in_order() {
        let t = TestCtx::new().await;
        let sender_id = project(&t).await;
        let mut made = Vec::new();
        for app in ["com.example.a", "com.example.b", "com.example.c"] {
            let request = request(app, "5", &[&sender_id]);
            made.push(register_new_install(&t.ctx, &request).await.expect("register").expect("ok"));
        }
        let [(live, _), (revoked, install), (gone, gone_install)] =
            <[(String, String); 3]>::try_from(made).expect("three");
        assert!(revoke_install(&t.ctx, &install).await.expect("revoke"));
        let device =
            authenticate_device(&t.ctx, "5", &gone_install, Recurrence::Often).await.expect("auth");
        unregister(&t.ctx, &device.expect("device"), "com.example.c").await.expect("unregister");
        let sender = api_sender(&t, &sender_id).await;
        let ids = [&live, &revoked, "junk", &live, &gone, "APA91bnope", ""].map(str::to_owned);
        let outcomes = send(&t.ctx, &sender, &ids, &Message::default(), None).await.expect("send");
        let codes: Vec<Option<SendError>> = outcomes
            .iter()
            .map(|it| match it {
                Outcome::Failed(code) => Some(*code),
                Outcome::Accepted { .. } => None,
            })
            .collect();
        use SendError::{InvalidRegistration as Invalid, NotRegistered as Gone};
        assert_eq!(
            codes,
            [None, Some(Gone), Some(Invalid), None, Some(Gone), Some(Invalid), Some(Invalid)]
        );
        assert_eq!(pending(&t.ctx, &live, 10).await.expect("pending").len(), 2);
    }

    fn codes(outcomes: &[Outcome]) -> Vec<Option<SendError>> {
        outcomes
            .iter()
            .map(|it| match it {
                Outcome::Failed(code) => Some(*code),
                Outcome::Accepted { .. } => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_multicast_counts_against_the_quotas_as_its_recipients_one_by_one() {
        let t = TestCtx::with_policy(|policy| {
            policy.push.sender_per_minute = 5;
            policy.push.device_per_minute = 2;
        })
        .await;
        let sender_id = project(&t).await;
        let mut ids = Vec::new();
        for app in ["com.example.a", "com.example.b"] {
            let request = request(app, "6", &[&sender_id]);
            ids.push(
                register_new_install(&t.ctx, &request).await.expect("register").expect("ok").0,
            );
        }
        let sender = api_sender(&t, &sender_id).await;
        let (a, b) = (ids[0].clone(), ids[1].clone());
        // a's device quota (2) ends at its third message; the sender's (5) at the sixth recipient.
        let multicast = [&a, &a, &b, &a, &b, &b, &a].map(|it| it.clone());
        let outcomes = send(&t.ctx, &sender, &multicast, &Message::default(), None).await;
        use SendError::{DeviceQuotaExceeded as Device, QuotaExceeded as Sender};
        assert_eq!(
            codes(&outcomes.expect("send")),
            [None, None, None, Some(Device), None, Some(Sender), Some(Sender)]
        );
        assert_eq!(pending(&t.ctx, &a, 10).await.expect("pending").len(), 2);
        assert_eq!(pending(&t.ctx, &b, 10).await.expect("pending").len(), 2);
        // The window is spent: the next send is refused at once, and stores nothing.
        let outcomes =
            send(&t.ctx, &sender, std::slice::from_ref(&b), &Message::default(), None).await;
        assert_eq!(codes(&outcomes.expect("send")), [Some(Sender)]);
        assert_eq!(pending(&t.ctx, &b, 10).await.expect("pending").len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_parallel_burst_of_multicasts_gets_exactly_the_sender_quota() {
        let t = TestCtx::with_policy(|policy| {
            policy.push.sender_per_minute = 25;
            policy.push.device_per_minute = 0;
        })
        .await;
        let sender_id = project(&t).await;
        let request = request("com.example.a", "7", &[&sender_id]);
        let id = register_new_install(&t.ctx, &request).await.expect("register").expect("ok").0;
        let sender = api_sender(&t, &sender_id).await;
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (ctx, sender, id) = (t.ctx.clone(), sender.clone(), id.clone());
                tokio::spawn(async move {
                    let ids = vec![id; 4];
                    send(&ctx, &sender, &ids, &Message::default(), None).await.expect("send")
                })
            })
            .collect();
        let mut accepted = 0;
        for task in tasks {
            accepted += codes(&task.await.expect("task")).iter().filter(|it| it.is_none()).count();
        }
        assert_eq!(accepted, 25, "40 recipients asked, the quota is 25");
    }

    #[tokio::test]
    async fn an_install_credential_is_the_device_until_it_is_revoked() {
        let t = TestCtx::new().await;
        let sender_id = project(&t).await;
        let (id, secret) =
            register_new_install(&t.ctx, &request("com.example.a", "77", &[&sender_id]))
                .await
                .expect("register")
                .expect("registered");
        assert!(secret.starts_with(INSTALL_PREFIX));
        assert_eq!(
            authenticate_device(&t.ctx, "78", &secret, Recurrence::Often).await.expect("auth"),
            None,
            "another install id"
        );
        let device = authenticate_device(&t.ctx, "77", &secret, Recurrence::Often)
            .await
            .expect("auth")
            .expect("device");
        let again = register(&t.ctx, &device, &request("com.example.a", "77", &[&sender_id]))
            .await
            .expect("register")
            .expect("registered");
        assert_eq!(again, id, "the same install and app: the same id");
        // Another first registration with the same install id is another device.
        let (other, _) =
            register_new_install(&t.ctx, &request("com.example.a", "77", &[&sender_id]))
                .await
                .expect("register")
                .expect("registered");
        assert_ne!(other, id);
        assert_eq!(
            register_new_install(&t.ctx, &request("com.example.a", "77", &["nope"]))
                .await
                .expect("register"),
            Err(RegisterError::InvalidSender)
        );

        let sender = api_sender(&t, &sender_id).await;
        assert!(revoke_install(&t.ctx, &secret).await.expect("revoke"));
        assert!(!revoke_install(&t.ctx, &secret).await.expect("revoke"), "once");
        assert_eq!(
            authenticate_device(&t.ctx, "77", &secret, Recurrence::Often).await.expect("auth"),
            None
        );
        let sent = send(&t.ctx, &sender, &[id, other.clone()], &Message::default(), None)
            .await
            .expect("send");
        assert_eq!(sent[0], Outcome::Failed(SendError::NotRegistered));
        assert!(matches!(sent[1], Outcome::Accepted { .. }));
    }
}
