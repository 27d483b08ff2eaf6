//! Credentials: one table for every kind, consumed and revoked by single conditional statements.

use crate::db::{self, Row, Tables};
use async_trait::async_trait;
use tessera_store::{
    CredentialKind, CredentialRecord, CredentialStore, CredentialTransition, LiveCredential,
    Redeemed, Redemption, Result, StoreError, Timestamp,
};

use crate::accounts::{JOINED_NAMES, account_from_named_row};
use crate::db::Query;
use crate::error::{backend, backend as backend_error, insert};
use crate::{Backend, SqlStore, count_u64, get};

macro_rules! credential_columns {
    () => {
        "digest, kind, account_id, grant_id, session_id, client_id, scopes, data, created_at, \
         expires_at, consumed_at, revoked_at, last_used_at"
    };
}

macro_rules! insert_credential_sql {
    () => {
        concat!(
            "INSERT INTO credentials (",
            credential_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )
    };
}

/// The condition a credential row meets while it is live at `$now`, for the listing of an
/// account's live credentials, which the partial index `credentials_account_kind_live_idx` serves
/// (statements that find a row by its key use [`live_by_key!`]); the statement binds `$now` under
/// the number given to the macro.
macro_rules! live_at {
    ($now:literal) => {
        concat!(
            "revoked_at IS NULL AND consumed_at IS NULL AND (expires_at IS NULL OR expires_at > ",
            $now,
            ")"
        )
    };
}

/// A live credential by its digest.
pub(crate) const FIND_LIVE: &str = concat!(
    "SELECT ",
    credential_columns!(),
    " FROM credentials WHERE digest = $1 AND ",
    live_by_key!("", "$2")
);

/// A live credential by its digest, with what validating it needs from its grant, client and
/// account, in one statement.
/// A [`FIND_LIVE_TOKEN`] row: the credential and what deciding whether it still works needs.
fn live_from_row(row: &Row) -> Result<LiveCredential> {
    let credential = credential_from_row(row)?;
    let grant_id: Option<String> = get(row, "g_id")?;
    let grant_revoked_at: Option<Timestamp> = get(row, "g_revoked_at")?;
    let grant_last_used_at: Option<Timestamp> = get(row, "g_last_used_at")?;
    let client: Option<String> = get(row, "k_client_id")?;
    let account_id: Option<String> = get(row, "a_id")?;
    let account = match account_id {
        Some(_) => Some(account_from_named_row(row, &JOINED_NAMES)?),
        None => None,
    };
    Ok(LiveCredential {
        grant_revoked: credential.grant_id.is_some()
            && (grant_id.is_none() || grant_revoked_at.is_some()),
        grant_last_used_at,
        client_exists: client.is_some(),
        account,
        credential,
    })
}

pub(crate) const FIND_LIVE_TOKEN: &str = concat!(
    "SELECT c.digest, c.kind, c.account_id, c.grant_id, c.session_id, c.client_id, c.scopes, \
     c.data, c.created_at, c.expires_at, c.consumed_at, c.revoked_at, c.last_used_at, \
     g.id AS g_id, g.revoked_at AS g_revoked_at, g.last_used_at AS g_last_used_at, \
     k.client_id AS k_client_id, ",
    joined_account_columns!(),
    " FROM credentials c \
     LEFT JOIN grants g ON g.id = c.grant_id \
     LEFT JOIN clients k ON k.client_id = c.client_id \
     LEFT JOIN accounts a ON a.id = c.account_id \
     WHERE c.digest = $1 AND ",
    live_by_key!("c.", "$2")
);

