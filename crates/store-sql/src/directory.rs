//! Hosted domains, projects and their registered clients.

use crate::db::{self, Row};
use async_trait::async_trait;
use tessera_store::{
    ClientRecord, DomainRecord, DomainStore, ProjectBranding, ProjectRecord, ProjectStore, Result,
};

use crate::error::{backend, insert};
use crate::{SqlStore, bool_int, get, get_bool};

macro_rules! project_columns {
    () => {
        "id, name, owner_account_id, verified, created_at"
    };
}

macro_rules! client_columns {
    () => {
        "client_id, project_id, kind, name, secret_digest, settings, created_at"
    };
}

fn domain_from_row(row: &Row) -> Result<DomainRecord> {
    Ok(DomainRecord { name: get(row, "name")?, created_at: get(row, "created_at")? })
}

fn project_from_row(row: &Row) -> Result<ProjectRecord> {
    Ok(ProjectRecord {
        id: get(row, "id")?,
        name: get(row, "name")?,
        owner_account_id: get(row, "owner_account_id")?,
        verified: get_bool(row, "verified")?,
        created_at: get(row, "created_at")?,
    })
}

fn client_from_row(row: &Row) -> Result<ClientRecord> {
    Ok(ClientRecord {
        client_id: get(row, "client_id")?,
        project_id: get(row, "project_id")?,
        kind: get(row, "kind")?,
        name: get(row, "name")?,
        secret_digest: get(row, "secret_digest")?,
        settings: get(row, "settings")?,
        created_at: get(row, "created_at")?,
    })
}

#[async_trait]
impl DomainStore for SqlStore {
    async fn add(&self, domain: &DomainRecord) -> Result<()> {
        db::query("INSERT INTO domains (name, created_at) VALUES ($1, $2)")
            .bind(domain.name.as_str())
            .bind(domain.created_at)
            .execute(&self.write)
            .await
            .map_err(insert("add domain"))?;
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<DomainRecord>> {
        let row = db::query("SELECT name, created_at FROM domains WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(backend("get domain"))?;
        row.as_ref().map(domain_from_row).transpose()
    }

    async fn list(&self) -> Result<Vec<DomainRecord>> {
        let rows = db::query("SELECT name, created_at FROM domains ORDER BY name")
            .fetch_all(&self.read)
            .await
            .map_err(backend("list domains"))?;
        rows.iter().map(domain_from_row).collect()
    }
}

#[async_trait]
impl ProjectStore for SqlStore {
    async fn add(&self, project: &ProjectRecord) -> Result<()> {
        db::query(
            "INSERT INTO projects (id, name, owner_account_id, verified, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(project.id.as_str())
        .bind(project.name.as_str())
        .bind(project.owner_account_id.as_str())
        .bind(bool_int(project.verified))
        .bind(project.created_at)
        .execute(&self.write)
        .await
        .map_err(insert("add project"))?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<ProjectRecord>> {
        let row = db::query(concat!("SELECT ", project_columns!(), " FROM projects WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(backend("get project"))?;
        row.as_ref().map(project_from_row).transpose()
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<ProjectRecord>> {
        let row =
            db::query(concat!("SELECT ", project_columns!(), " FROM projects WHERE name = $1"))
                .bind(name)
                .fetch_optional(&self.read)
                .await
                .map_err(backend("find project by name"))?;
        row.as_ref().map(project_from_row).transpose()
    }

    async fn list(&self) -> Result<Vec<ProjectRecord>> {
        let rows = db::query(concat!(
            "SELECT ",
            project_columns!(),
            " FROM projects ORDER BY created_at, id"
        ))
        .fetch_all(&self.read)
        .await
        .map_err(backend("list projects"))?;
        rows.iter().map(project_from_row).collect()
    }

    async fn add_client(&self, client: &ClientRecord) -> Result<()> {
        db::query(
            "INSERT INTO clients (client_id, project_id, kind, name, secret_digest, settings, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(client.client_id.as_str())
        .bind(client.project_id.as_str())
        .bind(client.kind.as_str())
        .bind(client.name.as_str())
        .bind(client.secret_digest.as_deref())
        .bind(client.settings.as_str())
        .bind(client.created_at)
        .execute(&self.write)
        .await
        .map_err(insert("add client"))?;
        Ok(())
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        let row =
            db::query(concat!("SELECT ", client_columns!(), " FROM clients WHERE client_id = $1"))
                .bind(client_id)
                .fetch_optional(&self.read)
                .await
                .map_err(backend("get client"))?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn list_clients(&self, project_id: &str) -> Result<Vec<ClientRecord>> {
        let rows = db::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE project_id = $1 ORDER BY created_at, client_id"
        ))
        .bind(project_id)
        .fetch_all(&self.read)
        .await
        .map_err(backend("list clients"))?;
        rows.iter().map(client_from_row).collect()
    }

    async fn update_client(&self, client: &ClientRecord) -> Result<bool> {
        let query = db::query(
            "UPDATE clients SET name = $2, secret_digest = $3, settings = $4 WHERE client_id = $1",
        )
        .bind(client.client_id.as_str())
        .bind(client.name.as_str())
        .bind(client.secret_digest.as_deref())
        .bind(client.settings.as_str());
        Ok(self.write_rows("update client", query).await? > 0)
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool> {
        let query = db::query("DELETE FROM clients WHERE client_id = $1").bind(client_id);
        Ok(self.write_rows("delete client", query).await? > 0)
    }

    async fn set_branding(&self, branding: &ProjectBranding) -> Result<()> {
        db::query(
            "INSERT INTO project_branding (project_id, product_name, homepage, support_email, updated_at, logo_url) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (project_id) DO UPDATE SET product_name = $2, homepage = $3, \
             support_email = $4, updated_at = $5, logo_url = $6",
        )
        .bind(branding.project_id.as_str())
        .bind(branding.product_name.as_str())
        .bind(branding.homepage.as_str())
        .bind(branding.support_email.as_str())
        .bind(branding.updated_at)
        .bind(branding.logo_url.as_str())
        .execute(&self.write)
        .await
        .map_err(insert("set project branding"))?;
        Ok(())
    }

    async fn get_branding(&self, project_id: &str) -> Result<Option<ProjectBranding>> {
        let row = db::query(
            "SELECT project_id, product_name, homepage, support_email, updated_at, logo_url \
             FROM project_branding WHERE project_id = $1",
        )
        .bind(project_id)
        .fetch_optional(&self.read)
        .await
        .map_err(backend("get project branding"))?;
        row.as_ref()
            .map(|row| {
                Ok(ProjectBranding {
                    project_id: get(row, "project_id")?,
                    product_name: get(row, "product_name")?,
                    homepage: get(row, "homepage")?,
                    support_email: get(row, "support_email")?,
                    logo_url: get(row, "logo_url")?,
                    updated_at: get(row, "updated_at")?,
                })
            })
            .transpose()
    }

    async fn set_verified(&self, project_id: &str, verified: bool) -> Result<bool> {
        let done = db::query("UPDATE projects SET verified = $2 WHERE id = $1")
            .bind(project_id)
            .bind(bool_int(verified))
            .execute(&self.write)
            .await
            .map_err(backend("set project verified"))?;
        Ok(done.rows_affected() > 0)
    }
}
