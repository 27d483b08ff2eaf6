//! The conformance suite every store backend must pass, one `pub async fn` per case.
//!
//! Each case takes a fresh, empty, migrated store. A backend runs them all with
//! [`conformance_tests!`](crate::conformance_tests), which expands to one `#[tokio::test]` per case
//! on a multi-thread runtime and hands each case to the backend's harness:
//!
//! ```ignore
//! async fn harness(case: &'static str, run: tessera_store::testsuite::CaseFn) {
//!     let store: Arc<dyn Store> = Arc::new(make_fresh_store().await);
//!     run(store).await;
//! }
//! tessera_store::conformance_tests!(harness);
//! ```
//!
//! The cases seed parent rows (accounts, sessions, grants) before the rows that refer to them, so
//! they pass against schemas that enforce foreign keys.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{
    AccountRecord, AccountState, Answer, AuditFilter, AuditRecord, ClientRecord, CredentialKind,
    CredentialRecord, CredentialTransition, DeprecationRecord, DomainGrantRecord, DomainRecord,
    Enqueued, GrantRecord, KeyRecord, KeyState, ProjectBranding, ProjectRecord, PushLimits,
    PushMessageKind, PushMessageRecord, PushTopicRecord, Redemption, RequestCount, ServiceRecord,
    SessionRecord, Store, StoreError, Subscribed, Timestamp,
};

/// The future one case runs as.
pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// One case, ready to run against a store.
pub type CaseFn = fn(Arc<dyn Store>) -> CaseFuture;

/// Expands to one `#[tokio::test]` per conformance case. `$harness` is an async function
/// `(case: &'static str, run: CaseFn)` that builds a fresh store, awaits `run(store)` and cleans
/// up; the calling crate needs `tokio` with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:path) => {
        $crate::__conformance_tests! {
            [$harness]
            backend_and_ping,
            account_create_get_and_case_insensitive_email,
            account_list_and_count_admins,
            account_state_name_and_password_updates,
            account_password_rehash_is_conditional,
            account_totp_step_replay_is_refused,
            domains_add_get_list,
            services_add_get_list_and_protocols,
            projects_and_clients,
            clients_update_delete_and_project_verified,
            project_branding_set_replace_get,
            credential_get_sees_spent_credentials,
            grant_upsert_creates_then_widens,
            grant_upsert_concurrent_keeps_one_live_grant,
            grant_touch_get_and_list,
            grant_list_live_by_client,
            grant_revoke_kills_only_its_credentials,
            domain_grant_upsert_find_list_revoke,
            domain_grant_concurrent_upserts_keep_one_live,
            credential_insert_find_and_conflict,
            credential_insert_once,
            credential_concurrent_inserts_each_get_their_own_answer,
            credential_find_live_token_reads_grant_client_and_account,
            store_changes_count_what_may_end_a_token_answer,
            credential_and_session_bulk_inserts_are_all_or_none,
            credential_consume_exactly_once,
            credential_consume_refuses_wrong_kind_expired_revoked,
            credential_consume_race_50,
            credential_touch_revoke_and_revoke_by,
            credential_list_live_by_account_oldest_first,
            credential_sweep_in_bounded_batches,
            credential_cap_keeps_the_newest_by_insertion,
            credential_cap_holds_under_concurrency,
            credential_redeem_is_all_or_nothing,
            credential_redeem_race_has_one_winner,
            credential_redeem_gives_its_grant_only_when_consumed,
            credential_redeem_widens_a_live_grant_and_names_it,
            credential_redeem_race_gives_one_grant,
            credential_revoke_by_account_kinds,
            session_reauthenticated_moves_auth_time_forward,
            session_create_and_find_by_cookie,
            session_find_signed_in_reads_the_account,
            session_rotate_cookie,
            session_rotate_cookie_race,
            session_touch_second_factor_and_get,
            session_revoke_kills_its_credentials,
            session_revoke_all_for_account,
            session_list_live_and_count_live,
            session_sweep_removes_dead_sessions_and_their_credentials,
            keys_insert_list_and_state_changes,
            audit_filters_newest_first,
            counters_fixed_windows,
            counters_concurrent_hits,
            counters_hit_many_answers_as_hits_in_order,
            credential_transition_moves_the_state_once,
            credential_transition_race_50,
            credential_find_live_tokens_reads_many,
            heartbeat_writes_and_kek_check_is_set_once,
            push_collapse_key_replaces_and_keys_are_capped,
            push_overflow_leaves_one_notice,
            push_pending_ack_clear_and_expiry,
            push_enqueue_burst_keeps_the_cap,
            push_enqueue_many_answers_as_one_at_a_time,
            push_enqueue_many_bursts_keep_the_cap,
            push_topics_subscribe_page_and_unsubscribe,
            push_topics_burst_keeps_the_cap,
            legacy_deprecations_set_replace_list_and_clear,
            legacy_request_counts_add_up_under_concurrency,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ([$harness:path] $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                fn run(store: ::std::sync::Arc<dyn $crate::Store>) -> $crate::testsuite::CaseFuture {
                    ::std::boxed::Box::pin($crate::testsuite::$case(store))
                }
                $harness(::std::stringify!($case), run).await;
            }
        )*
    };
}

/// A time well inside the range both backends store.
pub const NOW: Timestamp = 1_700_000_000;

/// An account record with sensible defaults.
pub fn account(id: &str, email: &str, created_at: Timestamp) -> AccountRecord {
    AccountRecord {
        id: id.to_owned(),
        email: email.to_owned(),
        name: format!("Name of {id}"),
        domain: None,
        password_hash: None,
        state: AccountState::Active,
        is_admin: false,
        totp_secret_enc: None,
        totp_last_step: None,
        created_at,
        updated_at: created_at,
    }
}

/// Creates an account `id` with the email `<id>@example.com`.
pub async fn seed_account(store: &dyn Store, id: &str) -> AccountRecord {
    let record = account(id, &format!("{id}@example.com"), NOW);
    store.accounts().create(&record).await.expect("create account");
    record
}

/// A session record that expires an hour after `created_at`.
pub fn session(id: &str, account_id: &str, created_at: Timestamp) -> SessionRecord {
    SessionRecord {
        id: id.to_owned(),
        account_id: account_id.to_owned(),
        created_at,
        auth_time: created_at,
        last_seen_at: created_at,
        expires_at: created_at + 3600,
        revoked_at: None,
        persistent: false,
        second_factor: false,
        user_agent: "test-agent".to_owned(),
        ip: "192.0.2.1".to_owned(),
    }
}

/// A session cookie credential.
pub fn cookie(digest: &str, now: Timestamp) -> CredentialRecord {
    let mut record = CredentialRecord::new(digest.to_owned(), CredentialKind::Session, now);
    record.expires_at = Some(now + 3600);
    record
}

/// Creates a session `id` for the account with the cookie credential `<id>-cookie`.
pub async fn seed_session(
    store: &dyn Store,
    id: &str,
    account_id: &str,
    created_at: Timestamp,
) -> SessionRecord {
    let record = session(id, account_id, created_at);
    let cookie = cookie(&format!("{id}-cookie"), created_at);
    store.sessions().create(&record, &cookie).await.expect("create session");
    record
}

/// A live grant record.
pub fn grant(
    id: &str,
    account_id: &str,
    client_id: &str,
    protocol: &str,
    scopes: &str,
) -> GrantRecord {
    GrantRecord {
        id: id.to_owned(),
        account_id: account_id.to_owned(),
        client_id: client_id.to_owned(),
        protocol: protocol.to_owned(),
        scopes: scopes.to_owned(),
        created_at: NOW,
        last_used_at: None,
        revoked_at: None,
    }
}

/// A credential that expires `ttl` seconds after `now`.
pub fn credential(
    digest: &str,
    kind: CredentialKind,
    now: Timestamp,
    ttl: i64,
) -> CredentialRecord {
    let mut record = CredentialRecord::new(digest.to_owned(), kind, now);
    record.expires_at = Some(now + ttl);
    record
}

/// Inserts a credential, failing the case on error.
pub async fn seed_credential(store: &dyn Store, record: &CredentialRecord) {
    store.credentials().insert(record).await.expect("insert credential");
}

/// Whether the credential is live at `now`.
pub async fn is_live(store: &dyn Store, digest: &str, now: Timestamp) -> bool {
    store.credentials().find_live(digest, now).await.expect("find live credential").is_some()
}

