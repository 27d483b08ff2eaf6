//! Projects: the developer's container for clients (applications), owned by an account.

use serde_json::json;
use tessera_store::{ProjectBranding, ProjectRecord};

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

/// Sets what the project's consent screen shows. Empty strings clear a field.
pub async fn set_branding(
    ctx: &Ctx,
    project: &ProjectRecord,
    product_name: &str,
    homepage: &str,
    support_email: &str,
    logo_url: &str,
    actor: &Actor,
) -> Result<ProjectBranding> {
    let product_name = product_name.trim();
    if product_name.chars().count() > 100 || product_name.chars().any(char::is_control) {
        return Err(Error::Invalid("Use at most 100 characters for the product name.".to_owned()));
    }
    let homepage = homepage.trim();
    if !homepage.is_empty() {
        let ok = url::Url::parse(homepage).is_ok_and(|it| {
            it.scheme() == "https" && it.username().is_empty() && it.password().is_none()
        });
        if !ok || homepage.len() > 500 {
            return Err(Error::Invalid("The homepage must be an https address.".to_owned()));
        }
    }
    let logo_url = logo_url.trim();
    if !logo_url.is_empty() {
        let ok = url::Url::parse(logo_url).is_ok_and(|it| {
            it.scheme() == "https" && it.username().is_empty() && it.password().is_none()
        });
        if !ok || logo_url.len() > 500 {
            return Err(Error::Invalid("The logo must be an https address.".to_owned()));
        }
    }
    let support_email = support_email.trim();
    if !support_email.is_empty() {
        accounts::normalize_email(support_email)
            .map_err(|_| Error::Invalid("Enter a valid support email address.".to_owned()))?;
    }
    let branding = ProjectBranding {
        project_id: project.id.clone(),
        product_name: product_name.to_owned(),
        homepage: homepage.to_owned(),
        support_email: support_email.to_owned(),
        logo_url: logo_url.to_owned(),
        updated_at: ctx.now(),
    };
    ctx.store.projects().set_branding(&branding).await?;
    audit::record(
        ctx,
        "project.branding",
        Some(&project.owner_account_id),
        actor,
        "",
        json!({ "project": project.id }),
    )
    .await?;
    Ok(branding)
}

pub async fn branding(ctx: &Ctx, project_id: &str) -> Result<Option<ProjectBranding>> {
    Ok(ctx.store.projects().get_branding(project_id).await?)
}
