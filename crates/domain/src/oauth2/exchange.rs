//! The token endpoint's grant dispatch ([`token`]) and its grants: authorization code (single use; a replay revokes the grant),
//! refresh token (rotated with reuse detection for public clients), client credentials, token
//! exchange for cross-client ID tokens, and the migration grants (`migration.rs`).

use serde_json::json;
use tessera_proto_oauth2::client_auth;
use tessera_proto_oauth2::grants::{
    authorization_code, client_credentials, refresh_token, token_exchange,
};
use tessera_proto_oauth2::pkce::{self, Method};
use tessera_proto_oauth2::token::TokenRequest;
use tessera_store::{AccountRecord, CredentialKind, CredentialRecord, GrantRecord, Redemption};

use super::clients::{Client, ClientKind};
use super::cross_client::{self, Refused};
use super::tokens::{self, IdTokenClaims, Issued, Remembered, Subject};
use super::{ACCESS_TOKEN_TTL_SECS, ErrorCode, Failure, Outcome, oauth};
use crate::audit::{self, Actor};
use crate::credentials::{self, Scopes};
use crate::{Ctx, grants, services};

/// The token endpoint (RFC 6749 §3.2): authenticates the client and runs the one grant the
/// request names. A service account's assertion (`jwt-bearer`) is its own authentication.
/// `jkt` is the thumbprint of the key of a checked DPoP proof: the access token (and a public
/// client's refresh token) it issues is bound to that key.
pub async fn token(
    ctx: &Ctx,
    presented: Option<&client_auth::Presented>,
    request: &TokenRequest,
    ip: &str,
    jkt: Option<&str>,
) -> Outcome<Issued> {
    token_signed(ctx, presented, request, ip, jkt, None).await
}

/// [`token`] for a request that may also be signed with OAuth 1.0: `signed` carries its OAuth 1.0
/// parameters, URL and body for the `migration:oauth1` grant (ignored by every other grant).
pub async fn token_signed(
    ctx: &Ctx,
    presented: Option<&client_auth::Presented>,
    request: &TokenRequest,
    ip: &str,
    jkt: Option<&str>,
    signed: Option<&crate::oauth1::Incoming>,
) -> Outcome<Issued> {
    if let TokenRequest::JwtBearer(req) = request {
        return super::assertion::jwt_bearer(ctx, &req.assertion, jkt).await;
    }
    let client = super::clients::authenticate(ctx, presented).await?;
    match request {
        TokenRequest::AuthorizationCode(req) => {
            authorization_code(ctx, &client, req, ip, jkt).await
        }
        TokenRequest::RefreshToken(req) => refresh(ctx, &client, req, ip, jkt).await,
        TokenRequest::ClientCredentials(req) => client_credentials(ctx, &client, req, jkt).await,
        TokenRequest::TokenExchange(req) => token_exchange(ctx, &client, req).await,
        TokenRequest::DeviceCode(req) => {
            super::device::poll(ctx, &client, &req.device_code, jkt).await
        }
        TokenRequest::JwtBearer(req) => {
            super::assertion::jwt_bearer(ctx, &req.assertion, jkt).await
        }
        TokenRequest::Migration(req) => {
            super::migration::migrate(ctx, &client, req, signed, ip, jkt).await
        }
    }
}

/// What a grant of tokens will answer, and the rows to write for it.
pub(crate) struct Prepared {
    pub(crate) issued: Issued,
    pub(crate) rows: Vec<CredentialRecord>,
}

