//! Fixed-window counters for rate limits, each hit one upsert.

use async_trait::async_trait;
use tessera_store::{CounterStore, Result, Timestamp};

use crate::error::backend;
use crate::{SqlStore, get};

/// A database count as the `u32` the trait returns, saturating instead of wrapping.
fn count_u32(count: i64) -> u32 {
    u32::try_from(count.max(0)).unwrap_or(u32::MAX)
}

#[async_trait]
impl CounterStore for SqlStore {
    /// A window starts at the first hit after the previous window ended and lasts `window` seconds
    /// (at least one).
    async fn hit(&self, key: &str, window: i64, now: Timestamp) -> Result<u32> {
        let rows = sqlx::query(
            "INSERT INTO counters (key, count, window_start, window_secs) VALUES ($1, 1, $3, $2) \
             ON CONFLICT (key) DO UPDATE SET \
             count = CASE WHEN counters.window_start + counters.window_secs <= $3 THEN 1 \
                     ELSE counters.count + 1 END, \
             window_start = CASE WHEN counters.window_start + counters.window_secs <= $3 THEN $3 \
                     ELSE counters.window_start END, \
             window_secs = $2 \
             RETURNING count",
        )
        .bind(key)
        .bind(window.max(1))
        .bind(now)
        .fetch_all(&self.write)
        .await
        .map_err(backend("hit counter"))?;
        match rows.first() {
            Some(row) => Ok(count_u32(get(row, "count")?)),
            None => {
                Err(tessera_store::StoreError::Backend("hit counter: no row returned".to_owned()))
            }
        }
    }

    async fn peek(&self, key: &str, now: Timestamp) -> Result<u32> {
        let row = sqlx::query(
            "SELECT count FROM counters WHERE key = $1 AND window_start + window_secs > $2",
        )
        .bind(key)
        .bind(now)
        .fetch_optional(&self.read)
        .await
        .map_err(backend("peek counter"))?;
        match row {
            Some(row) => Ok(count_u32(get(&row, "count")?)),
            None => Ok(0),
        }
    }

    async fn clear(&self, key: &str) -> Result<()> {
        let query = sqlx::query("DELETE FROM counters WHERE key = $1").bind(key);
        self.write_rows("clear counter", query).await?;
        Ok(())
    }
}
