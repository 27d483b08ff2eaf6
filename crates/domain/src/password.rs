//! The one password pipeline. Browser sign-in, ClientLogin, the account page's "enter your
//! password again" and (later) device login check a password or app password only through
//! [`check`] or [`confirm`]: this is the only code that verifies a password hash or an app
//! password.
//!
//! The defences, in order, each counted in the store so that every node sees them:
//! 1. a CAPTCHA first when the email, the exact client address or its network (IPv4 /24, IPv6 /64)
//!    failed too often in the window;
//! 2. a guessing budget per account: once it has failed [`Policy::guess_budget_after_failures`]
//!    times in the window, its password is tried at most once per
//!    [`Policy::guess_interval_secs`], whatever CAPTCHAs are solved or addresses used — the count
//!    is taken before the password is looked at, so parallel bursts cannot overtake it;
//! 3. Argon2id whether or not the account exists, so both cost the same.
//!
//! A successful password clears the email's count but never an address's: an attacker with an
//! account of their own must not reset the count of the address they guess from.
//!
//! [`Policy::guess_budget_after_failures`]: crate::Policy::guess_budget_after_failures
//! [`Policy::guess_interval_secs`]: crate::Policy::guess_interval_secs

use std::net::IpAddr;

use serde_json::json;
use tessera_crypto::password::Verification;
use tessera_store::{AccountRecord, AccountState, CredentialKind, SessionRecord};

use crate::audit::{self, Actor};
use crate::{Ctx, Error, Result, accounts, captcha};

/// What the password may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// The account's password (browser sign-in: 2-step follows in the browser).
    Password,
    /// The password, or an app password for accounts with 2-step verification, which must use
    /// one (protocols that cannot ask for a code: ClientLogin, device login).
    PasswordOrAppPassword,
}

/// One password attempt.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    pub email: &'a str,
    pub password: &'a str,
    /// CAPTCHA token and answer, when one was shown.
    pub captcha: Option<(&'a str, &'a str)>,
    pub ip: &'a str,
    pub accept: Accept,
    /// Accounts outside this filter are treated as unknown (ClientLogin's `accountType`).
    pub fits: fn(&AccountRecord) -> bool,
    /// ClientLogin's `DisplayUnlockCaptcha`: an unlock for this address skips one CAPTCHA.
    pub unlockable: bool,
    /// The audit event prefix (`signin`, `clientlogin`).
    pub event: &'static str,
}

/// How the password was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Password,
    AppPassword,
}

/// The typed outcome; each protocol maps it to its own wire error.
#[derive(Debug)]
pub enum Checked {
    /// The password (or app password) is right and the account may sign in. Its state may still
    /// be one a protocol refuses (`EmailUnverified`, `MustAcceptTerms`).
    Ok { account: AccountRecord, via: Via },
    /// Solve a CAPTCHA first; `wrong` when one was answered wrongly.
    CaptchaRequired { wrong: bool },
    /// This account's guessing budget is spent for now; nothing was checked.
    Throttled,
    /// Unknown account or wrong password, indistinguishably. `second_factor` when the right
    /// password of a 2-step account came where an app password was needed (not counted).
    BadCredentials { second_factor: bool },
    /// The password is right but the account is disabled or deleted.
    Refused { account: AccountRecord },
}

/// The email as counters name it: a keyed digest of its normal form, never the address.
fn email_tag(ctx: &Ctx, email: &str) -> String {
    let normal = email.trim().to_lowercase();
    ctx.pepper.keyed_digest("signin-email", normal.as_bytes())[..32].to_owned()
}

fn email_key(ctx: &Ctx, email: &str) -> String {
    format!("signin:email:{}", email_tag(ctx, email))
}

fn budget_key(ctx: &Ctx, email: &str) -> String {
    format!("signin:budget:{}", email_tag(ctx, email))
}

fn ip_key(ip: &str) -> String {
    format!("signin:ip:{ip}")
}

fn unlock_key(ip: &str) -> String {
    format!("clientlogin:unlock:{ip}")
}

/// The network an address belongs to for counting: IPv4 /24, IPv6 /64. Anything that is not an
/// address counts as its own network.
pub fn network_of(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Ok(IpAddr::V6(v6)) => {
            let segments = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", segments[0], segments[1], segments[2], segments[3])
        }
        Err(_) => ip.to_owned(),
    }
}