/// Inserts one authorization code through `stores[0]`, lets `contenders` tasks (spread round-robin
/// over `stores`, which may be separate pools on one database) consume it at once, and asserts
/// that exactly one of them wins.
pub async fn consume_race(stores: &[Arc<dyn Store>], contenders: usize) {
    let first = stores.first().expect("at least one store");
    let digest = "race-authorization-code";
    let mut code = credential(digest, CredentialKind::AuthorizationCode, NOW, 600);
    code.data = r#"{"redirect_uri":"https://app.example/cb"}"#.to_owned();
    seed_credential(first.as_ref(), &code).await;

    let barrier = Arc::new(tokio::sync::Barrier::new(contenders));
    let mut tasks = Vec::with_capacity(contenders);
    for i in 0..contenders {
        let store = Arc::clone(&stores[i % stores.len()]);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.credentials().consume(digest, CredentialKind::AuthorizationCode, NOW + 1).await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let outcome = task.await.expect("consumer task panicked").expect("consume failed");
        if let Some(won) = outcome {
            winners.push(won);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one of {contenders} consumers must win");
    let won = &winners[0];
    assert_eq!(won.digest, digest);
    assert_eq!(won.consumed_at, Some(NOW + 1));
    assert_eq!(won.data, code.data);
    for store in stores {
        assert!(
            !is_live(store.as_ref(), digest, NOW + 2).await,
            "a consumed code is dead everywhere"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Store

pub async fn backend_and_ping(store: Arc<dyn Store>) {
    assert!(
        ["sqlite", "postgres"].contains(&store.backend()),
        "unknown backend {}",
        store.backend()
    );
    store.ping().await.expect("ping");
}

// ---------------------------------------------------------------------------------------------
// Accounts

pub async fn account_create_get_and_case_insensitive_email(store: Arc<dyn Store>) {
    let accounts = store.accounts();
    let mut alice = account("acct-alice", "Alice@Example.COM", NOW);
    alice.domain = Some("example.com".to_owned());
    alice.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned());
    alice.is_admin = true;
    alice.totp_secret_enc = Some("enc:totp".to_owned());
    alice.totp_last_step = Some(42);
    alice.updated_at = NOW + 5;
    accounts.create(&alice).await.expect("create alice");

    assert_eq!(accounts.get("acct-alice").await.expect("get"), Some(alice.clone()));
    assert_eq!(accounts.get("acct-nobody").await.expect("get missing"), None);

    for spelling in ["alice@example.com", "ALICE@EXAMPLE.COM", "Alice@Example.COM"] {
        let found = accounts.find_by_email(spelling).await.expect("find by email");
        assert_eq!(
            found.as_ref().map(|a| a.id.as_str()),
            Some("acct-alice"),
            "lookup of {spelling}"
        );
    }
    assert_eq!(accounts.find_by_email("bob@example.com").await.expect("find missing"), None);

    let clash = account("acct-other", "aLiCe@example.com", NOW);
    match accounts.create(&clash).await {
        Err(StoreError::Conflict("email")) => {}
        other => panic!("expected Conflict(\"email\"), got {other:?}"),
    }
    assert_eq!(
        accounts.get("acct-other").await.expect("get"),
        None,
        "a refused account is not stored"
    );

    let same_id = account("acct-alice", "someone-else@example.com", NOW);
    match accounts.create(&same_id).await {
        Err(StoreError::Conflict(rule)) => {
            assert_ne!(rule, "email", "an id clash is not an email clash")
        }
        other => panic!("expected a conflict on the id, got {other:?}"),
    }
    assert_eq!(accounts.find_by_email("someone-else@example.com").await.expect("find"), None);
}

pub async fn account_list_and_count_admins(store: Arc<dyn Store>) {
    let accounts = store.accounts();
    // Created out of order: the list is ordered by creation time.
    for (id, created_at) in [
        ("acct-c", NOW + 3),
        ("acct-a", NOW + 1),
        ("acct-e", NOW + 5),
        ("acct-b", NOW + 2),
        ("acct-d", NOW + 4),
    ] {
        accounts
            .create(&account(id, &format!("{id}@example.com"), created_at))
            .await
            .expect("create");
    }
    let ids = |list: Vec<AccountRecord>| list.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(ids(accounts.list(0, 2).await.expect("page 1")), ["acct-a", "acct-b"]);
    assert_eq!(ids(accounts.list(2, 2).await.expect("page 2")), ["acct-c", "acct-d"]);
    assert_eq!(ids(accounts.list(4, 10).await.expect("page 3")), ["acct-e"]);
    assert!(accounts.list(10, 10).await.expect("past the end").is_empty());
    assert_eq!(accounts.list(0, 100).await.expect("all").len(), 5);

    assert_eq!(accounts.count_admins().await.expect("count"), 0);
    accounts.set_admin("acct-a", true, NOW + 10).await.expect("set admin");
    accounts.set_admin("acct-d", true, NOW + 10).await.expect("set admin");
    assert_eq!(accounts.count_admins().await.expect("count"), 2);
    let a = accounts.get("acct-a").await.expect("get").expect("exists");
    assert!(a.is_admin);
    assert_eq!(a.updated_at, NOW + 10);
    accounts.set_admin("acct-a", false, NOW + 11).await.expect("unset admin");
    assert_eq!(accounts.count_admins().await.expect("count"), 1);
    assert!(!accounts.get("acct-a").await.expect("get").expect("exists").is_admin);
    assert!(matches!(
        accounts.set_admin("acct-missing", true, NOW).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn account_state_name_and_password_updates(store: Arc<dyn Store>) {
    let accounts = store.accounts();
    seed_account(store.as_ref(), "acct-1").await;
    seed_account(store.as_ref(), "acct-2").await;
    let mut now = NOW;
    for state in AccountState::ALL {
        now += 1;
        accounts.set_state("acct-1", state, now).await.expect("set state");
        let stored = accounts.get("acct-1").await.expect("get").expect("exists");
        assert_eq!(stored.state, state);
        assert_eq!(stored.updated_at, now);
    }
    // The other account is untouched.
    assert_eq!(
        accounts.get("acct-2").await.expect("get").expect("exists").state,
        AccountState::Active
    );

    accounts.set_name("acct-1", "Renamed Person", NOW + 100).await.expect("set name");
    accounts.set_password_hash("acct-1", Some("hash-1"), NOW + 101).await.expect("set hash");
    let stored = accounts.get("acct-1").await.expect("get").expect("exists");
    assert_eq!(stored.name, "Renamed Person");
    assert_eq!(stored.password_hash.as_deref(), Some("hash-1"));
    assert_eq!(stored.updated_at, NOW + 101);
    accounts.set_password_hash("acct-1", None, NOW + 102).await.expect("clear hash");
    assert_eq!(accounts.get("acct-1").await.expect("get").expect("exists").password_hash, None);

    assert!(matches!(
        accounts.set_state("acct-missing", AccountState::Disabled, NOW).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(accounts.set_name("acct-missing", "x", NOW).await, Err(StoreError::NotFound)));
    assert!(matches!(
        accounts.set_password_hash("acct-missing", Some("h"), NOW).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        accounts.set_totp("acct-missing", None, NOW).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn account_password_rehash_is_conditional(store: Arc<dyn Store>) {
    let accounts = store.accounts();
    seed_account(store.as_ref(), "acct-1").await;
    assert!(
        !accounts.replace_password_hash("acct-1", "old", "new", NOW).await.expect("replace"),
        "no hash to replace"
    );

    accounts.set_password_hash("acct-1", Some("hash-v1"), NOW).await.expect("set hash");
    assert!(
        accounts
            .replace_password_hash("acct-1", "hash-v1", "hash-v2", NOW + 1)
            .await
            .expect("rehash")
    );
    let stored = accounts.get("acct-1").await.expect("get").expect("exists");
    assert_eq!(stored.password_hash.as_deref(), Some("hash-v2"));
    assert_eq!(stored.updated_at, NOW + 1);

    // A re-hash computed from the old hash must not overwrite the newer one.
    assert!(
        !accounts
            .replace_password_hash("acct-1", "hash-v1", "hash-v1-rehashed", NOW + 2)
            .await
            .expect("stale rehash")
    );
    assert_eq!(
        accounts.get("acct-1").await.expect("get").expect("exists").password_hash.as_deref(),
        Some("hash-v2")
    );
    assert!(
        !accounts
            .replace_password_hash("acct-missing", "hash-v2", "x", NOW)
            .await
            .expect("missing account")
    );
}

pub async fn account_totp_step_replay_is_refused(store: Arc<dyn Store>) {
    let accounts = store.accounts();
    seed_account(store.as_ref(), "acct-1").await;
    seed_account(store.as_ref(), "acct-2").await;
    accounts.set_totp("acct-1", Some("enc:secret"), NOW + 1).await.expect("set totp");
    let stored = accounts.get("acct-1").await.expect("get").expect("exists");
    assert_eq!(stored.totp_secret_enc.as_deref(), Some("enc:secret"));
    assert_eq!(stored.totp_last_step, None);
    assert_eq!(stored.updated_at, NOW + 1);

    assert!(accounts.advance_totp_step("acct-1", 1000).await.expect("first step"));
    assert!(
        !accounts.advance_totp_step("acct-1", 1000).await.expect("replay"),
        "the same step is a replay"
    );
    assert!(
        !accounts.advance_totp_step("acct-1", 999).await.expect("older"),
        "an older step is a replay"
    );
    assert!(accounts.advance_totp_step("acct-1", 1001).await.expect("next step"));
    assert_eq!(
        accounts.get("acct-1").await.expect("get").expect("exists").totp_last_step,
        Some(1001)
    );
    // Steps are per account.
    assert!(accounts.advance_totp_step("acct-2", 1001).await.expect("other account"));
    assert!(!accounts.advance_totp_step("acct-missing", 5).await.expect("missing account"));

    // Re-enrolling resets the last accepted step.
    accounts.set_totp("acct-1", Some("enc:secret-2"), NOW + 2).await.expect("re-enrol");
    let stored = accounts.get("acct-1").await.expect("get").expect("exists");
    assert_eq!(stored.totp_last_step, None);
    assert_eq!(stored.totp_secret_enc.as_deref(), Some("enc:secret-2"));
    assert!(accounts.advance_totp_step("acct-1", 10).await.expect("after reset"));

    accounts.set_totp("acct-1", None, NOW + 3).await.expect("disable");
    let stored = accounts.get("acct-1").await.expect("get").expect("exists");
    assert_eq!(stored.totp_secret_enc, None);
    assert_eq!(stored.totp_last_step, None);

    // Concurrent submissions of one code: exactly one is accepted.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.accounts().advance_totp_step("acct-2", 5000).await
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        if task.await.expect("task").expect("advance") {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1);
}

// ---------------------------------------------------------------------------------------------
// Domains and projects

pub async fn domains_add_get_list(store: Arc<dyn Store>) {
    let domains = store.domains();
    assert!(domains.list().await.expect("list").is_empty());
    let b = DomainRecord { name: "b.example".to_owned(), created_at: NOW };
    let a = DomainRecord { name: "a.example".to_owned(), created_at: NOW + 1 };
    domains.add(&b).await.expect("add b");
    domains.add(&a).await.expect("add a");
    assert_eq!(domains.get("a.example").await.expect("get"), Some(a.clone()));
    assert_eq!(domains.get("c.example").await.expect("get missing"), None);
    let mut listed = domains.list().await.expect("list");
    listed.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(listed, [a, b.clone()]);
    assert!(
        matches!(domains.add(&b).await, Err(StoreError::Conflict(_))),
        "a domain is added once"
    );
}

pub async fn services_add_get_list_and_protocols(store: Arc<dyn Store>) {
    let services = store.services();
    assert!(services.list().await.expect("list").is_empty());
    let cl = ServiceRecord {
        name: "cl".to_owned(),
        display_name: "Calendar".to_owned(),
        scopes: "https://calendar.example.test/feeds/".to_owned(),
        clientlogin_ttl_secs: 14 * 86_400,
        protocols: "authsub clientlogin oauth1".to_owned(),
        created_at: NOW,
        web_prefixes: String::new(),
        logout_url: String::new(),
        backchannel_logout_url: String::new(),
    };
    let mail = ServiceRecord {
        name: "mail".to_owned(),
        display_name: "Mail".to_owned(),
        scopes: "https://mail.example.test/".to_owned(),
        ..cl.clone()
    };
    services.add(&mail).await.expect("add mail");
    services.add(&cl).await.expect("add cl");
    assert_eq!(services.get("cl").await.expect("get"), Some(cl.clone()));
    assert_eq!(services.get("nope").await.expect("get missing"), None);
    assert_eq!(services.list().await.expect("list"), [cl.clone(), mail]);
    assert!(
        matches!(services.add(&cl).await, Err(StoreError::Conflict("service"))),
        "a name is taken once"
    );
    services.set_protocols("cl", "oauth1").await.expect("set protocols");
    assert_eq!(services.get("cl").await.expect("get").expect("exists").protocols, "oauth1");
    assert!(matches!(services.set_protocols("nope", "").await, Err(StoreError::NotFound)));
    services
        .set_web(
            "cl",
            "https://cal.example.test/ https://cal2.example.test/app/",
            "https://cal.example.test/logout",
            "https://cal.example.test/bc",
        )
        .await
        .expect("set web");
    let got = services.get("cl").await.expect("get").expect("exists");
    assert_eq!(got.web_prefixes, "https://cal.example.test/ https://cal2.example.test/app/");
    assert_eq!(got.logout_url, "https://cal.example.test/logout");
    assert_eq!(got.backchannel_logout_url, "https://cal.example.test/bc");
    assert!(matches!(services.set_web("nope", "", "", "").await, Err(StoreError::NotFound)));
}

pub async fn projects_and_clients(store: Arc<dyn Store>) {
    let projects = store.projects();
    seed_account(store.as_ref(), "acct-owner").await;
    let p1 = ProjectRecord {
        id: "proj-1".to_owned(),
        name: "First".to_owned(),
        owner_account_id: "acct-owner".to_owned(),
        verified: true,
        created_at: NOW,
    };
    let p2 = ProjectRecord {
        id: "proj-2".to_owned(),
        name: "Second".to_owned(),
        verified: false,
        created_at: NOW + 1,
        ..p1.clone()
    };
    projects.add(&p1).await.expect("add p1");
    projects.add(&p2).await.expect("add p2");
    assert_eq!(projects.get("proj-1").await.expect("get"), Some(p1.clone()));
    assert_eq!(projects.get("proj-x").await.expect("get missing"), None);
    assert_eq!(projects.find_by_name("Second").await.expect("by name"), Some(p2.clone()));
    assert_eq!(projects.find_by_name("Third").await.expect("by name missing"), None);
    assert_eq!(projects.list().await.expect("list"), [p1.clone(), p2.clone()]);
    assert!(matches!(projects.add(&p1).await, Err(StoreError::Conflict(_))));

    let web = ClientRecord {
        client_id: "client-web".to_owned(),
        project_id: "proj-1".to_owned(),
        kind: "web".to_owned(),
        name: "Web app".to_owned(),
        secret_digest: Some("digest-of-secret".to_owned()),
        settings: r#"{"redirect_uris":["https://app.example/cb"]}"#.to_owned(),
        created_at: NOW,
    };
    let device = ClientRecord {
        client_id: "client-device".to_owned(),
        kind: "device".to_owned(),
        name: "TV".to_owned(),
        secret_digest: None,
        settings: "{}".to_owned(),
        created_at: NOW + 1,
        ..web.clone()
    };
    projects.add_client(&web).await.expect("add web");
    projects.add_client(&device).await.expect("add device");
    assert_eq!(projects.get_client("client-web").await.expect("get client"), Some(web.clone()));
    assert_eq!(projects.get_client("client-x").await.expect("get missing"), None);
    let mut listed = projects.list_clients("proj-1").await.expect("list clients");
    listed.sort_by(|x, y| x.client_id.cmp(&y.client_id));
    assert_eq!(listed, [device, web.clone()]);
    assert!(projects.list_clients("proj-2").await.expect("list clients").is_empty());
    assert!(matches!(projects.add_client(&web).await, Err(StoreError::Conflict(_))));
}

pub async fn project_branding_set_replace_get(store: Arc<dyn Store>) {
    let projects = store.projects();
    seed_account(store.as_ref(), "acct-owner").await;
    let project = ProjectRecord {
        id: "proj-1".to_owned(),
        name: "First".to_owned(),
        owner_account_id: "acct-owner".to_owned(),
        verified: false,
        created_at: NOW,
    };
    projects.add(&project).await.expect("add project");
    assert_eq!(projects.get_branding("proj-1").await.expect("get none"), None);
    let branding = ProjectBranding {
        project_id: "proj-1".to_owned(),
        product_name: "Photo Printer".to_owned(),
        homepage: "https://photos.example/".to_owned(),
        support_email: "help@photos.example".to_owned(),
        logo_url: "https://photos.example/logo.png".to_owned(),
        updated_at: NOW,
    };
    projects.set_branding(&branding).await.expect("set");
    assert_eq!(projects.get_branding("proj-1").await.expect("get"), Some(branding.clone()));
    let replaced = ProjectBranding {
        product_name: "Printer".to_owned(),
        homepage: String::new(),
        logo_url: String::new(),
        updated_at: NOW + 1,
        ..branding
    };
    projects.set_branding(&replaced).await.expect("replace");
    assert_eq!(projects.get_branding("proj-1").await.expect("get"), Some(replaced));
    assert_eq!(projects.get_branding("proj-x").await.expect("get missing"), None);
}

pub async fn clients_update_delete_and_project_verified(store: Arc<dyn Store>) {
    let projects = store.projects();
    seed_account(store.as_ref(), "acct-owner").await;
    let project = ProjectRecord {
        id: "proj-1".to_owned(),
        name: "First".to_owned(),
        owner_account_id: "acct-owner".to_owned(),
        verified: false,
        created_at: NOW,
    };
    projects.add(&project).await.expect("add project");
    assert!(projects.set_verified("proj-1", true).await.expect("verify"));
    assert!(projects.get("proj-1").await.expect("get").expect("exists").verified);
    assert!(projects.set_verified("proj-1", false).await.expect("unverify"));
    assert!(!projects.get("proj-1").await.expect("get").expect("exists").verified);
    assert!(!projects.set_verified("proj-x", true).await.expect("verify missing"));

    let client = ClientRecord {
        client_id: "client-web".to_owned(),
        project_id: "proj-1".to_owned(),
        kind: "web".to_owned(),
        name: "Web app".to_owned(),
        secret_digest: Some("old-digest".to_owned()),
        settings: "{}".to_owned(),
        created_at: NOW,
    };
    let other = ClientRecord { client_id: "client-other".to_owned(), ..client.clone() };
    projects.add_client(&client).await.expect("add client");
    projects.add_client(&other).await.expect("add other");
    let changed = ClientRecord {
        name: "Renamed".to_owned(),
        secret_digest: Some("new-digest".to_owned()),
        settings: r#"{"redirect_uris":["https://a.example/cb"]}"#.to_owned(),
        // Neither the project nor the kind nor the creation time change through an update.
        kind: "installed".to_owned(),
        created_at: NOW + 5,
        ..client.clone()
    };
    assert!(projects.update_client(&changed).await.expect("update"));
    let stored = projects.get_client("client-web").await.expect("get").expect("exists");
    assert_eq!(stored.name, "Renamed");
    assert_eq!(stored.secret_digest.as_deref(), Some("new-digest"));
    assert_eq!(stored.settings, changed.settings);
    assert_eq!(stored.kind, "web");
    assert_eq!(stored.created_at, NOW);
    let missing = ClientRecord { client_id: "client-x".to_owned(), ..client.clone() };
    assert!(!projects.update_client(&missing).await.expect("update missing"));

    assert!(projects.delete_client("client-web").await.expect("delete"));
    assert_eq!(projects.get_client("client-web").await.expect("get deleted"), None);
    assert!(!projects.delete_client("client-web").await.expect("delete again"));
    assert_eq!(projects.list_clients("proj-1").await.expect("list"), [other]);
}

// ---------------------------------------------------------------------------------------------
// Grants

pub async fn grant_upsert_creates_then_widens(store: Arc<dyn Store>) {
    let grants = store.grants();
    seed_account(store.as_ref(), "acct-1").await;

    let first = grants
        .upsert(&grant("grant-1", "acct-1", "client-a", "oauth2", "openid email"))
        .await
        .expect("create");
    assert_eq!(first.id, "grant-1");
    assert_eq!(first.scopes, "email openid", "scopes are stored sorted");

    let widened = grants
        .upsert(&grant("grant-2", "acct-1", "client-a", "oauth2", "profile email"))
        .await
        .expect("widen");
    assert_eq!(widened.id, "grant-1", "the live grant is widened, not duplicated");
    assert_eq!(widened.scopes, "email openid profile");
    assert_eq!(widened.created_at, first.created_at);
    assert_eq!(grants.get("grant-1").await.expect("get"), Some(widened.clone()));
    assert_eq!(grants.get("grant-2").await.expect("get"), None);

    let same = grants
        .upsert(&grant("grant-3", "acct-1", "client-a", "oauth2", "email"))
        .await
        .expect("narrower");
    assert_eq!(same, widened, "a subset changes nothing");

    // Another protocol or another client is another grant.
    let oauth1 = grants
        .upsert(&grant("grant-4", "acct-1", "client-a", "oauth1", "contacts"))
        .await
        .expect("oauth1");
    assert_eq!(oauth1.id, "grant-4");
    let other_client = grants
        .upsert(&grant("grant-5", "acct-1", "client-b", "oauth2", "email"))
        .await
        .expect("client b");
    assert_eq!(other_client.id, "grant-5");
    assert_eq!(grants.list_by_account("acct-1").await.expect("list").len(), 3);

    // Once revoked, the next consent starts a fresh grant with only the scopes asked for.
    assert!(grants.revoke("grant-1", NOW + 10).await.expect("revoke"));
    let fresh = grants
        .upsert(&grant("grant-6", "acct-1", "client-a", "oauth2", "openid"))
        .await
        .expect("fresh");
    assert_eq!(fresh.id, "grant-6");
    assert_eq!(fresh.scopes, "openid");
    assert_eq!(fresh.revoked_at, None);
    let revoked = grants.get("grant-1").await.expect("get").expect("kept");
    assert_eq!(revoked.revoked_at, Some(NOW + 10));
    assert_eq!(revoked.scopes, "email openid profile");
}

pub async fn grant_upsert_concurrent_keeps_one_live_grant(store: Arc<dyn Store>) {
    seed_account(store.as_ref(), "acct-1").await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let record = grant(
                &format!("grant-{i}"),
                "acct-1",
                "client-a",
                "oauth2",
                &format!("scope-{i:02} shared"),
            );
            store.grants().upsert(&record).await
        }));
    }
    let mut ids = BTreeSet::new();
    for task in tasks {
        ids.insert(task.await.expect("task").expect("upsert").id);
    }
    assert_eq!(ids.len(), 1, "every concurrent upsert returns the same live grant");
    let listed = store.grants().list_by_account("acct-1").await.expect("list");
    let live: Vec<_> = listed.iter().filter(|g| g.revoked_at.is_none()).collect();
    assert_eq!(live.len(), 1, "one live grant");
    let expected: Vec<String> = ["shared".to_owned()]
        .into_iter()
        .chain((0..16).map(|i| format!("scope-{i:02}")))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(live[0].scopes, expected.join(" "), "no widening is lost");
}

pub async fn grant_list_live_by_client(store: Arc<dyn Store>) {
    let grants = store.grants();
    seed_account(store.as_ref(), "acct-1").await;
    seed_account(store.as_ref(), "acct-2").await;
    let mut first = grant("grant-1", "acct-1", "client-a", "oauth2", "email");
    first.created_at = NOW + 1;
    let mut second = grant("grant-2", "acct-2", "client-a", "oauth2", "openid");
    second.created_at = NOW + 2;
    let other = grant("grant-3", "acct-1", "client-b", "oauth2", "email");
    for it in [&second, &first, &other] {
        grants.upsert(it).await.expect("upsert");
    }
    let ids = |list: Vec<GrantRecord>| list.into_iter().map(|it| it.id).collect::<Vec<_>>();
    assert_eq!(
        ids(grants.list_live_by_client("client-a").await.expect("list")),
        ["grant-1", "grant-2"]
    );
    assert!(grants.revoke("grant-1", NOW + 3).await.expect("revoke"));
    assert_eq!(ids(grants.list_live_by_client("client-a").await.expect("list")), ["grant-2"]);
    assert!(grants.list_live_by_client("client-x").await.expect("list none").is_empty());
}

pub async fn grant_touch_get_and_list(store: Arc<dyn Store>) {
    let grants = store.grants();
    seed_account(store.as_ref(), "acct-1").await;
    seed_account(store.as_ref(), "acct-2").await;
    let mut late = grant("grant-late", "acct-1", "client-a", "oauth2", "email");
    late.created_at = NOW + 20;
    let mut early = grant("grant-early", "acct-1", "client-b", "oauth2", "email");
    early.created_at = NOW + 10;
    grants.upsert(&late).await.expect("late");
    grants.upsert(&early).await.expect("early");
    grants
        .upsert(&grant("grant-other", "acct-2", "client-a", "oauth2", "email"))
        .await
        .expect("other");

    let ids: Vec<_> =
        grants.list_by_account("acct-1").await.expect("list").into_iter().map(|g| g.id).collect();
    assert_eq!(ids, ["grant-early", "grant-late"], "oldest first, other accounts excluded");
    assert!(grants.list_by_account("acct-none").await.expect("list").is_empty());

    grants.touch("grant-late", NOW + 30).await.expect("touch");
    let touched = grants.get("grant-late").await.expect("get").expect("exists");
    assert_eq!(touched.last_used_at, Some(NOW + 30));
    assert_eq!(touched.scopes, "email");
    assert!(matches!(grants.touch("grant-missing", NOW).await, Err(StoreError::NotFound)));
    assert!(!grants.revoke("grant-missing", NOW).await.expect("revoke missing"));
}

pub async fn grant_revoke_kills_only_its_credentials(store: Arc<dyn Store>) {
    let grants = store.grants();
    seed_account(store.as_ref(), "acct-1").await;
    grants
        .upsert(&grant("grant-a", "acct-1", "client-a", "oauth2", "email"))
        .await
        .expect("grant a");
    grants
        .upsert(&grant("grant-b", "acct-1", "client-b", "oauth2", "email"))
        .await
        .expect("grant b");
    let derived = [
        ("a-access", "grant-a", CredentialKind::AccessToken),
        ("a-refresh", "grant-a", CredentialKind::RefreshToken),
        ("a-code", "grant-a", CredentialKind::AuthorizationCode),
        ("b-access", "grant-b", CredentialKind::AccessToken),
        ("b-refresh", "grant-b", CredentialKind::RefreshToken),
    ];
    for (digest, grant_id, kind) in derived {
        let mut record = credential(digest, kind, NOW, 3600);
        record.account_id = Some("acct-1".to_owned());
        record.grant_id = Some(grant_id.to_owned());
        record.client_id = Some("client".to_owned());
        seed_credential(store.as_ref(), &record).await;
    }

    assert!(grants.revoke("grant-a", NOW + 5).await.expect("revoke"));
    assert_eq!(
        grants.get("grant-a").await.expect("get").expect("exists").revoked_at,
        Some(NOW + 5)
    );
    for digest in ["a-access", "a-refresh", "a-code"] {
        assert!(!is_live(store.as_ref(), digest, NOW + 6).await, "{digest} dies with its grant");
    }
    assert_eq!(
        store
            .credentials()
            .consume("a-code", CredentialKind::AuthorizationCode, NOW + 6)
            .await
            .expect("consume"),
        None
    );
    for digest in ["b-access", "b-refresh"] {
        assert!(
            is_live(store.as_ref(), digest, NOW + 6).await,
            "{digest} belongs to another grant"
        );
    }
    assert_eq!(grants.get("grant-b").await.expect("get").expect("exists").revoked_at, None);
    assert!(
        !grants.revoke("grant-a", NOW + 7).await.expect("revoke again"),
        "a grant is revoked once"
    );
    assert_eq!(
        grants.get("grant-a").await.expect("get").expect("exists").revoked_at,
        Some(NOW + 5)
    );
}

// ---------------------------------------------------------------------------------------------
// Credentials

/// Many inserts at once (which a store may commit together) succeed or fail one by one: a
/// duplicate among them is refused and its neighbours are still stored.
pub async fn credential_concurrent_inserts_each_get_their_own_answer(store: Arc<dyn Store>) {
    seed_account(store.as_ref(), "acct-1").await;
    seed_credential(store.as_ref(), &credential("taken", CredentialKind::AccessToken, NOW, 60))
        .await;
    let barrier = Arc::new(tokio::sync::Barrier::new(40));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let digest = if i == 17 { "taken".to_owned() } else { format!("many-{i}") };
            let mut record = credential(&digest, CredentialKind::AccessToken, NOW, 60);
            record.account_id = Some("acct-1".to_owned());
            barrier.wait().await;
            (digest, store.credentials().insert(&record).await)
        }));
    }
    for task in tasks {
        let (digest, outcome) = task.await.expect("insert task panicked");
        if digest == "taken" {
            assert!(matches!(outcome, Err(StoreError::Conflict("credential"))), "{outcome:?}");
        } else {
            outcome.expect("insert");
            let stored = store.credentials().find_live(&digest, NOW).await.expect("find");
            assert_eq!(stored.and_then(|it| it.account_id).as_deref(), Some("acct-1"), "{digest}");
        }
    }
    let taken = store.credentials().find_live("taken", NOW).await.expect("find").expect("kept");
    assert_eq!(taken.account_id, None, "the first insert of a digest wins");
}

pub async fn credential_insert_find_and_conflict(store: Arc<dyn Store>) {
    let credentials = store.credentials();
    seed_account(store.as_ref(), "acct-1").await;
    let mut record = credential("digest-1", CredentialKind::AppPassword, NOW, 100);
    record.account_id = Some("acct-1".to_owned());
    record.client_id = Some("client-a".to_owned());
    record.scopes = "mail calendar".to_owned();
    record.data = r#"{"label":"phone"}"#.to_owned();
    record.last_used_at = Some(NOW);
    credentials.insert(&record).await.expect("insert");

    assert_eq!(credentials.find_live("digest-1", NOW).await.expect("find"), Some(record.clone()));
    assert_eq!(
        credentials.find_live("digest-1", NOW + 99).await.expect("find"),
        Some(record.clone())
    );
    assert_eq!(
        credentials.find_live("digest-1", NOW + 100).await.expect("find"),
        None,
        "expired at expires_at"
    );
    assert_eq!(credentials.find_live("digest-x", NOW).await.expect("find missing"), None);

    let mut clash = credential("digest-1", CredentialKind::Nonce, NOW, 5);
    clash.data = "different".to_owned();
    match credentials.insert(&clash).await {
        Err(StoreError::Conflict("credential")) => {}
        other => panic!("expected Conflict(\"credential\"), got {other:?}"),
    }
    assert_eq!(
        credentials.find_live("digest-1", NOW).await.expect("find"),
        Some(record),
        "the first one stays"
    );

    // Without an expiry a credential stays live until consumed or revoked.
    credentials
        .insert(&CredentialRecord::new(
            "digest-forever".to_owned(),
            CredentialKind::MasterToken,
            NOW,
        ))
        .await
        .expect("insert");
    assert!(is_live(store.as_ref(), "digest-forever", NOW + 100_000_000).await);
    assert_eq!(credentials.count().await.expect("count"), 2);
}

pub async fn credential_get_sees_spent_credentials(store: Arc<dyn Store>) {
    let credentials = store.credentials();
    let mut code =
        CredentialRecord::new("d-code".to_owned(), CredentialKind::AuthorizationCode, NOW);
    code.expires_at = Some(NOW + 600);
    code.client_id = Some("client-a".to_owned());
    credentials.insert(&code).await.expect("insert");
    assert_eq!(credentials.get("d-code").await.expect("get"), Some(code.clone()));
    let consumed = credentials
        .consume("d-code", CredentialKind::AuthorizationCode, NOW + 1)
        .await
        .expect("consume")
        .expect("live");
    assert_eq!(consumed.digest, "d-code");
    let spent = credentials.get("d-code").await.expect("get spent").expect("still there");
    assert_eq!(spent.consumed_at, Some(NOW + 1));
    assert_eq!(spent.client_id.as_deref(), Some("client-a"));
    assert_eq!(credentials.find_live("d-code", NOW + 2).await.expect("find"), None);
    // Expired and revoked rows are found too.
    assert!(credentials.get("d-code").await.expect("get").is_some());
    assert!(credentials.revoke("d-code", NOW + 3).await.expect("revoke"));
    let revoked = credentials.get("d-code").await.expect("get revoked").expect("still there");
    assert_eq!(revoked.revoked_at, Some(NOW + 3));
    assert_eq!(credentials.get("d-none").await.expect("get missing"), None);
}

pub async fn credential_insert_once(store: Arc<dyn Store>) {
    let credentials = store.credentials();
    let mut nonce = credential("nonce-1", CredentialKind::CsrfNonce, NOW, 60);
    nonce.data = "first".to_owned();
    assert!(credentials.insert_once(&nonce).await.expect("first"), "the first use inserts");
    let mut replay = nonce.clone();
    replay.data = "second".to_owned();
    assert!(!credentials.insert_once(&replay).await.expect("replay"), "a replay inserts nothing");
    assert_eq!(
        credentials.find_live("nonce-1", NOW).await.expect("find").expect("live").data,
        "first"
    );
    assert!(
        credentials
            .insert_once(&credential("nonce-2", CredentialKind::Nonce, NOW, 60))
            .await
            .expect("other")
    );
    assert_eq!(credentials.count().await.expect("count"), 2);

    // Concurrent replays of one nonce: exactly one inserts.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .credentials()
                .insert_once(&credential("nonce-race", CredentialKind::Nonce, NOW, 60))
                .await
        }));
    }
    let mut inserted = 0;
    for task in tasks {
        if task.await.expect("task").expect("insert once") {
            inserted += 1;
        }
    }
    assert_eq!(inserted, 1);

    // A burst of new nonces, each presented twice at once: each is written exactly once, and an
    // insert's answer is its own (a store that writes them together must not mix them up).
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = Arc::clone(&store);
        let digest = format!("nonce-burst-{}", i % 20);
        tasks.push(tokio::spawn(async move {
            let written = store
                .credentials()
                .insert_once(&credential(&digest, CredentialKind::Nonce, NOW, 60))
                .await
                .expect("insert once");
            (digest, written)
        }));
    }
    let mut written: std::collections::BTreeMap<String, u32> = Default::default();
    for task in tasks {
        let (digest, done) = task.await.expect("task");
        *written.entry(digest).or_default() += u32::from(done);
    }
    assert_eq!(written.len(), 20);
    assert!(written.values().all(|n| *n == 1), "{written:?}");
    assert_eq!(credentials.count().await.expect("count"), 23);
}

