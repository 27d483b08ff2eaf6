//! 2-step verification with TOTP (RFC 6238): enrolment proved by a first code, codes usable once.

use serde_json::json;
use tessera_crypto::totp::TotpSecret;
use tessera_store::AccountRecord;

use crate::audit::{self, Actor};
use crate::{Ctx, Error, Result};

/// Codes one step either side of now are accepted (clock drift of phones).
const SKEW_STEPS: i64 = 1;

/// An enrolment in progress: shown to the person, proved by a code before it counts.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// Base32, for typing into an authenticator.
    pub secret_base32: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
    /// The secret sealed for this account, carried by the confirmation form.
    pub sealed: String,
}

fn enroll_aad(account_id: &str) -> Vec<u8> {
    format!("totp-enroll:{account_id}").into_bytes()
}

/// The secret an enrolment form carries, if it was sealed for this account.
fn open_enrollment(ctx: &Ctx, account: &AccountRecord, sealed: &str) -> Result<TotpSecret> {
    let again = || Error::Invalid("Start the setup again.".to_owned());
    let bytes = ctx.kek.open(&enroll_aad(&account.id), sealed).map_err(|_| again())?;
    TotpSecret::from_bytes(bytes).map_err(|_| again())
}

fn stored_aad(account_id: &str) -> Vec<u8> {
    format!("totp:{account_id}").into_bytes()
}

pub fn start(ctx: &Ctx, account: &AccountRecord, issuer: &str) -> Result<Enrollment> {
    let secret = TotpSecret::generate(ctx.rng.as_ref());
    let otpauth_uri = secret.otpauth_uri(issuer, &account.email);
    let qr_svg =
        tessera_crypto::qr::qr_svg(&otpauth_uri).map_err(|err| Error::Internal(err.to_string()))?;
    let sealed = ctx
        .kek
        .seal(ctx.rng.as_ref(), &enroll_aad(&account.id), secret.as_bytes())
        .map_err(|err| Error::Internal(err.to_string()))?;
    Ok(Enrollment { secret_base32: secret.to_base32(), otpauth_uri, qr_svg, sealed })
}

/// Turns 2-step verification on if `code` matches the enrolment's secret.
pub async fn confirm(
    ctx: &Ctx,
    account: &AccountRecord,
    sealed: &str,
    code: &str,
    ip: &str,
) -> Result<()> {
    let secret = open_enrollment(ctx, account, sealed)?;
    let Some(step) = secret.check(code.trim(), ctx.now(), SKEW_STEPS) else {
        return Err(Error::Invalid(
            "That code is not right. Check the time on your phone and try again.".to_owned(),
        ));
    };
    let stored = ctx
        .kek
        .seal(ctx.rng.as_ref(), &stored_aad(&account.id), secret.as_bytes())
        .map_err(|err| Error::Internal(err.to_string()))?;
    ctx.store.accounts().set_totp(&account.id, Some(&stored), ctx.now()).await?;
    ctx.store.accounts().advance_totp_step(&account.id, step).await?;
    audit::record(ctx, "2sv.enable", Some(&account.id), &Actor::Account, ip, json!({})).await
}

pub async fn disable(ctx: &Ctx, account: &AccountRecord, actor: &Actor, ip: &str) -> Result<()> {
    ctx.store.accounts().set_totp(&account.id, None, ctx.now()).await?;
    audit::record(ctx, "2sv.disable", Some(&account.id), actor, ip, json!({})).await
}

/// Checks a code for an account with 2-step verification on; a code is accepted only once.
pub async fn verify(ctx: &Ctx, account: &AccountRecord, code: &str) -> Result<bool> {
    let Some(sealed) = account.totp_secret_enc.as_deref() else { return Ok(false) };
    let bytes = ctx
        .kek
        .open(&stored_aad(&account.id), sealed)
        .map_err(|_| Error::Internal("totp secret does not open".to_owned()))?;
    let secret = TotpSecret::from_bytes(bytes)
        .map_err(|_| Error::Internal("totp secret has a bad length".to_owned()))?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(step) = secret.check(&code, ctx.now(), SKEW_STEPS) else { return Ok(false) };
    Ok(ctx.store.accounts().advance_totp_step(&account.id, step).await?)
}

