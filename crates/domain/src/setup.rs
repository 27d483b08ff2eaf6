//! First run: while no administrator exists, a one-time link lets the operator create one.

use serde_json::json;
use tessera_store::{AccountState, CredentialKind, CredentialRecord};

use crate::accounts::{self, NewAccount};
use crate::audit::Actor;
use crate::{Ctx, Error, Result};

/// A fresh setup link when there is no administrator yet.
pub async fn link_if_needed(ctx: &Ctx) -> Result<Option<String>> {
    if ctx.store.accounts().count_admins().await? > 0 {
        return Ok(None);
    }
    let (token, digest) = ctx.new_token();
    let now = ctx.now();
    let mut record = CredentialRecord::new(digest, CredentialKind::Setup, now);
    record.expires_at = Some(now + ctx.policy.setup_ttl_secs);
    ctx.store.credentials().insert(&record).await?;
    Ok(Some(format!("{}/setup?token={token}", ctx.public_url)))
}

/// Whether a setup token is still good (for showing the form).
pub async fn token_is_live(ctx: &Ctx, token: &str) -> Result<bool> {
    if token.len() > 100 {
        return Ok(false);
    }
    let digest = tessera_crypto::digest::token_digest(token);
    let record = ctx.store.credentials().find_live(&digest, ctx.now()).await?;
    Ok(record.is_some_and(|it| it.kind == CredentialKind::Setup))
}

/// Uses the link (once) to create the first administrator.
pub async fn complete(
    ctx: &Ctx,
    token: &str,
    email: &str,
    name: &str,
    password: String,
    ip: &str,
) -> Result<()> {
    accounts::normalize_email(email)?;
    accounts::check_password_policy(ctx, &password)?;
    let digest = tessera_crypto::digest::token_digest(token);
    if token.len() > 100
        || ctx
            .store
            .credentials()
            .consume(&digest, CredentialKind::Setup, ctx.now())
            .await?
            .is_none()
    {
        return Err(Error::Invalid("This setup link has expired or was already used.".to_owned()));
    }
    let new = NewAccount {
        email: email.to_owned(),
        name: name.to_owned(),
        domain: None,
        password: Some(password),
        is_admin: true,
        state: AccountState::Active,
    };
    let account = accounts::create(ctx, new, &Actor::System, ip).await?;
    crate::audit::record(ctx, "setup.admin", Some(&account.id), &Actor::System, ip, json!({})).await
}