pub async fn credential_consume_exactly_once(store: Arc<dyn Store>) {
    let credentials = store.credentials();
    seed_account(store.as_ref(), "acct-1").await;
    let mut code = credential("code-1", CredentialKind::AuthorizationCode, NOW, 60);
    code.account_id = Some("acct-1".to_owned());
    code.scopes = "openid".to_owned();
    seed_credential(store.as_ref(), &code).await;

    let consumed = credentials
        .consume("code-1", CredentialKind::AuthorizationCode, NOW + 10)
        .await
        .expect("consume");
    let mut expected = code.clone();
    expected.consumed_at = Some(NOW + 10);
    assert_eq!(consumed, Some(expected));
    assert_eq!(
        credentials
            .consume("code-1", CredentialKind::AuthorizationCode, NOW + 11)
            .await
            .expect("again"),
        None
    );
    assert!(
        !is_live(store.as_ref(), "code-1", NOW + 11).await,
        "a consumed credential is not live"
    );
    assert_eq!(
        credentials.count().await.expect("count"),
        1,
        "consuming keeps the row until the sweep"
    );
}

pub async fn credential_consume_refuses_wrong_kind_expired_revoked(store: Arc<dyn Store>) {
    let credentials = store.credentials();
    seed_credential(store.as_ref(), &credential("setup-1", CredentialKind::Setup, NOW, 60)).await;
    assert_eq!(
        credentials.consume("setup-1", CredentialKind::Captcha, NOW).await.expect("wrong kind"),
        None
    );
    assert!(is_live(store.as_ref(), "setup-1", NOW).await, "a wrong-kind attempt consumes nothing");
    assert!(
        credentials
            .consume("setup-1", CredentialKind::Setup, NOW)
            .await
            .expect("right kind")
            .is_some()
    );

    seed_credential(store.as_ref(), &credential("captcha-1", CredentialKind::Captcha, NOW, 60))
        .await;
    assert_eq!(
        credentials
            .consume("captcha-1", CredentialKind::Captcha, NOW + 60)
            .await
            .expect("at expiry"),
        None
    );
    assert_eq!(
        credentials.consume("captcha-1", CredentialKind::Captcha, NOW + 61).await.expect("expired"),
        None
    );
    assert!(
        credentials
            .consume("captcha-1", CredentialKind::Captcha, NOW + 59)
            .await
            .expect("in time")
            .is_some()
    );

    seed_credential(store.as_ref(), &credential("device-1", CredentialKind::DeviceCode, NOW, 600))
        .await;
    assert!(credentials.revoke("device-1", NOW + 1).await.expect("revoke"));
    assert_eq!(
        credentials
            .consume("device-1", CredentialKind::DeviceCode, NOW + 2)
            .await
            .expect("revoked"),
        None
    );

    assert_eq!(
        credentials.consume("missing", CredentialKind::DeviceCode, NOW).await.expect("missing"),
        None
    );
}

pub async fn credential_consume_race_50(store: Arc<dyn Store>) {
    consume_race(&[store], 50).await;
}

pub async fn credential_touch_revoke_and_revoke_by(store: Arc<dyn Store>) {
    let credentials = store.credentials();
    seed_account(store.as_ref(), "acct-1").await;
    seed_session(store.as_ref(), "sess-1", "acct-1", NOW).await;
    seed_session(store.as_ref(), "sess-2", "acct-1", NOW).await;
    store
        .grants()
        .upsert(&grant("grant-1", "acct-1", "client-a", "oauth2", "email"))
        .await
        .expect("grant");
    store
        .grants()
        .upsert(&grant("grant-2", "acct-1", "client-b", "oauth2", "email"))
        .await
        .expect("grant");
    for (digest, session_id, grant_id) in [
        ("by-s1-a", Some("sess-1"), None),
        ("by-s1-b", Some("sess-1"), None),
        ("by-s2", Some("sess-2"), None),
        ("by-g1-a", None, Some("grant-1")),
        ("by-g1-b", None, Some("grant-1")),
        ("by-g2", None, Some("grant-2")),
        ("loose", None, None),
    ] {
        let mut record = credential(digest, CredentialKind::AccessToken, NOW, 3600);
        record.account_id = Some("acct-1".to_owned());
        record.session_id = session_id.map(str::to_owned);
        record.grant_id = grant_id.map(str::to_owned);
        seed_credential(store.as_ref(), &record).await;
    }

    credentials.touch("loose", NOW + 7).await.expect("touch");
    assert_eq!(
        credentials.find_live("loose", NOW + 7).await.expect("find").expect("live").last_used_at,
        Some(NOW + 7)
    );
    assert!(matches!(credentials.touch("missing", NOW).await, Err(StoreError::NotFound)));

    assert!(credentials.revoke("loose", NOW + 8).await.expect("revoke"));
    assert!(!credentials.revoke("loose", NOW + 9).await.expect("revoke again"));
    assert!(!credentials.revoke("missing", NOW).await.expect("revoke missing"));
    assert!(!is_live(store.as_ref(), "loose", NOW + 8).await);

    // Two tokens plus the session's cookie.
    assert_eq!(credentials.revoke_by_session("sess-1", NOW + 10).await.expect("by session"), 3);
    assert_eq!(
        credentials.revoke_by_session("sess-1", NOW + 11).await.expect("by session again"),
        0
    );
    assert!(!is_live(store.as_ref(), "by-s1-a", NOW + 10).await);
    assert!(!is_live(store.as_ref(), "sess-1-cookie", NOW + 10).await);
    assert!(is_live(store.as_ref(), "by-s2", NOW + 10).await);
    assert!(is_live(store.as_ref(), "sess-2-cookie", NOW + 10).await);

    assert_eq!(credentials.revoke_by_grant("grant-1", NOW + 12).await.expect("by grant"), 2);
    assert_eq!(credentials.revoke_by_grant("grant-1", NOW + 13).await.expect("by grant again"), 0);
    assert!(!is_live(store.as_ref(), "by-g1-a", NOW + 12).await);
    assert!(!is_live(store.as_ref(), "by-g1-b", NOW + 12).await);
    assert!(is_live(store.as_ref(), "by-g2", NOW + 12).await);
    assert_eq!(credentials.count().await.expect("count"), 9, "revoking keeps the rows");
}

pub async fn credential_list_live_by_account_oldest_first(store: Arc<dyn Store>) {
    let credentials = store.credentials();
    seed_account(store.as_ref(), "acct-1").await;
    seed_account(store.as_ref(), "acct-2").await;
    let app_password = |digest: &str, account: &str, created_at: Timestamp| {
        let mut record =
            CredentialRecord::new(digest.to_owned(), CredentialKind::AppPassword, created_at);
        record.account_id = Some(account.to_owned());
        record
    };
    seed_credential(store.as_ref(), &app_password("pw-30", "acct-1", NOW + 30)).await;
    seed_credential(store.as_ref(), &app_password("pw-10", "acct-1", NOW + 10)).await;
    seed_credential(store.as_ref(), &app_password("pw-20", "acct-1", NOW + 20)).await;
    let mut expiring = app_password("pw-expired", "acct-1", NOW + 5);
    expiring.expires_at = Some(NOW + 50);
    seed_credential(store.as_ref(), &expiring).await;
    seed_credential(store.as_ref(), &app_password("pw-revoked", "acct-1", NOW + 1)).await;
    credentials.revoke("pw-revoked", NOW + 40).await.expect("revoke");
    seed_credential(store.as_ref(), &app_password("pw-other-account", "acct-2", NOW)).await;
    let mut other_kind = app_password("token-acct-1", "acct-1", NOW);
    other_kind.kind = CredentialKind::AccessToken;
    seed_credential(store.as_ref(), &other_kind).await;

    let list = credentials
        .list_live_by_account("acct-1", CredentialKind::AppPassword, NOW + 60)
        .await
        .expect("list");
    let digests: Vec<_> = list.iter().map(|c| c.digest.as_str()).collect();
    assert_eq!(digests, ["pw-10", "pw-20", "pw-30"]);
    let before_expiry = credentials
        .list_live_by_account("acct-1", CredentialKind::AppPassword, NOW + 49)
        .await
        .expect("list");
    let digests: Vec<_> = before_expiry.iter().map(|c| c.digest.as_str()).collect();
    assert_eq!(digests, ["pw-expired", "pw-10", "pw-20", "pw-30"]);
    assert!(
        credentials
            .list_live_by_account("acct-2", CredentialKind::AccessToken, NOW)
            .await
            .expect("list")
            .is_empty()
    );
}

