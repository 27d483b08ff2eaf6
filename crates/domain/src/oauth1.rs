//! OAuth 1.0a (Google's endpoints): consumers, signed-request verification (timestamp window,
//! store-backed nonces, HMAC-SHA1 / RSA-SHA1 / PLAINTEXT), request tokens, their authorization
//! through the one interaction flow, the access-token exchange (once), resource calls and
//! revocation.
//!
//! Consumers are the AuthSub registrations (one registration of a domain serves both protocols):
//! the consumer key is the registered domain, HMAC-SHA1 uses a consumer secret minted for the
//! registration and kept sealed in its settings (the server must read it back), RSA-SHA1 uses the
//! registered certificate. `anonymous` / `anonymous` is the consumer of installed applications.
//!
//! A request token is one credential row moved in place (`CredentialStore::transition`): issued
//! (`new`), then `authorized` for an account and grant with a verifier digest. The exchange
//! consumes it and writes the access token in one transaction (`CredentialStore::redeem`), under the
//! per-app cap. Token secrets are sealed (`credentials::seal`), bound to their row.

use serde_json::json;
use tessera_crypto::authsub::{CertKey, parse_cert_pem};
use tessera_crypto::digest::{ct_eq, sha256_hex, token_digest};
use tessera_proto_oauth1::{Problem, SignatureMethod, Signed};
use tessera_store::{
    AccountRecord, CredentialKind, CredentialRecord, CredentialTransition, DomainGrantRecord,
    GrantRecord, Redemption,
};

use crate::audit::{self, Actor};
use crate::caller::{CallerError, RequestFacts};
use crate::credentials::{self, Protocol, RequestorRefused, Scopes, Valid};
use crate::interaction::{Applicant, Approved, Asks, Choosing, Memory, Request};
use crate::services::{self, ScopeInfo};
use crate::{Ctx, Error, Result, authsub};

/// The grant protocol OAuth 1.0a grants are recorded under.
pub const PROTOCOL: Protocol = Protocol::OAuth1;
/// Request tokens wait this long to be authorized and exchanged (Google: one hour).
pub const REQUEST_TOKEN_TTL_SECS: i64 = 3600;
/// A signed request's timestamp may be this far from our clock, either way (unconfirmed upstream).
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;
/// Nonces are remembered this long after the later of their timestamp and our clock.
pub const NONCE_TTL_SECS: i64 = 600;
/// The consumer key (and secret) of unregistered installed applications.
pub const ANONYMOUS: &str = "anonymous";
/// The client kind of the `anonymous` consumer's row.
pub const ANONYMOUS_CLIENT_KIND: &str = "oauth1_consumer";

const STATE_NEW: &str = "new";
const STATE_AUTHORIZED: &str = "authorized";

/// A request token's data: its sealed secret and where it stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestTokenData {
    /// The token secret, sealed; empty for hybrid tokens, whose secret is empty.
    #[serde(default)]
    pub sealed_secret: String,
    /// `new` or `authorized`.
    #[serde(default)]
    pub state: String,
    /// `oob`, an absolute URL, or empty (an OAuth 1.0 client that names it at authorization).
    #[serde(default)]
    pub callback: String,
    /// The callback was given with the request token (1.0a): the exchange needs the verifier.
    #[serde(default)]
    pub confirmed: bool,
    /// `xoauth_displayname` of an unregistered consumer.
    #[serde(default)]
    pub display_name: String,
    /// Digest of the verifier, once authorized (empty for hybrid tokens).
    #[serde(default)]
    pub verifier_digest: String,
}

/// An access token's data.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessTokenData {
    #[serde(default)]
    pub sealed_secret: String,
}

/// A consumer as the verifier sees it.
#[derive(Clone)]
pub struct Consumer {
    pub key: String,
    pub name: String,
    pub registered: bool,
    hmac_secret: Option<String>,
    cert: Option<CertKey>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("key", &self.key)
            .field("registered", &self.registered)
            .field("hmac", &self.hmac_secret.is_some())
            .field("rsa", &self.cert.is_some())
            .finish()
    }
}

impl Consumer {
    /// The HMAC-SHA1 consumer secret, read back only inside the domain (the front-end proxy
    /// signs its outgoing calls with it).
    pub(crate) fn hmac_secret(&self) -> Option<&str> {
        self.hmac_secret.as_deref()
    }
}

/// The account owning the registration of the consumer `key` (its project's owner); `None` when
/// `key` is not a registered consumer.
pub async fn consumer_owner(ctx: &Ctx, key: &str) -> Result<Option<String>> {
    if key.is_empty() || key.len() > 253 {
        return Ok(None);
    }
    let Some(client) = ctx.store.projects().get_client(key).await? else { return Ok(None) };
    if client.kind != authsub::CLIENT_KIND {
        return Ok(None);
    }
    let project = ctx.store.projects().get(&client.project_id).await?;
    Ok(project.map(|it| it.owner_account_id))
}

fn consumer_secret_aad(domain: &str) -> Vec<u8> {
    format!("oauth1-consumer-secret\n{domain}").into_bytes()
}

/// Mints a new HMAC-SHA1 consumer secret for the registration of `domain` (replacing any earlier
/// one) and returns it: it is shown once; the registration keeps it sealed under the key-encryption
/// key, bound to the domain. Unreserved characters only (tornado's 1.0 mode does not encode keys).
pub async fn mint_consumer_secret(ctx: &Ctx, domain: &str, actor: &Actor) -> Result<String> {
    let mut client = ctx.store.projects().get_client(domain).await?.ok_or(Error::NotFound)?;
    if client.kind != authsub::CLIENT_KIND {
        return Err(Error::NotFound);
    }
    let secret = tessera_crypto::random::token(ctx.rng.as_ref(), 18);
    let sealed = ctx
        .kek
        .seal(ctx.rng.as_ref(), &consumer_secret_aad(domain), secret.as_bytes())
        .map_err(|err| Error::Internal(err.to_string()))?;
    let mut settings: serde_json::Value =
        serde_json::from_str(&client.settings).unwrap_or_else(|_| json!({}));
    settings["oauth1_secret_sealed"] = json!(sealed);
    client.settings = settings.to_string();
    ctx.store.projects().update_client(&client).await?;
    audit::record(ctx, "oauth1.consumer_secret", None, actor, "", json!({ "domain": domain }))
        .await?;
    Ok(secret)
}