/// Builds the access token, and the refresh and ID tokens when asked, without writing anything:
/// the caller stores the rows ([`store`]) or writes them in a redemption's transaction.
pub(crate) async fn prepare(
    ctx: &Ctx,
    client: &Client,
    account: &AccountRecord,
    grant_id: &str,
    scopes: &[String],
    refresh: bool,
    remembered: &Remembered,
) -> Outcome<Prepared> {
    let scope = grants::normalize_scopes(scopes.iter().map(String::as_str));
    let subject =
        Subject { account_id: Some(&account.id), client_id: client.id(), grant_id: Some(grant_id) };
    let jkt = remembered.jkt.as_deref();
    let (access, access_row) =
        tokens::access_token_row(ctx, client, subject, &scope, remembered.offline, jkt).await?;
    let mut rows = vec![access_row];
    let refresh_token = match refresh {
        true => {
            // RFC 9449 §5: a public client's refresh token is bound to its key too.
            let bound = jkt.filter(|_| client.is_public());
            let (token, row) =
                tokens::refresh_token_row(ctx, subject, &scope, remembered.auth_time, bound)?;
            rows.push(row);
            Some(token)
        }
        false => None,
    };
    let id_token = if scopes.iter().any(|it| it == "openid") {
        let claims = IdTokenClaims {
            account,
            audience: client.id(),
            authorized_party: client.id(),
            scopes,
            nonce: remembered.nonce.as_deref(),
            auth_time: remembered.auth_time,
            access_token: Some(&access),
            code: None,
        };
        Some(tokens::id_token(ctx, &claims).await?)
    } else {
        None
    };
    let issued = Issued {
        access_token: Some(access),
        token_type: if jkt.is_some() { "DPoP" } else { "Bearer" },
        expires_in: ACCESS_TOKEN_TTL_SECS,
        scope,
        refresh_token,
        id_token,
    };
    Ok(Prepared { issued, rows })
}

/// Writes prepared rows: side by side, so that a store that commits concurrent inserts together
/// (SQLite's group commit) writes them in one transaction; refresh tokens under their cap.
async fn store(ctx: &Ctx, rows: &[CredentialRecord]) -> crate::Result<()> {
    async fn write(ctx: &Ctx, row: &CredentialRecord) -> crate::Result<()> {
        match row.kind {
            CredentialKind::RefreshToken => credentials::issue_capped(ctx, row).await,
            _ => Ok(ctx.store.credentials().insert(row).await?),
        }
    }
    match rows {
        [first, second] => tokio::try_join!(write(ctx, first), write(ctx, second)).map(|_| ()),
        _ => {
            for row in rows {
                write(ctx, row).await?;
            }
            Ok(())
        }
    }
}

/// Issues the access token, and the refresh and ID tokens when asked, for a grant that needs no
/// redemption (device flow, confidential refresh).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn issue(
    ctx: &Ctx,
    client: &Client,
    account: &AccountRecord,
    grant: &GrantRecord,
    scopes: &[String],
    refresh: bool,
    remembered: &Remembered,
) -> Outcome<Issued> {
    let prepared = prepare(ctx, client, account, &grant.id, scopes, refresh, remembered).await?;
    store(ctx, &prepared.rows).await?;
    grants::touch(ctx, grant).await?;
    Ok(prepared.issued)
}

/// Consumes `digest` and writes what it buys in one transaction; `None` when another request
/// consumed it first (or its grant was revoked meanwhile).
async fn redeem(
    ctx: &Ctx,
    digest: &str,
    kind: CredentialKind,
    client: &Client,
    prepared: &Prepared,
) -> crate::Result<Option<CredentialRecord>> {
    let redemption = Redemption {
        digest,
        kind,
        client_id: client.id(),
        issue: &prepared.rows,
        cap: Some((CredentialKind::RefreshToken, credentials::PER_APP_CAP)),
        grant: None,
    };
    Ok(ctx.store.credentials().redeem(&redemption, ctx.now()).await?.map(|it| it.consumed))
}

async fn revoke_grant(ctx: &Ctx, record: &CredentialRecord, event: &str, ip: &str) -> Outcome<()> {
    if let Some(grant_id) = &record.grant_id {
        ctx.store.grants().revoke(grant_id, ctx.now()).await?;
    }
    audit::record(
        ctx,
        event,
        record.account_id.as_deref(),
        &Actor::System,
        ip,
        json!({ "grant": record.grant_id, "client": record.client_id }),
    )
    .await?;
    Ok(())
}