pub async fn credential_sweep_in_bounded_batches(store: Arc<dyn Store>) {
    let credentials = store.credentials();
    let cutoff = NOW + 1000;
    for i in 0..250 {
        seed_credential(
            store.as_ref(),
            &credential(&format!("expired-{i:03}"), CredentialKind::Nonce, NOW, 10),
        )
        .await;
    }
    // Live rows, and dead rows that died after the cutoff, are kept.
    seed_credential(
        store.as_ref(),
        &CredentialRecord::new("live-forever".to_owned(), CredentialKind::MasterToken, NOW),
    )
    .await;
    seed_credential(
        store.as_ref(),
        &credential("live-long", CredentialKind::RefreshToken, NOW, 100_000),
    )
    .await;
    seed_credential(
        store.as_ref(),
        &credential("expires-at-cutoff", CredentialKind::AccessToken, NOW, 1000),
    )
    .await;
    seed_credential(
        store.as_ref(),
        &credential("revoked-late", CredentialKind::AccessToken, NOW, 100_000),
    )
    .await;
    credentials.revoke("revoked-late", cutoff + 1).await.expect("revoke");
    seed_credential(
        store.as_ref(),
        &credential("consumed-late", CredentialKind::AuthorizationCode, NOW, 100_000),
    )
    .await;
    credentials
        .consume("consumed-late", CredentialKind::AuthorizationCode, cutoff)
        .await
        .expect("consume");
    assert_eq!(credentials.count().await.expect("count"), 255);

    assert_eq!(credentials.sweep(cutoff, 100).await.expect("sweep 1"), 100);
    assert_eq!(credentials.sweep(cutoff, 100).await.expect("sweep 2"), 100);
    assert_eq!(credentials.sweep(cutoff, 100).await.expect("sweep 3"), 50);
    assert_eq!(credentials.sweep(cutoff, 100).await.expect("sweep 4"), 0);
    assert_eq!(credentials.count().await.expect("count"), 5);
    assert!(is_live(store.as_ref(), "live-forever", cutoff).await);
    assert!(is_live(store.as_ref(), "live-long", cutoff).await);

    // Rows revoked or consumed before the cutoff go too, whatever their expiry.
    seed_credential(
        store.as_ref(),
        &credential("revoked-early", CredentialKind::AccessToken, NOW, 100_000),
    )
    .await;
    credentials.revoke("revoked-early", NOW + 1).await.expect("revoke");
    seed_credential(
        store.as_ref(),
        &credential("consumed-early", CredentialKind::AuthorizationCode, NOW, 100_000),
    )
    .await;
    credentials
        .consume("consumed-early", CredentialKind::AuthorizationCode, NOW + 1)
        .await
        .expect("consume");
    assert_eq!(credentials.sweep(cutoff, 1).await.expect("sweep bounded"), 1);
    assert_eq!(credentials.sweep(cutoff, 100).await.expect("sweep rest"), 1);
    assert_eq!(credentials.sweep(cutoff, 100).await.expect("sweep empty"), 0);
    assert_eq!(credentials.count().await.expect("count"), 5);
    for digest in
        ["live-forever", "live-long", "expires-at-cutoff", "revoked-late", "consumed-late"]
    {
        let probe = credential(digest, CredentialKind::Nonce, NOW, 1);
        assert!(!credentials.insert_once(&probe).await.expect("probe"), "{digest} is kept");
    }
}

pub async fn credential_find_live_token_reads_grant_client_and_account(store: Arc<dyn Store>) {
    let credentials = store.credentials();
    let owner = seed_account(store.as_ref(), "acct-owner").await;
    let project = ProjectRecord {
        id: "proj-t".to_owned(),
        name: "Tokens".to_owned(),
        owner_account_id: owner.id.clone(),
        verified: false,
        created_at: NOW,
    };
    store.projects().add(&project).await.expect("add project");
    let client = ClientRecord {
        client_id: "client-t".to_owned(),
        project_id: "proj-t".to_owned(),
        kind: "web".to_owned(),
        name: "Token app".to_owned(),
        secret_digest: None,
        settings: "{}".to_owned(),
        created_at: NOW,
    };
    store.projects().add_client(&client).await.expect("add client");
    let user = seed_account(store.as_ref(), "acct-user").await;
    let live_grant =
        store.grants().upsert(&grant("grant-t", "acct-user", "client-t", "oauth2", "email")).await;
    let live_grant = live_grant.expect("grant");

    // A user's token: grant live, client there, account read in the same statement.
    let mut user_token = credential("tok-user", CredentialKind::AccessToken, NOW, 3600);
    user_token.account_id = Some(user.id.clone());
    user_token.grant_id = Some(live_grant.id.clone());
    user_token.client_id = Some("client-t".to_owned());
    user_token.scopes = "email".to_owned();
    seed_credential(store.as_ref(), &user_token).await;
    let found =
        credentials.find_live_token("tok-user", NOW + 1).await.expect("find").expect("live");
    assert_eq!(found.credential, user_token);
    assert!(!found.grant_revoked);
    assert!(found.client_exists);
    assert_eq!(found.account, Some(user.clone()));

    // A client's own token: no grant, no account.
    let mut own = credential("tok-client", CredentialKind::AccessToken, NOW, 3600);
    own.client_id = Some("client-t".to_owned());
    seed_credential(store.as_ref(), &own).await;
    let found = credentials.find_live_token("tok-client", NOW).await.expect("find").expect("live");
    assert!(!found.grant_revoked && found.client_exists && found.account.is_none());

    // A client id that leads nowhere (the client was deleted) is reported as gone.
    let mut orphan = credential("tok-orphan", CredentialKind::AccessToken, NOW, 3600);
    orphan.client_id = Some("client-missing".to_owned());
    seed_credential(store.as_ref(), &orphan).await;
    let found = credentials.find_live_token("tok-orphan", NOW).await.expect("find").expect("live");
    assert!(!found.grant_revoked && !found.client_exists && found.account.is_none());

    // Dead or unknown tokens are not found; a revoked grant is reported.
    assert_eq!(credentials.find_live_token("tok-user", NOW + 3600).await.expect("expired"), None);
    assert_eq!(credentials.find_live_token("tok-unknown", NOW).await.expect("unknown"), None);
    let mut other = credential("tok-other", CredentialKind::AccessToken, NOW, 3600);
    other.grant_id = Some(live_grant.id.clone());
    other.client_id = Some("client-t".to_owned());
    seed_credential(store.as_ref(), &other).await;
    credentials.revoke("tok-client", NOW + 1).await.expect("revoke");
    assert_eq!(credentials.find_live_token("tok-client", NOW + 2).await.expect("revoked"), None);
    store.grants().revoke(&live_grant.id, NOW + 3).await.expect("revoke grant");
    assert_eq!(
        credentials.find_live_token("tok-other", NOW + 4).await.expect("grant revoked"),
        None,
        "revoking the grant revoked its credentials"
    );
    let mut late = credential("tok-late", CredentialKind::AccessToken, NOW + 5, 3600);
    late.grant_id = Some(live_grant.id.clone());
    seed_credential(store.as_ref(), &late).await;
    let found = credentials.find_live_token("tok-late", NOW + 5).await.expect("find").expect("row");
    assert!(found.grant_revoked, "a token of a revoked grant says so");
}

/// [`Store::changes`] grows, for each kind of answer, after every committed write that may change
/// what it answers (`find_live_token`: revoking, consuming, disabling an account, deleting a
/// client, revoking a grant; `get_client`: changing or deleting a client; `find_signed_in`:
/// changing or ending a session, disabling its account, revoking its cookie; a project's `get`:
/// changing the project; `list_by_account`: giving, widening or revoking a grant), each write of a
/// parallel burst included, and stays put for reads, plain
/// inserts and writes that changed nothing. A spent or evicted credential that is not a session
/// cookie ends no kept client, session or project: what each kind of answer may keep is decided
/// by its own count.
pub async fn store_changes_count_what_may_end_a_token_answer(store: Arc<dyn Store>) {
    const ANSWERS: [Answer; 5] =
        [Answer::Token, Answer::Client, Answer::Session, Answer::Project, Answer::Grants];
    let counts = || ANSWERS.map(|of| store.changes(of).expect("an SQL store counts its changes"));
    let owner = seed_account(store.as_ref(), "acct-changes").await;
    let project = ProjectRecord {
        id: "proj-changes".to_owned(),
        name: "Changes".to_owned(),
        owner_account_id: owner.id.clone(),
        verified: false,
        created_at: NOW,
    };
    store.projects().add(&project).await.expect("add project");
    let client = ClientRecord {
        client_id: "client-changes".to_owned(),
        project_id: project.id.clone(),
        kind: "web".to_owned(),
        name: "Changes app".to_owned(),
        secret_digest: None,
        settings: "{}".to_owned(),
        created_at: NOW,
    };
    store.projects().add_client(&client).await.expect("add client");
    let wanted = grant("grant-changes", &owner.id, &client.client_id, "oauth2", "email");
    let live = store.grants().upsert(&wanted).await.expect("grant");

    let before = counts();
    let mut token = credential("tok-changes", CredentialKind::AccessToken, NOW, 3600);
    token.account_id = Some(owner.id.clone());
    token.client_id = Some(client.client_id.clone());
    token.grant_id = Some(live.id.clone());
    seed_credential(store.as_ref(), &token).await;
    for n in 0..16 {
        seed_credential(
            store.as_ref(),
            &credential(&format!("burst-{n}"), CredentialKind::AccessToken, NOW, 3600),
        )
        .await;
    }
    let code = credential("code-changes", CredentialKind::AuthorizationCode, NOW, 60);
    seed_credential(store.as_ref(), &code).await;
    seed_session(store.as_ref(), "sess-changes", &owner.id, NOW).await;
    store.credentials().find_live_token("tok-changes", NOW).await.expect("find").expect("live");
    store.sessions().find_signed_in("sess-changes-cookie", NOW).await.expect("find session");
    assert!(!store.credentials().revoke("tok-unknown", NOW).await.expect("revoke nothing"));
    assert_eq!(counts(), before, "reads, inserts and writes that changed nothing do not count");

    // `ends` names the kinds of answer the write must end (their counts grow); with `only`, the
    // others must stay kept (their counts stay put).
    let mut seen = before;
    let mut grew = |what: &str, ends: &[Answer], only: bool| {
        let now = counts();
        for (i, of) in ANSWERS.iter().enumerate() {
            assert!(now[i] >= seen[i], "{what}: the {of:?} count went back");
            if ends.contains(of) {
                assert!(now[i] > seen[i], "{what} ends {of:?} answers");
            } else if only {
                assert_eq!(now[i], seen[i], "{what} must leave {of:?} answers kept");
            }
        }
        seen = now;
    };
    store
        .credentials()
        .consume("code-changes", CredentialKind::AuthorizationCode, NOW)
        .await
        .expect("consume")
        .expect("consumed");
    grew("consuming a code", &[Answer::Token], true);
    store.accounts().set_state(&owner.id, AccountState::Disabled, NOW).await.expect("disable");
    grew("disabling an account", &[Answer::Token, Answer::Session], false);
    assert!(store.credentials().revoke("tok-changes", NOW).await.expect("revoke"));
    grew("revoking a token", &[Answer::Token], false);
    let other = grant("grant-other", &owner.id, "client-other", "oauth2", "email");
    store.grants().upsert(&other).await.expect("give a grant");
    grew("giving a grant", &[Answer::Grants], false);
    let widened = grant("grant-changes", &owner.id, &client.client_id, "oauth2", "email profile");
    store.grants().upsert(&widened).await.expect("widen grant");
    grew("widening a grant", &[Answer::Grants], false);
    assert!(store.grants().revoke(&live.id, NOW).await.expect("revoke grant"));
    grew("revoking a grant", &[Answer::Token, Answer::Grants], false);
    let mut renamed = client.clone();
    renamed.name = "Changes app, renamed".to_owned();
    assert!(store.projects().update_client(&renamed).await.expect("update client"));
    grew("changing a client", &[Answer::Client], false);
    assert!(store.projects().set_verified(&project.id, true).await.expect("verify project"));
    grew("verifying a project", &[Answer::Project], true);
    assert!(store.projects().delete_client(&client.client_id).await.expect("delete client"));
    grew("deleting a client", &[Answer::Token, Answer::Client], false);
    // A session's own row (its last use, its second factor) is part of a kept session answer.
    store.sessions().touch("sess-changes", NOW + 1).await.expect("touch");
    grew("a change to a session's row", &[Answer::Session], false);
    store.sessions().revoke("sess-changes", NOW).await.expect("sign out");
    grew("ending a session", &[Answer::Session], false);
    // A session cookie is a credential: revoking it by its digest ends the session's answer.
    seed_session(store.as_ref(), "sess-cookie-gone", &owner.id, NOW).await;
    assert!(store.credentials().revoke("sess-cookie-gone-cookie", NOW).await.expect("revoke"));
    grew("revoking a session cookie", &[Answer::Token, Answer::Session], false);
    // The per-account-per-app cap revokes the oldest (on PostgreSQL in a call of its own after
    // the insert's commit): an eviction ends a kept answer like any revocation.
    for n in 0..3 {
        let record = refresh_token(&format!("capped-{n}"), &owner.id, "client-capped", NOW);
        let evicted = store.credentials().insert_capped(&record, 2).await.expect("insert capped");
        assert_eq!(evicted, u64::from(n == 2));
    }
    grew("a capped insert that evicted the oldest", &[Answer::Token], true);
    let mut spent = credential("code-spent", CredentialKind::AuthorizationCode, NOW, 60);
    spent.client_id = Some("client-redeem".to_owned());
    seed_credential(store.as_ref(), &spent).await;
    let mut bought = credential("tok-bought", CredentialKind::AccessToken, NOW, 3600);
    bought.client_id = Some("client-redeem".to_owned());
    let redemption = Redemption {
        digest: "code-spent",
        kind: CredentialKind::AuthorizationCode,
        client_id: "client-redeem",
        issue: std::slice::from_ref(&bought),
        cap: None,
        grant: None,
    };
    store.credentials().redeem(&redemption, NOW).await.expect("redeem").expect("redeemed");
    grew("redeeming a code", &[Answer::Token], true);

    let burst = (0..16).map(|n| {
        let store = store.clone();
        tokio::spawn(async move { store.credentials().revoke(&format!("burst-{n}"), NOW).await })
    });
    for revoked in futures_util::future::join_all(burst).await {
        assert!(revoked.expect("task").expect("revoke"));
    }
    assert!(counts()[0] >= seen[0] + 16, "each revocation of a parallel burst is counted");
}

