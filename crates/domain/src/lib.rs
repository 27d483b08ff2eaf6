//! The rules of tessera: accounts, sign-in, sessions, 2-step verification, app passwords, CAPTCHA,
//! CSRF, redirects, signing keys and the audit log.
//!
//! Nothing here knows HTTP or SQL. Every operation takes its time from the injected `Clock` and its
//! randomness from the injected `Rng`, and reaches the database only through `tessera_store` traits.

pub mod accounts;
pub mod answers;
pub mod app_passwords;
pub mod audit;
pub mod authsub;
pub mod caller;
pub mod captcha;
pub mod claims;
pub mod clientlogin;
pub mod clock;
pub mod credentials;
pub mod csrf;
pub mod device;
pub mod grants;
pub mod interaction;
pub mod keys;
pub mod legacy;
pub mod oauth1;
pub mod oauth2;
pub mod openid2;
pub mod password;
pub mod projects;
pub mod proxy;
pub mod push;
pub mod redirect;
pub mod services;
pub mod sessions;
pub mod setup;
pub mod signin;
pub mod sso;
pub mod sweep;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod totp;

use std::sync::Arc;

pub use clock::{Clock, FixedClock};
use tessera_crypto::digest::Pepper;
use tessera_crypto::kek::Kek;
use tessera_crypto::password::{PasswordHasher, PasswordParams};
use tessera_crypto::random::Rng;
pub use tessera_store as store;
use tessera_store::{Store, StoreError};

/// Limits and lifetimes that a deployment may tune.
#[derive(Debug, Clone)]
pub struct Policy {
    pub password: PasswordParams,
    /// Argon2id runs at most this many at once; the rest wait.
    pub password_concurrency: usize,
    pub min_password_len: usize,
    /// Failures per account (by email) in one window before a CAPTCHA is required.
    pub captcha_after_account_failures: u32,
    /// Failures per client IP in one window before a CAPTCHA is required.
    pub captcha_after_ip_failures: u32,
    pub failure_window_secs: i64,
    pub session_ttl_secs: i64,
    pub persistent_session_ttl_secs: i64,
    /// How long a password-checked sign-in waits for its 2-step code.
    pub pending_sign_in_ttl_secs: i64,
    pub captcha_ttl_secs: i64,
    pub csrf_ttl_secs: i64,
    pub setup_ttl_secs: i64,
    /// How many accounts one browser may have signed in at once.
    pub max_accounts_per_browser: usize,
    /// Failures from one network (IPv4 /24, IPv6 /64) in one window before a CAPTCHA is required.
    pub captcha_after_network_failures: u32,
    /// Failures against one account in one window after which its password may be tried at most
    /// once per [`Policy::guess_interval_secs`], whatever CAPTCHAs are solved or addresses used.
    pub guess_budget_after_failures: u32,
    pub guess_interval_secs: i64,
    /// How recently the password must have been entered for sensitive account changes.
    pub reauth_window_secs: i64,
    /// Protocols switched off by configuration; their credentials stop working everywhere.
    pub disabled_protocols: Vec<credentials::Protocol>,
    /// Device login accepts a plain `Passwd` over http too (`[device] plain_passwd`); otherwise
    /// only over https, and `EncryptedPasswd` always.
    pub device_plain_passwd: bool,
    /// Every client's authorization requests must be pushed first (RFC 9126 §5).
    pub require_par: bool,
    /// The token endpoint asks DPoP proofs for a server nonce (RFC 9449 §8).
    pub dpop_nonce: bool,
    /// Push messaging quotas and storage limits.
    pub push: push::PushPolicy,
    /// The front-end token proxy's outgoing limits (`[proxy]`).
    pub proxy: proxy::ProxyPolicy,
    /// The legacy protocols' deprecation dates and migration page (`[legacy]`).
    pub deprecation: legacy::Deprecations,
    /// Token checks kept in memory for at most the current second (`[store] token_answers`; 0
    /// keeps none): see [`answers`].
    pub token_answers: usize,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            password: PasswordParams::default(),
            password_concurrency: 4,
            min_password_len: 8,
            captcha_after_account_failures: 5,
            captcha_after_ip_failures: 20,
            failure_window_secs: 15 * 60,
            session_ttl_secs: 24 * 3600,
            persistent_session_ttl_secs: 30 * 24 * 3600,
            pending_sign_in_ttl_secs: 10 * 60,
            captcha_ttl_secs: 10 * 60,
            csrf_ttl_secs: 2 * 3600,
            setup_ttl_secs: 24 * 3600,
            max_accounts_per_browser: 10,
            captcha_after_network_failures: 60,
            guess_budget_after_failures: 20,
            guess_interval_secs: 60,
            reauth_window_secs: 5 * 60,
            disabled_protocols: Vec::new(),
            device_plain_passwd: false,
            require_par: false,
            dpop_nonce: false,
            push: push::PushPolicy::default(),
            proxy: proxy::ProxyPolicy::default(),
            deprecation: legacy::Deprecations::default(),
            token_answers: 10_000,
        }
    }
}

