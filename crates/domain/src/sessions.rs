//! Browser sessions. One cookie holds the session tokens of every account signed in in that browser,
//! in `authuser` order; each token is a `session` credential of its own session row.

use serde_json::json;
use tessera_store::{AccountRecord, AccountState, CredentialKind, CredentialRecord, SessionRecord};

use crate::audit::{self, Actor};
use crate::{Ctx, Error, Result};

/// Separates the tokens in the browser cookie; never part of a token.
pub const COOKIE_SEPARATOR: char = '.';

/// One account signed in in this browser.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub token: String,
    pub session: SessionRecord,
    pub account: AccountRecord,
}

/// The accounts a browser cookie signs in, in `authuser` order. Dead or unknown tokens are dropped.
pub async fn load(ctx: &Ctx, cookie: &str) -> Result<Vec<SignedIn>> {
    let now = ctx.now();
    let mut out: Vec<SignedIn> = Vec::new();
    for token in cookie.split(COOKIE_SEPARATOR).take(ctx.policy.max_accounts_per_browser) {
        if !is_token_shaped(token) {
            continue;
        }
        let digest = tessera_crypto::digest::token_digest(token);
        let Some((session, account)) = crate::answers::find_signed_in(ctx, &digest).await? else {
            continue;
        };
        if out.iter().any(|it| it.account.id == session.account_id) {
            continue;
        }
        if !matches!(
            account.state,
            AccountState::Active | AccountState::EmailUnverified | AccountState::MustAcceptTerms
        ) {
            continue;
        }
        if now - session.last_seen_at > 300 {
            ctx.store.sessions().touch(&session.id, now).await?;
        }
        out.push(SignedIn { token: token.to_owned(), session, account });
    }
    Ok(out)
}

fn is_token_shaped(token: &str) -> bool {
    (20..=100).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The cookie value for these tokens.
pub fn cookie_value<'a>(tokens: impl IntoIterator<Item = &'a str>) -> String {
    tokens.into_iter().collect::<Vec<_>>().join(&COOKIE_SEPARATOR.to_string())
}

/// Client facts recorded with a session.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
}

/// Starts a session for an account that has just proved who it is.
pub async fn create(
    ctx: &Ctx,
    account: &AccountRecord,
    persistent: bool,
    second_factor: bool,
    client: &ClientInfo,
) -> Result<(String, SessionRecord)> {
    let now = ctx.now();
    let ttl = if persistent {
        ctx.policy.persistent_session_ttl_secs
    } else {
        ctx.policy.session_ttl_secs
    };
    let session = SessionRecord {
        id: ctx.new_id(),
        account_id: account.id.clone(),
        created_at: now,
        auth_time: now,
        last_seen_at: now,
        expires_at: now + ttl,
        revoked_at: None,
        persistent,
        second_factor,
        user_agent: client.user_agent.chars().take(300).collect(),
        ip: client.ip.clone(),
    };
    let (token, digest) = ctx.new_token();
    let mut cookie = CredentialRecord::new(digest, CredentialKind::Session, now);
    cookie.account_id = Some(account.id.clone());
    cookie.session_id = Some(session.id.clone());
    cookie.expires_at = Some(session.expires_at);
    ctx.store.sessions().create(&session, &cookie).await?;
    Ok((token, session))
}

/// Gives every session in the browser a fresh token (the old ones stop working), so that a token
/// planted before a sign-in is useless after it.
pub async fn rotate(ctx: &Ctx, signed_in: &[SignedIn]) -> Result<Vec<String>> {
    let now = ctx.now();
    let mut tokens = Vec::with_capacity(signed_in.len());
    for it in signed_in {
        let (token, digest) = ctx.new_token();
        let mut cookie = CredentialRecord::new(digest, CredentialKind::Session, now);
        cookie.account_id = Some(it.account.id.clone());
        cookie.session_id = Some(it.session.id.clone());
        cookie.expires_at = Some(it.session.expires_at);
        let old_digest = tessera_crypto::digest::token_digest(&it.token);
        if ctx.store.sessions().rotate_cookie(&old_digest, &cookie, now).await? {
            tokens.push(token);
        }
    }
    Ok(tokens)
}

pub async fn list_for_account(ctx: &Ctx, account_id: &str) -> Result<Vec<SessionRecord>> {
    Ok(ctx.store.sessions().list_live_by_account(account_id, ctx.now()).await?)
}

/// Ends one of the account's sessions and every credential derived from it.
pub async fn revoke(
    ctx: &Ctx,
    account_id: &str,
    session_id: &str,
    actor: &Actor,
    ip: &str,
) -> Result<()> {
    let session = ctx.store.sessions().get(session_id).await?.ok_or(Error::NotFound)?;
    if session.account_id != account_id {
        return Err(Error::NotFound);
    }
    ctx.store.sessions().revoke(session_id, ctx.now()).await?;
    audit::record(
        ctx,
        "session.revoke",
        Some(account_id),
        actor,
        ip,
        json!({"session": session_id}),
    )
    .await
}

