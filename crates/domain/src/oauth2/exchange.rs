//! The token endpoint's grants: authorization code (single use; a replay revokes the grant),
//! refresh token (rotated with reuse detection for public clients), client credentials and token
//! exchange for cross-client ID tokens.

use serde_json::json;
use tessera_proto_oauth2::grants::{
    authorization_code, client_credentials, refresh_token, token_exchange,
};
use tessera_proto_oauth2::pkce::{self, Method};
use tessera_store::{AccountRecord, CredentialKind, CredentialRecord, GrantRecord};

use super::clients::{Client, ClientKind};
use super::cross_client::{self, Refused};
use super::tokens::{self, IdTokenClaims, Issued, Remembered, Subject};
use super::{ACCESS_TOKEN_TTL_SECS, ErrorCode, Outcome, oauth};
use crate::audit::{self, Actor};
use crate::{Ctx, grants, services};

fn scopes_of(text: &str) -> Vec<String> {
    text.split(' ').filter(|it| !it.is_empty()).map(str::to_owned).collect()
}

async fn live_account(ctx: &Ctx, record: &CredentialRecord) -> Outcome<AccountRecord> {
    let id = record.account_id.as_deref().unwrap_or_default();
    match ctx.store.accounts().get(id).await? {
        Some(account) if tokens::account_usable(&account) => Ok(account),
        _ => Err(oauth(ErrorCode::InvalidGrant, "The account is not available.")),
    }
}

/// The credential's grant, if it is live.
async fn live_grant(ctx: &Ctx, grant_id: Option<&str>) -> Outcome<Option<GrantRecord>> {
    let Some(grant_id) = grant_id else { return Ok(None) };
    Ok(ctx.store.grants().get(grant_id).await?.filter(|it| it.revoked_at.is_none()))
}

/// Issues the access token, and the refresh and ID tokens when asked.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn issue(
    ctx: &Ctx,
    client: &Client,
    account: &AccountRecord,
    grant: &GrantRecord,
    scopes: &[String],
    refresh: bool,
    remembered: &Remembered,
) -> Outcome<Issued> {
    let scope = grants::normalize_scopes(scopes.iter().map(String::as_str));
    let subject = Subject {
        account_id: Some(&account.id),
        client_id: client.id(),
        grant_id: Some(&grant.id),
    };
    // Issued side by side, so that a store that commits concurrent inserts together (SQLite's
    // group commit) writes both rows in one transaction.
    let access = tokens::access_token(ctx, client, subject, &scope, remembered.offline);
    let refresh_token = async {
        match refresh {
            true => {
                tokens::refresh_token(ctx, subject, &scope, remembered.auth_time).await.map(Some)
            }
            false => Ok(None),
        }
    };
    let (access, refresh_token) = tokio::try_join!(access, refresh_token)?;
    let id_token = if scopes.iter().any(|it| it == "openid") {
        let claims = IdTokenClaims {
            account,
            audience: client.id(),
            authorized_party: client.id(),
            scopes,
            nonce: remembered.nonce.as_deref(),
            auth_time: remembered.auth_time,
            access_token: Some(&access),
            code: None,
        };
        Some(tokens::id_token(ctx, &claims).await?)
    } else {
        None
    };
    grants::touch(ctx, grant).await?;
    Ok(Issued {
        access_token: Some(access),
        expires_in: ACCESS_TOKEN_TTL_SECS,
        scope,
        refresh_token,
        id_token,
    })
}

async fn revoke_grant(ctx: &Ctx, record: &CredentialRecord, event: &str, ip: &str) -> Outcome<()> {
    if let Some(grant_id) = &record.grant_id {
        ctx.store.grants().revoke(grant_id, ctx.now()).await?;
    }
    audit::record(
        ctx,
        event,
        record.account_id.as_deref(),
        &Actor::System,
        ip,
        json!({ "grant": record.grant_id, "client": record.client_id }),
    )
    .await?;
    Ok(())
}

