//! Fixed-window counters for rate limits, each hit one upsert.

use crate::db::{self, Row};
use async_trait::async_trait;
use tessera_store::{CounterStore, Result, StoreError, Timestamp};

use crate::db::Query;
use crate::error::backend;
use crate::{SqlStore, get};

/// A database count as the `u32` the trait returns, saturating instead of wrapping.
fn count_u32(count: i64) -> u32 {
    u32::try_from(count.max(0)).unwrap_or(u32::MAX)
}

/// Adds `amount` to the counter `key`, starting a new window when the current one has ended, and
/// returns the count.
fn add(key: &str, amount: u32, window: i64, now: Timestamp) -> Query {
    db::query(
        "INSERT INTO counters (key, count, window_start, window_secs) VALUES ($1, $4, $3, $2) \
         ON CONFLICT (key) DO UPDATE SET \
         count = CASE WHEN counters.window_start + counters.window_secs <= $3 THEN $4 \
                 ELSE counters.count + $4 END, \
         window_start = CASE WHEN counters.window_start + counters.window_secs <= $3 THEN $3 \
                 ELSE counters.window_start END, \
         window_secs = $2 \
         RETURNING count",
    )
    .bind(key.to_owned())
    .bind(window.max(1))
    .bind(now)
    .bind(i64::from(amount))
}

fn count_of(row: Option<&Row>, op: &str) -> Result<u32> {
    match row {
        Some(row) => Ok(count_u32(get(row, "count")?)),
        None => Err(StoreError::Backend(format!("{op}: no row returned"))),
    }
}

#[async_trait]
impl CounterStore for SqlStore {
    /// A window starts at the first hit after the previous window ended and lasts `window` seconds
    /// (at least one).
    async fn hit(&self, key: &str, window: i64, now: Timestamp) -> Result<u32> {
        let row = add(key, 1, window, now)
            .fetch_optional(&self.write)
            .await
            .map_err(backend("hit counter"))?;
        count_of(row.as_ref(), "hit counter")
    }

    async fn hit_many(
        &self,
        hits: &[(String, u32)],
        window: i64,
        now: Timestamp,
    ) -> Result<Vec<u32>> {
        const OP: &str = "hit counters";
        if hits.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin(OP).await?;
        let mut counts = Vec::with_capacity(hits.len());
        for (key, amount) in hits {
            let row = add(key, *amount, window, now)
                .fetch_optional(&mut tx)
                .await
                .map_err(backend(OP))?;
            counts.push(count_of(row.as_ref(), OP)?);
        }
        tx.commit().await.map_err(backend(OP))?;
        Ok(counts)
    }

    async fn peek(&self, key: &str, now: Timestamp) -> Result<u32> {
        let row = db::query(
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
        let query = db::query("DELETE FROM counters WHERE key = $1").bind(key);
        self.write_rows("clear counter", query).await?;
        Ok(())
    }
}
