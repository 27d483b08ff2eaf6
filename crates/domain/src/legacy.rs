//! Which applications still use each legacy protocol (AuthSub, ClientLogin): live grants grouped
//! by protocol and client, for the administrator deciding when a protocol can be switched off.

use std::collections::BTreeMap;

use crate::{Ctx, Result, accounts};

/// Protocols this report covers.
pub const PROTOCOLS: [&str; 2] = crate::services::LEGACY_PROTOCOLS;

/// One application's use of one protocol.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub protocol: String,
    pub client_id: String,
    /// Registered name, or the client id.
    pub name: String,
    pub registered: bool,
    /// Accounts with a live grant.
    pub accounts: u64,
    pub last_used_at: Option<i64>,
}

/// Every (protocol, client) pair with live grants, sorted by protocol then client. Walks all
/// accounts, so it is meant for the admin command line, not for a request path.
pub async fn usage(ctx: &Ctx) -> Result<Vec<Usage>> {
    let mut by_key: BTreeMap<(String, String), Usage> = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = accounts::list(ctx, offset, 200).await?;
        for account in &page {
            for grant in ctx.store.grants().list_by_account(&account.id).await? {
                if grant.revoked_at.is_some() || !PROTOCOLS.contains(&grant.protocol.as_str()) {
                    continue;
                }
                let key = (grant.protocol.clone(), grant.client_id.clone());
                let entry = by_key.entry(key).or_insert_with(|| Usage {
                    protocol: grant.protocol.clone(),
                    client_id: grant.client_id.clone(),
                    name: grant.client_id.clone(),
                    registered: false,
                    accounts: 0,
                    last_used_at: None,
                });
                entry.accounts += 1;
                entry.last_used_at = entry.last_used_at.max(grant.last_used_at);
            }
        }
        if page.len() < 200 {
            break;
        }
        offset += 200;
    }
    let mut out: Vec<Usage> = by_key.into_values().collect();
    for usage in &mut out {
        if let Some(client) = ctx.store.projects().get_client(&usage.client_id).await? {
            usage.name = client.name;
            usage.registered = true;
        }
    }
    Ok(out)
}
