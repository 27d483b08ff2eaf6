//! PostgreSQL plans of the statements that reach credentials through a key, on a table that was
//! never analyzed: each must go through its key's index, never scan the live or unrevoked rows.
//!
//! Runs when `TESSERA_TEST_DATABASE_URL` names a server, in a database of its own that it drops
//! afterwards. Autovacuum is switched off for the credentials table, so the planner has no
//! statistics whatever the server's settings, as on a server without autovacuum.

use std::hash::{BuildHasher, RandomState};

use sqlx::{AssertSqlSafe, Connection, Row};
use tessera_store::{CredentialKind, CredentialRecord, CredentialStore};

use crate::credentials::{
    CONSUME, FIND_LIVE, FIND_LIVE_TOKEN, REDEEM, REVOKE_BY_GRANT, REVOKE_BY_SESSION,
};
use crate::sessions::{FIND_SIGNED_IN, REVOKE_BY_ACCOUNT_SESSIONS, REVOKE_COOKIE};
use crate::{ConnectOptions, SqlStore};

/// Live credentials in the table: enough that reading all of them is visible in a plan's cost.
const ROWS: usize = 5000;

/// Indexes that serve the listing and the sweep, never a look-up by key.
const WRONG_PATHS: [&str; 3] =
    ["credentials_account_kind_live_idx", "credentials_revoked_idx", "Seq Scan on credentials"];

/// Each statement, arguments for `EXECUTE` (the planner infers the parameter types), and the
/// index it must use.
const STATEMENTS: [(&str, &str, &str, &str); 9] = [
    ("find_live", FIND_LIVE, "('d-1', 5)", "credentials_pkey"),
    ("find_live_token", FIND_LIVE_TOKEN, "('d-1', 5)", "credentials_pkey"),
    ("consume", CONSUME, "('d-1', 'authorization_code', 5)", "credentials_pkey"),
    ("redeem", REDEEM, "('d-1', 'authorization_code', 5, 'c-1')", "credentials_pkey"),
    ("find_signed_in", FIND_SIGNED_IN, "('d-1', 'session', 5)", "credentials_pkey"),
    ("rotate_cookie", REVOKE_COOKIE, "('d-1', 'session', 5)", "credentials_pkey"),
    ("revoke_by_grant", REVOKE_BY_GRANT, "('g-1', 5)", "credentials_grant_idx"),
    ("revoke_by_session", REVOKE_BY_SESSION, "('s-1', 5)", "credentials_session_idx"),
    ("revoke_all_for_account", REVOKE_BY_ACCOUNT_SESSIONS, "('a-1', 5)", "credentials_session_idx"),
];

#[tokio::test]
async fn key_lookups_use_the_key_without_statistics() {
    in_a_database_of_its_own("tessera_plans", check_plans).await;
}

#[tokio::test]
async fn batch_lookups_use_their_indexes_in_the_servers_sessions() {
    in_a_database_of_its_own("tessera_batch_plans", check_batch_plans).await;
}

/// Runs `check` on the URL of a fresh database, and drops the database afterwards.
pub(crate) async fn in_a_database_of_its_own<F>(prefix: &str, check: fn(String) -> F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let Ok(admin_url) = std::env::var("TESSERA_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: PostgreSQL check in {prefix}_… (TESSERA_TEST_DATABASE_URL unset)");
        return;
    };
    let name = format!("{prefix}_{:016x}", RandomState::new().hash_one(std::process::id()));
    let mut url = url::Url::parse(&admin_url).expect("valid database URL");
    url.set_path(&format!("/{name}"));
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("connect to the server");
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");

    let outcome = tokio::spawn(check(url.to_string())).await;

    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&mut admin)
        .await
        .expect("drop database");
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