/// [`FIND_LIVE_TOKEN`] for `n` digests, where `$1`, `$3`, `$4`, … are the digests and `$2` stays
/// the time as in the one-digest statement.
///
/// On PostgreSQL each digest runs the one-digest statement as a lateral subquery (its `LIMIT`
/// keeps the planner from merging it into one join over the list), so every digest is read
/// through the key and the grant, client and account by theirs, whatever the statistics say.
/// As `c.digest IN (…)`, a table without statistics (autovacuum off) was read through the expiry
/// index or scanned, every live credential checked against the list. SQLite reads the list
/// through the key.
pub(crate) fn find_live_tokens_sql(n: usize, on: Backend) -> String {
    let mut digests = vec!["$1".to_owned()];
    digests.extend((1..n).map(|i| format!("${}", i + 2)));
    match on {
        Backend::Postgres => {
            let values: Vec<String> = digests.iter().map(|it| format!("({it})")).collect();
            format!(
                "SELECT t.* FROM (VALUES {}) AS v (digest) CROSS JOIN LATERAL ({} LIMIT 1) AS t",
                values.join(", "),
                FIND_LIVE_TOKEN.replace("c.digest = $1", "c.digest = v.digest"),
            )
        }
        Backend::Sqlite => FIND_LIVE_TOKEN
            .replace("c.digest = $1", &format!("c.digest IN ({})", digests.join(", "))),
    }
}

/// Deletes a batch of credentials dead since before `$1`.
pub(crate) const SWEEP: &str = "DELETE FROM credentials WHERE digest IN (\
     SELECT digest FROM credentials \
     WHERE expires_at < $1 OR revoked_at < $1 OR consumed_at < $1 LIMIT $2)";

/// The live credentials of one kind of an account, oldest first.
pub(crate) const LIST_LIVE_BY_ACCOUNT: &str = concat!(
    "SELECT ",
    credential_columns!(),
    " FROM credentials WHERE account_id = $1 AND kind = $2 AND ",
    live_at!("$3"),
    " ORDER BY created_at, digest"
);

/// Revokes the unrevoked credentials of one kind of an account.
pub(crate) const REVOKE_BY_ACCOUNT: &str = "UPDATE credentials SET revoked_at = $3 \
     WHERE account_id = $1 AND kind = $2 AND revoked_at IS NULL";

/// On SQLite: revokes the live credentials of a kind of an account and client beyond the newest
/// `$5`, newest by insertion (the rowid).
pub(crate) const ENFORCE_CAP_SQLITE: &str = concat!(
    "UPDATE credentials SET revoked_at = $4 WHERE rowid IN (\
     SELECT rowid FROM credentials WHERE account_id = $1 AND client_id = $2 AND kind = $3 AND ",
    live_at!("$4"),
    " ORDER BY rowid DESC LIMIT -1 OFFSET $5)"
);

/// Spends a live single-use credential of the given kind, returning it.
pub(crate) const CONSUME: &str = concat!(
    "UPDATE credentials SET consumed_at = $3 WHERE digest = $1 AND kind = $2 AND ",
    live_by_key!("", "$3"),
    " RETURNING ",
    credential_columns!()
);

/// Revokes every unrevoked credential of a grant.
pub(crate) const REVOKE_BY_GRANT: &str =
    concat!("UPDATE credentials SET revoked_at = $2 WHERE grant_id = $1 AND ", unrevoked_by_key!());

/// Revokes every unrevoked credential of a session.
pub(crate) const REVOKE_BY_SESSION: &str = concat!(
    "UPDATE credentials SET revoked_at = $2 WHERE session_id = $1 AND ",
    unrevoked_by_key!()
);

/// Binds every column of `credential` in the order of `credential_columns!`.
fn bind_credential(query: Query, credential: &CredentialRecord) -> Query {
    query
        .bind(credential.digest.clone())
        .bind(credential.kind.as_str())
        .bind(credential.account_id.clone())
        .bind(credential.grant_id.clone())
        .bind(credential.session_id.clone())
        .bind(credential.client_id.clone())
        .bind(credential.scopes.clone())
        .bind(credential.data.clone())
        .bind(credential.created_at)
        .bind(credential.expires_at)
        .bind(credential.consumed_at)
        .bind(credential.revoked_at)
        .bind(credential.last_used_at)
}

