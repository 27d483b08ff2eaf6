//! `--demo`: an account, a hosted domain and a project to try every flow at once. Running it again
//! finds what it made before and changes nothing.

use serde::Serialize;
use tessera_domain::Ctx;
use tessera_domain::accounts::NewAccount;
use tessera_domain::audit::Actor;
use tessera_store::AccountState;

pub const DEMO_EMAIL: &str = "demo@example.test";
pub const DEMO_PASSWORD: &str = "tessera-demo";
pub const DEMO_DOMAIN: &str = "example.test";
pub const DEMO_PROJECT: &str = "Demo project";

#[derive(Debug, Clone, Serialize)]
pub struct DemoInfo {
    pub email: String,
    pub password: String,
    pub project: String,
}

pub async fn seed(ctx: &Ctx) -> anyhow::Result<DemoInfo> {
    if ctx.store.domains().get(DEMO_DOMAIN).await.map_err(tessera_domain::Error::from)?.is_none() {
        tessera_domain::accounts::add_domain(ctx, DEMO_DOMAIN, &Actor::System).await?;
    }
    if tessera_domain::accounts::find_by_email(ctx, DEMO_EMAIL).await.is_err() {
        let new = NewAccount {
            email: DEMO_EMAIL.to_owned(),
            name: "Demo User".to_owned(),
            domain: Some(DEMO_DOMAIN.to_owned()),
            password: Some(DEMO_PASSWORD.to_owned()),
            is_admin: false,
            state: AccountState::Active,
        };
        tessera_domain::accounts::create(ctx, new, &Actor::System, "").await?;
    }
    if ctx
        .store
        .projects()
        .find_by_name(DEMO_PROJECT)
        .await
        .map_err(tessera_domain::Error::from)?
        .is_none()
    {
        tessera_domain::projects::create(ctx, DEMO_PROJECT, DEMO_EMAIL, &Actor::System).await?;
    }
    Ok(DemoInfo {
        email: DEMO_EMAIL.to_owned(),
        password: DEMO_PASSWORD.to_owned(),
        project: DEMO_PROJECT.to_owned(),
    })
}
