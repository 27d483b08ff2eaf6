//! Storage traits by aggregate, the records they hold, and the shared conformance suite.
//!
//! The store sees digests of server-generated secrets, never the secrets themselves. Every single-use
//! credential is consumed by one conditional statement so that it redeems exactly once, whichever node
//! asks. Times are unix seconds (`i64`) handed in by the caller: the store never reads the clock.

mod records;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use records::*;

use async_trait::async_trait;

/// Unix time in seconds.
pub type Timestamp = i64;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; the text names the rule, never the value.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("not found")]
    NotFound,
    /// The database failed; the text is for logs only.
    #[error("store backend: {0}")]
    Backend(String),
}

/// A kind of answer a caller may keep while the store says nothing it is read from changed
/// ([`Store::changes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// [`CredentialStore::find_live_token`]: a credential with its grant, client and account.
    Token,
    /// [`ProjectStore::get_client`]: a registered client.
    Client,
    /// [`SessionStore::find_signed_in`]: a session cookie's session with its account.
    Session,
    /// [`ProjectStore::get`]: a project (its name, owner and whether it is verified).
    Project,
    /// [`GrantStore::list_by_account`]: an account's grants.
    Grants,
}

/// The whole store, one accessor per aggregate.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
    /// Checks that the database answers (readiness).
    async fn ping(&self) -> Result<()>;
    fn accounts(&self) -> &dyn AccountStore;
    fn domains(&self) -> &dyn DomainStore;
    fn projects(&self) -> &dyn ProjectStore;
    fn grants(&self) -> &dyn GrantStore;
    fn credentials(&self) -> &dyn CredentialStore;
    fn sessions(&self) -> &dyn SessionStore;
    fn keys(&self) -> &dyn KeyStore;
    fn audit(&self) -> &dyn AuditStore;
    fn counters(&self) -> &dyn CounterStore;
    fn services(&self) -> &dyn ServiceStore;
    fn push(&self) -> &dyn PushStore;
    fn legacy(&self) -> &dyn LegacyStore;
    /// Writes one small row, so that readiness fails when the database answers but cannot write
    /// (a full disk, a read-only file or replica).
    async fn heartbeat(&self, now: Timestamp) -> Result<()>;
    /// A count that grows after every committed write through this store that may have changed
    /// an answer of the kind `of` (for [`Answer::Token`]: a revocation, a consumption, a disabled
    /// account, a deleted client…; inserting a credential does not count). An answer read while
    /// the count was `n` still holds, as far as this store's own writes go, while the count is
    /// `n`: callers may keep it that long. Each kind counts only the writes to what its
    /// answers are read from, so that, say, a spent authorization code ends no kept client or
    /// signed-in session. Writes through another process or node are not counted. `None` (the
    /// default) when the store cannot tell: keep nothing.
    fn changes(&self, _of: Answer) -> Option<u64> {
        None
    }
    /// The key-encryption-key check value: a constant sealed with the key-encryption key by the
    /// first start, which every later start opens to prove it holds the same key.
    async fn kek_check(&self) -> Result<Option<String>>;
    /// Stores `sealed` as the check value unless one is stored already, and returns the stored
    /// value (another node's when it got there first).
    async fn init_kek_check(&self, sealed: &str, now: Timestamp) -> Result<String>;
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Fails with `Conflict("email")` when the email is taken, case-insensitively.
    async fn create(&self, account: &AccountRecord) -> Result<()>;
    async fn get(&self, id: &str) -> Result<Option<AccountRecord>>;
    /// `email` is compared case-insensitively.
    async fn find_by_email(&self, email: &str) -> Result<Option<AccountRecord>>;
    async fn list(&self, offset: u32, limit: u32) -> Result<Vec<AccountRecord>>;
    async fn count_admins(&self) -> Result<u64>;
    async fn set_state(&self, id: &str, state: AccountState, now: Timestamp) -> Result<()>;
    async fn set_admin(&self, id: &str, admin: bool, now: Timestamp) -> Result<()>;
    async fn set_name(&self, id: &str, name: &str, now: Timestamp) -> Result<()>;
    async fn set_password_hash(&self, id: &str, hash: Option<&str>, now: Timestamp) -> Result<()>;
    /// Replaces the hash only if it is still `old`: a transparent re-hash never overwrites a password
    /// that was changed meanwhile.
    async fn replace_password_hash(
        &self,
        id: &str,
        old: &str,
        new: &str,
        now: Timestamp,
    ) -> Result<bool>;
    /// Sets or clears the (encrypted) TOTP secret and resets the last accepted step.
    async fn set_totp(&self, id: &str, secret_enc: Option<&str>, now: Timestamp) -> Result<()>;
    /// Records `step` as used if it is newer than the last accepted one; false means replay.
    async fn advance_totp_step(&self, id: &str, step: i64) -> Result<bool>;
}

