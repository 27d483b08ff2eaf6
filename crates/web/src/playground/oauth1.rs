//! The OAuth 1.0a walk with the `anonymous` consumer (HMAC-SHA1, secret `anonymous`), the consumer
//! of installed applications, or a registered consumer whose HMAC secret the developer gives: request token → `OAuthAuthorizeToken` (the consent page) →
//! `/playground/oauth1/callback` with the verifier → access token → a signed call.

use axum::extract::{OriginalUri, State};
use axum::response::Response;
use http::HeaderMap;
use tessera_client::Secret;
use tessera_client::oauth1::{Consumer, SignRequest, SignatureMethod, Token};

use super::{
    Flow, Outcome, Returned, Step, StepInput, Walk, caller_check, client, form_pairs, public,
    random, send, show,
};
use crate::AppState;
use crate::error::PageError;

/// The consumer every installed application may use (`docs/legacy.md`).
const CONSUMER: &str = "anonymous";

pub(super) async fn step(
    input: &StepInput<'_>,
    flow: &mut Flow,
    step: &str,
) -> Result<Outcome, PageError> {
    match step {
        "start" => start(input, flow).await,
        "access" => access(input, flow).await,
        "call" => call(input, flow).await,
        _ => Err(PageError::not_found()),
    }
}

fn consumer(flow: &Flow) -> Consumer {
    let (key, secret) =
        flow.oauth1_consumer.clone().unwrap_or_else(|| (CONSUMER.to_owned(), CONSUMER.to_owned()));
    Consumer { key, method: SignatureMethod::HmacSha1(Secret::new(secret)) }
}

/// The `Authorization: OAuth …` value for `method` on `url`, signed by the flow's consumer and
/// stamped with the server's clock.
fn sign(
    state: &AppState,
    flow: &Flow,
    method: &str,
    url: &str,
    request: &SignRequest<'_>,
) -> Result<String, PageError> {
    let url = url::Url::parse(url).map_err(|err| super::internal(format!("url: {err}")))?;
    let timestamp = state.ctx.now().max(0) as u64;
    consumer(flow)
        .authorization_header(method, &url, request, timestamp, &random(state, 12))
        .map_err(|err| super::internal(format!("oauth1 signing: {err}")))
}

fn token_pair(body: &str) -> Option<(String, String)> {
    let pairs = form_pairs(body);
    let find = |name: &str| pairs.iter().find(|(key, _)| key == name).map(|(_, v)| v.clone());
    Some((find("oauth_token")?, find("oauth_token_secret")?))
}

fn token(pair: &(String, String)) -> Token {
    Token { token: Secret::new(pair.0.as_str()), secret: Secret::new(pair.1.as_str()) }
}

async fn start(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let scope = input.fields.text("scope").split_whitespace().collect::<Vec<_>>().join(" ");
    if scope.is_empty() || scope.len() > 2000 {
        outcome.error = Some("Name at least one scope.".to_owned());
        return Ok(outcome);
    }
    flow.oauth1_token = None;
    let key = input.fields.text("consumer").trim().to_owned();
    flow.oauth1_consumer = match key.as_str() {
        "" | CONSUMER => None,
        _ => Some((key, input.fields.text("consumer_secret"))),
    };
    flow.oauth1_verifier = None;
    flow.oauth1_access = None;
    let url = public(input.state, "/accounts/OAuthGetRequestToken");
    let callback = public(input.state, "/playground/oauth1/callback");
    let form = [("scope", scope.as_str()), ("xoauth_displayname", "tessera playground")];
    let request = SignRequest {
        token: None,
        oauth: vec![("oauth_callback", callback.as_str())],
        form: form.to_vec(),
    };
    let authorization = sign(input.state, flow, "POST", &url, &request)?;
    let request = client().post(&url).header("authorization", authorization).form(&form);
    let exchange = send("Request token", request, &[]).await?;
    let (status, body) = (exchange.status, exchange.body.clone());
    outcome.exchanges.push(exchange);
    match token_pair(&body).filter(|_| status == 200) {
        Some(pair) => {
            let mut authorize =
                url::Url::parse(&public(input.state, "/accounts/OAuthAuthorizeToken"))
                    .map_err(|err| super::internal(format!("url: {err}")))?;
            authorize.query_pairs_mut().append_pair("oauth_token", &pair.0);
            flow.oauth1_token = Some(pair);
            outcome.notes.push(
                "Step 1: a request token, signed with HMAC-SHA1 by the anonymous consumer. Open \
                 the authorization page: you will see the consent page, and come back with a \
                 verifier."
                    .to_owned(),
            );
            outcome.visit = Some((authorize.to_string(), "Open the authorization page"));
        }
        None => outcome.error = Some("The request token was refused.".to_owned()),
    }
    Ok(outcome)
}