/// Rows per statement in bulk inserts: 832 parameters, far below both backends' limits.
pub(crate) const ROWS_PER_INSERT: usize = 64;

/// `INSERT … VALUES (…), (…), …` for `rows` credentials; the text holds no value, every value is
/// bound. PostgreSQL gets numbered placeholders; SQLite gets anonymous `?` ones, because sqlx
/// resolves each numbered SQLite parameter through `sqlite3_bind_parameter_name`, a linear walk
/// over the statement's names: binding was quadratic, and 200-row statements spent 70% of a bulk
/// load there.
fn multi_row_insert_sql(rows: usize, backend: Backend) -> String {
    let values = crate::value_rows(rows, 13, backend);
    format!(concat!("INSERT INTO credentials (", credential_columns!(), ") VALUES {}"), values)
}

/// Inserts a credential through any executor (a pool or an open transaction).
pub(crate) async fn insert_credential<'e>(
    executor: impl Into<db::Exec<'e>>,
    credential: &CredentialRecord,
) -> Result<(), crate::db::DbError> {
    bind_credential(db::query(insert_credential_sql!()), credential).execute(executor).await?;
    Ok(())
}

/// Inserts a credential unless one with its digest exists, through any executor; whether it did.
pub(crate) async fn insert_credential_once<'e>(
    executor: impl Into<db::Exec<'e>>,
    credential: &CredentialRecord,
) -> Result<bool, crate::db::DbError> {
    let query = db::query(concat!(insert_credential_sql!(), " ON CONFLICT (digest) DO NOTHING"));
    Ok(bind_credential(query, credential).execute(executor).await?.rows_affected() == 1)
}

/// Inserts those of `rows` whose digest no row has, inside the open transaction `tx`; the digests
/// written. `rows` name distinct digests.
pub(crate) async fn insert_credentials_once(
    tx: &mut crate::db::Tx,
    backend: Backend,
    rows: &[&CredentialRecord],
) -> Result<Vec<String>> {
    const OP: &str = "insert credentials once";
    let mut written = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = multi_row_insert_sql(chunk.len(), backend)
            + " ON CONFLICT (digest) DO NOTHING RETURNING digest";
        let query =
            chunk.iter().fold(db::query_built(sql), |query, row| bind_credential(query, row));
        for row in query.fetch_all(&mut *tx).await.map_err(insert(OP))? {
            written.push(get::<String>(&row, "digest")?);
        }
    }
    Ok(written)
}

/// PostgreSQL: inserts `rows` (at most [`ROWS_PER_INSERT`]) in one statement on `write`, which
/// commits as a transaction of its own: all of them or none, without the round trips of `BEGIN`
/// and `COMMIT`.
pub(crate) async fn insert_credentials_in_one_statement(
    write: &crate::db::Db,
    rows: &[&CredentialRecord],
) -> Result<()> {
    const OP: &str = "insert credentials";
    debug_assert!(rows.len() <= ROWS_PER_INSERT);
    let query = db::query_built(multi_row_insert_sql(rows.len(), Backend::Postgres));
    let query = rows.iter().fold(query, |query, row| bind_credential(query, row));
    query.execute(write).await.map_err(insert(OP))?;
    Ok(())
}

/// PostgreSQL: [`insert_credentials_once`] for at most [`ROWS_PER_INSERT`] rows in one statement
/// on `write`, a transaction of its own.
pub(crate) async fn insert_credentials_once_in_one_statement(
    write: &crate::db::Db,
    rows: &[&CredentialRecord],
) -> Result<Vec<String>> {
    const OP: &str = "insert credentials once";
    debug_assert!(rows.len() <= ROWS_PER_INSERT);
    let sql = multi_row_insert_sql(rows.len(), Backend::Postgres)
        + " ON CONFLICT (digest) DO NOTHING RETURNING digest";
    let query = rows.iter().fold(db::query_built(sql), |query, row| bind_credential(query, row));
    let written = query.fetch_all(write).await.map_err(insert(OP))?;
    written.iter().map(|row| get::<String>(row, "digest")).collect()
}