/// Shows an enrolment again after a wrong first code (same secret, same sealed value).
pub fn reopen(
    ctx: &Ctx,
    account: &AccountRecord,
    sealed: &str,
    issuer: &str,
) -> Result<Enrollment> {
    let secret = open_enrollment(ctx, account, sealed)?;
    let otpauth_uri = secret.otpauth_uri(issuer, &account.email);
    let qr_svg =
        tessera_crypto::qr::qr_svg(&otpauth_uri).map_err(|err| Error::Internal(err.to_string()))?;
    Ok(Enrollment {
        secret_base32: secret.to_base32(),
        otpauth_uri,
        qr_svg,
        sealed: sealed.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use tessera_crypto::totp::STEP_SECONDS;

    use super::*;
    use crate::testing::TestCtx;

    #[tokio::test]
    async fn a_code_is_accepted_once() {
        let t = TestCtx::new().await;
        let alice = t.account("alice@example.test").two_step().create().await;
        // The enrolment's proof used the code of this step: it is spent already.
        assert!(!verify(&t.ctx, &alice.record, &alice.totp_code(t.now())).await.unwrap());
        t.advance(STEP_SECONDS);
        let code = alice.totp_code(t.now());
        assert!(verify(&t.ctx, &alice.record, &code).await.unwrap());
        assert!(!verify(&t.ctx, &alice.record, &code).await.unwrap(), "replayed");
        // Nor can an older step's code come back once a newer one was used.
        t.advance(STEP_SECONDS);
        let newer = alice.totp_code(t.now());
        let older = alice.totp_code(t.now() - STEP_SECONDS);
        assert!(verify(&t.ctx, &alice.record, &newer).await.unwrap());
        assert!(!verify(&t.ctx, &alice.record, &older).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_the_same_code_signs_in_once() {
        let t = TestCtx::new().await;
        let alice = t.account("alice@example.test").two_step().create().await;
        t.advance(STEP_SECONDS);
        let code = alice.totp_code(t.now());
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let (ctx, account, code) = (t.ctx.clone(), alice.record.clone(), code.clone());
            burst.spawn(async move { verify(&ctx, &account, &code).await.unwrap() });
        }
        let accepted = burst.join_all().await.into_iter().filter(|it| *it).count();
        assert_eq!(accepted, 1);
    }

    #[tokio::test]
    async fn skew_is_one_step_either_side() {
        let t = TestCtx::new().await;
        let alice = t.account("alice@example.test").two_step().create().await;
        t.advance(10 * STEP_SECONDS);
        let now = t.now();
        assert!(
            !verify(&t.ctx, &alice.record, &alice.totp_code(now + 2 * STEP_SECONDS)).await.unwrap()
        );
        assert!(verify(&t.ctx, &alice.record, &alice.totp_code(now - STEP_SECONDS)).await.unwrap());
        assert!(verify(&t.ctx, &alice.record, &alice.totp_code(now + STEP_SECONDS)).await.unwrap());
        assert!(!verify(&t.ctx, &alice.record, "12345").await.unwrap(), "not six digits");
        assert!(!verify(&t.ctx, &alice.record, "abcdef").await.unwrap());
    }

    #[tokio::test]
    async fn enrolment_needs_the_right_code_and_this_accounts_form() {
        let t = TestCtx::new().await;
        let alice = t.account("alice@example.test").create().await;
        let bob = t.account("bob@example.test").create().await;
        let enrollment = start(&t.ctx, &alice.record, "tessera").unwrap();
        let secret = TotpSecret::from_base32(&enrollment.secret_base32).unwrap();
        let wrong = format!(
            "{:06}",
            (secret.code_at_time(t.now()).parse::<u32>().unwrap() + 1) % 1_000_000
        );
        let refused = confirm(&t.ctx, &alice.record, &enrollment.sealed, &wrong, "").await;
        assert!(matches!(refused, Err(Error::Invalid(_))), "{refused:?}");
        // Bob cannot confirm Alice's enrolment form, even with the right code.
        let code = secret.code_at_time(t.now());
        let stolen = confirm(&t.ctx, &bob.record, &enrollment.sealed, &code, "").await;
        assert!(matches!(stolen, Err(Error::Invalid(_))), "{stolen:?}");
        confirm(&t.ctx, &alice.record, &enrollment.sealed, &code, "").await.unwrap();
        let alice = crate::accounts::get(&t.ctx, &alice.record.id).await.unwrap();
        assert!(alice.totp_secret_enc.is_some());
        assert!(!alice.totp_secret_enc.as_deref().unwrap().contains(&enrollment.secret_base32));
        disable(&t.ctx, &alice, &Actor::Account, "").await.unwrap();
        let alice = crate::accounts::get(&t.ctx, &alice.id).await.unwrap();
        t.advance(STEP_SECONDS);
        assert!(!verify(&t.ctx, &alice, &secret.code_at_time(t.now())).await.unwrap());
    }
}
