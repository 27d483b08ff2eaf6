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