/// RFC 6749 §4.1.3. The code is read through the one validator (with its grant and account, in
/// one statement) and every binding checked (client, redirect URI, PKCE) before anything changes,
/// so a wrong request leaves the code to its rightful client; then the code is consumed and the
/// tokens written in one transaction, so exactly one of two racing redemptions answers with
/// tokens. A spent code presented again by its client revokes the grant (§4.1.2).
pub async fn authorization_code(
    ctx: &Ctx,
    client: &Client,
    req: &authorization_code::Request,
    ip: &str,
    jkt: Option<&str>,
) -> Outcome<Issued> {
    let digest = tessera_crypto::digest::token_digest(&req.code);
    let Some(valid) =
        credentials::find_valid(ctx, &req.code, &[CredentialKind::AuthorizationCode]).await?
    else {
        return Err(refused_code(ctx, client, &digest, ip).await?);
    };
    let record = valid.record;
    if record.client_id.as_deref() != Some(client.id()) {
        return Err(oauth(ErrorCode::InvalidGrant, "The code was issued to another client."));
    }
    let remembered = Remembered { jkt: jkt.map(str::to_owned), ..Remembered::parse(&record.data) };
    let redirect_ok = match (&req.redirect_uri, remembered.redirect_sent) {
        (Some(uri), _) => remembered.redirect_uri.as_deref() == Some(uri.as_str()),
        (None, sent) => !sent,
    };
    if !redirect_ok {
        return Err(oauth(ErrorCode::InvalidGrant, "redirect_uri_mismatch"));
    }
    match (&remembered.code_challenge, &req.code_verifier) {
        (Some(challenge), Some(verifier)) => {
            let method = match remembered.code_challenge_method.as_deref() {
                Some("S256") => Method::S256,
                _ => Method::Plain,
            };
            if !pkce::verify(method, challenge, verifier) {
                return Err(oauth(ErrorCode::InvalidGrant, "The code_verifier does not match."));
            }
        }
        (Some(_), None) => {
            return Err(oauth(ErrorCode::InvalidGrant, "Missing code_verifier."));
        }
        // RFC 9700 §2.1.1: a verifier for a code issued without a challenge is a downgrade attempt.
        (None, Some(_)) => {
            return Err(oauth(
                ErrorCode::InvalidGrant,
                "No code_challenge was sent for this code.",
            ));
        }
        (None, None) if client.is_public() => {
            return Err(oauth(ErrorCode::InvalidGrant, "This client must use PKCE."));
        }
        (None, None) => {}
    }
    let Some(grant_id) = record.grant_id.as_deref() else {
        return Err(oauth(ErrorCode::InvalidGrant, "Token has been expired or revoked."));
    };
    let Some(account) = valid.account else {
        return Err(oauth(ErrorCode::InvalidGrant, "The account is not available."));
    };
    let scopes = Scopes::parse(&record.scopes).to_vec();
    let prepared =
        prepare(ctx, client, &account, grant_id, &scopes, remembered.offline, &remembered).await?;
    // The validator recorded the grant's use; the redemption checks again, in its own statement,
    // that the grant is live and the code is this client's and unspent.
    if redeem(ctx, &digest, CredentialKind::AuthorizationCode, client, &prepared).await?.is_none() {
        // Lost a race: the other redemption has the tokens, and this one is the replay.
        return match ctx.store.credentials().get(&digest).await? {
            Some(spent) if spent.consumed_at.is_some() => Err(replayed(ctx, &spent, ip).await?),
            _ => Err(oauth(ErrorCode::InvalidGrant, "Token has been expired or revoked.")),
        };
    }
    Ok(prepared.issued)
}

/// Why a code the validator refused does not work, read whatever its state on this refusal path
/// only (a successful exchange reads the code once, through the validator): unknown, another
/// client's, spent (a replay, which revokes the grant), expired or revoked, or live but hanging
/// from a revoked grant or an account that may not be used.
async fn refused_code(ctx: &Ctx, client: &Client, digest: &str, ip: &str) -> Outcome<Failure> {
    let expired = || oauth(ErrorCode::InvalidGrant, "Malformed auth code or the code expired.");
    let Some(record) = ctx
        .store
        .credentials()
        .get(digest)
        .await?
        .filter(|it| it.kind == CredentialKind::AuthorizationCode)
    else {
        return Ok(expired());
    };
    if record.client_id.as_deref() != Some(client.id()) {
        return Ok(oauth(ErrorCode::InvalidGrant, "The code was issued to another client."));
    }
    if record.consumed_at.is_some() {
        return replayed(ctx, &record, ip).await;
    }
    if record.revoked_at.is_some() || record.expires_at.is_some_and(|at| at <= ctx.now()) {
        return Ok(expired());
    }
    let grant = match record.grant_id.as_deref() {
        Some(id) => ctx.store.grants().get(id).await?.filter(|it| it.revoked_at.is_none()),
        None => None,
    };
    if grant.is_none() {
        return Ok(oauth(ErrorCode::InvalidGrant, "Token has been expired or revoked."));
    }
    let account = match record.account_id.as_deref() {
        Some(id) => ctx.store.accounts().get(id).await?,
        None => None,
    };
    if !account.is_some_and(|it| tokens::account_usable(&it)) {
        return Ok(oauth(ErrorCode::InvalidGrant, "The account is not available."));
    }
    Ok(expired())
}