fn net_key(ip: &str) -> String {
    format!("signin:net:{}", network_of(ip))
}

/// Whether this email, address or network has failed often enough that a CAPTCHA comes first.
pub async fn captcha_needed(ctx: &Ctx, email: &str, ip: &str) -> Result<bool> {
    let now = ctx.now();
    let counters = ctx.store.counters();
    Ok(counters.peek(&email_key(ctx, email), now).await?
        >= ctx.policy.captcha_after_account_failures
        || counters.peek(&ip_key(ip), now).await? >= ctx.policy.captcha_after_ip_failures
        || counters.peek(&net_key(ip), now).await? >= ctx.policy.captcha_after_network_failures)
}

/// Counts a failure against the email, the address and its network.
pub async fn count_failure(ctx: &Ctx, email: &str, ip: &str) -> Result<()> {
    let now = ctx.now();
    let window = ctx.policy.failure_window_secs;
    let counters = ctx.store.counters();
    counters.hit(&email_key(ctx, email), window, now).await?;
    counters.hit(&ip_key(ip), window, now).await?;
    counters.hit(&net_key(ip), window, now).await?;
    Ok(())
}

/// Forgets the email's failures (after its right password); addresses keep theirs.
pub async fn clear_failures(ctx: &Ctx, email: &str) -> Result<()> {
    Ok(ctx.store.counters().clear(&email_key(ctx, email)).await?)
}

/// `DisplayUnlockCaptcha` was solved: the next attempt from `ip` within `ttl` that allows unlocks
/// skips the CAPTCHA (once).
pub async fn unlock(ctx: &Ctx, ip: &str, ttl: i64) -> Result<()> {
    ctx.store.counters().hit(&unlock_key(ip), ttl, ctx.now()).await?;
    Ok(())
}

/// Counts this attempt against the email before anything is checked (atomically in the store;
/// a right password clears it again) and says whether the account's guessing budget lets it
/// through: past [`Policy::guess_budget_after_failures`], one attempt per interval.
///
/// [`Policy::guess_budget_after_failures`]: crate::Policy::guess_budget_after_failures
async fn within_budget(ctx: &Ctx, email: &str) -> Result<bool> {
    let now = ctx.now();
    let counters = ctx.store.counters();
    let n = counters.hit(&email_key(ctx, email), ctx.policy.failure_window_secs, now).await?;
    if n <= ctx.policy.guess_budget_after_failures {
        return Ok(true);
    }
    let slot = counters.hit(&budget_key(ctx, email), ctx.policy.guess_interval_secs, now).await?;
    Ok(slot <= 1)
}

/// Counts a failure against the address and its network (the email's count was taken up front).
async fn count_address_failure(ctx: &Ctx, ip: &str) -> Result<()> {
    let now = ctx.now();
    let window = ctx.policy.failure_window_secs;
    ctx.store.counters().hit(&ip_key(ip), window, now).await?;
    ctx.store.counters().hit(&net_key(ip), window, now).await?;
    Ok(())
}

