//! Registered OAuth 2.0 clients: their kinds, settings, secrets (shown once, stored as a SHA-256
//! digest of 192 random bits) and authentication at the token endpoint.

use serde::{Deserialize, Serialize};
use serde_json::json;
use tessera_proto_oauth2::client_auth::{Method, Presented};
use tessera_proto_oauth2::redirect_uri;
use tessera_store::{ClientRecord, ProjectRecord};

use super::{ErrorCode, Outcome, oauth};
use crate::audit::{self, Actor};
use crate::{Ctx, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// A server-side application: confidential, exact redirect URIs.
    Web,
    /// A native application: public, loopback, out-of-band and private-use redirects, PKCE.
    Installed,
    /// An Android application identified by package name and signing-certificate SHA-1.
    Android,
    /// A server acting as itself, with key pairs.
    ServiceAccount,
    /// A limited-input device (RFC 8628).
    Device,
    /// A front-end (a single-page app, formerly a gadget) that reaches resource servers only
    /// through tessera's token proxy (`proxy`): no secret, no redirect URIs, its tokens held by
    /// tessera and never handed out.
    FrontEnd,
}

impl ClientKind {
    pub const ALL: [ClientKind; 6] = [
        ClientKind::Web,
        ClientKind::Installed,
        ClientKind::Android,
        ClientKind::ServiceAccount,
        ClientKind::Device,
        ClientKind::FrontEnd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Web => "web",
            ClientKind::Installed => "installed",
            ClientKind::Android => "android",
            ClientKind::ServiceAccount => "service_account",
            ClientKind::Device => "device",
            ClientKind::FrontEnd => "front_end",
        }
    }

    pub fn parse(value: &str) -> Option<ClientKind> {
        ClientKind::ALL.into_iter().find(|it| it.as_str() == value)
    }

    /// Whether the client gets a secret.
    pub fn confidential(self) -> bool {
        matches!(self, ClientKind::Web)
    }
}

/// What `ClientRecord::settings` holds for OAuth 2.0 clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSettings {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Allows `response_type=token` / `id_token` (implicit and hybrid flows).
    #[serde(default)]
    pub allow_implicit: bool,
    /// Access tokens are RS256 JWTs (RFC 9068) instead of opaque strings.
    #[serde(default)]
    pub jwt_access_tokens: bool,
    /// Allows PKCE `plain`; otherwise only S256.
    #[serde(default)]
    pub allow_plain_pkce: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_package: Option<String>,
    /// Upper-case hex with colons, as `keytool` prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_cert_sha1: Option<String>,
    /// The authorization endpoint accepts this client's requests only pushed first (RFC 9126
    /// §6, `require_pushed_authorization_requests`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_pushed_authorization_requests: bool,
    /// Public keys the client signs assertions with (service accounts, `private_key_jwt`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<ClientKey>,
    /// A front-end app's origins and the resource prefixes the proxy may call for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<crate::proxy::FrontEnd>,
}

/// One of a client's public keys. The private half went to the developer once and is not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientKey {
    pub kid: String,
    pub alg: String,
    /// PKCS#1 `RSAPublicKey` DER, base64.
    pub public_der: String,
    pub created_at: i64,
}

/// A client as the protocol sees it.
#[derive(Debug, Clone)]
pub struct Client {
    pub record: ClientRecord,
    pub kind: ClientKind,
    pub settings: ClientSettings,
}

impl Client {
    pub fn id(&self) -> &str {
        &self.record.client_id
    }

    /// A client that cannot keep a secret and names itself with its id alone: installed, Android
    /// and device clients. Service accounts are not public: they prove themselves with keys.
    pub fn is_public(&self) -> bool {
        matches!(self.kind, ClientKind::Installed | ClientKind::Android | ClientKind::Device)
    }

    pub fn from_record(record: ClientRecord) -> Option<Client> {
        let kind = ClientKind::parse(&record.kind)?;
        let settings = serde_json::from_str(&record.settings).ok()?;
        Some(Client { record, kind, settings })
    }
}

/// What a developer asks for.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub kind: ClientKind,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub android_package: Option<String>,
    pub android_cert_sha1: Option<String>,
    pub allow_implicit: bool,
    pub jwt_access_tokens: bool,
}

/// The stored client and, for confidential clients, the secret: shown once, never again.
#[derive(Debug)]
pub struct Created {
    pub client: Client,
    pub secret: Option<String>,
}