/// Ends a session that a new sign-in of the same account in the same browser replaces (the new
/// sign-in is the audited event).
pub async fn replace(ctx: &Ctx, session_id: &str) -> Result<()> {
    ctx.store.sessions().revoke(session_id, ctx.now()).await?;
    Ok(())
}

/// Signs a browser out of every account it holds.
pub async fn sign_out(ctx: &Ctx, signed_in: &[SignedIn], ip: &str) -> Result<()> {
    for it in signed_in {
        ctx.store.sessions().revoke(&it.session.id, ctx.now()).await?;
        audit::record(
            ctx,
            "signout",
            Some(&it.account.id),
            &Actor::Account,
            ip,
            json!({"session": it.session.id}),
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestCtx;

    fn browser() -> ClientInfo {
        ClientInfo { ip: "192.0.2.7".to_owned(), user_agent: "test".to_owned() }
    }

    #[tokio::test]
    async fn a_session_ends_when_its_lifetime_does() {
        let t = TestCtx::new().await;
        let alice = t.account("alice@example.test").create().await;
        let (token, session) =
            create(&t.ctx, &alice.record, false, false, &browser()).await.unwrap();
        assert_eq!(session.expires_at, t.now() + t.ctx.policy.session_ttl_secs);
        let signed_in = load(&t.ctx, &token).await.unwrap();
        assert_eq!(signed_in.len(), 1);
        assert_eq!(signed_in[0].account.id, alice.record.id);
        t.advance(t.ctx.policy.session_ttl_secs - 1);
        assert_eq!(load(&t.ctx, &token).await.unwrap().len(), 1, "live until the last second");
        t.advance(1);
        assert!(load(&t.ctx, &token).await.unwrap().is_empty(), "expired");
        assert!(list_for_account(&t.ctx, alice.id()).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_persistent_session_outlives_a_plain_one() {
        let t = TestCtx::new().await;
        let alice = t.account("alice@example.test").create().await;
        let bob = t.account("bob@example.test").create().await;
        let (plain, _) = create(&t.ctx, &alice.record, false, false, &browser()).await.unwrap();
        let (kept, _) = create(&t.ctx, &bob.record, true, false, &browser()).await.unwrap();
        let cookie = cookie_value([plain.as_str(), kept.as_str()]);
        assert_eq!(load(&t.ctx, &cookie).await.unwrap().len(), 2);
        t.advance(t.ctx.policy.session_ttl_secs);
        let left = load(&t.ctx, &cookie).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].account.id, bob.record.id);
        t.advance(t.ctx.policy.persistent_session_ttl_secs - t.ctx.policy.session_ttl_secs);
        assert!(load(&t.ctx, &cookie).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn rotation_retires_the_old_tokens() {
        let t = TestCtx::new().await;
        let alice = t.account("alice@example.test").create().await;
        let (old, _) = create(&t.ctx, &alice.record, false, false, &browser()).await.unwrap();
        let signed_in = load(&t.ctx, &old).await.unwrap();
        let fresh = rotate(&t.ctx, &signed_in).await.unwrap();
        assert_eq!(fresh.len(), 1);
        assert_ne!(fresh[0], old);
        assert!(load(&t.ctx, &old).await.unwrap().is_empty(), "a planted token is useless now");
        assert_eq!(load(&t.ctx, &fresh[0]).await.unwrap().len(), 1);
        // Rotating the stale list again gives nothing: the old token is not live.
        assert!(rotate(&t.ctx, &signed_in).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn disabled_accounts_and_junk_tokens_are_dropped() {
        let t = TestCtx::new().await;
        let alice = t.account("alice@example.test").create().await;
        let (token, _) = create(&t.ctx, &alice.record, false, false, &browser()).await.unwrap();
        let junk = cookie_value(["short", "not a token at all!!!!!!!!!!", token.as_str(), &token]);
        assert_eq!(load(&t.ctx, &junk).await.unwrap().len(), 1, "junk skipped, repeats once");
        // Straight in the store, sessions left alive: `load` itself refuses the account.
        t.ctx
            .store
            .accounts()
            .set_state(alice.id(), AccountState::Disabled, t.now())
            .await
            .unwrap();
        assert!(load(&t.ctx, &token).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn only_the_owner_revokes_a_session() {
        let t = TestCtx::new().await;
        let alice = t.account("alice@example.test").create().await;
        let mallory = t.account("mallory@example.test").create().await;
        let (token, session) =
            create(&t.ctx, &alice.record, false, false, &browser()).await.unwrap();
        let refused = revoke(&t.ctx, mallory.id(), &session.id, &Actor::Account, "").await;
        assert!(matches!(refused, Err(Error::NotFound)), "{refused:?}");
        assert_eq!(load(&t.ctx, &token).await.unwrap().len(), 1);
        revoke(&t.ctx, alice.id(), &session.id, &Actor::Account, "").await.unwrap();
        assert!(load(&t.ctx, &token).await.unwrap().is_empty());
    }
}