/// Runs an attempt through every defence and the hash.
pub async fn check(ctx: &Ctx, attempt: Attempt<'_>) -> Result<Checked> {
    let ip = attempt.ip;
    if captcha_needed(ctx, attempt.email, ip).await? {
        let unlocked =
            attempt.unlockable && ctx.store.counters().peek(&unlock_key(ip), ctx.now()).await? > 0;
        if unlocked {
            ctx.store.counters().clear(&unlock_key(ip)).await?;
        } else {
            match attempt.captcha {
                None => return Ok(Checked::CaptchaRequired { wrong: false }),
                Some((token, answer)) => {
                    if !captcha::check(ctx, token, answer).await? {
                        count_failure(ctx, attempt.email, ip).await?;
                        metrics::counter!("tessera_signin_total", "outcome" => "captcha_wrong")
                            .increment(1);
                        return Ok(Checked::CaptchaRequired { wrong: true });
                    }
                }
            }
        }
    }
    if !within_budget(ctx, attempt.email).await? {
        metrics::counter!("tessera_signin_total", "outcome" => "throttled").increment(1);
        let account = find(ctx, attempt.email).await?;
        record(ctx, &attempt, account.as_ref(), "throttled").await?;
        return Ok(Checked::Throttled);
    }
    let account = find(ctx, attempt.email).await?.filter(|it| (attempt.fits)(it));
    let password_ok = verify_password(ctx, account.as_ref(), attempt.password).await?;
    let app_password_ok = match (attempt.accept, &account, password_ok) {
        (Accept::Password, _, _) | (_, Some(_), true) => false,
        (Accept::PasswordOrAppPassword, Some(account), false) => {
            verify_app_password(ctx, Some(account), attempt.password).await?
        }
        (Accept::PasswordOrAppPassword, None, _) => {
            verify_app_password(ctx, None, attempt.password).await?
        }
    };
    let (account, via) = match account {
        Some(account)
            if password_ok
                && attempt.accept == Accept::PasswordOrAppPassword
                && account.totp_secret_enc.is_some() =>
        {
            // The right password, only in the wrong place: not a guess.
            clear_failures(ctx, attempt.email).await?;
            record(ctx, &attempt, Some(&account), "needs_app_password").await?;
            return Ok(Checked::BadCredentials { second_factor: true });
        }
        Some(account) if password_ok => (account, Via::Password),
        Some(account) if app_password_ok => (account, Via::AppPassword),
        account => {
            count_address_failure(ctx, ip).await?;
            metrics::counter!("tessera_signin_total", "outcome" => "bad_credentials").increment(1);
            let reason = if account.is_some() { "bad_password" } else { "unknown_account" };
            record(ctx, &attempt, account.as_ref(), reason).await?;
            return Ok(Checked::BadCredentials { second_factor: false });
        }
    };
    if matches!(account.state, AccountState::Disabled | AccountState::Deleted) {
        metrics::counter!("tessera_signin_total", "outcome" => "disabled").increment(1);
        record(ctx, &attempt, Some(&account), account.state.as_str()).await?;
        return Ok(Checked::Refused { account });
    }
    clear_failures(ctx, attempt.email).await?;
    Ok(Checked::Ok { account, via })
}

async fn find(ctx: &Ctx, email: &str) -> Result<Option<AccountRecord>> {
    match accounts::find_by_email(ctx, email).await {
        Ok(account) => Ok(Some(account)),
        Err(Error::NotFound) => Ok(None),
        Err(err) => Err(err),
    }
}

async fn record(
    ctx: &Ctx,
    attempt: &Attempt<'_>,
    account: Option<&AccountRecord>,
    reason: &str,
) -> Result<()> {
    audit::record(
        ctx,
        &format!("{}.failure", attempt.event),
        account.map(|it| it.id.as_str()),
        &Actor::Account,
        attempt.ip,
        json!({ "reason": reason }),
    )
    .await
}

/// The outcome of [`confirm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    Yes,
    Wrong,
    /// Too many wrong passwords in a row; try again later.
    Throttled,
}

/// Wrong confirmations of a signed-in account's password allowed in one window.
pub const MAX_CONFIRM_FAILURES: u32 = 5;

/// "Enter your password again" for a signed-in person (changing the password, app passwords,
/// 2-step settings). Counted before checking, per account, so a hijacked session cannot guess.
pub async fn confirm(
    ctx: &Ctx,
    account: &AccountRecord,
    password: &str,
    ip: &str,
) -> Result<Confirmed> {
    let key = format!("reauth:{}", account.id);
    let n = ctx.store.counters().hit(&key, ctx.policy.failure_window_secs, ctx.now()).await?;
    if n > MAX_CONFIRM_FAILURES {
        audit::record(
            ctx,
            "reauth.failure",
            Some(&account.id),
            &Actor::Account,
            ip,
            json!({ "reason": "throttled" }),
        )
        .await?;
        return Ok(Confirmed::Throttled);
    }
    if verify_password(ctx, Some(account), password).await? {
        ctx.store.counters().clear(&key).await?;
        return Ok(Confirmed::Yes);
    }
    audit::record(
        ctx,
        "reauth.failure",
        Some(&account.id),
        &Actor::Account,
        ip,
        json!({ "reason": "bad_password" }),
    )
    .await?;
    Ok(Confirmed::Wrong)
}

