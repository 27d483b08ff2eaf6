//! Password sign-in with brute-force defence: failure counters per email and per client IP live in
//! the store (so every node sees them), and past a threshold a CAPTCHA must be solved before the
//! password is even checked. Unknown accounts cost the same Argon2id run as known ones, and the
//! answer does not say which it was.

use serde_json::json;
use tessera_store::{AccountRecord, AccountState, CredentialKind, CredentialRecord, SessionRecord};

use crate::audit::{self, Actor};
use crate::sessions::ClientInfo;
use crate::{Ctx, Error, Result, accounts, captcha, sessions, totp};

/// What the person typed.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub email: String,
    pub password: String,
    /// CAPTCHA token and answer, when one was shown.
    pub captcha: Option<(String, String)>,
    pub persistent: bool,
    pub client: ClientInfo,
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// Signed in; the token goes into the browser cookie.
    SignedIn {
        account: AccountRecord,
        token: String,
        session: SessionRecord,
    },
    /// The password was right; a 2-step code is needed to finish. The token carries the attempt.
    SecondFactor {
        account: AccountRecord,
        pending: String,
    },
    /// Too many failures: solve a CAPTCHA first. `wrong` is true when one was answered wrongly.
    CaptchaRequired {
        wrong: bool,
    },
    Failed(Failure),
}

/// Why a sign-in failed. The first one covers both unknown accounts and wrong passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    BadCredentials,
    Disabled,
    Deleted,
}

fn email_key(ctx: &Ctx, email: &str) -> String {
    let normal = email.trim().to_lowercase();
    format!("signin:email:{}", &ctx.pepper.keyed_digest("signin-email", normal.as_bytes())[..32])
}

fn ip_key(ip: &str) -> String {
    format!("signin:ip:{ip}")
}

/// Whether this email or IP has failed often enough that a CAPTCHA comes first.
pub async fn captcha_needed(ctx: &Ctx, email: &str, ip: &str) -> Result<bool> {
    let now = ctx.now();
    let by_email = ctx.store.counters().peek(&email_key(ctx, email), now).await?;
    let by_ip = ctx.store.counters().peek(&ip_key(ip), now).await?;
    Ok(by_email >= ctx.policy.captcha_after_account_failures
        || by_ip >= ctx.policy.captcha_after_ip_failures)
}

/// Counts a failure against the email and the client IP.
pub async fn count_failure(ctx: &Ctx, email: &str, ip: &str) -> Result<()> {
    let now = ctx.now();
    let window = ctx.policy.failure_window_secs;
    ctx.store.counters().hit(&email_key(ctx, email), window, now).await?;
    ctx.store.counters().hit(&ip_key(ip), window, now).await?;
    Ok(())
}

pub async fn clear_failures(ctx: &Ctx, email: &str) -> Result<()> {
    Ok(ctx.store.counters().clear(&email_key(ctx, email)).await?)
}

pub async fn sign_in(ctx: &Ctx, attempt: Attempt) -> Result<Outcome> {
    let ip = attempt.client.ip.clone();
    if captcha_needed(ctx, &attempt.email, &ip).await? {
        match &attempt.captcha {
            None => return Ok(Outcome::CaptchaRequired { wrong: false }),
            Some((token, answer)) => {
                if !captcha::check(ctx, token, answer).await? {
                    count_failure(ctx, &attempt.email, &ip).await?;
                    metrics::counter!("tessera_signin_total", "outcome" => "captcha_wrong")
                        .increment(1);
                    return Ok(Outcome::CaptchaRequired { wrong: true });
                }
            }
        }
    }
    let account = match accounts::find_by_email(ctx, &attempt.email).await {
        Ok(account) => Some(account),
        Err(Error::NotFound) => None,
        Err(err) => return Err(err),
    };
    let password_ok = accounts::check_password(ctx, account.as_ref(), &attempt.password).await?;
    let account = match (account, password_ok) {
        (Some(account), true) => account,
        (account, _) => {
            count_failure(ctx, &attempt.email, &ip).await?;
            let reason = if account.is_some() { "bad_password" } else { "unknown_account" };
            metrics::counter!("tessera_signin_total", "outcome" => "bad_credentials").increment(1);
            audit::record(
                ctx,
                "signin.failure",
                account.as_ref().map(|it| it.id.as_str()),
                &Actor::Account,
                &ip,
                json!({ "reason": reason }),
            )
            .await?;
            return Ok(Outcome::Failed(Failure::BadCredentials));
        }
    };
    match account.state {
        AccountState::Disabled | AccountState::Deleted => {
            let failure = if account.state == AccountState::Disabled {
                Failure::Disabled
            } else {
                Failure::Deleted
            };
            metrics::counter!("tessera_signin_total", "outcome" => "disabled").increment(1);
            audit::record(
                ctx,
                "signin.failure",
                Some(&account.id),
                &Actor::Account,
                &ip,
                json!({ "reason": account.state.as_str() }),
            )
            .await?;
            return Ok(Outcome::Failed(failure));
        }
        AccountState::Active | AccountState::EmailUnverified | AccountState::MustAcceptTerms => (),
    }
    clear_failures(ctx, &attempt.email).await?;
    if account.totp_secret_enc.is_some() {
        let now = ctx.now();
        let (pending, digest) = ctx.new_token();
        let mut record = CredentialRecord::new(digest, CredentialKind::PendingSignIn, now);
        record.account_id = Some(account.id.clone());
        record.expires_at = Some(now + ctx.policy.pending_sign_in_ttl_secs);
        record.data = json!({ "persistent": attempt.persistent }).to_string();
        ctx.store.credentials().insert(&record).await?;
        metrics::counter!("tessera_signin_total", "outcome" => "second_factor").increment(1);
        return Ok(Outcome::SecondFactor { account, pending });
    }
    let (token, session) =
        sessions::create(ctx, &account, attempt.persistent, false, &attempt.client).await?;
    metrics::counter!("tessera_signin_total", "outcome" => "success").increment(1);
    audit::record(
        ctx,
        "signin.success",
        Some(&account.id),
        &Actor::Account,
        &ip,
        json!({ "session": session.id, "second_factor": false }),
    )
    .await?;
    Ok(Outcome::SignedIn { account, token, session })
}