/// A spent code presented again by its client: someone has a copy, so what it issued goes.
async fn replayed(ctx: &Ctx, spent: &CredentialRecord, ip: &str) -> Outcome<Failure> {
    revoke_grant(ctx, spent, "oauth2.code_replay", ip).await?;
    Ok(oauth(ErrorCode::InvalidGrant, "Code was already redeemed."))
}

/// RFC 6749 §6. Public clients get a new refresh token each time and the old one is spent in the
/// same transaction; one presented again means two parties hold it, so the whole grant goes
/// (RFC 9700 §4.14.2). Confidential clients keep theirs.
///
/// A live token is read once, through the one validator (with its grant and account); only a
/// refused one is read again, whatever its state, to tell a rotated token's reuse.
pub async fn refresh(
    ctx: &Ctx,
    client: &Client,
    req: &refresh_token::Request,
    ip: &str,
    jkt: Option<&str>,
) -> Outcome<Issued> {
    let digest = tessera_crypto::digest::token_digest(&req.refresh_token);
    let now = ctx.now();
    let invalid = || oauth(ErrorCode::InvalidGrant, "Token has been expired or revoked.");
    let rotate = client.is_public();
    let Some(valid) =
        credentials::find_valid(ctx, &req.refresh_token, &[CredentialKind::RefreshToken]).await?
    else {
        // Only rotated tokens can be spent, so only they need the row whatever its state: one
        // presented again after rotation is a reuse.
        if rotate
            && let Some(spent) = ctx.store.credentials().get(&digest).await?
            && spent.kind == CredentialKind::RefreshToken
            && spent.client_id.as_deref() == Some(client.id())
            && spent.consumed_at.is_some()
        {
            revoke_grant(ctx, &spent, "oauth2.refresh_reuse", ip).await?;
        }
        return Err(invalid());
    };
    let record = valid.record;
    if record.client_id.as_deref() != Some(client.id()) {
        return Err(invalid());
    }
    // The validator read the grant live (and recorded its use) in the same statement.
    let (Some(account), Some(grant_id)) = (valid.account, record.grant_id.as_deref()) else {
        return Err(invalid());
    };
    let granted = Scopes::parse(&record.scopes);
    let scopes = match &req.scopes {
        None => granted.to_vec(),
        Some(asked) => {
            if let Some(extra) = asked.iter().find(|it| !granted.contains(it)) {
                return Err(oauth(
                    ErrorCode::InvalidScope,
                    &format!(
                        "The scope {} was not granted.",
                        extra.chars().take(100).collect::<String>()
                    ),
                ));
            }
            asked.clone()
        }
    };
    let stored = Remembered::parse(&record.data);
    // A refresh token bound to a DPoP key is used only with a proof of that key.
    if let Some(bound) = stored.jkt.as_deref()
        && !jkt.is_some_and(|jkt| tessera_crypto::digest::ct_eq(jkt.as_bytes(), bound.as_bytes()))
    {
        return Err(oauth(
            ErrorCode::InvalidGrant,
            "This refresh token is bound to a DPoP key; send a proof of that key.",
        ));
    }
    let remembered = Remembered { offline: true, jkt: jkt.map(str::to_owned), ..stored };
    let mut prepared =
        prepare(ctx, client, &account, grant_id, &scopes, false, &remembered).await?;
    if rotate {
        // The new refresh token keeps the whole grant's scopes, whatever this request narrowed.
        let subject = Subject {
            account_id: Some(&account.id),
            client_id: client.id(),
            grant_id: Some(grant_id),
        };
        let (token, row) = tokens::refresh_token_row(
            ctx,
            subject,
            &record.scopes,
            remembered.auth_time,
            remembered.jkt.as_deref(),
        )?;
        prepared.rows.push(row);
        prepared.issued.refresh_token = Some(token);
        // The redemption checks again, in its own statement, that the grant is live.
        if redeem(ctx, &digest, CredentialKind::RefreshToken, client, &prepared).await?.is_none() {
            // A concurrent rotation spent it first: two parties hold this token.
            revoke_grant(ctx, &record, "oauth2.refresh_reuse", ip).await?;
            return Err(invalid());
        }
    } else {
        store(ctx, &prepared.rows).await?;
        // Its last use shows on the account page by the day: written at most every few minutes,
        // not on every refresh.
        if record.last_used_at.is_none_or(|at| now - at >= grants::TOUCH_AFTER_SECS) {
            ctx.store.credentials().touch(&digest, now).await?;
        }
    }
    Ok(prepared.issued)
}

