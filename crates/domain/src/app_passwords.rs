//! App-specific passwords: 16 random lowercase letters, shown once, named, listed with their last
//! use, revocable. They stand in for the password where a protocol cannot ask for a 2-step code.

use serde_json::json;
use tessera_store::{AccountRecord, CredentialKind, CredentialRecord};

use crate::audit::{self, Actor};
use crate::credentials::AppPasswordData;
use crate::{Ctx, Error, Result};

pub(crate) const LEN: usize = 16;

/// One app password as the account page lists it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The stored digest; identifies the entry for revocation and is no secret.
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

pub(crate) fn digest(ctx: &Ctx, letters: &str) -> String {
    ctx.pepper.keyed_digest("app-password", letters.as_bytes())
}

/// Creates one and returns it for display, in four groups of four letters.
pub async fn create(ctx: &Ctx, account: &AccountRecord, name: &str, ip: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::Invalid("Name the app password (up to 100 characters).".to_owned()));
    }
    let letters = tessera_crypto::random::lower_letters(ctx.rng.as_ref(), LEN);
    let now = ctx.now();
    let mut record = CredentialRecord::new(digest(ctx, &letters), CredentialKind::AppPassword, now);
    record.account_id = Some(account.id.clone());
    record.data = crate::credentials::encode(&AppPasswordData { name: name.to_owned() })?;
    ctx.store.credentials().insert(&record).await?;
    audit::record(
        ctx,
        "app_password.create",
        Some(&account.id),
        &Actor::Account,
        ip,
        json!({ "name": name }),
    )
    .await?;
    let groups: Vec<&str> = (0..LEN).step_by(4).map(|i| &letters[i..i + 4]).collect();
    Ok(groups.join(" "))
}

pub async fn list(ctx: &Ctx, account_id: &str) -> Result<Vec<Listed>> {
    let records = ctx
        .store
        .credentials()
        .list_live_by_account(account_id, CredentialKind::AppPassword, ctx.now())
        .await?;
    Ok(records
        .into_iter()
        .map(|it| {
            let data: AppPasswordData = crate::credentials::data(&it);
            Listed {
                id: it.digest,
                name: data.name,
                created_at: it.created_at,
                last_used_at: it.last_used_at,
            }
        })
        .collect())
}

pub async fn revoke(ctx: &Ctx, account_id: &str, id: &str, ip: &str) -> Result<()> {
    let listed = list(ctx, account_id).await?;
    let Some(entry) = listed.iter().find(|it| it.id == id) else { return Err(Error::NotFound) };
    ctx.store.credentials().revoke(&entry.id, ctx.now()).await?;
    audit::record(
        ctx,
        "app_password.revoke",
        Some(account_id),
        &Actor::Account,
        ip,
        json!({ "name": entry.name }),
    )
    .await
}
