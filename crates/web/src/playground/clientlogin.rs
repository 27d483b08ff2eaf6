//! The ClientLogin walk: the form (email, password, service) posted to `/accounts/ClientLogin`,
//! the `SID`/`LSID`/`Auth` answer read by the client library, then the `Auth` token presented to
//! the caller check. The password is masked in the shown request and never kept.

use tessera_client::client_login;

use super::{Flow, Outcome, Step, StepInput, caller_check, client, public, send};
use crate::error::PageError;

pub(super) async fn step(
    input: &StepInput<'_>,
    flow: &mut Flow,
    step: &str,
) -> Result<Outcome, PageError> {
    match step {
        "start" => start(input, flow).await,
        "caller" => caller(input, flow).await,
        _ => Err(PageError::not_found()),
    }
}

async fn start(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    flow.clientlogin_auth = None;
    let fields = input.fields;
    let form = [
        ("accountType", "HOSTED_OR_GOOGLE".to_owned()),
        ("Email", fields.text("Email")),
        ("Passwd", fields.text("Passwd")),
        ("service", fields.text("service")),
        ("source", "tessera-playground".to_owned()),
    ];
    let request = client().post(public(input.state, "/accounts/ClientLogin")).form(&form);
    let exchange = send("ClientLogin", request, &["Passwd"]).await?;
    let base = url::Url::parse(&public(input.state, "/"))
        .map_err(|err| super::internal(format!("url: {err}")))?;
    let answer = client_login::parse_response(exchange.status, &exchange.body, &base);
    outcome.exchanges.push(exchange);
    match answer {
        Ok(tokens) => {
            flow.clientlogin_auth = Some(tokens.authorization_header());
            outcome.notes.push(
                "The Auth line is the token for the service's API calls; present it as a \
                 resource server would see it."
                    .to_owned(),
            );
            outcome.next.push(Step::button("caller", "Ask the caller check"));
        }
        Err(err) => outcome.error = Some(format!("ClientLogin refused: {err}")),
    }
    Ok(outcome)
}

async fn caller(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(header) = flow.clientlogin_auth.clone() else {
        outcome.error = Some("There is no Auth token yet; sign in with ClientLogin.".to_owned());
        return Ok(outcome);
    };
    outcome.exchanges.push(caller_check(input.state, &header).await?);
    outcome.next.push(Step::button("caller", "Ask the caller check"));
    Ok(outcome)
}
