//! The OAuth 2.0 device flow (RFC 8628) walked as a limited-input device would: the device
//! authorization request at `/o/oauth2/device/code` with the playground's `device` client, the user
//! code and verification URL shown, the developer approving at `/device` in their browser, then the
//! token endpoint polled with the device code until it answers with tokens.

use tessera_domain::audit::Actor;
use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};

use super::oauth2::{absorb_tokens, chosen_project, scope_of, token_request};
use super::{Flow, Outcome, Step, StepInput, client, public, send};
use crate::error::PageError;

/// The name of the device client the playground registers in a developer's project.
const PLAYGROUND_DEVICE: &str = "Playground device";
/// The device code grant's type.
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The label of the poll step.
pub(super) const POLL: &str = "Poll the token endpoint";
/// The label of the link to the verification page.
const VISIT: &str = "Open the verification page";

/// The project's playground device client (a public client: no secret), created as the console's
/// "Create client" does when the project has none.
async fn device_client(
    input: &StepInput<'_>,
    outcome: &mut Outcome,
) -> Result<Option<String>, PageError> {
    let ctx = &input.state.ctx;
    let Some(project) = chosen_project(input, outcome).await? else { return Ok(None) };
    let existing = clients::list(ctx, &project.id)
        .await?
        .into_iter()
        .find(|it| it.kind == ClientKind::Device && it.record.name == PLAYGROUND_DEVICE);
    if let Some(found) = existing {
        return Ok(Some(found.id().to_owned()));
    }
    let new = NewClient {
        kind: ClientKind::Device,
        name: PLAYGROUND_DEVICE.to_owned(),
        redirect_uris: Vec::new(),
        android_package: None,
        android_cert_sha1: None,
        allow_implicit: false,
        jwt_access_tokens: false,
    };
    let created = clients::create(ctx, &project, new, &Actor::Account).await?;
    outcome.notes.push(format!(
        "Created the device client \"{PLAYGROUND_DEVICE}\" ({}) in project {}.",
        created.client.id(),
        project.name
    ));
    Ok(Some(created.client.id().to_owned()))
}

/// Step 1: the device authorization request; the user code and where to enter it.
pub(super) async fn start(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(scope) = scope_of(input) else {
        outcome.error = Some("Name at least one scope.".to_owned());
        return Ok(outcome);
    };
    let Some(client_id) = device_client(input, &mut outcome).await? else {
        return Ok(outcome);
    };
    flow.device_code = None;
    flow.device_page = None;
    flow.access_token = None;
    flow.refresh_token = None;
    flow.public_client = None;
    let form = [("client_id", client_id.as_str()), ("scope", scope.as_str())];
    let request = client().post(public(input.state, "/o/oauth2/device/code")).form(&form);
    let exchange = send("Device authorization request", request, &[]).await?;
    let json: serde_json::Value = serde_json::from_str(&exchange.body).unwrap_or_default();
    let status = exchange.status;
    outcome.exchanges.push(exchange);
    let text = |name: &str| json.get(name).and_then(|it| it.as_str()).map(str::to_owned);
    let (Some(device_code), Some(user_code), Some(page), 200) =
        (text("device_code"), text("user_code"), text("verification_url"), status)
    else {
        outcome.error = Some(format!(
            "The device authorization endpoint refused: {}",
            text("error").unwrap_or_else(|| "no error code".to_owned())
        ));
        return Ok(outcome);
    };
    flow.device_code = Some(device_code);
    flow.device_client = Some(client_id);
    let visit = text("verification_uri_complete").unwrap_or(page.clone());
    flow.device_page = Some(visit.clone());
    outcome.notes.push(format!(
        "Step 2: a device shows its user: \"Visit {page} and enter the code {user_code}\". \
         Do so (the link carries the code), allow, then come back here and poll the token \
         endpoint with the device code the playground keeps. Polling before you answer gets \
         authorization_pending; polling more often than every 5 seconds gets slow_down."
    ));
    outcome.visit = Some((visit, VISIT));
    outcome.next.push(Step::button("device_poll", POLL));
    Ok(outcome)
}

/// Step 3: the device polls the token endpoint with its device code.
pub(super) async fn poll(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let (Some(device_code), Some(client_id)) =
        (flow.device_code.clone(), flow.device_client.clone())
    else {
        outcome.error = Some("There is no device code to poll with; start again.".to_owned());
        return Ok(outcome);
    };
    flow.public_client = Some(client_id);
    flow.access_token = None;
    flow.refresh_token = None;
    let request = token_request(
        input.state,
        flow,
        &[("grant_type", DEVICE_GRANT), ("device_code", &device_code)],
    );
    let exchange = send("Token request (device code)", request, &[]).await?;
    let (status, body) = (exchange.status, exchange.body.clone());
    outcome.exchanges.push(exchange);
    let error = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|it| it.get("error").and_then(|it| it.as_str()).map(str::to_owned));
    if let Some("authorization_pending" | "slow_down") = error.as_deref() {
        outcome.notes.push(
            "Not answered yet (or polled too soon): approve on the verification page, wait the \
             interval, and poll again."
                .to_owned(),
        );
        outcome.visit = flow.device_page.clone().map(|it| (it, VISIT));
        outcome.next.push(Step::button("device_poll", POLL));
        return Ok(outcome);
    }
    // Tokens, or a final answer (denied, expired, already redeemed): the device code is spent.
    flow.device_code = None;
    flow.device_page = None;
    let jwks = client().get(public(input.state, "/oauth2/v3/certs"));
    if status == 200 {
        outcome.exchanges.push(send("The published keys (JWKS)", jwks, &[]).await?);
    }
    absorb_tokens(input.state, flow, &mut outcome, status, &body).await;
    Ok(outcome)
}