/// Everything the domain needs, shared by all requests.
#[derive(Clone)]
pub struct Ctx {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub rng: Arc<dyn Rng>,
    pub kek: Arc<Kek>,
    pub pepper: Arc<Pepper>,
    pub csrf_key: Arc<[u8; 32]>,
    pub hasher: Arc<PasswordHasher>,
    /// Bounds the number of Argon2id computations in flight (each holds ~19 MiB).
    pub hash_permits: Arc<tokio::sync::Semaphore>,
    pub policy: Arc<Policy>,
    /// The public URL without a trailing slash; also the issuer.
    pub public_url: Arc<str>,
    /// This process's copy of the signing key ring.
    pub key_ring: Arc<keys::RingCache>,
    /// This node's push connections and how nodes wake each other.
    pub push: Arc<push::delivery::Hub>,
    /// Legacy requests counted on this node, not yet added to the store.
    pub legacy_tally: Arc<legacy::Tally>,
    /// Token checks this process keeps for a moment.
    pub answers: Arc<answers::Answers>,
}

impl Ctx {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Rng>,
        kek: Kek,
        policy: Policy,
        public_url: &str,
    ) -> Result<Ctx, tessera_crypto::CryptoError> {
        let pepper = kek.pepper();
        let csrf_key = kek.derive(tessera_crypto::kek::CSRF_LABEL);
        let hasher = PasswordHasher::new(policy.password)?;
        let delivery = policy.push.delivery;
        let answers = answers::Answers::new(policy.token_answers);
        Ok(Ctx {
            store,
            clock,
            rng,
            kek: Arc::new(kek),
            pepper: Arc::new(pepper),
            csrf_key: Arc::new(csrf_key),
            hasher: Arc::new(hasher),
            hash_permits: Arc::new(tokio::sync::Semaphore::new(policy.password_concurrency.max(1))),
            policy: Arc::new(policy),
            public_url: public_url.trim_end_matches('/').into(),
            key_ring: Arc::default(),
            push: Arc::new(push::delivery::Hub::with_policy(delivery)),
            legacy_tally: Arc::new(legacy::Tally::default()),
            answers: Arc::new(answers),
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// A new high-entropy token (256 bits) and the digest the store keeps.
    pub fn new_token(&self) -> (String, String) {
        let token = tessera_crypto::random::token(self.rng.as_ref(), 32);
        let digest = tessera_crypto::digest::token_digest(&token);
        (token, digest)
    }

    pub fn new_id(&self) -> String {
        let mut bytes = [0u8; 16];
        self.rng.fill(&mut bytes);
        // A UUIDv7 from our clock and rng: sortable by creation time.
        let millis = (self.now().max(0) as u64).saturating_mul(1000);
        bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
        bytes[6] = (bytes[6] & 0x0f) | 0x70;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        uuid::Uuid::from_bytes(bytes).to_string()
    }

    /// Runs Argon2id work off the async threads, at most `password_concurrency` at once.
    pub async fn hash_work<T: Send + 'static>(
        &self,
        work: impl FnOnce(&PasswordHasher) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let permit = self
            .hash_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("hash permits closed".into()))?;
        let hasher = self.hasher.clone();
        let res = tokio::task::spawn_blocking(move || {
            let res = work(&hasher);
            drop(permit);
            res
        })
        .await
        .map_err(|err| Error::Internal(format!("hash task: {err}")))?;
        Ok(res)
    }
}

/// Domain errors. The display text is safe to show a person; `Internal` details are for logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("not allowed")]
    Forbidden,
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Error {
        match err {
            StoreError::NotFound => Error::NotFound,
            StoreError::Conflict(what) => Error::Conflict(format!("{what} already exists")),
            StoreError::Backend(text) => {
                metrics_store_error();
                Error::Internal(text)
            }
        }
    }
}

fn metrics_store_error() {
    metrics::counter!("tessera_store_errors_total").increment(1);
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