/// A confidential client acting as itself: an access token with no account and no grant.
pub async fn client_credentials(
    ctx: &Ctx,
    client: &Client,
    req: &client_credentials::Request,
    jkt: Option<&str>,
) -> Outcome<Issued> {
    if !matches!(client.kind, ClientKind::Web | ClientKind::ServiceAccount) {
        return Err(oauth(
            ErrorCode::UnauthorizedClient,
            "Only confidential clients may use client_credentials.",
        ));
    }
    if req.scopes.iter().any(|it| matches!(it.as_str(), "openid" | "email" | "profile")) {
        return Err(oauth(ErrorCode::InvalidScope, "Identity scopes need a person."));
    }
    match services::resolve(ctx, &req.scopes).await {
        Ok(_) => {}
        Err(crate::Error::Invalid(text)) => return Err(oauth(ErrorCode::InvalidScope, &text)),
        Err(err) => return Err(err.into()),
    }
    let scope = grants::normalize_scopes(req.scopes.iter().map(String::as_str));
    let subject = Subject { account_id: None, client_id: client.id(), grant_id: None };
    let access = tokens::access_token_bound(ctx, client, subject, &scope, false, jkt).await?;
    Ok(Issued {
        access_token: Some(access),
        token_type: if jkt.is_some() { "DPoP" } else { "Bearer" },
        expires_in: ACCESS_TOKEN_TTL_SECS,
        scope,
        refresh_token: None,
        id_token: None,
    })
}

/// Trades the client's own access token (with `openid`) for an ID token whose audience is another
/// client of the same project (cross-client identity). No consent: the project is one party.
pub async fn token_exchange(
    ctx: &Ctx,
    client: &Client,
    req: &token_exchange::Request,
) -> Outcome<Issued> {
    let Some(info) = tokens::inspect(ctx, &req.subject_token, false).await? else {
        return Err(oauth(ErrorCode::InvalidGrant, "The subject_token is not valid."));
    };
    if info.client_id != client.id() {
        return Err(oauth(ErrorCode::InvalidGrant, "The subject_token belongs to another client."));
    }
    let Some(account) = info.account.as_ref() else {
        return Err(oauth(ErrorCode::InvalidGrant, "The subject_token has no user."));
    };
    if !info.scopes.iter().any(|it| it == "openid") {
        return Err(oauth(ErrorCode::InvalidScope, "The subject_token lacks the openid scope."));
    }
    let audience = match cross_client::audience(ctx, client, &req.audience).await? {
        Ok(audience) => audience,
        Err(Refused::UnknownAudience) => {
            return Err(oauth(
                ErrorCode::InvalidTarget,
                "The audience is not a registered client.",
            ));
        }
        Err(Refused::OtherProject) => {
            return Err(oauth(
                ErrorCode::InvalidTarget,
                "The audience belongs to another project.",
            ));
        }
    };
    let claims = IdTokenClaims {
        account,
        audience: audience.id(),
        authorized_party: client.id(),
        scopes: &info.scopes,
        nonce: None,
        auth_time: None,
        access_token: None,
        code: None,
    };
    let id_token = tokens::id_token(ctx, &claims).await?;
    Ok(Issued {
        access_token: None,
        token_type: "N_A",
        expires_in: super::ID_TOKEN_TTL_SECS,
        scope: grants::normalize_scopes(info.scopes.iter().map(String::as_str)),
        refresh_token: None,
        id_token: Some(id_token),
    })
}