/// The result of a 2-step code.
#[derive(Debug)]
pub enum SecondFactorOutcome {
    SignedIn {
        account: Box<AccountRecord>,
        token: String,
        session: Box<SessionRecord>,
    },
    /// Wrong code; the person may try again.
    WrongCode,
    /// The pending sign-in is gone (expired, used, or too many wrong codes): start over.
    Restart,
}

/// The account waiting for a code behind `pending`, if the attempt is still open.
pub async fn pending_account(ctx: &Ctx, pending: &str) -> Result<Option<AccountRecord>> {
    if pending.len() > 100 {
        return Ok(None);
    }
    let digest = tessera_crypto::digest::token_digest(pending);
    let Some(record) = ctx.store.credentials().find_live(&digest, ctx.now()).await? else {
        return Ok(None);
    };
    if record.kind != CredentialKind::PendingSignIn {
        return Ok(None);
    }
    let Some(account_id) = record.account_id else { return Ok(None) };
    Ok(ctx.store.accounts().get(&account_id).await?)
}

pub async fn second_factor(
    ctx: &Ctx,
    pending: &str,
    code: &str,
    client: &ClientInfo,
) -> Result<SecondFactorOutcome> {
    let Some(account) = pending_account(ctx, pending).await? else {
        return Ok(SecondFactorOutcome::Restart);
    };
    let digest = tessera_crypto::digest::token_digest(pending);
    let failures_key = format!("signin:2sv:{}", &digest[..32]);
    if !totp::verify(ctx, &account, code).await? {
        let n = ctx
            .store
            .counters()
            .hit(&failures_key, ctx.policy.pending_sign_in_ttl_secs, ctx.now())
            .await?;
        count_failure(ctx, &account.email, &client.ip).await?;
        audit::record(
            ctx,
            "signin.failure",
            Some(&account.id),
            &Actor::Account,
            &client.ip,
            json!({ "reason": "bad_code" }),
        )
        .await?;
        if n >= 5 {
            ctx.store.credentials().revoke(&digest, ctx.now()).await?;
            return Ok(SecondFactorOutcome::Restart);
        }
        return Ok(SecondFactorOutcome::WrongCode);
    }
    let Some(record) =
        ctx.store.credentials().consume(&digest, CredentialKind::PendingSignIn, ctx.now()).await?
    else {
        return Ok(SecondFactorOutcome::Restart);
    };
    let data: serde_json::Value = serde_json::from_str(&record.data).unwrap_or_default();
    let persistent = data["persistent"].as_bool().unwrap_or(false);
    let (token, session) = sessions::create(ctx, &account, persistent, true, client).await?;
    metrics::counter!("tessera_signin_total", "outcome" => "success").increment(1);
    audit::record(
        ctx,
        "signin.success",
        Some(&account.id),
        &Actor::Account,
        &client.ip,
        json!({ "session": session.id, "second_factor": true }),
    )
    .await?;
    Ok(SecondFactorOutcome::SignedIn {
        account: Box::new(account),
        token,
        session: Box::new(session),
    })
}