/// `find_live_tokens` answers exactly what `find_live_token` answers for each digest, for more
/// digests than one statement takes.
pub async fn credential_find_live_tokens_reads_many(store: Arc<dyn Store>) {
    let credentials = store.credentials();
    let user = seed_account(store.as_ref(), "acct-many").await;
    let live_grant =
        store.grants().upsert(&grant("grant-m", "acct-many", "client-m", "oauth2", "")).await;
    let live_grant = live_grant.expect("grant");
    let mut digests = Vec::new();
    for i in 0..1005 {
        digests.push(format!("many-{i:04}"));
    }
    for (i, ttl) in [(0, 3600), (999, 3600), (1000, 3600), (1004, 3600), (7, 1)] {
        let mut record = credential(&digests[i], CredentialKind::PushRegistration, NOW, ttl);
        record.account_id = Some(user.id.clone());
        record.grant_id = Some(live_grant.id.clone());
        seed_credential(store.as_ref(), &record).await;
    }
    credentials.revoke(&digests[1004], NOW).await.expect("revoke");
    // A row whose grant was revoked (not live), and a live row whose client is gone (read as such,
    // for the validator to refuse).
    let revoked_grant =
        store.grants().upsert(&grant("grant-r", "acct-many", "client-r", "oauth2", "")).await;
    let revoked_grant = revoked_grant.expect("grant");
    let mut under_revoked = credential(&digests[500], CredentialKind::PushRegistration, NOW, 3600);
    under_revoked.account_id = Some(user.id.clone());
    under_revoked.grant_id = Some(revoked_grant.id.clone());
    seed_credential(store.as_ref(), &under_revoked).await;
    store.grants().revoke(&revoked_grant.id, NOW).await.expect("revoke grant");
    let mut client_gone = credential(&digests[501], CredentialKind::AccessToken, NOW, 3600);
    client_gone.client_id = Some("client-never-registered".to_owned());
    seed_credential(store.as_ref(), &client_gone).await;
    let found = credentials.find_live_tokens(&digests, NOW + 2).await.expect("find many");
    let mut one_by_one = Vec::new();
    for digest in &digests {
        one_by_one.extend(credentials.find_live_token(digest, NOW + 2).await.expect("find one"));
    }
    let key = |it: &crate::LiveCredential| it.credential.digest.clone();
    let mut found_sorted = found.clone();
    found_sorted.sort_by_key(key);
    assert_eq!(found_sorted, one_by_one);
    let names: Vec<_> = found_sorted.iter().map(key).collect();
    assert_eq!(
        names,
        ["many-0000", "many-0501", "many-0999", "many-1000"],
        "expired, revoked and under a revoked grant are not live"
    );
    let by_name = |name: &str| found_sorted.iter().find(|it| it.credential.digest == name);
    assert!(!by_name("many-0501").expect("client gone").client_exists);
    assert!(
        ["many-0000", "many-0999", "many-1000"]
            .map(|name| by_name(name).expect("live"))
            .iter()
            .all(|it| it.account.as_ref() == Some(&user) && !it.grant_revoked)
    );
    assert!(credentials.find_live_tokens(&[], NOW).await.expect("none").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Sessions

pub async fn session_find_signed_in_reads_the_account(store: Arc<dyn Store>) {
    let sessions = store.sessions();
    let account = seed_account(store.as_ref(), "acct-1").await;
    let record = seed_session(store.as_ref(), "sess-1", "acct-1", NOW).await;
    assert_eq!(
        sessions.find_signed_in("sess-1-cookie", NOW + 1).await.expect("find"),
        Some((record.clone(), account.clone()))
    );
    assert_eq!(sessions.find_signed_in("unknown", NOW).await.expect("unknown"), None);
    assert_eq!(sessions.find_signed_in("sess-1-cookie", NOW + 3600).await.expect("expired"), None);
    sessions.revoke("sess-1", NOW + 2).await.expect("revoke");
    assert_eq!(sessions.find_signed_in("sess-1-cookie", NOW + 3).await.expect("revoked"), None);
}

pub async fn session_create_and_find_by_cookie(store: Arc<dyn Store>) {
    let sessions = store.sessions();
    seed_account(store.as_ref(), "acct-1").await;
    let mut record = session("sess-1", "acct-1", NOW);
    record.persistent = true;
    record.second_factor = true;
    let mut cookie_record = cookie("cookie-1", NOW);
    cookie_record.expires_at = Some(NOW + 1800);
    sessions.create(&record, &cookie_record).await.expect("create");

    assert_eq!(sessions.get("sess-1").await.expect("get"), Some(record.clone()));
    assert_eq!(
        sessions.find_by_cookie("cookie-1", NOW + 1).await.expect("find"),
        Some(record.clone())
    );
    let stored_cookie =
        store.credentials().find_live("cookie-1", NOW).await.expect("find").expect("live");
    assert_eq!(
        stored_cookie.session_id.as_deref(),
        Some("sess-1"),
        "the cookie belongs to its session"
    );
    assert_eq!(stored_cookie.kind, CredentialKind::Session);

    assert_eq!(
        sessions.find_by_cookie("cookie-1", NOW + 1800).await.expect("cookie expired"),
        None
    );
    assert_eq!(sessions.find_by_cookie("cookie-x", NOW).await.expect("unknown"), None);

    // A cookie outliving its session does not find it.
    let mut short = session("sess-short", "acct-1", NOW);
    short.expires_at = NOW + 10;
    sessions.create(&short, &cookie("cookie-short", NOW)).await.expect("create short");
    assert!(sessions.find_by_cookie("cookie-short", NOW + 9).await.expect("find").is_some());
    assert_eq!(
        sessions.find_by_cookie("cookie-short", NOW + 10).await.expect("session expired"),
        None
    );

    // A credential of another kind tied to the session is not a cookie.
    let mut pending = credential("pending-1", CredentialKind::PendingSignIn, NOW, 300);
    pending.session_id = Some("sess-1".to_owned());
    seed_credential(store.as_ref(), &pending).await;
    assert_eq!(sessions.find_by_cookie("pending-1", NOW).await.expect("wrong kind"), None);

    // A consumed or revoked cookie finds nothing.
    store.credentials().revoke("cookie-1", NOW + 2).await.expect("revoke cookie");
    assert_eq!(sessions.find_by_cookie("cookie-1", NOW + 3).await.expect("revoked cookie"), None);

    // The session and its cookie are created together or not at all.
    let dup = session("sess-1", "acct-1", NOW);
    assert!(matches!(
        sessions.create(&dup, &cookie("cookie-dup", NOW)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.credentials().find_live("cookie-dup", NOW).await.expect("find"),
        None,
        "no cookie without a session"
    );
    let fresh = session("sess-new", "acct-1", NOW);
    assert!(matches!(
        sessions.create(&fresh, &cookie("cookie-short", NOW)).await,
        Err(StoreError::Conflict("credential"))
    ));
    assert_eq!(sessions.get("sess-new").await.expect("get"), None, "no session without its cookie");
}

pub async fn session_rotate_cookie(store: Arc<dyn Store>) {
    let sessions = store.sessions();
    seed_account(store.as_ref(), "acct-1").await;
    let record = seed_session(store.as_ref(), "sess-1", "acct-1", NOW).await;

    assert!(
        sessions
            .rotate_cookie("sess-1-cookie", &cookie("cookie-2", NOW + 5), NOW + 5)
            .await
            .expect("rotate")
    );
    assert_eq!(
        sessions.find_by_cookie("sess-1-cookie", NOW + 6).await.expect("old"),
        None,
        "the old cookie is dead"
    );
    assert_eq!(
        sessions.find_by_cookie("cookie-2", NOW + 6).await.expect("new"),
        Some(record.clone())
    );
    let new_cookie =
        store.credentials().find_live("cookie-2", NOW + 6).await.expect("find").expect("live");
    assert_eq!(new_cookie.session_id.as_deref(), Some("sess-1"));

    assert!(
        !sessions
            .rotate_cookie("sess-1-cookie", &cookie("cookie-3", NOW + 7), NOW + 7)
            .await
            .expect("stale")
    );
    assert_eq!(
        store.credentials().find_live("cookie-3", NOW + 7).await.expect("find"),
        None,
        "nothing inserted"
    );
    assert!(
        !sessions
            .rotate_cookie("cookie-missing", &cookie("cookie-4", NOW + 7), NOW + 7)
            .await
            .expect("missing")
    );
    assert_eq!(store.credentials().find_live("cookie-4", NOW + 7).await.expect("find"), None);

    // An expired cookie cannot be rotated either (cookie-2 expires an hour after NOW + 5).
    assert!(
        !sessions
            .rotate_cookie("cookie-2", &cookie("cookie-5", NOW + 3605), NOW + 3605)
            .await
            .expect("expired")
    );
    assert_eq!(store.credentials().find_live("cookie-5", NOW + 3605).await.expect("find"), None);

    // Revoking the session reaches the rotated cookie.
    assert!(sessions.revoke("sess-1", NOW + 8).await.expect("revoke"));
    assert!(!is_live(store.as_ref(), "cookie-2", NOW + 8).await);
}

pub async fn session_rotate_cookie_race(store: Arc<dyn Store>) {
    seed_account(store.as_ref(), "acct-1").await;
    seed_session(store.as_ref(), "sess-1", "acct-1", NOW).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let new_cookie = cookie(&format!("rotated-{i}"), NOW + 1);
            store.sessions().rotate_cookie("sess-1-cookie", &new_cookie, NOW + 1).await
        }));
    }
    let mut rotated = 0;
    for task in tasks {
        if task.await.expect("task").expect("rotate") {
            rotated += 1;
        }
    }
    assert_eq!(rotated, 1, "one rotation wins");
    let live = store
        .credentials()
        .list_live_by_account("acct-1", CredentialKind::Session, NOW + 2)
        .await
        .expect("list");
    assert_eq!(live.len(), 1, "exactly one live cookie remains");
    assert!(live[0].digest.starts_with("rotated-"));
}

