//! Grants: race-safe upserts that widen scopes, and revocation that reaches every derived credential.

use std::collections::BTreeSet;

use crate::db::{self, Row, Tables};
use async_trait::async_trait;
use tessera_store::{DomainGrantRecord, GrantRecord, GrantStore, Result, StoreError, Timestamp};

use crate::error::{backend, insert};
use crate::{SqlStore, get};

macro_rules! grant_columns {
    () => {
        "id, account_id, client_id, protocol, scopes, created_at, last_used_at, revoked_at"
    };
}

macro_rules! domain_grant_columns {
    () => {
        "id, domain, client_id, scopes, granted_by, created_at, revoked_at"
    };
}

fn domain_grant_from_row(row: &Row) -> Result<DomainGrantRecord> {
    Ok(DomainGrantRecord {
        id: get(row, "id")?,
        domain: get(row, "domain")?,
        client_id: get(row, "client_id")?,
        scopes: get(row, "scopes")?,
        granted_by: get(row, "granted_by")?,
        created_at: get(row, "created_at")?,
        revoked_at: get(row, "revoked_at")?,
    })
}

/// How many times an upsert starts over after losing a race to a concurrent writer.
const UPSERT_ATTEMPTS: usize = 8;

/// The sorted, de-duplicated, space-separated union of scope lists.
fn scope_union<'a>(lists: impl IntoIterator<Item = &'a str>) -> String {
    let scopes: BTreeSet<&str> = lists.into_iter().flat_map(str::split_whitespace).collect();
    scopes.into_iter().collect::<Vec<_>>().join(" ")
}

fn grant_from_row(row: &Row) -> Result<GrantRecord> {
    Ok(GrantRecord {
        id: get(row, "id")?,
        account_id: get(row, "account_id")?,
        client_id: get(row, "client_id")?,
        protocol: get(row, "protocol")?,
        scopes: get(row, "scopes")?,
        created_at: get(row, "created_at")?,
        last_used_at: get(row, "last_used_at")?,
        revoked_at: get(row, "revoked_at")?,
    })
}

/// What one upsert attempt achieved.
enum Attempt {
    Done(GrantRecord),
    /// A concurrent writer revoked the live grant between two statements.
    Raced,
}

/// Upserts `grant` in an open transaction (its own, or a redemption's): inserts it, or widens the
/// live grant of the same account, client and protocol. Returns the grant as stored.
pub(crate) async fn upsert_in(tx: &mut db::Tx, grant: &GrantRecord) -> Result<GrantRecord> {
    // An attempt that raced changed nothing (its insert found the live grant, its update found
    // it gone), so the next attempt runs in the same transaction and sees the revocation.
    for _ in 0..UPSERT_ATTEMPTS {
        if let Attempt::Done(stored) = upsert_once(tx, grant).await? {
            return Ok(stored);
        }
    }
    Err(StoreError::Backend("upsert grant: gave up after repeated concurrent changes".to_owned()))
}

/// The live grant of an account, client and protocol (`$1`, `$2`, `$3`).
const SELECT_LIVE: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM grants WHERE account_id = $1 AND client_id = $2 AND protocol = $3 \
     AND revoked_at IS NULL"
);

/// [`SELECT_LIVE`], locking the row: a no-op update takes the row lock on PostgreSQL (the SQLite
/// transaction holds the database write lock already).
const LOCK_LIVE: &str = concat!(
    "UPDATE grants SET scopes = scopes \
     WHERE account_id = $1 AND client_id = $2 AND protocol = $3 AND revoked_at IS NULL \
     RETURNING ",
    grant_columns!()
);

