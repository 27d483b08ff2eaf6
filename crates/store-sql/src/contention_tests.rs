//! PostgreSQL: issuance for one account and client does not queue behind another issuance's
//! commit. An authorization that finds the grant covering its scopes leaves the grant's row
//! unlocked, and the refresh-token cap is enforced after the issuing transaction commits, so an
//! issuance in flight holds nothing another for the same account and client needs. Nor does it
//! hold up the grant's revocation: what it writes then names a revoked grant.
//!
//! Runs when `TESSERA_TEST_DATABASE_URL` names a server, in a database of its own.

use std::time::Duration;

use tessera_store::testsuite::{NOW, credential, grant, seed_account, seed_credential};
use tessera_store::{CredentialKind, CredentialRecord, GrantRecord, Redemption, Store};

use crate::credentials::insert_credentials;
use crate::{Backend, ConnectOptions, SqlStore};

/// Long enough for any machine to finish an issuance, short enough that a test that would wait
/// forever fails instead.
const HELD_UP: Duration = Duration::from_secs(60);

#[tokio::test]
async fn an_issuance_in_flight_holds_up_no_other_for_the_same_account_and_client() {
    crate::plans_tests::in_a_database_of_its_own("tessera_contention", issue_beside_one_in_flight)
        .await;
}

/// A credential of `kind` issued under `granted` to its account and client.
fn issued(digest: &str, kind: CredentialKind, granted: &GrantRecord) -> CredentialRecord {
    let mut record = credential(digest, kind, NOW, 600);
    record.account_id = Some(granted.account_id.clone());
    record.client_id = Some(granted.client_id.clone());
    record.grant_id = Some(granted.id.clone());
    record
}

async fn issue_beside_one_in_flight(url: String) {
    let store = SqlStore::connect(&url, &ConnectOptions::default()).await.expect("connect");
    store.migrate().await.expect("migrate");
    seed_account(&store, "acct-1").await;
    let granted = grant("g-1", "acct-1", "client-a", "oauth2", "email openid");
    let granted = store.grants().upsert(&granted).await.expect("grant");
    seed_credential(&store, &issued("code-2", CredentialKind::AuthorizationCode, &granted)).await;

    // In flight: an authorization that asked for scopes the grant covers, and an issuance that
    // wrote its refresh token, neither committed.
    let mut in_flight = store.begin("redeem credential").await.expect("begin");
    let asked =
        GrantRecord { id: "g-asked".to_owned(), scopes: "email".to_owned(), ..granted.clone() };
    let stored = crate::grants::upsert_in(&mut in_flight, &asked).await.expect("upsert in flight");
    assert_eq!(stored.id, granted.id, "the live grant covers the scopes asked");
    let written = issued("rt-in-flight", CredentialKind::RefreshToken, &granted);
    insert_credentials(&mut in_flight, Backend::Postgres, &[&written]).await.expect("insert");

    // Meanwhile the same account and client authorize and redeem a code, refresh tokens capped.
    let beside = async {
        let stored = store.grants().upsert(&asked).await.expect("upsert beside");
        let issue = [issued("rt-beside", CredentialKind::RefreshToken, &stored)];
        let redemption = Redemption {
            digest: "code-2",
            kind: CredentialKind::AuthorizationCode,
            client_id: "client-a",
            issue: &issue,
            cap: Some((CredentialKind::RefreshToken, 1)),
            grant: None,
        };
        store.credentials().redeem(&redemption, NOW + 1).await.expect("redeem beside")
    };
    let redeemed = tokio::time::timeout(HELD_UP, beside)
        .await
        .expect("an issuance in flight held up another for the same account and client");
    assert!(redeemed.is_some(), "the code was redeemed");

    // The grant is revoked while the issuance is still in flight: its unlocked read of the grant
    // did not stop that, and what it wrote names a revoked grant, which the validator refuses.
    assert!(store.grants().revoke(&granted.id, NOW + 2).await.expect("revoke"), "revoked");
    in_flight.commit().await.expect("commit in flight");
    let live = store
        .credentials()
        .find_live_token("rt-in-flight", NOW + 3)
        .await
        .expect("find")
        .expect("the row is there");
    assert!(live.grant_revoked, "a token written under a grant revoked meanwhile is refused");
    store.close().await;
}

/// PostgreSQL: push multicasts in flight take no room in the server's shared lock table. Each
/// enqueue locks its registrations' rows in `push_queues`; with an advisory lock a registration,
/// a dozen multicasts of 1000 filled the table (room for about 64 locks a connection) and every
/// transaction on the server failed with "out of shared memory".
#[tokio::test]
async fn push_multicasts_in_flight_take_no_room_in_the_lock_table() {
    crate::plans_tests::in_a_database_of_its_own("tessera_push_locks", multicasts_in_flight).await;
}