#[async_trait]
pub trait DomainStore: Send + Sync {
    async fn add(&self, domain: &DomainRecord) -> Result<()>;
    async fn get(&self, name: &str) -> Result<Option<DomainRecord>>;
    async fn list(&self) -> Result<Vec<DomainRecord>>;
}

#[async_trait]
pub trait ProjectStore: Send + Sync {
    async fn add(&self, project: &ProjectRecord) -> Result<()>;
    async fn get(&self, id: &str) -> Result<Option<ProjectRecord>>;
    async fn find_by_name(&self, name: &str) -> Result<Option<ProjectRecord>>;
    async fn list(&self) -> Result<Vec<ProjectRecord>>;
    async fn add_client(&self, client: &ClientRecord) -> Result<()>;
    async fn get_client(&self, client_id: &str) -> Result<Option<ClientRecord>>;
    async fn list_clients(&self, project_id: &str) -> Result<Vec<ClientRecord>>;
    /// Replaces the client's name, secret digest and settings; false when no such client exists.
    async fn update_client(&self, client: &ClientRecord) -> Result<bool>;
    /// Removes the client; false when no such client exists. Grants to it stay for the audit trail
    /// and are revoked by the caller.
    async fn delete_client(&self, client_id: &str) -> Result<bool>;
    /// Sets the administrator-only "verified" flag; false when no such project exists.
    async fn set_verified(&self, project_id: &str, verified: bool) -> Result<bool>;
    /// Creates or replaces the project's consent-screen branding.
    async fn set_branding(&self, branding: &ProjectBranding) -> Result<()>;
    async fn get_branding(&self, project_id: &str) -> Result<Option<ProjectBranding>>;
}

#[async_trait]
pub trait ServiceStore: Send + Sync {
    /// Fails with `Conflict("service")` when the name is taken.
    async fn add(&self, service: &ServiceRecord) -> Result<()>;
    async fn get(&self, name: &str) -> Result<Option<ServiceRecord>>;
    /// Sorted by name.
    async fn list(&self) -> Result<Vec<ServiceRecord>>;
    /// Replaces the set of legacy protocols the service accepts.
    async fn set_protocols(&self, name: &str, protocols: &str) -> Result<()>;
    /// Sets the web sign-on settings (`web_prefixes`, `logout_url`, `backchannel_logout_url`);
    /// `NotFound` for an unknown service.
    async fn set_web(
        &self,
        name: &str,
        web_prefixes: &str,
        logout_url: &str,
        backchannel_logout_url: &str,
    ) -> Result<()>;
}

