//! Signed request objects (RFC 9101, JAR): the authorization request as the claims of a JWT
//! that the client signed with one of its registered keys (the keys its service-account and
//! `private_key_jwt` assertions use), sent as `request` to the authorization endpoint or inside a
//! pushed request. The signature goes through the one verifier, [`super::jwt::Jws::verify`], with
//! the algorithm of the registered key; `alg: none` and every other unsigned shape are refused.
//!
//! As RFC 9101 §5 says, the request object's parameters are the request: the ones sent beside it
//! are not used, except `client_id` (which must agree) and `authuser`, which our own account
//! chooser adds when it sends the browser back.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tessera_crypto::keys::KeyAlg;
use tessera_proto_oauth2::{ErrorCode, OAuthError, Params};

use super::{clients, jwt};
use crate::{Ctx, Result};

/// Claims that describe the object itself rather than the request.
const ENVELOPE: &[&str] = &["iss", "aud", "exp", "iat", "nbf", "jti"];

fn refused(text: &str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequestObject, text)
}

/// The request `params` describe: `params` itself when it carries no `request`, else the verified
/// request object's parameters with `client_id` (and `authuser`, if sent).
pub async fn unwrap(ctx: &Ctx, params: &Params) -> Result<std::result::Result<Params, OAuthError>> {
    let Some(object) = params.get("request") else { return Ok(Ok(params.clone())) };
    if params.contains("request_uri") {
        return Ok(Err(OAuthError::invalid_request("Send request or request_uri, not both.")));
    }
    let Some(client_id) = params.get("client_id") else {
        return Ok(Err(OAuthError::invalid_request("Missing required parameter: client_id")));
    };
    if object.len() > 16 * 1024 {
        return Ok(Err(refused("The request object is too large.")));
    }
    let Some(jws) = jwt::Jws::parse(object) else {
        return Ok(Err(refused("The request object is not a signed JWT.")));
    };
    if jws.header_alg().is_none_or(|alg| KeyAlg::parse(alg).is_err()) {
        return Ok(Err(refused(
            "Unsigned request objects are refused; sign with a registered key.",
        )));
    }
    let Some(client) = clients::load(ctx, client_id).await? else {
        return Ok(Err(OAuthError::invalid_client("The OAuth client was not found.")));
    };
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
        return Ok(Err(refused("The request object's signature does not verify.")));
    }
    Ok(claims_to_params(ctx, &jws.claims, client_id, params.get("authuser")))
}

fn claims_to_params(
    ctx: &Ctx,
    claims: &Value,
    client_id: &str,
    authuser: Option<&str>,
) -> std::result::Result<Params, OAuthError> {
    let Some(claims) = claims.as_object() else { return Err(refused("Not a JSON object.")) };
    if claims.get("iss").is_some_and(|it| it.as_str() != Some(client_id)) {
        return Err(refused("The request object's iss is not the client."));
    }
    if claims.get("client_id").is_some_and(|it| it.as_str() != Some(client_id)) {
        return Err(refused("The request object's client_id disagrees."));
    }
    let ours = &*ctx.public_url;
    let aud_ok = match claims.get("aud") {
        None => true,
        Some(Value::String(aud)) => aud == ours,
        Some(Value::Array(list)) => list.iter().any(|it| it.as_str() == Some(ours)),
        Some(_) => false,
    };
    if !aud_ok {
        return Err(refused("The request object's aud is not this server."));
    }
    let now = ctx.now();
    if claims.get("exp").is_some_and(|it| it.as_i64().is_none_or(|exp| exp <= now)) {
        return Err(refused("The request object has expired."));
    }
    if claims.get("nbf").is_some_and(|it| it.as_i64().is_none_or(|nbf| nbf > now + 300)) {
        return Err(refused("The request object is not valid yet."));
    }
    let mut pairs = vec![("client_id".to_owned(), client_id.to_owned())];
    for (name, value) in claims {
        if ENVELOPE.contains(&name.as_str()) || name == "client_id" {
            continue;
        }
        if matches!(name.as_str(), "request" | "request_uri") {
            return Err(refused("A request object cannot nest another."));
        }
        let value = match value {
            Value::String(it) => it.clone(),
            Value::Number(it) => it.to_string(),
            Value::Bool(it) => it.to_string(),
            _ => {
                let name: String = name.chars().take(40).collect();
                return Err(refused(&format!("Claim {name} must be a string.")));
            }
        };
        pairs.push((name.clone(), value));
    }
    if pairs.len() > tessera_proto_oauth2::params::MAX_PARAMS {
        return Err(refused("Too many parameters."));
    }
    if let Some(authuser) = authuser {
        pairs.push(("authuser".to_owned(), authuser.to_owned()));
    }
    Ok(Params::from_pairs(pairs))
}
