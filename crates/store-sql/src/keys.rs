//! Signing keys and their life-cycle states.

use crate::db::{self, Row};
use async_trait::async_trait;
use tessera_store::{KeyRecord, KeyState, KeyStore, Result, StoreError, Timestamp};

use crate::error::{backend, insert};
use crate::{SqlStore, get};

macro_rules! key_columns {
    () => {
        "kid, alg, state, private_enc, public_der, created_at, activated_at, retired_at"
    };
}

fn key_from_row(row: &Row) -> Result<KeyRecord> {
    let state: String = get(row, "state")?;
    Ok(KeyRecord {
        kid: get(row, "kid")?,
        alg: get(row, "alg")?,
        state: KeyState::parse(&state)
            .ok_or_else(|| StoreError::Backend("unknown key state in row".to_owned()))?,
        private_enc: get(row, "private_enc")?,
        public_der: get(row, "public_der")?,
        created_at: get(row, "created_at")?,
        activated_at: get(row, "activated_at")?,
        retired_at: get(row, "retired_at")?,
    })
}

#[async_trait]
impl KeyStore for SqlStore {
    async fn insert(&self, key: &KeyRecord) -> Result<()> {
        db::query(concat!(
            "INSERT INTO signing_keys (",
            key_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(key.kid.as_str())
        .bind(key.alg.as_str())
        .bind(key.state.as_str())
        .bind(key.private_enc.as_str())
        .bind(key.public_der.as_str())
        .bind(key.created_at)
        .bind(key.activated_at)
        .bind(key.retired_at)
        .execute(&self.write)
        .await
        .map_err(insert("insert key"))?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<KeyRecord>> {
        let rows = db::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM signing_keys ORDER BY created_at, kid"
        ))
        .fetch_all(&self.read)
        .await
        .map_err(backend("list keys"))?;
        rows.iter().map(key_from_row).collect()
    }

    /// Activation stamps `activated_at` and retirement or revocation stamps `retired_at`, each only
    /// the first time, so the times keep saying when the key first reached that stage.
    async fn set_state(&self, kid: &str, state: KeyState, now: Timestamp) -> Result<()> {
        let query = match state {
            KeyState::Next => db::query("UPDATE signing_keys SET state = $2 WHERE kid = $1").bind(kid).bind(state.as_str()),
            KeyState::Active => db::query(
                "UPDATE signing_keys SET state = $2, activated_at = COALESCE(activated_at, $3) WHERE kid = $1",
            )
            .bind(kid)
            .bind(state.as_str())
            .bind(now),
            KeyState::Retired | KeyState::Revoked => db::query(
                "UPDATE signing_keys SET state = $2, retired_at = COALESCE(retired_at, $3) WHERE kid = $1",
            )
            .bind(kid)
            .bind(state.as_str())
            .bind(now),
        };
        self.update_one("set key state", query).await
    }
}