#[cfg(test)]
mod tests {
    use tessera_store::{AccountState, ProjectRecord};

    use super::*;
    use crate::credentials::Protocol;
    use crate::oauth2::clients::{self as oauth_clients};
    use crate::testing::{TestAccount, TestCtx};

    const VERIFIER: &str = "a-plain-code-verifier-of-the-right-length-43";

    struct Fixture {
        t: TestCtx,
        alice: TestAccount,
        project: ProjectRecord,
        client: Client,
        grant: GrantRecord,
    }

    async fn fixture(kind: ClientKind) -> Fixture {
        let t = TestCtx::new().await;
        let alice = t.account("alice@example.test").create().await;
        let project = t.project("Payroll", "alice@example.test").await;
        let client = t.client(&project, kind).create().await.client;
        let scopes = vec!["email".to_owned()];
        let grant =
            grants::grant(&t.ctx, alice.id(), client.id(), Protocol::OAuth2, &scopes, "").await;
        Fixture { t, alice, project, client, grant: grant.unwrap() }
    }

    impl Fixture {
        fn subject(&self) -> Subject<'_> {
            Subject {
                account_id: Some(self.alice.id()),
                client_id: self.client.id(),
                grant_id: Some(&self.grant.id),
            }
        }

        /// A code for `email`, offline, with a plain PKCE challenge.
        async fn code(&self) -> String {
            let remembered = Remembered {
                code_challenge: Some(VERIFIER.to_owned()),
                code_challenge_method: Some("plain".to_owned()),
                offline: true,
                ..Remembered::default()
            };
            tokens::code(&self.t.ctx, self.subject(), "email", &remembered).await.unwrap()
        }

        async fn exchange(&self, code: &str, verifier: &str) -> Outcome<Issued> {
            let req = authorization_code::Request {
                code: code.to_owned(),
                redirect_uri: None,
                code_verifier: Some(verifier.to_owned()),
            };
            authorization_code(&self.t.ctx, &self.client, &req, "", None).await
        }

        async fn refresh(&self, token: &str) -> Outcome<Issued> {
            let req = refresh_token::Request { refresh_token: token.to_owned(), scopes: None };
            refresh(&self.t.ctx, &self.client, &req, "", None).await
        }

        async fn credential(&self, token: &str) -> CredentialRecord {
            let digest = tessera_crypto::digest::token_digest(token);
            self.t.ctx.store.credentials().get(&digest).await.unwrap().unwrap()
        }

