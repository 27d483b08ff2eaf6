//! `tessera admin dev seed`: bulk fixtures for the benchmark harness, written through the store in
//! batches of one transaction each, filler credentials in key order.

use anyhow::format_err;
use serde_json::{Value, json};
use tessera_domain::Ctx;
use tessera_domain::accounts::NewAccount;
use tessera_domain::audit::Actor;
use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};
use tessera_store::{AccountState, CredentialKind, CredentialRecord, SessionRecord};

pub(crate) const BENCH_EMAIL: &str = "bench@example.test";
pub(crate) const BENCH_PASSWORD: &str = "bench-password-1";
/// A second bench account, for a second set of connections on the same database.
pub(crate) const SECOND_BENCH_EMAIL: &str = "bench-2@example.test";
const BENCH_PROJECT: &str = "Bench";
const BENCH_CLIENT: &str = "Bench client";
const BENCH_JWT_CLIENT: &str = "Bench JWT client";
const BENCH_REDIRECT: &str = "http://127.0.0.1/bench/callback";
const BENCH_SERVICE: &str = "cl";
const BENCH_SCOPE: &str = "https://calendar.example.test/feeds/";
const BENCH_HMAC_CONSUMER: &str = "bench-hmac.example.test";
const BENCH_RSA_CONSUMER: &str = "bench-rsa.example.test";
const BENCH_PUSH_APP: &str = "test.tessera.bench";
const BATCH: u64 = 5_000;

/// Seeds `sessions` live sessions and `credentials` opaque access tokens for the bench account, a
/// confidential OAuth client already allowed `openid email` by that account, a second one whose
/// access tokens are JWTs (allowed the same), a ClientLogin service `cl`, and OAuth 1.0a consumers
/// with an access token each (HMAC-SHA1 always; RSA-SHA1 when `oauth1_rsa_cert` is a certificate
/// PEM), and `push_devices` push devices (install credentials, each with the bench app registered
/// for the bench project) with a push API key of that project; returns up to 1000 sample session
/// cookies, the clients' credentials and the push devices.
pub(crate) async fn seed(
    ctx: &Ctx,
    sessions: u64,
    credentials: u64,
    oauth1_rsa_cert: Option<&str>,
    push_devices: u64,
) -> anyhow::Result<Value> {
    let account = bench_account(ctx, BENCH_EMAIL).await?;
    let oauth_client = oauth_client(ctx, &account.id).await?;
    let jwt_client = jwt_client(ctx, &account.id).await?;
    if tessera_domain::services::get(ctx, BENCH_SERVICE).await.is_err() {
        let new = tessera_domain::services::NewService {
            name: BENCH_SERVICE.to_owned(),
            display_name: "Calendar".to_owned(),
            scopes: vec![BENCH_SCOPE.to_owned()],
            clientlogin_ttl_secs: None,
            protocols: None,
        };
        tessera_domain::services::add(ctx, new, &Actor::Cli).await?;
    }
    let oauth1_hmac = oauth1_consumer(ctx, &account.id, BENCH_HMAC_CONSUMER, None).await?;
    let oauth1_rsa = match oauth1_rsa_cert {
        Some(pem) => Some(oauth1_consumer(ctx, &account.id, BENCH_RSA_CONSUMER, Some(pem)).await?),
        None => None,
    };

    let samples = seed_sessions(ctx, &account.id, sessions).await?;
    let now = ctx.now();
    let mut made = 0;
    while made < credentials {
        let n = BATCH.min(credentials - made);
        let batch: Vec<CredentialRecord> = (made..made + n)
            .map(|index| {
                let digest = filler_digest(ctx, index, credentials);
                let mut record = CredentialRecord::new(digest, CredentialKind::AccessToken, now);
                record.account_id = Some(account.id.clone());
                record.expires_at = Some(now + 3600);
                record
            })
            .collect();
        ctx.store
            .credentials()
            .insert_many(&batch)
            .await
            .map_err(|err| format_err!("seeding credentials: {err}"))?;
        made += n;
    }
    let push = if push_devices > 0 { Some(push(ctx, push_devices).await?) } else { None };
    Ok(json!({
        "push": push,
        "account_email": BENCH_EMAIL,
        "password": BENCH_PASSWORD,
        "cookie_name": "TSID",
        "session_cookies": samples,
        "oauth_client": oauth_client,
        "jwt_client": jwt_client,
        "oauth1_hmac": oauth1_hmac,
        "oauth1_rsa": oauth1_rsa,
    }))
}