#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Creates the grant, or widens the live grant of the same account, client and protocol to the
    /// union of scopes. Returns the grant as stored.
    async fn upsert(&self, grant: &GrantRecord) -> Result<GrantRecord>;
    async fn get(&self, id: &str) -> Result<Option<GrantRecord>>;
    async fn list_by_account(&self, account_id: &str) -> Result<Vec<GrantRecord>>;
    /// The live grants to one client, oldest first (revoked when the client is deleted).
    async fn list_live_by_client(&self, client_id: &str) -> Result<Vec<GrantRecord>>;
    async fn touch(&self, id: &str, now: Timestamp) -> Result<()>;
    /// Marks the grant revoked and revokes every credential derived from it, in one transaction.
    async fn revoke(&self, id: &str, now: Timestamp) -> Result<bool>;
    /// Creates the live domain-wide authorization of `grant.domain` for `grant.client_id`, or
    /// replaces the scopes, author and time of the live one. Returns it as stored.
    async fn upsert_domain(&self, grant: &DomainGrantRecord) -> Result<DomainGrantRecord>;
    /// The live domain-wide authorization of `domain` for `client_id`.
    async fn find_live_domain(
        &self,
        domain: &str,
        client_id: &str,
    ) -> Result<Option<DomainGrantRecord>>;
    /// A domain's authorizations, revoked ones too, oldest first; every domain's for `None`.
    async fn list_domain(&self, domain: Option<&str>) -> Result<Vec<DomainGrantRecord>>;
    /// Revokes the live domain-wide authorization of `domain` for `client_id`.
    async fn revoke_domain(&self, domain: &str, client_id: &str, now: Timestamp) -> Result<bool>;
}

