//! The device flow (RFC 8628; Google's "TVs and limited-input devices"): the device gets a
//! device code and a short user code, the person enters the user code at `/device`, signs in and
//! allows, and the device's polling turns into tokens.
//!
//! Three rows of kind `device_code` carry it, told apart by `data.role`: the device code itself
//! (SHA-256 of 256 random bits), the user code (keyed digest: only ~34 bits), and the person's
//! decision (inserted once, keyed by the device code's digest).

use serde::{Deserialize, Serialize};
use tessera_store::{CredentialKind, CredentialRecord, ProjectRecord};

use super::clients::{Client, ClientKind};
use super::exchange;
use super::tokens::{Issued, Remembered};
use super::{ErrorCode, Outcome, PROTOCOL, oauth};
use crate::services::{self, ScopeInfo};
use crate::sessions::SignedIn;
use crate::{Ctx, Error, Result, grants};

pub const DEVICE_CODE_TTL_SECS: i64 = 1800;
/// Seconds a device waits between polls.
pub const INTERVAL_SECS: i64 = 5;
/// Wrong user codes one account may enter in a quarter hour.
pub const MAX_ENTRY_FAILURES: u32 = 20;
/// No vowels, no look-alikes: no words, no O/0 confusion (RFC 8628 §6.1).
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Row {
    role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allow: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
}

impl Row {
    fn parse(data: &str) -> Row {
        serde_json::from_str(data).unwrap_or_default()
    }

    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What the device shows and polls with.
#[derive(Debug, Clone)]
pub struct Started {
    pub device_code: String,
    /// `BCDF-GHJK`.
    pub user_code: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// Uppercase, without the dash and spaces people type.
pub fn normalize_user_code(input: &str) -> String {
    input.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect()
}

fn user_code_digest(ctx: &Ctx, code: &str) -> String {
    ctx.pepper.keyed_digest("device-user-code", normalize_user_code(code).as_bytes())
}

fn decision_digest(device_digest: &str) -> String {
    format!("device-decision:{device_digest}")
}

pub async fn start(ctx: &Ctx, client: &Client, scopes: &[String]) -> Outcome<Started> {
    if client.kind != ClientKind::Device {
        return Err(oauth(
            ErrorCode::UnauthorizedClient,
            "Only limited-input device clients may use the device flow.",
        ));
    }
    match services::resolve(ctx, scopes).await {
        Ok(resolved) if !resolved.is_empty() => {}
        Ok(_) => return Err(oauth(ErrorCode::InvalidScope, "No scope was requested.")),
        Err(Error::Invalid(text)) => return Err(oauth(ErrorCode::InvalidScope, &text)),
        Err(err) => return Err(err.into()),
    }
    let now = ctx.now();
    let scope = grants::normalize_scopes(scopes.iter().map(String::as_str));
    let device_code = format!("AH-{}", tessera_crypto::random::token(ctx.rng.as_ref(), 32));
    let device_digest = tessera_crypto::digest::token_digest(&device_code);
    let row = |digest: String, role: Row| {
        let mut record = CredentialRecord::new(digest, CredentialKind::DeviceCode, now);
        record.client_id = Some(client.id().to_owned());
        record.scopes = scope.clone();
        record.expires_at = Some(now + DEVICE_CODE_TTL_SECS);
        record.data = role.json();
        record
    };
    ctx.store
        .credentials()
        .insert(&row(device_digest.clone(), Row { role: "device".into(), ..Row::default() }))
        .await?;
    // A collision with a live user code is rare (20^8 codes); try a few times.
    for _ in 0..5 {
        let raw = tessera_crypto::random::from_alphabet(ctx.rng.as_ref(), USER_CODE_ALPHABET, 8);
        let user_code = format!("{}-{}", &raw[..4], &raw[4..]);
        let entry = row(
            user_code_digest(ctx, &user_code),
            Row { role: "user_code".into(), device: Some(device_digest.clone()), ..Row::default() },
        );
        if ctx.store.credentials().insert_once(&entry).await? {
            return Ok(Started {
                device_code,
                user_code,
                expires_in: DEVICE_CODE_TTL_SECS,
                interval: INTERVAL_SECS,
            });
        }
    }
    Err(Error::Internal("no free user code".to_owned()).into())
}

/// A user code waiting for the person's answer.
#[derive(Debug, Clone)]
pub struct Pending {
    pub client: Client,
    pub project: ProjectRecord,
    pub scopes: Vec<ScopeInfo>,
    user_digest: String,
    device: CredentialRecord,
}

/// Finds the request behind a user code the person typed; counts wrong entries per account.
pub async fn lookup(ctx: &Ctx, account_id: &str, user_code: &str) -> Result<Option<Pending>> {
    let counter = format!("device-user-code:{account_id}");
    if ctx.store.counters().peek(&counter, ctx.now()).await? >= MAX_ENTRY_FAILURES {
        return Err(Error::Invalid("Too many wrong codes. Try again later.".to_owned()));
    }
    let found = find(ctx, user_code).await?;
    if found.is_none() {
        ctx.store.counters().hit(&counter, 900, ctx.now()).await?;
    }
    Ok(found)
}

async fn find(ctx: &Ctx, user_code: &str) -> Result<Option<Pending>> {
    let normalized = normalize_user_code(user_code);
    if normalized.len() != 8 || !normalized.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)) {
        return Ok(None);
    }
    let now = ctx.now();
    let user_digest = user_code_digest(ctx, &normalized);
    let Some(entry) = ctx.store.credentials().find_live(&user_digest, now).await? else {
        return Ok(None);
    };
    let Some(device_digest) =
        Row::parse(&entry.data).device.filter(|_| entry.kind == CredentialKind::DeviceCode)
    else {
        return Ok(None);
    };
    let Some(device) = ctx.store.credentials().find_live(&device_digest, now).await? else {
        return Ok(None);
    };
    let client_id = device.client_id.clone().unwrap_or_default();
    let Some(client) = super::clients::load(ctx, &client_id).await? else { return Ok(None) };
    let Some(project) = ctx.store.projects().get(&client.record.project_id).await? else {
        return Ok(None);
    };
    let requested: Vec<String> =
        device.scopes.split(' ').filter(|it| !it.is_empty()).map(str::to_owned).collect();
    let scopes = services::resolve(ctx, &requested).await?;
    Ok(Some(Pending { client, project, scopes, user_digest, device }))
}