pub async fn session_touch_second_factor_and_get(store: Arc<dyn Store>) {
    let sessions = store.sessions();
    seed_account(store.as_ref(), "acct-1").await;
    let record = seed_session(store.as_ref(), "sess-1", "acct-1", NOW).await;
    assert!(!record.second_factor);

    sessions.touch("sess-1", NOW + 30).await.expect("touch");
    let touched = sessions.get("sess-1").await.expect("get").expect("exists");
    assert_eq!(touched.last_seen_at, NOW + 30);
    assert_eq!(touched.auth_time, NOW);

    sessions.set_second_factor("sess-1", NOW + 40).await.expect("second factor");
    let stepped_up = sessions.get("sess-1").await.expect("get").expect("exists");
    assert!(stepped_up.second_factor);
    assert_eq!(stepped_up.auth_time, NOW + 40, "checking the code is an authentication");
    assert_eq!(stepped_up.last_seen_at, NOW + 30);

    assert_eq!(sessions.get("sess-missing").await.expect("get"), None);
    assert!(matches!(sessions.touch("sess-missing", NOW).await, Err(StoreError::NotFound)));
    assert!(matches!(
        sessions.set_second_factor("sess-missing", NOW).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn session_revoke_kills_its_credentials(store: Arc<dyn Store>) {
    let sessions = store.sessions();
    seed_account(store.as_ref(), "acct-1").await;
    seed_session(store.as_ref(), "sess-1", "acct-1", NOW).await;
    seed_session(store.as_ref(), "sess-2", "acct-1", NOW).await;
    for (digest, session_id) in [("s1-token", "sess-1"), ("s2-token", "sess-2")] {
        let mut record = credential(digest, CredentialKind::ClientLoginSid, NOW, 3600);
        record.session_id = Some(session_id.to_owned());
        seed_credential(store.as_ref(), &record).await;
    }

    assert!(sessions.revoke("sess-1", NOW + 5).await.expect("revoke"));
    assert_eq!(
        sessions.get("sess-1").await.expect("get").expect("exists").revoked_at,
        Some(NOW + 5)
    );
    assert_eq!(sessions.find_by_cookie("sess-1-cookie", NOW + 6).await.expect("find"), None);
    assert!(!is_live(store.as_ref(), "sess-1-cookie", NOW + 6).await);
    assert!(!is_live(store.as_ref(), "s1-token", NOW + 6).await);
    assert!(sessions.find_by_cookie("sess-2-cookie", NOW + 6).await.expect("find").is_some());
    assert!(is_live(store.as_ref(), "s2-token", NOW + 6).await);

    assert!(!sessions.revoke("sess-1", NOW + 7).await.expect("again"), "a session is revoked once");
    assert_eq!(
        sessions.get("sess-1").await.expect("get").expect("exists").revoked_at,
        Some(NOW + 5)
    );
    assert!(!sessions.revoke("sess-missing", NOW).await.expect("missing"));
}

pub async fn session_revoke_all_for_account(store: Arc<dyn Store>) {
    let sessions = store.sessions();
    seed_account(store.as_ref(), "acct-1").await;
    seed_account(store.as_ref(), "acct-2").await;
    for id in ["a1", "a2", "a3"] {
        seed_session(store.as_ref(), id, "acct-1", NOW).await;
    }
    seed_session(store.as_ref(), "b1", "acct-2", NOW).await;
    assert!(sessions.revoke("a3", NOW + 1).await.expect("revoke one"));
    let mut extra = credential("a1-extra", CredentialKind::Ubertoken, NOW, 3600);
    extra.session_id = Some("a1".to_owned());
    seed_credential(store.as_ref(), &extra).await;

    assert_eq!(sessions.revoke_all_for_account("acct-1", NOW + 2).await.expect("revoke all"), 2);
    for digest in ["a1-cookie", "a2-cookie", "a3-cookie", "a1-extra"] {
        assert!(!is_live(store.as_ref(), digest, NOW + 3).await, "{digest} is dead");
    }
    assert_eq!(
        sessions.get("a3").await.expect("get").expect("exists").revoked_at,
        Some(NOW + 1),
        "kept its first revocation"
    );
    assert!(sessions.list_live_by_account("acct-1", NOW + 3).await.expect("list").is_empty());
    assert!(
        sessions.find_by_cookie("b1-cookie", NOW + 3).await.expect("find").is_some(),
        "other accounts keep theirs"
    );
    assert_eq!(sessions.count_live(NOW + 3).await.expect("count"), 1);
    assert_eq!(sessions.revoke_all_for_account("acct-1", NOW + 4).await.expect("again"), 0);
}

pub async fn session_list_live_and_count_live(store: Arc<dyn Store>) {
    let sessions = store.sessions();
    seed_account(store.as_ref(), "acct-1").await;
    seed_account(store.as_ref(), "acct-2").await;
    seed_session(store.as_ref(), "s-30", "acct-1", NOW + 30).await;
    seed_session(store.as_ref(), "s-10", "acct-1", NOW + 10).await;
    seed_session(store.as_ref(), "s-20", "acct-1", NOW + 20).await;
    let mut short = session("s-short", "acct-1", NOW);
    short.expires_at = NOW + 100;
    sessions.create(&short, &cookie("s-short-cookie", NOW)).await.expect("create");
    seed_session(store.as_ref(), "s-revoked", "acct-1", NOW + 5).await;
    sessions.revoke("s-revoked", NOW + 40).await.expect("revoke");
    seed_session(store.as_ref(), "s-other", "acct-2", NOW).await;

    let ids = |list: Vec<SessionRecord>| list.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(
        ids(sessions.list_live_by_account("acct-1", NOW + 50).await.expect("list")),
        ["s-short", "s-10", "s-20", "s-30"]
    );
    assert_eq!(
        ids(sessions.list_live_by_account("acct-1", NOW + 100).await.expect("list")),
        ["s-10", "s-20", "s-30"]
    );
    assert!(sessions.list_live_by_account("acct-none", NOW).await.expect("list").is_empty());
    assert_eq!(sessions.count_live(NOW + 50).await.expect("count"), 5);
    assert_eq!(sessions.count_live(NOW + 100).await.expect("count"), 4);
    // Every seeded session lasts an hour from its creation.
    assert_eq!(sessions.count_live(NOW + 3625).await.expect("count"), 1);
    assert_eq!(sessions.count_live(NOW + 4000).await.expect("count"), 0);
}

// ---------------------------------------------------------------------------------------------
// Keys, audit and counters

pub async fn keys_insert_list_and_state_changes(store: Arc<dyn Store>) {
    let keys = store.keys();
    assert!(keys.list().await.expect("list").is_empty());
    let key = |kid: &str, state: KeyState, created_at: Timestamp| KeyRecord {
        kid: kid.to_owned(),
        alg: "ES256".to_owned(),
        state,
        private_enc: format!("enc:{kid}"),
        public_der: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE".to_owned(),
        created_at,
        activated_at: None,
        retired_at: None,
    };
    let k2 = key("kid-2", KeyState::Next, NOW + 10);
    let mut k1 = key("kid-1", KeyState::Active, NOW);
    k1.activated_at = Some(NOW);
    keys.insert(&k2).await.expect("insert k2");
    keys.insert(&k1).await.expect("insert k1");
    assert_eq!(keys.list().await.expect("list"), [k1.clone(), k2.clone()], "oldest first");
    assert!(matches!(keys.insert(&k1).await, Err(StoreError::Conflict(_))));

    keys.set_state("kid-2", KeyState::Active, NOW + 20).await.expect("activate");
    keys.set_state("kid-1", KeyState::Retired, NOW + 20).await.expect("retire");
    let find =
        |list: Vec<KeyRecord>, kid: &str| list.into_iter().find(|k| k.kid == kid).expect("listed");
    let k2_now = find(keys.list().await.expect("list"), "kid-2");
    assert_eq!(k2_now.state, KeyState::Active);
    assert_eq!(k2_now.activated_at, Some(NOW + 20));
    assert_eq!(k2_now.retired_at, None);
    let k1_now = find(keys.list().await.expect("list"), "kid-1");
    assert_eq!(k1_now.state, KeyState::Retired);
    assert_eq!(k1_now.activated_at, Some(NOW));
    assert_eq!(k1_now.retired_at, Some(NOW + 20));

    keys.set_state("kid-1", KeyState::Revoked, NOW + 30).await.expect("revoke");
    let k1_now = find(keys.list().await.expect("list"), "kid-1");
    assert_eq!(k1_now.state, KeyState::Revoked);
    assert_eq!(k1_now.private_enc, "enc:kid-1");
    assert!(matches!(
        keys.set_state("kid-missing", KeyState::Active, NOW).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn audit_filters_newest_first(store: Arc<dyn Store>) {
    let audit = store.audit();
    let event = |id: &str, at: Timestamp, account: Option<&str>| AuditRecord {
        id: id.to_owned(),
        at,
        event: "signin.success".to_owned(),
        account_id: account.map(str::to_owned),
        actor: "self".to_owned(),
        ip: "198.51.100.7".to_owned(),
        detail: r#"{"method":"password"}"#.to_owned(),
    };
    let events = [
        event("ev-a10", NOW + 10, Some("acct-a")),
        event("ev-b15", NOW + 15, Some("acct-b")),
        event("ev-a20", NOW + 20, Some("acct-a")),
        event("ev-x22", NOW + 22, None),
        event("ev-b25", NOW + 25, Some("acct-b")),
        event("ev-a30", NOW + 30, Some("acct-a")),
    ];
    for e in &events {
        audit.append(e).await.expect("append");
    }
    assert!(matches!(audit.append(&events[0]).await, Err(StoreError::Conflict(_))));

    let ids = |list: Vec<AuditRecord>| list.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let list = |account: Option<&str>, since: Option<Timestamp>, limit: u32| AuditFilter {
        account_id: account.map(str::to_owned),
        since,
        limit,
    };
    assert_eq!(
        ids(audit.list(&list(None, None, 100)).await.expect("all")),
        ["ev-a30", "ev-b25", "ev-x22", "ev-a20", "ev-b15", "ev-a10"]
    );
    assert_eq!(
        ids(audit.list(&list(Some("acct-a"), None, 100)).await.expect("by account")),
        ["ev-a30", "ev-a20", "ev-a10"]
    );
    assert_eq!(
        ids(audit.list(&list(None, Some(NOW + 20), 100)).await.expect("since")),
        ["ev-a30", "ev-b25", "ev-x22", "ev-a20"]
    );
    assert_eq!(
        ids(audit.list(&list(Some("acct-a"), Some(NOW + 20), 100)).await.expect("both")),
        ["ev-a30", "ev-a20"]
    );
    assert_eq!(ids(audit.list(&list(None, None, 2)).await.expect("limit")), ["ev-a30", "ev-b25"]);
    assert_eq!(
        ids(audit.list(&list(Some("acct-b"), Some(NOW), 1)).await.expect("all three")),
        ["ev-b25"]
    );
    assert!(audit.list(&list(Some("acct-none"), None, 10)).await.expect("none").is_empty());
    assert!(audit.list(&list(None, Some(NOW + 31), 10)).await.expect("future").is_empty());
    let first = audit.list(&list(Some("acct-a"), None, 1)).await.expect("record").remove(0);
    assert_eq!(first, events[5], "every field round-trips");
}

pub async fn counters_fixed_windows(store: Arc<dyn Store>) {
    let counters = store.counters();
    assert_eq!(counters.peek("signin:ip", NOW).await.expect("peek unknown"), 0);
    assert_eq!(counters.hit("signin:ip", 60, NOW).await.expect("hit"), 1);
    assert_eq!(counters.hit("signin:ip", 60, NOW + 10).await.expect("hit"), 2);
    assert_eq!(counters.hit("signin:ip", 60, NOW + 59).await.expect("hit"), 3);
    assert_eq!(counters.peek("signin:ip", NOW + 59).await.expect("peek"), 3);
    assert_eq!(counters.peek("signin:ip", NOW + 60).await.expect("peek after window"), 0);
    assert_eq!(
        counters.hit("signin:ip", 60, NOW + 60).await.expect("new window"),
        1,
        "a new window starts at 1"
    );
    assert_eq!(counters.hit("signin:ip", 60, NOW + 61).await.expect("hit"), 2);
    assert_eq!(counters.peek("signin:ip", NOW + 119).await.expect("peek"), 2);
    assert_eq!(counters.peek("signin:ip", NOW + 120).await.expect("peek"), 0);

    assert_eq!(
        counters.hit("signin:account", 300, NOW).await.expect("other key"),
        1,
        "keys are independent"
    );
    assert_eq!(counters.peek("signin:ip", NOW + 61).await.expect("peek"), 2);

    counters.clear("signin:ip").await.expect("clear");
    assert_eq!(counters.peek("signin:ip", NOW + 61).await.expect("peek cleared"), 0);
    assert_eq!(counters.hit("signin:ip", 60, NOW + 62).await.expect("hit after clear"), 1);
    assert_eq!(counters.peek("signin:account", NOW + 1).await.expect("peek"), 1);
    counters.clear("never-hit").await.expect("clear unknown");
}

pub async fn counters_concurrent_hits(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move { store.counters().hit("burst", 60, NOW).await }));
    }
    let mut seen = BTreeSet::new();
    for task in tasks {
        seen.insert(task.await.expect("task").expect("hit"));
    }
    assert_eq!(seen, (1..=30).collect::<BTreeSet<u32>>(), "every hit sees its own count");
    assert_eq!(store.counters().peek("burst", NOW).await.expect("peek"), 30);
}

pub async fn counters_hit_many_answers_as_hits_in_order(store: Arc<dyn Store>) {
    let counters = store.counters();
    assert_eq!(counters.hit("a", 60, NOW).await.expect("hit"), 1);
    let hits = [("a".to_owned(), 3), ("b".to_owned(), 1), ("a".to_owned(), 1), ("c".to_owned(), 0)];
    let counts = counters.hit_many(&hits, 60, NOW + 1).await.expect("hit many");
    assert_eq!(counts, [4, 1, 5, 0]);
    assert!(counters.hit_many(&[], 60, NOW).await.expect("nothing").is_empty());
    // A window that has ended starts again at the amount added.
    let counts = counters.hit_many(&[("a".to_owned(), 2)], 60, NOW + 60).await.expect("hit");
    assert_eq!(counts, [2]);
    assert_eq!(counters.peek("b", NOW + 59).await.expect("peek"), 1);
    // A parallel burst of batches loses no addition.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let hits = [("burst".to_owned(), 2), ("burst".to_owned(), 1)];
                store.counters().hit_many(&hits, 60, NOW).await.expect("hit many")
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    for task in tasks {
        let counts = task.await.expect("task");
        assert_eq!(counts[1], counts[0] + 1, "one batch's additions are adjacent");
        seen.insert(counts[1]);
    }
    assert_eq!(seen, (1..=20).map(|i| i * 3).collect::<BTreeSet<u32>>());
}

pub async fn session_sweep_removes_dead_sessions_and_their_credentials(store: Arc<dyn Store>) {
    seed_account(store.as_ref(), "acct-sweep").await;
    // Three sessions expire at NOW + 3600; one is revoked at NOW + 10; one lives long.
    for i in 0..3 {
        seed_session(store.as_ref(), &format!("dead-{i}"), "acct-sweep", NOW).await;
    }
    seed_session(store.as_ref(), "revoked", "acct-sweep", NOW + 5000).await;
    store.sessions().revoke("revoked", NOW + 10).await.expect("revoke");
    let mut live = session("live", "acct-sweep", NOW);
    live.expires_at = NOW + 100_000;
    store.sessions().create(&live, &cookie("live-cookie", NOW)).await.expect("create live");
    let mut derived =
        credential("derived-from-dead-0", CredentialKind::ClientLoginSid, NOW, 50_000);
    derived.session_id = Some("dead-0".to_owned());
    derived.account_id = Some("acct-sweep".to_owned());
    seed_credential(store.as_ref(), &derived).await;

    let cutoff = NOW + 4000;
    assert_eq!(store.sessions().sweep(cutoff, 2).await.expect("sweep"), 2);
    assert_eq!(store.sessions().sweep(cutoff, 2).await.expect("sweep"), 2);
    assert_eq!(store.sessions().sweep(cutoff, 2).await.expect("sweep"), 0);
    for id in ["dead-0", "dead-1", "dead-2", "revoked"] {
        assert_eq!(store.sessions().get(id).await.expect("get"), None, "{id} swept");
    }
    assert!(
        store.credentials().find_live("derived-from-dead-0", NOW).await.expect("find").is_none()
    );
    assert!(store.sessions().get("live").await.expect("get").is_some());
    assert!(
        is_live(store.as_ref(), "live-cookie", NOW + 10).await,
        "the live session's cookie stays"
    );
}

pub async fn credential_and_session_bulk_inserts_are_all_or_none(store: Arc<dyn Store>) {
    seed_account(store.as_ref(), "acct-bulk").await;
    let batch: Vec<CredentialRecord> = (0..300)
        .map(|i| credential(&format!("bulk-{i:03}"), CredentialKind::AccessToken, NOW, 3600))
        .collect();
    store.credentials().insert_many(&batch).await.expect("insert many");
    assert_eq!(store.credentials().count().await.expect("count"), 300);
    // A batch with one duplicate inserts nothing.
    let clash = vec![
        credential("bulk-new", CredentialKind::AccessToken, NOW, 3600),
        credential("bulk-007", CredentialKind::AccessToken, NOW, 3600),
    ];
    assert!(matches!(
        store.credentials().insert_many(&clash).await,
        Err(StoreError::Conflict("credential"))
    ));
    assert!(!is_live(store.as_ref(), "bulk-new", NOW).await, "all or none");
    let sessions: Vec<(SessionRecord, CredentialRecord)> = (0..50)
        .map(|i| {
            (session(&format!("bulk-s-{i}"), "acct-bulk", NOW), cookie(&format!("bulk-c-{i}"), NOW))
        })
        .collect();
    store.sessions().create_many(&sessions).await.expect("create many");
    assert_eq!(store.sessions().count_live(NOW).await.expect("count live"), 50);
    let found =
        store.sessions().find_by_cookie("bulk-c-49", NOW).await.expect("find").expect("a session");
    assert_eq!(found.id, "bulk-s-49");
}

// ---------------------------------------------------------------------------------------------
// Caps, redemption, account-wide revocation

fn refresh_token(digest: &str, account: &str, client: &str, now: Timestamp) -> CredentialRecord {
    let mut record = CredentialRecord::new(digest.to_owned(), CredentialKind::RefreshToken, now);
    record.account_id = Some(account.to_owned());
    record.client_id = Some(client.to_owned());
    record
}

async fn live_digests(store: &dyn Store, account: &str, kind: CredentialKind) -> Vec<String> {
    let mut live: Vec<String> = store
        .credentials()
        .list_live_by_account(account, kind, NOW + 1)
        .await
        .expect("list")
        .into_iter()
        .map(|it| it.digest)
        .collect();
    live.sort();
    live
}

pub async fn credential_cap_keeps_the_newest_by_insertion(store: Arc<dyn Store>) {
    seed_account(store.as_ref(), "acct-1").await;
    // Twenty within one second, with digests whose order is the reverse of insertion: a tie broken
    // by digest would keep the wrong ones.
    for i in 0..20 {
        let digest = format!("rt-{:02}", 99 - i);
        let revoked = store
            .credentials()
            .insert_capped(&refresh_token(&digest, "acct-1", "client-a", NOW), 10)
            .await
            .expect("insert capped");
        assert_eq!(revoked, u64::from(i >= 10), "insert {i} revokes exactly the oldest");
    }
    seed_credential(store.as_ref(), &refresh_token("other-client", "acct-1", "client-b", NOW))
        .await;
    let live = live_digests(store.as_ref(), "acct-1", CredentialKind::RefreshToken).await;
    let mut expected: Vec<String> = (10..20).map(|i| format!("rt-{:02}", 99 - i)).collect();
    expected.push("other-client".to_owned());
    expected.sort();
    assert_eq!(live, expected, "the newest ten of client-a, and client-b's own");
}

pub async fn credential_cap_holds_under_concurrency(store: Arc<dyn Store>) {
    seed_account(store.as_ref(), "acct-1").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let record = refresh_token(&format!("burst-{i:02}"), "acct-1", "client-a", NOW);
            store.credentials().insert_capped(&record, 10).await.expect("insert capped")
        }));
    }
    let mut revoked = 0;
    for task in tasks {
        revoked += task.await.expect("task");
    }
    assert_eq!(revoked, 10);
    assert_eq!(
        live_digests(store.as_ref(), "acct-1", CredentialKind::RefreshToken).await.len(),
        10
    );
}

fn code_for(grant: Option<&str>) -> CredentialRecord {
    let mut code = credential("code-1", CredentialKind::AuthorizationCode, NOW, 600);
    code.account_id = Some("acct-1".to_owned());
    code.client_id = Some("client-a".to_owned());
    code.grant_id = grant.map(str::to_owned);
    code
}

pub async fn credential_redeem_is_all_or_nothing(store: Arc<dyn Store>) {
    seed_account(store.as_ref(), "acct-1").await;
    store
        .grants()
        .upsert(&grant("g-1", "acct-1", "client-a", "oauth2", "email"))
        .await
        .expect("grant");
    seed_credential(store.as_ref(), &code_for(Some("g-1"))).await;
    let mut access = credential("at-1", CredentialKind::AccessToken, NOW, 3600);
    access.account_id = Some("acct-1".to_owned());
    access.client_id = Some("client-a".to_owned());
    access.grant_id = Some("g-1".to_owned());
    let refresh = CredentialRecord {
        grant_id: Some("g-1".to_owned()),
        ..refresh_token("rt-1", "acct-1", "client-a", NOW)
    };
    let issue = [access.clone(), refresh.clone()];
    let redemption = |client_id| Redemption {
        digest: "code-1",
        kind: CredentialKind::AuthorizationCode,
        client_id,
        issue: &issue,
        cap: Some((CredentialKind::RefreshToken, 10)),
        grant: None,
    };
    // Another client's attempt consumes nothing and writes nothing.
    assert_eq!(
        store.credentials().redeem(&redemption("client-b"), NOW + 1).await.expect("redeem"),
        None
    );
    assert!(is_live(store.as_ref(), "code-1", NOW + 1).await, "the code survives a wrong client");
    assert!(!is_live(store.as_ref(), "at-1", NOW + 1).await);
    // An insert that fails (the second digest is stored already) takes the consumption with it.
    let stored = credential("at-stored", CredentialKind::AccessToken, NOW, 3600);
    seed_credential(store.as_ref(), &stored).await;
    let clashing = [access.clone(), stored];
    let failing = Redemption { issue: &clashing, ..redemption("client-a") };
    let failed = store.credentials().redeem(&failing, NOW + 1).await;
    assert!(matches!(failed, Err(StoreError::Conflict(_))), "{failed:?}");
    assert!(
        is_live(store.as_ref(), "code-1", NOW + 1).await,
        "the failed redemption spent nothing"
    );
    assert!(!is_live(store.as_ref(), "at-1", NOW + 1).await, "nor wrote the first of its rows");
    let won = store.credentials().redeem(&redemption("client-a"), NOW + 1).await.expect("redeem");
    assert_eq!(won.map(|it| it.consumed.digest), Some("code-1".to_owned()));
    assert!(is_live(store.as_ref(), "at-1", NOW + 2).await);
    assert!(is_live(store.as_ref(), "rt-1", NOW + 2).await);
    // Spent: nothing more is written (a duplicate digest would fail the statement otherwise).
    assert_eq!(
        store.credentials().redeem(&redemption("client-a"), NOW + 2).await.expect("redeem"),
        None
    );
    // A code whose grant was revoked is not consumed.
    let mut second = code_for(Some("g-1"));
    second.digest = "code-2".to_owned();
    seed_credential(store.as_ref(), &second).await;
    store.grants().revoke("g-1", NOW + 3).await.expect("revoke grant");
    let mut after = code_for(Some("g-1"));
    after.digest = "code-3".to_owned();
    seed_credential(store.as_ref(), &after).await;
    let none: [CredentialRecord; 0] = [];
    let attempt = Redemption {
        digest: "code-3",
        kind: CredentialKind::AuthorizationCode,
        client_id: "client-a",
        issue: &none,
        cap: None,
        grant: None,
    };
    assert_eq!(store.credentials().redeem(&attempt, NOW + 4).await.expect("redeem"), None);
    assert!(is_live(store.as_ref(), "code-3", NOW + 4).await, "refused without being consumed");
}

pub async fn credential_redeem_race_has_one_winner(store: Arc<dyn Store>) {
    seed_account(store.as_ref(), "acct-1").await;
    seed_credential(store.as_ref(), &code_for(None)).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let mut access =
                credential(&format!("race-at-{i}"), CredentialKind::AccessToken, NOW, 60);
            access.client_id = Some("client-a".to_owned());
            let issue = [access];
            let redemption = Redemption {
                digest: "code-1",
                kind: CredentialKind::AuthorizationCode,
                client_id: "client-a",
                issue: &issue,
                cap: None,
                grant: None,
            };
            barrier.wait().await;
            store.credentials().redeem(&redemption, NOW + 1).await.expect("redeem").is_some()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.expect("task"));
    }
    assert_eq!(winners, 1);
    let mut issued = 0;
    for i in 0..20 {
        issued += usize::from(is_live(store.as_ref(), &format!("race-at-{i}"), NOW + 2).await);
    }
    assert_eq!(issued, 1, "only the winner's tokens were written");
}

/// A legacy token `digest` of `acct-1` issued to `client-legacy`, and the access token a
/// migration buys with it, naming the grant `grant_id` to `client-a`.
fn migration_of(
    digest: &str,
    grant_id: &str,
    access: &str,
) -> (CredentialRecord, CredentialRecord) {
    let mut legacy = credential(digest, CredentialKind::AuthsubSession, NOW, 3600);
    legacy.account_id = Some("acct-1".to_owned());
    legacy.client_id = Some("client-legacy".to_owned());
    let mut issued = credential(access, CredentialKind::AccessToken, NOW, 3600);
    issued.account_id = Some("acct-1".to_owned());
    issued.client_id = Some("client-a".to_owned());
    issued.grant_id = Some(grant_id.to_owned());
    (legacy, issued)
}

fn migration<'a>(
    legacy: &'a CredentialRecord,
    issue: &'a [CredentialRecord],
    grant: &'a GrantRecord,
) -> Redemption<'a> {
    Redemption {
        digest: &legacy.digest,
        kind: legacy.kind,
        client_id: "client-legacy",
        issue,
        cap: None,
        grant: Some(grant),
    }
}

