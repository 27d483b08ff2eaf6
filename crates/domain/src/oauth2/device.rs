//! The device flow (RFC 8628; Google's "TVs and limited-input devices"): the device gets a
//! device code and a short user code, the person enters the user code at `/device`, signs in and
//! allows, and the device's polling turns into tokens.
//!
//! One row of kind `device_code` carries each request, keyed by the keyed digest of its user code
//! (only ~34 bits). The user code is derived from the device code with the pepper, so a poll finds
//! the row from the device code alone, and the row holds the SHA-256 of the device code to tell
//! the right device from a collision. The row's state moves in place, each move one conditional
//! update (`CredentialStore::transition`): pending, then approved or denied by the person, then
//! consumed when the device hears the answer.

use serde::{Deserialize, Serialize};
use tessera_crypto::digest::{Pepper, ct_eq, token_digest};
use tessera_store::{CredentialKind, CredentialRecord, CredentialTransition, ProjectRecord};

use super::clients::{Client, ClientKind};
use super::exchange;
use super::tokens::{Issued, Remembered};
use super::{ErrorCode, Outcome, PROTOCOL, oauth};
use crate::interaction::{
    self, Applicant, Asks, Choice, Choosing, Decision, Memory, Refusal, Request, Step,
};
use crate::services::{self, ScopeInfo};
use crate::sessions::SignedIn;
use crate::{Ctx, Error, Result, grants};

pub const DEVICE_CODE_TTL_SECS: i64 = 1800;
/// Seconds a device waits between polls.
pub const INTERVAL_SECS: i64 = 5;
/// User codes one account may check in [`ENTRY_WINDOW_SECS`], right or wrong: every check counts
/// before it looks, so a burst of guesses in parallel cannot get past the limit.
pub const MAX_ENTRIES: u32 = 20;
/// The window of [`MAX_ENTRIES`]: a quarter hour.
pub const ENTRY_WINDOW_SECS: i64 = 900;
/// No vowels, no look-alikes: no words, no O/0 confusion (RFC 8628 §6.1).
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;

/// Where a device request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum State {
    /// Waiting for the person.
    Pending,
    /// The person allowed; the row names the account and the grant.
    Approved,
    /// The person denied.
    Denied,
    /// The device got its tokens (the row is consumed too).
    Redeemed,
}

/// The `data` of a device request's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Data {
    /// SHA-256 of the device code.
    device: String,
    state: State,
    /// When the approving account signed in, for the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
}

impl Data {
    /// The data of a device-code row; `None` for any other row.
    fn of(record: &CredentialRecord) -> Option<Data> {
        if record.kind != CredentialKind::DeviceCode {
            return None;
        }
        serde_json::from_str(&record.data).ok()
    }

    fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|err| Error::Internal(format!("device data: {err}")))
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

