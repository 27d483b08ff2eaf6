//! The Android device login walk, as a device's account manager: the published key fetched from
//! `/auth/passwd_key`, the password encrypted to it (`EncryptedPasswd`, built by the client side
//! of the crypto crate, as the device would) and posted to `/auth` for a master token, then a
//! per-service request with the master token and the caller check for the token it got.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

use super::{
    Field, Flow, Outcome, Step, StepInput, caller_check, client, line_value, public, send,
};
use crate::error::PageError;

pub(super) async fn step(
    input: &StepInput<'_>,
    flow: &mut Flow,
    step: &str,
) -> Result<Outcome, PageError> {
    match step {
        "start" => master_login(input, flow).await,
        "service" => service(input, flow).await,
        "caller" => caller(input, flow).await,
        _ => Err(PageError::not_found()),
    }
}

/// The first form: the account's email and password, and the service of the master login.
pub(super) fn start_steps() -> Vec<Step> {
    vec![Step {
        step: "start",
        label: "Sign the device in",
        fields: vec![
            Field::text("Email", "Email", ""),
            Field::password(
                "Passwd",
                "Password (encrypted to the published key before it is sent)",
            ),
        ],
    }]
}

fn service_step() -> Step {
    Step {
        step: "service",
        label: "Ask for a per-service token",
        fields: vec![
            Field::text("service", "Service (a ClientLogin service name, or oauth2:<scopes>)", ""),
            Field::text("app", "App package (oauth2: services)", ""),
            Field::text("client_sig", "App signing certificate SHA-1 (oauth2: services)", ""),
            Field {
                name: "has_permission",
                label: "Approved on the device (has_permission)",
                kind: "select",
                value: String::new(),
                options: vec![("1".to_owned(), "yes".to_owned()), (String::new(), "no".to_owned())],
            },
        ],
    }
}

/// Step 1: the key, then the master login with the encrypted password.
async fn master_login(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    flow.device_master = None;
    flow.device_auth = None;
    let email = input.fields.text("Email");
    let password = input.fields.text("Passwd");
    let request = client().get(public(input.state, "/auth/passwd_key"));
    let exchange = send("The published password key", request, &[]).await?;
    let key =
        (exchange.status == 200).then(|| STANDARD.decode(exchange.body.trim()).ok()).flatten();
    outcome.exchanges.push(exchange);
    let Some(key) = key else {
        outcome.error = Some("The password key could not be read.".to_owned());
        return Ok(outcome);
    };
    let blob = match tessera_crypto::passwd_key::blob(&key, &email, &password) {
        Ok(blob) => URL_SAFE.encode(blob),
        Err(_) => {
            outcome.error = Some(
                "The email and password are too long to encrypt to the key (86 bytes at most)."
                    .to_owned(),
            );
            return Ok(outcome);
        }
    };
    // The Android ID of this walk's "device": 16 hex digits, as Android's are.
    let android_id = tessera_crypto::random::from_alphabet(
        input.state.ctx.rng.as_ref(),
        b"0123456789abcdef",
        16,
    );
    let form = [
        ("accountType", "HOSTED_OR_GOOGLE"),
        ("Email", email.as_str()),
        ("has_permission", "1"),
        ("add_account", "1"),
        ("EncryptedPasswd", blob.as_str()),
        ("service", "ac2dm"),
        ("source", "android"),
        ("androidId", android_id.as_str()),
        ("device_country", "us"),
        ("lang", "en"),
        ("sdk_version", "17"),
    ];
    let request = client().post(public(input.state, "/auth")).form(&form);
    // The blob opens to the password: it is a password, masked like one.
    let exchange = send("Master login (/auth)", request, &["EncryptedPasswd"]).await?;
    let master = (exchange.status == 200).then(|| line_value(&exchange.body, "Token")).flatten();
    let error = line_value(&exchange.body, "Error");
    outcome.exchanges.push(exchange);
    match master {
        Some(master) => {
            flow.device_master = Some((email, android_id, master));
            outcome.notes.push(
                "Step 2: the device holds a master token (Token=). With it, it asks for a token per \
                 service for its apps; the password is not kept."
                    .to_owned(),
            );
            outcome.next.push(service_step());
        }
        None => {
            outcome.error = Some(format!(
                "The master login was refused: {}",
                error.unwrap_or_else(|| "no error code".to_owned())
            ));
        }
    }
    Ok(outcome)
}

/// Step 2: a per-service request with the master token.
async fn service(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some((email, android_id, master)) = flow.device_master.clone() else {
        outcome.error = Some("There is no master token yet; sign the device in.".to_owned());
        return Ok(outcome);
    };
    flow.device_auth = None;
    let fields = input.fields;
    let service = fields.text("service");
    let mut form = vec![
        ("accountType", "HOSTED_OR_GOOGLE".to_owned()),
        ("Email", email),
        ("Token", master),
        ("service", service.clone()),
        ("source", "android".to_owned()),
        ("androidId", android_id),
    ];
    for name in ["app", "client_sig"] {
        let value = fields.text(name);
        if !value.is_empty() {
            form.push((name, value));
        }
    }
    if fields.text("has_permission") == "1" {
        form.push(("has_permission", "1".to_owned()));
    }
    let request = client().post(public(input.state, "/auth")).form(&form);
    let exchange = send("Per-service token (/auth)", request, &[]).await?;
    let auth = (exchange.status == 200).then(|| line_value(&exchange.body, "Auth")).flatten();
    let advice = line_value(&exchange.body, "issueAdvice");
    let error = line_value(&exchange.body, "Error");
    outcome.exchanges.push(exchange);
    match (auth, advice.as_deref(), error) {
        (Some(auth), _, _) => {
            let header = if service.starts_with("oauth2:") && auth.starts_with("ya29.") {
                tessera_client::oauth2::bearer_authorization(&auth)
            } else {
                tessera_client::client_login::authorization(&auth)
            };
            flow.device_auth = Some(header);
            outcome.notes.push(format!(
                "The Auth line is the token for {service}; present it as a resource server would \
                 see it."
            ));
            outcome.next.push(Step::button("caller", "Ask the caller check"));
        }
        (None, Some("consent"), _) => outcome.notes.push(
            "The server asks for consent on the device (issueAdvice=consent): ask again with \
             has_permission."
                .to_owned(),
        ),
        (None, _, error) => {
            outcome.error = Some(format!(
                "The per-service request was refused: {}",
                error.unwrap_or_else(|| "no error code".to_owned())
            ));
        }
    }
    outcome.next.push(service_step());
    Ok(outcome)
}

async fn caller(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(header) = flow.device_auth.clone() else {
        outcome.error = Some("There is no per-service token yet.".to_owned());
        return Ok(outcome);
    };
    outcome.exchanges.push(caller_check(input.state, &header).await?);
    outcome.next.push(Step::button("caller", "Ask the caller check"));
    outcome.next.push(service_step());
    Ok(outcome)
}