        async fn grant_live(&self) -> bool {
            let grant = self.t.ctx.store.grants().get(&self.grant.id).await.unwrap().unwrap();
            grant.revoked_at.is_none()
        }
    }

    fn description(outcome: Outcome<Issued>) -> String {
        match outcome {
            Err(Failure::OAuth(err)) if err.code == ErrorCode::InvalidGrant => err.description,
            other => panic!("expected invalid_grant, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn tokens_are_stored_in_issue_order_and_those_stored_before_still_work() {
        let f = fixture(ClientKind::Web).await;
        let second = |at: i64| format!("{at:08x}");
        let code = f.code().await;
        assert!(f.credential(&code).await.digest.starts_with(&second(f.t.now())), "{code}");
        let issued = f.exchange(&code, VERIFIER).await.unwrap();
        let access = issued.access_token.unwrap();
        let refresh_token = issued.refresh_token.unwrap();
        for token in [&access, &refresh_token] {
            let key = f.credential(token).await.digest;
            assert!(key.starts_with(&second(f.t.now())), "{key}");
            assert!(key.ends_with(&tessera_crypto::digest::sha256_hex(token.as_bytes())));
        }
        f.t.advance(1);
        let later = f.refresh(&refresh_token).await.unwrap().access_token.unwrap();
        assert!(f.credential(&later).await.digest > f.credential(&access).await.digest);

        // A token issued before tokens carried a stamp is stored under its plain digest.
        let legacy = format!("ya29.{}", tessera_crypto::random::token(f.t.ctx.rng.as_ref(), 32));
        let mut record = CredentialRecord::new(
            tessera_crypto::digest::sha256_hex(legacy.as_bytes()),
            CredentialKind::AccessToken,
            f.t.now(),
        );
        record.account_id = Some(f.alice.id().to_owned());
        record.grant_id = Some(f.grant.id.clone());
        record.client_id = Some(f.client.id().to_owned());
        record.scopes = "email".to_owned();
        record.expires_at = Some(f.t.now() + 60);
        f.t.ctx.store.credentials().insert(&record).await.unwrap();
        let info = tokens::inspect(&f.t.ctx, &legacy, false).await.unwrap();
        assert_eq!(info.map(|it| it.client_id), Some(f.client.id().to_owned()));
    }

    #[tokio::test]
    async fn a_confidential_refresh_touches_its_token_at_most_every_few_minutes() {
        let f = fixture(ClientKind::Web).await;
        let issued = f.exchange(&f.code().await, VERIFIER).await.unwrap();
        let token = issued.refresh_token.unwrap();
        assert_eq!(f.credential(&token).await.last_used_at, None);

        f.t.advance(10);
        let first = f.refresh(&token).await.unwrap();
        assert!(first.access_token.is_some());
        assert_eq!(first.refresh_token, None, "a confidential client keeps its refresh token");
        let touched = f.t.now();
        assert_eq!(f.credential(&token).await.last_used_at, Some(touched), "first use is written");

        f.t.advance(grants::TOUCH_AFTER_SECS - 1);
        f.refresh(&token).await.unwrap();
        assert_eq!(
            f.credential(&token).await.last_used_at,
            Some(touched),
            "a recently used token is not written again"
        );

        f.t.advance(1);
        f.refresh(&token).await.unwrap();
        assert_eq!(f.credential(&token).await.last_used_at, Some(f.t.now()));
    }

    #[tokio::test]
    async fn a_refresh_records_the_grants_use_at_most_every_few_minutes() {
        let f = fixture(ClientKind::Web).await;
        let token = f.exchange(&f.code().await, VERIFIER).await.unwrap().refresh_token.unwrap();
        let last_used = || async {
            f.t.ctx.store.grants().get(&f.grant.id).await.unwrap().unwrap().last_used_at
        };
        let created = last_used().await;
        f.t.advance(grants::TOUCH_AFTER_SECS - 1);
        f.refresh(&token).await.unwrap();
        assert_eq!(last_used().await, created);
        f.t.advance(1);
        f.refresh(&token).await.unwrap();
        assert_eq!(last_used().await, Some(f.t.now()));
    }

    #[tokio::test]
    async fn a_revoked_grant_refuses_refresh_and_introspection() {
        let f = fixture(ClientKind::Web).await;
        let issued = f.exchange(&f.code().await, VERIFIER).await.unwrap();
        let (access, token) = (issued.access_token.unwrap(), issued.refresh_token.unwrap());
        assert!(tokens::introspect(&f.t.ctx, &f.client, &access).await.unwrap().is_some());
        let pending = f.code().await;
        f.t.ctx.store.grants().revoke(&f.grant.id, f.t.now()).await.unwrap();
        assert_eq!(description(f.refresh(&token).await), "Token has been expired or revoked.");
        assert!(tokens::introspect(&f.t.ctx, &f.client, &access).await.unwrap().is_none());
        assert!(tokens::introspect(&f.t.ctx, &f.client, &token).await.unwrap().is_none());
        // A code issued before the revocation was revoked with its grant.
        assert!(f.exchange(&pending, VERIFIER).await.is_err());
    }

    #[tokio::test]
    async fn a_disabled_account_refuses_refresh_code_and_introspection() {
        let f = fixture(ClientKind::Web).await;
        let issued = f.exchange(&f.code().await, VERIFIER).await.unwrap();
        let (access, token) = (issued.access_token.unwrap(), issued.refresh_token.unwrap());
        let pending = f.code().await;
        let ctx = &f.t.ctx;
        accounts_set_state(ctx, &f.alice, AccountState::Disabled).await;
        assert_eq!(description(f.refresh(&token).await), "Token has been expired or revoked.");
        assert!(tokens::introspect(ctx, &f.client, &access).await.unwrap().is_none());
        assert_eq!(
            description(f.exchange(&pending, VERIFIER).await),
            "The account is not available."
        );
        // Refused, not spent: the code and the token work again once the account does.
        accounts_set_state(ctx, &f.alice, AccountState::Active).await;
        assert!(f.exchange(&pending, VERIFIER).await.is_ok());
        assert!(f.refresh(&token).await.is_ok());
        assert!(tokens::introspect(ctx, &f.client, &access).await.unwrap().is_some());
    }

    async fn accounts_set_state(ctx: &Ctx, account: &TestAccount, state: AccountState) {
        crate::accounts::set_state(ctx, &account.record, state, &audit::Actor::Cli, "")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_deleted_client_refuses_introspection_and_its_tokens() {
        let f = fixture(ClientKind::Web).await;
        let issued = f.exchange(&f.code().await, VERIFIER).await.unwrap();
        let (access, token) = (issued.access_token.unwrap(), issued.refresh_token.unwrap());
        // Another confidential client of the same project sees the token; one of another project
        // does not.
        let sibling = f.t.client(&f.project, ClientKind::Web).create().await.client;
        assert!(tokens::introspect(&f.t.ctx, &sibling, &access).await.unwrap().is_some());
        let bob = f.t.account("bob@example.test").create().await;
        let elsewhere = f.t.project("Ledger", &bob.record.email).await;
        let stranger = f.t.client(&elsewhere, ClientKind::Web).create().await.client;
        assert!(tokens::introspect(&f.t.ctx, &stranger, &access).await.unwrap().is_none());

        oauth_clients::delete(&f.t.ctx, f.client.id(), &audit::Actor::Cli).await.unwrap();
        assert!(tokens::introspect(&f.t.ctx, &sibling, &access).await.unwrap().is_none());
        assert!(tokens::introspect(&f.t.ctx, &sibling, &token).await.unwrap().is_none());
        assert!(f.refresh(&token).await.is_err());
    }

    #[tokio::test]
    async fn a_wrong_verifier_leaves_the_code_and_a_replay_revokes_the_grant() {
        let f = fixture(ClientKind::Web).await;
        let code = f.code().await;
        assert_eq!(
            description(f.exchange(&code, "not-the-verifier-but-long-enough-for-pkce-43").await),
            "The code_verifier does not match."
        );
        let issued = f.exchange(&code, VERIFIER).await.unwrap();
        let access = issued.access_token.unwrap();
        assert!(f.grant_live().await);
        assert_eq!(description(f.exchange(&code, VERIFIER).await), "Code was already redeemed.");
        assert!(!f.grant_live().await, "a replayed code revokes the grant");
        assert!(tokens::inspect(&f.t.ctx, &access, false).await.unwrap().is_none());
        let unknown = f.exchange("4/no-such-code", VERIFIER).await;
        assert_eq!(description(unknown), "Malformed auth code or the code expired.");
    }

    #[tokio::test]
    async fn a_rotated_refresh_token_presented_again_revokes_the_grant() {
        let f = fixture(ClientKind::Installed).await;
        let first = f.exchange(&f.code().await, VERIFIER).await.unwrap().refresh_token.unwrap();
        let second = f.refresh(&first).await.unwrap().refresh_token.unwrap();
        assert_ne!(first, second, "a public client's refresh token rotates");
        assert!(f.credential(&first).await.consumed_at.is_some());
        let third = f.refresh(&second).await.unwrap().refresh_token.unwrap();
        assert!(f.grant_live().await);
        assert!(f.refresh(&first).await.is_err());
        assert!(!f.grant_live().await, "reuse of a rotated token revokes the grant");
        assert!(f.refresh(&third).await.is_err(), "and every token of it");
    }

    #[tokio::test]
    async fn a_burst_of_one_rotating_refresh_token_has_one_winner() {
        let f = fixture(ClientKind::Installed).await;
        let token = f.exchange(&f.code().await, VERIFIER).await.unwrap().refresh_token.unwrap();
        let (a, b, c, d) = tokio::join!(
            f.refresh(&token),
            f.refresh(&token),
            f.refresh(&token),
            f.refresh(&token)
        );
        let won = [a, b, c, d].iter().filter(|it| it.is_ok()).count();
        assert_eq!(won, 1, "one rotating token refreshes exactly once");
        assert!(!f.grant_live().await, "the losers' reuse revokes the grant");
    }
}
