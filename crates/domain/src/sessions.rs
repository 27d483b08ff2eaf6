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
        let Some((session, account)) = ctx.store.sessions().find_signed_in(&digest, now).await?
        else {
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
