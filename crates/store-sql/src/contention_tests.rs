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