/// Makes sure the `anonymous` consumer's client row exists (credentials name their client, and
/// the validator wants it to exist); its project belongs to the first administrator.
async fn ensure_anonymous(ctx: &Ctx) -> Result<bool> {
    if ctx.store.projects().get_client(ANONYMOUS).await?.is_some() {
        return Ok(true);
    }
    let Ok(owner) = authsub::first_admin(ctx).await else { return Ok(false) };
    let now = ctx.now();
    let project = tessera_store::ProjectRecord {
        id: ctx.new_id(),
        name: "OAuth 1.0: anonymous".to_owned(),
        owner_account_id: owner.id,
        verified: false,
        created_at: now,
    };
    match ctx.store.projects().add(&project).await {
        Ok(()) => {}
        Err(tessera_store::StoreError::Conflict(_)) => return Ok(true),
        Err(err) => return Err(err.into()),
    }
    let client = tessera_store::ClientRecord {
        client_id: ANONYMOUS.to_owned(),
        project_id: project.id,
        kind: ANONYMOUS_CLIENT_KIND.to_owned(),
        name: "anonymous".to_owned(),
        secret_digest: None,
        settings: "{}".to_owned(),
        created_at: now,
    };
    match ctx.store.projects().add_client(&client).await {
        Ok(()) | Err(tessera_store::StoreError::Conflict(_)) => Ok(true),
        Err(err) => Err(err.into()),
    }
}

/// The consumer named `key`: `anonymous`, or an AuthSub registration (with an HMAC secret, a
/// certificate, or both). `None` for anything else.
pub async fn consumer(ctx: &Ctx, key: &str) -> Result<Option<Consumer>> {
    if key == ANONYMOUS {
        if !ensure_anonymous(ctx).await? {
            return Ok(None);
        }
        return Ok(Some(Consumer {
            key: ANONYMOUS.to_owned(),
            name: ANONYMOUS.to_owned(),
            registered: false,
            hmac_secret: Some(ANONYMOUS.to_owned()),
            cert: None,
        }));
    }
    if key.len() > 253 {
        return Ok(None);
    }
    // Every signed call names its consumer: read through the kept answers, as an OAuth 2.0
    // client is, so that a rotated secret or a removed registration is seen at once.
    let Some(client) = crate::answers::get_client(ctx, key).await? else { return Ok(None) };
    if client.kind != authsub::CLIENT_KIND {
        return Ok(None);
    }
    let settings: serde_json::Value = serde_json::from_str(&client.settings).unwrap_or_default();
    let hmac_secret = match settings["oauth1_secret_sealed"].as_str() {
        Some(sealed) => {
            let raw = ctx
                .kek
                .open(&consumer_secret_aad(&client.client_id), sealed)
                .map_err(|err| Error::Internal(err.to_string()))?;
            Some(String::from_utf8(raw).map_err(|_| Error::Internal("consumer secret".into()))?)
        }
        None => None,
    };
    let cert = settings["cert_pem"].as_str().and_then(|pem| parse_cert_pem(pem.as_bytes()).ok());
    Ok(Some(Consumer {
        key: client.client_id,
        name: client.name,
        registered: true,
        hmac_secret,
        cert,
    }))
}

/// A signed request as the web layer saw it: the method, the full URL the client addressed
/// (scheme, host, port, path, query), the `Authorization: OAuth` pairs and the form body's pairs
/// (only for `application/x-www-form-urlencoded` bodies).
#[derive(Debug, Clone, Default)]
pub struct Incoming {
    pub facts: RequestFacts,
    pub header: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
}

/// A request whose signature, timestamp and nonce checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    pub signed: Signed,
    pub consumer: Consumer,
    /// The token the request names, read through the one validator.
    pub token: Option<Valid>,
}

type Checked<T> = Result<Result<T, Problem>>;