/// Inserts `rows` inside the open transaction `tx`, [`ROWS_PER_INSERT`] to a statement.
pub(crate) async fn insert_credentials(
    tx: &mut crate::db::Tx,
    backend: Backend,
    rows: &[&CredentialRecord],
) -> Result<()> {
    const OP: &str = "insert credentials";
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let query = db::query_built(multi_row_insert_sql(chunk.len(), backend));
        let query = chunk.iter().fold(query, |query, row| bind_credential(query, row));
        query.execute(&mut *tx).await.map_err(insert(OP))?;
    }
    Ok(())
}

/// A per-account-per-app cap to enforce: at most `cap` live credentials of `kind` that
/// `account_id` holds for `client_id`, the newest by insertion order.
#[derive(Debug, Clone, Copy)]
struct Cap<'a> {
    account_id: &'a str,
    client_id: &'a str,
    kind: CredentialKind,
    cap: u32,
}

impl<'a> Cap<'a> {
    /// The cap of `cap` that `credential` counts against, if it names an account and a client.
    fn of(credential: &'a CredentialRecord, cap: u32) -> Option<Cap<'a>> {
        Some(Cap {
            account_id: credential.account_id.as_deref()?,
            client_id: credential.client_id.as_deref()?,
            kind: credential.kind,
            cap,
        })
    }

    /// `sql` with the parameters both backends' trims take: account, client, kind, now, cap.
    fn bind(self, sql: &'static str, now: Timestamp) -> Query {
        db::query(sql)
            .bind(self.account_id.to_owned())
            .bind(self.client_id.to_owned())
            .bind(self.kind.as_str())
            .bind(now)
            .bind(i64::from(self.cap))
    }
}

/// SQLite, within the open write transaction `tx` (SQLite's write transactions run one at a time
/// already): revokes the live credentials beyond `cap`. PostgreSQL trims after the commit
/// instead ([`SqlStore::trim_cap`]).
async fn enforce_cap(tx: &mut crate::db::Tx, cap: Cap<'_>, now: Timestamp) -> Result<u64> {
    let done = cap
        .bind(ENFORCE_CAP_SQLITE, now)
        .touching(Tables::credentials_of(cap.kind))
        .execute(&mut *tx)
        .await
        .map_err(backend_error("enforce credential cap"))?;
    Ok(done.rows_affected())
}

/// Spends the credential a [`Redemption`] names if it is live, issued to the redemption's client
/// and its grant (if it names one) is live; `$1` the digest, `$2` the kind, `$3` the time, `$4`
/// the client ([`bind_redeem`]).
pub(crate) const REDEEM: &str = concat!(
    "UPDATE credentials SET consumed_at = $3 WHERE digest = $1 AND kind = $2 \
     AND client_id = $4 AND ",
    live_by_key!("", "$3"),
    " AND (grant_id IS NULL OR EXISTS (SELECT 1 FROM grants g \
     WHERE g.id = credentials.grant_id AND g.revoked_at IS NULL)) RETURNING ",
    credential_columns!()
);

/// Binds [`REDEEM`]'s four values.
fn bind_redeem(query: Query, redemption: &Redemption<'_>, now: Timestamp) -> Query {
    query
        .touching(Tables::credentials_of(redemption.kind))
        .bind(redemption.digest.to_owned())
        .bind(redemption.kind.as_str())
        .bind(now)
        .bind(redemption.client_id.to_owned())
}

/// PostgreSQL: [`REDEEM`] and the insert of the `rows` credentials it buys (bound from `$5` on,
/// as [`bind_credential`] binds them), as one statement. The insert writes only when the update
/// returned the consumed row, and the statement is one transaction: the credentials are written
/// if and only if this statement consumed, and a failed insert leaves the credential unspent. It
/// answers the consumed row, as [`REDEEM`] does.
fn redeem_in_one_statement_sql(rows: usize) -> String {
    format!(
        concat!(
            "WITH consumed AS ({}), issued AS (INSERT INTO credentials (",
            credential_columns!(),
            ") SELECT * FROM (VALUES {}) AS v WHERE EXISTS (SELECT 1 FROM consumed)) SELECT ",
            credential_columns!(),
            " FROM consumed"
        ),
        REDEEM,
        crate::value_rows_from(5, rows, 13, Backend::Postgres)
    )
}

/// The caps a redemption enforces on what it issues.
fn redemption_caps<'a>(redemption: &Redemption<'_>, issue: &'a [CredentialRecord]) -> Vec<Cap<'a>> {
    issue
        .iter()
        .filter_map(|credential| {
            let (kind, cap) = redemption.cap?;
            Cap::of(credential, cap).filter(|_| credential.kind == kind)
        })
        .collect()
}

impl SqlStore {
    /// PostgreSQL, a redemption that gives no grant (a code exchange, a refresh, an AuthSub or
    /// OAuth 1.0 token exchange): consumes and writes what it buys in one statement
    /// ([`redeem_in_one_statement_sql`]), one round trip instead of four (`BEGIN`, the update,
    /// the insert, `COMMIT`), then trims the cap as [`CredentialStore::redeem`] does.
    async fn redeem_in_one_statement(
        &self,
        redemption: &Redemption<'_>,
        now: Timestamp,
    ) -> Result<Option<Redeemed>> {
        const OP: &str = "redeem credential";
        let query = if redemption.issue.is_empty() {
            db::query(REDEEM)
        } else {
            db::query_built(redeem_in_one_statement_sql(redemption.issue.len()))
        };
        let query = bind_redeem(query, redemption, now);
        let query = redemption.issue.iter().fold(query, bind_credential);
        let rows = query.fetch_all(&self.write).await.map_err(insert(OP))?;
        let Some(consumed) = rows.first().map(credential_from_row).transpose()? else {
            return Ok(None);
        };
        for cap in redemption_caps(redemption, redemption.issue) {
            self.trim_cap_after_commit(cap, now).await;
        }
        Ok(Some(Redeemed { consumed, grant: None }))
    }