/// For sensitive changes (app passwords, 2-step settings): passes when the session's password
/// was entered within [`Policy::reauth_window_secs`]; otherwise `password` must be right now (it
/// is checked through [`confirm`], and the session's `auth_time` moves forward).
///
/// [`Policy::reauth_window_secs`]: crate::Policy::reauth_window_secs
pub async fn confirm_recent(
    ctx: &Ctx,
    session: &SessionRecord,
    account: &AccountRecord,
    password: &str,
    ip: &str,
) -> Result<()> {
    if ctx.now() - session.auth_time <= ctx.policy.reauth_window_secs {
        return Ok(());
    }
    if password.is_empty() {
        return Err(Error::Invalid("Enter your password to confirm this change.".to_owned()));
    }
    match confirm(ctx, account, password, ip).await? {
        Confirmed::Yes => {
            ctx.store.sessions().reauthenticated(&session.id, ctx.now()).await?;
            Ok(())
        }
        Confirmed::Wrong => Err(Error::Invalid("That password is not right.".to_owned())),
        Confirmed::Throttled => {
            Err(Error::Invalid("Too many wrong passwords. Try again later.".to_owned()))
        }
    }
}

/// Checks a password against the account's hash (or against a dummy hash when there is no
/// account, so both cost the same), and upgrades the stored hash when the cost settings changed.
async fn verify_password(
    ctx: &Ctx,
    account: Option<&AccountRecord>,
    password: &str,
) -> Result<bool> {
    let password = password.to_owned();
    let Some(hash) = account.and_then(|it| it.password_hash.clone()) else {
        ctx.hash_work(move |hasher| hasher.verify_dummy(&password)).await?;
        return Ok(false);
    };
    let candidate = password.clone();
    let stored = hash.clone();
    let verdict = ctx.hash_work(move |hasher| hasher.verify(&stored, &candidate)).await?;
    match verdict {
        Verification::Invalid => Ok(false),
        Verification::Valid => Ok(true),
        Verification::ValidNeedsRehash => {
            if let Some(account) = account {
                let rng = ctx.rng.clone();
                let rehash =
                    ctx.hash_work(move |hasher| hasher.hash(rng.as_ref(), &password)).await?;
                if let Ok(new_hash) = rehash {
                    ctx.store
                        .accounts()
                        .replace_password_hash(&account.id, &hash, &new_hash, ctx.now())
                        .await?;
                }
            }
            Ok(true)
        }
    }
}

/// App passwords are 16 letters; spaces between the groups and case do not matter.
fn app_password_letters(candidate: &str) -> Option<String> {
    let letters: String =
        candidate.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    (letters.len() == crate::app_passwords::LEN && letters.bytes().all(|b| b.is_ascii_lowercase()))
        .then_some(letters)
}

/// Whether `candidate` is a live app password of the account; records its use. Without an
/// account it does the same lookup, so both cost the same.
async fn verify_app_password(
    ctx: &Ctx,
    account: Option<&AccountRecord>,
    candidate: &str,
) -> Result<bool> {
    let Some(letters) = app_password_letters(candidate) else { return Ok(false) };
    let digest = crate::app_passwords::digest(ctx, &letters);
    let now = ctx.now();
    let Some(record) = ctx.store.credentials().find_live(&digest, now).await? else {
        return Ok(false);
    };
    let Some(account) = account else { return Ok(false) };
    if record.kind != CredentialKind::AppPassword
        || record.account_id.as_deref() != Some(account.id.as_str())
    {
        return Ok(false);
    }
    ctx.store.credentials().touch(&digest, now).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_v4_24_and_v6_64() {
        assert_eq!(network_of("192.0.2.77"), "192.0.2.0/24");
        assert_eq!(network_of("127.5.6.7"), "127.5.6.0/24");
        assert_eq!(network_of("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(network_of("::1"), "0:0:0:0::/64");
        assert_eq!(network_of("not an address"), "not an address");
    }

    #[test]
    fn app_passwords_ignore_spaces_and_case() {
        assert_eq!(
            app_password_letters("abcd EFGH ijkl mnop").as_deref(),
            Some("abcdefghijklmnop")
        );
        assert_eq!(app_password_letters("abcd"), None);
        assert_eq!(app_password_letters("abcd1fghijklmnop"), None);
    }
}