/// Verifies a signed request: parameters merged from the three places (each protocol parameter
/// once), a known consumer, a timestamp within ±[`TIMESTAMP_WINDOW_SECS`], the token (when the
/// request names one) live and of one of `kinds` and issued to this consumer, the signature over
/// this very request (with the reference's client-quirk variants), and a nonce not seen before
/// for this consumer, token and timestamp (a store-backed `insert_once`, so a replay is refused
/// on whichever node it lands). PLAINTEXT is accepted only when the public URL is https.
pub async fn verify(ctx: &Ctx, incoming: &Incoming, kinds: &[CredentialKind]) -> Checked<Verified> {
    let Some((scheme, authority, path, query)) =
        tessera_proto_oauth1::split_url(&incoming.facts.url)
    else {
        return Ok(Err(Problem::ParameterRejected("url".to_owned())));
    };
    let query = match tessera_proto_oauth1::parse_form(query) {
        Ok(query) => query,
        Err(problem) => return Ok(Err(problem)),
    };
    let signed = match tessera_proto_oauth1::collect(&incoming.header, &query, &incoming.form) {
        Ok(signed) => signed,
        Err(problem) => return Ok(Err(problem)),
    };
    if signed.signature_method == SignatureMethod::Plaintext
        && !ctx.public_url.starts_with("https://")
    {
        return Ok(Err(Problem::SignatureMethodRejected));
    }
    let Some(consumer) = consumer(ctx, &signed.consumer_key).await? else {
        return Ok(Err(Problem::ConsumerKeyUnknown));
    };
    let now = ctx.now();
    if signed.signature_method != SignatureMethod::Plaintext
        && (signed.timestamp - now).abs() > TIMESTAMP_WINDOW_SECS
    {
        return Ok(Err(Problem::TimestampRefused));
    }
    let (token, token_secret) = match &signed.token {
        None => (None, String::new()),
        Some(token) => {
            let Some(valid) = credentials::find_valid(ctx, token, kinds).await? else {
                return Ok(Err(Problem::TokenRejected));
            };
            if valid.record.client_id.as_deref() != Some(consumer.key.as_str()) {
                return Ok(Err(Problem::TokenRejected));
            }
            let secret = match credentials::open(ctx, &valid.record) {
                Ok(secret) => {
                    String::from_utf8(secret).map_err(|_| Error::Internal("token secret".into()))?
                }
                // A hybrid request token has an empty secret.
                Err(Error::NotFound) => String::new(),
                Err(err) => return Err(err),
            };
            (Some(valid), secret)
        }
    };
    let base_uri = tessera_proto_oauth1::base_string_uri(scheme, authority, path);
    let method = incoming.facts.method.as_str();
    let base = tessera_proto_oauth1::base_string(method, &base_uri, &signed.params);
    let verified = check_signature(&consumer, &signed, &token_secret, &base)
        || tessera_proto_oauth1::param_variants(&signed.params).iter().any(|params| {
            let variant = tessera_proto_oauth1::base_string(method, &base_uri, params);
            check_signature(&consumer, &signed, &token_secret, &variant)
        });
    if !verified {
        return Ok(Err(match signed.signature_method {
            SignatureMethod::HmacSha1 if consumer.hmac_secret.is_none() => {
                Problem::SignatureMethodRejected
            }
            SignatureMethod::RsaSha1 if consumer.cert.is_none() => Problem::SignatureMethodRejected,
            _ => Problem::SignatureInvalid { base_string: base },
        }));
    }
    if signed.signature_method != SignatureMethod::Plaintext {
        let token_digest = token.as_ref().map(|it| it.record.digest.as_str()).unwrap_or("");
        let nonce_digest = sha256_hex(
            format!(
                "oauth1-nonce\n{}\n{token_digest}\n{}\n{}",
                consumer.key, signed.timestamp, signed.nonce
            )
            .as_bytes(),
        );
        let mut nonce = CredentialRecord::new(nonce_digest, CredentialKind::Nonce, now);
        nonce.expires_at = Some(signed.timestamp.max(now) + NONCE_TTL_SECS);
        if !ctx.store.credentials().insert_once(&nonce).await? {
            return Ok(Err(Problem::NonceUsed));
        }
    }
    Ok(Ok(Verified { signed, consumer, token }))
}

fn check_signature(consumer: &Consumer, signed: &Signed, token_secret: &str, base: &str) -> bool {
    use tessera_crypto::oauth1::{verify_hmac_sha1, verify_plaintext, verify_rsa};
    use tessera_proto_oauth1::encode;
    let hmac_key = |secret: &str| format!("{}&{}", encode(secret), encode(token_secret));
    match signed.signature_method {
        SignatureMethod::HmacSha1 => consumer
            .hmac_secret
            .as_deref()
            .is_some_and(|secret| verify_hmac_sha1(&hmac_key(secret), base, &signed.signature)),
        SignatureMethod::RsaSha1 => {
            consumer.cert.as_ref().is_some_and(|cert| verify_rsa(cert, base, &signed.signature))
        }
        SignatureMethod::Plaintext => consumer
            .hmac_secret
            .as_deref()
            .is_some_and(|secret| verify_plaintext(&hmac_key(secret), &signed.signature)),
    }
}

/// Scopes OAuth 1.0 may be granted: known scopes whose service accepts OAuth 1.0 or AuthSub (the
/// Google Data APIs took both); built-in scopes are OAuth 2.0's and refused.
async fn grantable(
    ctx: &Ctx,
    requested: &[String],
) -> Result<Result<(Vec<ScopeInfo>, Vec<String>), Problem>> {
    let rejected = || Problem::ParameterRejected("scope".to_owned());
    if requested.is_empty() {
        return Ok(Err(Problem::ParameterAbsent("scope")));
    }
    let scopes = match services::resolve(ctx, requested).await {
        Ok(scopes) => scopes,
        Err(Error::Invalid(_)) => return Ok(Err(rejected())),
        Err(err) => return Err(err),
    };
    let mut names = Vec::new();
    for info in &scopes {
        let Some(name) = &info.service else { return Ok(Err(rejected())) };
        let service = services::get(ctx, name).await?;
        if !services::accepts(&service, Protocol::OAuth1)
            && !services::accepts(&service, Protocol::AuthSub)
        {
            return Ok(Err(rejected()));
        }
        if !names.contains(&service.display_name) {
            names.push(service.display_name);
        }
    }
    Ok(Ok((scopes, names)))
}

/// Whether OAuth 1.0 may be granted every scope of `scopes` (known scopes of services that accept
/// OAuth 1.0 or AuthSub).
pub async fn may_grant(ctx: &Ctx, scopes: &[String]) -> Result<bool> {
    Ok(grantable(ctx, scopes).await?.is_ok())
}

/// A new token and secret: `4/…` for request tokens, `1/…` for access tokens (Google's shapes);
/// secrets of 24 unreserved characters.
fn mint(ctx: &Ctx, prefix: &str) -> (String, String, String) {
    let (random, _) = ctx.new_token();
    let token = format!("{prefix}{random}");
    let digest = token_digest(&token);
    let secret = tessera_crypto::random::token(ctx.rng.as_ref(), 18);
    (token, digest, secret)
}