/// Runs [`SELECT_LIVE`] or [`LOCK_LIVE`] for `grant`'s account, client and protocol.
async fn live_by_key(
    tx: &mut db::Tx,
    grant: &GrantRecord,
    sql: &'static str,
) -> Result<Option<GrantRecord>> {
    let rows = db::query(sql)
        .bind(grant.account_id.as_str())
        .bind(grant.client_id.as_str())
        .bind(grant.protocol.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(backend("upsert grant"))?;
    rows.first().map(grant_from_row).transpose()
}

/// One upsert attempt. The insert relies on the partial unique index `grants_live_key`: when a
/// live grant exists it inserts nothing, and the live grant is then locked, read and widened.
async fn upsert_once(tx: &mut db::Tx, grant: &GrantRecord) -> Result<Attempt> {
    const OP: &str = "upsert grant";
    let inserted = db::query(concat!(
        "INSERT INTO grants (",
        grant_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (account_id, client_id, protocol) WHERE revoked_at IS NULL DO NOTHING \
         RETURNING ",
        grant_columns!()
    ))
    // A plain insert changes no row, but a new grant changes what an account's list of grants
    // answers (kept for an authorization's remembered consent).
    .touching(Tables::GRANTS)
    .bind(grant.id.as_str())
    .bind(grant.account_id.as_str())
    .bind(grant.client_id.as_str())
    .bind(grant.protocol.as_str())
    .bind(scope_union([grant.scopes.as_str()]))
    .bind(grant.created_at)
    .bind(grant.last_used_at)
    .bind(grant.revoked_at)
    .fetch_all(&mut *tx)
    .await
    .map_err(insert(OP))?;
    if let Some(row) = inserted.first() {
        return Ok(Attempt::Done(grant_from_row(row)?));
    }

    // A live grant that covers the scopes already is used as it stands, unlocked: nothing is
    // written, so no widening can be lost, and redemptions of one account and client do not queue
    // behind each other's commits on its row lock (PostgreSQL). Should it be revoked before this
    // transaction commits, what names it is refused by the validator, which judges the grant.
    let live = live_by_key(tx, grant, SELECT_LIVE).await?;
    if let Some(live) = live
        && scope_union([live.scopes.as_str(), grant.scopes.as_str()]) == live.scopes
    {
        return Ok(Attempt::Done(live));
    }

    // Widening: lock the live grant and read it as it now stands, so that no concurrent widening
    // is lost.
    let live = live_by_key(tx, grant, LOCK_LIVE).await?;
    let Some(live) = live else {
        // The live grant was revoked between the two statements: start over.
        return Ok(Attempt::Raced);
    };

    let scopes = scope_union([live.scopes.as_str(), grant.scopes.as_str()]);
    if scopes == live.scopes {
        return Ok(Attempt::Done(live));
    }
    let updated = db::query(concat!(
        "UPDATE grants SET scopes = $2 WHERE id = $1 RETURNING ",
        grant_columns!()
    ))
    .bind(live.id.as_str())
    .bind(scopes)
    .fetch_all(&mut *tx)
    .await
    .map_err(backend(OP))?;
    let stored = updated
        .first()
        .map(grant_from_row)
        .transpose()?
        .ok_or_else(|| StoreError::Backend(format!("{OP}: the locked grant vanished")))?;
    Ok(Attempt::Done(stored))
}

#[async_trait]
impl GrantStore for SqlStore {
    async fn upsert(&self, grant: &GrantRecord) -> Result<GrantRecord> {
        const OP: &str = "upsert grant";
        let mut tx = self.begin(OP).await?;
        let stored = upsert_in(&mut tx, grant).await?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(stored)
    }

    async fn get(&self, id: &str) -> Result<Option<GrantRecord>> {
        let row = db::query(concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(backend("get grant"))?;
        row.as_ref().map(grant_from_row).transpose()
    }

    async fn list_by_account(&self, account_id: &str) -> Result<Vec<GrantRecord>> {
        let rows = db::query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE account_id = $1 ORDER BY created_at, id"
        ))
        .bind(account_id)
        .fetch_all(&self.read)
        .await
        .map_err(backend("list grants"))?;
        rows.iter().map(grant_from_row).collect()
    }

    async fn list_live_by_client(&self, client_id: &str) -> Result<Vec<GrantRecord>> {
        let rows = db::query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE client_id = $1 AND revoked_at IS NULL ORDER BY created_at, id"
        ))
        .bind(client_id)
        .fetch_all(&self.read)
        .await
        .map_err(backend("list grants by client"))?;
        rows.iter().map(grant_from_row).collect()
    }

    async fn touch(&self, id: &str, now: Timestamp) -> Result<()> {
        let query =
            db::query("UPDATE grants SET last_used_at = $2 WHERE id = $1").bind(id).bind(now);
        self.update_one("touch grant", query).await
    }

    async fn revoke(&self, id: &str, now: Timestamp) -> Result<bool> {
        self.revoke_with_credentials(
            "revoke grant",
            "UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            crate::credentials::REVOKE_BY_GRANT,
            id,
            now,
        )
        .await
    }

    async fn upsert_domain(&self, grant: &DomainGrantRecord) -> Result<DomainGrantRecord> {
        const OP: &str = "upsert domain grant";
        // One statement: the partial unique index decides between insert and replace, so
        // concurrent upserts leave one live row.
        let rows = db::query(concat!(
            "INSERT INTO oauth1_domain_grants (",
            domain_grant_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, NULL) \
             ON CONFLICT (domain, client_id) WHERE revoked_at IS NULL DO UPDATE \
             SET scopes = excluded.scopes, granted_by = excluded.granted_by, \
             created_at = excluded.created_at RETURNING ",
            domain_grant_columns!()
        ))
        .bind(grant.id.as_str())
        .bind(grant.domain.as_str())
        .bind(grant.client_id.as_str())
        .bind(scope_union([grant.scopes.as_str()]))
        .bind(grant.granted_by.as_str())
        .bind(grant.created_at)
        .fetch_all(&self.write)
        .await
        .map_err(insert(OP))?;
        rows.first()
            .map(domain_grant_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::Backend(format!("{OP}: no row returned")))
    }

    async fn find_live_domain(
        &self,
        domain: &str,
        client_id: &str,
    ) -> Result<Option<DomainGrantRecord>> {
        let row = db::query(concat!(
            "SELECT ",
            domain_grant_columns!(),
            " FROM oauth1_domain_grants \
             WHERE domain = $1 AND client_id = $2 AND revoked_at IS NULL"
        ))
        .bind(domain)
        .bind(client_id)
        .fetch_optional(&self.read)
        .await
        .map_err(backend("find domain grant"))?;
        row.as_ref().map(domain_grant_from_row).transpose()
    }

    async fn list_domain(&self, domain: Option<&str>) -> Result<Vec<DomainGrantRecord>> {
        let rows = db::query(concat!(
            "SELECT ",
            domain_grant_columns!(),
            " FROM oauth1_domain_grants WHERE ($1 = '' OR domain = $1) \
             ORDER BY domain, created_at, id"
        ))
        .bind(domain.unwrap_or_default())
        .fetch_all(&self.read)
        .await
        .map_err(backend("list domain grants"))?;
        rows.iter().map(domain_grant_from_row).collect()
    }

    async fn revoke_domain(&self, domain: &str, client_id: &str, now: Timestamp) -> Result<bool> {
        let query = db::query(
            "UPDATE oauth1_domain_grants SET revoked_at = $3 \
             WHERE domain = $1 AND client_id = $2 AND revoked_at IS NULL",
        )
        .bind(domain)
        .bind(client_id)
        .bind(now);
        Ok(self.write_rows("revoke domain grant", query).await? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::scope_union;

    #[test]
    fn scope_union_sorts_and_deduplicates() {
        assert_eq!(scope_union(["b a", "c  a"]), "a b c");
        assert_eq!(scope_union(["", " "]), "");
    }
}