#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Fails with `Conflict("credential")` when the digest exists.
    async fn insert(&self, credential: &CredentialRecord) -> Result<()>;
    /// Inserts many in one transaction (bulk loads: imports, benchmark fixtures); all or none.
    async fn insert_many(&self, credentials: &[CredentialRecord]) -> Result<()>;
    /// Inserts unless the digest exists; true when this call inserted it (nonces, replay caches).
    async fn insert_once(&self, credential: &CredentialRecord) -> Result<bool>;
    /// The credential if it is live: not revoked, not consumed, not expired at `now`.
    async fn find_live(&self, digest: &str, now: Timestamp) -> Result<Option<CredentialRecord>>;
    /// The live credential together with what deciding whether it still works needs (its grant,
    /// its client, its account), read in one statement: token validation's hot path.
    async fn find_live_token(&self, digest: &str, now: Timestamp)
    -> Result<Option<LiveCredential>>;
    /// [`CredentialStore::find_live_token`] for many digests at once (a multicast's recipients):
    /// the live ones, in any order, read in one statement per batch of at most 1000.
    async fn find_live_tokens(
        &self,
        digests: &[String],
        now: Timestamp,
    ) -> Result<Vec<LiveCredential>> {
        let mut found = Vec::new();
        for digest in digests {
            found.extend(self.find_live_token(digest, now).await?);
        }
        Ok(found)
    }
    /// The credential whatever its state (consumed, revoked, expired): replay detection asks
    /// which grant a spent code or refresh token belonged to.
    async fn get(&self, digest: &str) -> Result<Option<CredentialRecord>>;
    /// Atomically marks a live single-use credential of `kind` consumed and returns it; `None` when
    /// it does not exist, is of another kind, expired, was revoked or was already consumed.
    async fn consume(
        &self,
        digest: &str,
        kind: CredentialKind,
        now: Timestamp,
    ) -> Result<Option<CredentialRecord>>;
    async fn touch(&self, digest: &str, now: Timestamp) -> Result<()>;
    async fn revoke(&self, digest: &str, now: Timestamp) -> Result<bool>;
    async fn revoke_by_grant(&self, grant_id: &str, now: Timestamp) -> Result<u64>;
    async fn revoke_by_session(&self, session_id: &str, now: Timestamp) -> Result<u64>;
    /// Live credentials of `kind` that belong to the account, oldest first.
    async fn list_live_by_account(
        &self,
        account_id: &str,
        kind: CredentialKind,
        now: Timestamp,
    ) -> Result<Vec<CredentialRecord>>;
    /// Deletes at most `batch` rows that expired, or were revoked or consumed, before `cutoff`.
    async fn sweep(&self, cutoff: Timestamp, batch: u32) -> Result<u64>;
    async fn count(&self) -> Result<u64>;
    /// Inserts `credential`, then revokes the live credentials of its kind, account and client
    /// beyond the newest `cap` in insertion order (never by time, which ties). The cap holds under
    /// concurrency: once every concurrent capped insert for the same account, client and kind has
    /// returned, at most `cap` of them are live. A backend may enforce the cap in the inserting
    /// transaction or in one of its own right after the insert commits (so that inserts for one
    /// account and client need not wait on each other's commits); after a crash between the two,
    /// the next capped insert enforces it. Returns how many were revoked. A credential without an
    /// account or client is inserted uncapped.
    async fn insert_capped(&self, credential: &CredentialRecord, cap: u32) -> Result<u64>;
    /// Consumes the live single-use credential `digest` of `kind` if it was issued to `client_id`
    /// and its grant (if it names one) is live, and writes `issue` and the redemption's own grant
    /// in the same transaction: either all happen or none. `issue` is capped as asked, as
    /// [`CredentialStore::insert_capped`] caps. `None` when nothing was consumed.
    async fn redeem(&self, redemption: &Redemption<'_>, now: Timestamp)
    -> Result<Option<Redeemed>>;
    /// Revokes the account's live credentials of these kinds (a password change ends what the
    /// password made).
    async fn revoke_by_account(
        &self,
        account_id: &str,
        kinds: &[CredentialKind],
        now: Timestamp,
    ) -> Result<u64>;
    /// Moves a live credential of `kind` whose `data` is exactly `from` to the state `to`, in one
    /// conditional `UPDATE … WHERE data = from`: of several concurrent moves out of one state,
    /// exactly one wins. Returns the credential as it is now, or `None` when it does not exist, is
    /// of another kind, is not live at `now`, or is no longer in the state `from`.
    async fn transition(
        &self,
        digest: &str,
        kind: CredentialKind,
        from: &str,
        to: &CredentialTransition,
        now: Timestamp,
    ) -> Result<Option<CredentialRecord>>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates the session and its cookie credential together.
    async fn create(&self, session: &SessionRecord, cookie: &CredentialRecord) -> Result<()>;
    /// Creates many sessions with their cookies in one transaction; all or none.
    async fn create_many(&self, sessions: &[(SessionRecord, CredentialRecord)]) -> Result<()>;
    /// The live session whose live cookie credential has this digest, with the session's
    /// account, in one statement: every signed-in page asks this.
    async fn find_signed_in(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<(SessionRecord, AccountRecord)>>;
    /// [`SessionStore::find_signed_in`] without the account.
    async fn find_by_cookie(&self, digest: &str, now: Timestamp) -> Result<Option<SessionRecord>> {
        Ok(self.find_signed_in(digest, now).await?.map(|(session, _)| session))
    }
    /// Replaces the session's cookie credential (revoking the old one) and returns false if the old
    /// one was not live.
    async fn rotate_cookie(
        &self,
        old_digest: &str,
        new_cookie: &CredentialRecord,
        now: Timestamp,
    ) -> Result<bool>;
    async fn touch(&self, id: &str, now: Timestamp) -> Result<()>;
    async fn set_second_factor(&self, id: &str, now: Timestamp) -> Result<()>;
    /// Records that the password was checked again in this session just now (`auth_time`).
    async fn reauthenticated(&self, id: &str, now: Timestamp) -> Result<()>;
    async fn get(&self, id: &str) -> Result<Option<SessionRecord>>;
    async fn list_live_by_account(
        &self,
        account_id: &str,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>>;
    /// Revokes the session and every credential derived from it.
    async fn revoke(&self, id: &str, now: Timestamp) -> Result<bool>;
    async fn revoke_all_for_account(&self, account_id: &str, now: Timestamp) -> Result<u64>;
    async fn count_live(&self, now: Timestamp) -> Result<u64>;
    /// Deletes at most `batch` sessions that expired or were revoked before `cutoff`, together with
    /// the credentials that belong to them; returns how many sessions went.
    async fn sweep(&self, cutoff: Timestamp, batch: u32) -> Result<u64>;
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn insert(&self, key: &KeyRecord) -> Result<()>;
    async fn list(&self) -> Result<Vec<KeyRecord>>;
    async fn set_state(&self, kid: &str, state: KeyState, now: Timestamp) -> Result<()>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append(&self, event: &AuditRecord) -> Result<()>;
    /// Newest first.
    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>>;
}

#[async_trait]
pub trait CounterStore: Send + Sync {
    /// Adds one to the counter `key` in its fixed window of `window` seconds and returns the count
    /// in the window now current (a new window starts at 1).
    async fn hit(&self, key: &str, window: i64, now: Timestamp) -> Result<u32>;
    /// Adds `amount` to each counter `key` (windows as [`CounterStore::hit`]), all in one
    /// transaction, and returns each counter's count after its own addition, in order: the same
    /// answers as `amount` hits each, taken one after the other.
    async fn hit_many(
        &self,
        hits: &[(String, u32)],
        window: i64,
        now: Timestamp,
    ) -> Result<Vec<u32>>;
    /// The count in the current window, 0 when the window has passed.
    async fn peek(&self, key: &str, now: Timestamp) -> Result<u32>;
    async fn clear(&self, key: &str) -> Result<()>;
}

/// Moving applications off the legacy protocols: per-application deprecation dates and request
/// counts.
#[async_trait]
pub trait LegacyStore: Send + Sync {
    /// Sets one application's dates for one protocol (replacing earlier ones).
    async fn set_deprecation(&self, record: &DeprecationRecord) -> Result<()>;
    /// Removes one application's dates; `false` when there were none.
    async fn clear_deprecation(&self, protocol: &str, client_id: &str) -> Result<bool>;
    async fn get_deprecation(
        &self,
        protocol: &str,
        client_id: &str,
    ) -> Result<Option<DeprecationRecord>>;
    /// Every application's dates, by protocol then client.
    async fn list_deprecations(&self) -> Result<Vec<DeprecationRecord>>;
    /// Adds each count to its (protocol, client, day) row, all in one transaction.
    async fn add_requests(&self, counts: &[RequestCount]) -> Result<()>;
    /// Every row of `since_day` or later.
    async fn request_counts(&self, since_day: i64) -> Result<Vec<RequestCount>>;
}

/// A push delivery signal to the node(s) holding a device's connection. It carries no secret:
/// registrations are named by their digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushSignal {
    /// Messages were stored for the registration: its connections should read the store again,
    /// or, when `message` is there, send that message (it is the one just stored) without reading.
    Stored { registration: String, message: Option<StoredFrame> },
    /// A now-or-never message (time to live 0), never stored: the frame itself, for connections
    /// open right now; `hold_while_idle` drops it for a device that reported idle.
    Now { registration: String, frame: String, hold_while_idle: bool },
}

impl PushSignal {
    /// The digest of the registration the signal is for.
    pub fn registration(&self) -> &str {
        match self {
            PushSignal::Stored { registration, .. } | PushSignal::Now { registration, .. } => {
                registration
            }
        }
    }
}

/// A message just stored, as its device receives it, carried with its wake-up so that the
/// connection holding the device need not read it back from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFrame {
    /// The message id (what the device acknowledges).
    pub id: String,
    pub frame: String,
    /// Held (left stored) while the device reports idle.
    pub hold_while_idle: bool,
}

