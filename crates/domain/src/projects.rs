//! Projects: the developer's container for clients (applications), owned by an account.

use serde_json::json;
use tessera_store::ProjectRecord;

use crate::audit::{self, Actor};
use crate::{Ctx, Error, Result, accounts};

pub async fn create(
    ctx: &Ctx,
    name: &str,
    owner_email: &str,
    actor: &Actor,
) -> Result<ProjectRecord> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::Invalid("Name the project with 1 to 100 characters.".to_owned()));
    }
    let owner = accounts::find_by_email(ctx, owner_email)
        .await
        .map_err(|_| Error::Invalid(format!("No account {owner_email}.")))?;
    if ctx.store.projects().find_by_name(name).await?.is_some() {
        return Err(Error::Conflict(format!("A project named {name} already exists.")));
    }
    let project = ProjectRecord {
        id: ctx.new_id(),
        name: name.to_owned(),
        owner_account_id: owner.id.clone(),
        verified: false,
        created_at: ctx.now(),
    };
    ctx.store.projects().add(&project).await?;
    audit::record(
        ctx,
        "project.create",
        Some(&owner.id),
        actor,
        "",
        json!({ "project": project.id, "name": name }),
    )
    .await?;
    Ok(project)
}

pub async fn list(ctx: &Ctx) -> Result<Vec<ProjectRecord>> {
    Ok(ctx.store.projects().list().await?)
}

pub async fn find_by_name(ctx: &Ctx, name: &str) -> Result<ProjectRecord> {
    ctx.store.projects().find_by_name(name.trim()).await?.ok_or(Error::NotFound)
}

/// Sets the administrator-only "verified" flag shown on consent pages.
pub async fn set_verified(ctx: &Ctx, name: &str, verified: bool, actor: &Actor) -> Result<()> {
    let project = find_by_name(ctx, name).await?;
    ctx.store.projects().set_verified(&project.id, verified).await?;
    audit::record(
        ctx,
        "project.verified",
        Some(&project.owner_account_id),
        actor,
        "",
        json!({ "project": project.id, "verified": verified }),
    )
    .await
}

/// The projects an account owns, oldest first.
pub async fn owned_by(ctx: &Ctx, account_id: &str) -> Result<Vec<ProjectRecord>> {
    let mut projects: Vec<ProjectRecord> = ctx
        .store
        .projects()
        .list()
        .await?
        .into_iter()
        .filter(|it| it.owner_account_id == account_id)
        .collect();
    projects.sort_by_key(|it| it.created_at);
    Ok(projects)
}

/// The project if `account_id` owns it; someone else's project is `NotFound`, like a missing one.
pub async fn get_owned(ctx: &Ctx, account_id: &str, project_id: &str) -> Result<ProjectRecord> {
    match ctx.store.projects().get(project_id).await? {
        Some(project) if project.owner_account_id == account_id => Ok(project),
        _ => Err(Error::NotFound),
    }
}