/// `count` push devices (install ids `bench-<n>`, a fresh batch each seeding) registered for the
/// bench app with the bench project as sender, through the domain's batch of new installs, and a
/// fresh push API key of the project.
async fn push(ctx: &Ctx, count: u64) -> anyhow::Result<Value> {
    let project = bench_project(ctx)
        .await?
        .ok_or_else(|| format_err!("the bench project is made with the bench clients"))?;
    let api_key = tessera_domain::push::create_api_key(ctx, &project.id, "bench").await?;
    let senders = [project.id.clone()];
    let run = ctx.new_id();
    let mut devices = Vec::with_capacity(count as usize);
    let mut made = 0;
    while made < count {
        let n = (BATCH / 2).min(count - made);
        let ids: Vec<String> = (made..made + n).map(|it| format!("bench-{run}-{it}")).collect();
        let registered =
            tessera_domain::push::register_new_installs(ctx, BENCH_PUSH_APP, &senders, &ids)
                .await?
                .map_err(|code| format_err!("registering the bench push devices: {code:?}"))?;
        for (device, (credential, registration_id)) in ids.into_iter().zip(registered) {
            devices.push(json!({
                "device": device,
                "credential": credential,
                "registration_id": registration_id,
            }));
        }
        made += n;
    }
    Ok(json!({ "api_key": api_key, "sender_id": project.id, "devices": devices }))
}

/// The digest of the `index`-th of `total` filler credentials: digests spread evenly over the key
/// space in ascending order, each with random low bits, so that the primary-key index is built by
/// appending (tens of millions of random-order inserts would rewrite most of a large index's pages
/// on every transaction) while lookups of real, random digests still land anywhere in it. Nobody
/// holds the tokens of these rows; they only make the table as large as the benchmark asks.
fn filler_digest(ctx: &Ctx, index: u64, total: u64) -> String {
    let step = u128::MAX / u128::from(total.max(1));
    let high = step.saturating_mul(u128::from(index));
    let mut low = [0u8; 16];
    ctx.rng.fill(&mut low);
    format!("{high:032x}{:032x}", u128::from_be_bytes(low))
}

/// Seeds a second bench account ([`SECOND_BENCH_EMAIL`], same password) with `sessions` live
/// sessions and allows it the bench clients, whose secrets it leaves as they are: a second process
/// measured on the same database then keeps its own per-account limits (the ten live refresh
/// tokens per client) instead of taking the first one's. Needs the bench account seeded first;
/// returns the account and its sample session cookies.
pub(crate) async fn seed_second(ctx: &Ctx, sessions: u64) -> anyhow::Result<Value> {
    let project =
        bench_project(ctx).await?.ok_or_else(|| format_err!("seed the bench account first"))?;
    let account = bench_account(ctx, SECOND_BENCH_EMAIL).await?;
    let scopes = ["openid".to_owned(), "email".to_owned()];
    for client in clients::list(ctx, &project.id).await? {
        if [BENCH_CLIENT, BENCH_JWT_CLIENT].contains(&client.record.name.as_str()) {
            let protocol = tessera_domain::credentials::Protocol::OAuth2;
            let client_id = &client.record.client_id;
            tessera_domain::grants::grant(ctx, &account.id, client_id, protocol, &scopes, "")
                .await?;
        }
    }
    let samples = seed_sessions(ctx, &account.id, sessions).await?;
    Ok(json!({
        "account_email": SECOND_BENCH_EMAIL,
        "password": BENCH_PASSWORD,
        "cookie_name": "TSID",
        "session_cookies": samples,
    }))
}

/// The bench project, once the bench clients made it.
async fn bench_project(ctx: &Ctx) -> anyhow::Result<Option<tessera_store::ProjectRecord>> {
    Ok(ctx
        .store
        .projects()
        .find_by_name(BENCH_PROJECT)
        .await
        .map_err(tessera_domain::Error::from)?)
}

/// The bench account `email`, created (with [`BENCH_PASSWORD`]) when missing.
async fn bench_account(ctx: &Ctx, email: &str) -> anyhow::Result<tessera_store::AccountRecord> {
    if let Ok(account) = tessera_domain::accounts::find_by_email(ctx, email).await {
        return Ok(account);
    }
    let new = NewAccount {
        email: email.to_owned(),
        name: "Bench".to_owned(),
        domain: None,
        password: Some(BENCH_PASSWORD.to_owned()),
        is_admin: false,
        state: AccountState::Active,
    };
    Ok(tessera_domain::accounts::create(ctx, new, &Actor::Cli, "").await?)
}

/// Seeds `sessions` live persistent sessions of the account in batches; returns up to 1000 of
/// their cookie values.
async fn seed_sessions(ctx: &Ctx, account_id: &str, sessions: u64) -> anyhow::Result<Vec<String>> {
    let now = ctx.now();
    let ttl = ctx.policy.persistent_session_ttl_secs;
    let mut samples = Vec::new();
    let mut made = 0;
    while made < sessions {
        let n = BATCH.min(sessions - made);
        let mut batch = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let (token, digest) = ctx.new_token();
            let session = SessionRecord {
                id: ctx.new_id(),
                account_id: account_id.to_owned(),
                created_at: now,
                auth_time: now,
                last_seen_at: now,
                expires_at: now + ttl,
                revoked_at: None,
                persistent: true,
                second_factor: false,
                user_agent: "bench".to_owned(),
                ip: "127.0.0.1".to_owned(),
            };
            let mut cookie = CredentialRecord::new(digest, CredentialKind::Session, now);
            cookie.account_id = Some(account_id.to_owned());
            cookie.session_id = Some(session.id.clone());
            cookie.expires_at = Some(session.expires_at);
            if samples.len() < 1000 {
                samples.push(token);
            }
            batch.push((session, cookie));
        }
        ctx.store
            .sessions()
            .create_many(&batch)
            .await
            .map_err(|err| format_err!("seeding sessions: {err}"))?;
        made += n;
    }
    Ok(samples)
}

