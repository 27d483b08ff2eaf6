//! Grants: an account allowed a client some scopes. Every protocol creates them here, the account
//! page lists them as connected apps, and one revocation kills every credential derived from one.

use serde_json::json;
use tessera_store::GrantRecord;

use crate::audit::{self, Actor};
use crate::credentials::{Protocol, Scopes};
use crate::{Ctx, Error, Result};

/// Sorted, de-duplicated, space-separated (the store's form of [`Scopes`]).
pub fn normalize_scopes<'a>(scopes: impl IntoIterator<Item = &'a str>) -> String {
    Scopes::from_names(scopes).joined()
}

/// Records (or widens) the grant of `scopes` to `client_id` by this account through `protocol`.
pub async fn grant(
    ctx: &Ctx,
    account_id: &str,
    client_id: &str,
    protocol: Protocol,
    scopes: &[String],
    ip: &str,
) -> Result<GrantRecord> {
    match to_give(ctx, account_id, client_id, protocol, scopes).await? {
        Giving::Held(live) => Ok(live),
        Giving::New(record) => {
            let stored = ctx.store.grants().upsert(&record).await?;
            given(ctx, &stored, ip).await?;
            Ok(stored)
        }
    }
}

/// What giving some scopes takes.
#[derive(Debug, Clone)]
pub enum Giving {
    /// The live grant already holds them: nothing to record.
    Held(GrantRecord),
    /// The grant to upsert (a new one, or the widening of the live one).
    New(GrantRecord),
}

/// Whether this account's live grant to `client_id` through `protocol` holds `scopes`, or the
/// record that gives them. A flow that must give the grant only if something else succeeds (a
/// migration, in the transaction that consumes the legacy credential) stores it there, then
/// calls [`given`].
pub async fn to_give(
    ctx: &Ctx,
    account_id: &str,
    client_id: &str,
    protocol: Protocol,
    scopes: &[String],
) -> Result<Giving> {
    let now = ctx.now();
    // Asked again for what it already holds (an app signing its user in once more): nothing to
    // record, and no audit line saying that access was given.
    if let Some(live) = find_live(ctx, account_id, client_id, protocol).await?
        && scopes.iter().all(|scope| Scopes::parse(&live.scopes).contains(scope))
    {
        return Ok(Giving::Held(live));
    }
    Ok(Giving::New(GrantRecord {
        id: ctx.new_id(),
        account_id: account_id.to_owned(),
        client_id: client_id.to_owned(),
        protocol: protocol.as_str().to_owned(),
        scopes: normalize_scopes(scopes.iter().map(String::as_str)),
        created_at: now,
        last_used_at: Some(now),
        revoked_at: None,
    }))
}

