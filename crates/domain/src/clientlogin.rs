//! ClientLogin: an installed application sends the person's email and password (or, for 2-step
//! accounts, an app password) and gets `SID`, `LSID` and a per-service `Auth` token. The same
//! failure counters as the browser sign-in decide when a CAPTCHA comes first, and
//! `DisplayUnlockCaptcha` lets one client IP through without one for a few minutes.

use serde_json::json;
use tessera_store::{AccountState, CredentialKind, CredentialRecord};

use crate::audit::{self, Actor};
use crate::{Ctx, Error, Result, accounts, app_passwords, captcha, grants, services, signin};

/// How long an unlock from `DisplayUnlockCaptcha` lets the next ClientLogin skip the CAPTCHA.
pub const UNLOCK_TTL_SECS: i64 = 10 * 60;
/// The client id recorded for requests without `source`.
pub const ANONYMOUS_SOURCE: &str = "ClientLogin (no source)";

/// Which kind of account the request accepts (`accountType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    HostedOrGoogle,
    Google,
    Hosted,
}

#[derive(Debug, Clone)]
pub struct Login {
    pub account_kind: AccountKind,
    pub email: String,
    pub password: String,
    pub service: String,
    pub source: Option<String>,
    pub captcha: Option<(String, String)>,
    pub ip: String,
}

/// Why a login was refused; the web layer turns each into its `Error=` code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown account or wrong password (indistinguishable); `second_factor` when the right
    /// password of a 2-step account was sent instead of an app password.
    BadAuthentication {
        second_factor: bool,
    },
    NotVerified,
    TermsNotAgreed,
    /// A CAPTCHA must be solved; the token names the new challenge.
    CaptchaRequired {
        token: String,
    },
    /// The request names a service this server does not know.
    Unknown,
    AccountDeleted,
    AccountDisabled,
    ServiceDisabled,
}

/// Issued credentials, to be shown once.
#[derive(Debug, Clone)]
pub struct Issued {
    pub sid: String,
    pub lsid: String,
    pub auth: String,
}

fn unlock_key(ip: &str) -> String {
    format!("clientlogin:unlock:{ip}")
}

/// `DisplayUnlockCaptcha` was solved: the next ClientLogin from `ip` within
/// [`UNLOCK_TTL_SECS`] skips the CAPTCHA (once).
pub async fn unlock(ctx: &Ctx, account_id: &str, ip: &str) -> Result<()> {
    ctx.store.counters().hit(&unlock_key(ip), UNLOCK_TTL_SECS, ctx.now()).await?;
    audit::record(ctx, "clientlogin.unlock", Some(account_id), &Actor::Account, ip, json!({})).await
}