    /// PostgreSQL: enforces a cap after the insert that may have passed it has committed: one
    /// call of the function `tessera_trim_cap` (migration 0015), a transaction of its own that
    /// runs one at a time with every other trim of the same account, client and kind (an advisory
    /// lock, held only while the server runs the function, never across a round trip to this
    /// process) and commits without waiting for the WAL flush.
    ///
    /// Enforced inside the inserting transaction, the lock would be held through that
    /// transaction's commit, flush included, so that every issuance for one account and client
    /// queued behind the one before it. Each trim reads every insert committed before its lock
    /// was granted: once every concurrent insert has returned, at most `cap` are live. What this
    /// gives up is bounded: a crash between an insert's commit and its trim (or within the
    /// fraction of a second before an unflushed trim reaches the disk) leaves the oldest
    /// credentials beyond the cap live until the next capped insert for the same account and
    /// client trims them. That is SQLite's default durability for the same write
    /// (`synchronous = NORMAL`), and no credential that was revoked on purpose comes back: this
    /// only evicts.
    async fn trim_cap(&self, cap: Cap<'_>, now: Timestamp) -> Result<u64> {
        let row = cap
            .bind("SELECT tessera_trim_cap($1, $2, $3, $4, $5) AS revoked", now)
            .fetch_one(&self.write)
            .await
            .map_err(backend_error("trim credential cap"))?;
        let revoked = count_u64(get(&row, "revoked")?);
        // A call reads as a `SELECT`, which the store does not count as a change; what it
        // revoked may be a token whose check was kept (an OAuth 1.0 or AuthSub token).
        if revoked > 0 {
            self.write.changes().committed(Tables::credentials_of(cap.kind));
        }
        Ok(revoked)
    }