fn check_uris(kind: ClientKind, uris: &[String]) -> Result<()> {
    let public = !kind.confidential();
    for uri in uris {
        redirect_uri::validate_registration(uri, public).map_err(|why| {
            Error::Invalid(format!("{why} ({})", uri.chars().take(100).collect::<String>()))
        })?;
    }
    if matches!(kind, ClientKind::Web) && uris.is_empty() {
        return Err(Error::Invalid("A web client needs at least one redirect URI.".to_owned()));
    }
    Ok(())
}

fn check_android(package: Option<&str>, sha1: Option<&str>) -> Result<(String, String)> {
    let package = package.unwrap_or_default();
    let valid_package = package.split('.').count() >= 2
        && package.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && part.as_bytes()[0].is_ascii_alphabetic()
        });
    if !valid_package {
        return Err(Error::Invalid("Enter the package name, such as com.example.app.".to_owned()));
    }
    let hex: String = sha1.unwrap_or_default().chars().filter(|c| *c != ':').collect();
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Invalid(
            "Enter the signing certificate's SHA-1 fingerprint.".to_owned(),
        ));
    }
    let hex = hex.to_ascii_uppercase();
    let colons = hex.as_bytes().chunks(2).map(|it| String::from_utf8_lossy(it).into_owned());
    Ok((package.to_owned(), colons.collect::<Vec<_>>().join(":")))
}

fn new_secret(ctx: &Ctx) -> (String, String) {
    let secret = tessera_crypto::random::token(ctx.rng.as_ref(), 24);
    let digest = tessera_crypto::digest::token_digest(&secret);
    (secret, digest)
}

/// Registers a client in `project`.
pub async fn create(
    ctx: &Ctx,
    project: &ProjectRecord,
    new: NewClient,
    actor: &Actor,
) -> Result<Created> {
    if new.kind == ClientKind::FrontEnd {
        return Err(Error::Invalid(
            "A front-end app is registered with its origins and resource prefixes.".to_owned(),
        ));
    }
    create_with(ctx, project, new, None, actor).await
}

/// [`create`], with a front-end app's proxy settings (`proxy::register` checks them first).
pub(crate) async fn create_with(
    ctx: &Ctx,
    project: &ProjectRecord,
    new: NewClient,
    proxy: Option<crate::proxy::FrontEnd>,
    actor: &Actor,
) -> Result<Created> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::Invalid("Name the client with 1 to 100 characters.".to_owned()));
    }
    check_uris(new.kind, &new.redirect_uris)?;
    let mut settings = ClientSettings {
        redirect_uris: new.redirect_uris.clone(),
        allow_implicit: new.allow_implicit,
        jwt_access_tokens: new.jwt_access_tokens,
        proxy,
        ..ClientSettings::default()
    };
    if new.kind == ClientKind::Android {
        let (package, sha1) =
            check_android(new.android_package.as_deref(), new.android_cert_sha1.as_deref())?;
        settings.android_package = Some(package);
        settings.android_cert_sha1 = Some(sha1);
    }
    let digits = tessera_crypto::random::digits(ctx.rng.as_ref(), 12);
    let tail = tessera_crypto::random::from_alphabet(
        ctx.rng.as_ref(),
        b"abcdefghijklmnopqrstuvwxyz0123456789",
        32,
    );
    let client_id = format!("{digits}-{tail}.apps.tessera");
    let (secret, digest) =
        if new.kind.confidential() { Some(new_secret(ctx)) } else { None }.unzip();
    let record = ClientRecord {
        client_id,
        project_id: project.id.clone(),
        kind: new.kind.as_str().to_owned(),
        name: name.to_owned(),
        secret_digest: digest,
        settings: serde_json::to_string(&settings)
            .map_err(|err| Error::Internal(err.to_string()))?,
        created_at: ctx.now(),
    };
    ctx.store.projects().add_client(&record).await?;
    audit::record(
        ctx,
        "client.create",
        None,
        actor,
        "",
        json!({ "client": record.client_id, "project": project.id, "kind": record.kind }),
    )
    .await?;
    Ok(Created { client: Client { record, kind: new.kind, settings }, secret })
}

/// The client with this id, if it is a registered OAuth 2.0 client.
pub async fn load(ctx: &Ctx, client_id: &str) -> Result<Option<Client>> {
    if client_id.is_empty() || client_id.len() > 200 {
        return Ok(None);
    }
    Ok(crate::answers::get_client(ctx, client_id).await?.and_then(Client::from_record))
}

/// The client if `account_id` owns its project (the developer console's check).
pub async fn load_owned(ctx: &Ctx, account_id: &str, client_id: &str) -> Result<Client> {
    let client = load(ctx, client_id).await?.ok_or(Error::NotFound)?;
    crate::projects::get_owned(ctx, account_id, &client.record.project_id).await?;
    Ok(client)
}

