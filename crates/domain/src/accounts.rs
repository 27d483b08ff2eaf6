//! Accounts: create, disable, delete, re-enable, passwords with transparent re-hash, profile.

use serde_json::json;
use tessera_store::{AccountRecord, AccountState, CredentialKind, DomainRecord};

use crate::audit::{self, Actor};
use crate::{Ctx, Error, Result};

/// What a new account starts with.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub email: String,
    pub name: String,
    pub domain: Option<String>,
    pub password: Option<String>,
    pub is_admin: bool,
    pub state: AccountState,
}

/// Checks an email address's shape and returns it trimmed, with its domain part lowercased.
pub fn normalize_email(input: &str) -> Result<String> {
    let email = input.trim();
    let invalid = || Error::Invalid("Enter a valid email address.".to_owned());
    if email.is_empty() || email.len() > 254 {
        return Err(invalid());
    }
    let Some((local, domain)) = email.rsplit_once('@') else { return Err(invalid()) };
    if local.is_empty() || local.len() > 64 || domain.is_empty() || local.contains('@') {
        return Err(invalid());
    }
    let allowed_local = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    if !local.chars().all(allowed_local)
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return Err(invalid());
    }
    let domain = normalize_domain(domain).map_err(|_| invalid())?;
    Ok(format!("{local}@{domain}"))
}

/// Checks a DNS domain name's shape and lowercases it.
pub fn normalize_domain(input: &str) -> Result<String> {
    let domain = input.trim().to_ascii_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if domain.is_empty() || domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err(Error::Invalid("Enter a valid domain name.".to_owned()));
    }
    Ok(domain)
}

/// The stable, opaque, numeric public id of an account (`sub`, `obfuscatedid`): never the email.
pub fn subject(account_id: &str) -> String {
    let digest =
        tessera_crypto::digest::sha256_hex(format!("tessera subject v1:{account_id}").as_bytes());
    let mut n: u128 = 0;
    for c in digest[..30].chars() {
        n = n.wrapping_mul(16).wrapping_add(u128::from(c.to_digit(16).unwrap_or(0)));
    }
    format!("1{:020}", n % 100_000_000_000_000_000_000)
}

pub fn check_password_policy(ctx: &Ctx, password: &str) -> Result<()> {
    let n_chars = password.chars().count();
    if n_chars < ctx.policy.min_password_len {
        return Err(Error::Invalid(format!(
            "Use at least {} characters.",
            ctx.policy.min_password_len
        )));
    }
    if password.len() > 1024 {
        return Err(Error::Invalid("That password is too long.".to_owned()));
    }
    Ok(())
}

pub async fn create(ctx: &Ctx, new: NewAccount, actor: &Actor, ip: &str) -> Result<AccountRecord> {
    let email = normalize_email(&new.email)?;
    let name = new.name.trim();
    if name.chars().count() > 200 {
        return Err(Error::Invalid("That name is too long.".to_owned()));
    }
    let domain = match new.domain.as_deref() {
        Some(domain) => {
            let domain = normalize_domain(domain)?;
            if ctx.store.domains().get(&domain).await?.is_none() {
                return Err(Error::Invalid(format!("The domain {domain} is not registered.")));
            }
            if !email.ends_with(&format!("@{domain}")) {
                return Err(Error::Invalid(
                    "The email address must be in the account's domain.".to_owned(),
                ));
            }
            Some(domain)
        }
        None => None,
    };
    let password_hash = match new.password {
        Some(password) => {
            check_password_policy(ctx, &password)?;
            let rng = ctx.rng.clone();
            Some(
                ctx.hash_work(move |hasher| hasher.hash(rng.as_ref(), &password))
                    .await?
                    .map_err(|err| Error::Internal(err.to_string()))?,
            )
        }
        None => None,
    };
    let now = ctx.now();
    let account = AccountRecord {
        id: ctx.new_id(),
        email,
        name: name.to_owned(),
        domain,
        password_hash,
        state: new.state,
        is_admin: new.is_admin,
        totp_secret_enc: None,
        totp_last_step: None,
        created_at: now,
        updated_at: now,
    };
    match ctx.store.accounts().create(&account).await {
        Ok(()) => (),
        Err(tessera_store::StoreError::Conflict(_)) => {
            return Err(Error::Conflict("An account with that email already exists.".to_owned()));
        }
        Err(err) => return Err(err.into()),
    }
    audit::record(
        ctx,
        "account.create",
        Some(&account.id),
        actor,
        ip,
        json!({"admin": account.is_admin}),
    )
    .await?;
    Ok(account)
}