    /// [`SqlStore::trim_cap`] once the insert has committed: a failure is logged, not returned,
    /// because what was issued stands (a code already spent must still answer with its tokens),
    /// and the next capped insert for the account and client trims again. Returns how many were
    /// revoked.
    async fn trim_cap_after_commit(&self, cap: Cap<'_>, now: Timestamp) -> u64 {
        self.trim_cap(cap, now).await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "trimming a credential cap failed; the next issuance retries");
            0
        })
    }
}

fn credential_from_row(row: &Row) -> Result<CredentialRecord> {
    let kind: String = get(row, "kind")?;
    Ok(CredentialRecord {
        digest: get(row, "digest")?,
        kind: CredentialKind::parse(&kind)
            .ok_or_else(|| StoreError::Backend("unknown credential kind in row".to_owned()))?,
        account_id: get(row, "account_id")?,
        grant_id: get(row, "grant_id")?,
        session_id: get(row, "session_id")?,
        client_id: get(row, "client_id")?,
        scopes: get(row, "scopes")?,
        data: get(row, "data")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        consumed_at: get(row, "consumed_at")?,
        revoked_at: get(row, "revoked_at")?,
        last_used_at: get(row, "last_used_at")?,
    })
}

#[async_trait]
impl CredentialStore for SqlStore {
    async fn insert(&self, credential: &CredentialRecord) -> Result<()> {
        self.inserts.write(credential.clone()).await
    }

    async fn insert_many(&self, credentials: &[CredentialRecord]) -> Result<()> {
        const OP: &str = "insert credentials";
        let mut tx = self.begin(OP).await?;
        let rows: Vec<&CredentialRecord> = credentials.iter().collect();
        insert_credentials(&mut tx, self.backend, &rows).await?;
        tx.commit().await.map_err(backend(OP))
    }

    async fn insert_once(&self, credential: &CredentialRecord) -> Result<bool> {
        // SQLite's writer already commits concurrent writes together; on PostgreSQL the queue
        // makes them one statement and one commit.
        match self.backend {
            Backend::Postgres => self.once.write(credential.clone()).await,
            Backend::Sqlite => insert_credential_once(&self.write, credential)
                .await
                .map_err(insert("insert credential once")),
        }
    }

    async fn find_live(&self, digest: &str, now: Timestamp) -> Result<Option<CredentialRecord>> {
        let row = db::query(FIND_LIVE)
            .bind(digest)
            .bind(now)
            .fetch_optional(&self.read)
            .await
            .map_err(backend("find live credential"))?;
        row.as_ref().map(credential_from_row).transpose()
    }