pub async fn list(ctx: &Ctx, project_id: &str) -> Result<Vec<Client>> {
    let records = ctx.store.projects().list_clients(project_id).await?;
    Ok(records.into_iter().filter_map(Client::from_record).collect())
}

/// Replaces a confidential client's secret; the old one stops working at once on this node, and
/// within the second on the others (they keep a client for the current second: [`crate::answers`]).
pub async fn rotate_secret(ctx: &Ctx, client_id: &str, actor: &Actor) -> Result<String> {
    let client = load(ctx, client_id).await?.ok_or(Error::NotFound)?;
    if !client.kind.confidential() {
        return Err(Error::Invalid("This kind of client has no secret.".to_owned()));
    }
    let (secret, digest) = new_secret(ctx);
    let record = ClientRecord { secret_digest: Some(digest), ..client.record };
    if !ctx.store.projects().update_client(&record).await? {
        return Err(Error::NotFound);
    }
    audit::record(ctx, "client.rotate_secret", None, actor, "", json!({ "client": client_id }))
        .await?;
    Ok(secret)
}

/// Replaces the registered redirect URIs.
pub async fn set_redirect_uris(
    ctx: &Ctx,
    client_id: &str,
    uris: Vec<String>,
    actor: &Actor,
) -> Result<Client> {
    let mut client = load(ctx, client_id).await?.ok_or(Error::NotFound)?;
    check_uris(client.kind, &uris)?;
    client.settings.redirect_uris = uris;
    client.record.settings =
        serde_json::to_string(&client.settings).map_err(|err| Error::Internal(err.to_string()))?;
    if !ctx.store.projects().update_client(&client.record).await? {
        return Err(Error::NotFound);
    }
    audit::record(ctx, "client.update", None, actor, "", json!({ "client": client_id })).await?;
    Ok(client)
}

/// A new key pair for a service account: the public key is registered, the private key (PKCS#8
/// PEM) is returned once and never stored.
pub async fn add_key(ctx: &Ctx, client_id: &str, actor: &Actor) -> Result<(String, String)> {
    use base64::Engine as _;
    let mut client = load(ctx, client_id).await?.ok_or(Error::NotFound)?;
    if client.kind != ClientKind::ServiceAccount {
        return Err(Error::Invalid("Only service accounts have key pairs.".to_owned()));
    }
    if client.settings.keys.len() >= 10 {
        return Err(Error::Invalid("A service account has at most 10 keys.".to_owned()));
    }
    let key = tessera_crypto::keys::SigningKey::generate(tessera_crypto::keys::KeyAlg::Rs256)
        .map_err(|err| Error::Internal(err.to_string()))?;
    let public = key.public_key_der();
    let kid = tessera_crypto::digest::sha256_hex(&public)[..40].to_owned();
    client.settings.keys.push(ClientKey {
        kid: kid.clone(),
        alg: "RS256".to_owned(),
        public_der: base64::engine::general_purpose::STANDARD.encode(&public),
        created_at: ctx.now(),
    });
    client.record.settings =
        serde_json::to_string(&client.settings).map_err(|err| Error::Internal(err.to_string()))?;
    if !ctx.store.projects().update_client(&client.record).await? {
        return Err(Error::NotFound);
    }
    audit::record(
        ctx,
        "client.key.add",
        None,
        actor,
        "",
        json!({ "client": client_id, "kid": kid }),
    )
    .await?;
    Ok((kid, tessera_crypto::x509::pem("PRIVATE KEY", key.pkcs8_der())))
}

/// Registers a public key the developer made (a `PUBLIC KEY` or `CERTIFICATE` PEM, RSA ≥ 2048
/// bits) for a service account; the private key never reaches tessera. Returns the key id.
pub async fn upload_key(ctx: &Ctx, client_id: &str, pem: &str, actor: &Actor) -> Result<String> {
    use base64::Engine as _;
    let mut client = load(ctx, client_id).await?.ok_or(Error::NotFound)?;
    if client.kind != ClientKind::ServiceAccount {
        return Err(Error::Invalid("Only service accounts have keys.".to_owned()));
    }
    if client.settings.keys.len() >= 10 {
        return Err(Error::Invalid("A service account has at most 10 keys.".to_owned()));
    }
    let parsed = tessera_crypto::authsub::parse_rsa_public_pem(pem.as_bytes(), 2048)
        .map_err(|err| Error::Invalid(format!("That is not a usable key: {err}.")))?;
    let kid = tessera_crypto::digest::sha256_hex(&parsed.rsa_public_key)[..40].to_owned();
    if client.settings.keys.iter().any(|it| it.kid == kid) {
        return Err(Error::Conflict("That key is already registered.".to_owned()));
    }
    client.settings.keys.push(ClientKey {
        kid: kid.clone(),
        alg: "RS256".to_owned(),
        public_der: base64::engine::general_purpose::STANDARD.encode(&parsed.rsa_public_key),
        created_at: ctx.now(),
    });
    save_settings(ctx, &mut client).await?;
    audit::record(
        ctx,
        "client.key.upload",
        None,
        actor,
        "",
        json!({ "client": client_id, "kid": kid }),
    )
    .await?;
    Ok(kid)
}