/// `OAuthGetRequestToken`: a signed request (no token) with `scope` and, in 1.0a, `oauth_callback`
/// (`oob` or an absolute http(s) URL); answers the request token and its secret, good for one
/// hour. `xoauth_displayname` names an unregistered consumer on the consent page; a registered
/// consumer is always shown by its registered name.
pub async fn request_token(ctx: &Ctx, incoming: &Incoming) -> Checked<(String, String)> {
    let verified = match verify(ctx, incoming, &[]).await? {
        Ok(verified) => verified,
        Err(problem) => return Ok(Err(problem)),
    };
    if verified.signed.token.is_some() {
        return Ok(Err(Problem::ParameterRejected("oauth_token".to_owned())));
    }
    let requested = tessera_proto_oauth1::scopes(verified.signed.get("scope").unwrap_or(""));
    let (scopes, _) = match grantable(ctx, &requested).await? {
        Ok(found) => found,
        Err(problem) => return Ok(Err(problem)),
    };
    let callback = verified.signed.callback.clone().unwrap_or_default();
    if !callback.is_empty() && !tessera_proto_oauth1::valid_callback(&callback) {
        return Ok(Err(Problem::ParameterRejected("oauth_callback".to_owned())));
    }
    let display_name = if verified.consumer.registered {
        String::new()
    } else {
        verified.signed.get("xoauth_displayname").unwrap_or("").chars().take(100).collect()
    };
    let now = ctx.now();
    let (token, digest, secret) = mint(ctx, "4/");
    let mut record = CredentialRecord::new(digest.clone(), CredentialKind::Oauth1RequestToken, now);
    record.client_id = Some(verified.consumer.key.clone());
    record.scopes = Scopes::from_names(scopes.iter().map(|it| it.scope.as_str())).joined();
    record.expires_at = Some(now + REQUEST_TOKEN_TTL_SECS);
    record.data = credentials::encode(&RequestTokenData {
        sealed_secret: credentials::seal(
            ctx,
            CredentialKind::Oauth1RequestToken,
            &digest,
            secret.as_bytes(),
        )?,
        state: STATE_NEW.to_owned(),
        confirmed: !callback.is_empty(),
        callback,
        display_name,
        verifier_digest: String::new(),
    })?;
    ctx.store.credentials().insert(&record).await?;
    Ok(Ok((token, secret)))
}

/// The hybrid (OpenID+OAuth) entry: a request token for `consumer` already authorized by
/// `account_id` through the grant `grant_id` for `scopes`, with an EMPTY token secret and no
/// verifier, good for one hour. `OAuthGetAccessToken` exchanges it once, signed with
/// `consumer_secret&` and without `oauth_verifier` (reference §5.10).
pub async fn authorized_request_token(
    ctx: &Ctx,
    consumer: &str,
    scopes: &Scopes,
    account_id: &str,
    grant_id: &str,
) -> Result<String> {
    let now = ctx.now();
    let (token, digest, _) = mint(ctx, "4/");
    let mut record = CredentialRecord::new(digest, CredentialKind::Oauth1RequestToken, now);
    record.client_id = Some(consumer.to_owned());
    record.account_id = Some(account_id.to_owned());
    record.grant_id = Some(grant_id.to_owned());
    record.scopes = scopes.joined();
    record.expires_at = Some(now + REQUEST_TOKEN_TTL_SECS);
    record.data = credentials::encode(&RequestTokenData {
        state: STATE_AUTHORIZED.to_owned(),
        ..RequestTokenData::default()
    })?;
    ctx.store.credentials().insert(&record).await?;
    Ok(token)
}

/// A request token waiting for the person's answer on `OAuthAuthorizeToken`.
#[derive(Debug, Clone)]
pub struct Pending {
    pub token: String,
    pub record: CredentialRecord,
    pub data: RequestTokenData,
    /// The consumer as the consent page names it.
    pub name: String,
    pub registered: bool,
    /// A display name the consumer gave for itself, not verified by anyone.
    pub unverified_name: bool,
    pub scopes: Vec<ScopeInfo>,
    pub services: Vec<String>,
    /// Where the answer goes: the callback given with the request token, else the one given here
    /// (OAuth 1.0), else `oob`.
    pub callback: String,
}

/// Finds the live, not yet authorized request token `token` for the authorization page.
/// `callback` is `oauth_callback` on the page's query (OAuth 1.0 clients name it here).
pub async fn pending(ctx: &Ctx, token: &str, callback: Option<&str>) -> Result<Option<Pending>> {
    let Some(valid) =
        credentials::find_valid(ctx, token, &[CredentialKind::Oauth1RequestToken]).await?
    else {
        return Ok(None);
    };
    let data: RequestTokenData = credentials::data(&valid.record);
    if data.state != STATE_NEW {
        return Ok(None);
    }
    let client_id = valid.record.client_id.clone().unwrap_or_default();
    let Some(consumer) = consumer(ctx, &client_id).await? else { return Ok(None) };
    let requested = valid.scopes().to_vec();
    let Ok((scopes, services)) = grantable(ctx, &requested).await? else { return Ok(None) };
    let callback = if !data.callback.is_empty() {
        data.callback.clone()
    } else {
        callback.filter(|it| tessera_proto_oauth1::valid_callback(it)).unwrap_or("oob").to_owned()
    };
    let (name, unverified_name) = if consumer.registered {
        (consumer.name.clone(), false)
    } else if !data.display_name.is_empty() {
        (data.display_name.clone(), true)
    } else {
        (ANONYMOUS.to_owned(), false)
    };
    Ok(Some(Pending {
        token: token.to_owned(),
        record: valid.record,
        data,
        name,
        registered: consumer.registered,
        unverified_name,
        scopes,
        services,
        callback,
    }))
}

/// The authorization as the interaction flow sees it: consent asked every time, several
/// signed-in accounts without `authuser` go to the chooser, `hd` (other than `default`) names the
/// hosted domain the account must be in.
pub fn interaction(
    pending: &Pending,
    authuser: Option<String>,
    hd: Option<String>,
    ui_lang: Option<String>,
) -> Request {
    let return_host = if pending.callback == "oob" {
        String::new()
    } else {
        tessera_proto_authsub::host_of(&pending.callback).unwrap_or_default()
    };
    Request {
        protocol: PROTOCOL,
        client_id: pending.record.client_id.clone().unwrap_or_default(),
        applicant: Applicant::Site {
            name: pending.name.clone(),
            registered: pending.registered,
            return_host,
            services: pending.services.clone(),
            lasting: true,
            signed: true,
            realm: None,
        },
        scopes: pending.scopes.clone(),
        asks: Asks { authuser, hd: hd.filter(|it| it != "default"), ui_lang, ..Asks::default() },
        choosing: Choosing::Named,
        memory: Memory::Never,
    }
}

/// Where the browser goes once the person answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// To the consumer's callback.
    Redirect(String),
    /// `oob`: a page shows the verifier to type into the application.
    ShowVerifier(String),
    /// `oob` and denied: a page says so.
    DeniedOob,
}

