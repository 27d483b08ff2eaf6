//! JWTs that clients sign with their registered keys: the service-account grant (RFC 7523 §2.1,
//! Google's `jwt-bearer`) and `private_key_jwt` client authentication (RFC 7523 §2.2). Each
//! assertion is accepted once: its `jti` (or, without one, its digest) goes into a replay cache
//! until it expires.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tessera_crypto::keys::KeyAlg;
use tessera_store::{CredentialKind, CredentialRecord};

use super::clients::{self, Client, ClientKind};
use super::tokens::{self, Issued, Subject};
use super::{ACCESS_TOKEN_TTL_SECS, ErrorCode, Outcome, jwt, oauth};
use crate::{Ctx, Error, grants, services};

/// Longest accepted `exp - iat` (Google: one hour).
pub const MAX_LIFETIME_SECS: i64 = 3600;
/// Clock skew allowed on `iat`.
pub const SKEW_SECS: i64 = 300;

/// The token URLs an assertion's `aud` may name: ours, and Google's historical ones (client
/// libraries hard-code them whatever host they post to).
fn audiences(ctx: &Ctx) -> Vec<String> {
    let base = &*ctx.public_url;
    vec![
        format!("{base}/o/oauth2/token"),
        format!("{base}/token"),
        format!("{base}/oauth2/v3/token"),
        format!("{base}/oauth2/v4/token"),
        base.to_owned(),
        "https://accounts.google.com/o/oauth2/token".to_owned(),
        "https://oauth2.googleapis.com/token".to_owned(),
        "https://www.googleapis.com/oauth2/v4/token".to_owned(),
    ]
}

/// What client assertions may be signed with: the only algorithm client keys are registered with.
const ASSERTION_ALG: KeyAlg = KeyAlg::Rs256;

/// Decodes and checks an assertion signed by `client`: signature with one of its keys (through
/// [`jwt::Jws::verify`], the algorithm being the key record's), audience, lifetime, and one-time use.
async fn verify(ctx: &Ctx, client: &Client, assertion: &str) -> Outcome<Value> {
    let bad = |text: &str| oauth(ErrorCode::InvalidGrant, text);
    let Some(jws) = jwt::Jws::parse(assertion) else {
        return Err(bad("Malformed assertion."));
    };
    if jws.header_alg() != Some(ASSERTION_ALG.as_str()) {
        return Err(bad("Assertions are signed with RS256."));
    }
    let kid = jws.kid();
    let verified = client
        .settings
        .keys
        .iter()
        .filter(|key| kid.is_none_or(|kid| kid == key.kid))
        .filter_map(|key| {
            let alg = KeyAlg::parse(&key.alg).ok()?;
            Some((alg, STANDARD.decode(&key.public_der).ok()?))
        })
        .any(|(alg, public)| jws.verify(alg, &public));
    if !verified {
        return Err(bad("Invalid JWT Signature."));
    }
    let claims = jws.claims;
    let now = ctx.now();
    let (Some(iat), Some(exp)) =
        (claims.get("iat").and_then(Value::as_i64), claims.get("exp").and_then(Value::as_i64))
    else {
        return Err(bad("The assertion needs iat and exp."));
    };
    if exp <= now || iat > now + SKEW_SECS || exp - iat > MAX_LIFETIME_SECS || exp < iat {
        return Err(bad(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        ));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => audiences(ctx).contains(aud),
        Some(Value::Array(list)) => {
            let allowed = audiences(ctx);
            list.iter().filter_map(Value::as_str).any(|aud| allowed.iter().any(|it| it == aud))
        }
        _ => false,
    };
    if !aud_ok {
        return Err(bad("Invalid JWT audience."));
    }
    if claims.get("iss").and_then(Value::as_str) != Some(client.id()) {
        return Err(bad("The assertion's iss is not this client."));
    }
    let replay_key = match claims.get("jti").and_then(Value::as_str) {
        Some(jti) if !jti.is_empty() && jti.len() <= 256 => format!("jti:{jti}"),
        _ => format!("assertion:{}", tessera_crypto::digest::token_digest(assertion)),
    };
    let digest =
        tessera_crypto::digest::sha256_hex(format!("{}\0{replay_key}", client.id()).as_bytes());
    let mut nonce =
        CredentialRecord::new(format!("jwt-replay:{digest}"), CredentialKind::Nonce, now);
    nonce.client_id = Some(client.id().to_owned());
    nonce.expires_at = Some(exp + SKEW_SECS);
    if !ctx.store.credentials().insert_once(&nonce).await? {
        return Err(bad("The assertion was already used."));
    }
    Ok(claims)
}

/// `private_key_jwt`: `iss` and `sub` are the client id.
pub async fn client_assertion(ctx: &Ctx, client: &Client, assertion: &str) -> Outcome<()> {
    let claims = verify(ctx, client, assertion).await.map_err(|err| match err {
        super::Failure::OAuth(err) => oauth(ErrorCode::InvalidClient, &err.description),
        other => other,
    })?;
    if claims.get("sub").and_then(Value::as_str) != Some(client.id()) {
        return Err(oauth(ErrorCode::InvalidClient, "The assertion's sub is not this client."));
    }
    Ok(())
}

/// The service-account grant: the assertion names the account (`iss`) and the scopes. With a
/// checked DPoP proof (`jkt`, its key's thumbprint) the access token is bound to that key.
pub async fn jwt_bearer(ctx: &Ctx, assertion: &str, jkt: Option<&str>) -> Outcome<Issued> {
    let unverified = jwt::unverified_claims(assertion);
    let iss = unverified
        .as_ref()
        .and_then(|it| it.get("iss"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(client) =
        clients::load(ctx, iss).await?.filter(|it| it.kind == ClientKind::ServiceAccount)
    else {
        return Err(oauth(ErrorCode::InvalidGrant, "Invalid JWT: unknown service account."));
    };
    let claims = verify(ctx, &client, assertion).await?;
    if claims
        .get("sub")
        .or_else(|| claims.get("prn"))
        .and_then(Value::as_str)
        .is_some_and(|it| it != client.id())
    {
        return Err(oauth(ErrorCode::UnauthorizedClient, "Domain-wide delegation is not enabled."));
    }
    let scopes = tessera_proto_oauth2::split_scopes(
        claims.get("scope").and_then(Value::as_str).unwrap_or_default(),
    );
    if scopes.is_empty() {
        return Err(oauth(ErrorCode::InvalidScope, "The assertion names no scope."));
    }
    if scopes.iter().any(|it| matches!(it.as_str(), "openid" | "email" | "profile")) {
        return Err(oauth(ErrorCode::InvalidScope, "Identity scopes need a person."));
    }
    match services::resolve(ctx, &scopes).await {
        Ok(_) => {}
        Err(Error::Invalid(text)) => return Err(oauth(ErrorCode::InvalidScope, &text)),
        Err(err) => return Err(err.into()),
    }
    let scope = grants::normalize_scopes(scopes.iter().map(String::as_str));
    let subject = Subject { account_id: None, client_id: client.id(), grant_id: None };
    let access = tokens::access_token_bound(ctx, &client, subject, &scope, false, jkt).await?;
    Ok(Issued {
        access_token: Some(access),
        token_type: if jkt.is_some() { "DPoP" } else { "Bearer" },
        expires_in: ACCESS_TOKEN_TTL_SECS,
        scope,
        refresh_token: None,
        id_token: None,
    })
}
