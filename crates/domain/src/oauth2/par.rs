//! Pushed authorization requests (RFC 9126): a client posts its authorization request to
//! `/oauth2/par`, authenticated as at the token endpoint, and gets a `request_uri` that lives
//! [`PAR_TTL_SECS`] and that only it can use, once. The authorization endpoint then takes
//! `client_id` and `request_uri` and nothing else ([`resolve`]).
//!
//! A pushed request is a credential row of kind `pushed_authorization_request` (the digest of the
//! random part of its `request_uri`, the client, the parameters as data). Browsing through the
//! sign-in and consent steps reads it again ([`resolve`]); the answer that issues a code or tokens
//! consumes it ([`consume`]) with the store's conditional consume, so it buys one answer whichever
//! node serves it.

use serde::{Deserialize, Serialize};
use tessera_proto_oauth2::Params;
use tessera_proto_oauth2::authorize as proto;
use tessera_store::{CredentialKind, CredentialRecord};

use super::clients::Client;
use super::{ErrorCode, Failure, OAuthError, Outcome, oauth};
use crate::credentials;
use crate::{Ctx, Result};

/// The prefix of every `request_uri` we hand out (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// How long a pushed request may wait for the browser.
pub const PAR_TTL_SECS: i64 = 60;

/// Parameters that authenticate the client at the PAR endpoint and are not part of the request.
const CLIENT_AUTH: &[&str] = &["client_secret", "client_assertion", "client_assertion_type"];

/// Parameters the authorization endpoint still takes next to `request_uri`: the client names
/// itself, and our own account chooser adds `authuser` when it sends the browser back.
const BESIDE_REQUEST_URI: &[&str] = &["request_uri", "client_id", "authuser"];

/// What the row keeps: the authorization request's parameters as pushed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedData {
    #[serde(default)]
    pub params: Vec<(String, String)>,
}

/// The answer to a push (RFC 9126 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub request_uri: String,
    pub expires_in: i64,
}

/// Checks and stores a pushed authorization request from the authenticated `client`. Everything
/// the authorization endpoint would refuse before asking anyone is refused here, as a JSON error.
pub async fn push(ctx: &Ctx, client: &Client, body: &Params) -> Outcome<Pushed> {
    if body.contains("request_uri") {
        return Err(oauth(ErrorCode::InvalidRequest, "A pushed request cannot carry request_uri."));
    }
    let pairs: Vec<(String, String)> = body
        .pairs()
        .iter()
        .filter(|(k, _)| !CLIENT_AUTH.contains(&k.as_str()))
        .filter(|(k, _)| k != "client_id")
        .cloned()
        .chain([("client_id".to_owned(), client.id().to_owned())])
        .collect();
    let params = Params::from_pairs(pairs);
    let params = match super::request_object::unwrap(ctx, &params).await? {
        Ok(params) => params,
        Err(err) => return Err(Failure::OAuth(err)),
    };
    let wire = proto::target(&params)?;
    let mut target = match super::authorize::target(ctx, &wire).await? {
        Ok(target) => target,
        Err(text) => {
            let description = text.split_once(": ").map_or(text.as_str(), |(_, it)| it);
            return Err(oauth(ErrorCode::InvalidRequest, description));
        }
    };
    // This request is being pushed: a client that must push may.
    target.pushed = Some(String::new());
    let req = proto::parse(&params)?;
    if let Err(err) = super::authorize::check(ctx, &target, &req).await? {
        return Err(Failure::OAuth(err));
    }
    let secret = tessera_crypto::random::token(ctx.rng.as_ref(), 32);
    let now = ctx.now();
    let mut record = CredentialRecord::new(
        tessera_crypto::digest::token_digest(&secret),
        CredentialKind::PushedAuthorizationRequest,
        now,
    );
    record.client_id = Some(client.id().to_owned());
    record.expires_at = Some(now + PAR_TTL_SECS);
    record.data = credentials::encode(&PushedData { params: params.pairs().to_vec() })?;
    ctx.store.credentials().insert(&record).await?;
    Ok(Pushed { request_uri: format!("{REQUEST_URI_PREFIX}{secret}"), expires_in: PAR_TTL_SECS })
}

/// A pushed request the authorization endpoint is running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The pushed parameters (with `authuser` when the chooser added one).
    pub params: Params,
    /// The row to consume when the request is answered.
    pub digest: String,
}

fn unknown() -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidRequestUri,
        "The request_uri is unknown, expired, already used or not this client's.",
    )
}

/// The authorization endpoint's `request_uri`: `Ok(None)` when the query has none; otherwise
/// the pushed request, if it is live and `client_id` is the client that pushed it. Any parameter
/// besides `client_id` and `request_uri` (and the chooser's `authuser`) is refused rather than
/// ignored (RFC 9126 §4).
pub async fn resolve(
    ctx: &Ctx,
    query: &Params,
) -> Result<std::result::Result<Option<Resolved>, OAuthError>> {
    let Some(request_uri) = query.get("request_uri") else { return Ok(Ok(None)) };
    if let Some((extra, _)) =
        query.pairs().iter().find(|(k, _)| !BESIDE_REQUEST_URI.contains(&k.as_str()))
    {
        let name: String = extra.chars().take(40).collect();
        return Ok(Err(OAuthError::invalid_request(format!(
            "Parameter {name} is not accepted next to request_uri: push it with the request."
        ))));
    }
    let Some(client_id) = query.get("client_id") else {
        return Ok(Err(OAuthError::invalid_request("Missing required parameter: client_id")));
    };
    let Some(secret) = request_uri.strip_prefix(REQUEST_URI_PREFIX) else {
        return Ok(Err(unknown()));
    };
    if secret.is_empty() || secret.len() > 200 {
        return Ok(Err(unknown()));
    }
    let digest = tessera_crypto::digest::token_digest(secret);
    let Some(record) = ctx.store.credentials().find_live(&digest, ctx.now()).await? else {
        return Ok(Err(unknown()));
    };
    if record.kind != CredentialKind::PushedAuthorizationRequest
        || record.client_id.as_deref() != Some(client_id)
    {
        return Ok(Err(unknown()));
    }
    let data: PushedData = credentials::data(&record);
    let mut params = Params::from_pairs(data.params);
    if let Some(authuser) = query.get("authuser") {
        params = params.without(&["authuser"]).with("authuser", authuser);
    }
    Ok(Ok(Some(Resolved { params, digest })))
}

/// Uses the pushed request up: true for exactly one caller, whichever node asks.
pub async fn consume(ctx: &Ctx, digest: &str) -> Result<bool> {
    let consumed = ctx
        .store
        .credentials()
        .consume(digest, CredentialKind::PushedAuthorizationRequest, ctx.now())
        .await?;
    Ok(consumed.is_some())
}

/// Whether `client`'s authorization requests must come through [`push`] (the client's setting
/// or the deployment's).
pub fn required(ctx: &Ctx, client: &Client) -> bool {
    ctx.policy.require_par || client.settings.require_pushed_authorization_requests
}