/// Audits a grant as stored by an upsert of a [`Giving::New`] record.
pub async fn given(ctx: &Ctx, stored: &GrantRecord, ip: &str) -> Result<()> {
    let details = json!({
        "grant": stored.id,
        "client": stored.client_id,
        "protocol": stored.protocol,
        "scopes": stored.scopes,
    });
    audit::record(ctx, "grant.create", Some(&stored.account_id), &Actor::Account, ip, details).await
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
    protocol: Protocol,
) -> Result<Option<GrantRecord>> {
    let grants = ctx.store.grants().list_by_account(account_id).await?;
    Ok(grants.into_iter().find(|it| {
        it.revoked_at.is_none() && it.client_id == client_id && it.protocol == protocol.as_str()
    }))
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
    // Devices have a section of their own (`device::devices`).
    for grant in grants
        .into_iter()
        .filter(|it| it.revoked_at.is_none() && it.protocol != Protocol::Device.as_str())
    {
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

#[cfg(test)]
mod tests {
    use tessera_store::{AuditFilter, CredentialKind, CredentialRecord};

    use super::*;
    use crate::testing::TestCtx;

    const CLIENT: &str = "123-test.apps.tessera";

    /// The account grants `scopes` to the test client through `protocol`.
    async fn give(
        t: &TestCtx,
        account_id: &str,
        protocol: Protocol,
        scopes: &[&str],
    ) -> GrantRecord {
        let scopes: Vec<String> = scopes.iter().map(|it| (*it).to_owned()).collect();
        grant(&t.ctx, account_id, CLIENT, protocol, &scopes, "").await.unwrap()
    }

    async fn audit_events(t: &TestCtx, event: &str) -> usize {
        let filter = AuditFilter { account_id: None, since: None, limit: 1000 };
        let events = t.ctx.store.audit().list(&filter).await.unwrap();
        events.iter().filter(|it| it.event == event).count()
    }

    #[test]
    fn scopes_are_sorted_and_deduplicated() {
        assert_eq!(normalize_scopes(["email", "openid", "", "email"]), "email openid");
        assert_eq!(normalize_scopes([]), "");
    }

    #[tokio::test]
    async fn asking_again_for_held_scopes_records_nothing() {
        let t = TestCtx::new().await;
        let alice = t.account("alice@example.test").create().await;
        let first = give(&t, alice.id(), Protocol::OAuth2, &["openid", "email"]).await;
        assert_eq!(first.scopes, "email openid");
        assert_eq!(audit_events(&t, "grant.create").await, 1);
        t.advance(60);
        let again = give(&t, alice.id(), Protocol::OAuth2, &["email"]).await;
        assert_eq!(again.id, first.id);
        assert_eq!(again.scopes, "email openid");
        assert_eq!(audit_events(&t, "grant.create").await, 1, "no second audit line");
    }

    #[tokio::test]
    async fn a_wider_ask_widens_the_live_grant() {
        let t = TestCtx::new().await;
        let alice = t.account("alice@example.test").create().await;
        let first = give(&t, alice.id(), Protocol::OAuth2, &["openid"]).await;
        let wider = give(&t, alice.id(), Protocol::OAuth2, &["profile", "email"]).await;
        assert_eq!(wider.id, first.id, "one grant per account, client and protocol");
        assert_eq!(wider.scopes, "email openid profile", "the union, not the last ask");
        let live = find_live(&t.ctx, alice.id(), CLIENT, Protocol::OAuth2).await.unwrap().unwrap();
        assert_eq!(live.scopes, "email openid profile");
        // Another protocol's grant to the same client is its own.
        let legacy = give(&t, alice.id(), Protocol::AuthSub, &["feeds"]).await;
        assert_ne!(legacy.id, first.id);
        assert_eq!(audit_events(&t, "grant.create").await, 3);
    }

    #[tokio::test]
    async fn revoking_kills_every_credential_of_the_grant_and_only_the_owner_may() {
        let t = TestCtx::new().await;
        let alice = t.account("alice@example.test").create().await;
        let mallory = t.account("mallory@example.test").create().await;
        let g = give(&t, alice.id(), Protocol::OAuth2, &["email"]).await;
        let mut digests = Vec::new();
        for kind in [CredentialKind::AccessToken, CredentialKind::RefreshToken] {
            let (_, digest) = t.ctx.new_token();
            let mut credential = CredentialRecord::new(digest.clone(), kind, t.now());
            credential.account_id = Some(alice.id().to_owned());
            credential.grant_id = Some(g.id.clone());
            credential.client_id = Some(CLIENT.to_owned());
            t.ctx.store.credentials().insert(&credential).await.unwrap();
            digests.push(digest);
        }
        let not_hers = revoke(&t.ctx, mallory.id(), &g.id, &Actor::Account, "").await;
        assert!(matches!(not_hers, Err(Error::NotFound)), "{not_hers:?}");
        assert!(find_live(&t.ctx, alice.id(), CLIENT, Protocol::OAuth2).await.unwrap().is_some());

        t.advance(10);
        revoke(&t.ctx, alice.id(), &g.id, &Actor::Account, "").await.unwrap();
        for digest in &digests {
            let live = t.ctx.store.credentials().find_live(digest, t.now()).await.unwrap();
            assert!(live.is_none(), "a credential of a revoked grant works no more");
        }
        assert!(find_live(&t.ctx, alice.id(), CLIENT, Protocol::OAuth2).await.unwrap().is_none());
        assert!(connected(&t.ctx, alice.id()).await.unwrap().is_empty());
        assert_eq!(audit_events(&t, "grant.revoke").await, 1);
        // Asking again after a revocation starts a new grant.
        let fresh = give(&t, alice.id(), Protocol::OAuth2, &["email"]).await;
        assert_ne!(fresh.id, g.id);
    }

    #[tokio::test]
    async fn touch_writes_at_most_once_per_interval() {
        let t = TestCtx::new().await;
        let alice = t.account("alice@example.test").create().await;
        let g = give(&t, alice.id(), Protocol::OAuth2, &["email"]).await;
        t.advance(TOUCH_AFTER_SECS - 1);
        touch(&t.ctx, &g).await.unwrap();
        let stored = t.ctx.store.grants().get(&g.id).await.unwrap().unwrap();
        assert_eq!(stored.last_used_at, g.last_used_at, "too soon to write");
        t.advance(1);
        touch(&t.ctx, &g).await.unwrap();
        let stored = t.ctx.store.grants().get(&g.id).await.unwrap().unwrap();
        assert_eq!(stored.last_used_at, Some(t.now()));
    }
}