pub async fn authorization_code(
    ctx: &Ctx,
    client: &Client,
    req: &authorization_code::Request,
    ip: &str,
) -> Outcome<Issued> {
    let digest = tessera_crypto::digest::token_digest(&req.code);
    let now = ctx.now();
    let Some(record) =
        ctx.store.credentials().consume(&digest, CredentialKind::AuthorizationCode, now).await?
    else {
        // A spent code presented again: someone has a copy. Revoke what it issued (RFC 6749 §4.1.2).
        if let Some(spent) = ctx.store.credentials().get(&digest).await?
            && spent.kind == CredentialKind::AuthorizationCode
            && spent.consumed_at.is_some()
        {
            revoke_grant(ctx, &spent, "oauth2.code_replay", ip).await?;
            return Err(oauth(ErrorCode::InvalidGrant, "Code was already redeemed."));
        }
        return Err(oauth(ErrorCode::InvalidGrant, "Malformed auth code or the code expired."));
    };
    if record.client_id.as_deref() != Some(client.id()) {
        return Err(oauth(ErrorCode::InvalidGrant, "The code was issued to another client."));
    }
    let remembered = Remembered::parse(&record.data);
    let redirect_ok = match (&req.redirect_uri, remembered.redirect_sent) {
        (Some(uri), _) => remembered.redirect_uri.as_deref() == Some(uri.as_str()),
        (None, sent) => !sent,
    };
    if !redirect_ok {
        return Err(oauth(ErrorCode::InvalidGrant, "redirect_uri_mismatch"));
    }
    match (&remembered.code_challenge, &req.code_verifier) {
        (Some(challenge), Some(verifier)) => {
            let method = match remembered.code_challenge_method.as_deref() {
                Some("S256") => Method::S256,
                _ => Method::Plain,
            };
            if !pkce::verify(method, challenge, verifier) {
                return Err(oauth(ErrorCode::InvalidGrant, "The code_verifier does not match."));
            }
        }
        (Some(_), None) => {
            return Err(oauth(ErrorCode::InvalidGrant, "Missing code_verifier."));
        }
        // RFC 9700 §2.1.1: a verifier for a code issued without a challenge is a downgrade attempt.
        (None, Some(_)) => {
            return Err(oauth(
                ErrorCode::InvalidGrant,
                "No code_challenge was sent for this code.",
            ));
        }
        (None, None) if client.is_public() => {
            return Err(oauth(ErrorCode::InvalidGrant, "This client must use PKCE."));
        }
        (None, None) => {}
    }
    let Some(grant) = live_grant(ctx, record.grant_id.as_deref()).await? else {
        return Err(oauth(ErrorCode::InvalidGrant, "Token has been expired or revoked."));
    };
    let account = live_account(ctx, &record).await?;
    issue(
        ctx,
        client,
        &account,
        &grant,
        &scopes_of(&record.scopes),
        remembered.offline,
        &remembered,
    )
    .await
}

pub async fn refresh(
    ctx: &Ctx,
    client: &Client,
    req: &refresh_token::Request,
    ip: &str,
) -> Outcome<Issued> {
    let digest = tessera_crypto::digest::token_digest(&req.refresh_token);
    let now = ctx.now();
    let invalid = || oauth(ErrorCode::InvalidGrant, "Token has been expired or revoked.");
    let Some(found) = ctx.store.credentials().get(&digest).await? else {
        return Err(invalid());
    };
    if found.kind != CredentialKind::RefreshToken || found.client_id.as_deref() != Some(client.id())
    {
        return Err(invalid());
    }
    // Public clients get a new refresh token each time and the old one is spent; one presented
    // again means two parties hold it, so the whole grant goes (RFC 9700 §4.14.2).
    let rotate = client.is_public();
    let record = if rotate {
        match ctx.store.credentials().consume(&digest, CredentialKind::RefreshToken, now).await? {
            Some(record) => record,
            None => {
                if found.consumed_at.is_some() || found.revoked_at.is_none() {
                    revoke_grant(ctx, &found, "oauth2.refresh_reuse", ip).await?;
                }
                return Err(invalid());
            }
        }
    } else {
        match ctx.store.credentials().find_live(&digest, now).await? {
            Some(record) => record,
            None => return Err(invalid()),
        }
    };
    let Some(grant) = live_grant(ctx, record.grant_id.as_deref()).await? else {
        return Err(invalid());
    };
    let granted = scopes_of(&record.scopes);
    let scopes = match &req.scopes {
        None => granted.clone(),
        Some(asked) => {
            if let Some(extra) = asked.iter().find(|it| !granted.contains(it)) {
                return Err(oauth(
                    ErrorCode::InvalidScope,
                    &format!(
                        "The scope {} was not granted.",
                        extra.chars().take(100).collect::<String>()
                    ),
                ));
            }
            asked.clone()
        }
    };
    let account = live_account(ctx, &record).await?;
    let remembered = Remembered { offline: true, ..Remembered::parse(&record.data) };
    let mut issued = issue(ctx, client, &account, &grant, &scopes, false, &remembered).await?;
    if rotate {
        let subject = Subject {
            account_id: Some(&account.id),
            client_id: client.id(),
            grant_id: Some(&grant.id),
        };
        issued.refresh_token =
            Some(tokens::refresh_token(ctx, subject, &record.scopes, remembered.auth_time).await?);
    } else {
        ctx.store.credentials().touch(&digest, now).await?;
    }
    Ok(issued)
}

