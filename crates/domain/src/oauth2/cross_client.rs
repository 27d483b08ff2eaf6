//! Cross-client identity: the project is the unit of trust. A client may obtain an ID token whose
//! audience is another client of the same project, without asking the person again; any other
//! audience is refused. The token exchange grant and the device-login
//! `audience:server:client_id:X` scope both ask this one rule.

use super::clients::{self, Client};
use crate::{Ctx, Result};

/// Why an audience was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No such client (Google: `UNREGISTERED_ON_API_CONSOLE`).
    #[error("the audience is not a registered client")]
    UnknownAudience,
    /// A client of another project (Google: `INVALID_AUDIENCE`).
    #[error("the audience belongs to another project")]
    OtherProject,
}

/// The audience client, if `presenter` may obtain ID tokens for it.
pub async fn audience(
    ctx: &Ctx,
    presenter: &Client,
    audience_client_id: &str,
) -> Result<Result<Client, Refused>> {
    let Some(audience) = clients::load(ctx, audience_client_id).await? else {
        return Ok(Err(Refused::UnknownAudience));
    };
    if audience.record.project_id != presenter.record.project_id {
        return Ok(Err(Refused::OtherProject));
    }
    Ok(Ok(audience))
}
