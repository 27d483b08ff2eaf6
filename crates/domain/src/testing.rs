//! An in-process [`Ctx`] for fast tests of the rules, without HTTP: a temporary SQLite store with
//! the migrations applied, a [`FixedClock`] the test moves, a deterministic RNG, a fixed
//! key-encryption key and cheap Argon2id, plus builders for accounts, projects and clients.
//!
//! The domain's own tests have it; another crate's tests turn on the `testing` feature of
//! `tessera-domain` in their `[dev-dependencies]`.
//!
//! ```text
//! let t = TestCtx::new().await;
//! let alice = t.account("alice@example.test").two_step().create().await;
//! t.advance(30);
//! assert!(totp::verify(&t.ctx, &alice.record, &alice.totp_code(t.now())).await?);
//! ```

use std::sync::Arc;

use tessera_crypto::kek::Kek;
use tessera_crypto::password::PasswordParams;
use tessera_crypto::random::FixedRng;
use tessera_crypto::totp::TotpSecret;
use tessera_store::{AccountRecord, AccountState, ProjectRecord};
use tessera_store_sql::{ConnectOptions, SqlStore};

use crate::accounts::{self, NewAccount};
use crate::audit::Actor;
use crate::oauth2::clients::{self, ClientKind, NewClient};
use crate::{Ctx, FixedClock, Policy, projects, totp};

/// 2026-11-21 00:00:00 UTC, where every test clock starts.
pub const T0: i64 = 1_795_219_200;

/// The password the account builder gives unless told otherwise.
pub const PASSWORD: &str = "correct horse battery";

/// The key-encryption key of every test context.
pub const KEK: [u8; 32] = [0x42; 32];

/// The issuer and public URL of every test context.
pub const PUBLIC_URL: &str = "https://accounts.example.test";

/// Argon2id costs small enough for hundreds of hashes per test run.
pub const CHEAP_PASSWORD_PARAMS: PasswordParams =
    PasswordParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 };

/// A domain context on its own temporary database. Dropping it deletes the database.
pub struct TestCtx {
    pub ctx: Ctx,
    /// The clock `ctx` reads; move it with [`TestCtx::advance`].
    pub clock: Arc<FixedClock>,
    pub store: SqlStore,
    // Declared last: the pools close before the directory goes.
    _dir: tempfile::TempDir,
}

impl TestCtx {
    /// A context with the default policy (and cheap password hashing).
    ///
    /// # Panics
    ///
    /// When the temporary database cannot be made; a test cannot go on without it.
    pub async fn new() -> TestCtx {
        TestCtx::with_policy(|_| ()).await
    }

    /// A context whose policy `edit` adjusts after the defaults are set.
    ///
    /// # Panics
    ///
    /// When the temporary database cannot be made; a test cannot go on without it.
    #[allow(clippy::unwrap_used)]
    pub async fn with_policy(edit: impl FnOnce(&mut Policy)) -> TestCtx {
        let dir = tempfile::tempdir().unwrap();
        let url = SqlStore::sqlite_path_url(&dir.path().join("test.db"));
        let store = SqlStore::connect(
            &url,
            &ConnectOptions { max_connections: 2, ..ConnectOptions::default() },
        )
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let clock = Arc::new(FixedClock::new(T0));
        let mut policy = Policy { password: CHEAP_PASSWORD_PARAMS, ..Policy::default() };
        edit(&mut policy);
        let ctx = Ctx::new(
            Arc::new(store.clone()),
            clock.clone(),
            Arc::new(FixedRng::new(b"tessera test rng")),
            Kek::from_bytes(KEK),
            policy,
            PUBLIC_URL,
        )
        .unwrap();
        TestCtx { ctx, clock, store, _dir: dir }
    }

    /// The clock's time.
    pub fn now(&self) -> i64 {
        self.ctx.now()
    }

    /// Moves the clock `secs` seconds on (or back, when negative).
    pub fn advance(&self, secs: i64) {
        self.clock.advance(secs);
    }

    /// An account to build; [`AccountBuilder::create`] stores it.
    pub fn account(&self, email: &str) -> AccountBuilder<'_> {
        AccountBuilder {
            t: self,
            new: NewAccount {
                email: email.to_owned(),
                name: String::new(),
                domain: None,
                password: Some(PASSWORD.to_owned()),
                is_admin: false,
                state: AccountState::Active,
            },
            two_step: false,
        }
    }

    /// A project owned by the account with `owner_email`, which must exist.
    ///
    /// # Panics
    ///
    /// When the domain refuses the project (a bad name, an unknown owner).
    #[allow(clippy::unwrap_used)]
    pub async fn project(&self, name: &str, owner_email: &str) -> ProjectRecord {
        projects::create(&self.ctx, name, owner_email, &Actor::Cli).await.unwrap()
    }

    /// A client of `kind` to register in `project`; [`ClientBuilder::create`] stores it.
    pub fn client<'a>(&'a self, project: &'a ProjectRecord, kind: ClientKind) -> ClientBuilder<'a> {
        let redirect_uris = match kind {
            ClientKind::Web => vec!["https://app.example.test/callback".to_owned()],
            _ => Vec::new(),
        };
        ClientBuilder {
            t: self,
            project,
            new: NewClient {
                kind,
                name: format!("Test {} client", kind.as_str()),
                redirect_uris,
                android_package: (kind == ClientKind::Android)
                    .then(|| "com.example.test".to_owned()),
                android_cert_sha1: (kind == ClientKind::Android).then(|| "AB".repeat(20)),
                allow_implicit: false,
                jwt_access_tokens: false,
            },
        }
    }
}