async fn live_grants(store: &dyn Store, account: &str) -> Vec<GrantRecord> {
    let grants = store.grants().list_by_account(account).await.expect("list grants");
    grants.into_iter().filter(|it| it.revoked_at.is_none()).collect()
}

pub async fn credential_redeem_gives_its_grant_only_when_consumed(store: Arc<dyn Store>) {
    seed_account(store.as_ref(), "acct-1").await;
    let (legacy, issued) = migration_of("legacy-1", "g-new", "at-new");
    seed_credential(store.as_ref(), &legacy).await;
    let given = grant("g-new", "acct-1", "client-a", "oauth2", "email profile");
    let issue = [issued];
    // A wrong client consumes nothing, so no grant is given and nothing is written.
    let wrong = Redemption { client_id: "client-b", ..migration(&legacy, &issue, &given) };
    assert_eq!(store.credentials().redeem(&wrong, NOW + 1).await.expect("redeem"), None);
    assert!(
        live_grants(store.as_ref(), "acct-1").await.is_empty(),
        "no grant without a redemption"
    );
    assert!(store.grants().get("g-new").await.expect("get").is_none());

    let won = store
        .credentials()
        .redeem(&migration(&legacy, &issue, &given), NOW + 1)
        .await
        .expect("redeem")
        .expect("consumed");
    assert_eq!(won.consumed.digest, "legacy-1");
    let stored = won.grant.expect("the grant it gave");
    assert_eq!(stored.id, "g-new");
    assert_eq!(stored.scopes, "email profile");
    let live = live_grants(store.as_ref(), "acct-1").await;
    assert_eq!(live.iter().map(|it| it.id.as_str()).collect::<Vec<_>>(), ["g-new"]);
    let token = store.credentials().find_live("at-new", NOW + 2).await.expect("find");
    assert_eq!(token.and_then(|it| it.grant_id), Some("g-new".to_owned()));

    // Spent: a second redemption gives nothing either (the same grant would be widened).
    let (_, again) = migration_of("legacy-1", "g-again", "at-again");
    let issue = [again];
    let given = grant("g-again", "acct-1", "client-a", "oauth2", "calendar");
    let replay = store.credentials().redeem(&migration(&legacy, &issue, &given), NOW + 2).await;
    assert_eq!(replay.expect("redeem"), None);
    let live = live_grants(store.as_ref(), "acct-1").await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].scopes, "email profile", "a refused redemption widens nothing");
    assert!(!is_live(store.as_ref(), "at-again", NOW + 2).await);
}

pub async fn credential_redeem_widens_a_live_grant_and_names_it(store: Arc<dyn Store>) {
    seed_account(store.as_ref(), "acct-1").await;
    let held = store
        .grants()
        .upsert(&grant("g-held", "acct-1", "client-a", "oauth2", "openid"))
        .await
        .expect("grant");
    let (legacy, issued) = migration_of("legacy-1", "g-asked", "at-1");
    seed_credential(store.as_ref(), &legacy).await;
    let mut refresh = refresh_token("rt-1", "acct-1", "client-a", NOW);
    refresh.grant_id = Some("g-asked".to_owned());
    let issue = [issued, refresh];
    let asked = grant("g-asked", "acct-1", "client-a", "oauth2", "email");
    let won = store
        .credentials()
        .redeem(&migration(&legacy, &issue, &asked), NOW + 1)
        .await
        .expect("redeem")
        .expect("consumed");
    let stored = won.grant.expect("the grant");
    assert_eq!(stored.id, held.id, "the live grant is widened, not doubled");
    assert_eq!(stored.scopes, "email openid");
    assert!(store.grants().get("g-asked").await.expect("get").is_none());
    for digest in ["at-1", "rt-1"] {
        let token = store.credentials().find_live(digest, NOW + 2).await.expect("find");
        let named = token.and_then(|it| it.grant_id);
        assert_eq!(named.as_deref(), Some("g-held"), "{digest} names the grant as stored");
    }
    // Revoking the grant as stored reaches what the redemption issued.
    store.grants().revoke("g-held", NOW + 3).await.expect("revoke");
    assert!(!is_live(store.as_ref(), "at-1", NOW + 4).await);
    assert!(!is_live(store.as_ref(), "rt-1", NOW + 4).await);
}

pub async fn credential_redeem_race_gives_one_grant(store: Arc<dyn Store>) {
    seed_account(store.as_ref(), "acct-1").await;
    let (legacy, _) = migration_of("legacy-1", "unused", "unused");
    seed_credential(store.as_ref(), &legacy).await;
    let contenders = 20;
    let barrier = Arc::new(tokio::sync::Barrier::new(contenders));
    let mut tasks = Vec::new();
    for i in 0..contenders {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        let legacy = legacy.clone();
        tasks.push(tokio::spawn(async move {
            let grant_id = format!("g-{i}");
            let (_, issued) = migration_of("legacy-1", &grant_id, &format!("at-{i}"));
            let issue = [issued];
            let given = grant(&grant_id, "acct-1", "client-a", "oauth2", &format!("scope-{i}"));
            barrier.wait().await;
            let redemption = migration(&legacy, &issue, &given);
            store.credentials().redeem(&redemption, NOW + 1).await.expect("redeem").is_some()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.expect("task"));
    }
    assert_eq!(winners, 1);
    let live = live_grants(store.as_ref(), "acct-1").await;
    assert_eq!(live.len(), 1, "one grant, the winner's");
    let all = store.grants().list_by_account("acct-1").await.expect("list");
    assert_eq!(all.len(), 1, "the losers left no grant, not even a revoked one");
    let winner = live[0].id.strip_prefix("g-").expect("a contender's id");
    assert_eq!(live[0].scopes, format!("scope-{winner}"), "only the winner's scopes");
    let mut issued = 0;
    for i in 0..contenders {
        issued += usize::from(is_live(store.as_ref(), &format!("at-{i}"), NOW + 2).await);
    }
    assert_eq!(issued, 1);
}

pub async fn credential_revoke_by_account_kinds(store: Arc<dyn Store>) {
    seed_account(store.as_ref(), "acct-1").await;
    seed_account(store.as_ref(), "acct-2").await;
    let of = |digest: &str, kind, account: &str| {
        let mut record = CredentialRecord::new(digest.to_owned(), kind, NOW);
        record.account_id = Some(account.to_owned());
        record
    };
    seed_credential(store.as_ref(), &of("asp", CredentialKind::AppPassword, "acct-1")).await;
    seed_credential(store.as_ref(), &of("sid", CredentialKind::ClientLoginSid, "acct-1")).await;
    seed_credential(store.as_ref(), &of("rt", CredentialKind::RefreshToken, "acct-1")).await;
    seed_credential(store.as_ref(), &of("asp-2", CredentialKind::AppPassword, "acct-2")).await;
    let revoked = store
        .credentials()
        .revoke_by_account(
            "acct-1",
            &[CredentialKind::AppPassword, CredentialKind::ClientLoginSid],
            NOW + 1,
        )
        .await
        .expect("revoke by account");
    assert_eq!(revoked, 2);
    assert!(!is_live(store.as_ref(), "asp", NOW + 2).await);
    assert!(!is_live(store.as_ref(), "sid", NOW + 2).await);
    assert!(is_live(store.as_ref(), "rt", NOW + 2).await);
    assert!(is_live(store.as_ref(), "asp-2", NOW + 2).await);
}

pub async fn session_reauthenticated_moves_auth_time_forward(store: Arc<dyn Store>) {
    seed_account(store.as_ref(), "acct-1").await;
    seed_session(store.as_ref(), "s-1", "acct-1", NOW).await;
    store.sessions().reauthenticated("s-1", NOW + 100).await.expect("reauthenticated");
    let session = store.sessions().get("s-1").await.expect("get").expect("exists");
    assert_eq!(session.auth_time, NOW + 100);
    store.sessions().reauthenticated("s-1", NOW + 50).await.expect("older is ignored");
    let session = store.sessions().get("s-1").await.expect("get").expect("exists");
    assert_eq!(session.auth_time, NOW + 100);
}

/// A move to `data`, keeping the account and grant, not consuming.
fn to_state(data: &str) -> CredentialTransition {
    CredentialTransition { data: data.to_owned(), account_id: None, grant_id: None, consume: false }
}

pub async fn credential_transition_moves_the_state_once(store: Arc<dyn Store>) {
    let credentials = store.credentials();
    seed_account(store.as_ref(), "acct-device").await;
    store
        .grants()
        .upsert(&grant("grant-device", "acct-device", "tv", "oauth2", "email"))
        .await
        .expect("grant");
    let mut device = credential("device-1", CredentialKind::DeviceCode, NOW, 600);
    device.client_id = Some("tv".to_owned());
    device.data = r#"{"state":"pending"}"#.to_owned();
    seed_credential(store.as_ref(), &device).await;
    let approve = CredentialTransition {
        data: r#"{"state":"approved"}"#.to_owned(),
        account_id: Some("acct-device".to_owned()),
        grant_id: Some("grant-device".to_owned()),
        consume: false,
    };

    // Another state, another kind, an unknown digest: nothing moves.
    for (digest, kind, from) in [
        ("device-1", CredentialKind::DeviceCode, r#"{"state":"denied"}"#),
        ("device-1", CredentialKind::AuthorizationCode, r#"{"state":"pending"}"#),
        ("missing", CredentialKind::DeviceCode, r#"{"state":"pending"}"#),
    ] {
        let moved = credentials.transition(digest, kind, from, &approve, NOW + 1).await;
        assert_eq!(moved.expect("transition"), None, "{digest} {kind:?} {from}");
    }
    assert_eq!(credentials.get("device-1").await.expect("get"), Some(device.clone()));

    let approved = credentials
        .transition("device-1", CredentialKind::DeviceCode, &device.data, &approve, NOW + 1)
        .await
        .expect("approve")
        .expect("moved");
    let mut expected = device.clone();
    expected.data = approve.data.clone();
    expected.account_id = Some("acct-device".to_owned());
    expected.grant_id = Some("grant-device".to_owned());
    assert_eq!(approved, expected);
    assert!(is_live(store.as_ref(), "device-1", NOW + 1).await, "still live after a move");
    assert_eq!(
        credentials
            .transition("device-1", CredentialKind::DeviceCode, &device.data, &approve, NOW + 2)
            .await
            .expect("again"),
        None,
        "the state it moved from is gone"
    );

    // The final move keeps the account and grant and consumes the credential.
    let redeem = CredentialTransition { consume: true, ..to_state(r#"{"state":"redeemed"}"#) };
    let redeemed = credentials
        .transition("device-1", CredentialKind::DeviceCode, &approve.data, &redeem, NOW + 3)
        .await
        .expect("redeem")
        .expect("moved");
    expected.data = redeem.data.clone();
    expected.consumed_at = Some(NOW + 3);
    assert_eq!(redeemed, expected);
    assert!(!is_live(store.as_ref(), "device-1", NOW + 3).await);
    assert_eq!(
        credentials
            .transition("device-1", CredentialKind::DeviceCode, &redeem.data, &approve, NOW + 4)
            .await
            .expect("after consumption"),
        None,
        "a consumed credential does not move"
    );
    // Expired and revoked credentials do not move either.
    let mut late = credential("device-2", CredentialKind::DeviceCode, NOW, 60);
    late.data = "pending".to_owned();
    seed_credential(store.as_ref(), &late).await;
    let moved = credentials
        .transition("device-2", CredentialKind::DeviceCode, "pending", &to_state("x"), NOW + 60)
        .await;
    assert_eq!(moved.expect("expired"), None);
    assert!(credentials.revoke("device-2", NOW + 1).await.expect("revoke"));
    let moved = credentials
        .transition("device-2", CredentialKind::DeviceCode, "pending", &to_state("x"), NOW + 2)
        .await;
    assert_eq!(moved.expect("revoked"), None);
}

/// Fifty concurrent moves out of one state, each to a state of its own: one wins, and the row
/// holds the winner's state.
pub async fn credential_transition_race_50(store: Arc<dyn Store>) {
    let mut device = credential("race-device", CredentialKind::DeviceCode, NOW, 600);
    device.data = "pending".to_owned();
    seed_credential(store.as_ref(), &device).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let to = to_state(&format!("decided-{i}"));
            store
                .credentials()
                .transition("race-device", CredentialKind::DeviceCode, "pending", &to, NOW + 1)
                .await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(moved) = task.await.expect("task").expect("transition") {
            winners.push(moved);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one of 50 moves wins");
    let now = store.credentials().get("race-device").await.expect("get").expect("row");
    assert_eq!(now.data, winners[0].data);
}

// ---------------------------------------------------------------------------------------------
// Server state

pub async fn heartbeat_writes_and_kek_check_is_set_once(store: Arc<dyn Store>) {
    store.heartbeat(NOW).await.expect("first heartbeat");
    store.heartbeat(NOW + 1).await.expect("heartbeat over the previous one");
    assert_eq!(store.kek_check().await.expect("read"), None);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.init_kek_check(&format!("v1.check-{i}"), NOW).await.expect("init")
        }));
    }
    let mut stored = BTreeSet::new();
    for task in tasks {
        stored.insert(task.await.expect("task"));
    }
    assert_eq!(stored.len(), 1, "every contender sees the one value that was stored: {stored:?}");
    let winner = stored.into_iter().next().expect("one value");
    assert!(winner.starts_with("v1.check-"), "{winner}");
    assert_eq!(store.kek_check().await.expect("read").as_deref(), Some(winner.as_str()));
    assert_eq!(store.init_kek_check("v1.other", NOW + 5).await.expect("init again"), winner);
}

const PUSH_LIMITS: PushLimits = PushLimits { max_collapse_keys: 4, max_non_collapsible: 100 };

/// A message of `sender-1` for `registration`, stored at [`NOW`] for 100 seconds.
pub fn push_message(id: &str, registration: &str, collapse_key: Option<&str>) -> PushMessageRecord {
    PushMessageRecord {
        id: id.to_owned(),
        registration: registration.to_owned(),
        sender: "sender-1".to_owned(),
        kind: PushMessageKind::Message,
        collapse_key: collapse_key.map(str::to_owned),
        payload: format!("{{\"n\":\"{id}\"}}"),
        delay_while_idle: false,
        total_deleted: 0,
        created_at: NOW,
        expires_at: NOW + 100,
    }
}

async fn pending_ids(store: &dyn Store, registration: &str, now: Timestamp) -> Vec<String> {
    let pending = store.push().pending(registration, now, 1000).await.expect("pending");
    pending.into_iter().map(|it| it.id).collect()
}

pub async fn push_collapse_key_replaces_and_keys_are_capped(store: Arc<dyn Store>) {
    let push = store.push();
    let enqueue = |id: &'static str, key: Option<&'static str>| {
        let message = push_message(id, "reg-a", key);
        async move { push.enqueue(&message, PUSH_LIMITS, NOW).await.expect("enqueue") }
    };
    assert_eq!(enqueue("m1", Some("score")).await, Enqueued::Stored { replaced: 0 });
    assert_eq!(enqueue("m2", Some("score")).await, Enqueued::Stored { replaced: 1 });
    assert_eq!(enqueue("m3", None).await, Enqueued::Stored { replaced: 0 });
    assert_eq!(pending_ids(store.as_ref(), "reg-a", NOW).await, ["m2", "m3"]);
    for (id, key) in [("k2", "b"), ("k3", "c"), ("k4", "d")] {
        assert_eq!(enqueue(id, Some(key)).await, Enqueued::Stored { replaced: 0 });
    }
    // A fifth key drops the oldest key's message ("score").
    assert_eq!(enqueue("k5", Some("e")).await, Enqueued::Stored { replaced: 1 });
    assert_eq!(pending_ids(store.as_ref(), "reg-a", NOW).await, ["m3", "k2", "k3", "k4", "k5"]);
    assert!(pending_ids(store.as_ref(), "reg-b", NOW).await.is_empty());
}

pub async fn push_overflow_leaves_one_notice(store: Arc<dyn Store>) {
    let push = store.push();
    push.enqueue(&push_message("c", "reg-a", Some("k")), PUSH_LIMITS, NOW).await.expect("enqueue");
    for i in 0..100 {
        let got = push
            .enqueue(&push_message(&format!("m{i}"), "reg-a", None), PUSH_LIMITS, NOW)
            .await
            .expect("enqueue");
        assert_eq!(got, Enqueued::Stored { replaced: 0 });
    }
    let got = push.enqueue(&push_message("m100", "reg-a", None), PUSH_LIMITS, NOW).await;
    assert_eq!(got.expect("enqueue"), Enqueued::Overflowed { total_deleted: 102 });
    let pending = push.pending("reg-a", NOW, 1000).await.expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].kind, PushMessageKind::DeletedMessages);
    assert_eq!(pending[0].id, "m100");
    assert_eq!(pending[0].total_deleted, 102);
    // Later messages wait behind the notice; another overflow adds to its count.
    for i in 0..100 {
        push.enqueue(&push_message(&format!("n{i}"), "reg-a", None), PUSH_LIMITS, NOW)
            .await
            .expect("enqueue");
    }
    let got = push.enqueue(&push_message("n100", "reg-a", None), PUSH_LIMITS, NOW).await;
    assert_eq!(got.expect("enqueue"), Enqueued::Overflowed { total_deleted: 203 });
    assert_eq!(pending_ids(store.as_ref(), "reg-a", NOW).await, ["n100"]);
}

pub async fn push_pending_ack_clear_and_expiry(store: Arc<dyn Store>) {
    let push = store.push();
    let mut short = push_message("short", "reg-a", None);
    short.expires_at = NOW + 10;
    push.enqueue(&short, PUSH_LIMITS, NOW).await.expect("enqueue");
    push.enqueue(&push_message("long", "reg-a", None), PUSH_LIMITS, NOW).await.expect("enqueue");
    push.enqueue(&push_message("other", "reg-b", None), PUSH_LIMITS, NOW).await.expect("enqueue");
    let pending = push.pending("reg-a", NOW, 10).await.expect("pending");
    assert_eq!(pending[0], short);
    assert_eq!(pending_ids(store.as_ref(), "reg-a", NOW + 10).await, ["long"]);
    assert_eq!(push.pending("reg-a", NOW, 1).await.expect("pending").len(), 1);
    assert!(!push.ack("reg-b", "long").await.expect("ack"), "another registration's message");
    assert!(push.ack("reg-a", "long").await.expect("ack"));
    assert!(!push.ack("reg-a", "long").await.expect("ack"), "acknowledged once");
    assert_eq!(push.sweep(NOW + 11, 10).await.expect("sweep"), 1);
    assert!(pending_ids(store.as_ref(), "reg-a", NOW).await.is_empty());
    assert_eq!(push.clear("reg-b").await.expect("clear"), 1);
    assert!(pending_ids(store.as_ref(), "reg-b", NOW).await.is_empty());
}

pub async fn push_enqueue_burst_keeps_the_cap(store: Arc<dyn Store>) {
    let limits = PushLimits { max_collapse_keys: 4, max_non_collapsible: 5 };
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = (i % 3 == 0).then(|| format!("k{}", i % 9));
                let mut message = push_message(&format!("m{i}"), "reg-a", None);
                message.collapse_key = key;
                store.push().enqueue(&message, limits, NOW).await.expect("enqueue")
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let pending = store.push().pending("reg-a", NOW, 1000).await.expect("pending");
    let keys: BTreeSet<_> = pending.iter().filter_map(|it| it.collapse_key.clone()).collect();
    let keyed = pending.iter().filter(|it| it.collapse_key.is_some()).count();
    assert!(keys.len() <= 4 && keyed == keys.len(), "one message per key, at most four keys");
    let plain = pending
        .iter()
        .filter(|it| it.collapse_key.is_none() && it.kind == PushMessageKind::Message)
        .count();
    assert!(plain <= 5, "{plain} non-collapsible messages stored");
}

pub async fn push_enqueue_many_answers_as_one_at_a_time(store: Arc<dyn Store>) {
    let limits = PushLimits { max_collapse_keys: 2, max_non_collapsible: 3 };
    // The same sequence, one at a time on `reg-a` and in one batch on `reg-b`.
    let sequence = |registration: &str| -> Vec<PushMessageRecord> {
        let mut out = Vec::new();
        for (i, key) in [None, Some("x"), None, Some("x"), Some("y"), Some("z"), None, None, None]
            .into_iter()
            .enumerate()
        {
            let mut message = push_message(&format!("{registration}-{i}"), registration, None);
            message.collapse_key = key.map(str::to_owned);
            out.push(message);
        }
        let mut expired = push_message(&format!("{registration}-expired"), registration, None);
        expired.expires_at = NOW;
        out.insert(0, expired);
        out
    };
    let mut alone = Vec::new();
    for message in sequence("reg-a") {
        // The expired message is stored at NOW - 1, then dropped by the next enqueue.
        let now = if message.id.ends_with("expired") { NOW - 1 } else { NOW };
        alone.push(store.push().enqueue(&message, limits, now).await.expect("enqueue"));
    }
    let mut first = sequence("reg-b");
    let rest = first.split_off(1);
    store.push().enqueue_many(&first, limits, NOW - 1).await.expect("enqueue the first");
    let mut together = vec![alone[0]];
    together.extend(store.push().enqueue_many(&rest, limits, NOW).await.expect("enqueue many"));
    assert_eq!(alone, together);
    assert!(
        together.iter().any(|it| matches!(it, Enqueued::Overflowed { .. })),
        "the sequence goes over the limit: {together:?}"
    );
    let strip = |ids: Vec<String>| -> Vec<String> {
        ids.into_iter()
            .map(|it| it.rsplit_once('-').map(|(_, i)| i.to_owned()).unwrap_or(it))
            .collect()
    };
    assert_eq!(
        strip(pending_ids(store.as_ref(), "reg-a", NOW).await),
        strip(pending_ids(store.as_ref(), "reg-b", NOW).await)
    );
    // Many registrations in one batch, each under its own limits: more registrations and more
    // messages than one statement takes, and the fourth message of each over its limit.
    let batch: Vec<PushMessageRecord> = (0..2400)
        .map(|i| push_message(&format!("many-{i}"), &format!("reg-many-{}", i % 600), None))
        .collect();
    let done = store.push().enqueue_many(&batch, limits, NOW).await.expect("enqueue many");
    assert!(done[..1800].iter().all(|it| *it == Enqueued::Stored { replaced: 0 }));
    assert!(done[1800..].iter().all(|it| *it == Enqueued::Overflowed { total_deleted: 4 }));
    assert_eq!(pending_ids(store.as_ref(), "reg-many-7", NOW).await, ["many-1807"]);
    assert_eq!(
        pending_ids(store.as_ref(), "reg-many-599", NOW).await,
        ["many-2399"],
        "the overflow notice keeps the id of the message that overflowed"
    );
    assert!(store.push().enqueue_many(&[], limits, NOW).await.expect("nothing").is_empty());
}

pub async fn push_enqueue_many_bursts_keep_the_cap(store: Arc<dyn Store>) {
    // Parallel batches naming overlapping registrations, in different orders: none waits on
    // another forever, and each registration keeps its limit.
    let limits = PushLimits { max_collapse_keys: 4, max_non_collapsible: 5 };
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut batch: Vec<PushMessageRecord> = (0..6)
                    .map(|r| push_message(&format!("b{i}-{r}"), &format!("reg-{r}"), None))
                    .collect();
                if i % 2 == 1 {
                    batch.reverse();
                }
                store.push().enqueue_many(&batch, limits, NOW).await.expect("enqueue many")
            })
        })
        .collect();
    let mut overflowed = 0;
    for task in tasks {
        let done = task.await.expect("task");
        overflowed += done.iter().filter(|it| matches!(it, Enqueued::Overflowed { .. })).count();
    }
    for r in 0..6 {
        let pending = store.push().pending(&format!("reg-{r}"), NOW, 1000).await.expect("pending");
        let plain = pending.iter().filter(|it| it.kind == PushMessageKind::Message).count();
        assert!(plain <= 5, "reg-{r}: {plain} non-collapsible messages stored");
    }
    // 12 messages each: the sixth overflows (one notice), then five more fit, the twelfth overflows.
    assert_eq!(overflowed, 12, "two overflows per registration");
}