/// A confidential client acting as itself: an access token with no account and no grant.
pub async fn client_credentials(
    ctx: &Ctx,
    client: &Client,
    req: &client_credentials::Request,
) -> Outcome<Issued> {
    if !matches!(client.kind, ClientKind::Web | ClientKind::ServiceAccount) {
        return Err(oauth(
            ErrorCode::UnauthorizedClient,
            "Only confidential clients may use client_credentials.",
        ));
    }
    if req.scopes.iter().any(|it| matches!(it.as_str(), "openid" | "email" | "profile")) {
        return Err(oauth(ErrorCode::InvalidScope, "Identity scopes need a person."));
    }
    match services::resolve(ctx, &req.scopes).await {
        Ok(_) => {}
        Err(crate::Error::Invalid(text)) => return Err(oauth(ErrorCode::InvalidScope, &text)),
        Err(err) => return Err(err.into()),
    }
    let scope = grants::normalize_scopes(req.scopes.iter().map(String::as_str));
    let subject = Subject { account_id: None, client_id: client.id(), grant_id: None };
    let access = tokens::access_token(ctx, client, subject, &scope, false).await?;
    Ok(Issued {
        access_token: Some(access),
        expires_in: ACCESS_TOKEN_TTL_SECS,
        scope,
        refresh_token: None,
        id_token: None,
    })
}

/// Trades the client's own access token (with `openid`) for an ID token whose audience is another
/// client of the same project (cross-client identity). No consent: the project is one party.
pub async fn token_exchange(
    ctx: &Ctx,
    client: &Client,
    req: &token_exchange::Request,
) -> Outcome<Issued> {
    let Some(info) = tokens::inspect(ctx, &req.subject_token, false).await? else {
        return Err(oauth(ErrorCode::InvalidGrant, "The subject_token is not valid."));
    };
    if info.client_id != client.id() {
        return Err(oauth(ErrorCode::InvalidGrant, "The subject_token belongs to another client."));
    }
    let Some(account) = info.account.as_ref() else {
        return Err(oauth(ErrorCode::InvalidGrant, "The subject_token has no user."));
    };
    if !info.scopes.iter().any(|it| it == "openid") {
        return Err(oauth(ErrorCode::InvalidScope, "The subject_token lacks the openid scope."));
    }
    let audience = match cross_client::audience(ctx, client, &req.audience).await? {
        Ok(audience) => audience,
        Err(Refused::UnknownAudience) => {
            return Err(oauth(
                ErrorCode::InvalidTarget,
                "The audience is not a registered client.",
            ));
        }
        Err(Refused::OtherProject) => {
            return Err(oauth(
                ErrorCode::InvalidTarget,
                "The audience belongs to another project.",
            ));
        }
    };
    let claims = IdTokenClaims {
        account,
        audience: audience.id(),
        authorized_party: client.id(),
        scopes: &info.scopes,
        nonce: None,
        auth_time: None,
        access_token: None,
        code: None,
    };
    let id_token = tokens::id_token(ctx, &claims).await?;
    Ok(Issued {
        access_token: None,
        expires_in: super::ID_TOKEN_TTL_SECS,
        scope: grants::normalize_scopes(info.scopes.iter().map(String::as_str)),
        refresh_token: None,
        id_token: Some(id_token),
    })
}