/// Removes one of a service account's keys: assertions signed with it are refused from now on.
pub async fn remove_key(ctx: &Ctx, client_id: &str, kid: &str, actor: &Actor) -> Result<()> {
    let mut client = load(ctx, client_id).await?.ok_or(Error::NotFound)?;
    let before = client.settings.keys.len();
    client.settings.keys.retain(|it| it.kid != kid);
    if client.settings.keys.len() == before {
        return Err(Error::NotFound);
    }
    save_settings(ctx, &mut client).await?;
    audit::record(
        ctx,
        "client.key.remove",
        None,
        actor,
        "",
        json!({ "client": client_id, "kid": kid }),
    )
    .await
}

async fn save_settings(ctx: &Ctx, client: &mut Client) -> Result<()> {
    client.record.settings =
        serde_json::to_string(&client.settings).map_err(|err| Error::Internal(err.to_string()))?;
    if !ctx.store.projects().update_client(&client.record).await? {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Deletes the client and revokes every grant to it (and so every token it holds).
pub async fn delete(ctx: &Ctx, client_id: &str, actor: &Actor) -> Result<()> {
    load(ctx, client_id).await?.ok_or(Error::NotFound)?;
    for grant in ctx.store.grants().list_live_by_client(client_id).await? {
        ctx.store.grants().revoke(&grant.id, ctx.now()).await?;
    }
    ctx.store.projects().delete_client(client_id).await?;
    audit::record(ctx, "client.delete", None, actor, "", json!({ "client": client_id })).await
}

/// Authenticates the client at the token, revocation or introspection endpoint. Public clients
/// name themselves; confidential ones must prove their secret. Unknown clients and wrong secrets
/// answer the same `invalid_client`.
pub async fn authenticate(ctx: &Ctx, presented: Option<&Presented>) -> Outcome<Client> {
    let Some(presented) = presented else {
        return Err(oauth(ErrorCode::InvalidClient, "Client authentication is required."));
    };
    let unknown = || oauth(ErrorCode::InvalidClient, "The OAuth client was not found.");
    let Some(client) = load(ctx, &presented.client_id).await? else {
        return Err(unknown());
    };
    match (&presented.method, client.record.secret_digest.as_deref()) {
        (Method::Basic { secret } | Method::Post { secret }, Some(digest)) => {
            let given = tessera_crypto::digest::token_digest(secret);
            if tessera_crypto::digest::ct_eq(given.as_bytes(), digest.as_bytes()) {
                Ok(client)
            } else {
                Err(oauth(ErrorCode::InvalidClient, "Unauthorized: the client secret is wrong."))
            }
        }
        (Method::None, _) if client.is_public() => Ok(client),
        (Method::None, _) => Err(oauth(ErrorCode::InvalidClient, "This client must authenticate.")),
        (Method::Basic { .. } | Method::Post { .. }, None) => {
            Err(oauth(ErrorCode::InvalidClient, "This client has no secret."))
        }
        (Method::PrivateKeyJwt { assertion }, _) => {
            super::assertion::client_assertion(ctx, &client, assertion).await?;
            Ok(client)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn android_fingerprints_are_normalized() {
        let (package, sha1) = check_android(
            Some("com.example.identity"),
            Some("da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        )
        .unwrap();
        assert_eq!(package, "com.example.identity");
        assert_eq!(sha1, "DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09");
        assert!(check_android(Some("example"), Some(&sha1)).is_err());
        assert!(check_android(Some("com.example"), Some("12:34")).is_err());
    }

    #[test]
    fn web_clients_need_https_redirects() {
        assert!(check_uris(ClientKind::Web, &["https://a.example/cb".to_owned()]).is_ok());
        assert!(check_uris(ClientKind::Web, &[]).is_err());
        assert!(check_uris(ClientKind::Web, &[redirect_uri::OOB.to_owned()]).is_err());
        assert!(check_uris(ClientKind::Installed, &[redirect_uri::OOB.to_owned()]).is_ok());
    }
}
