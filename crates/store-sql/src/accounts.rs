//! Accounts: creation with case-insensitive email uniqueness, look-ups, and conditional updates.

use crate::db::{self, Row};
use async_trait::async_trait;
use tessera_store::{AccountRecord, AccountState, AccountStore, Result, StoreError, Timestamp};

use crate::error::{backend, insert};
use crate::{SqlStore, bool_int, count_u64, get, get_bool};

macro_rules! account_columns {
    () => {
        "id, email, name, domain, password_hash, state, is_admin, totp_secret_enc, totp_last_step, \
         created_at, updated_at"
    };
}

/// The key the email is unique under; the server lower-cases it so both backends agree.
fn email_key(email: &str) -> String {
    email.to_lowercase()
}

/// What the account columns are called in a row: their own names, or `a_…` where a join reads
/// them beside another table's columns.
pub(crate) struct AccountNames([&'static str; 11]);

const OWN_NAMES: AccountNames = AccountNames([
    "id",
    "email",
    "name",
    "domain",
    "password_hash",
    "state",
    "is_admin",
    "totp_secret_enc",
    "totp_last_step",
    "created_at",
    "updated_at",
]);

/// The names [`joined_account_columns!`] gives the columns of `accounts a`.
pub(crate) const JOINED_NAMES: AccountNames = AccountNames([
    "a_id",
    "a_email",
    "a_name",
    "a_domain",
    "a_password_hash",
    "a_state",
    "a_is_admin",
    "a_totp_secret_enc",
    "a_totp_last_step",
    "a_created_at",
    "a_updated_at",
]);

fn account_from_row(row: &Row) -> Result<AccountRecord> {
    account_from_named_row(row, &OWN_NAMES)
}

pub(crate) fn account_from_named_row(row: &Row, names: &AccountNames) -> Result<AccountRecord> {
    let [
        id,
        email,
        name,
        domain,
        password_hash,
        state,
        is_admin,
        totp_enc,
        totp_step,
        created,
        updated,
    ] = names.0;
    let state: String = get(row, state)?;
    Ok(AccountRecord {
        id: get(row, id)?,
        email: get(row, email)?,
        name: get(row, name)?,
        domain: get(row, domain)?,
        password_hash: get(row, password_hash)?,
        state: AccountState::parse(&state)
            .ok_or_else(|| StoreError::Backend("unknown account state in row".to_owned()))?,
        is_admin: get_bool(row, is_admin)?,
        totp_secret_enc: get(row, totp_enc)?,
        totp_last_step: get(row, totp_step)?,
        created_at: get(row, created)?,
        updated_at: get(row, updated)?,
    })
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn create(&self, account: &AccountRecord) -> Result<()> {
        db::query(
            "INSERT INTO accounts (id, email, email_lower, name, domain, password_hash, state, is_admin, \
             totp_secret_enc, totp_last_step, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(account.id.as_str())
        .bind(account.email.as_str())
        .bind(email_key(&account.email))
        .bind(account.name.as_str())
        .bind(account.domain.as_deref())
        .bind(account.password_hash.as_deref())
        .bind(account.state.as_str())
        .bind(bool_int(account.is_admin))
        .bind(account.totp_secret_enc.as_deref())
        .bind(account.totp_last_step)
        .bind(account.created_at)
        .bind(account.updated_at)
        .execute(&self.write)
        .await
        .map_err(insert("create account"))?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<AccountRecord>> {
        let row = db::query(concat!("SELECT ", account_columns!(), " FROM accounts WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(backend("get account"))?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<AccountRecord>> {
        let row = db::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE email_lower = $1"
        ))
        .bind(email_key(email))
        .fetch_optional(&self.read)
        .await
        .map_err(backend("find account by email"))?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn list(&self, offset: u32, limit: u32) -> Result<Vec<AccountRecord>> {
        let rows = db::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts ORDER BY created_at, id LIMIT $1 OFFSET $2"
        ))
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.read)
        .await
        .map_err(backend("list accounts"))?;
        rows.iter().map(account_from_row).collect()
    }

    async fn count_admins(&self) -> Result<u64> {
        let row = db::query("SELECT COUNT(*) AS n FROM accounts WHERE is_admin = 1")
            .fetch_one(&self.read)
            .await
            .map_err(backend("count admins"))?;
        Ok(count_u64(get(&row, "n")?))
    }

    async fn set_state(&self, id: &str, state: AccountState, now: Timestamp) -> Result<()> {
        let query = db::query("UPDATE accounts SET state = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(state.as_str())
            .bind(now);
        self.update_one("set account state", query).await
    }

    async fn set_admin(&self, id: &str, admin: bool, now: Timestamp) -> Result<()> {
        let query = db::query("UPDATE accounts SET is_admin = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(bool_int(admin))
            .bind(now);
        self.update_one("set account admin", query).await
    }

    async fn set_name(&self, id: &str, name: &str, now: Timestamp) -> Result<()> {
        let query = db::query("UPDATE accounts SET name = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(name)
            .bind(now);
        self.update_one("set account name", query).await
    }

    async fn set_password_hash(&self, id: &str, hash: Option<&str>, now: Timestamp) -> Result<()> {
        let query =
            db::query("UPDATE accounts SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(hash)
                .bind(now);
        self.update_one("set password hash", query).await
    }

    async fn replace_password_hash(
        &self,
        id: &str,
        old: &str,
        new: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let done = db::query(
            "UPDATE accounts SET password_hash = $3, updated_at = $4 WHERE id = $1 AND password_hash = $2",
        )
        .bind(id)
        .bind(old)
        .bind(new)
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(backend("replace password hash"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_totp(&self, id: &str, secret_enc: Option<&str>, now: Timestamp) -> Result<()> {
        let query = db::query(
            "UPDATE accounts SET totp_secret_enc = $2, totp_last_step = NULL, updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(secret_enc)
        .bind(now);
        self.update_one("set totp", query).await
    }

    async fn advance_totp_step(&self, id: &str, step: i64) -> Result<bool> {
        let done = db::query(
            "UPDATE accounts SET totp_last_step = $2 \
             WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
        )
        .bind(id)
        .bind(step)
        .execute(&self.write)
        .await
        .map_err(backend("advance totp step"))?;
        Ok(done.rows_affected() == 1)
    }
}