/// The person allowed (the flow recorded the grant): the request token is moved to `authorized`
/// for this account and grant with a new verifier, and the browser goes to the callback with
/// `oauth_token` and `oauth_verifier`, or the verifier is shown (`oob`).
pub async fn approve(ctx: &Ctx, approved: &Approved, pending: &Pending) -> Result<Option<Answer>> {
    let verifier = tessera_crypto::random::token(ctx.rng.as_ref(), 18);
    let from = credentials::encode(&pending.data)?;
    let to = RequestTokenData {
        state: STATE_AUTHORIZED.to_owned(),
        verifier_digest: token_digest(&verifier),
        callback: pending.callback.clone(),
        ..pending.data.clone()
    };
    let transition = CredentialTransition {
        data: credentials::encode(&to)?,
        account_id: Some(approved.signed.account.id.clone()),
        grant_id: Some(approved.grant.id.clone()),
        consume: false,
    };
    let moved = ctx
        .store
        .credentials()
        .transition(
            &pending.record.digest,
            CredentialKind::Oauth1RequestToken,
            &from,
            &transition,
            ctx.now(),
        )
        .await?;
    if moved.is_none() {
        return Ok(None);
    }
    Ok(Some(if pending.callback == "oob" {
        Answer::ShowVerifier(verifier)
    } else {
        Answer::Redirect(tessera_proto_oauth1::callback_url(
            &pending.callback,
            &pending.token,
            Some(&verifier),
        ))
    }))
}

/// The person denied: the request token is revoked, and the browser goes to the callback with
/// `oauth_token` only (our choice; Google's behaviour is unconfirmed), or sees a page (`oob`).
pub async fn deny(ctx: &Ctx, pending: &Pending) -> Result<Answer> {
    ctx.store.credentials().revoke(&pending.record.digest, ctx.now()).await?;
    Ok(if pending.callback == "oob" {
        Answer::DeniedOob
    } else {
        Answer::Redirect(tessera_proto_oauth1::callback_url(
            &pending.callback,
            &pending.token,
            None,
        ))
    })
}

/// `OAuthGetAccessToken`: a request signed with the authorized request token (and, when the
/// callback was confirmed at the request-token step, its `oauth_verifier`) buys, once, a long-lived
/// access token and its secret. The request token is consumed and the access token written in one
/// transaction; then at most [`credentials::PER_APP_CAP`] live access tokens remain for this
/// account and consumer, the oldest revoked first.
pub async fn access_token(ctx: &Ctx, incoming: &Incoming) -> Checked<(String, String)> {
    let verified = match verify(ctx, incoming, &[CredentialKind::Oauth1RequestToken]).await? {
        Ok(verified) => verified,
        Err(problem) => return Ok(Err(problem)),
    };
    let Some(request) = verified.token else {
        return Ok(Err(Problem::ParameterAbsent("oauth_token")));
    };
    let data: RequestTokenData = credentials::data(&request.record);
    if data.state != STATE_AUTHORIZED || request.record.account_id.is_none() {
        return Ok(Err(Problem::TokenRejected));
    }
    if !data.verifier_digest.is_empty() && data.confirmed {
        let Some(verifier) = &verified.signed.verifier else {
            return Ok(Err(Problem::ParameterAbsent("oauth_verifier")));
        };
        if !ct_eq(token_digest(verifier).as_bytes(), data.verifier_digest.as_bytes()) {
            return Ok(Err(Problem::VerifierInvalid));
        }
    }
    let (token, secret, record) = access_token_record(
        ctx,
        request.record.account_id.clone(),
        request.record.grant_id.clone(),
        request.record.client_id.clone(),
        request.record.scopes.clone(),
    )?;
    let redemption = Redemption {
        digest: &request.record.digest,
        kind: CredentialKind::Oauth1RequestToken,
        client_id: &verified.consumer.key,
        issue: std::slice::from_ref(&record),
        cap: Some((CredentialKind::Oauth1AccessToken, credentials::PER_APP_CAP)),
        grant: None,
    };
    if ctx.store.credentials().redeem(&redemption, ctx.now()).await?.is_none() {
        return Ok(Err(Problem::TokenRejected));
    }
    Ok(Ok((token, secret)))
}

/// A new access token, its secret, and the record that stores its digest and sealed secret.
fn access_token_record(
    ctx: &Ctx,
    account_id: Option<String>,
    grant_id: Option<String>,
    client_id: Option<String>,
    scopes: String,
) -> Result<(String, String, CredentialRecord)> {
    let (token, digest, secret) = mint(ctx, "1/");
    let mut record =
        CredentialRecord::new(digest.clone(), CredentialKind::Oauth1AccessToken, ctx.now());
    record.account_id = account_id;
    record.grant_id = grant_id;
    record.client_id = client_id;
    record.scopes = scopes;
    record.data = credentials::encode(&AccessTokenData {
        sealed_secret: credentials::seal(
            ctx,
            CredentialKind::Oauth1AccessToken,
            &digest,
            secret.as_bytes(),
        )?,
    })?;
    Ok((token, secret, record))
}

/// An access token and its secret for `grant` (an OAuth 1.0 grant to a registered consumer),
/// issued without the three-legged exchange, for operator tooling (the benchmark's fixtures): the
/// same record [`access_token`] writes, under the same per-app cap.
pub async fn issue_for_grant(ctx: &Ctx, grant: &GrantRecord) -> Result<(String, String)> {
    if grant.protocol != Protocol::OAuth1.as_str() {
        return Err(Error::Invalid("not an OAuth 1.0 grant".to_owned()));
    }
    issue_held(ctx, &grant.client_id, &grant.account_id, &grant.id, &grant.scopes).await
}

