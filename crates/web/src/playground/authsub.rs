//! The AuthSub walk (unregistered, not secure): `AuthSubRequest` (the access page) →
//! `/playground/authsub/callback` with a single-use token → `AuthSubSessionToken` →
//! `AuthSubTokenInfo` → the caller check.

use axum::extract::{OriginalUri, State};
use axum::response::Response;
use http::HeaderMap;
use tessera_client::Secret;
use tessera_client::authsub::AuthSubClient;

use super::{
    Flow, Outcome, Returned, Step, StepInput, Walk, caller_check, client, line_value, public, show,
};
use crate::AppState;
use crate::error::PageError;

pub(super) async fn step(
    input: &StepInput<'_>,
    flow: &mut Flow,
    step: &str,
) -> Result<Outcome, PageError> {
    match step {
        "start" => start(input, flow),
        "session" => session(input, flow).await,
        "info" => info(input, flow).await,
        "caller" => caller(input, flow).await,
        _ => Err(PageError::not_found()),
    }
}

/// The `Authorization` value presenting `token`, as the client library writes it.
fn authorization(state: &AppState, token: &str, path: &str) -> Result<String, PageError> {
    let base = url::Url::parse(&public(state, "/"))
        .map_err(|err| super::internal(format!("url: {err}")))?;
    let url = url::Url::parse(&public(state, path))
        .map_err(|err| super::internal(format!("url: {err}")))?;
    AuthSubClient::new(base)
        .authorization_header(&Secret::new(token), "GET", &url)
        .map_err(|err| super::internal(format!("authsub header: {err}")))
}

fn start(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let scope = input.fields.text("scope").split_whitespace().collect::<Vec<_>>().join(" ");
    if scope.is_empty() || scope.len() > 2000 {
        outcome.error = Some("Name at least one scope.".to_owned());
        return Ok(outcome);
    }
    flow.authsub_single = None;
    flow.authsub_session = None;
    let mut url = url::Url::parse(&public(input.state, "/accounts/AuthSubRequest"))
        .map_err(|err| super::internal(format!("url: {err}")))?;
    url.query_pairs_mut()
        .append_pair("next", &public(input.state, "/playground/authsub/callback"))
        .append_pair("scope", &scope)
        .append_pair("session", "1")
        .append_pair("secure", "0");
    outcome.notes.push(
        "Step 1: the AuthSubRequest URL of an unregistered application asking for a token it may \
         exchange for a session token. Open it: you will see the access page, and come back with \
         a single-use token."
            .to_owned(),
    );
    outcome.visit = Some((url.to_string(), "Open the AuthSubRequest URL"));
    Ok(outcome)
}

/// `GET /playground/authsub/callback`: back from `AuthSubRequest` with `token=`.
pub(super) async fn callback_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let Returned { query, me, mut flow, mut outcome } =
        match super::returned(&state, &headers, &uri, "/playground/authsub").await? {
            Ok(returned) => returned,
            Err(res) => return Ok(res),
        };
    match query.get("token").filter(|it| !it.is_empty() && it.len() <= 500) {
        Some(token) => {
            flow.authsub_single = Some(token.to_owned());
            flow.authsub_session = None;
            outcome
                .notes
                .push("Step 2: exchange the single-use token for a session token.".to_owned());
            outcome.next.push(Step::button("session", "Exchange for a session token"));
        }
        None => outcome.error = Some("No token came back; start again.".to_owned()),
    }
    show(&state, &headers, &me, Some(Walk::AuthSub), Some(&flow), outcome).await
}

async fn session(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(single) = flow.authsub_single.take() else {
        outcome.error = Some("There is no single-use token; start again.".to_owned());
        return Ok(outcome);
    };
    let path = "/accounts/AuthSubSessionToken";
    let header = authorization(input.state, &single, path)?;
    let request = client().get(public(input.state, path)).header("authorization", header);
    let exchange = send_recorded("AuthSubSessionToken", request).await?;
    let (status, body) = (exchange.status, exchange.body.clone());
    outcome.exchanges.push(exchange);
    match line_value(&body, "Token").filter(|_| status == 200) {
        Some(token) => {
            flow.authsub_session = Some(token);
            outcome.notes.push(
                "Step 3: ask about the session token, and present it as a resource server would \
                 see it."
                    .to_owned(),
            );
            outcome.notes.push(
                "The OAuth 2.0 page offers to move this token to OAuth 2.0 (the migration grant)."
                    .to_owned(),
            );
            after_session(&mut outcome);
        }
        None => outcome.error = Some("The exchange was refused.".to_owned()),
    }
    Ok(outcome)
}

fn after_session(outcome: &mut Outcome) {
    outcome.next.push(Step::button("info", "Ask AuthSubTokenInfo"));
    outcome.next.push(Step::button("caller", "Ask the caller check"));
}

async fn send_recorded(
    title: &str,
    request: reqwest::RequestBuilder,
) -> Result<super::Exchange, PageError> {
    super::send(title, request, &[]).await
}

fn need_session(flow: &Flow, outcome: &mut Outcome) -> Option<String> {
    let token = flow.authsub_session.clone();
    if token.is_none() {
        outcome.error = Some("There is no session token yet; start again.".to_owned());
    }
    token
}

async fn info(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(token) = need_session(flow, &mut outcome) else { return Ok(outcome) };
    let path = "/accounts/AuthSubTokenInfo";
    let header = authorization(input.state, &token, path)?;
    let request = client().get(public(input.state, path)).header("authorization", header);
    outcome.exchanges.push(send_recorded("AuthSubTokenInfo", request).await?);
    after_session(&mut outcome);
    Ok(outcome)
}

async fn caller(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(token) = need_session(flow, &mut outcome) else { return Ok(outcome) };
    let header = authorization(input.state, &token, "/playground")?;
    outcome.exchanges.push(caller_check(input.state, &header).await?);
    after_session(&mut outcome);
    Ok(outcome)
}