pub async fn login(ctx: &Ctx, login: Login) -> Result<Result<Issued, Refusal>> {
    let service = match services::get(ctx, &login.service).await {
        Ok(service) => service,
        Err(Error::NotFound) => return Ok(Err(Refusal::Unknown)),
        Err(err) => return Err(err),
    };
    if !services::accepts(&service, "clientlogin") {
        return Ok(Err(Refusal::ServiceDisabled));
    }
    let ip = login.ip.as_str();
    if signin::captcha_needed(ctx, &login.email, ip).await? {
        let unlocked = ctx.store.counters().peek(&unlock_key(ip), ctx.now()).await? > 0;
        if unlocked {
            ctx.store.counters().clear(&unlock_key(ip)).await?;
        } else {
            let solved = match &login.captcha {
                Some((token, answer)) => captcha::check(ctx, token, answer).await?,
                None => false,
            };
            if !solved {
                if login.captcha.is_some() {
                    signin::count_failure(ctx, &login.email, ip).await?;
                }
                let token = captcha::issue(ctx).await?.token;
                return Ok(Err(Refusal::CaptchaRequired { token }));
            }
        }
    }
    let account = match accounts::find_by_email(ctx, &login.email).await {
        Ok(account) => Some(account),
        Err(Error::NotFound) => None,
        Err(err) => return Err(err),
    };
    let account = account.filter(|it| match login.account_kind {
        AccountKind::HostedOrGoogle => true,
        AccountKind::Google => it.domain.is_none(),
        AccountKind::Hosted => it.domain.is_some(),
    });
    // Argon2id runs whether or not the account exists, so both failures cost the same.
    let password_ok = accounts::check_password(ctx, account.as_ref(), &login.password).await?;
    let app_password_ok = match (&account, password_ok) {
        (Some(account), false) => app_passwords::verify(ctx, account, &login.password).await?,
        (None, _) => {
            app_passwords::verify_dummy(ctx, &login.password).await?;
            false
        }
        (Some(_), true) => false,
    };
    let account = match account {
        Some(account) if account.totp_secret_enc.is_some() && password_ok => {
            audit::record(
                ctx,
                "clientlogin.failure",
                Some(&account.id),
                &Actor::Account,
                ip,
                json!({ "reason": "needs_app_password" }),
            )
            .await?;
            return Ok(Err(Refusal::BadAuthentication { second_factor: true }));
        }
        Some(account) if password_ok || app_password_ok => account,
        account => {
            signin::count_failure(ctx, &login.email, ip).await?;
            let reason = if account.is_some() { "bad_password" } else { "unknown_account" };
            audit::record(
                ctx,
                "clientlogin.failure",
                account.as_ref().map(|it| it.id.as_str()),
                &Actor::Account,
                ip,
                json!({ "reason": reason }),
            )
            .await?;
            return Ok(Err(Refusal::BadAuthentication { second_factor: false }));
        }
    };
    let refusal = match account.state {
        AccountState::Active => None,
        AccountState::EmailUnverified => Some(Refusal::NotVerified),
        AccountState::MustAcceptTerms => Some(Refusal::TermsNotAgreed),
        AccountState::Disabled => Some(Refusal::AccountDisabled),
        AccountState::Deleted => Some(Refusal::AccountDeleted),
    };
    if let Some(refusal) = refusal {
        audit::record(
            ctx,
            "clientlogin.failure",
            Some(&account.id),
            &Actor::Account,
            ip,
            json!({ "reason": account.state.as_str() }),
        )
        .await?;
        return Ok(Err(refusal));
    }
    signin::clear_failures(ctx, &login.email).await?;
    let client_id = login
        .source
        .as_deref()
        .map(|it| it.chars().take(200).collect::<String>())
        .unwrap_or_else(|| ANONYMOUS_SOURCE.to_owned());
    let scopes: Vec<String> =
        service.scopes.split(' ').filter(|it| !it.is_empty()).map(str::to_owned).collect();
    let grant = grants::grant(ctx, &account.id, &client_id, "clientlogin", &scopes, ip).await?;
    let now = ctx.now();
    let data = json!({ "service": service.name }).to_string();
    let issue = |kind: CredentialKind, ttl: i64| {
        let (token, digest) = ctx.new_token();
        let mut record = CredentialRecord::new(digest, kind, now);
        record.account_id = Some(account.id.clone());
        record.grant_id = Some(grant.id.clone());
        record.client_id = Some(client_id.clone());
        record.scopes = grant.scopes.clone();
        record.data = data.clone();
        record.expires_at = Some(now + ttl);
        (token, record)
    };
    let session_ttl = ctx.policy.persistent_session_ttl_secs;
    let (sid, sid_record) = issue(CredentialKind::ClientLoginSid, session_ttl);
    let (lsid, lsid_record) = issue(CredentialKind::ClientLoginLsid, session_ttl);
    let (auth, mut auth_record) =
        issue(CredentialKind::ClientLoginAuth, service.clientlogin_ttl_secs);
    auth_record.scopes = grants::normalize_scopes(scopes.iter().map(String::as_str));
    for record in [&sid_record, &lsid_record, &auth_record] {
        ctx.store.credentials().insert(record).await?;
    }
    metrics::counter!("tessera_clientlogin_total", "service" => service.name.clone()).increment(1);
    audit::record(
        ctx,
        "clientlogin.success",
        Some(&account.id),
        &Actor::Account,
        ip,
        json!({ "service": service.name, "source": client_id, "app_password": app_password_ok }),
    )
    .await?;
    Ok(Ok(Issued { sid, lsid, auth }))
}