/// Records the person's answer; the user code is spent either way. False when the code is gone.
pub async fn decide(
    ctx: &Ctx,
    signed: &SignedIn,
    user_code: &str,
    allow: bool,
    ip: &str,
) -> Result<bool> {
    let Some(pending) = find(ctx, user_code).await? else { return Ok(false) };
    let now = ctx.now();
    if !ctx.store.credentials().revoke(&pending.user_digest, now).await? {
        return Ok(false);
    }
    let mut decision = CredentialRecord::new(
        decision_digest(&pending.device.digest),
        CredentialKind::DeviceCode,
        now,
    );
    decision.client_id = Some(pending.client.id().to_owned());
    decision.expires_at = pending.device.expires_at;
    decision.scopes = pending.device.scopes.clone();
    let auth_time = allow.then_some(signed.session.auth_time);
    decision.data =
        Row { role: "decision".into(), allow: Some(allow), auth_time, ..Row::default() }.json();
    if allow {
        let scopes: Vec<String> = pending.scopes.iter().map(|it| it.scope.clone()).collect();
        let grant =
            grants::grant(ctx, &signed.account.id, pending.client.id(), PROTOCOL, &scopes, ip)
                .await?;
        decision.account_id = Some(signed.account.id.clone());
        decision.grant_id = Some(grant.id);
    }
    Ok(ctx.store.credentials().insert_once(&decision).await?)
}

/// One poll from the device.
pub async fn poll(ctx: &Ctx, client: &Client, device_code: &str) -> Outcome<Issued> {
    let digest = tessera_crypto::digest::token_digest(device_code);
    let now = ctx.now();
    let Some(device) = ctx.store.credentials().get(&digest).await? else {
        return Err(oauth(ErrorCode::InvalidGrant, "Unknown device code."));
    };
    if device.kind != CredentialKind::DeviceCode
        || Row::parse(&device.data).role != "device"
        || device.client_id.as_deref() != Some(client.id())
    {
        return Err(oauth(ErrorCode::InvalidGrant, "Unknown device code."));
    }
    if device.consumed_at.is_some() || device.revoked_at.is_some() {
        return Err(oauth(ErrorCode::InvalidGrant, "The device code was already used."));
    }
    if device.expires_at.is_some_and(|at| at <= now) {
        return Err(oauth(ErrorCode::ExpiredToken, "The device code has expired."));
    }
    let polls =
        ctx.store.counters().hit(&format!("device-poll:{digest}"), INTERVAL_SECS, now).await?;
    let Some(decision) = ctx.store.credentials().find_live(&decision_digest(&digest), now).await?
    else {
        if polls > 1 {
            return Err(oauth(ErrorCode::SlowDown, "Poll less often."));
        }
        return Err(oauth(ErrorCode::AuthorizationPending, "The person has not answered yet."));
    };
    let Some(device) =
        ctx.store.credentials().consume(&digest, CredentialKind::DeviceCode, now).await?
    else {
        return Err(oauth(ErrorCode::InvalidGrant, "The device code was already used."));
    };
    let answer = Row::parse(&decision.data);
    if answer.allow != Some(true) {
        return Err(oauth(ErrorCode::AccessDenied, "The person denied the request."));
    }
    let account_id = decision.account_id.clone().unwrap_or_default();
    let Some(account) = ctx.store.accounts().get(&account_id).await? else {
        return Err(oauth(ErrorCode::InvalidGrant, "The account is not available."));
    };
    let grant_id = decision.grant_id.clone().unwrap_or_default();
    let grant = ctx.store.grants().get(&grant_id).await?.filter(|it| it.revoked_at.is_none());
    let Some(grant) = grant.filter(|_| super::tokens::account_usable(&account)) else {
        return Err(oauth(ErrorCode::InvalidGrant, "Token has been expired or revoked."));
    };
    let scopes: Vec<String> =
        device.scopes.split(' ').filter(|it| !it.is_empty()).map(str::to_owned).collect();
    let remembered =
        Remembered { offline: true, auth_time: answer.auth_time, ..Remembered::default() };
    exchange::issue(ctx, client, &account, &grant, &scopes, true, &remembered).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_normalize() {
        assert_eq!(normalize_user_code("bcdf-ghjk"), "BCDFGHJK");
        assert_eq!(normalize_user_code(" BCDF GHJK "), "BCDFGHJK");
    }
}
