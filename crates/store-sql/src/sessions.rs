//! Browser sessions, found through their cookie credential and revoked together with it.

use crate::db::{self, Row};
use async_trait::async_trait;
use tessera_store::{
    AccountRecord, CredentialKind, CredentialRecord, Result, SessionRecord, SessionStore, Timestamp,
};

use crate::accounts::{JOINED_NAMES, account_from_named_row};
use crate::credentials::{REVOKE_BY_SESSION, insert_credential};
use crate::error::{backend, insert};
use crate::{SqlStore, bool_int, count_u64, get, get_bool};

macro_rules! session_columns {
    () => {
        "id, account_id, created_at, auth_time, last_seen_at, expires_at, revoked_at, persistent, \
         second_factor, user_agent, ip"
    };
}

/// The signed-in session and its account for a live session cookie, in one statement.
pub(crate) const FIND_SIGNED_IN: &str = concat!(
    "SELECT s.id, s.account_id, s.created_at, s.auth_time, s.last_seen_at, s.expires_at, \
     s.revoked_at, s.persistent, s.second_factor, s.user_agent, s.ip, ",
    joined_account_columns!(),
    " FROM credentials c JOIN sessions s ON s.id = c.session_id \
     JOIN accounts a ON a.id = s.account_id \
     WHERE c.digest = $1 AND c.kind = $2 AND ",
    live_by_key!("c.", "$3"),
    " AND s.revoked_at IS NULL AND s.expires_at > $3"
);

/// Revokes a live session cookie, returning its session and account.
pub(crate) const REVOKE_COOKIE: &str = concat!(
    "UPDATE credentials SET revoked_at = $3 \
     WHERE digest = $1 AND kind = $2 AND session_id IS NOT NULL AND ",
    live_by_key!("", "$3"),
    " RETURNING session_id, account_id"
);

/// Revokes the unrevoked credentials of every session of an account.
pub(crate) const REVOKE_BY_ACCOUNT_SESSIONS: &str = concat!(
    "UPDATE credentials SET revoked_at = $2 WHERE ",
    unrevoked_by_key!(),
    " AND session_id IN (SELECT id FROM sessions WHERE account_id = $1)"
);

fn session_from_row(row: &Row) -> Result<SessionRecord> {
    Ok(SessionRecord {
        id: get(row, "id")?,
        account_id: get(row, "account_id")?,
        created_at: get(row, "created_at")?,
        auth_time: get(row, "auth_time")?,
        last_seen_at: get(row, "last_seen_at")?,
        expires_at: get(row, "expires_at")?,
        revoked_at: get(row, "revoked_at")?,
        persistent: get_bool(row, "persistent")?,
        second_factor: get_bool(row, "second_factor")?,
        user_agent: get(row, "user_agent")?,
        ip: get(row, "ip")?,
    })
}

