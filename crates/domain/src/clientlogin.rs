//! ClientLogin: an installed application sends the person's email and password (or, for 2-step
//! accounts, an app password) and gets `SID`, `LSID` and a per-service `Auth` token. The same
//! failure counters as the browser sign-in decide when a CAPTCHA comes first, and
//! `DisplayUnlockCaptcha` lets one client IP through without one for a few minutes.

use serde_json::json;
use tessera_store::{AccountRecord, AccountState, CredentialKind, CredentialRecord, ServiceRecord};

use crate::audit::{self, Actor};
use crate::credentials::{self, ClientLoginData};
use crate::password::{self, Checked};
use crate::{Ctx, Error, Result, captcha, grants, services};

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

/// `DisplayUnlockCaptcha` was solved: the next ClientLogin from `ip` within
/// [`UNLOCK_TTL_SECS`] skips the CAPTCHA (once).
pub async fn unlock(ctx: &Ctx, account_id: &str, ip: &str) -> Result<()> {
    password::unlock(ctx, ip, UNLOCK_TTL_SECS).await?;
    audit::record(ctx, "clientlogin.unlock", Some(account_id), &Actor::Account, ip, json!({})).await
}

fn fits_google(account: &AccountRecord) -> bool {
    account.domain.is_none()
}

fn fits_hosted(account: &AccountRecord) -> bool {
    account.domain.is_some()
}

pub async fn login(ctx: &Ctx, login: Login) -> Result<Result<Issued, Refusal>> {
    let service = match services::get(ctx, &login.service).await {
        Ok(service) => service,
        Err(Error::NotFound) => return Ok(Err(Refusal::Unknown)),
        Err(err) => return Err(err),
    };
    if !services::accepts(&service, credentials::Protocol::ClientLogin) {
        return Ok(Err(Refusal::ServiceDisabled));
    }
    let ip = login.ip.as_str();
    let fits: fn(&AccountRecord) -> bool = match login.account_kind {
        AccountKind::HostedOrGoogle => |_| true,
        AccountKind::Google => fits_google,
        AccountKind::Hosted => fits_hosted,
    };
    let checked = password::check(
        ctx,
        password::Attempt {
            email: &login.email,
            password: &login.password,
            captcha: login
                .captcha
                .as_ref()
                .map(|(token, answer)| (token.as_str(), answer.as_str())),
            ip,
            accept: password::Accept::PasswordOrAppPassword,
            fits,
            unlockable: true,
            event: "clientlogin",
        },
    )
    .await?;
    let (account, via) = match checked {
        Checked::Ok { account, via } => (account, via),
        Checked::CaptchaRequired { .. } => {
            let token = captcha::issue(ctx).await?.token;
            return Ok(Err(Refusal::CaptchaRequired { token }));
        }
        // The budget is per account; ClientLogin has no code of its own for it, and a distinct
        // answer would tell a guesser which passwords were never tried.
        Checked::Throttled => return Ok(Err(Refusal::BadAuthentication { second_factor: false })),
        Checked::BadCredentials { second_factor } => {
            return Ok(Err(Refusal::BadAuthentication { second_factor }));
        }
        Checked::Refused { account } => {
            return Ok(Err(match account.state {
                AccountState::Deleted => Refusal::AccountDeleted,
                _ => Refusal::AccountDisabled,
            }));
        }
    };
    let refusal = match account.state {
        AccountState::EmailUnverified => Some(Refusal::NotVerified),
        AccountState::MustAcceptTerms => Some(Refusal::TermsNotAgreed),
        AccountState::Active | AccountState::Disabled | AccountState::Deleted => None,
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
    let app_password_ok = via == password::Via::AppPassword;
    let client_id = login
        .source
        .as_deref()
        .map(|it| it.chars().take(200).collect::<String>())
        .unwrap_or_else(|| ANONYMOUS_SOURCE.to_owned());
    let scopes = credentials::Scopes::parse(&service.scopes).to_vec();
    let grant = grants::grant(
        ctx,
        &account.id,
        &client_id,
        credentials::Protocol::ClientLogin,
        &scopes,
        ip,
    )
    .await?;
    let issued = issue(ctx, &account.id, &service, &grant.id, &client_id, &grant.scopes).await?;
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
    Ok(Ok(issued))
}

/// Mints the SID, LSID (one login: they carry a shared login id) and `Auth` for `service`, each
/// hanging from `grant_id` and `client_id`; SID and LSID carry `grant_scopes`, `Auth` the
/// service's scopes. The one issue of ClientLogin's three lines (`ClientLogin`, `OAuthLogin`).
pub async fn issue(
    ctx: &Ctx,
    account_id: &str,
    service: &ServiceRecord,
    grant_id: &str,
    client_id: &str,
    grant_scopes: &str,
) -> Result<Issued> {
    let now = ctx.now();
    let data = credentials::encode(&ClientLoginData {
        service: service.name.clone(),
        login: ctx.new_id(),
    })?;
    let issue = |kind: CredentialKind, ttl: i64| {
        let (token, digest) = ctx.new_token();
        let mut record = CredentialRecord::new(digest, kind, now);
        record.account_id = Some(account_id.to_owned());
        record.grant_id = Some(grant_id.to_owned());
        record.client_id = Some(client_id.to_owned());
        record.scopes = grant_scopes.to_owned();
        record.data = data.clone();
        record.expires_at = Some(now + ttl);
        (token, record)
    };
    let session_ttl = ctx.policy.persistent_session_ttl_secs;
    let (sid, sid_record) = issue(CredentialKind::ClientLoginSid, session_ttl);
    let (lsid, lsid_record) = issue(CredentialKind::ClientLoginLsid, session_ttl);
    let (auth, mut auth_record) =
        issue(CredentialKind::ClientLoginAuth, service.clientlogin_ttl_secs);
    let scopes = credentials::Scopes::parse(&service.scopes).to_vec();
    auth_record.scopes = grants::normalize_scopes(scopes.iter().map(String::as_str));
    for record in [&sid_record, &lsid_record, &auth_record] {
        ctx.store.credentials().insert(record).await?;
    }
    Ok(Issued { sid, lsid, auth })
}