fn subscription(project_id: &str, topic: &str, registration: &str) -> PushTopicRecord {
    PushTopicRecord {
        project_id: project_id.to_owned(),
        topic: topic.to_owned(),
        registration: registration.to_owned(),
        sealed_id: format!("sealed-{registration}"),
        created_at: NOW,
    }
}

async fn subscribed(store: &dyn Store, project_id: &str, topic: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut after = String::new();
    loop {
        let page = store.push().subscribers(project_id, topic, &after, 2).await.expect("page");
        let Some(last) = page.last() else { break };
        after = last.registration.clone();
        found.extend(page.into_iter().map(|it| it.registration));
    }
    found
}

pub async fn push_topics_subscribe_page_and_unsubscribe(store: Arc<dyn Store>) {
    let push = store.push();
    for registration in ["reg-c", "reg-a", "reg-e", "reg-b", "reg-d"] {
        let added = push.subscribe(&subscription("p1", "news", registration), 10).await;
        assert_eq!(added.expect("subscribe"), Subscribed::Added);
    }
    let again = push.subscribe(&subscription("p1", "news", "reg-a"), 10).await;
    assert_eq!(again.expect("subscribe"), Subscribed::Already);
    push.subscribe(&subscription("p2", "news", "reg-a"), 10).await.expect("other project");
    push.subscribe(&subscription("p1", "sport", "reg-a"), 10).await.expect("other topic");
    assert_eq!(
        subscribed(store.as_ref(), "p1", "news").await,
        ["reg-a", "reg-b", "reg-c", "reg-d", "reg-e"],
        "every subscriber once, in pages, in digest order"
    );
    let page = push.subscribers("p1", "news", "", 1).await.expect("page");
    assert_eq!(page, [subscription("p1", "news", "reg-a")]);
    assert_eq!(subscribed(store.as_ref(), "p2", "news").await, ["reg-a"]);
    assert!(subscribed(store.as_ref(), "p3", "news").await.is_empty());

    assert!(push.unsubscribe("p1", "news", "reg-c").await.expect("unsubscribe"));
    assert!(!push.unsubscribe("p1", "news", "reg-c").await.expect("unsubscribe"), "once");
    assert_eq!(push.unsubscribe_all("reg-a").await.expect("all"), 3);
    assert_eq!(subscribed(store.as_ref(), "p1", "news").await, ["reg-b", "reg-d", "reg-e"]);
    assert!(subscribed(store.as_ref(), "p1", "sport").await.is_empty());
    // The cap counts the registration's topics in every project.
    push.subscribe(&subscription("p2", "t1", "reg-b"), 3).await.expect("subscribe");
    let third = push.subscribe(&subscription("p1", "t2", "reg-b"), 3).await.expect("subscribe");
    assert_eq!(third, Subscribed::Added);
    let fourth = push.subscribe(&subscription("p1", "t3", "reg-b"), 3).await.expect("subscribe");
    assert_eq!(fourth, Subscribed::TooMany);
    let again = push.subscribe(&subscription("p1", "news", "reg-b"), 3).await.expect("again");
    assert_eq!(again, Subscribed::Already, "a repeat at the cap is no error");
}

pub async fn push_topics_burst_keeps_the_cap(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let topic = format!("t{}", i % 12);
                store.push().subscribe(&subscription("p1", &topic, "reg-a"), 5).await.expect("sub")
            })
        })
        .collect();
    let mut added = 0;
    for task in tasks {
        if task.await.expect("task") == Subscribed::Added {
            added += 1;
        }
    }
    assert_eq!(added, 5, "exactly the cap");
    let mut topics = 0;
    for i in 0..12 {
        topics += subscribed(store.as_ref(), "p1", &format!("t{i}")).await.len();
    }
    assert_eq!(topics, 5);
}

fn domain_grant(id: &str, domain: &str, client_id: &str, scopes: &str) -> DomainGrantRecord {
    DomainGrantRecord {
        id: id.to_owned(),
        domain: domain.to_owned(),
        client_id: client_id.to_owned(),
        scopes: scopes.to_owned(),
        granted_by: "acct-admin".to_owned(),
        created_at: NOW,
        revoked_at: None,
    }
}

pub async fn domain_grant_upsert_find_list_revoke(store: Arc<dyn Store>) {
    let grants = store.grants();
    let first = grants
        .upsert_domain(&domain_grant("dg-1", "corp.example", "app.example", "b a a"))
        .await
        .expect("insert");
    assert_eq!((first.id.as_str(), first.scopes.as_str()), ("dg-1", "a b"));
    // Authorizing again replaces the scopes of the live row.
    let mut again = domain_grant("dg-2", "corp.example", "app.example", "c");
    again.created_at = NOW + 5;
    let replaced = grants.upsert_domain(&again).await.expect("replace");
    assert_eq!((replaced.id.as_str(), replaced.scopes.as_str()), ("dg-1", "c"));
    assert_eq!(replaced.created_at, NOW + 5);
    grants
        .upsert_domain(&domain_grant("dg-3", "other.example", "app.example", "a"))
        .await
        .expect("other domain");
    let live = grants.find_live_domain("corp.example", "app.example").await.expect("find");
    assert_eq!(live.map(|it| it.id), Some("dg-1".to_owned()));
    assert!(grants.find_live_domain("corp.example", "nobody").await.expect("none").is_none());

    assert!(grants.revoke_domain("corp.example", "app.example", NOW + 9).await.expect("revoke"));
    assert!(!grants.revoke_domain("corp.example", "app.example", NOW + 9).await.expect("twice"));
    assert!(grants.find_live_domain("corp.example", "app.example").await.expect("gone").is_none());
    // A new authorization after the revocation is a new row; the old one stays listed.
    grants
        .upsert_domain(&domain_grant("dg-4", "corp.example", "app.example", "d"))
        .await
        .expect("new");
    let listed = grants.list_domain(Some("corp.example")).await.expect("list");
    let ids: Vec<_> = listed.iter().map(|it| (it.id.as_str(), it.revoked_at)).collect();
    assert_eq!(ids, [("dg-4", None), ("dg-1", Some(NOW + 9))]);
    assert_eq!(grants.list_domain(None).await.expect("all").len(), 3);
}

pub async fn domain_grant_concurrent_upserts_keep_one_live(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let grant = domain_grant(&format!("dg-{i}"), "corp.example", "app.example", "a");
            store.grants().upsert_domain(&grant).await.expect("upsert")
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("join").id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every upsert answers the one live row");
    assert_eq!(store.grants().list_domain(Some("corp.example")).await.expect("list").len(), 1);
}

fn deprecation(
    protocol: &str,
    client_id: &str,
    warn: Option<i64>,
    refuse: Option<i64>,
) -> DeprecationRecord {
    DeprecationRecord {
        protocol: protocol.to_owned(),
        client_id: client_id.to_owned(),
        warn_from: warn,
        refuse_from: refuse,
        updated_at: NOW,
    }
}

pub async fn legacy_deprecations_set_replace_list_and_clear(store: Arc<dyn Store>) {
    let legacy = store.legacy();
    assert!(legacy.get_deprecation("authsub", "app.example").await.expect("get").is_none());
    legacy
        .set_deprecation(&deprecation("authsub", "app.example", Some(NOW), None))
        .await
        .expect("set");
    legacy
        .set_deprecation(&deprecation("authsub", "app.example", Some(NOW + 1), Some(NOW + 2)))
        .await
        .expect("replace");
    legacy
        .set_deprecation(&deprecation("clientlogin", "Tool-1.0", None, Some(NOW + 3)))
        .await
        .expect("set");
    legacy.set_deprecation(&deprecation("authsub", "b.example", None, None)).await.expect("set");
    assert_eq!(
        legacy.get_deprecation("authsub", "app.example").await.expect("get"),
        Some(deprecation("authsub", "app.example", Some(NOW + 1), Some(NOW + 2)))
    );
    assert!(
        legacy.get_deprecation("oauth1", "app.example").await.expect("other protocol").is_none()
    );
    let listed: Vec<(String, String)> = legacy
        .list_deprecations()
        .await
        .expect("list")
        .into_iter()
        .map(|it| (it.protocol, it.client_id))
        .collect();
    let expected =
        [("authsub", "app.example"), ("authsub", "b.example"), ("clientlogin", "Tool-1.0")];
    assert_eq!(listed, expected.map(|(p, c)| (p.to_owned(), c.to_owned())));
    assert!(legacy.clear_deprecation("authsub", "app.example").await.expect("clear"));
    assert!(!legacy.clear_deprecation("authsub", "app.example").await.expect("twice"));
    assert!(legacy.get_deprecation("authsub", "app.example").await.expect("get").is_none());
    assert_eq!(legacy.list_deprecations().await.expect("list").len(), 2);
}

pub async fn legacy_request_counts_add_up_under_concurrency(store: Arc<dyn Store>) {
    let day = NOW / 86_400;
    let count = |protocol: &str, client_id: &str, day: i64, requests: u64| RequestCount {
        protocol: protocol.to_owned(),
        client_id: client_id.to_owned(),
        day,
        requests,
    };
    store.legacy().add_requests(&[]).await.expect("nothing to add");
    store.legacy().add_requests(&[count("oauth1", "old.example", day - 40, 7)]).await.expect("old");
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let store = store.clone();
        let batch = vec![
            count("clientlogin", "Tool-1.0", day, i + 1),
            count("authsub", "app.example", day - 1, 1),
        ];
        tasks.push(tokio::spawn(async move { store.legacy().add_requests(&batch).await }));
    }
    for task in tasks {
        task.await.expect("join").expect("add");
    }
    let mut counts = store.legacy().request_counts(day - 30).await.expect("counts");
    counts.sort_by(|a, b| {
        (&a.protocol, &a.client_id, a.day).cmp(&(&b.protocol, &b.client_id, b.day))
    });
    assert_eq!(
        counts,
        [count("authsub", "app.example", day - 1, 16), count("clientlogin", "Tool-1.0", day, 136)],
        "every concurrent batch is added, none lost; rows before the day asked are left out"
    );
    assert_eq!(store.legacy().request_counts(day - 40).await.expect("all").len(), 3);
}
