//! Grants: an account allowed a client some scopes. Every protocol creates them here, the account
//! page lists them as connected apps, and one revocation kills every credential derived from one.

use serde_json::json;
use tessera_store::GrantRecord;

use crate::audit::{self, Actor};
use crate::{Ctx, Error, Result};

/// Sorted, de-duplicated, space-separated.
pub fn normalize_scopes<'a>(scopes: impl IntoIterator<Item = &'a str>) -> String {
    let mut scopes: Vec<&str> = scopes.into_iter().filter(|it| !it.is_empty()).collect();
    scopes.sort_unstable();
    scopes.dedup();
    scopes.join(" ")
}

/// Records (or widens) the grant of `scopes` to `client_id` by this account through `protocol`.
pub async fn grant(
    ctx: &Ctx,
    account_id: &str,
    client_id: &str,
    protocol: &str,
    scopes: &[String],
    ip: &str,
) -> Result<GrantRecord> {
    let now = ctx.now();
    // Asked again for what it already holds (an app signing its user in once more): nothing to
    // record, and no audit line saying that access was given.
    if let Some(live) = find_live(ctx, account_id, client_id, protocol).await?
        && scopes.iter().all(|scope| live.scopes.split(' ').any(|held| held == scope))
    {
        return Ok(live);
    }
    let record = GrantRecord {
        id: ctx.new_id(),
        account_id: account_id.to_owned(),
        client_id: client_id.to_owned(),
        protocol: protocol.to_owned(),
        scopes: normalize_scopes(scopes.iter().map(String::as_str)),
        created_at: now,
        last_used_at: Some(now),
        revoked_at: None,
    };
    let stored = ctx.store.grants().upsert(&record).await?;
    audit::record(ctx, "grant.create", Some(account_id), &Actor::Account, ip, json!({ "grant": stored.id, "client": client_id, "protocol": protocol, "scopes": stored.scopes }))
        .await?;
    Ok(stored)
}

/// How stale a grant's "last used" time may get before a use writes it again.
pub const TOUCH_AFTER_SECS: i64 = 300;

/// Records that the grant was just used, at most once per [`TOUCH_AFTER_SECS`]: the account
/// page shows the day, and a write per token would serialise every token endpoint on it.
pub async fn touch(ctx: &Ctx, grant: &GrantRecord) -> Result<()> {
    let now = ctx.now();
    if grant.last_used_at.is_none_or(|at| now - at >= TOUCH_AFTER_SECS) {
        ctx.store.grants().touch(&grant.id, now).await?;
    }
    Ok(())
}

/// The live grant of this account to this client through this protocol, if any.
pub async fn find_live(
    ctx: &Ctx,
    account_id: &str,
    client_id: &str,
    protocol: &str,
) -> Result<Option<GrantRecord>> {
    let grants = ctx.store.grants().list_by_account(account_id).await?;
    Ok(grants
        .into_iter()
        .find(|it| it.revoked_at.is_none() && it.client_id == client_id && it.protocol == protocol))
}

/// One line of the account page's "connected apps".
#[derive(Debug, Clone)]
pub struct ConnectedApp {
    pub grant: GrantRecord,
    /// The registered name, or the client id when the client is not registered.
    pub name: String,
    pub registered: bool,
}

pub async fn connected(ctx: &Ctx, account_id: &str) -> Result<Vec<ConnectedApp>> {
    let grants = ctx.store.grants().list_by_account(account_id).await?;
    let mut out = Vec::new();
    for grant in grants.into_iter().filter(|it| it.revoked_at.is_none()) {
        let client = ctx.store.projects().get_client(&grant.client_id).await?;
        let (name, registered) = match client {
            Some(client) => (client.name, true),
            None => (grant.client_id.clone(), false),
        };
        out.push(ConnectedApp { grant, name, registered });
    }
    Ok(out)
}

/// Revokes one of the account's grants and every credential derived from it.
pub async fn revoke(
    ctx: &Ctx,
    account_id: &str,
    grant_id: &str,
    actor: &Actor,
    ip: &str,
) -> Result<()> {
    let grant = ctx.store.grants().get(grant_id).await?.ok_or(Error::NotFound)?;
    if grant.account_id != account_id {
        return Err(Error::NotFound);
    }
    ctx.store.grants().revoke(grant_id, ctx.now()).await?;
    audit::record(
        ctx,
        "grant.revoke",
        Some(account_id),
        actor,
        ip,
        json!({ "grant": grant_id, "client": grant.client_id, "protocol": grant.protocol }),
    )
    .await
}
