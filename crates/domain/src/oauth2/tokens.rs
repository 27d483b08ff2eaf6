//! Issuing and looking up OAuth 2.0 credentials: authorization codes, opaque access and refresh
//! tokens (credential rows keyed by the SHA-256 of 256 random bits), and ID tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tessera_crypto::keys::KeyAlg;
use tessera_store::{AccountRecord, CredentialKind, CredentialRecord};

use super::clients::Client;
use super::{ACCESS_TOKEN_TTL_SECS, CODE_TTL_SECS, ID_TOKEN_TTL_SECS, jwt};
use crate::credentials::{self, Scopes, Valid};
use crate::{Ctx, Error, Result, accounts, claims};

/// What the token endpoint answers on success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub access_token: Option<String>,
    /// `Bearer`, or `DPoP` when the access token is bound to the proof's key (RFC 9449 §5).
    pub token_type: &'static str,
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
    /// The thumbprint of the DPoP key the token is bound to (RFC 9449 §6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

impl Remembered {
    pub fn parse(data: &str) -> Remembered {
        serde_json::from_str(data).unwrap_or_default()
    }

    fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|err| Error::Internal(err.to_string()))
    }
}

/// A new token after `prefix` and the digest its row is stored under. Codes, access and refresh
/// tokens are ordered (an issue stamp before 256 random bits), so that the rows of the tokens a
/// busy server mints sit together in the store's index.
fn secret(ctx: &Ctx, prefix: &str) -> (String, String) {
    let random = tessera_crypto::random::ordered_token(ctx.rng.as_ref(), ctx.now(), 32);
    let token = format!("{prefix}{random}");
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
/// client asks for those. Issued at once.
pub async fn access_token(
    ctx: &Ctx,
    client: &Client,
    subject: Subject<'_>,
    scopes: &str,
    offline: bool,
) -> Result<String> {
    access_token_bound(ctx, client, subject, scopes, offline, None).await
}

/// [`access_token`], bound to the DPoP key with thumbprint `jkt` when there is one.
pub async fn access_token_bound(
    ctx: &Ctx,
    client: &Client,
    subject: Subject<'_>,
    scopes: &str,
    offline: bool,
    jkt: Option<&str>,
) -> Result<String> {
    let (token, record) = access_token_row(ctx, client, subject, scopes, offline, jkt).await?;
    ctx.store.credentials().insert(&record).await?;
    Ok(token)
}

/// [`access_token`]'s token and row, not yet stored (a redemption writes it in its transaction).
pub async fn access_token_row(
    ctx: &Ctx,
    client: &Client,
    subject: Subject<'_>,
    scopes: &str,
    offline: bool,
    jkt: Option<&str>,
) -> Result<(String, CredentialRecord)> {
    let now = ctx.now();
    let (token, digest) = if client.settings.jwt_access_tokens {
        // RFC 9068. The row below still makes it revocable at our own endpoints; a resource
        // server that only checks the signature accepts it until `exp`.
        // Ordered, like opaque tokens: the row is stored under the stamp (`token_digest`).
        let jti = tessera_crypto::random::ordered_token(ctx.rng.as_ref(), now, 16);
        let sub = match subject.account_id {
            Some(id) => accounts::subject(id),
            None => subject.client_id.to_owned(),
        };
        let mut claims = json!({
            "iss": &*ctx.public_url,
            "sub": sub,
            "aud": subject.client_id,
            "client_id": subject.client_id,
            "scope": scopes,
            "iat": now,
            "exp": now + ACCESS_TOKEN_TTL_SECS,
            "jti": jti,
        });
        if let Some(jkt) = jkt {
            claims["cnf"] = json!({ "jkt": jkt });
        }
        let token = jwt::sign_with(ctx, KeyAlg::Es256, "at+jwt", &claims).await?;
        let digest = tessera_crypto::digest::token_digest(&token);
        (token, digest)
    } else {
        secret(ctx, "ya29.")
    };
    let mut record = row(digest, CredentialKind::AccessToken, subject, scopes, now);
    record.expires_at = Some(now + ACCESS_TOKEN_TTL_SECS);
    let jkt = jkt.map(str::to_owned);
    record.data = Remembered { offline, jkt, ..Remembered::default() }.to_json()?;
    Ok((token, record))
}

pub use crate::credentials::account_usable;

/// Live refresh tokens one account may hold for one client: the eleventh revokes the oldest.
pub const MAX_REFRESH_TOKENS_PER_CLIENT: u32 = credentials::PER_APP_CAP;

/// A refresh token's row (no expiry; dies with its grant) and the token itself, not yet stored.
pub fn refresh_token_row(
    ctx: &Ctx,
    subject: Subject<'_>,
    scopes: &str,
    auth_time: Option<i64>,
    jkt: Option<&str>,
) -> Result<(String, CredentialRecord)> {
    let (token, digest) = secret(ctx, "1/");
    let jkt = jkt.map(str::to_owned);
    let record = CredentialRecord {
        data: Remembered { offline: true, auth_time, jkt, ..Remembered::default() }.to_json()?,
        ..row(digest, CredentialKind::RefreshToken, subject, scopes, ctx.now())
    };
    Ok((token, record))
}

/// Issues a refresh token under Google's cap of [`MAX_REFRESH_TOKENS_PER_CLIENT`] per account and
/// client, the oldest (by issue order) revoked atomically with the insert.
pub async fn refresh_token(
    ctx: &Ctx,
    subject: Subject<'_>,
    scopes: &str,
    auth_time: Option<i64>,
) -> Result<String> {
    let (token, record) = refresh_token_row(ctx, subject, scopes, auth_time, None)?;
    credentials::issue_capped(ctx, &record).await?;
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
    let released = claims::release(
        input.account,
        &Scopes::from_names(input.scopes.iter().map(String::as_str)),
    );
    released.render_into(claims::Names::OpenIdConnect, &mut claims);
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
    /// The DPoP key thumbprint the token is bound to (`cnf.jkt`).
    pub jkt: Option<String>,
}

impl TokenInfo {
    pub fn expires_in(&self, now: i64) -> Option<i64> {
        self.expires_at.map(|at| (at - now).max(0))
    }
}

/// How an access token was presented, which decides whether a DPoP-bound one is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presentation<'a> {
    /// `Authorization: Bearer` or a parameter: only unbound tokens.
    Bearer,
    /// `Authorization: DPoP` with a proof (already checked) of the key with this thumbprint: only
    /// tokens bound to that key.
    Dpop(&'a str),
    /// Introspection by a resource server, which checks the proof itself: either, answered with
    /// the binding.
    Introspection,
}

/// The one validation of OAuth 2.0 access tokens (and, with `refresh`, refresh tokens): a
/// JWT-shaped token must carry our signature and `typ: at+jwt` before its digest is looked up;
/// then [`credentials::find_valid`] decides, like for every other credential, and the token's DPoP
/// binding must fit how it was presented: a bound token is never accepted as a plain bearer token,
/// nor with another key's proof, and an unbound one never under `DPoP`.
pub async fn validate_access_token(
    ctx: &Ctx,
    token: &str,
    refresh: bool,
    presentation: Presentation<'_>,
) -> Result<Option<Valid>> {
    if token.is_empty() || token.len() > 4096 {
        return Ok(None);
    }
    // JWT access tokens (RFC 9068) are registered by digest like opaque ones, so a revoked grant
    // stops them too; their signature is checked first, so forgeries never reach the store.
    if token.split('.').count() == 3 {
        match jwt::verify(ctx, token).await? {
            Ok((header, _)) if header.get("typ").and_then(|it| it.as_str()) == Some("at+jwt") => {}
            _ => return Ok(None),
        }
    }
    let kinds: &[CredentialKind] = match refresh {
        true => &[CredentialKind::AccessToken, CredentialKind::RefreshToken],
        false => &[CredentialKind::AccessToken],
    };
    let Some(valid) = credentials::find_valid(ctx, token, kinds).await? else { return Ok(None) };
    let bound = Remembered::parse(&valid.record.data).jkt;
    let fits = match (presentation, bound.as_deref()) {
        (Presentation::Introspection, _) | (Presentation::Bearer, None) => true,
        (Presentation::Dpop(jkt), Some(bound)) => {
            tessera_crypto::digest::ct_eq(jkt.as_bytes(), bound.as_bytes())
        }
        (Presentation::Bearer, Some(_)) | (Presentation::Dpop(_), None) => false,
    };
    Ok(fits.then_some(valid))
}

/// Looks up a live access token (or, with `refresh`, also a refresh token) presented as a plain
/// bearer token, through the one validator, as tokeninfo and userinfo describe it.
pub async fn inspect(ctx: &Ctx, token: &str, refresh: bool) -> Result<Option<TokenInfo>> {
    inspect_presented(ctx, token, refresh, Presentation::Bearer).await
}

/// [`inspect`] for a token presented some other way (DPoP, introspection).
pub async fn inspect_presented(
    ctx: &Ctx,
    token: &str,
    refresh: bool,
    presentation: Presentation<'_>,
) -> Result<Option<TokenInfo>> {
    let Some(valid) = validate_access_token(ctx, token, refresh, presentation).await? else {
        return Ok(None);
    };
    let scopes = valid.scopes().to_vec();
    let record = valid.record;
    let remembered = Remembered::parse(&record.data);
    Ok(Some(TokenInfo {
        kind: record.kind,
        account: valid.account,
        client_id: record.client_id.clone().unwrap_or_default(),
        grant_id: record.grant_id,
        scopes,
        issued_at: record.created_at,
        expires_at: record.expires_at,
        offline: remembered.offline,
        jkt: remembered.jkt,
    }))
}

/// Introspection (RFC 7662) by `asking`, an authenticated client: the token as the one validator
/// sees it (access or refresh, bound or not: the resource server checks the proof), if it was
/// issued to a client of `asking`'s own project; `None` for anything else. The token's client is
/// read only when it is not the one asking (the validator already read that it exists).
pub async fn introspect(ctx: &Ctx, asking: &Client, token: &str) -> Result<Option<TokenInfo>> {
    let Some(info) = inspect_presented(ctx, token, true, Presentation::Introspection).await? else {
        return Ok(None);
    };
    if info.client_id != asking.id() {
        let owner = super::clients::load(ctx, &info.client_id).await?;
        if owner.is_none_or(|it| it.record.project_id != asking.record.project_id) {
            return Ok(None);
        }
    }
    Ok(Some(info))
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