pub async fn get(ctx: &Ctx, id: &str) -> Result<AccountRecord> {
    ctx.store.accounts().get(id).await?.ok_or(Error::NotFound)
}

pub async fn find_by_email(ctx: &Ctx, email: &str) -> Result<AccountRecord> {
    let email = normalize_email(email).map_err(|_| Error::NotFound)?;
    ctx.store.accounts().find_by_email(&email).await?.ok_or(Error::NotFound)
}

pub async fn list(ctx: &Ctx, offset: u32, limit: u32) -> Result<Vec<AccountRecord>> {
    Ok(ctx.store.accounts().list(offset, limit.clamp(1, 10_000)).await?)
}

/// Moves an account to `state`. Disabling or deleting also ends every session it has.
pub async fn set_state(
    ctx: &Ctx,
    account: &AccountRecord,
    state: AccountState,
    actor: &Actor,
    ip: &str,
) -> Result<()> {
    let now = ctx.now();
    ctx.store.accounts().set_state(&account.id, state, now).await?;
    if matches!(state, AccountState::Disabled | AccountState::Deleted) {
        ctx.store.sessions().revoke_all_for_account(&account.id, now).await?;
    }
    let event = match state {
        AccountState::Active => "account.enable",
        AccountState::Disabled => "account.disable",
        AccountState::Deleted => "account.delete",
        AccountState::EmailUnverified | AccountState::MustAcceptTerms => "account.state",
    };
    audit::record(ctx, event, Some(&account.id), actor, ip, json!({"state": state.as_str()})).await
}

pub async fn set_name(
    ctx: &Ctx,
    account: &AccountRecord,
    name: &str,
    actor: &Actor,
    ip: &str,
) -> Result<()> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Error::Invalid("Enter a name of 1 to 200 characters.".to_owned()));
    }
    ctx.store.accounts().set_name(&account.id, name, ctx.now()).await?;
    audit::record(ctx, "profile.change", Some(&account.id), actor, ip, json!({})).await
}

pub async fn set_admin(
    ctx: &Ctx,
    account: &AccountRecord,
    admin: bool,
    actor: &Actor,
    ip: &str,
) -> Result<()> {
    ctx.store.accounts().set_admin(&account.id, admin, ctx.now()).await?;
    audit::record(ctx, "account.admin", Some(&account.id), actor, ip, json!({"admin": admin})).await
}

/// The credentials a password made, which a password change revokes: whoever knew the old
/// password must not stay in through them. (OAuth grants do not depend on the password.)
pub const PASSWORD_DERIVED: [CredentialKind; 6] = [
    CredentialKind::AppPassword,
    CredentialKind::ClientLoginSid,
    CredentialKind::ClientLoginLsid,
    CredentialKind::ClientLoginAuth,
    CredentialKind::MasterToken,
    CredentialKind::DeviceSetupToken,
];

/// The credentials that keep the account signed in somewhere, which "sign out everywhere" revokes
/// besides sessions and devices. App passwords stay: they are passwords the person made and
/// revokes one by one, not sign-ins.
pub const SIGNED_IN_ELSEWHERE: [CredentialKind; 7] = [
    CredentialKind::ClientLoginSid,
    CredentialKind::ClientLoginLsid,
    CredentialKind::ClientLoginAuth,
    CredentialKind::MasterToken,
    CredentialKind::DeviceSetupToken,
    CredentialKind::Ubertoken,
    CredentialKind::ServiceAuth,
];

/// What [`end_sign_ins`] revoked, for the audit line.
struct Ended {
    sessions: u64,
    credentials: u64,
    devices: u64,
    apps: u64,
}

