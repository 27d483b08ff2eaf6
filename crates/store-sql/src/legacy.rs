//! Per-application deprecation dates of the legacy protocols and legacy request counts.

use crate::db::{self, Row};
use async_trait::async_trait;
use tessera_store::{DeprecationRecord, LegacyStore, RequestCount, Result};

use crate::error::backend;
use crate::{SqlStore, get};

fn deprecation_from_row(row: &Row) -> Result<DeprecationRecord> {
    Ok(DeprecationRecord {
        protocol: get(row, "protocol")?,
        client_id: get(row, "client_id")?,
        warn_from: get(row, "warn_from")?,
        refuse_from: get(row, "refuse_from")?,
        updated_at: get(row, "updated_at")?,
    })
}

fn count_from_row(row: &Row) -> Result<RequestCount> {
    let requests: i64 = get(row, "requests")?;
    Ok(RequestCount {
        protocol: get(row, "protocol")?,
        client_id: get(row, "client_id")?,
        day: get(row, "day")?,
        requests: u64::try_from(requests.max(0)).unwrap_or_default(),
    })
}

#[async_trait]
impl LegacyStore for SqlStore {
    async fn set_deprecation(&self, record: &DeprecationRecord) -> Result<()> {
        let query = db::query(
            "INSERT INTO legacy_deprecations (protocol, client_id, warn_from, refuse_from, \
             updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (protocol, client_id) DO UPDATE SET warn_from = $3, refuse_from = $4, \
             updated_at = $5",
        )
        .bind(record.protocol.clone())
        .bind(record.client_id.clone())
        .bind(record.warn_from)
        .bind(record.refuse_from)
        .bind(record.updated_at);
        self.write_rows("set deprecation", query).await.map(|_| ())
    }

    async fn clear_deprecation(&self, protocol: &str, client_id: &str) -> Result<bool> {
        let query =
            db::query("DELETE FROM legacy_deprecations WHERE protocol = $1 AND client_id = $2")
                .bind(protocol.to_owned())
                .bind(client_id.to_owned());
        Ok(self.write_rows("clear deprecation", query).await? > 0)
    }

    async fn get_deprecation(
        &self,
        protocol: &str,
        client_id: &str,
    ) -> Result<Option<DeprecationRecord>> {
        let row = db::query(
            "SELECT protocol, client_id, warn_from, refuse_from, updated_at \
             FROM legacy_deprecations WHERE protocol = $1 AND client_id = $2",
        )
        .bind(protocol.to_owned())
        .bind(client_id.to_owned())
        .fetch_optional(&self.read)
        .await
        .map_err(backend("get deprecation"))?;
        row.as_ref().map(deprecation_from_row).transpose()
    }

    async fn list_deprecations(&self) -> Result<Vec<DeprecationRecord>> {
        let rows = db::query(
            "SELECT protocol, client_id, warn_from, refuse_from, updated_at \
             FROM legacy_deprecations ORDER BY protocol, client_id",
        )
        .fetch_all(&self.read)
        .await
        .map_err(backend("list deprecations"))?;
        rows.iter().map(deprecation_from_row).collect()
    }

    async fn add_requests(&self, counts: &[RequestCount]) -> Result<()> {
        const OP: &str = "add legacy requests";
        if counts.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin(OP).await?;
        for count in counts {
            db::query(
                "INSERT INTO legacy_requests (protocol, client_id, day, requests) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (protocol, client_id, day) \
                 DO UPDATE SET requests = legacy_requests.requests + $4",
            )
            .bind(count.protocol.clone())
            .bind(count.client_id.clone())
            .bind(count.day)
            .bind(i64::try_from(count.requests).unwrap_or(i64::MAX))
            .execute(&mut tx)
            .await
            .map_err(backend(OP))?;
        }
        tx.commit().await.map_err(backend(OP))?;
        Ok(())
    }

    async fn request_counts(&self, since_day: i64) -> Result<Vec<RequestCount>> {
        let rows = db::query(
            "SELECT protocol, client_id, day, requests FROM legacy_requests WHERE day >= $1 \
             ORDER BY protocol, client_id, day",
        )
        .bind(since_day)
        .fetch_all(&self.read)
        .await
        .map_err(backend("legacy request counts"))?;
        rows.iter().map(count_from_row).collect()
    }
}