    async fn find_live_token(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<LiveCredential>> {
        let row = db::query(FIND_LIVE_TOKEN)
            .bind(digest)
            .bind(now)
            .fetch_optional(&self.read)
            .await
            .map_err(backend("find live token"))?;
        row.as_ref().map(live_from_row).transpose()
    }

    async fn find_live_tokens(
        &self,
        digests: &[String],
        now: Timestamp,
    ) -> Result<Vec<LiveCredential>> {
        let mut found = Vec::with_capacity(digests.len());
        for chunk in digests.chunks(1000) {
            let mut query = db::query_built(find_live_tokens_sql(chunk.len(), self.backend));
            query = query.bind(chunk[0].clone()).bind(now);
            for digest in &chunk[1..] {
                query = query.bind(digest.clone());
            }
            let rows = query.fetch_all(&self.read).await.map_err(backend("find live tokens"))?;
            for row in &rows {
                found.push(live_from_row(row)?);
            }
        }
        Ok(found)
    }

    async fn get(&self, digest: &str) -> Result<Option<CredentialRecord>> {
        let row = db::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM credentials WHERE digest = $1"
        ))
        .bind(digest)
        .fetch_optional(&self.read)
        .await
        .map_err(backend("get credential"))?;
        row.as_ref().map(credential_from_row).transpose()
    }

    async fn consume(
        &self,
        digest: &str,
        kind: CredentialKind,
        now: Timestamp,
    ) -> Result<Option<CredentialRecord>> {
        // One conditional statement: whichever connection runs it first wins, every other sees a
        // row that is no longer live and changes nothing.
        let rows = db::query(CONSUME)
            .touching(Tables::credentials_of(kind))
            .bind(digest)
            .bind(kind.as_str())
            .bind(now)
            .fetch_all(&self.write)
            .await
            .map_err(backend("consume credential"))?;
        rows.first().map(credential_from_row).transpose()
    }

    async fn touch(&self, digest: &str, now: Timestamp) -> Result<()> {
        let query = db::query("UPDATE credentials SET last_used_at = $2 WHERE digest = $1")
            .bind(digest)
            .bind(now);
        self.update_one("touch credential", query).await
    }

    async fn revoke(&self, digest: &str, now: Timestamp) -> Result<bool> {
        let query = db::query(
            "UPDATE credentials SET revoked_at = $2 WHERE digest = $1 AND revoked_at IS NULL",
        )
        .bind(digest)
        .bind(now);
        Ok(self.write_rows("revoke credential", query).await? == 1)
    }

    async fn revoke_by_grant(&self, grant_id: &str, now: Timestamp) -> Result<u64> {
        let query = db::query(REVOKE_BY_GRANT).bind(grant_id).bind(now);
        self.write_rows("revoke credentials by grant", query).await
    }

    async fn revoke_by_session(&self, session_id: &str, now: Timestamp) -> Result<u64> {
        let query = db::query(REVOKE_BY_SESSION).bind(session_id).bind(now);
        self.write_rows("revoke credentials by session", query).await
    }

    async fn list_live_by_account(
        &self,
        account_id: &str,
        kind: CredentialKind,
        now: Timestamp,
    ) -> Result<Vec<CredentialRecord>> {
        let rows = db::query(LIST_LIVE_BY_ACCOUNT)
            .bind(account_id)
            .bind(kind.as_str())
            .bind(now)
            .fetch_all(&self.read)
            .await
            .map_err(backend("list live credentials"))?;
        rows.iter().map(credential_from_row).collect()
    }

    async fn sweep(&self, cutoff: Timestamp, batch: u32) -> Result<u64> {
        let query = db::query(SWEEP).bind(cutoff).bind(i64::from(batch));
        self.write_rows("sweep credentials", query).await
    }

    async fn count(&self) -> Result<u64> {
        let row = db::query("SELECT COUNT(*) AS n FROM credentials")
            .fetch_one(&self.read)
            .await
            .map_err(backend("count credentials"))?;
        Ok(count_u64(get(&row, "n")?))
    }

    async fn insert_capped(&self, credential: &CredentialRecord, cap: u32) -> Result<u64> {
        const OP: &str = "insert capped credential";
        let now = credential.created_at;
        let capped = Cap::of(credential, cap);
        let mut tx = self.begin(OP).await?;
        insert_credential(&mut tx, credential).await.map_err(insert(OP))?;
        let revoked = match (capped, self.backend) {
            (Some(cap), Backend::Sqlite) => enforce_cap(&mut tx, cap, now).await?,
            _ => 0,
        };
        tx.commit().await.map_err(backend(OP))?;
        match (capped, self.backend) {
            (Some(cap), Backend::Postgres) => Ok(self.trim_cap_after_commit(cap, now).await),
            _ => Ok(revoked),
        }
    }

    async fn redeem(
        &self,
        redemption: &Redemption<'_>,
        now: Timestamp,
    ) -> Result<Option<Redeemed>> {
        const OP: &str = "redeem credential";
        if self.backend == Backend::Postgres
            && redemption.grant.is_none()
            && redemption.issue.len() <= ROWS_PER_INSERT
        {
            return self.redeem_in_one_statement(redemption, now).await;
        }
        let mut tx = self.begin(OP).await?;
        let rows = bind_redeem(db::query(REDEEM), redemption, now)
            .fetch_all(&mut tx)
            .await
            .map_err(backend(OP))?;
        let Some(consumed) = rows.first().map(credential_from_row).transpose()? else {
            tx.rollback().await.map_err(backend(OP))?;
            return Ok(None);
        };
        // The grant it gives, then the credentials naming the grant as stored (a live grant that
        // was widened keeps its id).
        let grant = match redemption.grant {
            Some(grant) => Some(crate::grants::upsert_in(&mut tx, grant).await?),
            None => None,
        };
        let renamed: Vec<CredentialRecord>;
        let issue = match (redemption.grant, &grant) {
            (Some(asked), Some(stored)) if asked.id != stored.id => {
                renamed = redemption
                    .issue
                    .iter()
                    .map(|credential| {
                        let mut credential = credential.clone();
                        if credential.grant_id.as_deref() == Some(asked.id.as_str()) {
                            credential.grant_id = Some(stored.id.clone());
                        }
                        credential
                    })
                    .collect();
                renamed.as_slice()
            }
            _ => redemption.issue,
        };
        // What it buys is written in one multi-row statement, and the cap of the capped kind
        // enforced after it (PostgreSQL: after the commit).
        let caps = redemption_caps(redemption, issue);
        let rows: Vec<&CredentialRecord> = issue.iter().collect();
        insert_credentials(&mut tx, self.backend, &rows).await?;
        if self.backend == Backend::Sqlite {
            for cap in &caps {
                enforce_cap(&mut tx, *cap, now).await?;
            }
        }
        tx.commit().await.map_err(backend(OP))?;
        if self.backend == Backend::Postgres {
            for cap in caps {
                self.trim_cap_after_commit(cap, now).await;
            }
        }
        Ok(Some(Redeemed { consumed, grant }))
    }

    async fn revoke_by_account(
        &self,
        account_id: &str,
        kinds: &[CredentialKind],
        now: Timestamp,
    ) -> Result<u64> {
        let mut revoked = 0;
        for kind in kinds {
            let query = db::query(REVOKE_BY_ACCOUNT)
                .touching(Tables::credentials_of(*kind))
                .bind(account_id.to_owned())
                .bind(kind.as_str())
                .bind(now);
            revoked += self.write_rows("revoke credentials by account", query).await?;
        }
        Ok(revoked)
    }

    async fn transition(
        &self,
        digest: &str,
        kind: CredentialKind,
        from: &str,
        to: &CredentialTransition,
        now: Timestamp,
    ) -> Result<Option<CredentialRecord>> {
        // Like `consume`: the state read by the caller is part of the condition, so whichever
        // connection runs first moves it and every other finds the row in another state.
        let rows = db::query(concat!(
            "UPDATE credentials SET data = $5, account_id = COALESCE($6, account_id), ",
            "grant_id = COALESCE($7, grant_id), consumed_at = COALESCE($8, consumed_at) ",
            "WHERE digest = $1 AND kind = $2 AND data = $4 AND ",
            live_by_key!("", "$3"),
            " RETURNING ",
            credential_columns!()
        ))
        .touching(Tables::credentials_of(kind))
        .bind(digest)
        .bind(kind.as_str())
        .bind(now)
        .bind(from)
        .bind(to.data.clone())
        .bind(to.account_id.clone())
        .bind(to.grant_id.clone())
        .bind(to.consume.then_some(now))
        .fetch_all(&self.write)
        .await
        .map_err(backend("transition credential"))?;
        rows.first().map(credential_from_row).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_inserts_bind_every_value() {
        let sql = multi_row_insert_sql(2, Backend::Postgres);
        assert!(sql.ends_with("VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13), ($14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)"), "{sql}");
        assert_eq!(
            multi_row_insert_sql(ROWS_PER_INSERT, Backend::Postgres).matches('$').count(),
            ROWS_PER_INSERT * 13
        );
        let sql = multi_row_insert_sql(2, Backend::Sqlite);
        let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        assert!(sql.ends_with(&format!("VALUES {row}, {row}")), "{sql}");
        assert!(!sql.contains('$'));
    }
}