/// Ends the account's sign-ins, the one path of a password change and of "sign out everywhere":
/// first every device grant (so a token minted meanwhile through a device is born dead), then the
/// live credentials of `kinds`, then every browser session but `keep_session`, and with
/// `remove_apps` every remaining grant (connected apps).
async fn end_sign_ins(
    ctx: &Ctx,
    account_id: &str,
    kinds: &[CredentialKind],
    keep_session: Option<&str>,
    remove_apps: bool,
) -> Result<Ended> {
    let devices = crate::device::revoke_all(ctx, account_id).await?;
    let now = ctx.now();
    let credentials = ctx.store.credentials().revoke_by_account(account_id, kinds, now).await?;
    let mut sessions = 0;
    for session in ctx.store.sessions().list_live_by_account(account_id, now).await? {
        if Some(session.id.as_str()) != keep_session
            && ctx.store.sessions().revoke(&session.id, now).await?
        {
            sessions += 1;
        }
    }
    let mut apps = 0;
    if remove_apps {
        for grant in ctx.store.grants().list_by_account(account_id).await? {
            if grant.revoked_at.is_none() && ctx.store.grants().revoke(&grant.id, now).await? {
                apps += 1;
            }
        }
    }
    Ok(Ended { sessions, credentials, devices, apps })
}

/// Sets a new password (a change or an administrator's reset). Every other session of the account
/// is signed out, every device and every password-derived credential revoked
/// ([`PASSWORD_DERIVED`]); with `remove_apps`, every grant (connected app) is revoked too.
pub async fn set_password(
    ctx: &Ctx,
    account: &AccountRecord,
    password: String,
    keep_session: Option<&str>,
    remove_apps: bool,
    actor: &Actor,
    ip: &str,
) -> Result<()> {
    check_password_policy(ctx, &password)?;
    let rng = ctx.rng.clone();
    let hash = ctx
        .hash_work(move |hasher| hasher.hash(rng.as_ref(), &password))
        .await?
        .map_err(|err| Error::Internal(err.to_string()))?;
    let now = ctx.now();
    ctx.store.accounts().set_password_hash(&account.id, Some(&hash), now).await?;
    let ended =
        end_sign_ins(ctx, &account.id, &PASSWORD_DERIVED, keep_session, remove_apps).await?;
    if let Some(session) = keep_session {
        // The password was just entered in this session.
        ctx.store.sessions().reauthenticated(session, now).await?;
    }
    audit::record(
        ctx,
        "password.change",
        Some(&account.id),
        actor,
        ip,
        json!({ "revoked_credentials": ended.credentials, "removed_apps": ended.apps, "devices": ended.devices }),
    )
    .await
}

/// "Sign out everywhere": every browser session (this one too), every device and what it minted,
/// every ClientLogin and web sign-on credential ([`SIGNED_IN_ELSEWHERE`]); with `remove_apps`,
/// every connected app as well. The caller has confirmed the password
/// (`password::confirm_recent`).
pub async fn sign_out_everywhere(
    ctx: &Ctx,
    account: &AccountRecord,
    remove_apps: bool,
    actor: &Actor,
    ip: &str,
) -> Result<()> {
    let ended = end_sign_ins(ctx, &account.id, &SIGNED_IN_ELSEWHERE, None, remove_apps).await?;
    audit::record(
        ctx,
        "signout.everywhere",
        Some(&account.id),
        actor,
        ip,
        json!({ "sessions": ended.sessions, "revoked_credentials": ended.credentials, "removed_apps": ended.apps, "devices": ended.devices }),
    )
    .await
}

pub async fn add_domain(ctx: &Ctx, name: &str, actor: &Actor) -> Result<DomainRecord> {
    let name = normalize_domain(name)?;
    let record = DomainRecord { name: name.clone(), created_at: ctx.now() };
    ctx.store.domains().add(&record).await.map_err(|err| match err {
        tessera_store::StoreError::Conflict(_) => {
            Error::Conflict(format!("The domain {name} already exists."))
        }
        other => other.into(),
    })?;
    audit::record(ctx, "domain.add", None, actor, "", json!({"domain": name})).await?;
    Ok(record)
}

pub async fn list_domains(ctx: &Ctx) -> Result<Vec<DomainRecord>> {
    Ok(ctx.store.domains().list().await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails() {
        assert_eq!(normalize_email(" Alice@Example.COM ").unwrap(), "Alice@example.com");
        for bad in
            ["", "a", "@x.y", "a@", "a@@b.c", "a b@c.d", "a@b..c", ".a@b.c", "a@-b.c", "a\n@b.c"]
        {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn normalize_email_never_panics_and_is_idempotent(s in "\\PC{0,80}") {
            if let Ok(email) = normalize_email(&s) {
                prop_assert_eq!(normalize_email(&email).unwrap(), email);
            }
        }
    }
}