/// An access token and its secret issued to the registered consumer `consumer` for the grant
/// `grant_id` of `account_id` (the front-end proxy's approval: the grant is the app's, so revoking
/// it revokes the token): the same record [`access_token`] writes, under the same per-app cap of
/// the account and consumer.
pub(crate) async fn issue_held(
    ctx: &Ctx,
    consumer: &str,
    account_id: &str,
    grant_id: &str,
    scopes: &str,
) -> Result<(String, String)> {
    let (token, secret, record) = access_token_record(
        ctx,
        Some(account_id.to_owned()),
        Some(grant_id.to_owned()),
        Some(consumer.to_owned()),
        scopes.to_owned(),
    )?;
    ctx.store.credentials().insert_capped(&record, credentials::PER_APP_CAP).await?;
    Ok((token, secret))
}

/// Who a resource call acts for.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// Three-legged: the access token the request was signed with, through the one validator.
    Token(Valid),
    /// Two-legged: the account named by `xoauth_requestor_id`, under its domain's authorization
    /// of the consumer.
    Requestor { grant: DomainGrantRecord, account: AccountRecord },
}

/// A resource call signed with an access token (three-legged), or by a registered consumer on
/// behalf of `xoauth_requestor_id=user@domain` without a token (two-legged, empty token secret).
/// A two-legged call is accepted only while the domain's administrator's authorization of the
/// consumer is live and its scopes cover the resource URL, and the account exists, may be used
/// and belongs to that domain ([`credentials::find_valid_requestor`]); its refusals name their
/// `oauth_problem`. Signature, timestamp and nonce rules are the three-legged ones.
pub async fn resolve(ctx: &Ctx, incoming: &Incoming) -> Result<Result<Resolved, CallerError>> {
    let verified = match verify(ctx, incoming, &[CredentialKind::Oauth1AccessToken]).await? {
        Ok(verified) => verified,
        Err(problem) if two_legged(incoming) => return Ok(Err(refusal(&problem))),
        Err(Problem::SignatureInvalid { .. }) => return Ok(Err(CallerError::BadSignature)),
        Err(Problem::ParameterAbsent(_) | Problem::ParameterRejected(_)) => {
            return Ok(Err(CallerError::Malformed));
        }
        Err(_) => return Ok(Err(CallerError::Invalid)),
    };
    if let Some(valid) = verified.token {
        return Ok(Ok(Resolved::Token(valid)));
    }
    let Some(requestor) = verified.signed.get("xoauth_requestor_id") else {
        return Ok(Err(CallerError::Invalid));
    };
    if !verified.consumer.registered {
        return Ok(Err(refusal(&Problem::PermissionDenied)));
    }
    let found =
        match credentials::find_valid_requestor(ctx, &verified.consumer.key, requestor).await? {
            Ok(found) => found,
            Err(RequestorRefused::Malformed) => {
                let rejected = Problem::ParameterRejected("xoauth_requestor_id".to_owned());
                return Ok(Err(refusal(&rejected)));
            }
            Err(RequestorRefused::ConsumerGone) => {
                return Ok(Err(refusal(&Problem::ConsumerKeyUnknown)));
            }
            Err(
                RequestorRefused::ProtocolOff
                | RequestorRefused::NotAuthorized
                | RequestorRefused::Account,
            ) => return Ok(Err(refusal(&Problem::PermissionDenied))),
        };
    let (grant, account) = found;
    if !Scopes::parse(&grant.scopes).covers(&incoming.facts.url) {
        return Ok(Err(refusal(&Problem::PermissionDenied)));
    }
    Ok(Ok(Resolved::Requestor { grant, account }))
}

/// Whether a resource call is two-legged: it names `xoauth_requestor_id` and no `oauth_token`.
fn two_legged(incoming: &Incoming) -> bool {
    let query = incoming.facts.url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let query = tessera_proto_oauth1::parse_form(query).unwrap_or_default();
    let all = || incoming.header.iter().chain(&query).chain(&incoming.form);
    all().any(|(k, _)| k == "xoauth_requestor_id") && !all().any(|(k, _)| k == "oauth_token")
}

fn refusal(problem: &Problem) -> CallerError {
    CallerError::OAuth1Problem(problem.word())
}

/// A domain-wide OAuth 1.0 authorization as the pages and the command line show it.
pub type DomainGrant = DomainGrantRecord;

/// Checks that `by` (an account acting through a page; `None` for the command line) administers
/// `domain`: an administrator whose account belongs to that domain.
fn check_domain_admin(domain: &str, by: Option<&AccountRecord>) -> Result<()> {
    match by {
        None => Ok(()),
        Some(account)
            if account.is_admin
                && account.domain.as_deref().is_some_and(|it| it.eq_ignore_ascii_case(domain)) =>
        {
            Ok(())
        }
        Some(_) => Err(Error::Forbidden),
    }
}

/// Two-legged OAuth: the administrator of the hosted `domain` (`by`, or the command line) lets the
/// registered consumer `consumer_key` act for any account of the domain within `scopes` (scopes
/// OAuth 1.0 may be granted). Authorizing again replaces the scopes.
pub async fn authorize_domain(
    ctx: &Ctx,
    domain: &str,
    consumer_key: &str,
    scopes: &[String],
    by: Option<&AccountRecord>,
    actor: &Actor,
) -> Result<DomainGrant> {
    let domain = domain.trim().to_ascii_lowercase();
    check_domain_admin(&domain, by)?;
    if ctx.store.domains().get(&domain).await?.is_none() {
        return Err(Error::Invalid(format!("{domain} is not a hosted domain.")));
    }
    match consumer(ctx, consumer_key).await? {
        Some(found) if found.registered => {}
        _ => {
            return Err(Error::Invalid(format!(
                "{consumer_key} is not a registered OAuth 1.0 consumer."
            )));
        }
    }
    let scopes = match grantable(ctx, scopes).await? {
        Ok((scopes, _)) => Scopes::from_names(scopes.iter().map(|it| it.scope.as_str())),
        Err(_) => {
            return Err(Error::Invalid(
                "Name one or more scopes of services that accept OAuth 1.0 or AuthSub.".to_owned(),
            ));
        }
    };
    let record = DomainGrantRecord {
        id: ctx.new_id(),
        domain: domain.clone(),
        client_id: consumer_key.to_owned(),
        scopes: scopes.joined(),
        granted_by: by.map(|it| it.id.clone()).unwrap_or_default(),
        created_at: ctx.now(),
        revoked_at: None,
    };
    let stored = ctx.store.grants().upsert_domain(&record).await?;
    audit::record(
        ctx,
        "oauth1.domain_authorized",
        by.map(|it| it.id.as_str()),
        actor,
        "",
        json!({ "domain": domain, "consumer": consumer_key, "scopes": stored.scopes }),
    )
    .await?;
    Ok(stored)
}

