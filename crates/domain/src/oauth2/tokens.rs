//! Issuing and looking up OAuth 2.0 credentials: authorization codes, opaque access and refresh
//! tokens (credential rows keyed by the SHA-256 of 256 random bits), and ID tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tessera_crypto::keys::KeyAlg;
use tessera_store::{AccountRecord, AccountState, CredentialKind, CredentialRecord};

use super::clients::Client;
use super::{ACCESS_TOKEN_TTL_SECS, CODE_TTL_SECS, ID_TOKEN_TTL_SECS, jwt};
use crate::{Ctx, Error, Result, accounts};

/// What the token endpoint answers on success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub access_token: Option<String>,
    pub expires_in: i64,
    /// The granted set, space-separated.
    pub scope: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

/// What a code or refresh token remembers besides its row's columns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// The redirect URI the code was sent to, and whether the request named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(default)]
    pub redirect_sent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default)]
    pub offline: bool,
}

impl Remembered {
    pub fn parse(data: &str) -> Remembered {
        serde_json::from_str(data).unwrap_or_default()
    }

    fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|err| Error::Internal(err.to_string()))
    }
}

fn secret(ctx: &Ctx, prefix: &str) -> (String, String) {
    let token = format!("{prefix}{}", tessera_crypto::random::token(ctx.rng.as_ref(), 32));
    let digest = tessera_crypto::digest::token_digest(&token);
    (token, digest)
}

/// Who a credential is for.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub account_id: Option<&'a str>,
    pub client_id: &'a str,
    pub grant_id: Option<&'a str>,
}

fn row(
    digest: String,
    kind: CredentialKind,
    subject: Subject<'_>,
    scopes: &str,
    now: i64,
) -> CredentialRecord {
    let mut record = CredentialRecord::new(digest, kind, now);
    record.account_id = subject.account_id.map(str::to_owned);
    record.client_id = Some(subject.client_id.to_owned());
    record.grant_id = subject.grant_id.map(str::to_owned);
    record.scopes = scopes.to_owned();
    record
}

/// A single-use authorization code, valid for ten minutes.
pub async fn code(
    ctx: &Ctx,
    subject: Subject<'_>,
    scopes: &str,
    remembered: &Remembered,
) -> Result<String> {
    let (code, digest) = secret(ctx, "4/");
    let now = ctx.now();
    let mut record = row(digest, CredentialKind::AuthorizationCode, subject, scopes, now);
    record.expires_at = Some(now + CODE_TTL_SECS);
    record.data = remembered.to_json()?;
    ctx.store.credentials().insert(&record).await?;
    Ok(code)
}

/// An access token for `subject`, whose client is `client`: opaque, or an RFC 9068 JWT when the
/// client asks for those.
pub async fn access_token(
    ctx: &Ctx,
    client: &Client,
    subject: Subject<'_>,
    scopes: &str,
    offline: bool,
) -> Result<String> {
    let now = ctx.now();
    let (token, digest) = if client.settings.jwt_access_tokens {
        // RFC 9068. The row below still makes it revocable at our own endpoints; a resource
        // server that only checks the signature accepts it until `exp`.
        let jti = tessera_crypto::random::token(ctx.rng.as_ref(), 16);
        let sub = match subject.account_id {
            Some(id) => accounts::subject(id),
            None => subject.client_id.to_owned(),
        };
        let claims = json!({
            "iss": &*ctx.public_url,
            "sub": sub,
            "aud": subject.client_id,
            "client_id": subject.client_id,
            "scope": scopes,
            "iat": now,
            "exp": now + ACCESS_TOKEN_TTL_SECS,
            "jti": jti,
        });
        let token = jwt::sign_with(ctx, KeyAlg::Es256, "at+jwt", &claims).await?;
        let digest = tessera_crypto::digest::token_digest(&token);
        (token, digest)
    } else {
        secret(ctx, "ya29.")
    };
    let mut record = row(digest, CredentialKind::AccessToken, subject, scopes, now);
    record.expires_at = Some(now + ACCESS_TOKEN_TTL_SECS);
    record.data = Remembered { offline, ..Remembered::default() }.to_json()?;
    ctx.store.credentials().insert(&record).await?;
    Ok(token)
}

/// Live refresh tokens one account may hold for one client.
pub const MAX_REFRESH_TOKENS_PER_CLIENT: usize = 10;

/// A refresh token: no expiry, dies with its grant; an account's eleventh for one client revokes
/// the oldest.
pub async fn refresh_token(
    ctx: &Ctx,
    subject: Subject<'_>,
    scopes: &str,
    auth_time: Option<i64>,
) -> Result<String> {
    let (token, digest) = secret(ctx, "1/");
    let record = CredentialRecord {
        data: Remembered { offline: true, auth_time, ..Remembered::default() }.to_json()?,
        ..row(digest, CredentialKind::RefreshToken, subject, scopes, ctx.now())
    };
    ctx.store.credentials().insert(&record).await?;
    // Google's rule: at most this many live refresh tokens per account and client; the oldest go.
    if let Some(account_id) = subject.account_id {
        let live: Vec<CredentialRecord> = ctx
            .store
            .credentials()
            .list_live_by_account(account_id, CredentialKind::RefreshToken, ctx.now())
            .await?
            .into_iter()
            .filter(|it| it.client_id.as_deref() == Some(subject.client_id))
            .collect();
        let excess = live.len().saturating_sub(MAX_REFRESH_TOKENS_PER_CLIENT);
        for old in live.iter().take(excess) {
            ctx.store.credentials().revoke(&old.digest, ctx.now()).await?;
        }
    }
    Ok(token)
}

