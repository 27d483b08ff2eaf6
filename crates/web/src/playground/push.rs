//! The push walk: an app without an account registers an install at `/c2dm/register3` (and gets
//! its install credential), the developer's server sends it a message with `/gcm/send` and a
//! project API key, then the device reads the stored message from its event stream
//! (`/push/events`, read until the first event and closed) and acknowledges it at `/push/device`.

use std::time::Duration;

use tessera_domain::audit::Actor;

use super::oauth2::chosen_project;
use super::{Field, Flow, Outcome, Step, StepInput, client, line_value, public, random, send};
use crate::error::PageError;

/// The name of the API keys the playground creates.
const PLAYGROUND_KEY: &str = "Playground";
/// How long the device's stream is read at most.
const STREAM_WAIT: Duration = Duration::from_secs(2);

pub(super) async fn step(
    input: &StepInput<'_>,
    flow: &mut Flow,
    step: &str,
) -> Result<Outcome, PageError> {
    match step {
        "start" => register(input, flow).await,
        "send" => send_message(input, flow).await,
        "receive" => receive(input, flow).await,
        "ack" => ack(input, flow).await,
        _ => Err(PageError::not_found()),
    }
}

/// The form that sends a message, offered once an app is registered.
fn send_step() -> Step {
    Step {
        step: "send",
        label: "Send a message with /gcm/send",
        fields: vec![Field::text(
            "message",
            "The message's data.message",
            "Hello from the playground",
        )],
    }
}

/// The first form: the project (the sender) and the app's package name.
pub(super) fn start_steps(project: impl Fn() -> Field) -> Vec<Step> {
    vec![Step {
        step: "start",
        label: "Register an app install",
        fields: vec![project(), Field::text("app", "App package name", "com.example.playground")],
    }]
}

/// Step 1: `register3` without a credential: a new install, its credential in a header.
async fn register(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(project) = chosen_project(input, &mut outcome).await? else { return Ok(outcome) };
    if flow.push_project.as_deref() != Some(project.id.as_str()) {
        flow.push_key = None;
    }
    flow.push_project = Some(project.id.clone());
    flow.push_install = None;
    flow.push_registration = None;
    flow.push_message = None;
    let device = format!("playground-{}", random(input.state, 12));
    let form = [
        ("app", input.fields.text("app")),
        ("device", device.clone()),
        ("sender", project.id.clone()),
    ];
    let request = client().post(public(input.state, "/c2dm/register3")).form(&form);
    let exchange = send("Registration (register3, no account)", request, &[]).await?;
    let registration = line_value(&exchange.body, "token");
    let credential = exchange.header("x-install-credential");
    outcome.exchanges.push(exchange);
    let (Some(registration), Some(credential)) = (registration, credential) else {
        outcome.error = Some("The registration was refused.".to_owned());
        return Ok(outcome);
    };
    flow.push_install = Some((device, credential));
    flow.push_registration = Some(registration);
    outcome.notes.push(format!(
        "Step 2: the app has a registration id for sender {} (the project), and the install a \
         credential (X-Install-Credential), shown once, that the device presents from now on. \
         Send it a message as the project's server would, with a push API key.",
        project.id
    ));
    outcome.next.push(send_step());
    Ok(outcome)
}