/// Multicasts in flight at once, and the registrations of its own each names.
const MULTICASTS: usize = 16;
const RECIPIENTS: usize = 1000;

async fn multicasts_in_flight(url: String) {
    use sqlx::Connection as _;
    use tessera_store::testsuite::push_message;
    use tessera_store::{Enqueued, PushLimits, PushMessageRecord};

    let options = ConnectOptions { max_connections: 20, ..ConnectOptions::default() };
    let store = SqlStore::connect(&url, &options).await.expect("connect");
    store.migrate().await.expect("migrate");
    let message = |id: String, registration: &str| push_message(&id, registration, None);
    let limits = PushLimits { max_collapse_keys: 4, max_non_collapsible: 100 };
    // Every multicast also names `zzz-shared`, last in lock order, whose row is locked elsewhere:
    // each stops there holding the locks of its own 1000.
    let shared = "zzz-shared";
    store.push().enqueue_many(&[message("m-0".into(), shared)], limits, NOW).await.expect("row");
    let mut holder = sqlx::PgConnection::connect(&url).await.expect("a connection");
    let mut held = holder.begin().await.expect("begin");
    sqlx::query("SELECT registration FROM push_queues WHERE registration = $1 FOR UPDATE")
        .bind(shared)
        .fetch_one(&mut *held)
        .await
        .expect("hold the shared registration's row");
    let tasks: Vec<_> = (0..MULTICASTS)
        .map(|m| {
            let mut batch: Vec<PushMessageRecord> = (0..RECIPIENTS)
                .map(|r| message(format!("m{m}-{r}"), &format!("reg-{m}-{r}")))
                .collect();
            batch.push(message(format!("m{m}-shared"), shared));
            let store = store.clone();
            tokio::spawn(async move { store.push().enqueue_many(&batch, limits, NOW).await })
        })
        .collect();

    let mut watcher = sqlx::PgConnection::connect(&url).await.expect("a connection");
    let waiting = async {
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut watcher)
            .await
            .expect("waiting sessions");
            if waiting == MULTICASTS as i64 {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(HELD_UP, waiting).await.expect("every multicast waits on the shared row");
    // Entries in the shared lock table (relation locks taken the fast way are not there): a
    // transaction id, the row it waits on, a few relations; never one a registration. Only this
    // database's sessions are counted: `pg_locks` shows the whole server's, and tests running
    // beside this one (a migration holds a lock per table it creates) are not under test.
    let most: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM pg_locks \
         WHERE NOT fastpath AND pid IN (SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database()) GROUP BY pid) AS held",
    )
    .fetch_one(&mut watcher)
    .await
    .expect("held locks");
    assert!(most <= 8, "{most} entries in the shared lock table for one session");

    held.commit().await.expect("release the shared registration");
    for task in tasks {
        let done = tokio::time::timeout(HELD_UP, task).await.expect("enqueued").expect("task");
        let done = done.expect("enqueue many");
        assert_eq!(done.len(), RECIPIENTS + 1);
        assert!(done.iter().all(|it| matches!(it, Enqueued::Stored { replaced: 0 })));
    }
    let pending = |registration: String| {
        let store = store.clone();
        async move { store.push().pending(&registration, NOW, 1000).await.expect("pending").len() }
    };
    assert_eq!(pending("reg-0-0".to_owned()).await, 1);
    assert_eq!(pending(format!("reg-{}-{}", MULTICASTS - 1, RECIPIENTS - 1)).await, 1);
    assert_eq!(
        pending(shared.to_owned()).await,
        MULTICASTS + 1,
        "every multicast's, and the first"
    );

    // A registration's lock row goes when it unregisters, or when the sweep finds it empty.
    let rows = |registration: &'static str| {
        let url = url.clone();
        async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("a connection");
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM push_queues WHERE registration = $1")
                    .bind(registration)
                    .fetch_one(&mut conn)
                    .await
                    .expect("count");
            n
        }
    };
    assert_eq!(store.push().clear("reg-0-0").await.expect("clear"), 1);
    assert_eq!(rows("reg-0-0").await, 0, "unregistered");
    assert!(store.push().ack("reg-0-1", "m0-1").await.expect("ack"));
    assert_eq!(rows("reg-0-1").await, 1, "kept until the sweep");
    assert_eq!(store.push().sweep(NOW, 100).await.expect("sweep"), 0, "nothing expired");
    assert_eq!(rows("reg-0-1").await, 0, "holds nothing");
    assert_eq!(rows("reg-0-2").await, 1, "holds a message");
    store.close().await;
}