/// The left half of SHA-256, base64url: `at_hash` and `c_hash` (OpenID Connect Core §3.1.3.6).
pub fn half_hash(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(&tessera_crypto::digest::sha256(value.as_bytes())[..16])
}

/// What goes into one ID token.
#[derive(Debug, Clone)]
pub struct IdTokenClaims<'a> {
    pub account: &'a AccountRecord,
    /// The client the token is for.
    pub audience: &'a str,
    /// The client that asked for it.
    pub authorized_party: &'a str,
    pub scopes: &'a [String],
    pub nonce: Option<&'a str>,
    pub auth_time: Option<i64>,
    pub access_token: Option<&'a str>,
    pub code: Option<&'a str>,
}

pub fn id_token_claims(ctx: &Ctx, input: &IdTokenClaims<'_>) -> Value {
    let now = ctx.now();
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(&*ctx.public_url));
    claims.insert("sub".into(), json!(accounts::subject(&input.account.id)));
    claims.insert("aud".into(), json!(input.audience));
    claims.insert("azp".into(), json!(input.authorized_party));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + ID_TOKEN_TTL_SECS));
    if let Some(auth_time) = input.auth_time {
        claims.insert("auth_time".into(), json!(auth_time));
    }
    if let Some(nonce) = input.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    if let Some(token) = input.access_token {
        claims.insert("at_hash".into(), json!(half_hash(token)));
    }
    if let Some(code) = input.code {
        claims.insert("c_hash".into(), json!(half_hash(code)));
    }
    let has = |scope: &str| input.scopes.iter().any(|it| it == scope);
    if has("email") {
        claims.insert("email".into(), json!(input.account.email));
        claims.insert(
            "email_verified".into(),
            json!(input.account.state != AccountState::EmailUnverified),
        );
    }
    if has("profile") && !input.account.name.is_empty() {
        claims.insert("name".into(), json!(input.account.name));
    }
    if let Some(domain) = &input.account.domain {
        claims.insert("hd".into(), json!(domain));
    }
    Value::Object(claims)
}

pub async fn id_token(ctx: &Ctx, input: &IdTokenClaims<'_>) -> Result<String> {
    jwt::sign(ctx, "JWT", &id_token_claims(ctx, input)).await
}

/// A live access or refresh token, as tokeninfo and introspection describe it.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub kind: CredentialKind,
    pub account: Option<AccountRecord>,
    pub client_id: String,
    pub grant_id: Option<String>,
    pub scopes: Vec<String>,
    pub issued_at: i64,
    pub expires_at: Option<i64>,
    pub offline: bool,
}

impl TokenInfo {
    pub fn expires_in(&self, now: i64) -> Option<i64> {
        self.expires_at.map(|at| (at - now).max(0))
    }
}

/// Looks up a live access token (or, with `refresh`, also a refresh token) of a live grant.
pub async fn inspect(ctx: &Ctx, token: &str, refresh: bool) -> Result<Option<TokenInfo>> {
    if token.is_empty() || token.len() > 4096 {
        return Ok(None);
    }
    let digest = tessera_crypto::digest::token_digest(token);
    let Some(live) = ctx.store.credentials().find_live_token(&digest, ctx.now()).await? else {
        return Ok(None);
    };
    let record = live.credential;
    let wanted = record.kind == CredentialKind::AccessToken
        || (refresh && record.kind == CredentialKind::RefreshToken);
    // A revoked grant's tokens are dead; so are a deleted client's, grant or not (client
    // credentials, service accounts), and a disabled or deleted account's.
    if !wanted || live.grant_revoked || !live.client_exists {
        return Ok(None);
    }
    let account = match (&record.account_id, live.account) {
        (None, _) => None,
        (Some(_), Some(account)) if account_usable(&account) => Some(account),
        (Some(_), _) => return Ok(None),
    };
    let client_id = record.client_id.clone().unwrap_or_default();
    let offline = Remembered::parse(&record.data).offline;
    Ok(Some(TokenInfo {
        kind: record.kind,
        account,
        client_id,
        grant_id: record.grant_id,
        scopes: record.scopes.split(' ').filter(|it| !it.is_empty()).map(str::to_owned).collect(),
        issued_at: record.created_at,
        expires_at: record.expires_at,
        offline,
    }))
}

/// Whether tokens of this account may still be used.
pub fn account_usable(account: &AccountRecord) -> bool {
    matches!(account.state, AccountState::Active | AccountState::EmailUnverified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_hash_matches_the_oidc_example() {
        // OpenID Connect Core 1.0 A.4: the c_hash of the example authorization code.
        assert_eq!(
            half_hash("Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"),
            "LDktKdoQak3Pk0cnXxCltA"
        );
    }
}