/// The user code of a device code (normalized: eight letters, no dash), or `None` in the rare
/// case the keyed digest has too few usable bytes; the caller then draws another device code.
fn user_code_of(pepper: &Pepper, device_code: &str) -> Option<String> {
    let mac = pepper.keyed_digest("device-code-user-code", device_code.as_bytes());
    // Rejection sampling over the digest's bytes: 240 is the largest multiple of 20 up to 256,
    // so every letter is equally likely.
    let limit = 256 - 256 % USER_CODE_ALPHABET.len();
    let letters: String = (0..mac.len() / 2)
        .filter_map(|i| u8::from_str_radix(&mac[2 * i..2 * i + 2], 16).ok())
        .filter(|byte| usize::from(*byte) < limit)
        .map(|byte| char::from(USER_CODE_ALPHABET[usize::from(byte) % USER_CODE_ALPHABET.len()]))
        .take(USER_CODE_LEN)
        .collect();
    (letters.len() == USER_CODE_LEN).then_some(letters)
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
    // A user code that is still in the store (20^8 codes) is rare; draw again a few times.
    for _ in 0..5 {
        let device_code = format!("AH-{}", tessera_crypto::random::token(ctx.rng.as_ref(), 32));
        let Some(user_code) = user_code_of(&ctx.pepper, &device_code) else { continue };
        let data =
            Data { device: token_digest(&device_code), state: State::Pending, auth_time: None };
        let mut record = CredentialRecord::new(
            user_code_digest(ctx, &user_code),
            CredentialKind::DeviceCode,
            now,
        );
        record.client_id = Some(client.id().to_owned());
        record.scopes = scope.clone();
        record.expires_at = Some(now + DEVICE_CODE_TTL_SECS);
        record.data = data.to_json()?;
        if ctx.store.credentials().insert_once(&record).await? {
            return Ok(Started {
                device_code,
                user_code: format!("{}-{}", &user_code[..4], &user_code[4..]),
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
    row: CredentialRecord,
}

/// What a check above [`MAX_ENTRIES`] answers, right code or wrong.
const TOO_MANY: &str = "Too many codes were entered. Try again later.";

/// Counts one check of a user code against the account's limit, then finds the pending request
/// behind it. The count comes first, in one atomic increment, and the check is refused above the
/// limit whether the code is right or not: parallel guesses cannot outrun the counter.
pub async fn lookup(ctx: &Ctx, account_id: &str, user_code: &str) -> Result<Option<Pending>> {
    let counter = format!("device-user-code:{account_id}");
    if ctx.store.counters().hit(&counter, ENTRY_WINDOW_SECS, ctx.now()).await? > MAX_ENTRIES {
        return Err(Error::Invalid(TOO_MANY.to_owned()));
    }
    find(ctx, user_code).await
}

async fn find(ctx: &Ctx, user_code: &str) -> Result<Option<Pending>> {
    let normalized = normalize_user_code(user_code);
    if normalized.len() != USER_CODE_LEN
        || !normalized.bytes().all(|b| USER_CODE_ALPHABET.contains(&b))
    {
        return Ok(None);
    }
    let digest = user_code_digest(ctx, &normalized);
    let Some(row) = ctx.store.credentials().find_live(&digest, ctx.now()).await? else {
        return Ok(None);
    };
    if Data::of(&row).is_none_or(|data| data.state != State::Pending) {
        return Ok(None);
    }
    let client_id = row.client_id.clone().unwrap_or_default();
    let Some(client) = super::clients::load(ctx, &client_id).await? else { return Ok(None) };
    let Some(project) = ctx.store.projects().get(&client.record.project_id).await? else {
        return Ok(None);
    };
    let requested: Vec<String> = crate::credentials::Scopes::parse(&row.scopes).to_vec();
    let scopes = services::resolve(ctx, &requested).await?;
    Ok(Some(Pending { client, project, scopes, row }))
}

/// What the device flow asks of the interaction flow: the account of the `/device` pages'
/// `authuser` (the first signed-in account when absent or unreadable).
pub fn asks(authuser: Option<&str>) -> Asks {
    let index = authuser.and_then(|it| it.parse::<usize>().ok()).unwrap_or(0);
    Asks { authuser: Some(index.to_string()), ..Asks::default() }
}

/// The signed-in account that enters codes and answers, or `None`: sign in first.
pub fn account<'a>(signed_in: &'a [SignedIn], asks: &Asks) -> Option<(usize, &'a SignedIn)> {
    match interaction::choose(signed_in, asks, Choosing::Fitting) {
        Choice::Account(index) => Some((index, &signed_in[index])),
        _ => None,
    }
}

impl Pending {
    /// The request as the interaction flow sees it: the person typed the code, so the consent page
    /// shows what the device gets every time; nothing is remembered.
    pub fn interaction(&self, asks: Asks) -> Request {
        Request {
            protocol: PROTOCOL,
            client_id: self.client.id().to_owned(),
            applicant: Applicant::Client {
                name: self.client.record.name.clone(),
                project: self.project.clone(),
            },
            scopes: self.scopes.clone(),
            asks,
            choosing: Choosing::Fitting,
            memory: Memory::Never,
        }
    }
}

/// What became of the person's answer.
#[derive(Debug, Clone)]
pub enum Answered {
    /// Recorded; the device hears it at its next poll.
    Recorded(Decision),
    /// The code is not pending any more (answered already, expired, or unknown).
    Gone,
    /// The flow needs something else first (the account signed out meanwhile).
    Step(Step),
}

/// Records the person's answer through the interaction flow (Allow records the grant) and moves
/// the request from pending to approved (naming the account and the grant) or denied, once. The
/// check of the user code counts as in [`lookup`].
pub async fn decide(
    ctx: &Ctx,
    signed_in: &[SignedIn],
    asks: &Asks,
    user_code: &str,
    decision: Decision,
    ip: &str,
) -> Result<Answered> {
    let Some((_, signed)) = account(signed_in, asks) else {
        return Ok(Answered::Step(Step::SignIn { another: !signed_in.is_empty() }));
    };
    let Some(pending) = lookup(ctx, &signed.account.id, user_code).await? else {
        return Ok(Answered::Gone);
    };
    let Some(mut data) = Data::of(&pending.row) else { return Ok(Answered::Gone) };
    let request = pending.interaction(asks.clone());
    let mut to = CredentialTransition {
        data: String::new(),
        account_id: None,
        grant_id: None,
        consume: false,
    };
    match interaction::decide(ctx, &request, signed_in, decision, ip).await? {
        Step::Approved(approved) => {
            data.state = State::Approved;
            data.auth_time = Some(approved.signed.session.auth_time);
            to.account_id = Some(approved.signed.account.id.clone());
            to.grant_id = Some(approved.grant.id);
        }
        Step::Refused(Refusal::Denied) => data.state = State::Denied,
        step => return Ok(Answered::Step(step)),
    }
    to.data = data.to_json()?;
    let moved = ctx
        .store
        .credentials()
        .transition(
            &pending.row.digest,
            CredentialKind::DeviceCode,
            &pending.row.data,
            &to,
            ctx.now(),
        )
        .await?;
    Ok(match moved {
        Some(_) => Answered::Recorded(decision),
        None => Answered::Gone,
    })
}

/// One poll from the device. `jkt` is the thumbprint of a checked DPoP proof's key: the tokens it
/// issues are bound to that key as for the other grants.
pub async fn poll(
    ctx: &Ctx,
    client: &Client,
    device_code: &str,
    jkt: Option<&str>,
) -> Outcome<Issued> {
    let unknown = || oauth(ErrorCode::InvalidGrant, "Unknown device code.");
    let used = || oauth(ErrorCode::InvalidGrant, "The device code was already used.");
    let Some(user_code) = user_code_of(&ctx.pepper, device_code) else { return Err(unknown()) };
    let Some(row) = ctx.store.credentials().get(&user_code_digest(ctx, &user_code)).await? else {
        return Err(unknown());
    };
    let device_digest = token_digest(device_code);
    let Some(data) =
        Data::of(&row).filter(|it| ct_eq(it.device.as_bytes(), device_digest.as_bytes()))
    else {
        return Err(unknown());
    };
    if row.client_id.as_deref() != Some(client.id()) {
        return Err(unknown());
    }
    let now = ctx.now();
    if row.consumed_at.is_some() || row.revoked_at.is_some() {
        return Err(used());
    }
    if row.expires_at.is_some_and(|at| at <= now) {
        return Err(oauth(ErrorCode::ExpiredToken, "The device code has expired."));
    }
    let polls = ctx
        .store
        .counters()
        .hit(&format!("device-poll:{device_digest}"), INTERVAL_SECS, now)
        .await?;
    let told = match data.state {
        State::Pending if polls > 1 => return Err(oauth(ErrorCode::SlowDown, "Poll less often.")),
        State::Pending => {
            return Err(oauth(ErrorCode::AuthorizationPending, "The person has not answered yet."));
        }
        State::Approved => Data { state: State::Redeemed, ..data.clone() },
        // The answer stays in the row; consuming it says the device heard it.
        State::Denied => data.clone(),
        State::Redeemed => return Err(used()),
    };
    let to = CredentialTransition {
        data: told.to_json()?,
        account_id: None,
        grant_id: None,
        consume: true,
    };
    let Some(row) = ctx
        .store
        .credentials()
        .transition(&row.digest, CredentialKind::DeviceCode, &row.data, &to, now)
        .await?
    else {
        return Err(used());
    };
    if data.state == State::Denied {
        return Err(oauth(ErrorCode::AccessDenied, "The person denied the request."));
    }
    let account_id = row.account_id.clone().unwrap_or_default();
    let Some(account) = ctx.store.accounts().get(&account_id).await? else {
        return Err(oauth(ErrorCode::InvalidGrant, "The account is not available."));
    };
    let grant_id = row.grant_id.clone().unwrap_or_default();
    let grant = ctx.store.grants().get(&grant_id).await?.filter(|it| it.revoked_at.is_none());
    let Some(grant) = grant.filter(|_| super::tokens::account_usable(&account)) else {
        return Err(oauth(ErrorCode::InvalidGrant, "Token has been expired or revoked."));
    };
    let scopes: Vec<String> = crate::credentials::Scopes::parse(&row.scopes).to_vec();
    let remembered = Remembered {
        offline: true,
        auth_time: data.auth_time,
        jkt: jkt.map(str::to_owned),
        ..Remembered::default()
    };
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

    #[test]
    fn user_codes_derive_from_device_codes_through_the_pepper() {
        let pepper = Pepper::from_bytes([7; 32]);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..500 {
            let code = user_code_of(&pepper, &format!("AH-{i}")).unwrap();
            assert_eq!(code.len(), USER_CODE_LEN);
            assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)), "{code}");
            assert_eq!(user_code_of(&pepper, &format!("AH-{i}")).as_ref(), Some(&code));
            seen.extend(code.bytes());
        }
        assert_eq!(seen.len(), USER_CODE_ALPHABET.len(), "every letter is drawn");
        let other = Pepper::from_bytes([8; 32]);
        assert_ne!(user_code_of(&pepper, "AH-x"), user_code_of(&other, "AH-x"));
    }

    #[test]
    fn device_data_is_typed_and_other_rows_are_not_read() {
        let data = Data { device: "d".into(), state: State::Approved, auth_time: Some(7) };
        let json = data.to_json().unwrap();
        assert_eq!(json, r#"{"device":"d","state":"approved","auth_time":7}"#);
        let mut row = CredentialRecord::new("x".into(), CredentialKind::DeviceCode, 0);
        row.data = json;
        assert_eq!(Data::of(&row), Some(data));
        row.kind = CredentialKind::AuthorizationCode;
        assert_eq!(Data::of(&row), None);
        row.kind = CredentialKind::DeviceCode;
        row.data = r#"{"role":"device"}"#.into();
        assert_eq!(Data::of(&row), None);
    }
}
