//! Named values about the deployment itself (`server_state`): the readiness heartbeat and the
//! key-encryption-key check value.

use tessera_store::{Result, StoreError, Timestamp};

use crate::db;
use crate::error::backend;
use crate::{SqlStore, get};

const HEARTBEAT: &str = "heartbeat";
const KEK_CHECK: &str = "kek_check";

impl SqlStore {
    pub(crate) async fn write_heartbeat(&self, now: Timestamp) -> Result<()> {
        self.write_rows(
            "heartbeat",
            db::query(
                "INSERT INTO server_state (name, value, updated_at) VALUES ($1, '', $2) \
                 ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at",
            )
            .bind(HEARTBEAT)
            .bind(now),
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn read_kek_check(&self) -> Result<Option<String>> {
        let row = db::query("SELECT value FROM server_state WHERE name = $1")
            .bind(KEK_CHECK)
            .fetch_optional(&self.read)
            .await
            .map_err(backend("read kek check"))?;
        row.as_ref().map(|row| get::<String>(row, "value")).transpose()
    }

    pub(crate) async fn insert_kek_check(&self, sealed: &str, now: Timestamp) -> Result<String> {
        self.write_rows(
            "init kek check",
            db::query(
                "INSERT INTO server_state (name, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(KEK_CHECK)
            .bind(sealed.to_owned())
            .bind(now),
        )
        .await?;
        self.read_kek_check()
            .await?
            .ok_or_else(|| StoreError::Backend("init kek check: the row is missing".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use tessera_store::Store as _;

    use crate::{ConnectOptions, SqlStore};

    /// A database that answers reads but refuses writes fails the heartbeat, not the ping.
    #[tokio::test]
    async fn heartbeat_fails_on_a_read_only_database() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("ro.db");
        let url = SqlStore::sqlite_path_url(&path);
        let store = SqlStore::connect(&url, &ConnectOptions::default()).await.expect("connect");
        store.migrate().await.expect("migrate");
        store.heartbeat(1).await.expect("heartbeat on a writable database");
        store.close().await;

        let read_only = url.replace("mode=rwc", "mode=ro");
        let store = SqlStore::connect(&read_only, &ConnectOptions::default()).await.expect("ro");
        store.ping().await.expect("a read-only database still answers");
        let err = store.heartbeat(2).await.expect_err("the write probe fails");
        assert!(err.to_string().contains("heartbeat"), "{err}");
        store.close().await;
    }
}
