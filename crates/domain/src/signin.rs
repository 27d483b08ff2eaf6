//! Browser sign-in: the password through the one pipeline (`password::check`, which holds the
//! CAPTCHA, the failure counters and the guessing budget), then a session or, for 2-step accounts,
//! a pending sign-in that waits for a code. Each pending sign-in gets [`MAX_CODE_ATTEMPTS`] codes,
//! counted before they are checked.

use serde_json::json;
use tessera_store::{AccountRecord, AccountState, CredentialKind, CredentialRecord, SessionRecord};

use crate::audit::{self, Actor};
use crate::credentials::{self, PendingSignInData};
use crate::password::{self, Checked};
use crate::sessions::ClientInfo;
use crate::{Ctx, Result, sessions, totp};

/// 2-step codes one pending sign-in may try; the next ends it.
pub const MAX_CODE_ATTEMPTS: u32 = 5;

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
    /// The account's guessing budget is spent for now; try again in a minute.
    Throttled,
    Disabled,
    Deleted,
}

/// Checks the password through the one pipeline, then starts the session or the 2-step step.
pub async fn sign_in(ctx: &Ctx, attempt: Attempt) -> Result<Outcome> {
    let ip = attempt.client.ip.clone();
    let checked = password::check(
        ctx,
        password::Attempt {
            email: &attempt.email,
            password: &attempt.password,
            captcha: attempt
                .captcha
                .as_ref()
                .map(|(token, answer)| (token.as_str(), answer.as_str())),
            ip: &ip,
            accept: password::Accept::Password,
            fits: |_| true,
            unlockable: false,
            event: "signin",
        },
    )
    .await?;
    let account = match checked {
        Checked::Ok { account, .. } => account,
        Checked::CaptchaRequired { wrong } => return Ok(Outcome::CaptchaRequired { wrong }),
        Checked::Throttled => return Ok(Outcome::Failed(Failure::Throttled)),
        Checked::BadCredentials { .. } => return Ok(Outcome::Failed(Failure::BadCredentials)),
        Checked::Refused { account } => {
            let failure = match account.state {
                AccountState::Deleted => Failure::Deleted,
                _ => Failure::Disabled,
            };
            return Ok(Outcome::Failed(failure));
        }
    };
    if account.totp_secret_enc.is_some() {
        let now = ctx.now();
        let (pending, digest) = ctx.new_token();
        let mut record = CredentialRecord::new(digest, CredentialKind::PendingSignIn, now);
        record.account_id = Some(account.id.clone());
        record.expires_at = Some(now + ctx.policy.pending_sign_in_ttl_secs);
        record.data = credentials::encode(&PendingSignInData { persistent: attempt.persistent })?;
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
    // Every code is counted before it is checked, so a burst of parallel guesses cannot all be
    // checked before the first failures are seen: past the limit the pending sign-in ends.
    let n = ctx
        .store
        .counters()
        .hit(&failures_key, ctx.policy.pending_sign_in_ttl_secs, ctx.now())
        .await?;
    if n > MAX_CODE_ATTEMPTS {
        ctx.store.credentials().revoke(&digest, ctx.now()).await?;
        return Ok(SecondFactorOutcome::Restart);
    }
    if !totp::verify(ctx, &account, code).await? {
        password::count_failure(ctx, &account.email, &client.ip).await?;
        audit::record(
            ctx,
            "signin.failure",
            Some(&account.id),
            &Actor::Account,
            &client.ip,
            json!({ "reason": "bad_code" }),
        )
        .await?;
        if n >= MAX_CODE_ATTEMPTS {
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
    let persistent = credentials::data::<PendingSignInData>(&record).persistent;
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
