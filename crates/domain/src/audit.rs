//! The audit log of security events: sign-ins, password and 2-step changes, app passwords, sessions,
//! administrator actions. Each event is stored and also logged to the `audit` tracing target.

use serde_json::Value;
use tessera_store::{AuditFilter, AuditRecord};

use crate::{Ctx, Result};

/// Who or what caused an event.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The account holder.
    Account,
    /// An administrator acting through a page.
    Admin(String),
    /// The admin command line.
    Cli,
    /// The server itself.
    System,
}

impl Actor {
    fn label(&self) -> String {
        match self {
            Actor::Account => "self".to_owned(),
            Actor::Admin(id) => format!("admin:{id}"),
            Actor::Cli => "cli".to_owned(),
            Actor::System => "system".to_owned(),
        }
    }
}

/// Records an event. Failing to write the audit log fails the caller: security events are not optional.
pub async fn record(
    ctx: &Ctx,
    event: &str,
    account_id: Option<&str>,
    actor: &Actor,
    ip: &str,
    detail: Value,
) -> Result<()> {
    let record = AuditRecord {
        id: ctx.new_id(),
        at: ctx.now(),
        event: event.to_owned(),
        account_id: account_id.map(str::to_owned),
        actor: actor.label(),
        ip: ip.to_owned(),
        detail: detail.to_string(),
    };
    tracing::info!(target: "audit", event, account_id = account_id.unwrap_or("-"), actor = %record.actor, ip, detail = %record.detail);
    ctx.store.audit().append(&record).await?;
    Ok(())
}

pub async fn list(
    ctx: &Ctx,
    account_id: Option<&str>,
    since: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditRecord>> {
    let filter = AuditFilter {
        account_id: account_id.map(str::to_owned),
        since,
        limit: limit.clamp(1, 1000),
    };
    Ok(ctx.store.audit().list(&filter).await?)
}
