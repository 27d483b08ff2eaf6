//! Push messaging, C2DM and GCM compatible: device registrations, the senders' credentials
//! (per-project API keys, ClientLogin `ac2dm` tokens, OAuth 2.0 tokens with the push scope), and
//! sending, which stores every accepted message before the sender is answered.
//!
//! A registration id is a `push_registration` credential: the store keeps its digest and, as
//! typed data, the device's install id, the app, its signing certificate and the allowed senders.
//! The id itself is derived from the install id and the app with the pepper, so the same app on
//! the same device gets the same id again without the id ever being stored in the clear.
//! Sender ids are project ids.

use tessera_proto_push::{self as wire, Message, Outcome, RegisterError, SendError};
use tessera_store::{
    CredentialKind, CredentialRecord, CredentialTransition, Enqueued, PushLimits, PushMessageKind,
    PushMessageRecord,
};

use crate::caller::{self, Presented, RequestFacts};
use crate::credentials::{self, PushApiKeyData, PushRegistrationData};
use crate::{Ctx, Result, projects};

/// Registration ids start with this, as the ids senders already handle do.
pub const REGISTRATION_PREFIX: &str = "APA91b";
/// API keys start with this.
pub const API_KEY_PREFIX: &str = "AIza";
/// The ClientLogin service a C2DM sender's `Auth` token must be issued for.
pub const C2DM_SERVICE: &str = "ac2dm";
/// The OAuth 2.0 scope a sender's `Bearer` token must cover.
pub const PUSH_SCOPE: &str = "https://android.apis.google.com/c2dm";

/// Quotas and storage limits a deployment may tune.
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
}

impl Default for PushPolicy {
    fn default() -> PushPolicy {
        PushPolicy {
            sender_per_minute: 60_000,
            device_per_minute: 120,
            max_collapse_keys: 4,
            max_non_collapsible: 100,
        }
    }
}

/// The device a registration request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The install id the device names itself by.
    pub install_id: String,
}

/// The hook where the device credential (the device's master token) is to be checked: today
/// every device is an anonymous install, named by the install id it sends, and nothing proves it.
/// Wiring the device credential here makes every registration belong to an authenticated device.
pub async fn authenticate_device(_ctx: &Ctx, install_id: &str) -> Result<Option<Device>> {
    Ok(Some(Device { install_id: install_id.to_owned() }))
}

/// The registration id of `app` on `device`: the same every time they register.
fn registration_id(ctx: &Ctx, device: &Device, app: &str) -> String {
    let input = format!("{}\n{app}", device.install_id);
    let digest = ctx.pepper.keyed_digest("push-registration", input.as_bytes());
    format!("{REGISTRATION_PREFIX}{digest}")
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
    for sender in &request.senders {
        if ctx.store.projects().get(sender).await?.is_none() {
            return Ok(Err(RegisterError::InvalidSender));
        }
    }
    let id = registration_id(ctx, device, &request.app);
    let digest = tessera_crypto::digest::token_digest(&id);
    let wanted = PushRegistrationData {
        device: device.install_id.clone(),
        app: request.app.clone(),
        cert: request.cert.clone(),
        senders: request.senders.clone(),
        registered: true,
    };
    let text = credentials::encode(&wanted)?;
    let mut record =
        CredentialRecord::new(digest.clone(), CredentialKind::PushRegistration, ctx.now());
    record.data = text.clone();
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
    Ok(())
}

/// Creates an API key for `project_id`; the key is shown once, the store keeps its digest.
pub async fn create_api_key(ctx: &Ctx, project_id: &str, name: &str) -> Result<String> {
    if ctx.store.projects().get(project_id).await?.is_none() {
        return Err(crate::Error::NotFound);
    }
    let (token, _) = ctx.new_token();
    let key = format!("{API_KEY_PREFIX}{token}");
    let digest = tessera_crypto::digest::token_digest(&key);
    let mut record = CredentialRecord::new(digest, CredentialKind::PushApiKey, ctx.now());
    record.data = credentials::encode(&PushApiKeyData {
        project_id: project_id.to_owned(),
        name: name.to_owned(),
    })?;
    ctx.store.credentials().insert(&record).await?;
    Ok(key)
}