/// Revokes the domain's authorization of `consumer_key`; false when there was none.
pub async fn deauthorize_domain(
    ctx: &Ctx,
    domain: &str,
    consumer_key: &str,
    by: Option<&AccountRecord>,
    actor: &Actor,
) -> Result<bool> {
    let domain = domain.trim().to_ascii_lowercase();
    check_domain_admin(&domain, by)?;
    let revoked = ctx.store.grants().revoke_domain(&domain, consumer_key, ctx.now()).await?;
    if revoked {
        audit::record(
            ctx,
            "oauth1.domain_deauthorized",
            by.map(|it| it.id.as_str()),
            actor,
            "",
            json!({ "domain": domain, "consumer": consumer_key }),
        )
        .await?;
    }
    Ok(revoked)
}

/// A domain's two-legged authorizations (revoked ones too, oldest first), or every domain's.
pub async fn domain_grants(ctx: &Ctx, domain: Option<&str>) -> Result<Vec<DomainGrant>> {
    let domain = domain.map(|it| it.trim().to_ascii_lowercase());
    Ok(ctx.store.grants().list_domain(domain.as_deref()).await?)
}

/// `AuthSubRevokeToken` signed with an OAuth access token: revokes it.
pub async fn revoke(ctx: &Ctx, incoming: &Incoming, ip: &str) -> Checked<()> {
    let verified = match verify(ctx, incoming, &[CredentialKind::Oauth1AccessToken]).await? {
        Ok(verified) => verified,
        Err(problem) => return Ok(Err(problem)),
    };
    let Some(valid) = verified.token else {
        return Ok(Err(Problem::ParameterAbsent("oauth_token")));
    };
    ctx.store.credentials().revoke(&valid.record.digest, ctx.now()).await?;
    audit::record(
        ctx,
        "oauth1.revoke_token",
        valid.record.account_id.as_deref(),
        &Actor::System,
        ip,
        json!({ "client": valid.record.client_id }),
    )
    .await?;
    Ok(Ok(()))
}