/// An account being described; nothing is stored until [`AccountBuilder::create`].
#[must_use]
pub struct AccountBuilder<'a> {
    t: &'a TestCtx,
    new: NewAccount,
    two_step: bool,
}

impl AccountBuilder<'_> {
    pub fn name(mut self, name: &str) -> Self {
        self.new.name = name.to_owned();
        self
    }

    pub fn password(mut self, password: &str) -> Self {
        self.new.password = Some(password.to_owned());
        self
    }

    /// An account that cannot sign in with a password (yet).
    pub fn without_password(mut self) -> Self {
        self.new.password = None;
        self
    }

    /// An account of a hosted domain; the domain is registered first if it is not.
    pub fn domain(mut self, domain: &str) -> Self {
        self.new.domain = Some(domain.to_owned());
        self
    }

    pub fn admin(mut self) -> Self {
        self.new.is_admin = true;
        self
    }

    pub fn state(mut self, state: AccountState) -> Self {
        self.new.state = state;
        self
    }

    /// Enrols a TOTP authenticator (proved with a code, as a person would) after creation.
    pub fn two_step(mut self) -> Self {
        self.two_step = true;
        self
    }

    /// Stores the account (through the domain, audit log included).
    ///
    /// # Panics
    ///
    /// When the domain refuses the account; the builder's callers describe valid ones.
    #[allow(clippy::unwrap_used)]
    pub async fn create(self) -> TestAccount {
        let ctx = &self.t.ctx;
        if let Some(domain) = &self.new.domain
            && ctx.store.domains().get(domain).await.unwrap().is_none()
        {
            accounts::add_domain(ctx, domain, &Actor::Cli).await.unwrap();
        }
        let password = self.new.password.clone();
        let mut record = accounts::create(ctx, self.new, &Actor::Cli, "").await.unwrap();
        let mut totp_secret = None;
        if self.two_step {
            let enrollment = totp::start(ctx, &record, "tessera").unwrap();
            let secret = TotpSecret::from_base32(&enrollment.secret_base32).unwrap();
            let code = secret.code_at_time(ctx.now());
            totp::confirm(ctx, &record, &enrollment.sealed, &code, "").await.unwrap();
            record = accounts::get(ctx, &record.id).await.unwrap();
            totp_secret = Some(secret);
        }
        TestAccount { record, password, totp: totp_secret }
    }
}

/// A stored account and the secrets a test needs to act as it.
#[derive(Debug)]
pub struct TestAccount {
    pub record: AccountRecord,
    pub password: Option<String>,
    pub totp: Option<TotpSecret>,
}

impl TestAccount {
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The authenticator's code at unix time `now`.
    ///
    /// # Panics
    ///
    /// When the account was built without [`AccountBuilder::two_step`].
    pub fn totp_code(&self, now: i64) -> String {
        self.totp.as_ref().expect("built with two_step()").code_at_time(now)
    }
}

/// A client being described; nothing is stored until [`ClientBuilder::create`].
#[must_use]
pub struct ClientBuilder<'a> {
    t: &'a TestCtx,
    project: &'a ProjectRecord,
    new: NewClient,
}

impl ClientBuilder<'_> {
    pub fn name(mut self, name: &str) -> Self {
        self.new.name = name.to_owned();
        self
    }

    pub fn redirect_uris(mut self, uris: &[&str]) -> Self {
        self.new.redirect_uris = uris.iter().map(|it| (*it).to_owned()).collect();
        self
    }

    pub fn allow_implicit(mut self) -> Self {
        self.new.allow_implicit = true;
        self
    }

    pub fn jwt_access_tokens(mut self) -> Self {
        self.new.jwt_access_tokens = true;
        self
    }

    /// Registers the client; a confidential one comes with its secret.
    ///
    /// # Panics
    ///
    /// When the domain refuses the client; the builder's callers describe valid ones.
    #[allow(clippy::unwrap_used)]
    pub async fn create(self) -> clients::Created {
        clients::create(&self.t.ctx, self.project, self.new, &Actor::Cli).await.unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builders_make_what_they_say() {
        let t = TestCtx::new().await;
        assert_eq!(t.now(), T0);
        let alice = t.account("alice@example.test").name("Alice").create().await;
        assert!(alice.record.password_hash.is_some());
        assert_eq!(alice.password.as_deref(), Some(PASSWORD));
        let bob =
            t.account("bob@corp.example").domain("corp.example").without_password().create().await;
        assert_eq!(bob.record.domain.as_deref(), Some("corp.example"));
        assert!(bob.record.password_hash.is_none());
        let carol = t.account("carol@example.test").two_step().create().await;
        assert!(carol.record.totp_secret_enc.is_some());
        let project = t.project("Payroll", "alice@example.test").await;
        assert_eq!(project.owner_account_id, alice.record.id);
        let web = t.client(&project, ClientKind::Web).create().await;
        assert!(web.secret.is_some());
        let installed = t.client(&project, ClientKind::Installed).create().await;
        assert!(installed.secret.is_none());
        let loaded = clients::load(&t.ctx, web.client.id()).await.unwrap().unwrap();
        assert_eq!(loaded.settings.redirect_uris, ["https://app.example.test/callback"]);
        t.advance(90);
        assert_eq!(t.now(), T0 + 90);
    }

    #[tokio::test]
    async fn two_contexts_share_nothing() {
        let a = TestCtx::new().await;
        let b = TestCtx::new().await;
        a.account("alice@example.test").without_password().create().await;
        assert!(accounts::find_by_email(&b.ctx, "alice@example.test").await.is_err());
        a.advance(10);
        assert_eq!(b.now(), T0);
    }
}