async fn check_plans(url: String) {
    let store = SqlStore::connect(&url, &ConnectOptions::default()).await.expect("connect");
    store.migrate().await.expect("migrate");
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("a connection");
    sqlx::raw_sql("ALTER TABLE credentials SET (autovacuum_enabled = false)")
        .execute(&mut conn)
        .await
        .expect("switch autovacuum off for credentials");
    insert_live(&store, ROWS, CredentialKind::AccessToken).await;

    let mut failures = Vec::new();
    for (what, sql, args, index) in STATEMENTS {
        for mode in ["force_custom_plan", "force_generic_plan"] {
            let script = format!(
                "SET plan_cache_mode = {mode}; PREPARE checked AS {sql}; \
                 EXPLAIN EXECUTE checked {args}; DEALLOCATE checked"
            );
            let plan: Vec<String> = sqlx::raw_sql(AssertSqlSafe(script))
                .fetch_all(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"))
                .iter()
                .filter_map(|row| row.try_get::<String, _>(0).ok())
                .collect();
            let plan = plan.join("\n");
            if !plan.contains(index) || WRONG_PATHS.iter().any(|wrong| plan.contains(wrong)) {
                failures.push(format!("{what} ({mode}) does not go through {index}:\n{plan}"));
            }
        }
    }
    drop(conn);
    store.close().await;
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Binds a checked statement's values.
type Bind = fn(crate::db::Query) -> crate::db::Query;

/// Credentials and push messages in the batch check: the sizes at which PostgreSQL, with the
/// default page costs and fresh statistics, read a 500-digest batch by scanning the whole table.
const BATCH_CREDENTIALS: usize = 20_000;
const BATCH_MESSAGES: usize = 42_000;

/// The statements that read a multicast's recipients, planned by a session of the server's own
/// pool (its settings) without statistics and then with fresh ones: each must go through its
/// index, with no scan of the table and no parallel workers.
async fn check_batch_plans(url: String) {
    let store = SqlStore::connect(&url, &ConnectOptions::default()).await.expect("connect");
    store.migrate().await.expect("migrate");
    insert_live(&store, BATCH_CREDENTIALS, CredentialKind::PushRegistration).await;
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("a connection");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "ALTER TABLE credentials SET (autovacuum_enabled = false); \
         ALTER TABLE push_messages SET (autovacuum_enabled = false); \
         INSERT INTO push_messages (id, registration, sender, kind, payload, delay_while_idle, \
         created_at, expires_at) SELECT 'm-' || i, 'r-' || (i % 10000), 's', 'message', 'p', 0, \
         1000, 1000000 FROM generate_series(1, {BATCH_MESSAGES}) AS i"
    )))
    .execute(&mut conn)
    .await
    .expect("messages");

    // `EXPLAIN` of a statement with its values bound, in a session of the server's pool.
    let explain = |sql: &str, bind: Bind| {
        let query = bind(crate::db::query_built(format!("EXPLAIN {sql}")));
        let read = store.read.clone();
        async move {
            let rows = query.fetch_all(&read).await.expect("explain");
            rows.iter()
                .map(|row| row.try_get::<String>("QUERY PLAN").expect("plan line"))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    // Digests `$1, $3, …` around the time `$2`; the survey's time `$1`, registrations after it;
    // 256 acknowledgements; one registration's messages, acknowledged and read on connect.
    let find_live_tokens = crate::credentials::find_live_tokens_sql(500, crate::Backend::Postgres);
    let digests = |query: crate::db::Query| {
        (1..500).fold(query.bind("d-0").bind(5), |query, i| query.bind(format!("d-{}", i * 37)))
    };
    let survey = crate::push::survey_sql(500, crate::Backend::Postgres);
    let registrations = |query: crate::db::Query| {
        (0..500).fold(query.bind(5), |query, i| query.bind(format!("r-{}", i * 19)))
    };
    let ack_many = crate::push::ack_many_sql(256);
    let acks = |query: crate::db::Query| {
        (0..256).fold(query, |query, i| {
            query.bind(format!("r-{}", i * 19)).bind(format!("m-{}", i * 19))
        })
    };
    let ack = |query: crate::db::Query| query.bind("r-19").bind("m-19");
    let pending = |query: crate::db::Query| query.bind("r-19").bind(5).bind(100);
    let statements: [(&str, &str, Bind, &str); 5] = [
        ("find_live_tokens", &find_live_tokens, digests, "credentials_pkey"),
        ("push survey", &survey, registrations, "push_messages_pkey"),
        ("push acks", &ack_many, acks, "push_messages_pkey"),
        ("push ack", crate::push::ACK, ack, "push_messages_pkey"),
        ("push pending", crate::push::PENDING, pending, "push_messages_pkey"),
    ];
    let mut checks = Vec::new();
    // Without statistics first (never analyzed, as with autovacuum off), then with fresh ones.
    for statistics in ["without statistics", "with fresh statistics"] {
        if statistics == "with fresh statistics" {
            sqlx::raw_sql("ANALYZE credentials; ANALYZE push_messages")
                .execute(&mut conn)
                .await
                .expect("statistics");
        }
        for (what, sql, bind, index) in &statements {
            checks.push((*what, statistics, explain(sql, *bind).await, *index));
        }
    }
    drop(conn);
    // The server's sessions compile no statement (`jit = off`): a plan estimated high without
    // statistics would otherwise be compiled on every run.
    let jit = crate::db::query_built("SHOW jit".to_owned())
        .fetch_all(&store.read)
        .await
        .expect("show jit");
    let jit: String = jit[0].try_get("jit").expect("jit");
    store.close().await;
    for (what, statistics, plan, index) in checks {
        assert!(
            plan.contains(index) && !plan.contains("Seq Scan") && !plan.contains("Gather"),
            "{what} ({statistics}) does not go through {index} alone:\n{plan}"
        );
    }
    assert_eq!(jit, "off");
}

/// Inserts `n` live credentials of `kind`, digests `d-0`, `d-1`, ….
async fn insert_live(store: &SqlStore, n: usize, kind: CredentialKind) {
    let rows: Vec<CredentialRecord> = (0..n)
        .map(|i| {
            let mut row = CredentialRecord::new(format!("d-{i}"), kind, 1_000);
            row.expires_at = Some(1_000_000);
            row
        })
        .collect();
    store.insert_many(&rows).await.expect("insert credentials");
}
