//! The ClientLogin walk: the form (email, password, service) posted to `/accounts/ClientLogin`,
//! the `SID`/`LSID`/`Auth` answer read by the client library, then the `Auth` token presented to
//! the caller check. The password is masked in the shown request and never kept.

use tessera_client::client_login;

use super::{Field, Flow, Outcome, Step, StepInput, caller_check, client, public, send};
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

/// The `source` an unregistered application names.
const UNREGISTERED_SOURCE: &str = "tessera-playground";

/// The application the login names (`source`): an unregistered name, or the playground's web
/// client of this flow. A token whose source is a registered client can later move to OAuth 2.0
/// with a web client of that client's project.
pub(super) fn source_field(flow: Option<&Flow>) -> Field {
    let mut options = vec![(
        UNREGISTERED_SOURCE.to_owned(),
        format!("{UNREGISTERED_SOURCE} (no registered client)"),
    )];
    if let Some(id) = flow.and_then(|it| it.client_id.clone()) {
        options.push((id.clone(), format!("{id} (the playground's web client)")));
    }
    Field {
        name: "source",
        label: "Source (the application)",
        kind: "select",
        value: String::new(),
        options,
    }
}

async fn start(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let fields = input.fields;
    let source = match fields.text("source") {
        it if it.is_empty() || it == UNREGISTERED_SOURCE => UNREGISTERED_SOURCE.to_owned(),
        it if flow.client_id.as_deref() == Some(it.as_str()) => it,
        _ => {
            outcome.error = Some("Choose one of the offered sources.".to_owned());
            return Ok(outcome);
        }
    };
    flow.clientlogin_auth = None;
    let form = [
        ("accountType", "HOSTED_OR_GOOGLE".to_owned()),
        ("Email", fields.text("Email")),
        ("Passwd", fields.text("Passwd")),
        ("service", fields.text("service")),
        ("source", source),
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
            outcome.notes.push(
                "The OAuth 2.0 page offers to move this token to OAuth 2.0 (the migration grant)."
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