/// The cookie credential as stored for `session`: it always names the session, and the session's
/// account unless the caller named one.
fn cookie_for(session: &SessionRecord, cookie: &CredentialRecord) -> CredentialRecord {
    let mut cookie = cookie.clone();
    cookie.session_id = Some(session.id.clone());
    if cookie.account_id.is_none() {
        cookie.account_id = Some(session.account_id.clone());
    }
    cookie
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn create(&self, session: &SessionRecord, cookie: &CredentialRecord) -> Result<()> {
        self.create_many(std::slice::from_ref(&(session.clone(), cookie.clone()))).await
    }

    async fn create_many(&self, sessions: &[(SessionRecord, CredentialRecord)]) -> Result<()> {
        const OP: &str = "create session";
        let mut tx = self.begin(OP).await?;
        for (session, cookie) in sessions {
            db::query(concat!(
                "INSERT INTO sessions (",
                session_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ))
            .bind(session.id.as_str())
            .bind(session.account_id.as_str())
            .bind(session.created_at)
            .bind(session.auth_time)
            .bind(session.last_seen_at)
            .bind(session.expires_at)
            .bind(session.revoked_at)
            .bind(bool_int(session.persistent))
            .bind(bool_int(session.second_factor))
            .bind(session.user_agent.as_str())
            .bind(session.ip.as_str())
            .execute(&mut tx)
            .await
            .map_err(insert(OP))?;
            insert_credential(&mut tx, &cookie_for(session, cookie)).await.map_err(insert(OP))?;
        }
        tx.commit().await.map_err(backend(OP))?;
        Ok(())
    }

    async fn find_signed_in(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<(SessionRecord, AccountRecord)>> {
        let row = db::query(FIND_SIGNED_IN)
            .bind(digest)
            .bind(CredentialKind::Session.as_str())
            .bind(now)
            .fetch_optional(&self.read)
            .await
            .map_err(backend("find signed-in session"))?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((session_from_row(&row)?, account_from_named_row(&row, &JOINED_NAMES)?)))
    }

    async fn rotate_cookie(
        &self,
        old_digest: &str,
        new_cookie: &CredentialRecord,
        now: Timestamp,
    ) -> Result<bool> {
        const OP: &str = "rotate session cookie";
        let mut tx = self.begin(OP).await?;
        let revoked = db::query(REVOKE_COOKIE)
            .bind(old_digest)
            .bind(CredentialKind::Session.as_str())
            .bind(now)
            .fetch_all(&mut tx)
            .await
            .map_err(backend(OP))?;
        let Some(old) = revoked.first() else {
            tx.rollback().await.map_err(backend(OP))?;
            return Ok(false);
        };
        let session_id: String = get(old, "session_id")?;
        let account_id: Option<String> = get(old, "account_id")?;
        let mut cookie = new_cookie.clone();
        cookie.session_id = Some(session_id);
        if cookie.account_id.is_none() {
            cookie.account_id = account_id;
        }
        insert_credential(&mut tx, &cookie).await.map_err(insert(OP))?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(true)
    }

    async fn touch(&self, id: &str, now: Timestamp) -> Result<()> {
        let query =
            db::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1").bind(id).bind(now);
        self.update_one("touch session", query).await
    }

    async fn set_second_factor(&self, id: &str, now: Timestamp) -> Result<()> {
        let query =
            db::query("UPDATE sessions SET second_factor = 1, auth_time = $2 WHERE id = $1")
                .bind(id)
                .bind(now);
        self.update_one("set session second factor", query).await
    }

    async fn reauthenticated(&self, id: &str, now: Timestamp) -> Result<()> {
        let query =
            db::query("UPDATE sessions SET auth_time = $2 WHERE id = $1 AND auth_time < $2")
                .bind(id)
                .bind(now);
        self.write_rows("set session auth time", query).await.map(|_| ())
    }

    async fn get(&self, id: &str) -> Result<Option<SessionRecord>> {
        let row = db::query(concat!("SELECT ", session_columns!(), " FROM sessions WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(backend("get session"))?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn list_live_by_account(
        &self,
        account_id: &str,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>> {
        let rows = db::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE account_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at, id"
        ))
        .bind(account_id)
        .bind(now)
        .fetch_all(&self.read)
        .await
        .map_err(backend("list live sessions"))?;
        rows.iter().map(session_from_row).collect()
    }

    async fn revoke(&self, id: &str, now: Timestamp) -> Result<bool> {
        self.revoke_with_credentials(
            "revoke session",
            "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            REVOKE_BY_SESSION,
            id,
            now,
        )
        .await
    }

    async fn revoke_all_for_account(&self, account_id: &str, now: Timestamp) -> Result<u64> {
        const OP: &str = "revoke all sessions of account";
        let mut tx = self.begin(OP).await?;
        let done = db::query(
            "UPDATE sessions SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL",
        )
        .bind(account_id)
        .bind(now)
        .execute(&mut tx)
        .await
        .map_err(backend(OP))?;
        db::query(REVOKE_BY_ACCOUNT_SESSIONS)
            .bind(account_id)
            .bind(now)
            .execute(&mut tx)
            .await
            .map_err(backend(OP))?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(done.rows_affected())
    }

    async fn sweep(&self, cutoff: Timestamp, batch: u32) -> Result<u64> {
        let mut tx = self.begin("sweep sessions").await?;
        let rows = db::query(
            "SELECT id FROM sessions WHERE expires_at < $1 OR revoked_at < $1 ORDER BY id LIMIT $2",
        )
        .bind(cutoff)
        .bind(i64::from(batch))
        .fetch_all(&mut tx)
        .await
        .map_err(backend("sweep sessions"))?;
        let mut n = 0;
        for row in &rows {
            let id: String = get(row, "id")?;
            db::query("DELETE FROM credentials WHERE session_id = $1")
                .bind(id.as_str())
                .execute(&mut tx)
                .await
                .map_err(backend("sweep session credentials"))?;
            n += db::query("DELETE FROM sessions WHERE id = $1")
                .bind(id.as_str())
                .execute(&mut tx)
                .await
                .map_err(backend("sweep sessions"))?
                .rows_affected();
        }
        tx.commit().await.map_err(backend("sweep sessions"))?;
        Ok(n)
    }

    async fn count_live(&self, now: Timestamp) -> Result<u64> {
        let row = db::query(
            "SELECT COUNT(*) AS n FROM sessions WHERE revoked_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .fetch_one(&self.read)
        .await
        .map_err(backend("count live sessions"))?;
        Ok(count_u64(get(&row, "n")?))
    }
}
