//! Services and the scopes they own.

use crate::db::{self, Row};
use async_trait::async_trait;
use tessera_store::{Result, ServiceRecord, ServiceStore};

use crate::error::{backend, insert};
use crate::{SqlStore, get};

macro_rules! columns {
    () => {
        "name, display_name, scopes, clientlogin_ttl_secs, protocols, created_at, web_prefixes, logout_url, backchannel_logout_url"
    };
}

fn service_from_row(row: &Row) -> Result<ServiceRecord> {
    Ok(ServiceRecord {
        name: get(row, "name")?,
        display_name: get(row, "display_name")?,
        scopes: get(row, "scopes")?,
        clientlogin_ttl_secs: get(row, "clientlogin_ttl_secs")?,
        protocols: get(row, "protocols")?,
        created_at: get(row, "created_at")?,
        web_prefixes: get(row, "web_prefixes")?,
        logout_url: get(row, "logout_url")?,
        backchannel_logout_url: get(row, "backchannel_logout_url")?,
    })
}

#[async_trait]
impl ServiceStore for SqlStore {
    async fn add(&self, service: &ServiceRecord) -> Result<()> {
        db::query(concat!(
            "INSERT INTO services (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(service.name.as_str())
        .bind(service.display_name.as_str())
        .bind(service.scopes.as_str())
        .bind(service.clientlogin_ttl_secs)
        .bind(service.protocols.as_str())
        .bind(service.created_at)
        .bind(service.web_prefixes.as_str())
        .bind(service.logout_url.as_str())
        .bind(service.backchannel_logout_url.as_str())
        .execute(&self.write)
        .await
        .map_err(insert("add service"))?;
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<ServiceRecord>> {
        let row = db::query(concat!("SELECT ", columns!(), " FROM services WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(backend("get service"))?;
        row.as_ref().map(service_from_row).transpose()
    }

    async fn list(&self) -> Result<Vec<ServiceRecord>> {
        let rows = db::query(concat!("SELECT ", columns!(), " FROM services ORDER BY name"))
            .fetch_all(&self.read)
            .await
            .map_err(backend("list services"))?;
        rows.iter().map(service_from_row).collect()
    }

    async fn set_protocols(&self, name: &str, protocols: &str) -> Result<()> {
        self.update_one(
            "set service protocols",
            db::query("UPDATE services SET protocols = $1 WHERE name = $2")
                .bind(protocols.to_owned())
                .bind(name.to_owned()),
        )
        .await
    }

    async fn set_web(
        &self,
        name: &str,
        web_prefixes: &str,
        logout_url: &str,
        backchannel_logout_url: &str,
    ) -> Result<()> {
        self.update_one(
            "set service web sign-on",
            db::query(
                "UPDATE services SET web_prefixes = $1, logout_url = $2, backchannel_logout_url = $3 WHERE name = $4",
            )
            .bind(web_prefixes.to_owned())
            .bind(logout_url.to_owned())
            .bind(backchannel_logout_url.to_owned())
            .bind(name.to_owned()),
        )
        .await
    }
}