/// Step 2: `/gcm/send` with `Authorization: key=`; the project's key is created (as the console's
/// "Create key") the first time and kept in the flow.
async fn send_message(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let (Some(project_id), Some(registration)) =
        (flow.push_project.clone(), flow.push_registration.clone())
    else {
        outcome.error = Some("There is no registration yet; start again.".to_owned());
        return Ok(outcome);
    };
    let message = input.fields.text("message");
    if message.len() > 1024 {
        outcome.error = Some("Keep the message to 1024 bytes.".to_owned());
        outcome.next.push(send_step());
        return Ok(outcome);
    }
    let key = match flow.push_key.clone() {
        Some(key) => key,
        None => {
            // The project is the developer's: checked again, as the console does.
            let ctx = &input.state.ctx;
            let project =
                tessera_domain::projects::get_owned(ctx, &input.me.account.id, &project_id).await?;
            let (info, key) = tessera_domain::push::create_api_key_by(
                ctx,
                &project.id,
                PLAYGROUND_KEY,
                &Actor::Account,
            )
            .await?;
            outcome.notes.push(format!(
                "Created the push API key \"{PLAYGROUND_KEY}\" (key {}) in project {}; the \
                 developer console lists it and revokes it.",
                info.id, project.name
            ));
            flow.push_key = Some(key.clone());
            key
        }
    };
    let body = serde_json::json!({
        "to": registration,
        "data": { "message": message },
    });
    let request = client()
        .post(public(input.state, "/gcm/send"))
        .header("authorization", format!("key={key}"))
        .json(&body);
    let exchange = send("GCM send", request, &[]).await?;
    let accepted = exchange.status == 200
        && serde_json::from_str::<serde_json::Value>(&exchange.body)
            .is_ok_and(|it| it["success"] == 1);
    outcome.exchanges.push(exchange);
    if accepted {
        outcome.notes.push(
            "Step 3: the message is stored for the device. Read it as the device would: its event \
             stream sends everything stored first."
                .to_owned(),
        );
        outcome.next.push(Step::button("receive", "Read the device event stream"));
    } else {
        outcome.error = Some("The send was not accepted.".to_owned());
    }
    outcome.next.push(send_step());
    Ok(outcome)
}

fn device_authorization(flow: &Flow) -> Option<(String, String)> {
    let (device, credential) = flow.push_install.clone()?;
    Some((format!("AidLogin {device}:{credential}"), flow.push_registration.clone()?))
}

/// Step 3: the device's event stream, read until its first event and closed.
async fn receive(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some((authorization, registration)) = device_authorization(flow) else {
        outcome.error = Some("There is no registration yet; start again.".to_owned());
        return Ok(outcome);
    };
    let request = client()
        .get(public(input.state, "/push/events"))
        .query(&[("registration_id", &registration)])
        .header("authorization", authorization);
    let exchange = super::send_stream("The device's event stream", request, STREAM_WAIT).await?;
    let frame = exchange
        .body
        .lines()
        .find_map(|line| line.strip_prefix("data:"))
        .and_then(|data| serde_json::from_str::<serde_json::Value>(data.trim()).ok());
    outcome.exchanges.push(exchange);
    match frame.as_ref().and_then(|it| it["message_id"].as_str()) {
        Some(id) => {
            flow.push_message = Some(id.to_owned());
            outcome.notes.push(format!(
                "Step 4: the device got message {id}. It stays stored (and comes again on every \
                 connection) until the device acknowledges it."
            ));
            outcome.next.push(Step::button("ack", "Acknowledge the message"));
        }
        None => outcome.notes.push("Nothing is stored for the device.".to_owned()),
    }
    outcome.next.push(Step::button("receive", "Read the device event stream"));
    outcome.next.push(send_step());
    Ok(outcome)
}

/// Step 4: the device's acknowledgement, posted to `/push/device`.
async fn ack(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let (Some((authorization, registration)), Some(message)) =
        (device_authorization(flow), flow.push_message.take())
    else {
        outcome.error = Some("There is no message to acknowledge.".to_owned());
        return Ok(outcome);
    };
    let frame = serde_json::json!({
        "type": "ack",
        "registration_id": registration,
        "message_id": message,
    });
    let request = client()
        .post(public(input.state, "/push/device"))
        .header("authorization", authorization)
        .json(&frame);
    outcome.exchanges.push(send("The device's acknowledgement", request, &[]).await?);
    outcome.next.push(Step::button("receive", "Read the device event stream"));
    outcome.next.push(send_step());
    Ok(outcome)
}