/// The bench project's confidential client, with a fresh secret on every seeding, allowed
/// `openid email` by the bench account so the authorization request needs no consent page.
async fn oauth_client(ctx: &Ctx, account_id: &str) -> anyhow::Result<Value> {
    let (client_id, secret) = confidential_client(ctx, BENCH_CLIENT, false).await?;
    let scopes = ["openid".to_owned(), "email".to_owned()];
    tessera_domain::grants::grant(
        ctx,
        account_id,
        &client_id,
        tessera_domain::credentials::Protocol::OAuth2,
        &scopes,
        "",
    )
    .await?;
    Ok(json!({ "client_id": client_id, "client_secret": secret, "redirect_uri": BENCH_REDIRECT }))
}

/// A second confidential client of the bench project whose access tokens are RFC 9068 JWTs, also
/// allowed `openid email` by the bench account.
async fn jwt_client(ctx: &Ctx, account_id: &str) -> anyhow::Result<Value> {
    let (client_id, secret) = confidential_client(ctx, BENCH_JWT_CLIENT, true).await?;
    let scopes = ["openid".to_owned(), "email".to_owned()];
    tessera_domain::grants::grant(
        ctx,
        account_id,
        &client_id,
        tessera_domain::credentials::Protocol::OAuth2,
        &scopes,
        "",
    )
    .await?;
    Ok(json!({ "client_id": client_id, "client_secret": secret, "redirect_uri": BENCH_REDIRECT }))
}

/// A registered OAuth 1.0a consumer `domain` (an HMAC-SHA1 consumer secret, freshly minted; or the
/// certificate `cert_pem` for RSA-SHA1) and an access token of the bench account for the calendar
/// scope, issued on the consumer's OAuth 1.0 grant as the three-legged exchange would.
async fn oauth1_consumer(
    ctx: &Ctx,
    account_id: &str,
    domain: &str,
    cert_pem: Option<&str>,
) -> anyhow::Result<Value> {
    if tessera_domain::authsub::registration(ctx, domain).await?.is_none() {
        tessera_domain::authsub::register(
            ctx,
            domain,
            &format!("https://{domain}/"),
            cert_pem,
            Some(BENCH_EMAIL),
            &Actor::Cli,
        )
        .await?;
    }
    let consumer_secret = match cert_pem {
        None => Some(tessera_domain::oauth1::mint_consumer_secret(ctx, domain, &Actor::Cli).await?),
        Some(_) => None,
    };
    let grant = tessera_domain::grants::grant(
        ctx,
        account_id,
        domain,
        tessera_domain::credentials::Protocol::OAuth1,
        &[BENCH_SCOPE.to_owned()],
        "",
    )
    .await?;
    let (token, token_secret) = tessera_domain::oauth1::issue_for_grant(ctx, &grant).await?;
    Ok(json!({
        "consumer_key": domain,
        "consumer_secret": consumer_secret,
        "token": token,
        "token_secret": token_secret,
        "resource": format!("{BENCH_SCOPE}default/private/full?max-results=25"),
    }))
}

/// The bench project's web client called `name`, created on first use, with a fresh secret.
async fn confidential_client(ctx: &Ctx, name: &str, jwt: bool) -> anyhow::Result<(String, String)> {
    let project = match bench_project(ctx).await? {
        Some(project) => project,
        None => {
            tessera_domain::projects::create(ctx, BENCH_PROJECT, BENCH_EMAIL, &Actor::Cli).await?
        }
    };
    let existing = clients::list(ctx, &project.id).await?;
    if let Some(client) = existing.iter().find(|it| it.record.name == name) {
        let secret = clients::rotate_secret(ctx, &client.record.client_id, &Actor::Cli).await?;
        return Ok((client.record.client_id.clone(), secret));
    }
    let new = NewClient {
        kind: ClientKind::Web,
        name: name.to_owned(),
        redirect_uris: vec![BENCH_REDIRECT.to_owned()],
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: jwt,
    };
    let created = clients::create(ctx, &project, new, &Actor::Cli).await?;
    let secret = created.secret.ok_or_else(|| format_err!("a web client has a secret"))?;
    Ok((created.client.record.client_id, secret))
}
