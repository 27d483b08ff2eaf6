//! The migration grants: an application trades a legacy credential it holds (an OAuth 1.0 access
//! token, an AuthSub session token or a ClientLogin `Auth` token) for an OAuth 2.0 access and
//! refresh token on the same scopes, without asking the person again.
//!
//! The OAuth 2.0 client must be confidential, authenticate, and belong to the same project as the
//! legacy registration the credential was issued to (the project is one party, as for
//! cross-client identity). The person's permission is recorded as an OAuth 2.0 grant to that
//! client with the legacy credential's scopes, in the same store transaction that consumes the
//! legacy credential and writes the new tokens (`CredentialStore::redeem`), so it buys tokens and
//! a grant exactly once whichever node is asked.

use serde_json::json;
use tessera_proto_oauth2::grants::migration::Request;
use tessera_store::{CredentialKind, Redemption};

use super::clients::{Client, ClientKind};
use super::exchange::prepare;
use super::tokens::{Issued, Remembered};
use super::{ErrorCode, Outcome, oauth};
use crate::Ctx;
use crate::audit::{self, Actor};
use crate::credentials::{self, Protocol, Scopes, Valid};
use crate::grants::{self, Giving};
use crate::oauth1::{self, Incoming};

/// The legacy credentials `legacy_token` may name.
pub const LEGACY_TOKEN_KINDS: [CredentialKind; 2] =
    [CredentialKind::AuthsubSession, CredentialKind::ClientLoginAuth];

/// Runs a migration grant for an authenticated `client`. `signed` is the token request as an
/// OAuth 1.0 signed request (its `Authorization: OAuth` pairs, URL and body), needed by the
/// `oauth1` grant type.
pub async fn migrate(
    ctx: &Ctx,
    client: &Client,
    request: &Request,
    signed: Option<&Incoming>,
    ip: &str,
    jkt: Option<&str>,
) -> Outcome<Issued> {
    if client.kind != ClientKind::Web {
        return Err(oauth(
            ErrorCode::UnauthorizedClient,
            "Only confidential web clients may migrate legacy credentials.",
        ));
    }
    let invalid = || oauth(ErrorCode::InvalidGrant, "The legacy credential is not valid.");
    let legacy: Valid = match request {
        Request::OAuth1 => {
            let Some(signed) = signed.filter(|it| names_oauth1_parameters(it)) else {
                return Err(oauth(
                    ErrorCode::InvalidRequest,
                    "Sign the request with OAuth 1.0 and the access token to migrate.",
                ));
            };
            let verified =
                match oauth1::verify(ctx, signed, &[CredentialKind::Oauth1AccessToken]).await? {
                    Ok(verified) => verified,
                    Err(problem) => {
                        return Err(oauth(
                            ErrorCode::InvalidGrant,
                            &format!("The OAuth 1.0 signature was refused: {}.", problem.word()),
                        ));
                    }
                };
            match verified.token {
                Some(token) => token,
                None => {
                    return Err(oauth(
                        ErrorCode::InvalidGrant,
                        "The OAuth 1.0 request names no access token.",
                    ));
                }
            }
        }
        Request::LegacyToken(token) => {
            match credentials::find_valid(ctx, token, &LEGACY_TOKEN_KINDS).await? {
                Some(valid) => valid,
                None => return Err(invalid()),
            }
        }
    };
    let record = &legacy.record;
    let (Some(account), Some(legacy_client)) = (&legacy.account, record.client_id.as_deref())
    else {
        return Err(invalid());
    };
    // The legacy registration the credential was issued to, and the same project.
    let registration = ctx.store.projects().get_client(legacy_client).await?;
    if registration.is_none_or(|it| it.project_id != client.record.project_id) {
        return Err(oauth(
            ErrorCode::InvalidGrant,
            "The legacy credential belongs to an application of another project.",
        ));
    }
    let protocol = Protocol::of_kind(record.kind).ok_or_else(invalid)?;
    let scopes = Scopes::parse(&record.scopes).to_vec();
    if scopes.is_empty() {
        return Err(invalid());
    }
    // The permission is recorded in the transaction that consumes the legacy credential: of
    // racing migrations of one credential only the winner leaves a grant behind.
    let giving = grants::to_give(ctx, &account.id, client.id(), Protocol::OAuth2, &scopes).await?;
    let (Giving::Held(asked) | Giving::New(asked)) = &giving;
    let remembered =
        Remembered { offline: true, jkt: jkt.map(str::to_owned), ..Remembered::default() };
    let prepared = prepare(ctx, client, account, &asked.id, &scopes, true, &remembered).await?;
    let redemption = Redemption {
        digest: &record.digest,
        kind: record.kind,
        client_id: legacy_client,
        issue: &prepared.rows,
        cap: Some((CredentialKind::RefreshToken, credentials::PER_APP_CAP)),
        grant: match &giving {
            Giving::New(record) => Some(record),
            Giving::Held(_) => None,
        },
    };
    let Some(redeemed) = ctx.store.credentials().redeem(&redemption, ctx.now()).await? else {
        // Another exchange (or a revocation) consumed it first.
        return Err(oauth(ErrorCode::InvalidGrant, "The legacy credential was already used."));
    };
    let grant = match redeemed.grant {
        Some(stored) => {
            grants::given(ctx, &stored, ip).await?;
            stored
        }
        None => asked.clone(),
    };
    audit::record(
        ctx,
        "legacy.migrate",
        Some(&account.id),
        &Actor::System,
        ip,
        json!({
            "protocol": protocol.as_str(),
            "from_client": legacy_client,
            "client": client.id(),
            "grant": grant.id,
            "scopes": grant.scopes,
        }),
    )
    .await?;
    Ok(prepared.issued)
}

/// Whether a token request carries OAuth 1.0 protocol parameters at all (in `Authorization:
/// OAuth`, the body or the query); the grant's own form fields are not a signature.
fn names_oauth1_parameters(incoming: &Incoming) -> bool {
    let query = incoming.facts.url.split_once('?').map(|(_, query)| query).unwrap_or_default();
    !incoming.header.is_empty()
        || incoming.form.iter().any(|(name, _)| name.starts_with("oauth_"))
        || query.split('&').any(|pair| pair.starts_with("oauth_"))
}
