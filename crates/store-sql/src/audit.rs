//! The append-only audit log.

use crate::db::{self, Row};
use async_trait::async_trait;
use tessera_store::{AuditFilter, AuditRecord, AuditStore, Result};

use crate::error::{backend, insert};
use crate::{SqlStore, get};

fn audit_from_row(row: &Row) -> Result<AuditRecord> {
    Ok(AuditRecord {
        id: get(row, "id")?,
        at: get(row, "at")?,
        event: get(row, "event")?,
        account_id: get(row, "account_id")?,
        actor: get(row, "actor")?,
        ip: get(row, "ip")?,
        detail: get(row, "detail")?,
    })
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn append(&self, event: &AuditRecord) -> Result<()> {
        db::query(
            "INSERT INTO audit_events (id, at, event, account_id, actor, ip, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(event.id.as_str())
        .bind(event.at)
        .bind(event.event.as_str())
        .bind(event.account_id.as_deref())
        .bind(event.actor.as_str())
        .bind(event.ip.as_str())
        .bind(event.detail.as_str())
        .execute(&self.write)
        .await
        .map_err(insert("append audit event"))?;
        Ok(())
    }

    /// Events of `filter.account_id` (all accounts when `None`) at or after `filter.since`, newest
    /// first, at most `filter.limit` of them; a limit of 0 means no limit.
    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        // NULL parameters switch the filters off, so one statement serves every combination.
        let limit = match filter.limit {
            0 => i64::MAX,
            limit => i64::from(limit),
        };
        let rows = db::query(
            "SELECT id, at, event, account_id, actor, ip, detail FROM audit_events \
             WHERE ($1 IS NULL OR account_id = $1) AND ($2 IS NULL OR at >= $2) \
             ORDER BY at DESC, id DESC LIMIT $3",
        )
        .bind(filter.account_id.as_deref())
        .bind(filter.since)
        .bind(limit)
        .fetch_all(&self.read)
        .await
        .map_err(backend("list audit events"))?;
        rows.iter().map(audit_from_row).collect()
    }
}
