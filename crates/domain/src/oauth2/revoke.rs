//! Revocation (RFC 7009 and Google's `/o/oauth2/revoke`): revoking an access or refresh token
//! revokes its grant, and with it every token derived from it.

use serde_json::json;
use tessera_store::CredentialKind;

use super::clients::Client;
use crate::audit::{self, Actor};
use crate::{Ctx, Result};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Done,
    /// Not a live token of ours.
    Unknown,
    /// The authenticated client does not own the token (RFC 7009 §2.1): nothing was revoked.
    NotYours,
}

/// Revokes `token`. `client` is the authenticated client when the request carried client
/// authentication; Google's form carries none and the token alone is enough.
pub async fn token(ctx: &Ctx, token: &str, client: Option<&Client>, ip: &str) -> Result<Revoked> {
    if token.is_empty() || token.len() > 4096 {
        return Ok(Revoked::Unknown);
    }
    let digest = tessera_crypto::digest::token_digest(token);
    let now = ctx.now();
    let Some(record) = ctx.store.credentials().find_live(&digest, now).await? else {
        return Ok(Revoked::Unknown);
    };
    if !matches!(record.kind, CredentialKind::AccessToken | CredentialKind::RefreshToken) {
        return Ok(Revoked::Unknown);
    }
    if let Some(client) = client
        && record.client_id.as_deref() != Some(client.id())
    {
        return Ok(Revoked::NotYours);
    }
    match &record.grant_id {
        Some(grant_id) => {
            ctx.store.grants().revoke(grant_id, now).await?;
        }
        None => {
            ctx.store.credentials().revoke(&digest, now).await?;
        }
    }
    audit::record(
        ctx,
        "oauth2.revoke",
        record.account_id.as_deref(),
        &Actor::System,
        ip,
        json!({ "grant": record.grant_id, "client": record.client_id, "kind": record.kind.as_str() }),
    )
    .await?;
    Ok(Revoked::Done)
}