/// Revokes an API key; false when it was not live.
pub async fn revoke_api_key(ctx: &Ctx, key: &str) -> Result<bool> {
    let digest = tessera_crypto::digest::token_digest(key);
    Ok(ctx.store.credentials().revoke(&digest, ctx.now()).await?)
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

/// Over the per-minute quota `limit` for `key`? Counted before the message is stored, so a
/// parallel burst cannot outrun it.
async fn over_quota(ctx: &Ctx, key: &str, limit: u32) -> Result<bool> {
    if limit == 0 {
        return Ok(false);
    }
    Ok(ctx.store.counters().hit(key, 60, ctx.now()).await? > limit)
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
    let mut outcomes = Vec::with_capacity(registration_ids.len());
    for id in registration_ids {
        let outcome = match problem {
            Some(code) => Outcome::Failed(code),
            None => send_one(ctx, sender, id, message).await?,
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

async fn send_one(ctx: &Ctx, sender: &Sender, id: &str, message: &Message) -> Result<Outcome> {
    let policy = ctx.policy.push;
    if !id.starts_with(REGISTRATION_PREFIX) || id.len() > 256 {
        return Ok(Outcome::Failed(SendError::InvalidRegistration));
    }
    let Some(valid) = credentials::find_valid(ctx, id, &[CredentialKind::PushRegistration]).await?
    else {
        return Ok(Outcome::Failed(SendError::InvalidRegistration));
    };
    let registration: PushRegistrationData = credentials::data(&valid.record);
    if !registration.registered {
        return Ok(Outcome::Failed(SendError::NotRegistered));
    }
    let Some(from) = registration.senders.iter().find(|it| sender.sender_ids.contains(it)) else {
        return Ok(Outcome::Failed(SendError::MismatchSenderId));
    };
    if message.restricted_package_name.as_ref().is_some_and(|it| *it != registration.app) {
        return Ok(Outcome::Failed(SendError::InvalidPackageName));
    }
    let message_id = message_id(ctx);
    if message.dry_run {
        return Ok(Outcome::Accepted { message_id, canonical: None });
    }
    let digest = valid.record.digest;
    if over_quota(ctx, &format!("push:sender:{}", sender.quota_key), policy.sender_per_minute)
        .await?
    {
        return Ok(Outcome::Failed(SendError::QuotaExceeded));
    }
    if over_quota(ctx, &format!("push:device:{digest}"), policy.device_per_minute).await? {
        return Ok(Outcome::Failed(SendError::DeviceQuotaExceeded));
    }
    if message.ttl() == 0 {
        return Ok(Outcome::Accepted { message_id, canonical: None });
    }
    let record = PushMessageRecord {
        id: message_id.clone(),
        registration: digest,
        sender: from.clone(),
        kind: PushMessageKind::Message,
        collapse_key: message.collapse_key.clone(),
        payload: payload(from, message),
        delay_while_idle: message.delay_while_idle,
        total_deleted: 0,
        created_at: ctx.now(),
        expires_at: ctx.now() + i64::from(message.ttl()),
    };
    let limits = PushLimits {
        max_collapse_keys: policy.max_collapse_keys,
        max_non_collapsible: policy.max_non_collapsible,
    };
    match ctx.store.push().enqueue(&record, limits, ctx.now()).await? {
        Enqueued::Stored { .. } | Enqueued::Overflowed { .. } => {}
    }
    Ok(Outcome::Accepted { message_id, canonical: None })
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
        .map(|it| Pending {
            payload: match it.kind {
                PushMessageKind::Message => it.payload,
                PushMessageKind::DeletedMessages => serde_json::json!({
                    "from": it.sender,
                    "message_type": "deleted_messages",
                    "total_deleted": it.total_deleted.to_string(),
                })
                .to_string(),
            },
            message_id: it.id,
        })
        .collect())
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

    #[tokio::test]
    async fn registration_is_stable_and_unregistration_answers_not_registered() {
        let t = TestCtx::new().await;
        let sender_id = project(&t).await;
        let device = Device { install_id: "3864729817263546172".to_owned() };
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
        let device = Device { install_id: "1".to_owned() };
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
}