/// `GET /playground/oauth1/callback`: back from `OAuthAuthorizeToken`.
pub(super) async fn callback_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let Returned { query, me, mut flow, mut outcome } =
        match super::returned(&state, &headers, &uri, "/playground/oauth1").await? {
            Ok(returned) => returned,
            Err(res) => return Ok(res),
        };
    let ours = flow
        .oauth1_token
        .as_ref()
        .is_some_and(|it| Some(it.0.as_str()) == query.get("oauth_token"));
    match (ours, query.get("oauth_verifier")) {
        (false, _) => {
            outcome.error =
                Some("This is not the request token the playground asked for; start again.".into())
        }
        (true, None) => outcome.error = Some("Access was denied: no verifier came back.".into()),
        (true, Some(verifier)) => {
            flow.oauth1_verifier = Some(verifier.to_owned());
            outcome.notes.push(
                "Step 2: exchange the authorized request token and its verifier for an access \
                 token."
                    .to_owned(),
            );
            outcome.next.push(Step::button("access", "Get the access token"));
        }
    }
    show(&state, &headers, &me, Some(Walk::OAuth1), Some(&flow), outcome).await
}

async fn access(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let (Some(pair), Some(verifier)) = (flow.oauth1_token.take(), flow.oauth1_verifier.take())
    else {
        outcome.error = Some("There is no authorized request token; start again.".to_owned());
        return Ok(outcome);
    };
    let url = public(input.state, "/accounts/OAuthGetAccessToken");
    let request_token = token(&pair);
    let request = SignRequest {
        token: Some(&request_token),
        oauth: vec![("oauth_verifier", verifier.as_str())],
        form: Vec::new(),
    };
    let authorization = sign(input.state, flow, "POST", &url, &request)?;
    let request = client().post(&url).header("authorization", authorization);
    let exchange = send("Access token", request, &[]).await?;
    let (status, body) = (exchange.status, exchange.body.clone());
    outcome.exchanges.push(exchange);
    match token_pair(&body).filter(|_| status == 200) {
        Some(pair) => {
            flow.oauth1_access = Some(pair);
            outcome
                .notes
                .push("Step 3: sign a call with the access token and its secret.".to_owned());
            outcome.next.push(Step::button("call", "Make a signed call"));
        }
        None => outcome.error = Some("The access token was refused.".to_owned()),
    }
    Ok(outcome)
}

async fn call(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(pair) = flow.oauth1_access.clone() else {
        outcome.error = Some("There is no access token yet; start again.".to_owned());
        return Ok(outcome);
    };
    let access = token(&pair);
    let request = SignRequest { token: Some(&access), oauth: Vec::new(), form: Vec::new() };
    if input.state.legacy.authsub {
        // A resource this server itself serves to OAuth-signed requests.
        let url = public(input.state, "/accounts/AuthSubTokenInfo");
        let authorization = sign(input.state, flow, "GET", &url, &request)?;
        let request = client().get(&url).header("authorization", authorization);
        outcome.exchanges.push(send("Signed call: AuthSubTokenInfo", request, &[]).await?);
    }
    let resource = public(input.state, "/playground");
    let authorization = sign(input.state, flow, "GET", &resource, &request)?;
    outcome.exchanges.push(caller_check(input.state, &authorization).await?);
    outcome.next.push(Step::button("call", "Make another signed call"));
    Ok(outcome)
}

/// The token endpoint's OAuth 1.0 migration grant as a request: `form` (the grant's fields and the
/// OAuth 2.0 client's credentials) signed by the flow's consumer with its access token, the
/// signature covering the form body.
pub(super) fn migration_request(
    state: &AppState,
    flow: &Flow,
    form: &[(&str, &str)],
) -> Result<Option<reqwest::RequestBuilder>, PageError> {
    let Some(pair) = flow.oauth1_access.clone() else { return Ok(None) };
    let access = token(&pair);
    let url = public(state, "/o/oauth2/token");
    let request = SignRequest { token: Some(&access), oauth: Vec::new(), form: form.to_vec() };
    let authorization = sign(state, flow, "POST", &url, &request)?;
    Ok(Some(client().post(&url).header("authorization", authorization).form(form)))
}