/// What receives push signals on a node: its connection registry.
pub trait PushSignalSink: Send + Sync {
    fn dispatch(&self, signal: PushSignal);
    /// [`PushSignalSink::dispatch`] for many, in order; a sink that can look them up together
    /// (and copy only those it has a connection for) does.
    fn dispatch_all(&self, signals: &[PushSignal]) {
        for signal in signals {
            self.dispatch(signal.clone());
        }
    }
    /// Signals may have been lost (the wake-up path was interrupted): every connection reads the
    /// store again.
    fn resync(&self);
}

/// Wakes the node(s) holding a device's connection. The message is stored before a `Stored`
/// signal is sent, so a lost signal delays a delivery but never loses a message.
#[async_trait]
pub trait Wakeup: Send + Sync {
    async fn signal(&self, signal: &PushSignal) -> Result<()>;
    /// Many signals (a multicast's), in order; a wake-up that can carry several at once does.
    async fn signal_many(&self, signals: &[PushSignal]) -> Result<()> {
        for signal in signals {
            self.signal(signal).await?;
        }
        Ok(())
    }
}

#[async_trait]
pub trait PushStore: Send + Sync {
    /// Stores `message` for its registration, in one transaction that runs one at a time with
    /// every other enqueue for the same registration: first drops the registration's expired
    /// messages; a message with a collapse key replaces the stored one with the same key, and a
    /// new key beyond `limits.max_collapse_keys` drops the message of the oldest key; a message
    /// without one beyond `limits.max_non_collapsible` discards everything stored (and itself)
    /// and leaves one `DeletedMessages` notice (whose id is `message.id`) counting them all,
    /// including those an earlier notice stood for.
    async fn enqueue(
        &self,
        message: &PushMessageRecord,
        limits: PushLimits,
        now: Timestamp,
    ) -> Result<Enqueued> {
        let mut done = self.enqueue_many(std::slice::from_ref(message), limits, now).await?;
        done.pop().ok_or_else(|| StoreError::Backend("enqueue push message: no answer".to_owned()))
    }
    /// [`PushStore::enqueue`] for many messages (a multicast's recipients) in one transaction:
    /// each message is stored under the same rules as if enqueued alone, in order, and the
    /// answers come in the same order. All are stored or none.
    async fn enqueue_many(
        &self,
        messages: &[PushMessageRecord],
        limits: PushLimits,
        now: Timestamp,
    ) -> Result<Vec<Enqueued>>;
    /// The registration's stored messages that have not expired at `now`, oldest first.
    async fn pending(
        &self,
        registration: &str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<PushMessageRecord>>;
    /// Removes an acknowledged message; false when it was not stored (acknowledged already,
    /// expired and swept, or another registration's).
    async fn ack(&self, registration: &str, id: &str) -> Result<bool>;
    /// Drops every stored message of the registration (it unregistered).
    async fn clear(&self, registration: &str) -> Result<u64>;
    /// Deletes at most `batch` messages that expired before `cutoff`.
    async fn sweep(&self, cutoff: Timestamp, batch: u32) -> Result<u64>;

    // Topic subscriptions: which registrations a send to `/topics/<name>` of a project reaches.

    /// Subscribes, unless the registration is subscribed to `max_topics` topics already, in one
    /// transaction that runs one at a time with every other subscription of the registration, so
    /// the cap holds under concurrency. A repeat is no error and changes nothing.
    async fn subscribe(
        &self,
        subscription: &PushTopicRecord,
        max_topics: u32,
    ) -> Result<Subscribed>;
    /// Unsubscribes; false when it was not subscribed.
    async fn unsubscribe(&self, project_id: &str, topic: &str, registration: &str) -> Result<bool>;
    /// Drops every subscription of the registration (it unregistered).
    async fn unsubscribe_all(&self, registration: &str) -> Result<u64>;
    /// The topic's subscriptions in registration digest order, those after `after` (the last
    /// digest of the previous page; empty for the first), at most `limit`.
    async fn subscribers(
        &self,
        project_id: &str,
        topic: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<PushTopicRecord>>;
}