/// `AuthSubTokenInfo` signed with an OAuth access token: `Target` is the consumer key, `Secure` is
/// `true` for RSA-SHA1 signatures (our reading; unconfirmed upstream).
pub async fn token_info(ctx: &Ctx, incoming: &Incoming) -> Checked<(String, Vec<String>, bool)> {
    let verified = match verify(ctx, incoming, &[CredentialKind::Oauth1AccessToken]).await? {
        Ok(verified) => verified,
        Err(problem) => return Ok(Err(problem)),
    };
    let Some(valid) = verified.token else {
        return Ok(Err(Problem::ParameterAbsent("oauth_token")));
    };
    let secure = verified.signed.signature_method == SignatureMethod::RsaSha1;
    Ok(Ok((verified.consumer.key, valid.scopes().to_vec(), secure)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestCtx;

    fn signed_incoming(
        method: &str,
        url: &str,
        params: &[(&str, &str)],
        consumer_secret: &str,
        token_secret: &str,
    ) -> Incoming {
        let mut header: Vec<(String, String)> =
            params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let (scheme, authority, path, query) = tessera_proto_oauth1::split_url(url).unwrap();
        let mut all = header.clone();
        all.extend(tessera_proto_oauth1::parse_form(query).unwrap());
        let uri = tessera_proto_oauth1::base_string_uri(scheme, authority, path);
        let base = tessera_proto_oauth1::base_string(method, &uri, &all);
        let key = format!(
            "{}&{}",
            tessera_proto_oauth1::encode(consumer_secret),
            tessera_proto_oauth1::encode(token_secret)
        );
        header.push((
            "oauth_signature".to_owned(),
            tessera_crypto::oauth1::hmac_sha1_base64(&key, &base),
        ));
        Incoming {
            facts: RequestFacts {
                method: method.to_owned(),
                url: url.to_owned(),
                dpop_proof: None,
                form: Vec::new(),
            },
            header,
            form: Vec::new(),
        }
    }

    /// A registered HMAC consumer `www.example.com`, an administrator and the administrator's
    /// OAuth 1.0 grant to it for the feeds scope.
    async fn consumer_with_grant()
    -> (TestCtx, crate::testing::TestAccount, String, crate::store::GrantRecord, Scopes) {
        let t = TestCtx::new().await;
        let admin = t.account("admin@example.test").admin().create().await;
        authsub::register(
            &t.ctx,
            "www.example.com",
            "https://www.example.com/",
            None,
            None,
            &Actor::Cli,
        )
        .await
        .unwrap();
        let secret = mint_consumer_secret(&t.ctx, "www.example.com", &Actor::Cli).await.unwrap();
        let grant = crate::grants::grant(
            &t.ctx,
            admin.id(),
            "www.example.com",
            PROTOCOL,
            &["https://www.example.com/feeds/".to_owned()],
            "",
        )
        .await
        .unwrap();
        let scopes = Scopes::parse("https://www.example.com/feeds/");
        (t, admin, secret, grant, scopes)
    }

    #[tokio::test]
    async fn a_token_issued_for_a_grant_signs_calls_and_keeps_the_per_app_cap() {
        let (t, admin, secret, grant, _) = consumer_with_grant().await;
        let now = t.now().to_string();
        let feed = "https://www.example.com/feeds/default";
        let call = |token: &str, token_secret: &str, nonce: &str| {
            signed_incoming(
                "GET",
                feed,
                &[
                    ("oauth_consumer_key", "www.example.com"),
                    ("oauth_nonce", nonce),
                    ("oauth_signature_method", "HMAC-SHA1"),
                    ("oauth_timestamp", &now),
                    ("oauth_token", token),
                ],
                &secret,
                token_secret,
            )
        };
        let mut issued = Vec::new();
        for _ in 0..=credentials::PER_APP_CAP {
            issued.push(issue_for_grant(&t.ctx, &grant).await.unwrap());
        }
        let (newest, newest_secret) = issued.last().unwrap();
        assert!(newest.starts_with("1/"));
        let Resolved::Token(valid) =
            resolve(&t.ctx, &call(newest, newest_secret, "c1")).await.unwrap().unwrap()
        else {
            panic!("three-legged")
        };
        assert_eq!(valid.record.grant_id.as_deref(), Some(grant.id.as_str()));
        assert_eq!(valid.record.account_id.as_deref(), Some(admin.id()));
        // The eleventh retired the first, as a three-legged exchange would have.
        let (oldest, oldest_secret) = &issued[0];
        assert_eq!(
            resolve(&t.ctx, &call(oldest, oldest_secret, "c2")).await.unwrap().err(),
            Some(CallerError::Invalid)
        );
        // Only OAuth 1.0 grants.
        let other = GrantRecord { protocol: "oauth2".to_owned(), ..grant.clone() };
        assert!(matches!(issue_for_grant(&t.ctx, &other).await, Err(Error::Invalid(_))));
    }

    #[tokio::test]
    async fn a_hybrid_token_is_exchanged_once_with_an_empty_secret_and_no_verifier() {
        let (t, admin, secret, grant, scopes) = consumer_with_grant().await;
        let token =
            authorized_request_token(&t.ctx, "www.example.com", &scopes, admin.id(), &grant.id)
                .await
                .unwrap();
        let now = t.now().to_string();
        let url = format!("{}/accounts/OAuthGetAccessToken", t.ctx.public_url);
        let request = |nonce: &'static str| {
            signed_incoming(
                "POST",
                &url,
                &[
                    ("oauth_consumer_key", "www.example.com"),
                    ("oauth_nonce", nonce),
                    ("oauth_signature_method", "HMAC-SHA1"),
                    ("oauth_timestamp", &now),
                    ("oauth_token", &token),
                    ("oauth_version", "1.0"),
                ],
                &secret,
                "",
            )
        };
        let (access, access_secret) = access_token(&t.ctx, &request("n1")).await.unwrap().unwrap();
        assert!(access.starts_with("1/"));
        assert_eq!(access_secret.len(), 24);
        // Once: the request token is spent.
        assert_eq!(
            access_token(&t.ctx, &request("n2")).await.unwrap(),
            Err(Problem::TokenRejected)
        );
        assert_eq!(
            access_token(&t.ctx, &request("n1")).await.unwrap(),
            Err(Problem::TokenRejected)
        );
        // The access token signs resource calls with its own secret.
        let feed = "https://www.example.com/feeds/default?max-results=5";
        let call = signed_incoming(
            "GET",
            feed,
            &[
                ("oauth_consumer_key", "www.example.com"),
                ("oauth_nonce", "r1"),
                ("oauth_signature_method", "HMAC-SHA1"),
                ("oauth_timestamp", &now),
                ("oauth_token", &access),
            ],
            &secret,
            &access_secret,
        );
        let Resolved::Token(valid) = resolve(&t.ctx, &call).await.unwrap().unwrap() else {
            panic!("three-legged")
        };
        assert_eq!(valid.record.grant_id.as_deref(), Some(grant.id.as_str()));
        // The same request again: its nonce was used.
        assert_eq!(resolve(&t.ctx, &call).await.unwrap().err(), Some(CallerError::Invalid));
        assert_eq!(
            verify(&t.ctx, &call, &[CredentialKind::Oauth1AccessToken]).await.unwrap().err(),
            Some(Problem::NonceUsed)
        );
        let wrong = signed_incoming(
            "GET",
            feed,
            &[
                ("oauth_consumer_key", "www.example.com"),
                ("oauth_nonce", "r2"),
                ("oauth_signature_method", "HMAC-SHA1"),
                ("oauth_timestamp", &now),
                ("oauth_token", &access),
            ],
            &secret,
            "not the secret",
        );
        assert_eq!(resolve(&t.ctx, &wrong).await.unwrap().err(), Some(CallerError::BadSignature));
        t.advance(TIMESTAMP_WINDOW_SECS + 1);
        let stale = signed_incoming(
            "GET",
            feed,
            &[
                ("oauth_consumer_key", "www.example.com"),
                ("oauth_nonce", "r3"),
                ("oauth_signature_method", "HMAC-SHA1"),
                ("oauth_timestamp", &now),
                ("oauth_token", &access),
            ],
            &secret,
            &access_secret,
        );
        assert_eq!(resolve(&t.ctx, &stale).await.unwrap().err(), Some(CallerError::Invalid));
    }

    #[tokio::test]
    async fn eleven_parallel_exchanges_leave_ten_access_tokens() {
        let (t, admin, secret, grant, scopes) = consumer_with_grant().await;
        let now = t.now().to_string();
        let url = format!("{}/accounts/OAuthGetAccessToken", t.ctx.public_url);
        let mut tasks = Vec::new();
        for i in 0..11 {
            let token =
                authorized_request_token(&t.ctx, "www.example.com", &scopes, admin.id(), &grant.id)
                    .await
                    .unwrap();
            let nonce = format!("burst-{i}");
            let incoming = signed_incoming(
                "POST",
                &url,
                &[
                    ("oauth_consumer_key", "www.example.com"),
                    ("oauth_nonce", &nonce),
                    ("oauth_signature_method", "HMAC-SHA1"),
                    ("oauth_timestamp", &now),
                    ("oauth_token", &token),
                ],
                &secret,
                "",
            );
            let ctx = t.ctx.clone();
            tasks.push(tokio::spawn(async move { access_token(&ctx, &incoming).await }));
        }
        for task in tasks {
            task.await.unwrap().unwrap().unwrap();
        }
        let live = t
            .ctx
            .store
            .credentials()
            .list_live_by_account(admin.id(), CredentialKind::Oauth1AccessToken, t.now())
            .await
            .unwrap();
        assert_eq!(live.len(), credentials::PER_APP_CAP as usize);
    }
}
